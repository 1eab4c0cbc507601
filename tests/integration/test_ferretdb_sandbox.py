"""FerretDB v1.24.2 as the MongoDB engine will meet it, measured directly (no switchyardd yet):
both driver handshakes (pymongo 4.x OP_MSG, Debian's pymongo 3.11 OP_QUERY) and CRUD, SCRAM logins and
their errors, the oplog entries CRUD leaves in local.oplog.rs, and what SCRAM pass-through depends on:
credentials readable over usersInfo / admin.system.users, and a copied credential document letting the same
password log in on the other server. Frames pass through a recording tee (mongo_tee.py) where the
handshake's opcodes matter."""

import base64
import functools
import socket
import struct
import time

import pytest

import sandbox
from helpers import wait_for
from mongo_tee import MongoTee

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
APP_USER, APP_PASSWORD = "app", "app-pw-1"

pymongo = sandbox.pymongo4()
from pymongo.errors import OperationFailure  # noqa: E402


@pytest.fixture(scope="module")
def ferretdb_pair():
    """This module's own two servers: what it measures (oplog tailing by ts, cursors) must not depend on what
    other modules did to the session's pair (filled and wrapped its capped oplog, killed and restarted a
    server: after a restart the tailed late insert was never seen, to be understood for the collector)."""
    from conftest import FerretDBPair
    business, dr = sandbox.start_ferretdb_pair()
    try:
        yield FerretDBPair(business, dr)
    finally:
        for s in (business, dr):
            s.stop()


# helpers.wait_for with this module's bound and polling interval
wait_until = functools.partial(wait_for, timeout=10.0, interval=0.05)


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
    # saslStart says options.skipEmptyExchange: true, yet FerretDB answers the client-final with done: false,
    # so pymongo sends an empty saslContinue (MongoDB ends with done: true there)
    assert cmds.count((OP_MSG, "saslContinue")) == 2
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
    cmds = c2s_commands(tee)
    assert cmds[0] == (OP_QUERY, "ismaster")
    # 3.11 authenticates speculatively too: no saslStart, straight to saslContinue over OP_MSG
    assert (OP_MSG, "saslStart") not in cmds and (OP_MSG, "saslContinue") in cmds
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


# --- wire edges the proxy must handle itself (raw sockets, no driver) ------------------------------------

def _op_msg(doc, flags=0, request_id=1, checksum=False):
    import bson                                    # pymongo 4's, already imported through sandbox.pymongo4()
    from make_crc import crc32c_py
    m = bytearray(struct.pack("<iiiiI", 0, request_id, 0, OP_MSG, flags | (1 if checksum else 0)))
    m += b"\x00" + bson.encode(doc)
    struct.pack_into("<i", m, 0, len(m) + (4 if checksum else 0))
    if checksum:
        m += struct.pack("<I", crc32c_py(bytes(m)))
    return bytes(m)


def _read_reply(s, timeout=2.0):
    """(responseTo, flagBits, body) of the next OP_MSG, or 'closed' / 'timeout'."""
    import bson
    s.settimeout(timeout)
    try:
        hdr = s.recv(16, socket.MSG_WAITALL)
    except socket.timeout:
        return "timeout"
    except ConnectionResetError:
        return "closed"
    if len(hdr) < 16:
        return "closed"
    n, _, response_to, op = struct.unpack("<iiii", hdr)
    rest = s.recv(n - 16, socket.MSG_WAITALL)
    assert op == OP_MSG, op
    flags = struct.unpack_from("<I", rest)[0]
    return response_to, flags, bson.decode(rest[5:5 + struct.unpack_from("<i", rest, 5)[0]])


def test_wire_edges(ferretdb_pair):
    """What FerretDB does with the message forms a proxy must treat carefully (hello needs no login)."""
    b = ferretdb_pair.business
    hello = {"hello": 1, "$db": "admin"}
    with socket.create_connection((b.host, b.port)) as s:
        s.sendall(_op_msg(hello, request_id=5, checksum=True))
        rto, flags, body = _read_reply(s)
        assert rto == 5 and body["ok"] == 1.0 and flags == 0          # checksum accepted; reply has none
        s.sendall(_op_msg({"ping": 1, "$db": "admin"}, flags=2, request_id=6))
        assert _read_reply(s)[:2] == (6, 0)       # moreToCome answered anyway: a stray reply (MongoDB: none)
        s.sendall(_op_msg(hello, flags=0x10000, request_id=7))
        assert _read_reply(s)[:2] == (7, 0)       # exhaustAllowed ignored: one reply, no moreToCome
        s.sendall(_op_msg(hello, flags=0x4, request_id=8))
        assert _read_reply(s)[:2] == (8, 0)       # an unknown required bit is accepted (MongoDB rejects it)
    bad = bytearray(_op_msg(hello, request_id=9, checksum=True))
    bad[-1] ^= 1
    compressed = struct.pack("<iiiiiiB", 28, 10, 0, 2012, OP_MSG, 100, 0) + b"abc"
    oversize = struct.pack("<iiii", 48000001, 11, 0, OP_MSG)
    for what, msg in (("bad checksum", bytes(bad)), ("OP_COMPRESSED", compressed), ("48000001 bytes", oversize)):
        with socket.create_connection((b.host, b.port)) as s:
            s.sendall(msg)
            assert _read_reply(s) == "closed", what    # no error document: the connection just closes


