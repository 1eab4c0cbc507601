/* The SQL lexer (proxy/mysql_sql.c): statement kinds past comments and over whole texts, batches,
 * strings and quoted names that look like keywords, executable comments, compound statements. */
#include <string.h>

#include "proxy/mysql_sql.h"
#include "tests/unit/check.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static struct sy_sql_stmt first(const char *sql)
{
    size_t pos = 0;
    struct sy_sql_stmt st;
    if (!sy_sql_next((const uint8_t *)sql, strlen(sql), &pos, &st))
        st.kind = (enum sy_sql_kind) - 1;
    return st;
}

static struct sy_sql_effect effect(const char *sql)
{
    struct sy_sql_effect e;
    sy_sql_effect((const uint8_t *)sql, strlen(sql), &e);
    return e;
}

static void test_kinds(void)
{
    static const struct {
        const char *sql;
        enum sy_sql_kind want;
    } cases[] = {
        { "CREATE TEMPORARY TABLE t (a INT)", SY_SQL_TEMP_CREATE },
        { "  /* x */ create   temporary table t(a int)", SY_SQL_TEMP_CREATE },
        { "CREATE OR REPLACE TEMPORARY TABLE t (a INT)", SY_SQL_TEMP_CREATE },
        { "-- c\nCREATE TEMPORARY TABLE t (a INT)", SY_SQL_TEMP_CREATE },
        { "# c\nCREATE TEMPORARY TABLE t (a INT)", SY_SQL_TEMP_CREATE },
        /* a tracing comment longer than any fixed prefix the proxy used to look at */
        { "/* traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 service=orders "
          "span=checkout.reserve-stock */ CREATE TEMPORARY TABLE scratch (a INT)",
          SY_SQL_TEMP_CREATE },
        { "/*!40101 CREATE TEMPORARY TABLE t (a INT) */", SY_SQL_TEMP_CREATE },
        { "/*M!100500 CREATE TEMPORARY TABLE t (a INT) */", SY_SQL_TEMP_CREATE },
        { "CREATE TABLE t (a INT)", SY_SQL_OTHER },
        { "CREATE TEMPORARYX", SY_SQL_OTHER },
        { "DROP TEMPORARY TABLE t", SY_SQL_TEMP_DROP },
        { "DROP TABLE t", SY_SQL_DROP_TABLE },
        { "DROP DATABASE d", SY_SQL_OTHER },
        { "LOCK TABLES t WRITE", SY_SQL_LOCK_TABLES },
        { "lock table t read", SY_SQL_LOCK_TABLES },
        { "UNLOCK TABLES", SY_SQL_UNLOCK_TABLES },
        { "FLUSH TABLES WITH READ LOCK", SY_SQL_LOCK_TABLES },
        { "FLUSH TABLES t1 WITH READ LOCK", SY_SQL_LOCK_TABLES },
        { "BACKUP LOCK t", SY_SQL_LOCK_TABLES },
        { "BACKUP UNLOCK", SY_SQL_UNLOCK_TABLES },
        { "XA START 'x'", SY_SQL_XA_START },
        { "xa begin 'x'", SY_SQL_XA_START },
        { "XA COMMIT 'x'", SY_SQL_XA_END },
        { "XA ROLLBACK 'x'", SY_SQL_XA_END },
        { "XA END 'x'", SY_SQL_OTHER },
        { "ROLLBACK", SY_SQL_ROLLBACK },
        { "rollback work;", SY_SQL_ROLLBACK },
        { "ROLLBACK AND NO CHAIN", SY_SQL_ROLLBACK },
        { "ROLLBACK TO SAVEPOINT s", SY_SQL_OTHER },
        { "ROLLBACK WORK TO s", SY_SQL_OTHER },
        { "ROLLBACKS", SY_SQL_OTHER },
        { "COMMIT", SY_SQL_COMMIT },
        { "/* app */ commit work", SY_SQL_COMMIT },
        { "CALL p(1)", SY_SQL_CALL },
        { "SELECT 'CREATE TEMPORARY TABLE x'", SY_SQL_OTHER },
        { "SELECT 1", SY_SQL_OTHER },
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct sy_sql_stmt st = first(cases[i].sql);
        if (st.kind != cases[i].want)
            fprintf(stderr, "case %zu: %s -> %d\n", i, cases[i].sql, (int)st.kind);
        CHECK(st.kind == cases[i].want);
    }
    size_t pos = 0;
    struct sy_sql_stmt st;
    CHECK(!sy_sql_next(NULL, 0, &pos, &st));
    CHECK(!sy_sql_next((const uint8_t *)"  /* only a comment */ -- and another", 37, &pos, &st));
    CHECK(!sy_sql_next((const uint8_t *)"/* unterminated", 15, &(size_t){ 0 }, &st));
    CHECK(first("ROLLBACK").kind == SY_SQL_ROLLBACK);
    pos = 0;
    CHECK(sy_sql_next((const uint8_t *)"ROLLBACK", 4, &pos, &st) && st.kind == SY_SQL_OTHER); /* length honoured */
}

