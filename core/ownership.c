/* What a node does as it wins and loses the ownership of a pair's synchronization (core/ownership.h): the
 * takeover chain — etcd's held keys and reverse record, then the failover's tail, then the takeover thread
 * (core/takeover.c) — and the opening, retiring and closing of the instances. Loop only. */
#include "core/ownership.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cluster_held.h"
#include "core/cluster_tail.h"
#include "core/election.h"
#include "core/fence_keeper.h"
#include "core/instance.h"
#include "core/log.h"
#include "core/state_file.h"
#include "core/switch.h"
#include "core/takeover.h"

/* After a restart the persisted epoch decides which write runs, whatever step a switch died at: the
 * write into the active side is stopped, the write out of it runs (unless paused, failed or waiting
 * for a failover's tail to be resolved). */
void sy_ownership_resolve_writes(struct sy_pair *p)
{
    const char *code;
    char msg[600];
    struct sy_instance *into_active = p->active_side == SY_SIDE_DR ? p->forward : p->reverse;
    struct sy_instance *out_of_active = p->active_side == SY_SIDE_DR ? p->reverse : p->forward;
    if (into_active && p->active_side == SY_SIDE_DR &&
        (sy_instance_state(into_active) == SY_INST_RUNNING || sy_instance_state(into_active) == SY_INST_RETRYING) &&
        sy_instance_stop_write(into_active, &code, msg, sizeof msg) == 0)
        sy_log_info("pair %s: dr side is active (epoch %llu): %s stops writing", p->cfg->name,
                    (unsigned long long)p->epoch, sy_instance_id(into_active));
    if (out_of_active == p->forward && out_of_active && sy_instance_state(out_of_active) == SY_INST_PAUSED &&
        strcmp(sy_instance_reason(out_of_active), "failover") == 0 && p->tail_state[0] == '\0') {
        /* a failover died before its flip: business is still active, the forward instance runs again */
        if (sy_instance_start(out_of_active, &code, msg, sizeof msg) == 0)
            sy_log_info("pair %s: the failover did not complete: %s runs again", p->cfg->name,
                        sy_instance_id(out_of_active));
        return;
    }
    if (out_of_active && sy_instance_state(out_of_active) == SY_INST_COLLECTING && p->tail_state[0] == '\0' &&
        sy_instance_start_write(out_of_active, &code, msg, sizeof msg) == 0)
        sy_log_info("pair %s: %s side is active (epoch %llu): %s writes", p->cfg->name, sy_side_name(p->active_side),
                    (unsigned long long)p->epoch, sy_instance_id(out_of_active));
}

/* Opens the pair's forward instance, and its reverse instance when `reverse` (outside a cluster: when one
 * was created on this node; a takeover decides from etcd's record). 0, or -1 after logging why. */
int sy_ownership_open(struct sy_pair *p, bool reverse)
{
    char err[1024];
    p->forward = sy_instance_open(p, SY_DIR_FORWARD, p->eng, err, sizeof err);
    if (p->forward == NULL) {
        sy_log_error("pair %s: forward instance: %s", p->cfg->name, err);
        return -1;
    }
    if (reverse) {
        p->reverse = sy_instance_open(p, SY_DIR_REVERSE, p->eng, err, sizeof err);
        if (p->reverse == NULL) {
            sy_log_error("pair %s: reverse instance: %s", p->cfg->name, err);
            return -1;
        }
    }
    return 0;
}

#define STEP_DOWN_SLACK_MS 250      /* the writers' connections are cut this long before the lease may end */
#define STEP_DOWN_MIN_GRACE_MS 100  /* ... but they always get this long to finish what they are at */
#define STEP_DOWN_MAX_GRACE_MS 2000 /* the usual grace, when the lease is far from ending */

/* When a stepping-down owner's busy modules are cut: 250 ms before etcd may end its lease, never sooner than
 * 100 ms from now, never later than the usual 2 s grace (a lease not stale: the key was lost, replaced or
 * names another node, or this node exits: 100 ms). */
