/* Incremental Write for MariaDB: a thread that reads the instance's spool and applies it to the
 * destination, one destination transaction per source transaction, with the checkpoint row
 * (switchyard.checkpoint: spool seq + source position) updated in that same transaction — so a
 * kill -9 anywhere leaves either all of a transaction and its checkpoint, or neither.
 *
 * The writer's session carries server_id = writer_tag (collectors skip those events: echo
 * suppression), time_zone '+00:00' (TIMESTAMP values arrive in UTC), sql_mode NO_AUTO_VALUE_ON_ZERO,
 * CLIENT_FOUND_ROWS (an UPDATE that matches no row is a conflict, one that changes nothing is not)
 * and character set binary (values are bound as the bytes the source stored, in the column's own
 * charset). Rows are found by the destination table's key (PRIMARY or a NOT NULL UNIQUE key);
 * generated columns are never written. A DDL runs alone: checkpoint marks it pending, it runs in
 * its IF [NOT] EXISTS form, then the checkpoint moves past it; a pending DDL found at start is
 * re-run, tolerating "already done" errors. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include <mysql.h>
#include <mysqld_error.h>

#include "core/change.h"
#include "core/failpoint.h"
#include "core/instance.h"
#include "core/log.h"
#include "core/mariadb_client.h"
#include "replay/mariadb_modules.h"
#include "replay/mariadb_checkpoint.h"

#define WR_TIMEOUT_S 30
#define WR_MAX_BACKOFF_MS 2000
#define WR_POSITION_FLUSH 1000    /* skipped-position records between checkpoint writes */
#define WR_MAX_PLANS 1024

struct dest_col {
    char *name;        /* owned */
    bool generated;
    bool key;
};

/* How rows of one destination table are written. */
struct plan {
    char db[257], table[257];
    struct dest_col *cols;   /* owned: destination columns in ordinal order */
    size_t n_cols;
    size_t n_key;
    MYSQL_STMT *ins, *ups, *upd, *del; /* owned, prepared lazily */
    /* mapping of the current TABLE record: source column i -> destination column map[i] (-1: absent) */
};

/* A TABLE record of the current transaction: source layout + the plan it maps to. */
struct txn_table {
    uint64_t table_id;
    struct plan *plan;         /* ref: in writer->plans */
    int *src_to_dest;          /* owned: source column -> destination column or -1 */
    uint32_t n_src;
};

struct writer {
    struct sy_module_ctx *ctx;
    const struct sy_pair_cfg *cfg;
    MYSQL *conn;
    MYSQL_STMT *ckpt;                 /* owned: checkpoint upsert */
    struct plan *plans[WR_MAX_PLANS]; /* owned */
    size_t n_plans;
    struct txn_table *tt;             /* owned array for the current transaction */
    size_t n_tt, cap_tt;
    bool in_txn;
    uint64_t applied_seq;             /* checkpoint: last spool seq durably applied */
    char position[1024];              /* checkpoint: source position */
    uint64_t pending_pos_seq;         /* POSITION records not yet in the checkpoint */
    char pending_pos[1024];
    uint64_t pending_pos_count;
    uint64_t rows;                    /* rows applied (status) */
    uint64_t txn_time_ms;
    uint64_t conflicts_overwritten;
    struct sy_change_scratch scratch;
    char err[1024];
    bool failed;                      /* reported FAILED: stop */
    MYSQL_BIND *binds;                /* owned scratch */
    size_t cap_binds;
    my_bool *nulls;
    unsigned long *lens;
};

static uint64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static bool stopping(const struct writer *w)
{
    return __atomic_load_n(w->ctx->stop, __ATOMIC_ACQUIRE) != 0;
}

static void fail(struct writer *w, const char *reason, const char *fmt, ...) SY_PRINTF(3, 4);
static void fail(struct writer *w, const char *reason, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sy_module_report_failed(w->ctx->report, reason, "%s", msg);
    w->failed = true;
}

/* ---- plans ----------------------------------------------------------------------------------- */

static void plan_free(struct plan *p)
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

static void plans_clear(struct writer *w)
{
    for (size_t i = 0; i < w->n_plans; i++)
        plan_free(w->plans[i]);
    w->n_plans = 0;
}

static void tt_clear(struct writer *w)
{
    for (size_t i = 0; i < w->n_tt; i++)
        free(w->tt[i].src_to_dest);
    w->n_tt = 0;
}

