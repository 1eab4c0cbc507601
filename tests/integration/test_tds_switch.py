"""Switchover and switchback of an `engine = sqlserver` pair through the TDS proxy (proxy/tds_switch.c), on two
SQL Server doubles with a forward instance (objects = DB.*) and a reverse one: pytds clients stay connected and
go on on the other side. What users rely on: 0 client errors and every acknowledged write on the newly active
side under an 8-client workload; a transaction that ends within txn_drain_ms moves, one that does not is rolled
back with 1205 and Switchyard's retry text (its COMMIT then fails, nothing of it anywhere); prepared statements
work before and after; database and SET options follow the session; a session holding a temp table refuses
the switch and `--force` closes it naming why. The clients log in as an application user (db_datawriter) the
fence denies on the passive side (fence_passive = on, engine/sqlserver_fence.c) while Switchyard's writer goes on.

Needs the SQL Server synchronization (forward/reverse instance, fence): while the daemon answers a switch with
not_implemented, every test here is skipped saying so."""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

import pytest

from helpers import reverse, wait_for, wait_reverse, wait_state

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "doubles"))

from tds_fixtures import install_paths, running_double  # noqa: E402

pytds = pytest.importorskip("pytds")
from pytds import tds_base  # noqa: E402

pytestmark = [pytest.mark.timeout(120)]

wait_until = functools.partial(wait_for, timeout=40.0, interval=0.05)
_counter = itertools.count()


APP_USER, APP_PASSWORD = "app", "App-pw-1"     # the application's login: a database user in db_datawriter
                                               # and db_datareader


@pytest.fixture(scope="module")
def doubles():
    with running_double(cdc_delay=0.2) as business, running_double(cdc_delay=0.2) as dr:
        for s in (business, dr):
            execute(s, f"CREATE LOGIN {APP_USER} WITH PASSWORD = '{APP_PASSWORD}'")
        yield business, dr


@pytest.fixture(autouse=True)
def _double_logs_on_failure(request):
    failed = request.session.testsfailed
    yield
    if "doubles" in request.fixturenames and request.session.testsfailed > failed:
        for name, srv in zip(("business", "dr"), request.getfixturevalue("doubles")):
            print(f"--- {name} double log (tail) ---\n" + "\n".join(srv.log().splitlines()[-40:]))


def connect(srv, db=None, autocommit=True, port=None, app=False, **kw):
    user, password = (APP_USER, APP_PASSWORD) if app else (srv.user, srv.password)
    return pytds.connect(server=srv.host if port is None else "127.0.0.1", port=port or srv.port, user=user,
                         password=password, database=db, autocommit=autocommit, login_timeout=10, timeout=30,
                         disable_connect_retry=True, **kw)


def execute(srv, sql, db=None):
    with connect(srv, db) as c, c.cursor() as cur:
        cur.execute(sql)


def sessions(d, pname):
    return d.admin_ok("clients", pair=pname)["clients"]


@pytest.fixture
def switchable(daemon, doubles):
    """A sqlserver pair with a running forward instance and a collecting reverse instance over a database of
    its own (CDC on both sides, table `load` on business)."""
    business, dr = doubles
    db = f"tsw{os.getpid() % 1000}_{next(_counter)}"
    for s in doubles:
        execute(s, f"CREATE DATABASE {db}")
        execute(s, "EXEC sys.sp_cdc_enable_db", db)
        execute(s, f"CREATE USER {APP_USER} FOR LOGIN {APP_USER}; ALTER ROLE db_datawriter ADD MEMBER {APP_USER}; "
                     f"ALTER ROLE db_datareader ADD MEMBER {APP_USER}", db)   # it reads too (SELECT is checked)
    execute(business, "CREATE TABLE dbo.load (id nvarchar(40) NOT NULL PRIMARY KEY, t int NOT NULL, u int NOT NULL)",
            db)
    execute(business, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'load', "
                      "@role_name = NULL", db)
    execute(business, "INSERT INTO dbo.load VALUES (N'seed', 0, 0)", db)
    pname = f"p{db}"
    d = daemon(pair=pname, engine="sqlserver", business=f"{business.host}:{business.port}",
               dr=f"{dr.host}:{dr.port}", admin_user=business.user, admin_password=business.password,
               objects=f"{db}.*", txn_drain_ms=500, max_hold_ms=10000, drain_timeout_ms=20000)
    probe = d.admin("switchover", pair=pname)
    if not probe.get("ok") and probe["error"]["code"] == "not_implemented":
        pytest.skip(f"the SQL Server sync cannot switch yet: {probe['error']['message']}")
    wait_state(d, pname, "running")
    with connect(dr, db) as c, c.cursor() as cur:
        wait_until(lambda: cur.execute("SELECT COUNT(*) FROM dbo.load") or cur.fetchone()[0] == 1,
                   what="forward applied the seed")
    d.admin_ok("create-reverse", pair=pname)
    wait_reverse(d, pname, "collecting")
    yield d, pname, db


