/* Data verification for MariaDB: for each synchronized table, walk the key in chunks of CHUNK_ROWS
 * keys, (lo, hi]. A chunk is summed on the source (COUNT + BIT_XOR of a 64-bit MD5 row hash over the
 * bytes of every non-generated column, NULL told apart from '') inside a consistent snapshot, whose
 * position (@@gtid_binlog_pos read right after the snapshot opened: it covers everything the snapshot
 * sees) the forward writer must reach before the same sums are read on the destination. A mismatch
 * is rechecked RECHECKS times with a new snapshot — the last time with the source range held under
 * share locks while the destination catches up, so writes still flowing into the chunk cannot fake a
 * difference — and only then listed by key range. Key bounds come from replay/mariadb_keyrange.c
 * (the same as the initial copy's): they compare in index order and are range-scanned. Reads only,
 * on both sides; never logs row data. */
#include "replay/mariadb_verify.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>

#include "core/comma_list.h"
#include "core/instance.h"
#include "core/log.h"
#include "engine/mariadb_client.h"
#include "replay/mariadb_keyrange.h"

#define CHUNK_ROWS 1000
#define RECHECKS 3                  /* after the first check; the last one locks the source range */
#define WAIT_MS 30000               /* for the writer to reach a chunk's position */
#define WAIT_AFTER_TIMEOUT_MS 2000  /* once a wait timed out: the writer is stuck, do not wait per table */
#define LOCKED_WAIT_MS 3000         /* business writes to the chunk wait meanwhile: keep it short */
#define LOCK_WAIT_S 2               /* innodb_lock_wait_timeout of the locked recheck */
#define MAX_LISTED 100              /* mismatching chunks listed per table */
#define TIMEOUT_S 120               /* connect / read / write */

struct vcol {
    char *name;          /* owned */
    char *charset;       /* owned: character columns only, else NULL */
    char *collation;     /* owned: with charset */
    bool big;            /* BLOB/TEXT/JSON or long: hashed on its own, so the row's CONCAT stays short */
    enum sy_key_kind kind;
    unsigned enum_count; /* ENUM: members */
};

struct vtable {
    char db[257], table[257];
    char qname[1100];    /* `db`.`table` */
    struct vcol *cols;   /* owned: non-generated columns, ordinal order */
    size_t n_cols;
    size_t *key_idx;     /* owned: indexes into cols, key order */
    struct sy_key_col *key; /* owned (strings ref cols): the key columns, key order, for bounds */
    size_t n_key;
    char *key_list;      /* owned: the key's read-back expressions joined by ',' (SELECT list) */
    char *order_list;    /* owned: the key columns joined by ',' (ORDER BY, index order) */
    char *display_list;  /* owned: the key as users read it (character, ENUM, SET: as utf8mb4 text) */
    char *hash;          /* owned: the per-row 64-bit hash expression */
};

/* A chunk bound: one raw value per key column, as the source returned it. !set = unbounded. */
struct vkey {
    bool set;
    char **v;            /* owned, n_key values: compared with (written back as literals) */
    unsigned long *len;
    char *text;          /* owned: "42" or "(us, 42)", valid UTF-8, for the result only */
};

struct sums {
    uint64_t rows;
    char hash[32];       /* BIT_XOR as decimal text */
};

struct verify {
    const struct sy_pair_cfg *cfg;
    const struct sy_endpoint *source, *dest; /* ref: cfg's */
    bool source_is_business;                 /* names the JSON fields by side */
    sy_verify_reached_fn reached;
    void *arg;
    const struct sy_module_ctx *watch;       /* ref: where the connections' sockets are published */
    MYSQL *src, *dst;                        /* owned */
    int src_slot, dst_slot;                  /* their watch slots (-1: none) */
    struct vtable *tables;                   /* owned */
    size_t n_tables;
    int wait_ms;                             /* current budget for one wait */
    char err[1024];                          /* fatal error (the verify fails) */
    char table_err[1024];                    /* this table's error (status "error", verify goes on) */
};

/* ---- a growable SQL buffer whose allocation failure sticks ------------------------------------- */

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_need(struct sbuf *b, size_t more)
{
    if (b->oom || b->len + more + 1 <= b->cap)
        return;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < b->len + more + 1)
        nc *= 2;
    char *np = realloc(b->p, nc);
    if (np == NULL) {
        b->oom = true;
        return;
    }
    b->p = np;
    b->cap = nc;
}

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    sb_need(b, n);
    if (b->oom)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void SY_PRINTF(2, 3) sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    sb_need(b, (size_t)n);
    if (b->oom)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static void sb_ident(struct sbuf *b, const char *name)
{
    size_t n = strlen(name);
    char *q = malloc(2 * n + 3);
    if (q == NULL) {
        b->oom = true;
        return;
    }
    sy_mariadb_quote_ident(name, q, 2 * n + 3);
    sb_str(b, q);
    free(q);
}

