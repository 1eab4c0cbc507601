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
 * Sessions end through close_session() and are freed by the proxy's reaper on a later loop turn. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/log.h"
#include "proxy/relay.h"
#include "proxy/tds_proxy.h"
#include "proxy/tds_wire.h"

#define SESS_FLUSH_MS 5000              /* how long a closed session's final error may take to be read */
#define SESS_CONNECT_S 10               /* backend connect timeout */
#define SESS_MAX_READ (256u << 10)      /* bytes read per callback (libevent's default is 16 KiB) */
#define PRELOGIN_MAX 4096u              /* PRELOGIN payload accepted (clients send < 100 bytes) */
#define LOGIN_REPLY_MAX (1u << 20)      /* login response payload read whole */
#define PROXY_SERVER_NAME "switchyard"  /* server name of the errors the proxy answers itself */

/* What the session waits for. */
enum sess_state {
    TS_PRELOGIN, /* the client's PRELOGIN and the backend's PRELOGIN answer (both before answering) */
    TS_TLS,      /* the client's TLS handshake, its records carried inside PRELOGIN packets */
    TS_LOGIN7,   /* PRELOGIN answered: the client's LOGIN7 */
    TS_LOGIN,    /* the proxy's LOGIN7 sent to the backend: its login response */
    TS_IDLE,     /* logged in, no request in flight */
    TS_BUSY,     /* a request (or an ATTENTION) was forwarded, its response is not complete */
    TS_HELD,     /* pair held: the next request waits (reading paused) until release */
    TS_CLOSING,  /* closed; freed by the reaper */
    TS__COUNT
};

static const char *const sess_state_names[TS__COUNT] = { "PRELOGIN", "TLS",  "LOGIN7", "LOGIN",
                                                         "IDLE",     "BUSY", "HELD",   "CLOSING" };

struct sy_tds_session {
    TAILQ_ENTRY(sy_tds_session) link;   /* in px->sessions, then px->closing */
    struct sy_tds_proxy *px;            /* ref: owns the session */
    uint32_t id;                        /* `clients` id, log label */
    enum sess_state state;              /* changed only through set_state() (logged) */
    char peer[80];                      /* "127.0.0.1:51234" */
    char label[160];                    /* "orders T-3 127.0.0.1:51234" for logs */
    struct sy_relay_link io;            /* client and backend bufferevents (owned), backpressure */
    enum sy_side side;                  /* where the backend connection is */
    /* handshake */
    bool client_prelogin;               /* the client's PRELOGIN was read (TS_PRELOGIN) */
    bool fedauth_asked;                 /* it had FEDAUTHREQUIRED: the answer carries the option too */
    bool backend_prelogin;              /* the backend's PRELOGIN answer was read */
    int encryption;                     /* what PRELOGIN answered: SY_TDS_ENCRYPT_NOT_SUP (no TLS), _OFF (the
                                           LOGIN7 only), _ON (the whole session) */
    SSL *ssl;                           /* owned while the session holds it: the handshake (memory BIOs), and
                                           for login-only encryption until the end (the filter does not own it) */
    struct bufferevent *client_raw;     /* owned: the client's socket under a TLS filter that does not own it
                                           (login-only encryption, until the login response); else NULL */
    bool tls;                           /* the client's bytes go through TLS now */
    uint8_t server_version[6];          /* from the backend's PRELOGIN: our answer names the same */
    uint8_t password[2 * SY_TDS_LOGIN7_MAX_CHARS]; /* UTF-16LE, de-obfuscated: memory only, wiped on free */
    size_t password_len;
    /* who logged in */
    bool logged_in;
    char user[260];
    char database[260];                 /* the login's database (ENVCHANGE), later changes not tracked */
    char app[260];
    uint32_t tds_version;               /* what the client's LOGIN7 asked (the server's LOGINACK answers) */
    size_t packet_size;                 /* negotiated (ENVCHANGE 4): the limit of the client's packets */
    /* relay: where each direction stands inside a packet and a message */
    size_t c_left;                      /* bytes of the client's current packet still to forward */
    bool c_in_msg;                      /* a client message started (no EOM yet) */
    uint8_t c_msg_type;
    bool c_eom;                         /* the current client packet ends its message */
    bool c_ignored;                     /* ... with IGNORE: no response comes */
    size_t b_left;                      /* bytes of the server's current packet still to forward */
    bool b_eom;                         /* the current server packet ends its message */
    uint8_t b_tail[SY_TDS_DONE_LEN];    /* last payload bytes of the server's current message */
    size_t b_tail_len;
    bool attention;                     /* an ATTENTION was forwarded: busy until the server acknowledges */
    uint64_t requests;                  /* request messages forwarded */
    uint64_t attentions;                /* ATTENTION packets forwarded */
    uint64_t resets;                    /* requests with RESETCONNECTION(SKIPTRAN) */
    uint64_t held_since_ms;             /* when TS_HELD began */
};

