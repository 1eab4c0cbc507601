"""Real Java (MariaDB Connector/J, MySQL Connector/J, HikariCP) and Go (go-sql-driver/mysql) clients give
the same replies through switchyardd as connected directly: prepared statements, batches, transactions,
errors with their codes, and a connection that stays usable after an error (TESTING.md, kinds of client).
These also prove the drivers of clients.py, which switchover tests use to drive a client step by step."""

from __future__ import annotations

import re

import pytest

from clients import KINDS, ClientError
from test_forward_mariadb import fresh  # noqa: F401 (fixture)
from test_switchover_mariadb import switchable  # noqa: F401 (fixture)
from helpers import APP_PASSWORD, APP_USER, q

DB = "rc"


@pytest.fixture(scope="module")
def rc_schema(mariadb_pair):
    for s in mariadb_pair:
        s.sql(f"CREATE DATABASE IF NOT EXISTS {DB}")
    return DB


def norm(reply: dict) -> dict:
    """A reply without what legitimately differs between two connections: MariaDB Connector/J puts the
    server's connection id in its messages, "(conn=123) Table ... doesn't exist"."""
    r = dict(reply)
    if isinstance(r.get("message"), str):
        r["message"] = re.sub(r"^\(conn=\d+\) ", "", r["message"])
    return r


def scenario(c, table: str) -> list:
    """One client's walk through what an application does; returns [(step, normalized reply)]."""
    out = []

    def step(name, reply):
        out.append((name, norm(reply)))
        return reply

    step("create", c.exec(f"CREATE OR REPLACE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(20), "
                          f"n DECIMAL(10,2))"))
    step("prepare ins", c.prepare("ins", f"INSERT INTO {table} VALUES (?, ?, ?)"))
    step("execute ins 1", c.execute("ins", 1, "one", "1.50"))
    step("execute ins 2", c.execute("ins", 2, None, 2))
    step("execute ins dup", c.execute("ins", 1, "again", None))
    step("batch", c.batch(f"INSERT INTO {table} VALUES (?, ?, ?)",
                          [[3, "three", "3.25"], [4, "four", None], [5, "fünf €", 5]]))
    step("select all", c.query(f"SELECT id, v, n FROM {table} ORDER BY id"))
    step("prepare sel", c.prepare("sel", f"SELECT v, n FROM {table} WHERE id = ?"))
    step("execute sel", c.execute("sel", 3))
    step("execute sel none", c.execute("sel", 99))
    step("begin 1", c.begin())
    step("update in tx", c.exec(f"UPDATE {table} SET v = 'changed' WHERE id = 1"))
    step("read own write", c.query(f"SELECT v FROM {table} WHERE id = 1"))
    step("rollback", c.rollback())
    step("after rollback", c.query(f"SELECT v FROM {table} WHERE id = 1"))
    step("begin 2", c.begin())
    step("delete in tx", c.exec(f"DELETE FROM {table} WHERE id = 5"))
    step("execute ins in tx", c.execute("ins", 6, "six", "6"))
    step("commit", c.commit())
    step("after commit", c.query(f"SELECT id FROM {table} ORDER BY id"))
    step("unknown table", c.query(f"SELECT * FROM {DB}.nope"))
    step("ping after error", c.ping())
    step("syntax error", c.exec("SELEC 1"))
    step("usable after error", c.query("SELECT 1 + 1 AS two, NULL AS nothing, 'x' AS s"))
    step("prepared still usable", c.execute("sel", 1))
    step("drop", c.exec(f"DROP TABLE {table}"))
    return out


def expect_scenario(steps: list, kind: str) -> None:
    """What a user relies on, whichever side: the rows, the counts, the error codes and texts."""
    s = dict(steps)
    for name, r in steps:
        if name not in ("execute ins dup", "unknown table", "syntax error"):
            assert r["ok"] is True, (name, r)
    assert s["execute ins 1"]["affected"] == 1
    assert s["execute ins dup"] == {**s["execute ins dup"], "ok": False, "code": 1062, "sqlstate": "23000"}
    assert s["execute ins dup"]["message"] == "Duplicate entry '1' for key 'PRIMARY'"
    assert s["batch"]["affected"] == 3 or s["batch"]["counts"] == [-2, -2, -2]   # -2: SUCCESS_NO_INFO
    assert s["select all"]["columns"] == ["id", "v", "n"]
    assert s["select all"]["rows"] == [["1", "one", "1.50"], ["2", None, "2.00"], ["3", "three", "3.25"],
                                       ["4", "four", None], ["5", "fünf €", "5.00"]]
    assert s["execute sel"]["rows"] == [["three", "3.25"]]
    assert s["execute sel none"]["rows"] == []
    assert s["read own write"]["rows"] == [["changed"]]
    assert s["after rollback"]["rows"] == [["one"]]
    assert s["after commit"]["rows"] == [["1"], ["2"], ["3"], ["4"], ["6"]]
    nope = s["unknown table"]
    assert (nope["ok"], nope["code"], nope["sqlstate"]) == (False, 1146, "42S02")
    assert nope["message"] == f"Table '{DB}.nope' doesn't exist"
    syn = s["syntax error"]
    assert (syn["ok"], syn["code"], syn["sqlstate"]) == (False, 1064, "42000")
    assert s["usable after error"]["rows"] == [["2", None, "x"]]
    assert s["prepared still usable"]["rows"] == [["one", "1.50"]]


