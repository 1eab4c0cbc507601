/* The etcd side of one switch for every node (core/cluster_switch.h). A watch of the pair's switch/
 * prefix feeds both roles: participants hear a coordinator's hold and abort, the coordinator hears the
 * acknowledgements. The prefix is read once first, for the revision to watch from. */
#include "core/cluster_switch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "core/cluster.h"
#include "core/etcd.h"
#include "core/log.h"

struct step;

struct sy_cluster_switch {
    struct sy_cluster *c;              /* ref: the daemon's */
    struct sy_etcd *etcd;              /* ref: owned by the cluster */
    struct sy_pair *p;                 /* ref */
    char prefix[200];                  /* SY_CLUSTER_PREFIX "pairs/<pair>/switch/" */
    char lock[200];                    /* SY_CLUSTER_PREFIX "pairs/<pair>/lock" */
    struct sy_etcd_watch *watch;       /* owned: made once the prefix was read */
    struct event *tick;                /* owned: reads the prefix until the watch runs */
    bool reading;
    sy_cluster_switch_hold_fn hold;
    void *hold_arg;
    /* participant: the last switch another node published */
    char seen_id[96];
    char seen_phase[16];               /* "hold" | "abort" | "gone" */
    /* coordinator: the switch this node runs ("" none) */
    char id[96];
    json_t *expect;                    /* owned: names of the nodes that must acknowledge */
    json_t *acks;                      /* owned: {node: {"phase", "ledger", "error"}} of id */
    enum sy_side to;                   /* of id */
    uint64_t from_epoch;               /* of id */
    bool failover;                     /* of id: a failover (published as "kind") */
    LIST_HEAD(, step) steps;           /* owned: the etcd steps in flight */
};

/* One etcd step in flight (a coordinator's, a participant's, a refusal's: several may overlap). */
struct step {
    LIST_ENTRY(step) link;
    struct sy_cluster_switch *cs;
    sy_cluster_switch_done_fn done;
    void *arg;
    const char *what;                  /* static: names the step in errors */
};

static char *b64(const char *s)
{
    return sy_etcd_b64(s, strlen(s));
}

