/* A real libmongoc client for tests/integration/test_mongo_proxy.py: connects with URI (libmongoc's own
 * handshake, SCRAM and server selection), inserts N documents into DB.COLL (dropped first), reads them back
 * in _id order in batches of 3 and prints each as canonical extended JSON, one per line, then "count N".
 *   sy_mongo_client URI DB COLL N [pause]
 * With `pause` it prints "ready" once connected and logged in (the collection dropped) and waits for a line on
 * stdin before inserting (a test switches the pair meanwhile: the same client goes on on the other side).
 * Exits 1 with "ERROR what: domain.code message" on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mongoc/mongoc.h>

static int fail(const char *what, const bson_error_t *e)
{
    printf("ERROR %s: %u.%u %s\n", what, e->domain, e->code, e->message);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 5 && !(argc == 6 && strcmp(argv[5], "pause") == 0)) {
        fprintf(stderr, "usage: sy_mongo_client URI DB COLL N [pause]\n");
        return 2;
    }
    int rc = 1, n = atoi(argv[4]);
    bson_error_t err;
    mongoc_init();
    mongoc_uri_t *uri = mongoc_uri_new_with_error(argv[1], &err);
    mongoc_client_t *client = uri ? mongoc_client_new_from_uri(uri) : NULL;
    mongoc_collection_t *coll = NULL;
    mongoc_cursor_t *cur = NULL;
    bson_t *filter = NULL, *opts = NULL;
    if (client == NULL) {
        rc = fail("uri", &err);
        goto out;
    }
    mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
    coll = mongoc_client_get_collection(client, argv[2], argv[3]);
    if (!mongoc_collection_drop(coll, &err) && err.code != 26) {   /* 26: NamespaceNotFound */
        rc = fail("drop", &err);
        goto out;
    }
    if (argc == 6) {
        char line[16];
        printf("ready\n");
        fflush(stdout);
        if (fgets(line, sizeof line, stdin) == NULL) {
            rc = 2;
            goto out;
        }
    }
    for (int i = 0; i < n; i++) {
        bson_t *doc = BCON_NEW("_id", BCON_INT32(i), "name", BCON_UTF8("libmongoc \xc3\xa9t\xc3\xa9"), "sq",
                               BCON_INT64((int64_t)i * i), "nested", "{", "ok", BCON_BOOL(i % 2 == 0), "}");
        bool ok = mongoc_collection_insert_one(coll, doc, NULL, NULL, &err);
        bson_destroy(doc);
        if (!ok) {
            rc = fail("insert", &err);
            goto out;
        }
    }
    filter = bson_new();
    opts = BCON_NEW("sort", "{", "_id", BCON_INT32(1), "}", "batchSize", BCON_INT32(3));
    cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *doc;
    int count = 0;
    while (mongoc_cursor_next(cur, &doc)) {
        char *json = bson_as_canonical_extended_json(doc, NULL);
        printf("%s\n", json);
        bson_free(json);
        count++;
    }
    if (mongoc_cursor_error(cur, &err)) {
        rc = fail("find", &err);
        goto out;
    }
    printf("count %d\n", count);
    rc = 0;
out:
    if (cur)
        mongoc_cursor_destroy(cur);
    if (filter)
        bson_destroy(filter);
    if (opts)
        bson_destroy(opts);
    if (coll)
        mongoc_collection_destroy(coll);
    if (client)
        mongoc_client_destroy(client);
    if (uri)
        mongoc_uri_destroy(uri);
    mongoc_cleanup();
    return rc;
}
