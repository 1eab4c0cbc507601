"""Switchover, switchback and failover through the proxy (ARCHITECTURE.md steps 1-6), against two real
MariaDB servers with clients connected to Switchyard the whole time."""

from __future__ import annotations

import json
import threading
import time

import pymysql
import pytest

from test_forward_mariadb import fresh  # noqa: F401 (fixture)
from helpers import APP_PASSWORD, APP_USER, app_conn, app_user, assert_equal_eventually, forward, locked, one, q, reverse, wait_for, wait_reverse, wait_state

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


@pytest.mark.tsan
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


def test_session_state_survives_a_switch(switchable, mariadb_pair):
    """USE db, sql_mode, time zone (numeric offset), user variables and a server-side prepared statement
    (executed again without re-binding: the remembered parameter types are re-sent) keep working."""
    import subprocess
    from conftest import BUILD_DIR
    d, pname, db = switchable
    p = subprocess.Popen([str(BUILD_DIR / "sy_test_client"), "127.0.0.1", str(d.port), APP_USER, APP_PASSWORD,
                          "switch_state", db], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        while True:
            line = p.stdout.readline()
            assert line, f"client ended early: {lines}"
            lines.append(line.strip())
            if line.strip() == "ready":
                break
        before = [x for x in lines if x.startswith("state ")]
        assert before == [f"state 42 héllo +05:30 ANSI_QUOTES,NO_ENGINE_SUBSTITUTION {db} read_only=0"], lines
        r = d.admin_ok("switchover", pair=pname)
        assert r["moved_clients"] >= 1
        out, _ = p.communicate("go\n", timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    after = [x for x in out.splitlines() if x.startswith("state ") or x.startswith("ERROR")]
    # same values, and read_only=0 although business is now read_only: it ran on DR
    assert after == [f"state 42 héllo +05:30 ANSI_QUOTES,NO_ENGINE_SUBSTITUTION {db} read_only=0"], out
    assert q(mariadb_pair.business, "SELECT @@global.read_only")[0][0] == 1
    assert "DONE" in out


def test_open_transaction_is_rolled_back_and_commit_never_succeeds(switchable, mariadb_pair):
    d, pname, db = switchable
    b, dr = mariadb_pair
    c = app_conn(d, db)
    c.begin()
    one(c, "INSERT INTO t VALUES (50, 'in an open transaction')")
    r = d.admin_ok("switchover", pair=pname)        # the client stays idle inside its transaction
    assert r["aborted_transactions"] == 1 and r["pause_ms"] >= 500, r  # txn_drain_ms = 500
    for sql in ("INSERT INTO t VALUES (51, 'x')", "COMMIT"):
        with pytest.raises(pymysql.err.OperationalError) as e:
            one(c, sql)
        assert e.value.args == (1213, "Switchyard: the transaction was rolled back by a switchover; send ROLLBACK "
                                      "and run it again"), e.value.args
    c.rollback()
    one(c, "INSERT INTO t VALUES (52, 'after rollback')")
    assert q(dr, "SELECT id FROM t WHERE id >= 50 ORDER BY id", db) == ((52,),)
    wait_for(lambda: q(b, "SELECT id FROM t WHERE id >= 50 ORDER BY id", db) == ((52,),), 30, "reverse applied")


def test_transaction_that_ends_within_txn_drain_ms_commits(switchable, mariadb_pair):
    d, pname, db = switchable
    c = app_conn(d, db)
    c.begin()
    one(c, "INSERT INTO t VALUES (60, 'commits during the hold')")
    done = threading.Event()
    result = {}

    def switch():
        result["r"] = d.admin("switchover", pair=pname)
        done.set()
    th = threading.Thread(target=switch)
    th.start()
    wait_for(lambda: d.pair_status(pname)["held"], 10, "the switch holds the pair")   # txn_drain_ms runs now
    c.commit()                                       # inside txn_drain_ms: the old side commits it
    th.join(30)
    assert result["r"]["ok"], result
    assert result["r"]["result"]["aborted_transactions"] == 0
    assert q(mariadb_pair.dr, "SELECT v FROM t WHERE id = 60", db) == (("commits during the hold",),)


def test_writer_bypassing_the_proxy_gets_read_only(switchable, mariadb_pair):
    d, pname, db = switchable
    b, dr = mariadb_pair
    direct = pymysql.connect(host="127.0.0.1", port=b.port, user=APP_USER, password=APP_PASSWORD, database=db,
                             autocommit=False)
    with direct.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (70, 'bypass, open during the switch')")
    d.admin_ok("switchover", pair=pname)
    with pytest.raises(pymysql.err.OperationalError) as e:
        direct.commit()
    assert e.value.args[0] == 1290 and "read-only" in e.value.args[1], e.value.args
    direct.close()
    direct = pymysql.connect(host="127.0.0.1", port=b.port, user=APP_USER, password=APP_PASSWORD, database=db)
    with pytest.raises(pymysql.err.OperationalError) as e, direct.cursor() as cur:
        cur.execute("INSERT INTO t VALUES (71, 'bypass after')")
    assert e.value.args[0] == 1290
    direct.close()
    for s in (b, dr):   # neither lost silently nor split: on no side
        assert q(s, "SELECT COUNT(*) FROM t WHERE id IN (70, 71)", db) == ((0,),)


def test_temporary_table_is_unmovable_and_force_closes_it(switchable, mariadb_pair):
    d, pname, db = switchable
    pinned = app_conn(d, db)
    one(pinned, "CREATE TEMPORARY TABLE scratch (a INT)")
    other = app_conn(d, db)
    sid = one(pinned, "SELECT 1") and [c for c in d.admin_ok("clients", pair=pname)["clients"] if not c["movable"]]
    assert len(sid) == 1 and sid[0]["unmovable_reason"] == "temporary tables", sid
    r = d.admin("switchover", pair=pname)
    assert r["ok"] is False and r["error"]["code"] == "unmovable_sessions", r
    assert r["error"]["ids"] == [sid[0]["id"]] and "temporary tables" in r["error"]["message"] + str(r["error"])
    assert d.pair_status(pname)["active_side"] == "business" and not d.pair_status(pname)["held"]
    assert q(mariadb_pair.business, "SELECT @@global.read_only")[0][0] == 0        # rolled back: unfenced
    one(other, "INSERT INTO t VALUES (80, 'still on business')")
    r = d.admin_ok("switchover", pair=pname, force=True)
    assert r["closed_unmovable"] == 1 and r["active_side"] == "dr"
    with pytest.raises(pymysql.err.OperationalError) as e:
        one(pinned, "SELECT * FROM scratch")
    assert e.value.args[0] == 1927 and "forced switchover" in e.value.args[1] and "temporary tables" in e.value.args[1]
    one(other, "INSERT INTO t VALUES (81, 'moved')")
    assert q(mariadb_pair.dr, "SELECT COUNT(*) FROM t WHERE id IN (80, 81)", db) == ((2,),)


def test_refusals_change_nothing(switchable, mariadb_pair, daemon):
    d, pname, db = switchable
    r = d.admin("switchback", pair=pname)
    assert r["ok"] is False and r["error"]["code"] == "bad_state"
    r = d.admin("failover", pair=pname)
    assert r["ok"] is False and r["error"]["code"] == "business_alive"
    st = d.pair_status(pname)
    assert st["active_side"] == "business" and st["epoch"] == 1 and not st["held"]
    d.admin_ok("terminate", instance=f"{pname}/reverse")
    r = d.admin("switchover", pair=pname)
    assert r["ok"] is False and r["error"]["code"] == "no_reverse_instance"


@pytest.mark.parametrize("failpoint", ["switch_after_hold", "switch_after_fence", "switch_after_drain",
                                       "switch_after_stop_write", "switch_after_unfence", "switch_after_flip"])
def test_kill9_at_each_switchover_step_resolves_on_restart(daemon, mariadb_pair, fresh, failpoint):  # noqa: F811
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))", database=fresh)
    app_user(mariadb_pair, fresh)
    pname = f"k{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", env={"SY_FAILPOINT": failpoint})
    wait_state(d, pname, "running")
    d.admin_ok("create-reverse", pair=pname)
    wait_reverse(d, pname, "collecting")
    c = app_conn(d, fresh)
    one(c, "INSERT INTO t VALUES (1, 'acknowledged before the switch')")
    with pytest.raises(ConnectionError):
        d.admin("switchover", pair=pname)           # the daemon dies at the failpoint
    assert d.wait(30) != 0
    d.env.pop("SY_FAILPOINT", None)
    d.restart()
    active = d.pair_status(pname)["active_side"]
    assert active == ("dr" if failpoint == "switch_after_flip" else "business"), (failpoint, active)
    act, pas = (dr, b) if active == "dr" else (b, dr)
    wait_for(lambda: q(act, "SELECT @@global.read_only")[0][0] == 0 and q(pas, "SELECT @@global.read_only")[0][0] == 1,
             30, "exactly one side writable")
    fw, rv = forward(d, pname), reverse(d, pname)
    writing = [i["direction"] for i in (fw, rv) if i["state"] == "running"]
    assert writing == (["reverse"] if active == "dr" else ["forward"]), (fw["state"], rv["state"])
    c2 = app_conn(d, fresh)
    one(c2, "INSERT INTO t VALUES (2, 'after the restart')")
    other = pas
    wait_for(lambda: q(other, "SELECT COUNT(*) FROM t", fresh) == ((2,),), 30, "both rows on the passive side")
    assert q(act, "SELECT id FROM t ORDER BY id", fresh) == ((1,), (2,))


