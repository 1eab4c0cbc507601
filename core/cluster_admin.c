/* Admin commands forwarded to a pair's owner (core/cluster_admin.h).
 *
 *   asking node                                   owner (watches requests/ of the pairs it may own)
 *   range owner -> "to" (none: no_owner)
 *   put requests/<id> {to, cmd, args} ----------> runs cmd through the admin dispatch (sy_admin_call)
 *   every POLL_MS: range replies/<id> + owner <--- put replies/<id> = the reply object
 *     reply       -> answered, both keys deleted
 *     owner gone or another node -> owner_lost (the outcome is unknown; nothing is sent again)
 * A request names its owner ("to"): a node that was not asked, or owns the pair only since, never runs
 * it, so a command whose owner died mid-way is never run twice. A request key is created once (a txn on
 * create_revision 0: etcd.c sends a put that timed out to the next member) and the owner runs only
 * creates, and each id once (ca->served_ids); after its watch was made again it reads requests/ for
 * the ones the stream may have missed (compacted away). */
#include "core/cluster_admin.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/cluster.h"
#include "core/election.h"
#include "core/etcd.h"
#include "core/log.h"

#define POLL_MS 100
#define FORWARD_TIMEOUT_MS (10 * 60 * 1000)   /* a verify of a large pair may take minutes */
#define TAKEOVER_WAIT_MS 30000                /* an owner still taking its instances over: the command waits */
#define SERVED_IDS 256                        /* request ids remembered as run (far more than in flight) */

struct forward {
    struct sy_cluster_admin *ca;       /* ref */
    struct sy_admin_req *req;          /* answered exactly once, then NULL */
    char pair[64];
    char cmd[64];
    char id[80];
    char to[64];                       /* the owner it was sent to */
    char owner_key[200], req_key[240], reply_key[240];
    json_t *args;                      /* owned: the command's arguments */
    struct sy_pair *p;                 /* ref: the daemon's */
    uint64_t started_ms;
    struct event *poll;                /* owned: the next poll (of the reply; of the owner while to is "") */
    bool busy;                         /* an etcd request in flight */
    struct forward *next;              /* in ca->forwards */
};

struct pair_watch {
    struct sy_cluster_admin *ca;       /* ref */
    struct sy_pair *p;                 /* ref */
    struct sy_etcd_watch *watch;       /* owned: requests/ of the pair */
};

struct served {
    struct sy_cluster_admin *ca;       /* ref */
    struct sy_pair *p;                 /* ref */
    char reply_key[240];
    char cmd[64];
    json_t *args;                      /* owned */
    uint64_t since_ms;                 /* monotonic: when it arrived */
    struct event *retry;               /* owned: runs it once the instances are open (a takeover) */
    bool running;                      /* in sy_admin_call: on_served frees it (ca NULL: ca was freed) */
    struct served *next;               /* in ca->served */
};

struct sy_cluster_admin {
    struct sy_cluster *c;              /* ref */
    struct sy_etcd *etcd;              /* ref: owned by the cluster */
    struct sy_admin *a;                /* ref */
    struct pair_watch *watches;        /* owned: n */
    size_t n;
    struct forward *forwards;          /* owned: commands sent, not answered yet */
    struct served *served;             /* owned: requests taken, not answered yet */
    char served_ids[SERVED_IDS][80];   /* the ids of the last requests taken (a ring): none runs twice */
    size_t served_at;                  /* the next slot of served_ids */
    uint64_t next_id;
};

static json_t *kv_json(json_t *kv)
{
    size_t len = 0;
    char *text = sy_etcd_unb64(json_string_value(json_object_get(kv, "value")) ?: "", &len);
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    return v;
}

static json_t *put_body(const char *key, const char *text, int64_t lease)
{
    char *k = sy_etcd_b64(key, strlen(key)), *v = sy_etcd_b64(text, strlen(text));
    char l[32];
    snprintf(l, sizeof l, "%" PRId64, lease);
    json_t *body = k && v ? json_pack("{s:s,s:s,s:s}", "key", k, "value", v, "lease", l) : NULL;
    free(k);
    free(v);
    return body;
}

