"""Database users, roles and permissions of the SQL Server double, kept per database in PostgreSQL tables (so
GRANT/DENY/REVOKE are transactional, as in SQL Server) and shown as sys.database_principals,
sys.database_role_members and sys.database_permissions. Enforced: database access (a login without a user of
its own enters as guest only where guest holds CONNECT: master, tempdb, msdb, or after GRANT CONNECT TO guest;
else 916, or 4060 at login), and SELECT, INSERT, UPDATE and DELETE on tables (error 229 class 14), as SQL Server
decides them: a DENY at the object, its schema or the database, to the user, a role it is in or public, wins over
any GRANT; members of sysadmin and the database owner (user dbo) are never checked (DENY does not apply to them);
db_owner members may read and write unless denied, db_datareader members read, db_datawriter members write;
db_denydatareader / db_denydatawriter members may not. Not enforced: EXECUTE, DDL, column permissions, SELECT
on the target of an UPDATE/DELETE's own WHERE, ownership chains (README.md)."""

from __future__ import annotations

import re

BASE_SQL = r"""
CREATE TABLE sys.sy_principals (principal_id int PRIMARY KEY, name text NOT NULL, type char(1) NOT NULL,
    login text, default_schema text);
CREATE UNIQUE INDEX sy_principals_name ON sys.sy_principals (lower(name));
INSERT INTO sys.sy_principals (principal_id, name, type) VALUES (0, 'public', 'R'), (1, 'dbo', 'S'),
    (2, 'guest', 'S'), (3, 'INFORMATION_SCHEMA', 'S'), (4, 'sys', 'S'), (16384, 'db_owner', 'R'),
    (16385, 'db_accessadmin', 'R'), (16386, 'db_securityadmin', 'R'), (16387, 'db_ddladmin', 'R'),
    (16389, 'db_backupoperator', 'R'), (16390, 'db_datareader', 'R'), (16391, 'db_datawriter', 'R'),
    (16392, 'db_denydatareader', 'R'), (16393, 'db_denydatawriter', 'R');
CREATE SEQUENCE sys.sy_principal_id START 5;
CREATE TABLE sys.sy_role_members (role_principal_id int NOT NULL, member_principal_id int NOT NULL,
    PRIMARY KEY (role_principal_id, member_principal_id));
CREATE TABLE sys.sy_permissions (class smallint NOT NULL, major_id int NOT NULL, grantee_principal_id int NOT NULL,
    permission_name text NOT NULL, state char(1) NOT NULL,
    PRIMARY KEY (class, major_id, grantee_principal_id, permission_name));
CREATE VIEW sys.database_principals AS
    SELECT name::varchar(128) AS name, principal_id, type::char(1) AS type,
        (CASE type WHEN 'S' THEN 'SQL_USER' WHEN 'R' THEN 'DATABASE_ROLE' WHEN 'A' THEN 'APPLICATION_ROLE'
            ELSE 'OTHER' END)::varchar(60) AS type_desc,
        default_schema::varchar(128) AS default_schema_name, (principal_id >= 16384) AS is_fixed_role
    FROM sys.sy_principals;
CREATE VIEW sys.database_role_members AS SELECT role_principal_id, member_principal_id FROM sys.sy_role_members;
CREATE VIEW sys.database_permissions AS
    SELECT class::smallint AS class,
        (CASE class WHEN 0 THEN 'DATABASE' WHEN 1 THEN 'OBJECT_OR_COLUMN' ELSE 'SCHEMA' END)::varchar(60) AS class_desc,
        major_id, 0 AS minor_id, grantee_principal_id, 1 AS grantor_principal_id,
        (CASE permission_name WHEN 'INSERT' THEN 'IN' WHEN 'UPDATE' THEN 'UP' WHEN 'DELETE' THEN 'DL'
            WHEN 'SELECT' THEN 'SL' WHEN 'EXECUTE' THEN 'EX' WHEN 'CONNECT' THEN 'CO' ELSE 'XX' END)::char(4) AS type,
        permission_name::varchar(128) AS permission_name, state::char(1) AS state,
        (CASE state WHEN 'G' THEN 'GRANT' WHEN 'D' THEN 'DENY' ELSE 'GRANT_WITH_GRANT_OPTION' END)::varchar(60)
            AS state_desc
    FROM sys.sy_permissions;
"""

DB_OWNER, DB_SECURITYADMIN, DB_DATAWRITER, DB_DENYDATAWRITER = 16384, 16386, 16391, 16393
DB_DATAREADER, DB_DENYDATAREADER = 16390, 16392
GUEST_DATABASES = {"master", "tempdb", "msdb"}    # guest holds CONNECT there (SQL Server's defaults)
CLASS_DATABASE, CLASS_OBJECT, CLASS_SCHEMA = 0, 1, 3
_UNGRANTABLE = {"dbo", "sys", "information_schema"}
_NAME = r"\[?([\w#$@ ]+?)\]?"


