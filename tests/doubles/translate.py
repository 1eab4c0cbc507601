"""T-SQL -> PostgreSQL for the SQL Server double (test code, never shipped).

A batch is split into statements; statements SQL Server runs itself (transactions, SET, USE, EXEC of system
procedures, WAITFOR, CREATE LOGIN, ...) are recognized here and executed by server.py; the rest is bound
(parameters and variables become typed PostgreSQL literals, @@TRANCOUNT / SCOPE_IDENTITY() and friends become
values) and translated with sqlglot, with fixes for what sqlglot leaves T-SQL shaped: SQL Server's types (our
own mapping), OUTPUT inserted./deleted., 0x literals, identifier case (SQL Server compares names without case:
names are stored lower case, result columns keep the spelling of the query or of CREATE TABLE), NULL
ordering, and the CDC table-valued functions."""

from __future__ import annotations

import collections
import copy
import datetime as dt
import decimal
import re
import threading
import uuid

import sqlglot
from sqlglot import exp

import cdc
from tds_types import SqlType, TypeError_

NONAME = "__sy_noname_"
MARK_RE = re.compile(r'"?__syp(\d+)__"?')


class TranslateError(Exception):
    """Maps to a SQL Server error: number, class, text."""

    def __init__(self, number: int, text: str, klass: int = 16, state: int = 1):
        super().__init__(text)
        self.number, self.klass, self.state, self.text = number, klass, state, text


def syntax_error(near: str) -> TranslateError:
    return TranslateError(102, f"Incorrect syntax near '{near}'.", 15)


# --- splitting a batch -------------------------------------------------------------------------------------

_STMT_START = re.compile(
    r"(?:SELECT|INSERT|UPDATE|DELETE|MERGE|CREATE|DROP|ALTER|TRUNCATE|BEGIN|COMMIT|ROLLBACK|SAVE|SET|DECLARE|"
    r"EXEC|EXECUTE|USE|WAITFOR|PRINT|RAISERROR|THROW|IF|GRANT|DENY|REVOKE|WITH)\b", re.I)


def _scan(sql: str):
    """Yield (kind, start, end) over sql: 'str' for '...', 'qid' for "..."/[...], 'comment', 'code' chars."""
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "'" or (c in "Nn" and i + 1 < n and sql[i + 1] == "'" and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] in "_@#$"))):
            j = i + (2 if c in "Nn" else 1)
            while True:
                k = sql.find("'", j)
                if k < 0:
                    raise TranslateError(105, f"Unclosed quotation mark after the character string '{sql[j:]}'.", 15)
                if k + 1 < n and sql[k + 1] == "'":
                    j = k + 2
                    continue
                break
            yield "str", i, k + 1
            i = k + 1
        elif c == '"' or c == "[":
            close = '"' if c == '"' else "]"
            j = i + 1
            while True:
                k = sql.find(close, j)
                if k < 0:
                    raise syntax_error(sql[i:i + 20])
                if k + 1 < n and sql[k + 1] == close:
                    j = k + 2
                    continue
                break
            yield "qid", i, k + 1
            i = k + 1
        elif sql.startswith("--", i):
            k = sql.find("\n", i)
            k = n if k < 0 else k
            yield "comment", i, k
            i = k
        elif sql.startswith("/*", i):
            k = sql.find("*/", i + 2)
            k = n if k < 0 else k + 2
            yield "comment", i, k
            i = k
        else:
            yield "code", i, i + 1
            i += 1


def strip_comments(sql: str) -> str:
    return "".join(" " if kind == "comment" else sql[a:b] for kind, a, b in _scan(sql)).strip()


def split_batch(sql: str) -> list[str]:
    """Statements of a batch: split at top-level ';' and, for statements that do not use ';', before a
    statement keyword at the start of a line (T-SQL needs no separator)."""
    out, cur, depth = [], [], 0
    text = strip_comments(sql)
    pieces = list(_scan(text))
    line_start = True
    for kind, a, b in pieces:
        s = text[a:b]
        if kind == "code":
            if s == "(":
                depth += 1
            elif s == ")":
                depth -= 1
            elif s == ";" and depth == 0:
                out.append("".join(cur))
                cur = []
                line_start = True
                continue
            if line_start and depth == 0 and s.strip() and "".join(cur).strip() and _STMT_START.match(text, a) \
                    and not _continues(("".join(cur)), text, a):
                out.append("".join(cur))
                cur = []
            if s == "\n":
                line_start = True
            elif s.strip():
                line_start = False
        else:
            line_start = False
        cur.append(s)
    out.append("".join(cur))
    return [part for s in out if s.strip() for part in _split_after_tran_control(s.strip())]


