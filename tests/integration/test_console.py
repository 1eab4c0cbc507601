"""The web console (`console`, `console_token_file`, `console_max_connections`) over HTTP: reading a loopback console
needs nothing, an action needs the token in `Authorization: Bearer`, a wrong or missing token is 403 and changes
nothing, and the answers are the admin socket's own (the console runs the same commands). A console bound beyond
loopback needs the token for reads too and does not start without console_token_file; connections beyond
console_max_connections are answered 503."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from test_forward_mariadb import fresh  # noqa: F401 (fixture)
from helpers import app_conn, app_user, one, wait_for, wait_reverse, wait_state

TOKEN = "s3cret-console-token-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, path, body=None, token=None, method=None, host=None):
    """(status, parsed JSON or text) of one request to the console."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    if host is not None:
        req.add_header("Host", host)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            code, ctype, raw = r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as e:
        code, ctype, raw = e.code, e.headers["Content-Type"], e.read()
    return code, (json.loads(raw) if ctype and ctype.startswith("application/json") else raw.decode())


def token_file(tmp_path, mode=0o600, text=TOKEN + "\n"):
    p = tmp_path / "console.token"
    p.write_text(text)
    os.chmod(p, mode)
    return str(p)


def console_daemon(daemon, tmp_path, fresh, token=True, extra=None, **kw):  # noqa: F811
    port = free_port()
    opts = {"console": f"127.0.0.1:{port}", **(extra or {})}
    if token:
        opts["console_token_file"] = token_file(tmp_path)
    pname = f"c{fresh}"
    return daemon(pair=pname, objects=f"{fresh}.*", global_opts=opts, **kw), pname, port


def test_console_reads_freely_and_acts_only_with_the_token(daemon, mariadb_pair, fresh, tmp_path):  # noqa: F811
    mariadb_pair.business.sql("CREATE TABLE t (id INT PRIMARY KEY)", database=fresh)
    d, pname, port = console_daemon(daemon, tmp_path, fresh)
    wait_state(d, pname, "running")

    code, page = request(port, "/")
    assert code == 200 and "Data Synchronization Tasks" in page and "<script>" in page
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page  # no external asset

    # Reading: the admin socket's own answer, no token needed.
    code, doc = request(port, "/api/status")
    assert code == 200 and doc["ok"] is True
    assert [p["name"] for p in doc["result"]["pairs"]] == [p["name"] for p in d.status()["pairs"]]
    assert doc["result"]["pairs"][0]["instances"][0]["state"] == "running"
    code, doc = request(port, f"/api/clients?pair={pname}")
    assert code == 200 and doc["result"]["pair"] == pname and doc["result"]["clients"] == []
    code, doc = request(port, "/api/status?pair=nosuch")
    assert code == 404 and doc["error"]["code"] == "unknown_pair"
    # a name from the URL cannot forge a log line
    code, doc = request(port, "/api/status?pair=x%0a2026-01-01T00:00:00.000Z%20ERROR%20forged")
    assert code == 404
    assert not any(ln.startswith("2026-01-01T00:00:00.000Z ERROR forged") for ln in d.log().splitlines())
    assert "x?2026-01-01T00:00:00.000Z ERROR forged" in d.log()
    # the write's lag over the last hour (the chart): a first sample at start, one every interval_s after
    code, doc = request(port, f"/api/lag-history?instance={pname}/forward")
    assert code == 200 and doc["result"]["instance"] == f"{pname}/forward" and doc["result"]["interval_s"] == 10
    samples = doc["result"]["samples"]
    assert samples and all(len(s) == 2 and s[0] > 1.7e12 and (s[1] is None or s[1] >= 0) for s in samples), samples
    assert d.ctl("lag-history", f"{pname}/forward").returncode == 0
    code, doc = request(port, f"/api/lag-history?instance={pname}/reverse")
    assert code == 404 and doc["error"]["code"] == "unknown_instance"
    code, doc = request(port, "/api/create-reverse")                      # an action is never a GET
    assert code == 405
    # DNS rebinding: a loopback console answers only requests addressed to a loopback name.
    assert request(port, "/api/status", host=f"localhost:{port}")[0] == 200
    code, doc = request(port, "/api/status", host=f"attacker.example:{port}")
    assert code == 421 and doc["error"]["code"] == "bad_host"
    assert request(port, "/", host="attacker.example")[0] == 421

    # Actions without the token, or with a wrong one: 403, and nothing was done.
    for tok in (None, "wrong", TOKEN + "x", TOKEN[:-1], ""):
        code, doc = request(port, "/api/create-reverse", {"pair": pname}, token=tok)
        assert code == 403 and doc["error"]["code"] == "forbidden", tok
    code, doc = request(port, "/api/switchover", {"pair": pname}, token="wrong")
    assert code == 403
    code, doc = request(port, "/api/terminate", {"instance": f"{pname}/forward"}, token="wrong")
    assert code == 403                                                  # not even "unknown" without the token
    st = d.pair_status(pname)
    assert [i["direction"] for i in st["instances"]] == ["forward"]
    assert st["active_side"] == "business" and st["epoch"] == 1
    assert "console: create-reverse from 127.0.0.1" in d.log() and "refused: missing or wrong token" in d.log()
    assert TOKEN not in d.log()

    # With the token: the same commands as the admin socket, with their answers and refusals.
    code, doc = request(port, "/api/terminate", {"instance": f"{pname}/forward"}, token=TOKEN)
    assert code == 404 and doc["error"]["code"] == "unknown_command"    # not offered on the console
    code, doc = request(port, "/api/create-reverse", {"pair": pname}, token=TOKEN)
    assert code == 200 and doc["ok"] is True and doc["result"]["instance"] == f"{pname}/reverse"
    wait_reverse(d, pname, "collecting")
    code, doc = request(port, "/api/create-reverse", {"pair": pname}, token=TOKEN)
    assert code == 409 and doc["error"]["code"] == "reverse_exists"
    code, doc = request(port, "/api/switchover", "not an object", token=TOKEN)
    assert code == 400 and doc["error"]["code"] == "bad_request"
    code, doc = request(port, "/api/switchover", {"pair": pname}, token=TOKEN)
    assert code == 200, doc
    assert doc["result"]["active_side"] == "dr" and doc["result"]["epoch"] == 2 and "pause_ms" in doc["result"]
    assert d.pair_status(pname)["active_side"] == "dr"
    code, doc = request(port, "/api/status")
    assert doc["result"]["pairs"][0]["last_switch"]["operation"] == "switchover"


