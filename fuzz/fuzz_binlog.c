/* libFuzzer target: MariaDB binlog events (capture/binlog_codec.c). Input = a sequence of
 * [selector u8][event], each event as long as its header's event_size says (clamped to what is left,
 * so truncated events are fed too). Selector: bit 7 = no CRC32 trailer; bit 6 = iterate ROWS against
 * the current map even when the table ids differ; bits 4-5 = the ROWS type a forced ROWS parse uses;
 * bits 0-3 = parser: 0 by the event's type, 1 GTID, 2 QUERY, 3 XID, 4 ROTATE, 5 GTID_LIST,
 * 6 TABLE_MAP, 7 ROWS, 8 inflate, 9 FDE, else every parser on the same body.
 * A TABLE_MAP that parses becomes the map later ROWS events are iterated against. Every pointer a
 * parser returns is read end to end (ASan checks it lies in memory we own); invariants abort. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "capture/binlog_codec.h"
#include "capture/binlog_ddl.h"
#include "capture/binlog_savepoint.h"
#include "fuzz/fuzz_require.h"

static struct sy_binlog_table_map g_map;   /* the current TABLE_MAP (owned), zeroed when none */
static uint8_t *g_inflate;                 /* grown by sy_binlog_inflate, kept across inputs */
static size_t g_inflate_cap;
static struct sy_value g_before[SY_CHANGE_MAX_COLUMNS], g_after[SY_CHANGE_MAX_COLUMNS];
static volatile uint8_t g_sink;

static void touch(const void *p, size_t n)
{
    const uint8_t *q = p;
    uint8_t x = 0;
    REQUIRE(n == 0 || q != NULL);
    for (size_t i = 0; i < n; i++)
        x ^= q[i];
    g_sink ^= x;
}

static bool within(const void *q, size_t qlen, const struct sy_binlog_body *b)
{
    const uint8_t *p = q;
    return qlen == 0 || (p != NULL && p >= b->p && qlen <= b->len && (size_t)(p - b->p) <= b->len - qlen);
}

static void check_map(const struct sy_binlog_table_map *tm)
{
    REQUIRE(tm->n_columns >= 1 && tm->n_columns <= SY_CHANGE_MAX_COLUMNS);
    REQUIRE(memchr(tm->db, 0, sizeof tm->db) && memchr(tm->table, 0, sizeof tm->table));
    touch(tm->types, tm->n_columns);
    touch(tm->meta, tm->n_columns * sizeof *tm->meta);
    touch(tm->nullable, tm->n_columns);
    touch(tm->is_unsigned, tm->n_columns);
    touch(tm->charset, tm->n_columns * sizeof *tm->charset);
    touch(tm->is_key, tm->n_columns);
    REQUIRE(tm->has_names == (tm->names != NULL));
    for (uint32_t i = 0; i < tm->n_columns; i++) {
        if (tm->names)
            touch(tm->names[i], strlen(tm->names[i]) + 1);
        if (tm->enum_names && tm->enum_names[i]) {
            REQUIRE(tm->types[i] == 247 || tm->types[i] == 248);
            for (char **nm = tm->enum_names[i]; *nm; nm++)
                touch(*nm, strlen(*nm) + 1);
        }
    }
}

static void check_value(const struct sy_value *v)
{
    switch (v->type) {
    case SY_VAL_NULL:
        REQUIRE(v->len == 0);
        break;
    case SY_VAL_INT:
    case SY_VAL_UINT:
    case SY_VAL_FLOAT:
    case SY_VAL_DOUBLE:
        break;
    case SY_VAL_DECIMAL:
        REQUIRE(v->len >= 1 && v->len <= 68);
        for (size_t i = 0; i < v->len; i++)
            REQUIRE((v->p[i] >= '0' && v->p[i] <= '9') || v->p[i] == '.' || (i == 0 && v->p[i] == '-'));
        break;
    case SY_VAL_TEMPORAL:
        REQUIRE(v->len >= 8 && v->len < 48);
        for (size_t i = 0; i < v->len; i++)
            REQUIRE((v->p[i] >= '0' && v->p[i] <= '9') || strchr("-: .", v->p[i]) != NULL);
        break;
    case SY_VAL_STRING:
    case SY_VAL_BLOB:
        touch(v->p, v->len);
        break;
    default:
        REQUIRE(false);
    }
}

static void iterate_rows(struct sy_binlog_rows *rows, bool force_id)
{
    if (g_map.types == NULL)
        return;
    if (force_id)
        rows->table_id = g_map.table_id;
    (void)sy_binlog_rows_full_image(rows);
    struct sy_binlog_row_iter it;
    sy_binlog_row_iter_init(&it, rows, &g_map);
    enum sy_parse rc;
    size_t last = 0;
    while ((rc = sy_binlog_row_next(&it, g_before, g_after)) == SY_PARSE_OK) {
        REQUIRE(it.off > last && it.off <= rows->rows_len);   /* progress: the loop ends */
        last = it.off;
        for (uint32_t i = 0; i < g_map.n_columns; i++) {
            if (rows->op != SY_ROW_INSERT)
                check_value(&g_before[i]);
            if (rows->op != SY_ROW_DELETE)
                check_value(&g_after[i]);
        }
    }
    REQUIRE(rc == SY_PARSE_AGAIN || (rc == SY_PARSE_BAD && it.err[0] != '\0'));
    REQUIRE(sy_binlog_row_next(&it, g_before, g_after) == rc);   /* the end, or the error, sticks */
    sy_binlog_row_iter_fini(&it);
}

