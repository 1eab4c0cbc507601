/* Paused and terminated instances kept in etcd across owners (core/cluster_held.h). One key a direction
 * under the pair; no lease: it must outlive every node (a new owner reads it long after the old one died). */
#include "core/cluster_held.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cluster.h"

static void held_key(char *out, size_t outlen, const char *pair, const char *dir)
{
    snprintf(out, outlen, "%spairs/%s/instances/%s", SY_CLUSTER_PREFIX, pair, dir);
}

int sy_cluster_held_put(struct sy_etcd *e, const char *pair, enum sy_direction dir, const char *held,
                        const char *node, uint64_t owner_token, sy_etcd_done done, void *arg)
{
    if (owner_token == 0 || owner_token > INT64_MAX)
        return -1;
    char key[240], owner[240];
    held_key(key, sizeof key, pair, dir == SY_DIR_FORWARD ? "forward" : "reverse");
    snprintf(owner, sizeof owner, "%spairs/%s/owner", SY_CLUSTER_PREFIX, pair);
    struct sy_etcd_txn t;
    sy_etcd_txn_init(&t);
    /* only while the owner key is still the one this node created (its token): a node that lost the pair
     * meanwhile, or a request etcd.c sends again late, cannot undo what the new owner's operator did */
    sy_etcd_txn_compare(&t, owner, SY_ETCD_CREATE, (int64_t)owner_token);
    if (held != NULL)
        sy_etcd_txn_put_json(&t, SY_ETCD_SUCCESS, key, json_pack("{s:s,s:s}", "state", held, "node", node), 0);
    else
        sy_etcd_txn_delete(&t, SY_ETCD_SUCCESS, key, false);
    return sy_etcd_txn_post(e, &t, done, arg);
}

bool sy_cluster_held_recorded(json_t *reply)
{
    return json_is_true(json_object_get(reply, "succeeded"));
}

int sy_cluster_held_read(struct sy_etcd *e, const char *pair, sy_etcd_done done, void *arg)
{
    char key[240];
    held_key(key, sizeof key, pair, "");
    char *k = sy_etcd_b64(key, strlen(key)), *end = sy_etcd_prefix_end_b64(key);
    json_t *body = k && end ? json_pack("{s:s,s:s}", "key", k, "range_end", end) : NULL;
    free(k);
    free(end);
    return body != NULL ? sy_etcd_post(e, "/v3/kv/range", body, done, arg) : -1;
}

void sy_cluster_held_parse(json_t *reply, char forward[16], char reverse[16])
{
    forward[0] = reverse[0] = '\0';
    json_t *kv;
    size_t i;
    json_array_foreach(json_object_get(reply, "kvs"), i, kv) {
        size_t len = 0;
        char *key = sy_etcd_unb64(json_string_value(json_object_get(kv, "key")) ?: "", &len);
        char *text = sy_etcd_unb64(json_string_value(json_object_get(kv, "value")) ?: "", &len);
        json_t *v = text ? json_loads(text, 0, NULL) : NULL;
        const char *st = json_string_value(json_object_get(v, "state"));
        const char *slash = key ? strrchr(key, '/') : NULL;
        char *out = slash == NULL ? NULL : strcmp(slash, "/forward") == 0 ? forward
                                         : strcmp(slash, "/reverse") == 0 ? reverse : NULL;
        if (out != NULL)   /* a value not understood holds the instance: paused, never run by mistake */
            snprintf(out, 16, "%s", st != NULL && strcmp(st, "terminated") == 0 ? "terminated" : "paused");
        json_decref(v);
        free(text);
        free(key);
    }
}