/* Reads the destination table's columns and key. -1: transient error (err), -2: hard (err). */
static int plan_load(struct writer *w, const char *db, const char *table, struct plan **out)
{
    for (size_t i = 0; i < w->n_plans; i++)
        if (strcmp(w->plans[i]->db, db) == 0 && strcmp(w->plans[i]->table, table) == 0) {
            *out = w->plans[i];
            return 0;
        }
    char *edb = sy_mariadb_escape(w->conn, db), *etb = sy_mariadb_escape(w->conn, table);
    char sql[2048];
    snprintf(sql, sizeof sql,
             "SELECT c.COLUMN_NAME, c.IS_GENERATED, " SY_MARIADB_KEY_SEQ_SQL " "
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
    struct plan *p = calloc(1, sizeof *p);
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
        struct dest_col *c = &p->cols[p->n_cols++];
        c->name = strdup(row[0] ? row[0] : "");
        c->generated = row[1] && strcmp(row[1], "NEVER") != 0;
        c->key = row[2] != NULL;
        p->n_key += c->key;
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
    if (w->n_plans == WR_MAX_PLANS)
        plans_clear(w);
    w->plans[w->n_plans++] = p;
    *out = p;
    return 0;
}

static MYSQL_STMT *prepare(struct writer *w, const char *sql)
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
static MYSQL_STMT *plan_stmt(struct writer *w, struct plan *p, char kind)
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

static int binds_reserve(struct writer *w, size_t n)
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

static void bind_value(struct writer *w, size_t slot, const struct sy_value *v)
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
    }
    b->buffer_length = w->lens[slot];
}

static const struct sy_value *src_value(const struct txn_table *t, const struct sy_value *vals, size_t dest_col)
{
    for (uint32_t i = 0; i < t->n_src; i++)
        if (t->src_to_dest[i] == (int)dest_col)
            return &vals[i];
    return NULL;
}