static void parse_rows(uint8_t type, const struct sy_binlog_body *b, bool force_id)
{
    struct sy_binlog_rows rows;
    if (sy_binlog_rows_parse(type, b, &rows) != SY_PARSE_OK)
        return;
    REQUIRE(rows.n_columns >= 1 && rows.n_columns <= SY_CHANGE_MAX_COLUMNS);
    size_t bm = (rows.n_columns + 7) / 8;
    REQUIRE(rows.present_before || rows.present_after);
    REQUIRE(rows.present_before == NULL || within(rows.present_before, bm, b));
    REQUIRE(rows.present_after == NULL || within(rows.present_after, bm, b));
    REQUIRE(within(rows.rows_p, rows.rows_len, b) && rows.rows_p + rows.rows_len == b->p + b->len);
    iterate_rows(&rows, force_id);
}

static void parse_table_map(const struct sy_binlog_body *b)
{
    struct sy_binlog_table_map tm;
    if (sy_binlog_table_map_parse(b, &tm) != SY_PARSE_OK) {
        REQUIRE(tm.types == NULL && tm.names == NULL && tm.enum_names == NULL);
        return;
    }
    check_map(&tm);
    sy_binlog_table_map_free(&g_map);
    g_map = tm;
}

/* capture/binlog_ddl.c on the statement: "synchronized" = names starting with 's' (so every branch runs). */
static bool fz_match_table(void *arg, const char *db, const char *table)
{
    REQUIRE(strlen(db) < 256 && strlen(table) < 256);
    return db[0] == 's' || table[0] == 's';
}

static bool fz_match_db(void *arg, const char *db)
{
    REQUIRE(strlen(db) < 256);
    return db[0] == 's';
}

static void classify_query(const struct sy_binlog_query *q)
{
    char db[257], what[600], word[16];
    size_t n = q->db_len < sizeof db - 1 ? q->db_len : sizeof db - 1;
    if (n > 0)
        memcpy(db, q->db, n);
    db[n] = '\0';
    struct sy_ddl_match m = { fz_match_table, fz_match_db, NULL };
    enum sy_ddl_kind k = sy_ddl_classify(q->sql, q->sql_len, db, &m, what, sizeof what);
    REQUIRE(k >= SY_DDL_NONE && k <= SY_DDL_STATEMENT_DML && memchr(what, 0, sizeof what) != NULL);
    sy_ddl_first_word(q->sql, q->sql_len, word, sizeof word);
    REQUIRE(memchr(word, 0, sizeof word) != NULL);
    /* savepoints: a statement names one (or none); the transaction's list stays consistent */
    static struct sy_savepoints sps;
    char name[SY_SAVEPOINT_NAME_MAX];
    enum sy_savepoint_op op = sy_savepoint_parse(q->sql, q->sql_len, name, sizeof name);
    REQUIRE(memchr(name, 0, sizeof name) != NULL && (op == SY_SAVEPOINT_NONE || name[0] != '\0'));
    size_t before = sps.n;
    if (op == SY_SAVEPOINT_SET) {
        if (sps.n > 1000)
            sy_savepoints_clear(&sps);
        REQUIRE(sy_savepoints_set(&sps, name, q->sql_len, before));
    } else if (op == SY_SAVEPOINT_ROLLBACK_TO) {
        const struct sy_savepoint *sp = sy_savepoints_rollback_to(&sps, name);
        REQUIRE(sp == NULL ? sps.n == before : sps.n <= before && sp == &sps.v[sps.n - 1]);
    } else if (op == SY_SAVEPOINT_RELEASE) {
        sy_savepoints_release(&sps, name);
        REQUIRE(sps.n <= before);
    }
}

static void parse_query(const struct sy_binlog_body *b)
{
    struct sy_binlog_query q;
    if (sy_binlog_query_parse(b, &q) != SY_PARSE_OK)
        return;
    REQUIRE(within(q.db, q.db_len, b) && within(q.sql, q.sql_len, b));
    REQUIRE(q.time_zone == NULL || within(q.time_zone, q.time_zone_len, b));
    REQUIRE((const uint8_t *)q.sql + q.sql_len == b->p + b->len);
    classify_query(&q);
}

