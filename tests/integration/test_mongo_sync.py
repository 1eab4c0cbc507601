"""The MongoDB forward instance (business -> DR) on two real FerretDB servers: the oplog collector and the
writer. What a user relies on: DR ends up with exactly business's documents (hash per collection) after a
random workload and after kill -9 of switchyardd at failpoints; users' SCRAM credentials follow; the writer's
own changes are never collected back (echo suppression with both directions collecting)."""

from __future__ import annotations

import datetime
import functools
import hashlib
import itertools
import json
import os
import random
import re
import signal
import threading
import time

import pytest

import sandbox
from test_ferretdb_sandbox import ferretdb_pair  # noqa: F401 (fixture: this module's own servers; a
# shared pair's oplog filled by other modules makes every oplog read slow: FerretDB reads it whole)
from helpers import instance, reverse, wait_for, wait_reverse, wait_state

pymongo = sandbox.pymongo4()
import bson  # noqa: E402

wait_until = functools.partial(wait_for, timeout=60.0, interval=0.1)
_counter = itertools.count()


@pytest.fixture
def fresh(ferretdb_pair):
    """A database of this test's own on both sides (the pair is shared)."""
    name = f"ms{os.getpid() % 1000}_{next(_counter)}"
    for s in ferretdb_pair:
        with s.client() as c:
            c.drop_database(name)
    yield name
    for s in ferretdb_pair:
        with s.client() as c:
            c.drop_database(name)


def digest(server, db):
    """{collection: sha256 of its documents in _id order, as canonical BSON}."""
    out = {}
    with server.client() as c:
        for name in sorted(c[db].list_collection_names()):
            h = hashlib.sha256()
            for d in c[db][name].find().sort("_id", 1):
                h.update(bson.encode(d))
            out[name] = h.hexdigest()
    return out


def assert_equal_eventually(pair, db, timeout=60):
    wait_until(lambda: digest(pair.business, db) == digest(pair.dr, db) and digest(pair.business, db),
               timeout=timeout, what=f"{db} equal on both sides")


def workload(server, db, n, seed):
    rnd = random.Random(seed)
    with server.client() as c:
        coll = c[db].docs
        ids = []
        for i in range(n):
            r = rnd.random()
            if r < 0.5 or not ids:
                _id = f"k{seed}-{i}"
                coll.insert_one({"_id": _id, "n": i, "s": "ünï" * rnd.randint(0, 5), "nested": {"a": [1, {"b": i}]}})
                ids.append(_id)
            elif r < 0.8:
                coll.update_one({"_id": rnd.choice(ids)}, {"$set": {"n": -i}, "$unset": {"s": ""}})
            elif r < 0.9:
                coll.replace_one({"_id": rnd.choice(ids)}, {"replaced": i})
            else:
                _id = ids.pop(rnd.randrange(len(ids)))
                coll.delete_one({"_id": _id})
        c[db].other.insert_many([{"_id": f"{seed}-{i}", "v": bson.Int64(i) * 3} for i in range(50)])


def wait_collecting(d, pname):
    """Running, with the collector's start position read (until the initial sync exists, what is written before
    that is not collected)."""
    wait_state(d, pname, "running")
    return wait_until(lambda: instance(d, pname)["collection"]["position"] and instance(d, pname),
                      what="the collector's position")


def test_forward_incremental_random_workload(mongo_daemon, ferretdb_pair, fresh):
    pname = f"p{fresh}"
    d = mongo_daemon(pair=pname, objects=f"{fresh}.*")
    st = wait_collecting(d, pname)
    assert st["collection"]["state"] == "running", st
    workload(ferretdb_pair.business, fresh, 300, 1)
    assert_equal_eventually(ferretdb_pair, fresh)
    # a namespace outside objects is not synchronized
    with ferretdb_pair.business.client() as c:
        c[fresh + "x"].t.insert_one({"_id": 1})
    with ferretdb_pair.dr.client() as c:
        assert c[fresh + "x"].t.count_documents({}) == 0
    with ferretdb_pair.business.client() as c:
        c.drop_database(fresh + "x")


