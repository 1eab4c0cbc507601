/* Driving a server connection ourselves: greeting -> handshake response -> (auth switch) -> OK,
 * then internal queries with text rows collected into memory. Used for backend logins and admin
 * queries; a session takes the bufferevent over once login (and its init query) is done. */
#include "proxy/mysql_conn.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/log.h"
#include "proxy/relay.h"

#define CONN_TIMEOUT_S 10            /* connect, login and internal queries */
#define CONN_MAX_PACKET (64u << 20)  /* internal reads never need more */
#define CONN_ERR_MAX 600             /* an ERR packet of ours (message up to 512 bytes) */

enum conn_state { CS_CONNECTING, CS_GREETING, CS_AUTH, CS_IDLE, CS_QUERY, CS_FAILED };

struct sy_mysql_conn {
    struct event_base *base;          /* ref */
    struct bufferevent *bev;          /* owned */
    struct sy_relay_reader rd;        /* reads bev while a session relays (sy_mysql_conn_relay_start);
                                         detached while this file drives bev (login, internal queries: those
                                         need bev's read timeout) */
    enum conn_state state;
    char *label;                      /* owned: "orders C-42 backend business 127.0.0.1:3306" */
    char *host;                       /* owned: the endpoint we connect to (for its errors) ... */
    uint16_t port;                    /* ... and its port */
    struct sy_mysql_login *login;     /* owned copy while logging in (login_cb set): stage1 wiped and attrs
                                         freed when the login ends (an idle connection keeps neither) */
    struct sy_mysql_greeting *greeting; /* owned: the server's, from its greeting until a session relays over c
                                         (sy_mysql_conn_relay_start): then only thread_id and greeting_status
                                         below are kept */
    uint32_t thread_id;               /* the greeting's: the connection id KILL uses */
    uint16_t greeting_status;         /* the greeting's server status */
    uint64_t caps;                    /* negotiated */
    uint8_t seq;                      /* last sequence id seen or sent */
    sy_mysql_login_cb login_cb;       /* called once, then NULL */
    sy_mysql_auth_relay_cb relay_cb;  /* SY_LOGIN_RELAY: the server's auth packets go there */
    sy_mysql_query_cb query_cb;       /* set while a query runs */
    void *arg;
    struct sy_mysql_resp resp;        /* tracker of the internal query's response */
    struct sy_mysql_result *result;   /* owned while an internal query runs (query_cb set): rows being
                                         collected; NULL otherwise */
    size_t rows_cap;
    struct event *later;              /* owned, made only when open() fails: reports it from the loop */
    uint8_t *pending_err;             /* owned: the failure `later` reports */
    size_t pending_err_len;
};

size_t sy_mysql_conn_make_err(uint8_t *buf, size_t cap, uint16_t code, const char *state, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sy_mysql_err_encode(code, state, msg, buf, cap);
}

void sy_mysql_result_clear(struct sy_mysql_result *r)
{
    for (size_t i = 0; r->cells && i < r->n_rows * r->n_cols; i++)
        free(r->cells[i]);
    free(r->cells);
    memset(r, 0, sizeof *r);
}

const struct sy_mysql_greeting *sy_mysql_conn_greeting(const struct sy_mysql_conn *c)
{
    return c->greeting;
}

uint64_t sy_mysql_conn_caps(const struct sy_mysql_conn *c)
{
    return c->caps;
}

struct bufferevent *sy_mysql_conn_bev(struct sy_mysql_conn *c)
{
    return c->bev;
}

uint32_t sy_mysql_conn_thread_id(const struct sy_mysql_conn *c)
{
    return c->thread_id;
}

void sy_mysql_conn_local_ip(const struct sy_mysql_conn *c, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    snprintf(out, outlen, "%s", "");
    if (c->bev != NULL && getsockname(bufferevent_getfd(c->bev), (struct sockaddr *)&ss, &sl) == 0)
        getnameinfo((struct sockaddr *)&ss, sl, out, (socklen_t)outlen, NULL, 0, NI_NUMERICHOST);
}