# COMMIT/ROLLBACK [TRAN|TRANSACTION|WORK [name]] (or IF @@TRANCOUNT > 0 ... of them), SET <option>[, ...] ON|OFF,
# SET IDENTITY_INSERT <table> ON|OFF and SET TRANSACTION ISOLATION LEVEL <level> end where a statement keyword
# follows on the same line: a keyword is never a transaction name, an option or a level (WITH after COMMIT is
# its DELAYED_DURABILITY clause). mssql-jdbc's setAutoCommit(true) sends
# "set implicit_transactions off IF @@TRANCOUNT > 0 COMMIT TRAN " as one line.
_KEYWORD_AHEAD = r"(?=(?!WITH\b)" + _STMT_START.pattern + r")"
_TRAN_CONTROL_THEN = re.compile(
    r"^((?:IF\s+@@TRANCOUNT\s*>\s*0\s+)?(?:COMMIT|ROLLBACK)"
    r"(?:\s+(?:TRAN|TRANSACTION|WORK)(?:\s+(?!" + _STMT_START.pattern + r")[\w@#]+)?)?"
    r"|SET\s+IDENTITY_INSERT\s+[\w.\[\]\"#]+\s+(?:ON|OFF)"
    r"|SET\s+TRANSACTION\s+ISOLATION\s+LEVEL\s+(?:READ\s+UNCOMMITTED|READ\s+COMMITTED|REPEATABLE\s+READ|SNAPSHOT"
    r"|SERIALIZABLE)"
    r"|SET\s+\w+(?:\s*,\s*\w+)*\s+(?:ON|OFF))\s+" + _KEYWORD_AHEAD + r"(.*)$", re.I | re.S)


def _split_after_tran_control(stmt: str) -> list[str]:
    m = _TRAN_CONTROL_THEN.match(stmt)
    if not m:
        return [stmt]
    return [m.group(1)] + _split_after_tran_control(m.group(2).strip())


_PARSED_FIRST = re.compile(r"^\s*(SELECT|INSERT|UPDATE|MERGE|WITH|CREATE\s+TABLE|DELETE)\b", re.I)
_DELETE_OUTPUT = re.compile(r"^\s*DELETE\s+(?:FROM\s+)?(\S+)\s+OUTPUT\s+(.*?)(\s+WHERE\s+.*)?$", re.I | re.S)


def syntax_check(stmts: list[str]) -> None:
    """SQL Server compiles a whole batch before running it: a syntax error anywhere (102) runs nothing."""
    for stmt in stmts:
        if _PARSED_FIRST.match(stmt) and not _DELETE_OUTPUT.match(stmt):
            try:
                sqlglot.parse(stmt, read="tsql")
            except sqlglot.errors.ParseError as e:
                errs = getattr(e, "errors", None) or [{}]
                raise syntax_error((errs[0].get("highlight") or "").strip() or stmt.split()[0])


def _continues(prev: str, text: str, pos: int) -> bool:
    """A statement keyword at a line start that still belongs to the statement before it: INSERT ... / SELECT,
    ... UNION / SELECT, WITH cte AS (...) / SELECT, and the body of an IF whose condition ended the line."""
    p = prev.strip().upper()
    flat = p
    while re.search(r"\([^()]*\)", flat):                    # drop parenthesized parts (EXISTS (SELECT ..))
        flat = re.sub(r"\([^()]*\)", " ", flat)
    if text[pos:pos + 6].upper() == "SELECT":
        if re.search(r"\b(UNION(\s+ALL)?|EXCEPT|INTERSECT)$", p):
            return True
        if re.match(r"^(INSERT|WITH)\b", flat) and not re.search(r"\b(VALUES|SELECT)\b", flat):
            return True
    if re.match(r"^IF\b", p):
        return not _STMT_START.search(flat, 2)            # no body yet: this keyword is the body
    return False


