/* The unreplicated tail of a SQL Server source (ARCHITECTURE.md, "Failover"): after a failover to DR, the
 * business transactions after the LSN the forward collector spooled last, read from CDC
 * (cdc.fn_cdc_get_all_changes_<ci>(from, max, N'all update old') of every synchronized capture instance, up to
 * sys.fn_cdc_get_max_lsn() at the start: the fence that precedes the read waited for the capture job to
 * capture a mark written after the last commit). Transactions holding a switchyard.echo change (Switchyard's
 * own writers) are left out, as the collector leaves them out. Blocking: a worker thread.
 *
 *   {"from": "<lsn>", "to": "<lsn>",
 *    "transactions": [{"position": "<lsn>", "lsn": "<lsn>", "tables": ["db.t"],
 *                      "rows": [{"table": "db.t", "op": "insert"|"update"|"delete",
 *                                "key": {COLUMN: VALUE} (after image; delete: before),
 *                                "old_key": {...} (update whose key changed),
 *                                "before": {...} | null, "after": {...} | null}]}],
 *    "tables": ["db.t"], "rows": N}
 * VALUE: null, JSON integer (integer types, bit), JSON real (float, real), JSON string (strings, decimal and
 * money as text, date/time types as "YYYY-MM-DD hh:mm:ss.fffffff"), {"hex": "..."} (binary types). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/sqlserver_modules.h"
#include "core/change.h"
#include "core/grow.h"
#include "engine/sqlserver_cdc.h"

#define META_COLS 4 /* __$start_lsn, __$seqval, __$operation, __$update_mask */

struct entry {
    struct sy_tds_cdc_key k; /* op: 1 delete, 2 insert, 3 update before, 4 update after; table: index into
                              * the read's table names */
    json_t *image;        /* owned: {column: value} */
};

struct read {
    const struct sy_pair_cfg *cfg;
    char db[80];
    char **tables;        /* "db.table" per capture instance read (ref into names) */
    char **keys;          /* the current instance's key columns */
    size_t table;
    bool echo;            /* reading switchyard.echo: only LSNs are kept */
    struct entry *v;
    size_t n, cap;
    struct sy_lsn *echo_lsns;
    size_t n_echo, cap_echo;
    bool oom;
    char err[300];
};

json_t *sy_sqlserver_value_json(const struct sy_value *v)
{
    static const char hexd[] = "0123456789abcdef";
    switch (v->type) {
    case SY_VAL_NULL:
        return json_null();
    case SY_VAL_INT:
        return json_integer(v->i);
    case SY_VAL_UINT:
        return json_integer((json_int_t)v->u);
    case SY_VAL_FLOAT:
    case SY_VAL_DOUBLE:
        return json_real(v->d);
    case SY_VAL_BLOB: {
        char *h = malloc(v->len * 2 + 1);
        if (h == NULL)
            return NULL;
        for (size_t i = 0; i < v->len; i++) {
            h[2 * i] = hexd[v->p[i] >> 4];
            h[2 * i + 1] = hexd[v->p[i] & 15];
        }
        h[v->len * 2] = '\0';
        json_t *j = json_pack("{s:s}", "hex", h);
        free(h);
        return j;
    }
    default:
        return json_stringn((const char *)v->p, v->len);
    }
}

