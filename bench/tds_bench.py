#!/usr/bin/python3
"""SQL Server (TDS) benchmark: the proxy data path (pytds straight to the SQL Server double vs through HAProxy
vs through switchyardd) and the switchover pause under load (once SQL Server switches exist).

    /usr/bin/python3 bench/tds_bench.py --build build            # 3 reps x 15 s per target and workload (~8 min)
    /usr/bin/python3 bench/tds_bench.py --build build --quick    # smoke run: 2 reps x 3 s, 4 switches (~2.5 min)

Issue 15's "Benchmark" (TESTING.md "Benchmarks": side by side in one run, >= 3 interleaved repetitions, no
asserted timing). Two SQL Server doubles (tests/doubles/: a Python TDS server over PostgreSQL), business and
DR, started with tests/doubles/tds_fixtures.py; a SQL login `bench` on both (what the clients use).
  1. proxy data path: benchdb.dbo.items with --rows rows on business. Three targets for business: direct,
     HAProxy (proxy_bench's: Debian haproxy, mode tcp) and switchyardd (`engine = sqlserver`, no objects,
     log_level=warn). Workloads point_select (SELECT by a random primary key: sp_executesql, as pytds sends a
     query with parameters), insert (one row, autocommit, into a fresh table per run) and ping (`SELECT 1`:
     the double does little, so the proxy's own cost shows), --clients processes (multiprocessing, fork; one
     pytds connection each, logged in before the clock starts; mongo_bench's Fleet): a warm-up per target,
     then R reps with the target order rotated per rep. Per run ops/s and p50/p95/p99/max latency (every op
     timed) and the CPU seconds of the double, haproxy and switchyardd; medians over reps, ratios vs direct
     and vs HAProxy. The double is Python (one interpreter, the GIL): when it uses about one core and the
     three targets are within 10 %, the output says that the double, not the proxy, sets the pace.
  2. switchover pause under load: benchsw on both doubles with CDC enabled (sys.sp_cdc_enable_db; dbo.t
     created and CDC-enabled on business), switchyardd with `objects = benchsw.*` (a forward instance),
     `create-reverse`, then --clients pytds insert clients through the proxy (--rate inserts/s in all),
     baseline seconds, then --switches switchover/switchback calls one at a time (the admin API's commands and
     result fields, as for MariaDB and MongoDB). A step the daemon refuses as not implemented (no SQL Server
     synchronization, no forward instance, sessions that cannot move, ...) ends the part with "switchover:
     skipped (<the daemon's message>)"; so does an error answered by the first switch. Otherwise pause
     p50/max from each reply's pause_ms, the clients' max latency around switches vs the baseline's, client
     errors (issue 15's goal: p50 <= 100 ms, max <= 300 ms, 0 errors), and every acknowledged insert must be
     on the active side at the end.
Everything lands in bench/results/tds-<timestamp>.json. The doubles (and their PostgreSQL), the proxies and the
client processes share the cores (and whatever else runs): compare ratios within a run, not absolute numbers
across runs. Exit status 1 when a run had errors or a problem was found (the report is still written).
"""

from __future__ import annotations

import argparse
import faulthandler
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
import apply_bench as ab  # noqa: E402
import mongo_bench as mb  # noqa: E402
import proxy_bench as pb  # noqa: E402
import sandbox  # noqa: E402  (common put scripts/ on sys.path)
import switchover_bench as sw  # noqa: E402

sys.path.insert(0, str(ROOT / "tests" / "doubles"))
from tds_fixtures import running_double  # noqa: E402

import pytds  # noqa: E402  (Debian's python3-tds; imported before any fork)

HOST = pb.HOST
PAIR = sw.PAIR
DB, SW_DB = "benchdb", "benchsw"
ITEMS = "items"
USER, PASSWORD = "bench", "bench-Secret-1"
WORKLOADS = ("point_select", "insert", "ping")
TARGETS = pb.TARGETS
GOAL_P50_MS, GOAL_MAX_MS = mb.GOAL_P50_MS, mb.GOAL_MAX_MS
SAME_PACE = 1.10          # fastest / slowest target within 10 %: the double sets the pace

