/* Incremental Write for SQL Server: the write module's thread reads the instance's spool in batches of
 * whole source transactions and applies them to the destination through FreeTDS db-lib, idempotently by
 * primary key:
 *
 *   INSERT  ->  DELETE by key (its count: a row already there is a conflict), INSERT
 *   UPDATE  ->  DELETE by the old key (count 0: the row is missing, a conflict), [DELETE by the new key
 *               when the key changed], INSERT the new image
 *   DELETE  ->  DELETE by key (count 0: a conflict)
 *
 * A batch (up to WR_BATCH_ROWS rows) is split by hash(table, key) over `apply_threads` workers, each with
 * its own connection applying its share in spool order (one key's changes keep their order, different
 * keys run in parallel) inside ONE destination transaction per batch that also
 *   - updates the worker's row of switchyard.echo (CDC-enabled): the opposite collector drops every source
 *     transaction holding such a change, so what this writer applied is never collected back;
 *   - moves the worker's checkpoint row in switchyard.checkpoint (instance, worker, workers, seq,
 *     position) to the batch's last spool record.
 * So every worker's changes and its checkpoint commit together: after a crash a worker skips the records
 * up to its own checkpoint (exactly once). When the number of workers changed since the checkpoints were
 * written, every worker restarts from the lowest one and the records up to the spool's end are applied
 * again (idempotent by key; their conflicts are not conflicts).
 *
 * Conflicts (on_conflict, as for MariaDB): fail rolls the worker's transaction back and fails the
 * instance naming table, key, LSN and spool record; overwrite applies the row as the source has it and
 * counts it. Not conflicts: records applied again after a restart, and source transactions inside the
 * initial copy's overlap (LSN up to switchyard.initial_sync's end_lsn).
 * Transient errors end the session; it starts again from the checkpoints with backoff. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/change.h"
#include "core/collect.h"
#include "core/engine.h"
#include "core/failpoint.h"
#include "core/instance.h"
#include "core/log.h"
#include "core/spool.h"
#include "core/write.h"
#include "engine/sqlserver_cdc.h"
#include "engine/sqlserver_client.h"
#include "engine/sqlserver_lsn.h"
#include "replay/sqlserver_modules.h"

#define WR_BATCH_ROWS 500
#define WR_BATCH_BYTES (8u << 20)
#define WR_MAX_WORKERS 64
#define WR_MAX_BACKOFF_MS 2000
#define WR_WAIT_MS 200
#define WR_CLAIM_TRIES 3        /* a session's claims of its checkpoint rows: again after an older owner's
                                   rewrite committed past one (claim_checkpoints) */
#define WR_MAX_TABLES 64        /* tables described in one source transaction */

struct op {
    enum sy_row_op kind;
    char *sql;              /* owned: its statements; the checking DELETE is followed by SELECT @@ROWCOUNT */
    char *what;             /* owned: "dbo.t key (k=1)" for messages */
    uint64_t hash;          /* of table and key: picks the worker */
    bool key_change;        /* an UPDATE of key columns: its batch is applied by one worker (below) */
    uint64_t seq;           /* its spool record */
    struct sy_lsn lsn;      /* its source transaction */
};

struct batch {
    struct op *ops;
    size_t n, cap;
    uint64_t bytes;
    bool serial;            /* holds a key change: a row moves from one key (worker) to another, so the
                               batch goes through worker 0 alone, which moves every worker's checkpoint */
    uint64_t last_seq;      /* the last record consumed (a TXN_COMMIT or POSITION) */
    char position[1024];
    uint64_t source_time_ms;
};

struct txn_table {          /* a TABLE record of the transaction being read, copied */
    uint64_t id;
    char *name;             /* owned */
    uint32_t n_cols;
    char **cols;            /* owned */
    uint8_t *flags;         /* owned */
};

struct writer;

struct worker {
    struct writer *w;
    int id;
    struct sy_tds *t;       /* owned */
    int watch;
    pthread_t thread;
    uint64_t ckpt;          /* records up to it were applied by this worker (its checkpoint row) */
    int rc;                 /* 0, 1 transient, -1 failed */
    char reason[64], err[1024];
    uint64_t conflicts;     /* this batch, counted (overwrite) */
    bool fenced;            /* its checkpoint UPDATE found a newer owner's token: rolled back */
    struct sy_buf sql;
    long *counts;
    size_t n_counts, cap_counts;
};

struct writer {
    struct sy_module_ctx *ctx;
    const struct sy_pair_cfg *cfg;
    char db[80];
    char inst_lit[300];     /* N'pair/direction' */
    struct worker *workers;
    int n_workers;
    uint64_t next_seq;
    uint64_t durable_seq;   /* every worker's checkpoint is at or past it */
    uint64_t reapply_to;    /* records up to it may have been applied before this start */
    struct sy_lsn overlap_end; /* source transactions up to it overlap the initial copy */
    struct sy_lsn until;    /* has_until: a takeover's idempotent replay ends there (ctx->overwrite_until) */
    bool has_until;
    bool until_at_first_change; /* overwrite_until is SY_UNTIL_FIRST_CHANGE: until is read from the source
                                   before the first batch with changes (resolve_until) */
    char position[1024];
    uint64_t rows, conflicts, source_time_ms;
    struct batch b;
    struct sy_change_scratch scratch;
    bool in_txn;
    size_t txn_first_op;
    struct sy_lsn txn_lsn;
    struct txn_table tables[WR_MAX_TABLES];
    size_t n_tables;
    struct sy_buf tmp;
    bool failed;
    char err[1024];
};

static bool stopping(const struct writer *w)
{
    return __atomic_load_n(w->ctx->stop, __ATOMIC_ACQUIRE) != 0;
}

static void fail(struct writer *w, const char *reason, const char *fmt, ...) SY_PRINTF(3, 4);
static void fail(struct writer *w, const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
    w->failed = true;
    sy_module_report_failed(w->ctx->report, reason, "%s", w->err);
}

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* ---- the batch --------------------------------------------------------------------------------------- */