static void login_free(struct sy_mysql_conn *c)
{
    if (c->login == NULL)
        return;
    OPENSSL_cleanse(c->login->stage1, sizeof c->login->stage1);
    free(c->login->attrs);
    free(c->login);
    c->login = NULL;
}

void sy_mysql_conn_free(struct sy_mysql_conn *c)
{
    if (c == NULL)
        return;
    sy_relay_reader_fini(&c->rd); /* before the bev: its socket closes with it */
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->later)
        event_free(c->later);
    if (c->result) {
        sy_mysql_result_clear(c->result);
        free(c->result);
    }
    login_free(c);
    free(c->greeting);
    free(c->pending_err);
    free(c->label);
    free(c->host);
    free(c);
}

/* Reports a login failure: the callback may free c, so nothing touches c afterwards. */
static void login_done(struct sy_mysql_conn *c, const uint8_t *err, size_t err_len)
{
    sy_mysql_login_cb cb = c->login_cb;
    c->login_cb = NULL;
    login_free(c); /* the secret is not kept past the login */
    if (err != NULL)
        c->state = CS_FAILED;
    else
        c->state = CS_IDLE;
    if (cb)
        cb(c, err, err_len, c->arg);
}

static void query_done(struct sy_mysql_conn *c)
{
    sy_mysql_query_cb cb = c->query_cb;
    c->query_cb = NULL;
    if (c->state == CS_QUERY)
        c->state = c->result->ok || c->result->err_code < 2000 ? CS_IDLE : CS_FAILED;
    bufferevent_set_timeouts(c->bev, NULL, NULL);
    struct sy_mysql_result res = *c->result;
    free(c->result);
    c->result = NULL;
    c->rows_cap = 0;
    if (cb)
        cb(c, &res, c->arg);
    sy_mysql_result_clear(&res);
}

/* A failure in any state: made-up ERR for the caller waiting on us. */
static void conn_fail(struct sy_mysql_conn *c, uint16_t code, const char *what)
{
    uint8_t err[600];
    size_t len;
    if (code == 2003)
        len = sy_mysql_conn_make_err(err, sizeof err, code, "HY000", "Can't connect to server on '%s:%u' (%s)",
                                     c->host, c->port, what);
    else
        len = sy_mysql_conn_make_err(err, sizeof err, code, "HY000", "Lost connection to server at '%s:%u' (%s)",
                                     c->host, c->port, what);
    sy_log_warn("%s: %s", c->label, what);
    if (c->login_cb) {
        login_done(c, err, len);
    } else if (c->query_cb) {
        c->state = CS_FAILED;
        sy_mysql_result_clear(c->result);
        c->result->ok = false;
        c->result->err_code = code;
        snprintf(c->result->err_state, sizeof c->result->err_state, "HY000");
        snprintf(c->result->err_msg, sizeof c->result->err_msg, "Lost connection to server at '%s:%u' (%s)",
                 c->host, c->port, what);
        query_done(c);
    } else {
        c->state = CS_FAILED;
    }
}

static void send_packet(struct sy_mysql_conn *c, const uint8_t *payload, size_t len)
{
    uint8_t hdr[4];
    sy_mysql_hdr_encode(hdr, (uint32_t)len, ++c->seq);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add(out, hdr, 4);
    evbuffer_add(out, payload, len);
}

static void send_auth_response(struct sy_mysql_conn *c, const uint8_t *salt, size_t salt_len, uint8_t *out,
                               size_t *out_len)
{
    switch (c->login->auth) {
    case SY_LOGIN_STAGE1:
        sy_mysql_native_scramble(c->login->stage1, salt, salt_len, out);
        *out_len = SY_SHA1_LEN;
        break;
    case SY_LOGIN_BOGUS:
        RAND_bytes(out, SY_SHA1_LEN);
        *out_len = SY_SHA1_LEN;
        break;
    case SY_LOGIN_EMPTY:
    case SY_LOGIN_RELAY: /* the server then asks for its plugin's answer: relayed to the client */
        *out_len = 0;
        break;
    }
}

