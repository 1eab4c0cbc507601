#!/usr/bin/python3
"""How late do FerretDB's oplog entries land, and what does the collector's sweep cost per poll.

    /usr/bin/python3 bench/mongo_oplog_lateness.py                       # 8 writers, 2 CPU burners, 40 s
    /usr/bin/python3 bench/mongo_oplog_lateness.py --writers 16 --burn 4 --seconds 60

FerretDB 1.24 takes an entry's ts before it stores the entry, so under concurrent writes an entry can land
(natural order) after newer ones; the collector (capture/mongo_collector.c) re-reads WINDOW_S = 2 s on every
poll and SWEEP_S = 30 s every 10 s. On a FerretDB pair of its own (business only is used): --writers
processes insert_one small documents for --seconds while --burn `yes >/dev/null` processes load the cores.
Then the whole oplog is read in natural order: an entry is late when its ts is older than the newest ts
stored before it; its lateness is that newest entry's wall minus its own (ms: FerretDB's `wall` has ms).
Prints the number of entries, of late ones, lateness p50/p99/max and how many were later than 2 s, 10 s
and 60 s. Then the cost of a poll: find({ts: {$gt: newest - S}}) read to its end for S = 2, 30 and 60, --reps
interleaved repetitions, median ms and entries returned (raw BSON, not decoded in Python; FerretDB reads the whole oplog for both: the
difference is decoding and sending the wider window's entries). Writes bench/results/mongo-lateness-*.json.
Nothing is asserted: a measurement.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT  # noqa: E402  (puts scripts/ on sys.path)
import sandbox  # noqa: E402


def writer(server, n: int, until: float, out):
    done = 0
    with server.client(maxPoolSize=1) as c:
        coll = c.bench[f"w{n}"]
        while time.time() < until:
            coll.insert_one({"w": n, "i": done, "pad": "x" * 100})
            done += 1
    out.put(done)


def percentile(v, p):
    return v[min(len(v) - 1, int(len(v) * p))] if v else 0


def lateness(server):
    """(entries, [lateness ms of each late entry]) over the oplog in natural order."""
    late, n, newest, newest_wall = [], 0, None, None
    with server.client() as c:
        for e in c.local["oplog.rs"].find({}, {"ts": 1, "wall": 1}):
            n += 1
            ts, wall = (e["ts"].time, e["ts"].inc), e["wall"].timestamp() * 1000
            if newest is not None and ts < newest:
                late.append(max(0.0, newest_wall - wall))
            elif newest is None or ts > newest:
                newest, newest_wall = ts, wall
    return n, sorted(late)


def poll_cost(server, reps: int):
    sandbox.pymongo4()
    import bson
    from bson.raw_bson import RawBSONDocument
    out = {}
    with server.client(document_class=RawBSONDocument) as c:
        oplog = c.local["oplog.rs"]
        newest = max(bson.decode(e.raw)["ts"].time for e in oplog.find({}, {"ts": 1}))
        for _ in range(reps):
            for s in (2, 30, 60):
                t0 = time.perf_counter()
                got = sum(1 for _ in oplog.find({"ts": {"$gt": bson.Timestamp(newest - s, 0)}}, batch_size=1000))
                out.setdefault(s, []).append(((time.perf_counter() - t0) * 1000, got))
    return {s: {"median_ms": round(statistics.median(ms for ms, _ in v), 1), "entries": v[0][1]}
            for s, v in out.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--burn", type=int, default=2, help="`yes >/dev/null` processes during the writes")
    ap.add_argument("--seconds", type=float, default=40)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    business, dr = sandbox.start_ferretdb_pair()
    burners = []
    try:
        burners = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(a.burn)]
        until, q = time.time() + a.seconds, mp.Queue()
        ps = [mp.Process(target=writer, args=(business, i, until, q)) for i in range(a.writers)]
        for p in ps:
            p.start()
        inserts = sum(q.get() for _ in ps)
        for p in ps:
            p.join()
        load = open("/proc/loadavg").read().split()[0]
        for b in burners:
            b.terminate()
            b.wait()
        burners = []
        n, late = lateness(business)
        report = {
            "writers": a.writers, "burners": a.burn, "seconds": a.seconds, "inserts": inserts,
            "loadavg_1m_at_end": float(load), "entries": n, "late": len(late),
            "late_p50_ms": percentile(late, 0.5), "late_p99_ms": percentile(late, 0.99),
            "late_max_ms": late[-1] if late else 0,
            "later_than_2s": sum(x > 2000 for x in late), "later_than_10s": sum(x > 10000 for x in late),
            "later_than_60s": sum(x > 60000 for x in late), "poll_cost": poll_cost(business, a.reps),
        }
        print(json.dumps(report, indent=1))
        res = ROOT / "bench" / "results"
        res.mkdir(exist_ok=True)
        (res / f"mongo-lateness-{datetime.now():%Y%m%d-%H%M%S}.json").write_text(json.dumps(report, indent=1))
    finally:
        for b in burners:
            b.terminate()
        for s in (business, dr):
            s.stop()


if __name__ == "__main__":
    main()
