"""Change data capture for the SQL Server double (test code, never shipped), shaped as SQL Server exposes it.

Inside PostgreSQL: a row trigger on each captured table writes the row images into sy_cdc.pending; a deferred
constraint trigger, run as the transaction commits, takes an advisory lock held through the commit and numbers
the transaction (sy_cdc.commits.commit_seq), so numbers follow commit order. The Capture thread (the
"capture job") moves committed transactions older than the capture delay into cdc.<ci>_CT in commit_seq
order, one binary(10) __$start_lsn per transaction, and records cdc.lsn_time_mapping. The sys.fn_cdc_*
functions are PostgreSQL functions over those tables; cdc.fn_cdc_get_all_changes_<ci> is translated into a
query on cdc.<ci>_CT (translate.py) guarded by cdc.sy_check_range (error 313 outside the timeline)."""

from __future__ import annotations

import struct
import threading

LSN_FILE = 0x00000027
SEQ_FILE = 0x00000026


def lsn(commit_seq: int) -> bytes:
    return struct.pack(">IIH", LSN_FILE, commit_seq, 1)


def seqval(grp: int) -> bytes:
    return struct.pack(">IIH", SEQ_FILE, grp & 0xFFFFFFFF, 0)


# Objects every database of the double has (installed in the template database).
BASE_SQL = r"""
CREATE SCHEMA IF NOT EXISTS dbo;
CREATE SCHEMA IF NOT EXISTS sys;
CREATE SCHEMA IF NOT EXISTS sy_cdc;
CREATE TABLE sy_cdc.state (enabled boolean NOT NULL DEFAULT false, max_lsn bytea);
INSERT INTO sy_cdc.state VALUES (false, NULL);
CREATE SEQUENCE sy_cdc.commit_seq START 16;
CREATE SEQUENCE sy_cdc.grp;
CREATE TABLE sy_cdc.pending (seq bigserial PRIMARY KEY, xid bigint NOT NULL DEFAULT txid_current(),
    begin_time timestamp NOT NULL DEFAULT now()::timestamp, ci text NOT NULL, op int NOT NULL, grp bigint NOT NULL,
    data jsonb NOT NULL, changed text[]);
CREATE TABLE sy_cdc.commits (xid bigint PRIMARY KEY, commit_seq bigint NOT NULL,
    commit_time timestamp NOT NULL DEFAULT clock_timestamp()::timestamp);

CREATE FUNCTION sy_cdc.on_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('sy.cdc_numbered', true) = 'y' THEN RETURN NULL; END IF;
    PERFORM pg_advisory_xact_lock(715100);
    INSERT INTO sy_cdc.commits (xid, commit_seq) VALUES (txid_current(), nextval('sy_cdc.commit_seq'));
    PERFORM set_config('sy.cdc_numbered', 'y', true);
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER sy_number_commit AFTER INSERT ON sy_cdc.pending DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION sy_cdc.on_commit();

CREATE FUNCTION sy_cdc.capture_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE g bigint := nextval('sy_cdc.grp'); ci text; o jsonb; n jsonb; ch text[];
BEGIN
    FOREACH ci IN ARRAY TG_ARGV LOOP
        IF TG_OP = 'INSERT' THEN
            INSERT INTO sy_cdc.pending (ci, op, grp, data) VALUES (ci, 2, g, to_jsonb(NEW));
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO sy_cdc.pending (ci, op, grp, data) VALUES (ci, 1, g, to_jsonb(OLD));
        ELSE
            o := to_jsonb(OLD); n := to_jsonb(NEW);
            ch := ARRAY(SELECT k FROM jsonb_object_keys(n) k WHERE n->k IS DISTINCT FROM o->k);
            INSERT INTO sy_cdc.pending (ci, op, grp, data, changed) VALUES (ci, 3, g, o, ch), (ci, 4, g, n, ch);
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE VIEW sys.schemas AS
    SELECT nspname::varchar(128) AS name, oid::int AS schema_id, 1 AS principal_id FROM pg_namespace
    WHERE nspname NOT LIKE 'pg\_%' AND nspname NOT IN ('information_schema', 'sy_cdc', 'public');
CREATE VIEW sys.tables AS
    SELECT c.relname::varchar(128) AS name, c.oid::int AS object_id, c.relnamespace::int AS schema_id,
        'U'::varchar(2) AS type, 'USER_TABLE'::varchar(60) AS type_desc, (n.nspname = 'cdc') AS is_ms_shipped,
        EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid AND t.tgname = 'sy_cdc_capture') AS is_tracked_by_cdc
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT LIKE 'pg\_%' AND n.nspname NOT IN ('information_schema', 'sy_cdc', 'sys');
CREATE VIEW sys.types AS
    SELECT v.name::varchar(128) AS name, v.id::smallint AS system_type_id, v.id::int AS user_type_id,
        v.len::smallint AS max_length, v.prec::smallint AS "precision", v.sc::smallint AS scale
    FROM (VALUES ('tinyint', 48, 1, 3, 0), ('smallint', 52, 2, 5, 0), ('int', 56, 4, 10, 0), ('bigint', 127, 8, 19, 0),
        ('bit', 104, 1, 1, 0), ('decimal', 106, 17, 38, 38), ('numeric', 108, 17, 38, 38), ('float', 62, 8, 53, 0),
        ('real', 59, 4, 24, 0), ('money', 60, 8, 19, 4), ('smallmoney', 122, 4, 10, 4), ('char', 175, 8000, 0, 0),
        ('varchar', 167, 8000, 0, 0), ('nchar', 239, 8000, 0, 0), ('nvarchar', 231, 8000, 0, 0),
        ('binary', 173, 8000, 0, 0), ('varbinary', 165, 8000, 0, 0), ('date', 40, 3, 10, 0), ('time', 41, 5, 16, 7),
        ('datetime2', 42, 8, 27, 7), ('datetimeoffset', 43, 10, 34, 7), ('datetime', 61, 8, 23, 3),
        ('smalldatetime', 58, 4, 16, 0), ('uniqueidentifier', 36, 16, 0, 0), ('text', 35, 16, 0, 0),
        ('ntext', 99, 16, 0, 0), ('image', 34, 16, 0, 0), ('xml', 241, -1, 0, 0)) v(name, id, len, prec, sc);
-- sys.columns from the SQL Server declarations the double keeps in column comments ('nvarchar(40)|Name')
CREATE VIEW sys.columns AS
    SELECT a.attrelid::int AS object_id, split_part(d.c, '|', 2)::varchar(128) AS name, a.attnum::int AS column_id,
        t.system_type_id, t.user_type_id,
        (CASE WHEN d.arg = 'max' THEN -1
              WHEN t.name IN ('nchar', 'nvarchar') THEN 2 * d.arg::int
              WHEN t.name IN ('char', 'varchar', 'binary', 'varbinary') THEN d.arg::int
              WHEN t.name IN ('decimal', 'numeric') THEN (CASE WHEN split_part(d.arg, ',', 1)::int <= 9 THEN 5
                  WHEN split_part(d.arg, ',', 1)::int <= 19 THEN 9 WHEN split_part(d.arg, ',', 1)::int <= 28 THEN 13
                  ELSE 17 END)
              ELSE t.max_length END)::smallint AS max_length,
        (CASE WHEN t.name IN ('decimal', 'numeric') THEN split_part(d.arg, ',', 1)::int
              ELSE t."precision" END)::smallint AS "precision",
        (CASE WHEN t.name IN ('decimal', 'numeric') THEN split_part(d.arg, ',', 2)::int
              WHEN t.name IN ('datetime2', 'datetimeoffset', 'time') THEN coalesce(d.arg::int, 7)
              ELSE t.scale END)::smallint AS scale,
        (NOT a.attnotnull) AS is_nullable,
        (a.attidentity <> '')::int::smallint AS is_identity, 0::smallint AS is_computed  -- bit: comparable with 1
    FROM pg_attribute a
    CROSS JOIN LATERAL (SELECT col_description(a.attrelid, a.attnum) AS c) c0
    CROSS JOIN LATERAL (SELECT c0.c AS c, lower(regexp_replace(split_part(c0.c, '|', 1), '\(.*$', '')) AS tname,
                        substring(split_part(c0.c, '|', 1) FROM '\((.*)\)') AS arg) d
    JOIN sys.types t ON t.name = d.tname
    WHERE a.attnum > 0 AND NOT a.attisdropped AND c0.c LIKE '%|%';
CREATE FUNCTION public.object_id(name text, kind text DEFAULT NULL) RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT to_regclass(CASE WHEN position('.' IN n) > 0 THEN n ELSE 'dbo.' || n END)::oid::int
    FROM (SELECT lower(replace(replace(name, '[', ''), ']', '')) AS n) x $$;
CREATE FUNCTION public.schema_name(id integer DEFAULT NULL) RETURNS varchar(128) LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN id IS NULL THEN 'dbo' ELSE (SELECT nspname::varchar(128) FROM pg_namespace WHERE oid = id) END $$;
CREATE FUNCTION public.object_name(id integer) RETURNS varchar(128) LANGUAGE sql STABLE AS $$
    SELECT relname::varchar(128) FROM pg_class WHERE oid = id $$;

CREATE FUNCTION sys.sy_lsn_int(l bytea) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$
    SELECT sum(get_byte(l, i)::numeric * (256::numeric ^ (length(l) - 1 - i))) FROM generate_series(0, length(l) - 1) i $$;
CREATE FUNCTION sys.sy_int_lsn(v numeric) RETURNS bytea LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE b bytea := '\x00000000000000000000'; i int; x numeric := v;
BEGIN
    FOR i IN REVERSE 9..0 LOOP
        b := set_byte(b, i, (x % 256)::int); x := trunc(x / 256);
    END LOOP;
    RETURN b;
END $$;
CREATE FUNCTION sys.fn_cdc_get_max_lsn() RETURNS bytea LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT max_lsn FROM sy_cdc.state), '\x00000000000000000000'::bytea) $$;
CREATE FUNCTION sys.fn_cdc_get_min_lsn(ci text) RETURNS bytea LANGUAGE plpgsql STABLE AS $$
DECLARE r bytea;
BEGIN
    IF to_regclass('cdc.change_tables') IS NULL THEN RETURN '\x00000000000000000000'::bytea; END IF;
    EXECUTE 'SELECT start_lsn FROM cdc.change_tables WHERE capture_instance = $1' INTO r USING ci;
    RETURN coalesce(r, '\x00000000000000000000'::bytea);
END $$;
CREATE FUNCTION sys.fn_cdc_increment_lsn(l bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT sys.sy_int_lsn(sys.sy_lsn_int(l) + 1) $$;
CREATE FUNCTION sys.fn_cdc_decrement_lsn(l bytea) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT sys.sy_int_lsn(greatest(sys.sy_lsn_int(l) - 1, 0)) $$;
CREATE FUNCTION sys.fn_cdc_map_lsn_to_time(l bytea) RETURNS timestamp LANGUAGE plpgsql STABLE AS $$
DECLARE r timestamp;
BEGIN
    IF to_regclass('cdc.lsn_time_mapping') IS NULL THEN RETURN NULL; END IF;
    EXECUTE 'SELECT tran_end_time FROM cdc.lsn_time_mapping WHERE start_lsn = $1' INTO r USING l;
    RETURN r;
END $$;
CREATE FUNCTION sys.fn_cdc_map_time_to_lsn(rel text, t timestamp) RETURNS bytea LANGUAGE plpgsql STABLE AS $$
DECLARE r bytea;
BEGIN
    IF to_regclass('cdc.lsn_time_mapping') IS NULL THEN RETURN NULL; END IF;
    IF lower(rel) = 'largest less than or equal' THEN
        EXECUTE 'SELECT max(start_lsn) FROM cdc.lsn_time_mapping WHERE tran_end_time <= $1' INTO r USING t;
    ELSIF lower(rel) = 'largest less than' THEN
        EXECUTE 'SELECT max(start_lsn) FROM cdc.lsn_time_mapping WHERE tran_end_time < $1' INTO r USING t;
    ELSIF lower(rel) = 'smallest greater than' THEN
        EXECUTE 'SELECT min(start_lsn) FROM cdc.lsn_time_mapping WHERE tran_end_time > $1' INTO r USING t;
    ELSE
        EXECUTE 'SELECT min(start_lsn) FROM cdc.lsn_time_mapping WHERE tran_end_time >= $1' INTO r USING t;
    END IF;
    RETURN r;
END $$;
"""

