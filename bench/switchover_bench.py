#!/usr/bin/python3
"""Switchover benchmark: the client-visible pause of switchover/switchback under sysbench oltp_read_write.

    /usr/bin/python3 bench/switchover_bench.py --build build            # 20 alternating switches (~6 min)
    /usr/bin/python3 bench/switchover_bench.py --build build --quick    # smoke run: 5 switches (~3 min)

Issue 5's target: under oltp_read_write at about 1000 TPS with 64 client connections, over 20 alternating
switchover/switchback calls: max pause <= 500 ms, p50 <= 200 ms, 0 client errors (printed, never asserted).

What it does (TESTING.md "Benchmarks": side by side in one run, >= 3 interleaved repetitions, no asserted timing):
  1. two sandbox MariaDB servers (scripts/sandbox.py): business and dr. An application account `sw_app`
     (ALL on sbtest.* only: no SUPER, no READ ONLY ADMIN, as applications have; created on both sides) is
     what sysbench uses through the proxy. sbtest (4 tables x 10000 rows) is prepared straight on business
     before switchyardd starts with `objects = sbtest.*`, so the initial sync copies it to dr; the bench
     waits for the forward instance `running` (initial sync done), runs `create-reverse` and waits for the
     reverse instance `collecting`. Switch bounds are the product defaults (printed with the results).
  2. R repetitions (3), each a **baseline** run and a **switch** run of the same sysbench
     (oltp_read_write --threads=64 --rate=1000 --report-interval=1 --percentile=99, same length), through
     the proxy port, in alternating order (baseline first in even reps). In a switch run, after a 5 s
     warm-up, the bench calls `switchover` (active side business) or `switchback` (active side dr) on the
     admin socket, one at a time, --gap seconds (2) after the previous answer; the N switches (20, --quick 5)
     are spread over the reps. A switch that answers an error is recorded (code, message, steps) and the
     bench goes on.
  3. sysbench's per-second reports are timestamped as they arrive (stdbuf -oL), so each second can be
     placed against the switch calls: a second "around a switch" overlaps [call sent, answer + 1 s]. The
     TPS dip is the minimum 1-s TPS around switches vs the median 1-s TPS of the baseline runs (whose own
     minimum is printed too: the noise floor on these shared cores). With --rate, transactions that wait
     during a pause are queued and run afterwards, so a pause shows as a dip followed by a burst.
  4. pause_ms of each switch (hold to release, measured by switchyardd) -> p50/p95/max; per-step
     milliseconds (catch_up/warm happen before the hold; quiesce/fence/drain/flip/start_release make up
     the pause) -> medians and maxima and which step dominates.
  5. client errors (the "0 errors" target): transactions the switches rolled back (`aborted_transactions`:
     1213 to the client after txn_drain_ms, which sysbench retries), reconnects, FATAL lines and non-zero
     exits of the switch runs. sysbench's ignored errors (1213/1205/1020) are printed per second, baseline vs
     around switches, not counted: oltp_read_write at 64 threads has InnoDB deadlocks of its own.
     When the box cannot run --rate (baseline median 1-s TPS < 90% of it) a note says so: sysbench's event
     queue then grows all along and its latencies are mostly queueing.
  6. afterwards: the load stops, the passive side catches up and CHECKSUM TABLE of the 4 tables must be
     equal on both sides.
Prints the tables and writes everything as JSON to bench/results/switchover-<timestamp>.json. Everything
started here is stopped at the end, on exceptions, on Ctrl-C and on SIGTERM/SIGHUP (process handling of
bench/common.py). Exit status 1 when something broke (sysbench failed, switchyardd died, checksums
differ, a switch failed); a missed target alone is not a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (ROOT, Interrupted, admin_request, interrupt_on_term_signals, on_crash, on_interrupt,  # noqa: E402
                    raise_nofile, remove_work_dir, report_problems, spawn, stop, stop_all_children,
                    switchyard_log_summary, tail, tool_version, write_report)
import proxy_bench as pb  # noqa: E402
import sandbox  # noqa: E402  (common put scripts/ on sys.path)

HOST = pb.HOST
PAIR = "bench"
SB_DB = "sbtest"
SB_TABLES, SB_TABLE_SIZE = 4, 10000
APP_USER, APP_PASSWORD = "sw_app", "app-Secret-1"
WARMUP_S = 5            # sysbench seconds before the first switch of a run (and not counted in the baseline)
PER_SWITCH_S = 6        # sysbench time budgeted per switch (gap + the switch itself)
TAIL_S = 5              # after the last switch of a run
TARGET_MAX_MS, TARGET_P50_MS = 500, 200
PAUSE_STEPS = ("quiesce_ms", "fence_ms", "drain_ms", "flip_ms", "start_release_ms")
PRE_STEPS = ("catch_up_ms", "warm_ms")
ALL_STEPS = PRE_STEPS + PAUSE_STEPS + ("catch_up_lag_ms",)
SWITCH_DEFAULTS = ("switchover_max_lag_ms", "txn_drain_ms", "drain_timeout_ms", "max_hold_ms")


class BenchError(RuntimeError):
    pass


def f(v, fmt="{:.1f}", none="-"):
    return pb.f(v, fmt, none)


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def pct(vals, p):
    """Nearest-rank percentile (p in 0..100)."""
    vals = sorted(v for v in vals if v is not None)
    if not vals:
        return None
    return vals[max(0, math.ceil(p / 100 * len(vals)) - 1)]


# --- switchyardd ----------------------------------------------------------------------------------------

class SwitchyardPair(pb.Switchyard):
    """proxy_bench's Switchyard with a forward instance for sbtest.* (log_level info: switch summaries)."""

    def config(self) -> str:
        return (super().config().replace("log_level    = warn", "log_level    = info")
                .replace("[pair bench]", f"[pair {PAIR}]") + f"objects        = {SB_DB}.*\n")

    def admin(self, cmd: str, timeout: float = 10, **args) -> dict:
        """One request on the admin socket (a JSON line each way); returns the whole reply."""
        return admin_request(self.sock, cmd, timeout, **args)

    def admin_ok(self, cmd: str, timeout: float = 10, **args) -> dict:
        reply = self.admin(cmd, timeout, **args)
        if not reply.get("ok"):
            raise BenchError(f"admin {cmd}: {reply.get('error')}")
        return reply["result"]

    def pair(self) -> dict:
        st = self.admin_ok("status", pair=PAIR)
        return st.get("pairs", [st])[0]

    def instance(self, direction: str) -> dict | None:
        return next((i for i in self.pair().get("instances", []) if i.get("direction") == direction), None)

    def alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise BenchError(f"switchyardd exited with {self.proc.returncode if self.proc else '?'}:\n"
                             f"{tail(self.log, 40)}")

    def wait(self, pred, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.alive()
            last = pred()
            if last:
                return last
            time.sleep(0.1)
        raise BenchError(f"no {what} after {timeout:.0f} s (last: {json.dumps(last)[:600] if last else last})")


def wait_state(sy: SwitchyardPair, direction: str, state: str, timeout: float, extra=lambda i: True) -> dict:
    def pred():
        i = sy.instance(direction) or {}
        if i.get("state") in ("failed", "precheck_failed", "terminated"):
            raise BenchError(f"{PAIR}/{direction} is {i['state']}: {i.get('last_error')} (reason {i.get('reason')})")
        return i if i.get("state") == state and extra(i) else None
    return sy.wait(pred, timeout, f"{PAIR}/{direction} {state}")


# --- sysbench -------------------------------------------------------------------------------------------

_REPORT = re.compile(r"^\[ (\d+)s \] thds: (\d+) tps: ([\d.]+) qps: ([\d.]+) \(r/w/o: [^)]*\) "
                     r"lat \(ms,99%\): ([\d.]+) err/s: ([\d.]+) reconn/s: ([\d.]+)")
_QUEUE = re.compile(r"^\[ (\d+)s \] queue length: (\d+), concurrency: (\d+)")


def sb_cmd(port: int, user: str, password: str, *extra) -> list:
    return ["sysbench", "oltp_read_write", "--db-driver=mysql", f"--mysql-host={HOST}", f"--mysql-port={port}",
            f"--mysql-user={user}", f"--mysql-password={password}", f"--mysql-db={SB_DB}",
            f"--tables={SB_TABLES}", f"--table-size={SB_TABLE_SIZE}", *extra]


class SysbenchRun:
    """sysbench in the background; every output line is timestamped (seconds since spawn) on arrival."""

    def __init__(self, port: int, secs: int, threads: int, rate: int, work: Path, label: str):
        self.secs, self.label = secs, label
        self.out = work / f"sb-{label}.out"
        cmd = sb_cmd(port, APP_USER, APP_PASSWORD, f"--threads={threads}", f"--rate={rate}", f"--time={secs}",
                     "--events=0", "--report-interval=1", "--percentile=99", "run")
        if shutil.which("stdbuf"):
            cmd = ["stdbuf", "-oL", "-eL", *cmd]
        self.lines: list = []                     # (t since spawn, line)
        self.t0 = time.monotonic()
        self.proc = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        with open(self.out, "w") as log:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                t = time.monotonic() - self.t0
                self.lines.append((t, line))
                log.write(f"{t:9.3f} {line}\n")
                log.flush()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def running(self) -> bool:
        return self.proc.poll() is None

    def finish(self) -> dict:
        try:
            self.proc.wait(timeout=self.secs + 120)
        except subprocess.TimeoutExpired:
            pass
        timed_out = self.proc.poll() is None
        stop(self.proc, signal.SIGKILL if timed_out else signal.SIGTERM, timeout=5)
        self.reader.join(10)
        text = "\n".join(line for _, line in self.lines)
        seconds, queue = [], {}
        for t, line in self.lines:
            m = _REPORT.match(line)
            if m:
                seconds.append({"s": int(m.group(1)), "arrived": round(t, 3), "thds": int(m.group(2)),
                                "tps": float(m.group(3)), "qps": float(m.group(4)), "lat99_ms": float(m.group(5)),
                                "err_s": float(m.group(6)), "reconn_s": float(m.group(7))})
                continue
            m = _QUEUE.match(line)
            if m:
                queue[int(m.group(1))] = (int(m.group(2)), int(m.group(3)))
        for s in seconds:
            if s["s"] in queue:
                s["queue"], s["concurrency"] = queue[s["s"]]
        fatal = [line for _, line in self.lines if "FATAL" in line or re.search(r"\bALERT\b|error \d{4}", line)]
        r = {
            "label": self.label, "time_s": self.secs, "rc": self.proc.returncode,
            "transactions": pb._num(r"^\s*transactions:\s+(\d+)", text, int),
            "tps": pb._num(r"^\s*transactions:\s+\d+\s+\(([\d.]+) per sec", text),
            "qps": pb._num(r"^\s*queries:\s+\d+\s+\(([\d.]+) per sec", text),
            "ignored_errors": pb._num(r"^\s*ignored errors:\s+(\d+)", text, int),
            "reconnects": pb._num(r"^\s*reconnects:\s+(\d+)", text, int),
            "lat_avg_ms": pb._num(r"^\s*avg:\s+([\d.]+)", text),
            "lat_max_ms": pb._num(r"^\s*max:\s+([\d.]+)", text),
            "p99_ms": pb._num(r"^\s*99th percentile:\s+([\d.]+)", text),
            "fatal_lines": fatal[:30], "seconds": seconds,
        }
        r["failed"] = bool(timed_out or self.proc.returncode != 0 or r["tps"] is None or fatal)
        if timed_out:
            r["failure"] = f"still running {self.secs + 120} s after start: killed"
        if r["failed"]:
            r["output_tail"] = "\n".join(line for _, line in self.lines[-25:])
        # arrival timestamps are trustworthy when the reports arrived about a second apart (line-buffered)
        arr = [s["arrived"] for s in seconds]
        gaps = [b - a for a, b in zip(arr, arr[1:])]
        r["report_gap_s"] = {"median": med(gaps), "max": max(gaps) if gaps else None}
        return r


# --- switches -------------------------------------------------------------------------------------------

def long_read(port: int, secs: float, out: dict) -> threading.Thread:
    """An autocommit SELECT SLEEP(secs) through the proxy (a report query), started before a switch."""
    import pymysql

    def run():
        t0 = time.monotonic()
        try:
            c = pymysql.connect(host=HOST, port=port, user=APP_USER, password=APP_PASSWORD, database=SB_DB,
                                autocommit=True)
            with c.cursor() as cur:
                cur.execute(f"SELECT SLEEP({secs})")
                out["result"] = cur.fetchall()
            c.close()
        except Exception as e:  # noqa: BLE001 - recorded, the bench goes on
            out["error"] = repr(e)
        out["read_s"] = round(time.monotonic() - t0, 3)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def do_switch(sy: SwitchyardPair, index: int, sb: SysbenchRun | None, long_read_s: float = 0) -> dict:
    active = sy.pair().get("active_side")
    cmd = "switchover" if active == "business" else "switchback"
    rec = {"index": index, "cmd": cmd, "active_before": active}
    reader = None
    if long_read_s > 0:
        rec["long_read"] = {"seconds": long_read_s}
        reader = long_read(sy.port, long_read_s, rec["long_read"])
        time.sleep(0.5)                         # the read is running when the switch starts
    rec["t_sent"] = round(sb.now(), 3) if sb else None
    t0 = time.monotonic()
    try:
        reply = sy.admin(cmd, timeout=120, pair=PAIR)
    except (OSError, ValueError) as e:
        reply = {"ok": False, "error": {"code": "no_reply", "message": repr(e)}}
    rec["call_ms"] = round((time.monotonic() - t0) * 1000, 1)
    rec["t_answer"] = round(sb.now(), 3) if sb else None
    rec["ok"] = bool(reply.get("ok"))
    if rec["ok"]:
        res = reply["result"]
        rec.update({k: res.get(k) for k in ("active_side", "pause_ms", "aborted_transactions", "moved_clients",
                                            "epoch", "closed_unmovable")})
        rec["steps"] = res.get("steps") or {}
    else:
        err = reply.get("error") or {}
        rec["error"] = {"code": err.get("code"), "message": err.get("message")}
        rec["error_detail"] = {k: v for k, v in err.items() if k not in ("code", "message")}
        rec["steps"] = (err.get("steps") or {}) if isinstance(err, dict) else {}
    if reader is not None:
        reader.join(long_read_s + 30)
    return rec


def print_switch(rec: dict) -> None:
    st = rec.get("steps") or {}
    steps = " ".join(f"{k[:-3]} {st[k]}" for k in ALL_STEPS if k in st)
    if rec["ok"]:
        print(f"     #{rec['index'] + 1:>2} {rec['cmd']:<10} pause {rec['pause_ms']:>5} ms  call {rec['call_ms']:>7.0f} ms  "
              f"moved {rec['moved_clients']} aborted {rec['aborted_transactions']} epoch {rec['epoch']}  [{steps}]",
              flush=True)
    else:
        print(f"     #{rec['index'] + 1:>2} {rec['cmd']:<10} FAILED {rec['error']['code']}: {rec['error']['message']}"
              f"  (call {rec['call_ms']:.0f} ms) [{steps}]", flush=True)


# --- analysis -------------------------------------------------------------------------------------------

def usable_seconds(run: dict) -> list:
    """Per-second reports without the warm-up and the last (partial) second."""
    secs = run.get("seconds") or []
    return [s for s in secs if s["s"] > WARMUP_S - 3 and s["s"] < (run.get("time_s") or 10 ** 9)]


def around(s: dict, rec: dict) -> bool:
    """Does report second s (covering [arrived - 1, arrived]) overlap [switch sent, answer + 1 s]?"""
    if rec.get("t_sent") is None or rec.get("t_answer") is None:
        return False
    return s["arrived"] - 1.0 < rec["t_answer"] + 1.0 and s["arrived"] > rec["t_sent"]


def analyze(report: dict) -> dict:
    base_runs = [r for rep in report["reps"] for r in [rep.get("baseline")] if r]
    sw_runs = [r for rep in report["reps"] for r in [rep.get("switch")] if r]
    switches = report["switches"]
    ok = [s for s in switches if s["ok"]]
    pauses = [s["pause_ms"] for s in ok]
    a = {"switches": len(switches), "switches_ok": len(ok), "switches_failed": len(switches) - len(ok),
         "failed_codes": sorted({s["error"]["code"] for s in switches if not s["ok"]})}
    a["pause_ms"] = {"p50": med(pauses), "p95": pct(pauses, 95), "max": max(pauses) if pauses else None,
                     "min": min(pauses) if pauses else None, "all": pauses}
    a["call_ms"] = {"p50": med(s["call_ms"] for s in ok), "max": max((s["call_ms"] for s in ok), default=None)}
    steps = {}
    for k in ALL_STEPS:
        vals = [s["steps"][k] for s in ok if k in (s.get("steps") or {})]
        steps[k] = {"median": med(vals), "max": max(vals) if vals else None, "n": len(vals)}
    a["steps"] = steps
    dom = {}
    for s in ok:
        st = s.get("steps") or {}
        inside = {k: st[k] for k in PAUSE_STEPS if k in st}
        if inside:
            k = max(inside, key=inside.get)
            dom[k] = dom.get(k, 0) + 1
    a["dominant_pause_step_counts"] = dom
    by_med = {k: steps[k]["median"] for k in PAUSE_STEPS if steps[k]["median"] is not None}
    a["dominant_pause_step"] = max(by_med, key=by_med.get) if by_med else None
    by_med_all = {k: steps[k]["median"] for k in PRE_STEPS + PAUSE_STEPS if steps[k]["median"] is not None}
    a["dominant_step_overall"] = max(by_med_all, key=by_med_all.get) if by_med_all else None
    a["aborted_transactions"] = sum(s.get("aborted_transactions") or 0 for s in ok)
    a["moved_clients"] = {"min": min((s["moved_clients"] for s in ok), default=None),
                          "max": max((s["moved_clients"] for s in ok), default=None)}

    # TPS
    base_secs = [s for r in base_runs for s in usable_seconds(r)]
    base_tps = [s["tps"] for s in base_secs]
    a["baseline"] = {"tps_runs": [r["tps"] for r in base_runs], "tps": med(r["tps"] for r in base_runs),
                     "tps_1s_median": med(base_tps), "tps_1s_min": min(base_tps) if base_tps else None,
                     "p99_ms": med(r["p99_ms"] for r in base_runs), "p99_runs": [r["p99_ms"] for r in base_runs],
                     "lat_max_ms": max((r["lat_max_ms"] or 0 for r in base_runs), default=None),
                     "lat99_1s_max": max((s["lat99_ms"] for s in base_secs), default=None),
                     "ignored_errors": sum(r["ignored_errors"] or 0 for r in base_runs),
                     "reconnects": sum(r["reconnects"] or 0 for r in base_runs),
                     "failed_runs": sum(1 for r in base_runs if r["failed"])}
    around_secs, other_secs = [], []
    for r in sw_runs:
        recs = [s for s in switches if s.get("run") == r["label"]]
        for sec in usable_seconds(r):
            (around_secs if any(around(sec, rec) for rec in recs) else other_secs).append(sec)
    per_switch_min = []
    for rec in switches:
        r = next((x for x in sw_runs if x["label"] == rec.get("run")), None)
        secs = [sec for sec in (r.get("seconds") or [] if r else []) if around(sec, rec)]
        rec["tps_1s_around"] = [sec["tps"] for sec in secs]
        rec["tps_1s_min"] = min(rec["tps_1s_around"]) if secs else None
        rec["lat99_1s_max"] = max((sec["lat99_ms"] for sec in secs), default=None)
        if rec["tps_1s_min"] is not None:
            per_switch_min.append(rec["tps_1s_min"])
    sw_tps_around = [s["tps"] for s in around_secs]
    a["switch_runs"] = {"tps_runs": [r["tps"] for r in sw_runs], "tps": med(r["tps"] for r in sw_runs),
                        "tps_1s_median_around": med(sw_tps_around),
                        "tps_1s_mean_around": statistics.fmean(sw_tps_around) if sw_tps_around else None,
                        "tps_1s_min_around": min(sw_tps_around) if sw_tps_around else None,
                        "tps_1s_median_between": med(s["tps"] for s in other_secs),
                        "per_switch_min_tps_median": med(per_switch_min),
                        "seconds_around": len(around_secs), "seconds_between": len(other_secs),
                        "p99_ms": med(r["p99_ms"] for r in sw_runs), "p99_runs": [r["p99_ms"] for r in sw_runs],
                        "lat_max_ms": max((r["lat_max_ms"] or 0 for r in sw_runs), default=None),
                        "lat99_1s_max_around": max((s["lat99_ms"] for s in around_secs), default=None),
                        "ignored_errors": sum(r["ignored_errors"] or 0 for r in sw_runs),
                        "reconnects": sum(r["reconnects"] or 0 for r in sw_runs),
                        "err_s_around": sum(s["err_s"] for s in around_secs),
                        "fatal_lines": [ln for r in sw_runs for ln in r["fatal_lines"]][:30],
                        "failed_runs": sum(1 for r in sw_runs if r["failed"])}
    b, s = a["baseline"], a["switch_runs"]
    a["tps_dip_pct"] = (round(100 * (1 - s["tps_1s_min_around"] / b["tps_1s_median"]), 1)
                        if s["tps_1s_min_around"] is not None and b["tps_1s_median"] else None)
    # errors the switches caused: transactions switchyardd rolled back (1213 to the client, retried by
    # sysbench), reconnects, FATAL lines, failed runs. sysbench's ignored errors also count InnoDB's own
    # deadlocks (the baseline has them too), so they are compared, not counted.
    client_errors = (a["aborted_transactions"] + s["reconnects"] + len(s["fatal_lines"]) + s["failed_runs"])
    a["client_errors_switch_runs"] = client_errors
    b_secs = len(base_secs)
    a["ignored_errors_per_s"] = {"baseline": round(sum(x["err_s"] for x in base_secs) / b_secs, 3) if b_secs else None,
                                 "around_switches": (round(s["err_s_around"] / len(around_secs), 3)
                                                     if around_secs else None)}
    qmax = [x.get("queue") for r in base_runs + sw_runs for x in r.get("seconds") or [] if x.get("queue") is not None]
    a["sysbench_queue_max"] = max(qmax) if qmax else None
    rate = report["args"]["rate"]
    a["saturated"] = bool(rate and b["tps_1s_median"] is not None and b["tps_1s_median"] < 0.9 * rate)
    p = a["pause_ms"]
    a["verdict"] = {
        "max_pause": None if p["max"] is None else p["max"] <= TARGET_MAX_MS,
        "p50_pause": None if p["p50"] is None else p["p50"] <= TARGET_P50_MS,
        "zero_errors": client_errors == 0,
        "all_switches_ok": a["switches_failed"] == 0,
    }
    return a


def print_summary(report: dict, a: dict) -> None:
    cfg = report.get("switch_config", {})
    print(f"\n== switchover pause: {a['switches_ok']}/{a['switches']} switches ok "
          f"(oltp_read_write, {report['args']['threads']} threads, --rate={report['args']['rate']}; "
          + ", ".join(f"{k}={v}" for k, v in cfg.items()) + ") ==")
    p = a["pause_ms"]
    print(f"  pause_ms   p50 {f(p['p50'], '{:.0f}')}   p95 {f(p['p95'], '{:.0f}')}   max {f(p['max'], '{:.0f}')}   "
          f"min {f(p['min'], '{:.0f}')}        (admin call end to end: p50 {f(a['call_ms']['p50'], '{:.0f}')}, "
          f"max {f(a['call_ms']['max'], '{:.0f}')} ms)")
    print(f"  all pauses: {p['all']}")
    print("\n  step (ms)          median      max    (catch_up/warm: before the hold; the rest is the pause)")
    for k in ALL_STEPS:
        s = a["steps"][k]
        tag = "  <- dominates the pause" if k == a["dominant_pause_step"] else ""
        tag += "  <- longest overall" if k == a["dominant_step_overall"] and k not in PAUSE_STEPS else ""
        print(f"  {k:<18} {f(s['median'], '{:.0f}'):>6} {f(s['max'], '{:.0f}'):>8}{tag}")
    print(f"  largest pause step per switch: {a['dominant_pause_step_counts']}")
    print(f"  aborted transactions (total) {a['aborted_transactions']}, moved clients per switch "
          f"{a['moved_clients']['min']}..{a['moved_clients']['max']}")
    b, s = a["baseline"], a["switch_runs"]
    print("\n  sysbench                     baseline     with switches")
    print(f"  TPS (run, median of reps)  {f(b['tps']):>10} {f(s['tps']):>16}      runs: {b['tps_runs']} vs "
          f"{s['tps_runs']}")
    print(f"  1-s TPS median             {f(b['tps_1s_median']):>10} {f(s['tps_1s_median_around']):>16}      "
          f"(switch runs: around switches; between: {f(s['tps_1s_median_between'])})")
    print(f"  1-s TPS min                {f(b['tps_1s_min']):>10} {f(s['tps_1s_min_around']):>16}      "
          f"(per switch min, median {f(s['per_switch_min_tps_median'])})")
    print(f"  p99 latency ms (run)       {f(b['p99_ms'], '{:.2f}'):>10} {f(s['p99_ms'], '{:.2f}'):>16}      "
          f"runs: {b['p99_runs']} vs {s['p99_runs']}")
    print(f"  max 1-s p99 ms             {f(b['lat99_1s_max'], '{:.2f}'):>10} "
          f"{f(s['lat99_1s_max_around'], '{:.2f}'):>16}")
    print(f"  max latency ms             {f(b['lat_max_ms'], '{:.2f}'):>10} {f(s['lat_max_ms'], '{:.2f}'):>16}")
    ie = a["ignored_errors_per_s"]
    print(f"  ignored errors             {b['ignored_errors']:>10} {s['ignored_errors']:>16}      "
          f"(1213/1205/1020, retried by sysbench; per s: baseline {ie['baseline']}, around switches "
          f"{ie['around_switches']})")
    print(f"  reconnects / failed runs   {b['reconnects']:>6} / {b['failed_runs']} {s['reconnects']:>12} / "
          f"{s['failed_runs']}   FATAL lines with switches: {len(s['fatal_lines'])}")
    print(f"  TPS dip: min 1-s TPS around switches {f(s['tps_1s_min_around'])} vs baseline median 1-s TPS "
          f"{f(b['tps_1s_median'])}: -{f(a['tps_dip_pct'])}%")
    if a["saturated"]:
        print(f"  NOTE: saturated: baseline 1-s TPS median {f(b['tps_1s_median'])} < 90% of --rate="
              f"{report['args']['rate']}; sysbench's queue grows (max {a['sysbench_queue_max']} events) and its "
              f"latencies include that queueing: the TPS dip reads as throughput lost, the latencies as backlog.")
    if a["switches_failed"]:
        print(f"\n  FAILED switches: {a['switches_failed']}:")
        for rec in report["switches"]:
            if not rec["ok"]:
                print(f"    #{rec['index'] + 1} {rec['cmd']}: {rec['error']['code']}: {rec['error']['message']}")
    if report["args"].get("long_read"):
        w = [r["pause_ms"] for r in report["switches"] if r["ok"] and r.get("long_read")]
        wo = [r["pause_ms"] for r in report["switches"] if r["ok"] and not r.get("long_read")]
        reads = [r["long_read"] for r in report["switches"] if r.get("long_read")]
        print(f"\n  pause with an autocommit SELECT SLEEP({report['args']['long_read']}) in flight: p50 "
              f"{f(pct(w, 50), '{:.0f}')} max {f(max(w, default=None), '{:.0f}')} ms ({len(w)} switches); without: "
              f"p50 {f(pct(wo, 50), '{:.0f}')} max {f(max(wo, default=None), '{:.0f}')} ms ({len(wo)}); the reads: "
              f"{[x.get('read_s') for x in reads]} s, errors {[x['error'] for x in reads if 'error' in x]}")
    v = a["verdict"]
    yn = lambda x: "-" if x is None else ("met" if x else "NOT MET")  # noqa: E731
    print(f"\n  verdict vs target: max pause {f(p['max'], '{:.0f}')} <= {TARGET_MAX_MS} ms: {yn(v['max_pause'])}; "
          f"p50 {f(p['p50'], '{:.0f}')} <= {TARGET_P50_MS} ms: {yn(v['p50_pause'])}; "
          f"0 client errors ({a['client_errors_switch_runs']} = aborted transactions + reconnects + FATAL + failed "
          f"runs): {yn(v['zero_errors'])}; "
          f"all switches ok: {yn(v['all_switches_ok'])}")


# --- main -----------------------------------------------------------------------------------------------

def checksums(server) -> dict:
    rows = server.sql("CHECKSUM TABLE " + ", ".join(f"{SB_DB}.sbtest{i}" for i in range(1, SB_TABLES + 1)))
    return {r[0]: r[1] for r in rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build"), help="build dir with switchyardd and switchyardctl")
    ap.add_argument("--switches", type=int, default=None, help="alternating switches in all (default 20; --quick 5)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 5 switches")
    ap.add_argument("--reps", type=int, default=3, help="baseline/switch run pairs (default 3)")
    ap.add_argument("--gap", type=float, default=2.0, help="seconds between a switch's answer and the next call")
    ap.add_argument("--long-read", type=float, default=0.0,
                    help="every other switch runs with an autocommit SELECT SLEEP(S) in flight (pauses compared)")
    ap.add_argument("--threads", type=int, default=64)
    ap.add_argument("--rate", type=int, default=1000, help="sysbench --rate (target TPS)")
    ap.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (switchyardd log, sysbench outputs)")
    args = ap.parse_args()
    args.switches = args.switches if args.switches is not None else (5 if args.quick else 20)
    args.reps = max(1, min(args.reps, args.switches))
    build = Path(args.build).resolve()

    interrupt_on_term_signals()
    raise_nofile()
    if not shutil.which("sysbench"):
        print("switchover_bench: sysbench not found (scripts/install-deps.sh)", file=sys.stderr)
        return 2
    for b in (build / "switchyardd", build / "switchyardctl"):
        if not os.access(b, os.X_OK):
            print(f"switchover_bench: {b} missing: cmake --build {build} -j2", file=sys.stderr)
            return 2

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    work = Path(tempfile.mkdtemp(prefix="sy-swbench-", dir="/tmp"))   # short: admin socket path < 107
    report = {
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "args": vars(args),
        "host": {"nproc": os.cpu_count(), "loadavg_start": os.getloadavg(), "uname": " ".join(os.uname())},
        "versions": {"sysbench": tool_version(["sysbench", "--version"]),
                     "mariadbd": tool_version([shutil.which("mariadbd") or "/usr/sbin/mariadbd", "--version"])},
        "switchyardd": {"path": str(build / "switchyardd"),
                        "mtime": datetime.fromtimestamp((build / "switchyardd").stat().st_mtime).isoformat()},
        "sysbench": {"workload": "oltp_read_write", "tables": SB_TABLES, "table_size": SB_TABLE_SIZE,
                     "threads": args.threads, "rate": args.rate, "user": APP_USER},
        "targets": {"max_pause_ms": TARGET_MAX_MS, "p50_pause_ms": TARGET_P50_MS, "client_errors": 0},
        "reps": [], "switches": [], "analysis": {}, "problems": [],
    }
    problems = report["problems"]
    sy = None
    rc = 0
    print(f"switchover_bench: {args.switches} alternating switches over {args.reps} rep(s), each a baseline and a "
          f"switch run of oltp_read_write --threads={args.threads} --rate={args.rate}; work dir {work}", flush=True)
    try:
        with contextlib.ExitStack() as stack:
            business, dr = stack.enter_context(sandbox.servers(2))
            stack.callback(stop_all_children)             # LIFO: switchyardd/sysbench stop before the servers
            print(f"  MariaDB business {HOST}:{business.port}, dr {HOST}:{dr.port}", flush=True)
            report["servers"] = {"business": business.port, "dr": dr.port}
            business.sql(f"CREATE DATABASE {SB_DB}")
            for s in (business, dr):        # an application account: no SUPER, no READ ONLY ADMIN
                s.sql(f"CREATE USER IF NOT EXISTS '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'")
                s.sql(f"GRANT ALL PRIVILEGES ON `{SB_DB}`.* TO '{APP_USER}'@'%'")
            t0 = time.monotonic()
            p = subprocess.run(sb_cmd(business.port, APP_USER, APP_PASSWORD, "--threads=4", "prepare"),
                               capture_output=True, text=True, timeout=600)
            if p.returncode != 0:
                raise BenchError(f"sysbench prepare failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
            print(f"  sbtest prepared on business ({SB_TABLES} x {SB_TABLE_SIZE} rows, "
                  f"{time.monotonic() - t0:.1f} s)", flush=True)

            t0 = time.monotonic()
            sy = SwitchyardPair(build, work, business, dr).start()
            fw = wait_state(sy, "forward", "running", 300,
                            lambda i: (i.get("initial_sync") or {}).get("done", True))
            report["initial_sync"] = {"seconds": round(time.monotonic() - t0, 2), **(fw.get("initial_sync") or {})}
            sy.admin_ok("create-reverse", timeout=60, pair=PAIR)
            wait_state(sy, "reverse", "collecting", 120)
            cfg_text = sy.ini.read_text()
            defaults = {"switchover_max_lag_ms": 1000, "txn_drain_ms": 2000, "drain_timeout_ms": 5000,
                        "max_hold_ms": 10000}            # README.md defaults (the ini sets none of them)
            report["switch_config"] = {k: v for k, v in defaults.items() if f"{k} " not in cfg_text}
            print(f"  switchyardd pid {sy.proc.pid} on {HOST}:{sy.port}: forward running after the initial sync "
                  f"({report['initial_sync']['seconds']} s), reverse collecting", flush=True)

            done = 0
            rep = 0
            while done < args.switches:
                left_reps = max(1, args.reps - rep)
                n = math.ceil((args.switches - done) / left_reps)
                secs = WARMUP_S + n * PER_SWITCH_S + TAIL_S
                rr = {"rep": rep, "planned_switches": n, "time_s": secs,
                      "order": ["baseline", "switch"] if rep % 2 == 0 else ["switch", "baseline"]}
                report["reps"].append(rr)
                print(f"\n-- rep {rep + 1}: {n} switch(es), sysbench {secs} s per run, order {' then '.join(rr['order'])}",
                      flush=True)
                for kind in rr["order"]:
                    sy.alive()
                    label = f"{kind}-{rep}"
                    sb = SysbenchRun(sy.port, secs, args.threads, args.rate, work, label)
                    if kind == "switch":
                        time.sleep(WARMUP_S)
                        for k in range(n):
                            if not sb.running():
                                break
                            if k and secs - sb.now() < PER_SWITCH_S - args.gap:   # out of time: next run
                                break
                            rec = do_switch(sy, done, sb, args.long_read if done % 2 == 1 else 0)
                            rec["run"] = label
                            report["switches"].append(rec)
                            print_switch(rec)
                            if not rec["ok"]:
                                problems.append({"where": f"switch #{done + 1} ({rec['cmd']})",
                                                 "error": f"{rec['error']['code']}: {rec['error']['message']}"})
                            done += 1
                            time.sleep(args.gap)
                    res = sb.finish()
                    rr[kind] = res
                    print(f"   {kind:<8} TPS {f(res['tps']):>7}  p99 {f(res['p99_ms'], '{:.2f}'):>7} ms  max "
                          f"{f(res['lat_max_ms'], '{:.1f}'):>7} ms  min 1-s TPS "
                          f"{f(min((s['tps'] for s in usable_seconds(res)), default=None))}  ignored errors "
                          f"{res['ignored_errors']}  reconnects {res['reconnects']}"
                          f"{'  FAILED rc=%s' % res['rc'] if res['failed'] else ''}", flush=True)
                    if res["failed"]:
                        problems.append({"where": f"sysbench {label}", "error": res.get("failure") or
                                         f"rc {res['rc']}; {res['fatal_lines'][:3]}"})
                        print("     " + (res.get("output_tail") or "").replace("\n", "\n     "), flush=True)
                rep += 1
                if rep >= args.reps + 3:
                    problems.append({"where": "schedule", "error": f"only {done} switches done in {rep} reps"})
                    break

            report["analysis"] = analyze(report)
            print_summary(report, report["analysis"])

            # both sides equal once the passive one caught up (no load now)
            pair = sy.pair()
            report["final_pair"] = {"active_side": pair.get("active_side"), "epoch": pair.get("epoch"),
                                    "instances": {i.get("direction"): i.get("state") for i in pair.get("instances", [])}}
            deadline = time.monotonic() + 120
            sums_b = sums_d = None
            while time.monotonic() < deadline:
                sums_b, sums_d = checksums(business), checksums(dr)
                if sums_b == sums_d:
                    break
                time.sleep(1)
            report["checksums"] = {"business": sums_b, "dr": sums_d, "equal": sums_b == sums_d}
            print(f"\n  after the load: active side {pair.get('active_side')}, epoch {pair.get('epoch')}, instances "
                  f"{report['final_pair']['instances']}; CHECKSUM TABLE business vs dr: "
                  f"{'equal' if sums_b == sums_d else 'DIFFERENT'}")
            if sums_b != sums_d:
                problems.append({"where": "checksums", "error": f"business {sums_b} != dr {sums_d}"})

            switchyard_log_summary(sy, report, problems, "info")
    except (KeyboardInterrupt, Interrupted) as e:
        rc = on_interrupt("switchover_bench", e, report)
    except Exception as e:  # noqa: BLE001 - still write what we have
        rc = on_crash(e, report, {"switchyard": sy.log if sy else None})
    finally:
        stop_all_children()
        if report["switches"] and not report["analysis"]:
            with contextlib.suppress(Exception):
                report["analysis"] = analyze(report)
        write_report(report, args.results_dir, f"switchover-{stamp}.json")
        remove_work_dir(work, args.keep)
    return report_problems("switchover_bench", problems, rc)


if __name__ == "__main__":
    sys.exit(main())
