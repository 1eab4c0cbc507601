"""The MongoDB proxy (engine = mongodb) in front of FerretDB v1.24.2, first step: one backend connection per
client on the active side, frames relayed with the handshake's topology rewritten, SCRAM logins checked by
the proxy and repeated on the backend from ClientKey (SCRAM pass-through; other mechanisms passed through to
the server). Through the proxy and direct, the same results with pymongo 4 (default OP_QUERY handshake and
ServerApi("1") OP_MSG), pymongo 3.11 and libmongoc; clients stay on the proxy; w:0 writes; bad frames from a
raw socket close only that connection; hold/release. Switches (sessions moving to the other side) are
tests/integration/test_mongo_switch.py."""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import socket
import struct
import subprocess
import threading
import time
import uuid

import pytest

import sandbox
from conftest import BUILD_DIR
from helpers import wait_for

pymongo = sandbox.pymongo4()
import bson  # noqa: E402  (pymongo 4's bson, from the same venv)
from bson import json_util  # noqa: E402
from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne  # noqa: E402
from pymongo.errors import OperationFailure  # noqa: E402
from pymongo.server_api import ServerApi  # noqa: E402
from pymongo.write_concern import WriteConcern  # noqa: E402

OP_REPLY, OP_QUERY, OP_COMPRESSED, OP_MSG = 1, 2004, 2012, 2013
DB = "mproxy"


# helpers.wait_for with this module's bound and polling interval
wait_until = functools.partial(wait_for, timeout=10.0, interval=0.05)


def mclient(server, host, port, **kw):
    """A pymongo 4 client as the admin user, without directConnection: the driver follows what hello
    says (through the proxy it must keep using the proxy)."""
    kw.setdefault("serverSelectionTimeoutMS", 10000)
    kw.setdefault("username", server.admin_user)
    kw.setdefault("password", server.admin_password)
    kw.setdefault("authSource", "admin")
    return pymongo.MongoClient(host, port, **kw)


def canon(x):
    return json.loads(json_util.dumps(x, json_options=json_util.CANONICAL_JSON_OPTIONS))


def every_type_doc(i: int) -> dict:
    return {
        "_id": i, "int32": 7, "int64": bson.int64.Int64(2 ** 40), "double": 1.5, "neg": -0.25,
        "str": "plain", "unicode": "zäöü ✓ 中文 🚀",
        "bin": bson.binary.Binary(b"\x00\x01\xff" * 10), "uuid": bson.binary.Binary(uuid.UUID(int=i).bytes, 4),
        "oid": bson.objectid.ObjectId("65a1b2c3d4e5f60718293a4b"), "bool": True, "null": None,
        "date": datetime.datetime(2024, 1, 2, 3, 4, 5, 678000), "regex": bson.regex.Regex("^a.*z$", "i"),
        "ts": bson.timestamp.Timestamp(1700000000, 5), "array": [1, "two", 3.0, {"five": 5}],
        "nested": {"a": {"b": {"c": [1, 2, {"d": "deep"}]}}}, "empty_doc": {}, "empty_array": [],
    }


# BSON FerretDB 1.24 refuses: it closes the connection on the first four (measured), and answers a write
# error for nested arrays. Through the proxy the client must see the same.
UNSUPPORTED = {"decimal": bson.decimal128.Decimal128("1234.5678"), "minkey": bson.min_key.MinKey(),
               "maxkey": bson.max_key.MaxKey(), "code": bson.code.Code("function() { return 1; }"),
               "nested_array": [1, [2]]}


def workload(c) -> dict:
    """The same operations on any client; returns everything the server answered (canonical JSON)."""
    db = c[DB]
    coll = db.items
    coll.drop()
    out = {}
    coll.insert_one({"_id": 1, "name": "a", "n": 1})
    coll.insert_many([{"_id": i, "n": i, "g": i % 3} for i in range(2, 101)])
    out["count"] = coll.count_documents({})
    out["update"] = coll.update_one({"_id": 1}, {"$set": {"name": "b"}, "$inc": {"n": 5}}).modified_count
    out["one"] = coll.find_one({"_id": 1})
    out["delete"] = coll.delete_many({"n": {"$gte": 95}}).deleted_count
    bulk = coll.bulk_write([InsertOne({"_id": 1000, "n": 0}), UpdateOne({"_id": 2}, {"$set": {"x": 1}}),
                            DeleteOne({"_id": 3}), ReplaceOne({"_id": 4}, {"n": 44}),
                            UpdateMany({"g": 1}, {"$inc": {"n": 100}})], ordered=True)
    out["bulk"] = [bulk.inserted_count, bulk.matched_count, bulk.modified_count, bulk.deleted_count]
    cur = coll.find({}, sort=[("_id", 1)], batch_size=7)
    out["cursor"] = list(cur)                                 # ~14 batches: several getMores
    out["agg"] = list(coll.aggregate([{"$match": {"n": {"$lt": 200}}},
                                      {"$group": {"_id": "$g", "total": {"$sum": "$n"}, "k": {"$sum": 1}}},
                                      {"$sort": {"_id": 1}}]))
    types = db.types
    types.drop()
    types.insert_many([every_type_doc(i) for i in range(3)])
    out["types"] = list(types.find({}, sort=[("_id", 1)]))
    out["unicode_query"] = list(types.find({"unicode": "zäöü ✓ 中文 🚀"}, {"_id": 1}))
    unsupported = {}
    for k, v in UNSUPPORTED.items():
        try:
            db.unsupported.insert_one({"_id": k, "v": v})
            unsupported[k] = "accepted"
        except pymongo.errors.PyMongoError as e:
            unsupported[k] = [type(e).__name__, getattr(e, "code", None)]
    out["unsupported"] = unsupported
    big = db.big
    big.drop()
    payload = "x" * (15 * 1024 * 1024)                       # a 15 MB document (16 MiB is the BSON limit)
    big.insert_one({"_id": "big", "payload": payload})
    got = big.find_one({"_id": "big"})
    out["big"] = [len(got["payload"]), hashlib.sha256(got["payload"].encode()).hexdigest()]
    big.drop()
    try:
        coll.insert_one({"_id": 1})
        out["dup"] = None
    except pymongo.errors.DuplicateKeyError as e:
        out["dup"] = e.code
    try:
        db.command({"noSuchCommand": 1})
    except OperationFailure as e:
        out["unknown_cmd"] = e.code
    return canon(out)


def proxy_sessions(d):
    return d.admin_ok("clients", pair="demo")["clients"]


# --- the pair ----------------------------------------------------------------------------------------------


