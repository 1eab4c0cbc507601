/* A failover's tail kept in etcd across owners (core/cluster_tail.h). No lease: it must outlive every node. */
#include "core/cluster_tail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/cluster.h"
#include "core/instance.h"
#include "core/log.h"
#include "core/state_file.h"

void sy_cluster_tail_key(char *out, size_t outlen, const char *pair)
{
    snprintf(out, outlen, "%spairs/%s/tail", SY_CLUSTER_PREFIX, pair);
}

json_t *sy_cluster_tail_value(json_t *tail, const char *node)
{
    json_t *v = json_pack("{s:O*,s:O*,s:O*,s:s}", "collected_position", json_object_get(tail, "collected_position"),
                          "ack_ledger_position", json_object_get(tail, "ack_ledger_position"), "failover_at",
                          json_object_get(tail, "failover_at"), "node", node);
    static const char *const carried[] = { "collector_state", "collector_state_dropped" };
    for (size_t k = 0; v != NULL && k < sizeof carried / sizeof carried[0]; k++)
        if (json_object_get(tail, carried[k]) != NULL)
            json_object_set(v, carried[k], json_object_get(tail, carried[k]));
    return v;
}

void sy_cluster_tail_collector_attach(json_t *tail, const char *instance_dir, const char *pair)
{
    char path[1300], err[512], why[700];
    struct stat st;
    int missing = 0;
    snprintf(path, sizeof path, "%s/%s", instance_dir, SY_INSTANCE_TAIL_FILE);
    if (stat(path, &st) != 0)
        return;                                     /* none left (engine, crash, failed collector) */
    if (st.st_size > SY_CLUSTER_TAIL_COLLECTOR_MAX) {
        snprintf(why, sizeof why, "%s is %lld bytes, more than the %d a tail record carries", path,
                 (long long)st.st_size, SY_CLUSTER_TAIL_COLLECTOR_MAX);
    } else {
        json_t *state = sy_state_read_json(path, &missing, err, sizeof err);
        if (state != NULL) {
            json_object_set_new(tail, "collector_state", state);
            return;
        }
        snprintf(why, sizeof why, "%s: %s", path, missing ? "gone" : err);
    }
    sy_log_warn("pair %s: failover: the tail record in etcd goes without what the forward collector took near its "
                "position (%s): another owner's tail read would start at the collected position alone",
                pair, why);
    json_object_set_new(tail, "collector_state_dropped", json_string(why));
}

int sy_cluster_tail_collector_restore(const json_t *state, const char *dir, char *err, size_t errlen)
{
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", dir, SY_INSTANCE_TAIL_FILE);
    return sy_mkdirs(dir, err, errlen) == 0 && sy_state_write_json(path, state, err, errlen) == 0 ? 0 : -1;
}

void sy_cluster_tail_collector_remove(const char *dir)
{
    char err[512];
    if (sy_rmtree(dir, err, sizeof err) != 0)
        sy_log_warn("%s", err);
}

json_t *sy_cluster_tail_public(json_t *tail)
{
    json_t *t = json_copy(tail);
    json_object_del(t, "collector_state");
    return t;
}

int sy_cluster_tail_put(struct sy_etcd *e, const char *pair, json_t *tail, const char *node, uint64_t owner_token,
                        sy_etcd_done done, void *arg)
{
    if (owner_token == 0 || owner_token > INT64_MAX)
        return -1;
    char key[240], owner[240];
    sy_cluster_tail_key(key, sizeof key, pair);
    snprintf(owner, sizeof owner, "%spairs/%s/owner", SY_CLUSTER_PREFIX, pair);
    struct sy_etcd_txn t;
    sy_etcd_txn_init(&t);
    sy_etcd_txn_compare(&t, owner, SY_ETCD_CREATE, (int64_t)owner_token);
    if (tail != NULL) {
        sy_etcd_txn_put_json(&t, SY_ETCD_SUCCESS, key, sy_cluster_tail_value(tail, node), 0);
    } else {
        sy_etcd_txn_delete(&t, SY_ETCD_SUCCESS, key, false);
    }
    return sy_etcd_txn_post(e, &t, done, arg);
}

int sy_cluster_tail_read(struct sy_etcd *e, const char *pair, sy_etcd_done done, void *arg)
{
    char key[240];
    sy_cluster_tail_key(key, sizeof key, pair);
    char *k = sy_etcd_b64(key, strlen(key));
    json_t *body = k ? json_pack("{s:s}", "key", k) : NULL;
    free(k);
    return body != NULL ? sy_etcd_post(e, "/v3/kv/range", body, done, arg) : -1;
}

json_t *sy_cluster_tail_parse(json_t *reply)
{
    json_t *kv = json_array_get(json_object_get(reply, "kvs"), 0);
    if (kv == NULL)
        return NULL;
    size_t len = 0;
    char *text = sy_etcd_unb64(json_string_value(json_object_get(kv, "value")) ?: "", &len);
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (!json_is_object(v)) {
        json_decref(v);
        v = json_object();       /* not understood: a tail all the same (pending, nothing collected) */
    }
    json_object_del(v, "node");
    return v;
}
