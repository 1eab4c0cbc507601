"""Integration fixtures: sandbox MariaDB servers and switchyardd daemons (TESTING.md, CONTRACT.md).

Run with Debian's interpreter:  /usr/bin/python3 -m pytest tests/integration
- `mariadb_pair` (session): two sandbox servers, .business (server_id 10, domain 1) and .dr (11, 2).
  A test that kills one need not restart it: the next test using the pair finds it restarted.
- `daemon` (function): factory starting build/switchyardd on an ini written in tmp_path; every daemon is
  stopped at teardown and must exit 0 on SIGTERM (unless the test killed it or observed its exit).
- `mongo_daemon` (function): the same for an `engine = mongodb` pair in front of `ferretdb_pair`.
- `connect` (function): PyMySQL connections to a server or through a daemon, closed at teardown.
- `real_client` (function): real Java (JDBC) / Go (database/sql) client processes (clients.py), driven one
  command at a time, closed at teardown.
A failing test gets its daemons' logs (and the error log of a sandbox server that died) in its report. At
the end of the session, any mariadbd/switchyardd the suite started and left running fails the run.
With SY_TSAN=1 (a ThreadSanitizer build, `make integration-tsan`) each daemon writes its reports to
<work>/tsan.<pid>, and a test whose daemons wrote any fails at teardown with the reports in its output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import pytest

try:
    import pymysql  # noqa: F401 - fail early with a hint rather than deep inside a test
except ImportError as e:
    raise pytest.UsageError(f"{e}: run the suite with Debian's /usr/bin/python3 (python3-pymysql), "
                            f"not {sys.executable}; scripts/install-deps.sh installs it") from None

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import sandbox  # noqa: E402
from clients import RealClient  # noqa: E402

BUILD_DIR = Path(os.environ.get("SY_BUILD_DIR") or ROOT / "build")
SWITCHYARDD = BUILD_DIR / "switchyardd"
SWITCHYARDCTL = BUILD_DIR / "switchyardctl"
ADMIN_USER = sandbox.ADMIN_USER
ADMIN_PASSWORD = sandbox.ADMIN_PASSWORD
DAEMON_START_TIMEOUT_S = float(os.environ.get("SY_DAEMON_START_TIMEOUT", "30"))
DAEMON_STOP_TIMEOUT_S = 15.0
TSAN = os.environ.get("SY_TSAN") == "1"
TSAN_SUPP = ROOT / "tsan.supp"
DEFAULT_TEST_TIMEOUT_S = 300          # per test, unless --timeout / PYTEST_TIMEOUT / ini timeout is set
LOG_TAIL_LINES = 400

_daemon_pids: list = []               # (pid, ini path) of every switchyardd this session started
_live_daemons: set = set()
_sock_dirs: set = set()               # short admin-socket dirs of daemons not yet finalized


class MariaDBPair(NamedTuple):
    business: sandbox.MariaDB
    dr: sandbox.MariaDB


class FerretDBPair(NamedTuple):
    business: sandbox.FerretDB
    dr: sandbox.FerretDB


class DaemonError(AssertionError):
    """The daemon did not start, did not answer, or exited badly (its log is attached to the report)."""


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    rows = text.splitlines()
    head = f"... ({len(rows) - lines} earlier lines in {path})\n" if len(rows) > lines else ""
    return head + "\n".join(rows[-lines:])


def _ini_value(v) -> str:
    if v is True:
        return "on"
    if v is False:
        return "off"
    return str(v)


def _endpoint(x) -> str:
    """A sandbox server or a "host:port" string, as an ini value."""
    return x if isinstance(x, str) else f"{x.host}:{x.port}"


class Daemon:
    """One switchyardd process started from an ini file; see the `daemon` fixture."""

    host = "127.0.0.1"

    def __init__(self, ini: Path, admin_socket: str, log: Path, cwd: Path, env: dict, sock_dir: str):
        self.ini = ini
        self.admin_socket = admin_socket
        self.log_path = log
        self.cwd = cwd
        self.env = env
        self._sock_dir = sock_dir              # the short /tmp/sy-d-XXXX dir holding admin.sock
        _sock_dirs.add(sock_dir)
        self._proc: subprocess.Popen | None = None
        self._observed = True                  # exit seen by the test (kill9/wait/stop) or never started
        self.status_at_start: dict | None = None

    def __repr__(self) -> str:
        pid = self._proc.pid if self._proc else None
        return f"Daemon(pid={pid} ini={self.ini})"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # lifecycle
    def start(self, wait: bool = True, timeout: float = DAEMON_START_TIMEOUT_S) -> "Daemon":
        if not SWITCHYARDD.exists():
            pytest.fail(f"{SWITCHYARDD} is missing: build it first (cmake -S . -B build && cmake --build build)"
                        f" or point SY_BUILD_DIR at a build directory", pytrace=False)
        if self.is_running():
            raise DaemonError(f"{self!r} is already running")
        if self._proc is not None and not self._observed:
            self._observed = True
            raise DaemonError(f"switchyardd exited unexpectedly with {self._proc.returncode} before this "
                              f"start (log: {self.log_path})")
        with open(self.log_path, "ab") as log:
            log.write(f"==== {time.strftime('%H:%M:%S')} start {SWITCHYARDD} -c {self.ini} --foreground\n".encode())
            log.flush()
            self._proc = subprocess.Popen([str(SWITCHYARDD), "-c", str(self.ini), "--foreground"],
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                          cwd=self.cwd, env=self.env, start_new_session=True,
                                          preexec_fn=sandbox.preexec_kill_with_parent(os.getpid()))
        _daemon_pids.append((self._proc.pid, str(self.ini)))
        _live_daemons.add(self)
        self._observed = False
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = DAEMON_START_TIMEOUT_S) -> dict:
        """Poll the admin socket until `status` answers ok; returns the status result."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            if self._proc.poll() is not None:
                self._observed = True
                raise DaemonError(f"switchyardd exited with {self._proc.returncode} before answering status "
                                  f"(log: {self.log_path})")
            try:
                reply = self.admin("status", _timeout=5)
                if reply.get("ok"):
                    self.status_at_start = reply["result"]
                    return reply["result"]
                last = reply
            except (OSError, ValueError) as e:          # not listening yet, or a partial line
                last = e
            if time.monotonic() > deadline:
                raise DaemonError(f"switchyardd not answering status on {self.admin_socket} after {timeout:.0f}s"
                                  f" (last: {last!r}) (log: {self.log_path})")
            time.sleep(0.05)

    def stop(self, timeout: float = DAEMON_STOP_TIMEOUT_S) -> int:
        """SIGTERM and wait; asserts the daemon exits 0 (a clean shutdown is part of the contract)."""
        if self._proc is None:
            return 0
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._killpg()
                self._proc.wait(10)
                self._observed = True
                raise DaemonError(f"switchyardd did not exit within {timeout:.0f}s of SIGTERM (killed; "
                                  f"log: {self.log_path})")
        _live_daemons.discard(self)
        rc = self._proc.returncode
        if self._observed:                              # the test already saw it exit (kill9/wait)
            return rc
        self._observed = True
        if rc != 0:
            raise DaemonError(f"switchyardd exited with {rc} (expected 0 on SIGTERM) (log: {self.log_path})")
        return rc

    def kill9(self) -> None:
        """SIGKILL the daemon's process group and reap it; teardown will not assert on its exit code."""
        if self._proc is None:
            return
        self._killpg()
        self._proc.wait(10)
        self._observed = True
        _live_daemons.discard(self)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the daemon to exit by itself (failpoint, bad config); returns its exit code."""
        try:
            rc = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise DaemonError(f"switchyardd still running after {timeout:.0f}s (log: {self.log_path})") from None
        self._observed = True
        _live_daemons.discard(self)
        return rc

    def restart(self, wait: bool = True) -> "Daemon":
        """stop() (asserting exit 0) if running, then start again with the same ini and state_dir.

        With listen port 0 the daemon picks a new port: read .port again."""
        if self.is_running():
            self.stop()
        return self.start(wait=wait)

    def _killpg(self) -> None:
        # Only while the leader is unreaped (running or zombie): its pgid cannot have been reused.
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    def finalize(self) -> None:
        """Fixture teardown: stop if running (asserting exit 0), flag an unexpected exit, remove the sock dir."""
        try:
            if self._proc is not None and not self._observed:
                if self._proc.poll() is None:
                    self.stop()
                else:
                    rc = self._proc.returncode
                    self._observed = True
                    raise DaemonError(f"switchyardd exited unexpectedly with {rc} during the test "
                                      f"(log: {self.log_path})")
        finally:
            if self.is_running():
                self.kill9()
            _live_daemons.discard(self)
            shutil.rmtree(self._sock_dir, ignore_errors=True)
            _sock_dirs.discard(self._sock_dir)

    # admin socket (CONTRACT.md: one JSON object per line each way)
    def admin(self, cmd: str, _timeout: float = 60.0, **args) -> dict:
        """Send {"cmd": cmd, "args": {...}} and return the parsed reply {"ok": ..., "result"|"error": ...}."""
        req = {"cmd": cmd}
        if args:
            req["args"] = args
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(_timeout)
            s.connect(self.admin_socket)
            s.sendall(json.dumps(req).encode() + b"\n")
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(65536)
                if not chunk:
                    raise ConnectionError(f"admin socket closed before a full reply line (got {buf[:200]!r})")
                buf += chunk
        return json.loads(buf.split(b"\n", 1)[0])

    def admin_ok(self, cmd: str, _timeout: float = 60.0, **args):
        """admin(), asserting ok; returns the result."""
        reply = self.admin(cmd, _timeout=_timeout, **args)
        assert reply.get("ok") is True, f"{cmd} {args} failed: {reply}"
        return reply.get("result")

    def status(self, pair: str | None = None) -> dict:
        return self.admin_ok("status", **({"pair": pair} if pair else {}))

    def pair_status(self, name: str | None = None) -> dict:
        pairs = self.status()["pairs"]
        if name is None:
            return pairs[0]
        return next(p for p in pairs if p["name"] == name)

    def listen_port(self, pair: str | None = None) -> int:
        return int(self.pair_status(pair)["listen"].rsplit(":", 1)[1])

    @property
    def port(self) -> int:
        """Port of the first pair's listener, from `status` (port 0 in the ini: the daemon picks it)."""
        return self.listen_port()

    def ctl(self, *args, timeout: float = 60.0, check: bool = False, input: str | None = None):
        """Run `switchyardctl -s SOCK ARGS...`; returns CompletedProcess (text stdout/stderr)."""
        if not SWITCHYARDCTL.exists():
            pytest.fail(f"{SWITCHYARDCTL} is missing: build it first or set SY_BUILD_DIR", pytrace=False)
        return subprocess.run([str(SWITCHYARDCTL), "-s", self.admin_socket, *map(str, args)],
                              capture_output=True, text=True, timeout=timeout, check=check, input=input,
                              env=self.env)

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace") if Path(self.log_path).exists() else ""

    def connect(self, user: str = ADMIN_USER, password: str = ADMIN_PASSWORD, database: str | None = None,
                **kw):
        """A PyMySQL connection through the proxy (the first pair's listener)."""
        return pymysql_connect(self.host, self.port, user, password, database, **kw)


