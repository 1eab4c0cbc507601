#!/usr/bin/python3
"""Records real MongoDB wire frames and writes them as unit-test vectors and fuzz seeds.

Starts one sandbox FerretDB (scripts/sandbox.py), runs pymongo 4 (default handshake and ServerApi("1")) and
Debian's pymongo 3.11 through a recording tee (tests/integration/mongo_tee.py), then writes:
  tests/unit/mongo_frames.h       chosen frames (name, command, kind-1 count, bytes) and one SCRAM-SHA-256
                                  exchange with the credential FerretDB stored (tests/unit/test_mongo_*.c)
  fuzz/corpus/fuzz_mongo_frame/   every recorded frame, plus one with checksumPresent (pymongo sends none)
  fuzz/corpus/fuzz_mongo_query/   [selector][frame]: 0 OP_QUERY, 1 OP_REPLY, 2 OP_COMPRESSED (fuzz_mongo_query.c)
  fuzz/corpus/fuzz_mongo_scram/   [selector][message] (fuzz_mongo_scram.c)
Run with Debian's interpreter: /usr/bin/python3 fuzz/make_mongo_seeds.py  (rewrites the files it owns;
the frames carry random nonces, request ids and timestamps, so each run writes different bytes).
"""
import hashlib
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "scripts"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import sandbox  # noqa: E402
from make_crc import crc32c_py as crc32c  # noqa: E402
from mongo_tee import MongoTee  # noqa: E402

pymongo = sandbox.pymongo4()
import bson  # noqa: E402  (pymongo 4's)

USER, PASSWORD = "seeduser", "seed-pw-1"
OP_REPLY, OP_QUERY, OP_COMPRESSED, OP_MSG = 1, 2004, 2012, 2013


def op(f):
    return struct.unpack_from("<i", f, 12)[0]


def body_of(f):
    """The command/reply document of a frame (OP_MSG kind 0, OP_QUERY query, OP_REPLY first doc)."""
    if op(f) == OP_MSG:
        return bson.decode(f[21:21 + struct.unpack_from("<i", f, 21)[0]])
    if op(f) == OP_QUERY:
        at = f.index(b"\0", 20) + 9
        return bson.decode(f[at:at + struct.unpack_from("<i", f, at)[0]])
    return bson.decode(f[36:36 + struct.unpack_from("<i", f, 36)[0]])


def nseqs(f):
    if op(f) != OP_MSG:
        return 0
    off, end, n = 20, len(f) - (4 if struct.unpack_from("<I", f, 16)[0] & 1 else 0), 0
    while off < end:
        if f[off] == 0:
            off += 1 + struct.unpack_from("<i", f, off + 1)[0]
        else:
            n += 1
            off += 1 + struct.unpack_from("<i", f, off + 1)[0]
    return n


PYMONGO3 = """
c = pymongo.MongoClient(ARGS["host"], ARGS["port"], username=ARGS["user"], password=ARGS["password"],
                        authSource="admin", serverSelectionTimeoutMS=10000)
c.seeds.t3.insert_many([{"_id": i, "v": "x" * i} for i in range(3)])
RESULT = c.seeds.t3.count_documents({})
c.seeds.t3.drop()
"""


def record(server):
    with MongoTee(server.host, server.port) as tee4:
        with pymongo.MongoClient(tee4.host, tee4.port, directConnection=True, username=USER, password=PASSWORD,
                                 authSource="admin") as c:
            t = c.seeds.t
            t.drop()
            t.insert_many([{"_id": i, "s": "é" * i, "n": i * 1.5, "a": [i, {"k": i}]} for i in range(4)])
            t.update_one({"_id": 1}, {"$set": {"s": "u"}})
            list(t.find({"_id": {"$gte": 0}}, batch_size=2))
            t.delete_one({"_id": 0})
            t.drop()
    with MongoTee(server.host, server.port) as tee_api:
        with pymongo.MongoClient(tee_api.host, tee_api.port, directConnection=True, username=USER,
                                 password=PASSWORD, authSource="admin", authMechanism="SCRAM-SHA-256",
                                 server_api=pymongo.server_api.ServerApi("1")) as c:
            c.admin.command("ping")
    with MongoTee(server.host, server.port) as tee3:
        n = sandbox.run_pymongo3(PYMONGO3, {"host": tee3.host, "port": tee3.port, "user": USER,
                                            "password": PASSWORD})
        assert n == 3, n
    return tee4.frames, tee_api.frames, tee3.frames


