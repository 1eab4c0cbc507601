/* A failover's unreplicated tail, kept in etcd so that it outlives the node that ran the failover:
 * `/switchyard/pairs/<pair>/tail` = the pair's tail record (its "collected_position", "ack_ledger_position"
 * (every node's, merged), "failover_at", "collector_state" or "collector_state_dropped" (below), and the
 * "node" that wrote it), put (without a lease) by the owner once a failover flipped and
 * deleted once the tail is resolved. A new owner reads it before its takeover: the tail is pending again
 * there (found anew from the business binlog once business answers) and the forward instance stays paused
 * for it, so nothing of business's tail is collected before `resolve-tail` decides. Loop only, but for the
 * collector_state calls below (the threads they name). */
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

/* What the forward collector left for the tail read (core/instance.h SY_INSTANCE_TAIL_FILE) travels in the
 * record as "collector_state" (the file's JSON, opaque here), so that a new owner's tail read finds it as the
 * old owner's would have. At most SY_CLUSTER_TAIL_COLLECTOR_MAX bytes of it (a MongoDB collector's set of 31 s
 * of entries: about 25,000 at 20 bytes each): a larger one is left out ("collector_state_dropped" says why, in
 * the record and the log) and a new owner's tail then starts at the collected position alone, as the engine's
 * tail_read does without the file. */
#define SY_CLUSTER_TAIL_COLLECTOR_MAX (512 * 1024)
/* The failover, on its thread: the file of the forward instance's dir put into tail. No file: nothing. */
void sy_cluster_tail_collector_attach(json_t *tail, const char *instance_dir, const char *pair);
/* A new owner's tail read, on its thread: writes the record's "collector_state" (state, borrowed) as that
 * file into dir (made if missing), which the tail read is then given as the collector's directory. 0, or -1
 * (err). */
int sy_cluster_tail_collector_restore(const json_t *state, const char *dir, char *err, size_t errlen);
/* Removes dir and the file in it (after the tail read). */
void sy_cluster_tail_collector_remove(const char *dir);
/* tail without "collector_state" (new reference, shallow: for status, answers and the pair's state file). */
json_t *sy_cluster_tail_public(json_t *tail);
/* The record the read found (new reference), or NULL: none. A value that does not parse reads as a record
 * with no position (the tail stays pending: held, never collected by mistake). */
json_t *sy_cluster_tail_parse(json_t *reply);

#endif
