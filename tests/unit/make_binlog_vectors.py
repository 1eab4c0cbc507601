#!/usr/bin/python3
"""Captures real MariaDB binlog events into tests/unit/binlog_vectors.h (and the fuzz seed corpus).

Runs a fixed workload (STEPS below) against a throwaway server from scripts/sandbox.py (ROW format, FULL
image, FULL metadata, CRC32 checksums), notes the binlog position before each step, then walks every binlog
file of the datadir (4-byte magic, then events by event_size) and tags each event with the step that wrote
it. The C test (tests/unit/test_binlog_codec.c) finds events by step and type and checks the decoded
values against what the step inserted, so the test needs no server.

Usage:
  /usr/bin/python3 tests/unit/make_binlog_vectors.py                      # starts and stops its own server
  /usr/bin/python3 tests/unit/make_binlog_vectors.py --state /tmp/x.json  # a server from `sandbox.py start 1`
  /usr/bin/python3 tests/unit/make_binlog_vectors.py --seeds-only         # corpus from the committed header
Writes tests/unit/binlog_vectors.h and fuzz/corpus/fuzz_binlog/ (files named seed_*, rewritten each run).
Seed layout (fuzz/fuzz_binlog.c): a sequence of [selector u8][one whole event]; selector 0 = parse by the
event's own type, the event ending in a CRC32 (0x80: the file has no checksums). Each step also gets a
copy with its v1 ROWS events rewritten as v2 (MariaDB 10.11 writes only v1).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

HEADER = os.path.join(HERE, "binlog_vectors.h")
CORPUS = os.path.join(ROOT, "fuzz", "corpus", "fuzz_binlog")

BLOB_70K = "REPEAT('0123456789abcdef', 4480)"  # 71680 bytes; the test rebuilds it
ENUM300 = ",".join(f"'v{i}'" for i in range(300))  # > 255 values: a 2-byte index
SET10 = ",".join(f"'m{i}'" for i in range(10))     # > 8 members: a 2-byte bitmask

# (step name, SQL). Each step runs in its own `mariadb` session with time_zone '+00:00'.
STEPS = [
    ("schema", f"""
CREATE DATABASE sy;
USE sy;
CREATE TABLE t_int (id INT PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT,
  siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT,
  biu BIGINT UNSIGNED) ENGINE=InnoDB;
CREATE TABLE t_num (id INT PRIMARY KEY, d1 DECIMAL(10,2), d2 DECIMAL(65,30), d3 DECIMAL(5,0),
  d4 DECIMAL(10,10) UNSIGNED, f FLOAT, dbl DOUBLE, d5 DECIMAL(20,9)) ENGINE=InnoDB;
CREATE TABLE t_time (id INT PRIMARY KEY, d DATE, t0 TIME, t3 TIME(3), t6 TIME(6), dt6 DATETIME(6),
  dt0 DATETIME, ts6 TIMESTAMP(6) NULL DEFAULT NULL, ts0 TIMESTAMP NULL DEFAULT NULL, y YEAR,
  t1 TIME(1), dt2 DATETIME(2), ts4 TIMESTAMP(4) NULL DEFAULT NULL) ENGINE=InnoDB;
