/* A pair's epoch shared by every node of the cluster (docs/cluster.md): the etcd key
 * /switchyard/pairs/<pair>/active = {"epoch", "side"}, created at first start if absent (a transaction
 * comparing its create_revision with 0), moved only by a transaction comparing its mod_revision. Every node
 * watches it and applies what it says to its pair (persisted epoch, active side, sessions): new backend
 * connections go where the epoch this node applied says. A node that etcd does not answer for longer than
 * its lease holds the pair (cut off) until it does. Loop thread only. */
#ifndef SY_SHARED_EPOCH_H
#define SY_SHARED_EPOCH_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/pair.h"

struct sy_cluster;
struct sy_shared_epoch;

/* The node applied a new epoch from etcd (side_changed: the active side moved too), or confirmed the
 * cluster's epoch for the first time since it started (side_changed true: resolve the writes now). */
typedef void (*sy_shared_epoch_applied_fn)(void *arg, struct sy_pair *p, bool side_changed);
/* The outcome of sy_shared_epoch_cas: 0, or -1 with err. */
typedef void (*sy_shared_epoch_cas_fn)(void *arg, int rc, const char *err);

/* Starts reading (creating if absent) and watching the pair's key; the pair is held until the first read
 * answers. NULL: out of memory. */
struct sy_shared_epoch *sy_shared_epoch_start(struct sy_cluster *c, struct sy_pair *p,
                                              sy_shared_epoch_applied_fn applied, void *arg);
void sy_shared_epoch_free(struct sy_shared_epoch *s);   /* NULL-safe; before the cluster stops */

/* Whether etcd's epoch is known and is the one the pair applied (a switch may start from it); else
 * false with why. */
bool sy_shared_epoch_is_current(const struct sy_shared_epoch *s, char *why, size_t whylen);
/* Moves the key from the epoch last seen to {epoch, side} if nobody moved it since (its mod_revision) and,
 * owner_token != 0, only while the pair's owner key is the one created with it (a node that lost the pair
 * moves nothing); with_key/with_value (borrowed; NULL: none) is put in the same transaction (a failover's
 * tail: it exists exactly when the epoch moved). done(arg, ...) once, later, on the loop. */
void sy_shared_epoch_cas(struct sy_shared_epoch *s, uint64_t epoch, enum sy_side side, uint64_t owner_token,
                         const char *with_key, json_t *with_value, sy_shared_epoch_cas_fn done, void *arg);

/* Applies the cluster's epoch now if the pair's differs (a switch of this node's own just ended). */
void sy_shared_epoch_apply(struct sy_shared_epoch *s);
/* The cluster's epoch last seen (false: not read yet). */
bool sy_shared_epoch_seen(const struct sy_shared_epoch *s, uint64_t *epoch, enum sy_side *side);

/* {"epoch", "side", "revision", "watch": "ok"|"connecting", "error", "cut_off", "unanswered_ms"} for the
 * pair's `status` entry. */
json_t *sy_shared_epoch_status_json(const struct sy_shared_epoch *s);

#endif
