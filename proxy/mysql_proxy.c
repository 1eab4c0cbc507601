/* The MariaDB engine's proxy for one pair (sy_proxy_protocol): listener, client TLS context, the shards of
 * sessions (one per proxy_threads worker loop, or one on the main loop) with their account caches, and each
 * protocol operation as a fan-out over the shards joined here (mysql_fanout.c): hold/release, the switch
 * steps, the `clients` listing, the ack ledger, error counters. */
#include "proxy/mysql_proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proxy/mysql_fanout.h"
#include "proxy/proxy.h"

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    sy_mysql_fanout_accept(arg, fd, sa, salen);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    sy_mysql_session_reap(arg, false);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    sy_mysql_sessions_resume(arg);
}

static void on_cw_wake(evutil_socket_t fd, short what, void *arg)
{
    sy_mysql_cw_progress(arg);
}

static void on_warm(void *arg, const char *err)
{
    struct sy_mysql_proxy *px = arg;
    if (err && px->worker == 0) /* every shard warms its own copy: one line is enough */
        sy_log_warn("pair %s: %s (clients will be refused until it answers)", px->pair->cfg->name, err);
}

/* The pair's commit_wait wake-up (main loop): every shard re-checks its held OKs on its own loop; while
 * degraded, the recovery is judged here against the ledger of every shard. */
static void on_cw_progress(void *arg)
{
    struct sy_mysql_fanout *f = arg;
    struct sy_commit_wait *cw = &f->pair->commit_wait;
    sy_mysql_fanout_cw_wake_all(f);
    pthread_mutex_lock(&cw->lock);
    bool degraded = cw->degraded;
    pthread_mutex_unlock(&cw->lock);
    if (degraded) {
        struct sy_gtid_set ledger;
        sy_mysql_fanout_ledger(f, f->pair->active_side, &ledger);
        sy_mysql_cw_check_recovery(f, &ledger);
    }
}

/* ---- shards ---------------------------------------------------------------------------------------- */

static void shard_close_sessions(struct sy_mysql_proxy *px, void *arg)
{
    struct sy_mysql_session *s;
    while ((s = TAILQ_FIRST(&px->sessions)) != NULL)
        sy_mysql_session_close(s, "switchyardd shutting down");
    sy_mysql_session_reap(px, true);
}

static void shard_noop(struct sy_mysql_proxy *px, void *arg)
{
}

/* On the shard's loop (or before it ever ran): frees what lives there. */
static void shard_free(struct sy_mysql_proxy *px, void *arg)
{
    if (px == NULL)
        return;
    shard_close_sessions(px, NULL);
    free(px->dead);
    sy_mysql_accounts_free(px->accounts);
    if (px->reaper)
        event_free(px->reaper);
    if (px->resume)
        event_free(px->resume);
    if (px->cw_wake)
        event_free(px->cw_wake);
    free(px);
}

static void shard_free_job(void *px)
{
    shard_free(px, NULL);
}

static struct sy_mysql_proxy *shard_new(struct sy_mysql_fanout *f, int i, struct event_base *base)
{
    struct sy_mysql_proxy *px = calloc(1, sizeof *px);
    if (px == NULL)
        return NULL;
    px->pair = f->pair;
    px->fan = f;
    px->worker = i;
    px->base = base;
    px->tls = f->tls;
    px->next_id = SY_MYSQL_FIRST_SESSION_ID + (uint32_t)i;
    px->id_step = (uint32_t)f->n;
    TAILQ_INIT(&px->sessions);
    TAILQ_INIT(&px->closing);
    TAILQ_INIT(&px->cw_waiters);
    px->reaper = evtimer_new(base, on_reap, px);
    px->resume = evtimer_new(base, on_resume, px);
    px->cw_wake = event_new(base, -1, 0, on_cw_wake, px);
    px->accounts = sy_mysql_accounts_new(base, f->pair->cfg->name, f->pair->cfg);
    if (px->reaper == NULL || px->resume == NULL || px->cw_wake == NULL || px->accounts == NULL) {
        shard_free(px, NULL);
        return NULL;
    }
    sy_mysql_accounts_set_endpoint(px->accounts, sy_pair_active_endpoint(f->pair));
    return px;
}

/* On the shard's loop: warm its account cache (and learn the server's version for our greeting). */
static void shard_warm(struct sy_mysql_proxy *px, void *arg)
{
    sy_mysql_accounts_refresh(px->accounts, on_warm, px);
}

