"""The SQL Server double's server (test code, never shipped): accepts TDS 7.4 connections, logs clients in,
runs their batches, RPCs and transaction-manager requests against PostgreSQL (pgstore.py) through
translate.py, and answers with SQL Server's token stream (tds_tokens.py). One thread per connection, plus a
reader thread per connection so an ATTENTION can cancel a running query."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import queue
import re
import socket
import ssl
import struct
import subprocess
import threading
import uuid

import psycopg2
import psycopg2.errors
import psycopg2.extensions

import cdc
import login as lg
import perms as PM
import tds_packets as P
import tds_tokens as T
from pgstore import PgCluster
from tds_types import Reader, SqlType, TypeError_, read_type_info, read_value
from translate import (Binder, TranslateError, format_dto, split_batch, syntax_check, syntax_error, translate,
                       NONAME)

VERSION_TEXT = ("Microsoft SQL Server 2022 (RTM-CU13) (KB5036432) - 16.0.4125.3 (X64) \n\tMay  1 2024 15:05:56 "
                "\n\tCopyright (C) 2022 Microsoft Corporation\n\tDeveloper Edition (64-bit) on Linux "
                "(Switchyard SQL Server double: PostgreSQL 15 underneath) <X64>")
TEMPLATE_DB = "sy_model"
PROC_IDS = {1: "sp_cursor", 2: "sp_cursoropen", 3: "sp_cursorprepare", 4: "sp_cursorexecute",
            5: "sp_cursorprepexec", 6: "sp_cursorunprepare", 7: "sp_cursorfetch", 8: "sp_cursoroption",
            9: "sp_cursorclose", 10: "sp_executesql", 11: "sp_prepare", 12: "sp_execute", 13: "sp_prepexec",
            14: "sp_prepexecrpc", 15: "sp_unprepare"}
ISOLATION = {1: "READ UNCOMMITTED", 2: "READ COMMITTED", 3: "REPEATABLE READ", 4: "SERIALIZABLE",
             5: "REPEATABLE READ"}
OID_TYPES = {16: "bit", 20: "bigint", 21: "smallint", 23: "int", 26: "int", 700: "real", 701: "float",
             1082: "date", 1083: "time(7)", 1114: "datetime2(7)", 1184: "datetimeoffset(7)", 2950: "uniqueidentifier",
             17: "varbinary(max)", 114: "nvarchar(max)", 3802: "nvarchar(max)"}
STRING_OIDS = {25, 1043, 1042, 19, 705, 18}


class SqlError(Exception):
    """An error SQL Server would send: number, class, state, text; `abort` ends the batch, `rollback` the txn."""

    def __init__(self, number, text, klass=16, state=1, abort=True, rollback=False):
        super().__init__(text)
        self.number, self.text, self.klass, self.state, self.abort, self.rollback = (
            number, text, klass, state, abort, rollback)


class Cancelled(Exception):
    pass


def pg_error(e: psycopg2.Error, line: int = 1) -> SqlError:
    """SQL Server's error for a PostgreSQL error."""
    code = e.pgcode or ""
    d = e.diag
    msg = (d.message_primary or str(e)).strip()
    table = d.table_name or "?"
    schema = d.schema_name or "dbo"
    if code == "23505":
        key = re.search(r"\)=\((.*)\) already exists", d.message_detail or "")
        cname = d.constraint_name or ""
        kind = "PRIMARY KEY" if cname.endswith("_pkey") or cname.lower().startswith("pk") else "UNIQUE KEY"
        shown = f"PK__{table}" if cname.endswith("_pkey") else cname
        return SqlError(2627, f"Violation of {kind} constraint '{shown}'. Cannot insert duplicate key in object "
                              f"'{schema}.{table}'. The duplicate key value is ({key.group(1) if key else ''}).",
                        14, 1, abort=False)
    if code == "42P01":
        m = re.search(r'relation "([^"]+)"', msg)
        return SqlError(208, f"Invalid object name '{m.group(1) if m else '?'}'.", 16, 1)
    if code == "42703":
        m = re.search(r'column "?([^" ]+)"? does not exist', msg)
        name = (m.group(1) if m else "?").split(".")[-1]
        return SqlError(207, f"Invalid column name '{name}'.", 16, 1)
    if code == "42601":
        m = re.search(r'at or near "([^"]*)"', msg)
        return SqlError(102, f"Incorrect syntax near '{m.group(1) if m else ''}'.", 15, 1)
    if code == "23502":
        return SqlError(515, f"Cannot insert the value NULL into column '{d.column_name}', table "
                             f"'{schema}.{table}'; column does not allow nulls. INSERT fails.", 16, 2, abort=False)
    if code == "23503":
        return SqlError(547, f"The statement conflicted with the FOREIGN KEY constraint \"{d.constraint_name}\". "
                             f"The conflict occurred in table \"{schema}.{table}\".", 16, 0, abort=False)
    if code == "23514":
        return SqlError(547, f"The statement conflicted with the CHECK constraint \"{d.constraint_name}\". "
                             f"The conflict occurred in table \"{schema}.{table}\".", 16, 0, abort=False)
    if code == "22012":
        return SqlError(8134, "Divide by zero error encountered.", 16, 1, abort=False)
    if code in ("40P01", "40001"):
        return SqlError(1205, "Transaction (Process ID 0) was deadlocked on lock resources with another process "
                              "and has been chosen as the deadlock victim. Rerun the transaction.", 13, 51,
                        rollback=True)
    if code == "42P07":
        m = re.search(r'relation "([^"]+)"', msg)
        return SqlError(2714, f"There is already an object named '{m.group(1) if m else '?'}' in the database.", 16, 6)
    if code == "SY313":
        return SqlError(313, msg, 16, 3)
    if code in ("22003", "22P02", "22007", "22008", "22001"):
        if code == "22001":
            return SqlError(2628, "String or binary data would be truncated.", 16, 1, abort=False)
        return SqlError(8115 if code == "22003" else 245, f"Conversion failed: {msg}", 16, 1, abort=False)
    if code == "55P03" or code == "57014":
        return SqlError(1222, "Lock request time out period exceeded.", 16, 56, abort=False)
    return SqlError(50000, f"{msg} (PostgreSQL {code})", 16, 1)


class Catalog:
    """SQL Server types and spellings of table columns, kept in PostgreSQL column comments 'type|Name'."""

    def __init__(self):
        self.cache: dict[tuple[str, int], dict[int, tuple[SqlType, str]]] = {}
        self.lock = threading.Lock()

    def columns(self, cur, db: str, table_oid: int) -> dict[int, tuple[SqlType, str]]:
        key = (db, table_oid)
        with self.lock:
            if key in self.cache:
                return self.cache[key]
        cur.execute("SELECT attnum, col_description(attrelid, attnum) FROM pg_attribute "
                    "WHERE attrelid = %s AND attnum > 0", (table_oid,))
        out = {}
        for attnum, comment in cur.fetchall():
            if comment and "|" in comment:
                t, name = comment.split("|", 1)
                try:
                    out[attnum] = (SqlType.parse(t), name)
                except TypeError_:
                    pass
        with self.lock:
            self.cache[key] = out
        return out

    def forget(self) -> None:
        with self.lock:
            self.cache.clear()


