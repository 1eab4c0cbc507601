/* One writer connection to the destination (replay/mariadb_apply.h): the session Switchyard's
 * writers use, destination table plans with prepared statements, one row applied at a time with
 * on_conflict, the checkpoint row, and DDL in its idempotent form.
 *
 * The session carries server_id = writer_tag (collectors skip those events: echo suppression),
 * time_zone '+00:00' (TIMESTAMP values arrive in UTC), sql_mode NO_AUTO_VALUE_ON_ZERO,
 * CLIENT_FOUND_ROWS (an UPDATE that matches no row is a conflict, one that changes nothing is not)
 * and character set binary (values are bound as the bytes the source stored, in the column's own
 * charset). Rows are found by the destination table's key (PRIMARY or a NOT NULL UNIQUE key);
 * generated columns are never written. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mysql.h>
#include <mysqld_error.h>

#include "core/failpoint.h"
#include "core/log.h"
#include "engine/mariadb_client.h"
#include "engine/mariadb_ddl_context.h"
#include "replay/mariadb_apply.h"
#include "replay/mariadb_checkpoint.h"
#include "replay/mariadb_fence.h"

#define WR_TIMEOUT_S 30

/* ---- plans ----------------------------------------------------------------------------------- */

static void plan_free(struct sy_apply_plan *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n_cols; i++)
        free(p->cols[i].name);
    free(p->cols);
    if (p->ins)
        mysql_stmt_close(p->ins);
    if (p->ups)
        mysql_stmt_close(p->ups);
    if (p->upd)
        mysql_stmt_close(p->upd);
    if (p->del)
        mysql_stmt_close(p->del);
    free(p);
}

void sy_apply_plans_clear(struct sy_apply_conn *w)
{
    for (size_t i = 0; i < w->n_plans; i++)
        plan_free(w->plans[i]);
    w->n_plans = 0;
}

void sy_apply_txn_reset(struct sy_apply_conn *w)
{
    for (size_t i = 0; i < w->n_tt; i++)
        free(w->tt[i].src_to_dest);
    w->n_tt = 0;
}

/* Key values of these types are equal exactly when their bytes in a change record are. Strings are
 * not (collations: 'a' = 'A', trailing spaces), nor floats (-0 = 0). */
static bool key_type_compares_as_bytes(const char *data_type)
{
    static const char *const ok[] = { "tinyint", "smallint", "mediumint", "int", "bigint", "year",
                                      "date", "datetime", "timestamp", "decimal" };
    for (size_t i = 0; data_type && i < SY_ARRAY_LEN(ok); i++)
        if (strcasecmp(data_type, ok[i]) == 0)
            return true;
    return false;
}

/* Reads the destination table's columns and key. -1: transient error (err), -2: hard (err). */
static int plan_load(struct sy_apply_conn *w, const char *db, const char *table, struct sy_apply_plan **out)
{
    for (size_t i = 0; i < w->n_plans; i++)
        if (strcmp(w->plans[i]->db, db) == 0 && strcmp(w->plans[i]->table, table) == 0) {
            *out = w->plans[i];
            return 0;
        }
    char *edb = sy_mariadb_escape(w->conn, db), *etb = sy_mariadb_escape(w->conn, table);
    char sql[4096];
    snprintf(sql, sizeof sql,
             "SELECT c.COLUMN_NAME, c.IS_GENERATED, " SY_MARIADB_KEY_SEQ_SQL ", c.DATA_TYPE, "
             "(SELECT COUNT(DISTINCT s.INDEX_NAME) FROM information_schema.STATISTICS s WHERE "
             "s.TABLE_SCHEMA=c.TABLE_SCHEMA AND s.TABLE_NAME=c.TABLE_NAME AND s.NON_UNIQUE=0) "
             "FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA='%s' AND c.TABLE_NAME='%s' "
             "ORDER BY c.ORDINAL_POSITION",
             edb ? edb : "", etb ? etb : "");
    free(edb);
    free(etb);
    if (mysql_real_query(w->conn, sql, (unsigned long)strlen(sql)) != 0) {
        snprintf(w->err, sizeof w->err, "reading %s.%s columns on the destination: %u %s", db, table,
                 mysql_errno(w->conn), mysql_error(w->conn));
        return sy_mariadb_is_transient(mysql_errno(w->conn)) ? -1 : -2;
    }
    MYSQL_RES *res = mysql_store_result(w->conn);
    if (res == NULL) {
        snprintf(w->err, sizeof w->err, "reading %s.%s columns: %u %s", db, table, mysql_errno(w->conn),
                 mysql_error(w->conn));
        return -1;
    }
    struct sy_apply_plan *p = calloc(1, sizeof *p);
    size_t n = (size_t)mysql_num_rows(res);
    if (p == NULL || (p->cols = calloc(n ? n : 1, sizeof *p->cols)) == NULL) {
        free(p);
        mysql_free_result(res);
        snprintf(w->err, sizeof w->err, "out of memory");
        return -2;
    }
    snprintf(p->db, sizeof p->db, "%s", db);
    snprintf(p->table, sizeof p->table, "%s", table);
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        struct sy_apply_col *c = &p->cols[p->n_cols++];
        c->name = strdup(row[0] ? row[0] : "");
        c->generated = row[1] && strcmp(row[1], "NEVER") != 0;
        c->key = row[2] != NULL;
        p->n_key += c->key;
        if (c->key && !key_type_compares_as_bytes(row[3]))
            p->whole_table = true;
        if (row[4] && strtoul(row[4], NULL, 10) > 1)
            p->whole_table = true;
    }
    mysql_free_result(res);
    if (p->n_cols == 0) {
        plan_free(p);
        snprintf(w->err, sizeof w->err, "table %s.%s does not exist on the destination", db, table);
        return -2;
    }
    if (p->n_key == 0) {
        plan_free(p);
        snprintf(w->err, sizeof w->err,
                 "table %s.%s has no PRIMARY KEY or NOT NULL UNIQUE key on the destination: rows cannot be found",
                 db, table);
        return -2;
    }
    if (w->n_plans == SY_APPLY_MAX_PLANS)
        sy_apply_plans_clear(w);
    w->plans[w->n_plans++] = p;
    *out = p;
    return 0;
}

