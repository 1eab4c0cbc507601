"""Conformance of the SQL Server double (tests/doubles/, test code only) with independent real TDS clients:
FreeTDS `tsql` (TDSVER=7.4), pymssql (FreeTDS inside), pytds (pure Python) and go-mssqldb (a Go program,
tests/clients/go-mssql). Each test checks what a client relies on: rows and types round-tripping, error
numbers and texts, transaction state, encryption, cancel, CDC rows. No switchyardd here."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import re
import subprocess
import sys
import time
import uuid

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "doubles"))

from tds_fixtures import install_paths, running_double  # noqa: E402

pytds = pytest.importorskip("pytds")
pymssql = pytest.importorskip("pymssql")

pytestmark = [pytest.mark.nosan, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def dbl():
    with running_double(cdc_delay=0.3) as d:
        yield d


@pytest.fixture(autouse=True)
def _double_log_on_failure(request):
    """A failing test shows the tail of the module double's log (its 'Captured stdout teardown')."""
    failed = request.session.testsfailed
    yield
    d = request.node.funcargs.get("dbl")
    if d is not None and request.session.testsfailed > failed:
        print("--- SQL Server double log (tail) ---\n" + "\n".join(d.log().splitlines()[-60:]))


# --- clients ----------------------------------------------------------------------------------------------

def pyt(d, password=None, **kw):
    kw.setdefault("autocommit", True)
    kw.setdefault("timeout", 30)
    return pytds.connect(d.host, port=d.port, user=kw.pop("user", d.user), password=password or d.password,
                         login_timeout=10, **kw)


def pym(d, password=None, **kw):
    # pymssql 2.2 rejects tds_version="7.4"; without one FreeTDS takes TDSVER (7.4: checked in the double's log)
    os.environ["TDSVER"] = "7.4"
    return pymssql.connect(server=d.host, port=str(d.port), user=kw.pop("user", d.user),
                           password=password or d.password, tds_version=None, login_timeout=10, timeout=30, **kw)