static void ignore(void *arg, json_t *reply, const char *err)
{
    if (reply == NULL)
        sy_log_debug("cluster admin: cleanup: %s", err);
}

static void delete_key(struct sy_cluster_admin *ca, const char *key)
{
    char *k = sy_etcd_b64(key, strlen(key));
    json_t *body = k ? json_pack("{s:s}", "key", k) : NULL;
    free(k);
    if (body != NULL)
        sy_etcd_post(ca->etcd, "/v3/kv/deleterange", body, ignore, ca);
}

/* resolve-tail --export writes a file where it runs: never run for another node (the file would land on
 * the owner's filesystem, at a path whoever can write to etcd chose). */
static bool export_refused(const char *cmd, json_t *args)
{
    return strcmp(cmd, "resolve-tail") == 0 && json_object_get(args, "export") != NULL;
}

/* Whether this node runs the pair's commands: it owns the pair and opened its instances. A node that
 * stepped down keeps the instance objects until their threads returned and a switch of its own ended
 * (core/daemon.c close_instances): its commands go to the new owner all the same. */
static bool runs_here(const struct sy_pair *p)
{
    return p->sync_open && !p->sync_closing && p->election != NULL && sy_election_is_owner(p->election);
}

/* ---- the asking node ---------------------------------------------------------------------------- */

static void forward_free(struct forward *f)
{
    struct forward **pp = &f->ca->forwards;
    while (*pp && *pp != f)
        pp = &(*pp)->next;
    if (*pp)
        *pp = f->next;
    sy_etcd_forget(f->ca->etcd, f);
    if (f->poll)
        event_free(f->poll);
    json_decref(f->args);
    free(f);
}

/* The command's answer (reply NULL: fail with code and message); the keys go; f is freed. */
static void forward_end(struct forward *f, json_t *reply, const char *code, const char *msg)
{
    if (reply != NULL)
        sy_admin_answer(f->req, reply);
    else
        sy_admin_fail(f->req, code ? code : "internal", "%s", msg ? msg : "no reply");
    f->req = NULL;
    if (f->to[0]) {
        delete_key(f->ca, f->req_key);
        delete_key(f->ca, f->reply_key);
    }
    forward_free(f);
}

static void schedule_poll(struct forward *f)
{
    struct timeval tv = { 0, POLL_MS * 1000 };
    event_add(f->poll, &tv);
}

/* The first key-value of a transaction's range response (NULL: none). */
static json_t *first_kv(json_t *response)
{
    return json_array_get(json_object_get(json_object_get(response, "response_range"), "kvs"), 0);
}

