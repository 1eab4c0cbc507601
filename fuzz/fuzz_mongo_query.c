/* libFuzzer target: the legacy opcodes. Input = [selector][frame]; selector & 3: 0 OP_QUERY, 1 OP_REPLY,
 * 2 OP_COMPRESSED (3: all three); selector & 4 keeps the frame's own messageLength and opcode, otherwise
 * they are patched to the input so the fuzzer explores the fields after the header. A parsed OP_REPLY is
 * rebuilt and must parse back the same; a parsed OP_QUERY's parts stay inside the frame. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/mongo_wire.h"
#include "fuzz/fuzz_require.h"

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[1 << 20];
    char err[256];
    if (size < 1 || size - 1 > (1u << 20))
        return 0;
    uint8_t sel = data[0];
    size_t n = size - 1;
    uint8_t *f = malloc(n ? n : 1);
    memcpy(f, data + 1, n);
    for (int kind = 0; kind < 3; kind++) {
        if ((sel & 3) != 3 && (sel & 3) != kind)
            continue;
        static const int32_t ops[3] = { SY_MONGO_OP_QUERY, SY_MONGO_OP_REPLY, SY_MONGO_OP_COMPRESSED };
        if (!(sel & 4) && n >= SY_MONGO_HDR_LEN) {
            put32(f, (uint32_t)n);
            put32(f + 12, (uint32_t)ops[kind]);
        }
        if (kind == 0) {
            struct sy_mongo_query q;
            if (sy_mongo_query_parse(f, n, &q, err, sizeof err) == 0) {
                REQUIRE((const uint8_t *)q.ns > f && (const uint8_t *)q.ns + q.ns_len < f + n);
                REQUIRE(q.query > f && q.query + q.query_len <= f + n);
                size_t dbl = 0;
                if (sy_mongo_ns_is_cmd(q.ns, q.ns_len, &dbl))
                    REQUIRE(dbl > 0 && dbl < q.ns_len);
                (void)sy_mongo_is_hello(sy_mongo_cmd_name(q.query, q.query_len));
            }
        } else if (kind == 1) {
            struct sy_mongo_reply r, back;
            size_t bl = 0;
            if (sy_mongo_reply_parse(f, n, &r, err, sizeof err) == 0 &&
                sy_mongo_reply_build(out, sizeof out, &bl, r.hdr.request_id, r.hdr.response_to, r.flags, r.cursor_id,
                                     r.starting_from, r.docs, r.docs_len, r.nreturned) == 0) {
                REQUIRE(bl == n && memcmp(out, f, n) == 0);
                REQUIRE(sy_mongo_reply_parse(out, bl, &back, err, sizeof err) == 0 && back.nreturned == r.nreturned);
            }
        } else {
            struct sy_mongo_compressed c;
            if (sy_mongo_compressed_parse(f, n, &c, err, sizeof err) == 0)
                REQUIRE(n >= 25);
        }
    }
    free(f);
    return 0;
}
