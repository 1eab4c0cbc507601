/* core/cluster_tail.c: what the forward collector left for the tail read travels in the etcd tail record
 * (collector_state) and comes back as the file a tail read is given: MongoDB's taken set, made by
 * capture/mongo_taken.c, attached by a failover, read back from the record, restored elsewhere and loaded
 * there as the old owner's collector dir would have been. Beyond the bound it is dropped, saying why. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture/mongo_taken.h"
#include "core/cluster_tail.h"
#include "core/etcd.h"
#include "core/state_file.h"
#include "check.h"

static json_t *new_tail(void)
{
    return json_pack("{s:s,s:s,s:s}", "collected_position", "1733250000:7", "ack_ledger_position", "1733250000:7",
                     "failover_at", "2026-12-05T00:00:00Z");
}

/* The record as etcd's range answers it (value base64'd), then parsed as a takeover does. */
static json_t *through_etcd(json_t *value)
{
    char *text = json_dumps(value, JSON_COMPACT);
    char *b = sy_etcd_b64(text, strlen(text));
    json_t *reply = json_pack("{s:[{s:s}]}", "kvs", "value", b);
    json_t *rec = sy_cluster_tail_parse(reply);
    json_decref(reply);
    free(b);
    free(text);
    return rec;
}

static void test_the_set_travels_and_is_read_back(const char *root)
{
    char old_dir[512], new_dir[512], err[512], why[1400];
    snprintf(old_dir, sizeof old_dir, "%s/old", root);
    snprintf(new_dir, sizeof new_dir, "%s/new/pairs/p.tail-collector", root);
    CHECK(sy_mkdirs(old_dir, err, sizeof err) == 0);
    struct sy_mongo_ts pos = { 1733250000, 7 }, after = { 1733249968, UINT32_MAX };
    uint64_t keys[] = { (uint64_t)1733250000 << 32 | 7, (uint64_t)1733250000 << 32 | 5, 0 };
    CHECK(sy_mongo_taken_save(old_dir, pos, after, keys, 3, err, sizeof err) == 0);

    json_t *tail = new_tail();
    sy_cluster_tail_collector_attach(tail, old_dir, "p");
    CHECK(json_is_object(json_object_get(tail, "collector_state")));
    CHECK(json_object_get(tail, "collector_state_dropped") == NULL);
    json_t *pub = sy_cluster_tail_public(tail);              /* status, answers, the state file */
    CHECK(json_object_get(pub, "collector_state") == NULL && json_object_get(pub, "collected_position") != NULL);
    CHECK(json_object_get(tail, "collector_state") != NULL);  /* the original keeps it */
    json_decref(pub);

    json_t *value = sy_cluster_tail_value(tail, "n1");
    json_t *rec = through_etcd(value);
    CHECK(rec != NULL && json_object_get(rec, "node") == NULL);
    CHECK(json_equal(json_object_get(rec, "collector_state"), json_object_get(tail, "collector_state")));

    CHECK(sy_cluster_tail_collector_restore(json_object_get(rec, "collector_state"), new_dir, err, sizeof err) == 0);
    struct sy_mongo_ts got_after;
    uint64_t *got = NULL;
    size_t n = 0;
    CHECK(sy_mongo_taken_load(new_dir, pos, false, &got_after, &got, &n, why, sizeof why) == 1);
    CHECK(n == 2 && sy_mongo_taken_has(got, n, keys[0]) && sy_mongo_taken_has(got, n, keys[1]));
    CHECK(sy_mongo_ts_cmp(got_after, after) == 0);
    free(got);
    sy_cluster_tail_collector_remove(new_dir);
    struct stat st;
    CHECK(stat(new_dir, &st) != 0);
    json_decref(rec);
    json_decref(value);
    json_decref(tail);
}

static void test_none_and_too_large(const char *root)
{
    char dir[512], path[600], err[512];
    snprintf(dir, sizeof dir, "%s/big", root);
    CHECK(sy_mkdirs(dir, err, sizeof err) == 0);
    json_t *tail = new_tail();
    sy_cluster_tail_collector_attach(tail, dir, "p");        /* no file: nothing said */
    CHECK(json_object_get(tail, "collector_state") == NULL && json_object_get(tail, "collector_state_dropped") == NULL);
    size_t len = SY_CLUSTER_TAIL_COLLECTOR_MAX + 1;
    char *text = malloc(len);
    CHECK(text != NULL);
    memset(text, ' ', len);
    text[0] = '{';
    text[len - 1] = '}';
    snprintf(path, sizeof path, "%s/%s", dir, SY_INSTANCE_TAIL_FILE);
    CHECK(sy_write_file_atomic(path, text, len, false, err, sizeof err) == 0);
    free(text);
    sy_cluster_tail_collector_attach(tail, dir, "p");
    CHECK(json_object_get(tail, "collector_state") == NULL);
    const char *why = json_string_value(json_object_get(tail, "collector_state_dropped"));
    CHECK(why != NULL && strstr(why, "more than the 524288 a tail record carries") != NULL);
    json_t *value = sy_cluster_tail_value(tail, "n1");        /* the record says why too */
    CHECK(json_equal(json_object_get(value, "collector_state_dropped"), json_object_get(tail, "collector_state_dropped")));
    json_decref(value);
    json_decref(tail);
}

int main(void)
{
    char root[] = "/tmp/sy-unit-cluster-tail-XXXXXX";
    CHECK(mkdtemp(root) != NULL);
    test_the_set_travels_and_is_read_back(root);
    test_none_and_too_large(root);
    char err[512];
    CHECK(sy_rmtree(root, err, sizeof err) == 0);
    return CHECK_DONE();
}