static uint64_t step_down_by(const struct sy_pair *p)
{
    uint64_t now = sy_now_ms(), ends = sy_election_lease_ends_ms(p->election);
    uint64_t by = ends > now + STEP_DOWN_MIN_GRACE_MS + STEP_DOWN_SLACK_MS ? ends - STEP_DOWN_SLACK_MS
                                                                           : now + STEP_DOWN_MIN_GRACE_MS;
    return by > now + STEP_DOWN_MAX_GRACE_MS ? now + STEP_DOWN_MAX_GRACE_MS : by;
}

static void start_takeover(struct sy_pair *p);

/* The instances of a pair whose owner stepped down are closed once every thread that used them returned
 * (modules, lag and precheck threads, the fence keeper, a verify) and no switch uses them; a node that owns
 * the pair again then takes it over. Called when an instance's threads are done, every second
 * (on_owner_check) and when a verify ends. */
void sy_ownership_finish_close(struct sy_pair *p)
{
    if (!p->sync_closing || p->op != NULL || p->instance_users > 0 || p->tail_job || !sy_fence_keeper_done(p) ||
        !sy_instance_is_retired(p->forward) || !sy_instance_is_retired(p->reverse))
        return;
    sy_fence_keeper_stop(p);                       /* returned already: does not wait */
    sy_instance_close(p->reverse);                 /* their threads are done: does not wait */
    sy_instance_close(p->forward);
    p->forward = p->reverse = NULL;
    p->sync_open = p->sync_closing = false;
    bool again = sy_election_is_owner(p->election);
    sy_log_info("pair %s: instances closed on this node %llu ms after its step-down%s", p->cfg->name,
                (unsigned long long)(sy_now_ms() - p->closing_since_ms),
                again ? " (it owns the pair again: taking it over)" : " (not the owner)");
    if (again)
        start_takeover(p);
}

static void on_retired(void *arg, struct sy_instance *in)
{
    sy_ownership_finish_close(arg);
}

/* A node that is no longer the owner stops the instances at once without blocking the loop (several pairs
 * step down together: each gets its own deadline, none waits for another's threads or its fence keeper).
 * Their state stays on disk: a later takeover rebuilds it from the destination's checkpoint. Writers still
 * busy are cut (their transactions rolled back by the server) before etcd may expire this node's lease and
 * let a new owner write: the usual 2 s grace is longer than the third of the TTL left after a step-down. A
 * switch that still runs keeps the instance objects (its steps fail at once: core/switch.c stop_now) and
 * they are closed once it ended. */
static void close_instances(struct sy_pair *p)
{
    if (p->sync_closing) {
        sy_ownership_finish_close(p);
        return;
    }
    sy_fence_keeper_ask_stop(p);
    uint64_t by = step_down_by(p);
    p->sync_closing = true;
    p->closing_since_ms = sy_now_ms();
    p->closing_by = by;
    if (p->op != NULL)
        sy_log_error("pair %s: no longer the owner while a switch runs: its instances stop now and the switch "
                     "fails", p->cfg->name);
    if (p->reverse)
        sy_instance_retire(p->reverse, by, on_retired, p);
    if (p->forward)
        sy_instance_retire(p->forward, by, on_retired, p);
    sy_ownership_finish_close(p);
}

/* At exit: the instances are closed now, on this thread (the loop no longer runs, nor do the keepalives:
 * the same deadline as a step-down's). */
void sy_ownership_close_now(struct sy_pair *p)
{
    uint64_t by = step_down_by(p);
    if (p->sync_closing && p->closing_by < by)
        by = p->closing_by;
    sy_fence_keeper_ask_stop(p);
    sy_instance_stop_asking(p->reverse);
    sy_instance_stop_asking(p->forward);
    sy_instance_close_by(p->reverse, by);
    sy_instance_close_by(p->forward, by);
    sy_fence_keeper_stop(p);
    p->forward = p->reverse = NULL;
    p->sync_open = p->sync_closing = false;
}

#define TAKEOVER_WARN_MS 60000   /* a takeover failing again with the same error is logged this often */

/* A takeover (or a reverse instance's alone) failed: tried again every second, the error logged when it
 * changes, else every TAKEOVER_WARN_MS. */