static void on_poll_answer(void *arg, json_t *reply, const char *err)
{
    struct forward *f = arg;
    f->busy = false;
    char msg[700];
    if (reply == NULL) {                           /* etcd did not answer: go on polling until the deadline */
        if (sy_now_ms() - f->started_ms > FORWARD_TIMEOUT_MS) {
            snprintf(msg, sizeof msg, "'%s' was sent to node %s, the owner of %s, but etcd did not answer for "
                     "the reply: its outcome is unknown (check status): %s", f->cmd, f->to, f->pair, err);
            forward_end(f, NULL, "owner_lost", msg);
        } else {
            schedule_poll(f);
        }
        return;
    }
    json_t *rs = json_object_get(reply, "responses");
    json_t *answer = first_kv(json_array_get(rs, 0)), *owner = first_kv(json_array_get(rs, 1));
    if (answer != NULL) {
        json_t *v = kv_json(answer);
        if (json_is_object(v) && json_object_get(v, "ok") != NULL) {
            forward_end(f, v, NULL, NULL);
        } else {
            snprintf(msg, sizeof msg, "node %s answered '%s' with something that is not a reply", f->to, f->cmd);
            forward_end(f, NULL, "internal", msg);
        }
        json_decref(v);
        return;
    }
    json_t *ov = owner ? kv_json(owner) : NULL;
    const char *now = json_string_value(json_object_get(ov, "node"));
    if (now == NULL || strcmp(now, f->to) != 0) {
        snprintf(msg, sizeof msg, "node %s, which owned the synchronization of %s, %s before answering '%s': its "
                 "outcome is unknown (it was not sent again): check `status` on any node, then retry if needed",
                 f->to, f->pair, now ? "lost it to node " : "stopped (its lease expired)", f->cmd);
        if (now != NULL) {
            size_t l = strlen(msg);
            snprintf(msg + l, sizeof msg - l, " (now owned by %s)", now);
        }
        json_decref(ov);
        forward_end(f, NULL, "owner_lost", msg);
        return;
    }
    json_decref(ov);
    if (sy_now_ms() - f->started_ms > FORWARD_TIMEOUT_MS) {
        snprintf(msg, sizeof msg, "node %s, the owner of %s, did not answer '%s' within %d s: its outcome is "
                 "unknown (check status)", f->to, f->pair, f->cmd, FORWARD_TIMEOUT_MS / 1000);
        forward_end(f, NULL, "owner_lost", msg);
        return;
    }
    schedule_poll(f);
}

static void lookup_owner(struct forward *f);

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    struct forward *f = arg;
    if (f->busy)
        return;
    if (f->to[0] == '\0') {
        lookup_owner(f);
        return;
    }
    struct sy_etcd_txn t;                       /* no compare: both reads, at one revision */
    sy_etcd_txn_init(&t);
    sy_etcd_txn_range(&t, SY_ETCD_SUCCESS, f->reply_key);
    sy_etcd_txn_range(&t, SY_ETCD_SUCCESS, f->owner_key);
    if (sy_etcd_txn_post(f->ca->etcd, &t, on_poll_answer, f) == 0)
        f->busy = true;
    else
        schedule_poll(f);
}

static void on_sent(void *arg, json_t *reply, const char *err)
{
    struct forward *f = arg;
    f->busy = false;
    if (reply == NULL) {
        char msg[600];
        snprintf(msg, sizeof msg, "cannot send '%s' to node %s, the owner of %s: %s", f->cmd, f->to, f->pair, err);
        f->to[0] = '\0';                           /* nothing to delete */
        forward_end(f, NULL, "owner_unreachable", msg);
        return;
    }
    sy_log_info("cluster admin: '%s' for %s sent to its owner %s (request %s)", f->cmd, f->pair, f->to, f->id);
    schedule_poll(f);
}

static void on_local_reply(json_t *reply, void *arg)
{
    forward_end(arg, reply, NULL, NULL);
}

