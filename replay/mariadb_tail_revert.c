/* Reverting an unreplicated tail on a MariaDB server (replay/mariadb_tail_revert.h). Three passes:
 * check the whole tail (DDL, shape, value encodings) without a connection; check every table and
 * column against the server; then undo the transactions newest first, one destination transaction
 * each, with prepared statements whose parameters carry the values exactly as the tail encodes them
 * (capture/mariadb_tail.h). Statements are prepared per row: a tail is small and written once. */
#include "replay/mariadb_tail_revert.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <mysql.h>
#include <mysqld_error.h>

#include "core/change.h"
#include "engine/mariadb_client.h"

#define RV_TIMEOUT_S 30
#define KEY_TEXT_MAX 200 /* bytes of a key quoted in an error */

/* One bound parameter: storage for what MYSQL_BIND points at. */
struct rv_val {
    int64_t i;
    uint64_t u;
    double d;
    uint8_t *owned;        /* owned: decoded hex */
    const void *p;         /* ref: into the tail's strings, or owned */
    unsigned long len;
    my_bool is_null;
    enum enum_field_types type;
    bool is_unsigned;
};

/* A destination table's columns. */
struct rv_table {
    char db[257], name[257];
    char **cols;           /* owned */
    bool *generated;       /* owned */
    size_t n;
    struct rv_table *next; /* owned */
};

struct reverter {
    const struct sy_pair_cfg *cfg;  /* ref */
    const struct sy_endpoint *ep;   /* ref */
    MYSQL *conn;                    /* owned */
    struct rv_table *tables;        /* owned */
    struct rv_val *vals;            /* owned: parameters of the statement being run */
    MYSQL_BIND *binds;              /* owned */
    size_t n_vals, cap_vals;
    struct sy_buf sql;
    char err[1024];
};

/* ---- values ----------------------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* One VALUE of the tail encoding into *out (decode = true) or only checked (decode = false). */
static int value_decode(const json_t *v, struct rv_val *out, bool decode)
{
    struct rv_val tmp;
    if (!decode)
        out = &tmp;
    memset(out, 0, sizeof *out);
    if (json_is_null(v)) {
        out->is_null = 1;
        out->type = MYSQL_TYPE_NULL;
        return 0;
    }
    if (json_is_integer(v)) {
        out->i = (int64_t)json_integer_value(v);
        out->type = MYSQL_TYPE_LONGLONG;
        return 0;
    }
    if (json_is_string(v)) {
        out->p = json_string_value(v);
        out->len = (unsigned long)json_string_length(v);
        out->type = MYSQL_TYPE_STRING;
        return 0;
    }
    if (!json_is_object(v) || json_object_size(v) != 1)
        return -1;
    const char *s;
    char *end;
    if ((s = json_string_value(json_object_get(v, "hex"))) != NULL) {
        size_t n = strlen(s);
        if (n % 2)
            return -1;
        uint8_t *b = decode ? malloc(n / 2 + 1) : NULL;
        if (decode && b == NULL)
            return -1;
        for (size_t i = 0; i < n; i += 2) {
            int hi = hexval(s[i]), lo = hexval(s[i + 1]);
            if (hi < 0 || lo < 0) {
                free(b);
                return -1;
            }
            if (b)
                b[i / 2] = (uint8_t)(hi << 4 | lo);
        }
        out->owned = b;
        out->p = b;
        out->len = (unsigned long)(n / 2);
        out->type = MYSQL_TYPE_BLOB;
        return 0;
    }
    if ((s = json_string_value(json_object_get(v, "uint"))) != NULL) {
        errno = 0;
        out->u = strtoull(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
            return -1;
        out->type = MYSQL_TYPE_LONGLONG;
        out->is_unsigned = true;
        return 0;
    }
    if ((s = json_string_value(json_object_get(v, "float"))) != NULL ||
        (s = json_string_value(json_object_get(v, "double"))) != NULL) {
        errno = 0;
        out->d = strtod(s, &end);
        if (errno != 0 || end == s || *end != '\0')
            return -1;
        out->type = MYSQL_TYPE_DOUBLE;
        return 0;
    }
    return -1;
}

static void vals_reset(struct reverter *r)
{
    for (size_t i = 0; i < r->n_vals; i++)
        free(r->vals[i].owned);
    r->n_vals = 0;
}

static int vals_add(struct reverter *r, const json_t *v)
{
    if (r->n_vals == r->cap_vals) {
        size_t cap = r->cap_vals ? r->cap_vals * 2 : 32;
        struct rv_val *nv = realloc(r->vals, cap * sizeof *nv);
        if (nv == NULL)
            return -1;
        r->vals = nv;
        MYSQL_BIND *nb = realloc(r->binds, cap * sizeof *nb);
        if (nb == NULL)
            return -1;
        r->binds = nb;
        r->cap_vals = cap;
    }
    if (value_decode(v, &r->vals[r->n_vals], true) != 0)
        return -1;
    r->n_vals++;
    return 0;
}

static void binds_fill(struct reverter *r)
{
    for (size_t k = 0; k < r->n_vals; k++) {
        struct rv_val *v = &r->vals[k];
        MYSQL_BIND *b = &r->binds[k];
        memset(b, 0, sizeof *b);
        b->buffer_type = v->type;
        b->is_null = &v->is_null;
        b->length = &v->len;
        b->is_unsigned = v->is_unsigned;
        switch (v->type) {
        case MYSQL_TYPE_LONGLONG:
            b->buffer = v->is_unsigned ? (void *)&v->u : (void *)&v->i;
            break;
        case MYSQL_TYPE_DOUBLE:
            b->buffer = &v->d;
            break;
        case MYSQL_TYPE_NULL:
            break;
        default:
            b->buffer = (void *)v->p;
            b->buffer_length = v->len;
            break;
        }
    }
}

/* ---- the tail's shape ------------------------------------------------------------------------- */

static bool split_table(const char *qualified, char *db, size_t dblen, char *table, size_t tablelen)
{
    const char *dot = qualified ? strchr(qualified, '.') : NULL;
    if (dot == NULL || dot == qualified || dot[1] == '\0' || (size_t)(dot - qualified) >= dblen ||
        strlen(dot + 1) >= tablelen)
        return false;
    snprintf(db, dblen, "%.*s", (int)(dot - qualified), qualified);
    snprintf(table, tablelen, "%s", dot + 1);
    return true;
}

static bool image_ok(const json_t *img)
{
    if (!json_is_object(img) || json_object_size(img) == 0)
        return false;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)img, k, v)
        if (value_decode(v, NULL, false) != 0)
            return false;
    return true;
}

