/* The MongoDB engine's proxy for one pair (sy_proxy_protocol): listener, client TLS context, the session
 * registry, hold/release and the `clients` listing. A switch's part (warm connections, the flip) is
 * proxy/mongo_switch.c. */
#include "proxy/mongo_proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "engine/mongo_acks.h"
#include "proxy/mongo_creds.h"
#include "proxy/mongo_session.h"
#include "proxy/proxy.h"

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    sy_mongo_session_accept(arg, fd, sa, salen);
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    sy_mongo_session_reap(arg, false);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    sy_mongo_sessions_resume(arg);
}

static void proxy_stop(void *state)
{
    struct sy_mongo_proxy *px = state;
    if (px == NULL)
        return;
    if (px->listener)
        evconnlistener_free(px->listener);
    struct sy_mongo_session *s;
    while ((s = TAILQ_FIRST(&px->sessions)) != NULL)
        sy_mongo_session_close(s, "switchyardd shutting down", SY_MERR__COUNT);
    sy_mongo_session_reap(px, true);
    sy_mongo_creds_free(px->creds);
    free(px->hello[0]);
    free(px->hello[1]);
    sy_mongo_track_fini(&px->track);
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
    struct sy_mongo_proxy *px = calloc(1, sizeof *px);
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
    px->creds = sy_mongo_creds_new(px->base, pair);
    px->acks[SY_SIDE_BUSINESS] = sy_mongo_acks_of(pair->cfg->name, SY_SIDE_BUSINESS);
    px->acks[SY_SIDE_DR] = sy_mongo_acks_of(pair->cfg->name, SY_SIDE_DR);
    if (px->reaper == NULL || px->resume == NULL || px->creds == NULL || px->acks[SY_SIDE_BUSINESS] == NULL ||
        px->acks[SY_SIDE_DR] == NULL) {
        snprintf(err, errlen, "out of memory");
        proxy_stop(px);
        return NULL;
    }
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
    return px;
}

static size_t proxy_client_count(void *state)
{
    return ((struct sy_mongo_proxy *)state)->n_sessions;
}

static json_t *proxy_clients_json(void *state)
{
    return sy_mongo_sessions_json(state);
}

static void proxy_hold_changed(void *state, bool held)
{
    struct sy_mongo_proxy *px = state;
    if (!held) {
        static const struct timeval now = { 0, 0 };
        evtimer_add(px->resume, &now);
    }
}

/* ---- switches: proxy/mongo_switch.c ------------------------------------------------------------------ */

static void px_ledger(void *state, enum sy_side side, char *out, size_t outlen)
{
    struct sy_mongo_proxy *px = state;
    sy_mongo_acks_ledger(px->acks[side], out, outlen, NULL);
}

static size_t px_fail_held(void *state, uint64_t held_ms, const char *msg)
{
    return sy_mongo_sessions_fail_held(state, held_ms, msg);
}

static json_t *px_client_errors(void *state)
{
    struct sy_mongo_proxy *px = state;
    static const char *const names[SY_MERR__COUNT] = { "unsupported", "bad_frame", "lost_connection",
                                                       "forced_close" };
    json_t *o = json_object();
    for (int i = 0; i < SY_MERR__COUNT; i++)
        json_object_set_new(o, names[i], json_integer((json_int_t)px->client_errors[i]));
    return o;
}

const struct sy_proxy_protocol sy_mongo_protocol = {
    .engine = SY_ENGINE_MONGODB,
    .start = proxy_start,
    .stop = proxy_stop,
    .client_count = proxy_client_count,
    .clients_json = proxy_clients_json,
    .hold_changed = proxy_hold_changed,
    .switch_warm = sy_mongo_switch_warm,
    .switch_progress = sy_mongo_switch_progress,
    .switch_failures = sy_mongo_switch_failures,
    .switch_abort_transactions = sy_mongo_switch_abort_transactions,
    .switch_unmovable = sy_mongo_switch_unmovable,
    .switch_close_unmovable = sy_mongo_switch_close_unmovable,
    .switch_unwarm = sy_mongo_switch_unwarm,
    .switch_flip = sy_mongo_switch_flip,
    .ack_ledger = px_ledger,
    .ack_ledger_merge = sy_mongo_acks_ledger_merge,
    .client_errors = px_client_errors,
    .fail_held = px_fail_held,
};
