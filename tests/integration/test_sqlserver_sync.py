"""The SQL Server forward instance (business -> DR) on two SQL Server doubles (tests/doubles/): the initial
sync, the CDC collector and the writer. What a user relies on: DR ends up with exactly business's rows after a
random pytds workload (inserts/updates/deletes, several tables, multi-statement transactions) and after kill -9
of switchyardd (nothing applied twice: per-worker checkpoints in the writer's transactions); a position below
the capture instance's minimum LSN fails the instance naming both LSNs; the writer's own transactions are never
collected back (echo marker) when both directions collect; clear errors."""

from __future__ import annotations

import functools
import itertools
import json
import os
import random
import subprocess
import sys
import time

import pytest

from helpers import instance, reverse, wait_for, wait_reverse, wait_state

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "doubles"))

from tds_fixtures import running_double  # noqa: E402

pytds = pytest.importorskip("pytds")

pytestmark = [pytest.mark.timeout(120)]

wait_until = functools.partial(wait_for, timeout=40.0, interval=0.1)
_counter = itertools.count()

TABLES = {
    "orders": "id int NOT NULL PRIMARY KEY, customer nvarchar(40) NOT NULL, amount decimal(12,2) NULL, "
              "placed datetime2 NULL, note nvarchar(max) NULL, created datetime NULL",
    "lines": "order_id int NOT NULL, line int NOT NULL, sku varchar(20) NOT NULL, qty bigint NOT NULL, "
             "price float NULL, blob varbinary(64) NULL, flag bit NULL, PRIMARY KEY (order_id, line)",
}


@pytest.fixture(scope="module")
def doubles():
    with running_double(cdc_delay=0.3) as business, running_double(cdc_delay=0.3) as dr:
        yield business, dr


def connect(d, db=None, autocommit=True):
    return pytds.connect(server=d.host, port=d.port, user=d.user, password=d.password, database=db,
                         autocommit=autocommit, login_timeout=10, timeout=30)


def execute(d, sql, db=None):
    with connect(d, db) as c, c.cursor() as cur:
        cur.execute(sql)


def scalar(d, sql, db=None):
    with connect(d, db) as c, c.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0]


def rows(d, db, table):
    key = "id" if table == "orders" else "order_id, line"
    with connect(d, db) as c, c.cursor() as cur:
        cur.execute(f"SELECT * FROM dbo.{table} ORDER BY {key}")
        return [tuple(r) for r in cur.fetchall()]


def snapshot(d, db):
    return {t: rows(d, db, t) for t in TABLES}


@pytest.fixture
def fresh(doubles):
    """A database of this test's own on both sides, CDC enabled on both; the tables (CDC-enabled) on business."""
    db = f"sy{os.getpid() % 1000}_{next(_counter)}"
    for d in doubles:
        execute(d, f"CREATE DATABASE {db}")
        execute(d, "EXEC sys.sp_cdc_enable_db", db)
    b = doubles[0]
    for t, cols in TABLES.items():
        execute(b, f"CREATE TABLE dbo.{t} ({cols})", db)
        execute(b, f"EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'{t}', "
                   f"@role_name = NULL", db)
    return db


@pytest.fixture
def tds_daemon(daemon, doubles):
    business, dr = doubles

    def factory(db, **kw):
        kw.setdefault("engine", "sqlserver")
        kw.setdefault("business", f"{business.host}:{business.port}")
        kw.setdefault("dr", f"{dr.host}:{dr.port}")
        kw.setdefault("admin_user", business.user)
        kw.setdefault("admin_password", business.password)
        kw.setdefault("objects", f"{db}.*")
        kw.setdefault("apply_threads", 2)
        return daemon(**kw)

    return factory


