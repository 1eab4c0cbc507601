#!/usr/bin/python3
"""Writes the seeds of the TDS fuzz targets (fuzz/fuzz_tds_*.c) from the SQL Server double's own builders
(tests/doubles/login.py, tds_tokens.py, tds_packets.py) plus FreeTDS's recorded PRELOGIN:
  fuzz/corpus/fuzz_tds_packet/    PRELOGIN, LOGIN7, a SQL_BATCH over 3 packets, ATTENTION, RESETCONNECTION
  fuzz/corpus/fuzz_tds_prelogin/  FreeTDS's PRELOGIN, the double's answer, one with FEDAUTHREQUIRED + MARS
  fuzz/corpus/fuzz_tds_login7/    LOGIN7 with and without FeatureExt
  fuzz/corpus/fuzz_tds_tokens/    the double's login response, a refused login, ENVCHANGE transactions, DONE_ATTN
  fuzz/corpus/fuzz_tds_track/     (first byte: 0 response, 1 SQL_BATCH, 2 RPC, 3 TRANSACTION_MANAGER) a result set
                                  of many types between begin/commit, sp_prepare's RETURNVALUE; a SET/#temp
                                  batch, sp_prepare + sp_execute RPCs, a TM begin
Run with Debian's interpreter: /usr/bin/python3 fuzz/make_tds_seeds.py (deterministic; rewrites its files)."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "doubles"))
import login as lg  # noqa: E402
import tds_tokens as T  # noqa: E402
from tds_types import SqlType  # noqa: E402

FREETDS_PRELOGIN = bytes.fromhex("00001a000601002000010200210" "00c03002d0004040031000" "1ff090000000000004d5353514c53657276657200e56f000000")


def packets(ptype, payload, size=512, status=0):
    body, out, chunks = size - 8, b"", [payload[i:i + size - 8] for i in range(0, len(payload), size - 8)] or [b""]
    for i, c in enumerate(chunks):
        st = status | (1 if i == len(chunks) - 1 else 0)
        out += struct.pack(">BBHHBB", ptype, st, len(c) + 8, 0, i + 1, 0) + c
    return out


def login7(features=b""):
    def s(x):
        return x.encode("utf-16-le")
    fields = [s("host"), s("sa"), lg.obfuscate("Pw-1"), s("pytds"), s("srv"), b"", s("lib"), s("us_english"), s("master")]
    table, data, off = b"", b"", 94
    for i, f in enumerate(fields):
        if i == 5 and features:
            table += struct.pack("<HH", off, 4)
            data += struct.pack("<I", 94 + sum(len(g) for g in fields) + 4)   # FeatureExt after the strings
            off += 4
            continue
        table += struct.pack("<HH", off, len(f) // 2)
        data += f
        off += len(f)
    data += features
    tail = b"\x00" * 6 + struct.pack("<HHHHHHI", off, 0, off, 0, off, 0, 0)
    fixed = struct.pack("<IIIIII", 0, 0x74000004, 4096, 7, 1, 0) + bytes([0xE0, 3, 0, 0x10 if features else 0]) \
        + struct.pack("<iI", 0, 0x409) + table + tail
    assert len(fixed) == 94
    p = fixed + data
    return struct.pack("<I", len(p)) + p[4:]


def main():
    seeds = {
        "fuzz_tds_prelogin": {
            "freetds": FREETDS_PRELOGIN,
            "double_answer": lg.build_prelogin([(lg.VERSION, bytes([16, 0, 0x10, 0x7A, 0, 0])), (lg.ENCRYPTION, b"\x02"),
                                               (lg.INSTOPT, b"\0"), (lg.THREADID, b""), (lg.MARS, b"\0")]),
            "fedauth_mars": lg.build_prelogin([(lg.VERSION, bytes(6)), (lg.ENCRYPTION, b"\x01"), (lg.MARS, b"\x01"),
                                              (lg.TRACEID, bytes(36)), (lg.FEDAUTHREQUIRED, b"\x01")]),
        },
        "fuzz_tds_login7": {"plain": login7(), "feature_ext": login7(b"\x0a\x01\x00\x00\x00\x01\xff")},
        "fuzz_tds_tokens": {
            "login_ok": (T.envchange_str(T.ENV_DATABASE, "master", "master")
                         + T.info(5701, "Changed database context to 'master'.", 2, 0) + T.env_collation()
                         + T.envchange_str(T.ENV_LANGUAGE, "us_english", "") + T.loginack() + T.featureextack({})
                         + T.envchange_str(T.ENV_PACKETSIZE, "8192", "4096") + T.done()),
            "login_refused": T.error(18456, 1, 14, "Login failed for user 'sa'.") + T.done(T.DONE_ERROR),
            "transactions": T.env_begin(b"\1" * 8) + T.env_end(T.ENV_COMMIT_TRAN, b"\1" * 8) + T.env_reset_ack()
                            + T.done(T.DONE_MORE | T.DONE_COUNT, T.CMD_SELECT, 3) + T.done(T.DONE_ATTN),
        },
    }
    cols = [T.Column(n, SqlType.parse(t)) for n, t in
            [("id", "int"), ("name", "nvarchar(20)"), ("body", "nvarchar(max)"), ("price", "decimal(10,2)"),
             ("at", "datetime2(3)"), ("u", "uniqueidentifier"), ("b", "varbinary(max)"), ("f", "float")]]
    import datetime as dt
    import decimal
    import uuid
    rows = [(1, "a", "x" * 5000, decimal.Decimal("1.25"), dt.datetime(2026, 1, 2, 3, 4, 5), uuid.UUID(int=7),
             b"\1" * 300, 1.5), (2, None, None, None, None, None, None, None)]
    hdr = struct.pack("<IIH", 22, 18, 2) + b"\0" * 8 + struct.pack("<I", 1)

    def nvarchar_param(text):
        v = text.encode("utf-16-le")
        return b"\0\0\xe7" + struct.pack("<H", 8000) + b"\x09\x04\xd0\x00\x34" + struct.pack("<H", len(v)) + v
    prepare = (b"\xff\xff" + struct.pack("<HH", 11, 0) + b"\0\x01\x26\x04\x00" + nvarchar_param("@a int")
               + nvarchar_param("select @a"))
    execute = b"\xff\xff" + struct.pack("<HH", 12, 0) + b"\0\0\x26\x04\x04" + struct.pack("<i", 1) \
        + b"\0\0\x26\x04\x04" + struct.pack("<i", 5)
    seeds["fuzz_tds_track"] = {
        "result_set": b"\0" + T.env_begin(b"\1" * 8) + T.colmetadata(cols)
        + b"".join(T.row(cols, r) for r in rows) + T.done(T.DONE_COUNT, T.CMD_SELECT, 2)
        + T.env_end(T.ENV_COMMIT_TRAN, b"\1" * 8) + T.done(),
        "prepare_answer": b"\0" + T.returnvalue(0, "", SqlType("int"), 1) + T.doneproc(),
        "batch": b"\1" + hdr + "SET ANSI_NULLS OFF; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE\n"
        "CREATE TABLE #t (a int) /* SET NOCOUNT ON */ DECLARE c CURSOR FOR SELECT 1".encode("utf-16-le"),
        "rpc": b"\2" + hdr + prepare + b"\x80" + execute,
        "tm_begin": b"\3" + hdr + struct.pack("<HB", 5, 0) + b"\0",
    }
    seeds["fuzz_tds_packet"] = {
        "prelogin": packets(0x12, FREETDS_PRELOGIN, 4096),
        "login7": packets(0x10, login7(), 4096),
        "batch_3_packets": packets(0x01, b"\x16\0\0\0\x12\0\0\0\x02\0" + b"\0" * 12 + "SELECT 1".encode("utf-16-le") * 60),
        "attention": packets(0x06, b""),
        "reset": packets(0x01, "SELECT 1".encode("utf-16-le"), status=0x08),
        "tabular": packets(0x04, seeds["fuzz_tds_tokens"]["login_ok"]),
    }
    for target, files in seeds.items():
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