static void takeover_failed(struct sy_pair *p, const char *err)
{
    char was[sizeof p->takeover_error];
    snprintf(was, sizeof was, "%s", p->takeover_error);
    snprintf(p->takeover_error, sizeof p->takeover_error, "%s", err);
    uint64_t now = sy_now_ms();
    p->takeover_failures++;
    if (strcmp(was, p->takeover_error) != 0)
        sy_log_warn("pair %s: takeover failed (tried again every second; the same error is logged again "
                    "every %d s): %s", p->cfg->name, TAKEOVER_WARN_MS / 1000, err);
    else if (now - p->takeover_warned_ms >= TAKEOVER_WARN_MS)
        sy_log_warn("pair %s: takeover still failing (%llu tries): %s", p->cfg->name,
                    (unsigned long long)p->takeover_failures, err);
    else
        return;
    p->takeover_warned_ms = now;
}

void sy_ownership_takeover_succeeded(struct sy_pair *p)
{
    if (p->takeover_failures > 0)
        sy_log_info("pair %s: takeover done after %llu failed tries", p->cfg->name,
                    (unsigned long long)p->takeover_failures);
    p->takeover_failures = 0;
    p->takeover_error[0] = '\0';
}

/* The reverse instance's takeover failed (its destination, business, may be down with the old owner's
 * site): the forward instance runs without it meanwhile, and it is taken over alone later. */
static void take_reverse_over_later(struct sy_pair *p, const char *err)
{
    char msg[sizeof p->takeover_error];
    snprintf(msg, sizeof msg, "the reverse instance is taken over later (the forward one runs): %.1100s",
             err);
    p->reverse_later = true;
    takeover_failed(p, msg);
}

static void on_takeover_done(void *arg, struct sy_pair *p, uint64_t owner_token,
                             const struct sy_takeover_result *r)
{
    p->taking_over = false;
    if (!sy_election_is_owner(p->election))
        return;                                  /* stepped down meanwhile */
    if (owner_token != sy_election_owner_token(p->election)) {
        /* lost and won again while it ran: another owner may have claimed the destinations in between
         * (its token above this one would fence this node's writers): claimed again with the new token */
        sy_log_info("pair %s: owner token changed during the takeover (%llu -> %llu): taken over again",
                    p->cfg->name, (unsigned long long)owner_token,
                    (unsigned long long)sy_election_owner_token(p->election));
        start_takeover(p);
        return;
    }
    if (r->rc != 0) {
        takeover_failed(p, r->err);
        return;
    }
    sy_ownership_takeover_succeeded(p);
    atomic_store(&p->fence_report.fenced, false);
    p->reverse_later = false;
    if (sy_ownership_open(p, r->reverse) != 0) {
        snprintf(p->takeover_error, sizeof p->takeover_error, "cannot open the instances (see the log)");
        sy_instance_close(p->forward);
        p->forward = NULL;
        return;
    }
    p->sync_open = true;
    if (!p->cut_off)
        sy_ownership_resolve_writes(p);                       /* else once the cluster's epoch is confirmed */
    if (sy_fence_keeper_start(p) != 0)
        sy_log_error("pair %s: cannot start the fence keeper", p->cfg->name);
    sy_log_info("pair %s: this node runs the synchronization", p->cfg->name);
    if (r->reverse_later)
        take_reverse_over_later(p, r->reverse_err);
}

/* The reverse instance taken over alone (reverse_later): opened while this node still runs the pair with
 * the same token and no switch runs (else tried again). */
static void on_reverse_takeover_done(void *arg, struct sy_pair *p, uint64_t owner_token,
                                     const struct sy_takeover_result *r)
{
    p->reverse_taking_over = false;
    if (!sy_election_is_owner(p->election) || !p->sync_open || p->sync_closing || p->op != NULL ||
        owner_token != sy_election_owner_token(p->election) || !p->reverse_later)
        return;                                   /* !reverse_later: terminated meanwhile */
    if (r->reverse_later) {
        take_reverse_over_later(p, r->reverse_err);
        return;
    }
    p->reverse_later = false;
    sy_ownership_takeover_succeeded(p);
    if (!r->reverse)
        return;                                   /* etcd no longer records one */
    char err[1024];
    p->reverse = sy_instance_open(p, SY_DIR_REVERSE, p->eng, err, sizeof err);
    if (p->reverse == NULL) {
        sy_log_error("pair %s: reverse instance: %s", p->cfg->name, err);
        take_reverse_over_later(p, err);
        return;
    }
    sy_log_info("pair %s: the reverse instance is taken over too", p->cfg->name);
    if (!p->cut_off)
        sy_ownership_resolve_writes(p);
}

