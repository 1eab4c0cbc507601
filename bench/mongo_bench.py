#!/usr/bin/python3
"""MongoDB benchmark: the proxy data path (pymongo 4 straight to FerretDB vs through HAProxy vs through
switchyardd), the forward instance's apply rate against DR's own bulk-load rate, and the switchover pause
under load.

    /usr/bin/python3 bench/mongo_bench.py --build build            # 3 reps x 15 s per target and workload (~10 min)
    /usr/bin/python3 bench/mongo_bench.py --build build --quick    # smoke run: 2 reps x 3 s (~3-4 min)

What it does (TESTING.md "Benchmarks": side by side in one run, >= 3 interleaved repetitions, no asserted timing).
Each part runs on a FerretDB pair of its own (scripts/sandbox.py start_ferretdb_pair(); the collector's reads
of the oplog scan it whole, so an oplog filled by an earlier part slows a later one: bench/README.md).
  1. proxy data path: a SCRAM user `bench` on business only (the proxy's SCRAM pass-through reads its
     credential from the active side); benchdb.items gets --docs documents. Three targets for business:
     direct, HAProxy (proxy_bench's: Debian haproxy, mode tcp) and switchyardd (engine = mongodb, no objects,
     log_level=warn). Workloads find_by_id (find_one by a random _id of benchdb.items), insert_one (a small
     document, a fresh collection per run) and ping (the proxy's own cost), --clients processes
     (multiprocessing, fork: one MongoClient each, maxPoolSize 1, directConnection, SCRAM-SHA-256 as `bench`):
     a warm-up per target, then R reps with the target order rotated per rep. Per run ops/s and
     p50/p95/p99/max latency (every op timed); medians over reps, ratios vs direct and vs HAProxy (issue 10's
     goal: >= 1.0x HAProxy).
  2. apply rate, per rep one variant at a time (order alternating): **switchyard live** (switchyardd with
     `objects = benchdb.*`, its forward instance running; a direct bulk loader writes --burst documents into
     business, insert_many batches of --batch; timed from the loader's start until DR holds them all and the
     instance's write lag_events is 0), **switchyard backlog** (the same burst loaded while `pause
     bench/forward`; timed from `start bench/forward` until level: the writer's pure catch-up) and **direct
     into DR** (the same documents and batches straight into DR: the rate DR accepts). docs/s and ratios vs
     direct; each burst is checked equal on DR (sha256 of the documents in _id order).
  3. switchover pause under load: create-reverse, then --clients pymongo insert clients through the proxy
     (--rate inserts/s in all), baseline seconds, then --switches switchover/switchback calls one at a time.
     If the first switch answers an error (sessions not movable yet, lag, ...), it prints "switchover:
     skipped (<the daemon's message>)" and goes on. Otherwise: pause p50/max from each reply's pause_ms, the
     clients' max latency around switches vs the baseline's, and client errors (issue 10's goal: p50 <= 100
     ms, max <= 300 ms, 0 errors; a client error is a problem of the run). Each switch prints its steps
     (the daemon's step timings) and the oplog's size before it: on FerretDB the drain follows that size.
     With --oplog-max N the part runs again on a fresh pair whose local.oplog.rs is capped at N entries too
     (FerretDB --test-capped-cleanup-interval=1s trims it): the operator's way to keep FerretDB's oplog
     reads short (docs/mongodb.md), side by side with the default oplog in one run.
Everything lands in bench/results/mongo-<timestamp>.json. The cores are shared by FerretDB, the proxies and
the client processes (and whatever else runs): compare ratios within a run, not absolute numbers across runs.
Exit status 1 when a run had errors or a problem was found (the report is still written).
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import hashlib
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from array import array
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (ROOT, Interrupted, interrupt_on_term_signals, on_crash, on_interrupt,  # noqa: E402
                    raise_nofile, remove_work_dir, report_problems, rotated, stop_all_children,
                    switchyard_log_summary, tail, tool_version, write_report)
import proxy_bench as pb  # noqa: E402
import sandbox  # noqa: E402  (common put scripts/ on sys.path)
import switchover_bench as sw  # noqa: E402

pymongo = sandbox.pymongo4()       # before any fork: the workers inherit the module
import bson  # noqa: E402

HOST = pb.HOST
PAIR = sw.PAIR
DB = "benchdb"
DIRECT_DB = "directload"          # on DR, outside the objects: the bulk loader's own rate into DR
ITEMS = "items"
USER, PASSWORD = "bench", "bench-Secret-1"
WORKLOADS = ("find_by_id", "insert_one", "ping")
TARGETS = ("direct", "haproxy", "switchyard")
APPLY_VARIANTS = ("switchyard live", "switchyard backlog", "direct into DR")
GOAL_P50_MS, GOAL_MAX_MS = 100, 300
POLL_S = 0.1

f, med, pct, ratio = pb.f, sw.med, sw.pct, pb.ratio
BenchError = sw.BenchError


# --- switchyardd ----------------------------------------------------------------------------------------

class MongoSwitchyard(sw.SwitchyardPair):
    """switchyardd with an `engine = mongodb` pair; objects (a forward instance) only when given."""

    ENGINE = "mongodb"

    def __init__(self, build: Path, work: Path, business, dr, objects: str | None = None, level: str = "warn",
                 apply_threads: int | None = None):
        super().__init__(build, work, business, dr)
        self.objects, self.level, self.apply_threads = objects, level, apply_threads

    def config(self) -> str:
        ini = pb.Switchyard.config(self).replace("log_level    = warn", f"log_level    = {self.level}")
        return (ini + (f"objects        = {self.objects}\n" if self.objects else "")
                + (f"apply_threads  = {self.apply_threads}\n" if self.apply_threads else ""))

    started: list = []                                  # every daemon, for the logs of a crash report

    def start(self) -> "MongoSwitchyard":
        MongoSwitchyard.started.append(self)
        return super().start()

    def ready(self) -> bool:
        return hello_answers(self.port)


class MongoHAProxy(pb.HAProxy):
    def ready(self) -> bool:
        return hello_answers(self.port)


def hello_answers(port: int) -> bool:
    """MongoDB servers speak second: does a hello (no login) through HOST:port answer?"""
    try:
        with pymongo.MongoClient(HOST, port, directConnection=True, serverSelectionTimeoutMS=2000,
                                 connectTimeoutMS=2000) as c:
            return bool(c.admin.command("hello").get("ok"))
    except pymongo.errors.PyMongoError:
        return False


# --- client processes -----------------------------------------------------------------------------------

def _worker(idx: int, port: int, workload: str, ns: str, secs: float | None, ndocs: int, interval: float,
            barrier, stop_evt, out) -> None:
    """One client process: its own MongoClient as USER; after the barrier, `workload` ops for secs (or until
    stop_evt), each timed; with interval > 0 one op per interval s at most. Puts {ops, errors, elapsed_s,
    lat: array('f') ms, t: array('d') start times} on out."""
    res = {"idx": idx, "ops": 0, "errors": 0, "error_kinds": {}, "elapsed_s": 0.0}
    lat, starts = array("f"), array("d")
    client = None
    try:
        client = pymongo.MongoClient(HOST, port, username=USER, password=PASSWORD, authSource="admin",
                                     authMechanism="SCRAM-SHA-256", directConnection=True, maxPoolSize=1,
                                     serverSelectionTimeoutMS=10000, connectTimeoutMS=10000)
        db, coll = ns.split(".", 1)
        c = client[db][coll]
        client.admin.command("ping")                     # connected and logged in before the clock starts
        rnd = random.Random(idx)
        payload = "x" * 100
    except Exception as e:  # noqa: BLE001 - reported, and the barrier still released
        res["setup_error"] = repr(e)[:300]
    try:
        barrier.wait(120)
    except Exception as e:  # noqa: BLE001
        res["setup_error"] = res.get("setup_error") or f"barrier: {e!r}"
    if "setup_error" not in res:
        t0 = time.monotonic()
        end = t0 + secs if secs else None
        n = 0
        clock = time.monotonic
        nxt = t0
        while (clock() < end) if end else not stop_evt.is_set():
            if interval:
                nxt += interval
                if nxt > clock():
                    time.sleep(nxt - clock())
            s = clock()
            try:
                if workload == "find_by_id":
                    if c.find_one({"_id": item_id(rnd.randrange(ndocs))}) is None:
                        raise LookupError("find_one by _id found nothing")
                elif workload == "ping":
                    client.admin.command("ping")
                else:
                    c.insert_one({"w": idx, "n": n, "s": payload})
            except Exception as e:  # noqa: BLE001 - counted; the switch part goes on
                res["errors"] += 1
                k = f"{type(e).__name__}: {str(e)[:160]}"
                res["error_kinds"][k] = res["error_kinds"].get(k, 0) + 1
                time.sleep(0.01)
            e_ = clock()
            lat.append((e_ - s) * 1000.0)
            starts.append(s)
            n += 1
        res["elapsed_s"] = time.monotonic() - t0
        res["ops"] = n - res["errors"]
    if client is not None:
        client.close()
    res["lat"], res["t"] = lat.tobytes(), starts.tobytes()
    out.put(res)


class Fleet:
    """n client processes (fork) running one workload against HOST:port, released together by a barrier."""

    def __init__(self, n: int, port: int, workload: str, ns: str, secs: float | None = None, ndocs: int = 0,
                 rate: float = 0):
        ctx = mp.get_context("fork")
        self.n, self.secs = n, secs
        self.barrier = ctx.Barrier(n + 1)
        self.stop_evt = ctx.Event()
        self.out = ctx.Queue()
        self.procs = [ctx.Process(target=_worker, daemon=True,
                                  args=(i, port, workload, ns, secs, ndocs, n / rate if rate else 0.0,
                                        self.barrier, self.stop_evt, self.out))
                      for i in range(n)]

    def start(self) -> float:
        for p in self.procs:
            p.start()
        self.barrier.wait(120)                           # every client connected and logged in
        self.t0 = time.monotonic()
        return self.t0

    def finish(self) -> dict:
        self.stop_evt.set()
        wait = (self.secs or 0) + 120
        got = [self.out.get(timeout=wait) for _ in self.procs]
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()
        lat, starts = array("f"), array("d")
        for g in got:
            lat.frombytes(g.pop("lat"))
            starts.frombytes(g.pop("t"))
        kinds = {}
        for g in got:
            for k, v in g["error_kinds"].items():
                kinds[k] = kinds.get(k, 0) + v
        lats = sorted(lat)
        r = {"ops": sum(g["ops"] for g in got), "errors": sum(g["errors"] for g in got), "error_kinds": kinds,
             "ops_per_s": round(sum(g["ops"] / g["elapsed_s"] for g in got if g["elapsed_s"]), 1),
             "p50_ms": _q(lats, 50), "p95_ms": _q(lats, 95), "p99_ms": _q(lats, 99),
             "max_ms": round(lats[-1], 3) if lats else None,
             "setup_errors": [g["setup_error"] for g in got if g.get("setup_error")]}
        self.samples = (starts, lat)
        return r


def item_id(j: int) -> str:
    """benchdb.items' _id: a string, which FerretDB's SQLite handler pushes down (~1 ms here; an int _id is
    filtered after a scan of the collection: ~160 ms per find_one at 10000 documents)."""
    return f"i{j:06d}"


def _q(sorted_vals, p):
    v = pct(sorted_vals, p)
    return round(v, 3) if v is not None else None


def run_clients(n: int, port: int, workload: str, ns: str, secs: float, ndocs: int) -> dict:
    fl = Fleet(n, port, workload, ns, secs, ndocs)
    fl.start()
    time.sleep(secs)
    return fl.finish()


# --- part 1: the proxy data path ------------------------------------------------------------------------

def proxy_part(args, work: Path, business, dr, report: dict, problems: list) -> None:
    with business.client() as c:
        coll = c[DB][ITEMS]
        coll.drop()
        for i in range(0, args.docs, 1000):
            coll.insert_many([{"_id": item_id(j), "v": j, "s": f"item-{j}", "tags": ["a", "b"]}
                              for j in range(i, min(i + 1000, args.docs))])
        c.drop_database(DIRECT_DB)
    hp = MongoHAProxy(work, business.port).start()
    sy = MongoSwitchyard(args.build, work / "proxy", business, dr).start()
    report["proxy"]["targets"] = {"direct": business.port, "haproxy": hp.port, "switchyard": sy.port}
    print(f"  benchdb.items: {args.docs} documents; haproxy :{hp.port} (pid {hp.proc.pid}), "
          f"switchyardd :{sy.port} (pid {sy.proc.pid})", flush=True)
    ports = {"direct": business.port, "haproxy": hp.port, "switchyard": sy.port}
    results = report["proxy"]["results"]
    runs = 0

    def one(wl, t, secs, label):
        nonlocal runs
        runs += 1
        ns = f"{DB}.{ITEMS}" if wl == "find_by_id" else f"{DB}.ins_{runs}"
        for name, obj in (("haproxy", hp), ("switchyard", sy)):
            if obj.proc.poll() is not None:
                raise BenchError(f"{name} exited with {obj.proc.returncode}:\n{tail(obj.log)}")
        r = run_clients(args.clients, ports[t], wl, ns, secs, args.docs)
        if wl != "find_by_id":
            with business.client() as c:
                c[DB].drop_collection(ns.split(".", 1)[1])
        if r["errors"] or r["setup_errors"]:
            problems.append({"where": f"{wl} {label} via {t}", "error": f"{r['errors']} errors "
                             f"{r['error_kinds']} {r['setup_errors']}"})
        return r

    for wl in args.workloads:
        results[wl] = {t: [] for t in TARGETS}
        print(f"\n-- {wl}: warm-up {args.warmup} s per target", flush=True)
        for t in TARGETS:
            w = one(wl, t, args.warmup, "warm-up")
            print(f"   warm-up {t:<11} ops/s {f(w['ops_per_s'], '{:.0f}')}  err {w['errors']}", flush=True)
        for rep in range(args.reps):
            for i, t in rotated(TARGETS, rep):
                r = one(wl, t, args.time, f"rep {rep + 1}")
                r.update(rep=rep, order=i)
                results[wl][t].append(r)
                print(f"   rep {rep + 1}/{args.reps} {t:<11} ops/s {f(r['ops_per_s'], '{:.0f}'):>7}  "
                      f"p50 {f(r['p50_ms'], '{:.3f}')}  p95 {f(r['p95_ms'], '{:.3f}')}  "
                      f"p99 {f(r['p99_ms'], '{:.3f}')}  max {f(r['max_ms'], '{:.1f}')}  err {r['errors']}",
                      flush=True)
    report["proxy"]["switchyard_rss_kib"] = pb.vm_rss_kib(sy.proc.pid)
    report["proxy"]["summary"] = summarize_proxy(results)
    print_proxy(report["proxy"]["summary"], args)
    report["proxy"]["haproxy_exit"] = hp.stop()
    switchyard_log_summary(sy, report["proxy"], problems, "warn")


def summarize_proxy(results: dict) -> dict:
    summary = {}
    for wl, by_t in results.items():
        m = {t: {k: med([r[k] for r in runs]) for k in ("ops_per_s", "p50_ms", "p95_ms", "p99_ms", "max_ms")}
             | {"errors": sum(r["errors"] for r in runs), "runs": len(runs)}
             for t, runs in by_t.items() if runs}
        for t in m:
            m[t]["ops_vs_direct"] = ratio(m[t]["ops_per_s"], m.get("direct", {}).get("ops_per_s"))
            m[t]["ops_vs_haproxy"] = ratio(m[t]["ops_per_s"], m.get("haproxy", {}).get("ops_per_s"))
            m[t]["p99_vs_haproxy"] = ratio(m[t]["p99_ms"], m.get("haproxy", {}).get("p99_ms"))
        summary[wl] = m
    return summary


def print_proxy(summary: dict, args) -> None:
    for wl, m in summary.items():
        print(f"\n== {wl}: {args.clients} pymongo client processes, {args.reps} reps x {args.time} s, "
              f"interleaved; medians ==")
        hdr = (f"{'target':<11} {'ops/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} "
               f"{'ops/direct':>10} {'ops/HAProxy':>11} {'p99/HAProxy':>11} {'errors':>6}")
        print(hdr)
        print("-" * len(hdr))
        for t in TARGETS:
            if t in m:
                x = m[t]
                print(f"{t:<11} {f(x['ops_per_s'], '{:.0f}'):>8} {f(x['p50_ms'], '{:.3f}'):>7} "
                      f"{f(x['p95_ms'], '{:.3f}'):>7} {f(x['p99_ms'], '{:.3f}'):>7} {f(x['max_ms'], '{:.1f}'):>7} "
                      f"{f(x['ops_vs_direct']):>10} {f(x['ops_vs_haproxy']):>11} {f(x['p99_vs_haproxy']):>11} "
                      f"{x['errors']:>6}")
        sy = m.get("switchyard", {}).get("ops_vs_haproxy")
        if sy is not None:
            print(f"  goal ops/s >= 1.0x HAProxy: {'met' if sy >= 1.0 else 'NOT MET'} ({sy:.2f}x)")


# --- part 2: apply rate ---------------------------------------------------------------------------------

def burst_docs(n: int, batch: int):
    """The burst's documents in insert_many batches (the same for every variant). The _id is an ObjectId, as
    drivers make them: FerretDB's SQLite handler pushes an ObjectId _id filter down to SQLite, while an int
    _id means a scan of the collection per upsert of the writer."""
    for i in range(0, n, batch):
        yield [{"_id": bson.ObjectId(f"{j:024x}"), "n": j, "s": "abcdefghij" * 10, "sub": {"x": j, "y": "z"},
                "tags": ["a", "b"]}
               for j in range(i, min(i + batch, n))]


def load(server, ns: str, n: int, batch: int) -> float:
    """Bulk-load the burst into server's ns (admin user, straight to the server); returns seconds."""
    db, coll = ns.split(".", 1)
    with server.client() as c:
        c[db][coll].drop()
        t0 = time.monotonic()
        for docs in burst_docs(n, batch):
            c[db][coll].insert_many(docs)
        return time.monotonic() - t0


