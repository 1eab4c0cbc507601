#!/usr/bin/python3
"""Throwaway MariaDB servers for tests, benchmarks and the demo (TESTING.md).

Each server lives in a short temp dir (/tmp/sy-XXXXXXXX: data/, mysqld.sock, mysqld.pid, error.log), listens
on 127.0.0.1 at a free port chosen here (retried when mariadbd reports EADDRINUSE), runs in its own process
group and is stopped by pid / process group, never by name. Settings follow TESTING.md and FINDINGS.md:
ROW binlog with FULL row image and FULL row metadata, distinct server_id (10 + i) and gtid_domain_id (i + 1),
fast durability, max_connections=3000, max_allowed_packet=64M.

Module use (pytest):  servers started here are stopped at interpreter exit, on SIGTERM/SIGHUP, and (kernel
  parent-death signal) if this process is SIGKILLed.
      with sandbox.servers(2) as (business, dr): business.sql("SELECT 1")
CLI use (scripts, demo): servers outlive the CLI; the state file says how to reach and stop them.
      /usr/bin/python3 scripts/sandbox.py start 2 --state /tmp/sy.json
      /usr/bin/python3 scripts/sandbox.py stop --state /tmp/sy.json      # safe to repeat
      /usr/bin/python3 scripts/sandbox.py sweep     # dirs of dead servers left by a SIGKILLed run
Accounts: root has no password (as mariadb-install-db's "normal" method leaves it: @localhost, @127.0.0.1,
@::1, @hostname; the scripts use the socket); anonymous accounts are dropped; `switchyard`@'%' and
@'localhost' get the admin password (default 'sy-admin-pw') and ALL PRIVILEGES (see _bootstrap for the
precise list Switchyard needs).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ADMIN_USER = "switchyard"
ADMIN_PASSWORD = "sy-admin-pw"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PORT_ATTEMPTS = 8


def _find_program(name: str) -> str:
    env = os.environ.get("SY_" + name.upper().replace("-", "_"))
    if env:
        return env
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    raise SandboxError(f"{name} not found (install mariadb-server/mariadb-client: scripts/install-deps.sh)")


class SandboxError(RuntimeError):
    """A sandbox server could not be installed, started, queried or stopped; the message carries the log."""


# --- process helpers -----------------------------------------------------------------------------------

def _proc_state(pid: int) -> str | None:
    """The /proc state letter of pid, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def pid_alive(pid: int | None, marker: str | None = None) -> bool:
    """True if pid runs (zombies count as dead) and, with marker, its command line contains marker.

    The marker (our --datadir=...) keeps a stop from killing an unrelated process that reused the pid."""
    if not pid:
        return False
    if _proc_state(pid) in (None, "Z", "X"):
        return False
    if marker is None:
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return marker.encode() in f.read().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just handed out for host; racy by nature, hence the EADDRINUSE retry in start()."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


_libc = None
PR_SET_PDEATHSIG = 1


def preexec_kill_with_parent(parent_pid: int, pdeathsig: bool = True):
    """A preexec_fn: the kernel SIGKILLs the child when the forking thread dies (pytest killed -9).

    Only use from a thread that lives as long as the child should (the main thread)."""
    libc = _libc

    def preexec():
        if pdeathsig and libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent_pid:      # parent already gone: do not start an orphan
                os._exit(1)
    return preexec


# --- registry of servers owned by this process (module mode) ------------------------------------------

_live: set = set()                 # MariaDB objects to stop at exit (persist=False and started)
_spawned: list = []                # (pid, marker) of every mariadbd this process spawned, for leak checks
_cleanups: list = []               # extra callables run by cleanup_all() (e.g. conftest's daemon killer)
_owner_pid = os.getpid()           # a forked child must not stop its parent's servers at its own exit
_handlers_installed = False
_registry_lock = threading.Lock()


def register_cleanup(fn) -> None:
    """Run fn() (before stopping servers) at exit or on SIGTERM/SIGHUP; for other throwaway processes."""
    _cleanups.append(fn)


def cleanup_all() -> None:
    """Stop every server this process started in module mode; safe to call more than once."""
    if os.getpid() != _owner_pid:
        return
    for fn in list(_cleanups):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - cleanup must go on
            print(f"sandbox: cleanup {fn!r} failed: {e}", file=sys.stderr)
    for s in list(_live):
        try:
            s.stop()
        except Exception as e:  # noqa: BLE001
            print(f"sandbox: stopping {s!r} failed: {e}", file=sys.stderr)


def spawned_pids() -> list:
    """[(pid, marker)] of every mariadbd started by this process (for a suite's leak check)."""
    return list(_spawned)


def leftover_pids() -> list:
    """pids this process spawned that still run as mariadbd with our datadir."""
    return [pid for pid, marker in _spawned if pid_alive(pid, marker)]


