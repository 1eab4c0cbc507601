"""`verify PAIR [--objects ...]` against two real servers: what a user relies on is that a DR copy the
forward instance keeps is reported clean — also while business keeps writing — and that a row changed,
deleted or missing on DR behind Switchyard's back is reported, by table and key range, with counts."""

from __future__ import annotations

import json
import os
import random
import threading
import time

import pytest


# shared helpers and the per-test database fixture
from test_forward_mariadb import fresh  # noqa: E402,F401
from helpers import assert_a_stop_cuts_a_verify, conn, q, wait_state


SCHEMA = [
    # integer key; NULL and '' in the same column; blobs (NULL, empty, binary, 64 KiB)
    """CREATE TABLE t_int (id INT NOT NULL PRIMARY KEY, v VARCHAR(40) NULL, n INT NULL, b LONGBLOB NULL,
       d DATETIME(6) NULL, ts TIMESTAMP(6) NULL DEFAULT NULL, g INT AS (n * 2) VIRTUAL)
       ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    # composite key, string first
    """CREATE TABLE t_comp (region VARCHAR(8) NOT NULL, id INT NOT NULL, qty INT NOT NULL, note TEXT NULL,
       PRIMARY KEY (region, id)) ENGINE=InnoDB DEFAULT CHARSET=latin1""",
    # no PRIMARY KEY: a NOT NULL UNIQUE string key in a case- and accent-insensitive collation
    """CREATE TABLE t_ci (k VARCHAR(40) COLLATE utf8mb4_general_ci NOT NULL, v TEXT NULL, bits BIT(12) NULL,
       e ENUM('red','green','blue') NULL, UNIQUE KEY uk (k)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
]
N_INT, N_COMP, N_CI = 3500, 2400, 1500


def ci_key(i):
    # mixed case, accents and emoji; unique under utf8mb4_general_ci (the number decides)
    return f"{'Key' if i % 2 else 'kEY'}-{i:05d}-{'é' if i % 3 == 0 else 'ü' if i % 3 == 1 else '😀'}"


def load(server, db):
    c = conn(server, db)
    with c.cursor() as cur:
        for stmt in SCHEMA:
            cur.execute(stmt)
        rows = []
        for i in range(1, N_INT + 1):
            v = None if i % 7 == 0 else "" if i % 7 == 1 else f"value {i}"
            b = None if i % 5 == 0 else b"" if i % 5 == 1 else bytes([i % 256, 0, 255]) * (i % 50)
            if i % 1000 == 3:
                b = os.urandom(64 * 1024)
            rows.append((i, v, None if i % 11 == 0 else i * 3, b, f"2024-01-02 03:04:{i % 60:02d}.{i:06d}",
                         None if i % 2 else "2024-06-30 23:59:59.5"))
        cur.executemany("INSERT INTO t_int (id, v, n, b, d, ts) VALUES (%s, %s, %s, %s, %s, %s)", rows)
        cur.executemany("INSERT INTO t_comp VALUES (%s, %s, %s, %s)",
                        [(["eu", "US", "apac", "za"][i % 4], i, i % 97, None if i % 3 else "n" * (i % 300))
                         for i in range(N_COMP)])
        cur.executemany("INSERT INTO t_ci VALUES (%s, %s, %s, %s)",
                        [(ci_key(i), None if i % 4 == 0 else f"text {i}", i % 4096 if i % 5 else None,
                          ["red", "green", "blue", None][i % 4]) for i in range(N_CI)])
    c.close()


def start(daemon, mariadb_pair, db, **kw):
    pname = f"p{db}"
    d = daemon(pair=pname, objects=f"{db}.*", **kw)
    wait_state(d, pname, "running")
    return d, pname


def verify(d, pname, **args):
    return d.admin_ok("verify", _timeout=300, pair=pname, **args)


def by_table(result):
    return {t["table"]: t for t in result["tables"]}


def business_workload(server, db):
    """Inserts, updates (incl. to NULL and ''), deletes on business; DR is not waited for."""
    c = conn(server, db)
    with c.cursor() as cur:
        cur.execute("UPDATE t_int SET v = CONCAT(IFNULL(v, 'was null'), ' ✓'), n = NULL WHERE id % 13 = 0")
        cur.execute("UPDATE t_int SET v = NULL WHERE id % 17 = 0")
        cur.execute("UPDATE t_int SET v = '' WHERE id % 19 = 0")
        cur.execute("DELETE FROM t_int WHERE id BETWEEN 1000 AND 1100")
        cur.execute("INSERT INTO t_int (id, v, b) VALUES (5000, 'new', %s), (5001, NULL, '')", (os.urandom(5000),))
        cur.execute("UPDATE t_comp SET qty = qty + 1, note = 'changed' WHERE region = 'US'")
        cur.execute("INSERT INTO t_comp VALUES ('aa', 1, 1, NULL), ('zz', 99999, 2, '')")
        cur.execute("DELETE FROM t_comp WHERE region = 'za' AND id < 500")
        cur.execute("UPDATE t_ci SET v = UPPER(v), bits = b'101', e = 'blue' WHERE k LIKE 'key-0001%'")
        cur.execute("INSERT INTO t_ci (k, v) VALUES ('ZZZ-last', NULL), ('AAA-first', '')")
    c.close()


def test_verify_clean_after_workload(daemon, mariadb_pair, fresh):
    load(mariadb_pair.business, fresh)
    d, pname = start(daemon, mariadb_pair, fresh)
    business_workload(mariadb_pair.business, fresh)
    r = verify(d, pname)                      # at once: verify waits for the writer itself
    assert r["pair"] == pname and r["clean"] is True, json.dumps(r, indent=1)
    t = by_table(r)
    assert sorted(t) == [f"{fresh}.t_ci", f"{fresh}.t_comp", f"{fresh}.t_int"]
    counts = {name: q(mariadb_pair.business, f"SELECT COUNT(*) FROM {name}")[0][0] for name in t}
    for name, row in t.items():
        assert row["status"] == "ok" and row["mismatches"] == [], row
        assert row["business_rows"] == row["dr_rows"] == counts[name], row
    assert t[f"{fresh}.t_int"]["chunks"] >= 4 and t[f"{fresh}.t_comp"]["chunks"] >= 3
    assert t[f"{fresh}.t_ci"]["chunks"] >= 2
    # and through switchyardctl: exit 0, one JSON document
    out = d.ctl("--json", "verify", pname, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["clean"] is True


def mismatch_containing(row, key):
    """The listed mismatch whose (from, to] holds the integer key."""
    for m in row["mismatches"]:
        lo = -1 if m["from"] is None else int(m["from"])
        hi = 1 << 62 if m["to"] is None else int(m["to"])
        if lo < key <= hi:
            return m
    raise AssertionError(f"no mismatch range holds {key}: {row['mismatches']}")


def test_verify_reports_rows_changed_on_dr(daemon, mariadb_pair, fresh):
    load(mariadb_pair.business, fresh)
    d, pname = start(daemon, mariadb_pair, fresh)
    assert verify(d, pname)["clean"] is True
    dr = mariadb_pair.dr
    # behind Switchyard's back (DR is not fenced yet): one value, NULL -> '', and a case-only key change
    q(dr, "UPDATE t_int SET n = n + 1 WHERE id = 2345", fresh)
    q(dr, "UPDATE t_int SET v = '' WHERE id = 700 AND v IS NULL", fresh)
    q(dr, "UPDATE t_ci SET k = UPPER(k) WHERE k = %s", fresh, (ci_key(1001),))
    r = verify(d, pname)
    assert r["clean"] is False
    t = by_table(r)
    ti = t[f"{fresh}.t_int"]
    assert ti["status"] == "mismatch" and len(ti["mismatches"]) == 2, ti
    for key in (2345, 700):
        m = mismatch_containing(ti, key)
        assert m["business_rows"] == m["dr_rows"] > 0 and m["confirmed"] is True
    assert ti["business_rows"] == ti["dr_rows"] == N_INT
    tc = t[f"{fresh}.t_ci"]
    assert tc["status"] == "mismatch" and len(tc["mismatches"]) == 1, tc
    m = tc["mismatches"][0]                    # the key range names the string key (its collation's order)
    assert (m["from"] is None or m["from"].lower() < ci_key(1001).lower()) and \
           (m["to"] is None or ci_key(1001).lower() <= m["to"].lower()), m
    assert t[f"{fresh}.t_comp"]["status"] == "ok"
    # the command itself succeeds: `clean` is the verdict
    out = d.ctl("--json", "verify", pname, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["clean"] is False


def test_verify_reports_deleted_and_missing_on_dr(daemon, mariadb_pair, fresh):
    load(mariadb_pair.business, fresh)
    mariadb_pair.business.sql("CREATE TABLE gone (id INT PRIMARY KEY)", database=fresh)
    mariadb_pair.business.sql("INSERT INTO gone VALUES (1), (2), (3)", database=fresh)
    d, pname = start(daemon, mariadb_pair, fresh)
    dr = mariadb_pair.dr
    q(dr, "DELETE FROM t_comp WHERE region = 'US' AND id = 1001", fresh)
    q(dr, "INSERT INTO t_comp VALUES ('zzz', 1, 1, 'only on dr')", fresh)   # past business's last key
    q(dr, "DROP TABLE gone", fresh)
    r = verify(d, pname)
    assert r["clean"] is False
    t = by_table(r)
    tc = t[f"{fresh}.t_comp"]
    assert tc["status"] == "mismatch", tc
    assert tc["business_rows"] == N_COMP and tc["dr_rows"] == N_COMP   # one fewer, one more
    assert sum(m["business_rows"] - m["dr_rows"] for m in tc["mismatches"]) == 0
    assert any(m["business_rows"] == m["dr_rows"] + 1 for m in tc["mismatches"]), tc
    last = [m for m in tc["mismatches"] if m["to"] is None]
    assert last and last[0]["dr_rows"] == last[0]["business_rows"] + 1, tc
    g = t[f"{fresh}.gone"]
    assert g["status"] == "missing_on_dr" and g["business_rows"] == 3 and g["dr_rows"] == 0, g
    assert t[f"{fresh}.t_int"]["status"] == "ok"


def test_verify_counts_differ_after_delete_on_dr(daemon, mariadb_pair, fresh):
    load(mariadb_pair.business, fresh)
    d, pname = start(daemon, mariadb_pair, fresh)
    q(mariadb_pair.dr, "DELETE FROM t_int WHERE id = 3001", fresh)
    r = verify(d, pname, objects=f"{fresh}.t_int")
    ti = by_table(r)[f"{fresh}.t_int"]
    assert r["clean"] is False and ti["status"] == "mismatch"
    assert ti["business_rows"] == N_INT and ti["dr_rows"] == N_INT - 1
    m = mismatch_containing(ti, 3001)
    assert m["business_rows"] == m["dr_rows"] + 1


WORKLOAD_S = 5.0
WRITES_PER_S = 2000.0


@pytest.mark.tsan
def test_verify_clean_while_business_writes(daemon, mariadb_pair, fresh):
    """Chunks are compared at the position they were read at: a busy business side is no mismatch."""
    b = mariadb_pair.business
    b.sql("CREATE TABLE hot (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, v INT NOT NULL, s VARCHAR(20) NULL)",
          database=fresh)
    b.sql("INSERT INTO hot (v, s) SELECT seq, IF(seq % 3, NULL, 'x') FROM seq_1_to_20000", database=fresh)
    load(b, fresh)
    d, pname = start(daemon, mariadb_pair, fresh)
    stop = threading.Event()
    done = {"writes": 0, "error": None}
    results = []

    def busy(t_start):
        # at least WORKLOAD_S, and until two verify runs have ended while it writes (a slow build, such
        # as TSan's, may need longer for one verify than the whole nominal workload)
        elapsed = time.monotonic() - t_start
        return elapsed < WORKLOAD_S or (len(results) < 2 and elapsed < 20 * WORKLOAD_S)

    def writer():
        # WRITES_PER_S for WORKLOAD_S: busy, yet within what the forward writer applies
        rnd = random.Random(7)
        c = conn(b, fresh)
        t_start = time.monotonic()
        try:
            with c.cursor() as cur:
                while not stop.is_set() and busy(t_start):
                    ahead = done["writes"] / WRITES_PER_S - (time.monotonic() - t_start)
                    if ahead > 0:
                        time.sleep(ahead)
                    k = rnd.randint(1, 20000)
                    op = rnd.random()
                    if op < 0.5:
                        cur.execute("UPDATE hot SET v = v + 1, s = IF(s IS NULL, '', NULL) WHERE id = %s", (k,))
                    elif op < 0.8:
                        cur.execute("INSERT INTO hot (v, s) VALUES (%s, 'new')", (k,))
                    elif op < 0.9:
                        cur.execute("UPDATE t_int SET n = IFNULL(n, 0) + 1 WHERE id = %s", (k % N_INT + 1,))
                    else:
                        cur.execute("BEGIN")
                        cur.execute("DELETE FROM hot WHERE id = %s", (k,))
                        cur.execute("INSERT INTO hot (v) VALUES (%s)", (k,))
                        cur.execute("COMMIT")
                    done["writes"] += 1
        except Exception as e:              # reported by the test, not lost in the thread
            done["error"] = e
        finally:
            c.close()

    th = threading.Thread(target=writer, daemon=True)
    th.start()
    try:
        time.sleep(0.3)                     # the workload is under way before the first verify
        while th.is_alive():                # verify after verify, for as long as business writes
            t0 = time.monotonic()
            r = verify(d, pname)
            results.append((r, time.monotonic() - t0, th.is_alive()))
    finally:
        stop.set()
        th.join(30)
    assert done["error"] is None, done["error"]
    assert done["writes"] > 3000, done
    overlapped = [x for x in results if x[2]]
    assert len(overlapped) >= 2, f"only {len(overlapped)} verify run(s) overlapped the workload"
    for r, secs, _ in results:
        assert r["clean"] is True, json.dumps(r, indent=1)
        assert all(t["status"] == "ok" for t in r["tables"])
    hot = by_table(r)[f"{fresh}.hot"]
    assert hot["chunks"] >= 20 and hot["business_rows"] == hot["dr_rows"]
    # quiet again: the totals are the business counts exactly
    r = verify(d, pname)
    assert r["clean"] is True
    assert by_table(r)[f"{fresh}.hot"]["business_rows"] == q(b, "SELECT COUNT(*) FROM hot", fresh)[0][0]
    print(f"{len(results)} verify runs during {done['writes']} writes: "
          f"{', '.join(f'{x[1]:.2f}s' for x in results)}; {hot['chunks']} chunks of hot")


def test_verify_objects_restricts_tables(daemon, mariadb_pair, fresh):
    load(mariadb_pair.business, fresh)
    d, pname = start(daemon, mariadb_pair, fresh)
    q(mariadb_pair.dr, "UPDATE t_int SET n = -1 WHERE id = 10", fresh)     # outside the filter below
    r = verify(d, pname, objects=f"{fresh}.t_comp, {fresh}.t_ci")
    assert [t["table"] for t in r["tables"]] == [f"{fresh}.t_ci", f"{fresh}.t_comp"]
    assert r["clean"] is True
    r = verify(d, pname, objects=f"{fresh}.*")
    assert len(r["tables"]) == 3 and r["clean"] is False
    out = d.ctl("--json", "verify", pname, "--objects", f"{fresh}.t_int", timeout=300)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert [t["table"] for t in res["tables"]] == [f"{fresh}.t_int"] and res["clean"] is False
    # a filter naming nothing that is synchronized is refused, not reported clean
    reply = d.admin("verify", _timeout=60, pair=pname, objects="nosuchdb.*")
    assert reply["ok"] is False and reply["error"]["code"] == "bad_request", reply
    assert "nosuchdb" in reply["error"]["message"]


def test_verify_pair_without_objects_is_unknown_instance(daemon, mariadb_pair):
    pname = f"pnoobj{os.getpid() % 1000}"
    d = daemon(pair=pname)
    reply = d.admin("verify", pair=pname)
    assert reply["ok"] is False and reply["error"]["code"] == "unknown_instance", reply
    assert pname in reply["error"]["message"]
    out = d.ctl("verify", pname)
    assert out.returncode == 1 and "unknown_instance" in out.stderr + out.stdout
    reply = d.admin("verify", pair="nosuchpair")
    assert reply["error"]["code"] == "unknown_pair"


def test_verify_refused_while_paused(daemon, mariadb_pair, fresh):
    mariadb_pair.business.sql("CREATE TABLE t (id INT PRIMARY KEY)", database=fresh)
    d, pname = start(daemon, mariadb_pair, fresh)
    d.admin_ok("pause", instance=f"{pname}/forward")
    reply = d.admin("verify", pair=pname)
    assert reply["ok"] is False and reply["error"]["code"] == "bad_state", reply
    assert "paused" in reply["error"]["message"]


KEY_TABLES = {
    # name: (CREATE TABLE body, INSERT ... SELECT over seq_0_to_2499 with v = seq)
    "k_enum": ("(e ENUM('zeta','alpha','mid') NOT NULL, id INT NOT NULL, v INT, PRIMARY KEY (e, id))",
               "SELECT ELT(seq % 3 + 1, 'zeta', 'alpha', 'mid'), seq, seq FROM seq_0_to_2499"),
    "k_bit": ("(b BIT(16) NOT NULL PRIMARY KEY, v INT)", "SELECT seq * 7, seq FROM seq_0_to_2499"),
    "k_dt": ("(d DATETIME(6) NOT NULL PRIMARY KEY, v INT)",
             "SELECT '2024-01-01' + INTERVAL seq * 1000003 MICROSECOND, seq FROM seq_0_to_2499"),
    "k_dec": ("(x DECIMAL(12,3) NOT NULL PRIMARY KEY, v INT)", "SELECT seq / 8 - 100, seq FROM seq_0_to_2499"),
    "k_vbin": ("(k VARBINARY(16) NOT NULL PRIMARY KEY, v INT)",
               "SELECT CONCAT(UNHEX(LPAD(HEX(seq % 256), 2, '0')), X'00', seq), seq FROM seq_0_to_2499"),
    "k_float": ("(f FLOAT NOT NULL PRIMARY KEY, v INT)", "SELECT seq / 10 + 0.01, seq FROM seq_0_to_2499"),
    "k_ubig": ("(u BIGINT UNSIGNED NOT NULL PRIMARY KEY, v INT)",
               "SELECT 18446744073709551615 - seq * 3, seq FROM seq_0_to_2499"),
    "k_latin": ("(s VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_german1_ci NOT NULL PRIMARY KEY, v INT)",
                "SELECT CONCAT(ELT(seq % 4 + 1, 'é', 'Ä', 'ss', 'ß'), '-', seq), seq FROM seq_0_to_2499"),
}


def test_verify_key_types_partition_exactly(daemon, mariadb_pair, fresh):
    """Chunk bounds written back from each key type cover every row once: totals equal COUNT(*),
    and one changed row is one mismatching chunk."""
    b = mariadb_pair.business
    for name, (body, select) in KEY_TABLES.items():   # every key type through the initial copy, paged by key
        b.sql(f"CREATE TABLE {name} {body} ENGINE=InnoDB", database=fresh)
        b.sql(f"INSERT INTO {name} {select}", database=fresh)
    d, pname = start(daemon, mariadb_pair, fresh)
    r = verify(d, pname)
    assert r["clean"] is True, json.dumps(r, indent=1)
    for name, row in by_table(r).items():
        assert row["business_rows"] == row["dr_rows"] == 2500 and row["chunks"] == 3, row
    for name in KEY_TABLES:
        c = conn(mariadb_pair.dr, fresh)
        with c.cursor() as cur:
            assert cur.execute(f"UPDATE {name} SET v = -v - 1 WHERE v = 1777") == 1
        c.close()
    r = verify(d, pname)
    for name, row in by_table(r).items():
        assert row["status"] == "mismatch" and len(row["mismatches"]) == 1, row
        m = row["mismatches"][0]
        assert m["business_rows"] == m["dr_rows"] and m["confirmed"] is True, row
        assert row["business_rows"] == row["dr_rows"] == 2500, row
    t = by_table(r)
    # key text as users read it: labels for ENUM, UTF-8 for latin1 strings, hex for binary bytes
    ke = t[f"{fresh}.k_enum"]["mismatches"][0]
    assert all(k is None or (k.startswith("(") and k.split(",")[0][1:] in ("zeta", "alpha", "mid"))
               for k in (ke["from"], ke["to"])), ke
    kl = t[f"{fresh}.k_latin"]["mismatches"][0]
    assert all(k is None or "-" in k and not k.startswith("0x") for k in (kl["from"], kl["to"])), kl
    kv = t[f"{fresh}.k_vbin"]["mismatches"][0]
    assert all(k is None or k.startswith("0x") for k in (kv["from"], kv["to"])), kv


@pytest.mark.tsan
def test_a_stop_cuts_a_verify_connecting_to_a_dr_that_stopped_answering(daemon, mariadb_pair, fresh):
    """A verify's connections are published from the connect on (engine/mariadb_client.h
    sy_mariadb_connect_watched): with DR's mariadbd stopped (SIGSTOP: the kernel accepts the connection,
    no greeting comes), the verify waits in its connect to DR; a SIGTERM ends the daemon within seconds,
    exit 0, and the verify says why it failed. Before, the stop waited for the connect's 120 s timeout."""
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v INT)", database=fresh)
    b.sql("INSERT INTO t VALUES (1, 1), (2, 2)", database=fresh)
    d, pname = start(daemon, mariadb_pair, fresh)
    assert_a_stop_cuts_a_verify(d, pname, dr.pid)
