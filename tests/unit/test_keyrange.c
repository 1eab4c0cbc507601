/* Unit tests for replay/mariadb_keyrange.c: column kinds, ENUM member counts, read-back expressions and
 * the expanded bounds — ENUM as IN lists of ordinals, SET/BIT as numbers, strings as hex in their
 * collation. What the server does with them is tested in tests/integration/test_initial_sync_keys.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replay/mariadb_keyrange.h"
#include "tests/unit/check.h"

/* The bound as a C string (static buffer). */
static const char *bound(const struct sy_key_col *cols, size_t n, const char *const *v, const char *op,
                         const char *last_op)
{
    static char out[4096];
    unsigned long len[8];
    for (size_t i = 0; i < n; i++)
        len[i] = v[i] ? (unsigned long)strlen(v[i]) : 0;
    struct sy_buf b;
    sy_buf_init(&b);
    sy_keyrange_bound(&b, cols, n, v, len, op, last_op);
    snprintf(out, sizeof out, "%.*s", (int)b.len, b.oom ? "" : (const char *)b.p);
    sy_buf_fini(&b);
    return out;
}

static void test_kinds(void)
{
    CHECK(sy_keyrange_kind_of("int", false) == SY_KEY_NUMBER);
    CHECK(sy_keyrange_kind_of("decimal", false) == SY_KEY_NUMBER);
    CHECK(sy_keyrange_kind_of("float", false) == SY_KEY_FLOAT);
    CHECK(sy_keyrange_kind_of("double", false) == SY_KEY_FLOAT);
    CHECK(sy_keyrange_kind_of("varchar", true) == SY_KEY_TEXT);
    CHECK(sy_keyrange_kind_of("varbinary", false) == SY_KEY_BYTES);
    CHECK(sy_keyrange_kind_of("datetime", false) == SY_KEY_BYTES);
    CHECK(sy_keyrange_kind_of("enum", true) == SY_KEY_ENUM);
    CHECK(sy_keyrange_kind_of("set", true) == SY_KEY_SET);
    CHECK(sy_keyrange_kind_of("bit", false) == SY_KEY_BIT);
    CHECK(sy_keyrange_enum_count("enum('a','b','c')") == 3);
    CHECK(sy_keyrange_enum_count("enum('it''s','a,b','x)y','\\\\')") == 4);
    CHECK(sy_keyrange_enum_count("set('a','b')") == 0);
    CHECK(sy_keyrange_enum_count("int(11)") == 0);
}

static void test_readback_and_order(void)
{
    struct sy_key_col cols[] = { { .name = "e", .kind = SY_KEY_ENUM, .enum_count = 3 },
                                 { .name = "we`ird", .kind = SY_KEY_TEXT, .charset = "utf8mb4",
                                   .collation = "utf8mb4_general_ci" } };
    struct sy_buf b;
    sy_buf_init(&b);
    sy_keyrange_readback(&b, &cols[0]);
    sy_keyrange_str(&b, "|");
    sy_keyrange_readback(&b, &cols[1]);
    sy_keyrange_str(&b, "|");
    sy_keyrange_order(&b, cols, 2);
    CHECK(b.len == strlen("(`e`+0)|`we``ird`|`e`,`we``ird`") &&
          memcmp(b.p, "(`e`+0)|`we``ird`|`e`,`we``ird`", b.len) == 0);
    sy_buf_reset(&b);
    struct sy_key_col f = { .name = "f", .kind = SY_KEY_FLOAT };
    sy_keyrange_readback(&b, &f); /* a FLOAT's own text is rounded: read it as an exact DOUBLE */
    CHECK(b.len == strlen("CAST(`f` AS DOUBLE)") && memcmp(b.p, "CAST(`f` AS DOUBLE)", b.len) == 0);
    sy_buf_fini(&b);
}

static void test_bounds(void)
{
    struct sy_key_col e = { .name = "e", .kind = SY_KEY_ENUM, .enum_count = 5 };
    struct sy_key_col id = { .name = "id", .kind = SY_KEY_NUMBER };
    struct sy_key_col s = { .name = "s", .kind = SY_KEY_TEXT, .charset = "latin1", .collation = "latin1_swedish_ci" };
    struct sy_key_col bit = { .name = "b", .kind = SY_KEY_BIT };
    struct sy_key_col dt = { .name = "d", .kind = SY_KEY_BYTES };

    const char *v1[] = { "2" };
    CHECK(strcmp(bound(&e, 1, v1, ">", ">"), "((`e` IN (3,4,5)))") == 0);
    CHECK(strcmp(bound(&e, 1, v1, "<", "<="), "((`e` IN (0,1,2)))") == 0);
    CHECK(strcmp(bound(&e, 1, v1, "<", "<"), "((`e` IN (0,1)))") == 0);
    const char *v5[] = { "5" }, *v0[] = { "0" };
    CHECK(strcmp(bound(&e, 1, v5, ">", ">"), "((FALSE))") == 0);
    CHECK(strcmp(bound(&e, 1, v0, "<", "<"), "((FALSE))") == 0);

    struct sy_key_col eid[] = { e, id };
    const char *v2[] = { "2", "42" };
    CHECK(strcmp(bound(eid, 2, v2, ">", ">"), "((`e` IN (3,4,5)) OR (`e`=2 AND `id`>42))") == 0);
    CHECK(strcmp(bound(eid, 2, v2, "<", "<="), "((`e` IN (0,1)) OR (`e`=2 AND `id`<=42))") == 0);

    struct sy_key_col big = { .name = "e", .kind = SY_KEY_ENUM, .enum_count = 1000 };
    CHECK(strcmp(bound(&big, 1, v1, ">", ">"), "((`e`>2))") == 0);  /* too long a list: compared as a number */

    const char *vb[] = { "4095" };
    CHECK(strcmp(bound(&bit, 1, vb, ">", ">"), "((`b`>4095))") == 0);
    const char *vs[] = { "a'\\" };
    CHECK(strcmp(bound(&s, 1, vs, ">", ">"),
                 "((`s`>CONVERT(_binary X'61275C' USING latin1) COLLATE latin1_swedish_ci))") == 0);
    const char *vd[] = { "2024-01-02" };
    CHECK(strcmp(bound(&dt, 1, vd, ">", ">"), "((`d`>_binary X'323032342D30312D3032'))") == 0);
    const char *vn[] = { "abc" };
    CHECK(strcmp(bound(&id, 1, vn, ">", ">"), "((`id`>_binary X'616263'))") == 0);  /* not a number: bytes */
}

int main(void)
{
    test_kinds();
    test_readback_and_order();
    test_bounds();
    return CHECK_DONE();
}
