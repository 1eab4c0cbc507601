/* A MongoDB takeover's catch-up candidates (capture/mongo_catch_up.h): an open-addressing table by document
 * key; a slot keeps the newest ts seen for its document and, when that ts is at or before the start position,
 * a copy of the entry. */
#include "capture/mongo_catch_up.h"

#include <stdlib.h>

struct slot {
    uint64_t key;                  /* 0: free */
    uint64_t ts;                   /* t << 32 | i: the newest entry of the document seen */
    bson_t *entry;                 /* owned: that entry when it is a candidate; NULL once a newer one was seen */
};

struct sy_mongo_catch_up {
    struct slot *slots;
    size_t cap, n;                 /* n: used slots */
    size_t kept;
};

struct sy_mongo_catch_up *sy_mongo_catch_up_new(void)
{
    return calloc(1, sizeof(struct sy_mongo_catch_up));
}

void sy_mongo_catch_up_free(struct sy_mongo_catch_up *cu)
{
    if (cu == NULL)
        return;
    for (size_t k = 0; k < cu->cap; k++)
        if (cu->slots[k].entry != NULL)
            bson_destroy(cu->slots[k].entry);
    free(cu->slots);
    free(cu);
}

static size_t home(uint64_t key, size_t cap)
{
    return (size_t)(key * 0x9E3779B97F4A7C15ULL >> 20) & (cap - 1);
}

static struct slot *find(const struct sy_mongo_catch_up *cu, uint64_t key)
{
    if (cu->cap == 0)
        return NULL;
    for (size_t k = home(key, cu->cap);; k = (k + 1) & (cu->cap - 1)) {
        if (cu->slots[k].key == key)
            return &cu->slots[k];
        if (cu->slots[k].key == 0)
            return NULL;
    }
}

static int grow(struct sy_mongo_catch_up *cu)
{
    size_t cap = cu->cap ? cu->cap * 2 : 256;
    struct slot *v = calloc(cap, sizeof *v);
    if (v == NULL)
        return -1;
    for (size_t k = 0; k < cu->cap; k++) {
        if (cu->slots[k].key == 0)
            continue;
        size_t j = home(cu->slots[k].key, cap);
        while (v[j].key != 0)
            j = (j + 1) & (cap - 1);
        v[j] = cu->slots[k];
    }
    free(cu->slots);
    cu->slots = v;
    cu->cap = cap;
    return 0;
}

/* The slot of key, made (empty) when missing; NULL: out of memory. */
static struct slot *slot_of(struct sy_mongo_catch_up *cu, uint64_t key)
{
    struct slot *s = find(cu, key);
    if (s != NULL)
        return s;
    if (2 * (cu->n + 1) > cu->cap && grow(cu) != 0)
        return NULL;
    size_t k = home(key, cu->cap);
    while (cu->slots[k].key != 0)
        k = (k + 1) & (cu->cap - 1);
    cu->slots[k] = (struct slot){ .key = key };
    cu->n++;
    return &cu->slots[k];
}

static void drop_entry(struct sy_mongo_catch_up *cu, struct slot *s)
{
    if (s->entry == NULL)
        return;
    bson_destroy(s->entry);
    s->entry = NULL;
    cu->kept--;
}

int sy_mongo_catch_up_put(struct sy_mongo_catch_up *cu, uint64_t key, uint32_t t, uint32_t i, const bson_t *entry)
{
    uint64_t ts = (uint64_t)t << 32 | i;
    struct slot *s = slot_of(cu, key == 0 ? 1 : key);
    if (s == NULL)
        return -1;
    if (s->ts != 0 && s->ts >= ts)
        return 0;                                   /* a newer entry of the document decides it */
    bson_t *copy = NULL;
    if (entry != NULL && (copy = bson_copy(entry)) == NULL)
        return -1;
    drop_entry(cu, s);
    s->ts = ts;
    s->entry = copy;
    cu->kept += copy != NULL;
    return 0;
}

void sy_mongo_catch_up_seen(struct sy_mongo_catch_up *cu, uint64_t key, uint32_t t, uint32_t i)
{
    uint64_t ts = (uint64_t)t << 32 | i;
    struct slot *s = find(cu, key == 0 ? 1 : key);
    if (s == NULL || s->ts >= ts)
        return;                                     /* no candidate of that document (nothing to remember) */
    s->ts = ts;
    drop_entry(cu, s);
}

size_t sy_mongo_catch_up_count(const struct sy_mongo_catch_up *cu)
{
    return cu->kept;
}

static int by_ts(const void *a, const void *b)
{
    const struct slot *x = *(const struct slot *const *)a, *y = *(const struct slot *const *)b;
    return x->ts < y->ts ? -1 : x->ts > y->ts;
}

bool sy_mongo_catch_up_each(struct sy_mongo_catch_up *cu, bool (*fn)(const bson_t *entry, void *arg), void *arg)
{
    if (cu->kept == 0)
        return true;
    const struct slot **order = malloc(cu->kept * sizeof *order);
    if (order == NULL)
        return false;
    size_t n = 0;
    for (size_t k = 0; k < cu->cap; k++)
        if (cu->slots[k].entry != NULL)
            order[n++] = &cu->slots[k];
    qsort(order, n, sizeof *order, by_ts);
    bool ok = true;
    for (size_t k = 0; k < n && ok; k++)
        ok = fn(order[k]->entry, arg);
    free(order);
    return ok;
}
