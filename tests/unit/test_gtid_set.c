/* GTID sets: parsing (strict), per-domain advance, cover test, formatting. */
#include <string.h>

#include "engine/mariadb_gtid_set.h"
#include "tests/unit/check.h"

static bool parse(const char *s, struct sy_gtid_set *set)
{
    return sy_gtid_set_parse(s, strlen(s), set);
}

int main(void)
{
    struct sy_gtid g;
    CHECK(sy_gtid_parse("1-10-7", 6, &g) && g.domain == 1 && g.server == 10 && g.seq == 7);
    CHECK(sy_gtid_parse("0-4294967295-18446744073709551615", 33, &g) && g.seq == UINT64_MAX);
    CHECK(!sy_gtid_parse("0-4294967296-1", 14, &g));            /* server id over 32 bits */
    CHECK(!sy_gtid_parse("0-1-18446744073709551616", 24, &g));  /* seq over 64 bits */
    CHECK(!sy_gtid_parse("1-2", 3, &g));
    CHECK(!sy_gtid_parse("1-2-", 4, &g));
    CHECK(!sy_gtid_parse("-1-2-3", 6, &g));
    CHECK(!sy_gtid_parse("1-2-3x", 6, &g));
    CHECK(!sy_gtid_parse("", 0, &g));

    struct sy_gtid_set a, b;
    char buf[256];
    CHECK(parse("", &a) && a.n == 0);
    CHECK(parse("2-11-5,1-10-9", &a) && a.n == 2 && a.v[0].domain == 1 && a.v[1].domain == 2);
    sy_gtid_set_format(&a, buf, sizeof buf);
    CHECK(strcmp(buf, "1-10-9,2-11-5") == 0);
    CHECK(parse(" 1-10-9, 2-11-5 ", &b));
    CHECK(!parse("1-10-9,", &b));
    CHECK(!parse("1-10-9,,2-1-1", &b));
    CHECK(!parse("x", &b));

    /* advance keeps the highest seq per domain, whatever the server id */
    struct sy_gtid up = { 1, 4002, 12 }, down = { 1, 10, 3 }, newdom = { 0, 10, 1 };
    CHECK(sy_gtid_set_advance(&a, &up) && a.v[0].seq == 12 && a.v[0].server == 4002);
    CHECK(sy_gtid_set_advance(&a, &down) && a.v[0].seq == 12);
    CHECK(sy_gtid_set_advance(&a, &newdom) && a.n == 3 && a.v[0].domain == 0);
    sy_gtid_set_format(&a, buf, sizeof buf);
    CHECK(strcmp(buf, "0-10-1,1-4002-12,2-11-5") == 0);

    /* covers: per domain, never across domains */
    CHECK(parse("1-10-9", &b) && sy_gtid_set_covers(&a, &b));
    CHECK(parse("1-10-13", &b) && !sy_gtid_set_covers(&a, &b));
    CHECK(parse("3-10-1", &b) && !sy_gtid_set_covers(&a, &b));
    CHECK(parse("", &b) && sy_gtid_set_covers(&a, &b));

    /* a set never holds more domains than it can */
    struct sy_gtid_set full = { 0 };
    bool ok = true;
    for (uint32_t d = 0; d < SY_GTID_SET_MAX; d++) {
        struct sy_gtid x = { d, 1, 1 };
        ok = ok && sy_gtid_set_advance(&full, &x);
    }
    struct sy_gtid extra = { SY_GTID_SET_MAX, 1, 1 };
    CHECK(ok && !sy_gtid_set_advance(&full, &extra) && full.n == SY_GTID_SET_MAX);
    sy_gtid_set_format(&full, buf, 8); /* truncates, stays terminated */
    CHECK(strlen(buf) < 8);
    return CHECK_DONE();
}