def pick(frames, direction, opcode, cmd=None, pred=None):
    for d, _, f in frames:
        if d != direction or op(f) != opcode:
            continue
        doc = body_of(f)
        if cmd is not None and (not doc or next(iter(doc)) != cmd):
            continue
        if pred is not None and not pred(f, doc):
            continue
        return f
    raise SystemExit(f"no {direction} {opcode} {cmd} frame recorded")


def reply_to(frames, req):
    rid = struct.unpack_from("<i", req, 4)[0]
    for d, _, f in frames:
        if d == "s2c" and struct.unpack_from("<i", f, 8)[0] == rid:
            return f
    raise SystemExit("no reply recorded")


def c_bytes(b):
    lines = []
    for i in range(0, len(b), 20):
        lines.append("    " + ", ".join(f"0x{x:02x}" for x in b[i:i + 20]) + ",")
    return "\n".join(lines)


def c_str(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    server = sandbox.FerretDB(0)
    server.start()
    try:
        server.create_user(USER, PASSWORD)
        f4, fapi, f3 = record(server)
        user_doc = server.user_credentials(USER)
        cred = user_doc["credentials"]["SCRAM-SHA-256"]
    finally:
        server.stop()

    chosen = []   # (name, cmd, frame)
    q4 = pick(f4, "c2s", OP_QUERY, "ismaster", lambda f, d: "speculativeAuthenticate" in d)
    chosen += [("pymongo4_op_query_ismaster_speculative", "ismaster", q4),
               ("ferretdb_op_reply_ismaster", "", reply_to(f4, q4)),
               ("pymongo4_sasl_continue", "saslContinue", pick(f4, "c2s", OP_MSG, "saslContinue")),
               ("pymongo4_insert_kind1", "insert", pick(f4, "c2s", OP_MSG, "insert", lambda f, d: nseqs(f) == 1)),
               ("pymongo4_update", "update", pick(f4, "c2s", OP_MSG, "update")),
               ("pymongo4_find", "find", pick(f4, "c2s", OP_MSG, "find")),
               ("pymongo4_getmore", "getMore", pick(f4, "c2s", OP_MSG, "getMore")),
               ("ferretdb_find_reply", "", reply_to(f4, pick(f4, "c2s", OP_MSG, "find"))),
               ("pymongo4_api_hello", "hello", pick(fapi, "c2s", OP_MSG, "hello")),
               ("pymongo4_api_sasl_start", "saslStart", pick(fapi, "c2s", OP_MSG, "saslStart")),
               ("pymongo3_op_query_ismaster", "ismaster", pick(f3, "c2s", OP_QUERY, "ismaster")),
               ("ferretdb_op_reply_ismaster_v3", "", reply_to(f3, pick(f3, "c2s", OP_QUERY, "ismaster"))),
               ("pymongo3_insert", "insert", pick(f3, "c2s", OP_MSG, "insert"))]

    everything = f4 + fapi + f3
    ping = pick(fapi, "c2s", OP_MSG, "ping")
    flagged = bytearray(ping)            # pymongo sends no checksum: one by hand (FerretDB accepts this form)
    struct.pack_into("<I", flagged, 16, struct.unpack_from("<I", flagged, 16)[0] | 1)
    struct.pack_into("<i", flagged, 0, len(flagged) + 4)
    flagged += struct.pack("<I", crc32c(bytes(flagged)))
    chosen.append(("synthetic_checksum_ping", "ping", bytes(flagged)))

    # The SCRAM-SHA-256 exchange of the ServerApi connection: saslStart, saslContinue, (empty) saslContinue.
    start = pick(fapi, "c2s", OP_MSG, "saslStart")
    cont = pick(fapi, "c2s", OP_MSG, "saslContinue")
    client_first = body_of(start)["payload"].decode()
    server_first = body_of(reply_to(fapi, start))["payload"].decode()
    client_final = body_of(cont)["payload"].decode()
    server_final = body_of(reply_to(fapi, cont))["payload"].decode()

    out = [f"/* Written by fuzz/make_mongo_seeds.py: frames recorded between pymongo {pymongo.version} / 3.11 and",
           f" * FerretDB {sandbox.FERRETDB_VERSION} (sha256 of all: "
           f"{hashlib.sha256(b''.join(f for _, _, f in chosen)).hexdigest()[:16]}). Do not edit. */",
           "#ifndef SY_TEST_MONGO_FRAMES_H", "#define SY_TEST_MONGO_FRAMES_H", "",
           "#include <stddef.h>", "#include <stdint.h>", "",
           "struct mongo_frame {", "    const char *name;", "    const char *cmd;   /* first key; \"\" for replies */",
           "    unsigned nseqs;    /* kind-1 sections */", "    size_t len;", "    const uint8_t *data;", "};", ""]
    for name, _, f in chosen:
        out += [f"static const uint8_t frame_{name}[] = {{", c_bytes(f), "};"]
    out += ["", "static const struct mongo_frame mongo_frames[] = {"]
    for name, cmd, f in chosen:
        out.append(f"    {{ {c_str(name)}, {c_str(cmd)}, {nseqs(f)}, sizeof frame_{name}, frame_{name} }},")
    out += ["};", "",
            "/* One SCRAM-SHA-256 login as recorded, with the credential FerretDB stored for the user. */",
            "struct mongo_scram_rec {", "    int sha1;",
            "    const char *user, *password, *client_first, *server_first, *client_final, *server_final;",
            "    const char *salt, *stored_key, *server_key;", "    uint32_t iterations;", "};", "",
            "static const struct mongo_scram_rec mongo_scram_recorded = {",
            f"    0, {c_str(USER)}, {c_str(PASSWORD)},", f"    {c_str(client_first)},", f"    {c_str(server_first)},",
            f"    {c_str(client_final)},", f"    {c_str(server_final)},",
            f"    {c_str(cred['salt'])}, {c_str(cred['storedKey'])}, {c_str(cred['serverKey'])},",
            f"    {cred['iterationCount']},", "};", "",
            "/* That user's document as usersInfo {showCredentials: true} returned it. */",
            "static const uint8_t mongo_user_doc[] = {", c_bytes(bson.encode(user_doc)), "};", "", "#endif", ""]
    with open(os.path.join(ROOT, "tests", "unit", "mongo_frames.h"), "w") as fh:
        fh.write("\n".join(out))

    for target in ("fuzz_mongo_frame", "fuzz_mongo_query", "fuzz_mongo_scram"):   # owned: rewritten whole
        shutil.rmtree(os.path.join(HERE, "corpus", target), ignore_errors=True)

    def write(target, name, data):
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as fh:
            fh.write(data)

    for i, (_, _, f) in enumerate(everything):
        write("fuzz_mongo_frame", f"rec-{i:03d}", f)
    write("fuzz_mongo_frame", "synthetic-checksum", bytes(flagged))
    write("fuzz_mongo_frame", "two-frames", bytes(flagged) + chosen[3][2])
    for name, _, f in chosen:
        sel = {OP_QUERY: 0, OP_REPLY: 1}.get(op(f))
        if sel is not None:
            write("fuzz_mongo_query", name, bytes([sel]) + f)
    compressed = struct.pack("<iiiiiiB", 25 + 3, 1, 0, OP_COMPRESSED, OP_MSG, 100, 1) + b"abc"
    write("fuzz_mongo_query", "op_compressed", bytes([2]) + compressed)
    scram = [(0, client_first), (1, client_first.split("r=", 1)[1] + "\n" + server_first),
             (2, client_first + "\n" + server_first + "\n" + client_final), (3, server_final),
             (0, "n,,n=a=2Cb=3D,r=abc,x=1"), (4, cred["storedKey"])]
    for i, (sel, text) in enumerate(scram):
        write("fuzz_mongo_scram", f"rec-{i}", bytes([sel]) + text.encode())
    print(f"wrote {len(chosen)} frames to tests/unit/mongo_frames.h, {len(everything) + 2} frame seeds")


if __name__ == "__main__":
    main()
