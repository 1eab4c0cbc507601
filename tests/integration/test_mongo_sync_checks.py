"""The MongoDB forward instance's checks and copy against two FerretDB v1.24.2 servers: `precheck` (per
direction: oplog, replica set, objects, _id index, SCRAM credentials on both sides, fencing), the initial
synchronization (documents, indexes, capped options and admin.system.users copied; a kill -9 in the middle
and a restart end equal) and `verify` (clean after the copy; a document changed behind Switchyard's back on DR
is named by its _id). Each test works in a database of its own on the session's ferretdb_pair."""

from __future__ import annotations

import contextlib
import functools
import uuid

import pytest

import sandbox
from helpers import assert_a_stop_cuts_a_verify, instance, wait_for, wait_state

pymongo = sandbox.pymongo4()
from bson import json_util  # noqa: E402  (pymongo 4's bson, from the same venv)
from pymongo.errors import OperationFailure  # noqa: E402

wait_until = functools.partial(wait_for, timeout=60.0, interval=0.05)


@pytest.fixture
def fresh():
    return "ms" + uuid.uuid4().hex[:10]


def checks_by_name(reply: dict) -> dict:
    return {c["name"]: c for c in reply["checks"]}


def precheck(d, pname, direction="forward") -> dict:
    return d.admin_ok("precheck", _timeout=60, pair=pname, direction=direction)


def docs(server, db, coll):
    with server.client() as c:
        return list(c[db][coll].find().sort("_id", 1))


def index_specs(server, db, coll):
    with server.client() as c:
        return sorted((dict(i) for i in c[db][coll].list_indexes()), key=lambda i: i["name"])


def users(server):
    with server.client() as c:
        return {u["_id"]: u for u in c.admin["system.users"].find()}


def drop_user_on_both(pair, user):
    for s in pair:
        try:
            s.drop_user(user)
        except OperationFailure:
            pass


def load(server, db, n=2500):
    with server.client() as c:
        c[db].orders.insert_many([{"_id": i, "v": i * 2, "s": "x" * (i % 50), "nested": {"a": [i, str(i)]}}
                                  for i in range(n)])
        c[db].orders.create_index([("v", -1)], name="v_desc")
        c[db].orders.create_index([("s", 1), ("v", 1)], name="s_v", unique=True)
        c[db].create_collection("capped", capped=True, size=1 << 20)
        c[db].capped.insert_many([{"k": i} for i in range(10)])
        # _ids of several types: numbers < strings < objects < ObjectId in MongoDB's sort order
        c[db].mixed.insert_many([{"_id": "s1", "t": "é😀"}, {"_id": 5}, {"_id": 2.5}, {"_id": {"a": 1}}, {"k": 1}])


def start(mongo_daemon, db, wait_running=True, **kw):
    pname = f"p{db}"
    d = mongo_daemon(pair=pname, **{"objects": f"{db}.*", **kw})
    if wait_running:
        wait_state(d, pname, "running")
    return d, pname


def prepared(mongo_daemon, ferretdb_pair, db, **kw):
    """A few documents in db on business and a daemon whose forward instance synchronizes db.*."""
    load(ferretdb_pair.business, db, n=10)
    return start(mongo_daemon, db, wait_running=False, **kw)


@contextlib.contextmanager
def oplog_dropped(server, size_bytes=None):
    """server without its local.oplog.rs (or with one of size_bytes) for the block; the usual one after."""
    with server.client() as c:
        c.local.drop_collection("oplog.rs")
    try:
        if size_bytes:
            server.create_oplog(size_bytes=size_bytes)
        yield
    finally:
        with server.client() as c:
            c.local.drop_collection("oplog.rs")
        server.create_oplog()


def assert_copied(business, dr, db):
    for coll in ("orders", "capped", "mixed"):
        assert docs(dr, db, coll) == docs(business, db, coll), coll
        assert index_specs(dr, db, coll) == index_specs(business, db, coll), coll
    with dr.client() as c:
        assert c[db].capped.options() == {"capped": True, "size": 1 << 20}


# ---- precheck ---------------------------------------------------------------------------------------------

