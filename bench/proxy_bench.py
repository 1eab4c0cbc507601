#!/usr/bin/python3
"""Proxy data-path benchmark: sysbench straight to MariaDB vs through HAProxy (TCP mode) vs through switchyardd.

    /usr/bin/python3 bench/proxy_bench.py --build build            # 2 workloads x 3 targets x 3 reps x 20 s
    /usr/bin/python3 bench/proxy_bench.py --build build --quick    # smoke run: 5 s x 2 reps
    /usr/bin/python3 bench/proxy_bench.py --build build --proxy-threads 2   # + switchyardd with 2 worker loops

What it does (TESTING.md "Benchmarks": side by side in one run, >= 3 interleaved repetitions, no asserted timing):
  1. two sandbox MariaDB servers (scripts/sandbox.py): the business one everything talks to, and a DR one
     only because the switchyardd ini requires a `dr` endpoint; sbtest (4 tables x 10000 rows) is prepared
     straight on the business server, for a `sb` account.
  2. HAProxy (Debian haproxy 2.6, `-db`, config in a temp dir: mode tcp, maxconn 5000, one server) and
     switchyardd (`-c INI --foreground`, log_level=warn, listen 127.0.0.1:0) in front of that server.
  3. per workload (oltp_point_select, oltp_read_write), 8 threads: a short warm-up per target, then R reps,
     each rep runs direct / haproxy / switchyard (order rotated per rep) for --time seconds with
     --histogram=on; p95 and p99 are computed from the printed histogram the way sysbench computes its
     own percentile (sysbench's own 95th is kept next to it as a cross-check).
  4. syscalls per forwarded query (switchyardd vs haproxy): `strace -c -f -p PID` around a 5 s
     oltp_point_select run; skipped with a note when strace is not installed.
     With --proxy-threads N a second switchyardd (proxy_threads = N, its own pair on the same server) is a
     fourth target, `switchyard_Nt`, in the same rotation: the single loop and N worker loops side by side.
     With --compare-build DIR the switchyardd of another build (e.g. the commit before a change) is one more
     target, `switchyard_base`, in the same rotation: before and after measured in one run.
  5. VmRSS of switchyardd (and of haproxy, for comparison) before and after opening 2000 idle client
     connections through it (PyMySQL, logged in; the target for switchyardd is <= 64 MiB).
Prints one table per workload plus the raw per-rep numbers, and writes everything as JSON to
bench/results/proxy-<timestamp>.json. Everything started here is stopped at the end, on exceptions, on
Ctrl-C and on SIGTERM/SIGHUP (own process groups; parent-death signal if this process is SIGKILLed).
Exit status 1 when a run failed (sysbench stops on any error but the deadlock/lock-wait ones it retries), a
proxy made sysbench reconnect, or idle connections could not be opened (the report is still written).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from common import (ROOT, Interrupted, cpu_s, interrupt_on_term_signals, on_crash, on_interrupt, raise_nofile,
                    remove_work_dir, report_problems, rotated, spawn, stop, stop_all_children, switchyard_log_summary,
                    tail, tool_version, write_report)
import sandbox  # common put scripts/ on sys.path

WORKLOADS = ("oltp_point_select", "oltp_read_write")
TARGETS = ("direct", "haproxy", "switchyard")
SB_USER, SB_PASSWORD, SB_DB = "sb", "sb-bench-pw", "sbtest"
SB_TABLES, SB_TABLE_SIZE = 4, 10000
RSS_TARGET_MIB = 64
HOST = "127.0.0.1"


# --- /proc and ports ------------------------------------------------------------------------------------

def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def thread_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return -1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def greeting_via(port: int, timeout: float = 2.0) -> bool:
    """True when a MariaDB protocol-10 greeting comes back through HOST:port."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            hdr = s.recv(5)
            return len(hdr) == 5 and hdr[4] == 10
    except OSError:
        return False


# --- HAProxy --------------------------------------------------------------------------------------------

