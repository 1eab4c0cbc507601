/* Incremental Data Collection for SQL Server: a thread that polls change data capture through FreeTDS
 * db-lib in the pair's database and appends one spool transaction per source transaction:
 *
 *   poll:  max = sys.fn_cdc_get_max_lsn(); if above the position:
 *          to = the newest of the next COLL_TXNS transactions in cdc.lsn_time_mapping (or max)
 *          from = sys.fn_cdc_increment_lsn(position)
 *          for every capture instance: cdc.fn_cdc_get_all_changes_<ci>(from, to, N'all update old')
 *          (N'all' gives an update's after image only: a key change needs the before image too)
 *          rows of all instances merged by (__$start_lsn, __$seqval, __$operation): one source
 *          transaction per __$start_lsn ->  TXN_BEGIN(lsn), TABLE per table, ROW..., TXN_COMMIT(lsn)
 *          a transaction holding a row of switchyard.echo (the opposite writer's marker) -> dropped
 *          position = to (a POSITION record, at most every second, when only skipped transactions moved it)
 *
 * Operations: 2 insert (after), 1 delete (before), 3 + 4 update (before and after images, one __$seqval).
 * Columns come typed (engine/sqlserver_client.h, sy_tds_col_value), the key columns flagged from the
 * table's primary key.
 *
 * Reach: a synchronized capture instance whose minimum LSN (it rises with cleanup) is above `from` may
 * have lost changes this instance has not read: the instance fails (position_unavailable) naming both
 * LSNs, never skips. The echo table's instance is read from its own minimum (it may be created after the
 * position: by the opposite writer).
 *
 * Lag: now on the source (SYSDATETIME()) minus the commit time of the newest transaction read
 * (cdc.lsn_time_mapping.tran_end_time), so it includes the capture job's delay for what was captured;
 * 0 once a poll finds nothing new (commits the capture job has not reached yet are invisible to any CDC
 * reader). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "capture/sqlserver_modules.h"
#include "core/change.h"
#include "core/collect.h"
#include "core/grow.h"
#include "core/instance.h"
#include "core/log.h"
#include "engine/sqlserver_cdc.h"

#define COLL_POLL_MS 100
#define COLL_TXNS 500            /* source transactions per poll at most */
#define COLL_MAX_BACKOFF_MS 2000
#define POSITION_EVERY_MS 1000
#define CDC_META_COLS 4          /* __$start_lsn, __$seqval, __$operation, __$update_mask */

struct table {                   /* a capture instance's table, as its change rows describe it */
    struct sy_tds_ci ci;
    char **keys;                 /* owned: primary key column names */
    struct sy_column *cols;      /* owned: the table's columns (after the CDC ones), flags set */
    char *names;                 /* owned: their names, NUL-separated */
    uint32_t n_cols;
};

struct crow {                    /* one change row read in this poll */
    struct sy_tds_cdc_key k;     /* table: index into tables */
    size_t vals;                 /* index of its first value in values */
};

struct txtime {
    struct sy_lsn lsn;
    int64_t end_ms;              /* tran_end_time, as source-clock ms */
};

struct collector {
    struct sy_module_ctx *ctx;     /* ref */
    const struct sy_pair_cfg *cfg; /* ref */
    struct sy_collect out;
    struct sy_tds *t;              /* owned */
    int watch;                     /* socket watch slot */
    char db[80];
    struct table *tables;          /* owned */
    size_t n_tables;
    struct sy_lsn pos;             /* the last LSN taken (spooled or skipped) */
    /* this poll */
    struct crow *rows;
    size_t n_rows, cap_rows;
    struct sy_value *values;
    size_t n_values, cap_values;
    struct sy_buf arena;           /* value bytes (values point here once the poll has read everything) */
    struct txtime *times;
    size_t n_times, cap_times;
    int64_t source_now_ms;
    uint32_t reading;              /* the table being read */
    bool skipped_since_position;
    uint64_t last_position_ms;
    uint64_t events;
    char err[1024];
};

static bool stopping(const struct collector *c)
{
    return __atomic_load_n(c->ctx->stop, __ATOMIC_ACQUIRE) != 0;
}

