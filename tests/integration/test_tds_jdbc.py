"""Microsoft's JDBC driver (mssql-jdbc, pure-Java TDS, behind HikariCP) through the TDS proxy: a fourth
independent SQL Server client, and the first pooled one. What users of a Java application rely on: the same
answers through the proxy as direct (types, prepared statements as sp_prepexec/sp_execute, transactions,
batches, errors with their numbers); the server's own 18456 for a wrong password; and a Hikari pool whose
connections stay open across a switchover and a switchback, prepared statements included, with 0 errors and
every acknowledged write on the newly active side."""

from __future__ import annotations

import itertools
import re
import threading
import time

import pytest

from helpers import wait_for
from test_tds_switch import connect, doubles, execute, sessions, switchable  # noqa: F401 (fixtures)

# nosan: the proxy paths a JVM client drives run under ASan in test_tds_proxy.py and test_tds_switch.py
pytestmark = [pytest.mark.timeout(180), pytest.mark.nosan]

_counter = itertools.count()


def scenario(c) -> list:
    """One mixed JDBC session; the replies (ClientConnectionId, which names a connection, stripped)."""
    t = "dbo.j"
    steps = [
        c.query("SELECT 1 AS one, N'héllo ☃' AS s, CAST(12.50 AS decimal(10,2)) AS d, CAST(NULL AS int) AS n"),
        c.exec(f"CREATE TABLE {t} (id int NOT NULL PRIMARY KEY, v nvarchar(40), d decimal(10,2), dt datetime2, "
               "b varbinary(16), f float, u uniqueidentifier)"),
        c.prepare("ins", f"INSERT INTO {t} (id, v, d, dt, b, f, u) VALUES (?, ?, ?, ?, ?, ?, ?)"),
        c.execute("ins", 1, "one", "1.25", "2026-01-02 03:04:05.1234567", None, 0.5,
                  "6F9619FF-8B86-D011-B42D-00C04FC964FF"),
        c.execute("ins", 2, None, "-3.00", "1999-12-31 23:59:59", None, -1e300, None),
        c.batch(f"INSERT INTO {t} (id, v) VALUES (?, ?)", [[10, "a"], [11, "b"], [12, "c"]]),
        c.begin(), c.exec(f"UPDATE {t} SET v = N'rolled back' WHERE id = 1"), c.rollback(),
        c.begin(), c.exec(f"DELETE FROM {t} WHERE id = 12"), c.commit(),
        c.execute("ins", 1, "dup", "0", None, None, None, None),                 # 2627
        c.query(f"SELECT id, v, d, dt, f, u FROM {t} ORDER BY id"),
        c.query("SELECT * FROM no_such_table"),                                  # 208
        c.query("SELECT 1/0"),                                                   # 8134
        c.query(f"SELECT COUNT(*) FROM {t}"),
    ]
    for r in steps:
        if "message" in r:
            r["message"] = re.sub(r"\s*ClientConnectionId:\S+", "", r["message"])
    return steps


def test_mssql_jdbc_same_results_through_the_proxy_and_18456(daemon, doubles, real_client):  # noqa: F811
    business, _ = doubles
    db = f"jdbc{next(_counter)}"
    for name in (db, db + "p"):      # direct and through the proxy, each in a database of its own
        execute(business, f"CREATE DATABASE {name}")
    d = daemon(pair=f"p{db}", engine="sqlserver", business=f"{business.host}:{business.port}",
               dr=f"{doubles[1].host}:{doubles[1].port}", admin_user=business.user,
               admin_password=business.password)
    direct = scenario(real_client("java-mssql", business, business.user, business.password, db))
    proxied = scenario(real_client("java-mssql", d, business.user, business.password, db + "p"))
    assert direct == proxied
    codes = [r.get("code") for r in direct if not r["ok"]]
    assert codes == [2627, 208, 8134], direct
    assert direct[-1]["rows"] == [["4"]] and direct[-4]["rows"][0][:2] == ["1", "one"], direct
    for target in (business, d):
        with pytest.raises(AssertionError) as e:
            real_client("java-mssql", target, business.user, "wrong password", db)
        reply = e.value.reply
        assert reply["code"] == 18456 and reply["message"].startswith(f"Login failed for user '{business.user}'."), \
            reply


class PoolWorkload:
    """One mssql-jdbc process with a Hikari pool of 4 pinned connections, driven from one thread: inserts by a
    prepared statement (sp_prepexec once per connection, then sp_execute), every third one inside an explicit
    transaction, round robin over the connections. Every acknowledged insert is recorded with its time."""

    def __init__(self, client, db):
        self.c, self.db = client, db
        self.stop = threading.Event()
        self.errors: list = []
        self.acked: dict = {}
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        try:
            for i in range(4):
                self.check(self.c.prepare("ins", "INSERT INTO dbo.load (id, t, u) VALUES (?, ?, 0)", conn=i))
            n = 0
            while not self.stop.is_set():
                conn, rid = n % 4, f"j{n}"
                if n % 3 == 0:
                    self.check(self.c.begin(conn=conn))
                    self.check(self.c.execute("ins", rid, conn, conn=conn))
                    self.check(self.c.commit(conn=conn))
                else:
                    self.check(self.c.execute("ins", rid, conn, conn=conn))
                with self.lock:
                    self.acked[rid] = time.monotonic()
                n += 1
                time.sleep(0.01)
        except Exception as e:  # noqa: BLE001 - every client failure counts
            self.errors.append(f"{type(e).__name__}: {e}")

    def check(self, r):
        if not r.get("ok"):
            raise AssertionError(f"client error: {r}")

    def missing_on(self, srv, before):
        with self.lock:
            want = [k for k, at in self.acked.items() if at <= before]
        with connect(srv, self.db) as c, c.cursor() as cur:
            cur.execute("SELECT id FROM dbo.load")
            have = {r[0] for r in cur.fetchall()}
        return [k for k in want if k not in have]


def test_hikari_pool_goes_on_across_a_switchover_and_a_switchback(switchable, doubles, real_client):  # noqa: F811
    d, pname, db = switchable
    business, dr = doubles
    c = real_client("java-mssql", d, business.user, business.password, db, pool=4)
    w = PoolWorkload(c, db)
    w.thread.start()
    try:
        for op, side, srv in (("switchover", "dr", dr), ("switchback", "business", business)):
            seen = len(w.acked)
            wait_for(lambda: len(w.acked) >= seen + 30 or w.errors, timeout=60, interval=0.05,
                     what=f"the pool writing before the {op}")
            r = d.admin_ok(op, pair=pname)
            done = time.monotonic()
            assert r["active_side"] == side and r["moved_clients"] >= 4, r
            missing = w.missing_on(srv, done)
            assert not missing, f"acknowledged inserts missing on {side} after the {op}: {missing[:10]}"
            assert {s["side"] for s in sessions(d, pname)} == {side}
        seen = len(w.acked)
        wait_for(lambda: len(w.acked) >= seen + 30 or w.errors, timeout=60, interval=0.05,
                 what="the pool writing after the switchback")
    finally:
        w.stop.set()
        w.thread.join(60)
    assert not w.errors, w.errors
    assert not w.missing_on(business, time.monotonic())
    assert c.query("SELECT COUNT(*) FROM dbo.load", conn=3)["ok"]