# --- binding: parameters, variables, @@functions -----------------------------------------------------------

def pg_literal(value, t: SqlType | None) -> str:
    """A PostgreSQL literal for a parameter or variable value of SQL Server type t."""
    if value is None:
        return "NULL"          # untyped, as SQL Server converts a NULL of any type implicitly
    name = t.name if t else None
    if isinstance(value, bool) or name == "bit":
        return f"{int(bool(value))}::smallint"
    if isinstance(value, int) and name in (None, "tinyint", "smallint", "int", "bigint"):
        # parenthesized: '::' binds tighter than a unary minus (-2147483648::integer overflows)
        return f"({value})::{pg_type(t) if t else ('integer' if -2**31 <= value < 2**31 else 'bigint')}"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise TranslateError(8023, "The incoming tabular data stream (TDS) remote procedure call (RPC) protocol stream is incorrect. Parameter has an invalid floating point value.")
        return f"({value!r})::{'real' if name == 'real' else 'double precision'}"
    if isinstance(value, decimal.Decimal):
        return f"({value})::numeric" if not t or t.name != "decimal" else f"({value})::numeric({t.precision},{t.scale})"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"'\\x{bytes(value).hex()}'::bytea"
    if isinstance(value, uuid.UUID):
        return f"'{value}'::uuid"
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None or name == "datetimeoffset":
            return quote_str(format_dto(value))
        return f"'{value.isoformat(sep=' ')}'::timestamp"
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'::date"
    if isinstance(value, dt.time):
        return f"'{value.isoformat()}'::time"
    s = str(value)
    if name == "uniqueidentifier":
        return f"{quote_str(s)}::uuid"
    return quote_str(s)


def quote_str(s: str) -> str:
    return "'" + s.replace("\0", "").replace("'", "''") + "'"


