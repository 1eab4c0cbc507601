/* The MongoDB ack ledger: proxy/mongo_write.c (which documents a reply proves written, for pymongo's
 * insert_one/insert_many/update_one/bulk_write/delete_one and find_one_and_* shapes, in the body or a kind-1
 * section),
 * engine/mongo_acks.c (acknowledgements matched with taken oplog entries in either order, pending writes
 * covered by no position, operationTime) and core/fp_multiset.c under them. */
#include <math.h>
#include <string.h>

#include "capture/mongo_modules.h"
#include "core/fp_multiset.h"
#include "engine/mongo_acks.h"
#include "engine/mongo_echo.h"
#include "proxy/mongo_write.h"
#include "tests/unit/check.h"

static struct sy_mongo_msg msg_of(const bson_t *body)
{
    struct sy_mongo_msg m = { 0 };
    m.body = bson_get_data(body);
    m.body_len = body->len;
    return m;
}

static uint64_t key_of(const char *ns, bson_t *d) /* d = {_id: ...}, destroyed */
{
    bson_iter_t it;
    uint64_t k = bson_iter_init_find(&it, d, "_id") ? sy_mongo_id_key(ns, &it) : 0;
    bson_destroy(d);
    return k;
}

static uint64_t key_int(const char *ns, int32_t id)
{
    return key_of(ns, BCON_NEW("_id", BCON_INT32(id)));
}

/* equal numbers of any BSON type are one document (the server matches them) */
static void test_canonical_keys(void)
{
    uint64_t k7 = key_int("a.b", 7);
    CHECK(k7 == key_of("a.b", BCON_NEW("_id", BCON_INT64(7))) && k7 == key_of("a.b", BCON_NEW("_id", BCON_DOUBLE(7.0))));
    CHECK(k7 != key_of("a.b", BCON_NEW("_id", BCON_UTF8("7"))) && k7 != key_of("a.b", BCON_NEW("_id", BCON_DOUBLE(7.5))));
    CHECK(k7 != key_int("a.c", 7) && k7 != key_int("a.b", 8));
    CHECK(key_of("a.b", BCON_NEW("_id", "{", "x", BCON_INT64(1), "y", "[", BCON_INT32(2), "]", "}")) ==
          key_of("a.b", BCON_NEW("_id", "{", "x", BCON_INT32(1), "y", "[", BCON_DOUBLE(2.0), "]", "}")));
    CHECK(key_of("a.b", BCON_NEW("_id", BCON_DOUBLE(NAN))) != 0);  /* no undefined conversion */
}