def tsql(d, sql, password=None, user=None, encryption=None, tmp_path=None):
    """Run sql (GO-separated batches) through tsql; returns (exit code, stdout + stderr)."""
    env = dict(os.environ, TDSVER="7.4")
    if encryption:
        conf = os.path.join(str(tmp_path), "freetds.conf")
        with open(conf, "w") as f:
            f.write(f"[dbl]\n\thost = {d.host}\n\tport = {d.port}\n\ttds version = 7.4\n\tencryption = {encryption}\n")
        env["FREETDSCONF"] = conf
        target = ["-S", "dbl"]
    else:
        target = ["-H", d.host, "-p", str(d.port)]
    r = subprocess.run(["tsql", *target, "-U", user or d.user, "-P", password or d.password],
                       input=sql + "\ngo\nexit\n", env=env, capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout + r.stderr


def go(d, *args, opts="encrypt=disable", password=None):
    dsn = f"sqlserver://{d.user}:{password or d.password}@{d.host}:{d.port}?database=master&{opts}"
    r = subprocess.run([install_paths()["go_mssql"], "-dsn", dsn, *args], capture_output=True, text=True, timeout=30)
    assert r.stdout.strip(), r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def login_mode(d, spid: int) -> str:
    m = re.findall(rf"login spid={spid} .*?encryption=(\S+)", d.log())
    return m[-1] if m else "?"


def my_encryption(cur) -> tuple[str, int]:
    cur.execute("SELECT encrypt_option, net_packet_size, session_id FROM sys.dm_exec_connections WHERE session_id = @@SPID")
    return cur.fetchone()


# --- login --------------------------------------------------------------------------------------------------

def test_login_ok_and_wrong_password_every_client(dbl):
    with pyt(dbl) as c:
        cur = c.cursor()
        cur.execute("SELECT @@VERSION, DB_NAME(), SUSER_SNAME()")
        version, db, who = cur.fetchone()
        assert version.startswith("Microsoft SQL Server") and db == "master" and who == dbl.user
    with pytest.raises(pytds.Error) as e:
        pyt(dbl, password="wrong")
    assert e.value.msg_no == 18456 and str(e.value) == f"Login failed for user '{dbl.user}'."

    with pym(dbl) as c:
        cur = c.cursor()
        cur.execute("SELECT 1 + 1")
        assert cur.fetchone() == (2,)
    assert re.search(r"tds=0x74000004 .*app='pymssql", dbl.log())
    with pytest.raises(pymssql.OperationalError) as e:
        pym(dbl, password="wrong")
    assert "18456" in str(e.value) and f"Login failed for user '{dbl.user}'." in str(e.value)

    rc, out = tsql(dbl, "SELECT 40 + 2 AS answer")
    assert rc == 0 and re.search(r"answer\s*\n42\s*\n", out), out
    rc, out = tsql(dbl, "SELECT 1", password="wrong")
    assert rc != 0 and "Msg 18456 (severity 14, state 1)" in out and f"Login failed for user '{dbl.user}'." in out, out

    assert go(dbl, "ping")["trancount"] == 0
    r = go(dbl, "ping", password="wrong")
    assert r["number"] == 18456 and r["class"] == 14 and r["error"].endswith(f"Login failed for user '{dbl.user}'.")
    assert "login failed" in dbl.log()


def test_unknown_login_and_database(dbl):
    with pytest.raises(pytds.Error) as e:
        pyt(dbl, user="nobody")
    assert e.value.msg_no == 18456 and str(e.value) == "Login failed for user 'nobody'."
    with pytest.raises(pytds.Error) as e:
        pyt(dbl, database="nosuchdb", disable_connect_retry=True)
    assert e.value.msg_no in (4060, 18456)


# --- encryption ---------------------------------------------------------------------------------------------

def test_encryption_off_login_only_and_on(dbl, tmp_path):
    with pyt(dbl) as c:                                            # pytds without a CA: ENCRYPT_NOT_SUP
        opt, size, spid = my_encryption(c.cursor())
        assert opt == "FALSE" and login_mode(dbl, spid) == "off"
    with pyt(dbl, cafile=dbl.cert, validate_host=False) as c:      # TLS for the whole session
        opt, size, spid = my_encryption(c.cursor())
        assert opt == "TRUE" and login_mode(dbl, spid) == "on"
    with pyt(dbl, cafile=dbl.cert, validate_host=False, enc_login_only=True) as c:
        opt, size, spid = my_encryption(c.cursor())
        assert opt == "FALSE" and login_mode(dbl, spid) == "login-only"

    rc, out = tsql(dbl, "SELECT encrypt_option FROM sys.dm_exec_connections WHERE session_id = @@SPID")
    assert rc == 0 and "FALSE" in out, out                         # FreeTDS default: encrypt the login only
    rc, out = tsql(dbl, "SELECT encrypt_option FROM sys.dm_exec_connections WHERE session_id = @@SPID",
                   encryption="require", tmp_path=tmp_path)
    assert rc == 0 and "TRUE" in out, out

    q = "SELECT encrypt_option FROM sys.dm_exec_connections WHERE session_id = @@SPID"
    assert go(dbl, "query", q, opts="encrypt=disable")["rows"] == [["FALSE"]]
    # login-only (go-mssqldb verifies the certificate even then: a self-signed one needs TrustServerCertificate)
    assert go(dbl, "query", q, opts="encrypt=false&TrustServerCertificate=true")["rows"] == [["FALSE"]]
    assert go(dbl, "query", q, opts="encrypt=true&TrustServerCertificate=true")["rows"] == [["TRUE"]]

    with pym(dbl) as c:
        cur = c.cursor()
        cur.execute(q)
        assert cur.fetchone() == ("FALSE",)
    modes = re.findall(r"encryption=(\S+)", dbl.log())
    assert {"off", "login-only", "on"} <= set(modes)


def test_forced_encryption():
    with running_double(force_encryption=True) as d:
        with pytest.raises(Exception):                             # a client without TLS is turned away
            pyt(d)
        q = "SELECT encrypt_option FROM sys.dm_exec_connections WHERE session_id = @@SPID"
        assert go(d, "query", q, opts="encrypt=false&TrustServerCertificate=true")["rows"] == [["TRUE"]]
        with pyt(d, cafile=d.cert, validate_host=False, enc_login_only=True) as c:
            assert my_encryption(c.cursor())[0] == "TRUE"
        # FreeTDS asks for login-only encryption; the server's ON turns on TLS for the whole session
        rc, out = tsql(d, "SELECT encrypt_option FROM sys.dm_exec_connections WHERE session_id = @@SPID")
        assert rc == 0 and "TRUE" in out, out


def test_packet_size_negotiation_and_big_values(dbl):
    big = "ü" * 300_000 + "end"
    blob = bytes(range(256)) * 4000
    with pyt(dbl, blocksize=32767) as c:
        cur = c.cursor()
        assert my_encryption(cur)[1] == 32767
        cur.execute("CREATE TABLE big_values (id int PRIMARY KEY, t nvarchar(max), b varbinary(max), v varchar(max))")
        cur.execute("INSERT INTO big_values VALUES (%s, %s, %s, %s)", (1, big, pytds.Binary(blob), "v" * 100_000))
        cur.execute("SELECT t, b, v, LEN(t) FROM big_values WHERE id = 1")
        t, b, v, n = cur.fetchone()
        assert t == big and b == blob and v == "v" * 100_000 and n == len(big)
    with pyt(dbl, blocksize=512) as c:                              # smallest packets: many per message
        cur = c.cursor()
        assert my_encryption(cur)[1] == 512
        cur.execute("SELECT t FROM big_values WHERE id = 1")
        assert cur.fetchone()[0] == big
    assert go(dbl, "query", "SELECT DATALENGTH(b) FROM big_values")["rows"] == [[len(blob)]]


# --- types -------------------------------------------------------------------------------------------------

TYPES_DDL = """CREATE TABLE {name} (id int PRIMARY KEY, ti tinyint, si smallint, i int, bi bigint, b bit,
    d decimal(12,3), n numeric(38,10), f float, r real, s nvarchar(40), vs varchar(40), vb varbinary(20),
    tmax nvarchar(max), bmax varbinary(max), dt2 datetime2(7), dto datetimeoffset(7), dd date,
    g uniqueidentifier, z int NULL)"""


def test_types_round_trip_pytds_sp_executesql(dbl):
    vals = (1, 255, -32768, -2147483648, 2**63 - 1, True, decimal.Decimal("-123456789.123"),
            decimal.Decimal("1234567890123456789012345678.0123456789"), 2.5e-300, 1.5, "Grüße ✓ 日本",
            "Latin-1 café", pytds.Binary(b"\x00\x01\xfe\xff"), "x" * 10_000, pytds.Binary(b"\x07" * 9000),
            dt.datetime(1, 1, 1, 0, 0, 0, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999,
                                                          tzinfo=dt.timezone(dt.timedelta(hours=8, minutes=45))),
            dt.date(2024, 2, 29), uuid.UUID("6F9619FF-8B86-D011-B42D-00C04FC964FF"), None)
    nulls = (2,) + (None,) * (len(vals) - 1)
    with pyt(dbl) as c:
        cur = c.cursor()
        cur.execute(TYPES_DDL.format(name="types_pytds"))
        cur.execute("INSERT INTO types_pytds VALUES (%s)" % ", ".join(["%s"] * len(vals)), vals)
        assert cur.rowcount == 1
        cur.execute("INSERT INTO types_pytds VALUES (%s)" % ", ".join(["%s"] * len(nulls)), nulls)
        cur.execute("SELECT * FROM types_pytds ORDER BY id")
        names = [d[0] for d in cur.description]
        assert names == ["id", "ti", "si", "i", "bi", "b", "d", "n", "f", "r", "s", "vs", "vb", "tmax", "bmax",
                         "dt2", "dto", "dd", "g", "z"]
        row, nullrow = cur.fetchall()
        for name, want, got in zip(names, vals, row):
            assert got == want, name
        assert nullrow == nulls
        # parameters in expressions and WHERE
        cur.execute("SELECT COUNT(*) FROM types_pytds WHERE g = %s AND s = %s AND dd = %s",
                    (vals[18], vals[10], vals[17]))
        assert cur.fetchone() == (1,)
        cur.execute("UPDATE types_pytds SET i = i + %s WHERE id IN (1, 2)", (5,))
        assert cur.rowcount == 2
        cur.execute("DELETE FROM types_pytds WHERE id = %s", (2,))
        assert cur.rowcount == 1


def test_types_round_trip_go(dbl):
    r = go(dbl, "types")
    assert r == {"b": True, "bi": 9000000000, "big_len": 40000, "big_ok": True, "d": "12345.678",
                 "dd": "2001-01-02", "dt2": "2024-02-29T13:14:15.123456Z", "dto": "2024-02-29T13:14:15.654321+02:30",
                 "f": 3.5e+100, "g": "6F9619FF-8B86-D011-B42D-00C04FC964FF", "n_valid": False, "r": 1.25,
                 "s": "Grüße ✓", "si": -300, "ti": 200, "vb": "000102ff", "vs": "plain"}


def test_types_round_trip_pymssql_literals(dbl):
    with pym(dbl, autocommit=True) as c:
        cur = c.cursor()
        cur.execute(TYPES_DDL.format(name="types_pymssql"))
        vals = (1, 7, 300, 70000, 5_000_000_000, True, decimal.Decimal("1.500"), decimal.Decimal("-0.0000000001"),
                1.25, 0.5, "Grüße", "plain", b"\xde\xad\xbe\xef", "y" * 5000, b"\x01" * 3000,
                dt.datetime(2024, 5, 6, 7, 8, 9, 123000), None, dt.date(2020, 1, 31),
                None, None)
        cur.execute("INSERT INTO types_pymssql VALUES (%s)" % ", ".join(["%s"] * len(vals)), vals)
        cur.execute("SELECT * FROM types_pymssql")
        row = cur.fetchone()
        want = list(vals)
        assert list(row) == want
        cur.execute("SELECT CAST(1 AS bit), CAST(2 AS tinyint), CAST(N'6F9619FF-8B86-D011-B42D-00C04FC964FF' AS uniqueidentifier)")
        assert cur.fetchone() == (True, 2, uuid.UUID("6F9619FF-8B86-D011-B42D-00C04FC964FF"))


def test_tsql_crud(dbl):
    rc, out = tsql(dbl, "CREATE TABLE tsql_t (id int PRIMARY KEY, name nvarchar(20), amount decimal(10,2))\ngo\n"
                        "INSERT INTO tsql_t VALUES (1, N'alpha', 1.50), (2, N'beta', NULL)\ngo\n"
                        "UPDATE tsql_t SET amount = 9.99 WHERE id = 2\ngo\n"
                        "SELECT id, name, amount FROM tsql_t ORDER BY id")
    assert rc == 0, out
    assert "(2 rows affected)" in out
    assert re.search(r"1\s+alpha\s+1\.50\s*\n2\s+beta\s+9\.99", out), out
    # every common type as FreeTDS converts it to text (its default date format)
    rc, out = tsql(dbl, "CREATE TABLE tsql_types (id int PRIMARY KEY, ti tinyint, si smallint, bi bigint, b bit, "
                        "d decimal(12,3), f float, r real, s nvarchar(40), vs varchar(40), vb varbinary(20), "
                        "mx nvarchar(max), dt2 datetime2(7), dto datetimeoffset(7), dd date, g uniqueidentifier, "
                        "z int NULL)\ngo\n"
                        "INSERT INTO tsql_types VALUES (1, 255, -32768, 9000000000, 1, -12.345, 2.5, 1.25, N'Grüße', "
                        "'plain', 0x00ff10, N'max value', '2024-02-29 13:14:15.1234567', "
                        "'2024-02-29 13:14:15.654321 +02:30', '2001-01-02', '6F9619FF-8B86-D011-B42D-00C04FC964FF', NULL)"
                        "\ngo\nSELECT * FROM tsql_types")
    assert rc == 0, out
    assert ("1\t255\t-32768\t9000000000\t1\t-12.345\t2.5\t1.25\tGrüße\tplain\t00ff10\tmax value\t"
            "Feb 29 2024 01:14PM\tFeb 29 2024 01:14PM\tJan  2 2001 12:00AM\t6F9619FF-8B86-D011-B42D-00C04FC964FF\tNULL"
            ) in out, out


# --- parameters, prepared statements, procedures --------------------------------------------------------------

def test_prepared_statements_by_id_and_by_name(dbl):
    import pytds.tds_base as tb
    with pyt(dbl) as c:
        cur = c.cursor()
        # sp_prepare (RPC by proc id 11), sp_execute (id 12), sp_unprepare and sp_prepexec by name
        out = cur.callproc(tb.SP_PREPARE, (pytds.output(param_type="int", value=None), "@a int, @b nvarchar(10)",
                                           "SELECT @a * 2 AS doubled, @b AS b"))
        handle = out[0]
        assert isinstance(handle, int) and handle > 0 and cur.get_proc_return_status() == 0
        for i in range(3):
            cur.callproc(tb.SP_EXECUTE, (handle, i, f"v{i}"))
            assert cur.fetchall() == [(2 * i, f"v{i}")]
        cur.callproc("sp_unprepare", (handle,))
        with pytest.raises(pytds.Error) as e:
            cur.callproc(tb.SP_EXECUTE, (handle, 1, "x"))
        assert e.value.msg_no == 8179
        out = cur.callproc("sp_prepexec", (pytds.output(param_type="int", value=None), "@x int", "SELECT @x + 1", 41))
        assert cur.fetchall() == [(42,)]
        cur.callproc(tb.SP_EXECUTE, (out[0], 99))
        assert cur.fetchall() == [(100,)]
        # sp_executesql with an OUTPUT parameter
        out = cur.callproc(tb.SP_EXECUTESQL, ("SET @r = @a + 1", "@a int, @r int OUTPUT", 6,
                                              pytds.output(param_type="int", value=None)))
        assert out[-1] == 7
    assert go(dbl, "prepared")["rows"] == [[1, "v0"], [2, "v1"], [3, "v2"]]


def test_batch_statements_messages_identity_output(dbl):
    with pyt(dbl) as c:
        cur = c.cursor()
        cur.execute("CREATE TABLE ident (id int IDENTITY(1,1) PRIMARY KEY, v nvarchar(10))")
        cur.execute("INSERT INTO ident (v) OUTPUT inserted.id, inserted.v VALUES (N'a'), (N'b')")
        assert cur.fetchall() == [(1, "a"), (2, "b")]
        cur.execute("INSERT INTO ident (v) VALUES (N'c'); SELECT SCOPE_IDENTITY() AS id")
        cur.nextset() if cur.description is None else None
        assert cur.fetchall() == [(decimal.Decimal(3),)]
        cur.execute("DELETE FROM ident OUTPUT deleted.v WHERE id = 1")
        assert cur.fetchall() == [("a",)]
        cur.execute("PRINT N'hello from the double'; SELECT TOP 1 [v] FROM [dbo].[ident] ORDER BY [ID] DESC")
        assert cur.fetchall() == [("c",)]
        assert any("hello from the double" in str(m) for m in cur.messages)
    with pym(dbl, autocommit=True) as c:
        cur = c.cursor()
        cur.execute("SELECT v FROM ident ORDER BY id OFFSET 1 ROWS FETCH NEXT 1 ROWS ONLY")
        assert cur.fetchall() == [("c",)]


# --- transactions -----------------------------------------------------------------------------------------

def test_transactions_every_client(dbl):
    with pyt(dbl) as c:
        c.cursor().execute("CREATE TABLE txn (id int PRIMARY KEY, who nvarchar(10))")
    # pytds: autocommit off = transaction-manager requests (TM_BEGIN/COMMIT/ROLLBACK_XACT), descriptors in ALL_HEADERS
    with pyt(dbl, autocommit=False) as c:
        cur = c.cursor()
        cur.execute("INSERT INTO txn VALUES (1, N'pytds')")
        cur.execute("SELECT @@TRANCOUNT")
        assert cur.fetchone() == (1,)
        c.rollback()
        cur.execute("INSERT INTO txn VALUES (2, N'pytds')")
        c.commit()
    # pymssql: BEGIN TRANSACTION batches (FreeTDS)
    with pym(dbl) as c:
        cur = c.cursor()
        cur.execute("INSERT INTO txn VALUES (3, N'pymssql')")
        c.rollback()
        cur.execute("INSERT INTO txn VALUES (4, N'pymssql')")
        c.commit()
    # T-SQL nesting, @@TRANCOUNT, a statement-level error inside a transaction keeps it open
    rc, out = tsql(dbl, "BEGIN TRAN\nINSERT INTO txn VALUES (5, N'tsql')\nBEGIN TRAN\nSELECT @@TRANCOUNT AS tc\n"
                        "COMMIT\nSELECT @@TRANCOUNT AS tc\nINSERT INTO txn VALUES (5, N'dup')\nSELECT @@TRANCOUNT AS tc\n"
                        "ROLLBACK\nSELECT @@TRANCOUNT AS tc")
    assert re.findall(r"tc\s*\n(\d+)", out) == ["2", "1", "1", "0"], out
    assert "Msg 2627" in out
    # SET XACT_ABORT ON: the same error ends the batch and rolls the transaction back
    rc, out = tsql(dbl, "SET XACT_ABORT ON\nBEGIN TRAN\nINSERT INTO txn VALUES (6, N'xa')\n"
                        "INSERT INTO txn VALUES (6, N'xa')\nSELECT 1 AS never\ngo\nSELECT @@TRANCOUNT AS tc")
    assert "Msg 2627" in out and "never" not in out and re.findall(r"tc\s*\n(\d+)", out) == ["0"], out
    r = go(dbl, "tx")
    assert r == {"trancount_in_tx": 1, "ids": [2]}
    with pyt(dbl) as c:
        cur = c.cursor()
        cur.execute("SELECT id FROM txn ORDER BY id")
        assert [x[0] for x in cur.fetchall()] == [2, 4]
        with pytest.raises(pytds.Error) as e:
            cur.execute("COMMIT")
        assert e.value.msg_no == 3902


def test_uncommitted_rows_invisible_to_other_sessions(dbl):
    with pyt(dbl) as a, pyt(dbl) as b:
        a.cursor().execute("CREATE TABLE iso (id int PRIMARY KEY)")
        ca, cb = a.cursor(), b.cursor()
        ca.execute("BEGIN TRAN; INSERT INTO iso VALUES (1)")
        cb.execute("SELECT COUNT(*) FROM iso")
        assert cb.fetchone() == (0,)
        ca.execute("COMMIT")
        cb.execute("SELECT COUNT(*) FROM iso")
        assert cb.fetchone() == (1,)


# --- errors -----------------------------------------------------------------------------------------------

def test_error_numbers_every_client(dbl):
    with pyt(dbl) as c:
        cur = c.cursor()
        cur.execute("CREATE TABLE dup (id int PRIMARY KEY)")
        cur.execute("INSERT INTO dup VALUES (1)")
        with pytest.raises(pytds.IntegrityError) as e:
            cur.execute("INSERT INTO dup VALUES (%s)", (1,))
        assert e.value.msg_no == 2627 and e.value.severity == 14
        assert str(e.value) == ("Violation of PRIMARY KEY constraint 'PK__dup'. Cannot insert duplicate key in "
                                "object 'dbo.dup'. The duplicate key value is (1).")
        with pytest.raises(pytds.ProgrammingError) as e:
            cur.execute("SELECT * FROM no_such_table")
        assert e.value.msg_no == 208 and str(e.value) == "Invalid object name 'no_such_table'."
        with pytest.raises(pytds.ProgrammingError) as e:       # compiled as a whole: nothing of it runs
            cur.execute("INSERT INTO dup VALUES (2); SELECT * FROM dup WHERE")
        assert e.value.msg_no == 102 and e.value.severity == 15
        cur.execute("SELECT COUNT(*) FROM dup")
        assert cur.fetchone() == (1,)
        with pytest.raises(pytds.Error) as e:
            cur.execute("RAISERROR(N'custom failure', 16, 3)")
        assert e.value.msg_no == 50000 and e.value.state == 3
    with pym(dbl, autocommit=True) as c:
        with pytest.raises(pymssql.IntegrityError) as e:
            c.cursor().execute("INSERT INTO dup VALUES (1)")
        assert e.value.args[0] == 2627
    rc, out = tsql(dbl, "INSERT INTO dup VALUES (1)")
    assert "Msg 2627 (severity 14, state 1)" in out, out
    r = go(dbl, "dupkey")
    assert r["number"] == 2627 and r["class"] == 14 and "Violation of PRIMARY KEY constraint" in r["error"]


# --- cancel --------------------------------------------------------------------------------------------

def test_cancel_long_query(dbl):
    r = go(dbl, "cancel")
    assert r["error"] == "context canceled" and r["seconds"] < 3 and r["after"] == 1 and r["after_error"] == "<nil>"
    # pytds cancels (ATTENTION, then waits for DONE_ATTN) when its socket timeout strikes
    with pyt(dbl, timeout=1) as c:
        cur = c.cursor()
        t0 = time.monotonic()
        with pytest.raises(Exception) as e:
            cur.execute("WAITFOR DELAY '00:00:10'")
        assert "timed out" in str(e.value) and time.monotonic() - t0 < 5
        cur.execute("SELECT 7")
        assert cur.fetchone() == (7,)


# --- databases, logins --------------------------------------------------------------------------------------

def test_create_database_login_user(dbl):
    with pyt(dbl) as c:
        cur = c.cursor()
        cur.execute("CREATE DATABASE appdb")
        cur.execute("CREATE LOGIN app WITH PASSWORD = 'App-pw-1'")
        cur.execute("USE appdb")
        assert c._conn.env.database == "appdb"          # the client followed ENVCHANGE(database)
        cur.execute("CREATE USER app FOR LOGIN app")
        cur.execute("SELECT DB_NAME()")
        assert cur.fetchone() == ("appdb",)
        cur.execute("CREATE TABLE dbo.items (id int PRIMARY KEY)")
        cur.execute("INSERT INTO appdb.dbo.items VALUES (1)")
        cur.execute("GRANT SELECT ON dbo.items TO app")          # a user reads only what it was granted
    with pyt(dbl, user="app", password="App-pw-1", database="appdb") as c:
        cur = c.cursor()
        cur.execute("SELECT id FROM items")
        assert cur.fetchall() == [(1,)]
    with pytest.raises(pytds.Error) as e:
        pyt(dbl, user="app", password="nope")
    assert e.value.msg_no == 18456 and str(e.value) == "Login failed for user 'app'."


def test_access_and_permissions_as_strict_as_sql_server(dbl):
    """A login without a user in a database is refused there (4060 + 18456 at login, 916 on USE) unless guest
    may connect; guest is guest, not dbo (no writes, no reads without a grant); SELECT needs a permission
    (db_datareader, a GRANT; a DENY wins); an unknown SET option is error 195."""
    with pyt(dbl) as c:
        cur = c.cursor()
        cur.execute("CREATE DATABASE strictdb")
        cur.execute("CREATE LOGIN lonely WITH PASSWORD = 'Lonely-pw-1'")
        cur.execute("CREATE LOGIN reader WITH PASSWORD = 'Reader-pw-1'")
        cur.execute("USE strictdb")
        cur.execute("CREATE TABLE dbo.t (id int PRIMARY KEY); INSERT INTO dbo.t VALUES (1)")
        cur.execute("CREATE USER reader FOR LOGIN reader")
    with pytest.raises(pytds.Error) as e:
        pyt(dbl, user="lonely", password="Lonely-pw-1", database="strictdb")
    assert e.value.msg_no == 18456 and str(e.value) == ('Cannot open database "strictdb" requested by the login. '
                                                      "The login failed. Login failed for user 'lonely'."), e.value
    with pyt(dbl, user="lonely", password="Lonely-pw-1") as c:     # master: guest may connect
        cur = c.cursor()
        cur.execute("SELECT USER_NAME()")
        assert cur.fetchone() == ("guest",)
        with pytest.raises(pytds.Error) as e:
            cur.execute("USE strictdb")
        assert e.value.msg_no == 916 and '"lonely" is not able to access the database "strictdb"' in str(e.value)
        with pytest.raises(pytds.Error) as e:
            cur.execute("SET NO_SUCH_OPTION ON")
        assert e.value.msg_no == 195 and str(e.value) == "'NO_SUCH_OPTION' is not a recognized SET option."
        cur.execute("SET ANSI_NULLS, QUOTED_IDENTIFIER ON; SET TEXTSIZE 2147483647; SET LOCK_TIMEOUT 1000")
    with pyt(dbl) as c:
        c.cursor().execute("USE strictdb; GRANT CONNECT TO guest")
    with pyt(dbl, user="lonely", password="Lonely-pw-1", database="strictdb") as c:
        cur = c.cursor()
        cur.execute("SELECT USER_NAME()")
        assert cur.fetchone() == ("guest",)
        for sql, perm in (("SELECT id FROM dbo.t", "SELECT"), ("INSERT INTO dbo.t VALUES (2)", "INSERT")):
            with pytest.raises(pytds.Error) as e:
                cur.execute(sql)
            assert e.value.msg_no == 229 and f"The {perm} permission was denied on the object 't'" in str(e.value)
    with pyt(dbl, user="reader", password="Reader-pw-1", database="strictdb") as c:
        cur = c.cursor()
        with pytest.raises(pytds.Error) as e:
            cur.execute("SELECT t.id FROM dbo.t AS t JOIN dbo.t AS u ON u.id = t.id")
        assert e.value.msg_no == 229, e.value
        cur.execute("SELECT name FROM sys.tables")              # catalog views stay readable
        with pyt(dbl) as a:
            a.cursor().execute("USE strictdb; ALTER ROLE db_datareader ADD MEMBER reader")
        cur.execute("SELECT id FROM dbo.t")
        assert cur.fetchall() == [(1,)]
        with pyt(dbl) as a:
            a.cursor().execute("USE strictdb; DENY SELECT ON dbo.t TO reader")
        with pytest.raises(pytds.Error) as e:
            cur.execute("SELECT id FROM dbo.t")
        assert e.value.msg_no == 229, e.value


# --- change data capture -------------------------------------------------------------------------------------

def test_cdc_changes_share_the_commit_lsn(dbl):
    B = pytds.Binary
    with pyt(dbl) as c:
        cur = c.cursor()
        cur.execute("CREATE DATABASE shop")
        cur.execute("USE shop")
        cur.execute("EXEC sys.sp_cdc_enable_db")
        cur.execute("CREATE TABLE dbo.orders (id int NOT NULL PRIMARY KEY, item nvarchar(20), qty int)")
        cur.execute("EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'orders', @role_name = NULL")
        cur.execute("SELECT sys.fn_cdc_get_min_lsn('dbo_orders'), sys.fn_cdc_get_min_lsn('nope')")
        lo, missing = cur.fetchone()
        assert len(lo) == 10 and missing == b"\0" * 10
        cur.execute("BEGIN TRAN; INSERT INTO orders VALUES (1, N'apple', 1), (2, N'pear', 2); "
                    "UPDATE orders SET qty = 5 WHERE id = 1; DELETE FROM orders WHERE id = 2; COMMIT")
        cur.execute("BEGIN TRAN; INSERT INTO orders VALUES (9, N'lost', 9); ROLLBACK")
        cur.execute("INSERT INTO orders VALUES (3, N'fig', 3)")
        deadline = time.monotonic() + 10
        rows = []
        while time.monotonic() < deadline:               # capture is asynchronous, as SQL Server's job
            cur.execute("SELECT sys.fn_cdc_get_max_lsn()")
            hi = cur.fetchone()[0]
            if hi > lo:
                cur.execute("SELECT * FROM cdc.fn_cdc_get_all_changes_dbo_orders(%s, %s, N'all update old') "
                            "ORDER BY __$start_lsn, __$seqval, __$operation", (B(lo), B(hi)))
                rows = cur.fetchall()
                if len(rows) == 6:
                    break
            time.sleep(0.1)
        assert [d[0] for d in cur.description] == ["__$start_lsn", "__$seqval", "__$operation", "__$update_mask",
                                                   "id", "item", "qty"]
        ops = [(r[2], r[4], r[5], r[6]) for r in rows]
        assert ops == [(2, 1, "apple", 1), (2, 2, "pear", 2), (3, 1, "apple", 1), (4, 1, "apple", 5),
                       (1, 2, "pear", 2), (2, 3, "fig", 3)]
        first_tx = {r[0] for r in rows[:5]}
        assert len(first_tx) == 1 and rows[5][0] > rows[0][0]       # one LSN per transaction, in commit order
        assert rows[2][1] == rows[3][1] and rows[3][3] == b"\x04"   # update images share __$seqval; mask = qty
        assert rows[0][3] == b"\x07"
        cur.execute("SELECT * FROM cdc.fn_cdc_get_all_changes_dbo_orders(%s, %s, N'all')", (B(lo), B(hi)))
        assert [r[2] for r in cur.fetchall()] == [2, 2, 4, 1, 2]
        cur.execute("SELECT start_lsn, tran_end_time FROM cdc.lsn_time_mapping ORDER BY start_lsn")
        mapping = cur.fetchall()
        assert [m[0] for m in mapping] == [rows[0][0], rows[5][0]]
        cur.execute("SELECT sys.fn_cdc_map_lsn_to_time(%s), sys.fn_cdc_increment_lsn(%s)", (B(hi), B(hi)))
        when, nxt = cur.fetchone()
        assert when == mapping[-1][1] and int.from_bytes(nxt, "big") == int.from_bytes(hi, "big") + 1
        # from the next LSN on: nothing new; a range past the maximum is SQL Server's error 313
        cur.execute("SELECT COUNT(*) FROM cdc.fn_cdc_get_all_changes_dbo_orders(%s, %s, N'all')",
                    (B(rows[5][0]), B(hi)))
        assert cur.fetchone() == (1,)
        with pytest.raises(pytds.Error) as e:
            cur.execute("SELECT * FROM cdc.fn_cdc_get_all_changes_dbo_orders(%s, %s, N'all')", (B(lo), B(b"\xff" * 10)))
        assert e.value.msg_no == 313
        # cleanup raises the minimum LSN
        cur.execute("EXEC sys.sp_cdc_cleanup_change_table @capture_instance = N'dbo_orders', @low_water_mark = %s",
                    (B(rows[5][0]),))
        cur.execute("SELECT sys.fn_cdc_get_min_lsn('dbo_orders')")
        assert cur.fetchone()[0] == rows[5][0]
        with pytest.raises(pytds.Error) as e:
            cur.execute("SELECT * FROM cdc.fn_cdc_get_all_changes_dbo_orders(%s, %s, N'all')", (B(lo), B(hi)))
        assert e.value.msg_no == 313


# --- what the proxy will lean on -------------------------------------------------------------------------------

def test_clients_echo_transaction_descriptors(dbl):
    """Every request of the clients above carried the descriptor of the transaction the double announced
    (ENVCHANGE begin) or zeros: the double logs any other value."""
    with pyt(dbl, autocommit=False) as c:
        cur = c.cursor()
        for i in range(3):
            cur.execute("SELECT @@TRANCOUNT")
            assert cur.fetchone() == (1,)
            c.commit()
    assert "descriptor mismatch" not in dbl.log()


def test_deadlock_is_error_1205_and_rolls_back(dbl):
    import threading
    with pyt(dbl) as c:
        c.cursor().execute("CREATE TABLE dl (id int PRIMARY KEY, v int); INSERT INTO dl VALUES (1, 0), (2, 0)")
    with pyt(dbl) as a, pyt(dbl) as b:
        ca, cb = a.cursor(), b.cursor()
        ca.execute("BEGIN TRAN; UPDATE dl SET v = 1 WHERE id = 1")
        cb.execute("BEGIN TRAN; UPDATE dl SET v = 2 WHERE id = 2")
        errors = {}

        def run(name, cur, sql):
            try:
                cur.execute(sql)
            except pytds.Error as e:
                errors[name] = e
        t = threading.Thread(target=run, args=("b", cb, "UPDATE dl SET v = 2 WHERE id = 1"))
        t.start()
        time.sleep(0.3)
        run("a", ca, "UPDATE dl SET v = 1 WHERE id = 2")
        t.join(10)
        assert len(errors) == 1, errors
        (victim_name, err), = errors.items()
        assert err.msg_no == 1205 and "was deadlocked on lock resources" in str(err)
        victim, winner = (ca, cb) if victim_name == "a" else (cb, ca)
        victim.execute("SELECT @@TRANCOUNT")                 # SQL Server rolls the victim's transaction back
        assert victim.fetchone() == (0,)
        winner.execute("SELECT @@TRANCOUNT")
        assert winner.fetchone() == (1,)
        winner.execute("COMMIT")
        winner.execute("SELECT v FROM dl ORDER BY id")
        assert [r[0] for r in winner.fetchall()] == ([2, 2] if victim_name == "a" else [1, 1])


def test_malformed_tds_closes_only_that_connection(dbl):
    import socket
    s = socket.create_connection((dbl.host, dbl.port), timeout=5)
    s.sendall(b"\x12\x01\x00\x04garbage")          # packet length 4 < header size
    s.settimeout(5)
    assert s.recv(100) == b""                     # closed, no answer
    s.close()
    s = socket.create_connection((dbl.host, dbl.port), timeout=5)
    s.sendall(b"\x10\x01\x00\x10\x00\x00\x01\x00" + b"\0" * 8)     # LOGIN7 before PRELOGIN
    assert s.recv(100) == b""
    s.close()
    with pyt(dbl) as c:                           # the double still serves others
        cur = c.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)