/* ---- tables ---------------------------------------------------------------------------------- */

static void table_fini(struct vtable *t)
{
    for (size_t c = 0; c < t->n_cols; c++) {
        free(t->cols[c].name);
        free(t->cols[c].charset);
        free(t->cols[c].collation);
    }
    free(t->cols);
    free(t->key_idx);
    free(t->key);
    free(t->key_list);
    free(t->order_list);
    free(t->display_list);
    free(t->hash);
}

/* The per-row hash: each column as "<octet length>:<bytes>", or its MD5 when big, or 'N' for NULL
 * (neither a digit nor hex: no two rows concatenate alike), then the first 64 bits of the MD5 of all.
 * CAST(.. AS BINARY) compares bytes, not the collation's idea of equal ('a' vs 'A', 'a' vs 'a '). */
static int build_exprs(struct vtable *t)
{
    struct sbuf h = { 0 }, kl = { 0 }, dl = { 0 };
    sb_str(&h, "CAST(CONV(LEFT(MD5(CONCAT(");
    for (size_t c = 0; c < t->n_cols; c++) {
        struct sbuf q = { 0 };
        sb_ident(&q, t->cols[c].name);
        if (q.oom) {
            h.oom = true;
            break;
        }
        if (c)
            sb_str(&h, ",");
        if (t->cols[c].big)
            sb_printf(&h, "IFNULL(MD5(CAST(%s AS BINARY)),'N')", q.p);
        else
            sb_printf(&h, "IFNULL(CONCAT(OCTET_LENGTH(CAST(%s AS BINARY)),':',CAST(%s AS BINARY)),'N')", q.p, q.p);
        free(q.p);
    }
    sb_str(&h, ")),16),16,10) AS UNSIGNED)");
    t->key = calloc(t->n_key + 1, sizeof *t->key);
    if (t->key == NULL)
        kl.oom = true;
    for (size_t k = 0; !kl.oom && k < t->n_key; k++) {
        const struct vcol *c = &t->cols[t->key_idx[k]];
        t->key[k] = (struct sy_key_col){ .name = c->name, .kind = c->kind, .charset = c->charset,
                                         .collation = c->collation, .enum_count = c->enum_count };
    }
    struct sy_buf rb, ob;
    sy_buf_init(&rb);
    sy_buf_init(&ob);
    for (size_t k = 0; !kl.oom && k < t->n_key; k++) {
        const struct vcol *c = &t->cols[t->key_idx[k]];
        sy_buf_reset(&rb);
        sy_keyrange_readback(&rb, &t->key[k]);
        sy_buf_add(&rb, "", 1);
        if (rb.oom) {
            kl.oom = true;
            break;
        }
        if (k)
            sb_str(&kl, ",");
        sb_str(&kl, (const char *)rb.p);
        sb_str(&dl, ",");
        if (c->charset) { /* character columns, ENUM and SET: their text, in UTF-8 */
            sb_str(&dl, "CONVERT(");
            sb_ident(&dl, c->name);
            sb_str(&dl, " USING utf8mb4)");
        } else {
            sb_str(&dl, (const char *)rb.p);
        }
    }
    if (t->key != NULL) {
        sy_keyrange_order(&ob, t->key, t->n_key);
        sy_buf_add(&ob, "", 1);
    }
    sy_buf_fini(&rb);
    if (h.oom || kl.oom || dl.oom || ob.oom) {
        free(h.p);
        free(kl.p);
        free(dl.p);
        sy_buf_fini(&ob);
        return -1;
    }
    t->hash = h.p;
    t->key_list = kl.p;
    t->display_list = dl.p;
    t->order_list = (char *)ob.p; /* ownership moves to t */
    return 0;
}

static void fail_query(struct verify *v, MYSQL *m, const char *what)
{
    snprintf(v->err, sizeof v->err, "%s: %u %s", what, mysql_errno(m), mysql_error(m));
}

/* Columns and key of one table (the key as the writer and initial sync pick it: PRIMARY, else the
 * first NOT NULL UNIQUE key by name). 0, 1 = the table cannot be verified (v->table_err), -1 fatal. */