static bool on_greeting(struct sy_mysql_conn *c, const uint8_t *p, size_t n)
{
    if (n > 0 && p[0] == 0xFF) {
        login_done(c, p, n);
        return true;
    }
    if (c->greeting == NULL && (c->greeting = malloc(sizeof *c->greeting)) == NULL) {
        conn_fail(c, 2013, "out of memory");
        return true;
    }
    if (sy_mysql_greeting_parse(p, n, c->greeting) != SY_PARSE_OK) {
        conn_fail(c, 2013, "malformed greeting");
        return true;
    }
    struct sy_mysql_hsresp *h = calloc(1, sizeof *h);
    uint8_t *buf = malloc(4096 + c->login->attrs_len);
    if (h == NULL || buf == NULL) {
        free(h);
        free(buf);
        conn_fail(c, 2013, "out of memory");
        return true;
    }
    uint64_t required = SY_CAP_PROTOCOL_41 | SY_CAP_SECURE_CONNECTION | SY_CAP_PLUGIN_AUTH;
    c->thread_id = c->greeting->thread_id;
    c->greeting_status = c->greeting->status;
    c->caps = (c->login->caps | required) & c->greeting->caps;
    c->caps &= ~(SY_CAP_SSL | SY_CAP_COMPRESS | SY_CAP_CONNECT_WITH_DB);
    if (c->login->db[0] != '\0')
        c->caps |= SY_CAP_CONNECT_WITH_DB;
    if ((c->caps & required) != required) {
        free(h);
        free(buf);
        conn_fail(c, 2013, "server lacks protocol 4.1 / plugin auth");
        return true;
    }
    h->caps = c->caps;
    h->max_packet = 1u << 30;
    h->collation = c->login->collation ? c->login->collation : c->greeting->collation;
    snprintf(h->user, sizeof h->user, "%s", c->login->user);
    send_auth_response(c, c->greeting->salt, c->greeting->salt_len, h->auth, &h->auth_len);
    if (c->login->db[0] != '\0') {
        h->has_db = true;
        snprintf(h->db, sizeof h->db, "%s", c->login->db);
    }
    snprintf(h->plugin, sizeof h->plugin, "mysql_native_password");
    h->attrs_p = c->login->attrs;
    h->attrs_len = c->login->attrs ? c->login->attrs_len : 0;
    size_t len = sy_mysql_hsresp_encode(h, buf, 4096 + c->login->attrs_len);
    OPENSSL_cleanse(h->auth, sizeof h->auth);
    free(h);
    if (len == 0) {
        free(buf);
        conn_fail(c, 2013, "handshake response does not fit");
        return true;
    }
    send_packet(c, buf, len);
    free(buf);
    c->state = CS_AUTH;
    return false;
}

static bool on_auth_reply(struct sy_mysql_conn *c, const uint8_t *p, size_t n)
{
    if (n == 0) {
        conn_fail(c, 2013, "empty packet during authentication");
        return true;
    }
    if (p[0] == 0x00) {
        bufferevent_set_timeouts(c->bev, NULL, NULL);
        login_done(c, NULL, 0);
        return true;
    }
    if (p[0] == 0xFF) {
        login_done(c, p, n);
        return true;
    }
    if (c->login->auth == SY_LOGIN_RELAY && c->relay_cb != NULL) {
        /* an auth switch, more data, or a plugin's raw round (PAM dialog, GSSAPI tokens) */
        c->relay_cb(c, p, n, c->arg); /* answered through sy_mysql_conn_auth_answer */
        return false;
    }
    struct sy_mysql_auth_switch sw;
    if (p[0] == 0xFE && sy_mysql_auth_switch_parse(p, n, &sw) == SY_PARSE_OK &&
        strcmp(sw.plugin, "mysql_native_password") == 0) {
        uint8_t resp[SY_SHA1_LEN];
        size_t len = 0;
        send_auth_response(c, sw.data, sw.data_len, resp, &len);
        send_packet(c, resp, len);
        OPENSSL_cleanse(resp, sizeof resp);
        return false;
    }
    uint8_t err[600];
    size_t len = sy_mysql_conn_make_err(
        err, sizeof err, 1251, "08004",
        "Switchyard: the server asks for authentication plugin '%s' for user '%s'; only mysql_native_password "
        "is supported through the proxy",
        p[0] == 0xFE ? sw.plugin : "(more data)", c->login->user);
    login_done(c, err, len);
    return true;
}

