/* Daemon wiring: loop, signals, admin socket and the pair-level admin commands. Instance commands
 * (precheck, create-reverse, switchover, ...) answer not_implemented until their modules exist. */
#include "core/daemon.h"
#include "core/engine.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <systemd/sd-daemon.h>

#include "core/admin.h"
#include "core/cluster.h"
#include "core/collect.h"
#include "core/comma_list.h"
#include "core/log.h"
#include "core/loop_pool.h"
#include "core/shared_epoch.h"
#include "core/cluster_switch.h"
#include "core/election.h"
#include "core/etcd.h"
#include "core/cluster_admin.h"
#include "core/cluster_held.h"
#include "core/cluster_tail.h"
#include "core/takeover.h"
#include "core/state_file.h"
#include "core/fence_keeper.h"
#include "core/switch.h"
#include "core/tail.h"
#include "core/metrics.h"
#include "core/ownership.h"
#include "core/console.h"

struct daemon {
    const struct sy_config *cfg;  /* ref: main's */
    const struct sy_engine_ops *const *engines; /* ref: static list of the built engines */
    struct event_base *base;      /* owned */
    struct sy_admin *admin;       /* owned */
    struct sy_metrics *metrics;   /* owned; NULL unless `metrics` is set */
    struct sy_console *console;   /* owned; NULL unless `console` is set */
    struct sy_pair *pairs;        /* owned array of cfg->n_pairs */
    size_t n_started;             /* pairs[0..n_started) were started and must be stopped */
    struct sy_cluster *cluster;   /* owned; NULL without [cluster] */
    struct sy_loop_pool *pool;    /* owned: proxy_threads > 1 worker loops (the MariaDB proxies' sessions);
                                     freed after every pair stopped */
    struct sy_cluster_admin *cadmin; /* owned; NULL without [cluster]: commands for pairs owned elsewhere */
    struct event *owner_check;    /* owned (with elections): starts a takeover that failed or was deferred
                                     again, closes the instances of a node that stepped down during a switch */
    struct sy_module_sockets *verify_sockets; /* owned: the database sockets of running `verify` commands,
                                     shut down at the stop (a verify reads only: it is cut, not waited for) */
    int verify_stop;              /* __atomic: set at the stop: a verify waiting for the writer gives up */
};

static struct sy_pair *find_pair(struct daemon *d, const char *name)
{
    for (size_t i = 0; name && i < d->n_started; i++)
        if (strcmp(d->pairs[i].cfg->name, name) == 0)
            return &d->pairs[i];
    return NULL;
}

/* The named pair, or NULL after answering unknown_pair / usage. */
static struct sy_pair *pair_arg(struct sy_admin_req *req, json_t *args, struct daemon *d)
{
    const char *name = sy_admin_arg_str(args, "pair");
    if (name == NULL) {
        sy_admin_fail(req, "bad_request", "missing argument: pair");
        return NULL;
    }
    struct sy_pair *p = find_pair(d, name);
    if (p == NULL)
        sy_admin_fail(req, "unknown_pair", "no pair named '%s'", name);
    return p;
}

/* In a cluster, a command that needs the pair's synchronization runs on the pair's owner: sent there when
 * this node does not run the instances (true: req is answered later with the owner's reply). This node
 * owning the pair but still taking it over never sends to itself: it answers bad_state at once. */
static bool on_owner(struct daemon *d, struct sy_pair *p, struct sy_admin_req *req, json_t *args)
{
    if (d->cadmin != NULL && (!p->sync_open || p->sync_closing) && p->election != NULL &&
        sy_election_is_owner(p->election)) {
        sy_admin_fail(req, "bad_state", "pair %s: this node owns it but has not opened its instances yet "
                      "(%s%s%s)", p->cfg->name,
                      p->sync_closing ? "closing the instances of its previous ownership first" : "taking it over",
                      p->takeover_error[0] ? ": " : "", p->takeover_error);
        return true;
    }
    return d->cadmin != NULL && sy_cluster_admin_forward(d->cadmin, p, req, args);
}

/* The pair an INSTANCE argument ("orders/forward") names, or NULL. */
static struct sy_pair *instance_pair(struct daemon *d, json_t *args)
{
    const char *id = sy_admin_arg_str(args, "instance");
    if (id == NULL)
        return NULL;
    const char *slash = strchr(id, '/');
    char name[64];
    snprintf(name, sizeof name, "%.*s", slash ? (int)(slash - id) : (int)strlen(id), id);
    return find_pair(d, name);
}

/* An instance command whose pair is owned by another node: sent there (true). */
static bool instance_on_owner(struct daemon *d, struct sy_admin_req *req, json_t *args)
{
    struct sy_pair *p = instance_pair(d, args);
    return p != NULL && on_owner(d, p, req, args);
}

static void cmd_status(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct daemon *d = ctx;
    const char *name = sy_admin_arg_str(args, "pair");
    json_t *pairs = json_array();
    for (size_t i = 0; i < d->n_started; i++)
        if (name == NULL || strcmp(name, d->pairs[i].cfg->name) == 0)
            json_array_append_new(pairs, sy_pair_status_json(&d->pairs[i]));
    if (name != NULL && json_array_size(pairs) == 0) {
        json_decref(pairs);
        sy_admin_fail(req, "unknown_pair", "no pair named '%s'", name);
        return;
    }
    json_t *out = json_pack("{s:o}", "pairs", pairs);
    if (d->cluster != NULL)
        json_object_set_new(out, "cluster", sy_cluster_status_json(d->cluster));
    sy_admin_ok(req, out);
}

/* What this node applied, for its cluster registration: every pair's epoch and active side. */
static json_t *cluster_state(void *arg)
{
    struct daemon *d = arg;
    json_t *pairs = json_object();
    for (size_t i = 0; i < d->n_started; i++)
        json_object_set_new(pairs, d->pairs[i].cfg->name,
                            json_pack("{s:I,s:s}", "epoch", (json_int_t)d->pairs[i].epoch, "active",
                                      sy_side_name(d->pairs[i].active_side)));
    return json_pack("{s:o}", "pairs", pairs);
}

static void cmd_clients(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct sy_pair *p = pair_arg(req, args, ctx);
    if (p != NULL)
        sy_admin_ok(req, json_pack("{s:s,s:o}", "pair", p->cfg->name, "clients",
                                   p->proto->clients_json(p->proto_state)));
}

/* While a switch runs, the hold and the instances are its own: refused (true) with bad_state. */
static bool refuse_while_switching(struct sy_admin_req *req, const struct sy_pair *p)
{
    if (p->op == NULL)
        return false;
    sy_admin_fail(req, "bad_state", "a switch of %s is running: '%s' waits until it is done", p->cfg->name,
                  sy_admin_req_cmd(req));
    return true;
}

static void cmd_hold(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct sy_pair *p = pair_arg(req, args, ctx);
    if (p == NULL || refuse_while_switching(req, p))
        return;
    sy_pair_hold(p);
    sy_admin_ok(req, json_pack("{s:s,s:b,s:i}", "pair", p->cfg->name, "held", 1, "max_hold_ms",
                               p->cfg->max_hold_ms));
}

