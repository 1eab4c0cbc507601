/* A MongoDB takeover's catch-up candidates (capture/mongo_collector.c, "A takeover"): among the oplog entries
 * re-read up to the takeover's start position, the newest per document, and whether the oplog holds a newer
 * entry of that document after the start position. What is left once the source was read to its end is
 * what the destination may lack: the newest state of documents whose newest entry lies at or before the start
 * position (an entry that landed there late, after the old owner's collector passed it). A document written
 * again later is not a candidate: that later entry (replayed, or an echo the destination already has)
 * decides its state. No I/O. */
#ifndef SY_CAPTURE_MONGO_CATCH_UP_H
#define SY_CAPTURE_MONGO_CATCH_UP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

struct sy_mongo_catch_up;

struct sy_mongo_catch_up *sy_mongo_catch_up_new(void); /* NULL: out of memory */
void sy_mongo_catch_up_free(struct sy_mongo_catch_up *cu);

/* An entry at or before the start position, of document `key` at ts t:i: kept (a copy of entry) unless an
 * entry of that document with a newer ts is kept or was seen; it replaces an older one. entry NULL: a newer
 * state that is no candidate (a partial update) — older ones are dropped, nothing is kept. 0, or -1 (out of
 * memory). */
int sy_mongo_catch_up_put(struct sy_mongo_catch_up *cu, uint64_t key, uint32_t t, uint32_t i, const bson_t *entry);
/* An entry of document `key` at t:i after the start position: a kept one older than it is dropped. */
void sy_mongo_catch_up_seen(struct sy_mongo_catch_up *cu, uint64_t key, uint32_t t, uint32_t i);
/* How many are kept now. */
size_t sy_mongo_catch_up_count(const struct sy_mongo_catch_up *cu);
/* The kept entries in ts order, fn(entry, arg) for each until it returns false. false when fn did. */
bool sy_mongo_catch_up_each(struct sy_mongo_catch_up *cu, bool (*fn)(const bson_t *entry, void *arg), void *arg);

#endif