/* A takeover's reads from etcd, in order: the held instances with the reverse instance's record
 * (core/cluster_held.h), then the failover's tail: the takeover keeps the instances as operators left them,
 * makes the reverse instance from its record, and adopts the tail. */
struct held_read {
    struct sy_pair *p;
    char forward[16], reverse[16];
    struct sy_reverse_record record;
};

static void on_tail_read(void *arg, json_t *reply, const char *err);

/* A takeover's etcd read answered after this node stepped down (or lost and won the pair again, with a new
 * token): it ends here, and starts again from the first read when this node owns the pair. */
static bool takeover_read_stale(struct sy_pair *p)
{
    if (sy_election_is_owner(p->election) && p->owner_token == sy_election_owner_token(p->election))
        return false;
    p->taking_over = false;
    if (sy_election_is_owner(p->election))
        start_takeover(p);
    return true;
}

static void on_held_read(void *arg, json_t *reply, const char *err)
{
    struct sy_pair *p = arg;
    if (takeover_read_stale(p))
        return;
    char fwd[16], rev[16];
    struct sy_reverse_record record;
    if (reply == NULL || sy_cluster_held_parse(reply, fwd, rev, &record) != 0) {
        char msg[600];        /* never guessed: the takeover is tried again */
        snprintf(msg, sizeof msg, "reading the paused and terminated instances and the reverse instance's "
                 "record of %s from etcd: %s", p->cfg->name,
                 reply == NULL ? err : "an answer that is not the read's");
        p->taking_over = false;
        takeover_failed(p, msg);
        return;
    }
    struct held_read *h = calloc(1, sizeof *h);
    if (h == NULL) {
        p->taking_over = false;
        takeover_failed(p, "out of memory");
        return;
    }
    h->p = p;
    snprintf(p->reverse_record, sizeof p->reverse_record, "%s", record.found != 0 ? record.text : "");
    snprintf(h->forward, sizeof h->forward, "%s", fwd);
    snprintf(h->reverse, sizeof h->reverse, "%s", rev);
    h->record = record;
    if (sy_cluster_tail_read(sy_election_etcd(p->election), p->cfg->name, on_tail_read, h) != 0) {
        free(h);
        p->taking_over = false;
        takeover_failed(p, "out of memory");
    }
}

/* A failover's tail kept in etcd (core/cluster_tail.h) is this node's now: pending (found anew once business
 * answers), the forward instance paused until it is resolved. None there: a tail this node still kept from an
 * earlier ownership was resolved by another owner since. */
static void adopt_tail(struct sy_pair *p, json_t *tail, char forward_held[16])
{
    char err[512];
    const char *at = json_string_value(json_object_get(tail, "failover_at"));
    if (tail != NULL && p->tail != NULL && json_object_get(p->tail, "resolved") != NULL && at != NULL &&
        strcmp(at, json_string_value(json_object_get(p->tail, "failover_at")) ?: "") == 0) {
        /* this node resolved that tail before and lost the pair before etcd forgot it: forgotten now */
        sy_log_info("pair %s: the tail of the failover of %s was resolved on this node (%s): etcd forgets it",
                    p->cfg->name, at, json_string_value(json_object_get(p->tail, "resolved")) ?: "?");
        json_decref(tail);
        p->tail_state[0] = '\0';
        p->tail_gen_recorded = p->tail_gen++;       /* sy_tail_record deletes it once the instances are open */
        return;
    }
    if (tail != NULL) {
        json_decref(p->tail);
        p->tail = tail;
        snprintf(p->tail_state, sizeof p->tail_state, "pending");
        if (forward_held[0] == '\0')                /* an operator's pause or terminate stays what it is */
            snprintf(forward_held, 16, "failover");
        sy_log_info("pair %s: the tail of the failover of %s (collected up to %s) is this node's to resolve: "
                    "the forward instance stays paused until `resolve-tail`", p->cfg->name,
                    json_string_value(json_object_get(tail, "failover_at")) ?: "?",
                    json_string_value(json_object_get(tail, "collected_position")) ?: "?");
    } else if (p->tail_state[0] != '\0') {
        sy_log_info("pair %s: its failover's tail was resolved by another owner", p->cfg->name);
        p->tail_state[0] = '\0';
    } else {
        return;
    }
    p->tail_gen_recorded = p->tail_gen;             /* etcd has it as it is now */
    if (sy_pair_save(p, err, sizeof err) != 0)
        sy_log_error("pair %s: %s", p->cfg->name, err);
}