/* Per-shard results of a fan-out, joined on the main loop. */
struct sy_mysql_gather {
    enum sy_side side;
    bool flag;
    uint64_t n;
    const char *msg;
    size_t counts[SY_MYSQL_MAX_SHARDS];
    json_t *lists[SY_MYSQL_MAX_SHARDS];
    struct sy_switch_progress prog[SY_MYSQL_MAX_SHARDS];
    uint64_t errors[SY_MYSQL_MAX_SHARDS][SY_ERR__COUNT];
};

/* ---- the protocol ---------------------------------------------------------------------------------- */

static void proxy_stop(void *state)
{
    struct sy_mysql_fanout *f = state;
    if (f == NULL)
        return;
    if (f->listener)
        evconnlistener_free(f->listener); /* sockets handed out before run before the closes below (FIFO) */
    struct sy_commit_wait *cw = &f->pair->commit_wait;
    if (cw->on_progress_arg == f) {
        cw->on_progress = NULL;
        cw->on_progress_arg = NULL;
    }
    bool all = true;
    for (int i = 0; i < f->n; i++)
        all = all && f->shards[i] != NULL;
    if (all) {
        sy_mysql_fanout_each(f, shard_close_sessions, NULL);
        /* a KILL asked of another shard travels there and back: two more turns and none is in flight */
        sy_mysql_fanout_each(f, shard_noop, NULL);
        sy_mysql_fanout_each(f, shard_noop, NULL);
        sy_mysql_fanout_each(f, shard_free, NULL);
    } else { /* a failed start: the shards never had a session */
        for (int i = 0; i < f->n; i++)
            if (f->shards[i] != NULL) {
                if (f->pool)
                    sy_loop_pool_run(f->pool, i, shard_free_job, f->shards[i]);
                else
                    shard_free(f->shards[i], NULL);
            }
    }
    if (f->tls)
        SSL_CTX_free(f->tls);
    free(f->gather);
    free(f->ledger_scratch);
    free(f);
}

static void *proxy_start(struct sy_pair *pair, char *err, size_t errlen)
{
    struct sy_mysql_fanout *f = calloc(1, sizeof *f);
    if (f == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    f->pair = pair;
    f->pool = pair->pool;
    f->n = f->pool ? sy_loop_pool_size(f->pool) : 1;
    f->gather = calloc(1, sizeof *f->gather);
    f->ledger_scratch = sy_mysql_fanout_ledger_scratch_new();
    if (f->gather == NULL || f->ledger_scratch == NULL) {
        snprintf(err, errlen, "out of memory");
        proxy_stop(f);
        return NULL;
    }
    if (pair->cfg->tls_cert[0] != '\0' && (f->tls = sy_tls_server_context(pair->cfg, err, errlen)) == NULL) {
        proxy_stop(f);
        return NULL;
    }
    for (int i = 0; i < f->n; i++)
        if ((f->shards[i] = shard_new(f, i, f->pool ? sy_loop_pool_base(f->pool, i) : pair->base)) == NULL) {
            snprintf(err, errlen, "out of memory");
            proxy_stop(f);
            return NULL;
        }
    f->listener = sy_listener_open(pair->base, &pair->cfg->listen, on_accept, f, pair->listen_addr,
                                   sizeof pair->listen_addr, err, errlen);
    if (f->listener == NULL) {
        proxy_stop(f);
        return NULL;
    }
    pair->commit_wait.on_progress_arg = f;
    pair->commit_wait.on_progress = on_cw_progress;
    sy_mysql_fanout_each(f, shard_warm, NULL);
    return f;
}


/* The fan-out's results, cleared: allocated with the proxy, so a switch step never fails to allocate it (and
 * never skips a step for want of it). Main loop only, one fan-out at a time. */
static struct sy_mysql_gather *gather_new(void *state)
{
    struct sy_mysql_gather *g = ((struct sy_mysql_fanout *)state)->gather;
    memset(g, 0, sizeof *g);
    return g;
}

static size_t gather_sum(struct sy_mysql_gather *g, int n)
{
    size_t sum = 0;
    for (int i = 0; i < n; i++)
        sum += g->counts[i];
    return sum;
}

static int by_id(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "id"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "id"));
    return x < y ? -1 : x > y;
}

/* The shards' lists as one array (sorted by id, i.e. accept order, when `sort`). */
static json_t *gather_list(struct sy_mysql_gather *g, int n, bool sort)
{
    json_t *all = json_array();
    for (int i = 0; i < n; i++) {
        if (g->lists[i] != NULL)
            json_array_extend(all, g->lists[i]);
        json_decref(g->lists[i]);
    }
    size_t len = json_array_size(all);
    if (!sort || n == 1 || len < 2)
        return all;
    json_t **v = malloc(len * sizeof *v);
    if (v == NULL)
        return all;
    for (size_t i = 0; i < len; i++)
        v[i] = json_incref(json_array_get(all, i));
    qsort(v, len, sizeof *v, by_id);
    json_array_clear(all);
    for (size_t i = 0; i < len; i++)
        json_array_append_new(all, v[i]);
    free(v);
    return all;
}

