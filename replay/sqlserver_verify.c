/* Data verification for SQL Server (replay/sqlserver_verify.h). Neither side gives a snapshot shared with
 * the other, so verify compares in steps:
 *  1. business's CDC position is read and the forward writer must apply it;
 *  2. per table, chunks of initial_sync_chunk_rows business rows in key order: business's chunk is read with
 *     `TOP n ... WHERE key > from ORDER BY key` (its last key is the chunk's `to`), DR's with `key > from
 *     AND key <= to` (the last chunk unbounded); each side's rows are counted and hashed (FNV-1a 64 over
 *     every value as a T-SQL literal, in key order);
 *  3. a chunk whose counts or hashes differ is read again on both sides once the writer has applied a
 *     position read after a pause (writes still flowing make a chunk differ for a moment); one that still
 *     differs is `confirmed`.
 * Reads only; never logs row data. */
#include "replay/sqlserver_verify.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/change.h"
#include "core/comma_list.h"
#include "core/instance.h"
#include "core/log.h"
#include "engine/sqlserver_cdc.h"
#include "engine/sqlserver_client.h"

#define WAIT_MS 30000
#define MAX_LISTED 100

struct verify {
    const struct sy_pair_cfg *cfg;
    bool (*reached)(void *arg, const char *pos, int ms);
    void *arg;
    char db[80];
    const struct sy_module_ctx *watch; /* ref: where the connections' sockets are published */
    struct sy_tds *src, *dst;
    int src_slot, dst_slot;            /* their watch slots (-1: none) */
    char err[1024];
};

struct scan {                 /* one side's chunk */
    const char *table;
    char **keys;              /* ref */
    size_t n_keys;
    int *key_cols;            /* owned */
    struct sy_value *vals;    /* owned */
    size_t cap_vals;
    struct sy_buf scratch, lits, last_after, last_upto;
    uint64_t rows, hash;
    char err[512];
};

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

/* "(k1 > v1) OR (k1 = v1 AND k2 > v2)" (after) or the same with < plus the equal row (up to). */
static void key_cond(struct sy_buf *b, char **keys, size_t n_keys, const struct sy_value *v, const int *cols, bool after)
{
    sy_buf_add(b, "(", 1);
    for (size_t k = 0; k <= n_keys; k++) {
        if (k == n_keys && after)
            break;
        if (k)
            sy_buf_add(b, " OR ", 4);
        sy_buf_add(b, "(", 1);
        size_t upto = k == n_keys ? n_keys : k + 1;
        for (size_t j = 0; j < upto; j++) {
            if (j)
                sy_buf_add(b, " AND ", 5);
            sy_tds_ident(b, keys[j], strlen(keys[j]));
            sy_buf_add(b, j == k ? (after ? " > " : " < ") : " = ", 3);
            sy_tds_literal(b, &v[cols[j] - 1]);
        }
        sy_buf_add(b, ")", 1);
    }
    sy_buf_add(b, ")", 1);
}

static int on_cols(void *arg, struct sy_tds *t)
{
    struct scan *s = arg;
    size_t n = (size_t)sy_tds_ncols(t);
    if (n > s->cap_vals) {
        free(s->vals);
        if ((s->vals = calloc(n, sizeof *s->vals)) == NULL)
            return 1;
        s->cap_vals = n;
    }
    free(s->key_cols);
    if ((s->key_cols = calloc(s->n_keys ? s->n_keys : 1, sizeof *s->key_cols)) == NULL)
        return 1;
    for (size_t k = 0; k < s->n_keys; k++)
        for (size_t c = 1; c <= n; c++)
            if (strcasecmp(sy_tds_col_name(t, (int)c), s->keys[k]) == 0)
                s->key_cols[k] = (int)c;
    for (size_t k = 0; k < s->n_keys; k++)
        if (s->key_cols[k] == 0) {
            snprintf(s->err, sizeof s->err, "dbo.%s: key column %s is not in the result", s->table, s->keys[k]);
            return 1;
        }
    return 0;
}

static int on_row(void *arg, struct sy_tds *t)
{
    struct scan *s = arg;
    int n = sy_tds_ncols(t);
    sy_buf_reset(&s->scratch);
    for (int c = 1; c <= n; c++)
        if (!sy_tds_col_value(t, c, &s->vals[c - 1], &s->scratch, s->err, sizeof s->err))
            return 1;
    sy_tds_values_fix(s->vals, (size_t)n, &s->scratch);
    sy_buf_reset(&s->lits);
    for (int c = 1; c <= n; c++) {
        sy_tds_literal(&s->lits, &s->vals[c - 1]);
        sy_buf_add(&s->lits, "\x1f", 1);
    }
    s->hash = fnv(s->lits.p, s->lits.len, s->hash);
    s->rows++;
    sy_buf_reset(&s->last_after);
    key_cond(&s->last_after, s->keys, s->n_keys, s->vals, s->key_cols, true);
    sy_buf_reset(&s->last_upto);
    key_cond(&s->last_upto, s->keys, s->n_keys, s->vals, s->key_cols, false);
    return 0;
}