def pymysql_connect(host: str, port: int, user: str = ADMIN_USER, password: str = ADMIN_PASSWORD,
                    database: str | None = None, **kw):
    import pymysql
    kw.setdefault("connect_timeout", 10)
    kw.setdefault("read_timeout", 60)
    kw.setdefault("write_timeout", 60)
    kw.setdefault("autocommit", True)
    return pymysql.connect(host=host, port=port, user=user, password=password, database=database, **kw)


def _kill_live_daemons() -> None:
    for d in list(_live_daemons):
        with contextlib.suppress(Exception):
            d.kill9()
    for path in list(_sock_dirs):
        shutil.rmtree(path, ignore_errors=True)


sandbox.register_cleanup(_kill_live_daemons)     # SIGTERM/SIGHUP/exit of pytest: no daemon left behind


# --- fixtures ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def mariadb_pair():
    """Two sandbox servers for the whole session: business (server_id 10, domain 1) and dr (11, 2)."""
    with sandbox.servers(2) as (business, dr):
        yield MariaDBPair(business, dr)


@pytest.fixture(scope="session")
def ferretdb_pair():
    """Two FerretDB servers for the whole session (business, dr): SQLite handler, replica set rs0, SCRAM
    auth with the admin user, local.oplog.rs created on each. pymongo 4 clients: .client(); pymongo 3.11:
    sandbox.run_pymongo3 (a child process; scripts/install-ferretdb.sh says why)."""
    business, dr = sandbox.start_ferretdb_pair()
    try:
        yield FerretDBPair(business, dr)
    finally:
        for s in (business, dr):
            s.stop()