static void g_count(struct sy_mysql_proxy *px, void *arg)
{
    ((struct sy_mysql_gather *)arg)->counts[px->worker] = px->n_sessions;
}

static size_t proxy_client_count(void *state)
{
    struct sy_mysql_gather *g = gather_new(state);
    sy_mysql_fanout_each(state, g_count, g);
    return gather_sum(g, ((struct sy_mysql_fanout *)state)->n);
}

static void g_clients(struct sy_mysql_proxy *px, void *arg)
{
    ((struct sy_mysql_gather *)arg)->lists[px->worker] = sy_mysql_sessions_json(px);
}

static json_t *proxy_clients_json(void *state)
{
    struct sy_mysql_gather *g = gather_new(state);
    sy_mysql_fanout_each(state, g_clients, g);
    return gather_list(g, ((struct sy_mysql_fanout *)state)->n, true);
}

static void g_resume(struct sy_mysql_proxy *px, void *arg)
{
    static const struct timeval now = { 0, 0 };
    evtimer_add(px->resume, &now);
}

static void proxy_hold_changed(void *state, bool held)
{
    if (!held)
        sy_mysql_fanout_each(state, g_resume, NULL);
}

static void g_warm(struct sy_mysql_proxy *px, void *arg)
{
    sy_mysql_sessions_wake(px); /* a switch step uses their connections */
    struct sy_mysql_gather *g = arg;
    sy_mysql_switch_warm(px, g->side, g->flag);
}

static void px_warm(void *state, enum sy_side to, bool old_side_alive)
{
    struct sy_mysql_gather *g = gather_new(state);
    g->side = to;
    g->flag = old_side_alive;
    sy_mysql_fanout_each(state, g_warm, g);
}

static void g_progress(struct sy_mysql_proxy *px, void *arg)
{
    struct sy_mysql_gather *g = arg;
    sy_mysql_switch_progress(px, g->side, &g->prog[px->worker]);
}

static void px_progress(void *state, enum sy_side to, struct sy_switch_progress *out)
{
    struct sy_mysql_fanout *f = state;
    memset(out, 0, sizeof *out);
    struct sy_mysql_gather *g = gather_new(state);
    g->side = to;
    sy_mysql_fanout_each(f, g_progress, g);
    for (int i = 0; i < f->n; i++) {
        out->sessions += g->prog[i].sessions;
        out->in_transaction += g->prog[i].in_transaction;
        out->busy += g->prog[i].busy;
        out->reading += g->prog[i].reading;
        out->not_ready += g->prog[i].not_ready;
        out->warm_failed += g->prog[i].warm_failed;
        out->state_pending += g->prog[i].state_pending;
    }
}

static void g_failures(struct sy_mysql_proxy *px, void *arg)
{
    ((struct sy_mysql_gather *)arg)->lists[px->worker] = sy_mysql_switch_failures(px);
}

static json_t *px_failures(void *state)
{
    struct sy_mysql_gather *g = gather_new(state);
    sy_mysql_fanout_each(state, g_failures, g);
    return gather_list(g, ((struct sy_mysql_fanout *)state)->n, true);
}

static void g_abort(struct sy_mysql_proxy *px, void *arg)
{
    sy_mysql_sessions_wake(px); /* a switch step uses their connections */
    ((struct sy_mysql_gather *)arg)->counts[px->worker] = sy_mysql_switch_abort_transactions(px);
}

static size_t px_abort(void *state)
{
    struct sy_mysql_gather *g = gather_new(state);
    sy_mysql_fanout_each(state, g_abort, g);
    return gather_sum(g, ((struct sy_mysql_fanout *)state)->n);
}

static void g_unmovable(struct sy_mysql_proxy *px, void *arg)
{
    ((struct sy_mysql_gather *)arg)->lists[px->worker] = sy_mysql_switch_unmovable(px);
}

static json_t *px_unmovable(void *state)
{
    struct sy_mysql_gather *g = gather_new(state);
    sy_mysql_fanout_each(state, g_unmovable, g);
    return gather_list(g, ((struct sy_mysql_fanout *)state)->n, true);
}