ENABLE_DB_SQL = r"""
CREATE SCHEMA cdc;
CREATE TABLE cdc.lsn_time_mapping (start_lsn bytea PRIMARY KEY, tran_begin_time timestamp,
    tran_end_time timestamp, tran_id bytea, tran_begin_lsn bytea);
COMMENT ON COLUMN cdc.lsn_time_mapping.start_lsn IS 'binary(10)|start_lsn';
COMMENT ON COLUMN cdc.lsn_time_mapping.tran_begin_time IS 'datetime|tran_begin_time';
COMMENT ON COLUMN cdc.lsn_time_mapping.tran_end_time IS 'datetime|tran_end_time';
COMMENT ON COLUMN cdc.lsn_time_mapping.tran_id IS 'varbinary(10)|tran_id';
COMMENT ON COLUMN cdc.lsn_time_mapping.tran_begin_lsn IS 'binary(10)|tran_begin_lsn';
CREATE TABLE cdc.change_tables (object_id integer, source_object_id integer, capture_instance varchar(128),
    start_lsn bytea, supports_net_changes smallint, role_name varchar(128), create_date timestamp,
    source_schema varchar(128), source_name varchar(128), captured_columns text[]);
COMMENT ON COLUMN cdc.change_tables.start_lsn IS 'binary(10)|start_lsn';
COMMENT ON COLUMN cdc.change_tables.supports_net_changes IS 'bit|supports_net_changes';
COMMENT ON COLUMN cdc.change_tables.capture_instance IS 'nvarchar(128)|capture_instance';
CREATE FUNCTION cdc.sy_check_range(ci text, a bytea, b bytea) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF a IS NULL OR b IS NULL OR a > b OR a < sys.fn_cdc_get_min_lsn(ci) OR b > sys.fn_cdc_get_max_lsn() THEN
        RAISE EXCEPTION 'An insufficient number of arguments were supplied for the procedure or function cdc.fn_cdc_get_all_changes_ ... .'
            USING ERRCODE = 'SY313';
    END IF;
    RETURN true;
END $$;
UPDATE sy_cdc.state SET enabled = true;
"""


