/* Unit tests for core/change.c: round trips of every change kind and value type, every truncation of
 * valid encodings, corrupt counts and lengths (BAD without a large allocation), and the cases the
 * fuzzer found. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/change.h"
#include "engine/mariadb_ddl_context.h"
#include "tests/unit/check.h"

static bool same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static bool same_text(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen > 0 && (a == NULL || b == NULL))
        return false;
    return same_bytes(a, alen, b, blen);
}

/* Decoded strings must be NUL-terminated right after their length. */
static bool nul_terminated(const char *s, size_t len)
{
    return s != NULL && s[len] == '\0';
}

static bool same_value(const struct sy_value *a, const struct sy_value *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case SY_VAL_NULL:
        return true;
    case SY_VAL_INT:
        return a->i == b->i;
    case SY_VAL_UINT:
        return a->u == b->u;
    case SY_VAL_FLOAT:
    case SY_VAL_DOUBLE:
        return memcmp(&a->d, &b->d, sizeof a->d) == 0;
    default:
        return same_bytes(a->p, a->len, b->p, b->len) && a->charset == b->charset;
    }
}

static bool same_values(const struct sy_value *a, const struct sy_value *b, uint32_t n)
{
    if ((a == NULL) != (b == NULL))
        return false;
    for (uint32_t i = 0; a != NULL && i < n; i++)
        if (!same_value(&a[i], &b[i]))
            return false;
    return true;
}

/* Field-by-field equality of an original change and its decoded copy (d); checks d's terminators. */
static bool same_change(const struct sy_change *a, const struct sy_change *d)
{
    if (a->kind != d->kind || a->source_time_ms != d->source_time_ms ||
        !same_text(a->position, a->position_len, d->position, d->position_len) ||
        !nul_terminated(d->position, d->position_len))
        return false;
    switch (a->kind) {
    case SY_CHANGE_TABLE: {
        const struct sy_change_table *x = &a->u.table, *y = &d->u.table;
        if (x->table_id != y->table_id || x->n_columns != y->n_columns ||
            !same_text(x->db, x->db_len, y->db, y->db_len) || !nul_terminated(y->db, y->db_len) ||
            !same_text(x->table, x->table_len, y->table, y->table_len) ||
            !nul_terminated(y->table, y->table_len))
            return false;
        for (uint32_t i = 0; i < x->n_columns; i++) {
            const struct sy_column *c = &x->columns[i], *e = &y->columns[i];
            if (!same_text(c->name, c->name_len, e->name, e->name_len) ||
                !nul_terminated(e->name, e->name_len) ||
                c->source_type != e->source_type || c->flags != e->flags || c->charset != e->charset)
                return false;
        }
        return true;
    }
    case SY_CHANGE_ROW: {
        const struct sy_change_row *x = &a->u.row, *y = &d->u.row;
        return x->table_id == y->table_id && x->op == y->op && x->n_columns == y->n_columns &&
               same_values(x->before, y->before, x->n_columns) &&
               same_values(x->after, y->after, x->n_columns);
    }
    case SY_CHANGE_DDL: {
        const struct sy_change_ddl *x = &a->u.ddl, *y = &d->u.ddl;
        return same_text(x->db, x->db_len, y->db, y->db_len) && nul_terminated(y->db, y->db_len) &&
               same_text(x->sql, x->sql_len, y->sql, y->sql_len) && nul_terminated(y->sql, y->sql_len) &&
               x->context_len == y->context_len &&
               (x->context_len == 0 || memcmp(x->context, y->context, x->context_len) == 0);
    }
    default:
        return true;
    }
}

/* Encodes c, decodes it, compares; then checks that proper prefixes decode BAD (every one when
 * stride is 1, every stride-th and the last 16 for big records, none when 0) and that one trailing
 * byte is BAD too. Returns false on any failure. */
static bool roundtrip(const struct sy_change *c, size_t stride)
{
    struct sy_buf b;
    struct sy_change_scratch s;
    struct sy_change d;
    bool ok = true;
    sy_buf_init(&b);
    sy_change_scratch_init(&s);
    if (sy_change_encode(c, &b) != 0) {
        ok = false;
        goto out;
    }
    if (sy_change_decode(b.p, b.len, &s, &d) != SY_PARSE_OK || !same_change(c, &d)) {
        ok = false;
        goto out;
    }
    for (size_t n = 0; stride > 0 && n < b.len; n += (n + 16 >= b.len ? 1 : stride)) {
        /* A copy of exactly n bytes, so ASan catches any read past the prefix. */
        uint8_t *cut = malloc(n ? n : 1);
        if (n)
            memcpy(cut, b.p, n);
        if (sy_change_decode(cut, n, &s, &d) != SY_PARSE_BAD) {
            fprintf(stderr, "prefix of %zu/%zu bytes of a %s decoded\n", n, b.len,
                    sy_change_kind_name(c->kind));
            ok = false;
        }
        free(cut);
    }
    sy_buf_add(&b, "", 1);
    if (b.oom || sy_change_decode(b.p, b.len, &s, &d) != SY_PARSE_BAD)
        ok = false;
out:
    sy_buf_fini(&b);
    sy_change_scratch_fini(&s);
    return ok;
}

