"""Several switchyardd as one cluster through a real etcd (issue 12: membership, the shared epoch). Three etcd
members (Debian's etcd-server 3.4) on loopback; each node registers under a lease it keeps alive
(core/cluster.c) and lists the nodes it sees in `status`. What users rely on: every node sees the others;
losing one etcd member changes nothing; a killed node leaves the list within its lease, a stopped one at
once; a node that lost etcd says so and comes back by itself. The pair's epoch lives in etcd
(core/shared_epoch.c): a switch moves it by compare-and-swap, every node applies it and routes new
sessions to the side it says, a node started late adopts it."""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from functools import partial
from pathlib import Path
from urllib.parse import quote

import pytest

import sandbox
import pymysql
from helpers import (app_conn, app_user, conn, forward, installed_client, one, q, reverse, wait_for, wait_reverse,
                     wait_state)
from test_forward_mariadb import fresh  # noqa: F401 (fixture)
from test_mongo_node_client import loop_result

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


def etcd_call(etcd, path, body):
    """One request to the first etcd member that answers (the test's own view of the cluster)."""
    for m in etcd:
        try:
            req = urllib.request.Request(m.url + path, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=3) as r:
                return json.loads(r.read())
        except OSError:
            continue
    raise AssertionError("no etcd member answers")


def b64(s):
    return base64.b64encode(s.encode()).decode()


def etcd_get(etcd, key):
    kvs = etcd_call(etcd, "/v3/kv/range", {"key": b64(key)}).get("kvs") or []
    return json.loads(base64.b64decode(kvs[0]["value"])) if kvs else None


def etcd_put(etcd, key, text):
    etcd_call(etcd, "/v3/kv/put", {"key": b64(key), "value": b64(text)})


def etcd_has_leader(etcd):
    try:                                                # a write needs a leader
        etcd_put(etcd, "/switchyard-test/probe", "x")
        return True
    except (AssertionError, OSError):
        return False


def shared(d, pname):
    return d.pair_status(pname).get("shared_epoch", {})


def confirmed(d, pname, epoch):
    """The node read the cluster's epoch, applied it, watches it, and released the hold of its start."""
    s = shared(d, pname)
    return s.get("epoch") == epoch and s["watch"] == "ok" and not s["cut_off"] and not d.pair_status(pname)["held"]


def applied(d, pname):
    p = d.pair_status(pname)
    return p["epoch"], p["active_side"]


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


def test_every_node_follows_the_shared_epoch(daemon, etcd, mariadb_pair, fresh):  # noqa: F811
    """One node runs the synchronization, two only proxy; a switchover and a switchback on the first move
    the epoch in etcd and every node applies it: new sessions through any node write on the new side, and
    every node's registration shows the epoch it applied. A node started later (its own state says epoch
    1, business) adopts the cluster's. Losing the etcd member the watches stream from changes nothing."""
    b, dr = mariadb_pair
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))", database=fresh)
    app_user(mariadb_pair, fresh)
    pname = f"e{fresh}"
    key = f"/switchyard/pairs/{pname}/active"
    owner = daemon(pair=pname, objects=f"{fresh}.*", txn_drain_ms=500, max_hold_ms=5000,
                   extra_ini=cluster_ini(etcd, "sync1"))
    proxies = [daemon(pair=pname, extra_ini=cluster_ini(etcd, n)) for n in ("px2", "px3")]
    nodes = [owner] + proxies
    wait_state(owner, pname, "running")
    owner.admin_ok("create-reverse", pair=pname)
    wait_reverse(owner, pname, "collecting")
    for d in nodes:
        wait_for(lambda: confirmed(d, pname, 1), 20, "the shared epoch confirmed and watched")
    assert etcd_get(etcd, key) == {"epoch": 1, "side": "business"}

    def all_on(epoch, side):
        for d in nodes:
            wait_for(lambda: applied(d, pname) == (epoch, side), 15, f"{d} on epoch {epoch} ({side})")
        regs = lambda: {n["node"]: n["pairs"].get(pname) for n in cluster(owner)["nodes"] if pname in n["pairs"]}
        wait_for(lambda: regs() == {n: {"epoch": epoch, "active": side} for n in ("sync1", "px2", "px3")}, 15,
                 "every node's registration shows the epoch it applied")

    r = owner.admin_ok("switchover", pair=pname)
    assert r["active_side"] == "dr" and r["epoch"] == 2, r
    assert etcd_get(etcd, key) == {"epoch": 2, "side": "dr"}
    all_on(2, "dr")
    for i, d in enumerate(nodes):                       # new sessions through every node write on DR
        c = app_conn(d, fresh)
        one(c, f"INSERT INTO t VALUES ({10 + i}, 'dr via {i}')")
        c.close()
    assert q(dr, "SELECT COUNT(*) FROM t WHERE id >= 10", fresh) == ((3,),)
    assert q(b, "SELECT @@global.read_only")[0][0] == 1       # written on DR, not on the fenced business side

    late = daemon(pair=pname, extra_ini=cluster_ini(etcd, "late4"))     # its own state: epoch 1, business
    wait_for(lambda: applied(late, pname) == (2, "dr"), 15, "the late node adopts the cluster's epoch")
    assert etcd_get(etcd, key) == {"epoch": 2, "side": "dr"}          # created only if absent
    assert late.stop() == 0

    first = etcd[0]
    first.kill9()                                       # the member every stream started on
    try:
        for d in proxies:
            wait_for(lambda: "watch of " + key in d.log() and shared(d, pname)["watch"] == "ok", 15,
                     "the watch made again on another member")
        wait_for(lambda: etcd_has_leader(etcd), 15, "the two members left elected a leader")
        # with a 2 s lease the owner may have stepped down while etcd elected a leader: it owns again soon
        wait_for(lambda: sync_owner(owner, pname).get("instances_open"), 20, "the owner runs the sync")
        # and a node cut off from etcd meanwhile holds until it confirmed the epoch again: a switch it is
        # asked to take part in before is refused (seen once in a fresh make test run: px3 refused)
        for d in nodes:
            wait_for(lambda: confirmed(d, pname, 2), 20, f"{d} confirmed epoch 2 again")
        r = owner.admin_ok("switchback", pair=pname)
        assert r["active_side"] == "business" and r["epoch"] == 3, r
        all_on(3, "business")
        for i, d in enumerate(nodes):
            c = app_conn(d, fresh)
            one(c, f"INSERT INTO t VALUES ({20 + i}, 'business via {i}')")
            c.close()
        assert q(b, "SELECT COUNT(*) FROM t WHERE id >= 20", fresh) == ((3,),)
    finally:
        first.start()
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((6,),), 30, "forward applied after switchback")
    # a proxy-only node passes a switch to the owner (core/cluster_admin.c); switchyardctl works there too
    r = proxies[0].admin_ok("switchover", pair=pname)
    assert r["active_side"] == "dr" and r["epoch"] == 4, r
    all_on(4, "dr")
    out = proxies[1].ctl("--json", "switchback", pname, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["epoch"] == 5
    all_on(5, "business")
    assert proxies[0].admin("pause", instance=f"{pname}/forward")["result"]["state"] in ("paused", "stopping")
    assert proxies[0].admin_ok("start", instance=f"{pname}/forward")["state"] == "running"
    assert owner.admin("switchover", pair="nosuch")["error"]["code"] == "unknown_pair"


def cluster_of_three(daemon, etcd, mariadb_pair, db, pname, max_hold_ms=5000, owner_env=None):
    """One node with the pair's synchronization (running forward, collecting reverse), two proxy-only nodes."""
    mariadb_pair.business.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))", database=db)
    app_user(mariadb_pair, db)
    keys = dict(txn_drain_ms=500, max_hold_ms=max_hold_ms)
    owner = daemon(pair=pname, objects=f"{db}.*", extra_ini=cluster_ini(etcd, f"{pname}-s1"), env=owner_env,
                   **keys)
    proxies = [daemon(pair=pname, extra_ini=cluster_ini(etcd, f"{pname}-p{i}"), **keys) for i in (2, 3)]
    wait_state(owner, pname, "running")
    owner.admin_ok("create-reverse", pair=pname)
    wait_reverse(owner, pname, "collecting")
    for d in [owner] + proxies:
        wait_for(lambda: confirmed(d, pname, 1), 20, "the shared epoch confirmed and watched")
    b, dr = mariadb_pair                                # the last test may have left DR active
    wait_for(lambda: q(b, "SELECT @@global.read_only")[0][0] == 0 and q(dr, "SELECT @@global.read_only")[0][0] == 1,
             20, "the fence keeper made business writable")
    return owner, proxies


@pytest.mark.tsan  # threads: the switch thread, retiring instances, the etcd watch (a race found so)
def test_one_switch_for_every_node_under_load(daemon, etcd, mariadb_pair, fresh):  # noqa: F811
    """Clients spread over three nodes write all along; a switchover and a switchback coordinated by the
    node with the sync hold every node, merge their ack ledgers and flip them all: 0 client errors, every
    acknowledged write on both sides afterwards, every node on the new side when the command answers."""
    b, dr = mariadb_pair
    pname = f"l{fresh}"
    owner, proxies = cluster_of_three(daemon, etcd, mariadb_pair, fresh, pname)
    nodes = [owner] + proxies
    stop, acked, errors = threading.Event(), [], []

    def loader(d, k):
        c, i = None, k * 100000
        while not stop.is_set():
            try:
                c = c or app_conn(d, fresh, connect_timeout=5, read_timeout=15)
                one(c, "INSERT INTO t VALUES (%s, 'load')", (i,))
                acked.append(i)
            except pymysql.err.MySQLError as e:
                errors.append((k, e.args[0], str(e.args[1:])))
                c = None
            i += 1
            time.sleep(0.002)
    workers = [threading.Thread(target=loader, args=(d, 2 * n + j)) for n, d in enumerate(nodes) for j in (1, 2)]
    for w in workers:
        w.start()
    try:
        time.sleep(1.0)
        for epoch, side, cmd in ((2, "dr", "switchover"), (3, "business", "switchback")):
            r = owner.admin_ok(cmd, pair=pname)
            assert r["active_side"] == side and r["epoch"] == epoch and "cluster_hold_ms" in r["steps"], r
            # every node's sessions count (the participants' "flipped" acks carry theirs), two of them here
            assert r["moved_clients"] == 6 and r["this_node"]["moved_clients"] == 2, r
            for d in nodes:                              # the coordinator awaited their "flipped"
                assert applied(d, pname) == (epoch, side), d
            n = len(acked)
            wait_for(lambda: len(acked) > n + 30, 30, "clients go on after the switch")
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    assert errors == [], errors[:5]
    for d in proxies:                                   # each took part: held, acknowledged, flipped
        hist = d.pair_status(pname)["switch_history"]
        assert [h["outcome"] for h in hist] == ["done", "done"], hist
    want = set(acked)
    for side in (b, dr):
        wait_for(lambda: want <= {r[0] for r in q(side, "SELECT id FROM t", fresh)}, 30,
                 f"every acknowledged write on {side}")
    assert q(b, "SELECT @@global.read_only")[0][0] == 0 and q(dr, "SELECT @@global.read_only")[0][0] == 1


def test_a_node_that_does_not_acknowledge_rolls_the_switch_back_everywhere(daemon, etcd, mariadb_pair,
                                                                           fresh):  # noqa: F811
    b, dr = mariadb_pair
    pname = f"r{fresh}"
    owner, proxies = cluster_of_three(daemon, etcd, mariadb_pair, fresh, pname, max_hold_ms=2000)
    key = f"/switchyard/pairs/{pname}/active"
    stuck = proxies[1]
    os.kill(stuck.pid, signal.SIGSTOP)
    try:
        r = owner.admin("switchover", pair=pname)
    finally:
        os.kill(stuck.pid, signal.SIGCONT)
    assert r["ok"] is False and r["error"]["code"] == "hold_timeout", r
    assert f"{pname}-p3" in r["error"]["message"] and "rolled back on every node" in r["error"]["message"], r
    assert etcd_get(etcd, key) == {"epoch": 1, "side": "business"}
    for d in [owner] + proxies:
        wait_for(lambda: applied(d, pname) == (1, "business") and not d.pair_status(pname)["held"] and
                 not d.pair_status(pname)["switching"], 15, f"{d} released on the business side")
    hist = proxies[0].pair_status(pname)["switch_history"]
    assert hist[0]["outcome"] == "rolled_back", hist
    assert q(b, "SELECT @@global.read_only")[0][0] == 0 and q(dr, "SELECT @@global.read_only")[0][0] == 1
    for i, d in enumerate([owner] + proxies):           # every node writes on business again
        c = app_conn(d, fresh)
        one(c, f"INSERT INTO t VALUES ({i}, 'after')")
        c.close()
    assert q(b, "SELECT COUNT(*) FROM t", fresh) == ((3,),)
    # nothing stuck: the lock is gone, the next switch takes every node along
    wait_for(lambda: len(cluster(owner)["nodes"]) >= 3 and cluster(stuck)["registered"], 15, "back")
    r = owner.admin_ok("switchover", pair=pname)
    assert r["epoch"] == 2
    for d in [owner] + proxies:
        assert applied(d, pname) == (2, "dr")


@pytest.mark.parametrize("failpoint, epoch, side", [("switch_after_cluster_hold", 1, "business"),
                                                   ("switch_after_epoch_cas", 2, "dr")])
def test_kill9_of_the_coordinator_mid_switch_leaves_one_side_active_everywhere(daemon, etcd, mariadb_pair, fresh,
                                                                               failpoint, epoch, side):  # noqa: F811
    """The coordinator dies with every node held (before the epoch moved: all release on business) or just
    after its compare-and-swap (all flip to DR); restarted, it adopts the cluster's epoch, its writes and
    the fencing follow it: exactly one side writable, every node on it, a client of a proxy never noticed."""
    b, dr = mariadb_pair
    pname = f"k{fresh}"
    owner, proxies = cluster_of_three(daemon, etcd, mariadb_pair, fresh, pname, owner_env={"SY_FAILPOINT": failpoint})
    c = app_conn(proxies[0], fresh)
    one(c, "INSERT INTO t VALUES (1, 'before')")
    with pytest.raises(ConnectionError):
        owner.admin("switchover", pair=pname)           # the coordinator dies at the failpoint
    assert owner.wait(30) != 0
    for d in proxies:
        wait_for(lambda: applied(d, pname) == (epoch, side) and not d.pair_status(pname)["held"], 20,
                 f"{d} on epoch {epoch} ({side}), released")
    one(c, "INSERT INTO t VALUES (2, 'during')")       # the same session: held, then on the side in force
    owner.env.pop("SY_FAILPOINT", None)
    owner.restart()
    wait_for(lambda: confirmed(owner, pname, epoch), 20, "the restarted coordinator adopts the cluster's epoch")
    assert applied(owner, pname) == (epoch, side) and etcd_get(etcd, f"/switchyard/pairs/{pname}/active") == \
        {"epoch": epoch, "side": side}
    act, pas = (dr, b) if side == "dr" else (b, dr)
    wait_for(lambda: q(act, "SELECT @@global.read_only")[0][0] == 0 and q(pas, "SELECT @@global.read_only")[0][0] == 1,
             30, "exactly one side writable")
    writing = lambda: sorted(i["direction"] for i in owner.pair_status(pname)["instances"] if i["state"] == "running")
    wait_for(lambda: writing() == (["reverse"] if side == "dr" else ["forward"]), 30, "the write out of the active side")
    for i, d in enumerate([owner] + proxies):
        c2 = app_conn(d, fresh)
        one(c2, f"INSERT INTO t VALUES ({10 + i}, 'after')")
        c2.close()
    assert q(act, "SELECT COUNT(*) FROM t", fresh) == ((5,),)
    wait_for(lambda: q(pas, "SELECT COUNT(*) FROM t", fresh) == ((5,),), 30, "every row on the passive side too")
    wait_for(lambda: etcd_get(etcd, f"/switchyard/pairs/{pname}/lock") is None, 10, "the dead coordinator's lock gone")


def test_a_node_cut_off_from_etcd_holds_never_writes_to_the_passive_side_and_rejoins(daemon, etcd, mariadb_pair,
                                                                                    fresh):  # noqa: F811
    """A proxy whose only etcd endpoint is paused (the cluster keeps its quorum): past its lease it holds
    new requests, and one held max_hold_ms gets a clear error; meanwhile the others switch to DR without it.
    Its held write never reached either side. When etcd answers again it applies the new epoch, releases and
    writes on DR."""
    b, dr = mariadb_pair
    pname = f"c{fresh}"
    owner, (px2, _) = cluster_of_three(daemon, etcd, mariadb_pair, fresh, pname, max_hold_ms=1500)
    lone = etcd[2]
    cut = daemon(pair=pname, txn_drain_ms=500, max_hold_ms=1500,
                 extra_ini=cluster_ini(etcd[2:], f"{pname}-cut"))
    wait_for(lambda: confirmed(cut, pname, 1), 20, "the cut-off node watches")
    c = app_conn(cut, fresh, read_timeout=30)
    one(c, "INSERT INTO t VALUES (1, 'before')")
    os.kill(lone.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: shared(cut, pname)["cut_off"] and cut.pair_status(pname)["held"], 15, "cut off: held")
        t0 = time.monotonic()
        with pytest.raises(pymysql.err.MySQLError) as e:
            one(c, "INSERT INTO t VALUES (2, 'while cut off')")
        held_s = time.monotonic() - t0
        assert e.value.args[0] == 1927 and "lost etcd" in e.value.args[1] and "max_hold_ms=1500" in e.value.args[1], e.value
        assert 1.4 < held_s < 10, held_s                  # held its max_hold_ms, then refused
        assert cut.admin("release", pair=pname)["error"]["code"] == "bad_state"
        assert f"{pname}: cluster epoch 1 (business side" in cut.ctl("status").stdout
        assert "CUT OFF: held, etcd unanswered for" in cut.ctl("status").stdout
        # the others switch without it once its registration expired
        wait_for(lambda: f"{pname}-cut" not in nodes(owner), 15, "its lease expired")
        r = owner.admin_ok("switchover", pair=pname)
        assert r["epoch"] == 2 and applied(px2, pname) == (2, "dr")
        assert applied(cut, pname) == (1, "business") and cut.pair_status(pname)["held"]
    finally:
        os.kill(lone.pid, signal.SIGCONT)
    wait_for(lambda: applied(cut, pname) == (2, "dr") and not cut.pair_status(pname)["held"], 20,
             "etcd back: the new epoch applied, released")
    assert not shared(cut, pname)["cut_off"]
    for side in (b, dr):                                 # the refused write reached no side
        assert q(side, "SELECT COUNT(*) FROM t WHERE id = 2", fresh) == ((0,),)
    c2 = app_conn(cut, fresh)
    one(c2, "INSERT INTO t VALUES (3, 'after')")
    c2.close()
    assert q(dr, "SELECT v FROM t WHERE id = 3", fresh) == (("after",),)
    wait_for(lambda: f"{pname}-cut" in nodes(owner), 15, "registered again")