CREATE TABLE t_str (id INT PRIMARY KEY,
  c_u CHAR(10) CHARACTER SET utf8mb4, c_l CHAR(10) CHARACTER SET latin1,
  c_big CHAR(100) CHARACTER SET utf8mb4, v_u VARCHAR(300) CHARACTER SET utf8mb4,
  v_l VARCHAR(20) CHARACTER SET latin1, tx_u TEXT CHARACTER SET utf8mb4,
  tt_l TINYTEXT CHARACTER SET latin1, mt MEDIUMTEXT CHARACTER SET utf8mb4,
  lt LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci,
  bn BINARY(4), vb VARBINARY(10), tb TINYBLOB, bl BLOB, mb MEDIUMBLOB, lb LONGBLOB,
  e ENUM('a','b','c') CHARACTER SET latin1, s SET('x','y','z') CHARACTER SET utf8mb4,
  e2 ENUM({ENUM300}), s2 SET({SET10}),
  b1 BIT(1), b10 BIT(10), b64 BIT(64), j JSON, g GEOMETRY,
  gen INT AS (id * 2) STORED, genv INT AS (id + 1) VIRTUAL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE t_big (id INT PRIMARY KEY, lb LONGBLOB) ENGINE=InnoDB;
SET SESSION sql_mode = '';
SET GLOBAL mysql56_temporal_format = OFF;
CREATE TABLE t_oldtime (id INT PRIMARY KEY, t TIME, dt DATETIME, ts TIMESTAMP NULL DEFAULT NULL)
  ENGINE=InnoDB;
SET GLOBAL mysql56_temporal_format = ON;
"""),
    ("ins_int", """
INSERT INTO sy.t_int VALUES
 (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808,
  18446744073709551615),
 (2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (4, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1);
"""),
    ("ins_num", """
INSERT INTO sy.t_num VALUES
 (1, -12.50, 12345678901234567890123456789012345.123456789012345678901234567890, 99999,
  0.0000000001, 1.5, -2.25e300, 123456789.000000001),
 (2, 0.50, -0.000000000000000000000000000001, -99999, 0.9999999999, -0.125, 3.141592653589793,
  -0.5),
 (3, 0, 0, 0, 0, 0, 0, 0),
 (4, 99999999.99, -99999999999999999999999999999999999.999999999999999999999999999999, 1, 0.5,
  NULL, NULL, -99999999999.999999999);
"""),
    ("ins_time", """
INSERT INTO sy.t_time VALUES
 (1, '2024-02-29', '-838:59:59', '-00:00:01.500', '12:34:56.789012', '2024-02-29 23:59:59.999999',
  '1000-01-01 00:00:00', '2038-01-19 03:14:07.999999', '1970-01-01 00:00:01', 2155,
  '-00:00:00.1', '2000-01-01 00:00:00.01', '2000-03-01 12:00:00.1234'),
 (2, '9999-12-31', '838:59:59', '-838:59:59.000', '-12:34:56.000001', '0001-01-01 00:00:00.000001',
  '9999-12-31 23:59:59', '1970-01-01 00:00:01.000000', '2038-01-19 03:14:07', 1901,
  '-00:00:01.1', '1999-12-31 23:59:59.99', '2024-02-29 00:00:00.0001'),
 (3, NULL, '00:00:00', '00:00:00.000', '-00:00:00.000001', NULL, NULL, NULL, NULL, 0, NULL, NULL, NULL);
SET time_zone = '+05:30';
INSERT INTO sy.t_time (id, ts6, ts0) VALUES (4, '2024-01-01 05:30:00.5', '2024-01-01 05:30:00');
"""),
    ("ins_str", u"""
INSERT INTO sy.t_str (id, c_u, c_l, c_big, v_u, v_l, tx_u, tt_l, mt, lt, bn, vb, tb, bl, mb, lb, e, s, e2, s2,
  b1, b10, b64, j, g) VALUES
 (1, 'h\u00e9llo', 'caf\u00e9', REPEAT('\u2713', 100), CONCAT('x', REPEAT('\U0001F600', 70)),
  'latin', 'text \u2713', 'tiny', 'medium', 'long', X'00010203', X'FF00', X'7F', X'DEADBEEF',
  X'', X'00', 'b', 'x,z', 'v299', 'm0,m9', b'1', b'1000000001', b'1111111111111111111111111111111111111111111111111111111111111111',
  '{"a": [1, 2, {"b": null}]}', ST_GeomFromText('POINT(1 2)')),
 (2, '', '', '', '', '', '', '', '', '', X'61000000', X'', X'', X'', X'', X'', 'a', '', 'v0', '',
  b'0', b'0', b'0', '[]', NULL),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""),
    ("ins_big", f"INSERT INTO sy.t_big VALUES (1, {BLOB_70K});"),
    ("ins_old", """
SET SESSION sql_mode = '';
INSERT INTO sy.t_oldtime VALUES (1, '-838:59:59', '2024-02-29 23:59:59', '2038-01-19 03:14:07'),
 (2, '12:34:56', '1000-01-01 00:00:00', '1970-01-01 00:00:01'), (3, '00:00:00', '0000-00-00 00:00:00', NULL);
"""),
    ("update", "UPDATE sy.t_int SET ti = 42, biu = 7 WHERE id = 4;"),
    ("delete", "DELETE FROM sy.t_str WHERE id = 2;"),
    ("ddl", "ALTER TABLE sy.t_int ADD COLUMN extra INT NULL;"),
    ("txn", """
BEGIN;
INSERT INTO sy.t_int (id, ti) VALUES (10, 10);
UPDATE sy.t_int SET ti = 11 WHERE id = 10;
DELETE FROM sy.t_int WHERE id = 10;
COMMIT;
"""),
    ("minimal", """
SET SESSION binlog_row_image = MINIMAL;
UPDATE sy.t_int SET si = 5 WHERE id = 2;
"""),
    ("xa", """
XA START 'sy-xa-1';
INSERT INTO sy.t_int (id, ti) VALUES (20, 20);
XA END 'sy-xa-1';
XA PREPARE 'sy-xa-1';
XA COMMIT 'sy-xa-1';
"""),
    ("compress_on", "SET GLOBAL log_bin_compress = ON; SET GLOBAL log_bin_compress_min_len = 10;"),
    ("compressed", """
INSERT INTO sy.t_int (id, ti, bi) VALUES (30, 30, 3000000000), (31, 31, NULL);
UPDATE sy.t_int SET ti = 32 WHERE id = 30;
DELETE FROM sy.t_int WHERE id = 31;
INSERT INTO sy.t_big VALUES (2, REPEAT('z', 5000));
CREATE TABLE sy.t_comp (id INT PRIMARY KEY, note VARCHAR(100) COMMENT 'a comment long enough to compress')
  ENGINE=InnoDB;
"""),
    ("compress_off", "SET GLOBAL log_bin_compress = OFF; SET GLOBAL log_bin_compress_min_len = 256;"),
    ("rotate", "FLUSH BINARY LOGS;"),
    ("nocrc", """
SET GLOBAL binlog_checksum = NONE;
INSERT INTO sy.t_int (id, ti) VALUES (40, 40);
"""),
]