f, med, ratio, _q = pb.f, sw.med, pb.ratio, mb._q
BenchError = sw.BenchError


# --- pytds ----------------------------------------------------------------------------------------------

def connect(port: int, user: str = USER, password: str = PASSWORD, database: str | None = None, timeout=30):
    return pytds.connect(HOST, port=port, user=user, password=password, database=database, autocommit=True,
                         login_timeout=10, timeout=timeout, disable_connect_retry=True)


def execute(port: int, sql: str, database: str | None = None, user: str = USER, password: str = PASSWORD):
    """Run sql (one batch) as user; returns the rows of its last result set, if any."""
    with connect(port, user, password, database) as c, c.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall() if cur.description else None


def tds_answers(port: int) -> bool:
    """Does a login and `SELECT 1` through HOST:port work (the double's admin login)?"""
    try:
        execute(port, "SELECT 1", user=sandbox.ADMIN_USER, password=sandbox.ADMIN_PASSWORD)
        return True
    except (pytds.Error, OSError):
        return False


class TdsSwitchyard(mb.MongoSwitchyard):
    """switchyardd with an `engine = sqlserver` pair (mongo_bench's: objects only when given)."""

    ENGINE = "sqlserver"

    def ready(self) -> bool:
        return tds_answers(self.port)


class TdsHAProxy(pb.HAProxy):
    def ready(self) -> bool:
        return tds_answers(self.port)


def pg_cpu_s(double_pid: int) -> float:
    """CPU seconds of the double's PostgreSQL: every process below the double (postmaster, backends), live ones
    by their own utime + stime, exited ones through their parent's cutime + cstime."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as fh:
                    parent[int(d)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    tick, total, todo = os.sysconf("SC_CLK_TCK"), 0.0, [double_pid]
    while todo:
        pid = todo.pop()
        kids = [c for c, pp in parent.items() if pp == pid]
        todo += kids
        try:
            with open(f"/proc/{pid}/stat") as fh:
                x = fh.read().rsplit(")", 1)[1].split()
            own, reaped = int(x[11]) + int(x[12]), int(x[13]) + int(x[14])
        except (OSError, ValueError, IndexError):
            continue
        total += reaped / tick if pid == double_pid else (own + reaped) / tick
    return total


def cpu_now(pids: dict) -> dict:
    """{name: CPU seconds} of the double's interpreter, its PostgreSQL, haproxy and switchyardd."""
    return {"double": ab.cpu_s(pids["double"]), "postgres": pg_cpu_s(pids["double"]),
            "haproxy": ab.cpu_s(pids["haproxy"]), "switchyard": ab.cpu_s(pids["switchyard"])}


# --- client processes -----------------------------------------------------------------------------------

def _op(workload: str, cur, idx: int, table: str, nrows: int, rnd: random.Random, n: int) -> None:
    if workload == "point_select":
        k = rnd.randrange(nrows)
        cur.execute(f"SELECT id, v FROM dbo.{table} WHERE id = %s", (k,))
        row = cur.fetchone()
        if row is None or row[0] != k:
            raise LookupError(f"SELECT by id {k} found {row!r}")
    elif workload == "ping":
        cur.execute("SELECT 1")
        cur.fetchall()
    else:
        cur.execute(f"INSERT INTO dbo.{table} (id, w, n, s) VALUES (%s, %s, %s, %s)",
                    (idx * 10 ** 9 + n, idx, n, "x" * 100))


