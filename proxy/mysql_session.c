/* One MariaDB client session's lifecycle (pgbouncer's client.c / sbuf.c split):
 *
 *   mysql_login.c   greeting, TLS, the proxy's own auth check, backend login, COM_CHANGE_USER's replay
 *   mysql_relay.c   requests and replies with one request in flight: framing, KILL and statement-id
 *                   rewrites, aborted transactions, the reply tracker
 *   mysql_track.c   what a switchover replays: variables, schema, ledger, statements, pins
 *   this file       states, writing to the client, backpressure between the two sockets, closing (the
 *                   one close path; freed by the reaper, never inside their own callbacks), events, and
 *                   the entry points the proxy and mysql_switch.c call
 *
 *   client --request--> [frame, inspect, maybe rewrite] --> backend
 *   client <--reply---- [track status, session state, ack ledger] <-- backend
 *
 * A request that arrives while the pair is held (and no transaction is open) stays in the socket buffer
 * until release. */
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/log.h"
#include "proxy/mysql_codec.h"
#include "proxy/mysql_compress.h"
#include "proxy/mysql_conn.h"
#include "proxy/mysql_proxy.h"
#include "proxy/mysql_session.h"
#include "proxy/mysql_sql.h"
#include "proxy/relay.h"

/*                                                  name        logged_in relaying between past_login later */
const struct sess_state_info sy_mysql_sess_states[SS__COUNT] = {
    [SS_HANDSHAKE] = { "HANDSHAKE", false, false, false, false, true },
    [SS_AUTH_SWITCH] = { "AUTH_SWITCH", false, false, false, false, true },
    [SS_AUTH_RELAY] = { "AUTH_RELAY", false, false, false, false, false },
    [SS_LOOKUP] = { "LOOKUP", false, false, false, false, true },
    [SS_LOGIN] = { "LOGIN", false, false, false, false, false },
    [SS_INIT] = { "INIT", false, false, false, false, false },
    [SS_IDLE] = { "IDLE", true, true, true, true, false },
    [SS_BUSY] = { "BUSY", true, true, false, true, false },
    [SS_INFILE] = { "INFILE", true, true, false, true, false },
    [SS_CHANGE_USER] = { "CHANGE_USER", false, false, false, true, false },
    [SS_HELD] = { "HELD", true, true, true, true, false },
    [SS_INTERNAL] = { "INTERNAL", true, false, false, true, false },
    [SS_PARKED] = { "PARKED", false, false, false, true, true },
    [SS_RECONNECT] = { "RECONNECT", false, false, false, true, false },
    [SS_CLOSING] = { "CLOSING", false, false, false, false, false },
};

static void on_client_write(struct bufferevent *bev, void *arg);

/* ---- state, closing ---------------------------------------------------------------------------- */

static void close_session(struct sy_mysql_session *s, const char *why, bool flush);

/* The transitions the code makes (every call site of set_state, checked against a trace of the whole
 * integration suite: 310 k transitions, 26 kinds). Anything else is our bug: logged as an error and the
 * session closed, never carried on in a state nobody expects. */
#define SS_BIT(st) (1u << (st))
static const uint32_t sess_next[SS__COUNT] = {
    [SS_HANDSHAKE] = SS_BIT(SS_AUTH_SWITCH) | SS_BIT(SS_LOOKUP),
    [SS_AUTH_SWITCH] = SS_BIT(SS_LOOKUP),
    [SS_AUTH_RELAY] = SS_BIT(SS_LOGIN) | SS_BIT(SS_CHANGE_USER),              /* back where the relay began */
    [SS_LOOKUP] = SS_BIT(SS_LOGIN) | SS_BIT(SS_PARKED) | SS_BIT(SS_AUTH_SWITCH),
    [SS_LOGIN] = SS_BIT(SS_INIT) | SS_BIT(SS_AUTH_RELAY),
    [SS_INIT] = SS_BIT(SS_IDLE),
    [SS_IDLE] = SS_BIT(SS_BUSY) | SS_BIT(SS_HELD) | SS_BIT(SS_INTERNAL) | SS_BIT(SS_CHANGE_USER) |
                SS_BIT(SS_RECONNECT) | SS_BIT(SS_INIT),
    [SS_BUSY] = SS_BIT(SS_IDLE) | SS_BIT(SS_INFILE) | SS_BIT(SS_INIT) | SS_BIT(SS_INTERNAL),
    [SS_INFILE] = SS_BIT(SS_BUSY),
    [SS_CHANGE_USER] = SS_BIT(SS_INIT) | SS_BIT(SS_AUTH_RELAY) | SS_BIT(SS_IDLE),
    [SS_HELD] = SS_BIT(SS_IDLE) | SS_BIT(SS_BUSY) | SS_BIT(SS_INTERNAL) | SS_BIT(SS_RECONNECT),
    [SS_INTERNAL] = SS_BIT(SS_IDLE) | SS_BIT(SS_HELD) | SS_BIT(SS_BUSY),  /* internal_return */
    [SS_PARKED] = SS_BIT(SS_LOGIN),
    [SS_RECONNECT] = SS_BIT(SS_IDLE) | SS_BIT(SS_INTERNAL),
    [SS_CLOSING] = 0,
};

