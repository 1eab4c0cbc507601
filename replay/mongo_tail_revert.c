/* Reverting an unreplicated MongoDB tail (capture/mongo_tail.c) on the business side, so that it equals DR
 * again before the reverse writer applies DR's changes to it (`resolve-tail PAIR --discard`, or --export
 * after the copy). MongoDB entries cannot be undone from the oplog alone (FerretDB logs no before image),
 * so every key the tail touched is made equal to DR's document now: replaced by it when DR has one,
 * deleted when DR has none. DR is the active side and its own later changes reach business through the
 * reverse instance anyway, so the end state is the same as undoing the tail entry by entry. Blocking.
 *
 * result: {"reverted_transactions": N (tail entries), "reverted_rows": M (distinct keys made equal),
 *          "replaced": R, "deleted": D} */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/mongo_client.h"
#include "replay/mongo_modules.h"

#define REVERT_TIMEOUT_MS 15000

/* One key: business's document := DR's (or none). 0, or -1 with err. */
static int make_equal(mongoc_client_t *business, mongoc_client_t *dr, const char *ns, const bson_t *key, bool *replaced,
                      char *err, size_t errlen)
{
    char db[128];
    const char *coll;
    if (!sy_mongo_ns_split(ns, db, sizeof db, &coll)) {
        snprintf(err, errlen, "the tail names '%s', which is not db.collection", ns);
        return -1;
    }
    mongoc_collection_t *from = mongoc_client_get_collection(dr, db, coll);
    mongoc_collection_t *to = mongoc_client_get_collection(business, db, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(from, key, NULL, NULL);
    const bson_t *doc = NULL;
    bson_error_t e;
    int rc = 0;
    bool found = mongoc_cursor_next(cur, &doc);
    if (!found && mongoc_cursor_error(cur, &e)) {
        snprintf(err, errlen, "reading %s from DR: %s", ns, e.message);
        rc = -1;
    } else if (found) {
        bson_t opts = BSON_INITIALIZER;
        BSON_APPEND_BOOL(&opts, "upsert", true);
        if (!mongoc_collection_replace_one(to, key, doc, &opts, NULL, &e)) {
            snprintf(err, errlen, "replacing a document of %s on business: %s", ns, e.message);
            rc = -1;
        }
        bson_destroy(&opts);
        *replaced = true;
    } else {
        if (!mongoc_collection_delete_one(to, key, NULL, NULL, &e)) {
            snprintf(err, errlen, "deleting a document of %s on business: %s", ns, e.message);
            rc = -1;
        }
        *replaced = false;
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(from);
    mongoc_collection_destroy(to);
    return rc;
}

int sy_mongo_tail_revert(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, const json_t *tail,
                         json_t *result, char *err, size_t errlen)
{
    json_t *txns = json_object_get(tail, "transactions");
    if (!json_is_array(txns)) {
        snprintf(err, errlen, "a malformed tail: no transactions");
        return -1;
    }
    mongoc_client_t *business = sy_mongo_connect(cfg, ep, REVERT_TIMEOUT_MS, err, errlen);
    if (business == NULL)
        return -1;
    mongoc_client_t *dr = sy_mongo_connect(cfg, &cfg->dr, REVERT_TIMEOUT_MS, err, errlen);
    if (dr == NULL) {
        mongoc_client_destroy(business);
        return -1;
    }
    json_t *done = json_object(); /* "ns\n<key json>" -> true: each key once */
    size_t n_txn = 0, n_keys = 0, n_replaced = 0, n_deleted = 0, i;
    int rc = 0;
    json_t *txn;
    json_array_foreach(txns, i, txn) {
        size_t k;
        json_t *row;
        json_array_foreach(json_object_get(txn, "rows"), k, row) {
            const char *ns = json_string_value(json_object_get(row, "table"));
            json_t *key = json_object_get(row, "key");
            char *key_text = json_is_object(key) ? json_dumps(key, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
            if (ns == NULL || key_text == NULL) {
                snprintf(err, errlen, "a malformed tail: a row without its table or key (position %s)",
                         json_string_value(json_object_get(txn, "position")) ?: "?");
                free(key_text);
                rc = -1;
                break;
            }
            char slot[2048];
            snprintf(slot, sizeof slot, "%s\n%s", ns, key_text);
            bson_error_t be;
            bson_t *key_doc = json_object_get(done, slot) ? NULL : bson_new_from_json((uint8_t *)key_text, -1, &be);
            free(key_text);
            if (json_object_get(done, slot))
                continue;
            if (key_doc == NULL) {
                snprintf(err, errlen, "a malformed tail: a key that is not extended JSON: %s", be.message);
                rc = -1;
                break;
            }
            bool replaced = false;
            rc = make_equal(business, dr, ns, key_doc, &replaced, err, errlen);
            bson_destroy(key_doc);
            if (rc != 0)
                break;
            json_object_set_new(done, slot, json_true());
            n_keys++;
            if (replaced)
                n_replaced++;
            else
                n_deleted++;
        }
        if (rc != 0)
            break;
        n_txn++;
    }
    json_decref(done);
    mongoc_client_destroy(dr);
    mongoc_client_destroy(business);
    json_object_set_new(result, "reverted_transactions", json_integer((json_int_t)n_txn));
    json_object_set_new(result, "reverted_rows", json_integer((json_int_t)n_keys));
    json_object_set_new(result, "replaced", json_integer((json_int_t)n_replaced));
    json_object_set_new(result, "deleted", json_integer((json_int_t)n_deleted));
    return rc;
}
