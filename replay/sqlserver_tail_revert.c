/* Reverting an unreplicated tail (capture/sqlserver_tail.c) on the business SQL Server with the tail's own
 * before images, newest row first, as replay/mariadb_tail_revert.c does: an insert's key is deleted, an
 * update's key (and old key) deleted and its before image inserted back, a delete's key deleted and its before
 * image inserted back. Business returns to its state at the failover point, so the reverse writer then applies
 * DR's changes since the failover onto the rows they were made from, without conflicts (copying DR's current
 * rows instead made those changes land on rows that already held them: "INSERT found its row", and
 * on_conflict = fail failed the reverse instance). Every row's statements set the keys they touch to a definite
 * state (delete, then maybe insert), so a revert that stopped half way can be run again.
 *
 * Two passes: the whole tail is checked (shape, synchronized tables with their key, value encodings) and its
 * statements built without changing anything, with the insertable columns of every table (not computed, not
 * rowversion), their types (decimal and date/time text become bare / '...' literals) and whether it has an
 * identity column read from business; then the rows run, up to
 * ROWS_PER_TXN per business transaction (XACT_ABORT on, IDENTITY_INSERT on around an insert into a table with
 * an identity column). Then a mark is written and waited for (engine/sqlserver_cdc.h), so the position the
 * forward collection restarts from lies past the revert's own commits: they are never sent to DR. Blocking: a
 * worker thread.
 *
 * Refused with nothing changed: a malformed tail, a table not synchronized or without a primary key, a value of
 * an unknown encoding, a before image naming a column business does not have. result:
 * {"reverted_transactions": N, "reverted_rows": M}. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/change.h"
#include "core/grow.h"
#include "engine/sqlserver_cdc.h"
#include "engine/sqlserver_fence.h"
#include "replay/sqlserver_modules.h"

#define ROWS_PER_TXN 200
#define REVERT_MARK_WAIT_MS 30000

/* A tail value (capture/sqlserver_tail.c's encoding) as a T-SQL literal for a column of SQL type `type` (its
 * sys.types name): decimal/money text bare, date/time text as '...', other text as N'...'; false on an encoding
 * it does not know. */
static bool value_sql(struct sy_buf *b, const json_t *v, const char *type)
{
    static const char *const numeric[] = { "decimal", "numeric", "money", "smallmoney", NULL };
    static const char *const temporal[] = { "date", "time", "datetime", "datetime2", "smalldatetime", NULL };
    if (json_is_integer(v)) {
        sy_tds_addf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        sy_tds_addf(b, "%.17g", json_real_value(v));
    } else if (json_is_string(v)) {
        struct sy_value s = { .type = SY_VAL_STRING, .p = (const uint8_t *)json_string_value(v),
                              .len = json_string_length(v) };
        for (size_t i = 0; numeric[i] != NULL; i++)
            if (strcmp(type, numeric[i]) == 0) {
                if (s.len == 0 || strspn(json_string_value(v), "0123456789.-+eE") != s.len)
                    return false;
                s.type = SY_VAL_DECIMAL;
            }
        for (size_t i = 0; temporal[i] != NULL; i++)
            if (strcmp(type, temporal[i]) == 0)
                s.type = SY_VAL_TEMPORAL;
        sy_tds_literal(b, &s);
    } else if (json_is_object(v) && json_is_string(json_object_get(v, "hex"))) {
        const char *h = json_string_value(json_object_get(v, "hex"));
        if (strspn(h, "0123456789abcdefABCDEF") != strlen(h))
            return false;
        sy_tds_addf(b, "0x%s", h);
    } else if (json_is_null(v)) {
        sy_tds_addf(b, "NULL");
    } else {
        return false;
    }
    return true;
}

/* A business table's insertable columns and their types. */
struct table {
    char *name;       /* owned: the table name alone (after "db.") */
    char **cols;      /* owned: not computed, not rowversion, by column_id */
    char **types;     /* owned: cols' sys.types names */
    bool identity;
};

struct revert {
    struct sy_tds *b;
    struct table *tables;
    size_t n_tables, cap_tables;
    struct sy_buf *stmts;   /* one per tail row, newest first */
    size_t n_stmts, cap_stmts;
};

