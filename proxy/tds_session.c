/* One SQL Server (TDS) client session: one backend connection to the active side, a login the proxy does
 * itself, then a packet-by-packet relay:
 *
 *   client --PRELOGIN--> [answered by the proxy: TLS as configured, MARS off]  backend <--PRELOGIN-- proxy
 *   client --LOGIN7----> [password kept in memory] --LOGIN7 rebuilt-------> backend
 *   client <--LOGINACK/ENVCHANGE/ERROR (the server's login response, as sent)-- backend
 *   client <--packets--> [headers checked; message ends and attention acks noted] <--packets--> backend
 *
 * Requests stream through packet by packet (each packet's header is checked against the negotiated packet
 * size; a message keeps its type); one request is in flight at a time (TDS without MARS never pipelines),
 * the next waits in the client's input, except ATTENTION, which passes at once and keeps the session busy
 * until the server's DONE with DONE_ATTN. Responses stream through as they arrive. The login response is
 * read whole (its LOGINACK, ERROR, ENVCHANGE packet size and database are noted) and passed on unchanged,
 * so a wrong password reaches the client as the server's own 18456. Client TLS (tls_cert): the handshake's
 * records travel in PRELOGIN packets through memory BIOs, then a TLS filter over the socket for the whole
 * session or the LOGIN7 only; the backend connection is plain. Sessions cannot move yet (docs/sqlserver.md).
 * The login (PRELOGIN, TLS, LOGIN7, the backend login) is tds_login.c's; this file has the session's life,
 * flow control and the relay. Sessions end through close_session() and are freed by the proxy's reaper
 * on a later loop turn. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "core/log.h"
#include "proxy/tds_session.h"

#define SESS_FLUSH_MS 5000              /* how long a closed session's final error may take to be read */
#define SESS_CONNECT_S 10               /* backend connect timeout */
#define SESS_MAX_READ (256u << 10)      /* bytes read per callback (libevent's default is 16 KiB) */

static const char *const sess_state_names[TS__COUNT] = { "PRELOGIN", "TLS",  "LOGIN7", "LOGIN",
                                                         "IDLE",     "BUSY", "HELD",   "CLOSING" };

static void process_client(struct sy_tds_session *s);
static void process_backend(struct sy_tds_session *s);
static void on_client_read(struct bufferevent *bev, void *arg);
static void on_client_write(struct bufferevent *bev, void *arg);
static void on_client_event(struct bufferevent *bev, short what, void *arg);

/* ---- state, closing ---------------------------------------------------------------------------------- */

static void set_state(struct sy_tds_session *s, enum sy_tds_sess_state to)
{
    sy_log_debug("%s: %s -> %s", s->label, sess_state_names[s->state], sess_state_names[to]);
    s->state = to;
}

static void reap_soon(struct sy_tds_proxy *px)
{
    static const struct timeval now = { 0, 0 };
    evtimer_add(px->reaper, &now);
}

static size_t client_pending(const struct sy_tds_session *s)
{
    return sy_relay_link_client_pending(&s->io);
}

/* The one way a session ends. With `flush`, what is queued for the client (a final error, a refused
 * login) is still written, for at most SESS_FLUSH_MS. The backend connection stops at once. */
static void close_session(struct sy_tds_session *s, const char *why, bool flush, enum sy_tds_err_reason reason)
{
    if (s->state == TS_CLOSING)
        return;
    struct sy_tds_proxy *px = s->px;
    sy_log_info("%s: closed (%s)", s->label, why);
    if (reason < SY_TERR__COUNT)
        px->client_errors[reason]++;
    set_state(s, TS_CLOSING);
    OPENSSL_cleanse(s->password, sizeof s->password);
    s->password_len = 0;
    sy_tds_warm_free(s);
    sy_relay_link_close(&s->io, flush, SESS_FLUSH_MS);
    TAILQ_REMOVE(&px->sessions, s, link);
    px->n_sessions--;
    TAILQ_INSERT_TAIL(&px->closing, s, link);
    reap_soon(px);
}

void sy_tds_session_close(struct sy_tds_session *s, const char *why, enum sy_tds_err_reason reason)
{
    close_session(s, why, false, reason);
}

static void session_free(struct sy_tds_session *s)
{
    OPENSSL_cleanse(s->password, sizeof s->password);
    bufferevent_free(s->io.client);      /* a filter over client_raw unlinks from it */
    if (s->ssl)
        SSL_free(s->ssl);
    if (s->client_raw)
        bufferevent_free(s->client_raw);
    if (s->io.backend)
        bufferevent_free(s->io.backend);
    sy_tds_warm_free(s);
    if (s->login7) {
        OPENSSL_cleanse(s->login7, s->login7_len);
        free(s->login7);
    }
    sy_tds_track_fini(&s->track);
    sy_tds_rsp_scan_fini(&s->scan);
    if (s->scanbuf)
        evbuffer_free(s->scanbuf);
    free(s);
}

/* The reaper (a zero timer: the next loop turn after a close) frees closed sessions whose last bytes
 * reached the client, whose client is gone, or whose flush deadline passed. `all`: everything now. */
void sy_tds_session_reap(struct sy_tds_proxy *px, bool all)
{
    uint64_t now = sy_now_ms(), next = 0;
    struct sy_tds_session *s, *tmp;
    for (s = TAILQ_FIRST(&px->closing); s != NULL; s = tmp) {
        tmp = TAILQ_NEXT(s, link);
        if (sy_relay_link_reapable(&s->io, all, now, &next)) {
            TAILQ_REMOVE(&px->closing, s, link);
            session_free(s);
        }
    }
    sy_relay_reaper_arm(px->reaper, next, now);
}

