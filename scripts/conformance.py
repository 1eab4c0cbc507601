#!/usr/bin/python3
"""`make conformance`: client libraries' own test suites run directly and through switchyardd, compared per
test, plus a pooled application workload through 10 switches (issue 13, "Conformance, permanently").

    /usr/bin/python3 scripts/conformance.py --build build                  # everything (~4 min; ~0.5 min more the first time)
    /usr/bin/python3 scripts/conformance.py --build build --only go        # one part: go, mysqlclient, workload
    /usr/bin/python3 scripts/conformance.py --build build --switches 4 --keep
    /usr/bin/python3 scripts/conformance.py --build build --only go --go-run '^TestLongData$'   # some go tests

Suites (each run twice against the same business server: straight to its port, then through the proxy):
  go           go-sql-driver/mysql v1.9.3's own `go test` (the module from the Go module proxy, copied to a
               writable dir; the test binary is built once and cached). MYSQL_TEST_CONCURRENT=1.
  mysqlclient  mysqlclient 2.2.7's own pytest suite (the PyPI sdist's tests/, the C extension built against
               Debian's Connector/C in a cached venv).
Both servers and the proxy offer TLS (a throwaway self-signed certificate) so the TLS tests run too.
Outcomes per test (pass / fail / skip / missing) are compared; a test whose outcome differs is a difference.
Differences listed in conformance/known_differences.json (each with its reason) are reported; any other one
fails the run (exit 1). Tests excluded from both runs are listed there too, with the reason.

Workload: tests/clients/go/bankpool (database/sql pool of 8, init SQL on every connection, 6 goroutines
moving money between 50 accounts, a 1213 transaction retried) through a second switchyardd whose pair
synchronizes bank.*, while this script calls switchover/switchback 10 times. After each switch: the workload
takes all 8 pooled connections and checks their session state (sql_mode, time_zone,
innodb_lock_wait_timeout, user variable, database; no connection replaced), 0 errors other than retried
1213s, the sum of balances on the active side is unchanged and every acknowledged transfer is there. At the
end both sides hold the same rows.

Prints a table per suite and the workload figures; writes everything to bench/results/conformance-<ts>.json.
Caches (outside the repo): /var/cache/switchyard/conformance (SY_CONFORMANCE_CACHE).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from common import (admin_request, interrupt_on_term_signals, raise_nofile, spawn, stop, stop_all_children,  # noqa: E402
                    tail)
import sandbox  # noqa: E402  (common put scripts/ on sys.path)

HOST = "127.0.0.1"
CACHE = Path(os.environ.get("SY_CONFORMANCE_CACHE", "/var/cache/switchyard/conformance"))
KNOWN = ROOT / "conformance" / "known_differences.json"
GO = os.environ.get("SY_GO", "/usr/local/go/bin/go")
GO_DRIVER = "github.com/go-sql-driver/mysql"
GO_DRIVER_VERSION = "v1.9.3"
MYSQLCLIENT_VERSION = "2.2.7"
USER, PASSWORD = "conf", "conf-Pw-1"                 # the suites' account (ALL, as their CI uses root)
APP_USER, APP_PASSWORD = "bank_app", "bank-Pw-1"     # the workload's account: ALL on bank.* only
ACCOUNTS, START_BALANCE = 50, 1000
PAIR = "conf"
MAX_CONNECTIONS = 1000                               # TestConcurrent opens @@max_connections connections


class ConformanceError(RuntimeError):
    pass


def say(msg: str) -> None:
    print(f"conformance: {msg}", flush=True)


def run(cmd, timeout=600, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)
    if r.returncode != 0:
        raise ConformanceError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n"
                               f"{r.stderr[-3000:]}")
    return r


# --- switchyardd ----------------------------------------------------------------------------------------

class Switchyard:
    def __init__(self, build: Path, work: Path, business, dr, objects: str | None, tls: tuple | None):
        self.daemon, self.ctl = build / "switchyardd", build / "switchyardctl"
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.ini, self.sock, self.log = work / "switchyard.ini", work / "admin.sock", work / "switchyardd.log"
        self.business, self.dr, self.objects, self.tls = business, dr, objects, tls
        self.proc = None
        self.port = None

    def start(self) -> "Switchyard":
        ini = ("[switchyard]\n"
               f"admin_socket = {self.sock}\nstate_dir = {self.work / 'state'}\nlog_level = info\n\n"
               f"[pair {PAIR}]\nengine = mariadb\nlisten = {HOST}:0\n"
               f"business = {HOST}:{self.business.port}\ndr = {HOST}:{self.dr.port}\n"
               f"admin_user = {sandbox.ADMIN_USER}\nadmin_password = {sandbox.ADMIN_PASSWORD}\n")
        if self.objects:
            ini += f"objects = {self.objects}\n"
        if self.tls:
            ini += f"tls_cert = {self.tls[0]}\ntls_key = {self.tls[1]}\n"
        self.ini.write_text(ini)
        with open(self.log, "ab") as log:
            self.proc = spawn([self.daemon, "-c", self.ini, "--foreground"], stdout=log, stderr=subprocess.STDOUT,
                              cwd=self.work)
        deadline = time.monotonic() + 30
        while True:
            self.alive()
            with contextlib.suppress(OSError, ValueError, KeyError, IndexError, ConformanceError):
                self.port = int(self.pair()["listen"].rsplit(":", 1)[1])
                with socket.create_connection((HOST, self.port), timeout=2) as s:
                    if s.recv(5)[4:5] == b"\x0a":
                        return self
            if time.monotonic() > deadline:
                raise ConformanceError(f"switchyardd not ready after 30 s:\n{tail(self.log)}")
            time.sleep(0.1)

    def alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            raise ConformanceError(f"switchyardd exited ({self.proc and self.proc.returncode}):\n{tail(self.log)}")

    def admin(self, cmd: str, timeout: float = 10, **args) -> dict:
        try:
            return admin_request(self.sock, cmd, timeout, **args)
        except ConnectionError as e:
            raise ConformanceError(str(e)) from None

    def admin_ok(self, cmd: str, timeout: float = 10, **args) -> dict:
        r = self.admin(cmd, timeout, **args)
        if not r.get("ok"):
            raise ConformanceError(f"admin {cmd}: {r.get('error')}")
        return r["result"]

    def pair(self) -> dict:
        st = self.admin_ok("status", pair=PAIR)
        return st.get("pairs", [st])[0]

    def instance(self, direction: str) -> dict:
        return next((i for i in self.pair().get("instances", []) if i.get("direction") == direction), {})

    def wait_instance(self, direction: str, state: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            self.alive()
            i = self.instance(direction)
            if i.get("state") == state:
                return i
            if i.get("state") in ("failed", "precheck_failed", "terminated"):
                raise ConformanceError(f"{PAIR}/{direction} {i.get('state')}: {i.get('last_error')}")
            if time.monotonic() > deadline:
                raise ConformanceError(f"{PAIR}/{direction} not {state} after {timeout:.0f} s: {i}")
            time.sleep(0.2)

    def stop(self) -> int | None:
        rc = stop(self.proc, timeout=20)
        self.proc = None
        return rc


# --- servers and accounts -------------------------------------------------------------------------------

def make_cert(work: Path) -> tuple:
    cert, key = work / "cert.pem", work / "key.pem"
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-keyout", key, "-out", cert], timeout=60)
    os.chmod(key, 0o600)
    return cert, key


def setup_accounts(servers) -> None:
    for s in servers:
        stmts = []
        for host in ("%", "localhost"):
            stmts += [f"CREATE OR REPLACE USER '{USER}'@'{host}' IDENTIFIED VIA mysql_native_password "
                      f"USING PASSWORD('{PASSWORD}')",
                      f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'{host}' WITH GRANT OPTION",
                      f"CREATE OR REPLACE USER '{APP_USER}'@'{host}' IDENTIFIED BY '{APP_PASSWORD}'",
                      f"GRANT ALL PRIVILEGES ON bank.* TO '{APP_USER}'@'{host}'"]
        s.sql(";\n".join(stmts))


def fresh_db(server, name: str) -> None:
    server.sql(f"DROP DATABASE IF EXISTS `{name}`; CREATE DATABASE `{name}`")


# --- suite: go-sql-driver/mysql -------------------------------------------------------------------------

def go_version() -> str:
    return run([GO, "env", "GOVERSION"], env={**os.environ, "GOTOOLCHAIN": "local"}).stdout.strip()


def go_suite_binary() -> Path:
    """The driver's test binary (go test -c), built once per Go version into the cache."""
    d = CACHE / f"go-sql-driver-mysql-{GO_DRIVER_VERSION}-{go_version()}"
    binary = d / "mysql.test"
    if (d / ".complete").exists():
        return binary
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod -buildvcs=false"}
    with tempfile.TemporaryDirectory(dir="/tmp", prefix="sy-conf-mod-") as tmp:
        info = json.loads(run([GO, "mod", "download", "-json", f"{GO_DRIVER}@{GO_DRIVER_VERSION}"], cwd=tmp,
                              env=env).stdout)
        say(f"building the test binary of {GO_DRIVER}@{GO_DRIVER_VERSION} ({info['Dir']})")
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        src = d / "src"
        shutil.copytree(info["Dir"], src)           # the module cache is read-only
        for p in src.rglob("*"):
            p.chmod(0o755 if p.is_dir() else 0o644)
        run([GO, "test", "-c", "-o", binary, "."], cwd=src, env=env, timeout=900)
    (d / ".complete").touch()
    return binary


