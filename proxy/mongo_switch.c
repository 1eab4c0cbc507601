/* The MongoDB proxy's part of a switch (switchover, switchback, failover), driven by core/switch.c through
 * the sy_proxy_protocol vtable, all on the loop thread:
 *
 *   warm    every session that can move gets a second connection on the other side; a session logged in
 *           by the proxy (SCRAM pass-through) logs in there from the ClientKey it holds, checking that
 *           side's signature with the user's ServerKey (the forward instance copies admin.system.users,
 *           so the credential is the same); a session that never logged in only connects. Called again
 *           and again until the flip: a session that logged in (or out) since is prepared again.
 *   abort   txn_drain_ms spent: open transactions are rolled back (abortTransaction on the old side when
 *           the session that last used one is idle) and answered with a TransientTransactionError at their
 *           next command; open cursors stop being waited for.
 *   flip    each session's backend is swapped for its warm connection (sessions are idle: the pair is held
 *           and every reply in flight has completed); nothing the client saw is rewritten (request ids
 *           are the proxy's own per backend connection). Cursors still open belong to the old side: a
 *           later getMore gets 43 CursorNotFound (proxy/mongo_session.c, "cursors and transactions").
 *   unwarm  a switch rolled back: the warm connections are dropped, cursors waited for again.
 *
 * A session whose login was passed through to the server (not SCRAM) cannot move; --force closes it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/log.h"
#include "proxy/mongo_session.h"
#include "proxy/mongo_wire.h"
#include "proxy/relay.h"

#define WARM_CONNECT_S 10          /* connect timeout of a warm connection */
#define WARM_MAX_READ (256u << 10) /* as the session's backend once it takes it over */

enum warm_state {
    W_CONNECTING, /* TCP connect to the other side in progress */
    W_LOGIN,      /* the proxy's SCRAM login from ClientKey in progress */
    W_READY,      /* connected (and logged in as the session's user): the flip can take it */
    W_FAILED,     /* could not be prepared: `error` says why; the switch is refused */
};

struct sy_mongo_warm {
    struct sy_mongo_session *s;     /* ref: owns this through s->warm */
    enum warm_state state;
    enum sy_side side;              /* the side it is on */
    struct bufferevent *bev;        /* owned; NULL once failed */
    int32_t next_id;                /* the proxy's request ids on it (the session's sequence after the flip) */
    int32_t login_id;               /* request id of the login step in flight */
    uint32_t login_gen;             /* the session's login_gen it was prepared for */
    struct sy_mongo_login login;    /* secrets: wiped when done and on free */
    char error[400];
};

static const char *label(const struct sy_mongo_session *s)
{
    return s->label;
}

void sy_mongo_warm_free(struct sy_mongo_session *s)
{
    struct sy_mongo_warm *w = s->warm;
    if (w == NULL)
        return;
    if (w->bev) {
        bufferevent_setcb(w->bev, NULL, NULL, NULL, NULL);
        bufferevent_free(w->bev);
    }
    sy_mongo_login_wipe(&w->login);
    OPENSSL_cleanse(w, sizeof *w);
    free(w);
    s->warm = NULL;
}

static void warm_fail(struct sy_mongo_warm *w, const char *fmt, ...) SY_PRINTF(2, 3);
static void warm_fail(struct sy_mongo_warm *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->error, sizeof w->error, fmt, ap);
    va_end(ap);
    sy_log_warn("%s: cannot prepare a connection for the switch: %s", label(w->s), w->error);
    w->state = W_FAILED;
    if (w->bev) {
        bufferevent_setcb(w->bev, NULL, NULL, NULL, NULL);
        bufferevent_free(w->bev);
        w->bev = NULL;
    }
    sy_mongo_login_wipe(&w->login);
}

static int warm_send(struct sy_mongo_warm *w, const bson_t *cmd)
{
    int32_t id = sy_mongo_next_id(&w->next_id);
    if (sy_mongo_cmd_send(w->bev, id, cmd) != 0)
        return -1;
    w->login_id = id;
    return 0;
}

