/* One MongoDB client session: one backend connection to the active side, and a frame-by-frame relay:
 *
 *   client --frame--> [sy_mongo_frame, parse, checksum stripped, our request id] --> backend
 *   client <--reply-- [responseTo mapped back; hello/isMaster topology rewritten]  <-- backend
 *
 * Client messages are taken whole (parsed and validated before they move); replies stream through as they
 * arrive, except hello and login replies, which are read whole to be inspected. One request with a reply
 * is in flight at a time (drivers never pipeline); the next waits in the client's input. A request sent
 * with moreToCome (w:0) expects no reply: FerretDB answers it anyway (MongoDB does not), so a reply that matches no request in flight is dropped, never passed on (the client would read it
 * as the answer to its next request). Replies with moreToCome (exhaust) keep the request open until one
 * without it. SCRAM logins (saslStart/saslContinue/speculativeAuthenticate, SHA-256 and SHA-1) are the
 * proxy's: it checks the client's proof against the user's stored credential (mongo_creds.c), keeps the
 * recovered ClientKey and logs in on the backend from it (section "SCRAM pass-through"); other mechanisms are
 * passed through to the server, which decides, and the session only notes who logged in. Sessions cannot
 * move between sides yet (docs/mongodb.md).
 * The proxy answers itself only what it refuses with a trustworthy header (OP_COMPRESSED: error, then
 * closed; unknown required OP_MSG flag bits: error); a frame it cannot trust closes the connection.
 * Sessions end through close_session() and are freed by the proxy's reaper on a later loop turn. */
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "core/collect.h"
#include "core/log.h"
#include "engine/mongo_acks.h"
#include "engine/mongo_client.h"
#include "engine/mongo_echo.h"
#include "proxy/mongo_cmd.h"
#include "proxy/mongo_creds.h"
#include "proxy/mongo_login.h"
#include "proxy/mongo_sasl.h"
#include "proxy/mongo_proxy.h"
#include "proxy/mongo_session.h"
#include "proxy/mongo_wire.h"
#include "proxy/relay.h"

#define SESS_FLUSH_MS 5000          /* how long a closed session's final error may take to be read */
#define SESS_CONNECT_S 10           /* backend connect timeout */
#define SESS_MAX_READ (256u << 10)  /* bytes read per callback (libevent's default is 16 KiB) */

static const char *const sess_state_names[MS__COUNT] = { "CONNECTING", "IDLE", "BUSY", "HELD", "CREDS", "CLOSING" };

static void process_client(struct sy_mongo_session *s);
static void process_backend(struct sy_mongo_session *s);

/* ---- state, closing ------------------------------------------------------------------------------ */

static void set_state(struct sy_mongo_session *s, enum sess_state to)
{
    sy_log_debug("%s: %s -> %s", s->label, sess_state_names[s->state], sess_state_names[to]);
    s->state = to;
}

static void reap_soon(struct sy_mongo_proxy *px)
{
    static const struct timeval now = { 0, 0 };
    evtimer_add(px->reaper, &now);
}

static size_t client_pending(const struct sy_mongo_session *s)
{
    return sy_relay_link_client_pending(&s->io);
}

/* The one way a session ends. With `flush`, what is queued for the client (a final error) is still
 * written, for at most SESS_FLUSH_MS. The backend connection stops at once (freed with the session). */
static void close_session(struct sy_mongo_session *s, const char *why, bool flush, enum sy_mongo_err_reason reason)
{
    if (s->state == MS_CLOSING)
        return;
    struct sy_mongo_proxy *px = s->px;
    sy_log_info("%s: closed (%s)", s->label, why);
    if (reason < SY_MERR__COUNT)
        px->client_errors[reason]++;
    set_state(s, MS_CLOSING);
    sy_mongo_creds_cancel(s->cwait);
    s->cwait = NULL;
    sy_mongo_warm_free(s);
    sy_relay_link_close(&s->io, flush, SESS_FLUSH_MS);
    TAILQ_REMOVE(&px->sessions, s, link);
    px->n_sessions--;
    TAILQ_INSERT_TAIL(&px->closing, s, link);
    reap_soon(px);
}

void sy_mongo_session_close(struct sy_mongo_session *s, const char *why, enum sy_mongo_err_reason reason)
{
    close_session(s, why, false, reason);
}

static void session_free(struct sy_mongo_session *s)
{
    sy_mongo_creds_cancel(s->cwait);
    sy_mongo_warm_free(s);
    sy_mongo_write_fini(&s->req_write);
    OPENSSL_cleanse(&s->sc, sizeof s->sc);
    OPENSSL_cleanse(s->client_key, sizeof s->client_key);
    OPENSSL_cleanse(&s->cred, sizeof s->cred);
    if (s->io.client)
        bufferevent_free(s->io.client);
    if (s->io.backend)
        bufferevent_free(s->io.backend);
    free(s);
}

/* The reaper (a zero timer: the next loop turn after a close) frees closed sessions whose last bytes
 * reached the client, whose client is gone, or whose flush deadline passed. `all`: everything now. */
void sy_mongo_session_reap(struct sy_mongo_proxy *px, bool all)
{
    uint64_t now = sy_now_ms(), next = 0;
    struct sy_mongo_session *s, *tmp;
    for (s = TAILQ_FIRST(&px->closing); s != NULL; s = tmp) {
        tmp = TAILQ_NEXT(s, link);
        if (sy_relay_link_reapable(&s->io, all, now, &next)) {
            TAILQ_REMOVE(&px->closing, s, link);
            session_free(s);
        }
    }
    sy_relay_reaper_arm(px->reaper, next, now);
}

/* ---- flow control ---------------------------------------------------------------------------------
 * TODO(merge): proxy/relay.c here is a copy of main's (80e51e7); the merge keeps main's file. */

/* Client reading is on unless: closing, held, its bytes could not go out (backend output over high
 * water), or a request is in flight and more than high water of the next ones waits already. */
static void client_read_update(struct sy_mongo_session *s)
{
    if (s->state == MS_CLOSING || s->io.client == NULL)
        return;
    bool off = s->io.client_bp || s->state == MS_HELD ||
               (s->state != MS_IDLE && evbuffer_get_length(bufferevent_get_input(s->io.client)) > SY_RELAY_HIGH_WATER);
    if (off)
        bufferevent_disable(s->io.client, EV_READ);
    else
        bufferevent_enable(s->io.client, EV_READ);
}

static void backend_read_update(struct sy_mongo_session *s)
{
    if (s->state != MS_CLOSING)
        sy_relay_link_backend_read_update(&s->io);
}

/* Writes what is due straight to the sockets, then resumes a paused side whose peer's output drained
 * (a direct write that took everything never runs libevent's write callback). */
static void session_flush(struct sy_mongo_session *s)
{
    sy_relay_link_flush(&s->io);
}

static void to_backend_done(struct sy_mongo_session *s)
{
    if (sy_relay_link_backend_over(&s->io))
        client_read_update(s);
}

static void to_client_done(struct sy_mongo_session *s)
{
    if (sy_relay_link_client_over(&s->io))
        backend_read_update(s);
}

/* sy_relay_link callbacks: a paused side may read again */
static void client_resume(void *arg)
{
    struct sy_mongo_session *s = arg;
    client_read_update(s);
    process_client(s);
}

static void backend_resume(void *arg)
{
    struct sy_mongo_session *s = arg;
    backend_read_update(s);
    process_backend(s);
}

static bool session_closed(const void *arg)
{
    return ((const struct sy_mongo_session *)arg)->state == MS_CLOSING;
}

/* ---- answers of the proxy itself --------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void header_put(uint8_t *p, size_t len, int32_t request_id, int32_t response_to, int32_t op)
{
    put32(p, (uint32_t)len);
    put32(p + 4, (uint32_t)request_id);
    put32(p + 8, (uint32_t)response_to);
    put32(p + 12, (uint32_t)op);
}

int32_t sy_mongo_next_id(int32_t *seq)
{
    *seq = *seq >= INT32_MAX || *seq < 0 ? 1 : *seq + 1;
    return *seq;
}

static int32_t next_id(int32_t *seq)
{
    return sy_mongo_next_id(seq);
}

int sy_mongo_cmd_send(struct bufferevent *bev, int32_t request_id, const bson_t *cmd)
{
    size_t cap = cmd->len + 64, n = 0;
    uint8_t *buf = malloc(cap);
    int rc = -1;
    if (buf != NULL &&
        sy_mongo_msg_build(buf, cap, &n, request_id, 0, 0, bson_get_data(cmd), cmd->len, NULL, 0) == 0)
        rc = evbuffer_add(bufferevent_get_output(bev), buf, n);
    free(buf);
    return rc;
}

static int32_t own_id(struct sy_mongo_session *s)
{
    return next_id(&s->next_own_id);
}

/* An OP_MSG error reply {ok: 0, errmsg, code, codeName} to the client's request `response_to`. */
static void client_error(struct sy_mongo_session *s, int32_t response_to, int32_t code, const char *code_name,
                         const char *msg)
{
    bson_t doc;
    sy_mongo_error_doc(&doc, code, code_name, msg);
    uint8_t buf[2048];
    size_t n = 0;
    if (sy_mongo_msg_build(buf, sizeof buf, &n, own_id(s), response_to, 0, bson_get_data(&doc), doc.len, NULL, 0) == 0)
        evbuffer_add(bufferevent_get_output(s->io.client), buf, n);
    bson_destroy(&doc);
}

