"""The SQL Server double's store (test code, never shipped): a throwaway PostgreSQL 15 cluster, initdb'd in
the double's data dir, listening on 127.0.0.1 at a free port, in its own process group, SIGKILLed by the kernel
if the double dies (parent-death signal) and stopped with a fast shutdown otherwise. As root it runs as the
`postgres` user (PostgreSQL refuses root). Each SQL Server database is a PostgreSQL database whose schema
`dbo` holds the tables; `master` exists from the start."""

from __future__ import annotations

import ctypes
import os
import pwd
import signal
import socket
import subprocess
import time

PG_BIN = os.environ.get("SY_PG_BIN", "/usr/lib/postgresql/15/bin")
READY_TIMEOUT_S = 30.0


class StoreError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _demote_and_die_with_parent(uid, gid):
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    parent = os.getpid()

    def fn():
        os.setpgid(0, 0)
        if uid is not None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        # after setuid: a change of credentials clears the parent-death signal
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)        # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)
    return fn


class PgCluster:
    def __init__(self, datadir: str):
        self.datadir = os.path.abspath(datadir)
        self.pgdata = os.path.join(self.datadir, "pg")
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.uid = self.gid = None
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.user = "postgres" if self.uid is not None else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, args, **kw):
        return subprocess.run(args, preexec_fn=_demote_and_die_with_parent(self.uid, self.gid),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)

    def start(self) -> None:
        os.makedirs(self.datadir, exist_ok=True)
        if self.uid is not None:
            os.chown(self.datadir, self.uid, self.gid)
            r = self._run(["test", "-x", self.datadir])
            if r.returncode:
                raise StoreError(f"user postgres cannot reach {self.datadir}: a parent directory is not "
                                 "searchable by others (chmod o+x it)")
        if not os.path.exists(os.path.join(self.pgdata, "PG_VERSION")):
            r = self._run([os.path.join(PG_BIN, "initdb"), "-D", self.pgdata, "-U", self.user, "-A", "trust",
                           "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"])
            if r.returncode:
                raise StoreError("initdb failed:\n" + r.stdout)
        log = os.path.join(self.datadir, "postgres.log")
        for _attempt in range(8):
            self.port = free_port()
            with open(log, "ab") as lf:
                if self.uid is not None:
                    os.chown(log, self.uid, self.gid)
                self.proc = subprocess.Popen(
                    [os.path.join(PG_BIN, "postgres"), "-D", self.pgdata, "-p", str(self.port),
                     "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.datadir}",
                     "-c", "fsync=off", "-c", "synchronous_commit=on", "-c", "full_page_writes=off",
                     "-c", "max_connections=300", "-c", "shared_buffers=32MB", "-c", "deadlock_timeout=200ms",
                     "-c", "max_prepared_transactions=0", "-c", "log_min_messages=warning",
                     "-c", "TimeZone=UTC", "-c", "DateStyle=ISO, MDY"],
                    stdout=lf, stderr=subprocess.STDOUT, preexec_fn=_demote_and_die_with_parent(self.uid, self.gid))
            if self._wait_ready(log):
                return
        raise StoreError("PostgreSQL did not start:\n" + open(log).read()[-3000:])

    def _wait_ready(self, log) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False                 # e.g. the port was taken: try another
            r = self._run([os.path.join(PG_BIN, "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"])
            if r.returncode == 0:
                return True
            time.sleep(0.1)
        self.stop()
        raise StoreError("PostgreSQL not ready in time:\n" + open(log).read()[-3000:])

    def dsn(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={dbname}"

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGINT)            # fast shutdown
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