class Workload:
    """8 pytds clients through the proxy: each inserts a row, then updates one of its own; every acknowledged
    write and every operation's latency recorded. Half of them run as pytds does by default (autocommit off:
    each write then commit(), which commits and begins the next transaction at once, so such a session is
    always inside an empty transaction between writes); the others in autocommit, the update in a short
    transaction sent as one batch."""

    def __init__(self, port, srv, db, threads=8, think_s=0.05):
        self.port, self.srv, self.db, self.think_s = port, srv, db, think_s
        self.stop = threading.Event()
        self.errors: list = []
        self.lock = threading.Lock()
        self.inserted: dict = {}
        self.updates: dict = {}        # id -> (acknowledged update count, time of the last)
        self.lat: list = []
        self.threads = [threading.Thread(target=self.run, args=(t,), daemon=True) for t in range(threads)]

    def run(self, t):
        try:
            auto = t % 2 == 0
            c = connect(self.srv, self.db, port=self.port, autocommit=auto, app=True)
            cur = c.cursor()
            n, mine = 0, []
            while not self.stop.is_set():
                rid = f"t{t}-{n}"
                t0 = time.monotonic()
                cur.execute("INSERT INTO dbo.load (id, t, u) VALUES (%s, %s, 0)", (rid, t))
                if not auto:
                    c.commit()
                t1 = time.monotonic()
                mine.append(rid)
                target = mine[(n * 7) % len(mine)]
                if auto:
                    cur.execute("BEGIN TRANSACTION; UPDATE dbo.load SET u = u + 1 WHERE id = %s; COMMIT", (target,))
                else:
                    cur.execute("UPDATE dbo.load SET u = u + 1 WHERE id = %s", (target,))
                    c.commit()
                t2 = time.monotonic()
                with self.lock:
                    self.inserted[rid] = t1
                    k, _ = self.updates.get(target, (0, 0))
                    self.updates[target] = (k + 1, t2)
                    self.lat += [(t, t0, t1 - t0), (t, t1, t2 - t1)]
                n += 1
                self.stop.wait(self.think_s)
            c.close()
        except Exception as e:  # noqa: BLE001 - every client error counts
            with self.lock:
                self.errors.append(f"client {t}: {type(e).__name__}: {e}")

    def __enter__(self):
        for th in self.threads:
            th.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        for th in self.threads:
            th.join(60)

    def missing_on(self, srv, t):
        with self.lock:
            ins = [k for k, at in self.inserted.items() if at <= t]
            ups = {k: v for k, (v, at) in self.updates.items() if at <= t}
        with connect(srv, self.db) as c, c.cursor() as cur:
            cur.execute("SELECT id, u FROM dbo.load")
            rows = dict(cur.fetchall())
        return [k for k in ins if k not in rows], [(k, v, rows.get(k)) for k, v in ups.items() if rows.get(k, -1) < v]

    def worst(self, t_from, t_to):
        w: dict = {}
        with self.lock:
            for (t, t0, sec) in self.lat:
                if t0 <= t_to and t0 + sec >= t_from:
                    w[t] = max(w.get(t, 0.0), sec * 1000)
        return list(w.values())


