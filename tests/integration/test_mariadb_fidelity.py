"""The MariaDB path as real clients see it (issue 13, issue 16.3): session state a client's own tracking
settings would hide, transactions a switch aborted, lost backends, and what pins a session to its side.
Each test runs the client that showed the problem (PyMySQL, Connector/C, the mariadb CLI) through the
proxy, and where it matters compares with the same client connected directly."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time

import pymysql
import pytest

from conftest import BUILD_DIR
from helpers import APP_PASSWORD, APP_USER, app_conn, app_user, one, q, wait_for, wait_reverse, wait_state
from test_forward_mariadb import fresh  # noqa: F401 (fixture)
from test_switchover_mariadb import switchable  # noqa: F401

# What MariaDB Connector/J 3.5 sends right after login (its session-tracking list replaces the '*' the
# proxy set on the backend), as captured from the driver.
CONNECTOR_J_SET = ("set autocommit=1, sql_mode = concat(@@sql_mode,',STRICT_TRANS_TABLES'), "
                   "session_track_schema=1, session_track_system_variables = "
                   "CONCAT('autocommit,character_set_client,character_set_connection,character_set_results,"
                   "time_zone,tx_isolation')")

# Session variables of every kind (string, set, integer, double, boolean, enum, numeric offset zone).
SESSION_STATE = ("SET sql_mode='STRICT_ALL_TABLES', group_concat_max_len=4242, max_statement_time=7, "
                 "foreign_key_checks=0, time_zone='+03:00', div_precision_increment=9, "
                 "tx_isolation='READ-COMMITTED', sql_select_limit=77, unique_checks=0, "
                 "lock_wait_timeout=33, character_set_results=latin1")
STATE_QUERY = ("SELECT @@sql_mode, @@group_concat_max_len, @@max_statement_time, @@foreign_key_checks, "
               "@@time_zone, @@div_precision_increment, @@tx_isolation, @@sql_select_limit, "
               "@@unique_checks, @@lock_wait_timeout, @@global.read_only")


def tcp_sockets() -> list:
    """(state, local port, peer port) of every TCP socket on this host (ss, parsed here)."""
    out = subprocess.run(["ss", "-Htan"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 5 and f[3].rsplit(":", 1)[-1].isdigit() and f[4].rsplit(":", 1)[-1].isdigit():
            rows.append((f[0], int(f[3].rsplit(":", 1)[1]), int(f[4].rsplit(":", 1)[1])))
    return rows


def batch(c, sql):
    """A multi-statement text, every result read."""
    with c.cursor() as cur:
        cur.execute(sql)
        while cur.nextset():
            pass


class CClient:
    """tests/clients/sy_test_client in script mode: one Connector/C connection driven line by line."""

    def __init__(self, port: int, user: str = APP_USER, password: str = APP_PASSWORD, compress: bool = False,
                 read_timeout: int = 0):
        env = {**os.environ, **({"SY_TEST_COMPRESS": "1"} if compress else {}),
               **({"SY_TEST_READ_TIMEOUT": str(read_timeout)} if read_timeout else {})}
        self.p = subprocess.Popen([str(BUILD_DIR / "sy_test_client"), "127.0.0.1", str(port), user, password,
                                   "script"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def cmd(self, line: str, timeout: float = 30.0) -> list:
        assert self.p.poll() is None, "client exited"
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        out = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.p.stdout.readline()
            assert row, f"client ended: {out}"
            row = row.rstrip("\n")
            if row == ".":
                return out
            out.append(row)
        raise AssertionError(f"no answer to {line!r}: {out}")

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()


@pytest.fixture
def cclients():
    made = []

    def make(port, **kw):
        c = CClient(port, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


def test_client_tracking_list_keeps_every_session_variable_across_a_switch(switchable, mariadb_pair):
    """Connector/J's connect-time SET replaced the proxy's tracking list: after a switch the session had the
    server's defaults again, silently. Now the proxy reads the session's variables back and keeps them."""
    d, pname, db = switchable
    c = app_conn(d, db)
    one(c, CONNECTOR_J_SET)
    one(c, SESSION_STATE)
    before = one(c, STATE_QUERY)
    assert before[0][:10] == ("STRICT_ALL_TABLES", 4242, 7.0, 0, "+03:00", 9, "READ-COMMITTED", 77, 0, 33), before
    one(c, "SET max_statement_time=8")                            # tracked again after the proxy's re-set
    r = d.admin_ok("switchover", pair=pname)
    assert r["moved_clients"] >= 1, r
    after = one(c, STATE_QUERY)
    assert after[0][:10] == ("STRICT_ALL_TABLES", 4242, 8.0, 0, "+03:00", 9, "READ-COMMITTED", 77, 0, 33), after
    assert after[0][10] == 0 and q(mariadb_pair.business, "SELECT @@global.read_only")[0][0] == 1  # on DR
    c.close()


def test_client_sees_only_the_tracking_it_asked_for(switchable, mariadb_pair, cclients):
    """Same statements directly and through the proxy: the session-state block a Connector/C client reads
    is the same once the client chose its own list (the proxy still tracks everything for itself)."""
    d, pname, db = switchable
    script = ["query SET SESSION session_track_system_variables='autocommit,time_zone'",
              "query SET time_zone='+01:00', sql_mode='ANSI'",
              "query SET autocommit=0",
              "query SET autocommit=1, max_statement_time=3",
              "query SELECT @@time_zone, @@sql_mode"]
    direct = cclients(mariadb_pair.business.port)
    proxied = cclients(d.port)
    want = [direct.cmd(s) for s in script]
    got = [proxied.cmd(s) for s in script]
    assert got == want
    assert any("track time_zone=+01:00" in x for x in want[1]) and not any("sql_mode" in x for x in want[1])


def test_client_that_set_no_tracking_sees_the_server_defaults(switchable, mariadb_pair, cclients):
    """A client that never touched session tracking sees exactly what the server's defaults show directly
    (autocommit, character sets, time_zone, the schema), not the '*' / state-change / last_gtid tracking the
    proxy keeps for itself: the same statements give the same session-state blocks both ways."""
    d, pname, db = switchable
    script = ["query SET time_zone='+02:00', sql_mode='ANSI', max_statement_time=4",
              f"query USE {db}",
              "query SET autocommit=0",
              "query CREATE TABLE trk (id INT PRIMARY KEY)",
              "query INSERT INTO trk VALUES (1)",
              "query COMMIT",
              "query SET autocommit=1, NAMES latin1",
              "query SELECT @@time_zone",
              "query DROP TABLE trk"]
    direct = cclients(mariadb_pair.business.port)
    proxied = cclients(d.port)
    want = [direct.cmd(s) for s in script]
    got = [proxied.cmd(s) for s in script]
    # the server lists tracked variables in the order of its tracking list, which is '*' on the proxy's
    # session: the same entries, possibly in another order within one reply
    assert [sorted(x) for x in got] == [sorted(x) for x in want], (got, want)
    shown = "\n".join(x for lines in got for x in lines)
    assert "track time_zone=+02:00" in shown and "last_gtid" not in shown and "sql_mode" not in shown, shown


def test_commit_after_an_aborted_transaction_ends_it(switchable, mariadb_pair):
    """database/sql treats a failed COMMIT as the end of its transaction and sends nothing more: the next
    statement on that connection must run, as after a deadlock on MariaDB."""
    d, pname, db = switchable
    b, dr = mariadb_pair
    c = app_conn(d, db)
    c.begin()
    one(c, "INSERT INTO t VALUES (70, 'aborted')")
    r = d.admin_ok("switchover", pair=pname)
    assert r["aborted_transactions"] == 1, r
    with pytest.raises(pymysql.err.OperationalError) as e:
        one(c, "COMMIT")
    assert e.value.args[0] == 1213
    one(c, "INSERT INTO t VALUES (71, 'after the failed commit')")     # autocommit, no ROLLBACK sent
    assert q(dr, "SELECT id FROM t WHERE id >= 70 ORDER BY id", db) == ((71,),)
    c.close()


def test_rollback_to_savepoint_does_not_end_an_aborted_transaction(switchable, mariadb_pair):
    d, pname, db = switchable
    c = app_conn(d, db)
    c.begin()
    one(c, "SAVEPOINT s1")
    one(c, "INSERT INTO t VALUES (80, 'aborted')")
    d.admin_ok("switchover", pair=pname)
    for sql in ("ROLLBACK TO SAVEPOINT s1", "INSERT INTO t VALUES (81, 'x')"):
        with pytest.raises(pymysql.err.OperationalError) as e:
            one(c, sql)
        assert e.value.args[0] == 1213, sql
    c.rollback()
    one(c, "INSERT INTO t VALUES (82, 'after rollback')")
    assert q(mariadb_pair.dr, "SELECT id FROM t WHERE id >= 80 ORDER BY id", db) == ((82,),)


def _cli(port: int, script: str, user: str, password: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mariadb", "-h127.0.0.1", f"-P{port}", f"-u{user}", f"-p{password}", "--reconnect",
                           "--force", "--batch", "--skip-column-names"], input=script, capture_output=True,
                          text=True, timeout=60)


def test_killed_backend_reconnects_like_a_direct_connection(switchable, mariadb_pair):
    """KILL of the session's own backend: the mariadb CLI reconnects and goes on, as it does directly; the
    proxy never answers with a client-range code (2013 in an ERR packet reads as a malformed packet)."""
    d, pname, db = switchable
    script = "KILL CONNECTION_ID();\nDO SLEEP(0.3);\nSELECT 1;\nSELECT 2;\n"
    direct = _cli(mariadb_pair.business.port, script, APP_USER, APP_PASSWORD)
    proxied = _cli(d.port, script, APP_USER, APP_PASSWORD)
    assert "malformed" not in proxied.stderr.lower(), proxied.stderr
    assert proxied.stdout == direct.stdout, (direct, proxied)
    codes = lambda err: [line.split()[1] for line in err.splitlines() if line.startswith("ERROR")]  # noqa: E731
    assert codes(proxied.stderr) == codes(direct.stderr), (direct.stderr, proxied.stderr)


def test_lost_backend_is_a_closed_socket_not_a_client_code(switchable, mariadb_pair):
    """A backend killed from elsewhere while the session is idle: PyMySQL sees the connection end (2013),
    and a new connection works."""
    d, pname, db = switchable
    c = app_conn(d, db)
    thread = one(c, "SELECT CONNECTION_ID()")[0][0]
    mariadb_pair.business.sql(f"KILL {thread}")
    time.sleep(0.2)
    with pytest.raises(pymysql.err.OperationalError) as e:
        one(c, "SELECT 1")
    assert e.value.args[0] in (2013, 2006), e.value.args
    c2 = app_conn(d, db)
    assert one(c2, "SELECT 1") == ((1,),)
    c2.close()


@pytest.mark.parametrize("sql,reason", [
    ("/* traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 service=orders */ "
     "CREATE TEMPORARY TABLE scratch (a INT)", "temporary tables"),
    ("/* a long tracing comment, longer than sixty-four bytes of text before the call */ "
     "SELECT GET_LOCK('job-7', 0)", "user locks (GET_LOCK)"),
    ("SELECT 1; CREATE TEMPORARY TABLE scratch2 (a INT)", "temporary tables"),
])
def test_pins_past_comments_and_in_batches(switchable, sql, reason):
    d, pname, db = switchable
    c = app_conn(d, db, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    with c.cursor() as cur:
        cur.execute(sql)
        while cur.nextset():
            pass
    mine = [x for x in d.admin_ok("clients", pair=pname)["clients"] if x["in_transaction"] is False]
    assert any(x["unmovable_reason"] == reason for x in mine), mine
    r = d.admin("switchover", pair=pname)
    assert r["ok"] is False and r["error"]["code"] == "unmovable_sessions", r
    c.close()


def test_pins_end_only_when_they_really_end(switchable):
    d, pname, db = switchable
    c = app_conn(d, db, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    reason = lambda: [x["unmovable_reason"] for x in d.admin_ok("clients", pair=pname)["clients"]]  # noqa: E731
    one(c, "CREATE TEMPORARY TABLE keep (a INT)")
    one(c, "DROP TEMPORARY TABLE IF EXISTS other")          # another name: `keep` still pins
    assert reason() == ["temporary tables"]
    one(c, "CREATE TEMPORARY TABLE keep2 (a INT)")
    with pytest.raises(pymysql.err.MySQLError) as e:
        one(c, "DROP TEMPORARY TABLE keep2, missing")        # fails, but drops keep2: the error says so
    assert e.value.args[0] == 1051 and "missing" in e.value.args[1]
    assert reason() == ["temporary tables"]                  # keep is still there
    with c.cursor() as cur:                                  # created and dropped in one batch
        cur.execute("CREATE TEMPORARY TABLE t2 (a INT); DROP TEMPORARY TABLE t2")
        while cur.nextset():
            pass
    one(c, "DROP TABLE keep")                                # a plain DROP drops the temporary table
    assert reason() == [None]
    one(c, "SELECT GET_LOCK('a', 0), GET_LOCK('b', 0)")
    one(c, "SELECT RELEASE_LOCK('a')")
    assert reason() == ["user locks (GET_LOCK)"]
    one(c, "SELECT RELEASE_LOCK('b')")
    assert reason() == [None]
    assert d.admin_ok("switchover", pair=pname)["moved_clients"] == 1
    c.close()


def test_user_locks_are_tracked_by_name(switchable):
    """RELEASE_LOCK of a lock the session does not hold ends nothing (the server answers NULL, no error): it
    used to lower the count of GET_LOCK calls and let a session that still held a lock move. Locks are now
    followed by name, recursively, with RELEASE_ALL_LOCKS in order within a batch."""
    d, pname, db = switchable
    c = app_conn(d, db, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    reason = lambda: [x["unmovable_reason"] for x in d.admin_ok("clients", pair=pname)["clients"]]  # noqa: E731
    pinned = ["user locks (GET_LOCK)"]

    assert one(c, "SELECT GET_LOCK('a', 0)") == ((1,),)
    assert one(c, "SELECT RELEASE_LOCK('nothing')") == ((None,),)   # not held: ends nothing
    assert reason() == pinned
    assert one(c, "SELECT GET_LOCK('a', 0), RELEASE_LOCK('a')") == ((1, 1),)  # taken twice, released once
    assert reason() == pinned
    assert one(c, "SELECT RELEASE_LOCK('a')") == ((1,),)
    assert reason() == [None]
    batch(c, "SELECT GET_LOCK('x', 0), GET_LOCK('y', 0); DO RELEASE_ALL_LOCKS(); SELECT GET_LOCK('z', 0)")
    assert reason() == pinned                                         # z, taken after the release
    assert one(c, "SELECT RELEASE_LOCK('x'), RELEASE_LOCK('z')") == ((None, 1),)
    assert reason() == [None]
    assert one(c, "SELECT GET_LOCK(CONCAT('j', 1), 0)") == ((1,),)  # no literal name: which one is unknown
    one(c, "SELECT RELEASE_LOCK('j1')")
    assert reason() == pinned
    one(c, "DO RELEASE_ALL_LOCKS()")
    assert reason() == [None]
    assert d.admin_ok("switchover", pair=pname)["moved_clients"] == 1
    c.close()


def test_sql_prepared_statements_pin_like_their_text(switchable):
    """PREPARE s FROM 'CREATE TEMPORARY TABLE ...' then EXECUTE s created a temporary table the proxy did
    not see: the session moved without it. The text of a statement prepared from a literal counts at each
    EXECUTE, as if sent directly; EXECUTE IMMEDIATE 'text' too."""
    d, pname, db = switchable
    c = app_conn(d, db, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    reason = lambda: [x["unmovable_reason"] for x in d.admin_ok("clients", pair=pname)["clients"]]  # noqa: E731

    one(c, "PREPARE p1 FROM 'CREATE TEMPORARY TABLE pt (a INT)'")
    assert reason() == [None]                                   # prepared, not yet run
    one(c, "EXECUTE p1")
    assert reason() == ["temporary tables"]
    one(c, 'PREPARE p2 FROM "DROP TEMPORARY TABLE pt"')
    one(c, "EXECUTE P2")                                        # statement names are case-insensitive
    assert reason() == [None]
    one(c, "DEALLOCATE PREPARE p1")
    one(c, "EXECUTE IMMEDIATE 'SELECT GET_LOCK(''imm'', 0)'")
    assert reason() == ["user locks (GET_LOCK)"]
    one(c, "DO RELEASE_LOCK('imm')")
    assert reason() == [None]
    batch(c, "PREPARE p3 FROM 'LOCK TABLES t READ'; EXECUTE p3; DEALLOCATE PREPARE p3")
    assert reason() == ["LOCK TABLES"]
    one(c, "UNLOCK TABLES")
    assert reason() == [None]
    assert d.admin_ok("switchover", pair=pname)["moved_clients"] == 1
    c.close()


def test_temporary_sequences_pin(switchable):
    """A temporary sequence is session state the other side does not have: a switch moved such a session
    and lost it (the proxy did not see it). It pins the session, like a temporary table, until dropped."""
    d, pname, db = switchable
    c = app_conn(d, db)
    reason = lambda: [x["unmovable_reason"] for x in d.admin_ok("clients", pair=pname)["clients"]]  # noqa: E731
    one(c, "CREATE TEMPORARY SEQUENCE sq START WITH 10")
    assert one(c, "SELECT NEXTVAL(sq)") == ((10,),)
    assert reason() == ["temporary tables"]
    one(c, "DROP TEMPORARY SEQUENCE sq")
    assert reason() == [None]
    one(c, "CREATE TEMPORARY SEQUENCE sq2")
    one(c, "DROP SEQUENCE sq2")                                 # drops the temporary one
    assert reason() == [None]
    assert d.admin_ok("switchover", pair=pname)["moved_clients"] == 1
    c.close()


def test_open_handlers_pin(switchable):
    """An open HANDLER (and its read position) is session state the other side does not have: a switch
    moved such a session and lost it (the proxy did not see it). It pins the session until closed."""
    d, pname, db = switchable
    c = app_conn(d, db)
    reason = lambda: [x["unmovable_reason"] for x in d.admin_ok("clients", pair=pname)["clients"]]  # noqa: E731
    one(c, "HANDLER t OPEN AS h")
    assert one(c, "HANDLER h READ FIRST") == ((1, "one"),)
    assert reason() == ["an open HANDLER"]
    with pytest.raises(pymysql.err.MySQLError):
        one(c, "HANDLER nosuch CLOSE")
    assert reason() == ["an open HANDLER"]
    one(c, "HANDLER h CLOSE")
    assert reason() == [None]
    assert d.admin_ok("switchover", pair=pname)["moved_clients"] == 1
    c.close()


def test_prepared_statements_pin_on_execute(switchable, cclients):
    d, pname, db = switchable
    c = cclients(d.port)
    reasons = lambda: [x["unmovable_reason"] for x in d.admin_ok("clients", pair=pname)["clients"]]  # noqa: E731
    c.cmd(f"query USE {db}")
    assert c.cmd("prepare /* comment */ CREATE TEMPORARY TABLE ptmp (a INT)") == ["prepared 0"]
    assert reasons() == [None]                               # prepared, not yet run
    assert c.cmd("execute")[0].startswith("executed")
    assert reasons() == ["temporary tables"]
    assert c.cmd("query DROP TEMPORARY TABLE ptmp")[0] == "affected 0"
    assert c.cmd("prepare SELECT GET_LOCK('p', 0)") == ["prepared 0"]
    assert c.cmd("execute")[0].startswith("executed")
    assert reasons() == ["user locks (GET_LOCK)"]


@pytest.mark.tsan
def test_busy_sessions_with_user_variables_survive_switches_and_failed_switches(daemon, mariadb_pair, fresh):  # noqa: F811
    """Sessions holding a user variable and running statements back to back: switches are never refused
    for them, and a switch that fails at any step (hold, quiesce, fence, drain, unfence) lets every held
    request go on at once: none waits longer than max_hold_ms, none is lost, no socket is left half-closed."""
    from helpers import wait_state
    from helpers import wait_reverse
    from helpers import app_user
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))", database=fresh)
    b.sql("INSERT INTO t VALUES (1, 'one')", database=fresh)
    app_user(mariadb_pair, fresh)
    pname = f"u{fresh}"
    steps = ["switch_fail_after_hold", "switch_fail_after_quiesce", "switch_fail_after_fence",
             "switch_fail_after_drain", "switch_fail_after_unfence"]
    max_hold_ms = 3000
    d = daemon(pair=pname, objects=f"{fresh}.*", txn_drain_ms=300, max_hold_ms=max_hold_ms,
               env={"SY_FAIL_STEPS": ",".join(steps)})
    wait_state(d, pname, "running")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((1,),), 30, "initial copy")
    d.admin_ok("create-reverse", pair=pname)
    wait_reverse(d, pname, "collecting")

    stop = threading.Event()
    errors, slowest, counts = [], [0.0], {}

    def worker(i):
        c = app_conn(d, fresh)
        one(c, f"SET @tag = 'worker-{i}', @n = {i}")
        n = 0
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                row = one(c, "SELECT @tag, @n, COUNT(*) FROM t")[0]
            except Exception as e:  # noqa: BLE001
                errors.append(f"worker {i}: {e!r}")
                return
            slowest[0] = max(slowest[0], time.monotonic() - t0)
            if row[:2] != (f"worker-{i}", i):
                errors.append(f"worker {i}: user variables became {row[:2]}")
                return
            n += 1
        counts[i] = n
        c.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        for step in steps:                                   # each attempt fails at the next step
            r = d.admin("switchover", pair=pname, _timeout=60)
            assert r["ok"] is False and r["error"]["code"] == "internal" and step in r["error"]["message"], r
            assert d.pair_status(pname)["active_side"] == "business"
            held = [x["held_ms"] for x in d.admin_ok("clients", pair=pname)["clients"]]
            assert max(held) < max_hold_ms, held
            time.sleep(0.2)
        for op in ("switchover", "switchback", "switchover", "switchback"):
            r = d.admin(op, pair=pname, _timeout=60)
            assert r["ok"], r                                 # never refused for busy user-variable sessions
            time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert errors == [], errors
    assert len(counts) == 16 and min(counts.values()) > 0, counts
    assert slowest[0] * 1000 < max_hold_ms + 1500, slowest
    # a client that leaves while the pair is held is closed by the proxy too (no CLOSE-WAIT left behind)
    port = d.port

    wait_for(lambda: [x for x in tcp_sockets() if x[1] == port and x[0] == "CLOSE-WAIT"] == [], 10,
             "no CLOSE-WAIT sockets on the proxy port")


def test_prepared_load_data_local_and_call_with_an_inner_cursor(switchable, mariadb_pair, cclients, tmp_path):
    """Two prepared statements the response tracker did not follow closed the session: LOAD DATA LOCAL
    INFILE (the server asks for the file after COM_STMT_EXECUTE) and a CALL whose procedure opens a cursor
    (MariaDB sets CURSOR_EXISTS without being asked, then sends rows). Same results as directly."""
    d, pname, db = switchable
    b = mariadb_pair.business
    b.sql("SET GLOBAL local_infile = ON")
    b.sql("CREATE TABLE li (id INT PRIMARY KEY, v VARCHAR(20))", database=db)
    with b.connect(database=db) as c:                    # the CLI would split the body at its ';'
        c.cursor().execute("CREATE PROCEDURE pc() BEGIN DECLARE x INT; DECLARE c CURSOR FOR SELECT id FROM t "
                           "ORDER BY id; OPEN c; FETCH c INTO x; CLOSE c; SELECT x AS first_id, 'tail' AS tag; END")
    for s in mariadb_pair:
        s.sql(f"GRANT EXECUTE ON `{db}`.* TO '{APP_USER}'@'%'")
    results = {}
    for where, port in (("direct", b.port), ("proxy", d.port)):
        data = tmp_path / f"{where}.tsv"
        base = 100 if where == "direct" else 200
        data.write_text("".join(f"{base + i}\trow-{i}\n" for i in range(5)))
        c = cclients(port)
        c.cmd(f"query USE {db}")
        out = [c.cmd(f"prepare LOAD DATA LOCAL INFILE '{data}' INTO TABLE li"), c.cmd("execute"),
               c.cmd("prepare CALL pc()"), c.cmd("execute"), c.cmd("execute"),
               c.cmd(f"query SELECT COUNT(*) FROM li WHERE id >= {base} AND id < {base + 100}")]
        results[where] = out
    assert results["proxy"] == results["direct"], results
    assert results["proxy"][1] == ["executed rows 0"] and results["proxy"][5][0] == "row 5", results
    assert [x["unmovable_reason"] for x in d.admin_ok("clients", pair=pname)["clients"]] == [None]


def test_a_long_read_does_not_hold_up_the_others(daemon, mariadb_pair, fresh):  # noqa: F811
    """An autocommit SELECT SLEEP(3) in flight, longer than max_hold_ms: the switch goes on without waiting
    for it (the others pause briefly), the read finishes on the old side, then its session moves with its
    user variables."""
    from helpers import wait_state
    from helpers import wait_reverse
    from helpers import app_user
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))", database=fresh)
    app_user(mariadb_pair, fresh)
    pname = f"r{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", txn_drain_ms=300, max_hold_ms=2000)
    wait_state(d, pname, "running")
    d.admin_ok("create-reverse", pair=pname)
    wait_reverse(d, pname, "collecting")
    reader, writer = app_conn(d, fresh), app_conn(d, fresh)
    one(reader, "SET @mine = 'kept'")
    one(writer, "INSERT INTO t VALUES (1, 'before')")
    got = {}

    def long_read():
        t0 = time.monotonic()
        got["sleep"] = one(reader, "SELECT SLEEP(3), @@global.read_only")
        got["read_s"] = time.monotonic() - t0
    t = threading.Thread(target=long_read)
    t.start()
    time.sleep(0.5)                                         # the read is running on business
    r = d.admin_ok("switchover", pair=pname)
    assert r["pause_ms"] < 1500 and r["moved_clients"] == 2, r
    one(writer, "INSERT INTO t VALUES (2, 'after')")          # on DR at once, while the read still runs
    assert q(dr, "SELECT v FROM t WHERE id = 2", fresh) == (("after",),)
    t.join(10)
    assert got["sleep"] == ((0, 1),), got                    # it finished where it started: business, fenced by then
    assert one(reader, "SELECT @mine, @@global.read_only") == (("kept", 0),)   # moved to DR, variable kept
    assert q(b, "SELECT @@global.read_only")[0][0] == 1
    reader.close()
    writer.close()


@pytest.mark.parametrize("which", ["connection_id", "handshake_id"])
def test_kill_by_either_id_and_processlist_agree(switchable, mariadb_pair, which):
    """A session has two ids: the one in the proxy's greeting (>= 1000000000, what the driver reports) and
    its backend thread (CONNECTION_ID(), SHOW PROCESSLIST). KILL QUERY and KILL CONNECTION of either act on
    that session, as they would directly."""
    d, pname, db = switchable
    victim, killer = app_conn(d, db), app_conn(d, db)
    backend_id = one(victim, "SELECT CONNECTION_ID()")[0][0]
    assert victim.thread_id() >= 1_000_000_000 and backend_id < 1_000_000_000
    listed = {x["id"]: x["backend_thread"] for x in d.admin_ok("clients", pair=pname)["clients"]}
    assert listed[victim.thread_id()] == backend_id
    ids = [r[0] for r in one(killer, "SHOW PROCESSLIST")]
    assert backend_id in ids                                  # the processlist shows the backend thread id
    target = backend_id if which == "connection_id" else victim.thread_id()
    got = {}

    def sleeper():
        try:
            got["rows"] = one(victim, "SELECT SLEEP(20)")
        except pymysql.err.MySQLError as e:
            got["error"] = e.args
    t = threading.Thread(target=sleeper)
    t.start()
    wait_for(lambda: any(r[0] == backend_id and (r[7] or "").startswith("SELECT SLEEP")
                         for r in one(killer, "SHOW PROCESSLIST")), 10, "the sleep is running")
    one(killer, f"KILL QUERY {target}")
    t.join(10)
    # MariaDB ends an interrupted SLEEP() with result 1 (or error 1317): either way the connection stays
    assert got.get("rows") == ((1,),) or got.get("error", (0,))[0] == 1317, got
    assert one(victim, "SELECT 1") == ((1,),)
    one(killer, f"KILL CONNECTION {target}")
    with pytest.raises(pymysql.err.OperationalError) as e:
        one(victim, "SELECT 1")
    assert e.value.args[0] in (2013, 2006), e.value.args
    wait_for(lambda: backend_id not in [r[0] for r in one(killer, "SHOW PROCESSLIST")], 10,
             "the killed thread has left the processlist")    # the server ends a killed thread shortly after
    killer.close()


def test_bulk_inserts_use_bulk_execute_across_a_switch(switchable, mariadb_pair, cclients):
    """Connector/C array binding: one COM_STMT_BULK_EXECUTE per batch through the proxy (as directly), and
    the same prepared statement keeps working on the other side after a switch (its id is mapped)."""
    d, pname, db = switchable
    b, dr = mariadb_pair
    b.sql("CREATE TABLE bk (id INT PRIMARY KEY, v VARCHAR(20))", database=db)
    wait_for(lambda: q(dr, f"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='{db}' AND "
                           "TABLE_NAME='bk'") == ((1,),), 30, "table on DR")
    execs = lambda srv: int(q(srv, "SHOW GLOBAL STATUS LIKE 'Com_stmt_execute'")[0][1])  # noqa: E731
    c = cclients(d.port)
    c.cmd(f"query USE {db}")
    before = execs(b)
    assert c.cmd("bulk bk 1 500") == ["bulk_ok 500"]
    assert execs(b) - before <= 2, "500 rows should be one bulk execute, not a round trip per row"
    d.admin_ok("switchover", pair=pname)
    before_dr = execs(dr)
    assert c.cmd("bulk bk 501 500") == ["bulk_ok 500"]     # the same statement, re-prepared on DR
    assert execs(dr) - before_dr <= 2
    assert q(dr, "SELECT COUNT(*), SUM(id) FROM bk", db) == ((1000, sum(range(1, 1001))),)
    wait_for(lambda: q(b, "SELECT COUNT(*) FROM bk", db) == ((1000,),), 30, "reverse applied")


def test_a_client_that_never_reads_cannot_keep_its_backend(switchable, mariadb_pair):
    """A session holding a user lock streams a large result to a client that stops reading; a forced
    switchover closes it (1927). Its backend on business is released at once (the lock is free for others
    immediately), and the proxy drops the client once the final error could not be flushed in time."""
    import socket as so
    d, pname, db = switchable
    b = mariadb_pair.business
    stuck = app_conn(d, db, cursorclass=pymysql.cursors.SSCursor)
    stuck._sock.setsockopt(so.SOL_SOCKET, so.SO_RCVBUF, 4096)
    backend_id = one(stuck, "SELECT CONNECTION_ID()")[0][0]
    one(stuck, "SELECT GET_LOCK('held-by-stuck', 0)")
    cur = stuck.cursor()
    cur.execute("SELECT REPEAT('x', 1000) FROM seq_1_to_50000")   # ~50 MB; the client reads one row only
    cur.fetchone()
    # every buffer on the way is full once the server itself waits to write because the proxy stopped
    # reading: "Writing to net" seen on 4 polls over 1.5 s, not a moment of a busy box
    writing = lambda: any(row[0] == backend_id and row[6] == "Writing to net"  # noqa: E731
                          for row in q(b, "SHOW PROCESSLIST"))
    streak = {"n": 0}

    def blocked():
        streak["n"] = streak["n"] + 1 if writing() else 0
        if streak["n"] < 4:
            time.sleep(0.5)
        return streak["n"] >= 4
    wait_for(blocked, 60, "the server blocked writing to the proxy")
    local_port = stuck._sock.getsockname()[1]
    r = d.admin_ok("switchover", pair=pname, force=True)
    assert r["closed_unmovable"] == 1, r
    t0 = time.monotonic()
    # released at once: long before the client's 5 s flush deadline ends
    wait_for(lambda: backend_id not in [row[0] for row in q(b, "SHOW PROCESSLIST")], 3, "backend released at once")
    other = app_conn(d, db)
    assert one(other, "SELECT GET_LOCK('held-by-stuck', 0)") == ((1,),)     # on DR now; and business is free:
    assert q(b, "SELECT IS_FREE_LOCK('held-by-stuck')") == ((1,),)

    # the proxy's end of the connection: once it closed its fd the kernel may still hold unsent data
    # (FIN-WAIT-1), so "closed" means no longer ESTAB
    proxy_end = lambda: [st for st, local, peer in tcp_sockets() if local == d.port and peer == local_port]  # noqa
    assert proxy_end() == ["ESTAB"]                          # still flushing its final error, for a while
    wait_for(lambda: "ESTAB" not in proxy_end(), 15, "the proxy dropped the client that never read")
    assert time.monotonic() - t0 >= 4                       # the flush deadline (5 s), not at once
    wait_for(lambda: "did not read its final error" in d.log(), 5, "the drop logged")
    other.close()
    # drop the stuck client without PyMySQL reading the rest of its result first
    cur.connection = None
    stuck._rfile.close()
    stuck._sock.close()
    stuck._sock = None


def test_compressed_protocol_like_the_server(switchable, mariadb_pair, cclients, tmp_path):
    """CLIENT_COMPRESS on the client side (the backend is spoken to uncompressed): `mariadb -C` and a
    Connector/C client with MYSQL_OPT_COMPRESS get the same results as directly - small and large packets,
    a 6 MB value, LOAD DATA LOCAL - the bytes on the wire are compressed, and a switch moves the session."""
    d, pname, db = switchable
    b = mariadb_pair.business
    b.sql("SET GLOBAL local_infile = ON")
    b.sql("CREATE TABLE zl (id INT PRIMARY KEY, v VARCHAR(20))", database=db)
    data = tmp_path / "zl.tsv"
    data.write_text("".join(f"{i}\trow-{i}\n" for i in range(1000)))
    script = (f"USE {db};\nSELECT 1;\nSELECT LENGTH(REPEAT('ab', 3000000)), MD5(REPEAT('ab', 3000000));\n"
              f"SELECT REPEAT('x', 60), NULL, 'é';\nSELECT * FROM nosuchtable;\n"
              f"LOAD DATA LOCAL INFILE '{data}' INTO TABLE zl;\nSELECT COUNT(*), SUM(id) FROM zl;\n"
              f"DELETE FROM zl;\nSELECT 2;\n")
    outs = {}
    for where, port in (("direct", b.port), ("proxy", d.port)):
        outs[where] = subprocess.run(["mariadb", "-h127.0.0.1", f"-P{port}", f"-u{APP_USER}", f"-p{APP_PASSWORD}",
                                      "-C", "--local-infile=1", "--batch", "--force"], input=script,
                                     capture_output=True, text=True, timeout=60)
    assert outs["proxy"].stdout == outs["direct"].stdout and "1000\t499500" in outs["proxy"].stdout, outs
    assert outs["proxy"].stderr == outs["direct"].stderr, outs          # the same 1146 text
    # a command larger than one 16 MiB packet, sent compressed (conformance: go-sql-driver's TestLongData)
    big = f"SELECT LENGTH('{'a' * 20_000_000}');\n"
    for where, port in (("direct", b.port), ("proxy", d.port)):
        outs[where] = subprocess.run(["mariadb", "-h127.0.0.1", f"-P{port}", f"-u{APP_USER}", f"-p{APP_PASSWORD}",
                                      "-C", "--max-allowed-packet=64M", "--batch", "--skip-column-names"],
                                     input=big, capture_output=True, text=True, timeout=120)
    assert outs["proxy"].stdout == outs["direct"].stdout == "20000000\n", (outs["direct"].stderr, outs["proxy"].stderr)
    c = cclients(d.port, compress=True)
    c.cmd(f"query USE {db}")
    assert c.cmd("query SELECT MD5(REPEAT('ab', 3000000))")[0] == "row 82ffdc6a14684197b8be14212e71eb95"
    local = [x for x in tcp_sockets() if x[2] == d.port and x[0] == "ESTAB"]
    assert c.cmd("prepare SELECT REPEAT('ab', 3000000)") == ["prepared 0"]
    assert c.cmd("execute") == ["executed rows 1"]
    # 20 MB in 20000 rows: many frames under backpressure (the socket drains after the filter is done)
    assert c.cmd("prepare SELECT REPEAT('x', 1000), seq FROM seq_1_to_20000") == ["prepared 0"]
    assert c.cmd("execute", timeout=60) == ["executed rows 20000"]
    assert d.admin_ok("switchover", pair=pname)["moved_clients"] >= 1
    assert c.cmd("query SELECT MD5(REPEAT('ab', 3000000)), @@global.read_only")[0] == \
        "row 82ffdc6a14684197b8be14212e71eb95 0"                          # on DR, still compressed
    assert c.cmd("execute", timeout=60) == ["executed rows 20000"]          # re-prepared there
    # about 58 MB of highly compressible values reached this client: far fewer bytes crossed its socket
    out = subprocess.run(["ss", "-Htin"], capture_output=True, text=True).stdout
    received = None
    lines = out.splitlines()
    for i, line in enumerate(lines):
        f = line.split()
        if len(f) >= 5 and f[4].endswith(f":{d.port}") and any(f[3].endswith(f":{x[1]}") for x in local):
            detail = lines[i + 1] if i + 1 < len(lines) else ""
            for tok in detail.split():
                if tok.startswith("bytes_received:"):
                    received = int(tok.split(":")[1])
    assert received is not None and received < 4_000_000, received


@pytest.mark.timeout(240)
def test_compressed_long_data_larger_than_a_packet(daemon, mariadb_pair, fresh, cclients):  # noqa: F811
    """go-sql-driver's TestLongData (compress) hung through the proxy: COM_STMT_SEND_LONG_DATA of 32 MiB + 1
    (one request in three packets, no reply to it, inside compressed frames that end anywhere), then the
    COM_STMT_EXECUTE got no answer. A Connector/C client with MYSQL_OPT_COMPRESS gets what it gets directly:
    such requests, then the same value sent in pieces of under 16 MiB, back to back."""
    b = mariadb_pair.business
    app_user(mariadb_pair, fresh)
    b.sql("CREATE TABLE ld (id INT AUTO_INCREMENT PRIMARY KEY, v LONGBLOB)", database=fresh)
    d = daemon(pair="ld")
    n = 32 * 1024 * 1024 + 1
    outs = {}
    for where, port in (("direct", b.port), ("proxy", d.port)):
        c = cclients(port, compress=True, read_timeout=30)   # a reply that never comes: 2013, not a hang
        c.cmd(f"query USE {fresh}")
        out = [c.cmd("prepare INSERT INTO ld (v) VALUES (?)")]
        for i in range(6):           # the hang depended on timing: one in two or three such requests
            out.append(c.cmd(f"longdata {n}", timeout=120))
        out.append(c.cmd(f"longdata {n} 3", timeout=120))
        out.append(c.cmd("query SELECT id, LENGTH(v), MD5(v) FROM ld ORDER BY id"))
        out.append(c.cmd("query TRUNCATE ld"))
        outs[where] = out
    assert outs["proxy"] == outs["direct"], outs
    assert outs["proxy"][1] == ["longdata_ok affected 1"] and len(outs["proxy"][8]) == 7, outs


def test_ed25519_accounts_log_in_through_the_proxy_and_are_pinned(switchable, mariadb_pair):
    """An ed25519 account: the server's own challenge is relayed to the client (the proxy learns no secret),
    so the login works, a wrong password gets the server's own error, and the session is listed as unable
    to move (a switchover refuses; --force closes it with 1927)."""
    d, pname, db = switchable
    for s in mariadb_pair:
        s.sql("INSTALL SONAME 'auth_ed25519'") if not q(s, "SELECT COUNT(*) FROM information_schema.PLUGINS "
                                                           "WHERE PLUGIN_NAME = 'ed25519'")[0][0] else None
        s.sql("CREATE USER IF NOT EXISTS 'ed_app'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('ed-Secret-1')")
        s.sql(f"GRANT ALL PRIVILEGES ON `{db}`.* TO 'ed_app'@'%'")

    def cli(port, password, script="SELECT CURRENT_USER(), @@global.read_only;\n"):
        return subprocess.run(["mariadb", "-h127.0.0.1", f"-P{port}", "-ued_app", f"-p{password}", "--batch",
                               "--skip-column-names", db], input=script, capture_output=True, text=True, timeout=30)
    direct, proxied = cli(mariadb_pair.business.port, "ed-Secret-1"), cli(d.port, "ed-Secret-1")
    assert proxied.returncode == 0 and proxied.stdout == direct.stdout == "ed_app@%\t0\n", (direct, proxied)
    bad_direct, bad_proxied = cli(mariadb_pair.business.port, "wrong"), cli(d.port, "wrong")
    assert bad_proxied.returncode != 0 and "1045" in bad_proxied.stderr, bad_proxied
    strip = lambda e: e.split("'@'")[0]  # noqa: E731 - the host part names the proxy's address, not the CLI's
    assert strip(bad_proxied.stderr) == strip(bad_direct.stderr)
    p = subprocess.Popen(["mariadb", "-h127.0.0.1", f"-P{d.port}", "-ued_app", "-ped-Secret-1", "--batch",
                          "--unbuffered", "--skip-column-names", db],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        p.stdin.write("SELECT 'logged-in';\n")
        p.stdin.flush()
        assert p.stdout.readline().strip() == "logged-in"
        reasons = [x["unmovable_reason"] for x in d.admin_ok("clients", pair=pname)["clients"] if x["user"] == "ed_app"]
        assert reasons == ["a login by another authentication plugin (the proxy cannot repeat it on the other side)"]
        r = d.admin("switchover", pair=pname)
        assert r["ok"] is False and r["error"]["code"] == "unmovable_sessions", r
        r = d.admin_ok("switchover", pair=pname, force=True)
        assert r["closed_unmovable"] == 1
        p.stdin.write("SELECT 1;\n")
        p.stdin.close()
        err = p.stderr.read()
        assert "1927" in err or "server has gone away" in err.lower() or "lost connection" in err.lower(), err
    finally:
        if p.poll() is None:
            p.kill()


def test_a_session_the_server_ends_is_closed_at_once(switchable, mariadb_pair):
    """wait_timeout ends an idle session on the server: directly the client's socket closes at that moment
    (a pool's stale-connection check sees it); through the proxy too, not only at the next request."""
    d, pname, db = switchable
    c = app_conn(d, db)
    local = c._sock.getsockname()[1]
    one(c, "SET SESSION wait_timeout = 2")
    proxy_end = lambda: [st for st, lp, pp in tcp_sockets() if lp == d.port and pp == local]  # noqa: E731
    assert proxy_end() == ["ESTAB"]
    wait_for(lambda: "ESTAB" not in proxy_end(), 15, "the proxy closed the client whose session the server ended")
    with pytest.raises(pymysql.err.OperationalError):
        one(c, "SELECT 1")


def test_sql_prepared_statements_survive_a_switch(switchable, mariadb_pair):
    """PREPARE ... FROM 'text' (SQL-level prepared statements, as ORMs and stored scripts use them) is session
    state like a protocol-level prepare: after a switchover and a switchback, EXECUTE still runs it, with the
    same text (including quotes, a backslash and non-ASCII), and DEALLOCATE ends it. One prepared from a user
    variable cannot be repeated from a literal the proxy saw: such a session is reported unmovable."""
    d, pname, db = switchable
    c = app_conn(d, db)
    one(c, "CREATE TABLE sp (id INT PRIMARY KEY, v VARCHAR(40))")
    one(c, "PREPARE ins FROM 'INSERT INTO sp VALUES (?, ?)'")
    one(c, "PREPARE sel FROM 'SELECT CONCAT(''it''''s '', ?, '' \\\\ é'')'")
    one(c, "SET @i = 1, @v = 'before'")
    one(c, "EXECUTE ins USING @i, @v")
    before = one(c, "EXECUTE sel USING @v")
    r = d.admin_ok("switchover", pair=pname)
    assert r["active_side"] == "dr" and r["moved_clients"] >= 1, r
    one(c, "SET @i = 2, @v = 'after'")
    one(c, "EXECUTE ins USING @i, @v")                            # on DR now
    assert one(c, "EXECUTE sel USING @v") == ((before[0][0].replace("before", "after"),),)
    assert q(mariadb_pair.dr, "SELECT v FROM sp WHERE id = 2", db) == (("after",),)
    one(c, "DEALLOCATE PREPARE sel")
    r = d.admin_ok("switchback", pair=pname)
    assert r["active_side"] == "business", r
    one(c, "SET @i = 3")
    one(c, "EXECUTE ins USING @i, @v")
    assert q(mariadb_pair.business, "SELECT COUNT(*) FROM sp", db) == ((3,),)
    with pytest.raises(pymysql.err.MySQLError) as e:
        one(c, "EXECUTE sel USING @v")                            # deallocated: gone on this side too
    assert e.value.args[0] == 1243, e.value.args                  # ER_UNKNOWN_STMT_HANDLER, as directly
    one(c, "SET @txt = 'SELECT 1'")
    one(c, "PREPARE fromvar FROM @txt")
    r = d.admin("switchover", pair=pname)
    assert r["ok"] is False and r["error"]["code"] == "unmovable_sessions", r
    assert "prepared" in json.dumps(r["error"]["sessions"]), r
    one(c, "DEALLOCATE PREPARE fromvar")
    d.admin_ok("switchover", pair=pname)
    one(c, "SET @i = 4")
    one(c, "EXECUTE ins USING @i, @v")                            # moved again
    assert q(mariadb_pair.dr, "SELECT v FROM sp WHERE id = 4", db) == (("after",),)


def _stmt_prepare(c, sql):
    """COM_STMT_PREPARE over a PyMySQL connection's socket (PyMySQL has no binary protocol): the statement id,
    after reading the whole answer (no CLIENT_DEPRECATE_EOF: definitions end with an EOF each)."""
    from pymysql.constants import COMMAND
    c._execute_command(COMMAND.COM_STMT_PREPARE, sql)
    head = c._read_packet()
    data = head.get_all_data()
    stmt_id = int.from_bytes(data[1:5], "little")
    columns, params = int.from_bytes(data[5:7], "little"), int.from_bytes(data[7:9], "little")
    for n in (params, columns):
        if n:
            for _ in range(n + 1):
                c._read_packet()
    return stmt_id


def _stmt_execute(c, stmt_id):
    """COM_STMT_EXECUTE of a statement without parameters: ("rows", n) or ("error", code, message)."""
    from pymysql.constants import COMMAND
    c._execute_command(COMMAND.COM_STMT_EXECUTE, stmt_id.to_bytes(4, "little") + b"\x00" + (1).to_bytes(4, "little"))
    try:
        first = c._read_packet()
    except pymysql.err.MySQLError as e:
        return ("error", e.args[0], e.args[1])
    n = first.read_length_encoded_integer()
    for _ in range(n + 1):
        c._read_packet()                                        # column definitions, EOF
    rows = 0
    while not c._read_packet().is_eof_packet():
        rows += 1
    return ("rows", rows)


def test_a_statement_reset_away_stays_unknown_after_a_switch(switchable, mariadb_pair):
    """mysql-connector-python found it: a statement prepared, then freed by COM_RESET_CONNECTION (or closed),
    is unknown to the server (1243); after a switch the session's remaining statements are prepared again on
    the new side with ids of their own, and the old id, passed through unchanged, ran one of them instead."""
    from pymysql.constants import COMMAND
    d, pname, db = switchable
    direct = mariadb_pair.business.connect(database=db)
    text = None                                                 # the server's message, its id left out
    for name, c in (("direct", direct), ("proxy", app_conn(d, db))):
        gone = _stmt_prepare(c, "SELECT 1")
        c._execute_command(0x1f, b"")                       # COM_RESET_CONNECTION
        c._read_ok_packet()
        kept = _stmt_prepare(c, "SELECT 2 UNION SELECT 3")
        assert _stmt_execute(c, kept) == ("rows", 2)
        if name == "direct":
            got = _stmt_execute(c, gone)
            assert got[:2] == ("error", 1243) and f"({gone})" in got[2], got
            text = got[2].replace(f"({gone})", "({})")
            continue
        expected = ("error", 1243, text.format(gone))           # ids differ: the backend connection is reused
        assert _stmt_execute(c, gone) == expected
        r = d.admin_ok("switchover", pair=pname)
        assert r["active_side"] == "dr" and r["moved_clients"] >= 1, r
        assert _stmt_execute(c, kept) == ("rows", 2)            # re-prepared on DR, under its client id
        assert _stmt_execute(c, gone) == expected               # still unknown, with the server's own text
        c.ping()
        assert one(c, "SELECT @@server_id") == ((mariadb_pair.dr.server_id,),)
