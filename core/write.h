/* The spool side of a write module, the same for every engine's writer (core/collect.h is the
 * collector's): reading spool records into a batch of whole source transactions, and publishing the
 * writer's progress (applied position, checkpoint seq, counters, lag) in its report. Used from the
 * module's thread only. */
#ifndef SY_WRITE_H
#define SY_WRITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/instance.h"

/* How a writer takes one spool record into its batch: 0 go on, 1 the batch is full (apply it now),
 * -1 failed (the writer reported it). */
typedef int (*sy_write_add_fn)(void *arg, uint8_t type, const uint8_t *payload, size_t len, uint64_t seq);

/* Whether the batch holds a complete source transaction yet (then the fill stops waiting for more). */
typedef bool (*sy_write_complete_fn)(void *arg);

/* Reads records from *seq on into add until the batch is full or the spool has nothing more; waits up to
 * wait_ms for the next record only while complete(arg) is false. *seq ends past the last record read.
 * 0; -1 add failed; -2 spool error (err). */
int sy_write_fill(struct sy_spool *spool, uint64_t *seq, int wait_ms, sy_write_complete_fn complete,
                  sy_write_add_fn add, void *arg, char *err, size_t errlen);

/* The writer's progress into its report: applied position, the checkpoint's spool seq, rows applied
 * and conflicts (monotonic counters), and lag: 0 when the checkpoint reached the spool's end, else the
 * time since source_time_ms (the source time of the last applied transaction; 0 = unknown). */
void sy_write_report(const struct sy_module_ctx *ctx, const char *position, uint64_t applied_seq, uint64_t rows,
                     uint64_t conflicts, uint64_t source_time_ms);

/* Another cluster node owns the pair (a destination named a higher owner token than ctx->owner_token, or
 * the checkpoint is gone): says so in the pair's status (sync_owner.fenced), logs it once as an error and
 * fails the module with reason "fenced". The writer then stops for good and commits nothing more. */
void sy_write_fenced(const struct sy_module_ctx *ctx, uint64_t newer, const char *why);

#endif
