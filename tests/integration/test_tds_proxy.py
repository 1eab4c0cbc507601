"""The SQL Server proxy (engine = sqlserver), first step, in front of the SQL Server double
(tests/doubles/): one backend connection per client on the active side; PRELOGIN answered by the proxy (no
encryption, MARS off); the login done by the proxy from the client's LOGIN7 (password kept in memory) with the
server's own answer passed on; then packets relayed both ways. Through the proxy and direct, the same results
with FreeTDS `tsql`, pymssql and pytds: queries, RPC with parameters, transactions, errors with their numbers,
results over many packets, a wrong password (18456 with the server's text), ATTENTION; malformed TDS closes
only that connection; hold/release; `clients` with the session state the proxy tracks for a move (switches
themselves are tests/integration/test_tds_switch.py's: they need the SQL Server sync)."""

from __future__ import annotations

import decimal
import functools
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from helpers import wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "doubles"))

from tds_fixtures import install_paths, running_double  # noqa: E402

pytds = pytest.importorskip("pytds")
pymssql = pytest.importorskip("pymssql")

pytestmark = [pytest.mark.timeout(120)]

wait_until = functools.partial(wait_for, timeout=10.0, interval=0.05)


# --- fixtures -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def doubles():
    """Two SQL Server doubles: business (the active side) and DR."""
    with running_double(cdc_delay=0.3) as business, running_double(cdc_delay=0.3) as dr:
        yield business, dr


@pytest.fixture
def tds_daemon(daemon, doubles):
    """Factory: tds_daemon(**daemon_kw) -> Daemon with an `engine = sqlserver` pair in front of the doubles."""
    business, dr = doubles

    def factory(**kw):
        kw.setdefault("engine", "sqlserver")
        kw.setdefault("business", f"{business.host}:{business.port}")
        kw.setdefault("dr", f"{dr.host}:{dr.port}")
        kw.setdefault("admin_user", business.user)
        kw.setdefault("admin_password", business.password)
        return daemon(**kw)

    return factory


@pytest.fixture(autouse=True)
def _double_log_on_failure(request):
    failed = request.session.testsfailed
    yield
    if "doubles" in request.fixturenames and request.session.testsfailed > failed:
        b, _ = request.getfixturevalue("doubles")
        print("--- business double log (tail) ---\n" + "\n".join(b.log().splitlines()[-60:]))


class Target:
    """Where a client connects: the business double directly, or the proxy in front of it."""

    def __init__(self, host, port, user, password):
        self.host, self.port, self.user, self.password = host, port, user, password


def direct(doubles) -> Target:
    b, _ = doubles
    return Target(b.host, b.port, b.user, b.password)


def proxied(d, doubles) -> Target:
    b, _ = doubles
    return Target("127.0.0.1", d.port, b.user, b.password)


def pyt(t: Target, password=None, **kw):
    kw.setdefault("autocommit", True)
    kw.setdefault("timeout", 30)
    return pytds.connect(t.host, port=t.port, user=kw.pop("user", t.user), password=password or t.password,
                         login_timeout=10, disable_connect_retry=True, **kw)


def pym(t: Target, password=None, **kw):
    os.environ["TDSVER"] = "7.4"
    return pymssql.connect(server=t.host, port=str(t.port), user=kw.pop("user", t.user),
                           password=password or t.password, tds_version=None, login_timeout=10, timeout=30, **kw)