/* A frame that cannot be trusted: the connection closes (the daemon goes on serving the others). */
static void bad_frame(struct sy_mongo_session *s, const char *from, const char *why)
{
    char msg[400];
    snprintf(msg, sizeof msg, "bad frame from the %s: %s", from, why);
    close_session(s, msg, false, SY_MERR_BAD_FRAME);
}

/* ---- requests ---------------------------------------------------------------------------------------- */

static int32_t backend_id(struct sy_mongo_session *s)
{
    return next_id(&s->next_backend_id);
}

/* Notes a login step of the request about to be forwarded. */
static enum req_kind auth_request(struct sy_mongo_session *s, const uint8_t *body, size_t len, const char *db,
                                  size_t db_len, bool hello)
{
    struct sy_mongo_auth_req a;
    sy_mongo_auth_classify(body, len, db, db_len, &a);
    switch (a.step) {
    case SY_AUTH_START:
    case SY_AUTH_SPECULATIVE:
        s->auth = a;
        s->auth_started = true;
        return hello ? REQ_HELLO : REQ_AUTH;
    case SY_AUTH_CONTINUE:
        return REQ_AUTH;
    case SY_AUTH_LOGOUT:
        s->logged_in = false;
        s->scram = false;
        s->login_gen++;
        OPENSSL_cleanse(s->client_key, sizeof s->client_key);
        OPENSSL_cleanse(&s->cred, sizeof s->cred);
        s->user[0] = s->auth_db[0] = s->mechanism[0] = '\0';
        return REQ_PLAIN;
    default:
        return hello ? REQ_HELLO : REQ_PLAIN;
    }
}

/* The outcome of a login step's reply (body: the reply's command document). */
static void auth_reply(struct sy_mongo_session *s, const uint8_t *body, size_t len, bool hello)
{
    if (!s->auth_started)
        return;
    int rc = sy_mongo_auth_reply(body, len, hello);
    if (rc == 0)
        return;
    s->auth_started = false;
    if (rc < 0) {
        sy_log_info("%s: login of '%s' on %s refused by the server", s->label, s->auth.user, s->auth.db);
        return;
    }
    s->logged_in = true;
    s->scram = false;
    s->login_gen++;
    OPENSSL_cleanse(s->client_key, sizeof s->client_key);
    OPENSSL_cleanse(&s->cred, sizeof s->cred);
    snprintf(s->user, sizeof s->user, "%s", s->auth.user);
    snprintf(s->auth_db, sizeof s->auth_db, "%s", s->auth.db);
    snprintf(s->mechanism, sizeof s->mechanism, "%s", s->auth.mechanism);
    sy_log_info("%s: logged in as '%s' (%s, %s) by the %s server", s->label, s->user, s->auth_db, s->mechanism,
                sy_side_name(s->side));
}

/* ---- SCRAM pass-through ---------------------------------------------------------------------------------
 * The proxy runs the server side of SCRAM with the client from the user's stored credential (the pair's
 * credential cache), recovers ClientKey from the client's proof, logs in on the backend as the client side
 * from ClientKey alone and checks the backend's signature with ServerKey; the client gets the proxy's own
 * replies ({conversationId, done, payload}) and, for a wrong password or an unknown user, the server's own
 * error (18 AuthenticationFailed "Authentication failed.", as FerretDB and MongoDB answer). */

#define AUTH_FAILED_CODE 18
#define AUTH_FAILED_NAME "AuthenticationFailed"
#define AUTH_FAILED_MSG "Authentication failed."

/* A command reply document to the client's request, as OP_MSG or (an OP_QUERY request) OP_REPLY. */
static void client_doc(struct sy_mongo_session *s, int32_t response_to, int32_t client_op, const bson_t *doc)
{
    size_t cap = doc->len + 64, n = 0;
    uint8_t *buf = malloc(cap);
    int rc = -1;
    if (buf != NULL)
        rc = client_op == SY_MONGO_OP_QUERY
                 ? sy_mongo_reply_build(buf, cap, &n, own_id(s), response_to, SY_MONGO_REPLY_AWAIT_CAPABLE, 0, 0,
                                        bson_get_data(doc), doc->len, 1)
                 : sy_mongo_msg_build(buf, cap, &n, own_id(s), response_to, 0, bson_get_data(doc), doc->len, NULL, 0);
    if (rc == 0)
        evbuffer_add(bufferevent_get_output(s->io.client), buf, n);
    free(buf);
}

static void auth_failed(struct sy_mongo_session *s, int32_t response_to, int32_t client_op, const char *why)
{
    sy_log_info("%s: login of '%s' on %s refused: %s", s->label, s->sc.user, s->sc.db, why);
    bson_t doc;
    sy_mongo_error_doc(&doc, AUTH_FAILED_CODE, AUTH_FAILED_NAME, AUTH_FAILED_MSG);
    client_doc(s, response_to, client_op, &doc);
    bson_destroy(&doc);
    OPENSSL_cleanse(&s->sc, sizeof s->sc);
}

static void sasl_reply(struct sy_mongo_session *s, int32_t response_to, int32_t client_op, bool done,
                       const char *payload, size_t len)
{
    bson_t doc;
    bson_init(&doc);
    sy_mongo_sasl_reply_append(&doc, s->sc.conv_id, done, payload, len, true);
    client_doc(s, response_to, client_op, &doc);
    bson_destroy(&doc);
}

static void on_creds(void *arg, const char *err)
{
    struct sy_mongo_session *s = arg;
    s->cwait = NULL;
    if (s->state != MS_CREDS)
        return;
    s->creds_failed = err != NULL;
    s->creds_read = err == NULL;
    set_state(s, MS_IDLE);
    process_client(s);
    session_flush(s);
}

/* The user's credential for mech: 1 into *cred, 0 unknown (or no such mechanism), -1 cannot be read (the step
 * is passed through), 2 the read started (MS_CREDS: the request is taken again when it ends). */
static int scram_cred(struct sy_mongo_session *s, const char *db, const char *user, enum sy_scram_hash mech,
                      struct sy_scram_cred *cred)
{
    /* read for this login: only what a read that started after the login asked brought in */
    int rc = s->creds_read ? sy_mongo_creds_find(s->px->creds, db, user, mech, UINT64_MAX, cred) : -1;
    s->creds_read = false;
    if (rc >= 0) {
        s->creds_failed = false;
        return rc;
    }
    if (s->creds_failed) {
        s->creds_failed = false;
        return -1;
    }
    s->cwait = sy_mongo_creds_fetch(s->px->creds, db, user, on_creds, s);
    if (s->cwait == NULL)
        return -1;
    set_state(s, MS_CREDS);
    return 2;
}

/* Server side, first step: client-first (from saslStart or speculativeAuthenticate) -> server-first.
 * Returns 1 ready (s->sc.phase set), 0 unknown user (s->sc.user/db set), -1 pass through, 2 waiting. */
static int scram_begin(struct sy_mongo_session *s, const struct sy_mongo_sasl *sasl, const char *db)
{
    struct scram_conv *sc = &s->sc;
    struct sy_scram_client_first cf;
    char err[200];
    if (sy_scram_client_first_parse(sasl->payload, sasl->payload_len, &cf, err, sizeof err) != 0 ||
        cf.bare_len >= sizeof sc->bare || db[0] == '\0')
        return -1;
    struct sy_scram_cred cred;
    int rc = scram_cred(s, db, cf.user, sasl->mech, &cred);
    if (rc == 2 || rc < 0)
        return rc;
    OPENSSL_cleanse(sc, sizeof *sc);
    sc->mech = sasl->mech;
    sc->skip_empty = sasl->skip_empty_exchange;
    sc->conv_id = 1;
    snprintf(sc->db, sizeof sc->db, "%s", db);
    snprintf(sc->user, sizeof sc->user, "%s", cf.user);
    if (rc == 0)
        return 0;
    sc->cred = cred;
    sc->cf = cf;
    memcpy(sc->bare, cf.bare, cf.bare_len);
    sc->cf.bare = sc->bare;
    uint8_t r[24];
    char nonce[64];
    if (RAND_bytes(r, sizeof r) != 1 || sy_scram_b64_encode(r, sizeof r, nonce, sizeof nonce) == 0)
        return -1;
    sc->server_first_len = sy_scram_server_first_build(sc->server_first, sizeof sc->server_first, cf.nonce, nonce,
                                                       &cred);
    if (sc->server_first_len == 0)
        return -1;
    snprintf(sc->combined_nonce, sizeof sc->combined_nonce, "%s%s", cf.nonce, nonce);
    return 1;
}

/* Sends the proxy's own login command to the backend; its reply comes back as REQ_LOGIN. */
static void login_send(struct sy_mongo_session *s, const bson_t *cmd)
{
    int32_t bid = backend_id(s);
    if (sy_mongo_cmd_send(s->io.backend, bid, cmd) != 0) {
        close_session(s, "out of memory", false, SY_MERR__COUNT);
        return;
    }
    s->req_backend_id = bid;
    s->exhaust_next = 0;
    s->req_kind = REQ_LOGIN;
    set_state(s, MS_BUSY);
    to_backend_done(s);
}

