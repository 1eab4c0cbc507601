/* proxy/mongo_sasl.c on recorded pymongo 4.10 -> FerretDB 1.24.2 documents (tests/unit/mongo_frames.h):
 * saslStart, saslContinue, speculativeAuthenticate inside an OP_QUERY ismaster, the usersInfo user
 * document's credentials, plus hand-made malformed documents and the reply builder. */
#include <string.h>

#include "proxy/mongo_sasl.h"
#include "proxy/mongo_wire.h"
#include "tests/unit/check.h"
#include "tests/unit/mongo_frames.h"

static char err[256];

static const struct mongo_frame *frame(const char *name)
{
    for (size_t i = 0; i < SY_ARRAY_LEN(mongo_frames); i++)
        if (strcmp(mongo_frames[i].name, name) == 0)
            return &mongo_frames[i];
    return NULL;
}

static void test_recorded_commands(void)
{
    const struct mongo_frame *f = frame("pymongo4_api_sasl_start");
    struct sy_mongo_msg m;
    struct sy_mongo_sasl s;
    CHECK(f != NULL && sy_mongo_msg_parse(f->data, f->len, &m, err, sizeof err) == 0);
    CHECK(sy_mongo_sasl_parse(m.body, m.body_len, &s, err, sizeof err) == 0);
    CHECK(s.kind == SY_SASL_START && s.has_mechanism && s.mech == SY_SCRAM_SHA256 && s.skip_empty_exchange);
    CHECK(strcmp(s.db, "admin") == 0);
    CHECK(s.payload_len == strlen(mongo_scram_recorded.client_first) &&
          memcmp(s.payload, mongo_scram_recorded.client_first, s.payload_len) == 0);
    struct sy_scram_client_first cf;
    CHECK(sy_scram_client_first_parse(s.payload, s.payload_len, &cf, err, sizeof err) == 0 &&
          strcmp(cf.user, mongo_scram_recorded.user) == 0);

    f = frame("pymongo4_sasl_continue");
    CHECK(f != NULL && sy_mongo_msg_parse(f->data, f->len, &m, err, sizeof err) == 0);
    CHECK(sy_mongo_sasl_parse(m.body, m.body_len, &s, err, sizeof err) == 0);
    CHECK(s.kind == SY_SASL_CONTINUE && s.conversation_id == 1 && !s.has_mechanism && s.payload_len > 0);

    f = frame("pymongo4_find");
    CHECK(f != NULL && sy_mongo_msg_parse(f->data, f->len, &m, err, sizeof err) == 0);
    CHECK(sy_mongo_sasl_parse(m.body, m.body_len, &s, err, sizeof err) != 0 && strcmp(err, "not sasl") == 0);
    CHECK(sy_mongo_sasl_speculative(m.body, m.body_len, &s, err, sizeof err) == 0);
}

static void test_recorded_speculative(void)
{
    const struct mongo_frame *f = frame("pymongo4_op_query_ismaster_speculative");
    struct sy_mongo_query q;
    struct sy_mongo_sasl s;
    char user[128];
    CHECK(f != NULL && sy_mongo_query_parse(f->data, f->len, &q, err, sizeof err) == 0);
    CHECK(sy_mongo_sasl_speculative(q.query, q.query_len, &s, err, sizeof err) == 1);
    CHECK(s.kind == SY_SASL_START && s.mech == SY_SCRAM_SHA256 && strcmp(s.db, "admin") == 0);
    CHECK(s.payload_len > 5 && memcmp(s.payload, "n,,n=", 5) == 0);
    CHECK(sy_mongo_sasl_supported_mechs_user(q.query, q.query_len, user, sizeof user) == 1);
    CHECK(strcmp(user, "admin.seeduser") == 0);
    CHECK(sy_mongo_sasl_supported_mechs_user(q.query, q.query_len, user, 5) == -1);
    f = frame("pymongo3_op_query_ismaster");                        /* the monitoring connection: no auth */
    CHECK(f != NULL && sy_mongo_query_parse(f->data, f->len, &q, err, sizeof err) == 0);
    CHECK(sy_mongo_sasl_speculative(q.query, q.query_len, &s, err, sizeof err) == 0);
    CHECK(sy_mongo_sasl_supported_mechs_user(q.query, q.query_len, user, sizeof user) == 0);
}