def go_excluded(known: dict) -> list:
    return [e["test"] for e in known.get("excluded", []) if e["suite"] == "go"]


GO_RUN_TIMEOUT = "150s"        # the whole binary; it takes 15-40 s. A hang panics it; see run_go.


def _go_attempt(binary: Path, env: dict, skip: list, out: Path, only: str | None) -> tuple:
    cmd = [GO, "tool", "test2json", "-p", "mysql", binary, "-test.v=test2json", "-test.count=1",
           f"-test.timeout={GO_RUN_TIMEOUT}"]
    if only:
        cmd.append(f"-test.run={only}")
    if skip:
        cmd.append("-test.skip=^(" + "|".join(sorted(set(skip))) + ")$")
    with open(out, "w") as f:
        r = subprocess.run([str(c) for c in cmd], stdout=f, stderr=subprocess.PIPE, text=True, env=env,
                           cwd=binary.parent / "src", timeout=900)
    outcomes, text, started, paused = {}, {}, [], set()
    for line in out.read_text().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        t = e.get("Test")
        if not t:
            continue
        a = e.get("Action")
        if a == "run":
            started.append(t)
        elif a == "output":
            text.setdefault(t, []).append(e.get("Output", ""))
        elif a == "pause":
            paused.add(t)
        elif a == "cont":
            paused.discard(t)
        elif a in ("pass", "fail", "skip"):
            outcomes[t] = a
    # running when the binary died: started, not finished, not waiting (t.Parallel) for its turn
    unfinished = [t for t in started if t not in outcomes and t not in paused]
    return r, outcomes, text, unfinished


