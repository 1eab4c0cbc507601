"""Prometheus metrics (CONTRACT.md "Metrics") at http://<metrics>/metrics."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pymysql
import pytest

from test_forward_mariadb import fresh  # noqa: F401 (fixture)
from helpers import APP_USER, app_conn, app_user, one, wait_for, wait_reverse, wait_state


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain")
        return {ln.rsplit(" ", 1)[0]: float(ln.rsplit(" ", 1)[1])
                for ln in r.read().decode().splitlines() if ln and not ln.startswith("#")}


@pytest.mark.tsan
def test_metrics_follow_state_lag_clients_errors_and_switches(daemon, mariadb_pair, fresh):  # noqa: F811
    b = mariadb_pair.business
    b.sql("CREATE TABLE t (id INT PRIMARY KEY)", database=fresh)
    app_user(mariadb_pair, fresh)
    port = free_port()
    pname = f"m{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*", global_opts={"metrics": f"127.0.0.1:{port}"})
    wait_state(d, pname, "running")
    fw = f"{pname}/forward"
    m = scrape(port)
    assert m[f'switchyard_instance_state{{pair="{pname}",instance="{fw}",state="running"}}'] == 1
    assert m[f'switchyard_instance_state{{pair="{pname}",instance="{fw}",state="failed"}}'] == 0
    c = app_conn(d, fresh)
    for i in range(5):
        one(c, "INSERT INTO t VALUES (%s)", (i,))
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host="127.0.0.1", port=d.port, user=APP_USER, password="wrong", database=fresh)
    wait_for(lambda: scrape(port)[f'switchyard_rows_applied_total{{pair="{pname}",instance="{fw}"}}'] >= 5, 30,
             "rows applied counted")
    m = scrape(port)
    assert m[f'switchyard_client_connections{{pair="{pname}",side="business"}}'] == 1
    assert m[f'switchyard_client_errors_total{{pair="{pname}",reason="auth"}}'] == 1
    assert 0 <= m[f'switchyard_instance_lag_seconds{{pair="{pname}",instance="{fw}",module="write"}}'] < 30
    assert m[f'switchyard_conflicts_overwritten_total{{pair="{pname}",instance="{fw}"}}'] == 0  # on_conflict = fail
    assert m[f'switchyard_collection_late_events{{pair="{pname}",instance="{fw}"}}'] == 0  # a binlog has none
    d.admin_ok("create-reverse", pair=pname)
    wait_reverse(d, pname, "collecting")
    r = d.admin_ok("switchover", pair=pname)
    m = scrape(port)
    assert m[f'switchyard_client_connections{{pair="{pname}",side="dr"}}'] == 1
    assert m[f'switchyard_switchover_pause_seconds{{pair="{pname}"}}'] == pytest.approx(r["pause_ms"] / 1000, abs=0.001)
    assert m[f'switchyard_instance_state{{pair="{pname}",instance="{fw}",state="collecting"}}'] == 1
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
    assert e.value.code == 404
    c.close()