def test_entry_point_and_parent_death():
    """tests/doubles/sqlserver-double starts as the issue describes; SIGKILL of the double takes its
    PostgreSQL with it (parent-death signal), so nothing outlives a killed test run."""
    import signal
    import socket
    root = os.path.dirname(os.path.dirname(HERE))
    import pathlib
    import shutil
    import tempfile
    top = tempfile.mkdtemp(prefix="sy-mssql-")     # short, and reachable by the `postgres` user
    os.chmod(top, 0o711)
    data = pathlib.Path(top) / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([os.path.join(root, "tests", "doubles", "sqlserver-double"), "--listen",
                          f"127.0.0.1:{port}", "--data", str(data), "--admin-user", "sa", "--admin-password",
                          "Entry-pw-1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         start_new_session=True)
    try:
        line = p.stdout.readline()
        assert line.split() == ["ready", "127.0.0.1", str(port)], line
        with pytds.connect("127.0.0.1", port=port, user="sa", password="Entry-pw-1", autocommit=True) as c:
            cur = c.cursor()
            cur.execute("SELECT DB_NAME()")
            assert cur.fetchone() == ("master",)
        pg_pid = int(open(data / "pg" / "postmaster.pid").readline())
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pg_pid}") and \
                open(f"/proc/{pg_pid}/stat").read().split(")")[1].split()[0] not in ("Z", "X"):
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{pg_pid}") or \
            open(f"/proc/{pg_pid}/stat").read().split(")")[1].split()[0] in ("Z", "X")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
        shutil.rmtree(top, ignore_errors=True)


