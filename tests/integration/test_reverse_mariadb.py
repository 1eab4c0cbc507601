"""The reverse instance (DR -> business, incremental only): ARCHITECTURE.md's reverse-instance rules, each
as its own test, against two real MariaDB servers."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from test_forward_mariadb import fresh  # noqa: F401 (fixture)
from helpers import instance, locked, q, reverse, wait_for, wait_reverse, wait_state


@pytest.fixture
def synced(daemon, mariadb_pair, fresh):  # noqa: F811
    """A pair whose forward instance runs on a table of this test's own database."""
    mariadb_pair.business.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))", database=fresh)
    mariadb_pair.business.sql("INSERT INTO t VALUES (1, 'from business')", database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*")
    wait_state(d, pname, "running")
    wait_for(lambda: q(mariadb_pair.dr, "SELECT COUNT(*) FROM t", fresh) == ((1,),), 30, "initial copy")
    return d, pname, fresh


def test_rule1_reverse_needs_a_forward_instance(daemon, mariadb_pair):
    d = daemon(pair="noobjects", objects=None)
    r = d.admin("create-reverse", pair="noobjects")
    assert r["ok"] is False and r["error"]["code"] == "unknown_instance"
    assert "no forward instance" in r["error"]["message"]


@pytest.mark.tsan
def test_rule2_and_3_collects_from_creation_writes_after_start(synced, mariadb_pair):
    d, pname, db = synced
    b, dr = mariadb_pair
    dr.sql("INSERT INTO t VALUES (100, 'dr before')", database=db)      # before creation: never synchronized
    seq_of = lambda pos: max(int(g.split("-")[2]) for g in pos.split(",") if g.startswith("2-"))  # domain 2
    inserted = seq_of(q(dr, "SELECT @@gtid_binlog_pos")[0][0])
    r = d.admin_ok("create-reverse", pair=pname)
    assert r["instance"] == f"{pname}/reverse" and r["state"] == "collecting"
    # DR's position at creation: at or past that insert (the forward writer's checkpoint commits on DR, with
    # its own server id, may come after it)
    assert seq_of(r["start_position"]) >= inserted, (r["start_position"], inserted)
    st = reverse(d, pname)
    assert st["state"] == "collecting" and st["write"]["state"] == "stopped"
    assert "initial_sync" not in st                                      # incremental only
    dr.sql("INSERT INTO t VALUES (101, 'dr after')", database=db)       # after creation: collected ...
    wait_for(lambda: reverse(d, pname)["collection"]["spool_seq"] > 0, 30, "collected")
    time.sleep(0.5)
    assert q(b, "SELECT COUNT(*) FROM t WHERE id = 101", db) == ((0,),)  # ... but not written yet
    ctl = d.ctl("start", f"{pname}/reverse")
    assert ctl.returncode == 0, ctl.stderr
    wait_reverse(d, pname, "running")
    wait_for(lambda: q(b, "SELECT v FROM t WHERE id = 101", db) == (("dr after",),), 30, "written after start")
    assert q(b, "SELECT COUNT(*) FROM t WHERE id = 100", db) == ((0,),)


def test_rule4_one_reverse_and_forward_refused_while_reverse_writes(synced):
    d, pname, _ = synced
    d.admin_ok("create-reverse", pair=pname)
    r = d.admin("create-reverse", pair=pname)
    assert r["ok"] is False and r["error"]["code"] == "reverse_exists"
    assert d.ctl("start", f"{pname}/reverse").returncode == 0
    wait_reverse(d, pname, "running")
    assert d.ctl("pause", f"{pname}/forward").returncode == 0
    r = d.admin("start", instance=f"{pname}/forward")
    assert r["ok"] is False and r["error"]["code"] == "reverse_running"
    assert f"{pname}/reverse" in r["error"]["message"]
    assert d.ctl("pause", f"{pname}/reverse").returncode == 0
    assert d.ctl("start", f"{pname}/forward").returncode == 0


def test_rule9_echo_suppression_both_directions(synced, mariadb_pair):
    d, pname, db = synced
    b, dr = mariadb_pair
    d.admin_ok("create-reverse", pair=pname)
    assert d.ctl("start", f"{pname}/reverse").returncode == 0
    wait_reverse(d, pname, "running")
    for i in range(2, 30):
        b.sql(f"INSERT INTO t VALUES ({i}, 'b{i}')", database=db)
    for i in range(500, 510):
        dr.sql(f"INSERT INTO t VALUES ({i}, 'd{i}')", database=db)
    b.sql("UPDATE t SET v = CONCAT(v, '+') WHERE id < 10", database=db)
    want = 1 + 28 + 10

    def converged():
        return (q(b, "SELECT COUNT(*) FROM t", db) == ((want,),) and
                q(b, "SELECT * FROM t ORDER BY id", db) == q(dr, "SELECT * FROM t ORDER BY id", db))
    wait_for(converged, 60, "both sides equal")
    time.sleep(1.5)  # an echo would come back as a conflict or a duplicate apply
    fw, rv = instance(d, pname), reverse(d, pname)
    assert fw["state"] == "running" and rv["state"] == "running", (fw, rv)
    assert rv["write"]["events"] == 10                                   # only the DR-local rows went back
    assert fw["last_error"] is None and rv["last_error"] is None


def test_reverse_survives_restart(synced, mariadb_pair):
    d, pname, db = synced
    b, dr = mariadb_pair
    d.admin_ok("create-reverse", pair=pname)
    dr.sql("INSERT INTO t VALUES (700, 'while collecting')", database=db)
    wait_for(lambda: reverse(d, pname)["collection"]["spool_seq"] > 0, 30, "collected")
    d.restart()
    assert reverse(d, pname)["state"] == "collecting"
    assert d.ctl("start", f"{pname}/reverse").returncode == 0
    wait_for(lambda: q(b, "SELECT COUNT(*) FROM t WHERE id = 700", db) == ((1,),), 30, "applied after restart")


def test_failed_reverse_precheck_leaves_nothing(synced, mariadb_pair):
    d, pname, _ = synced
    dr = mariadb_pair.dr
    dr.sql("SET GLOBAL binlog_row_image = 'MINIMAL'")
    try:
        r = d.admin("create-reverse", pair=pname)
    finally:
        dr.sql("SET GLOBAL binlog_row_image = 'FULL'")
    assert r["ok"] is False and r["error"]["code"] == "precheck_failed"
    failed = [c for c in r["error"]["checks"] if c["status"] == "fail"]
    assert any(c["name"] == "binlog_row_image" for c in failed)
    assert reverse(d, pname) is None
    d.restart()
    assert reverse(d, pname) is None
    assert d.admin_ok("create-reverse", pair=pname)["state"] == "collecting"


@pytest.mark.tsan
def test_sigterm_while_admin_commands_run(synced):
    """Shutdown waits for precheck / create-reverse / verify threads instead of freeing what they use."""
    import json
    import socket
    d, pname, _ = synced
    socks = []
    for cmd in ("precheck", "create-reverse", "verify"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(d.admin_socket)
        s.sendall(json.dumps({"cmd": cmd, "args": {"pair": pname}}).encode() + b"\n")
        socks.append(s)
    assert d.stop() == 0
    for s in socks:
        s.close()


@pytest.mark.tsan
def test_requests_read_during_shutdown_are_refused_while_a_job_finishes(synced, mariadb_pair):
    """SIGTERM while a precheck waits for DR (its mariadbd stopped: the connect gets no greeting until the
    precheck's 5 s timeout): shutdown waits for the precheck with the loop turning, and a request read
    meanwhile is answered `shutting_down` instead of starting another worker thread (before, one read in the
    last turn started a thread that shutdown never waited for: it exited 1 at once, tearing Connector/C and
    the config down under it). Once the precheck ends the daemon exits 0. (A verify is no such job any
    more: the stop cuts it.)"""
    d, pname, db = synced
    b, dr = mariadb_pair
    replies = {}

    def precheck():
        try:
            replies["precheck"] = d.admin("precheck", pair=pname, _timeout=60)
        except (OSError, ValueError) as e:        # the reply may be lost with the socket at exit
            replies["precheck"] = e
    os.kill(dr.pid, signal.SIGSTOP)
    try:
        th = threading.Thread(target=precheck)
        th.start()
        wait_for(lambda: "admin: precheck" in d.log(), 30, "the precheck runs")
        time.sleep(0.5)                           # it waits for DR's greeting
        os.kill(d.pid, signal.SIGTERM)
        wait_for(lambda: "waiting for 1 admin command(s) to finish" in d.log(), 30, "shutdown waits for it")
        for cmd in ("precheck", "create-reverse", "status"):
            r = d.admin(cmd, pair=pname, _timeout=10)
            assert r["ok"] is False and r["error"]["code"] == "shutting_down", r
            assert cmd in r["error"]["message"], r
    finally:
        os.kill(dr.pid, signal.SIGCONT)
    assert d.wait(60) == 0, d.log()[-3000:]
    th.join(30)
    assert "still running after 120 s" not in d.log()


@pytest.mark.parametrize("on_conflict", ["fail", "overwrite"])
def test_rule2_direct_dr_write_racing_the_forward_writer(daemon, mariadb_pair, fresh, on_conflict):  # noqa: F811
    """A row written straight to DR (by an account allowed to write the fenced DR) that the forward writer
    later also writes is a conflict: fail names table, key and transaction; overwrite takes business's row."""
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))", database=fresh)
    pname = f"c{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", on_conflict=on_conflict)
    wait_state(d, pname, "running")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((0,),), 30, "table on DR")
    dr.sql("INSERT INTO t VALUES (200, 'dr direct')", database=fresh)
    b.sql("INSERT INTO t VALUES (200, 'business')", database=fresh)
    if on_conflict == "fail":
        st = wait_state(d, pname, "failed", timeout=30)
        err = st["last_error"]
        assert f"conflict on {fresh}.t" in err and "200" in err and "duplicate key on INSERT" in err, err
        assert "source transaction 1-10-" in err, err
        assert q(dr, "SELECT v FROM t WHERE id = 200", fresh) == (("dr direct",),)   # nothing overwritten
    else:
        wait_for(lambda: q(dr, "SELECT v FROM t WHERE id = 200", fresh) == (("business",),), 30, "overwritten")
        assert instance(d, pname)["state"] == "running"