def test_precheck_passes_and_names_each_check(mongo_daemon, ferretdb_pair, fresh):
    d, pname = prepared(mongo_daemon, ferretdb_pair, fresh)
    r = precheck(d, pname)
    by = checks_by_name(r)
    assert r["passed"] is True, r
    for name in ("objects_configured", "business_reachable", "dr_reachable", "distinct_servers",
                 "business_replica_set", "dr_replica_set", "business_oplog", "dr_oplog", "object_collections",
                 "id_indexes", "credentials", "fencing"):
        assert name in by, name
    for name in ("business_reachable", "dr_reachable", "business_replica_set", "dr_replica_set",
                 "business_oplog", "dr_oplog", "object_collections", "id_indexes"):
        assert by[name]["status"] == "pass", by[name]
    assert "rs0" in by["business_replica_set"]["detail"]
    assert "capped at 64 MB" in by["dr_oplog"]["detail"]
    assert "3 synchronized collections" in by["id_indexes"]["detail"]
    # FerretDB cannot be fenced: said, not failed, with fence_passive = off
    assert by["fencing"]["status"] == "warn" and "proxy's hold" in by["fencing"]["detail"]
    # credentials: forward never fails on them (the copy makes them equal)
    assert by["credentials"]["status"] in ("pass", "warn")
    for c in r["checks"]:
        assert c["status"] in ("pass", "warn", "fail") and c["detail"]
        assert c["status"] == "pass" or c.get("fix")


def test_precheck_missing_oplog_fails_naming_it(mongo_daemon, ferretdb_pair, fresh):
    dr = ferretdb_pair.dr
    d, pname = prepared(mongo_daemon, ferretdb_pair, fresh)
    with oplog_dropped(dr):
        r = precheck(d, pname)
        by = checks_by_name(r)
        assert r["passed"] is False
        assert by["dr_oplog"]["status"] == "fail", by["dr_oplog"]
        assert "local.oplog.rs does not exist" in by["dr_oplog"]["detail"]
        assert f"dr 127.0.0.1:{dr.port}" in by["dr_oplog"]["detail"]
        assert "createCollection" in by["dr_oplog"]["fix"]
        assert by["business_oplog"]["status"] == "pass"
        # the reverse direction collects from DR: failed there too
        rr = precheck(d, pname, "reverse")
        assert rr["passed"] is False and checks_by_name(rr)["dr_oplog"]["status"] == "fail"
    assert precheck(d, pname)["passed"] is True


def test_precheck_small_oplog_warns(mongo_daemon, ferretdb_pair, fresh):
    d, pname = prepared(mongo_daemon, ferretdb_pair, fresh)
    with oplog_dropped(ferretdb_pair.dr, size_bytes=8 << 20):
        by = checks_by_name(precheck(d, pname))
        assert by["dr_oplog"]["status"] == "warn" and "8 MB" in by["dr_oplog"]["detail"], by["dr_oplog"]


def test_fence_passive_on_is_refused_for_a_mongodb_pair(mongo_daemon, ferretdb_pair, fresh):
    """The precheck's fencing check fails for fence_passive = on; the config refuses it before (core/config.c)."""
    d = mongo_daemon(pair=f"p{fresh}", objects=f"{fresh}.*", fence_passive=True, wait=False)
    assert d.wait(30) != 0
    assert "fence_passive = on cannot be kept for engine mongodb" in d.log()


def test_precheck_missing_objects_warn(mongo_daemon, ferretdb_pair, fresh):
    d, pname = prepared(mongo_daemon, ferretdb_pair, fresh,
                        objects=f"{fresh}.orders, {fresh}.nosuch, nodb{fresh}.*")
    o = checks_by_name(precheck(d, pname))["object_collections"]
    assert o["status"] == "warn"
    assert f"collection {fresh}.nosuch" in o["detail"] and f"database nodb{fresh}" in o["detail"]