def test_user_changes_are_in_the_oplog(ferretdb_pair):
    b = ferretdb_pair.business
    with b.client() as c:
        last = list(c.local["oplog.rs"].find(sort=[("$natural", -1)], limit=1))
        ts0 = last[0]["ts"] if last else None
    b.create_user("oplogged", "pw-1")
    with b.client() as c:
        c.admin.command({"updateUser": "oplogged", "pwd": "pw-2"})
    b.drop_user("oplogged")
    entries = wait_until(lambda: (lambda e: e if len(e) >= 3 else None)(oplog_since(b, ts0, "admin.system.users")),
                         what="3 oplog entries for admin.system.users")
    assert [e["op"] for e in entries] == ["i", "u", "d"]
    assert entries[0]["o"]["_id"] == "admin.oplogged" and "SCRAM-SHA-256" in entries[0]["o"]["credentials"]
    assert entries[1]["o"]["$set"]["credentials"] != entries[0]["o"]["credentials"]   # the new password's


def test_oplog_tailing_and_cursors(ferretdb_pair):
    b = ferretdb_pair.business
    with b.client() as c:
        # from the oplog's end as it is now: other tests on the same servers may have filled (and wrapped)
        # the capped oplog, and a tailable cursor from its start would have to walk all of it
        last = list(c.local["oplog.rs"].find(sort=[("$natural", -1)], limit=1))
        since = {"ts": {"$gt": last[0]["ts"]}} if last else {}
        c.sbxcur.t.insert_many([{"_id": i} for i in range(5)])
        wait_until(lambda: len(oplog_since(b, None, "sbxcur.t")) >= 5, what="5 oplog entries")
        # a tailable awaitData cursor stays open only if its first batch comes back full (batch size 1)
        tail = c.local["oplog.rs"].find(since, cursor_type=pymongo.CursorType.TAILABLE_AWAIT,
                                        batch_size=1).max_await_time_ms(100)
        # read up to our 5 entries: an empty batch is not "caught up" (under load a getMore can come back
        # empty after maxAwaitTimeMS while entries exist; seen here with fuzzers running beside the test)
        seen = []
        wait_until(lambda: (seen.extend(d for d in tail) or
                            sum(1 for d in seen if d["ns"] == "sbxcur.t") >= 5), what="the 5 tailed inserts")
        assert tail.alive
        # FerretDB can deliver entries again (same _id and ts) after a later insert, ~1 run in 20 here:
        # a collector keeps only ts > the last ts it took
        last_ts = max(d["ts"] for d in seen)
        c.sbxcur.t.insert_one({"_id": "late"})
        late = wait_until(lambda: [d for d in tail if d["ts"] > last_ts], what="the tailed insert")
        assert [d["o"] for d in late] == [{"_id": "late"}]
        tail.close()
        # default batch size: a first batch shorter than it ends the cursor (only this collection's entries:
        # the whole oplog holds more than a batch once other tests on the same servers ran first)
        short = c.local["oplog.rs"].find({"ns": "sbxcur.t"},
                                         cursor_type=pymongo.CursorType.TAILABLE_AWAIT).max_await_time_ms(100)
        list(short)
        assert not short.alive
        # killCursors, then getMore on it: CursorNotFound (43), the code the proxy answers after a switch
        cur = c.sbxcur.t.find({}, batch_size=2)
        next(cur)
        killed = c.sbxcur.command({"killCursors": "t", "cursors": [cur.cursor_id]})
        assert killed["cursorsKilled"] == [cur.cursor_id]
        with pytest.raises(OperationFailure) as ei:
            c.sbxcur.command({"getMore": cur.cursor_id, "collection": "t"})
        assert ei.value.code == 43 and ei.value.details.get("codeName") == "CursorNotFound"
        # what FerretDB 1.24 lacks (issue 10): transactions (9), killOp / replSetGetStatus (59)
        with pytest.raises(OperationFailure) as ei:
            with c.start_session() as s:
                s.start_transaction()
                c.sbxcur.t.insert_one({"_id": "txn"}, session=s)
                s.commit_transaction()
        assert ei.value.code == 9
        for cmd in ({"killOp": 1, "op": 1}, {"replSetGetStatus": 1}):
            with pytest.raises(OperationFailure) as ei:
                c.admin.command(cmd)
            assert ei.value.code == 59
        with pytest.raises(OperationFailure) as ei:
            c.sbxcur.t.insert_one({"_id": 0})
        assert ei.value.code == 11000 and "codeName" not in ei.value.details
        c.sbxcur.t.drop()
