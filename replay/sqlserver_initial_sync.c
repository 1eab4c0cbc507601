/* Initial Synchronization for SQL Server: the source's CDC start position (engine/sqlserver_cdc.h) is
 * read first and becomes the position the collection starts from; then every synchronized table is
 * created on the destination with its columns (the source's type declarations and nullability) and
 * primary key, its rows copied in key order (chunks of initial_sync_chunk_rows, one destination
 * transaction each), and change data capture enabled on it (a reverse instance collects from it later).
 * The copy runs while the source takes writes (no snapshot across tables), so a row may be copied in a
 * state newer than the position: the writer applies the changes from the position idempotently by key
 * and, up to the LSN read after the copy (switchyard.initial_sync.end_lsn on the destination), does not
 * count what does not fit as a conflict.
 *
 * An attempt always starts from scratch (tables disabled for CDC, dropped and created again), so a retry,
 * a restart or a kill -9 in the middle ends with the destination equal to the source. The destination
 * database and its CDC (sys.sp_cdc_enable_db) are the operator's (the precheck names what is missing).
 * Progress: done_rows / total_rows (counted before the copy). Identity columns are created as plain
 * columns of their type (the source's values are copied as they are). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/change.h"
#include "core/collect.h"
#include "core/log.h"
#include "engine/sqlserver_cdc.h"
#include "engine/sqlserver_client.h"
#include "replay/sqlserver_modules.h"

#define INSERT_ROWS 500
#define MARK_WAIT_MS 60000 /* for the capture job to capture the copy's end mark */ /* rows per INSERT ... VALUES statement (SQL Server takes at most 1000) */

struct isync {
    struct sy_module_ctx *ctx;     /* ref */
    const struct sy_pair_cfg *cfg; /* ref */
    char db[80];
    char inst_lit[300];
    struct sy_tds *src, *dst;      /* owned during an attempt */
    int src_watch, dst_watch;
    char position[SY_LSN_TEXT];
    char err[1024];
    bool transient;
    uint64_t done, total;
    /* the table being copied */
    char **keys;                   /* owned */
    int *key_cols;                 /* owned: result column of each key */
    size_t n_keys;
    struct sy_buf insert, scratch, last_key; /* the chunk's INSERTs, row values' text, where the next chunk starts */
    const char *table;
    uint64_t chunk_rows, in_stmt;
    struct sy_value *vals;         /* owned: one row */
    size_t cap_vals;
};

static bool stopping(const struct isync *s)
{
    return __atomic_load_n(s->ctx->stop, __ATOMIC_ACQUIRE) != 0;
}

/* 0 ok; -1 with s->err and s->transient. */
static int check(struct isync *s, enum sy_tds_rc rc)
{
    if (rc == SY_TDS_OK)
        return 0;
    s->transient = rc == SY_TDS_TRANSIENT;
    return -1;
}

static int failf(struct isync *s, const char *fmt, ...) SY_PRINTF(2, 3);
static int failf(struct isync *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    s->transient = false;
    return -1;
}

static int connect_both(struct isync *s)
{
    enum sy_tds_rc rc;
    if ((s->src = sy_tds_connect(s->cfg, s->ctx->source, s->db, s->err, sizeof s->err, &rc)) == NULL)
        return check(s, rc);
    s->src_watch = sy_module_socket_watch(s->ctx, sy_tds_fd(s->src));
    if ((s->dst = sy_tds_connect(s->cfg, s->ctx->dest, s->db, s->err, sizeof s->err, &rc)) == NULL)
        return check(s, rc);
    s->dst_watch = sy_module_socket_watch(s->ctx, sy_tds_fd(s->dst));
    return 0;
}

/* ---- creating a table -------------------------------------------------------------------------------- */