static void key_text(const struct txn_table *t, const struct sy_value *vals, char *out, size_t outlen)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < t->plan->n_cols && o + 1 < outlen; i++) {
        if (!t->plan->cols[i].key)
            continue;
        const struct sy_value *v = src_value(t, vals, i);
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
static int exec_stmt(struct writer *w, MYSQL_STMT *st, const struct txn_table *t, const struct sy_value *data,
                     const struct sy_value *keyvals, my_ulonglong *affected)
{
    const struct plan *p = t->plan;
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
            const struct sy_value *v = src_value(t, data, i);
            bind_value(w, slot++, v ? v : &null_value);
        }
    if (keyvals)
        for (size_t i = 0; i < p->n_cols; i++) {
            if (!p->cols[i].key)
                continue;
            const struct sy_value *v = src_value(t, keyvals, i);
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

static struct txn_table *tt_find(struct writer *w, uint64_t id)
{
    for (size_t i = 0; i < w->n_tt; i++)
        if (w->tt[i].table_id == id)
            return &w->tt[i];
    return NULL;
}

/* -1 transient, -2 hard failure (reported by caller from w->err). */
static int on_table(struct writer *w, const struct sy_change_table *t)
{
    char db[257], table[257];
    snprintf(db, sizeof db, "%.*s", (int)t->db_len, t->db);
    snprintf(table, sizeof table, "%.*s", (int)t->table_len, t->table);
    struct plan *p;
    int rc = plan_load(w, db, table, &p);
    if (rc != 0)
        return rc;
    if (w->n_tt == w->cap_tt) {
        size_t cap = w->cap_tt ? w->cap_tt * 2 : 16;
        struct txn_table *n = realloc(w->tt, cap * sizeof *n);
        if (n == NULL)
            return -2;
        w->tt = n;
        w->cap_tt = cap;
    }
    struct txn_table *tt = &w->tt[w->n_tt];
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

static int on_row(struct writer *w, const struct sy_change_row *r, uint64_t seq, const char *txn)
{
    struct txn_table *t = tt_find(w, r->table_id);
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
    bool overwrite = w->cfg->on_conflict == SY_ON_CONFLICT_OVERWRITE;
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

static int checkpoint(struct writer *w, uint64_t seq, const char *position, bool pending_ddl)
{
    char *epos = sy_mariadb_escape(w->conn, position), *eid = sy_mariadb_escape(w->conn, w->ctx->instance_id);
    char err[512];
    int rc = sy_mariadb_exec(w->conn, err, sizeof err,
                             "INSERT INTO " SY_SCHEMA ".checkpoint (instance, spool_seq, position, pending_ddl_seq) "
                             "VALUES ('%s', %llu, '%s', %llu) ON DUPLICATE KEY UPDATE spool_seq=VALUES(spool_seq), "
                             "position=VALUES(position), pending_ddl_seq=VALUES(pending_ddl_seq), updated_at=NOW(6)",
                             eid ? eid : "", (unsigned long long)(pending_ddl ? w->applied_seq : seq),
                             epos ? epos : "", (unsigned long long)(pending_ddl ? seq : 0));
    free(epos);
    free(eid);
    if (rc != 0)
        snprintf(w->err, sizeof w->err, "checkpoint: %s", err);
    return rc;
}

static int commit(struct writer *w)
{
    if (mysql_commit(w->conn) != 0) {
        snprintf(w->err, sizeof w->err, "COMMIT: %u %s", mysql_errno(w->conn), mysql_error(w->conn));
        return -1;
    }
    return 0;
}

static void publish(struct writer *w, uint64_t last_seq)
{
    pthread_mutex_lock(&w->ctx->report->lock);
    snprintf(w->ctx->report->position, sizeof w->ctx->report->position, "%s", w->position);
    w->ctx->report->spool_seq = w->applied_seq;
    w->ctx->report->events = w->rows;
    w->ctx->report->lag_events = last_seq > w->applied_seq ? last_seq - w->applied_seq : 0;
    if (last_seq <= w->applied_seq)
        w->ctx->report->lag_ms = 0;
    else if (w->txn_time_ms)
        w->ctx->report->lag_ms = (int64_t)(wall_ms() > w->txn_time_ms ? wall_ms() - w->txn_time_ms : 0);
    pthread_mutex_unlock(&w->ctx->report->lock);
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

/* -1 transient, -2 hard. retry: this DDL was pending at start (may have run already). */
static int apply_ddl(struct writer *w, const struct sy_change_ddl *d, bool retry)
{
    size_t cap = d->sql_len + 64;
    char *sql = malloc(cap);
    if (sql == NULL)
        return -2;
    idempotent_ddl(d->sql, d->sql_len, sql, cap);
    char err[1024];
    int rc = 0;
    char db[257], tz[80];
    snprintf(db, sizeof db, "%.*s", (int)d->db_len, d->db);
    snprintf(tz, sizeof tz, "%.*s", (int)d->time_zone_len, d->time_zone);
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
        sy_mariadb_exec(w->conn, err, sizeof err, "SET SESSION sql_mode=%llu%s%s%s", (unsigned long long)d->sql_mode,
                        tz[0] ? ", time_zone='" : "", tz[0] ? tz : "", tz[0] ? "'" : "") != 0 ||
        (d->charset_client &&
         sy_mariadb_exec(w->conn, err, sizeof err,
                         "SET SESSION character_set_client=%u, collation_connection=%u, collation_server=%u",
                         d->charset_client, d->collation_connection, d->collation_server) != 0)) {
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
    plans_clear(w); /* table layouts may have changed */
    return rc;
}

/* ---- connection ----------------------------------------------------------------------------------- */

static void disconnect(struct writer *w)
{
    tt_clear(w);
    plans_clear(w);
    if (w->ckpt) {
        mysql_stmt_close(w->ckpt);
        w->ckpt = NULL;
    }
    if (w->conn) {
        mysql_close(w->conn);
        w->conn = NULL;
    }
    w->in_txn = false;
}

/* 0 ok, 1 transient (w->err), -1 hard. Reads the checkpoint into applied_seq/position. */
static int connect_dest(struct writer *w, uint64_t *pending_ddl)
{
    unsigned int e = 0;
    w->conn = sy_mariadb_connect(w->ctx->dest, w->cfg, CLIENT_FOUND_ROWS, WR_TIMEOUT_S, &e, w->err, sizeof w->err);
    if (w->conn == NULL)
        return e == 0 || sy_mariadb_is_transient(e) ? 1 : -1;
    char err[512];
    if (sy_mariadb_exec(w->conn, err, sizeof err,
                        "SET SESSION server_id=%u, time_zone='+00:00', sql_mode='NO_AUTO_VALUE_ON_ZERO', "
                        "foreign_key_checks=0, autocommit=0",
                        w->cfg->writer_tag) != 0 ||
        sy_mariadb_exec(w->conn, err, sizeof err, "CREATE DATABASE IF NOT EXISTS " SY_SCHEMA) != 0 ||
        sy_mariadb_exec(w->conn, err, sizeof err,
                        SY_MARIADB_CHECKPOINT_DDL) != 0) {
        snprintf(w->err, sizeof w->err, "writer session on %s:%u: %s", w->ctx->dest->host, w->ctx->dest->port, err);
        unsigned int me = mysql_errno(w->conn);
        return sy_mariadb_is_transient(me) ? 1 : -1;
    }
    char *eid = sy_mariadb_escape(w->conn, w->ctx->instance_id);
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT spool_seq, position, pending_ddl_seq FROM " SY_SCHEMA ".checkpoint WHERE "
             "instance='%s'", eid ? eid : "");
    free(eid);
    if (mysql_real_query(w->conn, sql, (unsigned long)strlen(sql)) != 0) {
        snprintf(w->err, sizeof w->err, "reading the checkpoint: %u %s", mysql_errno(w->conn), mysql_error(w->conn));
        return 1;
    }
    MYSQL_RES *res = mysql_store_result(w->conn);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    w->applied_seq = row && row[0] ? strtoull(row[0], NULL, 10) : 0;
    /* no checkpoint yet: the destination holds what the copy (or creation) started from */
    snprintf(w->position, sizeof w->position, "%s", row && row[1] ? row[1] : w->ctx->start_position);
    *pending_ddl = row && row[2] ? strtoull(row[2], NULL, 10) : 0;
    if (res)
        mysql_free_result(res);
    mysql_commit(w->conn);
    return 0;
}

/* ---- main loop -------------------------------------------------------------------------------------- */

/* Applies records from applied_seq + 1 on. Returns 1 on a transient error (reconnect), 0 when stopping,
 * -1 when failed (reported). */
static int apply_loop(struct writer *w, uint64_t pending_ddl)
{
    struct sy_spool *sp = w->ctx->spool;
    if (sy_spool_first_seq(sp) > w->applied_seq + 1 && sy_spool_last_seq(sp) >= sy_spool_first_seq(sp)) {
        fail(w, "spool_gap",
             "the spool starts at record %llu but the destination's checkpoint is at %llu: records in between are "
             "gone",
             (unsigned long long)sy_spool_first_seq(sp), (unsigned long long)w->applied_seq);
        return -1;
    }
    if (w->applied_seq > sy_spool_last_seq(sp)) {
        fail(w, "spool_mismatch",
             "the destination's checkpoint (%s record %llu) is ahead of this spool (last record %llu): "
             "the state directory was replaced; terminate and recreate the instance",
             w->ctx->instance_id, (unsigned long long)w->applied_seq, (unsigned long long)sy_spool_last_seq(sp));
        return -1;
    }
    uint64_t seq = w->applied_seq + 1;
    char txn[64] = "";
    bool ddl_pending_here = false;
    uint64_t last_truncate = 0;
    if (pending_ddl) {
        /* Crash between "pending" and "done": the DDL may or may not have run. Run it again. */
        seq = pending_ddl;
        ddl_pending_here = true;
    }
    while (!stopping(w)) {
        uint8_t type;
        const uint8_t *payload;
        size_t len;
        char err[512];
        enum sy_spool_rc rc = sy_spool_read(sp, seq, &type, &payload, &len, 200, err, sizeof err);
        if (rc == SY_SPOOL_EMPTY) {
            if (!w->in_txn && w->pending_pos_seq > w->applied_seq) {
                if (checkpoint(w, w->pending_pos_seq, w->pending_pos, false) != 0 || commit(w) != 0)
                    return 1;
                w->applied_seq = w->pending_pos_seq;
                snprintf(w->position, sizeof w->position, "%s", w->pending_pos);
            }
            publish(w, sy_spool_last_seq(sp));
            continue;
        }
        if (rc != SY_SPOOL_OK) {
            fail(w, "spool_error", "%s", err);
            return -1;
        }
        struct sy_change ch;
        if (sy_change_decode(payload, len, &w->scratch, &ch) != SY_PARSE_OK) {
            fail(w, "spool_corrupt", "spool record %llu does not decode", (unsigned long long)seq);
            return -1;
        }
        int arc = 0;
        switch (ch.kind) {
        case SY_CHANGE_TXN_BEGIN:
            if (w->in_txn) {
                /* The collector re-read a transaction after a broken stream: drop the partial one. */
                mysql_rollback(w->conn);
            }
            tt_clear(w);
            snprintf(txn, sizeof txn, "%.*s", (int)ch.position_len, ch.position);
            w->txn_time_ms = ch.source_time_ms;
            w->in_txn = true;
            break;
        case SY_CHANGE_TABLE:
            arc = on_table(w, &ch.u.table);
            break;
        case SY_CHANGE_ROW:
            arc = on_row(w, &ch.u.row, seq, txn);
            break;
        case SY_CHANGE_DDL:
            if (!ddl_pending_here) {
                if (checkpoint(w, seq, w->position, true) != 0 || commit(w) != 0)
                    return 1;
            }
            arc = apply_ddl(w, &ch.u.ddl, ddl_pending_here);
            ddl_pending_here = false;
            break;
        case SY_CHANGE_TXN_COMMIT: {
            char pos[1024];
            snprintf(pos, sizeof pos, "%.*s", (int)ch.position_len, ch.position);
            if (checkpoint(w, seq, pos, false) != 0)
                return 1;
            sy_failpoint("writer_before_commit");
            if (commit(w) != 0)
                return 1;
            w->in_txn = false;
            w->applied_seq = seq;
            snprintf(w->position, sizeof w->position, "%s", pos);
            w->txn_time_ms = ch.source_time_ms;
            tt_clear(w);
            publish(w, sy_spool_last_seq(sp));
            break;
        }
        case SY_CHANGE_POSITION:
            if (!w->in_txn) {
                w->pending_pos_seq = seq;
                snprintf(w->pending_pos, sizeof w->pending_pos, "%.*s", (int)ch.position_len, ch.position);
                if (++w->pending_pos_count % WR_POSITION_FLUSH == 0) {
                    if (checkpoint(w, seq, w->pending_pos, false) != 0 || commit(w) != 0)
                        return 1;
                    w->applied_seq = seq;
                    snprintf(w->position, sizeof w->position, "%s", w->pending_pos);
                }
            }
            break;
        }
        if (arc == -1)
            return 1;
        if (arc == -4) {
            mysql_rollback(w->conn);
            fail(w, "conflict", "%s", w->err);
            return -1;
        }
        if (arc < 0) {
            mysql_rollback(w->conn);
            fail(w, "apply_failed", "source transaction %s (spool seq %llu): %s", txn, (unsigned long long)seq,
                 w->err);
            return -1;
        }
        seq++;
        /* Free whole segments below the checkpoint as soon as there are any: a small spool_max_bytes
         * (or a full disk) must drain while the collector waits. */
        if (w->applied_seq > last_truncate && !w->in_txn) {
            char terr[256];
            if (sy_spool_truncate_below(sp, w->applied_seq, terr, sizeof terr) != SY_SPOOL_OK)
                sy_log_warn("%s: spool truncate: %s", w->ctx->instance_id, terr);
            last_truncate = w->applied_seq;
        }
    }
    return 0;
}

static void *writer_main(void *arg)
{
    struct writer *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->ctx = arg;
    w->cfg = w->ctx->cfg;
    sy_change_scratch_init(&w->scratch);
    mysql_thread_init();
    int backoff = 100;
    while (!stopping(w) && !w->failed) {
        uint64_t pending_ddl = 0;
        int rc = connect_dest(w, &pending_ddl);
        if (rc < 0) {
            fail(w, "destination_refused", "%s", w->err);
            break;
        }
        if (rc == 0) {
            backoff = 100;
            sy_module_report_running(w->ctx->report);
            publish(w, sy_spool_last_seq(w->ctx->spool));
            rc = apply_loop(w, pending_ddl);
            if (rc <= 0)
                break;
        }
        disconnect(w);
        if (stopping(w))
            break;
        sy_module_report_retrying(w->ctx->report, "destination_unreachable", "%s", w->err);
        for (int waited = 0; waited < backoff && !stopping(w); waited += 50)
            usleep(50 * 1000);
        if (backoff < WR_MAX_BACKOFF_MS)
            backoff *= 2;
    }
    disconnect(w);
    sy_change_scratch_fini(&w->scratch);
    free(w->binds);
    free(w->nulls);
    free(w->lens);
    free(w->tt);
    free(w);
    mysql_thread_end();
    return NULL;
}

const struct sy_module_ops sy_mariadb_write = { "write", writer_main };
