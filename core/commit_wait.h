/* commit_wait (zero-RPO mode), the engine-neutral part: per pair, the positions a held commit waits for
 * and the loop's wake-up. Module threads publish: a collection its *durable* spool position (fsync'd),
 * a write its applied position (the checkpoint), each keyed by the side the instance reads from. A
 * publish that changes something makes `wake` active (thread-safe: evthread_use_pthreads), so the
 * proxy re-checks its waiting sessions on the loop at once — nothing polls. Also the counters and the
 * degraded flag that status and metrics show; those are under the lock too (with proxy_threads the proxy's
 * worker loops count). The engine's proxy does the holding
 * (MariaDB: proxy/mysql_commit_wait.c) and compares positions. */
#ifndef SY_COMMIT_WAIT_H
#define SY_COMMIT_WAIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "core/config.h"

/* Upper bounds (seconds) of the wait-time histogram buckets; +Inf is implied. */
#define SY_COMMIT_WAIT_BUCKETS 10
extern const double sy_commit_wait_bucket_s[SY_COMMIT_WAIT_BUCKETS];

struct sy_commit_wait {
    const struct sy_pair_cfg *cfg;  /* ref: the pair's */
    pthread_mutex_t lock;           /* guards the positions and gen (module threads write, the loop reads), and
                                       everything below (the proxy's worker loops count, the loop reads) */
    char collected[2][1024];        /* per source side (enum sy_side): durable spool position, "" unknown */
    char applied[2][1024];          /* per source side: destination checkpoint's source position, "" unknown */
    uint64_t gen;                   /* bumped by every change of a position */
    struct event *wake;             /* owned: made active by a publish; runs on_progress on the loop */
    void (*on_progress)(void *arg); /* set by the engine's proxy (NULL: nobody waits) */
    void *on_progress_arg;
    /* ---- under lock ---- */
    bool degraded;                  /* fallback degrade fired: commits pass at once until caught up */
    uint64_t degraded_since_ms;     /* monotonic, when degraded */
    uint64_t waiting;               /* sessions holding an OK now */
    uint64_t waits;                 /* commits held (a wait that began) */
    uint64_t released;              /* waits that ended with the position reached */
    uint64_t timeouts;              /* waits that reached commit_wait_timeout_ms */
    uint64_t errors;                /* timeouts answered with an error (fallback = error) */
    uint64_t degraded_count;        /* times the pair went degraded */
    uint64_t recovered_count;       /* times it came back */
    double wait_seconds_sum;        /* over every ended wait */
    uint64_t wait_buckets[SY_COMMIT_WAIT_BUCKETS + 1]; /* counts per bucket (not cumulative), last = +Inf */
};

/* NULL-safe fini. init: 0, or -1 with err. */
int sy_commit_wait_init(struct sy_commit_wait *cw, const struct sy_pair_cfg *cfg, struct event_base *base,
                        char *err, size_t errlen);
void sy_commit_wait_fini(struct sy_commit_wait *cw);

/* Module threads. source_side: the side the instance reads from (forward: business). applied: the
 * write module's checkpoint; else the collection's durable spool position. Wakes the loop when the
 * position changed and commit_wait is on. */
void sy_commit_wait_publish(struct sy_commit_wait *cw, int source_side, bool applied, const char *position);

/* Loop: the position the pair's mode waits for on source_side (copied; "" unknown). */
void sy_commit_wait_target(struct sy_commit_wait *cw, int source_side, char *out, size_t outlen);

/* A wait ended after wait_ms (counts it into the histogram; takes the lock). */
void sy_commit_wait_note_end(struct sy_commit_wait *cw, uint64_t wait_ms);

/* The pair's "commit_wait" status object (mode, fallback, timeout_ms, degraded, counters). */
json_t *sy_commit_wait_status_json(const struct sy_commit_wait *cw);

const char *sy_commit_wait_mode_name(enum sy_commit_wait_mode m);

#endif
