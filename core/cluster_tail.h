/* A failover's unreplicated tail, kept in etcd so that it outlives the node that ran the failover:
 * `/switchyard/pairs/<pair>/tail` = the pair's tail record (its "collected_position", "ack_ledger_position",
 * "failover_at", and the "node" that wrote it), put (without a lease) by the owner once a failover flipped and
 * deleted once the tail is resolved. A new owner reads it before its takeover: the tail is pending again
 * there (found anew from the business binlog once business answers) and the forward instance stays paused
 * for it, so nothing of business's tail is collected before `resolve-tail` decides. Loop only. */
#ifndef SY_CLUSTER_TAIL_H
#define SY_CLUSTER_TAIL_H

#include <stdint.h>

#include <jansson.h>

#include "core/etcd.h"

/* The key, and the value kept for a tail (new reference; node: the one that writes it). The failover puts it
 * in the same transaction as its move of the cluster's epoch (core/shared_epoch.h): it exists exactly when
 * that epoch moved. */
void sy_cluster_tail_key(char *out, size_t outlen, const char *pair);
json_t *sy_cluster_tail_value(json_t *tail, const char *node);
/* tail: the record to keep (borrowed), or NULL to delete it. Written only while the pair's owner key is
 * the one created with owner_token (a node that lost the pair writes nothing: sy_cluster_held_recorded).
 * 0, or -1 (done not called). */
int sy_cluster_tail_put(struct sy_etcd *e, const char *pair, json_t *tail, const char *node, uint64_t owner_token,
                        sy_etcd_done done, void *arg);
int sy_cluster_tail_read(struct sy_etcd *e, const char *pair, sy_etcd_done done, void *arg);
/* The record the read found (new reference), or NULL: none. A value that does not parse reads as a record
 * with no position (the tail stays pending: held, never collected by mistake). */
json_t *sy_cluster_tail_parse(json_t *reply);

#endif
