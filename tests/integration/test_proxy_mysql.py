"""The MariaDB proxy with real clients: what a user relies on is that going through Switchyard gives the
same results, the same errors and the same session behaviour as connecting to the server directly."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time

import pymysql
import pytest

from conftest import ADMIN_PASSWORD, ADMIN_USER, BUILD_DIR

APP_USER, APP_PASSWORD = "app", "app-pw-1"


def wait_for(cond, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="module")
def app_account(mariadb_pair):
    """An ordinary application account on both sides, and a test schema."""
    for s in mariadb_pair:
        s.sql(f"CREATE USER IF NOT EXISTS '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'")
        s.sql(f"GRANT ALL PRIVILEGES ON *.* TO '{APP_USER}'@'%'")
        s.sql("CREATE DATABASE IF NOT EXISTS shop")
    return APP_USER, APP_PASSWORD


@pytest.fixture
def proxy(daemon, app_account):
    return daemon()


def rows(conn, sql, args=None):
    with conn.cursor() as c:
        c.execute(sql, args)
        return c.fetchall()


def error_of(conn, sql):
    with pytest.raises(pymysql.MySQLError) as ei:
        with conn.cursor() as c:
            c.execute(sql)
    return ei.value.args


QUERIES = [
    "SELECT 1, 'a', NULL, 3.14, CAST(-7 AS SIGNED), X'00ff', DATE('2024-02-29'), TIMESTAMP('2024-01-01 10:11:12.345')",
    "SELECT @@version, @@autocommit, @@sql_mode, DATABASE()",
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'mysql' ORDER BY table_name LIMIT 20",
    "SELECT REPEAT('x', 70000), 'ü€😀'",
    "SHOW VARIABLES LIKE 'character_set_%'",
    "SELECT seq, seq * 2 FROM seq_1_to_2000",
]


def test_pymysql_results_identical_to_direct(proxy, mariadb_pair, connect):
    via, direct = connect(proxy, database="shop"), connect(mariadb_pair.business, database="shop")
    for sql in QUERIES:
        assert rows(via, sql) == rows(direct, sql), sql
    # multi-statement text protocol
    via2 = connect(proxy, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    with via2.cursor() as c:
        c.execute("SELECT 1; SELECT 2, 3; DO 0")
        first = c.fetchall()
        assert c.nextset()
        second = c.fetchall()
    assert first == ((1,),) and second == ((2, 3),)


def test_transactions_and_rollback(proxy, connect):
    c = connect(proxy, database="shop", autocommit=False)
    with c.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS tx (id INT PRIMARY KEY, v INT)")
        cur.execute("DELETE FROM tx")
        c.commit()
        cur.execute("INSERT INTO tx VALUES (1, 10)")
        c.commit()
        cur.execute("INSERT INTO tx VALUES (2, 20)")
        c.rollback()
        cur.execute("BEGIN")
        cur.execute("UPDATE tx SET v = 11 WHERE id = 1")
        cur.execute("ROLLBACK")
        cur.execute("SELECT id, v FROM tx ORDER BY id")
        assert cur.fetchall() == ((1, 10),)
    # autocommit=0: that SELECT opened a transaction, and the proxy knows it from the server's status
    clients = proxy.admin_ok("clients", pair="demo")["clients"]
    assert len(clients) == 1 and clients[0]["user"] == ADMIN_USER and clients[0]["in_transaction"] is True
    c.commit()
    assert proxy.admin_ok("clients", pair="demo")["clients"][0]["in_transaction"] is False


def test_errors_pass_through_with_server_codes_and_text(proxy, mariadb_pair, connect):
    via, direct = connect(proxy, database="shop"), connect(mariadb_pair.business, database="shop")
    for c in (via, direct):
        with c.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS dup (id INT PRIMARY KEY)")
            cur.execute("INSERT IGNORE INTO dup VALUES (1)")
    for sql in ("SELEC 1", "SELECT * FROM nosuchdb.t", "INSERT INTO dup VALUES (1)", "SELECT * FROM nosuchtable"):
        assert error_of(via, sql) == error_of(direct, sql), sql
    assert error_of(via, "SELEC 1")[0] == 1064
    assert error_of(via, "INSERT INTO dup VALUES (1)")[0] == 1062
    # the connection is still usable after errors
    assert rows(via, "SELECT 42") == ((42,),)


def test_unknown_database_on_connect(proxy, mariadb_pair):
    errs = []
    for target in (proxy, mariadb_pair.business):
        with pytest.raises(pymysql.MySQLError) as ei:
            pymysql.connect(host=target.host, port=target.port, user=ADMIN_USER, password=ADMIN_PASSWORD,
                            database="no_such_db")
        errs.append(ei.value.args)
    assert errs[0] == errs[1] and errs[0][0] == 1049


def test_wrong_password_and_unknown_user(proxy, app_account):
    for user, pw in ((APP_USER, "wrong"), ("nobody_here", "x")):
        with pytest.raises(pymysql.err.OperationalError) as ei:
            pymysql.connect(host=proxy.host, port=proxy.port, user=user, password=pw)
        code, msg = ei.value.args
        assert code == 1045
        assert msg == f"Access denied for user '{user}'@'localhost' (using password: YES)"
    with pytest.raises(pymysql.err.OperationalError) as ei:
        pymysql.connect(host=proxy.host, port=proxy.port, user=APP_USER, password="")
    assert ei.value.args == (1045, f"Access denied for user '{APP_USER}'@'localhost' (using password: NO)")
    # the proxy still serves the right password
    c = pymysql.connect(host=proxy.host, port=proxy.port, user=APP_USER, password=APP_PASSWORD)
    assert rows(c, "SELECT CURRENT_USER()") == ((f"{APP_USER}@%",),)
    c.close()


def test_account_created_while_running_logs_in_at_once(proxy, mariadb_pair, connect):
    connect(proxy)  # the account cache is loaded now
    user = f"late_{os.getpid()}_{int(time.time() * 1000) % 100000}"
    mariadb_pair.business.sql(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'late-pw'")
    try:
        c = pymysql.connect(host=proxy.host, port=proxy.port, user=user, password="late-pw")
        assert rows(c, "SELECT CURRENT_USER()") == ((f"{user}@%",),)
        c.close()
        # and a changed password takes effect at once too
        mariadb_pair.business.sql(f"ALTER USER '{user}'@'%' IDENTIFIED BY 'new-pw'")
        with pytest.raises(pymysql.err.OperationalError):
            pymysql.connect(host=proxy.host, port=proxy.port, user=user, password="late-pw")
        pymysql.connect(host=proxy.host, port=proxy.port, user=user, password="new-pw").close()
    finally:
        mariadb_pair.business.sql(f"DROP USER IF EXISTS '{user}'@'%'")


def test_other_auth_plugin_is_decided_by_the_server(proxy, mariadb_pair):
    """Other plugins' logins are relayed to the server, which decides: unix_socket over TCP is refused with
    the server's own error, as directly."""
    mariadb_pair.business.sql("CREATE USER IF NOT EXISTS 'sock_only'@'%' IDENTIFIED VIA unix_socket")
    try:
        with pytest.raises(pymysql.err.OperationalError) as direct:
            pymysql.connect(host=mariadb_pair.business.host, port=mariadb_pair.business.port, user="sock_only",
                            password="x", connect_timeout=5)
        with pytest.raises(pymysql.err.OperationalError) as ei:
            pymysql.connect(host=proxy.host, port=proxy.port, user="sock_only", password="x", connect_timeout=5)
        code, msg = ei.value.args
        assert code == direct.value.args[0] == 1698 and "sock_only" in msg
    finally:
        mariadb_pair.business.sql("DROP USER IF EXISTS 'sock_only'@'%'")


