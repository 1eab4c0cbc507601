"""Parallel apply of the MariaDB forward writer (apply_threads > 1, grouped and batched): what a user relies on
is that DR ends up with exactly the business rows although transactions are applied concurrently and in
groups — hot rows changed by many transactions, keys compared by collation, secondary UNIQUE keys, DDL in the
middle — that a kill -9 while some workers committed and others did not applies nothing twice and skips
nothing, and that a conflict still names the exact table, key and source transaction."""

from __future__ import annotations

import random
import threading
import time

import pymysql
import pytest

from test_forward_mariadb import fresh  # noqa: F401
from helpers import assert_equal_eventually, conn, instance, locked, q, wait_for, wait_state

SCHEMA = [
    "CREATE TABLE hot (id INT PRIMARY KEY, n INT NOT NULL)",
    "INSERT INTO hot SELECT seq, 0 FROM seq_1_to_10",
    "CREATE TABLE cold (id INT PRIMARY KEY, v INT NOT NULL, pad VARCHAR(40))",
    # a key compared by collation: 'abc' and 'ABC ' are the same row
    "CREATE TABLE names (name VARCHAR(10) PRIMARY KEY, n INT) DEFAULT CHARSET=utf8mb4",
    # a second UNIQUE key: codes move between rows
    "CREATE TABLE uniq (id INT PRIMARY KEY, code INT UNIQUE)",
    "INSERT INTO uniq SELECT seq, seq FROM seq_1_to_6",
]


def seq_no(position: str, gtid: str) -> int:
    """The seq_no a GTID set position holds in gtid's domain (0: none)."""
    domain = gtid.split("-")[0]
    for part in (position or "").split(","):
        d, _, n = part.strip().split("-")
        if d == domain:
            return int(n)
    return 0


def one_txn(cur, rnd, tid, i):
    for _ in range(3):  # hot rows: relative updates show a lost or doubled transaction
        cur.execute("UPDATE hot SET n = n + 1 WHERE id = %s", (rnd.randint(1, 10),))
    k = tid * 1000 + rnd.randint(1, 40)
    cur.execute("INSERT INTO cold (id, v) VALUES (%s, 1) ON DUPLICATE KEY UPDATE v = v + 1", (k,))
    if rnd.random() < 0.3:
        cur.execute("DELETE FROM cold WHERE id = %s", (tid * 1000 + rnd.randint(1, 40),))
    name = rnd.choice(["abc", "ABC", "Abc ", "x", "X"])
    cur.execute("DELETE FROM names WHERE name = %s", (name,))
    cur.execute("INSERT INTO names VALUES (%s, %s)", (name, i))
    a, b = rnd.sample(range(1, 7), 2)  # swap two codes: a later swap reuses a code an earlier one freed
    cur.execute("SELECT id, code FROM uniq WHERE id IN (%s, %s) FOR UPDATE", (a, b))
    codes = dict(cur.fetchall())
    cur.execute("UPDATE uniq SET code = NULL WHERE id = %s", (a,))
    cur.execute("UPDATE uniq SET code = %s WHERE id = %s", (codes[a], b))
    cur.execute("UPDATE uniq SET code = %s WHERE id = %s", (codes[b], a))


def run_workload(server, db, threads=4, txns=120, ddl_at=None):
    errors = []

    def worker(tid):
        rnd = random.Random(tid)
        c = conn(server, db)
        try:
            for i in range(txns):
                if tid == 0 and ddl_at is not None and i == ddl_at:
                    with c.cursor() as cur:
                        cur.execute("ALTER TABLE cold ADD COLUMN extra INT NOT NULL DEFAULT 7")
                while True:
                    try:
                        c.begin()
                        with c.cursor() as cur:
                            one_txn(cur, rnd, tid, i)
                        c.commit()
                        break
                    except pymysql.err.OperationalError as e:  # deadlock between the workload's own threads
                        c.rollback()
                        if e.args[0] not in (1213, 1205):
                            raise
        except Exception as e:  # noqa: BLE001  (reported by the test)
            errors.append(repr(e))
        finally:
            c.close()

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors


def setup_tables(server, db):
    for sql in SCHEMA:
        server.sql(sql, database=db)


def paused_instance(daemon, fresh, threads, **cfg):
    """A daemon whose forward instance ran its initial sync of `fresh` and is paused: what the business
    side does next is a backlog, applied in groups once it is started."""
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", apply_threads=threads, **cfg)
    wait_state(d, pname, "running")
    assert d.ctl("pause", f"{pname}/forward").returncode == 0
    return d, pname


