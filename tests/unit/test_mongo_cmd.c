/* proxy/mongo_cmd.c: the hello/isMaster topology rewrite (FerretDB's reply shape, a standalone, compression
 * removed), OP_QUERY command unwrapping, and the login steps a session notes (SCRAM user from saslStart's
 * payload, speculativeAuthenticate, replies with done/ok). */
#include <string.h>

#include "proxy/mongo_cmd.h"
#include "tests/unit/check.h"

static const char *str_of(const bson_t *b, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, b, key) && BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : NULL;
}

static bool has(const bson_t *b, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, b, key);
}

static void test_hello_rewrite_replica_set(void)
{
    /* FerretDB 1.24.2 with --repl-set-name: setName, hosts = itself, no me/primary */
    bson_t *in = BCON_NEW("isWritablePrimary", BCON_BOOL(true), "setName", BCON_UTF8("rs0"), "hosts", "[",
                          BCON_UTF8("127.0.0.1:27017"), "]", "passives", "[", BCON_UTF8("10.0.0.9:27017"), "]",
                          "compression", "[", BCON_UTF8("zlib"), "]", "maxWireVersion", BCON_INT32(21),
                          "ok", BCON_DOUBLE(1.0));
    bson_t out;
    CHECK(sy_mongo_hello_rewrite(bson_get_data(in), in->len, "127.0.0.1:6000", &out) == 0);
    CHECK(strcmp(str_of(&out, "me"), "127.0.0.1:6000") == 0);
    CHECK(strcmp(str_of(&out, "primary"), "127.0.0.1:6000") == 0);
    CHECK(strcmp(str_of(&out, "setName"), "rs0") == 0);
    CHECK(!has(&out, "compression") && !has(&out, "passives") && has(&out, "maxWireVersion"));
    bson_iter_t it, arr;
    CHECK(bson_iter_init_find(&it, &out, "hosts") && BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr));
    CHECK(bson_iter_next(&arr) && strcmp(bson_iter_utf8(&arr, NULL), "127.0.0.1:6000") == 0);
    CHECK(!bson_iter_next(&arr));
    bson_destroy(&out);
    bson_destroy(in);
}

static void test_hello_rewrite_standalone_and_garbage(void)
{
    bson_t *in = BCON_NEW("ismaster", BCON_BOOL(true), "compression", "[", BCON_UTF8("snappy"), "]", "ok",
                          BCON_DOUBLE(1.0));
    bson_t out;
    CHECK(sy_mongo_hello_rewrite(bson_get_data(in), in->len, "h:1", &out) == 0);
    CHECK(!has(&out, "hosts") && !has(&out, "me") && !has(&out, "primary") && !has(&out, "compression"));
    CHECK(has(&out, "ismaster") && has(&out, "ok"));
    bson_destroy(&out);
    bson_destroy(in);
    static const uint8_t bad[] = { 9, 0, 0, 0, 0x10, 'a', 0, 1, 0 };   /* cut short */
    CHECK(sy_mongo_hello_rewrite(bad, sizeof bad, "h:1", &out) == -1);
    bson_destroy(&out);
}

/* The hold's own answer: a reply FerretDB gave to one client's authenticating isMaster, reused for a
 * monitor's hello: the login members gone, the primary flag named after the command asked, ok required. */
