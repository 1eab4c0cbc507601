"""The official Node.js MongoDB driver (`mongodb` 6.x, tests/clients/node-mongo, built and cached by
scripts/install-test-clients.sh) through an `engine = mongodb` pair's proxy, on two real FerretDB servers: a
fourth independent client after pymongo 4, pymongo 3.11 and libmongoc. It logs in with SCRAM-SHA-256 (with
speculative authentication in its hello), gets the same CRUD, cursor (several getMores) and aggregation results
as the same program connected to business directly, gets 18 on a wrong password, and its write loop goes on
across a switchover with 0 errors and every acknowledged write on DR. An update by a numeric _id of another
BSON type than the stored one (the server matches it) does not make the ack ledger refuse the switch (its
document key treats equal numbers alike)."""

from __future__ import annotations

import json
import subprocess
from urllib.parse import quote

import pytest

from helpers import installed_client, wait_for
from test_ferretdb_sandbox import ferretdb_pair  # noqa: F401 (fixture: this module's own servers)
from test_mongo_switch import APP_PASSWORD, APP_USER, app_client, switchable_pair

pytestmark = pytest.mark.nosan   # the proxy paths run under ASan with pymongo and libmongoc; a fourth driver only adds time


RUN_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def node_client():
    """The launcher of the Node.js client, built (~10 s once per machine) or found in the cache."""
    return installed_client("node")


@pytest.fixture
def switchable(mongo_daemon, ferretdb_pair):  # noqa: F811
    with switchable_pair(mongo_daemon, ferretdb_pair) as s:
        yield s


def uri(port, user=APP_USER, password=APP_PASSWORD, direct=False):
    u = (f"mongodb://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{port}/"
         f"?authSource=admin&authMechanism=SCRAM-SHA-256")
    return u + "&directConnection=true" if direct else u


def run(node_client, *args):
    r = subprocess.run([node_client, *map(str, args)], capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"exit {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def loop_result(p):
    """Stops a running `loop` client p (Popen with pipes) and returns its result {ok, acked, errors}, asserting
    it exited 0 (killed if it did not end)."""
    try:
        out, err = p.communicate("stop\n", timeout=RUN_TIMEOUT_S)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def test_crud_cursor_aggregation_same_as_direct_and_wrong_password_18(node_client, switchable, ferretdb_pair):  # noqa: F811
    d, _, db = switchable
    via = run(node_client, "crud", uri(d.port), db)
    direct = run(node_client, "crud", uri(ferretdb_pair.business.port, direct=True), db)
    assert via["ok"] is True, via
    assert via["users"] == [{"user": APP_USER, "db": "admin"}], via
    # 150 + 2 - 1 - 30 documents read 20 at a time: the first batch, then 6 getMores on one server cursor
    assert len(via["cursor"]) == 121 and via["getMores"] >= 6, via["getMores"]
    assert [g["_id"] for g in via["aggregate"]] == [0, 1, 3, 4], via["aggregate"]
    assert via == direct
    bad = run(node_client, "ping", uri(d.port, password="wrong"))
    assert (bad["ok"], bad["code"], bad["errmsg"]) == (False, 18, "Authentication failed."), bad
    unknown = run(node_client, "ping", uri(d.port, user="nobody", password="x"))
    assert (unknown["ok"], unknown["code"]) == (False, 18), unknown
    assert run(node_client, "ping", uri(d.port)) == {"ok": True}


def test_write_loop_goes_on_across_a_switchover(node_client, switchable, ferretdb_pair):  # noqa: F811
    d, pname, db = switchable
    p = subprocess.Popen([node_client, "loop", uri(d.port), db, "4"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        r = d.admin_ok("switchover", pair=pname)
        assert r["active_side"] == "dr" and r["moved_clients"] >= 1, r
        with ferretdb_pair.dr.client() as c:        # the loop writes on DR now, directly
            n0 = c[db].nodeloop.count_documents({})
            wait_for(lambda: c[db].nodeloop.count_documents({}) >= n0 + 20, timeout=20.0, interval=0.05,
                     what="the Node.js loop writing on DR after the switch")
    finally:
        res = loop_result(p)
    assert res["errors"] == [], res["errors"][:5]
    acked_ids = [a for a in res["acked"] if not a.endswith("+inc")]
    incs = {a[:-4] for a in res["acked"] if a.endswith("+inc")}
    assert len(acked_ids) > 20
    with ferretdb_pair.dr.client() as c:
        on_dr = {x["_id"]: x["n"] for x in c[db].nodeloop.find({}, {"n": 1})}
    missing = [a for a in acked_ids if a not in on_dr]
    assert not missing, f"{len(missing)} acknowledged inserts not on DR: {missing[:10]}"
    lost_inc = [a for a in incs if on_dr.get(a) != 1]
    assert not lost_inc, f"acknowledged $inc not on DR: {lost_inc[:10]}"


def test_int64_id_updated_by_a_number_from_node_does_not_refuse_the_switch(node_client, switchable):
    """A document written with a 64-bit _id (as a Java or Go application does) and updated by the Node.js
    driver, which sends a small integer as an int32: the server matches it, and the switch must go on."""
    from bson.int64 import Int64
    d, pname, db = switchable
    with app_client(d.port) as c:
        c[db].num.insert_one({"_id": Int64(7), "v": 0})
    r = run(node_client, "set", uri(d.port), db, "num", "7")
    assert (r["ok"], r["matched"], r["modified"]) == (True, 1, 1), r
    reply = d.admin("switchover", pair=pname)
    assert reply["ok"] is True, reply