class PermError(Exception):
    def __init__(self, number: int, text: str, klass: int = 16, state: int = 1):
        super().__init__(text)
        self.number, self.text, self.klass, self.state = number, text, klass, state


def _unbracket(name: str) -> str:
    name = name.strip()
    return name[1:-1] if name.startswith("[") and name.endswith("]") else name


class Permissions:
    """One session's view of the current database's principals; query(sql, args) -> rows runs in the session's
    own PostgreSQL connection (and transaction); sysadmin: whether the session's login is in sysadmin."""

    def __init__(self, query, login: str, sysadmin: bool, db: str = "master"):
        self.query, self.login, self.sysadmin, self.db = query, login, sysadmin, db

    # --- who the session is ------------------------------------------------------------------------------
    def user(self) -> tuple[int, str]:
        """(principal_id, name) of the session's database user. A sysadmin login is dbo in every database; any
        other login is its own user here, else guest when guest holds CONNECT (granted in master and tempdb,
        revoked elsewhere, as in SQL Server), else it has no access (PermError 916, as SQL Server's USE says)."""
        if self.sysadmin:
            return 1, "dbo"
        rows = self.query("SELECT principal_id, name FROM sys.sy_principals WHERE lower(login) = lower(%s) "
                          "AND type <> 'R'", (self.login,))
        if rows:
            return rows[0][0], rows[0][1]
        if self.db.lower() in GUEST_DATABASES or self.query(
                "SELECT 1 FROM sys.sy_permissions WHERE class = 0 AND grantee_principal_id = 2 AND "
                "permission_name = 'CONNECT' AND state IN ('G', 'W')"):
            return 2, "guest"
        raise PermError(916, f'The server principal "{self.login}" is not able to access the database "{self.db}" '
                             "under the current security context.", 14, 1)

    def _roles(self, uid: int) -> set[int]:
        seen, todo = {0}, [uid]
        while todo:
            rows = self.query("SELECT role_principal_id FROM sys.sy_role_members WHERE member_principal_id = %s",
                              (todo.pop(),))
            for (r,) in rows:
                if r not in seen:
                    seen.add(r)
                    todo.append(r)
        return seen

    # --- enforcement ---------------------------------------------------------------------------------------
    def check_write(self, db: str, schema: str, table: str, perms: list[str]) -> None:
        self.check_table(db, schema, table, perms, DB_DATAWRITER, DB_DENYDATAWRITER)

    def check_read(self, db: str, schema: str, table: str) -> None:
        self.check_table(db, schema, table, ["SELECT"], DB_DATAREADER, DB_DENYDATAREADER)

    def check_table(self, db: str, schema: str, table: str, perms: list[str], role: int, deny_role: int) -> None:
        uid, _ = self.user()
        if uid == 1:
            return
        rows = self.query("SELECT t.object_id, t.schema_id, t.name FROM sys.tables t JOIN sys.schemas s "
                          "ON s.schema_id = t.schema_id WHERE lower(s.name) = %s AND lower(t.name) = %s",
                          (schema, table))
        if not rows:
            return                                    # no such table: the statement itself fails (208)
        obj, sch, shown = rows[0]
        principals = self._roles(uid) | {uid}
        for perm in perms:
            states = {s for (s,) in self.query(
                "SELECT state FROM sys.sy_permissions WHERE permission_name = %s AND grantee_principal_id = ANY(%s) "
                "AND ((class = 0) OR (class = 3 AND major_id = %s) OR (class = 1 AND major_id = %s))",
                (perm, sorted(principals), sch, obj))}
            denied = "D" in states or deny_role in principals
            granted = bool(states & {"G", "W"}) or DB_OWNER in principals or role in principals
            if denied or not granted:
                raise PermError(229, f"The {perm} permission was denied on the object '{shown}', database '{db}', "
                                     f"schema '{schema}'.", 14, 5)

    def may_administer(self) -> bool:
        uid, _ = self.user()
        return uid == 1 or bool(self._roles(uid) & {DB_OWNER, DB_SECURITYADMIN})

    # --- statements ----------------------------------------------------------------------------------------
    def principal(self, name: str, what: str = "user") -> tuple[int, str, str]:
        rows = self.query("SELECT principal_id, name, type FROM sys.sy_principals WHERE lower(name) = lower(%s)",
                          (_unbracket(name),))
        if not rows:
            raise PermError(15151, f"Cannot find the {what} '{_unbracket(name)}', because it does not exist or you "
                                   "do not have permission.", 16, 1)
        return rows[0]

    def create_user(self, name: str, login: str | None, logins: dict) -> list[tuple[str, tuple]]:
        if self.query("SELECT 1 FROM sys.sy_principals WHERE lower(name) = lower(%s)", (name,)):
            raise PermError(15023, f"User, group, or role '{name}' already exists in the current database.", 16, 1)
        if login is not None:
            if login.lower() not in logins:
                raise PermError(15007, f"'{login}' is not a valid login or you do not have permission.", 16, 1)
            if self.query("SELECT 1 FROM sys.sy_principals WHERE lower(login) = lower(%s)", (login,)):
                raise PermError(15063, "The login already has an account under a different user name.", 16, 1)
        return [("INSERT INTO sys.sy_principals (principal_id, name, type, login, default_schema) "
                 "VALUES (nextval('sys.sy_principal_id'), %s, 'S', %s, 'dbo')", (name, login)),
                ("INSERT INTO sys.sy_permissions SELECT 0, 0, principal_id, 'CONNECT', 'G' FROM sys.sy_principals "
                 "WHERE lower(name) = lower(%s)", (name,))]

    def create_role(self, name: str) -> list[tuple[str, tuple]]:
        if self.query("SELECT 1 FROM sys.sy_principals WHERE lower(name) = lower(%s)", (name,)):
            raise PermError(15023, f"User, group, or role '{name}' already exists in the current database.", 16, 1)
        return [("INSERT INTO sys.sy_principals (principal_id, name, type) "
                 "VALUES (nextval('sys.sy_principal_id'), %s, 'R')", (name,))]

    def create_approle(self, name: str) -> list[tuple[str, tuple]]:
        """CREATE APPLICATION ROLE (type 'A'): shown in sys.database_principals; sp_setapprole is not
        implemented (no session takes its permissions in the double)."""
        if not self.may_administer():
            raise PermError(15247, "User does not have permission to perform this action.", 16, 1)
        if self.query("SELECT 1 FROM sys.sy_principals WHERE lower(name) = lower(%s)", (name,)):
            raise PermError(15023, f"User, group, or role '{name}' already exists in the current database.", 16, 1)
        return [("INSERT INTO sys.sy_principals (principal_id, name, type, default_schema) "
                 "VALUES (nextval('sys.sy_principal_id'), %s, 'A', 'dbo')", (name,))]

    def drop_principal(self, name: str, if_exists: bool) -> list[tuple[str, tuple]]:
        rows = self.query("SELECT principal_id FROM sys.sy_principals WHERE lower(name) = lower(%s)", (name,))
        if not rows:
            if if_exists:
                return []
            raise PermError(15151, f"Cannot drop the user '{name}', because it does not exist or you do not have "
                                   "permission.", 16, 1)
        pid = rows[0][0]
        return [("DELETE FROM sys.sy_permissions WHERE grantee_principal_id = %s", (pid,)),
                ("DELETE FROM sys.sy_role_members WHERE member_principal_id = %s OR role_principal_id = %s",
                 (pid, pid)),
                ("DELETE FROM sys.sy_principals WHERE principal_id = %s", (pid,))]

    def role_member(self, role: str, member: str, add: bool) -> list[tuple[str, tuple]]:
        rid, _, rtype = self.principal(role, "role")
        mid, _, _ = self.principal(member)
        if rtype != "R":
            raise PermError(15410, f"User or role '{_unbracket(role)}' does not exist in this database.", 11, 1)
        if add:
            return [("INSERT INTO sys.sy_role_members VALUES (%s, %s) ON CONFLICT DO NOTHING", (rid, mid))]
        return [("DELETE FROM sys.sy_role_members WHERE role_principal_id = %s AND member_principal_id = %s",
                 (rid, mid))]

    def securable(self, on: str | None) -> tuple[int, int]:
        if not on:
            return CLASS_DATABASE, 0
        m = re.match(r"^(?:(OBJECT|SCHEMA|DATABASE)\s*::\s*)?(.+)$", on.strip(), re.I | re.S)
        cls, name = (m.group(1) or "OBJECT").upper(), m.group(2).strip()
        if cls == "DATABASE":
            return CLASS_DATABASE, 0
        if cls == "SCHEMA":
            rows = self.query("SELECT schema_id FROM sys.schemas WHERE lower(name) = lower(%s)", (_unbracket(name),))
            if not rows:
                raise PermError(15151, f"Cannot find the schema '{_unbracket(name)}', because it does not exist or "
                                       "you do not have permission.", 16, 1)
            return CLASS_SCHEMA, rows[0][0]
        parts = [_unbracket(x) for x in name.split(".")]
        schema, table = (parts[-2] if len(parts) > 1 else "dbo"), parts[-1]
        rows = self.query("SELECT t.object_id FROM sys.tables t JOIN sys.schemas s ON s.schema_id = t.schema_id "
                          "WHERE lower(s.name) = lower(%s) AND lower(t.name) = lower(%s)", (schema, table))
        if not rows:
            raise PermError(15151, f"Cannot find the object '{table}', because it does not exist or you do not "
                                   "have permission.", 16, 1)
        return CLASS_OBJECT, rows[0][0]

    def permission_statement(self, text: str) -> list[tuple[str, tuple]]:
        """GRANT/DENY/REVOKE perms [ON [class::]securable] TO|FROM principals [WITH GRANT OPTION] [CASCADE]."""
        m = re.match(r"^(GRANT|DENY|REVOKE)\s+(GRANT\s+OPTION\s+FOR\s+)?(.+?)(?:\s+ON\s+(.+?))?\s+(TO|FROM)\s+(.+?)"
                     r"(\s+WITH\s+GRANT\s+OPTION)?(?:\s+CASCADE)?(?:\s+AS\s+\S+)?$", text.strip(), re.I | re.S)
        if not m:
            raise PermError(102, f"Incorrect syntax near '{text.split()[0]}'.", 15, 1)
        verb, perms = m.group(1).upper(), [re.sub(r"\s+", " ", p.strip()).upper() for p in m.group(3).split(",")]
        if any("(" in p for p in perms):
            raise PermError(50000, "the SQL Server double does not support column permissions", 16, 1)
        if perms in (["ALL"], ["ALL PRIVILEGES"]):
            perms = ["DELETE", "INSERT", "REFERENCES", "SELECT", "UPDATE"]
        if not self.may_administer():
            raise PermError(15247, "User does not have permission to perform this action.", 16, 1)
        cls, major = self.securable(m.group(4))
        me = self.user()[1].lower()
        out = []
        for who in (x.strip() for x in m.group(6).split(",")):
            pid, name, _ = self.principal(who, "user")
            if name.lower() in _UNGRANTABLE or name.lower() == me:
                raise PermError(4617, "Cannot grant, deny, or revoke permissions to sa, dbo, entity owner, "
                                      "information_schema, sys, or yourself.", 16, 1)
            for perm in perms:
                key = (cls, major, pid, perm)
                if verb == "REVOKE":
                    out.append(("DELETE FROM sys.sy_permissions WHERE class = %s AND major_id = %s AND "
                                "grantee_principal_id = %s AND permission_name = %s", key))
                else:
                    state = "D" if verb == "DENY" else ("W" if m.group(7) else "G")
                    out.append(("INSERT INTO sys.sy_permissions VALUES (%s, %s, %s, %s, %s) ON CONFLICT "
                                "(class, major_id, grantee_principal_id, permission_name) DO UPDATE SET state = "
                                "EXCLUDED.state", key + (state,)))
        return out