static void ops_free_from(struct batch *b, size_t from)
{
    for (size_t i = from; i < b->n; i++) {
        free(b->ops[i].sql);
        free(b->ops[i].what);
    }
    b->n = from;
}

static void batch_clear(struct batch *b)
{
    ops_free_from(b, 0);
    b->bytes = 0;
    b->serial = false;
}

static void tables_clear(struct writer *w)
{
    for (size_t i = 0; i < w->n_tables; i++) {
        struct txn_table *t = &w->tables[i];
        for (uint32_t k = 0; k < t->n_cols; k++)
            free(t->cols[k]);
        free(t->cols);
        free(t->flags);
        free(t->name);
    }
    w->n_tables = 0;
}

static bool table_add(struct writer *w, const struct sy_change_table *ct)
{
    if (w->n_tables == WR_MAX_TABLES)
        return false;
    struct txn_table *t = &w->tables[w->n_tables];
    *t = (struct txn_table){ .id = ct->table_id, .n_cols = ct->n_columns };
    t->name = strndup(ct->table, ct->table_len);
    t->cols = calloc(ct->n_columns ? ct->n_columns : 1, sizeof *t->cols);
    t->flags = calloc(ct->n_columns ? ct->n_columns : 1, 1);
    bool ok = t->name && t->cols && t->flags;
    for (uint32_t k = 0; ok && k < ct->n_columns; k++) {
        ok = (t->cols[k] = strndup(ct->columns[k].name, ct->columns[k].name_len)) != NULL;
        t->flags[k] = ct->columns[k].flags;
    }
    w->n_tables++;
    return ok;
}

static const struct txn_table *table_of(const struct writer *w, uint64_t id)
{
    for (size_t i = w->n_tables; i-- > 0;)
        if (w->tables[i].id == id)
            return &w->tables[i];
    return NULL;
}

static void where_key(struct sy_buf *b, const struct txn_table *t, const struct sy_value *v)
{
    bool first = true;
    for (uint32_t k = 0; k < t->n_cols; k++) {
        if (!(t->flags[k] & SY_COL_KEY))
            continue;
        sy_buf_add(b, first ? " WHERE " : " AND ", first ? 7 : 5);
        first = false;
        sy_tds_ident(b, t->cols[k], strlen(t->cols[k]));
        if (v[k].type == SY_VAL_NULL) {
            sy_buf_add(b, " IS NULL", 8);
        } else {
            sy_buf_add(b, " = ", 3);
            sy_tds_literal(b, &v[k]);
        }
    }
}

static void table_ref(struct sy_buf *b, const struct txn_table *t)
{
    sy_buf_add(b, "[dbo].", 6);
    sy_tds_ident(b, t->name, strlen(t->name));
}

static void delete_by(struct sy_buf *b, const struct txn_table *t, const struct sy_value *v, bool count)
{
    sy_buf_add(b, "DELETE FROM ", 12);
    table_ref(b, t);
    where_key(b, t, v);
    sy_buf_add(b, count ? "; SELECT @@ROWCOUNT;\n" : ";\n", count ? 21 : 2);
}

static void insert_of(struct sy_buf *b, const struct txn_table *t, const struct sy_value *v)
{
    sy_buf_add(b, "INSERT INTO ", 12);
    table_ref(b, t);
    sy_buf_add(b, " (", 2);
    for (uint32_t k = 0; k < t->n_cols; k++) {
        if (k)
            sy_buf_add(b, ", ", 2);
        sy_tds_ident(b, t->cols[k], strlen(t->cols[k]));
    }
    sy_buf_add(b, ") VALUES (", 10);
    for (uint32_t k = 0; k < t->n_cols; k++) {
        if (k)
            sy_buf_add(b, ", ", 2);
        sy_tds_literal(b, &v[k]);
    }
    sy_buf_add(b, ");\n", 3);
}

static bool same_key(const struct txn_table *t, const struct sy_value *a, const struct sy_value *b)
{
    for (uint32_t k = 0; k < t->n_cols; k++) {
        if (!(t->flags[k] & SY_COL_KEY))
            continue;
        if (a[k].type != b[k].type || a[k].i != b[k].i || a[k].u != b[k].u || a[k].d != b[k].d ||
            a[k].len != b[k].len || (a[k].len && memcmp(a[k].p, b[k].p, a[k].len) != 0))
            return false;
    }
    return true;
}

/* A ROW record into the batch, rendered as its statements. false: failed (reported). */
static bool add_row(struct writer *w, const struct sy_change_row *r, uint64_t seq)
{
    const struct txn_table *t = table_of(w, r->table_id);
    if (t == NULL || t->n_cols != r->n_columns) {
        fail(w, "bad_record", "spool record %llu: a row of an undescribed table", (unsigned long long)seq);
        return false;
    }
    const struct sy_value *key = r->op == SY_ROW_INSERT ? r->after : r->before;
    struct sy_buf *b = &w->tmp;
    sy_buf_reset(b);
    delete_by(b, t, key, true);
    bool key_change = r->op == SY_ROW_UPDATE && !same_key(t, r->before, r->after);
    if (key_change)
        delete_by(b, t, r->after, false);
    if (r->op != SY_ROW_DELETE)
        insert_of(b, t, r->after);
    struct op op = { .kind = r->op, .seq = seq, .lsn = w->txn_lsn, .key_change = key_change };
    op.sql = strdup(sy_tds_sql(b));
    /* the key's text: what picks the worker and names the row in messages */
    sy_buf_reset(b);
    sy_tds_addf(b, "dbo.%s key", t->name);
    size_t key_from = b->len;
    where_key(b, t, key); /* " WHERE [k] = 1 AND ..." */
    op.hash = fnv(b->p + key_from, b->len - key_from, fnv(t->name, strlen(t->name), 0xcbf29ce484222325ULL));
    memmove(b->p + key_from, b->p + key_from + 6, b->len - key_from - 6); /* "dbo.t key [k] = 1 AND ..." */
    b->len -= 6;
    op.what = strdup(sy_tds_sql(b));
    if (b->oom || op.sql == NULL || op.what == NULL ||
        (w->b.n == w->b.cap && (w->b.cap = w->b.cap ? w->b.cap * 2 : 256,
                                (w->b.ops = realloc(w->b.ops, w->b.cap * sizeof *w->b.ops)) == NULL))) {
        free(op.sql);
        free(op.what);
        fail(w, "out_of_memory", "out of memory");
        return false;
    }
    w->b.ops[w->b.n++] = op;
    w->b.serial = w->b.serial || key_change;
    w->b.bytes += strlen(op.sql);
    return true;
}

