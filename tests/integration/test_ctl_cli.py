"""switchyardctl's own tests, against a fake admin socket (a thread serving canned replies on a Unix socket).

They check what operators and scripts rely on: exit codes 0/1/2/3, the request line each command sends
(CONTRACT.md "Admin socket protocol"), --json printing exactly the result, and the human tables. The real
daemon is exercised by the other integration tests.
Binary: $SY_BUILD_DIR/switchyardctl (default /work/main/build)."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

CTL = os.path.join(os.environ.get("SY_BUILD_DIR", "/work/main/build"), "switchyardctl")

pytestmark = pytest.mark.timeout(60)

COMMANDS = ["status", "precheck", "create-reverse", "pause", "start", "terminate", "switchover", "failover",
            "switchback", "resolve-tail", "hold", "release", "verify", "clients", "lag-history", "help"]

STATUS = {"pairs": [
    {"name": "orders", "engine": "mariadb", "listen": "127.0.0.1:6033", "active_side": "business", "epoch": 3,
     "held": False, "clients": 12,
     "instances": [
         {"id": "orders/forward", "direction": "forward", "state": "running",
          "collection": {"state": "running", "lag_ms": 40, "lag_events": 3,
                         "position": "1-11-1234,2-4002-88"},
          "write": {"state": "running", "lag_ms": 55, "lag_events": 5, "position": "1-11-1230",
                    "rows_per_s": 812.5},
          "initial_sync": {"done_rows": 100000, "total_rows": 100000},
          "last_error": None},
         {"id": "orders/reverse", "direction": "reverse", "state": "collecting",
          "collection": {"state": "running", "lag_ms": None, "position": "2-21-7"},
          "write": {"state": "stopped"},
          "last_error": None}]},
    {"name": "crm", "engine": "mongodb", "active_side": "dr", "epoch": 12, "held": True, "clients": 0,
     "instances": [
         {"id": "crm/forward", "direction": "forward", "state": "initial_sync",
          "collection": {"state": "running", "lag_ms": 1500},
          "initial_sync": {"done_rows": 45000, "total_rows": 100000},
          "last_error": "dr 127.0.0.1:27018: connection refused"}]}]}

STATUS_TEXT = """\
NAME    ENGINE   LISTEN          ACTIVE    EPOCH  HELD  CLIENTS
orders  mariadb  127.0.0.1:6033  business  3      no    12
crm     mongodb  -               dr        12     yes   0

INSTANCE        STATE       COLLECTION    WRITE         POSITION
orders/forward  running     running 40ms  running 55ms  1-11-1230
orders/reverse  collecting  running       stopped       -
orders/forward initial sync: 100000/100000 rows (100%)