static void parse_inflate(uint8_t type, const struct sy_binlog_body *b, bool force_id)
{
    struct sy_binlog_body inf;
    if (sy_binlog_inflate(type, b, &g_inflate, &g_inflate_cap, &inf) != SY_PARSE_OK)
        return;
    REQUIRE(inf.p == g_inflate && inf.len <= g_inflate_cap && inf.len <= SY_BINLOG_EVENT_MAX);
    touch(inf.p, inf.len);
    uint8_t plain = sy_binlog_uncompressed_type(type);
    REQUIRE(plain != type);
    if (plain == SY_BL_QUERY)
        parse_query(&inf);
    else
        parse_rows(plain, &inf, force_id);
}

static void one_event(uint8_t sel, const uint8_t *p, size_t n)
{
    struct sy_binlog_header h;
    struct sy_binlog_fde fde;
    bool has_crc = !(sel & 0x80), force_id = sel & 0x40;
    enum sy_parse rc = sy_binlog_header_parse(p, n, &h);
    if (rc == SY_PARSE_OK)
        REQUIRE(h.event_size >= SY_BINLOG_HEADER_LEN && h.event_size <= SY_BINLOG_EVENT_MAX);
    else if (rc == SY_PARSE_AGAIN)
        REQUIRE(n < SY_BINLOG_HEADER_LEN);
    if (sy_binlog_fde_parse(p, n, &fde) == SY_PARSE_OK)
        REQUIRE(fde.checksum_alg <= 1 && strlen(fde.server_version) <= 50);
    (void)sy_binlog_crc_ok(p, n);
    struct sy_binlog_body b;
    if (!sy_binlog_body(p, n, has_crc, &b))
        return;
    REQUIRE(b.p == p + SY_BINLOG_HEADER_LEN && b.len == n - SY_BINLOG_HEADER_LEN - (has_crc ? 4 : 0));
    uint8_t type = p[4];
    static const uint8_t rows_types[4] = { SY_BL_WRITE_ROWS_V1, SY_BL_UPDATE_ROWS_V1, SY_BL_DELETE_ROWS_V1,
                                           SY_BL_UPDATE_ROWS_V2 };
    unsigned parser = sel & 0x0F;
    if (parser == 0) {
        if (sy_binlog_uncompressed_type(type) != type)
            parser = 8;
        else if (type == SY_BL_GTID)
            parser = 1;
        else if (type == SY_BL_QUERY)
            parser = 2;
        else if (type == SY_BL_XID)
            parser = 3;
        else if (type == SY_BL_ROTATE)
            parser = 4;
        else if (type == SY_BL_GTID_LIST)
            parser = 5;
        else if (type == SY_BL_TABLE_MAP)
            parser = 6;
        else if ((type >= SY_BL_WRITE_ROWS_V1 && type <= SY_BL_DELETE_ROWS_V1) ||
                 (type >= SY_BL_WRITE_ROWS_V2 && type <= SY_BL_DELETE_ROWS_V2))
            parser = 7;
        else
            return;
    } else if (parser == 7) {
        type = rows_types[(sel >> 4) & 3];
    }
    bool all = parser > 9;
    if (all || parser == 1) {
        struct sy_binlog_gtid g;
        (void)sy_binlog_gtid_parse(&b, &g);
    }
    if (all || parser == 2)
        parse_query(&b);
    if (all || parser == 3) {
        uint64_t xid;
        (void)sy_binlog_xid_parse(&b, &xid);
    }
    if (all || parser == 4) {
        struct sy_binlog_rotate r;
        if (sy_binlog_rotate_parse(&b, &r) == SY_PARSE_OK)
            REQUIRE(r.name_len > 0 && within(r.name, r.name_len, &b));
    }
    if (all || parser == 5) {
        struct sy_binlog_gtid_list l;
        if (sy_binlog_gtid_list_parse(&b, &l) == SY_PARSE_OK)
            REQUIRE(l.count < (1u << 28) && within(l.entries_p, (size_t)l.count * 16, &b));
    }
    if (all || parser == 6)
        parse_table_map(&b);
    if (all || parser == 7)
        parse_rows(all ? rows_types[(sel >> 4) & 3] : type, &b, force_id);
    if (all || parser == 8) {
        static const uint8_t compressed[] = { 165, 166, 167, 168, 169, 170, 171 };
        uint8_t ct = sy_binlog_uncompressed_type(type) != type ? type : compressed[(sel >> 4) % 7];
        parse_inflate(ct, &b, force_id);
    }
    if (parser == 9)
        (void)sy_binlog_fde_parse(p, n, &fde);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sy_binlog_table_map_free(&g_map);
    while (size >= 1) {
        uint8_t sel = data[0];
        const uint8_t *p = data + 1;
        size_t left = size - 1, n = left;
        if (left >= SY_BINLOG_HEADER_LEN) {
            uint32_t ev = (uint32_t)p[9] | (uint32_t)p[10] << 8 | (uint32_t)p[11] << 16 | (uint32_t)p[12] << 24;
            if (ev >= 1 && ev < left)
                n = ev;
        }
        one_event(sel, p, n);
        data = p + n;
        size = left - n;
    }
    sy_binlog_table_map_free(&g_map);
    return 0;
}
