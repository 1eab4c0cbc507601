/* The election of a pair's synchronization owner (core/election.h).
 *
 *   every lease period (and at once when the owner key is deleted):
 *     txn { if create_revision(owner) == 0: put owner = {node, admin_socket} under this node's lease
 *           else: range owner }
 *     succeeded                          -> this node owns (changed(true))
 *     the key names this node's lease    -> still owns (confirmed)
 *     the key names another node         -> not the owner (changed(false) if it was)
 *   every STEP_DOWN_CHECK_MS, as owner: the lease not renewed for 2/3 of its TTL (etcd unreachable, the
 *   process was paused) or replaced -> step down at once: the modules stop before etcd can expire the key
 *   and let another node win.
 * A node that steps down campaigns again like any other: it wins only once its old key is gone. */
#include "core/election.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cluster.h"
#include "core/etcd.h"
#include "core/log.h"

#define STEP_DOWN_CHECK_MS 100

struct sy_election {
    struct sy_pair *p;                 /* ref: the daemon's */
    struct sy_cluster *c;              /* ref: the daemon's */
    struct sy_etcd *etcd;              /* ref: owned by the cluster */
    char key[200];                     /* SY_CLUSTER_PREFIX "pairs/<pair>/owner" */
    char admin_socket[256];            /* this node's, published in the key (forwarded commands name it) */
    struct event *tick;                /* owned: campaign / confirm every lease period */
    struct event *check;               /* owned: the step-down check */
    struct sy_etcd_watch *watch;       /* owned: the owner key (a delete campaigns at once) */
    bool busy;                         /* a campaign in flight */
    bool owner;                        /* this node runs the pair's instances */
    int64_t owner_lease;               /* the lease this node's owner key lives under (owner only) */
    int64_t owner_rev;                 /* the key's create_revision: this ownership's fencing token
                                          (owner only; set just before become(true)) */
    uint64_t owner_since_ms;           /* monotonic: when it won */
    char owner_node[64];               /* who owns, as last read ("" none known) */
    char owner_socket[256];
    sy_election_changed_fn changed;
    void *arg;
    char error[300];                   /* the last problem ("" none) */
    bool stepped_down_stale;           /* this step-down is for a lease not renewed in time (the lease may still
                                          hold): not for a key lost, replaced or another node's */
    uint64_t lease_ends_ms;            /* at the last step-down: when its lease may end; 0 another may own now */
};

static int64_t int_field(json_t *o, const char *name)
{
    json_t *v = json_object_get(o, name);
    const char *s = json_string_value(v);
    return s != NULL ? strtoll(s, NULL, 10) : json_integer_value(v);   /* the gateway writes int64 as strings */
}

/* Whether the lease was renewed within 2/3 of its TTL (*lease: the lease granted now). An owner must be:
 * past that, etcd may expire the lease and let another node win. */
static bool lease_fresh(const struct sy_election *e, int64_t *lease, uint64_t *since_ms)
{
    uint64_t renewed = sy_cluster_lease_renewed_ms(e->c, lease), now = sy_now_ms();
    *since_ms = renewed ? now - renewed : 0;
    return *lease != 0 && renewed != 0 && now - renewed <= (uint64_t)sy_cluster_lease_ttl_ms(e->c) * 2 / 3;
}

/* When etcd may expire the lease this node holds at the earliest: its last renewal + TTL (0 unknown). */
static uint64_t lease_end(const struct sy_election *e)
{
    int64_t lease = 0;
    uint64_t renewed = sy_cluster_lease_renewed_ms(e->c, &lease);
    return renewed != 0 ? renewed + (uint64_t)sy_cluster_lease_ttl_ms(e->c) : 0;
}