/* ---- flow control (proxy/relay.h) ------------------------------------------------------------------- */

/* Client reading is on unless: closing, held, its bytes could not go out (backend output over high
 * water), or a request is in flight and more than high water of the next ones waits already. */
static void client_read_update(struct sy_tds_session *s)
{
    if (s->state == TS_CLOSING)
        return;
    size_t waiting = evbuffer_get_length(bufferevent_get_input(s->io.client));
    bool off = s->io.client_bp || s->state == TS_HELD || (s->state != TS_IDLE && waiting > SY_RELAY_HIGH_WATER);
    if (off)
        bufferevent_disable(s->io.client, EV_READ);
    else
        bufferevent_enable(s->io.client, EV_READ);
}

static void backend_read_update(struct sy_tds_session *s)
{
    if (s->state != TS_CLOSING)
        sy_relay_link_backend_read_update(&s->io);
}

static void session_flush(struct sy_tds_session *s)
{
    sy_relay_link_flush(&s->io);
}

static void to_backend_done(struct sy_tds_session *s)
{
    if (sy_relay_link_backend_over(&s->io))
        client_read_update(s);
}

static void to_client_done(struct sy_tds_session *s)
{
    if (sy_relay_link_client_over(&s->io))
        backend_read_update(s);
}

/* sy_relay_link callbacks: a paused side may read again */
static void client_resume(void *arg)
{
    struct sy_tds_session *s = arg;
    client_read_update(s);
    process_client(s);
}

static void backend_resume(void *arg)
{
    struct sy_tds_session *s = arg;
    backend_read_update(s);
    process_backend(s);
}

static bool session_closed(const void *arg)
{
    return ((const struct sy_tds_session *)arg)->state == TS_CLOSING;
}

/* ---- the proxy's own answers --------------------------------------------------------------------------- */

/* Bytes that cannot be trusted: the connection closes (the daemon goes on serving the others). */
static void bad_packet(struct sy_tds_session *s, const char *from, const char *why)
{
    char msg[400];
    snprintf(msg, sizeof msg, "bad packet from the %s: %s", from, why);
    close_session(s, msg, false, SY_TERR_BAD_PACKET);
}

/* ---- for the login (tds_session.h) ------------------------------------------------------------------- */

void sy_tds_session_set_state(struct sy_tds_session *s, enum sy_tds_sess_state to)
{
    set_state(s, to);
}

void sy_tds_session_end(struct sy_tds_session *s, const char *why, bool flush, enum sy_tds_err_reason reason)
{
    close_session(s, why, flush, reason);
}

void sy_tds_session_bad_packet(struct sy_tds_session *s, const char *from, const char *why)
{
    bad_packet(s, from, why);
}