def workload(d, db, n, seed, start=0):
    """n pytds transactions of 1-4 statements on both tables: inserts, updates (also of keys), deletes."""
    rnd = random.Random(seed)
    with connect(d, db, autocommit=False) as c:
        cur = c.cursor()
        cur.execute("SELECT id FROM dbo.orders")
        ids = [r[0] for r in cur.fetchall()]
        c.commit()
        nxt = start
        for _ in range(n):
            for _ in range(rnd.randint(1, 4)):
                r = rnd.random()
                if r < 0.45 or not ids:
                    nxt += 1
                    oid = seed * 100000 + nxt
                    cur.execute("INSERT INTO dbo.orders (id, customer, amount, placed, note, created) VALUES "
                                "(%s, %s, %s, '2026-12-03 10:11:12.1234567', %s, '2026-12-03 10:11:12.127')",
                                (oid, f"cüst'{nxt}", f"{rnd.randint(0, 99999) / 100:.2f}",
                                 None if rnd.random() < 0.3 else "x" * rnd.randint(0, 300)))
                    for ln in range(rnd.randint(0, 3)):
                        blob = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 20))).hex()
                        cur.execute("INSERT INTO dbo.lines (order_id, line, sku, qty, price, blob, flag) VALUES "
                                    f"(%s, %s, %s, %s, %s, 0x{blob}, %s)",
                                    (oid, ln, f"S{rnd.randint(1, 99)}", rnd.randint(-5, 2 ** 40), rnd.random() * 1e6,
                                     rnd.random() < 0.5))
                    ids.append(oid)
                elif r < 0.75:
                    oid = rnd.choice(ids)
                    cur.execute("UPDATE dbo.orders SET amount = %s, note = %s WHERE id = %s",
                                (f"{rnd.randint(0, 99999) / 100:.2f}", f"upd {rnd.random()}", oid))
                    cur.execute("UPDATE dbo.lines SET qty = qty + 1 WHERE order_id = %s", (oid,))
                elif r < 0.85:
                    oid = rnd.choice(ids)   # a key change
                    cur.execute("UPDATE dbo.lines SET line = line + 10 WHERE order_id = %s AND line < 10", (oid,))
                else:
                    oid = ids.pop(rnd.randrange(len(ids)))
                    cur.execute("DELETE FROM dbo.lines WHERE order_id = %s", (oid,))
                    cur.execute("DELETE FROM dbo.orders WHERE id = %s", (oid,))
            if rnd.random() < 0.1:
                c.rollback()         # never visible anywhere
                cur.execute("SELECT id FROM dbo.orders")
                ids = [r[0] for r in cur.fetchall()]
                c.commit()
            else:
                c.commit()
    return nxt


def assert_equal_eventually(doubles, db, timeout=40):
    b, dr = doubles
    want = {}

    def same():
        want.clear()
        want.update(snapshot(b, db))
        return want == snapshot(dr, db)
    try:
        wait_until(same, timeout=timeout, what=f"{db} equal on both sides")
    except Exception:
        got = snapshot(dr, db)
        for t in TABLES:
            if want.get(t) != got.get(t):
                print(t, "business only:", sorted(set(want[t]) - set(got[t]))[:5])
                print(t, "dr only:", sorted(set(got[t]) - set(want[t]))[:5])
        raise
    return want


def wait_collecting(d, pname="demo"):
    wait_state(d, pname, "running")
    return wait_until(lambda: instance(d, pname)["collection"]["position"] and instance(d, pname),
                      what="the collector's position")


def test_initial_and_forward_sync_after_random_workload(tds_daemon, doubles, fresh):
    b, dr = doubles
    workload(b, fresh, 30, 1)                 # before the instance: the initial sync copies it
    d = tds_daemon(fresh)
    st = wait_collecting(d)
    assert st["state"] == "running", st
    assert len(st["collection"]["position"]) == 20, st
    workload(b, fresh, 120, 2)
    want = assert_equal_eventually(doubles, fresh)
    assert want["orders"] and want["lines"]
    st = wait_until(lambda: (s := instance(d, "demo"))["write"]["lag_events"] == 0 and s, what="writer caught up")
    assert st["last_error"] is None, st
    assert st["write"]["conflicts_overwritten"] == 0, st
    assert len(st["write"]["position"]) == 20 and st["write"]["position"] <= st["collection"]["position"], st
    assert st["collection"]["lag_ms"] >= 0 and st["write"]["lag_ms"] == 0, st


