"""proxy_threads = N (issue 14 §3): the MariaDB proxy's sessions spread over N worker event loops. What spans
sessions must still see all of them: `clients`, KILL of another worker's session, hold/release, the switch
steps and the ack ledger, commit_wait, metrics and shutdown. Against the two real sandbox servers."""

from __future__ import annotations

import subprocess
import threading
import time

import pymysql
import pytest

from test_forward_mariadb import fresh  # noqa: F401 (fixture)
from test_metrics import free_port, scrape
from helpers import (APP_PASSWORD, APP_USER, app_conn, app_user, assert_equal_eventually, one, q, wait_for,
                     wait_reverse, wait_state)

FIRST_ID = 1000000000


def _clients(d, pname):
    return d.admin_ok("clients", pair=pname)["clients"]


def _setup(daemon, mariadb_pair, db, threads, reverse=False, **keys):
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))", database=db)
    b.sql("INSERT INTO t VALUES (1, 'one')", database=db)
    app_user(mariadb_pair, db)
    pname = f"w{db}"
    keys.setdefault("txn_drain_ms", 500)
    keys.setdefault("max_hold_ms", 5000)
    d = daemon(pair=pname, objects=f"{db}.*", global_opts={"proxy_threads": threads}, **keys)
    wait_state(d, pname, "running")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", db) == ((1,),), 30, "initial copy")
    if reverse:
        d.admin_ok("create-reverse", pair=pname)
        wait_reverse(d, pname, "collecting")
    return d, pname


def _my_id(d, pname, c):
    """The proxy connection id of PyMySQL connection c (its local port in `clients`)."""
    port = c._sock.getsockname()[1]
    ids = [s["id"] for s in _clients(d, pname) if s["peer"].endswith(f":{port}")]
    assert len(ids) == 1, (port, _clients(d, pname))
    return ids[0]