void sy_tds_session_client_attach(struct sy_tds_session *s, struct bufferevent *bev)
{
    s->io.client = bev;
    bufferevent_set_max_single_read(bev, SESS_MAX_READ);
    bufferevent_setcb(bev, on_client_read, on_client_write, on_client_event, s);
    bufferevent_setwatermark(bev, EV_WRITE, SY_RELAY_LOW_WATER, 0);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

void sy_tds_session_to_client_done(struct sy_tds_session *s)
{
    to_client_done(s);
}

/* ---- tracking (tds_track.h) ------------------------------------------------------------------------------ */

/* Feeds the scanned bytes' complete tokens to the tracker; a token the scan does not know ends the scan of
 * this response and tracking (the session stays on its server). */
static void scan_run(struct sy_tds_session *s)
{
    size_t n = evbuffer_get_length(s->scanbuf), off = 0;
    if (n == 0)
        return;
    const uint8_t *p = evbuffer_pullup(s->scanbuf, -1);
    char err[200];
    while (off < n && !s->scan_off) {
        struct sy_tds_rsp_ev ev;
        size_t used = 0;
        enum sy_parse pr = sy_tds_rsp_step(&s->scan, p + off, n - off, &used, &ev, err, sizeof err);
        if (pr == SY_PARSE_AGAIN) {
            if (n - off <= SY_TDS_TOKEN_TRACK_MAX)
                break;
            snprintf(err, sizeof err, "a response token over %u bytes", SY_TDS_TOKEN_TRACK_MAX);
            pr = SY_PARSE_BAD;
        }
        if (pr == SY_PARSE_BAD) {
            sy_log_info("%s: response not tracked (%s): the session stays on the %s side", s->label, err,
                        sy_side_name(s->side));
            sy_tds_track_lose(&s->track, err);
            s->scan_off = true;
            break;
        }
        sy_tds_track_event(&s->track, &ev);
        off += used;
    }
    evbuffer_drain(s->scanbuf, s->scan_off ? n : off);
}

/* A server message ended (EOM): the request's response is complete. */
static void scan_end(struct sy_tds_session *s)
{
    if (!s->scan_off && evbuffer_get_length(s->scanbuf) > 0)
        sy_tds_track_lose(&s->track, "a response ended inside a token");
    evbuffer_drain(s->scanbuf, evbuffer_get_length(s->scanbuf));
    s->scan_off = false;
    s->scan.ncols = 0;
    sy_tds_track_response_end(&s->track);
}

void sy_tds_session_track_login(struct sy_tds_session *s, const uint8_t *p, size_t n)
{
    sy_tds_track_init(&s->track, s->database, "");
    evbuffer_add(s->scanbuf, p, n);
    scan_run(s);
    scan_end(s);
    snprintf(s->language, sizeof s->language, "%s", s->track.language);
}

/* The client's request message (whole, framed at p) is about to be forwarded: tracked, and once the session
 * moved, remapped for the new server (handles, descriptor): then the rewritten payload is returned (owned by
 * the caller), else NULL. */
static uint8_t *track_request(struct sy_tds_session *s, const uint8_t *p, const struct sy_tds_msg *m)
{
    if (s->track.lost[0])
        return NULL;
    uint8_t *pl = malloc(m->payload_len ? m->payload_len : 1);
    if (pl == NULL) {
        sy_tds_track_lose(&s->track, "out of memory");
        return NULL;
    }
    sy_tds_msg_payload(p, m, pl);
    struct sy_tds_req q;
    char err[200];
    bool rewritten = false;
    if (sy_tds_req_parse(pl, m->payload_len, m->type, &q, err, sizeof err) != SY_PARSE_OK) {
        sy_log_info("%s: request not tracked (%s): the session stays on the %s side", s->label, err,
                    sy_side_name(s->side));
        sy_tds_track_lose(&s->track, err);
    } else {
        if (s->moved && sy_tds_req_remap(pl, m->payload_len, &q, &s->track) > 0)
            rewritten = true;
        sy_tds_track_request(&s->track, pl, m->payload_len, &q);
    }
    if (!rewritten) {
        free(pl);
        return NULL;
    }
    return pl;
}

/* The status of the last packet of the message framed at p (IGNORE lives there). */
static uint8_t msg_last_status(const uint8_t *p, const struct sy_tds_msg *m)
{
    size_t off = 0;
    uint8_t st = 0;
    for (uint32_t i = 0; i < m->packets && off + SY_TDS_HDR_LEN <= m->wire_len; i++) {
        st = p[off + 1];
        off += (size_t)p[off + 2] << 8 | p[off + 3];
    }
    return st;
}

/* ---- the proxy's own requests and answers (switches) ---------------------------------------------------- */

#define PROXY_SERVER_NAME "switchyard"
#define TXN_ABORTED_TEXT "Transaction rolled back by switchyard: the database moved to the other side (switchover) " \
                         "while it was open past txn_drain_ms. Rerun the transaction."

static void to_client_message(struct sy_tds_session *s, const uint8_t *tokens, size_t n)
{
    uint8_t wire[4096];
    size_t w = sy_tds_msg_build(wire, sizeof wire, SY_TDS_TABULAR, 0, s->packet_size, tokens, n);
    if (w > 0)
        evbuffer_add(bufferevent_get_output(s->io.client), wire, w);
    to_client_done(s);
}

/* The answer to the first request after a switch rolled its transaction back: 1205 (drivers retry a deadlock
 * victim), the ENVCHANGE rollback of the descriptor the client knows (its transaction is gone), DONE(ERROR). */
static void answer_txn_aborted(struct sy_tds_session *s)
{
    uint8_t tok[1200];
    size_t n = sy_tds_error_reply_build(tok, sizeof tok - 16, SY_TDS_TOK_ERROR, 1205, 51, 13, TXN_ABORTED_TEXT,
                                        PROXY_SERVER_NAME, SY_TDS_DONE_ERROR);
    if (n < SY_TDS_DONE_LEN)
        return;
    uint8_t done[SY_TDS_DONE_LEN];
    memcpy(done, tok + n - SY_TDS_DONE_LEN, SY_TDS_DONE_LEN);
    uint8_t *e = tok + n - SY_TDS_DONE_LEN;
    e[0] = SY_TDS_TOK_ENVCHANGE;
    e[1] = 11;
    e[2] = 0;
    e[3] = SY_TDS_ENV_ROLLBACK_TRAN;
    e[4] = 0;                                     /* new value: none */
    e[5] = 8;
    for (int i = 0; i < 8; i++)
        e[6 + i] = (uint8_t)(s->aborted_desc >> (8 * i));
    memcpy(e + 14, done, SY_TDS_DONE_LEN);
    to_client_message(s, tok, n + 14);
    sy_log_info("%s: request answered with 1205: its transaction was rolled back by the switch", s->label);
}

/* The proxy's own batch (its response is read, tracked and not relayed). */
static void send_internal(struct sy_tds_session *s, const char *sql)
{
    uint8_t payload[256], wire[300];
    size_t n = sy_tds_batch_build(payload, sizeof payload, sql, s->track.desc);
    size_t w = n ? sy_tds_msg_build(wire, sizeof wire, SY_TDS_SQL_BATCH, 0, s->packet_size, payload, n) : 0;
    if (w == 0) {
        close_session(s, "cannot build the proxy's own request", false, SY_TERR__COUNT);
        return;
    }
    evbuffer_add(bufferevent_get_output(s->io.backend), wire, w);
    s->internal = true;
    set_state(s, TS_BUSY);
    to_backend_done(s);
}

static void send_internal_rollback(struct sy_tds_session *s)
{
    send_internal(s, "IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION");
}

void sy_tds_session_abort_transaction(struct sy_tds_session *s)
{
    s->txn_aborted = true;
    s->aborted_desc = s->track.desc;
    sy_log_info("%s: transaction still open after txn_drain_ms: rolled back on the %s side", s->label,
                sy_side_name(s->side));
    if (s->state == TS_IDLE || s->state == TS_HELD) {
        send_internal_rollback(s);
        session_flush(s);                         /* a switch's loop call: no session callback flushes it */
    } else {
        s->rollback_pending = true;
    }
}

void sy_tds_session_end_empty_transaction(struct sy_tds_session *s)
{
    s->begin_pending = true;
    s->moved = true;                              /* the client's descriptor is remapped from now on */
    send_internal_rollback(s);
    session_flush(s);
    sy_log_debug("%s: its empty transaction rolled back for the switch (begun again at its next request)",
                 s->label);
}

void sy_tds_session_fatal(struct sy_tds_session *s, const char *msg)
{
    if (s->state == TS_IDLE || s->state == TS_HELD) {          /* not inside a response the client reads */
        uint8_t tok[1200];
        size_t n = sy_tds_error_reply_build(tok, sizeof tok, SY_TDS_TOK_ERROR, 50000, 1, 20, msg, PROXY_SERVER_NAME,
                                            SY_TDS_DONE_ERROR);
        if (n > 0)
            to_client_message(s, tok, n);
    }
    close_session(s, msg, true, SY_TERR_FORCED_CLOSE);
}

size_t sy_tds_sessions_fail_held(struct sy_tds_proxy *px, uint64_t held_ms, const char *msg)
{
    size_t n = 0;
    uint64_t now = sy_now_ms();
    struct sy_tds_session *s, *next;
    for (s = TAILQ_FIRST(&px->sessions); s != NULL; s = next) {
        next = TAILQ_NEXT(s, link);
        if (s->state != TS_HELD || now - s->held_since_ms < held_ms)
            continue;
        sy_tds_session_fatal(s, msg);              /* an ERROR token (50000, class 20), then closed */
        n++;
    }
    return n;
}

/* ---- relay ------------------------------------------------------------------------------------------------ */

static bool request_type(uint8_t t)
{
    return t == SY_TDS_SQL_BATCH || t == SY_TDS_RPC || t == SY_TDS_BULK_LOAD || t == SY_TDS_TRANSACTION_MANAGER;
}

/* A request message starting in `in`: read whole (tracked, then forwarded) when it is at most
 * SY_TDS_REQ_TRACK_MAX bytes: 0 when forwarded or still incomplete (c_left stays 0), 1 when it is larger and
 * streams (not tracked: the session can no longer move), -1 when the connection was closed. */
static int request_whole(struct sy_tds_session *s, struct evbuffer *in)
{
    size_t n = evbuffer_get_length(in);
    const uint8_t *p = evbuffer_pullup(in, -1);
    struct sy_tds_msg m;
    char err[200];
    enum sy_parse pr = sy_tds_msg_frame(p, n, s->packet_size, SY_TDS_REQ_TRACK_MAX, &m, err, sizeof err);
    if (pr == SY_PARSE_AGAIN)
        return 0;
    if (pr == SY_PARSE_BAD) {
        if (sy_tds_msg_frame(p, n, s->packet_size, SIZE_MAX, &m, err, sizeof err) == SY_PARSE_BAD) {
            bad_packet(s, "client", err);
            return -1;
        }
        sy_tds_track_lose(&s->track, "a request over 4 MiB");
        return 1;
    }
    bool ignored = (msg_last_status(p, &m) & SY_TDS_STATUS_IGNORE) != 0;
    if (!ignored && s->begin_pending) {
        /* moved inside an empty transaction: one begins on this server first; the request waits in the
         * input and is taken when that response is in (its descriptor then remapped to the new one) */
        s->begin_pending = false;
        send_internal(s, "BEGIN TRANSACTION");
        sy_log_debug("%s: its empty transaction begun again on the %s side", s->label, sy_side_name(s->side));
        return 0;
    }
    if (!ignored && s->txn_aborted) {
        evbuffer_drain(in, m.wire_len);
        s->txn_aborted = false;
        s->requests++;
        answer_txn_aborted(s);
        s->c_next = true;                         /* answered: the next request may follow at once */
        return 0;
    }
    uint8_t *rw = ignored ? NULL : track_request(s, p, &m);
    if (m.status & (SY_TDS_STATUS_RESETCONNECTION | SY_TDS_STATUS_RESETCONNECTIONSKIPTRAN))
        s->resets++;
    if (rw != NULL) {                             /* moved: handles or descriptor rewritten for this server */
        size_t cap = m.payload_len + (m.payload_len / (s->packet_size - SY_TDS_HDR_LEN) + 1) * SY_TDS_HDR_LEN;
        uint8_t *wire = malloc(cap);
        size_t w = wire ? sy_tds_msg_build(wire, cap, m.type, 0, s->packet_size, rw, m.payload_len) : 0;
        free(rw);
        if (w == 0) {
            free(wire);
            close_session(s, "out of memory", false, SY_TERR__COUNT);
            return -1;
        }
        wire[1] |= m.status & (SY_TDS_STATUS_RESETCONNECTION | SY_TDS_STATUS_RESETCONNECTIONSKIPTRAN);
        evbuffer_drain(in, m.wire_len);
        evbuffer_add(bufferevent_get_output(s->io.backend), wire, w);
        free(wire);
    } else {
        evbuffer_remove_buffer(in, bufferevent_get_output(s->io.backend), m.wire_len);
    }
    if (!ignored) {
        s->requests++;
        set_state(s, TS_BUSY);
    }
    to_backend_done(s);
    s->c_next = true;                             /* an ATTENTION right behind it passes at once */
    return 0;
}

/* The next client packet's header: false when it must wait (held, a request in flight) or was refused. */
static bool client_packet_start(struct sy_tds_session *s, struct evbuffer *in)
{
    const uint8_t *p = evbuffer_pullup(in, SY_TDS_HDR_LEN);
    struct sy_tds_hdr h;
    char err[200];
    if (p[0] == SY_TDS_SMP) {
        close_session(s, "MARS (SMP) packets: MARS is not supported (PRELOGIN answered it off)", false,
                      SY_TERR_UNSUPPORTED);
        return false;
    }
    if (sy_tds_hdr_parse(p, SY_TDS_HDR_LEN, s->packet_size, &h, err, sizeof err) != SY_PARSE_OK) {
        bad_packet(s, "client", err);
        return false;
    }
    if (h.type != SY_TDS_ATTENTION && !request_type(h.type)) {
        snprintf(err, sizeof err, "%s (0x%02x) packet after the login", sy_tds_type_name(h.type),
                 (unsigned)h.type);
        bad_packet(s, "client", err);
        return false;
    }
    if (s->c_in_msg && h.type != s->c_msg_type && h.type != SY_TDS_ATTENTION) {
        snprintf(err, sizeof err, "packet type changed inside a message (0x%02x -> 0x%02x)",
                 (unsigned)s->c_msg_type, (unsigned)h.type);
        bad_packet(s, "client", err);
        return false;
    }
    if (h.type == SY_TDS_ATTENTION) {
        /* a cancel passes at once, held or not: the server acknowledges it with DONE_ATTN */
        s->attentions++;
        s->attention = true;
        if (s->state == TS_IDLE || s->state == TS_HELD)
            set_state(s, TS_BUSY);
        sy_log_debug("%s: ATTENTION forwarded", s->label);
    } else if (!s->c_in_msg) {
        if (s->state == TS_BUSY)
            return false;                         /* the next request waits for the response in flight */
        if (s->px->pair->held && !(s->track.in_txn && !s->track.txn_empty)) { /* an open one runs to its end */
            if (s->state != TS_HELD) {
                s->held_since_ms = sy_now_ms();
                set_state(s, TS_HELD);
                client_read_update(s);
            }
            return false;
        }
        if (s->state == TS_HELD)
            set_state(s, TS_IDLE);
        if (h.type != SY_TDS_BULK_LOAD) {
            int r = request_whole(s, in);
            if (r <= 0)
                return false;                     /* forwarded whole (r 0: waits for the rest, -1: closed) */
        }
        s->c_in_msg = true;
        s->c_msg_type = h.type;
        if (h.status & (SY_TDS_STATUS_RESETCONNECTION | SY_TDS_STATUS_RESETCONNECTIONSKIPTRAN))
            s->resets++;
    }
    s->c_left = h.length;
    s->c_eom = h.type != SY_TDS_ATTENTION && (h.status & SY_TDS_STATUS_EOM);
    /* EOM with IGNORE: the client dropped the message it was sending; the server answers nothing */
    s->c_ignored = s->c_eom && (h.status & SY_TDS_STATUS_IGNORE);
    return true;
}

static void relay_client(struct sy_tds_session *s, struct evbuffer *in)
{
    struct evbuffer *out = bufferevent_get_output(s->io.backend);
    while (s->state != TS_CLOSING && !s->io.client_bp) {
        if (s->c_left == 0) {
            if (evbuffer_get_length(in) < SY_TDS_HDR_LEN)
                return;
            if (!client_packet_start(s, in)) {
                if (!s->c_next)
                    return;
                s->c_next = false;                /* a whole request taken: look at the next packet */
                continue;
            }
        }
        size_t n = evbuffer_get_length(in), k = n < s->c_left ? n : s->c_left;
        if (k == 0)
            return;
        evbuffer_remove_buffer(in, out, k);
        s->c_left -= k;
        if (s->c_left == 0 && s->c_eom) {           /* a request complete: its response is awaited */
            s->c_in_msg = false;
            if (!s->c_ignored) {
                s->requests++;
                set_state(s, TS_BUSY);
            }
        }
        to_backend_done(s);
    }
}

/* Keeps the last SY_TDS_DONE_LEN bytes of the server's message as they pass (the attention ack check). */
static void tail_keep(struct sy_tds_session *s, struct evbuffer *in, size_t k)
{
    size_t keep = k < SY_TDS_DONE_LEN ? k : SY_TDS_DONE_LEN;
    size_t old = SY_TDS_DONE_LEN - keep < s->b_tail_len ? SY_TDS_DONE_LEN - keep : s->b_tail_len;
    memmove(s->b_tail, s->b_tail + s->b_tail_len - old, old);
    struct evbuffer_ptr pos;
    evbuffer_ptr_set(in, &pos, k - keep, EVBUFFER_PTR_SET);
    evbuffer_copyout_from(in, &pos, s->b_tail + old, keep);
    s->b_tail_len = old + keep;
}

static void relay_backend(struct sy_tds_session *s, struct evbuffer *in)
{
    struct evbuffer *out = bufferevent_get_output(s->io.client);
    char err[200];
    while (s->state != TS_CLOSING && !s->io.backend_bp) {
        if (s->b_left == 0) {
            size_t n = evbuffer_get_length(in);
            if (n < SY_TDS_HDR_LEN)
                return;
            struct sy_tds_hdr h;
            const uint8_t *p = evbuffer_pullup(in, SY_TDS_HDR_LEN);
            if (sy_tds_hdr_parse(p, SY_TDS_HDR_LEN, SY_TDS_MAX_PACKET, &h, err, sizeof err) != SY_PARSE_OK) {
                bad_packet(s, "server", err);
                return;
            }
            if (h.type != SY_TDS_TABULAR) {
                snprintf(err, sizeof err, "%s (0x%02x) packet in a response", sy_tds_type_name(h.type),
                         (unsigned)h.type);
                bad_packet(s, "server", err);
                return;
            }
            if (s->internal)
                evbuffer_drain(in, SY_TDS_HDR_LEN);
            else
                evbuffer_remove_buffer(in, out, SY_TDS_HDR_LEN);
            s->b_left = h.length - SY_TDS_HDR_LEN;
            s->b_eom = (h.status & SY_TDS_STATUS_EOM) != 0;
        }
        size_t n = evbuffer_get_length(in), k = n < s->b_left ? n : s->b_left;
        if (k > 0) {
            tail_keep(s, in, k);
            if (!s->scan_off) {                   /* a copy for the scan: the bytes go on unchanged */
                struct evbuffer_iovec v;
                if (evbuffer_reserve_space(s->scanbuf, (ev_ssize_t)k, &v, 1) == 1 && v.iov_len >= k) {
                    evbuffer_copyout(in, v.iov_base, k);
                    v.iov_len = k;
                    evbuffer_commit_space(s->scanbuf, &v, 1);
                    scan_run(s);
                } else {
                    sy_tds_track_lose(&s->track, "out of memory");
                    s->scan_off = true;
                }
            }
            if (s->internal)
                evbuffer_drain(in, k);
            else
                evbuffer_remove_buffer(in, out, k);
            s->b_left -= k;
        }
        to_client_done(s);
        if (s->b_left > 0)
            return;
        if (!s->b_eom)
            continue;
        scan_end(s);
        /* a response complete; with an ATTENTION out, only its acknowledgement ends the wait */
        bool ack = s->b_tail_len == SY_TDS_DONE_LEN && sy_tds_is_attention_ack(s->b_tail);
        s->b_tail_len = 0;
        if (s->attention && !ack)
            continue;
        if (ack)
            sy_log_debug("%s: ATTENTION acknowledged by the server", s->label);
        s->attention = false;
        if (s->internal) {
            s->internal = false;
            sy_log_debug("%s: the proxy's own request done (%s)", s->label,
                         s->track.in_txn ? "still in a transaction" : "no transaction");
        }
        if (s->state == TS_BUSY)
            set_state(s, TS_IDLE);
        if (s->rollback_pending) {
            s->rollback_pending = false;
            send_internal_rollback(s);
        }
    }
}

static void process_client(struct sy_tds_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->io.client);
    switch (s->state) {
    case TS_PRELOGIN:
    case TS_TLS:
    case TS_LOGIN7:
        sy_tds_login_client_input(s, in);
        break;
    case TS_IDLE:
    case TS_BUSY:
    case TS_HELD:
        relay_client(s, in);
        break;
    default:
        break; /* TS_LOGIN: nothing may come before the login response; it waits in the input */
    }
}

