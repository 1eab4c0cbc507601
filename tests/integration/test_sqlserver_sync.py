"""The SQL Server forward instance (business -> DR) on two SQL Server doubles (tests/doubles/): the initial
sync, the CDC collector and the writer. What a user relies on: DR ends up with exactly business's rows after a
random pytds workload (inserts/updates/deletes, several tables, multi-statement transactions) and after kill -9
of switchyardd (nothing applied twice: per-worker checkpoints in the writer's transactions); a position below
the capture instance's minimum LSN fails the instance naming both LSNs; the writer's own transactions are never
collected back (echo marker) when both directions collect; clear errors."""

from __future__ import annotations

import functools
import itertools
import os
import random
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
              "placed datetime2 NULL, note nvarchar(max) NULL",
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
                    cur.execute("INSERT INTO dbo.orders (id, customer, amount, placed, note) VALUES "
                                "(%s, %s, %s, '2026-12-03 10:11:12.1234567', %s)",
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
    st = instance(d, "demo")
    assert st["last_error"] is None, st
    assert st["write"]["conflicts_overwritten"] == 0, st
