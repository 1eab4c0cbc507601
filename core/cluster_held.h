/* An operator's pause or terminate of an instance, kept in etcd so that it outlives the node that ran it:
 * `/switchyard/pairs/<pair>/instances/<forward|reverse>` = {"state": "paused"|"terminated", "node"}, put
 * (without a lease) by the owner when the command is done and deleted by `start` (and create-reverse); a
 * new owner reads them before its takeover and opens those instances paused or terminated. Loop only. */
#ifndef SY_CLUSTER_HELD_H
#define SY_CLUSTER_HELD_H

#include <stdbool.h>
#include <stdint.h>

#include "core/etcd.h"
#include "core/instance.h"

/* held: "paused", "terminated", or NULL (deletes the key). node: this node's name. A transaction that
 * writes only while the pair's owner key is the one created with owner_token (this node's, as owner; 0: -1
 * at once): done as sy_etcd_post, then sy_cluster_held_recorded(reply) says whether it wrote. */
int sy_cluster_held_put(struct sy_etcd *e, const char *pair, enum sy_direction dir, const char *held,
                        const char *node, uint64_t owner_token, sy_etcd_done done, void *arg);
bool sy_cluster_held_recorded(json_t *reply);
/* Reads both keys of the pair; parse the reply with sy_cluster_held_parse. */
int sy_cluster_held_read(struct sy_etcd *e, const char *pair, sy_etcd_done done, void *arg);
/* What the read said of each direction: "paused", "terminated" or "" (none); a value not understood reads
 * as "paused" (held until an operator starts it, never run by mistake). */
void sy_cluster_held_parse(json_t *reply, char forward[16], char reverse[16]);

#endif
