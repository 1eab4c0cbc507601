/* Capture instances and start positions (engine/sqlserver_cdc.h). The catalog is read through
 * cdc.change_tables joined with sys.tables/sys.schemas, which SQL Server and the double both have. */
#include "engine/sqlserver_cdc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/pair.h"

int sy_tds_cdc_order_cmp(const struct sy_tds_cdc_key *a, const struct sy_tds_cdc_key *b)
{
    int d = sy_lsn_cmp(&a->lsn, &b->lsn);
    if (d == 0)
        d = memcmp(a->seq, b->seq, sizeof a->seq);
    if (d == 0)
        d = (a->op > b->op) - (a->op < b->op);
    if (d == 0)
        d = (a->table > b->table) - (a->table < b->table);
    return d;
}

void sy_tds_cdc_fn(struct sy_buf *b, const char *fn, const char *ci)
{
    sy_buf_add(b, "cdc.[", 5);
    for (const char *p = fn; *p; p++) /* fn: our own constant, but quoted the same way */
        sy_buf_add(b, *p == ']' ? "]]" : p, *p == ']' ? 2 : 1);
    for (const char *p = ci; *p; p++)
        sy_buf_add(b, *p == ']' ? "]]" : p, *p == ']' ? 2 : 1);
    sy_buf_add(b, "]", 1);
}

void sy_tds_cdc_ci_literal(struct sy_buf *b, const char *ci)
{
    struct sy_value v = { .type = SY_VAL_STRING, .p = (const uint8_t *)ci, .len = strlen(ci) };
    sy_tds_literal(b, &v);
}

struct ci_list {
    const struct sy_pair_cfg *cfg;
    struct sy_tds_ci *v;
    size_t n, cap;
    bool oom;
};

static int on_ci(void *arg, struct sy_tds *t)
{
    struct ci_list *l = arg;
    struct sy_tds_ci c = { 0 };
    if (!sy_tds_col_text(t, 1, c.name, sizeof c.name) || !sy_tds_col_text(t, 2, c.schema, sizeof c.schema) ||
        !sy_tds_col_text(t, 3, c.table, sizeof c.table))
        return 0;
    c.echo = strcasecmp(c.schema, SY_TDS_SCHEMA) == 0 && strcasecmp(c.table, SY_TDS_ECHO) == 0;
    if (!c.echo && !sy_tds_table_synced(l->cfg, c.schema, c.table))
        return 0;
    for (size_t i = 0; i < l->n; i++)
        if (strcasecmp(l->v[i].schema, c.schema) == 0 && strcasecmp(l->v[i].table, c.table) == 0) {
            char def[270];
            snprintf(def, sizeof def, "%s_%s", c.schema, c.table);
            if (strcasecmp(c.name, def) == 0)
                l->v[i] = c; /* prefer the default-named instance of a table with two */
            return 0;
        }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct sy_tds_ci *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL) {
            l->oom = true;
            return 0;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = c;
    return 0;
}

struct lsn_arg {
    struct sy_lsn *out;
    bool got;
};

static int on_lsn(void *arg, struct sy_tds *t)
{
    struct lsn_arg *a = arg;
    size_t len;
    const uint8_t *p = sy_tds_col_bytes(t, 1, &len);
    if (!a->got && sy_lsn_from_bytes(p, len, a->out))
        a->got = true;
    return 0;
}

enum sy_tds_rc sy_tds_lsn_query(struct sy_tds *t, const char *sql, struct sy_lsn *out, char *err, size_t errlen)
{
    struct lsn_arg a = { out, false };
    memset(out, 0, sizeof *out);
    return sy_tds_query(t, sql, on_lsn, &a, err, errlen);
}