def test_blob_20mb_round_trip(proxy, connect):
    c = connect(proxy, database="shop")
    blob = os.urandom(20 * 1024 * 1024)
    with c.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS blobs (id INT PRIMARY KEY, b LONGBLOB)")
        cur.execute("REPLACE INTO blobs VALUES (1, %s)", (blob,))
        cur.execute("SELECT b, LENGTH(b), MD5(b) FROM blobs WHERE id = 1")
        got, length, md5 = cur.fetchone()
    assert length == len(blob) and got == blob
    import hashlib
    assert md5 == hashlib.md5(blob).hexdigest()


def test_session_state_tracked(proxy, connect):
    c = connect(proxy)
    with c.cursor() as cur:
        cur.execute("USE shop")
        cur.execute("SET SESSION sql_mode = 'ANSI_QUOTES', time_zone = '+03:00'")
        cur.execute("CREATE TABLE IF NOT EXISTS g (id INT PRIMARY KEY)")
        cur.execute("REPLACE INTO g VALUES (1)")
        cur.execute("SELECT @@last_gtid")
        (gtid,) = cur.fetchone()
    me = proxy.admin_ok("clients", pair="demo")["clients"][0]
    assert me["schema"] == "shop"
    assert me["last_gtid"] == gtid and gtid.startswith("1-10-")