def test_mongodb_pair_starts_a_listener(mongo_daemon, ferretdb_pair):
    """engine = mongodb is no longer refused: status shows the pair and its listener; a pair without `objects`
    has no forward instance, so switches answer as they do for MariaDB (unknown_instance)."""
    d = mongo_daemon()
    p = d.pair_status()
    assert p["engine"] == "mongodb" and p["active_side"] == "business" and p["clients"] == 0
    assert p["listen"].startswith("127.0.0.1:") and d.port > 0
    for cmd in ("switchover", "failover", "switchback"):
        r = d.admin(cmd, pair="demo")
        assert r["ok"] is False and r["error"]["code"] == "unknown_instance", (cmd, r)
        assert r["error"]["message"] == "demo has no forward instance (no objects configured): nothing to switch with"


# --- same results through the proxy and direct ------------------------------------------------------------


@pytest.mark.parametrize("api", ["default", "server_api"])
def test_pymongo4_same_results_and_stays_on_proxy(mongo_daemon, ferretdb_pair, api):
    """pymongo 4: default handshake (OP_QUERY isMaster, speculative SCRAM) and ServerApi("1") (OP_MSG hello,
    saslStart): CRUD, bulk writes, every BSON type, unicode, a 15 MB document, a cursor over many batches,
    aggregation, errors — identical through the proxy and direct. The driver discovers the replica set from
    hello and keeps talking to the proxy (hosts/me/primary rewritten)."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    kw = {"server_api": ServerApi("1")} if api == "server_api" else {}
    t0 = time.monotonic()
    with mclient(b, b.host, b.port, directConnection=True, **kw) as c:
        direct = workload(c)
    print(f"workload direct ({api}): {time.monotonic() - t0:.2f}s")
    t0 = time.monotonic()
    with mclient(b, "127.0.0.1", d.port, **kw) as c:
        proxied = workload(c)
        assert c.address == ("127.0.0.1", d.port)
        assert c.nodes == frozenset({("127.0.0.1", d.port)}), c.nodes
        hello = c.admin.command("hello")
        assert hello["hosts"] == [f"127.0.0.1:{d.port}"] and hello["me"] == f"127.0.0.1:{d.port}"
        assert hello["primary"] == f"127.0.0.1:{d.port}" and "compression" not in hello
        assert hello["setName"] == "rs0"
        sessions = proxy_sessions(d)
        assert sessions, "no session listed while the client is connected"
        worker = [s for s in sessions if s["login"] == "scram_pass_through"]
        assert worker and all(s["user"] == b.admin_user and s["auth_db"] == "admin" for s in worker), sessions
        assert all(s["mechanism"] == "SCRAM-SHA-256" and s["unmovable_reason"] == "" for s in worker), worker
        assert sum(s["requests"] for s in worker) >= 3
        for s in sessions:
            assert s["movable"] is True and s["side"] == "business" and s["held_ms"] == 0
            assert s["unmovable_reason"] == "" and s["in_transaction"] is False
    print(f"workload through the proxy ({api}): {time.monotonic() - t0:.2f}s")
    assert proxied == direct


PYMONGO3_WORKLOAD = """
import hashlib
from bson import json_util
c = pymongo.MongoClient(ARGS["host"], ARGS["port"], username=ARGS["user"], password=ARGS["password"],
                        authSource="admin", serverSelectionTimeoutMS=10000, connect=True)
db = c.mproxy3
coll = db.items
coll.drop()
out = {}
coll.insert_one({"_id": 1, "v": "x", "u": "zäöü ✓ 中文"})
coll.insert_many([{"_id": i, "g": i % 4} for i in range(2, 60)])
out["update"] = coll.update_one({"_id": 1}, {"$set": {"v": "y"}}).modified_count
b = coll.bulk_write([pymongo.InsertOne({"_id": 500}), pymongo.DeleteOne({"_id": 5}),
                     pymongo.UpdateMany({"g": 1}, {"$set": {"odd": True}})])
out["bulk"] = [b.inserted_count, b.deleted_count, b.modified_count]
out["cursor"] = list(coll.find({}, sort=[("_id", 1)], batch_size=5))
out["agg"] = list(coll.aggregate([{"$group": {"_id": "$g", "k": {"$sum": 1}}}, {"$sort": {"_id": 1}}]))
big = "y" * (15 * 1024 * 1024)
db.big.drop()
db.big.insert_one({"_id": 1, "p": big})
out["big"] = hashlib.sha256(db.big.find_one({"_id": 1})["p"].encode()).hexdigest()
db.big.drop()
try:
    c.admin.command("ping")
    pymongo.MongoClient(ARGS["host"], ARGS["port"], username=ARGS["user"], password="wrong",
                        authSource="admin", serverSelectionTimeoutMS=10000).admin.command("ping")
    out["bad_login"] = None
except pymongo.errors.OperationFailure as e:
    out["bad_login"] = [e.code, e.details.get("errmsg")]
nodes = sorted("%s:%d" % n for n in c.nodes)
RESULT = {"out": json_util.dumps(out, json_options=json_util.CANONICAL_JSON_OPTIONS), "nodes": nodes}
"""


def test_pymongo3_same_results(mongo_daemon, ferretdb_pair):
    """pymongo 3.11 (legacy OP_QUERY isMaster handshake, OP_REPLY): the same results through the proxy and
    direct, including a wrong password's code 18 and the server's message; it stays on the proxy."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    args = {"user": b.admin_user, "password": b.admin_password}
    direct = sandbox.run_pymongo3(PYMONGO3_WORKLOAD, {**args, "host": b.host, "port": b.port}, timeout=120)
    proxied = sandbox.run_pymongo3(PYMONGO3_WORKLOAD, {**args, "host": "127.0.0.1", "port": d.port}, timeout=120)
    assert proxied["nodes"] == [f"127.0.0.1:{d.port}"]
    assert json.loads(proxied["out"]) == json.loads(direct["out"])
    assert json.loads(proxied["out"])["bad_login"][0] == {"$numberInt": "18"}


