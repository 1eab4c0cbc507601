/* The MongoDB ack ledger (engine/mongo_acks.h). */
#include "engine/mongo_acks.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fp_multiset.h"
#include "core/log.h"
#include "engine/mongo_client.h"

struct sy_mongo_acks {
    pthread_mutex_t lock;
    bool armed;
    bool incomplete;                 /* pending overflowed (or ran out of memory) since the last arm */
    struct sy_fp_multiset pending;   /* acknowledged, entry not taken yet (never expire) */
    struct sy_fp_multiset taken;     /* taken, not acknowledged (yet): payload = ts as t << 32 | i */
    uint64_t ledger;                 /* newest ts matched (t << 32 | i), 0 = none */
    uint64_t acked, matched, unproven;
    uint64_t hurry_until_ms;
    uint64_t hurry_mark;             /* the fence mark's ts (t << 32 | i) the hurry waits for; 0: not known */
    char pair[64];
    enum sy_side side;
    struct sy_mongo_acks *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sy_mongo_acks *registry;

struct sy_mongo_acks *sy_mongo_acks_of(const char *pair, enum sy_side side)
{
    pthread_mutex_lock(&registry_lock);
    struct sy_mongo_acks *a = registry;
    while (a != NULL && !(a->side == side && strncmp(a->pair, pair, sizeof a->pair) == 0))
        a = a->next;
    if (a == NULL && (a = calloc(1, sizeof *a)) != NULL) {
        if (sy_fp_multiset_init(&a->pending) != 0 || sy_fp_multiset_init(&a->taken) != 0) {
            sy_fp_multiset_fini(&a->pending);
            free(a);
            a = NULL;
        } else {
            pthread_mutex_init(&a->lock, NULL);
            snprintf(a->pair, sizeof a->pair, "%s", pair);
            a->side = side;
            a->next = registry;
            registry = a;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return a;
}

void sy_mongo_acks_arm(struct sy_mongo_acks *a, bool on)
{
    pthread_mutex_lock(&a->lock);
    a->armed = on;
    if (on) {                        /* a new ledger: what it reads from now on is matched from now on */
        a->incomplete = false;
        sy_fp_multiset_fini(&a->pending);
        if (sy_fp_multiset_init(&a->pending) != 0)
            a->incomplete = true;
    }
    pthread_mutex_unlock(&a->lock);
}

bool sy_mongo_acks_armed(struct sy_mongo_acks *a)
{
    pthread_mutex_lock(&a->lock);
    bool on = a->armed;
    pthread_mutex_unlock(&a->lock);
    return on;
}

static void advance(struct sy_mongo_acks *a, uint64_t ts)
{
    if (ts > a->ledger)
        a->ledger = ts;
    a->matched++;
}

void sy_mongo_acks_acked(struct sy_mongo_acks *a, const uint64_t *keys, size_t n, size_t unproven, uint64_t now_ms)
{
    pthread_mutex_lock(&a->lock);
    if (a->armed)
        a->unproven += unproven;
    for (size_t i = 0; i < n && a->armed; i++) {
        uint64_t ts;
        a->acked++;
        if (sy_fp_multiset_take(&a->taken, keys[i], now_ms, &ts))
            advance(a, ts);
        else if (a->incomplete || a->pending.v == NULL)
            continue;
        else if (a->pending.count >= SY_MONGO_ACK_PENDING_MAX ||
                 sy_fp_multiset_add(&a->pending, keys[i], 0, UINT64_MAX, now_ms) != 0) {
            sy_log_warn("pair %s: the %s side's ack ledger is incomplete: %zu acknowledged writes not read from "
                        "the oplog (is its collector far behind?)",
                        a->pair, sy_side_name(a->side), a->pending.count);
            a->incomplete = true;
            sy_fp_multiset_fini(&a->pending);
            if (sy_fp_multiset_init(&a->pending) != 0)
                sy_log_warn("pair %s: out of memory in the ack ledger", a->pair);
        }
    }
    pthread_mutex_unlock(&a->lock);
}

void sy_mongo_acks_op_time(struct sy_mongo_acks *a, uint32_t t, uint32_t i)
{
    pthread_mutex_lock(&a->lock);
    a->acked++;
    advance(a, (uint64_t)t << 32 | i);
    pthread_mutex_unlock(&a->lock);
}

void sy_mongo_acks_taken(struct sy_mongo_acks *a, uint64_t key, uint32_t t, uint32_t i, uint64_t now_ms)
{
    uint64_t ts = (uint64_t)t << 32 | i;
    pthread_mutex_lock(&a->lock);
    if (a->pending.v != NULL && sy_fp_multiset_take(&a->pending, key, now_ms, NULL))
        advance(a, ts);
    else if (sy_fp_multiset_add(&a->taken, key, ts, now_ms + SY_MONGO_ACK_TAKEN_TTL_MS, now_ms) != 0)
        sy_log_warn("pair %s: out of memory in the ack ledger", a->pair);
    pthread_mutex_unlock(&a->lock);
}

void sy_mongo_acks_hurry(struct sy_mongo_acks *a, uint64_t until_ms)
{
    pthread_mutex_lock(&a->lock);
    a->hurry_until_ms = until_ms;
    a->hurry_mark = 0;
    pthread_mutex_unlock(&a->lock);
}

void sy_mongo_acks_hurry_for(struct sy_mongo_acks *a, uint32_t t, uint32_t i)
{
    pthread_mutex_lock(&a->lock);
    a->hurry_mark = (uint64_t)t << 32 | i;
    pthread_mutex_unlock(&a->lock);
}

void sy_mongo_acks_mark_taken(struct sy_mongo_acks *a, uint32_t t, uint32_t i)
{
    pthread_mutex_lock(&a->lock);
    if (a->hurry_mark != 0 && ((uint64_t)t << 32 | i) >= a->hurry_mark)
        a->hurry_until_ms = 0;
    pthread_mutex_unlock(&a->lock);
}

bool sy_mongo_acks_hurried(struct sy_mongo_acks *a, uint64_t now_ms)
{
    pthread_mutex_lock(&a->lock);
    bool yes = a->hurry_until_ms > now_ms;
    pthread_mutex_unlock(&a->lock);
    return yes;
}

#define LEDGER_INCOMPLETE " and an incomplete ledger"

/* The ledger's text: "t:i", then what is pending or that it is incomplete ("" when there is nothing). */
static void ledger_format(uint64_t ledger, size_t pending, bool incomplete, char *out, size_t outlen)
{
    char ts[32] = "";
    struct sy_mongo_ts at = { (uint32_t)(ledger >> 32), (uint32_t)ledger };
    sy_mongo_ts_format(at, ts, sizeof ts);
    if (incomplete)
        snprintf(out, outlen, "%s" LEDGER_INCOMPLETE " (more than %u acknowledged writes were not read from the "
                 "oplog)", ts, SY_MONGO_ACK_PENDING_MAX);
    else if (pending > 0)
        snprintf(out, outlen, "%s and %zu acknowledged write(s) not yet read from the oplog", ts, pending);
    else
        snprintf(out, outlen, "%s", ledger != 0 ? ts : "");
}

/* ledger_format's text read back: false when it is not one. */
static bool ledger_parse(const char *text, uint64_t *ledger, size_t *pending, bool *incomplete)
{
    char head[32];
    struct sy_mongo_ts at = { 0, 0 };
    size_t n = strcspn(text, " ");
    *ledger = 0;
    *pending = 0;
    *incomplete = false;
    if (text[0] == '\0')
        return true;
    if (n >= sizeof head)
        return false;
    snprintf(head, sizeof head, "%.*s", (int)n, text);
    if (!sy_mongo_ts_parse(head, &at))
        return false;
    *ledger = (uint64_t)at.t << 32 | at.i;
    const char *rest = text + n;
    unsigned long long count = 0;
    if (strncmp(rest, LEDGER_INCOMPLETE, strlen(LEDGER_INCOMPLETE)) == 0)
        *incomplete = true;
    else if (sscanf(rest, " and %llu acknowledged", &count) == 1)
        *pending = (size_t)count;
    else if (rest[0] != '\0')
        return false;
    return true;
}

void sy_mongo_acks_ledger_merge(char *into, size_t intolen, const char *other)
{
    uint64_t a, b;
    size_t pa, pb;
    bool ia, ib;
    if (!ledger_parse(into, &a, &pa, &ia) || !ledger_parse(other, &b, &pb, &ib))
        return;
    ledger_format(a > b ? a : b, pa + pb, ia || ib, into, intolen);
}

void sy_mongo_acks_ledger(struct sy_mongo_acks *a, char *out, size_t outlen, struct sy_mongo_acks_stats *st)
{
    pthread_mutex_lock(&a->lock);
    size_t pending = a->pending.count;
    ledger_format(a->ledger, pending, a->incomplete, out, outlen);
    if (st != NULL)
        *st = (struct sy_mongo_acks_stats){ .acked = a->acked, .matched = a->matched, .unproven = a->unproven,
                                            .pending = pending, .incomplete = a->incomplete };
    pthread_mutex_unlock(&a->lock);
}