/* One spool record. 1: the batch is complete enough to apply; 0: go on; -1: failed (reported). */
static int add_record(struct writer *w, uint8_t type, const uint8_t *p, size_t len, uint64_t seq)
{
    struct sy_change ch;
    if (sy_change_decode(p, len, &w->scratch, &ch) != SY_PARSE_OK) {
        fail(w, "bad_record", "spool record %llu: undecodable", (unsigned long long)seq);
        return -1;
    }
    switch (ch.kind) {
    case SY_CHANGE_TXN_BEGIN: {
        if (w->in_txn) /* a transaction the collector never finished (it restarted): drop it */
            ops_free_from(&w->b, w->txn_first_op);
        w->in_txn = true;
        w->txn_first_op = w->b.n;
        tables_clear(w);
        char pos[64];
        snprintf(pos, sizeof pos, "%.*s", (int)(ch.position_len < 63 ? ch.position_len : 63), ch.position);
        if (!sy_lsn_parse(pos, &w->txn_lsn))
            memset(&w->txn_lsn, 0, sizeof w->txn_lsn);
        return 0;
    }
    case SY_CHANGE_TABLE:
        if (!table_add(w, &ch.u.table)) {
            fail(w, "bad_record", "spool record %llu: too many tables in a transaction (or out of memory)",
                 (unsigned long long)seq);
            return -1;
        }
        return 0;
    case SY_CHANGE_ROW:
        if (!w->in_txn)
            return 0;
        return add_row(w, &ch.u.row, seq) ? 0 : -1;
    case SY_CHANGE_DDL:
        return 0; /* not produced for SQL Server */
    case SY_CHANGE_TXN_COMMIT:
    case SY_CHANGE_POSITION:
        if (ch.kind == SY_CHANGE_POSITION && w->in_txn) /* its source broke off mid-transaction, went on past it */
            ops_free_from(&w->b, w->txn_first_op);
        w->in_txn = false;
        w->b.last_seq = seq;
        snprintf(w->b.position, sizeof w->b.position, "%.*s", (int)ch.position_len, ch.position);
        if (ch.source_time_ms)
            w->b.source_time_ms = ch.source_time_ms;
        return w->b.n >= WR_BATCH_ROWS || w->b.bytes >= WR_BATCH_BYTES ? 1 : 0;
    }
    return 0;
}

static int add_record_cb(void *arg, uint8_t type, const uint8_t *p, size_t len, uint64_t seq)
{
    return add_record(arg, type, p, len, seq);
}

/* Whether the batch holds a complete source transaction (then reading stops waiting for more). */
static bool batch_complete(void *arg)
{
    const struct writer *w = arg;
    return w->b.last_seq >= w->next_seq;
}

/* ---- applying ---------------------------------------------------------------------------------------- */

static int on_count(void *arg, struct sy_tds *t)
{
    struct worker *wk = arg;
    if (wk->n_counts == wk->cap_counts) {
        size_t cap = wk->cap_counts ? wk->cap_counts * 2 : 256;
        long *c = realloc(wk->counts, cap * sizeof *c);
        if (c == NULL) {
            snprintf(wk->err, sizeof wk->err, "out of memory");
            return 1;
        }
        wk->counts = c;
        wk->cap_counts = cap;
    }
    wk->counts[wk->n_counts++] = (long)sy_tds_col_int(t, 1);
    return 0;
}

static void worker_error(struct worker *wk, enum sy_tds_rc rc, const char *err)
{
    wk->rc = rc == SY_TDS_TRANSIENT ? 1 : -1;
    snprintf(wk->reason, sizeof wk->reason, "%s", wk->rc > 0 ? "destination_unreachable" : "destination_refused");
    snprintf(wk->err, sizeof wk->err, "%s", err);
}

/* The worker's checkpoint UPDATE. In a cluster it is the fence too: it moves only rows whose owner_token is
 * not above this writer's (a newer owner's takeover wrote its own, under the same row locks), and
 * `count` adds SELECT @@ROWCOUNT so that the caller sees whether it did. */
static void checkpoint_sql(struct worker *wk, struct sy_buf *b, bool count)
{
    struct writer *w = wk->w;
    sy_tds_addf(b, "UPDATE [%s].[%s] SET seq = %llu, position = '%s', workers = %d WHERE instance = %s",
                SY_TDS_SCHEMA, SY_TDS_CHECKPOINT, (unsigned long long)w->b.last_seq, w->b.position, w->n_workers,
                w->inst_lit);
    if (!w->b.serial)
        sy_tds_addf(b, " AND worker = %d", wk->id);
    if (w->ctx->owner_token != 0)
        sy_tds_addf(b, " AND owner_token <= %llu", (unsigned long long)w->ctx->owner_token);
    sy_tds_addf(b, ";\n");
    if (count && w->ctx->owner_token != 0)
        sy_tds_addf(b, "SELECT @@ROWCOUNT;\n");
}

/* The checkpoint UPDATE moved no row: another node owns the pair (replay/sqlserver_takeover.c). The
 * transaction is rolled back; the write stops for good. */
static void worker_fenced(struct worker *wk)
{
    struct writer *w = wk->w;
    char err[256];
    sy_tds_exec(wk->t, "IF @@TRANCOUNT > 0 ROLLBACK", NULL, 0, NULL, err, sizeof err);
    wk->rc = -1;
    wk->fenced = true;
    snprintf(wk->reason, sizeof wk->reason, "fenced");
    snprintf(wk->err, sizeof wk->err, "the destination's checkpoint names an owner token above this writer's %llu "
             "(or its row is gone): another node took the pair over", (unsigned long long)w->ctx->owner_token);
}