static int on_row(void *arg, struct sy_tds *t)
{
    struct read *r = arg;
    size_t len;
    const uint8_t *p = sy_tds_col_bytes(t, 1, &len);
    struct sy_lsn lsn;
    if (!sy_lsn_from_bytes(p, len, &lsn)) {
        snprintf(r->err, sizeof r->err, "a change row without its __$start_lsn");
        return 1;
    }
    if (r->echo) {
        if (sy_grow((void **)&r->echo_lsns, &r->cap_echo, r->n_echo + 1, sizeof *r->echo_lsns, 64) != 0)
            goto oom;
        r->echo_lsns[r->n_echo++] = lsn;
        return 0;
    }
    if (sy_grow((void **)&r->v, &r->cap, r->n + 1, sizeof *r->v, 64) != 0)
        goto oom;
    struct entry *e = &r->v[r->n];
    memset(e, 0, sizeof *e);
    e->k.lsn = lsn;
    p = sy_tds_col_bytes(t, 2, &len);
    if (p != NULL && len == SY_LSN_BYTES)
        memcpy(e->k.seq, p, len);
    e->k.op = (int)sy_tds_col_int(t, 3);
    e->k.table = (uint32_t)r->table;
    if ((e->image = json_object()) == NULL)
        goto oom;
    r->n++;
    for (int c = META_COLS + 1; c <= sy_tds_ncols(t); c++) {
        struct sy_value v;
        struct sy_buf scratch;
        char why[200];
        sy_buf_init(&scratch);
        bool ok = sy_tds_col_value(t, c, &v, &scratch, why, sizeof why);
        if (ok)
            sy_tds_values_fix(&v, 1, &scratch);
        json_t *j = ok ? sy_sqlserver_value_json(&v) : NULL;
        sy_buf_fini(&scratch);
        if (!ok) {
            snprintf(r->err, sizeof r->err, "%s: %s", r->tables[r->table], why);
            return 1;
        }
        if (j == NULL || json_object_set_new(e->image, sy_tds_col_name(t, c), j) != 0)
            goto oom;
    }
    return 0;
oom:
    r->oom = true;
    snprintf(r->err, sizeof r->err, "out of memory");
    return 1;
}

/* CDC's order, as the collector's (engine/sqlserver_cdc.h). */
static int entry_cmp(const void *a, const void *b)
{
    return sy_tds_cdc_order_cmp(&((const struct entry *)a)->k, &((const struct entry *)b)->k);
}

static json_t *key_of(const json_t *image, char **keys)
{
    json_t *k = json_object();
    for (size_t i = 0; keys[i] != NULL; i++)
        json_object_set(k, keys[i], json_object_get(image, keys[i]) ?: json_null());
    return k;
}

static int lsn_cmp(const void *a, const void *b)
{
    return sy_lsn_cmp(a, b);
}

/* r->echo_lsns sorted (build): a binary search, so a tail of N rows and E echo transactions costs N log E. */
static bool is_echo(const struct read *r, const struct sy_lsn *lsn)
{
    return r->n_echo > 0 && bsearch(lsn, r->echo_lsns, r->n_echo, sizeof *r->echo_lsns, lsn_cmp) != NULL;
}