def test_precheck_credentials_per_direction(mongo_daemon, ferretdb_pair, fresh):
    business, dr = ferretdb_pair
    user = f"u{fresh}"
    business.create_user(user, "pw-1")
    # no objects: no forward instance, so no initial sync copies the user meanwhile
    d, pname = prepared(mongo_daemon, ferretdb_pair, fresh, objects=None)
    try:
        fwd = checks_by_name(precheck(d, pname))["credentials"]
        assert fwd["status"] == "warn" and f"admin.{user}" in fwd["detail"], fwd
        assert "initial synchronization copies" in fwd["detail"]
        rev = precheck(d, pname, "reverse")
        cred = checks_by_name(rev)["credentials"]
        assert rev["passed"] is False and cred["status"] == "fail", cred
        assert f"only on business: " in cred["detail"] and f"admin.{user}" in cred["detail"]
        # the same user created on DR by createUser: another salt, still a difference
        dr.create_user(user, "pw-1")
        cred = checks_by_name(precheck(d, pname, "reverse"))["credentials"]
        assert cred["status"] == "fail" and "different credentials" in cred["detail"], cred
    finally:
        drop_user_on_both(ferretdb_pair, user)


# ---- initial synchronization -------------------------------------------------------------------------------

def test_initial_sync_copies_documents_indexes_and_users(mongo_daemon, ferretdb_pair, fresh):
    business, dr = ferretdb_pair
    load(business, fresh)
    user = f"u{fresh}"
    business.create_user(user, "app-pw-1")
    try:
        with dr.client() as c:             # DR's own leftovers are replaced: the copy starts from a new collection
            c[fresh].orders.insert_many([{"_id": -1, "stale": True}, {"_id": 7, "stale": True}])
        d, pname = start(mongo_daemon, fresh)
        st = instance(d, pname)
        assert st["initial_sync"]["done"] is True
        assert st["initial_sync"]["done_rows"] == st["initial_sync"]["total_rows"] == 2515
        assert_copied(business, dr, fresh)
        # the user's credential document is the same on DR (same salt): the same password logs in there
        assert users(dr)[f"admin.{user}"]["credentials"] == users(business)[f"admin.{user}"]["credentials"]
        with dr.client(user, "app-pw-1") as c:
            c.admin.command("ping")
        with dr.client(user, "wrong") as c:
            with pytest.raises(OperationFailure) as ei:
                c.admin.command("ping")
            assert ei.value.code == 18
        # and the precheck's credentials check no longer lists the user
        cred = checks_by_name(precheck(d, pname))["credentials"]
        assert f"admin.{user}" not in cred["detail"]
        assert "initial synchronization" in d.log() and "user(s) of admin.system.users copied" in d.log()
        # the copy's overlap with the oplog, for the writer: (start, end], start = where collection began
        with dr.client() as c:
            rec = c.switchyard.initial_sync.find_one({"_id": f"{pname}/forward"})
        assert rec is not None and f"incremental from {rec['start']}" in d.log()
        ts = lambda p: tuple(int(x) for x in p.split(":"))  # noqa: E731
        assert ts(rec["end"]) >= ts(rec["start"])
    finally:
        drop_user_on_both(ferretdb_pair, user)


def test_initial_sync_kill9_midway_then_restart_ends_equal(mongo_daemon, ferretdb_pair, fresh):
    business, dr = ferretdb_pair
    n = 10000
    with business.client() as c:
        for lo in range(0, n, 5000):
            c[fresh].big.insert_many([{"_id": i, "p": "y" * 200} for i in range(lo, lo + 5000)])
    d, pname = start(mongo_daemon, fresh, wait_running=False)
    st = wait_until(lambda: (lambda i: i if 0 < i.get("initial_sync", {}).get("done_rows", 0) < n else None)(
        instance(d, pname)), what="the copy under way")
    assert st["state"] == "initial_sync" and st["initial_sync"]["total_rows"] == n
    d.kill9()
    # business changes while the daemon is down: the next copy starts again from a new position
    with business.client() as c:
        c[fresh].big.delete_many({"_id": {"$lt": 100}})
        c[fresh].big.insert_one({"_id": "late", "p": "z"})
        c[fresh].big.update_one({"_id": 500}, {"$set": {"p": "changed"}})
    d.restart()
    wait_state(d, pname, "running", timeout=180)
    assert "restarted during initial synchronization" in d.log()
    with business.client() as b, dr.client() as r:
        assert r[fresh].big.count_documents({}) == b[fresh].big.count_documents({}) == n - 100 + 1
        assert r[fresh].big.find_one({"_id": 500})["p"] == "changed"
        assert r[fresh].big.find_one({"_id": 5}) is None and r[fresh].big.find_one({"_id": "late"})
    assert docs(dr, fresh, "big") == docs(business, fresh, "big")