def digest(server, ns: str) -> str:
    db, coll = ns.split(".", 1)
    h = hashlib.sha256()
    with server.client() as c:
        for d in c[db][coll].find().sort("_id", 1):
            h.update(bson.encode(d))
    return h.hexdigest()


def wait_level(sy: MongoSwitchyard, dr, ns: str, n: int, timeout: float, stall: float) -> dict:
    """Poll until DR holds n documents in ns and the forward write's lag_events is 0; BenchError after timeout
    s, or when DR's count has not moved for stall s."""
    db, coll = ns.split(".", 1)
    deadline = time.monotonic() + timeout
    moved, last = time.monotonic(), -1
    with dr.client(socketTimeoutMS=5000) as c:
        while True:
            sy.alive()
            try:                                         # a DR busy with a long write batch may not answer
                cnt = c[db].command({"count": coll})["n"]
            except pymongo.errors.PyMongoError:
                cnt = None
            inst = sy.instance("forward") or {}
            if inst.get("state") in ("failed", "precheck_failed", "terminated"):
                raise BenchError(f"{PAIR}/forward is {inst['state']}: {inst.get('last_error')}")
            lag = (inst.get("write") or {}).get("lag_events")
            if cnt == n and lag == 0:
                return {"t": time.monotonic(), "dr_count": cnt}
            applied = (inst.get("write") or {}).get("events")
            if (cnt, applied) != last:                   # progress: documents on DR, rows the writer applied
                moved, last = time.monotonic(), (cnt, applied)
            if time.monotonic() > deadline or time.monotonic() - moved > stall:
                raise BenchError(f"DR not level ({time.monotonic() - moved:.0f} s without progress): {cnt}/{n} "
                                 f"documents in {ns}, lag_events {lag}, last error: {inst.get('last_error')}")
            time.sleep(POLL_S)