@pytest.mark.parametrize("failpoint", ["sqlserver_write_before_commit", "sqlserver_write_after_commit"])
def test_forward_resumes_after_kill9_nothing_applied_twice(tds_daemon, doubles, fresh, failpoint):
    """switchyardd dies (a failpoint's _exit, as kill -9) before or right after a worker's commit; restarted, DR
    ends equal to business. on_conflict = fail with the same apply_threads: an INSERT applied a second time
    would find its row and fail the instance (conflict), so a clean run proves each change applied once."""
    b, dr = doubles
    d = tds_daemon(fresh, env={"SY_FAILPOINT": failpoint})
    wait_collecting(d)
    nxt = workload(b, fresh, 40, 3)
    assert d.wait(60) != 0, "the failpoint should have stopped switchyardd"
    nxt = workload(b, fresh, 40, 3, start=nxt)          # more while it is down
    d.env.pop("SY_FAILPOINT", None)
    d.restart()
    wait_state(d, "demo", "running")
    workload(b, fresh, 20, 3, start=nxt)
    assert_equal_eventually(doubles, fresh)
    st = instance(d, "demo")
    assert st["state"] == "running" and st["last_error"] is None, st
    assert st["write"]["conflicts_overwritten"] == 0, st


def test_forward_resumes_after_plain_kill9(tds_daemon, doubles, fresh):
    b, dr = doubles
    d = tds_daemon(fresh)
    wait_collecting(d)
    nxt = workload(b, fresh, 30, 4)
    d.kill9()
    nxt = workload(b, fresh, 30, 4, start=nxt)
    d.restart()
    wait_state(d, "demo", "running")
    assert_equal_eventually(doubles, fresh)
    st = instance(d, "demo")
    assert st["last_error"] is None and st["write"]["conflicts_overwritten"] == 0, st


def lsn_of(d, db, sql):
    with connect(d, db) as c, c.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()[0].hex()


def test_position_below_min_lsn_fails_naming_both(tds_daemon, doubles, fresh):
    """CDC cleanup raised the capture instance's minimum LSN past the paused instance's position: start
    fails the collection with position_unavailable naming both LSNs; nothing is skipped."""
    b, dr = doubles
    d = tds_daemon(fresh)
    wait_collecting(d)
    execute(b, "INSERT INTO dbo.orders (id, customer) VALUES (1, N'a')", fresh)
    wait_until(lambda: rows(dr, fresh, "orders"), what="the first row on DR")
    assert d.ctl("pause", "demo/forward").returncode == 0
    wait_state(d, "demo", "paused")
    saved = instance(d, "demo")["collection"]["position"]
    execute(b, "INSERT INTO dbo.orders (id, customer) VALUES (2, N'b')", fresh)
    wait_until(lambda: lsn_of(b, fresh, "SELECT sys.fn_cdc_get_max_lsn()") > saved, what="captured")
    mx = lsn_of(b, fresh, "SELECT sys.fn_cdc_get_max_lsn()")
    execute(b, f"EXEC sys.sp_cdc_cleanup_change_table @capture_instance = N'dbo_orders', @low_water_mark = 0x{mx}",
            fresh)
    assert lsn_of(b, fresh, "SELECT sys.fn_cdc_get_min_lsn('dbo_orders')") == mx
    assert d.ctl("start", "demo/forward").returncode == 0
    st = wait_state(d, "demo", "failed")
    assert st.get("reason") == "position_unavailable", st
    text = st["last_error"]
    assert saved in text and mx in text and "dbo_orders" in text, st
    assert [r[0] for r in rows(dr, fresh, "orders")] == [1]     # row 2 was not skipped into DR either


def tail_tool(srv, db, *args):
    from conftest import BUILD_DIR
    r = subprocess.run([str(BUILD_DIR / "sy_tail_tool"), *args, "engine=sqlserver", f"host={srv.host}",
                        f"port={srv.port}", f"user={srv.user}", f"password={srv.password}", f"objects={db}.*"],
                       capture_output=True, text=True, timeout=120)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else None), r.stderr


