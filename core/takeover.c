/* The takeover of a pair's instances by a new owner (core/takeover.h). One worker thread per takeover:
 *
 *   for forward (and reverse, when this node has its state):
 *     engine takeover(): dest's checkpoint {spool_seq, position} (dest only: the source may be down), and
 *                        dest forgets the old owner's spool sequence numbers
 *     no checkpoint      -> nothing to do: the instance starts from this node's state
 *     else               -> spool emptied to continue at spool_seq + 1, state running (its write runs when
 *                           its destination is the passive side) or collecting, overwrite_until = until (the
 *                           writer reads the source position before its first change); paused or terminated
 *                           instead when an operator left it so (kept in etcd: core/cluster_held.h)
 *   done() on the loop: the daemon opens the instances.
 * Nothing here touches an open instance; the daemon opens them only after done(). */
#include "core/takeover.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/admin.h"
#include "core/engine.h"
#include "core/failpoint.h"
#include "core/instance.h"
#include "core/log.h"

struct takeover_job {
    struct sy_pair *p;           /* ref: the daemon's (outlives the job: shutdown waits for admin jobs) */
    enum sy_side active;         /* the pair's active side when the takeover began */
    bool reverse;                /* this node has the reverse instance's state */
    uint64_t owner_token;        /* the pair's when the takeover began */
    char held[2][16];            /* per direction: "paused", "terminated" (an operator's, kept in etcd) or "" */
    sy_takeover_done_fn done;
    void *arg;
    struct event *done_ev;       /* owned: made active by the thread */
    int rc;
    char err[1200];
};

/* One instance; 0 or -1 (job->err). */
static int take_instance(struct takeover_job *job, enum sy_direction dir)
{
    struct sy_pair *p = job->p;
    const struct sy_pair_cfg *cfg = p->cfg;
    char id[96], err[1024];
    snprintf(id, sizeof id, "%s/%s", cfg->name, dir == SY_DIR_FORWARD ? "forward" : "reverse");
    if (p->eng->sync->takeover == NULL) {
        sy_log_warn("%s: engine %s cannot resume from the destination's checkpoint yet: the instance starts from "
                    "this node's own state", id, sy_engine_name(cfg->engine));
        return 0;
    }
    const struct sy_endpoint *src = dir == SY_DIR_FORWARD ? &cfg->business : &cfg->dr;
    const struct sy_endpoint *dest = dir == SY_DIR_FORWARD ? &cfg->dr : &cfg->business;
    struct sy_takeover_point pt;
    memset(&pt, 0, sizeof pt);
    pt.owner_token = job->owner_token;
    if (p->eng->sync->takeover(cfg, id, src, dest, &pt, err, sizeof err) != 0) {
        snprintf(job->err, sizeof job->err, "%s: reading the checkpoint to resume from: %s", id, err);
        return -1;
    }
    const char *held = job->held[dir == SY_DIR_FORWARD ? 0 : 1];
    if (!pt.found)
        sy_log_info("%s: the destination has no checkpoint: the instance starts from this node's state%s%s", id,
                    held[0] ? ", " : "", held);
    /* the write runs into the passive side only */
    bool write = dir == SY_DIR_FORWARD ? job->active == SY_SIDE_BUSINESS : job->active == SY_SIDE_DR;
    bool skipped = false;
    if (sy_instance_prepare_takeover(p, dir, pt.found ? &pt : NULL, write, held, &skipped, err, sizeof err) != 0) {
        snprintf(job->err, sizeof job->err, "%s: %s", id, err);
        return -1;
    }
    if (skipped)
        sy_log_info("%s: terminated%s: not taken over", id, held[0] ? " by an operator (kept in etcd)" : " on this node");
    else if (pt.found)
        sy_log_info("%s: taken over from the destination's checkpoint (spool record %llu, position %s); changes up "
                    "to %s are replayed idempotently%s%s", id, (unsigned long long)pt.spool_seq, pt.position,
                    pt.until[0] ? pt.until : "(none)", write ? "" : "; it only collects (its destination is active)",
                    strcmp(held, "failover") == 0 ? "; it stays paused until the failover's tail is resolved (kept in etcd)"
                    : held[0] ? "; it stays paused (an operator paused it: kept in etcd)" : "");
    return 0;
}

static void *takeover_main(void *arg)
{
    struct takeover_job *job = arg;
    job->rc = take_instance(job, SY_DIR_FORWARD);
    if (job->rc == 0 && job->reverse)
        job->rc = take_instance(job, SY_DIR_REVERSE);
    sy_failpoint_stall("takeover_taken"); /* tests: a slow takeover, its token claimed */
    event_active(job->done_ev, 0, 0);
    sy_admin_job_end(); /* last touch of shared state */
    return NULL;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct takeover_job *job = arg;
    job->done(job->arg, job->p, job->owner_token, job->rc, job->err);
    event_free(job->done_ev);
    free(job);
}

int sy_takeover_start(struct sy_pair *p, const char *held_forward, const char *held_reverse, sy_takeover_done_fn done,
                      void *arg, char *err, size_t errlen)
{
    struct takeover_job *job = calloc(1, sizeof *job);
    if (job == NULL || (job->done_ev = event_new(p->base, -1, 0, on_done, job)) == NULL) {
        free(job);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    job->p = p;
    job->active = p->active_side;
    job->reverse = sy_instance_exists(p, SY_DIR_REVERSE);
    job->owner_token = p->owner_token;
    snprintf(job->held[0], sizeof job->held[0], "%s", held_forward ? held_forward : "");
    snprintf(job->held[1], sizeof job->held[1], "%s", held_reverse ? held_reverse : "");
    job->done = done;
    job->arg = arg;
    pthread_t th;
    sy_admin_job_begin();
    if (pthread_create(&th, NULL, takeover_main, job) != 0) {
        sy_admin_job_end();
        event_free(job->done_ev);
        free(job);
        snprintf(err, errlen, "cannot start the takeover thread");
        return -1;
    }
    pthread_detach(th);
    return 0;
}