def apply_backlog(d, pname, pair, fresh, timeout=120):
    """Starts the paused instance; DR equals business, the instance runs without an error. Its status."""
    assert d.ctl("start", f"{pname}/forward").returncode == 0
    assert_equal_eventually(pair, fresh, timeout=timeout)
    st = wait_state(d, pname, "running")
    assert st["last_error"] is None
    return st


@pytest.mark.parametrize("threads", [1, pytest.param(4, marks=pytest.mark.tsan)])
def test_parallel_apply_of_a_backlog_on_overlapping_keys_is_equal(daemon, mariadb_pair, fresh, threads):
    b = mariadb_pair.business
    setup_tables(b, fresh)
    d, pname = paused_instance(daemon, fresh, threads)
    # a backlog: the writer applies it in groups, on `threads` connections
    run_workload(b, fresh, ddl_at=60)
    assert d.ctl("start", f"{pname}/forward").returncode == 0
    assert_equal_eventually(mariadb_pair, fresh, timeout=120)
    # and live, with the instance running
    run_workload(b, fresh, txns=40)
    assert_equal_eventually(mariadb_pair, fresh, timeout=120)
    st = wait_state(d, pname, "running")
    assert st["last_error"] is None
    # the published position is the source's once drained
    src = q(b, "SELECT @@gtid_binlog_pos")[0][0]
    wait_for(lambda: instance(d, pname)["write"]["position"] == src, 30, "write position at the source's")


