/* libFuzzer target: proxy/mongo_cmd.c over any document the wire codecs accept (the session only hands it
 * validated documents, so the input must pass sy_mongo_doc_check first). Input = [selector][document]:
 * the hello rewrite (and the hold's own hello answer) must produce a valid document naming the address;
 * the OP_QUERY unwrap must point inside the input; the login classification and reply checks must not read
 * outside it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/mongo_cmd.h"
#include "proxy/mongo_wire.h"
#include "fuzz/fuzz_require.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const uint8_t *doc = data + 1;
    size_t n = size - 1;
    if (sy_mongo_doc_check(doc, n, "fuzz", err, sizeof err) != 0)
        return 0;
    bson_t out;
    if (sy_mongo_hello_rewrite(doc, n, "127.0.0.1:6000", &out) == 0) {
        /* well-formed: walks to its end. (Not bson_validate: libbson 1.23 rejected a subset of a document it
         * accepted, same elements minus one, "corrupt BSON" at a string holding NULs: its quirk, not ours.) */
        bson_iter_t it;
        REQUIRE(bson_iter_init(&it, &out));
        while (bson_iter_next(&it))
            REQUIRE(strcmp(bson_iter_key(&it), "compression") != 0);
        REQUIRE(it.err_off == 0);
        REQUIRE(out.len <= n + 3 * (16 + sizeof "127.0.0.1:6000") + 16);
    }
    bson_destroy(&out);
    if (sy_mongo_hello_cached(doc, n, "127.0.0.1:6000", sel & 1, 1, &out) == 0) {   /* the hold's answer */
        bson_iter_t it;
        REQUIRE(bson_iter_init(&it, &out));
        while (bson_iter_next(&it))
            REQUIRE(strcmp(bson_iter_key(&it), "speculativeAuthenticate") != 0 &&
                    strcmp(bson_iter_key(&it), "saslSupportedMechs") != 0);
        REQUIRE(it.err_off == 0);
    }
    bson_destroy(&out);
    (void)sy_mongo_hello_logs_in(doc, n);
    const uint8_t *cmd = NULL;
    size_t cmd_len = 0;
    if (sy_mongo_query_command(doc, n, &cmd, &cmd_len))
        REQUIRE(cmd >= doc && cmd_len <= n && (size_t)(cmd - doc) <= n - cmd_len);
    struct sy_mongo_auth_req a;
    sy_mongo_auth_classify(doc, n, (sel & 1) ? "admin" : NULL, (sel & 1) ? 5 : 0, &a);
    REQUIRE(strlen(a.user) <= SY_MONGO_USER_MAX && strlen(a.db) < sizeof a.db);
    int rc = sy_mongo_auth_reply(doc, n, (sel & 2) != 0);
    REQUIRE(rc >= -1 && rc <= 1);
    return 0;
}
