/* The unreplicated tail of a MariaDB source (capture/mariadb_tail.h): one admin connection reads the
 * target position (@@gtid_binlog_pos) and the tables' keys, a second one streams the binlog from the
 * start position with BINLOG_DUMP_NON_BLOCK (the server sends EOF at the end of its binlog instead of
 * waiting; a heartbeat outside a transaction means the same). Events are decoded with the pure decoders
 * (capture/binlog_codec.h, capture/binlog_ddl.h), as the forward collector does, but turned into JSON
 * instead of spool records. Nothing is written anywhere. */
#include "capture/mariadb_tail.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <mysql.h>
#include <mariadb_rpl.h>

#include "capture/binlog_codec.h"
#include "capture/binlog_ddl.h"
#include "capture/binlog_savepoint.h"
#include "engine/mariadb_gtid_set.h"
#include "engine/mariadb_client.h"

#define MAX_TABLE_MAPS 256
#define HEARTBEAT_NS 500000000ull /* 0.5 s: only sent if the server ignored NON_BLOCK and went idle */
#define VALUE_OVERHEAD 16         /* bytes counted per value toward SY_TAIL_MAX_BYTES besides its own */

/* Key columns of one table, by name, in key order. */
struct tail_key {
    char db[257], table[257];
    char **cols;           /* owned: n names */
    size_t n;
    struct tail_key *next; /* owned */
};

struct tail_reader {
    const struct sy_pair_cfg *cfg;    /* ref */
    const struct sy_endpoint *src;    /* ref */
    MYSQL *meta;                      /* owned: positions, key columns */
    MYSQL *dump;                      /* owned: the binlog stream */
    MARIADB_RPL *rpl;                 /* owned */
    MARIADB_RPL_EVENT *ev;            /* owned */
    struct sy_gtid_set from, to;      /* the tail is (from, to] per domain */
    struct sy_gtid_set pos;           /* every transaction up to here has been read */
    bool has_crc;
    bool done;                        /* reached `to` or the end of the binlog */
    /* the transaction being read */
    bool in_txn;
    bool standalone;                  /* one statement, no XID (DDL) */
    bool counts;                      /* inside (from, to] and not Switchyard's own write */
    struct sy_gtid gtid;
    uint32_t server_id;
    uint32_t timestamp;
    json_t *rows, *ddl, *tables;      /* owned: of the transaction being read */
    struct sy_savepoints savepoints;  /* its savepoints: mark = rows then, aux = ddl then */
    struct sy_binlog_table_map maps[MAX_TABLE_MAPS];
    size_t n_maps;
    /* results */
    json_t *txns;                     /* ref: out["transactions"] */
    json_t *all_tables;               /* ref: out["tables"] */
    uint64_t n_rows;
    uint64_t bytes;                   /* toward SY_TAIL_MAX_BYTES */
    struct tail_key *keys;            /* owned cache */
    uint8_t *inflate_buf;             /* owned */
    size_t inflate_cap;
    struct sy_value *before, *after;  /* owned: per-row value arrays */
    size_t values_cap;
    char err[1024];
};

/* ---- values ----------------------------------------------------------------------------------- */

static json_t *bytes_json(const uint8_t *p, size_t len)
{
    if (len == 0)
        return json_string("");
    if (memchr(p, 0, len) == NULL) {
        json_t *s = json_stringn((const char *)p, len); /* NULL when not valid UTF-8 */
        if (s)
            return s;
    }
    static const char hexd[] = "0123456789abcdef";
    char *h = malloc(len * 2 + 1);
    if (h == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        h[2 * i] = hexd[p[i] >> 4];
        h[2 * i + 1] = hexd[p[i] & 15];
    }
    h[len * 2] = '\0';
    json_t *o = json_pack("{s:s}", "hex", h);
    free(h);
    return o;
}

static json_t *tagged(const char *tag, const char *fmt, ...) SY_PRINTF(2, 3);
static json_t *tagged(const char *tag, const char *fmt, ...)
{
    char t[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t, sizeof t, fmt, ap);
    va_end(ap);
    return json_pack("{s:s}", tag, t);
}

