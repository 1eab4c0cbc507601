/* The echo ledger (engine/mongo_echo.h): a multiset of fingerprints with expiry (core/fp_multiset.h). */
#include "engine/mongo_echo.h"

#include <stdlib.h>
#include <string.h>

#include "core/fp_multiset.h"

struct sy_mongo_echo {
    struct sy_fp_multiset fps;
};

uint64_t sy_mongo_hash_more(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

uint64_t sy_mongo_hash(const void *p, size_t len, uint64_t seed)
{
    return sy_mongo_hash_more(1469598103934665603ULL ^ seed, p, len);
}

uint64_t sy_mongo_echo_fingerprint(const char *ns, const uint8_t *id, size_t id_len, bool del, uint64_t doc_hash)
{
    uint64_t h = sy_mongo_hash(ns, strlen(ns) + 1, 0);
    h = sy_mongo_hash(id, id_len, h);
    uint8_t tail[9] = { del ? 'd' : 'p' };
    memcpy(tail + 1, &doc_hash, 8);
    h = sy_mongo_hash(tail, sizeof tail, h);
    return h == 0 ? 1 : h;
}

uint64_t sy_mongo_doc_key(const char *ns, const uint8_t *id, size_t id_len)
{
    uint64_t h = sy_mongo_hash(ns, strlen(ns) + 1, 0);
    h = sy_mongo_hash(id, id_len, h);
    return h == 0 ? 1 : h;
}

struct sy_mongo_echo *sy_mongo_echo_new(void)
{
    struct sy_mongo_echo *e = calloc(1, sizeof *e);
    if (e != NULL && sy_fp_multiset_init(&e->fps) != 0) {
        free(e);
        return NULL;
    }
    return e;
}

void sy_mongo_echo_free(struct sy_mongo_echo *e)
{
    if (e == NULL)
        return;
    sy_fp_multiset_fini(&e->fps);
    free(e);
}

int sy_mongo_echo_add(struct sy_mongo_echo *e, uint64_t fp, uint64_t now_ms)
{
    return sy_fp_multiset_add(&e->fps, fp, 0, now_ms + SY_MONGO_ECHO_TTL_MS, now_ms);
}

int sy_mongo_echo_add_mark(struct sy_mongo_echo *e, const bson_t *mark, uint64_t now_ms)
{
    bson_iter_t it, arr;
    if (!bson_iter_init_find(&it, mark, "fp") || !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr))
        return -1;
    while (bson_iter_next(&arr))
        if (BSON_ITER_HOLDS_INT64(&arr) && sy_mongo_echo_add(e, (uint64_t)bson_iter_int64(&arr), now_ms) != 0)
            return -1;
    return 0;
}

bool sy_mongo_echo_take(struct sy_mongo_echo *e, const char *ns, const uint8_t *id, size_t id_len, bool del,
                        uint64_t doc_hash, uint64_t now_ms)
{
    if (e->fps.count == 0)
        return false;
    if (sy_fp_multiset_take(&e->fps, sy_mongo_echo_fingerprint(ns, id, id_len, del, doc_hash), now_ms, NULL))
        return true;
    return !del && doc_hash != 0 &&
           sy_fp_multiset_take(&e->fps, sy_mongo_echo_fingerprint(ns, id, id_len, false, 0), now_ms, NULL);
}

size_t sy_mongo_echo_pending(const struct sy_mongo_echo *e)
{
    return e->fps.count;
}
