/* The pair's epoch shared through etcd (core/shared_epoch.h). A tick (the cluster's period) reads the key
 * (creating it at first from this node's persisted epoch); a watch streams its changes in between. What
 * etcd says wins: a node applies it unless a switch of its own is running (that switch moves the key itself,
 * by compare-and-swap, before it flips). A revision the watch missed (a paused member) is caught by the
 * next read, which makes the watch again from there.
 *
 * Cut off: at start until the first read answers (the persisted epoch may be stale), and when no read
 * answered for longer than the lease, the rest of the cluster may switch without
 * this node (its registration expired), so it stops starting anything: the pair is held (new requests and
 * logins wait), and a request held max_hold_ms gets a clear error (the engine's fail_held). The first read
 * that answers again, once the node is registered again, applies the cluster's epoch and releases. */
#include "core/shared_epoch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cluster.h"
#include "core/etcd.h"
#include "core/log.h"

#define APPLY_RETRY_MS 20          /* the fence lock was busy (the fence keeper at work) */
#define CUT_OFF_CHECK_MS 100       /* how often a node checks whether it is cut off from etcd */

struct sy_shared_epoch {
    struct sy_pair *p;                 /* ref: the daemon's */
    struct sy_etcd *etcd;              /* ref: owned by the cluster */
    char key[200];                     /* SY_CLUSTER_PREFIX "pairs/<pair>/active" */
    bool known;                        /* epoch/side/mod_rev were read from etcd at least once */
    uint64_t epoch;                    /* what etcd said last */
    enum sy_side side;
    int64_t mod_rev;                   /* the key's mod_revision then: what a CAS compares */
    int64_t behind_rev;                /* a read saw this revision the watch had not delivered (0: none) */
    struct sy_etcd_watch *watch;       /* owned; made once the key was read */
    struct event *tick;                /* owned: reads the key every period */
    struct event *retry;               /* owned: applies again soon (fence lock busy) */
    struct event *check;               /* owned: the cut-off check, every CUT_OFF_CHECK_MS */
    struct sy_cluster *c;              /* ref: the daemon's */
    uint64_t last_ok_ms;               /* monotonic: the last read etcd answered (start: when started) */
    bool confirmed;                    /* the cluster's epoch was applied once since the start */
    bool reading;                      /* a read (or create) in flight */
    sy_shared_epoch_applied_fn applied;
    void *arg;
    char error[300];                   /* the last problem ("" = none) */
    /* the CAS in flight (one at a time: one switch per pair) */
    sy_shared_epoch_cas_fn cas_done;
    void *cas_arg;
    uint64_t cas_epoch;
    enum sy_side cas_side;
};

static int64_t int_field(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    const char *s = json_string_value(v);
    return s != NULL ? strtoll(s, NULL, 10) : json_integer_value(v);   /* the gateway writes int64 as strings */
}

static json_t *value_of(uint64_t epoch, enum sy_side side)
{
    return json_pack("{s:I,s:s}", "epoch", (json_int_t)epoch, "side", sy_side_name(side));
}

/* Applies etcd's epoch to the pair when it differs (loop; fence lock taken without waiting). */
static void apply(struct sy_shared_epoch *s)
{
    struct sy_pair *p = s->p;
    if (!s->known || (p->epoch == s->epoch && p->active_side == s->side) || p->op != NULL)
        return;                                    /* a switch of this node's own decides, then we look again */
    if (pthread_mutex_trylock(&p->fence_lock) != 0) {
        struct timeval tv = { 0, APPLY_RETRY_MS * 1000 };
        evtimer_add(s->retry, &tv);
        return;
    }
    bool side_changed = p->active_side != s->side;
    char err[512];
    int rc = sy_pair_adopt(p, s->epoch, s->side, NULL, err, sizeof err);
    pthread_mutex_unlock(&p->fence_lock);
    if (rc != 0) {
        snprintf(s->error, sizeof s->error, "cannot apply epoch %" PRIu64 ": %s", s->epoch, err);
        sy_log_error("pair %s: %s", p->cfg->name, s->error);
        return;
    }
    if (s->applied != NULL)
        s->applied(s->arg, p, side_changed);
}

void sy_shared_epoch_apply(struct sy_shared_epoch *s)
{
    apply(s);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    apply(arg);
}