static void cmd_release(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct sy_pair *p = pair_arg(req, args, ctx);
    if (p == NULL || refuse_while_switching(req, p))
        return;
    if (p->cut_off) {
        sy_admin_fail(req, "bad_state", "%s is held until etcd confirms the cluster's epoch (this node has just "
                      "started, or lost etcd for longer than its lease): it is released when etcd answers",
                      p->cfg->name);
        return;
    }
    uint64_t held_ms = p->held ? sy_now_ms() - p->hold_started_ms : 0;
    bool was_held = p->held;
    sy_pair_release(p, "release command");
    sy_admin_ok(req, json_pack("{s:s,s:b,s:b,s:I}", "pair", p->cfg->name, "held", 0, "was_held", was_held,
                               "held_ms", (json_int_t)held_ms));
}

/* "orders/forward" -> the instance, or NULL after answering unknown_instance / unknown_pair. */
static struct sy_instance *instance_arg(struct sy_admin_req *req, json_t *args, struct daemon *d)
{
    const char *id = sy_admin_arg_str(args, "instance");
    if (id == NULL) {
        sy_admin_fail(req, "bad_request", "missing argument: instance (PAIR/forward or PAIR/reverse)");
        return NULL;
    }
    const char *slash = strchr(id, '/');
    char name[64];
    snprintf(name, sizeof name, "%.*s", slash ? (int)(slash - id) : (int)strlen(id), id);
    struct sy_pair *p = find_pair(d, name);
    if (p == NULL) {
        sy_admin_fail(req, "unknown_pair", "no pair named '%s'", name);
        return NULL;
    }
    struct sy_instance *in = NULL;
    if (slash && strcmp(slash + 1, "forward") == 0)
        in = p->forward;
    else if (slash && strcmp(slash + 1, "reverse") == 0)
        in = p->reverse;
    if (in == NULL)
        sy_admin_fail(req, "unknown_instance", "no instance '%s'%s", id,
                      slash && strcmp(slash + 1, "forward") == 0 ? " (the pair has no objects to synchronize)" : "");
    return in;
}

static void cmd_lag_history(struct sy_admin_req *req, json_t *args, void *ctx)
{
    if (instance_on_owner(ctx, req, args))
        return;
    struct sy_instance *in = instance_arg(req, args, ctx);
    if (in != NULL)
        sy_admin_ok(req, sy_instance_lag_history_json(in));
}

/* Every SY_LAG_SAMPLE_S: each instance's write lag into its hour of history (lag-history, the console). */
static void on_lag_sample(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    uint64_t now = sy_wall_ms();
    for (size_t i = 0; i < d->n_started; i++) {
        if (d->pairs[i].forward != NULL)
            sy_instance_sample_lag(d->pairs[i].forward, now);
        if (d->pairs[i].reverse != NULL)
            sy_instance_sample_lag(d->pairs[i].reverse, now);
    }
}

typedef int (*instance_op_fn)(struct sy_instance *, const char **, char *, size_t);

/* In a cluster, a pause, start or terminate is kept in etcd (core/cluster_held.h) before it is answered:
 * a new owner keeps the instance paused or terminated. */
struct held_put {
    struct sy_admin_req *req;
    json_t *reply;                 /* owned: the instance's state, answered once etcd has it */
    char what[16];                 /* "paused", "" (start: the key is deleted) */
    char id[96];
};

static void on_held_put(void *arg, json_t *reply, const char *err)
{
    struct held_put *h = arg;
    if (reply != NULL && sy_cluster_held_recorded(reply)) {
        sy_admin_ok(h->req, h->reply);
        free(h);
        return;
    }
    if (reply != NULL || strcmp(err, "owner_lost") == 0)
        sy_admin_fail(h->req, "owner_lost", "%s is %s on this node, but this node no longer owns the pair: etcd "
                      "did not record it; give the command again (it goes to the new owner)", h->id,
                      h->what[0] ? h->what : "started");
    else if (h->what[0])
        sy_admin_fail(h->req, "etcd_unreachable", "%s is %s on this node, but etcd did not record it (%s): a node "
                      "that takes the pair over would run it; give pause again once etcd answers", h->id, h->what,
                      err);
    else
        sy_admin_fail(h->req, "etcd_unreachable", "%s started on this node, but etcd did not record it (%s): a node "
                      "that takes the pair over would keep it paused; pause and start it again once etcd answers",
                      h->id, err);
    json_decref(h->reply);
    free(h);
}

/* Answers reply (owned) once etcd recorded the instance's held state (held: "paused"; NULL: deleted), at
 * once outside a cluster. */
static void reply_after_held(struct sy_admin_req *req, struct sy_instance *in, const char *held, json_t *reply)
{
    const struct sy_pair *p = sy_instance_pair(in);
    struct held_put *h = p->election != NULL ? calloc(1, sizeof *h) : NULL;
    if (h == NULL) {
        sy_admin_ok(req, reply);
        return;
    }
    *h = (struct held_put){ .req = req, .reply = reply };
    snprintf(h->what, sizeof h->what, "%s", held ? held : "");
    snprintf(h->id, sizeof h->id, "%s", sy_instance_id(in));
    uint64_t token = sy_election_owner_token(p->election);
    struct sy_etcd *e = sy_election_etcd(p->election);
    const char *node = sy_election_node(p->election);
    if (token == 0)
        on_held_put(h, NULL, "owner_lost");
    else if (sy_cluster_held_put(e, p->cfg->name, sy_instance_direction(in), held, node, token, 0, on_held_put,
                                 h) != 0)
        on_held_put(h, NULL, "out of memory");
}

static json_t *instance_state_json(const struct sy_instance *in)
{
    return json_pack("{s:s,s:s}", "instance", sy_instance_id(in), "state",
                     sy_instance_state_name(sy_instance_state(in)));
}

/* Answers a command done on in: at once, or once etcd recorded what it left (held, with an election);
 * recorded: etcd has it already. */
static void answer_instance_cmd(struct sy_admin_req *req, struct sy_instance *in, const char *held, bool recorded)
{
    if (recorded || sy_instance_pair(in)->election == NULL)
        sy_admin_ok(req, instance_state_json(in));
    else
        reply_after_held(req, in, held, instance_state_json(in));
}

struct settled_cmd {
    struct sy_admin_req *req;
    const char *held;              /* ref: a literal */
    bool recorded;
};

/* A pause or terminate whose threads are still finishing is answered once they are (the loop serves
 * everything else meanwhile); shutdown waits for it like for a worker thread. */
static void reply_held_when_settled(void *arg, struct sy_instance *in)
{
    struct settled_cmd *sc = arg;
    answer_instance_cmd(sc->req, in, sc->held, sc->recorded);
    free(sc);
    sy_admin_job_end();
}

/* Runs op on in and answers as answer_instance_cmd once its threads settled. */
static void run_instance_op(struct sy_admin_req *req, struct sy_instance *in, instance_op_fn op, const char *held,
                            bool recorded)
{
    const char *code = "bad_state";
    char msg[512];
    if (op(in, &code, msg, sizeof msg) != 0) {
        sy_admin_fail(req, code, "%s", msg);
        return;
    }
    struct settled_cmd *sc = sy_instance_state(in) == SY_INST_STOPPING ? calloc(1, sizeof *sc) : NULL;
    if (sc == NULL) {
        answer_instance_cmd(req, in, held, recorded);
        return;
    }
    *sc = (struct settled_cmd){ .req = req, .held = held, .recorded = recorded };
    sy_admin_job_begin();
    sy_instance_when_settled(in, reply_held_when_settled, sc);
}