def test_kill_query_reaches_the_right_backend_thread(proxy, connect):
    victim, killer, bystander = connect(proxy), connect(proxy), connect(proxy)
    result = {}

    def sleeper():
        try:
            with victim.cursor() as cur:
                cur.execute("SELECT SLEEP(30)")
                result["rows"] = cur.fetchall()
        except pymysql.MySQLError as e:
            result["error"] = e.args

    t = threading.Thread(target=sleeper)
    started = time.monotonic()
    t.start()
    wait_for(lambda: any(cl["state"] == "BUSY" for cl in proxy.admin_ok("clients", pair="demo")["clients"]),
             what="victim busy")
    assert victim.thread_id() >= 1_000_000_000  # the proxy's id, as the greeting said
    with killer.cursor() as cur:
        cur.execute(f"KILL QUERY {victim.thread_id()}")
    t.join(10)
    assert not t.is_alive() and time.monotonic() - started < 10
    # SLEEP() interrupted by KILL QUERY returns 1 (MariaDB) or raises 1317: either way, early
    assert result.get("rows") == ((1,),) or result.get("error", (0,))[0] == 1317
    assert rows(victim, "SELECT 5") == ((5,),)       # KILL QUERY kept the connection
    assert rows(bystander, "SELECT 6") == ((6,),)
    with killer.cursor() as cur:
        with pytest.raises(pymysql.MySQLError) as ei:
            cur.execute("KILL 1999999999")
    assert ei.value.args == (1094, "Unknown thread id: 1999999999")
    with killer.cursor() as cur:
        cur.execute(f"KILL CONNECTION {bystander.thread_id()}")
    with pytest.raises(pymysql.MySQLError):
        rows(bystander, "SELECT 7")


def test_mariadb_cli_output_identical_to_direct(proxy, mariadb_pair):
    sql = "SELECT 1 AS a, 'x' AS b; SELECT seq FROM seq_1_to_5; SHOW DATABASES LIKE 'shop';"

    def run(port):
        return subprocess.run(["mariadb", "--protocol=TCP", "-h", "127.0.0.1", "-P", str(port), "-u", ADMIN_USER,
                               f"-p{ADMIN_PASSWORD}", "--batch", "-e", sql, "shop"], capture_output=True, text=True,
                              timeout=30)

    a, b = run(proxy.port), run(mariadb_pair.business.port)
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    err = subprocess.run(["mariadb", "--protocol=TCP", "-h", "127.0.0.1", "-P", str(proxy.port), "-u", ADMIN_USER,
                          f"-p{ADMIN_PASSWORD}", "-e", "SELEC 1"], capture_output=True, text=True, timeout=30)
    assert err.returncode == 1 and "ERROR 1064 (42000)" in err.stderr