def _worker(idx: int, port: int, workload: str, ns: str, secs: float | None, nrows: int, interval: float,
            barrier, stop_evt, out) -> None:
    """One client process, mongo_bench's _worker for pytds: ns is "database.table". Its own connection as USER;
    after the barrier, `workload` ops for secs (or until stop_evt), each timed; with interval > 0 one op per
    interval s at most. An op that fails is counted and the connection opened again (a proxy that closed it
    would otherwise fail every later op). Puts {ops, errors, elapsed_s, acked (insert ids), lat: array('f') ms,
    t: array('d') start times} on out."""
    res = {"idx": idx, "ops": 0, "errors": 0, "error_kinds": {}, "elapsed_s": 0.0}
    lat, starts, acked = array("f"), array("d"), array("q")
    database, table = ns.split(".", 1)
    conn = cur = None
    rnd = random.Random(idx)

    def reconnect():
        nonlocal conn, cur
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may not close cleanly
                pass
        conn = connect(port, database=database)
        cur = conn.cursor()

    try:
        reconnect()
        cur.execute("SELECT 1")                          # connected and logged in before the clock starts
        cur.fetchall()
    except Exception as e:  # noqa: BLE001 - reported, and the barrier still released
        res["setup_error"] = repr(e)[:300]
    try:
        barrier.wait(120)
    except Exception as e:  # noqa: BLE001
        res["setup_error"] = res.get("setup_error") or f"barrier: {e!r}"
    if "setup_error" not in res:
        clock = time.monotonic
        cpu0 = time.process_time()
        t0 = nxt = clock()
        end = t0 + secs if secs else None
        n = 0
        while (clock() < end) if end else not stop_evt.is_set():
            if interval:
                nxt += interval
                if nxt > clock():
                    time.sleep(nxt - clock())
            s = clock()
            try:
                _op(workload, cur, idx, table, nrows, rnd, n)
                if workload == "insert":
                    acked.append(idx * 10 ** 9 + n)
            except Exception as e:  # noqa: BLE001 - counted; the switch part goes on
                res["errors"] += 1
                k = f"{type(e).__name__}: {str(e)[:160]}"
                res["error_kinds"][k] = res["error_kinds"].get(k, 0) + 1
                try:
                    reconnect()
                except Exception:  # noqa: BLE001 - the next op fails and tries again
                    time.sleep(0.05)
            lat.append((clock() - s) * 1000.0)
            starts.append(s)
            n += 1
        res["elapsed_s"] = clock() - t0
        res["ops"] = n - res["errors"]
        res["cpu_s"] = time.process_time() - cpu0
    if conn is not None:
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass
    res["lat"], res["t"], res["acked"] = lat.tobytes(), starts.tobytes(), acked.tobytes()
    out.put(res)


class Fleet(mb.Fleet):
    """mongo_bench's Fleet (a barrier releases the clients together; finish() merges their timings) running
    this module's pytds _worker; finish() also collects the acknowledged insert ids (self.acked) and the
    clients' CPU seconds (self.cpu_s)."""

    def __init__(self, n: int, port: int, workload: str, ns: str, secs: float | None = None, nrows: int = 0,
                 rate: float = 0):
        super().__init__(n, port, workload, ns, secs, nrows, rate)
        ctx = mp.get_context("fork")
        self.procs = [ctx.Process(target=_worker, daemon=True,
                                  args=(i, port, workload, ns, secs, nrows, n / rate if rate else 0.0,
                                        self.barrier, self.stop_evt, self.out))
                      for i in range(n)]
        self._queue_get = self.out.get
        self.acked, self.cpu_s = array("q"), 0.0
        self.out.get = self._get                 # keep what finish() does not merge from each client's result

    def _get(self, *a, **kw):
        r = self._queue_get(*a, **kw)
        self.acked.frombytes(r.pop("acked"))
        self.cpu_s += r.pop("cpu_s", 0.0)
        return r


# --- setup ----------------------------------------------------------------------------------------------

def admin_exec(d, sql: str, database: str | None = None):
    return execute(d.port, sql, database, user=d.user, password=d.password)


