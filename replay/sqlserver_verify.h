/* Data verification for SQL Server pairs (`verify PAIR [--objects ...]`): row counts and chunked
 * checksums by key range of every synchronized table on business and DR. Blocking (db-lib): run it on
 * a thread of its own, never on the loop. */
#ifndef SY_REPLAY_SQLSERVER_VERIFY_H
#define SY_REPLAY_SQLSERVER_VERIFY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/config.h"

struct sy_module_ctx;

/* Fills `result` with the fields replay/mariadb_verify.h documents ({"pair", "clean", "elapsed_ms",
 * "tables": [{"table", "status": ok|mismatch|not_caught_up|missing_on_dr, "business_rows", "dr_rows",
 * "chunks", "mismatches": [{"from", "to", "business_rows", "dr_rows", "confirmed"}]}]}); a chunk's keys
 * are (from, to] as T-SQL literals, null = unbounded. Returns 0 (`clean` is the verdict); -1 a side could
 * not be used (err); -2 objects_filter is malformed or matches no synchronized table (err). */
int sy_sqlserver_verify(const struct sy_pair_cfg *cfg, const struct sy_module_ctx *watch,
                        const char *objects_filter,
                        bool (*write_reached)(void *arg, const char *position, int timeout_ms), void *arg,
                        json_t *result, char *err, size_t errlen);

#endif