@contextlib.contextmanager
def fresh_pair(args, work: Path, label: str, section: dict, problems: list, daemon: bool = True,
               oplog_max: int | None = None):
    """A FerretDB pair of its own (an empty oplog: the collector's reads of it scan it whole, see README) with
    USER on business and, with daemon, switchyardd whose forward instance runs on benchdb.* (log_level=info).
    oplog_max: local.oplog.rs capped at that many entries too, trimmed by FerretDB every second.
    Yields (business, dr, switchyard or None); stops all of it after."""
    small = {"oplog_max": oplog_max, "extra_args": ["--test-capped-cleanup-interval=1s"]} if oplog_max else {}
    servers, sy = sandbox.start_ferretdb_pair(**small), None
    try:
        business, dr = servers
        business.create_user(USER, PASSWORD)
        if daemon:
            (work / label / "state").mkdir(parents=True)
            sy = MongoSwitchyard(args.build, work / label, business, dr, objects=f"{DB}.*", level="info",
                                 apply_threads=args.apply_threads).start()
            sw.wait_state(sy, "forward", "running", 120,
                          extra=lambda i: bool((i.get("collection") or {}).get("position")))
        yield business, dr, sy
        section["oplog_entries_business"] = oplog_entries(business)
        if sy is not None:
            switchyard_log_summary(sy, section, problems, "info")
    finally:
        if sy is not None:
            sy.stop()
        for srv in servers:
            srv.stop()