def test_switchover_and_switchback_under_workload(switchable, doubles, capsys):
    d, pname, db = switchable
    business, dr = doubles
    figures, lost = {}, []
    with Workload(d.port, business, db) as w:
        wait_until(lambda: len(w.inserted) >= 40 or w.errors, what="the workload running")
        for op, active, new_side in (("switchover", "dr", dr), ("switchback", "business", business)):
            t0 = time.monotonic()
            reply = d.admin(op, pair=pname)
            t1 = time.monotonic()
            assert reply.get("ok"), reply
            r = reply["result"]
            assert r["active_side"] == active and r["moved_clients"] >= 8, r
            missing, short = w.missing_on(new_side, t1)
            if missing or short:
                lost.append({"after": op, "missing_inserts": missing[:10], "short_updates": short[:10]})
            seen = len(w.inserted)
            wait_until(lambda: len(w.inserted) >= seen + 40 or w.errors, what=f"the workload going on after {op}")
            lat = w.worst(t0, t1)
            figures[op] = {"pause_ms": r["pause_ms"], "steps": r["steps"], "moved": r["moved_clients"],
                           "client_worst_p50_ms": round(statistics.median(lat), 1) if lat else None,
                           "client_worst_max_ms": round(max(lat), 1) if lat else None}
    assert not w.errors, w.errors
    assert all(s["side"] == "business" for s in sessions(d, pname))
    for srv in doubles:      # every request carried the descriptor of its server's transaction (remapped)
        assert "descriptor mismatch" not in srv.log(), srv.log()[-3000:]
    with capsys.disabled():
        print("\nsqlserver switch figures:", json.dumps(figures))
    assert not lost, f"acknowledged writes missing on the new side after a switch: {lost}"


def test_go_pool_through_switchover_and_switchback(switchable, doubles, tmp_path):
    """go-mssqldb's database/sql pool (4 connections shared by 8 goroutines: checkout, RESETCONNECTION on
    reuse, every third write a BeginTx/Commit) as the application's user through the proxy, across a
    switchover and a switchback: 0 errors, every acknowledged write on the side active at the end, and the
    same 4 connections all along, measured outside the pool: 4 logins of the application's user at the double
    before the first switch, 4 client sessions open at the proxy with the same ids before and after each
    switch, 4 of its sessions open at the double of the active side and none left on the other (database/sql
    silently retries a statement on a new connection when one breaks: errors == [] alone would not show a
    dropped session, and the pool's own count of open connections cannot exceed its maximum)."""
    d, pname, db = switchable
    business, dr = doubles
    stop = tmp_path / "stop"
    dsn = f"sqlserver://{APP_USER}:{APP_PASSWORD}@127.0.0.1:{d.port}?database={db}&encrypt=disable"
    proc = subprocess.Popen([install_paths()["go_mssql"], "-dsn", dsn, "pool", "-workers", "8", "-pool", "4",
                             "-think-ms", "150", "-prefix", "g", "-until", str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)

    def written(srv):
        with connect(srv, db) as c, c.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM dbo.load WHERE id LIKE N'g%'")
            return cur.fetchone()[0]

    def logins(srv):          # the application user's logins into this database, as the double logged them
        return len(re.findall(rf"^sqlserver-double: login spid=\d+ user={APP_USER} db={db} ", srv.log(), re.M))

    def open_at(srv):         # the application user's sessions open at the double, in this database
        with connect(srv) as c, c.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM sys.dm_exec_sessions WHERE login_name = N'{APP_USER}' AND "
                        f"database_name = N'{db}'")
            return cur.fetchone()[0]

    def pool_sessions():      # the pool's client sessions open at the proxy: {id: side}
        return {s["id"]: s["side"] for s in sessions(d, pname) if s["user"] == APP_USER}
    try:
        ids = None
        for op, old, new in (("switchover", business, dr), ("switchback", dr, business)):
            n = written(old)
            wait_until(lambda: written(old) >= n + 40 or proc.poll() is not None, what=f"the pool writing before {op}")
            if ids is None:
                assert logins(business) == 4, logins(business)
            open_now = pool_sessions()
            assert len(open_now) == 4 and (ids is None or set(open_now) == ids), open_now
            ids = set(open_now)
            wait_until(lambda: (open_at(old), open_at(new)) == (4, 0), what=f"4 pool sessions on one side before {op}")
            r = d.admin_ok(op, pair=pname)
            assert r["moved_clients"] >= 4, r
            n = written(new)
            wait_until(lambda: written(new) >= n + 40 or proc.poll() is not None, what=f"the pool writing after {op}")
        open_now = pool_sessions()
        assert set(open_now) == ids and set(open_now.values()) == {"business"}, open_now
        wait_until(lambda: (open_at(business), open_at(dr)) == (4, 0), what="4 pool sessions on business at the end")
    finally:
        stop.touch()
        outs, errs = proc.communicate(timeout=60)
    assert proc.returncode == 0, errs + outs
    res = json.loads(outs)
    assert res["errors"] == [] and res["conns"] == 4, (res["conns"], res["errors"][:10])
    with connect(business, db) as c, c.cursor() as cur:
        cur.execute("SELECT id, u FROM dbo.load WHERE id LIKE N'g%'")
        rows = dict(cur.fetchall())
    missing = [k for k in res["acked"] if k not in rows]
    assert len(res["acked"]) >= 160 and not missing, (len(res["acked"]), missing[:10])
    n_tx = [k for k in res["acked"] if int(k.split("-")[1]) % 3 == 2]
    assert all(rows[k] == 1 for k in n_tx), [k for k in n_tx if rows[k] != 1][:10]