def setup_doubles(business, dr, nrows: int) -> None:
    """The `bench` login on both doubles (a move logs the client in on the other side); benchdb with dbo.items
    (nrows rows) on business."""
    for d in (business, dr):
        admin_exec(d, f"CREATE LOGIN {USER} WITH PASSWORD = '{PASSWORD}'")
    admin_exec(business, f"CREATE DATABASE {DB}")
    admin_exec(business, f"CREATE USER {USER} FOR LOGIN {USER}; ALTER ROLE db_datareader ADD MEMBER {USER}; "
                         f"ALTER ROLE db_datawriter ADD MEMBER {USER}", DB)     # the double enforces writes
    admin_exec(business, f"CREATE TABLE dbo.{ITEMS} (id int NOT NULL PRIMARY KEY, v nvarchar(100) NOT NULL)", DB)
    with connect(business.port, business.user, business.password, DB) as c, c.cursor() as cur:
        for i in range(0, nrows, 500):
            cur.execute(f"INSERT INTO dbo.{ITEMS} (id, v) VALUES "
                        + ", ".join(f"({j}, N'item-{j}')" for j in range(i, min(i + 500, nrows))))
        cur.execute(f"SELECT COUNT(*) FROM dbo.{ITEMS}")
        got = cur.fetchone()[0]
    if got != nrows:
        raise BenchError(f"benchdb.dbo.{ITEMS} holds {got} rows, expected {nrows}")


def insert_table(d, database: str, name: str) -> None:
    admin_exec(d, f"CREATE TABLE dbo.{name} (id bigint NOT NULL PRIMARY KEY, w int NOT NULL, n int NOT NULL, "
                  f"s nvarchar(200) NOT NULL)", database)


# --- part 1: the proxy data path ------------------------------------------------------------------------

def proxy_part(args, work: Path, business, dr, report: dict, problems: list) -> None:
    out = report["proxy"]
    hp = TdsHAProxy(work, business.port).start()
    sy = TdsSwitchyard(args.build, work / "proxy", business, dr).start()
    ports = {"direct": business.port, "haproxy": hp.port, "switchyard": sy.port}
    pids = {"double": business.proc.pid, "haproxy": hp.proc.pid, "switchyard": sy.proc.pid}
    out["targets"] = ports
    print(f"  benchdb.dbo.{ITEMS}: {args.rows} rows; haproxy :{hp.port} (pid {hp.proc.pid}), "
          f"switchyardd :{sy.port} (pid {sy.proc.pid})", flush=True)
    results = out["results"]
    runs = 0

    def one(wl, t, secs, label):
        nonlocal runs
        runs += 1
        table = ITEMS if wl == "point_select" else f"ins_{runs}"
        if wl == "insert":
            insert_table(business, DB, table)
        for name, obj in (("haproxy", hp), ("switchyard", sy)):
            if obj.proc.poll() is not None:
                raise BenchError(f"{name} exited with {obj.proc.returncode}:\n{tail(obj.log)}")
        fl = Fleet(args.clients, ports[t], wl, f"{DB}.{table}", secs, args.rows)
        t0 = fl.start()                               # clients connected and logged in: CPU from here
        cpu0 = cpu_now(pids)
        time.sleep(secs)
        el, cpu1 = time.monotonic() - t0, cpu_now(pids)
        r = fl.finish()
        r["cpu_per_s"] = {k: round((cpu1[k] - cpu0[k]) / el, 2) for k in cpu1}
        r["cpu_per_s"]["clients"] = round(fl.cpu_s / el, 2)
        if r["ops"]:                                  # CPU per op: less noisy than ops/s on busy shared cores
            us = {k: (cpu1[k] - cpu0[k]) / r["ops"] * 1e6 for k in cpu1}
            r["double_py_cpu_us_per_op"] = round(us["double"], 1)          # the interpreter alone (one GIL)
            r["double_cpu_us_per_op"] = round(us["double"] + us["postgres"], 1)
            if t != "direct":                         # the proxy's own cost
                r["proxy_cpu_us_per_op"] = round(us[t], 1)
        if wl == "insert":
            admin_exec(business, f"DROP TABLE dbo.{table}", DB)
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
                cpu = "  ".join(f"{k} {v:.2f}" for k, v in r["cpu_per_s"].items())
                print(f"   rep {rep + 1}/{args.reps} {t:<11} ops/s {f(r['ops_per_s'], '{:.0f}'):>7}  "
                      f"p50 {f(r['p50_ms'], '{:.3f}')}  p95 {f(r['p95_ms'], '{:.3f}')}  "
                      f"p99 {f(r['p99_ms'], '{:.3f}')}  max {f(r['max_ms'], '{:.1f}')}  err {r['errors']}  "
                      f"[cpu s/s: {cpu}]", flush=True)
    out["switchyard_rss_kib"] = pb.vm_rss_kib(sy.proc.pid)
    out["summary"] = summary = mb.summarize_proxy(results)
    for wl, by_t in results.items():
        for t, rs in by_t.items():
            if t in summary[wl]:
                summary[wl][t]["cpu_per_s"] = {k: med([r["cpu_per_s"][k] for r in rs]) for k in rs[0]["cpu_per_s"]}
                for k in ("double_py_cpu_us_per_op", "double_cpu_us_per_op", "proxy_cpu_us_per_op"):
                    summary[wl][t][k] = med([r.get(k) for r in rs])
    out["double_bound"] = print_proxy(summary, args)
    out["haproxy_exit"] = hp.stop()
    switchyard_log_summary(sy, out, problems, "warn")


