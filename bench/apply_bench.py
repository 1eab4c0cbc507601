#!/usr/bin/python3
"""Apply-speed benchmark: native MariaDB replicas (one SQL thread, and parallel replication optimistic and
conservative) vs Switchyard's forward instance catching up on the same pre-generated backlog, plus lag over time
under a live load.

    /usr/bin/python3 bench/apply_bench.py --build build            # 3 reps x 60 s backlog + 30 s live (~11 min*)
    /usr/bin/python3 bench/apply_bench.py --build build --quick    # smoke run: 1 rep x 10 s backlog + 30 s live
    /usr/bin/python3 bench/apply_bench.py --build build --apply-threads 2   # the writer's apply_threads
    /usr/bin/python3 bench/apply_bench.py --build build --on-conflict overwrite   # the pair's on_conflict
    * on a 2-core box where business writes ~7300 TPS, Switchyard catches up a 60 s backlog in ~13 s
      (~34000 txns/s, apply_threads = 2, Nov 2026), native end to end in ~28 s
      (parallel optimistic ~30 s, conservative ~44 s): about 11 min in all (Dec 2026).

What it does (TESTING.md "Benchmarks": side by side in one run, >= 3 interleaved repetitions, no asserted timing):
  1. six sandbox MariaDB servers (scripts/sandbox.py): business (index 0), the DR of the Switchyard pair
     (index 1), two native replicas of business with one SQL thread (indexes 2 and 3, A and B:
     slave_parallel_threads=0) and two with native parallel replication (indexes 4 and 5, C and D:
     slave_parallel_threads = Switchyard's apply_threads (--apply-threads, default 2) and slave_parallel_mode
     optimistic resp. conservative, as server options, i.e. set before any START SLAVE and checked at setup;
     conservative parallelises what business group-committed together: sysbench's 4 threads commit
     concurrently and business's binlog group commit batches them, the commits per group of each backlog are
     reported from Binlog_commits / Binlog_group_commits). All four: log_slave_updates=ON so that they binlog what they apply just as DR binlogs what Switchyard
     writes; CHANGE MASTER TO ... MASTER_USE_GTID=slave_pos, gtid_slave_pos = business's position before
     sbtest exists). sbtest (4 tables x 20000 rows, sysbench prepare) is created on business; the replicas
     get it through replication, DR through Switchyard's initial sync (switchyardd is started after the
     prepare with `objects = sbtest.*`; the bench waits for state running and lag 0).
  2. per rep: every consumer is stopped (STOP SLAVE on both replicas, `switchyardctl pause bench/forward`),
     sysbench oltp_write_only runs --backlog-time seconds at 4 threads straight into business, and the target
     is business's @@gtid_binlog_pos afterwards. Then the same backlog is caught up by five variants, one at
     a time, in an order rotated each rep (rep i starts with variant i mod 5):
       switchyard  `switchyardctl start bench/forward`: collection (binlog -> spool) and write (spool -> DR)
                   together, i.e. end to end; done when status write.position covers the target.
       native-e2e  replica A: START SLAVE (IO + SQL thread) from the stopped state: end to end as well;
                   done when @@gtid_slave_pos covers the target. The like-for-like comparison.
       native-par-opt  replica C, the same end to end with parallel replication, slave_parallel_mode=optimistic.
       native-par-cons replica D, the same with slave_parallel_mode=conservative.
       native-sql  replica B: before the timed runs START SLAVE IO_THREAD and wait until the whole backlog
                   is in its relay log (Master_Log_File/Read_Master_Log_Pos = business's SHOW MASTER STATUS);
                   then time START SLAVE SQL_THREAD until @@gtid_slave_pos covers the target: pure apply of
                   an already-available backlog. Switchyard has no apply-only mode (pause stops both of its
                   modules), so this is a stricter baseline: Switchyard's number includes reading the binlog.
     Polled every 100 ms (catch-up resolution: 0.1 s). rows/s = rows of the backlog / catch-up seconds, where
     the rows are Switchyard's write `events` counter (rows applied since `start`; the same backlog for
     every variant), cross-checked against sysbench's write count (each oltp_write_only write changes one
     row; they differ only when sysbench retried deadlocked transactions). After every run CHECKSUM TABLE
     of the 4 tables on business and on that destination must match (business is quiet by then); a
     mismatch is reported (with a content-hash re-check to tell a checksum quirk from different rows),
     never hidden, and makes the exit status 1.
     Per run also: CPU seconds (utime+stime from /proc) of business's and the destination's mariadbd and of
     switchyardd, and the peak size of switchyardd's state_dir (the spool; spool_max_bytes = 8G here, since
     a 60 s backlog on a fast machine exceeds the 1G default and spool_full retries would distort the time).
  3. live load: switchyard (running) and replica A (START SLAVE) consume while sysbench oltp_write_only runs
     --live-time seconds at --rate=200 tps, 4 threads (replicas B, C and D stay stopped: fewer CPU competitors on these
     shared cores). Every second: business GTID, native Seconds_Behind_Master and GTID distance, Switchyard
     write lag_ms / lag_events and GTID distance, switchyardd's VmRSS; then until both caught up. Checksums
     again afterwards.
  4. switchyardd's memory: VmRSS after the initial sync, peak sampled during catch-ups and the live run,
     VmHWM at the end.
Prints the catch-up table (medians, ratio Switchyard/native per variant, Switchyard against the BEST native
end-to-end variant: per rep the fastest of native-e2e/-par-opt/-par-cons, JSON summary.ratio_vs_best_native;
per-rep raw numbers) and the lag table, and
writes everything as JSON to bench/results/apply-<timestamp>.json. Everything started here is stopped at
the end, on exceptions, on Ctrl-C and on SIGTERM/SIGHUP (process handling of bench/common.py).
Exit status 1 when a run failed or timed out, a checksum differed, switchyardd died or did not exit 0 on
SIGTERM (the report is still written).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (ROOT, Interrupted, cpu_s, interrupt_on_term_signals, on_crash, on_interrupt,  # noqa: E402
                    remove_work_dir, report_problems, spawn, stop, stop_all_children, switchyard_log_summary,
                    tail, tool_version, write_report)
import proxy_bench as pb  # noqa: E402
import sandbox  # noqa: E402  (common put scripts/ on sys.path)

HOST = pb.HOST
PAIR = "bench"
INSTANCE = f"{PAIR}/forward"
SB_DB = "sbtest"
SB_TABLES, SB_TABLE_SIZE, SB_THREADS = 4, 20000, 4
LIVE_RATE = 200
POLL_S = 0.1
VARIANTS = ("switchyard", "native-e2e", "native-par-opt", "native-par-cons", "native-sql")
NATIVE_E2E = ("native-e2e", "native-par-opt", "native-par-cons")   # end to end: candidates for "best native"
NATIVES = NATIVE_E2E + ("native-sql",)
LABEL = {"switchyard": "switchyard (collect+write)",
         "native-e2e": "native e2e (IO+SQL thread)",
         "native-par-opt": "native e2e parallel optimistic",
         "native-par-cons": "native e2e parallel conservative",
         "native-sql": "native SQL thread only"}
DEFAULT_APPLY_THREADS = 2  # Switchyard's default apply_threads (core/config.h)
TARGET_RATIO = 1.5
APPLY_THREADS = None  # --apply-threads: the writer's apply_threads (None: Switchyard's default)
ON_CONFLICT = None    # --on-conflict: the pair's on_conflict (None: Switchyard's default, fail)
SPOOL_MAX = "8G"     # a 60 s backlog at ~8000 TPS is ~1.1 GB of spool: more than the 1G default


class BenchError(RuntimeError):
    pass


# --- GTID positions -------------------------------------------------------------------------------------

def gtid_parse(text: str | None) -> dict:
    """'1-10-5,2-11-7' -> {1: 5, 2: 7} (domain -> seq_no; per domain the seq_no only grows)."""
    out = {}
    for part in (text or "").replace("\n", "").split(","):
        part = part.strip()
        if not part:
            continue
        d, _, seq = part.split("-")
        out[int(d)] = max(out.get(int(d), 0), int(seq))
    return out


def covers(pos: str | None, target: str) -> bool:
    p = gtid_parse(pos)
    return all(p.get(d, -1) >= seq for d, seq in gtid_parse(target).items())


def distance(pos: str | None, target: str) -> int:
    """Transactions of target not yet in pos (sum over domains)."""
    p = gtid_parse(pos)
    return sum(max(0, seq - p.get(d, 0)) for d, seq in gtid_parse(target).items())


# --- servers --------------------------------------------------------------------------------------------

def connect(server, **kw):
    kw.setdefault("read_timeout", 120)
    return server.connect(**kw)


def q1(c, sql):
    with c.cursor() as cur:
        cur.execute(sql)
        return cur.fetchone()


def qdict(c, sql):
    import pymysql
    with c.cursor(pymysql.cursors.DictCursor) as cur:
        cur.execute(sql)
        return cur.fetchone()


def checksums(server) -> dict:
    tables = ", ".join(f"{SB_DB}.sbtest{i}" for i in range(1, SB_TABLES + 1))
    return {r[0]: r[1] for r in server.sql(f"CHECKSUM TABLE {tables}")}


def content_hashes(server) -> dict:
    """Independent of CHECKSUM TABLE's row format: count + XOR of per-row CRC32 over every column."""
    out = {}
    for i in range(1, SB_TABLES + 1):
        r = server.sql(f"SELECT COUNT(*), BIT_XOR(CRC32(CONCAT_WS('#', id, k, c, pad))) FROM {SB_DB}.sbtest{i}")
        out[f"sbtest{i}"] = f"{r[0][0]}/{r[0][1]}"
    return out