def test_kill9_with_some_workers_committed_then_restart_is_exactly_once(daemon, mariadb_pair, fresh):
    b, dr = mariadb_pair
    setup_tables(b, fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", apply_threads=4)
    wait_state(d, pname, "running")
    # hold one hot row on DR: the worker applying the first transaction that touches it waits ...
    with locked(dr, fresh, "SELECT * FROM hot WHERE id = 1 FOR UPDATE"):
        c = conn(b, fresh)
        with c.cursor() as cur:
            cur.execute("UPDATE hot SET n = n + 1 WHERE id = 1")
            cur.execute("SELECT @@last_gtid")
            held_gtid = cur.fetchone()[0]
        c.close()
        # ... while later transactions on other keys are committed by the other workers, above the
        # low-watermark (recorded in switchyard.applied)
        for i in range(1, 61):
            b.sql(f"UPDATE hot SET n = n + 1 WHERE id = {2 + i % 9}", database=fresh)
            b.sql(f"INSERT INTO cold VALUES ({i}, {i}, 'x')", database=fresh)
        wait_for(lambda: q(dr, "SELECT COUNT(*) FROM cold", fresh)[0][0] >= 30, 60,
                 "later transactions applied around the held row")
        assert q(dr, "SELECT n FROM hot WHERE id = 1", fresh) == ((0,),)
        assert q(dr, "SELECT COUNT(*) FROM switchyard.applied")[0][0] > 0
        # the published position (the low-watermark) never covers the held transaction
        assert seq_no(instance(d, pname)["write"]["position"], held_gtid) < int(held_gtid.split("-")[2])
        d.kill9()
    b.sql("UPDATE hot SET n = n + 100", database=fresh)
    d.restart()
    assert_equal_eventually(mariadb_pair, fresh, timeout=120)
    # nothing applied twice, nothing skipped: relative updates would show it
    assert q(dr, "SELECT SUM(n) FROM hot", fresh) == q(b, "SELECT SUM(n) FROM hot", fresh)
    wait_state(d, pname, "running")


def test_kill9_before_a_group_commit_with_parallel_workers(daemon, mariadb_pair, fresh):
    b = mariadb_pair.business
    setup_tables(b, fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", apply_threads=4, env={"SY_FAILPOINT": "writer_before_commit"})
    wait_state(d, pname, "running")
    assert d.ctl("pause", f"{pname}/forward").returncode == 0
    run_workload(b, fresh, txns=30)
    assert d.ctl("start", f"{pname}/forward").returncode == 0
    assert d.wait(60) != 0, "the failpoint should have stopped switchyardd"
    run_workload(b, fresh, txns=10)
    d.env.pop("SY_FAILPOINT", None)
    d.restart()
    assert_equal_eventually(mariadb_pair, fresh, timeout=120)
    assert q(mariadb_pair.dr, "SELECT SUM(n) FROM hot", fresh) == q(b, "SELECT SUM(n) FROM hot", fresh)


def net_change_txns(cur, rnd, i):
    """Rows that fold into net changes inside a group (one key changed several times); returns the number of
    rows the source changed (each one a row event in its binlog)."""
    rows = 0

    def ex(sql, args):
        nonlocal rows
        cur.execute(sql, args)
        rows += cur.rowcount

    a = rnd.randint(1, 60)
    ex("DELETE FROM t WHERE id = %s", (a,))  # delete + re-insert: present -> present
    ex("INSERT INTO t VALUES (%s, %s, %s)", (a, i, rnd.randint(1, 9)))
    n = 1000 + i
    ex("INSERT INTO t VALUES (%s, 1, 1)", (n,))  # absent -> absent
    ex("DELETE FROM t WHERE id = %s", (n,))
    ex("INSERT INTO t VALUES (%s, 2, 2)", (20000 + i,))  # absent -> present
    ex("UPDATE t SET v = v + 1 WHERE id = %s", (20000 + i,))
    b = rnd.randint(1, 60)
    ex("UPDATE t SET v = v + 7 WHERE id = %s", (b,))  # present -> present, back to where it was
    ex("UPDATE t SET v = v - 7 WHERE id = %s", (b,))
    c = rnd.randint(1, 60)
    ex("UPDATE t SET k = k + 1 WHERE id = %s", (c,))  # present -> absent
    ex("DELETE FROM t WHERE id = %s", (c,))
    ex("INSERT IGNORE INTO t VALUES (%s, 0, 0)", (rnd.randint(1, 60),))
    if i % 5 == 0:  # a key moves away and another row takes its place: chains end at the key change
        m = rnd.randint(1, 60)
        ex("UPDATE t SET v = v + 1 WHERE id = %s", (m,))
        ex("UPDATE t SET id = %s WHERE id = %s", (30000 + i, m))
        ex("INSERT INTO t VALUES (%s, 9, 9)", (m,))
        ex("UPDATE t SET v = v + 1 WHERE id = %s", (m,))
    x, y = rnd.randint(1, 4), rnd.randint(1, 4)  # two-column key
    ex("DELETE FROM t2 WHERE a = %s AND b = %s", (x, y))
    ex("INSERT INTO t2 VALUES (%s, %s, %s)", (x, y, i))
    ex("UPDATE t2 SET v = v + 1 WHERE a = %s AND b = %s", (x, y))
    return rows


def test_net_changes_of_a_group_are_equal(daemon, mariadb_pair, fresh):
    b = mariadb_pair.business
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL, k INT NOT NULL, KEY (k))", database=fresh)
    b.sql("INSERT INTO t SELECT seq, seq, seq % 10 FROM seq_1_to_60", database=fresh)
    b.sql("CREATE TABLE t2 (a INT, b INT, v INT NOT NULL, PRIMARY KEY (a, b))", database=fresh)
    b.sql("INSERT INTO t2 SELECT a.seq, b.seq, 0 FROM seq_1_to_4 a, seq_1_to_4 b", database=fresh)
    d, pname = paused_instance(daemon, fresh, 2)
    rnd = random.Random(7)
    c = conn(b, fresh)
    rows = 0
    for i in range(200):
        c.begin()
        with c.cursor() as cur:
            for j in range(rnd.randint(1, 3)):
                rows += net_change_txns(cur, rnd, i * 3 + j)
        c.commit()
    c.close()
    apply_backlog(d, pname, mariadb_pair, fresh)
    # rows applied counts the source's rows, not the folded operations (published just after the commit)
    wait_for(lambda: instance(d, pname)["write"]["events"] == rows, 10, f"write events = {rows} source rows")


CONFLICTS = {
    # kind: (DR set-up, the source transaction's statements, the error, the key)
    "missing_row": ("DELETE FROM t WHERE id = 13", ["UPDATE t SET v = 5 WHERE id = 13"],
                    "no row to UPDATE", "id=13"),
    "duplicate_key": ("INSERT INTO t VALUES (21, 0)", ["INSERT INTO t VALUES (21, 1)"],
                      "duplicate key on INSERT", "id=21"),
    # net changes: the key's first row still decides
    "insert_then_delete_over_existing": ("INSERT INTO t VALUES (21, 0)",
                                         ["INSERT INTO t VALUES (21, 1)", "DELETE FROM t WHERE id = 21"],
                                         "duplicate key on INSERT", "id=21"),
    "update_and_back_missing": ("DELETE FROM t WHERE id = 13",
                                ["UPDATE t SET v = 5 WHERE id = 13", "UPDATE t SET v = 0 WHERE id = 13"],
                                "no row to UPDATE", "id=13"),
    "update_then_delete_missing": ("DELETE FROM t WHERE id = 13",
                                   ["UPDATE t SET v = 5 WHERE id = 13", "DELETE FROM t WHERE id = 13"],
                                   "no row to UPDATE", "id=13"),
    "delete_then_insert_missing": ("DELETE FROM t WHERE id = 13",
                                   ["DELETE FROM t WHERE id = 13", "INSERT INTO t VALUES (13, 4)"],
                                   "no row to DELETE", "id=13"),
}


@pytest.mark.parametrize("kind", list(CONFLICTS))
def test_conflict_inside_a_group_names_the_source_transaction(daemon, mariadb_pair, fresh, kind):
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v INT)", database=fresh)
    b.sql("INSERT INTO t SELECT seq, 0 FROM seq_1_to_20", database=fresh)
    d, pname = paused_instance(daemon, fresh, 2)
    # a backlog: the conflicting transaction sits in the middle of a group
    for i in range(1, 8):
        b.sql(f"UPDATE t SET v = v + 1 WHERE id = {i}", database=fresh)
    setup, stmts, want, key = CONFLICTS[kind]
    dr.sql(setup, database=fresh)
    c = conn(b, fresh)
    c.begin()
    with c.cursor() as cur:
        for sql in stmts:
            cur.execute(sql)
    c.commit()
    with c.cursor() as cur:
        cur.execute("SELECT @@last_gtid")
        gtid = cur.fetchone()[0]
    c.close()
    for i in range(1, 8):
        b.sql(f"UPDATE t SET v = v + 1 WHERE id = {i}", database=fresh)
    assert d.ctl("start", f"{pname}/forward").returncode == 0
    st = wait_state(d, pname, "failed", timeout=60)
    assert f"conflict on {fresh}.t key ({key}): {want}" in st["last_error"], st["last_error"]
    assert f"in source transaction {gtid} (spool seq" in st["last_error"], st["last_error"]
    # the published position stops before it
    assert seq_no(st["write"]["position"], gtid) < int(gtid.split("-")[2])
    # repair DR, start again: equal
    if key == "id=13":
        dr.sql("INSERT INTO t VALUES (13, 0)", database=fresh)
    else:
        dr.sql("DELETE FROM t WHERE id = 21", database=fresh)
    assert d.ctl("start", f"{pname}/forward").returncode == 0
    assert_equal_eventually(mariadb_pair, fresh, timeout=60)
    wait_state(d, pname, "running")