def print_proxy(summary: dict, args) -> dict:
    """Print the tables; returns {workload: True} where the three targets ran at the same pace."""
    bound = {}
    for wl, m in summary.items():
        print(f"\n== {wl}: {args.clients} pytds client processes, {args.reps} reps x {args.time:g} s, "
              f"interleaved; medians ==")
        hdr = (f"{'target':<11} {'ops/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'max ms':>7} "
               f"{'ops/direct':>10} {'ops/HAProxy':>11} {'p99/HAProxy':>11} {'errors':>6} {'double us/op':>12} {'proxy us/op':>11}")
        print(hdr)
        print("-" * len(hdr))
        for t in TARGETS:
            if t not in m:
                continue
            x = m[t]
            print(f"{t:<11} {f(x['ops_per_s'], '{:.0f}'):>8} {f(x['p50_ms'], '{:.3f}'):>7} "
                  f"{f(x['p95_ms'], '{:.3f}'):>7} {f(x['p99_ms'], '{:.3f}'):>7} {f(x['max_ms'], '{:.1f}'):>7} "
                  f"{f(x['ops_vs_direct']):>10} {f(x['ops_vs_haproxy']):>11} {f(x['p99_vs_haproxy']):>11} "
                  f"{x['errors']:>6} {f(x['double_cpu_us_per_op'], '{:.0f}'):>12} "
                  f"{f(x['proxy_cpu_us_per_op'], '{:.0f}'):>11}")
        print("  us/op = CPU microseconds per op (the double: its interpreter + its PostgreSQL); CPU s/s (medians):")
        for t in TARGETS:
            if t in m:
                c = m[t]["cpu_per_s"]
                print(f"    {t:<11} clients {f(c['clients'])}  double {f(c['double'])}  postgres "
                      f"{f(c['postgres'])}  proxy {f(c[t]) if t != 'direct' else '-'}")
        py_us = med([m[t]["double_py_cpu_us_per_op"] for t in m])
        px = {t: m[t]["proxy_cpu_us_per_op"] for t in TARGETS[1:] if t in m}
        if py_us:
            print(f"  the double's interpreter spends {py_us:.0f} us of CPU per op (one GIL: at most ~{1e6 / py_us:.0f} "
                  f"ops/s with a core to itself), the proxy {f(px.get('haproxy'), '{:.0f}')} us (HAProxy) and "
                  f"{f(px.get('switchyard'), '{:.0f}')} us (switchyardd)")
        ops = [m[t]["ops_per_s"] for t in TARGETS if t in m and m[t]["ops_per_s"]]
        if len(ops) == len(TARGETS) and max(ops) / min(ops) <= SAME_PACE:
            bound[wl] = True
            print(f"  note: the three targets are within {SAME_PACE - 1:.0%} of each other: the SQL Server double "
                  f"(Python, one interpreter) and the Python clients set the pace here, not the proxy; the ops/s "
                  f"ratios do not measure the proxy's cost (its CPU per op does)")
    return bound


def loaded_note(load_start) -> None:
    now, n = os.getloadavg(), os.cpu_count() or 1
    if max(load_start[0], now[0]) > n:
        print(f"\n  note: load average {load_start[0]:.1f} at the start, {now[0]:.1f} now, on {n} cores: this bench's "
              f"processes got a fraction of the cores, so ops/s and their ratios swing from run to run; the CPU per "
              f"op (us/op) depends much less on the load", flush=True)