static void on_warm_read(struct bufferevent *bev, void *arg)
{
    struct sy_mongo_warm *w = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n = evbuffer_get_length(in);
    if (n < SY_MONGO_HDR_LEN)
        return;
    const uint8_t *p = evbuffer_pullup(in, SY_MONGO_HDR_LEN);
    struct sy_mongo_header hdr;
    size_t len = 0;
    char err[300];
    enum sy_parse rc = sy_mongo_frame(p, n, SY_MONGO_MAX_MESSAGE, &hdr, &len, err, sizeof err);
    if (rc == SY_PARSE_AGAIN)
        return;
    if (rc == SY_PARSE_BAD || w->state != W_LOGIN || hdr.response_to != w->login_id) {
        warm_fail(w, "the %s server sent %s", sy_side_name(w->side),
                  rc == SY_PARSE_BAD ? err : "a message nobody asked for");
        return;
    }
    p = evbuffer_pullup(in, (ev_ssize_t)len);
    struct sy_mongo_msg m;
    bson_t next;
    int32_t code = 0;
    int step = -1;
    if (p != NULL && sy_mongo_msg_parse(p, len, &m, err, sizeof err) == 0)
        step = sy_mongo_login_step(&w->login, m.body, m.body_len, &next, &code, err, sizeof err);
    evbuffer_drain(in, len);
    if (step == 0) {
        int sent = warm_send(w, &next);
        bson_destroy(&next);
        if (sent != 0)
            warm_fail(w, "out of memory");
        return;
    }
    if (step < 0) {
        char why[400];
        snprintf(why, sizeof why, "'%s' on %s (%d: %s): is the user's credential the same there (the forward "
                                  "instance copies admin.system.users)?", w->s->user, w->s->auth_db, (int)code, err);
        warm_fail(w, "the %s server refused the login from ClientKey of %s", sy_side_name(w->side), why);
        return;
    }
    sy_mongo_login_wipe(&w->login);
    w->state = W_READY;
    sy_log_debug("%s: logged in as '%s' on the %s side for the switch", label(w->s), w->s->user,
                 sy_side_name(w->side));
}

static void on_warm_event(struct bufferevent *bev, short what, void *arg)
{
    struct sy_mongo_warm *w = arg;
    struct sy_mongo_session *s = w->s;
    if (!(what & BEV_EVENT_CONNECTED)) {
        warm_fail(w, "the %s server: %s", sy_side_name(w->side),
                  (what & BEV_EVENT_TIMEOUT) ? "connect timed out"
                  : w->state == W_CONNECTING ? "cannot connect"
                                             : "connection closed");
        return;
    }
    sy_relay_backend_connected(bev);
    if (!(s->logged_in && s->scram)) {
        w->state = W_READY;                      /* nobody logged in: a connection is all it needs */
        return;
    }
    uint8_t r[24];
    char nonce[64];
    bson_t cmd;
    if (RAND_bytes(r, sizeof r) != 1 || sy_scram_b64_encode(r, sizeof r, nonce, sizeof nonce) == 0 ||
        sy_mongo_login_start(&w->login, s->scram_mech, s->user, s->auth_db, NULL, s->client_key, &s->cred, nonce,
                             &cmd) != 0) {
        warm_fail(w, "the %s server: %s", sy_side_name(w->side), "cannot build the login");
        return;
    }
    w->state = W_LOGIN;
    int sent = warm_send(w, &cmd);
    bson_destroy(&cmd);
    if (sent != 0)
        warm_fail(w, "the %s server: %s", sy_side_name(w->side), "out of memory");
}

static void warm_open(struct sy_mongo_session *s, enum sy_side to)
{
    const struct sy_endpoint *ep = to == SY_SIDE_DR ? &s->px->pair->cfg->dr : &s->px->pair->cfg->business;
    struct sy_mongo_warm *w = calloc(1, sizeof *w);
    if (w == NULL)
        return;                                   /* not ready: tried again at the next poll */
    s->warm = w;
    w->s = s;
    w->side = to;
    w->state = W_CONNECTING;
    w->login_gen = s->login_gen;
    char err[300];
    if (sy_relay_backend_connect(s->px->base, ep, WARM_CONNECT_S, WARM_MAX_READ, on_warm_read, NULL, on_warm_event, w,
                                 &w->bev, err, sizeof err) != 0)
        warm_fail(w, "the %s server: %s", sy_side_name(w->side), err);
}

