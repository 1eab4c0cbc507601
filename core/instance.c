/* Instance state machine (ARCHITECTURE.md "States"): modules run as threads, report through
 * struct sy_module_report, and the loop turns reports into instance states every POLL_MS:
 *
 *   PRECHECKING --pass--> INITIAL_SYNC --done--> RUNNING <--> RETRYING --window spent--> FAILED
 *        \--fail--> PRECHECK_FAILED            PAUSED (command)        TERMINATED (final)
 *
 * Persisted: state, whether initial sync finished and the position it ended at, last error. A
 * restart resumes: PRECHECKING and INITIAL_SYNC start over (the copy restarts cleanly), RUNNING and
 * RETRYING start the modules (collection resumes after the spool's last complete transaction, write
 * after its checkpoint in the destination), PAUSED/FAILED/TERMINATED stay.
 *
 * Stops never block the loop. Pause, terminate, a failure and a switch's stop of the write ask the
 * threads to stop and put the instance in STOPPING with a target state (persisted at once, so a
 * restart lands there); each thread says when it is done (a flag + an event), the loop joins it then —
 * a join that cannot block — and the instance reaches its target once every stopped thread is joined.
 * A collection's database socket is shut down at once (a binlog read is always safe to cut: it
 * resumes from the spool); a writer or a copy gets STOP_GRACE_MS to finish what it does (commit a
 * group, write its checkpoint), then its sockets are shut too. */
#include "core/engine.h"
#include "core/instance.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/change.h"
#include "core/collect.h"
#include "core/lag.h"
#include "core/log.h"
#include "core/state_file.h"

#define POLL_MS 200
#define STOP_GRACE_MS 2000      /* a writer or a copy still busy this long after a stop has its sockets shut */
#define MODULE_SOCKETS_MAX 72   /* a writer's control connection + apply_threads (<= 64) workers, and spare */

enum { MOD_INIT, MOD_COLL, MOD_WRITE, MOD__COUNT };

struct sy_module_sockets {
    pthread_mutex_t lock;            /* held while a descriptor is added, dropped or shut down */
    int dup[MODULE_SOCKETS_MAX];     /* owned duplicates of the module's database sockets; -1 = free */
    bool shut;                       /* a stop shut them down: one published later is shut at once */
};

struct module {
    struct sy_instance *in;           /* ref: the owner (the thread signals its stopped_ev) */
    const struct sy_module_ops *ops;  /* ref: engine's static ops; NULL = this module does not exist */
    pthread_t thread;
    bool running;                     /* thread started and not joined: written by the loop, read by other
                                         threads (progress) with __atomic loads */
    bool stopping;                    /* asked to stop, not joined yet (loop only) */
    int done;                         /* __atomic: set by the thread as it returns; joining it then cannot
                                         block the loop */
    enum sy_module_state stop_as;     /* what the module is once joined (loop only) */
    uint64_t stop_asked_ms;           /* monotonic: when it was asked to stop (the grace runs from here) */
    volatile int stop;                /* asks the thread to return */
    struct sy_module_sockets sockets; /* what a stop shuts down to wake the thread */
    struct sy_module_report report;
    struct sy_module_ctx ctx;
    uint64_t rate_events;             /* events counter at rate_ms */
    uint64_t rate_ms;                 /* monotonic time of the last rate sample */
    double per_s;                     /* events (rows for the writer) per second over the last second+ */
};

struct settle_waiter {
    struct settle_waiter *next;
    void (*fn)(void *arg, struct sy_instance *in);
    void *arg;
};

#define LAG_SAMPLES 360                      /* an hour of write lag at SY_LAG_SAMPLE_S */

struct sy_instance {
    struct sy_pair *pair;                    /* ref */
    struct {                                 /* the write's lag over the last hour (the console's chart) */
        uint64_t at_ms[LAG_SAMPLES];
        int64_t lag_ms[LAG_SAMPLES];         /* -1: not known (not running) */
        size_t n, next;
    } lag_history;
    enum sy_direction dir;
    const struct sy_engine_ops *eng;    /* ref: static */
    char id[96];                             /* "orders/forward" */
    char dir_path[1024];                     /* state_dir/instances/<pair>.<direction> */
    char state_path[1100];                   /* .../state.json */
    enum sy_instance_state state;            /* written by the loop with __atomic stores (other threads read
                                                it through sy_instance_progress and the lag thread) */
    enum sy_instance_state stop_target;      /* STOPPING: the state once every stopped thread is joined (it is
                                                what persist() writes) */
    struct event *stopped_ev;                /* owned: a module thread is done (made active by the thread) */
    struct settle_waiter *waiters;           /* owned: called once the instance is not STOPPING */
    bool initial_sync_done;                  /* persisted: the copy finished; changed under the write module's
                                                report lock once threads run (sy_instance_write_position) */
    bool write_enabled;                      /* persisted: the write module belongs to the running
                                                instance (forward: after the copy; reverse: after start) */
    char start_position[1024];               /* persisted: where collection starts if the spool is empty;
                                                changed under the write module's report lock, like
                                                initial_sync_done */
    char overwrite_until[1024];              /* persisted: set by a takeover (sy_module_ctx.overwrite_until) */
    char created[128];                       /* persisted, reverse: which create-reverse made it
                                                ("<node>@<unix ms>"; "" before it was kept): a takeover
                                                compares it with etcd's record (core/cluster_held.h) */
    char last_error[1024];                   /* persisted; "" = none */
    char reason[64];                         /* snake_case reason of the last error / retry */
    struct sy_spool *spool;                  /* owned */
    struct module mod[MOD__COUNT];
    struct event *poll;                      /* owned: POLL_MS timer */
    pthread_t precheck_thread;
    bool precheck_running;
    volatile int precheck_done;              /* set by the precheck thread when finished */
    int precheck_rc;
    json_t *precheck_out;                    /* owned by the precheck thread until it is joined */
    json_t *checks;                          /* owned: last precheck result (loop only) */
    struct sy_lag lag;                       /* source positions polled with local timestamps */
    pthread_t lag_thread;
    bool lag_running;
    volatile int lag_stop;
    int lag_done;                            /* __atomic: the lag thread returned (joining it cannot block) */
    int failed_by_write;                     /* __atomic: the last failure was the write module's own */
    struct {                                 /* sy_instance_retire: stopping for good, off the loop's back */
        bool on;                             /* nothing starts the instance again (written on the loop with
                                                __atomic stores: a switch thread reads it) */
        bool reported;                       /* done() was called */
        uint64_t by;                         /* sy_now_ms: busy modules' connections are shut then */
        struct event *ev;                    /* owned: fires at `by` (and at once to check) */
        void (*done)(void *arg, struct sy_instance *in);
        void *arg;
    } retire;
};

static const char *const state_names[] = {
    "prechecking", "precheck_failed", "initial_sync", "collecting", "running",
    "paused",      "retrying",        "failed",       "terminated", "stopping",
};
static const char *const module_state_names[] = { "stopped", "running", "paused", "retrying", "failed", "stopping" };

const char *sy_instance_state_name(enum sy_instance_state s)
{
    return state_names[s];
}

const char *sy_module_state_name(enum sy_module_state s)
{
    return module_state_names[s];
}

static int persist(struct sy_instance *in);

const char *sy_instance_reason(const struct sy_instance *in)
{
    return in->reason;
}

void sy_instance_set_reason(struct sy_instance *in, const char *reason)
{
    snprintf(in->reason, sizeof in->reason, "%s", reason);
    persist(in);
}

const char *sy_instance_last_error(const struct sy_instance *in)
{
    return in->last_error;
}

const struct sy_pair *sy_instance_pair(const struct sy_instance *in)
{
    return in->pair;
}

const char *sy_instance_id(const struct sy_instance *in)
{
    return in->id;
}

enum sy_direction sy_instance_direction(const struct sy_instance *in)
{
    return in->dir;
}

enum sy_instance_state sy_instance_state(const struct sy_instance *in)
{
    return in->state;
}

