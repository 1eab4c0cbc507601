"""Plumbing shared by the bench scripts (proxy_bench.py, switchover_bench.py, apply_bench.py).

Child processes: spawn() starts each in its own session (the kernel kills it if the bench dies), stop() and
stop_all_children() end them and their process groups. SIGTERM/SIGHUP raise Interrupted, so they unwind like
Ctrl-C. The end of a run: switchyard_log_summary(), on_interrupt() / on_crash(), write_report(),
remove_work_dir() and report_problems().
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import traceback
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import sandbox  # noqa: E402


class Interrupted(Exception):
    """SIGTERM/SIGHUP: unwind through the finally blocks like Ctrl-C does."""


def _on_signal(signum, frame):
    raise Interrupted(f"signal {signum}")


def interrupt_on_term_signals() -> None:
    """Make SIGTERM and SIGHUP raise Interrupted."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


# --- child processes ------------------------------------------------------------------------------------

_children: list = []          # every Popen started here (own session/process group), stopped at the end
_children_lock = threading.Lock()


def spawn(cmd, **kw) -> subprocess.Popen:
    """Start cmd in its own session (pgid == pid); the kernel kills it if this process dies."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    p = subprocess.Popen([str(c) for c in cmd], start_new_session=True,
                         preexec_fn=sandbox.preexec_kill_with_parent(os.getpid(),
                                                                     threading.current_thread() is
                                                                     threading.main_thread()), **kw)
    with _children_lock:
        _children.append(p)
    return p


def stop(p: subprocess.Popen | None, sig=signal.SIGTERM, timeout: float = 15.0) -> int | None:
    """Send sig to p, wait, SIGKILL its process group if it does not exit; returns its exit code."""
    if p is None:
        return None
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
    with contextlib.suppress(ProcessLookupError, PermissionError):   # leftovers of its group
        os.killpg(p.pid, signal.SIGKILL)
    with _children_lock:
        if p in _children:
            _children.remove(p)
    return p.returncode


def stop_all_children() -> None:
    """Stop every process spawn() started that is still listed, newest first."""
    with _children_lock:
        procs = list(reversed(_children))
    for p in procs:
        try:
            stop(p, timeout=5)
        except Exception as e:  # noqa: BLE001 - stop the others anyway
            print(f"{Path(sys.argv[0]).stem}: stopping pid {p.pid} failed: {e}", file=sys.stderr)


def raise_nofile(want: int = 65536) -> tuple:
    """Raise the open-files limit towards want (children inherit it); returns the new (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new_hard = hard if hard == resource.RLIM_INFINITY or hard >= want else want
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, new_hard) if new_hard != resource.RLIM_INFINITY
                                                    else want, new_hard))
    except (ValueError, OSError):                # not privileged: go as far as the hard limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# --- small helpers --------------------------------------------------------------------------------------

def admin_request(sock, cmd: str, timeout: float = 10, **args) -> dict:
    """One request on switchyardd's admin socket (a JSON line each way); the whole reply. ConnectionError when
    the socket closes before a full reply line."""
    import socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError(f"admin socket closed before a full reply to {cmd} (got {buf[:200]!r})")
            buf += chunk
    return json.loads(buf)


def cpu_s(pid: int | None) -> float:
    """utime + stime of pid (all its threads) in seconds; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return 0.0


def rotated(items: tuple, rep: int) -> list:
    """(index in the rep, item) in rep's order: items rotated by rep, so each runs first once in len(items)
    reps (interleaved repetitions; TESTING.md "Benchmarks")."""
    k = rep % len(items)
    return list(enumerate(items[k:] + items[:k]))


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a text file, or a note that it does not exist."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no {path})"


def tool_version(cmd) -> str:
    """First line of what cmd (e.g. `sysbench --version`) prints, or "?"."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def run_report(args, **extra) -> dict:
    """The start of a bench's JSON report: when, the arguments, the host, sysbench's and mariadbd's versions,
    then `extra` (the bench's own lists: runs, problems, ...)."""
    return {"started": datetime.now().astimezone().isoformat(timespec="seconds"), "args": vars(args),
            "host": {"nproc": os.cpu_count(), "loadavg_start": os.getloadavg(), "uname": " ".join(os.uname())},
            "versions": {"sysbench": tool_version(["sysbench", "--version"]),
                         "mariadbd": tool_version([shutil.which("mariadbd") or "/usr/sbin/mariadbd", "--version"])},
            **extra}