/* ---- the hooks ------------------------------------------------------------------------------------------ */

void sy_mongo_switch_warm(void *state, enum sy_side to, bool old_side_alive)
{
    struct sy_mongo_proxy *px = state;
    sy_mongo_track_expire(&px->track, sy_now_ms());
    for (struct sy_mongo_session *s = sy_mongo_session_first(px); s != NULL; s = sy_mongo_session_next(s)) {
        if (s->side == to || !sy_mongo_session_movable(s))
            continue;
        struct sy_mongo_warm *w = s->warm;
        if (w != NULL && w->state != W_FAILED && (w->side != to || w->login_gen != s->login_gen))
            sy_mongo_warm_free(s);                /* logged in (or out) since, or another switch */
        if (s->warm == NULL)
            warm_open(s, to);
    }
}

void sy_mongo_switch_progress(void *state, enum sy_side to, struct sy_switch_progress *out)
{
    struct sy_mongo_proxy *px = state;
    memset(out, 0, sizeof *out);
    for (struct sy_mongo_session *s = sy_mongo_session_first(px); s != NULL; s = sy_mongo_session_next(s)) {
        out->sessions++;
        if (sy_mongo_session_busy(s))
            out->busy++;
        if (s->side == to || !sy_mongo_session_movable(s))
            continue;                             /* unmovable: refused (or closed by --force) elsewhere */
        if (s->warm != NULL && s->warm->state == W_FAILED)
            out->warm_failed++;
        else if (s->warm == NULL || s->warm->state != W_READY || s->warm->login_gen != s->login_gen)
            out->not_ready++;
    }
    /* open transactions and open cursors are waited for alike (up to txn_drain_ms) */
    out->in_transaction = sy_mongo_txns_open(&px->track, 0) + sy_mongo_cursors_open(&px->track, 0);
}

json_t *sy_mongo_switch_failures(void *state)
{
    struct sy_mongo_proxy *px = state;
    json_t *list = json_array();
    for (struct sy_mongo_session *s = sy_mongo_session_first(px); s != NULL; s = sy_mongo_session_next(s))
        if (s->warm != NULL && s->warm->state == W_FAILED)
            json_array_append_new(list, json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)s->id, "user", s->user,
                                                  "peer", s->peer, "error", s->warm->error));
    return list;
}

static struct sy_mongo_session *session_by_id(struct sy_mongo_proxy *px, uint32_t id)
{
    for (struct sy_mongo_session *s = sy_mongo_session_first(px); s != NULL; s = sy_mongo_session_next(s))
        if (s->id == id)
            return s;
    return NULL;
}

size_t sy_mongo_switch_abort_transactions(void *state)
{
    struct sy_mongo_proxy *px = state;
    struct sy_mongo_track *t = &px->track;
    size_t n = 0;
    for (size_t i = 0; i < t->n_txns; i++) {
        struct sy_mongo_txn *x = &t->txns[i];
        if (x->aborted)
            continue;
        x->aborted = true;
        n++;
        /* rolled back on the old side now when the session that used it last is idle; otherwise the server
         * drops it at transactionLifetimeLimitSeconds (nothing of it was committed either way) */
        struct sy_mongo_session *s = session_by_id(px, x->session);
        bson_t cmd, lsid;
        bson_init(&cmd);
        BSON_APPEND_INT32(&cmd, "abortTransaction", 1);
        BSON_APPEND_DOCUMENT_BEGIN(&cmd, "lsid", &lsid);
        bson_append_binary(&lsid, "id", 2, BSON_SUBTYPE_UUID, x->lsid, SY_MONGO_LSID_LEN);
        bson_append_document_end(&cmd, &lsid);
        BSON_APPEND_INT64(&cmd, "txnNumber", x->txn_number);
        BSON_APPEND_BOOL(&cmd, "autocommit", false);
        BSON_APPEND_UTF8(&cmd, "$db", "admin");
        bool sent = s != NULL && sy_mongo_session_internal(s, &cmd) == 0;
        bson_destroy(&cmd);
        sy_log_info("pair %s: transaction %lld (last used by M-%u) still open after txn_drain_ms: rolled back%s",
                    px->pair->cfg->name, (long long)x->txn_number, x->session,
                    sent ? " (abortTransaction sent)" : "");
    }
    size_t c = sy_mongo_cursors_set(t, SY_MCUR_OPEN, SY_MCUR_ABANDONED);
    if (c > 0)
        sy_log_info("pair %s: %zu cursor(s) still open after txn_drain_ms: not waited for (a getMore after the "
                    "flip gets CursorNotFound)", px->pair->cfg->name, c);
    return n;
}