static void process_client(struct sy_tds_session *s);
static void process_backend(struct sy_tds_session *s);
static void on_client_read(struct bufferevent *bev, void *arg);
static void on_client_write(struct bufferevent *bev, void *arg);
static void on_client_event(struct bufferevent *bev, short what, void *arg);

/* ---- state, closing ---------------------------------------------------------------------------------- */

static void set_state(struct sy_tds_session *s, enum sess_state to)
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
    bool off = s->io.client_bp || s->state == TS_HELD ||
               (s->state != TS_IDLE && evbuffer_get_length(bufferevent_get_input(s->io.client)) > SY_RELAY_HIGH_WATER);
    if (off)
        bufferevent_disable(s->io.client, EV_READ);
    else
        bufferevent_enable(s->io.client, EV_READ);
}

static void backend_read_update(struct sy_tds_session *s)
{
    if (s->state == TS_CLOSING || s->io.backend == NULL || !s->io.backend_connected)
        return;
    if (s->io.backend_bp)
        bufferevent_disable(s->io.backend, EV_READ);
    else
        bufferevent_enable(s->io.backend, EV_READ);
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

/* A login the proxy refuses itself: ERROR + DONE(ERROR) in a TABULAR message, then closed once written. */
static void refuse_login(struct sy_tds_session *s, int32_t number, const char *msg, const char *why)
{
    uint8_t tokens[2600], wire[2700];
    size_t n = sy_tds_error_reply_build(tokens, sizeof tokens, SY_TDS_TOK_ERROR, number, 1, 14, msg,
                                        PROXY_SERVER_NAME, SY_TDS_DONE_ERROR);
    size_t w = n ? sy_tds_msg_build(wire, sizeof wire, SY_TDS_TABULAR, 0, SY_TDS_LOGIN_PACKET, tokens, n) : 0;
    if (w)
        evbuffer_add(bufferevent_get_output(s->io.client), wire, w);
    close_session(s, why, true, SY_TERR_UNSUPPORTED);
}

/* Takes the whole message at the front of `in` (payload copied to a malloc'd buffer the caller frees):
 * 1 taken, 0 not whole yet, -1 closed (bad). The wire bytes are zeroed before they are drained when
 * `wipe` (a LOGIN7 holds the password). */
static int take_message(struct sy_tds_session *s, struct evbuffer *in, const char *from, size_t max_payload,
                        bool wipe, struct sy_tds_msg *m, uint8_t **payload)
{
    size_t n = evbuffer_get_length(in);
    if (n < SY_TDS_HDR_LEN)
        return 0;
    char err[200];
    /* pulled up in one piece: every packet but the last carries a byte at least (sy_tds_msg_frame), so a
     * message within max_payload spans at most 9 bytes per payload byte plus the last header */
    size_t have = n < 9 * max_payload + SY_TDS_HDR_LEN ? n : 9 * max_payload + SY_TDS_HDR_LEN;
    uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)have);
    if (p == NULL) {
        close_session(s, "out of memory", false, SY_TERR__COUNT);
        return -1;
    }
    enum sy_parse pr = sy_tds_msg_frame(p, have, SY_TDS_MAX_PACKET, max_payload, m, err, sizeof err);
    if (pr == SY_PARSE_BAD) {
        bad_packet(s, from, err);
        return -1;
    }
    if (pr == SY_PARSE_AGAIN)
        return 0;
    *payload = malloc(m->payload_len ? m->payload_len : 1);
    if (*payload == NULL) {
        close_session(s, "out of memory", false, SY_TERR__COUNT);
        return -1;
    }
    sy_tds_msg_payload(p, m, *payload);
    if (wipe)
        OPENSSL_cleanse(p, m->wire_len);
    return 1;
}