static void g_close_unmovable(struct sy_mysql_proxy *px, void *arg)
{
    sy_mysql_sessions_wake(px); /* a switch step uses their connections */
    ((struct sy_mysql_gather *)arg)->counts[px->worker] = sy_mysql_switch_close_unmovable(px);
}

static size_t px_close_unmovable(void *state)
{
    struct sy_mysql_gather *g = gather_new(state);
    sy_mysql_fanout_each(state, g_close_unmovable, g);
    return gather_sum(g, ((struct sy_mysql_fanout *)state)->n);
}

static void g_unwarm(struct sy_mysql_proxy *px, void *arg)
{
    sy_mysql_sessions_wake(px); /* a switch step uses their connections */
    sy_mysql_switch_unwarm(px);
}

static void px_unwarm(void *state)
{
    sy_mysql_fanout_each(state, g_unwarm, NULL);
}

static void g_flip(struct sy_mysql_proxy *px, void *arg)
{
    sy_mysql_sessions_wake(px); /* a switch step uses their connections */
    struct sy_mysql_gather *g = arg;
    g->counts[px->worker] = sy_mysql_switch_flip(px, g->side);
}

static size_t px_flip(void *state, enum sy_side to)
{
    struct sy_mysql_gather *g = gather_new(state);
    g->side = to;
    sy_mysql_fanout_each(state, g_flip, g);
    return gather_sum(g, ((struct sy_mysql_fanout *)state)->n);
}

static void g_fail_held(struct sy_mysql_proxy *px, void *arg)
{
    struct sy_mysql_gather *g = arg;
    g->counts[px->worker] = sy_mysql_sessions_fail_held(px, g->n, g->msg);
}

static size_t px_fail_held(void *state, uint64_t held_ms, const char *msg)
{
    struct sy_mysql_gather *g = gather_new(state);
    g->n = held_ms;
    g->msg = msg;
    sy_mysql_fanout_each(state, g_fail_held, g);
    return gather_sum(g, ((struct sy_mysql_fanout *)state)->n);
}

static void g_errors(struct sy_mysql_proxy *px, void *arg)
{
    memcpy(((struct sy_mysql_gather *)arg)->errors[px->worker], px->client_errors, sizeof px->client_errors);
}

static json_t *px_client_errors(void *state)
{
    struct sy_mysql_fanout *f = state;
    static const char *const names[SY_ERR__COUNT] = { "auth", "aborted_transaction", "forced_close",
                                                      "lost_connection", "other", "commit_wait_timeout" };
    uint64_t sum[SY_ERR__COUNT] = { 0 };
    struct sy_mysql_gather *g = gather_new(f);
    sy_mysql_fanout_each(f, g_errors, g);
    for (int i = 0; i < f->n; i++)
        for (int r = 0; r < SY_ERR__COUNT; r++)
            sum[r] += g->errors[i][r];
    json_t *o = json_object();
    for (int i = 0; i < SY_ERR__COUNT; i++)
        json_object_set_new(o, names[i], json_integer((json_int_t)sum[i]));
    return o;
}

static void px_ledger(void *state, enum sy_side side, char *out, size_t outlen)
{
    struct sy_gtid_set set;
    sy_mysql_fanout_ledger(state, side, &set);
    sy_gtid_set_format(&set, out, outlen);
}

/* Per domain, the later of the two (a ledger that does not parse leaves `into` as it is). */
static void px_ledger_merge(char *into, size_t intolen, const char *other)
{
    struct sy_gtid_set a, b;
    if (!sy_gtid_set_parse(into, strlen(into), &a) || !sy_gtid_set_parse(other, strlen(other), &b)) {
        sy_log_warn("ack ledgers '%s' and '%s': not both GTID sets, not merged", into, other);
        return;
    }
    for (size_t k = 0; k < b.n; k++)
        sy_gtid_set_advance(&a, &b.v[k]);
    sy_gtid_set_format(&a, into, intolen);
}

const struct sy_proxy_protocol sy_mysql_protocol = {
    .engine = SY_ENGINE_MARIADB,
    .start = proxy_start,
    .stop = proxy_stop,
    .client_count = proxy_client_count,
    .clients_json = proxy_clients_json,
    .hold_changed = proxy_hold_changed,
    .switch_warm = px_warm,
    .switch_progress = px_progress,
    .switch_failures = px_failures,
    .switch_abort_transactions = px_abort,
    .switch_unmovable = px_unmovable,
    .switch_close_unmovable = px_close_unmovable,
    .switch_unwarm = px_unwarm,
    .switch_flip = px_flip,
    .ack_ledger = px_ledger,
    .ack_ledger_merge = px_ledger_merge,
    .client_errors = px_client_errors,
    .fail_held = px_fail_held,
};