static void test_hello_cached(void)
{
    bson_t *in = BCON_NEW("ismaster", BCON_BOOL(true), "setName", BCON_UTF8("rs0"), "hosts", "[",
                          BCON_UTF8("127.0.0.1:27017"), "]", "saslSupportedMechs", "[", BCON_UTF8("SCRAM-SHA-256"),
                          "]", "speculativeAuthenticate", "{", "conversationId", BCON_INT32(1), "}",
                          "localTime", BCON_DATE_TIME(5), "maxWireVersion", BCON_INT32(21), "ok", BCON_DOUBLE(1.0));
    bson_t out;
    bson_iter_t it;
    CHECK(sy_mongo_hello_cached(bson_get_data(in), in->len, "127.0.0.1:6000", false, 1234, &out) == 0);
    CHECK(!has(&out, "saslSupportedMechs") && !has(&out, "speculativeAuthenticate") && !has(&out, "ismaster"));
    CHECK(bson_iter_init_find(&it, &out, "isWritablePrimary") && bson_iter_as_bool(&it));
    CHECK(bson_iter_init_find(&it, &out, "localTime") && bson_iter_date_time(&it) == 1234);
    CHECK(strcmp(str_of(&out, "primary"), "127.0.0.1:6000") == 0 && has(&out, "maxWireVersion"));
    bson_destroy(&out);
    CHECK(sy_mongo_hello_cached(bson_get_data(in), in->len, "h:1", true, 1, &out) == 0);
    CHECK(bson_iter_init_find(&it, &out, "ismaster") && bson_iter_as_bool(&it) && !has(&out, "isWritablePrimary"));
    bson_destroy(&out);
    bson_destroy(in);
    /* a secondary stays one; a failed reply is never reused */
    bson_t *sec = BCON_NEW("isWritablePrimary", BCON_BOOL(false), "secondary", BCON_BOOL(true), "ok",
                           BCON_DOUBLE(1.0));
    CHECK(sy_mongo_hello_cached(bson_get_data(sec), sec->len, "h:1", true, 1, &out) == 0);
    CHECK(bson_iter_init_find(&it, &out, "ismaster") && !bson_iter_as_bool(&it));
    bson_destroy(&out);
    bson_t *failed = BCON_NEW("ok", BCON_DOUBLE(0.0), "errmsg", BCON_UTF8("x"));
    CHECK(sy_mongo_hello_cached(bson_get_data(failed), failed->len, "h:1", false, 1, &out) == -1);
    bson_destroy(&out);
    static const uint8_t bad[] = { 9, 0, 0, 0, 0x10, 'a', 0, 1, 0 };
    CHECK(sy_mongo_hello_cached(bad, sizeof bad, "h:1", false, 1, &out) == -1);
    bson_destroy(&out);
    /* which requests it may answer: not one that starts a login */
    bson_t *monitor = BCON_NEW("hello", BCON_INT32(1), "helloOk", BCON_BOOL(true));
    bson_t *login = BCON_NEW("isMaster", BCON_INT32(1), "saslSupportedMechs", BCON_UTF8("admin.u"));
    bson_t *spec = BCON_NEW("isMaster", BCON_INT32(1), "speculativeAuthenticate", "{", "}");
    CHECK(!sy_mongo_hello_logs_in(bson_get_data(monitor), monitor->len));
    CHECK(sy_mongo_hello_logs_in(bson_get_data(login), login->len));
    CHECK(sy_mongo_hello_logs_in(bson_get_data(spec), spec->len));
    CHECK(sy_mongo_hello_logs_in(bad, sizeof bad));
    bson_destroy(monitor);
    bson_destroy(login);
    bson_destroy(spec);
    bson_destroy(sec);
    bson_destroy(failed);
}

static void test_query_command_unwrap(void)
{
    bson_t *plain = BCON_NEW("isMaster", BCON_INT32(1));
    bson_t *wrapped = BCON_NEW("$query", "{", "ismaster", BCON_INT32(1), "}", "$readPreference", "{", "mode",
                               BCON_UTF8("primary"), "}");
    const uint8_t *cmd;
    size_t len;
    CHECK(sy_mongo_query_command(bson_get_data(plain), plain->len, &cmd, &len) && cmd == bson_get_data(plain));
    CHECK(sy_mongo_query_command(bson_get_data(wrapped), wrapped->len, &cmd, &len));
    bson_t inner;
    CHECK(bson_init_static(&inner, cmd, len) && has(&inner, "ismaster"));
    bson_destroy(plain);
    bson_destroy(wrapped);
}