@pytest.mark.parametrize("kind", KINDS)
def test_same_replies_direct_and_through_the_proxy(kind, mariadb_pair, rc_schema, daemon, real_client):
    proxy = daemon()
    table = f"{DB}.t_{kind.replace('-', '_')}"
    got = {}
    for side, target in (("direct", mariadb_pair.business), ("proxy", proxy)):
        c = real_client(kind, target, database=DB)
        got[side] = scenario(c, table)
        got[side + " ready"] = {k: c.ready[k] for k in ("ok", "driver_version", "server_version", "conns")}
        c.close()
        expect_scenario(got[side], kind)
    assert got["proxy ready"] == got["direct ready"]
    for (name, direct), (_, via) in zip(got["direct"], got["proxy"]):
        assert via == direct, name


@pytest.mark.parametrize("kind", KINDS)
def test_pool_of_pinned_connections(kind, mariadb_pair, rc_schema, daemon, real_client):
    """Two connections out of the pool (HikariCP / database/sql) through the proxy: init SQL ran on each,
    they are distinct sessions, an uncommitted row is invisible to the other, and returning a connection
    with an open transaction to the pool rolls it back."""
    proxy = daemon()
    table = f"{DB}.p_{kind.replace('-', '_')}"
    c = real_client(kind, proxy, database=DB, pool=2, init_sql="SET SESSION sql_mode = 'ANSI_QUOTES'")
    assert c.ready["conns"] == 2
    assert c.exec(f"CREATE OR REPLACE TABLE {table} (id INT PRIMARY KEY)")["ok"]
    ids = []
    for i in (0, 1):
        r = c.query("SELECT CONNECTION_ID(), @@SESSION.sql_mode", conn=i)
        assert r["ok"] and r["rows"][0][1] == "ANSI_QUOTES", r
        ids.append(r["rows"][0][0])
    assert ids[0] != ids[1]
    assert c.begin(conn=0)["ok"]
    assert c.exec(f"INSERT INTO {table} VALUES (1)", conn=0)["affected"] == 1
    assert c.query(f"SELECT COUNT(*) FROM {table}", conn=1)["rows"] == [["0"]]
    assert c.commit(conn=0)["ok"]
    assert c.query(f"SELECT COUNT(*) FROM {table}", conn=1)["rows"] == [["1"]]
    assert c.begin(conn=1)["ok"]
    assert c.exec(f"INSERT INTO {table} VALUES (2)", conn=1)["affected"] == 1
    assert c.recycle(conn=1)["ok"]                          # back to the pool mid-transaction
    assert c.query(f"SELECT COUNT(*) FROM {table}", conn=0)["rows"] == [["1"]]
    r = c.query("SELECT @@SESSION.sql_mode, @@autocommit", conn=1)
    assert r["rows"] == [["ANSI_QUOTES", "1"]], r
    assert c.exec(f"DROP TABLE {table}")["ok"]


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_password_fails_the_same_way(kind, mariadb_pair, daemon, real_client):
    """A refused login raises ClientError carrying the driver's reply: the same code and text either way."""
    proxy = daemon()
    replies = {}
    for side, target in (("direct", mariadb_pair.business), ("proxy", proxy)):
        with pytest.raises(ClientError) as ei:
            real_client(kind, target, password="not-the-password")
        replies[side] = norm(ei.value.reply)
    assert replies["direct"]["code"] == 1045 and replies["direct"]["sqlstate"] == "28000", replies
    assert replies["proxy"] == replies["direct"]


def test_command_timeout_kills_the_client(mariadb_pair, real_client):
    c = real_client("go", mariadb_pair.business)
    with pytest.raises(ClientError, match="no reply to query within"):
        c.query("SELECT SLEEP(5)", timeout=0.5)
    with pytest.raises(ClientError, match="exited"):
        c.ping()
    with pytest.raises(ValueError, match="unknown op"):
        real_client("go", mariadb_pair.business).send("no-such-op")