def oplog_entries(server) -> int:
    with server.client() as c:
        return c.local["oplog.rs"].estimated_document_count()


def apply_variant(variant: str, args, work: Path, label: str, problems: list) -> dict:
    n, ns, r = args.burst, f"{DB}.burst", {}
    with fresh_pair(args, work, label, r, problems, daemon=variant != "direct into DR") as (business, dr, sy):
        if variant == "direct into DR":
            s = load(dr, f"{DIRECT_DB}.burst", n, args.batch)
        elif variant == "switchyard live":
            t0 = time.monotonic()
            load_s = load(business, ns, n, args.batch)
            s = wait_level(sy, dr, ns, n, args.apply_timeout, args.stall)["t"] - t0
            r.update(business_load_s=round(load_s, 3), business_docs_per_s=round(n / load_s, 1),
                     after_load_s=round(s - load_s, 3))
        else:
            sy.admin_ok("pause", instance=f"{PAIR}/forward")
            sw.wait_state(sy, "forward", "paused", 30)
            load_s = load(business, ns, n, args.batch)
            t0 = time.monotonic()
            sy.admin_ok("start", instance=f"{PAIR}/forward")
            s = wait_level(sy, dr, ns, n, args.apply_timeout, args.stall)["t"] - t0
            r["business_load_s"] = round(load_s, 3)
        if sy is not None:
            r["equal_on_dr"] = digest(business, ns) == digest(dr, ns)
            if not r["equal_on_dr"]:
                problems.append({"where": f"apply {label}", "error": f"{ns} differs on DR"})
    r.update(seconds=round(s, 3), docs_per_s=round(n / s, 1))
    return r


