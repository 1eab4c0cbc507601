/* The login of one SQL Server client, done by the proxy (tds_session.c relays once it is over):
 *   PRELOGIN  the proxy's own to the backend (no encryption, no MARS); the client's answered once the
 *             backend's is in: the server's version, ENCRYPTION as SQL Server answers it, MARS off
 *   TLS       with tls_cert: the handshake's records inside PRELOGIN packets through memory BIOs, then a
 *             TLS filter over the client's socket, for the whole session (ON) or the LOGIN7 only (OFF)
 *   LOGIN7    read whole; SQL authentication only; the password kept in the session (memory only); a
 *             LOGIN7 rebuilt from the parsed fields goes to the backend, whose whole login response
 *             (LOGINACK... or its own ERROR, e.g. 18456) is passed to the client unchanged
 * What cannot be trusted closes the session (sy_tds_session_bad_packet); refused logins get an ERROR. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "core/log.h"
#include "proxy/tds_session.h"

#define PRELOGIN_MAX 4096u              /* PRELOGIN payload accepted (clients send < 100 bytes) */
#define LOGIN_REPLY_MAX (1u << 20)      /* login response payload read whole */
#define PROXY_SERVER_NAME "switchyard"  /* server name of the errors the proxy answers itself */

/* A login the proxy refuses itself: ERROR + DONE(ERROR) in a TABULAR message, then closed once written. */
static void refuse_login(struct sy_tds_session *s, int32_t number, const char *msg, const char *why)
{
    uint8_t tokens[2600], wire[2700];
    size_t n = sy_tds_error_reply_build(tokens, sizeof tokens, SY_TDS_TOK_ERROR, number, 1, 14, msg,
                                        PROXY_SERVER_NAME, SY_TDS_DONE_ERROR);
    size_t w = n ? sy_tds_msg_build(wire, sizeof wire, SY_TDS_TABULAR, 0, SY_TDS_LOGIN_PACKET, tokens, n) : 0;
    if (w)
        evbuffer_add(bufferevent_get_output(s->io.client), wire, w);
    sy_tds_session_end(s, why, true, SY_TERR_UNSUPPORTED);
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
        sy_tds_session_end(s, "out of memory", false, SY_TERR__COUNT);
        return -1;
    }
    enum sy_parse pr = sy_tds_msg_frame(p, have, SY_TDS_MAX_PACKET, max_payload, m, err, sizeof err);
    if (pr == SY_PARSE_BAD) {
        sy_tds_session_bad_packet(s, from, err);
        return -1;
    }
    if (pr == SY_PARSE_AGAIN)
        return 0;
    *payload = malloc(m->payload_len ? m->payload_len : 1);
    if (*payload == NULL) {
        sy_tds_session_end(s, "out of memory", false, SY_TERR__COUNT);
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

/* The proxy's PRELOGIN to a server: no encryption (not built for server connections yet), no MARS. */
void sy_tds_login_prelogin_send(struct bufferevent *to)
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
    send_message(to, SY_TDS_PRELOGIN, buf, n);
}

void sy_tds_login_start(struct sy_tds_session *s)
{
    sy_tds_login_prelogin_send(s->io.backend);
}

int sy_tds_login_prelogin_check(const uint8_t *p, size_t n, uint8_t type, struct sy_tds_prelogin *sp, char *err,
                                size_t errlen)
{
    if (type != SY_TDS_TABULAR) {
        snprintf(err, errlen, "PRELOGIN answered with %s", sy_tds_type_name(type));
        return -1;
    }
    if (sy_tds_prelogin_parse(p, n, sp, err, errlen) != SY_PARSE_OK)
        return -1;
    if (sp->encryption == SY_TDS_ENCRYPT_REQ || sp->encryption == SY_TDS_ENCRYPT_ON) {
        snprintf(err, errlen, "the server requires encryption; the proxy's server connections do not encrypt yet");
        return 1;
    }
    return 0;
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
        sy_tds_session_set_state(s, TS_LOGIN7);
        return;
    }
    /* the handshake: records in PRELOGIN packets through memory BIOs, then a filter over the socket */
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    s->ssl = rb && wb ? SSL_new(s->px->tls) : NULL;
    if (s->ssl == NULL) {
        BIO_free(rb);
        BIO_free(wb);
        sy_tds_session_end(s, "out of memory (TLS)", false, SY_TERR__COUNT);
        return;
    }
    SSL_set_bio(s->ssl, rb, wb);
    SSL_set_accept_state(s->ssl);
    sy_tds_session_set_state(s, TS_TLS);
}