@pytest.mark.tsan
def test_bank_invariant_across_alternating_switches(daemon, mariadb_pair, fresh):  # noqa: F811
    """Transfers from PyMySQL threads plus sysbench oltp_read_write through the proxy; 3 switchovers and 3
    switchbacks under that load (`make soak` runs many more): 0 client errors, the sum of balances constant after each switch, every
    acknowledged transfer present at the end on both sides, verify clean, each pause recorded."""
    bank_under_switches(daemon, mariadb_pair, fresh, switches=6, gap_s=0.5)


def bank_under_switches(daemon, mariadb_pair, fresh, switches, gap_s):  # noqa: F811
    """The bank-invariant run (also `make soak`'s switch soak): `switches` alternating switches gap_s apart."""
    import random
    import subprocess
    b, dr = mariadb_pair
    n_acc, start_bal = 20, 1000
    b.sql("CREATE TABLE acc (id INT PRIMARY KEY, bal INT NOT NULL)", database=fresh)
    b.sql("CREATE TABLE transfers (id VARCHAR(40) PRIMARY KEY, src INT, dst INT, amount INT)", database=fresh)
    b.sql(f"INSERT INTO acc SELECT seq, {start_bal} FROM seq_1_to_{n_acc}", database=fresh)
    app_user(mariadb_pair, fresh)
    pname = f"b{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*")
    wait_state(d, pname, "running")
    d.admin_ok("create-reverse", pair=pname)
    wait_reverse(d, pname, "collecting")
    sb = ["--db-driver=mysql", "--mysql-host=127.0.0.1", f"--mysql-port={d.port}", f"--mysql-user={APP_USER}",
          f"--mysql-password={APP_PASSWORD}", f"--mysql-db={fresh}", "--tables=2", "--table-size=1000"]
    r = subprocess.run(["sysbench", "oltp_read_write", *sb, "prepare"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    def dr_rows():
        try:
            return q(dr, "SELECT COUNT(*) FROM sbtest2", fresh) == ((1000,),)
        except pymysql.err.ProgrammingError:
            return False                              # not created there yet
    wait_for(dr_rows, 60, "sysbench tables on DR")

    stop = threading.Event()
    acked, errors = [], []

    def transfers(worker):
        c = app_conn(d, fresh)
        rnd = random.Random(worker)
        k = 0
        while not stop.is_set():
            src, dst = rnd.sample(range(1, n_acc + 1), 2)
            amount, tid = rnd.randint(1, 50), f"w{worker}-{k}"
            k += 1
            try:
                c.begin()   # rows locked in id order: the workers never deadlock each other
                for acc, delta in sorted([(src, -amount), (dst, amount)]):
                    one(c, "UPDATE acc SET bal = bal + %s WHERE id = %s", (delta, acc))
                one(c, "INSERT INTO transfers VALUES (%s, %s, %s, %s)", (tid, src, dst, amount))
                c.commit()
                acked.append(tid)
            except Exception as e:  # noqa: BLE001 - every client error counts
                errors.append(f"{tid}: {e!r}")
                try:
                    c.rollback()
                except Exception:  # noqa: BLE001
                    c = app_conn(d, fresh)
        c.close()

    workers = [threading.Thread(target=transfers, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    bench = subprocess.Popen(["sysbench", "oltp_read_write", *sb, "--threads=4", "--time=0", "--events=0",
                              "--report-interval=0", "run"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    pauses = []
    try:
        time.sleep(1.0)
        for i in range(switches):
            cmd = "switchover" if i % 2 == 0 else "switchback"
            r = d.admin(cmd, pair=pname, _timeout=60)
            assert r["ok"], (i, cmd, r)
            pauses.append(r["result"]["pause_ms"])
            active = mariadb_pair.dr if cmd == "switchover" else b
            assert q(active, "SELECT SUM(bal) FROM acc", fresh) == ((n_acc * start_bal,),), (i, cmd)
            time.sleep(gap_s)
    finally:
        stop.set()
        for w in workers:
            w.join(30)
        bench.terminate()
        out, _ = bench.communicate(timeout=30)
    assert errors == [], errors[:5]
    assert "FATAL" not in out and "error" not in out.lower().replace("errors:", ""), out[-2000:]
    assert len(acked) > 50 and len(pauses) == switches, (len(acked), pauses)
    assert_equal_eventually = __import__("test_forward_mariadb").assert_equal_eventually
    assert_equal_eventually(mariadb_pair, fresh, timeout=120)
    for s in (b, dr):
        got = {r[0] for r in q(s, "SELECT id FROM transfers", fresh)}
        assert set(acked) <= got, f"acknowledged transfers missing: {sorted(set(acked) - got)[:5]}"
        assert q(s, "SELECT SUM(bal) FROM acc", fresh) == ((n_acc * start_bal,),)
    v = d.admin_ok("verify", pair=pname, _timeout=300)
    assert v.get("clean", v.get("ok")) in (True, None) and not v.get("mismatches"), v
    print(f"pauses ms: {pauses}")
    return pauses


@pytest.mark.parametrize("decision", [pytest.param("export", marks=pytest.mark.tsan), "discard"])
def test_failover_tail_resolve_then_switchback(switchable, mariadb_pair, decision):
    """kill -9 of the business mariadbd; failover moves the idle client to DR without an error; the business
    DB comes back fenced, the tail (written while the forward collector was paused) is reported with how many
    of its transactions were acknowledged; nothing of it reaches DR; after resolve-tail the reverse write
    catches up and a switchback restores the forward direction with both sides equal."""
    d, pname, db = switchable
    b, dr = mariadb_pair
    c = app_conn(d, db)
    one(c, "INSERT INTO t VALUES (10, 'replicated')")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t WHERE id = 10", db) == ((1,),), 30, "forward applied")
    d.admin_ok("pause", instance=f"{pname}/forward")
    for i in (11, 12):                                # the tail: acknowledged to a client through the proxy
        one(c, "INSERT INTO t VALUES (%s, 'tail')", (i,))
    r = d.admin("failover", pair=pname)
    assert r["ok"] is False and r["error"]["code"] == "business_alive"
    b.kill9()
    try:
        r = d.admin_ok("failover", pair=pname)
        assert r["active_side"] == "dr" and r["tail"]["state"] == "pending", r
        one(c, "INSERT INTO t VALUES (13, 'on DR after the failover')")   # the same connection, no error
        assert q(dr, "SELECT COUNT(*) FROM t WHERE id = 13", db) == ((1,),)
        r = d.admin("switchback", pair=pname)
        assert r["ok"] is False and r["error"]["code"] == "tail_unresolved"
        r = d.admin("start", instance=f"{pname}/forward")     # it would collect the tail
        assert r["ok"] is False and r["error"]["code"] == "tail_unresolved" and "resolve-tail" in \
            r["error"]["message"], r
    finally:
        b.start()
    tail = wait_for(lambda: d.pair_status(pname).get("tail", {}).get("state") == "open" and
                    d.pair_status(pname)["tail"], 30, "tail reported")
    assert tail["transactions"] == 2 and tail["acknowledged"] == 2, tail
    assert [(x["tables"], x["keys"][0]["key"], x["acknowledged"]) for x in tail["listed"]] == \
        [([f"{db}.t"], {"id": 11}, True), ([f"{db}.t"], {"id": 12}, True)], tail["listed"]
    assert q(b, "SELECT @@global.read_only")[0][0] == 1                   # fenced as soon as it is back
    text = d.ctl("status", pname).stdout
    assert f"{pname} failover tail: open, 2 transaction(s) never replicated to DR (2 acknowledged" in text, text
    assert f"{pname} last switch: failover to dr" in text, text
    assert q(dr, "SELECT COUNT(*) FROM t WHERE id IN (11, 12)", db) == ((0,),)   # nothing applied silently
    time.sleep(1.5)
    assert q(b, "SELECT COUNT(*) FROM t WHERE id = 13", db) == ((0,),)    # no reverse write before the decision
    export = d.cwd / "tail.json"
    if decision == "export":
        r = d.ctl("resolve-tail", pname, "--export", str(export))
        assert r.returncode == 0, r.stdout + r.stderr
        assert oct(export.stat().st_mode & 0o777) == "0o600"
        exported = json.loads(export.read_text())
        assert [t["rows"][0]["after"]["v"] for t in exported["transactions"]] == ["tail", "tail"]
        assert d.ctl("resolve-tail", pname, "--discard").returncode != 0          # decided once
    else:
        r = d.admin_ok("resolve-tail", pair=pname, discard=True)
        assert r["tail"]["revert"]["reverted_transactions"] == 2 and not export.exists()
    assert d.pair_status(pname).get("tail") is None or d.pair_status(pname)["tail"]["state"] != "open"
    assert q(b, "SELECT COUNT(*) FROM t WHERE id IN (11, 12)", db) == ((0,),)   # reverted on business
    wait_for(lambda: q(b, "SELECT COUNT(*) FROM t WHERE id = 13", db) == ((1,),), 30, "reverse caught up")
    r = d.admin_ok("switchback", pair=pname)
    assert r["active_side"] == "business"
    one(c, "INSERT INTO t VALUES (14, 'back on business')")
    assert_equal_eventually = __import__("test_forward_mariadb").assert_equal_eventually
    assert_equal_eventually(mariadb_pair, db)
    assert q(b, "SELECT id FROM t ORDER BY id", db) == ((1,), (10,), (13,), (14,))


def _reversible_with_one_row(daemon, mariadb_pair, db, pname, v_type, **daemon_args):  # noqa: F811
    """A daemon for table t (id, v v_type) with a running forward instance, a collecting reverse one and a
    first row (1) applied to DR; returns it and an app connection through its proxy."""
    b, dr = mariadb_pair
    b.sql(f"CREATE TABLE t (id INT PRIMARY KEY, v {v_type})", database=db)
    app_user(mariadb_pair, db)
    d = daemon(pair=pname, objects=f"{db}.*", **daemon_args)
    wait_state(d, pname, "running")
    d.admin_ok("create-reverse", pair=pname)
    wait_reverse(d, pname, "collecting")
    c = app_conn(d, db)
    one(c, "INSERT INTO t VALUES (1, 'spooled before the crash')")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", db) == ((1,),), 30, "applied")
    return d, c


def test_failover_after_forward_failed_and_empty_tail_resolves_itself(daemon, mariadb_pair, fresh):  # noqa: F811
    """The business DB is down for longer than retry_seconds (the forward instance is failed by then): failover
    still applies what was spooled; when business is back with nothing unreplicated, the tail closes by itself
    and the reverse write starts."""
    b, dr = mariadb_pair
    pname = f"f{fresh}"
    d, c = _reversible_with_one_row(daemon, mariadb_pair, fresh, pname, "VARCHAR(40)", retry_seconds=2)
    b.kill9()
    try:
        wait_state(d, pname, "failed", timeout=30)
        r = d.admin_ok("failover", pair=pname)
        assert r["active_side"] == "dr", r
        one(c, "INSERT INTO t VALUES (2, 'on DR')")
    finally:
        b.start()
    wait_for(lambda: "tail" not in d.pair_status(pname), 30, "empty tail closed by itself")
    wait_reverse(d, pname, "running")
    wait_for(lambda: q(b, "SELECT COUNT(*) FROM t WHERE id = 2", fresh) == ((1,),), 30, "reverse applied")
    assert q(b, "SELECT @@global.read_only")[0][0] == 1
    assert d.admin_ok("switchback", pair=pname)["active_side"] == "business"
    one(c, "INSERT INTO t VALUES (3, 'back')")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((3,),), 30, "forward again")


def test_forward_failing_during_the_failovers_drain_is_started_again(daemon, mariadb_pair, fresh, tmp_path):  # noqa: F811
    """The forward collector spends retry_seconds on the dead business side while the failover waits for the
    writer to apply the spool (CI: "forward is stopping with 3 spooled record(s) not applied"): the failover
    starts the instance again and every spooled insert reaches DR."""
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))", database=fresh)
    app_user(mariadb_pair, fresh)
    pname = f"g{fresh}"
    stall = tmp_path / "stall-failover"
    stall.touch()
    d = daemon(pair=pname, objects=f"{fresh}.*", retry_seconds=1,
               env={"SY_STALL_POINT": "failover_after_resume", "SY_STALL_FILE": str(stall)})
    wait_state(d, pname, "running")
    c = app_conn(d, fresh)
    one(c, "INSERT INTO t VALUES (1, 'applied')")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((1,),), 30, "applied")
    reply, th = {}, None
    try:
        with locked(dr, fresh, "SELECT * FROM t FOR UPDATE"):           # DR's writer waits on this lock
            for i in (2, 3, 4):
                one(c, "INSERT INTO t VALUES (%s, 'spooled, not applied')", (i,))

            def spooled():
                f = forward(d, pname)
                return f["collection"]["spool_seq"] - f["write"]["spool_seq"] >= 3
            wait_for(spooled, 10, "three inserts spooled, not applied")
            b.kill9()
            th = threading.Thread(target=lambda: reply.update(d.admin("failover", _timeout=120, pair=pname)))
            th.start()
            wait_for(lambda: "failpoint failover_after_resume: stalled" in d.log(), 30, "failover at its drain")
            # the collector's retry window ends and the whole instance fails (its blocked writer cut)
            wait_for(lambda: forward(d, pname)["state"] == "failed", 30, "forward failed meanwhile")
        stall.unlink()
        th.join(120)
    finally:
        stall.unlink(missing_ok=True)
        b.start()
    assert reply.get("ok") is True, reply
    assert reply["result"]["active_side"] == "dr"
    assert q(dr, "SELECT id FROM t ORDER BY id", fresh) == ((1,), (2,), (3,), (4,))


@pytest.mark.tsan
def test_failover_when_business_died_while_sending_a_transaction(daemon, mariadb_pair, fresh, tmp_path):  # noqa: F811
    """business is killed -9 while its binlog dump is halfway through a 40 MB transaction (the collector held
    after the transaction's first record, the rest in flight): the forward spool ends with a transaction that
    can never complete. The failover applies everything before it and succeeds (CI once: "drain_timeout ...
    applied 23980 of 23983"); the cut transaction is the tail, nothing of it reaches DR, and once it is
    discarded a switchback leaves both sides equal."""
    b, dr = mariadb_pair
    pname = f"h{fresh}"
    stall = tmp_path / "stall-collector"
    d, c = _reversible_with_one_row(daemon, mariadb_pair, fresh, pname, "MEDIUMTEXT",
                                    env={"SY_STALL_POINT": "collector_txn_begun", "SY_STALL_FILE": str(stall)})
    stall.touch()
    try:
        one(c, "INSERT INTO t SELECT seq, REPEAT('x', 20000) FROM seq_2_to_2001")   # one transaction, 40 MB
        wait_for(lambda: "failpoint collector_txn_begun: stalled" in d.log(), 30, "the collector held in it")
        b.kill9()
        stall.unlink()
        r = d.admin_ok("failover", pair=pname)
        assert r["active_side"] == "dr", r
        one(c, "INSERT INTO t VALUES (3, 'on DR')")
    finally:
        stall.unlink(missing_ok=True)
        b.start()
    assert f"pair {pname}: failover: the last" in d.log() and "not finish sending" in d.log()
    assert q(dr, "SELECT id FROM t ORDER BY id", fresh) == ((1,), (3,))
    tail = wait_for(lambda: d.pair_status(pname).get("tail", {}).get("state") == "open" and
                    d.pair_status(pname)["tail"], 60, "tail reported")
    assert tail["transactions"] == 1 and tail["acknowledged"] == 1, tail
    r = d.admin_ok("resolve-tail", pair=pname, discard=True)
    assert r["tail"]["revert"]["reverted_transactions"] == 1, r
    wait_reverse(d, pname, "running")
    wait_for(lambda: q(b, "SELECT id FROM t ORDER BY id", fresh) == ((1,), (3,)), 30, "reverse caught up")
    assert d.admin_ok("switchback", pair=pname)["active_side"] == "business"
    # the forward write passes the cut transaction at the POSITION resolve-tail spooled, with no new write
    wait_for(lambda: (lambda f: f["write"]["spool_seq"] == f["collection"]["spool_seq"])(forward(d, pname)), 30,
             "the forward write at the end of its spool")
    one(c, "INSERT INTO t VALUES (4, 'back')")
    assert_equal_eventually(mariadb_pair, fresh)
    assert q(dr, "SELECT id FROM t ORDER BY id", fresh) == ((1,), (3,), (4,))


@pytest.mark.tsan
def test_precheck_direction_switchover(switchable, mariadb_pair):
    d, pname, db = switchable
    r = d.admin_ok("precheck", pair=pname, direction="switchover")
    names = {c["name"]: c["status"] for c in r["checks"]}
    assert r["passed"] is True, r["checks"]
    assert names["instances"] == "pass" and names["unmovable_sessions"] == "pass"
    assert names["forward:binlog_format"] == "pass" and names["reverse:binlog_format"] == "pass"
    pinned = app_conn(d, db)
    one(pinned, "SELECT GET_LOCK('sw-test', 1)")
    r = d.admin_ok("precheck", pair=pname, direction="switchover")
    c = next(c for c in r["checks"] if c["name"] == "unmovable_sessions")
    assert c["status"] == "warn" and "GET_LOCK" in c["detail"] and "--force" in c["fix"], c
    d.admin_ok("pause", instance=f"{pname}/forward")
    r = d.admin_ok("precheck", pair=pname, direction="switchover")
    c = next(c for c in r["checks"] if c["name"] == "instances")
    assert r["passed"] is False and c["status"] == "fail" and "paused" in c["detail"], c


def _writable(server):
    return q(server, "SELECT @@global.read_only")[0][0] == 0


def _one_side_writable(d, pname, mariadb_pair):
    b, dr = mariadb_pair
    active = d.pair_status(pname)["active_side"]
    act, pas = (dr, b) if active == "dr" else (b, dr)
    wait_for(lambda: _writable(act) and not _writable(pas), 30, "exactly one side writable")
    return active, act, pas


def test_failover_force_fences_a_live_business_and_closes_an_empty_tail(switchable, mariadb_pair):
    d, pname, db = switchable
    b, dr = mariadb_pair
    c = app_conn(d, db)
    one(c, "INSERT INTO t VALUES (90, 'before')")
    r = d.admin_ok("failover", pair=pname, force=True)
    assert r["active_side"] == "dr" and r["moved_clients"] >= 1, r
    assert q(dr, "SELECT COUNT(*) FROM t WHERE id = 90", db) == ((1,),)      # everything there was, applied
    assert not _writable(b)
    one(c, "INSERT INTO t VALUES (91, 'after')")
    wait_for(lambda: "tail" not in d.pair_status(pname), 30, "empty tail closed by itself")
    wait_reverse(d, pname, "running")
    wait_for(lambda: q(b, "SELECT COUNT(*) FROM t WHERE id = 91", db) == ((1,),), 30, "reverse applied")


@pytest.mark.parametrize("op,failpoint,expect", [
    ("switchback", "switch_after_fence", "dr"),
    ("switchback", "switch_after_unfence", "dr"),
    ("switchback", "switch_after_flip", "business"),
    ("failover", "switch_after_stop_write", "business"),
    ("failover", "switch_after_flip", "dr"),
])
def test_kill9_during_switchback_and_failover_resolves_on_restart(daemon, mariadb_pair, fresh, op, failpoint,  # noqa: F811
                                                                   expect):
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))", database=fresh)
    app_user(mariadb_pair, fresh)
    pname = f"x{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*")
    wait_state(d, pname, "running")
    d.admin_ok("create-reverse", pair=pname)
    wait_reverse(d, pname, "collecting")
    c = app_conn(d, fresh)
    one(c, "INSERT INTO t VALUES (1, 'acknowledged')")
    if op == "switchback":
        d.admin_ok("switchover", pair=pname)
        one(c, "INSERT INTO t VALUES (2, 'acknowledged on DR')")
    d.stop()
    d.env["SY_FAILPOINT"] = failpoint
    d.start()
    try:
        r = d.admin(op, pair=pname, force=True) if op == "failover" else d.admin(op, pair=pname)
        raise AssertionError(f"{op} answered instead of dying at {failpoint}: {r}")
    except ConnectionError:
        pass
    assert d.wait(30) != 0
    d.env.pop("SY_FAILPOINT", None)
    d.start()
    active, act, pas = _one_side_writable(d, pname, mariadb_pair)
    assert active == expect, (op, failpoint, active)
    wait_for(lambda: [i["direction"] for i in d.pair_status(pname)["instances"] if i["state"] == "running"] ==
             (["reverse"] if active == "dr" else ["forward"]), 30, "the write out of the active side runs")
    c2 = app_conn(d, fresh)
    one(c2, "INSERT INTO t VALUES (3, 'after the restart')")
    want = 3 if op == "switchback" else 2
    wait_for(lambda: q(pas, "SELECT COUNT(*) FROM t", fresh) == ((want,),), 30, "every row on the passive side")
    assert q(act, "SELECT COUNT(*) FROM t", fresh) == ((want,),)