/* One side's chunk: rows after `after` ("" = from the start), up to `upto` ("" = no end), at most top
 * rows (0 = all). 0 or -1 (v->err). */
static int scan_side(struct verify *v, struct sy_tds *t, const char *side, struct scan *s, const char *after,
                     const char *upto, uint64_t top)
{
    struct sy_buf q;
    sy_buf_init(&q);
    s->rows = 0;
    s->hash = 0xcbf29ce484222325ULL;
    if (top)
        sy_tds_addf(&q, "SELECT TOP %llu * FROM [dbo].", (unsigned long long)top);
    else
        sy_tds_addf(&q, "SELECT * FROM [dbo].");
    sy_tds_ident(&q, s->table, strlen(s->table));
    if (after[0] || upto[0])
        sy_tds_addf(&q, " WHERE %s%s%s", after[0] ? after : "", after[0] && upto[0] ? " AND " : "", upto);
    sy_buf_add(&q, " ORDER BY ", 10);
    for (size_t k = 0; k < s->n_keys; k++) {
        if (k)
            sy_buf_add(&q, ", ", 2);
        sy_tds_ident(&q, s->keys[k], strlen(s->keys[k]));
    }
    char err[1024];
    s->err[0] = '\0';
    enum sy_tds_rc rc = sy_tds_query_cols(t, sy_tds_sql(&q), on_cols, on_row, s, err, sizeof err);
    sy_buf_fini(&q);
    if (rc != SY_TDS_OK) {
        snprintf(v->err, sizeof v->err, "%s dbo.%s: %s", side, s->table, s->err[0] ? s->err : err);
        return -1;
    }
    return 0;
}

static bool wait_writer(struct verify *v)
{
    char pos[SY_LSN_TEXT], err[512];
    if (sy_tds_start_position(v->src, v->cfg, pos, err, sizeof err) != SY_TDS_OK)
        return false;
    return v->reached == NULL || v->reached(v->arg, pos, WAIT_MS);
}

static void scan_init(struct scan *s, const char *table, char **keys)
{
    memset(s, 0, sizeof *s);
    s->table = table;
    s->keys = keys;
    while (keys[s->n_keys] != NULL)
        s->n_keys++;
    sy_buf_init(&s->scratch);
    sy_buf_init(&s->lits);
    sy_buf_init(&s->last_after);
    sy_buf_init(&s->last_upto);
}

static void scan_fini(struct scan *s)
{
    free(s->key_cols);
    free(s->vals);
    sy_buf_fini(&s->scratch);
    sy_buf_fini(&s->lits);
    sy_buf_fini(&s->last_after);
    sy_buf_fini(&s->last_upto);
}

static int verify_table(struct verify *v, const char *table, bool caught_up, json_t *tables, bool *clean)
{
    enum sy_tds_rc trc;
    char **keys = sy_tds_key_columns(v->src, table, &trc, v->err, sizeof v->err);
    if (keys == NULL)
        return -1;
    json_t *o = json_pack("{s:s++}", "table", v->db, ".", table);
    char id[32], q[300];
    snprintf(q, sizeof q, "SELECT OBJECT_ID('dbo.%s')", table);
    if (sy_tds_scalar(v->dst, q, id, sizeof id, v->err, sizeof v->err) != SY_TDS_OK) {
        sy_tds_strv_free(keys);
        json_decref(o);
        return -1;
    }
    if (id[0] == '\0' || keys[0] == NULL) {
        json_object_set_new(o, "status", json_string(id[0] == '\0' ? "missing_on_dr" : "error"));
        if (keys[0] == NULL)
            json_object_set_new(o, "detail", json_string("no primary key"));
        json_array_append_new(tables, o);
        *clean = false;
        sy_tds_strv_free(keys);
        return 0;
    }
    struct scan b, d;
    scan_init(&b, table, keys);
    scan_init(&d, table, keys);
    struct sy_buf after, upto;
    sy_buf_init(&after);
    sy_buf_init(&upto);
    uint64_t brows = 0, drows = 0, chunks = 0;
    uint64_t chunk = (uint64_t)(v->cfg->initial_sync_chunk_rows > 0 ? v->cfg->initial_sync_chunk_rows : 2000);
    json_t *mism = json_array();
    bool confirmed_any = false, unconfirmed_any = false;
    int rc = 0;
    for (bool last = false; !last && rc == 0;) {
        rc = scan_side(v, v->src, "business", &b, sy_tds_sql(&after), "", chunk);
        if (rc != 0)
            break;
        last = b.rows < chunk;
        sy_buf_reset(&upto);
        if (!last)
            sy_buf_add(&upto, b.last_upto.p, b.last_upto.len);
        rc = scan_side(v, v->dst, "dr", &d, sy_tds_sql(&after), sy_tds_sql(&upto), 0);
        if (rc != 0)
            break;
        chunks++;
        uint64_t bn = b.rows, dn = d.rows;
        if (b.rows != d.rows || b.hash != d.hash) {
            /* read again once the writer applied what business has now */
            usleep(500 * 1000);
            bool now = wait_writer(v);
            rc = scan_side(v, v->src, "business", &b, sy_tds_sql(&after), sy_tds_sql(&upto), 0);
            if (rc == 0)
                rc = scan_side(v, v->dst, "dr", &d, sy_tds_sql(&after), sy_tds_sql(&upto), 0);
            if (rc != 0)
                break;
            bn = b.rows;
            dn = d.rows;
            if (b.rows != d.rows || b.hash != d.hash) {
                bool confirmed = now && caught_up;
                confirmed_any = confirmed_any || confirmed;
                unconfirmed_any = unconfirmed_any || !confirmed;
                if (json_array_size(mism) < MAX_LISTED)
                    json_array_append_new(mism, json_pack("{s:o,s:o,s:I,s:I,s:b}", "from",
                                                          after.len ? json_string(sy_tds_sql(&after)) : json_null(),
                                                          "to", upto.len ? json_string(sy_tds_sql(&upto)) : json_null(),
                                                          "business_rows", (json_int_t)b.rows, "dr_rows",
                                                          (json_int_t)d.rows, "confirmed", confirmed));
            }
        }
        brows += bn;
        drows += dn;
        /* the next chunk starts after business's last key of this one */
        if (!last) {
            sy_buf_reset(&after);
            sy_buf_add(&after, b.last_after.p, b.last_after.len);
        }
        if (!last && b.rows == 0)
            last = true;
    }
    sy_buf_fini(&after);
    sy_buf_fini(&upto);
    scan_fini(&b);
    scan_fini(&d);
    sy_tds_strv_free(keys);
    if (rc != 0) {
        json_decref(mism);
        json_decref(o);
        return -1;
    }
    const char *status = json_array_size(mism) == 0 ? "ok" : confirmed_any || !unconfirmed_any ? "mismatch"
                                                                                                 : "not_caught_up";
    if (json_array_size(mism) != 0)
        *clean = false;
    json_object_set_new(o, "status", json_string(status));
    json_object_set_new(o, "business_rows", json_integer((json_int_t)brows));
    json_object_set_new(o, "dr_rows", json_integer((json_int_t)drows));
    json_object_set_new(o, "chunks", json_integer((json_int_t)chunks));
    json_object_set_new(o, "mismatches", mism);
    json_array_append_new(tables, o);
    return 0;
}