static json_t *value_json(const struct sy_value *v)
{
    switch (v->type) {
    case SY_VAL_NULL:
        return json_null();
    case SY_VAL_INT:
        return json_integer((json_int_t)v->i);
    case SY_VAL_UINT:
        if (v->u <= (uint64_t)INT64_MAX)
            return json_integer((json_int_t)v->u);
        return tagged("uint", "%" PRIu64, v->u);
    case SY_VAL_FLOAT:
        return tagged("float", "%.9g", v->d);
    case SY_VAL_DOUBLE:
        return tagged("double", "%.17g", v->d);
    case SY_VAL_DECIMAL:
    case SY_VAL_TEMPORAL:
    case SY_VAL_STRING:
    case SY_VAL_BLOB:
        return bytes_json(v->p, v->len);
    case SY_VAL_DOCUMENT: /* never in a binlog */
    case SY_VAL_PATCH:
        return NULL;
    }
    return NULL;
}

/* ---- keys ------------------------------------------------------------------------------------- */

static void keys_free(struct tail_key *k)
{
    while (k) {
        struct tail_key *next = k->next;
        for (size_t i = 0; i < k->n; i++)
            free(k->cols[i]);
        free(k->cols);
        free(k);
        k = next;
    }
}

/* The table's key columns as the source defines them now (PRIMARY, else the first NOT NULL UNIQUE). */
static struct tail_key *key_of(struct tail_reader *t, const char *db, const char *table)
{
    for (struct tail_key *k = t->keys; k; k = k->next)
        if (strcmp(k->db, db) == 0 && strcmp(k->table, table) == 0)
            return k;
    struct tail_key *k = calloc(1, sizeof *k);
    char *edb = sy_mariadb_escape(t->meta, db), *etb = sy_mariadb_escape(t->meta, table);
    char sql[4096];
    MYSQL_RES *res = NULL;
    if (k == NULL || edb == NULL || etb == NULL)
        goto oom;
    snprintf(k->db, sizeof k->db, "%s", db);
    snprintf(k->table, sizeof k->table, "%s", table);
    snprintf(sql, sizeof sql,
             "SELECT c.COLUMN_NAME, " SY_MARIADB_KEY_SEQ_SQL " AS ks FROM information_schema.COLUMNS c "
             "WHERE c.TABLE_SCHEMA='%s' AND c.TABLE_NAME='%s' HAVING ks IS NOT NULL ORDER BY ks",
             edb, etb);
    if (mysql_real_query(t->meta, sql, (unsigned long)strlen(sql)) != 0 ||
        (res = mysql_store_result(t->meta)) == NULL) {
        snprintf(t->err, sizeof t->err, "reading the key of %s.%s on %s:%u: %u %s", db, table, t->src->host,
                 t->src->port, mysql_errno(t->meta), mysql_error(t->meta));
        free(k);
        k = NULL;
        goto out;
    }
    size_t n = (size_t)mysql_num_rows(res);
    k->cols = calloc(n ? n : 1, sizeof *k->cols);
    if (k->cols == NULL)
        goto oom;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL)
        if (row[0] && (k->cols[k->n] = strdup(row[0])) != NULL)
            k->n++;
    k->next = t->keys;
    t->keys = k;
    goto out;
oom:
    snprintf(t->err, sizeof t->err, "out of memory");
    if (k)
        free(k->cols);
    free(k);
    k = NULL;
out:
    if (res)
        mysql_free_result(res);
    free(edb);
    free(etb);
    return k;
}

static int column_index(const struct sy_binlog_table_map *tm, const char *name)
{
    for (uint32_t i = 0; i < tm->n_columns; i++)
        if (tm->names && tm->names[i] && strcasecmp(tm->names[i], name) == 0)
            return (int)i;
    return -1;
}

