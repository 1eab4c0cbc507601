/* Cluster membership through etcd (core/cluster.h). Every lease_ttl/3 a tick: grant a lease if there is
 * none, put this node's key under it if not registered, else keep the lease alive; and read the node list.
 * An expired lease (etcd unreachable longer than the TTL, or the node paused) is granted again and the key
 * put again: a node comes back by itself. */
#include "core/cluster.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/etcd.h"
#include "core/log.h"
#include "core/pair.h"

enum etcd_state { ETCD_CONNECTING, ETCD_OK, ETCD_UNREACHABLE };

struct sy_cluster {
    struct event_base *base;
    struct sy_etcd *etcd;         /* owned */
    struct event *tick;           /* owned */
    char node[64];
    char key[160];                /* SY_CLUSTER_PREFIX "nodes/" node */
    json_t *me;                   /* owned: this node's registration without "pairs" */
    char value[8192];             /* the registration last put (or being put) */
    sy_cluster_state_fn state_fn;
    void *state_arg;
    int ttl_s;
    int period_ms;                /* lease_ttl_ms / 3: the tick */
    int64_t lease;                /* 0: none */
    bool registered;              /* the key is put under the current lease (maybe with an older value:
                                     the lease stays usable while a changed value is put again) */
    bool stale;                   /* value changed since the last put was sent: put it again */
    bool busy;                    /* a grant / put in flight */
    bool keeping;                 /* a keepalive in flight (a put does not renew the lease: both go on) */
    int64_t keeping_lease;        /* the lease that keepalive is for (its answer about an older one is moot) */
    uint64_t keeping_sent_ms;     /* monotonic: when that keepalive (or the grant in flight) was sent */
    uint64_t renewed_ms;          /* monotonic: when the request that last renewed the lease was sent (0: not
                                     since the grant of the current one); etcd keeps it until at least this
                                     plus its TTL (core/election.c steps down before) */
    bool listing;                 /* a range in flight */
    enum etcd_state state;
    char error[300];
    json_t *nodes;                /* owned: the last list read */
    bool revoked;                 /* sy_cluster_stop's revoke answered */
};

static const char *state_name(enum etcd_state s)
{
    return s == ETCD_OK ? "ok" : s == ETCD_UNREACHABLE ? "unreachable" : "connecting";
}

static void set_ok(struct sy_cluster *c)
{
    if (c->state != ETCD_OK)
        sy_log_info("cluster: etcd answers (%s)", sy_etcd_endpoint(c->etcd));
    c->state = ETCD_OK;
    c->error[0] = '\0';
}

static void set_failed(struct sy_cluster *c, const char *what, const char *err)
{
    if (c->state != ETCD_UNREACHABLE)
        sy_log_warn("cluster: %s: %s", what, err);
    c->state = ETCD_UNREACHABLE;
    snprintf(c->error, sizeof c->error, "%s: %s", what, err);
}

static int64_t int_field(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    if (json_is_integer(v))
        return json_integer_value(v);
    const char *s = json_string_value(v);
    return s != NULL ? strtoll(s, NULL, 10) : 0;   /* the gateway writes int64 as strings */
}

static void tick(evutil_socket_t fd, short what, void *arg);

/* etcd forgot the lease (it expired while this node could not reach etcd, or was paused): the next tick
 * grants a new one and registers again. */
static bool lease_gone(struct sy_cluster *c, const char *err)
{
    if (strstr(err, "requested lease not found") == NULL)
        return false;
    sy_log_warn("cluster: lease %" PRId64 " expired: registering node %s again", c->lease, c->node);
    c->lease = 0;
    c->registered = false;
    event_active(c->tick, 0, 0);
    return true;
}

static void on_put(void *arg, json_t *reply, const char *err)
{
    struct sy_cluster *c = arg;
    c->busy = false;
    if (reply == NULL) {
        if (!lease_gone(c, err)) {
            set_failed(c, "registering", err);
            c->stale = true;
        }
        return;
    }
    set_ok(c);
    if (!c->registered)
        sy_log_info("cluster: node %s registered (lease %" PRId64 ", %d s)", c->node, c->lease, c->ttl_s);
    c->registered = true;
}

static void put_node(struct sy_cluster *c)
{
    char *k = sy_etcd_b64(c->key, strlen(c->key)), *v = sy_etcd_b64(c->value, strlen(c->value));
    char lease[32];
    snprintf(lease, sizeof lease, "%" PRId64, c->lease);
    json_t *body = k && v ? json_pack("{s:s,s:s,s:s}", "key", k, "value", v, "lease", lease) : NULL;
    free(k);
    free(v);
    if (body != NULL && sy_etcd_post(c->etcd, "/v3/kv/put", body, on_put, c) == 0) {
        c->busy = true;
        c->stale = false;
    }
}