static void on_tail_read(void *arg, json_t *reply, const char *err)
{
    struct held_read *h = arg;
    struct sy_pair *p = h->p;
    if (takeover_read_stale(p)) {
        free(h);
        return;
    }
    if (reply == NULL) {
        char msg[600];
        snprintf(msg, sizeof msg, "reading the failover tail of %s from etcd: %s", p->cfg->name, err);
        free(h);
        p->taking_over = false;
        takeover_failed(p, msg);
        return;
    }
    adopt_tail(p, sy_cluster_tail_parse(reply), h->forward);
    char e[512];
    int rc = sy_takeover_start(p, h->forward, h->reverse, &h->record, false, on_takeover_done, NULL, e,
                               sizeof e);
    if (rc != 0) {                                  /* as every other failure of the takeover's start */
        p->taking_over = false;
        takeover_failed(p, e);
    }
    free(h);
}

/* The held keys and the record again, for a reverse instance taken over alone. */
static void on_reverse_held_read(void *arg, json_t *reply, const char *err)
{
    struct sy_pair *p = arg;
    char fwd[16], rev[16], e[512];
    struct sy_reverse_record record;
    if (!sy_election_is_owner(p->election) || !p->sync_open || p->sync_closing ||
        p->owner_token != sy_election_owner_token(p->election)) {
        p->reverse_taking_over = false;
    } else if (reply == NULL || sy_cluster_held_parse(reply, fwd, rev, &record) != 0) {
        p->reverse_taking_over = false;
        take_reverse_over_later(p, reply == NULL ? err : "etcd's answer is not the read's");
    } else {
        snprintf(p->reverse_record, sizeof p->reverse_record, "%s", record.found != 0 ? record.text : "");
        if (sy_takeover_start(p, fwd, rev, &record, true, on_reverse_takeover_done, NULL, e, sizeof e) != 0) {
            p->reverse_taking_over = false;
            take_reverse_over_later(p, e);
        }
    }
}

static void start_reverse_takeover(struct sy_pair *p)
{
    if (!p->reverse_later || p->reverse_taking_over || p->taking_over || !p->sync_open || p->sync_closing ||
        p->op != NULL || p->cut_off || p->reverse_writing)
        return;
    p->reverse_taking_over = true;
    if (sy_cluster_held_read(sy_election_etcd(p->election), p->cfg->name, on_reverse_held_read, p) != 0) {
        p->reverse_taking_over = false;
        take_reverse_over_later(p, "out of memory");
    }
}

static void start_takeover(struct sy_pair *p)
{
    /* cut off: the active side is not confirmed yet; a reverse instance's takeover alone still runs: it
     * writes the state a new takeover would */
    if (p->taking_over || p->reverse_taking_over || p->sync_open || p->cut_off)
        return;
    p->taking_over = true;
    p->owner_token = sy_election_owner_token(p->election);
    if (sy_cluster_held_read(sy_election_etcd(p->election), p->cfg->name, on_held_read, p) != 0) {
        p->taking_over = false;
        snprintf(p->takeover_error, sizeof p->takeover_error, "out of memory");
    }
}

/* The election of a pair's owner changed this node's part. */
void sy_ownership_changed(void *arg, struct sy_pair *p, bool owner)
{
    if (owner)
        start_takeover(p);
    else if (p->sync_open)
        close_instances(p);
}

/* Every second: a pair this node owns is taken over (again, after a failed try), its reverse instance alone
 * when that was left for later; a pair it no longer owns has its instances closed. */
void sy_ownership_check(struct sy_pair *p)
{
    if (p->election == NULL)
        return;
    if (p->sync_closing)
        sy_ownership_finish_close(p);               /* e.g. once a switch that used them ended */
    if (sy_election_is_owner(p->election)) {
        start_takeover(p);
        start_reverse_takeover(p);
    } else if (p->sync_open) {
        close_instances(p);
    }
}