# --- end of a run ---------------------------------------------------------------------------------------

def switchyard_log_summary(sy, report: dict, problems: list, level: str) -> None:
    """Stop switchyardd (a non-zero exit is a problem), put its exit status and a summary of its log into
    report and print that summary. level is the ini's log_level: at "warn" the log holds only warnings, and
    its last lines are printed; at "info" its WARN/ERROR lines are collected and the first ones printed."""
    sy_rc = sy.stop()
    report["switchyard_exit"] = sy_rc
    if sy_rc != 0:
        problems.append({"where": "switchyardd shutdown", "error": f"exit {sy_rc} on SIGTERM (expected 0)"})
    log = sy.log.read_text(errors="replace") if sy.log.exists() else ""
    lines = log.splitlines()
    report["switchyard_log_lines"] = len(lines)
    if level == "warn":
        report["switchyard_log_tail"] = "\n".join(lines[-40:])
        if log.strip():
            print(f"\nswitchyardd log (log_level={level}): {len(lines)} line(s); last ones:")
            print("  " + "\n  ".join(lines[-15:]))
        return
    bad = [ln for ln in lines if ln.split()[1:2] and ln.split()[1] in ("WARN", "ERROR")]
    report["switchyard_log_warnings"] = bad[:200]
    report["switchyard_log_tail"] = "\n".join(lines[-60:])
    print(f"\nswitchyardd log (log_level={level}): {len(lines)} line(s), {len(bad)} warning/error "
          f"line(s){'; first ones:' if bad else ''}")
    for ln in bad[:10]:
        print(f"  {ln}")


def on_interrupt(name: str, e: BaseException, report: dict) -> int:
    """Ctrl-C or Interrupted: say so, note it in report; returns exit status 130."""
    print(f"\n{name}: interrupted ({str(e) or 'Ctrl-C'}); stopping everything", file=sys.stderr)
    report["interrupted"] = str(e) or "KeyboardInterrupt"
    return 130


def on_crash(e: BaseException, report: dict, logs: dict, keep: int = 80, show: int = 30) -> int:
    """An unexpected exception: print its traceback and note it in report["fatal"]. For each log in logs
    ({"switchyard": path, ...}; None for a process that never started) its last `keep` lines go to
    report["<name>_log_tail"] and, unless show is 0, its last `show` lines to stderr. Returns exit status 1."""
    traceback.print_exc()
    report["fatal"] = repr(e)
    for name, log in logs.items():
        if log is not None and log.exists():
            report[f"{name}_log_tail"] = tail(log, keep)
            if show:
                print(f"\n{log.stem} log tail:\n{tail(log, show)}", file=sys.stderr)
    return 1


def write_report(report: dict, results_dir, file_name: str) -> None:
    """Note the end time and load average in report, write it as JSON to results_dir/file_name and print
    its path (nothing is written when results_dir cannot be created)."""
    report["finished"] = datetime.now().astimezone().isoformat(timespec="seconds")
    report["host"]["loadavg_end"] = os.getloadavg()
    out_dir = Path(results_dir)
    with contextlib.suppress(OSError):
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / file_name
        out.write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"\nreport: {out}")


def remove_work_dir(work: Path, keep: bool) -> None:
    """Remove the temp dir, or with --keep say where it is."""
    if keep:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def report_problems(name: str, problems: list, rc: int) -> int:
    """Print the problems of the run to stderr; returns rc, or 1 when rc is 0 and there are problems."""
    if problems:
        print(f"\n{name}: {len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  - {p['where']}: {p.get('error') or ''}", file=sys.stderr)
        rc = rc or 1
    return rc
