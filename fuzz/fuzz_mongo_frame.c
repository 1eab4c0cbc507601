/* libFuzzer target: MongoDB framing, OP_MSG sections and checksum. Input = a byte stream of messages, split
 * by sy_mongo_frame as the proxy would (max 1 MiB here so the fuzzer reaches the end of its claims); each
 * whole frame is parsed by its opcode. A parsed OP_MSG is rebuilt from its parts (checksum recomputed)
 * and must parse back to the same parts; every frame is also parsed once with its length patched to the
 * frame (the fuzzer then explores bodies, not just headers). Each command document also goes through the
 * SASL readers (saslStart/saslContinue, speculativeAuthenticate, saslSupportedMechs, credentials).
 * Traps on broken invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/mongo_sasl.h"
#include "proxy/mongo_wire.h"
#include "fuzz/fuzz_require.h"

static void check_msg_roundtrip(const struct sy_mongo_msg *m)
{
    static uint8_t buf[1 << 20];
    size_t n = 0;
    struct sy_mongo_msg back;
    char err[256];
    if (sy_mongo_msg_build(buf, sizeof buf, &n, m->hdr.request_id, m->hdr.response_to, m->flags, m->body,
                           m->body_len, m->seqs, m->nseqs) != 0)
        return;                                   /* only when it does not fit */
    REQUIRE(sy_mongo_msg_parse(buf, n, &back, err, sizeof err) == 0);
    REQUIRE(back.flags == m->flags && back.nseqs == m->nseqs && back.body_len == m->body_len);
    REQUIRE(memcmp(back.body, m->body, m->body_len) == 0);
    for (unsigned i = 0; i < m->nseqs; i++) {
        REQUIRE(back.seqs[i].ndocs == m->seqs[i].ndocs && back.seqs[i].len == m->seqs[i].len);
        REQUIRE(back.seqs[i].id_len == m->seqs[i].id_len && memcmp(back.seqs[i].id, m->seqs[i].id, m->seqs[i].id_len) == 0);
        size_t off = 0, dl;
        const uint8_t *d;
        uint32_t count = 0;
        while (sy_mongo_seq_next(&m->seqs[i], &off, &d, &dl))
            count++;
        REQUIRE(count == m->seqs[i].ndocs && off == m->seqs[i].len);
    }
}

static void sasl_readers(const uint8_t *doc, size_t len)
{
    char err[256], user[64];
    struct sy_mongo_sasl s;
    struct sy_scram_cred c;
    if (sy_mongo_sasl_parse(doc, len, &s, err, sizeof err) == 0 && s.payload_len > 0)
        REQUIRE((const uint8_t *)s.payload > doc && (const uint8_t *)s.payload + s.payload_len < doc + len);
    if (sy_mongo_sasl_speculative(doc, len, &s, err, sizeof err) == 1 && s.payload_len > 0)
        REQUIRE((const uint8_t *)s.payload > doc && (const uint8_t *)s.payload + s.payload_len < doc + len);
    if (sy_mongo_sasl_supported_mechs_user(doc, len, user, sizeof user) == 1)
        REQUIRE(strlen(user) < sizeof user);
    if (sy_mongo_cred_parse(doc, len, SY_SCRAM_SHA256, &c, err, sizeof err) == 0)
        REQUIRE(c.iterations > 0 && c.salt_len > 0 && c.salt_len <= sizeof c.salt);
    (void)sy_mongo_cred_parse(doc, len, SY_SCRAM_SHA1, &c, err, sizeof err);
}

static void parse_one(const uint8_t *f, size_t n)
{
    char err[256];
    struct sy_mongo_header h;
    size_t fl = 0;
    if (sy_mongo_frame(f, n, SY_MONGO_MAX_MESSAGE, &h, &fl, err, sizeof err) != SY_PARSE_OK || fl != n)
        return;
    if (h.op_code == SY_MONGO_OP_MSG) {
        struct sy_mongo_msg m;
        if (sy_mongo_msg_parse(f, n, &m, err, sizeof err) == 0) {
            REQUIRE(m.body != NULL && m.body >= f && m.body + m.body_len <= f + n);
            REQUIRE(sy_mongo_cmd_name(m.body, m.body_len) != NULL || m.body_len == 5);
            check_msg_roundtrip(&m);
            sasl_readers(m.body, m.body_len);
        } else {
            REQUIRE(err[0] != '\0');
        }
    } else if (h.op_code == SY_MONGO_OP_QUERY) {
        struct sy_mongo_query q;
        if (sy_mongo_query_parse(f, n, &q, err, sizeof err) == 0)
            sasl_readers(q.query, q.query_len);
    } else if (h.op_code == SY_MONGO_OP_REPLY) {
        struct sy_mongo_reply r;
        (void)sy_mongo_reply_parse(f, n, &r, err, sizeof err);
    } else if (h.op_code == SY_MONGO_OP_COMPRESSED) {
        struct sy_mongo_compressed c;
        (void)sy_mongo_compressed_parse(f, n, &c, err, sizeof err);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    char err[256];
    while (off < size) {
        struct sy_mongo_header h;
        size_t fl = 0;
        enum sy_parse pr = sy_mongo_frame(data + off, size - off, 1u << 20, &h, &fl, err, sizeof err);
        if (pr == SY_PARSE_BAD) {
            REQUIRE(err[0] != '\0');
            break;
        }
        if (pr == SY_PARSE_AGAIN) {
            /* the rest as one frame with its length patched: explore the body */
            size_t n = size - off;
            if (n >= SY_MONGO_HDR_LEN && n <= (1u << 20)) {
                uint8_t *copy = malloc(n);
                memcpy(copy, data + off, n);
                copy[0] = (uint8_t)n;
                copy[1] = (uint8_t)(n >> 8);
                copy[2] = (uint8_t)(n >> 16);
                copy[3] = 0;
                parse_one(copy, n);
                free(copy);
            }
            break;
        }
        REQUIRE(fl >= SY_MONGO_HDR_LEN && fl <= size - off && (size_t)h.length == fl);
        parse_one(data + off, fl);
        off += fl;
    }
    return 0;
}