/* held: what the command leaves the instance in, kept in etcd ("paused"; NULL: start) */
static void instance_cmd(struct sy_admin_req *req, json_t *args, struct daemon *d, instance_op_fn op,
                         const char *held)
{
    if (instance_on_owner(d, req, args))
        return;
    struct sy_instance *in = instance_arg(req, args, d);
    if (in == NULL || refuse_while_switching(req, sy_instance_pair(in)))
        return;
    if (sy_instance_pair(in)->terminating[sy_instance_direction(in) == SY_DIR_FORWARD ? 0 : 1]) {
        sy_admin_fail(req, "bad_state", "a terminate of %s waits for etcd: '%s' would undo it", sy_instance_id(in),
                      sy_admin_req_cmd(req));
        return;
    }
    run_instance_op(req, in, op, held, false);
}

static void cmd_pause(struct sy_admin_req *req, json_t *args, void *ctx)
{
    instance_cmd(req, args, ctx, sy_instance_pause, "paused");
}

/* A forward instance started while a failover's tail is unresolved would collect that tail (and a
 * switchback would replay it into DR): refused until resolve-tail decides. */
static int start_unless_tail(struct sy_instance *in, const char **code, char *msg, size_t msglen)
{
    const struct sy_pair *p = sy_instance_pair(in);
    if (sy_instance_direction(in) == SY_DIR_FORWARD && p->tail_state[0] != '\0') {
        *code = "tail_unresolved";
        snprintf(msg, msglen, "the unreplicated tail of the last failover of %s is %s: started now, %s would "
                 "collect it; run `switchyardctl resolve-tail %s --export FILE | --discard` first", p->cfg->name,
                 p->tail_state, sy_instance_id(in), p->cfg->name);
        return -1;
    }
    return sy_instance_start(in, code, msg, msglen);
}

static void cmd_start(struct sy_admin_req *req, json_t *args, void *ctx)
{
    instance_cmd(req, args, ctx, start_unless_tail, NULL);
}

/* A terminate with an election is recorded in etcd first, then done: a terminated instance cannot be
 * started again, so one done here but not recorded (etcd down) could not be given again, and a node taking
 * the pair over would run it. Also for a reverse instance whose takeover is pending (not open here: its
 * destination did not answer): the way out of a takeover that cannot succeed. */
struct terminate_put {
    struct sy_admin_req *req;
    struct sy_pair *p;
    enum sy_direction dir;
    uint64_t owner_token;          /* the pair's when the command came */
    char id[96];
};


static void on_terminate_recorded(void *arg, json_t *reply, const char *err)
{
    struct terminate_put *t = arg;
    struct sy_pair *p = t->p;
    p->terminating[t->dir == SY_DIR_FORWARD ? 0 : 1] = false;
    if (t->dir == SY_DIR_REVERSE)
        p->reverse_writing = false;
    /* a reverse terminate etcd did not write because an earlier send of it (timed out, applied later)
     * did: done all the same */
    bool landed = reply != NULL && !sy_cluster_held_recorded(reply) && t->dir == SY_DIR_REVERSE &&
                  sy_cluster_terminate_landed(reply);
    if (landed)
        sy_log_info("%s: etcd holds it terminated already (an earlier send of the terminate): done", t->id);
    if (reply == NULL) {                        /* a request that timed out may still be applied later */
        sy_admin_fail(t->req, "etcd_unreachable", "etcd did not answer the terminate of %s (%s): it was not "
                      "terminated on this node, but etcd may still record it (then a node taking the pair over "
                      "keeps it terminated); give it again once etcd answers", t->id, err);
        free(t);
        return;
    }
    if (!landed && !sy_cluster_held_recorded(reply)) {
        sy_admin_fail(t->req, "owner_lost", "etcd did not record the terminate of %s (%s): nothing was terminated; "
                      "check status and give it again (it goes to the owner)", t->id,
                      t->dir == SY_DIR_REVERSE ? "this node no longer owns the pair, or the reverse instance's "
                                                 "record changed meanwhile: another create-reverse"
                                               : "this node no longer owns the pair");
        free(t);
        return;
    }
    struct sy_instance *in = t->dir == SY_DIR_FORWARD ? p->forward : p->reverse;
    if (t->dir == SY_DIR_REVERSE && p->owner_token == t->owner_token) {
        p->reverse_record[0] = '\0';
        if (p->reverse_later) {            /* its pending takeover ends: etcd no longer records it */
            p->reverse_later = false;
            sy_ownership_takeover_succeeded(p);
            sy_log_info("%s: terminated while its takeover was pending: not taken over", t->id);
        }
    }
    const char *code;
    char msg[512];
    if (in == NULL || !p->sync_open || p->sync_closing || p->owner_token != t->owner_token ||
        sy_instance_may_terminate(in, &code, msg, sizeof msg) != 0)
        sy_admin_ok(t->req, json_pack("{s:s,s:s}", "instance", t->id, "state", "terminated"));
    else
        run_instance_op(t->req, in, sy_instance_terminate, NULL, true);
    free(t);
}

static void cmd_terminate(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct daemon *d = ctx;
    struct sy_pair *p = instance_pair(d, args);
    if (p == NULL || p->election == NULL) {
        instance_cmd(req, args, d, sy_instance_terminate, NULL);
        return;
    }
    if (on_owner(d, p, req, args))
        return;
    const char *slash = strchr(sy_admin_arg_str(args, "instance"), '/');
    bool reverse = slash != NULL && strcmp(slash, "/reverse") == 0;
    struct sy_instance *in = NULL;
    /* a reverse instance not open here that etcd may record (its takeover pending, or made after the record
     * failed): terminated in etcd only */
    bool recorded_only = reverse && p->reverse == NULL && (p->reverse_later || p->reverse_record[0] != '\0');
    if (!recorded_only && (in = instance_arg(req, args, d)) == NULL)
        return;
    if (refuse_while_switching(req, p))
        return;
    const char *code = "bad_state";
    char msg[512];
    if (in != NULL && sy_instance_may_terminate(in, &code, msg, sizeof msg) != 0) {
        sy_admin_fail(req, code, "%s", msg);
        return;
    }
    if (p->terminating[reverse ? 1 : 0] || (reverse && p->reverse_writing)) {
        sy_admin_fail(req, "bad_state", "a create-reverse or terminate of %s/reverse waits for etcd: give it "
                      "again in a moment", p->cfg->name);
        return;
    }
    struct terminate_put *t = calloc(1, sizeof *t);
    if (t == NULL) {
        sy_admin_fail(req, "internal", "out of memory");
        return;
    }
    *t = (struct terminate_put){ .req = req, .p = p, .dir = reverse ? SY_DIR_REVERSE : SY_DIR_FORWARD,
                                 .owner_token = p->owner_token };
    snprintf(t->id, sizeof t->id, "%s/%s", p->cfg->name, reverse ? "reverse" : "forward");
    if (sy_cluster_held_put(sy_election_etcd(p->election), p->cfg->name, t->dir, "terminated",
                            sy_election_node(p->election), p->owner_token, reverse ? p->reverse_record : NULL,
                            on_terminate_recorded, t) != 0) {
        free(t);
        sy_admin_fail(req, "owner_lost", "this node no longer owns %s: give terminate again (it goes to the "
                      "new owner)", p->cfg->name);
        return;
    }
    p->terminating[reverse ? 1 : 0] = true;
    if (reverse)
        p->reverse_writing = true;
}

