/* See console.h. Routes:
 *   GET  /                 the page (core/console_page.html, embedded at build time: no external asset)
 *   GET  /api/CMD?k=v...   read-only commands (status, clients, help); query keys become string args;
 *                          need the token too when the console is bound beyond loopback
 *   POST /api/CMD          actions; body = the command's args as a JSON object; needs the token
 * The answer is the admin socket's reply object as is ({"ok":...}); the HTTP status says the same thing
 * (200 ok, 400 bad_request, 403 token, 404 unknown, 409 refused by the command, 503 too_many_connections).
 * A console bound beyond loopback without console_token_file does not start. At most console_max_connections
 * connections are served at once (counted from a connection's first request to its close); a request on
 * one more is answered 503 and its connection closed. HTTP parsing is evhttp's. */
#include "core/console.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/log.h"
#include "core/tls.h"

#define CONSOLE_BODY_MAX (64u * 1024)  /* an action's args are a few fields */
#define CONSOLE_HEADERS_MAX (16u * 1024)
#define TOKEN_MAX 512
#define TOKEN_MIN 16            /* 16 random bytes base64: 128 bits; 16 characters of any kind: no less */

extern const unsigned char sy_console_page[];
extern const size_t sy_console_page_len;

/* A connection being served (from its first request to its close): evhttp calls its close callback once. */
struct console_conn {
    struct sy_console *c;              /* ref */
    struct evhttp_connection *evcon;   /* ref: evhttp's */
    struct console_call *call;         /* ref: the command in flight on it, NULL when none */
    struct console_conn *next;
};

struct sy_console {
    struct evhttp *http;        /* owned */
    struct console_conn *conns; /* owned: the connections being served */
    int n_conns, max_conns;
    struct sy_admin *admin;     /* ref: the daemon's; outlives the console */
    bool has_token;             /* false: every action is refused (read-only console) */
    unsigned char token_sha[32];/* SHA-256 of the token: compared in constant time, whatever its length */
    SSL_CTX *tls;               /* owned; NULL = plain HTTP */
    bool loopback;              /* bound to a loopback address: only loopback Host headers are served */
    uint16_t port;              /* the bound port, for the Host check */
};

/* One command in flight for one HTTP request: a switch may answer seconds later, after the browser left. */
struct console_call {
    struct evhttp_request *req;        /* ref: NULL once its connection closed (the reply is then dropped) */
    struct console_conn *conn;         /* ref: its connection, which points back until the reply; NULL once closed */
};

/* Read from the page: what the console lets through without a token, and what it lets through with one.
 * The commands themselves (and their refusals) are the admin socket's. */
static const char *const read_cmds[] = { "status", "clients", "help", "lag-history" };
static const char *const action_cmds[] = { "precheck",   "create-reverse", "pause",        "start",
                                           "switchover", "switchback",     "failover",     "verify",
                                           "resolve-tail", "hold",         "release" };

static bool in_list(const char *const *list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], name) == 0)
            return true;
    return false;
}

