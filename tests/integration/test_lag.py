"""lag_ms from source positions polled with local timestamps (ARCHITECTURE.md "lag"), not binlog event
times (1 s resolution)."""

from __future__ import annotations

import time

import pytest

from test_forward_mariadb import fresh  # noqa: F401 (fixture)
from helpers import instance, wait_for, wait_state


@pytest.mark.tsan
def test_lag_grows_while_paused_and_returns_to_zero(daemon, mariadb_pair, fresh):  # noqa: F811
    b = mariadb_pair.business
    b.sql("CREATE TABLE t (id INT PRIMARY KEY)", database=fresh)
    pname = f"l{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*")
    wait_state(d, pname, "running")
    b.sql("INSERT INTO t VALUES (1)", database=fresh)
    wait_for(lambda: instance(d, pname)["write"]["lag_ms"] == 0 and instance(d, pname)["collection"]["lag_ms"] == 0,
             30, "caught up: lag 0")
    d.admin_ok("pause", instance=f"{pname}/forward")
    b.sql("INSERT INTO t VALUES (2)", database=fresh)
    written = time.monotonic()
    time.sleep(1.5)
    st = instance(d, pname)
    elapsed_ms = (time.monotonic() - written) * 1000
    for m in ("collection", "write"):          # behind since the insert, to the poll's resolution (250 ms)
        assert elapsed_ms - 600 <= st[m]["lag_ms"] <= elapsed_ms + 100, (m, st[m]["lag_ms"], elapsed_ms)
    d.admin_ok("start", instance=f"{pname}/forward")
    wait_for(lambda: instance(d, pname)["write"]["lag_ms"] == 0, 30, "lag back to 0")
