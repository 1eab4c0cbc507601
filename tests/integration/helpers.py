"""Helpers the integration tests share: polling, SQL on a sandbox server as the admin account or through the
proxy as an application account, and the state of a pair's instances in `status`. Fixtures stay in conftest.py
and the test modules that own them."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time

import pymysql

from conftest import ADMIN_PASSWORD, ADMIN_USER

APP_USER, APP_PASSWORD = "sw_app", "app-Secret-1"   # an application account: no SUPER, no READ ONLY ADMIN


# ---- polling ----------------------------------------------------------------------------------------------

def wait_for(cond, timeout=30.0, what="condition", interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")



# ---- SQL on a sandbox server (admin account) ------------------------------------------------------------

def conn(server, db=None, **kw):
    return pymysql.connect(host="127.0.0.1", port=server.port, user=ADMIN_USER, password=ADMIN_PASSWORD,
                           database=db, autocommit=True, charset="utf8mb4", **kw)


def q(server, sql, db=None, args=None):
    c = conn(server, db)
    try:
        with c.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()
    finally:
        c.close()


def table_rows(server, db, table):
    c = conn(server, db)
    try:
        with c.cursor() as cur:
            cur.execute(f"SELECT * FROM `{table}` ORDER BY 1")
            return cur.fetchall()
    finally:
        c.close()


def tables_of(server, db):
    return [r[0] for r in q(server, f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='{db}' "
                                    "ORDER BY 1")]


@contextlib.contextmanager
def locked(server, db, sql):
    """Holds the locks of `sql` (a SELECT ... FOR UPDATE) in a transaction on server while the block runs:
    the writer waits on them."""
    c = conn(server, db)
    c.begin()
    try:
        with c.cursor() as cur:
            cur.execute(sql)
        yield
    finally:
        c.rollback()
        c.close()


def assert_equal_eventually(pair, db, timeout=60):
    """Every table of db has the same rows on both sides (polled with a deadline)."""
    def same():
        tb, td = tables_of(pair.business, db), tables_of(pair.dr, db)
        if tb != td:
            return False
        return all(table_rows(pair.business, db, t) == table_rows(pair.dr, db, t) for t in tb)
    wait_for(same, timeout, f"{db} equal on both sides")



# ---- SQL through the proxy (application account) ---------------------------------------------------------

def app_user(pair, db):
    """An application account (no SUPER, no READ ONLY ADMIN) on both sides, as applications have."""
    for s in pair:
        s.sql(f"CREATE USER IF NOT EXISTS '{APP_USER}'@'%' IDENTIFIED BY '{APP_PASSWORD}'")
        s.sql(f"GRANT ALL PRIVILEGES ON `{db}`.* TO '{APP_USER}'@'%'")


def app_conn(d, db=None, **kw):
    return pymysql.connect(host="127.0.0.1", port=d.port, user=APP_USER, password=APP_PASSWORD, database=db,
                           autocommit=True, charset="utf8mb4", **kw)


def one(c, sql, args=None):
    with c.cursor() as cur:
        cur.execute(sql, args)
        return cur.fetchall()



# ---- instances in status ----------------------------------------------------------------------------------

def instance(d, pair_name):
    """The pair's first instance; in a cluster, {"state": "not_open"} until this node owns the sync."""
    found = d.pair_status(pair_name)["instances"]
    return found[0] if found else {"state": "not_open"}


def wait_state(d, pair_name, state, timeout=60):
    return wait_for(lambda: instance(d, pair_name)["state"] == state and instance(d, pair_name), timeout,
                    f"{pair_name}/forward {state}")


def forward(d, pname):
    return next(i for i in d.pair_status(pname)["instances"] if i["direction"] == "forward")


def reverse(d, pname):
    insts = d.pair_status(pname)["instances"]
    return next((i for i in insts if i["direction"] == "reverse"), None)


def wait_reverse(d, pname, state, timeout=60):
    return wait_for(lambda: (reverse(d, pname) or {}).get("state") == state and reverse(d, pname), timeout,
                    f"{pname}/reverse {state}")


def installed_client(name):
    """The launcher of a test client that scripts/install-test-clients.sh builds and caches outside the repo
    (`--only NAME --print-paths`: its NAME=path line), built on first use."""
    import subprocess
    from conftest import ROOT
    install = ROOT / "scripts" / "install-test-clients.sh"
    r = subprocess.run([str(install), "--only", name, "--print-paths"], capture_output=True, text=True, timeout=600,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"{install} --only {name} failed:\n{r.stderr[-4000:]}"
    paths = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    assert paths.get(name), r.stdout
    return paths[name]


def assert_a_stop_cuts_a_verify(d, pname, dr_pid: int) -> None:
    """With DR's server stopped (SIGSTOP: the kernel accepts connections, nothing answers), a `verify`
    blocks on DR; a SIGTERM then ends the daemon within seconds, exit 0: the stop shut the verify's
    connections down (core/daemon.c verify_sockets), the log says so and why the verify failed, and the
    command got that failure or no answer (the admin socket closed at the stop)."""
    replies = []

    def call():
        try:
            replies.append(d.admin("verify", _timeout=180, pair=pname))
        except OSError as e:                             # the stop closed the admin socket (ConnectionError)
            replies.append(e)

    os.kill(dr_pid, signal.SIGSTOP)
    try:
        th = threading.Thread(target=call, daemon=True)
        th.start()
        wait_for(lambda: "verify started" in d.log(), 30, "the verify started")
        time.sleep(1.5)                                  # it connects to DR and waits for its answer
        assert th.is_alive()                             # still blocked: DR answers nothing
        t0 = time.monotonic()
        assert d.stop(timeout=60) == 0
        took = time.monotonic() - t0
    finally:
        os.kill(dr_pid, signal.SIGCONT)
    assert took < 15, took
    log = d.log()
    cut = re.search(r"a verify was running: (\d+) database connection\(s\) shut down", log)
    assert cut and int(cut.group(1)) >= 1, log[-3000:]
    assert re.search(rf"pair {pname}: verify failed after \d+ ms: cut by switchyardd's shutdown \(dr: ", log), \
        log[-3000:]
    th.join(10)
    assert len(replies) == 1 and (isinstance(replies[0], OSError) or (
        replies[0]["ok"] is False and "shutdown" in replies[0]["error"]["message"])), replies
