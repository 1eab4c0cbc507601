/* One MariaDB client session's login: the greeting (capabilities mirrored from the server), TLS, the proxy's own
 * mysql_native_password check against the account cache, auth relay of other plugins, the backend login as
 * the same account with session tracking set up, and COM_CHANGE_USER (see mysql_session.c for how the session's files divide). */
#include <errno.h>
#include <netdb.h>
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

/* ---- login ------------------------------------------------------------------------------------- */

void sy_mysql_login_greet(struct sy_mysql_session *s)
{
    struct sy_mysql_greeting g = { 0 };
    const char *version = sy_mysql_accounts_server_version(s->px->accounts);
    snprintf(g.server_version, sizeof g.server_version, "%s", version[0] ? version : "5.5.5-10.11.0-MariaDB");
    g.thread_id = s->id;
    RAND_bytes(s->salt, sizeof s->salt);
    for (size_t i = 0; i < sizeof s->salt; i++)
        s->salt[i] = (uint8_t)(0x21 + s->salt[i] % 94); /* printable, never NUL: as servers do */
    memcpy(g.salt, s->salt, sizeof s->salt);
    g.salt_len = sizeof s->salt;
    uint64_t caps = SY_CAP_MYSQL | SY_CAP_FOUND_ROWS | SY_CAP_LONG_FLAG | SY_CAP_CONNECT_WITH_DB |
                    SY_CAP_NO_SCHEMA | SY_CAP_ODBC | SY_CAP_LOCAL_FILES | SY_CAP_IGNORE_SPACE |
                    SY_CAP_PROTOCOL_41 | SY_CAP_INTERACTIVE | SY_CAP_IGNORE_SIGPIPE | SY_CAP_TRANSACTIONS |
                    SY_CAP_SECURE_CONNECTION | SY_CAP_MULTI_STATEMENTS | SY_CAP_MULTI_RESULTS |
                    SY_CAP_PS_MULTI_RESULTS | SY_CAP_PLUGIN_AUTH | SY_CAP_CONNECT_ATTRS | SY_CAP_PLUGIN_AUTH_LENENC |
                    SY_CAP_CAN_HANDLE_EXPIRED_PASSWORDS | SY_CAP_SESSION_TRACK | SY_CAP_DEPRECATE_EOF |
                    SY_CAP_COMPRESS | SESS_EXT_CAPS;
    uint64_t server = sy_mysql_accounts_server_caps(s->px->accounts);
    if (server != 0)
        caps &= server; /* a MariaDB server clears CLIENT_MYSQL to announce its extended capabilities */
    else
        caps &= ~SESS_EXT_CAPS;
    if (s->px->tls)
        caps |= SY_CAP_SSL;
    g.caps = caps;
    g.collation = sy_mysql_accounts_server_collation(s->px->accounts);
    if (g.collation == 0)
        g.collation = 45; /* utf8mb4_general_ci */
    g.status = SY_STATUS_AUTOCOMMIT;
    snprintf(g.auth_plugin, sizeof g.auth_plugin, "mysql_native_password");
    uint8_t buf[256];
    size_t len = sy_mysql_greeting_encode(&g, buf, sizeof buf);
    s->seq = 0;
    sy_mysql_session_client_packet(s, 0, buf, len);
}


const char sy_mysql_session_init_sql[] = "SET SESSION session_track_system_variables='*', session_track_schema=ON, "
                               "session_track_state_change=ON";

static void forward_backend_err(struct sy_mysql_session *s, const uint8_t *err, size_t len)
{
    struct sy_mysql_err e;
    char msg[600] = "authentication failed";
    uint16_t code = 1045;
    char state[6] = "28000";
    if (sy_mysql_err_parse(err, len, &e) == SY_PARSE_OK) {
        snprintf(msg, sizeof msg, "%.*s", (int)e.msg_len, e.msg_p);
        code = e.code;
        snprintf(state, sizeof state, "%s", e.sqlstate);
    }
    sy_log_info("%s: login as '%s' refused by %s side: %u %s", s->label, s->user, sy_side_name(s->side), code, msg);
    sy_mysql_session_fail(s, (uint8_t)(s->seq + 1), code, state, msg);
}

static void on_backend_login(struct sy_mysql_conn *c, const uint8_t *err, size_t err_len, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (err != NULL) {
        if (s->state == SS_CHANGE_USER) {
            sy_mysql_session_release_conn(s->px, s->backend);
            s->backend = NULL;
        }
        forward_backend_err(s, err, err_len);
        return;
    }
    sy_mysql_session_set_state(s, SS_INIT);
    if (sy_mysql_conn_query(c, sy_mysql_session_init_sql, sy_mysql_login_on_init_done, s) != 0)
        sy_mysql_session_fail(s, (uint8_t)(s->seq + 1), 2013, "HY000", "Switchyard: backend session setup failed");
}