static void test_locks_and_tracking(void)
{
    CHECK(first("SELECT GET_LOCK('a', 1)").get_locks == 1);
    CHECK(first("select get_lock ('a', 1)").get_locks == 1); /* IGNORE_SPACE allows it: count it */
    CHECK(first("SELECT 'GET_LOCK(' , `get_lock`").get_locks == 0);
    CHECK(first("/* GET_LOCK('x',1) */ SELECT 1").get_locks == 0);
    CHECK(first("SELECT RELEASE_LOCK('a')").release_locks == 1);
    CHECK(first("SELECT RELEASE_ALL_LOCKS()").release_all_locks);
    /* the call far past the first 64 bytes of the text */
    CHECK(first("/* a long comment a long comment a long comment a long comment a long comment */ "
                "SELECT id FROM t WHERE k = 'some value' AND GET_LOCK(CONCAT('job-', id), 0) = 1")
              .get_locks == 1);
    struct sy_sql_stmt cj = first("set autocommit=1, sql_mode = concat(@@sql_mode,',STRICT_TRANS_TABLES'), "
                                  "session_track_schema=1, session_track_system_variables = "
                                  "CONCAT('autocommit,character_set_client')");
    CHECK(cj.tracking);
    CHECK(first("SET @@session.session_track_system_variables = ''").tracking);
    CHECK(first("SET SESSION `session_track_state_change` = 0").tracking);
    CHECK(!first("SELECT 'session_track_schema'").tracking);
    CHECK(!first("SET sql_mode = ''").tracking);
}

/* The user-lock calls of a text, as "G:name R:name A U:" (U/V: GET/RELEASE of a name not spelled out). */
static const char *lock_calls(const char *sql)
{
    static char out[256];
    size_t pos = 0, n = 0;
    struct sy_sql_lock lk;
    out[0] = '\0';
    while (sy_sql_next_lock((const uint8_t *)sql, strlen(sql), &pos, &lk) && n < sizeof out - 1) {
        const char *tag = lk.op == SY_SQL_LOCK_RELEASE_ALL ? "A"
                        : lk.op == SY_SQL_LOCK_GET        ? (lk.name_p ? "G:" : "U:")
                                                           : (lk.name_p ? "R:" : "V:");
        n += (size_t)snprintf(out + n, sizeof out - n, "%s%s%.*s", n ? " " : "", tag, (int)lk.name_len,
                              lk.name_p ? (const char *)lk.name_p : "");
    }
    return out;
}

static void test_lock_names(void)
{
    CHECK(strcmp(lock_calls("SELECT GET_LOCK('a', 1), RELEASE_LOCK(\"b\")"), "G:a R:b") == 0);
    CHECK(strcmp(lock_calls("DO RELEASE_ALL_LOCKS(); SELECT get_lock ( 'job-7' , 0)"), "A G:job-7") == 0);
    CHECK(strcmp(lock_calls("SELECT GET_LOCK(CONCAT('job-', id), 0), RELEASE_LOCK(@n)"), "U: V:") == 0);
    CHECK(strcmp(lock_calls("SELECT GET_LOCK('a' 'b', 0)"), "U:") == 0);      /* adjacent literals: not one */
    CHECK(strcmp(lock_calls("SELECT GET_LOCK('it''s', 0)"), "G:it''s") == 0); /* as written */
    CHECK(strcmp(lock_calls("SELECT 'GET_LOCK(1)', `release_lock`(1) /* GET_LOCK('x',1) */"), "") == 0);
    CHECK(strcmp(lock_calls("/*!100000 SELECT RELEASE_LOCK('e') */"), "R:e") == 0);
    CHECK(strcmp(lock_calls("SELECT GET_LOCK('unterminated, 0)"), "U:") == 0);
    CHECK(strcmp(lock_calls("SELECT RELEASE_LOCK(GET_LOCK('n', 0))"), "V: G:n") == 0); /* nested: both seen */
    size_t pos = 0;
    struct sy_sql_lock lk;
    CHECK(!sy_sql_next_lock(NULL, 0, &pos, &lk));
    CHECK(!sy_sql_next_lock((const uint8_t *)"SELECT GET_LOCK('a', 0)", 15, &pos, &lk)); /* length honoured */
}

