/* The etcd v3 JSON-gateway client (core/etcd.h). */
#include "core/etcd.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <openssl/evp.h>

#include "core/config.h"
#include "core/log.h"

#define MAX_ENDPOINTS 16

struct endpoint {
    char url[96];                     /* http://host:port */
    char host[64];
    unsigned port;
    struct evhttp_connection *conn;   /* owned; made on first use */
};

struct call {
    TAILQ_ENTRY(call) link;
    struct sy_etcd *e;
    char path[64];
    char *body;                       /* owned: the JSON sent (again to the next endpoint) */
    sy_etcd_done done;                /* NULL once the client is being freed */
    void *arg;
    size_t tries;                     /* endpoints tried */
    size_t at;                        /* the endpoint of the try in flight */
};

struct sy_etcd {
    struct event_base *base;
    struct endpoint ep[MAX_ENDPOINTS];
    size_t n_ep;
    size_t cur;                       /* where the next request goes: the last that answered */
    int timeout_ms;
    TAILQ_HEAD(, call) calls;
};

struct sy_etcd *sy_etcd_new(struct event_base *base, const char *endpoints, int timeout_ms, char *err, size_t errlen)
{
    struct sy_etcd *e = calloc(1, sizeof *e);
    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->base = base;
    e->timeout_ms = timeout_ms > 0 ? timeout_ms : 2000;
    TAILQ_INIT(&e->calls);
    char list[512];
    snprintf(list, sizeof list, "%s", endpoints);
    char *save = NULL;
    for (char *u = strtok_r(list, ",", &save); u != NULL && e->n_ep < MAX_ENDPOINTS; u = strtok_r(NULL, ",", &save)) {
        while (*u == ' ' || *u == '\t')
            u++;
        struct sy_endpoint ep;
        if (strncmp(u, "http://", 7) != 0 || sy_endpoint_parse(u + 7, false, &ep) != 0 ||
            strlen(ep.host) >= sizeof e->ep[0].host)
            continue;
        struct endpoint *x = &e->ep[e->n_ep++];
        snprintf(x->url, sizeof x->url, "http://%s:%u", ep.host, ep.port);
        snprintf(x->host, sizeof x->host, "%s", ep.host);
        x->port = ep.port;
    }
    if (e->n_ep == 0) {
        snprintf(err, errlen, "no usable etcd endpoint in '%s'", endpoints);
        free(e);
        return NULL;
    }
    return e;
}

static void call_free(struct call *c)
{
    TAILQ_REMOVE(&c->e->calls, c, link);
    free(c->body);
    free(c);
}

void sy_etcd_free(struct sy_etcd *e)
{
    if (e == NULL)
        return;
    struct call *c;
    TAILQ_FOREACH(c, &e->calls, link)
        c->done = NULL;
    for (size_t i = 0; i < e->n_ep; i++)
        if (e->ep[i].conn != NULL)
            evhttp_connection_free(e->ep[i].conn);  /* may call back: detached calls only free themselves */
    while ((c = TAILQ_FIRST(&e->calls)) != NULL)
        call_free(c);
    free(e);
}

static void send_call(struct call *c);

/* Ends a call: its callback (unless detached), then it is freed. */
static void finish(struct call *c, json_t *reply, const char *err)
{
    if (c->done != NULL)
        c->done(c->arg, reply, err);
    call_free(c);
}