/* Whether this worker applies op now: its own by hash (all of them in a serial batch, worker 0), unless
 * the op's worker applied it before (its checkpoint). */
static bool takes(const struct worker *wk, const struct op *op)
{
    const struct writer *w = wk->w;
    int owner = (int)(op->hash % (uint64_t)w->n_workers);
    if (w->b.serial ? wk->id != 0 : owner != wk->id)
        return false;
    return op->seq > w->workers[owner].ckpt;
}

/* This worker's share of the batch in one destination transaction with its echo mark and checkpoint. */
static void apply_share(struct worker *wk)
{
    struct writer *w = wk->w;
    const struct batch *b = &w->b;
    struct sy_buf *s = &wk->sql;
    char err[1024];
    sy_buf_reset(s);
    size_t mine = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct op *op = &b->ops[i];
        if (!takes(wk, op))
            continue;
        if (mine++ == 0)
            sy_buf_add(s, "SET XACT_ABORT ON;\nBEGIN TRANSACTION;\n", 37);
        sy_buf_add(s, op->sql, strlen(op->sql));
    }
    if (b->serial) {
        bool behind = false;
        for (int i = 0; i < w->n_workers; i++)
            behind = behind || w->workers[i].ckpt < b->last_seq;
        if (wk->id != 0 || !behind)
            return;
    } else if (b->last_seq <= wk->ckpt) {
        return;
    }
    if (mine == 0) { /* nothing of ours: the checkpoint alone */
        checkpoint_sql(wk, s, false);
        long moved = -1;
        size_t n_done = 0;
        enum sy_tds_rc rc = sy_tds_exec(wk->t, sy_tds_sql(s), &moved, 1, &n_done, err, sizeof err);
        if (rc != SY_TDS_OK)
            worker_error(wk, rc, err);
        else if (w->ctx->owner_token != 0 && n_done == 1 && moved == 0)
            worker_fenced(wk);
        else
            wk->ckpt = b->last_seq;
        return;
    }
    sy_failpoint_stall("sqlserver_write_share_taken"); /* tests: a writer paused with its share taken, unsent */
    sy_tds_addf(s, "UPDATE [%s].[%s] SET n = n + 1 WHERE instance = %s AND worker = %d;\n", SY_TDS_SCHEMA,
                SY_TDS_ECHO, w->inst_lit, wk->id);
    checkpoint_sql(wk, s, true);
    if (s->oom) {
        wk->rc = -1;
        snprintf(wk->reason, sizeof wk->reason, "out_of_memory");
        snprintf(wk->err, sizeof wk->err, "out of memory");
        return;
    }
    wk->n_counts = 0;
    enum sy_tds_rc rc = sy_tds_query(wk->t, sy_tds_sql(s), on_count, wk, err, sizeof err);
    size_t want = mine + (w->ctx->owner_token != 0 ? 1 : 0); /* + the checkpoint's, in a cluster */
    if (rc == SY_TDS_OK && wk->n_counts != want) {
        rc = SY_TDS_REFUSED;
        snprintf(err, sizeof err, "%zu row counts for %zu rows", wk->n_counts, mine);
    }
    if (rc == SY_TDS_OK && want > mine && wk->counts[mine] == 0) {
        worker_fenced(wk);
        return;
    }
    /* conflicts: an INSERT that found its row, an UPDATE or DELETE that found none */
    const struct op *conflict = NULL;
    size_t k = 0;
    for (size_t i = 0; rc == SY_TDS_OK && i < b->n; i++) {
        const struct op *op = &b->ops[i];
        if (!takes(wk, op))
            continue;
        long n = wk->counts[k++];
        bool bad = op->kind == SY_ROW_INSERT ? n > 0 : n == 0;
        if (!bad || op->seq <= w->reapply_to || sy_lsn_cmp(&op->lsn, &w->overlap_end) <= 0 ||
            (w->has_until && sy_lsn_cmp(&op->lsn, &w->until) <= 0)) /* a takeover's replay */
            continue;
        wk->conflicts++;
        if (conflict == NULL)
            conflict = op;
    }
    if (rc == SY_TDS_OK && conflict != NULL && w->cfg->on_conflict == SY_ON_CONFLICT_FAIL) {
        char lsn[SY_LSN_TEXT];
        sy_lsn_format(&conflict->lsn, lsn);
        sy_tds_exec(wk->t, "IF @@TRANCOUNT > 0 ROLLBACK", NULL, 0, NULL, err, sizeof err);
        wk->rc = -1;
        snprintf(wk->reason, sizeof wk->reason, "conflict");
        snprintf(wk->err, sizeof wk->err,
                 "%s: the source %s a row that the destination %s (LSN %s, spool record %llu; on_conflict = "
                 "overwrite applies it as the source has it)",
                 conflict->what,
                 conflict->kind == SY_ROW_INSERT ? "inserted" : conflict->kind == SY_ROW_UPDATE ? "updated" : "deleted",
                 conflict->kind == SY_ROW_INSERT ? "already has" : "does not have", lsn,
                 (unsigned long long)conflict->seq);
        return;
    }
    if (rc == SY_TDS_OK) {
        sy_failpoint("sqlserver_write_before_commit");
        rc = sy_tds_exec(wk->t, "COMMIT TRANSACTION", NULL, 0, NULL, err, sizeof err);
    } else if (rc != SY_TDS_TRANSIENT) {
        char e2[256];
        sy_tds_exec(wk->t, "IF @@TRANCOUNT > 0 ROLLBACK", NULL, 0, NULL, e2, sizeof e2);
    }
    if (rc != SY_TDS_OK) {
        worker_error(wk, rc, err);
        return;
    }
    sy_failpoint("sqlserver_write_after_commit");
    wk->ckpt = b->last_seq;
}

static void *worker_main(void *arg)
{
    apply_share(arg);
    return NULL;
}

static void publish(struct writer *w)
{
    sy_write_report(w->ctx, w->position, w->durable_seq, w->rows, w->conflicts, w->source_time_ms);
}

