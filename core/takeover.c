/* The takeover of a pair's instances by a new owner (core/takeover.h). One worker thread per takeover:
 *
 *   forward first (below); then the reverse instance is made or left out by etcd's record of it
 *   (core/cluster_held.h, read before the takeover):
 *     record, this node has no state of it (or another creation's) -> its state made from the record
 *                               (collecting from the record's start position; running if DR is active)
 *     record, this node has that creation's state                  -> that state
 *     no record, an operator terminated it (kept in etcd)           -> this node's state, marked terminated
 *     no record otherwise (terminated, or never recorded)           -> not opened: never resurrected
 *     a record not understood                                       -> this node's state if it has one
 *   for forward, then reverse (unless left out; a reverse that fails does not fail the forward instance's
 *   takeover: the forward one opens, the reverse one is taken over alone later, reverse_only — its
 *   destination is business, which may be down with the site of a dead owner while a failover must run;
 *   its write does not start before a failover's tail is resolved):
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
#include "core/cluster_held.h"
#include "core/engine.h"
#include "core/failpoint.h"
#include "core/instance.h"
#include "core/log.h"

struct takeover_job {
    struct sy_pair *p;           /* ref: the daemon's (outlives the job: shutdown waits for admin jobs) */
    enum sy_side active;         /* the pair's active side when the takeover began */
    bool tail_pending;           /* a failover's tail is not resolved: the reverse write must not start */
    bool reverse_only;           /* the forward instance is open already: only the reverse one */
    bool reverse;                /* the reverse instance exists here (the thread decides, from the record) */
    struct sy_reverse_record record; /* etcd's record of the reverse instance */
    uint64_t owner_token;        /* the pair's when the takeover began */
    char held[2][16];            /* per direction: "paused", "terminated" (an operator's, kept in etcd) or "" */
    sy_takeover_done_fn done;
    void *arg;
    struct event *done_ev;       /* owned: made active by the thread */
    struct sy_takeover_result res;
};

void sy_forget_newer_owner(char *err, size_t errlen, const struct sy_endpoint *dest, const char *instance_id,
                           uint64_t held, uint64_t mine)
{
    snprintf(err, errlen, "destination %s:%u: the checkpoint of %s names owner token %llu, above this node's %llu: "
             "a newer owner runs the pair (or etcd was recreated from scratch, restarting its revisions: then set "
             "owner_token to 0 in that checkpoint once no old owner runs)", dest->host, dest->port, instance_id,
             (unsigned long long)held, (unsigned long long)mine);
}

/* One instance; 0 or -1 (out). */
static int take_instance(struct takeover_job *job, enum sy_direction dir, char *out, size_t outlen)
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
        snprintf(out, outlen, "%s: reading the checkpoint to resume from: %s", id, err);
        return -1;
    }
    const char *held = job->held[dir == SY_DIR_FORWARD ? 0 : 1];
    if (!pt.found)
        sy_log_info("%s: the destination has no checkpoint: the instance starts from this node's state%s%s", id,
                    held[0] ? ", " : "", held);
    /* the write runs into the passive side only; the reverse one not before a failover's tail is resolved */
    bool write = dir == SY_DIR_FORWARD ? job->active == SY_SIDE_BUSINESS
                                       : job->active == SY_SIDE_DR && !job->tail_pending;
    bool skipped = false;
    if (sy_instance_prepare_takeover(p, dir, pt.found ? &pt : NULL, write, held, &skipped, err, sizeof err) != 0) {
        snprintf(out, outlen, "%s: %s", id, err);
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

/* Whether the reverse instance is taken over (job->reverse), its state made from etcd's record when this
 * node has none of that creation. 0, or -1 (out). */
static int reverse_from_record(struct takeover_job *job, char *out, size_t outlen)
{
    const struct sy_reverse_record *rec = &job->record;
    const char *name = job->p->cfg->name;
    char created[sizeof rec->created] = "", start[sizeof rec->start_position] = "", err[1024];
    bool terminated = false;
    int local = sy_instance_reverse_created(job->p, created, sizeof created, start, sizeof start, &terminated, err,
                                            sizeof err);
    if (local == -1) {                          /* cannot read the file (I/O): tried again */
        snprintf(out, outlen, "%s/reverse: %s", name, err);
        return -1;
    }
    if (local < 0) {                            /* a state file whose content is broken: replaced from the record */
        sy_log_warn("%s/reverse: this node's state of it cannot be read (%s): %s", name, err,
                    rec->found == 1 ? "made again from etcd's record" : "not taken over");
        if (rec->found != 1) {
            job->reverse = false;
            return 0;
        }
    }
    job->reverse = local == 1;                  /* a record not understood, or terminated by an operator */
    if (rec->found < 0)
        sy_log_warn("%s/reverse: etcd's record of it is not understood: %s", name,
                    local ? "this node's own state is taken over"
                          : "this node has no state of it: not taken over");
    if (rec->found < 0 || strcmp(job->held[1], "terminated") == 0)
        return 0;
    if (rec->found == 0) {
        if (local == 1 && !terminated)
            sy_log_warn("%s/reverse: this node has a state of it (created %s) but etcd has no record of it "
                        "(terminated since, or its create-reverse was never recorded): not opened; "
                        "create-reverse makes a new one", name,
                        created[0] ? created : "before records were kept");
        job->reverse = false;
        return 0;
    }
    job->reverse = true;
    /* this node has that creation's state (one from before creations were kept, created "", is that of a
     * record put by hand for it only if it starts where the record says: docs/cluster.md, Upgrading) */
    if (local == 1 && strcmp(created, rec->created) == 0 &&
        (created[0] != '\0' || strcmp(start, rec->start_position) == 0))
        return 0;
    bool write = job->active == SY_SIDE_DR && !job->tail_pending;
    if (sy_instance_reverse_make(job->p, rec->start_position, rec->created, write, err, sizeof err) != 0) {
        snprintf(out, outlen, "%s/reverse: making it from etcd's record: %s", name, err);
        return -1;
    }
    sy_log_info("%s/reverse: made from etcd's record (created %s, collecting from %s%s)%s", name,
                rec->created[0] ? rec->created : "by hand", rec->start_position, write ? ", writing" : "",
                local != 1 ? "" : terminated ? ": this node's terminated one replaced"
                                             : ": this node's older one replaced");
    return 0;
}

static void *takeover_main(void *arg)
{
    struct takeover_job *job = arg;
    struct sy_takeover_result *r = &job->res;
    if (!job->reverse_only)
        r->rc = take_instance(job, SY_DIR_FORWARD, r->err, sizeof r->err);
    if (r->rc == 0) {
        char *e = r->reverse_err;
        size_t elen = sizeof r->reverse_err;
        r->reverse_later = reverse_from_record(job, e, elen) != 0 ||
                           (job->reverse && take_instance(job, SY_DIR_REVERSE, e, elen) != 0);
        r->reverse = job->reverse && !r->reverse_later;
    }
    sy_failpoint_stall("takeover_taken"); /* tests: a slow takeover, its token claimed */
    event_active(job->done_ev, 0, 0);
    sy_admin_job_end(); /* last touch of shared state */
    return NULL;
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct takeover_job *job = arg;
    job->done(job->arg, job->p, job->owner_token, &job->res);
    event_free(job->done_ev);
    free(job);
}

int sy_takeover_start(struct sy_pair *p, const char *held_forward, const char *held_reverse,
                      const struct sy_reverse_record *record, bool reverse_only, sy_takeover_done_fn done,
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
    job->tail_pending = p->tail_state[0] != '\0';
    job->reverse_only = reverse_only;
    job->record = *record;
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