def _sysbench(d, db, test, threads, seconds, *extra):
    sb = ["--db-driver=mysql", "--mysql-host=127.0.0.1", f"--mysql-port={d.port}", f"--mysql-user={APP_USER}",
          f"--mysql-password={APP_PASSWORD}", f"--mysql-db={db}", "--tables=2", "--table-size=500", *extra]
    if test == "prepare":
        r = subprocess.run(["sysbench", "oltp_read_write", *sb, "prepare"], capture_output=True, text=True,
                           timeout=180)
    else:
        r = subprocess.run(["sysbench", test, *sb, f"--threads={threads}", f"--time={seconds}",
                            "--report-interval=0", "run"], capture_output=True, text=True, timeout=seconds + 120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


@pytest.mark.parametrize("threads", [pytest.param(2, marks=pytest.mark.tsan), 4])
def test_sysbench_and_pymysql_through_worker_loops(daemon, mariadb_pair, fresh, threads):  # noqa: F811
    """sysbench oltp_read_write and point selects with 8 client threads spread over the workers: no error,
    the rows reach DR, and every worker served sessions."""
    d, pname = _setup(daemon, mariadb_pair, fresh, threads)
    _sysbench(d, fresh, "prepare", 0, 0)
    # sysbench stops at the first error it does not ignore (it ignores deadlocks, 1213, which 8 threads on
    # small tables get as directly); a proxy error or a lost connection fails the run
    out = _sysbench(d, fresh, "oltp_read_write", 8, 5)
    assert "reconnects: 0 " in " ".join(out.split()), out
    out = _sysbench(d, fresh, "oltp_point_select", 8, 3)
    assert "ignored errors: 0 " in " ".join(out.split()) and "reconnects: 0 " in " ".join(out.split()), out
    # PyMySQL sessions land on every worker (round robin), each sees its own state
    conns = [app_conn(d, fresh) for _ in range(threads * 2)]
    for i, c in enumerate(conns):
        one(c, "SET @mine = %s", (i,))
    for i, c in enumerate(conns):
        assert one(c, "SELECT @mine") == ((i,),)
    ids = [_my_id(d, pname, c) for c in conns]
    assert {(i - FIRST_ID) % threads for i in ids} == set(range(threads)), ids
    for c in conns:
        c.close()
    assert_equal_eventually(mariadb_pair, fresh)


@pytest.mark.tsan
def test_clients_lists_the_sessions_of_every_worker(daemon, mariadb_pair, fresh):  # noqa: F811
    d, pname = _setup(daemon, mariadb_pair, fresh, 4)
    conns = [app_conn(d, fresh) for _ in range(9)]
    one(conns[5], "BEGIN")
    one(conns[5], "INSERT INTO t VALUES (2, 'open')")
    listing = _clients(d, pname)
    mine = [s for s in listing if s["user"] == APP_USER]
    assert len(mine) == 9, listing
    ids = [s["id"] for s in mine]
    assert ids == sorted(ids) and len(set(ids)) == 9                  # accept order, distinct across workers
    assert {(i - FIRST_ID) % 4 for i in ids} == {0, 1, 2, 3}
    assert [s["in_transaction"] for s in mine].count(True) == 1
    assert d.pair_status(pname)["clients"] == len(listing)
    one(conns[5], "ROLLBACK")
    for c in conns:
        c.close()
    wait_for(lambda: not [s for s in _clients(d, pname) if s["user"] == APP_USER], 10, "sessions gone")


@pytest.mark.tsan
def test_kill_reaches_a_session_on_another_worker(daemon, mariadb_pair, fresh):  # noqa: F811
    d, pname = _setup(daemon, mariadb_pair, fresh, 2)
    a, b, same = app_conn(d, fresh), app_conn(d, fresh), app_conn(d, fresh)   # round robin: a, same on worker 0
    ia, ib, isame = _my_id(d, pname, a), _my_id(d, pname, b), _my_id(d, pname, same)
    assert (ia - FIRST_ID) % 2 != (ib - FIRST_ID) % 2 and (ia - FIRST_ID) % 2 == (isame - FIRST_ID) % 2
    # KILL QUERY across workers: b's sleep ends at once, b stays usable
    res = {}

    def sleeper():
        t0 = time.monotonic()
        try:
            res["rows"] = one(b, "SELECT SLEEP(30)")
        except pymysql.err.OperationalError as e:
            res["rows"] = e.args[0]
        res["s"] = time.monotonic() - t0
    th = threading.Thread(target=sleeper)
    th.start()
    wait_for(lambda: any(s["id"] == ib and s["state"] == "BUSY" for s in _clients(d, pname)), 10, "b busy")
    time.sleep(0.3)
    one(a, f"KILL QUERY {ib}")
    th.join(15)
    assert res["s"] < 10 and res["rows"] in (((1,),), 1317), res      # interrupted: 1 or 1317 (the server's)
    assert one(b, "SELECT 7") == ((7,),)
    # COM_PROCESS_KILL-style KILL <id> across workers closes b's connection
    one(a, f"KILL {ib}")
    with pytest.raises(pymysql.err.OperationalError):
        one(b, "SELECT 1")
    wait_for(lambda: ib not in [s["id"] for s in _clients(d, pname)], 10, "b gone")
    # unknown ids: on the other worker and on this one
    for bad in (ib, ib + 200):
        with pytest.raises(pymysql.err.OperationalError) as e:
            one(a, f"KILL {bad}")
        assert e.value.args[0] == 1094 and f"Unknown thread id: {bad}" in e.value.args[1]
    assert one(a, "SELECT 1") == ((1,),)
    # the same worker still works
    one(a, f"KILL {isame}")
    with pytest.raises(pymysql.err.OperationalError):
        one(same, "SELECT 1")
    # two sessions on different workers killing each other's queries at once: nobody waits on anybody
    # (a KILL QUERY may interrupt the other's KILL statement itself: 1317, as directly)
    c1, c2 = app_conn(d, fresh), app_conn(d, fresh)
    i1, i2 = _my_id(d, pname, c1), _my_id(d, pname, c2)
    codes = []

    def kill_query(c, target):
        try:
            one(c, f"KILL QUERY {target}")
            codes.append(0)
        except pymysql.err.OperationalError as e:
            codes.append(e.args[0])
    for _ in range(50):
        t = threading.Thread(target=kill_query, args=(c1, i2))
        t.start()
        kill_query(c2, i1)
        t.join(10)
        assert not t.is_alive()
    assert set(codes) <= {0, 1317} and len(codes) == 100, codes
    assert one(c1, "SELECT 1") == ((1,),) and one(c2, "SELECT 2") == ((2,),)
    a.close()


@pytest.mark.tsan
def test_switchover_under_load_with_workers_loses_nothing(daemon, mariadb_pair, fresh):  # noqa: F811
    """8 inserting clients over 4 workers through a switchover and a switchback: no client error, and every
    acknowledged insert is on DR after the switchover and on both sides at the end."""
    b, dr = mariadb_pair
    d, pname = _setup(daemon, mariadb_pair, fresh, 4, reverse=True)
    stop, acked, errors, lock = threading.Event(), [], [], threading.Lock()

    def loader(k):
        c, i = app_conn(d, fresh, read_timeout=30), 1000 + k * 100000
        while not stop.is_set():
            try:
                one(c, "INSERT INTO t VALUES (%s, 'load')", (i,))
                with lock:
                    acked.append(i)
            except pymysql.err.MySQLError as e:
                errors.append((e.args[0], str(e.args[1:])))
                return
            i += 1
            stop.wait(0.005)  # paced: unpaced, an ASan build's apply fell 24k transactions behind (lag_too_high)
        c.close()
    threads = [threading.Thread(target=loader, args=(k,)) for k in range(8)]
    for th in threads:
        th.start()
    try:
        wait_for(lambda: len(acked) > 200, 30, "load")
        r = d.admin_ok("switchover", pair=pname)
        assert r["active_side"] == "dr" and r["moved_clients"] >= 8, r
        n = len(acked)
        with lock:
            before = set(acked)
        on_dr = {x[0] for x in q(dr, "SELECT id FROM t WHERE id >= 1000", fresh)}
        assert not before - on_dr, sorted(before - on_dr)[:10]
        wait_for(lambda: len(acked) > n + 200, 30, "load on DR")
        r = d.admin_ok("switchback", pair=pname)
        assert r["active_side"] == "business", r
        n = len(acked)
        wait_for(lambda: len(acked) > n + 200, 30, "load on business again")
    finally:
        stop.set()
        for th in threads:
            th.join(30)
    assert not errors, errors[:10]
    on_b = {x[0] for x in q(b, "SELECT id FROM t WHERE id >= 1000", fresh)}
    assert not set(acked) - on_b
    assert_equal_eventually(mariadb_pair, fresh)


@pytest.mark.tsan
def test_hold_release_resumes_sessions_on_every_worker(daemon, mariadb_pair, fresh):  # noqa: F811
    d, pname = _setup(daemon, mariadb_pair, fresh, 3)
    conns = [app_conn(d, fresh, read_timeout=20) for _ in range(6)]
    d.admin_ok("hold", pair=pname)
    done = []

    def ask(k):
        done.append(one(conns[k], "SELECT %s", (k,))[0][0])
    threads = [threading.Thread(target=ask, args=(k,)) for k in range(6)]
    for th in threads:
        th.start()
    time.sleep(0.5)
    assert not done                                                    # all held, on every worker
    held = [s for s in _clients(d, pname) if s["user"] == APP_USER and s["state"] == "HELD"]
    assert len(held) == 6, _clients(d, pname)
    d.admin_ok("release", pair=pname)
    for th in threads:
        th.join(10)
    assert sorted(done) == list(range(6))
    for c in conns:
        c.close()


@pytest.mark.tsan
def test_commit_wait_with_workers_failover_keeps_every_acknowledged_insert(daemon, mariadb_pair,
                                                                           fresh):  # noqa: F811
    """commit_wait = collected with 4 workers: inserts from 6 clients, kill -9 of business, failover: every
    acknowledged insert is on DR; the counters add up over the workers."""
    b, dr = mariadb_pair
    d, pname = _setup(daemon, mariadb_pair, fresh, 4, reverse=True, commit_wait="collected",
                      commit_wait_fallback="error", commit_wait_timeout_ms=10000)
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
    threads = [threading.Thread(target=loader, args=(k,)) for k in range(6)]
    for th in threads:
        th.start()
    try:
        wait_for(lambda: len(acked) > 300, 60, "acknowledged inserts")
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
    assert not [e for e in errors if e[0] == 1180], errors
    on_dr = {r[0] for r in q(dr, "SELECT id FROM t WHERE id >= 1000", fresh)}
    missing = set(acked) - on_dr
    assert not missing, f"acknowledged but not on DR after the failover: {sorted(missing)[:10]}"
    cw = d.pair_status(pname)["commit_wait"]
    assert cw["waits"] >= n_at_kill and cw["timeouts"] == 0 and cw["waiting"] == 0, cw
    tail = wait_for(lambda: (d.pair_status(pname).get("tail") or {"state": "closed"})["state"] in ("open", "closed")
                    and (d.pair_status(pname).get("tail") or {"state": "closed"}), 30, "tail known")
    assert tail.get("acknowledged", 0) == 0, tail
    if tail["state"] == "open":
        d.admin_ok("resolve-tail", pair=pname, discard=True)


def test_metrics_count_the_sessions_of_every_worker(daemon, mariadb_pair, fresh):  # noqa: F811
    port = free_port()
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY)", database=fresh)
    app_user(mariadb_pair, fresh)
    d = daemon(pair="m", global_opts={"proxy_threads": 3, "metrics": f"127.0.0.1:{port}"})
    conns = [app_conn(d, fresh) for _ in range(7)]
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host="127.0.0.1", port=d.port, user=APP_USER, password="wrong")
    m = scrape(port)
    assert m['switchyard_client_connections{pair="m",side="business"}'] == 7, m
    assert m['switchyard_client_errors_total{pair="m",reason="auth"}'] == 1, m
    for c in conns:
        c.close()


