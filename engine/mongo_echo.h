/* Echo suppression for MongoDB (oplog entries carry no origin). Before each batch it applies, a writer
 * inserts one *mark* into the destination's capped `switchyard.echo`: the fingerprints of the changes
 * it is about to make. The opposite direction's collector tails that same oplog: it takes a mark's
 * fingerprints into its ledger and drops each later entry whose fingerprint is there, consuming it
 * (a multiset: the same change twice needs two fingerprints). So a change crosses once and never
 * comes back, with no shared memory between the two instances and across restarts of either.
 *
 *   mark = {_id: ObjectId, at: wall ms, fp: [Int64, ...]}
 *   fingerprint = hash(ns, {_id: value} bytes, put|delete, hash(document bytes) or 0)
 *
 * A put is an insert or an update (an upsert lands as either); its document hash is of the whole
 * document written, so a different later write of the same key is never mistaken for an echo. A put
 * whose result the writer cannot know (a real MongoDB diff) carries document hash 0, which the
 * collector matches with any content. Fingerprints expire (SY_MONGO_ECHO_TTL_MS after they were taken)
 * so that one whose change never came (a writer killed between mark and write) cannot swallow a real
 * change much later. Pure but for allocation; not thread-safe (one collector owns one ledger). */
#ifndef SY_MONGO_ECHO_H
#define SY_MONGO_ECHO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#define SY_MONGO_ECHO_COLL "echo"                  /* in database SY_MONGO_DB */
#define SY_MONGO_ECHO_BYTES (16 * 1024 * 1024)     /* its capped size */
#define SY_MONGO_ECHO_TTL_MS (120 * 1000)

uint64_t sy_mongo_hash(const void *p, size_t len, uint64_t seed); /* FNV-1a 64 */
uint64_t sy_mongo_hash_more(uint64_t h, const void *p, size_t len); /* FNV-1a 64 continued from h */
/* The fingerprint of one change: id = the {_id: value} document's bytes; doc_hash 0 for a delete or a
 * put of unknown content. */
uint64_t sy_mongo_echo_fingerprint(const char *ns, const uint8_t *id, size_t id_len, bool del, uint64_t doc_hash);

/* Which document a change is about: hash(ns, {_id: value} bytes); never 0. The ack ledger's key
 * (engine/mongo_acks.h): the proxy's view of an acknowledged write and the collector's of its oplog entry
 * meet on it. */
uint64_t sy_mongo_doc_key(const char *ns, const uint8_t *id, size_t id_len);

struct sy_mongo_echo;
struct sy_mongo_echo *sy_mongo_echo_new(void);
void sy_mongo_echo_free(struct sy_mongo_echo *e);
/* Takes a mark's fingerprints (its `fp` array; anything else in it ignored). -1: not a mark or out of memory. */
int sy_mongo_echo_add_mark(struct sy_mongo_echo *e, const bson_t *mark, uint64_t now_ms);
int sy_mongo_echo_add(struct sy_mongo_echo *e, uint64_t fingerprint, uint64_t now_ms);
/* Whether a change is an echo: consumes its fingerprint (exact, else the same key's put with content 0). */
bool sy_mongo_echo_take(struct sy_mongo_echo *e, const char *ns, const uint8_t *id, size_t id_len, bool del,
                        uint64_t doc_hash, uint64_t now_ms);
size_t sy_mongo_echo_pending(const struct sy_mongo_echo *e);

#endif
