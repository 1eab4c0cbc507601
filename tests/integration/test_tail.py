"""The unreplicated tail after a failover (ARCHITECTURE.md, "Failover"): business transactions after the
forward collector's last spooled position are read from the binlog (exact GTIDs, tables, keys, lossless
values), reverted on business so that it equals the state at that position again, and exported to a file.
Drives capture/mariadb_tail.c, replay/mariadb_tail_revert.c and core/tail_export.c through
tests/clients/sy_tail_tool on the real sandbox servers."""

from __future__ import annotations

import itertools
import json
import os
import stat
import subprocess

import pytest

from conftest import ADMIN_PASSWORD, ADMIN_USER, BUILD_DIR
from helpers import conn, q

TOOL = BUILD_DIR / "sy_tail_tool"
WRITER_TAG = 4002
_counter = itertools.count()

TABLE = """CREATE TABLE t (
  id INT NOT NULL PRIMARY KEY,
  vc VARCHAR(100) CHARACTER SET utf8mb4, lat VARCHAR(20) CHARACTER SET latin1, bl BLOB,
  d DECIMAL(12,4), f FLOAT, dbl DOUBLE, biu BIGINT UNSIGNED, si SMALLINT,
  dtm DATETIME(6), ts TIMESTAMP(6) NULL DEFAULT NULL, tm TIME(3),
  e ENUM('red','green','blue'), st SET('a','b','c'), b BIT(10), j JSON,
  g INT AS (si * 2) VIRTUAL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""

COLS = "id, vc, lat, bl, d, f, dbl, biu, si, dtm, ts, tm, e, st, b, j"


@pytest.fixture(autouse=True)
def _tool():
    if not TOOL.exists():
        pytest.fail(f"{TOOL} is missing: build it (cmake --build BUILD --target sy_tail_tool) or set SY_BUILD_DIR",
                    pytrace=False)


def rows(server, db, table):
    return q(server, f"SELECT * FROM `{table}` ORDER BY 1", db)


def binlog_pos(server):
    return q(server, "SELECT @@gtid_binlog_pos")[0][0]


def txn(c, *stmts, server_id=None):
    """Runs stmts in one transaction on connection c; returns its GTID (@@last_gtid)."""
    with c.cursor() as cur:
        if server_id is not None:
            cur.execute(f"SET SESSION server_id = {server_id}")
        cur.execute("BEGIN")
        for s in stmts:
            if isinstance(s, tuple):
                cur.execute(*s)
            else:
                cur.execute(s)
        cur.execute("COMMIT")
        cur.execute("SELECT @@last_gtid")
        gtid = cur.fetchone()[0]
        if server_id is not None:
            cur.execute("SET SESSION server_id = @@global.server_id")
    return gtid


def tool(*args):
    return subprocess.run([str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=120)


def server_args(server):
    return ["host=127.0.0.1", f"port={server.port}", f"user={ADMIN_USER}", f"password={ADMIN_PASSWORD}",
            f"writer_tag={WRITER_TAG}"]


def read_tail(server, objects, from_pos):
    r = tool("read", *server_args(server), f"objects={objects}", f"from={from_pos}")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def write_json(path, doc):
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def fresh(mariadb_pair):
    name = f"tail{os.getpid() % 1000}_{next(_counter)}"
    b = mariadb_pair.business
    b.sql(f"DROP DATABASE IF EXISTS {name}")
    b.sql(f"CREATE DATABASE {name}")
    yield name
    b.sql("SET GLOBAL read_only = OFF")
    b.sql(f"DROP DATABASE IF EXISTS {name}")


def test_tail_read_revert_export(mariadb_pair, fresh, tmp_path):
    b = mariadb_pair.business
    b.sql(TABLE, database=fresh)
    b.sql("CREATE TABLE t_echo (id INT PRIMARY KEY, v INT)", database=fresh)
    b.sql("CREATE TABLE other (id INT PRIMARY KEY, v INT)", database=fresh)
    b.sql(f"""INSERT INTO t ({COLS}) VALUES
      (1, 'one', 'abc', X'0102', 1.5, 0.5, 2.5, 1, 1, '2020-01-01 00:00:00.000001', '2020-01-01 00:00:00', '01:00:00',
       'red', 'a', b'1', '{{"x": 1}}'),
      (2, 'two', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
      (3, 'three', 'x', X'', 0, 0, 0, 0, 0, '1000-01-01 00:00:00', NULL, '-838:59:59', 'blue', '', b'0', '[]'),
      (4, 'four', NULL, NULL, 4, NULL, NULL, 4, 4, NULL, NULL, NULL, 'green', 'b,c', b'1111111111', NULL)""",
          database=fresh)
    b.sql("INSERT INTO t_echo VALUES (1, 1)", database=fresh)
    objects = f"{fresh}.t,{fresh}.t_echo"
    snapshot = rows(b, fresh, "t")
    p = binlog_pos(b)

    c = conn(b, fresh)
    blob = bytes([0xff, 0x00, 0xfe, 0x80, 0x41])
    g1 = txn(c, (f"INSERT INTO t ({COLS}) VALUES (10, %s, %s, %s, '-1234.5678', 0.1, 0.1, 18446744073709551615, "
                 f"-32768, '2024-01-02 03:04:05.123456', '2024-06-30 23:59:59.999999', '838:59:58.999', 'green', "
                 f"'a,c', b'1010101010', '{{\"k\": [1, \"ü\"]}}')", ("ünïcødé 😀 漢字", "café", blob)))
    g2 = txn(c, "UPDATE t SET vc = CONCAT(vc, ' ✓'), d = d + 1, e = 'blue', b = b'11', j = '{}', si = 7 WHERE id = 1",
             "DELETE FROM t WHERE id = 2",
             "INSERT INTO t (id, vc) VALUES (11, 'eleven')")
    g_echo = txn(c, "UPDATE t_echo SET v = 100 WHERE id = 1", "INSERT INTO t_echo VALUES (2, 2)",
                 server_id=WRITER_TAG)
    txn(c, "INSERT INTO other VALUES (1, 1)")
    g3 = txn(c, "UPDATE t SET si = si + 1 WHERE id IN (3, 4)", "DELETE FROM t WHERE id = 11")
    g4 = txn(c, "INSERT INTO other VALUES (2, 2)", "UPDATE t SET vc = NULL, lat = NULL WHERE id = 1")
    g5 = txn(c, "UPDATE t SET id = 40 WHERE id = 4")
    c.close()
    assert g_echo.split("-")[1] == str(WRITER_TAG)
    after_writes = {t: rows(b, fresh, t) for t in ("t_echo", "other")}
    to = binlog_pos(b)

    tail = read_tail(b, objects, p)
    assert tail["from"] == p and tail["to"] == to
    assert [x["gtid"] for x in tail["transactions"]] == [g1, g2, g3, g4, g5]
    assert tail["tables"] == [f"{fresh}.t"]
    assert tail["rows"] == 1 + 3 + 3 + 1 + 1
    ops = [[(r["op"], r["key"]) for r in x["rows"]] for x in tail["transactions"]]
    assert ops == [[("insert", {"id": 10})],
                   [("update", {"id": 1}), ("delete", {"id": 2}), ("insert", {"id": 11})],
                   [("update", {"id": 3}), ("update", {"id": 4}), ("delete", {"id": 11})],
                   [("update", {"id": 1})],
                   [("update", {"id": 40})]]
    for x in tail["transactions"]:
        assert x["server_id"] == 10 and x["ddl"] == [] and x["tables"] == [f"{fresh}.t"]
        assert isinstance(x["timestamp"], int) and x["timestamp"] > 0
        assert all(r["table"] == f"{fresh}.t" for r in x["rows"])
    ins = tail["transactions"][0]["rows"][0]
    assert ins["before"] is None
    a = ins["after"]
    assert a["vc"] == "ünïcødé 😀 漢字"
    assert a["lat"] == {"hex": "café".encode("latin1").hex()}
    assert a["bl"] == {"hex": blob.hex()}
    assert a["d"] == "-1234.5678" and a["biu"] == {"uint": "18446744073709551615"} and a["si"] == -32768
    assert a["f"] == {"float": "0.100000001"} and a["dbl"] == {"double": "0.10000000000000001"}
    assert a["dtm"] == "2024-01-02 03:04:05.123456" and a["tm"] == "838:59:58.999"
    assert a["e"] == "green" and a["st"] == "a,c" and a["b"] == 0b1010101010
    assert json.loads(a["j"]) == {"k": [1, "ü"]}
    upd = tail["transactions"][1]["rows"][0]
    assert upd["before"]["vc"] == "one" and upd["after"]["vc"] == "one ✓"
    assert upd["before"]["bl"] == "\x01\x02" and upd["before"]["st"] == "a"
    dele = tail["transactions"][1]["rows"][1]
    assert dele["after"] is None and dele["before"]["vc"] == "two" and dele["before"]["d"] is None
    pk = tail["transactions"][4]["rows"][0]
    assert pk["before"]["id"] == 4 and pk["after"]["id"] == 40

    # export: same JSON, mode 0600, never overwrites
    tail_file = write_json(tmp_path / "read.json", tail)
    out = tmp_path / "export" / "tail.json"
    out.parent.mkdir()
    r = tool("export", f"tail={tail_file}", f"path={out}")
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text()) == tail
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    before_again = out.read_bytes()
    r = tool("export", f"tail={tail_file}", f"path={out}")
    assert r.returncode == 1 and "exists: not overwritten" in r.stderr
    assert out.read_bytes() == before_again
    assert sorted(os.listdir(out.parent)) == ["tail.json"]          # no temp file left behind

    # revert on a fenced (read_only) business: back to the snapshot at P
    b.sql("SET GLOBAL read_only = ON")
    r = tool("revert", *server_args(b), f"tail={out}")
    b.sql("SET GLOBAL read_only = OFF")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"reverted_transactions": 5, "reverted_rows": 9}
    assert rows(b, fresh, "t") == snapshot
    assert {t: rows(b, fresh, t) for t in ("t_echo", "other")} == after_writes   # not in the tail: kept
    # the revert's own transactions carry writer_tag: the tail read again is the same list
    again = read_tail(b, objects, p)
    assert [x["gtid"] for x in again["transactions"]] == [g1, g2, g3, g4, g5]
    assert again["transactions"] == tail["transactions"]
    # nothing after the end: an empty tail
    empty = read_tail(b, objects, binlog_pos(b))
    assert empty["transactions"] == [] and empty["rows"] == 0 and empty["tables"] == []


def test_tail_with_ddl_is_refused(mariadb_pair, fresh, tmp_path):
    b = mariadb_pair.business
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))", database=fresh)
    b.sql("INSERT INTO t VALUES (1, 'a')", database=fresh)
    p = binlog_pos(b)
    c = conn(b, fresh)
    g1 = txn(c, "INSERT INTO t VALUES (2, 'b')")
    with c.cursor() as cur:
        cur.execute("ALTER TABLE t ADD COLUMN extra INT DEFAULT 7")
        cur.execute("SELECT @@last_gtid")
        g_ddl = cur.fetchone()[0]
    g2 = txn(c, "UPDATE t SET v = 'z' WHERE id = 1")
    c.close()
    tail = read_tail(b, f"{fresh}.*", p)
    assert [x["gtid"] for x in tail["transactions"]] == [g1, g_ddl, g2]
    ddl = tail["transactions"][1]
    assert ddl["rows"] == [] and len(ddl["ddl"]) == 1 and "ADD COLUMN extra" in ddl["ddl"][0]
    assert ddl["tables"] == []
    now = rows(b, fresh, "t")
    r = tool("revert", *server_args(b), f"tail={write_json(tmp_path / 't.json', tail)}")
    assert r.returncode == 1
    assert "the tail contains DDL: revert it by hand" in r.stderr and g_ddl in r.stderr
    assert json.loads(r.stdout) == {"reverted_transactions": 0, "reverted_rows": 0}
    assert rows(b, fresh, "t") == now


def test_tail_revert_mismatch_rolls_back_that_transaction(mariadb_pair, fresh, tmp_path):
    b = mariadb_pair.business
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(10))", database=fresh)
    b.sql("INSERT INTO t VALUES (1, 'a'), (2, 'b')", database=fresh)
    p = binlog_pos(b)
    c = conn(b, fresh)
    g1 = txn(c, "INSERT INTO t VALUES (50, 'new')", "UPDATE t SET v = 'b2' WHERE id = 2")
    g2 = txn(c, "UPDATE t SET v = 'a2' WHERE id = 1")
    c.close()
    tail = read_tail(b, f"{fresh}.t", p)
    assert [x["gtid"] for x in tail["transactions"]] == [g1, g2]
    b.sql("DELETE FROM t WHERE id = 50", database=fresh)        # someone removed the row the revert deletes
    r = tool("revert", *server_args(b), f"tail={write_json(tmp_path / 't.json', tail)}")
    assert r.returncode == 1
    assert f"{fresh}.t" in r.stderr and '{"id":50}' in r.stderr and g1 in r.stderr, r.stderr
    assert json.loads(r.stdout) == {"reverted_transactions": 1, "reverted_rows": 1, "failed_gtid": g1}
    # g2 (newest) was reverted; g1 was rolled back whole: id 2 keeps its update
    assert rows(b, fresh, "t") == ((1, "a"), (2, "b2"))


def test_tail_read_bad_position(mariadb_pair):
    r = tool("read", *server_args(mariadb_pair.business), "objects=x.*", "from=not-a-gtid")
    assert r.returncode == 1 and "bad start position" in r.stderr


def test_tail_leaves_out_rows_rolled_back_to_a_savepoint(mariadb_pair, fresh):
    """Transactions that roll back to a savepoint after changing a MyISAM table carry the undone row events
    and a `ROLLBACK TO` in the binlog: the tail lists only the rows the transactions kept (before, the
    `ROLLBACK TO` ended the transaction there, so undone rows were listed and later kept ones missed)."""
    from test_forward_mariadb import SAVEPOINT_ROWS, SAVEPOINT_T2_ROWS, SAVEPOINT_TABLES, run_savepoint_transactions
    b = mariadb_pair.business
    for sql in SAVEPOINT_TABLES:
        b.sql(sql, database=fresh)
    p = binlog_pos(b)
    c = conn(b, fresh)
    run_savepoint_transactions(c)
    c.close()
    tail = read_tail(b, f"{fresh}.t,{fresh}.t2", p)
    listed = [(row["table"], row["key"]["id"], row["after"]["v"]) for txn in tail["transactions"]
              for row in txn["rows"]]
    want = [(f"{fresh}.t", i, v) for i, v in SAVEPOINT_ROWS if i < 30] + [(f"{fresh}.t", 30, "thirty")] + \
        [(f"{fresh}.t2", i, v) for i, v in SAVEPOINT_T2_ROWS] + [(f"{fresh}.t", i, v) for i, v in SAVEPOINT_ROWS if i >= 40]
    assert listed == want, listed
    assert tail["rows"] == len(want) and len(tail["transactions"]) == 7
