/* core/etcd.c: the transaction builder (sy_etcd_txn_*): the JSON-gateway body it makes, keys and values
 * base64'd, and a bad step that makes the whole transaction unsendable; and a request that cannot even be
 * sent failing from the loop, never inside sy_etcd_post. */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/etcd.h"
#include "check.h"

/* The body as compact JSON with every base64 key, range_end and value decoded, for comparing as text. */
static char *plain(json_t *body)
{
    static const char *const lists[] = { "compare", "success", "failure" };
    static const char *const fields[] = { "key", "range_end", "value" };
    for (size_t l = 0; l < 3; l++) {
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(body, lists[l]), i, item) {
            const char *op;
            json_t *inner;
            json_t *targets[4] = { item };
            size_t n = 1;
            json_object_foreach(item, op, inner)
                if (json_is_object(inner) && n < 4)
                    targets[n++] = inner;
            for (size_t t = 0; t < n; t++)
                for (size_t f = 0; f < 3; f++) {
                    const char *b = json_string_value(json_object_get(targets[t], fields[f]));
                    size_t len = 0;
                    char *text = b ? sy_etcd_unb64(b, &len) : NULL;
                    if (text != NULL)
                        json_object_set_new(targets[t], fields[f], json_string(text));
                    free(text);
                }
        }
    }
    char *s = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(body);
    return s;
}

static void test_create_if_absent_else_read(void)
{
    struct sy_etcd_txn t;
    sy_etcd_txn_init(&t);
    sy_etcd_txn_compare(&t, "/switchyard/pairs/p/owner", SY_ETCD_CREATE, 0);
    sy_etcd_txn_put_json(&t, SY_ETCD_SUCCESS, "/switchyard/pairs/p/owner",
                         json_pack("{s:s,s:s}", "node", "n1", "admin_socket", "/run/s"), 42);
    sy_etcd_txn_range(&t, SY_ETCD_FAILURE, "/switchyard/pairs/p/owner");
    char *s = plain(sy_etcd_txn_take(&t));
    CHECK(s != NULL && strcmp(s, "{\"compare\":[{\"create_revision\":\"0\",\"key\":\"/switchyard/pairs/p/owner\","
                                 "\"result\":\"EQUAL\",\"target\":\"CREATE\"}],"
                                 "\"failure\":[{\"request_range\":{\"key\":\"/switchyard/pairs/p/owner\"}}],"
                                 "\"success\":[{\"request_put\":{\"key\":\"/switchyard/pairs/p/owner\",\"lease\":\"42\","
                                 "\"value\":\"{\\\"admin_socket\\\":\\\"/run/s\\\",\\\"node\\\":\\\"n1\\\"}\"}}]}") == 0);
    free(s);
}

static void test_compare_mod_then_delete(void)
{
    struct sy_etcd_txn t;
    sy_etcd_txn_init(&t);
    sy_etcd_txn_compare(&t, "/k", SY_ETCD_MOD, 1234567890123);
    sy_etcd_txn_compare(&t, "/v", SY_ETCD_VERSION, 3);
    sy_etcd_txn_delete(&t, SY_ETCD_SUCCESS, "/dir/", true);      /* every key under it: range_end "/dir0" */
    sy_etcd_txn_delete(&t, SY_ETCD_SUCCESS, "/lock", false);
    sy_etcd_txn_put(&t, SY_ETCD_SUCCESS, "/plain", "text", 0);   /* no lease: none sent */
    sy_etcd_txn_range_prefix(&t, SY_ETCD_FAILURE, "/req/", true); /* keys under it, without values */
    char *s = plain(sy_etcd_txn_take(&t));
    CHECK(s != NULL && strcmp(s, "{\"compare\":[{\"key\":\"/k\",\"mod_revision\":\"1234567890123\",\"result\":\"EQUAL\","
                                 "\"target\":\"MOD\"},{\"key\":\"/v\",\"result\":\"EQUAL\",\"target\":\"VERSION\","
                                 "\"version\":\"3\"}],\"failure\":[{\"request_range\":{\"key\":\"/req/\","
                                 "\"keys_only\":true,\"range_end\":\"/req0\"}}],"
                                 "\"success\":[{\"request_delete_range\":{\"key\":\"/dir/\",\"range_end\":\"/dir0\"}},"
                                 "{\"request_delete_range\":{\"key\":\"/lock\"}},"
                                 "{\"request_put\":{\"key\":\"/plain\",\"value\":\"text\"}}]}") == 0);
    free(s);
}

static void test_a_lost_step_makes_it_unsendable(void)
{
    struct sy_etcd_txn t;
    sy_etcd_txn_init(&t);
    sy_etcd_txn_compare(&t, "/k", SY_ETCD_CREATE, 0);
    sy_etcd_txn_put_json(&t, SY_ETCD_SUCCESS, "/k", NULL, 0);   /* the value could not be made */
    sy_etcd_txn_put(&t, SY_ETCD_SUCCESS, "/k2", "v", 0);         /* later steps do not undo it */
    CHECK(t.bad);
    CHECK(sy_etcd_txn_take(&t) == NULL);
    CHECK(sy_etcd_txn_post(NULL, &t, NULL, NULL) == -1);         /* nothing sent, no callback */
    sy_etcd_txn_init(&t);
    char long_key[300];
    memset(long_key, 'a', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    sy_etcd_txn_delete(&t, SY_ETCD_SUCCESS, long_key, true);     /* too long for a prefix's range_end */
    CHECK(sy_etcd_txn_take(&t) == NULL);
}

static int answers;
static char answer_err[300];

static void on_done(void *arg, json_t *reply, const char *err)
{
    answers++;
    snprintf(answer_err, sizeof answer_err, "%s", reply == NULL && err != NULL ? err : "");
    *(int *)arg = answers;
}

/* A name that does not resolve: the request cannot be sent at all. The callback runs later, from the loop
 * (a caller that marks its request in flight after posting must not find it answered already). */
static void test_a_request_that_cannot_be_sent_fails_from_the_loop(void)
{
    struct event_base *base = event_base_new();
    char err[200];
    struct sy_etcd *e = sy_etcd_new(base, "http://nonexistent.invalid:2379", 500, err, sizeof err);
    CHECK(e != NULL);
    if (e == NULL) {
        event_base_free(base);
        return;
    }
    int seen = 0;
    CHECK(sy_etcd_post(e, "/v3/kv/range", json_pack("{s:s}", "key", "eA=="), on_done, &seen) == 0);
    CHECK(seen == 0);                                              /* not inside the post */
    for (int i = 0; i < 100 && seen == 0; i++)
        event_base_loop(base, EVLOOP_ONCE);
    CHECK(seen == 1 && answer_err[0] != '\0');
    sy_etcd_free(e);
    event_base_free(base);
}

int main(void)
{
    test_a_request_that_cannot_be_sent_fails_from_the_loop();
    test_create_if_absent_else_read();
    test_compare_mod_then_delete();
    test_a_lost_step_makes_it_unsendable();
    return CHECK_DONE();
}
