/* The etcd v3 JSON-gateway client (core/etcd.h). */
#include "core/etcd.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>
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
    struct event *later;              /* owned: a request that could not be sent fails from the loop */
    char later_err[300];
    bool sending;                     /* inside evhttp_make_request (which may call on_answer at once) */
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
    if (c->later != NULL)
        event_free(c->later);
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

void sy_etcd_forget(struct sy_etcd *e, const void *arg)
{
    struct call *c;
    TAILQ_FOREACH(c, &e->calls, link)
        if (c->arg == arg)
            c->done = NULL;                 /* on_answer frees it without calling back */
}

void sy_etcd_fail_now(struct sy_etcd *e, sy_etcd_done done, const char *err)
{
    for (;;) {                              /* a callback may post: look again from the start each time */
        struct call *c;
        TAILQ_FOREACH(c, &e->calls, link)
            if (c->done == done)
                break;
        if (c == NULL)
            return;
        c->done = NULL;                     /* the answer, if it comes, frees it without calling back */
        done(c->arg, NULL, err);
    }
}

static void send_call(struct call *c);

/* Ends a call: its callback (unless detached), then it is freed. */
static void finish(struct call *c, json_t *reply, const char *err)
{
    if (c->done != NULL)
        c->done(c->arg, reply, err);
    call_free(c);
}

/* No answer from the endpoint tried: the next one, or the call fails once every one was tried. */
static void no_answer(struct call *c, const char *err)
{
    struct sy_etcd *e = c->e;
    if (c->tries < e->n_ep) {
        sy_log_debug("etcd: %s; trying the next endpoint", err);
        e->cur = (c->at + 1) % e->n_ep;
        send_call(c);
        return;
    }
    finish(c, NULL, err);
}

static void on_failed_later(evutil_socket_t fd, short what, void *arg)
{
    struct call *c = arg;
    char err[sizeof c->later_err];
    snprintf(err, sizeof err, "%s", c->later_err);
    no_answer(c, err);
}

/* A request that could not even be sent fails from the loop, never inside sy_etcd_post: a caller that
 * sets its state after posting (a request in flight) must not find its callback already run. */
static void fail_later(struct call *c, const char *err)
{
    snprintf(c->later_err, sizeof c->later_err, "%s", err);
    static const struct timeval now = { 0, 0 };
    if ((c->later != NULL || (c->later = evtimer_new(c->e->base, on_failed_later, c)) != NULL) &&
        evtimer_add(c->later, &now) == 0)
        return;
    finish(c, NULL, err);                   /* out of memory: at once, as before */
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
        if (c->sending)
            fail_later(c, err);                 /* failed inside evhttp_make_request (a name not resolved) */
        else
            no_answer(c, err);
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
        fail_later(c, err);
        return;
    }
    c->sending = true;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char host[96];
    snprintf(host, sizeof host, "%s:%u", x->host, x->port);
    evhttp_add_header(h, "Host", host);
    evhttp_add_header(h, "Content-Type", "application/json");
    evbuffer_add(evhttp_request_get_output_buffer(req), c->body, strlen(c->body));
    if (evhttp_make_request(x->conn, req, EVHTTP_REQ_POST, c->path) != 0) {
        /* libevent freed req */
        snprintf(err, sizeof err, "%s: cannot send the request", x->url);
        fail_later(c, err);
    }
    c->sending = false;
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

/* ---- watch -------------------------------------------------------------------------------------- */

#define WATCH_RETRY_MS 200          /* after a stream ended: etcd members restart in about a second */
#define WATCH_IDLE_S 60             /* a stream silent this long is made again (a paused member) */

struct sy_etcd_watch {
    struct sy_etcd *e;                /* ref: the client whose endpoints it uses */
    char key[160];
    bool prefix;                      /* every key under key */
    int64_t next_rev;                 /* the revision to watch from: the last event's + 1 */
    sy_etcd_watch_fn fn;
    void *arg;
    size_t at;                        /* the endpoint of the stream */
    struct evhttp_connection *conn;   /* owned: the stream's own connection (NULL between streams) */
    struct evhttp_request *req;       /* ref: libevent's, the stream in flight (NULL when none) */
    struct evbuffer *pending;         /* owned: bytes of a line not complete yet */
    struct event *again;              /* owned: makes the stream again */
    bool created;                     /* etcd answered the create request of this stream */
    bool remade;                      /* a stream ended (or was canceled) since the last created one */
    void (*on_remade)(void *arg);     /* NULL, or told when a stream made again is created */
};

static void watch_schedule(struct sy_etcd_watch *w, int ms)
{
    struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
    evtimer_add(w->again, &tv);
}

