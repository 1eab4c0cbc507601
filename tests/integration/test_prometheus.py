"""Prometheus for real: Debian's prometheus scrapes switchyardd with contrib/prometheus/prometheus.yml's job
(honor_labels), and what it stored is read back through its HTTP API (/api/v1/query): the series exist with
the labels users write queries with, and follow a switchover (active side, epoch, clients, the pause histogram,
switch counters); every query of contrib/grafana/switchyard.json finds data. The shipped alert rules pass
`promtool check rules` and their unit tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pymysql
import pytest

import sandbox
from test_forward_mariadb import fresh  # noqa: F401 (fixture)
from helpers import APP_USER, app_conn, app_user, one, wait_for, wait_reverse, wait_state

pytestmark = pytest.mark.nosan   # the metrics paths run under ASan in test_metrics.py; here Prometheus only adds time


CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "prometheus"
DASHBOARD = CONTRIB.parent / "grafana" / "switchyard.json"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(tool):
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is missing: run scripts/install-deps.sh (Debian package prometheus)", pytrace=False)
    return path


@pytest.fixture
def prometheus(tmp_path):
    """prometheus(target) -> query(expr, api="query"); Prometheus scrapes target every 0.5 s."""
    procs = []

    def start(target):
        port = free_port()
        work = tmp_path / "prometheus"
        work.mkdir()
        cfg = (CONTRIB / "prometheus.yml").read_text()
        cfg = cfg.replace("scrape_interval: 15s", "scrape_interval: 500ms").replace("127.0.0.1:9187", target)
        cfg = cfg.replace("  - alerts.yml", f"  - {CONTRIB / 'alerts.yml'}")
        (work / "prometheus.yml").write_text(cfg)
        log = open(work / "prometheus.log", "wb")
        p = subprocess.Popen([need("prometheus"), f"--config.file={work / 'prometheus.yml'}",
                              f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                              "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, preexec_fn=sandbox.preexec_kill_with_parent(os.getpid()))
        procs.append((p, log, work))

        def query(expr, api="query"):
            url = f"http://127.0.0.1:{port}/api/v1/{api}?" + urllib.parse.urlencode({"query": expr})
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    doc = json.load(r)
            except OSError:
                return None                                     # not up yet
            assert doc["status"] == "success", doc
            return doc["data"]["result"] if api == "query" else doc["data"]
        return query

    yield start
    for p, log, work in procs:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        log.close()


def value(result, **labels):
    """The value of the one series of result whose labels include `labels` (None if absent)."""
    hits = [r for r in result or [] if all(r["metric"].get(k) == v for k, v in labels.items())]
    assert len(hits) <= 1, hits
    return float(hits[0]["value"][1]) if hits else None


def test_prometheus_scrapes_series_that_follow_a_switchover(daemon, mariadb_pair, fresh, prometheus):  # noqa: F811
    mariadb_pair.business.sql("CREATE TABLE t (id INT PRIMARY KEY)", database=fresh)
    app_user(mariadb_pair, fresh)
    mport = free_port()
    pname = f"p{fresh}"
    fw, rv = f"{pname}/forward", f"{pname}/reverse"
    d = daemon(pair=pname, objects=f"{fresh}.*", global_opts={"metrics": f"127.0.0.1:{mport}"})
    wait_state(d, pname, "running")
    d.admin_ok("create-reverse", pair=pname)
    wait_reverse(d, pname, "collecting")
    c = app_conn(d, fresh)
    one(c, "INSERT INTO t VALUES (1)")
    q = prometheus(f"127.0.0.1:{mport}")

    # Two scrapes at least, both up.
    wait_for(lambda: (value(q('count_over_time(up{job="switchyard"}[1m])'), job="switchyard") or 0) >= 2, 60,
             "two scrapes of switchyardd")
    assert value(q('min_over_time(up{job="switchyard"}[1m])'), job="switchyard") == 1
    # Our own `instance` label survives (honor_labels): queries name instances as status does.
    st = q(f'switchyard_instance_state{{pair="{pname}"}} == 1')
    assert {(r["metric"]["instance"], r["metric"]["state"]) for r in st} == {(fw, "running"), (rv, "collecting")}
    assert all(r["metric"]["job"] == "switchyard" for r in st)
    lag = q(f'switchyard_instance_lag_seconds{{pair="{pname}",instance="{fw}"}}')
    assert {r["metric"]["module"] for r in lag} == {"collection", "write"}
    assert value(q(f'switchyard_active_side{{pair="{pname}"}}'), side="business") == 1
    assert value(q(f'switchyard_epoch{{pair="{pname}"}}'), pair=pname) == 1
    assert value(q(f'switchyard_client_connections{{pair="{pname}"}}'), side="business") == 1
    assert value(q(f'switchyard_switch_pause_seconds_count{{pair="{pname}",kind="switchover"}}'), pair=pname) == 0
    spool = q(f'switchyard_spool_bytes{{pair="{pname}"}}')
    assert {r["metric"]["instance"] for r in spool} == {fw, rv}
    assert value(spool, instance=fw) > 0                         # the insert went through the forward spool
    assert {r["metric"]["instance"] for r in q(f'switchyard_apply_rows_per_second{{pair="{pname}"}}')} == {fw, rv}
    assert value(q(f'switchyard_failover_tail_unresolved{{pair="{pname}"}}'), pair=pname) == 0

    # A refused switch is counted as such; a done one moves every series.
    assert d.admin("switchback", pair=pname)["error"]["code"] == "bad_state"
    r = d.admin_ok("switchover", pair=pname)
    wait_for(lambda: value(q(f'switchyard_active_side{{pair="{pname}"}}'), side="dr") == 1, 30, "the flip scraped")
    assert value(q(f'switchyard_epoch{{pair="{pname}"}}'), pair=pname) == 2
    assert value(q(f'switchyard_client_connections{{pair="{pname}"}}'), side="dr") == 1
    sw = q(f'switchyard_switches_total{{pair="{pname}"}} > 0')
    assert {(x["metric"]["kind"], x["metric"]["outcome"]): float(x["value"][1]) for x in sw} == {
        ("switchover", "done"): 1, ("switchback", "refused"): 1}
    assert value(q(f'switchyard_switch_pause_seconds_count{{pair="{pname}",kind="switchover"}}'), pair=pname) == 1
    assert value(q(f'switchyard_switch_pause_seconds_sum{{pair="{pname}",kind="switchover"}}'),
                 pair=pname) == pytest.approx(r["pause_ms"] / 1000, abs=0.001)
    p50 = value(q(f'histogram_quantile(0.5, switchyard_switch_pause_seconds_bucket{{pair="{pname}",kind="switchover"}})'),
                pair=pname)
    assert p50 is not None and 0 <= p50 <= 30
    st = q(f'switchyard_instance_state{{pair="{pname}"}} == 1')
    assert {(x["metric"]["instance"], x["metric"]["state"]) for x in st} == {(fw, "collecting"), (rv, "running")}
    # The shipped rules are loaded by this Prometheus and none fires on a healthy pair.
    groups = q("", api="rules")["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert "SwitchyardInstanceFailed" in rules and "SwitchyardLagHigh" in rules
    assert all(r["state"] == "inactive" for r in rules.values()), {n: r["state"] for n, r in rules.items()}

    # Every query of the shipped Grafana dashboard is valid PromQL and finds data for this pair.
    with pytest.raises(pymysql.err.OperationalError):       # one client error, so that series exists too
        pymysql.connect(host="127.0.0.1", port=d.port, user=APP_USER, password="wrong", database=fresh)
    wait_for(lambda: q(f'switchyard_client_errors_total{{pair="{pname}"}}'), 30, "the client error scraped")
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 12
    for e in exprs:
        res = q(e.replace("$pair", pname))
        assert res, f"dashboard query finds nothing: {e}"
    c.close()


def test_alert_rules_pass_promtool():
    promtool = need("promtool")
    r = subprocess.run([promtool, "check", "rules", str(CONTRIB / "alerts.yml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([promtool, "test", "rules", "alerts_test.yml"], cwd=CONTRIB, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([promtool, "check", "config", str(CONTRIB / "prometheus.yml")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
