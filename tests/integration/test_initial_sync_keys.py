"""The initial copy pages every table by its key, a few rows per chunk: what a user relies on is that DR
ends up with exactly the business rows whatever the key type — ENUM (index order = member order, not
text order), BIT, SET, composite keys, strings whose collation order differs from their byte order,
DECIMAL, DATETIME, FLOAT and DOUBLE — with no row copied twice (duplicate key) or skipped, and that `verify` agrees."""

from __future__ import annotations

import json

from test_forward_mariadb import fresh  # noqa: F401 - fresh is a fixture
from helpers import conn, instance, q, wait_for

CHUNK_ROWS = 2

# ENUM members deliberately not in text order; values spelled in a collation-insensitive mix
CI_VALUES = ["a", "B", "c", "é", "f", "Z", "_x", "a1", "A2", " lead", "x  ", "ß", "Ö", "o1", "😀", "z~"]

TABLES = {
    # name: (CREATE TABLE body, rows as INSERT ... SELECT or a list of tuples)
    "k_enum": ("(e ENUM('zeta','alpha','mid','Beta','ALPHA2') NOT NULL PRIMARY KEY, v INT)",
               [("zeta", 1), ("alpha", 2), ("mid", 3), ("Beta", 4), ("ALPHA2", 5)]),
    "k_enum_id": ("(e ENUM('zeta','alpha','mid') NOT NULL, id INT NOT NULL, v INT, PRIMARY KEY (e, id))",
                  "SELECT ELT(seq % 3 + 1, 'zeta', 'alpha', 'mid'), seq, seq FROM seq_0_to_59"),
    "k_bit": ("(b BIT(12) NOT NULL PRIMARY KEY, v INT)",
              "SELECT seq * 67 % 4096, seq FROM seq_0_to_60"),
    "k_bit64": ("(b BIT(64) NOT NULL PRIMARY KEY, v INT)",
                "SELECT CAST(18446744073709551615 - seq * 1000000007 AS UNSIGNED), seq FROM seq_0_to_20"),
    "k_set": ("(s SET('z','y','x','w') NOT NULL PRIMARY KEY, v INT)",
              "SELECT seq, seq FROM seq_0_to_15"),
    "k_int_str": ("(n INT NOT NULL, s VARCHAR(20) COLLATE utf8mb4_general_ci NOT NULL, v INT, PRIMARY KEY (n, s))",
                  None),
    "k_ci": ("(s VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL PRIMARY KEY, v INT)",
             [(s, i) for i, s in enumerate(CI_VALUES)]),
    "k_latin": ("(s VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_swedish_ci NOT NULL PRIMARY KEY, v INT)",
                [(s, i) for i, s in enumerate(["å", "z", "a", "Ä", "ö", "B", "Ü", "o", "c"])]),
    "k_dec_dt": ("(x DECIMAL(12,3) NOT NULL, d DATETIME(6) NOT NULL, v INT, PRIMARY KEY (x, d))",
                 "SELECT seq DIV 4 / 8 - 3, '2024-01-01' + INTERVAL seq * 1000003 MICROSECOND, seq "
                 "FROM seq_0_to_79"),
    # FLOAT text is rounded to 6 digits (0.1 is 0.100000001490116...): a bound read as text repeats rows
    "k_float": ("(f FLOAT NOT NULL PRIMARY KEY, v INT)", "SELECT seq / 10 + seq * 0.000001, seq FROM seq_0_to_60"),
    "k_double_id": ("(d DOUBLE NOT NULL, id INT NOT NULL, v INT, PRIMARY KEY (d, id))",
                    "SELECT 1e0 / (seq DIV 2 + 3), seq, seq FROM seq_0_to_40"),
    "k_vbin": ("(k VARBINARY(8) NOT NULL PRIMARY KEY, v INT)",
               "SELECT CONCAT(UNHEX(LPAD(HEX(seq % 256), 2, '0')), IF(seq % 2, X'00', X'FF27'), seq), seq "
               "FROM seq_0_to_40"),
}


def load(server, db):
    c = conn(server, db)
    with c.cursor() as cur:
        for name, (body, rows) in TABLES.items():
            cur.execute(f"CREATE TABLE {name} {body} ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
            if name == "k_int_str":
                rows = [(n, s, n * 100 + i) for n in (-1, 0, 7) for i, s in enumerate(CI_VALUES)]
            if isinstance(rows, str):
                cur.execute(f"INSERT INTO {name} {rows}")
            else:
                marks = ",".join(["%s"] * len(rows[0]))
                cur.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
    c.close()


def rows_by_bytes(server, db, table):
    """Every row, each column as its bytes (BIT and ENUM included), in a side-independent order."""
    c = conn(server, db)
    try:
        with c.cursor() as cur:
            cols = [r[0] for r in q(server, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE "
                                            f"TABLE_SCHEMA='{db}' AND TABLE_NAME='{table}' ORDER BY ORDINAL_POSITION")]
            cur.execute(f"SELECT {','.join(f'HEX(`{x}`)' for x in cols)} FROM `{table}`")
            return sorted(cur.fetchall())
    finally:
        c.close()


def test_initial_sync_pages_every_key_type(daemon, mariadb_pair, fresh):
    b, dr = mariadb_pair
    load(b, fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", initial_sync_chunk_rows=CHUNK_ROWS)
    st = wait_for(lambda: instance(d, pname)["state"] in ("running", "failed") and instance(d, pname), 120,
                  "the initial copy to end")
    assert st["state"] == "running" and st["last_error"] is None, st
    for name in TABLES:
        src = rows_by_bytes(b, fresh, name)
        assert len(src) > CHUNK_ROWS * 2, name            # many chunks per table
        assert rows_by_bytes(dr, fresh, name) == src, name
    r = d.admin_ok("verify", _timeout=300, pair=pname)
    assert r["clean"] is True, json.dumps(r, indent=1)
    counts = {t["table"]: (t["business_rows"], t["dr_rows"]) for t in r["tables"]}
    for name in TABLES:
        n = q(b, f"SELECT COUNT(*) FROM {fresh}.{name}")[0][0]
        assert counts[f"{fresh}.{name}"] == (n, n), name


def test_initial_sync_chunk_rows_is_validated(daemon, tmp_path):
    d = daemon(business="127.0.0.1:1", dr="127.0.0.1:2", initial_sync_chunk_rows=0, wait=False)
    assert d.wait() != 0
    assert "initial_sync_chunk_rows" in d.log()
