"""Switchover, switchback and failover through the proxy (ARCHITECTURE.md steps 1-6), against two real
MariaDB servers with clients connected to Switchyard the whole time."""

from __future__ import annotations

import threading
import time

import pymysql
import pytest

from test_forward_mariadb import fresh, q, wait_for, wait_state  # noqa: F401 (fixture)
from test_reverse_mariadb import reverse, wait_reverse

APP_USER, APP_PASSWORD = "sw_app", "app-Secret-1"


def forward(d, pname):
    return next(i for i in d.pair_status(pname)["instances"] if i["direction"] == "forward")


def app_user(pair, db):
    """An application account (no SUPER, no READ ONLY ADMIN) on both sides, as applications have."""
    for s in pair:
        s.sql(f"CREATE USER IF NOT EXISTS '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'")
        s.sql(f"GRANT ALL PRIVILEGES ON `{db}`.* TO '{APP_USER}'@'%'")


def app_conn(d, db=None, **kw):
    return pymysql.connect(host="127.0.0.1", port=d.port, user=APP_USER, password=APP_PASSWORD, database=db,
                           autocommit=True, charset="utf8mb4", **kw)


def one(c, sql, args=None):
    with c.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()


@pytest.fixture
def switchable(daemon, mariadb_pair, fresh):  # noqa: F811
    """A pair with a running forward instance, a collecting reverse instance and an app account."""
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))", database=fresh)
    b.sql("INSERT INTO t VALUES (1, 'one')", database=fresh)
    app_user(mariadb_pair, fresh)
    pname = f"s{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", txn_drain_ms=500, max_hold_ms=5000)
    wait_state(d, pname, "running")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((1,),), 30, "initial copy")
    d.admin_ok("create-reverse", pair=pname)
    wait_reverse(d, pname, "collecting")
    return d, pname, fresh


def test_switchover_then_switchback_moves_the_client(switchable, mariadb_pair):
    d, pname, db = switchable
    b, dr = mariadb_pair
    c = app_conn(d, db)
    one(c, "INSERT INTO t VALUES (2, 'before')")
    r = d.admin_ok("switchover", pair=pname)
    assert r["active_side"] == "dr" and r["moved_clients"] >= 1 and r["pause_ms"] >= 0, r
    assert d.pair_status(pname)["active_side"] == "dr"
    assert q(b, "SELECT @@global.read_only")[0][0] == 1 and q(dr, "SELECT @@global.read_only")[0][0] == 0
    one(c, "INSERT INTO t VALUES (3, 'after')")                       # same connection, now on DR
    assert q(dr, "SELECT v FROM t WHERE id = 3", db) == (("after",),)
    wait_for(lambda: q(b, "SELECT v FROM t WHERE id = 3", db) == (("after",),), 30, "reverse applied")
    assert forward(d, pname)["state"] == "collecting" and reverse(d, pname)["state"] == "running"
    r = d.admin_ok("switchback", pair=pname)
    assert r["active_side"] == "business", r
    one(c, "INSERT INTO t VALUES (4, 'back')")
    assert q(b, "SELECT v FROM t WHERE id = 4", db) == (("back",),)
    wait_for(lambda: q(dr, "SELECT v FROM t WHERE id = 4", db) == (("back",),), 30, "forward applied")
    assert q(b, "SELECT @@global.read_only")[0][0] == 0 and q(dr, "SELECT @@global.read_only")[0][0] == 1
    c.close()