@pytest.mark.tsan
def test_shutdown_with_sessions_on_every_worker(daemon, mariadb_pair, fresh):  # noqa: F811
    d, pname = _setup(daemon, mariadb_pair, fresh, 4)
    conns = [app_conn(d, fresh, read_timeout=20) for _ in range(8)]
    one(conns[1], "BEGIN")
    one(conns[1], "INSERT INTO t VALUES (2, 'open')")
    d.admin_ok("hold", pair=pname)
    outcome = []

    def held_query():
        try:
            outcome.append(one(conns[2], "SELECT 1"))
        except pymysql.err.MySQLError as e:
            outcome.append(e)
    th = threading.Thread(target=held_query)
    th.start()
    wait_for(lambda: any(s["state"] == "HELD" for s in _clients(d, pname)), 10, "a held session")
    assert d.stop() == 0
    th.join(10)
    assert not th.is_alive() and isinstance(outcome[0], pymysql.err.MySQLError), outcome
    for c in conns:
        with pytest.raises(pymysql.err.MySQLError):
            one(c, "SELECT 1")
    assert q(mariadb_pair.business, "SELECT COUNT(*) FROM t WHERE id = 2", fresh) == ((0,),)


def test_config_refuses_proxy_threads_out_of_range(daemon):
    d = daemon(business="127.0.0.1:1", dr="127.0.0.1:2", global_opts={"proxy_threads": 65}, wait=False)
    assert d.wait() != 0
    assert "[switchyard] proxy_threads: must be between 1 and 64" in d.log(), d.log()[-2000:]