/* {"col": value, ...} of the key, from one image; json null when the table has no usable key. */
static json_t *key_json(const struct tail_key *k, const struct sy_binlog_table_map *tm, const struct sy_value *img)
{
    json_t *key = json_object();
    if (key == NULL)
        return NULL;
    size_t found = 0;
    for (size_t i = 0; i < k->n; i++) {
        int c = column_index(tm, k->cols[i]);
        if (c < 0)
            break; /* the key the source has now is not in these rows (changed since) */
        json_object_set_new(key, tm->names[c], value_json(&img[c]));
        found++;
    }
    if (k->n > 0 && found == k->n)
        return key;
    json_object_clear(key); /* fall back on the binlog's PRIMARY KEY metadata */
    for (uint32_t c = 0; tm->is_key && c < tm->n_columns; c++)
        if (tm->is_key[c])
            json_object_set_new(key, tm->names[c], value_json(&img[c]));
    if (json_object_size(key) > 0)
        return key;
    json_decref(key);
    return json_null();
}

/* ---- transactions ---------------------------------------------------------------------------- */

static void maps_clear(struct tail_reader *t)
{
    for (size_t i = 0; i < t->n_maps; i++)
        sy_binlog_table_map_free(&t->maps[i]);
    t->n_maps = 0;
}

static void txn_clear(struct tail_reader *t)
{
    json_decref(t->rows);
    json_decref(t->ddl);
    json_decref(t->tables);
    t->rows = t->ddl = t->tables = NULL;
    t->in_txn = false;
    sy_savepoints_clear(&t->savepoints);
    maps_clear(t);
}

static bool in_range(const struct tail_reader *t, const struct sy_gtid *g)
{
    for (size_t i = 0; i < t->from.n; i++)
        if (t->from.v[i].domain == g->domain && g->seq <= t->from.v[i].seq)
            return false; /* spooled before the failover */
    for (size_t i = 0; i < t->to.n; i++)
        if (t->to.v[i].domain == g->domain)
            return g->seq <= t->to.v[i].seq;
    return false;         /* a domain that began after the read started */
}

static int txn_start(struct tail_reader *t, const struct sy_binlog_gtid *g, const struct sy_binlog_header *h)
{
    txn_clear(t);
    t->in_txn = true;
    t->standalone = (g->flags & SY_GTID_FL_STANDALONE) != 0;
    t->gtid = (struct sy_gtid){ g->domain_id, h->server_id, g->seq_no };
    t->server_id = h->server_id;
    t->timestamp = h->timestamp;
    t->counts = h->server_id != t->cfg->writer_tag && in_range(t, &t->gtid);
    t->rows = json_array();
    t->ddl = json_array();
    t->tables = json_array();
    if (t->rows == NULL || t->ddl == NULL || t->tables == NULL) {
        snprintf(t->err, sizeof t->err, "out of memory");
        return -1;
    }
    return 0;
}

static bool name_in(const json_t *arr, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
        if (strcmp(json_string_value(v), name) == 0)
            return true;
    return false;
}

static void gtid_text(const struct sy_gtid *g, char *out, size_t outlen)
{
    snprintf(out, outlen, "%" PRIu32 "-%" PRIu32 "-%" PRIu64, g->domain, g->server, g->seq);
}

/* The transaction ended in the binlog. */
static int txn_commit(struct tail_reader *t)
{
    if (!t->in_txn)
        return 0;
    int rc = 0;
    if (t->counts && (json_array_size(t->rows) > 0 || json_array_size(t->ddl) > 0)) {
        char id[80];
        gtid_text(&t->gtid, id, sizeof id);
        json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:O, s:O, s:O}", "position", id, "gtid", id, "server_id",
                              (json_int_t)t->server_id, "timestamp", (json_int_t)t->timestamp, "tables", t->tables,
                              "rows", t->rows, "ddl", t->ddl);
        size_t i;
        json_t *v;
        json_array_foreach(t->tables, i, v)
            if (!name_in(t->all_tables, json_string_value(v)))
                json_array_append(t->all_tables, v);
        if (o == NULL || json_array_append_new(t->txns, o) != 0) {
            snprintf(t->err, sizeof t->err, "out of memory");
            rc = -1;
        }
    }
    if (!sy_gtid_set_advance(&t->pos, &t->gtid)) {
        snprintf(t->err, sizeof t->err, "more than %d GTID domains", SY_GTID_SET_MAX);
        rc = -1;
    }
    txn_clear(t);
    if (sy_gtid_set_covers(&t->pos, &t->to))
        t->done = true;
    return rc;
}