static MYSQL_STMT *prepare(struct sy_apply_conn *w, const char *sql)
{
    MYSQL_STMT *st = mysql_stmt_init(w->conn);
    if (st == NULL)
        return NULL;
    if (mysql_stmt_prepare(st, sql, (unsigned long)strlen(sql)) != 0) {
        snprintf(w->err, sizeof w->err, "prepare: %u %s", mysql_stmt_errno(st), mysql_stmt_error(st));
        mysql_stmt_close(st);
        return NULL;
    }
    return st;
}

/* Builds one of the statements of a plan: columns in destination order, generated ones left out. */
static MYSQL_STMT *plan_stmt(struct sy_apply_conn *w, struct sy_apply_plan *p, char kind)
{
    MYSQL_STMT **slot = kind == 'i' ? &p->ins : kind == 'u' ? &p->ups : kind == 'U' ? &p->upd : &p->del;
    if (*slot)
        return *slot;
    size_t cap = 256 + p->n_cols * 600;
    char *sql = malloc(cap), q[600], qt[1200];
    if (sql == NULL)
        return NULL;
    size_t o = 0;
    char qdb[600];
    sy_mariadb_quote_ident(p->db, qdb, sizeof qdb);
    sy_mariadb_quote_ident(p->table, q, sizeof q);
    snprintf(qt, sizeof qt, "%s.%s", qdb, q);
    if (kind == 'i' || kind == 'u') {
        o += (size_t)snprintf(sql + o, cap - o, "INSERT INTO %s (", qt);
        bool first = true;
        for (size_t i = 0; i < p->n_cols; i++) {
            if (p->cols[i].generated)
                continue;
            sy_mariadb_quote_ident(p->cols[i].name, q, sizeof q);
            o += (size_t)snprintf(sql + o, cap - o, "%s%s", first ? "" : ",", q);
            first = false;
        }
        o += (size_t)snprintf(sql + o, cap - o, ") VALUES (");
        first = true;
        for (size_t i = 0; i < p->n_cols; i++) {
            if (p->cols[i].generated)
                continue;
            o += (size_t)snprintf(sql + o, cap - o, "%s?", first ? "" : ",");
            first = false;
        }
        o += (size_t)snprintf(sql + o, cap - o, ")");
        if (kind == 'u') {
            o += (size_t)snprintf(sql + o, cap - o, " ON DUPLICATE KEY UPDATE ");
            first = true;
            for (size_t i = 0; i < p->n_cols; i++) {
                if (p->cols[i].generated)
                    continue;
                sy_mariadb_quote_ident(p->cols[i].name, q, sizeof q);
                o += (size_t)snprintf(sql + o, cap - o, "%s%s=VALUES(%s)", first ? "" : ",", q, q);
                first = false;
            }
        }
    } else if (kind == 'U') {
        o += (size_t)snprintf(sql + o, cap - o, "UPDATE %s SET ", qt);
        bool first = true;
        for (size_t i = 0; i < p->n_cols; i++) {
            if (p->cols[i].generated)
                continue;
            sy_mariadb_quote_ident(p->cols[i].name, q, sizeof q);
            o += (size_t)snprintf(sql + o, cap - o, "%s%s=?", first ? "" : ",", q);
            first = false;
        }
    } else {
        o += (size_t)snprintf(sql + o, cap - o, "DELETE FROM %s", qt);
    }
    if (kind == 'U' || kind == 'd') {
        o += (size_t)snprintf(sql + o, cap - o, " WHERE ");
        bool first = true;
        for (size_t i = 0; i < p->n_cols; i++) {
            if (!p->cols[i].key)
                continue;
            sy_mariadb_quote_ident(p->cols[i].name, q, sizeof q);
            o += (size_t)snprintf(sql + o, cap - o, "%s%s=?", first ? "" : " AND ", q);
            first = false;
        }
    }
    *slot = prepare(w, sql);
    free(sql);
    return *slot;
}