struct token_range {
    long n;                 /* the instance's checkpoint rows */
    uint64_t min, max;      /* their owner tokens (0 and 0 when there are none) */
};

static int on_token_range(void *arg, struct sy_tds *t)
{
    struct token_range *x = arg;
    x->n = (long)sy_tds_col_int(t, 1);
    x->min = (uint64_t)sy_tds_col_int(t, 2);
    x->max = (uint64_t)sy_tds_col_int(t, 3);
    return 0;
}

/* How many checkpoint rows the instance has, their lowest and highest owner token. */
static enum sy_tds_rc token_range(struct writer *w, struct sy_tds *t, struct token_range *out, char *err,
                                  size_t errlen)
{
    struct sy_buf b;
    sy_buf_init(&b);
    sy_tds_addf(&b, "SELECT COUNT(*), MIN(owner_token), MAX(owner_token) FROM [%s].[%s] WHERE instance = %s",
                SY_TDS_SCHEMA, SY_TDS_CHECKPOINT, w->inst_lit);
    *out = (struct token_range){ 0, 0, 0 };
    enum sy_tds_rc rc = sy_tds_query(t, sy_tds_sql(&b), on_token_range, out, err, errlen);
    sy_buf_fini(&b);
    return rc;
}

/* Another node owns the pair: nothing more is committed into the destination; the write stops for good
 * (never retried as a conflict or a lost connection) and the pair's status says so. */
static void fenced(struct writer *w, const char *why)
{
    struct token_range tr = { 0, 0, 0 };
    char err[256];
    if (w->workers[0].t != NULL)
        token_range(w, w->workers[0].t, &tr, err, sizeof err);
    snprintf(w->err, sizeof w->err, "%s", why);
    w->failed = true;
    sy_write_fenced(w->ctx, tr.max, why);
}

/* A takeover (core/engine.h SY_UNTIL_FIRST_CHANGE): the idempotent replay ends at the source's position
 * read now, before the first change is applied. Read after the new owner's token claim, it covers
 * whatever an older owner applied. 0, or 1 (transient: w->err). */
static int resolve_until(struct writer *w)
{
    if (!w->until_at_first_change)
        return 0;
    char pos[SY_LSN_TEXT] = "", err[512] = "";
    enum sy_tds_rc rc;
    struct sy_tds *t = sy_tds_connect(w->cfg, w->ctx->source, w->db, err, sizeof err, &rc);
    if (t != NULL) {
        rc = sy_tds_start_position(t, w->cfg, pos, err, sizeof err);
        sy_tds_close(t);
    }
    if (t == NULL || rc != SY_TDS_OK || !sy_lsn_parse(pos, &w->until)) {
        snprintf(w->err, sizeof w->err, "source %s:%u: reading its position (the end of the takeover's idempotent "
                 "replay): %s", w->ctx->source->host, w->ctx->source->port, err[0] ? err : pos);
        return 1;
    }
    w->has_until = true;
    w->until_at_first_change = false;
    sy_log_info("%s: changes up to %s are replayed idempotently (taken over)", w->ctx->instance_id, pos);
    return 0;
}

/* Applies the batch; every worker's checkpoint moves past it. 0, 1 (transient: w->err), -1 (reported). */
static int apply_batch(struct writer *w)
{
    int rc = 0;
    if (w->b.n > 0 && (rc = resolve_until(w)) != 0) {
        batch_clear(&w->b);
        w->in_txn = false;
        return rc;
    }
    for (int i = 0; i < w->n_workers; i++) {
        w->workers[i].rc = 0;
        w->workers[i].conflicts = 0;
        w->workers[i].fenced = false;
    }
    int started = 0;
    for (int i = 1; i < w->n_workers && !w->b.serial; i++)
        if (pthread_create(&w->workers[i].thread, NULL, worker_main, &w->workers[i]) == 0)
            started = i;
        else
            apply_share(&w->workers[i]);
    apply_share(&w->workers[0]);
    for (int i = 1; i <= started; i++)
        pthread_join(w->workers[i].thread, NULL);
    for (int i = 0; i < w->n_workers; i++) {
        struct worker *wk = &w->workers[i];
        w->conflicts += wk->conflicts;
        if (wk->fenced) {
            if (!w->failed)
                fenced(w, wk->err);
            rc = -1;
        } else if (wk->rc < 0) {
            if (!w->failed)
                fail(w, wk->reason, "%s", wk->err);
            rc = -1;
        } else if (wk->rc > 0 && rc == 0) {
            rc = 1;
            snprintf(w->err, sizeof w->err, "%s", wk->err);
        }
    }
    if (rc == 0) {
        for (int i = 0; i < w->n_workers; i++)
            if (w->workers[i].ckpt < w->b.last_seq) /* a serial batch moved them all */
                w->workers[i].ckpt = w->b.last_seq;
        w->rows += w->b.n;
        w->durable_seq = w->b.last_seq;
        snprintf(w->position, sizeof w->position, "%s", w->b.position);
        if (w->b.source_time_ms)
            w->source_time_ms = w->b.source_time_ms;
        w->next_seq = w->b.last_seq + 1;
        char terr[256];
        if (sy_spool_truncate_below(w->ctx->spool, w->durable_seq, terr, sizeof terr) != SY_SPOOL_OK)
            sy_log_warn("%s: spool truncate: %s", w->ctx->instance_id, terr);
        publish(w);
    }
    batch_clear(&w->b);
    w->in_txn = false;
    return rc;
}

/* ---- the session ------------------------------------------------------------------------------------- */

static int rc_of(struct writer *w, enum sy_tds_rc rc, const char *err)
{
    if (rc == SY_TDS_OK)
        return 0;
    snprintf(w->err, sizeof w->err, "%s", err);
    return rc == SY_TDS_TRANSIENT ? 1 : -1;
}