def test_catalog_views_and_read_only_fencing(dbl):
    with pyt(dbl) as c, pyt(dbl) as other:
        cur = c.cursor()
        cur.execute("CREATE DATABASE fence")
        cur.execute("USE fence")
        cur.execute("EXEC sys.sp_cdc_enable_db")
        cur.execute("CREATE TABLE dbo.acct (id int IDENTITY(1,1) PRIMARY KEY, v int)")
        cur.execute("CREATE TABLE dbo.plain (id int PRIMARY KEY)")
        cur.execute("EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'acct', @role_name = NULL")
        cur.execute("SELECT name, is_cdc_enabled, is_read_only FROM sys.databases WHERE name IN (N'master', N'fence') "
                    "ORDER BY name")
        assert cur.fetchall() == [("fence", True, False), ("master", False, False)]
        cur.execute("SELECT t.name, t.is_tracked_by_cdc FROM sys.tables t JOIN sys.schemas s "
                    "ON s.schema_id = t.schema_id WHERE s.name = N'dbo' ORDER BY t.name")
        assert cur.fetchall() == [("acct", True), ("plain", False)]
        cur.execute("SELECT OBJECT_ID(N'dbo.acct'), OBJECT_ID(N'[dbo].[nope]')")
        oid, none = cur.fetchone()
        assert isinstance(oid, int) and none is None
        # SCOPE_IDENTITY() is the table's identity even though CDC's trigger draws from its own sequences
        cur.execute("INSERT INTO acct (v) VALUES (10); INSERT INTO acct (v) VALUES (20); SELECT SCOPE_IDENTITY()")
        while cur.description is None:
            cur.nextset()
        assert cur.fetchone() == (decimal.Decimal(2),)
        # fencing: READ_ONLY refuses writes (3906) and ends other sessions' open transactions
        oc = other.cursor()
        oc.execute("USE fence; BEGIN TRAN; INSERT INTO plain VALUES (1)")
        with pytest.raises(pytds.Error) as e:
            cur.execute("ALTER DATABASE fence SET READ_ONLY")
        assert e.value.msg_no == 5070
        cur.execute("ALTER DATABASE fence SET READ_ONLY WITH ROLLBACK IMMEDIATE")
        with pytest.raises(Exception):
            oc.execute("COMMIT")
        with pytest.raises(pytds.Error) as e:
            cur.execute("INSERT INTO plain VALUES (2)")
        assert e.value.msg_no == 3906 and str(e.value) == 'Failed to update database "fence" because the database is read-only.'
        cur.execute("SELECT is_read_only FROM sys.databases WHERE name = N'fence'")
        assert cur.fetchone() == (True,)
        cur.execute("ALTER DATABASE fence SET READ_WRITE")
        cur.execute("INSERT INTO plain VALUES (2)")
        cur.execute("SELECT id FROM plain")
        assert cur.fetchall() == [(2,)]                  # the killed session's row was rolled back