/* The columns of dbo.name on business and whether it has an identity column. */
static enum sy_tds_rc read_table(struct sy_tds *b, struct table *tb, char *err, size_t errlen)
{
    enum sy_tds_rc rc;
    struct sy_buf q, obj;
    sy_buf_init(&q);
    sy_buf_init(&obj);
    sy_tds_addf(&obj, "[dbo].");
    sy_tds_ident(&obj, tb->name, strlen(tb->name));
    struct sy_value lit = { .type = SY_VAL_STRING, .p = obj.p, .len = obj.len };
    static const char *const what[] = { "c.name", "ty.name", "COUNT(*)" };
    char n[16] = "";
    for (int i = 0; i < 3; i++) {
        sy_buf_reset(&q);
        sy_tds_addf(&q, "SELECT %s FROM sys.columns c JOIN sys.types ty ON ty.user_type_id = c.user_type_id WHERE "
                    "c.is_computed = 0 AND ty.name NOT IN ('timestamp', 'rowversion') AND c.object_id = OBJECT_ID(",
                    what[i]);
        sy_tds_literal(&q, &lit);
        sy_tds_addf(&q, i < 2 ? ") ORDER BY c.column_id" : ") AND c.is_identity = 1");
        if (i < 2) {
            char ***out = i == 0 ? &tb->cols : &tb->types;
            *out = sy_sqlserver_fence_names(b, sy_tds_sql(&q), &rc, err, errlen);
        } else {
            rc = sy_tds_scalar(b, sy_tds_sql(&q), n, sizeof n, err, errlen);
        }
        if (rc != SY_TDS_OK)
            break;
    }
    tb->identity = n[0] != '\0' && strcmp(n, "0") != 0;
    if (rc == SY_TDS_OK && tb->cols[0] == NULL) {
        snprintf(err, errlen, "table dbo.%s not found on business", tb->name);
        rc = SY_TDS_REFUSED;
    }
    sy_buf_fini(&q);
    sy_buf_fini(&obj);
    return rc;
}