def _on_fatal_signal(signum, frame):
    cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install_handlers() -> None:
    global _handlers_installed
    with _registry_lock:
        if _handlers_installed:
            return
        _handlers_installed = True
    atexit.register(cleanup_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:     # leave handlers others installed alone
                signal.signal(sig, _on_fatal_signal)


try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:
    _libc = None


def _sql_str(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"


_UNESCAPE = {"0": "\0", "t": "\t", "n": "\n", "\\": "\\"}


def _unescape_batch(field: str) -> str | None:
    if field == "NULL":
        return None
    if "\\" not in field:
        return field
    return re.sub(r"\\(.)", lambda m: _UNESCAPE.get(m.group(1), "\\" + m.group(1)), field)


def _tail(path: str, start: int = 0, lines: int = 40) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return f"(no {path})"
    return "\n".join(data.splitlines()[-lines:])


# --- the server ---------------------------------------------------------------------------------------

class _ServerProcess:
    """The process lifecycle MariaDB and FerretDB share: a child in its own process group (pgid == pid),
    recognized by a marker on its command line, stopped by pid / process group, never by name.
    Subclasses set PROGRAM and provide _marker, _remove_dir() and the hooks named above _before_spawn()."""

    PROGRAM = "server"
    pid: int | None
    dir: str | None
    _proc: subprocess.Popen | None

    def __enter__(self):
        if not self.is_alive():
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def is_alive(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            return False
        return pid_alive(self.pid, self._marker)

    def shutdown(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the process (SIGTERM, then SIGKILL to its group after timeout) and keep the data dir."""
        pid = self.pid
        if pid is None:
            return
        if self.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not self._wait_exit(timeout):
                self._killpg()
                if not self._wait_exit(STOP_TIMEOUT_S):
                    raise SandboxError(f"{self.PROGRAM} pid {pid} survived SIGKILL ({self.dir})")
        elif self._proc is not None:
            self._proc.poll()                             # reap
        self.pid = None
        self._proc = None

    def kill9(self) -> None:
        """SIGKILL the server's process group (a crash: nothing flushed beyond the OS); data dir stays."""
        if self.pid is None:
            return
        if self.is_alive():
            self._killpg()
            if not self._wait_exit(STOP_TIMEOUT_S):
                raise SandboxError(f"{self.PROGRAM} pid {self.pid} survived SIGKILL ({self.dir})")
        elif self._proc is not None:
            self._proc.poll()
        self.pid = None
        self._proc = None

    def restart(self):
        """Clean shutdown (if running) and start again on the same port and data dir."""
        self.shutdown()
        return self.start()

    def stop(self) -> None:
        """Shut down and remove the temp dir; safe to call twice."""
        try:
            self.shutdown()
        finally:
            self._remove_dir()
            _live.discard(self)

    def start(self):
        """Prepare (first time), launch, wait until it answers, bootstrap (first time); on any failure the
        process is stopped and a dir made by this call removed."""
        if self.is_alive():
            return self
        fresh = self.dir is None
        if not self.persist:
            _install_handlers()
        try:
            self._prepare()
            self._spawn()
            self._await_ready()
            self._bootstrap()
        except BaseException:
            self.shutdown()
            if fresh:
                self._remove_dir()
            raise
        return self

    # hooks: _prepare, _args, _bootstrap, _answers, _port_in_use(log), _log_file (what _await_ready tails),
    # _out_file (the child's stdout/stderr), _before_spawn
    def _before_spawn(self) -> None:
        pass

    def _spawn(self) -> None:
        if self.port is None:
            self.port = free_port(self.host)
        self._before_spawn()
        try:
            self._log_offset = os.path.getsize(self._log_file)
        except FileNotFoundError:
            self._log_offset = 0
        pdeathsig = not self.persist and threading.current_thread() is threading.main_thread()
        with open(self._out_file, "ab") as out:
            self._proc = subprocess.Popen(self._args(), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                          start_new_session=True, close_fds=True,
                                          preexec_fn=preexec_kill_with_parent(os.getpid(), pdeathsig))
        self.pid = self._proc.pid
        _spawned.append((self.pid, self._marker))

    def _await_ready(self) -> None:
        """Until _answers(); a child that died on a port taken since free_port() is spawned again."""
        deadline = time.monotonic() + self.ready_timeout
        attempts = 1
        while True:
            if self._proc.poll() is not None:
                log = _tail(self._log_file, self._log_offset)
                if self._port_in_use(log) and attempts < PORT_ATTEMPTS and time.monotonic() < deadline:
                    attempts += 1
                    if not self._port_fixed:
                        self.port = None                  # somebody took it between bind(0) and the server
                    else:
                        time.sleep(0.2)                   # restart: keep the port clients were given
                    self._spawn()
                    continue
                raise SandboxError(f"{self.PROGRAM} exited with rc={self._proc.returncode} "
                                   f"(port {self.port}, dir {self.dir}):\n{log}")
            if self._answers():
                self._port_fixed = True
                return
            if time.monotonic() > deadline:
                raise SandboxError(f"{self.PROGRAM} not ready after {self.ready_timeout:.0f}s (dir {self.dir}):\n"
                                   f"{_tail(self._log_file, self._log_offset)}")
            time.sleep(0.05)

    def _killpg(self) -> None:
        # start_new_session=True made the server a session and process-group leader: pgid == pid.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def _wait_exit(self, timeout: float) -> bool:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout            # not our child (CLI stop): poll /proc
        while pid_alive(self.pid, self._marker):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True


class MariaDB(_ServerProcess):
    """One throwaway mariadbd. Not started until start() (or start_servers()/servers()/`with`)."""

    PROGRAM = "mariadbd"

    def __init__(self, index: int = 0, *, admin_user: str = ADMIN_USER, admin_password: str = ADMIN_PASSWORD,
                 server_id: int | None = None, domain_id: int | None = None, extra_args=(),
                 persist: bool = False, ready_timeout: float = READY_TIMEOUT_S, port: int | None = None,
                 host: str = "127.0.0.1"):
        self.index = index
        self.host = host
        self.port = port                                  # fixed after the first successful start
        self.server_id = 10 + index if server_id is None else server_id
        self.domain_id = index + 1 if domain_id is None else domain_id
        self.admin_user = admin_user
        self.admin_password = admin_password
        self.extra_args = list(extra_args)                # more mariadbd options, e.g. ["--log-bin-compress=ON"]
        self.persist = persist                            # True: outlives this process (CLI); no auto-stop
        self.ready_timeout = ready_timeout
        self.dir: str | None = None
        self.pid: int | None = None
        self._proc: subprocess.Popen | None = None
        self._port_fixed = port is not None
        self._installed = False
        self._bootstrapped = False
        self._log_offset = 0

    # paths
    @property
    def datadir(self) -> str | None:
        return os.path.join(self.dir, "data") if self.dir else None

    @property
    def socket(self) -> str | None:
        return os.path.join(self.dir, "mysqld.sock") if self.dir else None

    @property
    def pid_file(self) -> str | None:
        return os.path.join(self.dir, "mysqld.pid") if self.dir else None

    @property
    def tmpdir(self) -> str | None:
        return os.path.join(self.dir, "tmp") if self.dir else None

    @property
    def error_log(self) -> str | None:
        return os.path.join(self.dir, "error.log") if self.dir else None

    @property
    def _marker(self) -> str:
        return f"--datadir={self.datadir}"

    def __repr__(self) -> str:
        return (f"MariaDB(#{self.index} {self.host}:{self.port} pid={self.pid} server_id={self.server_id} "
                f"domain_id={self.domain_id} dir={self.dir})")

    def _prepare(self) -> None:
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="sy-", dir="/tmp")   # short: the socket path must stay < 107
        if not self.persist:
            _live.add(self)
        if self._installed:
            return
        os.makedirs(self.tmpdir, exist_ok=True)
        cmd = [_find_program("mariadb-install-db"), "--no-defaults", f"--datadir={self.datadir}",
               "--auth-root-authentication-method=normal", "--skip-test-db", f"--tmpdir={self.tmpdir}"]
        if os.geteuid() == 0:
            cmd.append("--user=root")
        log = os.path.join(self.dir, "install.log")
        with open(log, "wb") as out:
            rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                timeout=120).returncode
        if rc != 0:
            raise SandboxError(f"mariadb-install-db failed (rc={rc}) for {self.dir}:\n{_tail(log)}")
        self._installed = True

    def _args(self) -> list:
        args = [_find_program("mariadbd"), "--no-defaults",
                f"--datadir={self.datadir}", f"--socket={self.socket}", f"--pid-file={self.pid_file}",
                f"--log-error={self.error_log}", f"--port={self.port}", f"--bind-address={self.host}",
                # Own tmpdir: temp-table names in a shared /tmp embed the pid, which is not unique when
                # several pid namespaces share /tmp (seen here: parallel installs failing on 1051).
                f"--tmpdir={self.tmpdir}",
                # Name resolution stays ON (the default): 127.0.0.1 is seen as 'localhost', so accounts
                # like 'app'@'localhost' and 'app'@'%' behave as on a usual install (FINDINGS.md, Auth).
                "--log-bin=binlog", "--binlog-format=ROW", "--binlog-row-image=FULL",
                "--binlog-row-metadata=FULL",
                f"--server-id={self.server_id}", f"--gtid-domain-id={self.domain_id}",
                "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
                "--max-connections=3000", "--max-allowed-packet=64M",
                "--innodb-buffer-pool-size=64M", "--performance-schema=OFF"]
        if os.geteuid() == 0:
            args.append("--user=root")
        return args + self.extra_args

    @property
    def _log_file(self) -> str:
        return self.error_log

    @property
    def _out_file(self) -> str:
        return os.path.join(self.dir, "mariadbd.out")

    def _before_spawn(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket)                        # a stale socket from a kill -9 would fool the poll

    @staticmethod
    def _port_in_use(log: str) -> bool:
        return "Address already in use" in log or "error: 98" in log

    def _answers(self) -> bool:
        return self._socket_answers()

    def _socket_answers(self) -> bool:
        """True once the Unix socket sends a protocol-10 greeting (server ready for connections)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(2.0)
                s.connect(self.socket)
                hdr = s.recv(5)
                return len(hdr) == 5 and hdr[4] == 10
        except OSError:
            return False

    def _bootstrap(self) -> None:
        if self._bootstrapped:
            return
        anon = self.sql("SELECT CONCAT(QUOTE(user), '@', QUOTE(host)) FROM mysql.user WHERE user = ''")
        stmts = [f"DROP USER {row[0]}" for row in anon]
        pw = _sql_str(self.admin_password)
        for host in ("%", "localhost"):
            acct = f"{_sql_str(self.admin_user)}@{_sql_str(host)}"
            stmts += [f"CREATE OR REPLACE USER {acct} IDENTIFIED BY {pw}",
                      # The sandbox grants everything. What Switchyard itself needs (the precheck's list):
                      #   SELECT ON mysql.global_priv        proxy auth reads the account hashes
                      #   REPLICATION SLAVE, BINLOG MONITOR  collector: binlog dump, SHOW BINARY LOGS/STATUS
                      #   BINLOG REPLAY                      writer: SET SESSION server_id/gtid_domain_id/seq_no
                      #   READ_ONLY ADMIN                    writer writes the read_only (fenced) passive side;
                      #                                      fence_passive sets @@global.read_only
                      #   CONNECTION ADMIN                   KILL client sessions on switchover; extra conn slot
                      #   PROCESS                            open transactions (information_schema.innodb_trx)
                      #   RELOAD                             FLUSH BINARY LOGS (tests / precheck, optional)
                      #   SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX on the synchronized
                      #   objects and on Switchyard's checkpoint schema: initial sync, replay, DDL, verify.
                      f"GRANT ALL PRIVILEGES ON *.* TO {acct} WITH GRANT OPTION"]
        self.sql(";\n".join(stmts))
        self._bootstrapped = True

    def _remove_dir(self) -> None:
        if self.dir and os.path.basename(self.dir).startswith("sy-"):
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
        self._installed = False
        self._bootstrapped = False
        _live.discard(self)

    # queries
    def sql(self, query: str, database: str | None = None, timeout: float = 60.0) -> list:
        """Run query (one or more statements) as root over the socket with the `mariadb` CLI.

        Returns the rows of every result set as lists of strings; SQL NULL comes back as None (and so
        does the string 'NULL': use PyMySQL when the difference matters). Raises SandboxError with stderr."""
        if not self.socket:
            raise SandboxError(f"{self!r} is not started")
        cmd = [_find_program("mariadb"), "--no-defaults", "--user=root", f"--socket={self.socket}",
               "--batch", "--skip-column-names", "--default-character-set=utf8mb4", "-e", query]
        if database:
            cmd.append(f"--database={database}")
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
        if r.returncode != 0:
            raise SandboxError(f"SQL failed on {self.host}:{self.port}: "
                               f"{r.stderr.decode('utf-8', 'replace').strip()}\nquery: {query}")
        out = r.stdout.decode("utf-8", "replace")
        return [[_unescape_batch(f) for f in line.split("\t")] for line in out.split("\n") if line != ""]

    def connect(self, user: str | None = None, password: str | None = None, database: str | None = None,
                **kw):
        """A PyMySQL connection over TCP (host, port); the admin account unless user is given."""
        import pymysql  # only the tests need it; the CLI runs without
        if user is None:
            user, password = self.admin_user, self.admin_password
        kw.setdefault("connect_timeout", 10)
        kw.setdefault("autocommit", True)
        return pymysql.connect(host=self.host, port=self.port, user=user, password=password or "",
                               database=database, **kw)

    # state file (CLI)
    def to_state(self) -> dict:
        return {"index": self.index, "host": self.host, "port": self.port, "socket": self.socket,
                "pid": self.pid, "dir": self.dir, "datadir": self.datadir, "error_log": self.error_log,
                "server_id": self.server_id, "domain_id": self.domain_id,
                "admin_user": self.admin_user, "admin_password": self.admin_password}

    @classmethod
    def from_state(cls, d: dict, persist: bool = True) -> "MariaDB":
        s = cls(d.get("index", 0), admin_user=d.get("admin_user", ADMIN_USER),
                admin_password=d.get("admin_password", ADMIN_PASSWORD), server_id=d.get("server_id"),
                domain_id=d.get("domain_id"), persist=persist, port=d.get("port"), host=d.get("host", "127.0.0.1"))
        s.dir = d.get("dir")
        s.pid = d.get("pid")
        s._installed = s._bootstrapped = True
        return s


# --- FerretDB (the MongoDB-protocol server that runs here: FINDINGS.md) --------------------------------------

FERRETDB_VERSION = "v1.24.2"
OPLOG_SIZE_BYTES = 64 << 20
_mongo_paths: dict = {}


def mongo_tools() -> dict:
    """{'ferretdb': binary, 'pymongo4_site': venv site-packages}, from scripts/install-ferretdb.sh (cached,
    ~0.1 s when built; ~80 s the first time on a machine). $SY_FERRETDB overrides the binary."""
    if not _mongo_paths:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "install-ferretdb.sh")
        r = subprocess.run([script, "--print-paths"], stdin=subprocess.DEVNULL, capture_output=True, timeout=900)
        if r.returncode != 0:
            raise SandboxError(f"install-ferretdb.sh failed:\n{r.stderr.decode(errors='replace')[-3000:]}")
        for line in r.stdout.decode().splitlines():
            k, _, v = line.partition("=")
            _mongo_paths[k] = v
        if os.environ.get("SY_FERRETDB"):
            _mongo_paths["ferretdb"] = os.environ["SY_FERRETDB"]
    return _mongo_paths


def pymongo4():
    """The pymongo 4 module for this interpreter: the cached venv's site-packages go first on sys.path.

    Debian's pymongo 3.11 (dist-packages) and pymongo 4 are both `pymongo`: one process can hold one.
    The pytest process holds 4 (imported through here); 3.11 runs in a child: run_pymongo3()."""
    import sys as _sys
    site_dir = mongo_tools()["pymongo4_site"]
    if site_dir not in _sys.path:
        _sys.path.insert(0, site_dir)
    import pymongo
    if not pymongo.version.startswith("4."):
        raise SandboxError(f"imported pymongo {pymongo.version} from {pymongo.__file__}, expected 4.x: "
                           f"something imported Debian's pymongo before sandbox.pymongo4()")
    return pymongo


def run_pymongo3(script: str, args: dict, timeout: float = 60.0) -> dict:
    """Run script under Debian's /usr/bin/python3 -s (its pymongo 3.11, legacy OP_QUERY handshake).

    The script reads its arguments as the dict ARGS and sets RESULT (JSON-serializable); pymongo is
    imported for it and its version checked. Raises SandboxError with the child's stderr on failure."""
    prog = ("import json, sys\nimport pymongo\n"
            "assert pymongo.version.startswith('3.'), pymongo.version\n"
            "ARGS = json.loads(sys.stdin.read())\nRESULT = None\n" + script +
            "\nsys.stdout.write(json.dumps(RESULT, default=str))\n")
    r = subprocess.run(["/usr/bin/python3", "-s", "-c", prog], input=json.dumps(args).encode(),
                       capture_output=True, timeout=timeout, env={**os.environ, "PYTHONPATH": ""})
    if r.returncode != 0:
        raise SandboxError(f"pymongo 3 child failed (rc={r.returncode}):\n{r.stderr.decode(errors='replace')}")
    return json.loads(r.stdout.decode() or "null")


def _op_msg_hello_answers(host: str, port: int) -> bool:
    """True once host:port answers an OP_MSG {hello: 1, $db: "admin"} (no driver needed)."""
    body = b"\x10hello\x00\x01\x00\x00\x00\x02$db\x00\x06\x00\x00\x00admin\x00\x00"
    body = struct.pack("<i", 4 + len(body)) + body
    msg = struct.pack("<iiiiI", 16 + 4 + 1 + len(body), 1, 0, 2013, 0) + b"\x00" + body
    try:
        with socket.create_connection((host, port), timeout=2.0) as s:
            s.sendall(msg)
            hdr = s.recv(16, socket.MSG_WAITALL)
            return len(hdr) == 16 and struct.unpack("<iiii", hdr)[3] == 2013
    except OSError:
        return False


class FerretDB(_ServerProcess):
    """One throwaway FerretDB (SQLite handler) in /tmp/sy-f-XXXXXXXX (data/, state/, ferretdb.log).

    Loopback, a free port (retried on EADDRINUSE), its own process group, killed with its parent, stopped
    by pid / process group (never by name) also when a start fails. Flags (FINDINGS.md): --repl-set-name so
    hello reports a replica set, --debug-addr=- (two instances would both take :8088), --telemetry=disable,
    --test-enable-new-auth with the setup user admin_user/admin_password in `admin` (SCRAM-SHA-256 and
    SHA-1 users, code 18 on a wrong password; without the flag any credentials pass)."""

    PROGRAM = "ferretdb"

    def __init__(self, index: int = 0, *, admin_user: str = ADMIN_USER, admin_password: str = ADMIN_PASSWORD,
                 repl_set: str = "rs0", persist: bool = False, port: int | None = None, host: str = "127.0.0.1",
                 ready_timeout: float = READY_TIMEOUT_S, extra_args=()):
        self.index = index
        self.host = host
        self.port = port
        self.admin_user = admin_user
        self.admin_password = admin_password
        self.repl_set = repl_set
        self.persist = persist
        self.ready_timeout = ready_timeout
        self.extra_args = list(extra_args)
        self.dir: str | None = None
        self.pid: int | None = None
        self._proc: subprocess.Popen | None = None
        self._port_fixed = port is not None
        self._log_offset = 0
        self._clients: list = []

    @property
    def state_dir(self) -> str | None:
        return os.path.join(self.dir, "state") if self.dir else None

    @property
    def log_path(self) -> str | None:
        return os.path.join(self.dir, "ferretdb.log") if self.dir else None

    @property
    def _marker(self) -> str:
        return f"--state-dir={self.state_dir}"

    def __repr__(self) -> str:
        return f"FerretDB(#{self.index} {self.host}:{self.port} pid={self.pid} dir={self.dir})"

    def _args(self) -> list:
        return [mongo_tools()["ferretdb"], "--handler=sqlite", f"--sqlite-url=file:{self.dir}/data/",
                self._marker, f"--listen-addr={self.host}:{self.port}", "--debug-addr=-",
                "--telemetry=disable", f"--repl-set-name={self.repl_set}", "--log-level=INFO",
                "--test-enable-new-auth", "--setup-database=admin", f"--setup-username={self.admin_user}",
                f"--setup-password={self.admin_password}"] + self.extra_args

    def _prepare(self) -> None:
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="sy-f-", dir="/tmp")
            os.makedirs(os.path.join(self.dir, "data"))
            os.makedirs(self.state_dir)
        if not self.persist:
            _live.add(self)

    @property
    def _log_file(self) -> str:
        return self.log_path

    _out_file = _log_file

    @staticmethod
    def _port_in_use(log: str) -> bool:
        return "address already in use" in log

    def _answers(self) -> bool:
        return _op_msg_hello_answers(self.host, self.port)

    def _bootstrap(self) -> None:
        """Wait until the admin user logs in (FerretDB creates it at the first connection's backend setup)."""
        deadline = time.monotonic() + self.ready_timeout
        while True:
            try:
                with self.client() as c:
                    c.admin.command("ping")
                return
            except Exception as e:  # noqa: BLE001 - any failure: retry until the deadline
                if time.monotonic() > deadline:
                    raise SandboxError(f"ferretdb admin login failed after {self.ready_timeout:.0f}s: {e}\n"
                                       f"{_tail(self.log_path, self._log_offset)}") from None
                time.sleep(0.1)

    def _remove_dir(self) -> None:
        if self.dir and os.path.basename(self.dir).startswith("sy-f-"):
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
        _live.discard(self)

    # clients and helpers (pymongo 4, imported on first use)
    def client(self, user: str | None = None, password: str | None = None, *, auth: bool = True,
               mechanism: str | None = None, **kw):
        """A pymongo 4 MongoClient straight to this server (directConnection), the admin user by default;
        auth=False: no credentials. authSource is admin."""
        pymongo = pymongo4()
        kw.setdefault("directConnection", True)
        kw.setdefault("serverSelectionTimeoutMS", 10000)
        kw.setdefault("connectTimeoutMS", 5000)
        if auth:
            kw.setdefault("username", self.admin_user if user is None else user)
            kw.setdefault("password", self.admin_password if user is None else password)
            kw.setdefault("authSource", "admin")
            if mechanism:
                kw.setdefault("authMechanism", mechanism)
        return pymongo.MongoClient(self.host, self.port, **kw)

    def command(self, db: str, cmd: dict, **kw):
        """One command as the admin user on a short-lived client; returns the reply document."""
        with self.client() as c:
            return c[db].command(cmd, **kw)

    def create_oplog(self, size_bytes: int = OPLOG_SIZE_BYTES, max_docs: int | None = None) -> None:
        """Create the capped local.oplog.rs (FerretDB then logs inserts, updates, deletes); idempotent.
        max_docs: also capped by entries (FerretDB trims the oldest every --test-capped-cleanup-interval)."""
        with self.client() as c:
            if "oplog.rs" in c.local.list_collection_names():
                return
            kw = {"max": max_docs} if max_docs else {}
            c.local.create_collection("oplog.rs", capped=True, size=size_bytes, **kw)

    def create_user(self, name: str, password: str, mechanisms=None, db: str = "admin") -> None:
        """createUser with no roles (FerretDB 1.24 rejects roles: code 238); SCRAM-SHA-256 and -1 by default."""
        cmd = {"createUser": name, "pwd": password, "roles": []}
        if mechanisms:
            cmd["mechanisms"] = list(mechanisms)
        with self.client() as c:
            c[db].command(cmd)

    def drop_user(self, name: str, db: str = "admin") -> None:
        with self.client() as c:
            c[db].command({"dropUser": name})

    def user_credentials(self, name: str, db: str = "admin") -> dict:
        """usersInfo with showCredentials: the user's document (credentials.SCRAM-SHA-256 / SCRAM-SHA-1)."""
        with self.client() as c:
            r = c[db].command({"usersInfo": name, "showCredentials": True})
        if not r.get("users"):
            raise SandboxError(f"no user {name!r} in {db} on {self!r}")
        return r["users"][0]


class EtcdMember(_ServerProcess):
    """One member of a throwaway etcd cluster (Debian's etcd-server 3.4) in /tmp/sy-e-XXXXXXXX: loopback, a
    client port (`port`, the v3 JSON gateway) and a peer port, its own process group, killed with its parent.
    start_etcd_cluster() makes the members; a member started alone (restart) rejoins its cluster."""

    PROGRAM = "etcd"

    def __init__(self, name: str, cluster: str, *, port: int, peer_port: int, host: str = "127.0.0.1",
                 ready_timeout: float = READY_TIMEOUT_S):
        self.name, self.cluster, self.host = name, cluster, host
        self.port, self.peer_port = port, peer_port
        self.ready_timeout = ready_timeout
        self.persist = False
        self.dir: str | None = None
        self.pid: int | None = None
        self._proc: subprocess.Popen | None = None
        self._port_fixed = True
        self._log_offset = 0
        self.started_once = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def _marker(self) -> str:
        return f"--data-dir={self.dir}/data"

    @property
    def _log_file(self) -> str:
        return os.path.join(self.dir, "etcd.log")

    _out_file = _log_file

    def __repr__(self) -> str:
        return f"EtcdMember({self.name} {self.url} pid={self.pid} dir={self.dir})"

    def _prepare(self) -> None:
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="sy-e-", dir="/tmp")
        _live.add(self)

    def _args(self) -> list:
        state = "existing" if self.started_once else "new"
        return ["etcd", f"--name={self.name}", self._marker,
                f"--listen-client-urls=http://{self.host}:{self.port}",
                f"--advertise-client-urls=http://{self.host}:{self.port}",
                f"--listen-peer-urls=http://{self.host}:{self.peer_port}",
                f"--initial-advertise-peer-urls=http://{self.host}:{self.peer_port}",
                f"--initial-cluster={self.cluster}", f"--initial-cluster-state={state}",
                "--initial-cluster-token=switchyard-tests", "--log-level=warn", "--logger=zap"]

    def _answers(self) -> bool:
        import urllib.request
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                return json.loads(r.read()).get("health") == "true"
        except Exception:  # noqa: BLE001 - not yet
            return False

    def _bootstrap(self) -> None:
        self.started_once = True

    def _remove_dir(self) -> None:
        if self.dir and os.path.basename(self.dir).startswith("sy-e-"):
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
        _live.discard(self)


