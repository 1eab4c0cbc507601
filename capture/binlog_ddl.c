/* QUERY statement classification (capture/binlog_ddl.h): a small tokenizer (spaces, comments, words,
 * `quoted` names, punctuation) and the keyword rules that tell DDL on synchronized objects from the
 * rest. Pure: reads only the span it is given; every token is truncated to its buffer. */
#include "capture/binlog_ddl.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/parse.h"

#define NAME_MAX_LEN 256

static const char *skip_space(const char *p, const char *end)
{
    for (;;) {
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
            const char *q = p + 2;
            while (end - q >= 2 && !(q[0] == '*' && q[1] == '/'))
                q++;
            p = end - q >= 2 ? q + 2 : end;
            continue;
        }
        if ((end - p >= 2 && p[0] == '-' && p[1] == '-') || (p < end && p[0] == '#')) {
            while (p < end && *p != '\n')
                p++;
            continue;
        }
        return p;
    }
}

/* A name quoted with q at p (a doubled q is one), unquoted into out (truncated); returns where it ends. */
static const char *quoted(const char *p, const char *end, char q, char *out, size_t outlen)
{
    size_t n = 0;
    for (p++; p < end; p++) {
        if (*p == q) {
            if (end - p >= 2 && p[1] == q) {
                p++;
            } else {
                p++;
                break;
            }
        }
        if (n + 1 < outlen)
            out[n++] = *p;
    }
    out[n] = '\0';
    return p;
}

const char *sy_ddl_next_token(const char *p, const char *end, char *out, size_t outlen)
{
    p = skip_space(p, end);
    if (p < end && *p == '`')
        return quoted(p, end, '`', out, outlen);
    size_t n = 0;
    while (p < end && (isalnum((unsigned char)*p) || *p == '_' || *p == '$') && n + 1 < outlen)
        out[n++] = *p++;
    if (n == 0 && p < end && n + 1 < outlen)
        out[n++] = *p++; /* punctuation: one char */
    out[n] = '\0';
    return p;
}

const char *sy_ddl_name(const char *p, const char *end, char *out, size_t outlen)
{
    p = skip_space(p, end);
    if (p < end && (*p == '`' || *p == '"'))
        return quoted(p, end, *p, out, outlen);
    size_t n = 0;
    for (; p < end && (isalnum((unsigned char)*p) || *p == '_' || *p == '$' || (unsigned char)*p >= 0x80); p++)
        if (n + 1 < outlen)
            out[n++] = *p;
    out[n] = '\0';
    return p;
}

void sy_ddl_first_word(const char *sql, size_t len, char *out, size_t outlen)
{
    if (outlen == 0)
        return;
    out[0] = '\0';
    if (sql != NULL)
        sy_ddl_next_token(sql, sql + len, out, outlen);
}

/* "[db.]name" after the keyword; fills db (default when unqualified) and table. */
static const char *qualified_name(const char *p, const char *end, const char *default_db, char *db, char *table)
{
    char a[NAME_MAX_LEN], b[NAME_MAX_LEN], dot[4];
    p = sy_ddl_next_token(p, end, a, sizeof a);
    const char *save = p;
    p = sy_ddl_next_token(p, end, dot, sizeof dot);
    if (strcmp(dot, ".") == 0) {
        p = sy_ddl_next_token(p, end, b, sizeof b);
        snprintf(db, NAME_MAX_LEN, "%s", a);
        snprintf(table, NAME_MAX_LEN, "%s", b);
        return p;
    }
    snprintf(db, NAME_MAX_LEN, "%s", default_db);
    snprintf(table, NAME_MAX_LEN, "%s", a);
    return save;
}

static bool is_word(const char *w, const char *const *words, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(w, words[i]) == 0)
            return true;
    return false;
}