/* ---- PRELOGIN ------------------------------------------------------------------------------------------- */

static void send_message(struct bufferevent *to, uint8_t type, const uint8_t *payload, size_t len)
{
    size_t cap = len + (len / (SY_TDS_LOGIN_PACKET - SY_TDS_HDR_LEN) + 1) * SY_TDS_HDR_LEN;
    uint8_t *wire = malloc(cap);
    size_t w = wire ? sy_tds_msg_build(wire, cap, type, 0, SY_TDS_LOGIN_PACKET, payload, len) : 0;
    if (w)
        evbuffer_add(bufferevent_get_output(to), wire, w);
    free(wire);
}

/* The proxy's PRELOGIN to the backend: no encryption (not built for server connections yet), no MARS. */
static void backend_prelogin_send(struct sy_tds_session *s)
{
    static const uint8_t version[6] = { 1, 0, 0, 0, 0, 0 };
    static const uint8_t enc = SY_TDS_ENCRYPT_NOT_SUP, inst = 0, mars = 0;
    uint8_t thread[4] = { 0, 0, 0, 0 };
    const struct sy_tds_prelogin_opt opts[] = {
        { SY_TDS_PL_VERSION, version, 6 }, { SY_TDS_PL_ENCRYPTION, &enc, 1 }, { SY_TDS_PL_INSTOPT, &inst, 1 },
        { SY_TDS_PL_THREADID, thread, 4 }, { SY_TDS_PL_MARS, &mars, 1 },
    };
    uint8_t buf[128];
    size_t n = sy_tds_prelogin_build(buf, sizeof buf, opts, SY_ARRAY_LEN(opts));
    send_message(s->io.backend, SY_TDS_PRELOGIN, buf, n);
}

/* Both PRELOGINs are in: the client gets the proxy's answer (the server's version, no encryption, MARS off). */
static void client_prelogin_answer(struct sy_tds_session *s)
{
    if (!s->client_prelogin || !s->backend_prelogin || s->state != TS_PRELOGIN)
        return;
    static const uint8_t inst = 0, mars = 0, fedauth = 0;
    const uint8_t enc = (uint8_t)s->encryption;
    struct sy_tds_prelogin_opt opts[6] = {
        { SY_TDS_PL_VERSION, s->server_version, 6 }, { SY_TDS_PL_ENCRYPTION, &enc, 1 },
        { SY_TDS_PL_INSTOPT, &inst, 1 }, { SY_TDS_PL_THREADID, NULL, 0 }, { SY_TDS_PL_MARS, &mars, 1 },
    };
    size_t nopts = 5;
    if (s->fedauth_asked)
        opts[nopts++] = (struct sy_tds_prelogin_opt){ SY_TDS_PL_FEDAUTHREQUIRED, &fedauth, 1 };
    uint8_t buf[128];
    size_t n = sy_tds_prelogin_build(buf, sizeof buf, opts, nopts);
    send_message(s->io.client, SY_TDS_TABULAR, buf, n);
    if (s->encryption == SY_TDS_ENCRYPT_NOT_SUP) {
        set_state(s, TS_LOGIN7);
        return;
    }
    /* the handshake: records in PRELOGIN packets through memory BIOs, then a filter over the socket */
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    s->ssl = rb && wb ? SSL_new(s->px->tls) : NULL;
    if (s->ssl == NULL) {
        BIO_free(rb);
        BIO_free(wb);
        close_session(s, "out of memory (TLS)", false, SY_TERR__COUNT);
        return;
    }
    SSL_set_bio(s->ssl, rb, wb);
    SSL_set_accept_state(s->ssl);
    set_state(s, TS_TLS);
}