/* ---- binding ------------------------------------------------------------------------------------ */

static int binds_reserve(struct sy_apply_conn *w, size_t n)
{
    if (n <= w->cap_binds)
        return 0;
    free(w->binds);
    free(w->nulls);
    free(w->lens);
    w->binds = calloc(n, sizeof *w->binds);
    w->nulls = calloc(n, sizeof *w->nulls);
    w->lens = calloc(n, sizeof *w->lens);
    w->cap_binds = w->binds && w->nulls && w->lens ? n : 0;
    return w->cap_binds ? 0 : -1;
}

static void bind_value(struct sy_apply_conn *w, size_t slot, const struct sy_value *v)
{
    MYSQL_BIND *b = &w->binds[slot];
    memset(b, 0, sizeof *b);
    w->nulls[slot] = 0;
    b->is_null = &w->nulls[slot];
    b->length = &w->lens[slot];
    switch (v->type) {
    case SY_VAL_NULL:
        w->nulls[slot] = 1;
        b->buffer_type = MYSQL_TYPE_NULL;
        break;
    case SY_VAL_INT:
        b->buffer_type = MYSQL_TYPE_LONGLONG;
        b->buffer = (void *)&v->i;
        break;
    case SY_VAL_UINT:
        b->buffer_type = MYSQL_TYPE_LONGLONG;
        b->buffer = (void *)&v->u;
        b->is_unsigned = 1;
        break;
    case SY_VAL_FLOAT:
    case SY_VAL_DOUBLE:
        b->buffer_type = MYSQL_TYPE_DOUBLE;
        b->buffer = (void *)&v->d;
        break;
    case SY_VAL_DECIMAL:
        b->buffer_type = MYSQL_TYPE_NEWDECIMAL;
        b->buffer = (void *)v->p;
        w->lens[slot] = (unsigned long)v->len;
        break;
    case SY_VAL_BLOB:
        b->buffer_type = MYSQL_TYPE_BLOB;
        b->buffer = (void *)v->p;
        w->lens[slot] = (unsigned long)v->len;
        break;
    case SY_VAL_STRING:
    case SY_VAL_TEMPORAL:
        b->buffer_type = MYSQL_TYPE_STRING;
        b->buffer = (void *)v->p;
        w->lens[slot] = (unsigned long)v->len;
        break;
    case SY_VAL_DOCUMENT: /* never bound: the writer refuses another engine's rows when it reads them */
    case SY_VAL_PATCH:
        b->buffer_type = MYSQL_TYPE_NULL;
        break;
    }
    b->buffer_length = w->lens[slot];
}

const struct sy_value *sy_apply_src_value(const struct sy_apply_table *t, const struct sy_value *vals, size_t dest_col)
{
    for (uint32_t i = 0; i < t->n_src; i++)
        if (t->src_to_dest[i] == (int)dest_col)
            return &vals[i];
    return NULL;
}

static void key_text(const struct sy_apply_table *t, const struct sy_value *vals, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < t->plan->n_cols && o + 1 < outlen; i++) {
        if (!t->plan->cols[i].key)
            continue;
        const struct sy_value *v = sy_apply_src_value(t, vals, i);
        if (v == NULL)
            continue;
        int n;
        if (v->type == SY_VAL_INT)
            n = snprintf(out + o, outlen - o, "%s%s=%lld", o ? "," : "", t->plan->cols[i].name, (long long)v->i);
        else if (v->type == SY_VAL_UINT)
            n = snprintf(out + o, outlen - o, "%s%s=%llu", o ? "," : "", t->plan->cols[i].name,
                         (unsigned long long)v->u);
        else if (v->type == SY_VAL_STRING || v->type == SY_VAL_TEMPORAL || v->type == SY_VAL_DECIMAL)
            n = snprintf(out + o, outlen - o, "%s%s='%.*s'", o ? "," : "", t->plan->cols[i].name,
                         (int)(v->len > 64 ? 64 : v->len), (const char *)v->p);
        else
            n = snprintf(out + o, outlen - o, "%s%s=(%zu bytes)", o ? "," : "", t->plan->cols[i].name, v->len);
        if (n < 0)
            break;
        o += (size_t)n;
    }
}

