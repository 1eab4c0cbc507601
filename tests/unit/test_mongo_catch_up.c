/* capture/mongo_catch_up.c: a MongoDB takeover's catch-up candidates — the newest entry per document up to
 * the start position, dropped when a newer entry of the document is seen after it or a partial update is
 * newer; the survivors in ts order; a table that grows past its first size. */
#include <string.h>

#include "capture/mongo_catch_up.h"
#include "tests/unit/check.h"

static bson_t *entry(const char *v)
{
    bson_t *b = bson_new();
    BSON_APPEND_UTF8(b, "v", v);
    return b;
}

struct seen {
    char got[16][16];
    size_t n;
    size_t stop_after;             /* 0: never */
};

static bool collect(const bson_t *doc, void *arg)
{
    struct seen *s = arg;
    bson_iter_t it;
    if (s->n < 16 && bson_iter_init_find(&it, doc, "v"))
        snprintf(s->got[s->n], sizeof s->got[0], "%s", bson_iter_utf8(&it, NULL));
    s->n++;
    return s->stop_after == 0 || s->n < s->stop_after;
}

int main(void)
{
    struct sy_mongo_catch_up *cu = sy_mongo_catch_up_new();
    bson_t *a1 = entry("a1"), *a2 = entry("a2"), *b1 = entry("b1"), *c1 = entry("c1"), *d1 = entry("d1");
    CHECK(sy_mongo_catch_up_put(cu, 0xA, 100, 2, a2) == 0);
    CHECK(sy_mongo_catch_up_put(cu, 0xA, 100, 1, a1) == 0);   /* older than the kept one: ignored */
    CHECK(sy_mongo_catch_up_put(cu, 0xB, 99, 7, b1) == 0);
    CHECK(sy_mongo_catch_up_put(cu, 0xC, 101, 1, c1) == 0);
    CHECK(sy_mongo_catch_up_put(cu, 0xD, 98, 1, d1) == 0);
    CHECK(sy_mongo_catch_up_put(cu, 0xD, 98, 5, NULL) == 0);  /* a newer partial update: d1 no candidate */
    CHECK(sy_mongo_catch_up_put(cu, 0xD, 98, 3, d1) == 0);    /* older than that: still none */
    CHECK(sy_mongo_catch_up_count(cu) == 3);
    sy_mongo_catch_up_seen(cu, 0xC, 102, 0);                  /* c written again after the start */
    sy_mongo_catch_up_seen(cu, 0xB, 99, 6);                   /* an older entry of b: b1 stays */
    sy_mongo_catch_up_seen(cu, 0xE, 200, 0);                  /* a document with no candidate */
    CHECK(sy_mongo_catch_up_count(cu) == 2);
    struct seen s = { 0 };
    CHECK(sy_mongo_catch_up_each(cu, collect, &s));
    CHECK(s.n == 2 && strcmp(s.got[0], "b1") == 0 && strcmp(s.got[1], "a2") == 0); /* ts order */
    struct seen one = { .stop_after = 1 };
    CHECK(!sy_mongo_catch_up_each(cu, collect, &one) && one.n == 1);
    sy_mongo_catch_up_free(cu);

    /* past the first table size, every survivor once, in ts order */
    cu = sy_mongo_catch_up_new();
    bool ok = true;
    for (uint32_t k = 1; k <= 5000; k++)
        ok = ok && sy_mongo_catch_up_put(cu, 0x1000 + k, 50 + k / 100, k, a1) == 0;
    CHECK(ok);
    for (uint32_t k = 2; k <= 5000; k += 2)
        sy_mongo_catch_up_seen(cu, 0x1000 + k, 1000, 0);
    CHECK(sy_mongo_catch_up_count(cu) == 2500);
    struct seen many = { 0 };
    CHECK(sy_mongo_catch_up_each(cu, collect, &many) && many.n == 2500);
    sy_mongo_catch_up_free(cu);
    sy_mongo_catch_up_free(NULL);

    bson_destroy(a1);
    bson_destroy(a2);
    bson_destroy(b1);
    bson_destroy(c1);
    bson_destroy(d1);
    return CHECK_DONE();
}