enum sy_tds_rc sy_tds_capture_instances(struct sy_tds *t, const struct sy_pair_cfg *cfg, struct sy_tds_ci **out,
                                        size_t *n, char **missing, bool *db_enabled, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    if (missing)
        *missing = NULL;
    enum sy_tds_rc rc = sy_tds_db_cdc_enabled(t, db_enabled, err, errlen);
    if (rc != SY_TDS_OK)
        return rc;
    struct ci_list l = { .cfg = cfg };
    if (*db_enabled) {
        rc = sy_tds_query(t,
                          "SELECT ct.capture_instance, s.name, tb.name FROM cdc.change_tables ct JOIN sys.tables tb "
                          "ON tb.object_id = ct.source_object_id JOIN sys.schemas s ON s.schema_id = tb.schema_id "
                          "ORDER BY ct.capture_instance",
                          on_ci, &l, err, errlen);
        if (rc == SY_TDS_OK && l.oom) {
            rc = SY_TDS_REFUSED;
            snprintf(err, errlen, "out of memory");
        }
        for (size_t i = 0; rc == SY_TDS_OK && i < l.n; i++) {
            struct sy_buf q;
            sy_buf_init(&q);
            sy_tds_addf(&q, "SELECT sys.fn_cdc_get_min_lsn(");
            sy_tds_cdc_ci_literal(&q, l.v[i].name);
            sy_tds_addf(&q, ")");
            rc = sy_tds_lsn_query(t, sy_tds_sql(&q), &l.v[i].min, err, errlen);
            sy_buf_fini(&q);
        }
    }
    if (rc == SY_TDS_OK && missing != NULL) {
        char **tables = sy_tds_synced_tables(t, cfg, &rc, err, errlen);
        struct sy_buf b;
        sy_buf_init(&b);
        for (size_t i = 0; tables != NULL && tables[i] != NULL; i++) {
            bool have = false;
            for (size_t k = 0; k < l.n && !have; k++)
                have = !l.v[k].echo && strcasecmp(l.v[k].table, tables[i]) == 0;
            if (!have)
                sy_tds_addf(&b, "%sdbo.%s", b.len ? ", " : "", tables[i]);
        }
        sy_tds_strv_free(tables);
        *missing = strdup(sy_tds_sql(&b));
        sy_buf_fini(&b);
    }
    if (rc != SY_TDS_OK) {                  /* the tables' read failed after the list: nothing is returned */
        free(l.v);
        if (missing != NULL) {
            free(*missing);
            *missing = NULL;
        }
        return rc;
    }
    *out = l.v;
    *n = l.n;
    return SY_TDS_OK;
}

enum sy_tds_rc sy_tds_start_position(struct sy_tds *t, const struct sy_pair_cfg *cfg, char out[SY_LSN_TEXT],
                                     char *err, size_t errlen)
{
    struct sy_lsn max;
    enum sy_tds_rc rc = sy_tds_lsn_query(t, "SELECT sys.fn_cdc_get_max_lsn()", &max, err, errlen);
    struct sy_tds_ci *cis = NULL;
    size_t n = 0;
    bool enabled = false;
    if (rc == SY_TDS_OK)
        rc = sy_tds_capture_instances(t, cfg, &cis, &n, NULL, &enabled, err, errlen);
    for (size_t i = 0; rc == SY_TDS_OK && i < n; i++) {
        if (cis[i].echo || sy_lsn_cmp(&cis[i].min, &max) <= 0)
            continue;
        char sql[80], hex[SY_LSN_TEXT];
        sy_lsn_format(&cis[i].min, hex);
        snprintf(sql, sizeof sql, "SELECT sys.fn_cdc_decrement_lsn(0x%s)", hex);
        struct sy_lsn below;
        rc = sy_tds_lsn_query(t, sql, &below, err, errlen);
        if (rc == SY_TDS_OK && sy_lsn_cmp(&below, &max) > 0)
            max = below;
    }
    free(cis);
    if (rc == SY_TDS_OK)
        sy_lsn_format(&max, out);
    return rc;
}