# --- part 2: switchover pause under load ----------------------------------------------------------------

def skipped(out: dict, why: str, code: str | None = None) -> None:
    out["skipped"], out["skipped_code"] = why, code
    print(f"switchover: skipped ({why})", flush=True)


def refused(reply: dict) -> tuple | None:
    """(code, message) of an admin reply that is an error, else None."""
    if reply.get("ok"):
        return None
    err = reply.get("error") or {}
    return err.get("code"), err.get("message") or err.get("code") or "?"


def switch_part(args, work: Path, business, dr, report: dict, problems: list) -> None:
    """benchsw (CDC on both sides, dbo.t CDC-enabled on business), switchyardd with objects = benchsw.*,
    create-reverse, insert clients through the proxy, switches. Every refusal that says "not built" is a
    clean skip; anything else that breaks is a problem of the run."""
    out = report["switchover"]
    print(f"\n-- switchover under load: {args.clients} pytds insert clients at {args.rate:g} inserts/s in all, "
          f"{args.switches} switches", flush=True)
    for d in (business, dr):
        admin_exec(d, f"CREATE DATABASE {SW_DB}")
        admin_exec(d, f"CREATE USER {USER} FOR LOGIN {USER}; ALTER ROLE db_datareader ADD MEMBER {USER}; "
                      f"ALTER ROLE db_datawriter ADD MEMBER {USER}", SW_DB)   # fenced on the passive side
        admin_exec(d, "EXEC sys.sp_cdc_enable_db", SW_DB)
    insert_table(business, SW_DB, "t")
    admin_exec(business, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N't', "
                         "@role_name = NULL", SW_DB)
    (work / "switch" / "state").mkdir(parents=True)
    sy = TdsSwitchyard(args.build, work / "switch", business, dr, objects=f"{SW_DB}.*", level="info",
                       apply_threads=args.apply_threads).start()
    try:
        switch_load(args, sy, business, dr, out, problems)
    finally:
        switchyard_log_summary(sy, out, problems, "info")


def ready_to_switch(sy: TdsSwitchyard, out: dict, problems: list) -> bool:
    """The forward instance running, create-reverse, the reverse instance collecting. False (the part skipped)
    at the first step that fails: a refusal as not_implemented is a clean skip, anything else a problem too."""
    def fail(step: str, why: str, code: str | None = None) -> bool:
        if code != "not_implemented":
            problems.append({"where": f"switchover: {step}", "error": f"{code or 'error'}: {why}"})
        skipped(out, f"{step}: {why}", code)
        return False

    if sy.instance("forward") is None:   # an engine without synchronization opens no forward instance
        code, why = refused(sy.admin("create-reverse", pair=PAIR)) or (None, "answered ok without a forward instance")
        return fail("create-reverse", why, code)
    for direction, state, timeout in (("forward", "running", 120), ("reverse", "collecting", 60)):
        if direction == "reverse":
            code, why = refused(sy.admin("create-reverse", pair=PAIR)) or ("exists", "")
            if code != "exists":
                return fail("create-reverse", why, code)
        try:
            sw.wait_state(sy, direction, state, timeout)
        except BenchError as e:
            return fail(f"{direction} instance", str(e))
    return True


def switch_load(args, sy: TdsSwitchyard, business, dr, out: dict, problems: list) -> None:
    if not ready_to_switch(sy, out, problems):
        return
    fleet = Fleet(args.clients, sy.port, "insert", f"{SW_DB}.t", rate=args.rate)
    t0 = fleet.start()
    recs = out["switches"]
    try:
        time.sleep(args.baseline)
        t_base_end = time.monotonic()
        for i in range(args.switches):
            rec = sw.do_switch(sy, i, None)
            rec["t_sent"] = round(time.monotonic() - t0 - rec["call_ms"] / 1000, 3)
            rec["t_answer"] = round(time.monotonic() - t0, 3)
            recs.append(rec)
            if not rec["ok"]:
                if i == 0:
                    break
                problems.append({"where": f"switch {i + 1} ({rec['cmd']})", "error": rec["error"]})
            sw.print_switch(rec)
            time.sleep(args.gap)
    finally:
        res = fleet.finish()
    out["clients"] = res
    if recs and not recs[0]["ok"]:
        e = recs[0]["error"]
        skipped(out, e["message"] or e["code"], e["code"])
        return
    summarize_switches(out, fleet, t0, t_base_end, res, sy, business, dr, problems)