class Server:
    def __init__(self, host: str, port: int, datadir: str, admin_user: str, admin_password: str,
                 force_encryption: bool = False, cdc_delay_s: float = 0.5, tls: bool = True):
        self.host, self.port, self.datadir = host, port, os.path.abspath(datadir)
        self.force_encryption = force_encryption
        self.store = PgCluster(self.datadir)
        self.catalog = Catalog()
        self.lock = threading.Lock()
        self.state_file = os.path.join(self.datadir, "double.json")
        self.state = {"logins": {}, "databases": {}, "cdc": []}
        self.admin_user, self.admin_password = admin_user, admin_password
        self.next_descriptor = 1
        self.next_spid = 51
        self.sessions: dict[int, "Session"] = {}
        self.tls_ctx = self._tls_context() if tls else None
        self.cdc_delay_s = cdc_delay_s
        self.sock = None
        self.capture = None

    # --- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        os.makedirs(self.datadir, exist_ok=True)
        if os.path.exists(self.state_file):
            with open(self.state_file) as f:
                self.state = json.load(f)
        self.state["logins"][self.admin_user.lower()] = {"name": self.admin_user, "password": self.admin_password,
                                                         "default_db": "master"}
        self.store.start()
        self._bootstrap()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, self.port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(128)
        self.capture = cdc.Capture(self.pg_connect, lambda: list(self.state["cdc"]), self.cdc_delay_s)
        self.capture.start()

    def serve_forever(self) -> None:
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                spid = self.next_spid
                self.next_spid += 1
            threading.Thread(target=Session(self, conn, spid).run, daemon=True, name=f"spid{spid}").start()

    def stop(self) -> None:
        if self.sock:
            try:
                self.sock.close()
            except OSError:
                pass
        if self.capture:
            self.capture.stop()
        self.store.stop()

    def save_state(self) -> None:
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f)
        os.replace(tmp, self.state_file)

    def _tls_context(self):
        cert, key = os.path.join(self.datadir, "tls.crt"), os.path.join(self.datadir, "tls.key")
        os.makedirs(self.datadir, exist_ok=True)
        if not os.path.exists(cert):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                            "-keyout", key, "-out", cert], check=True, capture_output=True)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        # TLS 1.2 only, as SQL Server over TDS 7.x: with 1.3 the client's last handshake record is one no
        # answer follows, and FreeTDS leaves it in its PRELOGIN buffer (a real server never sees 1.3 here).
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        self.cert_path = cert
        return ctx

    def _bootstrap(self) -> None:
        conn = psycopg2.connect(self.store.dsn("postgres"))
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("SELECT datname FROM pg_database")
        have = {r[0] for r in cur.fetchall()}
        if TEMPLATE_DB not in have:
            cur.execute(f"CREATE DATABASE {TEMPLATE_DB}")
            t = psycopg2.connect(self.store.dsn(TEMPLATE_DB))
            t.autocommit = True
            t.cursor().execute(cdc.BASE_SQL)
            t.cursor().execute(PM.BASE_SQL)
            t.close()
        if "master" not in have:
            cur.execute(f"CREATE DATABASE master TEMPLATE {TEMPLATE_DB}")
        conn.close()
        self.state["databases"].setdefault("master", "master")
        self.save_state()

    def pg_connect(self, db: str):
        pgname = self.state["databases"].get(db.lower())
        if pgname is None:
            raise SqlError(911, f"Database '{db}' does not exist. Make sure that the name is entered correctly.", 16, 1)
        return psycopg2.connect(self.store.dsn(pgname), options="-c search_path=dbo,public -c TimeZone=UTC")

    def display_name(self, db: str) -> str:
        """A database's name as CREATE DATABASE spelled it (names compare without case)."""
        return self.state.get("databases_display", {}).get(db.lower(), db)

    def new_descriptor(self) -> bytes:
        with self.lock:
            self.next_descriptor += 1
            return struct.pack("<Q", self.next_descriptor)


class Output:
    """Tokens of one response; DONE tokens get DONE_MORE fixed when the response is finished."""

    def __init__(self):
        self.parts: list[bytes] = []
        self.last_done = -1

    def add(self, b: bytes) -> None:
        self.parts.append(b)

    def done(self, token: int, status: int, curcmd: int, rows: int) -> None:
        self.parts.append(struct.pack("<BHHQ", token, status | T.DONE_MORE, curcmd, rows))
        self.last_done = len(self.parts) - 1

    def finish(self) -> bytes:
        if self.last_done < 0:
            self.done(T.DONE_T, 0, 0, 0)
        tok = bytearray(self.parts[self.last_done])
        status = struct.unpack("<H", tok[1:3])[0] & ~T.DONE_MORE
        tok[1:3] = struct.pack("<H", status)
        self.parts[self.last_done] = bytes(tok)
        return b"".join(self.parts)