static void test_auth_steps(void)
{
    static const char first[] = "n,,n=app=2Cuser,r=fyko+d2lbbFgONRv9qkxdawL";
    bson_t *start = bson_new();
    BSON_APPEND_INT32(start, "saslStart", 1);
    BSON_APPEND_BINARY(start, "payload", BSON_SUBTYPE_BINARY, (const uint8_t *)first, sizeof first - 1);
    BSON_APPEND_UTF8(start, "mechanism", "SCRAM-SHA-256");           /* after the payload: still found */
    BSON_APPEND_UTF8(start, "$db", "admin");
    struct sy_mongo_auth_req a;
    sy_mongo_auth_classify(bson_get_data(start), start->len, NULL, 0, &a);
    CHECK(a.step == SY_AUTH_START && strcmp(a.user, "app,user") == 0 && strcmp(a.db, "admin") == 0);
    CHECK(strcmp(a.mechanism, "SCRAM-SHA-256") == 0);

    bson_t *hello = BCON_NEW("ismaster", BCON_INT32(1), "speculativeAuthenticate", "{", "saslStart", BCON_INT32(1),
                             "mechanism", BCON_UTF8("SCRAM-SHA-1"), "payload", BCON_UTF8(first), "db",
                             BCON_UTF8("sales"), "}");
    sy_mongo_auth_classify(bson_get_data(hello), hello->len, "admin", 5, &a);
    CHECK(a.step == SY_AUTH_SPECULATIVE && strcmp(a.user, "app,user") == 0 && strcmp(a.db, "sales") == 0);

    bson_t *cont = BCON_NEW("saslContinue", BCON_INT32(1), "conversationId", BCON_INT32(1));
    sy_mongo_auth_classify(bson_get_data(cont), cont->len, NULL, 0, &a);
    CHECK(a.step == SY_AUTH_CONTINUE);
    bson_t *find = BCON_NEW("find", BCON_UTF8("c"), "$db", BCON_UTF8("d"));
    sy_mongo_auth_classify(bson_get_data(find), find->len, NULL, 0, &a);
    CHECK(a.step == SY_AUTH_NONE);

    bson_t *going = BCON_NEW("conversationId", BCON_INT32(1), "done", BCON_BOOL(false), "ok", BCON_DOUBLE(1));
    bson_t *done = BCON_NEW("conversationId", BCON_INT32(1), "done", BCON_BOOL(true), "ok", BCON_DOUBLE(1));
    bson_t *failed = BCON_NEW("ok", BCON_DOUBLE(0), "code", BCON_INT32(18), "errmsg",
                              BCON_UTF8("Authentication failed."));
    CHECK(sy_mongo_auth_reply(bson_get_data(going), going->len, false) == 0);
    CHECK(sy_mongo_auth_reply(bson_get_data(done), done->len, false) == 1);
    CHECK(sy_mongo_auth_reply(bson_get_data(failed), failed->len, false) == -1);
    bson_t *hello_spec = BCON_NEW("ismaster", BCON_BOOL(true), "speculativeAuthenticate", "{", "conversationId",
                                  BCON_INT32(1), "done", BCON_BOOL(false), "payload", BCON_UTF8("r=x"), "}", "ok",
                                  BCON_DOUBLE(1));
    bson_t *hello_plain = BCON_NEW("ismaster", BCON_BOOL(true), "ok", BCON_DOUBLE(1));
    CHECK(sy_mongo_auth_reply(bson_get_data(hello_spec), hello_spec->len, true) == 0);
    CHECK(sy_mongo_auth_reply(bson_get_data(hello_plain), hello_plain->len, true) == 0);
    bson_t *all[] = { start, hello, cont, find, going, done, failed, hello_spec, hello_plain };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        bson_destroy(all[i]);
}

int main(void)
{
    test_hello_rewrite_replica_set();
    test_hello_rewrite_standalone_and_garbage();
    test_hello_cached();
    test_query_command_unwrap();
    test_auth_steps();
    return CHECK_DONE();
}