static void test_insert(void)
{
    /* insert_many as pymongo 4 sends it: documents in a kind-1 section */
    bson_t *body = BCON_NEW("insert", BCON_UTF8("orders"), "ordered", BCON_BOOL(true), "$db", BCON_UTF8("shop"));
    uint8_t docs[256];
    size_t off = 0;
    for (int i = 1; i <= 3; i++) {
        bson_t *d = i == 2 ? BCON_NEW("x", BCON_INT32(i)) : BCON_NEW("_id", BCON_INT32(i), "x", BCON_INT32(i));
        memcpy(docs + off, bson_get_data(d), d->len);
        off += d->len;
        bson_destroy(d);
    }
    struct sy_mongo_msg m = msg_of(body);
    m.seqs[0] = (struct sy_mongo_seq){ .id = "documents", .id_len = 9, .docs = docs, .len = off, .ndocs = 3 };
    m.nseqs = 1;
    struct sy_mongo_write w;
    CHECK(sy_mongo_write_parse(&m, &w) == 1);
    CHECK(w.op == SY_MWRITE_INSERT && w.n == 3 && strcmp(w.db, "shop") == 0 && strcmp(w.coll, "orders") == 0);
    CHECK(w.keys[0] == key_int("shop.orders", 1) && w.keys[1] == 0 && w.keys[2] == key_int("shop.orders", 3));

    uint64_t keys[3];
    struct sy_mongo_write_ack a;
    bson_t *r = BCON_NEW("n", BCON_INT32(3), "ok", BCON_DOUBLE(1.0));
    CHECK(sy_mongo_write_acked(&w, bson_get_data(r), r->len, keys, &a));
    CHECK(a.n_keys == 2 && keys[0] == w.keys[0] && keys[1] == w.keys[2] && a.unproven == 1 && !a.has_op_time);
    bson_destroy(r);

    /* ordered, the second fails (duplicate key): only the first was written */
    r = BCON_NEW("n", BCON_INT32(1), "writeErrors", "[", "{", "index", BCON_INT32(1), "code", BCON_INT32(11000), "}",
                 "]", "ok", BCON_DOUBLE(1.0));
    CHECK(sy_mongo_write_acked(&w, bson_get_data(r), r->len, keys, &a) && a.n_keys == 1 && keys[0] == w.keys[0]);
    bson_destroy(r);
    /* counts that do not add up prove nothing */
    r = BCON_NEW("n", BCON_INT32(2), "ok", BCON_INT32(1));
    CHECK(sy_mongo_write_acked(&w, bson_get_data(r), r->len, keys, &a) && a.n_keys == 0 && a.unproven == 2);
    bson_destroy(r);
    /* a failed command acknowledges nothing; a w:0-like {ok:1} without n neither */
    r = BCON_NEW("ok", BCON_DOUBLE(0), "errmsg", BCON_UTF8("no"), "code", BCON_INT32(13));
    CHECK(sy_mongo_write_acked(&w, bson_get_data(r), r->len, keys, &a) && a.n_keys == 0 && a.unproven == 0);
    bson_destroy(r);
    /* operationTime (MongoDB) */
    r = BCON_NEW("n", BCON_INT32(3), "operationTime", BCON_TIMESTAMP(1733250000, 7), "ok", BCON_DOUBLE(1.0));
    CHECK(sy_mongo_write_acked(&w, bson_get_data(r), r->len, keys, &a) && a.has_op_time && a.op_t == 1733250000 &&
          a.op_i == 7);
    bson_destroy(r);
    sy_mongo_write_fini(&w);
    bson_destroy(body);

    /* in a transaction: not looked at; not a write: 0; no $db: malformed */
    body = BCON_NEW("insert", BCON_UTF8("orders"), "autocommit", BCON_BOOL(false), "$db", BCON_UTF8("shop"));
    m = msg_of(body);
    CHECK(sy_mongo_write_parse(&m, &w) == 0 && w.op == SY_MWRITE_NONE);
    bson_destroy(body);
    body = BCON_NEW("find", BCON_UTF8("orders"), "$db", BCON_UTF8("shop"));
    m = msg_of(body);
    CHECK(sy_mongo_write_parse(&m, &w) == 0);
    bson_destroy(body);
    body = BCON_NEW("insert", BCON_UTF8("orders"), "documents", "[", "{", "_id", BCON_INT32(1), "}", "]");
    m = msg_of(body);
    CHECK(sy_mongo_write_parse(&m, &w) == -1 && w.op == SY_MWRITE_NONE && w.keys == NULL);
    bson_destroy(body);
}

