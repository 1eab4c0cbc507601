/* Switchover, switchback and failover (ARCHITECTURE.md), written once for every engine.
 *
 * A switch runs on its own thread (fencing and positions are blocking database calls); whatever
 * touches sessions, instances or the pair runs on the loop through loop_call(), so the algorithm
 * reads top to bottom:
 *
 *   switchover / switchback (from = active side, to = the other):
 *     1 catch up   the write into `to` is within switchover_max_lag_ms of `from`'s position
 *     2 warm       every session gets a connection on `to` with its state (proxy)
 *     3 hold       new requests wait; open transactions run to their end, rolled back after
 *                  txn_drain_ms; user variables copied once sessions are quiet
 *     4 fence      `from` fenced (MariaDB: read_only; waits for commits in flight), its final
 *                  position; drain: the write's low-watermark reaches it; the ack ledger must be
 *                  inside what was drained
 *     5 flip       stop that write, unfence `to`, persist the new epoch, swap every session
 *     6 start      the write of the other instance; release
 *   Any failure before the epoch is persisted rolls back: restart the write, unfence `from`, drop the
 *   warm connections, release on the old side. The hold (3-6) is bounded by max_hold_ms.
 *
 *   failover: the business side is dead: apply what the forward spool holds, pause the forward
 *   instance (its collector must not pick up the unreplicated tail when the business DB returns),
 *   hold, warm on DR, flip, release; the tail is computed once the business DB answers again
 *   (core/tail.c) and the reverse write starts after `resolve-tail`. A forward instance an operator
 *   paused runs only to apply its spool: a rolled-back failover pauses it again.
 *
 * In a cluster (p->cswitch; docs/cluster.md, core/cluster_switch.h) the coordinator publishes the hold to
 * every node after step 2, waits for their acknowledgements after step 3, checks their ack ledgers in
 * step 4 and moves the cluster's epoch by compare-and-swap before its own in step 5; a missing
 * acknowledgement rolls back everywhere. A participant (SW_PARTICIPATE) runs steps 2-3, acknowledges
 * with its ack ledger and flips when the cluster's epoch moves (or releases on abort).
 *
 * Stopping a write (or pausing the forward instance) only begins on the loop; this thread then waits
 * until the instance is no longer `stopping` (wait_settled): a module thread stuck on a lock or on a
 * black-holed server never stalls the loop, and nothing after the stop runs before its threads are
 * joined.
 *
 * Failpoints (SY_FAILPOINT) at each step let tests kill the daemon there; the fence keeper and the
 * persisted epoch resolve it on restart. */
#include "core/switch.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/admin.h"
#include "core/failpoint.h"
#include "core/engine.h"
#include "core/instance.h"
#include "core/log.h"
#include "core/shared_epoch.h"
#include "core/cluster_switch.h"
#include "core/cluster_tail.h"
#include "core/election.h"
#include "core/tail.h"

#define SW_WARM_TIMEOUT_MS 10000  /* step 2 (before the hold: nobody waits on it) */
#define SW_ALIVE_TIMEOUT_MS 1500  /* failover: does the business DB still answer? */

static int switch_shutdown; /* atomic: set once by the loop at shutdown, read by switch threads */

void sy_switch_shutdown(void)
{
    __atomic_store_n(&switch_shutdown, 1, __ATOMIC_RELEASE);
}

static bool shutting_down(void)
{
    return __atomic_load_n(&switch_shutdown, __ATOMIC_ACQUIRE) != 0;
}

/* SW_PARTICIPATE: this node's part in a switch another node coordinates (a cluster; not counted in the
 * switch metrics, which are the coordinator's). */
enum sw_kind { SW_SWITCHOVER, SW_SWITCHBACK, SW_FAILOVER, SW_PARTICIPATE };
static const char *const kind_names[] = { "switchover", "switchback", "failover", "cluster switch" };
const char *const sy_switch_kind_names[SY_SWITCH_KINDS] = { "switchover", "switchback", "failover" };
enum sw_outcome { SW_DONE, SW_REFUSED, SW_ROLLED_BACK };
const char *const sy_switch_outcome_names[SY_SWITCH_OUTCOMES] = { "done", "refused", "rolled_back" };
const double sy_switch_pause_buckets_s[SY_PAUSE_BUCKETS] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                             0.5,   1,    2.5,   5,    10,  30 };