def log_ms(line):
    """The monotonic-enough time of a daemon log line (its UTC timestamp), in ms."""
    from datetime import datetime
    return datetime.strptime(line[:23], "%Y-%m-%dT%H:%M:%S.%f").timestamp() * 1000


@pytest.mark.tsan  # threads: the switch thread, retiring instances, the etcd watch (a race found so)
def test_an_owner_cut_off_from_etcd_cuts_its_writer_before_its_lease_can_end(daemon, etcd, mariadb_pair, fresh,
                                                                             tmp_path):  # noqa: F811
    """The owner's only etcd member is paused while its apply worker is busy (held by a failpoint with a group
    taken): it steps down at 2/3 of the 2 s TTL, and the worker's database connections are shut before etcd
    can expire the lease and let another node write (the usual 2 s stop grace would end 1.3 s after it).
    Released, the old worker writes nothing; the new owner takes over and DR equals business."""
    b, dr = mariadb_pair
    pname = f"g{fresh}"
    b.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))", database=fresh)
    app_user(mariadb_pair, fresh)
    stall = tmp_path / "stall"
    keys = dict(pair=pname, objects=f"{fresh}.*", txn_drain_ms=500)
    owner = daemon(extra_ini=cluster_ini(etcd[2:], f"{pname}-n1"),
                   env={"SY_STALL_POINT": "writer_group_taken", "SY_STALL_FILE": str(stall)}, **keys)
    wait_for(lambda: sync_owner(owner, pname).get("this_node_owns"), 20, "the first node owns")
    wait_for(lambda: running_forward(owner, pname), 60, "its forward instance running")
    others = [daemon(extra_ini=cluster_ini(etcd[:2], f"{pname}-n{i}"), **keys) for i in (2, 3)]
    for d in others:
        wait_for(lambda: confirmed(d, pname, 1), 20, "the shared epoch confirmed and watched")
    c = app_conn(others[0], fresh)
    stall.touch()
    one(c, "INSERT INTO t VALUES (1, 'held')")
    wait_for(lambda: "failpoint writer_group_taken: stalled" in owner.log(), 30, "the owner's worker held")
    os.kill(etcd[2].pid, signal.SIGSTOP)
    try:
        # (the close waits for the held thread itself: the cut is what tells)
        wait_for(lambda: "write module still busy" in owner.log(), 20, "the owner stepped down and cut its writer")
        lines = owner.log().splitlines()
        down = next(x for x in lines if "steps down as owner of the synchronization" in x)
        cut = next(x for x in lines if "write module still busy" in x and "shut down to end it" in x)
        assert f"{pname}/forward" in cut
        # the step-down came at 2/3 of the TTL without renewal: the cut within the third left, minus slack
        assert log_ms(cut) - log_ms(down) <= TTL_MS / 3, (down, cut)
        # the step-down does not wait for the held thread on the loop (other pairs' cuts, the clients and
        # the admin socket would wait behind it): the node answers at once, the instances still closing
        t0 = time.monotonic()
        st = owner.admin("status", _timeout=5, pair=pname)
        assert st["ok"] and time.monotonic() - t0 < 1.0, st
        assert "instances closed on this node" not in owner.log()
        stall.unlink()
        wait_for(lambda: "failpoint writer_group_taken: released" in owner.log(), 10, "the old worker released")
        wait_for(lambda: "instances closed on this node" in owner.log(), 10, "the old owner closed")
        new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 30, "another node owns")
        wait_for(lambda: running_forward(new, pname), 60, "the new owner's forward instance running")
    finally:
        os.kill(etcd[2].pid, signal.SIGCONT)
    one(c, "INSERT INTO t VALUES (2, 'after')")
    rows = lambda side: q(side, "SELECT id, v FROM t ORDER BY id", fresh)
    wait_for(lambda: rows(dr) == rows(b) == ((1, "held"), (2, "after")), 30, "DR equals business")


def test_a_malformed_shared_epoch_is_reported_and_ignored(daemon, etcd):
    d = node_daemon(daemon, etcd, "m1")
    key = "/switchyard/pairs/cm1/active"
    wait_for(lambda: shared(d, "cm1").get("epoch") == 1 and shared(d, "cm1")["watch"] == "ok", 20, "watched")
    etcd_put(etcd, key, '{"epoch": "two", "side": "dr"}')
    s = wait_for(lambda: "malformed" in shared(d, "cm1")["error"] and shared(d, "cm1"), 10, "reported")
    assert key in s["error"] and "keeping epoch 1" in s["error"], s
    assert applied(d, "cm1") == (1, "business")
    etcd_put(etcd, key, '{"epoch": 4, "side": "business"}')             # a good value again: applied
    wait_for(lambda: applied(d, "cm1") == (4, "business") and shared(d, "cm1")["error"] == "", 10, "applied")


def test_a_node_whose_epoch_keeps_changing_keeps_its_lease(daemon, etcd):
    """Every change of the epoch it applied puts the node's registration again; a put does not renew a
    lease, so the keepalives must go on meanwhile (found by bench/cluster_bench.py: switches a second apart
    expired the participants' leases and the next switch failed)."""
    d = node_daemon(daemon, etcd, "busy1")
    key = "/switchyard/pairs/cbusy1/active"
    wait_for(lambda: confirmed(d, "cbusy1", 1), 20, "confirmed")
    lease = cluster(d)["lease_id"]
    t_end = time.monotonic() + 3 * TTL_MS / 1000
    epoch = 1
    while time.monotonic() < t_end:                     # a new epoch about every 200 ms, for three leases
        epoch += 1
        etcd_put(etcd, key, json.dumps({"epoch": epoch, "side": "business"}))
        time.sleep(0.2)
    wait_for(lambda: applied(d, "cbusy1") == (epoch, "business"), 10, "the last epoch applied")
    c = cluster(d)
    assert c["lease_id"] == lease and c["registered"], c
    assert "expired" not in d.log()


def sync_owner(d, pname):
    return d.pair_status(pname).get("sync_owner", {})


def owners(nodes, pname):
    return [d for d in nodes if sync_owner(d, pname).get("this_node_owns")]


def running_forward(d, pname):
    fw = [i for i in d.pair_status(pname)["instances"] if i["direction"] == "forward"]
    return bool(fw) and fw[0]["state"] == "running"


def elected(nodes, pname, ready=running_forward):
    """(owner, the others) once one of nodes owns the pair and ready(owner, pname) says the instance that
    writes runs there (the forward one unless told)."""
    owner = wait_for(lambda: len(owners(nodes, pname)) == 1 and owners(nodes, pname)[0], 20, "one owner")
    wait_for(lambda: ready(owner, pname), 60, "the owner's instance running")
    return owner, [d for d in nodes if d is not owner]


def stall_file(d):
    """Node d's stall file (stalled_three): while it exists, d's thread at the stall point waits there."""
    return Path(d.env["SY_STALL_FILE"])


def stalled_three(make, tmp_path, point):
    """Three nodes, each with the failpoint `point` armed on a stall file of its own (SY_STALL_POINT and
    SY_STALL_FILE, core/failpoint.h: a thread that reaches `point` waits there while its node's file exists;
    none exists yet). make(env_of=...) starts them with env_of(i) the environment of node i (1..3) and returns
    (owner, others): electable_three with its other arguments bound, or elected() of tds_nodes / mongo_nodes.
    Returns (owner, others, the owner's stall file)."""
    files = {i: tmp_path / f"stall-n{i}" for i in (1, 2, 3)}
    owner, others = make(env_of=lambda i: {"SY_STALL_POINT": point, "SY_STALL_FILE": str(files[i])})
    return owner, others, stall_file(owner)


def electable_three(daemon, etcd, mariadb_pair, db, pname, max_hold_ms=5000, env_of=None, ttl_ms=TTL_MS):
    """Three nodes that all may run the pair's synchronization (objects set on each): one is elected.
    env_of(i): extra environment of node i (1..3)."""
    mariadb_pair.business.sql("CREATE TABLE t (id INT PRIMARY KEY, v VARCHAR(40))", database=db)
    app_user(mariadb_pair, db)
    nodes = [daemon(pair=pname, objects=f"{db}.*", txn_drain_ms=500, max_hold_ms=max_hold_ms,
                    extra_ini=cluster_ini(etcd, f"{pname}-n{i}", ttl_ms), env=env_of(i) if env_of else None)
             for i in (1, 2, 3)]
    for d in nodes:
        wait_for(lambda: confirmed(d, pname, 1), 20, "the shared epoch confirmed and watched")
    owner, others = elected(nodes, pname)
    b, dr = mariadb_pair                                # the last test may have left DR active
    # a takeover resumes from DR's checkpoint: one killed before its first one leaves none (the new owner then
    # rightly starts from its own state, and a test of the takeover would test nothing)
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM switchyard.checkpoint WHERE instance = %s",
                       args=(f"{pname}/forward",)) == ((1,),), 30, "the forward instance's checkpoint on DR")
    wait_for(lambda: q(b, "SELECT @@global.read_only")[0][0] == 0 and q(dr, "SELECT @@global.read_only")[0][0] == 1,
             20, "the fence keeper made business writable")
    return owner, others


def kill9_owner_under_writes(nodes, pname, write, settle_s=1.5, checkpointed=None, ready=running_forward):
    """Four writers (two per non-owner node) call write(node, k, i) in a loop; the elected owner is killed with
    -9 after settle_s (and once checkpointed(), when given, says DR holds its checkpoint: a slow destination
    may not have one yet, and the new owner would then rightly copy everything again): returns (new owner,
    takeover seconds, acked ids, client errors). ready(node, pname): the instance that writes runs there
    (the forward one unless told). The caller compares both sides afterwards."""
    owner, others = elected(nodes, pname, ready)
    stop, acked, errors = threading.Event(), [], []

    def loader(d, k):
        i = k * 100000
        while not stop.is_set():
            try:
                write(d, k, i)
                acked.append(i)
            except Exception as e:                      # noqa: BLE001 (any client error counts)
                errors.append((k, repr(e)))
            i += 1
            time.sleep(0.002)
    workers = [threading.Thread(target=loader, args=(d, 2 * n + j)) for n, d in enumerate(others) for j in (1, 2)]
    for w in workers:
        w.start()
    try:
        time.sleep(settle_s)
        if checkpointed is not None:
            wait_for(checkpointed, 60, "the owner's checkpoint on DR")
        owner.kill9()
        t0 = time.monotonic()
        new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")
        wait_for(lambda: ready(new, pname), 30, "the new owner's instance running")
        takeover_s = time.monotonic() - t0
        print(f"takeover {takeover_s:.2f} s after kill -9")
        n = len(acked)
        wait_for(lambda: len(acked) > n + 50, 30, "clients go on")
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    return new, takeover_s, acked, errors


def insert_and_update(db):
    """A write(node, k, i) for kill9_owner_under_writes: writer k inserts row i through node (one connection of
    its own, made again after an error) and updates every third."""
    conns = {}

    def write(d, k, i):
        try:
            c = conns[k] = conns.get(k) or app_conn(d, db, connect_timeout=5, read_timeout=15)
            one(c, "INSERT INTO t VALUES (%s, 'load')", (i,))
            if i % 3 == 0:
                one(c, "UPDATE t SET v = 'updated' WHERE id = %s", (i,))
        except pymysql.err.MySQLError:
            conns.pop(k, None)
            raise
    return write


@pytest.mark.tsan  # threads: the switch thread, retiring instances, the etcd watch (a race found so)
def test_one_node_owns_the_synchronization_and_another_takes_over_after_kill9(daemon, etcd, mariadb_pair,
                                                                            fresh):  # noqa: F811
    """Three nodes may run the sync; one is elected (its key in etcd, the others run no instance). Clients of
    the two others write all along; the owner is killed with -9: another node takes over within seconds,
    resuming from DR's checkpoint (its own spool is empty), replays what the dead owner may have applied
    idempotently and goes on: 0 client errors, the rows equal on both sides, verify ok."""
    b, dr = mariadb_pair
    pname = f"o{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    key = f"/switchyard/pairs/{pname}/owner"
    assert etcd_get(etcd, key)["node"] == sync_owner(owner, pname)["owner"]
    for d in others:
        assert sync_owner(d, pname)["owner"] == sync_owner(owner, pname)["owner"]
        assert d.pair_status(pname)["instances"] == []
    new, takeover_s, acked, errors = kill9_owner_under_writes([owner] + others, pname, insert_and_update(fresh))
    assert takeover_s < 15, takeover_s
    assert errors == [], errors[:5]
    assert etcd_get(etcd, key)["node"] == sync_owner(new, pname)["owner"]
    rows = lambda side: q(side, "SELECT id, v FROM t ORDER BY id", fresh)
    wait_for(lambda: rows(dr) == rows(b), 60, "DR equals business")
    assert set(acked) <= {r[0] for r in rows(dr)}
    r = new.admin_ok("verify", _timeout=120, pair=pname)
    assert r["clean"] is True, r
    assert "taken over from the destination's checkpoint" in new.log()


@pytest.mark.parametrize("point", ["writer_group_taken", "writer_checkpoint_flush"])
def test_an_old_owner_resumed_after_a_takeover_is_fenced_at_the_destination(daemon, etcd, mariadb_pair, fresh,
                                                                           tmp_path, point):  # noqa: F811
    """writer_group_taken: the owner's apply worker has taken a transaction of a hot row (v = 'stale') but not
    applied it (the failpoint holds it past the worker's stop checks, before its first statement: a process
    paused there); the owner is SIGSTOPped past its lease, another node takes
    over, replays that transaction and applies a newer one (v = 'newer'). On SIGCONT the old worker applies
    its stale after-image at once — its stop checks are behind it — but its commit finds the new
    owner's token in DR's checkpoint row: rolled back, the old owner says it lost the pair and runs no
    instance, DR keeps 'newer' (equal to business, verify clean), and no client saw an error. Left alone, the
    fenced node takes the pair over again (a higher token) and writes on.
    writer_checkpoint_flush: the same with the owner's control connection held just before it writes its
    (older) checkpoint: on SIGCONT that write is fenced too, and DR's checkpoint keeps the new owner's
    position."""
    b, dr = mariadb_pair
    pname = f"x{fresh}"
    # a DR of an install from before the owner token: the owner upgrades its checkpoint table on start
    dr.sql("CREATE DATABASE IF NOT EXISTS switchyard")
    dr.sql("CREATE TABLE IF NOT EXISTS switchyard.checkpoint (instance VARCHAR(128) NOT NULL PRIMARY KEY, "
           "spool_seq BIGINT UNSIGNED NOT NULL, position TEXT NOT NULL, pending_ddl_seq BIGINT UNSIGNED NOT NULL "
           "DEFAULT 0, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB")
    dr.sql("ALTER TABLE switchyard.checkpoint DROP COLUMN IF EXISTS owner_token")
    three = partial(electable_three, daemon, etcd, mariadb_pair, fresh, pname)
    owner, others, me = stalled_three(three, tmp_path, point)
    c = app_conn(others[0], fresh)                    # through a node that stays up: no client error
    one(c, "INSERT INTO t VALUES (1, 'v0')")
    v = lambda side: q(side, "SELECT v FROM t WHERE id = 1", fresh)
    wait_for(lambda: v(dr) == (("v0",),), 30, "forward applied")
    me.touch()
    one(c, "UPDATE t SET v = 'stale' WHERE id = 1")
    wait_for(lambda: f"failpoint {point}: stalled" in owner.log(), 30, "the owner's writer held at the failpoint")
    if point == "writer_group_taken":
        assert v(dr) == (("v0",),)
    checkpoint = lambda: q(dr, "SELECT position FROM switchyard.checkpoint WHERE instance = %s",
                           args=(f"{pname}/forward",))[0][0]
    os.kill(owner.pid, signal.SIGSTOP)
    try:
        new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 30, "another node owns")
        wait_for(lambda: running_forward(new, pname), 30, "the new owner's forward instance running")
        wait_for(lambda: v(dr) == (("stale",),), 30, "the new owner replayed the stale transaction")
        one(c, "UPDATE t SET v = 'newer' WHERE id = 1")
        wait_for(lambda: v(dr) == (("newer",),), 30, "the new owner applied the newer value")
        pos = q(b, "SELECT @@gtid_binlog_pos")[0][0]
        wait_for(lambda: checkpoint() == pos, 30, "the new owner's checkpoint at business's position")
        me.unlink()                                    # the old writer goes on the moment it runs again
    finally:
        os.kill(owner.pid, signal.SIGCONT)
    wait_for(lambda: f"failpoint {point}: released" in owner.log(), 10, "the old writer released")
    wait_for(lambda: not sync_owner(owner, pname).get("this_node_owns") and owner.pair_status(pname)["instances"]
             == [], 20, "the old owner runs no instance")
    assert checkpoint() == pos                         # without the fence: the old owner's older position
    one(c, "INSERT INTO t VALUES (2, 'after')")
    rows = lambda side: q(side, "SELECT id, v FROM t ORDER BY id", fresh)
    wait_for(lambda: rows(dr) == rows(b), 30, "DR equals business")   # without the fence: v = 'stale' on DR
    assert rows(dr) == ((1, "newer"), (2, "after"))
    token = sync_owner(new, pname)["owner_token"]
    assert token > 0 and f"lost ownership of pair {pname} to token {token}" in owner.log()
    assert sync_owner(owner, pname)["fenced"] == {"lost_to_token": token}
    assert "fenced" not in sync_owner(new, pname)
    assert q(dr, "SELECT owner_token FROM switchyard.checkpoint WHERE instance = %s",
             args=(f"{pname}/forward",)) == ((token,),)
    assert etcd_get(etcd, f"/switchyard/pairs/{pname}/owner")["node"] == sync_owner(new, pname)["owner"]
    wait_for(lambda: running_forward(new, pname), 30, "the new owner's forward instance running")
    r = new.admin_ok("verify", _timeout=120, pair=pname)
    assert r["clean"] is True, r
    # the fenced node is not stuck: alone, it takes the pair over again from DR's checkpoint
    for d in others:
        d.stop()
    wait_for(lambda: running_forward(owner, pname), 30, "the old owner owns and runs the pair again")
    assert "fenced" not in sync_owner(owner, pname) and sync_owner(owner, pname)["owner_token"] > token
    c2 = app_conn(owner, fresh)
    one(c2, "UPDATE t SET v = 'back' WHERE id = 1")
    wait_for(lambda: rows(dr) == rows(b) == ((1, "back"), (2, "after")), 30, "DR equals business again")