static void watch_line(struct sy_etcd_watch *w, const char *line, size_t len)
{
    json_error_t je;
    json_t *o = json_loadb(line, len, 0, &je);
    json_t *res = json_object_get(o, "result");
    if (res == NULL) {
        sy_log_warn("etcd: watch of %s: an answer that is not a watch result: %.200s", w->key, line);
        json_decref(o);
        return;
    }
    if (json_is_true(json_object_get(res, "created"))) {
        w->created = true;
        /* from "now" (0): now is the created header's revision, so the next stream, whenever it is made,
         * starts after it and loses no event put in between */
        json_t *hr = json_object_get(json_object_get(res, "header"), "revision");
        const char *hs = json_string_value(hr);
        int64_t h = hs ? strtoll(hs, NULL, 10) : json_integer_value(hr);
        if (w->next_rev == 0 && h > 0)
            w->next_rev = h + 1;
        if (w->remade && w->on_remade != NULL)
            w->on_remade(w->arg);
        w->remade = false;
    }
    if (json_is_true(json_object_get(res, "canceled"))) {
        /* compacted past next_rev, or the member is going away: a new stream from where we are */
        sy_log_warn("etcd: watch of %s canceled: %s", w->key,
                    json_string_value(json_object_get(res, "cancel_reason")) ?: "no reason given");
        w->created = false;
        w->remade = true;
        json_t *compact = json_object_get(res, "compact_revision");
        const char *cs = json_string_value(compact);
        int64_t c = cs ? strtoll(cs, NULL, 10) : json_integer_value(compact);
        if (c > w->next_rev)
            w->next_rev = c;
    }
    json_t *ev;
    size_t i;
    json_array_foreach(json_object_get(res, "events"), i, ev) {
        json_t *kv = json_object_get(ev, "kv");
        const char *rs = json_string_value(json_object_get(kv, "mod_revision"));
        int64_t rev = rs ? strtoll(rs, NULL, 10) : 0;
        if (rev < w->next_rev)
            continue;                      /* seen on the stream before this one */
        w->next_rev = rev + 1;
        const char *type = json_string_value(json_object_get(ev, "type"));
        w->fn(w->arg, kv, type != NULL && strcmp(type, "DELETE") == 0, rev);
    }
    json_decref(o);
}

static void on_watch_chunk(struct evhttp_request *req, void *arg)
{
    struct sy_etcd_watch *w = arg;
    evbuffer_add_buffer(w->pending, evhttp_request_get_input_buffer(req));
    for (;;) {
        size_t len;
        char *line = evbuffer_readln(w->pending, &len, EVBUFFER_EOL_LF);
        if (line == NULL)
            break;
        if (len > 0)
            watch_line(w, line, len);
        free(line);
    }
    if (evbuffer_get_length(w->pending) > (1u << 20)) {  /* no line a megabyte long is a watch answer */
        sy_log_warn("etcd: watch of %s: an answer line over 1 MiB: making the watch again", w->key);
        evbuffer_drain(w->pending, evbuffer_get_length(w->pending));
        evhttp_cancel_request(req);
        w->req = NULL;
        w->created = false;
        w->remade = true;
        watch_schedule(w, WATCH_RETRY_MS);
    }
}

static void on_watch_end(struct evhttp_request *req, void *arg)
{
    struct sy_etcd_watch *w = arg;
    int code = req != NULL ? evhttp_request_get_response_code(req) : 0;
    sy_log_debug("etcd: watch of %s on %s ended (HTTP %d): again from revision %" PRId64, w->key,
                 w->e->ep[w->at].url, code, w->next_rev);
    w->req = NULL;
    w->created = false;
    w->remade = true;
    w->at = (w->at + 1) % w->e->n_ep;     /* a member that cut the stream may be going away */
    watch_schedule(w, WATCH_RETRY_MS);
}

