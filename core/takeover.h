/* A node that just became the owner of a pair's synchronization (core/election.c) takes its instances
 * over: each one whose destination holds a checkpoint resumes from that checkpoint — not from this node's
 * spool, a cache of the source's log the old owner kept on its own disk. The spool is emptied to continue
 * the checkpoint's numbering, collection restarts at the checkpoint's source position, and the changes
 * between it and the source's position when the writer first applies (some may be on the destination
 * already, applied above the watermark) are replayed idempotently: conflicts there are overwritten, strict
 * apply after. The takeover reads the destination only: it runs with the source down (a site lost with its
 * owner node). An instance whose destination has no checkpoint yet starts from this node's own state
 * (precheck, copy). The reverse instance is made from etcd's record of it on a node that has none of its
 * state (core/cluster_held.h), and left out where etcd has no record: terminated is never resurrected. */
#ifndef SY_TAKEOVER_H
#define SY_TAKEOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/pair.h"

struct sy_takeover_result {
    int rc;                /* 0: the forward instance's state on disk is ready to open (reverse_only: always);
                              -1: err says why (retry later) */
    bool reverse;          /* the reverse instance's state is ready to open too */
    bool reverse_later;    /* the reverse instance's takeover failed (reverse_err; its destination, business,
                              may be down): take it over alone later (reverse_only); the forward one opens */
    char err[1200];
    char reverse_err[1200];
};
/* owner_token: the fencing token the takeover claimed the destinations with (p->owner_token when it
 * began). */
typedef void (*sy_takeover_done_fn)(void *arg, struct sy_pair *p, uint64_t owner_token,
                                    const struct sy_takeover_result *r);

struct sy_reverse_record;

/* Starts the takeover on a worker thread (it reads both databases); done(arg, ...) on the loop. The pair's
 * instances must not be open on this node. held_forward, held_reverse: "paused", "terminated" (what an
 * operator left the instance in, read from etcd: core/cluster_held.h) or "" / NULL; record: etcd's record
 * of the reverse instance (copied). reverse_only: the forward instance is open (a reverse instance whose
 * takeover failed before is taken over alone). 0, or -1 with err (done is not called). */
int sy_takeover_start(struct sy_pair *p, const char *held_forward, const char *held_reverse,
                      const struct sy_reverse_record *record, bool reverse_only, sy_takeover_done_fn done,
                      void *arg, char *err, size_t errlen);

#endif