/* A value of the key seen at revision rev (from a read, a watch event or a failed CAS). */
static void seen(struct sy_shared_epoch *s, json_t *kv, int64_t rev)
{
    if (s->known && rev <= s->mod_rev)
        return;                                    /* older than what we have (the CAS's own put) */
    size_t len = 0;
    char *text = kv ? sy_etcd_unb64(json_string_value(json_object_get(kv, "value")) ?: "", &len) : NULL;
    json_error_t je;
    json_t *v = text ? json_loadb(text, len, 0, &je) : NULL;
    json_t *epoch = json_object_get(v, "epoch");
    const char *side = json_string_value(json_object_get(v, "side"));
    if (!json_is_integer(epoch) || json_integer_value(epoch) < 1 || side == NULL ||
        (strcmp(side, "business") != 0 && strcmp(side, "dr") != 0)) {
        snprintf(s->error, sizeof s->error, "%s at revision %" PRId64 " is %s, not {\"epoch\": N >= 1, \"side\": "
                 "\"business\"|\"dr\"}: keeping epoch %" PRIu64, s->key, rev, kv ? "malformed" : "deleted",
                 s->p->epoch);
        sy_log_error("pair %s: %s", s->p->cfg->name, s->error);
    } else {
        s->known = true;
        s->epoch = (uint64_t)json_integer_value(epoch);
        s->side = strcmp(side, "dr") == 0 ? SY_SIDE_DR : SY_SIDE_BUSINESS;
        s->mod_rev = rev;
        s->error[0] = '\0';
        if (s->epoch != s->p->epoch || s->side != s->p->active_side)
            sy_log_info("pair %s: the cluster's epoch is %" PRIu64 " (%s side active, revision %" PRId64 ")",
                        s->p->cfg->name, s->epoch, side, rev);
    }
    json_decref(v);
    free(text);
    apply(s);
}

static void on_event(void *arg, json_t *kv, bool deleted, int64_t rev)
{
    seen(arg, deleted ? NULL : kv, rev);
}

static void on_read(void *arg, json_t *reply, const char *err)
{
    struct sy_shared_epoch *s = arg;
    s->reading = false;
    if (reply == NULL) {
        snprintf(s->error, sizeof s->error, "reading %s: %s", s->key, err);
        return;
    }
    s->last_ok_ms = sy_now_ms();
    int64_t rev;
    if (json_is_true(json_object_get(reply, "succeeded"))) {      /* created with this node's epoch */
        rev = int_field(json_object_get(reply, "header"), "revision");
        s->known = true;
        s->epoch = s->p->epoch;
        s->side = s->p->active_side;
        s->mod_rev = rev;
        s->error[0] = '\0';
        sy_log_info("pair %s: created the cluster's epoch %" PRIu64 " (%s side active)", s->p->cfg->name, s->epoch,
                    sy_side_name(s->side));
    } else {
        json_t *range = json_object_get(json_array_get(json_object_get(reply, "responses"), 0), "response_range");
        json_t *kv = json_array_get(json_object_get(range, "kvs"), 0);
        rev = int_field(kv, "mod_revision");
        seen(s, kv, rev);
        /* The watch may deliver a change a moment after a read shows it; still not one period later, the
         * stream is stuck (a paused member) or cut: made again from here. */
        if (s->watch != NULL && rev > 0 && sy_etcd_watch_next_revision(s->watch) <= rev) {
            if (s->behind_rev != 0 && s->behind_rev <= rev) {
                sy_log_warn("pair %s: the watch of %s did not deliver revision %" PRId64 ": making it again",
                            s->p->cfg->name, s->key, s->behind_rev);
                sy_etcd_watch_restart(s->watch, rev + 1);
                s->behind_rev = 0;
            } else {
                s->behind_rev = rev;
            }
        } else {
            s->behind_rev = 0;
        }
    }
    apply(s);                                     /* also what could not be applied before (a switch ran) */
    struct sy_pair *p = s->p;
    if (p->cut_off && s->known && p->epoch == s->epoch && p->active_side == s->side &&
        sy_cluster_lease(s->c) != 0) {
        /* registered (again) too: a coordinator waits for this node's acknowledgement from now on */
        __atomic_store_n(&p->cut_off, false, __ATOMIC_RELEASE);
        sy_log_info("pair %s: etcd answers: the cluster's epoch %" PRIu64 " (%s side) applied, releasing",
                    p->cfg->name, p->epoch, sy_side_name(p->active_side));
        sy_pair_release(p, "etcd answers");
        if (!s->confirmed && s->applied != NULL)
            s->applied(s->arg, p, true);           /* the writes follow the confirmed epoch */
        s->confirmed = true;
    }
    if (s->watch == NULL && s->known)
        s->watch = sy_etcd_watch_start(s->etcd, s->key, false, s->mod_rev + 1, on_event, s);
}