/* A saslStart for SCRAM: true when the proxy took the request (answered, or waiting for the credential). */
static bool scram_start(struct sy_mongo_session *s, struct evbuffer *in, size_t len, int32_t request_id,
                        int32_t op, const uint8_t *body, size_t body_len, const char *db)
{
    struct sy_mongo_sasl sasl;
    char err[200];
    if (sy_mongo_sasl_parse(body, body_len, &sasl, err, sizeof err) != 0 || sasl.kind != SY_SASL_START ||
        !sasl.has_mechanism)
        return false;
    int rc = scram_begin(s, &sasl, sasl.db[0] ? sasl.db : db);
    if (rc < 0)
        return false;
    if (rc == 2)
        return true;               /* the frame stays in `in`: taken again once the credential is read */
    evbuffer_drain(in, len);
    s->requests++;
    s->sc.client_op = op;
    if (rc == 0) {
        auth_failed(s, request_id, op, "no such user (or no credential of that mechanism)");
        return true;
    }
    s->sc.phase = SC_FIRST_SENT;
    sasl_reply(s, request_id, op, false, s->sc.server_first, s->sc.server_first_len);
    return true;
}

/* A saslContinue of the proxy's own conversation. */
static void scram_continue(struct sy_mongo_session *s, struct evbuffer *in, size_t len, int32_t request_id,
                           int32_t op, const uint8_t *body, size_t body_len)
{
    struct scram_conv *sc = &s->sc;
    struct sy_mongo_sasl sasl;
    char err[200];
    int rc = sy_mongo_sasl_parse(body, body_len, &sasl, err, sizeof err);
    s->requests++;
    sc->client_op = op;
    if (rc != 0 || sasl.kind != SY_SASL_CONTINUE || sasl.conversation_id != sc->conv_id) {
        evbuffer_drain(in, len);
        auth_failed(s, request_id, op, rc != 0 ? err : "not the conversation in progress");
        return;
    }
    if (sc->phase == SC_FINAL_SENT) {
        evbuffer_drain(in, len);
        sc->phase = SC_NONE;
        sasl_reply(s, request_id, op, true, "", 0);
        OPENSSL_cleanse(sc, sizeof *sc);
        return;
    }
    /* SC_FIRST_SENT: the proof */
    struct sy_scram_client_final fin;
    char auth[SY_SCRAM_MAX_MSG * 3 + 4];
    uint8_t key[SY_SCRAM_MAX_KEY];
    size_t auth_len = 0;
    if (sy_scram_client_final_parse(sasl.payload, sasl.payload_len, &sc->cf, sc->combined_nonce, sc->mech, &fin, err,
                                    sizeof err) != 0 ||
        (auth_len = sy_scram_auth_message(auth, sizeof auth, sc->bare, sc->cf.bare_len, sc->server_first,
                                          sc->server_first_len, fin.without_proof, fin.without_proof_len)) == 0) {
        evbuffer_drain(in, len);
        auth_failed(s, request_id, op, err);
        return;
    }
    if (sy_scram_recover_client_key(&sc->cred, auth, auth_len, fin.proof, fin.proof_len, key) != 0) {
        evbuffer_drain(in, len);
        /* the password was wrong, or changed since the credential was read: read it again next time */
        sy_mongo_creds_forget(s->px->creds, sc->db, sc->user);
        auth_failed(s, request_id, op, "wrong proof (password)");
        return;
    }
    sc->server_final_len = sy_scram_server_final_build(sc->server_final, sizeof sc->server_final, &sc->cred, auth,
                                                       auth_len);
    evbuffer_drain(in, len);
    uint8_t r[24];
    char nonce[64];
    bson_t cmd;
    if (sc->server_final_len == 0 || RAND_bytes(r, sizeof r) != 1 ||
        sy_scram_b64_encode(r, sizeof r, nonce, sizeof nonce) == 0 ||
        sy_mongo_login_start(&sc->backend, sc->mech, sc->user, sc->db, NULL, key, &sc->cred, nonce, &cmd) != 0) {
        OPENSSL_cleanse(key, sizeof key);
        auth_failed(s, request_id, op, "cannot build the backend login");
        return;
    }
    memcpy(s->client_key, key, sizeof key);
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(auth, sizeof auth);
    s->req_client_id = request_id;
    login_send(s, &cmd);
    bson_destroy(&cmd);
}

/* The backend's reply to the proxy's own login step (whole at p). */
static void login_reply(struct sy_mongo_session *s, const uint8_t *p, size_t len)
{
    struct scram_conv *sc = &s->sc;
    struct sy_mongo_msg m;
    char err[300];
    int32_t code = 0;
    bson_t next;
    int rc = -1;
    if (sy_mongo_msg_parse(p, len, &m, err, sizeof err) == 0)
        rc = sy_mongo_login_step(&sc->backend, m.body, m.body_len, &next, &code, err, sizeof err);
    if (rc == 0) {
        login_send(s, &next);
        bson_destroy(&next);
        return;
    }
    set_state(s, MS_IDLE);
    if (rc < 0) {
        char why[400];
        snprintf(why, sizeof why, "the %s server refused the login from the recovered key (%d: %s)",
                 sy_side_name(s->side), (int)code, err);
        OPENSSL_cleanse(s->client_key, sizeof s->client_key);
        auth_failed(s, s->req_client_id, sc->client_op, why);
        return;
    }
    s->logged_in = true;
    s->scram = true;
    s->scram_mech = sc->mech;
    s->cred = sc->cred;
    s->login_gen++;
    s->auth_started = false;
    snprintf(s->user, sizeof s->user, "%s", sc->user);
    snprintf(s->auth_db, sizeof s->auth_db, "%s", sc->db);
    snprintf(s->mechanism, sizeof s->mechanism, "%s", sy_scram_mech_name(sc->mech));
    sy_log_info("%s: logged in as '%s' (%s, %s): proof checked by the proxy, the %s server accepted the login "
                "from ClientKey", s->label, s->user, s->auth_db, s->mechanism, sy_side_name(s->side));
    sy_mongo_login_wipe(&sc->backend);
    bool done = sc->skip_empty;
    sasl_reply(s, s->req_client_id, sc->client_op, done, sc->server_final, sc->server_final_len);
    if (done)
        OPENSSL_cleanse(sc, sizeof *sc);
    else
        sc->phase = SC_FINAL_SENT;
}

/* saslStart (SCRAM) and saslContinue of the proxy's conversation are the proxy's; true when it took the
 * request (answered it, started the backend login, or waits for the credential). */
static bool scram_intercept(struct sy_mongo_session *s, struct evbuffer *in, size_t len, int32_t request_id,
                            int32_t op, const char *cmd, const uint8_t *body, size_t body_len, const char *db)
{
    if (strcmp(cmd, "saslStart") == 0)
        return scram_start(s, in, len, request_id, op, body, body_len, db);
    if (strcmp(cmd, "saslContinue") == 0 && (s->sc.phase == SC_FIRST_SENT || s->sc.phase == SC_FINAL_SENT)) {
        scram_continue(s, in, len, request_id, op, body, body_len);
        return true;
    }
    return false;
}

/* A hello/isMaster with speculativeAuthenticate for SCRAM: prepares the proxy's server-first for the reply.
 * false: the request waits for the credential (MS_CREDS). */
static bool scram_speculative(struct sy_mongo_session *s, const uint8_t *body, size_t body_len)
{
    struct sy_mongo_sasl sasl;
    char err[200];
    if (sy_mongo_sasl_speculative(body, body_len, &sasl, err, sizeof err) != 1 || !sasl.has_mechanism)
        return true;
    int rc = scram_begin(s, &sasl, sasl.db[0] ? sasl.db : "admin");
    if (rc == 2)
        return false;
    if (rc == 1)
        s->sc.phase = SC_SPECULATIVE;
    else if (rc == 0)
        sy_log_info("%s: speculative login of '%s' on %s: no such user: left to saslStart", s->label, s->sc.user,
                    s->sc.db);
    s->spec_own = rc >= 0;         /* the reply's speculativeAuthenticate is the proxy's (or none) */
    return true;
}


/* ---- cursors and transactions (proxy/mongo_track.h) ----------------------------------------------------
 * Per pair, not per connection (a driver sends getMore and a transaction's next command over any pooled
 * connection). A cursor opened on the other side before a switch (stale) is never forwarded: getMore gets
 * 43 CursorNotFound with Switchyard's message, killCursors the server's answer for ids it does not know
 * (cursorsNotFound) — a killCursors naming live ids too is forwarded without the stale ones. A command of a
 * transaction a switch rolled back gets 251 NoSuchTransaction + TransientTransactionError. */

/* Sends the proxy's own reply document to the client's OP_MSG request. */
static void answer(struct sy_mongo_session *s, struct evbuffer *in, size_t len, int32_t request_id, bson_t *doc)
{
    evbuffer_drain(in, len);
    s->requests++;
    client_doc(s, request_id, SY_MONGO_OP_MSG, doc);
    bson_destroy(doc);
}

