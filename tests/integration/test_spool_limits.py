"""spool_max_bytes against one source transaction larger than it: the writer applies a transaction only
whole, so waiting for room would wait forever. What a user relies on is a clear failure — state `failed`,
reason `transaction_too_large`, last_error naming the transaction, its size and the cap, and the fix — and
that after raising the cap and restarting, `start` brings the transaction over with nothing lost."""

from __future__ import annotations

import re

from test_forward_mariadb import fresh  # noqa: F401
from helpers import assert_equal_eventually, instance, q, wait_for, wait_state


def test_transaction_larger_than_spool_fails_then_arrives_after_raising_the_cap(daemon, mariadb_pair, fresh):
    b = mariadb_pair.business
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, pad VARCHAR(255))", database=fresh)
    b.sql("INSERT INTO t VALUES (0, 'before')", database=fresh)
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", spool_max_bytes="64K")
    wait_state(d, pname, "running")
    # small transactions fit and flow
    for n in range(1, 4):
        b.sql(f"INSERT INTO t VALUES ({n}, 'small')", database=fresh)
    assert_equal_eventually(mariadb_pair, fresh)
    # one transaction of 2000 rows of ~255 bytes: ~0.5 MiB, far above the 64 KiB cap
    b.sql("INSERT INTO t SELECT seq + 100, REPEAT('x', 255) FROM seq_1_to_2000", database=fresh)
    gtid = q(b, "SELECT @@gtid_binlog_pos")[0][0]
    st = wait_for(lambda: instance(d, pname)["state"] == "failed" and instance(d, pname), 60,
                  "failed: transaction_too_large")
    assert st["reason"] == "transaction_too_large", st
    err = st["last_error"]
    own = next(g for g in gtid.split(",") if g.startswith("1-"))          # business is domain 1
    assert own in err and "spool_max_bytes=65536" in err and "raise spool_max_bytes" in err, err
    size = int(re.search(r"(\d+) bytes spooled so far", err).group(1))
    assert 0 < size <= 65536, err
    assert q(mariadb_pair.dr, f"SELECT COUNT(*) FROM {fresh}.t")[0][0] == 4   # nothing of it applied
    # the fix the message names: a larger cap, a restart, start
    d.ini.write_text(d.ini.read_text().replace("spool_max_bytes = 64K", "spool_max_bytes = 16M"))
    d.restart()
    assert instance(d, pname)["state"] == "failed"                           # failed survives a restart
    assert d.ctl("start", f"{pname}/forward").returncode == 0
    wait_state(d, pname, "running")
    assert_equal_eventually(mariadb_pair, fresh)
    assert q(mariadb_pair.dr, f"SELECT COUNT(*) FROM {fresh}.t")[0][0] == 2004
    b.sql("INSERT INTO t VALUES (9999, 'after')", database=fresh)
    assert_equal_eventually(mariadb_pair, fresh)
    assert instance(d, pname)["last_error"] is None
