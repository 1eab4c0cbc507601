/* A small lexer over MariaDB SQL text, for what the proxy must know about a client's statements that
 * the server never reports: whether a session pins itself to its side (temporary tables, LOCK TABLES,
 * user locks, XA), whether a statement ends a transaction (COMMIT, ROLLBACK), and whether it touches
 * the session-tracking settings the proxy relies on. Pure: no I/O, no allocation; fuzzed.
 *
 * It reads the whole text: statements of a multi-statement batch one by one (split at ';' outside
 * strings, quoted identifiers and comments), leading comments skipped, executable comments
 * (slash-star-bang, slash-star-M-bang) read as code. A compound statement (CREATE PROCEDURE / FUNCTION /
 * TRIGGER / EVENT, BEGIN NOT ATOMIC) is one statement to the end of the text. */
#ifndef SY_MYSQL_SQL_H
#define SY_MYSQL_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sy_sql_kind {
    SY_SQL_OTHER,
    SY_SQL_TEMP_CREATE,   /* CREATE [OR REPLACE] TEMPORARY TABLE | SEQUENCE (a sequence is a table) */
    SY_SQL_TEMP_DROP,     /* DROP TEMPORARY TABLE | SEQUENCE a[, b...]: `tables` says how many */
    SY_SQL_DROP_TABLE,    /* DROP TABLE | SEQUENCE a[, b...]: drops a temporary one of that name first */
    SY_SQL_LOCK_TABLES,   /* LOCK TABLE(S), FLUSH TABLES ... WITH READ LOCK, BACKUP LOCK */
    SY_SQL_UNLOCK_TABLES, /* UNLOCK TABLE(S), BACKUP UNLOCK */
    SY_SQL_XA_START,      /* XA START | XA BEGIN */
    SY_SQL_XA_END,        /* XA COMMIT | XA ROLLBACK */
    SY_SQL_COMMIT,        /* COMMIT [WORK] ... */
    SY_SQL_ROLLBACK,      /* ROLLBACK [WORK] ... but not ROLLBACK TO SAVEPOINT */
    SY_SQL_CALL,          /* CALL proc(...) */
    SY_SQL_PREPARE,       /* PREPARE name FROM 'text' | @var: `name`, `text` (when a literal) */
    SY_SQL_EXECUTE,       /* EXECUTE name [USING ...]: `name` */
    SY_SQL_EXECUTE_TEXT,  /* EXECUTE IMMEDIATE 'text': `text` */
    SY_SQL_DEALLOCATE,    /* DEALLOCATE PREPARE name | DROP PREPARE name: `name` */
    SY_SQL_HANDLER_OPEN,  /* HANDLER [db.]t OPEN [[AS] alias]: `name` is the handler's (alias, else t) */
    SY_SQL_HANDLER_CLOSE, /* HANDLER name CLOSE: `name` */
};

/* How backslashes and double quotes read: the server's sql_mode decides (NO_BACKSLASH_ESCAPES,
 * ANSI_QUOTES), and the proxy does not always know it: sy_sql_effect_any_mode tries all three. */
enum sy_sql_quoting {
    SY_SQL_ESC_ALL,    /* the default: backslash escapes in '...' and "..." */
    SY_SQL_ESC_NONE,   /* NO_BACKSLASH_ESCAPES */
    SY_SQL_ESC_SINGLE, /* ANSI_QUOTES: "..." is an identifier (no escapes), '...' a string */
};

#define SY_SQL_TRACK_VARIABLES 1u
#define SY_SQL_TRACK_SCHEMA 2u
#define SY_SQL_TRACK_STATE 4u

/* One statement of a text. */
struct sy_sql_stmt {
    size_t off, len;         /* the statement in the text, from its first token to before its ';' */
    enum sy_sql_kind kind;
    unsigned tables;         /* SY_SQL_TEMP_DROP: tables named */
    size_t names_off;        /* TEMP_CREATE, TEMP_DROP, DROP_TABLE: where the table names start */
    unsigned get_locks;      /* GET_LOCK( calls (outside strings and comments) */
    unsigned release_locks;  /* RELEASE_LOCK( calls */
    bool release_all_locks;  /* RELEASE_ALL_LOCKS( */
    unsigned tracking;       /* a SET of session_track_system_variables / _schema / _state_change: SY_SQL_TRACK_* */
    bool read;               /* a plain read: SELECT / WITH / VALUES / SHOW / DESCRIBE / EXPLAIN without
                                FOR UPDATE, LOCK IN SHARE MODE, INTO, NEXTVAL/SETVAL, ANALYZE or a lock
                                function; it may finish on a side that was fenced meanwhile */
    size_t name_off, name_len; /* PREPARE, EXECUTE, DEALLOCATE: the statement name; HANDLER_*: the handler
                                  name (without backquotes) */
    size_t text_off, text_len; /* PREPARE, EXECUTE_TEXT: the text's literal, quotes included (text_len 0:
                                  not a literal - a variable or an expression); see sy_sql_unquote */
};