void sy_mysql_session_take_backend(struct sy_mysql_session *s)
{
    struct bufferevent *bev = sy_mysql_conn_bev(s->backend);
    bufferevent_setcb(bev, sy_mysql_session_on_backend_read, sy_mysql_session_on_backend_write, sy_mysql_session_on_backend_event, s);
    bufferevent_set_timeouts(bev, NULL, NULL);
    bufferevent_setwatermark(bev, EV_WRITE, SY_RELAY_LOW_WATER, 0);
    bufferevent_enable(bev, EV_WRITE);
    sy_mysql_conn_relay_start(s->backend);
    sy_mysql_conn_read_enable(s->backend, true);
}

void sy_mysql_login_on_init_done(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (!res->ok) {
        char msg[700];
        snprintf(msg, sizeof msg, "Switchyard: backend session setup failed: %s", res->err_msg);
        sy_mysql_session_fail(s, (uint8_t)(s->seq + 1), res->err_code ? res->err_code : 2013, "HY000", msg);
        return;
    }
    s->status = res->status;
    s->in_txn = (s->status & SY_STATUS_IN_TRANS) != 0;
    sy_mysql_session_take_backend(s);
    sy_mysql_session_auth_clear(s);
    if (s->login_reply_due) {
        s->login_reply_due = false;
        sy_log_info("%s: logged in as '%s' on %s side (backend thread %u)", s->label, s->user,
                    sy_side_name(s->side), sy_mysql_conn_thread_id(c));
        sy_mysql_session_client_ok(s, (uint8_t)(s->seq + 1));
        if ((s->caps & SY_CAP_COMPRESS) && !s->compressed) {
            /* the OK above goes out as it is; everything after it in frames */
            struct bufferevent *z = sy_mysql_compress_wrap(s->client);
            if (z == NULL) {
                sy_mysql_session_close(s, "out of memory (compression)");
                return;
            }
            s->client = z;
            s->compressed = true;
            s->zout = evbuffer_new();
            s->drained_ev = event_new(s->px->base, -1, 0, sy_mysql_session_on_client_drained, s);
            if (s->zout == NULL || s->drained_ev == NULL) {
                sy_mysql_session_close(s, "out of memory (compression)");
                return;
            }
            /* the filter calls our write callback only when it has just deflated something; a socket
             * that drains later must still release backpressure: watch its buffer ourselves */
            evbuffer_add_cb(bufferevent_get_output(bufferevent_get_underlying(z)), sy_mysql_session_on_socket_out, s);
            sy_mysql_session_rearm_client(s);
        }
    }
    sy_mysql_session_set_state(s, SS_IDLE);
    s->direct = true;
    if (sy_relay_reader_attach(&s->client_rd, s->client) == 0) /* plain sockets only (-1: TLS, compression) */
        sy_relay_reader_set_idle(&s->client_rd, (unsigned)s->px->pair->cfg->idle_sleep_ms); /* then it may sleep */
    sy_mysql_relay_client(s);
    if (s->state != SS_CLOSING)
        sy_mysql_relay_backend(s);
    sy_mysql_session_flush(s);
}

/* The server asks the client something for its plugin (ed25519's nonce, ...): passed on, re-numbered in the
 * client's sequence; the answer comes back in SS_AUTH_RELAY. */
void sy_mysql_login_on_auth_packet(struct sy_mysql_conn *c, const uint8_t *p, size_t n, void *arg)
{
    struct sy_mysql_session *s = arg;
    s->seq++;
    sy_mysql_session_client_packet(s, s->seq, p, n);
    s->relay_return = s->state;
    sy_mysql_session_set_state(s, SS_AUTH_RELAY);
}