/* The sorted entries as transactions into out. keys[i]: the key columns of table i. */
static void build(struct read *r, char ***keys, json_t *out)
{
    json_t *txns = json_array(), *tables = json_array(), *txn = NULL, *ttables = NULL, *rows = NULL;
    json_int_t nrows = 0;
    struct sy_lsn cur;
    memset(&cur, 0xff, sizeof cur);
    if (r->n > 1)
        qsort(r->v, r->n, sizeof *r->v, entry_cmp);          /* r->v is NULL when the tail is empty */
    if (r->n_echo > 1)
        qsort(r->echo_lsns, r->n_echo, sizeof *r->echo_lsns, lsn_cmp);
    for (size_t i = 0; i < r->n; i++) {
        struct entry *e = &r->v[i];
        if (is_echo(r, &e->k.lsn))
            continue;
        if (txn == NULL || sy_lsn_cmp(&cur, &e->k.lsn) != 0) {
            char text[SY_LSN_TEXT];
            sy_lsn_format(&e->k.lsn, text);
            cur = e->k.lsn;
            ttables = json_array();
            rows = json_array();
            txn = json_pack("{s:s,s:s,s:o,s:o}", "position", text, "lsn", text, "tables", ttables, "rows", rows);
            json_array_append_new(txns, txn);
        }
        const char *table = r->tables[e->k.table];
        json_t *row = NULL;
        if (e->k.op == 2) {
            row = json_pack("{s:s,s:s,s:o,s:n,s:O}", "table", table, "op", "insert", "key",
                            key_of(e->image, keys[e->k.table]), "before", "after", e->image);
        } else if (e->k.op == 1) {
            row = json_pack("{s:s,s:s,s:o,s:O,s:n}", "table", table, "op", "delete", "key",
                            key_of(e->image, keys[e->k.table]), "before", e->image, "after");
        } else if (e->k.op == 3 && i + 1 < r->n && r->v[i + 1].k.op == 4 && r->v[i + 1].k.table == e->k.table &&
                   sy_lsn_cmp(&e->k.lsn, &r->v[i + 1].k.lsn) == 0 && memcmp(e->k.seq, r->v[i + 1].k.seq, sizeof e->k.seq) == 0) {
            struct entry *after = &r->v[++i];
            json_t *k = key_of(after->image, keys[e->k.table]), *old = key_of(e->image, keys[e->k.table]);
            row = json_pack("{s:s,s:s,s:o,s:O,s:O}", "table", table, "op", "update", "key", k, "before", e->image,
                            "after", after->image);
            if (row != NULL && !json_equal(k, old))
                json_object_set(row, "old_key", old);
            json_decref(old);
        }
        if (row == NULL)
            continue;
        json_array_append_new(rows, row);
        nrows++;
        bool seen = false;
        size_t k;
        json_t *x;
        json_array_foreach(ttables, k, x) seen = seen || strcmp(json_string_value(x), table) == 0;
        if (!seen)
            json_array_append_new(ttables, json_string(table));
        seen = false;
        json_array_foreach(tables, k, x) seen = seen || strcmp(json_string_value(x), table) == 0;
        if (!seen)
            json_array_append_new(tables, json_string(table));
    }
    json_object_set_new(out, "transactions", txns);
    json_object_set_new(out, "tables", tables);
    json_object_set_new(out, "rows", json_integer(nrows));
}

/* Whether ci's minimum LSN above the collected position means changes after it were lost to CDC cleanup
 * (true, err naming both LSNs, as the collector's position_unavailable does), not that the instance was created
 * after it (its create_date later than the position's commit time). A query failure is true with err too. */
static bool lost_to_cleanup(struct sy_tds *t, const struct sy_tds_ci *ci, const char *from_position,
                            enum sy_tds_rc *rc, char *err, size_t errlen)
{
    char minh[SY_LSN_TEXT], out[16];
    struct sy_buf q;
    sy_buf_init(&q);
    sy_tds_addf(&q, "SELECT COUNT(*) FROM cdc.change_tables WHERE capture_instance = ");
    struct sy_value v = { .type = SY_VAL_STRING, .p = (const uint8_t *)ci->name, .len = strlen(ci->name) };
    sy_tds_literal(&q, &v);
    sy_tds_addf(&q, " AND create_date > sys.fn_cdc_map_lsn_to_time(0x%s)", from_position);
    *rc = sy_tds_scalar(t, sy_tds_sql(&q), out, sizeof out, err, errlen);
    sy_buf_fini(&q);
    if (*rc != SY_TDS_OK)
        return true;
    if (strcmp(out, "0") != 0)
        return false;
    sy_lsn_format(&ci->min, minh);
    snprintf(err, errlen, "capture instance %s no longer reaches back to LSN %s (its minimum LSN is %s): business "
             "changes after the collected position may be lost to CDC cleanup; the tail cannot be read whole",
             ci->name, from_position, minh);
    return true;
}

