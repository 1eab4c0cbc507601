/* This switchyardd as one node of several ([cluster] etcd = ...; docs/cluster.md): registered in etcd under
 * a lease it keeps alive, and the other nodes seen there (status shows every node, the epochs it applied and
 * whether etcd answers). The shared epoch (core/shared_epoch.c), the switch for every node
 * (core/cluster_switch.c), the sync's owner (core/election.c) and commands from any node
 * (core/cluster_admin.c) build on it. Loop thread only. */
#ifndef SY_CLUSTER_H
#define SY_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "core/config.h"

#define SY_CLUSTER_PREFIX "/switchyard/"

struct sy_cluster;

/* What this node has applied, published in its registration: {"pairs": {NAME: {"epoch", "active"}}}; asked
 * for at every tick (the key is put again when it changed). New reference. */
typedef json_t *(*sy_cluster_state_fn)(void *arg);

/* Starts registering (asynchronously: etcd may be down now; the node keeps trying). NULL: out of memory or
 * no usable endpoint (err). */
struct sy_cluster *sy_cluster_start(struct event_base *base, const struct sy_config *cfg, sy_cluster_state_fn state,
                                    void *state_arg, char *err, size_t errlen);
/* Revokes the lease (best effort, bounded: the loop turns up to timeout_ms) and frees. */
void sy_cluster_stop(struct sy_cluster *c, int timeout_ms);
/* {"node", "etcd": "ok"|"unreachable"|"connecting", "endpoint", "error", "lease_id", "lease_ttl_s",
 *  "registered", "nodes": [{"node", "pid", "admin_socket", "started", "pairs": {NAME: {"epoch", "active"}}}]} */
json_t *sy_cluster_status_json(const struct sy_cluster *c);

struct sy_etcd;
/* The node's etcd client (ref: owned by c), for what builds on membership (core/shared_epoch.c,
 * core/cluster_switch.c). */
struct sy_etcd *sy_cluster_etcd(const struct sy_cluster *c);
/* A persistent timer calling cb(arg) every period of the node's ticks (lease_ttl / 3), and once right away.
 * NULL: out of memory. */
struct event *sy_cluster_ticker_new(const struct sy_cluster *c, event_callback_fn cb, void *arg);
const char *sy_cluster_node(const struct sy_cluster *c);
/* The lease's TTL in milliseconds (what etcd granted, else lease_ttl_ms rounded up to seconds). */
int sy_cluster_lease_ttl_ms(const struct sy_cluster *c);
/* The lease this node's keys live under (0: none granted now, or the node's key not put under it yet).
 * It stays valid while a changed registration (an epoch) is put again. */
int64_t sy_cluster_lease(const struct sy_cluster *c);
/* Monotonic ms at which the request that last renewed the lease (grant or keepalive) was sent: etcd keeps
 * the lease at least until this plus its TTL. 0: no lease. *lease: the lease granted (registered or not:
 * a put of the registration again does not change it). */
uint64_t sy_cluster_lease_renewed_ms(const struct sy_cluster *c, int64_t *lease);


#endif