@pytest.mark.parametrize("api", ["default", "server_api"])
def test_wrong_password_is_the_servers_error(mongo_daemon, ferretdb_pair, api):
    """A wrong password and an unknown user: code 18 with the server's own message, as directly."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    kw = {"server_api": ServerApi("1")} if api == "server_api" else {}
    errors = []
    for host, port in ((b.host, b.port), ("127.0.0.1", d.port)):
        got = []
        for user, pw in ((b.admin_user, "wrong-password"), ("nobody", "x")):
            with mclient(b, host, port, username=user, password=pw, directConnection=(port == b.port), **kw) as c:
                with pytest.raises(OperationFailure) as ei:
                    c.admin.command("ping")
                got.append((ei.value.code, ei.value.details.get("errmsg"), ei.value.details.get("codeName")))
        errors.append(got)
    assert errors[1] == errors[0]
    assert all(code == 18 for code, _, _ in errors[1])
    # the proxy logged no one in and keeps serving
    with mclient(b, "127.0.0.1", d.port, **kw) as c:
        assert c.admin.command("ping")["ok"] == 1.0


def test_unacknowledged_write_then_command(mongo_daemon, ferretdb_pair):
    """w:0 writes go with moreToCome; FerretDB answers them anyway. The proxy drops those replies, so the next
    command on the same connection reads its own answer (directly, pymongo fails 'Got response id')."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    with mclient(b, "127.0.0.1", d.port, maxPoolSize=1) as c:
        coll = c[DB].get_collection("w0", write_concern=WriteConcern(w=0))
        c[DB].w0.drop()
        for i in range(20):
            coll.insert_one({"_id": i})
        assert c.admin.command("ping")["ok"] == 1.0
        wait_until(lambda: c[DB].w0.count_documents({}) == 20, what="the 20 w:0 inserts")
        assert sorted(x["_id"] for x in c[DB].w0.find()) == list(range(20))
        dropped = sum(s["dropped_replies"] for s in proxy_sessions(d))
        assert dropped >= 20, proxy_sessions(d)


# --- raw frames ---------------------------------------------------------------------------------------------


def op_msg(body: dict, request_id: int = 7, flags: int = 0, checksum: bool = False, crc=None) -> bytes:
    doc = bson.encode(body)
    if checksum:
        flags |= 1
    length = 16 + 4 + 1 + len(doc) + (4 if checksum else 0)
    msg = struct.pack("<iiiiI", length, request_id, 0, OP_MSG, flags) + b"\x00" + doc
    if checksum:
        msg += struct.pack("<I", crc if crc is not None else crc32c(msg))
    return msg


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def read_frame(s: socket.socket):
    """One whole message, or None at EOF."""
    hdr = b""
    while len(hdr) < 16:
        chunk = s.recv(16 - len(hdr))
        if not chunk:
            return None
        hdr += chunk
    length, rid, rto, op = struct.unpack("<iiii", hdr)
    body = b""
    while len(body) < length - 16:
        chunk = s.recv(length - 16 - len(body))
        if not chunk:
            return None
        body += chunk
    return rid, rto, op, body


def msg_body(body: bytes) -> dict:
    assert body[4] == 0
    return bson.decode(body[5:5 + struct.unpack_from("<i", body, 5)[0]])


def raw(d) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    return s


def closed(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_bad_frames_close_only_that_connection(mongo_daemon, ferretdb_pair):
    """OP_COMPRESSED: a clear OP_MSG error naming it, then closed. Garbage, a length below the header, an
    over-size claim, a bad checksum, an unknown opcode: closed. Unknown required flag bits: an error
    (IllegalOpMsgFlag) and the connection goes on. A checksummed OP_MSG is answered (checksum verified and
    stripped). Meanwhile a pymongo client on another connection is served throughout."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    with mclient(b, "127.0.0.1", d.port) as c:
        assert c.admin.command("ping")["ok"] == 1.0
        # OP_COMPRESSED
        s = raw(d)
        inner = op_msg({"ping": 1, "$db": "admin"})
        comp = struct.pack("<iiii", 16 + 9 + len(inner) - 16, 11, 0, OP_COMPRESSED) + \
            struct.pack("<iiB", OP_MSG, len(inner) - 16, 0) + inner[16:]
        s.sendall(comp)
        f = read_frame(s)
        assert f is not None and f[1] == 11 and f[2] == OP_MSG, f
        err = msg_body(f[3])
        assert err["ok"] == 0 and "OP_COMPRESSED" in err["errmsg"], err
        assert closed(s)
        s.close()
        for junk in (b"\x05\x00\x00\x00hello", struct.pack("<i", -20) + b"x" * 30,
                     struct.pack("<iiii", 48000001, 1, 0, OP_MSG),
                     op_msg({"ping": 1, "$db": "admin"}, checksum=True, crc=0x12345678),
                     struct.pack("<iiii", 20, 1, 0, 2002) + b"\0\0\0\0",
                     struct.pack("<iiiiI", 31, 1, 0, OP_MSG, 0) + b"\x00" + struct.pack("<i", 100)
                     + b"\x02x\x00\x00\x00\x00",
                     op_msg({"ping": 1, "$db": "admin"})[:16] + b"\xff" * 40):
            s = raw(d)
            s.sendall(junk)
            assert closed(s), junk[:24]
            s.close()
            assert c.admin.command("ping")["ok"] == 1.0
        # unknown required flag bit: an error, the connection stays usable
        s = raw(d)
        s.sendall(op_msg({"ping": 1, "$db": "admin"}, request_id=21, flags=1 << 5))
        rid, rto, op, body = read_frame(s)
        err = msg_body(body)
        assert rto == 21 and err["ok"] == 0 and err["code"] == 223, err
        s.sendall(op_msg({"hello": 1, "$db": "admin"}, request_id=22, checksum=True))
        rid, rto, op, body = read_frame(s)
        hello = msg_body(body)
        assert rto == 22 and op == OP_MSG and hello["ok"] == 1 and hello["hosts"] == [f"127.0.0.1:{d.port}"]
        assert struct.unpack_from("<I", body, 0)[0] & 1 == 0
        s.close()
        assert c.admin.command("ping")["ok"] == 1.0
    log = d.log()
    assert "OP_COMPRESSED" in log and "exceeds maxMessageSizeBytes" in log and "checksum" in log


class ScriptedServer:
    """A loopback server speaking what real MongoDB does and FerretDB does not (a test double for the wire
    paths FerretDB cannot show): hello names other hosts and offers compression; a hello with exhaustAllowed
    streams three replies (moreToCome on the first two, ids 100..102, a checksum on the last); a moreToCome
    request gets no reply; any other command gets {ok: 1} with a checksum."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.received = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.lsock.close()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    HELLO = {"ismaster": True, "isWritablePrimary": True, "setName": "rs9", "hosts": ["10.9.9.9:27017"],
             "me": "10.9.9.9:27017", "primary": "10.9.9.9:27017", "compression": ["zlib"],
             "maxWireVersion": 17, "minWireVersion": 0, "maxMessageSizeBytes": 48000000, "ok": 1.0}

    @staticmethod
    def reply(rid, rto, body, flags=0, checksum=False):
        doc = bson.encode(body)
        if checksum:
            flags |= 1
        length = 16 + 4 + 1 + len(doc) + (4 if checksum else 0)
        msg = struct.pack("<iiiiI", length, rid, rto, OP_MSG, flags) + b"\x00" + doc
        return msg + (struct.pack("<I", crc32c(msg)) if checksum else b"")

    def _serve(self, c):
        with c:
            while True:
                f = read_frame(c)
                if f is None:
                    return
                rid, _, op, body = f
                if op == OP_QUERY:
                    doc = bson.encode(self.HELLO)
                    c.sendall(struct.pack("<iiiiiqii", 36 + len(doc), 50, rid, OP_REPLY, 0, 0, 0, 1) + doc)
                    continue
                flags = struct.unpack_from("<I", body, 0)[0]
                cmd = msg_body(body)
                self.received.append((rid, flags, next(iter(cmd))))
                if flags & 2:
                    continue                                     # moreToCome: MongoDB never answers
                if next(iter(cmd)) in ("hello", "isMaster", "ismaster") and flags & (1 << 16):
                    c.sendall(self.reply(100, rid, self.HELLO, flags=2) + self.reply(101, 100, self.HELLO, flags=2)
                              + self.reply(102, 101, self.HELLO, checksum=True))
                elif next(iter(cmd)) in ("hello", "isMaster", "ismaster"):
                    c.sendall(self.reply(60, rid, self.HELLO))
                elif next(iter(cmd)) == "dribble":                   # 7 bytes at a time, checksum last
                    m = self.reply(80, rid, {"ok": 1.0, "v": "d" * 300}, checksum=True)
                    for i in range(0, len(m), 7):
                        c.sendall(m[i:i + 7])
                        time.sleep(0.002)
                else:
                    c.sendall(self.reply(70, rid, {"ok": 1.0, "n": 1}, checksum=True))


