/* libFuzzer target: proxy/mongo_write.c (the documents an acknowledged write changed: the ack ledger) over
 * any request and reply documents the wire codecs accept. Input = [request document][reply document]; the
 * request is also offered as a kind-1 "documents" section of one document. Never more keys proven than
 * statements. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_require.h"
#include "proxy/mongo_wire.h"
#include "proxy/mongo_write.h"

static void one(const struct sy_mongo_msg *m, const uint8_t *reply, size_t reply_len)
{
    struct sy_mongo_write w;
    int rc = sy_mongo_write_parse(m, &w);
    REQUIRE(rc >= -1 && rc <= 1);
    if (rc != 1) {
        REQUIRE(w.op == SY_MWRITE_NONE && w.keys == NULL);
        return;
    }
    REQUIRE(w.op != SY_MWRITE_NONE && w.db[0] != '\0');
    uint64_t *keys = calloc(w.n + 1, sizeof *keys);
    REQUIRE(keys != NULL);
    struct sy_mongo_write_ack a;
    if (reply_len > 0 && sy_mongo_write_acked(&w, reply, reply_len, keys, &a))
        REQUIRE(a.n_keys <= w.n);
    free(keys);
    sy_mongo_write_fini(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (size < 5)
        return 0;
    uint32_t len = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
    if (len < 5 || len > size || sy_mongo_doc_check(data, len, "fuzz", err, sizeof err) != 0)
        return 0;
    const uint8_t *reply = data + len;
    size_t reply_len = size - len;
    if (reply_len > 0 && sy_mongo_doc_check(reply, reply_len, "fuzz", err, sizeof err) != 0)
        reply_len = 0;
    struct sy_mongo_msg m = { 0 };
    m.body = data;
    m.body_len = len;
    one(&m, reply, reply_len);
    if (reply_len > 0) {   /* the reply as one statement document of the request */
        m.seqs[0] = (struct sy_mongo_seq){ .id = "documents", .id_len = 9, .docs = reply, .len = reply_len,
                                           .ndocs = 1 };
        m.nseqs = 1;
        one(&m, reply, reply_len);
    }
    return 0;
}