/* The engine's ops when its synchronization is built (sy_engine_can_sync), else NULL. */
static const struct sy_engine_ops *find_engine(const struct daemon *d, enum sy_engine e)
{
    for (size_t i = 0; d->engines[i] != NULL; i++)
        if (d->engines[i]->engine == e)
            return sy_engine_can_sync(d->engines[i]) ? d->engines[i] : NULL;
    return NULL;
}

/* precheck runs blocking checks against both databases: on a thread, answered when done. */
struct precheck_job {
    struct sy_admin_req *req;
    struct daemon *d;
    const struct sy_pair_cfg *cfg;
    enum sy_direction dir;
    char direction[16];
    const struct sy_engine_ops *eng;
    json_t *checks;
    int rc;
    struct event *done;
    struct sy_pair *pair;       /* switchover: both directions, then the readiness checks */
};

/* The database checks of one direction, names prefixed ("forward:binlog_format"). */
static int precheck_direction(struct precheck_job *job, enum sy_direction dir, const char *prefix)
{
    json_t *checks = json_array();
    int rc = job->eng->sync->precheck(job->cfg, dir, checks);
    size_t i;
    json_t *c;
    json_array_foreach(checks, i, c) {
        char name[160];
        snprintf(name, sizeof name, "%s:%s", prefix, json_string_value(json_object_get(c, "name")) ?: "?");
        json_object_set_new(c, "name", json_string(name));
        json_array_append(job->checks, c);
    }
    json_decref(checks);
    return rc;
}

static void *precheck_thread(void *arg)
{
    struct precheck_job *job = arg;
    if (job->pair != NULL)
        job->rc = precheck_direction(job, SY_DIR_FORWARD, "forward") | precheck_direction(job, SY_DIR_REVERSE, "reverse");
    else
        job->rc = job->eng->sync->precheck(job->cfg, job->dir, job->checks);
    event_active(job->done, 0, 0);
    sy_admin_job_end(); /* last touch of shared state */
    return NULL;
}

static void on_precheck_done(evutil_socket_t fd, short what, void *arg)
{
    struct precheck_job *job = arg;
    if (job->pair != NULL) {
        json_t *ready = sy_switch_readiness(job->pair);
        size_t i;
        json_t *c;
        json_array_foreach(ready, i, c) {
            if (strcmp(json_string_value(json_object_get(c, "status")), "fail") == 0)
                job->rc = 1;
        }
        json_array_extend(job->checks, ready);
        json_decref(ready);
    }
    sy_admin_ok(job->req, json_pack("{s:s,s:s,s:b,s:o}", "pair", job->cfg->name, "direction", job->direction,
                                    "passed", job->rc == 0, "checks", job->checks));
    event_free(job->done);
    free(job);
}

static void cmd_precheck(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct daemon *d = ctx;
    struct sy_pair *p = pair_arg(req, args, d);
    if (p == NULL)
        return;
    const char *dir = sy_admin_arg_str(args, "direction");
    if (dir == NULL)
        dir = "forward";
    if (strcmp(dir, "forward") != 0 && strcmp(dir, "reverse") != 0 && strcmp(dir, "switchover") != 0) {
        sy_admin_fail(req, "bad_request", "direction must be forward, reverse or switchover, not '%s'", dir);
        return;
    }
    const struct sy_engine_ops *eng = find_engine(d, p->cfg->engine);
    if (eng == NULL) {
        sy_admin_fail(req, "not_implemented", "engine %s has no synchronization yet", sy_engine_name(p->cfg->engine));
        return;
    }
    struct precheck_job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        sy_admin_fail(req, "internal", "out of memory");
        return;
    }
    *job = (struct precheck_job){ .req = req, .d = d, .cfg = p->cfg, .eng = eng, .checks = json_array(),
                                  .dir = strcmp(dir, "reverse") == 0 ? SY_DIR_REVERSE : SY_DIR_FORWARD,
                                  .pair = strcmp(dir, "switchover") == 0 ? p : NULL };
    snprintf(job->direction, sizeof job->direction, "%s", dir);
    job->done = event_new(d->base, -1, 0, on_precheck_done, job);
    pthread_t th;
    sy_admin_job_begin();
    if (job->done == NULL || pthread_create(&th, NULL, precheck_thread, job) != 0) {
        sy_admin_job_end();
        if (job->done)
            event_free(job->done);
        json_decref(job->checks);
        free(job);
        sy_admin_fail(req, "internal", "cannot start the precheck");
        return;
    }
    pthread_detach(th);
}

/* A reverse instance etcd records but this owner has not taken over yet (its takeover failed: retried):
 * it exists, so create-reverse is refused (true: answered). */
static bool reverse_not_taken_over(struct sy_admin_req *req, const struct sy_pair *p)
{
    if (!p->reverse_later && !p->reverse_taking_over)
        return false;
    sy_admin_fail(req, "reverse_exists", "%s/reverse exists but this node has not taken it over yet (tried "
                  "again every second: %s)", p->cfg->name,
                  p->takeover_error[0] ? p->takeover_error : "running");
    return true;
}

/* create-reverse: precheck (reverse direction) and the DR position on a thread; the instance is
 * created on the loop only when the precheck passed (a failed precheck leaves nothing behind). */
struct reverse_job {
    struct sy_admin_req *req;
    struct sy_pair *pair;
    const struct sy_engine_ops *eng;
    json_t *checks;
    uint64_t owner_token;          /* the pair's when the command came (0: no election) */
    int rc;
    char position[1024];
    char err[512];
    int pos_rc;
    int forget_rc;                 /* business forgot an earlier reverse instance's checkpoint: 0, -1, -2 */
    char forget_err[1280];
    struct event *done;
};

static void *reverse_thread(void *arg)
{
    struct reverse_job *job = arg;
    const struct sy_pair_cfg *cfg = job->pair->cfg;
    job->rc = job->eng->sync->precheck(cfg, SY_DIR_REVERSE, job->checks);
    if (job->rc == 0)
        job->pos_rc = job->eng->position->current(cfg, &cfg->dr, job->position, sizeof job->position, job->err,
                                                 sizeof job->err);
    /* before the new instance exists anywhere: its writer and a new owner's takeover must not resume from
     * a terminated one's checkpoint (same id) */
    if (job->rc == 0 && job->pos_rc == 0 && job->eng->sync->forget != NULL) {
        char id[96];
        snprintf(id, sizeof id, "%s/reverse", cfg->name);
        job->forget_rc = job->eng->sync->forget(cfg, id, &cfg->business, job->owner_token, job->forget_err,
                                                sizeof job->forget_err);
    }
    event_active(job->done, 0, 0);
    sy_admin_job_end(); /* last touch of shared state */
    return NULL;
}