def run_go(binary: Path, addr: str, label: str, work: Path, known: dict, only: str | None = None) -> dict:
    """The suite in one test binary. A test that hangs (or panics) ends the binary (-test.timeout) and
    every test after it: its top-level test is then marked incomplete (its subtests that had finished
    keep their outcome) and the binary runs again skipping it, until it gets through (at most 4 runs)."""
    env = {**os.environ, "MYSQL_TEST_USER": USER, "MYSQL_TEST_PASS": PASSWORD, "MYSQL_TEST_PROT": "tcp",
           "MYSQL_TEST_ADDR": addr, "MYSQL_TEST_DBNAME": "gotest", "MYSQL_TEST_CONCURRENT": "1",
           "GOTOOLCHAIN": "local"}
    skip = go_excluded(known)
    outcomes, text, hung, stderr, rc = {}, {}, [], "", 0
    t0 = time.monotonic()
    for attempt in range(4):
        r, o, tx, unfinished = _go_attempt(binary, env, skip, work / f"go-{label}-{attempt}.json", only)
        rc, stderr = r.returncode, r.stderr[-2000:]
        for t, v in o.items():
            outcomes.setdefault(t, v)
        for t, v in tx.items():
            text.setdefault(t, v)
        if not unfinished:
            break
        leaf = unfinished[-1]
        top = leaf.split("/")[0]
        say(f"go {label}: the test binary ended inside {leaf} (hang or panic); running again without {top}")
        hung.append(leaf)
        for t in unfinished:
            outcomes[t] = "incomplete"
        skip.append(top)
    return {"outcomes": outcomes, "seconds": round(time.monotonic() - t0, 1), "exit": rc, "stderr": stderr,
            "hung": hung,
            "text": {t: "".join(v)[-1500:] for t, v in text.items() if outcomes.get(t) in ("fail", "incomplete")}}