static int load_columns(struct verify *v, struct vtable *t)
{
    char *edb = sy_mariadb_escape(v->src, t->db), *etb = sy_mariadb_escape(v->src, t->table);
    struct sbuf q = { 0 };
    sb_printf(&q,
              "SELECT c.COLUMN_NAME, c.DATA_TYPE, c.CHARACTER_SET_NAME, c.COLLATION_NAME, "
              "IFNULL(c.CHARACTER_OCTET_LENGTH, 0), " SY_MARIADB_KEY_SEQ_SQL ", c.COLUMN_TYPE "
              "FROM information_schema.COLUMNS c WHERE c.TABLE_SCHEMA='%s' AND c.TABLE_NAME='%s' AND "
              "c.IS_GENERATED='NEVER' ORDER BY c.ORDINAL_POSITION",
              edb ? edb : "", etb ? etb : "");
    free(edb);
    free(etb);
    if (q.oom || mysql_real_query(v->src, q.p, (unsigned long)q.len) != 0) {
        free(q.p);
        fail_query(v, v->src, "reading columns");
        return -1;
    }
    free(q.p);
    MYSQL_RES *res = mysql_store_result(v->src);
    if (res == NULL) {
        fail_query(v, v->src, "reading columns");
        return -1;
    }
    size_t n = (size_t)mysql_num_rows(res);
    int *seq = calloc(n + 1, sizeof *seq);
    t->cols = calloc(n + 1, sizeof *t->cols);
    t->key_idx = calloc(n + 1, sizeof *t->key_idx);
    if (seq == NULL || t->cols == NULL || t->key_idx == NULL) {
        free(seq);
        mysql_free_result(res);
        snprintf(v->err, sizeof v->err, "out of memory");
        return -1;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL && t->n_cols < n) {
        struct vcol *c = &t->cols[t->n_cols];
        const char *type = row[1] ? row[1] : "";
        c->name = strdup(row[0] ? row[0] : "");
        c->charset = row[2] ? strdup(row[2]) : NULL;
        c->collation = row[3] ? strdup(row[3]) : NULL;
        c->kind = sy_keyrange_kind_of(type, row[2] != NULL && row[3] != NULL);
        c->enum_count = sy_keyrange_enum_count(row[6] ? row[6] : "");
        c->big = strstr(type, "blob") || strstr(type, "text") || strcmp(type, "json") == 0 ||
                 strcmp(type, "geometry") == 0 || strtoull(row[4] ? row[4] : "0", NULL, 10) > 512;
        seq[t->n_cols++] = row[5] ? atoi(row[5]) : 0;
    }
    mysql_free_result(res);
    for (int k = 1; k <= (int)t->n_cols; k++)
        for (size_t c = 0; c < t->n_cols; c++)
            if (seq[c] == k)
                t->key_idx[t->n_key++] = c;
    free(seq);
    if (t->n_cols == 0) {
        snprintf(v->table_err, sizeof v->table_err, "the table has no columns on business (dropped meanwhile?)");
        return 1;
    }
    if (t->n_key == 0) {
        snprintf(v->table_err, sizeof v->table_err, "no PRIMARY KEY or NOT NULL UNIQUE key: it is not synchronized");
        return 1;
    }
    if (build_exprs(t) != 0) {
        snprintf(v->err, sizeof v->err, "out of memory");
        return -1;
    }
    return 0;
}

/* The synchronized base tables of the source that pass the filter, sorted. 0 or -1. */
static int list_tables(struct verify *v, const char *filter)
{
    static const char sql[] =
        "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE='BASE TABLE' "
        "AND TABLE_SCHEMA NOT IN ('mysql','information_schema','performance_schema','sys','" SY_SCHEMA "') "
        "ORDER BY 1, 2";
    if (mysql_query(v->src, sql) != 0) {
        fail_query(v, v->src, "listing tables");
        return -1;
    }
    MYSQL_RES *res = mysql_store_result(v->src);
    if (res == NULL) {
        fail_query(v, v->src, "listing tables");
        return -1;
    }
    v->tables = calloc(mysql_num_rows(res) + 1, sizeof *v->tables);
    if (v->tables == NULL) {
        mysql_free_result(res);
        snprintf(v->err, sizeof v->err, "out of memory");
        return -1;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL)
        if (row[0] && row[1] && sy_objects_match(v->cfg, row[0], row[1]) &&
            sy_objects_filter_match(filter, row[0], row[1])) {
            struct vtable *t = &v->tables[v->n_tables++];
            snprintf(t->db, sizeof t->db, "%s", row[0]);
            snprintf(t->table, sizeof t->table, "%s", row[1]);
            char qd[600], qt[600];
            sy_mariadb_quote_ident(t->db, qd, sizeof qd);
            sy_mariadb_quote_ident(t->table, qt, sizeof qt);
            snprintf(t->qname, sizeof t->qname, "%s.%s", qd, qt);
        }
    mysql_free_result(res);
    return 0;
}