class Replica:
    """A native replica of business (a sandbox server started with one SQL thread)."""

    def __init__(self, name: str, server, business):
        self.name, self.server, self.business = name, server, business
        self.conn = None
        self.settings = {}

    def setup(self, start_pos: str, expect: dict | None = None) -> None:
        """expect: {variable: value} the server must have before its first START SLAVE (parallel settings)."""
        got = self.server.sql("SELECT @@slave_parallel_threads, @@slave_parallel_mode")[0]
        self.settings = {"slave_parallel_threads": int(got[0]), "slave_parallel_mode": str(got[1])}
        for k, v in (expect or {}).items():
            if str(self.settings[k]) != str(v):
                raise BenchError(f"{self.name}: {k} is {self.settings[k]}, expected {v}")
        self.server.sql(f"SET GLOBAL gtid_slave_pos = '{start_pos}';"
                        f"CHANGE MASTER TO MASTER_HOST='{HOST}', MASTER_PORT={self.business.port}, "
                        f"MASTER_USER='{sandbox.ADMIN_USER}', MASTER_PASSWORD='{sandbox.ADMIN_PASSWORD}', "
                        "MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;"
                        "START SLAVE")
        self.conn = connect(self.server)

    def status(self) -> dict:
        return qdict(self.conn, "SHOW SLAVE STATUS") or {}

    def slave_pos(self) -> str:
        return q1(self.conn, "SELECT @@gtid_slave_pos")[0]

    def exec(self, sql: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql)

    def check_errors(self, st: dict | None = None) -> None:
        st = st if st is not None else self.status()
        for k in ("Last_SQL_Errno", "Last_IO_Errno"):
            if st.get(k):
                raise BenchError(f"{self.name}: {k} {st[k]}: {st.get(k.replace('Errno', 'Error'))}")

    def wait_stopped(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st.get("Slave_IO_Running") == "No" and st.get("Slave_SQL_Running") == "No":
                return
            if time.monotonic() > deadline:
                raise BenchError(f"{self.name}: slave threads still running {timeout} s after STOP SLAVE")
            time.sleep(0.1)

    def wait_caught_up(self, target: str, timeout: float, t0: float | None = None) -> float:
        """Seconds from t0 (default: now) until @@gtid_slave_pos covers target."""
        t0 = time.monotonic() if t0 is None else t0
        while not covers(self.slave_pos(), target):
            st = self.status()
            self.check_errors(st)
            if time.monotonic() - t0 > timeout:
                raise BenchError(f"{self.name}: gtid_slave_pos {self.slave_pos()} not at {target} after "
                                 f"{timeout:.0f} s (IO {st.get('Slave_IO_Running')}, "
                                 f"SQL {st.get('Slave_SQL_Running')})")
            time.sleep(POLL_S)
        return time.monotonic() - t0


# --- switchyardd ----------------------------------------------------------------------------------------

class SwitchyardForward(pb.Switchyard):
    """proxy_bench's Switchyard with a forward instance for sbtest.* (log_level info: sync milestones)."""

    def config(self) -> str:
        return (super().config().replace("log_level    = warn", "log_level    = info")
                .replace("[pair bench]", f"[pair {PAIR}]") + f"objects        = {SB_DB}.*\n"
                f"spool_max_bytes = {SPOOL_MAX}\n" +
                (f"apply_threads = {APPLY_THREADS}\n" if APPLY_THREADS else "") +
                (f"on_conflict = {ON_CONFLICT}\n" if ON_CONFLICT else ""))

    def admin(self, cmd: str, timeout: float = 10, **args) -> dict:
        """One request on the admin socket (JSON line each way), without spawning switchyardctl."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.sock))
            s.sendall(json.dumps({"cmd": cmd, "args": args}).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        reply = json.loads(buf)
        if not reply.get("ok"):
            raise BenchError(f"admin {cmd}: {reply.get('error')}")
        return reply["result"]

    def instance(self) -> dict:
        st = self.admin("status", pair=PAIR)
        pairs = st.get("pairs", [st])
        return pairs[0]["instances"][0]

    def ctl(self, *args) -> None:
        r = subprocess.run([str(self.ctl_bin), "-s", str(self.sock), *args], capture_output=True, text=True,
                           timeout=30)
        if r.returncode != 0:
            raise BenchError(f"switchyardctl {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")

    def alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise BenchError(f"switchyardd exited with {self.proc.returncode if self.proc else '?'}:\n"
                             f"{tail(self.log, 40)}")

    def state_bytes(self) -> int:
        """Bytes under state_dir (spool files + state): how much the backlog occupies on disk."""
        total = 0
        for d, _, files in os.walk(self.work / "state"):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.stat(os.path.join(d, name)).st_size
        return total

    def rss(self) -> int:
        return pb.vm_rss_kib(self.proc.pid)

    def hwm(self) -> int | None:
        with contextlib.suppress(OSError):
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        return None

    def wait_instance(self, pred, timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        inst = {}
        while time.monotonic() < deadline:
            self.alive()
            inst = self.instance()
            if inst.get("state") in ("failed", "precheck_failed", "terminated"):
                raise BenchError(f"{INSTANCE} is {inst['state']} while waiting for {what}: {inst.get('last_error')}"
                                 f" (reason {inst.get('reason')})")
            if pred(inst):
                return inst
            time.sleep(POLL_S)
        raise BenchError(f"{INSTANCE}: no {what} after {timeout:.0f} s (last status {json.dumps(inst)[:800]})")


# --- sysbench -------------------------------------------------------------------------------------------

def sb_cmd(port: int, *extra) -> list:
    return ["sysbench", "oltp_write_only", "--db-driver=mysql", f"--mysql-host={HOST}", f"--mysql-port={port}",
            f"--mysql-user={sandbox.ADMIN_USER}", f"--mysql-password={sandbox.ADMIN_PASSWORD}",
            f"--mysql-db={SB_DB}", f"--tables={SB_TABLES}", f"--table-size={SB_TABLE_SIZE}", *extra]


def sysbench_run(port: int, secs: int, work: Path, label: str, rate: int = 0, wait: bool = True):
    cmd = sb_cmd(port, f"--threads={SB_THREADS}", f"--time={secs}", "--events=0", "--report-interval=0",
                 f"--rate={rate}", "run")
    outp = work / f"sb-{label}.out"
    out = open(outp, "wb")
    p = spawn(cmd, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    if not wait:
        return p, outp
    return sysbench_finish(p, outp, secs)


def sysbench_finish(p, outp: Path, secs: int) -> dict:
    try:
        p.wait(timeout=secs + 120)
    except subprocess.TimeoutExpired:
        pass
    timed_out = p.poll() is None
    stop(p, signal.SIGKILL if timed_out else signal.SIGTERM, timeout=5)
    text = outp.read_text(errors="replace")
    r = pb.parse_sysbench(text)
    r = {k: r[k] for k in ("transactions", "tps", "queries", "qps", "errors", "reconnects", "total_time_s",
                           "lat_avg_ms", "lat_max_ms")}
    r["writes"] = pb._num(r"^\s*write:\s+(\d+)", text, int)
    r["rc"] = p.returncode
    r["failed"] = bool(timed_out or p.returncode != 0 or r["tps"] is None)
    if r["failed"]:
        r["output_tail"] = "\n".join(text.splitlines()[-25:])
    return r


# --- the catch-up runs ----------------------------------------------------------------------------------

def run_switchyard(sy: SwitchyardForward, target: str, timeout: float) -> dict:
    before = sy.instance()
    if before.get("state") != "paused":
        raise BenchError(f"{INSTANCE} is {before.get('state')}, not paused, before its catch-up run")
    rss_peak = sy.rss()
    spool_peak = sy.state_bytes()
    t0 = time.monotonic()
    sy.ctl("start", INSTANCE)
    t_coll = None
    retrying = set()
    while True:
        now = time.monotonic() - t0
        sy.alive()
        inst = sy.instance()
        rss_peak = max(rss_peak, sy.rss())
        spool_peak = max(spool_peak, sy.state_bytes())
        if inst.get("state") in ("failed", "precheck_failed", "terminated"):
            raise BenchError(f"{INSTANCE} {inst['state']} during catch-up: {inst.get('last_error')} "
                             f"(reason {inst.get('reason')})")
        if inst.get("state") == "retrying":
            retrying.add(f"{inst.get('reason')}: {inst.get('last_error')}")
        coll, wr = inst.get("collection") or {}, inst.get("write") or {}
        if t_coll is None and covers(coll.get("position"), target):
            t_coll = now
        if covers(wr.get("position"), target):
            secs = now
            break
        if now > timeout:
            raise BenchError(f"{INSTANCE}: write position {wr.get('position')} not at {target} after {timeout:.0f} s "
                             f"(collection {coll.get('position')})")
        time.sleep(POLL_S)
    return {"catchup_s": round(secs, 2), "collected_s": None if t_coll is None else round(t_coll, 2),
            "rows_applied": wr.get("events"), "rss_peak_kib": rss_peak, "rss_end_kib": sy.rss(),
            "state_dir_peak_bytes": spool_peak, "retrying_seen": sorted(retrying), "position": wr.get("position")}


def run_native_e2e(rep: Replica, target: str, timeout: float) -> dict:
    t0 = time.monotonic()
    rep.exec("START SLAVE")
    t_io = None
    while True:
        now = time.monotonic() - t0
        st = rep.status()
        rep.check_errors(st)
        if t_io is None and covers(st.get("Gtid_IO_Pos"), target):
            t_io = now
        if covers(rep.slave_pos(), target):
            secs = time.monotonic() - t0
            break
        if now > timeout:
            raise BenchError(f"{rep.name}: gtid_slave_pos {rep.slave_pos()} not at {target} after {timeout:.0f} s")
        time.sleep(POLL_S)
    return {"catchup_s": round(secs, 2), "fetched_s": None if t_io is None else round(t_io, 2)}


def prefetch_relay(rep: Replica, business_conn, target: str, timeout: float) -> dict:
    """native-sql: the IO thread alone fetches the whole backlog into the relay log (not timed)."""
    master = qdict(business_conn, "SHOW MASTER STATUS")
    t0 = time.monotonic()
    rep.exec("START SLAVE IO_THREAD")
    while True:
        st = rep.status()
        rep.check_errors(st)
        if (covers(st.get("Gtid_IO_Pos"), target) and st.get("Master_Log_File") == master["File"]
                and int(st.get("Read_Master_Log_Pos") or 0) >= int(master["Position"])):
            break
        if time.monotonic() - t0 > timeout:
            raise BenchError(f"{rep.name}: IO thread at {st.get('Master_Log_File')}:{st.get('Read_Master_Log_Pos')}"
                             f", business at {master['File']}:{master['Position']} after {timeout:.0f} s")
        time.sleep(POLL_S)
    if rep.slave_pos() and covers(rep.slave_pos(), target):
        raise BenchError(f"{rep.name}: SQL thread applied the backlog during the prefetch")
    return {"prefetch_s": round(time.monotonic() - t0, 2), "relay_log_space": st.get("Relay_Log_Space")}


def run_native_sql(rep: Replica, target: str, timeout: float) -> dict:
    t0 = time.monotonic()
    rep.exec("START SLAVE SQL_THREAD")
    secs = rep.wait_caught_up(target, timeout, t0)
    return {"catchup_s": round(secs, 2)}


def group_commits(conn) -> tuple:
    """business's (Binlog_commits, Binlog_group_commits) counters."""
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Binlog_commits', 'Binlog_group_commits')")
        d = {k: int(v) for k, v in cur.fetchall()}
    return d.get("Binlog_commits", 0), d.get("Binlog_group_commits", 0)


def verify(name: str, business_sums: dict, dest, business, problems: list, where: str) -> dict:
    sums = checksums(dest)
    ok = sums == business_sums
    r = {"checksums_equal": ok}
    if not ok:
        hb, hd = content_hashes(business), content_hashes(dest)
        r.update(business=business_sums, dest=sums, content_business=hb, content_dest=hd, content_equal=hb == hd)
        msg = (f"CHECKSUM TABLE differs after {where} on {name}: business {business_sums} vs {sums}; "
               f"content hashes {'equal (checksum quirk?)' if hb == hd else 'DIFFER too'}: {hb} vs {hd}")
        print(f"     !!! {msg}", flush=True)
        problems.append({"where": f"{where} {name}", "error": msg})
    return r


# --- report ---------------------------------------------------------------------------------------------

def f(v, fmt="{:.2f}", none="-"):
    return pb.f(v, fmt, none)


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def summarize(reps: list) -> dict:
    s = {}
    for v in VARIANTS:
        runs = [r["runs"][v] for r in reps if v in r["runs"] and not r["runs"][v].get("failed")]
        s[v] = {"catchup_s": med(r["catchup_s"] for r in runs), "rows_per_s": med(r.get("rows_per_s") for r in runs),
                "txns_per_s": med(r.get("txns_per_s") for r in runs), "runs": len(runs),
                "failed": sum(1 for r in reps if r["runs"].get(v, {}).get("failed")),
                "checksum_mismatches": sum(1 for r in reps if r["runs"].get(v, {}).get("checksums_equal") is False)}
    for base in NATIVES:
        per_rep = [r["runs"][base]["catchup_s"] /
                   r["runs"]["switchyard"]["catchup_s"]
                   for r in reps
                   if all(not r["runs"].get(v, {}).get("failed") and r["runs"].get(v, {}).get("catchup_s")
                          for v in ("switchyard", base))]
        s[f"ratio_vs_{base}"] = {"median_per_rep": med(per_rep), "per_rep": [round(x, 3) for x in per_rep],
                                 "of_medians": (s[base]["catchup_s"] / s["switchyard"]["catchup_s"]
                                                if s[base]["catchup_s"] and s["switchyard"]["catchup_s"] else None)}
    # against the best native end-to-end setting: per rep the fastest of NATIVE_E2E in that rep; and the
    # variant with the lowest median catch-up (the ratio of medians against it)
    per_rep, best_per_rep = [], []
    for r in reps:
        syr = r["runs"].get("switchyard", {})
        ok = [(r["runs"][v]["catchup_s"], v) for v in NATIVE_E2E
              if r["runs"].get(v, {}).get("catchup_s") and not r["runs"][v].get("failed")]
        if ok and syr.get("catchup_s") and not syr.get("failed"):
            secs, v = min(ok)
            per_rep.append(secs / syr["catchup_s"])
            best_per_rep.append(v)
    meds = [(s[v]["catchup_s"], v) for v in NATIVE_E2E if s[v]["catchup_s"]]
    best = min(meds)[1] if meds else None
    s["best_native"] = best
    s["ratio_vs_best_native"] = {
        "variant": best, "median_per_rep": med(per_rep), "per_rep": [round(x, 3) for x in per_rep],
        "best_per_rep": best_per_rep,
        "of_medians": (s[best]["catchup_s"] / s["switchyard"]["catchup_s"]
                       if best and s["switchyard"]["catchup_s"] else None),
        "target": TARGET_RATIO}
    return s


def print_catchup(report: dict, args) -> None:
    reps, s = report["reps"], report["summary"]
    rows = med(r.get("rows") for r in reps)
    txns = med(r.get("txns") for r in reps)
    print(f"\n== catch-up of the same backlog: oltp_write_only {args.backlog_time} s x {SB_THREADS} threads into "
          f"business (median {f(txns, '{:.0f}')} txns, {f(rows, '{:.0f}')} rows per backlog); {len(reps)} rep(s), "
          f"order rotated; medians ==")
    hdr = (f"{'variant':<32} {'catch-up s':>10} {'rows/s':>9} {'txns/s':>8} {'Switchyard/this':>15} "
           f"{'checksums':>9} {'failed':>6}")
    print(hdr)
    print("-" * len(hdr))
    for v in VARIANTS:
        x = s[v]
        ratio = "-" if v == "switchyard" else f(s[f"ratio_vs_{v}"]["median_per_rep"])
        ok = f"{x['runs'] - x['checksum_mismatches']}/{x['runs']} ok"
        print(f"{LABEL[v]:<32} {f(x['catchup_s'], '{:.1f}'):>10} {f(x['rows_per_s'], '{:.0f}'):>9} "
              f"{f(x['txns_per_s'], '{:.0f}'):>8} {ratio:>15} {ok:>9} {x['failed']:>6}")
    for base in NATIVES:
        r = s[f"ratio_vs_{base}"]
        val = r["median_per_rep"]
        verdict = "-" if val is None else ("met" if val >= TARGET_RATIO else "NOT MET")
        print(f"  Switchyard / {base}: median of per-rep ratios {f(val)} (per rep {r['per_rep']}, ratio of medians "
              f"{f(r['of_medians'])}); target >= {TARGET_RATIO}x: {verdict}")
    b = s.get("ratio_vs_best_native") or {}
    val = b.get("median_per_rep")
    verdict = "-" if val is None else ("met" if val >= TARGET_RATIO else "NOT MET")
    print(f"  ** Switchyard / BEST native end to end ({b.get('variant') or '-'} by median catch-up): median of "
          f"per-rep ratios {f(val)} (per rep {b.get('per_rep')}, best per rep {b.get('best_per_rep')}; ratio of "
          f"medians {f(b.get('of_medians'))}); target >= {TARGET_RATIO}x: {verdict} **")
    pt = ((report.get("native_settings") or {}).get("native-par-opt") or {}).get("slave_parallel_threads", "-")
    print("  ratio = native catch-up s / Switchyard catch-up s = Switchyard rows/s / native rows/s (same backlog)."
          "\n  native e2e variants are like-for-like (both read the binlog and apply; parallel ones with "
          f"slave_parallel_threads = {pt})"
          "\n  best native = the fastest end-to-end native variant per rep; native SQL-only applies a"
          "\n  relay log fetched beforehand, Switchyard has no apply-only mode (collect+write are always timed).")
    print("  per rep (raw):")
    for r in reps:
        print(f"    rep {r['rep'] + 1}: backlog {r['txns']} txns (GTID {r['target']}), rows {r['rows']} "
              f"(Switchyard write events {r.get('rows_switchyard', '-')}, sysbench writes "
              f"{r['rows_sysbench']}, sysbench TPS "
              f"{f(r['sysbench'].get('tps'), '{:.0f}')}, ignored errors {r['sysbench'].get('errors')}); "
              f"relay prefetch {f(r.get('prefetch', {}).get('prefetch_s'))} s; binlog commits per group "
              f"{f((r.get('group_commit') or {}).get('commits_per_group'))}")
        for i, v in enumerate(r["order"]):
            x = r["runs"].get(v, {})
            extra = ""
            if v == "switchyard":
                extra = (f"collector done at {f(x.get('collected_s'))} s, RSS peak "
                         f"{f((x.get('rss_peak_kib') or 0) / 1024, '{:.1f}')} MiB, state_dir peak "
                         f"{f((x.get('state_dir_peak_bytes') or 0) / 2**20, '{:.0f}')} MiB"
                         + (f", retrying seen: {x['retrying_seen']}" if x.get("retrying_seen") else ""))
            elif v in NATIVE_E2E:
                extra = f"IO thread done at {f(x.get('fetched_s'))} s"
            flag = f"  FAILED: {x.get('error')}" if x.get("failed") else ""
            if x.get("cpu_s"):
                extra += ("; " if extra else "") + "CPU s " + ", ".join(
                    f"{'dest mariadbd' if k == 'dest' else k} {c:.1f}" for k, c in x["cpu_s"].items())
            cs = {True: "equal", False: "DIFFER", None: "-"}[x.get("checksums_equal")]
            print(f"      #{i + 1} {LABEL[v]:<32} {f(x.get('catchup_s'), '{:.1f}'):>6} s  "
                  f"{f(x.get('rows_per_s'), '{:.0f}'):>7} rows/s  {f(x.get('txns_per_s'), '{:.0f}'):>6} txns/s  "
                  f"checksums {cs}  {extra}{flag}")


def print_live(live: dict) -> None:
    print(f"\n== lag under live load: oltp_write_only --rate={live['rate']} x {SB_THREADS} threads for "
          f"{live['secs']} s; Switchyard and native replica A consuming ==")
    sb = live.get("sysbench", {})
    print(f"  sysbench: {sb.get('transactions')} txns, TPS {f(sb.get('tps'), '{:.1f}')}, "
          f"ignored errors {sb.get('errors')}")
    hdr = (f"{'t s':>5} {'biz seq':>8} | {'native SBM s':>12} {'native gtid':>11} | {'sy lag_ms':>9} "
           f"{'sy lag_ev':>9} {'sy gtid':>7} {'sy RSS MiB':>10}")
    print(hdr)
    print("-" * len(hdr))
    for x in live["samples"]:
        print(f"{x['t']:>5.0f} {x['business_seq']:>8} | {str(x['native_sbm']):>12} {x['native_gtid_behind']:>11} | "
              f"{str(x['sy_lag_ms']):>9} {str(x['sy_lag_events']):>9} {x['sy_gtid_behind']:>7} "
              f"{x['sy_rss_kib'] / 1024:>10.1f}")
    for k in ("native", "switchyard"):
        m = live.get(f"{k}_max")
        if m:
            print(f"  {k:<10} max GTID distance {m['gtid_behind']} txns" +
                  (f", max Seconds_Behind_Master {m['sbm']}" if k == "native" else
                   f", max lag_ms {m['lag_ms']}, max lag_events {m['lag_events']}") +
                  f"; caught up {f(live.get(f'{k}_caught_up_after_load_s'), '{:.1f}')} s after the load ended")
    print("  native gtid / sy gtid = business transactions not yet applied (GTID seq distance); SBM = "
          "Seconds_Behind_Master;\n  lag_ms / lag_events = Switchyard's write lag (age of the newest unapplied "
          "source transaction / spool records not yet applied).")


def print_memory(mem: dict) -> None:
    mib = lambda k: f((mem.get(k) or 0) / 1024, "{:.1f}") if mem.get(k) else "-"  # noqa: E731
    print(f"\n== switchyardd memory (VmRSS) ==\n  after initial sync {mib('after_initial_sync_kib')} MiB, "
          f"peak sampled during catch-ups {mib('catchup_peak_kib')} MiB, during live load max "
          f"{mib('live_peak_kib')} MiB, at the end {mib('end_kib')} MiB, VmHWM (lifetime peak) {mib('hwm_kib')} MiB")


# --- main -----------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build"), help="build dir with switchyardd and switchyardctl")
    ap.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 3; --quick 1)")
    ap.add_argument("--backlog-time", type=int, default=None, help="sysbench seconds per backlog (default 60; "
                    "--quick 10)")
    ap.add_argument("--live-time", type=int, default=30, help="seconds of live load (default 30)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 10 s backlog x 1 rep")
    ap.add_argument("--apply-threads", type=int, default=None,
                    help="apply_threads of the forward instance's writer (default: Switchyard's default)")
    ap.add_argument("--on-conflict", choices=["fail", "overwrite"], default=None,
                    help="on_conflict of the pair (default: Switchyard's default, fail)")
    ap.add_argument("--no-live", action="store_true", help="skip the live-load lag run")
    ap.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (switchyardd log, sysbench outputs)")
    args = ap.parse_args()
    args.reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    args.backlog_time = args.backlog_time if args.backlog_time is not None else (10 if args.quick else 60)
    global APPLY_THREADS, ON_CONFLICT
    APPLY_THREADS = args.apply_threads
    ON_CONFLICT = args.on_conflict
    build = Path(args.build).resolve()

    interrupt_on_term_signals()
    if not shutil.which("sysbench"):
        print("apply_bench: sysbench not found (scripts/install-deps.sh)", file=sys.stderr)
        return 2
    for b in (build / "switchyardd", build / "switchyardctl"):
        if not os.access(b, os.X_OK):
            print(f"apply_bench: {b} missing: cmake --build {build} -j2", file=sys.stderr)
            return 2

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    work = Path(tempfile.mkdtemp(prefix="sy-abench-", dir="/tmp"))   # short: admin socket path < 107
    report = {
        "started": datetime.now().astimezone().isoformat(timespec="seconds"),
        "args": vars(args),
        "host": {"nproc": os.cpu_count(), "loadavg_start": os.getloadavg(), "uname": " ".join(os.uname())},
        "versions": {"sysbench": tool_version(["sysbench", "--version"]),
                     "mariadbd": tool_version([shutil.which("mariadbd") or "/usr/sbin/mariadbd", "--version"])},
        "switchyardd": {"path": str(build / "switchyardd"),
                        "mtime": datetime.fromtimestamp((build / "switchyardd").stat().st_mtime).isoformat(),
                        "size": (build / "switchyardd").stat().st_size},
        "sysbench": {"workload": "oltp_write_only", "tables": SB_TABLES, "table_size": SB_TABLE_SIZE,
                     "threads": SB_THREADS, "backlog_s": args.backlog_time, "live_s": args.live_time,
                     "live_rate": LIVE_RATE},
        "reps": [], "summary": {}, "live": {}, "memory": {}, "problems": [],
    }
    problems = report["problems"]
    mem = report["memory"]
    sy = None
    rc = 0
    timeout = max(300.0, 15.0 * args.backlog_time)
    print(f"apply_bench: {args.reps} rep(s) x {args.backlog_time} s backlog (oltp_write_only, {SB_THREADS} threads), "
          f"variants {', '.join(VARIANTS)}; live {args.live_time} s at {LIVE_RATE} tps; work dir {work}", flush=True)
    try:
        with contextlib.ExitStack() as stack:
            business, dr = stack.enter_context(sandbox.servers(2))
            rep_a, rep_b = stack.enter_context(sandbox.servers(
                2, first_index=2, extra_args=["--slave-parallel-threads=0", "--log-slave-updates=ON",
                                              "--skip-slave-start", "--relay-log=relay"]))
            # native parallel replication as peers: as many worker threads as Switchyard's apply_threads, set
            # in the server options, i.e. before any START SLAVE (setup() checks them)
            par_threads = APPLY_THREADS or DEFAULT_APPLY_THREADS
            par_servers = {}
            for i, (v, mode) in enumerate((("native-par-opt", "optimistic"), ("native-par-cons", "conservative"))):
                par_servers[v] = stack.enter_context(sandbox.servers(
                    1, first_index=4 + i, extra_args=[f"--slave-parallel-threads={par_threads}",
                                                      f"--slave-parallel-mode={mode}", "--log-slave-updates=ON",
                                                      "--skip-slave-start", "--relay-log=relay"]))[0]
            rep_c, rep_d = par_servers["native-par-opt"], par_servers["native-par-cons"]
            conns = []
            stack.callback(lambda: [c.close() for c in conns])
            stack.callback(stop_all_children)             # LIFO: switchyardd/sysbench stop before the servers
            print(f"  MariaDB business {HOST}:{business.port}, dr {HOST}:{dr.port}, native replica A (e2e) "
                  f"{HOST}:{rep_a.port}, native replica B (SQL-only) {HOST}:{rep_b.port}, native replica C "
                  f"(parallel optimistic, {par_threads} threads) {HOST}:{rep_c.port}, native replica D (parallel "
                  f"conservative, {par_threads} threads) {HOST}:{rep_d.port}", flush=True)
            report["servers"] = {"business": business.port, "dr": dr.port, "native_a": rep_a.port,
                                 "native_b": rep_b.port, "native_c": rep_c.port, "native_d": rep_d.port}
            bconn = connect(business)
            conns.append(bconn)
            start_pos = q1(bconn, "SELECT @@gtid_binlog_pos")[0]
            natives = {"native-e2e": Replica("replica A", rep_a, business),
                       "native-par-opt": Replica("replica C", rep_c, business),
                       "native-par-cons": Replica("replica D", rep_d, business),
                       "native-sql": Replica("replica B", rep_b, business)}
            expect = {"native-e2e": {"slave_parallel_threads": 0}, "native-sql": {"slave_parallel_threads": 0},
                      "native-par-opt": {"slave_parallel_threads": par_threads, "slave_parallel_mode": "optimistic"},
                      "native-par-cons": {"slave_parallel_threads": par_threads,
                                          "slave_parallel_mode": "conservative"}}
            for v, r in natives.items():
                r.setup(start_pos, expect[v])
                conns.append(r.conn)
            report["native_settings"] = {v: r.settings for v, r in natives.items()}
            business.sql(f"CREATE DATABASE {SB_DB}")
            t0 = time.monotonic()
            p = subprocess.run(sb_cmd(business.port, f"--threads={SB_THREADS}", "prepare"), capture_output=True,
                               text=True, timeout=600)
            if p.returncode != 0:
                raise BenchError(f"sysbench prepare failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
            pos = q1(bconn, "SELECT @@gtid_binlog_pos")[0]
            print(f"  sbtest prepared on business ({SB_TABLES} x {SB_TABLE_SIZE} rows, {time.monotonic() - t0:.1f} s)"
                  f"; replicas replicating from {start_pos or '(empty)'}", flush=True)
            for r in natives.values():
                r.wait_caught_up(pos, timeout)
            t0 = time.monotonic()
            sy = SwitchyardForward(build, work, business, dr).start()
            # write.position stays "" until the first incremental transaction: then lag 0 is enough
            inst = sy.wait_instance(lambda i: i.get("state") == "running" and (i.get("initial_sync") or {}).get("done")
                                    and (covers(i["write"].get("position"), pos)
                                         or (not i["write"].get("position") and i["write"].get("lag_events") == 0)),
                                    timeout, "initial sync done and no write lag")
            mem["after_initial_sync_kib"] = sy.rss()
            report["initial_sync"] = {"seconds": round(time.monotonic() - t0, 2), **(inst.get("initial_sync") or {})}
            print(f"  switchyardd pid {sy.proc.pid}: {INSTANCE} running after initial sync of "
                  f"{report['initial_sync'].get('total_rows')} rows ({report['initial_sync']['seconds']} s); "
                  f"RSS {mem['after_initial_sync_kib'] / 1024:.1f} MiB", flush=True)
            sums = checksums(business)
            for name, dest in (("dr", dr), ("replica A", rep_a), ("replica B", rep_b), ("replica C", rep_c),
                               ("replica D", rep_d)):
                verify(name, sums, dest, business, problems, "initial copy")
            dests = {"switchyard": dr, "native-e2e": rep_a, "native-sql": rep_b, "native-par-opt": rep_c,
                     "native-par-cons": rep_d}

            catchup_peak = 0
            for rep in range(args.reps):
                nv = len(VARIANTS)
                rr = {"rep": rep, "order": list(VARIANTS[rep % nv:] + VARIANTS[:rep % nv]), "runs": {}}
                report["reps"].append(rr)
                # 1. every consumer stopped
                sy.ctl("pause", INSTANCE)
                sy.wait_instance(lambda i: i.get("state") == "paused", 30, "state paused")
                for r in natives.values():
                    r.exec("STOP SLAVE")
                    r.wait_stopped()
                # 2. the backlog
                before_pos = q1(bconn, "SELECT @@gtid_binlog_pos")[0]
                print(f"\n-- rep {rep + 1}/{args.reps}: backlog: oltp_write_only {args.backlog_time} s into business "
                      f"(consumers stopped)", flush=True)
                gc0 = group_commits(bconn)
                rr["sysbench"] = sysbench_run(business.port, args.backlog_time, work, f"backlog-{rep}")
                gc1 = group_commits(bconn)
                rr["group_commit"] = {"binlog_commits": gc1[0] - gc0[0], "binlog_group_commits": gc1[1] - gc0[1]}
                rr["group_commit"]["commits_per_group"] = (
                    round(rr["group_commit"]["binlog_commits"] / rr["group_commit"]["binlog_group_commits"], 3)
                    if rr["group_commit"]["binlog_group_commits"] else None)
                if rr["sysbench"]["failed"]:
                    raise BenchError(f"sysbench backlog run failed:\n{rr['sysbench'].get('output_tail')}")
                target = q1(bconn, "SELECT @@gtid_binlog_pos")[0]
                rr.update(target=target, txns=distance(before_pos, target), rows_sysbench=rr["sysbench"]["writes"])
                sums = checksums(business)
                print(f"   backlog: {rr['txns']} txns ({rr['sysbench']['tps']:.0f} TPS), business at {target}; "
                      f"sysbench writes (1 row each) {rr['rows_sysbench']}; binlog group commit: "
                      f"{rr['group_commit']['binlog_commits']} commits in {rr['group_commit']['binlog_group_commits']}"
                      f" groups ({f(rr['group_commit']['commits_per_group'])} per group)", flush=True)
                rr["prefetch"] = prefetch_relay(natives["native-sql"], bconn, target, timeout)
                print(f"   replica B relay log prefetched in {rr['prefetch']['prefetch_s']} s "
                      f"(Relay_Log_Space {rr['prefetch']['relay_log_space']})", flush=True)
                # 3. timed catch-ups, one at a time
                for v in rr["order"]:
                    pids = {"business": business.pid, "dest": dests[v].pid}
                    if v == "switchyard":
                        pids["switchyardd"] = sy.proc.pid
                    cpu0 = {k: cpu_s(pid) for k, pid in pids.items()}
                    try:
                        if v == "switchyard":
                            res = run_switchyard(sy, target, timeout)
                            catchup_peak = max(catchup_peak, res["rss_peak_kib"])
                        elif v in NATIVE_E2E:
                            res = run_native_e2e(natives[v], target, timeout)
                        else:
                            res = run_native_sql(natives[v], target, timeout)
                    except BenchError as e:
                        res = {"failed": True, "error": str(e)}
                        problems.append({"where": f"rep {rep + 1} {v}", "error": str(e)})
                        print(f"   {LABEL[v]:<32} FAILED: {e}", flush=True)
                        rr["runs"][v] = res
                        if v == "switchyard":
                            sy.alive()                      # a dead daemon ends the bench
                        continue
                    res["cpu_s"] = {k: round(cpu_s(pid) - cpu0[k], 2) for k, pid in pids.items()}
                    res.update(verify(v, sums, dests[v], business, problems, f"rep {rep + 1}"))
                    rr["runs"][v] = res
                    print(f"   {LABEL[v]:<32} caught up in {res['catchup_s']:6.1f} s  checksums "
                          f"{'equal' if res['checksums_equal'] else 'DIFFER'}"
                          + (f"  (collector done at {f(res.get('collected_s'))} s, rows applied "
                             f"{res.get('rows_applied')}, RSS peak {res['rss_peak_kib'] / 1024:.1f} MiB)"
                             if v == "switchyard" else "")
                          + (f"  (IO thread done at {f(res.get('fetched_s'))} s)" if v in NATIVE_E2E else ""),
                          flush=True)
                syr = rr["runs"].get("switchyard", {})
                rr["rows_switchyard"] = syr.get("rows_applied")
                rr["rows"] = rr["rows_switchyard"] or rr["rows_sysbench"]
                for v, x in rr["runs"].items():
                    if not x.get("failed") and x.get("catchup_s"):
                        x["rows_per_s"] = rr["rows"] / x["catchup_s"]
                        x["txns_per_s"] = rr["txns"] / x["catchup_s"]
            mem["catchup_peak_kib"] = catchup_peak or None
            report["summary"] = summarize(report["reps"])
            print_catchup(report, args)

            # live load
            if not args.no_live:
                live = report["live"] = {"rate": LIVE_RATE, "secs": args.live_time, "samples": []}
                ra = natives["native-e2e"]
                for r in natives.values():
                    r.exec("STOP SLAVE")
                    r.wait_stopped()
                if sy.instance().get("state") == "paused":
                    sy.ctl("start", INSTANCE)
                ra.exec("START SLAVE")
                pos = q1(bconn, "SELECT @@gtid_binlog_pos")[0]
                ra.wait_caught_up(pos, timeout)
                sy.wait_instance(lambda i: i.get("state") == "running" and covers(i["write"].get("position"), pos),
                                 timeout, "running and caught up before the live load")
                print(f"\n-- live load: oltp_write_only --rate={LIVE_RATE} for {args.live_time} s; "
                      "sampling every second", flush=True)
                p, outp = sysbench_run(business.port, args.live_time, work, "live", rate=LIVE_RATE, wait=False)
                t0 = time.monotonic()
                end_load = None
                caught = {}
                nmax = {"gtid_behind": 0, "sbm": 0}
                smax = {"gtid_behind": 0, "lag_ms": 0, "lag_events": 0}
                live_peak = 0
                tick = 0
                while True:
                    tick += 1
                    time.sleep(max(0.0, t0 + tick - time.monotonic()))
                    now = time.monotonic() - t0
                    if end_load is None and p.poll() is not None:
                        end_load = now
                    bpos = q1(bconn, "SELECT @@gtid_binlog_pos")[0]
                    st = ra.status()
                    ra.check_errors(st)
                    npos = ra.slave_pos()
                    sy.alive()
                    inst = sy.instance()
                    rss = sy.rss()
                    live_peak = max(live_peak, rss)
                    wr = inst.get("write") or {}
                    x = {"t": round(now, 1), "business_seq": max(gtid_parse(bpos).values() or [0]),
                         "native_sbm": st.get("Seconds_Behind_Master"), "native_gtid_behind": distance(npos, bpos),
                         "sy_state": inst.get("state"), "sy_lag_ms": wr.get("lag_ms"),
                         "sy_lag_events": wr.get("lag_events"), "sy_gtid_behind": distance(wr.get("position"), bpos),
                         "sy_rss_kib": rss, "load_running": end_load is None}
                    live["samples"].append(x)
                    nmax = {"gtid_behind": max(nmax["gtid_behind"], x["native_gtid_behind"]),
                            "sbm": max(nmax["sbm"], x["native_sbm"] or 0)}
                    smax = {"gtid_behind": max(smax["gtid_behind"], x["sy_gtid_behind"]),
                            "lag_ms": max(smax["lag_ms"], x["sy_lag_ms"] or 0),
                            "lag_events": max(smax["lag_events"], x["sy_lag_events"] or 0)}
                    if end_load is not None:
                        for k, behind in (("native", x["native_gtid_behind"]), ("switchyard", x["sy_gtid_behind"])):
                            if behind == 0 and k not in caught:
                                caught[k] = round(now - end_load, 1)
                        if len(caught) == 2 or now - end_load > max(60, timeout / 4):
                            break
                    if now > args.live_time + 180:
                        break
                live["sysbench"] = sysbench_finish(p, outp, args.live_time)
                live.update(native_max=nmax, switchyard_max=smax, live_peak_kib=live_peak,
                            native_caught_up_after_load_s=caught.get("native"),
                            switchyard_caught_up_after_load_s=caught.get("switchyard"))
                mem["live_peak_kib"] = live_peak
                if live["sysbench"]["failed"]:
                    problems.append({"where": "live sysbench", "error": live["sysbench"].get("output_tail")})
                for k in ("native", "switchyard"):
                    if k not in caught:
                        problems.append({"where": f"live load {k}", "error": "not caught up after the load"})
                print_live(live)
                bpos = q1(bconn, "SELECT @@gtid_binlog_pos")[0]
                ra.wait_caught_up(bpos, timeout)
                sy.wait_instance(lambda i: covers(i["write"].get("position"), bpos), timeout, "caught up after live")
                sums = checksums(business)
                live["verify"] = {"switchyard": verify("switchyard", sums, dr, business, problems, "live load"),
                                  "native-e2e": verify("native-e2e", sums, rep_a, business, problems, "live load")}
                print(f"  checksums after the live load: switchyard "
                      f"{'equal' if live['verify']['switchyard']['checksums_equal'] else 'DIFFER'}, native "
                      f"{'equal' if live['verify']['native-e2e']['checksums_equal'] else 'DIFFER'}")

            sy.alive()
            mem["end_kib"] = sy.rss()
            mem["hwm_kib"] = sy.hwm()
            print_memory(mem)
            report["switchyard_final_status"] = sy.instance()
            switchyard_log_summary(sy, report, problems, "info")
    except (KeyboardInterrupt, Interrupted) as e:
        rc = on_interrupt("apply_bench", e, report)
    except Exception as e:  # noqa: BLE001 - still write what we have
        rc = on_crash(e, report, {"switchyard": sy.log if sy else None})
    finally:
        stop_all_children()
        if report["reps"] and not report["summary"]:
            with contextlib.suppress(Exception):
                report["summary"] = summarize(report["reps"])
        write_report(report, args.results_dir, f"apply-{stamp}.json")
        remove_work_dir(work, args.keep)
    return report_problems("apply_bench", problems, rc)


if __name__ == "__main__":
    sys.exit(main())