class CdcError(Exception):
    def __init__(self, number, text):
        super().__init__(text)
        self.number, self.text = number, text


def enable_db(cur) -> None:
    cur.execute("SELECT enabled FROM sy_cdc.state")
    if cur.fetchone()[0]:
        return
    cur.execute(ENABLE_DB_SQL)


def enable_table(cur, db: str, schema: str, table: str, ci: str | None, role, supports_net: int) -> str:
    """Create capture instance ci (default schema_table) for schema.table: change table, trigger, row."""
    cur.execute("SELECT enabled FROM sy_cdc.state")
    if not cur.fetchone()[0]:
        raise CdcError(22901, f"The database '{db}' is not enabled for Change Data Capture. Ensure that the "
                              "correct database context is set, and retry the operation. To report on the "
                              "databases enabled for Change Data Capture, query the is_cdc_enabled column in "
                              "the sys.databases catalog view.")
    cur.execute("SELECT to_regclass(%s)", (f'"{schema}"."{table}"',))
    oid_row = cur.fetchone()
    if oid_row[0] is None:
        raise CdcError(22914, f"Only members of the sysadmin or db_owner or db_owner role can perform this "
                              f"operation when a schema or table does not exist. Source table '{schema}.{table}' does not exist.")
    ci = (ci or f"{schema}_{table}").lower()
    cur.execute("SELECT count(*) FROM cdc.change_tables WHERE source_schema = %s AND source_name = %s",
                (schema, table))
    if cur.fetchone()[0] >= 2:
        raise CdcError(22962, f"Two capture instances already exist for source table '{schema}.{table}'. A "
                              "table can have a maximum of two capture instances. If this is not a disabled "
                              "capture instance, drop one of the existing capture instances and retry the operation.")
    cur.execute("SELECT 1 FROM cdc.change_tables WHERE capture_instance = %s", (ci,))
    if cur.fetchone():
        raise CdcError(22926, f"Could not create a capture instance because the capture instance name '{ci}' "
                              "already exists in the current database. Specify an explicit unique name for "
                              "the parameter @capture_instance.")
    cur.execute("""SELECT a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum)
                   FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
                   ORDER BY a.attnum""", (f'"{schema}"."{table}"',))
    cols = cur.fetchall()
    defs = ", ".join(f'"{n}" {t}' for n, t, _c in cols)
    ct = change_table(ci)
    cur.execute(f'CREATE TABLE {ct} ("__$start_lsn" bytea NOT NULL, "__$seqval" bytea NOT NULL, '
                f'"__$operation" integer NOT NULL, "__$update_mask" bytea, {defs})')
    for n, t in (("__$start_lsn", "binary(10)"), ("__$seqval", "binary(10)"), ("__$operation", "int"),
                 ("__$update_mask", "varbinary(128)")):
        cur.execute(f'COMMENT ON COLUMN {ct}."{n}" IS %s', (f"{t}|{n}",))
    for n, _t, c in cols:
        if c:
            cur.execute(f'COMMENT ON COLUMN {ct}."{n}" IS %s', (c,))
    cur.execute(f'CREATE INDEX ON {ct} ("__$start_lsn", "__$seqval", "__$operation")')
    # reserve a commit number: the instance starts just before anything committed after this
    cur.execute("SELECT nextval('sy_cdc.commit_seq')")
    start = lsn(cur.fetchone()[0])
    cur.execute("""INSERT INTO cdc.change_tables (object_id, source_object_id, capture_instance, start_lsn,
                   supports_net_changes, role_name, create_date, source_schema, source_name, captured_columns)
                   VALUES (to_regclass(%s)::oid::int, to_regclass(%s)::oid::int, %s, %s, %s, %s, now(), %s, %s, %s)""",
                (ct, f'"{schema}"."{table}"', ci, start, supports_net, role, schema, table, [n for n, _t, _c in cols]))
    _install_trigger(cur, schema, table)
    return ci


