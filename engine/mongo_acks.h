/* The MongoDB ack ledger: proof that every write the proxy acknowledged to a client is inside what a switch
 * drained (the MariaDB proxy has GTIDs for that; FerretDB's replies carry no operationTime, and FerretDB
 * writes a change and its oplog entry separately, acknowledging the write even when the entry could not be
 * written: internal/backends/decorators/oplog).
 *
 * Per pair and side: the proxy notes the key (engine/mongo_echo.h sy_mongo_doc_key: namespace + _id) of
 * each document an acknowledged write changed (proxy/mongo_write.h says which, from the request and its
 * reply); the collector reading that side notes the key and ts of each oplog entry it takes. Each
 * acknowledgement is matched with one taken entry of its key (whichever comes first waits for the other:
 * `acked` and `taken` multisets), and the ledger position is the newest ts matched. Acknowledged writes
 * whose entry the collector has not taken yet are `pending`: the ledger text then says how many
 * ("1733251200:17 and 3 acknowledged write(s) not yet read from the oplog"), which no drained position
 * covers (sy_mongo_position_covers), so a switch refuses ledger_ahead_of_drain instead of losing them. A
 * pending write resolves when the collector takes an entry of its document. Replies that carry operationTime (MongoDB) give the ts directly.
 *
 * Acknowledgements are noted only while a collector reads that side (`armed`): with none, nothing would
 * ever resolve them. Each start of the collector begins a new ledger (pending ones forgotten): an operator
 * who repaired a document whose entry the server lost (written again; DR takes it with on_conflict =
 * overwrite) restarts the forward instance (pause, start) to clear it. Taken entries nobody acknowledged (writes of other clients) expire after
 * SY_MONGO_ACK_TAKEN_TTL_MS. At most SY_MONGO_ACK_PENDING_MAX pending: past it the ledger is marked
 * incomplete (its text says so, and it covers nothing) until the collector restarts. Writes the proxy cannot
 * tie to one document (an update or delete by another filter, several statements of which some changed
 * nothing) are counted `unproven`: they precede the switch's fence mark like every acknowledged write, but
 * this ledger does not prove them. The same per-side state carries a switch's wish that the collector poll
 * fast (hurry) while it waits for the fence mark. Thread-safe: the proxy calls from the loop, a collector from its thread. */
#ifndef SY_MONGO_ACKS_H
#define SY_MONGO_ACKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/pair.h"

#define SY_MONGO_ACK_TAKEN_TTL_MS (120 * 1000)
#define SY_MONGO_ACK_PENDING_MAX (1u << 20)

struct sy_mongo_acks;

/* The ledger of one side of a pair, created on first use, alive until the process ends. NULL: no memory. */
struct sy_mongo_acks *sy_mongo_acks_of(const char *pair, enum sy_side side);

/* A collector reads this side from now on (on) or no more (off). Arming forgets pending writes and an
 * incomplete mark. */
void sy_mongo_acks_arm(struct sy_mongo_acks *a, bool on);
bool sy_mongo_acks_armed(struct sy_mongo_acks *a);

/* now_ms arguments are wall-clock ms (sy_wall_ms), the same for every caller: the collector's takes expire
 * by it. */
/* The proxy: writes acknowledged to a client, by document key; `unproven` more it could not tie to one. */
void sy_mongo_acks_acked(struct sy_mongo_acks *a, const uint64_t *keys, size_t n, size_t unproven, uint64_t now_ms);
/* The proxy: a write reply's operationTime (a server that has it). */
void sy_mongo_acks_op_time(struct sy_mongo_acks *a, uint32_t t, uint32_t i);
/* The collector: an oplog entry of document `key` at ts t:i was taken. */
void sy_mongo_acks_taken(struct sy_mongo_acks *a, uint64_t key, uint32_t t, uint32_t i, uint64_t now_ms);

/* A switch waits for this side's collector to read its fence mark: poll fast until until_ms (0: no more),
 * or until the collector takes a mark at or after t:i (sy_mongo_acks_mark_taken; set once the fence knows
 * its mark's timestamp: an older mark read late does not end the hurry). */
void sy_mongo_acks_hurry(struct sy_mongo_acks *a, uint64_t until_ms);
void sy_mongo_acks_hurry_for(struct sy_mongo_acks *a, uint32_t t, uint32_t i);
bool sy_mongo_acks_hurried(struct sy_mongo_acks *a, uint64_t now_ms);
void sy_mongo_acks_mark_taken(struct sy_mongo_acks *a, uint32_t t, uint32_t i);

struct sy_mongo_acks_stats {
    uint64_t acked, matched, unproven;
    size_t pending;
    bool incomplete;
};
/* The ledger position text ("" when no write was proven yet and none is pending) and counts. */
void sy_mongo_acks_ledger(struct sy_mongo_acks *a, char *out, size_t outlen, struct sy_mongo_acks_stats *st);
/* Another node's ledger text merged into `into` (rewritten in place): the newer position, the pending writes of
 * both, incomplete if either is (a text neither wrote: `into` stays). Pure. */
void sy_mongo_acks_ledger_merge(char *into, size_t intolen, const char *other);

#endif