static void reverse_job_free(struct reverse_job *job)
{
    json_decref(job->checks);
    event_free(job->done);
    free(job);
}

/* Creates the reverse instance here (made: which creation, from where) and answers. */
static void create_reverse_here(struct reverse_job *job, const struct sy_reverse_record *made)
{
    struct sy_pair *p = job->pair;
    char err[1024];
    if (p->reverse) {
        sy_instance_close(p->reverse);
        p->reverse = NULL;
    }
    p->reverse = sy_instance_create_reverse(p, job->eng, made->start_position, made->created, err, sizeof err);
    if (p->reverse == NULL)
        sy_admin_fail(job->req, "internal", "creating %s/reverse: %s%s", p->cfg->name, err,
                      p->election ? " (etcd records it: a node that takes the pair over makes it; terminate it "
                                    "to forget it)" : "");
    else
        sy_admin_ok(job->req, json_pack("{s:s,s:s,s:s,s:O}", "instance", sy_instance_id(p->reverse), "state",
                                        sy_instance_state_name(sy_instance_state(p->reverse)), "start_position",
                                        made->start_position, "checks", job->checks));
}

struct reverse_put {
    struct reverse_job *job;
    struct sy_reverse_record made;
    char *text;                    /* owned: the record as put */
};

/* With an election the new reverse instance's record is in etcd before the instance exists here: a node
 * that takes the pair over makes it from the record, and one etcd does not record exists nowhere. */
static void on_reverse_recorded(void *arg, json_t *reply, const char *err)
{
    struct reverse_put *rp = arg;
    struct reverse_job *job = rp->job;
    struct sy_pair *p = job->pair;
    p->reverse_writing = false;
    if (reply == NULL) {                  /* a request that timed out may still be applied later */
        sy_admin_fail(job->req, "etcd_unreachable", "etcd did not answer (%s): %s/reverse was not created on this "
                      "node, but etcd may still record it (then a node taking the pair over makes it); give "
                      "create-reverse again once etcd answers", err, p->cfg->name);
    } else if (!sy_cluster_held_recorded(reply)) {
        sy_admin_fail(job->req, "owner_lost", "etcd did not record the new %s/reverse (this node no longer owns "
                      "the pair): nothing was created; give create-reverse again (it goes to the new owner)",
                      p->cfg->name);
    } else if (!p->sync_open || p->sync_closing || !sy_election_is_owner(p->election) ||
               p->owner_token != job->owner_token) {
        sy_admin_fail(job->req, "owner_lost", "etcd records the new %s/reverse (created %s), but this node "
                      "stepped down before making it: the node that takes the pair over makes it from the record",
                      p->cfg->name, rp->made.created);
    } else {
        snprintf(p->reverse_record, sizeof p->reverse_record, "%s", rp->text);
        create_reverse_here(job, &rp->made);
    }
    reverse_job_free(job);
    free(rp->text);
    free(rp);
}

static void on_reverse_done(evutil_socket_t fd, short what, void *arg)
{
    struct reverse_job *job = arg;
    struct sy_pair *p = job->pair;
    p->reverse_writing = false;
    if (p->election != NULL && (!p->sync_open || p->sync_closing || !sy_election_is_owner(p->election) ||
                                p->owner_token != job->owner_token || job->forget_rc == -2)) {
        /* stepped down during the precheck: nothing is created on a node that no longer owns the pair */
        if (job->forget_rc == -2)
            sy_admin_fail(job->req, "owner_lost", "%s: nothing was created; give create-reverse again (it goes to "
                          "the owner)", job->forget_err);
        else
            sy_admin_fail(job->req, "owner_lost", "this node stopped owning %s while the reverse precheck ran: "
                          "nothing was created; give create-reverse again (it goes to the new owner)", p->cfg->name);
    } else if (job->rc != 0) {
        sy_admin_fail_with(job->req, "precheck_failed", json_pack("{s:o}", "checks", job->checks),
                           "the reverse precheck of %s failed: nothing was created (see checks)", p->cfg->name);
        job->checks = NULL;
    } else if (job->pos_rc != 0) {
        sy_admin_fail(job->req, "precheck_failed", "cannot read the DR position: %s", job->err);
    } else if (job->forget_rc != 0) {
        sy_admin_fail(job->req, "checkpoint_not_cleared", "cannot clear an earlier %s/reverse's checkpoint on "
                      "business (a new reverse instance would resume from it): %s; nothing was created, give "
                      "create-reverse again", p->cfg->name, job->forget_err);
    } else if (p->reverse != NULL && sy_instance_state(p->reverse) != SY_INST_TERMINATED) {
        sy_admin_fail(job->req, "reverse_exists", "%s/reverse already exists (%s)", p->cfg->name,
                      sy_instance_state_name(sy_instance_state(p->reverse)));
    } else if (!reverse_not_taken_over(job->req, p)) {
        /* which creation: a node that takes the pair over tells its own state of an older one by it */
        struct reverse_put *rp = p->election ? calloc(1, sizeof *rp) : NULL;
        struct sy_reverse_record made = { .found = 1 };
        snprintf(made.start_position, sizeof made.start_position, "%s", job->position);
        snprintf(made.created, sizeof made.created, "%s@%llu",
                 p->election ? sy_election_node(p->election) : "", (unsigned long long)sy_wall_ms());
        if (p->election == NULL) {
            create_reverse_here(job, &made);
        } else if (rp == NULL) {
            sy_admin_fail(job->req, "internal", "out of memory");
        } else {
            /* the record, with the terminated one's key deleted, first (core/cluster_held.h) */
            *rp = (struct reverse_put){ .job = job, .made = made,
                                        .text = sy_cluster_reverse_text(made.start_position, made.created,
                                                                        sy_election_node(p->election)) };
            if (rp->text != NULL && strlen(rp->text) < sizeof p->reverse_record &&
                sy_cluster_reverse_put(sy_election_etcd(p->election), p->cfg->name, rp->text, job->owner_token,
                                       on_reverse_recorded, rp) == 0) {
                p->reverse_writing = true;
                return;                            /* answered by on_reverse_recorded */
            }
            free(rp->text);
            free(rp);
            sy_admin_fail(job->req, "owner_lost", "this node no longer owns %s: nothing was created; give "
                          "create-reverse again (it goes to the new owner)", p->cfg->name);
        }
    }
    reverse_job_free(job);
}

