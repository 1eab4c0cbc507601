/* The SQL Server proxy's part of a switch (switchover, switchback, failover), driven by core/switch.c through
 * the sy_proxy_protocol vtable, all on the loop thread:
 *
 *   warm    every logged-in session that can move (tds_track.h) gets a second connection on the other side:
 *           the proxy's PRELOGIN, the session's LOGIN7 rebuilt with the password it keeps in memory, then a
 *           batch restoring database, language and SET options, then every prepared statement prepared
 *           again (sp_prepare with the client's @params/@stmt, in the order of the client's handles), then,
 *           when the new connection's handles lag behind the client's, filler prepares until the next handle
 *           the server gives is above every handle the client holds (a new statement's handle never
 *           collides with an old one the proxy maps). Called again and again until the flip: a session
 *           whose state changed since (track.gen) is prepared again.
 *   abort   txn_drain_ms spent: each open transaction is rolled back on the old side (an internal batch whose
 *           response the client never sees; after the request in flight when there is one); the session's
 *           next request is answered by the proxy with error 1205 and the ENVCHANGE rollback, as SQL Server
 *           answers a deadlock victim: its COMMIT never reaches the new side inside that transaction.
 *   flip    each session's backend is swapped for its warm connection (sessions are idle: the pair is held
 *           and every response in flight has completed); the prepared handles the client holds map to the
 *           new connection's, and from then on every request's handles and ALL_HEADERS descriptor are
 *           rewritten for the new server (tds_session.c).
 *   unwarm  a switch rolled back: the warm connections are dropped.
 * Unmovable sessions (temp tables, cursors, app locks, distributed transactions, tracking lost) make the
 * switch refuse; --force closes them with an error naming why. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "core/log.h"
#include "proxy/tds_session.h"

#define WARM_CONNECT_S 10          /* connect timeout of a warm connection */
#define WARM_REPLY_MAX (4u << 20)  /* a warm step's response, read whole */
#define WARM_BURN_MAX 4096         /* filler prepares at most (handles further apart: the session cannot move) */

enum warm_state {
    W_CONNECTING, /* TCP connect in progress */
    W_PRELOGIN,   /* the proxy's PRELOGIN sent */
    W_LOGIN,      /* the session's LOGIN7 sent */
    W_RESTORE,    /* the restore batch sent */
    W_PREPARE,    /* sp_prepare of preps[order[at]] sent */
    W_BURN,       /* filler prepares sent */
    W_READY,      /* the flip can take it */
    W_STALE,      /* the session's state changed under it: the next warm call prepares a new one */
    W_FAILED,     /* `error` says why; the switch is refused */
};

struct sy_tds_warm {
    struct sy_tds_session *s;       /* ref: owns this through s->warm */
    enum warm_state state;
    enum sy_side side;
    struct bufferevent *bev;        /* owned; NULL once failed or taken by the flip */
    uint32_t gen;                   /* the session's track.gen it was prepared for */
    size_t n;                       /* prepared statements to prepare again (s->track.n_preps at the start) */
    size_t *order;                  /* owned: their indexes in s->track.preps, by client handle */
    int32_t *backend;               /* owned: the new connection's handle of each (same index as preps) */
    size_t at;                      /* order[at] is being prepared */
    int32_t last;                   /* the last handle the new connection gave */
    char error[400];
};

static void warm_fail(struct sy_tds_warm *w, const char *fmt, ...) SY_PRINTF(2, 3);
static void warm_fail(struct sy_tds_warm *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->error, sizeof w->error, fmt, ap);
    va_end(ap);
    sy_log_warn("%s: cannot prepare a connection on the %s side for the switch: %s", w->s->label,
                sy_side_name(w->side), w->error);
    w->state = W_FAILED;
    if (w->bev) {
        bufferevent_setcb(w->bev, NULL, NULL, NULL, NULL);
        bufferevent_free(w->bev);
        w->bev = NULL;
    }
}