/* ---- reports ----------------------------------------------------------------------------------- */

void sy_module_backoff(const struct sy_module_ctx *ctx, int *backoff_ms, int max_ms)
{
    for (int waited = 0; waited < *backoff_ms && !__atomic_load_n(ctx->stop, __ATOMIC_ACQUIRE); waited += 50)
        usleep(50 * 1000);
    if (*backoff_ms < max_ms)
        *backoff_ms *= 2;
}

void sy_module_report_init(struct sy_module_report *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    r->lag_ms = -1;
}

void sy_module_report_fini(struct sy_module_report *r)
{
    pthread_mutex_destroy(&r->lock);
}

void sy_module_report_running(struct sy_module_report *r)
{
    pthread_mutex_lock(&r->lock);
    r->state = SY_MOD_RUNNING;
    r->retry_since_ms = 0;
    r->reason[0] = '\0';
    pthread_mutex_unlock(&r->lock);
}

void sy_module_report_progress(struct sy_module_report *r, uint64_t done_rows, uint64_t total_rows)
{
    pthread_mutex_lock(&r->lock);
    r->done_rows = done_rows;
    r->total_rows = total_rows;
    pthread_mutex_unlock(&r->lock);
}

void sy_module_report_sync_done(struct sy_module_report *r, const char *position)
{
    pthread_mutex_lock(&r->lock);
    snprintf(r->position, sizeof r->position, "%s", position);
    r->initial_sync_done = true;
    pthread_mutex_unlock(&r->lock);
}

static void report_set(struct sy_module_report *r, enum sy_module_state st, const char *reason, const char *fmt,
                       va_list ap)
{
    pthread_mutex_lock(&r->lock);
    if (st == SY_MOD_RETRYING && r->state != SY_MOD_RETRYING)
        r->retry_since_ms = sy_now_ms();
    r->state = st;
    snprintf(r->reason, sizeof r->reason, "%s", reason);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    pthread_mutex_unlock(&r->lock);
}

void sy_module_report_retrying(struct sy_module_report *r, const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report_set(r, SY_MOD_RETRYING, reason, fmt, ap);
    va_end(ap);
}

void sy_module_report_failed(struct sy_module_report *r, const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report_set(r, SY_MOD_FAILED, reason, fmt, ap);
    va_end(ap);
}

/* ---- persistence ----------------------------------------------------------------------------- */

static int persist(struct sy_instance *in)
{
    char err[512];
    enum sy_instance_state st = in->state == SY_INST_STOPPING ? in->stop_target : in->state;
    json_t *doc = json_pack("{s:s,s:b,s:b,s:s,s:s,s:s,s:s,s:s}", "state", state_names[st],
                            "initial_sync_done", in->initial_sync_done, "write_enabled", in->write_enabled,
                            "start_position", in->start_position, "last_error", in->last_error, "reason",
                            in->reason, "overwrite_until", in->overwrite_until, "created", in->created);
    int rc = sy_state_write_json(in->state_path, doc, err, sizeof err);
    json_decref(doc);
    if (rc != 0)
        sy_log_error("%s: cannot persist state: %s", in->id, err);
    return rc;
}

static void set_state(struct sy_instance *in, enum sy_instance_state to)
{
    if (in->state == to)
        return;
    sy_log_info("%s: %s -> %s%s%s", in->id, state_names[in->state], state_names[to], in->last_error[0] ? ": " : "",
                to == SY_INST_FAILED || to == SY_INST_RETRYING || to == SY_INST_PRECHECK_FAILED ? in->last_error
                                                                                                : "");
    __atomic_store_n(&in->state, to, __ATOMIC_RELEASE); /* the lag thread reads it */
    persist(in);
}

static int load(struct sy_instance *in, char *err, size_t errlen)
{
    int missing = 0;
    json_t *doc = sy_state_read_json(in->state_path, &missing, err, errlen);
    if (doc == NULL)
        return missing ? 1 : -1;
    const char *st = json_string_value(json_object_get(doc, "state"));
    int found = -1;
    for (size_t i = 0; st && i < SY_ARRAY_LEN(state_names); i++)
        if (strcmp(st, state_names[i]) == 0)
            found = (int)i;
    if (found < 0) {
        snprintf(err, errlen, "%s: unknown state '%s'", in->state_path, st ? st : "(none)");
        json_decref(doc);
        return -1;
    }
    if (found == SY_INST_STOPPING) { /* never written; a hand-edited file lands in the safe state */
        snprintf(err, errlen, "%s: state 'stopping' is never persisted", in->state_path);
        json_decref(doc);
        return -1;
    }
    in->state = (enum sy_instance_state)found;
    in->initial_sync_done = json_is_true(json_object_get(doc, "initial_sync_done"));
    json_t *we = json_object_get(doc, "write_enabled");
    in->write_enabled = we ? json_is_true(we) : in->initial_sync_done;
    snprintf(in->start_position, sizeof in->start_position, "%s",
             json_string_value(json_object_get(doc, "start_position")) ?: "");
    snprintf(in->last_error, sizeof in->last_error, "%s", json_string_value(json_object_get(doc, "last_error")) ?: "");
    snprintf(in->reason, sizeof in->reason, "%s", json_string_value(json_object_get(doc, "reason")) ?: "");
    snprintf(in->overwrite_until, sizeof in->overwrite_until, "%s",
             json_string_value(json_object_get(doc, "overwrite_until")) ?: "");
    snprintf(in->created, sizeof in->created, "%s", json_string_value(json_object_get(doc, "created")) ?: "");
    json_decref(doc);
    return 0;
}

/* ---- module threads ---------------------------------------------------------------------------- */

int sy_module_socket_watch(const struct sy_module_ctx *ctx, int fd)
{
    struct sy_module_sockets *s = ctx->sockets;
    if (s == NULL || fd < 0)
        return -1;
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0)
        return -1;
    int slot = -1;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < MODULE_SOCKETS_MAX && slot < 0; i++)
        if (s->dup[i] < 0)
            slot = i;
    if (slot >= 0) {
        s->dup[slot] = d;
        if (s->shut)
            shutdown(d, SHUT_RDWR);
    }
    pthread_mutex_unlock(&s->lock);
    if (slot < 0)
        close(d);
    return slot;
}

void sy_module_socket_drop(const struct sy_module_ctx *ctx, int slot)
{
    struct sy_module_sockets *s = ctx->sockets;
    if (s == NULL || slot < 0 || slot >= MODULE_SOCKETS_MAX)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->dup[slot] >= 0)
        close(s->dup[slot]);
    s->dup[slot] = -1;
    pthread_mutex_unlock(&s->lock);
}

bool sy_module_sockets_shut(const struct sy_module_ctx *ctx)
{
    struct sy_module_sockets *s = ctx->sockets;
    if (s == NULL)
        return false;
    pthread_mutex_lock(&s->lock);
    bool shut = s->shut;
    pthread_mutex_unlock(&s->lock);
    return shut;
}

static void sockets_init(struct sy_module_sockets *s)
{
    pthread_mutex_init(&s->lock, NULL);
    for (int i = 0; i < MODULE_SOCKETS_MAX; i++)
        s->dup[i] = -1;
    s->shut = false;
}

/* Shuts every published socket down (the thread's blocked call returns an error); they stay open. */
static size_t sockets_shut(struct sy_module_sockets *s)
{
    size_t n = 0;
    pthread_mutex_lock(&s->lock);
    s->shut = true;
    for (int i = 0; i < MODULE_SOCKETS_MAX; i++)
        if (s->dup[i] >= 0 && shutdown(s->dup[i], SHUT_RDWR) == 0)
            n++;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* After the join: what the thread did not drop is closed; a next start begins unshut. */
static void sockets_reset(struct sy_module_sockets *s)
{
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < MODULE_SOCKETS_MAX; i++) {
        if (s->dup[i] >= 0)
            close(s->dup[i]);
        s->dup[i] = -1;
    }
    s->shut = false;
    pthread_mutex_unlock(&s->lock);
}