static void client_prelogin(struct sy_tds_session *s, struct evbuffer *in)
{
    size_t n = evbuffer_get_length(in);
    if (n == 0)
        return;
    const uint8_t *first = evbuffer_pullup(in, 1);
    if (first[0] == 0x16) {
        bad_packet(s, "client", "a TLS handshake before PRELOGIN (TDS 8.0 strict encryption is not supported)");
        return;
    }
    struct sy_tds_msg m;
    uint8_t *pl = NULL;
    int rc = take_message(s, in, "client", PRELOGIN_MAX, false, &m, &pl);
    if (rc <= 0)
        return;
    evbuffer_drain(in, m.wire_len);
    char err[200];
    struct sy_tds_prelogin cp;
    if (m.type != SY_TDS_PRELOGIN) {
        snprintf(err, sizeof err, "expected PRELOGIN, got %s (0x%02x)", sy_tds_type_name(m.type), (unsigned)m.type);
        bad_packet(s, "client", err);
    } else if (sy_tds_prelogin_parse(pl, m.payload_len, &cp, err, sizeof err) != SY_PARSE_OK) {
        bad_packet(s, "client", err);
    } else {
        s->client_prelogin = true;
        s->fedauth_asked = cp.fedauth_required >= 0;
        /* the server's answer (MS-TDS 2.2.6.5): NOT_SUP without a certificate or for a client without TLS,
         * ON for a client that asks ON or REQ, OFF (the LOGIN7 only) for OFF */
        int enc = cp.encryption < 0 ? SY_TDS_ENCRYPT_OFF : cp.encryption & 0x0F;
        if (s->px->tls == NULL || enc == SY_TDS_ENCRYPT_NOT_SUP)
            s->encryption = SY_TDS_ENCRYPT_NOT_SUP;
        else
            s->encryption = enc == SY_TDS_ENCRYPT_OFF ? SY_TDS_ENCRYPT_OFF : SY_TDS_ENCRYPT_ON;
        if (s->px->tls == NULL && (enc == SY_TDS_ENCRYPT_ON || enc == SY_TDS_ENCRYPT_REQ))
            sy_log_info("%s: the client requires encryption: answered ENCRYPT_NOT_SUP (the pair has no tls_cert)",
                        s->label);
        if (cp.mars == 1)
            sy_log_info("%s: the client asked for MARS: answered off (the proxy does not support MARS)", s->label);
        client_prelogin_answer(s);
    }
    free(pl);
}

static void backend_prelogin(struct sy_tds_session *s, struct evbuffer *in)
{
    struct sy_tds_msg m;
    uint8_t *pl = NULL;
    if (take_message(s, in, "server", PRELOGIN_MAX, false, &m, &pl) <= 0)
        return;
    evbuffer_drain(in, m.wire_len);
    char err[200], why[300];
    struct sy_tds_prelogin sp;
    if (m.type != SY_TDS_TABULAR || sy_tds_prelogin_parse(pl, m.payload_len, &sp, err, sizeof err) != SY_PARSE_OK) {
        if (m.type != SY_TDS_TABULAR)
            snprintf(err, sizeof err, "PRELOGIN answered with %s", sy_tds_type_name(m.type));
        bad_packet(s, "server", err);
    } else if (sp.encryption == SY_TDS_ENCRYPT_REQ || sp.encryption == SY_TDS_ENCRYPT_ON) {
        snprintf(why, sizeof why, "the %s server requires encryption; the proxy's server connections do not "
                 "encrypt yet", sy_side_name(s->side));
        close_session(s, why, false, SY_TERR_LOST_CONNECTION);
    } else {
        s->backend_prelogin = true;
        if (sp.has_version)
            memcpy(s->server_version, sp.version, 6);
        client_prelogin_answer(s);
    }
    free(pl);
}

/* ---- TLS inside PRELOGIN --------------------------------------------------------------------------------- */

static void tls_failed(struct sy_tds_session *s, const char *what)
{
    char why[300], ossl[200] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, ossl, sizeof ossl);
    ERR_clear_error();
    snprintf(why, sizeof why, "TLS handshake failed: %s%s%s", what, ossl[0] ? ": " : "", ossl);
    close_session(s, why, false, SY_TERR_BAD_PACKET);
}

/* The handshake is done: the client's bufferevent becomes a TLS filter over its socket. With login-only
 * encryption the filter does not own the socket's bufferevent or the SSL (tls_off() drops it later). */