/* Creates the key from this node's epoch if it is absent, else reads it: one transaction. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct sy_shared_epoch *s = arg;
    if (s->reading)
        return;
    struct sy_etcd_txn t;
    sy_etcd_txn_init(&t);
    sy_etcd_txn_compare(&t, s->key, SY_ETCD_CREATE, 0);
    sy_etcd_txn_put_json(&t, SY_ETCD_SUCCESS, s->key, value_of(s->p->epoch, s->p->active_side), 0);
    sy_etcd_txn_range(&t, SY_ETCD_FAILURE, s->key);
    if (sy_etcd_txn_post(s->etcd, &t, on_read, s) == 0)
        s->reading = true;
}

static void on_check(evutil_socket_t fd, short what, void *arg)
{
    struct sy_shared_epoch *s = arg;
    struct sy_pair *p = s->p;
    uint64_t now = sy_now_ms(), ttl = (uint64_t)sy_cluster_lease_ttl_ms(s->c);
    if (!p->cut_off && now - s->last_ok_ms > ttl && p->op == NULL) {
        /* (a switch of this node's own ends by its own deadline first) */
        __atomic_store_n(&p->cut_off, true, __ATOMIC_RELEASE);
        sy_log_warn("pair %s: etcd did not answer for %llu ms, longer than the lease (%llu ms): the active side may "
                    "change without this node: holding new requests (at most max_hold_ms=%d ms each, then an "
                    "error) until etcd answers", p->cfg->name, (unsigned long long)(now - s->last_ok_ms),
                    (unsigned long long)ttl, p->cfg->max_hold_ms);
        sy_pair_hold_for_switch(p);
    }
    if (p->cut_off && p->proto->fail_held != NULL) {
        char msg[300];
        snprintf(msg, sizeof msg, "Switchyard: this proxy has lost etcd for %llu ms (longer than its lease): the "
                 "active database may have changed, so the request was held max_hold_ms=%d ms and refused; retry "
                 "through another proxy or later", (unsigned long long)(now - s->last_ok_ms), p->cfg->max_hold_ms);
        size_t n = p->proto->fail_held(p->proto_state, (uint64_t)p->cfg->max_hold_ms, msg);
        if (n > 0)
            sy_log_warn("pair %s: etcd unreachable: %zu held session(s) refused after max_hold_ms=%d ms",
                        p->cfg->name, n, p->cfg->max_hold_ms);
    }
}

struct sy_shared_epoch *sy_shared_epoch_start(struct sy_cluster *c, struct sy_pair *p,
                                              sy_shared_epoch_applied_fn applied, void *arg)
{
    struct sy_shared_epoch *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->p = p;
    s->etcd = sy_cluster_etcd(c);
    s->applied = applied;
    s->arg = arg;
    snprintf(s->key, sizeof s->key, "%spairs/%s/active", SY_CLUSTER_PREFIX, p->cfg->name);
    s->c = c;
    s->last_ok_ms = sy_now_ms();
    /* Until etcd confirms the epoch, this node does not know the active side: held like a node cut off. */
    __atomic_store_n(&p->cut_off, true, __ATOMIC_RELEASE);
    sy_pair_hold_for_switch(p);
    s->retry = evtimer_new(p->base, on_retry, s);
    s->check = event_new(p->base, -1, EV_PERSIST, on_check, s);
    struct timeval every = { 0, CUT_OFF_CHECK_MS * 1000 };
    s->tick = s->retry != NULL && s->check != NULL ? sy_cluster_ticker_new(c, on_tick, s) : NULL;
    if (s->tick == NULL || event_add(s->check, &every) != 0) {
        sy_shared_epoch_free(s);
        return NULL;
    }
    return s;
}

void sy_shared_epoch_free(struct sy_shared_epoch *s)
{
    if (s == NULL)
        return;
    sy_etcd_forget(s->etcd, s);
    sy_etcd_watch_free(s->watch);
    if (s->tick != NULL)
        event_free(s->tick);
    if (s->retry != NULL)
        event_free(s->retry);
    if (s->check != NULL)
        event_free(s->check);
    free(s);
}

bool sy_shared_epoch_is_current(const struct sy_shared_epoch *s, char *why, size_t whylen)
{
    if (!s->known) {
        snprintf(why, whylen, "this node has not read the cluster's epoch of the pair from etcd yet%s%s",
                 s->error[0] ? ": " : "", s->error);
        return false;
    }
    if (s->epoch != s->p->epoch || s->side != s->p->active_side) {
        snprintf(why, whylen, "this node applied epoch %" PRIu64 " (%s) but the cluster's is %" PRIu64 " (%s): it "
                 "is being applied", s->p->epoch, sy_side_name(s->p->active_side), s->epoch, sy_side_name(s->side));
        return false;
    }
    return true;
}