def test_mongodb_wire_behaviours_against_a_scripted_server(mongo_daemon, ferretdb_pair):
    """What real MongoDB does on the wire and FerretDB does not, against a scripted server: a streaming
    (exhaust) hello's three replies all reach the client with the topology rewritten, responseTo chained
    (the first mapped to the client's id, the others the server's reply ids), moreToCome kept on the first
    two, the server's checksum stripped from the last; a moreToCome request that gets no reply does not
    hold the session (the next command is answered); a reply arriving 7 bytes at a time streams through
    whole; the proxy's request ids are its own."""
    srv = ScriptedServer()
    try:
        d = mongo_daemon(business=f"127.0.0.1:{srv.port}", dr=f"127.0.0.1:{srv.port}")
        me = f"127.0.0.1:{d.port}"
        s = raw(d)
        s.sendall(op_msg({"hello": 1, "topologyVersion": {"counter": 0}, "maxAwaitTimeMS": 10000, "$db": "admin"},
                         request_id=5000, flags=1 << 16))
        got = [read_frame(s) for _ in range(3)]
        assert [(rid, rto) for rid, rto, _, _ in got] == [(100, 5000), (101, 100), (102, 101)]
        flags = [struct.unpack_from("<I", body, 0)[0] for _, _, _, body in got]
        assert flags == [2, 2, 0], flags
        for _, _, op, body in got:
            h = msg_body(body)
            assert op == OP_MSG and h["hosts"] == [me] and h["me"] == me and h["primary"] == me
            assert "compression" not in h and h["setName"] == "rs9"
        s.sendall(op_msg({"insert": "c", "documents": [{"_id": 1}], "writeConcern": {"w": 0}, "$db": "x"},
                         request_id=5001, flags=2))
        s.sendall(op_msg({"ping": 1, "$db": "admin"}, request_id=5002))
        rid, rto, op, body = read_frame(s)
        assert rto == 5002 and msg_body(body) == {"ok": 1.0, "n": 1}
        assert struct.unpack_from("<I", body, 0)[0] == 0                  # checksum stripped, frame consistent
        # a reply that arrives 7 bytes at a time (header split, checksum split) is relayed whole and right
        s.sendall(op_msg({"dribble": 1, "$db": "admin"}, request_id=5003))
        rid, rto, op, body = read_frame(s)
        assert rto == 5003 and msg_body(body) == {"ok": 1.0, "v": "d" * 300}
        assert struct.unpack_from("<I", body, 0)[0] == 0 and len(body) == 4 + 1 + len(bson.encode(msg_body(body)))
        ids = [r[0] for r in srv.received]
        assert ids == sorted(ids) and 5000 not in ids, srv.received     # the proxy's own ids, in order
        s.close()
        # the legacy handshake (OP_QUERY -> OP_REPLY) is rewritten too
        s = raw(d)
        q = bson.encode({"isMaster": 1})
        s.sendall(struct.pack("<iiiii", 16 + 4 + 11 + 8 + len(q), 9, 0, OP_QUERY, 0) + b"admin.$cmd\x00"
                  + struct.pack("<ii", 0, -1) + q)
        rid, rto, op, body = read_frame(s)
        assert op == OP_REPLY and rto == 9
        h = bson.decode(body[20:])
        assert h["hosts"] == [me] and h["me"] == me and "compression" not in h
        s.close()
    finally:
        srv.close()


def test_metrics_of_a_mongodb_pair(mongo_daemon, ferretdb_pair):
    """/metrics: client connections by side and the proxy's own errors by reason (unsupported: answered,
    bad_frame: closed)."""
    import urllib.request
    b = ferretdb_pair.business
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        mport = s.getsockname()[1]
    d = mongo_daemon(global_opts={"metrics": f"127.0.0.1:{mport}"})

    def scrape():
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10) as r:
            return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1])
                    for ln in r.read().decode().splitlines() if ln and not ln.startswith("#")}

    with mclient(b, "127.0.0.1", d.port, maxPoolSize=1) as c:
        c.admin.command("ping")
        s = raw(d)
        s.sendall(struct.pack("<iiii", 25, 3, 0, OP_COMPRESSED) + struct.pack("<iiB", OP_MSG, 0, 0))
        assert read_frame(s)[2] == OP_MSG and closed(s)
        s.close()
        s = raw(d)
        s.sendall(struct.pack("<i", 3) + b"junk" * 4)
        assert closed(s)
        s.close()
        key = 'switchyard_client_errors_total{pair="demo",reason="%s"}'
        m = wait_until(lambda: (lambda m: m if m.get(key % "bad_frame") == 1 else None)(scrape()),
                       what="bad_frame counted")
        assert m[key % "unsupported"] == 1
        assert m['switchyard_client_connections{pair="demo",side="business"}'] >= 1
        assert m['switchyard_client_connections{pair="demo",side="dr"}'] == 0