/* ---- chunks ---------------------------------------------------------------------------------- */

static void key_free(struct vkey *k, size_t n)
{
    for (size_t i = 0; k->v && i < n; i++)
        free(k->v[i]);
    free(k->v);
    free(k->len);
    free(k->text);
    *k = (struct vkey){ 0 };
}

/* The expanded bound over the key (replay/mariadb_keyrange.c). */
static void sb_bound(struct sbuf *b, const struct vtable *t, const struct vkey *k, const char *op,
                     const char *last_op)
{
    struct sy_buf c;
    sy_buf_init(&c);
    sy_keyrange_bound(&c, t->key, t->n_key, (const char *const *)k->v, k->len, op, last_op);
    if (c.oom)
        b->oom = true;
    else
        sb_add(b, (const char *)c.p, c.len);
    sy_buf_fini(&c);
}

/* "SELECT <what> FROM t [WHERE key > lo [AND key <= hi]] <tail>", or NULL (out of memory). */
static char *chunk_sql(const struct verify *v, const struct vtable *t, const struct vkey *lo, const struct vkey *hi,
                       const char *what, const char *tail, size_t *len)
{
    struct sbuf b = { 0 };
    sb_printf(&b, "SELECT %s FROM %s", what, t->qname);
    if (lo->set || (hi && hi->set))
        sb_str(&b, " WHERE ");
    if (lo->set)
        sb_bound(&b, t, lo, ">", ">");
    if (lo->set && hi && hi->set)
        sb_str(&b, " AND ");
    if (hi && hi->set)
        sb_bound(&b, t, hi, "<", "<=");
    sb_printf(&b, " %s", tail);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* A query error: connection-level ones end the verify (-1, v->err); others (table dropped, a column
 * the destination lacks) end this table only (1, v->table_err). */
static int query_failed(struct verify *v, MYSQL *m, const char *side)
{
    unsigned int e = mysql_errno(m);
    if (e == 0 || e >= CR_MIN_ERROR || (sy_mariadb_is_transient(e) && e != ER_LOCK_WAIT_TIMEOUT)) {
        snprintf(v->err, sizeof v->err, "%s: %u %s", side, e, e ? mysql_error(m) : "out of memory");
        return -1;
    }
    snprintf(v->table_err, sizeof v->table_err, "%s: %u %s", side, e, mysql_error(m));
    return 1;
}

static const char *side_of(const struct verify *v, bool source)
{
    return source == v->source_is_business ? "business" : "dr";
}

/* COUNT and BIT_XOR of the chunk on m. 0, 1 (table error), -1 (fatal), 2 (lock wait timeout). */
static int chunk_sums(struct verify *v, MYSQL *m, const struct vtable *t, const struct vkey *lo, const struct vkey *hi,
                      bool locked, struct sums *out)
{
    size_t len = 0;
    struct sbuf what = { 0 };
    sb_printf(&what, "COUNT(*), IFNULL(BIT_XOR(%s), 0)", t->hash);
    char *sql = what.oom ? NULL : chunk_sql(v, t, lo, hi, what.p, locked ? "LOCK IN SHARE MODE" : "", &len);
    free(what.p);
    if (sql == NULL) {
        snprintf(v->err, sizeof v->err, "out of memory");
        return -1;
    }
    int rc = mysql_real_query(m, sql, (unsigned long)len);
    free(sql);
    MYSQL_RES *res = rc == 0 ? mysql_store_result(m) : NULL;
    if (res == NULL) {
        if (locked && mysql_errno(m) == ER_LOCK_WAIT_TIMEOUT)
            return 2;
        return query_failed(v, m, side_of(v, m == v->src));
    }
    MYSQL_ROW row = mysql_fetch_row(res);
    out->rows = row && row[0] ? strtoull(row[0], NULL, 10) : 0;
    snprintf(out->hash, sizeof out->hash, "%s", row && row[1] ? row[1] : "0");
    mysql_free_result(res);
    return 0;
}

static bool printable_utf8(const unsigned char *s, unsigned long n)
{
    for (unsigned long i = 0; i < n;) {
        unsigned char c = s[i];
        size_t more = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : 9;
        if (c < 0x20 || c == 0x7F || more > 3 || (more == 1 && c < 0xC2) || i + more >= n)
            return false;
        for (size_t j = 1; j <= more; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
        i += more + 1;
    }
    return true;
}

/* "42", "us" or, for a composite key, "(us, 42)", from the display columns of a row; bytes that are
 * not printable UTF-8 (binary keys) as 0x hex. NULL when out of memory. */
static char *key_text(const struct vtable *t, MYSQL_ROW row, const unsigned long *lens)
{
    struct sbuf b = { 0 };
    if (t->n_key > 1)
        sb_str(&b, "(");
    for (size_t i = 0; i < t->n_key; i++) {
        const unsigned char *v = (const unsigned char *)row[i];
        if (i)
            sb_str(&b, ", ");
        if (v == NULL)
            sb_str(&b, "NULL");
        else if (printable_utf8(v, lens[i]))
            sb_add(&b, row[i], lens[i]);
        else {
            sb_str(&b, "0x");
            for (unsigned long j = 0; j < lens[i]; j++)
                sb_printf(&b, "%02X", v[j]);
        }
    }
    if (t->n_key > 1)
        sb_str(&b, ")");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p ? b.p : strdup("");
}

/* The key CHUNK_ROWS keys after lo into *hi (hi->set = false: the rest fits in this chunk). */
static int chunk_end(struct verify *v, const struct vtable *t, const struct vkey *lo, struct vkey *hi)
{
    size_t len = 0;
    struct sbuf tl = { 0 }, what = { 0 };
    sb_printf(&tl, "ORDER BY %s LIMIT %d, 1", t->order_list, CHUNK_ROWS - 1);
    sb_printf(&what, "%s%s", t->key_list, t->display_list);
    char *sql = tl.oom || what.oom ? NULL : chunk_sql(v, t, lo, NULL, what.p, tl.p, &len);
    free(tl.p);
    free(what.p);
    if (sql == NULL) {
        snprintf(v->err, sizeof v->err, "out of memory");
        return -1;
    }
    int rc = mysql_real_query(v->src, sql, (unsigned long)len);
    free(sql);
    MYSQL_RES *res = rc == 0 ? mysql_store_result(v->src) : NULL;
    if (res == NULL)
        return query_failed(v, v->src, side_of(v, true));
    MYSQL_ROW row = mysql_fetch_row(res);
    unsigned long *lens = row ? mysql_fetch_lengths(res) : NULL;
    key_free(hi, t->n_key);
    if (row != NULL) {
        hi->v = calloc(t->n_key, sizeof *hi->v);
        hi->len = calloc(t->n_key, sizeof *hi->len);
        bool oom = hi->v == NULL || hi->len == NULL;
        for (size_t k = 0; !oom && k < t->n_key; k++) {
            hi->len[k] = lens[k];
            hi->v[k] = malloc(lens[k] + 1);
            oom = hi->v[k] == NULL;
            if (!oom && row[k]) {
                memcpy(hi->v[k], row[k], lens[k]);
                hi->v[k][lens[k]] = '\0';
            } else if (!oom) {
                free(hi->v[k]);
                hi->v[k] = NULL;
            }
        }
        if (!oom)
            oom = (hi->text = key_text(t, row + t->n_key, lens + t->n_key)) == NULL;
        if (oom) {
            mysql_free_result(res);
            key_free(hi, t->n_key);
            snprintf(v->err, sizeof v->err, "out of memory");
            return -1;
        }
        hi->set = true;
    }
    mysql_free_result(res);
    return 0;
}

/* Opens the source's read for a chunk: a consistent snapshot (or, locked, a plain transaction whose
 * share locks come with the sums) and the position that covers it. The caller ends it with
 * source_end(). 0, 1, -1, 2 as chunk_sums. */
static int source_sums(struct verify *v, const struct vtable *t, const struct vkey *lo, struct vkey *hi,
                       bool find_end, bool locked, struct sums *out, char *pos, size_t poslen)
{
    char err[512];
    bool found;
    if (sy_mariadb_exec(v->src, err, sizeof err, "%s",
                        locked ? "START TRANSACTION" : "START TRANSACTION WITH CONSISTENT SNAPSHOT") != 0)
        return query_failed(v, v->src, side_of(v, true));
    int rc = 0;
    if (!locked && sy_mariadb_value(v->src, pos, poslen, &found, err, sizeof err, "SELECT @@gtid_binlog_pos") != 0)
        rc = query_failed(v, v->src, side_of(v, true));
    if (rc == 0 && find_end)
        rc = chunk_end(v, t, lo, hi);
    if (rc == 0)
        rc = chunk_sums(v, v->src, t, lo, hi, locked, out);
    /* locked: every change to the range is committed now (and so in the binlog): read after the locks */
    if (rc == 0 && locked &&
        sy_mariadb_value(v->src, pos, poslen, &found, err, sizeof err, "SELECT @@gtid_binlog_pos") != 0)
        rc = query_failed(v, v->src, side_of(v, true));
    if (rc != 0 || !locked) {
        if (sy_mariadb_exec(v->src, err, sizeof err, "%s", rc == 0 ? "COMMIT" : "ROLLBACK") != 0 && rc == 0)
            rc = query_failed(v, v->src, side_of(v, true));
    }
    return rc;
}

static int source_end(struct verify *v)
{
    char err[512];
    return sy_mariadb_exec(v->src, err, sizeof err, "ROLLBACK") == 0 ? 0 : query_failed(v, v->src, "business");
}

static bool reached(struct verify *v, const char *pos, int timeout_ms)
{
    if (v->reached == NULL || pos[0] == '\0')
        return true;
    if (v->reached(v->arg, pos, timeout_ms))
        return true;
    v->wait_ms = WAIT_AFTER_TIMEOUT_MS;
    return false;
}

static bool same(const struct sums *a, const struct sums *b)
{
    return a->rows == b->rows && strcmp(a->hash, b->hash) == 0;
}

/* ---- results --------------------------------------------------------------------------------- */

/* A bound for the result: its text, or null when unbounded. */
static json_t *key_json(const struct vkey *k)
{
    json_t *j = k->set && k->text ? json_string(k->text) : NULL;
    return j ? j : json_null();
}

static json_t *table_json(const struct verify *v, const struct vtable *t, const char *status, uint64_t src_rows,
                          uint64_t dst_rows, uint64_t chunks, json_t *mismatches, const char *detail)
{
    char name[520];
    snprintf(name, sizeof name, "%s.%s", t->db, t->table);
    json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:o}", "table", name, "status", status,
                          v->source_is_business ? "business_rows" : "dr_rows", (json_int_t)src_rows,
                          v->source_is_business ? "dr_rows" : "business_rows", (json_int_t)dst_rows, "chunks",
                          (json_int_t)chunks, "mismatches", mismatches ? mismatches : json_array());
    if (j && detail && detail[0])
        json_object_set_new(j, "detail", json_string(detail));
    return j;
}