def apply_part(args, work: Path, report: dict, problems: list) -> None:
    print(f"\n-- apply rate: burst {args.burst} documents in insert_many batches of {args.batch}; each variant "
          f"on a fresh FerretDB pair", flush=True)
    runs = report["apply"]["runs"]
    for rep in range(args.apply_reps):
        order = APPLY_VARIANTS if rep % 2 == 0 else tuple(reversed(APPLY_VARIANTS))
        for i, v in enumerate(order):
            try:
                r = apply_variant(v, args, work, f"apply-{rep}-{i}", problems)
            except BenchError as e:
                problems.append({"where": f"apply {v} rep {rep + 1}", "error": str(e)})
                print(f"   rep {rep + 1} {v:<19} FAILED {e}", flush=True)
                continue
            r.update(rep=rep, order=i, variant=v)
            runs.append(r)
            extra = (f"  (business load {r['business_load_s']:.2f} s"
                     + (f", level {r['after_load_s']:.2f} s after it" if "after_load_s" in r else "") + ")"
                     if "business_load_s" in r else "")
            print(f"   rep {rep + 1} {v:<19} {r['seconds']:7.2f} s  {r['docs_per_s']:8.0f} docs/s{extra}"
                  f"{'' if r.get('equal_on_dr', True) else '  DIFFERS ON DR'}", flush=True)
    s = {v: med([r["docs_per_s"] for r in runs if r["variant"] == v]) for v in APPLY_VARIANTS}
    summ = {"docs_per_s": s}
    for v in APPLY_VARIANTS[:2]:
        per_rep = [ratio(a["docs_per_s"], b["docs_per_s"]) for a in runs for b in runs
                   if a["variant"] == v and b["variant"] == "direct into DR" and a["rep"] == b["rep"]]
        summ[f"ratio_{v.replace(' ', '_')}_vs_direct"] = {"per_rep": per_rep, "median": med(per_rep)}
    report["apply"]["summary"] = summ
    print(f"\n== apply rate: {args.burst} documents, {args.apply_reps} rep(s); medians ==")
    for v in APPLY_VARIANTS:
        r = summ.get(f"ratio_{v.replace(' ', '_')}_vs_direct", {}).get("median")
        print(f"  {v:<19} {f(s[v], '{:.0f}'):>8} docs/s" + (f"   {f(r)}x the direct load into DR" if r else ""))
    print("  live = from the loader's start on business until DR holds every document and write lag_events is 0;"
          "\n  backlog = loaded while paused, timed from start until level (the writer's pure catch-up)")


