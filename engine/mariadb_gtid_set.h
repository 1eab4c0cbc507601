/* MariaDB GTID positions: a set of domain-server-seq, one entry per domain, compared per domain
 * (ARCHITECTURE.md: a position is a GTID *set*, never one GTID). Used by the proxy's ack ledger and
 * by capture/replay checkpoints. */
#ifndef SY_GTID_SET_H
#define SY_GTID_SET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parse.h"

struct sy_gtid {
    uint32_t domain;
    uint32_t server;
    uint64_t seq;
};

#define SY_GTID_SET_MAX 64 /* domains; MariaDB deployments use a handful */

struct sy_gtid_set {
    size_t n;                           /* entries used, sorted by domain */
    struct sy_gtid v[SY_GTID_SET_MAX];
};

/* "0-1-5" -> gtid; false when malformed. */
bool sy_gtid_parse(const char *s, size_t len, struct sy_gtid *out);
/* "0-1-5,1-2-9" (empty = empty set); false when malformed or too many domains. */
bool sy_gtid_set_parse(const char *s, size_t len, struct sy_gtid_set *out);
/* Raises the domain's entry to g when g is later (seq compared within the domain). false: set full. */
bool sy_gtid_set_advance(struct sy_gtid_set *set, const struct sy_gtid *g);
/* Every domain of `inner` is in `outer` at a seq >= inner's. */
bool sy_gtid_set_covers(const struct sy_gtid_set *outer, const struct sy_gtid_set *inner);
/* Writes "0-1-5,1-2-9" (NUL-terminated, truncated to len). */
void sy_gtid_set_format(const struct sy_gtid_set *set, char *buf, size_t len);

#endif