void sy_mysql_login_backend(struct sy_mysql_session *s, int auth_kind)
{
    if (s->px->pair->held && s->state != SS_CHANGE_USER) {
        /* a switch may be about to change the active side: log in where it ends */
        s->parked_auth = auth_kind;
        s->held_since_ms = sy_now_ms();
        sy_mysql_session_set_state(s, SS_PARKED);
        return;
    }
    struct sy_mysql_login login = { .auth = auth_kind, .caps = s->backend_caps, .collation = s->collation };
    snprintf(login.user, sizeof login.user, "%s", s->user);
    snprintf(login.db, sizeof login.db, "%s", s->schema);
    if (auth_kind == SY_LOGIN_STAGE1)
        memcpy(login.stage1, s->stage1, sizeof login.stage1);
    login.attrs = s->attrs;
    login.attrs_len = s->attrs_len;
    const struct sy_endpoint *ep = sy_pair_active_endpoint(s->px->pair);
    s->side = s->px->pair->active_side;
    char label[200];
    snprintf(label, sizeof label, "%s backend %s %s:%u", s->label, sy_side_name(s->side), ep->host, ep->port);
    if (s->state != SS_CHANGE_USER)
        sy_mysql_session_set_state(s, SS_LOGIN);
    s->login_reply_due = true;
    s->backend = sy_mysql_conn_open(s->px->base, ep, &login, label, on_backend_login, s);
    OPENSSL_cleanse(login.stage1, sizeof login.stage1);
    if (s->backend == NULL)
        sy_mysql_session_fail(s, (uint8_t)(s->seq + 1), 2013, "HY000", "Switchyard: out of memory");
    else if (auth_kind == SY_LOGIN_RELAY)
        sy_mysql_conn_set_relay(s->backend, sy_mysql_login_on_auth_packet);
}

static void on_accounts(void *arg, const char *err)
{
    struct sy_mysql_session *s = arg;
    s->wait = NULL;
    if (err != NULL) {
        char msg[800];
        snprintf(msg, sizeof msg, "Switchyard: cannot check the password: %s", err);
        sy_mysql_session_fail(s, (uint8_t)(s->seq + 1), 2013, "HY000", msg);
        return;
    }
    s->refreshed = true;
    sy_mysql_login_lookup(s);
}

/* Checks the client's scramble against the account the server would match, then logs in on the
 * backend. An unknown user or a wrong password still goes to the backend (with an empty or bogus
 * response) so the client gets the server's own 1045 text, with the host the server sees. */
void sy_mysql_login_lookup(struct sy_mysql_session *s)
{
    const struct sy_mysql_account *acc = sy_mysql_accounts_find(s->px->accounts, s->user);
    bool verified = false;
    if (acc != NULL) {
        bool native = acc->plugin[0] == '\0' || strcmp(acc->plugin, "mysql_native_password") == 0;
        if (!native) {
            /* ed25519 and other plugins: the server checks the client itself, through the proxy (the
             * proxy learns no secret, so the session cannot move: it is pinned) */
            if (!sy_mysql_session_str_set(&s->relayed_plugin, SY_MYSQL_PLUGIN_MAX, "%s", acc->plugin)) {
                sy_mysql_session_fail(s, (uint8_t)(s->seq + 1), 2013, "HY000", "Switchyard: out of memory");
                return;
            }
            s->have_stage1 = false;
            sy_log_info("%s: account '%s'@'%s' uses '%s': its login is relayed to the server", s->label, acc->user,
                        acc->host, acc->plugin);
            sy_mysql_login_backend(s, SY_LOGIN_RELAY);
            return;
        }
        sy_mysql_session_str_free(&s->relayed_plugin);
        uint8_t stage2[SY_SHA1_LEN];
        if (acc->auth_string[0] == '\0') {
            verified = s->client_auth_len == 0;
            s->empty_password = verified;
            s->have_stage1 = false;
        } else if (sy_mysql_native_hash_parse(acc->auth_string, stage2)) {
            verified = sy_mysql_native_recover(s->client_auth, s->client_auth_len, s->salt, sizeof s->salt, stage2,
                                               s->stage1);
            s->have_stage1 = verified;
        }
    }
    if (!verified && !s->refreshed) {
        s->wait = sy_mysql_accounts_refresh(s->px->accounts, on_accounts, s);
        if (s->wait == NULL)
            sy_mysql_session_fail(s, (uint8_t)(s->seq + 1), 2013, "HY000", "Switchyard: out of memory");
        return;
    }
    int kind = verified ? (s->empty_password ? SY_LOGIN_EMPTY : SY_LOGIN_STAGE1)
                        : (s->client_auth_len == 0 ? SY_LOGIN_EMPTY : SY_LOGIN_BOGUS);
    if (!verified)
        sy_log_info("%s: password check failed for '%s'%s; the server will refuse it", s->label, s->user,
                    acc ? "" : " (no such account)");
    sy_mysql_login_backend(s, kind);
}

void sy_mysql_login_start_auth(struct sy_mysql_session *s)
{
    s->refreshed = false;
    if (s->state != SS_CHANGE_USER)
        sy_mysql_session_set_state(s, SS_LOOKUP);
    sy_mysql_login_lookup(s);
}

