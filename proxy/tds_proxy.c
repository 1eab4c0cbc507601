/* The SQL Server engine's proxy for one pair (sy_proxy_protocol): listener, the session registry,
 * hold/release and the `clients` listing. The switch hooks report the truth of this step: a session's
 * backend connection and its login belong to one side, so no session can move; the core has no SQL Server
 * synchronization either, so a switch is refused before it would ask (not_implemented). If the active side
 * changes anyway, sessions left on the old side close. Client TLS (carried inside PRELOGIN) is not built:
 * a pair with tls_cert is refused at start rather than served without the encryption it asks for. */
#include "proxy/tds_proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proxy/proxy.h"

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
        snprintf(err, errlen, "not_implemented: engine sqlserver: client TLS (tls_cert, carried inside PRELOGIN) "
                              "is not built yet; remove tls_cert/tls_key from the pair");
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

/* ---- switches: nothing can move yet --------------------------------------------------------------- */

static void px_warm(void *state, enum sy_side to, bool old_side_alive)
{
    /* No connection on the other side can carry a session yet: switch_progress counts them as failed. */
}

static void px_progress(void *state, enum sy_side to, struct sy_switch_progress *out)
{
    struct sy_tds_proxy *px = state;
    memset(out, 0, sizeof *out);
    for (struct sy_tds_session *s = sy_tds_session_first(px); s != NULL; s = sy_tds_session_next(s)) {
        out->sessions++;
        if (sy_tds_session_busy(s))
            out->busy++;
        if (sy_tds_session_side(s) != to)
            out->warm_failed++;
    }
}

static json_t *session_list(struct sy_tds_proxy *px, const char *key)
{
    json_t *list = json_array();
    for (struct sy_tds_session *s = sy_tds_session_first(px); s != NULL; s = sy_tds_session_next(s))
        json_array_append_new(list, sy_tds_session_unmovable_json(s, key));
    return list;
}

static json_t *px_failures(void *state)
{
    return session_list(state, "error");
}

static size_t px_abort(void *state)
{
    return 0; /* transactions are not tracked yet */
}

static json_t *px_unmovable(void *state)
{
    return session_list(state, "reason");
}

static size_t close_sessions(struct sy_tds_proxy *px, bool only_other_side, enum sy_side side, const char *why)
{
    size_t n = 0;
    struct sy_tds_session *s, *next;
    for (s = sy_tds_session_first(px); s != NULL; s = next) {
        next = sy_tds_session_next(s);
        if (only_other_side && sy_tds_session_side(s) == side)
            continue;
        sy_tds_session_close(s, why, SY_TERR_FORCED_CLOSE);
        n++;
    }
    return n;
}

static size_t px_close_unmovable(void *state)
{
    return close_sessions(state, false, SY_SIDE_BUSINESS,
                          "closed by a forced switch: " SY_TDS_UNMOVABLE);
}

static void px_unwarm(void *state)
{
}

static size_t px_flip(void *state, enum sy_side to)
{
    /* A session left on the old side would keep writing there: it ends instead. None moved. */
    close_sessions(state, true, to, "the active side changed and " SY_TDS_UNMOVABLE);
    return 0;
}

static void px_ledger(void *state, enum sy_side side, char *out, size_t outlen)
{
    if (outlen > 0)
        out[0] = '\0'; /* not tracked yet: no acknowledged position is claimed */
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

const struct sy_proxy_protocol sy_tds_protocol = {
    .engine = SY_ENGINE_SQLSERVER,
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
};