def app_write(srv, db, key):
    """An INSERT by the application's user straight to srv: None, or the server's error."""
    try:
        with connect(srv, db, app=True) as c, c.cursor() as cur:
            cur.execute("INSERT INTO dbo.load (id, t, u) VALUES (%s, 9, 0)", (key,))
        return None
    except pytds.Error as e:
        return e


def test_passive_side_fenced_writer_spared(switchable, doubles):
    """fence_passive = on (the default): the passive side denies the application's user INSERT/UPDATE/DELETE with
    SQL Server's error 229 while Switchyard's writer applies there; a switch moves the fence to the other side;
    the precheck names the users a fence denies."""
    d, pname, db = switchable
    business, dr = doubles
    denied = f"The INSERT permission was denied on the object 'load', database '{db}', schema 'dbo'."
    e = wait_until(lambda: app_write(dr, db, "direct-dr"), what="the fence keeper fencing DR")
    assert e.msg_no == 229 and str(e) == denied, e
    assert app_write(business, db, "direct-b1") is None
    with connect(dr, db) as c, c.cursor() as cur:              # the forward writer is not fenced out
        wait_until(lambda: cur.execute("SELECT COUNT(*) FROM dbo.load WHERE id = N'direct-b1'") or cur.fetchone()[0],
                   what="direct-b1 applied on fenced DR")
    checks = {c["name"]: c for c in d.admin("precheck", pair=pname)["result"]["checks"]}
    for side in ("business", "dr"):
        assert checks[f"{side}_fence"]["status"] == "pass" and APP_USER in checks[f"{side}_fence"]["detail"], checks
    d.admin_ok("switchover", pair=pname)
    e = app_write(business, db, "direct-b2")
    assert e is not None and e.msg_no == 229 and str(e) == denied, e
    assert app_write(dr, db, "direct-dr2") is None
    with connect(business, db) as c, c.cursor() as cur:        # the reverse writer applies on fenced business
        wait_until(lambda: cur.execute("SELECT COUNT(*) FROM dbo.load WHERE id = N'direct-dr2'") or cur.fetchone()[0],
                   what="direct-dr2 applied on fenced business")
    d.admin_ok("switchback", pair=pname)
    assert app_write(business, db, "direct-b3") is None
    e = app_write(dr, db, "direct-dr3")
    assert e is not None and e.msg_no == 229, e
    with connect(dr, db) as c, c.cursor() as cur:              # the fence is recorded, the app's role untouched
        cur.execute("SELECT DISTINCT principal FROM switchyard.fence ORDER BY principal")
        assert cur.fetchall() == [(APP_USER,), ("guest",)]      # guest too: logins without a user enter as guest
    with connect(business, db) as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM switchyard.fence")
        assert cur.fetchone()[0] == 0