def start_etcd_cluster(n: int = 3) -> list:
    """n etcd members on loopback (free ports), all spawned before any is waited for (a member answers
    /health only with a quorum). All or nothing."""
    ports = [(free_port(), free_port()) for _ in range(n)]
    cluster = ",".join(f"e{i}=http://127.0.0.1:{pp}" for i, (_, pp) in enumerate(ports))
    members = [EtcdMember(f"e{i}", cluster, port=cp, peer_port=pp) for i, (cp, pp) in enumerate(ports)]
    _install_handlers()
    try:
        for m in members:
            m._prepare()
            m._spawn()
        for m in members:
            m._await_ready()
            m._bootstrap()
    except BaseException:
        for m in members:
            with contextlib.suppress(Exception):
                m.stop()
        raise
    return members


def start_ferretdb_pair(oplog_max: int | None = None, **opts) -> list:
    """[business, dr]: two FerretDB servers (indexes 0 and 1) with local.oplog.rs created on each (capped by
    entries too with oplog_max). All or nothing: if one fails, both are stopped before the error propagates."""
    servers_ = [FerretDB(i, **opts) for i in range(2)]
    if not opts.get("persist"):
        _install_handlers()
    try:
        for s in servers_:
            s.start()
        for s in servers_:
            s.create_oplog(max_docs=oplog_max)
    except BaseException:
        for s in servers_:
            with contextlib.suppress(Exception):
                s.stop()
        raise
    return servers_


