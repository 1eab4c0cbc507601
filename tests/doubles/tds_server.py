#!/usr/bin/env python3
"""Run one SQL Server double (test code, never shipped; see README.md): a TDS 7.4 server that behaves like SQL
Server for what it covers, storing data in a private PostgreSQL 15 cluster.

    tds_server.py --port 0 [--host 127.0.0.1] [--data DIR] [--admin-user sa] [--admin-password PW]
                  [--force-encryption] [--no-tls] [--cdc-delay 0.5] [--ready-file FILE]
    (or --listen HOST:PORT)

Prints `ready <host> <port>` on stdout once the port accepts logins (and writes the same to --ready-file).
Without --data the data lives in a temp dir that is removed at exit. SIGTERM/SIGINT stop it (PostgreSQL
included); if this process is SIGKILLed, the kernel kills PostgreSQL too (parent-death signal)."""

from __future__ import annotations

import argparse
import faulthandler
import os
import shutil
import signal
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from server import Server  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="SQL Server double (TDS 7.4 over PostgreSQL) - test code only")
    ap.add_argument("--listen", help="HOST:PORT (port 0: a free port)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--data", help="data dir (kept); default: a temp dir removed at exit")
    ap.add_argument("--admin-user", default="sa")
    ap.add_argument("--admin-password", default="Sy-double-1")
    ap.add_argument("--force-encryption", action="store_true", help="answer ENCRYPT_ON even to ENCRYPT_OFF")
    ap.add_argument("--no-tls", action="store_true", help="answer ENCRYPT_NOT_SUP (no certificate)")
    ap.add_argument("--cdc-delay", type=float, default=0.5, help="capture job delay in seconds")
    ap.add_argument("--ready-file")
    a = ap.parse_args(argv)
    faulthandler.register(signal.SIGUSR1)      # kill -USR1 PID: every thread's stack on stderr
    host, port = a.host, a.port
    if a.listen:
        host, _, p = a.listen.rpartition(":")
        port = int(p)
    tmp = None
    datadir = a.data
    if not datadir:
        tmp = datadir = tempfile.mkdtemp(prefix="sy-mssql-")
    srv = Server(host or "127.0.0.1", port, datadir, a.admin_user, a.admin_password,
                 force_encryption=a.force_encryption, cdc_delay_s=a.cdc_delay, tls=not a.no_tls)
    stopped = threading.Event()

    def on_signal(_sig, _frm):
        stopped.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        srv.start()
        threading.Thread(target=srv.serve_forever, daemon=True, name="accept").start()
        line = f"ready {srv.host} {srv.port}"
        if a.ready_file:
            with open(a.ready_file + ".tmp", "w") as f:
                f.write(line + "\n")
            os.replace(a.ready_file + ".tmp", a.ready_file)
        print(line, flush=True)
        stopped.wait()
    finally:
        srv.stop()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
