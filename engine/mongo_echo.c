/* The echo ledger: a multiset of fingerprints with expiry (engine/mongo_echo.h). A small open-
 * addressing table; expired entries are swept when the table would grow. */
#include "engine/mongo_echo.h"

#include <stdlib.h>
#include <string.h>

struct slot {
    uint64_t fp;       /* 0 = empty (a real fingerprint of 0 is stored as 1) */
    uint32_t count;
    uint64_t expires_ms;
};

struct sy_mongo_echo {
    struct slot *v;
    size_t cap;        /* power of two */
    size_t used;       /* slots with fp != 0 (count may be 0: a tombstone until the next sweep) */
    size_t pending;    /* sum of counts */
};

uint64_t sy_mongo_hash(const void *p, size_t len, uint64_t seed)
{
    const uint8_t *b = p;
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
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

struct sy_mongo_echo *sy_mongo_echo_new(void)
{
    struct sy_mongo_echo *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->cap = 256;
    e->v = calloc(e->cap, sizeof *e->v);
    if (e->v == NULL) {
        free(e);
        return NULL;
    }
    return e;
}

void sy_mongo_echo_free(struct sy_mongo_echo *e)
{
    if (e == NULL)
        return;
    free(e->v);
    free(e);
}

static struct slot *find(struct slot *v, size_t cap, uint64_t fp)
{
    for (size_t i = fp & (cap - 1);; i = (i + 1) & (cap - 1))
        if (v[i].fp == fp || v[i].fp == 0)
            return &v[i];
}

/* Rebuilds the table without expired or consumed entries, twice as large when still over half full. */
static int rebuild(struct sy_mongo_echo *e, uint64_t now_ms)
{
    size_t live = 0;
    for (size_t i = 0; i < e->cap; i++)
        if (e->v[i].fp != 0 && e->v[i].count > 0 && e->v[i].expires_ms > now_ms)
            live++;
    size_t cap = e->cap;
    while (live * 2 >= cap)
        cap *= 2;
    struct slot *v = calloc(cap, sizeof *v);
    if (v == NULL)
        return -1;
    e->pending = 0;
    for (size_t i = 0; i < e->cap; i++) {
        const struct slot *s = &e->v[i];
        if (s->fp == 0 || s->count == 0 || s->expires_ms <= now_ms)
            continue;
        *find(v, cap, s->fp) = *s;
        e->pending += s->count;
    }
    free(e->v);
    e->v = v;
    e->cap = cap;
    e->used = live;
    return 0;
}

int sy_mongo_echo_add(struct sy_mongo_echo *e, uint64_t fp, uint64_t now_ms)
{
    if (fp == 0)
        fp = 1;
    if ((e->used + 1) * 4 >= e->cap * 3 && rebuild(e, now_ms) != 0)
        return -1;
    struct slot *s = find(e->v, e->cap, fp);
    if (s->fp == 0) {
        s->fp = fp;
        s->count = 0;
        e->used++;
    }
    s->count++;
    s->expires_ms = now_ms + SY_MONGO_ECHO_TTL_MS;
    e->pending++;
    return 0;
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

static bool take_fp(struct sy_mongo_echo *e, uint64_t fp, uint64_t now_ms)
{
    struct slot *s = find(e->v, e->cap, fp);
    if (s->fp == 0 || s->count == 0 || s->expires_ms <= now_ms)
        return false;
    s->count--;
    e->pending--;
    return true;
}

bool sy_mongo_echo_take(struct sy_mongo_echo *e, const char *ns, const uint8_t *id, size_t id_len, bool del,
                        uint64_t doc_hash, uint64_t now_ms)
{
    if (e->pending == 0)
        return false;
    if (take_fp(e, sy_mongo_echo_fingerprint(ns, id, id_len, del, doc_hash), now_ms))
        return true;
    return !del && doc_hash != 0 && take_fp(e, sy_mongo_echo_fingerprint(ns, id, id_len, false, 0), now_ms);
}

size_t sy_mongo_echo_pending(const struct sy_mongo_echo *e)
{
    return e->pending;
}