def test_rule5_reverse_precheck_names_a_dr_table_without_key(synced, mariadb_pair):
    d, pname, db = synced
    mariadb_pair.dr.sql("CREATE TABLE dr_only_nokey (a INT, b INT)", database=db)   # exists on DR only
    r = d.admin("create-reverse", pair=pname)
    assert r["ok"] is False and r["error"]["code"] == "precheck_failed"
    failed = [c for c in r["error"]["checks"] if c["status"] == "fail"]
    assert any(f"{db}.dr_only_nokey" in c["detail"] for c in failed), failed
    assert reverse(d, pname) is None


def test_rule6_reverse_precheck_reports_dr_retention(synced, mariadb_pair):
    d, pname, _ = synced
    r = d.admin_ok("precheck", pair=pname, direction="reverse")
    ret = [c for c in r["checks"] if c["name"] == "binlog_retention"]
    assert ret[0]["status"] == "pass" and ret[0]["detail"].startswith("dr "), ret        # never purged here
    mariadb_pair.dr.sql("SET GLOBAL binlog_expire_logs_seconds = 1")        # < retry_seconds (3 in tests)
    try:
        r = d.admin_ok("precheck", pair=pname, direction="reverse")
    finally:
        mariadb_pair.dr.sql("SET GLOBAL binlog_expire_logs_seconds = 0")
    ret = [c for c in r["checks"] if c["name"] == "binlog_retention"]
    assert ret[0]["status"] == "warn" and "kept 1 s" in ret[0]["detail"], ret


