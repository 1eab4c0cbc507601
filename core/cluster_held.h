/* What outlives the node that ran a pair's instances, kept in etcd (without a lease) for the next owner:
 * - an operator's pause or terminate of an instance: `/switchyard/pairs/<pair>/instances/<forward|reverse>`
 *   = {"state": "paused"|"terminated", "node"}, put by the owner when the command is done and deleted by
 *   `start` (and create-reverse); a new owner opens those instances paused or terminated;
 * - the reverse instance's record: `/switchyard/pairs/<pair>/reverse` = {"start_position", "created",
 *   "node"}, put by create-reverse, deleted by its terminate: a new owner without that instance's state
 *   (or with another creation's) makes it from the record; one with no record makes and opens none.
 * A new owner reads both before its takeover. Loop only. */
#ifndef SY_CLUSTER_HELD_H
#define SY_CLUSTER_HELD_H

#include <stdbool.h>
#include <stdint.h>

#include "core/etcd.h"
#include "core/instance.h"

/* held: "paused", "terminated", or NULL (deletes the key). node: this node's name. A transaction that
 * writes only while the pair's owner key is the one created with owner_token (this node's, as owner; 0: -1
 * at once): done as sy_etcd_post, then sy_cluster_held_recorded(reply) says whether it wrote. A terminated
 * reverse instance also deletes its record, and only while the record is the one this node knows (record:
 * its text; NULL or "": none): a terminate etcd.c sends again late cannot delete a newer creation's; when it
 * does not write, sy_cluster_terminate_landed(reply) says whether an earlier send of it did. */
int sy_cluster_held_put(struct sy_etcd *e, const char *pair, enum sy_direction dir, const char *held,
                        const char *node, uint64_t owner_token, const char *record, sy_etcd_done done, void *arg);
/* A terminate of the reverse instance that did not write: whether etcd already holds what it would have
 * written (held "terminated", no record) — an earlier send of it landed. */
bool sy_cluster_terminate_landed(json_t *reply);
bool sy_cluster_held_recorded(json_t *reply);
/* The reverse instance's record as etcd keeps it (start_position: DR's position at creation; created:
 * which creation, kept in the instance's state too): compact JSON, keys sorted; malloc'd (NULL: out of
 * memory). */
char *sy_cluster_reverse_text(const char *start_position, const char *created, const char *node);
/* create-reverse: puts the record (text, from sy_cluster_reverse_text) and deletes the key of a terminated
 * one before, in one transaction guarded like sy_cluster_held_put's. A held "terminated" of the reverse
 * instance deletes the record in its transaction. */
int sy_cluster_reverse_put(struct sy_etcd *e, const char *pair, const char *text, uint64_t owner_token,
                           sy_etcd_done done, void *arg);
/* Reads every key above from one revision (one transaction); parse the reply with sy_cluster_held_parse. */
int sy_cluster_held_read(struct sy_etcd *e, const char *pair, sy_etcd_done done, void *arg);

struct sy_reverse_record {
    int found;                 /* 1: the record (below); 0: no record; -1: a value not understood */
    char start_position[1024]; /* DR's position when create-reverse ran: collection starts there */
    char created[128];         /* "<node>@<unix ms>" of that create-reverse ("" for one made by hand) */
    char text[2048];           /* the record as etcd keeps it (found != 0), compared by its terminate */
};
/* What the read said of each direction: "paused", "terminated" or "" (none); a value not understood reads
 * as "paused" (held until an operator starts it, never run by mistake); and the reverse instance's record.
 * 0, or -1 when the reply is not the read's (then nothing is known: the takeover fails and is retried). */
int sy_cluster_held_parse(json_t *reply, char forward[16], char reverse[16], struct sy_reverse_record *rec);

#endif
