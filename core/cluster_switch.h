/* One switch for every node of a pair (docs/cluster.md): the etcd keys through which the node a switch
 * command reached (the coordinator) and every other node serving the pair (participants) agree on it.
 *   /switchyard/pairs/<pair>/lock                    {"id", "node"}: one switch at a time (coordinator's lease)
 *   /switchyard/pairs/<pair>/switch/<id>/state       {"id", "coordinator", "phase": "hold"|"abort", "to",
 *                                                     "from_epoch", "kind": "switch"|"failover"} (coordinator's lease)
 *   /switchyard/pairs/<pair>/switch/<id>/ack/<node>  {"phase": "held"|"flipped"|"refused", "ledger", "error"}
 *                                                    (the participant's lease)
 * A coordinator that dies takes its lock and state with its lease: participants release on the old side,
 * unless the cluster's epoch moved (core/shared_epoch.c), which they then apply. What each step does with
 * the sessions is core/switch.c's. Loop thread only. */
#ifndef SY_CLUSTER_SWITCH_H
#define SY_CLUSTER_SWITCH_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/pair.h"

struct sy_cluster;
struct sy_cluster_switch;

/* Another node published a hold for this pair: take part (core/switch.c). */
/* failover: the coordinator fails over (the old side is dead): no transaction can end there, so take part
 * as a failover does (open transactions are rolled back at once). */
typedef void (*sy_cluster_switch_hold_fn)(void *arg, struct sy_pair *p, const char *id, enum sy_side to,
                                          uint64_t from_epoch, bool failover);
/* The outcome of an etcd step: 0, or -1 with err. */
typedef void (*sy_cluster_switch_done_fn)(void *arg, int rc, const char *err);

/* NULL: out of memory. */
struct sy_cluster_switch *sy_cluster_switch_start(struct sy_cluster *c, struct sy_pair *p,
                                                  sy_cluster_switch_hold_fn hold, void *arg);
void sy_cluster_switch_free(struct sy_cluster_switch *cs);   /* NULL-safe */

/* ---- coordinator ---- */
/* Takes the pair's lock and publishes the hold of a new switch to `to` from from_epoch; the nodes that must
 * acknowledge are those registered now with this pair (this one excepted). */
void sy_cluster_switch_begin(struct sy_cluster_switch *cs, enum sy_side to, uint64_t from_epoch, bool failover,
                             sy_cluster_switch_done_fn done, void *arg);
/* Whether every node that must has acknowledged `phase` ("held" / "flipped"); ledgers (new reference, may be
 * NULL) gets their ack ledgers; a node that refused: false, *refused set, why in msg. Else msg lists the
 * nodes still missing. */
bool sy_cluster_switch_acked(struct sy_cluster_switch *cs, const char *phase, json_t **ledgers, bool *refused,
                             char *msg, size_t msglen);
/* The sums of the client sessions the other nodes moved and of the transactions they aborted, from their
 * "flipped" acknowledgements. */
void sy_cluster_switch_moved(const struct sy_cluster_switch *cs, uint64_t *moved, uint64_t *aborted);
/* Publishes the abort of the running switch (participants release on the old side). */
void sy_cluster_switch_abort(struct sy_cluster_switch *cs, sy_cluster_switch_done_fn done, void *arg);
/* Deletes the switch's keys and the lock. */
void sy_cluster_switch_finish(struct sy_cluster_switch *cs, sy_cluster_switch_done_fn done, void *arg);
/* The running switch's id ("" when none) and the nodes that must acknowledge it. */
const char *sy_cluster_switch_id(const struct sy_cluster_switch *cs);

/* ---- participant ---- */
/* moved, aborted: the client sessions this node moved and the transactions it aborted (with "flipped"). */
void sy_cluster_switch_ack(struct sy_cluster_switch *cs, const char *id, const char *phase, const char *ledger,
                           uint64_t moved, uint64_t aborted, const char *error, sy_cluster_switch_done_fn done,
                           void *arg);
/* The coordinator's word on switch id: "hold", "abort", or "gone" (its state key was deleted: finished,
 * or its coordinator's lease expired). */
const char *sy_cluster_switch_phase(const struct sy_cluster_switch *cs, const char *id);

#endif