/* Pass 1: the whole tail is well-formed and holds no DDL. */
static int check_tail(struct reverter *r, const json_t *tail)
{
    const json_t *txns = json_object_get(tail, "transactions");
    if (!json_is_array(txns)) {
        snprintf(r->err, sizeof r->err, "not a tail: no \"transactions\" array");
        return -1;
    }
    size_t i, j;
    json_t *txn, *row;
    json_array_foreach(txns, i, txn) {
        const char *gtid = json_string_value(json_object_get(txn, "gtid"));
        const json_t *ddl = json_object_get(txn, "ddl"), *rows = json_object_get(txn, "rows");
        if (gtid == NULL || !json_is_array(rows) || (ddl != NULL && !json_is_array(ddl))) {
            snprintf(r->err, sizeof r->err, "not a tail: transaction #%zu lacks its gtid or rows", i);
            return -1;
        }
        if (json_array_size(ddl) > 0) {
            const char *stmt = json_string_value(json_array_get(ddl, 0));
            snprintf(r->err, sizeof r->err, "the tail contains DDL: revert it by hand (%s: %.80s%s)", gtid,
                     stmt ? stmt : "(not UTF-8)", stmt && strlen(stmt) > 80 ? "..." : "");
            return -1;
        }
        json_array_foreach(rows, j, row) {
            char db[257], table[257];
            const char *op = json_string_value(json_object_get(row, "op"));
            const json_t *key = json_object_get(row, "key"), *before = json_object_get(row, "before");
            bool ok = split_table(json_string_value(json_object_get(row, "table")), db, sizeof db, table,
                                  sizeof table) && op != NULL;
            if (ok && strcmp(op, "insert") == 0)
                ok = image_ok(key);
            else if (ok && strcmp(op, "update") == 0)
                ok = image_ok(key) && image_ok(before);
            else if (ok && strcmp(op, "delete") == 0)
                ok = image_ok(before);
            else
                ok = false;
            if (!ok) {
                snprintf(r->err, sizeof r->err, "the tail's row #%zu of %s is malformed (table, op, a key and "
                         "the before image it needs, value encodings): nothing reverted", j, gtid);
                return -1;
            }
        }
    }
    return 0;
}