/* The value of a string literal (lit[0] is its quote, n includes both quotes) as the server reads it in
 * the default sql_mode: doubled quotes and backslash escapes undone. Writes at most n bytes to out;
 * returns how many. */
size_t sy_sql_unquote(const uint8_t *lit, size_t n, uint8_t *out);

/* The statement starting at *pos (an offset into sql); moves *pos past it and its ';'. Returns
 * false when only whitespace and comments are left. */
bool sy_sql_next(const uint8_t *sql, size_t len, size_t *pos, struct sy_sql_stmt *out);
bool sy_sql_next_q(const uint8_t *sql, size_t len, size_t *pos, enum sy_sql_quoting quoting, struct sy_sql_stmt *out);

/* A table name `db`.`t`, db.t or t; db_len = 0 when unqualified. Backquoted names are given without
 * their quotes (a doubled backquote inside stays doubled). */
struct sy_sql_name {
    const uint8_t *db_p, *name_p;
    size_t db_len, name_len;
};
/* The next name of a statement's table list, from *pos (start at names_off) up to end (the
 * statement's off + len); false at the end of the list. */
bool sy_sql_next_name(const uint8_t *sql, size_t end, size_t *pos, struct sy_sql_name *out);

/* A user-lock function call. */
enum sy_sql_lock_op {
    SY_SQL_LOCK_GET,         /* GET_LOCK(name, timeout) */
    SY_SQL_LOCK_RELEASE,     /* RELEASE_LOCK(name) */
    SY_SQL_LOCK_RELEASE_ALL, /* RELEASE_ALL_LOCKS() */
};
struct sy_sql_lock {
    enum sy_sql_lock_op op;
    const uint8_t *name_p;   /* the name between its quotes, as written (escapes not undone); NULL when the
                                argument is anything but one string literal (a variable, CONCAT(...)) */
    size_t name_len;
};
/* The next user-lock call of the text from *pos (start at 0), in text order, outside strings and
 * comments (executable comments count); false when none is left. Default quoting (SY_SQL_ESC_ALL). */
bool sy_sql_next_lock(const uint8_t *sql, size_t len, size_t *pos, struct sy_sql_lock *out);

/* What a whole text does, statements folded in order (a batch that creates and drops a temporary
 * table nets to zero). `kind` is the first statement's; `statements` counts them. */
struct sy_sql_effect {
    enum sy_sql_kind kind;
    unsigned statements;
    int temp_tables;         /* created minus dropped */
    bool lock_tables, unlock_tables; /* the last of them wins: lock_tables set = held at the end */
    int user_locks;          /* GET_LOCK minus RELEASE_LOCK */
    bool release_all_locks;  /* RELEASE_ALL_LOCKS before any later GET_LOCK */
    bool lock_calls;         /* any user-lock call: sy_sql_next_lock tells which locks */
    bool xa_start, xa_end;   /* the last of them wins */
    unsigned tracking;       /* SY_SQL_TRACK_* of every statement */
    bool read;               /* every statement is a read (and there is at least one) */
    bool names_tables;       /* a statement creates or drops tables by name (sy_sql_next_name) */
    bool prepared_sql;       /* a PREPARE / EXECUTE / DEALLOCATE statement (names and texts: sy_sql_next) */
    bool handlers;           /* a HANDLER ... OPEN / CLOSE statement (names: sy_sql_next) */
};
void sy_sql_effect(const uint8_t *sql, size_t len, struct sy_sql_effect *out);
void sy_sql_effect_q(const uint8_t *sql, size_t len, enum sy_sql_quoting quoting, struct sy_sql_effect *out);
/* The default reading, checked against the other two quotings when the text has a backslash: false
 * (and read = false) when they disagree - the statement means different things under different
 * sql_modes, so the caller must assume the worst. */
bool sy_sql_effect_any_mode(const uint8_t *sql, size_t len, struct sy_sql_effect *out);

#endif