def test_a_failover_flips_every_node_with_the_owner(daemon, etcd, mariadb_pair, fresh):  # noqa: F811
    """`failover --force` given to a proxy-only node runs on the owner and goes through the cluster switch
    (its hold marked "failover"): every node holds, prepares its sessions on DR and flips with the owner, so
    an idle session of every node writes on DR afterwards without an error, and every node is on DR when
    the command answers."""
    b, dr = mariadb_pair
    pname = f"f{fresh}"
    owner, proxies = cluster_of_three(daemon, etcd, mariadb_pair, fresh, pname)
    nodes = [owner] + proxies
    conns = [app_conn(d, fresh) for d in nodes]
    for i, c in enumerate(conns):
        one(c, "INSERT INTO t VALUES (%s, 'before')", (i,))
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((3,),), 30, "forward applied")
    r = proxies[0].admin_ok("failover", pair=pname, force=True)
    assert r["active_side"] == "dr" and r["epoch"] == 2 and "cluster_hold_ms" in r["steps"], r
    for d in nodes:
        assert applied(d, pname) == (2, "dr"), d
    for d in proxies:
        hist = d.pair_status(pname)["switch_history"]
        assert hist[0]["outcome"] == "done", hist
    for i, c in enumerate(conns):                      # the same sessions, moved with their node: no error
        one(c, "INSERT INTO t VALUES (%s, 'after the failover')", (10 + i,))
    assert q(dr, "SELECT COUNT(*) FROM t WHERE id >= 10", fresh) == ((3,),)
    assert q(b, "SELECT @@global.read_only")[0][0] == 1


def test_a_mongodb_proxy_cut_off_from_etcd_refuses_a_held_request_after_max_hold_ms(etcd, ferretdb_pair,
                                                                                     mongo_daemon):
    """As the MariaDB proxy (above): a MongoDB proxy whose only etcd endpoint is paused holds new requests, and
    one held max_hold_ms gets the clear error (code 50 MaxTimeMSExpired: not a "not primary" code, which drivers
    retry at once through the same proxy) and its connection is closed, instead of waiting until etcd
    answers; the write reached no side. Back with etcd, a new connection writes."""
    pymongo = sandbox.pymongo4()
    b = ferretdb_pair.business
    pname = "mcut"
    cut = mongo_daemon(pair=pname, max_hold_ms=1500, txn_drain_ms=500, extra_ini=cluster_ini(etcd[2:], "mcut"))
    wait_for(lambda: confirmed(cut, pname, 1), 20, "the node watches")
    port = int(cut.pair_status(pname)["listen"].rsplit(":", 1)[1])
    c = pymongo.MongoClient("127.0.0.1", port, username=b.admin_user, password=b.admin_password,
                            authSource="admin", retryWrites=False, serverSelectionTimeoutMS=10000,
                            socketTimeoutMS=30000)
    coll = c["mcut_db"]["t"]
    coll.delete_many({})
    coll.insert_one({"_id": 1, "v": "before"})
    lone = etcd[2]
    os.kill(lone.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: shared(cut, pname)["cut_off"] and cut.pair_status(pname)["held"], 15, "cut off: held")
        t0 = time.monotonic()
        with pytest.raises(pymongo.errors.PyMongoError) as e:
            coll.insert_one({"_id": 2, "v": "while cut off"})
        held_s = time.monotonic() - t0
        assert "lost etcd" in str(e.value) and "max_hold_ms=1500" in str(e.value), e.value
        assert 1.4 < held_s < 10, held_s
    finally:
        os.kill(lone.pid, signal.SIGCONT)
    wait_for(lambda: not shared(cut, pname)["cut_off"] and not cut.pair_status(pname)["held"], 20, "etcd back")
    c.close()                                           # its pooled connection was closed by the proxy
    c = pymongo.MongoClient("127.0.0.1", port, username=b.admin_user, password=b.admin_password,
                            authSource="admin", serverSelectionTimeoutMS=10000)
    coll = c["mcut_db"]["t"]
    coll.insert_one({"_id": 3, "v": "after"})
    assert sorted(d["_id"] for d in coll.find()) == [1, 3]
    c.close()


def test_a_command_forwarded_to_an_owner_that_dies_mid_way_says_its_outcome_is_unknown(daemon, etcd, mariadb_pair,
                                                                                       fresh):  # noqa: F811
    """A switchover given to a proxy-only node runs on the owner, which dies (kill -9 at a failpoint) with every
    node held: the proxy's caller gets owner_lost naming the dead owner and saying the outcome is unknown and
    that the command was not sent again — not a hang, not a second run. The nodes release on business."""
    pname = f"x{fresh}"
    owner, proxies = cluster_of_three(daemon, etcd, mariadb_pair, fresh, pname,
                                      owner_env={"SY_FAILPOINT": "switch_after_cluster_hold"})
    t0 = time.monotonic()
    r = proxies[0].admin("switchover", pair=pname)
    assert r["ok"] is False and r["error"]["code"] == "owner_lost", r
    assert f"{pname}-s1" in r["error"]["message"] and "outcome is unknown" in r["error"]["message"], r
    assert time.monotonic() - t0 < 20
    assert owner.wait(30) != 0
    for d in proxies:
        wait_for(lambda: applied(d, pname) == (1, "business") and not d.pair_status(pname)["held"], 20,
                 f"{d} released on business")
    # requests/ and replies/ (not the pair's other keys: the reverse instance's record stays, say)
    under = lambda d: etcd_call(etcd, "/v3/kv/range", {"key": b64(f"/switchyard/pairs/{pname}/{d}/"),
                                                       "range_end": b64(f"/switchyard/pairs/{pname}/{d}0")})
    left = lambda: (under("requests").get("kvs") or []) + (under("replies").get("kvs") or [])
    wait_for(lambda: left() == [], 10, "the request's keys deleted")


def test_a_sql_server_proxy_cut_off_from_etcd_refuses_a_held_request_after_max_hold_ms(daemon, etcd):
    """The same for a SQL Server proxy (the TDS double): a request held max_hold_ms gets an ERROR token with
    the message and the connection is closed; a new connection works once etcd is back."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "doubles"))
    from tds_fixtures import running_double
    pytds = pytest.importorskip("pytds")
    with running_double() as business, running_double() as dr:
        pname = "tcut"
        cut = daemon(pair=pname, engine="sqlserver", business=f"{business.host}:{business.port}",
                     dr=f"{dr.host}:{dr.port}", admin_user=business.user, admin_password=business.password,
                     max_hold_ms=1500, txn_drain_ms=500, extra_ini=cluster_ini(etcd[2:], "tcut"))
        wait_for(lambda: confirmed(cut, pname, 1), 20, "the node watches")
        port = int(cut.pair_status(pname)["listen"].rsplit(":", 1)[1])

        def connect():
            return pytds.connect(server="127.0.0.1", port=port, user=business.user, password=business.password,
                                 autocommit=True, login_timeout=10, timeout=30, disable_connect_retry=True)
        c = connect()
        with c.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone()[0] == 1
        lone = etcd[2]
        os.kill(lone.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: shared(cut, pname)["cut_off"] and cut.pair_status(pname)["held"], 15, "cut off: held")
            t0 = time.monotonic()
            with pytest.raises(Exception) as e:
                with c.cursor() as cur:
                    cur.execute("SELECT 2")
                    cur.fetchone()
            held_s = time.monotonic() - t0
            assert "lost etcd" in str(e.value) and "max_hold_ms=1500" in str(e.value), e.value
            assert 1.4 < held_s < 10, held_s
        finally:
            os.kill(lone.pid, signal.SIGCONT)
        wait_for(lambda: not shared(cut, pname)["cut_off"] and not cut.pair_status(pname)["held"], 20, "etcd back")
        c2 = connect()
        with c2.cursor() as cur:
            cur.execute("SELECT 3")
            assert cur.fetchone()[0] == 3
        c2.close()
        assert cut.stop() == 0


def test_a_request_put_while_the_owners_watch_is_remade_is_served(daemon, etcd, mariadb_pair, fresh):  # noqa: F811
    """The owner's requests/ watch starts at revision 0 ("from now") and, before its first event, is made
    again at revision 0 whenever its stream ends (an etcd member died, or 60 s without an event): a request
    put in between is never served and the asker waits FORWARD_TIMEOUT_MS (10 min)."""
    pname = f"w{fresh}"
    owner, proxies = cluster_of_three(daemon, etcd, mariadb_pair, fresh, pname)
    to = sync_owner(owner, pname)["owner"]
    st = [etcd_call([m], "/v3/maintenance/status", {}) for m in etcd]
    if st[0]["leader"] == st[0]["header"]["member_id"]:      # keep a leader: only the watch's stream moves
        etcd_call([etcd[0]], "/v3/maintenance/transfer-leadership", {"targetID": st[1]["header"]["member_id"]})
        time.sleep(1)
    req = lambda rid: etcd_put(etcd, f"/switchyard/pairs/{pname}/requests/{rid}", json.dumps(
        {"id": rid, "from": "test", "to": to, "cmd": "lag-history", "args": {"instance": f"{pname}/forward"}}))
    reply = lambda rid: etcd_get(etcd, f"/switchyard/pairs/{pname}/replies/{rid}")
    first = etcd[0]
    first.kill9()                                       # the member the owner's watches were made on
    try:
        req("gap")
        time.sleep(2)
        req("later")
        wait_for(lambda: reply("later") is not None, 10, "the later request served")
        assert reply("gap") is not None, "the request put while the watch was made again was never served"
    finally:
        first.start()


def test_a_request_put_twice_runs_once(daemon, etcd, mariadb_pair, fresh):  # noqa: F811
    """etcd.c re-sends a put that timed out (or was reset) to the next member: the first may have been applied.
    The same request key put twice must not run the command twice."""
    pname = f"d{fresh}"
    owner, proxies = cluster_of_three(daemon, etcd, mariadb_pair, fresh, pname)
    to = sync_owner(owner, pname)["owner"]
    body = json.dumps({"id": "dup", "from": "test", "to": to, "cmd": "pause",
                       "args": {"instance": f"{pname}/forward"}})
    for _ in range(2):
        etcd_put(etcd, f"/switchyard/pairs/{pname}/requests/dup", body)
    time.sleep(3)
    assert owner.log().count("(request dup)") == 1, owner.log().count("(request dup)")


@pytest.mark.parametrize("with_reverse", [False, True])
def test_failover_after_the_owner_and_business_die_together(daemon, etcd, mariadb_pair, fresh,
                                                            with_reverse):  # noqa: F811
    """A site loss: the owner node and the business mariadbd die together. Another node wins the election;
    a failover sent to it must run (business is dead: that is what failover is for). With a reverse
    instance (collecting): its takeover needs its destination, business, so it must not hold the forward
    instance back — else the new owner never opens its instances and refuses the failover. Once business
    answers again the reverse instance is taken over too, collecting only: its write waits for the
    failover's tail to be resolved. (Not resolved here: a new owner whose forward collector read nothing
    before business died has no collected position, so its tail is never found — docs/cluster.md.)"""
    b, dr = mariadb_pair
    pname = f"r{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    if with_reverse:
        others[0].admin_ok("create-reverse", pair=pname)
        wait_reverse(owner, pname, "collecting")
    c = app_conn(others[0], fresh)
    one(c, "INSERT INTO t VALUES (1, 'v0')")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((1,),), 30, "forward applied")
    owner.kill9()
    b.kill9()
    try:
        new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")
        wait_for(lambda: sync_owner(new, pname).get("instances_open"), 30, "the new owner opened its instances")
        print("sync_owner:", sync_owner(new, pname))
        if with_reverse:
            assert reverse(new, pname) is None and sync_owner(new, pname)["reverse_takeover_pending"]
        r = new.admin("failover", pair=pname, force=True, _timeout=60)
        print("failover:", r)
        assert r["ok"] is True, r
        if with_reverse:
            one(app_conn(others[1], fresh), "INSERT INTO t VALUES (2, 'on dr')")
    finally:
        b.start()
    if not with_reverse:
        return
    wait_reverse(new, pname, "collecting", 60)
    assert "the reverse instance is taken over too" in new.log()
    assert "reverse_takeover_pending" not in sync_owner(new, pname)
    time.sleep(2)                                       # what the reverse writer would have applied by now
    assert new.pair_status(pname)["tail"]["state"] in ("pending", "open"), new.pair_status(pname)["tail"]
    assert reverse(new, pname)["state"] == "collecting"
    assert q(b, "SELECT COUNT(*) FROM t", fresh) == ((1,),)              # nothing written before the tail


def test_a_takeover_that_outlives_its_ownership_is_made_again_with_the_new_token(daemon, etcd, mariadb_pair, fresh,
                                                                                 tmp_path):  # noqa: F811
    """A slow takeover (held at the failpoint takeover_taken, its owner token T1 claimed in DR) on node X; X is
    SIGSTOPped past its lease, Y wins and claims T2 (held too), Y dies, X runs again and wins the pair back
    with T3 while its first takeover still runs. That takeover completing must not open writers with T1 (DR
    names T2: fenced for good): it is made again with T3, and the forward instance writes into DR."""
    b, dr = mariadb_pair
    pname = f"s{fresh}"
    three = partial(electable_three, daemon, etcd, mariadb_pair, fresh, pname)
    owner, others, _ = stalled_three(three, tmp_path, "takeover_taken")
    stall = [stall_file(d) for d in [owner] + others]
    for f in stall:
        f.touch()
    owner.kill9()
    x = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")
    y = [d for d in others if d is not x][0]
    wait_for(lambda: "failpoint takeover_taken: stalled" in x.log(), 20, "X's takeover held")
    t1 = sync_owner(x, pname)["owner_token"]
    os.kill(x.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: "failpoint takeover_taken: stalled" in y.log(), 30, "Y owns, its takeover held")
        y.kill9()
    finally:
        os.kill(x.pid, signal.SIGCONT)
    wait_for(lambda: sync_owner(x, pname).get("this_node_owns") and sync_owner(x, pname)["owner_token"] > t1, 30,
             "X owns the pair again, with a new token")
    for f in stall:
        f.unlink()
    wait_for(lambda: running_forward(x, pname), 30, "X's forward instance running")
    c = app_conn(x, fresh)
    one(c, "INSERT INTO t VALUES (1, 'after')")
    wait_for(lambda: q(dr, "SELECT v FROM t WHERE id = 1", fresh) == (("after",),), 30, "applied into DR")
    assert "fenced" not in sync_owner(x, pname)


def test_a_forwarded_resolve_tail_export_is_refused(daemon, etcd, mariadb_pair, fresh, tmp_path):  # noqa: F811
    """`resolve-tail --export FILE` writes FILE where it runs. Given to a node that does not own the pair it
    would run on the owner and write there (the caller's path on another machine, as the owner's uid): it is
    refused, naming the owner node and its socket, and nothing is sent. A request put into etcd by hand (whoever
    can write to etcd) with --export is refused by the owner too: no file is written."""
    pname = f"t{fresh}"
    owner, proxies = cluster_of_three(daemon, etcd, mariadb_pair, fresh, pname)
    to = sync_owner(owner, pname)["owner"]
    out = tmp_path / "tail.json"
    r = proxies[0].admin("resolve-tail", pair=pname, export=str(out))
    assert r["ok"] is False and r["error"]["code"] == "bad_request", r
    msg = r["error"]["message"]
    assert msg.startswith(f"resolve-tail --export writes FILE on the node that runs it, and node {to} owns the "
                          f"synchronization of {pname} (this node is {pname}-p2): run it on node {to} "
                          f"(switchyardctl -s {owner.admin_socket} resolve-tail {pname} --export FILE)"), msg
    assert "cluster admin: 'resolve-tail'" not in owner.log()        # never sent
    etcd_put(etcd, f"/switchyard/pairs/{pname}/requests/exp", json.dumps(
        {"id": "exp", "from": "test", "to": to, "cmd": "resolve-tail", "args": {"pair": pname, "export": str(out)}}))
    reply = wait_for(lambda: etcd_get(etcd, f"/switchyard/pairs/{pname}/replies/exp"), 10, "the owner's reply")
    assert reply == {"ok": False, "error": {"code": "bad_request", "message": (
        "resolve-tail --export is never run for another node (it writes FILE on the node that runs it): run it on "
        "the owner's own admin socket, or use --discard")}}, reply
    assert not out.exists()


def test_a_failing_takeover_logs_its_error_once_not_every_second(daemon, etcd, mariadb_pair, fresh):  # noqa: F811
    """A takeover that fails is tried again every second; its warning is logged when the error changes (and
    again every 60 s), not every second: an operator reads one line, and status says the error all along.
    Once it succeeds the log says after how many tries."""
    b, dr = mariadb_pair
    pname = f"l{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    inst = f"{pname}/forward"
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM switchyard.checkpoint WHERE instance = %s", args=(inst,))
             == ((1,),), 30, "the forward instance's checkpoint on DR")
    dr.sql(f"UPDATE switchyard.checkpoint SET owner_token = 999999999999 WHERE instance = '{inst}'")
    owner.kill9()
    new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")
    err = wait_for(lambda: sync_owner(new, pname).get("takeover_error"), 20, "the takeover failing")
    assert "its checkpoint names owner token 999999999999, above this node's" in err, err
    time.sleep(5)                                        # five tries more
    assert sync_owner(new, pname)["takeover_error"] == err
    failed = [ln for ln in new.log().splitlines() if f"pair {pname}: takeover" in ln and "fail" in ln]
    assert len(failed) == 1, failed
    assert (f"pair {pname}: takeover failed (tried again every second; the same error is logged again every "
            f"60 s): {err}") in failed[0], failed
    dr.sql(f"UPDATE switchyard.checkpoint SET owner_token = 0 WHERE instance = '{inst}'")
    wait_for(lambda: running_forward(new, pname), 30, "the takeover done")
    assert "takeover_error" not in sync_owner(new, pname)
    assert f"pair {pname}: takeover done after " in new.log()


def test_the_takeovers_idempotent_replay_ends_once_the_writer_passes_it(daemon, etcd, mariadb_pair,
                                                                        fresh):  # noqa: F811
    """A takeover replays changes up to the source's position at the writer's first change idempotently
    (conflicts overwritten, whatever on_conflict says). Once the writer applied past that position the
    window is over for good: a writer started again later (pause, start) applies strictly, so a conflict
    is a conflict (on_conflict = fail: the instance fails, DR's row is not overwritten) instead of being
    overwritten silently up to the source's position of that day."""
    b, dr = mariadb_pair
    pname = f"u{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    owner.kill9()
    new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")
    wait_for(lambda: running_forward(new, pname), 30, "the new owner's forward instance running")
    c = app_conn(new, fresh)
    one(c, "INSERT INTO t VALUES (1, 'after the takeover')")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((1,),), 30, "applied into DR")
    over = f"{pname}/forward: the takeover's idempotent replay is over"
    deadline = time.monotonic() + 10                     # the log says when (it never did before the fix)
    while over not in new.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    dr.sql("INSERT INTO t VALUES (2, 'only on dr')", database=fresh)   # a row that should not be there
    new.admin_ok("pause", instance=f"{pname}/forward")
    wait_for(lambda: forward(new, pname)["state"] == "paused", 20, "paused")
    one(c, "INSERT INTO t VALUES (2, 'business')")
    new.admin_ok("start", instance=f"{pname}/forward")
    f = wait_for(lambda: forward(new, pname)["state"] == "failed" and forward(new, pname), 30,
                 "the conflict fails the instance (on_conflict = fail)")
    assert f["reason"] == "conflict" and "conflict on" in f["last_error"], f
    assert q(dr, "SELECT v FROM t WHERE id = 2", fresh) == (("only on dr",),)
    assert over in new.log()