int sy_console_token_load(const char *path, char *out, size_t outlen, char *err, size_t errlen)
{
    int rc = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    char buf[TOKEN_MAX + 2];
    ssize_t n = 0;
    if (fd < 0) {
        snprintf(err, errlen, "console_token_file %s: %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "console_token_file %s: not a regular file", path);
        goto out;
    }
    if ((st.st_mode & 077) != 0) {
        snprintf(err, errlen, "console_token_file %s: mode %04o lets others read it; it must be 0600 (chmod 600 %s)",
                 path, (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    if (st.st_uid != geteuid()) {
        snprintf(err, errlen, "console_token_file %s: owned by uid %d, not by switchyardd's uid %d", path,
                 (int)st.st_uid, (int)geteuid());
        goto out;
    }
    n = read(fd, buf, sizeof buf - 1);
    if (n < 0) {
        snprintf(err, errlen, "console_token_file %s: %s", path, strerror(errno));
        goto out;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    for (size_t len = strlen(buf); len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\t'); len--)
        buf[len - 1] = '\0';
    if (n > TOKEN_MAX && strlen(buf) > TOKEN_MAX) {
        snprintf(err, errlen, "console_token_file %s: the token is longer than %d bytes", path, TOKEN_MAX);
        goto out;
    }
    if (buf[0] == '\0') {
        snprintf(err, errlen, "console_token_file %s: empty (one line, the token)", path);
        goto out;
    }
    if (strlen(buf) < TOKEN_MIN) {
        snprintf(err, errlen, "console_token_file %s: the token is %zu bytes; it needs at least %d (a guessable token "
                 "opens every action: head -c 32 /dev/urandom | base64 > %s)", path, strlen(buf), TOKEN_MIN, path);
        goto out;
    }
    if (strlen(buf) >= outlen) {
        snprintf(err, errlen, "console_token_file %s: the token is too long", path);
        goto out;
    }
    memcpy(out, buf, strlen(buf) + 1);
    rc = 0;
out:
    OPENSSL_cleanse(buf, sizeof buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

static void sha256(const void *p, size_t n, unsigned char out[32])
{
    unsigned int len = 32;
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1)
        memset(out, 0xff, 32); /* never equal to a real digest of ours: the compare fails */
}

static bool token_ok(const struct sy_console *c, struct evhttp_request *req)
{
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!c->has_token || auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
        return false;
    unsigned char got[32];
    sha256(auth + 7, strlen(auth + 7), got);
    return CRYPTO_memcmp(got, c->token_sha, sizeof got) == 0;
}

static void common_headers(struct evhttp_request *req, const char *type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", type);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Referrer-Policy", "no-referrer");
    evhttp_add_header(h, "Content-Security-Policy",
                      "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                      "connect-src 'self'; img-src data:; frame-ancestors 'none'; form-action 'none'");
}

static void send_json(struct evhttp_request *req, int code, const char *reason, json_t *doc)
{
    struct evbuffer *b = evbuffer_new();
    char *text = json_dumps(doc, JSON_COMPACT);
    if (b == NULL || text == NULL) {
        evbuffer_free(b);
        free(text);
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    evbuffer_add(b, text, strlen(text));
    evbuffer_add(b, "\n", 1);
    free(text);
    common_headers(req, "application/json");
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

static void send_error(struct evhttp_request *req, int code, const char *reason, const char *err, const char *msg)
{
    json_t *doc = json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code", err, "message", msg);
    send_json(req, code, reason, doc);
    json_decref(doc);
}

static void on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    struct console_conn *cc = arg;
    struct sy_console *c = cc->c;
    (void)evcon;
    if (cc->call != NULL) {       /* a command still running: its reply has nowhere to go */
        cc->call->req = NULL;
        cc->call->conn = NULL;
    }
    for (struct console_conn **p = &c->conns; *p != NULL; p = &(*p)->next)
        if (*p == cc) {
            *p = cc->next;
            break;
        }
    c->n_conns--;
    free(cc);
}

/* The served connection of req: known, newly counted, or NULL when console_max_connections are open already
 * (or out of memory). */
static struct console_conn *conn_of(struct sy_console *c, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    for (struct console_conn *cc = c->conns; cc != NULL; cc = cc->next)
        if (cc->evcon == evcon)
            return cc;
    if (evcon == NULL || c->n_conns >= c->max_conns)
        return NULL;
    struct console_conn *cc = calloc(1, sizeof *cc);
    if (cc == NULL)
        return NULL;
    cc->c = c;
    cc->evcon = evcon;
    cc->next = c->conns;
    c->conns = cc;
    c->n_conns++;
    evhttp_connection_set_closecb(evcon, on_conn_close, cc);
    return cc;
}

static void on_reply(json_t *reply, void *arg)
{
    struct console_call *call = arg;
    if (call->req != NULL) {
        if (call->conn != NULL)
            call->conn->call = NULL;
        int code = 200;
        const char *reason = "OK";
        if (!json_is_true(json_object_get(reply, "ok"))) {
            const char *err = json_string_value(json_object_get(json_object_get(reply, "error"), "code")) ?: "";
            if (strcmp(err, "bad_request") == 0) {
                code = 400;
                reason = "Bad Request";
            } else if (strcmp(err, "unknown_command") == 0 || strcmp(err, "unknown_pair") == 0 ||
                       strcmp(err, "unknown_instance") == 0) {
                code = 404;
                reason = "Not Found";
            } else {
                code = 409;
                reason = "Conflict";
            }
        }
        send_json(call->req, code, reason, reply);
    }
    free(call);
}

static void call_cmd(struct sy_console *c, struct evhttp_request *req, const char *name, json_t *args)
{
    struct console_call *call = calloc(1, sizeof *call);
    if (call == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    call->req = req;
    call->conn = conn_of(c, req);    /* known: on_request counted it */
    if (call->conn != NULL)
        call->conn->call = call;
    sy_admin_call(c->admin, name, args, on_reply, call);
}

static json_t *query_args(struct evhttp_request *req)
{
    json_t *args = json_object();
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq kv;
    TAILQ_INIT(&kv);
    if (q != NULL && evhttp_parse_query_str(q, &kv) == 0) {
        struct evkeyval *e;
        TAILQ_FOREACH(e, &kv, next)
            json_object_set_new(args, e->key, json_string(e->value));
    }
    evhttp_clear_headers(&kv);
    return args;
}

static void peer_of(struct evhttp_request *req, char *out, size_t outlen)
{
    char *host = NULL;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(evhttp_request_get_connection(req), &host, &port);
    snprintf(out, outlen, "%s:%u", host ? host : "?", (unsigned)port);
}

static void on_api(struct sy_console *c, struct evhttp_request *req, const char *name)
{
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method == EVHTTP_REQ_GET || method == EVHTTP_REQ_HEAD) {
        if (!in_list(read_cmds, SY_ARRAY_LEN(read_cmds), name)) {
            bool action = in_list(action_cmds, SY_ARRAY_LEN(action_cmds), name);
            send_error(req, action ? 405 : 404, action ? "Method Not Allowed" : "Not Found",
                       action ? "bad_request" : "unknown_command",
                       action ? "actions are POST requests" : "no such console command");
            return;
        }
        if (!c->loopback && !token_ok(c, req)) {   /* reachable from other machines: status is no one else's */
            char peer[300];
            peer_of(req, peer, sizeof peer);
            sy_log_warn("console: %s from %s refused: missing or wrong token (a console bound beyond loopback "
                        "needs it for reads too)", name, peer);
            send_error(req, 403, "Forbidden", "forbidden",
                       "this console is reachable from other machines: reads need the console token too "
                       "(Authorization: Bearer ...)");
            return;
        }
        json_t *args = query_args(req);
        call_cmd(c, req, name, args);
        json_decref(args);
        return;
    }
    if (method != EVHTTP_REQ_POST) {
        send_error(req, 405, "Method Not Allowed", "bad_request", "GET or POST");
        return;
    }
    /* The token first: a request without it learns nothing, not even whether the command exists. */
    if (!token_ok(c, req)) {
        char peer[300];
        peer_of(req, peer, sizeof peer);
        sy_log_warn("console: %s from %s refused: %s", name, peer,
                    c->has_token ? "missing or wrong token" : "no console_token_file configured");
        send_error(req, 403, "Forbidden", "forbidden",
                   c->has_token ? "actions need the console token (Authorization: Bearer ...)"
                                : "this console is read-only: switchyardd has no console_token_file");
        return;
    }
    if (!in_list(action_cmds, SY_ARRAY_LEN(action_cmds), name) && !in_list(read_cmds, SY_ARRAY_LEN(read_cmds), name)) {
        send_error(req, 404, "Not Found", "unknown_command", "no such console command");
        return;
    }
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(body);
    json_t *args = NULL;
    if (len > 0) {
        json_error_t je;
        args = json_loadb((const char *)evbuffer_pullup(body, -1), len, 0, &je);
        if (args == NULL || !json_is_object(args)) {
            json_decref(args);
            send_error(req, 400, "Bad Request", "bad_request", "the body must be a JSON object (the command's args)");
            return;
        }
    }
    char peer[300];
    peer_of(req, peer, sizeof peer);
    sy_log_info("console: %s from %s", name, peer);
    call_cmd(c, req, name, args);
    json_decref(args);
}

/* DNS rebinding: a web page elsewhere may resolve its own name to 127.0.0.1 and read a loopback console
 * with the visitor's browser. Such requests carry that name in Host; a loopback console answers only
 * requests addressed to a loopback name (and the bound port). */
static bool host_ok(const struct sy_console *c, struct evhttp_request *req)
{
    if (!c->loopback)
        return true;
    const char *host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
    if (host == NULL)
        return false;
    static const char *const names[] = { "127.0.0.1", "localhost", "[::1]" };
    for (size_t i = 0; i < SY_ARRAY_LEN(names); i++) {
        char want[64];
        snprintf(want, sizeof want, "%s:%u", names[i], (unsigned)c->port);
        if (strcasecmp(host, want) == 0 || strcasecmp(host, names[i]) == 0)
            return true;
    }
    return false;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct sy_console *c = arg;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evhttp_request_get_connection(req));
    if (c->tls != NULL && (bev == NULL || bufferevent_openssl_get_ssl(bev) == NULL)) {
        /* libevent falls back to a plain socket when our TLS bufferevent could not be made (out of memory):
         * nothing but a refusal goes out in clear */
        sy_log_warn("console: a connection without TLS on an HTTPS console refused");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        evhttp_send_error(req, HTTP_BADREQUEST, "TLS required");
        return;
    }
    if (conn_of(c, req) == NULL) {
        sy_log_warn("console: a request refused: console_max_connections (%d) connections are open", c->max_conns);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Retry-After", "1");
        json_t *doc = json_pack("{s:b,s:s,s:s}", "ok", 0, "error", "too_many_connections", "message",
                                "the console serves console_max_connections connections at once; try again");
        send_json(req, 503, "Service Unavailable", doc);
        json_decref(doc);
        return;
    }
    if (!host_ok(c, req)) {
        send_error(req, 421, "Misdirected Request", "bad_host",
                   "this console answers requests for 127.0.0.1, localhost or [::1] only");
        return;
    }
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    if (path == NULL)
        path = "/";
    if (strncmp(path, "/api/", 5) == 0) {
        on_api(c, req, path + 5);
        return;
    }
    if (strcmp(path, "/") != 0 && strcmp(path, "/index.html") != 0) {
        send_error(req, 404, "Not Found", "not_found", "the console is at /");
        return;
    }
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        send_error(req, 405, "Method Not Allowed", "bad_request", "GET");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    evbuffer_add_reference(b, sy_console_page, sy_console_page_len, NULL, NULL);
    common_headers(req, "text/html; charset=utf-8");
    evhttp_send_reply(req, HTTP_OK, "OK", b);
    evbuffer_free(b);
}

/* evhttp asks for each accepted connection's bufferevent: a TLS one when the console has a certificate. */
static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
    struct sy_console *c = arg;
    SSL *ssl = SSL_new(c->tls);
    if (ssl == NULL)
        return NULL;
    return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

struct sy_console *sy_console_open(struct event_base *base, const struct sy_config *cfg, struct sy_admin *admin,
                                   char *err, size_t errlen)
{
    const struct sy_endpoint *ep = &cfg->console;
    const char *token_file = cfg->console_token_file;
    struct sy_console *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, errlen, "console: out of memory");
        return NULL;
    }
    c->admin = admin;
    c->port = ep->port;
    c->max_conns = cfg->console_max_connections > 0 ? cfg->console_max_connections : 32;
    c->loopback = sy_host_is_loopback(ep->host);
    if (!c->loopback && token_file[0] == '\0') { /* config validation says so first; never serve it anyway */
        snprintf(err, errlen, "console = %s:%u is reachable from other machines: it needs console_token_file "
                 "(every request, reads too, then needs the token), or bind it to 127.0.0.1",
                 ep->host[0] ? ep->host : "*", (unsigned)ep->port);
        free(c);
        return NULL;
    }
    if (token_file[0] != '\0') {
        char token[TOKEN_MAX + 1];
        if (sy_console_token_load(token_file, token, sizeof token, err, errlen) != 0) {
            free(c);
            return NULL;
        }
        sha256(token, strlen(token), c->token_sha);
        OPENSSL_cleanse(token, sizeof token);
        c->has_token = true;
    }
    if (cfg->console_tls_cert[0] != '\0' &&
        (c->tls = sy_tls_server_ctx_new(cfg->console_tls_cert, cfg->console_tls_key, "console_", err, errlen)) ==
            NULL) {
        sy_console_close(c);
        return NULL;
    }
    if ((c->http = evhttp_new(base)) == NULL) {
        snprintf(err, errlen, "console: out of memory");
        free(c);
        return NULL;
    }
    evhttp_set_allowed_methods(c->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_max_body_size(c->http, CONSOLE_BODY_MAX);
    evhttp_set_max_headers_size(c->http, CONSOLE_HEADERS_MAX);
    /* an idle connection (reset by every byte read) goes after 10 s: slow clients cannot pile up; a request
     * waiting for a long switch is not idle-timed (libevent stops reading once its body is in) */
    evhttp_set_timeout(c->http, 10);
    evhttp_set_gencb(c->http, on_request, c);
    if (c->tls)
        evhttp_set_bevcb(c->http, tls_bev, c);
    if (evhttp_bind_socket(c->http, ep->host, ep->port) != 0) {
        snprintf(err, errlen, "console: cannot listen on %s:%u", ep->host, ep->port);
        sy_console_close(c);
        return NULL;
    }
    sy_log_info("console on %s://%s:%u/ (%s; at most %d connections)", c->tls ? "https" : "http", ep->host, ep->port,
                !c->loopback ? "beyond loopback: every request needs the token"
                             : c->has_token ? "actions need the token" : "read-only: no console_token_file",
                c->max_conns);
    return c;
}

void sy_console_close(struct sy_console *c)
{
    if (c == NULL)
        return;
    if (c->http)
        evhttp_free(c->http);        /* closes every connection: on_conn_close frees c->conns */
    while (c->conns != NULL) {       /* any left (a connection evhttp freed without its close callback) */
        struct console_conn *cc = c->conns;
        c->conns = cc->next;
        if (cc->call != NULL) {
            cc->call->req = NULL;
            cc->call->conn = NULL;
        }
        free(cc);
    }
    SSL_CTX_free(c->tls);
    OPENSSL_cleanse(c->token_sha, sizeof c->token_sha);
    free(c);
}