/* A write to a synchronized collection while a collector reads this side: kept in s->req_write until its
 * reply says what was acknowledged (the ack ledger, engine/mongo_acks.h). */
static bool note_write(struct sy_mongo_session *s, const struct sy_mongo_msg *m)
{
    sy_mongo_write_fini(&s->req_write);
    if (!sy_mongo_acks_armed(s->px->acks[s->side]))
        return false;
    int rc = sy_mongo_write_parse(m, &s->req_write);
    if (rc == 1 && sy_mongo_ns_synced(s->px->pair->cfg, s->req_write.db, s->req_write.coll))
        return true;
    sy_mongo_write_fini(&s->req_write);
    return false;
}

/* The reply (an OP_MSG body) of the write in s->req_write, into the ledger. */
static void note_write_reply(struct sy_mongo_session *s, const uint8_t *body, size_t len)
{
    struct sy_mongo_write *w = &s->req_write;
    struct sy_mongo_write_ack a;
    uint64_t *keys = calloc(w->n + 1, sizeof *keys);
    if (keys == NULL) {
        sy_log_warn("%s: out of memory: a write's acknowledgement not in the ack ledger", s->label);
    } else if (sy_mongo_write_acked(w, body, len, keys, &a)) {
        struct sy_mongo_acks *acks = s->px->acks[s->side];
        if (a.has_op_time)
            sy_mongo_acks_op_time(acks, a.op_t, a.op_i);
        else
            sy_mongo_acks_acked(acks, keys, a.n_keys, a.unproven, sy_wall_ms()); /* the collector's clock */
    }
    free(keys);
    sy_mongo_write_fini(w);
}

/* Notes what the request (an OP_MSG expecting a reply) does to tracked state. Returns 1 when the proxy took
 * it (answered, or forwarded a rebuilt killCursors), 0 to forward it as is with *kind. */
static int track_request(struct sy_mongo_session *s, struct evbuffer *in, size_t len, int32_t request_id,
                         const struct sy_mongo_msg *m, enum req_kind *kind)
{
    struct sy_mongo_track *t = &s->px->track;
    struct sy_mongo_req_info r;
    bson_t doc;
    uint64_t now = sy_now_ms();
    if (!sy_mongo_req_info_parse(m->body, m->body_len, &r))
        return 0;
    if (r.has_lsid && r.has_txn) {
        struct sy_mongo_txn *x = sy_mongo_txn_find(t, r.lsid);
        if (x != NULL && x->aborted && x->txn_number == r.txn_number && r.autocommit_false) {
            sy_log_info("%s: transaction %lld was rolled back by a switch: answered with a "
                        "TransientTransactionError", s->label, (long long)r.txn_number);
            if (r.kind == SY_MREQ_COMMIT || r.kind == SY_MREQ_ABORT)
                sy_mongo_txn_end(t, r.lsid);
            sy_mongo_txn_aborted_doc(&doc, r.txn_number);
            answer(s, in, len, request_id, &doc);
            return 1;
        }
        if (r.kind == SY_MREQ_COMMIT || r.kind == SY_MREQ_ABORT || !r.autocommit_false)
            sy_mongo_txn_end(t, r.lsid);      /* ended (a new txnNumber ends the last one too) */
        else if (sy_mongo_txn_begin(t, r.lsid, r.txn_number, s->id, now) != 0)
            sy_log_warn("%s: out of memory: transaction not tracked", s->label);
    }
    s->req_cursor_id = 0;
    if (note_write(s, m))
        *kind = REQ_TRACKED;
    s->req_txn_start = r.has_lsid && r.has_txn && r.autocommit_false && r.start_transaction;
    if (s->req_txn_start) {                   /* refused (FerretDB: 9) -> not open: the reply says */
        memcpy(s->req_lsid, r.lsid, SY_MONGO_LSID_LEN);
        *kind = REQ_TRACKED;
    }
    if (r.kind == SY_MREQ_CURSOR) {
        *kind = REQ_TRACKED;
    } else if (r.kind == SY_MREQ_GET_MORE) {
        struct sy_mongo_cursor *c = sy_mongo_cursor_find(t, r.cursor_id);
        if (c != NULL && c->state == SY_MCUR_STALE) {
            sy_log_info("%s: getMore on cursor %lld of the other side: answered with CursorNotFound", s->label,
                        (long long)r.cursor_id);
            sy_mongo_cursor_drop(t, r.cursor_id);
            sy_mongo_cursor_gone_doc(&doc, r.cursor_id);
            answer(s, in, len, request_id, &doc);
            return 1;
        }
        s->req_cursor_id = r.cursor_id;
        *kind = REQ_TRACKED;
    } else if (r.kind == SY_MREQ_KILL) {
        int64_t stale[SY_MONGO_KILL_MAX];
        size_t n_stale = 0;
        for (size_t i = 0; i < r.n_kill; i++) {
            struct sy_mongo_cursor *c = sy_mongo_cursor_find(t, r.kill_ids[i]);
            if (c != NULL && c->state == SY_MCUR_STALE)
                stale[n_stale++] = r.kill_ids[i];
            sy_mongo_cursor_drop(t, r.kill_ids[i]);
        }
        if (n_stale == 0)
            return 0;
        if (n_stale == r.n_kill && !r.kill_more) {
            sy_mongo_kill_gone_doc(&doc, stale, n_stale);
            answer(s, in, len, request_id, &doc);
            return 1;
        }
        /* some are this side's: forwarded without the other side's ids */
        bson_t body;
        uint8_t *buf = NULL;
        size_t need = 0;
        int32_t bid = backend_id(s);
        uint32_t flags = m->flags & ~SY_MONGO_MSG_CHECKSUM;
        if (sy_mongo_kill_filter(m->body, m->body_len, stale, n_stale, &body) == 0 &&
            sy_mongo_msg_build(NULL, 0, &need, bid, 0, flags, bson_get_data(&body), body.len, m->seqs,
                               m->nseqs) != 0 && need > 0 && (buf = malloc(need)) != NULL &&
            sy_mongo_msg_build(buf, need, &need, bid, 0, flags, bson_get_data(&body), body.len, m->seqs,
                               m->nseqs) == 0) {
            evbuffer_add(bufferevent_get_output(s->io.backend), buf, need);
            evbuffer_drain(in, len);
            s->requests++;
            s->req_client_id = request_id;
            s->req_backend_id = bid;
            s->exhaust_next = 0;
            s->req_kind = REQ_PLAIN;
            set_state(s, MS_BUSY);
            to_backend_done(s);
        } else {
            close_session(s, "out of memory", false, SY_MERR__COUNT);
        }
        free(buf);
        bson_destroy(&body);
        return 1;
    }
    return 0;
}

/* A tracked request's reply (whole at p): the cursor it opened, continued or ended; a transaction the
 * server refused to start. */
static void track_reply(struct sy_mongo_session *s, const uint8_t *p, size_t len)
{
    struct sy_mongo_track *t = &s->px->track;
    struct sy_mongo_msg m;
    char err[200];
    int64_t id = 0;
    bool ok = false;
    if ((int32_t)get32(p + 12) != SY_MONGO_OP_MSG || sy_mongo_msg_parse(p, len, &m, err, sizeof err) != 0) {
        sy_mongo_write_fini(&s->req_write);
        return;
    }
    if (s->req_write.op != SY_MWRITE_NONE)
        note_write_reply(s, m.body, m.body_len);
    int has = sy_mongo_reply_cursor(m.body, m.body_len, &id, &ok);
    if (s->req_txn_start && !ok) {
        sy_mongo_txn_end(t, s->req_lsid);               /* the server refused to start it */
        s->req_txn_start = false;
    }
    if (s->req_cursor_id != 0 && (has != 1 || id != s->req_cursor_id)) {
        sy_mongo_cursor_drop(t, s->req_cursor_id);     /* exhausted, or the server does not know it */
    }
    if (has == 1 && id != 0 && sy_mongo_cursor_open(t, id, s->id, sy_now_ms()) != 0)
        sy_log_warn("%s: out of memory: cursor %lld not tracked", s->label, (long long)id);
}

/* While the pair is held: whether the whole request at p continues what a switch waits for (a getMore or
 * killCursors of an open cursor, a command of an open transaction), so that it may go on. */
static bool continues_open_work(struct sy_mongo_session *s, const uint8_t *p, size_t len)
{
    struct sy_mongo_msg m;
    struct sy_mongo_req_info r;
    char err[200];
    if ((int32_t)get32(p + 12) != SY_MONGO_OP_MSG || sy_mongo_msg_parse(p, len, &m, err, sizeof err) != 0 ||
        !sy_mongo_req_info_parse(m.body, m.body_len, &r))
        return false;
    struct sy_mongo_track *t = &s->px->track;
    if (r.kind == SY_MREQ_GET_MORE) {
        struct sy_mongo_cursor *c = sy_mongo_cursor_find(t, r.cursor_id);
        return c != NULL && c->state == SY_MCUR_OPEN;
    }
    if (r.kind == SY_MREQ_KILL)
        return true;                                    /* only ends things */
    if (r.has_lsid && r.has_txn && r.autocommit_false) {
        struct sy_mongo_txn *x = sy_mongo_txn_find(t, r.lsid);
        return x != NULL && !x->aborted && x->txn_number == r.txn_number;
    }
    return false;
}