static void on_owner(void *arg, json_t *reply, const char *err)
{
    struct forward *f = arg;
    f->busy = false;
    char msg[1200];
    if (reply == NULL) {
        snprintf(msg, sizeof msg, "cannot find the owner of %s in etcd: %s", f->pair, err);
        forward_end(f, NULL, "owner_unreachable", msg);
        return;
    }
    json_t *kv = json_array_get(json_object_get(reply, "kvs"), 0);
    json_t *v = kv ? kv_json(kv) : NULL;
    const char *node = json_string_value(json_object_get(v, "node"));
    uint64_t waited = sy_now_ms() - f->started_ms;
    if (node == NULL || node[0] == '\0') {
        json_decref(v);
        if (waited < 2 * (uint64_t)sy_cluster_lease_ttl_ms(f->ca->c)) {   /* an election may be under way */
            schedule_poll(f);
            return;
        }
        snprintf(msg, sizeof msg, "no node owns the synchronization of %s now (an owner that died is replaced "
                 "within about a lease; or no node has the pair's objects): '%s' cannot run", f->pair, f->cmd);
        forward_end(f, NULL, "no_owner", msg);
        return;
    }
    if (strcmp(node, sy_cluster_node(f->ca->c)) == 0) {
        json_decref(v);
        if (runs_here(f->p)) {                     /* this node took the pair over meanwhile: run it here */
            sy_admin_call(f->ca->a, f->cmd, f->args, on_local_reply, f);
            return;
        }
        if (waited < TAKEOVER_WAIT_MS) {
            schedule_poll(f);
            return;
        }
        snprintf(msg, sizeof msg, "this node owns %s but has not opened its instances within %d s (see "
                 "sync_owner.takeover_error in status): '%s' was not run", f->pair, TAKEOVER_WAIT_MS / 1000, f->cmd);
        forward_end(f, NULL, "bad_state", msg);
        return;
    }
    if (export_refused(f->cmd, f->args)) {
        /* the owner would write the file on its own filesystem, under its uid: never what the caller asked */
        const char *sock = json_string_value(json_object_get(v, "admin_socket"));
        snprintf(msg, sizeof msg, "resolve-tail --export writes FILE on the node that runs it, and node %s owns "
                 "the synchronization of %s (this node is %s): run it on node %s (switchyardctl -s %s "
                 "resolve-tail %s --export FILE) or use --discard; nothing was sent", node, f->pair,
                 sy_cluster_node(f->ca->c), node, sock && sock[0] ? sock : "<its admin socket>", f->pair);
        json_decref(v);
        forward_end(f, NULL, "bad_request", msg);
        return;
    }
    snprintf(f->to, sizeof f->to, "%s", node);
    json_decref(v);
    json_t *rq = json_pack("{s:s,s:s,s:s,s:s,s:O}", "id", f->id, "from", sy_cluster_node(f->ca->c), "to", f->to,
                           "cmd", f->cmd, "args", f->args);
    char *text = rq ? json_dumps(rq, JSON_COMPACT) : NULL;
    json_decref(rq);
    int64_t lease = sy_cluster_lease(f->ca->c);
    if (lease == 0) {
        free(text);
        snprintf(msg, sizeof msg, "this node is not registered in etcd now (no lease): '%s' was not sent to "
                 "node %s, the owner of %s", f->cmd, f->to, f->pair);
        f->to[0] = '\0';
        forward_end(f, NULL, "owner_unreachable", msg);
        return;
    }
    /* created only once: a put etcd.c sends again (the first may have been applied) changes nothing */
    struct sy_etcd_txn t;
    sy_etcd_txn_init(&t);
    sy_etcd_txn_compare(&t, f->req_key, SY_ETCD_CREATE, 0);
    sy_etcd_txn_put(&t, SY_ETCD_SUCCESS, f->req_key, text, lease);
    free(text);
    if (sy_etcd_txn_post(f->ca->etcd, &t, on_sent, f) != 0) {
        f->to[0] = '\0';
        forward_end(f, NULL, "internal", "out of memory");
        return;
    }
    f->busy = true;
}

/* Reads the owner key (on_owner sends the request, waits, or answers). */
static void lookup_owner(struct forward *f)
{
    char *k = sy_etcd_b64(f->owner_key, strlen(f->owner_key));
    json_t *body = k ? json_pack("{s:s}", "key", k) : NULL;
    free(k);
    if (body == NULL || sy_etcd_post(f->ca->etcd, "/v3/kv/range", body, on_owner, f) != 0) {
        forward_end(f, NULL, "internal", "out of memory");
        return;
    }
    f->busy = true;
}

