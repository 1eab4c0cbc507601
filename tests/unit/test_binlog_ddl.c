/* capture/binlog_ddl.c: which QUERY statements are DDL on synchronized objects ("sync.*" and
 * "mixed.keep" here), which are skipped, and which cannot be told. */
#include <stdio.h>
#include <string.h>

#include "capture/binlog_ddl.h"
#include "capture/binlog_savepoint.h"
#include "tests/unit/check.h"

static bool m_table(void *arg, const char *db, const char *table)
{
    return strcmp(db, "sync") == 0 || (strcmp(db, "mixed") == 0 && strcmp(table, "keep") == 0);
}

static bool m_db(void *arg, const char *db)
{
    return strcmp(db, "sync") == 0 || strcmp(db, "mixed") == 0;
}

static enum sy_ddl_kind kind(const char *sql, const char *db, char *what, size_t whatlen)
{
    struct sy_ddl_match m = { m_table, m_db, NULL };
    return sy_ddl_classify(sql, strlen(sql), db, &m, what, whatlen);
}

static enum sy_savepoint_op sp(const char *sql, char *name, size_t namelen)
{
    return sy_savepoint_parse(sql, strlen(sql), name, namelen);
}

/* The statements MariaDB logs (SAVEPOINT `a`, ROLLBACK TO `a`) and what a client may type; the list keeps
 * MySQL's rules: a name set again moves to the end, ROLLBACK TO keeps it and drops the later ones. */
static void savepoints(void)
{
    char n[SY_SAVEPOINT_NAME_MAX], tiny[4];
    CHECK(sp("SAVEPOINT `s1`", n, sizeof n) == SY_SAVEPOINT_SET && strcmp(n, "s1") == 0);
    CHECK(sp("ROLLBACK TO `s1`", n, sizeof n) == SY_SAVEPOINT_ROLLBACK_TO && strcmp(n, "s1") == 0);
    CHECK(sp("rollback work to savepoint `a``b`", n, sizeof n) == SY_SAVEPOINT_ROLLBACK_TO && strcmp(n, "a`b") == 0);
    CHECK(sp("/* x */ ROLLBACK TO SAVEPOINT sp_2", n, sizeof n) == SY_SAVEPOINT_ROLLBACK_TO && strcmp(n, "sp_2") == 0);
    CHECK(sp("ROLLBACK TO `savepoint`", n, sizeof n) == SY_SAVEPOINT_ROLLBACK_TO && strcmp(n, "savepoint") == 0);
    CHECK(sp("RELEASE SAVEPOINT `s1`", n, sizeof n) == SY_SAVEPOINT_RELEASE && strcmp(n, "s1") == 0);
    /* ANSI_QUOTES sessions (sql_mode=ORACLE too) get "quoted" names; sql_quote_show_create=0 bare ones */
    CHECK(sp("SAVEPOINT \"a\"", n, sizeof n) == SY_SAVEPOINT_SET && strcmp(n, "a") == 0);
    CHECK(sp("ROLLBACK TO \"b\"\"c\"", n, sizeof n) == SY_SAVEPOINT_ROLLBACK_TO && strcmp(n, "b\"c") == 0);
    CHECK(sp("ROLLBACK TO \"savepoint\"", n, sizeof n) == SY_SAVEPOINT_ROLLBACK_TO && strcmp(n, "savepoint") == 0);
    CHECK(sp("ROLLBACK TO SAVEPOINT \"x\"", n, sizeof n) == SY_SAVEPOINT_ROLLBACK_TO && strcmp(n, "x") == 0);
    CHECK(sp("SAVEPOINT sp_\xc3\xa9t\xc3\xa9", n, sizeof n) == SY_SAVEPOINT_SET && strcmp(n, "sp_\xc3\xa9t\xc3\xa9") == 0);
    CHECK(sp("SAVEPOINT `a long name cut`", tiny, sizeof tiny) == SY_SAVEPOINT_SET && strcmp(tiny, "a l") == 0);
    CHECK(sp("ROLLBACK", n, sizeof n) == SY_SAVEPOINT_NONE && n[0] == '\0');
    CHECK(sp("ROLLBACK WORK", n, sizeof n) == SY_SAVEPOINT_NONE);
    CHECK(sp("ROLLBACK TO", n, sizeof n) == SY_SAVEPOINT_NONE);
    CHECK(sp("SAVEPOINT", n, sizeof n) == SY_SAVEPOINT_NONE);
    CHECK(sp("COMMIT", n, sizeof n) == SY_SAVEPOINT_NONE);
    CHECK(sp("RELEASE", n, sizeof n) == SY_SAVEPOINT_NONE);
    CHECK(sp("SAVEPOINT `abcdef`", tiny, sizeof tiny) == SY_SAVEPOINT_SET && strcmp(tiny, "abc") == 0);
    CHECK(sy_savepoint_parse(NULL, 0, n, sizeof n) == SY_SAVEPOINT_NONE);

    struct sy_savepoints s;
    sy_savepoints_init(&s);
    CHECK(sy_savepoints_set(&s, "a", 10, 1) && sy_savepoints_set(&s, "b", 20, 2) && sy_savepoints_set(&s, "c", 30, 3));
    CHECK(sy_savepoints_set(&s, "A", 40, 4) && s.n == 3 && strcmp(s.v[2].name, "A") == 0); /* a moved to the end */
    const struct sy_savepoint *r = sy_savepoints_rollback_to(&s, "c");
    CHECK(r != NULL && r->mark == 30 && s.n == 2 && strcmp(s.v[0].name, "b") == 0); /* A (set after c) gone */
    CHECK(sy_savepoints_rollback_to(&s, "a") == NULL && s.n == 2);
    sy_savepoints_release(&s, "b");
    CHECK(s.n == 0);
    for (int i = 0; i < 100; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "s%d", i);
        CHECK(sy_savepoints_set(&s, nm, (uint64_t)i, 0));
    }
    CHECK(s.n == 100 && sy_savepoints_rollback_to(&s, "S7")->mark == 7 && s.n == 8);
    sy_savepoints_clear(&s);
    CHECK(s.n == 0);
    sy_savepoints_fini(&s);
}

