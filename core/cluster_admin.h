/* Admin commands from any node of a cluster (docs/cluster.md): a command that needs a pair's
 * synchronization (switchover, failover, pause, start, verify, ...) given to a node that does not run it
 * goes to the pair's owner through etcd, and the owner's reply comes back the same way:
 *   /switchyard/pairs/<pair>/requests/<id>  {"id", "from", "to", "cmd", "args"}   (the asking node's lease)
 *   /switchyard/pairs/<pair>/replies/<id>   the owner's whole reply object      (the owner's lease)
 * The asking node polls for the reply; an owner that changes or disappears before it answers makes the
 * command fail with owner_lost (its outcome is unknown: `status` tells), never run twice. Loop thread only. */
#ifndef SY_CLUSTER_ADMIN_H
#define SY_CLUSTER_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/admin.h"
#include "core/pair.h"

struct sy_cluster;
struct sy_cluster_admin;

/* One per node; serves the requests sent to this node for the pairs it owns (pairs[0..n)). NULL: out of
 * memory. */
struct sy_cluster_admin *sy_cluster_admin_start(struct sy_cluster *c, struct sy_admin *a, struct sy_pair *pairs,
                                                size_t n);
void sy_cluster_admin_free(struct sy_cluster_admin *ca);   /* NULL-safe; before the cluster stops */

/* Whether a command about pair p must run on its owner rather than here (this node does not run p's
 * instances); then sends it there and answers req later with the owner's reply: true. */
bool sy_cluster_admin_forward(struct sy_cluster_admin *ca, struct sy_pair *p, struct sy_admin_req *req,
                              json_t *args);

#endif
