/* proxy/mongo_track.c: the request fields a switch depends on (cursor ids, lsid + txnNumber, the
 * transaction commands, as pymongo 4 sends them inside a transaction), a reply's cursor id (FerretDB's and
 * MongoDB's find/getMore replies: the batch before the id), killCursors filtered, the pair's cursor and
 * transaction tables, and the proxy's own error documents (43 and 251 + TransientTransactionError). */
#include <string.h>

#include "proxy/mongo_track.h"
#include "tests/unit/check.h"

static const uint8_t LSID[16] = { 0x9a, 0x1e, 0x3c, 0x44, 0x01, 0x02, 0x4b, 0x05, 0x86, 0x07, 0x08, 0x09, 0x0a, 0x0b,
                                  0x0c, 0x0d };

static bson_t *with_lsid(bson_t *b)
{
    bson_t l;
    BSON_APPEND_DOCUMENT_BEGIN(b, "lsid", &l);
    bson_append_binary(&l, "id", 2, BSON_SUBTYPE_UUID, LSID, sizeof LSID);
    bson_append_document_end(b, &l);
    return b;
}

static void test_transaction_commands(void)
{
    /* insert inside a transaction: {insert, ordered, lsid, txnNumber, startTransaction, autocommit, $db} */
    bson_t *b = BCON_NEW("insert", BCON_UTF8("c"), "ordered", BCON_BOOL(true));
    with_lsid(b);
    BCON_APPEND(b, "txnNumber", BCON_INT64(7), "startTransaction", BCON_BOOL(true), "autocommit", BCON_BOOL(false),
                "$db", BCON_UTF8("app"));
    struct sy_mongo_req_info r;
    CHECK(sy_mongo_req_info_parse(bson_get_data(b), b->len, &r));
    CHECK(r.kind == SY_MREQ_OTHER && r.has_lsid && memcmp(r.lsid, LSID, 16) == 0);
    CHECK(r.has_txn && r.txn_number == 7 && r.start_transaction && r.autocommit_false);
    bson_destroy(b);

    b = BCON_NEW("commitTransaction", BCON_INT32(1));
    with_lsid(b);
    BCON_APPEND(b, "txnNumber", BCON_INT64(7), "autocommit", BCON_BOOL(false), "$db", BCON_UTF8("admin"));
    CHECK(sy_mongo_req_info_parse(bson_get_data(b), b->len, &r));
    CHECK(r.kind == SY_MREQ_COMMIT && r.has_txn && r.autocommit_false && !r.start_transaction);
    bson_destroy(b);

    b = BCON_NEW("abortTransaction", BCON_INT32(1), "txnNumber", BCON_INT64(8), "autocommit", BCON_BOOL(false));
    CHECK(sy_mongo_req_info_parse(bson_get_data(b), b->len, &r));
    CHECK(r.kind == SY_MREQ_ABORT && !r.has_lsid && r.txn_number == 8);
    bson_destroy(b);

    /* a retryable write: txnNumber without autocommit: not a transaction */
    b = BCON_NEW("update", BCON_UTF8("c"), "txnNumber", BCON_INT64(3));
    with_lsid(b);
    CHECK(sy_mongo_req_info_parse(bson_get_data(b), b->len, &r));
    CHECK(r.has_txn && !r.autocommit_false && !r.start_transaction);
    bson_destroy(b);

    /* an lsid whose id is not 16 bytes is not one */
    b = BCON_NEW("find", BCON_UTF8("c"), "lsid", "{", "id", BCON_BIN(BSON_SUBTYPE_UUID, LSID, 4), "}");
    CHECK(sy_mongo_req_info_parse(bson_get_data(b), b->len, &r) && r.kind == SY_MREQ_CURSOR && !r.has_lsid);
    bson_destroy(b);
    CHECK(!sy_mongo_req_info_parse((const uint8_t *)"\x05\x00\x00\x00\x01", 5, &r));
}