# --- suite: mysqlclient ---------------------------------------------------------------------------------

def mysqlclient_env() -> Path:
    """A venv (Debian's python3 + its pytest) with mysqlclient built from the PyPI sdist; tests/ beside it."""
    pyver = f"py{sys.version_info.major}.{sys.version_info.minor}"
    d = CACHE / f"mysqlclient-{MYSQLCLIENT_VERSION}-{pyver}"
    if (d / ".complete").exists():
        return d
    say(f"building mysqlclient {MYSQLCLIENT_VERSION} into {d}")
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    run(["/usr/bin/python3", "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
         f"mysqlclient=={MYSQLCLIENT_VERSION}", "-d", d / "dl"], timeout=300)
    sdist = next((d / "dl").glob("mysqlclient-*.tar.gz"))
    run(["tar", "xzf", sdist, "-C", d / "dl"])
    shutil.copytree(d / "dl" / f"mysqlclient-{MYSQLCLIENT_VERSION}" / "tests", d / "tests")
    run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", d / "venv"])
    run([d / "venv" / "bin" / "pip", "install", "-q", sdist], timeout=600)
    (d / ".complete").touch()
    return d


def run_mysqlclient(env_dir: Path, port: int, label: str, work: Path) -> dict:
    cnf = work / f"mysqlclient-{label}.cnf"
    cnf.write_text(f"[MySQLdb-tests]\nhost = {HOST}\nport = {port}\nuser = {USER}\npassword = {PASSWORD}\n"
                   "database = mysqldb_test\ndefault-character-set = utf8mb4\n")
    xml = work / f"mysqlclient-{label}.xml"
    tests = work / f"mysqlclient-tests-{label}"
    shutil.rmtree(tests, ignore_errors=True)
    shutil.copytree(env_dir / "tests", tests)
    env = {**os.environ, "TESTDB": str(cnf), "PYTHONDONTWRITEBYTECODE": "1"}
    t0 = time.monotonic()
    r = subprocess.run([str(env_dir / "venv" / "bin" / "python"), "-m", "pytest", "-p", "no:cacheprovider",
                        "-q", "-rN", f"--junitxml={xml}", str(tests)], capture_output=True, text=True,
                       env=env, cwd=tests, timeout=1200)
    secs = time.monotonic() - t0
    outcomes, text = {}, {}
    if xml.exists():
        for tc in ET.parse(xml).getroot().iter("testcase"):
            name = f"{tc.get('classname')}::{tc.get('name')}"
            kinds = {c.tag for c in tc}
            if kinds & {"failure", "error"}:
                outcomes[name] = "fail"
                el = next(c for c in tc if c.tag in ("failure", "error"))
                text[name] = ((el.get("message") or "") + "\n" + (el.text or ""))[-1500:]
            elif "skipped" in kinds:
                outcomes[name] = "skip"
            else:
                outcomes[name] = "pass"
    return {"outcomes": outcomes, "seconds": round(secs, 1), "exit": r.returncode,
            "stderr": (r.stdout + r.stderr)[-2000:] if not outcomes else "", "text": text}


# --- comparison -----------------------------------------------------------------------------------------