static void tables_free(struct collector *c)
{
    for (size_t i = 0; i < c->n_tables; i++) {
        sy_tds_strv_free(c->tables[i].keys);
        free(c->tables[i].cols);
        free(c->tables[i].names);
    }
    free(c->tables);
    c->tables = NULL;
    c->n_tables = 0;
}

static void publish_position(struct collector *c)
{
    pthread_mutex_lock(&c->ctx->report->lock);
    sy_lsn_format(&c->pos, c->ctx->report->position);
    c->ctx->report->events = c->events;
    pthread_mutex_unlock(&c->ctx->report->lock);
}

static bool append_position(struct collector *c)
{
    char text[SY_LSN_TEXT];
    sy_lsn_format(&c->pos, text);
    struct sy_change ch = { .kind = SY_CHANGE_POSITION, .position = text, .position_len = strlen(text) };
    c->skipped_since_position = false;
    c->last_position_ms = sy_wall_ms();
    return sy_collect_append(&c->out, &ch);
}

/* ---- the session ------------------------------------------------------------------------------------- */

static void session_close(struct collector *c)
{
    sy_module_socket_drop(c->ctx, c->watch);
    c->watch = -1;
    sy_tds_close(c->t);
    c->t = NULL;
    tables_free(c);
}

/* 0; 1 transient (c->err); -1 failed (reported). */
static int rc_of(struct collector *c, enum sy_tds_rc rc, const char *what)
{
    if (rc == SY_TDS_OK)
        return 0;
    if (rc == SY_TDS_TRANSIENT)
        return 1;
    sy_module_report_failed(c->ctx->report, "source_refused", "%s: %s", what, c->err);
    return -1;
}

static int session_open(struct collector *c)
{
    enum sy_tds_rc rc;
    c->t = sy_tds_connect(c->cfg, c->ctx->source, c->db, c->err, sizeof c->err, &rc);
    if (c->t == NULL)
        return rc_of(c, rc, "connecting");
    c->watch = sy_module_socket_watch(c->ctx, sy_tds_fd(c->t));
    struct sy_tds_ci *cis = NULL;
    size_t n = 0;
    char *missing = NULL;
    bool enabled = false;
    rc = sy_tds_capture_instances(c->t, c->cfg, &cis, &n, &missing, &enabled, c->err, sizeof c->err);
    if (rc != SY_TDS_OK)
        return rc_of(c, rc, "reading the capture instances");
    int out = 0;
    if (!enabled || (missing != NULL && missing[0] != '\0')) {
        sy_module_report_failed(c->ctx->report, "cdc_not_enabled",
                                !enabled ? "database %s on %s:%u has no change data capture (sys.sp_cdc_enable_db)%s"
                                         : "database %s on %s:%u: tables without change data capture "
                                           "(sys.sp_cdc_enable_table): %s",
                                c->db, c->ctx->source->host, c->ctx->source->port, missing ? missing : "");
        out = -1;
    }
    free(missing);
    if (out == 0 && (c->tables = calloc(n ? n : 1, sizeof *c->tables)) == NULL) {
        sy_module_report_failed(c->ctx->report, "out_of_memory", "out of memory");
        out = -1;
    }
    for (size_t i = 0; out == 0 && i < n; i++) {
        struct table *tb = &c->tables[c->n_tables++];
        tb->ci = cis[i];
        if (tb->ci.echo)
            continue;
        tb->keys = sy_tds_key_columns(c->t, tb->ci.table, &rc, c->err, sizeof c->err);
        if (tb->keys == NULL)
            out = rc_of(c, rc, "reading primary keys");
        else if (tb->keys[0] == NULL) {
            sy_module_report_failed(c->ctx->report, "no_key", "table dbo.%s has no primary key", tb->ci.table);
            out = -1;
        }
    }
    free(cis);
    return out;
}

/* ---- one poll ---------------------------------------------------------------------------------------- */