static void process_backend(struct sy_tds_session *s)
{
    if (!s->io.backend_connected || s->state == TS_CLOSING)
        return;
    struct evbuffer *in = bufferevent_get_input(s->io.backend);
    if (s->state == TS_PRELOGIN || s->state == TS_LOGIN || (!s->backend_prelogin && s->state < TS_LOGIN)) {
        sy_tds_login_server_input(s, in);     /* (a login pointed at a new server: its PRELOGIN answer) */
    } else if (s->state == TS_IDLE || s->state == TS_BUSY || s->state == TS_HELD) {
        relay_backend(s, in);
    } else if (evbuffer_get_length(in) > 0 && s->state != TS_CLOSING) {
        bad_packet(s, "server", "bytes before they were asked for");
        return;
    }
    if (s->state == TS_IDLE || s->state == TS_LOGIN7) {
        process_client(s);
        client_read_update(s);
    }
}

/* ---- events ------------------------------------------------------------------------------------------ */

static void on_client_read(struct bufferevent *bev, void *arg)
{
    struct sy_tds_session *s = arg;
    process_client(s);
    client_read_update(s);     /* bytes the state cannot take yet: bounded by the high water */
    session_flush(s);
}

static void on_client_write(struct bufferevent *bev, void *arg)
{
    struct sy_tds_session *s = arg;
    if (s->state == TS_CLOSING) {
        if (client_pending(s) == 0)        /* a final message reached the socket: the session can go */
            reap_soon(s->px);
        return;
    }
    sy_relay_write_drained(bev);
    session_flush(s);
}

