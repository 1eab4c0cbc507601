"""Several switchyardd as one cluster through a real etcd (issue 12, first step: membership). Three etcd
members (Debian's etcd-server 3.4) on loopback; each node registers under a lease it keeps alive
(core/cluster.c) and lists the nodes it sees in `status`. What users rely on: every node sees the others;
losing one etcd member changes nothing; a killed node leaves the list within its lease, a stopped one at
once; a node that lost etcd says so and comes back by itself."""

from __future__ import annotations

import time

import pytest

import sandbox
from helpers import wait_for

TTL_MS = 2000


@pytest.fixture(scope="module")
def etcd():
    members = sandbox.start_etcd_cluster(3)
    try:
        yield members
    finally:
        for m in members:
            m.stop()


def cluster_ini(etcd, node, ttl_ms=TTL_MS):
    urls = ",".join(m.url for m in etcd)
    return f"[cluster]\netcd = {urls}\nnode = {node}\nlease_ttl_ms = {ttl_ms}\n"


def cluster(d):
    return d.status()["cluster"]


def nodes(d):
    return sorted(n["node"] for n in cluster(d)["nodes"])


def node_daemon(daemon, etcd, node):
    return daemon(pair=f"c{node}", extra_ini=cluster_ini(etcd, node))


def test_nodes_see_each_other_and_one_etcd_member_lost_changes_nothing(daemon, etcd):
    d1, d2 = node_daemon(daemon, etcd, "n1"), node_daemon(daemon, etcd, "n2")
    for d in (d1, d2):
        wait_for(lambda: nodes(d) == ["n1", "n2"], what="both nodes listed", timeout=20)
        c = cluster(d)
        assert c["etcd"] == "ok" and c["registered"] and c["error"] == "", c
    seen = {n["node"]: n for n in cluster(d1)["nodes"]}
    assert seen["n1"]["pid"] == d1.pid and seen["n1"]["admin_socket"] == d1.admin_socket, seen
    # each node publishes the epoch and active side it applied, per pair
    assert seen["n1"]["pairs"] == {"cn1": {"epoch": d1.pair_status("cn1")["epoch"], "active": "business"}}, seen
    assert seen["n2"]["pairs"] == {"cn2": {"epoch": d2.pair_status("cn2")["epoch"], "active": "business"}}, seen
    first = etcd[0]
    first.kill9()                                       # the endpoint both talk to first
    try:
        time.sleep(3 * TTL_MS / 1000)                   # several keepalives and leases later
        for d in (d1, d2):
            c = cluster(d)
            assert c["etcd"] == "ok" and c["registered"] and c["endpoint"] != first.url, c
            assert nodes(d) == ["n1", "n2"]
    finally:
        first.start()                                   # rejoins its cluster


def test_killed_node_leaves_within_its_lease_stopped_node_at_once(daemon, etcd):
    d1, d2, d3 = (node_daemon(daemon, etcd, n) for n in ("k1", "k2", "k3"))
    wait_for(lambda: {"k1", "k2", "k3"} <= set(nodes(d1)), what="three nodes listed", timeout=20)
    d2.kill9()
    t0 = time.monotonic()
    wait_for(lambda: "k2" not in nodes(d1), what="the killed node gone", timeout=15)
    gone_s = time.monotonic() - t0
    assert gone_s < TTL_MS / 1000 + 4, gone_s            # its lease expired, plus a listing period
    assert d3.stop() == 0                               # graceful: revokes its lease
    t0 = time.monotonic()
    wait_for(lambda: "k3" not in nodes(d1), what="the stopped node gone", timeout=5)
    assert time.monotonic() - t0 < 2.5


def test_node_without_etcd_says_so_and_comes_back(daemon, etcd):
    d = node_daemon(daemon, etcd, "solo")
    wait_for(lambda: "solo" in nodes(d), what="registered", timeout=20)
    for m in etcd:
        m.shutdown()
    try:
        c = wait_for(lambda: cluster(d)["etcd"] == "unreachable" and cluster(d), what="etcd unreachable", timeout=15)
        assert "no answer" in c["error"], c
        assert "unreachable" in d.ctl("status").stdout
    finally:
        for m in etcd:                                  # all at once: a member answers only with a quorum
            m._spawn()
        for m in etcd:
            m._await_ready()
    c = wait_for(lambda: cluster(d)["etcd"] == "ok" and "solo" in nodes(d) and cluster(d), what="back", timeout=20)
    assert c["registered"], c


@pytest.mark.parametrize("section, message", [
    ("[cluster]\nnode = x\n", "[cluster] missing required key 'etcd'"),
    ("[cluster]\netcd = https://127.0.0.1:2379\n", "is not http://host:port (https is not supported yet)"),
    ("[cluster]\netcd = http://127.0.0.1:2379\nnode = a b\n", "[cluster] node: 'a b' is not a name"),
    ("[cluster]\netcd = http://127.0.0.1:2379\nlease_ttl_ms = 100\n", "lease_ttl_ms"),
])
def test_cluster_config_errors(daemon, section, message):
    d = daemon(pair="cfg", extra_ini=section, wait=False)
    assert d.wait(30) != 0
    assert message in d.log(), d.log()