bool sy_cluster_admin_forward(struct sy_cluster_admin *ca, struct sy_pair *p, struct sy_admin_req *req, json_t *args)
{
    if (ca == NULL || runs_here(p))
        return false;
    struct forward *f = calloc(1, sizeof *f);
    if (f == NULL || (f->poll = evtimer_new(p->base, on_poll, f)) == NULL) {
        free(f);
        sy_admin_fail(req, "internal", "out of memory");
        return true;
    }
    f->ca = ca;
    f->req = req;
    f->args = args ? json_deep_copy(args) : json_object();
    f->started_ms = sy_now_ms();
    snprintf(f->pair, sizeof f->pair, "%s", p->cfg->name);
    snprintf(f->cmd, sizeof f->cmd, "%s", sy_admin_req_cmd(req));
    snprintf(f->id, sizeof f->id, "%s-%d-%" PRIu64, sy_cluster_node(ca->c), (int)getpid(), ++ca->next_id);
    snprintf(f->owner_key, sizeof f->owner_key, "%spairs/%s/owner", SY_CLUSTER_PREFIX, f->pair);
    snprintf(f->req_key, sizeof f->req_key, "%spairs/%s/requests/%s", SY_CLUSTER_PREFIX, f->pair, f->id);
    snprintf(f->reply_key, sizeof f->reply_key, "%spairs/%s/replies/%s", SY_CLUSTER_PREFIX, f->pair, f->id);
    f->p = p;
    f->next = ca->forwards;
    ca->forwards = f;
    lookup_owner(f);
    return true;
}

/* ---- the owner ---------------------------------------------------------------------------------- */

static void served_free(struct served *s)
{
    if (s->ca != NULL) {
        struct served **pp = &s->ca->served;
        while (*pp && *pp != s)
            pp = &(*pp)->next;
        if (*pp)
            *pp = s->next;
    }
    if (s->retry)
        event_free(s->retry);
    json_decref(s->args);
    free(s);
}

static void on_served(json_t *reply, void *arg)
{
    struct served *s = arg;
    if (s->ca == NULL) {                           /* answered after sy_cluster_admin_free */
        served_free(s);
        return;
    }
    char *text = json_dumps(reply, JSON_COMPACT);
    json_t *body = text ? put_body(s->reply_key, text, sy_cluster_lease(s->ca->c)) : NULL;
    free(text);
    if (body == NULL || sy_etcd_post(s->ca->etcd, "/v3/kv/put", body, ignore, s->ca) != 0)
        sy_log_error("cluster admin: cannot put the reply %s", s->reply_key);
    served_free(s);
}

/* Runs a request sent to this node once its instances are open (at once, unless a takeover runs). */
static void serve(evutil_socket_t fd, short what, void *arg)
{
    struct served *s = arg;
    if (runs_here(s->p)) {
        s->running = true;
        sy_admin_call(s->ca->a, s->cmd, s->args, on_served, s);
        return;
    }
    bool owner = s->p->election != NULL && sy_election_is_owner(s->p->election);
    if (s->p->sync_open && !owner) {               /* stepped down, its instances closing: not the owner */
        char msg[400];
        snprintf(msg, sizeof msg, "node %s no longer owns %s (it stepped down; its instances are closing): '%s' "
                 "was not run; give it again (it goes to the new owner)",
                 sy_cluster_node(s->ca->c), s->p->cfg->name, s->cmd);
        json_t *r = json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code", "owner_lost", "message", msg);
        on_served(r, s);
        json_decref(r);
        return;
    }
    /* the owner taking the pair over (or closing the instances of its previous ownership first) */
    if (sy_now_ms() - s->since_ms < TAKEOVER_WAIT_MS && s->retry != NULL) {
        struct timeval tv = { 0, 200 * 1000 };
        event_add(s->retry, &tv);
        return;
    }
    json_t *r = json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code", "bad_state", "message",
                          "the owner has not opened the pair's instances (a takeover that does not end: see "
                          "sync_owner.takeover_error in its status): the command was not run");
    on_served(r, s);
    json_decref(r);
}

/* true the first time id is seen (then it is remembered) */
static bool take_id(struct sy_cluster_admin *ca, const char *id)
{
    for (size_t i = 0; i < SERVED_IDS; i++)
        if (strcmp(ca->served_ids[i], id) == 0)
            return false;
    snprintf(ca->served_ids[ca->served_at], sizeof ca->served_ids[0], "%s", id);
    ca->served_at = (ca->served_at + 1) % SERVED_IDS;
    return true;
}