/* The statement's name, its text's value ("" when none), "kind:name:text". */
static const char *prepared(const char *sql)
{
    static char out[256];
    struct sy_sql_stmt st = first(sql);
    uint8_t text[128] = "";
    size_t tn = st.text_len && st.text_len <= sizeof text ? sy_sql_unquote((const uint8_t *)sql + st.text_off,
                                                                          st.text_len, text)
                                                           : 0;
    snprintf(out, sizeof out, "%d:%.*s:%.*s", (int)st.kind, (int)st.name_len, sql + st.name_off, (int)tn, text);
    return out;
}

static void test_prepared_sql(void)
{
    char want[128];
    snprintf(want, sizeof want, "%d:s1:CREATE TEMPORARY TABLE t (a INT)", SY_SQL_PREPARE);
    CHECK(strcmp(prepared("PREPARE s1 FROM 'CREATE TEMPORARY TABLE t (a INT)'"), want) == 0);
    snprintf(want, sizeof want, "%d:S 2:it's \"x\"\n", SY_SQL_PREPARE);
    CHECK(strcmp(prepared("/* c */ prepare `S 2` from 'it''s \\\"x\\\"\\n'"), want) == 0);
    snprintf(want, sizeof want, "%d:s3:", SY_SQL_PREPARE);                /* from a variable: no text */
    CHECK(strcmp(prepared("PREPARE s3 FROM @sql"), want) == 0);
    snprintf(want, sizeof want, "%d:s1:", SY_SQL_EXECUTE);
    CHECK(strcmp(prepared("EXECUTE s1 USING @a, @b"), want) == 0);
    snprintf(want, sizeof want, "%d::DROP TEMPORARY TABLE t", SY_SQL_EXECUTE_TEXT);
    CHECK(strcmp(prepared("EXECUTE IMMEDIATE \"DROP TEMPORARY TABLE t\""), want) == 0);
    snprintf(want, sizeof want, "%d::", SY_SQL_EXECUTE_TEXT);
    CHECK(strcmp(prepared("EXECUTE IMMEDIATE CONCAT('SELECT ', 1)"), want) == 0);
    snprintf(want, sizeof want, "%d:s1:", SY_SQL_DEALLOCATE);
    CHECK(strcmp(prepared("DEALLOCATE PREPARE s1"), want) == 0);
    CHECK(strcmp(prepared("DROP PREPARE s1"), want) == 0);
    CHECK(first("PREPARE").kind == SY_SQL_OTHER && first("EXECUTE").kind == SY_SQL_OTHER);
    CHECK(first("DROP TABLE prepare").kind == SY_SQL_DROP_TABLE);
    CHECK(effect("SELECT 1; EXECUTE s").prepared_sql && !effect("SELECT 'EXECUTE s'").prepared_sql);
    uint8_t out[16];
    CHECK(sy_sql_unquote((const uint8_t *)"'ab", 3, out) == 2 && memcmp(out, "ab", 2) == 0); /* unterminated */
    CHECK(sy_sql_unquote((const uint8_t *)"'\\%\\_\\0'", 8, out) == 5 && memcmp(out, "\\%\\_", 4) == 0 &&
          out[4] == 0);
    CHECK(sy_sql_unquote((const uint8_t *)"'", 1, out) == 0);
}