def test_fence_denies_only_what_is_missing_and_revokes_only_its_own(switchable, doubles):
    """A user with an operator's DENY INSERT only is denied UPDATE and DELETE by the fence too, and keeps its DENY
    INSERT after unfencing; a user whose name is a full sysname of 3-byte UTF-8 characters is fenced too."""
    d, pname, db = switchable
    business, dr = doubles
    user, long_user = f"part{db}", "\u4e2d" * 128
    execute(business, f"CREATE LOGIN {user} WITH PASSWORD = '{APP_PASSWORD}'")
    execute(business, f"CREATE USER {user} FOR LOGIN {user}; ALTER ROLE db_datawriter ADD MEMBER {user}; "
                      f"DENY INSERT TO {user}; CREATE USER [{long_user}] WITHOUT LOGIN", db)

    def denied(name):
        with connect(business, db) as c, c.cursor() as cur:
            cur.execute("SELECT d.permission_name FROM sys.database_permissions d JOIN sys.database_principals p ON "
                        "p.principal_id = d.grantee_principal_id WHERE d.class = 0 AND d.state = 'D' AND p.name = %s "
                        "ORDER BY d.permission_name", (name,))
            return [r[0] for r in cur.fetchall()]

    def part_write(sql):
        try:
            with pytds.connect(server="127.0.0.1", port=business.port, user=user, password=APP_PASSWORD, database=db,
                               autocommit=True, login_timeout=10, timeout=30, disable_connect_retry=True) as c, \
                    c.cursor() as cur:
                cur.execute(sql)
            return None
        except pytds.Error as e:
            return e
    d.admin_ok("switchover", pair=pname)                      # business fenced
    for sql in ("UPDATE dbo.load SET u = u + 1 WHERE id = N'seed'", "DELETE FROM dbo.load WHERE id = N'none'"):
        e = part_write(sql)
        assert e is not None and e.msg_no == 229, (sql, e)
    assert denied(long_user) == ["DELETE", "INSERT", "UPDATE"]
    d.admin_ok("switchback", pair=pname)                      # business unfenced
    assert denied(user) == ["INSERT"] and denied(long_user) == []
    assert part_write("UPDATE dbo.load SET u = u + 1 WHERE id = N'seed'") is None


def test_transaction_ending_within_txn_drain_moves(switchable, doubles):
    """Open when the switch holds the pair, committed within txn_drain_ms: it runs to its end on business (its
    statements are not held), the session moves, its rows are on DR."""
    d, pname, db = switchable
    with connect(doubles[0], db, port=d.port) as c, c.cursor() as cur:
        cur.execute("BEGIN TRANSACTION; INSERT INTO dbo.load VALUES (N'tx1', 1, 0)")
        assert [s["in_transaction"] for s in sessions(d, pname)] == [True]
        result = {}
        th = threading.Thread(target=lambda: result.update(r=d.admin("switchover", pair=pname)))
        th.start()
        wait_until(lambda: d.pair_status(pname).get("held") or "hold" in d.log(), what="the hold")
        time.sleep(0.1)
        cur.execute("INSERT INTO dbo.load VALUES (N'tx2', 1, 0)")
        cur.execute("COMMIT")
        th.join(60)
        assert result["r"].get("ok"), result
        assert result["r"]["result"]["aborted_transactions"] == 0, result
        cur.execute("SELECT COUNT(*) FROM dbo.load WHERE id IN (N'tx1', N'tx2')")
        assert cur.fetchone()[0] == 2
        assert [s["side"] for s in sessions(d, pname)] == ["dr"]


def test_transaction_past_txn_drain_is_rolled_back_with_1205(switchable, doubles):
    """Still open after txn_drain_ms: rolled back on business by the proxy; the client's next statement gets
    1205 with the retry text and the ENVCHANGE rollback, its COMMIT then fails (3902): nothing of it anywhere."""
    d, pname, db = switchable
    with connect(doubles[0], db, port=d.port) as c, c.cursor() as cur:
        cur.execute("BEGIN TRANSACTION; INSERT INTO dbo.load VALUES (N'lost1', 1, 0)")
        r = d.admin_ok("switchover", pair=pname)
        assert r["aborted_transactions"] == 1 and r["moved_clients"] == 1, r
        with pytest.raises(pytds.Error) as e:
            cur.execute("INSERT INTO dbo.load VALUES (N'lost2', 1, 0)")
        assert "Rerun the transaction" in str(e.value) and "switchover" in str(e.value), e.value
        assert e.value.msg_no == 1205, e.value
        with pytest.raises(pytds.Error) as e:
            cur.execute("COMMIT")
        assert e.value.msg_no == 3902, e.value                          # answered by DR: no transaction there
        cur.execute("INSERT INTO dbo.load VALUES (N'after', 1, 0)")     # the session goes on, on DR
    for srv in doubles:
        with connect(srv, db) as c, c.cursor() as cur:
            cur.execute("SELECT id FROM dbo.load WHERE id LIKE N'lost%'")
            assert cur.fetchall() == []
    with connect(doubles[1], db) as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM dbo.load WHERE id = N'after'")
        assert cur.fetchone()[0] == 1


