/* engine/mongo_diff.c: MongoDB `$v: 2` oplog diffs -> update documents, on diffs of the shapes MongoDB 5+
 * logs (top-level u/i/d, nested object sub-diffs, array element updates) and the ones refused. */
#include <stdio.h>
#include <string.h>

#include <bson/bson.h>

#include "engine/mongo_diff.h"

static int failures;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);                       \
            failures++;                                                                                      \
        }                                                                                                    \
    } while (0)

/* Translates the relaxed-JSON `o` and compares the update's relaxed JSON with want (NULL: refused). */
static void check(const char *o_json, const char *want)
{
    bson_error_t e;
    bson_t *o = bson_new_from_json((const uint8_t *)o_json, -1, &e);
    if (o == NULL) {
        fprintf(stderr, "bad test JSON %s: %s\n", o_json, e.message);
        failures++;
        return;
    }
    bson_t update;
    const char *why = "";
    bool ok = sy_mongo_diff_to_update(o, &update, &why);
    char *got = bson_as_relaxed_extended_json(&update, NULL);
    if (want == NULL) {
        if (ok) {
            fprintf(stderr, "%s: expected a refusal, got %s\n", o_json, got);
            failures++;
        } else {
            CHECK(why[0] != '\0');
        }
    } else if (!ok || strcmp(got, want) != 0) {
        fprintf(stderr, "%s:\n  want %s\n  got  %s (%s)\n", o_json, want, ok ? got : "refused", why);
        failures++;
    }
    bson_free(got);
    bson_destroy(&update);
    bson_destroy(o);
}

int main(void)
{
    check("{\"$v\": 2, \"diff\": {\"u\": {\"a\": 1, \"b\": \"x\"}}}", "{ \"$set\" : { \"a\" : 1, \"b\" : \"x\" } }");
    check("{\"$v\": 2, \"diff\": {\"i\": {\"new\": [1, 2]}, \"d\": {\"gone\": false}}}",
          "{ \"$set\" : { \"new\" : [ 1, 2 ] }, \"$unset\" : { \"gone\" : \"\" } }");
    check("{\"$v\": 2, \"diff\": {\"sinner\": {\"u\": {\"x\": 5}, \"sdeep\": {\"d\": {\"y\": false}}}}}",
          "{ \"$set\" : { \"inner.x\" : 5 }, \"$unset\" : { \"inner.deep.y\" : \"\" } }");
    check("{\"$v\": 2, \"diff\": {\"sarr\": {\"a\": true, \"u1\": \"b\", \"s2\": {\"u\": {\"k\": 1}}}}}",
          "{ \"$set\" : { \"arr.1\" : \"b\", \"arr.2.k\" : 1 } }");
    check("{\"$v\": 2, \"diff\": {}}", "{ }"); /* nothing to do */
    check("{\"$v\": 2, \"diff\": {\"sarr\": {\"a\": true, \"l\": 2}}}", NULL); /* resized array */
    check("{\"$v\": 2}", NULL);
    check("{\"$v\": 2, \"diff\": {\"zz\": 1}}", NULL);
    check("{\"$v\": 2, \"diff\": {\"sx\": 3}}", NULL);
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