/* ---- events ----------------------------------------------------------------------------------- */

static struct sy_binlog_table_map *map_find(struct tail_reader *t, uint64_t id)
{
    for (size_t i = 0; i < t->n_maps; i++)
        if (t->maps[i].table_id == id)
            return &t->maps[i];
    return NULL;
}

static int on_table_map(struct tail_reader *t, const struct sy_binlog_body *b)
{
    if (t->n_maps == MAX_TABLE_MAPS) {
        snprintf(t->err, sizeof t->err, "more than %d tables in one transaction", MAX_TABLE_MAPS);
        return -1;
    }
    struct sy_binlog_table_map *tm = &t->maps[t->n_maps];
    memset(tm, 0, sizeof *tm);
    if (sy_binlog_table_map_parse(b, tm) != SY_PARSE_OK) {
        sy_binlog_table_map_free(tm);
        snprintf(t->err, sizeof t->err, "malformed TABLE_MAP event");
        return -1;
    }
    t->n_maps++;
    return 0;
}

static json_t *image_json(struct tail_reader *t, const struct sy_binlog_table_map *tm, const struct sy_value *img)
{
    json_t *o = json_object();
    for (uint32_t i = 0; o && i < tm->n_columns; i++) {
        json_t *v = value_json(&img[i]);
        if (v == NULL || json_object_set_new(o, tm->names[i], v) != 0) {
            json_decref(o);
            return NULL;
        }
        t->bytes += img[i].len + VALUE_OVERHEAD;
    }
    return o;
}

static int on_rows(struct tail_reader *t, uint8_t type, const struct sy_binlog_body *b)
{
    struct sy_binlog_rows rows;
    char id[80];
    gtid_text(&t->gtid, id, sizeof id);
    if (sy_binlog_rows_parse(type, b, &rows) != SY_PARSE_OK) {
        snprintf(t->err, sizeof t->err, "malformed ROWS event in %s", id);
        return -1;
    }
    struct sy_binlog_table_map *tm = map_find(t, rows.table_id);
    if (tm == NULL) {
        snprintf(t->err, sizeof t->err, "ROWS event for unknown table id %" PRIu64 " in %s", rows.table_id, id);
        return -1;
    }
    if (!t->in_txn || !t->counts || !sy_objects_match(t->cfg, tm->db, tm->table))
        return 0;
    if (!tm->has_names) {
        snprintf(t->err, sizeof t->err, "%s.%s: the binlog has no column names (binlog_row_metadata must be FULL) "
                 "at %s", tm->db, tm->table, id);
        return -1;
    }
    if (!sy_binlog_rows_full_image(&rows)) {
        snprintf(t->err, sizeof t->err, "%s.%s: a row event without the full row image (binlog_row_image must be "
                 "FULL) at %s: its rows cannot be reverted", tm->db, tm->table, id);
        return -1;
    }
    if (tm->n_columns > t->values_cap) {
        free(t->before);
        free(t->after);
        t->before = calloc(tm->n_columns, sizeof *t->before);
        t->after = calloc(tm->n_columns, sizeof *t->after);
        t->values_cap = tm->n_columns;
        if (t->before == NULL || t->after == NULL) {
            t->values_cap = 0;
            snprintf(t->err, sizeof t->err, "out of memory");
            return -1;
        }
    }
    const struct tail_key *k = key_of(t, tm->db, tm->table);
    if (k == NULL)
        return -1;
    char name[520];
    snprintf(name, sizeof name, "%s.%s", tm->db, tm->table);
    if (!name_in(t->tables, name))
        json_array_append_new(t->tables, json_string(name));
    static const char *const op_names[] = { [SY_ROW_INSERT] = "insert", [SY_ROW_UPDATE] = "update",
                                            [SY_ROW_DELETE] = "delete" };
    struct sy_binlog_row_iter it;
    sy_binlog_row_iter_init(&it, &rows, tm);
    enum sy_parse pr;
    int rc = 0;
    while (rc == 0 && (pr = sy_binlog_row_next(&it, t->before, t->after)) == SY_PARSE_OK) {
        bool has_before = rows.op != SY_ROW_INSERT, has_after = rows.op != SY_ROW_DELETE;
        json_t *before = has_before ? image_json(t, tm, t->before) : json_null();
        json_t *after = has_after ? image_json(t, tm, t->after) : json_null();
        json_t *key = key_json(k, tm, has_after ? t->after : t->before);
        json_t *row = NULL;
        if (before && after && key)
            row = json_pack("{s:s, s:s, s:o, s:o, s:o}", "table", name, "op", op_names[rows.op], "key", key,
                            "before", before, "after", after);
        else {
            json_decref(before);
            json_decref(after);
            json_decref(key);
        }
        if (row == NULL || json_array_append_new(t->rows, row) != 0) {
            snprintf(t->err, sizeof t->err, "out of memory");
            rc = -1;
        } else if (t->bytes > SY_TAIL_MAX_BYTES) {
            snprintf(t->err, sizeof t->err, "the tail holds more than %u bytes of row values (at %s): too large to "
                     "report; resolve it by hand", SY_TAIL_MAX_BYTES, id);
            rc = -1;
        }
        t->n_rows++;
    }
    if (rc == 0 && pr == SY_PARSE_BAD) {
        snprintf(t->err, sizeof t->err, "%s: malformed row image at %s: %s", name, id, it.err);
        rc = -1;
    }
    sy_binlog_row_iter_fini(&it);
    return rc;
}