static void on_grant(void *arg, json_t *reply, const char *err)
{
    struct sy_cluster *c = arg;
    c->busy = false;
    if (reply == NULL) {
        set_failed(c, "granting a lease", err);
        return;
    }
    c->lease = int_field(reply, "ID");
    int ttl = (int)int_field(reply, "TTL");
    if (c->lease == 0 || ttl <= 0) {
        set_failed(c, "granting a lease", "the answer has no lease ID or TTL");
        c->lease = 0;
        return;
    }
    c->ttl_s = ttl;
    c->renewed_ms = c->keeping_sent_ms;
    put_node(c);
}

static void on_keepalive(void *arg, json_t *reply, const char *err)
{
    struct sy_cluster *c = arg;
    c->keeping = false;
    if (c->keeping_lease != c->lease)
        return;                           /* the lease was replaced meanwhile */
    if (reply == NULL) {
        if (!lease_gone(c, err))
            set_failed(c, "keeping the lease alive", err);
        return;
    }
    set_ok(c);
    if (int_field(json_object_get(reply, "result"), "TTL") > 0)
        c->renewed_ms = c->keeping_sent_ms;
    if (int_field(json_object_get(reply, "result"), "TTL") <= 0) {
        sy_log_warn("cluster: lease %" PRId64 " expired: registering node %s again", c->lease, c->node);
        c->lease = 0;
        c->registered = false;
        event_active(c->tick, 0, 0);
    }
}

static void on_range(void *arg, json_t *reply, const char *err)
{
    struct sy_cluster *c = arg;
    c->listing = false;
    if (reply == NULL)
        return;                              /* the registration path reports etcd's state */
    json_t *list = json_array(), *kv;
    size_t i;
    json_array_foreach(json_object_get(reply, "kvs"), i, kv) {
        size_t len;
        char *v = sy_etcd_unb64(json_string_value(json_object_get(kv, "value")) ?: "", &len);
        json_error_t je;
        json_t *node = v != NULL ? json_loadb(v, len, 0, &je) : NULL;
        free(v);
        if (json_is_object(node))
            json_array_append_new(list, node);
        else
            json_decref(node);
    }
    json_decref(c->nodes);
    c->nodes = list;
}

static void list_nodes(struct sy_cluster *c)
{
    char from[160], to[160];
    snprintf(from, sizeof from, "%snodes/", SY_CLUSTER_PREFIX);
    snprintf(to, sizeof to, "%snodes0", SY_CLUSTER_PREFIX);   /* '/' + 1: every key under nodes/ */
    char *k = sy_etcd_b64(from, strlen(from)), *e = sy_etcd_b64(to, strlen(to));
    json_t *body = k && e ? json_pack("{s:s,s:s}", "key", k, "range_end", e) : NULL;
    free(k);
    free(e);
    if (body != NULL && sy_etcd_post(c->etcd, "/v3/kv/range", body, on_range, c) == 0)
        c->listing = true;
}

/* This node's registration now; true when it differs from the one put. */
static bool refresh_value(struct sy_cluster *c)
{
    json_t *v = json_deep_copy(c->me);
    json_t *st = c->state_fn != NULL ? c->state_fn(c->state_arg) : NULL;
    if (v != NULL && json_is_object(st))
        json_object_update(v, st);
    json_decref(st);
    char *text = v != NULL ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(v);
    bool changed = text != NULL && strcmp(text, c->value) != 0;
    if (changed)
        snprintf(c->value, sizeof c->value, "%s", text);
    free(text);
    return changed;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct sy_cluster *c = arg;
    if (refresh_value(c))
        c->stale = true;                  /* put again with what changed (an epoch); the lease stays usable */
    if (!c->busy) {
        if (c->lease == 0) {
            json_t *body = json_pack("{s:i}", "TTL", c->ttl_s);
            c->keeping_sent_ms = sy_now_ms();
            if (body != NULL && sy_etcd_post(c->etcd, "/v3/lease/grant", body, on_grant, c) == 0)
                c->busy = true;
        } else if (!c->registered || c->stale) {
            put_node(c);                  /* the epoch changed: every tick may put, the keepalive goes on */
        }
    }
    if (!c->keeping && c->lease != 0) {
        char id[32];
        snprintf(id, sizeof id, "%" PRId64, c->lease);
        json_t *body = json_pack("{s:s}", "ID", id);
        uint64_t sent = sy_now_ms();
        if (body != NULL && sy_etcd_post(c->etcd, "/v3/lease/keepalive", body, on_keepalive, c) == 0) {
            c->keeping_sent_ms = sent;
            c->keeping = true;
            c->keeping_lease = c->lease;
        }
    }
    if (!c->listing)
        list_nodes(c);
}