static void test_temporary_sequences(void)
{
    struct sy_sql_stmt st = first("CREATE OR REPLACE TEMPORARY SEQUENCE IF NOT EXISTS sq START WITH 5");
    CHECK(st.kind == SY_SQL_TEMP_CREATE && st.names_off > 0);
    CHECK(first("create temporary sequence s1").kind == SY_SQL_TEMP_CREATE);
    CHECK(first("CREATE SEQUENCE s1").kind == SY_SQL_OTHER);
    CHECK(first("DROP TEMPORARY SEQUENCE IF EXISTS s1, s2").kind == SY_SQL_TEMP_DROP);
    CHECK(first("DROP TEMPORARY SEQUENCE IF EXISTS s1, s2").tables == 2);
    CHECK(first("DROP SEQUENCE s1").kind == SY_SQL_DROP_TABLE);
    CHECK(effect("CREATE TEMPORARY SEQUENCE s1; DROP TEMPORARY SEQUENCE s1").temp_tables == 0);
    const char *sql = "CREATE TEMPORARY SEQUENCE `my seq` INCREMENT BY 2";
    st = first(sql);
    size_t np = st.names_off;
    struct sy_sql_name nm;
    CHECK(sy_sql_next_name((const uint8_t *)sql, st.off + st.len, &np, &nm) && nm.name_len == 6 &&
          memcmp(nm.name_p, "my seq", 6) == 0);
}

static void test_handlers(void)
{
    struct sy_sql_stmt st;
    /* HANDLER: the handler's name is its alias, else the table's (without the schema) */
    static const struct {
        const char *sql;
        enum sy_sql_kind kind;
        const char *name;
    } h[] = {
        { "HANDLER t1 OPEN", SY_SQL_HANDLER_OPEN, "t1" },
        { "handler db.t1 open", SY_SQL_HANDLER_OPEN, "t1" },
        { "HANDLER `db`.`t 1` OPEN AS h1", SY_SQL_HANDLER_OPEN, "h1" },
        { "HANDLER t1 OPEN h2", SY_SQL_HANDLER_OPEN, "h2" },
        { "/* x */ HANDLER h2 CLOSE", SY_SQL_HANDLER_CLOSE, "h2" },
        { "HANDLER h2 READ FIRST", SY_SQL_OTHER, "" },
        { "HANDLER", SY_SQL_OTHER, "" },
        { "SELECT 'HANDLER t OPEN'", SY_SQL_OTHER, "" },
    };
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
        st = first(h[i].sql);
        CHECK(st.kind == h[i].kind && st.name_len == strlen(h[i].name) &&
              memcmp(h[i].sql + st.name_off, h[i].name, st.name_len) == 0);
    }
    CHECK(effect("SELECT 1; HANDLER t OPEN").handlers && !effect("SELECT 1").handlers);
}


static void test_batches(void)
{
    const char *sql = "CREATE TEMPORARY TABLE a (x INT); INSERT INTO a VALUES (';'); /* ; */ DROP TEMPORARY "
                      "TABLE a ; SELECT 1;";
    size_t pos = 0, n = 0;
    struct sy_sql_stmt st;
    enum sy_sql_kind kinds[8];
    while (n < 8 && sy_sql_next((const uint8_t *)sql, strlen(sql), &pos, &st))
        kinds[n++] = st.kind;
    CHECK(n == 4);
    CHECK(kinds[0] == SY_SQL_TEMP_CREATE && kinds[1] == SY_SQL_OTHER && kinds[2] == SY_SQL_TEMP_DROP &&
          kinds[3] == SY_SQL_OTHER);
    struct sy_sql_effect e = effect(sql);
    CHECK(e.statements == 4 && e.temp_tables == 0 && e.kind == SY_SQL_TEMP_CREATE);
    e = effect("SELECT 1; CREATE TEMPORARY TABLE a (x INT); CREATE TEMPORARY TABLE b (x INT)");
    CHECK(e.temp_tables == 2 && e.kind == SY_SQL_OTHER);
    e = effect("CREATE TEMPORARY TABLE a (x INT); CREATE TEMPORARY TABLE b (x INT); DROP TEMPORARY TABLE a, b");
    CHECK(e.temp_tables == 0);
    e = effect("DROP TEMPORARY TABLE IF EXISTS a, b, c");
    CHECK(e.temp_tables == -3);
    e = effect("LOCK TABLES t WRITE; UNLOCK TABLES");
    CHECK(!e.lock_tables && e.unlock_tables);
    e = effect("UNLOCK TABLES; LOCK TABLES t READ");
    CHECK(e.lock_tables && !e.unlock_tables);
    e = effect("SELECT GET_LOCK('a',1), GET_LOCK('b',1); SELECT RELEASE_LOCK('a')");
    CHECK(e.user_locks == 1);
    e = effect("SELECT GET_LOCK('a',1); SELECT RELEASE_ALL_LOCKS(); SELECT GET_LOCK('c',1)");
    CHECK(e.release_all_locks && e.user_locks == 1);
    e = effect("XA START 'x'; INSERT INTO t VALUES (1)");
    CHECK(e.xa_start && !e.xa_end);
    /* quotes: escapes and doubled quotes keep the ';' inside */
    e = effect("SELECT 'it''s; \\' ;', \"a;\" ; CREATE TEMPORARY TABLE t (a INT)");
    CHECK(e.statements == 2 && e.temp_tables == 1);
    e = effect("SELECT `a;b` FROM t; LOCK TABLES t WRITE");
    CHECK(e.statements == 2 && e.lock_tables);
    /* an executable comment holding a ';' splits; a plain one does not */
    e = effect("SELECT 1 /* ; */; SELECT 2");
    CHECK(e.statements == 2);
}

