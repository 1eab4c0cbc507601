#!/usr/bin/python3
"""commit_wait benchmark: commit latency (p50/p99) and TPS of autocommit inserts for commit_wait = off /
collected / applied through the proxy, side by side with MariaDB's own semi-sync on the same workload.

    /usr/bin/python3 bench/commit_wait_bench.py --build build            # 3 reps x 2 thread counts x 6 variants x 10 s (~8 min)
    /usr/bin/python3 bench/commit_wait_bench.py --build build --quick    # smoke run: 1 rep x 5 s (~2 min)

What runs (TESTING.md "Benchmarks": side by side in one run, interleaved repetitions, nothing asserted):
  - three sandbox MariaDB servers (scripts/sandbox.py: innodb_flush_log_at_trx_commit=2, sync_binlog=0, so the
    spool's fsync is the only fsync on the commit path of collected): business, the pair's DR, and a
    **native replica** of business (GTID, from business's position before sbtest exists) whose IO thread
    has semi-sync on (`rpl_semi_sync_slave_enabled=ON`): MariaDB's semi-sync peer.
  - sbtest (4 tables x 10000 rows) prepared on business; switchyardd starts with `objects = sbtest.*`
    (initial sync to DR), `commit_wait_timeout_ms = 5000`, `commit_wait_fallback = error` (a timeout would
    show as a sysbench error, never as a faster commit).
  - workload: sysbench oltp_insert (one autocommit INSERT per event = one commit) as the application
    account, --threads 1 (latency) and 8 (throughput), --histogram for p50/p99 (sysbench's percentile rule).
  - variants, order rotated per rep and thread count:
      direct            business, no semi-sync (the floor)
      semisync          business with rpl_semi_sync_master_enabled=ON, wait point AFTER_SYNC (lossless:
                        the commit waits until the replica's IO thread acknowledged the event; the
                        replica *received* it, not fsync'd nor applied it), timeout 10 s
      proxy-off         through switchyardd, commit_wait = off
      proxy-collected   commit_wait = collected (the OK waits for the GTID fsync'd in the forward spool)
      proxy-applied     commit_wait = applied (the OK waits for DR's checkpoint)
      proxy-off+semisync  through switchyardd with commit_wait = off and business in semi-sync: the
                        like-for-like peer of proxy-collected (both pay the proxy hop)
    switchyardd is restarted (same state dir) when the mode changes; semi-sync is switched on only for
    its variants (the replica and the collector read business's binlog in every variant).
Prints a table of medians and ratios and writes everything to bench/results/commit_wait-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (ROOT, Interrupted, admin_request, interrupt_on_term_signals, on_crash, on_interrupt,  # noqa: E402
                    raise_nofile, remove_work_dir, report_problems, rotated, run_report, stop_all_children,
                    switchyard_log_summary, write_report)
import proxy_bench as pb  # noqa: E402
import sandbox  # noqa: E402  (common put scripts/ on sys.path)

HOST = pb.HOST
PAIR = "bench"
SB_DB = "sbtest"
SB_TABLES, SB_TABLE_SIZE = 4, 10000
APP_USER, APP_PASSWORD = "sw_app", "app-Secret-1"
VARIANTS = ("direct", "semisync", "proxy-off", "proxy-collected", "proxy-applied", "proxy-off+semisync")
MODE = {"proxy-off": "off", "proxy-collected": "collected", "proxy-applied": "applied", "proxy-off+semisync": "off"}


class BenchError(RuntimeError):
    pass


class SwitchyardCW(pb.Switchyard):
    """switchyardd with a forward instance for sbtest.* and the commit_wait mode of the variant."""

    mode = "off"

    def config(self) -> str:
        return (super().config().replace("log_level    = warn", "log_level    = info") +
                f"objects        = {SB_DB}.*\ncommit_wait    = {self.mode}\ncommit_wait_timeout_ms = 5000\n"
                "commit_wait_fallback = error\n")

    def pair(self) -> dict:
        r = admin_request(self.sock, "status", 10, pair=PAIR)
        if not r.get("ok"):
            raise BenchError(f"status: {r.get('error')}")
        st = r["result"]
        return st.get("pairs", [st])[0]

    def wait_running(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while True:
            inst = next((i for i in self.pair().get("instances", []) if i.get("direction") == "forward"), {})
            if inst.get("state") == "running" and (inst.get("initial_sync") or {}).get("done", True):
                return
            if inst.get("state") in ("failed", "precheck_failed"):
                raise BenchError(f"forward instance {inst.get('state')}: {inst.get('last_error')}")
            if time.monotonic() > deadline:
                raise BenchError(f"forward instance not running after {timeout} s: {inst}")
            time.sleep(0.2)

    def restart(self, mode: str) -> None:
        if self.proc is not None and self.mode == mode:
            return
        if self.proc is not None:
            self.stop()
        self.mode = mode
        self.start()
        self.wait_running()


def sb(port: int, *extra) -> list:
    return ["sysbench", "oltp_insert", "--db-driver=mysql", f"--mysql-host={HOST}", f"--mysql-port={port}",
            f"--mysql-user={APP_USER}", f"--mysql-password={APP_PASSWORD}", f"--mysql-db={SB_DB}",
            f"--tables={SB_TABLES}", f"--table-size={SB_TABLE_SIZE}", *extra]


def run_sb(port: int, secs: int, threads: int, work: Path, label: str) -> dict:
    pb_sb_cmd, pb_user, pb_pw = pb.sb_cmd, pb.SB_USER, pb.SB_PASSWORD
    try:   # proxy_bench's runner and parser, with oltp_insert as the application account
        pb.sb_cmd = lambda workload, p, *extra: sb(p, *extra)
        return pb.run_sysbench("oltp_insert", port, secs, threads, work, label)
    finally:
        pb.sb_cmd, pb.SB_USER, pb.SB_PASSWORD = pb_sb_cmd, pb_user, pb_pw


def semisync(business, on: bool) -> None:
    business.sql(f"SET GLOBAL rpl_semi_sync_master_enabled = {'ON' if on else 'OFF'}")
    if on:
        deadline = time.monotonic() + 30
        while int(business.sql("SHOW STATUS LIKE 'Rpl_semi_sync_master_clients'")[0][1]) < 1:
            if time.monotonic() > deadline:
                raise BenchError("semi-sync: the replica never registered as a semi-sync client")
            time.sleep(0.1)


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--time", type=int, default=10, help="sysbench seconds per run")
    ap.add_argument("--threads", default="1,8", help="thread counts, comma-separated")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 rep x 5 s")
    ap.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.time = 1, 5
    threads = [int(t) for t in args.threads.split(",")]
    variants = tuple(v for v in VARIANTS if v in args.variants.split(","))
    if not variants or len(variants) != len(args.variants.split(",")):
        print(f"commit_wait_bench: --variants: choose from {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    build = Path(args.build).resolve()
    interrupt_on_term_signals()
    raise_nofile()
    if not shutil.which("sysbench"):
        print("commit_wait_bench: sysbench not found (scripts/install-deps.sh)", file=sys.stderr)
        return 2
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    work = Path(tempfile.mkdtemp(prefix="sy-cwbench-", dir="/tmp"))
    report = run_report(args, runs=[], summary={}, problems=[])
    problems = report["problems"]
    sy = None
    rc = 0
    print(f"commit_wait_bench: {args.reps} rep(s) x threads {threads} x {len(variants)} variants x {args.time} s "
          f"of oltp_insert; work dir {work}", flush=True)
    try:
        with contextlib.ExitStack() as stack:
            business, dr = stack.enter_context(sandbox.servers(2))
            replica, = stack.enter_context(sandbox.servers(1, first_index=2, extra_args=[
                "--skip-slave-start", "--relay-log=relay", "--rpl-semi-sync-slave-enabled=ON"]))
            stack.callback(stop_all_children)
            start_pos = business.sql("SELECT @@gtid_binlog_pos")[0][0]
            business.sql("SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC")
            business.sql("SET GLOBAL rpl_semi_sync_master_timeout = 10000")
            replica.sql(f"SET GLOBAL gtid_slave_pos = '{start_pos}';"
                        f"CHANGE MASTER TO MASTER_HOST='{HOST}', MASTER_PORT={business.port}, "
                        f"MASTER_USER='{sandbox.ADMIN_USER}', MASTER_PASSWORD='{sandbox.ADMIN_PASSWORD}', "
                        "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1; START SLAVE")
            business.sql(f"CREATE DATABASE {SB_DB}")
            for s in (business, dr):
                s.sql(f"CREATE USER IF NOT EXISTS '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'")
                s.sql(f"GRANT ALL PRIVILEGES ON `{SB_DB}`.* TO '{APP_USER}'@'%'")
            p = subprocess.run(sb(business.port, "--threads=4", "prepare"), capture_output=True, text=True,
                               timeout=600)
            if p.returncode != 0:
                raise BenchError(f"sysbench prepare failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
            print(f"  business {HOST}:{business.port}, dr {HOST}:{dr.port}, semi-sync replica "
                  f"{HOST}:{replica.port}; sbtest prepared", flush=True)
            sy = SwitchyardCW(build, work, business, dr)
            sy.restart("off")
            for rep in range(args.reps):
                for th in threads:
                    for _, v in rotated(variants, rep * len(threads) + threads.index(th)):
                        if v in MODE:
                            sy.restart(MODE[v])
                        semisync(business, "semisync" in v)
                        before = sy.pair()["commit_wait"] if v in MODE else None
                        port = sy.port if v in MODE else business.port
                        r = run_sb(port, args.time, th, work, f"{v}-{th}-{rep}")
                        semisync(business, False)
                        r.update({"variant": v, "threads": th, "rep": rep})
                        if before is not None:
                            after = sy.pair()["commit_wait"]
                            r["commit_wait"] = {k: after[k] - before[k] for k in
                                                ("waits", "timeouts", "errors", "wait_seconds_sum")}
                        report["runs"].append(r)
                        cw = r.get("commit_wait") or {}
                        print(f"   rep {rep + 1} threads {th:>2} {v:<19} TPS {pb.f(r['tps'], '{:.0f}'):>6}  "
                              f"p50 {pb.f(r.get('p50_ms')):>6} ms  p99 {pb.f(r['p99_ms']):>6} ms  errors "
                              f"{r['errors']}{'  waits %d timeouts %d' % (cw['waits'], cw['timeouts']) if cw else ''}"
                              f"{'  FAILED' if r['failed'] else ''}", flush=True)
                        if r["failed"] or r["errors"] or cw.get("timeouts"):
                            problems.append({"where": f"{v} threads {th} rep {rep}",
                                             "error": r.get("failure") or r.get("output_tail") or str(cw)})
            summary = report["summary"]
            print("\n  medians over reps (ratios vs direct and vs proxy-off)")
            print(f"  {'threads':>7} {'variant':<19} {'TPS':>7} {'p50 ms':>7} {'p99 ms':>7} {'TPS/direct':>10} "
                  f"{'TPS/proxy-off':>13} {'p99/proxy-off':>13}")
            for th in threads:
                rows = {v: [r for r in report["runs"] if r["variant"] == v and r["threads"] == th] for v in VARIANTS}
                m = {v: {k: med([r.get(k) for r in rows[v]]) for k in ("tps", "p50_ms", "p99_ms")} for v in VARIANTS}
                base = {k: m[k] for k in ("direct", "proxy-off")}
                summary[str(th)] = m
                for v in variants:
                    print(f"  {th:>7} {v:<19} {pb.f(m[v]['tps'], '{:.0f}'):>7} {pb.f(m[v]['p50_ms']):>7} "
                          f"{pb.f(m[v]['p99_ms']):>7} {pb.f(pb.ratio(m[v]['tps'], base['direct']['tps'])):>10} "
                          f"{pb.f(pb.ratio(m[v]['tps'], base['proxy-off']['tps'])):>13} "
                          f"{pb.f(pb.ratio(m[v]['p99_ms'], base['proxy-off']['p99_ms'])):>13}")
            switchyard_log_summary(sy, report, problems, "info")
    except (KeyboardInterrupt, Interrupted) as e:
        rc = on_interrupt("commit_wait_bench", e, report)
    except Exception as e:  # noqa: BLE001 - still write what we have
        rc = on_crash(e, report, {"switchyard": sy.log if sy else None})
    finally:
        stop_all_children()
        write_report(report, args.results_dir, f"commit_wait-{stamp}.json")
        remove_work_dir(work, args.keep)
    return report_problems("commit_wait_bench", problems, rc)


if __name__ == "__main__":
    sys.exit(main())