static bool match_table(void *arg, const char *db, const char *table)
{
    return sy_objects_match(arg, db, table);
}

static bool match_db(void *arg, const char *db)
{
    return sy_objects_match_db(arg, db);
}

/* SAVEPOINT / ROLLBACK TO / RELEASE SAVEPOINT in a group (capture/binlog_savepoint.h): rows and DDL taken
 * after a savepoint the source rolled back to are not part of the transaction. 1 handled, 0 not one of
 * them, -1 failed (err). */
static int on_savepoint(struct tail_reader *t, const struct sy_binlog_query *q)
{
    char name[SY_SAVEPOINT_NAME_MAX];
    enum sy_savepoint_op op = sy_savepoint_parse(q->sql, q->sql_len, name, sizeof name);
    if (op == SY_SAVEPOINT_NONE)
        return 0;
    if (!t->in_txn)
        return 1;
    if (op == SY_SAVEPOINT_RELEASE) {
        sy_savepoints_release(&t->savepoints, name);
        return 1;
    }
    if (op == SY_SAVEPOINT_SET) {
        if (sy_savepoints_set(&t->savepoints, name, json_array_size(t->rows), json_array_size(t->ddl)))
            return 1;
        snprintf(t->err, sizeof t->err, "out of memory");
        return -1;
    }
    const struct sy_savepoint *s = sy_savepoints_rollback_to(&t->savepoints, name);
    if (s == NULL) {
        char id[80];
        gtid_text(&t->gtid, id, sizeof id);
        snprintf(t->err, sizeof t->err, "ROLLBACK TO savepoint `%s`, which transaction %s never set in the binlog",
                 name, id);
        return -1;
    }
    for (size_t n = json_array_size(t->rows); n > s->mark; n--) {
        json_array_remove(t->rows, n - 1);
        t->n_rows--;
    }
    for (size_t n = json_array_size(t->ddl); n > s->aux; n--)
        json_array_remove(t->ddl, n - 1);
    return 1;
}