static void test_cursor_commands(void)
{
    struct sy_mongo_req_info r;
    bson_t *b = BCON_NEW("getMore", BCON_INT64(1234567890123LL), "collection", BCON_UTF8("c"), "$db",
                         BCON_UTF8("app"));
    CHECK(sy_mongo_req_info_parse(bson_get_data(b), b->len, &r));
    CHECK(r.kind == SY_MREQ_GET_MORE && r.cursor_id == 1234567890123LL);
    bson_destroy(b);
    b = BCON_NEW("getMore", BCON_UTF8("x"));      /* malformed: the server answers it */
    CHECK(sy_mongo_req_info_parse(bson_get_data(b), b->len, &r) && r.kind == SY_MREQ_OTHER);
    bson_destroy(b);
    b = BCON_NEW("killCursors", BCON_UTF8("c"), "cursors", "[", BCON_INT64(5), BCON_INT64(6), "]");
    CHECK(sy_mongo_req_info_parse(bson_get_data(b), b->len, &r));
    CHECK(r.kind == SY_MREQ_KILL && r.n_kill == 2 && r.kill_ids[0] == 5 && r.kill_ids[1] == 6 && !r.kill_more);
    int64_t drop[] = { 5 };
    bson_t out;
    CHECK(sy_mongo_kill_filter(bson_get_data(b), b->len, drop, 1, &out) == 0);
    CHECK(sy_mongo_req_info_parse(bson_get_data(&out), out.len, &r) && r.n_kill == 1 && r.kill_ids[0] == 6);
    bson_iter_t it;
    CHECK(bson_iter_init(&it, &out) && bson_iter_next(&it) && strcmp(bson_iter_key(&it), "killCursors") == 0);
    bson_destroy(&out);
    bson_destroy(b);
    for (const char *c = "find\0aggregate\0listCollections\0listIndexes\0"; *c; c += strlen(c) + 1) {
        b = BCON_NEW(c, BCON_INT32(1));
        CHECK(sy_mongo_req_info_parse(bson_get_data(b), b->len, &r) && r.kind == SY_MREQ_CURSOR);
        bson_destroy(b);
    }
}

static void test_reply_cursor(void)
{
    int64_t id;
    bool ok;
    /* FerretDB / MongoDB: {cursor: {firstBatch: [...], id, ns}, ok: 1.0} */
    bson_t *b = BCON_NEW("cursor", "{", "firstBatch", "[", "{", "_id", BCON_INT32(1), "}", "]", "id",
                         BCON_INT64(99), "ns", BCON_UTF8("app.c"), "}", "ok", BCON_DOUBLE(1.0));
    CHECK(sy_mongo_reply_cursor(bson_get_data(b), b->len, &id, &ok) == 1 && id == 99 && ok);
    bson_destroy(b);
    b = BCON_NEW("cursor", "{", "nextBatch", "[", "]", "id", BCON_INT64(0), "ns", BCON_UTF8("app.c"), "}", "ok",
                 BCON_DOUBLE(1.0));
    CHECK(sy_mongo_reply_cursor(bson_get_data(b), b->len, &id, &ok) == 1 && id == 0 && ok);
    bson_destroy(b);
    b = BCON_NEW("ok", BCON_DOUBLE(0.0), "errmsg", BCON_UTF8("cursor id 99 not found"), "code", BCON_INT32(43));
    CHECK(sy_mongo_reply_cursor(bson_get_data(b), b->len, &id, &ok) == 0 && !ok);
    bson_destroy(b);
    b = BCON_NEW("n", BCON_INT32(1), "ok", BCON_DOUBLE(1.0));
    CHECK(sy_mongo_reply_cursor(bson_get_data(b), b->len, &id, &ok) == 0 && ok);
    bson_destroy(b);
}