def test_tail_revert_with_before_images_and_tail_lost_to_cleanup(doubles, fresh, tmp_path):
    """replay/sqlserver_tail_revert.c through tests/clients/sy_tail_tool: an insert, an update and a delete on a
    table with an identity column and on one without are undone with the tail's before images, newest first
    (business back as it was at the tail's start); then CDC cleanup past the tail's start makes reading that
    tail fail naming both LSNs instead of returning less."""
    b = doubles[0]
    execute(b, "CREATE TABLE dbo.ident (id int IDENTITY(1,1) NOT NULL PRIMARY KEY, v nvarchar(20) NULL)", fresh)
    execute(b, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'ident', @role_name = NULL",
            fresh)
    execute(b, "INSERT INTO dbo.orders (id, customer, amount) VALUES (1, N'a', 1.50), (2, N'b', 2.25); "
               "INSERT INTO dbo.ident (v) VALUES (N'x'), (N'y')", fresh)

    def state():
        with connect(b, fresh) as c, c.cursor() as cur:
            cur.execute("SELECT id, customer, amount FROM dbo.orders ORDER BY id")
            o = [tuple(r) for r in cur.fetchall()]
            cur.execute("SELECT id, v FROM dbo.ident ORDER BY id")
            return o, [tuple(r) for r in cur.fetchall()]

    def read(frm):
        rc, out, err = tail_tool(b, fresh, "read", f"from={frm}")
        assert rc == 0, err
        return out
    start = wait_until(lambda: (t := read("")) and t["rows"] == 4 and t, what="the seed captured")["to"]
    before = state()
    execute(b, "INSERT INTO dbo.orders (id, customer) VALUES (3, N'c'); UPDATE dbo.orders SET customer = N'z', "
               "amount = 9.99 WHERE id = 1; DELETE FROM dbo.orders WHERE id = 2; INSERT INTO dbo.ident (v) VALUES "
               "(N'w'); UPDATE dbo.ident SET v = N'q' WHERE id = 1; DELETE FROM dbo.ident WHERE id = 2", fresh)
    execute(b, "UPDATE dbo.orders SET customer = N'zz' WHERE id = 1", fresh)     # a second transaction on a key
    tail = wait_until(lambda: (t := read(start)) and t["rows"] == 7 and t, what="the tail captured")
    assert state() != before
    path = tmp_path / "tail.json"
    path.write_text(json.dumps(tail))
    rc, res, err = tail_tool(b, fresh, "revert", f"tail={path}")
    assert rc == 0, err
    assert res == {"reverted_transactions": len(tail["transactions"]), "reverted_rows": 7}, res
    assert state() == before
    wait_until(lambda: lsn_of(b, fresh, "SELECT sys.fn_cdc_get_max_lsn()") > tail["to"], what="the revert captured")
    mx = lsn_of(b, fresh, "SELECT sys.fn_cdc_get_max_lsn()")
    execute(b, f"EXEC sys.sp_cdc_cleanup_change_table @capture_instance = N'dbo_orders', @low_water_mark = 0x{mx}",
            fresh)
    rc, _, err = tail_tool(b, fresh, "read", f"from={start}")
    assert rc == 1 and "dbo_orders" in err and start in err and mx in err, err


ODD_CI = "dbo_orders o'k]"       # a space, a quote and a bracket: cdc.[fn_cdc_get_all_changes_dbo_orders o'k]]]


def test_capture_instance_name_with_space_quote_and_bracket(tds_daemon, doubles, fresh):
    """A capture instance named with a space, a quote and a closing bracket: the collector, the initial sync's
    start position and the unreplicated tail bracket-quote its CDC function and quote its name as a literal,
    so its changes reach DR and the tail; unquoted, the collector failed on the first poll that read it."""
    b, dr = doubles
    execute(b, "CREATE TABLE dbo.odd (id int NOT NULL PRIMARY KEY, v nvarchar(20) NULL)", fresh)
    lit = ODD_CI.replace("'", "''")
    execute(b, f"EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'odd', @role_name = NULL, "
               f"@capture_instance = N'{lit}'", fresh)
    execute(b, "INSERT INTO dbo.odd (id, v) VALUES (1, N'one'), (2, N'two')", fresh)
    d = tds_daemon(fresh)
    wait_collecting(d)
    execute(b, "INSERT INTO dbo.odd (id, v) VALUES (3, N'three'); UPDATE dbo.odd SET v = N'uno' WHERE id = 1; "
               "DELETE FROM dbo.odd WHERE id = 2", fresh)
    execute(b, "INSERT INTO dbo.orders (id, customer) VALUES (1, N'a')", fresh)

    def odd(srv):
        with connect(srv, fresh) as c, c.cursor() as cur:
            cur.execute("SELECT id, v FROM dbo.odd ORDER BY id")
            return [tuple(r) for r in cur.fetchall()]
    wait_until(lambda: odd(dr) == [(1, "uno"), (3, "three")] and rows(dr, fresh, "orders"), what="dbo.odd on DR")
    st = instance(d, "demo")
    assert st["state"] == "running" and st["last_error"] is None, st
    rc, tail, err = tail_tool(b, fresh, "read", "from=")
    assert rc == 0, err
    ops = [(r["table"].split(".")[-1], r["op"]) for t in tail["transactions"] for r in t["rows"]]
    assert ops.count(("odd", "insert")) == 3 and ("odd", "update") in ops and ("odd", "delete") in ops, ops