static void test_compound(void)
{
    /* a procedure body is one statement: its inner DROP TEMPORARY TABLE is not the session's */
    struct sy_sql_effect e = effect("CREATE PROCEDURE p() BEGIN CREATE TEMPORARY TABLE x (a INT); DROP TEMPORARY "
                                    "TABLE x; END");
    CHECK(e.statements == 1 && e.temp_tables == 0 && e.kind == SY_SQL_OTHER);
    e = effect("CREATE DEFINER=root@localhost PROCEDURE p() BEGIN SELECT 1; SELECT 2; END");
    CHECK(e.statements == 1);
    e = effect("CREATE OR REPLACE FUNCTION f() RETURNS INT BEGIN RETURN 1; END");
    CHECK(e.statements == 1);
    e = effect("BEGIN NOT ATOMIC SELECT 1; SELECT 2; END");
    CHECK(e.statements == 1);
    e = effect("CREATE TABLE p (procedure_name TEXT); SELECT 2");
    CHECK(e.statements == 2);
    e = effect("BEGIN; SELECT 1");
    CHECK(e.statements == 2);
}

static void test_names(void)
{
    const char *sql = "CREATE TEMPORARY TABLE IF NOT EXISTS `my tmp` (a INT)";
    struct sy_sql_stmt st = first(sql);
    CHECK(st.kind == SY_SQL_TEMP_CREATE);
    struct sy_sql_name nm;
    size_t pos = st.names_off;
    CHECK(sy_sql_next_name((const uint8_t *)sql, st.off + st.len, &pos, &nm));
    CHECK(nm.db_len == 0 && nm.name_len == 6 && memcmp(nm.name_p, "my tmp", 6) == 0);
    CHECK(!sy_sql_next_name((const uint8_t *)sql, st.off + st.len, &pos, &nm));
    sql = "/* x */ DROP TEMPORARY TABLE IF EXISTS d1.a, `d2`.`b` , c";
    st = first(sql);
    CHECK(st.kind == SY_SQL_TEMP_DROP && st.tables == 3);
    pos = st.names_off;
    const char *want[][2] = { { "d1", "a" }, { "d2", "b" }, { "", "c" } };
    for (size_t i = 0; i < 3; i++) {
        CHECK(sy_sql_next_name((const uint8_t *)sql, st.off + st.len, &pos, &nm));
        CHECK(nm.db_len == strlen(want[i][0]) && memcmp(nm.db_p ? (const char *)nm.db_p : "", want[i][0], nm.db_len) == 0);
        CHECK(nm.name_len == strlen(want[i][1]) && memcmp(nm.name_p, want[i][1], nm.name_len) == 0);
    }
    CHECK(!sy_sql_next_name((const uint8_t *)sql, st.off + st.len, &pos, &nm));
    sql = "CREATE OR REPLACE TEMPORARY TABLE s.t LIKE s.u";
    st = first(sql);
    pos = st.names_off;
    CHECK(sy_sql_next_name((const uint8_t *)sql, st.off + st.len, &pos, &nm) && nm.name_len == 1 && nm.name_p[0] == 't');
    CHECK(!sy_sql_next_name((const uint8_t *)sql, st.off + st.len, &pos, &nm)); /* LIKE ends the list */
    sql = "DROP TABLE t1";
    st = first(sql);
    pos = st.names_off;
    CHECK(st.kind == SY_SQL_DROP_TABLE && sy_sql_next_name((const uint8_t *)sql, st.off + st.len, &pos, &nm) &&
          nm.name_len == 2);
}