def test_slow_reader_gets_every_byte(mongo_daemon, ferretdb_pair):
    """A 20 MB reply to a client that reads 64 KiB at a time with pauses: reading the server pauses past
    4 MiB queued toward the client and resumes as it drains (libevent's write callbacks, not only direct
    writes); the reply arrives whole and equal to the direct one. Another client is served meanwhile."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    with mclient(b, "127.0.0.1", d.port) as c:
        coll = c[DB].slow
        coll.drop()
        for i in range(4):
            coll.insert_one({"_id": i, "p": chr(97 + i) * (5 * 1024 * 1024)})
    s = raw(d)                                         # a raw session, so the test decides when to read
    scram_login(s, b.admin_user, b.admin_password)
    s.sendall(op_msg({"find": "slow", "batchSize": 10, "sort": {"_id": 1}, "$db": DB}, request_id=77))
    time.sleep(1.0)                                    # nothing read yet: the proxy must have paused
    with mclient(b, "127.0.0.1", d.port) as other:
        assert other.admin.command("ping")["ok"] == 1.0
    hdr = b""
    while len(hdr) < 16:
        hdr += s.recv(16 - len(hdr))
    length, _, rto, op = struct.unpack("<iiii", hdr)
    body = bytearray()
    while len(body) < length - 16:
        chunk = s.recv(min(65536, length - 16 - len(body)))
        assert chunk, "closed mid-reply"
        body += chunk
        if len(body) % (2 * 1024 * 1024) < 65536:
            time.sleep(0.05)
    s.close()
    assert rto == 77 and op == OP_MSG and length > 20 * 1024 * 1024
    docs = msg_body(bytes(body))["cursor"]["firstBatch"]
    assert [(x["_id"], len(x["p"]), x["p"][:1]) for x in docs] == [(i, 5 * 1024 * 1024, chr(97 + i)) for i in range(4)]
    log = d.log()
    assert "server reads paused" in log and "server reads resumed" in log


def scram_login(s, user, password):
    """SCRAM-SHA-256 over a raw socket (saslStart, saslContinue, the final empty one)."""
    import base64
    import hmac
    import os
    nonce = base64.b64encode(os.urandom(18)).decode()
    first_bare = f"n={user},r={nonce}"
    s.sendall(op_msg({"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": bson.binary.Binary(
        ("n,," + first_bare).encode()), "$db": "admin", "options": {"skipEmptyExchange": True}}, request_id=1))
    r = msg_body(read_frame(s)[3])
    assert r["ok"] == 1, r
    server_first = bytes(r["payload"]).decode()
    attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]), int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(client_key).digest()
    without_proof = f"c=biws,r={attrs['r']}"
    auth_msg = ",".join([first_bare, server_first, without_proof]).encode()
    sig = hmac.new(stored, auth_msg, "sha256").digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig))).decode()
    s.sendall(op_msg({"saslContinue": 1, "conversationId": r["conversationId"], "payload": bson.binary.Binary(
        f"{without_proof},p={proof}".encode()), "$db": "admin"}, request_id=2))
    r = msg_body(read_frame(s)[3])
    assert r["ok"] == 1, r
    if not r.get("done"):
        s.sendall(op_msg({"saslContinue": 1, "conversationId": r["conversationId"], "payload": b"",
                          "$db": "admin"}, request_id=3))
        r = msg_body(read_frame(s)[3])
        assert r["ok"] == 1 and r["done"], r


def test_concurrent_clients(mongo_daemon, ferretdb_pair):
    """8 threads, each its own pymongo client through the proxy, inserting, updating and reading their own
    documents: no errors, every document as written; `clients` shows them logged in."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    with mclient(b, "127.0.0.1", d.port) as c:
        c[DB].conc.drop()
    errors, seen = [], []

    def work(t):
        try:
            with mclient(b, "127.0.0.1", d.port) as c:
                coll = c[DB].conc
                for i in range(60):
                    coll.insert_one({"_id": f"{t}-{i}", "t": t, "v": i})
                    coll.update_one({"_id": f"{t}-{i}"}, {"$inc": {"v": 1000}})
                    assert coll.find_one({"_id": f"{t}-{i}"})["v"] == i + 1000
                seen.append(len(proxy_sessions(d)))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    print(f"8 clients x 180 operations: {time.monotonic() - t0:.2f}s")
    assert errors == []
    with mclient(b, b.host, b.port, directConnection=True) as c:
        assert c[DB].conc.count_documents({}) == 480
        assert c[DB].conc.count_documents({"v": {"$gte": 1000}}) == 480
    assert max(seen) >= 8


# --- hold / release -----------------------------------------------------------------------------------------