static struct table *table_of(struct revert *rv, const char *name, char *err, size_t errlen)
{
    for (size_t i = 0; i < rv->n_tables; i++)
        if (strcmp(rv->tables[i].name, name) == 0)
            return &rv->tables[i];
    if (sy_grow((void **)&rv->tables, &rv->cap_tables, rv->n_tables + 1, sizeof *rv->tables, 4) != 0 ||
        (rv->tables[rv->n_tables].name = strdup(name)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct table *tb = &rv->tables[rv->n_tables++];
    tb->cols = tb->types = NULL;
    tb->identity = false;
    return read_table(rv->b, tb, err, errlen) == SY_TDS_OK ? tb : NULL;
}

/* col's type in tb ("" when business cannot insert it: computed, rowversion, dropped); NULL when unknown. */
static const char *col_type(const struct table *tb, const char *col)
{
    for (size_t i = 0; tb->cols[i] != NULL && tb->types[i] != NULL; i++)
        if (strcmp(tb->cols[i], col) == 0)
            return tb->types[i];
    return NULL;
}

/* DELETE FROM [dbo].[t] WHERE [k] = v AND ...; false on a key of unknown encoding. */
static bool delete_key(struct sy_buf *b, const struct table *tb, const json_t *key)
{
    const char *col;
    json_t *v;
    bool first = true;
    sy_tds_addf(b, "DELETE FROM [dbo].");
    sy_tds_ident(b, tb->name, strlen(tb->name));
    sy_tds_addf(b, " WHERE ");
    json_object_foreach((json_t *)key, col, v) {
        sy_tds_addf(b, "%s", first ? "" : " AND ");
        first = false;
        sy_tds_ident(b, col, strlen(col));
        if (json_is_null(v)) {
            sy_tds_addf(b, " IS NULL");
        } else {
            sy_tds_addf(b, " = ");
            const char *type = col_type(tb, col);
            if (!value_sql(b, v, type ? type : ""))
                return false;
        }
    }
    sy_tds_addf(b, ";\n");
    return !first;
}

/* INSERT INTO [dbo].[t] (insertable columns of the image) VALUES (...), IDENTITY_INSERT around it when needed. */
static bool insert_image(struct sy_buf *b, const struct table *tb, const json_t *image, char *err, size_t errlen)
{
    const char *col;
    json_t *v;
    struct sy_buf cols, vals;
    bool ok = true;
    sy_buf_init(&cols);
    sy_buf_init(&vals);
    json_object_foreach((json_t *)image, col, v) {
        const char *type = col_type(tb, col);
        if (type == NULL)
            continue;          /* computed or rowversion (business makes it), or a column dropped since */
        sy_tds_addf(&cols, "%s", cols.len ? ", " : "");
        sy_tds_ident(&cols, col, strlen(col));
        sy_tds_addf(&vals, "%s", vals.len ? ", " : "");
        if (!value_sql(&vals, v, type)) {
            snprintf(err, errlen, "tail row of table %s, column %s: a value of unknown encoding", tb->name, col);
            ok = false;
            break;
        }
    }
    if (ok && cols.len == 0) {
        snprintf(err, errlen, "table %s on business has none of the columns of the tail's before image", tb->name);
        ok = false;
    }
    if (ok) {
        if (tb->identity) {
            sy_tds_addf(b, "SET IDENTITY_INSERT [dbo].");
            sy_tds_ident(b, tb->name, strlen(tb->name));
            sy_tds_addf(b, " ON;\n");
        }
        sy_tds_addf(b, "INSERT INTO [dbo].");
        sy_tds_ident(b, tb->name, strlen(tb->name));
        sy_tds_addf(b, " (%s) VALUES (%s);\n", sy_tds_sql(&cols), sy_tds_sql(&vals));
        if (tb->identity) {
            sy_tds_addf(b, "SET IDENTITY_INSERT [dbo].");
            sy_tds_ident(b, tb->name, strlen(tb->name));
            sy_tds_addf(b, " OFF;\n");
        }
    }
    sy_buf_fini(&cols);
    sy_buf_fini(&vals);
    return ok;
}

/* Checks one tail row and puts the statements undoing it into b. */
static int row_stmts(struct revert *rv, const struct sy_pair_cfg *cfg, const json_t *row, struct sy_buf *b, char *err,
                     size_t errlen)
{
    const char *table = json_string_value(json_object_get(row, "table"));
    const char *op = json_string_value(json_object_get(row, "op"));
    const char *dot = table ? strchr(table, '.') : NULL;
    if (dot == NULL || !sy_tds_table_synced(cfg, "dbo", dot + 1)) {
        snprintf(err, errlen, "tail row of table %s: not a synchronized table", table ? table : "?");
        return -1;
    }
    bool ins = op != NULL && strcmp(op, "insert") == 0, upd = op != NULL && strcmp(op, "update") == 0,
         del = op != NULL && strcmp(op, "delete") == 0;
    const json_t *before = json_object_get(row, "before");
    if (!ins && !upd && !del) {
        snprintf(err, errlen, "tail row of table %s: unknown op %s", table, op ? op : "(none)");
        return -1;
    }
    if (!ins && (!json_is_object(before) || json_object_size(before) == 0)) {
        snprintf(err, errlen, "tail row of table %s: a%s without its before image", table,
                 upd ? "n update" : " delete");
        return -1;
    }
    const struct table *tb = table_of(rv, dot + 1, err, errlen);
    if (tb == NULL)
        return -1;
    const json_t *keys[2] = { json_object_get(row, "key"), json_object_get(row, "old_key") };
    for (int j = 0; j < 2; j++) {
        if (keys[j] == NULL && j == 1)
            continue;
        if (!json_is_object(keys[j]) || json_object_size(keys[j]) == 0) {
            snprintf(err, errlen, "tail row of table %s without its key (a table needs a primary key)", table);
            return -1;
        }
        if (!delete_key(b, tb, keys[j])) {
            snprintf(err, errlen, "tail key of table %s: a value of unknown encoding", table);
            return -1;
        }
    }
    return ins || insert_image(b, tb, before, err, errlen) ? 0 : -1;
}

int sy_sqlserver_tail_revert(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, const json_t *tail,
                             json_t *result, char *err, size_t errlen)
{
    char db[80];
    enum sy_tds_rc rc;
    struct revert rv = { 0 };
    json_int_t txns = 0, rows = 0;
    int ret = -1;
    const json_t *list = json_object_get(tail, "transactions");
    struct sy_buf q;
    sy_buf_init(&q);
    if (!sy_tds_pair_database(cfg, db, sizeof db, err, errlen))
        goto out;
    if (!json_is_array(list)) {
        snprintf(err, errlen, "the tail has no transactions list");
        goto out;
    }
    if ((rv.b = sy_tds_connect(cfg, ep, db, err, errlen, &rc)) == NULL)
        goto out;
    /* checked and built, newest row first, before anything is changed */
    for (size_t i = json_array_size(list); i-- > 0;) {
        const json_t *trows = json_object_get(json_array_get(list, i), "rows");
        txns++;
        for (size_t k = json_array_size(trows); k-- > 0;) {
            if (sy_grow((void **)&rv.stmts, &rv.cap_stmts, rv.n_stmts + 1, sizeof *rv.stmts, 64) != 0) {
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            sy_buf_init(&rv.stmts[rv.n_stmts]);
            if (row_stmts(&rv, cfg, json_array_get(trows, k), &rv.stmts[rv.n_stmts++], err, errlen) != 0)
                goto out;
            rows++;
        }
    }
    for (size_t i = 0; i < rv.n_stmts; i += ROWS_PER_TXN) {
        sy_buf_reset(&q);
        sy_tds_addf(&q, "SET XACT_ABORT ON; BEGIN TRANSACTION;\n");
        for (size_t k = i; k < rv.n_stmts && k < i + ROWS_PER_TXN; k++)
            sy_tds_addf(&q, "%s", sy_tds_sql(&rv.stmts[k]));
        sy_tds_addf(&q, "COMMIT TRANSACTION;");
        if (sy_tds_exec(rv.b, sy_tds_sql(&q), NULL, 0, NULL, err, errlen) != SY_TDS_OK)
            goto out;
    }
    struct sy_lsn at, max;
    if (sy_tds_mark_captured(rv.b, "N'tail'", REVERT_MARK_WAIT_MS, NULL, NULL, &at, &max, err, errlen) != SY_TDS_OK)
        goto out;
    ret = 0;
out:
    json_object_set_new(result, "reverted_transactions", json_integer(ret == 0 ? txns : 0));
    json_object_set_new(result, "reverted_rows", json_integer(ret == 0 ? rows : 0));
    sy_tds_close(rv.b);
    for (size_t i = 0; i < rv.n_stmts; i++)
        sy_buf_fini(&rv.stmts[i]);
    free(rv.stmts);
    for (size_t i = 0; i < rv.n_tables; i++) {
        free(rv.tables[i].name);
        sy_tds_strv_free(rv.tables[i].cols);
        sy_tds_strv_free(rv.tables[i].types);
    }
    free(rv.tables);
    sy_buf_fini(&q);
    return ret;
}