static int run(struct verify *v, const char *filter, json_t *result)
{
    enum sy_tds_rc rc;
    char err[1024];
    if ((v->src = sy_tds_connect(v->cfg, &v->cfg->business, v->db, err, sizeof err, &rc)) == NULL) {
        snprintf(v->err, sizeof v->err, "%s", err);
        return -1;
    }
    v->src_slot = sy_module_socket_watch(v->watch, sy_tds_fd(v->src)); /* a stop may cut it */
    if ((v->dst = sy_tds_connect(v->cfg, &v->cfg->dr, v->db, err, sizeof err, &rc)) == NULL) {
        snprintf(v->err, sizeof v->err, "%s", err);
        return -1;
    }
    v->dst_slot = sy_module_socket_watch(v->watch, sy_tds_fd(v->dst));
    char **all = sy_tds_synced_tables(v->src, v->cfg, &rc, v->err, sizeof v->err);
    if (all == NULL)
        return -1;
    size_t n = 0;
    for (size_t i = 0; all[i] != NULL; i++) {
        if (filter == NULL || sy_objects_filter_match(filter, v->db, all[i]))
            all[n++] = all[i];
        else
            free(all[i]);
    }
    all[n] = NULL;
    if (n == 0 && filter != NULL) {
        sy_tds_strv_free(all);
        snprintf(v->err, sizeof v->err, "no synchronized table matches --objects '%s'", filter);
        return -2;
    }
    bool caught_up = wait_writer(v);
    json_t *tables = json_array();
    bool clean = true;
    int out = 0;
    for (size_t i = 0; i < n && out == 0; i++)
        out = verify_table(v, all[i], caught_up, tables, &clean);
    sy_tds_strv_free(all);
    if (out != 0) {
        json_decref(tables);
        return -1;
    }
    json_object_set_new(result, "pair", json_string(v->cfg->name));
    json_object_set_new(result, "clean", json_boolean(clean));
    json_object_set_new(result, "tables", tables);
    return 0;
}

int sy_sqlserver_verify(const struct sy_pair_cfg *cfg, const struct sy_module_ctx *watch,
                        const char *objects_filter,
                        bool (*write_reached)(void *arg, const char *position, int timeout_ms), void *arg,
                        json_t *result, char *err, size_t errlen)
{
    struct verify v = { .cfg = cfg, .watch = watch, .src_slot = -1, .dst_slot = -1, .reached = write_reached,
                        .arg = arg };
    if (!sy_tds_pair_database(cfg, v.db, sizeof v.db, err, errlen))
        return -2;
    int rc = run(&v, objects_filter, result);
    if (rc != 0)
        snprintf(err, errlen, "%s", v.err);
    sy_module_socket_drop(watch, v.src_slot);
    sy_module_socket_drop(watch, v.dst_slot);
    sy_tds_close(v.src);
    sy_tds_close(v.dst);
    return rc;
}