static void watch_open(evutil_socket_t fd, short what, void *arg)
{
    struct sy_etcd_watch *w = arg;
    if (w->req != NULL)
        return;
    if (w->conn != NULL)
        evhttp_connection_free(w->conn);  /* no request on it any more */
    evbuffer_drain(w->pending, evbuffer_get_length(w->pending));
    struct endpoint *x = &w->e->ep[w->at];
    w->conn = evhttp_connection_base_new(w->e->base, NULL, x->host, (ev_uint16_t)x->port);
    char *k = sy_etcd_b64(w->key, strlen(w->key));
    char rev[32];
    snprintf(rev, sizeof rev, "%" PRId64, w->next_rev);
    json_t *body = k ? json_pack("{s:{s:s,s:s}}", "create_request", "key", k, "start_revision", rev) : NULL;
    char *end = w->prefix ? sy_etcd_prefix_end_b64(w->key) : NULL;
    if (end != NULL)
        json_object_set_new(json_object_get(body, "create_request"), "range_end", json_string(end));
    free(end);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    free(k);
    json_decref(body);
    struct evhttp_request *req = w->conn != NULL && text != NULL ? evhttp_request_new(on_watch_end, w) : NULL;
    if (req == NULL) {
        free(text);
        watch_schedule(w, WATCH_RETRY_MS);
        return;
    }
    struct timeval tv = { WATCH_IDLE_S, 0 };
    evhttp_connection_set_timeout_tv(w->conn, &tv);
    evhttp_connection_set_retries(w->conn, 0);
    evhttp_request_set_chunked_cb(req, on_watch_chunk);
    char host[96];
    snprintf(host, sizeof host, "%s:%u", x->host, x->port);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", host);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
    free(text);
    if (evhttp_make_request(w->conn, req, EVHTTP_REQ_POST, "/v3/watch") != 0) {
        w->at = (w->at + 1) % w->e->n_ep;
        watch_schedule(w, WATCH_RETRY_MS);
        return;
    }
    w->req = req;
}

char *sy_etcd_prefix_end_b64(const char *key)
{
    char end[200];
    size_t n = strlen(key);
    if (n == 0 || n >= sizeof end)
        return NULL;
    memcpy(end, key, n);
    end[n - 1]++;                          /* our keys end in a printable byte: no carry */
    return sy_etcd_b64(end, n);
}

/* ---- transactions ---------------------------------------------------------------------------- */

static const char *const target_names[] = { [SY_ETCD_CREATE] = "CREATE", [SY_ETCD_MOD] = "MOD",
                                            [SY_ETCD_VERSION] = "VERSION" };
static const char *const target_fields[] = { [SY_ETCD_CREATE] = "create_revision", [SY_ETCD_MOD] = "mod_revision",
                                             [SY_ETCD_VERSION] = "version" };
static const char *const branch_names[] = { [SY_ETCD_SUCCESS] = "success", [SY_ETCD_FAILURE] = "failure" };

void sy_etcd_txn_init(struct sy_etcd_txn *t)
{
    t->body = json_pack("{s:[],s:[],s:[]}", "compare", "success", "failure");
    t->bad = t->body == NULL;
}

/* Appends item (stolen; NULL: it could not be made) to the body's list `list`. */
static void txn_add(struct sy_etcd_txn *t, const char *list, json_t *item)
{
    if (item == NULL || t->bad) {
        json_decref(item);
        t->bad = true;
        return;
    }
    if (json_array_append_new(json_object_get(t->body, list), item) != 0)
        t->bad = true;
}

void sy_etcd_txn_compare(struct sy_etcd_txn *t, const char *key, enum sy_etcd_target target, int64_t n)
{
    char *k = sy_etcd_b64(key, strlen(key)), num[32];
    snprintf(num, sizeof num, "%" PRId64, n);
    txn_add(t, "compare", k ? json_pack("{s:s,s:s,s:s,s:s}", "key", k, "target", target_names[target], "result",
                                        "EQUAL", target_fields[target], num)
                            : NULL);
    free(k);
}

void sy_etcd_txn_compare_value(struct sy_etcd_txn *t, const char *key, const char *value)
{
    char *k = sy_etcd_b64(key, strlen(key)), *v = sy_etcd_b64(value, strlen(value));
    txn_add(t, "compare", k && v ? json_pack("{s:s,s:s,s:s,s:s}", "key", k, "target", "VALUE", "result", "EQUAL",
                                             "value", v)
                                 : NULL);
    free(k);
    free(v);
}

/* Appends {op: {"key": base64 key}} to branch b: that inner object (borrowed, for more fields), or NULL
 * when the transaction is bad. */
static json_t *txn_op(struct sy_etcd_txn *t, enum sy_etcd_branch b, const char *op, const char *key)
{
    char *k = sy_etcd_b64(key, strlen(key));
    json_t *inner = k ? json_pack("{s:s}", "key", k) : NULL;
    free(k);
    txn_add(t, branch_names[b], inner ? json_pack("{s:o}", op, inner) : NULL);
    return t->bad ? NULL : inner;
}

/* o.field = s (base64'd when b64); no o, no s or no memory: the transaction is bad. */
static void txn_field(struct sy_etcd_txn *t, json_t *o, const char *field, const char *s, bool b64)
{
    char *enc = s != NULL && b64 ? sy_etcd_b64(s, strlen(s)) : NULL;
    const char *v = b64 ? enc : s;
    if (o == NULL || v == NULL || json_object_set_new(o, field, json_string(v)) != 0)
        t->bad = true;
    free(enc);
}

