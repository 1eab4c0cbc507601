"""The Node.js mysql2 driver (3.25, tests/clients/node-mysql2, built and cached by
`scripts/install-test-clients.sh --only node-mysql2`) through a MariaDB pair's proxy: a client implementation
not tried before (JavaScript, its own protocol code, prepared statements through `execute`, a promise pool).
The same answers through the proxy as direct (types, prepared statements, a rolled back transaction,
multiple statements, errors 1062/1146/1064), 1045 for a wrong password, and a pool of 4 connections with 8
concurrent writers going on across a switchover and a switchback with 0 errors and every acknowledged write
on both sides. In `make conformance`."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from helpers import (APP_PASSWORD, APP_USER, app_user, assert_equal_eventually, instance, q, installed_client,
                     wait_for, wait_state)
from test_forward_mariadb import fresh  # noqa: F401 (fixture)

pytestmark = [pytest.mark.conformance, pytest.mark.nosan]

RUN_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def node_mysql2():
    return installed_client("node-mysql2")


@pytest.fixture
def pair(daemon, mariadb_pair, fresh):  # noqa: F811
    mariadb_pair.business.sql("CREATE TABLE t (id BIGINT PRIMARY KEY, v VARCHAR(40))", database=fresh)
    app_user(mariadb_pair, fresh)
    pname = f"n{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", txn_drain_ms=500)
    wait_state(d, pname, "running")
    d.admin_ok("create-reverse", pair=pname)
    return d, pname, fresh


def run(client, *args):
    r = subprocess.run([client, *map(str, args)], capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"exit {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_the_same_answers_as_direct_and_1045_for_a_wrong_password(node_mysql2, pair, mariadb_pair):
    """It also found a replay bug: mysql2 connects with collation 224 (utf8mb4_unicode_ci), which the binlog
    logs for its DDL; the writer's `SET character_set_client=224` was refused ("Unknown character set") and
    the forward instance failed on the first CREATE TABLE."""
    d, pname, db = pair
    via = run(node_mysql2, "answers", "127.0.0.1", d.port, APP_USER, APP_PASSWORD, db)
    rows = lambda side: q(side, "SELECT id, d, s, t, j, HEX(b), n FROM node_types ORDER BY id", db)
    wait_for(lambda: instance(d, pname)["write"]["position"] == instance(d, pname)["collection"]["position"] and
             rows(mariadb_pair.dr) == rows(mariadb_pair.business), 30, "node_types on DR")
    assert instance(d, pname)["state"] == "running" and instance(d, pname)["last_error"] is None, instance(d, pname)
    direct = run(node_mysql2, "answers", "127.0.0.1", mariadb_pair.business.port, APP_USER, APP_PASSWORD, db)
    assert via["ok"] is True, via
    assert via["rows"] == [{"id": 1, "d": "12345678901234.123456", "s": "naïve ✓ 𝄞", "t": "2026-12-05 01:02:03.456789",
                            "j": {"a": [1, 2]}, "b": "000102FF", "n": None}], via["rows"]
    assert via["afterRollback"] == "1" and via["params"] == [{"n": 42, "s": "x"}], via   # COUNT(*): BIGINT as text
    assert [e.get("errno") for e in via["errors"]] == [1062, 1146, 1064], via["errors"]
    assert via == direct
    bad = run(node_mysql2, "ping", "127.0.0.1", d.port, APP_USER, "wrong")
    bad_direct = run(node_mysql2, "ping", "127.0.0.1", mariadb_pair.business.port, APP_USER, "wrong")
    assert (bad["ok"], bad["errno"], bad["sqlState"]) == (False, 1045, "28000"), bad
    assert (bad["errno"], bad["sqlState"]) == (bad_direct["errno"], bad_direct["sqlState"])
    assert bad["message"].startswith(f"Access denied for user '{APP_USER}'@"), bad
    assert run(node_mysql2, "ping", "127.0.0.1", d.port, APP_USER, APP_PASSWORD) == {"ok": True}


def test_a_pool_writes_across_a_switchover_and_a_switchback(node_mysql2, pair, mariadb_pair):
    d, pname, db = pair
    p = subprocess.Popen([node_mysql2, "loop", "127.0.0.1", str(d.port), APP_USER, APP_PASSWORD, db, "4"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
        assert d.admin_ok("switchover", pair=pname)["active_side"] == "dr"
        time.sleep(1.5)
        assert d.admin_ok("switchback", pair=pname)["active_side"] == "business"
        time.sleep(1.5)
        out, err = p.communicate("stop\n", timeout=RUN_TIMEOUT_S)
    finally:
        if p.poll() is None:
            p.kill()
    res = json.loads(out.strip().splitlines()[-1])
    assert res["ok"] is True and res["errors"] == [], res["errors"][:5]
    acked = set(res["acked"])
    assert len(acked) > 100, len(acked)
    assert_equal_eventually(mariadb_pair, db)
    for side in mariadb_pair:
        ids = {r[0] for r in q(side, "SELECT id FROM t", db)}
        assert acked <= ids, sorted(acked - ids)[:10]
    assert d.pair_status(pname)["active_side"] == "business"
