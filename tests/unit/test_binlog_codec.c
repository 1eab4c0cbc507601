/* MariaDB binlog codec: real 10.11 events (tests/unit/binlog_vectors.h, from make_binlog_vectors.py)
 * decoded to exactly what the workload inserted, plus hand-built events for what 10.11 does not write
 * (v2 rows, group commit ids, every QUERY status variable), and hostile input: every prefix, every
 * byte flipped, bad CRCs, huge counts and lengths, zlib streams that lie. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "capture/binlog_codec.h"
#include "tests/unit/binlog_vectors.h"
#include "tests/unit/check.h"

/* ---- helpers over the vectors ----------------------------------------------------------------- */

static bool file_has_crc(const char *file)
{
    for (size_t i = 0; i < BINLOG_VECTOR_COUNT; i++) {
        const struct binlog_vector *v = &binlog_vectors[i];
        if (v->type == SY_BL_FORMAT_DESCRIPTION && strcmp(v->file, file) == 0)
            return v->p[v->len - 5] == 1;
    }
    return true;
}

/* The nth (0-based) event of a type in a step (type 0: any). */
static const struct binlog_vector *find_ev(const char *step, uint8_t type, int nth)
{
    for (size_t i = 0; i < BINLOG_VECTOR_COUNT; i++) {
        const struct binlog_vector *v = &binlog_vectors[i];
        if (strcmp(v->step, step) == 0 && (type == 0 || v->type == type) && nth-- == 0)
            return v;
    }
    return NULL;
}

static bool vec_body(const struct binlog_vector *v, struct sy_binlog_body *b)
{
    return v != NULL && sy_binlog_body(v->p, v->len, file_has_crc(v->file), b);
}

static bool is_rows_type(uint8_t t)
{
    return (t >= SY_BL_WRITE_ROWS_V1 && t <= SY_BL_DELETE_ROWS_V1) ||
           (t >= SY_BL_WRITE_ROWS_V2 && t <= SY_BL_DELETE_ROWS_V2);
}

/* ---- text dumps of decoded rows --------------------------------------------------------------- */

static char dump_buf[1 << 20];
static size_t dump_len;

static void dump_add(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void dump_add(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(dump_buf + dump_len, sizeof dump_buf - dump_len, fmt, ap);
    va_end(ap);
    if (k > 0)
        dump_len += (size_t)k < sizeof dump_buf - dump_len ? (size_t)k : sizeof dump_buf - dump_len - 1;
}

static void dump_bytes(const uint8_t *p, size_t n, bool raw_high)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == '\'' || c == '\\' || c < 0x20 || c == 0x7f || (c >= 0x80 && !raw_high))
            dump_add("\\x%02x", c);
        else
            dump_add("%c", c);
    }
}

/* NULL, absent "-", i:-1, u:1, f:1.5, d:2.5, m:-12.50 (DECIMAL), t:... (temporal),
 * s45:'text' (collation 45), b:'\x00' (bytes); values over 64 bytes as s45[len]#crc32. */
static void dump_value(const struct sy_value *v, bool present)
{
    if (!present) {
        dump_add("-");
        return;
    }
    switch (v->type) {
    case SY_VAL_NULL: dump_add("NULL"); break;
    case SY_VAL_INT: dump_add("i:%lld", (long long)v->i); break;
    case SY_VAL_UINT: dump_add("u:%llu", (unsigned long long)v->u); break;
    case SY_VAL_FLOAT: dump_add("f:%.9g", v->d); break;
    case SY_VAL_DOUBLE: dump_add("d:%.17g", v->d); break;
    case SY_VAL_DECIMAL: dump_add("m:%.*s", (int)v->len, (const char *)v->p); break;
    case SY_VAL_TEMPORAL: dump_add("t:%.*s", (int)v->len, (const char *)v->p); break;
    case SY_VAL_DOCUMENT: dump_add("doc(%zu)", v->len); break; /* never from a binlog */
    case SY_VAL_PATCH: dump_add("patch(%zu)", v->len); break;
    case SY_VAL_STRING:
    case SY_VAL_BLOB:
        if (v->type == SY_VAL_STRING)
            dump_add("s%u", v->charset);
        else
            dump_add("b");
        if (v->len > 64) {
            dump_add("[%zu]#%08lx", v->len, (unsigned long)crc32(0, v->p, (uInt)v->len));
        } else {
            dump_add(":'");
            dump_bytes(v->p, v->len, v->type == SY_VAL_STRING);
            dump_add("'");
        }
        break;
    }
}

static void dump_image(const struct sy_binlog_rows *rows, const struct sy_binlog_table_map *tm,
                       const uint8_t *present, const struct sy_value *vals)
{
    for (uint32_t i = 0; i < tm->n_columns; i++) {
        if (i)
            dump_add("|");
        bool here = i < rows->n_columns && ((present[i / 8] >> (i % 8)) & 1);
        dump_value(&vals[i], here);
    }
}

#define MAX_MAPS 8
struct map_set {
    struct sy_binlog_table_map maps[MAX_MAPS];
    int n;
};

static struct sy_binlog_table_map *maps_find(struct map_set *ms, uint64_t id)
{
    for (int i = 0; i < ms->n; i++)
        if (ms->maps[i].table_id == id)
            return &ms->maps[i];
    return NULL;
}

static void maps_free(struct map_set *ms)
{
    for (int i = 0; i < ms->n; i++)
        sy_binlog_table_map_free(&ms->maps[i]);
    ms->n = 0;
}

static struct sy_value vals_before[SY_CHANGE_MAX_COLUMNS], vals_after[SY_CHANGE_MAX_COLUMNS];

/* Decodes the rows of one ROWS event body against tm into the dump: one line per row,
 * "I|D table: values" or "U table: before > after". Returns the iterator's last result. */
static enum sy_parse dump_rows(uint8_t type, const struct sy_binlog_body *b, struct map_set *ms)
{
    struct sy_binlog_rows rows;
    if (sy_binlog_rows_parse(type, b, &rows) != SY_PARSE_OK) {
        dump_add("rows BAD\n");
        return SY_PARSE_BAD;
    }
    struct sy_binlog_table_map *tm = maps_find(ms, rows.table_id);
    if (tm == NULL) {
        dump_add("no map\n");
        return SY_PARSE_BAD;
    }
    struct sy_binlog_row_iter it;
    sy_binlog_row_iter_init(&it, &rows, tm);
    enum sy_parse rc;
    while ((rc = sy_binlog_row_next(&it, vals_before, vals_after)) == SY_PARSE_OK) {
        dump_add("%c %s:", rows.op == SY_ROW_INSERT ? 'I' : rows.op == SY_ROW_UPDATE ? 'U' : 'D', tm->table);
        if (rows.op != SY_ROW_INSERT)
            dump_image(&rows, tm, rows.present_before, vals_before);
        if (rows.op == SY_ROW_UPDATE)
            dump_add(" > ");
        if (rows.op != SY_ROW_DELETE)
            dump_image(&rows, tm, rows.present_after, vals_after);
        dump_add("\n");
    }
    if (rc == SY_PARSE_BAD)
        dump_add("row BAD: %s\n", it.err);
    sy_binlog_row_iter_fini(&it);
    return rc;
}

/* All rows a workload step wrote, as text. */
static const char *step_rows(const char *step)
{
    struct map_set ms = { .n = 0 };
    uint8_t *inflate_buf = NULL;
    size_t inflate_cap = 0;
    dump_len = 0;
    dump_buf[0] = '\0';
    for (size_t i = 0; i < BINLOG_VECTOR_COUNT; i++) {
        const struct binlog_vector *v = &binlog_vectors[i];
        struct sy_binlog_body b;
        if (strcmp(v->step, step) != 0 || !vec_body(v, &b))
            continue;
        uint8_t type = v->type;
        if (sy_binlog_uncompressed_type(type) != type) {
            struct sy_binlog_body inf;
            if (sy_binlog_inflate(type, &b, &inflate_buf, &inflate_cap, &inf) != SY_PARSE_OK) {
                dump_add("inflate BAD\n");
                continue;
            }
            b = inf;
            type = sy_binlog_uncompressed_type(type);
        }
        if (type == SY_BL_TABLE_MAP) {
            struct sy_binlog_table_map tm;
            if (sy_binlog_table_map_parse(&b, &tm) != SY_PARSE_OK) {
                dump_add("table map BAD\n");
                continue;
            }
            struct sy_binlog_table_map *old = maps_find(&ms, tm.table_id);
            if (old != NULL)
                sy_binlog_table_map_free(old);
            else if (ms.n < MAX_MAPS)
                old = &ms.maps[ms.n++];
            if (old != NULL)
                *old = tm;
            else
                sy_binlog_table_map_free(&tm);
        } else if (is_rows_type(type)) {
            (void)dump_rows(type, &b, &ms);
        }
    }
    maps_free(&ms);
    free(inflate_buf);
    return dump_buf;
}

static bool check_dump(const char *step, const char *got, const char *want)
{
    if (strcmp(got, want) == 0)
        return true;
    fprintf(stderr, "step %s: got\n%s--- want\n%s---\n", step, got, want);
    return false;
}

/* The collector's pipeline over the first n bytes of an event: framing, CRC, body, per-type parser;
 * ROWS events are iterated against tm when it is given. */
static enum sy_parse pipeline(const uint8_t *p, size_t n, bool has_crc, const struct sy_binlog_table_map *tm)
{
    struct sy_binlog_header h;
    enum sy_parse rc = sy_binlog_header_parse(p, n, &h);
    if (rc != SY_PARSE_OK)
        return rc;
    if (n < h.event_size)
        return SY_PARSE_AGAIN;
    n = h.event_size;
    if (h.type == SY_BL_FORMAT_DESCRIPTION) {
        struct sy_binlog_fde f;
        return sy_binlog_fde_parse(p, n, &f);
    }
    if (has_crc && !sy_binlog_crc_ok(p, n))
        return SY_PARSE_BAD;
    struct sy_binlog_body b;
    if (!sy_binlog_body(p, n, has_crc, &b))
        return SY_PARSE_BAD;
    uint8_t type = h.type;
    static uint8_t *buf;   /* reused; freed by the last caller */
    static size_t cap;
    if (sy_binlog_uncompressed_type(type) != type) {
        struct sy_binlog_body inf;
        if (sy_binlog_inflate(type, &b, &buf, &cap, &inf) != SY_PARSE_OK)
            return SY_PARSE_BAD;
        b = inf;
        type = sy_binlog_uncompressed_type(type);
    }
    switch (type) {
    case SY_BL_GTID: {
        struct sy_binlog_gtid g;
        return sy_binlog_gtid_parse(&b, &g);
    }
    case SY_BL_QUERY: {
        struct sy_binlog_query q;
        return sy_binlog_query_parse(&b, &q);
    }
    case SY_BL_XID: {
        uint64_t x;
        return sy_binlog_xid_parse(&b, &x);
    }
    case SY_BL_ROTATE: {
        struct sy_binlog_rotate r;
        return sy_binlog_rotate_parse(&b, &r);
    }
    case SY_BL_GTID_LIST: {
        struct sy_binlog_gtid_list l;
        return sy_binlog_gtid_list_parse(&b, &l);
    }
    case SY_BL_TABLE_MAP: {
        struct sy_binlog_table_map m;
        rc = sy_binlog_table_map_parse(&b, &m);
        sy_binlog_table_map_free(&m);
        return rc;
    }
    default:
        break;
    }
    if (!is_rows_type(type))
        return SY_PARSE_OK;
    struct sy_binlog_rows rows;
    rc = sy_binlog_rows_parse(type, &b, &rows);
    if (rc != SY_PARSE_OK || tm == NULL)
        return rc;
    (void)sy_binlog_rows_full_image(&rows);
    struct sy_binlog_row_iter it;
    sy_binlog_row_iter_init(&it, &rows, tm);
    while ((rc = sy_binlog_row_next(&it, vals_before, vals_after)) == SY_PARSE_OK)
        ;
    sy_binlog_row_iter_fini(&it);
    return rc == SY_PARSE_AGAIN ? SY_PARSE_OK : rc;
}

static bool vec_table_map(const char *step, int nth, struct sy_binlog_table_map *tm)
{
    struct sy_binlog_body b;
    return vec_body(find_ev(step, SY_BL_TABLE_MAP, nth), &b) && sy_binlog_table_map_parse(&b, tm) == SY_PARSE_OK;
}

/* ---- hand-built events ------------------------------------------------------------------------ */

struct bld {
    uint8_t p[1 << 16];
    size_t n;
};