/* Runs a plan statement with values bound in order: data columns (non-generated) then/or key columns. */
static int exec_stmt(struct sy_apply_conn *w, MYSQL_STMT *st, const struct sy_apply_table *t, const struct sy_value *data,
                     const struct sy_value *keyvals, my_ulonglong *affected)
{
    const struct sy_apply_plan *p = t->plan;
    if (binds_reserve(w, p->n_cols * 2) != 0) {
        snprintf(w->err, sizeof w->err, "out of memory");
        return -2;
    }
    size_t slot = 0;
    static const struct sy_value null_value = { .type = SY_VAL_NULL };
    if (data)
        for (size_t i = 0; i < p->n_cols; i++) {
            if (p->cols[i].generated)
                continue;
            const struct sy_value *v = sy_apply_src_value(t, data, i);
            bind_value(w, slot++, v ? v : &null_value);
        }
    if (keyvals)
        for (size_t i = 0; i < p->n_cols; i++) {
            if (!p->cols[i].key)
                continue;
            const struct sy_value *v = sy_apply_src_value(t, keyvals, i);
            bind_value(w, slot++, v ? v : &null_value);
        }
    if (mysql_stmt_bind_param(st, w->binds) != 0 || mysql_stmt_execute(st) != 0) {
        unsigned int e = mysql_stmt_errno(st);
        snprintf(w->err, sizeof w->err, "%u %s", e, mysql_stmt_error(st));
        return sy_mariadb_is_transient(e) ? -1 : (e == ER_DUP_ENTRY ? -3 : -2);
    }
    *affected = mysql_stmt_affected_rows(st);
    return 0;
}

/* ---- applying records --------------------------------------------------------------------------- */

struct sy_apply_table *sy_apply_table_find(struct sy_apply_conn *w, uint64_t id)
{
    for (size_t i = 0; i < w->n_tt; i++)
        if (w->tt[i].table_id == id)
            return &w->tt[i];
    return NULL;
}

/* -1 transient, -2 hard failure (reported by caller from w->err). */
int sy_apply_table(struct sy_apply_conn *w, const struct sy_change_table *t)
{
    char db[257], table[257];
    snprintf(db, sizeof db, "%.*s", (int)t->db_len, t->db);
    snprintf(table, sizeof table, "%.*s", (int)t->table_len, t->table);
    struct sy_apply_plan *p;
    int rc = plan_load(w, db, table, &p);
    if (rc != 0)
        return rc;
    if (sy_grow((void **)&w->tt, &w->cap_tt, w->n_tt + 1, sizeof *w->tt, 16) != 0)
        return -2;
    struct sy_apply_table *tt = &w->tt[w->n_tt];
    tt->table_id = t->table_id;
    tt->plan = p;
    tt->n_src = t->n_columns;
    tt->src_to_dest = calloc(t->n_columns ? t->n_columns : 1, sizeof *tt->src_to_dest);
    if (tt->src_to_dest == NULL)
        return -2;
    for (uint32_t i = 0; i < t->n_columns; i++) {
        tt->src_to_dest[i] = -1;
        for (size_t j = 0; j < p->n_cols; j++)
            if (strlen(p->cols[j].name) == t->columns[i].name_len &&
                strncasecmp(p->cols[j].name, t->columns[i].name, t->columns[i].name_len) == 0)
                tt->src_to_dest[i] = (int)j;
        if (tt->src_to_dest[i] < 0) {
            snprintf(w->err, sizeof w->err, "column %.*s of %s.%s does not exist on the destination",
                     (int)t->columns[i].name_len, t->columns[i].name, db, table);
            free(tt->src_to_dest);
            return -2;
        }
    }
    for (size_t j = 0; j < p->n_cols; j++) {
        bool mapped = false;
        for (uint32_t i = 0; i < t->n_columns; i++)
            mapped = mapped || tt->src_to_dest[i] == (int)j;
        if (!mapped && p->cols[j].key) {
            snprintf(w->err, sizeof w->err, "key column %s of %s.%s is not in the source's rows", p->cols[j].name,
                     db, table);
            free(tt->src_to_dest);
            return -2;
        }
    }
    w->n_tt++;
    return 0;
}