def test_echo_suppression_both_directions(tds_daemon, doubles, fresh):
    """Both directions collect and write: rows written on either side cross once and never come back (the
    writers' switchyard.echo markers in their own transactions)."""
    b, dr = doubles
    d = tds_daemon(fresh)
    wait_collecting(d)
    execute(b, "INSERT INTO dbo.orders (id, customer) VALUES (1, N'first')", fresh)
    wait_until(lambda: rows(dr, fresh, "orders"), what="the first row on DR")
    r = d.admin_ok("create-reverse", pair="demo")
    assert r["state"] == "collecting", r
    assert d.ctl("start", "demo/reverse").returncode == 0
    wait_reverse(d, "demo", "running")
    with connect(b, fresh, autocommit=False) as c:
        cur = c.cursor()
        for i in range(2, 30):
            cur.execute("INSERT INTO dbo.orders (id, customer) VALUES (%s, %s)", (i, f"b{i}"))
            c.commit()
    with connect(dr, fresh, autocommit=False) as c:
        cur = c.cursor()
        for i in range(500, 510):
            cur.execute("INSERT INTO dbo.orders (id, customer) VALUES (%s, %s)", (i, f"d{i}"))
            c.commit()
    execute(b, "UPDATE dbo.orders SET note = N'plus' WHERE id < 10", fresh)
    try:
        wait_until(lambda: len(rows(b, fresh, "orders")) == 39 and rows(b, fresh, "orders") == rows(dr, fresh, "orders"),
                   what="both sides equal")
    except AssertionError:
        bo, do = set(rows(b, fresh, "orders")), set(rows(dr, fresh, "orders"))
        print("business only", sorted(bo - do), "dr only", sorted(do - bo), instance(d, "demo"), reverse(d, "demo"))
        raise
    time.sleep(2.0)  # an echo would come back as a second apply
    fw, rv = instance(d, "demo"), reverse(d, "demo")
    assert fw["state"] == "running" and rv["state"] == "running", (fw, rv)
    assert rv["write"]["events"] == 10, rv                    # only the DR-local rows went back
    assert fw["write"]["events"] == 1 + 28 + 9, fw            # business's rows (9 updated), none twice
    assert fw["last_error"] is None and rv["last_error"] is None
    assert rows(b, fresh, "orders") == rows(dr, fresh, "orders")


def test_precheck_names_what_is_missing(tds_daemon, doubles, fresh):
    """A table without a primary key and without CDC: the precheck fails naming it; so does a DR database
    without CDC."""
    b, dr = doubles
    execute(b, "CREATE TABLE dbo.nokey (a int NULL, b nvarchar(10) NULL)", fresh)
    execute(dr, "EXEC sys.sp_cdc_disable_db", fresh)
    d = tds_daemon(fresh)
    r = d.admin("precheck", pair="demo")
    print(r)
    checks = {c["name"]: c for c in r["result"]["checks"]}
    assert checks["source_keys"]["status"] == "fail" and "dbo.nokey" in checks["source_keys"]["detail"], checks
    assert checks["source_cdc_tables"]["status"] == "fail" and "dbo.nokey" in checks["source_cdc_tables"]["detail"]
    assert checks["dr_cdc_database"]["status"] == "fail", checks
    assert "sp_cdc_enable_db" in checks["dr_cdc_database"]["fix"]
    assert checks["business_cdc_database"]["status"] == "pass"
    # what fencing allows: admin_user (sa: sysadmin, so dbo) may DENY; the users a fence denies are named
    assert checks["business_fence"]["status"] == "pass" and "guest" in checks["business_fence"]["detail"], checks
    # an application role: sp_setapprole gives a session the role's permissions, which no DENY to users reaches
    execute(b, "CREATE APPLICATION ROLE [billing app] WITH PASSWORD = N'Appr0le!pw'", fresh)
    checks = {c["name"]: c for c in d.admin("precheck", pair="demo")["result"]["checks"]}
    fence = checks["business_fence"]
    assert fence["status"] == "warn" and "application roles" in fence["detail"], fence
    assert "billing app" in fence["detail"] and "sp_setapprole" in fence["detail"] and fence["fix"], fence
    assert checks["dr_fence"]["status"] == "pass", checks      # none on DR