def test_load_data_local_infile(proxy, connect, tmp_path):
    data = tmp_path / "rows.csv"
    data.write_text("".join(f"{i},name-{i}\n" for i in range(1, 5001)))
    c = connect(proxy, database="shop", local_infile=True)
    with c.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS li (id INT PRIMARY KEY, name VARCHAR(32))")
        cur.execute("DELETE FROM li")
        cur.execute(f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE li FIELDS TERMINATED BY ','")
        cur.execute("SELECT COUNT(*), MAX(id) FROM li")
        assert cur.fetchone() == (5000, 5000)


def test_server_side_prepared_statements(proxy, mariadb_pair):
    client = BUILD_DIR / "sy_test_client"
    out = {}
    for name, target in (("direct", mariadb_pair.business), ("proxy", proxy)):
        r = subprocess.run([str(client), "127.0.0.1", str(target.port), ADMIN_USER, ADMIN_PASSWORD, "stmt"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        out[name] = r.stdout
    assert out["proxy"] == out["direct"]
    assert "row 2 item-2 12.50 300000" in out["proxy"]
    assert "dup 1062 23000 Duplicate entry '1' for key 'PRIMARY'" in out["proxy"]


def test_change_user_and_reset_connection(proxy, app_account):
    client = BUILD_DIR / "sy_test_client"
    r = subprocess.run([str(client), "127.0.0.1", str(proxy.port), ADMIN_USER, ADMIN_PASSWORD, "change_user",
                        APP_USER, APP_PASSWORD], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert f"row {ADMIN_USER}@%" in lines[0] or f"row {ADMIN_USER}@localhost" in lines[0]
    assert "changed" in lines
    assert f"row {APP_USER}@% NULL" in lines  # user variables do not survive COM_CHANGE_USER
    wrong = [x for x in lines if x.startswith("change_user_wrong")]
    assert wrong and wrong[0].startswith("change_user_wrong 1045 28000 Access denied for user 'app'@'localhost'")
    r = subprocess.run([str(client), "127.0.0.1", str(proxy.port), ADMIN_USER, ADMIN_PASSWORD, "reset"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-4:] == ["row 7", "row NULL", "row 1", "DONE"]


def test_500_concurrent_connections(proxy, connect):
    conns = []
    errors = []
    lock = threading.Lock()

    def opener(n):
        try:
            for _ in range(n):
                c = pymysql.connect(host=proxy.host, port=proxy.port, user=ADMIN_USER, password=ADMIN_PASSWORD,
                                    connect_timeout=30)
                with lock:
                    conns.append(c)
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=opener, args=(50,)) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert errors == []
        assert len(conns) == 500
        assert proxy.pair_status()["clients"] == 500
        for i, c in enumerate(conns):
            assert rows(c, "SELECT %s", (i,)) == ((i,),)
    finally:
        for c in conns:
            c.close()
    wait_for(lambda: proxy.pair_status()["clients"] == 0, what="sessions closed")


def test_hold_release_with_open_transaction(proxy, connect):
    setup = connect(proxy, database="shop")
    with setup.cursor() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS hold_t (id INT PRIMARY KEY, v INT)")
        cur.execute("DELETE FROM hold_t")
    in_txn = connect(proxy, database="shop", autocommit=False)
    other = connect(proxy, database="shop")
    with in_txn.cursor() as cur:
        cur.execute("BEGIN")
        cur.execute("INSERT INTO hold_t VALUES (1, 1)")
    held = proxy.admin_ok("hold", pair="demo")
    assert held["held"] is True
    done = {}

    def waiter():
        with other.cursor() as cur:
            cur.execute("INSERT INTO hold_t VALUES (2, 2)")
        done["at"] = time.monotonic()

    t = threading.Thread(target=waiter)
    t.start()
    # the other session is held ...
    wait_for(lambda: any(c["state"] == "HELD" for c in proxy.admin_ok("clients", pair="demo")["clients"]),
             what="a held session")
    assert "at" not in done
    # ... while the open transaction runs to its end
    with in_txn.cursor() as cur:
        cur.execute("INSERT INTO hold_t VALUES (3, 3)")
        cur.execute("COMMIT")
    assert "at" not in done
    time.sleep(0.2)
    assert "at" not in done
    released = time.monotonic()
    r = proxy.admin_ok("release", pair="demo")
    assert r["was_held"] is True
    t.join(10)
    assert done["at"] >= released
    assert rows(setup, "SELECT id FROM hold_t ORDER BY id") == ((1,), (2,), (3,))


def test_ping_answered_during_hold_and_hold_bounded(daemon, app_account, connect):
    d = daemon(max_hold_ms=800)
    c = connect(d)
    d.admin_ok("hold", pair="demo")
    t0 = time.monotonic()
    c.ping(reconnect=False)  # answered by the proxy while held
    assert time.monotonic() - t0 < 0.5
    assert rows(c, "SELECT 1") == ((1,),)  # waits for the automatic release after max_hold_ms
    waited = time.monotonic() - t0
    assert 0.5 < waited < 5
    assert d.pair_status()["held"] is False


def raw_connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    hdr = s.recv(4)
    (length,) = struct.unpack("<I", hdr[:3] + b"\0")
    greeting = b""
    while len(greeting) < length:
        greeting += s.recv(length - len(greeting))
    return s, greeting


def read_packet(s):
    hdr = b""
    while len(hdr) < 4:
        chunk = s.recv(4 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    (length,) = struct.unpack("<I", hdr[:3] + b"\0")
    body = b""
    while len(body) < length:
        chunk = s.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    return body


@pytest.mark.parametrize("garbage", [
    b"\x05\x00\x00\x01hello",                        # not a handshake response
    b"\xff\xff\xff\x01" + b"A" * 100,                # oversized length, then vanish
    b"\x20\x00\x00\x01" + b"\x00" * 32,              # no PROTOCOL_41
    b"\x01\x00",                                     # truncated header, then close
])
def test_malformed_handshake_keeps_daemon_serving(proxy, connect, garbage):
    healthy = connect(proxy)
    s, greeting = raw_connect(proxy.port)
    assert greeting[0] == 10
    s.sendall(garbage)
    s.shutdown(socket.SHUT_WR)
    reply = read_packet(s)
    assert reply is None or reply[0] == 0xFF
    if reply is not None:
        assert struct.unpack("<H", reply[1:3])[0] in (1043, 1045)
    s.close()
    assert rows(healthy, "SELECT 1") == ((1,),)
    assert rows(connect(proxy), "SELECT 2") == ((2,),)


def test_malformed_command_and_vanishing_client(proxy, connect):
    healthy = connect(proxy)
    c = connect(proxy)
    sock = c._sock
    sock.sendall(b"\x00\x00\x00\x00")               # zero-length command
    reply = read_packet(sock)
    assert reply is not None and reply[0] == 0xFF and struct.unpack("<H", reply[1:3])[0] == 1047
    # a client that sends half a query and vanishes
    c2 = connect(proxy)
    c2._sock.sendall(b"\x40\x00\x00\x00\x03SELECT")
    c2._sock.shutdown(socket.SHUT_RDWR)  # (PyMySQL's makefile() keeps the fd open past close())
    # a client that vanishes while its query runs
    c3 = connect(proxy)
    c3._sock.sendall(b"\x10\x00\x00\x00\x03SELECT SLEEP(2)")
    c3._sock.shutdown(socket.SHUT_RDWR)
    assert rows(healthy, "SELECT 3") == ((3,),)
    wait_for(lambda: proxy.pair_status()["clients"] == 1, what="broken sessions closed "
             + repr(proxy.admin_ok("clients", pair="demo")))


def test_backend_dies_mid_result(daemon, app_account, connect, mariadb_pair):
    d = daemon()
    victim, watcher = connect(d), connect(mariadb_pair.business)
    (tid,) = rows(victim, "SELECT CONNECTION_ID()")[0]
    err = {}

    def big():
        try:
            rows(victim, "SELECT a.seq, REPEAT('x', 1000) FROM seq_1_to_100000 a, seq_1_to_100 b")
        except pymysql.MySQLError as e:
            err["e"] = e.args

    t = threading.Thread(target=big)
    t.start()
    time.sleep(0.3)
    with watcher.cursor() as cur:
        cur.execute(f"KILL CONNECTION {tid}")
    t.join(30)
    assert not t.is_alive() and "e" in err
    assert rows(connect(d), "SELECT 8") == ((8,),)
    assert d.is_running()


def test_sysbench_oltp_read_write_through_proxy(proxy, mariadb_pair):
    common = ["--db-driver=mysql", "--mysql-host=127.0.0.1", f"--mysql-user={ADMIN_USER}",
              f"--mysql-password={ADMIN_PASSWORD}", "--mysql-db=sbtest", "--tables=2", "--table-size=2000"]
    mariadb_pair.business.sql("CREATE DATABASE IF NOT EXISTS sbtest")
    subprocess.run(["sysbench", "oltp_read_write", *common, f"--mysql-port={proxy.port}", "cleanup"],
                   capture_output=True, text=True, timeout=60)
    r = subprocess.run(["sysbench", "oltp_read_write", *common, f"--mysql-port={proxy.port}", "prepare"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["sysbench", "oltp_read_write", *common, f"--mysql-port={proxy.port}", "--threads=8",
                        "--time=10", "--report-interval=0", "run"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # sysbench stops on any error but the deadlock/lock-wait codes it retries (1213, 1205, 1020),
    # which the server raises under contention with or without a proxy
    assert "reconnects:                          0" in r.stdout, r.stdout
    via = pymysql.connect(host=proxy.host, port=proxy.port, user=ADMIN_USER, password=ADMIN_PASSWORD, database="sbtest")
    direct = pymysql.connect(host="127.0.0.1", port=mariadb_pair.business.port, user=ADMIN_USER,
                             password=ADMIN_PASSWORD, database="sbtest")
    for t in ("sbtest1", "sbtest2"):
        assert rows(via, f"CHECKSUM TABLE {t}") == rows(direct, f"CHECKSUM TABLE {t}")
    via.close()
    direct.close()


def test_client_tls(daemon, app_account, tmp_path):
    import ssl
    cert, key = tmp_path / "proxy.pem", tmp_path / "proxy.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    d = daemon(tls_cert=str(cert), tls_key=str(key))
    c = pymysql.connect(host="127.0.0.1", port=d.port, user=APP_USER, password=APP_PASSWORD,
                        ssl_ca=str(cert), ssl_verify_cert=True, ssl_verify_identity=False)
    assert isinstance(c._sock, ssl.SSLSocket) and c._sock.cipher() is not None
    assert rows(c, "SELECT CURRENT_USER(), REPEAT('t', 100000) = REPEAT('t', 100000)") == ((f"{APP_USER}@%", 1),)
    c.close()
    plain = pymysql.connect(host="127.0.0.1", port=d.port, user=APP_USER, password=APP_PASSWORD)
    assert rows(plain, "SELECT 1") == ((1,),)
    plain.close()


def test_tls_refused_when_not_configured(proxy, connect):
    """An SSLRequest to a listener without tls_cert: a clear error, never a plaintext fallback."""
    s, greeting = raw_connect(proxy.port)
    caps = 0x200 | 0x800 | 0x8000 | 0x80000          # PROTOCOL_41 | SSL | SECURE_CONNECTION | PLUGIN_AUTH
    body = struct.pack("<IIB", caps, 1 << 24, 45) + b"\0" * 23
    s.sendall(struct.pack("<I", len(body))[:3] + b"\x01" + body)
    reply = read_packet(s)
    s.close()
    assert reply[0] == 0xFF and struct.unpack("<H", reply[1:3])[0] == 1043
    assert b"TLS is not enabled" in reply
    assert rows(connect(proxy), "SELECT 1") == ((1,),)


def test_init_db_and_locked_account(proxy, mariadb_pair, connect):
    c = connect(proxy)
    c.select_db("shop")  # COM_INIT_DB
    assert rows(c, "SELECT DATABASE()") == (("shop",),)
    assert proxy.admin_ok("clients", pair="demo")["clients"][0]["schema"] == "shop"
    with pytest.raises(pymysql.MySQLError) as ei:
        c.select_db("no_such_db_here")
    assert ei.value.args[0] == 1049
    # a locked account stays locked through the proxy: the server's own error, as direct
    mariadb_pair.business.sql("CREATE USER IF NOT EXISTS 'locked_u'@'%' IDENTIFIED BY 'lk-pw' ACCOUNT LOCK")
    try:
        errs = []
        for target in (proxy, mariadb_pair.business):
            with pytest.raises(pymysql.MySQLError) as ei:
                pymysql.connect(host="127.0.0.1", port=target.port, user="locked_u", password="lk-pw")
            errs.append(ei.value.args)
        assert errs[0] == errs[1] and errs[0][0] == 4151
    finally:
        mariadb_pair.business.sql("DROP USER IF EXISTS 'locked_u'@'%'")
