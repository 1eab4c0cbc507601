"""The sandbox servers every integration test stands on: settings, accounts, and clean stops."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pymysql
import pytest

import sandbox  # scripts/ is put on sys.path by conftest.py

SANDBOX_PY = Path(sandbox.__file__).resolve()


def wait_until(pred, timeout=15.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def one(server, query):
    rows = server.sql(query)
    assert len(rows) == 1, rows
    return rows[0]


def test_binlog_and_server_settings(mariadb_pair):
    for s in mariadb_pair:
        row = one(s, "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata, "
                     "@@max_connections, @@max_allowed_packet, @@innodb_flush_log_at_trx_commit, "
                     "@@sync_binlog, @@performance_schema, @@bind_address, @@port, @@skip_name_resolve")
        assert row == ["1", "ROW", "FULL", "FULL", "3000", str(64 << 20), "2", "0", "0", "127.0.0.1",
                       str(s.port), "0"]


def test_distinct_server_and_domain_ids(mariadb_pair):
    b, d = mariadb_pair
    got = [one(s, "SELECT @@server_id, @@gtid_domain_id") for s in (b, d)]
    assert got == [["10", "1"], ["11", "2"]]
    assert (b.server_id, b.domain_id, d.server_id, d.domain_id) == (10, 1, 11, 2)
    assert b.port != d.port and b.socket != d.socket


def test_short_socket_path(mariadb_pair):
    for s in mariadb_pair:
        assert len(s.socket.encode()) < 107
        assert s.socket.startswith("/tmp/sy-")


def test_no_anonymous_users(mariadb_pair):
    for s in mariadb_pair:
        assert s.sql("SELECT user, host FROM mysql.user WHERE user = ''") == []


def test_admin_login_over_tcp(mariadb_pair, connect):
    for s in mariadb_pair:
        c = connect(s)
        with c.cursor() as cur:
            cur.execute("SELECT CURRENT_USER(), @@server_id")
            # name resolution stays on: a client on 127.0.0.1 is 'localhost' to the server (FINDINGS.md)
            assert cur.fetchone() == ("switchyard@localhost", s.server_id)
            cur.execute("SHOW GRANTS")
            grants = " ".join(r[0] for r in cur.fetchall())
            assert "GRANT ALL PRIVILEGES ON *.*" in grants and "WITH GRANT OPTION" in grants
        with pytest.raises(pymysql.err.OperationalError) as ei:
            connect(s, password="wrong")
        assert ei.value.args[0] == 1045


def test_admin_accounts_exist_for_any_host(mariadb_pair):
    for s in mariadb_pair:
        rows = s.sql("SELECT host FROM mysql.user WHERE user = 'switchyard' ORDER BY host")
        assert rows == [["%"], ["localhost"]]


def test_sql_helper_rows_nulls_and_errors(mariadb_pair):
    s = mariadb_pair.business
    assert s.sql("SELECT 1, NULL, 'a\\tb\\nc\\\\d', ''; SELECT 2") == [["1", None, "a\tb\nc\\d", ""], ["2"]]
    assert s.sql("DO 1") == []
    with pytest.raises(sandbox.SandboxError, match="1054"):
        s.sql("SELECT no_such_column")


def test_stop_leaves_no_process_and_no_dir():
    [s] = sandbox.start_servers(1, first_index=7)
    pid, d = s.pid, s.dir
    assert sandbox.pid_alive(pid) and os.path.isdir(d)
    assert s.server_id == 17 and s.domain_id == 8
    s.stop()
    assert not sandbox.pid_alive(pid)
    assert not os.path.exists(d)
    s.stop()                                            # twice is fine
    assert pid not in sandbox.leftover_pids()


def test_context_manager_stops_servers_on_exception():
    seen = []
    with pytest.raises(RuntimeError, match="boom"):
        with sandbox.servers(2, first_index=5) as started:
            seen = [(s.pid, s.dir) for s in started]
            assert all(sandbox.pid_alive(pid) for pid, _ in seen)
            raise RuntimeError("boom")
    assert len(seen) == 2
    for pid, d in seen:
        assert not sandbox.pid_alive(pid)
        assert not os.path.exists(d)


def test_kill9_then_start_keeps_port_and_committed_rows():
    with sandbox.MariaDB(index=4) as s:
        s.sql("CREATE DATABASE t; CREATE TABLE t.x (id INT PRIMARY KEY) ENGINE=InnoDB; INSERT INTO t.x VALUES (1)")
        port, old_pid = s.port, s.pid
        s.kill9()
        assert not sandbox.pid_alive(old_pid)
        s.start()
        assert s.port == port and s.pid != old_pid
        assert s.sql("SELECT id FROM t.x") == [["1"]]   # a killed process loses nothing (flush_log=2)
        s.restart()                                     # clean restart: same port, accounts kept
        assert s.port == port
        c = s.connect()
        try:
            with c.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM t.x")
                assert cur.fetchone() == (1,)
        finally:
            c.close()


def test_port_in_use_is_retried(monkeypatch):
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = blocker.getsockname()[1]
    real_free_port = sandbox.free_port
    calls = []

    def fake_free_port(host="127.0.0.1"):
        calls.append(host)
        return taken if len(calls) == 1 else real_free_port(host)

    monkeypatch.setattr(sandbox, "free_port", fake_free_port)
    try:
        with sandbox.MariaDB(index=6) as s:
            assert len(calls) == 2 and s.port != taken
            assert one(s, "SELECT @@port") == [str(s.port)]
            with open(s.error_log) as f:
                assert "Address already in use" in f.read()
    finally:
        blocker.close()


def run_cli(*args, timeout=60):
    # capture_output would hang here if the servers kept the CLI's stdout open: they must not.
    return subprocess.run(["/usr/bin/python3", str(SANDBOX_PY), *args], capture_output=True, text=True,
                          timeout=timeout)


def test_cli_servers_outlive_the_cli_and_stop_twice(tmp_path):
    state = tmp_path / "state.json"
    r = run_cli("start", "2", "--state", str(state), "--first-index", "2")
    assert r.returncode == 0, r.stderr
    servers = json.loads(state.read_text())["servers"]
    try:
        assert [(x["server_id"], x["domain_id"]) for x in servers] == [(12, 3), (13, 4)]
        for x in servers:
            assert sandbox.pid_alive(x["pid"], f"--datadir={x['datadir']}")
            c = pymysql.connect(host=x["host"], port=x["port"], user=x["admin_user"], password=x["admin_password"],
                                connect_timeout=10)
            c.close()
        assert run_cli("status", "--state", str(state)).returncode == 0
        r = run_cli("start", "1", "--state", str(state))
        assert r.returncode == 1 and "already" in r.stderr        # refuses to orphan running servers
    finally:
        r = run_cli("stop", "--state", str(state))
    assert r.returncode == 0, r.stderr
    for x in servers:
        wait_until(lambda: not sandbox.pid_alive(x["pid"]), what=f"pid {x['pid']} to exit")
        assert not os.path.exists(x["dir"])
    assert not state.exists()
    r = run_cli("stop", "--state", str(state))
    assert r.returncode == 0, r.stderr


OWNER = """
import json, sys, time
sys.path.insert(0, {scripts!r})
import sandbox
[s] = sandbox.start_servers(1, first_index=9)
print(json.dumps({{"pid": s.pid, "dir": s.dir}}), flush=True)
time.sleep(120)
"""


def start_owner():
    p = subprocess.Popen(["/usr/bin/python3", "-c", OWNER.format(scripts=str(SANDBOX_PY.parent))],
                         stdout=subprocess.PIPE, text=True, start_new_session=True)
    line = p.stdout.readline()
    assert line, "owner process printed nothing"
    return p, json.loads(line)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_servers_die_with_their_owner(sig):
    """An interrupted pytest must not leave servers: SIGTERM runs the cleanup, SIGKILL the parent-death signal."""
    p, info = start_owner()
    try:
        assert sandbox.pid_alive(info["pid"])
        p.send_signal(sig)
        assert p.wait(15) == -sig
        wait_until(lambda: not sandbox.pid_alive(info["pid"]), what="mariadbd to die with its owner")
        if sig == signal.SIGTERM:
            assert not os.path.exists(info["dir"])       # the clean path also removes the dir
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if sandbox.pid_alive(info["pid"]):
            os.killpg(info["pid"], signal.SIGKILL)
        shutil.rmtree(info["dir"], ignore_errors=True)


def test_sweep_removes_only_dead_old_dirs(tmp_path):
    dead = tmp_path / "sy-dead"
    (dead / "data").mkdir(parents=True)
    (dead / "mysqld.pid").write_text("999999\n")
    live = tmp_path / "sy-live"
    (live / "data").mkdir(parents=True)
    recent = tmp_path / "sy-recent"
    (recent / "data").mkdir(parents=True)
    other = tmp_path / "not-ours"
    (other / "data").mkdir(parents=True)
    # a process whose command line carries live's --datadir stands in for its running server
    holder = subprocess.Popen(["/usr/bin/python3", "-c", "import time; time.sleep(60)", f"--datadir={live / 'data'}"])
    try:
        (live / "mysqld.pid").write_text(f"{holder.pid}\n")
        old = time.time() - 3600
        for p in (dead / "mysqld.pid", dead / "data", dead, live / "mysqld.pid", live / "data", live,
                  other / "data", other):
            os.utime(p, (old, old))
        assert sandbox.sweep(600, root=str(tmp_path)) == [str(dead)]
        assert live.exists() and recent.exists() and other.exists()
    finally:
        holder.kill()
        holder.wait()