static void test_update_delete(void)
{
    /* bulk_write: two updates by _id (one an upsert), one by another filter */
    bson_t *body = BCON_NEW("update", BCON_UTF8("orders"), "updates", "[",
                            "{", "q", "{", "_id", BCON_INT32(1), "}", "u", "{", "$set", "{", "x", BCON_INT32(2), "}",
                            "}", "}",
                            "{", "q", "{", "_id", BCON_INT32(5), "}", "u", "{", "x", BCON_INT32(5), "}", "upsert",
                            BCON_BOOL(true), "}",
                            "]", "$db", BCON_UTF8("shop"));
    struct sy_mongo_msg m = msg_of(body);
    struct sy_mongo_write w;
    CHECK(sy_mongo_write_parse(&m, &w) == 1 && w.op == SY_MWRITE_UPDATE && w.n == 2);
    uint64_t keys[2];
    struct sy_mongo_write_ack a;
    bson_t *r = BCON_NEW("n", BCON_INT32(2), "nModified", BCON_INT32(1), "upserted", "[", "{", "index",
                         BCON_INT32(1), "_id", BCON_INT32(5), "}", "]", "ok", BCON_DOUBLE(1.0));
    CHECK(sy_mongo_write_acked(&w, bson_get_data(r), r->len, keys, &a));
    CHECK(a.n_keys == 2 && keys[0] == key_int("shop.orders", 1) && keys[1] == key_int("shop.orders", 5));
    bson_destroy(r);
    /* the first changed nothing (nModified 0): its document is not claimed, the upsert is */
    r = BCON_NEW("n", BCON_INT32(2), "nModified", BCON_INT32(0), "upserted", "[", "{", "index", BCON_INT32(1), "_id",
                 BCON_INT32(5), "}", "]", "ok", BCON_DOUBLE(1.0));
    CHECK(sy_mongo_write_acked(&w, bson_get_data(r), r->len, keys, &a));
    CHECK(a.n_keys == 1 && keys[0] == key_int("shop.orders", 5) && a.unproven == 0);
    bson_destroy(r);
    sy_mongo_write_fini(&w);
    bson_destroy(body);

    /* update_many by another filter; an operator on _id: not one document */
    body = BCON_NEW("update", BCON_UTF8("orders"), "updates", "[",
                    "{", "q", "{", "x", BCON_INT32(1), "}", "u", "{", "$inc", "{", "x", BCON_INT32(1), "}", "}",
                    "multi", BCON_BOOL(true), "}",
                    "{", "q", "{", "_id", "{", "$in", "[", BCON_INT32(1), "]", "}", "}", "u", "{", "y", BCON_INT32(1),
                    "}", "}", "]", "$db", BCON_UTF8("shop"));
    m = msg_of(body);
    CHECK(sy_mongo_write_parse(&m, &w) == 1 && w.n == 2 && w.keys[0] == 0 && w.keys[1] == 0);
    r = BCON_NEW("n", BCON_INT32(7), "nModified", BCON_INT32(6), "ok", BCON_DOUBLE(1.0));
    CHECK(sy_mongo_write_acked(&w, bson_get_data(r), r->len, keys, &a) && a.n_keys == 0 && a.unproven == 6);
    bson_destroy(r);
    sy_mongo_write_fini(&w);
    bson_destroy(body);

    /* delete_one by _id, an embedded-document _id */
    body = BCON_NEW("delete", BCON_UTF8("orders"), "deletes", "[", "{", "q", "{", "_id", "{", "a", BCON_INT32(1),
                    "}", "}", "limit", BCON_INT32(1), "}", "]", "$db", BCON_UTF8("shop"));
    m = msg_of(body);
    CHECK(sy_mongo_write_parse(&m, &w) == 1 && w.op == SY_MWRITE_DELETE && w.n == 1 && w.keys[0] != 0);
    r = BCON_NEW("n", BCON_INT32(1), "ok", BCON_DOUBLE(1.0));
    CHECK(sy_mongo_write_acked(&w, bson_get_data(r), r->len, keys, &a) && a.n_keys == 1 && keys[0] == w.keys[0]);
    bson_destroy(r);
    r = BCON_NEW("n", BCON_INT32(0), "ok", BCON_DOUBLE(1.0)); /* nothing to delete: nothing written */
    CHECK(sy_mongo_write_acked(&w, bson_get_data(r), r->len, keys, &a) && a.n_keys == 0 && a.unproven == 0);
    bson_destroy(r);
    sy_mongo_write_fini(&w);
    bson_destroy(body);
}

/* fam: findAndModify request + reply; returns n_keys (keys[0] the key), *unproven */
static size_t fam(bson_t *body, bson_t *reply, uint64_t *key, size_t *unproven)
{
    struct sy_mongo_msg m = msg_of(body);
    struct sy_mongo_write w;
    struct sy_mongo_write_ack a = { 0 };
    uint64_t keys[1] = { 0 };
    CHECK(sy_mongo_write_parse(&m, &w) == 1 && w.op == SY_MWRITE_FAM && w.n == 1);
    CHECK(sy_mongo_write_acked(&w, bson_get_data(reply), reply->len, keys, &a));
    CHECK(a.n_keys <= 1);
    *key = keys[0];
    *unproven = a.unproven;
    sy_mongo_write_fini(&w);
    bson_destroy(body);
    bson_destroy(reply);
    return a.n_keys;
}