void sy_tds_warm_free(struct sy_tds_session *s)
{
    struct sy_tds_warm *w = s->warm;
    if (w == NULL)
        return;
    if (w->bev) {
        bufferevent_setcb(w->bev, NULL, NULL, NULL, NULL);
        bufferevent_free(w->bev);
    }
    free(w->order);
    free(w->backend);
    free(w);
    s->warm = NULL;
}

static int warm_send(struct sy_tds_warm *w, uint8_t type, const uint8_t *payload, size_t len)
{
    size_t ps = w->state >= W_LOGIN ? w->s->packet_size : SY_TDS_LOGIN_PACKET;
    size_t cap = len + (len / (ps - SY_TDS_HDR_LEN) + 1) * SY_TDS_HDR_LEN;
    uint8_t *wire = malloc(cap);
    size_t n = wire ? sy_tds_msg_build(wire, cap, type, 0, ps, payload, len) : 0;
    if (n > 0)
        evbuffer_add(bufferevent_get_output(w->bev), wire, n);
    free(wire);
    return n > 0 ? 0 : -1;
}

/* What a warm step's response said: the first ERROR (number and text), the int RETURNVALUEs. */
struct step_result {
    int32_t error;
    char message[300];
    int32_t *handles;               /* owned by the caller: room for `cap` */
    size_t n_handles, cap;
    struct sy_tds_track env;        /* database and language a login response set */
};

static int step_scan(const uint8_t *p, size_t n, struct step_result *r, char *err, size_t errlen)
{
    struct sy_tds_rsp_scan sc = { 0 };
    size_t off = 0;
    int rc = 0;
    while (off < n) {
        struct sy_tds_rsp_ev ev;
        size_t used = 0;
        if (sy_tds_rsp_step(&sc, p + off, n - off, &used, &ev, err, errlen) != SY_PARSE_OK) {
            rc = -1;
            break;
        }
        off += used;
        if (ev.kind == SY_TRSP_ERROR && r->error == 0) {
            struct sy_tds_error e;
            if (sy_tds_error_parse(&ev.tok, &e) == SY_PARSE_OK) {
                r->error = e.number;
                snprintf(r->message, sizeof r->message, "%s", e.message);
            }
        } else if (ev.kind == SY_TRSP_RETURNVALUE && ev.rv_int && r->n_handles < r->cap) {
            r->handles[r->n_handles++] = ev.rv_value;
        } else if (ev.kind == SY_TRSP_ENVCHANGE) {
            sy_tds_track_event(&r->env, &ev);
        }
    }
    sy_tds_rsp_scan_fini(&sc);
    return rc;
}

static void warm_next_prepare(struct sy_tds_warm *w);

/* Filler prepares: the next handle of the new connection must be above every handle the client holds. */
static void warm_burn(struct sy_tds_warm *w)
{
    const struct sy_tds_track *tr = &w->s->track;
    int32_t max = 0;
    for (size_t i = 0; i < tr->n_preps; i++)
        if (tr->preps[i].handle > max)
            max = tr->preps[i].handle;
    if (w->n == 0 || w->last >= max) {
        w->state = W_READY;
        sy_log_debug("%s: ready on the %s side for the switch (%zu prepared statement(s))", w->s->label,
                     sy_side_name(w->side), w->n);
        return;
    }
    int64_t k = (int64_t)max - w->last;
    if (k > WARM_BURN_MAX) {
        warm_fail(w, "prepared handles %d..%d held by the client are too far ahead of the new connection's",
                  (int)w->last, (int)max);
        return;
    }
    static const uint8_t call_tail[] = {
        0xFF, 0xFF, 11, 0, 0, 0,                                  /* sp_prepare, option flags */
        0, 1, 0x26, 4, 0,                                         /* @handle int OUTPUT = NULL */
        0, 0, 0xE7, 0x40, 0x1F, 0x09, 0x04, 0xD0, 0x00, 0x34, 0, 0, /* @params N'' */
        0, 0, 0xE7, 0x40, 0x1F, 0x09, 0x04, 0xD0, 0x00, 0x34, 16, 0, /* @stmt N'SELECT 1' */
        'S', 0, 'E', 0, 'L', 0, 'E', 0, 'C', 0, 'T', 0, ' ', 0, '1', 0,
    };
    size_t len = 22 + (size_t)k * (sizeof call_tail + 1);
    uint8_t *p = malloc(len);
    if (p == NULL) {
        warm_fail(w, "out of memory");
        return;
    }
    size_t n = sy_tds_batch_build(p, len, "", 0);           /* ALL_HEADERS only */
    for (int64_t i = 0; i < k; i++) {
        if (i > 0)
            p[n++] = 0x80;
        memcpy(p + n, call_tail, sizeof call_tail);
        n += sizeof call_tail;
    }
    w->state = W_BURN;
    if (warm_send(w, SY_TDS_RPC, p, n) != 0)
        warm_fail(w, "out of memory");
    free(p);
}