/* ---- destination tables ----------------------------------------------------------------------- */

static void tables_free(struct rv_table *t)
{
    while (t) {
        struct rv_table *next = t->next;
        for (size_t i = 0; i < t->n; i++)
            free(t->cols[i]);
        free(t->cols);
        free(t->generated);
        free(t);
        t = next;
    }
}

static struct rv_table *table_load(struct reverter *r, const char *db, const char *name)
{
    for (struct rv_table *t = r->tables; t; t = t->next)
        if (strcmp(t->db, db) == 0 && strcmp(t->name, name) == 0)
            return t;
    char *edb = sy_mariadb_escape(r->conn, db), *etb = sy_mariadb_escape(r->conn, name);
    char sql[1400];
    MYSQL_RES *res = NULL;
    struct rv_table *t = calloc(1, sizeof *t);
    if (t == NULL || edb == NULL || etb == NULL) {
        snprintf(r->err, sizeof r->err, "out of memory");
        goto fail;
    }
    snprintf(t->db, sizeof t->db, "%s", db);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(sql, sizeof sql, "SELECT COLUMN_NAME, IS_GENERATED FROM information_schema.COLUMNS WHERE "
             "TABLE_SCHEMA='%s' AND TABLE_NAME='%s' ORDER BY ORDINAL_POSITION", edb, etb);
    if (mysql_real_query(r->conn, sql, (unsigned long)strlen(sql)) != 0 ||
        (res = mysql_store_result(r->conn)) == NULL) {
        snprintf(r->err, sizeof r->err, "reading the columns of %s.%s: %u %s", db, name, mysql_errno(r->conn),
                 mysql_error(r->conn));
        goto fail;
    }
    size_t n = (size_t)mysql_num_rows(res);
    if (n == 0) {
        snprintf(r->err, sizeof r->err, "table %s.%s does not exist on %s:%u: nothing reverted", db, name,
                 r->ep->host, r->ep->port);
        goto fail;
    }
    t->cols = calloc(n, sizeof *t->cols);
    t->generated = calloc(n, sizeof *t->generated);
    if (t->cols == NULL || t->generated == NULL) {
        snprintf(r->err, sizeof r->err, "out of memory");
        goto fail;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL && t->n < n) {
        t->generated[t->n] = row[1] && strcmp(row[1], "NEVER") != 0;
        if ((t->cols[t->n] = strdup(row[0] ? row[0] : "")) == NULL) {
            snprintf(r->err, sizeof r->err, "out of memory");
            goto fail;
        }
        t->n++;
    }
    mysql_free_result(res);
    free(edb);
    free(etb);
    t->next = r->tables;
    r->tables = t;
    return t;
fail:
    if (res)
        mysql_free_result(res);
    free(edb);
    free(etb);
    tables_free(t);
    return NULL;
}

/* Index of a column of t (names compare case-insensitively), -1 when absent. */
static int table_col(const struct rv_table *t, const char *col)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcasecmp(t->cols[i], col) == 0)
            return (int)i;
    return -1;
}

static int check_image_cols(struct reverter *r, const struct rv_table *t, const json_t *img)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)img, k, v)
        if (table_col(t, k) < 0) {
            snprintf(r->err, sizeof r->err, "column %s of %s.%s does not exist on %s:%u: nothing reverted", k, t->db,
                     t->name, r->ep->host, r->ep->port);
            return -1;
        }
    return 0;
}

/* Pass 2: every table and column the tail names exists on the server. */
static int check_tables(struct reverter *r, const json_t *tail)
{
    size_t i, j;
    json_t *txn, *row;
    json_array_foreach(json_object_get(tail, "transactions"), i, txn) {
        json_array_foreach(json_object_get(txn, "rows"), j, row) {
            char db[257], table[257];
            split_table(json_string_value(json_object_get(row, "table")), db, sizeof db, table, sizeof table);
            const struct rv_table *t = table_load(r, db, table);
            if (t == NULL)
                return -1;
            const json_t *key = json_object_get(row, "key"), *before = json_object_get(row, "before");
            if ((json_is_object(key) && check_image_cols(r, t, key) != 0) ||
                (json_is_object(before) && check_image_cols(r, t, before) != 0))
                return -1;
        }
    }
    return 0;
}

