/* Data verification for MongoDB pairs (`verify PAIR [--objects ...]`): document counts and chunked
 * hashes of every synchronized collection on business and DR, mismatching chunks narrowed to the
 * differing _ids. Blocking (libmongoc): run it on a thread of its own, never on the loop. */
#ifndef SY_REPLAY_MONGO_VERIFY_H
#define SY_REPLAY_MONGO_VERIFY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/config.h"

struct sy_module_ctx;

/* Fills `result` with the fields replay/mariadb_verify.h documents, a collection's "db.coll" under
 * "table": {"pair", "clean", "elapsed_ms", "tables": [{"table", "status": ok|mismatch|not_caught_up|
 * missing_on_dr|error, "business_rows", "dr_rows", "chunks", "mismatches": [{"from", "to",
 * "business_rows", "dr_rows", "confirmed", "ids"}], "detail"?}]}. A chunk is (from, to] in _id order
 * (bounds as relaxed extended JSON, null = unbounded); ids: up to 10 differing _ids (extended JSON);
 * confirmed: each of them still differed after the forward writer had applied a business position
 * read after business was read again (false: the writer did not get there in time, and the status is
 * not_caught_up unless another chunk is a confirmed mismatch).
 * write_reached(arg, position, timeout_ms) as in core/engine.h. Returns 0 (mismatches included:
 * `clean` is the verdict); -1 a side could not be used (err); -2 objects_filter is malformed or
 * matches no synchronized collection (err). */
int sy_mongo_verify(const struct sy_pair_cfg *cfg, const struct sy_module_ctx *watch, const char *objects_filter,
                    bool (*write_reached)(void *arg, const char *position, int timeout_ms), void *arg,
                    json_t *result, char *err, size_t errlen);

#endif