/* One column of sys.columns joined with sys.types: "[name] type(args) [NOT] NULL". */
static int on_column(void *arg, struct sy_tds *t)
{
    struct sy_buf *b = arg;
    char name[260], type[130], len[16], prec[16], scale[16], nullable[8];
    if (!sy_tds_col_text(t, 1, name, sizeof name) || !sy_tds_col_text(t, 2, type, sizeof type) ||
        !sy_tds_col_text(t, 3, len, sizeof len) || !sy_tds_col_text(t, 4, prec, sizeof prec) ||
        !sy_tds_col_text(t, 5, scale, sizeof scale) || !sy_tds_col_text(t, 6, nullable, sizeof nullable))
        return 0;
    long ml = strtol(len, NULL, 10);
    if (b->len)
        sy_buf_add(b, ", ", 2);
    sy_tds_ident(b, name, strlen(name));
    sy_tds_addf(b, " %s", type);
    if (strcasecmp(type, "nchar") == 0 || strcasecmp(type, "nvarchar") == 0) {
        if (ml < 0)
            sy_tds_addf(b, "(max)");
        else
            sy_tds_addf(b, "(%ld)", ml / 2);
    } else if (strcasecmp(type, "char") == 0 || strcasecmp(type, "varchar") == 0 || strcasecmp(type, "binary") == 0 ||
               strcasecmp(type, "varbinary") == 0) {
        if (ml < 0)
            sy_tds_addf(b, "(max)");
        else
            sy_tds_addf(b, "(%ld)", ml);
    } else if (strcasecmp(type, "decimal") == 0 || strcasecmp(type, "numeric") == 0) {
        sy_tds_addf(b, "(%s,%s)", prec, scale);
    } else if (strcasecmp(type, "datetime2") == 0 || strcasecmp(type, "time") == 0 ||
               strcasecmp(type, "datetimeoffset") == 0) {
        sy_tds_addf(b, "(%s)", scale);
    }
    bool null = strcmp(nullable, "1") == 0 || strcasecmp(nullable, "true") == 0;
    sy_tds_addf(b, null ? " NULL" : " NOT NULL");
    return 0;
}

/* Creates dbo.<table> on the destination as the source has it (dropped first: a new copy). */
static int create_table(struct isync *s, const char *table)
{
    struct sy_buf q, cols, ddl;
    sy_buf_init(&q);
    sy_buf_init(&cols);
    sy_buf_init(&ddl);
    sy_tds_addf(&q,
                "SELECT c.name, ty.name, c.max_length, c.precision, c.scale, c.is_nullable FROM sys.columns c JOIN "
                "sys.types ty ON ty.user_type_id = c.user_type_id WHERE c.object_id = OBJECT_ID('dbo.%s') ORDER BY "
                "c.column_id",
                table);
    int rc = check(s, sy_tds_query(s->src, sy_tds_sql(&q), on_column, &cols, s->err, sizeof s->err));
    if (rc == 0 && cols.len == 0)
        rc = failf(s, "dbo.%s: sys.columns lists no columns", table);
    if (rc == 0) {
        sy_tds_addf(&ddl, "CREATE TABLE [dbo].");
        sy_tds_ident(&ddl, table, strlen(table));
        sy_buf_add(&ddl, " (", 2);
        sy_buf_add(&ddl, cols.p, cols.len);
        sy_buf_add(&ddl, ", PRIMARY KEY (", 15);
        for (size_t k = 0; k < s->n_keys; k++) {
            if (k)
                sy_buf_add(&ddl, ", ", 2);
            sy_tds_ident(&ddl, s->keys[k], strlen(s->keys[k]));
        }
        sy_buf_add(&ddl, "))", 2);
        /* a table left by an earlier copy: its capture instance first (dropping the table would leave it) */
        sy_buf_reset(&q);
        sy_tds_addf(&q, "SELECT OBJECT_ID('dbo.%s')", table);
        char id[32];
        rc = check(s, sy_tds_scalar(s->dst, sy_tds_sql(&q), id, sizeof id, s->err, sizeof s->err));
        if (rc == 0 && id[0] != '\0') {
            char e2[512], ci[260];
            sy_buf_reset(&q);
            sy_tds_addf(&q, "SELECT ct.capture_instance FROM cdc.change_tables ct WHERE ct.source_object_id = %s", id);
            if (sy_tds_scalar(s->dst, sy_tds_sql(&q), ci, sizeof ci, e2, sizeof e2) == SY_TDS_OK && ci[0] != '\0') {
                sy_buf_reset(&q);
                sy_tds_addf(&q,
                            "EXEC sys.sp_cdc_disable_table @source_schema = N'dbo', @source_name = N'%s', "
                            "@capture_instance = N'all'",
                            table);
                rc = check(s, sy_tds_exec(s->dst, sy_tds_sql(&q), NULL, 0, NULL, s->err, sizeof s->err));
            }
            if (rc == 0) {
                sy_buf_reset(&q);
                sy_tds_addf(&q, "DROP TABLE [dbo].");
                sy_tds_ident(&q, table, strlen(table));
                rc = check(s, sy_tds_exec(s->dst, sy_tds_sql(&q), NULL, 0, NULL, s->err, sizeof s->err));
            }
        }
    }
    if (rc == 0)
        rc = check(s, sy_tds_exec(s->dst, sy_tds_sql(&ddl), NULL, 0, NULL, s->err, sizeof s->err));
    sy_buf_fini(&q);
    sy_buf_fini(&cols);
    sy_buf_fini(&ddl);
    return rc;
}

