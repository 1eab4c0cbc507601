"""`precheck PAIR [--direction ...]` on MariaDB (CONTRACT.md; ARCHITECTURE.md reverse-instance rules 5, 6;
FINDINGS.md "MariaDB binlog"): one entry per check, {name, status pass|fail|warn, detail, fix}, and
"passed". The command itself succeeds whatever the checks find.

Every test works in its own database precheck_<hex> (the pair is shared with other tests) and drops it on
both sides at the end; accounts and global settings a test changes are restored in a finally."""

import re
import uuid

import pytest

EXPECTED_CHECKS = [
    "objects_configured", "business_reachable", "dr_reachable", "business_engine", "dr_engine", "server_ids",
    "distinct_servers", "log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata",
    "binlog_retention", "source_privileges", "destination_privileges", "object_databases", "primary_keys",
    "innodb_tables", "destination_triggers",
]
CTL_LINE = re.compile(r"^(PASS|FAIL|WARN)  (\S+)\s+(.*)$")


def label(side, server) -> str:
    return f"{side} {server.host}:{server.port}"


@pytest.fixture
def precheck_db(mariadb_pair):
    """precheck_<hex> on business with two keyed InnoDB tables (a PRIMARY KEY, a NOT NULL UNIQUE key).

    Request it before `daemon` so that it is dropped (on both sides: the forward instance may have copied
    it) after the daemon has stopped."""
    db = f"precheck_{uuid.uuid4().hex[:10]}"
    mariadb_pair.business.sql(
        f"CREATE DATABASE {db};"
        f"CREATE TABLE {db}.orders (id INT PRIMARY KEY, v INT) ENGINE=InnoDB;"
        f"CREATE TABLE {db}.items (a INT NOT NULL, b INT NOT NULL, note TEXT NULL, UNIQUE KEY (a, b)) "
        f"ENGINE=InnoDB")
    try:
        yield db
    finally:
        for s in mariadb_pair:
            s.sql(f"DROP DATABASE IF EXISTS {db}")


def precheck(d, pair="demo", **args):
    """Run the admin command; check the shape of every entry; return (result, {name: check})."""
    res = d.admin_ok("precheck", pair=pair, **args)
    checks = res["checks"]
    assert isinstance(checks, list) and checks, res
    names = [c["name"] for c in checks]
    assert len(names) == len(set(names)), f"duplicate check names: {names}"
    for c in checks:
        assert set(c) <= {"name", "status", "detail", "fix"}, c
        assert re.fullmatch(r"[a-z][a-z0-9_]*", c["name"]), c
        assert c["status"] in ("pass", "fail", "warn"), c
        assert isinstance(c["detail"], str) and c["detail"], c
        if c["status"] != "pass":
            assert isinstance(c.get("fix"), str) and c["fix"], c
    assert res["passed"] is (not any(c["status"] == "fail" for c in checks)), res
    return res, {c["name"]: c for c in checks}


def ctl_checks(d, *args):
    """`switchyardctl precheck PAIR ...` human output -> {name: (STATUS, detail)}."""
    r = d.ctl("precheck", "demo", *args)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    got = {}
    for line in r.stdout.splitlines():
        m = CTL_LINE.match(line)
        if m:
            got[m.group(2)] = (m.group(1), m.group(3))
    return got


@pytest.mark.tsan
def test_all_pass_on_the_sandbox_pair(mariadb_pair, precheck_db, daemon):
    b, dr = mariadb_pair
    d = daemon(objects=f"{precheck_db}.*")
    res, by = precheck(d)
    assert res["passed"] is True
    assert [c["name"] for c in res["checks"]] == EXPECTED_CHECKS
    assert {n: c["status"] for n, c in by.items()} == {n: "pass" for n in EXPECTED_CHECKS}, res["checks"]
    assert label("business", b) in by["business_reachable"]["detail"]
    assert label("dr", dr) in by["dr_reachable"]["detail"]
    assert "MariaDB" in by["business_engine"]["detail"]
    assert label("business", b) in by["binlog_row_image"]["detail"]          # forward: business is the source
    assert label("dr", dr) in by["destination_privileges"]["detail"]
    assert "2 synchronized tables" in by["primary_keys"]["detail"]
    for n in ("binlog_retention", "server_ids"):
        assert by[n]["detail"]
    assert "4001" in by["server_ids"]["detail"] and "4002" in by["server_ids"]["detail"]

    human = ctl_checks(d)
    assert set(human) == set(EXPECTED_CHECKS), human
    assert all(st == "PASS" for st, _ in human.values()), human
    assert label("business", b) in human["log_bin"][1]