@pytest.mark.nosan  # the slowest two of this module under ASan; the writer's paths run under ASan in the kill -9 tests above
def test_applied_ranges_after_kill9_and_an_older_applied_table(daemon, mariadb_pair, fresh):
    """switchyard.applied holds ranges of transactions (about one row per group, not one per transaction);
    a kill -9 with ranges above the low-watermark applies nothing twice; a table from before the range column
    is upgraded in place."""
    b, dr = mariadb_pair
    setup_tables(b, fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", apply_threads=2)
    wait_state(d, pname, "running")
    # hold a hot row: later groups commit above the low-watermark
    with locked(dr, fresh, "SELECT * FROM hot WHERE id = 1 FOR UPDATE"):
        assert d.ctl("pause", f"{pname}/forward").returncode == 0
        b.sql("UPDATE hot SET n = n + 1 WHERE id = 1", database=fresh)
        c = conn(b, fresh)
        with c.cursor() as cur:
            for i in range(1, 3001):  # the held row's group is one block of them; the others go on
                cur.execute(f"INSERT INTO cold VALUES ({i}, {i}, 'x')")
        c.close()
        assert d.ctl("start", f"{pname}/forward").returncode == 0
        wait_for(lambda: q(dr, "SELECT COUNT(*) FROM cold", fresh)[0][0] >= 2000, 60,
                 "later transactions applied around the held row")
        applied = q(dr, "SELECT COUNT(*) FROM cold", fresh)[0][0]  # one source transaction each
        rows = q(dr, "SELECT COUNT(*) FROM switchyard.applied WHERE instance = %s", args=(f"{pname}/forward",))[0][0]
        # ranges: far fewer rows than transactions (groups are smaller when the coordinator is slow, as
        # under ASan: about 3 transactions a row there, hundreds in a normal build)
        assert 0 < rows and rows * 2 <= applied, (rows, applied)
        d.kill9()
    d.restart()
    assert_equal_eventually(mariadb_pair, fresh, timeout=120)
    assert q(dr, "SELECT SUM(n) FROM hot", fresh) == q(b, "SELECT SUM(n) FROM hot", fresh)
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM switchyard.applied WHERE instance = %s",
                       args=(f"{pname}/forward",))[0][0] == 0, 30, "applied rows deleted behind the watermark")
    # an applied table of an older version: one row per transaction, no range column; a checkpoint table
    # from before the owner token (docs/cluster.md)
    d.stop()
    dr.sql("ALTER TABLE switchyard.applied DROP COLUMN last_seq")
    dr.sql("ALTER TABLE switchyard.checkpoint DROP COLUMN owner_token")
    b.sql("UPDATE hot SET n = n + 5", database=fresh)
    d.restart()
    assert_equal_eventually(mariadb_pair, fresh, timeout=60)
    assert q(dr, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'switchyard' AND "
                 "TABLE_NAME = 'applied' AND COLUMN_NAME = 'last_seq'")[0][0] == 1
    assert q(dr, "SELECT owner_token FROM switchyard.checkpoint WHERE instance = %s",
             args=(f"{pname}/forward",)) == ((0,),)     # no cluster: token 0
    wait_state(d, pname, "running")


