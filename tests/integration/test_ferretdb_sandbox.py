"""FerretDB v1.24.2 as the MongoDB engine will meet it, measured directly (no switchyardd yet):
both driver handshakes (pymongo 4.x OP_MSG, Debian's pymongo 3.11 OP_QUERY) and CRUD, SCRAM logins and
their errors, the oplog entries CRUD leaves in local.oplog.rs, and what SCRAM pass-through depends on:
credentials readable over usersInfo / admin.system.users, and a copied credential document letting the same
password log in on the other server. Frames pass through a recording tee (mongo_tee.py) where the
handshake's opcodes matter."""

import base64
import struct
import time

import pytest

import sandbox
from mongo_tee import MongoTee

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
APP_USER, APP_PASSWORD = "app", "app-pw-1"

pymongo = sandbox.pymongo4()
from pymongo.errors import OperationFailure  # noqa: E402


def wait_until(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def app_user(ferretdb_pair):
    """The application user, created on business only (as the issue's tests do)."""
    b = ferretdb_pair.business
    b.create_user(APP_USER, APP_PASSWORD)
    yield APP_USER
    for s in ferretdb_pair:
        try:
            s.drop_user(APP_USER)
        except OperationFailure:
            pass


def pymongo4_crud(b, host, port, **kw):
    with pymongo.MongoClient(host, port, directConnection=True, username=b.admin_user, password=b.admin_password,
                             authSource="admin", serverSelectionTimeoutMS=10000, **kw) as c:
        coll = c.sbx4.items
        coll.drop()
        coll.insert_one({"_id": 1, "name": "a", "n": 1})
        coll.insert_many([{"_id": i, "n": i} for i in range(2, 12)])
        assert coll.count_documents({}) == 11
        assert coll.update_one({"_id": 1}, {"$set": {"name": "b"}, "$inc": {"n": 5}}).modified_count == 1
        assert coll.find_one({"_id": 1}) == {"_id": 1, "name": "b", "n": 6}
        assert coll.delete_many({"n": {"$gte": 10}}).deleted_count == 2
        assert [d["_id"] for d in coll.find({}, sort=[("_id", 1)], batch_size=3)] == list(range(1, 10))
        hello = c.admin.command("hello")
        coll.drop()
    return hello


def c2s_commands(tee):
    """(opcode, first key of the command) of each client message, per connection order."""
    out = []
    for d, _, f in tee.frames:
        if d != "c2s":
            continue
        op = struct.unpack_from("<i", f, 12)[0]
        if op == OP_QUERY:
            doc = f[f.index(b"\0", 20) + 9:]
        else:
            doc = f[21:]
        out.append((op, doc[5:doc.index(b"\0", 5)].decode()))
    return out


def test_pymongo4_handshakes_and_crud(ferretdb_pair):
    """pymongo 4.10 opens each connection with a legacy OP_QUERY `ismaster` (+ helloOk) on admin.$cmd, which
    FerretDB answers with OP_REPLY; the authenticating connection puts SCRAM's first step into it
    (speculativeAuthenticate, answered: the next message is already saslContinue). Everything after the
    handshake is OP_MSG. With a declared server API (ServerApi("1")) it is OP_MSG `hello` from the start,
    and FerretDB ignores speculativeAuthenticate there: saslStart follows."""
    b = ferretdb_pair.business
    assert pymongo.version.startswith("4.")
    with MongoTee(b.host, b.port) as tee:
        hello = pymongo4_crud(b, tee.host, tee.port)
    cmds = c2s_commands(tee)
    assert cmds[0] == (OP_QUERY, "ismaster"), cmds[:4]
    legacy = [c for c in cmds if c[0] == OP_QUERY]
    assert {c[1] for c in legacy} == {"ismaster"}, legacy               # only the handshakes
    assert (OP_MSG, "saslStart") not in cmds and (OP_MSG, "saslContinue") in cmds
    assert set(tee.opcodes("s2c")) == {OP_REPLY, OP_MSG}
    # hello names the server itself: a proxy must rewrite it (FINDINGS.md, Topology)
    assert hello["setName"] == "rs0" and hello["hosts"] == [f"{b.host}:{b.port}"]
    assert hello["maxMessageSizeBytes"] == 48000000 and "me" not in hello and "primary" not in hello
    # insert_many went as a kind-1 "documents" sequence
    assert any(f[20] == 0 and b"\x01" in f[21:] and b"documents\x00" in f
               for d, _, f in tee.frames if d == "c2s" and struct.unpack_from("<i", f, 12)[0] == OP_MSG)

    with MongoTee(b.host, b.port) as tee:
        pymongo4_crud(b, tee.host, tee.port, server_api=pymongo.server_api.ServerApi("1"))
    cmds = c2s_commands(tee)
    assert cmds[0] == (OP_MSG, "hello") and all(op == OP_MSG for op, _ in cmds), cmds[:4]
    assert (OP_MSG, "saslStart") in cmds
    assert set(tee.opcodes("s2c")) == {OP_MSG}


PYMONGO3_CRUD = """
c = pymongo.MongoClient(ARGS["host"], ARGS["port"], username=ARGS["user"], password=ARGS["password"],
                        authSource="admin", serverSelectionTimeoutMS=10000, connect=True)
coll = c.sbx3.items
coll.drop()
coll.insert_one({"_id": 1, "v": "x"})
coll.insert_many([{"_id": i} for i in range(2, 6)])
coll.update_one({"_id": 1}, {"$set": {"v": "y"}})
coll.delete_one({"_id": 5})
RESULT = {"version": pymongo.version, "docs": list(coll.find({}, sort=[("_id", 1)])),
          "mech": c.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"]}
coll.drop()
bad = pymongo.MongoClient(ARGS["host"], ARGS["port"], username=ARGS["user"], password="wrong",
                          authSource="admin", serverSelectionTimeoutMS=10000)
try:
    bad.admin.command("ping")
    RESULT["wrong_password"] = None
except pymongo.errors.OperationFailure as e:
    RESULT["wrong_password"] = e.code
"""


def test_pymongo3_op_query_handshake_and_crud(ferretdb_pair, app_user):
    b = ferretdb_pair.business
    with MongoTee(b.host, b.port) as tee:
        r = sandbox.run_pymongo3(PYMONGO3_CRUD, {"host": tee.host, "port": tee.port, "user": APP_USER,
                                                  "password": APP_PASSWORD})
    assert r["version"].startswith("3.11")
    assert r["docs"] == [{"_id": 1, "v": "y"}, {"_id": 2}, {"_id": 3}, {"_id": 4}]
    assert r["wrong_password"] == 18
    first = [f for d, _, f in tee.frames if d == "c2s"][0]
    assert struct.unpack_from("<i", first, 12)[0] == OP_QUERY and first[20:31] == b"admin.$cmd\x00"
    assert c2s_commands(tee)[0] == (OP_QUERY, "ismaster")
    s2c = tee.opcodes("s2c")
    assert s2c[0] == OP_REPLY and OP_MSG in s2c               # legacy handshake, then OP_MSG (wire 21)


def test_scram_logins_and_errors(ferretdb_pair, app_user):
    b = ferretdb_pair.business
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-1"):
        with b.client(APP_USER, APP_PASSWORD, mechanism=mech) as c:
            c.sbx.t.insert_one({"mech": mech})
            assert c.sbx.t.count_documents({"mech": mech}) == 1
    cases = {"wrong password": (APP_USER, "nope"), "unknown user": ("nobody", APP_PASSWORD)}
    for what, (user, pw) in cases.items():
        with b.client(user, pw, mechanism="SCRAM-SHA-256") as c:
            with pytest.raises(OperationFailure) as ei:
                c.admin.command("ping")
            assert ei.value.code == 18, (what, ei.value.details)
            assert ei.value.details.get("codeName") == "AuthenticationFailed", (what, ei.value.details)
    with b.client(auth=False) as c:
        with pytest.raises(OperationFailure) as ei:
            c.sbx.t.find_one()
        assert ei.value.code == 13
        assert c.admin.command("hello")["ok"] == 1.0                  # hello needs no login
    with b.client() as c:
        c.sbx.t.drop()


def oplog_since(server, ts, ns):
    with server.client() as c:
        q = {"ns": ns} if ts is None else {"ns": ns, "ts": {"$gt": ts}}
        return list(c.local["oplog.rs"].find(q, sort=[("$natural", 1)]))


def test_oplog_records_insert_update_delete(ferretdb_pair):
    b = ferretdb_pair.business
    with b.client() as c:
        opts = c.local.command("listCollections", filter={"name": "oplog.rs"})["cursor"]["firstBatch"][0]
        assert opts["options"].get("capped") is True
        last = list(c.local["oplog.rs"].find(sort=[("$natural", -1)], limit=1))
        ts0 = last[0]["ts"] if last else None
        coll = c.sbxop.docs
        coll.insert_one({"_id": 1, "a": 1, "gone": True})
        coll.update_one({"_id": 1}, {"$set": {"a": 2}, "$unset": {"gone": ""}})
        coll.delete_one({"_id": 1})
    entries = wait_until(lambda: (lambda e: e if len(e) >= 3 else None)(oplog_since(b, ts0, "sbxop.docs")),
                         what="3 oplog entries for sbxop.docs")
    ops = [e["op"] for e in entries]
    assert ops == ["i", "u", "d"], entries
    ins, upd, dele = entries
    assert ins["o"] == {"_id": 1, "a": 1, "gone": True}
    # FerretDB logs an update as {$v: 1, $set: <the whole new document>}: $unset fields are just absent
    assert upd["o2"] == {"_id": 1} and upd["o"] == {"$v": 1, "$set": {"_id": 1, "a": 2}}, upd
    assert dele["o"] == {"_id": 1}
    assert all(type(e["ts"]).__name__ == "Timestamp" for e in entries)
    assert entries[0]["ts"] < entries[1]["ts"] < entries[2]["ts"]
    assert {"wall", "ns", "op", "o"} <= set(ins)


def test_credentials_readable_and_copyable(ferretdb_pair, app_user):
    b, dr = ferretdb_pair
    info = b.user_credentials(APP_USER)
    creds = info["credentials"]
    assert set(creds) == {"SCRAM-SHA-256", "SCRAM-SHA-1"}
    assert creds["SCRAM-SHA-256"]["iterationCount"] == 15000 and creds["SCRAM-SHA-1"]["iterationCount"] == 10000
    for m in creds.values():
        assert set(m) == {"iterationCount", "salt", "storedKey", "serverKey"}
        base64.b64decode(m["salt"], validate=True)
    with b.client() as c:
        doc = c.admin["system.users"].find_one({"_id": f"admin.{APP_USER}"})
    assert doc is not None and doc["credentials"] == creds          # the same, read with a plain find
    # the user does not exist on DR: login fails there
    with dr.client(APP_USER, APP_PASSWORD) as c:
        with pytest.raises(OperationFailure) as ei:
            c.admin.command("ping")
        assert ei.value.code == 18
    # copy the document as it is into DR's admin.system.users: the same password logs in, the same salt
    with dr.client() as c:
        c.admin["system.users"].insert_one(doc)
    assert dr.user_credentials(APP_USER)["credentials"] == creds
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-1"):
        with dr.client(APP_USER, APP_PASSWORD, mechanism=mech) as c:
            c.sbxcopy.t.insert_one({"m": mech})
        with dr.client(APP_USER, "wrong", mechanism=mech) as c:
            with pytest.raises(OperationFailure) as ei:
                c.admin.command("ping")
            assert ei.value.code == 18
    with dr.client() as c:
        c.sbxcopy.t.drop()
    # createUser on each side makes different salts: pass-through needs the copied document, not a re-create
    dr.drop_user(APP_USER)
    dr.create_user(APP_USER, APP_PASSWORD)
    assert dr.user_credentials(APP_USER)["credentials"]["SCRAM-SHA-256"]["salt"] != creds["SCRAM-SHA-256"]["salt"]


def test_failed_start_leaves_nothing_running():
    before = set(sandbox.leftover_pids())
    s = sandbox.FerretDB(7, extra_args=["--no-such-flag"], ready_timeout=10)
    with pytest.raises(sandbox.SandboxError) as ei:
        s.start()
    assert "exited" in str(ei.value)
    assert s.dir is None and s.pid is None
    assert set(sandbox.leftover_pids()) <= before


def test_restart_keeps_data_and_port(ferretdb_pair):
    dr = ferretdb_pair.dr
    port = dr.port
    with dr.client() as c:
        c.sbxr.t.insert_one({"_id": "kept"})
    dr.kill9()
    assert not dr.is_alive()
    dr.start()
    assert dr.port == port
    with dr.client() as c:
        assert c.sbxr.t.find_one({"_id": "kept"}) == {"_id": "kept"}
        c.sbxr.t.drop()