def start_servers(n: int, first_index: int = 0, **opts) -> list:
    """Start n servers (indexes first_index.., so server_id 10+i, gtid_domain_id i+1) and return them.

    opts go to MariaDB(): admin_user, admin_password, extra_args, persist, ready_timeout. All or nothing:
    if one fails, the others are stopped before the error propagates."""
    servers = [MariaDB(first_index + i, **opts) for i in range(n)]
    if not opts.get("persist"):
        _install_handlers()                                    # from this thread: signal handlers need main
    try:
        with ThreadPoolExecutor(max_workers=max(1, n)) as ex:   # mariadb-install-db runs in parallel
            list(ex.map(lambda s: s._prepare(), servers))
        for s in servers:                                      # spawn from this thread (parent-death signal)
            s._spawn()
        for s in servers:
            s._await_ready()
            s._bootstrap()
    except BaseException:
        for s in servers:
            with contextlib.suppress(Exception):
                s.stop()
        raise
    return servers


@contextlib.contextmanager
def servers(n: int, **opts):
    """with servers(2) as (a, b): ... -- stops and removes them however the block ends."""
    started = start_servers(n, **opts)
    try:
        yield started
    finally:
        errors = []
        for s in started:
            try:
                s.stop()
            except Exception as e:  # noqa: BLE001 - stop the others anyway
                errors.append(e)
        if errors:
            raise errors[0]