void sy_etcd_txn_put(struct sy_etcd_txn *t, enum sy_etcd_branch b, const char *key, const char *value, int64_t lease)
{
    json_t *o = txn_op(t, b, "request_put", key);
    txn_field(t, o, "value", value, true);
    if (lease != 0) {
        char l[32];
        snprintf(l, sizeof l, "%" PRId64, lease);
        txn_field(t, o, "lease", l, false);
    }
}

void sy_etcd_txn_put_json(struct sy_etcd_txn *t, enum sy_etcd_branch b, const char *key, json_t *v, int64_t lease)
{
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(v);
    if (text == NULL)
        t->bad = true;
    else
        sy_etcd_txn_put(t, b, key, text, lease);
    free(text);
}

/* o.range_end: the end of key's prefix range. */
static void txn_prefix_end(struct sy_etcd_txn *t, json_t *o, const char *key)
{
    char *end = sy_etcd_prefix_end_b64(key);
    txn_field(t, o, "range_end", end, false);
    free(end);
}

void sy_etcd_txn_delete(struct sy_etcd_txn *t, enum sy_etcd_branch b, const char *key, bool prefix)
{
    json_t *o = txn_op(t, b, "request_delete_range", key);
    if (prefix)
        txn_prefix_end(t, o, key);
}

void sy_etcd_txn_range(struct sy_etcd_txn *t, enum sy_etcd_branch b, const char *key)
{
    txn_op(t, b, "request_range", key);
}

void sy_etcd_txn_range_prefix(struct sy_etcd_txn *t, enum sy_etcd_branch b, const char *prefix, bool keys_only)
{
    json_t *o = txn_op(t, b, "request_range", prefix);
    txn_prefix_end(t, o, prefix);
    if (keys_only && o != NULL && json_object_set_new(o, "keys_only", json_true()) != 0)
        t->bad = true;
}

json_t *sy_etcd_txn_take(struct sy_etcd_txn *t)
{
    json_t *body = t->bad ? NULL : t->body;
    if (t->bad)
        json_decref(t->body);
    t->body = NULL;
    t->bad = true;
    return body;
}

int sy_etcd_txn_post(struct sy_etcd *e, struct sy_etcd_txn *t, sy_etcd_done done, void *arg)
{
    json_t *body = sy_etcd_txn_take(t);
    return body != NULL ? sy_etcd_post(e, "/v3/kv/txn", body, done, arg) : -1;
}

struct sy_etcd_watch *sy_etcd_watch_start(struct sy_etcd *e, const char *key, bool prefix, int64_t from_revision,
                                          sy_etcd_watch_fn fn, void *arg)
{
    struct sy_etcd_watch *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    *w = (struct sy_etcd_watch){ .e = e, .prefix = prefix, .next_rev = from_revision, .fn = fn, .arg = arg,
                                 .at = e->cur };
    snprintf(w->key, sizeof w->key, "%s", key);
    w->pending = evbuffer_new();
    w->again = evtimer_new(e->base, watch_open, w);
    if (w->pending == NULL || w->again == NULL) {
        sy_etcd_watch_free(w);
        return NULL;
    }
    watch_schedule(w, 0);
    return w;
}

void sy_etcd_watch_restart(struct sy_etcd_watch *w, int64_t from_revision)
{
    if (from_revision > w->next_rev)
        w->next_rev = from_revision;
    if (w->req != NULL) {
        evhttp_cancel_request(w->req);   /* its end callback is not called */
        w->req = NULL;
    }
    w->created = false;
    w->remade = true;
    w->at = w->e->cur;                    /* the endpoint that answered the poll */
    watch_schedule(w, 0);
}

void sy_etcd_watch_on_remade(struct sy_etcd_watch *w, void (*fn)(void *arg))
{
    w->on_remade = fn;
}

int64_t sy_etcd_watch_next_revision(const struct sy_etcd_watch *w)
{
    return w->next_rev;
}

const char *sy_etcd_watch_state(const struct sy_etcd_watch *w)
{
    return w->req != NULL && w->created ? "ok" : "connecting";
}

void sy_etcd_watch_free(struct sy_etcd_watch *w)
{
    if (w == NULL)
        return;
    if (w->req != NULL)
        evhttp_cancel_request(w->req);
    if (w->conn != NULL)
        evhttp_connection_free(w->conn);
    if (w->again != NULL)
        event_free(w->again);
    if (w->pending != NULL)
        evbuffer_free(w->pending);
    free(w);
}
