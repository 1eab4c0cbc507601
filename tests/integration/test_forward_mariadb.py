"""The MariaDB forward instance (business -> DR) against two real servers: what a user relies on is that
DR ends up with exactly the business rows — every column type, transactions, DDL — and that crashes,
outages, pauses and a full spool lose nothing and apply nothing twice."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import subprocess
import threading
import time

import pymysql
import pytest

from conftest import ADMIN_PASSWORD, ADMIN_USER
from helpers import assert_equal_eventually, conn, forward, instance, locked, q, tables_of, wait_for, wait_state

_counter = itertools.count()


@pytest.fixture
def fresh(mariadb_pair):
    """A database of this test's own on both sides (the pair is shared)."""
    name = f"fw{os.getpid() % 1000}_{next(_counter)}"
    for s in mariadb_pair:
        s.sql(f"DROP DATABASE IF EXISTS {name}")
    mariadb_pair.business.sql(f"CREATE DATABASE {name}")
    yield name
    for s in mariadb_pair:
        s.sql(f"DROP DATABASE IF EXISTS {name}")


ALL_TYPES = """CREATE TABLE alltypes (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
  i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  d1 DECIMAL(10,2), d2 DECIMAL(65,30), f FLOAT, dbl DOUBLE,
  dt DATE, tm TIME, tm3 TIME(3), dtm DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, y YEAR,
  c CHAR(10), vc VARCHAR(200), txt TEXT, lat VARCHAR(50) CHARACTER SET latin1,
  bin BINARY(4), vb VARBINARY(20), bl LONGBLOB,
  e ENUM('red','green','blue'), st SET('a','b','c','d'), b1 BIT(1), b64 BIT(64),
  j JSON, g BIGINT AS (i * 2) VIRTUAL, gs VARCHAR(210) AS (CONCAT(vc, '!')) STORED
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

ROW1 = """INSERT INTO alltypes (id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, d1, d2, f, dbl, dt, tm, tm3, dtm, ts, y,
  c, vc, txt, lat, bin, vb, bl, e, st, b1, b64, j) VALUES
  (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808,
   18446744073709551615, -12.50, 0.000000000000000000000000000001, 1.5, -2.25e100, '2024-02-29', '-838:59:59',
   '12:34:56.789', '2024-01-02 03:04:05.123456', '2024-06-30 23:59:59.999999', 2155,
   'abc', 'ünïcødé 😀 漢字', REPEAT('long text ', 1000), 'café', X'00FF7F80', X'DEADBEEF', X'000102',
   'green', 'a,c,d', b'1', b'1010101010101010101010101010101010101010101010101010101010101010',
   '{"k": [1, 2, {"n": null}]}'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.00, -99.5, 0, 0, '1000-01-01', '00:00:00', '00:00:00.000',
   '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01', 1901, '', '', '', '', X'00000000', X'', X'', 'red', '',
   b'0', b'0', '[]')"""


@pytest.mark.tsan
def test_forward_every_type_initial_sync_then_incremental(daemon, mariadb_pair, fresh):
    b = mariadb_pair.business
    b.sql(ALL_TYPES, database=fresh)
    b.sql(ROW1, database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*")
    wait_state(d, pname, "running")
    st = instance(d, pname)
    assert st["initial_sync"]["done"] is True and st["initial_sync"]["total_rows"] == 3
    assert_equal_eventually(mariadb_pair, fresh)
    # incremental: every type again, updates of every column, deletes, a 10 MB blob, a rollback
    c = conn(b, fresh)
    with c.cursor() as cur:
        cur.execute(ROW1.replace("(1, -128", "(11, -128").replace("(2, NULL", "(12, NULL").replace("(3, 0", "(13, 0"))
        cur.execute("UPDATE alltypes SET vc = CONCAT(vc, ' ✓'), d1 = d1 + 1, ts = '2030-01-01 00:00:00', "
                    "e = 'blue', st = 'b', j = '{\"a\": 1}', b64 = b'1', dtm = NOW(6) WHERE id IN (1, 11)")
        cur.execute("UPDATE alltypes SET ti = 5 WHERE id = 2")
        cur.execute("DELETE FROM alltypes WHERE id = 3")
        cur.execute("UPDATE alltypes SET bl = %s WHERE id = 12", (os.urandom(10 * 1024 * 1024),))
        cur.execute("BEGIN")
        cur.execute("INSERT INTO alltypes (id, i) VALUES (100, 1), (101, 2), (102, 3)")
        cur.execute("UPDATE alltypes SET i = i + 10 WHERE id >= 100")
        cur.execute("COMMIT")
        cur.execute("BEGIN")
        cur.execute("INSERT INTO alltypes (id, i) VALUES (200, 1)")
        cur.execute("ROLLBACK")
    c.close()
    assert_equal_eventually(mariadb_pair, fresh)
    assert q(mariadb_pair.dr, "SELECT COUNT(*) FROM alltypes WHERE id = 200", fresh) == ((0,),)
    # generated columns were computed by DR, not copied
    assert q(mariadb_pair.dr, "SELECT g, gs FROM alltypes WHERE id = 11", fresh) == \
        q(b, "SELECT g, gs FROM alltypes WHERE id = 11", fresh)
    st = wait_for(lambda: instance(d, pname)["write"]["lag_events"] == 0 and instance(d, pname), 30, "no lag")
    assert st["write"]["position"].startswith("1-10-")
    assert st["last_error"] is None


def test_forward_ddl_mid_stream_and_multi_statement(daemon, mariadb_pair, fresh):
    b = mariadb_pair.business
    b.sql("CREATE TABLE t1 (id INT PRIMARY KEY, v VARCHAR(20))", database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*")
    wait_state(d, pname, "running")
    c = conn(b, fresh, client_flag=pymysql.constants.CLIENT.MULTI_STATEMENTS)
    with c.cursor() as cur:
        cur.execute("INSERT INTO t1 VALUES (1, 'a'), (2, 'b'); INSERT INTO t1 VALUES (3, 'c')")
        while cur.nextset():
            pass
        cur.execute("ALTER TABLE t1 ADD COLUMN extra INT DEFAULT 7")
        cur.execute("INSERT INTO t1 (id, v, extra) VALUES (4, 'd', 9)")
        cur.execute("CREATE TABLE t2 (k VARCHAR(10) NOT NULL, n INT NOT NULL, UNIQUE KEY (k)) ENGINE=InnoDB")
        cur.execute("INSERT INTO t2 VALUES ('x', 1), ('y', 2)")
        cur.execute("UPDATE t2 SET n = n * 10")
        cur.execute("CREATE INDEX iv ON t1 (v)")
        cur.execute("RENAME TABLE t2 TO t3")
        cur.execute("INSERT INTO t3 VALUES ('z', 3)")
        cur.execute("TRUNCATE TABLE t1")
        cur.execute("INSERT INTO t1 (id, v) VALUES (10, 'after truncate')")
        cur.execute("CREATE TABLE gone (id INT PRIMARY KEY)")
        cur.execute("DROP TABLE gone")
    c.close()
    assert_equal_eventually(mariadb_pair, fresh)
    # the DROP of `gone` is the last event: the rows can be equal before DR has applied it
    wait_for(lambda: tables_of(mariadb_pair.dr, fresh) == ["t1", "t3"], 30, "DR's tables are t1 and t3")
    assert q(mariadb_pair.dr, "SHOW INDEX FROM t1 WHERE Key_name = 'iv'", fresh)


@pytest.mark.parametrize("names", ["utf8mb4 COLLATE utf8mb4_unicode_ci", "latin1 COLLATE latin1_german2_ci",
                                   "utf8mb4 COLLATE utf8mb4_bin"])
def test_ddl_of_a_session_whose_collation_is_not_its_charsets_default(daemon, mariadb_pair, fresh, names):
    """The binlog logs a DDL's session character set and collations as collation ids; `SET
    character_set_client=<id>` takes only a character set's default collation, so the writer refused 224
    (utf8mb4_unicode_ci: what Node.js mysql2 connects with) and the forward instance failed on the first CREATE
    TABLE of such a session ("Unknown character set: '224'"). The ids are resolved to names on DR now."""
    b = mariadb_pair.business
    b.sql("CREATE TABLE t1 (id INT PRIMARY KEY)", database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*")
    wait_state(d, pname, "running")
    c = conn(b, fresh)
    with c.cursor() as cur:
        cur.execute(f"SET NAMES {names}")
        cur.execute("CREATE TABLE t2 (id INT PRIMARY KEY, s VARCHAR(20))")
        cur.execute("INSERT INTO t2 VALUES (1, 'Straße')")
        cur.execute("ALTER TABLE t2 ADD COLUMN u VARCHAR(20) DEFAULT 'ü'")
    c.commit()
    c.close()
    assert_equal_eventually(mariadb_pair, fresh)
    t2 = lambda side: q(side, "SELECT s, u, HEX(s), HEX(u) FROM t2", fresh)
    wait_for(lambda: tables_of(mariadb_pair.dr, fresh) == ["t1", "t2"] and t2(mariadb_pair.dr) == t2(b), 30,
             "t2 on DR as on business")
    assert q(b, "SHOW CREATE TABLE t2", fresh)[0][1] == q(mariadb_pair.dr, "SHOW CREATE TABLE t2", fresh)[0][1]
    st = instance(d, pname)
    assert st["state"] == "running" and st["last_error"] is None, st


def test_objects_filter_and_echo_free(daemon, mariadb_pair, fresh):
    """Only the configured objects travel; other databases and tables stay on business."""
    b = mariadb_pair.business
    b.sql("CREATE TABLE keep (id INT PRIMARY KEY)", database=fresh)
    b.sql("CREATE TABLE skip_me (id INT PRIMARY KEY)", database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.keep")
    wait_state(d, pname, "running")
    b.sql("INSERT INTO keep VALUES (1), (2)", database=fresh)
    b.sql("INSERT INTO skip_me VALUES (1)", database=fresh)
    wait_for(lambda: q(mariadb_pair.dr, f"SELECT COUNT(*) FROM {fresh}.keep") == ((2,),), 30, "keep copied")
    assert tables_of(mariadb_pair.dr, fresh) == ["keep"]


SAVEPOINT_TRANSACTIONS = [
    # rolled back after the first row: 2 and the UPDATE of 1 are undone, 3 stays
    ["INSERT INTO t VALUES (1, 'one')", "SAVEPOINT a", "INSERT INTO t VALUES (2, 'undone')",
     "UPDATE t SET v = 'undone' WHERE id = 1", "INSERT INTO log VALUES (1)", "ROLLBACK TO SAVEPOINT a",
     "INSERT INTO t VALUES (3, 'three')"],
    # nothing of t before the savepoint
    ["SAVEPOINT a", "INSERT INTO t VALUES (4, 'undone')", "INSERT INTO log VALUES (2)", "ROLLBACK TO a",
     "INSERT INTO t VALUES (5, 'five')"],
    # nested, rolled back to the inner one and then the outer one; a name set twice
    ["INSERT INTO t VALUES (6, 'six')", "SAVEPOINT a", "INSERT INTO t VALUES (7, 'undone')", "SAVEPOINT b",
     "INSERT INTO t VALUES (8, 'undone')", "INSERT INTO log VALUES (3)", "ROLLBACK TO b",
     "INSERT INTO t VALUES (9, 'undone')", "INSERT INTO log VALUES (4)", "ROLLBACK TO a",
     "SAVEPOINT b", "INSERT INTO t VALUES (10, 'ten')", "INSERT INTO log VALUES (5)", "ROLLBACK TO b",
     "INSERT INTO t VALUES (11, 'eleven')"],
    # rolled back to a savepoint with nothing after it, then released
    ["INSERT INTO t VALUES (12, 'twelve')", "INSERT INTO log VALUES (6)", "SAVEPOINT c", "ROLLBACK TO c",
     "RELEASE SAVEPOINT c", "INSERT INTO t VALUES (13, 'thirteen')"],
    # a savepoint logged before anything synchronized (an InnoDB table outside objects first)
    ["INSERT INTO other VALUES (1)", "SAVEPOINT a", "INSERT INTO t VALUES (20, 'undone')",
     "INSERT INTO log VALUES (8)", "ROLLBACK TO a", "INSERT INTO t VALUES (21, 'twenty-one')"],
    # a second synchronized table first used after the savepoint, rolled back, then used again
    ["INSERT INTO t VALUES (30, 'thirty')", "SAVEPOINT a", "INSERT INTO t2 VALUES (1, 'undone')",
     "INSERT INTO log VALUES (9)", "ROLLBACK TO a", "INSERT INTO t2 VALUES (2, 'two')"],
]
# ANSI_QUOTES: MariaDB logs SAVEPOINT "a" / ROLLBACK TO "a"
ANSI_SAVEPOINTS = ["INSERT INTO t VALUES (40, 'forty')", "SAVEPOINT a", "INSERT INTO t VALUES (41, 'undone')",
                   "SAVEPOINT b", "INSERT INTO t VALUES (42, 'undone')", "INSERT INTO log VALUES (10)",
                   "ROLLBACK TO a", "INSERT INTO t VALUES (43, 'forty-three')"]


SAVEPOINT_TABLES = ["CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))",
                    "CREATE TABLE t2 (id INT PRIMARY KEY, v VARCHAR(20))",
                    "CREATE TABLE other (id INT PRIMARY KEY)",
                    "CREATE TABLE log (id INT PRIMARY KEY) ENGINE=MyISAM"]


def run_savepoint_transactions(conn_):
    """SAVEPOINT_TRANSACTIONS, the ANSI_QUOTES one and a whole rollback, through conn_ (tables
    SAVEPOINT_TABLES; t and t2 synchronized)."""
    with conn_.cursor() as cur:
        for txn in SAVEPOINT_TRANSACTIONS:
            cur.execute("BEGIN")
            for stmt in txn:
                cur.execute(stmt)
            cur.execute("COMMIT")
        cur.execute("SET SESSION sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')")
        cur.execute("BEGIN")
        for stmt in ANSI_SAVEPOINTS:
            cur.execute(stmt)
        cur.execute("COMMIT")
        cur.execute("SET SESSION sql_mode = DEFAULT")
        cur.execute("BEGIN")                           # a whole rollback: nothing of t is logged
        cur.execute("INSERT INTO t VALUES (14, 'undone')")
        cur.execute("INSERT INTO log VALUES (7)")
        cur.execute("ROLLBACK")


SAVEPOINT_ROWS = ((1, "one"), (3, "three"), (5, "five"), (6, "six"), (11, "eleven"), (12, "twelve"),
                  (13, "thirteen"), (21, "twenty-one"), (30, "thirty"), (40, "forty"), (43, "forty-three"))
SAVEPOINT_T2_ROWS = ((2, "two"),)


def test_rolled_back_savepoints_next_to_a_nontransactional_change(daemon, mariadb_pair, fresh):
    """Transactions that also change a MyISAM table and roll back to a savepoint: MariaDB then logs the row
    events after the savepoint and a `ROLLBACK TO` instead of cutting them out. None of the undone rows
    reaches DR (they did before: `ROLLBACK TO` was taken for the commit), what came before and after does:
    nested savepoints, a name set twice, nothing before the savepoint, nothing after it."""
    b, dr = mariadb_pair
    for sql in SAVEPOINT_TABLES:
        b.sql(sql, database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.t,{fresh}.t2")
    wait_state(d, pname, "running")
    c = conn(b, fresh)
    run_savepoint_transactions(c)
    c.close()
    assert q(b, "SELECT id, v FROM t ORDER BY id", fresh) == SAVEPOINT_ROWS
    assert q(b, "SELECT id, v FROM t2 ORDER BY id", fresh) == SAVEPOINT_T2_ROWS
    b.sql("INSERT INTO t VALUES (99, 'last')", database=fresh)
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t WHERE id = 99", fresh) == ((1,),), 30, "the last row applied")
    assert q(dr, "SELECT id, v FROM t ORDER BY id", fresh) == SAVEPOINT_ROWS + ((99, "last"),)
    assert q(dr, "SELECT id, v FROM t2 ORDER BY id", fresh) == SAVEPOINT_T2_ROWS
    assert forward(d, pname)["state"] == "running"


def test_xa_transactions_reach_dr(daemon, mariadb_pair, fresh):
    """XA: prepared then committed (its rows in a group whose GTID event carries the XID and that ends in
    XA_PREPARE; XA COMMIT a group of its own) and committed in one phase reach DR, then a plain transaction."""
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(20))", database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*")
    wait_state(d, pname, "running")
    c = conn(b, fresh)
    with c.cursor() as cur:
        for stmt in ["XA START 'x1'", "INSERT INTO t VALUES (1, 'two-phase')", "UPDATE t SET v = 'xa' WHERE id = 1",
                     "XA END 'x1'", "XA PREPARE 'x1'", "XA COMMIT 'x1'",
                     "XA START 'x2'", "INSERT INTO t VALUES (2, 'one phase')", "XA END 'x2'",
                     "XA COMMIT 'x2' ONE PHASE", "INSERT INTO t VALUES (3, 'plain')"]:
            cur.execute(stmt)
    c.close()
    want = ((1, "xa"), (2, "one phase"), (3, "plain"))
    assert q(b, "SELECT id, v FROM t ORDER BY id", fresh) == want
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t WHERE id = 3", fresh) == ((1,),), 30, "the last row applied")
    assert q(dr, "SELECT id, v FROM t ORDER BY id", fresh) == want
    assert forward(d, pname)["state"] == "running"


@pytest.mark.tsan
def test_sysbench_write_only_equal(daemon, mariadb_pair, fresh):
    pname = f"p{fresh}"
    common = ["--db-driver=mysql", "--mysql-host=127.0.0.1", f"--mysql-port={mariadb_pair.business.port}",
              f"--mysql-user={ADMIN_USER}", f"--mysql-password={ADMIN_PASSWORD}", f"--mysql-db={fresh}",
              "--tables=2", "--table-size=2000"]
    r = subprocess.run(["sysbench", "oltp_write_only", *common, "prepare"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    d = daemon(pair=pname, objects=f"{fresh}.*")
    wait_state(d, pname, "running")
    r = subprocess.run(["sysbench", "oltp_write_only", *common, "--threads=4", "--time=15", "run"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert_equal_eventually(mariadb_pair, fresh, timeout=120)
    assert instance(d, pname)["state"] == "running"


@pytest.mark.parametrize("failpoint", ["writer_before_commit", "writer_during_ddl"])
def test_kill9_at_failpoint_then_restart_is_exactly_once(daemon, mariadb_pair, fresh, failpoint):
    b = mariadb_pair.business
    b.sql("CREATE TABLE acc (id INT PRIMARY KEY, bal INT NOT NULL)", database=fresh)
    b.sql("INSERT INTO acc SELECT seq, 100 FROM seq_1_to_50", database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", env={"SY_FAILPOINT": failpoint})
    wait_state(d, pname, "running")
    # the copy runs without the failpoint; the first incremental commit / DDL hits it
    if failpoint == "writer_during_ddl":
        b.sql("ALTER TABLE acc ADD COLUMN note VARCHAR(10)", database=fresh)
    else:
        b.sql("UPDATE acc SET bal = bal + 1 WHERE id <= 10", database=fresh)
    rc = d.wait(60)
    assert rc != 0, "the failpoint should have stopped switchyardd"
    # more work while it is down, then restart without the failpoint
    b.sql("UPDATE acc SET bal = bal + 1 WHERE id <= 20", database=fresh)
    d.env.pop("SY_FAILPOINT", None)
    d.restart()
    assert_equal_eventually(mariadb_pair, fresh)
    # nothing applied twice: relative updates would show it
    assert q(mariadb_pair.dr, "SELECT SUM(bal) FROM acc", fresh) == q(b, "SELECT SUM(bal) FROM acc", fresh)


def test_kill9_during_initial_sync_restarts_the_copy(daemon, mariadb_pair, fresh):
    b = mariadb_pair.business
    b.sql("CREATE TABLE big (id INT PRIMARY KEY, pad VARCHAR(200))", database=fresh)
    b.sql("INSERT INTO big SELECT seq, REPEAT('p', 200) FROM seq_1_to_60000", database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*")
    wait_for(lambda: instance(d, pname)["initial_sync"]["done_rows"] > 0, 60, "copy under way")
    d.kill9()
    b.sql("UPDATE big SET pad = 'changed' WHERE id % 1000 = 0", database=fresh)
    d.restart()
    wait_state(d, pname, "running", timeout=120)
    assert_equal_eventually(mariadb_pair, fresh, timeout=120)


@pytest.mark.tsan
def test_pause_start_keeps_position(daemon, mariadb_pair, fresh):
    b = mariadb_pair.business
    b.sql("CREATE TABLE t (id INT PRIMARY KEY)", database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*")
    wait_state(d, pname, "running")
    b.sql("INSERT INTO t VALUES (1)", database=fresh)
    assert_equal_eventually(mariadb_pair, fresh)
    before = instance(d, pname)["write"]["position"]
    r = d.ctl("pause", f"{pname}/forward")
    assert r.returncode == 0, r.stderr
    assert instance(d, pname)["state"] == "paused"
    b.sql("INSERT INTO t VALUES (2), (3)", database=fresh)
    time.sleep(1)
    assert q(mariadb_pair.dr, "SELECT COUNT(*) FROM t", fresh) == ((1,),)
    assert instance(d, pname)["write"]["position"] == before
    r = d.ctl("pause", f"{pname}/forward")
    assert r.returncode == 1 and "bad_state" in r.stderr
    assert d.ctl("start", f"{pname}/forward").returncode == 0
    assert_equal_eventually(mariadb_pair, fresh)
    wait_state(d, pname, "running")


@pytest.mark.tsan
def test_dr_down_retrying_then_failed_then_start(daemon, mariadb_pair, fresh):
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY)", database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", retry_seconds=4)
    wait_state(d, pname, "running")
    dr.shutdown()
    try:
        b.sql("INSERT INTO t VALUES (1)", database=fresh)
        st = wait_state(d, pname, "retrying", timeout=30)
        assert st["write"]["state"] == "retrying"
        st = wait_state(d, pname, "failed", timeout=30)
        assert "retry_seconds=4" in st["last_error"]
    finally:
        dr.start()
    b.sql("INSERT INTO t VALUES (2)", database=fresh)
    assert d.ctl("start", f"{pname}/forward").returncode == 0
    assert_equal_eventually(mariadb_pair, fresh)
    wait_state(d, pname, "running")


def test_dr_short_outage_recovers_by_itself(daemon, mariadb_pair, fresh):
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY)", database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", retry_seconds=60)
    wait_state(d, pname, "running")
    dr.shutdown()
    try:
        b.sql("INSERT INTO t VALUES (1), (2)", database=fresh)
        wait_state(d, pname, "retrying", timeout=30)
    finally:
        dr.start()
    assert_equal_eventually(mariadb_pair, fresh)
    wait_state(d, pname, "running")


def test_spool_full_retries_and_loses_nothing(daemon, mariadb_pair, fresh):
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, pad VARCHAR(255))", database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", spool_max_bytes="64K")
    wait_state(d, pname, "running")
    # hold the writer back: a DR transaction locks the whole table, so the spool fills up
    with locked(dr, fresh, "SELECT * FROM t FOR UPDATE"):
        # many transactions of 20 rows (~6 KB each): together far more than the 64 KB spool; each one
        # fits (spool_max_bytes must exceed the largest source transaction)
        for n in range(100):
            b.sql(f"INSERT INTO t SELECT seq + {n * 20}, REPEAT('x', 255) FROM seq_1_to_20", database=fresh)
        st = wait_for(lambda: instance(d, pname).get("reason") == "spool_full" and instance(d, pname), 60,
                      "spool_full")
        assert st["state"] == "retrying" and st["collection"]["state"] == "retrying"
    assert_equal_eventually(mariadb_pair, fresh, timeout=120)
    wait_state(d, pname, "running")


def test_purged_binlog_fails_naming_the_position(daemon, mariadb_pair, fresh):
    b = mariadb_pair.business
    b.sql("CREATE TABLE t (id INT PRIMARY KEY)", database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*")
    wait_state(d, pname, "running")
    assert d.ctl("pause", f"{pname}/forward").returncode == 0
    b.sql("INSERT INTO t VALUES (1)", database=fresh)
    b.sql("FLUSH BINARY LOGS")
    b.sql("INSERT INTO t VALUES (2)", database=fresh)
    b.sql("FLUSH BINARY LOGS")
    (last,) = q(b, "SHOW MASTER STATUS")[0][:1]

    def purged():  # a binlog is purgeable once InnoDB's binlog checkpoint passed it (~1 s here)
        b.sql(f"PURGE BINARY LOGS TO '{last}'")
        return [r[0] for r in q(b, "SHOW BINARY LOGS")] == [last]
    wait_for(purged, 30, "old binlogs purged", interval=0.5)
    assert d.ctl("start", f"{pname}/forward").returncode == 0
    st = wait_state(d, pname, "failed", timeout=30)
    assert "1236" in st["last_error"] and "1-10-" in st["last_error"]


def test_compressed_binlog_events(daemon, mariadb_pair, fresh):
    """log_bin_compress=ON: QUERY and ROWS events arrive zlib-compressed and must apply the same."""
    b = mariadb_pair.business
    b.sql("CREATE TABLE z (id INT PRIMARY KEY, body MEDIUMTEXT, n INT)", database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*")
    wait_state(d, pname, "running")
    b.sql("SET GLOBAL log_bin_compress = ON, GLOBAL log_bin_compress_min_len = 10")
    try:
        c = conn(b, fresh)  # a new session picks up the global setting
        with c.cursor() as cur:
            cur.execute("INSERT INTO z SELECT seq, REPEAT(CONCAT('compressible ', seq), 200), seq FROM seq_1_to_200")
            cur.execute("UPDATE z SET body = CONCAT(body, '!'), n = n * 2 WHERE id % 3 = 0")
            cur.execute("DELETE FROM z WHERE id % 7 = 0")
            cur.execute("ALTER TABLE z ADD COLUMN tag VARCHAR(200) DEFAULT 'a fairly long default to compress'")
        c.close()
    finally:
        b.sql("SET GLOBAL log_bin_compress = OFF")
    assert_equal_eventually(mariadb_pair, fresh)
    assert instance(d, pname)["last_error"] is None


def test_empty_database_at_start_then_ddl(daemon, mariadb_pair, fresh):
    """A synchronized database with no table yet exists on DR after the copy; later DDL finds it."""
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*")
    wait_state(d, pname, "running")
    assert q(mariadb_pair.dr, f"SHOW DATABASES LIKE '{fresh}'") == ((fresh,),)
    c = conn(mariadb_pair.business, fresh)
    with c.cursor() as cur:
        cur.execute("CREATE TABLE later (id INT PRIMARY KEY)")
        cur.execute("INSERT INTO later VALUES (1), (2)")
    c.close()
    assert_equal_eventually(mariadb_pair, fresh)
    assert instance(d, pname)["state"] == "running"