static uint64_t mark_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static enum sy_tds_rc mark_write(struct sy_tds *t, const char *instance_lit, uint64_t n, char *err, size_t errlen)
{
    bool created;
    char ci[200], sql[600];
    enum sy_tds_rc rc = sy_tds_ensure_own_table(t, SY_TDS_MARK, "instance nvarchar(200) NOT NULL PRIMARY KEY, n bigint NOT NULL",
                                                &created, err, errlen);
    if (rc == SY_TDS_OK)
        rc = sy_tds_scalar(t, "SELECT capture_instance FROM cdc.change_tables WHERE capture_instance = '" SY_TDS_MARK_CI "'",
                           ci, sizeof ci, err, errlen);
    if (rc == SY_TDS_OK && ci[0] == '\0')
        rc = sy_tds_exec(t, "EXEC sys.sp_cdc_enable_table @source_schema = N'" SY_TDS_SCHEMA "', @source_name = N'" SY_TDS_MARK
                            "', @role_name = NULL", NULL, 0, NULL, err, errlen);
    if (rc != SY_TDS_OK)
        return rc;
    snprintf(sql, sizeof sql, "BEGIN TRANSACTION; DELETE FROM [%s].[%s] WHERE instance = %s; INSERT INTO [%s].[%s] "
             "(instance, n) VALUES (%s, %llu); COMMIT TRANSACTION;", SY_TDS_SCHEMA, SY_TDS_MARK, instance_lit,
             SY_TDS_SCHEMA, SY_TDS_MARK, instance_lit, (unsigned long long)n);
    return sy_tds_exec(t, sql, NULL, 0, NULL, err, errlen);
}

enum sy_tds_rc sy_tds_mark_captured(struct sy_tds *t, const char *instance_lit, int wait_ms, bool (*stop)(void *arg),
                                    void *arg, struct sy_lsn *at, struct sy_lsn *max, char *err, size_t errlen)
{
    uint64_t n = mark_now_ms();
    enum sy_tds_rc rc = mark_write(t, instance_lit, n, err, errlen);
    if (rc == SY_TDS_OK) {
        /* ask for a log scan now rather than at the capture job's next one (the double's job waits its
         * --cdc-delay). On a SQL Server whose Agent capture job is running, sp_cdc_scan is refused (one log
         * reader per database, as for replication): ignored, the job's polling interval sets the wait there. */
        char e2[300];
        (void)sy_tds_exec(t, "EXEC sys.sp_cdc_scan @maxtrans = 500, @maxscans = 1, @continuous = 0", NULL, 0, NULL, e2,
                          sizeof e2);
    }
    /* a deadline, not a count of sleeps: each round runs two or three queries, which take time of their own */
    uint64_t deadline = sy_now_ms() + (uint64_t)(wait_ms > 0 ? wait_ms : 0);
    while (rc == SY_TDS_OK) {
        struct sy_lsn min;
        rc = sy_tds_lsn_query(t, "SELECT sys.fn_cdc_get_min_lsn('" SY_TDS_MARK_CI "')", &min, err, errlen);
        if (rc == SY_TDS_OK)
            rc = sy_tds_lsn_query(t, "SELECT sys.fn_cdc_get_max_lsn()", max, err, errlen);
        if (rc != SY_TDS_OK)
            break;
        if (sy_lsn_cmp(&min, max) <= 0 && !sy_lsn_is_zero(&min)) {
            char mn[SY_LSN_TEXT], mx[SY_LSN_TEXT];
            sy_lsn_format(&min, mn);
            sy_lsn_format(max, mx);
            struct sy_buf q;
            sy_buf_init(&q);
            sy_tds_addf(&q, "SELECT __$start_lsn FROM ");
            sy_tds_cdc_fn(&q, "fn_cdc_get_all_changes_", SY_TDS_MARK_CI);
            sy_tds_addf(&q, "(0x%s, 0x%s, N'all') WHERE instance = %s AND n = %llu", mn, mx, instance_lit,
                        (unsigned long long)n);
            rc = sy_tds_lsn_query(t, sy_tds_sql(&q), at, err, errlen);
            sy_buf_fini(&q);
            if (rc == SY_TDS_OK && !sy_lsn_is_zero(at))
                return SY_TDS_OK;
        }
        if (rc != SY_TDS_OK)
            break;
        if (sy_now_ms() >= deadline) {
            snprintf(err, errlen, "the capture job did not capture the mark within %d ms: is it running?", wait_ms);
            return SY_TDS_TRANSIENT;
        }
        if (stop != NULL && stop(arg)) {
            snprintf(err, errlen, "stopped");
            return SY_TDS_TRANSIENT;
        }
        usleep(20 * 1000);
    }
    return rc;
}
