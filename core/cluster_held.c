/* What a new owner needs from etcd about a pair's instances (core/cluster_held.h): the paused and terminated
 * ones, and the reverse instance's record. No lease: they must outlive every node (a new owner reads them
 * long after the old one died). Every write is a transaction guarded by the writer's owner token. */
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

static void reverse_key(char *out, size_t outlen, const char *pair)
{
    snprintf(out, outlen, "%spairs/%s/reverse", SY_CLUSTER_PREFIX, pair);
}

/* A transaction whose success ops run only while the pair's owner key is the one this node created (its
 * token): a node that lost the pair meanwhile, or a request etcd.c sends again late, cannot undo what the
 * new owner's operator did. -1: no valid token. */
static int guarded_init(struct sy_etcd_txn *t, const char *pair, uint64_t owner_token)
{
    if (owner_token == 0 || owner_token > INT64_MAX)
        return -1;
    char owner[240];
    snprintf(owner, sizeof owner, "%spairs/%s/owner", SY_CLUSTER_PREFIX, pair);
    sy_etcd_txn_init(t);
    sy_etcd_txn_compare(t, owner, SY_ETCD_CREATE, (int64_t)owner_token);
    return 0;
}

int sy_cluster_held_put(struct sy_etcd *e, const char *pair, enum sy_direction dir, const char *held,
                        const char *node, uint64_t owner_token, const char *record, sy_etcd_done done, void *arg)
{
    struct sy_etcd_txn t;
    if (guarded_init(&t, pair, owner_token) != 0)
        return -1;
    char key[240];
    bool terminated = dir == SY_DIR_REVERSE && held != NULL && strcmp(held, "terminated") == 0;
    if (terminated) {               /* the record this node knows, or none; else: what is there (landed?) */
        reverse_key(key, sizeof key, pair);
        if (record != NULL && record[0] != '\0')
            sy_etcd_txn_compare_value(&t, key, record);
        else
            sy_etcd_txn_compare(&t, key, SY_ETCD_VERSION, 0);
        held_key(key, sizeof key, pair, "reverse");
        sy_etcd_txn_range(&t, SY_ETCD_FAILURE, key);
        reverse_key(key, sizeof key, pair);
        sy_etcd_txn_range(&t, SY_ETCD_FAILURE, key);
    }
    held_key(key, sizeof key, pair, dir == SY_DIR_FORWARD ? "forward" : "reverse");
    if (held != NULL)
        sy_etcd_txn_put_json(&t, SY_ETCD_SUCCESS, key, json_pack("{s:s,s:s}", "state", held, "node", node), 0);
    else
        sy_etcd_txn_delete(&t, SY_ETCD_SUCCESS, key, false);
    if (terminated) {
        reverse_key(key, sizeof key, pair);    /* a terminated reverse instance is made by no later owner */
        sy_etcd_txn_delete(&t, SY_ETCD_SUCCESS, key, false);
    }
    return sy_etcd_txn_post(e, &t, done, arg);
}

char *sy_cluster_reverse_text(const char *start_position, const char *created, const char *node)
{
    json_t *rec = json_pack("{s:s,s:s,s:s}", "start_position", start_position, "created", created, "node", node);
    char *text = rec ? json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(rec);
    return text;
}

int sy_cluster_reverse_put(struct sy_etcd *e, const char *pair, const char *text, uint64_t owner_token,
                           sy_etcd_done done, void *arg)
{
    struct sy_etcd_txn t;
    if (guarded_init(&t, pair, owner_token) != 0)
        return -1;
    char key[240];
    reverse_key(key, sizeof key, pair);
    sy_etcd_txn_put(&t, SY_ETCD_SUCCESS, key, text, 0);
    held_key(key, sizeof key, pair, "reverse");  /* a terminated one before: forgotten with it */
    sy_etcd_txn_delete(&t, SY_ETCD_SUCCESS, key, false);
    return sy_etcd_txn_post(e, &t, done, arg);
}