@pytest.fixture(autouse=True)
def _ferretdb_pair_alive(request):
    """Restart a FerretDB pair server an earlier test killed (same port and data), before a test using it."""
    if "ferretdb_pair" in request.fixturenames:
        for s in request.getfixturevalue("ferretdb_pair"):
            if not s.is_alive():
                s.start()


@pytest.fixture(autouse=True)
def _mariadb_pair_alive(request):
    """Restart a pair server an earlier test killed, before a test that uses the pair runs; and business
    writable again: a test that ended after a failover leaves it fenced (read_only), as the product should,
    and a test that talks to business before its daemon makes it the active side would fail with 1290."""
    if "mariadb_pair" in request.fixturenames:
        pair = request.getfixturevalue("mariadb_pair")
        for s in pair:
            if not s.is_alive():
                s.start()
        pair.business.sql("SET GLOBAL read_only = OFF")


@pytest.fixture
def daemon(request, tmp_path):
    """Factory: daemon(**pair_keys) -> Daemon, started and answering `status`.

    daemon(pair="demo", business=None, dr=None, global_opts=None, extra_ini="", env=None, wait=True,
           **pair_keys)
      business/dr   sandbox servers or "host:port" strings (default: the mariadb_pair fixture's)
      pair_keys     override or add [pair NAME] keys (None drops a key; True/False -> on/off); defaults:
                    engine=mariadb listen=127.0.0.1:0 admin_user/admin_password retry_seconds=3
      global_opts   override [switchyard] keys (admin_socket, state_dir, log_level=debug; proxy_threads from
                    $SY_PROXY_THREADS when set, so a whole file can run over worker loops)
      extra_ini     raw text appended to the ini (more pairs, deliberate mistakes)
      env           extra environment, e.g. {"SY_FAILPOINT": "after_epoch_persist"}
      wait=False    return right after spawning (config-error tests: d.wait() then d.log())
    """
    made: list = []
    request.node._sy_daemons = made

    def factory(*, pair: str = "demo", business=None, dr=None, global_opts: dict | None = None,
                extra_ini: str = "", env: dict | None = None, wait: bool = True, **pair_keys) -> Daemon:
        if business is None or dr is None:
            mp = request.getfixturevalue("mariadb_pair")
            business = business if business is not None else mp.business
            dr = dr if dr is not None else mp.dr
        n = len(made)
        work = tmp_path / f"daemon{n}"
        (work / "state").mkdir(parents=True)
        sock_dir = tempfile.mkdtemp(prefix="sy-d-", dir="/tmp")          # admin socket path must be short
        admin_socket = os.path.join(sock_dir, "admin.sock")
        glob = {"admin_socket": admin_socket, "state_dir": str(work / "state"), "log_level": "debug"}
        if os.environ.get("SY_PROXY_THREADS"):   # run any test's daemons with worker loops (proxy_threads)
            glob["proxy_threads"] = int(os.environ["SY_PROXY_THREADS"])
        glob.update(global_opts or {})
        password = getattr(business, "admin_password", ADMIN_PASSWORD)
        keys = {"engine": "mariadb", "listen": "127.0.0.1:0", "business": _endpoint(business),
                "dr": _endpoint(dr), "admin_user": getattr(business, "admin_user", ADMIN_USER),
                "admin_password": password, "retry_seconds": 3}
        keys.update(pair_keys)
        lines = ["[switchyard]"] + [f"{k} = {_ini_value(v)}" for k, v in glob.items() if v is not None]
        lines += ["", f"[pair {pair}]"] + [f"{k} = {_ini_value(v)}" for k, v in keys.items() if v is not None]
        ini = work / "switchyard.ini"
        ini.write_text("\n".join(lines) + "\n" + (extra_ini + "\n" if extra_ini else ""))
        denv = {**os.environ, **(env or {})}
        if TSAN:        # reports go to files the teardown checks: one is enough to fail the test
            denv["TSAN_OPTIONS"] = (f"log_path={work / 'tsan'} suppressions={TSAN_SUPP} exitcode=66 "
                                    f"second_deadlock_stack=1 history_size=4 {denv.get('TSAN_OPTIONS', '')}")
        d = Daemon(ini, glob["admin_socket"], work / "switchyardd.log", work, denv, sock_dir)
        made.append(d)
        return d.start(wait=wait)

    yield factory
    errors = []
    for d in made:
        try:
            d.finalize()
        except AssertionError as e:
            errors.append(str(e))
        for report in sorted(d.cwd.glob("tsan.*")):        # SY_TSAN: any report fails the test
            errors.append(f"ThreadSanitizer report {report}:\n{_tail(report, 200)}")
        illegal = [ln for ln in d.log().splitlines() if "illegal transition" in ln]
        if illegal:                                         # proxy/mysql_session.c sess_next[]: our bug
            errors.append("switchyardd made an illegal session state transition:\n" + "\n".join(illegal[:10]))
    if errors:
        pytest.fail("\n\n".join(errors), pytrace=False)


