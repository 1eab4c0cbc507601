/* The MariaDB engine's proxy for one pair (sy_proxy_protocol): listener, client TLS context,
 * account cache warm-up, the session registry, hold/release and the `clients` listing. */
#include "proxy/mysql_proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proxy/proxy.h"

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    sy_mysql_session_accept(arg, fd, sa, salen);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    sy_mysql_session_reap(arg, false);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    sy_mysql_sessions_resume(arg);
}

static void on_warm(void *arg, const char *err)
{
    struct sy_mysql_proxy *px = arg;
    if (err)
        sy_log_warn("pair %s: %s (clients will be refused until it answers)", px->pair->cfg->name, err);
}

static void proxy_stop(void *state)
{
    struct sy_mysql_proxy *px = state;
    if (px == NULL)
        return;
    if (px->listener)
        evconnlistener_free(px->listener);
    sy_mysql_cw_stop(px);
    struct sy_mysql_session *s;
    while ((s = TAILQ_FIRST(&px->sessions)) != NULL)
        sy_mysql_session_close(s, "switchyardd shutting down");
    sy_mysql_session_reap(px, true);
    free(px->dead);
    sy_mysql_accounts_free(px->accounts);
    if (px->reaper)
        event_free(px->reaper);
    if (px->resume)
        event_free(px->resume);
    if (px->tls)
        SSL_CTX_free(px->tls);
    free(px);
}

static void *proxy_start(struct sy_pair *pair, char *err, size_t errlen)
{
    struct sy_mysql_proxy *px = calloc(1, sizeof *px);
    if (px == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    px->pair = pair;
    px->base = pair->base;
    px->next_id = SY_MYSQL_FIRST_SESSION_ID;
    TAILQ_INIT(&px->sessions);
    TAILQ_INIT(&px->closing);
    TAILQ_INIT(&px->cw_waiters);
    px->reaper = evtimer_new(px->base, on_reap, px);
    px->resume = evtimer_new(px->base, on_resume, px);
    px->accounts = sy_mysql_accounts_new(px->base, pair->cfg->name, pair->cfg);
    if (px->reaper == NULL || px->resume == NULL || px->accounts == NULL) {
        snprintf(err, errlen, "out of memory");
        proxy_stop(px);
        return NULL;
    }
    sy_mysql_accounts_set_endpoint(px->accounts, sy_pair_active_endpoint(pair));
    if (pair->cfg->tls_cert[0] != '\0' && (px->tls = sy_tls_server_context(pair->cfg, err, errlen)) == NULL) {
        proxy_stop(px);
        return NULL;
    }
    px->listener = sy_listener_open(px->base, &pair->cfg->listen, on_accept, px, pair->listen_addr,
                                    sizeof pair->listen_addr, err, errlen);
    if (px->listener == NULL) {
        proxy_stop(px);
        return NULL;
    }
    sy_mysql_cw_start(px);
    /* Warm the account cache (and learn the server's version for our greeting). */
    sy_mysql_accounts_refresh(px->accounts, on_warm, px);
    return px;
}

static size_t proxy_client_count(void *state)
{
    struct sy_mysql_proxy *px = state;
    return px->n_sessions;
}

static json_t *proxy_clients_json(void *state)
{
    return sy_mysql_sessions_json(state);
}

static void proxy_hold_changed(void *state, bool held)
{
    struct sy_mysql_proxy *px = state;
    if (!held) {
        static const struct timeval now = { 0, 0 };
        evtimer_add(px->resume, &now);
    }
}

static void px_warm(void *state, enum sy_side to, bool old_side_alive)
{
    sy_mysql_sessions_wake(state); /* a switch step uses their connections */
    sy_mysql_switch_warm(state, to, old_side_alive);
}

static void px_progress(void *state, enum sy_side to, struct sy_switch_progress *out)
{
    sy_mysql_switch_progress(state, to, out);
}

static json_t *px_failures(void *state)
{
    return sy_mysql_switch_failures(state);
}

static size_t px_abort(void *state)
{
    sy_mysql_sessions_wake(state); /* a switch step uses their connections */
    return sy_mysql_switch_abort_transactions(state);
}

static json_t *px_unmovable(void *state)
{
    return sy_mysql_switch_unmovable(state);
}

static size_t px_close_unmovable(void *state)
{
    sy_mysql_sessions_wake(state); /* a switch step uses their connections */
    return sy_mysql_switch_close_unmovable(state);
}

static void px_unwarm(void *state)
{
    sy_mysql_sessions_wake(state); /* a switch step uses their connections */
    sy_mysql_switch_unwarm(state);
}

static size_t px_flip(void *state, enum sy_side to)
{
    sy_mysql_sessions_wake(state); /* a switch step uses their connections */
    return sy_mysql_switch_flip(state, to);
}

static size_t px_fail_held(void *state, uint64_t held_ms, const char *msg)
{
    return sy_mysql_sessions_fail_held(state, held_ms, msg);
}

static json_t *px_client_errors(void *state)
{
    struct sy_mysql_proxy *px = state;
    static const char *const names[SY_ERR__COUNT] = { "auth", "aborted_transaction", "forced_close",
                                                      "lost_connection", "other", "commit_wait_timeout" };
    json_t *o = json_object();
    for (int i = 0; i < SY_ERR__COUNT; i++)
        json_object_set_new(o, names[i], json_integer((json_int_t)px->client_errors[i]));
    return o;
}

static void px_ledger(void *state, enum sy_side side, char *out, size_t outlen)
{
    sy_mysql_switch_ledger(state, side, out, outlen);
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
    .client_errors = px_client_errors,
    .fail_held = px_fail_held,
};