static int on_query(struct tail_reader *t, const struct sy_binlog_body *b)
{
    struct sy_binlog_query q;
    if (sy_binlog_query_parse(b, &q) != SY_PARSE_OK) {
        snprintf(t->err, sizeof t->err, "malformed QUERY event");
        return -1;
    }
    char w[16];
    int sp = on_savepoint(t, &q);
    if (sp != 0)
        return sp < 0 ? -1 : 0;
    sy_ddl_first_word(q.sql, q.sql_len, w, sizeof w);
    if (strcasecmp(w, "ROLLBACK") == 0 && t->in_txn) { /* undone (capture/mariadb_collector.c, txn_end) */
        t->n_rows -= json_array_size(t->rows);
        json_array_clear(t->rows);
        json_array_clear(t->ddl);
    }
    if (strcasecmp(w, "COMMIT") == 0 || strcasecmp(w, "ROLLBACK") == 0)
        return txn_commit(t); /* COMMIT closes a non-transactional group too: its changes happened */
    if (strcasecmp(w, "BEGIN") == 0 || strcasecmp(w, "SAVEPOINT") == 0)
        return 0;
    if (strcasecmp(w, "XA") == 0) /* XA START/END: inside the group; XA COMMIT/ROLLBACK: a group of its own */
        return t->standalone ? txn_commit(t) : 0;
    if (t->in_txn && t->counts) {
        char default_db[257], what[600];
        snprintf(default_db, sizeof default_db, "%.*s", (int)q.db_len, q.db);
        struct sy_ddl_match m = { match_table, match_db, (void *)t->cfg };
        enum sy_ddl_kind kind = sy_ddl_classify(q.sql, q.sql_len, default_db, &m, what, sizeof what);
        if (kind == SY_DDL_SYNC || kind == SY_DDL_UNKNOWN_TARGET || kind == SY_DDL_STATEMENT_DML) {
            json_t *s = json_stringn(q.sql, q.sql_len);
            if (s == NULL)
                s = bytes_json((const uint8_t *)q.sql, q.sql_len);
            if (s == NULL || json_array_append_new(t->ddl, s) != 0) {
                snprintf(t->err, sizeof t->err, "out of memory");
                return -1;
            }
            t->bytes += q.sql_len + VALUE_OVERHEAD;
        }
    }
    return t->standalone ? txn_commit(t) : 0; /* a standalone group (DDL) is this one statement */
}

static int on_event(struct tail_reader *t, const uint8_t *p, size_t n)
{
    struct sy_binlog_header h;
    if (sy_binlog_header_parse(p, n, &h) != SY_PARSE_OK || h.event_size != n) {
        snprintf(t->err, sizeof t->err, "malformed binlog event header");
        return -1;
    }
    if (h.type == SY_BL_FORMAT_DESCRIPTION) {
        struct sy_binlog_fde fde;
        if (sy_binlog_fde_parse(p, n, &fde) == SY_PARSE_OK)
            t->has_crc = fde.checksum_alg == 1;
        return 0;
    }
    if (h.type == SY_BL_HEARTBEAT) { /* sent only when the dump waits at the binlog's end */
        if (!t->in_txn)
            t->done = true;
        return 0;
    }
    if (t->has_crc && !sy_binlog_crc_ok(p, n)) {
        snprintf(t->err, sizeof t->err, "binlog event type %u at position %u: CRC32 mismatch", h.type, h.next_pos);
        return -1;
    }
    struct sy_binlog_body body, inflated;
    if (!sy_binlog_body(p, n, t->has_crc, &body)) {
        snprintf(t->err, sizeof t->err, "binlog event type %u too short", h.type);
        return -1;
    }
    uint8_t type = h.type;
    if (sy_binlog_uncompressed_type(type) != type) {
        if (sy_binlog_inflate(type, &body, &t->inflate_buf, &t->inflate_cap, &inflated) != SY_PARSE_OK) {
            snprintf(t->err, sizeof t->err, "compressed binlog event type %u does not inflate", type);
            return -1;
        }
        body = inflated;
        type = sy_binlog_uncompressed_type(type);
    }
    switch (type) {
    case SY_BL_GTID: {
        struct sy_binlog_gtid g;
        if (sy_binlog_gtid_parse(&body, &g) != SY_PARSE_OK) {
            snprintf(t->err, sizeof t->err, "malformed GTID event");
            return -1;
        }
        return txn_start(t, &g, &h);
    }
    case SY_BL_TABLE_MAP:
        return on_table_map(t, &body);
    case SY_BL_WRITE_ROWS_V1:
    case SY_BL_UPDATE_ROWS_V1:
    case SY_BL_DELETE_ROWS_V1:
    case SY_BL_WRITE_ROWS_V2:
    case SY_BL_UPDATE_ROWS_V2:
    case SY_BL_DELETE_ROWS_V2:
        return on_rows(t, type, &body);
    case SY_BL_QUERY:
        return on_query(t, &body);
    case SY_BL_XID:
    case SY_BL_XA_PREPARE: /* as the collector: the prepared part is final in the binlog */
        return txn_commit(t);
    default:
        return 0; /* ROTATE, GTID_LIST, BINLOG_CHECKPOINT, ANNOTATE_ROWS, STOP ... */
    }
}