def test_console_token_file_readable_by_others_is_refused_at_start(daemon, tmp_path):
    port = free_port()
    d = daemon(business="127.0.0.1:1", dr="127.0.0.1:2", wait=False,
               global_opts={"console": f"127.0.0.1:{port}",
                            "console_token_file": token_file(tmp_path, mode=0o644)})
    assert d.wait() != 0
    assert "must be 0600" in d.log() and "mode 0644" in d.log()


def test_console_token_file_must_not_be_empty_short_or_missing(daemon, tmp_path):
    port = free_port()
    d = daemon(business="127.0.0.1:1", dr="127.0.0.1:2", wait=False,
               global_opts={"console": f"127.0.0.1:{port}", "console_token_file": token_file(tmp_path, text="\n")})
    assert d.wait() != 0 and "empty" in d.log()
    d = daemon(business="127.0.0.1:1", dr="127.0.0.1:2", wait=False,
               global_opts={"console": f"127.0.0.1:{port}", "console_token_file": token_file(tmp_path, text="short\n")})
    assert d.wait() != 0 and "the token is 5 bytes; it needs at least 16" in d.log()
    d = daemon(business="127.0.0.1:1", dr="127.0.0.1:2", wait=False,
               global_opts={"console": f"127.0.0.1:{port}", "console_token_file": str(tmp_path / "nope")})
    assert d.wait() != 0 and "No such file" in d.log()
    d = daemon(business="127.0.0.1:1", dr="127.0.0.1:2", wait=False,
               global_opts={"console_token_file": token_file(tmp_path)})
    assert d.wait() != 0 and "console_token_file: needs `console`" in d.log()


def test_console_without_token_file_is_read_only(daemon, mariadb_pair, fresh, tmp_path):  # noqa: F811
    mariadb_pair.business.sql("CREATE TABLE t (id INT PRIMARY KEY)", database=fresh)
    d, pname, port = console_daemon(daemon, tmp_path, fresh, token=False)
    code, doc = request(port, "/api/status")
    assert code == 200 and doc["ok"]
    code, doc = request(port, "/api/hold", {"pair": pname}, token="anything")
    assert code == 403 and "read-only" in doc["error"]["message"]
    assert d.pair_status(pname)["held"] is False
    code, _ = request(port, "/nothing-here")
    assert code == 404


