/* A writer's spool side (core/write.h). */
#include "core/write.h"

#include <stdio.h>

#include "core/collect.h"
#include "core/log.h"
#include "core/pair.h"
#include "core/spool.h"

int sy_write_fill(struct sy_spool *spool, uint64_t *seq, int wait_ms, sy_write_complete_fn complete,
                  sy_write_add_fn add, void *arg, char *err, size_t errlen)
{
    for (;;) {
        uint8_t type;
        const uint8_t *p;
        size_t len;
        enum sy_spool_rc rc = sy_spool_read(spool, *seq, &type, &p, &len, complete(arg) ? 0 : wait_ms, err, errlen);
        if (rc == SY_SPOOL_ERROR)
            return -2;
        if (rc != SY_SPOOL_OK)
            return 0;
        int full = add(arg, type, p, len, *seq);
        if (full < 0)
            return -1;
        (*seq)++;
        if (full > 0)
            return 0;
    }
}

void sy_write_report(const struct sy_module_ctx *ctx, const char *position, uint64_t applied_seq, uint64_t rows,
                     uint64_t conflicts, uint64_t source_time_ms)
{
    uint64_t last = sy_spool_last_seq(ctx->spool), now = sy_wall_ms();
    struct sy_module_report *r = ctx->report;
    pthread_mutex_lock(&r->lock);
    snprintf(r->position, sizeof r->position, "%s", position);
    r->spool_seq = applied_seq;
    r->events = rows;
    r->conflicts = conflicts;
    r->lag_events = last > applied_seq ? last - applied_seq : 0;
    if (last <= applied_seq)
        r->lag_ms = 0;
    else if (source_time_ms)
        r->lag_ms = (int64_t)(now > source_time_ms ? now - source_time_ms : 0);
    pthread_mutex_unlock(&r->lock);
}

void sy_write_fenced(const struct sy_module_ctx *ctx, uint64_t newer, const char *why)
{
    if (ctx->fence_report != NULL) {
        atomic_store(&ctx->fence_report->lost_to_token, newer);
        atomic_store(&ctx->fence_report->fenced, true);
    }
    sy_log_error("%s: lost ownership of pair %s to token %llu (this writer's owner token %llu): %s; the write "
                 "stops and commits nothing more into the destination", ctx->instance_id, ctx->cfg->name,
                 (unsigned long long)newer, (unsigned long long)ctx->owner_token, why);
    sy_module_report_failed(ctx->report, "fenced", "lost ownership of pair %s to token %llu: %s", ctx->cfg->name,
                            (unsigned long long)newer, why);
}