def change_table(ci: str) -> str:
    """The change table of capture instance ci as a quoted PostgreSQL name: a capture instance may hold a
    space, a quote, a bracket or a double quote (SQL Server's cdc.[<ci>_CT])."""
    return 'cdc."' + (ci + "_ct").replace('"', '""') + '"'


def _install_trigger(cur, schema, table) -> None:
    cur.execute("SELECT array_agg(capture_instance ORDER BY capture_instance) FROM cdc.change_tables "
                "WHERE source_schema = %s AND source_name = %s", (schema, table))
    cis = cur.fetchone()[0] or []
    cur.execute(f'DROP TRIGGER IF EXISTS sy_cdc_capture ON "{schema}"."{table}"')
    if cis:
        args = ", ".join("'" + c.replace("'", "''") + "'" for c in cis)
        cur.execute(f'CREATE TRIGGER sy_cdc_capture AFTER INSERT OR UPDATE OR DELETE ON "{schema}"."{table}" '
                    f'FOR EACH ROW EXECUTE FUNCTION sy_cdc.capture_row({args})')


def disable_table(cur, schema, table, ci) -> None:
    cur.execute("SELECT capture_instance FROM cdc.change_tables WHERE source_schema = %s AND source_name = %s "
                "AND (%s = 'all' OR capture_instance = %s)", (schema, table, (ci or "all").lower(), (ci or "").lower()))
    for (name,) in cur.fetchall():
        cur.execute(f'DROP TABLE IF EXISTS {change_table(name)}')
        cur.execute("DELETE FROM cdc.change_tables WHERE capture_instance = %s", (name,))
        cur.execute("DELETE FROM sy_cdc.pending WHERE ci = %s", (name,))
    _install_trigger(cur, schema, table)


