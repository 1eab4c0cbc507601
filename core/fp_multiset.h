/* A multiset of 64-bit fingerprints, each with an expiry and a payload (the largest given): what a
 * collector's echo ledger (engine/mongo_echo.h) and the MongoDB ack ledger (engine/mongo_acks.h) count.
 * An open-addressing table; consumed and expired entries are swept when the table would grow. Not
 * thread-safe; fingerprint 0 is stored as 1. */
#ifndef SY_FP_MULTISET_H
#define SY_FP_MULTISET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parse.h"

struct sy_fp_slot;

struct sy_fp_multiset {
    struct sy_fp_slot *v; /* owned */
    size_t cap;           /* power of two */
    size_t used;          /* slots holding a fingerprint (count 0: a tombstone until the next sweep) */
    size_t count;         /* sum of counts */
};

int sy_fp_multiset_init(struct sy_fp_multiset *m) SY_MUST_CHECK; /* -1 out of memory */
void sy_fp_multiset_fini(struct sy_fp_multiset *m);
/* One more of fp, alive until expires_ms; payload kept as the largest given. -1 out of memory. */
int sy_fp_multiset_add(struct sy_fp_multiset *m, uint64_t fp, uint64_t payload, uint64_t expires_ms,
                       uint64_t now_ms) SY_MUST_CHECK;
/* Takes one live fp (its payload into *payload when not NULL); false when there is none. */
bool sy_fp_multiset_take(struct sy_fp_multiset *m, uint64_t fp, uint64_t now_ms, uint64_t *payload);

#endif