static void become(struct sy_election *e, bool owner, const char *why)
{
    int64_t lease;
    uint64_t since;
    if (owner && !lease_fresh(e, &lease, &since))
        return;          /* the key is this node's, but its lease may be about to expire: once renewed */
    if (e->owner == owner)
        return;
    e->owner = owner;
    if (owner) {
        e->owner_lease = lease;
        e->owner_since_ms = sy_now_ms();
        snprintf(e->owner_node, sizeof e->owner_node, "%s", sy_cluster_node(e->c));
        snprintf(e->owner_socket, sizeof e->owner_socket, "%s", e->admin_socket);
        sy_log_info("pair %s: this node (%s) owns the synchronization (lease %" PRId64 ", owner token %"
                    PRId64 "): %s", e->p->cfg->name, e->owner_node, e->owner_lease, e->owner_rev, why);
    } else {
        e->owner_lease = 0;
        e->owner_rev = 0;
        e->lease_ends_ms = e->stepped_down_stale ? lease_end(e) : 0;
        e->stepped_down_stale = false;
        sy_log_warn("pair %s: this node (%s) steps down as owner of the synchronization: %s", e->p->cfg->name,
                    sy_cluster_node(e->c), why);
    }
    e->changed(e->arg, e->p, owner);
}

/* What the owner key says (kv NULL: absent). */
static void seen(struct sy_election *e, json_t *kv)
{
    if (kv == NULL) {
        e->owner_node[0] = e->owner_socket[0] = '\0';
        if (e->owner)
            become(e, false, "its owner key was deleted");
        event_active(e->tick, 0, 0);              /* campaign now */
        return;
    }
    size_t len = 0;
    char *text = sy_etcd_unb64(json_string_value(json_object_get(kv, "value")) ?: "", &len);
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    snprintf(e->owner_node, sizeof e->owner_node, "%s", json_string_value(json_object_get(v, "node")) ?: "");
    snprintf(e->owner_socket, sizeof e->owner_socket, "%s",
             json_string_value(json_object_get(v, "admin_socket")) ?: "");
    json_decref(v);
    int64_t lease = int_field(kv, "lease"), held = 0;
    sy_cluster_lease_renewed_ms(e->c, &held);
    bool mine = strcmp(e->owner_node, sy_cluster_node(e->c)) == 0 && lease != 0 && lease == held;
    if (mine && !e->owner) {
        e->owner_rev = int_field(kv, "create_revision");
        become(e, true, "its owner key names this node's lease");
    }
    else if (!mine && e->owner) {
        char why[200];
        snprintf(why, sizeof why, "the owner key names node '%s' (lease %" PRId64 ")", e->owner_node, lease);
        become(e, false, why);
    }
}

static void on_event(void *arg, json_t *kv, bool deleted, int64_t rev)
{
    seen(arg, deleted ? NULL : kv);
}

static void on_campaign(void *arg, json_t *reply, const char *err)
{
    struct sy_election *e = arg;
    e->busy = false;
    if (reply == NULL) {
        snprintf(e->error, sizeof e->error, "campaigning for %s: %s", e->key, err);
        return;
    }
    e->error[0] = '\0';
    int64_t rev = int_field(json_object_get(reply, "header"), "revision");
    if (json_is_true(json_object_get(reply, "succeeded"))) {
        if (!e->owner)
            e->owner_rev = rev;                   /* the transaction created the key: its create_revision */
        become(e, true, "created its owner key");
    } else {
        json_t *range = json_object_get(json_array_get(json_object_get(reply, "responses"), 0), "response_range");
        seen(e, json_array_get(json_object_get(range, "kvs"), 0));
    }
    if (e->watch == NULL && rev > 0)
        e->watch = sy_etcd_watch_start(e->etcd, e->key, false, rev + 1, on_event, e);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct sy_election *e = arg;
    int64_t lease = sy_cluster_lease(e->c);
    if (e->busy || lease == 0)
        return;
    struct sy_etcd_txn t;
    sy_etcd_txn_init(&t);
    sy_etcd_txn_compare(&t, e->key, SY_ETCD_CREATE, 0);
    sy_etcd_txn_put_json(&t, SY_ETCD_SUCCESS, e->key, json_pack("{s:s,s:s}", "node", sy_cluster_node(e->c),
                                                                "admin_socket", e->admin_socket), lease);
    sy_etcd_txn_range(&t, SY_ETCD_FAILURE, e->key);
    if (sy_etcd_txn_post(e->etcd, &t, on_campaign, e) == 0)
        e->busy = true;
}