def test_cdc_lsn_follows_commit_order_not_begin_order(dbl):
    B = pytds.Binary
    with pyt(dbl) as c:
        c.cursor().execute("CREATE DATABASE ordered; USE ordered; EXEC sys.sp_cdc_enable_db")
    with pyt(dbl, database="ordered") as a, pyt(dbl, database="ordered") as b:
        ca, cb = a.cursor(), b.cursor()
        ca.execute("CREATE TABLE dbo.co (id int PRIMARY KEY, who nvarchar(5))")
        ca.execute("EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'co', @role_name = NULL")
        ca.execute("SELECT sys.fn_cdc_get_min_lsn('dbo_co')")
        lo = ca.fetchone()[0]
        ca.execute("BEGIN TRAN; INSERT INTO co VALUES (1, N'a')")      # began first ...
        cb.execute("BEGIN TRAN; INSERT INTO co VALUES (2, N'b'); COMMIT")
        ca.execute("INSERT INTO co VALUES (3, N'a'); COMMIT")          # ... committed last
        deadline = time.monotonic() + 10
        rows = []
        while time.monotonic() < deadline and len(rows) < 3:
            ca.execute("SELECT sys.fn_cdc_get_max_lsn()")
            hi = ca.fetchone()[0]
            if hi >= lo:
                ca.execute("SELECT __$start_lsn, id FROM cdc.fn_cdc_get_all_changes_dbo_co(%s, %s, N'all') "
                           "ORDER BY __$start_lsn, __$seqval", (B(lo), B(hi)))
                rows = ca.fetchall()
            time.sleep(0.1)
        assert [r[1] for r in rows] == [2, 1, 3]
        assert rows[0][0] < rows[1][0] == rows[2][0]