def compare(suite: str, direct: dict, proxy: dict, known: dict) -> dict:
    entries = [e for e in known.get("differences", []) if e["suite"] == suite]

    def listed_for(t: str):
        """The entry naming t, or its top-level test with "subtests": true."""
        return next((e for e in entries if e["test"] == t or
                     (e.get("subtests") and t.startswith(e["test"] + "/"))), None)

    names = sorted(set(direct["outcomes"]) | set(proxy["outcomes"]))
    diffs, both_fail = [], []
    for t in names:
        a, b = direct["outcomes"].get(t, "missing"), proxy["outcomes"].get(t, "missing")
        if a != b:
            k = listed_for(t)
            after = [h for h in direct.get("hung", []) + proxy.get("hung", [])
                     if "missing" in (a, b) and h.split("/")[0] == t.split("/")[0]]
            if after and not k:                    # not run: its top-level test hung in the other run
                k = {"status": "not run", "reason": f"a sibling hung ({after[0]}), so the rerun skipped it"}
            diffs.append({"test": t, "direct": a, "proxy": b, "known": bool(k),
                          "status": k.get("status") if k else None, "reason": k.get("reason") if k else None,
                          "direct_text": direct["text"].get(t, ""), "proxy_text": proxy["text"].get(t, "")})
        elif a in ("fail", "incomplete"):
            both_fail.append({"test": t, "text": direct["text"].get(t, "")[-600:]})
    seen = {d["test"] for d in diffs}
    count = lambda r, o: sum(1 for v in r["outcomes"].values() if v == o)  # noqa: E731
    return {"suite": suite, "tests": len(names),
            "direct": {o: count(direct, o) for o in ("pass", "fail", "skip", "incomplete")},
            "proxy": {o: count(proxy, o) for o in ("pass", "fail", "skip", "incomplete")},
            "seconds": {"direct": direct["seconds"], "proxy": proxy["seconds"]},
            "differences": diffs, "fail_both": both_fail,
            "unknown": [d["test"] for d in diffs if not d["known"]],
            "known_not_seen": sorted(e["test"] for e in entries
                                     if not any(listed_for(t) is e for t in seen))}


def print_suite(c: dict) -> None:
    d, p = c["direct"], c["proxy"]
    print(f"\n== {c['suite']}: {c['tests']} tests ==")
    print(f"{'':12}{'pass':>7}{'fail':>7}{'skip':>7}{'incompl':>9}{'seconds':>9}")
    for label, r in (("direct", d), ("via proxy", p)):
        print(f"{label:12}{r['pass']:>7}{r['fail']:>7}{r['skip']:>7}{r['incomplete']:>9}"
              f"{c['seconds']['direct' if label == 'direct' else 'proxy']:>9}")
    if c["fail_both"]:
        print(f"failing both ways (not a difference): {', '.join(x['test'] for x in c['fail_both'])}")
    if not c["differences"]:
        print("no differences")
    for x in c["differences"]:
        tag = f"known ({x['status']})" if x["known"] else "NOT IN conformance/known_differences.json"
        print(f"\n  DIFF {x['test']}: direct {x['direct']}, via proxy {x['proxy']}  [{tag}]")
        for label in ("direct", "proxy"):
            txt = x[f"{label}_text"].strip()
            if txt:
                lines = [ln for ln in txt.splitlines() if ln.strip()][-8:]
                print(f"    {label}:\n      " + "\n      ".join(lines))
        if x["reason"]:
            print(f"    reason: {x['reason']}")
    for t in c["known_not_seen"]:
        print(f"  (listed difference {t} did not occur this run)")


# --- workload -------------------------------------------------------------------------------------------