@pytest.mark.tsan
def test_hold_timeout_rolls_back_and_the_running_transaction_keeps_going(daemon, mariadb_pair, fresh):  # noqa: F811
    """A statement inside a transaction outlasts max_hold_ms: the switchover refuses with hold_timeout,
    business is unfenced and released, and that transaction commits normally afterwards."""
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))", database=fresh)
    app_user(mariadb_pair, fresh)
    pname = f"h{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", txn_drain_ms=200, max_hold_ms=1000)
    wait_state(d, pname, "running")
    d.admin_ok("create-reverse", pair=pname)
    wait_reverse(d, pname, "collecting")
    c = app_conn(d, fresh)
    c.begin()
    one(c, "INSERT INTO t VALUES (1, 'in a long transaction')")
    done = {}

    def slow():
        done["rows"] = one(c, "SELECT SLEEP(2.5)")
    th = threading.Thread(target=slow)
    th.start()
    wait_for(lambda: q(b, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(2.5)'")
             == ((1,),), 10, "the transaction's SLEEP(2.5) running on business")
    r = d.admin("switchover", pair=pname)
    th.join(10)
    assert r["ok"] is False and r["error"]["code"] == "hold_timeout", r
    assert "max_hold_ms=1000" in r["error"]["message"]
    st = d.pair_status(pname)
    assert st["active_side"] == "business" and not st["held"] and st["epoch"] == 1
    assert _writable(b) and not _writable(dr)
    assert done["rows"] == ((0,),)
    c.commit()                                        # the transaction was not touched
    assert q(b, "SELECT v FROM t WHERE id = 1", fresh) == (("in a long transaction",),)
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((1,),), 30, "forward still running")