static void cmd_create_reverse(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct daemon *d = ctx;
    struct sy_pair *p = pair_arg(req, args, d);
    if (p == NULL || on_owner(d, p, req, args))
        return;
    if (find_engine(d, p->cfg->engine) == NULL) {
        sy_admin_fail(req, "not_implemented", "engine %s has no synchronization yet", sy_engine_name(p->cfg->engine));
        return;
    }
    if (p->forward == NULL) {
        sy_admin_fail(req, "unknown_instance",
                      "%s has no forward instance (no objects configured): a reverse instance belongs to one",
                      p->cfg->name);
        return;
    }
    if (p->reverse != NULL && sy_instance_state(p->reverse) != SY_INST_TERMINATED) {
        sy_admin_fail(req, "reverse_exists", "%s/reverse already exists (%s)", p->cfg->name,
                      sy_instance_state_name(sy_instance_state(p->reverse)));
        return;
    }
    if (reverse_not_taken_over(req, p))
        return;
    if (p->reverse_writing) {
        sy_admin_fail(req, "bad_state", "a create-reverse or terminate of %s/reverse runs: give it again once it "
                      "answered", p->cfg->name);
        return;
    }
    struct reverse_job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        sy_admin_fail(req, "internal", "out of memory");
        return;
    }
    job->req = req;
    job->pair = p;
    job->eng = find_engine(d, p->cfg->engine);
    job->checks = json_array();
    job->owner_token = p->owner_token;
    job->done = event_new(d->base, -1, 0, on_reverse_done, job);
    pthread_t th;
    sy_admin_job_begin();
    p->reverse_writing = true;
    if (job->eng == NULL || job->done == NULL || pthread_create(&th, NULL, reverse_thread, job) != 0) {
        p->reverse_writing = false;
        sy_admin_job_end();
        if (job->done)
            event_free(job->done);
        json_decref(job->checks);
        free(job);
        sy_admin_fail(req, "internal", "cannot start the reverse precheck");
        return;
    }
    pthread_detach(th);
}

/* verify: row counts and chunked checksums on both sides, blocking on a thread; each destination
 * chunk is read once the forward writer has applied the position the source chunk was read at. */

struct verify_job {
    struct sy_admin_req *req;
    struct sy_pair *pair;               /* ref: its instance_users counts this job */
    const struct sy_pair_cfg *cfg;      /* ref: the pair's */
    struct sy_instance *forward;        /* ref: the pair's forward instance (write position) */
    const struct sy_engine_ops *eng;
    char *objects;                      /* owned: --objects, NULL = every synchronized table */
    json_t *result;
    int rc;
    char err[1024];
    struct event *done;
    char watch_id[80];                  /* "<pair>/verify" (names are < 64), for the watch's log lines */
    struct sy_module_ctx watch;         /* cfg, watch_id and the daemon's verify_sockets only */
    int *stop;                          /* ref: the daemon's verify_stop */
    bool cut;                           /* a wait for the writer gave up because of the stop (verify thread) */
};

/* Whether the forward writer's applied position covers `position` (a source position, compared by the
 * engine's position ops); polls from 2 ms up to every 50 ms until timeout_ms (a short first wait narrows
 * the window in which business writes to a chunk can make the two sides differ). Runs on the verify
 * thread. */
static bool verify_write_reached(void *arg, const char *position, int timeout_ms)
{
    struct verify_job *job = arg;
    if (!job->eng->position->covers(position, position)) { /* the engine cannot read it: waiting is useless */
        sy_log_warn("pair %s: verify: cannot read source position '%s'", job->cfg->name, position);
        return false;
    }
    uint64_t deadline = sy_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    bool reached = sy_instance_write_reaches(job->forward, position, deadline, 2, 50, job->stop);
    if (!reached && __atomic_load_n(job->stop, __ATOMIC_ACQUIRE))
        job->cut = true;                                 /* not the writer's fault: say so, not not_caught_up */
    return reached;
}

/* The engine's verify with what is the same for every engine around it: the log lines and elapsed_ms. */
static void *verify_thread(void *arg)
{
    struct verify_job *job = arg;
    const char *name = job->cfg->name;
    uint64_t t0 = sy_now_ms();
    sy_log_info("pair %s: verify started%s%s", name, job->objects ? " for " : "", job->objects ? job->objects : "");
    job->rc = job->eng->sync->verify(job->cfg, &job->watch, job->objects, verify_write_reached, job, job->result,
                                     job->err, sizeof job->err);
    if (job->rc == -1 && sy_module_sockets_shut(&job->watch)) {
        char cause[sizeof job->err];
        snprintf(cause, sizeof cause, "%s", job->err);
        snprintf(job->err, sizeof job->err, "cut by switchyardd's shutdown (%s)", cause);
    } else if (job->rc == 0 && job->cut) {              /* its last wait ended by the stop: no verdict */
        job->rc = -1;
        snprintf(job->err, sizeof job->err, "cut by switchyardd's shutdown (while waiting for the forward writer)");
    }
    uint64_t ms = sy_now_ms() - t0;
    if (job->rc == 0) {
        json_object_set_new(job->result, "elapsed_ms", json_integer((json_int_t)ms));
        sy_log_info("pair %s: verify done in %llu ms: %zu table(s), %s", name, (unsigned long long)ms,
                    json_array_size(json_object_get(job->result, "tables")),
                    json_is_true(json_object_get(job->result, "clean")) ? "clean" : "NOT clean");
    } else {
        sy_log_warn("pair %s: verify failed after %llu ms: %s", name, (unsigned long long)ms, job->err);
    }
    event_active(job->done, 0, 0);
    sy_admin_job_end(); /* last touch of shared state */
    return NULL;
}

static void on_verify_done(evutil_socket_t fd, short what, void *arg)
{
    struct verify_job *job = arg;
    if (job->rc == 0) {
        sy_admin_ok(job->req, job->result);
        job->result = NULL;
    } else {
        sy_admin_fail(job->req, job->rc == -2 ? "bad_request" : "verify_failed", "%s", job->err);
    }
    json_decref(job->result);
    event_free(job->done);
    free(job->objects);
    job->pair->instance_users--;
    sy_ownership_finish_close(job->pair);                        /* a step-down meanwhile waited for this job */
    free(job);
}

static void cmd_verify(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct daemon *d = ctx;
    struct sy_pair *p = pair_arg(req, args, d);
    if (p == NULL || on_owner(d, p, req, args))
        return;
    const struct sy_engine_ops *eng = find_engine(d, p->cfg->engine);
    if (eng == NULL || eng->sync->verify == NULL) {
        sy_admin_fail(req, "not_implemented", "engine %s has no verify yet", sy_engine_name(p->cfg->engine));
        return;
    }
    if (p->forward == NULL) {
        sy_admin_fail(req, "unknown_instance",
                      "%s has no forward instance (no objects configured): there is nothing to verify", p->cfg->name);
        return;
    }
    if (sy_instance_state(p->forward) != SY_INST_RUNNING) {
        sy_admin_fail(req, "bad_state", "%s is %s: verify needs it running (its writer must reach each chunk's position)",
                      sy_instance_id(p->forward), sy_instance_state_name(sy_instance_state(p->forward)));
        return;
    }
    const char *objects = sy_admin_arg_str(args, "objects");
    if (objects && !sy_objects_filter_valid(objects)) {
        sy_admin_fail(req, "bad_request", "--objects wants db.table (MongoDB: db.collection) or db.* entries "
                      "separated by commas, not '%s'", objects);
        return;
    }
    struct verify_job *job = calloc(1, sizeof *job);
    if (job == NULL) {
        sy_admin_fail(req, "internal", "out of memory");
        return;
    }
    *job = (struct verify_job){ .req = req, .pair = p, .cfg = p->cfg, .forward = p->forward, .eng = eng,
                                .objects = objects ? strdup(objects) : NULL, .result = json_object() };
    snprintf(job->watch_id, sizeof job->watch_id, "%s/verify", p->cfg->name);
    job->watch = (struct sy_module_ctx){ .cfg = p->cfg, .instance_id = job->watch_id, .sockets = d->verify_sockets };
    job->stop = &d->verify_stop;
    job->done = event_new(d->base, -1, 0, on_verify_done, job);
    pthread_t th;
    sy_admin_job_begin();
    if (job->done == NULL || job->result == NULL || (objects && job->objects == NULL) ||
        pthread_create(&th, NULL, verify_thread, job) != 0) {
        sy_admin_job_end();
        if (job->done)
            event_free(job->done);
        json_decref(job->result);
        free(job->objects);
        free(job);
        sy_admin_fail(req, "internal", "cannot start the verify");
        return;
    }
    p->instance_users++;
    pthread_detach(th);
}