/* Runs the request v (a requests/ value) if it is addressed to this node and was not taken before. */
static void take_request(struct pair_watch *pw, json_t *v)
{
    struct sy_cluster_admin *ca = pw->ca;
    const char *to = json_string_value(json_object_get(v, "to")), *id = json_string_value(json_object_get(v, "id"));
    const char *cmd = json_string_value(json_object_get(v, "cmd"));
    json_t *args = json_object_get(v, "args");
    if (to == NULL || id == NULL || cmd == NULL || strcmp(to, sy_cluster_node(ca->c)) != 0 ||
        strchr(id, '/') || strlen(id) >= sizeof ca->served_ids[0])
        return;                                    /* another node's (or not ours to read) */
    if (!take_id(ca, id)) {
        sy_log_debug("cluster admin: request %s for %s seen again: it runs once", id, pw->p->cfg->name);
        return;
    }
    struct served *s = calloc(1, sizeof *s);
    if (s == NULL || (s->retry = evtimer_new(pw->p->base, serve, s)) == NULL) {
        free(s);
        return;
    }
    s->ca = ca;
    s->p = pw->p;
    s->since_ms = sy_now_ms();
    s->args = json_is_object(args) ? json_incref(args) : json_object();
    snprintf(s->cmd, sizeof s->cmd, "%s", cmd);
    snprintf(s->reply_key, sizeof s->reply_key, "%spairs/%s/replies/%s", SY_CLUSTER_PREFIX, pw->p->cfg->name, id);
    s->next = ca->served;
    ca->served = s;
    const char *from = json_string_value(json_object_get(v, "from")) ?: "?";
    if (export_refused(cmd, s->args)) {
        sy_log_warn("cluster admin: '%s --export' for %s from node %s (request %s) refused: a forwarded command "
                    "never writes a file on this node", cmd, pw->p->cfg->name, from, id);
        json_t *r = json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code", "bad_request", "message",
                              "resolve-tail --export is never run for another node (it writes FILE on the node "
                              "that runs it): run it on the owner's own admin socket, or use --discard");
        on_served(r, s);
        json_decref(r);
        return;
    }
    sy_log_info("cluster admin: '%s' for %s from node %s (request %s)", cmd, pw->p->cfg->name, from, id);
    serve(-1, 0, s);
}

static void on_request(void *arg, json_t *kv, bool deleted, int64_t rev)
{
    if (deleted)
        return;
    const char *cr = json_string_value(json_object_get(kv, "create_revision"));
    const char *mr = json_string_value(json_object_get(kv, "mod_revision"));
    if (cr == NULL || mr == NULL || strcmp(cr, mr) != 0)
        return;                                    /* put again: run (or skipped) when it was created */
    json_t *v = kv_json(kv);
    take_request(arg, v);
    json_decref(v);
}

/* The key's last path element ("<id>" of ".../replies/<id>"), malloc'ed (NULL: none). */
static char *kv_id(json_t *kv)
{
    size_t len = 0;
    char *key = sy_etcd_unb64(json_string_value(json_object_get(kv, "key")) ?: "", &len);
    char *slash = key ? strrchr(key, '/') : NULL;
    char *id = slash ? strdup(slash + 1) : NULL;
    free(key);
    return id;
}