class Login7Gate:
    """A TCP relay in front of the proxy that keeps the client's LOGIN7 packets until open() is called: a
    client whose PRELOGIN was answered before a hold sends its LOGIN7 during it."""

    def __init__(self, port):
        import socket
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port, self.target, self.gate = self.lsock.getsockname()[1], port, threading.Event()
        threading.Thread(target=self.accept, daemon=True).start()

    def open(self):
        self.gate.set()

    def accept(self):
        import socket
        c, _ = self.lsock.accept()
        srv = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self.pipe, args=(c, srv, True), daemon=True).start()
        threading.Thread(target=self.pipe, args=(srv, c, False), daemon=True).start()

    def pipe(self, src, dst, gated):
        buf = b""
        try:
            while data := src.recv(65536):
                if not gated:
                    dst.sendall(data)
                    continue
                buf += data
                while len(buf) >= 8 and len(buf) >= int.from_bytes(buf[2:4], "big"):
                    n = int.from_bytes(buf[2:4], "big")
                    pkt, buf = buf[:n], buf[n:]
                    if pkt[0] == 0x10:                                  # LOGIN7
                        self.gate.wait(30)
                    dst.sendall(pkt)
        except OSError:
            pass
        import socket
        for sock in (src, dst):                                         # one side ended: so does the other
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_logins_during_a_hold_and_a_switch_land_on_the_active_side(switchable, doubles):
    """A client that connects while the pair is held logs in when the hold ends, on the side then active; a
    connection still in its login (here one that sent nothing yet) neither delays nor fails a switch and logs
    in on the new side; clients that keep connecting through a switchover get 0 errors."""
    import socket
    d, pname, db = switchable
    business, dr = doubles
    d.admin_ok("hold", pair=pname)
    got = {}
    th = threading.Thread(target=lambda: got.update(c=connect(business, db, port=d.port)))
    th.start()
    time.sleep(0.5)
    assert th.is_alive(), "the login finished while the pair was held"
    assert [c["state"] for c in sessions(d, pname)] == ["PRELOGIN"]
    d.admin_ok("release", pair=pname)
    th.join(20)
    with got["c"] as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM dbo.load")
    # a LOGIN7 that arrives during a hold waits for its end (a switch could point it at the other side)
    gate = Login7Gate(d.port)
    th = threading.Thread(target=lambda: got.update(g=connect(business, db, port=gate.port)))
    th.start()
    wait_until(lambda: [c["state"] for c in sessions(d, pname)] == ["LOGIN7"], what="PRELOGIN answered")
    d.admin_ok("hold", pair=pname)
    gate.open()
    time.sleep(0.5)
    assert [c["state"] for c in sessions(d, pname)] == ["LOGIN7"], "a LOGIN7 went to a server during the hold"
    d.admin_ok("release", pair=pname)
    th.join(20)
    with got["g"] as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM dbo.load")
    silent = socket.create_connection(("127.0.0.1", d.port))    # accepted, its PRELOGIN not sent yet
    errors, acked, stop = [], [], threading.Event()

    def reconnecting(t):
        n = 0
        while not stop.is_set():
            try:
                with connect(business, db, port=d.port) as c, c.cursor() as cur:
                    cur.execute("INSERT INTO dbo.load VALUES (%s, %s, 0)", (f"l{t}-{n}", t))
                    c.commit()
                acked.append(f"l{t}-{n}")
            except Exception as e:  # noqa: BLE001 - every client error counts
                errors.append(f"{type(e).__name__}: {e}")
                return
            n += 1
    workers = [threading.Thread(target=reconnecting, args=(t,), daemon=True) for t in range(3)]
    try:
        for w in workers:
            w.start()
        wait_until(lambda: len(acked) >= 20 or errors, what="connecting clients")
        r = d.admin_ok("switchover", pair=pname)
        assert r["active_side"] == "dr" and r["pause_ms"] < 5000, r
        seen = len(acked)
        wait_until(lambda: len(acked) >= seen + 20 or errors, what="connecting clients after the switch")
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    assert not errors, errors
    with connect(dr, db) as c, c.cursor() as cur:
        cur.execute("SELECT id FROM dbo.load WHERE id LIKE N'l%'")
        assert set(acked) <= {row[0] for row in cur.fetchall()}
    # the connection that was silent through the switch did not delay it; its login would now go to DR
    assert [(c["state"], c["side"]) for c in sessions(d, pname)] == [("PRELOGIN", "dr")]
    silent.close()