/* ---- copying a table --------------------------------------------------------------------------------- */

static int flush_insert(struct isync *s)
{
    if (s->in_stmt == 0)
        return 0;
    sy_buf_add(&s->insert, ";\n", 2);
    s->in_stmt = 0;
    return 0;
}

static int on_copy_columns(void *arg, struct sy_tds *t)
{
    struct isync *s = arg;
    size_t n = (size_t)sy_tds_ncols(t);
    if (n > s->cap_vals) {
        free(s->vals);
        if ((s->vals = calloc(n, sizeof *s->vals)) == NULL) {
            snprintf(s->err, sizeof s->err, "out of memory");
            return 1;
        }
        s->cap_vals = n;
    }
    free(s->key_cols);
    if ((s->key_cols = calloc(s->n_keys ? s->n_keys : 1, sizeof *s->key_cols)) == NULL) {
        snprintf(s->err, sizeof s->err, "out of memory");
        return 1;
    }
    for (size_t k = 0; k < s->n_keys; k++)
        for (size_t c = 1; c <= n; c++)
            if (strcasecmp(sy_tds_col_name(t, (int)c), s->keys[k]) == 0)
                s->key_cols[k] = (int)c;
    return 0;
}

static void column_list(struct isync *s, struct sy_tds *t, struct sy_buf *b)
{
    for (int c = 1; c <= sy_tds_ncols(t); c++) {
        if (c > 1)
            sy_buf_add(b, ", ", 2);
        const char *nm = sy_tds_col_name(t, c);
        sy_tds_ident(b, nm, strlen(nm));
    }
}

static int on_copy_row(void *arg, struct sy_tds *t)
{
    struct isync *s = arg;
    int n = sy_tds_ncols(t);
    sy_buf_reset(&s->scratch);
    for (int c = 1; c <= n; c++) {
        char why[256];
        if (!sy_tds_col_value(t, c, &s->vals[c - 1], &s->scratch, why, sizeof why)) {
            snprintf(s->err, sizeof s->err, "dbo.%s: %s", s->table, why);
            return 1;
        }
    }
    sy_tds_values_fix(s->vals, (size_t)n, &s->scratch);
    if (s->in_stmt == INSERT_ROWS)
        flush_insert(s);
    if (s->in_stmt++ == 0) {
        sy_tds_addf(&s->insert, "INSERT INTO [dbo].");
        sy_tds_ident(&s->insert, s->table, strlen(s->table));
        sy_buf_add(&s->insert, " (", 2);
        column_list(s, t, &s->insert);
        sy_buf_add(&s->insert, ") VALUES ", 9);
    } else {
        sy_buf_add(&s->insert, ", ", 2);
    }
    sy_buf_add(&s->insert, "(", 1);
    for (int c = 1; c <= n; c++) {
        if (c > 1)
            sy_buf_add(&s->insert, ", ", 2);
        sy_tds_literal(&s->insert, &s->vals[c - 1]);
    }
    sy_buf_add(&s->insert, ")", 1);
    /* where the next chunk starts: after this row's key, (k1, k2, ...) > (v1, v2, ...) spelled out */
    sy_buf_reset(&s->last_key);
    for (size_t k = 0; k < s->n_keys; k++) {
        sy_buf_add(&s->last_key, k ? " OR (" : "(", k ? 5 : 1);
        for (size_t j = 0; j <= k; j++) {
            if (j)
                sy_buf_add(&s->last_key, " AND ", 5);
            sy_tds_ident(&s->last_key, s->keys[j], strlen(s->keys[j]));
            sy_buf_add(&s->last_key, j == k ? " > " : " = ", 3);
            sy_tds_literal(&s->last_key, &s->vals[s->key_cols[j] - 1]);
        }
        sy_buf_add(&s->last_key, ")", 1);
    }
    s->chunk_rows++;
    return 0;
}