@pytest.mark.parametrize("failpoint", ["mongo_write_after_mark", "mongo_write_before_checkpoint"])
def test_forward_survives_kill9_at_failpoints(mongo_daemon, ferretdb_pair, fresh, failpoint):
    pname = f"p{fresh}"
    d = mongo_daemon(pair=pname, objects=f"{fresh}.*", env={"SY_FAILPOINT": failpoint})
    wait_collecting(d, pname)
    workload(ferretdb_pair.business, fresh, 100, 2)
    assert d.wait(60) != 0, "the failpoint should have stopped switchyardd"
    workload(ferretdb_pair.business, fresh, 100, 3)  # more while it is down
    d.env.pop("SY_FAILPOINT", None)
    d.restart()
    wait_state(d, pname, "running")
    workload(ferretdb_pair.business, fresh, 50, 4)
    assert_equal_eventually(ferretdb_pair, fresh)


# ---- the reverse instance (DR -> business): the rules of ARCHITECTURE.md, as for MariaDB -----------------

@pytest.fixture
def synced(mongo_daemon, ferretdb_pair, fresh):
    """A pair whose forward instance runs on this test's own database."""
    pname = f"p{fresh}"
    d = mongo_daemon(pair=pname, objects=f"{fresh}.*")
    wait_collecting(d, pname)
    with ferretdb_pair.business.client() as c:
        c[fresh].t.insert_one({"_id": 1, "v": "from business"})
    with ferretdb_pair.dr.client() as c:
        wait_until(lambda: c[fresh].t.count_documents({}) == 1, what="the first document on DR")
    return d, pname, fresh


def count(server, db, flt=None):
    with server.client() as c:
        return c[db].t.count_documents(flt or {})


def test_a_stop_cuts_a_write_blocked_on_a_dr_that_stopped_answering(synced, ferretdb_pair):
    """The forward writer's connections are watched for a stop as MariaDB's are (engine/mongo_stream.h): with
    DR's FerretDB stopped (SIGSTOP) while the writer sends a change, a SIGTERM ends the daemon within seconds
    (the writer's socket shut down), exit 0; the change reaches DR after a restart. Before, libmongoc gave no
    socket to shut down and the stop waited out the writer's 60 s socket timeout."""
    d, pname, db = synced
    b, dr = ferretdb_pair
    os.kill(dr.pid, signal.SIGSTOP)
    try:
        with b.client() as c:
            c[db].t.insert_one({"_id": 2, "v": "sent while DR stopped"})
        wait_until(lambda: instance(d, pname)["collection"]["events"] >= 2, what="the change collected")
        time.sleep(2)                                   # the writer sends it and waits for DR's answer
        t0 = time.monotonic()
        assert d.stop() == 0
        took = time.monotonic() - t0
    finally:
        os.kill(dr.pid, signal.SIGCONT)
    assert took < 10, took
    cut = re.search(r"write module still busy \d+ ms after its stop: (\d+) database connection", d.log())
    assert cut and int(cut.group(1)) >= 1, d.log()[-2000:]
    d.start()
    wait_until(lambda: count(dr, db, {"_id": 2}) == 1, what="the change on DR after the restart")


def test_reverse_collects_from_creation_writes_after_start(synced, ferretdb_pair):
    d, pname, db = synced
    b, dr = ferretdb_pair
    with dr.client() as c:
        c[db].t.insert_one({"_id": 100, "v": "dr before"})  # before creation: never synchronized
    r = d.admin_ok("create-reverse", pair=pname)
    assert r["instance"] == f"{pname}/reverse" and r["state"] == "collecting"
    st = reverse(d, pname)
    assert st["state"] == "collecting" and st["write"]["state"] == "stopped"
    with dr.client() as c:
        c[db].t.insert_one({"_id": 101, "v": "dr after"})  # after creation: collected ...
    wait_until(lambda: reverse(d, pname)["collection"]["spool_seq"] > 0, what="collected")
    time.sleep(0.5)
    assert count(b, db, {"_id": 101}) == 0                      # ... but not written yet
    assert d.ctl("start", f"{pname}/reverse").returncode == 0
    wait_reverse(d, pname, "running")
    wait_until(lambda: count(b, db, {"_id": 101}) == 1, what="written after start")
    assert count(b, db, {"_id": 100}) == 0