@pytest.mark.parametrize("kind", KINDS)
def test_pooled_client_across_a_switchover(kind, switchable, mariadb_pair, real_client):
    """The reason these drivers exist: two pooled connections of a real driver stay open across a
    switchover. The idle one keeps its server-side prepared statement and now writes on DR; the one idle
    inside a transaction gets Switchyard's 1213 until it rolls back, then works (CONTRACT.md)."""
    d, pname, db = switchable
    b, dr = mariadb_pair
    c = real_client(kind, d, user=APP_USER, password=APP_PASSWORD, database=db, pool=2)
    assert c.prepare("ins", "INSERT INTO t VALUES (?, ?)", conn=0)["ok"]
    assert c.execute("ins", 2, "before", conn=0) == {"ok": True, "affected": 1}
    assert c.begin(conn=1)["ok"]
    assert c.exec("INSERT INTO t VALUES (50, 'in an open transaction')", conn=1)["affected"] == 1
    r = d.admin_ok("switchover", pair=pname)
    assert r["active_side"] == "dr" and r["moved_clients"] >= 2 and r["aborted_transactions"] == 1, r
    assert c.execute("ins", 3, "after", conn=0) == {"ok": True, "affected": 1}
    assert c.query("SELECT @@global.read_only", conn=0)["rows"] == [["0"]]          # it ran on DR
    r = c.exec("INSERT INTO t VALUES (51, 'x')", conn=1)
    assert (r["ok"], r["code"], r["sqlstate"]) == (False, 1213, "40001"), r
    assert norm(r)["message"] == ("Switchyard: the transaction was rolled back by a switchover; send ROLLBACK "
                                  "and run it again")
    assert c.rollback(conn=1)["ok"]
    assert c.exec("INSERT INTO t VALUES (52, 'after rollback')", conn=1)["affected"] == 1
    assert q(dr, "SELECT id, v FROM t ORDER BY id", db) == ((1, "one"), (2, "before"), (3, "after"),
                                                             (52, "after rollback"))


@pytest.mark.parametrize("kind", ["java-mariadb", "java-mysql", "go"])
def test_session_variables_of_a_pooled_init_sql_survive_a_switch(kind, switchable, mariadb_pair, real_client):
    """Issue 13.1: MariaDB Connector/J sets its own session_track_system_variables at connect; a pool's init
    SQL then set sql_mode, group_concat_max_len, max_statement_time and foreign_key_checks, and after a
    switch the session had the server's defaults again. Every driver keeps them now."""
    d, pname, db = switchable
    init = ("SET sql_mode='STRICT_ALL_TABLES', group_concat_max_len=4242, max_statement_time=7, "
            "foreign_key_checks=0, time_zone='+02:00', @tag='pool-init'")
    c = real_client(kind, d, user=APP_USER, password=APP_PASSWORD, database=db, pool=2, init_sql=init)
    sql = ("SELECT @@sql_mode, @@group_concat_max_len, @@max_statement_time = 7, @@foreign_key_checks, @@time_zone, "
           "@tag, @@global.read_only")
    want = ["STRICT_ALL_TABLES", "4242", "1", "0", "+02:00", "pool-init"]
    for i in (0, 1):
        assert c.query(sql, conn=i)["rows"][0][:6] == want
    assert d.admin_ok("switchover", pair=pname)["moved_clients"] >= 2
    for i in (0, 1):
        row = c.query(sql, conn=i)["rows"][0]
        assert row[:6] == want and row[6] == "0", (i, row)             # the same state, on DR


def test_go_commit_after_a_switch_abort_leaves_the_connection_usable(switchable, mariadb_pair, real_client):
    """Issue 13.3: database/sql treats a failed COMMIT as the end of the transaction (its Rollback() then
    sends nothing); the proxy used to answer every later statement on that connection with 1213."""
    d, pname, db = switchable
    c = real_client("go", d, user=APP_USER, password=APP_PASSWORD, database=db)
    assert c.begin()["ok"]
    assert c.exec("INSERT INTO t VALUES (90, 'aborted')")["affected"] == 1
    assert d.admin_ok("switchover", pair=pname)["aborted_transactions"] == 1
    r = c.commit()
    assert (r["ok"], r.get("code")) == (False, 1213), r
    # database/sql: the transaction is over (a Rollback() would return ErrTxDone and send nothing)
    for i in range(3):
        assert c.exec(f"INSERT INTO t VALUES ({91 + i}, 'after')")["affected"] == 1
    assert q(mariadb_pair.dr, "SELECT id FROM t WHERE id >= 90 ORDER BY id", db) == ((91,), (92,), (93,))
