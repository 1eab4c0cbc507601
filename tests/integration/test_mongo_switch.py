"""Switchover and switchback of an `engine = mongodb` pair through the proxy (proxy/mongo_switch.c), on two
real FerretDB servers with a forward instance (objects = DB.*) and a reverse one: clients stay connected and
go on on the other side. What users rely on: 0 client errors and every acknowledged write on the newly active
side under a pymongo workload; a cursor open across a switch ends with 43 and Switchyard's message (never
another server's data); pymongo 3.11 and libmongoc go on; a wrong password is still 18 afterwards; a
transaction FerretDB refuses (9) leaves nothing open for a switch to wait for."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import re
import statistics
import subprocess
import threading
import time

import pytest

import sandbox
from test_ferretdb_sandbox import ferretdb_pair  # noqa: F401 (fixture: this module's own servers; a
# shared pair's oplog filled by other modules makes every oplog read slow: FerretDB reads it whole)
from conftest import BUILD_DIR
from helpers import wait_for, wait_reverse
from test_mongo_sync import wait_collecting

pymongo = sandbox.pymongo4()
from pymongo.errors import OperationFailure  # noqa: E402

wait_until = functools.partial(wait_for, timeout=60.0, interval=0.05)
_counter = itertools.count()
APP_USER, APP_PASSWORD = "swapp", "sw-pw ✓"


def app_client(port, **kw):
    kw.setdefault("serverSelectionTimeoutMS", 20000)
    return pymongo.MongoClient("127.0.0.1", port, username=kw.pop("username", APP_USER),
                               password=kw.pop("password", APP_PASSWORD), authSource="admin",
                               authMechanism="SCRAM-SHA-256", **kw)


def sessions(d, pname):
    return d.admin_ok("clients", pair=pname)["clients"]


def can_login(server, user, password):
    try:
        with pymongo.MongoClient(server.host, server.port, username=user, password=password, authSource="admin",
                                 directConnection=True, serverSelectionTimeoutMS=3000) as c:
            c.admin.command("ping")
        return True
    except OperationFailure:
        return False


@contextlib.contextmanager
def switchable_pair(mongo_daemon, ferretdb_pair, env_of=lambda db: None, **pair_keys):
    """A mongodb pair with a running forward instance, a collecting reverse instance and an application user
    created on business after the forward instance started (its credential reaches DR through the oplog)."""
    db = f"msw{os.getpid() % 1000}_{next(_counter)}"
    for s in ferretdb_pair:
        with s.client() as c:
            c.drop_database(db)
        try:
            s.drop_user(APP_USER)
        except OperationFailure:
            pass
    with ferretdb_pair.business.client() as c:
        c[db].docs.insert_one({"_id": "seed"})
    pname = f"p{db}"
    d = mongo_daemon(pair=pname, objects=f"{db}.*", txn_drain_ms=500, max_hold_ms=10000, drain_timeout_ms=20000,
                     env=env_of(db), **pair_keys)
    wait_collecting(d, pname)
    ferretdb_pair.business.create_user(APP_USER, APP_PASSWORD, mechanisms=["SCRAM-SHA-256"])
    wait_until(lambda: can_login(ferretdb_pair.dr, APP_USER, APP_PASSWORD), what="the app user on DR")
    with ferretdb_pair.business.client() as c:
        c[db].docs.insert_one({"_id": "seed2"})
    with ferretdb_pair.dr.client() as c:
        wait_until(lambda: c[db].docs.count_documents({"_id": "seed2"}) == 1, what="forward applied")
    d.admin_ok("create-reverse", pair=pname)
    wait_reverse(d, pname, "collecting")
    yield d, pname, db
    for s in ferretdb_pair:
        try:
            s.drop_user(APP_USER)
        except OperationFailure:
            pass
        with s.client() as c:
            c.drop_database(db)


@pytest.fixture
def switchable(mongo_daemon, ferretdb_pair):
    with switchable_pair(mongo_daemon, ferretdb_pair) as s:
        yield s


class Workload:
    """8 threads, each its own pymongo client through the proxy: insert a document, then $inc a counter of
    one of its own; every acknowledged write and every operation's latency recorded.

    Each thread waits think_s between rounds (~30 writes/s in all). serialized: one write on the server at a
    time (a lock around each operation; the 8 clients and their connections stay concurrent at the proxy);
    unserialized: concurrent writers, under which FerretDB stores oplog entries out of ts order (the
    collector's window and the fence's mark handle it: docs/mongodb.md). The readers measure the pause: their requests wait in the hold like everyone's.
    """

    def __init__(self, port, db, threads=8, think_s=0.5, serialized=True, readers=4):
        self.port, self.db, self.think_s = port, db, think_s
        self.wlock = threading.Lock() if serialized else contextlib.nullcontext()
        self.stop = threading.Event()
        self.errors: list = []
        self.marks: list = []
        self.lock = threading.Lock()
        self.inserted: dict = {}       # _id -> time acknowledged
        self.incs: dict = {}           # _id -> (acknowledged $inc count, time of the last)
        self.lat: list = []            # (client, start, seconds) of every operation
        self.threads = [threading.Thread(target=self.run, args=(t,), daemon=True) for t in range(threads)]
        # readers: find_one by _id without pause (no oplog entries, so as fast as the proxy lets them): the
        # client-observed pause of a switch
        self.threads += [threading.Thread(target=self.read, args=(100 + t,), daemon=True) for t in range(readers)]

    def read(self, t):
        try:
            c = app_client(self.port)
            coll = c[self.db].load
            while not self.stop.is_set():
                t0 = time.monotonic()
                coll.find_one({"_id": "t0-0"})
                with self.lock:
                    self.lat.append((t, t0, time.monotonic() - t0))
                self.stop.wait(0.005)
            c.close()
        except Exception as e:  # noqa: BLE001 - every client error counts
            with self.lock:
                self.errors.append(f"reader {t}: {type(e).__name__}: {e}")

    def run(self, t):
        try:
            c = app_client(self.port)
            coll = c[self.db].load
            n = 0
            mine = []
            while not self.stop.is_set():
                _id = f"t{t}-{n}"
                with self.wlock:
                    t0 = time.monotonic()
                    coll.insert_one({"_id": _id, "t": t, "n": n, "u": 0})
                    t1 = time.monotonic()
                mine.append(_id)
                target = mine[(n * 7) % len(mine)]
                with self.wlock:
                    t1b = time.monotonic()
                    coll.update_one({"_id": target}, {"$inc": {"u": 1}})
                    t2 = time.monotonic()
                with self.lock:
                    self.inserted[_id] = t1
                    k, _ = self.incs.get(target, (0, 0))
                    self.incs[target] = (k + 1, t2)
                    self.lat.append((t, t0, t1 - t0))
                    self.lat.append((t, t1b, t2 - t1b))
                n += 1
                self.stop.wait(self.think_s)
            c.close()
        except Exception as e:  # noqa: BLE001 - every client error counts
            with self.lock:
                self.errors.append(f"thread {t}: {type(e).__name__}: {e}")

    def __enter__(self):
        for th in self.threads:
            th.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        for th in self.threads:
            th.join(60)

    def acknowledged_before(self, t):
        with self.lock:
            ins = [k for k, at in self.inserted.items() if at <= t]
            incs = {k: v for k, (v, at) in self.incs.items() if at <= t}
        return ins, incs

    def spikes(self, t_from, t_to):
        """Per client, its longest operation (ms) among those running at some point in [t_from, t_to]."""
        worst: dict = {}
        with self.lock:
            for (t, t0, sec) in self.lat:
                if t0 <= t_to and t0 + sec >= t_from:
                    worst[t] = max(worst.get(t, 0.0), sec * 1000)
        return list(worst.values())


def acknowledged_missing(server, db, w, t):
    """What was acknowledged to a client by time t and is not on server: ([_id inserted], [(_id, $inc
    acknowledged, u there)]), and the numbers checked."""
    ins, incs = w.acknowledged_before(t)
    with server.client() as c:
        docs = {x["_id"]: x["u"] for x in c[db].load.find({}, {"u": 1})}
    missing = [k for k in ins if k not in docs]
    short = [(k, v, docs.get(k)) for k, v in incs.items() if docs.get(k, -1) < v]
    return missing, short, len(ins), len(incs)


def pause_figures(w, t0, t1):
    """p50 / max over the clients of their worst latency during the switch command."""
    lat = w.spikes(t0, t1)
    return {"clients": len(lat), "p50_ms": round(statistics.median(lat), 1) if lat else None,
            "max_ms": round(max(lat), 1) if lat else None}


@pytest.mark.parametrize("serialized", [
    True,
    False,
])
def test_switchover_and_switchback_under_workload(switchable, ferretdb_pair, capsys, serialized):
    d, pname, db = switchable
    b, dr = ferretdb_pair
    figures, lost = {}, []
    with Workload(d.port, db, serialized=serialized) as w:
        wait_until(lambda: len(w.inserted) >= 60 or w.errors, what="the workload running")
        for op, active, new_side in (("switchover", "dr", dr), ("switchback", "business", b)):
            t0 = time.monotonic()
            reply = d.admin(op, pair=pname)
            t1 = time.monotonic()
            w.marks.append((op, t0, t1))
            if not reply.get("ok"):
                print("\nSTATUS", json.dumps(d.pair_status(pname)["instances"]))
            assert reply.get("ok"), reply
            r = reply["result"]
            assert r["active_side"] == active and r["moved_clients"] >= 8, r
            # the ack ledger: every write acknowledged through the proxy was read from the oplog and drained
            assert re.fullmatch(r"\d+:\d+", r["ack_ledger_position"]), r
            missing, short, n_ins, n_inc = acknowledged_missing(new_side, db, w, t1)
            if missing or short:
                lost.append({"after": op, "missing_inserts": missing[:10], "short_incs": short[:10],
                             "acked_at": [round(w.inserted[k] - t0, 3) for k in missing[:10]]})
            seen = len(w.inserted)
            wait_until(lambda: len(w.inserted) >= seen + 60 or w.errors, what=f"the workload going on after {op}")
            figures[op] = {"pause_ms": r["pause_ms"], "steps": r["steps"], "moved": r["moved_clients"],
                           "checked_inserts": n_ins, "checked_incs": n_inc,
                           "client_pause": pause_figures(w, t0, t1)}
    assert not w.errors, w.errors
    assert all(x["side"] == "business" for x in sessions(d, pname))
    with capsys.disabled():
        print("\nmongodb switch figures:", json.dumps(figures))
    for op in figures.values():
        assert op["client_pause"]["clients"] >= 4 and op["client_pause"]["max_ms"] < 10000, figures
    # every write acknowledged before a switch is on the newly active side when the switch returns
    assert not lost, f"acknowledged writes missing on the new side after a switch: {lost}"


def test_cursor_open_across_a_switch_gets_43(switchable, ferretdb_pair):
    d, pname, db = switchable
    with app_client(d.port) as c:
        coll = c[db].cur
        coll.insert_many([{"_id": i} for i in range(50)])
        cur = coll.find({}, sort=[("_id", 1)], batch_size=5)
        assert [next(cur)["_id"] for _ in range(5)] == list(range(5))
        mine = [s for s in sessions(d, pname) if s["open_cursors"] > 0]
        assert len(mine) == 1 and mine[0]["movable"] and not mine[0]["in_transaction"], sessions(d, pname)
        # a cursor closed by the client is forgotten (killCursors)
        other = coll.find({}, batch_size=2)
        next(other)
        assert sum(s["open_cursors"] for s in sessions(d, pname)) == 2
        other.close()
        wait_until(lambda: sum(s["open_cursors"] for s in sessions(d, pname)) == 1, what="killCursors seen")
        r = d.admin_ok("switchover", pair=pname)
        assert r["active_side"] == "dr" and r["steps"]["quiesce_ms"] >= 450, r  # waited txn_drain_ms for it
        assert "1 cursor(s) still open after txn_drain_ms" in d.log()
        with pytest.raises(OperationFailure) as e:
            list(cur)
        assert e.value.code == 43, e.value.details
        assert "opened on the other database before a Switchyard switchover" in e.value.details["errmsg"]
        # the same client goes on, on DR
        assert [x["_id"] for x in coll.find({"_id": {"$lt": 3}}, sort=[("_id", 1)])] == [0, 1, 2]
        coll.insert_one({"_id": "after"})
    with ferretdb_pair.dr.client() as c:
        assert c[db].cur.count_documents({"_id": "after"}) == 1


def test_exhausted_cursor_does_not_delay_a_switch(switchable):
    d, pname, db = switchable
    with app_client(d.port) as c:
        coll = c[db].cur2
        coll.insert_many([{"_id": i} for i in range(30)])
        assert len(list(coll.find({}, batch_size=4))) == 30
        assert sum(s["open_cursors"] for s in sessions(d, pname)) == 0
        r = d.admin_ok("switchover", pair=pname)
        assert r["steps"]["quiesce_ms"] < 400, r                 # nothing waited for (txn_drain_ms = 500)
        coll.insert_one({"_id": "after"})             # the same client, on DR
        assert coll.find_one({"_id": "after"}) == {"_id": "after"}


def test_refused_transaction_leaves_nothing_open(switchable):
    """FerretDB answers startTransaction with 9: the proxy does not count it as open."""
    d, pname, db = switchable
    with app_client(d.port) as c:
        coll = c[db].txn
        with c.start_session() as s:
            with pytest.raises(OperationFailure):
                with s.start_transaction():
                    coll.insert_one({"_id": 1}, session=s)
        assert not any(x["in_transaction"] for x in sessions(d, pname)), sessions(d, pname)
        r = d.admin_ok("switchover", pair=pname)
        assert r["steps"]["quiesce_ms"] < 400 and r["aborted_transactions"] == 0, r
        coll.insert_one({"_id": 2})


def test_wrong_password_still_18_after_a_switch(switchable, ferretdb_pair):
    d, pname, db = switchable
    d.admin_ok("switchover", pair=pname)
    with app_client(d.port) as c:
        c[db].pw.insert_one({"_id": 1})
        assert c.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"] == [
            {"user": APP_USER, "db": "admin"}]
    with pytest.raises(OperationFailure) as e:
        with app_client(d.port, password="wrong") as c:
            c.admin.command("ping")
    assert e.value.code == 18 and e.value.details["errmsg"] == "Authentication failed."


PYMONGO3_ACROSS = """
import os, time
c = pymongo.MongoClient("127.0.0.1", ARGS["port"], username=ARGS["user"], password=ARGS["password"],
                        authSource="admin", authMechanism="SCRAM-SHA-256", serverSelectionTimeoutMS=20000)