def test_echo_suppression_both_directions(synced, ferretdb_pair):
    """Both directions collect and write at once: a document written on one side crosses once and never comes
    back (the writers' echo marks), and the users' credentials written by the forward writer stay put."""
    d, pname, db = synced
    b, dr = ferretdb_pair
    d.admin_ok("create-reverse", pair=pname)
    assert d.ctl("start", f"{pname}/reverse").returncode == 0
    wait_reverse(d, pname, "running")
    with b.client() as c:
        for i in range(2, 30):
            c[db].t.insert_one({"_id": i, "v": f"b{i}"})
    with dr.client() as c:
        for i in range(500, 510):
            c[db].t.insert_one({"_id": i, "v": f"d{i}"})
    with b.client() as c:
        c[db].t.update_many({"_id": {"$lt": 10}}, {"$set": {"plus": True}})
    want = 1 + 28 + 10
    wait_until(lambda: count(b, db) == want and digest(b, db) == digest(dr, db), what="both sides equal")
    time.sleep(1.5)  # an echo would come back as a second apply
    fw, rv = instance(d, pname), reverse(d, pname)
    assert fw["state"] == "running" and rv["state"] == "running", (fw, rv)
    assert rv["write"]["events"] == 10                                  # only the DR-local documents went back
    assert fw["write"]["events"] == 1 + 28 + 9                          # business's (9 updated), none twice
    assert fw["last_error"] is None and rv["last_error"] is None
    assert digest(b, db) == digest(dr, db)


def test_entry_landing_late_reaches_dr(synced, ferretdb_pair):
    """FerretDB takes an entry's ts before storing it, so under load an entry lands behind newer ones. One that
    lands 5 s behind the newest (more than the 2 s every poll reads again), shaped like FerretDB's own and
    written into business's oplog directly (nothing can delay FerretDB's own insert), still reaches DR: the
    collector's periodic sweep reads further back, and says so in the log."""
    d, pname, db = synced
    b, dr = ferretdb_pair
    with b.client() as c:
        oplog = c.local["oplog.rs"]
        first = max(e["ts"].time for e in oplog.find({"ns": f"{db}.t"}, {"ts": 1}))
        wait_until(lambda: c[db].t.insert_one({"v": "newer"}) and
                   max(e["ts"].time for e in oplog.find({"ns": f"{db}.t"}, {"ts": 1})) >= first + 7,
                   interval=0.5, what="the newest entry 7 s after the first")  # the late one must follow the floor
        newest = max(e["ts"].time for e in oplog.find({"ns": f"{db}.t"}, {"ts": 1}))
        wait_until(lambda: int(instance(d, pname)["collection"]["position"].split(":")[0]) >= newest,
                   what="the collector at the newest entry")
        late = newest - 5
        oplog.insert_one({"_id": bson.ObjectId(), "op": "i", "ns": f"{db}.t", "ts": bson.Timestamp(late, 999999),
                          "o": {"_id": "late", "v": "landed 5 s late"}, "t": 1, "v": 2,
                          "wall": datetime.datetime.fromtimestamp(late, datetime.timezone.utc)})
    with dr.client() as c:
        wait_until(lambda: c[db].t.count_documents({"_id": "late"}) == 1, timeout=20, what="the late entry on DR")
    log = d.log()
    assert f"oplog entry {late}:999999 on {db}.t landed " in log and "taken by the 30 s sweep (1 such" in log, log[-3000:]
    fw = instance(d, pname)
    assert fw["last_error"] is None
    assert fw["collection"]["late_events"] >= 1 and fw["collection"]["late_max_ms"] >= 4000, fw["collection"]


