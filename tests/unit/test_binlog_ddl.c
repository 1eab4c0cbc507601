/* capture/binlog_ddl.c: which QUERY statements are DDL on synchronized objects ("sync.*" and
 * "mixed.keep" here), which are skipped, and which cannot be told. */
#include <string.h>

#include "capture/binlog_ddl.h"
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

int main(void)
{
    char what[600], w[16];
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