static const struct sy_tds_track *sort_track;  /* qsort has no argument: set just before (loop thread) */
static int cmp_idx(const void *a, const void *b)
{
    int32_t x = sort_track->preps[*(const size_t *)a].handle, y = sort_track->preps[*(const size_t *)b].handle;
    return (x > y) - (x < y);
}

static void warm_restored(struct sy_tds_warm *w)
{
    const struct sy_tds_track *tr = &w->s->track;
    w->n = tr->n_preps;
    w->at = 0;
    if (w->n > 0) {
        w->order = malloc(w->n * sizeof *w->order);
        w->backend = malloc(w->n * sizeof *w->backend);
        if (w->order == NULL || w->backend == NULL) {
            warm_fail(w, "out of memory");
            return;
        }
        for (size_t i = 0; i < w->n; i++)
            w->order[i] = i;
        sort_track = tr;
        qsort(w->order, w->n, sizeof *w->order, cmp_idx);
    }
    warm_next_prepare(w);
}

static void warm_next_prepare(struct sy_tds_warm *w)
{
    if (w->at == w->n) {
        warm_burn(w);
        return;
    }
    const struct sy_tds_prep *pr = &w->s->track.preps[w->order[w->at]];
    size_t cap = 64 + pr->handle_param_len + pr->def_len;
    uint8_t *p = malloc(cap);
    size_t n = p ? sy_tds_prepare_rpc_build(p, cap, pr) : 0;
    w->state = W_PREPARE;
    if (n == 0 || warm_send(w, SY_TDS_RPC, p, n) != 0)
        warm_fail(w, "cannot build sp_prepare for handle %d", (int)pr->handle);
    free(p);
}

static void warm_login_done(struct sy_tds_warm *w, const struct step_result *r)
{
    char sql[8192];
    size_t n = sy_tds_track_restore_sql(&w->s->track, r->env.database, r->env.language, sql, sizeof sql);
    if (n == (size_t)-1) {
        warm_fail(w, "the session's state is too long to restore");
        return;
    }
    if (n == 0) {
        warm_restored(w);
        return;
    }
    uint8_t payload[2 * sizeof sql + 32];
    size_t pl = sy_tds_batch_build(payload, sizeof payload, sql, 0);
    w->state = W_RESTORE;
    if (pl == 0 || warm_send(w, SY_TDS_SQL_BATCH, payload, pl) != 0)
        warm_fail(w, "cannot build the restore batch");
}