def format_dto(v: dt.datetime) -> str:
    """datetimeoffset's stored text: 'YYYY-MM-DD HH:MM:SS.ffffff +HH:MM'."""
    off = v.utcoffset() or dt.timedelta(0)
    mins = int(off.total_seconds() // 60)
    sign = "+" if mins >= 0 else "-"
    mins = abs(mins)
    return f"{v.replace(tzinfo=None).isoformat(sep=' ', timespec='microseconds')} {sign}{mins // 60:02d}:{mins % 60:02d}"


def pg_type(t: SqlType) -> str:
    """The PostgreSQL type that stores SQL Server type t."""
    n = t.name
    if n in ("tinyint", "smallint", "bit"):
        return "smallint"
    if n == "int":
        return "integer"
    if n == "bigint":
        return "bigint"
    if n == "decimal":
        return f"numeric({t.precision},{t.scale})"
    if n == "float":
        return "double precision"
    if n == "real":
        return "real"
    if n in ("varchar", "nvarchar"):
        return "text" if t.is_max else f"varchar({t.length})"
    if n in ("char", "nchar"):
        return f"char({t.length})"
    if n in ("varbinary", "binary"):
        return "bytea"
    if n in ("datetime2", "datetime", "smalldatetime"):
        return f"timestamp({min(t.scale if n == 'datetime2' else 3, 6)})"
    if n == "date":
        return "date"
    if n == "time":
        return f"time({min(t.scale, 6)})"
    if n == "uniqueidentifier":
        return "uuid"
    return "text"          # datetimeoffset (keeps its offset as text), xml, sql_variant


_VAR_RE = re.compile(r"@@?[A-Za-z_][A-Za-z0-9_@#$]*|\b(SCOPE_IDENTITY|DB_NAME|SUSER_SNAME|USER_NAME|SUSER_NAME|ERROR_MESSAGE|ERROR_NUMBER)\s*\(\s*\)|\b(SYSTEM_USER|CURRENT_USER)\b", re.I)


class Binder:
    """Turns @names and session functions into markers; marker -> (PostgreSQL literal, SqlType)."""

    def __init__(self, lookup):
        self.lookup = lookup        # name ('@p1', '@@TRANCOUNT', 'SCOPE_IDENTITY') -> (value, SqlType|None)
        self.marks: list[tuple[str, SqlType | None]] = []

    def bind(self, stmt: str) -> str:
        res, code = [], []        # substitute in code only, never inside strings or quoted names

        def flush():
            if code:
                res.append(_VAR_RE.sub(self._sub, "".join(code)))
                code.clear()
        for kind, a, b in _scan(stmt):
            if kind == "code":
                code.append(stmt[a:b])
            else:
                flush()
                res.append(stmt[a:b])
        flush()
        return "".join(res)

    def _sub(self, m) -> str:
        word = m.group(0)
        key = re.sub(r"\s*\(\s*\)$", "", word).upper()
        if key.startswith("@"):
            key = word if not word.startswith("@@") else word.upper()
        value, t = self.lookup(key)
        self.marks.append((pg_literal(value, t), t))
        return f"__syp{len(self.marks) - 1}__"

    def unbind(self, sql: str) -> str:
        return MARK_RE.sub(lambda m: self.marks[int(m.group(1))][0], sql)

    def mark_type(self, name: str) -> SqlType | None:
        m = MARK_RE.fullmatch(name)
        return self.marks[int(m.group(1))][1] if m else None


# --- translation -------------------------------------------------------------------------------------------

class Translation:
    def __init__(self, sql: str, kind: str):
        self.sql = sql
        self.kind = kind                      # select | insert | update | delete | merge | ddl | other
        self.hints: dict[int, SqlType] = {}   # result column index -> SqlType (markers, CAST, cdc functions)
        self.names: list[str] | None = None   # result column names as SQL Server spells them
        self.create: tuple[str, str, list] | None = None   # (schema, table, [(name, SqlType, identity)])
        self.returning = ""
        self.target: tuple[str, str] | None = None     # (schema, table) an INSERT writes to
        self.written: tuple[str, str] | None = None    # (schema, table) an INSERT/UPDATE/DELETE/MERGE changes
        self.read: set[tuple[str, str]] = set()        # (schema, table) it reads: SELECT permission (not the
                                                       # target of an UPDATE/DELETE's own WHERE)


_RENAMED_FUNCTIONS = {"DATALENGTH": "octet_length", "NEWSEQUENTIALID": "gen_random_uuid",
                      "SYSDATETIME": "localtimestamp", "SYSUTCDATETIME": "localtimestamp", "GETUTCDATE": "localtimestamp"}

_CDC_BINARY10 = {"fn_cdc_get_max_lsn", "fn_cdc_get_min_lsn", "fn_cdc_increment_lsn", "fn_cdc_decrement_lsn",
                 "fn_cdc_map_time_to_lsn"}


def _tsql_type(dtype: exp.DataType) -> SqlType:
    text = dtype.sql("tsql")
    try:
        return SqlType.parse(text)
    except TypeError_:
        raise TranslateError(2715, f"Column, parameter, or variable #1: Cannot find data type {text}.")


def _pg_datatype(dtype: exp.DataType) -> exp.Expression:
    return exp.DataType.build(pg_type(_tsql_type(dtype)), dialect="postgres")


_CACHE: "collections.OrderedDict[tuple, Translation]" = collections.OrderedDict()
_CACHE_SIZE = 2000
_CACHE_LOCK = threading.Lock()


def translate(stmt: str, binder: Binder) -> Translation:
    """Translate one statement. Parameterized statements repeat: the translation with its markers still in
    place is cached, keyed by the bound text and the markers' types, and only the literals change."""
    bound = binder.bind(stmt)
    key = (bound, tuple(t.sql() if t else None for _lit, t in binder.marks))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
    if hit is None:
        hit = _translate(bound, binder)
        with _CACHE_LOCK:
            _CACHE[key] = hit
            if len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    tr = copy.copy(hit)
    tr.sql = binder.unbind(hit.sql)
    return tr


def _translate(bound: str, binder: Binder) -> Translation:
    returning = ""
    m = _DELETE_OUTPUT.match(bound)
    if m:
        bound = f"DELETE FROM {m.group(1)}{m.group(3) or ''}"
        returning = m.group(2)
    try:
        trees = sqlglot.parse(bound, read="tsql")
    except sqlglot.errors.ParseError as e:
        errs = getattr(e, "errors", None) or [{}]
        near = (errs[0].get("highlight") or "").strip() or bound.split()[0]
        raise syntax_error(near)
    if len(trees) != 1 or trees[0] is None:
        raise syntax_error(bound.split()[0] if bound.split() else ";")
    tree = trees[0]
    if returning:
        sel = sqlglot.parse_one("SELECT " + returning, read="tsql")
        tree.set("returning", exp.Returning(expressions=sel.expressions))
    kind = {exp.Select: "select", exp.Union: "select", exp.Insert: "insert", exp.Update: "update",
            exp.Delete: "delete", exp.Merge: "merge", exp.Create: "ddl", exp.Drop: "ddl", exp.Alter: "ddl",
            exp.TruncateTable: "ddl"}.get(type(tree), "other")
    tr = Translation("", kind)
    if isinstance(tree, exp.Create) and (tree.args.get("kind") or "").upper() == "TABLE":
        tr.create = _create_columns(tree)
    if isinstance(tree, exp.Insert):
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if isinstance(target, exp.Table):
            tr.target = ((target.db or "dbo").lower(), target.name.lower())
    if isinstance(tree, (exp.Insert, exp.Update, exp.Delete, exp.Merge)):
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        if isinstance(target, exp.Table):
            tr.written = ((target.db or "dbo").lower(), target.name.lower())
    tr.read = _tables_read(tree, tr.written)
    tree = _rewrite(tree, tr, binder)
    tr.sql = tree.sql(dialect="postgres")          # markers still in: translate() puts the literals in
    return tr


def _tables_read(tree, written) -> set[tuple[str, str]]:
    """The user tables a statement reads (the checks skip names that are no table of the database: catalog
    views, CDC functions, temp tables), without CTE names and without the statement's own write target."""
    if not isinstance(tree, (exp.Select, exp.Union, exp.Insert, exp.Update, exp.Delete, exp.Merge)):
        return set()
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    out = set()
    for t in tree.find_all(exp.Table):
        if not isinstance(t.this, exp.Identifier) or t.catalog and t.catalog.lower() in ("master", "tempdb"):
            continue
        schema, name = (t.db or "dbo").lower(), t.name.lower()
        if (not t.db and name in ctes) or schema in ("sys", "cdc", "information_schema") or name.startswith("#"):
            continue
        out.add((schema, name))
    if written is not None:
        out.discard(written)
    return out


def _create_columns(tree: exp.Create):
    table = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
    cols = []
    for cd in tree.find_all(exp.ColumnDef):
        kind = cd.args.get("kind")
        if kind is None:
            continue
        ident = any(isinstance(c.args.get("kind"), exp.GeneratedAsIdentityColumnConstraint)
                    for c in cd.args.get("constraints") or [])
        cols.append((cd.name, _tsql_type(kind), ident))
    schema = table.db or "dbo"
    return schema.lower(), table.name.lower(), cols


def _rewrite(tree: exp.Expression, tr: Translation, binder: Binder) -> exp.Expression:
    # result column names and type hints of a top-level SELECT (or the first SELECT of a UNION)
    top = tree
    while isinstance(top, exp.Union):
        top = top.this
    ret = tree.args.get("returning") if isinstance(tree, (exp.Insert, exp.Update, exp.Delete)) else None
    outer = top if isinstance(top, exp.Select) and tr.kind == "select" else ret
    if outer is not None:
        tr.names = []
        new = []
        for i, e in enumerate(outer.expressions):
            if isinstance(e, exp.Column) and e.table.lower() in ("inserted", "deleted") and ret is not None:
                e = exp.column(e.this)
            name, inner = None, e
            if isinstance(e, exp.Alias):
                name, inner = e.alias, e.this
            elif isinstance(e, exp.Star) or (isinstance(e, exp.Column) and isinstance(e.this, exp.Star)):
                name = "*"
            elif isinstance(e, exp.Column) and not MARK_RE.fullmatch(e.name):
                name = e.name
            hint = None
            if isinstance(inner, exp.Column) and MARK_RE.fullmatch(inner.name):
                hint = binder.mark_type(inner.name)
            elif isinstance(inner, exp.Cast):
                hint = _tsql_type(inner.args["to"])
            elif re.match(r"^(?:sys\.)?(\w+)\(", inner.sql(), re.I) and \
                    re.match(r"^(?:sys\.)?(\w+)\(", inner.sql(), re.I).group(1).lower() in _CDC_BINARY10:
                hint = SqlType("binary", length=10)
            elif re.match(r"^(?:sys\.)?fn_cdc_map_lsn_to_time\(", inner.sql(), re.I):
                hint = SqlType("datetime")
            if hint is not None:
                tr.hints[i] = hint
            if name is None:
                name = ""
                e = exp.alias_(inner, f"{NONAME}{i}", quoted=True)
            elif name != "*" and not isinstance(e, exp.Alias):
                e = exp.alias_(inner, name, quoted=True)
            elif isinstance(e, exp.Alias):
                e = exp.alias_(inner, name, quoted=True)
            tr.names.append(name)
            new.append(e)
        outer.set("expressions", new)

    def fix(node):
        if isinstance(node, exp.DataType) and not isinstance(node.parent, exp.DataType):
            if node.this in (exp.DataType.Type.USERDEFINED,) and not node.args.get("kind"):
                return node
            return _pg_datatype(node)
        if isinstance(node, exp.Identifier):
            parent = node.parent
            if isinstance(parent, exp.Alias):
                return node
            if node.this.startswith(NONAME):
                return node
            return exp.Identifier(this=node.this.lower(), quoted=node.quoted)
        if isinstance(node, exp.Anonymous) and node.name.upper() in _RENAMED_FUNCTIONS:
            return exp.Anonymous(this=_RENAMED_FUNCTIONS[node.name.upper()], expressions=node.expressions)
        if isinstance(node, exp.HexString):
            return exp.cast(exp.Literal.string("\\x" + node.this.lower()), "bytea")
        if isinstance(node, exp.Ordered) and isinstance(node.parent, (exp.PrimaryKey, exp.UniqueColumnConstraint,
                                                                      exp.Unique if hasattr(exp, "Unique") else exp.PrimaryKey)):
            return node.this
        if isinstance(node, exp.Column) and node.table.lower() in ("inserted", "deleted") \
                and isinstance(node.parent, exp.Returning):
            return exp.column(node.this)
        if isinstance(node, exp.Table) and node.catalog:
            node.set("catalog", None)           # db.dbo.t: the session is connected to that database
        return node

    tree = tree.transform(fix)
    tree = _cdc_functions(tree)
    return tree


def _cdc_functions(tree):
    """cdc.fn_cdc_get_all_changes_<ci>(from, to, mode) -> a subquery on the change table (so result columns
    keep their table origin and types), guarded by cdc.sy_check_range, which raises SQL Server's error 313."""
    def fix(node):
        if isinstance(node, exp.Table) and isinstance(node.this, (exp.Anonymous,)):
            fn = node.this
            name = fn.name.lower()
            m = re.match(r"fn_cdc_get_(all|net)_changes_(.+)$", name, re.S)  # any name, as cdc.[...] quotes it
            if m and node.db.lower() == "cdc":
                ci = m.group(2)
                a, b, mode = (fn.expressions + [None, None, None])[:3]
                if mode is None:
                    raise TranslateError(313, f"An insufficient number of arguments were supplied for the procedure or function cdc.fn_cdc_get_{m.group(1)}_changes_{ci}.")
                lit = ci.replace("'", "''")
                q = sqlglot.parse_one(
                    f"SELECT t.* FROM {cdc.change_table(ci)} AS t WHERE cdc.sy_check_range('{lit}', sy_a, sy_b) "
                    f"AND t.__$start_lsn >= sy_a AND t.__$start_lsn <= sy_b "
                    f"AND (t.__$operation <> 3 OR sy_m = 'all update old')", read="postgres")
                args = {"sy_a": a, "sy_b": b, "sy_m": mode}
                q = q.transform(lambda n: args[n.name].copy() if isinstance(n, exp.Column) and n.name in args else n)
                alias = node.args.get("alias") or exp.TableAlias(this=exp.to_identifier("fn_cdc"))
                return exp.Subquery(this=q, alias=alias)
        return node
    return tree.transform(fix)