def cleanup(cur, ci: str, low_water_mark: bytes | None) -> None:
    """sys.sp_cdc_cleanup_change_table: drop rows below the mark, raise the instance's minimum LSN."""
    ci = ci.lower()
    cur.execute("SELECT start_lsn FROM cdc.change_tables WHERE capture_instance = %s", (ci,))
    row = cur.fetchone()
    if not row:
        raise CdcError(22985, f"Could not find a capture instance named '{ci}'.")
    if low_water_mark is None:
        cur.execute("SELECT sys.fn_cdc_get_max_lsn()")
        low_water_mark = bytes(cur.fetchone()[0])
    cur.execute(f'DELETE FROM {change_table(ci)} WHERE "__$start_lsn" < %s', (low_water_mark,))
    cur.execute("UPDATE cdc.change_tables SET start_lsn = greatest(start_lsn, %s) WHERE capture_instance = %s",
                (low_water_mark, ci))


def _update_mask(columns: list[str], changed: set[str] | None) -> bytes:
    """SQL Server's __$update_mask: bit i (from the last byte's lowest bit) set for changed column i+1."""
    n = len(columns)
    v = 0
    for i, c in enumerate(columns):
        if changed is None or c in changed:
            v |= 1 << i
    return v.to_bytes((n + 7) // 8 or 1, "big")


def capture_once(cur, delay_s: float) -> int:
    """Move committed transactions older than delay_s into the change tables; returns how many. Inside the
    caller's transaction, one scan at a time per database (the capture job and sys.sp_cdc_scan)."""
    cur.execute("SELECT pg_advisory_xact_lock(715101)")
    cur.execute("SELECT enabled FROM sy_cdc.state")
    if not cur.fetchone()[0]:
        return 0
    cur.execute("SELECT xid, commit_seq, commit_time FROM sy_cdc.commits ORDER BY commit_seq")
    commits = cur.fetchall()
    cur.execute("SELECT clock_timestamp()::timestamp")
    now = cur.fetchone()[0]
    cur.execute("SELECT capture_instance, source_schema, source_name, captured_columns FROM cdc.change_tables")
    instances = {r[0]: r[1:] for r in cur.fetchall()}
    done = 0
    for xid, seq, ctime in commits:
        if (now - ctime).total_seconds() < delay_s:
            break
        start = lsn(seq)
        cur.execute("SELECT ci, op, grp, data::text, changed, begin_time FROM sy_cdc.pending WHERE xid = %s "
                    "ORDER BY seq", (xid,))
        begin_time = None
        for ci, op, grp, data, changed, btime in cur.fetchall():
            begin_time = begin_time or btime
            if ci not in instances:
                continue
            schema, table, columns = instances[ci]
            mask = _update_mask(columns, set(changed) if op in (3, 4) else None)
            collist = ", ".join(f'r."{c}"' for c in columns)
            names = ", ".join(f'"{c}"' for c in columns)
            cur.execute(f'INSERT INTO {change_table(ci)} ("__$start_lsn", "__$seqval", "__$operation", '
                        f'"__$update_mask", {names}) SELECT %s, %s, %s, %s, {collist} '
                        f'FROM jsonb_populate_record(NULL::"{schema}"."{table}", %s::jsonb) r',
                        (start, seqval(grp), op, mask, data))
        cur.execute("INSERT INTO cdc.lsn_time_mapping VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                    (start, begin_time or ctime, ctime, struct.pack(">Q", xid)[-10:].rjust(10, b"\0"), start))
        cur.execute("DELETE FROM sy_cdc.pending WHERE xid = %s", (xid,))
        cur.execute("DELETE FROM sy_cdc.commits WHERE xid = %s", (xid,))
        cur.execute("UPDATE sy_cdc.state SET max_lsn = %s", (start,))
        done += 1
    return done


class Capture(threading.Thread):
    """The capture job: polls every CDC-enabled database of the double."""

    def __init__(self, connect, databases, delay_s: float, poll_s: float = 0.1):
        super().__init__(daemon=True, name="cdc-capture")
        self.connect, self.databases, self.delay_s, self.poll_s = connect, databases, delay_s, poll_s
        self.stopping = threading.Event()
        self.conns = {}

    def run(self) -> None:
        while not self.stopping.wait(self.poll_s):
            for db in list(self.databases()):
                try:
                    conn = self.conns.get(db)
                    if conn is None or conn.closed:
                        conn = self.conns[db] = self.connect(db)
                    with conn:
                        with conn.cursor() as cur:
                            capture_once(cur, self.delay_s)
                except Exception as e:  # noqa: BLE001 - the job retries, like SQL Server's agent job
                    self.conns.pop(db, None)
                    print(f"sqlserver-double: capture in {db}: {e}", flush=True)

    def stop(self) -> None:
        self.stopping.set()
        self.join(5)
        for c in self.conns.values():
            try:
                c.close()
            except Exception:  # noqa: BLE001
                pass
