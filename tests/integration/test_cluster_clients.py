"""More client implementations against a switchyardd cluster (TESTING.md, "Kinds of client"), in
`make conformance`, not `make test` (marker `conformance`).

Oracle's mysql-connector-python, its pure-Python protocol (use_pure=True), from a venv cached by
scripts/install-mysql-connector-python.sh: its handshake, its pool (mysql.connector.pooling, which resets every
session it gets back with COM_RESET_CONNECTION), its `consume_results` and its server-side prepared
statements (cursor(prepared=True)), directly and through the proxy; then its pools spread over the three
nodes of test_cluster.py's cluster while a switchover and a switchback run."""

from __future__ import annotations

import datetime
import decimal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import APP_PASSWORD, APP_USER, app_user, q, wait_for
from test_cluster import applied, cluster_of_three, etcd  # noqa: F401 (fixture)
from test_forward_mariadb import fresh  # noqa: F401 (fixture)

pytestmark = pytest.mark.conformance

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "install-mysql-connector-python.sh"


@pytest.fixture(scope="module")
def myconn():
    """mysql.connector from the cached venv (installed on first use); its site-packages go first on sys.path."""
    r = subprocess.run([str(INSTALL), "--print-paths"], capture_output=True, text=True, timeout=600,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{INSTALL} failed:\n{r.stderr[-3000:]}"
    paths = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    if paths["site"] not in sys.path:
        sys.path.insert(0, paths["site"])
    import mysql.connector
    import mysql.connector.pooling  # noqa: F401
    assert mysql.connector.__version__ == paths["version"], mysql.connector.__file__
    return mysql.connector


def kw(port, db, **extra):
    return {**dict(host="127.0.0.1", port=port, user=APP_USER, password=APP_PASSWORD, database=db, use_pure=True,
                   connection_timeout=10, autocommit=True), **extra}


class ResetLog:
    """Counts what MySQLConnection.cmd_reset_connection returned: it swallows an error (returns False) and the
    pool then falls back to COM_CHANGE_USER, so a proxy that refuses COM_RESET_CONNECTION would go unseen."""

    def __init__(self, mc, monkeypatch):
        from mysql.connector.connection import MySQLConnection
        self.ok = self.failed = 0
        self.lock = threading.Lock()
        orig = MySQLConnection.cmd_reset_connection

        def counted(cnx):
            res = orig(cnx)
            with self.lock:
                if res:
                    self.ok += 1
                else:
                    self.failed += 1
            return res
        monkeypatch.setattr(MySQLConnection, "cmd_reset_connection", counted)


# ---- the same client directly and through the proxy --------------------------------------------------------

def probe(mc, port, db):
    """What this client does specially, as plain data to compare between the direct and the proxied run."""
    out = {}
    # handshake: the server's default plugin, a named one, one the server must switch away from, a bad password
    for plugin in (None, "mysql_native_password", "caching_sha2_password"):
        extra = {"auth_plugin": plugin} if plugin else {}
        try:
            c = mc.connect(**kw(port, db, **extra))
            cur = c.cursor()
            cur.execute("SELECT CURRENT_USER(), DATABASE(), @@autocommit, @@character_set_client")
            out[f"auth {plugin}"] = list(cur.fetchone())
            c.close()
        except mc.Error as e:
            out[f"auth {plugin}"] = ("error", e.errno, e.sqlstate)
    try:
        mc.connect(**{**kw(port, db), "password": "wrong"})
        out["bad password"] = "connected"
    except mc.Error as e:
        out["bad password"] = (e.errno, e.sqlstate, "Access denied" in e.msg)

    c = mc.connect(**kw(port, db, consume_results=True))
    cur = c.cursor()
    cur.execute("CREATE TABLE p (id INT PRIMARY KEY, s VARCHAR(20), b VARBINARY(8), d DECIMAL(8,3), "
                "t DATETIME(6), n INT NULL)")
    # consume_results: a result left unread is read away before the next command
    cur.execute("SELECT seq FROM seq_1_to_500")
    cur.fetchone()
    cur.execute("SELECT 42")
    out["consumed then next"] = cur.fetchall()
    c.cmd_query("SELECT 1 UNION SELECT 2")      # the raw command API, its rows never read
    out["unread then reset"] = [c.cmd_reset_connection(), c.is_connected()]
    cur = c.cursor()
    cur.execute("CREATE PROCEDURE two() BEGIN SELECT 1 AS a; SELECT 'x' AS b, 2 AS c; END")

    def call_unread():
        cur = c.cursor()
        cur.execute("CALL two()")
        cur.fetchone()                           # the rest of the first set and the second set unread
        cur.execute("SELECT 7")
        return cur.fetchall()

    def call_sets():
        cur = c.cursor()
        cur.execute("CALL two()")
        sets = [cur.fetchall()]
        while cur.nextset():
            sets.append(cur.fetchall() if cur.with_rows else cur.rowcount)
        return sets
    for name, fn in (("after CALL unread", call_unread), ("CALL sets", call_sets)):
        try:
            out[name] = fn()
        except mc.Error as e:                    # recorded, compared like an answer; a fresh session goes on
            out[name] = ("raised", type(e).__name__, e.errno, e.msg)
        out[name + " connected"] = c.is_connected()
        if not c.is_connected():
            c = mc.connect(**kw(port, db, consume_results=True))

    c.close()

    # prepared statements: COM_STMT_PREPARE / EXECUTE (binary protocol both ways) / CLOSE, on a new session
    c = mc.connect(**kw(port, db))
    pc = c.cursor(prepared=True)
    ins = "INSERT INTO p VALUES (?, ?, ?, ?, ?, ?)"
    rows = [(1, "héllo", b"\x00\xff\x01", decimal.Decimal("12.345"), datetime.datetime(2024, 2, 29, 1, 2, 3, 456789),
             None), (2, "", b"", decimal.Decimal("-0.001"), datetime.datetime(1999, 12, 31, 23, 59, 59), 7)]
    for r in rows:
        pc.execute(ins, r)
    pc.executemany(ins, [(3, "a", b"b", decimal.Decimal(1), datetime.datetime(2000, 1, 1), 3),
                         (4, "c", b"d", decimal.Decimal(2), datetime.datetime(2000, 1, 2), None)])
    pc.execute("SELECT * FROM p WHERE id <= ? ORDER BY id", (4,))
    out["prepared rows"] = [list(r) for r in pc.fetchall()]
    out["prepared description"] = [d[:2] for d in pc.description]
    pc.execute("SELECT id FROM p WHERE id <= ? ORDER BY id", (2,))
    pc.fetchall()
    pc.execute("SELECT id FROM p WHERE id <= ? ORDER BY id", (3,))    # the same statement executed again
    out["prepared again"] = pc.fetchall()
    pc.close()
    try:
        c.cursor(prepared=True).execute("SELEC ?", (1,))
        out["prepare error"] = "prepared"
    except mc.Error as e:
        out["prepare error"] = (e.errno, e.sqlstate)
    stmt = c.cmd_stmt_prepare(b"SELECT ? + 1")

    # cmd_reset_connection: session state gone, the statement deallocated, the session still works
    cur = c.cursor()
    cur.execute("SET @v = 5, SESSION sql_mode = 'ANSI_QUOTES', SESSION time_zone = '+05:00'")
    cur.execute("BEGIN")
    cur.execute("INSERT INTO p (id) VALUES (100)")        # open transaction: the reset rolls it back
    out["reset"] = c.cmd_reset_connection()
    cur = c.cursor()
    cur.execute("SELECT @v, @@session.sql_mode = @@global.sql_mode, @@session.time_zone, @@in_transaction, "
                "(SELECT COUNT(*) FROM p WHERE id = 100)")
    out["after reset"] = list(cur.fetchone())
    try:
        c.cmd_stmt_execute(stmt["statement_id"], data=(1,), parameters=stmt["parameters"])
        out["old statement after reset"] = "executed"
    except mc.Error as e:
        out["old statement after reset"] = (e.errno, e.sqlstate)
    c.cmd_change_user(APP_USER, APP_PASSWORD, db)
    cur = c.cursor()
    cur.execute("SELECT CURRENT_USER(), DATABASE(), @@autocommit")
    out["after change_user"] = list(cur.fetchone())
    c.close()

    # the pool: a session checked in is reset (COM_RESET_CONNECTION) and given out again
    pool = mc.pooling.MySQLConnectionPool(pool_name=f"probe{port}", pool_size=1, pool_reset_session=True,
                                          **kw(port, db))
    pc = pool.get_connection()
    cur = pc.cursor()
    cur.execute("SELECT CONNECTION_ID()")
    first_id = cur.fetchone()[0]
    cur.execute("SET @v = 9")
    p2 = pc.cursor(prepared=True)
    p2.execute("SELECT ?", ("kept?",))
    p2.fetchall()
    pc.close()
    pc = pool.get_connection()
    cur = pc.cursor()
    cur.execute("SELECT CONNECTION_ID(), @v")
    cid, v = cur.fetchone()
    out["pool checkout after return"] = [cid == first_id, v]
    pc.close()
    return out


def test_mysql_connector_python_directly_and_through_the_proxy(myconn, daemon, mariadb_pair, fresh,
                                                               monkeypatch):  # noqa: F811
    """Every probe gives the same answer through the proxy as straight to the business server, and every
    COM_RESET_CONNECTION is answered OK (the pool's silent fallback to COM_CHANGE_USER not taken)."""
    b, dr = mariadb_pair
    app_user(mariadb_pair, fresh)
    resets = ResetLog(myconn, monkeypatch)
    direct = probe(myconn, b.port, fresh)
    q(b, f"DROP TABLE {fresh}.p")
    q(b, f"DROP PROCEDURE {fresh}.two")
    n = resets.ok
    assert resets.failed == 0 and n >= 3, vars(resets)
    d = daemon(pair=f"m{fresh}")
    proxied = probe(myconn, d.port, fresh)
    assert resets.failed == 0 and resets.ok == 2 * n, vars(resets)
    diff = {k: (direct[k], proxied.get(k)) for k in direct if direct[k] != proxied.get(k)}
    assert diff == {}, diff
    # the answers themselves (so a change of the client shows here, not as a silent agreement)
    assert direct["auth caching_sha2_password"][0].startswith(APP_USER + "@"), direct
    assert direct["bad password"] == (1045, "28000", True)
    assert direct["prepare error"] == (1064, "42000")
    assert direct["old statement after reset"] == (1243, "HY000")
    assert direct["after reset"][:4] == [None, 1, "SYSTEM", 0] and direct["after reset"][4] == 0, direct
    assert direct["pool checkout after return"] == [True, None]
    assert direct["CALL sets"] == [[(1,)], [("x", 2)], 0], direct["CALL sets"]
    # the client's own quirk, the same direct and proxied: consume_results reads away only the rest of the
    # first result set of a CALL, so the next query's fetchall() returns the CALL's second set
    assert direct["after CALL unread"] == [("x", 2)] and direct["after CALL unread connected"], direct


# ---- pools over three nodes through a switchover and a switchback -------------------------------------------

def test_mysql_connector_python_pools_on_three_nodes_through_a_switchover_and_switchback(
        myconn, daemon, etcd, mariadb_pair, fresh, monkeypatch):  # noqa: F811
    """A pool per node (pool_reset_session: COM_RESET_CONNECTION on every return), two threads per pool
    writing transactions (BEGIN; INSERT; UPDATE; COMMIT, some with start_transaction(), some through a
    prepared cursor) and autocommit INSERTs, while a switchover and a switchback run through a proxy-only node:
    0 client errors, every acknowledged write on both sides, every node on the new side when the command
    answers, and no session reset refused."""
    mc = myconn
    b, dr = mariadb_pair
    pname = f"y{fresh}"
    owner, proxies = cluster_of_three(daemon, etcd, mariadb_pair, fresh, pname)
    nodes = [owner] + proxies
    resets = ResetLog(mc, monkeypatch)
    pools = [mc.pooling.MySQLConnectionPool(pool_name=f"sw{i}", pool_size=3, pool_reset_session=True,
                                            **kw(d.port, fresh, connection_timeout=5, read_timeout=15))
             for i, d in enumerate(nodes)]
    # per node, two idle sessions across the switches: one whose state was set and then reset
    # (COM_RESET_CONNECTION) with a statement prepared after the reset, one whose state was set and kept
    idle = []
    for d in nodes:
        r, k = mc.connect(**kw(d.port, fresh)), mc.connect(**kw(d.port, fresh))
        for c in (r, k):
            c.cmd_query("SET @v = 1, SESSION time_zone = '+03:00', SESSION sql_mode = 'ANSI_QUOTES'")
        gone = r.cmd_stmt_prepare(b"SELECT ? + 1")
        assert r.cmd_reset_connection()
        pr = r.cursor(prepared=True)
        pr.execute("SELECT ? + 2", (1,))
        assert pr.fetchall() == [(3,)]
        idle.append((d, r, k, gone, pr))

    def idle_state():
        got = []
        for d, r, k, gone, pr in idle:
            state = "SELECT @v, @@session.time_zone, @@session.sql_mode = @@global.sql_mode, @@server_id"
            cr, ck = r.cursor(), k.cursor()
            cr.execute(state)
            reset_state = cr.fetchone()
            ck.execute(state)
            pr.execute("SELECT ? + 2", (40,))
            prepared = pr.fetchall()
            try:
                r.cmd_stmt_execute(gone["statement_id"], data=(1,), parameters=gone["parameters"])
                old = "executed"
            except mc.Error as e:
                old = e.errno if e.errno != -1 else f"{type(e).__name__}: {e.msg}"
            got.append((reset_state, ck.fetchone(), prepared, old))
        return got

    stop, acked, errors, dirty = threading.Event(), [], [], []

    def loader(pool, k):
        i = k * 100000
        while not stop.is_set():
            cnx = None
            try:
                cnx = pool.get_connection()
                if i % 10 == 0:                          # the last checkout's @mark must be reset away
                    cur = cnx.cursor()
                    cur.execute("SELECT @mark")
                    if cur.fetchone()[0] is not None:
                        dirty.append(i)
                mode = i % 4
                if mode == 0:                            # autocommit
                    cnx.cursor().execute("INSERT INTO t VALUES (%s, 'auto')", (i,))
                elif mode == 1:                          # BEGIN ... COMMIT as SQL text
                    cur = cnx.cursor()
                    cur.execute("BEGIN")
                    cur.execute("INSERT INTO t VALUES (%s, 'txn')", (i,))
                    cur.execute("UPDATE t SET v = 'txn updated' WHERE id = %s", (i,))
                    cur.execute("COMMIT")
                elif mode == 2:                          # the driver's start_transaction() / commit()
                    cnx.start_transaction()
                    cur = cnx.cursor()
                    cur.execute("INSERT INTO t VALUES (%s, 'st')", (i,))
                    cur.execute("UPDATE t SET v = 'st updated' WHERE id = %s", (i,))
                    cnx.commit()
                else:                                    # prepared statements inside a transaction
                    pc = cnx.cursor(prepared=True)
                    cnx.cmd_query("BEGIN")
                    pc.execute("INSERT INTO t VALUES (?, ?)", (i, "prep"))
                    pc.execute("UPDATE t SET v = ? WHERE id = ?", ("prep updated", i))
                    cnx.commit()
                    pc.close()
                acked.append(i)
                cnx.cursor().execute("SET @mark = 1")
            except mc.Error as e:
                errors.append((k, i, e.errno, e.sqlstate, e.msg))
            finally:
                if cnx is not None:
                    try:
                        cnx.close()                      # back to the pool: reset_session()
                    except mc.Error as e:
                        errors.append((k, i, "close", e.errno, e.msg))
            i += 1
            time.sleep(0.002)
    workers = [threading.Thread(target=loader, args=(p, 2 * n + j)) for n, p in enumerate(pools) for j in (1, 2)]
    for w in workers:
        w.start()
    results = []
    states = [idle_state()]
    assert states[0] == [((None, "SYSTEM", 1, 10), (1, "+03:00", 0, 10), [(42,)], 1243)] * 3, states[0]
    try:
        time.sleep(1.5)
        for epoch, side, cmd, via in ((2, "dr", "switchover", proxies[0]), (3, "business", "switchback", proxies[1])):
            r = via.admin_ok(cmd, pair=pname)
            results.append((cmd, r["active_side"], r["epoch"], r["steps"]))
            assert r["active_side"] == side and r["epoch"] == epoch and "cluster_hold_ms" in r["steps"], r
            for d in nodes:                              # the coordinator awaited their "flipped"
                assert applied(d, pname) == (epoch, side), d
            n = len(acked)
            wait_for(lambda: len(acked) > n + 40, 30, "clients go on after the switch")
            sid = 10 if side == "business" else 11
            # reset: nothing comes back on the new side; kept: all of it (user variable, time zone, sql_mode)
            states.append((cmd, idle_state(), [((None, "SYSTEM", 1, sid), (1, "+03:00", 0, sid), [(42,)], 1243)] * 3))
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    print(f"mysql-connector-python {mc.__version__}: {len(acked)} acknowledged writes, {len(errors)} errors, "
          f"resets ok={resets.ok} failed={resets.failed}; switches {[(c, s, e) for c, s, e, _ in results]}")
    assert errors == [], errors[:5]
    assert dirty == [], dirty[:5]
    assert resets.failed == 0 and resets.ok >= len(acked), vars(resets)
    for d in nodes[1:]:
        hist = d.pair_status(pname)["switch_history"]
        assert [h["outcome"] for h in hist] == ["done", "done"], hist
    want = {i: {0: "auto", 1: "txn updated", 2: "st updated", 3: "prep updated"}[i % 4] for i in acked}
    for side in (b, dr):
        wait_for(lambda: want.items() <= dict(q(side, "SELECT id, v FROM t", fresh)).items(), 30,
                 f"every acknowledged write on {side}")
    assert q(b, "SELECT @@global.read_only")[0][0] == 0 and q(dr, "SELECT @@global.read_only")[0][0] == 1
    # last, after the load's checks: a statement the client prepared before COM_RESET_CONNECTION was
    # deallocated by the server (1243 before the switch); after a switch it must not be executable again
    bad = [(cmd, got) for cmd, got, want in states[1:] if got != want]
    assert bad == [], bad


def test_jdbc_and_go_pools_on_two_nodes_through_switches_and_a_kill9_of_the_sync_owner(
        daemon, etcd, mariadb_pair, fresh, real_client):  # noqa: F811
    """Pools of real drivers not run against a cluster before: MariaDB Connector/J and MySQL Connector/J each
    behind HikariCP and go-sql-driver/mysql behind database/sql, two pinned connections each, on the two
    nodes that do not own the sync. They write all along (prepared autocommit INSERTs, and BEGIN; INSERT;
    UPDATE; COMMIT) while a switchover and a switchback run through those nodes and then the owner of the
    synchronization is killed with -9 and another node takes it over: 0 client errors, every acknowledged
    write on both sides, DR equal to business."""
    from test_cluster import electable_three, owners, running_forward
    b, dr = mariadb_pair
    pname = f"j{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    owner.admin_ok("create-reverse", pair=pname)
    wait_for(lambda: [i["state"] for i in owner.pair_status(pname)["instances"]
                      if i["direction"] == "reverse"] == ["collecting"], 30, "reverse collecting")
    kinds = [("java-mariadb", others[0]), ("java-mysql", others[1]), ("go", others[1])]
    clients = [real_client(kind, d, user=APP_USER, password=APP_PASSWORD, database=fresh, pool=2)
               for kind, d in kinds]
    for c in clients:
        for conn in (0, 1):
            assert c.prepare("ins", "INSERT INTO t VALUES (?, ?)", conn=conn)["ok"]
    stop, acked, errors = threading.Event(), [], []

    def loader(k, c):
        i = (k + 1) * 100000
        while not stop.is_set():
            conn = i % 2
            try:
                if i % 3 == 0:
                    steps = [c.begin(conn=conn), c.exec(f"INSERT INTO t VALUES ({i}, 'txn')", conn=conn),
                             c.exec(f"UPDATE t SET v = 'txn updated' WHERE id = {i}", conn=conn),
                             c.commit(conn=conn)]
                else:
                    steps = [c.execute("ins", i, "auto", conn=conn)]
                bad = [r for r in steps if not r.get("ok")]
                if bad:
                    errors.append((c.kind, i, bad[0]))
                    if i % 3 == 0:
                        c.rollback(conn=conn)
                else:
                    acked.append(i)
            except Exception as e:                      # noqa: BLE001 (any client failure counts)
                errors.append((c.kind, i, repr(e)))
            i += 1
            time.sleep(0.002)
    workers = [threading.Thread(target=loader, args=(k, c)) for k, c in enumerate(clients)]
    for w in workers:
        w.start()
    switches = []
    try:
        time.sleep(1.5)
        for cmd, side, via in (("switchover", "dr", others[0]), ("switchback", "business", others[1])):
            r = via.admin_ok(cmd, pair=pname)
            # the pools' six sessions live on the two other nodes: counted by the switch all the same
            assert r["active_side"] == side and r["moved_clients"] >= 6, r
            assert r["this_node"]["moved_clients"] == 0, r     # (it ran on the owner, which has no client)
            switches.append((cmd, r["pause_ms"], r["moved_clients"]))
            n = len(acked)
            wait_for(lambda: len(acked) > n + 40, 30, "clients go on after the switch")
        owner.kill9()
        t0 = time.monotonic()
        new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")
        wait_for(lambda: running_forward(new, pname), 30, "the new owner's forward instance running")
        takeover_s = time.monotonic() - t0
        n = len(acked)
        wait_for(lambda: len(acked) > n + 40, 30, "clients go on after the takeover")
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    print(f"{[c.kind for c in clients]}: {len(acked)} acknowledged writes, {len(errors)} errors; "
          f"switches {switches}; takeover {takeover_s:.2f} s")
    assert errors == [], errors[:5]
    want = {i: "txn updated" if i % 3 == 0 else "auto" for i in acked}
    for side in (b, dr):
        wait_for(lambda: want.items() <= dict(q(side, "SELECT id, v FROM t", fresh)).items(), 60,
                 f"every acknowledged write on {side}")
    wait_for(lambda: q(dr, "SELECT id, v FROM t ORDER BY id", fresh) == q(b, "SELECT id, v FROM t ORDER BY id", fresh),
             60, "DR equals business")