def statement(text: str):
    """Recognizes a user/role/permission statement: (kind, match) or None."""
    for kind, pattern in (
            ("create_user", r"^CREATE\s+USER\s+" + _NAME + r"(?:\s+(?:FOR|FROM)\s+LOGIN\s+" + _NAME +
             r"|\s+(WITHOUT)\s+LOGIN)?(?:\s+WITH\s+.*)?$"),
            ("create_role", r"^CREATE\s+ROLE\s+" + _NAME + r"(?:\s+AUTHORIZATION\s+\S+)?$"),
            ("create_approle", r"^CREATE\s+APPLICATION\s+ROLE\s+" + _NAME + r"\s+WITH\s+PASSWORD\s*=\s*N?'(?:[^']|'')*'"
                               r"(?:\s*,\s*DEFAULT_SCHEMA\s*=\s*\S+)?$"),
            ("drop", r"^DROP\s+(?:USER|ROLE|APPLICATION\s+ROLE)\s+(IF\s+EXISTS\s+)?" + _NAME + r"$"),
            ("alter_role", r"^ALTER\s+ROLE\s+" + _NAME + r"\s+(ADD|DROP)\s+MEMBER\s+" + _NAME + r"$"),
            ("addrolemember", r"^EXEC(?:UTE)?\s+(?:sys\.)?sp_(add|drop)rolemember\s+(?:@rolename\s*=\s*)?N?'([^']+)'"
                              r"\s*,\s*(?:@membername\s*=\s*)?N?'([^']+)'$"),
            ("permission", r"^(GRANT|DENY|REVOKE)\b"),
            ("alter_user", r"^ALTER\s+USER\b")):
        m = re.match(pattern, text.strip(), re.I | re.S)
        if m:
            return kind, m
    return None