static void on_pending(void *arg, json_t *reply, const char *err)
{
    struct pair_watch *pw = arg;
    if (reply == NULL) {
        sy_log_warn("cluster admin: cannot read the requests of %s after its watch was made again: %s",
                    pw->p->cfg->name, err);
        return;
    }
    json_t *rs = json_object_get(reply, "responses");
    json_t *reqs = json_object_get(json_object_get(json_array_get(rs, 0), "response_range"), "kvs");
    json_t *replies = json_object_get(json_object_get(json_array_get(rs, 1), "response_range"), "kvs");
    json_t *kv, *rkv;
    size_t i, j;
    json_array_foreach(reqs, i, kv) {
        char *id = kv_id(kv);
        bool answered = id == NULL;
        json_array_foreach(replies, j, rkv) {
            char *rid = answered ? NULL : kv_id(rkv);
            answered = answered || (rid != NULL && strcmp(rid, id) == 0);
            free(rid);
        }
        free(id);
        if (answered)
            continue;
        json_t *v = kv_json(kv);
        take_request(pw, v);
        json_decref(v);
    }
}

/* The requests/ watch was made again: a request it missed (compacted away) is read and run now. */
static void on_watch_remade(void *arg)
{
    struct pair_watch *pw = arg;
    char rq[240], rp[240];
    snprintf(rq, sizeof rq, "%spairs/%s/requests/", SY_CLUSTER_PREFIX, pw->p->cfg->name);
    snprintf(rp, sizeof rp, "%spairs/%s/replies/", SY_CLUSTER_PREFIX, pw->p->cfg->name);
    struct sy_etcd_txn t;
    sy_etcd_txn_init(&t);
    sy_etcd_txn_range_prefix(&t, SY_ETCD_SUCCESS, rq, false);
    sy_etcd_txn_range_prefix(&t, SY_ETCD_SUCCESS, rp, true);
    if (sy_etcd_txn_post(pw->ca->etcd, &t, on_pending, pw) != 0)
        sy_log_error("cluster admin: cannot read the requests of %s: out of memory", pw->p->cfg->name);
}

struct sy_cluster_admin *sy_cluster_admin_start(struct sy_cluster *c, struct sy_admin *a, struct sy_pair *pairs,
                                                size_t n)
{
    struct sy_cluster_admin *ca = calloc(1, sizeof *ca);
    if (ca == NULL || (ca->watches = calloc(n ? n : 1, sizeof *ca->watches)) == NULL) {
        free(ca);
        return NULL;
    }
    ca->c = c;
    ca->etcd = sy_cluster_etcd(c);
    ca->a = a;
    ca->n = n;
    for (size_t i = 0; i < n; i++) {
        struct pair_watch *pw = &ca->watches[i];
        pw->ca = ca;
        pw->p = &pairs[i];
        if (pairs[i].election == NULL)
            continue;                              /* never the owner: nothing is sent here */
        char key[240];
        snprintf(key, sizeof key, "%spairs/%s/requests/", SY_CLUSTER_PREFIX, pairs[i].cfg->name);
        if ((pw->watch = sy_etcd_watch_start(ca->etcd, key, true, 0, on_request, pw)) == NULL) {
            sy_cluster_admin_free(ca);
            return NULL;
        }
        sy_etcd_watch_on_remade(pw->watch, on_watch_remade);
    }
    return ca;
}

void sy_cluster_admin_free(struct sy_cluster_admin *ca)
{
    if (ca == NULL)
        return;
    while (ca->forwards != NULL) {
        struct forward *f = ca->forwards;
        sy_admin_fail(f->req, "shutting_down", "switchyardd is shutting down: the reply of node %s to '%s' will "
                      "not be relayed (check status)", f->to[0] ? f->to : "?", f->cmd);
        f->req = NULL;
        forward_free(f);
    }
    while (ca->served != NULL) {
        struct served *s = ca->served;
        ca->served = s->next;
        s->ca = NULL;                              /* unlinked: on_served frees it without a reply */
        if (!s->running)
            served_free(s);
    }
    for (size_t i = 0; i < ca->n; i++) {
        sy_etcd_forget(ca->etcd, &ca->watches[i]);
        sy_etcd_watch_free(ca->watches[i].watch);
    }
    sy_etcd_forget(ca->etcd, ca);
    free(ca->watches);
    free(ca);
}