static int add_row(struct sy_mysql_conn *c, const uint8_t *p, size_t n)
{
    struct sy_mysql_result *r = c->result;
    if ((r->n_rows + 1) * r->n_cols > c->rows_cap) {
        size_t cap = c->rows_cap ? c->rows_cap * 2 : 64 * (r->n_cols ? r->n_cols : 1);
        char **cells = realloc(r->cells, cap * sizeof *cells);
        if (cells == NULL)
            return -1;
        r->cells = cells;
        c->rows_cap = cap;
    }
    struct sy_rd rd = sy_rd_make(p, n);
    for (size_t i = 0; i < r->n_cols; i++) {
        char **cell = &r->cells[r->n_rows * r->n_cols + i];
        *cell = NULL;
        if (sy_rd_left(&rd) > 0 && rd.p[rd.off] == 0xFB) {
            rd.off++;
            continue;
        }
        size_t len = 0;
        const uint8_t *s = sy_mysql_lenenc_str_get(&rd, &len);
        if (s == NULL || (*cell = strndup((const char *)s, len)) == NULL) {
            for (size_t j = 0; j < i; j++)
                free(r->cells[r->n_rows * r->n_cols + j]);
            return -1;
        }
    }
    r->n_rows++;
    return 0;
}

static bool on_query_packet(struct sy_mysql_conn *c, const uint8_t *p, size_t n)
{
    enum sy_mysql_resp_phase before = c->resp.phase;
    struct sy_mysql_pkt pkt;
    enum sy_mysql_step step = sy_mysql_resp_feed(&c->resp, p, n, (uint32_t)n, &pkt);
    if (step == SY_STEP_BAD || step == SY_STEP_INFILE) {
        conn_fail(c, 2027, "malformed reply to an internal query");
        return true;
    }
    if (pkt.kind == SY_PKT_DATA && before == SY_RESP_FIRST) {
        struct sy_rd rd = sy_rd_make(p, n);
        uint64_t cols = 0;
        if (!sy_mysql_lenenc_get(&rd, &cols, NULL) || cols > 4096) {
            conn_fail(c, 2027, "bad column count");
            return true;
        }
        c->result->n_cols = (size_t)cols;
    } else if (pkt.kind == SY_PKT_DATA && before == SY_RESP_ROWS) {
        if (add_row(c, p, n) != 0) {
            conn_fail(c, 2027, "bad row");
            return true;
        }
    } else if (pkt.kind == SY_PKT_ERR) {
        c->result->ok = false;
        c->result->err_code = pkt.err.code;
        snprintf(c->result->err_state, sizeof c->result->err_state, "%s", pkt.err.sqlstate);
        snprintf(c->result->err_msg, sizeof c->result->err_msg, "%.*s", (int)pkt.err.msg_len, pkt.err.msg_p);
    } else if (pkt.kind == SY_PKT_OK) {
        c->result->affected_rows += pkt.ok.affected_rows;
    } else if (pkt.kind == SY_PKT_PREPARE_OK) {
        c->result->stmt_id = c->resp.stmt_id;
        c->result->num_params = c->resp.num_params;
    }
    if (step == SY_STEP_DONE) {
        c->result->status = c->resp.status;
        query_done(c);
        return true;
    }
    return false;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct sy_mysql_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (c->state == CS_GREETING || c->state == CS_AUTH || c->state == CS_QUERY) {
        uint8_t hb[4];
        if (evbuffer_copyout(in, hb, 4) < 4)
            return;
        struct sy_mysql_hdr hdr;
        sy_mysql_hdr_parse(hb, 4, &hdr);
        if (hdr.len >= SY_MYSQL_MAX_PAYLOAD || hdr.len > CONN_MAX_PACKET) {
            conn_fail(c, 2020, "packet too large for an internal reply");
            return;
        }
        if (evbuffer_get_length(in) < 4 + (size_t)hdr.len)
            return;
        const uint8_t *pk = evbuffer_pullup(in, 4 + (ssize_t)hdr.len);
        if (pk == NULL) {
            conn_fail(c, 2013, "out of memory");
            return;
        }
        c->seq = hdr.seq;
        /* Copy: the handlers may call back into code that frees c (and with it `in`). */
        uint8_t *payload = malloc(hdr.len ? hdr.len : 1);
        if (payload == NULL) {
            conn_fail(c, 2013, "out of memory");
            return;
        }
        memcpy(payload, pk + 4, hdr.len);
        evbuffer_drain(in, 4 + (size_t)hdr.len);
        bool called_back;
        if (c->state == CS_GREETING)
            called_back = on_greeting(c, payload, hdr.len);
        else if (c->state == CS_AUTH)
            called_back = on_auth_reply(c, payload, hdr.len);
        else
            called_back = on_query_packet(c, payload, hdr.len);
        free(payload);
        if (called_back)
            return; /* c may be gone, or a new owner drives the bev now */
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct sy_mysql_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        evutil_make_socket_nonblocking(bufferevent_getfd(bev));
        int one = 1;
        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->state = CS_GREETING;
        return;
    }
    char what_s[160];
    if (what & BEV_EVENT_TIMEOUT)
        snprintf(what_s, sizeof what_s, "no answer within %d s", CONN_TIMEOUT_S);
    else if (what & BEV_EVENT_EOF)
        snprintf(what_s, sizeof what_s, "server closed the connection");
    else
        snprintf(what_s, sizeof what_s, "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    conn_fail(c, c->state == CS_CONNECTING ? 2003 : 2013, what_s);
}

static void on_later(evutil_socket_t fd, short what, void *arg)
{
    struct sy_mysql_conn *c = arg;
    login_done(c, c->pending_err, c->pending_err_len);
}

void sy_mysql_conn_detach(struct sy_mysql_conn *c)
{
    if (c == NULL)
        return;
    c->login_cb = NULL;
    c->query_cb = NULL;
    c->relay_cb = NULL;
    if (c->later)
        evtimer_del(c->later);
}

void sy_mysql_conn_set_relay(struct sy_mysql_conn *c, sy_mysql_auth_relay_cb cb)
{
    c->relay_cb = cb;
}

void sy_mysql_conn_auth_answer(struct sy_mysql_conn *c, const uint8_t *p, size_t n)
{
    if (c->state == CS_AUTH)
        send_packet(c, p, n);
}

void sy_mysql_conn_relay_start(struct sy_mysql_conn *c)
{
    if (c->state == CS_IDLE)
        sy_relay_reader_attach(&c->rd, c->bev); /* -1 (the bev reads itself) is only slower */
    free(c->greeting); /* a relayed session needs only its thread id and status (kept) */
    c->greeting = NULL;
}

void sy_mysql_conn_read_enable(struct sy_mysql_conn *c, bool on)
{
    if (c->bev != NULL)
        sy_relay_reader_enable(&c->rd, c->bev, on);
    else if (!on && c->rd.ev != NULL)
        event_del(c->rd.ev); /* asleep: its wake callback must not run any more */
}

int sy_mysql_conn_sleep(struct sy_mysql_conn *c, event_callback_fn wake, void *arg)
{
    if (c->state != CS_IDLE || c->bev == NULL || sy_relay_sleep(&c->rd, c->bev, wake, arg) != 0)
        return -1;
    c->bev = NULL;
    return 0;
}

int sy_mysql_conn_wake(struct sy_mysql_conn *c)
{
    if (c->bev != NULL)
        return 0;
    if ((c->bev = sy_relay_wake(&c->rd)) == NULL)
        return -1;
    return 0;
}

struct sy_mysql_conn *sy_mysql_conn_open(struct event_base *base, const struct sy_endpoint *ep,
                                         const struct sy_mysql_login *login, const char *label,
                                         sy_mysql_login_cb cb, void *arg)
{
    struct sy_mysql_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->base = base;
    c->port = ep->port;
    if ((c->host = strdup(ep->host)) == NULL || (c->label = strdup(label)) == NULL) {
        free(c->host);
        free(c);
        return NULL;
    }
    if ((c->login = malloc(sizeof *c->login)) == NULL) {
        sy_mysql_conn_free(c);
        return NULL;
    }
    *c->login = *login;
    c->login->attrs = NULL;
    c->login_cb = cb;
    c->arg = arg;
    if (login->attrs && login->attrs_len) {
        c->login->attrs = malloc(login->attrs_len);
        if (c->login->attrs == NULL) {
            sy_mysql_conn_free(c);
            return NULL;
        }
        memcpy(c->login->attrs, login->attrs, login->attrs_len);
    }
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        sy_mysql_conn_free(c);
        return NULL;
    }
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    struct timeval tmo = { CONN_TIMEOUT_S, 0 };
    bufferevent_set_timeouts(c->bev, &tmo, &tmo);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", ep->port);
    int rc = getaddrinfo(ep->host, port, &hints, &res);
    if (rc != 0 || bufferevent_socket_connect(c->bev, res->ai_addr, (int)res->ai_addrlen) != 0) {
        const char *why = rc != 0 ? gai_strerror(rc) : strerror(errno);
        c->later = evtimer_new(base, on_later, c);
        c->pending_err = malloc(CONN_ERR_MAX);
        if (c->later == NULL || c->pending_err == NULL) {
            if (res)
                freeaddrinfo(res);
            sy_mysql_conn_free(c);
            return NULL;
        }
        c->pending_err_len = sy_mysql_conn_make_err(c->pending_err, CONN_ERR_MAX, 2003, "HY000",
                                                    "Can't connect to server on '%s:%u' (%s)", ep->host,
                                                    ep->port, why);
        struct timeval now = { 0, 0 };
        evtimer_add(c->later, &now);
    }
    if (res)
        freeaddrinfo(res);
    return c;
}