json_t *sy_mongo_switch_unmovable(void *state)
{
    struct sy_mongo_proxy *px = state;
    json_t *list = json_array();
    for (struct sy_mongo_session *s = sy_mongo_session_first(px); s != NULL; s = sy_mongo_session_next(s))
        if (!sy_mongo_session_movable(s))
            json_array_append_new(list, sy_mongo_session_unmovable_json(s, "reason"));
    return list;
}

size_t sy_mongo_switch_close_unmovable(void *state)
{
    struct sy_mongo_proxy *px = state;
    size_t n = 0;
    struct sy_mongo_session *s, *next;
    for (s = sy_mongo_session_first(px); s != NULL; s = next) {
        next = sy_mongo_session_next(s);
        if (sy_mongo_session_movable(s))
            continue;
        char why[300];
        snprintf(why, sizeof why, "closed by a forced switch: %s", sy_mongo_session_unmovable_reason(s));
        sy_mongo_session_close(s, why, SY_MERR_FORCED_CLOSE);
        n++;
    }
    return n;
}

void sy_mongo_switch_unwarm(void *state)
{
    struct sy_mongo_proxy *px = state;
    for (struct sy_mongo_session *s = sy_mongo_session_first(px); s != NULL; s = sy_mongo_session_next(s))
        sy_mongo_warm_free(s);
    sy_mongo_cursors_set(&px->track, SY_MCUR_ABANDONED, SY_MCUR_OPEN); /* still on the side they are on */
}

size_t sy_mongo_switch_flip(void *state, enum sy_side to)
{
    struct sy_mongo_proxy *px = state;
    size_t moved = 0;
    struct sy_mongo_session *s, *next;
    for (s = sy_mongo_session_first(px); s != NULL; s = next) {
        next = sy_mongo_session_next(s);
        if (s->side == to)
            continue;
        struct sy_mongo_warm *w = s->warm;
        const char *why = NULL;
        if (!sy_mongo_session_movable(s))
            why = sy_mongo_session_unmovable_reason(s);
        else if (w == NULL || w->state != W_READY || w->login_gen != s->login_gen)
            why = "no connection prepared on the new side";
        else if (sy_mongo_session_busy(s))
            why = "a request was in flight on the old side";     /* failover past max_hold_ms */
        if (why != NULL) {
            char msg[300];
            snprintf(msg, sizeof msg, "the active side changed and the session could not move: %s", why);
            sy_mongo_session_close(s, msg, SY_MERR_FORCED_CLOSE);
            continue;
        }
        struct bufferevent *bev = w->bev;
        int32_t next_id = w->next_id;
        w->bev = NULL;
        sy_mongo_warm_free(s);
        sy_mongo_session_adopt_backend(s, bev, to, next_id);
        moved++;
    }
    struct sy_mongo_track *t = &px->track;
    size_t stale = sy_mongo_cursors_set(t, SY_MCUR_OPEN, SY_MCUR_STALE) +
                   sy_mongo_cursors_set(t, SY_MCUR_ABANDONED, SY_MCUR_STALE);
    for (size_t i = 0; i < t->n_txns; i++)
        t->txns[i].aborted = true;                /* failover: whatever was open stayed on the old side */
    sy_log_info("pair %s: %zu session(s) moved to the %s side; %zu cursor(s) left on the old side", px->pair->cfg->name,
                moved, sy_side_name(to), stale);
    return moved;
}