static struct sy_change simple(enum sy_change_kind kind, uint64_t time_ms, const char *pos)
{
    struct sy_change c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.source_time_ms = time_ms;
    c.position = pos;
    c.position_len = pos ? strlen(pos) : 0;
    return c;
}

static void test_simple_kinds(void)
{
    struct sy_change c = simple(SY_CHANGE_TXN_BEGIN, 1700000000000ull, "1-10-5");
    CHECK(roundtrip(&c, 1));
    c = simple(SY_CHANGE_TXN_COMMIT, 0, "0-1-100,1-10-5,2-20-7");
    CHECK(roundtrip(&c, 1));
    c = simple(SY_CHANGE_POSITION, UINT64_MAX, "1-10-6");
    CHECK(roundtrip(&c, 1));
    c = simple(SY_CHANGE_POSITION, 1, NULL);  /* NULL with length 0 = "" */
    CHECK(roundtrip(&c, 1));
    c = simple(SY_CHANGE_TXN_COMMIT, 1, "");
    CHECK(roundtrip(&c, 1));
    static const char binpos[] = { 'a', 0, 'b' }; /* positions are opaque: a NUL inside is kept */
    c = simple(SY_CHANGE_POSITION, 5, NULL);
    c.position = binpos;
    c.position_len = sizeof binpos;
    CHECK(roundtrip(&c, 1));
}

static void test_table(void)
{
    struct sy_column c4[4] = {
        { .name = "id", .name_len = 2, .source_type = 8, .flags = SY_COL_KEY | SY_COL_UNSIGNED },
        { .name = "name", .name_len = 4, .source_type = 15, .flags = SY_COL_NULLABLE, .charset = 224 },
        { .name = "", .name_len = 0, .source_type = 252, .flags = SY_COL_GENERATED, .charset = 63 },
        { .name = "price", .name_len = 5, .source_type = 246, .flags = 0xff, .charset = 0xffff },
    };
    struct sy_change c = simple(SY_CHANGE_TABLE, 42, "");
    c.u.table.table_id = 0x123456789abcull;
    c.u.table.db = "shop";
    c.u.table.db_len = 4;
    c.u.table.table = "orders";
    c.u.table.table_len = 6;
    c.u.table.n_columns = 4;
    c.u.table.columns = c4;
    CHECK(roundtrip(&c, 1));

    c.u.table.table_id = UINT64_MAX;
    c.u.table.db = NULL;  /* empty db */
    c.u.table.db_len = 0;
    CHECK(roundtrip(&c, 1));

    /* Identifiers cannot hold a NUL: the decoded view would lie about them. */
    struct sy_buf b;
    sy_buf_init(&b);
    c.u.table.table = "ord\0ers";
    c.u.table.table_len = 7;
    CHECK(sy_change_encode(&c, &b) == -1);
    c.u.table.table = "orders";
    c.u.table.table_len = 6;
    c4[1].name = "na\0me";
    c4[1].name_len = 5;
    CHECK(sy_change_encode(&c, &b) == -1);
    c4[1].name = "name";
    c4[1].name_len = 4;
    c.u.table.n_columns = 0;
    CHECK(sy_change_encode(&c, &b) == -1);
    c.u.table.n_columns = SY_CHANGE_MAX_COLUMNS + 1;
    CHECK(sy_change_encode(&c, &b) == -1);
    c.u.table.n_columns = 4;
    c.u.table.columns = NULL;
    CHECK(sy_change_encode(&c, &b) == -1);
    sy_buf_fini(&b);
}