bool sy_mysql_session_set_state(struct sy_mysql_session *s, enum sess_state to)
{
    if (s->state == to)
        return true;
    /* closing is legal from every state but itself (the one close path) */
    if (to != SS_CLOSING && !(sess_next[s->state] & SS_BIT(to))) {
        sy_log_error("%s: illegal transition %s -> %s: closing the session", s->label, SESS_STATE(s)->name,
                     sy_mysql_sess_states[to].name);
        close_session(s, "internal error: illegal session state transition", false);
        return false;
    }
    if (s->state == SS_CLOSING)
        return false;
    sy_log_debug("%s: %s -> %s", s->label, SESS_STATE(s)->name, sy_mysql_sess_states[to].name);
    s->state = to;
    if (to == SS_IDLE)
        s->kill_pending = false; /* the command ended: a KILL answer still on its way is stale */
    return true;
}

char sy_mysql_session_empty[1];

bool sy_mysql_session_str_set(char **dst, size_t max, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return false;
    size_t len = (size_t)n < max ? (size_t)n : max - 1;
    char *p = sy_mysql_session_empty;
    if (len > 0) {
        if ((p = malloc(len + 1)) == NULL)
            return false;
        va_start(ap, fmt);
        vsnprintf(p, len + 1, fmt, ap); /* fmt may read *dst: freed only after */
        va_end(ap);
    }
    sy_mysql_session_str_free(dst);
    *dst = p;
    return true;
}

void sy_mysql_session_str_free(char **dst)
{
    if (*dst != sy_mysql_session_empty)
        free(*dst);
    *dst = NULL;
}

bool sy_mysql_session_auth_set(struct sy_mysql_session *s, const uint8_t *p, size_t n)
{
    sy_mysql_session_auth_clear(s);
    if (n > SY_MYSQL_AUTH_MAX)
        n = SY_MYSQL_AUTH_MAX;
    if ((s->client_auth = malloc(n ? n : 1)) == NULL)
        return false;
    memcpy(s->client_auth, p, n);
    s->client_auth_len = n;
    return true;
}

void sy_mysql_session_auth_clear(struct sy_mysql_session *s)
{
    if (s->client_auth != NULL) {
        OPENSSL_cleanse(s->client_auth, s->client_auth_len ? s->client_auth_len : 1);
        free(s->client_auth);
    }
    s->client_auth = NULL;
    s->client_auth_len = 0;
}

void sy_mysql_session_stmt_free(struct sess_stmt *st)
{
    free(st->types);
    free(st->sql);
}

void sy_mysql_session_stmts_clear(struct sy_mysql_session *s)
{
    for (size_t i = 0; i < s->n_stmts; i++)
        sy_mysql_session_stmt_free(&s->stmts[i]);
    s->n_stmts = 0;
}

/* Where bytes for the client go: the socket's (or TLS filter's) output, or, for a compressed session, a
 * plain buffer that client_push() hands to the compression filter in one piece per loop callback (so a
 * result set becomes a few frames, not one per row). */
struct evbuffer *sy_mysql_session_client_out(const struct sy_mysql_session *s)
{
    return s->zout ? s->zout : bufferevent_get_output(s->client);
}

static void client_push(struct sy_mysql_session *s)
{
    if (s->zout && s->client && evbuffer_get_length(s->zout) > 0)
        evbuffer_add_buffer(bufferevent_get_output(s->client), s->zout);
}

