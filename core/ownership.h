/* A node winning and losing the ownership of a pair's synchronization (core/ownership.c). Outside a cluster
 * the daemon opens the instances itself (sy_ownership_open, sy_ownership_resolve_writes); in a cluster the
 * election's callback and the daemon's one-second check drive the rest. Loop only. */
#ifndef SY_OWNERSHIP_H
#define SY_OWNERSHIP_H

#include <stdbool.h>

#include "core/pair.h"

/* Opens the pair's forward instance, and its reverse instance when `reverse` (outside a cluster: when one
 * was created on this node; a takeover decides from etcd's record). 0, or -1 after logging why. */
int sy_ownership_open(struct sy_pair *p, bool reverse);
/* The persisted epoch decides which write runs (after a restart, a takeover, a new epoch of the cluster's). */
void sy_ownership_resolve_writes(struct sy_pair *p);
/* The election's callback: this node became the owner (takeover) or stopped being it (instances retire). */
void sy_ownership_changed(void *arg, struct sy_pair *p, bool owner);
/* Every second, for every pair. */
void sy_ownership_check(struct sy_pair *p);
/* A stepping-down owner's instances are closed once nothing uses them (a verify that ended calls it). */
void sy_ownership_finish_close(struct sy_pair *p);
/* At exit: the instances closed at once (before the lease goes, so that another node may take over). */
void sy_ownership_close_now(struct sy_pair *p);
/* A failed takeover's error is forgotten (a terminate ended the reverse takeover it was about). */
void sy_ownership_takeover_succeeded(struct sy_pair *p);

#endif