def tsql(t: Target, sql, password=None):
    env = dict(os.environ, TDSVER="7.4")
    r = subprocess.run(["tsql", "-H", t.host, "-p", str(t.port), "-U", t.user, "-P", password or t.password],
                       input=sql + "\ngo\nexit\n", env=env, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def sessions(d):
    return d.admin_ok("clients", pair="demo")["clients"]


# --- the pair ----------------------------------------------------------------------------------------------

def test_sqlserver_pair_starts_a_listener(tds_daemon):
    """engine = sqlserver is no longer refused: status shows the pair and its listener; a pair without objects
    has nothing to switch with (switches: tests/integration/test_tds_switch.py; synchronization:
    tests/integration/test_sqlserver_sync.py)."""
    d = tds_daemon()
    p = d.pair_status()
    assert p["engine"] == "sqlserver" and p["active_side"] == "business" and p["clients"] == 0
    assert p["listen"].startswith("127.0.0.1:") and d.port > 0
    for cmd in ("switchover", "failover", "switchback"):
        r = d.admin(cmd, pair="demo")
        assert r["ok"] is False and r["error"]["code"] in ("unknown_instance", "bad_state"), (cmd, r)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return str(cert), str(key)


def tsql_conf(t: Target, sql, tmp_path, encryption, password=None):
    conf = tmp_path / "freetds.conf"
    conf.write_text(f"[px]\n\thost = {t.host}\n\tport = {t.port}\n\ttds version = 7.4\n\tencryption = {encryption}\n")
    env = dict(os.environ, TDSVER="7.4", FREETDSCONF=str(conf))
    r = subprocess.run(["tsql", "-S", "px", "-U", t.user, "-P", password or t.password], input=sql + "\ngo\nexit\n",
                       env=env, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def test_client_tls_inside_prelogin(tds_daemon, doubles, tls_files, tmp_path):
    """With tls_cert/tls_key the proxy answers PRELOGIN as SQL Server does (ON for a client asking ON/REQ, OFF =
    the LOGIN7 only for a client asking OFF, NOT_SUP for one without TLS) and runs the TLS 1.2 handshake inside
    PRELOGIN packets, then TLS on the socket (whole session) or plain again after LOGIN7 (login only). pytds,
    tsql and go-mssqldb in every mode; a 2 MB value each way through TLS; a wrong password over TLS."""
    cert, key = tls_files
    d = tds_daemon(tls_cert=cert, tls_key=key)
    t = proxied(d, doubles)
    big = "ä" * 1_000_000

    def check(c, encryption, tls):
        cur = c.cursor()
        cur.execute("SELECT %s, 40 + 2", (big,))
        assert cur.fetchone() == (big, 42)
        (s,) = [x for x in sessions(d) if x["state"] == "IDLE"]
        assert s["encryption"] == encryption and s["tls"] is tls, s

    with pyt(t, cafile=cert, validate_host=False) as c:            # ON: TLS for the whole session
        check(c, "on", True)
    with pyt(t, cafile=cert, validate_host=False, enc_login_only=True) as c:   # OFF: the LOGIN7 only
        check(c, "login-only", False)
    with pyt(t) as c:                                              # pytds without a CA: NOT_SUP
        check(c, "off", False)
    assert "TLS established (TLSv1.2, whole session)" in d.log()
    assert "TLS established (TLSv1.2, login only)" in d.log()
    with pytest.raises(pytds.Error) as e:
        pyt(t, password=BAD_PW, cafile=cert, validate_host=False)
    assert e.value.msg_no == 18456 and str(e.value) == f"Login failed for user '{t.user}'."

    for mode in ("request", "require"):                            # FreeTDS: login only, whole session
        rc, out = tsql_conf(t, "SELECT 40 + 2 AS answer", tmp_path, mode)
        assert rc == 0 and re.search(r"answer\s*\n42\s*\n", out), (mode, out)
    q = "SELECT 6 * 7"
    for opts in ("encrypt=true&TrustServerCertificate=true", "encrypt=false&TrustServerCertificate=true",
                 "encrypt=disable"):
        dsn = f"sqlserver://{t.user}:{t.password}@{t.host}:{t.port}?database=master&{opts}"
        r = subprocess.run([install_paths()["go_mssql"], "-dsn", dsn, "query", q], capture_output=True, text=True,
                           timeout=60)
        assert json.loads(r.stdout.strip().splitlines()[-1])["rows"] == [[42]], (opts, r.stdout, r.stderr)
    assert "TLS handshake failed" not in d.log()
    # the answer to a raw PRELOGIN, then a handshake record that is not TLS: that connection closes
    for enc, want in ((1, b"\x01"), (3, b"\x01"), (0, b"\x00"), (2, b"\x02")):
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
            s.sendall(prelogin(encryption=enc))
            assert prelogin_options(read_message(s))[1] == want, enc
            if enc == 1:
                s.sendall(packet(0x12, b"\x16\x03\x01\x00\x05hello"))
                assert closed(s)
    wait_until(lambda: "closed (TLS handshake failed: the client's records" in d.log(), what="the handshake failure")
    other = pyt(t, cafile=cert, validate_host=False)
    other.cursor().execute("SELECT 1")
    other.close()


# --- same results through the proxy and direct ------------------------------------------------------------

def pytds_workload(t: Target, tag: str) -> dict:
    """Queries, RPC (sp_executesql) with parameters, transactions, errors, a 2.4 MB result; the table name
    differs per target (both reach the same server) and is taken out of what is compared."""
    out = {}
    tbl = f"pw_{tag}"
    with pyt(t) as c:
        cur = c.cursor()
        cur.execute("SELECT 1 AS a, N'zäöü ✓ 中文' AS b, CAST(12.345 AS decimal(10,3)) AS c, CAST(NULL AS int) AS d, "
                    "DB_NAME(), SUSER_SNAME()")
        out["select"] = (cur.fetchall(), [x[0] for x in cur.description])
        cur.execute(f"CREATE TABLE {tbl} (id int PRIMARY KEY, s nvarchar(max), n decimal(12,2))")
        for i in range(4):                                      # RPC: sp_executesql with typed parameters
            cur.execute(f"INSERT INTO {tbl} VALUES (%s, %s, %s)", (i, chr(0x4e00 + i) * 300_000,
                                                                  decimal.Decimal(f"{i}.25")))
        cur.execute(f"SELECT COUNT(*), SUM(n) FROM {tbl} WHERE id >= %s AND n < %s", (1, decimal.Decimal("9")))
        out["params"] = cur.fetchall()
        cur.execute(f"SELECT id, s FROM {tbl} ORDER BY id")      # 2.4 MB of UTF-16 over many packets
        rows = cur.fetchall()
        out["big"] = [(r[0], len(r[1]), r[1] == chr(0x4e00 + r[0]) * 300_000) for r in rows]
        import pytds.tds_base as tb
        res = cur.callproc(tb.SP_EXECUTESQL, ("SET @r = @a * 2", "@a int, @r int OUTPUT", 21,
                                              pytds.output(param_type="int", value=None)))
        out["output_param"] = res[-1]
        try:
            cur.execute("SELECT * FROM no_such_table_xyz")
        except pytds.ProgrammingError as e:
            out["error"] = (e.msg_no, str(e))
        try:
            cur.execute(f"INSERT INTO {tbl} VALUES (%s, %s, %s)", (1, "dup", 0))
        except pytds.IntegrityError as e:
            out["dup"] = (e.msg_no, str(e).replace(tbl, "T"))
        cur.execute("SELECT 42")
        out["after_errors"] = cur.fetchall()
    with pyt(t, autocommit=False) as c:                          # transactions
        cur = c.cursor()
        cur.execute(f"INSERT INTO {tbl} VALUES (10, N'rolled back', 1)")
        cur.execute("SELECT @@TRANCOUNT")
        out["trancount"] = cur.fetchall()
        c.rollback()
        cur.execute(f"INSERT INTO {tbl} VALUES (11, N'committed', 1)")
        c.commit()
        cur.execute(f"SELECT id FROM {tbl} WHERE id >= 10 ORDER BY id")
        out["tx"] = cur.fetchall()
        c.commit()
    with pyt(t, blocksize=512) as c:                             # the smallest packets: many per message
        cur = c.cursor()
        cur.execute("SELECT net_packet_size FROM sys.dm_exec_connections WHERE session_id = @@SPID")
        out["small_packets"] = cur.fetchall()
        cur.execute(f"SELECT s FROM {tbl} WHERE id = 3")
        out["small_packets_big"] = cur.fetchone()[0] == chr(0x4e03) * 300_000
        cur.execute(f"DROP TABLE {tbl}")
    return out


def test_pytds_same_results_through_proxy(tds_daemon, doubles):
    d = tds_daemon()
    want = pytds_workload(direct(doubles), "direct")
    got = pytds_workload(proxied(d, doubles), "proxy")
    assert got == want
    # the values themselves, so that two equally wrong runs cannot pass
    assert want["select"][0] == [(1, "zäöü ✓ 中文", decimal.Decimal("12.345"), None, "master", doubles[0].user)]
    assert want["params"] == [(3, decimal.Decimal("6.75"))] and want["output_param"] == 42
    assert want["big"] == [(i, 300_000, True) for i in range(4)]
    assert want["error"][0] == 208 and "no_such_table_xyz" in want["error"][1]
    assert want["dup"][0] == 2627 and want["after_errors"] == [(42,)]
    assert want["trancount"] == [(1,)] and want["tx"] == [(11,)]
    assert want["small_packets"] == [(512,)] and want["small_packets_big"] is True
    assert "logged in as 'sa' (database master, packet size 512" in d.log()


def pymssql_workload(t: Target, tag: str) -> dict:
    out = {}
    tbl = f"pm_{tag}"
    with pym(t, autocommit=True) as c:
        cur = c.cursor()
        cur.execute("SELECT 40 + 2 AS answer, N'Grüße' AS g")
        out["select"] = cur.fetchall()
        cur.execute(f"CREATE TABLE {tbl} (id int PRIMARY KEY, v nvarchar(4000))")
        cur.executemany(f"INSERT INTO {tbl} VALUES (%d, %s)", [(i, "v" * 3000 + str(i)) for i in range(400)])
        cur.execute(f"SELECT id, v FROM {tbl} ORDER BY id")      # ~2.4 MB
        rows = cur.fetchall()
        out["rows"] = (len(rows), rows[0][1][-1], rows[-1][1][-3:], sum(len(r[1]) for r in rows))
        cur.execute("EXEC sp_executesql N'SELECT @a + 1 AS b', N'@a int', @a = 41")
        out["rpc_in_batch"] = cur.fetchall()
        try:
            cur.execute("SELECT * FROM no_such_table_pm")
        except pymssql.ProgrammingError as e:
            out["error"] = (e.args[0], e.args[1].decode().split("DB-Lib")[0])
        cur.execute(f"DROP TABLE {tbl}")
    with pym(t, autocommit=False) as c:
        cur = c.cursor()
        cur.execute("CREATE TABLE " + tbl + "_tx (id int)")
        c.commit()
        cur.execute(f"INSERT INTO {tbl}_tx VALUES (1)")
        c.rollback()
        cur.execute(f"INSERT INTO {tbl}_tx VALUES (2)")
        c.commit()
        cur.execute(f"SELECT id FROM {tbl}_tx")
        out["tx"] = cur.fetchall()
        cur.execute(f"DROP TABLE {tbl}_tx")
        c.commit()
    return out


def test_pymssql_same_results_through_proxy(tds_daemon, doubles):
    d = tds_daemon()
    want = pymssql_workload(direct(doubles), "direct")
    got = pymssql_workload(proxied(d, doubles), "proxy")
    assert got == want
    assert want["select"] == [(42, "Grüße")] and want["rpc_in_batch"] == [(42,)] and want["tx"] == [(2,)]
    assert want["rows"] == (400, "0", "399", 400 * 3000 + 10 + 90 * 2 + 300 * 3)
    assert want["error"][0] == 208


TSQL_SCRIPT = """CREATE TABLE tsql_px_{tag} (id int PRIMARY KEY, name nvarchar(20), amount decimal(10,2))
go
INSERT INTO tsql_px_{tag} VALUES (1, N'alpha', 1.50), (2, N'beta', NULL)
go
BEGIN TRAN
go
UPDATE tsql_px_{tag} SET amount = 9.99 WHERE id = 2
go
COMMIT
go
SELECT id, name, amount FROM tsql_px_{tag} ORDER BY id
go
SELECT * FROM no_such_tsql_table
go
DROP TABLE tsql_px_{tag}"""


def test_tsql_same_output_through_proxy(tds_daemon, doubles):
    d = tds_daemon()
    rc_d, out_d = tsql(direct(doubles), TSQL_SCRIPT.format(tag="d"))
    rc_p, out_p = tsql(proxied(d, doubles), TSQL_SCRIPT.format(tag="p"))
    assert rc_d == rc_p
    assert out_p.replace("tsql_px_p", "T") == out_d.replace("tsql_px_d", "T")
    assert re.search(r"1\s+alpha\s+1\.50\s*\n2\s+beta\s+9\.99", out_p), out_p
    assert "Msg 208" in out_p and "no_such_tsql_table" in out_p


def pym_fresh_process_error(t: Target, password: str) -> str:
    """pymssql's error for a refused login, from a process of its own: after a first failed login in a process,
    pymssql leaves the server's text out of later ones (seen direct too)."""
    code = ("import pymssql, sys\ntry:\n    pymssql.connect(server=sys.argv[1], port=sys.argv[2], user=sys.argv[3], "
            "password=sys.argv[4], tds_version=None, login_timeout=10)\nexcept pymssql.OperationalError as e:\n"
            "    print(e)\n")
    r = subprocess.run(["/usr/bin/python3", "-c", code, t.host, str(t.port), t.user, password], capture_output=True,
                       text=True, timeout=30, env=dict(os.environ, TDSVER="7.4"))
    return r.stdout.strip()


BAD_PW = "Wr0ng-Secret-x9"


def test_wrong_password_gets_the_servers_18456(tds_daemon, doubles):
    """A wrong password: the server's own ERROR 18456 (class 14, its text) reaches every client, as direct."""
    d = tds_daemon()
    user = doubles[0].user
    for t in (direct(doubles), proxied(d, doubles)):
        with pytest.raises(pytds.Error) as e:
            pyt(t, password=BAD_PW)
        assert e.value.msg_no == 18456 and str(e.value) == f"Login failed for user '{user}'."
        err = pym_fresh_process_error(t, BAD_PW)
        assert err.startswith("(18456, ") and f"Login failed for user '{user}'." in err, err
        rc, out = tsql(t, "SELECT 1", password=BAD_PW)
        assert rc != 0 and "Msg 18456 (severity 14, state 1)" in out and f"Login failed for user '{user}'." in out
        with pytest.raises(pytds.Error) as e:
            pyt(t, user="nobody")
        assert e.value.msg_no == 18456 and str(e.value) == "Login failed for user 'nobody'."
    assert f"login of '{user}' refused by the business server: 18456 Login failed for user '{user}'." in d.log()
    assert BAD_PW not in d.log()                    # the password is never logged
    wait_until(lambda: d.pair_status()["clients"] == 0, what="refused sessions closed")


def test_attention_cancels_a_long_query(tds_daemon, doubles):
    """pytds sends ATTENTION when its timeout strikes and waits for DONE_ATTN; the session goes on."""
    d = tds_daemon()
    with pyt(proxied(d, doubles), timeout=1) as c:
        cur = c.cursor()
        t0 = time.monotonic()
        with pytest.raises(Exception) as e:
            cur.execute("WAITFOR DELAY '00:00:10'")
        assert "timed out" in str(e.value) and time.monotonic() - t0 < 5
        cur.execute("SELECT 7")
        assert cur.fetchone() == (7,)
        s = sessions(d)
        assert len(s) == 1 and s[0]["attentions"] == 1 and s[0]["state"] == "IDLE"
    assert "ATTENTION acknowledged by the server" in d.log()


def test_attention_sent_during_a_hold_cancels_after_release(tds_daemon, doubles):
    """A request held by `hold` and the ATTENTION its client sends when its timeout strikes wait together;
    on release the request goes to the server and the ATTENTION right behind it at once (not after the
    request's 5 s): the server acknowledges, the client gets its timeout, the session goes on."""
    d = tds_daemon()
    with pyt(proxied(d, doubles), timeout=1) as c:
        cur = c.cursor()
        cur.execute("SELECT 1")
        cur.fetchall()
        before = sessions(d)[0]["attentions"]
        assert d.ctl("hold", "demo").returncode == 0
        out = {}

        def run():
            t0 = time.monotonic()
            try:
                cur.execute("WAITFOR DELAY '00:00:05'")
                out["result"] = "completed"
            except Exception as e:  # noqa: BLE001 - the timeout is what is expected
                out["result"] = str(e)
            out["done"] = time.monotonic()

        th = threading.Thread(target=run)
        th.start()
        wait_until(lambda: [x["state"] for x in sessions(d)] == ["HELD"], what="the held request")
        time.sleep(1.5)                                         # pytds' timeout: its ATTENTION is sent
        released = time.monotonic()
        assert d.ctl("release", "demo").returncode == 0
        th.join(15)
        assert "timed out" in out["result"] and out["done"] - released < 3, (out, out["done"] - released)
        c._conn.sock.settimeout(30)        # the 1 s was for the held request; ASan on 2 busy cores needs more
        cur.execute("SELECT 7")
        assert cur.fetchone() == (7,)
        (s,) = sessions(d)
        assert s["attentions"] == before + 1 and s["state"] == "IDLE", s


def go(t: Target, *args, password=None, dsn_extra=""):
    dsn = f"sqlserver://{t.user}:{password or t.password}@{t.host}:{t.port}?database=master&encrypt=disable{dsn_extra}"
    r = subprocess.run([install_paths()["go_mssql"], "-dsn", dsn, *args], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip(), r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_go_mssqldb_same_results_through_proxy(tds_daemon, doubles):
    """go-mssqldb (a fourth TDS implementation): every type, a transaction, prepared statements, a duplicate key
    error and a cancel (ATTENTION) give the same answers through the proxy (to business) as direct to the DR
    double (a fresh server of its own: the Go client's tables have fixed names)."""
    d = tds_daemon()
    b, dr = doubles
    via, plain = proxied(d, doubles), Target(dr.host, dr.port, dr.user, dr.password)
    for cmd in ("types", "tx", "prepared", "dupkey"):
        want, got = go(plain, cmd), go(via, cmd)
        assert got == want, cmd
    assert want["number"] == 2627 and "PRIMARY KEY" in want["error"]
    r = go(via, "cancel")
    assert r["error"] == "context canceled" and r["seconds"] < 3 and r["after"] == 1 and r["after_error"] == "<nil>"
    r = go(via, "ping", password=BAD_PW)
    assert r["number"] == 18456 and r["error"].endswith(f"Login failed for user '{b.user}'.")
    # a password change at login would change it on one server only: refused, saying so
    r = go(via, "ping", dsn_extra="&change+password=N3w-passw0rd")
    assert r["number"] == 18456 and "does not relay a password change at login" in r["error"], r
    assert "N3w-passw0rd" not in d.log()


# --- malformed TDS ---------------------------------------------------------------------------------------------

def packet(ptype: int, payload: bytes, status: int = 1, length: int | None = None) -> bytes:
    return struct.pack(">BBHHBB", ptype, status, length if length is not None else 8 + len(payload), 0, 1, 0) + payload


def prelogin(encryption: int = 2, mars: int = 0) -> bytes:
    opts = [(0, bytes([9, 0, 0, 0, 0, 0])), (1, bytes([encryption])), (4, bytes([mars]))]
    head, body = b"", b""
    base = 5 * len(opts) + 1
    for tok, data in opts:
        head += struct.pack(">BHH", tok, base + len(body), len(data))
        body += data
    return packet(0x12, head + b"\xff" + body)


def prelogin_options(payload: bytes) -> dict:
    opts, pos = {}, 0
    while payload[pos] != 0xFF:
        tok, off, ln = struct.unpack(">BHH", payload[pos:pos + 5])
        opts[tok] = payload[off:off + ln]
        pos += 5
    return opts


def login7(user: str, password: str, packet_size: int = 4096, flags2: int = 0x03) -> bytes:
    def obf(s):
        return bytes((((b & 0x0F) << 4) | (b >> 4)) ^ 0xA5 for b in s.encode("utf-16-le"))
    fields = [("host", "rawhost".encode("utf-16-le")), ("user", user.encode("utf-16-le")), ("pw", obf(password)),
              ("app", "raw-test".encode("utf-16-le")), ("server", b""), ("ext", b""), ("lib", b""), ("lang", b""),
              ("db", b"")]
    fixed = 94
    data, table, off = b"", b"", fixed
    for _, v in fields:
        table += struct.pack("<HH", off, len(v) // 2)
        data += v
        off += len(v)
    tail = b"\0" * 6 + struct.pack("<HH", off, 0) + struct.pack("<HH", off, 0) + struct.pack("<HH", off, 0) + b"\0" * 4
    body = (struct.pack("<IIIIII", 0, 0x74000004, packet_size, 7, 1, 0) + bytes([0xE0, flags2, 0, 0])
            + struct.pack("<iI", 0, 0x409) + table + tail)
    assert len(body) == fixed
    payload = body + data
    payload = struct.pack("<I", len(payload)) + payload[4:]
    return packet(0x10, payload)


def read_message(sock) -> bytes:
    """The payload of the next whole message (packets up to EOM); b'' when the connection closed."""
    out, buf = b"", b""
    while True:
        while len(buf) < 8:
            chunk = sock.recv(65536)
            if not chunk:
                return b""
            buf += chunk
        length = struct.unpack(">H", buf[2:4])[0]
        while len(buf) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return b""
            buf += chunk
        out += buf[8:length]
        status, buf = buf[1], buf[length:]
        if status & 1:
            return out


def closed(sock, timeout=5.0) -> bool:
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def raw_logged_in(d, doubles, packet_size=4096, rcvbuf=0):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", d.port))
    s.sendall(prelogin())
    answer = read_message(s)
    assert answer and answer[0] == 0                            # VERSION first in the option table
    b = doubles[0]
    s.sendall(login7(b.user, b.password, packet_size))
    reply = read_message(s)
    assert b"\xad" in reply                                    # LOGINACK
    return s


def test_prelogin_answered_by_the_proxy(tds_daemon, doubles):
    """The proxy's PRELOGIN answer: the server's VERSION (the double's 16.0.4218), ENCRYPT_NOT_SUP whatever
    the client asked (client TLS is not built; a client that requires it is told so and gives up), MARS off
    (logged when asked for); then a LOGIN7 asking for integrated authentication gets an ERROR with the
    proxy's reason and the connection closes."""
    d = tds_daemon()
    for enc, mars in ((0, 0), (3, 1), (1, 0)):
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
            s.sendall(prelogin(encryption=enc, mars=mars))
            opts = prelogin_options(read_message(s))
            assert opts[0] == bytes([16, 0, 0x10, 0x7A, 0, 0]) and opts[1] == b"\x02" and opts[4] == b"\x00", opts
    assert "the client asked for MARS: answered off" in d.log()
    assert "the client requires encryption: answered ENCRYPT_NOT_SUP" in d.log()
    with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
        s.sendall(prelogin())
        assert read_message(s)
        s.sendall(login7("DOMAIN\\someone", "", flags2=0x83))     # fIntSecurity
        reply = read_message(s)
        assert reply[0] == 0xAA and struct.unpack("<i", reply[3:7])[0] == 18452
        assert "integrated authentication is not supported".encode("utf-16-le") in reply
        assert closed(s)
    wait_until(lambda: "integrated (SSPI) login refused" in d.log(), what="the refusal logged")
    assert d.admin_ok("status")["pairs"][0]["clients"] == 0


@pytest.mark.parametrize("case", ["not_prelogin", "length_below_header", "length_over_limit", "garbage",
                                  "bad_prelogin_table", "login7_bad_offsets", "oversize_after_login",
                                  "type_change", "smp_mars", "login_packet_after_login", "tls_before_prelogin"])
def test_malformed_tds_closes_only_that_connection(tds_daemon, doubles, case):
    d = tds_daemon()
    other = pyt(proxied(d, doubles))                           # a client that must keep being served
    s = None
    try:
        if case == "not_prelogin":
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(packet(0x01, "SELECT 1".encode("utf-16-le")))
            why = "expected PRELOGIN, got SQL_BATCH"
        elif case == "length_below_header":
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(packet(0x12, b"\xff", length=4))
            why = "packet length 4 outside 8..32767"
        elif case == "length_over_limit":
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(packet(0x12, b"\xff", length=0xFFFF))
            why = "packet length 65535 outside 8..32767"
        elif case == "garbage":
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            why = "bad packet from the client"
        elif case == "bad_prelogin_table":
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(packet(0x12, struct.pack(">BHH", 0, 200, 6) + b"\xff"))
            why = "outside the 6-byte payload"
        elif case == "login7_bad_offsets":
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(prelogin())
            assert read_message(s)
            bad = bytearray(login7("sa", "x"))
            struct.pack_into("<HH", bad, 8 + 40, 60000, 5)      # user name far outside the structure
            s.sendall(bytes(bad))
            why = "LOGIN7 string field 1"
        elif case == "oversize_after_login":
            s = raw_logged_in(d, doubles, packet_size=4096)
            s.sendall(packet(0x01, b"\0" * 8000))               # 8008 > the negotiated 4096
            why = "packet length 8008 outside 8..4096"
        elif case == "type_change":
            s = raw_logged_in(d, doubles)
            s.sendall(packet(0x01, "SELECT".encode("utf-16-le"), status=0) + packet(0x03, b"\0" * 10))
            why = "packet type changed inside a message"
        elif case == "smp_mars":
            s = raw_logged_in(d, doubles)
            s.sendall(bytes([0x53, 0x00]) + b"\0" * 14)
            why = "MARS (SMP) packets"
        elif case == "tls_before_prelogin":                     # TDS 8.0 strict: a ClientHello first
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(bytes([0x16, 0x03, 0x01, 0x00, 0x30]) + b"\x01" * 0x30)
            why = "a TLS handshake before PRELOGIN"
        else:
            s = raw_logged_in(d, doubles)
            s.sendall(prelogin())
            why = "PRELOGIN (0x12) packet after the login"
        assert closed(s), case
        wait_until(lambda: why in d.log(), what=f"the log line for {case}")
        assert re.search(r"demo T-\d+ 127\.0\.0\.1:\d+: closed \(.*" + re.escape(why), d.log()), why
        cur = other.cursor()
        cur.execute("SELECT 5")
        assert cur.fetchone() == (5,)
        assert d.admin_ok("status")["pairs"][0]["clients"] == 1
    finally:
        if s:
            s.close()
        other.close()


def test_metrics_count_what_the_proxy_did(tds_daemon, doubles):
    """switchyard_client_errors_total for a sqlserver pair: bad_packet (a connection closed on bad input),
    unsupported (an integrated login refused); client connections by side."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        mport = s.getsockname()[1]
    d = tds_daemon(global_opts={"metrics": f"127.0.0.1:{mport}"})

    def scrape():
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10) as r:
            return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1])
                    for ln in r.read().decode().splitlines() if ln and not ln.startswith("#")}

    with pyt(proxied(d, doubles)) as c:
        c.cursor().execute("SELECT 1")
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
            s.sendall(packet(0x01, b"x"))                       # not PRELOGIN
            assert closed(s)
        with socket.create_connection(("127.0.0.1", d.port), timeout=10) as s:
            s.sendall(prelogin())
            assert read_message(s)
            s.sendall(login7("someone", "", flags2=0x83))
            assert read_message(s)[0] == 0xAA and closed(s)
        key = 'switchyard_client_errors_total{pair="demo",reason="%s"}'
        m = wait_until(lambda: (lambda m: m if m.get(key % "unsupported") == 1 else None)(scrape()),
                       what="unsupported counted")
        assert m[key % "bad_packet"] == 1 and m[key % "lost_connection"] == 0 and m[key % "forced_close"] == 0
        assert m['switchyard_client_connections{pair="demo",side="business"}'] == 1
        assert m['switchyard_client_connections{pair="demo",side="dr"}'] == 0


# --- hold / release, clients ----------------------------------------------------------------------------------

def test_hold_waits_and_release_completes(tds_daemon, doubles):
    """A request sent during `hold` waits (its session shows HELD and held_ms) and completes after `release`
    with its result; held sessions resume in accept order."""
    d = tds_daemon()
    conns = [pyt(proxied(d, doubles)) for _ in range(2)]
    try:
        for c in conns:
            c.cursor().execute("SELECT 1")
        assert d.ctl("hold", "demo").returncode == 0
        results, done = {}, []

        def run(i):
            cur = conns[i].cursor()
            cur.execute(f"SELECT {i} + 100")
            results[i] = cur.fetchone()[0]
            done.append(time.monotonic())

        threads = []
        for i in range(2):
            t = threading.Thread(target=run, args=(i,))
            t.start()
            threads.append(t)
            wait_until(lambda: sum(1 for s in sessions(d) if s["state"] == "HELD") == i + 1,
                       what=f"{i + 1} held sessions")
        time.sleep(0.3)
        assert not done, "a request went through during the hold"
        held = [s for s in sessions(d) if s["state"] == "HELD"]
        assert len(held) == 2 and all(s["held_ms"] > 0 for s in held)
        released_at = time.monotonic()
        r = d.ctl("release", "demo")
        assert r.returncode == 0, r.stderr
        for t in threads:
            t.join(10)
        assert results == {0: 100, 1: 101}
        assert all(at >= released_at for at in done)
        resumed = [int(ln.split(" T-")[1].split()[0]) for ln in d.log().splitlines() if "HELD -> IDLE" in ln]
        assert resumed == sorted(s["id"] for s in held), resumed
    finally:
        for c in conns:
            c.close()


def test_clients_listing_and_unmovable(tds_daemon, doubles):
    d = tds_daemon()
    with pyt(proxied(d, doubles), blocksize=8192, appname="sy-listing") as c:
        cur = c.cursor()
        cur.execute("SELECT 1")
        cur.fetchall()
        (s,) = sessions(d)
        assert s["user"] == doubles[0].user and s["side"] == "business" and s["state"] == "IDLE"
        assert s["database"] == "master" and s["packet_size"] == 8192 and s["app"] == "sy-listing"
        assert s["movable"] is True and s["unmovable_reason"] is None
        assert s["in_transaction"] is False and s["tds_version"] == "0x74000004" and s["requests"] >= 1
        assert re.match(r"127\.0\.0\.1:\d+$", s["peer"]) and s["tls"] is False
        assert d.pair_status()["clients"] == 1
    wait_until(lambda: d.pair_status()["clients"] == 0, what="the session closed with its client")


def test_unreachable_backend_closes_the_client_only(tds_daemon, doubles):
    with socket.socket() as s:                                  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    d = tds_daemon(business=dead)
    with pytest.raises(Exception):
        pyt(proxied(d, doubles))
    wait_until(lambda: "cannot connect to the business server" in d.log(), what="the log line")
    assert d.pair_status()["clients"] == 0


ROWS = 5


def test_slow_reader_backpressure_and_reset(tds_daemon, doubles):
    """A 12 MB result to a client that does not read (a small receive buffer): the proxy stops reading the server past its high water
    and resumes as the client reads; every byte arrives. A request with RESETCONNECTION is relayed (the
    server's reset ENVCHANGE comes back) and counted."""
    d = tds_daemon()
    with pyt(direct(doubles)) as c:
        cur = c.cursor()
        cur.execute("IF OBJECT_ID('bp_big') IS NOT NULL DROP TABLE bp_big")
        cur.execute("CREATE TABLE bp_big (id int PRIMARY KEY, s nvarchar(max))")
        for i in range(ROWS):
            cur.execute("INSERT INTO bp_big VALUES (%s, %s)", (i, chr(0x4e00 + i) * 1_200_000))
    s = raw_logged_in(d, doubles, rcvbuf=8192)
    try:
        batch = ALL_HEADERS + "SELECT id, s FROM bp_big ORDER BY id".encode("utf-16-le")
        s.sendall(packet(0x01, batch, status=0x01 | 0x08))          # EOM | RESETCONNECTION
        wait_until(lambda: "server reads paused" in d.log(), what="the backend paused")
        (sess,) = sessions(d)
        assert sess["state"] == "BUSY" and sess["resets"] == 1
        time.sleep(0.5)
        payload = read_message(s)
        assert len(payload) > ROWS * 2_400_000
        assert payload[-13] == 0xFD and payload[-12] & 0x20 == 0    # the final DONE, no attention
        assert bytes([0xE3, 3, 0, 18, 0, 0]) in payload[:200]       # ENVCHANGE 18: the server's reset ack
        for i in range(ROWS):
            assert (chr(0x4e00 + i) * 1000).encode("utf-16-le") in payload
        assert "server reads resumed" in d.log()
        wait_until(lambda: sessions(d)[0]["state"] == "IDLE", what="the session idle again")
    finally:
        s.close()


# ALL_HEADERS with a transaction descriptor header (0, outstanding requests 1), as SQL_BATCH requires (TDS 7.2+)
ALL_HEADERS = struct.pack("<IIHQI", 22, 18, 2, 0, 1)


# --- session tracking (what a move must restore, what pins a session) -----------------------------------------

def session_of(d, app):
    (s,) = [s for s in sessions(d) if s["app"] == app]
    return s


def test_clients_track_database_set_options_and_transactions(tds_daemon, doubles):
    """`clients` follows the server's ENVCHANGEs and the SET options a session changed: USE, SET ..., a
    transaction opened after a result set of many types and NULL rows (the scan walks every row to see the
    ENVCHANGE behind it) and closed again, the transaction pytds opens itself (autocommit off)."""
    d = tds_daemon()
    with pyt(direct(doubles)) as c:
        try:
            c.cursor().execute("CREATE DATABASE trackdb")
        except pytds.Error:
            pass                                                # left by an earlier run of the module
    with pyt(proxied(d, doubles), appname="sy-track") as c:
        cur = c.cursor()
        cur.execute("SET XACT_ABORT ON; SET DATEFORMAT dmy\nset transaction isolation level serializable")
        cur.execute("USE trackdb")
        cur.execute("IF OBJECT_ID('tr') IS NOT NULL DROP TABLE tr")
        cur.execute("CREATE TABLE tr (id int PRIMARY KEY, name nvarchar(20), body nvarchar(max), "
                    "price decimal(10,2), at datetime2(3), u uniqueidentifier, b varbinary(max))")
        cur.execute("INSERT INTO tr VALUES (1, N'a', REPLICATE(N'x', 9000), 1.25, '2026-01-02 03:04:05', "
                    "NEWID(), 0x0102), (2, NULL, NULL, NULL, NULL, NULL, NULL)")
        s = session_of(d, "sy-track")
        assert s["database"] == "trackdb" and s["in_transaction"] is False
        assert s["set_options"] == ["SET XACT_ABORT ON", "SET DATEFORMAT dmy",
                                    "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"], s
        assert s["movable"] is True and s["unmovable_reason"] is None, s
        cur.execute("SELECT * FROM tr ORDER BY id; BEGIN TRANSACTION")
        assert len(cur.fetchall()) == 2
        s = session_of(d, "sy-track")
        assert s["in_transaction"] is True, s
        cur.execute("ROLLBACK")
        assert session_of(d, "sy-track")["in_transaction"] is False
    with pyt(proxied(d, doubles), appname="sy-track2", autocommit=False, database="trackdb") as c:
        cur = c.cursor()
        cur.execute("UPDATE tr SET name = N'b' WHERE id = 1")
        assert session_of(d, "sy-track2")["in_transaction"] is True
        c.commit()                                          # pytds commits and begins the next one at once
        cur.execute("SELECT @@TRANCOUNT")
        assert session_of(d, "sy-track2")["in_transaction"] is (cur.fetchone()[0] > 0)


def test_clients_track_prepared_handles(tds_daemon, doubles):
    """sp_prepare / sp_prepexec handles come from the server's RETURNVALUE and leave with sp_unprepare."""
    from pytds import tds_base
    d = tds_daemon()
    with pyt(proxied(d, doubles), appname="sy-prep") as c:
        cur = c.cursor()
        h1 = cur.callproc(tds_base.SP_PREPARE, (pytds.output(param_type="int"), "@a int", "SELECT @a + 1", 1))[0]
        h2 = cur.callproc(tds_base.InternalProc(13, "sp_prepexec"),
                          (pytds.output(param_type="int"), "@a int", "SELECT @a * 2", 21))[0]
        assert cur.fetchall() == [(42,)]
        assert isinstance(h1, int) and isinstance(h2, int) and h1 != h2
        assert session_of(d, "sy-prep")["prepared"] == 2
        cur.callproc(tds_base.SP_EXECUTE, (h1, 41))
        assert cur.fetchall() == [(42,)]
        cur.callproc(tds_base.InternalProc(15, "sp_unprepare"), (h1,))
        s = session_of(d, "sy-prep")
        assert s["prepared"] == 1 and s["requests"] >= 4


@pytest.mark.parametrize("sql, reason", [
    ("CREATE TABLE #work (a int)", "temporary table #work"),
    ("EXEC sp_getapplock @Resource = 'r', @LockMode = 'Exclusive', @LockOwner = 'Session'",
     "application lock (sp_getapplock)"),
    ("DECLARE c1 CURSOR FOR SELECT 1", "open server cursor"),
    ("BEGIN DISTRIBUTED TRANSACTION", "distributed transaction"),
])
def test_clients_unmovable_markers(tds_daemon, doubles, sql, reason):
    """What pins a session to its server is named in `clients` (the request is what counts: the double does
    not run all of these, SQL Server would); what undoes it makes the session tracked-only again."""
    d = tds_daemon()
    with pyt(proxied(d, doubles), appname="sy-pin") as c:
        cur = c.cursor()
        try:
            cur.execute(sql)
        except pytds.Error:
            pass                                                # the double's own limits (README)
        s = session_of(d, "sy-pin")
        assert s["movable"] is False and s["unmovable_reason"] == reason, s
        if reason.startswith("temporary"):
            try:
                cur.execute("DROP TABLE #work")
            except pytds.Error:
                pass
            s = session_of(d, "sy-pin")
            assert s["movable"] is True and s["unmovable_reason"] is None, s
