/* The SQL Server engine's proxy for one pair (sy_proxy_protocol): listener, the session registry,
 * hold/release and the `clients` listing; the switch hooks are tds_switch.c's (sessions move with their
 * tracked state, tds_track.h). With tls_cert/tls_key the pair's TLS context (TLS 1.2, as SQL Server offers it
 * inside PRELOGIN) serves the sessions' encryption. */
#include "proxy/tds_proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proxy/proxy.h"
#include "proxy/tds_session.h"

/* ---- the pair's proxy ------------------------------------------------------------------------------------ */

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    sy_tds_session_accept(arg, fd, sa, salen);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    sy_tds_session_reap(arg, false);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    sy_tds_sessions_resume(arg);
}

static void proxy_stop(void *state)
{
    struct sy_tds_proxy *px = state;
    if (px == NULL)
        return;
    if (px->listener)
        evconnlistener_free(px->listener);
    struct sy_tds_session *s;
    while ((s = TAILQ_FIRST(&px->sessions)) != NULL)
        sy_tds_session_close(s, "switchyardd shutting down", SY_TERR__COUNT);
    sy_tds_session_reap(px, true);
    if (px->tls)
        SSL_CTX_free(px->tls);
    if (px->reaper)
        event_free(px->reaper);
    if (px->resume)
        event_free(px->resume);
    free(px);
}

static void *proxy_start(struct sy_pair *pair, char *err, size_t errlen)
{
    struct sy_tds_proxy *px = calloc(1, sizeof *px);
    if (px == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    px->pair = pair;
    px->base = pair->base;
    px->next_id = 1;
    TAILQ_INIT(&px->sessions);
    TAILQ_INIT(&px->closing);
    px->reaper = evtimer_new(px->base, on_reap, px);
    px->resume = evtimer_new(px->base, on_resume, px);
    if (px->reaper == NULL || px->resume == NULL) {
        snprintf(err, errlen, "out of memory");
        proxy_stop(px);
        return NULL;
    }
    if (pair->cfg->tls_cert[0] != '\0') {
        if ((px->tls = sy_tls_server_context(pair->cfg, err, errlen)) == NULL) {
            proxy_stop(px);
            return NULL;
        }
        /* TLS 1.2 at most, as SQL Server offers inside PRELOGIN: FreeTDS would strand a TLS 1.3 server's
         * last handshake record in its PRELOGIN buffer */
        SSL_CTX_set_max_proto_version(px->tls, TLS1_2_VERSION);
        /* full handshakes only: the server then speaks last, so no client record follows the handshake's
         * PRELOGIN packets before the proxy has put the TLS filter in place */
        SSL_CTX_set_options(px->tls, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(px->tls, SSL_SESS_CACHE_OFF);
    }
    px->listener = sy_listener_open(px->base, &pair->cfg->listen, on_accept, px, pair->listen_addr,
                                    sizeof pair->listen_addr, err, errlen);
    if (px->listener == NULL) {
        proxy_stop(px);
        return NULL;
    }
    return px;
}

static size_t proxy_client_count(void *state)
{
    return ((struct sy_tds_proxy *)state)->n_sessions;
}

static json_t *proxy_clients_json(void *state)
{
    return sy_tds_sessions_json(state);
}

static void proxy_hold_changed(void *state, bool held)
{
    struct sy_tds_proxy *px = state;
    if (!held) {
        static const struct timeval now = { 0, 0 };
        evtimer_add(px->resume, &now);
    }
}

static json_t *px_client_errors(void *state)
{
    struct sy_tds_proxy *px = state;
    static const char *const names[SY_TERR__COUNT] = { "unsupported", "bad_packet", "lost_connection",
                                                       "forced_close" };
    json_t *o = json_object();
    for (int i = 0; i < SY_TERR__COUNT; i++)
        json_object_set_new(o, names[i], json_integer((json_int_t)px->client_errors[i]));
    return o;
}

static size_t px_fail_held(void *state, uint64_t held_ms, const char *msg)
{
    return sy_tds_sessions_fail_held(state, held_ms, msg);
}

const struct sy_proxy_protocol sy_tds_protocol = {
    .engine = SY_ENGINE_SQLSERVER,
    .start = proxy_start,
    .stop = proxy_stop,
    .client_count = proxy_client_count,
    .clients_json = proxy_clients_json,
    .hold_changed = proxy_hold_changed,
    .switch_warm = sy_tds_switch_warm,
    .switch_progress = sy_tds_switch_progress,
    .switch_failures = sy_tds_switch_failures,
    .switch_abort_transactions = sy_tds_switch_abort_transactions,
    .switch_unmovable = sy_tds_switch_unmovable,
    .switch_close_unmovable = sy_tds_switch_close_unmovable,
    .switch_unwarm = sy_tds_switch_unwarm,
    .switch_flip = sy_tds_switch_flip,
    .fail_held = px_fail_held,
    .ack_ledger = sy_tds_switch_ack_ledger,
    .client_errors = px_client_errors,
};