bool sy_cluster_held_recorded(json_t *reply)
{
    return json_is_true(json_object_get(reply, "succeeded"));
}

/* The read's ranges, in this order, in one transaction (all from the same revision). */
enum { READ_HELD_FORWARD, READ_HELD_REVERSE, READ_RECORD, READ__COUNT };

int sy_cluster_held_read(struct sy_etcd *e, const char *pair, sy_etcd_done done, void *arg)
{
    char key[240];
    struct sy_etcd_txn t;
    sy_etcd_txn_init(&t);
    held_key(key, sizeof key, pair, "forward");
    sy_etcd_txn_range(&t, SY_ETCD_SUCCESS, key);
    held_key(key, sizeof key, pair, "reverse");
    sy_etcd_txn_range(&t, SY_ETCD_SUCCESS, key);
    reverse_key(key, sizeof key, pair);
    sy_etcd_txn_range(&t, SY_ETCD_SUCCESS, key);
    return sy_etcd_txn_post(e, &t, done, arg);
}

/* The value of the i-th range of a reply, parsed (NULL: no key, or not JSON; *exists says which); raw (may be
 * NULL) gets its text when it fits (else ""). */
static json_t *read_value(json_t *reply, size_t i, bool *exists, char *raw, size_t rawlen)
{
    json_t *r = json_object_get(json_array_get(json_object_get(reply, "responses"), i), "response_range");
    json_t *kv = json_array_get(json_object_get(r, "kvs"), 0);
    *exists = kv != NULL;
    size_t len = 0;
    char *text = kv ? sy_etcd_unb64(json_string_value(json_object_get(kv, "value")) ?: "", &len) : NULL;
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    if (raw != NULL)
        snprintf(raw, rawlen, "%s", text && len < rawlen ? text : "");
    free(text);
    return v;
}

bool sy_cluster_terminate_landed(json_t *reply)
{
    bool held_exists, record_exists;
    json_t *held = read_value(reply, 0, &held_exists, NULL, 0);
    json_decref(read_value(reply, 1, &record_exists, NULL, 0));
    const char *st = json_string_value(json_object_get(held, "state"));
    bool landed = json_array_size(json_object_get(reply, "responses")) == 2 && st != NULL &&
                  strcmp(st, "terminated") == 0 && !record_exists;
    json_decref(held);
    return landed;
}

int sy_cluster_held_parse(json_t *reply, char forward[16], char reverse[16], struct sy_reverse_record *rec)
{
    forward[0] = reverse[0] = '\0';
    memset(rec, 0, sizeof *rec);
    json_t *responses = json_object_get(reply, "responses");
    if (!json_is_array(responses) || json_array_size(responses) != READ__COUNT)
        return -1;
    char *held[] = { [READ_HELD_FORWARD] = forward, [READ_HELD_REVERSE] = reverse };
    bool exists;
    for (size_t i = READ_HELD_FORWARD; i <= READ_HELD_REVERSE; i++) {
        json_t *v = read_value(reply, i, &exists, NULL, 0);
        const char *st = json_string_value(json_object_get(v, "state"));
        bool terminated = st != NULL && strcmp(st, "terminated") == 0;
        if (exists)        /* a value not understood holds the instance: paused, never run by mistake */
            snprintf(held[i], 16, "%s", terminated ? "terminated" : "paused");
        json_decref(v);
    }
    json_t *v = read_value(reply, READ_RECORD, &exists, rec->text, sizeof rec->text);
    const char *pos = json_string_value(json_object_get(v, "start_position"));
    const char *created = json_string_value(json_object_get(v, "created"));
    if (exists)
        rec->found = pos != NULL && pos[0] && created != NULL && strlen(pos) < sizeof rec->start_position &&
                     strlen(created) < sizeof rec->created && rec->text[0] != '\0' ? 1 : -1;
    if (rec->found == 1) {
        snprintf(rec->start_position, sizeof rec->start_position, "%s", pos);
        snprintf(rec->created, sizeof rec->created, "%s", created);
    }
    json_decref(v);
    return 0;
}