@pytest.mark.tsan
def test_failover_under_load_loses_no_acknowledged_write_silently(switchable, mariadb_pair):
    """Inserts keep coming through the proxy while the business mariadbd is killed; after the failover the
    clients continue on DR. Every insert a client saw acknowledged is on DR or in the reported tail
    (exported, then reverted), and after resolve-tail + switchback both sides are equal."""
    d, pname, db = switchable
    b, dr = mariadb_pair
    stop, acked, errors = threading.Event(), [], []

    def loader():
        c, i = None, 1000
        while not stop.is_set():
            try:
                c = c or app_conn(d, db, connect_timeout=2, read_timeout=5)
                one(c, "INSERT INTO t VALUES (%s, 'load')", (i,))
                acked.append(i)
                i += 1
            except pymysql.err.MySQLError as e:
                errors.append((e.args[0], str(e.args[1:])))
                c = None
                i += 1
                time.sleep(0.05)
    th = threading.Thread(target=loader)
    th.start()
    try:
        time.sleep(1.0)
        b.kill9()
        r = d.admin_ok("failover", pair=pname)
        assert r["active_side"] == "dr"
        n = len(acked)
        wait_for(lambda: len(acked) > n + 20, 30, "clients continue on DR")
    finally:
        stop.set()
        th.join(30)
        b.start()
    # only lost-connection kinds, while business died: a login in the window between the kill and the
    # failover gets the proxy's 1927 carrying the server's "Can't connect" (client_err sends 2xxx codes so)
    lost = [(code, msg) for code, msg in errors if code in (2013, 2003, 1053) or
            (code == 1927 and ("Can't connect" in msg or "Lost connection" in msg))]
    assert lost == errors, errors
    st = wait_for(lambda: d.pair_status(pname).get("tail", {"state": "closed"})["state"] in ("open", "closed") and
                  (d.pair_status(pname).get("tail") or {"state": "closed"}), 30, "tail known")
    exported = set()
    if st["state"] == "open":
        path = d.cwd / "load-tail.json"
        d.admin_ok("resolve-tail", pair=pname, export=str(path))
        for txn in json.loads(path.read_text())["transactions"]:
            exported |= {row["after"]["id"] for row in txn["rows"] if row["after"]}
    on_dr = {r[0] for r in q(dr, "SELECT id FROM t WHERE id >= 1000", db)}
    missing = set(acked) - on_dr - exported
    assert not missing, f"acknowledged but neither on DR nor in the tail: {sorted(missing)[:10]}"
    assert not (exported & on_dr)
    print(f"acked {len(acked)}, errors {errors}, tail {st.get('transactions', 0)} txn(s), exported {len(exported)}")
    wait_reverse(d, pname, "running")
    r = d.admin_ok("switchback", pair=pname)
    assert r["active_side"] == "business"
    assert_equal_eventually = __import__("test_forward_mariadb").assert_equal_eventually
    assert_equal_eventually(mariadb_pair, db)