class HAProxy:
    def __init__(self, work: Path, backend_port: int):
        self.work = work
        self.backend_port = backend_port
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.cfg = work / "haproxy.cfg"
        self.log = work / "haproxy.log"
        self.binary = shutil.which("haproxy") or "/usr/sbin/haproxy"

    def config(self) -> str:
        return (
            "global\n"
            "    maxconn 5000\n"
            "\n"
            "defaults\n"
            "    mode tcp\n"
            "    maxconn 5000\n"
            "    timeout connect 5s\n"
            "    timeout client 1h\n"
            "    timeout server 1h\n"
            "\n"
            "frontend mariadb_in\n"
            f"    bind {HOST}:{self.port}\n"
            "    default_backend mariadb\n"
            "\n"
            "backend mariadb\n"
            f"    server db1 {HOST}:{self.backend_port}\n")

    def start(self) -> "HAProxy":
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("haproxy not found (Debian package haproxy)")
        last = ""
        for _ in range(6):                               # the free port may be taken before haproxy binds it
            self.port = free_port()
            self.cfg.write_text(self.config())
            with open(self.log, "ab") as log:
                self.proc = spawn([self.binary, "-db", "-f", self.cfg], stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self.ready():
                    return self
                time.sleep(0.05)
            last = tail(self.log)
            stop(self.proc)
            self.proc = None
            if "ddress already in use" not in last and "cannot bind" not in last:
                break
        raise RuntimeError(f"haproxy did not start:\n{last}")

    def ready(self) -> bool:
        """HAProxy relays to the server: a MariaDB greeting comes back through it."""
        return greeting_via(self.port)

    def stop(self) -> int | None:
        """Soft stop (SIGUSR1: exits 0 once no connection is left); SIGKILL after 10 s."""
        rc = stop(self.proc, signal.SIGUSR1, timeout=10)
        self.proc = None
        return rc


# --- switchyardd ----------------------------------------------------------------------------------------

class Switchyard:
    """switchyardd in front of business (one pair named bench, log_level=warn); subclasses change ENGINE, the
    ini (config) and what proves the listener is up (ready)."""

    ENGINE = "mariadb"

    def __init__(self, build: Path, work: Path, business, dr, proxy_threads: int = 1):
        self.proxy_threads = proxy_threads
        self.daemon = build / "switchyardd"
        self.ctl_bin = build / "switchyardctl"
        self.work = work
        self.ini = work / "switchyard.ini"
        self.sock = work / "admin.sock"
        self.log = work / "switchyardd.log"
        self.business, self.dr = business, dr
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    def config(self) -> str:
        return ("[switchyard]\n"
                f"admin_socket = {self.sock}\n"
                f"state_dir    = {self.work / 'state'}\n"
                "log_level    = warn\n"
                + (f"proxy_threads = {self.proxy_threads}\n" if self.proxy_threads > 1 else "") +
                "\n"
                "[pair bench]\n"
                f"engine         = {self.ENGINE}\n"
                f"listen         = {HOST}:0\n"
                f"business       = {HOST}:{self.business.port}\n"
                f"dr             = {HOST}:{self.dr.port}\n"
                f"admin_user     = {sandbox.ADMIN_USER}\n"
                f"admin_password = {sandbox.ADMIN_PASSWORD}\n"
                f"tls_cert       = {self.work / 'proxy.pem'}\n"     # for the TLS idle row; plain clients
                f"tls_key        = {self.work / 'proxy.key'}\n")    # never ask for it

    def ctl_json(self, *args, timeout: float = 10) -> dict:
        r = subprocess.run([str(self.ctl_bin), "-s", str(self.sock), "--json", *args], capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"switchyardctl {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
        return json.loads(r.stdout)

    def start(self) -> "Switchyard":
        for b in (self.daemon, self.ctl_bin):
            if not os.access(b, os.X_OK):
                raise RuntimeError(f"{b} missing: cmake --build {b.parent} -j2")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                        "/CN=localhost", "-keyout", str(self.work / "proxy.key"), "-out", str(self.work / "proxy.pem")],
                       check=True, capture_output=True, timeout=60)
        self.ini.write_text(self.config())
        with open(self.log, "ab") as log:
            self.proc = spawn([self.daemon, "-c", self.ini, "--foreground"], stdout=log, stderr=subprocess.STDOUT,
                              cwd=self.work)
        deadline = time.monotonic() + 30
        last = None
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"switchyardd exited with {self.proc.returncode}:\n{tail(self.log)}")
            try:
                st = self.ctl_json("status", timeout=5)
                st = st.get("result", st)
                listen = st["pairs"][0]["listen"]
                self.port = int(listen.rsplit(":", 1)[1])
                if self.port and self.ready():
                    return self
            except (RuntimeError, ValueError, KeyError, IndexError, OSError, subprocess.SubprocessError) as e:
                last = e
            if time.monotonic() > deadline:
                raise RuntimeError(f"switchyardd not ready after 30 s (last: {last!r}):\n{tail(self.log)}")
            time.sleep(0.1)

    def ready(self) -> bool:
        """The listener relays to the server: a MariaDB greeting comes back through it."""
        return greeting_via(self.port)

    def stop(self) -> int | None:
        rc = stop(self.proc, timeout=20)
        self.proc = None
        return rc


# --- sysbench -------------------------------------------------------------------------------------------

_HIST_LINE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s+\|\**\s+(\d+)\s*$")