static void put(struct bld *b, const void *src, size_t n)
{
    if (n == 0)
        return;
    if (n > sizeof b->p - b->n)
        abort();     /* a test bug, not input */
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_u8(struct bld *b, uint8_t v)
{
    put(b, &v, 1);
}

static void put_le(struct bld *b, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put_u8(b, (uint8_t)(v >> (8 * i)));
}

static void put_lenenc(struct bld *b, uint64_t v)
{
    if (v < 251) {
        put_u8(b, (uint8_t)v);
    } else if (v < 65536) {
        put_u8(b, 252);
        put_le(b, v, 2);
    } else if (v < (1u << 24)) {
        put_u8(b, 253);
        put_le(b, v, 3);
    } else {
        put_u8(b, 254);
        put_le(b, v, 8);
    }
}

static void put_str(struct bld *b, const char *s)
{
    put(b, s, strlen(s));
}

/* A whole event around a body: 19-byte header, body, CRC32. */
static size_t make_event(uint8_t type, const struct bld *body, bool crc, uint8_t *out, size_t cap)
{
    size_t n = SY_BINLOG_HEADER_LEN + body->n + (crc ? 4 : 0);
    if (n > cap)
        abort();
    memset(out, 0, SY_BINLOG_HEADER_LEN);
    out[0] = 0x5f;
    out[4] = type;
    out[5] = 10;
    for (int i = 0; i < 4; i++)
        out[9 + i] = (uint8_t)(n >> (8 * i));
    memcpy(out + SY_BINLOG_HEADER_LEN, body->p, body->n);
    if (crc) {
        uint32_t c = (uint32_t)crc32(0, out, (uInt)(n - 4));
        for (int i = 0; i < 4; i++)
            out[n - 4 + i] = (uint8_t)(c >> (8 * i));
    }
    return n;
}

static struct sy_binlog_body body_of(const struct bld *b)
{
    struct sy_binlog_body r = { b->p, b->n };
    return r;
}

/* ---- tests on the real events ----------------------------------------------------------------- */

static void test_walk_all(void)
{
    bool seen[256] = { false };
    size_t bad = 0;
    for (size_t i = 0; i < BINLOG_VECTOR_COUNT; i++) {
        const struct binlog_vector *v = &binlog_vectors[i];
        struct sy_binlog_header h;
        bool crc = file_has_crc(v->file);
        CHECK(sy_binlog_header_parse(v->p, v->len, &h) == SY_PARSE_OK && h.event_size == v->len &&
              h.type == v->type && h.server_id == 10);
        if (crc)
            CHECK(sy_binlog_crc_ok(v->p, v->len));
        if (pipeline(v->p, v->len, crc, NULL) != SY_PARSE_OK) {
            fprintf(stderr, "event %zu (%s, type %u) does not parse\n", i, v->step, v->type);
            bad++;
        }
        seen[v->type] = true;
    }
    CHECK(bad == 0);
    static const uint8_t expect[] = { 2, 4, 15, 16, 19, 23, 24, 25, 38, 160, 161, 162, 163, 165, 166, 167 };
    for (size_t i = 0; i < sizeof expect; i++)
        CHECK(seen[expect[i]]);
}

static void test_fde(void)
{
    const struct binlog_vector *v = &binlog_vectors[0];
    struct sy_binlog_fde f;
    CHECK(v->type == SY_BL_FORMAT_DESCRIPTION);
    CHECK(sy_binlog_fde_parse(v->p, v->len, &f) == SY_PARSE_OK && f.binlog_version == 4 &&
          strncmp(f.server_version, "10.11.", 6) == 0 && f.checksum_alg == 1);
    CHECK(sy_binlog_fde_parse(v->p, v->len - 1, &f) == SY_PARSE_AGAIN);
    CHECK(sy_binlog_fde_parse(v->p, 18, &f) == SY_PARSE_AGAIN);
    const struct binlog_vector *nocrc = find_ev("nocrc", SY_BL_FORMAT_DESCRIPTION, 0);
    CHECK(nocrc != NULL && sy_binlog_fde_parse(nocrc->p, nocrc->len, &f) == SY_PARSE_OK && f.checksum_alg == 0);
    /* the last file is still open: its FDE carries BINLOG_IN_USE, its CRC was computed without */
    CHECK(nocrc != NULL && (nocrc->p[17] & 1) && sy_binlog_crc_ok(nocrc->p, nocrc->len));
    CHECK(!(v->p[17] & 1));
    uint8_t copy[512];
    memcpy(copy, v->p, v->len);
    copy[17] |= 1;                        /* a closed file's FDE with the flag set again still checks */
    CHECK(sy_binlog_crc_ok(copy, v->len));
    copy[30] ^= 1;
    CHECK(!sy_binlog_crc_ok(copy, v->len) && sy_binlog_fde_parse(copy, v->len, &f) == SY_PARSE_BAD);
    memcpy(copy, v->p, v->len);
    copy[v->len - 5] = 2;                 /* unknown checksum algorithm */
    CHECK(sy_binlog_fde_parse(copy, v->len, &f) == SY_PARSE_BAD);
    memcpy(copy, v->p, v->len);
    copy[4] = SY_BL_QUERY;
    CHECK(sy_binlog_fde_parse(copy, v->len, &f) == SY_PARSE_BAD);
}

static void test_header_and_crc(void)
{
    struct sy_binlog_header h;
    uint8_t ev[64] = { 0 };
    CHECK(sy_binlog_header_parse(NULL, 0, &h) == SY_PARSE_AGAIN);
    CHECK(sy_binlog_header_parse(ev, 18, &h) == SY_PARSE_AGAIN);
    ev[9] = 18;                           /* event_size below the header */
    CHECK(sy_binlog_header_parse(ev, 19, &h) == SY_PARSE_BAD);
    ev[9] = 0x00; ev[10] = 0x00; ev[11] = 0x00; ev[12] = 0x41;   /* over SY_BINLOG_EVENT_MAX */
    CHECK(sy_binlog_header_parse(ev, 19, &h) == SY_PARSE_BAD);
    ev[9] = 23; ev[12] = 0;
    CHECK(sy_binlog_header_parse(ev, 19, &h) == SY_PARSE_OK && h.event_size == 23);
    CHECK(!sy_binlog_crc_ok(ev, 3) && !sy_binlog_crc_ok(NULL, 8));
    struct sy_binlog_body b;
    CHECK(!sy_binlog_body(ev, 22, true, &b) && sy_binlog_body(ev, 23, true, &b) && b.len == 0);
    CHECK(sy_binlog_body(ev, 19, false, &b) && b.len == 0 && !sy_binlog_body(ev, 18, false, &b));

    /* a bad CRC in a real event */
    const struct binlog_vector *v = find_ev("ins_int", SY_BL_WRITE_ROWS_V1, 0);
    uint8_t copy[512];
    memcpy(copy, v->p, v->len);
    CHECK(sy_binlog_crc_ok(copy, v->len));
    copy[v->len - 1] ^= 0x80;
    CHECK(!sy_binlog_crc_ok(copy, v->len) && pipeline(copy, v->len, true, NULL) == SY_PARSE_BAD);
}

static void test_gtid_events(void)
{
    struct sy_binlog_body b;
    struct sy_binlog_gtid g;
    CHECK(vec_body(find_ev("ins_int", SY_BL_GTID, 0), &b) && sy_binlog_gtid_parse(&b, &g) == SY_PARSE_OK);
    CHECK(g.domain_id == 1 && g.seq_no > 0 && (g.flags & SY_GTID_FL_TRANSACTIONAL) &&
          !(g.flags & SY_GTID_FL_STANDALONE) && g.commit_id == 0);
    uint64_t seq = g.seq_no;
    CHECK(vec_body(find_ev("ins_num", SY_BL_GTID, 0), &b) && sy_binlog_gtid_parse(&b, &g) == SY_PARSE_OK &&
          g.seq_no == seq + 1);
    CHECK(vec_body(find_ev("ddl", SY_BL_GTID, 0), &b) && sy_binlog_gtid_parse(&b, &g) == SY_PARSE_OK &&
          (g.flags & SY_GTID_FL_STANDALONE));
    /* XA: PREPARE's GTID and XA COMMIT's GTID carry the xid after the usual fields */
    CHECK(vec_body(find_ev("xa", SY_BL_GTID, 0), &b) && sy_binlog_gtid_parse(&b, &g) == SY_PARSE_OK &&
          (g.flags & SY_GTID_FL_PREPARED_XA) && b.len > 19);
    CHECK(vec_body(find_ev("xa", SY_BL_GTID, 1), &b) && sy_binlog_gtid_parse(&b, &g) == SY_PARSE_OK &&
          (g.flags & SY_GTID_FL_COMPLETED_XA));
    CHECK(find_ev("xa", SY_BL_XA_PREPARE, 0) != NULL);

    /* hand-built: a group commit id, and the truncations */
    struct bld e = { .n = 0 };
    put_le(&e, 77, 8);
    put_le(&e, 3, 4);
    put_u8(&e, SY_GTID_FL_GROUP_COMMIT_ID | SY_GTID_FL_TRANSACTIONAL);
    put_le(&e, 0x1122334455667788ull, 8);
    b = body_of(&e);
    CHECK(sy_binlog_gtid_parse(&b, &g) == SY_PARSE_OK && g.seq_no == 77 && g.domain_id == 3 &&
          g.commit_id == 0x1122334455667788ull);
    uint8_t ev[64];
    size_t n = make_event(SY_BL_GTID, &e, true, ev, sizeof ev);
    CHECK(n == 19 + 21 + 4 && sy_binlog_crc_ok(ev, n) && pipeline(ev, n, true, NULL) == SY_PARSE_OK);
    n = make_event(SY_BL_GTID, &e, false, ev, sizeof ev);
    CHECK(pipeline(ev, n, false, NULL) == SY_PARSE_OK && pipeline(ev, n - 1, false, NULL) == SY_PARSE_AGAIN);
    b.len = 20;
    CHECK(sy_binlog_gtid_parse(&b, &g) == SY_PARSE_BAD);
    b.len = 12;
    CHECK(sy_binlog_gtid_parse(&b, &g) == SY_PARSE_BAD);
}

static void test_query_events(void)
{
    struct sy_binlog_body b;
    struct sy_binlog_query q;
    CHECK(vec_body(find_ev("schema", SY_BL_QUERY, 0), &b) && sy_binlog_query_parse(&b, &q) == SY_PARSE_OK);
    CHECK(q.sql_len == 18 && memcmp(q.sql, "CREATE DATABASE sy", 18) == 0 && q.db_len == 2 &&
          q.error_code == 0 && q.has_sql_mode && q.has_charset && q.charset_client == 45 &&
          q.collation_connection == 45 && q.collation_server == 8);
    CHECK(vec_body(find_ev("schema", SY_BL_QUERY, 1), &b) && sy_binlog_query_parse(&b, &q) == SY_PARSE_OK);
    CHECK(q.db_len == 2 && memcmp(q.db, "sy", 2) == 0 && q.sql_len > 20 &&
          memcmp(q.sql, "CREATE TABLE t_int", 18) == 0);
    CHECK(vec_body(find_ev("ddl", SY_BL_QUERY, 0), &b) && sy_binlog_query_parse(&b, &q) == SY_PARSE_OK);
    CHECK(q.sql_len == strlen("ALTER TABLE sy.t_int ADD COLUMN extra INT NULL") &&
          memcmp(q.sql, "ALTER TABLE sy.t_int ADD COLUMN extra INT NULL", q.sql_len) == 0);
    CHECK(q.time_zone == NULL && q.time_zone_len == 0);   /* logged only when the statement used it */
    CHECK(vec_body(find_ev("xa", SY_BL_QUERY, 1), &b) && sy_binlog_query_parse(&b, &q) == SY_PARSE_OK &&
          q.sql_len >= 9 && memcmp(q.sql, "XA COMMIT", 9) == 0);
    uint64_t xid = 0;
    CHECK(vec_body(find_ev("ins_int", SY_BL_XID, 0), &b) && sy_binlog_xid_parse(&b, &xid) == SY_PARSE_OK &&
          xid > 0);
    b.len = 7;
    CHECK(sy_binlog_xid_parse(&b, &xid) == SY_PARSE_BAD);
}

/* A QUERY body with the given status variables. */
static void query_body(struct bld *e, const struct bld *sv, const char *db, const char *sql)
{
    e->n = 0;
    put_le(e, 42, 4);
    put_le(e, 1, 4);
    put_u8(e, (uint8_t)strlen(db));
    put_le(e, 0, 2);
    put_le(e, sv->n, 2);
    put(e, sv->p, sv->n);
    put_str(e, db);
    put_u8(e, 0);
    put_str(e, sql);
}

static void test_query_status_vars(void)
{
    static struct bld sv, e;
    struct sy_binlog_query q;
    struct sy_binlog_body b;
    sv.n = 0;
    put_u8(&sv, 0); put_le(&sv, 0x4000, 4);                       /* Q_FLAGS2 */
    put_u8(&sv, 1); put_le(&sv, 0x1122334455667788ull, 8);        /* Q_SQL_MODE */
    put_u8(&sv, 2); put_u8(&sv, 3); put_str(&sv, "std"); put_u8(&sv, 0);   /* Q_CATALOG (old) */
    put_u8(&sv, 3); put_le(&sv, 1, 2); put_le(&sv, 1, 2);         /* Q_AUTO_INCREMENT */
    put_u8(&sv, 4); put_le(&sv, 33, 2); put_le(&sv, 224, 2); put_le(&sv, 8, 2);  /* Q_CHARSET */
    put_u8(&sv, 5); put_u8(&sv, 6); put_str(&sv, "+02:00");       /* Q_TIME_ZONE */
    put_u8(&sv, 6); put_u8(&sv, 3); put_str(&sv, "def");          /* Q_CATALOG_NZ */
    put_u8(&sv, 7); put_le(&sv, 1, 2);                            /* Q_LC_TIME_NAMES */
    put_u8(&sv, 8); put_le(&sv, 45, 2);                           /* Q_CHARSET_DATABASE */
    put_u8(&sv, 9); put_le(&sv, 5, 8);                            /* Q_TABLE_MAP_FOR_UPDATE */
    put_u8(&sv, 10); put_le(&sv, 9, 4);                           /* Q_MASTER_DATA_WRITTEN */
    put_u8(&sv, 11); put_u8(&sv, 4); put_str(&sv, "root"); put_u8(&sv, 9); put_str(&sv, "localhost");
    put_u8(&sv, 12); put_u8(&sv, 2); put_str(&sv, "a"); put_u8(&sv, 0); put_str(&sv, "bb"); put_u8(&sv, 0);
    put_u8(&sv, 12); put_u8(&sv, 254);                            /* OVER_MAX_DBS_IN_EVENT_MTS */
    put_u8(&sv, 13); put_le(&sv, 999999, 3);                      /* Q_MICROSECONDS */
    put_u8(&sv, 16); put_u8(&sv, 1);
    put_u8(&sv, 17); put_le(&sv, 12, 8);
    put_u8(&sv, 18); put_le(&sv, 255, 2);
    put_u8(&sv, 19); put_u8(&sv, 0);
    put_u8(&sv, 20); put_u8(&sv, 0);
    put_u8(&sv, 128); put_le(&sv, 123456, 3);                     /* Q_HRNOW */
    put_u8(&sv, 129); put_le(&sv, 77, 8);                         /* Q_XID */
    put_u8(&sv, 130); put_u8(&sv, 1);                             /* Q_GTID_FLAGS3 */
    put_u8(&sv, 131); put_u8(&sv, 2); put_le(&sv, 0x00210021, 4); put_le(&sv, 0x002d002d, 4);
    query_body(&e, &sv, "db1", "SELECT 1");
    b = body_of(&e);
    CHECK(sy_binlog_query_parse(&b, &q) == SY_PARSE_OK && q.thread_id == 42 && q.exec_time == 1 &&
          q.sql_mode == 0x1122334455667788ull && q.charset_client == 33 && q.collation_connection == 224 &&
          q.collation_server == 8 && q.time_zone_len == 6 && memcmp(q.time_zone, "+02:00", 6) == 0 &&
          q.db_len == 3 && memcmp(q.db, "db1", 3) == 0 && q.sql_len == 8 && memcmp(q.sql, "SELECT 1", 8) == 0);
    /* every prefix of the status variables that cuts one short is BAD */
    size_t full = sv.n;
    size_t ends[64], n_ends = 0;     /* offsets where a variable ends: cuts there are whole lists */
    {
        static const size_t sizes[] = { 5, 9, 6, 5, 7, 8, 5, 3, 3, 9, 5, 16, 7, 2, 4, 2, 9, 3, 2, 2, 4, 9, 2, 10 };
        size_t o = 0;
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            ends[n_ends++] = (o += sizes[i]);
        CHECK(o == full);
    }
    for (size_t cut = 1; cut < full; cut++) {
        struct bld part = sv;
        part.n = cut;
        query_body(&e, &part, "db1", "SELECT 1");
        b = body_of(&e);
        bool whole = false;
        for (size_t i = 0; i < n_ends; i++)
            whole = whole || ends[i] == cut;
        enum sy_parse rc = sy_binlog_query_parse(&b, &q);
        if (whole)
            CHECK(rc == SY_PARSE_OK && q.sql_len == 8);
        else
            CHECK(rc == SY_PARSE_BAD);
    }
    /* an unknown code stops the list, db and text are still found through status_vars_len */
    sv.n = 0;
    put_u8(&sv, 1); put_le(&sv, 7, 8);
    put_u8(&sv, 14); put_le(&sv, 0xdeadbeef, 4);   /* Q_COMMIT_TS: size unknown, treated as unknown */
    put_u8(&sv, 4); put_le(&sv, 1, 6);             /* not read */
    query_body(&e, &sv, "", "BEGIN");
    b = body_of(&e);
    CHECK(sy_binlog_query_parse(&b, &q) == SY_PARSE_OK && q.sql_mode == 7 && !q.has_charset && q.db_len == 0 &&
          q.sql_len == 5 && memcmp(q.sql, "BEGIN", 5) == 0);
    /* status_vars_len or db_len past the body; the db's NUL missing */
    query_body(&e, &sv, "db", "x");
    e.p[11] = 0xff;
    e.p[12] = 0x7f;
    b = body_of(&e);
    CHECK(sy_binlog_query_parse(&b, &q) == SY_PARSE_BAD);
    query_body(&e, &sv, "db", "x");
    e.p[8] = 200;
    b = body_of(&e);
    CHECK(sy_binlog_query_parse(&b, &q) == SY_PARSE_BAD);
    query_body(&e, &sv, "db", "x");
    e.p[13 + sv.n + 2] = 'z';
    b = body_of(&e);
    CHECK(sy_binlog_query_parse(&b, &q) == SY_PARSE_BAD);
    b.len = 12;
    CHECK(sy_binlog_query_parse(&b, &q) == SY_PARSE_BAD);
}

static void test_rotate_and_gtid_list(void)
{
    struct sy_binlog_body b;
    struct sy_binlog_rotate r;
    CHECK(vec_body(find_ev("rotate", SY_BL_ROTATE, 0), &b) && sy_binlog_rotate_parse(&b, &r) == SY_PARSE_OK &&
          r.position == 4 && r.name_len == 13 && memcmp(r.name, "binlog.000002", 13) == 0);
    b.len = 8;
    CHECK(sy_binlog_rotate_parse(&b, &r) == SY_PARSE_BAD);
    b.len = 5;
    CHECK(sy_binlog_rotate_parse(&b, &r) == SY_PARSE_BAD);

    struct sy_binlog_gtid_list l;
    const struct binlog_vector *v = find_ev("rotate", SY_BL_GTID_LIST, 0);
    CHECK(vec_body(v, &b) && sy_binlog_gtid_list_parse(&b, &l) == SY_PARSE_OK && l.count == 1);
    if (l.count == 1) {   /* domain 1, server 10, the last seq written before the rotate */
        CHECK(l.entries_p[0] == 1 && l.entries_p[4] == 10 && l.entries_p[8] > 0);
    }
    CHECK(vec_body(find_ev("init", SY_BL_GTID_LIST, 0), &b) && sy_binlog_gtid_list_parse(&b, &l) == SY_PARSE_OK &&
          l.count == 0);
    struct bld e = { .n = 0 };
    put_le(&e, 0xF0000002u, 4);    /* flags in the top bits, count 2, but one entry */
    put_le(&e, 1, 8);
    put_le(&e, 1, 8);
    b = body_of(&e);
    CHECK(sy_binlog_gtid_list_parse(&b, &l) == SY_PARSE_BAD);
    put_le(&e, 2, 8);
    put_le(&e, 2, 8);
    b = body_of(&e);
    CHECK(sy_binlog_gtid_list_parse(&b, &l) == SY_PARSE_OK && l.count == 2);
    e.n = 0;
    put_le(&e, 0x0FFFFFFF, 4);     /* 268M entries claimed */
    b = body_of(&e);
    CHECK(sy_binlog_gtid_list_parse(&b, &l) == SY_PARSE_BAD);
}

static void test_table_maps(void)
{
    struct sy_binlog_table_map tm;
    CHECK(vec_table_map("ins_int", 0, &tm));
    CHECK(strcmp(tm.db, "sy") == 0 && strcmp(tm.table, "t_int") == 0 && tm.n_columns == 11 && tm.has_names);
    static const char *int_names[] = { "id", "ti", "tiu", "si", "siu", "mi", "miu", "i", "iu", "bi", "biu" };
    for (uint32_t i = 0; i < 11 && tm.names; i++) {
        CHECK(strcmp(tm.names[i], int_names[i]) == 0);
        CHECK(tm.is_unsigned[i] == (i % 2 == 0 && i > 0));
        CHECK(tm.nullable[i] == (i > 0) && tm.is_key[i] == (i == 0) && tm.charset[i] == 0);
    }
    CHECK(tm.types[0] == 3 && tm.types[1] == 1 && tm.types[3] == 2 && tm.types[5] == 9 && tm.types[9] == 8);
    sy_binlog_table_map_free(&tm);
    sy_binlog_table_map_free(&tm);   /* a second free does nothing */

    CHECK(vec_table_map("ins_num", 0, &tm));
    CHECK(tm.n_columns == 8 && tm.meta[1] == (10 << 8 | 2) && tm.meta[2] == (65 << 8 | 30) &&
          tm.meta[4] == (10 << 8 | 10) && tm.is_unsigned[4] && !tm.is_unsigned[1] && tm.meta[5] == 4 &&
          tm.meta[6] == 8);
    sy_binlog_table_map_free(&tm);

    CHECK(vec_table_map("ins_time", 0, &tm));
    CHECK(tm.n_columns == 13 && tm.types[1] == 10 && tm.types[2] == 19 && tm.meta[2] == 0 && tm.meta[3] == 3 &&
          tm.types[5] == 18 && tm.meta[5] == 6 && tm.types[7] == 17 && tm.types[9] == 13);
    CHECK(tm.is_unsigned[9]);        /* MariaDB counts YEAR as a numeric column, flagged unsigned */
    sy_binlog_table_map_free(&tm);

    CHECK(vec_table_map("ins_str", 0, &tm));
    CHECK(tm.n_columns == 27 && tm.has_names);
    /* resolved types and metadata */
    static const uint8_t str_types[27] = { 3, 254, 254, 254, 15, 15, 252, 252, 252, 252, 254, 15, 252, 252, 252,
                                           252, 247, 248, 247, 248, 16, 16, 16, 252, 255, 3, 3 };
    static const uint16_t str_meta[27] = { 0, 40, 10, 400, 1200, 20, 2, 1, 3, 4, 4, 10, 1, 2, 3, 4, 1, 1, 2, 2,
                                           1, 1 << 8 | 2, 8 << 8, 4, 4, 0, 0 };
    static const uint16_t str_cs[27] = { 0, 45, 8, 45, 45, 8, 45, 8, 45, 224, 63, 63, 63, 63, 63, 63, 8, 45, 45,
                                         45, 0, 0, 0, 46, 63, 0, 0 };
    for (uint32_t i = 0; i < 27; i++) {
        if (tm.types[i] != str_types[i] || tm.meta[i] != str_meta[i] || tm.charset[i] != str_cs[i])
            fprintf(stderr, "t_str column %u: type %u meta %u charset %u\n", i, tm.types[i], tm.meta[i],
                    tm.charset[i]);
        CHECK(tm.types[i] == str_types[i] && tm.meta[i] == str_meta[i] && tm.charset[i] == str_cs[i]);
    }
    CHECK(tm.names && strcmp(tm.names[3], "c_big") == 0 && strcmp(tm.names[26], "genv") == 0);
    CHECK(tm.enum_names && tm.enum_names[16] && strcmp(tm.enum_names[16][0], "a") == 0 &&
          strcmp(tm.enum_names[16][2], "c") == 0 && tm.enum_names[16][3] == NULL);
    CHECK(tm.enum_names && tm.enum_names[17] && strcmp(tm.enum_names[17][1], "y") == 0 &&
          tm.enum_names[17][3] == NULL);
    CHECK(tm.enum_names && tm.enum_names[18] && strcmp(tm.enum_names[18][299], "v299") == 0 &&
          tm.enum_names[18][300] == NULL);
    CHECK(tm.enum_names && tm.enum_names[19] && strcmp(tm.enum_names[19][9], "m9") == 0);
    CHECK(tm.enum_names && tm.enum_names[0] == NULL && tm.is_key[0] && !tm.is_key[1]);
    sy_binlog_table_map_free(&tm);

    CHECK(vec_table_map("ins_big", 0, &tm));   /* DEFAULT_CHARSET (binary) with no exceptions */
    CHECK(tm.n_columns == 2 && tm.types[1] == 252 && tm.meta[1] == 4 && tm.charset[1] == 63);
    sy_binlog_table_map_free(&tm);

    CHECK(vec_table_map("ins_old", 0, &tm));   /* mysql56_temporal_format=OFF: the old types */
    CHECK(tm.n_columns == 4 && tm.types[1] == 11 && tm.types[2] == 12 && tm.types[3] == 7);
    sy_binlog_table_map_free(&tm);
}

static void test_rows_int(void)
{
    CHECK(check_dump("ins_int", step_rows("ins_int"),
        "I t_int:i:1|i:-128|u:255|i:-32768|u:65535|i:-8388608|u:16777215|i:-2147483648|u:4294967295|"
        "i:-9223372036854775808|u:18446744073709551615\n"
        "I t_int:i:2|i:127|u:0|i:32767|u:0|i:8388607|u:0|i:2147483647|u:0|i:9223372036854775807|u:0\n"
        "I t_int:i:3|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL\n"
        "I t_int:i:4|i:-1|u:1|i:-1|u:1|i:-1|u:1|i:-1|u:1|i:-1|u:1\n"));
}

static void test_rows_num(void)
{
    CHECK(check_dump("ins_num", step_rows("ins_num"),
        "I t_num:i:1|m:-12.50|m:12345678901234567890123456789012345.123456789012345678901234567890|m:99999|"
        "m:0.0000000001|f:1.5|d:-2.25e+300|m:123456789.000000001\n"
        "I t_num:i:2|m:0.50|m:-0.000000000000000000000000000001|m:-99999|m:0.9999999999|f:-0.125|"
        "d:3.1415926535897931|m:-0.500000000\n"
        "I t_num:i:3|m:0.00|m:0.000000000000000000000000000000|m:0|m:0.0000000000|f:0|d:0|m:0.000000000\n"
        "I t_num:i:4|m:99999999.99|m:-99999999999999999999999999999999999.999999999999999999999999999999|m:1|"
        "m:0.5000000000|NULL|NULL|m:-99999999999.999999999\n"));
}

static void test_rows_time(void)
{
    CHECK(check_dump("ins_time", step_rows("ins_time"),
        "I t_time:i:1|t:2024-02-29|t:-838:59:59|t:-00:00:01.500|t:12:34:56.789012|t:2024-02-29 23:59:59.999999|"
        "t:1000-01-01 00:00:00|t:2038-01-19 03:14:07.999999|t:1970-01-01 00:00:01|u:2155|t:-00:00:00.1|"
        "t:2000-01-01 00:00:00.01|t:2000-03-01 12:00:00.1234\n"
        "I t_time:i:2|t:9999-12-31|t:838:59:59|t:-838:59:59.000|t:-12:34:56.000001|t:0001-01-01 00:00:00.000001|"
        "t:9999-12-31 23:59:59|t:1970-01-01 00:00:01.000000|t:2038-01-19 03:14:07|u:1901|t:-00:00:01.1|"
        "t:1999-12-31 23:59:59.99|t:2024-02-29 00:00:00.0001\n"
        "I t_time:i:3|NULL|t:00:00:00|t:00:00:00.000|t:-00:00:00.000001|NULL|NULL|NULL|NULL|u:0|NULL|NULL|NULL\n"
        "I t_time:i:4|NULL|NULL|NULL|NULL|NULL|NULL|t:2024-01-01 00:00:00.500000|t:2024-01-01 00:00:00|NULL|NULL|"
        "NULL|NULL\n"));
    CHECK(check_dump("ins_old", step_rows("ins_old"),
        "I t_oldtime:i:1|t:-838:59:59|t:2024-02-29 23:59:59|t:2038-01-19 03:14:07\n"
        "I t_oldtime:i:2|t:12:34:56|t:1000-01-01 00:00:00|t:1970-01-01 00:00:01\n"
        "I t_oldtime:i:3|t:00:00:00|t:0000-00-00 00:00:00|NULL\n"));
}

static void test_rows_str(void)
{
    /* long values are compared through their CRC: rebuild what the workload inserted */
    static char c_big[301], v_u[282], want[4096];
    for (int i = 0; i < 100; i++)
        memcpy(c_big + 3 * i, "\xe2\x9c\x93", 3);
    v_u[0] = 'x';
    for (int i = 0; i < 70; i++)
        memcpy(v_u + 1 + 4 * i, "\xf0\x9f\x98\x80", 4);
    snprintf(want, sizeof want,
        "I t_str:i:1|s45:'h\xc3\xa9llo'|s8:'caf\xe9'|s45[300]#%08lx|s45[281]#%08lx|s8:'latin'|s45:'text \xe2\x9c\x93'|"
        "s8:'tiny'|s45:'medium'|s224:'long'|b:'\\x00\\x01\\x02\\x03'|b:'\\xff\\x00'|b:'\\x7f'|b:'\\xde\\xad\\xbe\\xef'|"
        "b:''|b:'\\x00'|s8:'b'|s45:'x,z'|s45:'v299'|s45:'m0,m9'|u:1|u:513|u:18446744073709551615|"
        "s46:'{\"a\": [1, 2, {\"b\": null}]}'|"
        "b:'\\x00\\x00\\x00\\x00\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\xf0?\\x00\\x00\\x00\\x00\\x00\\x00\\x00@'|"
        "i:2|i:2\n"
        /* BINARY(4) X'61000000' is logged without its trailing zero bytes (the server pads them back) */
        "I t_str:i:2|s45:''|s8:''|s45:''|s45:''|s8:''|s45:''|s8:''|s45:''|s224:''|b:'a'|b:''|b:''|b:''|b:''|b:''|"
        "s8:'a'|s45:''|s45:'v0'|s45:''|u:0|u:0|u:0|s46:'[]'|NULL|i:4|i:3\n"
        "I t_str:i:3|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|"
        "NULL|NULL|NULL|NULL|NULL|i:6|i:4\n",
        (unsigned long)crc32(0, (const Bytef *)c_big, 300), (unsigned long)crc32(0, (const Bytef *)v_u, 281));
    CHECK(check_dump("ins_str", step_rows("ins_str"), want));
    CHECK(check_dump("delete", step_rows("delete"),
        "D t_str:i:2|s45:''|s8:''|s45:''|s45:''|s8:''|s45:''|s8:''|s45:''|s224:''|b:'a'|b:''|b:''|b:''|b:''|b:''|"
        "s8:'a'|s45:''|s45:'v0'|s45:''|u:0|u:0|u:0|s46:'[]'|NULL|i:4|i:3\n"));
}

static void test_big_blob(void)
{
    struct sy_binlog_table_map tm;
    struct sy_binlog_body b;
    struct sy_binlog_rows rows;
    CHECK(vec_table_map("ins_big", 0, &tm));
    const struct binlog_vector *v = find_ev("ins_big", SY_BL_WRITE_ROWS_V1, 0);
    CHECK(v != NULL && v->len > 70000);
    CHECK(vec_body(v, &b) && sy_binlog_rows_parse(v->type, &b, &rows) == SY_PARSE_OK && rows.op == SY_ROW_INSERT &&
          sy_binlog_rows_full_image(&rows) && rows.flags == 1 && rows.present_before == NULL);
    struct sy_binlog_row_iter it;
    sy_binlog_row_iter_init(&it, &rows, &tm);
    CHECK(sy_binlog_row_next(&it, NULL, vals_after) == SY_PARSE_OK);   /* no before[] needed for INSERT */
    CHECK(vals_after[1].type == SY_VAL_BLOB && vals_after[1].len == 71680);
    bool same = vals_after[1].len == 71680;
    for (size_t i = 0; same && i < 71680; i++)
        same = vals_after[1].p[i] == (uint8_t)"0123456789abcdef"[i % 16];
    CHECK(same);
    CHECK(vals_after[1].p >= rows.rows_p && vals_after[1].p + 71680 <= rows.rows_p + rows.rows_len);
    CHECK(sy_binlog_row_next(&it, NULL, vals_after) == SY_PARSE_AGAIN);
    CHECK(sy_binlog_row_next(&it, NULL, vals_after) == SY_PARSE_AGAIN);
    sy_binlog_row_iter_fini(&it);
    sy_binlog_row_iter_fini(&it);
    sy_binlog_table_map_free(&tm);
}

static void test_update_txn_minimal(void)
{
    CHECK(check_dump("update", step_rows("update"),
        "U t_int:i:4|i:-1|u:1|i:-1|u:1|i:-1|u:1|i:-1|u:1|i:-1|u:1 > i:4|i:42|u:1|i:-1|u:1|i:-1|u:1|i:-1|u:1|i:-1|u:7\n"));
    CHECK(check_dump("txn", step_rows("txn"),
        "I t_int:i:10|i:10|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL\n"
        "U t_int:i:10|i:10|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL > "
        "i:10|i:11|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL\n"
        "D t_int:i:10|i:11|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL\n"));
    /* one transaction: GTID, then three TABLE_MAP + ROWS pairs, then XID */
    CHECK(find_ev("txn", 0, 0)->type == SY_BL_GTID && find_ev("txn", SY_BL_XID, 0) != NULL &&
          find_ev("txn", SY_BL_GTID, 1) == NULL);
    CHECK(check_dump("xa", step_rows("xa"), "I t_int:i:20|i:20|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL\n"));
    CHECK(check_dump("nocrc", step_rows("nocrc"),
        "I t_int:i:40|i:40|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL\n"));
    CHECK(!file_has_crc(find_ev("nocrc", SY_BL_WRITE_ROWS_V1, 0)->file));

    /* binlog_row_image=MINIMAL: the before image holds the key, the after image the changed column */
    CHECK(check_dump("minimal", step_rows("minimal"), "U t_int:i:2|-|-|-|-|-|-|-|-|-|-|- > -|-|-|i:5|-|-|-|-|-|-|-|-\n"));
    struct sy_binlog_body b;
    struct sy_binlog_rows rows;
    CHECK(vec_body(find_ev("minimal", SY_BL_UPDATE_ROWS_V1, 0), &b) &&
          sy_binlog_rows_parse(SY_BL_UPDATE_ROWS_V1, &b, &rows) == SY_PARSE_OK && !sy_binlog_rows_full_image(&rows) &&
          rows.n_columns == 12 && rows.present_before[0] == 0x01 && rows.present_after[0] == 0x08);
    CHECK(vec_body(find_ev("update", SY_BL_UPDATE_ROWS_V1, 0), &b) &&
          sy_binlog_rows_parse(SY_BL_UPDATE_ROWS_V1, &b, &rows) == SY_PARSE_OK && sy_binlog_rows_full_image(&rows));
    CHECK(vec_body(find_ev("delete", SY_BL_DELETE_ROWS_V1, 0), &b) &&
          sy_binlog_rows_parse(SY_BL_DELETE_ROWS_V1, &b, &rows) == SY_PARSE_OK && sy_binlog_rows_full_image(&rows) &&
          rows.op == SY_ROW_DELETE && rows.present_after == NULL && rows.n_columns == 27);
}

static void test_compressed(void)
{
    CHECK(sy_binlog_uncompressed_type(165) == 2 && sy_binlog_uncompressed_type(166) == 23 &&
          sy_binlog_uncompressed_type(167) == 24 && sy_binlog_uncompressed_type(168) == 25 &&
          sy_binlog_uncompressed_type(169) == 30 && sy_binlog_uncompressed_type(170) == 31 &&
          sy_binlog_uncompressed_type(171) == 32 && sy_binlog_uncompressed_type(23) == 23);
    CHECK(check_dump("compressed", step_rows("compressed"),
        "I t_int:i:30|i:30|NULL|NULL|NULL|NULL|NULL|NULL|NULL|i:3000000000|NULL|NULL\n"
        "I t_int:i:31|i:31|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL\n"
        "U t_int:i:30|i:30|NULL|NULL|NULL|NULL|NULL|NULL|NULL|i:3000000000|NULL|NULL > "
        "i:30|i:32|NULL|NULL|NULL|NULL|NULL|NULL|NULL|i:3000000000|NULL|NULL\n"
        /* too short to compress (log_bin_compress_min_len=10): a plain DELETE_ROWS */
        "D t_int:i:31|i:31|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL\n"
        "I t_big:i:2|b[5000]#e89d912a\n"));
    CHECK(crc32(0, (const Bytef *)memset(vals_before, 'z', 5000), 5000) == 0xe89d912aul);

    uint8_t *buf = NULL;
    size_t cap = 0;
    struct sy_binlog_body b, inf;
    struct sy_binlog_query q;
    const struct binlog_vector *v = find_ev("compressed", SY_BL_QUERY_COMPRESSED, 0);
    CHECK(vec_body(v, &b) && sy_binlog_inflate(v->type, &b, &buf, &cap, &inf) == SY_PARSE_OK);
    static const char ddl[] = "CREATE TABLE sy.t_comp (id INT PRIMARY KEY, note VARCHAR(100) COMMENT 'a comment long "
                              "enough to compress')\n  ENGINE=InnoDB";
    CHECK(sy_binlog_query_parse(&inf, &q) == SY_PARSE_OK && q.db_len == 0 && q.sql_len == sizeof ddl - 1 &&
          memcmp(q.sql, ddl, sizeof ddl - 1) == 0);
    /* the compressed QUERY keeps its status variables as they are */
    CHECK(q.has_sql_mode && q.has_charset && q.charset_client == 45);
    /* a QUERY (not compressed) can not be inflated */
    CHECK(sy_binlog_inflate(SY_BL_QUERY, &b, &buf, &cap, &inf) == SY_PARSE_BAD);
    free(buf);
}

/* ---- hand-built TABLE_MAP and v2 ROWS ------------------------------------------------------------ */

enum { H_ID, H_NAME, H_RAW, H_E, H_S, H_K, H_D, H_COLS };
#define H_TABLE_ID 0x0000123456789aull

/* t_hand (id INT, name VARCHAR(300) utf8mb4, raw VARBINARY(10), e ENUM('x','y'), s SET('p','q','r'),
 * k TINYINT UNSIGNED, d DECIMAL(4,2)) with DEFAULT_CHARSET + pairs, PRIMARY_KEY_WITH_PREFIX,
 * ENUM_AND_SET_COLUMN_CHARSET, GEOMETRY_TYPE and an unknown TLV. */
static void hand_table_map(struct bld *e)
{
    static const uint8_t types[H_COLS] = { 3, 15, 15, 254, 254, 1, 246 };
    struct bld meta = { .n = 0 }, tlv = { .n = 0 }, v = { .n = 0 };
    put_le(&meta, 1200, 2);                         /* name: 1200 bytes, 2 length bytes */
    put_le(&meta, 10, 2);                           /* raw */
    put_u8(&meta, 247); put_u8(&meta, 1);           /* e: ENUM, 1 byte */
    put_u8(&meta, 248); put_u8(&meta, 1);           /* s: SET, 1 byte */
    put_u8(&meta, 4); put_u8(&meta, 2);             /* d: DECIMAL(4,2) */
    e->n = 0;
    put_le(e, H_TABLE_ID, 6);
    put_le(e, 1, 2);
    put_u8(e, 2); put_str(e, "sy"); put_u8(e, 0);
    put_u8(e, 6); put_str(e, "t_hand"); put_u8(e, 0);
    put_lenenc(e, H_COLS);
    put(e, types, H_COLS);
    put_lenenc(e, meta.n);
    put(e, meta.p, meta.n);
    put_u8(e, 0x7e);                                /* all nullable but id */
#define TLV(type)                  \
    do {                           \
        put_u8(&tlv, type);        \
        put_lenenc(&tlv, v.n);     \
        put(&tlv, v.p, v.n);       \
        v.n = 0;                   \
    } while (0)
    put_u8(&v, 0x40);                               /* numeric: id, k, d -> k unsigned */
    TLV(1);
    put_lenenc(&v, 45); put_lenenc(&v, 1); put_lenenc(&v, 63);   /* default 45; 2nd char column binary */
    TLV(2);
    static const char *names[H_COLS] = { "id", "name", "raw", "e", "s", "k", "d" };
    for (int i = 0; i < H_COLS; i++) {
        put_lenenc(&v, strlen(names[i]));
        put_str(&v, names[i]);
    }
    TLV(4);
    put_lenenc(&v, 3); put_lenenc(&v, 1); put_str(&v, "p"); put_lenenc(&v, 1); put_str(&v, "q");
    put_lenenc(&v, 1); put_str(&v, "r");
    TLV(5);
    put_lenenc(&v, 2); put_lenenc(&v, 1); put_str(&v, "x"); put_lenenc(&v, 1); put_str(&v, "y");
    TLV(6);
    put_lenenc(&v, 0); put_lenenc(&v, 0); put_lenenc(&v, 1); put_lenenc(&v, 10);
    TLV(9);
    put_lenenc(&v, 8); put_lenenc(&v, 224);
    TLV(11);
    put_u8(&v, 1); put_u8(&v, 2); put_u8(&v, 3);
    TLV(99);
#undef TLV
    put(e, tlv.p, tlv.n);
}

/* One row of t_hand: id, name, raw, e index, s bitmask, k, d (DECIMAL(4,2) bytes) or NULLs. */
static void hand_row(struct bld *e, const uint8_t *present, int32_t id, const char *name, uint8_t ei, uint8_t sb)
{
    uint8_t nulls = 0;
    int j = 0;
    bool null_rest = name == NULL;
    for (int i = 0; i < H_COLS; i++)
        if ((present[0] >> i) & 1) {
            if (null_rest && i > 0)
                nulls |= (uint8_t)(1u << j);
            j++;
        }
    put_u8(e, nulls);
    for (int i = 0; i < H_COLS; i++) {
        if (!((present[0] >> i) & 1) || (null_rest && i > 0))
            continue;
        switch (i) {
        case H_ID: put_le(e, (uint32_t)id, 4); break;
        case H_NAME: put_le(e, strlen(name), 2); put_str(e, name); break;
        case H_RAW: put_u8(e, 2); put_u8(e, 0); put_u8(e, 1); break;
        case H_E: put_u8(e, ei); break;
        case H_S: put_u8(e, sb); break;
        case H_K: put_u8(e, 200); break;
        case H_D: put_u8(e, 0x7e); put_u8(e, 0xe6); break;   /* -1.25 */
        }
    }
}

static void hand_rows_head(struct bld *e, uint8_t type, uint64_t table_id, const uint8_t *bm1, const uint8_t *bm2)
{
    e->n = 0;
    put_le(e, table_id, 6);
    put_le(e, 1, 2);
    if (type >= SY_BL_WRITE_ROWS_V2) {               /* extra data: length incl. itself, then a tag */
        put_le(e, 6, 2);
        put_u8(e, 0); put_u8(e, 2); put_u8(e, 0xaa); put_u8(e, 0xbb);
    }
    put_lenenc(e, H_COLS);
    put_u8(e, bm1[0]);
    if (bm2 != NULL)
        put_u8(e, bm2[0]);
}

static const char *hand_dump(const struct bld *tm_body, uint8_t type, const struct bld *rows_body)
{
    struct map_set ms = { .n = 0 };
    struct sy_binlog_body b = body_of(tm_body);
    dump_len = 0;
    dump_buf[0] = '\0';
    if (sy_binlog_table_map_parse(&b, &ms.maps[0]) != SY_PARSE_OK)
        return "table map BAD";
    ms.n = 1;
    b = body_of(rows_body);
    uint8_t *buf = NULL;
    size_t cap = 0;
    if (sy_binlog_uncompressed_type(type) != type) {
        struct sy_binlog_body inf;
        if (sy_binlog_inflate(type, &b, &buf, &cap, &inf) != SY_PARSE_OK)
            dump_add("inflate BAD\n");
        b = inf;
    }
    (void)dump_rows(type, &b, &ms);
    free(buf);
    maps_free(&ms);
    return dump_buf;
}

static void test_hand_table_map(void)
{
    static struct bld e;
    struct sy_binlog_table_map tm;
    hand_table_map(&e);
    struct sy_binlog_body b = body_of(&e);
    CHECK(sy_binlog_table_map_parse(&b, &tm) == SY_PARSE_OK);
    CHECK(tm.table_id == H_TABLE_ID && strcmp(tm.table, "t_hand") == 0 && tm.n_columns == H_COLS && tm.has_names);
    CHECK(tm.charset[H_NAME] == 45 && tm.charset[H_RAW] == 63 && tm.charset[H_E] == 8 && tm.charset[H_S] == 224 &&
          tm.charset[H_ID] == 0 && tm.charset[H_D] == 0);
    CHECK(tm.is_unsigned[H_K] && !tm.is_unsigned[H_ID] && !tm.is_unsigned[H_D]);
    CHECK(tm.is_key[H_ID] && tm.is_key[H_NAME] && !tm.is_key[H_RAW]);
    CHECK(!tm.nullable[H_ID] && tm.nullable[H_D] && tm.meta[H_NAME] == 1200 && tm.meta[H_E] == 1 &&
          tm.types[H_E] == 247 && tm.types[H_S] == 248 && tm.meta[H_D] == (4 << 8 | 2));
    CHECK(tm.enum_names[H_E] && strcmp(tm.enum_names[H_E][1], "y") == 0 && tm.enum_names[H_S] &&
          strcmp(tm.enum_names[H_S][2], "r") == 0 && tm.enum_names[H_S][3] == NULL);
    sy_binlog_table_map_free(&tm);
    /* every proper prefix of the body: BAD or (cut between TLVs) OK; the struct is always freeable */
    int ok = 0;
    for (size_t cut = 0; cut < e.n; cut++) {
        b.len = cut;
        enum sy_parse rc = sy_binlog_table_map_parse(&b, &tm);
        CHECK(rc == SY_PARSE_OK || rc == SY_PARSE_BAD);
        if (rc == SY_PARSE_BAD)
            CHECK(tm.types == NULL && tm.n_columns == 0);
        ok += rc == SY_PARSE_OK;
        sy_binlog_table_map_free(&tm);
    }
    CHECK(ok == 8);   /* right after the null bitmap and after each of the first 7 TLVs */
}

static void test_hand_rows_v2(void)
{
    static struct bld tmb, rb, z;
    static const uint8_t all[1] = { 0x7f }, key[1] = { 0x01 }, some[1] = { 0x1a };
    hand_table_map(&tmb);
    /* WRITE_ROWS v2 with extra data */
    hand_rows_head(&rb, SY_BL_WRITE_ROWS_V2, H_TABLE_ID, all, NULL);
    hand_row(&rb, all, -5, "h\xc3\xa9llo", 2, 5);
    hand_row(&rb, all, 6, NULL, 0, 0);
    CHECK(check_dump("v2 write", hand_dump(&tmb, SY_BL_WRITE_ROWS_V2, &rb),
                     "I t_hand:i:-5|s45:'h\xc3\xa9llo'|b:'\\x00\\x01'|s8:'y'|s224:'p,r'|u:200|m:-1.25\n"
                     "I t_hand:i:6|NULL|NULL|NULL|NULL|NULL|NULL\n"));
    /* the same rows in v1 */
    hand_rows_head(&rb, SY_BL_WRITE_ROWS_V1, H_TABLE_ID, all, NULL);
    hand_row(&rb, all, -5, "h\xc3\xa9llo", 2, 5);
    CHECK(check_dump("v1 write", hand_dump(&tmb, SY_BL_WRITE_ROWS_V1, &rb),
                     "I t_hand:i:-5|s45:'h\xc3\xa9llo'|b:'\\x00\\x01'|s8:'y'|s224:'p,r'|u:200|m:-1.25\n"));
    /* UPDATE v2 with a key-only before image and a partial after image */
    hand_rows_head(&rb, SY_BL_UPDATE_ROWS_V2, H_TABLE_ID, key, some);
    hand_row(&rb, key, 7, "", 0, 0);
    hand_row(&rb, some, 0, "n", 1, 0);
    CHECK(check_dump("v2 update", hand_dump(&tmb, SY_BL_UPDATE_ROWS_V2, &rb),
                     "U t_hand:i:7|-|-|-|-|-|- > -|s45:'n'|-|s8:'x'|s224:''|-|-\n"));
    /* DELETE v2 */
    hand_rows_head(&rb, SY_BL_DELETE_ROWS_V2, H_TABLE_ID, all, NULL);
    hand_row(&rb, all, 8, "", 0, 7);
    CHECK(check_dump("v2 delete", hand_dump(&tmb, SY_BL_DELETE_ROWS_V2, &rb),
                     "D t_hand:i:8|s45:''|b:'\\x00\\x01'|s8:''|s224:'p,q,r'|u:200|m:-1.25\n"));
    /* ROWS_COMPRESSED v2 (169): the rows after the bitmap, zlib-compressed behind MariaDB's header byte */
    hand_rows_head(&rb, SY_BL_WRITE_ROWS_V2, H_TABLE_ID, all, NULL);
    size_t head = rb.n;
    hand_row(&rb, all, -5, "h\xc3\xa9llo", 2, 5);
    hand_row(&rb, all, 6, NULL, 0, 0);
    uLongf zn = sizeof z.p - 8;
    CHECK(compress(z.p + 2, &zn, rb.p + head, (uLong)(rb.n - head)) == Z_OK);
    z.p[0] = 0x81;
    z.p[1] = (uint8_t)(rb.n - head);
    z.n = 2 + zn;
    rb.n = head;
    put(&rb, z.p, z.n);
    CHECK(check_dump("v2 compressed", hand_dump(&tmb, SY_BL_WRITE_ROWS_COMPRESSED_V2, &rb),
                     "I t_hand:i:-5|s45:'h\xc3\xa9llo'|b:'\\x00\\x01'|s8:'y'|s224:'p,r'|u:200|m:-1.25\n"
                     "I t_hand:i:6|NULL|NULL|NULL|NULL|NULL|NULL\n"));
    /* the same compressed bytes under a v1 type read the extra data as the column count: BAD */
    struct sy_binlog_body b = body_of(&rb), inf;
    uint8_t *buf = NULL;
    size_t cap = 0;
    CHECK(sy_binlog_inflate(SY_BL_WRITE_ROWS_COMPRESSED_V1, &b, &buf, &cap, &inf) == SY_PARSE_BAD);
    free(buf);

    /* row errors: each is BAD with a reason, and stays BAD */
    struct {
        const char *what;
        int32_t id;
        uint8_t ei, sb;
        const char *err;
    } bad[] = {
        { "enum", 1, 3, 0, "ENUM index" },
        { "set", 1, 1, 8, "SET bit" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hand_rows_head(&rb, SY_BL_WRITE_ROWS_V1, H_TABLE_ID, all, NULL);
        hand_row(&rb, all, bad[i].id, "", bad[i].ei, bad[i].sb);
        const char *got = hand_dump(&tmb, SY_BL_WRITE_ROWS_V1, &rb);
        CHECK(strstr(got, "row BAD") != NULL && strstr(got, bad[i].err) != NULL);
    }
}

/* Iterates a rows body against the hand table map; returns the first non-OK result and the error. */
static enum sy_parse hand_iter(const struct bld *rows_body, uint8_t type, char *err, size_t errlen)
{
    static struct bld tmb;
    struct sy_binlog_table_map tm;
    struct sy_binlog_rows rows;
    hand_table_map(&tmb);
    struct sy_binlog_body b = body_of(&tmb);
    if (sy_binlog_table_map_parse(&b, &tm) != SY_PARSE_OK)
        return SY_PARSE_BAD;
    b = body_of(rows_body);
    enum sy_parse rc = sy_binlog_rows_parse(type, &b, &rows);
    if (rc == SY_PARSE_OK) {
        struct sy_binlog_row_iter it;
        sy_binlog_row_iter_init(&it, &rows, &tm);
        while ((rc = sy_binlog_row_next(&it, vals_before, vals_after)) == SY_PARSE_OK)
            ;
        if (rc == SY_PARSE_BAD)
            CHECK(sy_binlog_row_next(&it, vals_before, vals_after) == SY_PARSE_BAD);   /* sticky */
        snprintf(err, errlen, "%s", it.err);
        sy_binlog_row_iter_fini(&it);
    }
    sy_binlog_table_map_free(&tm);
    return rc;
}

static void test_row_errors(void)
{
    static struct bld rb;
    static const uint8_t all[1] = { 0x7f }, none[1] = { 0 };
    char err[160];
    hand_rows_head(&rb, SY_BL_WRITE_ROWS_V1, H_TABLE_ID, all, NULL);
    hand_row(&rb, all, 1, "abc", 1, 1);
    CHECK(hand_iter(&rb, SY_BL_WRITE_ROWS_V1, err, sizeof err) == SY_PARSE_AGAIN);
    size_t whole = rb.n;
    for (size_t cut = whole - 1; cut > 10; cut--) {   /* 10: the rows head, with no row: AGAIN */   /* every truncation of the row data */
        rb.n = cut;
        enum sy_parse rc = hand_iter(&rb, SY_BL_WRITE_ROWS_V1, err, sizeof err);
        CHECK(rc == SY_PARSE_BAD);
    }
    rb.n = whole;
    rb.p[0] ^= 1;                                        /* another table id */
    CHECK(hand_iter(&rb, SY_BL_WRITE_ROWS_V1, err, sizeof err) == SY_PARSE_BAD && strstr(err, "table id"));
    rb.p[0] ^= 1;
    rb.p[8] = H_COLS + 1;                                /* more columns than the map */
    CHECK(hand_iter(&rb, SY_BL_WRITE_ROWS_V1, err, sizeof err) == SY_PARSE_BAD && strstr(err, "column count"));
    rb.p[8] = H_COLS - 1;                                /* fewer: would look like a full image */
    CHECK(hand_iter(&rb, SY_BL_WRITE_ROWS_V1, err, sizeof err) == SY_PARSE_BAD && strstr(err, "column count"));
    rb.p[8] = H_COLS;
    /* VARCHAR longer than its column */
    hand_rows_head(&rb, SY_BL_WRITE_ROWS_V1, H_TABLE_ID, all, NULL);
    hand_row(&rb, all, 1, "abc", 1, 1);
    rb.p[15] = 0xb1;                                     /* name length 0x04b1 = 1201 > 1200 */
    rb.p[16] = 0x04;
    CHECK(hand_iter(&rb, SY_BL_WRITE_ROWS_V1, err, sizeof err) == SY_PARSE_BAD && strstr(err, "longer"));
    /* DECIMAL digits out of range: integer part 100 in a 2-digit group */
    hand_rows_head(&rb, SY_BL_WRITE_ROWS_V1, H_TABLE_ID, all, NULL);
    hand_row(&rb, all, 1, "abc", 1, 1);
    rb.p[rb.n - 2] = 0x80 | 100;
    rb.p[rb.n - 1] = 0;
    CHECK(hand_iter(&rb, SY_BL_WRITE_ROWS_V1, err, sizeof err) == SY_PARSE_BAD && strstr(err, "DECIMAL"));
    /* no column present: the image takes no bytes, which would loop forever */
    hand_rows_head(&rb, SY_BL_WRITE_ROWS_V1, H_TABLE_ID, none, NULL);
    put_u8(&rb, 0);
    CHECK(hand_iter(&rb, SY_BL_WRITE_ROWS_V1, err, sizeof err) == SY_PARSE_BAD && strstr(err, "empty"));
    /* an iterator without a table map or rows */
    struct sy_binlog_row_iter it;
    sy_binlog_row_iter_init(&it, NULL, NULL);
    CHECK(sy_binlog_row_next(&it, vals_before, vals_after) == SY_PARSE_BAD && it.err[0] != '\0');
    sy_binlog_row_iter_fini(&it);
    sy_binlog_row_iter_fini(NULL);
    sy_binlog_table_map_free(NULL);
}

/* A TABLE_MAP body with one column of the given type and metadata, plus optional TLV bytes. */
static enum sy_parse one_column_map(uint8_t type, const uint8_t *meta, size_t meta_len, const struct bld *tlv,
                                    struct sy_binlog_table_map *tm)
{
    static struct bld e;
    e.n = 0;
    put_le(&e, 1, 6);
    put_le(&e, 0, 2);
    put_u8(&e, 1); put_str(&e, "d"); put_u8(&e, 0);
    put_u8(&e, 1); put_str(&e, "t"); put_u8(&e, 0);
    put_lenenc(&e, 1);
    put_u8(&e, type);
    put_lenenc(&e, meta_len);
    put(&e, meta, meta_len);
    put_u8(&e, 1);
    if (tlv)
        put(&e, tlv->p, tlv->n);
    struct sy_binlog_body b = body_of(&e);
    enum sy_parse rc = sy_binlog_table_map_parse(&b, tm);
    return rc;
}

/* Decodes one value of a one-column table from raw row bytes (after the NULL bitmap). */
static enum sy_parse one_value(uint8_t type, const uint8_t *meta, size_t meta_len, const uint8_t *val, size_t n,
                               char *text, size_t text_len)
{
    struct sy_binlog_table_map tm;
    if (one_column_map(type, meta, meta_len, NULL, &tm) != SY_PARSE_OK)
        return SY_PARSE_BAD;
    static struct bld rb;
    static const uint8_t all[1] = { 1 };
    rb.n = 0;
    put_le(&rb, 1, 6);
    put_le(&rb, 0, 2);
    put_lenenc(&rb, 1);
    put_u8(&rb, all[0]);
    put_u8(&rb, 0);
    put(&rb, val, n);
    struct sy_binlog_body b = body_of(&rb);
    struct sy_binlog_rows rows;
    enum sy_parse rc = sy_binlog_rows_parse(SY_BL_WRITE_ROWS_V1, &b, &rows);
    struct sy_binlog_row_iter it;
    sy_binlog_row_iter_init(&it, &rows, &tm);
    if (rc == SY_PARSE_OK)
        rc = sy_binlog_row_next(&it, NULL, vals_after);
    dump_len = 0;
    dump_buf[0] = '\0';
    if (rc == SY_PARSE_OK)
        dump_value(&vals_after[0], true);
    snprintf(text, text_len, "%s", rc == SY_PARSE_OK ? dump_buf : it.err);
    sy_binlog_row_iter_fini(&it);
    sy_binlog_table_map_free(&tm);
    return rc;
}

static void test_values_edges(void)
{
    char t[256];
    static const uint8_t m_t2_2[] = { 2 }, m_t2_0[] = { 0 }, m_dec[] = { 9, 9 }, m_dec18[] = { 18, 0 };
    /* TIME(2) with a fraction byte over 99: not a value MariaDB writes */
    static const uint8_t t2[] = { 0x80, 0x00, 0x00, 0xff };
    CHECK(one_value(19, m_t2_2, 1, t2, 4, t, sizeof t) == SY_PARSE_BAD && strstr(t, "fraction"));
    static const uint8_t t2ok[] = { 0x80, 0x10, 0x00, 0x32 };      /* 01:00:00.50 */
    CHECK(one_value(19, m_t2_2, 1, t2ok, 4, t, sizeof t) == SY_PARSE_OK && strcmp(t, "t:01:00:00.50") == 0);
    /* DATETIME(0) with hour 31 */
    static const uint8_t dt[] = { 0x80, 0x00, 0x01, 0xf0, 0x00 };
    CHECK(one_value(18, m_t2_0, 1, dt, 5, t, sizeof t) == SY_PARSE_BAD && strstr(t, "DATETIME"));
    /* TIMESTAMP(2): 0 is the zero timestamp; a fraction over 99 is BAD */
    static const uint8_t ts0[] = { 0, 0, 0, 0, 0 }, tsbad[] = { 0, 0, 0, 1, 100 };
    CHECK(one_value(17, m_t2_2, 1, ts0, 5, t, sizeof t) == SY_PARSE_OK && strcmp(t, "t:0000-00-00 00:00:00.00") == 0);
    CHECK(one_value(17, m_t2_2, 1, tsbad, 5, t, sizeof t) == SY_PARSE_BAD);
    static const uint8_t tsmax[] = { 0xff, 0xff, 0xff, 0xff, 99 };   /* 2106-02-07 06:28:15.99 */
    CHECK(one_value(17, m_t2_2, 1, tsmax, 5, t, sizeof t) == SY_PARSE_OK &&
          strcmp(t, "t:2106-02-07 06:28:15.99") == 0);
    /* DECIMAL(9,9): one full fraction group; DECIMAL(18,0): two integer groups */
    static const uint8_t d9[] = { 0x80 | 0x05, 0xf5, 0xe0, 0xff };   /* 0.099999999 -> 99999999 */
    CHECK(one_value(246, m_dec, 2, d9, 4, t, sizeof t) == SY_PARSE_OK && strcmp(t, "m:0.099999999") == 0);
    static const uint8_t d18[] = { 0x80, 0, 0, 1, 0, 0, 0, 2 };
    CHECK(one_value(246, m_dec18, 2, d18, 8, t, sizeof t) == SY_PARSE_OK && strcmp(t, "m:1000000002") == 0);
    static const uint8_t d18neg[] = { 0x7f, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xfd };
    CHECK(one_value(246, m_dec18, 2, d18neg, 8, t, sizeof t) == SY_PARSE_OK && strcmp(t, "m:-1000000002") == 0);
    static const uint8_t d18big[] = { 0x80 | 0x3b, 0x9a, 0xca, 0x00, 0, 0, 0, 0 };   /* group = 10^9 */
    CHECK(one_value(246, m_dec18, 2, d18big, 8, t, sizeof t) == SY_PARSE_BAD);
    /* old DECIMAL: width unknown */
    static const uint8_t any[] = { 1, 2, 3 };
    CHECK(one_value(0, NULL, 0, any, 3, t, sizeof t) == SY_PARSE_BAD && strstr(t, "unsupported"));
    /* BIT(3): one byte, big-endian; YEAR; NULL type; FLOAT; DOUBLE; BLOB with 3 length bytes */
    static const uint8_t m_bit3[] = { 3, 0 }, b3[] = { 5 };
    CHECK(one_value(16, m_bit3, 2, b3, 1, t, sizeof t) == SY_PARSE_OK && strcmp(t, "u:5") == 0);
    static const uint8_t m_bit12[] = { 4, 1 }, b12[] = { 0x0a, 0xbc };
    CHECK(one_value(16, m_bit12, 2, b12, 2, t, sizeof t) == SY_PARSE_OK && strcmp(t, "u:2748") == 0);
    static const uint8_t y[] = { 124 };
    CHECK(one_value(13, NULL, 0, y, 1, t, sizeof t) == SY_PARSE_OK && strcmp(t, "u:2024") == 0);
    CHECK(one_value(6, NULL, 0, y, 0, t, sizeof t) == SY_PARSE_OK && strcmp(t, "NULL") == 0);
    static const uint8_t m_f[] = { 4 }, f[] = { 0x00, 0x00, 0xc0, 0x3f };
    CHECK(one_value(4, m_f, 1, f, 4, t, sizeof t) == SY_PARSE_OK && strcmp(t, "f:1.5") == 0);
    static const uint8_t m_b3[] = { 3 }, bl[] = { 2, 0, 0, 'h', 'i' };
    CHECK(one_value(252, m_b3, 1, bl, 5, t, sizeof t) == SY_PARSE_OK && strcmp(t, "s0:'hi'") == 0);
    CHECK(one_value(255, m_b3, 1, bl, 5, t, sizeof t) == SY_PARSE_OK && strcmp(t, "b:'hi'") == 0);
    CHECK(one_value(245, m_b3, 1, bl, 5, t, sizeof t) == SY_PARSE_OK && strcmp(t, "b:'hi'") == 0);
    static const uint8_t blhuge[] = { 0xff, 0xff, 0xff, 'h' };
    CHECK(one_value(252, m_b3, 1, blhuge, 4, t, sizeof t) == SY_PARSE_BAD);
    /* CHAR(300) of a 1-byte charset: the >255 length hidden in the real-type byte, 2 length bytes */
    static const uint8_t m_c300[] = { 254 ^ ((300 & 0x300) >> 4), 300 & 0xff }, c300[] = { 2, 0, 'o', 'k' };
    CHECK(one_value(254, m_c300, 2, c300, 4, t, sizeof t) == SY_PARSE_OK && strcmp(t, "s0:'ok'") == 0);
    /* ENUM without names: its index; SET: its bitmask (8 bytes) */
    static const uint8_t m_e2[] = { 247, 2 }, e2[] = { 0x2c, 0x01 }, m_s8[] = { 248, 8 };
    static const uint8_t s8[] = { 1, 0, 0, 0, 0, 0, 0, 0x80 };
    CHECK(one_value(254, m_e2, 2, e2, 2, t, sizeof t) == SY_PARSE_OK && strcmp(t, "u:300") == 0);
    CHECK(one_value(254, m_s8, 2, s8, 8, t, sizeof t) == SY_PARSE_OK && strcmp(t, "u:9223372036854775809") == 0);
    /* old TIME, DATETIME, TIMESTAMP */
    static const uint8_t ot[] = { 0x89, 0x3e, 0xf3 };   /* -(83:59:59) as -835959 */
    CHECK(one_value(11, NULL, 0, ot, 3, t, sizeof t) == SY_PARSE_OK && strcmp(t, "t:-83:59:59") == 0);
    static const uint8_t ots[] = { 0, 0, 0, 0 };
    CHECK(one_value(7, NULL, 0, ots, 4, t, sizeof t) == SY_PARSE_OK && strcmp(t, "t:0000-00-00 00:00:00") == 0);
}

static void test_table_map_errors(void)
{
    struct sy_binlog_table_map tm;
    static const uint8_t m1[] = { 4 }, m_enum3[] = { 247, 3 }, m_weird[] = { 0x3f, 1 }, m_dec0[] = { 0, 0 },
                         m_dec66[] = { 66, 2 }, m_dec_s[] = { 5, 6 }, m_fsp7[] = { 7 }, m_blob5[] = { 5 },
                         m_bit0[] = { 0, 0 }, m_bit9[] = { 0, 9 }, m_set9[] = { 248, 9 }, m_float3[] = { 3 };
    CHECK(one_column_map(4, m1, 1, NULL, &tm) == SY_PARSE_OK && tm.meta[0] == 4);
    sy_binlog_table_map_free(&tm);
    CHECK(one_column_map(20, NULL, 0, NULL, &tm) == SY_PARSE_BAD && tm.types == NULL);    /* unknown type */
    CHECK(one_column_map(249, NULL, 0, NULL, &tm) == SY_PARSE_BAD);                      /* TINY_BLOB: never */
    CHECK(one_column_map(254, m_enum3, 2, NULL, &tm) == SY_PARSE_BAD);
    CHECK(one_column_map(254, m_weird, 2, NULL, &tm) == SY_PARSE_BAD);
    CHECK(one_column_map(254, m_set9, 2, NULL, &tm) == SY_PARSE_BAD);
    CHECK(one_column_map(246, m_dec0, 2, NULL, &tm) == SY_PARSE_BAD);
    CHECK(one_column_map(246, m_dec66, 2, NULL, &tm) == SY_PARSE_BAD);
    CHECK(one_column_map(246, m_dec_s, 2, NULL, &tm) == SY_PARSE_BAD);
    CHECK(one_column_map(19, m_fsp7, 1, NULL, &tm) == SY_PARSE_BAD);
    CHECK(one_column_map(252, m_blob5, 1, NULL, &tm) == SY_PARSE_BAD);
    CHECK(one_column_map(16, m_bit0, 2, NULL, &tm) == SY_PARSE_BAD);
    CHECK(one_column_map(16, m_bit9, 2, NULL, &tm) == SY_PARSE_BAD);
    CHECK(one_column_map(4, m_float3, 1, NULL, &tm) == SY_PARSE_BAD);
    CHECK(one_column_map(246, m_dec_s, 1, NULL, &tm) == SY_PARSE_BAD);                   /* metadata short */
    /* TLVs: bad lengths, bad indexes, counts past the bytes, duplicates */
    static const struct {
        uint8_t bytes[16];
        size_t n;
        bool ok;
    } tlvs[] = {
        { { 4, 2, 1, 'c' }, 4, true },                     /* COLUMN_NAME */
        { { 4, 5, 1, 'c' }, 4, false },                    /* TLV longer than the body */
        { { 4, 3, 5, 'c', 'd' }, 5, false },               /* name longer than its TLV */
        { { 4, 2, 1, 'c', 4, 2, 1, 'c' }, 8, false },      /* COLUMN_NAME twice */
        { { 8, 1, 1 }, 3, false },                         /* SIMPLE_PRIMARY_KEY index 1 of 1 column */
        { { 8, 1, 0 }, 3, true },
        { { 9, 2, 0, 5 }, 4, true },                       /* PRIMARY_KEY_WITH_PREFIX */
        { { 9, 2, 3, 5 }, 4, false },
        { { 1, 0 }, 2, false },                            /* SIGNEDNESS without its byte (FLOAT is numeric) */
        { { 2, 1, 45 }, 3, true },                         /* DEFAULT_CHARSET: no character column, fine */
        { { 2, 3, 45, 0, 8 }, 5, false },                  /* ... but a pair for one is not */
        { { 2, 1, 0xfb }, 3, false },                      /* lenenc NULL */
        { { 2, 3, 0xfd, 0xff, 0xff }, 5, false },          /* collation over 16 bits */
        { { 6, 9, 0xfe, 0, 0, 0, 0, 0, 0, 0, 1 }, 11, true },   /* ENUM_STR_VALUE: no ENUM column, ignored */
        { { 99, 0 }, 2, true },                            /* unknown TLV, empty */
        { { 99, 0xfe, 1, 0, 0, 0, 0, 0, 0, 0 }, 10, false },    /* unknown TLV, length 2^56 */
    };
    for (size_t i = 0; i < sizeof tlvs / sizeof tlvs[0]; i++) {
        struct bld t = { .n = 0 };
        put(&t, tlvs[i].bytes, tlvs[i].n);
        enum sy_parse rc = one_column_map(4, m1, 1, &t, &tm);
        if ((rc == SY_PARSE_OK) != tlvs[i].ok)
            fprintf(stderr, "TLV case %zu: rc %d\n", i, rc);
        CHECK((rc == SY_PARSE_OK) == tlvs[i].ok);
        sy_binlog_table_map_free(&tm);
    }
    /* ENUM names: a count larger than the bytes, and a huge lenenc count */
    static const uint8_t m_enum1[] = { 247, 1 };
    struct bld t = { .n = 0 };
    put_u8(&t, 6); put_u8(&t, 3); put_u8(&t, 200); put_u8(&t, 1); put_u8(&t, 'a');
    CHECK(one_column_map(254, m_enum1, 2, &t, &tm) == SY_PARSE_BAD);
    t.n = 0;
    put_u8(&t, 6); put_u8(&t, 9); put_u8(&t, 0xfe); put_le(&t, 1ull << 40, 8);
    CHECK(one_column_map(254, m_enum1, 2, &t, &tm) == SY_PARSE_BAD);
    t.n = 0;
    put_u8(&t, 6); put_u8(&t, 3); put_u8(&t, 1); put_u8(&t, 1); put_u8(&t, 'a');
    CHECK(one_column_map(254, m_enum1, 2, &t, &tm) == SY_PARSE_OK && tm.enum_names[0] &&
          strcmp(tm.enum_names[0][0], "a") == 0 && tm.enum_names[0][1] == NULL);
    sy_binlog_table_map_free(&tm);
}

static void test_huge_counts(void)
{
    struct sy_binlog_table_map tm;
    struct sy_binlog_rows rows;
    static struct bld e;
    static const uint64_t counts[] = { 0, 4097, 65535, 1u << 24, 1ull << 40, UINT64_MAX };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        e.n = 0;
        put_le(&e, 1, 6);
        put_le(&e, 0, 2);
        put_u8(&e, 1); put_str(&e, "d"); put_u8(&e, 0);
        put_u8(&e, 1); put_str(&e, "t"); put_u8(&e, 0);
        put_lenenc(&e, counts[i]);
        for (int k = 0; k < 64; k++)
            put_u8(&e, 3);
        struct sy_binlog_body b = body_of(&e);
        CHECK(sy_binlog_table_map_parse(&b, &tm) == SY_PARSE_BAD && tm.types == NULL);
        e.n = 0;
        put_le(&e, 1, 6);
        put_le(&e, 0, 2);
        put_lenenc(&e, counts[i]);
        for (int k = 0; k < 64; k++)
            put_u8(&e, 0xff);
        b = body_of(&e);
        CHECK(sy_binlog_rows_parse(SY_BL_UPDATE_ROWS_V1, &b, &rows) == SY_PARSE_BAD);
    }
    /* 4096 columns is the cap: a TABLE_MAP that really has them parses */
    e.n = 0;
    put_le(&e, 1, 6);
    put_le(&e, 0, 2);
    put_u8(&e, 1); put_str(&e, "d"); put_u8(&e, 0);
    put_u8(&e, 1); put_str(&e, "t"); put_u8(&e, 0);
    put_lenenc(&e, SY_CHANGE_MAX_COLUMNS);
    for (int k = 0; k < SY_CHANGE_MAX_COLUMNS; k++)
        put_u8(&e, 1);
    put_lenenc(&e, 0);
    for (int k = 0; k < SY_CHANGE_MAX_COLUMNS / 8; k++)
        put_u8(&e, 0xff);
    struct sy_binlog_body b = body_of(&e);
    CHECK(sy_binlog_table_map_parse(&b, &tm) == SY_PARSE_OK && tm.n_columns == SY_CHANGE_MAX_COLUMNS);
    sy_binlog_table_map_free(&tm);
    b.len--;   /* one null-bitmap byte short */
    CHECK(sy_binlog_table_map_parse(&b, &tm) == SY_PARSE_BAD);
    /* v2 extra data: shorter than its own length field, or past the body */
    e.n = 0;
    put_le(&e, 1, 6);
    put_le(&e, 0, 2);
    put_le(&e, 1, 2);
    put_u8(&e, 1); put_u8(&e, 1);
    b = body_of(&e);
    CHECK(sy_binlog_rows_parse(SY_BL_WRITE_ROWS_V2, &b, &rows) == SY_PARSE_BAD);
    e.p[8] = 0xff;
    CHECK(sy_binlog_rows_parse(SY_BL_WRITE_ROWS_V2, &b, &rows) == SY_PARSE_BAD);
    e.p[8] = 2;
    e.p[9] = 0;
    CHECK(sy_binlog_rows_parse(SY_BL_WRITE_ROWS_V2, &b, &rows) == SY_PARSE_OK && rows.n_columns == 1 &&
          rows.rows_len == 0);
    CHECK(sy_binlog_rows_parse(SY_BL_UPDATE_ROWS_V2, &b, &rows) == SY_PARSE_BAD);   /* 2nd bitmap missing */
    CHECK(sy_binlog_rows_parse(SY_BL_QUERY, &b, &rows) == SY_PARSE_BAD);
}

static void test_inflate_errors(void)
{
    static struct bld rb, z;
    uint8_t *buf = NULL;
    size_t cap = 0;
    struct sy_binlog_body b, inf;
    static const uint8_t all[1] = { 0x7f };
    hand_rows_head(&rb, SY_BL_WRITE_ROWS_V1, H_TABLE_ID, all, NULL);
    size_t head = rb.n;
    static const char payload[] = "some row bytes, some row bytes, some row bytes";
    uLongf zn = sizeof z.p;
    CHECK(compress(z.p, &zn, (const Bytef *)payload, sizeof payload) == Z_OK);
    struct {
        uint8_t h;
        uint32_t claimed;
        bool ok;
    } cases[] = {
        { 0x81, sizeof payload, true },
        { 0x84, sizeof payload, true },          /* 4 length bytes */
        { 0x01, sizeof payload, false },         /* no 0x80 */
        { 0x80, sizeof payload, false },         /* 0 length bytes */
        { 0x85, sizeof payload, false },         /* 5 length bytes */
        { 0x91, sizeof payload, false },         /* algorithm 1 */
        { 0x81, sizeof payload + 1, false },     /* claims more than the stream holds */
        { 0x81, sizeof payload - 1, false },     /* the stream holds more than claimed */
        { 0x84, 0xffffffffu, false },            /* 4 GiB from a few bytes: refused before allocating */
        { 0x83, 0xffffffu, false },              /* 16 MiB from 40 bytes: beyond zlib's 1032:1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rb.n = head;
        size_t lenlen = cases[i].h & 7;
        put_u8(&rb, cases[i].h);
        for (size_t k = lenlen; k > 0 && k <= 4; k--)
            put_u8(&rb, (uint8_t)(cases[i].claimed >> (8 * (k - 1))));
        put(&rb, z.p, zn);
        b = body_of(&rb);
        size_t cap_before = cap;
        enum sy_parse rc = sy_binlog_inflate(SY_BL_WRITE_ROWS_COMPRESSED_V1, &b, &buf, &cap, &inf);
        CHECK((rc == SY_PARSE_OK) == cases[i].ok);
        if (rc == SY_PARSE_OK)
            CHECK(inf.len == head + sizeof payload && memcmp(inf.p + head, payload, sizeof payload) == 0 &&
                  memcmp(inf.p, rb.p, head) == 0);
        if (cases[i].claimed > 0xffffff)
            CHECK(cap == cap_before);
    }
    /* corrupt and truncated zlib streams */
    rb.n = head;
    put_u8(&rb, 0x81);
    put_u8(&rb, sizeof payload);
    size_t zstart = rb.n;
    put(&rb, z.p, zn);
    for (size_t cut = zstart; cut < rb.n; cut++) {
        b = body_of(&rb);
        b.len = cut;
        CHECK(sy_binlog_inflate(SY_BL_WRITE_ROWS_COMPRESSED_V1, &b, &buf, &cap, &inf) == SY_PARSE_BAD);
    }
    rb.p[zstart + 5] ^= 0x55;
    b = body_of(&rb);
    CHECK(sy_binlog_inflate(SY_BL_WRITE_ROWS_COMPRESSED_V1, &b, &buf, &cap, &inf) == SY_PARSE_BAD);
    /* a QUERY_COMPRESSED whose db has no NUL; a body too short for the rows head */
    static struct bld sv, qe;
    sv.n = 0;
    query_body(&qe, &sv, "db", "x");
    qe.p[13 + 2] = 'z';
    b = body_of(&qe);
    CHECK(sy_binlog_inflate(SY_BL_QUERY_COMPRESSED, &b, &buf, &cap, &inf) == SY_PARSE_BAD);
    b.len = 4;
    CHECK(sy_binlog_inflate(SY_BL_UPDATE_ROWS_COMPRESSED_V1, &b, &buf, &cap, &inf) == SY_PARSE_BAD);
    CHECK(sy_binlog_inflate(SY_BL_TABLE_MAP, &b, &buf, &cap, &inf) == SY_PARSE_BAD);
    free(buf);
}

/* ---- hostile input over the real events --------------------------------------------------------- */

struct hostile_case {
    const char *step;
    uint8_t type;
    int nth;
    const char *map_step;   /* the TABLE_MAP its rows need, or NULL */
    size_t stride;          /* prefixes / flips every `stride` bytes */
};

static const struct hostile_case hostile[] = {
    { "init", SY_BL_FORMAT_DESCRIPTION, 0, NULL, 1 },
    { "init", SY_BL_GTID_LIST, 0, NULL, 1 },
    { "init", SY_BL_BINLOG_CHECKPOINT, 0, NULL, 1 },
    { "ins_int", SY_BL_GTID, 0, NULL, 1 },
    { "schema", SY_BL_QUERY, 4, NULL, 1 },
    { "ins_str", SY_BL_TABLE_MAP, 0, NULL, 1 },
    { "ins_str", SY_BL_WRITE_ROWS_V1, 0, "ins_str", 1 },
    { "ins_num", SY_BL_WRITE_ROWS_V1, 0, "ins_num", 1 },
    { "ins_time", SY_BL_WRITE_ROWS_V1, 0, "ins_time", 1 },
    { "ins_old", SY_BL_WRITE_ROWS_V1, 0, "ins_old", 1 },
    { "update", SY_BL_UPDATE_ROWS_V1, 0, "update", 1 },
    { "minimal", SY_BL_UPDATE_ROWS_V1, 0, "minimal", 1 },
    { "compressed", SY_BL_WRITE_ROWS_COMPRESSED_V1, 0, "compressed", 1 },
    { "compressed", SY_BL_UPDATE_ROWS_COMPRESSED_V1, 0, "compressed", 1 },
    { "compressed", SY_BL_QUERY_COMPRESSED, 0, NULL, 1 },
    { "xa", SY_BL_GTID, 0, NULL, 1 },
    { "xa", SY_BL_XA_PREPARE, 0, NULL, 1 },
    { "rotate", SY_BL_ROTATE, 0, NULL, 1 },
    { "rotate", SY_BL_GTID_LIST, 0, NULL, 1 },
    { "ins_big", SY_BL_WRITE_ROWS_V1, 0, "ins_big", 211 },
};

static void test_prefixes(void)
{
    for (size_t c = 0; c < sizeof hostile / sizeof hostile[0]; c++) {
        const struct binlog_vector *v = find_ev(hostile[c].step, hostile[c].type, hostile[c].nth);
        struct sy_binlog_table_map tm, *tmp = NULL;
        if (v == NULL) {
            fprintf(stderr, "no vector for case %zu\n", c);
            CHECK(false);
            continue;
        }
        if (hostile[c].map_step && vec_table_map(hostile[c].map_step, 0, &tm))
            tmp = &tm;
        bool crc = file_has_crc(v->file);
        CHECK(pipeline(v->p, v->len, crc, tmp) == SY_PARSE_OK);
        /* every prefix of the event: the framing waits for the rest */
        size_t not_again = 0;
        for (size_t k = 0; k < v->len; k += hostile[c].stride)
            not_again += pipeline(v->p, k, crc, tmp) != SY_PARSE_AGAIN;
        CHECK(not_again == 0);
        /* every prefix of the body given to the parsers directly (as if event_size lied): no crash */
        uint8_t *copy = malloc(v->len);
        for (size_t k = SY_BINLOG_HEADER_LEN; k < v->len; k += hostile[c].stride) {
            memcpy(copy, v->p, k);
            for (int i = 0; i < 4; i++)
                copy[9 + i] = (uint8_t)(k >> (8 * i));
            enum sy_parse rc = pipeline(copy, k, false, tmp);
            CHECK(rc == SY_PARSE_OK || rc == SY_PARSE_BAD);
        }
        free(copy);
        if (tmp)
            sy_binlog_table_map_free(tmp);
    }
}

static void test_corruption(void)
{
    static const uint8_t masks[] = { 0x01, 0x80, 0xff };
    for (size_t c = 0; c < sizeof hostile / sizeof hostile[0]; c++) {
        const struct binlog_vector *v = find_ev(hostile[c].step, hostile[c].type, hostile[c].nth);
        struct sy_binlog_table_map tm, *tmp = NULL;
        if (v == NULL)
            continue;
        if (hostile[c].map_step && vec_table_map(hostile[c].map_step, 0, &tm))
            tmp = &tm;
        bool crc = file_has_crc(v->file);
        uint8_t *copy = malloc(v->len);
        size_t accepted = 0;
        for (size_t i = 0; i < v->len; i += hostile[c].stride) {
            for (size_t m = 0; m < sizeof masks; m++) {
                memcpy(copy, v->p, v->len);
                copy[i] ^= masks[m];
                /* The CRC catches every flip but the FDE's in-use flag, which it does not cover, and an
                 * FDE that now reads as checksum_alg 0 (a flipped alg byte or a shorter event_size):
                 * such an FDE carries no CRC to check. */
                struct sy_binlog_fde f;
                bool fde = v->type == SY_BL_FORMAT_DESCRIPTION;
                bool in_use_flag = fde && i == 17 && masks[m] == 0x01;
                enum sy_parse rc = pipeline(copy, v->len, true, tmp);
                if (fde && rc == SY_PARSE_OK && sy_binlog_fde_parse(copy, v->len, &f) == SY_PARSE_OK &&
                    f.checksum_alg == 0)
                    rc = SY_PARSE_BAD;
                if (crc && !in_use_flag && rc == SY_PARSE_OK) {
                    fprintf(stderr, "case %zu: flip %zu ^ %02x accepted\n", c, i, masks[m]);
                    accepted++;
                }
                /* with the CRC redone, the parsers see the flip: any verdict, no crash */
                if (crc && v->len >= 23 && copy[9] == v->p[9] && copy[10] == v->p[10] && copy[11] == v->p[11] &&
                    copy[12] == v->p[12]) {
                    uint32_t k = (uint32_t)crc32(0, copy, (uInt)(v->len - 4));
                    for (int b = 0; b < 4; b++)
                        copy[v->len - 4 + b] = (uint8_t)(k >> (8 * b));
                }
                (void)pipeline(copy, v->len, crc, tmp);
                (void)pipeline(copy, v->len, !crc, tmp);
            }
        }
        CHECK(accepted == 0);
        free(copy);
        if (tmp)
            sy_binlog_table_map_free(tmp);
    }
}

int main(void)
{
    test_walk_all();
    test_fde();
    test_header_and_crc();
    test_gtid_events();
    test_query_events();
    test_query_status_vars();
    test_rotate_and_gtid_list();
    test_table_maps();
    test_rows_int();
    test_rows_num();
    test_rows_time();
    test_rows_str();
    test_big_blob();
    test_update_txn_minimal();
    test_compressed();
    test_hand_table_map();
    test_hand_rows_v2();
    test_row_errors();
    test_values_edges();
    test_table_map_errors();
    test_huge_counts();
    test_inflate_errors();
    test_prefixes();
    test_corruption();
    return CHECK_DONE();
}
