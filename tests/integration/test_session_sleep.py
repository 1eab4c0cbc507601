"""Idle MariaDB sessions sleep: a plain session idle for idle_sleep_ms (250 ms) frees both of its bufferevents
and keeps only its sockets (proxy/mysql_relay.c, sleeping). What a user relies on is that nothing else
changes: the next query, a transaction, a switchover, a KILL and a server that closes the connection all behave
as for a session that never slept."""

from __future__ import annotations

import threading
import time

import pymysql
import pytest

from test_forward_mariadb import fresh  # noqa: F401 (fixture)
from helpers import app_conn, app_user, conn, one, q, wait_for, wait_reverse, wait_state


def session_of(d, pname, c):
    return next((s for s in d.admin_ok("clients", pair=pname)["clients"] if s["id"] == c.thread_id()), None)


def wait_asleep(d, pname, c):
    return wait_for(lambda: (session_of(d, pname, c) or {}).get("asleep"), 10, "the idle session asleep")


@pytest.fixture
def pair(daemon, mariadb_pair, fresh):  # noqa: F811
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))", database=fresh)
    app_user(mariadb_pair, fresh)
    pname = f"z{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", txn_drain_ms=500, max_hold_ms=5000)
    return d, pname, fresh


def test_idle_session_sleeps_and_wakes_with_its_state(pair):
    d, pname, db = pair
    c = app_conn(d, db)
    one(c, "SET @v = 42, SESSION sql_mode = 'ANSI_QUOTES'")
    for i in range(3):
        wait_asleep(d, pname, c)
        assert one(c, "SELECT @v, @@sql_mode, DATABASE()") == ((42, "ANSI_QUOTES", db),)
        rows = one(c, "SELECT seq, REPEAT('x', 100) FROM seq_1_to_3000")           # a reply of many reads
        assert len(rows) == 3000 and rows[-1][0] == 3000
        one(c, "INSERT INTO t VALUES (%s, 'woke')", (i,))
    assert one(c, "SELECT COUNT(*) FROM t") == ((3,),)
    c.close()


def test_idle_sleep_ms_0_never_sleeps(daemon, mariadb_pair, fresh):  # noqa: F811
    app_user(mariadb_pair, fresh)
    pname = f"n{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", idle_sleep_ms=0)
    c = app_conn(d, fresh)
    time.sleep(0.8)                                       # idle for more than the default 250 ms, on purpose
    assert session_of(d, pname, c)["asleep"] is False
    assert one(c, "SELECT 1") == ((1,),)


def test_session_inside_a_transaction_stays_awake_and_commits(pair, mariadb_pair):
    d, pname, db = pair
    c = app_conn(d, db)
    c.begin()
    one(c, "INSERT INTO t VALUES (10, 'in txn')")
    time.sleep(0.8)                                       # idle for more than idle_sleep_ms, on purpose
    assert session_of(d, pname, c)["asleep"] is False and session_of(d, pname, c)["in_transaction"]
    one(c, "INSERT INTO t VALUES (11, 'in txn')")
    c.commit()
    assert q(mariadb_pair.business, "SELECT id FROM t ORDER BY id", db) == ((10,), (11,))
    wait_asleep(d, pname, c)                              # once committed, it sleeps
    assert one(c, "SELECT COUNT(*) FROM t") == ((2,),)


def test_a_sleeping_session_waits_out_a_hold(pair):
    d, pname, db = pair
    c = app_conn(d, db)
    wait_asleep(d, pname, c)
    assert d.admin_ok("hold", pair=pname)["held"] is True
    done = {}

    def request():
        done["rows"] = one(c, "INSERT INTO t VALUES (30, 'after the hold')") is not None and one(c, "SELECT v FROM t")

    t = threading.Thread(target=request)
    t.start()
    wait_for(lambda: (session_of(d, pname, c) or {}).get("state") == "HELD", 10, "the woken session held")
    assert "rows" not in done
    assert d.admin_ok("release", pair=pname)["was_held"] is True
    t.join(10)
    assert done["rows"] == (("after the hold",),)


def test_kill_of_a_sleeping_session(pair):
    d, pname, db = pair
    victim, killer = app_conn(d, db), app_conn(d, db)
    wait_asleep(d, pname, victim)
    one(killer, f"KILL {victim.thread_id()}")
    wait_for(lambda: session_of(d, pname, victim) is None, 10, "the killed session gone")
    with pytest.raises(pymysql.err.OperationalError) as e:
        one(victim, "SELECT 1")
    assert e.value.args[0] in (1927, 2013, 2006), e.value.args
    assert one(killer, "SELECT 1") == ((1,),)


def test_server_closing_a_sleeping_session_closes_the_client(pair, mariadb_pair):
    d, pname, db = pair
    c = app_conn(d, db)
    s = wait_asleep(d, pname, c) and session_of(d, pname, c)
    admin = conn(mariadb_pair.business)
    one(admin, f"KILL {s['backend_thread']}")             # the server ends it, not a client through the proxy
    admin.close()
    wait_for(lambda: session_of(d, pname, c) is None, 10, "the session closed after its backend")
    with pytest.raises(pymysql.err.OperationalError) as e:
        one(c, "SELECT 1")
    assert e.value.args[0] in (1927, 2013, 2006), e.value.args
    c2 = app_conn(d, db)                                  # the proxy itself is fine
    assert one(c2, "SELECT 1") == ((1,),)


def test_switchover_moves_a_sleeping_session(pair, mariadb_pair):
    d, pname, db = pair
    b, dr = mariadb_pair
    wait_state(d, pname, "running")
    d.admin_ok("create-reverse", pair=pname)
    wait_reverse(d, pname, "collecting")
    c = app_conn(d, db)
    one(c, "SET @v = 'kept'")
    wait_asleep(d, pname, c)
    r = d.admin_ok("switchover", pair=pname)
    assert r["active_side"] == "dr" and r["moved_clients"] >= 1, r
    assert one(c, "SELECT @v") == (("kept",),)
    one(c, "INSERT INTO t VALUES (20, 'after switch')")   # same connection, now on DR
    assert q(dr, "SELECT v FROM t WHERE id = 20", db) == (("after switch",),)
    wait_asleep(d, pname, c)                              # and it sleeps again there
    r = d.admin_ok("switchback", pair=pname)
    assert r["active_side"] == "business", r
    one(c, "INSERT INTO t VALUES (21, 'back')")
    assert q(b, "SELECT v FROM t WHERE id = 21", db) == (("back",),)
