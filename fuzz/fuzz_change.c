/* libFuzzer target: change record decoding (core/change.c). Input = one spool record payload.
 * Whatever decodes must re-encode (the decoder accepts only encodable changes), the re-encoding must
 * decode to the same change field by field, and encoding that again must give the same bytes (the
 * encoding is canonical once through the encoder). Decoded strings must lie inside the input and be
 * NUL-terminated. A DDL record's context is also read as MariaDB's (engine/mariadb_ddl_context.c): what
 * decodes there must re-encode to the same bytes. Traps on broken invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/change.h"
#include "engine/mariadb_ddl_context.h"
#include "fuzz/fuzz_require.h"

static const uint8_t *span_p;
static size_t span_n;

static int same_mem(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* s[0..len] (with its NUL) lies inside the decoded span and s[len] is the NUL. */
static void check_text(const char *s, size_t len)
{
    REQUIRE(s != NULL);
    const uint8_t *u = (const uint8_t *)s;
    REQUIRE(u >= span_p && len < span_n && (size_t)(u - span_p) <= span_n - len - 1);
    REQUIRE(s[len] == '\0');
}

static void check_bytes(const uint8_t *p, size_t len)
{
    REQUIRE(p != NULL && p >= span_p && len <= span_n && (size_t)(p - span_p) <= span_n - len);
}

static void check_view(const struct sy_change *c)
{
    check_text(c->position, c->position_len);
    if (c->kind == SY_CHANGE_TABLE) {
        const struct sy_change_table *t = &c->u.table;
        REQUIRE(t->n_columns >= 1 && t->n_columns <= SY_CHANGE_MAX_COLUMNS && t->columns != NULL);
        check_text(t->db, t->db_len);
        check_text(t->table, t->table_len);
        REQUIRE(strlen(t->db) == t->db_len && strlen(t->table) == t->table_len);
        for (uint32_t i = 0; i < t->n_columns; i++) {
            check_text(t->columns[i].name, t->columns[i].name_len);
            REQUIRE(strlen(t->columns[i].name) == t->columns[i].name_len);
        }
    } else if (c->kind == SY_CHANGE_ROW) {
        const struct sy_change_row *r = &c->u.row;
        REQUIRE(r->n_columns >= 1 && r->n_columns <= SY_CHANGE_MAX_COLUMNS);
        REQUIRE((r->before == NULL) == (r->op == SY_ROW_INSERT));
        REQUIRE((r->after == NULL) == (r->op == SY_ROW_DELETE));
        for (int img = 0; img < 2; img++) {
            const struct sy_value *v = img ? r->after : r->before;
            for (uint32_t i = 0; v != NULL && i < r->n_columns; i++)
                if (v[i].type >= SY_VAL_DECIMAL)
                    check_bytes(v[i].p, v[i].len);
        }
    } else if (c->kind == SY_CHANGE_DDL) {
        check_text(c->u.ddl.db, c->u.ddl.db_len);
        check_text(c->u.ddl.sql, c->u.ddl.sql_len);
        if (c->u.ddl.context_len > 0)
            check_bytes(c->u.ddl.context, c->u.ddl.context_len);
        struct sy_mariadb_ddl_context ctx;
        if (sy_mariadb_ddl_context_decode(c->u.ddl.context, c->u.ddl.context_len, &ctx)) {
            check_text(ctx.time_zone, ctx.time_zone_len);
            struct sy_buf again;
            sy_buf_init(&again);
            REQUIRE(sy_mariadb_ddl_context_encode(&ctx, &again) == 0 && !again.oom);
            REQUIRE(same_mem(again.p, again.len, c->u.ddl.context, c->u.ddl.context_len));
            sy_buf_fini(&again);
        }
    }
}