static void tls_established(struct sy_tds_session *s)
{
    if (BIO_ctrl_pending(SSL_get_rbio(s->ssl)) > 0) {
        tls_failed(s, "client data arrived with its last handshake record");
        return;
    }
    bool whole = s->encryption == SY_TDS_ENCRYPT_ON;
    struct bufferevent *raw = s->io.client;
    struct bufferevent *f = bufferevent_openssl_filter_new(s->px->base, raw, s->ssl, BUFFEREVENT_SSL_OPEN,
                                                           whole ? BEV_OPT_CLOSE_ON_FREE : 0);
    if (f == NULL) {
        close_session(s, "out of memory (TLS filter)", false, SY_TERR__COUNT);
        return;
    }
    if (whole)
        s->ssl = NULL;      /* the filter owns the SSL and the socket's bufferevent */
    else
        s->client_raw = raw;
    s->io.client = f;
    s->tls = true;
    bufferevent_set_max_single_read(f, SESS_MAX_READ);
    bufferevent_setcb(f, on_client_read, on_client_write, on_client_event, s);
    bufferevent_setwatermark(f, EV_WRITE, SY_RELAY_LOW_WATER, 0);
    bufferevent_enable(f, EV_READ | EV_WRITE);
    sy_log_debug("%s: TLS established (%s, %s)", s->label, SSL_get_version(bufferevent_openssl_get_ssl(f)),
                 whole ? "whole session" : "login only");
    set_state(s, TS_LOGIN7);
}

/* Login-only encryption: the LOGIN7 went through TLS, the rest of the session is plain (as SQL Server does
 * after ENCRYPT_OFF). Called outside the filter's callbacks, before the login response is written. */
static void tls_off(struct sy_tds_session *s)
{
    struct bufferevent *f = s->io.client;
    s->io.client = s->client_raw;
    s->client_raw = NULL;
    bufferevent_free(f);                 /* unlinks from the socket's bufferevent, leaves the SSL to us */
    s->tls = false;
    bufferevent_setcb(s->io.client, on_client_read, on_client_write, on_client_event, s);
    bufferevent_setwatermark(s->io.client, EV_WRITE, SY_RELAY_LOW_WATER, 0);
    bufferevent_enable(s->io.client, EV_READ | EV_WRITE);
}

/* Handshake records from the client's PRELOGIN packets into the SSL object, its answers back the same way. */
static void client_tls_handshake(struct sy_tds_session *s, struct evbuffer *in)
{
    char err[200];
    size_t n;
    while ((n = evbuffer_get_length(in)) >= SY_TDS_HDR_LEN) {
        struct sy_tds_hdr h;
        const uint8_t *p = evbuffer_pullup(in, SY_TDS_HDR_LEN);
        if (sy_tds_hdr_parse(p, SY_TDS_HDR_LEN, SY_TDS_MAX_PACKET, &h, err, sizeof err) != SY_PARSE_OK) {
            bad_packet(s, "client", err);
            return;
        }
        if (h.type != SY_TDS_PRELOGIN) {
            snprintf(err, sizeof err, "%s (0x%02x) packet during the TLS handshake", sy_tds_type_name(h.type),
                     (unsigned)h.type);
            bad_packet(s, "client", err);
            return;
        }
        if (n < h.length)
            break;
        p = evbuffer_pullup(in, h.length);
        int body = h.length - SY_TDS_HDR_LEN;
        if (body > 0 && BIO_write(SSL_get_rbio(s->ssl), p + SY_TDS_HDR_LEN, body) != body) {
            close_session(s, "out of memory (TLS)", false, SY_TERR__COUNT);
            return;
        }
        evbuffer_drain(in, h.length);
    }
    ERR_clear_error();
    int rc = SSL_do_handshake(s->ssl);
    int why = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, rc);
    BIO *wb = SSL_get_wbio(s->ssl);
    size_t out = BIO_ctrl_pending(wb);
    if (out > 0) {
        uint8_t *buf = malloc(out);
        if (buf == NULL || BIO_read(wb, buf, (int)out) != (int)out) {
            free(buf);
            close_session(s, "out of memory (TLS)", false, SY_TERR__COUNT);
            return;
        }
        send_message(s->io.client, SY_TDS_PRELOGIN, buf, out);
        free(buf);
    }
    if (why == SSL_ERROR_NONE)
        tls_established(s);
    else if (why != SSL_ERROR_WANT_READ)
        tls_failed(s, "the client's records");
}