def _num(pattern: str, text: str, cast=float, default=None):
    m = re.search(pattern, text, re.M)
    return cast(m.group(1)) if m else default


def hist_percentile(hist: list, pct: float) -> float | None:
    """sysbench's own rule (sb_histogram_get_pct_*): the value of the first bucket at which the cumulative
    count reaches floor(total * pct / 100 + 0.5)."""
    total = sum(c for _, c in hist)
    if total == 0:
        return None
    need = max(1, math.floor(total * pct / 100 + 0.5))
    acc = 0
    for value, count in hist:
        acc += count
        if acc >= need:
            return value
    return hist[-1][0]


def parse_sysbench(out: str) -> dict:
    hist = []
    in_hist = False
    for line in out.splitlines():
        if line.startswith("Latency histogram"):
            in_hist = True
            continue
        if in_hist:
            m = _HIST_LINE.match(line)
            if m:
                hist.append((float(m.group(1)), int(m.group(2))))
            elif hist and not line.strip():
                in_hist = False
    secs = _num(r"^\s*total time:\s+([\d.]+)s", out)
    r = {
        "transactions": _num(r"^\s*transactions:\s+(\d+)", out, int),
        "tps": _num(r"^\s*transactions:\s+\d+\s+\(([\d.]+) per sec", out),
        "queries": _num(r"^\s*queries:\s+(\d+)", out, int),
        "qps": _num(r"^\s*queries:\s+\d+\s+\(([\d.]+) per sec", out),
        "errors": _num(r"^\s*ignored errors:\s+(\d+)", out, int),
        "reconnects": _num(r"^\s*reconnects:\s+(\d+)", out, int),
        "total_time_s": secs,
        "lat_avg_ms": _num(r"^\s*avg:\s+([\d.]+)", out),
        "lat_max_ms": _num(r"^\s*max:\s+([\d.]+)", out),
        "sysbench_p95_ms": _num(r"^\s*95th percentile:\s+([\d.]+)", out),
        "p50_ms": hist_percentile(hist, 50),
        "p95_ms": hist_percentile(hist, 95),
        "p99_ms": hist_percentile(hist, 99),
        "hist_events": sum(c for _, c in hist),
    }
    return r


def sb_cmd(workload: str, port: int, *extra) -> list:
    return ["sysbench", workload, "--db-driver=mysql", f"--mysql-host={HOST}", f"--mysql-port={port}",
            f"--mysql-user={SB_USER}", f"--mysql-password={SB_PASSWORD}", f"--mysql-db={SB_DB}",
            f"--tables={SB_TABLES}", f"--table-size={SB_TABLE_SIZE}", *extra]


def tcp_out_segments() -> int:
    """The host's TCP segments sent (/proc/net/snmp Tcp OutSegs): on loopback every segment is also received,
    so its delta over a run, per query, is the kernel TCP work a path costs (data and pure ACKs alike)."""
    with open("/proc/net/snmp") as f:
        rows = [ln.split() for ln in f if ln.startswith("Tcp:")]
    return int(rows[1][rows[0].index("OutSegs")])


