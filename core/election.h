/* One owner of a pair's synchronization in a cluster (docs/cluster.md): the etcd key
 * /switchyard/pairs/<pair>/owner = {"node", "admin_socket"} created under the owner's lease by a
 * transaction (only if absent). The owner runs the pair's instances (their collection and write modules);
 * the others watch the key and campaign as soon as it is gone (the owner stopped, or its lease expired).
 * An owner that cannot renew its lease steps down at 2/3 of the TTL after the last renewal was sent, so it
 * has stopped its modules before etcd lets another node win. Loop thread only. */
#ifndef SY_ELECTION_H
#define SY_ELECTION_H

#include <stdbool.h>

#include <jansson.h>

#include "core/pair.h"

struct sy_cluster;
struct sy_election;

/* This node became the owner (owner true: run the instances) or stopped being it (stop them now). */
typedef void (*sy_election_changed_fn)(void *arg, struct sy_pair *p, bool owner);

/* Starts campaigning for the pair. NULL: out of memory. */
struct sy_election *sy_election_start(struct sy_cluster *c, struct sy_pair *p, const char *admin_socket,
                                      sy_election_changed_fn changed, void *arg);
void sy_election_free(struct sy_election *e);   /* NULL-safe; before the cluster stops; no callback */

bool sy_election_is_owner(const struct sy_election *e);
/* The cluster's etcd client (the takeover reads the pair's paused instances with it). */
struct sy_etcd *sy_election_etcd(const struct sy_election *e);
/* This node's name. */
const char *sy_election_node(const struct sy_election *e);
/* The fencing token of this node's ownership: its owner key's create_revision, higher for every later
 * owner (0 when not the owner). */
uint64_t sy_election_owner_token(const struct sy_election *e);
/* After a step-down for a lease not renewed in time: when etcd may expire that lease at the earliest
 * (sy_now_ms clock: last renewal + TTL), the time the old owner's writers must be cut by. 0 when the
 * step-down came because the key was lost, replaced or names another node (another may write already: cut
 * at once), or unknown. */
uint64_t sy_election_lease_ends_ms(const struct sy_election *e);
/* The owner's node name and admin socket as last read ("" when none is known). */
const char *sy_election_owner(const struct sy_election *e);
const char *sy_election_owner_socket(const struct sy_election *e);

/* {"owner", "this_node_owns", "since_ms", "error"} for the pair's status. */
json_t *sy_election_status_json(const struct sy_election *e);

#endif