static int copy_table(struct isync *s, const char *table)
{
    struct sy_buf q;
    sy_buf_init(&q);
    uint64_t chunk = (uint64_t)(s->cfg->initial_sync_chunk_rows > 0 ? s->cfg->initial_sync_chunk_rows : 2000);
    bool first = true;
    int rc = 0;
    while (rc == 0 && !stopping(s)) {
        sy_buf_reset(&q);
        sy_buf_reset(&s->insert);
        s->in_stmt = 0;
        s->chunk_rows = 0;
        sy_tds_addf(&q, "SELECT TOP %llu * FROM [dbo].", (unsigned long long)chunk);
        sy_tds_ident(&q, table, strlen(table));
        if (!first) {
            sy_buf_add(&q, " WHERE ", 7);
            sy_buf_add(&q, s->last_key.p, s->last_key.len);
        }
        sy_buf_add(&q, " ORDER BY ", 10);
        for (size_t k = 0; k < s->n_keys; k++) {
            if (k)
                sy_buf_add(&q, ", ", 2);
            sy_tds_ident(&q, s->keys[k], strlen(s->keys[k]));
        }
        first = false;
        enum sy_tds_rc r = sy_tds_query_cols(s->src, sy_tds_sql(&q), on_copy_columns, on_copy_row, s, s->err,
                                             sizeof s->err);
        if ((rc = check(s, r)) != 0)
            break;
        if (s->chunk_rows == 0)
            break;
        flush_insert(s);
        struct sy_buf txn;
        sy_buf_init(&txn);
        sy_tds_addf(&txn, "SET XACT_ABORT ON;\nBEGIN TRANSACTION;\n");
        sy_buf_add(&txn, s->insert.p, s->insert.len);
        sy_tds_addf(&txn, "COMMIT TRANSACTION;");
        if (txn.oom || s->insert.oom || s->last_key.oom)
            rc = failf(s, "out of memory");
        else
            rc = check(s, sy_tds_exec(s->dst, sy_tds_sql(&txn), NULL, 0, NULL, s->err, sizeof s->err));
        sy_buf_fini(&txn);
        s->done += s->chunk_rows;
        sy_module_report_progress(s->ctx->report, s->done, s->total > s->done ? s->total : s->done);
        if (s->chunk_rows < chunk)
            break;
    }
    sy_buf_fini(&q);
    return rc;
}

/* ---- an attempt -------------------------------------------------------------------------------------- */

static int count_rows(struct isync *s, char **tables)
{
    s->total = 0;
    for (size_t i = 0; tables[i] != NULL; i++) {
        struct sy_buf q;
        sy_buf_init(&q);
        sy_tds_addf(&q, "SELECT COUNT(*) FROM [dbo].");
        sy_tds_ident(&q, tables[i], strlen(tables[i]));
        char n[32];
        int rc = check(s, sy_tds_scalar(s->src, sy_tds_sql(&q), n, sizeof n, s->err, sizeof s->err));
        sy_buf_fini(&q);
        if (rc != 0)
            return rc;
        s->total += strtoull(n, NULL, 10);
    }
    return 0;
}