static void on_warm_read(struct bufferevent *bev, void *arg)
{
    struct sy_tds_warm *w = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (w->state != W_FAILED && w->state != W_READY && w->state != W_STALE) {
        if (w->gen != w->s->track.gen) {          /* preps may have moved: nothing indexed by them is valid */
            w->state = W_STALE;
            return;
        }
        size_t avail = evbuffer_get_length(in);
        if (avail < SY_TDS_HDR_LEN)
            return;
        const uint8_t *p = evbuffer_pullup(in, -1);
        struct sy_tds_msg m;
        char err[200];
        enum sy_parse pr = sy_tds_msg_frame(p, avail, SY_TDS_MAX_PACKET, WARM_REPLY_MAX, &m, err, sizeof err);
        if (pr == SY_PARSE_AGAIN)
            return;
        if (pr == SY_PARSE_BAD) {
            warm_fail(w, "the server sent a bad packet: %s", err);
            return;
        }
        uint8_t *pl = malloc(m.payload_len ? m.payload_len : 1);
        if (pl == NULL) {
            warm_fail(w, "out of memory");
            return;
        }
        sy_tds_msg_payload(p, &m, pl);
        evbuffer_drain(in, m.wire_len);
        size_t want = w->state == W_BURN ? WARM_BURN_MAX : 1;
        int32_t handles[WARM_BURN_MAX];
        struct step_result r = { .handles = handles, .cap = want };
        sy_tds_track_init(&r.env, "", "");
        if (w->state == W_PRELOGIN) {
            struct sy_tds_prelogin sp;
            int rc = sy_tds_login_prelogin_check(pl, m.payload_len, m.type, &sp, err, sizeof err);
            free(pl);
            if (rc != 0) {
                warm_fail(w, "PRELOGIN: %s", err);
                return;
            }
            w->state = W_LOGIN;
            if (sy_tds_login_login7_send(w->s, w->bev, err, sizeof err) != 0)
                warm_fail(w, "%s", err);
            continue;
        }
        int rc = m.type == SY_TDS_TABULAR ? step_scan(pl, m.payload_len, &r, err, sizeof err) : -1;
        if (w->state == W_LOGIN && rc == 0) {
            struct sy_tds_login_result lr;
            if (sy_tds_login_result_scan(pl, m.payload_len, &lr, err, sizeof err) != SY_PARSE_OK)
                rc = -1;
            else if (!lr.loginack && r.error == 0) {
                r.error = -1;
                snprintf(r.message, sizeof r.message, "refused without an error token");
            } else if ((lr.packet_size ? lr.packet_size : SY_TDS_LOGIN_PACKET) != w->s->packet_size) {
                r.error = -1;
                snprintf(r.message, sizeof r.message, "packet size %u there, %zu here", (unsigned)lr.packet_size,
                         w->s->packet_size);
            }
        }
        free(pl);
        if (rc != 0) {
            sy_tds_track_fini(&r.env);
            warm_fail(w, "cannot read the server's response: %s", m.type == SY_TDS_TABULAR ? err : "not TABULAR");
            return;
        }
        if (r.error != 0) {
            sy_tds_track_fini(&r.env);
            warm_fail(w, "%s: %d %s",
                      w->state == W_LOGIN     ? "login"
                      : w->state == W_RESTORE ? "restoring database, language and SET options"
                      : w->state == W_PREPARE ? "preparing a statement again"
                                              : "filler prepares",
                      (int)r.error, r.message);
            return;
        }
        switch (w->state) {
        case W_LOGIN:
            warm_login_done(w, &r);
            break;
        case W_RESTORE:
            warm_restored(w);
            break;
        case W_PREPARE:
            if (r.n_handles != 1) {
                warm_fail(w, "sp_prepare answered without a handle");
                break;
            }
            w->backend[w->order[w->at]] = w->last = r.handles[0];
            w->at++;
            warm_next_prepare(w);
            break;
        case W_BURN:
            if (r.n_handles > 0)
                w->last = r.handles[r.n_handles - 1];
            warm_burn(w);
            if (w->state == W_BURN)                       /* still behind: the server reuses handles */
                warm_fail(w, "the server's prepared handles stay below the client's");
            break;
        default:
            break;
        }
        sy_tds_track_fini(&r.env);
    }
}