static void cmd_switchover(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct sy_pair *p = pair_arg(req, args, ctx);
    if (p != NULL && !on_owner(ctx, p, req, args))
        sy_switch_switchover(p, req, sy_admin_arg_bool(args, "force"));
}

static void cmd_switchback(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct sy_pair *p = pair_arg(req, args, ctx);
    if (p != NULL && !on_owner(ctx, p, req, args))
        sy_switch_switchback(p, req, sy_admin_arg_bool(args, "force"));
}

static void cmd_resolve_tail(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct sy_pair *p = pair_arg(req, args, ctx);
    if (p != NULL && !on_owner(ctx, p, req, args))
        sy_tail_resolve(p, req, sy_admin_arg_str(args, "export"), sy_admin_arg_bool(args, "discard"));
}

static void cmd_failover(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct sy_pair *p = pair_arg(req, args, ctx);
    if (p != NULL && !on_owner(ctx, p, req, args))
        sy_switch_failover(p, req, sy_admin_arg_bool(args, "force"));
}


static void on_owner_check(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    for (size_t i = 0; i < d->n_started; i++)
        sy_ownership_check(&d->pairs[i]);
}

/* The pair applied a new epoch of the cluster's: the writes follow it here as after a restart. */
static void on_epoch_applied(void *arg, struct sy_pair *p, bool side_changed)
{
    if (side_changed && p->forward != NULL)
        sy_ownership_resolve_writes(p);
}

/* Another node coordinates a switch of this pair: this node takes part. */
static void on_cluster_hold(void *arg, struct sy_pair *p, const char *id, enum sy_side to, uint64_t from_epoch,
                            bool failover)
{
    sy_switch_participate(p, id, to, from_epoch, failover);
}

static const struct sy_admin_cmd pair_cmds[] = {
    { "status", "status [PAIR] : pairs, active side, epoch, instances, lag", cmd_status },
    { "clients", "clients PAIR : client sessions (id, user, peer, side, in_transaction, held_ms)", cmd_clients },
    { "hold", "hold PAIR : queue new client requests outside transactions (max_hold_ms)", cmd_hold },
    { "release", "release PAIR : let held requests through, in order", cmd_release },
    { "precheck", "precheck PAIR [--direction forward|reverse|switchover] : checks with fixes", cmd_precheck },
    { "create-reverse", "create-reverse PAIR : create the reverse instance", cmd_create_reverse },
    { "pause", "pause INSTANCE : pause, keeping position and spool", cmd_pause },
    { "start", "start INSTANCE : start or resume; reverse: start its write", cmd_start },
    { "terminate", "terminate INSTANCE : end an instance for good", cmd_terminate },
    { "switchover", "switchover PAIR [--force] : planned switch to the other side", cmd_switchover },
    { "failover", "failover PAIR [--force] : business DB is down: flip to DR", cmd_failover },
    { "switchback", "switchback PAIR : drain reverse, flip to business", cmd_switchback },
    { "resolve-tail", "resolve-tail PAIR --export FILE | --discard : decide the unreplicated tail", cmd_resolve_tail },
    { "verify", "verify PAIR [--objects ...] : row counts and chunked checksums", cmd_verify },
    { "lag-history", "lag-history INSTANCE : the write's lag over the last hour", cmd_lag_history },
};

static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
    sy_log_warn("SIGHUP: reloading the configuration is not supported (nothing changed): restart switchyardd "
                "to apply a change");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    sy_log_info("signal %d: shutting down", (int)sig);
    event_base_loopbreak(d->base);
}

static const struct sy_proxy_protocol *find_proto(const struct sy_proxy_protocol *const *protos, enum sy_engine e)
{
    for (size_t i = 0; protos[i] != NULL; i++)
        if (protos[i]->engine == e)
            return protos[i];
    return NULL;
}