int sy_apply_row(struct sy_apply_conn *w, const struct sy_change_row *r, uint64_t seq, const char *txn)
{
    struct sy_apply_table *t = sy_apply_table_find(w, r->table_id);
    if (t == NULL) {
        snprintf(w->err, sizeof w->err, "row for table id %llu without its TABLE record (spool seq %llu)",
                 (unsigned long long)r->table_id, (unsigned long long)seq);
        return -2;
    }
    if (r->n_columns != t->n_src) {
        snprintf(w->err, sizeof w->err, "row of %s.%s has %u columns, its table %u", t->plan->db, t->plan->table,
                 r->n_columns, t->n_src);
        return -2;
    }
    bool overwrite = w->cfg->on_conflict == SY_ON_CONFLICT_OVERWRITE || w->overwrite_txn;
    my_ulonglong affected = 0;
    int rc;
    const char *what;
    const struct sy_value *keyvals = r->op == SY_ROW_INSERT ? r->after : r->before;
    switch (r->op) {
    case SY_ROW_INSERT: {
        MYSQL_STMT *st = plan_stmt(w, t->plan, overwrite ? 'u' : 'i');
        if (st == NULL)
            return -2;
        rc = exec_stmt(w, st, t, r->after, NULL, &affected);
        what = "duplicate key on INSERT";
        if (rc == -3)
            goto conflict;
        if (rc == 0 && overwrite && affected > 1)
            w->conflicts_overwritten++;
        break;
    }
    case SY_ROW_UPDATE: {
        MYSQL_STMT *st = plan_stmt(w, t->plan, 'U');
        if (st == NULL)
            return -2;
        rc = exec_stmt(w, st, t, r->after, r->before, &affected);
        what = "no row to UPDATE";
        if (rc == -3) {
            what = "duplicate key on UPDATE";
            goto conflict;
        }
        if (rc == 0 && affected == 0) {
            if (!overwrite)
                goto conflict;
            MYSQL_STMT *up = plan_stmt(w, t->plan, 'u');
            if (up == NULL)
                return -2;
            rc = exec_stmt(w, up, t, r->after, NULL, &affected);
            w->conflicts_overwritten++;
        }
        break;
    }
    default: {
        MYSQL_STMT *st = plan_stmt(w, t->plan, 'd');
        if (st == NULL)
            return -2;
        rc = exec_stmt(w, st, t, NULL, r->before, &affected);
        what = "no row to DELETE";
        if (rc == 0 && affected == 0) {
            if (!overwrite)
                goto conflict;
            w->conflicts_overwritten++;
        }
        break;
    }
    }
    if (rc == 0)
        w->rows++;
    return rc;
conflict : {
    char key[512];
    key_text(t, keyvals, key, sizeof key);
    char detail[700];
    snprintf(detail, sizeof detail, "%s", rc == -3 ? w->err : "");
    snprintf(w->err, sizeof w->err, "conflict on %s.%s key (%s): %s%s%s in source transaction %s (spool seq %llu)",
             t->plan->db, t->plan->table, key, what, detail[0] ? ": " : "", detail, txn, (unsigned long long)seq);
    return -4;
}
}

int sy_apply_checkpoint(struct sy_apply_conn *w, uint64_t spool_seq, const char *position,
                        uint64_t pending_ddl_seq)
{
    char *epos = sy_mariadb_escape(w->conn, position), *eid = sy_mariadb_escape(w->conn, w->ctx->instance_id);
    char err[512];
    int rc = sy_mariadb_exec(w->conn, err, sizeof err,
                             "INSERT INTO " SY_SCHEMA ".checkpoint (instance, spool_seq, position, pending_ddl_seq) "
                             "VALUES ('%s', %llu, '%s', %llu) ON DUPLICATE KEY UPDATE spool_seq=VALUES(spool_seq), "
                             "position=VALUES(position), pending_ddl_seq=VALUES(pending_ddl_seq), updated_at=NOW(6)",
                             eid ? eid : "", (unsigned long long)spool_seq, epos ? epos : "",
                             (unsigned long long)pending_ddl_seq);
    free(epos);
    free(eid);
    if (rc != 0)
        snprintf(w->err, sizeof w->err, "checkpoint: %s", err);
    return rc;
}