def test_hold_waits_and_release_completes(mongo_daemon, ferretdb_pair):
    """A request sent during `hold` waits (the session shows held_ms) and completes after `release`, with
    its result; sessions are released in order."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    clients = [mclient(b, "127.0.0.1", d.port, maxPoolSize=1) for _ in range(2)]
    try:
        for i, c in enumerate(clients):
            c[DB].hold.replace_one({"_id": i}, {"_id": i, "v": i}, upsert=True)
        assert d.ctl("hold", "demo").returncode == 0
        results, done = {}, []

        def run(i):
            results[i] = clients[i][DB].hold.find_one({"_id": i})
            done.append((i, time.monotonic()))

        threads = []
        for i in range(2):
            t = threading.Thread(target=run, args=(i,))
            t.start()
            threads.append(t)
            wait_until(lambda: sum(1 for s in proxy_sessions(d) if s["state"] == "HELD") == i + 1,
                       what=f"{i + 1} held sessions")
        time.sleep(0.3)
        assert not done, "a request went through during the hold"
        held = [s for s in proxy_sessions(d) if s["state"] == "HELD"]
        assert len(held) == 2 and all(s["held_ms"] > 0 for s in held)
        released_at = time.monotonic()
        r = d.ctl("release", "demo")
        assert r.returncode == 0, r.stderr
        for t in threads:
            t.join(10)
        assert results == {0: {"_id": 0, "v": 0}, 1: {"_id": 1, "v": 1}}
        assert all(at >= released_at for _, at in done)
        assert [s["state"] for s in proxy_sessions(d)].count("HELD") == 0
        # released in accept order (the daemon's debug log: one "HELD -> IDLE" per session, by id)
        resumed = [int(ln.split(" M-")[1].split()[0]) for ln in d.log().splitlines() if "HELD -> IDLE" in ln]
        held_ids = sorted(s["id"] for s in held)
        # (a driver's monitoring connection may be held and released too, after the listing above)
        assert [i for i in resumed if i in held_ids] == held_ids, (resumed, held_ids)
    finally:
        for c in clients:
            c.close()


def test_hold_bounded_by_max_hold_ms(mongo_daemon, ferretdb_pair):
    """Without a release, the core ends the hold after max_hold_ms and the waiting request completes."""
    b = ferretdb_pair.business
    d = mongo_daemon(max_hold_ms=700)
    with mclient(b, "127.0.0.1", d.port, maxPoolSize=1) as c:
        assert c.admin.command("ping")["ok"] == 1.0
        assert d.ctl("hold", "demo").returncode == 0
        t0 = time.monotonic()
        assert c.admin.command("ping")["ok"] == 1.0
        waited = time.monotonic() - t0
    assert 0.5 <= waited < 5.0, waited
    assert d.pair_status()["held"] is False


def test_hello_answered_during_a_hold(mongo_daemon, ferretdb_pair):
    """During a hold the proxy answers hello/isMaster itself (the last reply of the server, rewritten): a
    pymongo 4 client's heartbeats (every 500 ms) go on and the server stays selectable through a 3 s hold,
    a new connection's handshake (OP_QUERY isMaster, as pymongo opens) is answered, and the operation sent
    during the hold completes after the release."""
    from pymongo import monitoring

    class Beats(monitoring.ServerHeartbeatListener):
        def __init__(self):
            self.ok, self.failed = [], []

        def started(self, event):
            pass

        def succeeded(self, event):
            self.ok.append(time.monotonic())

        def failed(self, event):
            self.failed.append((time.monotonic(), repr(event.reply)))

    b = ferretdb_pair.business
    d = mongo_daemon()
    beats = Beats()
    with mclient(b, "127.0.0.1", d.port, maxPoolSize=1, heartbeatFrequencyMS=500,
                 event_listeners=[beats]) as c:
        c[DB].hellohold.replace_one({"_id": 1}, {"_id": 1, "v": 1}, upsert=True)
        assert d.ctl("hold", "demo").returncode == 0
        held_at = time.monotonic()
        result, done = [], []

        def op():
            result.append(c[DB].hellohold.find_one({"_id": 1}))
            done.append(time.monotonic())

        t = threading.Thread(target=op)
        t.start()
        wait_until(lambda: any(s["state"] == "HELD" for s in proxy_sessions(d)), what="the find held")
        with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:   # a new connection's handshake
            q = bson.encode({"isMaster": 1, "helloOk": True, "client": {"driver": {"name": "raw"}}})
            body = struct.pack("<i", 0) + b"admin.$cmd\0" + struct.pack("<ii", 0, -1) + q
            s.sendall(struct.pack("<iiii", 16 + len(body), 77, 0, OP_QUERY) + body)
            _, rto, op_code, payload = read_frame(s)
            assert (rto, op_code) == (77, OP_REPLY)
            reply = bson.decode(payload[20:])
            assert reply["ok"] == 1.0 and reply["ismaster"] is True, reply
            assert reply["hosts"] == [f"127.0.0.1:{d.port}"] and "saslSupportedMechs" not in reply
        time.sleep(3.0)
        during = [at for at in beats.ok if at > held_at]
        desc = c.topology_description.server_descriptions()[("127.0.0.1", d.port)]
        assert not done, "the find went through during the hold"
        assert len(during) >= 3, (len(during), beats.failed)
        assert desc.server_type_name == "RSPrimary", desc
        assert d.pair_status()["held"] is True
        assert d.ctl("release", "demo").returncode == 0
        t.join(10)
        assert result == [{"_id": 1, "v": 1}]
        assert beats.failed == []
    assert "answered by the proxy during the hold" in d.log()


def test_unreachable_backend_closes_the_client_only(mongo_daemon, ferretdb_pair):
    """The active side does not accept connections: each client's connection closes (pymongo reports the
    server unreachable, as it would directly) with a log line naming the side; the daemon keeps answering."""
    b = ferretdb_pair.business
    with socket.socket() as s:                       # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    d = mongo_daemon(business=dead)
    with mclient(b, "127.0.0.1", d.port, serverSelectionTimeoutMS=1500) as c:
        with pytest.raises(pymongo.errors.ServerSelectionTimeoutError):
            c.admin.command("ping")
    assert "cannot connect to the business server" in d.log()
    # pymongo's monitor may have opened one more connection as the client closed: it is closed as well
    wait_for(lambda: d.pair_status()["clients"] == 0, 5, "no client connection left")
    errs = d.admin_ok("status")
    assert errs["pairs"][0]["engine"] == "mongodb"


def test_server_killed_then_back(mongo_daemon, ferretdb_pair):
    """The active server dies under idle sessions: their client connections close (counted lost_connection),
    the driver reports the server unreachable, the daemon keeps serving; once the server is back (same
    port), the same client works again through new sessions."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    try:
        with mclient(b, "127.0.0.1", d.port, serverSelectionTimeoutMS=2000) as c:
            c[DB].kill.replace_one({"_id": 1}, {"_id": 1, "v": "before"}, upsert=True)
            assert proxy_sessions(d)
            b.kill9()
            wait_until(lambda: not proxy_sessions(d), what="sessions closed with their server")
            with pytest.raises(pymongo.errors.PyMongoError):
                c[DB].kill.find_one({"_id": 1})
            assert "the business server closed the connection" in d.log()
            b.start()
            assert wait_until(lambda: _find(c), timeout=20, what="a read after the restart") == {"_id": 1, "v": "before"}
            assert c.nodes == frozenset({("127.0.0.1", d.port)})
        errs = d.admin_ok("status")["pairs"][0]
        assert errs["clients"] == 0
    finally:
        if not b.is_alive():
            b.start()


def _find(c):
    try:
        return c[DB].kill.find_one({"_id": 1})
    except pymongo.errors.PyMongoError:
        return None


def test_wildcard_listen_advertises_the_address_reached(mongo_daemon, ferretdb_pair):
    """listen = 0.0.0.0:0: hello names the local address each client reached, never 0.0.0.0."""
    b = ferretdb_pair.business
    d = mongo_daemon(listen="0.0.0.0:0")
    with mclient(b, "127.0.0.1", d.port) as c:
        hello = c.admin.command("hello")
        assert hello["hosts"] == [f"127.0.0.1:{d.port}"] and hello["me"] == f"127.0.0.1:{d.port}"
        assert c.nodes == frozenset({("127.0.0.1", d.port)})


# --- libmongoc ----------------------------------------------------------------------------------------------