@pytest.mark.parametrize("cmd, state", [("pause", "paused"), ("terminate", "terminated")])
def test_an_instance_an_operator_paused_stays_so_after_a_takeover(daemon, etcd, mariadb_pair, fresh, cmd,
                                                                  state):  # noqa: F811
    """`pause` (or `terminate`) of the forward instance, given to a node that does not own the pair, is kept
    in etcd (/switchyard/pairs/<pair>/instances/forward) before it is answered. The owner dies: the node
    that takes the pair over opens the instance paused (terminated) — nothing reaches DR — instead of
    running it again. A `start` runs it on the new owner and deletes the key."""
    b, dr = mariadb_pair
    pname = f"h{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    inst, key = f"{pname}/forward", f"/switchyard/pairs/{pname}/instances/forward"
    c = app_conn(others[0], fresh)
    one(c, "INSERT INTO t VALUES (1, 'before')")
    count = lambda: q(dr, "SELECT COUNT(*) FROM t", fresh)[0][0]
    wait_for(lambda: count() == 1, 30, "forward applied")
    r = others[1].admin_ok(cmd, instance=inst)           # sent on to the owner
    assert r == {"instance": inst, "state": state}, r
    was = sync_owner(owner, pname)["owner"]
    owner.kill9()
    new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")
    wait_for(lambda: sync_owner(new, pname).get("instances_open"), 30, "the new owner opened the instances")
    assert forward(new, pname)["state"] == state
    assert etcd_get(etcd, key) == {"state": state, "node": was}
    one(c, "INSERT INTO t VALUES (2, 'while held')")
    time.sleep(2)                                         # what would have reached DR by now
    assert forward(new, pname)["state"] == state and count() == 1
    if state == "terminated":
        assert f"{inst}: terminated by an operator (kept in etcd): not taken over" in new.log()
        return
    assert "it stays paused (an operator paused it: kept in etcd)" in new.log()
    r = others[0].admin_ok("start", instance=inst)
    assert r["state"] == "running", r
    assert etcd_get(etcd, key) is None
    wait_for(lambda: count() == 2, 30, "the started instance applies what was written meanwhile")


def test_a_failover_rolled_back_leaves_an_operator_paused_instance_paused_for_the_next_owner(
        daemon, etcd, mariadb_pair, fresh):  # noqa: F811
    """An operator paused the forward instance (kept in etcd). A `failover --force` starts it to apply its
    spool, then fails after DR was unfenced (SY_FAIL_STEPS) and rolls back: the instance is paused again, as
    the operator left it and as etcd says, not left running. The owner is killed with -9: the next owner
    opens it in the state the dead one had (before the fix: running on the dead owner, paused on the next
    one), and the row written while it was paused reached DR through the failover's drain."""
    b, dr = mariadb_pair
    pname = f"h{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname,
                                    env_of=lambda i: {"SY_FAIL_STEPS": "switch_fail_after_unfence"})
    inst, key = f"{pname}/forward", f"/switchyard/pairs/{pname}/instances/forward"
    c = app_conn(others[0], fresh)
    one(c, "INSERT INTO t VALUES (1, 'before')")
    count = lambda: q(dr, "SELECT COUNT(*) FROM t", fresh)[0][0]
    wait_for(lambda: count() == 1, 30, "forward applied")
    assert others[1].admin_ok("pause", instance=inst)["state"] == "paused"
    was = sync_owner(owner, pname)["owner"]
    assert etcd_get(etcd, key) == {"state": "paused", "node": was}
    one(c, "INSERT INTO t VALUES (2, 'while paused')")
    r = others[0].admin("failover", pair=pname, force=True)
    assert r["ok"] is False and r["error"]["code"] == "internal" and "switch_fail_after_unfence" in \
        r["error"]["message"], r
    for d in [owner] + others:
        wait_for(lambda: applied(d, pname) == (1, "business") and not d.pair_status(pname)["held"], 20,
                 "every node released on business")
    wait_for(lambda: q(b, "SELECT @@global.read_only")[0][0] == 0, 20, "business unfenced by the rollback")
    assert count() == 2                                   # the failover's drain applied the spool
    left = wait_for(lambda: forward(owner, pname)["state"] not in ("stopping", "precheck") and
                    forward(owner, pname)["state"], 20, "the rollback settled")
    assert etcd_get(etcd, key) == {"state": "paused", "node": was}
    owner.kill9()
    new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")
    wait_for(lambda: sync_owner(new, pname).get("instances_open"), 30, "the new owner opened the instances")
    assert forward(new, pname)["state"] == left, (left, forward(new, pname))
    assert left == "paused"                               # the operator's pause outlived the failover
    one(c, "INSERT INTO t VALUES (3, 'after')")
    time.sleep(2)                                         # what would have reached DR by now
    assert count() == 2
    others[0].admin_ok("start", instance=inst)
    assert etcd_get(etcd, key) is None
    wait_for(lambda: count() == 3, 30, "the started instance applies what was written meanwhile")


def test_a_takeover_ends_an_old_owner_paused_while_it_holds_the_checkpoint_rows_lock(daemon, etcd, mariadb_pair,
                                                                                     fresh, tmp_path):  # noqa: F811
    """The owner's apply worker has read the fencing token (a shared lock on DR's checkpoint row, held until
    its commit) when the owner is SIGSTOPped past its lease. The server keeps that connection and its lock
    for as long as it likes (wait_timeout: hours), so the new owner's takeover, which locks the row, would
    wait and fail again and again: it ends the holder instead (KILL CONNECTION), takes the pair over and
    applies on. Resumed, the old worker's commit fails with its connection; DR equals business."""
    b, dr = mariadb_pair
    pname = f"k{fresh}"
    three = partial(electable_three, daemon, etcd, mariadb_pair, fresh, pname)
    owner, others, me = stalled_three(three, tmp_path, "writer_fence_read")
    c = app_conn(others[0], fresh)
    me.touch()
    one(c, "INSERT INTO t VALUES (1, 'held')")
    wait_for(lambda: "failpoint writer_fence_read: stalled" in owner.log(), 30, "the owner's worker holds the lock")
    os.kill(owner.pid, signal.SIGSTOP)
    try:
        new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 30, "another node owns")
        wait_for(lambda: running_forward(new, pname), 30, "the new owner's forward instance running")
        assert "held the checkpoint row's lock" in new.log() and "ended, its transaction rolled back" in new.log()
        one(c, "INSERT INTO t VALUES (2, 'after')")
        rows = lambda side: q(side, "SELECT id, v FROM t ORDER BY id", fresh)
        wait_for(lambda: rows(dr) == rows(b) == ((1, "held"), (2, "after")), 30, "DR equals business")
        me.unlink()
    finally:
        os.kill(owner.pid, signal.SIGCONT)
    wait_for(lambda: "failpoint writer_fence_read: released" in owner.log(), 10, "the old worker released")
    wait_for(lambda: owner.pair_status(pname)["instances"] == [], 20, "the old owner runs no instance")
    one(c, "INSERT INTO t VALUES (3, 'last')")
    wait_for(lambda: rows(dr) == rows(b) == ((1, "held"), (2, "after"), (3, "last")), 30, "DR still equals business")


def test_create_reverse_answers_once_etcd_forgot_the_terminated_one_before(daemon, etcd, mariadb_pair,
                                                                           fresh):  # noqa: F811
    """A terminated reverse instance is kept in etcd (a new owner must not run it). create-reverse makes a new
    one and answers only once that key is gone: a takeover right after the answer would otherwise terminate
    the new instance."""
    pname = f"r{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    key = f"/switchyard/pairs/{pname}/instances/reverse"
    others[0].admin_ok("create-reverse", pair=pname)
    wait_for(lambda: etcd_get(etcd, key) is None and any(
        i["direction"] == "reverse" for i in owner.pair_status(pname)["instances"]), 20, "a reverse instance")
    r = others[1].admin_ok("terminate", instance=f"{pname}/reverse")
    assert r["state"] == "terminated", r
    assert etcd_get(etcd, key)["state"] == "terminated"
    r = others[0].admin_ok("create-reverse", pair=pname)
    assert r["instance"] == f"{pname}/reverse" and r["state"] == "collecting", r
    assert etcd_get(etcd, key) is None                    # gone before the answer


def running_reverse(d, pname):
    r = reverse(d, pname)
    return bool(r) and r["state"] == "running"


def test_a_reverse_instance_is_taken_over_by_a_node_that_did_not_create_it(daemon, etcd, mariadb_pair,
                                                                          fresh):  # noqa: F811
    """create-reverse runs on the owner only (the reverse instance's state lives there); etcd keeps what
    another node needs to make it (/switchyard/pairs/<pair>/reverse: DR's start position, which creation).
    After a switchover the reverse instance writes DR -> business; four clients of the two other nodes write
    on DR all along and the owner is killed with -9: another node, which never had the reverse instance,
    makes it from the record and takes it over from business's checkpoint: it runs there, 0 client errors,
    every acknowledged write on both sides, the rows equal, nothing copied again."""
    b, dr = mariadb_pair
    pname = f"v{fresh}"
    inst = f"{pname}/reverse"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    c = app_conn(others[0], fresh)
    one(c, "INSERT INTO t VALUES (1, 'before')")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((1,),), 30, "forward applied")
    created = others[0].admin_ok("create-reverse", pair=pname)          # sent on to the owner
    assert created["state"] == "collecting", created
    r = others[1].admin_ok("switchover", pair=pname)
    assert r["active_side"] == "dr" and r["epoch"] == 2, r
    wait_reverse(owner, pname, "running")
    one(c, "INSERT INTO t VALUES (2, 'on dr')")
    wait_for(lambda: q(b, "SELECT COUNT(*) FROM t", fresh) == ((2,),), 30, "reverse applied")
    for d in others:
        assert d.pair_status(pname)["instances"] == []                   # no state of it there
    checkpointed = lambda: q(b, "SELECT COUNT(*) FROM switchyard.checkpoint WHERE instance = %s AND "
                             "spool_seq > 0", args=(inst,)) == ((1,),)
    new, takeover_s, acked, errors = kill9_owner_under_writes([owner] + others, pname, insert_and_update(fresh),
                                                              checkpointed=checkpointed, ready=running_reverse)
    assert takeover_s < 15, takeover_s
    assert errors == [], errors[:5]
    log = new.log()
    assert f"{inst}: made from etcd's record (created {created_by(owner, pname)}" in log, log[-3000:]
    assert f"{inst}: taken over from the destination's checkpoint" in log
    rows = lambda side: q(side, "SELECT id, v FROM t ORDER BY id", fresh)
    wait_for(lambda: rows(b) == rows(dr), 60, "business equals DR")
    assert set(acked) | {1, 2} <= {r[0] for r in rows(b)}
    fw = forward(new, pname)
    assert fw["state"] == "collecting" and fw["initial_sync"]["done_rows"] == 0, fw
    rec = etcd_get(etcd, f"/switchyard/pairs/{pname}/reverse")
    assert rec["start_position"] == created["start_position"], rec
    assert rec["node"] == created_by(owner, pname).split("@")[0], rec


def created_by(d, pname):
    """The creation the reverse instance's state of node d names (its state.json)."""
    path = Path(d.cwd) / "state" / "instances" / f"{pname}.reverse" / "state.json"
    return json.loads(path.read_text())["created"]


def test_a_terminated_reverse_instance_is_not_made_again_by_a_takeover(daemon, etcd, mariadb_pair,
                                                                      fresh):  # noqa: F811
    """A reverse instance made on node A is taken over by B when A dies (from etcd's record); A comes back
    with its own state of it, now stale. A `terminate` deletes the record in the transaction that keeps the
    terminated state, and an operator even deletes that key. B dies with the third node stopped: A, the only
    candidate, takes the pair over and does not open the reverse instance its state still says collecting:
    etcd has no record of it. A new create-reverse on A; A dies: B, with its terminated state of the first
    creation, makes the new one from etcd's record instead."""
    dr = mariadb_pair.dr
    pname = f"w{fresh}"
    inst = f"{pname}/reverse"
    rkey, hkey = f"/switchyard/pairs/{pname}/reverse", f"/switchyard/pairs/{pname}/instances/reverse"
    a, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    others[0].admin_ok("create-reverse", pair=pname)
    wait_reverse(a, pname, "collecting")
    a.kill9()
    new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")
    wait_reverse(new, pname, "collecting", 30)
    third = next(d for d in others if d is not new)
    a.start()
    owner_name = sync_owner(new, pname)["owner"]
    wait_for(lambda: confirmed(a, pname, 1) and sync_owner(a, pname).get("owner") == owner_name, 20,
             "A back, not the owner")
    assert etcd_get(etcd, rkey) is not None
    r = a.admin_ok("terminate", instance=inst)                          # sent on to the owner
    assert r["state"] == "terminated", r
    assert etcd_get(etcd, rkey) is None and etcd_get(etcd, hkey)["state"] == "terminated"
    etcd_call(etcd, "/v3/kv/deleterange", {"key": b64(hkey)})
    os.kill(third.pid, signal.SIGSTOP)
    try:
        new.kill9()
        owns = lambda: sync_owner(a, pname).get("this_node_owns") and sync_owner(a, pname).get("instances_open")
        wait_for(owns, 30, "A owns the pair and opened its instances")
        assert reverse(a, pname) is None, a.pair_status(pname)["instances"]
        assert f"{inst}: this node has a state of it" in a.log() and "etcd has no record of it" in a.log()
        c = app_conn(a, fresh)
        one(c, "INSERT INTO t VALUES (1, 'forward')")
        wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((1,),), 30, "the forward instance runs")
        assert reverse(a, pname) is None
        a.admin_ok("create-reverse", pair=pname)
        assert etcd_get(etcd, rkey)["created"] == created_by(a, pname) != created_by(new, pname)
        new.start()
        wait_for(lambda: confirmed(new, pname, 1) and sync_owner(new, pname).get("owner"), 20, "B back")
        a.kill9()
        owns = lambda: sync_owner(new, pname).get("this_node_owns") and sync_owner(new, pname).get("instances_open")
        wait_for(owns, 30, "B owns the pair and opened its instances")
        wait_reverse(new, pname, "collecting", 10)
        assert f"{inst}: made from etcd's record (created {created_by(a, pname)}" in new.log()
        assert "this node's terminated one replaced" in new.log()
    finally:
        os.kill(third.pid, signal.SIGCONT)