static json_t *value_of(json_t *kv)
{
    size_t len = 0;
    char *text = sy_etcd_unb64(json_string_value(json_object_get(kv, "value")) ?: "", &len);
    json_error_t je;
    json_t *v = text ? json_loadb(text, len, 0, &je) : NULL;
    free(text);
    if (!json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static void on_state(struct sy_cluster_switch *cs, const char *id, json_t *kv, bool deleted)
{
    if (deleted) {
        if (strcmp(id, cs->seen_id) == 0)
            snprintf(cs->seen_phase, sizeof cs->seen_phase, "gone");
        return;
    }
    json_t *v = value_of(kv);
    const char *coord = json_string_value(json_object_get(v, "coordinator"));
    const char *phase = json_string_value(json_object_get(v, "phase"));
    const char *to = json_string_value(json_object_get(v, "to"));
    json_t *from = json_object_get(v, "from_epoch");
    if (coord == NULL || phase == NULL || to == NULL || !json_is_integer(from)) {
        sy_log_warn("pair %s: switch %s: a malformed state in etcd: ignored", cs->p->cfg->name, id);
    } else if (strcmp(coord, sy_cluster_node(cs->c)) != 0) {
        bool new_switch = strcmp(id, cs->seen_id) != 0;
        snprintf(cs->seen_id, sizeof cs->seen_id, "%s", id);
        snprintf(cs->seen_phase, sizeof cs->seen_phase, "%s", phase);
        if (new_switch && strcmp(phase, "hold") == 0 && cs->hold != NULL)
            cs->hold(cs->hold_arg, cs->p, id, strcmp(to, "dr") == 0 ? SY_SIDE_DR : SY_SIDE_BUSINESS,
                     (uint64_t)json_integer_value(from),
                     strcmp(json_string_value(json_object_get(v, "kind")) ?: "", "failover") == 0);
    }
    json_decref(v);
}

static void on_event(void *arg, json_t *kv, bool deleted, int64_t rev)
{
    struct sy_cluster_switch *cs = arg;
    size_t len = 0;
    char *key = sy_etcd_unb64(json_string_value(json_object_get(kv, "key")) ?: "", &len);
    size_t n = strlen(cs->prefix);
    if (key == NULL || strncmp(key, cs->prefix, n) != 0) {
        free(key);
        return;
    }
    char *id = key + n, *slash = strchr(id, '/');
    if (slash != NULL) {
        *slash = '\0';
        const char *rest = slash + 1;
        if (strcmp(rest, "state") == 0) {
            on_state(cs, id, kv, deleted);
        } else if (strncmp(rest, "ack/", 4) == 0 && cs->id[0] != '\0' && strcmp(id, cs->id) == 0) {
            json_t *v = deleted ? NULL : value_of(kv);
            if (v != NULL)
                json_object_set_new(cs->acks, rest + 4, v);
        }
    }
    free(key);
}

static void on_read(void *arg, json_t *reply, const char *err)
{
    struct sy_cluster_switch *cs = arg;
    cs->reading = false;
    if (reply == NULL || cs->watch != NULL)
        return;
    const char *rev = json_string_value(json_object_get(json_object_get(reply, "header"), "revision"));
    int64_t from = (rev ? strtoll(rev, NULL, 10) : 0) + 1;
    cs->watch = sy_etcd_watch_start(cs->etcd, cs->prefix, true, from, on_event, cs);
    if (cs->watch != NULL)
        event_del(cs->tick);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct sy_cluster_switch *cs = arg;
    if (cs->reading || cs->watch != NULL)
        return;
    char *k = b64(cs->prefix), *end = sy_etcd_prefix_end_b64(cs->prefix);
    json_t *body = k && end ? json_pack("{s:s,s:s,s:b}", "key", k, "range_end", end, "keys_only", 1) : NULL;
    free(k);
    free(end);
    if (body != NULL && sy_etcd_post(cs->etcd, "/v3/kv/range", body, on_read, cs) == 0)
        cs->reading = true;
}

struct sy_cluster_switch *sy_cluster_switch_start(struct sy_cluster *c, struct sy_pair *p,
                                                  sy_cluster_switch_hold_fn hold, void *arg)
{
    struct sy_cluster_switch *cs = calloc(1, sizeof *cs);
    if (cs == NULL)
        return NULL;
    cs->c = c;
    cs->etcd = sy_cluster_etcd(c);
    cs->p = p;
    cs->hold = hold;
    cs->hold_arg = arg;
    snprintf(cs->prefix, sizeof cs->prefix, "%spairs/%s/switch/", SY_CLUSTER_PREFIX, p->cfg->name);
    snprintf(cs->lock, sizeof cs->lock, "%spairs/%s/lock", SY_CLUSTER_PREFIX, p->cfg->name);
    LIST_INIT(&cs->steps);
    cs->acks = json_object();
    cs->expect = json_array();
    cs->tick = sy_cluster_ticker_new(c, on_tick, cs);
    if (cs->acks == NULL || cs->expect == NULL || cs->tick == NULL) {
        sy_cluster_switch_free(cs);
        return NULL;
    }
    return cs;
}

void sy_cluster_switch_free(struct sy_cluster_switch *cs)
{
    if (cs == NULL)
        return;
    struct step *st;
    while ((st = LIST_FIRST(&cs->steps)) != NULL) {   /* their answers will not call back */
        sy_etcd_forget(cs->etcd, st);
        LIST_REMOVE(st, link);
        free(st);
    }
    sy_etcd_forget(cs->etcd, cs);
    sy_etcd_watch_free(cs->watch);
    if (cs->tick != NULL)
        event_free(cs->tick);
    json_decref(cs->acks);
    json_decref(cs->expect);
    free(cs);
}

/* ---- the etcd steps ---- */

static void step_done(struct step *st, int rc, const char *err)
{
    LIST_REMOVE(st, link);
    sy_cluster_switch_done_fn done = st->done;
    void *arg = st->arg;
    free(st);
    done(arg, rc, err);
}

static void on_txn(void *arg, json_t *reply, const char *err)
{
    struct step *st = arg;
    struct sy_cluster_switch *cs = st->cs;
    char msg[600];
    if (reply == NULL) {
        snprintf(msg, sizeof msg, "%s: %s", st->what, err);
        step_done(st, -1, msg);
        return;
    }
    if (!json_is_true(json_object_get(reply, "succeeded"))) {    /* only begin compares */
        json_t *range = json_object_get(json_array_get(json_object_get(reply, "responses"), 0), "response_range");
        json_t *v = value_of(json_array_get(json_object_get(range, "kvs"), 0));
        snprintf(msg, sizeof msg, "a switch of %s coordinated by %s (%s) is running", cs->p->cfg->name,
                 json_string_value(json_object_get(v, "node")) ?: "?",
                 json_string_value(json_object_get(v, "id")) ?: "?");
        json_decref(v);
        cs->id[0] = '\0';
        step_done(st, -1, msg);
        return;
    }
    step_done(st, 0, NULL);
}

/* Sends a transaction (consumed) whose answer ends the step. */
static void send_txn(struct sy_cluster_switch *cs, struct sy_etcd_txn *t, const char *what,
                     sy_cluster_switch_done_fn done, void *arg)
{
    struct step *st = malloc(sizeof *st);
    if (st != NULL) {
        *st = (struct step){ .cs = cs, .done = done, .arg = arg, .what = what };
        LIST_INSERT_HEAD(&cs->steps, st, link);
    }
    if (st == NULL) {
        json_decref(sy_etcd_txn_take(t));
    } else if (sy_etcd_txn_post(cs->etcd, t, on_txn, st) == 0) {
        return;
    } else {
        LIST_REMOVE(st, link);
        free(st);
    }
    char msg[200];
    snprintf(msg, sizeof msg, "%s: out of memory", what);
    done(arg, -1, msg);
}

static json_t *state_value(struct sy_cluster_switch *cs, const char *phase, enum sy_side to, uint64_t from_epoch)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:I,s:s}", "id", cs->id, "coordinator", sy_cluster_node(cs->c), "phase",
                     phase, "to", sy_side_name(to), "from_epoch", (json_int_t)from_epoch, "kind",
                     cs->failover ? "failover" : "switch");
}

