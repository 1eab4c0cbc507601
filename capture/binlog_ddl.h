/* Classifies the statement text of a binlog QUERY event: transaction control, DDL on synchronized
 * objects, something to skip (other objects, GRANT, views, routines...), DDL whose target cannot be
 * told, or STATEMENT-format DML on a synchronized database. Pure (no I/O, no globals): which objects
 * are synchronized is asked through callbacks; fed by the tail reader (capture/mariadb_tail.c), unit
 * tests and libFuzzer. The rules are those of the forward collector (capture/mariadb_collector.c). */
#ifndef SY_BINLOG_DDL_H
#define SY_BINLOG_DDL_H

#include <stdbool.h>
#include <stddef.h>

enum sy_ddl_kind {
    SY_DDL_NONE,            /* BEGIN, COMMIT, ROLLBACK, XA, SAVEPOINT: transaction control */
    SY_DDL_SYNC,            /* schema change of a synchronized object */
    SY_DDL_SKIP,            /* not about synchronized objects */
    SY_DDL_UNKNOWN_TARGET,  /* a schema change whose objects cannot be told (or mixes synchronized + other) */
    SY_DDL_STATEMENT_DML,   /* INSERT/UPDATE/DELETE/REPLACE/LOAD logged as a statement in a synchronized db */
};

struct sy_ddl_match {
    bool (*table)(void *arg, const char *db, const char *table); /* db.table is synchronized */
    bool (*db)(void *arg, const char *db);                       /* some synchronized object lives in db */
    void *arg;
};

/* sql/len: the statement (not NUL-terminated); default_db: NUL-terminated, "" = none. what gets a short
 * description for messages ("ALTER TABLE db.t", "DROP DATABASE x"), never the statement's values. */
enum sy_ddl_kind sy_ddl_classify(const char *sql, size_t len, const char *default_db, const struct sy_ddl_match *m,
                                 char *what, size_t whatlen);

/* Skips spaces and comments from p; the next token into out (truncated): a word (letters, digits, _ , $),
 * a `quoted` name unquoted, or one punctuation character; "" at the end. Returns where it ends. */
const char *sy_ddl_next_token(const char *p, const char *end, char *out, size_t outlen);

/* An identifier at p (spaces and comments skipped) into out (truncated): `quoted` or "quoted" (ANSI_QUOTES)
 * unquoted, or bare (letters, digits, _ , $ and any byte >= 0x80); "" when there is none. Returns where it
 * ends. */
const char *sy_ddl_name(const char *p, const char *end, char *out, size_t outlen);

/* The first word of sql (spaces and comments skipped), for BEGIN/COMMIT checks. */
void sy_ddl_first_word(const char *sql, size_t len, char *out, size_t outlen);

#endif