static int conn_command(struct sy_mysql_conn *c, uint8_t cmd, const char *sql, sy_mysql_query_cb cb, void *arg)
{
    if (c->state != CS_IDLE || c->bev == NULL) /* asleep: its session wakes it first */
        return -1;
    if (c->result == NULL && (c->result = calloc(1, sizeof *c->result)) == NULL)
        return -1;
    size_t len = strlen(sql);
    uint8_t *buf = malloc(len + 1);
    if (buf == NULL)
        return -1;
    buf[0] = cmd;
    memcpy(buf + 1, sql, len);
    c->seq = 0xFF; /* send_packet pre-increments: the command goes out with sequence id 0 */
    send_packet(c, buf, len + 1);
    free(buf);
    sy_mysql_result_clear(c->result);
    c->result->ok = true;
    c->rows_cap = 0;
    sy_mysql_resp_start(&c->resp, cmd, c->caps);
    c->state = CS_QUERY;
    c->query_cb = cb;
    c->arg = arg;
    sy_relay_reader_detach(&c->rd); /* this file reads it now, with a read timeout */
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    struct timeval tmo = { CONN_TIMEOUT_S, 0 };
    bufferevent_set_timeouts(c->bev, &tmo, NULL);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    return 0;
}

int sy_mysql_conn_query(struct sy_mysql_conn *c, const char *sql, sy_mysql_query_cb cb, void *arg)
{
    return conn_command(c, SY_COM_QUERY, sql, cb, arg);
}

int sy_mysql_conn_prepare(struct sy_mysql_conn *c, const char *sql, sy_mysql_query_cb cb, void *arg)
{
    return conn_command(c, SY_COM_STMT_PREPARE, sql, cb, arg);
}

uint16_t sy_mysql_conn_status(const struct sy_mysql_conn *c)
{
    return c->resp.has_status ? c->resp.status : c->greeting_status;
}
