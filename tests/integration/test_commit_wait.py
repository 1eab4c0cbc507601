"""commit_wait (zero-RPO mode, issue 14): the proxy holds each commit's OK until the forward collector has the
GTID fsync'd in its spool (collected) or DR has applied it (applied), bounded by commit_wait_timeout_ms with
a fallback (degrade | error). Against the two real sandbox servers."""

from __future__ import annotations

import threading
import time

import pymysql
import pytest

from test_forward_mariadb import fresh  # noqa: F401 (fixture)
from test_metrics import free_port, scrape
from helpers import app_conn, app_user, forward, one, q, wait_for, wait_reverse, wait_state


def _cw(d, pname):
    return d.pair_status(pname)["commit_wait"]


def _setup(daemon, mariadb_pair, db, reverse=False, **keys):
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))", database=db)
    b.sql("INSERT INTO t VALUES (1, 'one')", database=db)
    app_user(mariadb_pair, db)
    pname = f"c{db}"
    d = daemon(pair=pname, objects=f"{db}.*", **keys)
    wait_state(d, pname, "running")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", db) == ((1,),), 30, "initial copy")
    if reverse:
        d.admin_ok("create-reverse", pair=pname)
        wait_reverse(d, pname, "collecting")
    return d, pname


def _timed(c, sql, args=None):
    t0 = time.monotonic()
    one(c, sql, args)
    return time.monotonic() - t0


def test_config_refuses_commit_wait_it_cannot_keep(daemon):
    d = daemon(business="127.0.0.1:1", dr="127.0.0.1:2", commit_wait="sometimes", wait=False)
    assert d.wait(30) != 0
    assert 'commit_wait: "sometimes" is not one of off, collected, applied' in d.log(), d.log()[-2000:]
    d = daemon(business="127.0.0.1:1", dr="127.0.0.1:2", commit_wait="collected", wait=False)
    assert d.wait(30) != 0
    assert "commit_wait: needs objects" in d.log(), d.log()[-2000:]
    d = daemon(business="127.0.0.1:1", dr="127.0.0.1:2", commit_wait="collected", objects="x.*",
               commit_wait_timeout_ms=0, wait=False)
    assert d.wait(30) != 0
    assert "commit_wait_timeout_ms" in d.log(), d.log()[-2000:]