static void require_same_values(const struct sy_value *a, const struct sy_value *b, uint32_t n)
{
    REQUIRE((a == NULL) == (b == NULL));
    for (uint32_t i = 0; a != NULL && i < n; i++) {
        REQUIRE(a[i].type == b[i].type);
        switch (a[i].type) {
        case SY_VAL_NULL:
            break;
        case SY_VAL_INT:
            REQUIRE(a[i].i == b[i].i);
            break;
        case SY_VAL_UINT:
            REQUIRE(a[i].u == b[i].u);
            break;
        case SY_VAL_FLOAT:
        case SY_VAL_DOUBLE:
            REQUIRE(memcmp(&a[i].d, &b[i].d, sizeof a[i].d) == 0); /* bits: NaN payloads too */
            break;
        default:
            REQUIRE(same_mem(a[i].p, a[i].len, b[i].p, b[i].len) && a[i].charset == b[i].charset);
            break;
        }
    }
}

static void require_same(const struct sy_change *a, const struct sy_change *b)
{
    REQUIRE(a->kind == b->kind && a->source_time_ms == b->source_time_ms);
    REQUIRE(same_mem(a->position, a->position_len, b->position, b->position_len));
    if (a->kind == SY_CHANGE_TABLE) {
        const struct sy_change_table *x = &a->u.table, *y = &b->u.table;
        REQUIRE(x->table_id == y->table_id && x->n_columns == y->n_columns);
        REQUIRE(same_mem(x->db, x->db_len, y->db, y->db_len));
        REQUIRE(same_mem(x->table, x->table_len, y->table, y->table_len));
        for (uint32_t i = 0; i < x->n_columns; i++) {
            const struct sy_column *c = &x->columns[i], *d = &y->columns[i];
            REQUIRE(same_mem(c->name, c->name_len, d->name, d->name_len));
            REQUIRE(c->source_type == d->source_type && c->flags == d->flags && c->charset == d->charset);
        }
    } else if (a->kind == SY_CHANGE_ROW) {
        const struct sy_change_row *x = &a->u.row, *y = &b->u.row;
        REQUIRE(x->table_id == y->table_id && x->op == y->op && x->n_columns == y->n_columns);
        require_same_values(x->before, y->before, x->n_columns);
        require_same_values(x->after, y->after, x->n_columns);
    } else if (a->kind == SY_CHANGE_DDL) {
        const struct sy_change_ddl *x = &a->u.ddl, *y = &b->u.ddl;
        REQUIRE(same_mem(x->db, x->db_len, y->db, y->db_len));
        REQUIRE(same_mem(x->sql, x->sql_len, y->sql, y->sql_len));
        REQUIRE(same_mem(x->context, x->context_len, y->context, y->context_len));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sy_change_scratch s1, s2;
    struct sy_change c1, c2;
    struct sy_buf b1, b2;
    sy_change_scratch_init(&s1);
    sy_change_scratch_init(&s2);
    sy_buf_init(&b1);
    sy_buf_init(&b2);

    if (sy_change_decode(data, size, &s1, &c1) == SY_PARSE_OK) {
        span_p = data;
        span_n = size;
        check_view(&c1);
        REQUIRE(sy_change_encode(&c1, &b1) == 0);
        /* canonical varints are never longer; a format-1 DDL gains its context's length in format 2 */
        REQUIRE(b1.len <= size + (data[0] == 1 && c1.kind == SY_CHANGE_DDL ? 10 : 0));
        REQUIRE(sy_change_decode(b1.p, b1.len, &s2, &c2) == SY_PARSE_OK);
        span_p = b1.p;
        span_n = b1.len;
        check_view(&c2);
        require_same(&c1, &c2);
        REQUIRE(sy_change_encode(&c2, &b2) == 0);
        REQUIRE(b2.len == b1.len && memcmp(b1.p, b2.p, b1.len) == 0);
        /* A prefix of the canonical form never decodes. */
        if (b1.len > 0)
            REQUIRE(sy_change_decode(b1.p, b1.len - 1, &s2, &c2) == SY_PARSE_BAD);
    }

    sy_buf_fini(&b1);
    sy_buf_fini(&b2);
    sy_change_scratch_fini(&s1);
    sy_change_scratch_fini(&s2);
    return 0;
}