def test_a_reverse_instance_created_again_is_not_taken_over_from_the_terminated_ones_checkpoint(
        daemon, etcd, mariadb_pair, fresh):  # noqa: F811
    """Reverse instance 1 writes DR -> business after a switchover (its checkpoint row on business, keyed
    <pair>/reverse); switchback, terminate, a row written on DR directly, then create-reverse (2): rule 2,
    nothing of DR from before its creation reaches business. The owner is killed with -9 before 2 writes
    anything: the new owner makes 2 from etcd's record and must find no checkpoint for it. Before, it took 2
    over from 1's row: collection resumed at 1's last DR position, and after the next switchover the row
    written before 2's creation landed on business."""
    b, dr = mariadb_pair
    pname = f"x{fresh}"
    inst = f"{pname}/reverse"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    c = app_conn(others[0], fresh)
    one(c, "INSERT INTO t VALUES (1, 'before')")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((1,),), 30, "forward applied")
    others[0].admin_ok("create-reverse", pair=pname)
    assert others[1].admin_ok("switchover", pair=pname)["active_side"] == "dr"
    wait_reverse(owner, pname, "running")
    one(c, "INSERT INTO t VALUES (2, 'on dr')")
    wait_for(lambda: q(b, "SELECT COUNT(*) FROM t", fresh) == ((2,),), 30, "reverse instance 1 applied")
    assert q(b, "SELECT spool_seq > 0 FROM switchyard.checkpoint WHERE instance = %s", args=(inst,)) == ((1,),)
    assert others[1].admin_ok("switchback", pair=pname)["active_side"] == "business"
    others[0].admin_ok("terminate", instance=inst)
    dr.sql("INSERT INTO t VALUES (9, 'on dr before creation 2')", database=fresh)
    others[0].admin_ok("create-reverse", pair=pname)
    # reset, not deleted: the row keeps this owner's token, so an older owner's writer that opened a session
    # now would be fenced instead of starting a history of its own under its lower token
    token = sync_owner(owner, pname)["owner_token"]
    assert q(b, "SELECT spool_seq, position, owner_token FROM switchyard.checkpoint WHERE instance = %s",
             args=(inst,)) == ((0, "", token),)
    owner.kill9()
    new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")
    wait_reverse(new, pname, "collecting", 30)
    assert f"{inst}: the destination has no checkpoint" in new.log(), new.log()[-3000:]
    assert new.admin_ok("switchover", pair=pname)["active_side"] == "dr"
    wait_reverse(new, pname, "running")
    one(c, "INSERT INTO t VALUES (3, 'on dr after creation 2')")
    rows = lambda side: q(side, "SELECT id, v FROM t ORDER BY id", fresh)
    wait_for(lambda: q(b, "SELECT COUNT(*) FROM t WHERE id = 3", fresh) == ((1,),), 30, "reverse instance 2 applied")
    assert list(rows(b)) == [r for r in rows(dr) if r[0] != 9]


@pytest.mark.parametrize("direction", ["forward", "reverse"])
def test_a_terminate_etcd_does_not_record_terminates_nothing(daemon, etcd, mariadb_pair, fresh,
                                                             direction):  # noqa: F811
    """A terminate is recorded in etcd before it is done: a terminated instance cannot be started again, so
    one done on the owner while etcd did not record it could not be given again (before, the answer said
    "start and terminate it again", both refused), and a node taking the pair over would run it. A request
    etcd did not answer may still be applied once etcd runs again: the answer says so, and giving the
    terminate again ends in the same state everywhere."""
    pname = f"z{fresh}{direction[0]}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    inst = f"{pname}/{direction}"
    if direction == "reverse":
        others[0].admin_ok("create-reverse", pair=pname)
        wait_reverse(owner, pname, "collecting")
    state = lambda d: ((forward if direction == "forward" else reverse)(d, pname) or {}).get("state")
    answers = {}
    for m in etcd:
        os.kill(m.pid, signal.SIGSTOP)
    try:
        t = threading.Thread(target=lambda: answers.update(r=owner.admin("terminate", instance=inst)))
        t.start()
        # while it waits for etcd, what would undo it is refused (a pause after it would be kept instead)
        wait_for(lambda: "admin: terminate" in owner.log(), 10, "the terminate received")
        time.sleep(0.3)
        answers["pause"] = owner.admin("pause", instance=inst)
        answers["switch"] = owner.admin("switchover", pair=pname)
        t.join(60)
        r = answers["r"]
    finally:
        for m in etcd:
            os.kill(m.pid, signal.SIGCONT)
    assert r["ok"] is False and r["error"]["code"] == "etcd_unreachable", r
    assert answers["pause"]["error"]["code"] == "bad_state", answers
    assert f"a terminate of {inst} waits for etcd" in answers["pause"]["error"]["message"], answers
    assert f"a terminate of {inst} waits for etcd" in answers["switch"]["error"]["message"], answers
    assert f"etcd did not answer the terminate of {inst}" in r["error"]["message"], r
    assert "it was not terminated on this node, but etcd may still record it" in r["error"]["message"], r
    new = wait_for(lambda: owners([owner] + others, pname) and owners([owner] + others, pname)[0], 30, "an owner")
    wait_for(lambda: sync_owner(new, pname).get("instances_open"), 30, "its instances open")
    key = f"/switchyard/pairs/{pname}/instances/{direction}"
    landed = etcd_get(etcd, key) is not None             # the request applied once etcd ran again
    running = "running" if direction == "forward" else "collecting"
    if direction == "reverse" and not landed:
        wait_reverse(new, pname, running, 30)
    assert state(new) in (("terminated", None) if landed else (running,)), (landed, state(new))
    r = others[0].admin("terminate", instance=inst)
    assert r["ok"] is not landed, r                      # landed: "already terminated" (or no instance)
    assert etcd_get(etcd, key)["state"] == "terminated" and state(new) in ("terminated", None)
    assert etcd_get(etcd, f"/switchyard/pairs/{pname}/reverse") is None


def test_a_create_reverse_etcd_does_not_record_creates_nothing(daemon, etcd, mariadb_pair, fresh):  # noqa: F811
    """create-reverse puts etcd's record of the new reverse instance before it makes the instance: one etcd
    did not record exists nowhere (before, it ran on the owner, invisible to a node taking the pair over)."""
    pname = f"s{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    for m in etcd:
        os.kill(m.pid, signal.SIGSTOP)
    try:
        r = owner.admin("create-reverse", pair=pname)
        assert reverse(owner, pname) is None
    finally:
        for m in etcd:
            os.kill(m.pid, signal.SIGCONT)
    assert r["ok"] is False and r["error"]["code"] in ("etcd_unreachable", "owner_lost"), r
    assert ("was not created on this node, but etcd may still record it" in r["error"]["message"] or
            "nothing was created" in r["error"]["message"]), r   # owner_lost: stepped down first (lease 2 s)
    new = wait_for(lambda: owners([owner] + others, pname) and owners([owner] + others, pname)[0], 30, "an owner")
    wait_for(lambda: sync_owner(new, pname).get("instances_open"), 30, "its instances open")
    # the request may have been applied once etcd ran again: then the new owner made it from the record
    rec = etcd_get(etcd, f"/switchyard/pairs/{pname}/reverse")
    if rec:
        wait_reverse(new, pname, "collecting", 30)
    assert [d for d in [owner] + others if reverse(d, pname)] == ([new] if rec else [])
    if rec is None:
        r = others[0].admin_ok("create-reverse", pair=pname)
        assert etcd_get(etcd, f"/switchyard/pairs/{pname}/reverse")["start_position"] == r["start_position"]


@pytest.mark.parametrize("cmd", ["terminate", "create-reverse", "pause"])
def test_a_shutdown_answers_a_command_whose_etcd_put_is_pending(daemon, etcd, mariadb_pair, fresh,
                                                                cmd):  # noqa: F811
    """pause, terminate and create-reverse put their record in etcd before they answer (or act). A SIGTERM while
    etcd has not answered yet (every member stopped) answers the command: etcd may still record it; the daemon
    exits 0. Before, the admin connection was closed with no answer (create-reverse, pause) or the answer came
    only if etcd's own timeout ran out first. A 12 s lease: etcd's per-endpoint timeout (a third of it) and the
    lease both outlast the test's steps."""
    pname = f"q{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname, ttl_ms=12000)
    answer = {}

    def ask():
        try:
            args = {"pair": pname} if cmd == "create-reverse" else {"instance": f"{pname}/forward"}
            answer["reply"] = owner.admin(cmd, _timeout=30, **args)
        except Exception as e:                          # noqa: BLE001 (the old code: the socket closed)
            answer["error"] = repr(e)
    for m in etcd:
        os.kill(m.pid, signal.SIGSTOP)
    try:
        t = threading.Thread(target=ask)
        t.start()
        time.sleep(1)                                   # its put is in flight (etcd answers nothing)
        assert t.is_alive(), answer                     # not answered yet
        assert owner.stop() == 0
        t.join(30)
    finally:
        for m in etcd:
            os.kill(m.pid, signal.SIGCONT)
    assert "reply" in answer, answer
    r = answer["reply"]
    assert r["ok"] is False and r["error"]["code"] == "etcd_unreachable", r
    assert "switchyardd is shutting down" in r["error"]["message"], r
    assert ("etcd may still record it" in r["error"]["message"] or
            "etcd did not record it (switchyardd is shutting down)" in r["error"]["message"]), r


def test_a_terminate_does_not_delete_another_creations_record(daemon, etcd, mariadb_pair, fresh):  # noqa: F811
    """A terminate of the reverse instance deletes etcd's record of it only while the record is the one this
    owner knows (its mod_revision): a terminate etcd.c sends again late, after a newer create-reverse, must
    not delete that one's record (a new owner would then not make the new instance). Simulated by a record
    put by hand: the terminate is refused and the record stays."""
    pname = f"u{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    rkey = f"/switchyard/pairs/{pname}/reverse"
    others[0].admin_ok("create-reverse", pair=pname)
    rec = etcd_get(etcd, rkey)
    newer = dict(rec, created="elsewhere@1")
    etcd_put(etcd, rkey, json.dumps(newer))
    r = others[1].admin("terminate", instance=f"{pname}/reverse")
    assert r["ok"] is False and r["error"]["code"] == "owner_lost", r
    assert "the reverse instance's record changed meanwhile" in r["error"]["message"], r
    assert etcd_get(etcd, rkey) == newer
    assert reverse(owner, pname)["state"] == "collecting"
    # an earlier send of this terminate landed (timed out, applied later): the record gone, the held key
    # terminated. The terminate given again finds what it would have written and is done — before, it was
    # refused for good
    etcd_call(etcd, "/v3/kv/deleterange", {"key": b64(rkey)})
    etcd_put(etcd, f"/switchyard/pairs/{pname}/instances/reverse", json.dumps({"state": "terminated", "node": "x"}))
    r = others[1].admin_ok("terminate", instance=f"{pname}/reverse")
    assert r == {"instance": f"{pname}/reverse", "state": "terminated"}, r
    assert reverse(owner, pname)["state"] == "terminated"
    assert "etcd holds it terminated already" in owner.log()


def test_a_reverse_instance_whose_takeover_waits_for_business_can_be_terminated(daemon, etcd, mariadb_pair,
                                                                               fresh):  # noqa: F811
    """The owner and business die together: the new owner opens the forward instance and retries the reverse
    one's takeover (its destination is business) every second. terminate is the way out: recorded in etcd
    (the record deleted), the pending takeover ends, and a create-reverse works once business is back.
    Before, terminate answered unknown_instance (nothing open) and create-reverse reverse_exists."""
    b = mariadb_pair.business
    pname = f"t{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    others[0].admin_ok("create-reverse", pair=pname)
    wait_reverse(owner, pname, "collecting")
    owner.kill9()
    b.kill9()
    try:
        new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")
        wait_for(lambda: sync_owner(new, pname).get("instances_open"), 30, "the new owner opened its instances")
        assert reverse(new, pname) is None and sync_owner(new, pname)["reverse_takeover_pending"]
        r = others[0].admin_ok("terminate", instance=f"{pname}/reverse")
        assert r == {"instance": f"{pname}/reverse", "state": "terminated"}, r
        assert "reverse_takeover_pending" not in sync_owner(new, pname)
        assert etcd_get(etcd, f"/switchyard/pairs/{pname}/reverse") is None
        assert etcd_get(etcd, f"/switchyard/pairs/{pname}/instances/reverse")["state"] == "terminated"
        assert f"{pname}/reverse: terminated while its takeover was pending" in new.log()
    finally:
        b.start()
    time.sleep(3)                                       # the pending takeover was tried every second
    assert reverse(new, pname) is None
    assert "the reverse instance is taken over too" not in new.log()
    r = others[1].admin_ok("create-reverse", pair=pname)
    assert r["state"] == "collecting", r


@pytest.mark.parametrize("stale", ["unreadable", "before_records"])
def test_a_takeover_makes_the_reverse_instance_from_the_record_over_a_stale_state(daemon, etcd, mariadb_pair,
                                                                                  fresh, stale):  # noqa: F811
    """Node B holds a reverse instance state that is not the recorded creation's: a state file that cannot be
    read (before: B's takeover of the reverse instance failed every second, for good), or one from before
    creations were kept (created "") that starts elsewhere than a record put by hand with created "" (the
    upgrade recipe; before, that record matched any such state and B opened its stale one). The owner is
    killed with the third node stopped: B makes the instance from etcd's record."""
    pname = f"q{fresh}{stale[0]}"
    owner, (b_node, third) = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    rkey = f"/switchyard/pairs/{pname}/reverse"
    others_created = owner.admin_ok("create-reverse", pair=pname)
    if stale == "before_records":
        rec = dict(etcd_get(etcd, rkey), created="", node="")
        etcd_put(etcd, rkey, json.dumps(rec))
    state = Path(b_node.cwd) / "state" / "instances" / f"{pname}.reverse" / "state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text("{not json" if stale == "unreadable" else json.dumps(
        {"state": "collecting", "initial_sync_done": 1, "write_enabled": False, "start_position": "0-1-1",
         "last_error": "", "reason": "", "created": ""}))
    os.kill(third.pid, signal.SIGSTOP)
    try:
        owner.kill9()
        owns = lambda: sync_owner(b_node, pname).get("this_node_owns") and sync_owner(b_node, pname).get("instances_open")
        wait_for(owns, 30, "B owns the pair and opened its instances")
        wait_reverse(b_node, pname, "collecting", 30)
        assert "reverse_takeover_pending" not in sync_owner(b_node, pname)
        log = b_node.log()
        assert f"{pname}/reverse: made from etcd's record" in log, log[-3000:]
        if stale == "unreadable":
            assert "this node's state of it cannot be read" in log
        assert json.loads(state.read_text())["start_position"] == others_created["start_position"]
    finally:
        os.kill(third.pid, signal.SIGCONT)


def test_a_held_value_etcd_holds_but_switchyard_does_not_understand_keeps_the_instance_paused(
        daemon, etcd, mariadb_pair, fresh):  # noqa: F811
    """A held-state value that does not parse (written by hand, or by a later version) holds the instance:
    the new owner opens it paused rather than run what an operator may have stopped."""
    pname = f"h{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    etcd_put(etcd, f"/switchyard/pairs/{pname}/instances/forward", "{not json")
    owner.kill9()
    new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")
    wait_for(lambda: sync_owner(new, pname).get("instances_open"), 30, "the new owner opened the instances")
    assert forward(new, pname)["state"] == "paused"


def test_an_old_owners_pending_ddl_cannot_land_after_a_takeover(daemon, etcd, mariadb_pair, fresh,
                                                                tmp_path):  # noqa: F811
    """A DDL commits by itself: the fence checks the "pending" mark committed just before it, not the DDL. The
    owner's writer is held between that mark and its DDL (ADD COLUMN x; failpoint writer_before_ddl), the
    owner is SIGSTOPped past its lease, another node takes over (replays ADD COLUMN x) and applies a later
    DROP COLUMN x. On SIGCONT the old writer must not run its ADD COLUMN x on DR after the new owner's DROP:
    the takeover ended its control connection (it held the writer lock of its token) before forgetting
    the pending mark. DR's table ends as business's: no column x, the same rows."""
    b, dr = mariadb_pair
    pname = f"g{fresh}"
    three = partial(electable_three, daemon, etcd, mariadb_pair, fresh, pname)
    owner, others, me = stalled_three(three, tmp_path, "writer_before_ddl")
    c = app_conn(others[0], fresh)
    one(c, "INSERT INTO t VALUES (1, 'v0')")
    rows = lambda side: q(side, "SELECT id, v FROM t ORDER BY id", fresh)
    wait_for(lambda: rows(dr) == ((1, "v0"),), 30, "forward applied")
    cols = lambda side: q(side, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND "
                                "TABLE_NAME = 't' ORDER BY ORDINAL_POSITION", args=(fresh,))
    me.touch()
    b.sql("ALTER TABLE t ADD COLUMN x INT", database=fresh)
    wait_for(lambda: "failpoint writer_before_ddl: stalled" in owner.log(), 30, "the owner's DDL held")
    assert cols(dr) == (("id",), ("v",))
    os.kill(owner.pid, signal.SIGSTOP)
    try:
        new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 30, "another node owns")
        wait_for(lambda: running_forward(new, pname), 30, "the new owner's forward instance running")
        wait_for(lambda: cols(dr) == (("id",), ("v",), ("x",)), 30, "the new owner replayed ADD COLUMN x")
        b.sql("ALTER TABLE t DROP COLUMN x", database=fresh)
        wait_for(lambda: cols(dr) == (("id",), ("v",)), 30, "the new owner applied DROP COLUMN x")
        me.unlink()                                    # the old writer goes on the moment it runs again
    finally:
        os.kill(owner.pid, signal.SIGCONT)
    wait_for(lambda: "failpoint writer_before_ddl: released" in owner.log(), 10, "the old writer released")
    wait_for(lambda: not sync_owner(owner, pname).get("this_node_owns") and owner.pair_status(pname)["instances"]
             == [], 20, "the old owner runs no instance")
    one(c, "INSERT INTO t VALUES (2, 'after')")
    wait_for(lambda: rows(dr) == rows(b), 30, "DR equals business")
    assert cols(dr) == cols(b) == (("id",), ("v",))   # without the kill: x is back on DR
    assert f"{pname}/forward: a DDL was pending" in new.log() and "was ended before the takeover" in new.log()