static void test_malformed_and_reply(void)
{
    struct sy_mongo_sasl s;
    bson_t *b = BCON_NEW("saslStart", BCON_INT32(1), "mechanism", BCON_UTF8("PLAIN"), "payload", BCON_UTF8("x"));
    CHECK(sy_mongo_sasl_parse(bson_get_data(b), b->len, &s, err, sizeof err) != 0 && strstr(err, "PLAIN") != NULL);
    bson_destroy(b);
    b = BCON_NEW("saslStart", BCON_INT32(1), "mechanism", BCON_UTF8("SCRAM-SHA-1"));
    CHECK(sy_mongo_sasl_parse(bson_get_data(b), b->len, &s, err, sizeof err) != 0 && strstr(err, "payload") != NULL);
    bson_destroy(b);
    b = BCON_NEW("saslStart", BCON_INT32(1), "payload", BCON_UTF8("n,,n=u,r=x"));
    CHECK(sy_mongo_sasl_parse(bson_get_data(b), b->len, &s, err, sizeof err) != 0);
    bson_destroy(b);
    b = BCON_NEW("saslStart", BCON_INT32(1), "mechanism", BCON_UTF8("SCRAM-SHA-1"), "payload", BCON_UTF8("n,,n=u,r=x"),
                 "$db", BCON_UTF8("admin"));                          /* a string payload is accepted */
    CHECK(sy_mongo_sasl_parse(bson_get_data(b), b->len, &s, err, sizeof err) == 0 && s.mech == SY_SCRAM_SHA1 &&
          s.payload_len == 10 && !s.skip_empty_exchange);
    bson_destroy(b);
    b = BCON_NEW("saslContinue", BCON_INT32(1), "conversationId", BCON_DOUBLE(2.0), "payload", BCON_UTF8("c=biws"));
    CHECK(sy_mongo_sasl_parse(bson_get_data(b), b->len, &s, err, sizeof err) == 0 && s.conversation_id == 2);
    bson_destroy(b);
    b = BCON_NEW("saslContinue", BCON_INT32(1), "conversationId", BCON_DOUBLE(2.5), "payload", BCON_UTF8("c=biws"));
    CHECK(sy_mongo_sasl_parse(bson_get_data(b), b->len, &s, err, sizeof err) != 0);
    bson_destroy(b);
    b = BCON_NEW("saslContinue", BCON_INT32(1), "conversationId", BCON_INT64(1ll << 40), "payload", BCON_UTF8("x"));
    CHECK(sy_mongo_sasl_parse(bson_get_data(b), b->len, &s, err, sizeof err) != 0);
    bson_destroy(b);
    b = BCON_NEW("saslContinue", BCON_INT32(1), "payload", BCON_UTF8("x"));
    CHECK(sy_mongo_sasl_parse(bson_get_data(b), b->len, &s, err, sizeof err) != 0);
    bson_destroy(b);
    b = BCON_NEW("hello", BCON_INT32(1), "speculativeAuthenticate", "{", "authenticate", BCON_INT32(1), "}");
    CHECK(sy_mongo_sasl_speculative(bson_get_data(b), b->len, &s, err, sizeof err) == -1);
    bson_destroy(b);

    bson_t r = BSON_INITIALIZER;
    sy_mongo_sasl_reply_append(&r, 7, true, "v=abc", 5, true);
    bson_iter_t it;
    bson_subtype_t st;
    uint32_t pl = 0;
    const uint8_t *pd = NULL;
    CHECK(bson_iter_init_find(&it, &r, "conversationId") && bson_iter_int32(&it) == 7);
    CHECK(bson_iter_init_find(&it, &r, "done") && bson_iter_bool(&it));
    CHECK(bson_iter_init_find(&it, &r, "payload") && BSON_ITER_HOLDS_BINARY(&it));
    bson_iter_binary(&it, &st, &pl, &pd);
    CHECK(pl == 5 && memcmp(pd, "v=abc", 5) == 0 && st == BSON_SUBTYPE_BINARY);
    CHECK(bson_iter_init_find(&it, &r, "ok") && bson_iter_double(&it) == 1.0);
    bson_destroy(&r);
}

static void test_recorded_credentials(void)
{
    struct sy_scram_cred c, c1;
    uint8_t want[SY_SCRAM_MAX_KEY];
    size_t wl = 0;
    CHECK(sy_mongo_cred_parse(mongo_user_doc, sizeof mongo_user_doc, SY_SCRAM_SHA256, &c, err, sizeof err) == 0);
    CHECK(c.hash == SY_SCRAM_SHA256 && c.iterations == mongo_scram_recorded.iterations && c.salt_len > 0);
    CHECK(sy_scram_b64_decode(mongo_scram_recorded.stored_key, strlen(mongo_scram_recorded.stored_key), want,
                              sizeof want, &wl) == 0 && wl == 32 && memcmp(want, c.stored_key, 32) == 0);
    CHECK(sy_scram_b64_decode(mongo_scram_recorded.server_key, strlen(mongo_scram_recorded.server_key), want,
                              sizeof want, &wl) == 0 && wl == 32 && memcmp(want, c.server_key, 32) == 0);
    CHECK(sy_mongo_cred_parse(mongo_user_doc, sizeof mongo_user_doc, SY_SCRAM_SHA1, &c1, err, sizeof err) == 0);
    CHECK(c1.iterations == 10000 && c1.hash == SY_SCRAM_SHA1);

    bson_t *b = BCON_NEW("user", BCON_UTF8("u"));
    CHECK(sy_mongo_cred_parse(bson_get_data(b), b->len, SY_SCRAM_SHA256, &c, err, sizeof err) != 0);
    bson_destroy(b);
    b = BCON_NEW("credentials", "{", "SCRAM-SHA-1", "{", "iterationCount", BCON_INT32(10000), "salt",
                 BCON_UTF8("QSXCR+Q6sek8bf92"), "storedKey", BCON_UTF8("AAAA"), "serverKey", BCON_UTF8("AAAA"), "}",
                 "}");
    CHECK(sy_mongo_cred_parse(bson_get_data(b), b->len, SY_SCRAM_SHA256, &c, err, sizeof err) != 0 &&
          strstr(err, "SCRAM-SHA-256") != NULL);
    CHECK(sy_mongo_cred_parse(bson_get_data(b), b->len, SY_SCRAM_SHA1, &c, err, sizeof err) != 0 &&
          strstr(err, "storedKey") != NULL);                           /* 3 bytes, not 20 */
    bson_destroy(b);
    b = BCON_NEW("credentials", "{", "SCRAM-SHA-1", "{", "iterationCount", BCON_INT32(0), "salt",
                 BCON_UTF8("QSXCR+Q6sek8bf92"), "}", "}");
    CHECK(sy_mongo_cred_parse(bson_get_data(b), b->len, SY_SCRAM_SHA1, &c, err, sizeof err) != 0 &&
          strstr(err, "iterationCount") != NULL);
    bson_destroy(b);
}

int main(void)
{
    test_recorded_commands();
    test_recorded_speculative();
    test_malformed_and_reply();
    test_recorded_credentials();
    return CHECK_DONE();
}