def test_libmongoc_client(mongo_daemon, ferretdb_pair):
    """A C client through libmongoc 1.23 (its own handshake, SCRAM, server selection): insert + find through
    the proxy, the same output as direct."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    prog = BUILD_DIR / "sy_mongo_client"
    assert prog.exists(), f"{prog} missing: build the tree"
    outs = []
    for port, extra in ((b.port, "&directConnection=true"), (d.port, "")):
        uri = f"mongodb://{b.admin_user}:{b.admin_password}@127.0.0.1:{port}/?authSource=admin{extra}"
        r = subprocess.run([str(prog), uri, DB, "cdriver", "10"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        outs.append(r.stdout)
    assert outs[1] == outs[0] and outs[1].rstrip().endswith("count 10")


# --- TLS ----------------------------------------------------------------------------------------------------


def test_client_tls(mongo_daemon, ferretdb_pair, tmp_path):
    """tls_cert/tls_key: TLS from the first byte (MongoDB has no in-band upgrade); pymongo 4 verifies the
    certificate, logs in, runs the workload's cursor and a 2 MB document; the listing says tls. A plaintext
    client on that listener gets no answer in clear (its bytes do not make a TLS handshake: closed)."""
    b = ferretdb_pair.business
    cert, key = tmp_path / "proxy.pem", tmp_path / "proxy.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True, timeout=60)
    d = mongo_daemon(tls_cert=str(cert), tls_key=str(key))
    with mclient(b, "127.0.0.1", d.port, tls=True, tlsCAFile=str(cert)) as c:
        coll = c[DB].tls
        coll.drop()
        coll.insert_many([{"_id": i, "p": "z" * 1000} for i in range(50)])
        coll.insert_one({"_id": "big", "p": "q" * (2 * 1024 * 1024)})
        assert [x["_id"] for x in coll.find({"_id": {"$lt": 50}}, sort=[("_id", 1)], batch_size=4)] == list(range(50))
        assert len(coll.find_one({"_id": "big"})["p"]) == 2 * 1024 * 1024
        assert c.nodes == frozenset({("127.0.0.1", d.port)})
        sessions = proxy_sessions(d)
        assert sessions and all(s["tls"] for s in sessions)
    s = raw(d)
    s.sendall(op_msg({"hello": 1, "$db": "admin"}))
    assert closed(s)
    s.close()


# --- SCRAM pass-through -------------------------------------------------------------------------------------
# Application users created on business only: the proxy reads their stored credentials over admin_user,
# checks the client's proof itself, then logs in on the backend from the recovered ClientKey.

SCRAM_USERS = (("app256", "pw-256 ✓", "SCRAM-SHA-256"), ("app1", "pw-sha1", "SCRAM-SHA-1"))


@pytest.fixture
def scram_users(ferretdb_pair):
    b = ferretdb_pair.business
    for user, pw, mech in SCRAM_USERS:
        b.create_user(user, pw, mechanisms=[mech])
    yield SCRAM_USERS
    for user, _, _ in SCRAM_USERS:
        try:
            b.drop_user(user)
        except OperationFailure:
            pass


def auth_users(status: dict) -> list:
    return [(u["user"], u["db"]) for u in status["authInfo"]["authenticatedUsers"]]


@pytest.mark.parametrize("api", ["default", "server_api"])
def test_scram_pass_through_pymongo4(mongo_daemon, ferretdb_pair, scram_users, api):
    """pymongo 4 (default handshake: OP_QUERY isMaster with speculativeAuthenticate; ServerApi("1"): OP_MSG
    hello, whose speculativeAuthenticate the proxy answers although FerretDB would not) logs in as a
    SCRAM-SHA-256 and a SCRAM-SHA-1 user through the proxy: the proxy checked the proof (login
    scram_pass_through, not passed_through), the backend connection is authenticated as that user
    (connectionStatus, answered by the server), and the session works."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    kw = {"server_api": ServerApi("1")} if api == "server_api" else {}
    for user, pw, mech in scram_users:
        statuses = []
        for host, port in ((b.host, b.port), ("127.0.0.1", d.port)):
            with mclient(b, host, port, username=user, password=pw, authMechanism=mech,
                         directConnection=(port == b.port), **kw) as c:
                coll = c[DB][f"scram_{user}"]
                coll.drop()
                coll.insert_many([{"_id": i} for i in range(5)])
                assert [x["_id"] for x in coll.find(sort=[("_id", 1)])] == list(range(5))
                statuses.append(auth_users(c.admin.command("connectionStatus")))
                if port == d.port:
                    mine = [s for s in proxy_sessions(d) if s["user"] == user]
                    assert mine and all(s["login"] == "scram_pass_through" and s["mechanism"] == mech and
                                        s["auth_db"] == "admin" and
                                        s["movable"] and s["unmovable_reason"] == "" for s in mine), mine
        assert statuses[1] == statuses[0] == [(user, "admin")]
    assert "proof checked by the proxy" in d.log()


@pytest.mark.parametrize("api", ["default", "server_api"])
def test_scram_wrong_password_and_unknown_user(mongo_daemon, ferretdb_pair, scram_users, api):
    """Wrong password (both mechanisms) and an unknown user: code 18, AuthenticationFailed and the same
    message as directly; the right password still works afterwards on the same proxy."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    kw = {"server_api": ServerApi("1")} if api == "server_api" else {}
    cases = [(u, "wrong", m) for u, _, m in scram_users] + [("nobody", "x", "SCRAM-SHA-256"),
                                                            ("nobody1", "x", "SCRAM-SHA-1")]
    got = []
    for host, port in ((b.host, b.port), ("127.0.0.1", d.port)):
        errs = []
        for user, pw, mech in cases:
            with mclient(b, host, port, username=user, password=pw, authMechanism=mech,
                         directConnection=(port == b.port), **kw) as c:
                with pytest.raises(OperationFailure) as ei:
                    c.admin.command("ping")
                errs.append((ei.value.code, ei.value.details.get("errmsg"), ei.value.details.get("codeName")))
        got.append(errs)
    assert got[1] == got[0]
    assert all(e == (18, "Authentication failed.", "AuthenticationFailed") for e in got[1]), got[1]
    for user, pw, mech in scram_users:
        with mclient(b, "127.0.0.1", d.port, username=user, password=pw, authMechanism=mech, **kw) as c:
            assert c.admin.command("ping")["ok"] == 1.0


def test_scram_password_change_and_new_user_seen_at_once(mongo_daemon, ferretdb_pair, scram_users):
    """A user created after the proxy started logs in; after updateUser the new password works at once
    and the old one gets 18 (credentials are read again per login, not served stale)."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    user, pw, mech = scram_users[0]
    with mclient(b, "127.0.0.1", d.port, username=user, password=pw, authMechanism=mech) as c:
        assert c.admin.command("ping")["ok"] == 1.0
    with b.client() as c:
        c.admin.command({"updateUser": user, "pwd": "changed-pw"})
    with mclient(b, "127.0.0.1", d.port, username=user, password="changed-pw", authMechanism=mech) as c:
        assert auth_users(c.admin.command("connectionStatus")) == [(user, "admin")]
    with mclient(b, "127.0.0.1", d.port, username=user, password=pw, authMechanism=mech) as c:
        with pytest.raises(OperationFailure) as ei:
            c.admin.command("ping")
        assert ei.value.code == 18