/* ---- the read --------------------------------------------------------------------------------- */

static int open_dump(struct tail_reader *t)
{
    unsigned int e = 0;
    t->dump = sy_mariadb_connect(t->src, t->cfg, 0, SY_TAIL_READ_TIMEOUT_S, &e, t->err, sizeof t->err);
    if (t->dump == NULL)
        return -1;
    char pos[1024], err[512];
    sy_gtid_set_format(&t->from, pos, sizeof pos);
    if (sy_mariadb_exec(t->dump, err, sizeof err,
                        "SET @master_binlog_checksum=@@global.binlog_checksum, @mariadb_slave_capability=4, "
                        "@slave_connect_state='%s', @slave_gtid_strict_mode=0, @slave_gtid_ignore_duplicates=0, "
                        "@master_heartbeat_period=%llu",
                        pos, (unsigned long long)HEARTBEAT_NS) != 0) {
        snprintf(t->err, sizeof t->err, "setting up the binlog dump on %s:%u: %s", t->src->host, t->src->port, err);
        return -1;
    }
    if ((t->rpl = mariadb_rpl_init(t->dump)) == NULL) {
        snprintf(t->err, sizeof t->err, "mariadb_rpl_init failed");
        return -1;
    }
    uint32_t sid = t->cfg->collector_server_id + SY_TAIL_SERVER_ID_OFFSET;
    if (sid == 0)
        sid = 1;
    mariadb_rpl_optionsv(t->rpl, MARIADB_RPL_SERVER_ID, sid);
    mariadb_rpl_optionsv(t->rpl, MARIADB_RPL_FILENAME, "", (size_t)0);
    mariadb_rpl_optionsv(t->rpl, MARIADB_RPL_START, (unsigned long)4);
    mariadb_rpl_optionsv(t->rpl, MARIADB_RPL_FLAGS, (uint32_t)MARIADB_RPL_BINLOG_DUMP_NON_BLOCK);
    if (mariadb_rpl_open(t->rpl) != 0 || mysql_errno(t->dump) != 0) {
        unsigned int me = mysql_errno(t->dump);
        snprintf(t->err, sizeof t->err, "binlog dump from %s:%u at '%s': %u %s", t->src->host, t->src->port, pos,
                 me ? me : mariadb_rpl_errno(t->rpl), me ? mysql_error(t->dump) : mariadb_rpl_error(t->rpl));
        return -1;
    }
    return 0;
}

static int stream(struct tail_reader *t)
{
    time_t deadline = time(NULL) + SY_TAIL_DEADLINE_S;
    char pos[1024];
    while (!t->done) {
        if (time(NULL) > deadline) {
            sy_gtid_set_format(&t->pos, pos, sizeof pos);
            snprintf(t->err, sizeof t->err, "reading the tail of %s:%u took over %d s (at %s)", t->src->host,
                     t->src->port, SY_TAIL_DEADLINE_S, pos);
            return -1;
        }
        t->ev = mariadb_rpl_fetch(t->rpl, t->ev);
        if (t->ev == NULL) {
            unsigned int me = mysql_errno(t->dump);
            if (me == 0 && !t->in_txn)
                return 0; /* EOF: the end of the source's binlog (NON_BLOCK) */
            sy_gtid_set_format(&t->pos, pos, sizeof pos);
            snprintf(t->err, sizeof t->err, "binlog stream from %s:%u ended at '%s'%s: %u %s", t->src->host,
                     t->src->port, pos, t->in_txn ? " inside a transaction" : "", me,
                     me ? mysql_error(t->dump) : mariadb_rpl_error(t->rpl));
            return -1;
        }
        const uint8_t *raw = t->ev->raw_data;
        size_t len = t->ev->raw_data_size;
        if (len == (size_t)t->ev->event_length + 1) { /* the packet's OK byte leads */
            raw++;
            len--;
        }
        if (on_event(t, raw, len) != 0)
            return -1;
    }
    return 0;
}