static void on_answer(struct evhttp_request *req, void *arg)
{
    struct call *c = arg;
    struct sy_etcd *e = c->e;
    if (c->done == NULL) {               /* the client is being freed */
        call_free(c);
        return;
    }
    int code = req != NULL ? evhttp_request_get_response_code(req) : 0;
    char err[300];
    if (code == 0 || code >= 500) {
        if (code == 0)
            snprintf(err, sizeof err, "%s: no answer (connection refused, reset or timed out)", e->ep[c->at].url);
        else
            snprintf(err, sizeof err, "%s: HTTP %d", e->ep[c->at].url, code);
        if (c->tries < e->n_ep) {
            sy_log_debug("etcd: %s; trying the next endpoint", err);
            e->cur = (c->at + 1) % e->n_ep;
            send_call(c);
            return;
        }
        finish(c, NULL, err);
        return;
    }
    e->cur = c->at;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
    json_error_t je;
    json_t *reply = p != NULL ? json_loadb(p, len, 0, &je) : NULL;
    if (reply == NULL || !json_is_object(reply)) {
        snprintf(err, sizeof err, "%s %s: HTTP %d with an answer that is not a JSON object", e->ep[c->at].url,
                 c->path, code);
        json_decref(reply);
        finish(c, NULL, err);
        return;
    }
    const char *msg = json_string_value(json_object_get(reply, "error"));
    if (msg == NULL)
        msg = json_string_value(json_object_get(reply, "message"));
    if (code != 200 || msg != NULL) {
        snprintf(err, sizeof err, "%s %s: HTTP %d: %s", e->ep[c->at].url, c->path, code, msg ? msg : "error");
        finish(c, NULL, err);
    } else {
        finish(c, reply, NULL);
    }
    json_decref(reply);
}

static void send_call(struct call *c)
{
    struct sy_etcd *e = c->e;
    c->at = e->cur;
    c->tries++;
    struct endpoint *x = &e->ep[c->at];
    char err[200];
    if (x->conn == NULL) {
        x->conn = evhttp_connection_base_new(e->base, NULL, x->host, (ev_uint16_t)x->port);
        if (x->conn != NULL) {
            struct timeval tv = { e->timeout_ms / 1000, (e->timeout_ms % 1000) * 1000 };
            evhttp_connection_set_timeout_tv(x->conn, &tv);
            evhttp_connection_set_retries(x->conn, 0);
        }
    }
    struct evhttp_request *req = x->conn != NULL ? evhttp_request_new(on_answer, c) : NULL;
    if (req == NULL) {
        snprintf(err, sizeof err, "%s: out of memory", x->url);
        finish(c, NULL, err);
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char host[96];
    snprintf(host, sizeof host, "%s:%u", x->host, x->port);
    evhttp_add_header(h, "Host", host);
    evhttp_add_header(h, "Content-Type", "application/json");
    evbuffer_add(evhttp_request_get_output_buffer(req), c->body, strlen(c->body));
    if (evhttp_make_request(x->conn, req, EVHTTP_REQ_POST, c->path) != 0) {
        /* libevent freed req */
        snprintf(err, sizeof err, "%s: cannot send the request", x->url);
        finish(c, NULL, err);
    }
}

int sy_etcd_post(struct sy_etcd *e, const char *path, json_t *body, sy_etcd_done done, void *arg)
{
    struct call *c = calloc(1, sizeof *c);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (c == NULL || text == NULL) {
        free(c);
        free(text);
        return -1;
    }
    *c = (struct call){ .e = e, .body = text, .done = done, .arg = arg };
    snprintf(c->path, sizeof c->path, "%s", path);
    TAILQ_INSERT_TAIL(&e->calls, c, link);
    send_call(c);
    return 0;
}

char *sy_etcd_b64(const char *s, size_t len)
{
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)s, (int)len);
    return out;
}

char *sy_etcd_unb64(const char *s, size_t *len)
{
    size_t n = strlen(s);
    if (n % 4 != 0)
        return NULL;
    char *out = malloc(n / 4 * 3 + 1);
    if (out == NULL)
        return NULL;
    int got = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)s, (int)n);
    if (got < 0) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts the padding's zero bytes */
    size_t pad = (n > 0 && s[n - 1] == '=') + (n > 1 && s[n - 2] == '=');
    *len = (size_t)got - pad;
    out[*len] = '\0';
    return out;
}

const char *sy_etcd_endpoint(const struct sy_etcd *e)
{
    return e->ep[e->cur].url;
}
