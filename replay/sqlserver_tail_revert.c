/* Reverting an unreplicated tail (capture/sqlserver_tail.c) on the business SQL Server: for every key a tail
 * row touched (an update's old key too), the business row is made what DR holds now — deleted by key, then
 * DR's row inserted when DR has one — so business equals DR on those keys before the reverse writer applies
 * DR's changes to it (`resolve-tail PAIR --discard`, or --export first). DR is the truth after a failover,
 * and DR may have changed those keys since, which replaying before images would miss. Up to 200 keys per
 * business transaction (IDENTITY_INSERT on for tables with an identity column). Then a mark is written and
 * waited for (engine/sqlserver_cdc.h), so the position the forward collection restarts from lies past the
 * revert's own commits: they are never sent to DR. Blocking: a worker thread.
 *
 * Refused with nothing changed: a malformed tail, a table not synchronized or without a primary key, a key
 * value of an unknown encoding. result: {"reverted_transactions": N, "reverted_rows": M, "keys": K,
 * "keys_on_dr": D} (keys on DR: restored rows; the others deleted). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/change.h"
#include "engine/sqlserver_cdc.h"
#include "replay/sqlserver_modules.h"

#define KEYS_PER_TXN 200
#define REVERT_MARK_WAIT_MS 30000

/* [col] = literal AND ... for a key object; false on an encoding it does not know. */
static bool key_where(struct sy_buf *b, const json_t *key)
{
    const char *col;
    json_t *v;
    bool first = true;
    json_object_foreach((json_t *)key, col, v) {
        sy_tds_addf(b, "%s", first ? "" : " AND ");
        first = false;
        sy_tds_ident(b, col, strlen(col));
        if (json_is_integer(v)) {
            sy_tds_addf(b, " = %" JSON_INTEGER_FORMAT, json_integer_value(v));
        } else if (json_is_real(v)) {
            sy_tds_addf(b, " = %.17g", json_real_value(v));
        } else if (json_is_string(v)) {
            struct sy_value s = { .type = SY_VAL_STRING, .p = (const uint8_t *)json_string_value(v),
                                  .len = json_string_length(v) };
            sy_tds_addf(b, " = ");
            sy_tds_literal(b, &s);
        } else if (json_is_object(v) && json_is_string(json_object_get(v, "hex"))) {
            const char *h = json_string_value(json_object_get(v, "hex"));
            for (const char *c = h; *c; c++)
                if (!strchr("0123456789abcdefABCDEF", *c))
                    return false;
            sy_tds_addf(b, " = 0x%s", h);
        } else if (json_is_null(v)) {
            sy_tds_addf(b, " IS NULL");
        } else {
            return false;
        }
    }
    return !first;
}

struct dr_row {
    struct sy_buf *cols, *vals;
    bool found;
    char err[300];
};

static int on_dr_row(void *arg, struct sy_tds *t)
{
    struct dr_row *r = arg;
    if (r->found)
        return 0;
    r->found = true;
    for (int c = 1; c <= sy_tds_ncols(t); c++) {
        struct sy_value v;
        struct sy_buf scratch;
        sy_buf_init(&scratch);
        if (!sy_tds_col_value(t, c, &v, &scratch, r->err, sizeof r->err)) {
            sy_buf_fini(&scratch);
            return 1;
        }
        sy_tds_values_fix(&v, 1, &scratch);
        const char *name = sy_tds_col_name(t, c);
        sy_tds_addf(r->cols, "%s", c > 1 ? ", " : "");
        sy_tds_ident(r->cols, name, strlen(name));
        sy_tds_addf(r->vals, "%s", c > 1 ? ", " : "");
        sy_tds_literal(r->vals, &v);
        sy_buf_fini(&scratch);
    }
    return 0;
}

struct key_ref {
    const char *table;   /* the table name alone (after "db.") */
    const json_t *key;
};

/* The distinct (table, key) pairs of the tail; -1 with err on a malformed tail. */
static int collect_keys(const struct sy_pair_cfg *cfg, const json_t *tail, struct key_ref **out, size_t *n,
                        json_int_t *txns, json_int_t *rows, char *err, size_t errlen)
{
    size_t i, k, cap = 0;
    json_t *txn, *row;
    *out = NULL;
    *n = 0;
    *txns = *rows = 0;
    if (!json_is_array(json_object_get(tail, "transactions"))) {
        snprintf(err, errlen, "the tail has no transactions list");
        return -1;
    }
    json_array_foreach(json_object_get(tail, "transactions"), i, txn) {
        (*txns)++;
        json_array_foreach(json_object_get(txn, "rows"), k, row) {
            (*rows)++;
            const char *table = json_string_value(json_object_get(row, "table"));
            const char *dot = table ? strchr(table, '.') : NULL;
            if (dot == NULL || !sy_tds_table_synced(cfg, "dbo", dot + 1)) {
                snprintf(err, errlen, "tail row of table %s: not a synchronized table", table ? table : "?");
                return -1;
            }
            const json_t *keys[2] = { json_object_get(row, "key"), json_object_get(row, "old_key") };
            for (int j = 0; j < 2; j++) {
                if (keys[j] == NULL && j == 1)
                    continue;
                if (!json_is_object(keys[j]) || json_object_size(keys[j]) == 0) {
                    snprintf(err, errlen, "tail row of table %s without its key (a table needs a primary key)", table);
                    return -1;
                }
                bool dup = false;
                for (size_t m = 0; m < *n && !dup; m++)
                    dup = strcmp((*out)[m].table, dot + 1) == 0 && json_equal((*out)[m].key, keys[j]);
                if (dup)
                    continue;
                if (*n == cap) {
                    cap = cap ? cap * 2 : 64;
                    struct key_ref *v = realloc(*out, cap * sizeof *v);
                    if (v == NULL) {
                        snprintf(err, errlen, "out of memory");
                        return -1;
                    }
                    *out = v;
                }
                (*out)[(*n)++] = (struct key_ref){ dot + 1, keys[j] };
            }
        }
    }
    return 0;
}