/* Moves the frame at the front of `in` (len bytes) to `out` under a new header: the head_len bytes after
 * the header are replaced by `head` (OP_MSG flagBits), the last drop_tail bytes (a checksum) dropped. */
static void forward(struct sy_mongo_session *s, struct evbuffer *in, size_t len, const uint8_t *head, size_t head_len,
                    size_t drop_tail, int32_t request_id, int32_t response_to, int32_t op, struct evbuffer *out)
{
    uint8_t h[SY_MONGO_HDR_LEN + 4];
    header_put(h, len - drop_tail, request_id, response_to, op);
    if (head_len > 0)
        memcpy(h + SY_MONGO_HDR_LEN, head, head_len);
    evbuffer_add(out, h, SY_MONGO_HDR_LEN + head_len);
    evbuffer_drain(in, SY_MONGO_HDR_LEN + head_len);
    evbuffer_remove_buffer(in, out, len - SY_MONGO_HDR_LEN - head_len - drop_tail);
    if (drop_tail)
        evbuffer_drain(in, drop_tail);
}

/* Handles the whole frame (len bytes) at the front of the client's input. */
static void client_frame(struct sy_mongo_session *s, struct evbuffer *in, size_t len)
{
    uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)len);
    char err[256];
    if (p == NULL) {
        close_session(s, "out of memory", false, SY_MERR__COUNT);
        return;
    }
    struct sy_mongo_header hdr = { (int32_t)get32(p), (int32_t)get32(p + 4), (int32_t)get32(p + 8),
                                   (int32_t)get32(p + 12) };
    struct evbuffer *out = bufferevent_get_output(s->io.backend);
    enum req_kind kind = REQ_PLAIN;
    bool reply_due = true;
    int32_t bid = backend_id(s);
    switch (hdr.op_code) {
    case SY_MONGO_OP_MSG: {
        if (len < SY_MONGO_HDR_LEN + 5) {
            bad_frame(s, "client", "OP_MSG shorter than its flagBits and a section");
            return;
        }
        uint32_t flags = get32(p + SY_MONGO_HDR_LEN);
        uint32_t unknown = flags & SY_MONGO_MSG_REQUIRED_MASK & ~SY_MONGO_MSG_KNOWN_REQUIRED;
        if (unknown != 0) {
            snprintf(err, sizeof err, "Switchyard: OP_MSG flagBits 0x%x has unknown required bits 0x%x", flags,
                     unknown);
            if (flags & SY_MONGO_MSG_MORE_TO_COME) {   /* no reply is read: nothing to tell it on */
                close_session(s, err, false, SY_MERR_UNSUPPORTED);
                return;
            }
            s->px->client_errors[SY_MERR_UNSUPPORTED]++;
            sy_log_info("%s: %s: answered with an error", s->label, err);
            client_error(s, hdr.request_id, 223, "IllegalOpMsgFlag", err);
            evbuffer_drain(in, len);
            return;
        }
        struct sy_mongo_msg m;
        if (sy_mongo_msg_parse(p, len, &m, err, sizeof err) != 0) {
            bad_frame(s, "client", err);
            return;
        }
        reply_due = !(flags & SY_MONGO_MSG_MORE_TO_COME);
        const char *cmd = sy_mongo_cmd_name(m.body, m.body_len);
        bool hello = cmd != NULL && sy_mongo_is_hello(cmd);
        s->spec_own = false;
        if (reply_due && cmd != NULL && scram_intercept(s, in, len, hdr.request_id, SY_MONGO_OP_MSG, cmd, m.body,
                                                        m.body_len, ""))
            return;
        if (reply_due && hello && !scram_speculative(s, m.body, m.body_len))
            return;                                /* waits for the credential */
        kind = auth_request(s, m.body, m.body_len, NULL, 0, hello);
        if (reply_due && kind == REQ_PLAIN && track_request(s, in, len, hdr.request_id, &m, &kind) != 0)
            return;                                /* answered, or forwarded rebuilt (bid is skipped) */
        if (s->spec_own)
            s->auth_started = false;               /* the proxy's own conversation, not the server's */
        uint8_t f[4];
        put32(f, flags & ~SY_MONGO_MSG_CHECKSUM);   /* our header changes it: stripped, not recomputed */
        forward(s, in, len, f, 4, m.checksum_present ? 4 : 0, bid, 0, SY_MONGO_OP_MSG, out);
        break;
    }
    case SY_MONGO_OP_QUERY: {
        struct sy_mongo_query q;
        if (sy_mongo_query_parse(p, len, &q, err, sizeof err) != 0) {
            bad_frame(s, "client", err);
            return;
        }
        size_t db_len = 0;
        const uint8_t *cmd_doc;
        size_t cmd_len;
        if (sy_mongo_ns_is_cmd(q.ns, q.ns_len, &db_len) &&
            sy_mongo_query_command(q.query, q.query_len, &cmd_doc, &cmd_len)) {
            const char *cmd = sy_mongo_cmd_name(cmd_doc, cmd_len);
            bool hello = cmd != NULL && sy_mongo_is_hello(cmd);
            char dbs[128];
            snprintf(dbs, sizeof dbs, "%.*s", (int)db_len, q.ns);
            s->spec_own = false;
            if (cmd != NULL && scram_intercept(s, in, len, hdr.request_id, SY_MONGO_OP_QUERY, cmd, cmd_doc, cmd_len,
                                               dbs))
                return;
            if (hello && !scram_speculative(s, cmd_doc, cmd_len))
                return;
            kind = auth_request(s, cmd_doc, cmd_len, q.ns, db_len, hello);
            if (s->spec_own)
                s->auth_started = false;
        }
        forward(s, in, len, NULL, 0, 0, bid, 0, SY_MONGO_OP_QUERY, out);
        break;
    }
    case SY_MONGO_OP_COMPRESSED:
        snprintf(err, sizeof err, "Switchyard: OP_COMPRESSED is not supported (the proxy does not offer "
                                  "compression): connect without compressors");
        client_error(s, hdr.request_id, 2, "BadValue", err);
        evbuffer_drain(in, len);
        close_session(s, "client sent OP_COMPRESSED: answered with an error", true, SY_MERR_UNSUPPORTED);
        return;
    default:
        snprintf(err, sizeof err, "opcode %d (%s) is not relayed (only OP_MSG and OP_QUERY)", (int)hdr.op_code,
                 sy_mongo_op_name(hdr.op_code));
        bad_frame(s, "client", err);
        return;
    }
    s->requests++;
    if (reply_due) {
        s->req_client_id = hdr.request_id;
        s->req_backend_id = bid;
        s->exhaust_next = 0;
        s->req_kind = kind;
        set_state(s, MS_BUSY);
    }
    to_backend_done(s);
}

/* While held: whether the request at the front of `in` (n bytes there) may go on (continues_open_work);
 * one still arriving waits (it is looked at again when the session resumes). *whole: its length once it
 * is all there (0 before). */
static bool held_may_pass(struct sy_mongo_session *s, struct evbuffer *in, size_t n, size_t *whole)
{
    *whole = 0;
    if (n < SY_MONGO_HDR_LEN)
        return false;
    const uint8_t *p = evbuffer_pullup(in, SY_MONGO_HDR_LEN);
    struct sy_mongo_header hdr;
    size_t len = 0;
    char err[200];
    if (sy_mongo_frame(p, n, SY_MONGO_MAX_MESSAGE, &hdr, &len, err, sizeof err) != SY_PARSE_OK)
        return false;
    p = evbuffer_pullup(in, (ev_ssize_t)len);
    *whole = p != NULL ? len : 0;
    return p != NULL && continues_open_work(s, p, len);
}

/* While held: a hello/isMaster at the front of `in` (len bytes, whole) that does not start a login is
 * answered by the proxy from the last reply of this side's server (the other side's before this one
 * answered any), so drivers' heartbeats and new connections' handshakes go on during a switch without
 * reaching the backend. true when answered (and drained). */
static bool held_hello(struct sy_mongo_session *s, struct evbuffer *in, size_t len)
{
    struct sy_mongo_proxy *px = s->px;
    enum sy_side side = px->hello[s->side] != NULL ? s->side : (enum sy_side)!s->side;
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)len);
    const uint8_t *cmd_doc = NULL;
    size_t cmd_len = 0;
    char err[200];
    if (px->hello[side] == NULL || p == NULL)
        return false;
    int32_t op = (int32_t)get32(p + 12), request_id = (int32_t)get32(p + 4);
    if (op == SY_MONGO_OP_MSG) {
        struct sy_mongo_msg m;
        if (sy_mongo_msg_parse(p, len, &m, err, sizeof err) != 0 || (m.flags & SY_MONGO_MSG_MORE_TO_COME) ||
            (m.flags & SY_MONGO_MSG_REQUIRED_MASK & ~SY_MONGO_MSG_KNOWN_REQUIRED))
            return false;                        /* answered (or refused) after the release, as now */
        cmd_doc = m.body;
        cmd_len = m.body_len;
    } else if (op == SY_MONGO_OP_QUERY) {
        struct sy_mongo_query q;
        size_t db_len = 0;
        if (sy_mongo_query_parse(p, len, &q, err, sizeof err) != 0 || !sy_mongo_ns_is_cmd(q.ns, q.ns_len, &db_len) ||
            !sy_mongo_query_command(q.query, q.query_len, &cmd_doc, &cmd_len))
            return false;
    } else {
        return false;
    }
    const char *cmd = sy_mongo_cmd_name(cmd_doc, cmd_len);
    if (cmd == NULL || !sy_mongo_is_hello(cmd) || sy_mongo_hello_logs_in(cmd_doc, cmd_len))
        return false;
    bson_t doc;
    if (sy_mongo_hello_cached(px->hello[side], px->hello_len[side], s->advertised, strcmp(cmd, "hello") != 0,
                              (int64_t)sy_wall_ms(), &doc) != 0) {
        bson_destroy(&doc);
        return false;
    }
    sy_log_debug("%s: %s answered by the proxy during the hold", s->label, cmd);  /* cmd is in `in` */
    evbuffer_drain(in, len);
    s->requests++;
    client_doc(s, request_id, op, &doc);
    bson_destroy(&doc);
    return true;
}