/* switchyard.checkpoint and the CDC-enabled switchyard.echo on the destination (created once). */
static int ensure_objects(struct writer *w, struct sy_tds *t)
{
    char err[1024];
    bool on = false, created = false;
    enum sy_tds_rc rc = sy_tds_db_cdc_enabled(t, &on, err, sizeof err);
    if (rc != SY_TDS_OK)
        return rc_of(w, rc, err);
    if (!on) {
        fail(w, "cdc_not_enabled",
             "database %s on %s:%u has no change data capture: the writer's echo marker table needs it (run "
             "sys.sp_cdc_enable_db there)",
             w->db, w->ctx->dest->host, w->ctx->dest->port);
        return -1;
    }
    rc = sy_tds_ensure_own_table(t, SY_TDS_CHECKPOINT,
                                 "instance nvarchar(200) NOT NULL, worker int NOT NULL, workers int NOT NULL, seq "
                                 "bigint NOT NULL, position varchar(64) NOT NULL, owner_token bigint NOT NULL DEFAULT 0, "
                                 "PRIMARY KEY (instance, worker)",
                                 &created, err, sizeof err);
    if (rc == SY_TDS_OK && !created) /* a table from before the fencing token */
        rc = sy_sqlserver_checkpoint_upgrade(t, err, sizeof err);
    if (rc == SY_TDS_OK)
        rc = sy_tds_ensure_own_table(t, SY_TDS_ECHO,
                                     "instance nvarchar(200) NOT NULL, worker int NOT NULL, n bigint NOT NULL, "
                                     "PRIMARY KEY (instance, worker)",
                                     &created, err, sizeof err);
    char minlsn[64] = "";
    if (rc == SY_TDS_OK) /* enabled unless its capture instance exists (a crash may fall between the two) */
        rc = sy_tds_scalar(t, "SELECT capture_instance FROM cdc.change_tables WHERE capture_instance = '" SY_TDS_ECHO_CI "'",
                           minlsn, sizeof minlsn, err, sizeof err);
    if (rc == SY_TDS_OK && minlsn[0] == '\0')
        rc = sy_tds_exec(t,
                         "EXEC sys.sp_cdc_enable_table @source_schema = N'" SY_TDS_SCHEMA "', @source_name = N'" SY_TDS_ECHO
                         "', @role_name = NULL",
                         NULL, 0, NULL, err, sizeof err);
    return rc_of(w, rc, err);
}

struct ckpt_row {
    int worker, workers;
    uint64_t seq;
    char position[64];
};

struct ckpt_read {
    struct ckpt_row rows[WR_MAX_WORKERS];
    int n;
    uint64_t min_token, max_token; /* of every row read, also those past WR_MAX_WORKERS */
};

static int on_ckpt(void *arg, struct sy_tds *t)
{
    struct ckpt_read *r = arg;
    uint64_t token = (uint64_t)sy_tds_col_int(t, 5);
    if (r->n == 0 || token < r->min_token)
        r->min_token = token;
    if (token > r->max_token)
        r->max_token = token;
    if (r->n == WR_MAX_WORKERS)
        return 0;
    struct ckpt_row *x = &r->rows[r->n++];
    x->worker = (int)sy_tds_col_int(t, 1);
    x->workers = (int)sy_tds_col_int(t, 2);
    x->seq = (uint64_t)sy_tds_col_int(t, 3);
    sy_tds_col_text(t, 4, x->position, sizeof x->position);
    return 0;
}

struct lsn_read {
    struct sy_lsn lsn;
};

static int on_end_lsn(void *arg, struct sy_tds *t)
{
    struct lsn_read *r = arg;
    char text[64];
    if (sy_tds_col_text(t, 1, text, sizeof text))
        sy_lsn_parse(text, &r->lsn);
    return 0;
}

/* The session's claim (in a cluster) and its read of the instance's checkpoint rows into *r. The claim
 * writes this owner's token into rows holding no higher one; the rows read then all name it, or a newer
 * owner claimed them (fenced), or some name an older owner: its rewrite (DELETE and INSERTs) committed
 * after the claim found none of its rows (there were none, or the claim waited for the rewrite's locks
 * and, reading as of before it (MVCC: the test double, READ_COMMITTED_SNAPSHOT), skipped the rows deleted
 * and did not see those inserted). That older owner can no longer touch rows once claimed, so the claim
 * is made again. 0, 1 (transient: w->err) or -1 (reported). */
static int claim_checkpoints(struct writer *w, struct sy_tds *t, struct ckpt_read *r)
{
    char err[1024];
    struct sy_buf *b = &w->tmp;
    enum sy_tds_rc rc;
    uint64_t token = w->ctx->owner_token;
    for (int tries = 1;; tries++) {
        if (token != 0) {
            sy_buf_reset(b);
            sy_tds_addf(b, "UPDATE [%s].[%s] SET owner_token = %llu WHERE instance = %s AND owner_token <= %llu",
                        SY_TDS_SCHEMA, SY_TDS_CHECKPOINT, (unsigned long long)token, w->inst_lit,
                        (unsigned long long)token);
            if ((rc = sy_tds_exec(t, sy_tds_sql(b), NULL, 0, NULL, err, sizeof err)) != SY_TDS_OK)
                return rc_of(w, rc, err);
            sy_failpoint_stall("sqlserver_checkpoint_claimed"); /* tests: an older owner's rewrite now */
        }
        *r = (struct ckpt_read){ .n = 0 };
        sy_buf_reset(b);
        sy_tds_addf(b, "SELECT worker, workers, seq, position, owner_token FROM [%s].[%s] "
                    "WHERE instance = %s ORDER BY worker", SY_TDS_SCHEMA, SY_TDS_CHECKPOINT, w->inst_lit);
        if ((rc = sy_tds_query(t, sy_tds_sql(b), on_ckpt, r, err, sizeof err)) != SY_TDS_OK)
            return rc_of(w, rc, err);
        if (token == 0 || r->n == 0 || (r->min_token == token && r->max_token == token))
            return 0;
        if (r->max_token > token) {
            fenced(w, "the destination's checkpoint names another owner");
            return -1;
        }
        if (tries == WR_CLAIM_TRIES) {
            snprintf(w->err, sizeof w->err, "the destination's checkpoint rows still name an older owner "
                     "token (%llu) after %d claims with this writer's %llu: rewritten after each",
                     (unsigned long long)r->min_token, tries, (unsigned long long)token);
            return 1;
        }
        sy_log_info("%s: the destination's checkpoint rows were rewritten by an older owner (token %llu) "
                    "after this writer's claim: claimed again", w->ctx->instance_id,
                    (unsigned long long)r->min_token);
    }
}