def summarize_switches(out, fleet, t0, t_base_end, res, sy, business, dr, problems) -> None:
    recs = out["switches"]
    starts, lat = fleet.samples
    base = sorted(v for s, v in zip(starts, lat) if s < t_base_end)
    around = [v for s, v in zip(starts, lat)
              if any(t0 + r["t_sent"] - 0.5 <= s <= t0 + r["t_answer"] + 1.0 for r in recs)]
    pauses = [r["pause_ms"] for r in recs if r["ok"] and r.get("pause_ms") is not None]
    active = dr if sy.pair().get("active_side") == "dr" else business
    got = {r[0] for r in admin_exec(active, "SELECT id FROM dbo.t", SW_DB)}
    missing = [i for i in fleet.acked if i not in got]
    a = {"pause_p50_ms": med(pauses), "pause_max_ms": max(pauses) if pauses else None,
         "switches_ok": len(pauses), "switches": len(recs),
         "client_max_ms_around_switches": round(max(around), 1) if around else None,
         "baseline_p99_ms": _q(base, 99), "baseline_max_ms": round(base[-1], 1) if base else None,
         "client_errors": res["errors"], "client_error_kinds": res["error_kinds"], "ops_per_s": res["ops_per_s"],
         "acked_inserts": len(fleet.acked), "acked_missing_on_active": len(missing),
         "moved_clients": [r.get("moved_clients") for r in recs if r["ok"]]}
    steps = sorted({k for r in recs if r["ok"] for k in (r.get("steps") or {})})
    a["steps_p50_ms"] = {k: med([r["steps"][k] for r in recs if r["ok"] and k in (r.get("steps") or {})])
                         for k in steps}    # where the pause goes
    out["summary"] = a
    if res["errors"] or res["setup_errors"]:
        problems.append({"where": "switchover clients", "error": f"{res['errors']} client errors "
                         f"{res['error_kinds']} {res['setup_errors']}"})
    if missing:
        problems.append({"where": "switchover: acknowledged inserts", "error": f"{len(missing)} of "
                         f"{len(fleet.acked)} missing on the active side, e.g. {missing[:5]}"})
    ok = (a["pause_p50_ms"] is not None and a["pause_p50_ms"] <= GOAL_P50_MS and a["pause_max_ms"] <= GOAL_MAX_MS
          and not res["errors"])
    print(f"\n== switchover pause: {a['switches_ok']}/{a['switches']} switches ok ==\n"
          f"  pause p50 {f(a['pause_p50_ms'], '{:.0f}')} ms, max {f(a['pause_max_ms'], '{:.0f}')} ms; client max "
          f"latency around switches {f(a['client_max_ms_around_switches'], '{:.1f}')} ms (baseline p99 "
          f"{f(a['baseline_p99_ms'], '{:.2f}')}, max {f(a['baseline_max_ms'], '{:.1f}')} ms); client errors "
          f"{res['errors']}; {f(res['ops_per_s'], '{:.0f}')} inserts/s overall; acknowledged inserts missing on "
          f"the active side: {len(missing)} of {len(fleet.acked)}\n"
          f"  steps p50 (ms): {' '.join(f'{k[:-3]} {v}' for k, v in a['steps_p50_ms'].items())}\n"
          f"  goal p50 <= {GOAL_P50_MS} ms, max <= {GOAL_MAX_MS} ms, 0 errors: {'met' if ok else 'NOT MET'}")