/* Takes whole requests from the client's input while nothing is in flight. */
static void process_client(struct sy_mongo_session *s)
{
    struct evbuffer *in = bufferevent_get_input(s->io.client);
    while (s->state == MS_IDLE && !s->io.client_bp) {
        size_t n = evbuffer_get_length(in);
        if (n == 0)
            break;
        if (n < 4)
            break;
        size_t whole = 0;
        if (s->px->pair->held && !held_may_pass(s, in, n, &whole)) {  /* a new request: waits for the release */
            if (whole > 0 && held_hello(s, in, whole))
                continue;                                      /* a heartbeat: answered by the proxy */
            s->held_since_ms = sy_now_ms();
            set_state(s, MS_HELD);
            break;
        }
        size_t want = n < SY_MONGO_HDR_LEN ? n : SY_MONGO_HDR_LEN;
        const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)want);
        struct sy_mongo_header hdr;
        size_t len = 0;
        char err[200];
        switch (sy_mongo_frame(p, n, SY_MONGO_MAX_MESSAGE, &hdr, &len, err, sizeof err)) {
        case SY_PARSE_BAD:
            bad_frame(s, "client", err);
            return;
        case SY_PARSE_AGAIN:
            client_read_update(s);
            return;
        case SY_PARSE_OK:
            break;
        }
        client_frame(s, in, len);
    }
    client_read_update(s);
}

/* ---- replies ------------------------------------------------------------------------------------------ */

/* The proxy answered the hello's speculativeAuthenticate: the server's member (if any) is replaced by the
 * proxy's {conversationId, done: false, payload: server-first}, or dropped for an unknown user (the client
 * then sends saslStart and gets the error there, as from MongoDB). */
static void hello_speculative(struct sy_mongo_session *s, bson_t *doc)
{
    if (!s->spec_own)
        return;
    s->spec_own = false;
    bson_t out, sub;
    bson_iter_t it;
    bson_init(&out);
    if (bson_iter_init(&it, doc))
        while (bson_iter_next(&it))
            if (strcmp(bson_iter_key(&it), "speculativeAuthenticate") != 0)
                bson_append_iter(&out, NULL, 0, &it);
    if (s->sc.phase == SC_SPECULATIVE) {
        BSON_APPEND_DOCUMENT_BEGIN(&out, "speculativeAuthenticate", &sub);
        sy_mongo_sasl_reply_append(&sub, s->sc.conv_id, false, s->sc.server_first, s->sc.server_first_len, false);
        bson_append_document_end(&out, &sub);
        s->sc.phase = SC_FIRST_SENT;
    }
    bson_destroy(doc);
    bson_steal(doc, &out);
}

/* Keeps a server's hello reply document (as received) as its side's latest, for the hold (held_hello). */
static void hello_keep(struct sy_mongo_session *s, const uint8_t *doc, size_t len)
{
    struct sy_mongo_proxy *px = s->px;
    bson_t b;
    bson_iter_t it;
    if (!bson_init_static(&b, doc, len) || !bson_iter_init_find(&it, &b, "ok") || !bson_iter_as_bool(&it))
        return;
    uint8_t *copy = px->hello_len[s->side] == len ? px->hello[s->side] : realloc(px->hello[s->side], len);
    if (copy == NULL)
        return;                                  /* the older one stays */
    memcpy(copy, doc, len);
    px->hello[s->side] = copy;
    px->hello_len[s->side] = len;
}

/* A hello/isMaster reply (whole, at p) rebuilt with the proxy as the only member; -1 when it does not
 * parse (the session then closes: a driver would follow the server's own address). */
static int hello_reply(struct sy_mongo_session *s, const uint8_t *p, size_t len, int32_t response_to,
                       struct evbuffer *out)
{
    char err[256];
    bson_t doc;
    uint8_t *buf = NULL;
    size_t need = 0;
    int rc = -1;
    struct sy_mongo_header hdr = { (int32_t)get32(p), (int32_t)get32(p + 4), (int32_t)get32(p + 8),
                                   (int32_t)get32(p + 12) };
    if (hdr.op_code == SY_MONGO_OP_MSG) {
        struct sy_mongo_msg m;
        if (sy_mongo_msg_parse(p, len, &m, err, sizeof err) != 0)
            goto bad;
        auth_reply(s, m.body, m.body_len, true);   /* after the first reply auth_started is false */
        hello_keep(s, m.body, m.body_len);
        if (sy_mongo_hello_rewrite(m.body, m.body_len, s->advertised, &doc) != 0) {
            bson_destroy(&doc);
            snprintf(err, sizeof err, "hello reply body does not parse");
            goto bad;
        }
        hello_speculative(s, &doc);
        uint32_t flags = m.flags & ~SY_MONGO_MSG_CHECKSUM;
        if (sy_mongo_msg_build(NULL, 0, &need, hdr.request_id, response_to, flags, bson_get_data(&doc), doc.len,
                               m.seqs, m.nseqs) != 0 && need > 0 && (buf = malloc(need)) != NULL &&
            sy_mongo_msg_build(buf, need, &need, hdr.request_id, response_to, flags, bson_get_data(&doc), doc.len,
                               m.seqs, m.nseqs) == 0)
            rc = 0;
    } else if (hdr.op_code == SY_MONGO_OP_REPLY) {
        struct sy_mongo_reply r;
        if (sy_mongo_reply_parse(p, len, &r, err, sizeof err) != 0)
            goto bad;
        if (r.nreturned != 1) {
            snprintf(err, sizeof err, "isMaster OP_REPLY with %d documents", (int)r.nreturned);
            goto bad;
        }
        auth_reply(s, r.docs, r.docs_len, true);
        hello_keep(s, r.docs, r.docs_len);
        if (sy_mongo_hello_rewrite(r.docs, r.docs_len, s->advertised, &doc) != 0) {
            bson_destroy(&doc);
            snprintf(err, sizeof err, "isMaster reply document does not parse");
            goto bad;
        }
        hello_speculative(s, &doc);
        if (sy_mongo_reply_build(NULL, 0, &need, hdr.request_id, response_to, r.flags, r.cursor_id, r.starting_from,
                                 bson_get_data(&doc), doc.len, 1) != 0 && need > 0 && (buf = malloc(need)) != NULL &&
            sy_mongo_reply_build(buf, need, &need, hdr.request_id, response_to, r.flags, r.cursor_id,
                                 r.starting_from, bson_get_data(&doc), doc.len, 1) == 0)
            rc = 0;
    } else {
        snprintf(err, sizeof err, "hello answered with %s", sy_mongo_op_name(hdr.op_code));
        goto bad;
    }
    bson_destroy(&doc);
    if (rc == 0)
        evbuffer_add(out, buf, need);
    else
        snprintf(err, sizeof err, "rewritten hello reply does not fit (%zu bytes)", need);
    free(buf);
    if (rc == 0)
        return 0;
bad:
    bad_frame(s, "server", err);
    return -1;
}

/* The login step's reply, whole at p: its outcome. */
static void auth_step_reply(struct sy_mongo_session *s, const uint8_t *p, size_t len)
{
    char err[256];
    int32_t op = (int32_t)get32(p + 12);
    if (op == SY_MONGO_OP_MSG) {
        struct sy_mongo_msg m;
        if (sy_mongo_msg_parse(p, len, &m, err, sizeof err) == 0)
            auth_reply(s, m.body, m.body_len, false);
    } else if (op == SY_MONGO_OP_REPLY) {
        struct sy_mongo_reply r;
        if (sy_mongo_reply_parse(p, len, &r, err, sizeof err) == 0 && r.nreturned == 1)
            auth_reply(s, r.docs, r.docs_len, false);
    }
}

static bool reply_continue(struct sy_mongo_session *s, struct evbuffer *in);

/* A reply has been relayed (or dropped) to its end. */
static void reply_end(struct sy_mongo_session *s)
{
    if (s->resp_discard) {
        s->resp_discard = false;
        if (s->internal_done) {             /* the proxy's own command is answered: the session is idle */
            s->internal_done = false;
            s->exhaust_next = 0;
            set_state(s, MS_IDLE);
        }
        return;
    }
    if (s->resp_more) {
        s->exhaust_next = s->resp_id;       /* the next reply answers this one (exhaust) */
    } else {
        s->exhaust_next = 0;
        set_state(s, MS_IDLE);
    }
}