/* ---- one table --------------------------------------------------------------------------------- */

/* Whether the destination has the table. 0 / 1 (missing) / -1. */
static int dest_missing(struct verify *v, const struct vtable *t)
{
    char *edb = sy_mariadb_escape(v->dst, t->db), *etb = sy_mariadb_escape(v->dst, t->table), out[32], err[512];
    bool found;
    int rc = sy_mariadb_value(v->dst, out, sizeof out, &found, err, sizeof err,
                              "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='%s' AND "
                              "TABLE_NAME='%s'",
                              edb ? edb : "", etb ? etb : "");
    free(edb);
    free(etb);
    if (rc != 0) {
        snprintf(v->err, sizeof v->err, "dr: %s", err);
        return -1;
    }
    return strcmp(out, "0") == 0 ? 1 : 0;
}

/* Checks one chunk (lo, hi] — hi found in the first snapshot — with rechecks. *s, *d: the sums of
 * the last complete attempt; *confirmed: the locked recheck ran (a difference left is real). 0 done,
 * 3 not caught up (v->table_err says where), 1 table error, -1 fatal. */
static int check_chunk(struct verify *v, const struct vtable *t, const struct vkey *lo, struct vkey *hi,
                       struct sums *s, struct sums *d, bool *confirmed)
{
    char pos[1024] = "";
    *confirmed = false;
    int rc = source_sums(v, t, lo, hi, true, false, s, pos, sizeof pos);
    if (rc != 0)
        return rc;
    if (!reached(v, pos, v->wait_ms)) {
        snprintf(v->table_err, sizeof v->table_err, "the forward writer did not reach business position %s in time",
                 pos);
        return 3;
    }
    if ((rc = chunk_sums(v, v->dst, t, lo, hi, false, d)) != 0)
        return rc;
    for (int r = 1; r <= RECHECKS && !same(s, d); r++) {
        bool locked = r == RECHECKS;
        struct sums s2, d2;
        rc = source_sums(v, t, lo, hi, false, locked, &s2, pos, sizeof pos);
        if (rc == 2) /* business held locks on the range for LOCK_WAIT_S: the difference stays unconfirmed */
            return 0;
        if (rc != 0)
            return rc;
        int wait = locked && v->wait_ms > LOCKED_WAIT_MS ? LOCKED_WAIT_MS : v->wait_ms;
        if (!reached(v, pos, wait)) {
            snprintf(v->table_err, sizeof v->table_err,
                     "the forward writer did not reach business position %s within %d ms%s", pos, wait,
                     locked ? " (while the chunk was locked on business for its last recheck)" : "");
            if (locked && source_end(v) < 0)
                return -1;
            return 3;
        }
        rc = chunk_sums(v, v->dst, t, lo, hi, false, &d2);
        if (locked && source_end(v) < 0)
            return -1;
        if (rc != 0)
            return rc;
        *s = s2;
        *d = d2;
        *confirmed = locked;
        sy_log_debug("pair %s: verify %s.%s: chunk recheck %d%s: %s", v->cfg->name, t->db, t->table, r,
                     locked ? " (locked)" : "", same(s, d) ? "equal" : "still different");
    }
    return 0;
}

