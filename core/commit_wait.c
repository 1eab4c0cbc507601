/* See commit_wait.h: published positions, the loop's wake-up, counters. */
#include "core/commit_wait.h"

#include <stdio.h>
#include <string.h>

const double sy_commit_wait_bucket_s[SY_COMMIT_WAIT_BUCKETS] = { 0.001, 0.002, 0.005, 0.01, 0.025,
                                                                 0.05,  0.1,   0.25,  0.5,  1.0 };

const char *sy_commit_wait_mode_name(enum sy_commit_wait_mode m)
{
    return m == SY_COMMIT_WAIT_COLLECTED ? "collected" : m == SY_COMMIT_WAIT_APPLIED ? "applied" : "off";
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct sy_commit_wait *cw = arg;
    if (cw->on_progress)
        cw->on_progress(cw->on_progress_arg);
}

int sy_commit_wait_init(struct sy_commit_wait *cw, const struct sy_pair_cfg *cfg, struct event_base *base,
                        char *err, size_t errlen)
{
    memset(cw, 0, sizeof *cw);
    cw->cfg = cfg;
    pthread_mutex_init(&cw->lock, NULL);
    cw->wake = event_new(base, -1, 0, on_wake, cw);
    if (cw->wake == NULL) {
        snprintf(err, errlen, "commit_wait: out of memory");
        pthread_mutex_destroy(&cw->lock);
        return -1;
    }
    return 0;
}

void sy_commit_wait_fini(struct sy_commit_wait *cw)
{
    if (cw == NULL || cw->wake == NULL)
        return;
    event_free(cw->wake);
    cw->wake = NULL;
    pthread_mutex_destroy(&cw->lock);
}

void sy_commit_wait_publish(struct sy_commit_wait *cw, int source_side, bool applied, const char *position)
{
    if (cw == NULL || cw->wake == NULL || source_side < 0 || source_side > 1)
        return;
    char *slot = applied ? cw->applied[source_side] : cw->collected[source_side];
    pthread_mutex_lock(&cw->lock);
    bool changed = strcmp(slot, position) != 0;
    if (changed) {
        snprintf(slot, sizeof cw->collected[0], "%s", position);
        cw->gen++;
    }
    pthread_mutex_unlock(&cw->lock);
    /* the mode is fixed at start: only a pair that waits wakes its loop */
    if (changed && cw->cfg->commit_wait != SY_COMMIT_WAIT_OFF)
        event_active(cw->wake, 0, 0);
}

void sy_commit_wait_target(struct sy_commit_wait *cw, int source_side, char *out, size_t outlen)
{
    pthread_mutex_lock(&cw->lock);
    snprintf(out, outlen, "%s",
             cw->cfg->commit_wait == SY_COMMIT_WAIT_APPLIED ? cw->applied[source_side] : cw->collected[source_side]);
    pthread_mutex_unlock(&cw->lock);
}

void sy_commit_wait_note_end(struct sy_commit_wait *cw, uint64_t wait_ms)
{
    double s = (double)wait_ms / 1000.0;
    size_t b = 0;
    while (b < SY_COMMIT_WAIT_BUCKETS && s > sy_commit_wait_bucket_s[b])
        b++;
    pthread_mutex_lock(&cw->lock);
    cw->wait_seconds_sum += s;
    cw->wait_buckets[b]++;
    pthread_mutex_unlock(&cw->lock);
}

json_t *sy_commit_wait_status_json(const struct sy_commit_wait *cw)
{
    const struct sy_pair_cfg *c = cw->cfg;
    pthread_mutex_lock((pthread_mutex_t *)&cw->lock);
    json_t *o = json_pack("{s:s,s:s,s:i,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "mode",
                          sy_commit_wait_mode_name(c->commit_wait), "fallback",
                          c->commit_wait_fallback == SY_COMMIT_WAIT_ERROR ? "error" : "degrade", "timeout_ms",
                          c->commit_wait_timeout_ms, "degraded", cw->degraded, "waiting", (json_int_t)cw->waiting,
                          "waits", (json_int_t)cw->waits, "released", (json_int_t)cw->released, "timeouts",
                          (json_int_t)cw->timeouts, "errors", (json_int_t)cw->errors, "degraded_count",
                          (json_int_t)cw->degraded_count, "recovered_count", (json_int_t)cw->recovered_count,
                          "wait_seconds_sum", cw->wait_seconds_sum);
    json_t *b = json_array();
    for (size_t i = 0; i <= SY_COMMIT_WAIT_BUCKETS; i++)
        json_array_append_new(b, json_integer((json_int_t)cw->wait_buckets[i]));
    pthread_mutex_unlock((pthread_mutex_t *)&cw->lock);
    json_object_set_new(o, "wait_buckets", b);
    return o;
}