# --- CLI -------------------------------------------------------------------------------------------------

def _write_state(path: str, state: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(state, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def _cmd_start(a) -> int:
    if os.path.exists(a.state):
        with open(a.state) as f:
            old = json.load(f)
        alive = [d for d in old.get("servers", []) if pid_alive(d.get("pid"), f"--datadir={d.get('datadir')}")]
        if alive:
            print(f"sandbox: {a.state} already describes running servers; stop them first", file=sys.stderr)
            return 1
    started = start_servers(a.n, first_index=a.first_index, persist=True, admin_password=a.password,
                            extra_args=a.extra_arg or ())
    try:
        _write_state(a.state, {"servers": [s.to_state() for s in started]})
    except BaseException:
        for s in started:
            s.stop()
        raise
    for s in started:
        print(f"server {s.index}: {s.host}:{s.port} socket={s.socket} pid={s.pid} "
              f"server_id={s.server_id} domain_id={s.domain_id}")
    return 0


def _cmd_stop(a) -> int:
    if not os.path.exists(a.state):
        print(f"sandbox: {a.state}: nothing to stop")
        return 0
    with open(a.state) as f:
        state = json.load(f)
    rc = 0
    for d in state.get("servers", []):
        s = MariaDB.from_state(d)
        try:
            s.stop()
            print(f"server {s.index}: stopped")
        except SandboxError as e:
            print(f"sandbox: {e}", file=sys.stderr)
            rc = 1
    if rc == 0:
        os.unlink(a.state)
    return rc


def _cmd_status(a) -> int:
    if not os.path.exists(a.state):
        print(f"sandbox: {a.state}: no servers")
        return 1
    with open(a.state) as f:
        state = json.load(f)
    down = 0
    for d in state.get("servers", []):
        up = pid_alive(d.get("pid"), f"--datadir={d.get('datadir')}")
        down += not up
        print(f"server {d.get('index')}: {d.get('host')}:{d.get('port')} pid={d.get('pid')} "
              f"{'running' if up else 'DOWN'}")
    return 1 if down else 0


def sweep(older_than_s: float = 600.0, root: str = "/tmp") -> list:
    """Remove root/sy-* sandbox dirs whose server is gone, left by a run that was SIGKILLed.

    A dir is only taken when its pid file names no live mariadbd for it and nothing in it changed for
    older_than_s (a server killed by a test and about to restart is recent). Returns the removed dirs."""
    removed = []
    now = time.time()
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        data = os.path.join(d, "data")
        if not name.startswith("sy-") or not os.path.isdir(data) or os.path.islink(d):
            continue
        try:
            if os.stat(d).st_uid != os.geteuid():
                continue
            newest = max(os.stat(os.path.join(d, f)).st_mtime for f in os.listdir(d))
            with open(os.path.join(d, "mysqld.pid")) as f:
                pid = int(f.read().strip() or 0)
        except (FileNotFoundError, ValueError):
            pid, newest = 0, os.stat(d).st_mtime
        if pid_alive(pid, f"--datadir={data}") or now - newest < older_than_s:
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _cmd_sweep(a) -> int:
    for d in sweep(a.older_than * 60):
        print(f"removed {d}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Throwaway MariaDB servers (TESTING.md).")
    sub = p.add_subparsers(dest="cmd", required=True)
    ps = sub.add_parser("start", help="start N servers that outlive this command")
    ps.add_argument("n", type=int)
    ps.add_argument("--state", required=True, help="JSON file describing the servers (written)")
    ps.add_argument("--password", default=ADMIN_PASSWORD, help="password of the switchyard admin account")
    ps.add_argument("--first-index", type=int, default=0, help="server i gets server_id 10+i, domain i+1")
    ps.add_argument("--extra-arg", action="append", help="extra mariadbd option (repeatable)")
    pt = sub.add_parser("stop", help="stop the servers of a state file and remove their dirs (idempotent)")
    pt.add_argument("--state", required=True)
    pu = sub.add_parser("status", help="exit 0 if every server of the state file runs")
    pu.add_argument("--state", required=True)
    pw = sub.add_parser("sweep", help="remove /tmp/sy-* dirs of dead servers (left by a SIGKILLed run)")
    pw.add_argument("--older-than", type=float, default=10, help="minutes without change (default 10)")
    a = p.parse_args(argv)
    try:
        return {"start": _cmd_start, "stop": _cmd_stop, "status": _cmd_status, "sweep": _cmd_sweep}[a.cmd](a)
    except SandboxError as e:
        print(f"sandbox: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