@pytest.fixture
def mongo_daemon(daemon, ferretdb_pair):
    """Factory: mongo_daemon(**daemon_kw) -> Daemon with an `engine = mongodb` pair in front of the
    ferretdb_pair fixture's servers (business, dr); anything else as for `daemon`."""

    def factory(**kw) -> Daemon:
        kw.setdefault("engine", "mongodb")
        kw.setdefault("business", ferretdb_pair.business)
        kw.setdefault("dr", ferretdb_pair.dr)
        return daemon(**kw)

    return factory


@pytest.fixture
def connect():
    """connect(target, user=ADMIN_USER, password=ADMIN_PASSWORD, database=None, **pymysql_kw).

    target: a sandbox server (direct) or a Daemon (through the proxy) -- anything with .host and .port.
    Connections are closed at teardown."""
    conns = []

    def _connect(target, user: str = ADMIN_USER, password: str = ADMIN_PASSWORD, database: str | None = None,
                 **kw):
        c = pymysql_connect(target.host, target.port, user, password, database, **kw)
        conns.append(c)
        return c

    yield _connect
    for c in conns:
        with contextlib.suppress(Exception):
            c.close()


@pytest.fixture
def real_client(request):
    """real_client(kind, target, user=ADMIN_USER, password=ADMIN_PASSWORD, database=None, **kw) -> RealClient.

    kind: "java-mariadb" | "java-mysql" | "go"; target: a sandbox server (direct) or a Daemon (through the
    proxy) -- anything with .host and .port; kw: RealClient's init_sql, extra, pool, timeout. Every client is
    closed (its process reaped) at teardown; a failing test gets each client's stderr in its report."""
    made: list = []
    request.node._sy_clients = made

    def factory(kind: str, target, user: str = ADMIN_USER, password: str = ADMIN_PASSWORD,
                database: str | None = None, **kw) -> RealClient:
        c = RealClient(kind, target.host, target.port, user, password, database, **kw)
        made.append(c)
        return c

    yield factory
    for c in made:
        c.close()