def test_table_without_any_key_fails_naming_it(mariadb_pair, precheck_db, daemon):
    db = precheck_db
    mariadb_pair.business.sql(f"CREATE TABLE {db}.nokey (a INT, b TEXT) ENGINE=InnoDB;"
                              f"CREATE TABLE {db}.plain_idx (a INT NOT NULL, KEY (a)) ENGINE=InnoDB")
    d = daemon(objects=f"{db}.*")
    res, by = precheck(d)
    assert res["passed"] is False
    pk = by["primary_keys"]
    assert pk["status"] == "fail"
    assert f"{db}.nokey" in pk["detail"] and f"{db}.plain_idx" in pk["detail"]
    assert f"{db}.orders" not in pk["detail"] and f"{db}.items" not in pk["detail"]
    assert "PRIMARY KEY" in pk["fix"]
    assert [n for n, c in by.items() if c["status"] == "fail"] == ["primary_keys"]

    human = ctl_checks(d)
    assert human["primary_keys"][0] == "FAIL" and f"{db}.nokey" in human["primary_keys"][1]


def test_nullable_unique_key_only_fails(mariadb_pair, precheck_db, daemon):
    db = precheck_db
    mariadb_pair.business.sql(
        f"CREATE TABLE {db}.nullable_uk (a INT NULL, b INT NOT NULL, UNIQUE KEY (a, b)) ENGINE=InnoDB;"
        # a nullable unique key does not matter when another unique key is all NOT NULL
        f"CREATE TABLE {db}.mixed_uk (a INT NULL, b INT NOT NULL, UNIQUE KEY (a), UNIQUE KEY (b)) "
        f"ENGINE=InnoDB")
    d = daemon(objects=f"{db}.*")
    res, by = precheck(d)
    assert res["passed"] is False
    pk = by["primary_keys"]
    assert pk["status"] == "fail"
    assert f"{db}.nullable_uk" in pk["detail"]
    assert f"{db}.mixed_uk" not in pk["detail"] and f"{db}.items" not in pk["detail"]


def test_only_synchronized_tables_are_checked(mariadb_pair, precheck_db, daemon):
    db = precheck_db
    mariadb_pair.business.sql(f"CREATE TABLE {db}.nokey (a INT) ENGINE=MyISAM")
    d = daemon(objects=f"{db}.orders, {db}.items")
    res, by = precheck(d)
    assert res["passed"] is True, res["checks"]
    assert by["primary_keys"]["status"] == "pass" and by["innodb_tables"]["status"] == "pass"


def test_myisam_table_warns(mariadb_pair, precheck_db, daemon):
    db = precheck_db
    mariadb_pair.business.sql(f"CREATE TABLE {db}.legacy (id INT PRIMARY KEY) ENGINE=MyISAM")
    d = daemon(objects=f"{db}.*")
    res, by = precheck(d)
    assert res["passed"] is True                                  # a warning does not fail the precheck
    w = by["innodb_tables"]
    assert w["status"] == "warn"
    assert f"{db}.legacy" in w["detail"] and "MyISAM" in w["detail"]
    assert "only InnoDB tables are consistent in the initial copy" in w["detail"]
    assert f"{db}.orders" not in w["detail"]
    assert by["primary_keys"]["status"] == "pass"

    human = ctl_checks(d)
    assert human["innodb_tables"][0] == "WARN" and f"{db}.legacy" in human["innodb_tables"][1]


def test_row_image_minimal_on_the_source_fails_with_the_fix(mariadb_pair, precheck_db, daemon):
    b, dr = mariadb_pair
    d = daemon(objects=f"{precheck_db}.*")
    b.sql("SET GLOBAL binlog_row_image = 'MINIMAL'")
    try:
        res, by = precheck(d)
        assert res["passed"] is False
        c = by["binlog_row_image"]
        assert c["status"] == "fail"
        assert label("business", b) in c["detail"] and "MINIMAL" in c["detail"]
        assert "SET GLOBAL binlog_row_image = 'FULL'" in c["fix"] and "my.cnf" in c["fix"]
        assert [n for n, x in by.items() if x["status"] == "fail"] == ["binlog_row_image"]

        human = ctl_checks(d)
        assert human["binlog_row_image"][0] == "FAIL"

        # reverse: roles swap, dr is the source and its row image is FULL
        res, by = precheck(d, direction="reverse")
        assert by["binlog_row_image"]["status"] == "pass", by["binlog_row_image"]
        assert label("dr", dr) in by["binlog_row_image"]["detail"]
        assert label("business", b) in by["destination_privileges"]["detail"]
    finally:
        b.sql("SET GLOBAL binlog_row_image = 'FULL'")
    assert b.sql("SELECT @@global.binlog_row_image") == [["FULL"]]


def test_writer_tag_equal_to_business_server_id_fails(mariadb_pair, precheck_db, daemon):
    b, _ = mariadb_pair
    d = daemon(objects=f"{precheck_db}.*", writer_tag=b.server_id)
    res, by = precheck(d)
    assert res["passed"] is False
    c = by["server_ids"]
    assert c["status"] == "fail"
    assert f"writer_tag {b.server_id}" in c["detail"] and label("business", b) in c["detail"]
    assert "writer_tag" in c["fix"]


