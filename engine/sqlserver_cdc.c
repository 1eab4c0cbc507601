/* Capture instances and start positions (engine/sqlserver_cdc.h). The catalog is read through
 * cdc.change_tables joined with sys.tables/sys.schemas, which SQL Server and the double both have. */
#include "engine/sqlserver_cdc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
            char sql[300];
            snprintf(sql, sizeof sql, "SELECT sys.fn_cdc_get_min_lsn('%s')", l.v[i].name);
            rc = sy_tds_lsn_query(t, sql, &l.v[i].min, err, errlen);
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
    if (rc != SY_TDS_OK) {
        free(l.v);
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