/* ---- LOGIN7 ---------------------------------------------------------------------------------------------- */

static void client_login7(struct sy_tds_session *s, struct evbuffer *in)
{
    struct sy_tds_msg m;
    uint8_t *pl = NULL;
    if (take_message(s, in, "client", SY_TDS_LOGIN7_MAX, true, &m, &pl) <= 0)
        return;
    evbuffer_drain(in, m.wire_len);
    char err[200];
    struct sy_tds_login7 l;
    uint8_t *out = NULL, *wire = NULL;
    size_t cap = m.payload_len + 64, wcap = cap + (cap / 504 + 1) * SY_TDS_HDR_LEN;
    if (m.type != SY_TDS_LOGIN7) {
        snprintf(err, sizeof err, "expected LOGIN7, got %s (0x%02x)", sy_tds_type_name(m.type), (unsigned)m.type);
        bad_packet(s, "client", err);
        goto out;
    }
    if (sy_tds_login7_parse(pl, m.payload_len, &l, err, sizeof err) != SY_PARSE_OK) {
        bad_packet(s, "client", err);
        goto out;
    }
    sy_tds_utf16_to_utf8(l.str[SY_L7_USERNAME].p, l.str[SY_L7_USERNAME].len, s->user, sizeof s->user);
    sy_tds_utf16_to_utf8(l.str[SY_L7_APPNAME].p, l.str[SY_L7_APPNAME].len, s->app, sizeof s->app);
    s->tds_version = l.tds_version;
    if ((l.flags2 & SY_TDS_LOGIN7_FLAG2_INTSECURITY) || l.sspi.len > 0) {
        refuse_login(s, 18452, "Login failed: switchyard relays SQL Server authentication only (integrated "
                     "authentication is not supported).", "integrated (SSPI) login refused");
        goto out;
    }
    if (l.feature_ext.len > 0 && l.feature_ext.p[0] == SY_TDS_FEATURE_FEDAUTH) {
        refuse_login(s, 18456, "Login failed: switchyard relays SQL Server authentication only (federated "
                     "authentication is not supported).", "federated login refused");
        goto out;
    }
    const struct sy_tds_span *pw = &l.str[SY_L7_PASSWORD];
    sy_tds_password_decode(pw->p, pw->len, s->password);
    s->password_len = pw->len;
    out = malloc(cap);
    wire = malloc(wcap);
    size_t n = 0, w = 0;
    if (out != NULL && wire != NULL && (n = sy_tds_login7_build(out, cap, &l, s->password, s->password_len)) > 0)
        w = sy_tds_msg_build(wire, wcap, SY_TDS_LOGIN7, 0, SY_TDS_LOGIN_PACKET, out, n);
    if (w == 0) {
        close_session(s, "cannot build the server's LOGIN7", false, SY_TERR__COUNT);
        goto out;
    }
    evbuffer_add(bufferevent_get_output(s->io.backend), wire, w);
    sy_log_debug("%s: LOGIN7 of '%s' (app '%s', TDS 0x%08x, packet size %u) sent to the %s server", s->label, s->user,
                 s->app, (unsigned)l.tds_version, (unsigned)l.packet_size, sy_side_name(s->side));
    set_state(s, TS_LOGIN);
out:
    if (out)
        OPENSSL_cleanse(out, cap);
    if (wire)
        OPENSSL_cleanse(wire, wcap);
    OPENSSL_cleanse(pl, m.payload_len);
    free(out);
    free(wire);
    free(pl);
}

