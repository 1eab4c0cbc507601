"""Token-stream builders for the SQL Server double (test code, never shipped): the tokens a server sends in
a TABULAR response (MS-TDS 2.2.7): LOGINACK, ENVCHANGE, COLMETADATA, ROW/NBCROW, DONE/DONEPROC/DONEINPROC,
ERROR/INFO, RETURNSTATUS, RETURNVALUE, FEATUREEXTACK."""

from __future__ import annotations

import struct

from tds_types import COLLATION, SqlType

ERROR, INFO, LOGINACK, ENVCHANGE_T, COLMETADATA, ROW, NBCROW = 0xAA, 0xAB, 0xAD, 0xE3, 0x81, 0xD1, 0xD2
DONE_T, DONEPROC_T, DONEINPROC_T, RETURNSTATUS_T, RETURNVALUE_T, FEATUREEXTACK = 0xFD, 0xFE, 0xFF, 0x79, 0xAC, 0xAE

# DONE status bits
DONE_FINAL, DONE_MORE, DONE_ERROR, DONE_INXACT, DONE_COUNT, DONE_ATTN, DONE_SRVERROR = 0, 1, 2, 4, 0x10, 0x20, 0x100

# ENVCHANGE types
ENV_DATABASE, ENV_LANGUAGE, ENV_PACKETSIZE, ENV_COLLATION = 1, 2, 4, 7
ENV_BEGIN_TRAN, ENV_COMMIT_TRAN, ENV_ROLLBACK_TRAN, ENV_RESET_ACK = 8, 9, 10, 18

# curcmd values SQL Server puts in DONE tokens
CMD_SELECT, CMD_INSERT, CMD_DELETE, CMD_UPDATE, CMD_OTHER = 0xC1, 0xC3, 0xC4, 0xC5, 0

SERVER_NAME = "SWITCHYARD-DOUBLE"
PROG_NAME = "Microsoft SQL Server"
PROG_VERSION = bytes([16, 0, 0x10, 0x7A])   # 16.0.4218 (SQL Server 2022)
TDS74 = bytes([0x74, 0x00, 0x00, 0x04])


def b_varchar(s: str) -> bytes:
    e = s.encode("utf-16-le")
    return bytes([len(e) // 2]) + e


def us_varchar(s: str) -> bytes:
    e = s.encode("utf-16-le")
    return struct.pack("<H", len(e) // 2) + e


def b_varbyte(b: bytes) -> bytes:
    return bytes([len(b)]) + b


def _with_len(token: int, body: bytes) -> bytes:
    return bytes([token]) + struct.pack("<H", len(body)) + body


def loginack() -> bytes:
    return _with_len(LOGINACK, b"\x01" + TDS74 + b_varchar(PROG_NAME) + PROG_VERSION)


def envchange_str(kind: int, new: str, old: str) -> bytes:
    return _with_len(ENVCHANGE_T, bytes([kind]) + b_varchar(new) + b_varchar(old))


def envchange_bytes(kind: int, new: bytes, old: bytes) -> bytes:
    return _with_len(ENVCHANGE_T, bytes([kind]) + b_varbyte(new) + b_varbyte(old))


def env_collation() -> bytes:
    return envchange_bytes(ENV_COLLATION, COLLATION, b"")


def env_begin(descriptor: bytes) -> bytes:
    return envchange_bytes(ENV_BEGIN_TRAN, descriptor, b"")


def env_end(kind: int, descriptor: bytes) -> bytes:
    return envchange_bytes(kind, b"", descriptor)


def env_reset_ack() -> bytes:
    return envchange_bytes(ENV_RESET_ACK, b"", b"")


def message(token: int, number: int, state: int, klass: int, text: str, proc: str = "", line: int = 1) -> bytes:
    body = (struct.pack("<iBB", number, state, klass) + us_varchar(text) + b_varchar(SERVER_NAME)
            + b_varchar(proc) + struct.pack("<i", line))
    return _with_len(token, body)


def error(number: int, state: int, klass: int, text: str, proc: str = "", line: int = 1) -> bytes:
    return message(ERROR, number, state, klass, text, proc, line)


def info(number: int, text: str, state: int = 1, klass: int = 0, line: int = 1) -> bytes:
    return message(INFO, number, state, klass, text, "", line)


def _done(token: int, status: int, curcmd: int, rows: int) -> bytes:
    return struct.pack("<BHHQ", token, status, curcmd, rows)


def done(status=DONE_FINAL, curcmd=CMD_OTHER, rows=0) -> bytes:
    return _done(DONE_T, status, curcmd, rows)


def doneproc(status=DONE_FINAL, curcmd=CMD_OTHER, rows=0) -> bytes:
    return _done(DONEPROC_T, status, curcmd, rows)


def doneinproc(status=DONE_FINAL, curcmd=CMD_OTHER, rows=0) -> bytes:
    return _done(DONEINPROC_T, status, curcmd, rows)


def returnstatus(value: int) -> bytes:
    return struct.pack("<Bi", RETURNSTATUS_T, value)


def returnvalue(ordinal: int, name: str, t: SqlType, value, udf: bool = False) -> bytes:
    return (bytes([RETURNVALUE_T]) + struct.pack("<H", ordinal) + b_varchar(name)
            + bytes([0x02 if udf else 0x01]) + struct.pack("<IH", 0, 0x0001) + t.type_info() + t.encode(value))


class Column:
    def __init__(self, name: str, sqltype: SqlType, nullable: bool = True, identity: bool = False):
        self.name, self.type, self.nullable, self.identity = name, sqltype, nullable, identity


def colmetadata(cols: list[Column]) -> bytes:
    if not cols:
        return bytes([COLMETADATA]) + b"\xff\xff"
    out = bytearray([COLMETADATA]) + struct.pack("<H", len(cols))
    for c in cols:
        flags = (0x01 if c.nullable else 0) | (0x10 if c.identity else 0) | 0x08   # 0x08: fUpdateable=read/write
        out += struct.pack("<IH", 0, flags) + c.type.type_info() + b_varchar(c.name)
    return bytes(out)


def row(cols: list[Column], values) -> bytes:
    """ROW, or NBCROW (null bitmap) when the row holds a NULL, as SQL Server chooses for sparse rows."""
    if any(v is None for v in values):
        bitmap = bytearray((len(cols) + 7) // 8)
        body = bytearray()
        for i, (c, v) in enumerate(zip(cols, values)):
            if v is None:
                bitmap[i // 8] |= 1 << (i % 8)
            else:
                body += c.type.encode(v)
        return bytes([NBCROW]) + bytes(bitmap) + bytes(body)
    return bytes([ROW]) + b"".join(c.type.encode(v) for c, v in zip(cols, values))


def featureextack(features: dict[int, bytes]) -> bytes:
    out = bytearray([FEATUREEXTACK])
    for fid, data in features.items():
        out += bytes([fid]) + struct.pack("<I", len(data)) + data
    out += b"\xff"
    return bytes(out)