/* ---- statements ------------------------------------------------------------------------------- */

static void sql_add(struct reverter *r, const char *s)
{
    sy_buf_add(&r->sql, s, strlen(s));
}

static void sql_ident(struct reverter *r, const char *name)
{
    sy_mariadb_add_ident(&r->sql, name);
}

static void sql_table(struct reverter *r, const struct rv_table *t)
{
    sql_ident(r, t->db);
    sql_add(r, ".");
    sql_ident(r, t->name);
}

/* Appends "c1=? sep c2=? ..." for the (non-generated) columns of img and queues their values. */
static int sql_assign(struct reverter *r, const struct rv_table *t, const json_t *img, const char *op,
                      const char *sep, bool skip_generated)
{
    const char *k;
    json_t *v;
    bool first = true;
    json_object_foreach((json_t *)img, k, v) {
        int c = table_col(t, k);
        if (skip_generated && t->generated[c])
            continue;
        if (!first)
            sql_add(r, sep);
        sql_ident(r, t->cols[c]);
        sql_add(r, op);
        if (vals_add(r, v) != 0)
            return -1;
        first = false;
    }
    return 0;
}

static int sql_insert(struct reverter *r, const struct rv_table *t, const json_t *img)
{
    sql_add(r, "INSERT INTO ");
    sql_table(r, t);
    sql_add(r, " (");
    const char *k;
    json_t *v;
    bool first = true;
    json_object_foreach((json_t *)img, k, v) {
        int c = table_col(t, k);
        if (t->generated[c])
            continue;
        if (!first)
            sql_add(r, ",");
        sql_ident(r, t->cols[c]);
        if (vals_add(r, v) != 0)
            return -1;
        first = false;
    }
    sql_add(r, ") VALUES (");
    for (size_t i = 0; i < r->n_vals; i++)
        sql_add(r, i ? ",?" : "?");
    sql_add(r, ")");
    return 0;
}

static void key_text(const json_t *key, char *out, size_t outlen)
{
    char *s = json_dumps(key, JSON_COMPACT | JSON_ENCODE_ANY);
    snprintf(out, outlen, "%.*s%s", KEY_TEXT_MAX, s ? s : "?", s && strlen(s) > KEY_TEXT_MAX ? "..." : "");
    free(s);
}

/* Undoes one row. 0, or -1 with r->err naming table, key and GTID. */
static int revert_row(struct reverter *r, const json_t *row, const char *gtid)
{
    char db[257], table[257], key[KEY_TEXT_MAX + 8];
    const char *qualified = json_string_value(json_object_get(row, "table"));
    split_table(qualified, db, sizeof db, table, sizeof table);
    const char *op = json_string_value(json_object_get(row, "op"));
    const json_t *k = json_object_get(row, "key"), *before = json_object_get(row, "before");
    key_text(json_is_object(k) ? k : before, key, sizeof key); /* a delete of a keyless table: its image */
    const struct rv_table *t = table_load(r, db, table);
    if (t == NULL)
        return -1;
    sy_buf_reset(&r->sql);
    vals_reset(r);
    int rc = 0;
    if (strcmp(op, "insert") == 0) {
        sql_add(r, "DELETE FROM ");
        sql_table(r, t);
        sql_add(r, " WHERE ");
        rc = sql_assign(r, t, k, "<=>?", " AND ", false);
    } else if (strcmp(op, "update") == 0) {
        sql_add(r, "UPDATE ");
        sql_table(r, t);
        sql_add(r, " SET ");
        rc = sql_assign(r, t, before, "=?", ",", true);
        sql_add(r, " WHERE ");
        if (rc == 0)
            rc = sql_assign(r, t, k, "<=>?", " AND ", false);
    } else {
        rc = sql_insert(r, t, before);
    }
    sy_buf_add(&r->sql, "", 1);
    if (rc != 0 || r->sql.oom) {
        snprintf(r->err, sizeof r->err, "out of memory");
        return -1;
    }
    MYSQL_STMT *st = mysql_stmt_init(r->conn);
    if (st == NULL) {
        snprintf(r->err, sizeof r->err, "out of memory");
        return -1;
    }
    binds_fill(r);
    rc = -1;
    if (mysql_stmt_prepare(st, (const char *)r->sql.p, (unsigned long)(r->sql.len - 1)) != 0 ||
        mysql_stmt_bind_param(st, r->binds) != 0 || mysql_stmt_execute(st) != 0) {
        unsigned int e = mysql_stmt_errno(st);
        if (e == ER_DUP_ENTRY)
            snprintf(r->err, sizeof r->err, "%s key %s (%s): cannot revert the %s: a row with that key exists "
                     "(%s)", qualified, key, gtid, op, mysql_stmt_error(st));
        else
            snprintf(r->err, sizeof r->err, "%s key %s (%s): reverting the %s failed: %u %s", qualified, key, gtid,
                     op, e, mysql_stmt_error(st));
    } else if (mysql_stmt_affected_rows(st) != 1) {
        snprintf(r->err, sizeof r->err, "%s key %s (%s): cannot revert the %s: %llu rows have that key", qualified,
                 key, gtid, op, (unsigned long long)mysql_stmt_affected_rows(st));
    } else {
        rc = 0;
    }
    mysql_stmt_close(st);
    vals_reset(r);
    return rc;
}