def test_prepared_statements_before_and_after_a_switch(switchable, doubles):
    """Handles from sp_prepare / sp_prepexec before the switch execute after it (the proxy prepared them again
    on DR and maps the handles); a statement prepared after it gets a handle no old one collides with."""
    d, pname, db = switchable
    with connect(doubles[0], db, port=d.port) as c, c.cursor() as cur:
        h1 = cur.callproc(tds_base.SP_PREPARE, (pytds.output(param_type="int"), "@a int", "SELECT @a + 1", 1))[0]
        h0 = cur.callproc(tds_base.SP_PREPARE, (pytds.output(param_type="int"), "@a int", "SELECT @a", 1))[0]
        cur.callproc(tds_base.InternalProc(15, "sp_unprepare"), (h0,))
        h2 = cur.callproc(tds_base.InternalProc(13, "sp_prepexec"),
                          (pytds.output(param_type="int"), "@i nvarchar(40)",
                           "INSERT INTO dbo.load (id, t, u) VALUES (@i, 5, 0)", "p-before"))[0]
        r = d.admin_ok("switchover", pair=pname)
        assert r["moved_clients"] == 1, r
        cur.callproc(tds_base.SP_EXECUTE, (h1, 41))
        assert cur.fetchall() == [(42,)]
        cur.callproc(tds_base.SP_EXECUTE, (h2, "p-after"))
        h3 = cur.callproc(tds_base.SP_PREPARE, (pytds.output(param_type="int"), "@a int", "SELECT @a * 3", 1))[0]
        assert h3 not in (h1, h2), (h1, h2, h3)
        cur.callproc(tds_base.SP_EXECUTE, (h3, 5))
        assert cur.fetchall() == [(15,)]
        cur.callproc(tds_base.SP_EXECUTE, (h1, 1))
        assert cur.fetchall() == [(2,)]
        assert sessions(d, pname)[0]["prepared"] == 3
    with connect(doubles[1], db) as c, c.cursor() as cur:
        cur.execute("SELECT id FROM dbo.load WHERE t = 5 ORDER BY id")
        assert [x[0] for x in cur.fetchall()] == ["p-after", "p-before"]


def test_session_state_restored_after_a_switch(switchable, doubles):
    """What a session changed is there on DR after the move: the database it switched to with USE and a SET
    option (NOCOUNT ON: no row count in DONE)."""
    d, pname, db = switchable
    with connect(doubles[0], None, port=d.port) as c, c.cursor() as cur:
        cur.execute(f"USE {db}")
        cur.execute("SET NOCOUNT ON")
        cur.execute("UPDATE dbo.load SET u = u WHERE id = N'seed'")
        assert cur.rowcount == -1
        r = d.admin_ok("switchover", pair=pname)
        assert r["moved_clients"] == 1, r
        (s,) = sessions(d, pname)
        assert s["side"] == "dr" and s["database"] == db and s["set_options"] == ["SET NOCOUNT ON"], s
        cur.execute("SELECT DB_NAME(), COUNT(*) FROM dbo.load WHERE id = N'seed'")
        assert cur.fetchone() == (db, 1)
        cur.execute("UPDATE dbo.load SET u = u WHERE id = N'seed'")
        assert cur.rowcount == -1                                 # NOCOUNT still on, on DR
        cur.execute("SET NOCOUNT OFF")
        cur.execute("UPDATE dbo.load SET u = u WHERE id = N'seed'")
        assert cur.rowcount == 1


def test_temp_table_session_refuses_and_force_closes_it(switchable, doubles):
    d, pname, db = switchable
    pinned = connect(doubles[0], db, port=d.port)
    other = connect(doubles[0], db, port=d.port)
    try:
        try:
            pinned.cursor().execute("CREATE TABLE #work (a int)")
        except pytds.Error:
            pass                                    # the double has no temp tables; SQL Server would create it
        r = d.admin("switchover", pair=pname)
        assert r["ok"] is False and r["error"]["code"] == "unmovable_sessions", r
        assert "temporary table #work" in json.dumps(r["error"]), r
        assert d.pair_status(pname)["active_side"] == "business"
        r = d.admin_ok("switchover", pair=pname, force=True)
        assert r["active_side"] == "dr" and r["moved_clients"] == 1 and r["closed_unmovable"] == 1, r
        with pytest.raises(Exception) as e:
            pinned.cursor().execute("SELECT 1")
        assert "forced switch" in str(e.value) and "temporary table #work" in str(e.value), e.value
        cur = other.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchone()[0] == 1
    finally:
        for c in (pinned, other):
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass


def test_failover_kill9_every_ack_on_dr_or_in_the_tail(switchable, doubles, tmp_path):
    """kill -9 of the business double under 4 pytds writers (the application's user) through the proxy; failover:
    the writers reconnect and go on on DR; every insert acknowledged to them is on DR or in the exported tail
    (business's CDC changes the forward instance never collected); resolve-tail makes business equal DR; a
    switchback works after. Last in this module: it restarts the module's business double."""
    d, pname, db = switchable
    business, dr = doubles
    acked: dict = {}
    errors: list = []
    phase = {"now": "before"}
    stop = threading.Event()
    lock = threading.Lock()

    def writer(t):
        n, c = 0, None
        while not stop.is_set():
            key = f"f{t}-{n}"
            n += 1
            try:
                if c is None:
                    c = connect(business, db, port=d.port, app=True)
                with c.cursor() as cur:
                    cur.execute("INSERT INTO dbo.load (id, t, u) VALUES (%s, %s, 0)", (key, t))
                with lock:
                    acked[key] = phase["now"]
            except Exception as e:  # noqa: BLE001 - expected while business is dead; counted
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                try:
                    c.close()
                except Exception:  # noqa: BLE001
                    pass
                c = None
                stop.wait(0.1)
            stop.wait(0.01)

    threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(4)]
    try:
        list(map(threading.Thread.start, threads))
        wait_until(lambda: len(acked) >= 80, what="the writers running")
        # right before the kill, out of the capture job's reach (--cdc-delay 0.2 s): an insert the tail must hold,
        # and an update of the seed row that DR then deletes after the failover (the reverse writer must apply
        # that delete on the reverted business without a conflict)
        with connect(business, db) as c, c.cursor() as cur:
            cur.execute("UPDATE dbo.load SET u = 7 WHERE id = N'seed'; "
                        "INSERT INTO dbo.load VALUES (N'tail-probe', 9, 0)")
        business.kill9()
        r = d.admin_ok("failover", pair=pname)
        phase["now"] = "after"
        assert r["active_side"] == "dr", r
        execute(dr, "DELETE FROM dbo.load WHERE id = N'seed'", db)
        wait_until(lambda: sum(1 for v in acked.values() if v == "after") >= 40, what="the writers going on, on DR")
    finally:
        stop.set()
        [th.join(30) for th in threads]  # noqa: expression on purpose: every writer is done before the restart
        business.start()
    tail = wait_until(lambda: (d.pair_status(pname).get("tail") or {}).get("state") in ("open", None) and
                      d.pair_status(pname).get("tail") or {}, what="the tail found")
    assert tail.get("state") == "open", tail
    export = tmp_path / "tail.json"
    res = d.ctl("resolve-tail", pname, "--export", str(export))
    assert res.returncode == 0, res.stdout + res.stderr
    assert os.stat(export).st_mode & 0o777 == 0o600
    detail = json.loads(export.read_text())
    in_tail = {row["after"]["id"] for t in detail["transactions"] for row in t["rows"] if row.get("after")}
    assert {"tail-probe", "seed"} <= in_tail, sorted(in_tail)
    with connect(dr, db) as c, c.cursor() as cur:
        cur.execute("SELECT id FROM dbo.load")
        on_dr = {x[0] for x in cur.fetchall()}
    lost = sorted(k for k in acked if k not in on_dr and k not in in_tail)
    print(f"\nsqlserver failover: {len(acked)} acknowledged ({sum(v == 'after' for v in acked.values())} after), "
          f"{len(in_tail)} in the tail, {len(errors)} client errors while business was dead")
    assert not lost, f"acknowledged writes neither on DR nor in the tail: {lost[:20]}"

    def same():
        got = []
        for srv in doubles:
            with connect(srv, db) as c, c.cursor() as cur:
                cur.execute("SELECT id, t, u FROM dbo.load ORDER BY id")
                got.append(cur.fetchall())
        return got[0] == got[1]
    wait_until(same, what="business equal to DR after resolve-tail")
    assert (reverse(d, pname) or {}).get("state") not in ("failed", None), reverse(d, pname)
    with connect(business, db) as c, c.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM dbo.load WHERE id IN (N'seed', N'tail-probe')")
        assert cur.fetchone()[0] == 0                         # DR's delete applied, the tail's insert reverted
    r = d.admin_ok("switchback", pair=pname)
    assert r["active_side"] == "business", r
    assert app_write(business, db, "after-switchback") is None