static int64_t crack_ms(struct sy_tds *t, int col)
{
    char text[64];
    struct tm tm = { 0 };
    int frac = 0;
    if (!sy_tds_col_text(t, col, text, sizeof text) || text[0] == '\0' ||
        sscanf(text, "%d-%d-%d %d:%d:%d.%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
               &tm.tm_sec, &frac) < 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + frac / 10000; /* 7 fraction digits */
}

static int on_now(void *arg, struct sy_tds *t)
{
    struct collector *c = arg;
    c->source_now_ms = crack_ms(t, 1);
    return 0;
}

static int on_time(void *arg, struct sy_tds *t)
{
    struct collector *c = arg;
    size_t len;
    const uint8_t *p = sy_tds_col_bytes(t, 1, &len);
    struct txtime x = { .end_ms = crack_ms(t, 2) };
    if (!sy_lsn_from_bytes(p, len, &x.lsn))
        return 0;
    if (sy_grow((void **)&c->times, &c->cap_times, c->n_times + 1, sizeof *c->times, 256) != 0) {
        snprintf(c->err, sizeof c->err, "out of memory");
        return 1;
    }
    c->times[c->n_times++] = x;
    return 0;
}

static struct table *reading(struct collector *c)
{
    return &c->tables[c->reading];
}

/* The table's columns from the first change row's metadata (what follows the CDC columns). */
static int describe(struct collector *c, struct sy_tds *t)
{
    struct table *tb = reading(c);
    int n = sy_tds_ncols(t) - CDC_META_COLS;
    if (n <= 0 || n > SY_CHANGE_MAX_COLUMNS) {
        snprintf(c->err, sizeof c->err, "capture instance %s returns %d columns", tb->ci.name, n);
        return 1;
    }
    struct sy_buf names;
    sy_buf_init(&names);
    for (int i = 0; i < n; i++) {
        const char *nm = sy_tds_col_name(t, CDC_META_COLS + 1 + i);
        sy_buf_add(&names, nm, strlen(nm) + 1);
    }
    tb->cols = calloc((size_t)n, sizeof *tb->cols);
    if (tb->cols == NULL || names.oom) {
        sy_buf_fini(&names);
        snprintf(c->err, sizeof c->err, "out of memory");
        return 1;
    }
    tb->names = (char *)names.p; /* ownership moves */
    const char *nm = tb->names;
    for (int i = 0; i < n; i++) {
        struct sy_column *col = &tb->cols[i];
        col->name = nm;
        col->name_len = strlen(nm);
        col->flags = SY_COL_NULLABLE;
        for (size_t k = 0; tb->keys && tb->keys[k]; k++)
            if (strcasecmp(tb->keys[k], nm) == 0)
                col->flags = SY_COL_KEY;
        nm += col->name_len + 1;
    }
    tb->n_cols = (uint32_t)n;
    return 0;
}

static int on_change_row(void *arg, struct sy_tds *t)
{
    struct collector *c = arg;
    struct table *tb = reading(c);
    if (tb->ci.echo) { /* only its transaction matters */
        struct crow r = { .k = { .table = c->reading, .op = 0 } };
        size_t len;
        const uint8_t *p = sy_tds_col_bytes(t, 1, &len);
        if (!sy_lsn_from_bytes(p, len, &r.k.lsn))
            return 0;
        if (sy_grow((void **)&c->rows, &c->cap_rows, c->n_rows + 1, sizeof *c->rows, 256) != 0)
            goto oom;
        c->rows[c->n_rows++] = r;
        return 0;
    }
    if (tb->cols == NULL && describe(c, t) != 0)
        return 1;
    if ((uint32_t)(sy_tds_ncols(t) - CDC_META_COLS) != tb->n_cols) {
        snprintf(c->err, sizeof c->err, "capture instance %s changed its columns", tb->ci.name);
        return 1;
    }
    struct crow r = { .k = { .table = c->reading, .op = (int)sy_tds_col_int(t, 3) }, .vals = c->n_values };
    size_t len;
    const uint8_t *p = sy_tds_col_bytes(t, 1, &len);
    if (!sy_lsn_from_bytes(p, len, &r.k.lsn)) {
        snprintf(c->err, sizeof c->err, "capture instance %s: __$start_lsn is not binary(10)", tb->ci.name);
        return 1;
    }
    p = sy_tds_col_bytes(t, 2, &len);
    if (p != NULL)
        memcpy(r.k.seq, p, len < sizeof r.k.seq ? len : sizeof r.k.seq);
    if (sy_grow((void **)&c->rows, &c->cap_rows, c->n_rows + 1, sizeof *c->rows, 256) != 0 ||
        sy_grow((void **)&c->values, &c->cap_values, c->n_values + tb->n_cols, sizeof *c->values, 256) != 0)
        goto oom;
    for (uint32_t i = 0; i < tb->n_cols; i++) {
        struct sy_value *v = &c->values[c->n_values + i];
        char why[256];
        if (!sy_tds_col_value(t, (int)(CDC_META_COLS + 1 + i), v, &c->arena, why, sizeof why)) {
            snprintf(c->err, sizeof c->err, "table dbo.%s: %s", tb->ci.table, why);
            return 1;
        }
        if (v->p != NULL) { /* bytes in db-lib's row buffer: keep a copy (re-pointed after the poll) */
            v->i = (int64_t)c->arena.len + 1;
            sy_buf_add(&c->arena, v->p, v->len);
            v->p = NULL;
        }
    }
    if (c->arena.oom)
        goto oom;
    c->n_values += tb->n_cols;
    c->rows[c->n_rows++] = r;
    return 0;
oom:
    snprintf(c->err, sizeof c->err, "out of memory");
    return 1;
}

/* CDC's order, as the tail's (engine/sqlserver_cdc.h). */
static int row_cmp(const void *a, const void *b)
{
    return sy_tds_cdc_order_cmp(&((const struct crow *)a)->k, &((const struct crow *)b)->k);
}

static int64_t end_ms_of(const struct collector *c, const struct sy_lsn *lsn)
{
    size_t lo = 0, hi = c->n_times;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int d = sy_lsn_cmp(&c->times[mid].lsn, lsn);
        if (d == 0)
            return c->times[mid].end_ms;
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Appends the transaction rows[from..to) (one __$start_lsn). */
static bool append_txn(struct collector *c, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (c->tables[c->rows[i].k.table].ci.echo) {
            c->skipped_since_position = true; /* the opposite writer's: dropped whole */
            return true;
        }
    char text[SY_LSN_TEXT];
    sy_lsn_format(&c->rows[from].k.lsn, text);
    int64_t end = end_ms_of(c, &c->rows[from].k.lsn);
    int64_t lag = end && c->source_now_ms ? c->source_now_ms - end : 0;
    uint64_t stime = sy_wall_ms() - (uint64_t)(lag > 0 ? lag : 0);
    struct sy_change ch = { .kind = SY_CHANGE_TXN_BEGIN, .source_time_ms = stime, .position = text,
                            .position_len = strlen(text) };
    if (!sy_collect_append(&c->out, &ch))
        return false;
    uint64_t described = 0; /* tables described in this transaction (bit per table, first 64; else always) */
    for (size_t i = from; i < to; i++) {
        const struct crow *r = &c->rows[i];
        const struct table *tb = &c->tables[r->k.table];
        if (r->k.table >= 64 || !(described & (1ull << r->k.table))) {
            if (r->k.table < 64)
                described |= 1ull << r->k.table;
            ch = (struct sy_change){ .kind = SY_CHANGE_TABLE, .source_time_ms = stime };
            ch.u.table = (struct sy_change_table){ .table_id = r->k.table + 1, .db = c->db, .db_len = strlen(c->db),
                                                   .table = tb->ci.table, .table_len = strlen(tb->ci.table),
                                                   .n_columns = tb->n_cols, .columns = tb->cols };
            if (!sy_collect_append(&c->out, &ch))
                return false;
        }
        const struct sy_value *vals = &c->values[r->vals], *before = NULL, *after = NULL;
        enum sy_row_op op;
        if (r->k.op == 2) {
            op = SY_ROW_INSERT;
            after = vals;
        } else if (r->k.op == 1) {
            op = SY_ROW_DELETE;
            before = vals;
        } else if (r->k.op == 3 && i + 1 < to && c->rows[i + 1].k.op == 4 && c->rows[i + 1].k.table == r->k.table &&
                   memcmp(c->rows[i + 1].k.seq, r->k.seq, sizeof r->k.seq) == 0) {
            op = SY_ROW_UPDATE;
            before = vals;
            after = &c->values[c->rows[++i].vals];
        } else {
            sy_module_report_failed(c->ctx->report, "bad_change",
                                    "capture instance %s at %s: operation %d without its pair", tb->ci.name, text,
                                    r->k.op);
            return false;
        }
        ch = (struct sy_change){ .kind = SY_CHANGE_ROW, .source_time_ms = stime };
        ch.u.row = (struct sy_change_row){ .table_id = r->k.table + 1, .op = op, .n_columns = tb->n_cols,
                                           .before = before, .after = after };
        if (!sy_collect_append(&c->out, &ch))
            return false;
    }
    ch = (struct sy_change){ .kind = SY_CHANGE_TXN_COMMIT, .source_time_ms = stime, .position = text,
                             .position_len = strlen(text) };
    if (!sy_collect_append(&c->out, &ch))
        return false;
    c->events++;
    pthread_mutex_lock(&c->ctx->report->lock);
    c->ctx->report->lag_ms = lag < 0 ? 0 : lag;
    c->ctx->report->source_time_ms = stime;
    pthread_mutex_unlock(&c->ctx->report->lock);
    return true;
}

/* The opposite writer creates switchyard.echo (and its capture instance) when it first starts, maybe
 * after this session read the capture instances: looked for again before every poll that has something
 * to read and does not know it yet. The writer enables it before committing anything marked, so a marked
 * transaction at or below the max LSN read before this look is always recognised. 0, 1, -1. */
static int refresh_echo(struct collector *c)
{
    for (size_t i = 0; i < c->n_tables; i++)
        if (c->tables[i].ci.echo)
            return 0;
    char name[200];
    int rc = rc_of(c,
                   sy_tds_scalar(c->t,
                                 "SELECT capture_instance FROM cdc.change_tables WHERE capture_instance = '" SY_TDS_ECHO_CI "'",
                                 name, sizeof name, c->err, sizeof c->err),
                   "reading the capture instances");
    if (rc != 0 || name[0] == '\0')
        return rc;
    struct table *v = realloc(c->tables, (c->n_tables + 1) * sizeof *v);
    if (v == NULL) {
        sy_module_report_failed(c->ctx->report, "out_of_memory", "out of memory");
        return -1;
    }
    c->tables = v;
    c->tables[c->n_tables] = (struct table){ .ci = { .echo = true } };
    snprintf(c->tables[c->n_tables].ci.name, sizeof c->tables[c->n_tables].ci.name, "%s", SY_TDS_ECHO_CI);
    snprintf(c->tables[c->n_tables].ci.schema, sizeof c->tables[c->n_tables].ci.schema, "%s", SY_TDS_SCHEMA);
    snprintf(c->tables[c->n_tables].ci.table, sizeof c->tables[c->n_tables].ci.table, "%s", SY_TDS_ECHO);
    c->n_tables++;
    sy_log_info("%s: the writers' echo marker table switchyard.echo has change data capture now: transactions "
                "holding a marker are dropped",
                c->ctx->instance_id);
    return 0;
}

/* One poll. 0 = read something, 2 = nothing new; 1 transient (c->err); -1 failed (reported). */
static int poll_once(struct collector *c)
{
    c->n_rows = c->n_values = c->n_times = 0;
    sy_buf_reset(&c->arena);
    struct sy_lsn max, from, to;
    char ph[SY_LSN_TEXT], mh[SY_LSN_TEXT], fh[SY_LSN_TEXT], th[SY_LSN_TEXT], sql[512];
    int rc = rc_of(c, sy_tds_lsn_query(c->t, "SELECT sys.fn_cdc_get_max_lsn()", &max, c->err, sizeof c->err),
                   "reading the maximum LSN");
    if (rc != 0)
        return rc;
    if (sy_lsn_cmp(&max, &c->pos) <= 0)
        return 2;
    if ((rc = refresh_echo(c)) != 0)
        return rc;
    sy_lsn_format(&c->pos, ph);
    sy_lsn_format(&max, mh);
    if ((rc = rc_of(c, sy_tds_query(c->t, "SELECT SYSDATETIME()", on_now, c, c->err, sizeof c->err),
                    "reading the time")) != 0)
        return rc;
    snprintf(sql, sizeof sql,
             "SELECT TOP %d start_lsn, tran_end_time FROM cdc.lsn_time_mapping WHERE start_lsn > 0x%s AND "
             "start_lsn <= 0x%s ORDER BY start_lsn",
             COLL_TXNS, ph, mh);
    if ((rc = rc_of(c, sy_tds_query(c->t, sql, on_time, c, c->err, sizeof c->err), "reading cdc.lsn_time_mapping")) !=
        0)
        return rc;
    to = c->n_times == COLL_TXNS ? c->times[c->n_times - 1].lsn : max;
    snprintf(sql, sizeof sql, "SELECT sys.fn_cdc_increment_lsn(0x%s)", ph);
    if ((rc = rc_of(c, sy_tds_lsn_query(c->t, sql, &from, c->err, sizeof c->err), "incrementing the LSN")) != 0)
        return rc;
    sy_lsn_format(&from, fh);
    sy_lsn_format(&to, th);
    for (size_t i = 0; i < c->n_tables && !stopping(c); i++) {
        struct table *tb = &c->tables[i];
        struct sy_buf q;
        sy_buf_init(&q);
        sy_tds_addf(&q, "SELECT sys.fn_cdc_get_min_lsn(");
        sy_tds_cdc_ci_literal(&q, tb->ci.name);
        sy_tds_addf(&q, ")");
        rc = rc_of(c, sy_tds_lsn_query(c->t, sy_tds_sql(&q), &tb->ci.min, c->err, sizeof c->err),
                   "reading a minimum LSN");
        sy_buf_fini(&q);
        if (rc != 0)
            return rc;
        struct sy_lsn a = from;
        if (sy_lsn_cmp(&tb->ci.min, &from) > 0) {
            if (!tb->ci.echo) {
                char minh[SY_LSN_TEXT];
                sy_lsn_format(&tb->ci.min, minh);
                sy_module_report_failed(
                    c->ctx->report, "position_unavailable",
                    "capture instance %s on %s:%u no longer reaches back to LSN %s (its minimum LSN is %s): changes "
                    "in between may be lost to this instance; keep CDC retention longer than retry_seconds and run "
                    "the initial sync again (terminate, start)",
                    tb->ci.name, c->ctx->source->host, c->ctx->source->port, ph, minh);
                return -1;
            }
            a = tb->ci.min;
        }
        if (sy_lsn_cmp(&a, &to) > 0 || sy_lsn_is_zero(&tb->ci.min))
            continue;
        char ah[SY_LSN_TEXT];
        sy_lsn_format(&a, ah);
        sy_buf_init(&q);
        sy_tds_addf(&q, "SELECT * FROM ");
        sy_tds_cdc_fn(&q, "fn_cdc_get_all_changes_", tb->ci.name);
        sy_tds_addf(&q, "(0x%s, 0x%s, N'all update old') ORDER BY __$start_lsn, __$seqval, __$operation", ah, th);
        c->reading = (uint32_t)i;
        enum sy_tds_rc qrc = sy_tds_query(c->t, sy_tds_sql(&q), on_change_row, c, c->err, sizeof c->err);
        sy_buf_fini(&q);
        if (qrc == SY_TDS_REFUSED && strstr(c->err, "out of memory") != NULL) {
            sy_module_report_failed(c->ctx->report, "out_of_memory", "%s", c->err);
            return -1;
        }
        if ((rc = rc_of(c, qrc, "reading changes")) != 0)
            return rc;
    }
    if (stopping(c))
        return 0;
    for (size_t i = 0; i < c->n_rows; i++)
        if (c->rows[i].k.op != 0)
            sy_tds_values_fix(&c->values[c->rows[i].vals], c->tables[c->rows[i].k.table].n_cols, &c->arena);
    if (c->n_rows > 1) /* qsort(NULL, 0, ...) is undefined */
        qsort(c->rows, c->n_rows, sizeof *c->rows, row_cmp);
    for (size_t i = 0; i < c->n_rows;) {
        size_t j = i + 1;
        while (j < c->n_rows && sy_lsn_cmp(&c->rows[j].k.lsn, &c->rows[i].k.lsn) == 0)
            j++;
        if (!append_txn(c, i, j))
            return -1;
        c->pos = c->rows[i].k.lsn;
        sy_collect_sync(&c->out, false);
        i = j;
    }
    if (sy_lsn_cmp(&c->pos, &to) < 0) {
        c->pos = to; /* transactions without rows of ours */
        c->skipped_since_position = true;
    }
    publish_position(c);
    return 0;
}

/* Polls until stopped or an error: 1 = retry later (c->err); -1 = failed (reported). */
static int tail(struct collector *c)
{
    bool reported_running = false;
    while (!stopping(c)) {
        int rc = poll_once(c);
        if (rc == 1 || rc == -1)
            return rc;
        if (!reported_running) {
            reported_running = true;
            sy_module_report_running(c->ctx->report);
        }
        if (c->skipped_since_position && !c->out.in_txn && sy_wall_ms() - c->last_position_ms >= POSITION_EVERY_MS &&
            !append_position(c))
            return -1;
        if (rc == 0)
            continue;
        pthread_mutex_lock(&c->ctx->report->lock);
        c->ctx->report->lag_ms = 0;
        pthread_mutex_unlock(&c->ctx->report->lock);
        sy_collect_sync(&c->out, true);
        usleep(COLL_POLL_MS * 1000);
    }
    return 0;
}

static void collect(struct collector *c)
{
    int backoff = 100;
    while (!stopping(c)) {
        int rc = session_open(c);
        if (rc == 0) {
            char ph[SY_LSN_TEXT];
            sy_lsn_format(&c->pos, ph);
            sy_log_info("%s: polling change data capture of %s on %s:%u after LSN %s", c->ctx->instance_id, c->db,
                        c->ctx->source->host, c->ctx->source->port, ph);
            publish_position(c);
            backoff = 100;
            rc = tail(c);
        }
        session_close(c);
        sy_collect_sync(&c->out, true);
        if (rc <= 0 || stopping(c))
            return; /* stopped, or failed (reported) */
        sy_module_report_retrying(c->ctx->report, "source_unreachable", "%s", c->err);
        sy_module_backoff(c->ctx, &backoff, COLL_MAX_BACKOFF_MS);
    }
}

/* The position to start from; "" (no initial sync, nothing spooled): where a collection starts now. */
static int load_position(struct collector *c)
{
    char from[1024];
    if (sy_collect_start_position(&c->out, sy_sqlserver_source_position, from, sizeof from) != 0)
        return -1;
    if (!sy_lsn_parse(from, &c->pos)) {
        sy_module_report_failed(c->ctx->report, "bad_position", "cannot parse the start position '%s'", from);
        return -1;
    }
    return 0;
}

static void *collector_main(void *arg)
{
    struct collector *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->ctx = arg;
    c->cfg = c->ctx->cfg;
    c->watch = -1;
    c->last_position_ms = sy_wall_ms();
    sy_collect_init(&c->out, c->ctx);
    sy_buf_init(&c->arena);
    if (!sy_tds_pair_database(c->cfg, c->db, sizeof c->db, c->err, sizeof c->err))
        sy_module_report_failed(c->ctx->report, "bad_objects", "%s", c->err);
    else if (load_position(c) == 0)
        collect(c);
    sy_collect_fini(&c->out);
    session_close(c);
    sy_buf_fini(&c->arena);
    free(c->rows);
    free(c->values);
    free(c->times);
    free(c);
    return NULL;
}

const struct sy_module_ops sy_sqlserver_collection = { "collection", collector_main };
