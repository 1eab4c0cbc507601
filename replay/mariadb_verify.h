/* Data verification for MariaDB pairs (`verify PAIR [--objects ...]`): row counts and chunked
 * checksums of every synchronized table on both sides of the forward direction, each destination
 * chunk read only once the forward writer has applied past the source position the chunk was
 * summed at. Blocking: run it on a thread of its own, never on the loop. */
#ifndef SY_REPLAY_MARIADB_VERIFY_H
#define SY_REPLAY_MARIADB_VERIFY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/config.h"

struct sy_module_ctx;

/* Asks whether the forward writer has applied at least `gtid_set` (a source position), waiting up
 * to timeout_ms. Called from the verifying thread. */
typedef bool (*sy_verify_reached_fn)(void *arg, const char *gtid_set, int timeout_ms);

/* Verifies business (source) against dr (destination) for every synchronized base table, further
 * restricted by objects_filter (NULL = all; else "db.table,db.*"). Fills `result` (an object) with
 * {"pair", "clean", "elapsed_ms", "tables": [{"table", "status": ok|mismatch|not_caught_up|
 * missing_on_dr|error, "business_rows", "dr_rows", "chunks", "mismatches": [{"from", "to",
 * "business_rows", "dr_rows", "confirmed"}], "detail"?}]}: a chunk's keys are in (from, to], null =
 * unbounded; confirmed = the difference survived a recheck with the business range share-locked until
 * DR caught up (false: business held locks on it too long to take them).
 * Returns 0 (mismatches included: `clean` is the verdict); -1 a database could not be used or a
 * query failed for good (err); -2 objects_filter is malformed or matches no synchronized table (err). */
int sy_mariadb_verify(const struct sy_pair_cfg *cfg, const struct sy_module_ctx *watch, const char *objects_filter,
                      sy_verify_reached_fn write_reached, void *arg, json_t *result, char *err, size_t errlen);

#endif