def bankpool_binary() -> Path:
    src = ROOT / "tests" / "clients" / "go"
    files = [src / "go.mod", src / "go.sum", src / "bankpool" / "main.go"]
    h = hashlib.sha256(b"".join(f.name.encode() + f.read_bytes() for f in files)).hexdigest()[:16]
    d = CACHE / f"bankpool-{go_version()}-{h}"
    if (d / ".complete").exists():
        return d / "bankpool"
    say("building tests/clients/go/bankpool")
    shutil.rmtree(d, ignore_errors=True)
    (d / "src" / "bankpool").mkdir(parents=True)
    for f in files[:2]:
        shutil.copy(f, d / "src")
    shutil.copy(files[2], d / "src" / "bankpool")
    run([GO, "build", "-trimpath", "-o", d / "bankpool", "./bankpool"], cwd=d / "src", timeout=600,
        env={**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod -buildvcs=false", "CGO_ENABLED": "0"})
    shutil.rmtree(d / "src")
    (d / ".complete").touch()
    return d / "bankpool"


def bank_state(server) -> tuple:
    rows = server.sql("SELECT (SELECT SUM(balance) FROM bank.accounts), (SELECT COUNT(*) FROM bank.transfers)")
    return int(rows[0][0]), int(rows[0][1])


def run_workload(build: Path, work: Path, business, dr, switches: int) -> dict:
    binary = bankpool_binary()
    for s in (business, dr):
        s.sql("DROP DATABASE IF EXISTS bank")
    business.sql("CREATE DATABASE bank; USE bank; "
                 "CREATE TABLE bank.accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL); "
                 "CREATE TABLE bank.transfers (worker INT, seq BIGINT, src INT, dst INT, amount INT, "
                 "at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6), PRIMARY KEY (worker, seq)); "
                 "INSERT INTO bank.accounts SELECT seq, " + str(START_BALANCE) + " FROM seq_1_to_" + str(ACCOUNTS))
    total = ACCOUNTS * START_BALANCE
    sy = Switchyard(build, work / "sy-workload", business, dr, "bank.*", None).start()
    rep: dict = {"switches": [], "checks": [], "problems": []}
    wl = None
    try:
        sy.wait_instance("forward", "running")
        deadline = time.monotonic() + 60
        while not (dr.sql("SHOW TABLES FROM bank LIKE 'transfers'") if dr.sql("SHOW DATABASES LIKE 'bank'")
                   else []) or bank_state(dr) != (total, 0):
            if time.monotonic() > deadline:
                raise ConformanceError("the initial copy of bank.* did not reach DR in 60 s")
            time.sleep(0.2)
        sy.admin_ok("create-reverse", pair=PAIR)
        sy.wait_instance("reverse", "collecting")
        dsn = f"{APP_USER}:{APP_PASSWORD}@tcp({HOST}:{sy.port})/bank?timeout=10s"
        wl = spawn([binary, "-dsn", dsn, "-pool", "8", "-workers", "6", "-accounts", str(ACCOUNTS)],
                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(work / "bankpool.err", "w"),
                   text=True)
        ready = json.loads(wl.stdout.readline() or "{}")
        if not ready.get("ready"):
            raise ConformanceError(f"bankpool did not start: {ready} {tail(work / 'bankpool.err')}")
        rep["ready"] = {k: ready.get(k) for k in ("conns", "connects")}

        def check(label: str) -> dict:
            wl.stdin.write("check\n" if label != "final" else "stop\n")
            wl.stdin.flush()
            r = json.loads(wl.stdout.readline() or "{}")
            active = dr if sy.pair()["active_side"] == "dr" else business
            r["active_sum"], r["active_transfers"] = bank_state(active)
            bad = list(r.get("problems") or [])
            if r.get("errors"):
                bad.append(f"{r['errors']} client error(s): {r.get('error_samples')}")
            if r.get("connects") != 8:
                bad.append(f"{r.get('connects')} connects for a pool of 8 (a connection was replaced)")
            if r["active_sum"] != total:
                bad.append(f"sum of balances on the active side {r['active_sum']} != {total}")
            if r["active_transfers"] < r.get("transfers", 0) or (label == "final" and
                                                                 r["active_transfers"] != r["transfers"]):
                bad.append(f"{r['transfers']} acknowledged transfers, {r['active_transfers']} on the active side")
            r["label"], r["ok_all"] = label, not bad
            for b in bad:
                rep["problems"].append(f"after {label}: {b}")
            rep["checks"].append(r)
            iv = r.get("interval", {})
            say(f"check {label:>14}: {'ok' if not bad else 'FAILED'}  transfers {r.get('transfers')} "
                f"(+{iv.get('transfers')}), retries 1213 switch {r.get('retries_switchover')} / deadlock "
                f"{r.get('retries_deadlock')}, errors {r.get('errors')}, worst transfer "
                f"{iv.get('max_latency_ms')} ms, sum {r['active_sum']}, {len(r.get('conns') or [])} conns "
                f"checked" + ("" if not bad else f"\n    " + "\n    ".join(bad)))
            return r

        time.sleep(3)
        check("warm-up")
        for i in range(1, switches + 1):
            cmd = "switchover" if sy.pair()["active_side"] == "business" else "switchback"
            t0 = time.monotonic()
            r = sy.admin(cmd, timeout=90, pair=PAIR)
            sw = {"n": i, "cmd": cmd, "ok": r.get("ok"), "call_ms": round((time.monotonic() - t0) * 1000)}
            if r.get("ok"):
                res = r["result"]
                sw.update({k: res.get(k) for k in ("pause_ms", "moved_clients", "aborted_transactions",
                                                   "active_side", "epoch", "steps")})
            else:
                sw["error"] = r.get("error")
                rep["problems"].append(f"{cmd} #{i} failed: {r.get('error')}")
            rep["switches"].append(sw)
            say(f"{cmd} #{i}: {'ok' if sw['ok'] else 'FAILED ' + json.dumps(sw.get('error'))} pause "
                f"{sw.get('pause_ms')} ms, moved {sw.get('moved_clients')}, aborted "
                f"{sw.get('aborted_transactions')}")
            time.sleep(1.5)
            check(f"{cmd} #{i}")
        final = check("final")
        wl.wait(30)
        # both sides converge
        passive = business if sy.pair()["active_side"] == "dr" else dr
        deadline = time.monotonic() + 60
        while bank_state(passive) != (total, final["transfers"]):
            if time.monotonic() > deadline:
                rep["problems"].append(f"passive side did not converge: {bank_state(passive)}")
                break
            time.sleep(0.2)
        sums = [s.sql("CHECKSUM TABLE bank.accounts, bank.transfers") for s in (business, dr)]
        rep["checksums_equal"] = sums[0] == sums[1]
        if not rep["checksums_equal"]:
            rep["problems"].append(f"CHECKSUM TABLE differs: {sums}")
        rep["totals"] = {k: final.get(k) for k in ("transfers", "retries_switchover", "retries_deadlock",
                                                   "errors", "connects", "max_latency_ms")}
        pauses = sorted(s["pause_ms"] for s in rep["switches"] if s.get("pause_ms") is not None)
        rep["switches_ok"] = sum(1 for s in rep["switches"] if s["ok"])
        rep["pause_ms"] = {"min": pauses[0], "median": pauses[len(pauses) // 2], "max": pauses[-1]} if pauses else {}
        rep["aborted_transactions"] = sum(s.get("aborted_transactions") or 0 for s in rep["switches"])
        rep["checks_ok"] = sum(1 for c in rep["checks"] if c["ok_all"])
    finally:
        if wl is not None and wl.poll() is None:
            stop(wl, timeout=5)
        rc = sy.stop()
        if rc != 0:
            rep["problems"].append(f"switchyardd (workload) exit {rc} on SIGTERM")
    return rep


# --- main -----------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--only", action="append", choices=("go", "mysqlclient", "workload"))
    ap.add_argument("--switches", type=int, default=10)
    ap.add_argument("--go-run", metavar="REGEX",
                    help="only the go tests matching REGEX (go test -run); listed differences of tests not run "
                         "are reported as not seen")
    ap.add_argument("--results-dir", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, raw suite output)")
    a = ap.parse_args()
    parts = a.only or ["go", "mysqlclient", "workload"]
    build = Path(a.build).resolve()
    interrupt_on_term_signals()
    raise_nofile()
    known = json.loads(KNOWN.read_text())
    CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="sy-conf-", dir="/tmp"))
    started = time.monotonic()
    report: dict = {"started": datetime.now().astimezone().isoformat(timespec="seconds"), "suites": [],
                    "excluded": known.get("excluded", []), "problems": []}
    servers = []
    rc = 0
    try:
        # prepare the clients first (slow only the first time on a machine)
        go_bin = go_suite_binary() if "go" in parts else None
        mc_env = mysqlclient_env() if "mysqlclient" in parts else None
        if "workload" in parts:
            bankpool_binary()
        tls = make_cert(work)
        servers = sandbox.start_servers(2, extra_args=[f"--ssl-cert={tls[0]}", f"--ssl-key={tls[1]}",
                                                       f"--max-connections={MAX_CONNECTIONS}",
                                                       f"--back-log={MAX_CONNECTIONS + 500}"])
        business, dr = servers
        setup_accounts(servers)
        report["server_version"] = business.sql("SELECT VERSION()")[0][0]
        say(f"business {HOST}:{business.port}, dr {HOST}:{dr.port} ({report['server_version']})")
        if go_bin or mc_env:
            sy = Switchyard(build, work / "sy-suites", business, dr, None, tls).start()
            say(f"switchyardd (no synchronization, TLS to clients) on {HOST}:{sy.port}")
            try:
                for suite in ("go", "mysqlclient"):
                    if suite not in parts:
                        continue
                    res = {}
                    for label, port in (("direct", business.port), ("proxy", sy.port)):
                        for s in servers:
                            fresh_db(s, "gotest" if suite == "go" else "mysqldb_test")
                        say(f"{suite} suite {label} ({HOST}:{port}) ...")
                        res[label] = (run_go(go_bin, f"{HOST}:{port}", label, work, known, a.go_run) if suite == "go"
                                      else run_mysqlclient(mc_env, port, label, work))
                        if not res[label]["outcomes"]:
                            raise ConformanceError(f"{suite} {label}: no test outcomes:\n{res[label]['stderr']}")
                        sy.alive()
                    c = compare(suite, res["direct"], res["proxy"], known)
                    report["suites"].append(c)
                    print_suite(c)
                    if c["unknown"]:
                        rc = 1
            finally:
                src = sy.stop()
                if src != 0:
                    report["problems"].append(f"switchyardd (suites) exit {src} on SIGTERM")
        if "workload" in parts:
            say(f"workload: bankpool through {a.switches} switches")
            w = run_workload(build, work, business, dr, a.switches)
            report["workload"] = w
            t = w.get("totals", {})
            print(f"\n== workload (database/sql pool of 8, 6 goroutines, {a.switches} switches) ==\n"
                  f"switches ok {w.get('switches_ok')}/{a.switches}, pause ms {w.get('pause_ms')}, aborted "
                  f"transactions {w.get('aborted_transactions')}\n"
                  f"transfers {t.get('transfers')}, retried 1213 (switchover) {t.get('retries_switchover')}, "
                  f"retried deadlocks {t.get('retries_deadlock')}, errors {t.get('errors')}, connects "
                  f"{t.get('connects')}, worst transfer {t.get('max_latency_ms')} ms\n"
                  f"checks ok {w.get('checks_ok')}/{len(w['checks'])}, checksums equal {w.get('checksums_equal')}")
            report["problems"] += w["problems"]
        if report["problems"]:
            rc = 1
    except KeyboardInterrupt:
        report["problems"].append("interrupted")
        rc = 130
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        report["problems"].append(f"fatal: {e!r}")
        rc = 1
    finally:
        stop_all_children()
        for s in servers:
            with contextlib.suppress(Exception):
                s.stop()
        report["seconds"] = round(time.monotonic() - started)
        report["finished"] = datetime.now().astimezone().isoformat(timespec="seconds")
        with contextlib.suppress(OSError):
            out = Path(a.results_dir)
            out.mkdir(parents=True, exist_ok=True)
            f = out / f"conformance-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
            f.write_text(json.dumps(report, indent=2, default=str) + "\n")
            print(f"\nreport: {f}")
        if a.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    unknown = [(c["suite"], t) for c in report["suites"] for t in c["unknown"]]
    print(f"\nconformance: {round(time.monotonic() - started)} s; "
          + ("; ".join(f"{c['suite']} {c['direct']['pass']}/{c['tests']} passed direct, {c['proxy']['pass']} "
                       f"via proxy, {len(c['differences'])} difference(s)" for c in report["suites"]) or "no suites"))
    for s, t in unknown:
        print(f"conformance: unlisted difference {s} {t}", file=sys.stderr)
    for p in report["problems"]:
        print(f"conformance: problem: {p}", file=sys.stderr)
    return rc or (1 if unknown else 0)


if __name__ == "__main__":
    sys.exit(main())