static void put_state(struct sy_cluster_switch *cs, struct sy_etcd_txn *t, const char *phase)
{
    char key[300];
    snprintf(key, sizeof key, "%s%s/state", cs->prefix, cs->id);
    sy_etcd_txn_put_json(t, SY_ETCD_SUCCESS, key, state_value(cs, phase, cs->to, cs->from_epoch),
                         sy_cluster_lease(cs->c));
}

/* begin, second half: the node list just read decides who must acknowledge; then the lock and the hold. */
static void on_nodes(void *arg, json_t *reply, const char *err)
{
    struct step *b = arg;
    struct sy_cluster_switch *cs = b->cs;
    sy_cluster_switch_done_fn done = b->done;
    void *done_arg = b->arg;
    LIST_REMOVE(b, link);
    free(b);
    char msg[600];
    if (reply == NULL) {
        snprintf(msg, sizeof msg, "reading the nodes from etcd: %s", err);
        done(done_arg, -1, msg);
        return;
    }
    int64_t lease = sy_cluster_lease(cs->c);
    if (lease == 0) {
        done(done_arg, -1, "this node is not registered in etcd now");
        return;
    }
    json_array_clear(cs->expect);
    json_object_clear(cs->acks);
    json_t *kv;
    size_t i;
    json_array_foreach(json_object_get(reply, "kvs"), i, kv) {
        json_t *node = value_of(kv);
        const char *name = json_string_value(json_object_get(node, "node"));
        if (name != NULL && strcmp(name, sy_cluster_node(cs->c)) != 0 &&
            json_object_get(json_object_get(node, "pairs"), cs->p->cfg->name) != NULL)
            json_array_append_new(cs->expect, json_string(name));
        json_decref(node);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(cs->id, sizeof cs->id, "%s-%lld%03ld", sy_cluster_node(cs->c), (long long)ts.tv_sec,
             ts.tv_nsec / 1000000);
    struct sy_etcd_txn t;
    sy_etcd_txn_init(&t);
    sy_etcd_txn_compare(&t, cs->lock, SY_ETCD_CREATE, 0);
    sy_etcd_txn_put_json(&t, SY_ETCD_SUCCESS, cs->lock,
                         json_pack("{s:s,s:s}", "id", cs->id, "node", sy_cluster_node(cs->c)), lease);
    put_state(cs, &t, "hold");
    sy_etcd_txn_range(&t, SY_ETCD_FAILURE, cs->lock);
    char *names = json_dumps(cs->expect, JSON_COMPACT);
    sy_log_info("pair %s: switch %s: publishing the hold; node(s) %s must acknowledge", cs->p->cfg->name, cs->id,
                names ? names : "?");
    free(names);
    send_txn(cs, &t, "taking the pair's switch lock in etcd", done, done_arg);
}

void sy_cluster_switch_begin(struct sy_cluster_switch *cs, enum sy_side to, uint64_t from_epoch, bool failover,
                             sy_cluster_switch_done_fn done, void *arg)
{
    if (sy_cluster_lease(cs->c) == 0 || cs->watch == NULL) {
        done(arg, -1, sy_cluster_lease(cs->c) == 0 ? "this node is not registered in etcd now"
                                                   : "this node does not watch the pair's switches in etcd yet");
        return;
    }
    cs->to = to;
    cs->from_epoch = from_epoch;
    cs->failover = failover;
    char from[160];
    snprintf(from, sizeof from, "%snodes/", SY_CLUSTER_PREFIX);
    char *k = b64(from), *end = sy_etcd_prefix_end_b64(from);
    json_t *body = k && end ? json_pack("{s:s,s:s}", "key", k, "range_end", end) : NULL;
    free(k);
    free(end);
    struct step *b = malloc(sizeof *b);
    if (b == NULL || body == NULL) {
        json_decref(body);
        free(b);
        done(arg, -1, "out of memory");
        return;
    }
    *b = (struct step){ .cs = cs, .done = done, .arg = arg, .what = "reading the nodes" };
    LIST_INSERT_HEAD(&cs->steps, b, link);
    if (sy_etcd_post(cs->etcd, "/v3/kv/range", body, on_nodes, b) != 0) {
        LIST_REMOVE(b, link);
        free(b);
        done(arg, -1, "out of memory");
    }
}

bool sy_cluster_switch_acked(struct sy_cluster_switch *cs, const char *phase, json_t **ledgers, bool *refused,
                             char *msg, size_t msglen)
{
    *refused = false;
    if (ledgers != NULL)
        *ledgers = json_array();
    size_t off = 0;
    msg[0] = '\0';
    json_t *name;
    size_t i;
    json_array_foreach(cs->expect, i, name) {
        json_t *ack = json_object_get(cs->acks, json_string_value(name));
        const char *got = json_string_value(json_object_get(ack, "phase"));
        if (got != NULL && strcmp(got, "refused") == 0) {
            *refused = true;
            snprintf(msg, msglen, "node %s refused: %s", json_string_value(name),
                     json_string_value(json_object_get(ack, "error")) ?: "no reason given");
            return false;
        }
        bool ok = got != NULL && (strcmp(got, phase) == 0 ||
                                  (strcmp(phase, "held") == 0 && strcmp(got, "flipped") == 0));
        if (ok && ledgers != NULL && json_is_string(json_object_get(ack, "ledger")))
            json_array_append(*ledgers, json_object_get(ack, "ledger"));
        if (!ok && off < msglen) {
            int w = snprintf(msg + off, msglen - off, "%s%s", off ? ", " : "", json_string_value(name));
            off += w > 0 ? (size_t)w : 0;
        }
    }
    return off == 0;
}

void sy_cluster_switch_abort(struct sy_cluster_switch *cs, sy_cluster_switch_done_fn done, void *arg)
{
    struct sy_etcd_txn t;
    sy_etcd_txn_init(&t);
    put_state(cs, &t, "abort");
    send_txn(cs, &t, "publishing the switch's abort in etcd", done, arg);
}

void sy_cluster_switch_finish(struct sy_cluster_switch *cs, sy_cluster_switch_done_fn done, void *arg)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s%s/", cs->prefix, cs->id);
    struct sy_etcd_txn t;
    sy_etcd_txn_init(&t);
    sy_etcd_txn_delete(&t, SY_ETCD_SUCCESS, dir, true);
    sy_etcd_txn_delete(&t, SY_ETCD_SUCCESS, cs->lock, false);
    cs->id[0] = '\0';
    send_txn(cs, &t, "removing the switch's keys from etcd", done, arg);
}