def run_sysbench(workload: str, port: int, secs: int, threads: int, work: Path, label: str,
                 proxy_pid: int | None = None) -> dict:
    """One sysbench run; with proxy_pid also the proxy's CPU seconds over it (utime + stime, 10 ms ticks) and
    per query (the single loop's cost of a query, for the scaling projection in docs/architecture.md)."""
    cmd = sb_cmd(workload, port, f"--threads={threads}", f"--time={secs}", "--events=0", "--report-interval=0",
                 "--histogram=on", "--percentile=95", "run")
    outp = work / f"sb-{label}.out"
    cpu0 = cpu_s(proxy_pid) if proxy_pid else None
    segs0 = tcp_out_segments()
    t0 = time.monotonic()
    with open(outp, "wb") as out:
        p = spawn(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            p.wait(timeout=secs + 120)
        except subprocess.TimeoutExpired:
            pass
        finally:
            timed_out = p.poll() is None
            stop(p, signal.SIGKILL if timed_out else signal.SIGTERM, timeout=5)
    text = outp.read_text(errors="replace")
    r = parse_sysbench(text)
    r["rc"] = p.returncode
    r["wall_s"] = round(time.monotonic() - t0, 2)
    if r.get("queries"):
        r["tcp_segments_per_query"] = round((tcp_out_segments() - segs0) / r["queries"], 2)
    if proxy_pid:
        r["proxy_cpu_s"] = round(cpu_s(proxy_pid) - cpu0, 2)
        q = r.get("queries")
        r["proxy_us_per_query"] = round(r["proxy_cpu_s"] / q * 1e6, 1) if q else None
    r["failed"] = bool(timed_out or p.returncode != 0 or r["tps"] is None)
    if timed_out:
        r["failure"] = f"sysbench still running {secs + 120} s after start: killed"
    if r["failed"] or r["errors"] or r["reconnects"]:
        diag = [ln for ln in text.split("SQL statistics:")[0].splitlines()
                if re.search(r"FATAL|WARNING|ERROR|error|failed", ln)]
        r["output_tail"] = "\n".join(diag[:25]) if diag else "\n".join(text.splitlines()[-25:])
    return r


# --- strace ---------------------------------------------------------------------------------------------

def parse_strace_summary(text: str) -> dict:
    calls, total, errors = {}, None, None
    for line in text.splitlines():
        f = line.split()
        if len(f) < 5 or not re.match(r"^[\d.]+$", f[0]):
            continue
        name = f[-1]
        nums = f[1:-1]
        # columns: %time seconds usecs/call calls [errors] syscall (the total line too, in strace 6)
        if len(nums) < 3:
            continue
        if name == "total":
            total = int(nums[2])
            errors = int(nums[3]) if len(nums) >= 4 else 0
            continue
        calls[name] = int(nums[2])
    if total is None:
        total = sum(calls.values()) if calls else None
    return {"total_calls": total, "errors": errors, "calls": dict(sorted(calls.items(), key=lambda kv: -kv[1]))}


def strace_run(name: str, pid: int, port: int, secs: int, threads: int, work: Path) -> dict:
    summary = work / f"strace-{name}.txt"
    errlog = work / f"strace-{name}.err"
    with open(errlog, "wb") as err:
        st = spawn(["strace", "-c", "-f", "-p", str(pid), "-o", summary], stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 10
        while "attached" not in errlog.read_text(errors="replace"):
            if st.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"strace did not attach to {name} (pid {pid}): {tail(errlog)}")
            time.sleep(0.05)
        time.sleep(0.3)                                  # -f: let it attach to every thread
        sb = run_sysbench("oltp_point_select", port, secs, threads, work, f"strace-{name}")
    finally:
        stop(st, signal.SIGINT, timeout=30)               # detaches and writes the -c summary
    s = parse_strace_summary(summary.read_text(errors="replace") if summary.exists() else "")
    q = sb.get("queries") or 0
    s.update({"queries": q, "tps_under_strace": sb.get("tps"), "sysbench_failed": sb["failed"],
              "sysbench_errors": sb.get("errors"),
              "syscalls_per_query": round(s["total_calls"] / q, 2) if q and s["total_calls"] else None,
              "threads_traced": thread_count(pid)})
    for sc in ("read", "recvfrom", "write", "sendto", "writev", "sendmsg", "recvmsg", "readv", "epoll_wait",
               "epoll_ctl", "epoll_pwait", "splice"):
        if q and sc in s["calls"]:
            s.setdefault("per_query", {})[sc] = round(s["calls"][sc] / q, 2)
    return s


# --- idle connections -----------------------------------------------------------------------------------

def idle_connections(name: str, pid: int, port: int, n: int, tls_ca: Path | None = None) -> dict:
    import pymysql
    tls = dict(ssl_ca=str(tls_ca), ssl_verify_cert=True, ssl_verify_identity=False) if tls_ca else {}

    def one(_):
        try:
            return pymysql.connect(host=HOST, port=port, user=SB_USER, password=SB_PASSWORD, database=SB_DB,
                                   connect_timeout=60, read_timeout=60, write_timeout=60, autocommit=True, **tls)
        except Exception as e:  # noqa: BLE001 - counted and reported
            return e

    r = {"target": name, "requested": n}
    time.sleep(0.5)
    r["rss_before_kib"] = vm_rss_kib(pid)
    r["fds_before"] = fd_count(pid)
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=32) as ex:
        got = list(ex.map(one, range(n)))
    conns = [c for c in got if not isinstance(c, Exception)]
    errs = [c for c in got if isinstance(c, Exception)]
    r["open_s"] = round(time.monotonic() - t0, 2)
    r["opened"] = len(conns)
    r["connect_errors"] = len(errs)
    if errs:
        kinds = {}
        for e in errs:
            kinds[repr(e)[:200]] = kinds.get(repr(e)[:200], 0) + 1
        r["connect_error_kinds"] = kinds
    try:
        time.sleep(1.0)
        r["rss_after_kib"] = vm_rss_kib(pid)
        r["fds_after"] = fd_count(pid)
        bad = 0                                          # they are logged in and still usable
        step = max(1, len(conns) // 50)
        sample = conns[::step]
        for c in sample:
            try:
                with c.cursor() as cur:
                    cur.execute("SELECT 1")
                    if cur.fetchone() != (1,):
                        bad += 1
            except Exception:  # noqa: BLE001
                bad += 1
        r["sample_checked"], r["sample_failed"] = len(sample), bad
    finally:
        for c in conns:
            with contextlib.suppress(Exception):
                c.close()
    time.sleep(1.0)
    r["rss_after_close_kib"] = vm_rss_kib(pid)
    if r["opened"]:
        r["kib_per_conn"] = round((r["rss_after_kib"] - r["rss_before_kib"]) / r["opened"], 2)
    return r


# --- report ---------------------------------------------------------------------------------------------

def med(runs: list, key: str):
    vals = [r[key] for r in runs if not r["failed"] and r.get(key) is not None]
    return statistics.median(vals) if vals else None


def ratio(a, b):
    return a / b if a is not None and b else None


def f(v, fmt="{:.2f}", none="-"):
    return none if v is None else fmt.format(v)


def summarize(results: dict) -> dict:
    summary = {}
    for wl, by_target in results.items():
        m = {t: {"tps": med(runs, "tps"), "qps": med(runs, "qps"), "p95_ms": med(runs, "p95_ms"),
                 "p99_ms": med(runs, "p99_ms"), "proxy_us_per_query": med(runs, "proxy_us_per_query"),
                 "tcp_segments_per_query": med(runs, "tcp_segments_per_query"),
                 "errors": sum((r.get("errors") or 0) for r in runs),
                 "reconnects": sum((r.get("reconnects") or 0) for r in runs),
                 "failed_runs": sum(1 for r in runs if r["failed"]), "runs": len(runs)}
             for t, runs in by_target.items()}
        for t in m:
            m[t]["tps_vs_direct"] = ratio(m[t]["tps"], m.get("direct", {}).get("tps"))
            m[t]["tps_vs_haproxy"] = ratio(m[t]["tps"], m.get("haproxy", {}).get("tps"))
            m[t]["p99_vs_haproxy"] = ratio(m[t]["p99_ms"], m.get("haproxy", {}).get("p99_ms"))
        summary[wl] = m
    return summary


def print_tables(results: dict, summary: dict, args) -> None:
    for wl, m in summary.items():
        print(f"\n== {wl}: {args.threads} threads, {args.reps} reps x {args.time} s, interleaved; medians ==")
        hdr = (f"{'target':<15} {'TPS':>9} {'QPS':>10} {'p95 ms':>7} {'p99 ms':>7} {'TPS/direct':>10} "
               f"{'TPS/HAProxy':>11} {'p99/HAProxy':>11} {'cpu us/q':>8} {'segs/q':>6} {'errors':>6} {'reconn':>6} "
               f"{'failed':>6}")
        print(hdr)
        print("-" * len(hdr))
        for t in m:
            x = m[t]
            print(f"{t:<15} {f(x['tps'], '{:.1f}'):>9} {f(x['qps'], '{:.1f}'):>10} {f(x['p95_ms'], '{:.3f}'):>7} "
                  f"{f(x['p99_ms'], '{:.3f}'):>7} {f(x['tps_vs_direct']):>10} {f(x['tps_vs_haproxy']):>11} "
                  f"{f(x['p99_vs_haproxy']):>11} {f(x['proxy_us_per_query'], '{:.1f}'):>8} "
                  f"{f(x['tcp_segments_per_query'], '{:.1f}'):>6} {x['errors']:>6} "
                  f"{x['reconnects']:>6} "
                  f"{x['failed_runs']:>3}/{x['runs']}")
        print("  cpu us/q = the proxy process's CPU (user + sys, all threads) per query (10 ms ticks: a 20 s "
              "run\n  resolves it to well under 1 %)")
        print("  segs/q = TCP segments the host sent per query over the run (/proc/net/snmp OutSegs; on loopback "
              "each is\n  also received): data and pure ACKs of every hop, client, proxy and server alike")
        print("  errors = sysbench's ignored errors (deadlock 1213, lock wait timeout 1205, 1020: retried by "
              "sysbench, inherent to\n  oltp_read_write); failed = runs that stopped on another error")
        print("  per rep (raw; 'sb p95' = sysbench's own 95th percentile, a cross-check of the histogram one):")
        for rep in range(args.reps):
            for t in results[wl]:
                runs = [r for r in results[wl].get(t, []) if r["rep"] == rep]
                for r in runs:
                    flag = "  FAILED rc=%s" % r["rc"] if r["failed"] else ""
                    print(f"    rep {rep + 1} #{r['order'] + 1} {t:<15} TPS {f(r['tps'], '{:.1f}'):>9}  "
                          f"QPS {f(r['qps'], '{:.1f}'):>10}  p95 {f(r['p95_ms'], '{:.3f}'):>6}  "
                          f"p99 {f(r['p99_ms'], '{:.3f}'):>6}  sb p95 {f(r['sysbench_p95_ms']):>6}  max {f(r['lat_max_ms']):>7}  "
                          f"err {r['errors'] if r['errors'] is not None else '-'}  "
                          f"reconn {r['reconnects'] if r['reconnects'] is not None else '-'}{flag}")


def print_strace(st: dict) -> None:
    print("\n== syscalls per forwarded query (strace -c -f -p PID, oltp_point_select) ==")
    if st.get("skipped"):
        print(f"  skipped: {st['skipped']}")
        return
    for name in ("haproxy", "switchyard", "switchyard_base"):
        s = st.get(name)
        if s is None:
            continue
        if "error" in s:
            print(f"  {name:<11} failed: {s['error']}")
            continue
        top = ", ".join(f"{k} {v}" for k, v in list(s["calls"].items())[:6])
        print(f"  {name:<11} {f(s['syscalls_per_query']):>6} syscalls/query  ({s['total_calls']} calls / "
              f"{s['queries']} queries, {s['threads_traced']} thread(s), TPS under strace "
              f"{f(s['tps_under_strace'], '{:.0f}')})")
        print(f"  {'':<11} per query: " + ", ".join(f"{k} {v}" for k, v in s.get("per_query", {}).items()))
        print(f"  {'':<11} top: {top}")
    a, b = st.get("switchyard", {}).get("syscalls_per_query"), st.get("haproxy", {}).get("syscalls_per_query")
    if a and b:
        print(f"  switchyard / haproxy: {a / b:.2f}")


def print_rss(rss: dict) -> None:
    print("\n== RSS with idle client connections (VmRSS from /proc/PID/status) ==")
    for name in ("switchyard", "haproxy", "switchyard_tls"):
        r = rss.get(name)
        if r is None:
            continue
        if "error" in r:
            print(f"  {name:<11} failed: {r['error']}")
            continue
        mib = lambda k: r[k] / 1024  # noqa: E731
        line = (f"  {name:<11} before {mib('rss_before_kib'):7.1f} MiB   with {r['opened']}/{r['requested']} idle "
                f"connections {mib('rss_after_kib'):7.1f} MiB   after closing {mib('rss_after_close_kib'):7.1f} MiB"
                f"   ({f(r.get('kib_per_conn'))} KiB/conn, fds {r['fds_before']} -> {r['fds_after']}, "
                f"opened in {r['open_s']} s)")
        print(line)
        if name == "switchyard":
            ok = r["rss_after_kib"] <= RSS_TARGET_MIB * 1024
            print(f"  {'':<11} target <= {RSS_TARGET_MIB} MiB: {'met' if ok else 'NOT MET'}")
        if r["connect_errors"] or r.get("sample_failed"):
            print(f"  {'':<11} connect errors {r['connect_errors']} {r.get('connect_error_kinds', '')}; "
                  f"{r.get('sample_failed')} of {r.get('sample_checked')} sampled connections failed SELECT 1")


# --- main -----------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build"), help="build dir with switchyardd and switchyardctl")
    ap.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 3; --quick 2)")
    ap.add_argument("--time", type=int, default=None, help="seconds per sysbench run (default 20; --quick 5)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 5 s x 2 reps")
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--proxy-threads", type=int, default=1,
                    help="N > 1: also a switchyardd with proxy_threads = N, side by side with the single loop")
    ap.add_argument("--compare-build", default=None,
                    help="build dir of another switchyardd (e.g. before a change): target switchyard_base")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--idle-conns", type=int, default=2000)
    ap.add_argument("--strace-secs", type=int, default=5)
    ap.add_argument("--no-strace", action="store_true")
    ap.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, sysbench outputs)")
    args = ap.parse_args()
    args.reps = args.reps if args.reps is not None else (2 if args.quick else 3)
    args.time = args.time if args.time is not None else (5 if args.quick else 20)
    workloads = [w for w in args.workloads.split(",") if w]
    mt = f"switchyard_{args.proxy_threads}t" if args.proxy_threads > 1 else None
    base = "switchyard_base" if args.compare_build else None
    targets = TARGETS + ((mt,) if mt else ()) + ((base,) if base else ())
    build = Path(args.build).resolve()

    interrupt_on_term_signals()                          # before sandbox: it leaves non-default handlers alone
    nofile = raise_nofile()                              # inherited by mariadbd, haproxy and switchyardd
    for prog in ("sysbench",):
        if not shutil.which(prog):
            print(f"proxy_bench: {prog} not found (scripts/install-deps.sh)", file=sys.stderr)
            return 2

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    work = Path(tempfile.mkdtemp(prefix="sy-bench-", dir="/tmp"))   # short: admin socket path < 107
    report = {
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "args": vars(args) | {"workloads": workloads},
        "host": {"nproc": os.cpu_count(), "loadavg_start": os.getloadavg(), "nofile": list(nofile),
                 "uname": " ".join(os.uname())},
        "versions": {"sysbench": tool_version(["sysbench", "--version"]),
                     "haproxy": tool_version([shutil.which("haproxy") or "/usr/sbin/haproxy", "-v"]),
                     "mariadbd": tool_version([shutil.which("mariadbd") or "/usr/sbin/mariadbd", "--version"]),
                     "strace": tool_version(["strace", "-V"]) if shutil.which("strace") else None},
        "sysbench": {"tables": SB_TABLES, "table_size": SB_TABLE_SIZE, "threads": args.threads,
                     "time_s": args.time, "reps": args.reps},
        "results": {}, "summary": {}, "strace": {}, "rss": {}, "problems": [],
    }
    problems = report["problems"]
    results = report["results"]
    sy = hp = sy_mt = sy_base = None
    rc = 0
    print(f"proxy_bench: {len(workloads)} workloads x {len(targets)} targets x {args.reps} reps x {args.time} s, "
          f"{args.threads} threads; work dir {work}", flush=True)
    try:
        with sandbox.servers(2) as (business, dr):
            print(f"  MariaDB business {HOST}:{business.port}, dr {HOST}:{dr.port}", flush=True)
            business.sql(f"CREATE DATABASE {SB_DB};"
                         f"CREATE USER '{SB_USER}'@'%' IDENTIFIED BY '{SB_PASSWORD}';"
                         f"GRANT ALL ON {SB_DB}.* TO '{SB_USER}'@'%'")
            t0 = time.monotonic()
            r = subprocess.run(sb_cmd("oltp_read_write", business.port, "--threads=4", "prepare"),
                               capture_output=True, text=True, timeout=600)
            if r.returncode != 0:
                raise RuntimeError(f"sysbench prepare failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
            print(f"  sbtest prepared directly ({SB_TABLES} x {SB_TABLE_SIZE} rows, "
                  f"{time.monotonic() - t0:.1f} s)", flush=True)

            hp = HAProxy(work, business.port).start()
            sy = Switchyard(build, work, business, dr).start()
            ports = {"direct": business.port, "haproxy": hp.port, "switchyard": sy.port}
            pids = {"haproxy": hp.proc.pid, "switchyard": sy.proc.pid}
            if mt:
                (work / mt).mkdir()
                sy_mt = Switchyard(build, work / mt, business, dr, args.proxy_threads).start()
                ports[mt], pids[mt] = sy_mt.port, sy_mt.proc.pid
                report["targets"] = {mt: f"{HOST}:{sy_mt.port}"}
                print(f"  {mt}: switchyardd {HOST}:{sy_mt.port} (pid {sy_mt.proc.pid}, "
                      f"{thread_count(sy_mt.proc.pid)} threads)", flush=True)
            if base:
                (work / base).mkdir()
                sy_base = Switchyard(Path(args.compare_build).resolve(), work / base, business, dr).start()
                ports[base], pids[base] = sy_base.port, sy_base.proc.pid
                report["targets"] = report.get("targets", {}) | {base: f"{HOST}:{sy_base.port}"}
                print(f"  {base}: switchyardd of {args.compare_build} {HOST}:{sy_base.port} "
                      f"(pid {sy_base.proc.pid})", flush=True)
            report["targets"] = report.get("targets", {}) | {"direct": f"{HOST}:{business.port}", "haproxy": f"{HOST}:{hp.port}",
                                 "switchyard": f"{HOST}:{sy.port}"}
            report["haproxy_threads"] = thread_count(hp.proc.pid)
            report["switchyard_threads"] = thread_count(sy.proc.pid)
            report["switchyard_rss_fresh_kib"] = vm_rss_kib(sy.proc.pid)
            print(f"  haproxy {HOST}:{hp.port} (pid {hp.proc.pid}, {report['haproxy_threads']} threads), "
                  f"switchyardd {HOST}:{sy.port} (pid {sy.proc.pid}, {report['switchyard_threads']} threads, "
                  f"RSS {report['switchyard_rss_fresh_kib'] / 1024:.1f} MiB)", flush=True)

            def check_alive():
                for name, obj in (("haproxy", hp), ("switchyard", sy)) + (((mt, sy_mt),) if mt else ()) + \
                        (((base, sy_base),) if base else ()):
                    if obj.proc.poll() is not None:
                        raise RuntimeError(f"{name} exited with {obj.proc.returncode} during the benchmark:\n"
                                           f"{tail(obj.log)}")

            for wl in workloads:
                results[wl] = {t: [] for t in targets}
                warm = min(3, args.time)
                print(f"\n-- {wl}: warm-up {warm} s per target", flush=True)
                report.setdefault("warmup", {})[wl] = {}
                for t in targets:
                    w = run_sysbench(wl, ports[t], warm, args.threads, work, f"{wl}-warm-{t}")
                    report["warmup"][wl][t] = w
                    print(f"   warm-up {t:<11} TPS {f(w['tps'], '{:.1f}')}  err {w['errors']}"
                          f"{'  FAILED' if w['failed'] else ''}", flush=True)
                    if w["failed"] or (t != "direct" and w["reconnects"]):
                        problems.append({"where": f"{wl} warm-up via {t}", "run": w})
                for rep in range(args.reps):
                    for i, t in rotated(targets, rep):
                        check_alive()
                        res = run_sysbench(wl, ports[t], args.time, args.threads, work, f"{wl}-{rep}-{t}",
                                           pids.get(t))
                        res.update(rep=rep, order=i)
                        results[wl][t].append(res)
                        print(f"   rep {rep + 1}/{args.reps} {t:<15} TPS {f(res['tps'], '{:.1f}'):>9}  "
                              f"p95 {f(res['p95_ms'], '{:.3f}')}  p99 {f(res['p99_ms'], '{:.3f}')}  err {res['errors']}  "
                              f"reconn {res['reconnects']}{'  FAILED rc=%s' % res['rc'] if res['failed'] else ''}",
                              flush=True)
                        if res["failed"] or (t != "direct" and res["reconnects"]):
                            problems.append({"where": f"{wl} rep {rep + 1} via {t}", "run": res})
                        if res["failed"] and res.get("output_tail"):
                            print("     " + res["output_tail"].replace("\n", "\n     "), flush=True)
            check_alive()
            report["summary"] = summarize(results)
            print_tables(results, report["summary"], args)

            # syscalls per forwarded query
            if args.no_strace:
                report["strace"] = {"skipped": "--no-strace"}
            elif not shutil.which("strace"):
                report["strace"] = {"skipped": "strace is not installed (Debian package strace)"}
            else:
                for name in ("haproxy", "switchyard") + ((base,) if base else ()):
                    try:
                        report["strace"][name] = strace_run(name, pids[name], ports[name], args.strace_secs,
                                                            args.threads, work)
                    except Exception as e:  # noqa: BLE001 - report and go on
                        report["strace"][name] = {"error": str(e)}
                        problems.append({"where": f"strace {name}", "error": str(e)})
                    check_alive()
            print_strace(report["strace"])

            # RSS with idle connections: one proxy at a time (the server allows 3000 connections); the TLS row
            # is clients that TLS with switchyardd (HAProxy in TCP mode would only pass TLS through)
            # on a fresh switchyardd of its own (the plain row's freed memory would be reused)
            for name in ("switchyard", "haproxy", "switchyard_tls"):
                try:
                    ca = None
                    if name == "switchyard_tls":
                        (work / name).mkdir()
                        sy_tls = Switchyard(build, work / name, business, dr).start()
                        ports[name], pids[name], ca = sy_tls.port, sy_tls.proc.pid, sy_tls.work / "proxy.pem"
                    r = idle_connections(name, pids[name], ports[name], args.idle_conns, ca)
                    report["rss"][name] = r
                    if r["connect_errors"] or r.get("sample_failed"):
                        problems.append({"where": f"idle connections via {name}", "result": r})
                except Exception as e:  # noqa: BLE001
                    report["rss"][name] = {"error": repr(e)}
                    problems.append({"where": f"idle connections via {name}", "error": repr(e)})
                check_alive()
            print_rss(report["rss"])

            report["switchyard_rss_end_kib"] = vm_rss_kib(sy.proc.pid)
            report["haproxy_exit"] = hp.stop()
            switchyard_log_summary(sy, report, problems, "warn")
    except (KeyboardInterrupt, Interrupted) as e:
        rc = on_interrupt("proxy_bench", e, report)
    except Exception as e:  # noqa: BLE001 - still write what we have
        logs = {"haproxy": hp.log if hp else None, "switchyard": sy.log if sy else None}
        rc = on_crash(e, report, logs, keep=60, show=0)
    finally:
        stop_all_children()             # newest first: sysbench/strace, then switchyardd, then haproxy (SIGTERM)
        if report["results"] and not report["summary"]:
            report["summary"] = summarize(report["results"])
        write_report(report, args.results_dir, f"proxy-{stamp}.json")
        remove_work_dir(work, args.keep)
    return report_problems("proxy_bench", problems, rc)


if __name__ == "__main__":
    sys.exit(main())