static void reader_fini(struct tail_reader *t)
{
    txn_clear(t);
    if (t->ev)
        mariadb_free_rpl_event(t->ev);
    if (t->rpl)
        mariadb_rpl_close(t->rpl);
    if (t->dump)
        mysql_close(t->dump);
    if (t->meta)
        mysql_close(t->meta);
    keys_free(t->keys);
    sy_savepoints_fini(&t->savepoints);
    free(t->inflate_buf);
    free(t->before);
    free(t->after);
}

int sy_mariadb_tail_read(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, const char *from_position,
                         const char *collector_dir,
                         json_t *out, char *err, size_t errlen)
{
    struct tail_reader *t = calloc(1, sizeof *t);
    int rc = -1;
    if (t == NULL || !json_is_object(out)) {
        snprintf(err, errlen, t ? "out must be a JSON object" : "out of memory");
        free(t);
        return -1;
    }
    t->cfg = cfg;
    t->src = src;
    t->has_crc = true;
    if (from_position == NULL || !sy_gtid_set_parse(from_position, strlen(from_position), &t->from)) {
        snprintf(t->err, sizeof t->err, "bad start position '%s' (a GTID set like 0-1-57,1-2-9)",
                 from_position ? from_position : "(null)");
        goto out;
    }
    t->pos = t->from;
    unsigned int e = 0;
    t->meta = sy_mariadb_connect(src, cfg, 0, SY_TAIL_READ_TIMEOUT_S, &e, t->err, sizeof t->err);
    if (t->meta == NULL)
        goto out;
    char to[1024], efrom[1024], eto[1024];
    bool found;
    if (sy_mariadb_value(t->meta, to, sizeof to, &found, err, errlen, "SELECT @@gtid_binlog_pos") != 0) {
        snprintf(t->err, sizeof t->err, "reading @@gtid_binlog_pos of %s:%u: %s", src->host, src->port, err);
        goto out;
    }
    if (!sy_gtid_set_parse(to, strlen(to), &t->to)) {
        snprintf(t->err, sizeof t->err, "cannot parse @@gtid_binlog_pos '%s' of %s:%u", to, src->host, src->port);
        goto out;
    }
    sy_gtid_set_format(&t->from, efrom, sizeof efrom);
    sy_gtid_set_format(&t->to, eto, sizeof eto);
    t->txns = json_array();
    t->all_tables = json_array();
    if (t->txns == NULL || t->all_tables == NULL || json_object_set_new(out, "from", json_string(efrom)) != 0 ||
        json_object_set_new(out, "to", json_string(eto)) != 0 ||
        json_object_set(out, "transactions", t->txns) != 0 || json_object_set(out, "tables", t->all_tables) != 0) {
        snprintf(t->err, sizeof t->err, "out of memory");
        goto out;
    }
    if (!sy_gtid_set_covers(&t->from, &t->to)) {
        if (open_dump(t) != 0 || stream(t) != 0)
            goto out;
    }
    if (json_object_set_new(out, "rows", json_integer((json_int_t)t->n_rows)) != 0) {
        snprintf(t->err, sizeof t->err, "out of memory");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0)
        snprintf(err, errlen, "%s", t->err[0] ? t->err : "reading the tail failed");
    json_decref(t->txns);
    json_decref(t->all_tables);
    reader_fini(t);
    free(t);
    return rc;
}