/* ---- the revert ------------------------------------------------------------------------------- */

static int open_session(struct reverter *r)
{
    unsigned int e = 0;
    r->conn = sy_mariadb_connect(r->ep, r->cfg, CLIENT_FOUND_ROWS, RV_TIMEOUT_S, &e, r->err, sizeof r->err);
    if (r->conn == NULL)
        return -1;
    char err[512];
    if (sy_mariadb_exec(r->conn, err, sizeof err,
                        "SET SESSION server_id=%u, time_zone='+00:00', sql_mode='NO_AUTO_VALUE_ON_ZERO', "
                        "foreign_key_checks=0, autocommit=0",
                        r->cfg->writer_tag) != 0) {
        snprintf(r->err, sizeof r->err, "revert session on %s:%u (needs BINLOG REPLAY): %s", r->ep->host,
                 r->ep->port, err);
        return -1;
    }
    return 0;
}

int sy_mariadb_tail_revert(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, const json_t *tail,
                           json_t *result, char *err, size_t errlen)
{
    struct reverter r = { .cfg = cfg, .ep = ep };
    sy_buf_init(&r.sql);
    json_int_t n_txns = 0, n_rows = 0;
    const char *failed = NULL;
    int rc = -1;
    if (!json_is_object(tail) || !json_is_object(result)) {
        snprintf(r.err, sizeof r.err, "tail and result must be JSON objects");
        goto out;
    }
    if (check_tail(&r, tail) != 0)
        goto out;
    const json_t *txns = json_object_get(tail, "transactions");
    if (json_array_size(txns) == 0) {
        rc = 0;
        goto out;
    }
    if (open_session(&r) != 0 || check_tables(&r, tail) != 0)
        goto out;
    for (size_t i = json_array_size(txns); i-- > 0;) {
        const json_t *txn = json_array_get(txns, i), *rows = json_object_get(txn, "rows");
        const char *gtid = json_string_value(json_object_get(txn, "gtid"));
        int trc = 0;
        for (size_t j = json_array_size(rows); trc == 0 && j-- > 0;)
            trc = revert_row(&r, json_array_get(rows, j), gtid);
        if (trc == 0 && mysql_commit(r.conn) != 0) {
            snprintf(r.err, sizeof r.err, "committing the revert of %s: %u %s", gtid, mysql_errno(r.conn),
                     mysql_error(r.conn));
            trc = -1;
        }
        if (trc != 0) {
            mysql_rollback(r.conn);
            failed = gtid;
            goto out;
        }
        n_txns++;
        n_rows += (json_int_t)json_array_size(rows);
    }
    rc = 0;
out:
    if (json_is_object(result)) {
        json_object_set_new(result, "reverted_transactions", json_integer(n_txns));
        json_object_set_new(result, "reverted_rows", json_integer(n_rows));
        if (failed)
            json_object_set_new(result, "failed_gtid", json_string(failed));
    }
    if (rc != 0)
        snprintf(err, errlen, "%s", r.err[0] ? r.err : "revert failed");
    vals_reset(&r);
    free(r.vals);
    free(r.binds);
    tables_free(r.tables);
    sy_buf_fini(&r.sql);
    if (r.conn)
        mysql_close(r.conn);
    return rc;
}
