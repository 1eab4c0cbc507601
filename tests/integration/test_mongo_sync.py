"""The MongoDB forward instance (business -> DR) on two real FerretDB servers: the oplog collector and the
writer. What a user relies on: DR ends up with exactly business's documents (hash per collection) after a
random workload and after kill -9 of switchyardd at failpoints; users' SCRAM credentials follow; the writer's
own changes are never collected back (echo suppression with both directions collecting)."""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import random

import pytest

import sandbox
from helpers import instance, wait_for, wait_state

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