coll = c[ARGS["db"]].py3
coll.insert_many([{"_id": i} for i in range(5)])
open(ARGS["ready"], "w").close()
deadline = time.time() + 60
while not os.path.exists(ARGS["go"]) and time.time() < deadline:
    time.sleep(0.02)
coll.insert_many([{"_id": i} for i in range(5, 10)])
RESULT = [x["_id"] for x in coll.find({"_id": {"$gte": 5}}, sort=[("_id", 1)], batch_size=2)]
"""


def test_pymongo3_and_libmongoc_keep_working_across_a_switch(switchable, ferretdb_pair, tmp_path):
    d, pname, db = switchable
    ready, go = tmp_path / "ready", tmp_path / "go"
    out: dict = {}

    def py3():
        try:
            out["py3"] = sandbox.run_pymongo3(PYMONGO3_ACROSS, {"port": d.port, "user": APP_USER, "password":
                                              APP_PASSWORD, "db": db, "ready": str(ready), "go": str(go)},
                                              timeout=120)
        except Exception as e:  # noqa: BLE001
            out["py3"] = repr(e)

    th = threading.Thread(target=py3)
    th.start()
    from urllib.parse import quote
    uri = (f"mongodb://{quote(APP_USER)}:{quote(APP_PASSWORD)}@127.0.0.1:{d.port}/?authSource=admin"
           f"&authMechanism=SCRAM-SHA-256")
    p = subprocess.Popen([str(BUILD_DIR / "sy_mongo_client"), uri, db, "cdriver", "6", "pause"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        wait_until(ready.exists, what="the pymongo 3.11 client ready")
        r = d.admin_ok("switchover", pair=pname)
        assert r["active_side"] == "dr" and r["moved_clients"] >= 2, r
        go.touch()
        c_out, _ = p.communicate("go\n", timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    th.join(120)
    assert out["py3"] == list(range(5, 10)), out
    assert p.returncode == 0, c_out
    assert c_out.rstrip().endswith("count 6"), c_out
    with ferretdb_pair.dr.client() as c:              # written after the switch: on DR directly
        assert c[db].py3.count_documents({"_id": {"$gte": 5}}) == 5
        assert c[db].cdriver.count_documents({}) == 6


def test_user_with_another_salt_on_dr_refuses_the_switch(switchable, ferretdb_pair):
    """A user whose password was set again on DR (same password, another salt: updateUser makes a new one)
    has another credential there: the proxy's login on DR from ClientKey is refused, the switchover is refused
    naming the session, and the client goes on on business."""
    d, pname, db = switchable
    user, pw = "swsalt", "salt-pw"
    ferretdb_pair.business.create_user(user, pw, mechanisms=["SCRAM-SHA-256"])
    wait_until(lambda: can_login(ferretdb_pair.dr, user, pw), what="the user copied to DR")
    with ferretdb_pair.dr.client() as c:
        c.admin.command({"updateUser": user, "pwd": pw, "mechanisms": ["SCRAM-SHA-256"]})
    b_cred = ferretdb_pair.business.user_credentials(user)["credentials"]["SCRAM-SHA-256"]
    dr_cred = ferretdb_pair.dr.user_credentials(user)["credentials"]["SCRAM-SHA-256"]
    assert b_cred["salt"] != dr_cred["salt"]
    try:
        with app_client(d.port, username=user, password=pw) as c:
            c[db].salt.insert_one({"_id": 1})
            reply = d.admin("switchover", pair=pname)
            assert reply["ok"] is False and reply["error"]["code"] == "unmovable_sessions", reply
            assert "refused the login from ClientKey" in reply["error"]["message"], reply
            assert any(x["user"] == user for x in reply["error"]["sessions"]), reply
            assert d.pair_status(pname)["active_side"] == "business"
            c[db].salt.insert_one({"_id": 2})           # the same client goes on on business
            assert c[db].salt.count_documents({}) == 2
            assert all(x["side"] == "business" for x in sessions(d, pname))
    finally:
        for s in ferretdb_pair:
            try:
                s.drop_user(user)
            except OperationFailure:
                pass


def test_acknowledged_write_missing_from_the_oplog_refuses_the_switch(mongo_daemon, ferretdb_pair):
    """FerretDB acknowledges a write whose oplog entry it could not store (it logs the error and answers ok):
    the ack ledger (engine/mongo_acks.h) sees an acknowledged document the collector never read, and the switch
    refuses to flip instead of losing it. The lost entry is simulated: SY_LOSE_OPLOG_ENTRY makes the collector
    drop the first entry of one collection. The operator's repair: write the document again (on_conflict =
    overwrite: DR never had it, which the default policy would stop the writer for), then restart the forward
    instance, which begins a new ledger. A findAndModify (an upsert, whose _id its reply's
    lastErrorObject.upserted names) is in the ledger too."""
    env = lambda db: {"SY_LOSE_OPLOG_ENTRY": f"{db}.famlost,{db}.lost"}  # noqa: E731
    with switchable_pair(mongo_daemon, ferretdb_pair, env_of=env, on_conflict="overwrite") as (d, pname, db):
        with app_client(d.port) as c:
            def refused_after(coll, marker, pending):
                """The write to coll is on business, its entry dropped: the switch is refused."""
                c[db].docs.insert_one({"_id": marker})
                with ferretdb_pair.dr.client() as drc:
                    wait_until(lambda: drc[db].docs.count_documents({"_id": marker}) == 1, what="forward applied")
                    assert drc[db][coll].count_documents({}) == 0
                r = d.admin("switchover", pair=pname)
                assert r["ok"] is False and r["error"]["code"] == "ledger_ahead_of_drain", r
                assert f"{pending} acknowledged write(s) not yet read from the oplog" in r["error"]["message"], r

            assert c[db].famlost.find_one_and_update({"_id": 1}, {"$set": {"v": 1}}, upsert=True) is None
            refused_after("famlost", "after-fam", 1)
            c[db].lost.insert_one({"_id": 1, "v": 1})            # acknowledged; its entry is dropped
            refused_after("lost", "after", 2)
            assert d.pair_status(pname)["active_side"] == "business"
            c[db].docs.insert_one({"_id": "still-on-business"})  # the clients go on, on business
            with ferretdb_pair.business.client() as bc:
                assert bc[db].docs.count_documents({"_id": "still-on-business"}) == 1
            c[db].famlost.replace_one({"_id": 1}, {"v": 2})
            c[db].lost.update_one({"_id": 1}, {"$set": {"v": 2}})  # its new entry carries the document
            with ferretdb_pair.dr.client() as drc:
                wait_until(lambda: drc[db].lost.find_one({"_id": 1}) == {"_id": 1, "v": 2}, what="the document on DR")
            # still refused: the update's entry matched the insert's pending acknowledgement, and the update's
            # own acknowledgement has no entry left to match
            r = d.admin("switchover", pair=pname)
            assert r["ok"] is False and r["error"]["code"] == "ledger_ahead_of_drain", r
            d.admin_ok("pause", instance=f"{pname}/forward")
            d.admin_ok("start", instance=f"{pname}/forward")
            wait_collecting(d, pname)
            c[db].docs.insert_one({"_id": "after-restart"})
            r = d.admin_ok("switchover", pair=pname)
            assert r["active_side"] == "dr" and re.fullmatch(r"\d+:\d+", r["ack_ledger_position"]), r
            assert c[db].lost.find_one({"_id": 1}) == {"_id": 1, "v": 2}
            assert c[db].famlost.find_one({"_id": 1}) == {"_id": 1, "v": 2}


def test_failover_under_workload_every_ack_on_dr_or_in_the_tail(switchable, ferretdb_pair, tmp_path):
    """kill -9 of the business FerretDB under 4 pymongo writers through the proxy; failover: the clients go on
    on DR (they retry after errors while business is dead), and every insert acknowledged to them is on DR or
    in the exported tail (business's oplog entries the forward instance never collected). The failover's ack
    ledger names what was acknowledged and not collected."""
    d, pname, db = switchable
    b, dr = ferretdb_pair
    acked: dict = {}                  # _id -> "before" | "after" (the failover command's return)
    errors: list = []
    phase = {"now": "before"}
    stop = threading.Event()
    lock = threading.Lock()

    def writer(t):
        c = app_client(d.port, serverSelectionTimeoutMS=30000, retryWrites=False)
        n = 0
        while not stop.is_set():
            _id = f"f{t}-{n}"
            n += 1
            try:
                c[db].fo.insert_one({"_id": _id})
                with lock:
                    acked[_id] = phase["now"]
            except Exception as e:  # noqa: BLE001 - expected while business is dead; counted
                with lock:
                    errors.append(f"{type(e).__name__}: {e}")
                stop.wait(0.05)
            stop.wait(0.01)
        c.close()

    threads = [threading.Thread(target=writer, args=(t,), daemon=True) for t in range(4)]
    for th in threads:
        th.start()
    try:
        wait_until(lambda: len(acked) >= 80, what="the writers running")
        b.kill9()
        r = d.admin_ok("failover", pair=pname)
        phase["now"] = "after"
        assert r["active_side"] == "dr", r
        ledger = r["ack_ledger_position"]
        wait_until(lambda: sum(1 for v in acked.values() if v == "after") >= 40, what="the writers going on, on DR")
    finally:
        stop.set()
        for th in threads:
            th.join(30)
        b.start()
    tail = wait_until(lambda: d.pair_status(pname).get("tail", {}).get("state") == "open" and
                      d.pair_status(pname)["tail"], what="tail reported")
    export = tmp_path / "tail.json"
    res = d.ctl("resolve-tail", pname, "--export", str(export))
    assert res.returncode == 0, res.stdout + res.stderr
    in_tail = {row["after"]["_id"] for t in json.loads(export.read_text())["transactions"] for row in t["rows"]
               if row.get("after")}
    with dr.client() as c:
        on_dr = {x["_id"] for x in c[db].fo.find({}, {"_id": 1})}
    lost = sorted(k for k in acked if k not in on_dr and k not in in_tail)
    # the ledger names exactly the acknowledged inserts the forward instance never read (they are in the tail)
    uncollected = [k for k, v in acked.items() if v == "before" and k not in on_dr]
    m = re.fullmatch(r"\d+:\d+(?: and (\d+) acknowledged write\(s\) not yet read from the oplog)?", ledger)
    assert m and int(m.group(1) or 0) == len(uncollected), (ledger, uncollected)
    print(f"\nfailover: {len(acked)} acknowledged ({sum(v == 'after' for v in acked.values())} after), "
          f"{len(errors)} client errors while business was dead, tail {tail['transactions']} transaction(s), "
          f"ack ledger {ledger!r}")
    assert not lost, f"acknowledged inserts neither on DR nor in the tail: {lost[:20]}"
    assert all(k in on_dr for k, v in acked.items() if v == "after")


def test_failover_tail_holds_an_entry_that_landed_behind_a_collected_one(mongo_daemon, ferretdb_pair, tmp_path):
    """FerretDB stores an oplog entry after a newer one now and then (its ts is taken before the insert): one that
    lands after the forward collector's last poll has a ts older than the collected position, so it is not on DR,
    and a tail read after that position alone would miss it — an acknowledged write lost. The collector leaves the
    ts it took near its position behind when the failover pauses it (capture/mongo_taken.h), and the tail reads
    from before the position and skips exactly those. Simulated: SY_HIDE_OPLOG_NS makes the collector never see
    one collection's entries (as if each landed after its last poll); a newer entry is collected. The tail holds
    the hidden insert (acknowledged, what the ack ledger names as not read) and not the collected one."""
    env = lambda db: {"SY_HIDE_OPLOG_NS": f"{db}.late"}  # noqa: E731
    with switchable_pair(mongo_daemon, ferretdb_pair, env_of=env) as (d, pname, db):
        b, dr = ferretdb_pair
        with app_client(d.port) as c:
            c[db].late.insert_one({"_id": "late"})       # acknowledged; its entry unseen by the collector
            c[db].docs.insert_one({"_id": "newer"})      # a newer entry, collected and applied
        with dr.client() as drc:
            wait_until(lambda: drc[db].docs.count_documents({"_id": "newer"}) == 1, what="forward applied")
            assert drc[db].late.count_documents({}) == 0
        b.kill9()
        try:
            r = d.admin_ok("failover", pair=pname)
            assert r["active_side"] == "dr", r
            assert r["ack_ledger_position"].endswith(" and 1 acknowledged write(s) not yet read from the oplog"), r
        finally:
            b.start()
        wait_until(lambda: d.pair_status(pname).get("tail", {}).get("state") != "pending", what="the tail read")
        tail = d.pair_status(pname).get("tail")
        assert tail is not None and tail["state"] == "open", \
            f"the tail is empty: the acknowledged insert 'late' is neither on DR nor in the tail ({tail})"
        assert tail["transactions"] == 1 and tail["acknowledged"] == 1, tail
        export = tmp_path / "tail.json"
        res = d.ctl("resolve-tail", pname, "--export", str(export))
        assert res.returncode == 0, res.stdout + res.stderr
        detail = json.loads(export.read_text())
        in_tail = [(row["table"], row["key"]) for t in detail["transactions"] for row in t["rows"]]
        assert in_tail == [(f"{db}.late", {"_id": "late"})], detail
        assert detail["collected_set"] is not None and detail["collected_set"] >= 1, detail  # "newer" skipped


def test_restart_takes_an_entry_that_landed_behind_a_collected_one(mongo_daemon, ferretdb_pair):
    """The same late entry across a clean restart of switchyardd: the collector left the ts it took behind at its
    stop, the new one takes that set over and reads from before its position, so the entry that landed behind a
    collected one after the last poll reaches DR (before, a restart took only entries after its position)."""
    env = lambda db: {"SY_HIDE_OPLOG_NS": f"{db}.late"}  # noqa: E731
    with switchable_pair(mongo_daemon, ferretdb_pair, env_of=env) as (d, pname, db):
        b, dr = ferretdb_pair
        with app_client(d.port) as c:
            c[db].late.insert_one({"_id": "late"})       # its entry unseen by this collector
            c[db].docs.insert_one({"_id": "newer"})      # a newer entry, collected and applied
        with dr.client() as drc:
            wait_until(lambda: drc[db].docs.count_documents({"_id": "newer"}) == 1, what="forward applied")
            assert drc[db].late.count_documents({}) == 0
            d.stop()
            d.env.pop("SY_HIDE_OPLOG_NS")
            d.start()
            wait_collecting(d, pname)
            wait_until(lambda: drc[db].late.count_documents({"_id": "late"}) == 1, what="the late entry on DR")
        assert "resuming with the" in d.log_path.read_text()