def test_fence_passive_on_is_refused_for_mongodb(mongo_daemon):
    """FerretDB cannot be made read-only for everyone but Switchyard's writer: a mongodb pair defaults to
    fence_passive = off, and setting it on is a configuration error that says why."""
    d = mongo_daemon(pair="fenced", fence_passive=True, wait=False)
    assert d.wait(30) == 1
    log = d.log()
    assert "[pair fenced] fence_passive = on cannot be kept for engine mongodb" in log
    assert "set fence_passive = off" in log


@pytest.mark.parametrize("decision", ["export", "discard"])
def test_failover_tail_resolve_then_switchback(synced, ferretdb_pair, decision):
    """kill -9 of the business FerretDB; failover to DR; when business comes back, the tail (written while the
    forward collector was paused) is reported and nothing of it reaches DR; resolve-tail makes business equal
    to DR for every key the tail touched (--export first writes the entries, 0600); the reverse write then
    catches up and a switchback restores the forward direction with both sides equal."""
    d, pname, db = synced
    b, dr = ferretdb_pair
    d.admin_ok("create-reverse", pair=pname)
    with b.client() as c:
        c[db].t.insert_one({"_id": 10, "v": "replicated"})
    wait_until(lambda: count(dr, db, {"_id": 10}) == 1, what="forward applied")
    d.admin_ok("pause", instance=f"{pname}/forward")
    with b.client() as c:
        c[db].t.insert_many([{"_id": 11, "v": "tail"}, {"_id": 12, "v": "tail"}])
        c[db].t.update_one({"_id": 10}, {"$set": {"v": "changed in the tail"}})
    r = d.admin("failover", pair=pname)
    assert r["ok"] is False and r["error"]["code"] == "business_alive"
    b.kill9()
    try:
        r = d.admin_ok("failover", pair=pname)
        assert r["active_side"] == "dr" and r["tail"]["state"] == "pending", r
        with dr.client() as c:
            c[db].t.insert_one({"_id": 13, "v": "on DR after the failover"})
        r = d.admin("switchback", pair=pname)
        assert r["ok"] is False and r["error"]["code"] == "tail_unresolved"
    finally:
        b.start()
    tail = wait_until(lambda: d.pair_status(pname).get("tail", {}).get("state") == "open" and
                      d.pair_status(pname)["tail"], what="tail reported")
    assert tail["transactions"] == 3, tail
    assert [(x["tables"], x["keys"][0]["key"]) for x in tail["listed"]] == \
        [([f"{db}.t"], {"_id": {"$numberInt": str(i)}}) for i in (11, 12, 10)], tail["listed"]  # canonical ext. JSON
    assert count(dr, db, {"_id": {"$in": [11, 12]}}) == 0                # nothing applied silently
    time.sleep(1.5)
    assert count(b, db, {"_id": 13}) == 0                                 # no reverse write before the decision
    export = d.cwd / "tail.json"
    if decision == "export":
        r = d.ctl("resolve-tail", pname, "--export", str(export))
        assert r.returncode == 0, r.stdout + r.stderr
        assert oct(export.stat().st_mode & 0o777) == "0o600"
        exported = json.loads(export.read_text())
        assert [t["rows"][0].get("after", {}).get("v") for t in exported["transactions"]] == ["tail", "tail", None]
        assert exported["transactions"][2]["rows"][0]["update"]["$set"]["v"] == "changed in the tail"
    else:
        r = d.admin_ok("resolve-tail", pair=pname, discard=True)
        rev = r["tail"]["revert"]
        assert rev["reverted_transactions"] == 3 and rev["deleted"] == 2 and rev["replaced"] == 1, rev
        assert not export.exists()
    assert count(b, db, {"_id": {"$in": [11, 12]}}) == 0                 # made equal to DR on business
    with b.client() as c:
        assert c[db].t.find_one({"_id": 10})["v"] == "replicated"
    wait_until(lambda: count(b, db, {"_id": 13}) == 1, what="reverse caught up")
    r = d.admin_ok("switchback", pair=pname)
    assert r["active_side"] == "business"
    with b.client() as c:
        c[db].t.insert_one({"_id": 14, "v": "back on business"})
    assert_equal_eventually(ferretdb_pair, db)
    with b.client() as c:
        assert sorted(x["_id"] for x in c[db].t.find()) == [1, 10, 13, 14]