int sy_apply_fence(struct sy_apply_conn *w, bool exclusive)
{
    char err[600];
    int rc = sy_mariadb_fence_check(w->conn, w->ctx->instance_id, w->ctx->owner_token, exclusive,
                                    &w->fenced_by, err, sizeof err);
    if (rc == 0)
        return 0;
    snprintf(w->err, sizeof w->err, "%s", err);
    if (rc < 0)
        return sy_mariadb_is_transient(mysql_errno(w->conn)) ? SY_APPLY_TRANSIENT : SY_APPLY_HARD;
    sy_apply_rollback(w);
    return SY_APPLY_FENCED;
}

void sy_apply_rollback(struct sy_apply_conn *w)
{
    if (w->conn)
        mysql_rollback(w->conn);
}

int sy_apply_commit(struct sy_apply_conn *w)
{
    if (mysql_commit(w->conn) != 0) {
        snprintf(w->err, sizeof w->err, "COMMIT: %u %s", mysql_errno(w->conn), mysql_error(w->conn));
        return -1;
    }
    return 0;
}
/* ---- DDL ------------------------------------------------------------------------------------------ */

/* Writes the IF [NOT] EXISTS form of common DDL into out (else the text as it is). */
static void idempotent_ddl(const char *sql, size_t len, char *out, size_t outlen)
{
    struct rule {
        const char *prefix;
        const char *guard;
        const char *insert_after;
    };
    static const struct rule rules[] = {
        { "CREATE TABLE ", "IF NOT EXISTS", "CREATE TABLE " },
        { "CREATE DATABASE ", "IF NOT EXISTS", "CREATE DATABASE " },
        { "CREATE SCHEMA ", "IF NOT EXISTS", "CREATE SCHEMA " },
        { "CREATE INDEX ", "IF NOT EXISTS", "CREATE INDEX " },
        { "CREATE UNIQUE INDEX ", "IF NOT EXISTS", "CREATE UNIQUE INDEX " },
        { "DROP TABLE ", "IF EXISTS", "DROP TABLE " },
        { "DROP DATABASE ", "IF EXISTS", "DROP DATABASE " },
        { "DROP SCHEMA ", "IF EXISTS", "DROP SCHEMA " },
        { "DROP INDEX ", "IF EXISTS", "DROP INDEX " },
        { "RENAME TABLE ", "IF EXISTS", "RENAME TABLE " },
    };
    const char *p = sql;
    while ((size_t)(p - sql) < len && isspace((unsigned char)*p))
        p++;
    size_t rest = len - (size_t)(p - sql);
    for (size_t i = 0; i < SY_ARRAY_LEN(rules); i++) {
        size_t pl = strlen(rules[i].prefix);
        if (rest > pl && strncasecmp(p, rules[i].prefix, pl) == 0) {
            const char *after = p + pl;
            size_t gl = strlen(rules[i].guard);
            if ((size_t)(sql + len - after) >= gl && strncasecmp(after, rules[i].guard, gl) == 0)
                break; /* already guarded */
            snprintf(out, outlen, "%s%s %.*s", rules[i].insert_after, rules[i].guard, (int)(sql + len - after),
                     after);
            return;
        }
    }
    snprintf(out, outlen, "%.*s", (int)len, sql);
}

static bool already_done(unsigned int e)
{
    switch (e) {
    case ER_TABLE_EXISTS_ERROR:  /* 1050 */
    case ER_BAD_TABLE_ERROR:     /* 1051 */
    case ER_DUP_FIELDNAME:       /* 1060 */
    case ER_DUP_KEYNAME:         /* 1061 */
    case ER_CANT_DROP_FIELD_OR_KEY: /* 1091 */
    case ER_DB_CREATE_EXISTS:    /* 1007 */
    case ER_DB_DROP_EXISTS:      /* 1008 */
    case ER_NO_SUCH_TABLE:       /* 1146 */
        return true;
    default:
        return false;
    }
}


/* The DDL's session character set and collations, as the source logged them: collation ids (the binlog's
 * Q_CHARSET_CODE). SET takes a number only where it is a character set's default collation (utf8mb4's 224,
 * utf8mb4_unicode_ci — the Node.js mysql2 driver's — is refused: "Unknown character set"), so the ids are
 * resolved to names on the destination. 0, or -1 with err. */