def test_console_beyond_loopback_needs_a_token_file_and_the_token_for_reads(daemon, tmp_path):
    """console = 0.0.0.0:PORT is reachable from other machines: without console_token_file switchyardd refuses to
    start, naming why; with it, status and the other reads need the token as actions do (the page itself, which
    holds no data, does not)."""
    port = free_port()
    d = daemon(business="127.0.0.1:1", dr="127.0.0.1:2", wait=False, global_opts={"console": f"0.0.0.0:{port}"})
    assert d.wait() != 0
    assert "console = 0.0.0.0:%d is reachable from other machines: it needs console_token_file" % port in d.log()
    d = daemon(business="127.0.0.1:1", dr="127.0.0.1:2",
               global_opts={"console": f"0.0.0.0:{port}", "console_token_file": token_file(tmp_path)})
    for path in ("/api/status", "/api/clients?pair=demo", "/api/help", "/api/lag-history?instance=demo/forward"):
        for tok in (None, "wrong", TOKEN[:-1]):
            code, doc = request(port, path, token=tok)
            assert code == 403 and doc["error"]["code"] == "forbidden" and "reads need" in doc["error"]["message"], \
                (path, tok, doc)
    code, doc = request(port, "/api/status", token=TOKEN)
    assert code == 200 and doc["ok"] and doc["result"]["pairs"][0]["name"] == "demo", doc
    code, doc = request(port, "/api/status", host=f"console.example:{port}", token=TOKEN)   # any Host name
    assert code == 200, doc
    code, page = request(port, "/")
    assert code == 200 and "<script>" in page
    assert "refused: missing or wrong token (a console bound beyond loopback needs it for reads too)" in d.log()
    assert TOKEN not in d.log()


def test_console_max_connections_answers_503_beyond_it(daemon, tmp_path):
    """console_max_connections = 2: two keep-alive connections are served, a request on a third is answered
    503 {"error": "too_many_connections"} and that connection closed; once one of the two closes, a new one is
    served. Default: 32."""
    port = free_port()
    d = daemon(business="127.0.0.1:1", dr="127.0.0.1:2",
               global_opts={"console": f"127.0.0.1:{port}", "console_max_connections": 2})

    def get(conn):
        conn.request("GET", "/api/status")
        r = conn.getresponse()
        return r.status, json.loads(r.read())
    held = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(2)]
    for c in held:
        code, doc = get(c)
        assert code == 200 and doc["ok"], doc
    extra = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    code, doc = get(extra)
    assert code == 503 and doc["error"] == "too_many_connections", doc
    extra.close()
    for c in held:                                   # the two served connections go on being served
        assert get(c)[0] == 200
    held.pop().close()
    fresh_conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    wait_for(lambda: get(fresh_conn)[0] == 200 or (fresh_conn.close() and False), timeout=10, interval=0.1,
             what="a connection served again once one closed")
    assert "console_max_connections (2) connections are open" in d.log()
    assert "at most 2 connections" in d.log()
    d2 = daemon(business="127.0.0.1:1", dr="127.0.0.1:2", global_opts={"console": f"127.0.0.1:{free_port()}"})
    assert "at most 32 connections" in d2.log()


def test_console_over_tls(daemon, mariadb_pair, fresh, tmp_path):  # noqa: F811
    """console_tls_cert/console_tls_key: HTTPS only; the token rule is the same over it."""
    import ssl
    import subprocess
    cert, key = tmp_path / "console.pem", tmp_path / "console.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    mariadb_pair.business.sql("CREATE TABLE t (id INT PRIMARY KEY)", database=fresh)
    d, pname, port = console_daemon(daemon, tmp_path, fresh, extra={"console_tls_cert": str(cert),
                                                                     "console_tls_key": str(key)})
    ctx = ssl.create_default_context(cafile=str(cert))

    def https(path, body=None, token=None):
        req = urllib.request.Request(f"https://127.0.0.1:{port}{path}",
                                     data=json.dumps(body).encode() if body is not None else None)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    code, doc = https("/api/status")
    assert code == 200 and doc["result"]["pairs"][0]["name"] == pname
    assert https("/api/hold", {"pair": pname}, token="wrong")[0] == 403
    code, doc = https("/api/hold", {"pair": pname}, token=TOKEN)
    assert code == 200 and doc["result"]["held"] is True
    assert https("/api/release", {"pair": pname}, token=TOKEN)[0] == 200
    with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):  # no plain HTTP
        urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10).read()
    assert "console on https://127.0.0.1" in d.log()


def test_console_tls_key_without_cert_is_refused(daemon, tmp_path):
    d = daemon(business="127.0.0.1:1", dr="127.0.0.1:2", wait=False,
               global_opts={"console": f"127.0.0.1:{free_port()}", "console_tls_key": str(tmp_path / "k")})
    assert d.wait() != 0 and "console_tls_cert and console_tls_key go together" in d.log()


def switch_waiting_on_a_transaction(daemon, mariadb_pair, fresh, tmp_path, **kw):  # noqa: F811
    """A pair ready to switch (forward running, reverse collecting, txn_drain_ms = 1.5 s) and an application
    connection inside a transaction: a switchover now waits those 1.5 s in its hold, time to watch it.
    Returns (daemon, pair name, console port, the connection)."""
    mariadb_pair.business.sql("CREATE TABLE t (id INT PRIMARY KEY)", database=fresh)
    app_user(mariadb_pair, fresh)
    d, pname, port = console_daemon(daemon, tmp_path, fresh, txn_drain_ms=1500, **kw)
    wait_state(d, pname, "running")
    d.admin_ok("create-reverse", pair=pname)
    wait_reverse(d, pname, "collecting")
    c = app_conn(d, fresh)
    c.begin()
    one(c, "INSERT INTO t VALUES (1)")
    return d, pname, port, c


