/* A collector's spool side (core/collect.h). */
#include "core/collect.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "core/commit_wait.h"
#include "core/log.h"
#include "core/spool.h"

#define COLLECT_MAX_BACKOFF_MS 2000

uint64_t sy_wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static bool stopping(const struct sy_collect *o)
{
    return __atomic_load_n(o->ctx->stop, __ATOMIC_ACQUIRE) != 0;
}

void sy_collect_init(struct sy_collect *o, struct sy_module_ctx *ctx)
{
    *o = (struct sy_collect){ .ctx = ctx };
    sy_buf_init(&o->buf);
}

void sy_collect_fini(struct sy_collect *o)
{
    sy_collect_sync(o, true);
    sy_buf_fini(&o->buf);
}

static void appended(struct sy_collect *o, const struct sy_change *ch, uint64_t seq, uint64_t rec_bytes)
{
    if (ch->kind == SY_CHANGE_TXN_BEGIN) {
        o->in_txn = true;
        o->txn_bytes = 0;
    }
    o->txn_bytes += rec_bytes;
    /* A POSITION is never appended inside a transaction the collection is reading: one before it that is
     * still open was left by a broken stream, and every writer drops it there (the source goes on past it). */
    if (sy_collect_ends_txn((uint8_t)ch->kind, NULL)) {
        o->in_txn = false;
        o->last_commit_seq = seq;
        snprintf(o->last_commit_pos, sizeof o->last_commit_pos, "%.*s", (int)ch->position_len, ch->position);
    }
    o->dirty = true;
    pthread_mutex_lock(&o->ctx->report->lock);
    o->ctx->report->spool_seq = seq;
    pthread_mutex_unlock(&o->ctx->report->lock);
}

bool sy_collect_append(struct sy_collect *o, const struct sy_change *ch)
{
    if (sy_change_encode(ch, &o->buf) != 0) {
        sy_module_report_failed(o->ctx->report, "encode_failed", "cannot encode a %s record",
                                sy_change_kind_name(ch->kind));
        return false;
    }
    uint64_t rec_bytes = sy_spool_record_bytes(o->buf.len);
    if (o->too_large != NULL && o->too_large(o->too_large_arg, o, ch, rec_bytes, false))
        return false;
    int backoff = 100;
    bool was_full = false;
    for (;;) {
        uint64_t seq;
        char err[512];
        enum sy_spool_rc rc = sy_spool_append(o->ctx->spool, (uint8_t)ch->kind, o->buf.p, o->buf.len, &seq, err,
                                              sizeof err);
        if (rc == SY_SPOOL_OK) {
            if (was_full)
                sy_module_report_running(o->ctx->report);
            appended(o, ch, seq, rec_bytes);
            return true;
        }
        if (rc == SY_SPOOL_ERROR) {
            sy_module_report_failed(o->ctx->report, "spool_error", "%s", err);
            return false;
        }
        if (rc == SY_SPOOL_FULL && o->too_large != NULL && o->too_large(o->too_large_arg, o, ch, rec_bytes, true))
            return false;
        was_full = true;
        if (rc == SY_SPOOL_NO_SPACE)   /* the writer frees what it applied; the rest may be another's */
            sy_module_report_retrying(o->ctx->report, "spool_full",
                                      "the disk under the spool is full (%s): collection waits and goes on by "
                                      "itself once there is room (the writer frees what it applied); free space "
                                      "on that file system", err);
        else
            sy_module_report_retrying(o->ctx->report, "spool_full",
                                      "spool is full (%s): waiting for the writer to apply and free room", err);
        if (stopping(o))
            return false;
        usleep((useconds_t)backoff * 1000u);
        if (backoff < COLLECT_MAX_BACKOFF_MS)
            backoff *= 2;
    }
}

void sy_collect_sync(struct sy_collect *o, bool force)
{
    uint64_t now = sy_wall_ms();
    if (!o->dirty || (!force && now - o->last_sync_ms < SY_COLLECT_SYNC_MS))
        return;
    char err[256];
    bool synced = sy_spool_sync(o->ctx->spool, err, sizeof err) == SY_SPOOL_OK;
    if (!synced)
        sy_log_warn("%s: spool sync: %s", o->ctx->instance_id, err);
    o->dirty = false;
    o->last_sync_ms = now;
    if (synced && o->last_commit_pos[0] != '\0') /* never published when the fsync failed */
        sy_commit_wait_publish(o->ctx->commit_wait, o->ctx->source_side, false, o->last_commit_pos);
}

bool sy_collect_commit_wait(const struct sy_collect *o)
{
    return o->ctx->cfg->commit_wait != SY_COMMIT_WAIT_OFF;
}

bool sy_collect_ends_txn(uint8_t type, void *arg)
{
    (void)arg;
    return type == SY_CHANGE_TXN_COMMIT || type == SY_CHANGE_POSITION;
}

int sy_collect_resume_position(struct sy_collect *o, char *out, size_t outlen)
{
    char err[512];
    uint64_t seq = 0;
    uint8_t type, *payload = NULL;
    size_t len = 0;
    snprintf(out, outlen, "%s", o->ctx->start_position ? o->ctx->start_position : "");
    pthread_mutex_lock(&o->ctx->report->lock);   /* what is spooled already, before any new record */
    o->ctx->report->spool_seq = sy_spool_last_seq(o->ctx->spool);
    pthread_mutex_unlock(&o->ctx->report->lock);
    enum sy_spool_rc rc = sy_spool_find_last(o->ctx->spool, sy_collect_ends_txn, NULL, &seq, &type, &payload, &len,
                                             err, sizeof err);
    if (rc == SY_SPOOL_ERROR) {
        sy_module_report_failed(o->ctx->report, "spool_error", "finding the last position in the spool: %s", err);
        return -1;
    }
    if (rc != SY_SPOOL_OK)
        return 0;
    struct sy_change_scratch s;
    struct sy_change ch;
    sy_change_scratch_init(&s);
    bool decoded = sy_change_decode(payload, len, &s, &ch) == SY_PARSE_OK;
    if (decoded && ch.position_len > 0) {
        snprintf(out, outlen, "%.*s", (int)ch.position_len, ch.position);
        /* read back from the spool: durable (commit_wait) */
        snprintf(o->last_commit_pos, sizeof o->last_commit_pos, "%s", out);
        sy_commit_wait_publish(o->ctx->commit_wait, o->ctx->source_side, false, out);
    }
    sy_change_scratch_fini(&s);
    free(payload);
    if (!decoded) {
        sy_module_report_failed(o->ctx->report, "spool_error", "spool record %llu: undecodable %s record",
                                (unsigned long long)seq, sy_change_kind_name(type));
        return -1;
    }
    o->last_commit_seq = seq;
    return 0;
}

int sy_collect_start_position(struct sy_collect *o,
                              int (*current)(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out,
                                             size_t outlen, char *err, size_t errlen),
                              char *out, size_t outlen)
{
    char err[1024];
    if (sy_collect_resume_position(o, out, outlen) != 0)
        return -1;
    while (out[0] == '\0' && current(o->ctx->cfg, o->ctx->source, out, outlen, err, sizeof err) != 0) {
        out[0] = '\0';
        sy_module_report_retrying(o->ctx->report, "source_unreachable", "reading the start position: %s", err);
        for (int waited = 0; waited < COLLECT_MAX_BACKOFF_MS && !stopping(o); waited += 50)
            usleep(50 * 1000);
        if (stopping(o))
            return -1;
    }
    return 0;
}