def test_rule7_paused_reverse_resumes_exactly_there(synced, mariadb_pair):
    d, pname, db = synced
    b, dr = mariadb_pair
    d.admin_ok("create-reverse", pair=pname)
    d.admin_ok("start", instance=f"{pname}/reverse")
    wait_reverse(d, pname, "running")
    dr.sql("INSERT INTO t VALUES (300, 'before pause')", database=db)
    wait_for(lambda: q(b, "SELECT COUNT(*) FROM t WHERE id = 300", db) == ((1,),), 30, "applied")
    d.admin_ok("pause", instance=f"{pname}/reverse")
    pos = reverse(d, pname)["collection"]["position"]
    dr.sql("INSERT INTO t VALUES (301, 'while paused')", database=db)
    dr.sql("UPDATE t SET v = CONCAT(v, '+') WHERE id = 300", database=db)
    time.sleep(1)
    assert q(b, "SELECT COUNT(*) FROM t WHERE id = 301", db) == ((0,),)
    assert reverse(d, pname)["collection"]["position"] == pos
    d.admin_ok("start", instance=f"{pname}/reverse")
    wait_for(lambda: q(b, "SELECT v FROM t WHERE id IN (300, 301) ORDER BY id", db) ==
             (("before pause+",), ("while paused",)), 30, "resumed exactly there")