def test_initial_sync_fails_clearly_without_source_oplog(mongo_daemon, ferretdb_pair, fresh):
    """A copy whose position cannot be taken is not started: the precheck fails first, naming the oplog."""
    with oplog_dropped(ferretdb_pair.business):
        d, pname = prepared(mongo_daemon, ferretdb_pair, fresh)
        wait_state(d, pname, "precheck_failed")
        by = checks_by_name(precheck(d, pname))
        assert by["business_oplog"]["status"] == "fail"
        with ferretdb_pair.dr.client() as c:
            assert fresh not in c.list_database_names()       # nothing copied


# ---- verify -----------------------------------------------------------------------------------------------

def verify(d, pname, **args):
    return d.admin_ok("verify", _timeout=300, pair=pname, **args)


def by_table(r):
    return {t["table"]: t for t in r["tables"]}


def test_verify_clean_then_names_a_document_changed_on_dr(mongo_daemon, ferretdb_pair, fresh):
    business, dr = ferretdb_pair
    load(business, fresh)
    d, pname = start(mongo_daemon, fresh)
    r = verify(d, pname)
    assert r["clean"] is True, r
    t = by_table(r)
    assert set(t) == {f"{fresh}.orders", f"{fresh}.capped", f"{fresh}.mixed"}
    assert t[f"{fresh}.orders"]["business_rows"] == t[f"{fresh}.orders"]["dr_rows"] == 2500
    assert t[f"{fresh}.orders"]["chunks"] == 3 and t[f"{fresh}.orders"]["status"] == "ok"
    # behind Switchyard's back on DR: one changed, one deleted, one added (a string _id)
    with dr.client() as c:
        c[fresh].orders.update_one({"_id": 1500}, {"$set": {"v": -1}})
        c[fresh].orders.delete_one({"_id": 10})
        c[fresh].mixed.insert_one({"_id": "zz-extra"})
    r = verify(d, pname)
    assert r["clean"] is False
    t = by_table(r)
    o = t[f"{fresh}.orders"]
    assert o["status"] == "mismatch" and o["business_rows"] == 2500 and o["dr_rows"] == 2499
    ids = {i: m for m in o["mismatches"] for i in m["ids"]}
    assert set(ids) == {"10", "1500"}
    assert ids["10"]["to"] == "999" and ids["10"]["from"] is None and ids["10"]["confirmed"] is True
    assert ids["1500"]["from"] == "999" and ids["1500"]["to"] == "1999"
    assert [i for m in t[f"{fresh}.mixed"]["mismatches"] for i in m["ids"]] == ['"zz-extra"']
    assert t[f"{fresh}.capped"]["status"] == "ok"
    # --objects narrows; a filter that matches nothing is a bad request
    r = verify(d, pname, objects=f"{fresh}.capped")
    assert [x["table"] for x in r["tables"]] == [f"{fresh}.capped"] and r["clean"] is True
    reply = d.admin("verify", _timeout=60, pair=pname, objects="nosuchdb.*")
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request"
    reply = d.admin("verify", _timeout=60, pair=pname, objects="nodot")
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request"
    json_util.dumps(r)  # the result is plain JSON


@pytest.mark.tsan
def test_a_stop_cuts_a_verify_blocked_on_a_dr_that_stopped_answering(mongo_daemon, ferretdb_pair, fresh):
    """`verify` runs on a thread of its own, outside any module: its connections are published to a socket
    set the daemon shuts down at its stop (core/daemon.c verify_sockets). With DR's FerretDB stopped
    (SIGSTOP: the kernel accepts the connection, nothing answers), a verify blocks on its first read of DR;
    a SIGTERM now ends the daemon within seconds, exit 0, and the verify says why it failed. Before, the
    stop waited for the verify's 120 s socket timeout (and past the stop's 120 s wait for commands,
    exited 1 without freeing)."""
    business, dr = ferretdb_pair
    load(business, fresh, n=10)
    d, pname = start(mongo_daemon, fresh)
    assert_a_stop_cuts_a_verify(d, pname, dr.pid)
