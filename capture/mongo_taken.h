/* What the MongoDB forward collector took near its position, left behind when it stops (capture/
 * mongo_collector.c, "Order"): a failover's tail (capture/mongo_tail.c) reads business's oplog from `after`
 * instead of the collected position and skips exactly these ts, so an entry that landed behind a newer one
 * after the collector's last poll is in the tail, and one it took never is. A restarted collector takes the
 * set over the same way. The file (instance dir, SY_MONGO_TAKEN_FILE) holds
 *
 *   {"position": "t:i" (the collector's position when it stopped), "after": "t:i" (every entry after it and
 *    at or before position was taken iff its ts is in "taken"), "taken": [t << 32 | i, ...]}
 *
 * written atomically (core/state_file.h). It is valid only for that position: a collector that ran on
 * removed it at its start, and one that crashed or failed left none. */
#ifndef SY_CAPTURE_MONGO_TAKEN_H
#define SY_CAPTURE_MONGO_TAKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/instance.h"
#include "engine/mongo_client.h"

#define SY_MONGO_TAKEN_FILE SY_INSTANCE_TAIL_FILE  /* a cluster failover carries it to the next owner */

/* Writes the set (keys: t << 32 | i; zeros ignored; keys at or before after are left out). 0, or -1 (err). */
int sy_mongo_taken_save(const char *dir, struct sy_mongo_ts position, struct sy_mongo_ts after, const uint64_t *keys,
                        size_t n, char *err, size_t errlen);
/* Reads the set left at position `from` (up_to: at `from` or after it, `from` not before its `after`: a
 * collector resuming from its spool's last position, which may be older than its last taken ts): 1 with
 * *after and *keys (sorted, malloc'd; *n of them), 0 none for it (missing, or another position: why), -1
 * unreadable (why). */
int sy_mongo_taken_load(const char *dir, struct sy_mongo_ts from, bool up_to, struct sy_mongo_ts *after,
                        uint64_t **keys, size_t *n, char *why, size_t whylen);
/* Whether key is in a sorted set from sy_mongo_taken_load. */
bool sy_mongo_taken_has(const uint64_t *keys, size_t n, uint64_t key);
/* Removes the file (missing: fine). */
void sy_mongo_taken_remove(const char *dir);

#endif