/* The workers' checkpoints -> where each starts; rows for this run's workers written. */
static int read_checkpoints(struct writer *w, struct sy_tds *t)
{
    char err[1024];
    struct sy_buf *b = &w->tmp;
    struct ckpt_read r;
    enum sy_tds_rc rc;
    uint64_t token = w->ctx->owner_token;
    int crc = claim_checkpoints(w, t, &r);
    if (crc != 0)
        return crc;
    uint64_t last = sy_spool_last_seq(w->ctx->spool), first = sy_spool_first_seq(w->ctx->spool);
    uint64_t low = UINT64_MAX;
    char low_pos[64] = "";
    bool same = r.n == w->n_workers;
    for (int i = 0; i < r.n; i++) {
        same = same && r.rows[i].workers == w->n_workers && r.rows[i].worker == i;
        if (r.rows[i].seq < low) {
            low = r.rows[i].seq;
            snprintf(low_pos, sizeof low_pos, "%s", r.rows[i].position);
        }
    }
    if (r.n == 0)
        low = 0;
    bool past = false;
    for (int i = 0; i < r.n; i++)
        past = past || r.rows[i].seq > last;
    if (past) {
        /* an earlier history of an instance with this name (terminated, created again): not ours */
        sy_log_warn("%s: the destination's checkpoints are past this spool's end (%llu): they belong to an "
                    "earlier instance and are ignored",
                    w->ctx->instance_id, (unsigned long long)last);
        r.n = 0;
        low = 0;
        same = false;
    }
    if (first > low + 1 && first != 0) {
        fail(w, "spool_error", "the spool starts at record %llu but the checkpoint is at %llu: records are missing",
             (unsigned long long)first, (unsigned long long)low);
        return -1;
    }
    w->reapply_to = same || r.n == 0 ? 0 : last;
    for (int i = 0; i < w->n_workers; i++)
        w->workers[i].ckpt = same ? r.rows[i].seq : low;
    /* The rows' rewrite: the checkpoint rows for this run's workers (all at the lowest checkpoint, or as they
     * are when the number of workers is the same) and their echo rows, in one transaction (the echo rows
     * alone: dropped by the opposite collector). One batch, so that no lock is held across a round trip (a
     * writer paused there would hold up every claim), and XACT_ABORT, so that any error rolls all of it back
     * (not only its statement). In a cluster it is fenced like the checkpoint updates, also when the rows
     * stay as they are (else an old owner would rewrite a newer owner's echo rows, and that owner's workers
     * above this one's would mark nothing): the DELETE takes only rows no newer owner claimed. Rows a newer
     * owner claimed are left, and they include worker 0 (an instance's rows are always workers 0..n-1 with
     * one token: written together here, claimed together), so the INSERT of worker 0 fails on the primary
     * key and the whole transaction is rolled back. A claim coming later waits for this transaction's locks
     * and then claims the rows written here. */
    sy_failpoint_stall("sqlserver_checkpoint_rewrite");
    sy_buf_reset(b);
    sy_tds_addf(b, "SET XACT_ABORT ON;\nBEGIN TRANSACTION;\n");
    if (!same || token != 0) {
        sy_tds_addf(b, "DELETE FROM [%s].[%s] WHERE instance = %s", SY_TDS_SCHEMA, SY_TDS_CHECKPOINT,
                    w->inst_lit);
        if (token != 0)
            sy_tds_addf(b, " AND owner_token <= %llu", (unsigned long long)token);
        sy_tds_addf(b, ";\n");
        for (int i = 0; i < w->n_workers; i++)
            sy_tds_addf(b, "INSERT INTO [%s].[%s] (instance, worker, workers, seq, position, owner_token) VALUES "
                        "(%s, %d, %d, %llu, '%s', %llu);\n", SY_TDS_SCHEMA, SY_TDS_CHECKPOINT, w->inst_lit, i,
                        w->n_workers, (unsigned long long)w->workers[i].ckpt,
                        same ? r.rows[i].position : r.n ? low_pos : "", (unsigned long long)token);
    }
    sy_tds_addf(b, "DELETE FROM [%s].[%s] WHERE instance = %s;\n", SY_TDS_SCHEMA, SY_TDS_ECHO, w->inst_lit);
    for (int i = 0; i < w->n_workers; i++)
        sy_tds_addf(b, "INSERT INTO [%s].[%s] (instance, worker, n) VALUES (%s, %d, 0);\n", SY_TDS_SCHEMA, SY_TDS_ECHO,
                    w->inst_lit, i);
    sy_tds_addf(b, "COMMIT TRANSACTION;");
    if ((rc = sy_tds_exec(t, sy_tds_sql(b), NULL, 0, NULL, err, sizeof err)) != SY_TDS_OK) {
        if (rc == SY_TDS_TRANSIENT)
            return rc_of(w, rc, err);
        char e2[256];
        struct token_range tr;
        sy_tds_exec(t, "IF @@TRANCOUNT > 0 ROLLBACK", NULL, 0, NULL, e2, sizeof e2);
        if (token != 0 && token_range(w, t, &tr, e2, sizeof e2) == SY_TDS_OK) {
            if (tr.max > token) {
                fenced(w, "a newer owner claimed the destination's checkpoint before its rows were "
                          "rewritten");
                return -1;
            }
            if (tr.n > 0 && tr.min < token) /* an older owner's rewrite committed after the read */
                rc = SY_TDS_TRANSIENT;      /* claimed again by the next session */
        }
        return rc_of(w, rc, err); /* else a genuine error, rolled back */
    }
    /* the initial copy's overlap (forward) */
    memset(&w->overlap_end, 0, sizeof w->overlap_end);
    if (w->ctx->direction == SY_DIR_FORWARD) {
        char id[32];
        enum sy_tds_rc e2 = sy_tds_scalar(t, "SELECT OBJECT_ID('" SY_TDS_SCHEMA "." SY_TDS_COPIES "')", id, sizeof id,
                                          err, sizeof err);
        if (e2 == SY_TDS_OK && id[0] != '\0') {
            struct lsn_read lr = { { { 0 } } };
            sy_buf_reset(b);
            sy_tds_addf(b, "SELECT end_lsn FROM [%s].[%s] WHERE instance = %s AND done = 1", SY_TDS_SCHEMA,
                        SY_TDS_COPIES, w->inst_lit);
            if ((rc = sy_tds_query(t, sy_tds_sql(b), on_end_lsn, &lr, err, sizeof err)) != SY_TDS_OK)
                return rc_of(w, rc, err);
            w->overlap_end = lr.lsn;
        } else if (e2 != SY_TDS_OK) {
            return rc_of(w, e2, err);
        }
    }
    w->durable_seq = low;
    w->next_seq = low + 1;
    if (r.n == 0)
        snprintf(w->position, sizeof w->position, "%s", w->ctx->start_position ? w->ctx->start_position : "");
    else
        snprintf(w->position, sizeof w->position, "%s", low_pos);
    return 0;
}