static void on_client_event(struct bufferevent *bev, short what, void *arg)
{
    struct sy_tds_session *s = arg;
    if (s->state == TS_CLOSING) {
        s->io.client_gone = true;
        reap_soon(s->px);
        return;
    }
    if (what & BEV_EVENT_EOF)
        close_session(s, s->state == TS_BUSY ? "client vanished mid-request" : "client disconnected", false,
                      SY_TERR__COUNT);
    else
        close_session(s, s->tls ? "client socket or TLS error" : "client socket error", false, SY_TERR__COUNT);
}

static void on_backend_read(struct bufferevent *bev, void *arg)
{
    struct sy_tds_session *s = arg;
    process_backend(s);
    session_flush(s);
}

static void on_backend_write(struct bufferevent *bev, void *arg)
{
    struct sy_tds_session *s = arg;
    sy_relay_write_drained(bev);
    session_flush(s);
}

static void on_backend_event(struct bufferevent *bev, short what, void *arg)
{
    struct sy_tds_session *s = arg;
    if (s->state == TS_CLOSING)
        return;
    const struct sy_pair_cfg *cfg = s->px->pair->cfg;
    const struct sy_endpoint *ep = s->side == SY_SIDE_BUSINESS ? &cfg->business : &cfg->dr;
    if (what & BEV_EVENT_CONNECTED) {
        sy_relay_backend_connected(bev);
        s->io.backend_connected = true;
        sy_log_debug("%s: connected to the %s server %s:%u", s->label, sy_side_name(s->side), ep->host, ep->port);
        sy_tds_login_start(s);
        backend_read_update(s);
        session_flush(s);
        return;
    }
    char why[400];
    if (!s->io.backend_connected)
        snprintf(why, sizeof why, "cannot connect to the %s server %s:%u (%s)", sy_side_name(s->side), ep->host,
                 ep->port,
                 (what & BEV_EVENT_TIMEOUT) ? "timed out" : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    else
        snprintf(why, sizeof why, "the %s server closed the connection%s", sy_side_name(s->side),
                 s->state == TS_BUSY ? " during a request" : "");
    /* The client sees its connection end, as it would connected directly. */
    close_session(s, why, false, SY_TERR_LOST_CONNECTION);
}

/* ---- public ---------------------------------------------------------------------------------------------- */

static int backend_open(struct sy_tds_session *s, char *err, size_t errlen)
{
    s->side = s->px->pair->active_side;
    return sy_relay_backend_connect(s->px->base, sy_pair_active_endpoint(s->px->pair), SESS_CONNECT_S,
                                    SESS_MAX_READ, on_backend_read, on_backend_write, on_backend_event, s,
                                    &s->io.backend, err, errlen);
}

void sy_tds_session_accept(struct sy_tds_proxy *px, evutil_socket_t fd, const struct sockaddr *sa, int salen)
{
    struct sy_tds_session *s = calloc(1, sizeof *s);
    if (s == NULL) {
        evutil_closesocket(fd);
        return;
    }
    s->px = px;
    s->id = px->next_id++;
    if (px->next_id == 0)
        px->next_id = 1;
    s->packet_size = SY_TDS_MAX_PACKET;          /* until the login negotiates one */
    s->scanbuf = evbuffer_new();
    if (s->scanbuf == NULL) {
        evutil_closesocket(fd);
        free(s);
        return;
    }
    s->encryption = SY_TDS_ENCRYPT_NOT_SUP;      /* until PRELOGIN is answered */
    sy_relay_addr_name(sa, (socklen_t)salen, s->peer, sizeof s->peer);
    snprintf(s->label, sizeof s->label, "%s T-%u %s", px->pair->cfg->name, s->id, s->peer);
    s->io = (struct sy_relay_link){ .label = s->label, .session = s, .client_resume = client_resume,
                                    .backend_resume = backend_resume, .closed = session_closed };
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->io.client = bufferevent_socket_new(px->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (s->io.client == NULL) {
        evutil_closesocket(fd);
        evbuffer_free(s->scanbuf);
        free(s);
        return;
    }
    TAILQ_INSERT_TAIL(&px->sessions, s, link);
    px->n_sessions++;
    sy_tds_session_client_attach(s, s->io.client);
    sy_log_debug("%s: accepted", s->label);
    if (px->pair->held) {
        /* a switch may be moving the pair: the login goes to whichever side is active when the hold ends (the
         * client's PRELOGIN waits for the server's, as it would for a slow server) */
        s->backend_deferred = true;
        s->side = px->pair->active_side;
        sy_log_debug("%s: the pair is held: its server connection waits for the release", s->label);
        return;
    }
    char err[300];
    if (backend_open(s, err, sizeof err) != 0)
        close_session(s, err, false, SY_TERR_LOST_CONNECTION);
}

bool sy_tds_session_login_unsent(const struct sy_tds_session *s)
{
    return s->backend_deferred || s->state == TS_PRELOGIN || s->state == TS_TLS || s->state == TS_LOGIN7;
}

/* Drops the backend connection (nothing of the login went to it but the proxy's PRELOGIN) and opens one to
 * the active side; its PRELOGIN answer is read again (the client's was answered once, or is answered now). */
static void backend_reopen(struct sy_tds_session *s)
{
    if (s->io.backend != NULL) {
        bufferevent_setcb(s->io.backend, NULL, NULL, NULL, NULL);
        bufferevent_free(s->io.backend);
        s->io.backend = NULL;
    }
    s->io.backend_connected = false;
    s->io.backend_bp = false;
    s->backend_prelogin = false;
    s->backend_deferred = false;
    char err[300];
    if (backend_open(s, err, sizeof err) != 0)
        close_session(s, err, false, SY_TERR_LOST_CONNECTION);
}

void sy_tds_session_login_repoint(struct sy_tds_session *s)
{
    if (s->backend_deferred) {
        s->side = s->px->pair->active_side;           /* connects at the release */
        return;
    }
    sy_log_info("%s: logging in: its login goes to the %s side", s->label, sy_side_name(s->px->pair->active_side));
    backend_reopen(s);
}

static void session_resume(struct sy_tds_session *s)
{
    if (s->state == TS_LOGIN7) {                   /* its LOGIN7 waited for the hold's end */
        process_client(s);
        session_flush(s);
        return;
    }
    if (s->state != TS_HELD)
        return;
    set_state(s, TS_IDLE);
    client_read_update(s);
    process_client(s);
    session_flush(s);
}

void sy_tds_sessions_resume(struct sy_tds_proxy *px)
{
    struct sy_tds_session *s, *next;
    for (s = TAILQ_FIRST(&px->sessions); s != NULL && !px->pair->held; s = next) {
        next = TAILQ_NEXT(s, link);
        if (s->backend_deferred && s->state != TS_CLOSING) {
            sy_log_debug("%s: the hold ended: connecting to the %s side", s->label,
                         sy_side_name(px->pair->active_side));
            backend_reopen(s); /* may close s */
            continue;
        }
        session_resume(s); /* may close s: next was taken first */
    }
}

void sy_tds_session_adopt_backend(struct sy_tds_session *s, struct bufferevent *bev, enum sy_side side)
{
    s->side = side;
    s->moved = true;
    s->b_left = 0;
    s->b_tail_len = 0;
    evbuffer_drain(s->scanbuf, evbuffer_get_length(s->scanbuf));
    s->scan_off = false;
    s->scan.ncols = 0;
    s->begin_pending = s->begin_pending || (s->track.in_txn && s->track.txn_empty && !s->txn_aborted);
    s->track.in_txn = false;                      /* nothing of the old connection's transaction came along */
    s->track.txn_empty = false;
    s->track.desc = 0;
    if (sy_relay_link_adopt_backend(&s->io, bev, SESS_MAX_READ, on_backend_read, on_backend_write, on_backend_event))
        client_read_update(s);
    sy_log_info("%s: moved to the %s side (database %s, %u SET option(s), %zu prepared statement(s))", s->label,
                sy_side_name(side), s->track.database, s->track.n_sets, s->track.n_preps);
}

struct sy_tds_session *sy_tds_session_first(struct sy_tds_proxy *px)
{
    return TAILQ_FIRST(&px->sessions);
}

struct sy_tds_session *sy_tds_session_next(struct sy_tds_session *s)
{
    return TAILQ_NEXT(s, link);
}

bool sy_tds_session_busy(const struct sy_tds_session *s)
{
    return s->state != TS_IDLE && s->state != TS_HELD;
}

enum sy_side sy_tds_session_side(const struct sy_tds_session *s)
{
    return s->side;
}

const char *sy_tds_session_unmovable_reason(const struct sy_tds_session *s, char *buf, size_t len)
{
    if (!s->logged_in)
        return "logging in";
    if (sy_tds_track_unmovable(&s->track, buf, len))
        return buf;
    return NULL;
}

static const char *session_unmovable(const struct sy_tds_session *s, char *buf, size_t len)
{
    return sy_tds_session_unmovable_reason(s, buf, len);
}

json_t *sy_tds_session_unmovable_json(const struct sy_tds_session *s, const char *key)
{
    char buf[200];
    return json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)s->id, "user", s->user, "peer", s->peer, key,
                     session_unmovable(s, buf, sizeof buf));
}