static void on_warm_event(struct bufferevent *bev, short what, void *arg)
{
    struct sy_tds_warm *w = arg;
    if (!(what & BEV_EVENT_CONNECTED)) {
        warm_fail(w, "%s", (what & BEV_EVENT_TIMEOUT) ? "connect timed out"
                           : w->state == W_CONNECTING ? "cannot connect"
                                                      : "the server closed the connection");
        return;
    }
    sy_relay_backend_connected(bev);
    w->state = W_PRELOGIN;
    sy_tds_login_prelogin_send(bev);
}

static void warm_open(struct sy_tds_session *s, enum sy_side to)
{
    const struct sy_endpoint *ep = to == SY_SIDE_DR ? &s->px->pair->cfg->dr : &s->px->pair->cfg->business;
    struct sy_tds_warm *w = calloc(1, sizeof *w);
    if (w == NULL)
        return;                                   /* not ready: tried again at the next poll */
    s->warm = w;
    w->s = s;
    w->side = to;
    w->gen = s->track.gen;
    w->state = W_CONNECTING;
    char err[300];
    if (sy_relay_backend_connect(s->px->base, ep, WARM_CONNECT_S, 256u << 10, on_warm_read, NULL, on_warm_event, w,
                                 &w->bev, err, sizeof err) != 0)
        warm_fail(w, "%s", err);
}

/* ---- the hooks ------------------------------------------------------------------------------------------ */

static bool movable(const struct sy_tds_session *s)
{
    char buf[200];
    return sy_tds_session_unmovable_reason(s, buf, sizeof buf) == NULL;
}

void sy_tds_switch_warm(void *state, enum sy_side to, bool old_side_alive)
{
    struct sy_tds_proxy *px = state;
    for (struct sy_tds_session *s = sy_tds_session_first(px); s != NULL; s = sy_tds_session_next(s)) {
        if (s->side == to || !movable(s))
            continue;
        /* held now: an empty transaction (pytds' commit-and-begin) ends on the old side at once (a fence may
         * disconnect sessions with open transactions); the client's next request begins one anew */
        if (px->pair->held && old_side_alive && s->track.in_txn && s->track.txn_empty && !sy_tds_session_busy(s))
            sy_tds_session_end_empty_transaction(s);
        struct sy_tds_warm *w = s->warm;
        if (w != NULL && w->state != W_FAILED && (w->side != to || w->gen != s->track.gen))
            sy_tds_warm_free(s);                  /* its state changed since, or another switch */
        if (s->warm == NULL)
            warm_open(s, to);
    }
}

void sy_tds_switch_progress(void *state, enum sy_side to, struct sy_switch_progress *out)
{
    struct sy_tds_proxy *px = state;
    memset(out, 0, sizeof *out);
    for (struct sy_tds_session *s = sy_tds_session_first(px); s != NULL; s = sy_tds_session_next(s)) {
        out->sessions++;
        if (sy_tds_session_busy(s) && !sy_tds_session_login_unsent(s))
            out->busy++;                          /* a login still with the client is pointed anew at the flip */
        if (s->track.in_txn && !s->track.txn_empty && !s->txn_aborted)
            out->in_transaction++;                /* an empty one (commit-and-begin) is begun anew at the flip */
        if (s->side == to || !movable(s))
            continue;
        if (s->warm != NULL && s->warm->state == W_FAILED)
            out->warm_failed++;
        else if (s->warm == NULL || s->warm->state != W_READY || s->warm->gen != s->track.gen)
            out->not_ready++;
    }
}

json_t *sy_tds_switch_failures(void *state)
{
    struct sy_tds_proxy *px = state;
    json_t *list = json_array();
    for (struct sy_tds_session *s = sy_tds_session_first(px); s != NULL; s = sy_tds_session_next(s))
        if (s->warm != NULL && s->warm->state == W_FAILED)
            json_array_append_new(list, json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)s->id, "user", s->user,
                                                  "peer", s->peer, "error", s->warm->error));
    return list;
}