/* Bytes queued toward the client that the kernel does not have yet, down every filter (TLS,
 * compression) to the socket's own bufferevent. */
static size_t client_pending(const struct sy_mysql_session *s)
{
    return sy_relay_pending(s->client, s->zout);
}

/* A connection the session no longer uses: its reads and writes stop now, and the reaper frees it on the
 * next loop turn (never inside a callback of its own), so the database ends that session (its locks, its
 * temporary tables) without waiting for anything else. */
void sy_mysql_session_release_conn(struct sy_mysql_proxy *px, struct sy_mysql_conn *c)
{
    if (c == NULL)
        return;
    sy_mysql_conn_detach(c);
    sy_mysql_conn_read_enable(c, false);
    struct bufferevent *bev = sy_mysql_conn_bev(c); /* NULL asleep (a session that failed to wake) */
    if (bev != NULL) {
        bufferevent_setcb(bev, NULL, NULL, NULL, NULL); /* not the session's any more */
        bufferevent_disable(bev, EV_WRITE);
    }
    if (px->n_dead == px->cap_dead) {
        size_t cap = px->cap_dead ? px->cap_dead * 2 : 16;
        struct sy_mysql_conn **nd = realloc(px->dead, cap * sizeof *nd);
        if (nd == NULL) {
            sy_mysql_conn_free(c); /* out of memory: free it now (it never calls back) */
            return;
        }
        px->dead = nd;
        px->cap_dead = cap;
    }
    px->dead[px->n_dead++] = c;
    static const struct timeval now = { 0, 0 };
    evtimer_add(px->reaper, &now);
}

/* The one way a session ends. With `flush`, what is queued for the client (a final error) is still
 * written, for at most SESS_FLUSH_MS; the backend and any warm connection are released at once either
 * way. The session leaves the live list now and is freed by the reaper. */
static void close_session(struct sy_mysql_session *s, const char *why, bool flush)
{
    if (s->state == SS_CLOSING)
        return;
    if (!sy_mysql_relay_wake(s)) /* a sleeping session closes as an awake one */
        sy_log_warn("%s: out of memory waking the idle session to close it", s->label);
    sy_log_info("%s: closed (%s)", s->label, why);
    sy_mysql_cw_cancel(s); /* a held OK never reaches the client */
    sy_mysql_session_set_state(s, SS_CLOSING);
    struct sy_mysql_proxy *px = s->px;
    sy_mysql_session_release_conn(px, s->backend);
    sy_mysql_session_release_conn(px, s->warm);
    sy_mysql_session_release_conn(px, s->probe);
    s->backend = s->warm = s->probe = NULL;
    sy_mysql_accounts_cancel(s->wait);
    s->wait = NULL;
    s->flush_deadline_ms = 0;
    if (s->client) {
        sy_relay_reader_enable(&s->client_rd, s->client, false);
        client_push(s);
        if (flush && client_pending(s) > 0) {
            s->flush_deadline_ms = sy_now_ms() + SESS_FLUSH_MS;
            bufferevent_enable(s->client, EV_WRITE); /* on_client_write wakes the reaper once drained */
        } else {
            bufferevent_disable(s->client, EV_WRITE);
        }
    }
    TAILQ_REMOVE(&px->sessions, s, link);
    px->n_sessions--;
    TAILQ_INSERT_TAIL(&px->closing, s, link);
    static const struct timeval now = { 0, 0 };
    evtimer_add(px->reaper, &now);
}

void sy_mysql_session_close(struct sy_mysql_session *s, const char *why)
{
    close_session(s, why, false);
}

static void session_free(struct sy_mysql_session *s)
{
    sy_relay_reader_fini(&s->client_rd); /* before the bev: its socket closes with it */
    if (s->client)
        bufferevent_free(s->client);
    if (s->zout)
        evbuffer_free(s->zout);
    if (s->drained_ev)
        event_free(s->drained_ev);
    sy_mysql_cw_free(s);
    sy_mysql_conn_free(s->backend); /* released at close already: NULL here */
    sy_mysql_conn_free(s->warm);
    OPENSSL_cleanse(s->stage1, sizeof s->stage1);
    sy_mysql_session_auth_clear(s);
    free(s->attrs);
    sy_mysql_session_str_free(&s->label);
    sy_mysql_session_str_free(&s->peer);
    sy_mysql_session_str_free(&s->user);
    sy_mysql_session_str_free(&s->schema);
    sy_mysql_session_str_free(&s->relayed_plugin);
    free(s->pending_prepare_sql);
    free(s->warm_error);
    sy_mysql_session_stmts_clear(s);
    free(s->stmts);
    sy_mysql_track_vars_clear(s);
    free(s->vars);
    sy_mysql_track_free(s);
    free(s);
}