/* An owner whose lease was not renewed for 2/3 of its TTL steps down before etcd can expire it. */
static void on_check(evutil_socket_t fd, short what, void *arg)
{
    struct sy_election *e = arg;
    if (!e->owner)
        return;
    int64_t lease;
    uint64_t since;
    bool fresh = lease_fresh(e, &lease, &since);
    char why[200];
    if (lease != e->owner_lease) {
        snprintf(why, sizeof why, "its lease %" PRId64 " expired (etcd unreachable or the process paused)",
                 e->owner_lease);
        become(e, false, why);
    } else if (!fresh) {
        snprintf(why, sizeof why, "its lease was not renewed for %" PRIu64 " ms (2/3 of its TTL): etcd may give the "
                 "synchronization to another node", since);
        e->stepped_down_stale = true;
        become(e, false, why);
    }
}

struct sy_election *sy_election_start(struct sy_cluster *c, struct sy_pair *p, const char *admin_socket,
                                      sy_election_changed_fn changed, void *arg)
{
    struct sy_election *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->p = p;
    e->c = c;
    e->etcd = sy_cluster_etcd(c);
    e->changed = changed;
    e->arg = arg;
    snprintf(e->key, sizeof e->key, "%spairs/%s/owner", SY_CLUSTER_PREFIX, p->cfg->name);
    snprintf(e->admin_socket, sizeof e->admin_socket, "%s", admin_socket);
    e->check = event_new(p->base, -1, EV_PERSIST, on_check, e);
    struct timeval tv = { 0, STEP_DOWN_CHECK_MS * 1000 };
    if (e->check == NULL || event_add(e->check, &tv) != 0 || (e->tick = sy_cluster_ticker_new(c, on_tick, e)) == NULL) {
        sy_election_free(e);
        return NULL;
    }
    return e;
}

void sy_election_free(struct sy_election *e)
{
    if (e == NULL)
        return;
    sy_etcd_watch_free(e->watch);
    if (e->etcd != NULL)
        sy_etcd_forget(e->etcd, e);
    if (e->tick)
        event_free(e->tick);
    if (e->check)
        event_free(e->check);
    free(e);
}

struct sy_etcd *sy_election_etcd(const struct sy_election *e)
{
    return e->etcd;
}

const char *sy_election_node(const struct sy_election *e)
{
    return sy_cluster_node(e->c);
}

bool sy_election_is_owner(const struct sy_election *e)
{
    return e != NULL && e->owner;
}

uint64_t sy_election_lease_ends_ms(const struct sy_election *e)
{
    return e != NULL ? e->lease_ends_ms : 0;
}

uint64_t sy_election_owner_token(const struct sy_election *e)
{
    return e != NULL && e->owner && e->owner_rev > 0 ? (uint64_t)e->owner_rev : 0;
}

const char *sy_election_owner(const struct sy_election *e)
{
    return e != NULL ? e->owner_node : "";
}

const char *sy_election_owner_socket(const struct sy_election *e)
{
    return e != NULL ? e->owner_socket : "";
}

json_t *sy_election_status_json(const struct sy_election *e)
{
    return json_pack("{s:s?,s:b,s:I,s:I,s:s?}", "owner", e->owner_node[0] ? e->owner_node : NULL,
                     "this_node_owns", e->owner, "since_ms",
                     (json_int_t)(e->owner ? sy_now_ms() - e->owner_since_ms : 0), "owner_token",
                     (json_int_t)(e->owner ? e->owner_rev : 0), "error", e->error[0] ? e->error : NULL);
}