/* One value of every type, with edge values. */
static size_t all_values(struct sy_value *v)
{
    static const uint8_t bin[] = { 0, 1, 2, 0xff, 0 };
    size_t n = 0;
    memset(v, 0, 32 * sizeof *v);
    v[n++].type = SY_VAL_NULL;
    v[n].type = SY_VAL_INT, v[n++].i = 0;
    v[n].type = SY_VAL_INT, v[n++].i = -1;
    v[n].type = SY_VAL_INT, v[n++].i = INT64_MIN;
    v[n].type = SY_VAL_INT, v[n++].i = INT64_MAX;
    v[n].type = SY_VAL_INT, v[n++].i = -1234567;
    v[n].type = SY_VAL_UINT, v[n++].u = 0;
    v[n].type = SY_VAL_UINT, v[n++].u = UINT64_MAX;
    v[n].type = SY_VAL_UINT, v[n++].u = 1ull << 63;
    v[n].type = SY_VAL_FLOAT, v[n++].d = (double)1.5f;
    v[n].type = SY_VAL_DOUBLE, v[n++].d = -0.0;
    v[n].type = SY_VAL_DOUBLE, v[n++].d = 1e308;
    v[n].type = SY_VAL_DOUBLE, v[n++].d = 4.9e-324;   /* smallest subnormal */
    v[n].type = SY_VAL_DOUBLE, v[n++].d = -INFINITY;
    v[n].type = SY_VAL_DOUBLE, v[n++].d = 3.141592653589793;
    v[n].type = SY_VAL_DECIMAL, v[n].p = (const uint8_t *)"-12.50", v[n++].len = 6;
    v[n].type = SY_VAL_DECIMAL, v[n].p = (const uint8_t *)".5", v[n++].len = 2;
    v[n].type = SY_VAL_STRING, v[n].p = (const uint8_t *)"h\xc3\xa9llo", v[n].len = 6, v[n++].charset = 224;
    v[n].type = SY_VAL_STRING, v[n].p = NULL, v[n].len = 0, v[n++].charset = 45;       /* empty string */
    v[n].type = SY_VAL_STRING, v[n].p = (const uint8_t *)"", v[n].len = 0, v[n++].charset = 0;
    v[n].type = SY_VAL_BLOB, v[n].p = bin, v[n++].len = sizeof bin;
    v[n].type = SY_VAL_BLOB, v[n].p = NULL, v[n++].len = 0;                               /* empty blob */
    v[n].type = SY_VAL_TEMPORAL, v[n].p = (const uint8_t *)"2024-02-29 23:59:59.999999", v[n++].len = 26;
    v[n].type = SY_VAL_TEMPORAL, v[n].p = (const uint8_t *)"-838:59:59", v[n++].len = 10;
    return n;
}

static void test_row_values(void)
{
    struct sy_value before[32], after[32];
    size_t n = all_values(before);
    all_values(after);
    after[0].type = SY_VAL_INT, after[0].i = 7;   /* NULL -> 7 */
    after[1].type = SY_VAL_NULL;                  /* 0 -> NULL */

    struct sy_change c = simple(SY_CHANGE_ROW, 1700000000123ull, "");
    c.u.row.table_id = 77;
    c.u.row.n_columns = (uint32_t)n;

    c.u.row.op = SY_ROW_INSERT;
    c.u.row.after = after;
    CHECK(roundtrip(&c, 1));

    c.u.row.op = SY_ROW_UPDATE;
    c.u.row.before = before;
    CHECK(roundtrip(&c, 1));

    c.u.row.op = SY_ROW_DELETE;
    c.u.row.after = NULL;
    CHECK(roundtrip(&c, 1));

    /* A single column of each type on its own, so each value's encoding is cut everywhere. */
    for (size_t i = 0; i < n; i++) {
        c.u.row.op = SY_ROW_INSERT;
        c.u.row.n_columns = 1;
        c.u.row.before = NULL;
        c.u.row.after = &before[i];
        CHECK(roundtrip(&c, 1));
    }

    /* What cannot be encoded. */
    struct sy_buf b;
    sy_buf_init(&b);
    c.u.row.n_columns = (uint32_t)n;
    c.u.row.op = SY_ROW_UPDATE;
    c.u.row.before = NULL;
    c.u.row.after = after;
    CHECK(sy_change_encode(&c, &b) == -1);         /* UPDATE without a before image */
    c.u.row.op = SY_ROW_INSERT;
    c.u.row.after = NULL;
    CHECK(sy_change_encode(&c, &b) == -1);         /* INSERT without an after image */
    c.u.row.op = (enum sy_row_op)9;
    c.u.row.after = after;
    CHECK(sy_change_encode(&c, &b) == -1);
    c.u.row.op = SY_ROW_INSERT;
    struct sy_value bad = { .type = (enum sy_value_type)99 };
    c.u.row.after = &bad;
    c.u.row.n_columns = 1;
    CHECK(sy_change_encode(&c, &b) == -1);
    bad.type = SY_VAL_BLOB, bad.p = NULL, bad.len = 3;
    CHECK(sy_change_encode(&c, &b) == -1);
    c.u.row.n_columns = 0;
    c.u.row.after = after;
    CHECK(sy_change_encode(&c, &b) == -1);
    c.kind = (enum sy_change_kind)0;
    CHECK(sy_change_encode(&c, &b) == -1);
    sy_buf_fini(&b);
}