@pytest.mark.tsan  # status reads the step a switch thread has just passed
def test_console_status_shows_a_running_switch_and_keeps_a_history(daemon, mariadb_pair, fresh, tmp_path):  # noqa: F811
    """While a switch waits for an open transaction (txn_drain_ms), status says which step it passed; after it,
    switch_history has it."""
    d, pname, port, c = switch_waiting_on_a_transaction(daemon, mariadb_pair, fresh, tmp_path)
    assert "switch_history" not in d.pair_status(pname)

    def pair():
        return request(port, "/api/status")[1]["result"]["pairs"][0]

    out = {}
    th = threading.Thread(target=lambda: out.update(r=request(port, "/api/switchover", {"pair": pname}, token=TOKEN)))
    th.start()
    try:
        running = wait_for(lambda: (pair().get("switch") or {}).get("last_step") == "warm" and pair(), 10,
                           "status showing the switch past its warm step")
        assert running["switching"] is True and running["switch"]["operation"] == "switchover"
        assert 0 <= running["switch"]["elapsed_ms"] < 10000
    finally:
        th.join(60)
    code, doc = out["r"]
    assert code == 200 and doc["result"]["aborted_transactions"] == 1, doc
    c.rollback()
    c.close()
    done = pair()
    assert done["switching"] is False and "switch" not in done
    h = done["switch_history"]
    assert [(x["operation"], x["outcome"], x["aborted_transactions"]) for x in h] == [("switchover", "done", 1)]
    assert h[0]["pause_ms"] == doc["result"]["pause_ms"] and h[0]["at"].endswith("Z")
    assert set(h[0]["steps"]) >= {"catch_up_ms", "warm_ms", "quiesce_ms", "fence_ms", "drain_ms", "flip_ms"}


def test_ctl_switchover_progress_and_status_watch(daemon, mariadb_pair, fresh, tmp_path):  # noqa: F811
    """switchyardctl switchover --progress prints the steps as they pass (stderr), the result stays alone on
    stdout; status --watch prints the status again every second (plain when not a terminal)."""
    import subprocess
    from conftest import SWITCHYARDCTL
    d, pname, port, c = switch_waiting_on_a_transaction(daemon, mariadb_pair, fresh, tmp_path, token=False)
    r = d.ctl("--json", "switchover", pname, "--progress")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["aborted_transactions"] == 1        # stdout: the result only
    lines = r.stderr.splitlines()
    assert f"switchover {pname}: warm done" in "\n".join(lines), r.stderr
    assert all(ln.startswith(f"switchover {pname}: ") and " done (" in ln for ln in lines), r.stderr
    assert len(lines) == len(set(ln.split(" done")[0] for ln in lines))   # each step once
    c.rollback()
    c.close()
    assert d.ctl("status", "--progress").returncode == 2             # not a status option
    assert d.ctl("switchover", pname, "--watch").returncode == 2

    p = subprocess.Popen([str(SWITCHYARDCTL), "-s", d.admin_socket, "status", pname, "--watch"],
                         stdout=subprocess.PIPE, text=True, env=d.env)
    try:
        out = ""
        deadline = time.monotonic() + 20
        while out.count(f"{pname}/forward") < 2 and time.monotonic() < deadline:
            out += p.stdout.readline()
        assert out.count(f"{pname}/forward") >= 2, out                  # drawn twice
        assert "\033[" not in out                                       # not a terminal: no escapes
    finally:
        p.kill()
        p.wait()


def test_console_client_gone_before_a_long_reply(daemon, mariadb_pair, fresh, tmp_path):  # noqa: F811
    """A browser that closes its connection while a switchover runs: the switch completes, its reply is dropped,
    the console goes on serving (and under ASan the daemon exits clean: nothing freed twice or leaked)."""
    d, pname, port, c = switch_waiting_on_a_transaction(daemon, mariadb_pair, fresh, tmp_path)
    body = json.dumps({"pair": pname}).encode()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"POST /api/switchover HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Authorization: Bearer " + TOKEN.encode() + b"\r\nContent-Length: " + str(len(body)).encode()
                  + b"\r\n\r\n" + body)
        wait_for(lambda: d.pair_status(pname)["switching"], 10, "the switch running")
    wait_for(lambda: not d.pair_status(pname)["switching"], 30, "the switch done")
    assert d.pair_status(pname)["active_side"] == "dr"
    c.rollback()
    c.close()
    assert request(port, "/api/status")[0] == 200
    d.stop()                                        # asserts a clean exit (ASan/LSan included)