PYMONGO3_SCRAM = """
from bson import json_util
out = []
for user, pw, mech in ARGS["users"]:
    c = pymongo.MongoClient(ARGS["host"], ARGS["port"], username=user, password=pw, authSource="admin",
                            authMechanism=mech, serverSelectionTimeoutMS=10000)
    coll = c.mproxy3["scram_" + user]
    coll.drop()
    coll.insert_many([{"_id": i} for i in range(4)])
    st = c.admin.command("connectionStatus")["authInfo"]["authenticatedUsers"]
    out.append([user, [x["_id"] for x in coll.find(sort=[("_id", 1)])], st])
    try:
        pymongo.MongoClient(ARGS["host"], ARGS["port"], username=user, password="wrong", authSource="admin",
                            authMechanism=mech, serverSelectionTimeoutMS=10000).admin.command("ping")
        out.append(None)
    except pymongo.errors.OperationFailure as e:
        out.append([e.code, e.details.get("errmsg"), e.details.get("codeName")])
RESULT = json_util.dumps(out)
"""


def test_scram_pass_through_pymongo3(mongo_daemon, ferretdb_pair, scram_users):
    """pymongo 3.11 (OP_QUERY isMaster with speculativeAuthenticate, OP_REPLY) as both users: the same as
    directly, the wrong password's 18 included."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    args = {"users": [list(u) for u in scram_users]}
    direct = sandbox.run_pymongo3(PYMONGO3_SCRAM, {**args, "host": b.host, "port": b.port}, timeout=120)
    proxied = sandbox.run_pymongo3(PYMONGO3_SCRAM, {**args, "host": "127.0.0.1", "port": d.port}, timeout=120)
    assert json.loads(proxied) == json.loads(direct)
    out = json.loads(proxied)
    assert out[1] == [18, "Authentication failed.", "AuthenticationFailed"]
    assert sum(1 for s in proxy_sessions(d) if s["login"] == "scram_pass_through") == 0  # all closed by now
    assert d.log().count("proof checked by the proxy") >= 2


def test_scram_pass_through_libmongoc(mongo_daemon, ferretdb_pair, scram_users):
    """libmongoc 1.23 logs in as both users (authMechanism in the URI) through the proxy: the same output as
    directly."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    prog = BUILD_DIR / "sy_mongo_client"
    from urllib.parse import quote
    for user, pw, mech in scram_users:
        outs = []
        for port, extra in ((b.port, "&directConnection=true"), (d.port, "")):
            uri = f"mongodb://{quote(user)}:{quote(pw)}@127.0.0.1:{port}/?authSource=admin&authMechanism={mech}{extra}"
            r = subprocess.run([str(prog), uri, DB, f"cdriver_{user}", "4"], capture_output=True, text=True,
                               timeout=60)
            assert r.returncode == 0, r.stdout + r.stderr
            outs.append(r.stdout)
        assert outs[1] == outs[0] and outs[1].rstrip().endswith("count 4")
    assert d.log().count("proof checked by the proxy") >= 2


def test_scram_credentials_unreadable_falls_back_to_pass_through(mongo_daemon, ferretdb_pair, scram_users):
    """admin_password wrong in the config: the proxy cannot read credentials, so the login is passed through
    to the server as before (it still works, and a wrong password still gets the server's 18); the session
    says so (login passed_through)."""
    b = ferretdb_pair.business
    d = mongo_daemon(admin_password="not-the-admin-password")
    user, pw, mech = scram_users[0]
    with mclient(b, "127.0.0.1", d.port, username=user, password=pw, authMechanism=mech) as c:
        assert auth_users(c.admin.command("connectionStatus")) == [(user, "admin")]
        mine = [s for s in proxy_sessions(d) if s["user"] == user]
        assert mine and all(s["login"] == "passed_through" for s in mine), mine
        # such a login cannot be repeated on the other side: the session cannot move in a switch
        assert all(s["movable"] is False and "passed through to the server" in s["unmovable_reason"]
                   for s in mine), mine
    with mclient(b, "127.0.0.1", d.port, username=user, password="wrong", authMechanism=mech) as c:
        with pytest.raises(OperationFailure) as ei:
            c.admin.command("ping")
        assert ei.value.code == 18
    assert "cannot read credentials" in d.log() and "admin_user login failed" in d.log()


def test_scram_replies_have_the_servers_layout(mongo_daemon, ferretdb_pair, scram_users):
    """Raw frames, directly and through the proxy: the speculativeAuthenticate member of an OP_QUERY isMaster
    reply, a saslStart reply and a wrong proof's error have the same fields in the same order, the payload
    binary subtype 0 (bytes), and OP_REPLY the same flags."""
    b = ferretdb_pair.business
    d = mongo_daemon()
    user = scram_users[0][0]
    first = f"n,,n={user},r=abcdefghijklmnopqrstuvwx".encode()
    got = []
    for port in (b.port, d.port):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        q = bson.encode({"isMaster": 1, "speculativeAuthenticate": {
            "saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": bson.binary.Binary(first), "db": "admin"}})
        s.sendall(struct.pack("<iiiii", 16 + 4 + 11 + 8 + len(q), 9, 0, OP_QUERY, 0) + b"admin.$cmd\x00"
                  + struct.pack("<ii", 0, -1) + q)
        rid, rto, op, body = read_frame(s)
        assert op == OP_REPLY and rto == 9
        flags = struct.unpack_from("<i", body, 0)[0]
        spec = bson.decode(body[20:])["speculativeAuthenticate"]
        s.sendall(op_msg({"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": bson.binary.Binary(first),
                          "$db": "admin"}, request_id=10))
        start = msg_body(read_frame(s)[3])
        sf = start["payload"].decode()
        assert isinstance(start["payload"], bytes) and sf.startswith("r=abcdefghijklmnopqrstuvwx"), start
        nonce = dict(kv.split("=", 1) for kv in sf.split(","))["r"]
        s.sendall(op_msg({"saslContinue": 1, "conversationId": start["conversationId"], "payload":
                          bson.binary.Binary(f"c=biws,r={nonce},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".encode()),
                          "$db": "admin"}, request_id=11))
        bad = msg_body(read_frame(s)[3])
        s.close()
        got.append({"flags": flags, "spec": list(spec), "spec_payload": type(spec["payload"]).__name__,
                     "spec_done": spec["done"], "start": list(start), "start_done": start["done"],
                     "start_ok": start["ok"], "bad": bad, "bad_keys": list(bad)})
    assert got[1] == got[0], got
    assert got[1]["bad"] == {"ok": 0.0, "errmsg": "Authentication failed.", "code": 18,
                             "codeName": "AuthenticationFailed"}
