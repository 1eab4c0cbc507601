"""`make soak`: minutes of sysbench oltp_read_write through the proxy while the forward instance replicates;
zero client errors and both sides equal at the end; then the bank invariant under a switchover or switchback
every 5 s for as long. Duration: SY_SOAK_SECONDS (default 600) per test."""

from __future__ import annotations

import os
import subprocess

import pytest

from conftest import ADMIN_PASSWORD, ADMIN_USER
from helpers import assert_equal_eventually, instance, wait_state
from test_forward_mariadb import fresh  # noqa: F401


@pytest.mark.soak
@pytest.mark.timeout(7200)
def test_soak_proxy_and_forward(daemon, mariadb_pair, fresh):  # noqa: F811
    seconds = int(os.environ.get("SY_SOAK_SECONDS", "600"))
    pname = f"p{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", global_opts={"log_level": "info"})
    wait_state(d, pname, "running")
    common = ["--db-driver=mysql", "--mysql-host=127.0.0.1", f"--mysql-port={d.port}", f"--mysql-user={ADMIN_USER}",
              f"--mysql-password={ADMIN_PASSWORD}", f"--mysql-db={fresh}", "--tables=4", "--table-size=10000"]
    r = subprocess.run(["sysbench", "oltp_read_write", *common, "prepare"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["sysbench", "oltp_read_write", *common, "--threads=16", f"--time={seconds}",
                        "--report-interval=60", "run"], capture_output=True, text=True, timeout=seconds + 600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "reconnects:                          0" in r.stdout
    assert_equal_eventually(mariadb_pair, fresh, timeout=600)
    assert instance(d, pname)["state"] == "running"


@pytest.mark.soak
@pytest.mark.timeout(7200)
def test_soak_bank_invariant_under_repeated_switches(daemon, mariadb_pair, fresh):  # noqa: F811
    from test_switchover_mariadb import bank_under_switches
    seconds = int(os.environ.get("SY_SOAK_SECONDS", "600"))
    pauses = bank_under_switches(daemon, mariadb_pair, fresh, switches=max(2, seconds // 5), gap_s=4.0)
    print(f"{len(pauses)} switches, pause max {max(pauses)} ms, p50 {sorted(pauses)[len(pauses) // 2]} ms")