# Statements SQL Server's parser ends without a ';' on the same line (real clients send such batches:
# mssql-jdbc's setAutoCommit(true) is "set implicit_transactions off IF @@TRANCOUNT > 0 COMMIT TRAN ").
SPLITS = {
    "set implicit_transactions off IF @@TRANCOUNT > 0 COMMIT TRAN ":
        ["set implicit_transactions off", "IF @@TRANCOUNT > 0 COMMIT TRAN"],
    "IF @@TRANCOUNT > 0 COMMIT TRAN set implicit_transactions off ":
        ["IF @@TRANCOUNT > 0 COMMIT TRAN", "set implicit_transactions off"],
    "COMMIT TRAN WITH (DELAYED_DURABILITY = ON)": ["COMMIT TRAN WITH (DELAYED_DURABILITY = ON)"],
    "SET IDENTITY_INSERT dbo.t ON INSERT INTO dbo.t VALUES (1)": ["SET IDENTITY_INSERT dbo.t ON",
                                                                  "INSERT INTO dbo.t VALUES (1)"],
    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED SELECT 1": ["SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
                                                                "SELECT 1"],
    "COMMIT TRAN t1 SELECT 1": ["COMMIT TRAN t1", "SELECT 1"],
    "COMMIT TRAN t1": ["COMMIT TRAN t1"],
    "SET ANSI_NULLS, QUOTED_IDENTIFIER ON SELECT 1": ["SET ANSI_NULLS, QUOTED_IDENTIFIER ON", "SELECT 1"],
    "UPDATE t SET a = 1": ["UPDATE t SET a = 1"],
    "INSERT INTO t VALUES ('commit tran set x')": ["INSERT INTO t VALUES ('commit tran set x')"],
}


def test_batches_split_where_sql_server_ends_a_statement():
    code = ("import json, sys; from translate import split_batch; "
            "print(json.dumps({q: split_batch(q) for q in json.load(sys.stdin)}))")
    r = subprocess.run([install_paths()["python"], "-c", code], input=json.dumps(list(SPLITS)), text=True,
                       capture_output=True, timeout=60, cwd=os.path.join(os.path.dirname(HERE), "doubles"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == SPLITS