static void test_ddl(void)
{
    struct sy_change c = simple(SY_CHANGE_DDL, 99, "");
    c.u.ddl.db = "shop";
    c.u.ddl.db_len = 4;
    c.u.ddl.sql = "ALTER TABLE orders ADD COLUMN note VARCHAR(20) DEFAULT 'x'";
    c.u.ddl.sql_len = strlen(c.u.ddl.sql);
    struct sy_mariadb_ddl_context session = { .sql_mode = 0x5a000000ull | 1ull << 40, .charset_client = 33,
                                              .collation_connection = 224, .collation_server = 0xffff,
                                              .time_zone = "+00:00", .time_zone_len = 6 };
    struct sy_buf context;
    sy_buf_init(&context);
    CHECK(sy_mariadb_ddl_context_encode(&session, &context) == 0);
    c.u.ddl.context = context.p;
    c.u.ddl.context_len = context.len;
    CHECK(roundtrip(&c, 1));
    /* the context comes back byte for byte, and reads back as the session it was */
    struct sy_buf enc;
    sy_buf_init(&enc);
    CHECK(sy_change_encode(&c, &enc) == 0);
    struct sy_change_scratch sc;
    sy_change_scratch_init(&sc);
    struct sy_change d;
    CHECK(sy_change_decode(enc.p, enc.len, &sc, &d) == SY_PARSE_OK);
    struct sy_mariadb_ddl_context back;
    CHECK(sy_mariadb_ddl_context_decode(d.u.ddl.context, d.u.ddl.context_len, &back));
    CHECK(back.sql_mode == session.sql_mode && back.charset_client == 33 && back.collation_connection == 224 &&
          back.collation_server == 0xffff && back.time_zone_len == 6 && strcmp(back.time_zone, "+00:00") == 0);
    /* a record of format 1 (before the context was opaque) reads the same: its DDL fields are the context */
    static const uint8_t v1[] = { 1, SY_CHANGE_DDL, 0, 0, 0,    /* version, kind, time 0, position "" */
                                  1, 'd', 0, 4, 'D', 'R', 'O', 'P', 0, /* db "d", sql "DROP" */
                                  0x85, 0x01,                     /* sql_mode 133 */
                                  33, 0, 224, 0, 8, 0,            /* charsets */
                                  6, 'S', 'Y', 'S', 'T', 'E', 'M', 0 };
    CHECK(sy_change_decode(v1, sizeof v1, &sc, &d) == SY_PARSE_OK);
    CHECK(sy_mariadb_ddl_context_decode(d.u.ddl.context, d.u.ddl.context_len, &back));
    CHECK(back.sql_mode == 133 && back.charset_client == 33 && back.collation_server == 8 &&
          strcmp(back.time_zone, "SYSTEM") == 0);
    /* malformed contexts are refused: truncated, trailing bytes, a NUL in the zone */
    CHECK(!sy_mariadb_ddl_context_decode(context.p, context.len - 1, &back));
    uint8_t longer[64];
    memcpy(longer, context.p, context.len);
    longer[context.len] = 0;
    CHECK(!sy_mariadb_ddl_context_decode(longer, context.len + 1, &back));
    struct sy_mariadb_ddl_context bad = session;
    bad.time_zone = "a\0b";
    bad.time_zone_len = 3;
    bad.time_zone = (const char[]){ 'a', 0, 'b' };
    sy_buf_reset(&context);
    CHECK(sy_mariadb_ddl_context_encode(&bad, &context) == -1);
    sy_change_scratch_fini(&sc);
    sy_buf_fini(&enc);
    sy_buf_fini(&context);
    c.u.ddl.context = NULL;
    c.u.ddl.context_len = 0;
    memset(&c.u.ddl, 0, sizeof c.u.ddl);           /* every text empty (NULL pointers, length 0) */
    CHECK(roundtrip(&c, 1));
    static const char sql_nul[] = "INSERT INTO t VALUES ('a\0b')"; /* SQL text may hold a NUL */
    c.u.ddl.sql = sql_nul;
    c.u.ddl.sql_len = sizeof sql_nul - 1;
    CHECK(roundtrip(&c, 1));
}