# --- hooks ------------------------------------------------------------------------------------------------

def pytest_collection_modifyitems(config, items):
    """A per-test timeout (TESTING.md) unless the run sets one (--timeout, PYTEST_TIMEOUT, ini timeout)."""
    try:
        configured = (config.getoption("timeout") or os.environ.get("PYTEST_TIMEOUT")
                      or config.getini("timeout"))
    except (ValueError, KeyError):              # pytest-timeout not installed: nothing to configure
        return
    if configured:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TEST_TIMEOUT_S))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach each daemon's log (tail) and the error log of any sandbox server that died."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for i, d in enumerate(getattr(item, "_sy_daemons", ())):
        rep.sections.append((f"switchyardd #{i} log ({d.log_path})", _tail(d.log_path)))
    for c in getattr(item, "_sy_clients", ()):
        err = c.stderr()
        if err.strip():
            rep.sections.append((f"{c!r} stderr", err[-8000:]))
    pair = item.funcargs.get("mariadb_pair") if hasattr(item, "funcargs") else None
    for s in pair or ():
        if s.dir and not s.is_alive():
            rep.sections.append((f"mariadbd {s.index} (not running) error log", _tail(s.error_log, 60)))
    fpair = item.funcargs.get("ferretdb_pair") if hasattr(item, "funcargs") else None
    for s in fpair or ():
        if s.dir:
            rep.sections.append((f"ferretdb {s.index} log ({s.log_path})", _tail(Path(s.log_path), 60)))


@pytest.hookimpl(trylast=True)          # after the runner's own sessionfinish has torn fixtures down
def pytest_sessionfinish(session, exitstatus):
    """Fail the run if a mariadbd or switchyardd this suite started is still running (then kill it)."""
    left = [(pid, "switchyardd") for pid, ini in _daemon_pids if sandbox.pid_alive(pid, ini)]
    left += [(pid, "mariadbd") for pid in sandbox.leftover_pids()]
    if not left:
        return
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    msg = ", ".join(f"{name} pid {pid}" for pid, name in left)
    sys.stderr.write(f"\nERROR: processes started by the suite were still running at the end (killed): {msg}\n")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