static int session_charsets(MYSQL *m, const struct sy_mariadb_ddl_context *ctx, char *err, size_t errlen)
{
    char sql[400];
    snprintf(sql, sizeof sql, "SELECT ID, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLLATIONS "
             "WHERE ID IN (%u, %u, %u)", ctx->charset_client, ctx->collation_connection, ctx->collation_server);
    MYSQL_RES *res = NULL;
    if (mysql_real_query(m, sql, (unsigned long)strlen(sql)) != 0 || (res = mysql_store_result(m)) == NULL) {
        snprintf(err, errlen, "%u %s", mysql_errno(m), mysql_error(m));
        return -1;
    }
    char client[64] = "", connection[64] = "", server[64] = "";
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        unsigned id = row[0] ? (unsigned)strtoul(row[0], NULL, 10) : 0;
        if (id == ctx->charset_client && row[1])
            snprintf(client, sizeof client, "%s", row[1]);
        if (id == ctx->collation_connection && row[2])
            snprintf(connection, sizeof connection, "%s", row[2]);
        if (id == ctx->collation_server && row[2])
            snprintf(server, sizeof server, "%s", row[2]);
    }
    mysql_free_result(res);
    if (!client[0] || !connection[0] || !server[0]) {
        snprintf(err, errlen, "the destination knows none of the collation ids %u, %u, %u the source logged for the "
                 "statement", ctx->charset_client, ctx->collation_connection, ctx->collation_server);
        return -1;
    }
    /* names from information_schema: letters, digits and underscores only */
    return sy_mariadb_exec(m, err, errlen, "SET SESSION character_set_client=%s, collation_connection=%s, "
                           "collation_server=%s", client, connection, server);
}

/* -1 transient, -2 hard. retry: this DDL was pending at start (may have run already). */
int sy_apply_ddl(struct sy_apply_conn *w, const struct sy_change_ddl *d, bool retry)
{
    struct sy_mariadb_ddl_context ctx;
    if (!sy_mariadb_ddl_context_decode(d->context, d->context_len, &ctx)) {
        snprintf(w->err, sizeof w->err, "DDL record with a malformed session context (%zu bytes)", d->context_len);
        return -2;
    }
    size_t cap = d->sql_len + 64;
    char *sql = malloc(cap);
    if (sql == NULL)
        return -2;
    idempotent_ddl(d->sql, d->sql_len, sql, cap);
    char err[1024];
    int rc = 0;
    char db[257], tz[80];
    snprintf(db, sizeof db, "%.*s", (int)d->db_len, d->db);
    snprintf(tz, sizeof tz, "%.*s", (int)ctx.time_zone_len, ctx.time_zone);
    char qdb[600];
    sy_mariadb_quote_ident(db, qdb, sizeof qdb);
    if (db[0] && sy_mariadb_exec(w->conn, err, sizeof err, "USE %s", qdb) != 0 &&
        mysql_errno(w->conn) == ER_BAD_DB_ERROR && sy_objects_match_db(w->cfg, db)) {
        /* the statement's default database was created on the source before the instance existed */
        if (sy_mariadb_exec(w->conn, err, sizeof err, "CREATE DATABASE IF NOT EXISTS %s", qdb) == 0 &&
            sy_mariadb_exec(w->conn, err, sizeof err, "USE %s", qdb) == 0)
            err[0] = '\0';
    }
    if ((db[0] && mysql_errno(w->conn) != 0 && mysql_errno(w->conn) != ER_BAD_DB_ERROR) ||
        sy_mariadb_exec(w->conn, err, sizeof err, "SET SESSION sql_mode=%llu%s%s%s", (unsigned long long)ctx.sql_mode,
                        tz[0] ? ", time_zone='" : "", tz[0] ? tz : "", tz[0] ? "'" : "") != 0 ||
        (ctx.charset_client && session_charsets(w->conn, &ctx, err, sizeof err) != 0)) {
        snprintf(w->err, sizeof w->err, "DDL session setup: %s", err);
        free(sql);
        return sy_mariadb_is_transient(mysql_errno(w->conn)) ? -1 : -2;
    }
    sy_failpoint("writer_during_ddl");
    if (mysql_real_query(w->conn, sql, (unsigned long)strlen(sql)) != 0) {
        unsigned int e = mysql_errno(w->conn);
        if (!(retry && already_done(e))) {
            snprintf(w->err, sizeof w->err, "DDL failed on the destination: %u %s", e, mysql_error(w->conn));
            rc = sy_mariadb_is_transient(e) ? -1 : -2;
        }
    } else {
        MYSQL_RES *res = mysql_store_result(w->conn);
        if (res)
            mysql_free_result(res);
    }
    free(sql);
    if (sy_mariadb_exec(w->conn, err, sizeof err,
                        "SET SESSION sql_mode='NO_AUTO_VALUE_ON_ZERO', time_zone='+00:00', NAMES binary") != 0 &&
        rc == 0) {
        snprintf(w->err, sizeof w->err, "restoring the writer session: %s", err);
        rc = -1;
    }
    sy_apply_plans_clear(w); /* table layouts may have changed */
    return rc;
}