static void client_prelogin(struct sy_tds_session *s, struct evbuffer *in)
{
    size_t n = evbuffer_get_length(in);
    if (n == 0)
        return;
    const uint8_t *first = evbuffer_pullup(in, 1);
    if (first[0] == 0x16) {
        sy_tds_session_bad_packet(s, "client",
                                  "a TLS handshake before PRELOGIN (TDS 8.0 strict encryption is not supported)");
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
        snprintf(err, sizeof err, "expected PRELOGIN, got %s (0x%02x)", sy_tds_type_name(m.type),
                 (unsigned)m.type);
        sy_tds_session_bad_packet(s, "client", err);
    } else if (sy_tds_prelogin_parse(pl, m.payload_len, &cp, err, sizeof err) != SY_PARSE_OK) {
        sy_tds_session_bad_packet(s, "client", err);
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
    int rc = sy_tds_login_prelogin_check(pl, m.payload_len, m.type, &sp, err, sizeof err);
    if (rc < 0) {
        sy_tds_session_bad_packet(s, "server", err);
    } else if (rc > 0) {
        snprintf(why, sizeof why, "the %s server requires encryption; the proxy's server connections do not "
                 "encrypt yet", sy_side_name(s->side));
        sy_tds_session_end(s, why, false, SY_TERR_LOST_CONNECTION);
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
    sy_tds_session_end(s, why, false, SY_TERR_BAD_PACKET);
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
        sy_tds_session_end(s, "out of memory (TLS filter)", false, SY_TERR__COUNT);
        return;
    }
    if (whole)
        s->ssl = NULL;      /* the filter owns the SSL and the socket's bufferevent */
    else
        s->client_raw = raw;
    s->tls = true;
    sy_tds_session_client_attach(s, f);
    sy_log_debug("%s: TLS established (%s, %s)", s->label, SSL_get_version(bufferevent_openssl_get_ssl(f)),
                 whole ? "whole session" : "login only");
    sy_tds_session_set_state(s, TS_LOGIN7);
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
    sy_tds_session_client_attach(s, s->io.client);
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
            sy_tds_session_bad_packet(s, "client", err);
            return;
        }
        if (h.type != SY_TDS_PRELOGIN) {
            snprintf(err, sizeof err, "%s (0x%02x) packet during the TLS handshake", sy_tds_type_name(h.type),
                     (unsigned)h.type);
            sy_tds_session_bad_packet(s, "client", err);
            return;
        }
        if (n < h.length)
            break;
        p = evbuffer_pullup(in, h.length);
        int body = h.length - SY_TDS_HDR_LEN;
        if (body > 0 && BIO_write(SSL_get_rbio(s->ssl), p + SY_TDS_HDR_LEN, body) != body) {
            sy_tds_session_end(s, "out of memory (TLS)", false, SY_TERR__COUNT);
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
            sy_tds_session_end(s, "out of memory (TLS)", false, SY_TERR__COUNT);
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
    if (m.type != SY_TDS_LOGIN7) {
        snprintf(err, sizeof err, "expected LOGIN7, got %s (0x%02x)", sy_tds_type_name(m.type), (unsigned)m.type);
        sy_tds_session_bad_packet(s, "client", err);
        goto out;
    }
    if (sy_tds_login7_parse(pl, m.payload_len, &l, err, sizeof err) != SY_PARSE_OK) {
        sy_tds_session_bad_packet(s, "client", err);
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
    if (l.str[SY_L7_CHANGEPASSWORD].len > 0) {
        /* relayed, it would change the password on one server only (logins are not synchronized), and the
         * session could not log in on the other side after a switch */
        refuse_login(s, 18456, "Login failed: switchyard does not relay a password change at login; change the "
                     "password on both servers (ALTER LOGIN ... WITH PASSWORD) and log in with the new one.",
                     "a password change at login refused");
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
    /* kept to log in on the other side in a switch: the password field's bytes blanked in the copy (the
     * password itself is in s->password; sy_tds_login7_build takes it from there) */
    free(s->login7);
    s->login7 = malloc(m.payload_len ? m.payload_len : 1);
    if (s->login7 == NULL) {
        sy_tds_session_end(s, "out of memory", false, SY_TERR__COUNT);
        goto out;
    }
    memcpy(s->login7, pl, m.payload_len);
    memset(s->login7 + (pw->p - pl), 0, pw->len);
    s->login7_len = m.payload_len;
    if (sy_tds_login_login7_send(s, s->io.backend, err, sizeof err) != 0) {
        sy_tds_session_end(s, err, false, SY_TERR__COUNT);
        goto out;
    }
    sy_log_debug("%s: LOGIN7 of '%s' (app '%s', TDS 0x%08x, packet size %u) sent to the %s server", s->label,
                 s->user, s->app, (unsigned)l.tds_version, (unsigned)l.packet_size, sy_side_name(s->side));
    sy_tds_session_set_state(s, TS_LOGIN);
out:
    OPENSSL_cleanse(pl, m.payload_len);
    free(pl);
}

int sy_tds_login_login7_send(struct sy_tds_session *s, struct bufferevent *to, char *err, size_t errlen)
{
    struct sy_tds_login7 l;
    if (s->login7 == NULL || sy_tds_login7_parse(s->login7, s->login7_len, &l, err, errlen) != SY_PARSE_OK) {
        snprintf(err, errlen, "no LOGIN7 kept for the session");
        return -1;
    }
    size_t cap = s->login7_len + s->password_len + 64, wcap = cap + (cap / 504 + 1) * SY_TDS_HDR_LEN;
    uint8_t *out = malloc(cap), *wire = malloc(wcap);
    size_t n = 0, w = 0;
    if (out != NULL && wire != NULL && (n = sy_tds_login7_build(out, cap, &l, s->password, s->password_len)) > 0)
        w = sy_tds_msg_build(wire, wcap, SY_TDS_LOGIN7, 0, SY_TDS_LOGIN_PACKET, out, n);
    if (w > 0)
        evbuffer_add(bufferevent_get_output(to), wire, w);
    else
        snprintf(err, errlen, "cannot build the server's LOGIN7");
    if (out)
        OPENSSL_cleanse(out, cap);
    if (wire)
        OPENSSL_cleanse(wire, wcap);
    free(out);
    free(wire);
    return w > 0 ? 0 : -1;
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
    if (pr == SY_PARSE_OK && r.loginack) {
        snprintf(s->database, sizeof s->database, "%s", r.database);
        sy_tds_session_track_login(s, pl, m.payload_len);
    }
    free(pl);
    if (m.type != SY_TDS_TABULAR)
        snprintf(err, sizeof err, "login answered with %s", sy_tds_type_name(m.type));
    if (pr != SY_PARSE_OK) {
        snprintf(why, sizeof why, "cannot read the login response: %s", err);
        sy_tds_session_bad_packet(s, "server", why);
        return;
    }
    if (s->client_raw != NULL)
        tls_off(s);                      /* login-only encryption: the response goes out plain */
    evbuffer_remove_buffer(in, bufferevent_get_output(s->io.client), m.wire_len);
    if (!r.loginack) {
        snprintf(why, sizeof why, "login of '%s' refused by the %s server: %d %s", s->user, sy_side_name(s->side),
                 r.has_error ? (int)r.error.number : 0, r.has_error ? r.error.message : "(no error token)");
        OPENSSL_cleanse(s->password, sizeof s->password);
        sy_tds_session_end(s, why, true, SY_TERR__COUNT);
        return;
    }
    s->logged_in = true;
    s->packet_size = r.packet_size ? r.packet_size : SY_TDS_LOGIN_PACKET;
    sy_log_info("%s: logged in as '%s' (database %s, packet size %zu, %s TDS 0x%08x) on the %s server", s->label,
                s->user, s->database, s->packet_size, r.ack.prog_name, (unsigned)r.ack.tds_version,
                sy_side_name(s->side));
    sy_tds_session_set_state(s, TS_IDLE);
    sy_tds_session_to_client_done(s);
}

void sy_tds_login_client_input(struct sy_tds_session *s, struct evbuffer *in)
{
    if (s->state == TS_PRELOGIN && !s->client_prelogin)
        client_prelogin(s, in);
    else if (s->state == TS_TLS)
        client_tls_handshake(s, in);
    else if (s->state == TS_LOGIN7 && s->backend_prelogin && !s->px->pair->held)
        client_login7(s, in);   /* else it waits: for the server's PRELOGIN answer (a login pointed anew), or
                                   for the hold's end (a switch may point it at the other side meanwhile) */
}

void sy_tds_login_server_input(struct sy_tds_session *s, struct evbuffer *in)
{
    /* the server's PRELOGIN answer first, also when the client is further on (a switch pointed its login at
     * a new server after the client's PRELOGIN was answered): nothing else is read before it */
    if (!s->backend_prelogin && s->state <= TS_LOGIN)
        backend_prelogin(s, in);
    if (s->backend_prelogin && s->state == TS_LOGIN)
        backend_login_reply(s, in);
}