/* The server's login response (whole): passed on as it came; logged in when it has a LOGINACK. */
static void backend_login_reply(struct sy_tds_session *s, struct evbuffer *in)
{
    struct sy_tds_msg m;
    uint8_t *pl = NULL;
    if (take_message(s, in, "server", LOGIN_REPLY_MAX, false, &m, &pl) <= 0)
        return;
    char err[200], why[800];
    struct sy_tds_login_result r;
    enum sy_parse pr = m.type == SY_TDS_TABULAR ? sy_tds_login_result_scan(pl, m.payload_len, &r, err, sizeof err)
                                                : SY_PARSE_BAD;
    free(pl);
    if (m.type != SY_TDS_TABULAR)
        snprintf(err, sizeof err, "login answered with %s", sy_tds_type_name(m.type));
    if (pr != SY_PARSE_OK) {
        snprintf(why, sizeof why, "cannot read the login response: %s", err);
        bad_packet(s, "server", why);
        return;
    }
    if (s->client_raw != NULL)
        tls_off(s);                      /* login-only encryption: the response goes out plain */
    evbuffer_remove_buffer(in, bufferevent_get_output(s->io.client), m.wire_len);
    if (!r.loginack) {
        snprintf(why, sizeof why, "login of '%s' refused by the %s server: %d %s", s->user, sy_side_name(s->side),
                 r.has_error ? (int)r.error.number : 0, r.has_error ? r.error.message : "(no error token)");
        OPENSSL_cleanse(s->password, sizeof s->password);
        close_session(s, why, true, SY_TERR__COUNT);
        return;
    }
    s->logged_in = true;
    s->packet_size = r.packet_size ? r.packet_size : SY_TDS_LOGIN_PACKET;
    snprintf(s->database, sizeof s->database, "%s", r.database);
    sy_log_info("%s: logged in as '%s' (database %s, packet size %zu, %s TDS 0x%08x) on the %s server", s->label,
                s->user, s->database, s->packet_size, r.ack.prog_name, (unsigned)r.ack.tds_version,
                sy_side_name(s->side));
    set_state(s, TS_IDLE);
    to_client_done(s);
}

/* ---- relay ------------------------------------------------------------------------------------------------ */

static bool request_type(uint8_t t)
{
    return t == SY_TDS_SQL_BATCH || t == SY_TDS_RPC || t == SY_TDS_BULK_LOAD || t == SY_TDS_TRANSACTION_MANAGER;
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
        snprintf(err, sizeof err, "%s (0x%02x) packet after the login", sy_tds_type_name(h.type), (unsigned)h.type);
        bad_packet(s, "client", err);
        return false;
    }
    if (s->c_in_msg && h.type != s->c_msg_type && h.type != SY_TDS_ATTENTION) {
        snprintf(err, sizeof err, "packet type changed inside a message (0x%02x -> 0x%02x)", (unsigned)s->c_msg_type,
                 (unsigned)h.type);
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
        if (s->px->pair->held) {
            if (s->state != TS_HELD) {
                s->held_since_ms = sy_now_ms();
                set_state(s, TS_HELD);
                client_read_update(s);
            }
            return false;
        }
        if (s->state == TS_HELD)
            set_state(s, TS_IDLE);
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
            if (evbuffer_get_length(in) < SY_TDS_HDR_LEN || !client_packet_start(s, in))
                return;
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
            if (sy_tds_hdr_parse(evbuffer_pullup(in, SY_TDS_HDR_LEN), SY_TDS_HDR_LEN, SY_TDS_MAX_PACKET, &h, err, sizeof err) !=
                SY_PARSE_OK) {
                bad_packet(s, "server", err);
                return;
            }
            if (h.type != SY_TDS_TABULAR) {
                snprintf(err, sizeof err, "%s (0x%02x) packet in a response", sy_tds_type_name(h.type), (unsigned)h.type);
                bad_packet(s, "server", err);
                return;
            }
            evbuffer_remove_buffer(in, out, SY_TDS_HDR_LEN);
            s->b_left = h.length - SY_TDS_HDR_LEN;
            s->b_eom = (h.status & SY_TDS_STATUS_EOM) != 0;
        }
        size_t n = evbuffer_get_length(in), k = n < s->b_left ? n : s->b_left;
        if (k > 0) {
            tail_keep(s, in, k);
            evbuffer_remove_buffer(in, out, k);
            s->b_left -= k;
        }
        to_client_done(s);
        if (s->b_left > 0)
            return;
        if (!s->b_eom)
            continue;
        /* a response complete; with an ATTENTION out, only its acknowledgement ends the wait */
        bool ack = s->b_tail_len == SY_TDS_DONE_LEN && sy_tds_is_attention_ack(s->b_tail);
        s->b_tail_len = 0;
        if (s->attention && !ack)
            continue;
        if (ack)
            sy_log_debug("%s: ATTENTION acknowledged by the server", s->label);
        s->attention = false;
        if (s->state == TS_BUSY)
            set_state(s, TS_IDLE);
    }
}