struct sy_module_sockets *sy_socket_set_new(void)
{
    struct sy_module_sockets *s = malloc(sizeof *s);
    if (s != NULL)
        sockets_init(s);
    return s;
}

size_t sy_socket_set_shut(struct sy_module_sockets *s)
{
    return s != NULL ? sockets_shut(s) : 0;
}

void sy_socket_set_free(struct sy_module_sockets *s)
{
    if (s == NULL)
        return;
    sockets_reset(s);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* The thread body around the engine's run(): says when it is done, as its last touch of the instance. */
static void *module_main(void *arg)
{
    struct module *m = arg;
    m->ops->run(&m->ctx);
    __atomic_store_n(&m->done, 1, __ATOMIC_RELEASE);
    event_active(m->in->stopped_ev, 0, 0);
    return NULL;
}

static int module_start(struct sy_instance *in, int which)
{
    struct module *m = &in->mod[which];
    if (m->ops == NULL || m->running)
        return 0;
    m->stop = 0;
    m->done = 0;
    m->stopping = false;
    m->ctx.takeover_replay = in->overwrite_until[0] != '\0' && in->write_enabled;
    pthread_mutex_lock(&m->report.lock);
    m->report.state = SY_MOD_RUNNING;
    m->report.retry_since_ms = 0;
    m->report.reason[0] = '\0';
    m->report.error[0] = '\0';
    pthread_mutex_unlock(&m->report.lock);
    int rc = pthread_create(&m->thread, NULL, module_main, m);
    if (rc != 0) {
        snprintf(in->last_error, sizeof in->last_error, "cannot start %s thread: %s", m->ops->name, strerror(rc));
        return -1;
    }
    __atomic_store_n(&m->running, true, __ATOMIC_RELEASE);
    sy_log_info("%s: %s module started", in->id, m->ops->name);
    return 0;
}

/* Asks a module's thread to stop (it is `as` once joined); returns at once. */
static void module_stop(struct sy_instance *in, int which, enum sy_module_state as)
{
    struct module *m = &in->mod[which];
    if (!m->running)
        return;
    m->stop_as = as;
    if (m->stopping)
        return;
    m->stopping = true;
    m->stop_asked_ms = sy_now_ms();
    __atomic_store_n(&m->stop, 1, __ATOMIC_RELEASE);
    sy_spool_wake(in->spool);
    if (which == MOD_COLL)
        sockets_shut(&m->sockets); /* a binlog read is always safe to cut: it resumes from the spool */
    sy_log_info("%s: %s module stopping", in->id, m->ops->name);
}

static void modules_stop(struct sy_instance *in, enum sy_module_state as)
{
    for (int i = 0; i < MOD__COUNT; i++)
        module_stop(in, i, as);
}

/* Joins a stopping module whose thread said it is done (never blocks). */
static void module_reap(struct sy_instance *in, int which)
{
    struct module *m = &in->mod[which];
    if (!m->running || !m->stopping || !__atomic_load_n(&m->done, __ATOMIC_ACQUIRE))
        return;
    pthread_join(m->thread, NULL);
    sockets_reset(&m->sockets);
    __atomic_store_n(&m->running, false, __ATOMIC_RELEASE);
    m->stopping = false;
    pthread_mutex_lock(&m->report.lock);
    if (m->report.state != SY_MOD_FAILED || m->stop_as != SY_MOD_STOPPED)
        m->report.state = m->stop_as;
    pthread_mutex_unlock(&m->report.lock);
    sy_log_info("%s: %s module stopped after %llu ms", in->id, m->ops->name,
                (unsigned long long)(sy_now_ms() - m->stop_asked_ms));
}

/* A writer or a copy still busy STOP_GRACE_MS after its stop: its database calls are cut. */
static void modules_past_grace(struct sy_instance *in, uint64_t now)
{
    for (int i = 0; i < MOD__COUNT; i++) {
        struct module *m = &in->mod[i];
        if (!m->stopping || m->sockets.shut || now - m->stop_asked_ms < STOP_GRACE_MS)
            continue;
        size_t n = sockets_shut(&m->sockets);
        sy_log_warn("%s: %s module still busy %d ms after its stop: %zu database connection(s) shut down to end "
                    "it (what it had not committed is applied again after a start)",
                    in->id, m->ops->name, STOP_GRACE_MS, n);
    }
}

static void call_waiters(struct sy_instance *in)
{
    struct settle_waiter *w = in->waiters;
    in->waiters = NULL;
    while (w != NULL) {
        struct settle_waiter *next = w->next;
        w->fn(w->arg, in);
        free(w);
        w = next;
    }
}

/* Joins the stopped threads that are done; whether some are still busy. */
static bool modules_busy(struct sy_instance *in)
{
    bool busy = false;
    for (int i = 0; i < MOD__COUNT; i++) {
        module_reap(in, i);
        busy |= in->mod[i].stopping;
    }
    return busy;
}

/* A STOPPING instance whose stopped threads are all joined reaches its target. */
static void settle(struct sy_instance *in)
{
    if (modules_busy(in) || in->state != SY_INST_STOPPING)
        return;
    set_state(in, in->stop_target);
    call_waiters(in);
}

/* After modules_stop / module_stop: the instance is `to` once their threads are joined (STOPPING until
 * then, with `to` persisted at once). */
static void stop_into(struct sy_instance *in, enum sy_instance_state to)
{
    in->stop_target = to;
    if (modules_busy(in)) {
        if (in->state == SY_INST_STOPPING)
            persist(in); /* a new target */
        else
            set_state(in, SY_INST_STOPPING);
        return;
    }
    if (in->state == to)
        persist(in); /* e.g. RETRYING whose write stopped: write_enabled changed */
    else
        set_state(in, to);
    call_waiters(in);
}

static void retire_check(struct sy_instance *in);

static void on_module_done(evutil_socket_t fd, short what, void *arg)
{
    settle(arg);
    retire_check(arg);
}

void sy_instance_when_settled(struct sy_instance *in, void (*fn)(void *arg, struct sy_instance *in), void *arg)
{
    struct settle_waiter *w = in->state == SY_INST_STOPPING ? calloc(1, sizeof *w) : NULL;
    if (w == NULL) {
        fn(arg, in);
        return;
    }
    w->fn = fn;
    w->arg = arg;
    struct settle_waiter **tail = &in->waiters;
    while (*tail)
        tail = &(*tail)->next;
    *tail = w;
}

static void *precheck_main(void *arg)
{
    struct sy_instance *in = arg;
    json_t *checks = json_array();
    in->precheck_rc = in->eng->sync->precheck(in->pair->cfg, in->dir, checks);
    in->precheck_out = checks; /* the loop takes it after the join */
    __atomic_store_n(&in->precheck_done, 1, __ATOMIC_RELEASE);
    event_active(in->stopped_ev, 0, 0);  /* a retiring instance waits for this thread too */
    return NULL;
}

static void *lag_main(void *arg);

static void begin_precheck(struct sy_instance *in)
{
    json_decref(in->checks);
    in->checks = NULL;
    in->precheck_done = 0;
    set_state(in, SY_INST_PRECHECKING);
    if (pthread_create(&in->precheck_thread, NULL, precheck_main, in) != 0) {
        snprintf(in->last_error, sizeof in->last_error, "cannot start the precheck thread");
        set_state(in, SY_INST_FAILED);
        return;
    }
    in->precheck_running = true;
}

/* Starts what the current state needs. */
static void run_state(struct sy_instance *in)
{
    if (in->retire.on)
        return;
    switch (in->state) {
    case SY_INST_PRECHECKING:
        begin_precheck(in);
        break;
    case SY_INST_INITIAL_SYNC:
        if (in->mod[MOD_INIT].ops == NULL) {
            in->initial_sync_done = true; /* no thread runs yet */
            in->write_enabled = true;
            set_state(in, SY_INST_RUNNING);
            run_state(in);
            break;
        }
        if (module_start(in, MOD_INIT) != 0)
            set_state(in, SY_INST_FAILED);
        break;
    case SY_INST_RUNNING:
    case SY_INST_RETRYING:
        if (module_start(in, MOD_COLL) != 0 || (in->write_enabled && module_start(in, MOD_WRITE) != 0)) {
            modules_stop(in, SY_MOD_STOPPED);
            stop_into(in, SY_INST_FAILED);
        }
        break;
    case SY_INST_COLLECTING:
        if (module_start(in, MOD_COLL) != 0)
            set_state(in, SY_INST_FAILED);
        break;
    default:
        break;
    }
}

/* which: the module whose failure it is (MOD__COUNT: none in particular). */
static void fail_instance(struct sy_instance *in, int which, const char *reason, const char *error)
{
    __atomic_store_n(&in->failed_by_write, which == MOD_WRITE, __ATOMIC_RELEASE);
    snprintf(in->reason, sizeof in->reason, "%s", reason);
    snprintf(in->last_error, sizeof in->last_error, "%s", error);
    modules_stop(in, SY_MOD_STOPPED);
    stop_into(in, SY_INST_FAILED);
}

/* A takeover's idempotent replay (overwrite_until) ends once the writer applied past it: cleared then, so
 * that a writer started again later applies strictly (on_conflict) instead of overwriting every conflict
 * up to the source's position of that day. read: the bound the writer read at its first change (NULL:
 * none new); applied: the writer's applied position. */
static void until_progress(struct sy_instance *in, const char *read, const char *applied)
{
    if (in->overwrite_until[0] == '\0')
        return;
    bool at_first = strcmp(in->overwrite_until, SY_UNTIL_FIRST_CHANGE) == 0;
    if (at_first && read == NULL)
        return;                                   /* not read yet: no change applied since the takeover */
    const char *until = at_first ? read : in->overwrite_until;
    bool passed = until[0] == '\0' || (applied[0] != '\0' && in->eng->position->covers(applied, until));
    if (!at_first && !passed)
        return;
    char was[1024];
    snprintf(was, sizeof was, "%s", until);
    struct sy_module_report *wr = &in->mod[MOD_WRITE].report;
    pthread_mutex_lock(&wr->lock);                 /* the writer reads it at its session's start */
    snprintf(in->overwrite_until, sizeof in->overwrite_until, "%s", passed ? "" : was);
    pthread_mutex_unlock(&wr->lock);
    if (passed)
        sy_log_info("%s: the takeover's idempotent replay is over (applied up to %s): conflicts follow "
                    "on_conflict again", in->id, was[0] ? was : "(nothing to replay)");
    persist(in);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    struct sy_instance *in = arg;
    uint64_t now = sy_now_ms();
    modules_past_grace(in, now);
    settle(in);
    if (in->precheck_running && __atomic_load_n(&in->precheck_done, __ATOMIC_ACQUIRE)) {
        pthread_join(in->precheck_thread, NULL);
        in->precheck_running = false;
        json_decref(in->checks);
        in->checks = in->precheck_out;
        in->precheck_out = NULL;
        if (in->precheck_rc == 0) {
            in->last_error[0] = '\0';
            set_state(in, in->initial_sync_done ? SY_INST_RUNNING : SY_INST_INITIAL_SYNC);
            run_state(in);
        } else {
            snprintf(in->reason, sizeof in->reason, "precheck_failed");
            snprintf(in->last_error, sizeof in->last_error, "precheck failed: run `switchyardctl precheck %s`",
                     in->pair->cfg->name);
            set_state(in, SY_INST_PRECHECK_FAILED);
        }
    }
    bool any_retrying = false;
    for (int i = 0; i < MOD__COUNT; i++) {
        struct module *m = &in->mod[i];
        if (!m->running || m->stopping) /* a stopping module's reports no longer decide anything */
            continue;
        pthread_mutex_lock(&m->report.lock);
        if (now - m->rate_ms >= 1000) {
            uint64_t ev = m->report.events;
            m->per_s = m->rate_ms && ev >= m->rate_events ? (double)(ev - m->rate_events) * 1000.0 /
                                                                (double)(now - m->rate_ms)
                                                          : 0.0;
            m->rate_events = ev;
            m->rate_ms = now;
        }
        enum sy_module_state st = m->report.state;
        uint64_t since = m->report.retry_since_ms;
        bool sync_done = m->report.initial_sync_done;
        char reason[64], error[1024], position[1024];
        snprintf(reason, sizeof reason, "%s", m->report.reason);
        snprintf(error, sizeof error, "%s", m->report.error);
        snprintf(position, sizeof position, "%s", m->report.position);
        char until[1024] = "";
        bool until_read = m->report.until_read;
        if (until_read)
            snprintf(until, sizeof until, "%s", m->report.until);
        m->report.until_read = false;
        pthread_mutex_unlock(&m->report.lock);
        if (i == MOD_WRITE)
            until_progress(in, until_read ? until : NULL, position);
        if (st == SY_MOD_FAILED) {
            char msg[1200];
            snprintf(msg, sizeof msg, "%s: %s", m->ops->name, error);
            fail_instance(in, i, reason, msg);
            return;
        }
        if (st == SY_MOD_RETRYING) {
            any_retrying = true;
            snprintf(in->reason, sizeof in->reason, "%s", reason);
            snprintf(in->last_error, sizeof in->last_error, "%s: %s", m->ops->name, error);
            /* spool_full is backpressure, not a failed connection: it waits as long as it takes */
            if (since && strcmp(reason, "spool_full") != 0 &&
                now - since > (uint64_t)in->pair->cfg->retry_seconds * 1000u) {
                char msg[1200];
                snprintf(msg, sizeof msg, "%s: %s (retried for retry_seconds=%d)", m->ops->name, error,
                         in->pair->cfg->retry_seconds);
                fail_instance(in, i, reason, msg);
                return;
            }
        }
        if (i == MOD_INIT && sync_done) {
            module_stop(in, MOD_INIT, SY_MOD_STOPPED); /* its thread is returning; joined when done */
            module_reap(in, MOD_INIT);
            struct sy_module_report *wr = &in->mod[MOD_WRITE].report;
            pthread_mutex_lock(&wr->lock); /* sy_instance_write_position reads them off the loop */
            in->initial_sync_done = true;
            snprintf(in->start_position, sizeof in->start_position, "%s", position);
            pthread_mutex_unlock(&wr->lock);
            in->write_enabled = true;
            in->last_error[0] = '\0'; /* a retried copy that finished leaves no error behind */
            in->reason[0] = '\0';
            sy_log_info("%s: initial synchronization done; incremental from %s", in->id, position);
            set_state(in, SY_INST_RUNNING);
            run_state(in);
        }
    }
    if ((in->state == SY_INST_RUNNING || in->state == SY_INST_COLLECTING) && any_retrying)
        set_state(in, SY_INST_RETRYING);
    else if (in->state == SY_INST_RETRYING && !any_retrying) {
        in->last_error[0] = '\0';
        set_state(in, in->write_enabled ? SY_INST_RUNNING : SY_INST_COLLECTING);
    }
}

/* ---- lifecycle --------------------------------------------------------------------------------- */

struct sy_instance *sy_instance_open(struct sy_pair *pair, enum sy_direction dir,
                                     const struct sy_engine_ops *eng, char *err, size_t errlen)
{
    struct sy_instance *in = calloc(1, sizeof *in);
    if (in == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    in->pair = pair;
    in->dir = dir;
    in->eng = eng;
    const char *dname = dir == SY_DIR_FORWARD ? "forward" : "reverse";
    snprintf(in->id, sizeof in->id, "%s/%s", pair->cfg->name, dname);
    snprintf(in->dir_path, sizeof in->dir_path, "%s/instances/%s.%s", pair->state_dir, pair->cfg->name, dname);
    snprintf(in->state_path, sizeof in->state_path, "%s/state.json", in->dir_path);
    if (sy_mkdirs(in->dir_path, err, errlen) != 0)
        goto fail;
    int rc = load(in, err, errlen);
    if (rc < 0)
        goto fail;
    if (rc == 1) {
        in->state = SY_INST_PRECHECKING;
        persist(in);
    } else if (in->state == SY_INST_INITIAL_SYNC) {
        sy_log_info("%s: restarted during initial synchronization: the copy starts again", in->id);
    }
    char spool_dir[1200];
    snprintf(spool_dir, sizeof spool_dir, "%s/spool", in->dir_path);
    /* Segments small enough that truncation below the checkpoint frees room under the cap. */
    uint64_t segment = pair->cfg->spool_max_bytes / 8;
    if (segment > (64u << 20))
        segment = 64u << 20;
    if (segment < 4096)
        segment = 4096;
    in->spool = sy_spool_open(spool_dir, pair->cfg->spool_max_bytes, segment, err, errlen);
    if (in->spool == NULL)
        goto fail;
    const struct sy_module_ops *ops[MOD__COUNT] = {
        dir == SY_DIR_FORWARD ? eng->sync->initial_sync : NULL,
        eng->sync->collection,
        eng->sync->write,
    };
    for (int i = 0; i < MOD__COUNT; i++) {
        struct module *m = &in->mod[i];
        m->in = in;
        m->ops = ops[i];
        sy_module_report_init(&m->report);
        sockets_init(&m->sockets);
        m->ctx = (struct sy_module_ctx){
            .cfg = pair->cfg,
            .instance_id = in->id,
            .direction = dir,
            .source = dir == SY_DIR_FORWARD ? &pair->cfg->business : &pair->cfg->dr,
            .dest = dir == SY_DIR_FORWARD ? &pair->cfg->dr : &pair->cfg->business,
            .state_dir = in->dir_path,
            .start_position = in->start_position,
            .overwrite_until = in->overwrite_until,
            .owner_token = pair->owner_token,
            .fence_report = &pair->fence_report,
            .spool = in->spool,
            .report = &m->report,
            .stop = &m->stop,
            .sockets = &m->sockets,
            .commit_wait = &pair->commit_wait,
            .source_side = dir == SY_DIR_FORWARD ? SY_SIDE_BUSINESS : SY_SIDE_DR,
        };
    }
    sy_lag_init(&in->lag);
    in->poll = event_new(pair->base, -1, EV_PERSIST, on_poll, in);
    in->stopped_ev = event_new(pair->base, -1, 0, on_module_done, in);
    struct timeval tv = { 0, POLL_MS * 1000 };
    if (in->poll == NULL || in->stopped_ev == NULL || event_add(in->poll, &tv) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* after stopped_ev exists: the thread signals it as it returns */
    if (eng->position->poll && pthread_create(&in->lag_thread, NULL, lag_main, in) == 0)
        in->lag_running = true;
    run_state(in);
    return in;
fail:
    sy_instance_close(in);
    return NULL;
}

void sy_instance_close(struct sy_instance *in)
{
    sy_instance_close_by(in, sy_now_ms() + STOP_GRACE_MS);
}

/* Whether a module thread has not returned yet. */
static bool threads_busy(struct sy_instance *in)
{
    bool busy = false;
    for (int i = 0; i < MOD__COUNT; i++)
        busy |= in->mod[i].running && !__atomic_load_n(&in->mod[i].done, __ATOMIC_ACQUIRE);
    return busy;
}

/* Every module still busy after its stop has its database connections shut (its open transaction is
 * rolled back by the server); logged once per module. */
static void modules_cut(struct sy_instance *in)
{
    for (int i = 0; i < MOD__COUNT; i++) {
        struct module *m = &in->mod[i];
        if (!m->running || __atomic_load_n(&m->done, __ATOMIC_ACQUIRE) || m->sockets.shut)
            continue;
        size_t n = sockets_shut(&m->sockets);
        sy_log_warn("%s: %s module still busy %llu ms after its stop: %zu database connection(s) shut down to "
                    "end it", in->id, m->ops->name, (unsigned long long)(sy_now_ms() - m->stop_asked_ms), n);
    }
}

void sy_instance_stop_asking(struct sy_instance *in)
{
    if (in != NULL && in->spool != NULL)
        modules_stop(in, SY_MOD_STOPPED);
}

/* A retiring instance whose threads all returned: its owner is told (once). */
static void retire_check(struct sy_instance *in)
{
    if (!in->retire.on || in->retire.reported)
        return;
    for (int i = 0; i < MOD__COUNT; i++) {
        module_reap(in, i);
        if (in->mod[i].running)
            return;
    }
    /* the close joins these two as well: they must have returned for it not to wait */
    if ((in->lag_running && !__atomic_load_n(&in->lag_done, __ATOMIC_ACQUIRE)) ||
        (in->precheck_running && !__atomic_load_n(&in->precheck_done, __ATOMIC_ACQUIRE)))
        return;
    in->retire.reported = true;
    in->retire.done(in->retire.arg, in);
}

static void on_retire_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct sy_instance *in = arg;
    modules_cut(in);
    retire_check(in);
}

void sy_instance_retire(struct sy_instance *in, uint64_t deadline_ms, void (*done)(void *arg, struct sy_instance *in),
                        void *arg)
{
    if (in->retire.on)
        return;
    __atomic_store_n(&in->retire.on, true, __ATOMIC_RELEASE);
    in->retire.by = deadline_ms;
    in->retire.done = done;
    in->retire.arg = arg;
    if (in->poll)
        event_del(in->poll);                       /* no restart, no retry, no precheck outcome */
    __atomic_store_n(&in->lag_stop, 1, __ATOMIC_RELEASE);
    if (in->spool)
        modules_stop(in, SY_MOD_STOPPED);
    uint64_t now = sy_now_ms(), wait = deadline_ms > now ? deadline_ms - now : 0;
    struct timeval tv = { (time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000 };
    in->retire.ev = evtimer_new(in->pair->base, on_retire_deadline, in);
    if (in->retire.ev == NULL || evtimer_add(in->retire.ev, &tv) != 0)
        modules_cut(in);                           /* out of memory: no timer to wait for the deadline */
    event_active(in->stopped_ev, 0, 0);            /* done() once the threads returned, maybe at once */
}

bool sy_instance_is_retiring(const struct sy_instance *in)
{
    return in != NULL && __atomic_load_n(&in->retire.on, __ATOMIC_ACQUIRE);
}

bool sy_instance_is_retired(const struct sy_instance *in)
{
    return in == NULL || in->retire.reported;
}

/* Commands on an instance this node no longer owns (a switch that still runs may ask). */
static int refuse_retiring(const struct sy_instance *in, const char **code, char *msg, size_t msglen)
{
    if (!in->retire.on)
        return 0;
    *code = "owner_lost";
    snprintf(msg, msglen, "%s is closing on this node: the node no longer owns %s", in->id, in->pair->cfg->name);
    return -1;
}

void sy_instance_close_by(struct sy_instance *in, uint64_t deadline_ms)
{
    if (in == NULL)
        return;
    if (in->poll)
        event_free(in->poll);
    if (in->retire.ev)
        event_free(in->retire.ev);
    if (in->lag_running) {
        __atomic_store_n(&in->lag_stop, 1, __ATOMIC_RELEASE);
        pthread_join(in->lag_thread, NULL);
        sy_lag_fini(&in->lag);
    }
    if (in->spool) {
        /* Closing (shutdown) may wait: the threads get the grace to finish cleanly, then are cut. */
        modules_stop(in, SY_MOD_STOPPED);
        while (threads_busy(in) && sy_now_ms() < deadline_ms)
            usleep(5 * 1000);
        modules_cut(in);
        for (int i = 0; i < MOD__COUNT; i++) {
            while (in->mod[i].running && !__atomic_load_n(&in->mod[i].done, __ATOMIC_ACQUIRE))
                usleep(5 * 1000);
            module_reap(in, i);
        }
        if (in->state == SY_INST_STOPPING)
            set_state(in, in->stop_target);
    }
    call_waiters(in);
    if (in->precheck_running)
        pthread_join(in->precheck_thread, NULL);
    json_decref(in->precheck_out);
    for (int i = 0; i < MOD__COUNT; i++) {
        if (in->mod[i].ctx.report) {
            sy_module_report_fini(&in->mod[i].report);
            sockets_reset(&in->mod[i].sockets);
            pthread_mutex_destroy(&in->mod[i].sockets.lock);
        }
    }
    if (in->stopped_ev)
        event_free(in->stopped_ev);
    sy_spool_close(in->spool);
    json_decref(in->checks);
    free(in);
}

void sy_instance_write_position(struct sy_instance *in, char *out, size_t outlen)
{
    struct module *m = &in->mod[MOD_WRITE];
    pthread_mutex_lock(&m->report.lock);
    snprintf(out, outlen, "%s", m->report.position);
    /* No checkpoint yet (nothing applied since the copy): the destination holds the start position
     * (both change under this lock). */
    if (out[0] == '\0' && in->initial_sync_done)
        snprintf(out, outlen, "%s", in->start_position);
    pthread_mutex_unlock(&m->report.lock);
}

void sy_instance_progress(struct sy_instance *in, struct sy_instance_progress *out)
{
    memset(out, 0, sizeof *out);
    out->state = __atomic_load_n(&in->state, __ATOMIC_ACQUIRE);
    struct module *c = &in->mod[MOD_COLL], *w = &in->mod[MOD_WRITE];
    pthread_mutex_lock(&c->report.lock);
    out->collected_seq = c->report.spool_seq;
    snprintf(out->collected, sizeof out->collected, "%s", c->report.position);
    pthread_mutex_unlock(&c->report.lock);
    pthread_mutex_lock(&w->report.lock);
    out->applied_seq = w->report.spool_seq;
    out->write_state = w->report.state;
    snprintf(out->error, sizeof out->error, "%s", w->report.error);
    pthread_mutex_unlock(&w->report.lock);
    out->write_running = __atomic_load_n(&w->running, __ATOMIC_ACQUIRE);
    out->failed_by_write = __atomic_load_n(&in->failed_by_write, __ATOMIC_ACQUIRE);
    sy_instance_write_position(in, out->applied, sizeof out->applied);
}

/* The collection cannot add to the transaction it was spooling: not running, failed, or its source gone. */
static bool collection_cut_off(struct sy_instance *in)
{
    struct module *c = &in->mod[MOD_COLL];
    pthread_mutex_lock(&c->report.lock);
    bool cut = c->report.state == SY_MOD_FAILED || c->report.state == SY_MOD_STOPPED ||
               (c->report.state == SY_MOD_RETRYING && strcmp(c->report.reason, "source_unreachable") == 0);
    pthread_mutex_unlock(&c->report.lock);
    return cut || !__atomic_load_n(&c->running, __ATOMIC_ACQUIRE);
}

int sy_instance_drain_target(struct sy_instance *in, struct sy_drain_target *t, char *err, size_t errlen)
{
    bool cut = collection_cut_off(in);     /* first: what it appended before saying so is on the spool */
    uint64_t end = sy_spool_last_seq(in->spool);
    t->seq = end;
    t->open_records = 0;
    if (!cut || end == 0)
        return 0;
    if (t->cached_end != end) {
        uint64_t seq = 0;
        uint8_t type, *payload = NULL;
        size_t len = 0;
        enum sy_spool_rc rc = sy_spool_find_last(in->spool, sy_collect_ends_txn, NULL, &seq, &type, &payload, &len,
                                                 err, errlen);
        free(payload);
        if (rc == SY_SPOOL_ERROR)
            return -1;
        uint64_t first = sy_spool_first_seq(in->spool);
        t->cached_end = end;
        /* none on disk: nothing there can be applied (what was is applied and freed) */
        t->cached_complete = rc == SY_SPOOL_OK ? seq : first ? first - 1 : end;
    }
    t->seq = t->cached_complete;
    t->open_records = end - t->cached_complete;
    return 0;
}

int sy_instance_skip_to(struct sy_instance *in, const char *position, char *err, size_t errlen)
{
    if (in->retire.on) {
        snprintf(err, errlen, "%s is closing on this node: the node no longer owns %s", in->id, in->pair->cfg->name);
        return -1;
    }
    if (in->state != SY_INST_PAUSED) {
        snprintf(err, errlen, "%s is %s, not paused", in->id, state_names[in->state]);
        return -1;
    }
    struct sy_buf buf;
    sy_buf_init(&buf);
    struct sy_change ch = { .kind = SY_CHANGE_POSITION, .position = position, .position_len = strlen(position) };
    uint64_t seq;
    int rc = -1;
    if (sy_change_encode(&ch, &buf) == 0 &&
        sy_spool_append(in->spool, SY_CHANGE_POSITION, buf.p, buf.len, &seq, err, errlen) == SY_SPOOL_OK &&
        sy_spool_sync(in->spool, err, errlen) == SY_SPOOL_OK)
        rc = 0;
    sy_buf_fini(&buf);
    if (rc != 0)
        return -1;
    sy_log_info("%s: collection continues at %s (spool record %llu)", in->id, position, (unsigned long long)seq);
    in->write_enabled = false;
    in->reason[0] = '\0';
    in->last_error[0] = '\0';
    set_state(in, SY_INST_COLLECTING);
    run_state(in);
    return 0;
}

int sy_instance_stop_write(struct sy_instance *in, const char **code, char *msg, size_t msglen)
{
    if (refuse_retiring(in, code, msg, msglen) != 0)
        return -1;
    if (in->state != SY_INST_RUNNING && in->state != SY_INST_RETRYING && in->state != SY_INST_COLLECTING) {
        *code = "bad_state";
        snprintf(msg, msglen, "%s is %s: its write cannot be stopped", in->id, state_names[in->state]);
        return -1;
    }
    module_stop(in, MOD_WRITE, SY_MOD_STOPPED);
    in->write_enabled = false;
    stop_into(in, in->state == SY_INST_RUNNING ? SY_INST_COLLECTING : in->state);
    return 0;
}

int sy_instance_start_write(struct sy_instance *in, const char **code, char *msg, size_t msglen)
{
    if (refuse_retiring(in, code, msg, msglen) != 0)
        return -1;
    if (in->state != SY_INST_COLLECTING && !(in->state == SY_INST_RETRYING && !in->write_enabled)) {
        *code = "bad_state";
        snprintf(msg, msglen, "%s is %s: only a collecting instance can start writing", in->id,
                 state_names[in->state]);
        return -1;
    }
    in->write_enabled = true;
    if (in->state == SY_INST_COLLECTING)
        set_state(in, SY_INST_RUNNING);
    else
        persist(in);
    run_state(in);
    return 0;
}

bool sy_instance_write_reaches(struct sy_instance *in, const char *want, uint64_t deadline_ms, unsigned first_nap_ms,
                               unsigned max_nap_ms, int *abort)
{
    for (unsigned nap = first_nap_ms;; nap = nap * 2 < max_nap_ms ? nap * 2 : max_nap_ms) {
        char have[1024];
        sy_instance_write_position(in, have, sizeof have);
        if (in->eng->position->covers(have, want))
            return true;
        if (sy_now_ms() >= deadline_ms || (abort && __atomic_load_n(abort, __ATOMIC_ACQUIRE)) ||
            sy_instance_is_retiring(in))
            return false;
        usleep(nap * 1000);
    }
}

bool sy_instance_writing(const struct sy_instance *in)
{
    return in->mod[MOD_WRITE].running &&
           (in->state == SY_INST_RUNNING || in->state == SY_INST_RETRYING || in->state == SY_INST_STOPPING);
}

void sy_instance_dir(const struct sy_pair *pair, enum sy_direction dir, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/instances/%s.%s", pair->state_dir, pair->cfg->name,
             dir == SY_DIR_FORWARD ? "forward" : "reverse");
}

bool sy_instance_exists(const struct sy_pair *pair, enum sy_direction dir)
{
    char path[1200];
    sy_instance_dir(pair, dir, path, sizeof path);
    strncat(path, "/state.json", sizeof path - strlen(path) - 1);
    return access(path, F_OK) == 0;
}

int sy_instance_reverse_make(const struct sy_pair *pair, const char *start_position, const char *created,
                             bool write, char *err, size_t errlen)
{
    char dir[1200], path[1300];
    sy_instance_dir(pair, SY_DIR_REVERSE, dir, sizeof dir);
    if (sy_rmtree(dir, err, errlen) != 0 || sy_mkdirs(dir, err, errlen) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/state.json", dir);
    json_t *doc = json_pack("{s:s,s:b,s:b,s:s,s:s,s:s,s:s}", "state", write ? "running" : "collecting",
                            "initial_sync_done", 1, "write_enabled", write, "start_position", start_position,
                            "last_error", "", "reason", "", "created", created);
    int rc = doc != NULL ? sy_state_write_json(path, doc, err, errlen) : -1;
    if (doc == NULL)
        snprintf(err, errlen, "out of memory");
    json_decref(doc);
    return rc;
}

int sy_instance_reverse_created(const struct sy_pair *pair, char *created, size_t createdlen, char *start_position,
                                size_t startlen, bool *terminated, char *err, size_t errlen)
{
    struct sy_instance *in = calloc(1, sizeof *in);   /* only what load() uses */
    if (in == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    sy_instance_dir(pair, SY_DIR_REVERSE, in->dir_path, sizeof in->dir_path);
    snprintf(in->state_path, sizeof in->state_path, "%s/state.json", in->dir_path);
    int rc = load(in, err, errlen);
    if (rc < 0) {                                       /* the file, or what is in it? */
        FILE *f = fopen(in->state_path, "r");
        if (f != NULL) {
            char c;
            rc = fread(&c, 1, 1, f) == 1 || feof(f) ? -2 : -1;
            fclose(f);
        }
    }
    if (rc == 0) {
        snprintf(created, createdlen, "%s", in->created);
        snprintf(start_position, startlen, "%s", in->start_position);
        *terminated = in->state == SY_INST_TERMINATED;
        rc = 1;
    } else if (rc == 1) {
        rc = 0;
    }
    free(in);
    return rc;
}

struct sy_instance *sy_instance_create_reverse(struct sy_pair *pair, const struct sy_engine_ops *eng,
                                               const char *start_position, const char *created, char *err,
                                               size_t errlen)
{
    if (sy_instance_reverse_make(pair, start_position, created, false, err, errlen) != 0)
        return NULL;
    return sy_instance_open(pair, SY_DIR_REVERSE, eng, err, errlen);
}

int sy_instance_prepare_takeover(const struct sy_pair *pair, enum sy_direction dir, const struct sy_takeover_point *pt,
                                 bool write, const char *held, bool *skipped, char *err, size_t errlen)
{
    /* "failover": paused until a failover's tail, kept in etcd, is resolved (core/cluster_tail.h) */
    bool failover = strcmp(held, "failover") == 0;
    bool paused = failover || strcmp(held, "paused") == 0, terminated = strcmp(held, "terminated") == 0;
    struct sy_instance *in = calloc(1, sizeof *in);   /* only what persist() and load() use */
    if (in == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    *skipped = false;
    snprintf(in->id, sizeof in->id, "%s/%s", pair->cfg->name, dir == SY_DIR_FORWARD ? "forward" : "reverse");
    sy_instance_dir(pair, dir, in->dir_path, sizeof in->dir_path);
    snprintf(in->state_path, sizeof in->state_path, "%s/state.json", in->dir_path);
    char spool_dir[1200];
    snprintf(spool_dir, sizeof spool_dir, "%s/spool", in->dir_path);
    if (sy_mkdirs(in->dir_path, err, errlen) != 0)
        goto out;
    int loaded = load(in, err, errlen);
    if (loaded < 0)
        goto out;
    if (terminated || (loaded == 0 && in->state == SY_INST_TERMINATED)) {
        *skipped = true;
        if (in->state != SY_INST_TERMINATED) {       /* an operator terminated it on another owner */
            in->state = SY_INST_TERMINATED;
            rc = persist(in);
        } else {
            rc = 0;
        }
        goto out;
    }
    if (pt == NULL) {                                  /* no checkpoint: this node's own state ... */
        rc = 0;
        if (paused && (in->state != SY_INST_PAUSED || failover)) {   /* ... paused if an operator paused it
                                                                       (or a failover) elsewhere */
            in->state = SY_INST_PAUSED;
            if (failover)
                snprintf(in->reason, sizeof in->reason, "failover");
            rc = persist(in);
        }
        goto out;
    }
    if (sy_spool_reset(spool_dir, pt->spool_seq + 1, err, errlen) != 0)
        goto out;
    /* what this node's collector took before its last stop (MongoDB) described the spool just emptied: a
     * collector that took it over would skip the entries that spool held and the destination never got */
    char taken[1300];
    snprintf(taken, sizeof taken, "%s/%s", in->dir_path, SY_INSTANCE_TAIL_FILE);
    if (unlink(taken) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove %s: %s", taken, strerror(errno));
        goto out;
    }
    in->state = paused ? SY_INST_PAUSED : write ? SY_INST_RUNNING : SY_INST_COLLECTING;
    in->initial_sync_done = true;
    in->write_enabled = write;
    snprintf(in->start_position, sizeof in->start_position, "%s", pt->position);
    snprintf(in->overwrite_until, sizeof in->overwrite_until, "%s", pt->until);
    in->last_error[0] = in->reason[0] = '\0';
    if (failover)
        snprintf(in->reason, sizeof in->reason, "failover");
    rc = persist(in);
    if (rc != 0)
        snprintf(err, errlen, "cannot persist %s", in->state_path);
out:
    free(in);
    return rc;
}

int sy_instance_destroy(struct sy_instance *in, char *err, size_t errlen)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", in->dir_path);
    sy_instance_close(in);
    return sy_rmtree(dir, err, errlen);
}

/* ---- commands ---------------------------------------------------------------------------------- */

int sy_instance_pause(struct sy_instance *in, const char **code, char *msg, size_t msglen)
{
    if (refuse_retiring(in, code, msg, msglen) != 0)
        return -1;
    if (in->state != SY_INST_RUNNING && in->state != SY_INST_RETRYING && in->state != SY_INST_COLLECTING &&
        in->state != SY_INST_INITIAL_SYNC && in->state != SY_INST_FAILED && in->state != SY_INST_STOPPING) {
        *code = "bad_state";
        snprintf(msg, msglen, "%s is %s: only a running (or failed) instance can be paused", in->id,
                 state_names[in->state]);
        return -1;
    }
    modules_stop(in, SY_MOD_PAUSED);
    stop_into(in, SY_INST_PAUSED);
    return 0;
}

int sy_instance_start(struct sy_instance *in, const char **code, char *msg, size_t msglen)
{
    if (refuse_retiring(in, code, msg, msglen) != 0)
        return -1;
    if (in->dir == SY_DIR_FORWARD && in->pair->reverse && sy_instance_writing(in->pair->reverse)) {
        *code = "reverse_running";
        snprintf(msg, msglen, "%s writes to the business database: pause it (or switch back) before starting %s",
                 in->pair->reverse->id, in->id);
        return -1;
    }
    switch (in->state) {
    case SY_INST_PAUSED:
    case SY_INST_FAILED:
        in->last_error[0] = '\0';
        in->reason[0] = '\0';
        __atomic_store_n(&in->failed_by_write, 0, __ATOMIC_RELEASE);
        if (!in->initial_sync_done) {
            begin_precheck(in);
            return 0;
        }
        set_state(in, in->write_enabled ? SY_INST_RUNNING : SY_INST_COLLECTING);
        run_state(in);
        return 0;
    case SY_INST_COLLECTING:
        /* the seed's "Start Incremental Write" */
        in->write_enabled = true;
        set_state(in, SY_INST_RUNNING);
        run_state(in);
        return 0;
    case SY_INST_PRECHECK_FAILED:
        begin_precheck(in);
        return 0;
    case SY_INST_STOPPING:
        *code = "bad_state";
        snprintf(msg, msglen, "%s is stopping (to %s): its threads are finishing; start it once it is %s", in->id,
                 state_names[in->stop_target], state_names[in->stop_target]);
        return -1;
    default:
        *code = "bad_state";
        snprintf(msg, msglen, "%s is %s: start applies to a paused, failed, collecting or precheck_failed instance",
                 in->id, state_names[in->state]);
        return -1;
    }
}

int sy_instance_may_terminate(const struct sy_instance *in, const char **code, char *msg, size_t msglen)
{
    if (refuse_retiring(in, code, msg, msglen) != 0)
        return -1;
    if (in->state == SY_INST_TERMINATED) {
        *code = "bad_state";
        snprintf(msg, msglen, "%s is already terminated", in->id);
        return -1;
    }
    return 0;
}

int sy_instance_terminate(struct sy_instance *in, const char **code, char *msg, size_t msglen)
{
    if (sy_instance_may_terminate(in, code, msg, msglen) != 0)
        return -1;
    modules_stop(in, SY_MOD_STOPPED);
    stop_into(in, SY_INST_TERMINATED);
    return 0;
}

/* Polls the source's position for lag while the instance runs. */
static void *lag_main(void *arg)
{
    struct sy_instance *in = arg;
    void *handle = NULL;
    bool warned = false;
    while (!__atomic_load_n(&in->lag_stop, __ATOMIC_ACQUIRE)) {
        enum sy_instance_state st = __atomic_load_n(&in->state, __ATOMIC_ACQUIRE);
        if (st == SY_INST_RUNNING || st == SY_INST_COLLECTING || st == SY_INST_RETRYING || st == SY_INST_PAUSED ||
            st == SY_INST_FAILED || st == SY_INST_STOPPING) {
            char pos[SY_LAG_POSITION_MAX], err[256];
            if (in->eng->position->poll(&handle, in->pair->cfg, in->mod[MOD_COLL].ctx.source, pos, sizeof pos, err,
                                        sizeof err) == 0) {
                sy_lag_note(&in->lag, pos, sy_now_ms());
                warned = false;
            } else if (!warned) {
                sy_log_debug("%s: lag: cannot read the source position: %s", in->id, err);
                warned = true;
            }
        }
        for (int i = 0; i < 5 && !__atomic_load_n(&in->lag_stop, __ATOMIC_ACQUIRE); i++)
            usleep(50 * 1000);
    }
    in->eng->position->poll_close(handle);
    __atomic_store_n(&in->lag_done, 1, __ATOMIC_RELEASE);
    event_active(in->stopped_ev, 0, 0);  /* a retiring instance waits for this thread too */
    return NULL;
}

static json_t *module_json(struct sy_instance *in, struct module *m, const char *rate_key)
{
    if (m->ops == NULL)
        return json_null();
    char have[1024];
    pthread_mutex_lock(&m->report.lock);
    snprintf(have, sizeof have, "%s", m->report.position);
    pthread_mutex_unlock(&m->report.lock);
    if (m == &in->mod[MOD_WRITE] && have[0] == '\0')
        sy_instance_write_position(in, have, sizeof have);
    int64_t polled = in->eng->position->covers ? sy_lag_ms(&in->lag, have, in->eng->position->covers, sy_now_ms())
                                               : -1;
    pthread_mutex_lock(&m->report.lock);
    enum sy_module_state st = m->stopping  ? SY_MOD_STOPPING
                              : m->running ? m->report.state
                                           : (m->report.state == SY_MOD_PAUSED ? SY_MOD_PAUSED : SY_MOD_STOPPED);
    json_t *o = json_pack("{s:s,s:I,s:I,s:s,s:I,s:I,s:f}", "state", module_state_names[st], "lag_ms",
                          (json_int_t)(m->report.lag_ms < 0 ? 0 : m->report.lag_ms), "lag_events",
                          (json_int_t)m->report.lag_events, "position", m->report.position, "spool_seq",
                          (json_int_t)m->report.spool_seq, "events", (json_int_t)m->report.events,
                          rate_key, m->running ? m->per_s : 0.0);
    if (m == &in->mod[MOD_WRITE])
        json_object_set_new(o, "conflicts_overwritten", json_integer((json_int_t)m->report.conflicts));
    else {
        json_object_set_new(o, "late_events", json_integer((json_int_t)m->report.late_events));
        json_object_set_new(o, "late_max_ms", json_integer((json_int_t)m->report.late_max_ms));
    }
    if (polled >= 0)
        json_object_set_new(o, "lag_ms", json_integer((json_int_t)polled));
    else if (m->report.lag_ms < 0)
        json_object_set_new(o, "lag_ms", json_null());
    pthread_mutex_unlock(&m->report.lock);
    return o;
}

void sy_instance_sample_lag(struct sy_instance *in, uint64_t wall_ms)
{
    if (in->mod[MOD_WRITE].ops == NULL)
        return;
    json_t *w = module_json(in, &in->mod[MOD_WRITE], "rows_per_s");
    json_t *lag = json_object_get(w, "lag_ms");
    size_t i = in->lag_history.next;
    in->lag_history.at_ms[i] = wall_ms;
    in->lag_history.lag_ms[i] = json_is_integer(lag) && in->state == SY_INST_RUNNING ? json_integer_value(lag) : -1;
    in->lag_history.next = (i + 1) % LAG_SAMPLES;
    if (in->lag_history.n < LAG_SAMPLES)
        in->lag_history.n++;
    json_decref(w);
}

json_t *sy_instance_lag_history_json(const struct sy_instance *in)
{
    json_t *samples = json_array();
    size_t n = in->lag_history.n, first = (in->lag_history.next + LAG_SAMPLES - n) % LAG_SAMPLES;
    for (size_t k = 0; k < n; k++) {
        size_t i = (first + k) % LAG_SAMPLES;
        int64_t v = in->lag_history.lag_ms[i];
        json_array_append_new(samples, json_pack("[I,o]", (json_int_t)in->lag_history.at_ms[i],
                                                 v < 0 ? json_null() : json_integer((json_int_t)v)));
    }
    return json_pack("{s:s,s:i,s:o}", "instance", in->id, "interval_s", SY_LAG_SAMPLE_S, "samples", samples);
}

json_t *sy_instance_status_json(struct sy_instance *in)
{
    struct module *init = &in->mod[MOD_INIT];
    pthread_mutex_lock(&init->report.lock);
    uint64_t done = init->report.done_rows, total = init->report.total_rows;
    pthread_mutex_unlock(&init->report.lock);
    json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:o}", "id", in->id, "direction",
                          in->dir == SY_DIR_FORWARD ? "forward" : "reverse", "state", state_names[in->state],
                          "collection", module_json(in, &in->mod[MOD_COLL], "events_per_s"), "write",
                          module_json(in, &in->mod[MOD_WRITE], "rows_per_s"));
    if (in->dir == SY_DIR_FORWARD)
        json_object_set_new(o, "initial_sync",
                            json_pack("{s:I,s:I,s:b}", "done_rows", (json_int_t)done, "total_rows", (json_int_t)total,
                                      "done", in->initial_sync_done));
    json_object_set_new(o, "last_error", in->last_error[0] ? json_string(in->last_error) : json_null());
    if (in->spool)
        json_object_set_new(o, "spool_bytes", json_integer((json_int_t)sy_spool_bytes(in->spool)));
    if (in->reason[0])
        json_object_set_new(o, "reason", json_string(in->reason));
    if (in->state == SY_INST_STOPPING)
        json_object_set_new(o, "stopping_to", json_string(state_names[in->stop_target]));
    if (in->checks)
        json_object_set(o, "precheck", in->checks);
    return o;
}