static int verify_table(struct verify *v, struct vtable *t, json_t *tables, bool caught_up, bool *clean)
{
    v->table_err[0] = '\0';
    int rc = load_columns(v, t);
    if (rc < 0)
        return -1;
    if (rc > 0) {
        *clean = false;
        json_array_append_new(tables, table_json(v, t, "error", 0, 0, 0, NULL, v->table_err));
        return 0;
    }
    if ((rc = dest_missing(v, t)) != 0) {
        if (rc < 0)
            return -1;
        char n[32], err[512];
        bool found;
        if (sy_mariadb_value(v->src, n, sizeof n, &found, err, sizeof err, "SELECT COUNT(*) FROM %s", t->qname) != 0)
            snprintf(n, sizeof n, "0");
        *clean = false;
        json_array_append_new(tables, table_json(v, t, caught_up ? "missing_on_dr" : "not_caught_up",
                                                 strtoull(n, NULL, 10), 0, 0, NULL,
                                                 caught_up ? NULL : "the forward writer has not created it yet"));
        return 0;
    }
    json_t *mismatches = json_array();
    struct vkey lo = { 0 }, hi = { 0 };
    uint64_t src_rows = 0, dst_rows = 0, chunks = 0, bad = 0;
    const char *status = "ok";
    char detail[1200] = "";
    for (;;) {
        struct sums s = { 0 }, d = { 0 };
        bool confirmed = false;
        rc = check_chunk(v, t, &lo, &hi, &s, &d, &confirmed);
        if (rc < 0)
            break;
        if (rc == 1) {
            status = "error";
            snprintf(detail, sizeof detail, "%s", v->table_err);
            break;
        }
        if (rc == 3) {
            status = bad ? "mismatch" : "not_caught_up";
            snprintf(detail, sizeof detail, "stopped after %llu chunk(s): %s", (unsigned long long)chunks,
                     v->table_err);
            break;
        }
        chunks++;
        src_rows += s.rows;
        dst_rows += d.rows;
        if (!same(&s, &d)) {
            status = "mismatch";
            if (bad++ < MAX_LISTED)
                json_array_append_new(mismatches, json_pack("{s:o,s:o,s:I,s:I,s:b}", "from", key_json(&lo), "to",
                                                            key_json(&hi),
                                                            v->source_is_business ? "business_rows" : "dr_rows",
                                                            (json_int_t)s.rows,
                                                            v->source_is_business ? "dr_rows" : "business_rows",
                                                            (json_int_t)d.rows, "confirmed", confirmed));
        }
        if (!hi.set)
            break;
        key_free(&lo, t->n_key);
        lo = hi;
        hi = (struct vkey){ 0 };
    }
    key_free(&lo, t->n_key);
    key_free(&hi, t->n_key);
    if (rc < 0) {
        json_decref(mismatches);
        return -1;
    }
    if (bad > MAX_LISTED && detail[0] == '\0')
        snprintf(detail, sizeof detail, "%llu mismatching chunk(s), the first %d listed", (unsigned long long)bad,
                 MAX_LISTED);
    if (strcmp(status, "ok") != 0)
        *clean = false;
    sy_log_info("pair %s: verify %s.%s: %s, %llu chunk(s), %llu/%llu row(s)%s%s", v->cfg->name, t->db, t->table,
                status, (unsigned long long)chunks, (unsigned long long)src_rows, (unsigned long long)dst_rows,
                detail[0] ? ": " : "", detail);
    json_array_append_new(tables, table_json(v, t, status, src_rows, dst_rows, chunks, mismatches, detail));
    return 0;
}