void sy_mysql_login_handshake_response(struct sy_mysql_session *s, const uint8_t *p, size_t n)
{
    struct sy_mysql_hsresp *h = calloc(1, sizeof *h);
    if (h == NULL) {
        sy_mysql_session_close(s, "out of memory");
        return;
    }
    if (sy_mysql_hsresp_parse(p, n, h) != SY_PARSE_OK || !(h->caps & SY_CAP_PROTOCOL_41)) {
        free(h);
        sy_mysql_session_fail(s, (uint8_t)(s->seq + 1), 1043, "08S01", "Bad handshake");
        return;
    }
    if (h->ssl_request) {
        free(h);
        if (s->px->tls == NULL || bufferevent_get_underlying(s->client) != NULL) {
            sy_mysql_session_fail(s, (uint8_t)(s->seq + 1), 1043, "08S01", "Bad handshake: TLS is not enabled on this listener");
            return;
        }
        SSL *ssl = SSL_new(s->px->tls);
        struct bufferevent *tls = ssl ? bufferevent_openssl_filter_new(s->px->base, s->client, ssl,
                                                                       BUFFEREVENT_SSL_ACCEPTING,
                                                                       BEV_OPT_CLOSE_ON_FREE)
                                      : NULL;
        if (tls == NULL) {
            if (ssl)
                SSL_free(ssl);
            sy_mysql_session_close(s, "TLS setup failed");
            return;
        }
        s->client = tls;
        bufferevent_setcb(s->client, NULL, NULL, NULL, s);
        sy_mysql_session_rearm_client(s);
        return;
    }
    s->caps = h->caps & (SY_CAP_MYSQL | SY_CAP_FOUND_ROWS | SY_CAP_LONG_FLAG | SY_CAP_CONNECT_WITH_DB |
                         SY_CAP_NO_SCHEMA | SY_CAP_ODBC | SY_CAP_LOCAL_FILES | SY_CAP_IGNORE_SPACE |
                         SY_CAP_PROTOCOL_41 | SY_CAP_INTERACTIVE | SY_CAP_SSL | SY_CAP_IGNORE_SIGPIPE |
                         SY_CAP_TRANSACTIONS | SY_CAP_SECURE_CONNECTION | SY_CAP_MULTI_STATEMENTS |
                         SY_CAP_MULTI_RESULTS | SY_CAP_PS_MULTI_RESULTS | SY_CAP_PLUGIN_AUTH | SY_CAP_CONNECT_ATTRS |
                         SY_CAP_PLUGIN_AUTH_LENENC | SY_CAP_CAN_HANDLE_EXPIRED_PASSWORDS | SY_CAP_SESSION_TRACK |
                         SY_CAP_DEPRECATE_EOF | SY_CAP_COMPRESS | SESS_EXT_CAPS);
    s->backend_caps = (s->caps | SY_CAP_SESSION_TRACK) & ~(SY_CAP_SSL | SY_CAP_CONNECT_WITH_DB | SY_CAP_COMPRESS);
    s->collation = h->collation;
    s->max_packet = h->max_packet;
    if (!sy_mysql_session_str_set(&s->user, SY_MYSQL_NAME_MAX, "%s", h->user) ||
        (h->has_db && !sy_mysql_session_str_set(&s->schema, SY_MYSQL_DB_MAX, "%s", h->db))) {
        OPENSSL_cleanse(h->auth, sizeof h->auth);
        free(h);
        sy_mysql_session_close(s, "out of memory");
        return;
    }
    if (h->attrs_len > 0 && (s->attrs = malloc(h->attrs_len)) != NULL) {
        memcpy(s->attrs, h->attrs_p, h->attrs_len);
        s->attrs_len = h->attrs_len;
    }
    if (!sy_mysql_session_str_set(&s->label, 160, "%s user=%s", s->label, s->user))
        sy_log_debug("%s: out of memory naming the session's user in its label", s->label);
    bool other_plugin = (h->caps & SY_CAP_PLUGIN_AUTH) && h->plugin[0] != '\0' &&
                        strcmp(h->plugin, "mysql_native_password") != 0;
    bool kept = sy_mysql_session_auth_set(s, h->auth, h->auth_len);
    OPENSSL_cleanse(h->auth, sizeof h->auth);
    free(h);
    if (!kept) {
        sy_mysql_session_close(s, "out of memory");
        return;
    }
    if (other_plugin) {
        /* AuthSwitchRequest: 0xFE, plugin name NUL, our salt NUL. */
        uint8_t buf[1 + 22 + SY_MYSQL_SALT_LEN + 1];
        size_t len = 0;
        buf[len++] = 0xFE;
        memcpy(buf + len, "mysql_native_password", 22);
        len += 22;
        memcpy(buf + len, s->salt, sizeof s->salt);
        len += sizeof s->salt;
        buf[len++] = 0;
        s->seq++;
        sy_mysql_session_client_packet(s, s->seq, buf, len);
        sy_mysql_session_set_state(s, SS_AUTH_SWITCH);
        return;
    }
    sy_mysql_login_start_auth(s);
}