enum sy_ddl_kind sy_ddl_classify(const char *sql, size_t len, const char *default_db, const struct sy_ddl_match *m,
                                 char *what, size_t whatlen)
{
    static const char *const control[] = { "BEGIN", "COMMIT", "ROLLBACK", "XA", "SAVEPOINT" };
    static const char *const dml[] = { "INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD" };
    static const char *const modifiers[] = { "OR", "REPLACE", "TEMPORARY", "UNIQUE", "FULLTEXT", "SPATIAL",
                                             "ONLINE", "IGNORE" };
    static const char *const ifs[] = { "IF", "NOT", "EXISTS" };
    static const char *const others[] = { "VIEW", "TRIGGER", "PROCEDURE", "FUNCTION", "EVENT", "USER", "ROLE",
                                          "SEQUENCE", "SERVER" };
    if (whatlen)
        what[0] = '\0';
    if (sql == NULL)
        return SY_DDL_NONE;
    const char *p = sql, *end = sql + len;
    char w1[64], w2[64], db[NAME_MAX_LEN], table[NAME_MAX_LEN];
    p = sy_ddl_next_token(p, end, w1, sizeof w1);
    if (is_word(w1, control, SY_ARRAY_LEN(control)))
        return SY_DDL_NONE;
    if (is_word(w1, dml, SY_ARRAY_LEN(dml))) {
        snprintf(what, whatlen, "%s", w1);
        return default_db[0] && m->db(m->arg, default_db) ? SY_DDL_STATEMENT_DML : SY_DDL_SKIP;
    }
    bool create = strcasecmp(w1, "CREATE") == 0, alter = strcasecmp(w1, "ALTER") == 0,
         drop = strcasecmp(w1, "DROP") == 0, rename = strcasecmp(w1, "RENAME") == 0,
         truncate = strcasecmp(w1, "TRUNCATE") == 0;
    if (!create && !alter && !drop && !rename && !truncate)
        return SY_DDL_SKIP; /* GRANT, SET, FLUSH, ANALYZE ...: not schema of synchronized objects */
    p = sy_ddl_next_token(p, end, w2, sizeof w2);
    while (w2[0] && is_word(w2, modifiers, SY_ARRAY_LEN(modifiers)))
        p = sy_ddl_next_token(p, end, w2, sizeof w2);
    if (truncate && strcasecmp(w2, "TABLE") != 0) { /* TRUNCATE name */
        p = sy_ddl_next_token(sql, end, w1, sizeof w1);
        snprintf(w2, sizeof w2, "TABLE");
    }
    if (strcasecmp(w2, "DATABASE") == 0 || strcasecmp(w2, "SCHEMA") == 0) {
        char name[NAME_MAX_LEN];
        const char *q = sy_ddl_next_token(p, end, name, sizeof name);
        while (name[0] && is_word(name, ifs, SY_ARRAY_LEN(ifs)))
            q = sy_ddl_next_token(q, end, name, sizeof name);
        snprintf(what, whatlen, "%s DATABASE %s", w1, name);
        return m->db(m->arg, name) ? SY_DDL_SYNC : SY_DDL_SKIP;
    }
    if (strcasecmp(w2, "INDEX") == 0) { /* CREATE INDEX i ON t / DROP INDEX i ON t */
        char tok[NAME_MAX_LEN];
        do
            p = sy_ddl_next_token(p, end, tok, sizeof tok);
        while (p < end && strcasecmp(tok, "ON") != 0);
        if (strcasecmp(tok, "ON") != 0)
            return SY_DDL_UNKNOWN_TARGET;
        qualified_name(p, end, default_db, db, table);
    } else if (strcasecmp(w2, "TABLE") == 0 || strcasecmp(w2, "TABLES") == 0) {
        char tok[NAME_MAX_LEN];
        const char *q = sy_ddl_next_token(p, end, tok, sizeof tok);
        while (tok[0] && is_word(tok, ifs, SY_ARRAY_LEN(ifs))) {
            p = q;
            q = sy_ddl_next_token(q, end, tok, sizeof tok);
        }
        p = qualified_name(p, end, default_db, db, table);
        /* DROP TABLE a, b / RENAME TABLE a TO b: every named table must agree */
        bool any = m->table(m->arg, db, table), all = any;
        for (;;) {
            char sep[NAME_MAX_LEN];
            const char *q2 = sy_ddl_next_token(p, end, sep, sizeof sep);
            if (strcmp(sep, ",") != 0 && strcasecmp(sep, "TO") != 0)
                break;
            char db2[NAME_MAX_LEN], t2[NAME_MAX_LEN];
            p = qualified_name(q2, end, default_db, db2, t2);
            bool hit = m->table(m->arg, db2, t2);
            any = any || hit;
            all = all && hit;
        }
        snprintf(what, whatlen, "%s TABLE %s.%s", w1, db, table);
        if (any && !all)
            return SY_DDL_UNKNOWN_TARGET; /* mixes synchronized and other tables */
        return any ? SY_DDL_SYNC : SY_DDL_SKIP;
    } else if (is_word(w2, others, SY_ARRAY_LEN(others))) {
        return SY_DDL_SKIP;
    } else {
        snprintf(what, whatlen, "%s %s", w1, w2);
        return default_db[0] && m->db(m->arg, default_db) ? SY_DDL_UNKNOWN_TARGET : SY_DDL_SKIP;
    }
    snprintf(what, whatlen, "%s %s %s.%s", w1, w2, db, table);
    if (db[0] == '\0')
        return SY_DDL_UNKNOWN_TARGET;
    return m->table(m->arg, db, table) ? SY_DDL_SYNC : SY_DDL_SKIP;
}