/* Starts the reply whose header is at the front of the backend's input (len bytes in all, `have` of them
 * there). Returns false to wait for more bytes. Replies nobody waits for are dropped; hello and login
 * replies are handled whole; the others stream through: header and flagBits rewritten now, the rest
 * moved as it arrives (resp_left), a checksum dropped at the end (resp_tail). */
static bool reply_start(struct sy_mongo_session *s, struct evbuffer *in, size_t len, size_t have)
{
    size_t head = len >= SY_MONGO_HDR_LEN + 4 ? SY_MONGO_HDR_LEN + 4 : SY_MONGO_HDR_LEN;
    if (have < head)
        return false;
    const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)head);
    struct sy_mongo_header hdr = { (int32_t)get32(p), (int32_t)get32(p + 4), (int32_t)get32(p + 8),
                                   (int32_t)get32(p + 12) };
    bool first = s->state == MS_BUSY && s->exhaust_next == 0 && hdr.response_to == s->req_backend_id;
    bool cont = s->state == MS_BUSY && s->exhaust_next != 0 && hdr.response_to == s->exhaust_next;
    if (first && s->req_kind == REQ_INTERNAL) {  /* the proxy's own command: nothing goes to the client */
        s->resp_discard = true;
        s->internal_done = true;
        s->resp_left = len;
        s->resp_tail = 0;
        return true;
    }
    if (!first && !cont) {
        /* FerretDB answers moreToCome requests; nobody waits for that reply */
        s->dropped_replies++;
        sy_log_debug("%s: reply %d to our request %d dropped (no request waits for it)", s->label,
                     (int)hdr.request_id, (int)hdr.response_to);
        s->resp_discard = true;
        s->resp_left = len;
        s->resp_tail = 0;
        return true;
    }
    if (hdr.op_code != SY_MONGO_OP_MSG && hdr.op_code != SY_MONGO_OP_REPLY) {
        char err[120];
        snprintf(err, sizeof err, "reply with opcode %d (%s)", (int)hdr.op_code, sy_mongo_op_name(hdr.op_code));
        bad_frame(s, "server", err);
        return false;
    }
    uint32_t flags = hdr.op_code == SY_MONGO_OP_MSG && head > SY_MONGO_HDR_LEN ? get32(p + SY_MONGO_HDR_LEN) : 0;
    int32_t response_to = first ? s->req_client_id : hdr.response_to; /* exhaust: the client saw that id */
    struct evbuffer *out = bufferevent_get_output(s->io.client);
    s->resp_more = (flags & SY_MONGO_MSG_MORE_TO_COME) != 0;
    s->resp_id = hdr.request_id;
    bool whole = s->req_kind == REQ_HELLO || s->req_kind == REQ_TRACKED ||
                 (first && (s->req_kind == REQ_AUTH || s->req_kind == REQ_LOGIN));
    if (whole && have < len)
        return false;
    if (s->req_kind == REQ_LOGIN) {            /* the proxy's own login: nothing goes to the client as is */
        const uint8_t *w = evbuffer_pullup(in, (ev_ssize_t)len);
        if (w == NULL || hdr.op_code != SY_MONGO_OP_MSG) {
            bad_frame(s, "server", "login reply is not an OP_MSG");
            return false;
        }
        uint8_t *copy = malloc(len);
        if (copy == NULL) {
            close_session(s, "out of memory", false, SY_MERR__COUNT);
            return false;
        }
        memcpy(copy, w, len);
        evbuffer_drain(in, len);
        login_reply(s, copy, len);
        free(copy);
        to_client_done(s);
        return true;
    }
    if (s->req_kind == REQ_HELLO) {            /* streaming hello (exhaust): every reply names servers */
        const uint8_t *w = evbuffer_pullup(in, (ev_ssize_t)len);
        if (w == NULL || hello_reply(s, w, len, response_to, out) != 0)
            return false;
        evbuffer_drain(in, len);
        reply_end(s);
        to_client_done(s);
        return true;
    }
    if (whole) {
        const uint8_t *w = evbuffer_pullup(in, (ev_ssize_t)len);
        if (w != NULL && s->req_kind == REQ_TRACKED)
            track_reply(s, w, len);
        else if (w != NULL)
            auth_step_reply(s, w, len);
    }
    /* the new header (and flagBits without checksumPresent: responseTo changed, the checksum would not
     * hold); the body follows as it arrives */
    bool cks = (flags & SY_MONGO_MSG_CHECKSUM) != 0 && len >= SY_MONGO_HDR_LEN + 8;
    uint8_t h[SY_MONGO_HDR_LEN + 4];
    header_put(h, len - (cks ? 4 : 0), hdr.request_id, response_to, hdr.op_code);
    if (head > SY_MONGO_HDR_LEN)
        put32(h + SY_MONGO_HDR_LEN, hdr.op_code == SY_MONGO_OP_MSG ? flags & ~SY_MONGO_MSG_CHECKSUM : flags);
    evbuffer_add(out, h, head);
    evbuffer_drain(in, head);
    s->resp_left = len - head - (cks ? 4 : 0);
    s->resp_tail = cks ? 4 : 0;
    reply_continue(s, in);                     /* what is there already; ends a header-only reply */
    return true;
}

/* Moves (or drops) what is there of the reply in progress; true when it ended. */
static bool reply_continue(struct sy_mongo_session *s, struct evbuffer *in)
{
    size_t n = evbuffer_get_length(in);
    size_t k = n < s->resp_left ? n : (size_t)s->resp_left;
    if (k > 0) {
        if (s->resp_discard)
            evbuffer_drain(in, k);
        else
            evbuffer_remove_buffer(in, bufferevent_get_output(s->io.client), k);
        s->resp_left -= k;
        n -= k;
    }
    if (s->resp_left == 0 && s->resp_tail > 0) {
        size_t t = n < s->resp_tail ? n : s->resp_tail;
        evbuffer_drain(in, t);
        s->resp_tail -= (uint32_t)t;
    }
    if (!s->resp_discard)
        to_client_done(s);
    if (s->resp_left > 0 || s->resp_tail > 0)
        return false;
    reply_end(s);
    return true;
}

static void process_backend(struct sy_mongo_session *s)
{
    if (s->io.backend == NULL || !s->io.backend_connected)
        return;
    struct evbuffer *in = bufferevent_get_input(s->io.backend);
    while (s->state != MS_CLOSING && !s->io.backend_bp) {
        if (s->resp_left > 0 || s->resp_tail > 0) {
            if (!reply_continue(s, in))
                break;
            continue;
        }
        size_t n = evbuffer_get_length(in);
        if (n < SY_MONGO_HDR_LEN)
            break;
        const uint8_t *p = evbuffer_pullup(in, SY_MONGO_HDR_LEN);
        struct sy_mongo_header hdr;
        size_t len = 0;
        char err[200];
        /* the length's bounds from the header alone: AGAIN only means the body is still on its way */
        if (sy_mongo_frame(p, SY_MONGO_HDR_LEN, SY_MONGO_MAX_MESSAGE, &hdr, &len, err, sizeof err) == SY_PARSE_BAD) {
            bad_frame(s, "server", err);
            return;
        }
        len = get32(p);
        if (!reply_start(s, in, len, n))
            break;
    }
    if (s->state == MS_IDLE)
        process_client(s);
}

/* ---- events ------------------------------------------------------------------------------------------ */

static void on_client_read(struct bufferevent *bev, void *arg)
{
    struct sy_mongo_session *s = arg;
    process_client(s);
    session_flush(s);
}

static void on_client_write(struct bufferevent *bev, void *arg)
{
    struct sy_mongo_session *s = arg;
    if (s->state == MS_CLOSING) {
        if (client_pending(s) == 0)        /* a final error reached the socket: the session can go */
            reap_soon(s->px);
        return;
    }
    sy_relay_write_drained(bev);
    session_flush(s);
}

static void on_client_event(struct bufferevent *bev, short what, void *arg)
{
    struct sy_mongo_session *s = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    if (s->state == MS_CLOSING) {
        s->io.client_gone = true;
        reap_soon(s->px);
        return;
    }
    if (what & BEV_EVENT_EOF)
        close_session(s, s->state == MS_BUSY ? "client vanished mid-request" : "client disconnected", false,
                      SY_MERR__COUNT);
    else
        close_session(s, s->tls ? "client socket or TLS error" : "client socket error", false, SY_MERR__COUNT);
}

static void on_backend_read(struct bufferevent *bev, void *arg)
{
    struct sy_mongo_session *s = arg;
    process_backend(s);
    session_flush(s);
}

static void on_backend_write(struct bufferevent *bev, void *arg)
{
    struct sy_mongo_session *s = arg;
    sy_relay_write_drained(bev);
    session_flush(s);
}