static void test_big_blob(void)
{
    size_t big = 10u << 20;
    uint8_t *blob = malloc(big);
    for (size_t i = 0; i < big; i++)
        blob[i] = (uint8_t)(i * 131 + (i >> 13));
    struct sy_value v[2] = { { .type = SY_VAL_INT, .i = 1 }, { .type = SY_VAL_BLOB, .p = blob, .len = big } };
    struct sy_change c = simple(SY_CHANGE_ROW, 1, "");
    c.u.row.op = SY_ROW_INSERT;
    c.u.row.n_columns = 2;
    c.u.row.after = v;
    CHECK(roundtrip(&c, 0));

    /* A few truncations of it, including inside the blob and its charset. */
    struct sy_buf b;
    struct sy_change_scratch s;
    struct sy_change d;
    sy_buf_init(&b);
    sy_change_scratch_init(&s);
    CHECK(sy_change_encode(&c, &b) == 0);
    CHECK(b.len > big);
    static const size_t cuts[] = { 1, 2, 3, 10, 12, 100, 5u << 20 };
    for (size_t i = 0; i < SY_ARRAY_LEN(cuts); i++)
        CHECK(sy_change_decode(b.p, b.len > cuts[i] ? cuts[i] : 0, &s, &d) == SY_PARSE_BAD);
    CHECK(sy_change_decode(b.p, b.len - 1, &s, &d) == SY_PARSE_BAD);
    CHECK(sy_change_decode(b.p, b.len - 2, &s, &d) == SY_PARSE_BAD);
    CHECK(sy_change_decode(b.p, b.len - 3, &s, &d) == SY_PARSE_BAD);
    CHECK(sy_change_decode(b.p, b.len, &s, &d) == SY_PARSE_OK && d.u.row.after[1].len == big &&
          d.u.row.after[1].p >= b.p && d.u.row.after[1].p + big <= b.p + b.len);
    sy_buf_fini(&b);
    sy_change_scratch_fini(&s);
    free(blob);
}

static void test_max_columns(void)
{
    static struct sy_column cols[SY_CHANGE_MAX_COLUMNS];
    static char names[SY_CHANGE_MAX_COLUMNS][8];
    static struct sy_value before[SY_CHANGE_MAX_COLUMNS], after[SY_CHANGE_MAX_COLUMNS];
    for (int i = 0; i < SY_CHANGE_MAX_COLUMNS; i++) {
        snprintf(names[i], sizeof names[i], "c%d", i);
        cols[i].name = names[i];
        cols[i].name_len = strlen(names[i]);
        cols[i].source_type = (uint8_t)i;
        cols[i].flags = (uint8_t)(i & 0x0f);
        cols[i].charset = (uint16_t)i;
        before[i].type = (i % 3) ? SY_VAL_INT : SY_VAL_NULL;
        before[i].i = -i;
        after[i].type = SY_VAL_STRING;
        after[i].p = (const uint8_t *)names[i];
        after[i].len = cols[i].name_len;
    }
    struct sy_change c = simple(SY_CHANGE_TABLE, 5, "");
    c.u.table.table_id = 9;
    c.u.table.db = "d";
    c.u.table.db_len = 1;
    c.u.table.table = "wide";
    c.u.table.table_len = 4;
    c.u.table.n_columns = SY_CHANGE_MAX_COLUMNS;
    c.u.table.columns = cols;
    CHECK(roundtrip(&c, 37));

    struct sy_change r = simple(SY_CHANGE_ROW, 5, "");
    r.u.row.table_id = 9;
    r.u.row.op = SY_ROW_UPDATE;
    r.u.row.n_columns = SY_CHANGE_MAX_COLUMNS;
    r.u.row.before = before;
    r.u.row.after = after;
    CHECK(roundtrip(&r, 37));

    /* 4097 columns with all their bytes present: BAD by the cap alone. The encoder refuses it, so
     * build it from the 4096-column encoding by bumping the count (varint 4096 = 80 20 -> 81 20). */
    struct sy_buf b;
    struct sy_change_scratch s;
    struct sy_change d;
    sy_buf_init(&b);
    sy_change_scratch_init(&s);
    CHECK(sy_change_encode(&c, &b) == 0);
    /* version, kind, time 05, position 00 00, table_id 09, "d\0" (01 64 00), "wide\0" (04 ... 00) */
    size_t at = 2 + 1 + 2 + 1 + 3 + 6;
    CHECK(b.len > at + 2 && b.p[at] == 0x80 && b.p[at + 1] == 0x20);
    b.p[at] = 0x81;
    static const uint8_t extra[] = { 1, 'x', 0, 1, 0, 0, 0 };
    sy_buf_add(&b, extra, sizeof extra);
    CHECK(sy_change_decode(b.p, b.len, &s, &d) == SY_PARSE_BAD);
    CHECK(s.cap_columns == 0);
    sy_buf_fini(&b);
    sy_change_scratch_fini(&s);
}