size_t sy_tds_switch_abort_transactions(void *state)
{
    struct sy_tds_proxy *px = state;
    size_t n = 0;
    for (struct sy_tds_session *s = sy_tds_session_first(px); s != NULL; s = sy_tds_session_next(s)) {
        if (!s->track.in_txn || s->track.txn_empty || s->txn_aborted)
            continue;
        sy_tds_session_abort_transaction(s);
        n++;
    }
    return n;
}

json_t *sy_tds_switch_unmovable(void *state)
{
    struct sy_tds_proxy *px = state;
    json_t *list = json_array();
    for (struct sy_tds_session *s = sy_tds_session_first(px); s != NULL; s = sy_tds_session_next(s))
        if (s->logged_in && !movable(s))
            json_array_append_new(list, sy_tds_session_unmovable_json(s, "reason"));
    return list;
}

size_t sy_tds_switch_close_unmovable(void *state)
{
    struct sy_tds_proxy *px = state;
    size_t n = 0;
    struct sy_tds_session *s, *next;
    for (s = sy_tds_session_first(px); s != NULL; s = next) {
        next = sy_tds_session_next(s);
        char buf[200];
        const char *why = s->logged_in ? sy_tds_session_unmovable_reason(s, buf, sizeof buf) : NULL;
        if (why == NULL)
            continue;
        char msg[300];
        snprintf(msg, sizeof msg, "session closed by a forced switch: it cannot move (%s)", why);
        sy_tds_session_fatal(s, msg);
        n++;
    }
    return n;
}

void sy_tds_switch_unwarm(void *state)
{
    struct sy_tds_proxy *px = state;
    for (struct sy_tds_session *s = sy_tds_session_first(px); s != NULL; s = sy_tds_session_next(s))
        sy_tds_warm_free(s);
}

size_t sy_tds_switch_flip(void *state, enum sy_side to)
{
    struct sy_tds_proxy *px = state;
    size_t moved = 0;
    struct sy_tds_session *s, *next;
    for (s = sy_tds_session_first(px); s != NULL; s = next) {
        next = sy_tds_session_next(s);
        if (s->side == to)
            continue;
        if (sy_tds_session_login_unsent(s)) {
            sy_tds_session_login_repoint(s);
            continue;
        }
        struct sy_tds_warm *w = s->warm;
        char buf[200];
        const char *why = sy_tds_session_unmovable_reason(s, buf, sizeof buf);
        if (why == NULL && (w == NULL || w->state != W_READY || w->gen != s->track.gen))
            why = "no connection prepared on the new side";
        else if (why == NULL && sy_tds_session_busy(s))
            why = "a request was in flight on the old side";     /* failover past max_hold_ms */
        if (why != NULL) {
            char msg[300];
            snprintf(msg, sizeof msg, "the active side changed and the session could not move: %s", why);
            sy_tds_session_fatal(s, msg);
            continue;
        }
        for (size_t i = 0; i < w->n && w->backend != NULL && i < s->track.n_preps; i++)
            s->track.preps[i].backend = w->backend[i];
        struct bufferevent *bev = w->bev;
        w->bev = NULL;
        sy_tds_warm_free(s);
        sy_tds_session_adopt_backend(s, bev, to);
        moved++;
    }
    sy_log_info("pair %s: %zu session(s) moved to the %s side", px->pair->cfg->name, moved, sy_side_name(to));
    return moved;
}

void sy_tds_switch_ack_ledger(void *state, enum sy_side side, char *out, size_t outlen)
{
    (void)state;
    (void)side;
    if (outlen > 0)
        out[0] = '\0';        /* no acknowledged position is claimed: commits carry no LSN on the wire */
}