def test_overwrite_applies_a_backlog_and_counts_each_conflict(daemon, mariadb_pair, fresh):
    """on_conflict = overwrite: changes that do not fit DR (rows DR lost or gained behind the writer's back)
    are overwritten or ignored and counted, one each, also inside folded chains; DR ends up with business's
    rows and the instance keeps running."""
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)", database=fresh)
    b.sql("INSERT INTO t SELECT seq, 0 FROM seq_1_to_100", database=fresh)
    d, pname = paused_instance(daemon, fresh, 2, on_conflict="overwrite")
    for sql in ("DELETE FROM t WHERE id IN (10, 20, 30)", "INSERT INTO t VALUES (500, -1), (600, -1)"):
        dr.sql(sql, database=fresh)
    c = conn(b, fresh)
    with c.cursor() as cur:
        for i in range(300):
            cur.execute("UPDATE t SET v = v + 1 WHERE id = %s", (40 + i % 60,))
            if i == 100:
                cur.execute("UPDATE t SET v = 7 WHERE id = 10")       # DR lacks it: inserted (1)
                cur.execute("DELETE FROM t WHERE id = 20")            # DR lacks it: nothing to delete (2)
                cur.execute("INSERT INTO t VALUES (500, 5)")          # DR has another: overwritten (3)
                c.begin()
                cur.execute("INSERT INTO t VALUES (600, 6)")          # DR has another: overwritten (4) ...
                cur.execute("DELETE FROM t WHERE id = 600")           # ... then deleted
                cur.execute("DELETE FROM t WHERE id = 30")            # DR lacks it (5) ...
                cur.execute("INSERT INTO t VALUES (30, 33)")          # ... then inserted
                c.commit()
    c.close()
    apply_backlog(d, pname, mariadb_pair, fresh, timeout=60)
    wait_for(lambda: instance(d, pname)["write"]["conflicts_overwritten"] == 5, 10, "5 conflicts counted")
    assert instance(d, pname)["write"]["conflicts_overwritten"] == 5  # and no more


@pytest.mark.nosan  # (the same)
def test_a_large_transaction_goes_in_parts_and_a_late_conflict_undoes_all_of_it(daemon, mariadb_pair, fresh):
    """A transaction of 163k row changes is rendered and sent in parts of 65536 (bounded memory); parts apply
    in order (a key inserted in the first part, updated in the second, deleted in the third: ids up to ~61k). A conflict in the last part
    rolls the whole transaction back: DR shows none of it, the error names the row; repaired, it applies."""
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)", database=fresh)
    d, pname = paused_instance(daemon, fresh, 2)
    dr.sql("INSERT INTO t VALUES (200000, -1)", database=fresh)  # DR gained a row behind the writer's back
    c = conn(b, fresh)
    c.begin()
    with c.cursor() as cur:
        cur.execute("INSERT INTO t SELECT seq, 0 FROM seq_1_to_70000")
        cur.execute("UPDATE t SET v = v + id")
        cur.execute("DELETE FROM t WHERE id % 3 = 0")
        cur.execute("INSERT INTO t VALUES (200000, 1)")
    c.commit()
    c.close()
    assert d.ctl("start", f"{pname}/forward").returncode == 0
    st = wait_state(d, pname, "failed", timeout=120)
    assert f"conflict on {fresh}.t key (id=200000): duplicate key on INSERT" in st["last_error"], st["last_error"]
    assert q(dr, "SELECT COUNT(*) FROM t", fresh) == ((1,),)  # none of the transaction's earlier parts
    dr.sql("DELETE FROM t WHERE id = 200000", database=fresh)
    apply_backlog(d, pname, mariadb_pair, fresh)
    assert q(dr, "SELECT COUNT(*), SUM(v) FROM t", fresh) == q(b, "SELECT COUNT(*), SUM(v) FROM t", fresh)