void sy_cluster_switch_moved(const struct sy_cluster_switch *cs, uint64_t *moved, uint64_t *aborted)
{
    *moved = *aborted = 0;
    json_t *name;
    size_t i;
    json_array_foreach(cs->expect, i, name) {
        json_t *ack = json_object_get(cs->acks, json_string_value(name));
        const char *got = json_string_value(json_object_get(ack, "phase"));
        if (got == NULL || strcmp(got, "flipped") != 0)
            continue;
        json_int_t m = json_integer_value(json_object_get(ack, "moved"));     /* 0 from an older node */
        json_int_t a = json_integer_value(json_object_get(ack, "aborted"));
        *moved += m > 0 ? (uint64_t)m : 0;
        *aborted += a > 0 ? (uint64_t)a : 0;
    }
}

const char *sy_cluster_switch_id(const struct sy_cluster_switch *cs)
{
    return cs->id;
}

void sy_cluster_switch_ack(struct sy_cluster_switch *cs, const char *id, const char *phase, const char *ledger,
                           uint64_t moved, uint64_t aborted, const char *error, sy_cluster_switch_done_fn done,
                           void *arg)
{
    char key[400];
    snprintf(key, sizeof key, "%s%s/ack/%s", cs->prefix, id, sy_cluster_node(cs->c));
    struct sy_etcd_txn t;
    sy_etcd_txn_init(&t);
    sy_etcd_txn_put_json(&t, SY_ETCD_SUCCESS, key,
                         json_pack("{s:s,s:s,s:I,s:I,s:s}", "phase", phase, "ledger", ledger, "moved",
                                   (json_int_t)moved, "aborted", (json_int_t)aborted, "error", error),
                         sy_cluster_lease(cs->c));
    send_txn(cs, &t, "acknowledging the switch in etcd", done, arg);
}

const char *sy_cluster_switch_phase(const struct sy_cluster_switch *cs, const char *id)
{
    return strcmp(id, cs->seen_id) == 0 ? cs->seen_phase : "gone";
}