/* ---- the command ------------------------------------------------------------------------------- */

static int connect_sides(struct verify *v)
{
    char err[512];
    /* a stop may cut them, from the connect on */
    v->src = sy_mariadb_connect_watched(v->source, v->cfg, 0, TIMEOUT_S, v->watch, &v->src_slot, NULL, err, sizeof err);
    if (v->src == NULL) {
        snprintf(v->err, sizeof v->err, "%s: %s", side_of(v, true), err);
        return -1;
    }
    v->dst = sy_mariadb_connect_watched(v->dest, v->cfg, 0, TIMEOUT_S, v->watch, &v->dst_slot, NULL, err, sizeof err);
    if (v->dst == NULL) {
        snprintf(v->err, sizeof v->err, "%s: %s", side_of(v, false), err);
        return -1;
    }
    /* TIMESTAMP values read as text in UTC on both sides; REPEATABLE READ for the snapshots. */
    if (sy_mariadb_exec(v->src, err, sizeof err, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ") != 0 ||
        sy_mariadb_exec(v->src, err, sizeof err, "SET SESSION time_zone='+00:00', innodb_lock_wait_timeout=%d",
                        LOCK_WAIT_S) != 0) {
        snprintf(v->err, sizeof v->err, "%s: session setup: %s", side_of(v, true), err);
        return -1;
    }
    if (sy_mariadb_exec(v->dst, err, sizeof err, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ") != 0 ||
        sy_mariadb_exec(v->dst, err, sizeof err, "SET SESSION time_zone='+00:00'") != 0) {
        snprintf(v->err, sizeof v->err, "%s: session setup: %s", side_of(v, false), err);
        return -1;
    }
    return 0;
}

static int run(struct verify *v, const char *filter, json_t *result)
{
    if (connect_sides(v) != 0 || list_tables(v, filter) != 0)
        return -1;
    if (v->n_tables == 0 && filter != NULL) {
        snprintf(v->err, sizeof v->err, "no synchronized base table matches --objects '%s'", filter);
        return -2;
    }
    /* Tables that exist on the source now exist on the destination once the writer is past this. */
    char pos[1024], err[512];
    bool found;
    if (sy_mariadb_value(v->src, pos, sizeof pos, &found, err, sizeof err, "SELECT @@gtid_binlog_pos") != 0) {
        snprintf(v->err, sizeof v->err, "%s: %s", side_of(v, true), err);
        return -1;
    }
    bool caught_up = reached(v, pos, v->wait_ms);
    json_t *tables = json_array();
    bool clean = true;
    for (size_t i = 0; i < v->n_tables; i++)
        if (verify_table(v, &v->tables[i], tables, caught_up, &clean) != 0) {
            json_decref(tables);
            return -1;
        }
    json_object_set_new(result, "pair", json_string(v->cfg->name));
    json_object_set_new(result, "clean", json_boolean(clean));
    json_object_set_new(result, "tables", tables);
    return 0;
}

int sy_mariadb_verify(const struct sy_pair_cfg *cfg, const struct sy_module_ctx *watch, const char *objects_filter,
                      sy_verify_reached_fn write_reached, void *arg, json_t *result, char *err, size_t errlen)
{
    struct verify *v = calloc(1, sizeof *v);
    if (v == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    *v = (struct verify){ .cfg = cfg, .source = &cfg->business, .dest = &cfg->dr, .source_is_business = true,
                          .watch = watch, .src_slot = -1, .dst_slot = -1, .reached = write_reached, .arg = arg,
                          .wait_ms = WAIT_MS };
    mysql_thread_init();
    int rc = run(v, objects_filter, result);
    if (rc != 0)
        snprintf(err, errlen, "%s", v->err);
    for (size_t i = 0; i < v->n_tables; i++)
        table_fini(&v->tables[i]);
    free(v->tables);
    sy_module_socket_drop(watch, v->src_slot);
    sy_module_socket_drop(watch, v->dst_slot);
    if (v->src)
        mysql_close(v->src);
    if (v->dst)
        mysql_close(v->dst);
    free(v);
    mysql_thread_end();
    return rc;
}