# --- part 3: switchover pause under load ----------------------------------------------------------------

def switch_part(args, sy: MongoSwitchyard, sides, out: dict, problems: list) -> None:
    print(f"\n-- switchover under load: {args.clients} pymongo insert clients through :{sy.port} at {args.rate:g} "
          f"inserts/s in all, {args.switches} switches", flush=True)
    r = sy.admin("create-reverse", pair=PAIR)
    if not r.get("ok") and (r.get("error") or {}).get("code") != "exists":
        out["skipped"] = f"create-reverse: {(r.get('error') or {}).get('message')}"
        print(f"switchover: skipped ({out['skipped']})", flush=True)
        return
    try:
        sw.wait_state(sy, "reverse", "collecting", 60)
    except BenchError as e:
        out["skipped"] = f"reverse instance: {e}"
        print(f"switchover: skipped ({out['skipped']})", flush=True)
        return
    fleet = Fleet(args.clients, sy.port, "insert_one", f"{DB}.switchload", rate=args.rate)
    t0 = fleet.start()
    recs = out["switches"]
    try:
        time.sleep(args.baseline)
        t_base_end = time.monotonic()
        for i in range(args.switches):
            # FerretDB reads its oplog whole for any query (~0.1 ms an entry): fence-to-drain follows its size
            entries = {name: oplog_entries(s) for name, s in zip(("business", "dr"), sides)}
            rec = sw.do_switch(sy, i, None)
            rec["oplog_entries"] = entries
            rec["t_sent"] = round(time.monotonic() - t0 - rec["call_ms"] / 1000, 3)
            rec["t_answer"] = round(time.monotonic() - t0, 3)
            recs.append(rec)
            if not rec["ok"]:
                if i == 0:
                    out["skipped"] = rec["error"]["message"] or rec["error"]["code"]
                    out["skipped_code"] = rec["error"]["code"]
                    break
                problems.append({"where": f"switch {i + 1} ({rec['cmd']})", "error": rec["error"]})
            sw.print_switch(rec)
            print(f"        oplog entries before it: business {entries['business']}, dr {entries['dr']}", flush=True)
            time.sleep(args.gap)
    finally:
        res = fleet.finish()
    if out.get("skipped"):
        print(f"switchover: skipped ({out['skipped']})", flush=True)
        out["clients"] = res
        return
    starts, lat = fleet.samples
    base = sorted(l for s, l in zip(starts, lat) if s < t_base_end)
    around = [l for s, l in zip(starts, lat)
              if any(t0 + r_["t_sent"] - 0.5 <= s <= t0 + r_["t_answer"] + 1.0 for r_ in recs)]
    pauses = [r_["pause_ms"] for r_ in recs if r_["ok"] and r_.get("pause_ms") is not None]
    a = {"pause_p50_ms": med(pauses), "pause_max_ms": max(pauses) if pauses else None,
         "switches_ok": len(pauses), "switches": len(recs),
         "client_max_ms_around_switches": round(max(around), 1) if around else None,
         "baseline_p99_ms": _q(base, 99), "baseline_max_ms": round(base[-1], 1) if base else None,
         "client_errors": res["errors"], "client_error_kinds": res["error_kinds"], "ops_per_s": res["ops_per_s"],
         "moved_clients": [r_.get("moved_clients") for r_ in recs if r_["ok"]],
         "closed_unmovable": [r_.get("closed_unmovable") for r_ in recs if r_["ok"]]}
    out["summary"], out["clients"] = a, res
    if res["errors"] or res["setup_errors"]:
        problems.append({"where": "switchover clients", "error": f"{res['errors']} client errors "
                         f"{res['error_kinds']} {res['setup_errors']}"})
    ok = (a["pause_p50_ms"] is not None and a["pause_p50_ms"] <= GOAL_P50_MS and a["pause_max_ms"] <= GOAL_MAX_MS
          and not res["errors"])
    print(f"\n== switchover pause: {a['switches_ok']}/{a['switches']} switches ok ==\n"
          f"  pause p50 {f(a['pause_p50_ms'], '{:.0f}')} ms, max {f(a['pause_max_ms'], '{:.0f}')} ms; client max "
          f"latency around switches {f(a['client_max_ms_around_switches'], '{:.1f}')} ms (baseline p99 "
          f"{f(a['baseline_p99_ms'], '{:.2f}')}, max {f(a['baseline_max_ms'], '{:.1f}')} ms); client errors "
          f"{res['errors']}; {f(res['ops_per_s'], '{:.0f}')} inserts/s overall\n"
          f"  goal p50 <= {GOAL_P50_MS} ms, max <= {GOAL_MAX_MS} ms, 0 errors: {'met' if ok else 'NOT MET'}")


