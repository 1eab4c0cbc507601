#!/usr/bin/python3
"""Cluster benchmark (issue 12): the switch pause with one proxy vs three proxies coordinated through etcd.

    /usr/bin/python3 bench/cluster_bench.py --build build            # 3 reps x 3 setups x 4 switches (~4 min)
    /usr/bin/python3 bench/cluster_bench.py --build build --quick    # 3 reps x 3 setups x 2 switches
    /usr/bin/python3 bench/cluster_bench.py --build build --idle 600 # + 600 idle sessions (3 x 200 in cluster3)

Three setups, side by side in one run, the order rotated each rep (TESTING.md "Benchmarks"):
  single    one switchyardd, no [cluster]: every client on it (the pause as before issue 12)
  cluster1  one switchyardd with [cluster] (three etcd members): every client on it (what etcd adds)
  cluster3  three switchyardd with [cluster], one of them running the synchronization and coordinating: the
            same number of clients spread over the three (what coordinating three proxies adds)
Each run starts its daemons on fresh state (initial sync of a small table), creates the reverse instance, lets
--clients PyMySQL clients insert (autocommit, one row at a time) beside --idle sessions that only logged in (each
one is warmed, held and moved by every switch: the pause grows with them), and runs alternating
switchover/switchback calls --gap seconds apart. Every node may run the synchronization (objects on each: the
election picks one, core/election.c); the switch commands go to node 0, which forwards them to the owner when
it is not (core/cluster_admin.c). pause_ms is the coordinator's (hold to release); for cluster3 the participants'
own pauses (their switch_history) are printed too. Client errors and acknowledged writes missing afterwards
are counted (printed, never asserted). Timings are printed, never asserted; results also go to
bench/results/cluster-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import admin_request, raise_nofile, rotated, spawn, stop, stop_all_children  # noqa: E402
import sandbox  # noqa: E402  (common put scripts/ on sys.path)

import pymysql  # noqa: E402

APP_USER, APP_PASSWORD = "sw_app", "sw-app-pw"
DB = "cb"
SETUPS = ("single", "cluster1", "cluster3")


class Node:
    def __init__(self, build: Path, work: Path, name: str, pair: str, business, dr, objects: bool, etcd):
        self.dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
        (self.dir / "state").mkdir()
        self.sock = self.dir / "admin.sock"
        self.pair = pair
        lines = ["[switchyard]", f"admin_socket = {self.sock}", f"state_dir = {self.dir / 'state'}",
                 "log_level = info", "", f"[pair {pair}]", "engine = mariadb", "listen = 127.0.0.1:0",
                 f"business = 127.0.0.1:{business.port}", f"dr = 127.0.0.1:{dr.port}",
                 f"admin_user = {sandbox.ADMIN_USER}", f"admin_password = {sandbox.ADMIN_PASSWORD}",
                 "retry_seconds = 3", "txn_drain_ms = 500", "max_hold_ms = 5000"]
        if objects:
            lines.append(f"objects = {DB}.*")
        if etcd:
            lines += ["", "[cluster]", "etcd = " + ",".join(m.url for m in etcd), f"node = {name}",
                      "lease_ttl_ms = 2000"]
        (self.dir / "sy.ini").write_text("\n".join(lines) + "\n")
        self.log = open(self.dir / "switchyardd.log", "wb")
        self.proc = spawn([build / "switchyardd", "-c", self.dir / "sy.ini", "--foreground"], stdout=self.log,
                          stderr=self.log)

    def admin(self, cmd, timeout=60, **args):
        return admin_request(self.sock, cmd, timeout=timeout, **args)

    def status(self):
        return self.admin("status", pair=self.pair)["result"]["pairs"][0]

    def wait(self, cond, what, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, KeyError, IndexError, ValueError):
                if cond(self.status()):
                    return
            if self.proc.poll() is not None:
                raise RuntimeError(f"switchyardd {self.dir} died: see {self.dir / 'switchyardd.log'}")
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what} ({self.dir})")


def instance(st, direction):
    return next((i for i in st["instances"] if i["direction"] == direction), {})


def run_setup(setup, rep, args, build, work, business, dr, etcd) -> dict:
    pair = f"{setup}{rep}"
    n_nodes = 3 if setup == "cluster3" else 1
    cl = etcd if setup != "single" else None
    nodes = [Node(build, work, f"{pair}-n{i}", pair, business, dr, True, cl) for i in range(n_nodes)]
    out = {"setup": setup, "rep": rep, "pauses_ms": [], "participant_pauses_ms": [], "errors": [], "failed": []}
    idle = []
    try:
        owner = None
        deadline = time.monotonic() + 120
        while owner is None and time.monotonic() < deadline:   # the node the election chose runs the sync
            for n in nodes:
                with contextlib.suppress(OSError, KeyError, IndexError, ValueError):
                    if instance(n.status(), "forward").get("state") == "running":
                        owner = n
            time.sleep(0.1)
        if owner is None:
            raise RuntimeError("no node runs the forward instance")
        r = owner.admin("create-reverse", pair=pair)
        if not r.get("ok"):
            raise RuntimeError(f"create-reverse: {r}")
        owner.wait(lambda s: instance(s, "reverse").get("state") == "collecting", "reverse collecting")
        for n in nodes:
            n.wait(lambda s: not s["held"] and not s.get("shared_epoch", {}).get("cut_off", False), "released")
        ports = [int(n.status()["listen"].rsplit(":", 1)[1]) for n in nodes]
        for k in range(args.idle):                      # logged in, then silent: moved by every switch
            idle.append(pymysql.connect(host="127.0.0.1", port=ports[k % len(ports)], user=APP_USER,
                                        password=APP_PASSWORD, database=DB, autocommit=True, connect_timeout=10))
        stop_ev, acked = threading.Event(), []
        lock = threading.Lock()

        def client(k):
            c, i = None, (rep * 10 + SETUPS.index(setup)) * 10_000_000 + k * 100_000
            port = ports[k % len(ports)]
            while not stop_ev.is_set():
                try:
                    c = c or pymysql.connect(host="127.0.0.1", port=port, user=APP_USER, password=APP_PASSWORD,
                                             database=DB, autocommit=True, connect_timeout=5, read_timeout=20)
                    with c.cursor() as cur:
                        cur.execute("INSERT INTO t VALUES (%s, 'x')", (i,))
                    with lock:
                        acked.append(i)
                except pymysql.err.MySQLError as e:
                    out["errors"].append(f"{e.args[0]} {e.args[1:]}")
                    c = None
                i += 1
                time.sleep(0.005)
        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            for s in range(args.switches):
                cmd = "switchover" if s % 2 == 0 else "switchback"
                r = nodes[0].admin(cmd, timeout=120, pair=pair)
                if r.get("ok"):
                    out["pauses_ms"].append(r["result"]["pause_ms"])
                else:
                    out["failed"].append(r["error"])
                time.sleep(args.gap)
        finally:
            stop_ev.set()
            for t in threads:
                t.join(30)
        for n in nodes:
            if n is owner:
                continue
            out["participant_pauses_ms"] += [h.get("steps", {}).get("quiesce_ms", 0) +
                                             h.get("steps", {}).get("flip_ms", 0)
                                             for h in n.status().get("switch_history", []) if h["outcome"] == "done"]
        active = business if owner.status()["active_side"] == "business" else dr
        with contextlib.closing(pymysql.connect(host="127.0.0.1", port=active.port, user=sandbox.ADMIN_USER,
                                                password=sandbox.ADMIN_PASSWORD, database=DB)) as c:
            with c.cursor() as cur:
                cur.execute("SELECT id FROM t")
                have = {row[0] for row in cur.fetchall()}
        out["acked"] = len(acked)
        out["acked_missing"] = len(set(acked) - have)
        out["idle_alive"] = 0
        for c in idle:                                  # every idle session still works, on the active side
            with contextlib.suppress(pymysql.err.MySQLError):
                c.ping(reconnect=False)
                out["idle_alive"] += 1
    finally:
        for c in idle:
            with contextlib.suppress(Exception):
                c.close()
        for n in reversed(nodes):
            stop(n.proc)
            n.log.close()
    return out


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--switches", type=int, default=4, help="per setup and rep")
    ap.add_argument("--clients", type=int, default=12)
    ap.add_argument("--gap", type=float, default=1.0)
    ap.add_argument("--idle", type=int, default=0, help="idle sessions in all, spread over the nodes")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--results-dir", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args()
    if args.quick:
        args.switches = 2
    build = Path(args.build).resolve()
    raise_nofile()
    work = Path(tempfile.mkdtemp(prefix="sy-cb-", dir="/tmp"))
    runs = []
    report = {"args": vars(args), "loadavg_start": os.getloadavg(), "runs": runs}
    etcd = []
    try:
        with contextlib.ExitStack() as stack:
            business, dr = stack.enter_context(sandbox.servers(2))
            stack.callback(stop_all_children)
            etcd = sandbox.start_etcd_cluster(3)
            business.sql(f"CREATE DATABASE {DB}")
            business.sql(f"CREATE TABLE {DB}.t (id BIGINT PRIMARY KEY, v VARCHAR(8))")
            for s in (business, dr):
                s.sql(f"CREATE USER IF NOT EXISTS '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'")
                s.sql(f"GRANT ALL PRIVILEGES ON `{DB}`.* TO '{APP_USER}'@'%'")
            print(f"cluster_bench: {args.reps} rep(s) x {len(SETUPS)} setups x {args.switches} switches, "
                  f"{args.clients} clients; work dir {work}", flush=True)
            for rep in range(args.reps):
                for _, setup in rotated(SETUPS, rep):
                    r = run_setup(setup, rep, args, build, work, business, dr, etcd)
                    runs.append(r)
                    print(f"  rep {rep + 1} {setup:9s} pauses {r['pauses_ms']} participants "
                          f"{r['participant_pauses_ms']} errors {len(r['errors'])} failed {len(r['failed'])} "
                          f"acked {r['acked']} missing {r['acked_missing']} idle alive {r['idle_alive']}/{args.idle}",
                          flush=True)
    finally:
        for m in etcd:
            with contextlib.suppress(Exception):
                m.stop()
    report["loadavg_end"] = os.getloadavg()
    print(f"\n{'setup':10s} {'switches':>8s} {'p50 ms':>7s} {'max ms':>7s} {'p50 vs single':>13s} "
          f"{'part. max':>9s} {'errors':>6s} {'failed':>6s} {'missing':>7s}")
    base = pct([p for r in runs if r["setup"] == "single" for p in r["pauses_ms"]], 50)
    summary = {}
    for setup in SETUPS:
        rs = [r for r in runs if r["setup"] == setup]
        ps = [p for r in rs for p in r["pauses_ms"]]
        pp = [p for r in rs for p in r["participant_pauses_ms"]]
        p50, mx = pct(ps, 50), (max(ps) if ps else None)
        ratio = f"{p50 / base:.2f}x" if p50 is not None and base else "-"
        summary[setup] = {"switches": len(ps), "p50_ms": p50, "max_ms": mx, "participant_max_ms": max(pp) if pp else None,
                          "errors": sum(len(r["errors"]) for r in rs), "failed": sum(len(r["failed"]) for r in rs),
                          "missing": sum(r["acked_missing"] for r in rs)}
        s = summary[setup]
        print(f"{setup:10s} {s['switches']:8d} {p50 if p50 is not None else '-':>7} {mx if mx is not None else '-':>7} "
              f"{ratio:>13s} {s['participant_max_ms'] if pp else '-':>9} {s['errors']:6d} {s['failed']:6d} "
              f"{s['missing']:7d}")
    report["summary"] = summary
    print(f"load average {report['loadavg_start']} -> {report['loadavg_end']} (shared cores: ratios, not absolutes)")
    Path(args.results_dir).mkdir(parents=True, exist_ok=True)
    out = Path(args.results_dir) / f"cluster-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"results: {out}")
    bad = any(s["errors"] or s["failed"] or s["missing"] for s in summary.values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