static void test_find_and_modify(void)
{
    uint64_t k;
    size_t unp;
    uint64_t k9 = key_int("shop.orders", 9);
    /* find_one_and_delete by another filter: the reply's value names the document */
    CHECK(fam(BCON_NEW("findAndModify", BCON_UTF8("orders"), "query", "{", "x", BCON_INT32(1), "}", "remove",
                       BCON_BOOL(true), "$db", BCON_UTF8("shop")),
              BCON_NEW("lastErrorObject", "{", "n", BCON_INT32(1), "}", "value", "{", "_id", BCON_INT32(9), "x",
                       BCON_INT32(1), "}", "ok", BCON_DOUBLE(1.0)), &k, &unp) == 1 && k == k9);
    /* nothing matched: nothing written */
    CHECK(fam(BCON_NEW("findAndModify", BCON_UTF8("orders"), "query", "{", "x", BCON_INT32(1), "}", "remove",
                       BCON_BOOL(true), "$db", BCON_UTF8("shop")),
              BCON_NEW("lastErrorObject", "{", "n", BCON_INT32(0), "}", "value", BCON_NULL, "ok", BCON_DOUBLE(1.0)),
              &k, &unp) == 0 && unp == 0);
    /* a projection hiding _id: the {_id: value} query names it; another query proves nothing */
    CHECK(fam(BCON_NEW("findandmodify", BCON_UTF8("orders"), "query", "{", "_id", BCON_INT32(9), "}", "remove",
                       BCON_BOOL(true), "fields", "{", "_id", BCON_INT32(0), "}", "$db", BCON_UTF8("shop")),
              BCON_NEW("lastErrorObject", "{", "n", BCON_INT32(1), "}", "value", "{", "x", BCON_INT32(1), "}", "ok",
                       BCON_DOUBLE(1.0)), &k, &unp) == 1 && k == k9);
    CHECK(fam(BCON_NEW("findAndModify", BCON_UTF8("orders"), "query", "{", "x", BCON_INT32(1), "}", "remove",
                       BCON_BOOL(true), "fields", "{", "_id", BCON_INT32(0), "}", "$db", BCON_UTF8("shop")),
              BCON_NEW("lastErrorObject", "{", "n", BCON_INT32(1), "}", "value", "{", "x", BCON_INT32(1), "}", "ok",
                       BCON_DOUBLE(1.0)), &k, &unp) == 0 && unp == 1);
    /* an upsert: lastErrorObject.upserted (value null: new false) */
    CHECK(fam(BCON_NEW("findAndModify", BCON_UTF8("orders"), "query", "{", "x", BCON_INT32(3), "}", "update", "{",
                       "$inc", "{", "n", BCON_INT32(1), "}", "}", "upsert", BCON_BOOL(true), "$db", BCON_UTF8("shop")),
              BCON_NEW("lastErrorObject", "{", "n", BCON_INT32(1), "updatedExisting", BCON_BOOL(false), "upserted",
                       BCON_INT32(9), "}", "value", BCON_NULL, "ok", BCON_DOUBLE(1.0)), &k, &unp) == 1 && k == k9);
    /* an operator update of an existing document: the reply cannot say whether it changed anything */
    CHECK(fam(BCON_NEW("findAndModify", BCON_UTF8("orders"), "query", "{", "_id", BCON_INT32(9), "}", "update",
                       "{", "$set", "{", "x", BCON_INT32(1), "}", "}", "new", BCON_BOOL(true), "$db",
                       BCON_UTF8("shop")),
              BCON_NEW("lastErrorObject", "{", "n", BCON_INT32(1), "updatedExisting", BCON_BOOL(true), "}", "value",
                       "{", "_id", BCON_INT32(9), "x", BCON_INT32(1), "}", "ok", BCON_DOUBLE(1.0)), &k, &unp) == 0 &&
          unp == 1);
    /* find_one_and_replace, document before: proven when it differs from the replacement, not when equal */
    CHECK(fam(BCON_NEW("findAndModify", BCON_UTF8("orders"), "query", "{", "x", BCON_INT32(1), "}", "update", "{",
                       "x", BCON_INT32(2), "}", "$db", BCON_UTF8("shop")),
              BCON_NEW("lastErrorObject", "{", "n", BCON_INT32(1), "updatedExisting", BCON_BOOL(true), "}", "value",
                       "{", "_id", BCON_INT32(9), "x", BCON_INT32(1), "}", "ok", BCON_DOUBLE(1.0)), &k, &unp) == 1 &&
          k == k9);
    CHECK(fam(BCON_NEW("findAndModify", BCON_UTF8("orders"), "query", "{", "x", BCON_INT32(1), "}", "update", "{",
                       "x", BCON_INT32(1), "}", "$db", BCON_UTF8("shop")),
              BCON_NEW("lastErrorObject", "{", "n", BCON_INT32(1), "updatedExisting", BCON_BOOL(true), "}", "value",
                       "{", "_id", BCON_INT32(9), "x", BCON_INT32(1), "}", "ok", BCON_DOUBLE(1.0)), &k, &unp) == 0 &&
          unp == 1);
    /* ... with the document after (new: true), or a replacement naming _id: not proven */
    CHECK(fam(BCON_NEW("findAndModify", BCON_UTF8("orders"), "query", "{", "x", BCON_INT32(1), "}", "update", "{",
                       "x", BCON_INT32(2), "}", "new", BCON_BOOL(true), "$db", BCON_UTF8("shop")),
              BCON_NEW("lastErrorObject", "{", "n", BCON_INT32(1), "updatedExisting", BCON_BOOL(true), "}", "value",
                       "{", "_id", BCON_INT32(9), "x", BCON_INT32(2), "}", "ok", BCON_DOUBLE(1.0)), &k, &unp) == 0);
    CHECK(fam(BCON_NEW("findAndModify", BCON_UTF8("orders"), "query", "{", "x", BCON_INT32(1), "}", "update", "{",
                       "_id", BCON_INT32(9), "x", BCON_DOUBLE(1.0), "}", "$db", BCON_UTF8("shop")),
              BCON_NEW("lastErrorObject", "{", "n", BCON_INT32(1), "updatedExisting", BCON_BOOL(true), "}", "value",
                       "{", "_id", BCON_INT32(9), "x", BCON_INT32(1), "}", "ok", BCON_DOUBLE(1.0)), &k, &unp) == 0);
    /* a refused one (ok: 0) and a reply without lastErrorObject: nothing */
    CHECK(fam(BCON_NEW("findAndModify", BCON_UTF8("orders"), "query", "{", "}", "remove", BCON_BOOL(true), "$db",
                       BCON_UTF8("shop")),
              BCON_NEW("ok", BCON_DOUBLE(0.0), "errmsg", BCON_UTF8("x")), &k, &unp) == 0 && unp == 0);
    CHECK(fam(BCON_NEW("findAndModify", BCON_UTF8("orders"), "remove", BCON_BOOL(true), "$db", BCON_UTF8("shop")),
              BCON_NEW("value", "{", "_id", BCON_INT32(9), "}", "ok", BCON_DOUBLE(1.0)), &k, &unp) == 0 && unp == 0);
}