static json_t *session_json(const struct sy_tds_session *s)
{
    uint64_t held = s->state == TS_HELD ? sy_now_ms() - s->held_since_ms : 0;
    char tds[16], buf[200];
    snprintf(tds, sizeof tds, "0x%08x", (unsigned)s->tds_version);
    const char *enc = s->encryption == SY_TDS_ENCRYPT_ON    ? "on"
                      : s->encryption == SY_TDS_ENCRYPT_OFF ? "login-only"
                                                            : "off";
    const char *why = session_unmovable(s, buf, sizeof buf);
    json_t *sets = json_array();
    for (unsigned i = 0; i < s->track.n_sets; i++)
        json_array_append_new(sets, json_string(s->track.sets[i].stmt));
    json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:b,s:I,s:b,s:s?,s:s,s:s,s:s,s:s,s:s,s:I,s:b,s:s,s:I,s:I,s:I}", "id",
                          (json_int_t)s->id, "user", s->user, "peer", s->peer, "side", sy_side_name(s->side),
                          "in_transaction", s->track.in_txn || s->begin_pending, "held_ms", (json_int_t)held, "movable", why == NULL,
                          "unmovable_reason", why, "state", sess_state_names[s->state], "database",
                          s->logged_in ? s->track.database : s->database, "language", s->track.language, "app",
                          s->app, "tds_version", tds, "packet_size", (json_int_t)(s->logged_in ? s->packet_size : 0),
                          "tls", s->tls, "encryption", enc, "requests", (json_int_t)s->requests, "attentions",
                          (json_int_t)s->attentions, "resets", (json_int_t)s->resets);
    if (o == NULL) {
        json_decref(sets);
        return NULL;
    }
    json_object_set_new(o, "set_options", sets);
    json_object_set_new(o, "prepared", json_integer((json_int_t)s->track.n_preps));
    json_object_set_new(o, "temp_tables", json_integer(s->track.n_temp));
    json_object_set_new(o, "open_cursors", json_integer(s->track.n_cursors));
    json_object_set_new(o, "applocks", json_integer(s->track.n_applocks));
    return o;
}

json_t *sy_tds_sessions_json(struct sy_tds_proxy *px)
{
    json_t *list = json_array();
    struct sy_tds_session *s;
    TAILQ_FOREACH(s, &px->sessions, link)
        json_array_append_new(list, session_json(s));
    return list;
}