INSTANCE     STATE         COLLECTION      WRITE  POSITION
crm/forward  initial_sync  running 1500ms  -      -
crm/forward initial sync: 45000/100000 rows (45%)
crm/forward last error: dr 127.0.0.1:27018: connection refused
"""


class FakeAdmin:
    """Accepts connections one at a time, records each request line, answers with self.reply:
    bytes (sent as is), "close" (close without a reply) or "hang" (keep the connection until stop())."""

    def __init__(self, path):
        self.path = path
        self.requests = []
        self.reply = b'{"ok":true,"result":{}}\n'
        self._stop = threading.Event()
        self._srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._srv.bind(path)
        self._srv.listen(8)
        self._srv.settimeout(0.05)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def ok(self, result):
        self.reply = (json.dumps({"ok": True, "result": result}) + "\n").encode()

    def fail(self, code, message, **extra):
        self.reply = (json.dumps({"ok": False, "error": {"code": code, "message": message, **extra}})
                      + "\n").encode()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._srv.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(10)
                buf = b""
                while b"\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                self.requests.append(buf)
                if self.reply == "hang":
                    self._stop.wait()
                elif self.reply != "close":
                    try:
                        conn.sendall(self.reply)
                    except (BrokenPipeError, ConnectionResetError):
                        pass   # the CLI stops reading past its 16 MiB cap

    def request(self):
        """The one request received, parsed, after checking it is exactly one line."""
        assert len(self.requests) == 1, self.requests
        raw = self.requests[0]
        assert raw.endswith(b"\n") and raw.count(b"\n") == 1, raw
        return json.loads(raw)

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self._srv.close()


@pytest.fixture
def tmpdir_short():
    d = tempfile.mkdtemp(prefix="syctl", dir="/tmp")   # sun_path holds 107 bytes: keep it short
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def admin(tmpdir_short):
    srv = FakeAdmin(os.path.join(tmpdir_short, "admin.sock"))
    yield srv
    srv.stop()


def ctl(*args, sock=None, env=None, cwd=None):
    argv = [CTL] + (["-s", sock] if sock else []) + list(args)
    e = dict(os.environ)
    e.pop("SWITCHYARD_SOCKET", None)
    e.update(env or {})
    return subprocess.run(argv, capture_output=True, text=True, env=e, cwd=cwd, timeout=30)


# ---- help and usage: no daemon needed, nothing sent ----

@pytest.mark.parametrize("argv", [["help"], ["--help"], ["-h"]])
def test_help_lists_every_command_without_daemon(argv, tmpdir_short):
    r = ctl(*argv, sock=os.path.join(tmpdir_short, "nothing.sock"))
    assert r.returncode == 0, r.stderr
    listed = [line.split()[0] for line in r.stdout.splitlines() if line.startswith("  ") and
              not line.lstrip().startswith("-")]
    assert listed[:len(COMMANDS)] == COMMANDS
    assert "resolve-tail PAIR --export FILE | --discard" in r.stdout
    assert r.stderr == ""


def test_help_for_one_command():
    r = ctl("help", "switchover")
    assert r.returncode == 0
    assert r.stdout.splitlines()[0] == "usage: switchyardctl [-s SOCKET] [--json] switchover PAIR [--force] [--progress]"


@pytest.mark.parametrize("argv", [
    [],
    ["frobnicate"],
    ["help", "frobnicate"],
    ["precheck"],
    ["create-reverse"],
    ["clients", ""],
    ["status", "orders", "crm"],
    ["hold", "orders", "extra"],
    ["resolve-tail", "orders"],
    ["resolve-tail", "orders", "--export", "/tmp/t.sql", "--discard"],
    ["resolve-tail", "orders", "--export"],
    ["precheck", "orders", "--direction", "sideways"],
    ["pause", "orders"],
    ["start", "orders/sideways"],
    ["terminate", "/forward"],
    ["switchback", "orders", "--force"],
    ["switchover", "orders", "--force", "--force"],
    ["verify", "orders", "--objects", "nodot"],
    ["verify", "orders", "--objects", "shop.*,"],
    ["status", "--bogus"],
    ["--timeout", "-1", "status"],
    ["--timeout", "soon", "status"],
    ["--json=yes", "status"],
])
def test_bad_usage_exits_2_and_sends_nothing(argv, admin):
    r = ctl(*argv, sock=admin.path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("switchyardctl: ")
    assert "usage: switchyardctl" in r.stderr
    assert r.stdout == ""
    assert admin.requests == []


# ---- the request line ----

@pytest.mark.parametrize("argv,expected", [
    (["status"], {"cmd": "status", "args": {}}),
    (["status", "orders"], {"cmd": "status", "args": {"pair": "orders"}}),
    (["precheck", "orders"], {"cmd": "precheck", "args": {"pair": "orders"}}),
    (["precheck", "orders", "--direction", "switchover"],
     {"cmd": "precheck", "args": {"pair": "orders", "direction": "switchover"}}),
    (["precheck", "--direction=reverse", "orders"],
     {"cmd": "precheck", "args": {"pair": "orders", "direction": "reverse"}}),
    (["create-reverse", "orders"], {"cmd": "create-reverse", "args": {"pair": "orders"}}),
    (["pause", "orders/forward"], {"cmd": "pause", "args": {"instance": "orders/forward"}}),
    (["start", "orders/reverse"], {"cmd": "start", "args": {"instance": "orders/reverse"}}),
    (["terminate", "orders/forward"], {"cmd": "terminate", "args": {"instance": "orders/forward"}}),
    (["switchover", "orders"], {"cmd": "switchover", "args": {"pair": "orders"}}),
    (["switchover", "orders", "--force"], {"cmd": "switchover", "args": {"pair": "orders", "force": True}}),
    (["failover", "--force", "orders"], {"cmd": "failover", "args": {"pair": "orders", "force": True}}),
    (["switchback", "orders"], {"cmd": "switchback", "args": {"pair": "orders"}}),
    (["resolve-tail", "orders", "--discard"],
     {"cmd": "resolve-tail", "args": {"pair": "orders", "discard": True}}),
    (["resolve-tail", "orders", "--export", "/var/tmp/tail.sql"],
     {"cmd": "resolve-tail", "args": {"pair": "orders", "export": "/var/tmp/tail.sql"}}),
    (["hold", "orders"], {"cmd": "hold", "args": {"pair": "orders"}}),
    (["release", "orders"], {"cmd": "release", "args": {"pair": "orders"}}),
    (["verify", "orders"], {"cmd": "verify", "args": {"pair": "orders"}}),
    (["verify", "orders", "--objects", "shop.*,crm.customers"],
     {"cmd": "verify", "args": {"pair": "orders", "objects": "shop.*,crm.customers"}}),
    (["clients", "orders"], {"cmd": "clients", "args": {"pair": "orders"}}),
    (["--json", "status", "--", "-odd-name"], {"cmd": "status", "args": {"pair": "-odd-name"}}),
])
def test_request_line(argv, expected, admin):
    r = ctl(*argv, sock=admin.path)
    assert r.returncode == 0, r.stderr
    assert admin.request() == expected
    assert admin.requests[0] == (json.dumps(expected, separators=(",", ":")) + "\n").encode()


def test_resolve_tail_sends_export_file_absolute(admin, tmpdir_short):
    r = ctl("resolve-tail", "orders", "--export", "./tail.sql", sock=admin.path, cwd=tmpdir_short)
    assert r.returncode == 0, r.stderr
    assert admin.request()["args"] == {"pair": "orders", "export": os.path.join(tmpdir_short, "tail.sql")}


def test_socket_from_environment(admin):
    r = ctl("hold", "orders", env={"SWITCHYARD_SOCKET": admin.path})
    assert r.returncode == 0, r.stderr
    assert admin.request() == {"cmd": "hold", "args": {"pair": "orders"}}


def test_socket_option_overrides_environment(admin, tmpdir_short):
    r = ctl("--socket", admin.path, "release", "orders",
            env={"SWITCHYARD_SOCKET": os.path.join(tmpdir_short, "nothing.sock")})
    assert r.returncode == 0, r.stderr
    assert admin.request()["cmd"] == "release"


# ---- output ----

def test_status_table(admin):
    admin.ok(STATUS)
    r = ctl("status", sock=admin.path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == STATUS_TEXT
    assert r.stderr == ""


def test_status_on_a_terminal_draws_the_initial_sync_as_a_bar(admin):
    """On a TTY (a pty here) the initial sync gets a progress bar; piped output stays the plain line above."""
    import pty
    admin.ok(STATUS)
    master, slave = pty.openpty()
    try:
        p = subprocess.run([CTL, "-s", admin.path, "status"], stdout=slave, stderr=subprocess.PIPE, timeout=30)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
    assert p.returncode == 0, p.stderr
    assert "crm/forward initial sync: [#########...........] 45000/100000 rows (45%)" in out.decode(), out


def test_status_tolerates_missing_fields(admin):
    admin.ok({"pairs": [{"name": "x", "instances": [{"id": "x/forward"}]}, {}]})
    r = ctl("status", sock=admin.path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1:3] == ["x     -       -       -       -      -     -",
                                          "-     -       -       -       -      -     -"]
    assert "x/forward  -      -           -      -" in r.stdout


@pytest.mark.parametrize("argv", [["--json", "status"], ["status", "--json"]])
def test_json_prints_exactly_the_result(argv, admin):
    admin.ok(STATUS)
    r = ctl(*argv, sock=admin.path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == STATUS
    assert admin.request() == {"cmd": "status", "args": {}}


def test_json_empty_result_is_an_object(admin):
    admin.reply = b'{"ok":true}\n'
    r = ctl("--json", "hold", "orders", sock=admin.path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {}


def test_error_reply_exits_1(admin):
    admin.fail("unknown_pair", "no pair named 'nope'")
    r = ctl("status", "nope", sock=admin.path)
    assert r.returncode == 1
    assert r.stderr == "error: unknown_pair: no pair named 'nope'\n"
    assert r.stdout == ""


def test_error_reply_json_prints_error_object(admin):
    msg = "forward write lag 5300 ms is above switchover_max_lag_ms 1000"
    admin.fail("lag_too_high", msg)
    r = ctl("--json", "switchover", "orders", sock=admin.path)
    assert r.returncode == 1
    assert json.loads(r.stdout) == {"code": "lag_too_high", "message": msg}
    assert r.stderr.startswith("error: lag_too_high: forward write lag")


def test_error_details_printed(admin):
    admin.fail("unmovable_sessions", "2 sessions cannot move", sessions=[17, 23])
    r = ctl("switchover", "orders", sock=admin.path)
    assert r.returncode == 1
    assert r.stderr == "error: unmovable_sessions: 2 sessions cannot move\n  sessions: [17,23]\n"


def test_clients_table(admin):
    admin.ok({"clients": [
        {"id": 7, "user": "app", "peer": "127.0.0.1:51234", "side": "business", "in_transaction": True,
         "held_ms": 0, "movable": True},
        {"id": 1042, "user": "reporting", "peer": "10.0.0.5:40000", "side": "business",
         "in_transaction": False, "held_ms": 1250, "movable": False},
        {"id": 1043}]})
    r = ctl("clients", "orders", sock=admin.path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "ID    USER       PEER             SIDE      IN_TXN  HELD_MS  MOVABLE\n"
        "7     app        127.0.0.1:51234  business  yes     0        yes\n"
        "1042  reporting  10.0.0.5:40000   business  no      1250     no\n"
        "1043  -          -                -         -       -        -\n")


def test_precheck_lines(admin):
    admin.ok({"checks": [
        {"name": "binlog_format", "status": "pass", "detail": "ROW"},
        {"name": "primary_keys", "status": "fail", "detail": "shop.audit has no PRIMARY KEY",
         "fix": "ALTER TABLE shop.audit ADD PRIMARY KEY (id)"},
        {"name": "log_retention", "status": "warn", "detail": "binlog_expire_logs_seconds=3600 < 720 s retry",
         "fix": None}]})
    r = ctl("precheck", "orders", sock=admin.path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (
        "PASS  binlog_format  ROW\n"
        "FAIL  primary_keys   shop.audit has no PRIMARY KEY\n"
        "      fix: ALTER TABLE shop.audit ADD PRIMARY KEY (id)\n"
        "WARN  log_retention  binlog_expire_logs_seconds=3600 < 720 s retry\n")


def test_switchover_fields(admin):
    admin.ok({"pause_ms": 312, "drained_position": "1-11-1300", "ack_ledger_position": "1-11-1299",
              "aborted_transactions": 0, "moved_clients": 12, "epoch": 4,
              "tail": {"transactions": 2, "acknowledged": 1}})
    r = ctl("failover", "orders", sock=admin.path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("pause_ms: 312\ndrained_position: 1-11-1300\nack_ledger_position: 1-11-1299\n"
                        "aborted_transactions: 0\nmoved_clients: 12\nepoch: 4\n"
                        'tail: {"transactions":2,"acknowledged":1}\n')


def test_empty_result_prints_ok(admin):
    r = ctl("hold", "orders", sock=admin.path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ok\n"


# ---- cannot reach the daemon: exit 3 ----

def test_no_daemon_exits_3(tmpdir_short):
    path = os.path.join(tmpdir_short, "nothing.sock")
    r = ctl("status", sock=path)
    assert r.returncode == 3
    assert r.stderr == f"switchyardctl: cannot reach switchyardd at {path}: No such file or directory\n"
    assert r.stdout == ""


def test_daemon_closes_without_reply_exits_3(admin):
    admin.reply = "close"
    r = ctl("status", sock=admin.path)
    assert r.returncode == 3
    assert r.stderr.startswith(f"switchyardctl: cannot reach switchyardd at {admin.path}: ")
    assert len(admin.requests) == 1


def test_garbled_reply_exits_3(admin):
    admin.reply = b"this is not json\n"
    r = ctl("status", sock=admin.path)
    assert r.returncode == 3
    assert r.stderr.startswith(f"switchyardctl: bad reply from switchyardd at {admin.path}: ")


def test_timeout_exits_3(admin):
    admin.reply = "hang"
    t0 = time.monotonic()
    r = ctl("--timeout", "0.3", "status", sock=admin.path)
    assert r.returncode == 3
    assert time.monotonic() - t0 < 10
    assert "no reply from switchyardd" in r.stderr


def test_oversized_reply_exits_3(admin):
    admin.reply = b'{"ok":true,"result":{"x":"' + b"a" * (17 << 20)   # no newline within 16 MiB
    r = ctl("status", sock=admin.path)
    assert r.returncode == 3
    assert r.stderr == f"switchyardctl: bad reply from switchyardd at {admin.path}: longer than 16 MiB\n"


def test_large_reply_within_cap(admin):
    admin.ok({"blob": "b" * (4 << 20)})
    r = ctl("--json", "verify", "orders", sock=admin.path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"blob": "b" * (4 << 20)}


def test_failed_precheck_shows_checks(admin):
    admin.fail("precheck_failed", "1 check failed",
               checks=[{"name": "gtid_strict_mode", "status": "fail", "detail": "OFF on dr",
                        "fix": "SET ..."}])
    r = ctl("create-reverse", "orders", sock=admin.path)
    assert r.returncode == 1
    assert r.stdout == "FAIL  gtid_strict_mode  OFF on dr\n      fix: SET ...\n"
    assert r.stderr == "error: precheck_failed: 1 check failed\n"


def test_non_utf8_argument_is_usage_error(admin):
    r = subprocess.run([CTL.encode(), b"-s", admin.path.encode(), b"status", b"\xff\xfe"],
                       capture_output=True, timeout=30)
    assert r.returncode == 2
    assert admin.requests == []
