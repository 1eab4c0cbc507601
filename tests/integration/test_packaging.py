"""What a user installs (issue 11 "Packaging"): `make install` into a prefix (cmake --install of the build under
test), `switchyardd --check-config`, the systemd unit checked by `systemd-analyze verify`, the man pages (groff
without warnings; every config key documented in switchyard.ini(5)), and Type=notify: READY=1 once the daemon
serves, STOPPING=1 when it stops, on a real NOTIFY_SOCKET."""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from conftest import BUILD_DIR
from helpers import wait_for

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    p = tmp_path_factory.mktemp("prefix")
    r = subprocess.run(["cmake", "--install", str(BUILD_DIR), "--prefix", str(p)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return p


def test_install_lays_out_programs_man_pages_sample_and_unit(prefix):
    for rel, mode in (("sbin/switchyardd", 0o755), ("bin/switchyardctl", 0o755),
                      ("share/man/man8/switchyardd.8", 0o644), ("share/man/man8/switchyardctl.8", 0o644),
                      ("share/man/man5/switchyard.ini.5", 0o644),
                      ("share/doc/switchyard/switchyard.ini.sample", 0o644),
                      ("lib/systemd/system/switchyardd.service", 0o644),
                      ("lib/sysusers.d/switchyard.conf", 0o644)):
        f = prefix / rel
        assert f.is_file(), rel
        assert stat.S_IMODE(f.stat().st_mode) & mode == mode, (rel, oct(f.stat().st_mode))
    unit = (prefix / "lib/systemd/system/switchyardd.service").read_text()
    assert f"ExecStart={prefix}/sbin/switchyardd -c /etc/switchyard/switchyard.ini --foreground" in unit
    assert "Type=notify" in unit and "Restart=on-failure" in unit and "@SBINDIR@" not in unit
    assert "PrivateTmp" not in unit.replace("# no PrivateTmp", "")   # an export to /tmp must not vanish
    assert (prefix / "lib/sysusers.d/switchyard.conf").read_text().count("u switchyard ") == 1


def test_check_config(prefix, tmp_path):
    d = prefix / "sbin/switchyardd"
    sample = prefix / "share/doc/switchyard/switchyard.ini.sample"
    r = subprocess.run([d, "-c", sample, "--check-config"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == f"{sample}: OK (1 pair(s))", r
    bad = tmp_path / "bad.ini"
    bad.write_text("[switchyard]\nstate_dir = /tmp\n[pair p]\nengine = mariadb\nlisten = 127.0.0.1:0\n")
    r = subprocess.run([d, "-c", bad, "--check-config"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and f"{bad}:3: [pair p] missing required key 'business'" in r.stderr, r
    r = subprocess.run([d, "--check-config"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage:" in r.stderr
    # the files it names are read as at start: a token file others can read, a missing certificate
    tok = tmp_path / "token"
    tok.write_text("secret-token-of-24-bytes\n")
    tok.chmod(0o644)
    cfg = tmp_path / "console.ini"
    cfg.write_text(f"[switchyard]\nconsole = 127.0.0.1:8470\nconsole_token_file = {tok}\n")
    r = subprocess.run([d, "-c", cfg, "--check-config"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and f"console_token_file {tok}: mode 0644 lets others read it" in r.stderr, r
    tok.chmod(0o600)
    r = subprocess.run([d, "-c", cfg, "--check-config"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r
    cfg.write_text(f"[switchyard]\nconsole = 127.0.0.1:8470\nconsole_tls_cert = {tmp_path}/no.pem\n"
                   f"console_tls_key = {tmp_path}/no.key\n")
    r = subprocess.run([d, "-c", cfg, "--check-config"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "console_tls_cert" in r.stderr, r


def test_systemd_unit_verifies(prefix):
    unit = prefix / "lib/systemd/system/switchyardd.service"
    env = {**os.environ, "MANPATH": str(prefix / "share/man")}     # Documentation= man pages must resolve
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stdout + r.stderr


def test_man_pages_render_and_document_every_key(prefix):
    for page in ("man8/switchyardd.8", "man8/switchyardctl.8", "man5/switchyard.ini.5"):
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(prefix / "share/man" / page)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stderr == "", (page, r.stderr)
    keys = set(re.findall(r'\{ "([a-z_0-9]+)", CFG_', (ROOT / "core/config.c").read_text()))
    assert {"admin_socket", "engine", "etcd", "objects"} <= keys, keys
    text = (prefix / "share/man/man5/switchyard.ini.5").read_text()
    documented = set(re.findall(r"\b[a-z][a-z0-9_]+\b", text))
    assert not keys - documented, f"keys missing from switchyard.ini(5): {sorted(keys - documented)}"
    ctl = (prefix / "share/man/man8/switchyardctl.8").read_text()
    usage = subprocess.run([prefix / "bin/switchyardctl", "help"], capture_output=True, text=True).stdout
    help_cmds = re.findall(r"^  ([a-z][a-z-]+)", usage.split("commands:")[1].split("options:")[0], re.M)
    assert help_cmds and all(c.replace("-", r"\-") in ctl for c in help_cmds), help_cmds


def test_relative_export_path_is_refused(daemon):
    d = daemon(pair="exp")
    r = d.admin("resolve-tail", pair="exp", export="tail.json")
    assert r["ok"] is False and r["error"]["code"] == "bad_request" and "absolute path" in r["error"]["message"], r


def test_notify_ready_then_stopping(daemon, tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        s.settimeout(30)
        d = daemon(pair="notify", env={"NOTIFY_SOCKET": path})
        msg = s.recv(4096).decode()
        assert "READY=1" in msg and f"MAINPID={d.pid}" in msg and "STATUS=ready" in msg, msg
        d.admin_ok("status")                            # READY came once it serves
        os.kill(d.pid, __import__("signal").SIGHUP)     # not a reload, and not a stop
        wait_for(lambda: "SIGHUP: reloading the configuration is not supported" in d.log(), timeout=10,
                 what="the SIGHUP line")
        d.admin_ok("status")
        assert d.stop() == 0
        msg = s.recv(4096).decode()
        assert msg == "STOPPING=1", msg