@pytest.mark.tsan
def test_sigterm_during_a_switchover_rolls_it_back_and_exits_0(switchable, mariadb_pair):
    """SIGTERM while a switchover waits in its catch-up (the DR writer is held on a row lock): the switch
    sees the shutdown, refuses and rolls back, the daemon exits 0; after a restart business is still
    active at the same epoch, the only writable side, and the held change reaches DR."""
    d, pname, db = switchable
    b, dr = mariadb_pair
    epoch = d.pair_status(pname)["epoch"]
    replies = {}

    def switchover():
        try:
            replies["r"] = d.admin("switchover", pair=pname, _timeout=60)
        except (OSError, ValueError) as e:        # the socket closed with the daemon before a reply
            replies["r"] = e
    with locked(dr, db, "SELECT * FROM t WHERE id = 1 FOR UPDATE"):
        b.sql("UPDATE t SET v = 'held' WHERE id = 1", database=db)
        wait_for(lambda: q(dr, "SELECT COUNT(*) FROM information_schema.INNODB_TRX "
                               "WHERE trx_state = 'LOCK WAIT'")[0][0] > 0, 30, "the writer waits on the lock")
        th = threading.Thread(target=switchover)
        th.start()
        wait_for(lambda: "switchover from business to dr started" in d.log(), 30, "the switch runs")
        assert d.stop() == 0
        th.join(30)
    r = replies["r"]
    assert not (isinstance(r, dict) and r.get("ok")), r
    assert "rolling back" in d.log()
    d.start()
    st = d.pair_status(pname)
    assert st["active_side"] == "business" and st["epoch"] == epoch and not st["held"], st
    wait_for(lambda: _writable(b) and not _writable(dr), 30, "business writable, DR fenced")
    wait_for(lambda: q(dr, "SELECT v FROM t WHERE id = 1", db) == (("held",),), 30, "the held change on DR")