/* Hand-made records whose counts and lengths lie: BAD, and the scratch never grows past the cap. */
static void test_corrupt_counts(void)
{
    struct sy_change_scratch s;
    struct sy_change d;
    sy_change_scratch_init(&s);

    /* TABLE claiming 4096 columns with 3 bytes left. */
    static const uint8_t t1[] = { 1, 2, 0, 0, 0, 1, 0, 0, 1, 't', 0, 0x80, 0x20, 1, 'a', 0 };
    CHECK(sy_change_decode(t1, sizeof t1, &s, &d) == SY_PARSE_BAD);
    CHECK(s.cap_columns == 0);
    /* TABLE claiming 2^63 columns (varint of 10 bytes). */
    static const uint8_t t2[] = { 1, 2, 0, 0, 0, 1, 0, 0, 1, 't', 0, 0x80, 0x80, 0x80, 0x80, 0x80,
                                  0x80, 0x80, 0x80, 0x80, 0x01, 1, 'a', 0, 0, 0, 0, 0 };
    CHECK(sy_change_decode(t2, sizeof t2, &s, &d) == SY_PARSE_BAD);
    CHECK(s.cap_columns == 0);
    /* TABLE with 0 columns. */
    static const uint8_t t3[] = { 1, 2, 0, 0, 0, 1, 0, 0, 1, 't', 0, 0 };
    CHECK(sy_change_decode(t3, sizeof t3, &s, &d) == SY_PARSE_BAD);
    /* ROW claiming 4096 columns with 2 values present. */
    static const uint8_t r1[] = { 1, 3, 0, 0, 0, 1, 1, 0x80, 0x20, 0, 0 };
    CHECK(sy_change_decode(r1, sizeof r1, &s, &d) == SY_PARSE_BAD);
    CHECK(s.cap_values == 0);
    /* UPDATE with 2 columns but only 3 NULL values (needs 4). */
    static const uint8_t r2[] = { 1, 3, 0, 0, 0, 1, 2, 2, 0, 0, 0 };
    CHECK(sy_change_decode(r2, sizeof r2, &s, &d) == SY_PARSE_BAD);
    static const uint8_t r2ok[] = { 1, 3, 0, 0, 0, 1, 2, 2, 0, 0, 0, 0 };
    CHECK(sy_change_decode(r2ok, sizeof r2ok, &s, &d) == SY_PARSE_OK && d.u.row.n_columns == 2 &&
          d.u.row.before != NULL && d.u.row.after == d.u.row.before + 2);
    /* A blob value claiming 2^64-1 bytes. */
    static const uint8_t v1[] = { 1, 3, 0, 0, 0, 1, 1, 1, 7, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                  0xff, 0xff, 0xff, 0x01, 0, 0 };
    CHECK(sy_change_decode(v1, sizeof v1, &s, &d) == SY_PARSE_BAD);
    /* A blob claiming 4 bytes with 4 left: its charset is missing. */
    static const uint8_t v2[] = { 1, 3, 0, 0, 0, 1, 1, 1, 7, 4, 'a', 'b', 'c', 'd' };
    CHECK(sy_change_decode(v2, sizeof v2, &s, &d) == SY_PARSE_BAD);
    /* Position claiming SIZE_MAX-ish bytes; position exactly filling the rest without its NUL. */
    static const uint8_t p1[] = { 1, 1, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
    CHECK(sy_change_decode(p1, sizeof p1, &s, &d) == SY_PARSE_BAD);
    static const uint8_t p2[] = { 1, 1, 0, 3, 'a', 'b', 'c' };
    CHECK(sy_change_decode(p2, sizeof p2, &s, &d) == SY_PARSE_BAD);
    static const uint8_t p3[] = { 1, 1, 0, 3, 'a', 'b', 'c', 'd' };    /* no NUL where it belongs */
    CHECK(sy_change_decode(p3, sizeof p3, &s, &d) == SY_PARSE_BAD);
    static const uint8_t p4[] = { 1, 1, 0, 3, 'a', 'b', 'c', 0 };
    CHECK(sy_change_decode(p4, sizeof p4, &s, &d) == SY_PARSE_OK && d.kind == SY_CHANGE_TXN_BEGIN &&
          d.position_len == 3 && d.position[3] == '\0');
    /* Identifier with a NUL inside. */
    static const uint8_t n1[] = { 1, 2, 0, 0, 0, 1, 0, 0, 3, 'a', 0, 'b', 0, 1, 1, 'c', 0, 3, 0, 0, 0 };
    CHECK(sy_change_decode(n1, sizeof n1, &s, &d) == SY_PARSE_BAD);
    static const uint8_t n1ok[] = { 1, 2, 0, 0, 0, 1, 0, 0, 3, 'a', 'x', 'b', 0, 1, 1, 'c', 0, 3, 0, 0, 0 };
    CHECK(sy_change_decode(n1ok, sizeof n1ok, &s, &d) == SY_PARSE_OK && d.u.table.n_columns == 1 &&
          strcmp(d.u.table.table, "axb") == 0 && strcmp(d.u.table.columns[0].name, "c") == 0 &&
          d.u.table.columns[0].source_type == 3);
    sy_change_scratch_fini(&s);
}

static void test_bad_headers(void)
{
    struct sy_change_scratch s;
    struct sy_change d;
    sy_change_scratch_init(&s);
    static const uint8_t ok[] = { 2, 6, 0, 0, 0 }, ok_v1[] = { 1, 6, 0, 0, 0 };
    CHECK(sy_change_decode(ok, sizeof ok, &s, &d) == SY_PARSE_OK && d.kind == SY_CHANGE_POSITION);
    CHECK(sy_change_decode(ok_v1, sizeof ok_v1, &s, &d) == SY_PARSE_OK && d.kind == SY_CHANGE_POSITION);
    static const uint8_t ver0[] = { 0, 6, 0, 0, 0 }, ver3[] = { 3, 6, 0, 0, 0 };
    CHECK(sy_change_decode(ver0, sizeof ver0, &s, &d) == SY_PARSE_BAD);
    CHECK(sy_change_decode(ver3, sizeof ver3, &s, &d) == SY_PARSE_BAD);
    static const uint8_t kind0[] = { 1, 0, 0, 0, 0 }, kind7[] = { 1, 7, 0, 0, 0 };
    CHECK(sy_change_decode(kind0, sizeof kind0, &s, &d) == SY_PARSE_BAD);
    CHECK(sy_change_decode(kind7, sizeof kind7, &s, &d) == SY_PARSE_BAD);
    CHECK(sy_change_decode(NULL, 0, &s, &d) == SY_PARSE_BAD);
    /* Varints: 10 bytes max; the 10th may only carry bit 63. */
    static const uint8_t vmax[] = { 1, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 0 };
    CHECK(sy_change_decode(vmax, sizeof vmax, &s, &d) == SY_PARSE_OK && d.source_time_ms == UINT64_MAX);
    static const uint8_t vbig[] = { 1, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0 };
    CHECK(sy_change_decode(vbig, sizeof vbig, &s, &d) == SY_PARSE_BAD);
    static const uint8_t vlong[] = { 1, 6, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00,
                                     0, 0 };
    CHECK(sy_change_decode(vlong, sizeof vlong, &s, &d) == SY_PARSE_BAD);
    /* Unknown row op and value type. */
    static const uint8_t op0[] = { 1, 3, 0, 0, 0, 1, 0, 1, 0 }, op4[] = { 1, 3, 0, 0, 0, 1, 4, 1, 0 };
    CHECK(sy_change_decode(op0, sizeof op0, &s, &d) == SY_PARSE_BAD);
    CHECK(sy_change_decode(op4, sizeof op4, &s, &d) == SY_PARSE_BAD);
    static const uint8_t ins[] = { 1, 3, 0, 0, 0, 1, 1, 1, 0 }, typ9[] = { 1, 3, 0, 0, 0, 1, 1, 1, 9 };
    CHECK(sy_change_decode(ins, sizeof ins, &s, &d) == SY_PARSE_OK && d.u.row.before == NULL &&
          d.u.row.after != NULL && d.u.row.after[0].type == SY_VAL_NULL);
    CHECK(sy_change_decode(typ9, sizeof typ9, &s, &d) == SY_PARSE_BAD);
    static const uint8_t del[] = { 1, 3, 0, 0, 0, 1, 3, 1, 1, 0x03 };  /* DELETE, INT -2 */
    CHECK(sy_change_decode(del, sizeof del, &s, &d) == SY_PARSE_OK && d.u.row.after == NULL &&
          d.u.row.before[0].type == SY_VAL_INT && d.u.row.before[0].i == -2);
    sy_change_scratch_fini(&s);
}

/* The scratch is reused: a smaller record after a larger one still decodes right. */
static void test_scratch_reuse(void)
{
    struct sy_change_scratch s;
    struct sy_change d;
    sy_change_scratch_init(&s);
    static const uint8_t upd[] = { 1, 3, 0, 0, 0, 1, 2, 2, 1, 2, 1, 4, 1, 6, 1, 8 };
    CHECK(sy_change_decode(upd, sizeof upd, &s, &d) == SY_PARSE_OK && d.u.row.after[1].i == 4);
    size_t cap = s.cap_values;
    static const uint8_t ins[] = { 1, 3, 0, 0, 0, 1, 1, 1, 2, 5 };
    CHECK(sy_change_decode(ins, sizeof ins, &s, &d) == SY_PARSE_OK && d.u.row.after[0].u == 5 &&
          s.cap_values == cap);
    sy_change_scratch_fini(&s);
    sy_change_scratch_fini(&s);  /* twice is fine */
}

static void test_buf(void)
{
    struct sy_buf b;
    sy_buf_init(&b);
    sy_buf_add(&b, "abc", 3);
    sy_buf_add(&b, NULL, 0);
    CHECK(b.len == 3 && memcmp(b.p, "abc", 3) == 0 && !b.oom);
    for (int i = 0; i < 1000; i++)
        sy_buf_add(&b, "0123456789", 10);
    CHECK(b.len == 10003 && b.cap >= b.len && memcmp(b.p + 9993, "0123456789", 10) == 0);
    sy_buf_add(&b, "x", SIZE_MAX);  /* overflow: sticky oom, nothing read */
    CHECK(b.oom && b.len == 10003);
    sy_buf_add(&b, "y", 1);
    CHECK(b.oom && b.len == 10003);
    sy_buf_reset(&b);
    CHECK(!b.oom && b.len == 0);
    sy_buf_fini(&b);
    CHECK(b.p == NULL && b.len == 0 && b.cap == 0);
    sy_buf_fini(&b);
}

static void test_kind_names(void)
{
    CHECK(strcmp(sy_change_kind_name(SY_CHANGE_TXN_BEGIN), "txn_begin") == 0);
    CHECK(strcmp(sy_change_kind_name(SY_CHANGE_TABLE), "table") == 0);
    CHECK(strcmp(sy_change_kind_name(SY_CHANGE_ROW), "row") == 0);
    CHECK(strcmp(sy_change_kind_name(SY_CHANGE_DDL), "ddl") == 0);
    CHECK(strcmp(sy_change_kind_name(SY_CHANGE_TXN_COMMIT), "txn_commit") == 0);
    CHECK(strcmp(sy_change_kind_name(SY_CHANGE_POSITION), "position") == 0);
    CHECK(strcmp(sy_change_kind_name((enum sy_change_kind)42), "unknown") == 0);
}

/* A MongoDB collection as core/change.h maps it: `_id` and `doc` as BSON documents; an update as a patch.
 * The codec carries the bytes as they are (BSON is validated by the engine that reads it). */
static void test_documents(void)
{
    static const uint8_t id_doc[] = { 14, 0, 0, 0, 0x10, '_', 'i', 'd', 0, 7, 0, 0, 0, 0 }; /* {_id: 7} */
    static const uint8_t doc[] = { 5, 0, 0, 0, 0 };                                         /* {} */
    static const uint8_t patch[] = { 0, 1, 2, 0, 255 };                                     /* opaque here */
    struct sy_value before[2] = { { .type = SY_VAL_DOCUMENT, .p = id_doc, .len = sizeof id_doc },
                                  { .type = SY_VAL_NULL } };
    struct sy_value after[2] = { { .type = SY_VAL_DOCUMENT, .p = id_doc, .len = sizeof id_doc },
                                 { .type = SY_VAL_PATCH, .p = patch, .len = sizeof patch } };
    struct sy_change c = simple(SY_CHANGE_ROW, 5, "");
    c.u.row.table_id = 3;
    c.u.row.n_columns = 2;
    c.u.row.op = SY_ROW_UPDATE;
    c.u.row.before = before;
    c.u.row.after = after;
    CHECK(roundtrip(&c, 1));
    after[1] = (struct sy_value){ .type = SY_VAL_DOCUMENT, .p = doc, .len = sizeof doc };
    c.u.row.op = SY_ROW_INSERT;
    c.u.row.before = NULL;
    CHECK(roundtrip(&c, 1));
    after[1].len = 0; /* an empty value is still a value */
    after[1].p = NULL;
    CHECK(roundtrip(&c, 1));
    after[1].len = 3; /* bytes promised, none given: refused */
    struct sy_buf b;
    sy_buf_init(&b);
    CHECK(sy_change_encode(&c, &b) == -1);
    sy_buf_fini(&b);
}

/* One encoding per value: an overlong varint ("80 00" for 0) is refused, so a decoded record always
 * re-encodes to its own bytes. */
static void test_overlong_varint(void)
{
    struct sy_change_scratch s;
    struct sy_change d;
    sy_change_scratch_init(&s);
    static const uint8_t ok[] = { 1, 6, 0, 0, 0 }, overlong_time[] = { 1, 6, 0x80, 0x00, 0, 0 };
    CHECK(sy_change_decode(ok, sizeof ok, &s, &d) == SY_PARSE_OK);
    CHECK(sy_change_decode(overlong_time, sizeof overlong_time, &s, &d) == SY_PARSE_BAD);
    static const uint8_t one_twenty_eight[] = { 1, 6, 0x80, 0x01, 0, 0 }; /* 128: two bytes needed */
    CHECK(sy_change_decode(one_twenty_eight, sizeof one_twenty_eight, &s, &d) == SY_PARSE_OK &&
          d.source_time_ms == 128);
    sy_change_scratch_fini(&s);
}

int main(void)
{
    test_simple_kinds();
    test_documents();
    test_overlong_varint();
    test_table();
    test_row_values();
    test_ddl();
    test_big_blob();
    test_max_columns();
    test_corrupt_counts();
    test_bad_headers();
    test_scratch_reuse();
    test_buf();
    test_kind_names();
    return CHECK_DONE();
}