static int record_copy(struct isync *s, bool done, const char *end)
{
    bool created;
    int rc = check(s, sy_tds_ensure_own_table(s->dst, SY_TDS_COPIES,
                                              "instance nvarchar(200) NOT NULL PRIMARY KEY, start_lsn varchar(32) NOT "
                                              "NULL, end_lsn varchar(32) NOT NULL, done int NOT NULL",
                                              &created, s->err, sizeof s->err));
    if (rc != 0)
        return rc;
    struct sy_buf q;
    sy_buf_init(&q);
    sy_tds_addf(&q,
                "BEGIN TRANSACTION; DELETE FROM [%s].[%s] WHERE instance = %s; INSERT INTO [%s].[%s] (instance, "
                "start_lsn, end_lsn, done) VALUES (%s, '%s', '%s', %d);\n",
                SY_TDS_SCHEMA, SY_TDS_COPIES, s->inst_lit, SY_TDS_SCHEMA, SY_TDS_COPIES, s->inst_lit, s->position, end,
                done ? 1 : 0);
    char id[32] = "";
    if (!done) /* a new copy: the writer's checkpoints of an earlier one do not apply */
        rc = check(s, sy_tds_scalar(s->dst, "SELECT OBJECT_ID('" SY_TDS_SCHEMA "." SY_TDS_CHECKPOINT "')", id, sizeof id,
                                    s->err, sizeof s->err));
    if (rc == 0 && id[0] != '\0')
        sy_tds_addf(&q, "DELETE FROM [%s].[%s] WHERE instance = %s;\n", SY_TDS_SCHEMA, SY_TDS_CHECKPOINT, s->inst_lit);
    sy_tds_addf(&q, "COMMIT TRANSACTION;");
    if (rc == 0)
        rc = check(s, sy_tds_exec(s->dst, sy_tds_sql(&q), NULL, 0, NULL, s->err, sizeof s->err));
    sy_buf_fini(&q);
    return rc;
}

/* The end of the copy's overlap: the LSN of a mark committed on the source after the copy, once the
 * capture job has captured it. Every source transaction the copy may show committed before the mark, so
 * its LSN is at or below it; max_lsn alone would miss commits the capture job had not reached yet. The
 * mark is a row of switchyard.initial_sync_mark on the source (CDC-enabled, read by no collector). */
static bool copy_stopping(void *arg)
{
    return stopping(arg);
}

static int copy_end(struct isync *s, char end[SY_LSN_TEXT])
{
    struct sy_lsn at, max;
    char e[sizeof s->err];
    enum sy_tds_rc rc = sy_tds_mark_captured(s->src, s->inst_lit, MARK_WAIT_MS, copy_stopping, s, &at, &max, e, sizeof e);
    if (stopping(s))
        return -1;
    if (rc != SY_TDS_OK) {
        snprintf(s->err, sizeof s->err, "%s:%u: the copy's end mark: %s", s->ctx->source->host, s->ctx->source->port, e);
        return check(s, rc);
    }
    sy_lsn_format(&at, end);
    return 0;
}