# --- main -----------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build"), help="build dir with switchyardd and switchyardctl")
    ap.add_argument("--quick", action="store_true", help="smoke run (~2.5 min)")
    ap.add_argument("--reps", type=int, default=None, help="proxy reps (3; --quick 2)")
    ap.add_argument("--time", type=float, default=None, help="seconds per proxy run (15; --quick 3)")
    ap.add_argument("--warmup", type=float, default=None, help="warm-up seconds per target (3; --quick 1)")
    ap.add_argument("--clients", type=int, default=8, help="client processes")
    ap.add_argument("--workloads", default=",".join(WORKLOADS))
    ap.add_argument("--rows", type=int, default=10000, help="rows in benchdb.dbo.items")
    ap.add_argument("--apply-threads", type=int, default=None, help="the switch pair's apply_threads")
    ap.add_argument("--switches", type=int, default=None, help="switchovers/switchbacks (20; --quick 4)")
    ap.add_argument("--rate", type=float, default=40, help="inserts/s of all switchover clients together")
    ap.add_argument("--gap", type=float, default=2, help="seconds between a switch's answer and the next call")
    ap.add_argument("--baseline", type=float, default=None, help="load seconds before the first switch (5; --quick 3)")
    ap.add_argument("--skip", default="", help="parts to skip: proxy,switchover")
    ap.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (switchyardd and haproxy logs)")
    args = ap.parse_args()
    q = args.quick
    args.reps = args.reps if args.reps is not None else (2 if q else 3)
    args.time = args.time if args.time is not None else (3 if q else 15)
    args.warmup = args.warmup if args.warmup is not None else (1 if q else 3)
    args.switches = args.switches if args.switches is not None else (4 if q else 20)
    args.baseline = args.baseline if args.baseline is not None else (3 if q else 5)
    args.workloads = [w for w in args.workloads.split(",") if w]
    args.build = Path(args.build).resolve()
    skip = {s for s in args.skip.split(",") if s}

    interrupt_on_term_signals()
    faulthandler.register(signal.SIGUSR2, all_threads=True)   # kill -USR2 PID: where it waits
    nofile = raise_nofile()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    work = Path(tempfile.mkdtemp(prefix="sy-tb-", dir="/tmp"))    # short: admin socket path < 107
    (work / "proxy" / "state").mkdir(parents=True)
    report = {
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "host": {"nproc": os.cpu_count(), "loadavg_start": os.getloadavg(), "nofile": list(nofile),
                 "uname": " ".join(os.uname())},
        "versions": {"pytds": getattr(pytds, "__version__", "?"),
                     "haproxy": tool_version([shutil.which("haproxy") or "/usr/sbin/haproxy", "-v"])},
        "proxy": {"results": {}}, "switchover": {"switches": []}, "problems": [],
    }
    problems = report["problems"]
    rc = 0
    print(f"tds_bench: {len(args.workloads)} workloads x {len(TARGETS)} targets x {args.reps} reps x "
          f"{args.time:g} s, {args.clients} clients; {args.switches} switches; work dir {work}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    try:
        with running_double(sandbox.ADMIN_USER, sandbox.ADMIN_PASSWORD) as business, \
                running_double(sandbox.ADMIN_USER, sandbox.ADMIN_PASSWORD) as dr:
            print(f"  SQL Server doubles: business {HOST}:{business.port} (pid {business.proc.pid}), "
                  f"dr {HOST}:{dr.port}", flush=True)
            setup_doubles(business, dr, args.rows)
            try:
                if "proxy" not in skip:
                    proxy_part(args, work, business, dr, report, problems)
                    loaded_note(report["host"]["loadavg_start"])
                if "switchover" not in skip:
                    switch_part(args, work, business, dr, report, problems)
            except BaseException:
                report["double_log_tail"] = "\n".join(business.log().splitlines()[-60:])
                raise
    except (KeyboardInterrupt, Interrupted) as e:
        rc = on_interrupt("tds_bench", e, report)
    except Exception as e:  # noqa: BLE001 - still write what we have
        rc = on_crash(e, report, {f"switchyardd {d.work.name}": d.log for d in mb.MongoSwitchyard.started[-1:]},
                      keep=60, show=30)
    finally:
        stop_all_children()
        write_report(report, args.results_dir, f"tds-{stamp}.json")
        remove_work_dir(work, args.keep)
    return report_problems("tds_bench", problems, rc)


if __name__ == "__main__":
    sys.exit(main())