static void on_backend_event(struct bufferevent *bev, short what, void *arg)
{
    struct sy_mongo_session *s = arg;
    if (s->state == MS_CLOSING)
        return;
    const struct sy_endpoint *ep = s->side == SY_SIDE_BUSINESS ? &s->px->pair->cfg->business : &s->px->pair->cfg->dr;
    if (what & BEV_EVENT_CONNECTED) {
        sy_relay_backend_connected(bev);
        s->io.backend_connected = true;
        sy_log_debug("%s: connected to the %s server %s:%u", s->label, sy_side_name(s->side), ep->host, ep->port);
        set_state(s, MS_IDLE);
        backend_read_update(s);
        process_client(s);
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
                 s->state == MS_BUSY ? " during a request" : "");
    /* The client sees its connection end, as it would connected directly. */
    close_session(s, why, false, SY_MERR_LOST_CONNECTION);
}

/* ---- public ---------------------------------------------------------------------------------------------- */

static bool wildcard_host(const char *h)
{
    return h[0] == '\0' || strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0 || strcmp(h, "[::]") == 0;
}

static int backend_open(struct sy_mongo_session *s, char *err, size_t errlen)
{
    s->side = s->px->pair->active_side;
    return sy_relay_backend_connect(s->px->base, sy_pair_active_endpoint(s->px->pair), SESS_CONNECT_S, SESS_MAX_READ,
                                    on_backend_read, on_backend_write, on_backend_event, s, &s->io.backend, err,
                                    errlen);
}

void sy_mongo_session_accept(struct sy_mongo_proxy *px, evutil_socket_t fd, const struct sockaddr *sa, int salen)
{
    struct sy_mongo_session *s = calloc(1, sizeof *s);
    if (s == NULL) {
        evutil_closesocket(fd);
        return;
    }
    s->px = px;
    s->id = px->next_id++;
    if (px->next_id == 0)
        px->next_id = 1;
    sy_relay_addr_name(sa, (socklen_t)salen, s->peer, sizeof s->peer);
    snprintf(s->label, sizeof s->label, "%s M-%u %s", px->pair->cfg->name, s->id, s->peer);
    s->io = (struct sy_relay_link){ .label = s->label, .session = s, .client_resume = client_resume,
                                    .backend_resume = backend_resume, .closed = session_closed };
    snprintf(s->advertised, sizeof s->advertised, "%s", px->pair->listen_addr);
    if (wildcard_host(px->pair->cfg->listen.host)) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
            sy_relay_addr_name((struct sockaddr *)&ss, sl, s->advertised, sizeof s->advertised);
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->io.client = bufferevent_socket_new(px->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (s->io.client == NULL) {
        evutil_closesocket(fd);
        free(s);
        return;
    }
    if (px->tls != NULL) {
        SSL *ssl = SSL_new(px->tls);
        struct bufferevent *f = NULL;
        if (ssl != NULL)
            f = bufferevent_openssl_filter_new(px->base, s->io.client, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                               BEV_OPT_CLOSE_ON_FREE);
        if (f == NULL) {
            if (ssl)
                SSL_free(ssl);
            bufferevent_free(s->io.client);
            free(s);
            return;
        }
        s->io.client = f;
        s->tls = true;
    }
    bufferevent_set_max_single_read(s->io.client, SESS_MAX_READ);
    TAILQ_INSERT_TAIL(&px->sessions, s, link);
    px->n_sessions++;
    bufferevent_setcb(s->io.client, on_client_read, on_client_write, on_client_event, s);
    bufferevent_setwatermark(s->io.client, EV_WRITE, SY_RELAY_LOW_WATER, 0);
    bufferevent_enable(s->io.client, EV_READ | EV_WRITE);
    sy_log_debug("%s: accepted%s", s->label, s->tls ? " (TLS)" : "");
    char err[300];
    if (backend_open(s, err, sizeof err) != 0)
        close_session(s, err, false, SY_MERR_LOST_CONNECTION);
}

static void session_resume(struct sy_mongo_session *s)
{
    if (s->state != MS_HELD)
        return;
    set_state(s, MS_IDLE);
    client_read_update(s);
    process_client(s);
    session_flush(s);
}

void sy_mongo_sessions_resume(struct sy_mongo_proxy *px)
{
    struct sy_mongo_session *s, *next;
    for (s = TAILQ_FIRST(&px->sessions); s != NULL && !px->pair->held; s = next) {
        next = TAILQ_NEXT(s, link);
        session_resume(s); /* may close s: next was taken first */
    }
}

size_t sy_mongo_sessions_fail_held(struct sy_mongo_proxy *px, uint64_t held_ms, const char *msg)
{
    size_t n = 0;
    uint64_t now = sy_now_ms();
    struct sy_mongo_session *s, *next;
    for (s = TAILQ_FIRST(&px->sessions); s != NULL; s = next) {
        next = TAILQ_NEXT(s, link);
        if (s->state != MS_HELD || now - s->held_since_ms < held_ms)
            continue;
        /* the held request's requestID (bytes 4..7 of its header) is what the answer responds to */
        struct evbuffer *in = bufferevent_get_input(s->io.client);
        const uint8_t *h = evbuffer_get_length(in) >= 8 ? evbuffer_pullup(in, 8) : NULL;
        if (h != NULL) {
            int32_t id = (int32_t)((uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 24);
            /* not a "not primary" code: drivers retry those at once, through this proxy, held again */
            client_error(s, id, 50, "MaxTimeMSExpired", msg);
        }
        close_session(s, "held max_hold_ms while this proxy lost etcd", true, SY_MERR_FORCED_CLOSE);
        n++;
    }
    return n;
}

struct sy_mongo_session *sy_mongo_session_first(struct sy_mongo_proxy *px)
{
    return TAILQ_FIRST(&px->sessions);
}

struct sy_mongo_session *sy_mongo_session_next(struct sy_mongo_session *s)
{
    return TAILQ_NEXT(s, link);
}

bool sy_mongo_session_busy(const struct sy_mongo_session *s)
{
    return s->state == MS_BUSY || s->state == MS_CONNECTING || s->state == MS_CREDS;
}

enum sy_side sy_mongo_session_side(const struct sy_mongo_session *s)
{
    return s->side;
}

bool sy_mongo_session_movable(const struct sy_mongo_session *s)
{
    /* a SCRAM login can be repeated elsewhere from ClientKey; any other mechanism's cannot */
    return !s->logged_in || s->scram;
}

const char *sy_mongo_session_unmovable_reason(const struct sy_mongo_session *s)
{
    return sy_mongo_session_movable(s) ? ""
                                       : "its login was passed through to the server (mechanism the proxy cannot "
                                         "repeat on the other side)";
}

json_t *sy_mongo_session_unmovable_json(const struct sy_mongo_session *s, const char *key)
{
    return json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)s->id, "user", s->user, "peer", s->peer, key,
                     sy_mongo_session_unmovable_reason(s));
}

void sy_mongo_session_adopt_backend(struct sy_mongo_session *s, struct bufferevent *bev, enum sy_side side,
                                    int32_t next_id)
{
    s->side = side;
    s->next_backend_id = next_id;
    s->exhaust_next = 0;
    s->resp_left = 0;
    s->resp_tail = 0;
    s->resp_discard = false;
    s->internal_done = false;
    /* the old connection freed (a switch's loop call, not its own callback); its bytes were waiting for it */
    if (sy_relay_link_adopt_backend(&s->io, bev, SESS_MAX_READ, on_backend_read, on_backend_write, on_backend_event))
        client_read_update(s);
}

int sy_mongo_session_internal(struct sy_mongo_session *s, const bson_t *cmd)
{
    if (s->state != MS_IDLE && s->state != MS_HELD)
        return -1;
    int32_t bid = backend_id(s);
    if (sy_mongo_cmd_send(s->io.backend, bid, cmd) != 0)
        return -1;
    s->req_backend_id = bid;
    s->exhaust_next = 0;
    s->req_kind = REQ_INTERNAL;
    set_state(s, MS_BUSY);                     /* back to IDLE when its reply is dropped; then held again */
    session_flush(s);
    return 0;
}

static json_t *session_json(const struct sy_mongo_session *s)
{
    uint64_t held = s->state == MS_HELD ? sy_now_ms() - s->held_since_ms : 0;
    const struct sy_mongo_track *t = &s->px->track;
    return json_pack("{s:I,s:s,s:s,s:s,s:b,s:I,s:I,s:b,s:s,s:s,s:s,s:s,s:s,s:b,s:I,s:I}", "id", (json_int_t)s->id,
                     "user", s->user, "peer", s->peer, "side", sy_side_name(s->side), "in_transaction",
                     sy_mongo_txns_open(t, s->id) > 0, "open_cursors", (json_int_t)sy_mongo_cursors_open(t, s->id),
                     "held_ms", (json_int_t)held, "movable", sy_mongo_session_movable(s), "unmovable_reason",
                     sy_mongo_session_unmovable_reason(s), "state", sess_state_names[s->state], "auth_db",
                     s->auth_db, "mechanism", s->mechanism, "login",
                     !s->logged_in ? "none" : s->scram ? "scram_pass_through" : "passed_through", "tls", s->tls,
                     "requests", (json_int_t)s->requests, "dropped_replies", (json_int_t)s->dropped_replies);
}

json_t *sy_mongo_sessions_json(struct sy_mongo_proxy *px)
{
    json_t *list = json_array();
    struct sy_mongo_session *s;
    TAILQ_FOREACH(s, &px->sessions, link)
        json_array_append_new(list, session_json(s));
    return list;
}