static int attempt(struct isync *s)
{
    s->done = s->total = 0;
    s->transient = false;
    if (connect_both(s) != 0)
        return -1;
    bool on = false;
    if (check(s, sy_tds_db_cdc_enabled(s->dst, &on, s->err, sizeof s->err)) != 0)
        return -1;
    if (!on)
        return failf(s, "database %s on %s:%u has no change data capture: enable it first (sys.sp_cdc_enable_db)",
                     s->db, s->ctx->dest->host, s->ctx->dest->port);
    if (check(s, sy_tds_start_position(s->src, s->cfg, s->position, s->err, sizeof s->err)) != 0)
        return -1;
    enum sy_tds_rc rc;
    char **tables = sy_tds_synced_tables(s->src, s->cfg, &rc, s->err, sizeof s->err);
    if (tables == NULL)
        return check(s, rc);
    int out = count_rows(s, tables);
    if (out == 0)
        out = record_copy(s, false, s->position);
    sy_module_report_progress(s->ctx->report, 0, s->total);
    for (size_t i = 0; out == 0 && tables[i] != NULL && !stopping(s); i++) {
        s->table = tables[i];
        sy_tds_strv_free(s->keys);
        s->keys = sy_tds_key_columns(s->src, tables[i], &rc, s->err, sizeof s->err);
        if (s->keys == NULL) {
            out = check(s, rc);
            break;
        }
        for (s->n_keys = 0; s->keys[s->n_keys] != NULL; s->n_keys++)
            ;
        if (s->n_keys == 0) {
            out = failf(s, "table dbo.%s has no primary key", tables[i]);
            break;
        }
        out = create_table(s, tables[i]);
        if (out == 0)
            out = copy_table(s, tables[i]);
        if (out == 0) {
            struct sy_buf q;
            sy_buf_init(&q);
            sy_tds_addf(&q, "EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'%s', @role_name = NULL",
                        tables[i]);
            out = check(s, sy_tds_exec(s->dst, sy_tds_sql(&q), NULL, 0, NULL, s->err, sizeof s->err));
            sy_buf_fini(&q);
        }
        if (out == 0)
            sy_log_info("%s: copied dbo.%s", s->ctx->instance_id, tables[i]);
    }
    sy_tds_strv_free(tables);
    s->table = NULL;
    if (out != 0 || stopping(s))
        return out != 0 ? out : 1;
    char end[SY_LSN_TEXT];
    if (copy_end(s, end) != 0)
        return -1;
    return record_copy(s, true, end);
}

static void close_both(struct isync *s)
{
    sy_module_socket_drop(s->ctx, s->src_watch);
    sy_module_socket_drop(s->ctx, s->dst_watch);
    s->src_watch = s->dst_watch = -1;
    sy_tds_close(s->src);
    sy_tds_close(s->dst);
    s->src = s->dst = NULL;
}

static void *isync_main(void *arg)
{
    struct isync *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->ctx = arg;
    s->cfg = s->ctx->cfg;
    s->src_watch = s->dst_watch = -1;
    sy_buf_init(&s->insert);
    sy_buf_init(&s->scratch);
    sy_buf_init(&s->last_key);
    {
        struct sy_buf b;
        sy_buf_init(&b);
        struct sy_value v = { .type = SY_VAL_STRING, .p = (const uint8_t *)s->ctx->instance_id,
                              .len = strlen(s->ctx->instance_id) };
        sy_tds_literal(&b, &v);
        snprintf(s->inst_lit, sizeof s->inst_lit, "%s", sy_tds_sql(&b));
        sy_buf_fini(&b);
    }
    int backoff_ms = 200;
    if (!sy_tds_pair_database(s->cfg, s->db, sizeof s->db, s->err, sizeof s->err)) {
        sy_module_report_failed(s->ctx->report, "bad_objects", "%s", s->err);
        goto out;
    }
    for (;;) {
        int rc = attempt(s);
        close_both(s);
        if (rc == 0) {
            sy_log_info("%s: initial synchronization copied %llu row(s); collection starts after LSN %s",
                        s->ctx->instance_id, (unsigned long long)s->done, s->position);
            sy_module_report_sync_done(s->ctx->report, s->position);
            break;
        }
        if (rc == 1 || stopping(s))
            break;
        if (!s->transient) {
            sy_module_report_failed(s->ctx->report, "initial_sync_failed", "%s", s->err);
            break;
        }
        sy_module_report_retrying(s->ctx->report, "unreachable", "%s (the copy starts again)", s->err);
        for (int waited = 0; waited < backoff_ms && !stopping(s); waited += 50)
            usleep(50 * 1000);
        if (backoff_ms < 2000)
            backoff_ms *= 2;
        if (stopping(s))
            break;
        sy_module_report_running(s->ctx->report);
    }
out:
    sy_tds_strv_free(s->keys);
    free(s->key_cols);
    free(s->vals);
    sy_buf_fini(&s->insert);
    sy_buf_fini(&s->scratch);
    sy_buf_fini(&s->last_key);
    free(s);
    return NULL;
}

const struct sy_module_ops sy_sqlserver_initial_sync = { "initial_sync", isync_main };