@pytest.mark.tsan
def test_collected_failover_under_load_leaves_no_acknowledged_transaction_in_the_tail(daemon, mariadb_pair,
                                                                                    fresh):  # noqa: F811
    """Acknowledged inserts through the proxy from 4 clients; kill -9 of business's mariadbd; failover. Every
    insert a client saw acknowledged is on DR, and the tail found when business is back holds no acknowledged
    transaction. fallback = error, so no OK can ever pass unconfirmed (a degrade would let one through)."""
    b, dr = mariadb_pair
    d, pname = _setup(daemon, mariadb_pair, fresh, reverse=True, commit_wait="collected",
                      commit_wait_fallback="error", commit_wait_timeout_ms=10000, txn_drain_ms=500)
    stop, acked, errors, lock = threading.Event(), [], [], threading.Lock()

    def loader(k):
        c, i = None, 1000 + k * 100000
        while not stop.is_set():
            try:
                c = c or app_conn(d, fresh, connect_timeout=2, read_timeout=15)
                one(c, "INSERT INTO t VALUES (%s, 'load')", (i,))
                with lock:
                    acked.append(i)
            except pymysql.err.MySQLError as e:
                errors.append((e.args[0], str(e.args[1:])))
                c = None
                time.sleep(0.05)
            i += 1
    threads = [threading.Thread(target=loader, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    try:
        wait_for(lambda: len(acked) > 300, 30, "acknowledged inserts")
        b.kill9()
        n_at_kill = len(acked)
        r = d.admin_ok("failover", pair=pname)
        assert r["active_side"] == "dr"
        wait_for(lambda: len(acked) > n_at_kill + 20, 30, "clients continue on DR")
    finally:
        stop.set()
        for th in threads:
            th.join(30)
        b.start()
    assert not [e for e in errors if e[0] == 1180], errors          # the collector kept up: no timeout
    on_dr = {r[0] for r in q(dr, "SELECT id FROM t WHERE id >= 1000", fresh)}
    missing = set(acked) - on_dr
    assert not missing, f"acknowledged but not on DR after the failover: {sorted(missing)[:10]}"
    cw = _cw(d, pname)
    assert cw["mode"] == "collected" and cw["waits"] >= n_at_kill and cw["timeouts"] == 0, cw
    tail = wait_for(lambda: (d.pair_status(pname).get("tail") or {"state": "closed"})["state"] in ("open", "closed")
                    and (d.pair_status(pname).get("tail") or {"state": "closed"}), 30, "tail known")
    assert tail.get("acknowledged", 0) == 0, tail
    print(f"acked {len(acked)} ({n_at_kill} before the kill), tail {tail.get('transactions', 0)} txn(s), "
          f"waits {cw['waits']}, errors {errors[:5]}")
    if tail["state"] == "open":
        d.admin_ok("resolve-tail", pair=pname, discard=True)


@pytest.mark.tsan
def test_degrade_releases_after_the_timeout_and_recovers_when_the_collector_catches_up(daemon, mariadb_pair,
                                                                                      fresh):  # noqa: F811
    port = free_port()
    d, pname = _setup(daemon, mariadb_pair, fresh, commit_wait="collected", commit_wait_timeout_ms=400,
                      commit_wait_fallback="degrade", global_opts={"metrics": f"127.0.0.1:{port}"})
    c = app_conn(d, fresh)
    _timed(c, "INSERT INTO t VALUES (2, 'waits')")
    assert _cw(d, pname)["waits"] >= 1 and not _cw(d, pname)["degraded"]
    d.admin_ok("pause", instance=f"{pname}/forward")
    wait_state(d, pname, "paused")
    took = _timed(c, "INSERT INTO t VALUES (3, 'held, then released')")   # OK, after the timeout
    assert took >= 0.35, took
    cw = _cw(d, pname)
    assert cw["degraded"] and cw["timeouts"] == 1 and cw["degraded_count"] == 1, cw
    m = scrape(port)
    assert m[f'switchyard_commit_wait_degraded{{pair="{pname}"}}'] == 1
    assert m[f'switchyard_commit_wait_degraded_total{{pair="{pname}"}}'] == 1
    assert m[f'switchyard_commit_wait_timeouts_total{{pair="{pname}"}}'] == 1
    assert m[f'switchyard_commit_wait_wait_seconds_count{{pair="{pname}"}}'] >= 2
    assert "commit_wait degraded to off" in d.log()
    text = d.ctl("status", pname).stdout
    assert f"{pname} commit_wait: collected DEGRADED (commits not held), fallback degrade after 400 ms" in text, text
    took = _timed(c, "INSERT INTO t VALUES (4, 'degraded: not held')")
    assert took < 0.3, took
    assert _cw(d, pname)["timeouts"] == 1
    d.admin_ok("start", instance=f"{pname}/forward")
    wait_for(lambda: not _cw(d, pname)["degraded"], 30, "commit_wait recovered")
    assert "commit_wait = collected again" in d.log()
    waits = _cw(d, pname)["waits"]
    one(c, "INSERT INTO t VALUES (5, 'waits again')")
    cw = _cw(d, pname)
    assert cw["waits"] == waits + 1 and cw["recovered_count"] == 1 and not cw["degraded"], cw
    assert scrape(port)[f'switchyard_commit_wait_degraded{{pair="{pname}"}}'] == 0
    wait_for(lambda: q(mariadb_pair.dr, "SELECT COUNT(*) FROM t", fresh) == ((5,),), 30, "all on DR")


def test_error_fallback_gives_the_client_1180_and_other_sessions_go_on(daemon, mariadb_pair, fresh):  # noqa: F811
    d, pname = _setup(daemon, mariadb_pair, fresh, commit_wait="collected", commit_wait_timeout_ms=1500,
                      commit_wait_fallback="error")
    c, other = app_conn(d, fresh), app_conn(d, fresh)
    d.admin_ok("pause", instance=f"{pname}/forward")
    wait_state(d, pname, "paused")
    got, done = {}, threading.Event()

    def held():
        t0 = time.monotonic()
        try:
            one(c, "INSERT INTO t VALUES (7, 'committed on business only')")
            got["ok"] = True
        except pymysql.err.OperationalError as e:
            got["err"] = e.args
        got["took"] = time.monotonic() - t0
        done.set()
    th = threading.Thread(target=held)
    th.start()
    wait_for(lambda: _cw(d, pname)["waiting"] == 1, 5, "the OK held")
    t0 = time.monotonic()
    assert one(other, "SELECT COUNT(*) FROM t") == ((2,),)       # another session, not held; sees the commit
    one(other, "DO 1")
    assert time.monotonic() - t0 < 0.5 and not done.is_set()
    th.join(10)
    assert "err" in got and got["took"] >= 1.4, got
    code, msg = got["err"]
    assert code == 1180, got
    assert "committed and durable on business but was not confirmed collected for DR" in msg, msg
    assert "commit_wait_timeout_ms=1500" in msg, msg
    cw = _cw(d, pname)
    assert cw["errors"] == 1 and cw["timeouts"] == 1 and not cw["degraded"], cw
    assert q(mariadb_pair.business, "SELECT v FROM t WHERE id = 7", fresh) == (("committed on business only",),)
    assert one(c, "SELECT 1") == ((1,),)                          # the session goes on
    d.admin_ok("start", instance=f"{pname}/forward")
    wait_state(d, pname, "running")
    one(c, "INSERT INTO t VALUES (8, 'confirmed')")
    wait_for(lambda: q(mariadb_pair.dr, "SELECT COUNT(*) FROM t", fresh) == ((3,),), 30, "all on DR")


def test_applied_waits_until_dr_has_the_row(daemon, mariadb_pair, fresh):  # noqa: F811
    b, dr = mariadb_pair
    d, pname = _setup(daemon, mariadb_pair, fresh, commit_wait="applied", commit_wait_timeout_ms=1500,
                      commit_wait_fallback="error")
    c = app_conn(d, fresh)
    for i in range(10, 40):                       # visible on DR the moment the client has its OK
        one(c, "INSERT INTO t VALUES (%s, 'applied')", (i,))
        assert q(dr, "SELECT COUNT(*) FROM t WHERE id = %s", fresh, (i,)) == ((1,),), i
    one(c, "BEGIN")
    one(c, "UPDATE t SET v = 'txn' WHERE id = 10")
    one(c, "UPDATE t SET v = 'txn' WHERE id = 11")
    one(c, "COMMIT")
    assert q(dr, "SELECT COUNT(*) FROM t WHERE v = 'txn'", fresh) == ((2,),)
    one(c, "CREATE TABLE t2 (id INT PRIMARY KEY)")                 # DDL moves last_gtid too
    assert q(dr, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s AND "
                 "TABLE_NAME = 't2'", None, (fresh,)) == ((1,),)
    # the writer stuck on a DR row lock: collected, not applied -> the OK waits, then 1180 says "applied"
    conn = __import__("helpers").conn(dr, fresh)
    conn.begin()
    with conn.cursor() as cur:
        cur.execute("SELECT * FROM t WHERE id = 12 FOR UPDATE")
    try:
        with pytest.raises(pymysql.err.OperationalError) as ei:
            one(c, "UPDATE t SET v = 'locked on DR' WHERE id = 12")
        assert ei.value.args[0] == 1180 and "not confirmed applied on DR" in ei.value.args[1]
    finally:
        conn.rollback()
        conn.close()
    wait_for(lambda: q(dr, "SELECT v FROM t WHERE id = 12", fresh) == (("locked on DR",),), 30, "applied later")
    assert _cw(d, pname)["mode"] == "applied" and _cw(d, pname)["errors"] == 1
    assert forward(d, pname)["state"] == "running"


def test_after_a_switchover_commits_wait_for_the_reverse_collector(daemon, mariadb_pair, fresh):  # noqa: F811
    """DR active: a commit's OK waits for the reverse instance's spool; with the reverse instance paused it
    times out (fallback error), which proves the wait is against the collector of the active side."""
    b, dr = mariadb_pair
    d, pname = _setup(daemon, mariadb_pair, fresh, reverse=True, commit_wait="collected",
                      commit_wait_fallback="error", commit_wait_timeout_ms=800, txn_drain_ms=500)
    c = app_conn(d, fresh)
    one(c, "INSERT INTO t VALUES (2, 'on business')")
    assert d.admin_ok("switchover", pair=pname)["active_side"] == "dr"
    waits = _cw(d, pname)["waits"]
    one(c, "INSERT INTO t VALUES (3, 'on DR, collected by the reverse instance')")
    cw = _cw(d, pname)
    assert cw["waits"] == waits + 1 and cw["timeouts"] == 0, cw
    wait_for(lambda: q(b, "SELECT COUNT(*) FROM t WHERE id = 3", fresh) == ((1,),), 30, "reverse write")
    d.admin_ok("pause", instance=f"{pname}/reverse")
    wait_reverse(d, pname, "paused")
    with pytest.raises(pymysql.err.OperationalError) as ei:
        one(c, "INSERT INTO t VALUES (4, 'not collected')")
    assert ei.value.args[0] == 1180 and "durable on dr but was not confirmed collected for business" in \
        ei.value.args[1], ei.value.args
    assert q(dr, "SELECT COUNT(*) FROM t WHERE id = 4", fresh) == ((1,),)