# --- main -----------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build"), help="build dir with switchyardd and switchyardctl")
    ap.add_argument("--quick", action="store_true", help="smoke run (~2-3 min)")
    ap.add_argument("--reps", type=int, default=None, help="proxy reps (3; --quick 2)")
    ap.add_argument("--time", type=float, default=None, help="seconds per proxy run (15; --quick 3)")
    ap.add_argument("--warmup", type=float, default=None, help="warm-up seconds per target (3; --quick 1)")
    ap.add_argument("--clients", type=int, default=8, help="client processes")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--docs", type=int, default=10000, help="documents in benchdb.items")
    ap.add_argument("--burst", type=int, default=None, help="apply burst documents (500: the writer stalls "
                    "on FerretDB from ~1000, bench/README.md)")
    ap.add_argument("--batch", type=int, default=100, help="insert_many batch size")
    ap.add_argument("--apply-reps", type=int, default=None, help="apply reps (3; --quick 1)")
    ap.add_argument("--apply-timeout", type=float, default=600, help="seconds for DR to be level")
    ap.add_argument("--apply-threads", type=int, default=None, help="the pair's apply_threads (default: "
                    "switchyardd's, 2)")
    ap.add_argument("--stall", type=float, default=None, help="give up when DR's count and the writer's events "
                    "have not moved for S s (60; --quick 20)")
    ap.add_argument("--switches", type=int, default=None, help="switchovers/switchbacks (20; --quick 4)")
    ap.add_argument("--rate", type=float, default=40, help="inserts/s of all switchover clients together (the "
                    "writer's upserts must keep up: a switch waits for lag <= switchover_max_lag_ms)")
    ap.add_argument("--gap", type=float, default=2, help="seconds between a switch's answer and the next call")
    ap.add_argument("--baseline", type=float, default=None, help="load seconds before the first switch (5; --quick 3)")
    ap.add_argument("--skip", default="", help="parts to skip: proxy,apply,switchover")
    ap.add_argument("--oplog-max", type=int, default=0, help="run the switchover part again on a pair whose "
                    "local.oplog.rs is capped at this many entries (FerretDB trims it every second; 0: not run)")
    ap.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (switchyardd and haproxy logs)")
    args = ap.parse_args()
    q = args.quick
    args.reps = args.reps if args.reps is not None else (2 if q else 3)
    args.time = args.time if args.time is not None else (3 if q else 15)
    args.warmup = args.warmup if args.warmup is not None else (1 if q else 3)
    args.burst = args.burst if args.burst is not None else 500
    args.apply_reps = args.apply_reps if args.apply_reps is not None else (1 if q else 3)
    args.stall = args.stall if args.stall is not None else (20 if q else 60)
    args.switches = args.switches if args.switches is not None else (4 if q else 20)
    args.baseline = args.baseline if args.baseline is not None else (3 if q else 5)
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.build = Path(args.build).resolve()
    skip = {s for s in args.skip.split(",") if s}

    interrupt_on_term_signals()
    faulthandler.register(signal.SIGUSR2, all_threads=True)   # kill -USR2 PID: where it waits
    nofile = raise_nofile()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    work = Path(tempfile.mkdtemp(prefix="sy-mb-", dir="/tmp"))    # short: admin socket path < 107
    (work / "proxy" / "state").mkdir(parents=True)
    report = {
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "host": {"nproc": os.cpu_count(), "loadavg_start": os.getloadavg(), "nofile": list(nofile),
                 "uname": " ".join(os.uname())},
        "versions": {"pymongo": pymongo.version, "haproxy": tool_version([shutil.which("haproxy") or
                                                                          "/usr/sbin/haproxy", "-v"]),
                     "ferretdb": tool_version([sandbox.mongo_tools()["ferretdb"], "--version"])},
        "proxy": {"results": {}}, "apply": {"runs": []}, "switchover": {"switches": []}, "problems": [],
    }
    problems = report["problems"]
    rc = 0
    print(f"mongo_bench: {len(args.workloads)} workloads x {len(TARGETS)} targets x {args.reps} reps x "
          f"{args.time:g} s, {args.clients} clients; apply burst {args.burst} x {args.apply_reps}; "
          f"{args.switches} switches; work dir {work}", flush=True)
    try:
        if "proxy" not in skip:
            with fresh_pair(args, work, "proxy", report["proxy"], problems, daemon=False) as (business, dr, _):
                print(f"  FerretDB business {HOST}:{business.port}, dr {HOST}:{dr.port}", flush=True)
                proxy_part(args, work, business, dr, report, problems)
        if "apply" not in skip:
            apply_part(args, work, report, problems)
        if "switchover" not in skip:
            # with --oplog-max, the same part again on a pair whose oplog FerretDB keeps that short
            for key, omax in [("switchover", None)] + ([("switchover_oplog_max", args.oplog_max)]
                                                      if args.oplog_max else []):
                report.setdefault(key, {"switches": []})["oplog_max"] = omax
                print(f"\n== switchover part, local.oplog.rs capped at {omax or 'size only'} "
                      f"{'entries (trimmed every 1 s)' if omax else ''}", flush=True)
                with fresh_pair(args, work, key, report[key], problems, oplog_max=omax) as (business, dr, sy):
                    switch_part(args, sy, (business, dr), report[key], problems)
    except (KeyboardInterrupt, Interrupted) as e:
        rc = on_interrupt("mongo_bench", e, report)
    except Exception as e:  # noqa: BLE001 - still write what we have
        rc = on_crash(e, report, {f"switchyardd {d.work.name}": d.log for d in MongoSwitchyard.started[-1:]},
                      keep=60, show=30)
    finally:
        stop_all_children()
        write_report(report, args.results_dir, f"mongo-{stamp}.json")
        remove_work_dir(work, args.keep)
    return report_problems("mongo_bench", problems, rc)


if __name__ == "__main__":
    sys.exit(main())