@pytest.mark.tsan
def test_rule8_business_unreachable_reverse_retries_and_recovers(synced, mariadb_pair):
    d, pname, db = synced
    b, dr = mariadb_pair
    d.admin_ok("create-reverse", pair=pname)
    d.admin_ok("start", instance=f"{pname}/reverse")
    wait_reverse(d, pname, "running")
    b.shutdown()
    try:
        dr.sql("INSERT INTO t VALUES (400, 'business down')", database=db)
        st = wait_reverse(d, pname, "retrying", timeout=30)
        assert st["write"]["state"] == "retrying"
    finally:
        b.start()
    wait_reverse(d, pname, "running", timeout=60)
    wait_for(lambda: q(b, "SELECT COUNT(*) FROM t WHERE id = 400", db) == ((1,),), 30, "applied after recovery")


def test_a_reverse_instance_created_again_does_not_resume_from_the_terminated_ones_checkpoint(synced, mariadb_pair):
    """The reverse instance's checkpoint row on business is keyed by its id (<pair>/reverse), which a new
    create-reverse reuses: the new instance must start its own history. Before, its writer read the
    terminated one's watermark and skipped that many records of the new spool: rows written on DR after the
    second creation never reached business."""
    d, pname, db = synced
    b, dr = mariadb_pair
    d.admin_ok("create-reverse", pair=pname)
    d.admin_ok("start", instance=f"{pname}/reverse")
    wait_reverse(d, pname, "running")
    for i in range(10):
        dr.sql(f"INSERT INTO t VALUES ({400 + i}, 'first reverse')", database=db)
    wait_for(lambda: q(b, "SELECT COUNT(*) FROM t WHERE id BETWEEN 400 AND 409", db) == ((10,),), 30,
             "the first reverse instance applied")
    old = q(b, "SELECT spool_seq FROM switchyard.checkpoint WHERE instance = %s", None, (f"{pname}/reverse",))
    assert old and old[0][0] >= 10, old
    d.admin_ok("terminate", instance=f"{pname}/reverse")
    d.admin_ok("create-reverse", pair=pname)
    # forgotten before the answer (reset: no history; the row stays for its owner token): a takeover right
    # after it would resume from nothing older
    assert q(b, "SELECT spool_seq, position, pending_ddl_seq FROM switchyard.checkpoint WHERE instance = %s", None,
             (f"{pname}/reverse",)) == ((0, "", 0),)
    assert q(b, "SELECT COUNT(*) FROM switchyard.applied WHERE instance = %s", None,
             (f"{pname}/reverse",)) == ((0,),)
    for i in range(30):
        dr.sql(f"INSERT INTO t VALUES ({500 + i}, 'second reverse')", database=db)
    wait_for(lambda: reverse(d, pname)["collection"]["spool_seq"] > old[0][0], 30, "collected past the old watermark")
    d.admin_ok("start", instance=f"{pname}/reverse")
    wait_reverse(d, pname, "running")
    wait_for(lambda: q(b, "SELECT COUNT(*) FROM t WHERE id BETWEEN 500 AND 529", db) == ((30,),), 30,
             "every row of the second reverse instance on business")
    assert q(b, "SELECT id, v FROM t ORDER BY id", db) == q(dr, "SELECT id, v FROM t ORDER BY id", db)