/* Keeps entry (owned) at the head of the pair's switch_history, at most SY_SWITCH_HISTORY long. */
static void remember_switch(struct sy_pair *p, json_t *entry)
{
    char at[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(at, sizeof at, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_object_set_new(entry, "at", json_string(at));
    if (p->switch_history == NULL)
        p->switch_history = json_array();
    json_array_insert_new(p->switch_history, 0, entry);
    while (json_array_size(p->switch_history) > SY_SWITCH_HISTORY)
        json_array_remove(p->switch_history, SY_SWITCH_HISTORY);
}

static void count_switch(struct sy_pair *p, enum sw_kind kind, enum sw_outcome outcome, uint64_t pause_ms)
{
    struct sy_switch_stats *st = &p->switch_stats;
    if (kind >= SY_SWITCH_KINDS)
        return;
    st->outcomes[kind][outcome]++;
    if (outcome != SW_DONE)
        return;
    for (size_t i = 0; i < SY_PAUSE_BUCKETS; i++)
        if ((double)pause_ms / 1000.0 <= sy_switch_pause_buckets_s[i])
            st->pause_le[kind][i]++;
    st->pause_count[kind]++;
    st->pause_sum_ms[kind] += pause_ms;
}

struct sy_switch {
    struct sy_pair *p;
    struct sy_admin_req *req;
    enum sw_kind kind;
    bool force;
    enum sy_side from, to;
    struct sy_instance *draining;   /* writes into `from`'s peer now; its write stops at the flip */
    struct sy_instance *starting;   /* writes into `from` after the flip (NULL: none) */
    /* loop calls */
    struct event *call_ev, *done_ev;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    void (*call_fn)(struct sy_switch *);
    bool call_done;
    bool call_async;                /* call_fn's work ends in a callback, which calls call_end() */
    /* outcome */
    const char *code;               /* NULL = success */
    char msg[1200];
    json_t *detail;                 /* extra error fields */
    /* progress */
    bool held, fenced, to_unfenced, write_stopped, flipped;
    bool forward_held;              /* failover: the forward instance was paused when it began (an operator's
                                       pause, kept in etcd in a cluster): it runs only to apply its spool and
                                       is left paused whatever the outcome (a rollback pauses it again) */
    uint64_t t_start, t_step, t_hold, t_release;
    char final_pos[1024], drained[1024], ledger[1024];
    size_t aborted, moved, forced_closed;
    uint64_t moved_elsewhere, aborted_elsewhere; /* cluster: by the other nodes (their "flipped" acks) */
    struct sy_switch_progress prog;
    json_t *list;                   /* result of the last list-returning loop call */
    json_t *steps;                  /* per-step milliseconds */
    const char *last_step;          /* static name of the last step done ("" before); atomic: status reads it */
    int call_rc;
    char call_err[600];
    /* cluster (p->cswitch): the switch every node takes part in */
    char cid[96];                   /* the switch's id (participant: the coordinator's) */
    uint64_t from_epoch;            /* the epoch it switches from */
    bool cbegun;                    /* coordinator: lock taken, hold published */
    bool acked;                     /* participant: its "held" acknowledgement is in etcd */
    json_t *ledgers;                /* coordinator: the participants' ack ledgers */
    json_t *tail;                   /* failover: the tail's record, made before the epoch moves */
    char cmsg[600];                 /* the last cluster step's text */
    const char *outcome;            /* participant: "flip", "abort", "gone", NULL = none yet */
    char outcome_buf[16];           /* the coordinator's phase, copied: the loop rewrites its own */
    bool failover_hold;             /* participant: the coordinator fails over (the old side is dead) */
};

/* A failover, or a node's part in one: the old side is dead, no transaction can end there. */
static bool is_failover(const struct sy_switch *sw)
{
    return sw->kind == SW_FAILOVER || sw->failover_hold;
}

static uint64_t now_ms(void)
{
    return sy_now_ms();
}

static const struct sy_endpoint *side_ep(const struct sy_pair *p, enum sy_side s)
{
    return s == SY_SIDE_DR ? &p->cfg->dr : &p->cfg->business;
}

/* The node stopped owning the pair during the switch (core/daemon.c close_instances): its instances retire. */
static bool stepped_down(const struct sy_switch *sw)
{
    return sy_instance_is_retiring(sw->draining) || sy_instance_is_retiring(sw->starting);
}

/* Whether a waiting step must end now: the daemon shuts down, or the node stepped down. */
static bool stop_now(const struct sy_switch *sw)
{
    return shutting_down() || stepped_down(sw);
}

static int fail(struct sy_switch *sw, const char *code, const char *fmt, ...) SY_PRINTF(3, 4);
static int fail(struct sy_switch *sw, const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sw->msg, sizeof sw->msg, fmt, ap);
    va_end(ap);
    sw->code = code;
    if (stepped_down(sw)) {
        /* the node stepped down as the pair's owner meanwhile (core/daemon.c close_instances): its instances
         * stopped for good here, whatever the step that noticed says */
        char was[sizeof sw->msg];
        snprintf(was, sizeof was, "%s", sw->msg);
        snprintf(sw->msg, sizeof sw->msg, "this node stopped owning %s during the switch (its instances are "
                 "closing): rolled back; run it again (it goes to the new owner) [%s]", sw->p->cfg->name, was);
        sw->code = "owner_lost";
    }
    return -1;
}

/* Records how long the step that ends now took. */
static void step_done(struct sy_switch *sw, const char *name)
{
    uint64_t t = now_ms();
    json_object_set_new(sw->steps, name, json_integer((json_int_t)(t - sw->t_step)));
    sw->t_step = t;
    __atomic_store_n(&sw->last_step, name, __ATOMIC_RELEASE);
}

json_t *sy_switch_progress_json(const struct sy_switch *sw)
{
    const char *step = __atomic_load_n(&sw->last_step, __ATOMIC_ACQUIRE);
    char name[32];
    snprintf(name, sizeof name, "%s", step ? step : "");
    char *ms = strstr(name, "_ms");
    if (ms)
        *ms = '\0';
    return json_pack("{s:s,s:s,s:I}", "operation", kind_names[sw->kind], "last_step", name, "elapsed_ms",
                     (json_int_t)(now_ms() - sw->t_start));
}

/* ---- running on the loop --------------------------------------------------------------------- */

static void call_end(struct sy_switch *sw)
{
    pthread_mutex_lock(&sw->mu);
    sw->call_done = true;
    pthread_cond_signal(&sw->cv);
    pthread_mutex_unlock(&sw->mu);
}

static void on_call(evutil_socket_t fd, short what, void *arg)
{
    struct sy_switch *sw = arg;
    sw->call_fn(sw);
    if (sw->call_async)
        return;                     /* its callback ends the call */
    pthread_mutex_lock(&sw->mu);
    sw->call_done = true;
    pthread_cond_signal(&sw->cv);
    pthread_mutex_unlock(&sw->mu);
}

/* Runs fn(sw) on the loop thread and waits for it (async: until what it started calls call_end()). */
static void loop_call_until(struct sy_switch *sw, void (*fn)(struct sy_switch *), bool async)
{
    pthread_mutex_lock(&sw->mu);
    sw->call_fn = fn;
    sw->call_async = async;
    sw->call_done = false;
    pthread_mutex_unlock(&sw->mu);
    event_active(sw->call_ev, 0, 0);
    pthread_mutex_lock(&sw->mu);
    while (!sw->call_done)
        pthread_cond_wait(&sw->cv, &sw->mu);
    pthread_mutex_unlock(&sw->mu);
}

static void loop_call(struct sy_switch *sw, void (*fn)(struct sy_switch *))
{
    loop_call_until(sw, fn, false);
}

static void do_unmovable(struct sy_switch *sw)
{
    json_decref(sw->list);
    sw->list = sw->p->proto->switch_unmovable(sw->p->proto_state);
}

static void do_failures(struct sy_switch *sw)
{
    json_decref(sw->list);
    sw->list = sw->p->proto->switch_failures(sw->p->proto_state);
}

static void do_warm(struct sy_switch *sw)
{
    struct sy_pair *p = sw->p;
    p->proto->switch_warm(p->proto_state, sw->to, !is_failover(sw));
    p->proto->switch_progress(p->proto_state, sw->to, &sw->prog);
}

static void do_hold(struct sy_switch *sw)
{
    sy_pair_hold_for_switch(sw->p);
    sw->held = true;
    sw->t_hold = now_ms();
}

static void do_close_unmovable(struct sy_switch *sw)
{
    sw->forced_closed += sw->p->proto->switch_close_unmovable(sw->p->proto_state);
}

static void do_abort(struct sy_switch *sw)
{
    sw->aborted += sw->p->proto->switch_abort_transactions(sw->p->proto_state);
}

static void do_ledger(struct sy_switch *sw)
{
    sw->p->proto->ack_ledger(sw->p->proto_state, sw->from, sw->ledger, sizeof sw->ledger);
}

static void do_stop_write(struct sy_switch *sw)
{
    const char *code = "bad_state";
    sw->call_rc = sy_instance_stop_write(sw->draining, &code, sw->call_err, sizeof sw->call_err);
    if (sw->call_rc == 0)
        sw->write_stopped = true;
}

static void do_restart_write(struct sy_switch *sw)
{
    const char *code = "bad_state";
    int rc = sy_instance_state(sw->draining) == SY_INST_PAUSED
                 ? sy_instance_start(sw->draining, &code, sw->call_err, sizeof sw->call_err)
                 : sy_instance_start_write(sw->draining, &code, sw->call_err, sizeof sw->call_err);
    if (rc != 0)
        sy_log_error("pair %s: rollback: cannot restart %s's write: %s", sw->p->cfg->name,
                     sy_instance_id(sw->draining), sw->call_err);
    sw->write_stopped = false;
}

static void do_resume_forward(struct sy_switch *sw)
{
    const char *code = "bad_state";
    enum sy_instance_state st = sy_instance_state(sw->draining);
    sw->call_rc = 0;
    if ((st == SY_INST_FAILED || st == SY_INST_PAUSED) &&
        (sw->call_rc = sy_instance_start(sw->draining, &code, sw->call_err, sizeof sw->call_err)) != 0)
        sy_log_warn("pair %s: failover: cannot restart %s to apply its spool: %s", sw->p->cfg->name,
                    sy_instance_id(sw->draining), sw->call_err);
}

static void do_last_error(struct sy_switch *sw)
{
    snprintf(sw->call_err, sizeof sw->call_err, "%s", sy_instance_last_error(sw->draining));
}

static void do_pause_forward(struct sy_switch *sw)
{
    const char *code = "bad_state";
    sw->call_rc = 0;
    if (sy_instance_state(sw->draining) != SY_INST_PAUSED)
        sw->call_rc = sy_instance_pause(sw->draining, &code, sw->call_err, sizeof sw->call_err);
    if (sw->call_rc == 0) {
        sw->write_stopped = true;
        if (!sw->forward_held)                             /* a restart before the flip resumes it ... */
            sy_instance_set_reason(sw->draining, "failover"); /* ... unless an operator had paused it */
    }
}

static void on_epoch_cas(void *arg, int rc, const char *err)
{
    struct sy_switch *sw = arg;
    sw->call_rc = rc;
    snprintf(sw->call_err, sizeof sw->call_err, "%s", err ? err : "");
    call_end(sw);
}

/* In a cluster: the cluster's epoch moves first, by compare-and-swap (asynchronous: ends in on_epoch_cas). */
/* In a cluster the epoch moves only while this node owns the pair, and a failover's tail record is put with
 * it (core/cluster_tail.h): the record exists exactly when the failover moved the epoch. */
static void do_epoch_cas(struct sy_switch *sw)
{
    struct sy_pair *p = sw->p;
    uint64_t token = p->election != NULL ? sy_election_owner_token(p->election) : 0;
    char key[300];
    sy_cluster_tail_key(key, sizeof key, p->cfg->name);
    json_t *rec = sw->tail != NULL && p->election != NULL
                      ? sy_cluster_tail_value(sw->tail, sy_election_node(p->election)) : NULL;
    if (p->election != NULL && token == 0) {
        on_epoch_cas(sw, -1, "this node no longer owns the pair: the cluster's epoch was not moved");
        json_decref(rec);
        return;
    }
    sy_shared_epoch_cas(p->shared, p->epoch + 1, sw->to, token, rec ? key : NULL, rec, on_epoch_cas, sw);
    json_decref(rec);
}

/* The flip itself: persisted epoch first, then every session. Caller holds fence_lock. */
static void do_flip(struct sy_switch *sw)
{
    struct sy_pair *p = sw->p;
    if (sw->kind == SW_FAILOVER) {
        snprintf(p->tail_state, sizeof p->tail_state, "pending");
        json_decref(p->tail);
        json_t *pub = sy_cluster_tail_public(sw->tail);    /* the collector's file stays where it is here */
        p->tail = json_deep_copy(pub);
        json_decref(pub);
        if (p->shared != NULL)                      /* etcd has it: put with the epoch */
            p->tail_gen_recorded = ++p->tail_gen;
    }
    if (sy_failpoint_fails("switch_fail_persist_epoch")) { /* on the loop while the switch thread waits */
        sw->call_rc = -1;
        snprintf(sw->call_err, sizeof sw->call_err, "failpoint switch_fail_persist_epoch");
    } else {
        sw->call_rc = sy_pair_set_active(p, sw->to, sw->call_err, sizeof sw->call_err);
    }
    if (sw->call_rc != 0) {
        if (sw->kind == SW_FAILOVER)
            p->tail_state[0] = '\0';
        return;
    }
    sw->flipped = true;
    sw->moved = p->proto->switch_flip(p->proto_state, sw->to);
}

static void do_start_and_release(struct sy_switch *sw)
{
    struct sy_pair *p = sw->p;
    if (sw->starting != NULL && p->tail_state[0] == '\0') {
        const char *code = "bad_state";
        char msg[600];
        if (sy_instance_start_write(sw->starting, &code, msg, sizeof msg) != 0)
            sy_log_error("pair %s: %s: %s", p->cfg->name, kind_names[sw->kind], msg);
    }
    sy_pair_release(p, kind_names[sw->kind]);
    sw->t_release = now_ms();
    sw->held = false;
}

static void do_unwarm_release(struct sy_switch *sw)
{
    struct sy_pair *p = sw->p;
    p->proto->switch_unwarm(p->proto_state);
    if (sw->held) {
        sy_pair_release(p, "switch rolled back");
        sw->t_release = now_ms();
        sw->held = false;
    }
}

/* ---- waiting on positions (switch thread) ---------------------------------------------------- */

/* Until `in`'s stopped module threads are joined (the instance leaves `stopping`): bounded by the
 * instance's stop grace plus a client call's own timeout at worst (a connect in progress is not cut). */
static void wait_settled(struct sy_switch *sw, struct sy_instance *in)
{
    uint64_t t0 = now_ms(), next_note = t0 + 5000;
    for (;;) {
        struct sy_instance_progress pr;
        sy_instance_progress(in, &pr);
        if (pr.state != SY_INST_STOPPING)
            break;
        if (now_ms() >= next_note) {
            sy_log_warn("pair %s: %s: still waiting for %s to stop (%llu ms)", sw->p->cfg->name, kind_names[sw->kind],
                        sy_instance_id(in), (unsigned long long)(now_ms() - t0));
            next_note += 5000;
        }
        usleep(1000);
    }
    if (now_ms() - t0 >= 100)
        sy_log_info("pair %s: %s: %s stopped after %llu ms", sw->p->cfg->name, kind_names[sw->kind],
                    sy_instance_id(in), (unsigned long long)(now_ms() - t0));
}

/* Whether `in`'s write reaches `want` before deadline (monotonic ms); polls 1 ms apart up to 8 ms. */
static bool write_reaches(struct sy_instance *in, const char *want, uint64_t deadline)
{
    return sy_instance_write_reaches(in, want, deadline, 1, 8, &switch_shutdown);
}

static uint64_t hold_deadline(const struct sy_switch *sw)
{
    return sw->t_hold + (uint64_t)sw->p->cfg->max_hold_ms;
}

/* ---- the steps ----------------------------------------------------------------------------------- */

static int catch_up(struct sy_switch *sw)
{
    const struct sy_pair_cfg *cfg = sw->p->cfg;
    uint64_t deadline = now_ms() + (uint64_t)cfg->drain_timeout_ms;
    char pos[1024], err[512];
    for (;;) {
        struct sy_instance_progress pr;
        sy_instance_progress(sw->draining, &pr);
        if (stepped_down(sw))
            return fail(sw, "owner_lost", "no longer the owner");
        if (pr.state != SY_INST_RUNNING)
            return fail(sw, "bad_state", "%s is %s, not running: %s", sy_instance_id(sw->draining),
                        sy_instance_state_name(pr.state), pr.error[0] ? pr.error : "start it first");
        if (sw->p->eng->position->current(cfg, side_ep(sw->p, sw->from), pos, sizeof pos, err, sizeof err) != 0)
            return fail(sw, "bad_state", "cannot read the %s position: %s", sy_side_name(sw->from), err);
        uint64_t read_at = now_ms();
        if (write_reaches(sw->draining, pos, read_at + (uint64_t)cfg->switchover_max_lag_ms)) {
            json_object_set_new(sw->steps, "catch_up_lag_ms", json_integer((json_int_t)(now_ms() - read_at)));
            return 0;
        }
        if (now_ms() >= deadline || stop_now(sw))
            return fail(sw, "lag_too_high",
                        "%s is still more than switchover_max_lag_ms=%d ms behind the %s side after "
                        "drain_timeout_ms=%d ms (applied %s, %s at %s)",
                        sy_instance_id(sw->draining), cfg->switchover_max_lag_ms, sy_side_name(sw->from),
                        cfg->drain_timeout_ms, pr.applied, sy_side_name(sw->from), pos);
    }
}

static int refuse_unmovable(struct sy_switch *sw)
{
    loop_call(sw, do_unmovable);
    if (json_array_size(sw->list) == 0 || sw->force)
        return 0;
    json_decref(sw->detail);
    sw->detail = json_pack("{s:O}", "sessions", sw->list);
    json_t *ids = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(sw->list, i, it)
        json_array_append(ids, json_object_get(it, "id"));
    json_object_set_new(sw->detail, "ids", ids);
    return fail(sw, "unmovable_sessions",
                "%zu session(s) cannot move to the %s side (temporary tables, locks, XA or cursors): see "
                "`switchyardctl clients %s`; --force closes them",
                json_array_size(sw->list), sy_side_name(sw->to), sw->p->cfg->name);
}

static int refuse_warm_failures(struct sy_switch *sw)
{
    loop_call(sw, do_failures);
    json_decref(sw->detail);
    sw->detail = json_pack("{s:O}", "sessions", sw->list);
    json_t *first = json_array_get(sw->list, 0);
    return fail(sw, "unmovable_sessions", "%zu session(s) cannot be prepared on the %s side (first: %s)",
                json_array_size(sw->list), sy_side_name(sw->to),
                first ? json_string_value(json_object_get(first, "error")) : "?");
}

static int warm(struct sy_switch *sw)
{
    if (refuse_unmovable(sw) != 0)
        return -1;
    uint64_t deadline = now_ms() + SW_WARM_TIMEOUT_MS;
    for (;;) {
        loop_call(sw, do_warm);
        if (sw->prog.warm_failed > 0)
            return refuse_warm_failures(sw);
        if (sw->prog.not_ready == 0)
            return 0;
        if (now_ms() >= deadline || stop_now(sw))
            return fail(sw, "hold_timeout", "%zu session(s) still have no connection on the %s side after %d ms",
                        sw->prog.not_ready, sy_side_name(sw->to), SW_WARM_TIMEOUT_MS);
        usleep(1000);
    }
}

/* Step 3 after the hold: until every session is quiet, outside a transaction and prepared. */
static int quiesce(struct sy_switch *sw)
{
    const struct sy_pair_cfg *cfg = sw->p->cfg;
    uint64_t abort_at = sw->t_hold + (uint64_t)(is_failover(sw) ? 0 : cfg->txn_drain_ms);
    for (;;) {
        if (!is_failover(sw) && refuse_unmovable(sw) != 0)
            return -1;
        loop_call(sw, do_warm);
        if (sw->prog.in_transaction > 0 && now_ms() >= abort_at)
            loop_call(sw, do_abort);
        if (sw->prog.warm_failed > 0)
            return refuse_warm_failures(sw);
        if (sw->prog.in_transaction == 0 && sw->prog.busy == 0 && sw->prog.not_ready == 0 &&
            sw->prog.state_pending == 0)
            return 0;
        if (now_ms() >= hold_deadline(sw) || stop_now(sw)) {
            if (is_failover(sw))
                return 0; /* sessions stuck on the dead side get an error at the flip */
            return fail(sw, "hold_timeout",
                        "sessions did not settle within max_hold_ms=%d ms (%zu in a transaction, %zu busy, %zu "
                        "not prepared)",
                        cfg->max_hold_ms, sw->prog.in_transaction, sw->prog.busy, sw->prog.not_ready);
        }
        usleep(1000);
    }
}

static int fence_and_drain(struct sy_switch *sw)
{
    struct sy_pair *p = sw->p;
    char err[512];
    if (stepped_down(sw))                           /* a node that lost the pair touches no database */
        return fail(sw, "owner_lost", "no longer the owner");
    uint64_t left = hold_deadline(sw) > now_ms() ? hold_deadline(sw) - now_ms() : 1;
    if (p->eng->failover->fence(p->cfg, side_ep(p, sw->from), true, (int)left, sw->final_pos, sizeof sw->final_pos, err,
                       sizeof err) != 0)
        return fail(sw, "fence_failed", "cannot fence the %s side: %s", sy_side_name(sw->from), err);
    sw->fenced = true;
    step_done(sw, "fence_ms");
    sy_failpoint("switch_after_fence");
    if (sy_failpoint_fails("switch_fail_after_fence"))
        return fail(sw, "internal", "failpoint switch_fail_after_fence");
    uint64_t deadline = now_ms() + (uint64_t)p->cfg->drain_timeout_ms;
    if (deadline > hold_deadline(sw))
        deadline = hold_deadline(sw);
    if (!write_reaches(sw->draining, sw->final_pos, deadline)) {
        struct sy_instance_progress pr;
        sy_instance_progress(sw->draining, &pr);
        return fail(sw, "drain_timeout",
                    "%s did not apply up to the %s side's final position %s in time (drain_timeout_ms=%d, "
                    "max_hold_ms=%d): applied %s",
                    sy_instance_id(sw->draining), sy_side_name(sw->from), sw->final_pos, p->cfg->drain_timeout_ms,
                    p->cfg->max_hold_ms, pr.applied);
    }
    struct sy_instance_progress pr;
    sy_instance_progress(sw->draining, &pr);
    snprintf(sw->drained, sizeof sw->drained, "%s", pr.applied);
    step_done(sw, "drain_ms");
    loop_call(sw, do_ledger);
    if (sw->ledger[0] != '\0' && !p->eng->position->covers(sw->drained, sw->ledger))
        return fail(sw, "ledger_ahead_of_drain",
                    "clients were acknowledged %s but only %s was drained to the %s side: refusing to flip",
                    sw->ledger, sw->drained, sy_side_name(sw->to));
    json_t *l;
    size_t i;
    json_array_foreach(sw->ledgers, i, l) {         /* the other nodes' clients too */
        const char *pos = json_string_value(l);
        if (pos != NULL && pos[0] != '\0' && !p->eng->position->covers(sw->drained, pos))
            return fail(sw, "ledger_ahead_of_drain",
                        "clients of another node were acknowledged %s but only %s was drained to the %s side: "
                        "refusing to flip", pos, sw->drained, sy_side_name(sw->to));
    }
    sy_failpoint("switch_after_drain");
    return 0;
}

/* A failover's ack ledger: this node's merged with every other node's (their "held" acknowledgements), so
 * that the tail counts as acknowledged what the clients of any node were told. */
static void merge_ledgers(struct sy_switch *sw)
{
    const struct sy_proxy_protocol *proto = sw->p->proto;
    json_t *l;
    size_t i;
    if (proto->ack_ledger_merge == NULL)
        return;
    json_array_foreach(sw->ledgers, i, l) {
        const char *other = json_string_value(l);
        if (other == NULL || other[0] == '\0')
            continue;
        if (sw->ledger[0] == '\0')
            snprintf(sw->ledger, sizeof sw->ledger, "%s", other);
        else
            proto->ack_ledger_merge(sw->ledger, sizeof sw->ledger, other);
    }
}

/* Step 5: nothing before the persisted epoch is irreversible. */
static int flip(struct sy_switch *sw)
{
    struct sy_pair *p = sw->p;
    char err[512];
    if (stepped_down(sw))
        return fail(sw, "owner_lost", "no longer the owner");
    loop_call(sw, sw->kind == SW_FAILOVER ? do_pause_forward : do_stop_write);
    if (sw->call_rc != 0)
        return fail(sw, "bad_state", "cannot stop %s's write: %s", sy_instance_id(sw->draining), sw->call_err);
    wait_settled(sw, sw->draining); /* its writer is gone before the other side is unfenced */
    sy_failpoint("switch_after_stop_write");
    pthread_mutex_lock(&p->fence_lock);
    if (p->eng->failover->fence(p->cfg, side_ep(p, sw->to), false, 2000, NULL, 0, err, sizeof err) != 0) {
        pthread_mutex_unlock(&p->fence_lock);
        return fail(sw, "fence_failed", "cannot unfence the %s side: %s", sy_side_name(sw->to), err);
    }
    sw->to_unfenced = true;
    sy_failpoint("switch_after_unfence");
    if (sy_failpoint_fails("switch_fail_after_unfence")) {
        pthread_mutex_unlock(&p->fence_lock);
        return fail(sw, "internal", "failpoint switch_fail_after_unfence");
    }
    if (sw->kind == SW_FAILOVER) {                  /* the tail starts after what the collector spooled */
        struct sy_instance_progress fw;
        sy_instance_progress(sw->draining, &fw);
        time_t t = time(NULL);
        char when[32];
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
        merge_ledgers(sw);
        json_decref(sw->tail);
        sw->tail = json_pack("{s:s,s:s,s:s}", "collected_position", fw.collected, "ack_ledger_position", sw->ledger,
                             "failover_at", when);
        if (p->shared != NULL) {                    /* the next owner's tail read needs it too */
            char dir[1200];
            sy_instance_dir(p, SY_DIR_FORWARD, dir, sizeof dir);
            sy_cluster_tail_collector_attach(sw->tail, dir, p->cfg->name);
        }
    }
    if (p->shared != NULL) {
        loop_call_until(sw, do_epoch_cas, true);
        if (sw->call_rc != 0) {
            pthread_mutex_unlock(&p->fence_lock);
            return fail(sw, "bad_state", "%s", sw->call_err);
        }
        sy_failpoint("switch_after_epoch_cas");
    }
    loop_call(sw, do_flip);
    pthread_mutex_unlock(&p->fence_lock);
    if (sw->call_rc != 0)
        return fail(sw, "internal", "cannot persist the new epoch: %s", sw->call_err);
    step_done(sw, "flip_ms");
    sy_failpoint("switch_after_flip");
    return 0;
}

static void cluster_end(struct sy_switch *sw);
static void cluster_rollback(struct sy_switch *sw);

/* Undoes what was done before the flip. */
static void rollback(struct sy_switch *sw)
{
    struct sy_pair *p = sw->p;
    char err[512];
    if (sw->flipped) {
        cluster_end(sw);                            /* the epoch moved: the others apply it */
        return;
    }
    sy_log_warn("pair %s: %s refused (%s): rolling back", p->cfg->name, kind_names[sw->kind], sw->code);
    cluster_rollback(sw);
    if (sw->forward_held) {
        /* the operator's pause outlives the failover that ran the instance to drain its spool: what the
         * operator (and, in a cluster, etcd for the next owner: core/cluster_held.h) left it in */
        wait_settled(sw, sw->draining);
        loop_call(sw, do_pause_forward);
        if (sw->call_rc != 0 && !sy_instance_is_retiring(sw->draining))   /* stepped down: closing, not running */
            sy_log_error("pair %s: rollback: cannot pause %s again (an operator had paused it): %s", p->cfg->name,
                         sy_instance_id(sw->draining), sw->call_err);
        wait_settled(sw, sw->draining);
    } else if (sw->write_stopped) {
        wait_settled(sw, sw->draining);
        loop_call(sw, do_restart_write);
    }
    if (sw->to_unfenced && p->cfg->fence_passive &&
        p->eng->failover->fence(p->cfg, side_ep(p, sw->to), true, 2000, NULL, 0, err, sizeof err) != 0)
        sy_log_error("pair %s: rollback: cannot fence the %s side again: %s (the fence keeper retries)",
                     p->cfg->name, sy_side_name(sw->to), err);
    for (int i = 0; sw->fenced && i < 3; i++) {
        if (p->eng->failover->fence(p->cfg, side_ep(p, sw->from), false, 2000, NULL, 0, err, sizeof err) == 0)
            break;
        sy_log_error("pair %s: rollback: cannot unfence the %s side: %s", p->cfg->name, sy_side_name(sw->from), err);
        usleep(200 * 1000);
    }
    loop_call(sw, do_unwarm_release);
}

/* ---- one switch for every node (a cluster) ---------------------------------------------------- */

#define SW_FLIPPED_WAIT_MS 2000     /* coordinator: how long the other nodes' "flipped" acks are awaited */
#define SW_GONE_GRACE_MS 1000       /* participant: the coordinator's keys vanished; the epoch may follow */

static void on_cluster_step(void *arg, int rc, const char *err)
{
    struct sy_switch *sw = arg;
    sw->call_rc = rc;
    snprintf(sw->cmsg, sizeof sw->cmsg, "%s", err ? err : "");
    call_end(sw);
}

static void do_cluster_begin(struct sy_switch *sw)
{
    sy_cluster_switch_begin(sw->p->cswitch, sw->to, sw->p->epoch, sw->kind == SW_FAILOVER, on_cluster_step, sw);
}

static void do_cluster_abort(struct sy_switch *sw)
{
    sy_cluster_switch_abort(sw->p->cswitch, on_cluster_step, sw);
}

static void do_cluster_finish(struct sy_switch *sw)
{
    sy_cluster_switch_finish(sw->p->cswitch, on_cluster_step, sw);
}

static const char *ack_phase(const struct sy_switch *sw)
{
    return sw->flipped ? "flipped" : sw->code != NULL ? "refused" : "held";
}

static void do_cluster_ack(struct sy_switch *sw)
{
    sy_cluster_switch_ack(sw->p->cswitch, sw->cid, ack_phase(sw), sw->ledger, sw->flipped ? sw->moved : 0,
                          sw->flipped ? sw->aborted : 0, sw->code ? sw->msg : "", on_cluster_step, sw);
}

static void do_cluster_acked_held(struct sy_switch *sw)
{
    json_decref(sw->ledgers);
    sw->ledgers = NULL;
    bool refused;
    sw->call_rc = sy_cluster_switch_acked(sw->p->cswitch, "held", &sw->ledgers, &refused, sw->cmsg,
                                          sizeof sw->cmsg) ? 0 : refused ? -2 : -1;
}

static void do_cluster_acked_flipped(struct sy_switch *sw)
{
    bool refused;
    sw->call_rc =
        sy_cluster_switch_acked(sw->p->cswitch, "flipped", NULL, &refused, sw->cmsg, sizeof sw->cmsg) ? 0 : -1;
    /* those that flipped so far (a late node must not make the others count 0) */
    sy_cluster_switch_moved(sw->p->cswitch, &sw->moved_elsewhere, &sw->aborted_elsewhere);
}

/* Coordinator: the pair's lock, then the hold published to every node. */
static int cluster_begin(struct sy_switch *sw)
{
    if (sw->p->cswitch == NULL)
        return 0;
    loop_call_until(sw, do_cluster_begin, true);
    if (sw->call_rc != 0)
        return fail(sw, "bad_state", "%s", sw->cmsg);
    sw->cbegun = true;
    snprintf(sw->cid, sizeof sw->cid, "%s", sy_cluster_switch_id(sw->p->cswitch));
    sy_failpoint("switch_after_cluster_hold");
    sy_failpoint_stall("switch_after_cluster_hold"); /* tests: a switch that outlives its owner's lease */
    return 0;
}

/* Coordinator: until every other node is held, quiet and prepared (it acknowledged with its ack ledger),
 * within half of max_hold_ms: the rest is for fencing, draining and the flip. */
static int cluster_wait_held(struct sy_switch *sw)
{
    if (!sw->cbegun)
        return 0;
    uint64_t deadline = sw->t_hold + (uint64_t)sw->p->cfg->max_hold_ms / 2;
    for (;;) {
        loop_call(sw, do_cluster_acked_held);
        if (sw->call_rc == 0)
            break;
        if (sw->call_rc == -2)
            return fail(sw, "hold_timeout", "switch %s: %s", sw->cid, sw->cmsg);
        if (now_ms() >= deadline || stop_now(sw))
            return fail(sw, "hold_timeout", "switch %s: node(s) %s did not acknowledge the hold within %d ms "
                        "(max_hold_ms/2): rolled back on every node", sw->cid, sw->cmsg, sw->p->cfg->max_hold_ms / 2);
        usleep(1000);
    }
    step_done(sw, "cluster_hold_ms");
    return 0;
}

/* Coordinator, after its own release: the other nodes flip on the epoch's change; their acks are awaited
 * a moment (for the log), then the switch's keys and the lock go. */
static void cluster_end(struct sy_switch *sw)
{
    if (!sw->cbegun)
        return;
    uint64_t deadline = now_ms() + SW_FLIPPED_WAIT_MS;
    for (;;) {
        loop_call(sw, do_cluster_acked_flipped);
        if (sw->call_rc == 0)
            break;
        if (now_ms() >= deadline) {
            sy_log_warn("pair %s: switch %s: node(s) %s did not acknowledge the flip within %d ms (they apply the "
                        "epoch when they see it)", sw->p->cfg->name, sw->cid, sw->cmsg, SW_FLIPPED_WAIT_MS);
            break;
        }
        usleep(1000);
    }
    loop_call_until(sw, do_cluster_finish, true);
    if (sw->call_rc != 0)
        sy_log_warn("pair %s: switch %s: %s (the lock goes with this node's lease)", sw->p->cfg->name, sw->cid,
                    sw->cmsg);
    sw->cbegun = false;
    step_done(sw, "cluster_release_ms");
}

/* Coordinator, rolling back: every node releases on the old side. */
static void cluster_rollback(struct sy_switch *sw)
{
    if (!sw->cbegun)
        return;
    loop_call_until(sw, do_cluster_abort, true);
    if (sw->call_rc != 0)
        sy_log_error("pair %s: switch %s: %s (the other nodes release when their hold ends)", sw->p->cfg->name,
                     sw->cid, sw->cmsg);
    loop_call_until(sw, do_cluster_finish, true);
    sw->cbegun = false;
}

static void do_outcome(struct sy_switch *sw)
{
    uint64_t epoch;
    enum sy_side side;
    const char *phase = sy_cluster_switch_phase(sw->p->cswitch, sw->cid);
    if (sy_shared_epoch_seen(sw->p->shared, &epoch, &side) && epoch > sw->from_epoch)
        sw->outcome = side == sw->to ? "flip" : "moved";
    else if (strcmp(phase, "hold") == 0)
        sw->outcome = NULL;
    else {   /* read on the switch thread after this returns, while the etcd watch may rewrite phase */
        snprintf(sw->outcome_buf, sizeof sw->outcome_buf, "%s", phase);
        sw->outcome = sw->outcome_buf;
    }
}

static void do_adopt(struct sy_switch *sw)
{
    uint64_t epoch;
    enum sy_side side;
    sy_shared_epoch_seen(sw->p->shared, &epoch, &side);
    sw->call_rc = sy_pair_adopt(sw->p, epoch, side, &sw->moved, sw->call_err, sizeof sw->call_err);
    if (sw->call_rc == 0)
        sw->flipped = true;
}

/* A participant: hold, warm and quiesce like the coordinator, acknowledge with the ack ledger, then flip
 * when the cluster's epoch moves to `to` — or release on the old side on abort, when the coordinator's
 * keys vanish without the epoch moving, or at max_hold_ms. */
static int run_participate(struct sy_switch *sw)
{
    if (warm(sw) != 0)
        return -1;
    step_done(sw, "warm_ms");
    loop_call(sw, do_hold);
    if (quiesce(sw) != 0)
        return -1;
    step_done(sw, "quiesce_ms");
    loop_call(sw, do_ledger);
    sy_failpoint("switch_participant_before_ack");
    loop_call_until(sw, do_cluster_ack, true);
    if (sw->call_rc != 0)
        return fail(sw, "bad_state", "%s", sw->cmsg);
    sw->acked = true;
    uint64_t gone_at = 0;
    for (;;) {
        loop_call(sw, do_outcome);
        if (sw->outcome != NULL && strcmp(sw->outcome, "flip") == 0)
            break;
        if (sw->outcome != NULL && strcmp(sw->outcome, "moved") == 0)
            return fail(sw, "bad_state", "the cluster's epoch moved to the other side than this switch's");
        if (sw->outcome != NULL && strcmp(sw->outcome, "abort") == 0)
            return fail(sw, "bad_state", "the coordinator aborted switch %s", sw->cid);
        if (sw->outcome != NULL && gone_at == 0)
            gone_at = now_ms();
        if (gone_at != 0 && now_ms() >= gone_at + SW_GONE_GRACE_MS)
            return fail(sw, "bad_state", "the coordinator of switch %s is gone and the epoch did not move", sw->cid);
        if (now_ms() >= hold_deadline(sw) || stop_now(sw))
            return fail(sw, "hold_timeout", "switch %s: the epoch did not move within max_hold_ms=%d ms", sw->cid,
                        sw->p->cfg->max_hold_ms);
        usleep(1000);
    }
    pthread_mutex_lock(&sw->p->fence_lock);
    loop_call(sw, do_adopt);
    pthread_mutex_unlock(&sw->p->fence_lock);
    if (sw->call_rc != 0)
        return fail(sw, "internal", "cannot apply the cluster's epoch: %s", sw->call_err);
    step_done(sw, "flip_ms");
    loop_call(sw, do_start_and_release);
    loop_call_until(sw, do_cluster_ack, true);      /* "flipped": best effort (the coordinator only logs) */
    return 0;
}

static void participate_rollback(struct sy_switch *sw)
{
    if (sw->flipped)
        return;
    sy_log_warn("pair %s: cluster switch %s: %s: releasing on the %s side", sw->p->cfg->name, sw->cid, sw->msg,
                sy_side_name(sw->from));
    loop_call(sw, do_outcome);
    if (sw->outcome == NULL)                        /* still held by the coordinator: tell it at once */
        loop_call_until(sw, do_cluster_ack, true);  /* "refused" */
    loop_call(sw, do_unwarm_release);
}

static int run_switchover(struct sy_switch *sw)
{
    if (catch_up(sw) != 0)
        return -1;
    step_done(sw, "catch_up_ms");
    if (warm(sw) != 0)
        return -1;
    step_done(sw, "warm_ms");
    if (cluster_begin(sw) != 0)
        return -1;
    loop_call(sw, do_hold);
    sy_failpoint("switch_after_hold");
    if (sy_failpoint_fails("switch_fail_after_hold"))
        return fail(sw, "internal", "failpoint switch_fail_after_hold");
    if (sw->force)
        loop_call(sw, do_close_unmovable);
    if (quiesce(sw) != 0)
        return -1;
    step_done(sw, "quiesce_ms");
    if (sy_failpoint_fails("switch_fail_after_quiesce"))
        return fail(sw, "internal", "failpoint switch_fail_after_quiesce");
    if (cluster_wait_held(sw) != 0)
        return -1;
    if (fence_and_drain(sw) != 0)
        return -1;
    if (sy_failpoint_fails("switch_fail_after_drain"))
        return fail(sw, "internal", "failpoint switch_fail_after_drain");
    if (flip(sw) != 0)
        return -1;
    loop_call(sw, do_start_and_release);
    step_done(sw, "start_release_ms");
    cluster_end(sw);
    char err[512];
    if (!sw->p->cfg->fence_passive &&
        sw->p->eng->failover->fence(sw->p->cfg, side_ep(sw->p, sw->from), false, 2000, NULL, 0, err, sizeof err) != 0)
        sy_log_warn("pair %s: fence_passive=off: cannot unfence the %s side: %s", sw->p->cfg->name,
                    sy_side_name(sw->from), err);
    return 0;
}

static int drain_forward_spool(struct sy_switch *sw, bool alive, uint64_t deadline, struct sy_drain_target *target);
static int drain_target(struct sy_switch *sw, struct sy_drain_target *target);

static int run_failover(struct sy_switch *sw)
{
    struct sy_pair *p = sw->p;
    char err[512];
    bool alive = p->eng->failover->alive(p->cfg, side_ep(p, SY_SIDE_BUSINESS), SW_ALIVE_TIMEOUT_MS);
    if (alive && !sw->force)
        return fail(sw, "business_alive",
                    "the business database %s:%u still answers: use switchover (or failover --force, which fences "
                    "it first)",
                    p->cfg->business.host, p->cfg->business.port);
    if (alive) {
        if (p->eng->failover->fence(p->cfg, side_ep(p, SY_SIDE_BUSINESS), true, 2000, sw->final_pos,
                                    sizeof sw->final_pos, err, sizeof err) != 0)
            return fail(sw, "fence_failed", "--force: cannot fence the business side: %s", err);
        sw->fenced = true;
    }
    step_done(sw, "fence_ms");
    /* A forward instance that failed (its collector gave up on the dead business DB) or was paused still
     * has to apply its spool: started again, its writer does while the collector retries. One failing
     * right now is stopping first. One an operator paused is paused again in every outcome (the flip
     * pauses it; so does a rollback): the operator's pause, kept in etcd for the next owner, stays true. */
    wait_settled(sw, sw->draining);
    loop_call(sw, do_resume_forward);
    sy_failpoint_stall("failover_after_resume");
    /* Everything the forward collector spooled reaches DR (and, when fenced, everything there is). The
     * collector can still spool events it had already received from the dead server (the client library's
     * read-ahead) after the check: so the forward instance is paused, then checked again, and resumed to
     * apply what came late. The tail then starts exactly where DR's applied position ends. */
    uint64_t deadline = now_ms() + (uint64_t)p->cfg->drain_timeout_ms;
    struct sy_drain_target target = { 0 };
    for (;;) {
        if (drain_forward_spool(sw, alive, deadline, &target) != 0)
            return -1;
        loop_call(sw, do_pause_forward);
        if (sw->call_rc != 0)
            return fail(sw, "bad_state", "cannot pause %s: %s", sy_instance_id(sw->draining), sw->call_err);
        wait_settled(sw, sw->draining);
        if (drain_target(sw, &target) != 0)
            return -1;
        struct sy_instance_progress pr;
        sy_instance_progress(sw->draining, &pr);
        if (pr.applied_seq >= target.seq) {
            if (target.open_records > 0)
                sy_log_info("pair %s: failover: the last %llu spooled record(s) are a transaction the %s side did "
                            "not finish sending: not applied (it belongs to the tail)", p->cfg->name,
                            (unsigned long long)target.open_records, sy_side_name(sw->from));
            snprintf(sw->drained, sizeof sw->drained, "%s", pr.applied);
            break;
        }
        sy_log_info("pair %s: failover: %llu record(s) spooled after the drain: applying them too", p->cfg->name,
                    (unsigned long long)(target.seq - pr.applied_seq));
        loop_call(sw, do_resume_forward);
    }
    step_done(sw, "drain_ms");
    loop_call(sw, do_ledger);
    if (cluster_begin(sw) != 0)                     /* every node holds and prepares its sessions on DR */
        return -1;
    loop_call(sw, do_hold);
    loop_call(sw, do_warm);
    if (quiesce(sw) != 0)
        return -1;
    step_done(sw, "quiesce_ms");
    if (cluster_wait_held(sw) != 0)
        return -1;
    if (flip(sw) != 0)
        return -1;
    loop_call(sw, do_start_and_release);
    step_done(sw, "start_release_ms");
    cluster_end(sw);                                /* every node flipped with this one */
    return 0;
}

/* The forward spool's drain target now (sy_instance_drain_target): 0, or -1 failed. */
static int drain_target(struct sy_switch *sw, struct sy_drain_target *target)
{
    char err[512];
    if (sy_instance_drain_target(sw->draining, target, err, sizeof err) != 0)
        return fail(sw, "internal", "reading %s's spool: %s", sy_instance_id(sw->draining), err);
    return 0;
}

/* Until the forward instance's writer has applied every transaction its collector spooled whole (and the
 * collector reached the fenced business side's final position when that side still answers): 0, or -1
 * failed. A transaction a dead side did not finish sending can never be applied: it is part of the tail. */
static int drain_forward_spool(struct sy_switch *sw, bool alive, uint64_t deadline, struct sy_drain_target *target)
{
    struct sy_pair *p = sw->p;
    uint64_t restarted_at = UINT64_MAX;             /* applied_seq when it was last started again */
    for (;;) {
        if (drain_target(sw, target) != 0)          /* first: applied only grows */
            return -1;
        struct sy_instance_progress pr;
        sy_instance_progress(sw->draining, &pr);
        bool collected = !alive || (pr.collected[0] && p->eng->position->covers(pr.collected, sw->final_pos));
        if (collected && pr.applied_seq >= target->seq)
            return 0;
        if (pr.write_state == SY_MOD_FAILED || pr.failed_by_write)
            return fail(sw, "bad_state", "%s failed before its spool was applied: %s", sy_instance_id(sw->draining),
                        pr.error);
        if (!pr.write_running && (pr.state == SY_INST_STOPPING || pr.state == SY_INST_FAILED) && !stop_now(sw) &&
            now_ms() < deadline) {
            /* its collector spent retry_seconds on the dead business side meanwhile: the whole instance
             * failed (or is stopping into failed) with the writer still applying; started again — once more
             * only if its writer applied something since the last start */
            wait_settled(sw, sw->draining);
            loop_call(sw, do_last_error);
            if (restarted_at != UINT64_MAX && pr.applied_seq == restarted_at)
                return fail(sw, "bad_state", "%s failed again before applying more of its spool (%llu of %llu "
                            "record(s) applied): %s", sy_instance_id(sw->draining),
                            (unsigned long long)pr.applied_seq, (unsigned long long)target->seq, sw->call_err);
            sy_log_info("pair %s: failover: %s stopped while its spool was applied (%s): started again",
                        p->cfg->name, sy_instance_id(sw->draining), sw->call_err);
            restarted_at = pr.applied_seq;
            loop_call(sw, do_resume_forward);
            if (sw->call_rc != 0)
                return fail(sw, "bad_state", "%s stopped before its spool was applied and cannot start again: %s",
                            sy_instance_id(sw->draining), sw->call_err);
            continue;
        }
        if (!pr.write_running && pr.applied_seq < target->seq)
            return fail(sw, "bad_state", "%s is %s with %llu spooled record(s) not applied: start it first",
                        sy_instance_id(sw->draining), sy_instance_state_name(pr.state),
                        (unsigned long long)(target->seq - pr.applied_seq));
        if (now_ms() >= deadline || stop_now(sw))
            return fail(sw, "drain_timeout",
                        "the forward spool was not applied to DR within drain_timeout_ms=%d (applied %llu of %llu)",
                        p->cfg->drain_timeout_ms, (unsigned long long)pr.applied_seq,
                        (unsigned long long)target->seq);
        usleep(2000);
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------------ */

static void *switch_main(void *arg)
{
    struct sy_switch *sw = arg;
    sy_log_info("pair %s: %s from %s to %s started", sw->p->cfg->name, kind_names[sw->kind], sy_side_name(sw->from),
                sy_side_name(sw->to));
    int rc = sw->kind == SW_FAILOVER      ? run_failover(sw)
             : sw->kind == SW_PARTICIPATE ? run_participate(sw)
                                          : run_switchover(sw);
    if (rc != 0 && sw->kind == SW_PARTICIPATE)
        participate_rollback(sw);
    else if (rc != 0)
        rollback(sw);
    event_active(sw->done_ev, 0, 0);
    sy_admin_job_end(); /* last touch of shared state */
    return NULL;
}

static void switch_free(struct sy_switch *sw)
{
    if (sw->call_ev)
        event_free(sw->call_ev);
    if (sw->done_ev)
        event_free(sw->done_ev);
    pthread_mutex_destroy(&sw->mu);
    pthread_cond_destroy(&sw->cv);
    json_decref(sw->list);
    json_decref(sw->detail);
    json_decref(sw->steps);
    json_decref(sw->ledgers);
    json_decref(sw->tail);
    free(sw);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    struct sy_switch *sw = arg;
    struct sy_pair *p = sw->p;
    p->op = NULL;
    __atomic_store_n(&p->switching, 0, __ATOMIC_RELEASE);
    if (sw->kind == SW_PARTICIPATE) {               /* nobody asked: the log and the history tell */
        if (sw->code == NULL)
            sy_log_info("pair %s: cluster switch %s done: %s side active, epoch %llu, pause %llu ms, %zu client(s) "
                        "moved", p->cfg->name, sw->cid, sy_side_name(p->active_side), (unsigned long long)p->epoch,
                        (unsigned long long)(sw->t_release - sw->t_hold), sw->moved);
        remember_switch(p, json_pack("{s:s,s:s,s:s,s:s,s:s,s:O}", "operation", kind_names[sw->kind], "id", sw->cid,
                                     "outcome", sw->code ? "rolled_back" : "done", "error", sw->code ? sw->code : "",
                                     "message", sw->code ? sw->msg : "", "steps", sw->steps));
        switch_free(sw);
        if (p->shared != NULL)
            sy_shared_epoch_apply(p->shared);       /* an epoch that moved meanwhile */
        return;
    }
    if (sw->code != NULL) {
        sy_log_warn("pair %s: %s refused: %s: %s", p->cfg->name, kind_names[sw->kind], sw->code, sw->msg);
        json_t *detail = sw->detail ? json_incref(sw->detail) : json_object();
        json_object_set(detail, "steps", sw->steps);
        count_switch(p, sw->kind, SW_ROLLED_BACK, 0);
        remember_switch(p, json_pack("{s:s,s:s,s:s,s:s,s:O}", "operation", kind_names[sw->kind], "outcome",
                                     "rolled_back", "error", sw->code, "message", sw->msg, "steps", sw->steps));
        sy_admin_fail_with(sw->req, sw->code, detail, "%s", sw->msg);
        switch_free(sw);
        return;
    }
    json_t *res = json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:I,s:I,s:I,s:O}", "pair", p->cfg->name, "operation",
                            kind_names[sw->kind], "active_side", sy_side_name(p->active_side), "pause_ms",
                            (json_int_t)(sw->t_release - sw->t_hold), "drained_position", sw->drained,
                            "ack_ledger_position", sw->ledger, "aborted_transactions",
                            (json_int_t)(sw->aborted + sw->aborted_elsewhere), "moved_clients",
                            (json_int_t)(sw->moved + sw->moved_elsewhere), "epoch", (json_int_t)p->epoch, "steps",
                            sw->steps);
    if (p->cswitch != NULL)                         /* every node's sessions are counted above; these here */
        json_object_set_new(res, "this_node", json_pack("{s:I,s:I}", "moved_clients", (json_int_t)sw->moved,
                                                        "aborted_transactions", (json_int_t)sw->aborted));
    if (sw->forced_closed > 0)
        json_object_set_new(res, "closed_unmovable", json_integer((json_int_t)sw->forced_closed));
    if (sw->kind == SW_FAILOVER)
        json_object_set_new(res, "tail", json_pack("{s:s}", "state", p->tail_state[0] ? p->tail_state : "none"));
    sy_log_info("pair %s: %s done: %s side active, epoch %llu, pause %llu ms, %zu client(s) moved, %zu "
                "transaction(s) aborted",
                p->cfg->name, kind_names[sw->kind], sy_side_name(p->active_side), (unsigned long long)p->epoch,
                (unsigned long long)(sw->t_release - sw->t_hold), sw->moved + (size_t)sw->moved_elsewhere,
                sw->aborted + (size_t)sw->aborted_elsewhere);
    count_switch(p, sw->kind, SW_DONE, sw->t_release - sw->t_hold);
    json_t *entry = json_deep_copy(res);
    json_object_set_new(entry, "outcome", json_string("done"));
    remember_switch(p, entry);
    json_decref(p->last_switch);
    p->last_switch = json_deep_copy(res);
    sy_admin_ok(sw->req, res);
    switch_free(sw);
}

/* Refusals that need no database: answered at once, nothing started. */
static int preconditions(struct sy_switch *sw, const char **code, char *msg, size_t msglen)
{
    struct sy_pair *p = sw->p;
    const char *name = p->cfg->name;
    if (p->op != NULL) {
        *code = "bad_state";
        snprintf(msg, msglen, "a switch of %s is already running", name);
        return -1;
    }
    if (p->terminating[0] || p->terminating[1]) {   /* core/daemon.c: done when etcd answers */
        *code = "bad_state";
        snprintf(msg, msglen, "a terminate of %s/%s waits for etcd: switch once it answered", name,
                 p->terminating[0] ? "forward" : "reverse");
        return -1;
    }
    if (!sy_engine_can_switch(p->eng)) {
        *code = "not_implemented";
        snprintf(msg, msglen, "engine %s cannot switch yet (%s)", sy_engine_name(p->cfg->engine),
                 p->eng == NULL ? "no synchronization" : "no fencing");
        return -1;
    }
    char why[400];
    if (p->cut_off) {
        *code = "bad_state";
        snprintf(msg, msglen, "%s: this node has not confirmed the cluster's epoch with etcd (just started, or "
                 "etcd unreachable for longer than its lease): no switch until etcd answers", name);
        return -1;
    }
    if (p->shared != NULL && !sy_shared_epoch_is_current(p->shared, why, sizeof why)) {
        *code = "bad_state";
        snprintf(msg, msglen, "%s: %s", name, why);
        return -1;
    }
    if (p->forward == NULL) {
        *code = "unknown_instance";
        snprintf(msg, msglen, "%s has no forward instance (no objects configured): nothing to switch with", name);
        return -1;
    }
    enum sy_side want = sw->kind == SW_SWITCHBACK ? SY_SIDE_DR : SY_SIDE_BUSINESS;
    if (p->active_side != want) {
        *code = "bad_state";
        snprintf(msg, msglen, "the %s side of %s is active already: %s applies when the %s side is", 
                 sy_side_name(p->active_side), name, kind_names[sw->kind], sy_side_name(want));
        return -1;
    }
    if (sw->kind != SW_FAILOVER && p->tail_state[0] != '\0') {
        *code = "tail_unresolved";
        snprintf(msg, msglen, "the unreplicated tail of the last failover is %s: run `switchyardctl resolve-tail %s "
                              "--export FILE | --discard` first", p->tail_state, name);
        return -1;
    }
    if (sw->kind == SW_FAILOVER) {
        sw->draining = p->forward;
        sw->forward_held = sy_instance_state(p->forward) == SY_INST_PAUSED;
        sw->starting = p->reverse && sy_instance_state(p->reverse) == SY_INST_COLLECTING ? p->reverse : NULL;
        return 0;
    }
    if (p->reverse == NULL || sy_instance_state(p->reverse) == SY_INST_TERMINATED) {
        *code = "no_reverse_instance";
        snprintf(msg, msglen, "%s has no reverse instance: run `switchyardctl create-reverse %s` first", name, name);
        return -1;
    }
    sw->draining = sw->kind == SW_SWITCHOVER ? p->forward : p->reverse;
    sw->starting = sw->kind == SW_SWITCHOVER ? p->reverse : p->forward;
    if (sy_instance_state(sw->draining) != SY_INST_RUNNING) {
        *code = "bad_state";
        snprintf(msg, msglen, "%s is %s: it must be running (writing) to drain", sy_instance_id(sw->draining),
                 sy_instance_state_name(sy_instance_state(sw->draining)));
        return -1;
    }
    if (sy_instance_state(sw->starting) != SY_INST_COLLECTING) {
        *code = "bad_state";
        snprintf(msg, msglen, "%s is %s: it must be collecting (not writing) to take over", sy_instance_id(sw->starting),
                 sy_instance_state_name(sy_instance_state(sw->starting)));
        return -1;
    }
    return 0;
}

static json_t *check(const char *name, const char *status, const char *detail, const char *fix)
{
    return json_pack("{s:s,s:s,s:s,s:s}", "name", name, "status", status, "detail", detail, "fix", fix);
}

json_t *sy_switch_readiness(struct sy_pair *p)
{
    json_t *checks = json_array();
    struct sy_switch probe = { .p = p, .kind = p->active_side == SY_SIDE_DR ? SW_SWITCHBACK : SW_SWITCHOVER };
    probe.from = p->active_side;
    probe.to = p->active_side == SY_SIDE_DR ? SY_SIDE_BUSINESS : SY_SIDE_DR;
    const char *code = NULL;
    char msg[700], detail[900];
    if (preconditions(&probe, &code, msg, sizeof msg) != 0) {
        snprintf(detail, sizeof detail, "%s: %s", code, msg);
        json_array_append_new(checks, check("instances", "fail", detail, "see the message"));
        return checks;
    }
    snprintf(detail, sizeof detail, "%s writes, %s collects: a %s moves the clients to the %s side",
             sy_instance_id(probe.draining), sy_instance_id(probe.starting), kind_names[probe.kind],
             sy_side_name(probe.to));
    json_array_append_new(checks, check("instances", "pass", detail, ""));
    json_t *st = sy_instance_status_json(probe.draining);
    json_t *lag = json_object_get(json_object_get(st, "write"), "lag_ms");
    if (!json_is_integer(lag)) {
        json_array_append_new(checks, check("write_lag", "warn", "the write lag is not known yet", "wait a moment"));
    } else {
        bool ok = json_integer_value(lag) <= p->cfg->switchover_max_lag_ms;
        snprintf(detail, sizeof detail, "%s write lag %lld ms (switchover_max_lag_ms=%d)",
                 sy_instance_id(probe.draining), (long long)json_integer_value(lag), p->cfg->switchover_max_lag_ms);
        json_array_append_new(checks, check("write_lag", ok ? "pass" : "warn", detail,
                                            ok ? "" : "the switch waits up to drain_timeout_ms for it to catch up"));
    }
    json_decref(st);
    json_t *pinned = p->proto->switch_unmovable(p->proto_state);
    if (json_array_size(pinned) == 0) {
        json_array_append_new(checks, check("unmovable_sessions", "pass", "every session can move", ""));
    } else {
        char *list = json_dumps(pinned, JSON_COMPACT);
        snprintf(detail, sizeof detail, "%zu session(s) cannot move: %s", json_array_size(pinned), list ? list : "");
        free(list);
        json_array_append_new(checks, check("unmovable_sessions", "warn", detail,
                                            "let them finish (temporary tables, locks, XA, cursors), or use --force"));
    }
    json_decref(pinned);
    return checks;
}

/* A participant refused before it started: the coordinator hears it at once (best effort). */
static void on_refusal_acked(void *arg, int rc, const char *err)
{
    if (rc != 0)
        sy_log_warn("cluster switch: cannot tell the coordinator this node refuses: %s", err);
}

static int participant_preconditions(struct sy_switch *sw, char *msg, size_t msglen)
{
    struct sy_pair *p = sw->p;
    if (p->op != NULL || p->cut_off) {
        snprintf(msg, msglen, p->op != NULL ? "a switch of %s is already running on this node"
                                            : "this node has not confirmed the cluster's epoch (%s is held)",
                 p->cfg->name);
        return -1;
    }
    if (p->epoch != sw->from_epoch || p->active_side != sw->from) {
        snprintf(msg, msglen, "this node applied epoch %llu (%s side active), not the switch's %llu (%s)",
                 (unsigned long long)p->epoch, sy_side_name(p->active_side), (unsigned long long)sw->from_epoch,
                 sy_side_name(sw->from));
        return -1;
    }
    return 0;
}

static void switch_start(struct sy_pair *p, struct sy_admin_req *req, enum sw_kind kind, bool force,
                         const char *cid, enum sy_side to, uint64_t from_epoch, bool failover_hold)
{
    struct sy_switch *sw = calloc(1, sizeof *sw);
    if (sw == NULL) {
        if (req != NULL)
            sy_admin_fail(req, "internal", "out of memory");
        return;
    }
    sw->p = p;
    sw->req = req;
    sw->kind = kind;
    sw->force = force;
    sw->from = p->active_side;
    sw->to = p->active_side == SY_SIDE_DR ? SY_SIDE_BUSINESS : SY_SIDE_DR;
    if (kind == SW_PARTICIPATE) {
        sw->to = to;
        sw->from = to == SY_SIDE_DR ? SY_SIDE_BUSINESS : SY_SIDE_DR;
        sw->from_epoch = from_epoch;
        sw->failover_hold = failover_hold;
        snprintf(sw->cid, sizeof sw->cid, "%s", cid);
    }
    pthread_mutex_init(&sw->mu, NULL);
    pthread_cond_init(&sw->cv, NULL);
    sw->steps = json_object();
    const char *code = "bad_state";
    char msg[700];
    if (kind == SW_PARTICIPATE && participant_preconditions(sw, msg, sizeof msg) != 0) {
        sy_log_warn("pair %s: cluster switch %s refused: %s", p->cfg->name, cid, msg);
        sy_cluster_switch_ack(p->cswitch, cid, "refused", "", 0, 0, msg, on_refusal_acked, NULL);
        switch_free(sw);
        return;
    }
    if (kind != SW_PARTICIPATE && preconditions(sw, &code, msg, sizeof msg) != 0) {
        count_switch(p, kind, SW_REFUSED, 0);
        sy_admin_fail(req, code, "%s", msg);
        switch_free(sw);
        return;
    }
    sw->call_ev = event_new(p->base, -1, 0, on_call, sw);
    sw->done_ev = event_new(p->base, -1, 0, on_done, sw);
    sw->t_start = sw->t_step = now_ms();
    pthread_t th;
    sy_admin_job_begin();
    p->op = sw;
    __atomic_store_n(&p->switching, 1, __ATOMIC_RELEASE);
    if (sw->call_ev == NULL || sw->done_ev == NULL || pthread_create(&th, NULL, switch_main, sw) != 0) {
        sy_admin_job_end();
        p->op = NULL;
        __atomic_store_n(&p->switching, 0, __ATOMIC_RELEASE);
        if (req != NULL)
            sy_admin_fail(req, "internal", "cannot start the %s", kind_names[kind]);
        switch_free(sw);
        return;
    }
    pthread_detach(th);
}

void sy_switch_switchover(struct sy_pair *p, struct sy_admin_req *req, bool force)
{
    switch_start(p, req, SW_SWITCHOVER, force, NULL, SY_SIDE_BUSINESS, 0, false);
}

void sy_switch_switchback(struct sy_pair *p, struct sy_admin_req *req, bool force)
{
    switch_start(p, req, SW_SWITCHBACK, force, NULL, SY_SIDE_BUSINESS, 0, false);
}

void sy_switch_failover(struct sy_pair *p, struct sy_admin_req *req, bool force)
{
    switch_start(p, req, SW_FAILOVER, force, NULL, SY_SIDE_BUSINESS, 0, false);
}

void sy_switch_participate(struct sy_pair *p, const char *id, enum sy_side to, uint64_t from_epoch, bool failover)
{
    switch_start(p, NULL, SW_PARTICIPATE, false, id, to, from_epoch, failover);
}