def writer_lock_name(instance, token):
    """replay/mariadb_fence.c sy_mariadb_writer_lock_name: FNV-1a 64 of the instance id, and the token."""
    h = 1469598103934665603
    for ch in instance.encode():
        h = ((h ^ ch) * 1099511628211) % (1 << 64)
    return f"switchyard_writer_{h:016x}_{token}"


def test_a_writer_ends_an_earlier_session_of_its_own_that_still_holds_its_lock(daemon, etcd, mariadb_pair,
                                                                               fresh):  # noqa: F811
    """The writer's control connection holds a user lock named after its instance and owner token (how a
    takeover finds an old owner's DDL connection). A connection of this writer that the server still keeps
    (cut without the server noticing: it would hold the lock until wait_timeout, hours) must not keep the
    writer from starting again: the writer ends it and runs."""
    b, dr = mariadb_pair
    pname = f"k{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    inst = f"{pname}/forward"
    owner.admin_ok("pause", instance=inst)
    stale = conn(dr)                                     # the same user as the writer's
    with stale.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, 0), CONNECTION_ID()",
                    (writer_lock_name(inst, sync_owner(owner, pname)["owner_token"]),))
        got, stale_id = cur.fetchone()
    assert got == 1
    owner.admin_ok("start", instance=inst)
    c = app_conn(owner, fresh)
    one(c, "INSERT INTO t VALUES (1, 'after the start')")
    wait_for(lambda: q(dr, "SELECT v FROM t WHERE id = 1", fresh) == (("after the start",),), 30,
             "the started writer applies")
    assert (f"{inst}: an earlier session of this writer (connection {stale_id}) still held its lock on the "
            "destination: ended") in owner.log()
    with pytest.raises(pymysql.err.MySQLError):
        stale.ping(reconnect=False)


@pytest.mark.tsan  # threads: the switch thread, retiring instances, the etcd watch (a race found so)
def test_a_node_that_stepped_down_mid_switch_sends_commands_to_the_new_owner(daemon, etcd, mariadb_pair, fresh,
                                                                             tmp_path):  # noqa: F811
    """An owner whose switch is held (failpoint switch_after_cluster_hold) is SIGSTOPped past its lease: another
    node owns the pair. Run again, the old owner steps down but keeps its instances open until its switch ends.
    Meanwhile a command given to it must run on the new owner (it is sent there), and a request addressed to
    it through etcd is refused with owner_lost — not run on instances it no longer owns."""
    pname = f"m{fresh}"
    three = partial(electable_three, daemon, etcd, mariadb_pair, fresh, pname)
    owner, others, me = stalled_three(three, tmp_path, "switch_after_cluster_hold")
    old_name = sync_owner(owner, pname)["owner"]
    owner.admin_ok("create-reverse", pair=pname)
    wait_reverse(owner, pname, "collecting")
    me.touch()
    result = {}
    t = threading.Thread(target=lambda: result.update(r=owner.admin("switchover", _timeout=120, pair=pname)))
    t.start()
    try:
        wait_for(lambda: "failpoint switch_after_cluster_hold: stalled" in owner.log(), 30, "the switch held")
        lease0 = cluster(owner)["lease_id"]
        os.kill(owner.pid, signal.SIGSTOP)
        try:
            new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 30, "another node owns")
        finally:
            os.kill(owner.pid, signal.SIGCONT)
        wait_for(lambda: "no longer the owner while a switch runs: its instances stop now" in owner.log(), 20,
                 "the old owner stepped down")
        assert sync_owner(owner, pname)["this_node_owns"] is False and sync_owner(owner, pname)["instances_open"]
        # its writers stopped at once, the switch still held (before: they wrote on until the switch ended)
        wait_for(lambda: all(i["write"]["state"] == "stopped" and i["collection"]["state"] == "stopped"
                             for i in owner.pair_status(pname)["instances"]), 10, "the old owner's modules stopped")
        new_name = sync_owner(new, pname)["owner"]
        wait_for(lambda: cluster(owner)["registered"] and cluster(owner)["lease_id"] not in (0, lease0), 20,
                 "registered again under a new lease")
        def sent():                                        # its new registration may still settle
            r = owner.admin("lag-history", instance=f"{pname}/forward")
            return None if r.get("error", {}).get("code") == "owner_unreachable" else r
        r = wait_for(sent, 20, "the command sent (not refused for a missing lease)")
        assert f"cluster admin: 'lag-history' for {pname} from node {old_name}" in new.log(), r
        etcd_put(etcd, f"/switchyard/pairs/{pname}/requests/late", json.dumps(
            {"id": "late", "from": "test", "to": old_name, "cmd": "lag-history",
             "args": {"instance": f"{pname}/forward"}}))
        reply = wait_for(lambda: etcd_get(etcd, f"/switchyard/pairs/{pname}/replies/late"), 10, "the reply")
        assert reply == {"ok": False, "error": {"code": "owner_lost", "message": (
            f"node {old_name} no longer owns {pname} (it stepped down; its instances are closing): "
            "'lag-history' was not run; give it again (it goes to the new owner)")}}, reply
        assert new_name != old_name
    finally:
        me.unlink(missing_ok=True)
        t.join(120)
    # the held switch then failed at once (its writers gone), rolled back, said why
    assert result["r"]["ok"] is False and result["r"]["error"]["code"] == "owner_lost", result
    assert "this node stopped owning" in result["r"]["error"]["message"], result
    wait_for(lambda: owner.pair_status(pname)["instances"] == [], 30, "the old owner's instances closed")
    wait_for(lambda: running_forward(new, pname), 30, "the new owner runs the forward instance")


def tds_connect(host, port, user, password, db):
    pytds = pytest.importorskip("pytds")
    return pytds.connect(server=host, port=port, user=user, password=password, database=db, autocommit=True,
                         login_timeout=10, timeout=30, disable_connect_retry=True)


@pytest.fixture
def tds_pair():
    """Two TDS doubles (business, dr) with database tko, CDC on both, CDC-enabled dbo.t (id, v) on business;
    and sql(side, text): one statement, its rows."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "doubles"))
    from tds_fixtures import running_double
    pytest.importorskip("pytds")
    db = "tko"
    with running_double(cdc_delay=0.2) as business, running_double(cdc_delay=0.2) as dr:
        def sql(side, text, database=db):
            with tds_connect(side.host, side.port, side.user, side.password, database) as c, c.cursor() as cur:
                cur.execute(text)
                return cur.fetchall() if cur.description else None
        for side in (business, dr):
            sql(side, f"CREATE DATABASE {db}", None)
            sql(side, "EXEC sys.sp_cdc_enable_db")
        sql(business, "CREATE TABLE dbo.t (id int NOT NULL PRIMARY KEY, v nvarchar(40) NOT NULL)")
        sql(business, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N't', @role_name = NULL")
        yield business, dr, db, sql


def tds_nodes(daemon, etcd, tds_pair, pname, env_of=None):
    """Three nodes that may all run the SQL Server pair's sync (apply_threads 2, on_conflict = fail)."""
    business, dr, db, _ = tds_pair
    return [daemon(pair=pname, engine="sqlserver", business=f"{business.host}:{business.port}",
                   dr=f"{dr.host}:{dr.port}", admin_user=business.user, admin_password=business.password,
                   objects=f"{db}.*", apply_threads=2, on_conflict="fail", txn_drain_ms=500,
                   extra_ini=cluster_ini(etcd, f"{pname}-n{i}"), env=env_of(i) if env_of else None)
            for i in (1, 2, 3)]


def tds_node(daemon, etcd, tds_pair, pname, node, apply_threads, env=None):
    """A node (name pname-node) that may run the SQL Server pair's sync, with apply_threads workers
    (on_conflict = fail)."""
    business, dr, db, _ = tds_pair
    return daemon(pair=pname, engine="sqlserver", business=f"{business.host}:{business.port}",
                  dr=f"{dr.host}:{dr.port}", admin_user=business.user, admin_password=business.password,
                  objects=f"{db}.*", apply_threads=apply_threads, on_conflict="fail", txn_drain_ms=500,
                  extra_ini=cluster_ini(etcd, f"{pname}-{node}"), env=env)


def tds_client(d, pname, tds_pair):
    business, _, db, _ = tds_pair
    port = int(d.pair_status(pname)["listen"].rsplit(":", 1)[1])
    return tds_connect("127.0.0.1", port, business.user, business.password, db)


def test_a_sql_server_owner_killed_under_writes_is_taken_over_from_drs_checkpoint(tds_pair, daemon, etcd):
    """Three nodes may run a SQL Server pair's sync (TDS doubles); clients of the two others write; the owner
    is killed with -9: another node resumes from DR's switchyard.checkpoint rows (not its own empty state),
    replays what the dead owner may have applied idempotently (on_conflict = fail: a conflict there would
    fail the instance) and goes on: 0 client errors, the rows equal on both sides, DR's checkpoint names the
    new owner's token."""
    business, dr, db, sql = tds_pair
    pname = "tko"
    nodes = tds_nodes(daemon, etcd, tds_pair, pname)
    conns = {}

    def write(d, k, i):
        c = conns[k] = conns.get(k) or tds_client(d, pname, tds_pair)
        try:
            with c.cursor() as cur:
                cur.execute("INSERT INTO dbo.t (id, v) VALUES (%s, N'load')", (i,))
                if i % 3 == 0:
                    cur.execute("UPDATE dbo.t SET v = N'updated' WHERE id = %s", (i,))
        except Exception:
            conns.pop(k, None)
            raise
    new, takeover_s, acked, errors = kill9_owner_under_writes(nodes, pname, write)
    for c in conns.values():
        c.close()
    assert errors == [], errors[:5]
    rows = lambda side: sql(side, "SELECT id, v FROM dbo.t ORDER BY id")
    wait_for(lambda: rows(dr) == rows(business), 60, "DR equals business")
    assert set(acked) <= {r[0] for r in rows(dr)}
    fw = [i for i in new.pair_status(pname)["instances"] if i["direction"] == "forward"][0]
    assert fw["state"] == "running" and fw["last_error"] is None, fw
    assert fw["initial_sync"]["done_rows"] == 0, fw     # resumed, not copied all over again
    assert "taken over from the destination's checkpoint" in new.log()
    assert "replayed idempotently (taken over)" in new.log()
    token = sync_owner(new, pname)["owner_token"]
    assert sql(dr, f"SELECT DISTINCT owner_token FROM switchyard.checkpoint WHERE instance = N'{pname}/forward'") \
        == [(token,)]
    assert takeover_s < 15, takeover_s


def stop_owner_past_a_takeover(owner, others, pname, point, stall_file, replayed, write_newer, applied):
    """The owner, its writer held at failpoint `point`, is SIGSTOPped past its lease; another node takes over,
    replays the held change (replayed()) and applies a newer one (write_newer(), applied()); the owner runs
    again with its writer released. Returns (new owner, its token) once the old owner says it lost the pair."""
    os.kill(owner.pid, signal.SIGSTOP)
    try:
        new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 30, "another node owns")
        wait_for(lambda: running_forward(new, pname), 30, "the new owner's forward instance running")
        wait_for(replayed, 30, "the new owner replayed the stale change")
        write_newer()
        wait_for(applied, 30, "the new owner applied the newer value")
        stall_file.unlink()                             # the old writer goes on the moment it runs again
    finally:
        os.kill(owner.pid, signal.SIGCONT)
    wait_for(lambda: f"failpoint {point}: released" in owner.log(), 10, "the old writer released")
    token = sync_owner(new, pname)["owner_token"]
    wait_for(lambda: f"lost ownership of pair {pname} to token {token}" in owner.log(), 20, "the old writer fenced")
    return new, token


def test_an_old_sql_server_owner_resumed_after_a_takeover_is_fenced_at_the_destination(tds_pair, daemon, etcd,
                                                                                      tmp_path):
    """As MariaDB's: the owner's apply worker holds a stale image of a hot row, taken but not sent (failpoint
    sqlserver_write_share_taken); the owner is SIGSTOPped past its lease, another node takes over, replays it
    and applies a newer value. On SIGCONT the old worker sends its transaction at once, but its checkpoint
    UPDATE finds the new owner's token (0 rows): rolled back, the old owner says it lost the pair, DR keeps
    'newer' (equal to business), no client error. Without the fence DR ends with 'stale'."""
    business, dr, db, sql = tds_pair
    pname = "tkf"
    point = "sqlserver_write_share_taken"
    owner, others, me = stalled_three(lambda env_of: elected(tds_nodes(daemon, etcd, tds_pair, pname,
                                                                       env_of=env_of), pname), tmp_path, point)
    c = tds_client(others[0], pname, tds_pair)              # through a node that stays up: no client error

    def one(text):
        with c.cursor() as cur:
            cur.execute(text)
    one("INSERT INTO dbo.t (id, v) VALUES (1, N'v0')")
    v = lambda side: sql(side, "SELECT v FROM dbo.t WHERE id = 1")
    wait_for(lambda: v(dr) == [("v0",)], 30, "forward applied")
    me.touch()
    one("UPDATE dbo.t SET v = N'stale' WHERE id = 1")
    wait_for(lambda: f"failpoint {point}: stalled" in owner.log(), 30, "the owner's writer held at the failpoint")
    new, token = stop_owner_past_a_takeover(owner, others, pname, point, me, lambda: v(dr) == [("stale",)],
                                            lambda: one("UPDATE dbo.t SET v = N'newer' WHERE id = 1"),
                                            lambda: v(dr) == [("newer",)])
    one("INSERT INTO dbo.t (id, v) VALUES (2, N'after')")
    rows = lambda side: sql(side, "SELECT id, v FROM dbo.t ORDER BY id")
    wait_for(lambda: rows(dr) == rows(business), 30, "DR equals business")   # without the fence: 'stale' on DR
    assert rows(dr) == [(1, "newer"), (2, "after")]
    assert sync_owner(owner, pname)["fenced"] == {"lost_to_token": token}
    assert "fenced" not in sync_owner(new, pname)
    c.close()

def one_worker_on_dr(daemon, etcd, tds_pair, pname):
    """The pair's first owner (node n0, one worker) with row 1 applied: DR's checkpoint rows are one worker's.
    Returns it and ckpt(): DR's checkpoint rows of the forward instance as (workers, owner_token)."""
    _, dr, _, sql = tds_pair
    first = tds_node(daemon, etcd, tds_pair, pname, "n0", 1)
    wait_for(lambda: running_forward(first, pname), 60, "the first owner's forward instance running")
    c = tds_client(first, pname, tds_pair)
    with c.cursor() as cur:
        cur.execute("INSERT INTO dbo.t (id, v) VALUES (1, N'one worker')")
    c.close()
    ckpt = lambda: sql(dr, f"SELECT workers, owner_token FROM switchyard.checkpoint WHERE instance = N'{pname}/forward'")
    wait_for(lambda: sql(dr, "SELECT v FROM dbo.t WHERE id = 1") == [("one worker",)] and len(ckpt()) == 1, 30,
             "applied by one worker")
    return first, ckpt


def test_an_old_sql_server_owner_cannot_rewrite_drs_checkpoint_rows_a_newer_owner_claimed(tds_pair, daemon, etcd,
                                                                                         tmp_path):
    """A writer whose apply_threads differs from the rows on DR rewrites them (one per worker) after its claim.
    The owner is held just before that rewrite (failpoint sqlserver_checkpoint_rewrite) and SIGSTOPped past its
    lease; another node takes over and applies. On SIGCONT the old writer's rewrite (one batch under XACT_ABORT)
    deletes only rows no newer owner claimed — none — so its INSERT of worker 0 hits the primary key, the
    whole batch is rolled back and it stops, fenced; DR's rows keep the new owner's token. Before c5adb87 it
    deleted the new owner's rows and wrote its own, with its older token, and was not fenced."""
    business, dr, db, sql = tds_pair
    pname = "tkr"
    point = "sqlserver_checkpoint_rewrite"
    first, ckpt = one_worker_on_dr(daemon, etcd, tds_pair, pname)
    stall = {i: tmp_path / f"stall-n{i}" for i in (1, 2)}
    for f in stall.values():
        f.touch()
    nodes = [tds_node(daemon, etcd, tds_pair, pname, f"n{i}", 2,
                      env={"SY_STALL_POINT": point, "SY_STALL_FILE": str(stall[i])}) for i in (1, 2)]
    for d in nodes:
        wait_for(lambda: confirmed(d, pname, 1), 20, "the shared epoch confirmed and watched")
    first.kill9()
    held = wait_for(lambda: next((d for d in nodes if f"failpoint {point}: stalled" in d.log()), None), 60,
                    "the new owner's writer held before its rewrite")
    other = next(d for d in nodes if d is not held)
    stall[nodes.index(other) + 1].unlink()
    os.kill(held.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: owners([other], pname), 30, "the other node owns")
        wait_for(lambda: running_forward(other, pname), 60, "its forward instance running")
        c = tds_client(other, pname, tds_pair)
        with c.cursor() as cur:
            cur.execute("INSERT INTO dbo.t (id, v) VALUES (2, N'two workers')")
        c.close()
        wait_for(lambda: sql(dr, "SELECT COUNT(*) FROM dbo.t") == [(2,)], 30, "the other node applied")
        stall[nodes.index(held) + 1].unlink()            # the old writer goes on the moment it runs again
    finally:
        os.kill(held.pid, signal.SIGCONT)
    wait_for(lambda: f"failpoint {point}: released" in held.log(), 10, "the old writer released")
    token = sync_owner(other, pname)["owner_token"]
    wait_for(lambda: f"lost ownership of pair {pname} to token {token}" in held.log(), 20, "the old writer fenced")
    assert "before its rows were rewritten" in held.log()
    assert ckpt() == [(2, token), (2, token)], ckpt()
    c = tds_client(other, pname, tds_pair)
    with c.cursor() as cur:
        cur.execute("INSERT INTO dbo.t (id, v) VALUES (3, N'after')")
    c.close()
    rows = lambda side: sql(side, "SELECT id, v FROM dbo.t ORDER BY id")
    wait_for(lambda: rows(dr) == rows(business), 30, "DR equals business")
    assert ckpt() == [(2, token), (2, token)], ckpt()


