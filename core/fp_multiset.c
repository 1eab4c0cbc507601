/* The fingerprint multiset (core/fp_multiset.h): linear probing, rebuilt without dead entries. */
#include "core/fp_multiset.h"

#include <stdlib.h>

struct sy_fp_slot {
    uint64_t fp;      /* 0 = empty */
    uint32_t count;
    uint64_t expires_ms;
    uint64_t payload;
};

#define INITIAL_CAP 256

int sy_fp_multiset_init(struct sy_fp_multiset *m)
{
    m->cap = INITIAL_CAP;
    m->used = m->count = 0;
    m->v = calloc(m->cap, sizeof *m->v);
    return m->v == NULL ? -1 : 0;
}

void sy_fp_multiset_fini(struct sy_fp_multiset *m)
{
    free(m->v);
    m->v = NULL;
    m->cap = m->used = m->count = 0;
}

static struct sy_fp_slot *find(struct sy_fp_slot *v, size_t cap, uint64_t fp)
{
    for (size_t i = fp & (cap - 1);; i = (i + 1) & (cap - 1))
        if (v[i].fp == fp || v[i].fp == 0)
            return &v[i];
}

static bool alive(const struct sy_fp_slot *s, uint64_t now_ms)
{
    return s->fp != 0 && s->count > 0 && s->expires_ms > now_ms;
}

/* Rebuilds the table without expired or consumed entries, twice as large when still over half full. */
static int rebuild(struct sy_fp_multiset *m, uint64_t now_ms)
{
    size_t live = 0;
    for (size_t i = 0; i < m->cap; i++)
        live += alive(&m->v[i], now_ms);
    size_t cap = m->cap;
    while (live * 2 >= cap)
        cap *= 2;
    struct sy_fp_slot *v = calloc(cap, sizeof *v);
    if (v == NULL)
        return -1;
    m->count = 0;
    for (size_t i = 0; i < m->cap; i++) {
        const struct sy_fp_slot *s = &m->v[i];
        if (!alive(s, now_ms))
            continue;
        *find(v, cap, s->fp) = *s;
        m->count += s->count;
    }
    free(m->v);
    m->v = v;
    m->cap = cap;
    m->used = live;
    return 0;
}

int sy_fp_multiset_add(struct sy_fp_multiset *m, uint64_t fp, uint64_t payload, uint64_t expires_ms,
                       uint64_t now_ms)
{
    if (fp == 0)
        fp = 1;
    if ((m->used + 1) * 4 >= m->cap * 3 && rebuild(m, now_ms) != 0)
        return -1;
    struct sy_fp_slot *s = find(m->v, m->cap, fp);
    if (s->fp == 0) {
        *s = (struct sy_fp_slot){ .fp = fp };
        m->used++;
    }
    if (s->count == 0 || payload > s->payload)
        s->payload = payload;
    s->count++;
    s->expires_ms = expires_ms;
    m->count++;
    return 0;
}

bool sy_fp_multiset_take(struct sy_fp_multiset *m, uint64_t fp, uint64_t now_ms, uint64_t *payload)
{
    if (fp == 0)
        fp = 1;
    if (m->count == 0)
        return false;
    struct sy_fp_slot *s = find(m->v, m->cap, fp);
    if (!alive(s, now_ms))
        return false;
    s->count--;
    m->count--;
    if (payload != NULL)
        *payload = s->payload;
    return true;
}