int main(void)
{
    char what[600], w[16];
    savepoints();
    CHECK(kind("BEGIN", "sync", what, sizeof what) == SY_DDL_NONE);
    CHECK(kind("  /* c */ COMMIT", "", what, sizeof what) == SY_DDL_NONE);
    CHECK(kind("ALTER TABLE t ADD c INT", "sync", what, sizeof what) == SY_DDL_SYNC);
    CHECK(strcmp(what, "ALTER TABLE sync.t") == 0);
    CHECK(kind("ALTER TABLE `sync`.`t``x` ADD c INT", "other", what, sizeof what) == SY_DDL_SYNC);
    CHECK(kind("CREATE TABLE IF NOT EXISTS other.t (id INT)", "sync", what, sizeof what) == SY_DDL_SKIP);
    CHECK(kind("DROP TABLE mixed.keep, mixed.other", "", what, sizeof what) == SY_DDL_UNKNOWN_TARGET);
    CHECK(kind("RENAME TABLE mixed.keep TO mixed.keep2", "", what, sizeof what) == SY_DDL_UNKNOWN_TARGET);
    CHECK(kind("TRUNCATE t", "sync", what, sizeof what) == SY_DDL_SYNC);
    CHECK(kind("CREATE INDEX i ON t (c)", "sync", what, sizeof what) == SY_DDL_SYNC);
    CHECK(kind("DROP DATABASE IF EXISTS sync", "", what, sizeof what) == SY_DDL_SYNC);
    CHECK(kind("CREATE USER u", "sync", what, sizeof what) == SY_DDL_SKIP);
    CHECK(kind("GRANT ALL ON *.* TO u", "sync", what, sizeof what) == SY_DDL_SKIP);
    CHECK(kind("INSERT INTO t VALUES (1)", "sync", what, sizeof what) == SY_DDL_STATEMENT_DML);
    CHECK(kind("INSERT INTO t VALUES (1)", "other", what, sizeof what) == SY_DDL_SKIP);
    CHECK(kind("CREATE INDEX i ON t (c)", "", what, sizeof what) == SY_DDL_UNKNOWN_TARGET);
    CHECK(kind("ALTER VIEW v AS SELECT 1", "sync", what, sizeof what) == SY_DDL_SKIP);
    CHECK(kind("ALTER EVENT_X e", "sync", what, sizeof what) == SY_DDL_UNKNOWN_TARGET);
    CHECK(kind("", "", what, sizeof what) == SY_DDL_SKIP);
    sy_ddl_first_word("-- x\n  xa start 'a'", 20, w, sizeof w);
    CHECK(strcmp(w, "xa") == 0);
    return CHECK_DONE();
}