def c_string(data: bytes, indent: str = "    ", width: int = 100) -> str:
    """data as concatenated C string literals (printable ASCII kept, the rest as 3-digit octal)."""
    lines, cur = [], ""
    for b in data:
        ch = chr(b)
        if 32 <= b < 127 and ch not in '\\"?':
            piece = ch
        else:
            piece = "\\%03o" % b
        cur += piece
        if len(cur) >= width:
            lines.append(cur)
            cur = ""
    if cur or not lines:
        lines.append(cur)
    return "\n".join(f'{indent}"{line}"' for line in lines)


def read_binlog(path: str):
    """[(pos, bytes)] of each event in one binlog file."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\xfebin":
        raise SystemExit(f"{path}: not a binlog")
    out, pos = [], 4
    while pos + 19 <= len(data):
        size = struct.unpack_from("<I", data, pos + 9)[0]
        if size < 19 or pos + size > len(data):
            break
        out.append((pos, data[pos:pos + size]))
        pos += size
    return out


def capture(srv) -> list:
    def master():
        row = srv.sql("SHOW MASTER STATUS")[0]
        return row[0], int(row[1])

    marks = []
    for name, sql in STEPS:
        marks.append((master(), name))
        srv.sql("SET time_zone = '+00:00';\n" + sql)
    marks.append((master(), "end"))
    files = sorted(f for f in os.listdir(srv.datadir) if re.fullmatch(r"binlog\.\d{6}", f))

    def step_of(fname, pos):
        name = "init"
        for (mf, mp), mname in marks:
            if (mf, mp) <= (fname, pos):
                name = mname
        return name

    events = []
    for fname in files:
        for pos, ev in read_binlog(os.path.join(srv.datadir, fname)):
            step = step_of(fname, pos)
            # Before the first step: keep the file's own events, not the sandbox's account bootstrap
            # (its statements carry the sandbox password).
            if step == "init" and ev[4] not in (15, 161, 163):
                continue
            events.append({"step": step, "file": fname, "pos": pos, "bytes": ev})
    return events


def write_header(events: list, version: str) -> None:
    out = ["/* Generated by tests/unit/make_binlog_vectors.py from a MariaDB %s binlog: do not edit." % version,
           " * Every event of the workload's binlog files in order (FORMAT_DESCRIPTION first in each file),",
           " * tagged with the workload step that wrote it (\"init\" = before the first step). */",
           "#ifndef SY_BINLOG_VECTORS_H", "#define SY_BINLOG_VECTORS_H", "", "#include <stddef.h>",
           "#include <stdint.h>", "",
           "struct binlog_vector {",
           "    const char *step;   /* workload step (make_binlog_vectors.py STEPS) */",
           "    const char *file;   /* binlog file name */",
           "    uint32_t pos;       /* offset of the event in that file */",
           "    uint8_t type;       /* event type (header byte 4) */",
           "    size_t len;         /* event_size: header + body + CRC when the file has checksums */",
           "    const uint8_t *p;   /* the event's bytes */",
           "};", ""]
    for i, ev in enumerate(events):
        b = ev["bytes"]
        out.append(f"static const uint8_t binlog_ev_{i}[{len(b) + 1}] =")
        out.append(c_string(b) + ";")
    out.append("")
    out.append("static const struct binlog_vector binlog_vectors[] = {")
    for i, ev in enumerate(events):
        b = ev["bytes"]
        out.append(f'    {{ "{ev["step"]}", "{ev["file"]}", {ev["pos"]}, {b[4]}, {len(b)}, binlog_ev_{i} }},')
    out.append("};")
    out.append("#define BINLOG_VECTOR_COUNT (sizeof binlog_vectors / sizeof binlog_vectors[0])")
    out.append("")
    out.append("#endif")
    with open(HEADER + ".tmp", "w") as f:
        f.write("\n".join(out) + "\n")
    os.replace(HEADER + ".tmp", HEADER)


def parse_header_file() -> list:
    """The events of the committed header, back as bytes (for --seeds-only)."""
    text = open(HEADER).read()
    arrays = {}
    for m in re.finditer(r"static const uint8_t binlog_ev_(\d+)\[(\d+)\] =\n((?:    \".*\"\n?)+);", text):
        lit = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(3)))
        raw = bytes(lit, "latin1").decode("unicode_escape").encode("latin1")
        arrays[int(m.group(1))] = raw
    events = []
    for m in re.finditer(r'\{ "(\w+)", "([\w.]+)", (\d+), (\d+), (\d+), binlog_ev_(\d+) \}', text):
        b = arrays[int(m.group(6))]
        assert len(b) == int(m.group(5)), m.group(0)
        events.append({"step": m.group(1), "file": m.group(2), "pos": int(m.group(3)), "bytes": b})
    return events


def to_v2(ev: bytes, has_crc: bool) -> bytes:
    """A v1 ROWS event (23-25, compressed 166-168) rewritten as v2 (30-32, 169-171): 2 bytes of extra
    data length (just itself) after the 8-byte post-header, event_size and CRC redone."""
    body = ev[19:len(ev) - (4 if has_crc else 0)]
    body = body[:8] + b"\x02\x00" + body[8:]
    typ = ev[4] + (7 if ev[4] <= 25 else 3)
    size = 19 + len(body) + (4 if has_crc else 0)
    head = ev[:4] + bytes([typ]) + ev[5:9] + struct.pack("<I", size) + ev[13:19]
    out = head + body
    if has_crc:
        out += struct.pack("<I", zlib.crc32(out))
    return out


def write_seeds(events: list) -> None:
    """One seed per step (its events in order, so each ROWS follows its TABLE_MAP), plus one seed per
    non-row event on its own. Selector 0 = by type with CRC, 0x80 = by type, the file has no CRC."""
    os.makedirs(CORPUS, exist_ok=True)
    for f in os.listdir(CORPUS):
        if f.startswith("seed_"):
            os.unlink(os.path.join(CORPUS, f))
    crc_files = set()
    by_step: dict = {}
    for ev in events:
        b = ev["bytes"]
        if b[4] == 15:  # FORMAT_DESCRIPTION: checksum_alg byte before the final 4 bytes
            if b[-5] == 1:
                crc_files.add(ev["file"])
        by_step.setdefault(ev["step"], []).append(ev)
    n = 0
    for step, evs in by_step.items():
        seq = b""
        for ev in evs:
            sel = 0 if ev["file"] in crc_files else 0x80
            seq += bytes([sel]) + ev["bytes"]
        with open(os.path.join(CORPUS, f"seed_{n:03d}_{step}"), "wb") as f:
            f.write(seq)
        n += 1
        if any(ev["bytes"][4] in (23, 24, 25, 166, 167, 168) for ev in evs):   # the same rows as v2
            seq = b""
            for ev in evs:
                crc = ev["file"] in crc_files
                b = ev["bytes"]
                if b[4] in (23, 24, 25, 166, 167, 168) and len(b) < 16384:
                    b = to_v2(b, crc)
                seq += bytes([0 if crc else 0x80]) + b
            with open(os.path.join(CORPUS, f"seed_{n:03d}_{step}_v2"), "wb") as f:
                f.write(seq)
            n += 1
        for ev in evs:
            if ev["bytes"][4] in (2, 4, 15, 16, 162, 163, 165):
                sel = 0 if ev["file"] in crc_files else 0x80
                with open(os.path.join(CORPUS, f"seed_{n:03d}_{step}_t{ev['bytes'][4]}"), "wb") as f:
                    f.write(bytes([sel]) + ev["bytes"])
                n += 1
    print(f"wrote {n} seeds to {CORPUS}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state", help="state file of a running `sandbox.py start 1` server (fresh, unused)")
    ap.add_argument("--seeds-only", action="store_true", help="rewrite the fuzz corpus from the header")
    a = ap.parse_args()
    if a.seeds_only:
        write_seeds(parse_header_file())
        return 0
    import sandbox
    if a.state:
        with open(a.state) as f:
            srv = sandbox.MariaDB.from_state(json.load(f)["servers"][0])
        events = capture(srv)
        version = srv.sql("SELECT VERSION()")[0][0]
    else:
        with sandbox.servers(1) as (srv,):
            events = capture(srv)
            version = srv.sql("SELECT VERSION()")[0][0]
    write_header(events, version)
    print(f"wrote {len(events)} events to {HEADER}")
    write_seeds(events)
    return 0


if __name__ == "__main__":
    sys.exit(main())