int sy_sqlserver_tail_read(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, const char *from_position,
                           const char *collector_dir,
                           json_t *out, char *err, size_t errlen)
{
    struct read r = { .cfg = cfg };
    enum sy_tds_rc rc;
    struct sy_lsn from, max;
    if (!sy_tds_pair_database(cfg, r.db, sizeof r.db, err, errlen))
        return -1;
    if (from_position[0] != '\0' && !sy_lsn_parse(from_position, &from)) {
        snprintf(err, errlen, "the collected position %s is not an LSN", from_position);
        return -1;
    }
    struct sy_tds *t = sy_tds_connect(cfg, src, r.db, err, errlen, &rc);
    if (t == NULL)
        return -1;
    struct sy_tds_ci *cis = NULL;
    size_t nci = 0;
    bool enabled = false;
    char ***keys = NULL;
    int ret = -1;
    char fromhex[SY_LSN_TEXT] = "", maxhex[SY_LSN_TEXT], sql[700];
    if (sy_tds_lsn_query(t, "SELECT sys.fn_cdc_get_max_lsn()", &max, err, errlen) != SY_TDS_OK ||
        sy_tds_capture_instances(t, cfg, &cis, &nci, NULL, &enabled, err, errlen) != SY_TDS_OK)
        goto out;
    if (from_position[0] != '\0') {
        sy_lsn_format(&from, fromhex);
        snprintf(sql, sizeof sql, "SELECT sys.fn_cdc_increment_lsn(0x%s)", fromhex);
        if (sy_tds_lsn_query(t, sql, &from, err, errlen) != SY_TDS_OK)
            goto out;
    } else {
        memset(&from, 0, sizeof from);
    }
    sy_lsn_format(&max, maxhex);
    r.tables = calloc(nci + 1, sizeof *r.tables);
    keys = calloc(nci + 1, sizeof *keys);
    if (r.tables == NULL || keys == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    /* echo first: its LSNs mark the transactions left out */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < nci; i++) {
            if (cis[i].echo != (pass == 0))
                continue;
            struct sy_lsn lo = sy_lsn_cmp(&cis[i].min, &from) > 0 ? cis[i].min : from;
            if (sy_lsn_is_zero(&cis[i].min) || sy_lsn_cmp(&lo, &max) > 0)
                continue;
            if (!cis[i].echo && from_position[0] != '\0' && sy_lsn_cmp(&cis[i].min, &from) > 0 &&
                lost_to_cleanup(t, &cis[i], fromhex, &rc, err, errlen))
                goto out;
            char lohex[SY_LSN_TEXT], name[300];
            sy_lsn_format(&lo, lohex);
            snprintf(name, sizeof name, "%s.%s", r.db, cis[i].table);
            if ((r.tables[i] = strdup(name)) == NULL) {
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            if (!cis[i].echo && (keys[i] = sy_tds_key_columns(t, cis[i].table, &rc, err, errlen)) == NULL)
                goto out;
            r.table = i;
            r.echo = cis[i].echo;
            struct sy_buf q;
            sy_buf_init(&q);
            sy_tds_addf(&q, "SELECT * FROM ");
            sy_tds_cdc_fn(&q, "fn_cdc_get_all_changes_", cis[i].name);
            sy_tds_addf(&q, "(0x%s, 0x%s, N'all update old')", lohex, maxhex);
            rc = sy_tds_query(t, sy_tds_sql(&q), on_row, &r, err, errlen);
            sy_buf_fini(&q);
            if (rc == SY_TDS_OK && r.err[0] != '\0') {
                snprintf(err, errlen, "%s", r.err);
                goto out;
            }
            if (rc != SY_TDS_OK)
                goto out;
        }
    json_object_set_new(out, "from", json_string(fromhex));
    json_object_set_new(out, "to", json_string(maxhex));
    build(&r, keys, out);
    ret = 0;
out:
    for (size_t i = 0; i < r.n; i++)
        json_decref(r.v[i].image);
    free(r.v);
    free(r.echo_lsns);
    for (size_t i = 0; i < nci; i++) {
        if (r.tables != NULL)
            free(r.tables[i]);
        if (keys != NULL)
            sy_tds_strv_free(keys[i]);
    }
    free(r.tables);
    free(keys);
    free(cis);
    sy_tds_close(t);
    return ret;
}