def take_over_held(daemon, etcd, tds_pair, pname, first, apply_threads, point, stall):
    """Node n1 (apply_threads workers), its writer held at failpoint `point` while file `stall` exists, takes
    the pair over from `first` (killed with -9). Returns it once its writer is held there."""
    stall.touch()
    d = tds_node(daemon, etcd, tds_pair, pname, "n1", apply_threads,
                 env={"SY_STALL_POINT": point, "SY_STALL_FILE": str(stall)})
    wait_for(lambda: confirmed(d, pname, 1), 20, "the shared epoch confirmed and watched")
    first.kill9()
    wait_for(lambda: f"failpoint {point}: stalled" in d.log(), 60, f"the new owner's writer held at {point}")
    return d


def test_an_old_sql_server_owner_cannot_rewrite_the_echo_rows_of_a_newer_owner(tds_pair, daemon, etcd, tmp_path):
    """A writer rewrites its instance's switchyard.echo rows (one per worker) at its start, after its claim. The
    owner (one worker, as the rows on DR: no checkpoint rewrite needed) is held there (failpoint
    sqlserver_checkpoint_rewrite) and SIGSTOPped past its lease; a two-worker node takes over and applies.
    On SIGCONT the old writer's rewrite, fenced with the checkpoint rows in one transaction, is rolled back:
    it stops, fenced, and the new owner's echo rows (workers 0 and 1) stay, so every transaction of its
    worker 1 still marks itself as an echo. Before, the echo rows were rewritten outside any fence: the old
    writer left only worker 0's, and the new owner's worker 1 updated none (none of its transactions marked
    as echoes)."""
    business, dr, db, sql = tds_pair
    pname = "tke"
    inst = f"N'{pname}/forward'"
    point = "sqlserver_checkpoint_rewrite"
    first, ckpt = one_worker_on_dr(daemon, etcd, tds_pair, pname)
    echo = lambda: dict(sql(dr, f"SELECT worker, n FROM switchyard.echo WHERE instance = {inst} ORDER BY worker"))
    stall = tmp_path / "stall"
    old = take_over_held(daemon, etcd, tds_pair, pname, first, 1, point, stall)
    new = tds_node(daemon, etcd, tds_pair, pname, "n2", 2)
    wait_for(lambda: confirmed(new, pname, 1), 20, "the shared epoch confirmed and watched")
    os.kill(old.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: owners([new], pname), 30, "the two-worker node owns")
        wait_for(lambda: running_forward(new, pname), 60, "its forward instance running")
        token = sync_owner(new, pname)["owner_token"]
        wait_for(lambda: ckpt() == [(2, token), (2, token)], 30, "the rows rewritten for two workers")
        assert sorted(echo()) == [0, 1], echo()
        stall.unlink()                                  # the old writer goes on the moment it runs again
    finally:
        os.kill(old.pid, signal.SIGCONT)
    wait_for(lambda: f"failpoint {point}: released" in old.log(), 10, "the old writer released")
    wait_for(lambda: f"lost ownership of pair {pname} to token {token}" in old.log() or sorted(echo()) != [0, 1], 20,
             "the old writer fenced")
    assert sorted(echo()) == [0, 1], echo()
    assert f"lost ownership of pair {pname} to token {token}" in old.log()
    assert ckpt() == [(2, token), (2, token)], ckpt()
    before = echo()
    c = tds_client(new, pname, tds_pair)
    with c.cursor() as cur:
        for i in range(10, 18):
            cur.execute("INSERT INTO dbo.t (id, v) VALUES (%s, N'two workers')", (i,))
    c.close()
    rows = lambda side: sql(side, "SELECT id, v FROM dbo.t ORDER BY id")
    wait_for(lambda: rows(dr) == rows(business), 30, "DR equals business")
    after = echo()
    assert sorted(after) == [0, 1] and all(after[w] > before[w] for w in (0, 1)), (before, after)


def test_a_sql_server_writer_claims_drs_checkpoint_rows_again_after_an_older_owners_rewrite(tds_pair, daemon, etcd,
                                                                                           tmp_path):
    """A new owner's writer claims DR's checkpoint rows (UPDATE ... SET owner_token = its token WHERE
    owner_token <= it), then reads them; an older owner's rewrite of the rows (its DELETE ... owner_token <=
    its token and INSERTs) commits in between. The claim found none of them (here: there were none, the new
    owner's initial copy deleted the first owner's; on the MVCC double a claim that waited for the rewrite's
    locks finds none either), and the rows read name the older owner. The writer claims again and runs.
    Before, 0 rows claimed and rows read meant a newer owner: the NEWEST owner fenced itself for good.
    The test plays the older owner (token: the first owner's), its rewrite sent while the new writer is held
    between its claim and its read (failpoint sqlserver_checkpoint_claimed)."""
    business, dr, db, sql = tds_pair
    pname = "tkc"
    inst = f"N'{pname}/forward'"
    point = "sqlserver_checkpoint_claimed"
    first = tds_node(daemon, etcd, tds_pair, pname, "n0", 1)
    wait_for(lambda: running_forward(first, pname), 60, "the first owner's forward instance running")
    ckpt = lambda: sql(dr, f"SELECT worker, workers, owner_token FROM switchyard.checkpoint WHERE instance = {inst} "
                           "ORDER BY worker")
    wait_for(lambda: sql(dr, "SELECT OBJECT_ID('switchyard.checkpoint')") != [(None,)] and len(ckpt()) == 1, 30,
             "the first owner's checkpoint row")
    old = ckpt()[0][2]
    stall = tmp_path / "stall"
    new = take_over_held(daemon, etcd, tds_pair, pname, first, 2, point, stall)
    assert ckpt() == [], ckpt()                     # nothing claimed: the initial copy deleted the first owner's
    token = sync_owner(new, pname)["owner_token"]
    assert old < token
    sql(dr, f"SET XACT_ABORT ON; BEGIN TRANSACTION; DELETE FROM switchyard.checkpoint WHERE instance = {inst} "
            f"AND owner_token <= {old}; INSERT INTO switchyard.checkpoint (instance, worker, workers, seq, position, "
            f"owner_token) VALUES ({inst}, 0, 1, 0, '', {old}); COMMIT TRANSACTION")
    stall.unlink()
    wait_for(lambda: ckpt() == [(0, 2, token), (1, 2, token)] or "lost ownership" in new.log(), 30,
             "the rows claimed and rewritten")
    assert "lost ownership" not in new.log()
    assert f"rewritten by an older owner (token {old}) after this writer's claim: claimed again" in new.log()
    c = tds_client(new, pname, tds_pair)
    with c.cursor() as cur:
        cur.execute("INSERT INTO dbo.t (id, v) VALUES (1, N'applied')")
    c.close()
    wait_for(lambda: sql(dr, "SELECT id, v FROM dbo.t") == [(1, "applied")], 30, "applied by the new owner")
    assert ckpt() == [(0, 2, token), (1, 2, token)], ckpt()


def test_a_sql_server_takeover_claims_rows_an_older_owner_rewrote_while_it_waited(tds_pair, daemon, etcd,
                                                                                 tmp_path):
    """A takeover claims DR's checkpoint rows (UPDATE ... SET owner_token = its token WHERE owner_token <= it)
    before it reads them. On the MVCC double, a claim that waited for an older owner's rewrite of the rows
    (DELETE + INSERT, committed after the claim began) finds none of them, and the rows it then reads name the
    older owner: before, the takeover moved them down without its token, so the older owner's writer could go
    on committing until the new writer claimed them. The takeover's own UPDATE claims them now. The test holds
    such a rewrite open across the claim; the new node is held after its takeover (failpoint takeover_taken):
    DR's rows name its token there."""
    business, dr, db, sql = tds_pair
    pname = "tkt"
    inst = f"N'{pname}/forward'"
    first, ckpt = one_worker_on_dr(daemon, etcd, tds_pair, pname)
    old = ckpt()[0][1]
    rows = sql(dr, f"SELECT worker, workers, seq, position FROM switchyard.checkpoint WHERE instance = {inst}")
    hold = tds_connect(dr.host, dr.port, dr.user, dr.password, db)
    cur = hold.cursor()
    cur.execute("BEGIN TRANSACTION")
    cur.execute(f"DELETE FROM switchyard.checkpoint WHERE instance = {inst} AND owner_token <= {old}")
    for worker, workers, seq, position in rows:
        cur.execute(f"INSERT INTO switchyard.checkpoint (instance, worker, workers, seq, position, owner_token) "
                    f"VALUES ({inst}, {worker}, {workers}, {seq}, '{position}', {old})")
    stall = tmp_path / "stall"
    stall.touch()
    new = tds_node(daemon, etcd, tds_pair, pname, "n1", 1,
                   env={"SY_STALL_POINT": "takeover_taken", "SY_STALL_FILE": str(stall)})
    try:
        wait_for(lambda: confirmed(new, pname, 1), 20, "the shared epoch confirmed and watched")
        first.kill9()
        wait_for(lambda: sync_owner(new, pname).get("this_node_owns"), 20, "the new node owns the pair")
        time.sleep(2)                                   # its claim waits for the rewrite's locks meanwhile
        cur.execute("COMMIT TRANSACTION")
        wait_for(lambda: "failpoint takeover_taken: stalled" in new.log(), 30, "the takeover done, held")
        token = sync_owner(new, pname)["owner_token"]
        assert old < token and ckpt() == [(1, token)], (old, token, ckpt())
    finally:
        hold.close()
        stall.unlink()
    c = tds_client(new, pname, tds_pair)
    with c.cursor() as cur:
        cur.execute("INSERT INTO dbo.t (id, v) VALUES (2, N'after the takeover')")
    c.close()
    wait_for(lambda: sql(dr, "SELECT id FROM dbo.t ORDER BY id") == [(1,), (2,)], 30, "applied by the new owner")


def mongo_nodes(mongo_daemon, etcd, ferretdb_pair, db, pname, env_of=None, count=3):
    """Database db dropped on both FerretDB servers (and the instance's checkpoint and copy documents), then
    `count` nodes that may all run the pair's sync (on_conflict = fail)."""
    for s in ferretdb_pair:
        with s.client() as c:
            c.drop_database(db)
            c["switchyard"]["checkpoints"].delete_many({"_id": f"{pname}/forward"})
            c["switchyard"]["initial_sync"].delete_many({"_id": f"{pname}/forward"})
    return [mongo_daemon(pair=pname, objects=f"{db}.*", on_conflict="fail", txn_drain_ms=500,
                         extra_ini=cluster_ini(etcd, f"{pname}-n{i}"), env=env_of(i) if env_of else None)
            for i in range(1, count + 1)]


def mongo_client(d, pname, b):
    port = int(d.pair_status(pname)["listen"].rsplit(":", 1)[1])
    return sandbox.pymongo4().MongoClient("127.0.0.1", port, username=b.admin_user, password=b.admin_password,
                                          authSource="admin", serverSelectionTimeoutMS=10000, socketTimeoutMS=30000)


def test_a_mongodb_owner_killed_under_writes_is_taken_over_from_drs_checkpoint(etcd, ferretdb_pair, mongo_daemon):
    """The same for a MongoDB pair (FerretDB): another node resumes from DR's switchyard.checkpoints document
    (its initial copy does not run again), replays what the dead owner may have applied idempotently (an
    update of a missing document there is no conflict, on_conflict = fail) and goes on: 0 client errors, the
    documents equal on both sides, DR's checkpoint names the new owner's token."""
    b, dr = ferretdb_pair
    db, pname = "tkm", "tkm"
    nodes = mongo_nodes(mongo_daemon, etcd, ferretdb_pair, db, pname)
    clients = {}

    def write(d, k, i):
        c = clients[k] = clients.get(k) or mongo_client(d, pname, b)
        coll = c[db]["t"]
        coll.insert_one({"_id": i, "v": "load"})
        if i % 3 == 0:
            coll.update_one({"_id": i}, {"$set": {"v": "updated"}})
    try:
        def checkpointed():
            with dr.client() as c:
                return c["switchyard"]["checkpoints"].find_one({"_id": f"{pname}/forward"}) is not None
        new, takeover_s, acked, errors = kill9_owner_under_writes(nodes, pname, write, checkpointed=checkpointed)
    finally:
        for c in clients.values():
            c.close()
    assert errors == [], errors[:5]

    def docs(side):
        with side.client() as c:
            return list(c[db]["t"].find().sort("_id", 1))
    # FerretDB reads its whole oplog for every poll: under a loaded box (two test workers) the new owner's
    # catch-up took more than 60 s twice in ~8 full runs, with no error anywhere; the forward's status is in
    # the message if it ever does not converge
    fwd = lambda: [i for i in new.pair_status(pname)["instances"] if i["direction"] == "forward"][0]
    deadline = time.monotonic() + 180
    while docs(dr) != docs(b):
        assert time.monotonic() < deadline, f"DR never equalled business in 180 s: the new owner's forward {fwd()}"
        time.sleep(0.5)
    assert set(acked) <= {d["_id"] for d in docs(dr)}
    fw = fwd()
    assert fw["state"] == "running" and fw["last_error"] is None, fw
    assert fw["initial_sync"]["done_rows"] == 0, fw     # resumed, not copied all over again
    assert "taken over from the destination's checkpoint" in new.log()
    assert "replayed idempotently (taken over)" in new.log()
    with dr.client() as c:
        ckpt = c["switchyard"]["checkpoints"].find_one({"_id": f"{pname}/forward"})
    assert ckpt["owner_token"] == sync_owner(new, pname)["owner_token"], ckpt
    assert takeover_s < 15, takeover_s


def test_a_mongodb_takeover_catches_up_on_an_entry_that_landed_late_before_drs_checkpoint(
        etcd, ferretdb_pair, mongo_daemon):
    """FerretDB stores an oplog entry after a newer one now and then. One that lands just before the owner dies,
    after its collector's last poll, is older than what DR's checkpoint covers and was taken by nobody: the new
    owner resumed after the checkpoint and the acknowledged write never reached DR (seen as a flaky DR one
    change short). Simulated by stopping the owner (SIGSTOP: its collector reads nothing more) and writing
    entries shaped like FerretDB's into business's oplog directly, 2-3 s behind DR's checkpoint, then kill -9:
    an insert of a new document ("late"), and a stale image of a document ("x") whose newer entry DR has.
    The new owner catches up on the newest entry per document in the 5 s up to the checkpoint: "late" reaches
    DR, "x" keeps its newest value (a plain re-read in oplog order would have put the stale image last), and
    nothing applied again counts as a conflict (on_conflict = fail). Before, "late" never reached DR."""
    sandbox.pymongo4()                                  # pymongo 4's bson on the path
    import bson
    b, dr = ferretdb_pair
    db, pname = "tkr", "tkr"
    owner, others = elected(mongo_nodes(mongo_daemon, etcd, ferretdb_pair, db, pname), pname)
    client = mongo_client(others[0], pname, b)
    try:
        client[db].t.insert_one({"_id": "x", "v": "old"})
        client[db].t.update_one({"_id": "x"}, {"$set": {"v": "newest"}})
        client[db].t.insert_one({"_id": "newer"})
    finally:
        client.close()
    with b.client() as c:
        x_ts = max(e["ts"] for e in c.local["oplog.rs"].find({"ns": f"{db}.t", "o2._id": "x"}, {"ts": 1}))
        newer_ts = next(c.local["oplog.rs"].find({"ns": f"{db}.t", "o._id": "newer"}, {"ts": 1}))["ts"]

    def checkpoint():
        with dr.client() as c:
            doc = c["switchyard"]["checkpoints"].find_one({"_id": f"{pname}/forward"})
            return doc and tuple(int(p) for p in doc["position"].split(":"))
    wait_for(lambda: (checkpoint() or (0, 0)) >= (newer_ts.time, newer_ts.inc), 60, "DR's checkpoint past 'newer'")
    os.kill(owner.pid, signal.SIGSTOP)                  # its collector takes nothing more
    ckpt = checkpoint()
    assert x_ts.time > ckpt[0] - 4, (x_ts, ckpt)         # x's newest entry lies in the 5 s before the checkpoint

    def entry(op, ts, doc, o2=None):
        e = {"_id": bson.ObjectId(), "op": op, "ns": f"{db}.t", "ts": ts, "o": doc, "t": 1, "v": 2,
             "wall": datetime.datetime.fromtimestamp(ts.time, datetime.timezone.utc)}
        if o2 is not None:
            e["o2"] = o2
        return e
    with b.client() as c:
        c.local["oplog.rs"].insert_many([
            entry("i", bson.Timestamp(ckpt[0] - 2, 999999), {"_id": "late", "v": "landed late"}),
            entry("u", bson.Timestamp(x_ts.time - 1, 999999), {"_id": "x", "v": "stale"},
                  {"_id": "x"}),
        ])
    owner.kill9()
    new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")

    def docs(side):
        with side.client() as c:
            return list(c[db]["t"].find().sort("_id", 1))
    want = [{"_id": "late", "v": "landed late"}, {"_id": "newer"}, {"_id": "x", "v": "newest"}]
    fw = lambda: [i for i in new.pair_status(pname)["instances"] if i["direction"] == "forward"][0]  # noqa: E731
    deadline = time.monotonic() + 180                # FerretDB reads its whole oplog per poll (see above)
    while docs(dr) != want:
        assert time.monotonic() < deadline, f"DR {docs(dr)}, the new owner's forward {fw()}"
        time.sleep(0.5)
    assert fw()["state"] == "running" and fw()["last_error"] is None, fw()
    assert "taken over from the destination's checkpoint" in new.log()
    sent = re.search(r"(\d+) document\(s\) whose newest oplog entry lies in the 5 s up to it sent again", new.log())
    assert sent and int(sent.group(1)) >= 2, new.log()[-3000:]        # late and x at least