/* ---- keys ------------------------------------------------------------------------------------------ */

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t finish_hash(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

uint64_t sy_apply_row_key(const struct sy_apply_table *t, const struct sy_value *vals)
{
    const struct sy_apply_plan *p = t->plan;
    uint64_t h = mix(0xcbf29ce484222325ull, p->db, strlen(p->db) + 1);
    h = mix(h, p->table, strlen(p->table) + 1);
    if (p->whole_table)
        return finish_hash(mix(h, "*", 1));
    for (size_t i = 0; i < p->n_cols; i++) {
        if (!p->cols[i].key)
            continue;
        const struct sy_value *v = sy_apply_src_value(t, vals, i);
        if (v == NULL || v->type == SY_VAL_NULL) {
            h = mix(h, "N", 1);
            continue;
        }
        switch (v->type) {
        case SY_VAL_INT:
            h = mix(h, &v->i, sizeof v->i);
            break;
        case SY_VAL_UINT:
            h = mix(h, &v->u, sizeof v->u);
            break;
        case SY_VAL_FLOAT:
        case SY_VAL_DOUBLE:
            h = mix(h, &v->d, sizeof v->d);
            break;
        default:
            h = mix(h, &v->len, sizeof v->len);
            h = mix(h, v->p, v->len);
            break;
        }
    }
    return finish_hash(h);
}

/* ---- connection ----------------------------------------------------------------------------------- */

void sy_apply_conn_init(struct sy_apply_conn *w, const struct sy_module_ctx *ctx)
{
    memset(w, 0, sizeof *w);
    w->ctx = ctx;
    w->sock_slot = -1;
    w->cfg = ctx->cfg;
    sy_change_scratch_init(&w->scratch);
    sy_buf_init(&w->sql);
}

void sy_apply_conn_close(struct sy_apply_conn *w)
{
    sy_apply_txn_reset(w);
    sy_apply_plans_clear(w);
    if (w->conn) {
        mysql_close(w->conn);
        w->conn = NULL;
    }
    sy_module_socket_drop(w->ctx, w->sock_slot);
    w->sock_slot = -1;
}

void sy_apply_conn_fini(struct sy_apply_conn *w)
{
    sy_apply_conn_close(w);
    sy_change_scratch_fini(&w->scratch);
    sy_buf_fini(&w->sql);
    free(w->binds);
    free(w->nulls);
    free(w->lens);
    free(w->tt);
    w->binds = NULL;
    w->nulls = NULL;
    w->lens = NULL;
    w->tt = NULL;
    w->cap_binds = w->cap_tt = 0;
}

int sy_apply_conn_open(struct sy_apply_conn *w)
{
    unsigned int e = 0;
    /* a stop that finds it still busy after its grace (a lock wait, a connect nobody answers) shuts it down */
    w->conn = sy_mariadb_connect_watched(w->ctx->dest, w->cfg, CLIENT_FOUND_ROWS, WR_TIMEOUT_S, w->ctx, &w->sock_slot,
                                         &e, w->err, sizeof w->err);
    if (w->conn == NULL)
        return e == 0 || sy_mariadb_is_transient(e) ? 1 : -1;
    char err[512];
    if (mysql_set_server_option(w->conn, MYSQL_OPTION_MULTI_STATEMENTS_ON) != 0 ||
        sy_mariadb_exec(w->conn, err, sizeof err,
                        "SET SESSION server_id=%u, time_zone='+00:00', sql_mode='NO_AUTO_VALUE_ON_ZERO', "
                        "foreign_key_checks=0, autocommit=0",
                        w->cfg->writer_tag) != 0 ||
        sy_mariadb_exec(w->conn, err, sizeof err, "CREATE DATABASE IF NOT EXISTS " SY_SCHEMA) != 0 ||
        sy_mariadb_exec(w->conn, err, sizeof err, SY_MARIADB_CHECKPOINT_DDL) != 0 ||
        sy_mariadb_exec(w->conn, err, sizeof err, SY_MARIADB_APPLIED_DDL) != 0) {
        if (mysql_errno(w->conn) == 0)
            snprintf(err, sizeof err, "%u %s", mysql_errno(w->conn), mysql_error(w->conn));
        snprintf(w->err, sizeof w->err, "writer session on %s:%u: %s", w->ctx->dest->host, w->ctx->dest->port, err);
        unsigned int me = mysql_errno(w->conn);
        return sy_mariadb_is_transient(me) ? 1 : -1;
    }
    mysql_commit(w->conn);
    return 0;
}