static void test_multiset(void)
{
    struct sy_fp_multiset m;
    CHECK(sy_fp_multiset_init(&m) == 0);
    uint64_t p = 0;
    CHECK(!sy_fp_multiset_take(&m, 5, 0, &p));
    CHECK(sy_fp_multiset_add(&m, 5, 10, 100, 0) == 0 && sy_fp_multiset_add(&m, 5, 7, 100, 0) == 0);
    CHECK(sy_fp_multiset_add(&m, 0, 1, 100, 0) == 0 && m.count == 3);
    CHECK(sy_fp_multiset_take(&m, 5, 1, &p) && p == 10);
    CHECK(!sy_fp_multiset_take(&m, 5, 100, &p));          /* expired */
    CHECK(sy_fp_multiset_take(&m, 0, 1, NULL));
    /* expired copies are not revived by a later add; nor do copies older than a lifetime outlive it */
    CHECK(sy_fp_multiset_add(&m, 9, 0, 120, 0) == 0 && sy_fp_multiset_add(&m, 9, 0, 120, 0) == 0);
    CHECK(sy_fp_multiset_add(&m, 9, 0, 320, 200) == 0);
    CHECK(sy_fp_multiset_take(&m, 9, 201, NULL) && !sy_fp_multiset_take(&m, 9, 202, NULL));
    CHECK(sy_fp_multiset_add(&m, 10, 0, 100, 0) == 0 && sy_fp_multiset_add(&m, 10, 0, 190, 90) == 0);
    CHECK(sy_fp_multiset_add(&m, 10, 0, 280, 180) == 0);   /* the first (at 0) is older than 100: dropped */
    CHECK(sy_fp_multiset_take(&m, 10, 181, NULL) && sy_fp_multiset_take(&m, 10, 182, NULL)); /* at 90, at 180 */
    CHECK(!sy_fp_multiset_take(&m, 10, 183, NULL));
    for (uint64_t i = 1; i <= 5000; i++)                    /* grows, sweeping the dead */
        CHECK(sy_fp_multiset_add(&m, i * 7919, i, 1000 + i, 200) == 0);
    for (uint64_t i = 1; i <= 5000; i++)
        CHECK(sy_fp_multiset_take(&m, i * 7919, 300, &p) && p == i);
    sy_fp_multiset_fini(&m);
}