static void test_reads(void)
{
    static const struct {
        const char *sql;
        bool read;
    } cases[] = {
        { "SELECT SLEEP(4)", true },
        { "/* report */ select * from t where a = 'for update'", true },
        { "WITH x AS (SELECT 1) SELECT * FROM x", true },
        { "SHOW PROCESSLIST", true },
        { "EXPLAIN SELECT 1", true },
        { "SELECT * FROM t FOR UPDATE", false },
        { "SELECT * FROM t LOCK IN SHARE MODE", false },
        { "SELECT a INTO @x FROM t", false },
        { "SELECT NEXTVAL(s)", false },
        { "SELECT GET_LOCK('a', 1)", false },
        { "ANALYZE SELECT 1", false },
        { "INSERT INTO t VALUES (1)", false },
        { "UPDATE t SET a = 1", false },
        { "CALL p()", false },
    };
    for (size_t i = 0; i < N(cases); i++) {
        if (first(cases[i].sql).read != cases[i].read)
            fprintf(stderr, "read case %zu: %s\n", i, cases[i].sql);
        CHECK(first(cases[i].sql).read == cases[i].read);
    }
    CHECK(effect("SELECT 1; SELECT 2").read);
    CHECK(!effect("SELECT 1; DELETE FROM t").read);
    CHECK(!effect("").read);
}

static void test_quoting_modes(void)
{
    /* under NO_BACKSLASH_ESCAPES the server runs three statements here, one of them an INSERT */
    const char *sql = "SELECT 'a\\'; INSERT INTO t VALUES (1); SELECT '\\'";
    struct sy_sql_effect e;
    sy_sql_effect_q((const uint8_t *)sql, strlen(sql), SY_SQL_ESC_ALL, &e);
    CHECK(e.statements == 1 && e.read);
    sy_sql_effect_q((const uint8_t *)sql, strlen(sql), SY_SQL_ESC_NONE, &e);
    CHECK(e.statements == 3 && !e.read);
    CHECK(!sy_sql_effect_any_mode((const uint8_t *)sql, strlen(sql), &e) && !e.read);
    /* ANSI_QUOTES: "..." is a name, without escapes */
    sql = "SELECT \"a\\\"; CREATE TEMPORARY TABLE x (a INT); SELECT \"\\\"";
    sy_sql_effect_q((const uint8_t *)sql, strlen(sql), SY_SQL_ESC_SINGLE, &e);
    CHECK(e.temp_tables == 1);
    CHECK(!sy_sql_effect_any_mode((const uint8_t *)sql, strlen(sql), &e));
    /* backslashes that do not change anything: the same in every mode */
    sql = "SELECT 'C:\\\\dir', \"x\"";
    CHECK(sy_sql_effect_any_mode((const uint8_t *)sql, strlen(sql), &e) && e.read);
    CHECK(sy_sql_effect_any_mode((const uint8_t *)"SELECT 1", 8, &e) && e.read);
    /* NEXT VALUE FOR writes a sequence; tracking counts only SETs */
    CHECK(!first("SELECT NEXT VALUE FOR s").read);
    CHECK(first("SELECT PREVIOUS VALUE FOR s").read);
    CHECK(first("SELECT @@session_track_system_variables").tracking == 0);
    CHECK(first("SET session_track_state_change = 1, session_track_schema = 0").tracking ==
          (SY_SQL_TRACK_STATE | SY_SQL_TRACK_SCHEMA));
}

int main(void)
{
    test_kinds();
    test_locks_and_tracking();
    test_lock_names();
    test_prepared_sql();
    test_temporary_sequences();
    test_handlers();
    test_batches();
    test_compound();
    test_names();
    test_reads();
    test_quoting_modes();
    return CHECK_DONE();
}