static void test_tables(void)
{
    struct sy_mongo_track t = { 0 };
    for (int64_t i = 1; i <= 40; i++)
        CHECK(sy_mongo_cursor_open(&t, i, (uint32_t)(i % 2 + 1), 1000) == 0);
    CHECK(sy_mongo_cursors_open(&t, 0) == 40 && sy_mongo_cursors_open(&t, 1) == 20);
    sy_mongo_cursor_drop(&t, 7);
    CHECK(sy_mongo_cursor_find(&t, 7) == NULL && sy_mongo_cursor_find(&t, 8) != NULL);
    CHECK(sy_mongo_cursors_set(&t, SY_MCUR_OPEN, SY_MCUR_ABANDONED) == 39 && sy_mongo_cursors_open(&t, 0) == 0);
    CHECK(sy_mongo_cursors_set(&t, SY_MCUR_ABANDONED, SY_MCUR_OPEN) == 39);
    CHECK(sy_mongo_cursors_set(&t, SY_MCUR_OPEN, SY_MCUR_STALE) == 39 && sy_mongo_cursor_find(&t, 8)->state ==
                                                                             SY_MCUR_STALE);
    CHECK(sy_mongo_txn_begin(&t, LSID, 3, 1, 1000) == 0 && sy_mongo_txns_open(&t, 0) == 1);
    CHECK(sy_mongo_txn_begin(&t, LSID, 4, 2, 2000) == 0 && sy_mongo_txns_open(&t, 0) == 1);
    CHECK(sy_mongo_txn_find(&t, LSID)->txn_number == 4 && sy_mongo_txns_open(&t, 2) == 1);
    sy_mongo_txn_find(&t, LSID)->aborted = true;
    CHECK(sy_mongo_txns_open(&t, 0) == 0);
    sy_mongo_track_expire(&t, 2000 + SY_MONGO_TXN_IDLE_MS);
    CHECK(sy_mongo_txn_find(&t, LSID) == NULL && t.n_cursors == 39);
    sy_mongo_track_expire(&t, 1000 + SY_MONGO_CURSOR_IDLE_MS);
    CHECK(t.n_cursors == 0);
    sy_mongo_txn_end(&t, LSID);
    sy_mongo_track_fini(&t);
}

static const char *str_of(const bson_t *b, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, b, key) && BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : NULL;
}

static void test_answers(void)
{
    bson_t d;
    bson_iter_t it, a;
    sy_mongo_cursor_gone_doc(&d, 42);
    CHECK(strcmp(str_of(&d, "codeName"), "CursorNotFound") == 0);
    CHECK(strstr(str_of(&d, "errmsg"), "cursor id 42 was opened on the other database before a Switchyard "
                                        "switchover") != NULL);
    CHECK(bson_iter_init_find(&it, &d, "code") && bson_iter_int32(&it) == 43);
    bson_destroy(&d);
    sy_mongo_txn_aborted_doc(&d, 9);
    CHECK(bson_iter_init_find(&it, &d, "code") && bson_iter_int32(&it) == 251);
    CHECK(bson_iter_init_find(&it, &d, "errorLabels") && bson_iter_recurse(&it, &a) && bson_iter_next(&a) &&
          strcmp(bson_iter_utf8(&a, NULL), "TransientTransactionError") == 0);
    CHECK(strstr(str_of(&d, "errmsg"), "Switchyard") != NULL);
    bson_destroy(&d);
    int64_t ids[] = { 5, 6 };
    sy_mongo_kill_gone_doc(&d, ids, 2);
    CHECK(bson_iter_init_find(&it, &d, "cursorsNotFound") && bson_iter_recurse(&it, &a) && bson_iter_next(&a) &&
          bson_iter_int64(&a) == 5);
    CHECK(bson_iter_init_find(&it, &d, "ok") && bson_iter_double(&it) == 1.0);
    bson_destroy(&d);
}

int main(void)
{
    test_transaction_commands();
    test_cursor_commands();
    test_reply_cursor();
    test_tables();
    test_answers();
    return CHECK_DONE();
}