def test_unreachable_dr_fails_reachability(mariadb_pair, precheck_db, daemon):
    b, _ = mariadb_pair
    d = daemon(objects=f"{precheck_db}.*", dr="127.0.0.1:1")
    res, by = precheck(d)
    assert res["passed"] is False
    assert by["business_reachable"]["status"] == "pass"
    c = by["dr_reachable"]
    assert c["status"] == "fail" and "dr 127.0.0.1:1" in c["detail"]
    for n in ("dr_engine", "distinct_servers", "destination_privileges", "destination_triggers"):
        c = by[n]
        assert c["status"] == "warn" and "skipped" in c["detail"] and "127.0.0.1:1" in c["detail"], c
    # the source's checks still run
    for n in ("log_bin", "binlog_row_image", "source_privileges", "primary_keys"):
        assert by[n]["status"] == "pass", by[n]
    assert [n for n, x in by.items() if x["status"] == "fail"] == ["dr_reachable"]


def test_account_without_privileges_lists_what_is_missing(mariadb_pair, precheck_db, daemon):
    db = precheck_db
    user, pw = "precheck_nopriv", "precheck-pw"
    accounts = [f"'{user}'@'%'", f"'{user}'@'localhost'"]      # 127.0.0.1 is 'localhost' to the sandbox
    for s in mariadb_pair:
        s.sql(";".join(f"CREATE OR REPLACE USER {a} IDENTIFIED BY '{pw}'" for a in accounts))
    try:
        d = daemon(objects=f"{db}.*", admin_user=user, admin_password=pw)
        res, by = precheck(d)
        assert res["passed"] is False
        src, dst = by["source_privileges"], by["destination_privileges"]
        assert src["status"] == "fail" and dst["status"] == "fail"
        for want in ("REPLICATION SLAVE", "BINLOG MONITOR", f"SELECT on {db}.*",
                     "SELECT on mysql.global_priv"):
            assert want in src["detail"], src
        for want in ("BINLOG REPLAY", "READ ONLY ADMIN", "CREATE", "ALTER", "DROP", "INSERT", "UPDATE",
                     "DELETE", f"on {db}.*", "on switchyard.*"):
            assert want in dst["detail"], dst
        for c in (src, dst):
            assert "SUPER" not in c["detail"] and "SUPER" not in c["fix"]
            assert f"TO '{user}'@'localhost'" in c["fix"]
        assert "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.*" in src["fix"]
        # information_schema hides what the account cannot see: the table checks say so instead of passing
        assert by["primary_keys"]["status"] == "warn" and "skipped" in by["primary_keys"]["detail"]

        # the fixes are the GRANT statements that make the checks pass
        mariadb_pair.business.sql(src["fix"])
        mariadb_pair.dr.sql(dst["fix"])
        res, by = precheck(d)
        assert by["source_privileges"]["status"] == "pass", by["source_privileges"]
        assert by["destination_privileges"]["status"] == "pass", by["destination_privileges"]
        assert res["passed"] is True, res["checks"]
    finally:
        for s in mariadb_pair:
            s.sql(";".join(f"DROP USER IF EXISTS {a}" for a in accounts))


def test_triggers_on_the_destination_warn(mariadb_pair, precheck_db, daemon):
    db = precheck_db
    # A table only DR has (db.* matches it): the forward instance's initial copy drops and re-creates the
    # tables business has, which would take their triggers along while this test runs.
    mariadb_pair.dr.sql(f"CREATE DATABASE IF NOT EXISTS {db};"
                        f"CREATE TABLE {db}.audit (id INT PRIMARY KEY, v INT) ENGINE=InnoDB;"
                        f"CREATE TRIGGER {db}.audit_bi BEFORE INSERT ON {db}.audit "
                        f"FOR EACH ROW SET NEW.v = 1;"
                        f"CREATE TRIGGER {db}.audit_bu BEFORE UPDATE ON {db}.audit "
                        f"FOR EACH ROW SET NEW.v = 2")
    d = daemon(objects=f"{db}.*")
    res, by = precheck(d)
    c = by["destination_triggers"]
    assert c["status"] == "warn"
    assert f"{db}.audit (audit_bi, audit_bu)" in c["detail"] and label("dr", mariadb_pair.dr) in c["detail"]
    assert "fire on replayed rows" in c["detail"]
    assert res["passed"] is True

    # reverse: business is the destination and has no triggers
    res, by = precheck(d, direction="reverse")
    assert by["destination_triggers"]["status"] == "pass", by["destination_triggers"]


def test_missing_database_warns_and_empty_objects_fail(mariadb_pair, precheck_db, daemon):
    missing = f"precheck_missing_{uuid.uuid4().hex[:6]}"
    d = daemon(objects=f"{precheck_db}.*, {missing}.*")
    res, by = precheck(d)
    c = by["object_databases"]
    assert c["status"] == "warn" and missing in c["detail"] and precheck_db not in c["detail"]
    assert res["passed"] is True

    d2 = daemon(pair="empty")                                   # no objects key at all
    res, by = precheck(d2, pair="empty")
    assert res["passed"] is False
    c = by["objects_configured"]
    assert c["status"] == "fail" and c["detail"] == "objects is empty: nothing to synchronize"