int sy_daemon_run(const struct sy_config *cfg, const struct sy_proxy_protocol *const *protos,
                  const struct sy_engine_ops *const *engines)
{
    char err[1024] = "";
    int status = 1;
    struct daemon d = { .cfg = cfg, .engines = engines };
    struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL, *lag_sampler = NULL;
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    d.base = event_base_new();
    d.pairs = calloc(cfg->n_pairs ? cfg->n_pairs : 1, sizeof *d.pairs);
    d.verify_sockets = sy_socket_set_new();
    if (d.base == NULL || d.pairs == NULL || d.verify_sockets == NULL) {
        sy_log_error("out of memory");
        goto out;
    }
    if (sy_mkdirs(cfg->state_dir, err, sizeof err) != 0) {
        sy_log_error("state_dir: %s", err);
        goto out;
    }
    if (cfg->proxy_threads > 1) {
        if ((d.pool = sy_loop_pool_new(cfg->proxy_threads, err, sizeof err)) == NULL) {
            sy_log_error("proxy_threads: %s", err);
            goto out;
        }
        sy_log_info("%d proxy threads", cfg->proxy_threads);
    }
    for (size_t i = 0; i < cfg->n_pairs; i++) {
        if (sy_pair_start(&d.pairs[i], &cfg->pairs[i], find_proto(protos, cfg->pairs[i].engine), cfg->state_dir,
                          d.base, d.pool, err, sizeof err) != 0) {
            sy_log_error("%s:%d: [pair %s]: %s", cfg->path, cfg->pairs[i].line, cfg->pairs[i].name, err);
            goto out;
        }
        d.n_started = i + 1;
        const struct sy_engine_ops *eng = find_engine(&d, cfg->pairs[i].engine);
        d.pairs[i].eng = eng;
        /* In a cluster the instances run on the node the pair's election chose (sy_ownership_changed) */
        if (eng != NULL && cfg->pairs[i].n_objects > 0 && cfg->cluster.line == 0) {
            if (sy_ownership_open(&d.pairs[i], sy_instance_exists(&d.pairs[i], SY_DIR_REVERSE)) != 0)
                goto out;
            sy_ownership_resolve_writes(&d.pairs[i]);
        }
        /* In a cluster, only the node that runs the pair's synchronization keeps the sides fenced (started
         * by its takeover): a node applying a new epoch a moment late must not fence the side just made
         * active. */
        bool keeper = cfg->cluster.line == 0;
        d.pairs[i].cut_off = cfg->cluster.line != 0;  /* until etcd confirms the epoch (core/shared_epoch.c) */
        d.pairs[i].clustered = cfg->cluster.line != 0;
        if (sy_tail_watch_start(&d.pairs[i]) != 0 || (keeper && sy_fence_keeper_start(&d.pairs[i]) != 0)) {
            sy_log_error("pair %s: cannot start the fence keeper", cfg->pairs[i].name);
            goto out;
        }
    }
    d.admin = sy_admin_open(d.base, cfg->admin_socket, err, sizeof err);
    if (d.admin == NULL) {
        sy_log_error("%s", err);
        goto out;
    }
    sy_admin_register(d.admin, pair_cmds, SY_ARRAY_LEN(pair_cmds), &d);
    if (cfg->has_metrics &&
        (d.metrics = sy_metrics_open(d.base, &cfg->metrics, d.pairs, &d.n_started, err, sizeof err)) == NULL) {
        sy_log_error("%s", err);
        goto out;
    }
    if (cfg->cluster.line != 0 &&
        (d.cluster = sy_cluster_start(d.base, cfg, cluster_state, &d, err, sizeof err)) == NULL) {
        sy_log_error("%s:%d: [cluster]: %s", cfg->path, cfg->cluster.line, err);
        goto out;
    }
    for (size_t i = 0; d.cluster != NULL && i < d.n_started; i++)
        if ((d.pairs[i].shared = sy_shared_epoch_start(d.cluster, &d.pairs[i], on_epoch_applied, &d)) == NULL ||
            (d.pairs[i].cswitch = sy_cluster_switch_start(d.cluster, &d.pairs[i], on_cluster_hold, &d)) == NULL) {
            sy_log_error("out of memory");
            goto out;
        }
    for (size_t i = 0; d.cluster != NULL && i < d.n_started; i++)
        if (d.pairs[i].eng != NULL && cfg->pairs[i].n_objects > 0 &&
            (d.pairs[i].election = sy_election_start(d.cluster, &d.pairs[i], cfg->admin_socket,
                                                     sy_ownership_changed, &d)) == NULL) {
            sy_log_error("out of memory");
            goto out;
        }
    if (d.cluster != NULL && (d.cadmin = sy_cluster_admin_start(d.cluster, d.admin, d.pairs, d.n_started)) == NULL) {
        sy_log_error("out of memory");
        goto out;
    }
    if (d.cluster != NULL) {
        struct timeval second = { 1, 0 };
        d.owner_check = event_new(d.base, -1, EV_PERSIST, on_owner_check, &d);
        if (d.owner_check == NULL || event_add(d.owner_check, &second) != 0) {
            sy_log_error("out of memory");
            goto out;
        }
    }
    if (cfg->has_console && (d.console = sy_console_open(d.base, cfg, d.admin, err, sizeof err)) == NULL) {
        sy_log_error("%s", err);
        goto out;
    }
    struct timeval every = { SY_LAG_SAMPLE_S, 0 };
    lag_sampler = event_new(d.base, -1, EV_PERSIST, on_lag_sample, &d);
    if (lag_sampler == NULL || event_add(lag_sampler, &every) != 0) {
        sy_log_error("out of memory");
        goto out;
    }
    event_active(lag_sampler, 0, 0);                /* a first sample now */
    sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
    sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
    sighup = evsignal_new(d.base, SIGHUP, on_sighup, &d);   /* pgbouncer's users send HUP to reload */
    event_add(sighup, NULL);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    sy_log_info("switchyardd ready: admin socket %s, %zu pair(s)", cfg->admin_socket, cfg->n_pairs);
    sd_notifyf(0, "READY=1\nSTATUS=ready: admin socket %s, %zu pair(s)\nMAINPID=%d", cfg->admin_socket,
               cfg->n_pairs, (int)getpid()); /* systemd Type=notify; nothing without NOTIFY_SOCKET */
    event_base_dispatch(d.base);
    status = 0;
out:
    sd_notify(0, "STOPPING=1");
    sy_admin_shutdown(d.admin);
    sy_switch_shutdown();
    __atomic_store_n(&d.verify_stop, 1, __ATOMIC_RELEASE);
    size_t cut = sy_socket_set_shut(d.verify_sockets);
    if (cut > 0)
        sy_log_info("a verify was running: %zu database connection(s) shut down to end it", cut);
    for (int waited = 0; sy_admin_jobs() > 0 && waited < 120000; waited += 10) {
        if (waited == 0)
            sy_log_info("waiting for %d admin command(s) to finish", sy_admin_jobs());
        /* a switch rolling back runs steps on the loop: keep it turning */
        if (d.base)
            event_base_loop(d.base, EVLOOP_NONBLOCK);
        usleep(10 * 1000);
    }
    /* a pause, start, terminate or create-reverse whose etcd put has not answered: answered now (it may
     * still land); every pair's election shares the cluster's one etcd client */
    if (d.cluster != NULL) {
        struct sy_etcd *etcd = sy_cluster_etcd(d.cluster);
        sy_etcd_fail_now(etcd, on_terminate_recorded, "switchyardd is shutting down");
        sy_etcd_fail_now(etcd, on_reverse_recorded, "switchyardd is shutting down");
        sy_etcd_fail_now(etcd, on_held_put, "switchyardd is shutting down");
    }
    for (int i = 0; i < 3 && d.base; i++)
        event_base_loop(d.base, EVLOOP_NONBLOCK); /* answer (and free) the commands that finished */
    if (sy_admin_jobs() > 0) {
        /* A thread still uses the pairs, the config, the loop and Connector/C: freeing them, or letting
         * main() end the client library and wipe the config (or exit() run atexit handlers), would pull
         * them from under it. The process ends here; the state on disk is consistent. */
        sy_log_error("%d admin command(s) still running after 120 s: exiting without freeing what they use",
                     sy_admin_jobs());
        fflush(NULL);
        _exit(1);
    }
    if (lag_sampler)
        event_free(lag_sampler);
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    if (sighup)
        event_free(sighup);
    if (d.owner_check)
        event_free(d.owner_check);
    sy_cluster_admin_free(d.cadmin);
    for (size_t i = 0; i < d.n_started; i++) {
        sy_tail_watch_stop(&d.pairs[i]);        /* no tail work once the elections are gone */
        if (d.pairs[i].sync_open)
            sy_ownership_close_now(&d.pairs[i]);   /* before the lease goes: then another node may take over */
        sy_election_free(d.pairs[i].election);
        d.pairs[i].election = NULL;
        sy_cluster_switch_free(d.pairs[i].cswitch);
        sy_shared_epoch_free(d.pairs[i].shared);
        d.pairs[i].cswitch = NULL;
        d.pairs[i].shared = NULL;
    }
    sy_cluster_stop(d.cluster, 1000);
    sy_metrics_close(d.metrics);
    sy_console_close(d.console);
    sy_admin_close(d.admin);
    for (size_t i = 0; i < d.n_started; i++) {
        sy_fence_keeper_stop(&d.pairs[i]);
        sy_tail_watch_stop(&d.pairs[i]);
        sy_pair_stop(&d.pairs[i]);
    }
    free(d.pairs);
    sy_loop_pool_free(d.pool); /* after the pairs: their proxies freed what they had on the workers */
    sy_socket_set_free(d.verify_sockets); /* no admin command runs any more */
    if (d.base)
        event_base_free(d.base);
    if (status == 0)
        sy_log_info("switchyardd stopped");
    return status;
}
