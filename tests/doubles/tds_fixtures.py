"""Start and stop SQL Server doubles from tests (test code, never shipped; README.md beside this file).

    from tds_fixtures import running_double
    with running_double() as d:            # d.host, d.port, d.user, d.password, d.cert, d.log()
        ...

Like scripts/sandbox.py: a temp dir per double (/tmp/sy-mssql-XXXXXXXX), 127.0.0.1 and a free port picked by
the double itself, its own process group, SIGKILLed by the kernel if the test process dies (parent-death
signal; PostgreSQL dies with the double the same way), stopped with SIGTERM (then SIGKILL of its group) and
the dir removed, also when the test fails. The interpreter and the Go client come from
scripts/install-tds-double.sh (cached)."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import shutil
import signal
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
READY_TIMEOUT_S = 40.0
_live: set = set()


@functools.lru_cache(maxsize=None)
def install_paths() -> dict[str, str]:
    """{'python': venv python with sqlglot, 'go_mssql': the go-mssqldb client}, built once per machine."""
    r = subprocess.run([os.path.join(ROOT, "scripts", "install-tds-double.sh"), "--print-paths"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    if r.returncode:
        raise RuntimeError("scripts/install-tds-double.sh failed:\n" + r.stderr)
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def _preexec():
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    parent = os.getpid()

    def fn():
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)      # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)
    return fn


class Double:
    def __init__(self, user: str, password: str, extra_args: list[str]):
        self.user, self.password = user, password
        self.dir = tempfile.mkdtemp(prefix="sy-mssql-")
        os.chmod(self.dir, 0o711)        # as root, PostgreSQL runs as `postgres` and must reach data/pg
        self.data = os.path.join(self.dir, "data")
        self.ready_file = os.path.join(self.dir, "ready")
        self.log_path = os.path.join(self.dir, "double.log")
        self.cert = os.path.join(self.data, "tls.crt")
        self.host, self.port = "127.0.0.1", 0
        self.proc = None
        self.args = extra_args

    def start(self) -> "Double":
        """Starts the double; again after kill9(): same data, same port."""
        py = install_paths()["python"]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.ready_file)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [py, os.path.join(HERE, "tds_server.py"), "--port", str(self.port), "--data", self.data,
                 "--admin-user", self.user, "--admin-password", self.password, "--ready-file", self.ready_file]
                + self.args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_preexec())
        _live.add(self)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if os.path.exists(self.ready_file):
                _word, self.host, port = open(self.ready_file).read().split()
                self.port = int(port)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        log = self.log()
        self.stop()
        raise RuntimeError(f"SQL Server double did not start:\n{log[-3000:]}")

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def kill9(self) -> None:
        """SIGKILL of the double's process group (its PostgreSQL dies with it); the data stays for start()."""
        p, self.proc = self.proc, None
        if p is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
        pidfile = os.path.join(self.data, "pg", "postmaster.pid")
        deadline = time.monotonic() + 10          # PostgreSQL's own processes end once their postmaster is gone
        while time.monotonic() < deadline and os.path.exists(pidfile):
            try:
                os.kill(int(open(pidfile).readline()), 0)
            except (ProcessLookupError, ValueError, OSError):
                break
            time.sleep(0.05)

    def stop(self) -> None:
        p, self.proc = self.proc, None
        _live.discard(self)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def running_double(user: str = "sa", password: str = "Sy-double-1", force_encryption: bool = False,
                   cdc_delay: float = 0.3, no_tls: bool = False):
    args = ["--cdc-delay", str(cdc_delay)]
    if force_encryption:
        args.append("--force-encryption")
    if no_tls:
        args.append("--no-tls")
    d = Double(user, password, args).start()
    try:
        yield d
    finally:
        d.stop()


@atexit.register
def _stop_all() -> None:
    for d in list(_live):
        with contextlib.suppress(Exception):
            d.stop()