def test_initial_sync_while_business_writes(mongo_daemon, ferretdb_pair, fresh):
    """The copy has no snapshot: business keeps inserting, updating and deleting during it; the oplog entries
    that overlap the copy are applied as overwrites (no `conflict`), and DR ends equal."""
    b, dr = ferretdb_pair
    with b.client() as c:
        c[fresh].docs.insert_many([{"_id": f"pre{i}", "n": i, "pad": "x" * 200} for i in range(3000)])
    stop = threading.Event()
    errors = []

    def writer():
        rnd = random.Random(7)
        try:
            with b.client() as c:
                i = 0
                while not stop.is_set():
                    k = f"pre{rnd.randrange(3000)}"
                    r = rnd.random()
                    if r < 0.4:
                        c[fresh].docs.update_one({"_id": k}, {"$set": {"n": -i}})
                    elif r < 0.6:
                        c[fresh].docs.delete_one({"_id": k})
                    else:
                        c[fresh].docs.insert_one({"_id": f"new{i}", "n": i})
                    i += 1
        except Exception as e:  # noqa: BLE001 (reported by the test)
            errors.append(e)

    t = threading.Thread(target=writer)
    t.start()
    try:
        pname = f"p{fresh}"
        d = mongo_daemon(pair=pname, objects=f"{fresh}.*")
        wait_state(d, pname, "running", timeout=120)
        time.sleep(1.0)
    finally:
        stop.set()
        t.join(30)
    assert errors == []
    assert_equal_eventually(ferretdb_pair, fresh, timeout=120)
    st = instance(d, pname)
    assert st["state"] == "running" and st["last_error"] is None, st
    assert st["initial_sync"]["done"] is True


def test_a_reverse_instance_created_again_starts_its_own_history(synced, ferretdb_pair):
    """The reverse instance's checkpoint document on business is keyed by its id, which a new create-reverse
    reuses: create-reverse deletes it before the answer, so the new writer does not resume from the
    terminated one's seq (it skipped that many records of the new spool)."""
    d, pname, db = synced
    b, dr = ferretdb_pair
    d.admin_ok("create-reverse", pair=pname)
    assert d.ctl("start", f"{pname}/reverse").returncode == 0
    wait_reverse(d, pname, "running")
    with dr.client() as c:
        for i in range(400, 410):
            c[db].t.insert_one({"_id": i, "v": "first reverse"})
    wait_until(lambda: count(b, db, {"v": "first reverse"}) == 10, what="the first reverse instance applied")
    with b.client() as c:
        old = c.switchyard.checkpoints.find_one({"_id": f"{pname}/reverse"})
    assert old and old["seq"] >= 10, old
    d.admin_ok("terminate", instance=f"{pname}/reverse")
    d.admin_ok("create-reverse", pair=pname)
    with b.client() as c:                                       # reset: no history
        doc = c.switchyard.checkpoints.find_one({"_id": f"{pname}/reverse"})
        assert doc["seq"] == 0 and doc["position"] == "", doc
    with dr.client() as c:
        for i in range(500, 530):
            c[db].t.insert_one({"_id": i, "v": "second reverse"})
    wait_until(lambda: reverse(d, pname)["collection"]["spool_seq"] > old["seq"], what="collected past the old seq")
    assert d.ctl("start", f"{pname}/reverse").returncode == 0
    wait_reverse(d, pname, "running")
    wait_until(lambda: count(b, db, {"v": "second reverse"}) == 30, what="every document of the second instance")
    assert digest(b, db) == digest(dr, db)