class Session:
    def __init__(self, server: Server, sock, spid: int):
        self.server, self.sock, self.spid = server, sock, spid
        self.t = P.Transport(sock)
        self.t.spid = 0
        self.conn = None
        self.cur = None
        self.db = "master"
        self.login_db = "master"
        self.user = ""
        self.trancount = 0
        self.descriptor = b"\0" * 8
        self.nocount = False
        self.implicit = False
        self.xact_abort = False
        self.isolation = None
        self.prepared: dict[int, tuple[str, str]] = {}
        self.next_handle = 1
        self.vars: dict[str, tuple[object, SqlType | None]] = {}
        self.last_insert_table = None
        self.rowcount = 0
        self.queue: queue.Queue = queue.Queue()
        self.busy = threading.Lock()
        self.executing = False
        self.attention = threading.Event()

    # --- connection ---------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            if not self.handshake():
                return
            threading.Thread(target=self.reader, daemon=True, name=f"spid{self.spid}-reader").start()
            while True:
                item = self.queue.get()
                if item is None:
                    return
                ptype, status, payload = item
                if ptype == P.ATTENTION:
                    self.attention.clear()
                    if os.environ.get("SY_DOUBLE_DEBUG"):
                        print(f"sqlserver-double: spid {self.spid}: ATTENTION acknowledged", flush=True)
                    self.send(T.done(T.DONE_ATTN))
                    continue
                self.handle(ptype, status, payload)
        except (P.ProtocolError, lg.LoginError, TypeError_, ssl.SSLError) as e:
            print(f"sqlserver-double: spid {self.spid}: closing: {e!r}", flush=True)
        except P.ConnectionClosed:
            if os.environ.get("SY_DOUBLE_DEBUG"):
                import traceback
                traceback.print_exc()
        except (ConnectionError, OSError) as e:
            if os.environ.get("SY_DOUBLE_DEBUG"):
                print(f"sqlserver-double: spid {self.spid}: {e!r}", flush=True)
        finally:
            self.close()

    def close(self) -> None:
        with self.server.lock:
            self.server.sessions.pop(self.spid, None)
        try:
            self.sock.close()
        except OSError:
            pass
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001
                pass
            self.conn = None

    def reader(self) -> None:
        try:
            while True:
                msg = self.t.read_message()
                if msg[0] == P.ATTENTION:
                    self.attention.set()
                    with self.busy:
                        if self.executing and self.conn is not None:
                            try:
                                self.conn.cancel()
                            except Exception:  # noqa: BLE001
                                pass
                self.queue.put(msg)
        except Exception:  # noqa: BLE001 - connection gone or broken: end the session
            self.queue.put(None)

    def send(self, tokens: bytes) -> None:
        self.t.send_message(P.TABULAR, tokens)

    # --- PRELOGIN, TLS, LOGIN7 ----------------------------------------------------------------------------
    def handshake(self) -> bool:
        ptype, _st, payload = self.t.read_message()
        if ptype != P.PRELOGIN:
            raise P.ProtocolError(f"expected PRELOGIN, got packet type {ptype:#x}")
        opts = lg.parse_prelogin(payload)
        client_enc = opts.get(lg.ENCRYPTION, bytes([lg.ENCRYPT_NOT_SUP]))[0] & 0x0F
        enc = lg.choose_encryption(client_enc, self.server.tls_ctx is not None, self.server.force_encryption)
        answer = [(lg.VERSION, bytes([16, 0, 0x10, 0x7A, 0, 0])), (lg.ENCRYPTION, bytes([enc])),
                  (lg.INSTOPT, b"\0"), (lg.THREADID, b""), (lg.MARS, b"\0")]
        if lg.FEDAUTHREQUIRED in opts:
            answer.append((lg.FEDAUTHREQUIRED, b"\0"))
        self.t.send_message(P.TABULAR, lg.build_prelogin(answer), 4096)
        if enc == lg.ENCRYPT_REQ and client_enc == lg.ENCRYPT_NOT_SUP:
            return False
        if enc in (lg.ENCRYPT_ON, lg.ENCRYPT_OFF, lg.ENCRYPT_REQ):
            self.t.tls_handshake_in_prelogin(self.server.tls_ctx)
        ptype, _st, payload = self.t.read_message()
        if enc == lg.ENCRYPT_OFF:
            self.t.tls_off()            # only the LOGIN7 message travels encrypted
        self.encrypted = self.t.tls is not None
        self.enc = enc
        if ptype != P.LOGIN7:
            raise P.ProtocolError(f"expected LOGIN7, got packet type {ptype:#x}")
        return self.login(lg.Login7(payload))

    def login(self, l: lg.Login7) -> bool:
        login = self.server.state["logins"].get(l.username.lower())
        if l.integrated or login is None or login["password"] != l.password:
            print(f"sqlserver-double: login failed spid={self.spid} user={l.username!r}", flush=True)
            self.send(T.error(18456, 1, 14, f"Login failed for user '{l.username}'.") + T.done(T.DONE_ERROR))
            return False
        db = l.database or login.get("default_db") or "master"
        try:
            self.conn = self.server.pg_connect(db)
        except SqlError:
            self.send(T.error(4060, 1, 11, f'Cannot open database "{db}" requested by the login. The login failed.')
                      + T.error(18456, 1, 14, f"Login failed for user '{l.username}'.") + T.done(T.DONE_ERROR))
            return False
        self.conn.autocommit = True
        self.cur = self.conn.cursor()
        self.user = login["name"]
        self.db = self.login_db = self.server.display_name(db)
        if self.access_denied(self.conn, self.db) is not None:     # no user here, guest may not connect
            print(f"sqlserver-double: login failed spid={self.spid} user={l.username!r} db={self.db!r}: no access",
                  flush=True)
            first = (T.error(4060, 1, 11, f'Cannot open database "{self.db}" requested by the login. The login '
                                          "failed.") if l.database else
                     T.error(4064, 1, 11, "Cannot open user default database. Login failed."))
            self.send(first + T.error(18456, 1, 14, f"Login failed for user '{l.username}'.") + T.done(T.DONE_ERROR))
            self.conn.close()
            self.conn = self.cur = None
            return False
        size = l.packet_size or 4096
        size = max(512, min(size, P.MAX_PACKET_SIZE))
        out = [T.envchange_str(T.ENV_DATABASE, self.db, "master"),
               T.info(5701, f"Changed database context to '{self.db}'.", 2, 0),
               T.env_collation(),
               T.envchange_str(T.ENV_LANGUAGE, "us_english", ""),
               T.info(5703, "Changed language setting to us_english.", 1, 0),
               T.loginack()]
        if l.features:
            out.append(T.featureextack({}))
        out += [T.envchange_str(T.ENV_PACKETSIZE, str(size), str(l.packet_size or 4096)), T.done()]
        self.send(b"".join(out))
        self.t.packet_size = size
        self.t.spid = self.spid
        self.connect_time = dt.datetime.utcnow()
        mode = "on" if self.encrypted else ("login-only" if self.enc == lg.ENCRYPT_OFF else "off")
        print(f"sqlserver-double: login spid={self.spid} user={self.user} db={self.db} encryption={mode} "
              f"tds={l.tds_version:#010x} packet={size} app={l.appname!r} library={l.library!r}", flush=True)
        with self.server.lock:
            self.server.sessions[self.spid] = self
        return True

    # --- requests -------------------------------------------------------------------------------------------
    def handle(self, ptype: int, status: int, payload: bytes) -> None:
        out = Output()
        if status & (P.RESET_CONNECTION | P.RESET_CONNECTION_SKIP_TRAN):
            self.reset(skip_tran=bool(status & P.RESET_CONNECTION_SKIP_TRAN), out=out)
        r = Reader(payload)
        # no attention.clear() here: an ATTENTION read right behind this request (the reader thread set the
        # flag, its queue item waits) must cancel it, as SQL Server does; the flag is cleared when that item
        # is answered with DONE_ATTN (run)
        try:
            if ptype in (P.SQL_BATCH, P.RPC, P.TRANSACTION_MANAGER):
                self.request_descriptor = None
                self.read_all_headers(r)
                self.check_descriptor()
            if ptype == P.SQL_BATCH:
                text = payload[r.pos:].decode("utf-16-le", "replace")
                self.run_batch(text, {}, out, in_proc=False)
            elif ptype == P.RPC:
                self.run_rpcs(r, out)
            elif ptype == P.TRANSACTION_MANAGER:
                self.run_tm(r, out)
            else:
                raise P.ProtocolError(f"unexpected packet type {ptype:#x}")
        except Cancelled:
            return          # the ATTENTION in the queue answers with DONE_ATTN; this response is dropped
        except (P.ProtocolError, TypeError_, P.ConnectionClosed, OSError):
            raise
        except Exception as e:  # noqa: BLE001 - a gap of the double: say so as an error, keep the session
            import traceback
            traceback.print_exc()
            out.add(T.error(50000, 1, 16, f"SQL Server double: internal error: {e!r}"))
            out.done(T.DONE_T, T.DONE_ERROR, 0, 0)
        self.send(out.finish())

    def read_all_headers(self, r: Reader) -> None:
        start = r.pos
        total = r.u32()
        if total < 4 or start + total > len(r.data):
            raise P.ProtocolError("bad ALL_HEADERS")
        while r.pos < start + total:
            hlen = r.u32()
            htype = r.u16()
            data = r.take(hlen - 6)
            if htype == 2:
                self.request_descriptor = data[:8]
        r.pos = start + total

    def check_descriptor(self) -> None:
        """A request names the transaction it belongs to (ALL_HEADERS type 2): the descriptor of the last
        ENVCHANGE begin, or zeros outside a transaction. SQL Server lets a mismatch pass in simple cases; the
        double logs it so tests can see a client (or a proxy) that sends the wrong one."""
        got = self.request_descriptor
        if got is not None and got != self.descriptor:
            print(f"sqlserver-double: spid {self.spid}: transaction descriptor mismatch: request {got.hex()}, "
                  f"session {self.descriptor.hex()}", flush=True)

    def reset(self, skip_tran: bool, out: Output) -> None:
        if not skip_tran and self.trancount:
            self.pg("ROLLBACK")
            self.trancount = 0
        self.nocount = self.implicit = self.xact_abort = False
        self.vars.clear()
        if self.db.lower() != self.login_db.lower():
            self.use(self.login_db, None)
        out.add(T.env_reset_ack())

    # --- transactions ---------------------------------------------------------------------------------------
    def pg(self, sql: str, args=None):
        with self.busy:
            self.executing = True
        try:
            self.cur.execute(sql, args)
        except psycopg2.extensions.QueryCanceledError:
            if self.attention.is_set():
                raise Cancelled()
            raise
        finally:
            with self.busy:
                self.executing = False

    def begin(self, out: Output, isolation: str | None = None) -> None:
        if self.trancount == 0:
            iso = isolation or self.isolation
            self.pg("BEGIN" + (f" ISOLATION LEVEL {iso}" if iso else ""))
            self.descriptor = self.server.new_descriptor()
            out.add(T.env_begin(self.descriptor))
        self.trancount += 1

    def commit(self, out: Output) -> None:
        if self.trancount == 0:
            raise SqlError(3902, "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.", 16, 1)
        self.trancount -= 1
        if self.trancount == 0:
            try:
                self.pg("COMMIT")
            finally:
                out.add(T.env_end(T.ENV_COMMIT_TRAN, self.descriptor))
                self.descriptor = b"\0" * 8

    def rollback(self, out: Output, savepoint: str | None = None) -> None:
        if self.trancount == 0:
            raise SqlError(3903, "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.", 16, 1)
        if savepoint:
            self.pg(f'ROLLBACK TO SAVEPOINT "sp_{savepoint.lower()}"')
            return
        self.pg("ROLLBACK")
        self.trancount = 0
        out.add(T.env_end(T.ENV_ROLLBACK_TRAN, self.descriptor))
        self.descriptor = b"\0" * 8

    def run_tm(self, r: Reader, out: Output) -> None:
        kind = r.u16()
        if kind == 5:                               # TM_BEGIN_XACT
            iso = r.u8()
            if not r.at_end():
                r.b_varchar()                       # transaction name: not kept
            self.begin(out, ISOLATION.get(iso))
        elif kind in (7, 8):                        # TM_COMMIT_XACT / TM_ROLLBACK_XACT
            if not r.at_end():
                r.b_varchar()                       # transaction name: not kept
            flags = r.u8() if not r.at_end() else 0
            try:
                if kind == 7:
                    self.trancount = min(self.trancount, 1)     # the request commits the whole nest
                    self.commit(out)
                else:
                    self.rollback(out)
            except SqlError as e:
                out.add(T.error(e.number, e.state, e.klass, e.text))
                out.done(T.DONE_T, T.DONE_ERROR, 0, 0)
                return
            if flags & 0x01:                        # fBeginXact: start the next one at once
                iso = r.u8() if not r.at_end() else 0
                self.begin(out, ISOLATION.get(iso))
        elif kind == 9:                             # TM_SAVE_XACT
            name = r.b_varchar()
            self.pg(f'SAVEPOINT "sp_{name.lower()}"')
        else:
            out.add(T.error(8521, 1, 16, "Distributed transactions are not supported by the SQL Server double."))
            out.done(T.DONE_T, T.DONE_ERROR, 0, 0)
            return
        out.done(T.DONE_T, 0, 0, 0)

    # --- batches --------------------------------------------------------------------------------------------
    def done_status(self) -> int:
        return T.DONE_INXACT if self.trancount else 0

    def run_batch(self, text: str, params: dict, out: Output, in_proc: bool) -> None:
        """Run T-SQL text; params: '@name' -> (value, SqlType). Statement-level errors go on, others stop."""
        token = T.DONEINPROC_T if in_proc else T.DONE_T
        try:
            stmts = split_batch(text)
            syntax_check(stmts)
        except TranslateError as e:
            out.add(T.error(e.number, e.state, e.klass, e.text))
            out.done(token, T.DONE_ERROR, 0, 0)
            return
        scope = params          # SET @out = ... inside sp_executesql reaches the OUTPUT parameter
        for i, stmt in enumerate(stmts):
            if self.attention.is_set():
                raise Cancelled()
            try:
                self.run_statement(stmt, scope, out, token)
            except SqlError as e:
                self.statement_failed(e, out, token, line=text[:text.find(stmt)].count("\n") + 1 if stmt in text else 1)
                if e.abort:
                    return
            except TranslateError as e:
                self.statement_failed(SqlError(e.number, e.text, e.klass, e.state), out, token)
                return

    def statement_failed(self, e: SqlError, out: Output, token: int, line: int = 1) -> None:
        if self.xact_abort and self.trancount:        # SET XACT_ABORT ON: any error ends the transaction
            e.rollback = e.abort = True
        if e.rollback and self.trancount:
            try:
                self.pg("ROLLBACK")
            except psycopg2.Error:
                pass
            self.trancount = 0
            out.add(T.env_end(T.ENV_ROLLBACK_TRAN, self.descriptor))
            self.descriptor = b"\0" * 8
        out.add(T.error(e.number, e.state, e.klass, e.text, line=line))
        out.done(token, T.DONE_ERROR | self.done_status(), 0, 0)

    def lookup(self, scope):
        def fn(name):
            key = name.upper()
            if key == "@@TRANCOUNT":
                return self.trancount, SqlType("int")
            if key == "@@VERSION":
                return VERSION_TEXT, SqlType("nvarchar", length=300)
            if key == "@@SPID":
                return self.spid, SqlType("smallint")
            if key == "@@ROWCOUNT":
                return self.rowcount, SqlType("int")
            if key in ("@@IDENTITY", "SCOPE_IDENTITY"):
                value = self.identity_value()
                return (decimal.Decimal(value) if value is not None else None,
                        SqlType("decimal", precision=38, scale=0))
            if key == "@@SERVERNAME":
                return T.SERVER_NAME, SqlType("nvarchar", length=128)
            if key == "@@LANGUAGE":
                return "us_english", SqlType("nvarchar", length=128)
            if key in ("@@ERROR",):
                return 0, SqlType("int")
            if key == "@@OPTIONS":
                return 5496, SqlType("int")
            if key == "DB_NAME":
                return self.db, SqlType("nvarchar", length=128)
            if key in ("SUSER_SNAME", "SUSER_NAME", "SYSTEM_USER"):
                return self.user, SqlType("nvarchar", length=128)
            if key in ("USER_NAME", "CURRENT_USER"):
                return self.perms().user()[1], SqlType("nvarchar", length=128)
            for k in (name, name.lower()):
                if k in scope:
                    return scope[k]
            low = {k.lower(): v for k, v in scope.items()}
            if name.lower() in low:
                return low[name.lower()]
            if name.startswith("@@"):
                raise SqlError(137, f"Must declare the scalar variable \"{name}\".", 15, 2)
            raise SqlError(137, f"Must declare the scalar variable \"{name}\".", 15, 2)
        return fn

    def run_statement(self, stmt: str, scope: dict, out: Output, token: int) -> None:
        s = stmt.strip()
        up = re.sub(r"\s+", " ", s).upper()
        # transactions
        m = re.match(r"^BEGIN\s+(DISTRIBUTED\s+)?TRAN(SACTION)?\b", s, re.I)
        if m:
            if m.group(1):
                raise SqlError(8501, "MSDTC on server 'SWITCHYARD-DOUBLE' is unavailable.", 16, 3)
            self.begin(out)
            out.done(token, self.done_status(), 0, 0)
            return
        m = re.match(r"^COMMIT(\s+(TRAN|TRANSACTION|WORK)(\s+\S+)?)?$", s, re.I)
        if m:
            self.commit(out)
            out.done(token, self.done_status(), 0, 0)
            return
        m = re.match(r"^ROLLBACK(?:\s+(?:TRAN|TRANSACTION|WORK)(?:\s+(\S+))?)?$", s, re.I)
        if m:
            sp = m.group(1)
            self.rollback(out, sp if sp and self._is_savepoint(sp) else None)
            out.done(token, self.done_status(), 0, 0)
            return
        m = re.match(r"^SAVE\s+TRAN(?:SACTION)?\s+(\S+)$", s, re.I)
        if m:
            if not self.trancount:
                raise SqlError(628, "Cannot issue SAVE TRANSACTION when there is no active transaction.", 16, 0)
            self.pg(f'SAVEPOINT "sp_{m.group(1).lower()}"')
            self.savepoints = getattr(self, "savepoints", set()) | {m.group(1).lower()}
            out.done(token, self.done_status(), 0, 0)
            return
        m = re.match(r"^IF\s+@@TRANCOUNT\s*>\s*0\s+(ROLLBACK|COMMIT)(\s+TRAN(SACTION)?)?$", s, re.I)
        if m:
            if self.trancount:
                (self.rollback if m.group(1).upper() == "ROLLBACK" else self.commit)(out)
            out.done(token, self.done_status(), 0, 0)
            return
        m = re.match(r"^IF\s+OBJECT_ID\s*\(\s*N?'([^']+)'(?:\s*,\s*N?'\w+')?\s*\)\s+IS\s+NOT\s+NULL\s+DROP\s+TABLE\s+(.+)$", s, re.I)
        if m:
            return self.run_statement(f"DROP TABLE IF EXISTS {m.group(2)}", scope, out, token)
        # SET
        m = re.match(r"^SET\s+(@\w+)\s*=\s*(.+)$", s, re.I | re.S)
        if m:
            name = m.group(1)
            if name.lower() not in {k.lower() for k in scope}:
                raise SqlError(137, f"Must declare the scalar variable \"{name}\".", 15, 2)
            key = next(k for k in scope if k.lower() == name.lower())
            scope[key] = (self.eval_expr(m.group(2), scope, scope[key][1]), scope[key][1])
            return
        m = re.match(r"^SET\s+(\w+)\s+(ON|OFF)$", up)
        if m or up.startswith("SET "):
            self.check_set_options(up)
            if m and m.group(1) == "NOCOUNT":
                self.nocount = m.group(2) == "ON"
            elif m and m.group(1) == "IMPLICIT_TRANSACTIONS":
                self.implicit = m.group(2) == "ON"
            elif m and m.group(1) == "XACT_ABORT":
                self.xact_abort = m.group(2) == "ON"
            elif up.startswith("SET TRANSACTION ISOLATION LEVEL "):
                level = up[len("SET TRANSACTION ISOLATION LEVEL "):].strip()
                self.isolation = {"SNAPSHOT": "REPEATABLE READ"}.get(level, level)   # from the next BEGIN on
            out.done(token, self.done_status(), 0, 0)
            return
        m = re.match(r"^DECLARE\s+(.+)$", s, re.I | re.S)
        if m:
            self.declare(m.group(1), scope)
            return
        m = re.match(r"^USE\s+\[?([^\]\s;]+)\]?$", s, re.I)
        if m:
            self.use(m.group(1), out)
            out.done(token, self.done_status(), 0, 0)
            return
        m = re.match(r"^WAITFOR\s+DELAY\s+N?'(\d+):(\d+):(\d+(?:\.\d+)?)'$", s, re.I)
        if m:
            secs = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
            self.pg_statement(f"SELECT pg_sleep({secs})", discard=True)
            out.done(token, self.done_status(), 0, 0)
            return
        m = re.match(r"^PRINT\s+(.+)$", s, re.I | re.S)
        if m:
            out.add(T.info(0, str(self.eval_expr(m.group(1), scope, None)), 1, 0))
            out.done(token, self.done_status(), 0, 0)
            return
        m = re.match(r"^(RAISERROR\s*\(|THROW\s+)(.+?)\)?$", s, re.I | re.S)
        if m:
            args = self.parse_args(m.group(2), scope)
            vals = [v for _n, v, _o in args]
            if m.group(1).upper().startswith("THROW"):
                raise SqlError(int(vals[0]), str(vals[1]), 16, int(vals[2]))
            klass = int(vals[1]) if len(vals) > 1 else 16
            if klass <= 10:
                out.add(T.info(50000, str(vals[0]), int(vals[2]) if len(vals) > 2 else 1, klass))
                out.done(token, self.done_status(), 0, 0)
                return
            raise SqlError(50000, str(vals[0]), klass, int(vals[2]) if len(vals) > 2 else 1, abort=False)
        m = re.match(r"^EXEC(?:UTE)?\s+(?:@\w+\s*=\s*)?([\w.\[\]]+)\s*(.*)$", s, re.I | re.S)
        if m:
            proc = re.sub(r"[\[\]]", "", m.group(1)).lower()
            args = self.parse_args(m.group(2), scope) if m.group(2).strip() else []
            self.run_proc(proc, [(n, v, None, o) for n, v, o in args], out, in_batch=True, scope=scope)
            return
        m = re.match(r"^CREATE\s+DATABASE\s+\[?(\w+)\]?\s*$", s, re.I)
        if m:
            self.create_database(m.group(1))
            out.done(token, self.done_status(), 0, 0)
            return
        m = re.match(r"^DROP\s+DATABASE\s+(IF\s+EXISTS\s+)?\[?(\w+)\]?\s*$", s, re.I)
        if m:
            self.drop_database(m.group(2), bool(m.group(1)))
            out.done(token, self.done_status(), 0, 0)
            return
        m = re.match(r"^CREATE\s+LOGIN\s+\[?([\w.]+)\]?\s+WITH\s+PASSWORD\s*=\s*N?'((?:[^']|'')*)'(.*)$", s, re.I | re.S)
        if m:
            self.create_login(m.group(1), m.group(2).replace("''", "'"), m.group(3))
            out.done(token, self.done_status(), 0, 0)
            return
        m = re.match(r"^(ALTER\s+LOGIN|DROP\s+LOGIN)\s+\[?([\w.]+)\]?(.*)$", s, re.I | re.S)
        if m:
            self.alter_login(m.group(1).upper().split()[0], m.group(2), m.group(3))
            out.done(token, self.done_status(), 0, 0)
            return
        m = re.match(r"^ALTER\s+SERVER\s+ROLE\s+\[?sysadmin\]?\s+(ADD|DROP)\s+MEMBER\s+\[?([\w.]+)\]?$", s, re.I)
        if m:
            self.server_role(m.group(2), m.group(1).upper() == "ADD")
            out.done(token, self.done_status(), 0, 0)
            return
        st = PM.statement(s)
        if st is not None:
            self.permission_statement(*st)
            out.done(token, self.done_status(), 0, 0)
            return
        m = re.match(r"^ALTER\s+DATABASE\s+\[?(\w+)\]?\s+SET\s+(READ_ONLY|READ_WRITE)(?:\s+WITH\s+(ROLLBACK\s+IMMEDIATE|NO_WAIT))?$", s, re.I)
        if m:
            self.set_read_only(m.group(1), m.group(2).upper() == "READ_ONLY", (m.group(3) or "").upper())
            out.done(token, self.done_status(), 0, 0)
            return
        if re.match(r"^ALTER\s+DATABASE\b", s, re.I):
            out.done(token, self.done_status(), 0, 0)       # other database options: accepted, no effect
            return
        if re.search(r"\bsys\s*\.\s*databases\b", s, re.I):
            self.refresh_sys_databases()
            s = re.sub(r"\bsys\s*\.\s*databases\b", "sy_sys_databases", s, flags=re.I)
        if re.search(r"\bsys\s*\.\s*dm_exec_connections\b", s, re.I):
            self.refresh_dm_exec_connections()
            s = re.sub(r"\bsys\s*\.\s*dm_exec_connections\b", "sy_dm_exec_connections", s, flags=re.I)
        if re.search(r"\bsys\s*\.\s*dm_exec_sessions\b", s, re.I):
            self.refresh_dm_exec_sessions()
            s = re.sub(r"\bsys\s*\.\s*dm_exec_sessions\b", "sy_dm_exec_sessions", s, flags=re.I)
        if re.match(r"^SET\s+IDENTITY_INSERT\b", s, re.I):
            out.done(token, self.done_status(), 0, 0)
            return
        self.run_sql(s, scope, out, token)

    # SQL Server's SET options (docs: SET statements); anything else is error 195, as SQL Server answers
    SET_OPTIONS = {
        "ANSI_DEFAULTS", "ANSI_NULL_DFLT_OFF", "ANSI_NULL_DFLT_ON", "ANSI_NULLS", "ANSI_PADDING", "ANSI_WARNINGS",
        "ARITHABORT", "ARITHIGNORE", "CONCAT_NULL_YIELDS_NULL", "CONTEXT_INFO", "CURSOR_CLOSE_ON_COMMIT",
        "DATEFIRST", "DATEFORMAT", "DEADLOCK_PRIORITY", "FIPS_FLAGGER", "FMTONLY", "FORCEPLAN", "IDENTITY_INSERT",
        "IMPLICIT_TRANSACTIONS", "LANGUAGE", "LOCK_TIMEOUT", "NOCOUNT", "NOEXEC", "NUMERIC_ROUNDABORT", "OFFSETS",
        "PARSEONLY", "QUERY_GOVERNOR_COST_LIMIT", "QUOTED_IDENTIFIER", "REMOTE_PROC_TRANSACTIONS", "ROWCOUNT",
        "SHOWPLAN_ALL", "SHOWPLAN_TEXT", "SHOWPLAN_XML", "STATISTICS", "TEXTSIZE", "TRANSACTION", "XACT_ABORT",
        "NO_BROWSETABLE", "RESULT_SET_CACHING"}

    def check_set_options(self, up: str) -> None:
        """SET A [, B ...] ON|OFF or SET A value: every option name must be one SQL Server knows (error 195)."""
        body = up[3:].strip()
        m = re.match(r"^([\w\s,]+?)\s+(ON|OFF)$", body)
        names = [n.strip() for n in m.group(1).split(",")] if m and "," in m.group(1) else [body.split()[0] if body else ""]
        for n in names:
            if n not in self.SET_OPTIONS:
                raise SqlError(195, f"'{n}' is not a recognized SET option.", 15, 1)

    # --- users, roles, permissions (perms.py) ----------------------------------------------------------------
    def is_sysadmin(self) -> bool:
        u = self.user.lower()
        return u == self.server.admin_user.lower() or u in self.server.state.get("sysadmin", [])

    def perm_query(self, sql: str, args=()) -> list:
        c = self.conn.cursor()          # the session's connection and transaction, not its result cursor
        try:
            c.execute(sql, args)
            return c.fetchall() if c.description else []
        except psycopg2.Error as e:
            raise pg_error(e)
        finally:
            c.close()

    def perms(self) -> PM.Permissions:
        return PM.Permissions(self.perm_query, self.user, self.is_sysadmin(), self.db)

    def access_denied(self, conn, db: str) -> PM.PermError | None:
        """Whether this session's login may enter db through conn (its own user, or guest where guest holds
        CONNECT): None, or the 916 PermError SQL Server answers a USE with."""
        def query(sql, args=()):
            c = conn.cursor()
            try:
                c.execute(sql, args)
                return c.fetchall() if c.description else []
            finally:
                c.close()
        try:
            PM.Permissions(query, self.user, self.is_sysadmin(), db).user()
        except PM.PermError as e:
            return e
        return None

    def permission_statement(self, kind: str, m) -> None:
        p = self.perms()
        try:
            if kind == "create_user":
                if not p.may_administer():
                    raise PM.PermError(15247, "User does not have permission to perform this action.", 16, 1)
                stmts = p.create_user(m.group(1), None if m.group(3) else (m.group(2) or m.group(1)),
                                      self.server.state["logins"])
            elif kind == "create_role":
                stmts = p.create_role(m.group(1))
            elif kind == "create_approle":
                stmts = p.create_approle(m.group(1))
            elif kind == "drop":
                stmts = p.drop_principal(m.group(2), bool(m.group(1)))
            elif kind == "alter_role":
                stmts = p.role_member(m.group(1), m.group(3), m.group(2).upper() == "ADD")
            elif kind == "addrolemember":
                stmts = p.role_member(m.group(2), m.group(3), m.group(1).lower() == "add")
            elif kind == "permission":
                stmts = p.permission_statement(m.string)
            else:
                stmts = []                                  # ALTER USER: accepted, no effect
        except PM.PermError as e:
            raise SqlError(e.number, e.text, e.klass, e.state, abort=False)
        for sql, args in stmts:
            self.pg_statement(self.cur.mogrify(sql, args).decode(), discard=True)

    def check_write(self, tr, stmt: str) -> None:
        perms = {"insert": ["INSERT"], "update": ["UPDATE"], "delete": ["DELETE"]}.get(tr.kind)
        if tr.kind == "merge":
            perms = [w for w in ("INSERT", "UPDATE", "DELETE") if re.search(rf"\bTHEN\s+{w}\b", stmt, re.I)]
        try:
            self.perms().check_write(self.db, tr.written[0], tr.written[1], perms or [])
        except PM.PermError as e:
            raise SqlError(e.number, e.text, e.klass, e.state, abort=False)

    def check_read(self, tr) -> None:
        try:
            p = self.perms()
            for schema, table in sorted(tr.read):
                p.check_read(self.db, schema, table)
        except PM.PermError as e:
            raise SqlError(e.number, e.text, e.klass, e.state, abort=False)

    def server_role(self, login: str, add: bool) -> None:
        if not self.is_sysadmin():
            raise SqlError(15247, "User does not have permission to perform this action.", 16, 1, abort=False)
        if login.lower() not in self.server.state["logins"]:
            raise SqlError(15151, f"Cannot alter the server role 'sysadmin', because it does not exist or you do "
                                  "not have permission.", 16, 1, abort=False)
        with self.server.lock:
            admins = set(self.server.state.setdefault("sysadmin", []))
            (admins.add if add else admins.discard)(login.lower())
            self.server.state["sysadmin"] = sorted(admins)
            self.server.save_state()

    def set_read_only(self, name: str, read_only: bool, option: str) -> None:
        """ALTER DATABASE x SET READ_ONLY | READ_WRITE [WITH ROLLBACK IMMEDIATE | NO_WAIT]: other sessions of x
        with an open transaction are disconnected with ROLLBACK IMMEDIATE, or the change fails (5070)."""
        key = name.lower()
        if key not in self.server.state["databases"]:
            raise SqlError(911, f"Database '{name}' does not exist. Make sure that the name is entered correctly.", 16, 1)
        with self.server.lock:
            others = [x for x in self.server.sessions.values()
                      if x is not self and x.db.lower() == key and x.trancount > 0]
        if others and option != "ROLLBACK IMMEDIATE":
            raise SqlError(5070, f"Database state cannot be changed while other users are using the database '{name}'", 16, 2)
        for x in others:
            x.kill()
        with self.server.lock:
            ro = set(self.server.state.setdefault("read_only", []))
            (ro.add if read_only else ro.discard)(key)
            self.server.state["read_only"] = sorted(ro)
            self.server.save_state()

    def kill(self) -> None:
        """End this session from another one (its client sees the connection drop, its transaction rolls back)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if self.conn is not None:
            try:
                self.conn.cancel()
            except Exception:  # noqa: BLE001
                pass

    def refresh_sys_databases(self) -> None:
        """sys.databases from the double's own list (a temp table, like sys.dm_exec_connections)."""
        self.pg_statement("CREATE TEMP TABLE IF NOT EXISTS sy_sys_databases (name varchar(128), database_id integer, "
                          "create_date timestamp(3), compatibility_level smallint, collation_name varchar(128), "
                          "state_desc varchar(60), is_read_only boolean, recovery_model_desc varchar(60), "
                          "snapshot_isolation_state smallint, is_read_committed_snapshot_on boolean, "
                          "is_cdc_enabled boolean)", discard=True)
        self.pg_statement("DELETE FROM sy_sys_databases", discard=True)
        st = self.server.state
        for i, key in enumerate(st["databases"]):
            self.pg_statement(self.cur.mogrify(
                "INSERT INTO sy_sys_databases VALUES (%s, %s, now(), 160, 'SQL_Latin1_General_CP1_CI_AS', 'ONLINE', "
                "%s, 'FULL', 1, true, %s)",
                (self.server.display_name(key), i + 1, key in st.get("read_only", []),
                 key in st["cdc"])).decode(), discard=True)

    def refresh_dm_exec_connections(self) -> None:
        """sys.dm_exec_connections as a temp table of the live sessions (encrypt_option tells TLS use)."""
        self.pg_statement("CREATE TEMP TABLE IF NOT EXISTS sy_dm_exec_connections (session_id integer, "
                          "connect_time timestamp(3), net_transport varchar(40), protocol_type varchar(40), "
                          "protocol_version integer, encrypt_option varchar(40), auth_scheme varchar(40), "
                          "net_packet_size integer, client_net_address varchar(48), client_tcp_port integer, "
                          "local_net_address varchar(48), local_tcp_port integer)", discard=True)
        self.pg_statement("DELETE FROM sy_dm_exec_connections", discard=True)
        with self.server.lock:
            sessions = list(self.server.sessions.values())
        for x in sessions:
            try:
                peer = x.sock.getpeername()
            except OSError:
                continue
            self.pg_statement(self.cur.mogrify(
                "INSERT INTO sy_dm_exec_connections VALUES (%s, %s, 'TCP', 'TSQL', 1946157060, %s, 'SQL', %s, %s, "
                "%s, %s, %s)", (x.spid, x.connect_time, "TRUE" if x.encrypted else "FALSE", x.t.packet_size,
                                peer[0], peer[1], self.server.host, self.server.port)).decode(), discard=True)

    def refresh_dm_exec_sessions(self) -> None:
        """sys.dm_exec_sessions (session_id, login_name, program_name, status, is_user_process) as a temp table
        of the live logged-in sessions; database_name: the double's addition (SQL Server has database_id)."""
        self.pg_statement("CREATE TEMP TABLE IF NOT EXISTS sy_dm_exec_sessions (session_id integer, "
                          "login_name varchar(128), program_name varchar(128), status varchar(30), "
                          "is_user_process integer, database_name varchar(128))", discard=True)
        self.pg_statement("DELETE FROM sy_dm_exec_sessions", discard=True)
        with self.server.lock:
            sessions = list(self.server.sessions.values())
        for x in sessions:
            if not x.user:
                continue
            self.pg_statement(self.cur.mogrify(
                "INSERT INTO sy_dm_exec_sessions VALUES (%s, %s, %s, %s, 1, %s)",
                (x.spid, x.user, getattr(x, "appname", "") or "", "running" if x is self else "sleeping",
                 x.db)).decode(), discard=True)

    def _is_savepoint(self, name: str) -> bool:
        return name.lower() in getattr(self, "savepoints", set())

    # --- declared variables, EXEC arguments ---------------------------------------------------------------
    def declare(self, text: str, scope: dict) -> None:
        for part in _split_top(text, ","):
            m = re.match(r"^\s*(@\w+)\s+(?:AS\s+)?([\w]+(?:\s*\(\s*(?:max|\d+)\s*(?:,\s*\d+\s*)?\))?)\s*(?:=\s*(.+))?$",
                         part, re.I | re.S)
            if not m:
                raise syntax_error(part.strip()[:20])
            t = SqlType.parse(m.group(2))
            value = self.eval_expr(m.group(3), scope, t) if m.group(3) else None
            scope[m.group(1)] = (value, t)

    def eval_expr(self, expr: str, scope: dict, t: SqlType | None):
        binder = Binder(self.lookup(scope))
        tr = translate(f"SELECT {expr}", binder)
        self.pg_statement(tr.sql)
        row = self.cur.fetchone()
        v = row[0] if row else None
        if isinstance(v, memoryview):
            v = bytes(v)
        if t is not None and v is not None:
            v = _coerce(v, t)
        return v

    def parse_args(self, text: str, scope: dict):
        """EXEC / RAISERROR arguments: [(name or None, value, is_output)]."""
        args = []
        for part in _split_top(text, ","):
            p = part.strip()
            if not p:
                continue
            name = None
            m = re.match(r"^(@\w+)\s*=\s*(.+)$", p, re.S)
            if m:
                name, p = m.group(1), m.group(2).strip()
            out_flag = False
            m = re.match(r"^(.+?)\s+OUT(PUT)?$", p, re.I | re.S)
            if m:
                p, out_flag = m.group(1).strip(), True
            if re.match(r"^@\w+$", p):
                value = self.lookup(scope)(p)[0]
            elif re.match(r"^0x[0-9a-f]*$", p, re.I):
                value = bytes.fromhex(p[2:])
            elif re.match(r"^N?'(?:[^']|'')*'$", p, re.S):
                value = p[p.index("'") + 1:-1].replace("''", "'")
            elif p.upper() == "NULL":
                value = None
            elif re.match(r"^[+-]?\d+$", p):
                value = int(p)
            elif re.match(r"^[+-]?\d*\.\d+$", p):
                value = decimal.Decimal(p)
            else:
                value = self.eval_expr(p, scope, None)
            args.append((name, value, out_flag))
        return args

    # --- databases and logins -----------------------------------------------------------------------------
    def create_database(self, name: str) -> None:
        dbs = self.server.state["databases"]
        if name.lower() in dbs:
            raise SqlError(1801, f"Database '{name}' already exists. Choose a different database name.", 16, 3)
        pgname = "db_" + re.sub(r"\W", "_", name.lower())
        c = psycopg2.connect(self.server.store.dsn("postgres"))
        c.autocommit = True
        try:
            c.cursor().execute(f'CREATE DATABASE "{pgname}" TEMPLATE {TEMPLATE_DB}')
        except psycopg2.Error as e:
            raise pg_error(e)
        finally:
            c.close()
        with self.server.lock:
            dbs[name.lower()] = pgname
            self.server.state.setdefault("databases_display", {})[name.lower()] = name
            self.server.save_state()

    def drop_database(self, name: str, if_exists: bool) -> None:
        dbs = self.server.state["databases"]
        if name.lower() not in dbs:
            if if_exists:
                return
            raise SqlError(3701, f"Cannot drop the database '{name}', because it does not exist or you do not have permission.", 11, 1)
        if name.lower() == self.db.lower():
            raise SqlError(3702, f"Cannot drop database \"{name}\" because it is currently in use.", 16, 4)
        pgname = dbs[name.lower()]
        c = psycopg2.connect(self.server.store.dsn("postgres"))
        c.autocommit = True
        try:
            c.cursor().execute(f'DROP DATABASE "{pgname}" WITH (FORCE)')
        finally:
            c.close()
        with self.server.lock:
            dbs.pop(name.lower(), None)
            if name.lower() in self.server.state["cdc"]:
                self.server.state["cdc"].remove(name.lower())
            self.server.save_state()

    def create_login(self, name: str, password: str, rest: str) -> None:
        logins = self.server.state["logins"]
        if name.lower() in logins:
            raise SqlError(15025, f"The server principal '{name}' already exists.", 16, 1)
        m = re.search(r"DEFAULT_DATABASE\s*=\s*\[?(\w+)\]?", rest, re.I)
        with self.server.lock:
            logins[name.lower()] = {"name": name, "password": password, "default_db": m.group(1) if m else "master"}
            self.server.save_state()

    def alter_login(self, verb: str, name: str, rest: str) -> None:
        logins = self.server.state["logins"]
        if name.lower() not in logins:
            raise SqlError(15151, f"Cannot alter the login '{name}', because it does not exist or you do not have permission.", 16, 1)
        with self.server.lock:
            if verb == "DROP":
                logins.pop(name.lower())
            else:
                m = re.search(r"PASSWORD\s*=\s*N?'((?:[^']|'')*)'", rest, re.I)
                if m:
                    logins[name.lower()]["password"] = m.group(1).replace("''", "'")
            self.server.save_state()

    def use(self, name: str, out: Output | None) -> None:
        if self.trancount:
            raise SqlError(226, "USE statement not allowed within multi-statement transaction.", 16, 1)
        old = self.db
        conn = self.server.pg_connect(name)
        conn.autocommit = True
        denied = self.access_denied(conn, self.server.display_name(name))
        if denied is not None:
            conn.close()
            raise SqlError(denied.number, denied.text, denied.klass, denied.state)
        self.conn.close()
        self.conn, self.cur = conn, conn.cursor()
        self.db = self.server.display_name(name)
        if out is not None:
            out.add(T.envchange_str(T.ENV_DATABASE, self.db, old))
            out.add(T.info(5701, f"Changed database context to '{self.db}'.", 1, 0))

    # --- plain SQL through PostgreSQL ------------------------------------------------------------------------
    def pg_statement(self, sql: str, discard: bool = False) -> None:
        """Run one PostgreSQL statement; inside a transaction under a savepoint, so that a failing statement
        leaves the transaction usable, as SQL Server's statement-level errors do."""
        inside = self.trancount > 0
        try:
            if inside:
                self.pg("SAVEPOINT sy_stmt")
            self.pg(sql)
            # the statement's own count: the RELEASE below would overwrite cur.rowcount (DML inside a
            # transaction then reported 0 rows in DONE and @@ROWCOUNT, unlike SQL Server)
            self.pg_rowcount = self.cur.rowcount
            if inside:
                if discard or self.cur.description is None:
                    self.pg("RELEASE SAVEPOINT sy_stmt")
        except psycopg2.Error as e:
            err = pg_error(e)
            if inside:
                try:
                    self.pg("ROLLBACK TO SAVEPOINT sy_stmt")
                except psycopg2.Error:
                    pass
            raise err
        except Cancelled:
            raise

    def run_sql(self, stmt: str, scope: dict, out: Output, token: int) -> None:
        binder = Binder(self.lookup(scope))
        tr = translate(stmt, binder)
        if tr.kind in ("insert", "update", "delete", "merge", "ddl") and \
                self.db.lower() in self.server.state.get("read_only", []):
            raise SqlError(3906, f'Failed to update database "{self.db}" because the database is read-only.', 16, 1,
                           abort=False)
        if tr.written is not None and not self.is_sysadmin():
            self.check_write(tr, stmt)
        if tr.read and not self.is_sysadmin():
            self.check_read(tr)
        if self.implicit and self.trancount == 0 and tr.kind in ("select", "insert", "update", "delete", "merge", "ddl"):
            self.begin(out)
        self.pg_statement(tr.sql)
        rows, desc = None, self.cur.description
        if desc is not None:
            rows = self.cur.fetchall()
            if self.trancount:
                self.pg("RELEASE SAVEPOINT sy_stmt")
        count = self.pg_rowcount if self.pg_rowcount >= 0 else 0
        if rows is not None:
            count = len(rows)
        if tr.create:
            self.comment_columns(*tr.create)
        if tr.kind == "ddl":
            self.server.catalog.forget()
        if rows is not None:
            cols = self.describe(tr, desc)
            out.add(T.colmetadata(cols))
            for r in rows:
                out.add(T.row(cols, [_to_wire(v, c.type) for v, c in zip(r, cols)]))
        if tr.kind == "insert" and tr.target:
            self.last_insert_table = tr.target
        self.rowcount = count
        curcmd = {"select": T.CMD_SELECT, "insert": T.CMD_INSERT, "update": T.CMD_UPDATE,
                  "delete": T.CMD_DELETE, "merge": T.CMD_UPDATE}.get(tr.kind, 0)
        counted = rows is not None or (tr.kind in ("insert", "update", "delete", "merge") and not self.nocount)
        out.done(token, self.done_status() | (T.DONE_COUNT if counted else 0), curcmd, count if counted else 0)

    def identity_value(self):
        """SCOPE_IDENTITY(): the identity value the session's last INSERT generated (its table's sequence)."""
        target = getattr(self, "last_insert_table", None)
        if not target:
            return None
        try:
            self.pg_statement(self.cur.mogrify(
                "SELECT a.attname FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attidentity <> ''",
                (f'"{target[0]}"."{target[1]}"',)).decode())
            row = self.cur.fetchone()
            if self.trancount:
                self.pg("RELEASE SAVEPOINT sy_stmt")
            if not row:
                return None
            self.pg_statement(self.cur.mogrify("SELECT currval(pg_get_serial_sequence(%s, %s))",
                                               (f'"{target[0]}"."{target[1]}"', row[0])).decode())
            value = self.cur.fetchone()[0]
            if self.trancount:
                self.pg("RELEASE SAVEPOINT sy_stmt")
            return value
        except SqlError:
            return None

    def comment_columns(self, schema: str, table: str, cols) -> None:
        for name, t, ident in cols:
            self.pg(f'COMMENT ON COLUMN "{schema}"."{table}"."{name.lower()}" IS %s', (f"{t.sql()}|{name}",))

    def describe(self, tr, desc) -> list[T.Column]:
        cols = []
        names = tr.names or []
        star = [i for i, n in enumerate(names) if n == "*"]
        for i, d in enumerate(desc):
            t, name = None, d.name
            if d.table_oid and d.table_column:
                known = self.server.catalog.columns(self.cur, self.db, d.table_oid).get(d.table_column)
                if known:
                    t, name = known[0], (known[1] if (star or name.lower() == known[1].lower()) else name)
            idx = i if not star else None
            if idx is not None and idx in tr.hints:
                t = tr.hints[idx]
            if t is None:
                t = self.type_of(d, [])
            if name.startswith(NONAME):
                name = ""
            if idx is not None and idx < len(names) and names[idx] not in ("*", "") and not name == "":
                name = names[idx] if names[idx].lower() == name.lower() else name
            cols.append(T.Column(name, t))
        return cols

    def type_of(self, d, rows) -> SqlType:
        oid = d.type_code
        if oid in OID_TYPES:
            return SqlType.parse(OID_TYPES[oid])
        if oid == 1700:
            if d.precision and d.precision > 0 and d.precision <= 38:
                return SqlType("decimal", precision=d.precision, scale=max(d.scale or 0, 0))
            return SqlType("decimal", precision=38, scale=10)
        if oid in STRING_OIDS:
            n = d.internal_size if d.internal_size and 0 < d.internal_size <= 4000 else -1
            return SqlType("nvarchar", length=n if n > 0 else -1)
        return SqlType("nvarchar", length=-1)

    # --- RPC ------------------------------------------------------------------------------------------------
    def run_rpcs(self, r: Reader, out: Output) -> None:
        while not r.at_end():
            n = r.u16()
            if n == 0xFFFF:
                pid = r.u16()
                proc = PROC_IDS.get(pid, f"proc#{pid}")
            else:
                proc = r.take(2 * n).decode("utf-16-le")
            r.u16()                                 # option flags (WITH RECOMPILE, NO_METADATA): ignored
            params = []
            while not r.at_end() and r.data[r.pos] not in (0xFF, 0x80, 0xFE):
                name = r.b_varchar()
                status = r.u8()
                w = read_type_info(r)
                value = read_value(r, w)
                params.append((name or None, value, w.sqltype, bool(status & 0x01)))
            self.run_proc(re.sub(r"[\[\]]", "", proc).lower(), params, out, in_batch=False)
            if not r.at_end():
                r.u8()       # batch separator between RPCs
            if self.attention.is_set():
                raise Cancelled()

    def run_proc(self, proc: str, params, out: Output, in_batch: bool, scope: dict | None = None) -> None:
        """EXEC of a system procedure (RPC, or EXEC in a batch): params [(name, value, SqlType, output)]."""
        name = proc.split(".")[-1]
        retvals: list[tuple[int, str, SqlType, object]] = []
        status = 0
        err = None
        done_token = T.DONEPROC_T if not in_batch else T.DONE_T
        try:
            if name == "sp_executesql":
                stmt = params[0][1] if params else ""
                decl = params[1][1] if len(params) > 1 else ""
                bound, outputs = self.bind_params(decl or "", params[2:], first_ordinal=2)
                self.run_batch(stmt or "", bound, out, in_proc=True)
                retvals = [(i, n, t, bound[n][0]) for i, n, t in outputs]
            elif name in ("sp_prepare", "sp_prepexec"):
                decl, stmt = params[1][1] or "", params[2][1] or ""
                handle = self.next_handle
                self.next_handle += 1
                self.prepared[handle] = (decl, stmt)
                if name == "sp_prepexec":
                    out.add(T.returnvalue(0, params[0][0] or "", SqlType("int"), handle))
                    bound, outputs = self.bind_params(decl, params[3:], first_ordinal=3)
                    self.run_batch(stmt, bound, out, in_proc=True)
                    retvals = [(i, n, t, bound[n][0]) for i, n, t in outputs]
                else:
                    retvals = [(0, params[0][0] or "", SqlType("int"), handle)]
            elif name == "sp_execute":
                handle = params[0][1]
                if handle not in self.prepared:
                    raise SqlError(8179, f"Could not find prepared statement with handle {handle}.", 16, 4)
                decl, stmt = self.prepared[handle]
                bound, outputs = self.bind_params(decl, params[1:], first_ordinal=1)
                self.run_batch(stmt, bound, out, in_proc=True)
                retvals = [(i, n, t, bound[n][0]) for i, n, t in outputs]
            elif name == "sp_unprepare":
                self.prepared.pop(params[0][1], None)
            elif name in ("sp_cdc_enable_db", "sp_cdc_disable_db", "sp_cdc_enable_table", "sp_cdc_disable_table",
                          "sp_cdc_cleanup_change_table", "sp_cdc_start_job", "sp_cdc_stop_job", "sp_cdc_help_change_data_capture",
                          "sp_cdc_scan"):
                self.run_cdc_proc(name, params, out)
            elif name == "sp_reset_connection":
                self.reset(False, out)
            else:
                raise SqlError(2812, f"Could not find stored procedure '{proc}'.", 16, 62)
        except SqlError as e:
            err = e
        except TranslateError as e:
            err = SqlError(e.number, e.text, e.klass, e.state)
        except (TypeError_, IndexError) as e:
            err = SqlError(8144, f"Procedure or function {name} has too many arguments specified or bad arguments ({e}).", 16, 2)
        if err is not None:
            out.add(T.error(err.number, err.state, err.klass, err.text, proc=name))
            status = -6
        if in_batch:
            out.done(done_token, self.done_status() | (T.DONE_ERROR if err else 0), 0, 0)
            return
        out.add(T.returnstatus(status))
        for ordinal, pname, t, v in retvals:
            out.add(T.returnvalue(ordinal, pname, t, _to_wire(v, t)))
        out.done(done_token, self.done_status() | (T.DONE_ERROR if err else 0), 0, 0)

    def bind_params(self, decl: str, values, first_ordinal: int):
        """sp_executesql / sp_execute parameters: declared '@a int, @b nvarchar(10) OUTPUT', values by name or
        position (the first value is RPC parameter number first_ordinal). Returns (scope, [(ordinal, name,
        SqlType) of outputs])."""
        declared = []
        for part in _split_top(decl, ","):
            m = re.match(r"^\s*(@\w+)\s+(?:AS\s+)?(.+?)(\s+OUT(?:PUT)?)?\s*$", part, re.I | re.S)
            if m:
                declared.append((m.group(1), SqlType.parse(m.group(2)), bool(m.group(3))))
        scope = {n: (None, t) for n, t, _o in declared}
        outputs = []
        for pos, (name, value, wire_t, is_out) in enumerate(values):
            if name:
                match = next((d for d in declared if d[0].lower() == name.lower()), None)
            else:
                match = declared[pos] if pos < len(declared) else None
            if match is None:
                raise SqlError(8145, f"{name or '@' + str(pos)} is not a parameter for procedure sp_executesql.", 16, 1)
            n, t, _o = match
            scope[n] = (_coerce(value, t) if value is not None else None, t)
            if is_out:
                outputs.append((pos + first_ordinal, name or n, t))
        return scope, outputs

    def run_cdc_proc(self, name: str, params, out: Output) -> None:
        args = {}
        for i, (n, v, _t, _o) in enumerate(params):
            args[(n or f"#{i}").lower().lstrip("@")] = v
        positional = [v for (_n, v, _t, _o) in params]
        try:
            if name == "sp_cdc_enable_db":
                self.pg_statement("SELECT 1")
                cdc.enable_db(self.cur)
                with self.server.lock:
                    if self.db.lower() not in self.server.state["cdc"]:
                        self.server.state["cdc"].append(self.db.lower())
                        self.server.save_state()
            elif name == "sp_cdc_enable_table":
                schema = (args.get("source_schema") or (positional[0] if positional else "dbo")).lower()
                table = (args.get("source_name") or positional[1]).lower()
                cdc.enable_table(self.cur, self.db, schema, table, args.get("capture_instance"), args.get("role_name"),
                                 int(args.get("supports_net_changes") or 0))
                self.server.catalog.forget()
            elif name == "sp_cdc_disable_table":
                cdc.disable_table(self.cur, (args.get("source_schema") or "dbo").lower(),
                                  (args.get("source_name") or "").lower(), args.get("capture_instance"))
            elif name == "sp_cdc_cleanup_change_table":
                cdc.cleanup(self.cur, args.get("capture_instance") or positional[0],
                            args.get("low_water_mark"))
            elif name == "sp_cdc_scan":
                # one log scan now, up to the last commit (SQL Server's sp_cdc_scan reads the log to its end;
                # there it fails while the Agent's capture job scans the same database: README.md)
                conn = self.server.pg_connect(self.db)
                try:
                    with conn, conn.cursor() as cur:
                        cdc.capture_once(cur, 0.0)
                finally:
                    conn.close()
            elif name == "sp_cdc_disable_db":
                with self.server.lock:
                    if self.db.lower() in self.server.state["cdc"]:
                        self.server.state["cdc"].remove(self.db.lower())
                        self.server.save_state()
                self.pg("DROP SCHEMA IF EXISTS cdc CASCADE")
                self.pg("UPDATE sy_cdc.state SET enabled = false, max_lsn = NULL")
                self.pg("DELETE FROM sy_cdc.pending")
        except cdc.CdcError as e:
            raise SqlError(e.number, e.text, 16, 1)
        except psycopg2.Error as e:
            raise pg_error(e)


