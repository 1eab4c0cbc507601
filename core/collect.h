/* The spool side of a collection module, the same for every engine's collector: appending change
 * records (on a full spool: report `spool_full`, wait for the writer to make room, never drop),
 * syncing the spool at most every SY_COLLECT_SYNC_MS while records stream, and finding where a
 * restarted collector resumes (the spool's last TXN_COMMIT/POSITION record, else the instance's start
 * position). Used from the module's thread only. */
#ifndef SY_COLLECT_H
#define SY_COLLECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/change.h"
#include "core/instance.h"

#define SY_COLLECT_SYNC_MS 100

struct sy_collect {
    struct sy_module_ctx *ctx;   /* ref */
    struct sy_buf buf;           /* encoding scratch */
    bool dirty;                  /* appended since the last sync */
    uint64_t last_sync_ms;
    bool in_txn;                 /* a TXN_BEGIN was appended, its TXN_COMMIT not yet */
    uint64_t txn_bytes;          /* spool bytes of the open transaction's records so far */
    uint64_t last_commit_seq;    /* seq of the last TXN_COMMIT/POSITION outside a transaction (0 = none):
                                    the writer's checkpoint can reach it, so the spool can shrink to it */
    char last_commit_pos[1024];  /* source position of that record: once synced, it is the durable
                                    position published for commit_wait (sy_commit_wait_publish) */
    /* Optional: whether the open transaction, with a next record of rec_bytes, can never fit under
     * spool_max_bytes (full: the spool just refused it); reports failed itself when so. */
    bool (*too_large)(void *arg, const struct sy_collect *o, const struct sy_change *ch, uint64_t rec_bytes,
                      bool full);
    void *too_large_arg;
};

void sy_collect_init(struct sy_collect *o, struct sy_module_ctx *ctx);
void sy_collect_fini(struct sy_collect *o); /* syncs what is dirty */

/* Whether a record of this type ends what a writer can apply whole: a TXN_COMMIT, or a POSITION (never
 * appended inside a transaction being spooled; an open one before it was cut off and is dropped). The
 * predicate for sy_spool_find_last (arg unused). */
bool sy_collect_ends_txn(uint8_t type, void *arg);

/* Appends one record; publishes the spool seq in the report. false: stopping, or failed (reported). */
bool sy_collect_append(struct sy_collect *o, const struct sy_change *ch);
/* fsyncs the spool when dirty and force or SY_COLLECT_SYNC_MS passed; then publishes the position of
 * the last complete transaction as durable (commit_wait). */
void sy_collect_sync(struct sy_collect *o, bool force);
/* Whether the pair waits for collections (commit_wait != off): a collector then syncs at each commit
 * when nothing more is waiting to be read, and records a POSITION for each skipped transaction. */
bool sy_collect_commit_wait(const struct sy_collect *o);

/* Where to resume into out: the spool's last TXN_COMMIT/POSITION position, else ctx->start_position
 * (may be ""). 0, or -1 (failed: reported). */
int sy_collect_resume_position(struct sy_collect *o, char *out, size_t outlen);

/* sy_collect_resume_position, and when that is "" (no initial sync, nothing spooled): the source's
 * current position from current(ctx->cfg, ctx->source, ...) (the engine's sy_position_ops.current),
 * retried every 2 s while it fails (the module reports retrying source_unreachable). 0, or -1 (failed:
 * reported; or stopped). */
int sy_collect_start_position(struct sy_collect *o,
                              int (*current)(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out,
                                             size_t outlen, char *err, size_t errlen),
                              char *out, size_t outlen);

uint64_t sy_wall_ms(void);

#endif