static void session_close(struct writer *w)
{
    for (int i = 0; i < w->n_workers; i++) {
        struct worker *wk = &w->workers[i];
        sy_module_socket_drop(w->ctx, wk->watch);
        wk->watch = -1;
        sy_tds_close(wk->t);
        wk->t = NULL;
    }
}

static int session_open(struct writer *w)
{
    for (int i = 0; i < w->n_workers; i++) {
        struct worker *wk = &w->workers[i];
        enum sy_tds_rc rc;
        wk->t = sy_tds_connect(w->cfg, w->ctx->dest, w->db, w->err, sizeof w->err, &rc);
        if (wk->t == NULL)
            return rc == SY_TDS_TRANSIENT ? 1 : -1;
        wk->watch = sy_module_socket_watch(w->ctx, sy_tds_fd(wk->t));
    }
    int rc = ensure_objects(w, w->workers[0].t);
    if (rc == 0)
        rc = read_checkpoints(w, w->workers[0].t);
    return rc;
}

/* Reads and applies until stopped or an error. 1: transient (w->err); -1: failed (reported). */
static int apply_session(struct writer *w)
{
    while (!stopping(w)) {
        char err[512];
        uint64_t seq = w->next_seq;
        int rc = sy_write_fill(w->ctx->spool, &seq, WR_WAIT_MS, batch_complete, add_record_cb, w, err, sizeof err);
        if (rc == -1)
            return -1;
        if (rc == -2) {
            fail(w, "spool_error", "%s", err);
            return -1;
        }
        if (w->in_txn) /* a transaction read only in part waits for its end */
            ops_free_from(&w->b, w->txn_first_op);
        if (w->b.last_seq >= w->next_seq) {
            int arc = apply_batch(w);
            if (arc != 0)
                return arc;
        } else {
            batch_clear(&w->b);
            w->in_txn = false;
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
    sy_buf_init(&w->tmp);
    {
        struct sy_buf b;
        sy_buf_init(&b);
        struct sy_value v = { .type = SY_VAL_STRING, .p = (const uint8_t *)w->ctx->instance_id,
                              .len = strlen(w->ctx->instance_id) };
        sy_tds_literal(&b, &v);
        snprintf(w->inst_lit, sizeof w->inst_lit, "%s", sy_tds_sql(&b));
        sy_buf_fini(&b);
    }
    w->until_at_first_change = w->ctx->overwrite_until != NULL &&
                               strcmp(w->ctx->overwrite_until, SY_UNTIL_FIRST_CHANGE) == 0;
    w->has_until = !w->until_at_first_change && w->ctx->overwrite_until != NULL &&
                   sy_lsn_parse(w->ctx->overwrite_until, &w->until);
    w->n_workers = w->cfg->apply_threads < 1 ? 1 : w->cfg->apply_threads > WR_MAX_WORKERS ? WR_MAX_WORKERS
                                                                                           : w->cfg->apply_threads;
    w->workers = calloc((size_t)w->n_workers, sizeof *w->workers);
    if (w->workers == NULL) {
        fail(w, "out_of_memory", "out of memory");
        w->n_workers = 0;
    } else if (!sy_tds_pair_database(w->cfg, w->db, sizeof w->db, w->err, sizeof w->err)) {
        fail(w, "bad_objects", "%s", w->err);
    }
    for (int i = 0; i < w->n_workers; i++) {
        w->workers[i] = (struct worker){ .w = w, .id = i, .watch = -1 };
        sy_buf_init(&w->workers[i].sql);
    }
    int backoff = 100;
    while (!stopping(w) && !w->failed) {
        w->err[0] = '\0';
        int rc = session_open(w);
        if (rc == 0) {
            backoff = 100;
            sy_module_report_running(w->ctx->report);
            publish(w);
            rc = apply_session(w);
        }
        session_close(w);
        batch_clear(&w->b);
        tables_clear(w);
        w->in_txn = false;
        if (rc < 0 && !w->failed)
            fail(w, "destination_refused", "%s", w->err);
        if (rc <= 0 || stopping(w))
            break;
        sy_module_report_retrying(w->ctx->report, "destination_unreachable", "%s", w->err);
        sy_module_backoff(w->ctx, &backoff, WR_MAX_BACKOFF_MS);
    }
    session_close(w);
    batch_clear(&w->b);
    free(w->b.ops);
    tables_clear(w);
    for (int i = 0; i < w->n_workers; i++) {
        sy_buf_fini(&w->workers[i].sql);
        free(w->workers[i].counts);
    }
    sy_buf_fini(&w->tmp);
    sy_change_scratch_fini(&w->scratch);
    free(w->workers);
    free(w);
    return NULL;
}

const struct sy_module_ops sy_sqlserver_write = { "write", writer_main };