def test_a_node_that_owns_a_mongodb_pair_again_collects_again_what_its_emptied_spool_held(
        etcd, ferretdb_pair, mongo_daemon, tmp_path):
    """A takeover empties the spool down to DR's checkpoint, so the set of oplog entries the collector took
    before its last clean stop (mongo_taken.json, which described that spool) must go with it. One node; its
    forward writer held with a batch taken (failpoint mongo_write_batch_taken) so "held" is collected but not
    applied; the node stops cleanly (leaving the set; the writer, released during the stop, sends nothing),
    starts again and takes the pair over from DR's checkpoint, which lies behind "held". Before, its collector
    took the set over and skipped "held" as taken: it never reached DR."""
    b, dr = ferretdb_pair
    db, pname = "tko", "tko"
    stall = tmp_path / "stall"
    env = {"SY_STALL_POINT": "mongo_write_batch_taken", "SY_STALL_FILE": str(stall)}
    node, _ = elected(mongo_nodes(mongo_daemon, etcd, ferretdb_pair, db, pname, env_of=lambda i: env, count=1),
                      pname)
    client = mongo_client(node, pname, b)
    client[db].t.insert_one({"_id": 1})
    with dr.client() as c:
        wait_for(lambda: c[db].t.count_documents({}) == 1, 60, "forward applied")
    stall.touch()
    client[db].t.insert_one({"_id": "held"})
    client.close()
    wait_for(lambda: "failpoint mongo_write_batch_taken: stalled" in node.log(), 30, "the writer held")
    with b.client() as c:
        held = next(c.local["oplog.rs"].find({"ns": f"{db}.t", "o._id": "held"}, {"ts": 1}))["ts"]
    fw = lambda: [i for i in node.pair_status(pname)["instances"] if i["direction"] == "forward"][0]  # noqa: E731
    wait_for(lambda: tuple(int(p) for p in fw()["collection"]["position"].split(":")) >= (held.time, held.inc), 30,
             "'held' collected")
    stopped = {}
    t = threading.Thread(target=lambda: stopped.update(rc=node.stop()))
    t.start()
    wait_for(lambda: "signal 15: shutting down" in node.log(), 10, "the stop begun")
    stall.unlink()                                      # the writer sees the stop before it sends anything
    t.join(30)
    assert stopped.get("rc") == 0, stopped
    with dr.client() as c:
        assert c[db].t.count_documents({"_id": "held"}) == 0
    node.restart()
    wait_for(lambda: sync_owner(node, pname).get("this_node_owns") and running_forward(node, pname), 60,
             "the node owns the pair again, its forward instance running")
    with dr.client() as c:
        wait_for(lambda: c[db].t.count_documents({"_id": "held"}) == 1, 60,
                 "'held' on DR (before: skipped as taken by the collector's set of before the takeover)")
    assert "taken over from the destination's checkpoint" in node.log()


@pytest.mark.nosan      # the takeover runs under ASan with pymongo; a fourth driver only adds time
def test_the_nodejs_mongodb_driver_writes_on_across_a_kill9_of_the_sync_owner(etcd, ferretdb_pair, mongo_daemon):
    """The official Node.js MongoDB driver (tests/clients/node-mongo, its `loop` mode: 4 writers inserting a
    document, then $inc-ing it) through a node that stays up while the node that owns the synchronization is
    killed with -9 and another takes it over: 0 driver errors, every acknowledged insert and $inc on DR, DR
    equal to business — a client not used with a cluster before (pymongo was)."""
    b, dr = ferretdb_pair
    db, pname = "tkn", "tkn"
    node_client = installed_client("node")
    owner, others = elected(mongo_nodes(mongo_daemon, etcd, ferretdb_pair, db, pname), pname)
    port = int(others[0].pair_status(pname)["listen"].rsplit(":", 1)[1])
    uri = (f"mongodb://{quote(b.admin_user, safe='')}:{quote(b.admin_password, safe='')}@127.0.0.1:{port}/"
           f"?authSource=admin&authMechanism=SCRAM-SHA-256")
    p = subprocess.Popen([node_client, "loop", uri, db, "4"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        time.sleep(1)
        owner.kill9()
        new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")
        wait_for(lambda: running_forward(new, pname), 30, "the new owner's forward instance running")
        time.sleep(2)                                   # the loop goes on under the new owner
    finally:
        res = loop_result(p)
    assert res["errors"] == [], res["errors"][:5]
    inserted = [a for a in res["acked"] if not a.endswith("+inc")]
    incremented = {a[:-4] for a in res["acked"] if a.endswith("+inc")}
    assert len(inserted) > 20, len(inserted)

    def docs(side):
        with side.client() as c:
            return {x["_id"]: x["n"] for x in c[db].nodeloop.find({}, {"n": 1})}
    wait_for(lambda: docs(dr) == docs(b), 180, "DR equal to business")   # FerretDB: whole-oplog reads
    on_dr = docs(dr)
    assert not [a for a in inserted if a not in on_dr]
    assert not [a for a in incremented if on_dr.get(a) != 1]


def test_an_old_mongodb_owner_resumed_after_a_takeover_is_fenced_before_its_next_batch(etcd, ferretdb_pair,
                                                                                        mongo_daemon, tmp_path):
    """What the MongoDB fence covers (docs/cluster.md): the owner's writer holds a batch with a hot document's
    stale image (failpoint mongo_write_batch_taken, before the batch's token read); the owner is SIGSTOPped
    past its lease, another node takes over, replays it and applies a newer value. On SIGCONT the old writer
    reads DR's checkpoint token before writing anything, finds the new owner's and stops: DR keeps 'newer'
    (equal to business), the old owner says it lost the pair, no client error. Without the read DR ends with
    'stale'."""
    b, dr = ferretdb_pair
    db, pname = "tkf", "tkf"
    point = "mongo_write_batch_taken"
    owner, others, me = stalled_three(lambda env_of: elected(mongo_nodes(mongo_daemon, etcd, ferretdb_pair, db,
                                                                         pname, env_of=env_of), pname),
                                      tmp_path, point)
    client = mongo_client(others[0], pname, b)           # through a node that stays up: no client error
    coll = client[db]["t"]

    def v(side):
        with side.client() as c:
            d = c[db]["t"].find_one({"_id": 1})
            return d and d["v"]
    coll.insert_one({"_id": 1, "v": "v0"})
    wait_for(lambda: v(dr) == "v0", 30, "forward applied")
    me.touch()
    coll.update_one({"_id": 1}, {"$set": {"v": "stale"}})
    wait_for(lambda: f"failpoint {point}: stalled" in owner.log(), 30, "the owner's writer held at the failpoint")
    new, token = stop_owner_past_a_takeover(owner, others, pname, point, me, lambda: v(dr) == "stale",
                                            lambda: coll.update_one({"_id": 1}, {"$set": {"v": "newer"}}),
                                            lambda: v(dr) == "newer")
    coll.insert_one({"_id": 2, "v": "after"})

    def docs(side):
        with side.client() as c:
            return list(c[db]["t"].find().sort("_id", 1))
    wait_for(lambda: docs(dr) == docs(b), 30, "DR equals business")     # without the read: 'stale' on DR
    assert docs(dr) == [{"_id": 1, "v": "newer"}, {"_id": 2, "v": "after"}]
    assert sync_owner(owner, pname)["fenced"] == {"lost_to_token": token}
    assert "fenced" not in sync_owner(new, pname)
    client.close()


def test_a_failovers_tail_outlives_the_owner_that_ran_it(daemon, etcd, mariadb_pair, fresh):  # noqa: F811
    """The owner fails over (business dead) with a transaction business committed that the forward collector
    never spooled (the forward instance was paused): the tail. The owner is then killed before the tail is
    resolved. The new owner must know the tail (kept in etcd): its forward instance stays paused for it, it
    finds the tail once business answers, and `resolve-tail --discard` reverts it on business; the tail's row
    never reaches DR. Before, the new owner knew of no tail and its forward instance collected business's
    binlog from DR's checkpoint on: the tail would have been replayed into DR at the next switchback."""
    b, dr = mariadb_pair
    pname = f"u{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    c = app_conn(others[0], fresh)
    one(c, "INSERT INTO t VALUES (1, 'replicated')")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((1,),), 30, "forward applied")
    others[0].admin_ok("pause", instance=f"{pname}/forward")
    b.sql("INSERT INTO t VALUES (2, 'the tail')", database=fresh)           # committed, never collected
    b.kill9()
    try:
        r = others[0].admin_ok("failover", pair=pname)
        assert r["active_side"] == "dr", r
        rec = wait_for(lambda: etcd_get(etcd, f"/switchyard/pairs/{pname}/tail"), 10, "the tail kept in etcd")
        assert rec["collected_position"] and rec["node"] == sync_owner(owner, pname)["owner"], rec
        owner.kill9()
        new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")
        fw = wait_for(lambda: [i for i in new.pair_status(pname)["instances"] if i["direction"] == "forward"], 30,
                      "the new owner's forward instance open")[0]
        assert fw["state"] == "paused", fw             # (the operator's pause, kept in etcd, and the tail's)
        assert new.pair_status(pname)["tail"]["state"] == "pending", new.pair_status(pname).get("tail")
    finally:
        b.start()
    tail = wait_for(lambda: new.pair_status(pname)["tail"]["state"] == "open" and new.pair_status(pname)["tail"],
                    60, "the tail found on business by the new owner")
    assert tail["transactions"] == 1, tail
    new.admin_ok("resolve-tail", pair=pname, discard=True)
    wait_for(lambda: etcd_get(etcd, f"/switchyard/pairs/{pname}/tail") is None, 10, "the tail forgotten in etcd")
    assert "tail" not in new.pair_status(pname)
    assert q(b, "SELECT id FROM t ORDER BY id", fresh) == ((1,),)          # reverted on business
    one(c, "INSERT INTO t VALUES (3, 'on DR')")
    assert q(dr, "SELECT id FROM t ORDER BY id", fresh) == ((1,), (3,))    # the tail never reached DR
    fw = [i for i in new.pair_status(pname)["instances"] if i["direction"] == "forward"][0]
    assert fw["state"] == "collecting", fw
    # the failover consumed the operator's pause (it ran the instance to drain its spool): etcd forgets it too
    wait_for(lambda: etcd_get(etcd, f"/switchyard/pairs/{pname}/instances/forward") is None, 10,
             "the operator's pause forgotten in etcd")


def test_a_cluster_failovers_tail_counts_writes_acknowledged_through_every_node(daemon, etcd, mariadb_pair,
                                                                                 fresh):  # noqa: F811
    """The forward instance paused (so nothing after it is collected), then two inserts acknowledged through
    the owner's proxy, three through another node's and one committed on business directly (nobody was
    told): business killed, `failover` given to the third node. The tail holds all six transactions, and
    the five the clients saw acknowledged count as acknowledged, in status and in the tail record in etcd
    (its ack_ledger_position is business's position after the last acknowledged one): the failover merges
    every node's ack ledger, which reached it with the hold. Before, the tail used the owner's ledger only:
    2 acknowledged, the three written through the other node counted as never acknowledged."""
    b, dr = mariadb_pair
    pname = f"k{fresh}"
    owner, others = electable_three(daemon, etcd, mariadb_pair, fresh, pname)
    one(app_conn(owner, fresh), "INSERT INTO t VALUES (0, 'replicated')")
    wait_for(lambda: q(dr, "SELECT COUNT(*) FROM t", fresh) == ((1,),), 30, "forward applied")
    owner.admin_ok("pause", instance=f"{pname}/forward")
    via_owner, via_other = app_conn(owner, fresh), app_conn(others[0], fresh)
    for i in (1, 2):
        one(via_owner, "INSERT INTO t VALUES (%s, 'acknowledged by the owner')", (i,))
    for i in (3, 4, 5):
        one(via_other, "INSERT INTO t VALUES (%s, 'acknowledged by another node')", (i,))
    acknowledged_up_to = q(b, "SELECT @@gtid_binlog_pos")[0][0]
    b.sql("INSERT INTO t VALUES (6, 'nobody was told')", database=fresh)
    b.kill9()
    try:
        r = others[1].admin_ok("failover", pair=pname)
        assert r["active_side"] == "dr", r
        rec = wait_for(lambda: etcd_get(etcd, f"/switchyard/pairs/{pname}/tail"), 10, "the tail kept in etcd")
        assert rec["ack_ledger_position"] == acknowledged_up_to, rec
    finally:
        b.start()
    tail = wait_for(lambda: owner.pair_status(pname)["tail"]["state"] == "open" and owner.pair_status(pname)["tail"],
                    60, "the tail found on business")
    assert (tail["transactions"], tail["acknowledged"]) == (6, 5), tail
    assert tail["ack_ledger_position"] == acknowledged_up_to, tail
    owner.admin_ok("resolve-tail", pair=pname, discard=True)
    assert q(b, "SELECT id FROM t ORDER BY id", fresh) == ((0,),)          # reverted on business


def test_a_mongodb_failovers_tail_keeps_the_late_entries_its_collector_knew_for_the_next_owner(
        etcd, ferretdb_pair, mongo_daemon, tmp_path):
    """FerretDB stores an oplog entry after a newer one now and then: one that lands after the forward
    collector's last poll is older than the collected position, and only the set of ts the collector left at
    the failover's pause (mongo_taken.json, on the node that ran it) puts it in the tail. The failover carries
    that set in its tail record in etcd, and the owner is killed before `resolve-tail`: the new owner's tail
    read uses the record's set as the old owner's file would have been used, so the acknowledged insert whose
    entry the collector never saw is in the tail (exported, then reverted). Simulated as in
    test_mongo_switch.py: SY_HIDE_OPLOG_NS hides one collection's entries from every node's collector. Before,
    the new owner read the tail after the collected position alone: empty (it closed by itself), the insert
    neither on DR nor in the tail."""
    b, dr = ferretdb_pair
    db, pname = "tlm", "tlm"
    nodes = mongo_nodes(mongo_daemon, etcd, ferretdb_pair, db, pname,
                        env_of=lambda i: {"SY_HIDE_OPLOG_NS": f"{db}.late"})
    owner, others = elected(nodes, pname)
    client = mongo_client(owner, pname, b)
    try:
        client[db].late.insert_one({"_id": "late"})        # acknowledged; its entry unseen by the collector
        client[db].docs.insert_one({"_id": "newer"})       # a newer entry, collected and applied
    finally:
        client.close()
    with dr.client() as drc:
        wait_for(lambda: drc[db].docs.count_documents({"_id": "newer"}) == 1, 60, "forward applied")
        assert drc[db].late.count_documents({}) == 0
    b.kill9()
    try:
        r = others[0].admin_ok("failover", pair=pname)
        assert r["active_side"] == "dr", r
        rec = wait_for(lambda: etcd_get(etcd, f"/switchyard/pairs/{pname}/tail"), 10, "the tail kept in etcd")
        assert rec["collector_state"]["position"] == rec["collected_position"], rec
        assert rec["collector_state"]["taken"], rec                      # "newer" at least
        owner.kill9()
        new = wait_for(lambda: owners(others, pname) and owners(others, pname)[0], 20, "another node owns")
        wait_for(lambda: new.pair_status(pname).get("tail", {}).get("state") == "pending", 30,
                 "the tail this node's to find")
        assert "collector_state" not in new.pair_status(pname)["tail"]  # status shows no set of ts
    finally:
        b.start()
    wait_for(lambda: new.pair_status(pname).get("tail", {}).get("state") != "pending", 90, "the tail read")
    tail = new.pair_status(pname).get("tail")
    assert tail is not None and tail["state"] == "open", \
        f"the tail is empty: the acknowledged insert 'late' is neither on DR nor in the tail ({tail})"
    assert (tail["transactions"], tail["acknowledged"]) == (1, 1), tail
    export = tmp_path / "tail.json"
    new.admin_ok("resolve-tail", pair=pname, export=str(export))
    detail = json.loads(export.read_text())
    assert [(row["table"], row["key"]) for t in detail["transactions"] for row in t["rows"]] == \
        [(f"{db}.late", {"_id": "late"})], detail
    assert detail["collected_set"] >= 1, detail                      # "newer" skipped as taken
    with b.client() as c:
        assert c[db].late.count_documents({}) == 0                 # reverted on business