def _split_top(text: str, sep: str) -> list[str]:
    """Split at top-level sep, outside quotes and parentheses."""
    out, cur, depth, q = [], [], 0, None
    for ch in text or "":
        if q:
            cur.append(ch)
            if ch == q:
                q = None
            continue
        if ch in "'[\"":
            q = "]" if ch == "[" else ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur))
    return out


def _coerce(v, t: SqlType):
    """A parameter value as SQL Server would convert it to the declared type t."""
    if v is None:
        return None
    n = t.name
    try:
        if n in ("tinyint", "smallint", "int", "bigint"):
            return int(v)
        if n == "bit":
            return bool(int(v)) if not isinstance(v, str) else v.strip() not in ("0", "false", "False")
        if n == "decimal":
            with decimal.localcontext(decimal.Context(prec=80)):
                return decimal.Decimal(str(v)).quantize(decimal.Decimal(1).scaleb(-t.scale))
        if n in ("float", "real"):
            return float(v)
        if n in ("varchar", "nvarchar", "char", "nchar"):
            if isinstance(v, (bytes, bytearray)):
                return bytes(v).decode("utf-16-le" if n[0] == "n" else "cp1252", "replace")
            if isinstance(v, dt.datetime):
                return v.isoformat(sep=" ")
            return str(v)
        if n in ("varbinary", "binary"):
            return bytes(v) if not isinstance(v, str) else v.encode("utf-16-le")
        if n == "uniqueidentifier":
            return v if isinstance(v, uuid.UUID) else uuid.UUID(str(v))
        if n in ("datetime2", "datetime", "smalldatetime"):
            return v if isinstance(v, dt.datetime) else dt.datetime.fromisoformat(str(v))
        if n == "date":
            return v if isinstance(v, dt.date) and not isinstance(v, dt.datetime) else (
                v.date() if isinstance(v, dt.datetime) else dt.date.fromisoformat(str(v)))
        if n == "datetimeoffset":
            if isinstance(v, dt.datetime):
                return v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)
            return _parse_dto(str(v))
    except (ValueError, decimal.InvalidOperation) as e:
        raise SqlError(8114, f"Error converting data type to {t.sql()}: {e}", 16, 5)
    return v


def _parse_dto(s: str) -> dt.datetime:
    s = s.strip()
    m = re.match(r"^(.*?)(?:\s*([+-]\d{2}):?(\d{2})|Z)?$", s)
    base = m.group(1).strip()
    if "." in base:
        head, frac = base.split(".", 1)
        base = head + "." + (frac + "000000")[:6]
    d = dt.datetime.fromisoformat(base)
    if m.group(2):
        sign = -1 if m.group(2).startswith("-") else 1
        off = dt.timedelta(hours=abs(int(m.group(2))), minutes=int(m.group(3)))
        return d.replace(tzinfo=dt.timezone(sign * off))
    return d.replace(tzinfo=dt.timezone.utc)


def _to_wire(v, t: SqlType):
    """A PostgreSQL value as the Python value SqlType.encode expects."""
    if v is None:
        return None
    if isinstance(v, memoryview):
        v = bytes(v)
    if t.name == "datetimeoffset" and isinstance(v, str):
        return _parse_dto(v)
    if t.name in ("varchar", "nvarchar", "char", "nchar") and not isinstance(v, str):
        if isinstance(v, dt.datetime) and v.tzinfo:
            return format_dto(v)
        return str(v)
    if t.name == "bit":
        return bool(v)
    return v