struct sy_cluster *sy_cluster_start(struct event_base *base, const struct sy_config *cfg, sy_cluster_state_fn state,
                                    void *state_arg, char *err, size_t errlen)
{
    const struct sy_cluster_cfg *k = &cfg->cluster;
    struct sy_cluster *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->base = base;
    c->ttl_s = (k->lease_ttl_ms + 999) / 1000;
    int period_ms = k->lease_ttl_ms / 3;
    c->period_ms = period_ms;
    c->etcd = sy_etcd_new(base, k->etcd, period_ms, err, errlen);
    c->tick = event_new(base, -1, EV_PERSIST, tick, c);
    c->nodes = json_array();
    if (c->etcd == NULL || c->tick == NULL || c->nodes == NULL) {
        if (c->etcd != NULL)
            snprintf(err, errlen, "out of memory");
        sy_cluster_stop(c, 0);
        return NULL;
    }
    snprintf(c->node, sizeof c->node, "%s", k->node);
    snprintf(c->key, sizeof c->key, "%snodes/%s", SY_CLUSTER_PREFIX, k->node);
    char started[32];
    time_t now = time(NULL);
    strftime(started, sizeof started, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    c->state_fn = state;
    c->state_arg = state_arg;
    c->me = json_pack("{s:s,s:I,s:s,s:s}", "node", k->node, "pid", (json_int_t)getpid(), "admin_socket",
                      cfg->admin_socket, "started", started);
    if (c->me == NULL) {
        snprintf(err, errlen, "out of memory");
        sy_cluster_stop(c, 0);
        return NULL;
    }
    refresh_value(c);
    struct timeval tv = { period_ms / 1000, (period_ms % 1000) * 1000 };
    event_add(c->tick, &tv);
    event_active(c->tick, 0, 0);
    sy_log_info("cluster: node %s, etcd %s, lease %d s", c->node, k->etcd, c->ttl_s);
    return c;
}

static void on_revoke(void *arg, json_t *reply, const char *err)
{
    struct sy_cluster *c = arg;
    c->revoked = true;
    if (reply == NULL)
        sy_log_warn("cluster: revoking the lease: %s (the node's key goes when the lease expires)", err);
}

void sy_cluster_stop(struct sy_cluster *c, int timeout_ms)
{
    if (c == NULL)
        return;
    if (c->tick != NULL)
        event_del(c->tick);
    if (c->lease != 0 && c->etcd != NULL && timeout_ms > 0) {
        char id[32];
        snprintf(id, sizeof id, "%" PRId64, c->lease);
        if (sy_etcd_post(c->etcd, "/v3/lease/revoke", json_pack("{s:s}", "ID", id), on_revoke, c) == 0)
            for (int waited = 0; !c->revoked && waited < timeout_ms; waited += 5) {
                event_base_loop(c->base, EVLOOP_NONBLOCK);
                usleep(5 * 1000);
            }
    }
    sy_etcd_free(c->etcd);
    if (c->tick != NULL)
        event_free(c->tick);
    json_decref(c->nodes);
    json_decref(c->me);
    free(c);
}

json_t *sy_cluster_status_json(const struct sy_cluster *c)
{
    char lease[32];
    snprintf(lease, sizeof lease, "%" PRId64, c->lease);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:i,s:b,s:O}", "node", c->node, "etcd", state_name(c->state), "endpoint",
                     sy_etcd_endpoint(c->etcd), "error", c->error, "lease_id", lease, "lease_ttl_s", c->ttl_s,
                     "registered", c->registered, "nodes", c->nodes);
}

struct sy_etcd *sy_cluster_etcd(const struct sy_cluster *c)
{
    return c->etcd;
}

struct event *sy_cluster_ticker_new(const struct sy_cluster *c, event_callback_fn cb, void *arg)
{
    struct event *ev = event_new(c->base, -1, EV_PERSIST, cb, arg);
    struct timeval tv = { c->period_ms / 1000, (c->period_ms % 1000) * 1000 };
    if (ev == NULL || event_add(ev, &tv) != 0) {
        if (ev != NULL)
            event_free(ev);
        return NULL;
    }
    event_active(ev, 0, 0);
    return ev;
}

const char *sy_cluster_node(const struct sy_cluster *c)
{
    return c->node;
}

int sy_cluster_lease_ttl_ms(const struct sy_cluster *c)
{
    return c->ttl_s * 1000;
}

int64_t sy_cluster_lease(const struct sy_cluster *c)
{
    return c->registered ? c->lease : 0;
}

uint64_t sy_cluster_lease_renewed_ms(const struct sy_cluster *c, int64_t *lease)
{
    *lease = c->lease;
    return c->lease != 0 ? c->renewed_ms : 0;
}
