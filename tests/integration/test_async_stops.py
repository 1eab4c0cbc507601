"""Stopping a module never blocks the loop (issue 16): a `pause` whose writer waits on a DR row lock, and a
failover whose business DB is black-holed (its mariadbd SIGSTOPped: connections are accepted by the kernel but
nothing answers, so the forward collector sits in a binlog read), both leave every pair's clients, the admin
socket and status answering at once while the stop completes on its own."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import pytest

import sandbox
from conftest import pymysql_connect
from helpers import instance, locked, q, wait_for, wait_state
from test_forward_mariadb import fresh  # noqa: F401 (fixture)

FAST_S = 1.0     # what "answers at once" means here: a status or a SELECT 1 on a loop that is not blocked


class Background:
    """Runs fn() on a thread; .result / .error once .done()."""

    def __init__(self, fn):
        self.result = self.error = None
        self.started = time.monotonic()
        self.finished = None
        self._t = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._t.start()

    def _run(self, fn):
        try:
            self.result = fn()
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e
        self.finished = time.monotonic()

    def done(self) -> bool:
        return not self._t.is_alive()

    def join(self, timeout):
        self._t.join(timeout)
        assert not self._t.is_alive(), f"still running after {timeout}s"
        assert self.error is None, repr(self.error)
        return self.result


def sample_while(job, d, client, timeout=60.0):
    """While job runs, two samplers side by side: `status` over the admin socket, and SELECT 1 through
    `client`. Returns {"status": [(seconds, result)], "select": [(seconds, rows)]} of the requests begun
    while job ran."""
    out = {"status": [], "select": []}
    deadline = time.monotonic() + timeout

    def loop(key, fn):
        while not job.done() and time.monotonic() < deadline:
            t = time.monotonic()
            r = fn()
            out[key].append((time.monotonic() - t, r))
            time.sleep(0.05)

    threads = [threading.Thread(target=loop, args=("status", lambda: d.admin_ok("status", _timeout=60))),
               threading.Thread(target=loop, args=("select", lambda: _select1(client)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 60)
    assert all(r == ((1,),) for _, r in out["select"]), out["select"]
    return out


def _select1(c):
    with c.cursor() as cur:
        cur.execute("SELECT 1")
        return cur.fetchall()


def check_fast(what, samples, job, min_samples):
    """Every status and SELECT 1 begun while job ran answered within FAST_S, and there were at least
    min_samples of each (else the command ended too soon for the test to mean anything)."""
    took = (job.finished or time.monotonic()) - job.started
    worst = {k: max((s for s, _ in v), default=0.0) for k, v in samples.items()}
    print(f"{what} ({took:.2f}s): {len(samples['status'])} status, worst {worst['status'] * 1000:.0f} ms; "
          f"{len(samples['select'])} SELECT 1, worst {worst['select'] * 1000:.0f} ms")
    assert worst["status"] < FAST_S and worst["select"] < FAST_S, worst
    for k, v in samples.items():
        assert len(v) >= min_samples, f"{what}: only {len(v)} {k} sample(s) while it ran ({took:.2f}s)"


@pytest.mark.tsan
def test_pause_waiting_on_a_locked_writer_leaves_the_loop_serving(daemon, mariadb_pair, fresh):  # noqa: F811
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)", database=fresh)
    b.sql("INSERT INTO t VALUES (1, 0), (2, 0)", database=fresh)
    pname = f"a{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*")
    wait_state(d, pname, "running")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((2,),), 30, "initial copy")
    client = pymysql_connect(d.host, d.port, database=fresh)
    try:
        with locked(dr, fresh, "SELECT * FROM t WHERE id = 1 FOR UPDATE"):
            b.sql("UPDATE t SET v = 1 WHERE id = 1", database=fresh)
            wait_for(lambda: q(dr, "SELECT COUNT(*) FROM information_schema.INNODB_TRX "
                                   "WHERE trx_state = 'LOCK WAIT'")[0][0] > 0, 30, "the writer waits on the lock")
            job = Background(lambda: d.admin("pause", instance=f"{pname}/forward", _timeout=120))
            samples = sample_while(job, d, client, timeout=60)
            check_fast("pause of a writer waiting on a lock", samples, job, min_samples=3)
            seen = {instance_of(st, pname)["state"] for _, st in samples["status"]}
            assert "stopping" in seen and seen <= {"running", "stopping", "paused"}, seen
        r = job.join(60)
        assert r["ok"] is True and r["result"]["state"] == "paused", r
        st = instance(d, pname)
        assert st["state"] == "paused" and st["write"]["state"] == "paused", st
        assert st["collection"]["state"] == "paused", st
        b.sql("UPDATE t SET v = 2 WHERE id = 2", database=fresh)
        d.admin_ok("start", instance=f"{pname}/forward")
        wait_state(d, pname, "running")
        wait_for(lambda: q(dr, "SELECT id, v FROM t ORDER BY id", fresh) == ((1, 1), (2, 2)), 30,
                 "rows applied after start")
    finally:
        client.close()


def instance_of(status, pname):
    pair = next(p for p in status["pairs"] if p["name"] == pname)
    return next(i for i in pair["instances"] if i["direction"] == "forward")


@pytest.fixture
def third_server():
    """A server of this test's own, in front of which a second pair keeps serving clients."""
    with sandbox.servers(1, first_index=2) as (s,):
        yield s


@contextlib.contextmanager
def stopped(server):
    """The server's mariadbd SIGSTOPped while the block runs (SIGCONT however it ends): connections reach
    the kernel's backlog, nothing answers."""
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


@pytest.mark.tsan
def test_failover_against_a_stopped_business_leaves_the_loop_serving(daemon, mariadb_pair, fresh,  # noqa: F811
                                                                     third_server):
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)", database=fresh)
    b.sql("INSERT INTO t VALUES (1, 0)", database=fresh)
    pname = f"f{fresh}"
    other = f"o{fresh}"
    # the second pair synchronizes nothing and never fences: it only proxies to a server of its own
    extra = (f"[pair {other}]\nengine = mariadb\nlisten = 127.0.0.1:0\n"
             f"business = {third_server.host}:{third_server.port}\ndr = {dr.host}:{dr.port}\n"
             f"admin_user = {third_server.admin_user}\nadmin_password = {third_server.admin_password}\n"
             f"fence_passive = off\n")
    d = daemon(pair=pname, objects=f"{fresh}.*", extra_ini=extra)
    wait_state(d, pname, "running")
    b.sql("INSERT INTO t VALUES (2, 0)", database=fresh)
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((2,),), 30, "applied")
    client = pymysql_connect(d.host, d.listen_port(other))
    try:
        with stopped(b):
            # the collector is reading the binlog when the server stops answering
            job = Background(lambda: d.admin("failover", pair=pname, _timeout=120))
            samples = sample_while(job, d, client, timeout=90)
            r = job.join(60)
            check_fast("failover against a stopped business", samples, job, min_samples=2)
            assert r["ok"] is True and r["result"]["active_side"] == "dr", r
            st = instance(d, pname)
            assert st["state"] == "paused" and st["collection"]["state"] == "paused", st
            assert d.pair_status(pname)["active_side"] == "dr"
    finally:
        client.close()
        d.stop()
        b.sql("SET GLOBAL read_only = OFF")   # the fence keeper fenced it once it was back
    assert q(dr, "SELECT COUNT(*) FROM t", fresh) == ((2,),)