int sy_sqlserver_tail_revert(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, const json_t *tail,
                             json_t *result, char *err, size_t errlen)
{
    char db[80];
    enum sy_tds_rc rc;
    struct key_ref *keys = NULL;
    size_t n = 0, on_dr = 0;
    json_int_t txns = 0, rows = 0;
    if (!sy_tds_pair_database(cfg, db, sizeof db, err, errlen) ||
        collect_keys(cfg, tail, &keys, &n, &txns, &rows, err, errlen) != 0) {
        free(keys);
        return -1;
    }
    struct sy_buf where, q, cols, vals;
    sy_buf_init(&where);
    sy_buf_init(&q);
    sy_buf_init(&cols);
    sy_buf_init(&vals);
    for (size_t i = 0; i < n; i++) {
        sy_buf_reset(&where);
        if (!key_where(&where, keys[i].key)) {
            snprintf(err, errlen, "tail key of table %s: a value of unknown encoding", keys[i].table);
            free(keys);
            sy_buf_fini(&where);
            return -1;
        }
    }
    struct sy_tds *dr = sy_tds_connect(cfg, &cfg->dr, db, err, errlen, &rc);
    struct sy_tds *b = dr ? sy_tds_connect(cfg, ep, db, err, errlen, &rc) : NULL;
    int ret = -1;
    if (b == NULL)
        goto out;
    for (size_t i = 0; i < n; i += KEYS_PER_TXN) {
        sy_buf_reset(&q);
        sy_tds_addf(&q, "SET XACT_ABORT ON; BEGIN TRANSACTION;\n");
        for (size_t k = i; k < n && k < i + KEYS_PER_TXN; k++) {
            sy_buf_reset(&where);
            key_where(&where, keys[k].key);
            sy_buf_reset(&cols);
            sy_buf_reset(&vals);
            struct sy_buf sel;
            sy_buf_init(&sel);
            sy_tds_addf(&sel, "SELECT * FROM [dbo].");
            sy_tds_ident(&sel, keys[k].table, strlen(keys[k].table));
            sy_tds_addf(&sel, " WHERE %s", sy_tds_sql(&where));
            struct dr_row r = { .cols = &cols, .vals = &vals };
            rc = sy_tds_query(dr, sy_tds_sql(&sel), on_dr_row, &r, err, errlen);
            sy_buf_fini(&sel);
            if (rc == SY_TDS_OK && r.err[0] != '\0') {
                snprintf(err, errlen, "reading table %s on DR: %s", keys[k].table, r.err);
                rc = SY_TDS_REFUSED;
            }
            if (rc != SY_TDS_OK)
                goto out;
            char identity[8] = "";
            struct sy_buf iq;
            sy_buf_init(&iq);
            sy_tds_addf(&iq, "SELECT COUNT(*) FROM sys.columns WHERE object_id = OBJECT_ID(N'dbo.%s') AND is_identity = 1",
                        keys[k].table);
            rc = r.found ? sy_tds_scalar(b, sy_tds_sql(&iq), identity, sizeof identity, err, errlen) : SY_TDS_OK;
            sy_buf_fini(&iq);
            if (rc != SY_TDS_OK)
                goto out;
            sy_tds_addf(&q, "DELETE FROM [dbo].");
            sy_tds_ident(&q, keys[k].table, strlen(keys[k].table));
            sy_tds_addf(&q, " WHERE %s;\n", sy_tds_sql(&where));
            if (!r.found)
                continue;
            on_dr++;
            bool id_on = identity[0] != '\0' && strcmp(identity, "0") != 0;
            if (id_on) {
                sy_tds_addf(&q, "SET IDENTITY_INSERT [dbo].");
                sy_tds_ident(&q, keys[k].table, strlen(keys[k].table));
                sy_tds_addf(&q, " ON;\n");
            }
            sy_tds_addf(&q, "INSERT INTO [dbo].");
            sy_tds_ident(&q, keys[k].table, strlen(keys[k].table));
            sy_tds_addf(&q, " (%s) VALUES (%s);\n", sy_tds_sql(&cols), sy_tds_sql(&vals));
            if (id_on) {
                sy_tds_addf(&q, "SET IDENTITY_INSERT [dbo].");
                sy_tds_ident(&q, keys[k].table, strlen(keys[k].table));
                sy_tds_addf(&q, " OFF;\n");
            }
        }
        sy_tds_addf(&q, "COMMIT TRANSACTION;");
        if (sy_tds_exec(b, sy_tds_sql(&q), NULL, 0, NULL, err, errlen) != SY_TDS_OK)
            goto out;
    }
    struct sy_lsn at, max;
    if (sy_tds_mark_captured(b, "N'tail'", REVERT_MARK_WAIT_MS, NULL, NULL, &at, &max, err, errlen) != SY_TDS_OK)
        goto out;
    ret = 0;
out:
    json_object_set_new(result, "reverted_transactions", json_integer(ret == 0 ? txns : 0));
    json_object_set_new(result, "reverted_rows", json_integer(ret == 0 ? rows : 0));
    json_object_set_new(result, "keys", json_integer((json_int_t)n));
    json_object_set_new(result, "keys_on_dr", json_integer((json_int_t)on_dr));
    sy_tds_close(b);
    sy_tds_close(dr);
    free(keys);
    sy_buf_fini(&where);
    sy_buf_fini(&q);
    sy_buf_fini(&cols);
    sy_buf_fini(&vals);
    return ret;
}