def test_verify_counts_and_chunked_checksums(tds_daemon, doubles, fresh):
    """verify: clean after the copy and a workload (orders in 3 chunks of initial_sync_chunk_rows = 20 keys, the
    copy in chunks of 20 too); a row changed and one deleted directly on DR make their chunk a confirmed
    mismatch, the other chunks stay ok."""
    b, dr = doubles
    values = ", ".join(f"({i}, N'c{i}', {i}.25, NULL, NULL)" for i in range(1, 51))
    execute(b, f"INSERT INTO dbo.orders (id, customer, amount, placed, note) VALUES {values}", fresh)
    d = tds_daemon(fresh, initial_sync_chunk_rows=20)
    wait_collecting(d)
    assert_equal_eventually(doubles, fresh)
    r = d.admin_ok("verify", pair="demo")
    assert r["clean"] is True, r
    t = {x["table"]: x for x in r["tables"]}
    assert t[f"{fresh}.orders"]["status"] == "ok" and t[f"{fresh}.orders"]["chunks"] == 3, r
    assert t[f"{fresh}.orders"]["business_rows"] == t[f"{fresh}.orders"]["dr_rows"] == 50, r
    execute(dr, "UPDATE dbo.orders SET customer = N'changed on dr' WHERE id = 30", fresh)
    execute(dr, "DELETE FROM dbo.orders WHERE id = 31", fresh)
    r = d.admin_ok("verify", pair="demo")
    assert r["clean"] is False, r
    o = {x["table"]: x for x in r["tables"]}[f"{fresh}.orders"]
    assert o["status"] == "mismatch" and o["business_rows"] == o["dr_rows"] + 1, o
    assert len(o["mismatches"]) == 1 and o["mismatches"][0]["confirmed"] is True, o
    m = o["mismatches"][0]
    assert m["business_rows"] == m["dr_rows"] + 1 and "20" in m["from"] and "40" in m["to"], o


def test_a_reverse_instance_created_again_starts_its_own_history(tds_daemon, doubles, fresh):
    """The reverse instance's switchyard.checkpoint rows on business are keyed by its id, which a new
    create-reverse reuses: create-reverse deletes them before the answer, so the new writer does not resume
    its workers from the terminated one's sequence numbers (it skipped that many records of the new spool)."""
    b, dr = doubles
    d = tds_daemon(fresh)
    wait_collecting(d)
    d.admin_ok("create-reverse", pair="demo")
    assert d.ctl("start", "demo/reverse").returncode == 0
    wait_reverse(d, "demo", "running")
    for i in range(400, 410):
        execute(dr, f"INSERT INTO dbo.orders (id, customer) VALUES ({i}, N'first reverse')", fresh)
    wait_until(lambda: len([r for r in rows(b, fresh, "orders") if r[0] >= 400]) == 10,
               what="the first reverse instance applied")
    ckpt = lambda: scalar(b, "SELECT COALESCE(MAX(seq), -1) FROM switchyard.checkpoint WHERE instance = 'demo/reverse'",
                          fresh)
    old = ckpt()
    assert old >= 10, old
    d.admin_ok("terminate", instance="demo/reverse")
    d.admin_ok("create-reverse", pair="demo")
    assert ckpt() == 0                                          # reset: no history
    assert scalar(b, "SELECT COUNT(*) FROM switchyard.checkpoint WHERE instance = 'demo/reverse' AND position <> ''",
                  fresh) == 0
    for i in range(500, 530):
        execute(dr, f"INSERT INTO dbo.orders (id, customer) VALUES ({i}, N'second reverse')", fresh)
    wait_until(lambda: reverse(d, "demo")["collection"]["spool_seq"] > old, what="collected past the old checkpoint")
    assert d.ctl("start", "demo/reverse").returncode == 0
    wait_reverse(d, "demo", "running")
    wait_until(lambda: len([r for r in rows(b, fresh, "orders") if r[0] >= 500]) == 30,
               what="every row of the second reverse instance")
    assert rows(b, fresh, "orders") == rows(dr, fresh, "orders")