static void on_cas(void *arg, json_t *reply, const char *err)
{
    struct sy_shared_epoch *s = arg;
    sy_shared_epoch_cas_fn done = s->cas_done;
    s->cas_done = NULL;
    char msg[600];
    if (reply == NULL) {
        snprintf(msg, sizeof msg, "moving the cluster's epoch in etcd: %s", err);
        done(s->cas_arg, -1, msg);
        return;
    }
    int64_t rev = int_field(json_object_get(reply, "header"), "revision");
    if (json_is_true(json_object_get(reply, "succeeded"))) {
        s->epoch = s->cas_epoch;
        s->side = s->cas_side;
        s->mod_rev = rev;
        done(s->cas_arg, 0, NULL);
        return;
    }
    int64_t expected = s->mod_rev;
    json_t *range = json_object_get(json_array_get(json_object_get(reply, "responses"), 0), "response_range");
    json_t *kv = json_array_get(json_object_get(range, "kvs"), 0);
    seen(s, kv, int_field(kv, "mod_revision"));
    if (int_field(kv, "mod_revision") == expected)
        snprintf(msg, sizeof msg, "this node no longer owns %s (its owner key changed): the cluster's epoch was "
                 "not moved", s->p->cfg->name);
    else
        snprintf(msg, sizeof msg, "the cluster's epoch moved under this switch (%s was at revision %" PRId64 ", now "
             "%" PRId64 ": epoch %" PRIu64 ", %s side)", s->key, expected, int_field(kv, "mod_revision"), s->epoch,
             sy_side_name(s->side));
    done(s->cas_arg, -1, msg);
}

void sy_shared_epoch_cas(struct sy_shared_epoch *s, uint64_t epoch, enum sy_side side, uint64_t owner_token,
                         const char *with_key, json_t *with_value, sy_shared_epoch_cas_fn done, void *arg)
{
    char why[400];
    if (s->cas_done != NULL || !sy_shared_epoch_is_current(s, why, sizeof why)) {
        done(arg, -1, s->cas_done != NULL ? "a move of the cluster's epoch is in flight" : why);
        return;
    }
    struct sy_etcd_txn t;
    sy_etcd_txn_init(&t);
    sy_etcd_txn_compare(&t, s->key, SY_ETCD_MOD, s->mod_rev);
    if (owner_token != 0 && owner_token <= INT64_MAX) {
        char owner[300];
        snprintf(owner, sizeof owner, "%spairs/%s/owner", SY_CLUSTER_PREFIX, s->p->cfg->name);
        sy_etcd_txn_compare(&t, owner, SY_ETCD_CREATE, (int64_t)owner_token);
    }
    sy_etcd_txn_put_json(&t, SY_ETCD_SUCCESS, s->key, value_of(epoch, side), 0);
    if (with_key != NULL && with_value != NULL)
        sy_etcd_txn_put_json(&t, SY_ETCD_SUCCESS, with_key, json_incref(with_value), 0);
    sy_etcd_txn_range(&t, SY_ETCD_FAILURE, s->key);
    s->cas_done = done;
    s->cas_arg = arg;
    s->cas_epoch = epoch;
    s->cas_side = side;
    if (sy_etcd_txn_post(s->etcd, &t, on_cas, s) != 0) {
        s->cas_done = NULL;
        done(arg, -1, "out of memory");
    }
}

bool sy_shared_epoch_seen(const struct sy_shared_epoch *s, uint64_t *epoch, enum sy_side *side)
{
    *epoch = s->epoch;
    *side = s->side;
    return s->known;
}

json_t *sy_shared_epoch_status_json(const struct sy_shared_epoch *s)
{
    json_t *o = json_pack("{s:s,s:s,s:b,s:I}", "watch", s->watch ? sy_etcd_watch_state(s->watch) : "connecting",
                          "error", s->error, "cut_off", s->p->cut_off, "unanswered_ms",
                          (json_int_t)(sy_now_ms() - s->last_ok_ms));
    if (s->known) {
        char rev[32];
        snprintf(rev, sizeof rev, "%" PRId64, s->mod_rev);
        json_object_set_new(o, "epoch", json_integer((json_int_t)s->epoch));
        json_object_set_new(o, "side", json_string(sy_side_name(s->side)));
        json_object_set_new(o, "revision", json_string(rev));
    }
    return o;
}