/* The reaper (a zero timer: the next loop turn after a close): frees released connections, and closed
 * sessions whose last bytes reached the client, whose client is gone, or whose flush deadline passed
 * (a client that never reads cannot keep anything open). `all`: everything now (proxy shutdown). */
void sy_mysql_session_reap(struct sy_mysql_proxy *px, bool all)
{
    for (size_t i = 0; i < px->n_dead; i++)
        sy_mysql_conn_free(px->dead[i]);
    px->n_dead = 0;
    uint64_t now = sy_now_ms(), next = 0;
    struct sy_mysql_session *s, *tmp;
    for (s = TAILQ_FIRST(&px->closing); s != NULL; s = tmp) {
        tmp = TAILQ_NEXT(s, link);
        bool flushed = s->client == NULL || s->client_gone || client_pending(s) == 0;
        if (all || flushed || now >= s->flush_deadline_ms) {
            if (!flushed)
                sy_log_info("%s: the client did not read its final error within %d ms: dropped", s->label,
                            SESS_FLUSH_MS);
            TAILQ_REMOVE(&px->closing, s, link);
            session_free(s);
        } else if (next == 0 || s->flush_deadline_ms < next) {
            next = s->flush_deadline_ms;
        }
    }
    if (next != 0) {
        uint64_t wait = next > now ? next - now : 1;
        struct timeval tv = { (time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000 };
        evtimer_add(px->reaper, &tv);
    }
}

/* ---- writing to the client ------------------------------------------------------------------- */

void sy_mysql_session_client_packet(struct sy_mysql_session *s, uint8_t seq, const uint8_t *payload, size_t len)
{
    uint8_t hdr[4];
    sy_mysql_hdr_encode(hdr, (uint32_t)len, seq);
    struct evbuffer *out = sy_mysql_session_client_out(s);
    evbuffer_add(out, hdr, 4);
    evbuffer_add(out, payload, len);
}

/* Why the proxy itself answered an error, for switchyard_client_errors_total{reason}. */
static enum sy_mysql_err_reason err_reason(uint16_t code)
{
    switch (code) {
    case 1043: case 1044: case 1045: case 1251: case 4151:
        return SY_ERR_AUTH;
    case 1213:
        return SY_ERR_ABORTED_TXN;
    case 1927:
        return SY_ERR_FORCED_CLOSE;
    case 2013:
        return SY_ERR_LOST_CONNECTION;
    case SY_ER_ERROR_DURING_COMMIT:
        return SY_ERR_COMMIT_WAIT;
    default:
        return SY_ERR_OTHER;
    }
}

/* Every error the proxy answers itself goes through here. Codes 2000-2999 are the client library's own:
 * Connector/C rejects them from a server ("malformed packet") and then does not treat the connection as
 * dead, so auto-reconnect never triggers. Such a reason is sent as the server's 1927 "connection killed"
 * with SQLSTATE 08S01 (a communication failure to JDBC pools), and the proxy closes the connection after. */
void sy_mysql_session_client_err(struct sy_mysql_session *s, uint8_t seq, uint16_t code, const char *state, const char *msg)
{
    s->px->client_errors[err_reason(code)]++;
    if (code >= 2000 && code <= 2999) {
        code = SY_ER_CONNECTION_KILLED;
        state = "08S01";
    }
    uint8_t buf[1024];
    size_t len = sy_mysql_err_encode(code, state, msg, buf, sizeof buf);
    if (len)
        sy_mysql_session_client_packet(s, seq, buf, len);
}

void sy_mysql_session_client_ok(struct sy_mysql_session *s, uint8_t seq)
{
    struct sy_mysql_ok ok = { .status = s->status };
    uint8_t buf[64];
    size_t len = sy_mysql_ok_encode(&ok, 0x00, s->caps & ~SY_CAP_SESSION_TRACK, buf, sizeof buf);
    if (len)
        sy_mysql_session_client_packet(s, seq, buf, len);
}

/* The backend went away: the client's connection goes too, without a packet — exactly what the client
 * would see connected directly (its library reports 2013/2006 and may reconnect). */
void sy_mysql_session_lose(struct sy_mysql_session *s, const char *why)
{
    s->px->client_errors[SY_ERR_LOST_CONNECTION]++;
    sy_mysql_session_close(s, why);
}

/* Closes after flushing an error the client can still read. */
static void fail_session(struct sy_mysql_session *s, uint8_t seq, uint16_t code, const char *state, const char *msg)
{
    if (!sy_mysql_relay_wake(s)) /* asleep: its client bufferevent is built again for the error */
        sy_log_warn("%s: out of memory waking the idle session to fail it", s->label);
    if (s->client && s->state != SS_CLOSING)
        sy_mysql_session_client_err(s, seq, code, state, msg);
    char why[700];
    snprintf(why, sizeof why, "%u %s", code, msg);
    close_session(s, why, true);
}

/* ---- backpressure ------------------------------------------------------------------------------ */

void sy_mysql_session_client_read_update(struct sy_mysql_session *s)
{
    if (s->state == SS_CLOSING)
        return;
    if (s->client_bp || s->state == SS_HELD) {
        sy_relay_reader_enable(&s->client_rd, s->client, false);
    } else {
        sy_relay_reader_enable(&s->client_rd, s->client, true);
        if (s->compressed) {
            /* frames that reached the socket while reading was off: a filter only looks at them when more
             * arrive, which may be never (the client sent everything). Inflate them now; the caller goes on
             * to sy_mysql_relay_client, so the read callback this raises is not needed. */
            s->pulling = true;
            bufferevent_flush(s->client, EV_READ, BEV_NORMAL);
            s->pulling = false;
        }
    }
}

static void backend_read_update(struct sy_mysql_session *s)
{
    if (s->state == SS_CLOSING || s->backend == NULL)
        return;
    sy_mysql_conn_read_enable(s->backend, !s->backend_bp);
}

/* Moves n bytes from src to dst; pauses reading src's side when dst is over high water. */
void sy_mysql_session_move_bytes(struct sy_mysql_session *s, struct evbuffer *src, struct evbuffer *dst, size_t n, bool to_backend)
{
    evbuffer_remove_buffer(src, dst, n);
    if (sy_relay_over(to_backend ? evbuffer_get_length(dst) : client_pending(s))) {
        if (to_backend) {
            s->client_bp = true;
            sy_mysql_session_client_read_update(s);
        } else {
            s->backend_bp = true;
            backend_read_update(s);
        }
    }
}

/* Backpressure ends when the paused side's peer is back under low water. libevent says so through a
 * write callback only while its write event is armed, and a direct write (sy_mysql_session_flush) that
 * took everything disarms it: so every flush looks too, or the paused side would never be read again (a
 * compressed client's inflated frame of up to 16 MiB moves to the backend at once and a fast server can
 * take it in one flush: the rest of a request with no reply - COM_STMT_SEND_LONG_DATA - then waited
 * forever). True when reading resumed (and more may be queued now). */
static bool client_bp_lift(struct sy_mysql_session *s)
{
    if (!s->client_bp || s->state == SS_CLOSING || s->backend == NULL ||
        !sy_relay_drained(evbuffer_get_length(bufferevent_get_output(sy_mysql_conn_bev(s->backend)))))
        return false;
    s->client_bp = false;
    sy_mysql_session_client_read_update(s);
    sy_mysql_relay_client(s);
    return true;
}

static bool backend_bp_lift(struct sy_mysql_session *s)
{
    if (!s->backend_bp || s->state == SS_CLOSING || !sy_relay_drained(client_pending(s)))
        return false;
    s->backend_bp = false;
    backend_read_update(s);
    sy_mysql_relay_backend(s);
    return true;
}

/* ---- direct writes (proxy/relay.h) ------------------------------------------------------------- */

void sy_mysql_session_flush(struct sy_mysql_session *s)
{
    do {
        if (!s->direct || s->state == SS_CLOSING)
            return;
        client_push(s);
        sy_relay_flush(s->client);
        /* The backend's bufferevent is ours only between logins (mysql_conn drives it while connecting,
         * logging in or running the session-setup query). */
        if (s->backend && SESS_STATE(s)->relaying)
            sy_relay_flush(sy_mysql_conn_bev(s->backend));
    } while (client_bp_lift(s) || backend_bp_lift(s)); /* bytes moved again: write them too */
}

/* A write callback: output drained -> stop watching writability (plain sockets). */
static void write_drained(struct sy_mysql_session *s, struct bufferevent *bev)
{
    if (s->direct && s->state != SS_CLOSING)
        sy_relay_write_drained(bev);
}

/* ---- events ------------------------------------------------------------------------------------ */

static void on_client_read(struct bufferevent *bev, void *arg)
{
    if (((struct sy_mysql_session *)arg)->pulling)
        return; /* inside sy_mysql_session_client_read_update: its caller processes */
    sy_mysql_relay_client(arg);
    sy_mysql_session_flush(arg);
}

static void on_client_write(struct bufferevent *bev, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (s->state == SS_CLOSING) {
        /* An error was flushed: now the session can go. */
        if (client_pending(s) == 0) {
            static const struct timeval now = { 0, 0 };
            evtimer_add(s->px->reaper, &now);
        }
        return;
    }
    if (backend_bp_lift(s))
        sy_mysql_session_flush(s);
    write_drained(s, bev);
}

/* Compressed sessions: the socket's output shrank (evbuffer callback, inside libevent's write path):
 * look again from the loop. */
void sy_mysql_session_on_socket_out(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (info->n_deleted > 0 && s->drained_ev != NULL)
        event_active(s->drained_ev, EV_WRITE, 0);
}

void sy_mysql_session_on_client_drained(evutil_socket_t fd, short what, void *arg)
{
    on_client_write(((struct sy_mysql_session *)arg)->client, arg);
}

static void on_client_event(struct bufferevent *bev, short what, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    if (what & BEV_EVENT_TIMEOUT) { /* the reader's idle period (idle_sleep_ms): maybe sleep */
        sy_mysql_relay_idle(s);
        return;
    }
    if (s->state == SS_CLOSING) {
        s->client_gone = true; /* nothing more can be flushed: free it */
        static const struct timeval now = { 0, 0 };
        evtimer_add(s->px->reaper, &now);
        return;
    }
    if (what & BEV_EVENT_EOF)
        sy_mysql_session_close(s, s->state == SS_BUSY ? "client vanished mid-request" : "client disconnected");
    else if (what & BEV_EVENT_ERROR)
        sy_mysql_session_close(s, "client socket error");
}

void sy_mysql_session_on_backend_read(struct bufferevent *bev, void *arg)
{
    sy_mysql_relay_backend(arg);
    sy_mysql_session_flush(arg);
}

void sy_mysql_session_on_backend_write(struct bufferevent *bev, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (client_bp_lift(s))
        sy_mysql_session_flush(s);
    write_drained(s, bev);
}

/* The backend went away while nothing was in flight (the database died, restarted, or killed the
 * connection): the client keeps its socket until its next request. If a failover changed the active
 * side meanwhile, that request gets a new backend there with the session's state rebuilt (an open
 * transaction is lost: the client is told at its next statement); otherwise it gets "lost connection",
 * as it would without the proxy. */
/* After an idle backend was lost: does its server still answer? Then it ended the session itself
 * (wait_timeout, KILL from elsewhere) and the client's connection ends now, as it would directly - a
 * pool's stale-connection check sees it before the next statement. If it does not answer, the client
 * stays: a failover may rebuild the session on the other side at its next request. */
static void on_probe(struct sy_mysql_conn *c, const uint8_t *err, size_t err_len, void *arg)
{
    struct sy_mysql_session *s = arg;
    sy_mysql_session_release_conn(s->px, s->probe);
    s->probe = NULL;
    struct sy_mysql_err e;
    bool answered = err == NULL ||
                    (sy_mysql_err_parse(err, err_len, &e) == SY_PARSE_OK && (e.code < 2000 || e.code > 2999));
    if (!answered || s->state == SS_CLOSING || !s->backend_lost)
        return;
    sy_mysql_session_lose(s, "the server ended the idle session (it still answers): closed as it would be directly");
}

static void probe_side(struct sy_mysql_session *s)
{
    if (s->probe != NULL || s->side != s->px->pair->active_side || s->px->pair->held)
        return;
    struct sy_mysql_login login;
    sy_mysql_session_login(s, &login);
    char label[220];
    const struct sy_endpoint *ep = sy_pair_active_endpoint(s->px->pair);
    snprintf(label, sizeof label, "%s probe %s:%u", s->label, ep->host, ep->port);
    s->probe = sy_mysql_conn_open(s->px->base, ep, &login, label, on_probe, s);
    OPENSSL_cleanse(login.stage1, sizeof login.stage1);
}

void sy_mysql_session_backend_lost(struct sy_mysql_session *s)
{
    sy_log_warn("%s: backend on %s side lost while idle%s", s->label, sy_side_name(s->side),
                s->in_txn ? " inside a transaction (rolled back by the server)" : "");
    if (s->in_txn) {
        s->txn_aborted = true;
        s->in_txn = false;
    }
    sy_mysql_session_release_conn(s->px, s->backend); /* we are inside its event callback */
    s->backend = NULL;
    s->backend_lost = true;
    probe_side(s);
}

void sy_mysql_session_on_backend_event(struct bufferevent *bev, short what, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (s->state == SS_CLOSING)
        return;
    if (SESS_STATE(s)->between_requests && s->resp_left == 0 && s->req_left == 0) {
        sy_mysql_session_backend_lost(s);
        return;
    }
    /* A request in flight: the client sees the connection drop, as it would directly ("lost connection
     * during query"); an error packet could only carry a client-range code. */
    sy_mysql_session_lose(s, (what & BEV_EVENT_EOF) ? "lost connection to the database server"
                                           : "database server connection error");
}

void sy_mysql_session_rearm_client(struct sy_mysql_session *s)
{
    bufferevent_setcb(s->client, on_client_read, on_client_write, on_client_event, s);
    bufferevent_setwatermark(s->client, EV_WRITE, SY_RELAY_LOW_WATER, 0);
    bufferevent_enable(s->client, EV_READ | EV_WRITE);
}

/* ---- public ------------------------------------------------------------------------------------ */

/* ---- shared with mysql_switch.c --------------------------------------------------------------- */

void sy_mysql_session_kick(struct sy_mysql_session *s)
{
    if (s->state == SS_CLOSING)
        return;
    sy_mysql_session_client_read_update(s);
    backend_read_update(s);
    sy_mysql_relay_client(s);
    if (s->state != SS_CLOSING)
        sy_mysql_relay_backend(s);
    sy_mysql_session_flush(s);
}

void sy_mysql_session_fail(struct sy_mysql_session *s, uint8_t seq, uint16_t code, const char *state, const char *msg)
{
    fail_session(s, seq, code, state, msg);
}

void sy_mysql_session_login(const struct sy_mysql_session *s, struct sy_mysql_login *out)
{
    memset(out, 0, sizeof *out);
    out->auth = s->have_stage1 ? SY_LOGIN_STAGE1 : SY_LOGIN_EMPTY;
    out->caps = s->backend_caps;
    out->collation = s->collation;
    snprintf(out->user, sizeof out->user, "%s", s->user);
    snprintf(out->db, sizeof out->db, "%s", s->schema);
    if (s->have_stage1)
        memcpy(out->stage1, s->stage1, sizeof out->stage1);
    out->attrs = s->attrs;
    out->attrs_len = s->attrs_len;
}

bool sy_mysql_session_quiet(const struct sy_mysql_session *s)
{
    return SESS_STATE(s)->between_requests && s->req_left == 0 && s->resp_left == 0 && !s->req_continues;
}

void sy_mysql_session_accept(struct sy_mysql_proxy *px, evutil_socket_t fd, const struct sockaddr *sa, int salen)
{
    struct sy_mysql_session *s = calloc(1, sizeof *s);
    if (s == NULL) {
        evutil_closesocket(fd);
        return;
    }
    s->px = px;
    s->id = sy_mysql_proxy_new_id(px);
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    getnameinfo(sa, (socklen_t)salen, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
    s->user = s->schema = sy_mysql_session_empty;
    if (!sy_mysql_session_str_set(&s->peer, 80, "%s:%s", host, serv) ||
        !sy_mysql_session_str_set(&s->label, 160, "%s C-%u %s", px->pair->cfg->name, s->id, s->peer)) {
        sy_mysql_session_str_free(&s->peer);
        evutil_closesocket(fd);
        free(s);
        return;
    }
    s->status = SY_STATUS_AUTOCOMMIT;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->client = bufferevent_socket_new(px->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (s->client == NULL) {
        evutil_closesocket(fd);
        sy_mysql_session_str_free(&s->peer);
        sy_mysql_session_str_free(&s->label);
        free(s);
        return;
    }
    TAILQ_INSERT_TAIL(&px->sessions, s, link);
    px->n_sessions++;
    sy_mysql_session_rearm_client(s);
    sy_log_debug("%s: accepted", s->label);
    sy_mysql_login_greet(s);
}

static void session_resume(struct sy_mysql_session *s)
{
    if (s->state == SS_PARKED) {
        sy_mysql_login_backend(s, s->parked_auth);
        return;
    }
    if (s->state != SS_HELD)
        return;
    sy_mysql_session_set_state(s, SS_IDLE);
    sy_mysql_session_client_read_update(s);
    sy_mysql_relay_client(s);
    sy_mysql_session_flush(s);
}

uint32_t sy_mysql_proxy_new_id(struct sy_mysql_proxy *px)
{
    uint32_t id = px->next_id;
    px->next_id += px->id_step;
    if (px->next_id < SY_MYSQL_FIRST_SESSION_ID) /* wrapped: start over, still naming this shard */
        px->next_id = SY_MYSQL_FIRST_SESSION_ID + (uint32_t)px->worker;
    return id;
}

struct sy_mysql_session *sy_mysql_proxy_find_session(struct sy_mysql_proxy *px, uint32_t id)
{
    struct sy_mysql_session *s;
    TAILQ_FOREACH(s, &px->sessions, link)
        if (s->id == id)
            return s;
    return NULL;
}

uint32_t sy_mysql_session_backend_thread(const struct sy_mysql_session *s)
{
    if (s->backend == NULL || !SESS_STATE(s)->past_login)
        return 0;
    return sy_mysql_conn_thread_id(s->backend);
}

void sy_mysql_sessions_resume(struct sy_mysql_proxy *px)
{
    struct sy_mysql_session *s, *next;
    for (s = TAILQ_FIRST(&px->sessions); s != NULL && !px->pair->held; s = next) {
        next = TAILQ_NEXT(s, link);
        session_resume(s); /* may close s: next was taken first */
    }
}

size_t sy_mysql_sessions_fail_held(struct sy_mysql_proxy *px, uint64_t held_ms, const char *msg)
{
    size_t n = 0;
    uint64_t now = sy_now_ms();
    struct sy_mysql_session *s, *next;
    for (s = TAILQ_FIRST(&px->sessions); s != NULL; s = next) {
        next = TAILQ_NEXT(s, link);
        if ((s->state != SS_HELD && s->state != SS_PARKED) || now - s->held_since_ms < held_ms)
            continue;
        /* a held command's answer is its packet 1; a parked login's, the packet after the client's reply */
        fail_session(s, s->state == SS_HELD ? 1 : 2, 1927, "70100", msg);
        n++;
    }
    return n;
}

static json_t *session_json(const struct sy_mysql_session *s)
{
    uint64_t held = s->state == SS_HELD ? sy_now_ms() - s->held_since_ms : 0;
    const char *pinned = sy_mysql_session_pinned(s);
    json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:b,s:I,s:b,s:s,s:s,s:s,s:I,s:I}", "id", (json_int_t)s->id, "user",
                          s->user, "peer", s->peer, "side", sy_side_name(s->side), "in_transaction", s->in_txn,
                          "held_ms", (json_int_t)held, "movable", pinned == NULL, "state", SESS_STATE(s)->name,
                          "schema", s->schema, "last_gtid", s->last_gtid, "prepared_statements", (json_int_t)s->n_stmts,
                          "backend_thread", (json_int_t)sy_mysql_session_backend_thread(s));
    json_object_set_new(o, "unmovable_reason", pinned ? json_string(pinned) : json_null());
    json_object_set_new(o, "asleep", json_boolean(s->asleep)); /* idle without bufferevents (mysql_relay.c) */
    return o;
}

json_t *sy_mysql_sessions_json(struct sy_mysql_proxy *px)
{
    json_t *list = json_array();
    struct sy_mysql_session *s;
    TAILQ_FOREACH(s, &px->sessions, link)
        json_array_append_new(list, session_json(s));
    return list;
}
