"""Real Java (JDBC) and Go (database/sql) clients, driven one command at a time from a test.

    c = RealClient("java-mariadb", host, port, user, password, database="shop")
    c.exec("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))")   # {"ok": True, "affected": 0}
    c.prepare("ins", "INSERT INTO t VALUES (?, ?)"); c.execute("ins", 1, "a")
    c.query("SELECT * FROM t")            # {"ok": True, "columns": ["id", "v"], "rows": [["1", "a"]]}
    c.query("SELECT * FROM nope")         # {"ok": False, "code": 1146, "sqlstate": "42S02", "message": ...}
    c.close()

kind: "java-mariadb" (MariaDB Connector/J), "java-mysql" (MySQL Connector/J), "java-mssql" (Microsoft's
mssql-jdbc, TDS), "go" (go-sql-driver/mysql).
The programs (tests/clients/, protocol in tests/clients/README.md) are built and cached by
scripts/install-test-clients.sh; the first RealClient of a session runs it, which is quick once built. An
SQL error is a reply with ok False, never an exception; a client that cannot be built or started, dies, breaks
the protocol or exceeds the command timeout raises ClientError (the process is killed); a malformed command
raises ValueError. Use the conftest fixture `real_client` so every client is closed at teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import sandbox  # noqa: E402

INSTALL = ROOT / "scripts" / "install-test-clients.sh"
KINDS = ("java-mariadb", "java-mysql", "go")        # the MySQL-protocol clients (test_real_clients.py)
ALL_KINDS = KINDS + ("java-mssql",)
INSTALL_TIMEOUT_S = 900.0            # a cold build fetches jars and modules: ~30 s here, allow slow mirrors
START_TIMEOUT_S = 60.0               # process start + connect (+ pool fill) until the ready line
COMMAND_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 10.0

_paths: dict | None = None           # {"java": launcher, "go": binary}, once per session
_live: set = set()                   # RealClients not yet closed: killed if pytest itself is terminated


class ClientError(AssertionError):
    """The client program is missing, did not start, died, broke the protocol or timed out."""

    def __init__(self, msg: str, reply: dict | None = None):
        super().__init__(msg)
        self.reply = reply           # the failed ready line, when the client answered one


def client_paths() -> dict:
    """Build (or find cached) both client programs; {"java": path, "go": path}. Raises ClientError."""
    global _paths
    if _paths is None:
        try:
            r = subprocess.run([str(INSTALL), "--print-paths"], capture_output=True, text=True,
                               timeout=INSTALL_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ClientError(f"{INSTALL} did not finish in {INSTALL_TIMEOUT_S:.0f}s") from None
        if r.returncode != 0:
            raise ClientError(f"the real-client test programs are not built and {INSTALL} failed "
                              f"(exit {r.returncode}):\n{r.stderr[-4000:]}")
        paths = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
        for k in ("java", "go"):
            if not paths.get(k) or not os.access(paths[k], os.X_OK):
                raise ClientError(f"{INSTALL} --print-paths gave no runnable {k} client: {r.stdout!r}")
        _paths = paths
    return _paths


def _argv(kind: str, host: str, port: int, user: str, password: str, database: str | None,
          init_sql: str | None, pool: int, extra: dict | None) -> list:
    paths = client_paths()
    db = quote(database or "", safe="")
    if kind in ("java-mariadb", "java-mysql"):
        driver = kind.split("-", 1)[1]
        # Server-side prepared statements: `prepare` must be a COM_STMT_PREPARE for both Connector/Js.
        params = {"useServerPrepStmts": "true", "connectTimeout": "10000"}
        params.update({k: _param(v) for k, v in (extra or {}).items()})
        url = f"jdbc:{driver}://{host}:{port}/{db}?{urlencode(params)}"
        argv = [paths["java"], "--driver", driver, "--url", url, "--user", user, "--password", password,
                "--pool", str(pool)]
    elif kind == "java-mssql":
        # SQL Server's URL: properties after ';'. No TLS to the proxy or the double unless a test asks;
        # prepared statements are sp_prepexec/sp_execute (mssql-jdbc's default prepareMethod).
        params = {"databaseName": database or "master", "encrypt": "false", "loginTimeout": "10"}
        params.update({k: _param(v) for k, v in (extra or {}).items()})
        url = f"jdbc:sqlserver://{host}:{port};" + ";".join(f"{k}={v}" for k, v in params.items())
        argv = [paths["java"], "--driver", "mssql", "--url", url, "--user", user, "--password", password,
                "--pool", str(pool)]
    elif kind == "go":
        params = {"timeout": "10s"}     # interpolateParams stays false: Prepare is server-side
        params.update({k: _param(v) for k, v in (extra or {}).items()})
        dsn = f"{user}:{password}@tcp({host}:{port})/{db}?{urlencode(params)}"
        argv = [paths["go"], "-dsn", dsn, "-pool", str(max(pool, 1))]
    else:
        raise ValueError(f"kind must be one of {ALL_KINDS}, not {kind!r}")
    if init_sql:
        argv += ["--init-sql" if kind != "go" else "-init-sql", init_sql]
    return argv


def _param(v) -> str:
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


class RealClient:
    """One client process holding one connection (or `pool` pinned pooled ones); see the module doc.

    pool: 0 = a single connection from the driver (Go: a pool of 1); N = N connections checked out of a
    HikariCP (Java) or database/sql (Go) pool and held, chosen per command with conn=i.
    extra: driver URL/DSN parameters (JDBC URL parameters for Java, DSN parameters for Go).
    init_sql: one statement run on every connection when it is made (Hikari connectionInitSql for a pool).
    """

    def __init__(self, kind: str, host: str, port: int, user: str, password: str, database: str | None = None,
                 init_sql: str | None = None, extra: dict | None = None, pool: int = 0,
                 timeout: float = COMMAND_TIMEOUT_S, start_timeout: float = START_TIMEOUT_S):
        self.kind = kind
        self.timeout = timeout
        self.argv = _argv(kind, host, int(port), user, password, database, init_sql, pool, extra)
        self._buf = b""
        self._stderr = tempfile.NamedTemporaryFile(prefix=f"sy-client-{kind}-", suffix=".log", delete=False)
        self.stderr_path = self._stderr.name
        self._proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._stderr, start_new_session=True,
                                      preexec_fn=sandbox.preexec_kill_with_parent(os.getpid()))
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._proc.stdout, selectors.EVENT_READ)
        _live.add(self)
        t0 = time.monotonic()
        try:
            self.ready = self._read_reply(start_timeout, "the ready line")
            if not self.ready.get("ok"):
                raise ClientError(f"{kind} client could not connect to {host}:{port}: {self.ready}", self.ready)
        except BaseException:
            self._kill()
            self._cleanup()
            raise
        self.start_seconds = time.monotonic() - t0

    def __repr__(self) -> str:
        return f"RealClient({self.kind} pid={self._proc.pid})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def stderr(self) -> str:
        with contextlib.suppress(OSError):
            return Path(self.stderr_path).read_text(errors="replace")
        return ""

    # --- commands: each returns the reply dict; ok False is an SQL error, not an exception -----------------
    def query(self, sql: str, *, conn: int = 0, timeout: float | None = None) -> dict:
        return self.send("query", sql=sql, conn=conn, _timeout=timeout)

    def exec(self, sql: str, *, conn: int = 0, timeout: float | None = None) -> dict:
        return self.send("exec", sql=sql, conn=conn, _timeout=timeout)

    def begin(self, *, conn: int = 0, timeout: float | None = None) -> dict:
        return self.send("begin", conn=conn, _timeout=timeout)

    def commit(self, *, conn: int = 0, timeout: float | None = None) -> dict:
        return self.send("commit", conn=conn, _timeout=timeout)

    def rollback(self, *, conn: int = 0, timeout: float | None = None) -> dict:
        return self.send("rollback", conn=conn, _timeout=timeout)

    def prepare(self, name: str, sql: str, *, conn: int = 0, timeout: float | None = None) -> dict:
        return self.send("prepare", name=name, sql=sql, conn=conn, _timeout=timeout)

    def execute(self, name: str, *args, conn: int = 0, query: bool | None = None,
                timeout: float | None = None) -> dict:
        """Run a prepared statement; query=True/False overrides Go's guess (by the first keyword) whether it
        returns rows (Java asks the driver)."""
        fields = {"name": name, "args": list(args), "conn": conn}
        if query is not None:
            fields["query"] = query
        return self.send("execute", _timeout=timeout, **fields)

    def batch(self, sql: str, rows, *, conn: int = 0, timeout: float | None = None) -> dict:
        return self.send("batch", sql=sql, rows=[list(r) for r in rows], conn=conn, _timeout=timeout)

    def ping(self, *, conn: int = 0, timeout: float | None = None) -> dict:
        return self.send("ping", conn=conn, _timeout=timeout)

    def recycle(self, *, conn: int = 0, timeout: float | None = None) -> dict:
        """Close connection `conn` (back to the pool, which resets it) and check out another."""
        return self.send("recycle", conn=conn, _timeout=timeout)

    def send(self, op: str, _timeout: float | None = None, **fields) -> dict:
        if self._proc.poll() is not None and op != "close":
            raise ClientError(f"{self!r} exited with {self._proc.returncode}; stderr:\n{self.stderr()[-3000:]}")
        line = json.dumps({"op": op, **fields}) + "\n"
        try:
            self._proc.stdin.write(line.encode())
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError) as e:
            self._kill()
            raise ClientError(f"{self!r}: cannot send {op}: {e}; stderr:\n{self.stderr()[-3000:]}") from None
        reply = self._read_reply(self.timeout if _timeout is None else _timeout, op)
        if reply.get("ok") is False and reply.get("code") == -1:
            raise ValueError(f"{self.kind} client refused {line.strip()}: {reply.get('message')}")
        return reply

    def close(self) -> None:
        """Send close (the client closes its connections and pool) and reap; idempotent, never raises."""
        if self._proc.poll() is None:
            with contextlib.suppress(Exception):
                self.send("close", _timeout=CLOSE_TIMEOUT_S)
            with contextlib.suppress(Exception):
                self._proc.stdin.close()
            try:
                self._proc.wait(CLOSE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._kill()
        self._cleanup()

    # --- internals -----------------------------------------------------------------------------------------
    def _read_reply(self, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self._sel.select(left):
                self._kill()
                raise ClientError(f"{self!r}: no reply to {what} within {timeout:.0f}s (killed); stderr:\n"
                                  f"{self.stderr()[-3000:]}")
            chunk = os.read(self._proc.stdout.fileno(), 1 << 20)
            if not chunk:
                rc = self._proc.wait(5)
                raise ClientError(f"{self!r} exited with {rc} before answering {what}; stderr:\n"
                                  f"{self.stderr()[-3000:]}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            self._kill()
            raise ClientError(f"{self!r}: not a JSON reply to {what}: {line[:500]!r}") from None

    def _kill(self) -> None:
        if self._proc.poll() is None:               # unreaped: the pgid is still ours
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, 9)
        with contextlib.suppress(Exception):
            self._proc.wait(10)

    def _cleanup(self) -> None:
        _live.discard(self)
        with contextlib.suppress(Exception):
            self._sel.close()
        for f in (self._proc.stdin, self._proc.stdout, self._stderr):
            with contextlib.suppress(Exception):
                f.close()
        with contextlib.suppress(OSError):
            os.unlink(self.stderr_path)


def _kill_live_clients() -> None:
    for c in list(_live):
        with contextlib.suppress(Exception):
            c._kill()


sandbox.register_cleanup(_kill_live_clients)     # SIGTERM/SIGHUP/exit of pytest: no client left behind