static void test_ledger(void)
{
    struct sy_mongo_acks *a = sy_mongo_acks_of("unit", SY_SIDE_BUSINESS);
    CHECK(a != NULL && a == sy_mongo_acks_of("unit", SY_SIDE_BUSINESS) && a != sy_mongo_acks_of("unit", SY_SIDE_DR));
    char out[200];
    struct sy_mongo_acks_stats st;
    uint64_t k1 = key_int("shop.orders", 1), k2 = key_int("shop.orders", 2);
    sy_mongo_acks_acked(a, &k1, 1, 0, 0);                  /* no collector reads the side: not noted */
    sy_mongo_acks_ledger(a, out, sizeof out, &st);
    CHECK(out[0] == '\0' && st.acked == 0);
    sy_mongo_acks_arm(a, true);
    sy_mongo_acks_acked(a, &k1, 1, 2, 10);                  /* acknowledged before the collector took it */
    sy_mongo_acks_ledger(a, out, sizeof out, &st);
    CHECK(strcmp(out, "0:0 and 1 acknowledged write(s) not yet read from the oplog") == 0);
    CHECK(st.pending == 1 && st.unproven == 2);
    CHECK(!sy_mongo_position_covers("1733250000:9", out));  /* no drained position covers it */
    sy_mongo_acks_taken(a, k2, 1733250000, 3, 20);          /* another client's write */
    sy_mongo_acks_taken(a, k1, 1733250000, 4, 20);
    sy_mongo_acks_ledger(a, out, sizeof out, &st);
    CHECK(strcmp(out, "1733250000:4") == 0 && st.pending == 0 && st.matched == 1);
    CHECK(sy_mongo_position_covers("1733250000:9", out) && !sy_mongo_position_covers("1733250000:3", out));
    sy_mongo_acks_taken(a, k1, 1733250001, 1, 30);          /* taken before its acknowledgement */
    sy_mongo_acks_acked(a, &k1, 1, 0, 40);
    sy_mongo_acks_ledger(a, out, sizeof out, NULL);
    CHECK(strcmp(out, "1733250001:1") == 0);
    sy_mongo_acks_acked(a, &k1, 1, 0, 50);                  /* a second write of it: its entry is not taken */
    sy_mongo_acks_ledger(a, out, sizeof out, NULL);
    CHECK(strcmp(out, "1733250001:1 and 1 acknowledged write(s) not yet read from the oplog") == 0);
    /* as a failover tail's ledger: the proven part counts */
    CHECK(sy_mongo_position_covers(out, "1733250001:1") && !sy_mongo_position_covers(out, "1733250001:2"));
    sy_mongo_acks_op_time(a, 1733250009, 2);
    sy_mongo_acks_taken(a, k1, 1733250002, 1, 60);
    sy_mongo_acks_ledger(a, out, sizeof out, NULL);
    CHECK(strcmp(out, "1733250009:2") == 0);
    sy_mongo_acks_arm(a, false);
}

/* A cluster failover merges the other nodes' ledgers into its own (core/switch.c merge_ledgers). */
static void test_ledger_merge(void)
{
    char out[200] = "";
    sy_mongo_acks_ledger_merge(out, sizeof out, "1733250001:1");         /* none here: the other's */
    CHECK(strcmp(out, "1733250001:1") == 0);
    sy_mongo_acks_ledger_merge(out, sizeof out, "");
    CHECK(strcmp(out, "1733250001:1") == 0);
    sy_mongo_acks_ledger_merge(out, sizeof out, "1733250000:9 and 2 acknowledged write(s) not yet read from the oplog");
    CHECK(strcmp(out, "1733250001:1 and 2 acknowledged write(s) not yet read from the oplog") == 0);
    sy_mongo_acks_ledger_merge(out, sizeof out, "1733250003:1 and 1 acknowledged write(s) not yet read from the oplog");
    CHECK(strcmp(out, "1733250003:1 and 3 acknowledged write(s) not yet read from the oplog") == 0);
    sy_mongo_acks_ledger_merge(out, sizeof out, "0:0 and an incomplete ledger (more than 1048576 acknowledged "
                                                "writes were not read from the oplog)");
    CHECK(strncmp(out, "1733250003:1 and an incomplete ledger", 37) == 0);
    char kept[200];
    snprintf(kept, sizeof kept, "%s", out);
    sy_mongo_acks_ledger_merge(out, sizeof out, "not a ledger");            /* not understood: unchanged */
    CHECK(strcmp(out, kept) == 0);
}

int main(void)
{
    test_canonical_keys();
    test_insert();
    test_update_delete();
    test_find_and_modify();
    test_multiset();
    test_ledger();
    test_ledger_merge();
    return CHECK_DONE();
}