static void process_client(struct sy_tds_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->io.client);
    switch (s->state) {
    case TS_PRELOGIN:
        if (!s->client_prelogin)
            client_prelogin(s, in);
        break;
    case TS_TLS:
        client_tls_handshake(s, in);
        break;
    case TS_LOGIN7:
        client_login7(s, in);
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
    if (s->state == TS_PRELOGIN && !s->backend_prelogin) {
        backend_prelogin(s, in);
    } else if (s->state == TS_LOGIN) {
        backend_login_reply(s, in);
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
    const struct sy_endpoint *ep = s->side == SY_SIDE_BUSINESS ? &s->px->pair->cfg->business : &s->px->pair->cfg->dr;
    if (what & BEV_EVENT_CONNECTED) {
        sy_relay_backend_connected(bev);
        s->io.backend_connected = true;
        sy_log_debug("%s: connected to the %s server %s:%u", s->label, sy_side_name(s->side), ep->host, ep->port);
        backend_prelogin_send(s);
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
    return sy_relay_backend_connect(s->px->base, sy_pair_active_endpoint(s->px->pair), SESS_CONNECT_S, SESS_MAX_READ,
                                    on_backend_read, on_backend_write, on_backend_event, s, &s->io.backend, err,
                                    errlen);
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
        free(s);
        return;
    }
    bufferevent_set_max_single_read(s->io.client, SESS_MAX_READ);
    TAILQ_INSERT_TAIL(&px->sessions, s, link);
    px->n_sessions++;
    bufferevent_setcb(s->io.client, on_client_read, on_client_write, on_client_event, s);
    bufferevent_setwatermark(s->io.client, EV_WRITE, SY_RELAY_LOW_WATER, 0);
    bufferevent_enable(s->io.client, EV_READ | EV_WRITE);
    sy_log_debug("%s: accepted", s->label);
    char err[300];
    if (backend_open(s, err, sizeof err) != 0)
        close_session(s, err, false, SY_TERR_LOST_CONNECTION);
}

static void session_resume(struct sy_tds_session *s)
{
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
        session_resume(s); /* may close s: next was taken first */
    }
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

json_t *sy_tds_session_unmovable_json(const struct sy_tds_session *s, const char *key)
{
    return json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)s->id, "user", s->user, "peer", s->peer, key,
                     SY_TDS_UNMOVABLE);
}

static json_t *session_json(const struct sy_tds_session *s)
{
    uint64_t held = s->state == TS_HELD ? sy_now_ms() - s->held_since_ms : 0;
    char tds[16];
    snprintf(tds, sizeof tds, "0x%08x", (unsigned)s->tds_version);
    const char *enc = s->encryption == SY_TDS_ENCRYPT_ON ? "on" : s->encryption == SY_TDS_ENCRYPT_OFF ? "login-only" : "off";
    return json_pack("{s:I,s:s,s:s,s:s,s:b,s:I,s:b,s:s,s:s,s:s,s:s,s:s,s:I,s:b,s:s,s:I,s:I,s:I}", "id",
                     (json_int_t)s->id, "user", s->user, "peer", s->peer, "side", sy_side_name(s->side),
                     "in_transaction", 0, "held_ms", (json_int_t)held, "movable", 0, "unmovable_reason",
                     SY_TDS_UNMOVABLE, "state", sess_state_names[s->state], "database", s->database, "app", s->app,
                     "tds_version", tds, "packet_size", (json_int_t)(s->logged_in ? s->packet_size : 0), "tls", s->tls, "encryption", enc,
                     "requests", (json_int_t)s->requests, "attentions", (json_int_t)s->attentions, "resets",
                     (json_int_t)s->resets);
}

json_t *sy_tds_sessions_json(struct sy_tds_proxy *px)
{
    json_t *list = json_array();
    struct sy_tds_session *s;
    TAILQ_FOREACH(s, &px->sessions, link)
        json_array_append_new(list, session_json(s));
    return list;
}
