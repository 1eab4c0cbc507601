/* proxy/mongo_wire.c: CRC-32C vectors, framing limits, OP_MSG sections/flags/checksum, OP_QUERY, OP_REPLY,
 * OP_COMPRESSED, BSON checks, and frames captured from pymongo 4.10 / 3.11 talking to FerretDB 1.24.2
 * (tests/unit/mongo_frames.h, written by tests/integration/test_ferretdb_sandbox.py's tee). */
#include <stdlib.h>
#include <string.h>

#include "proxy/mongo_wire.h"
#include "tests/unit/check.h"
#include "tests/unit/mongo_frames.h"

static char err[256];

static void test_crc32c_vectors(void)
{
    uint8_t buf[32];
    CHECK(sy_crc32c(0, "123456789", 9) == 0xE3069283u);
    memset(buf, 0, sizeof buf);                                  /* RFC 3720 B.4 */
    CHECK(sy_crc32c(0, buf, 32) == 0x8A9136AAu);
    memset(buf, 0xFF, sizeof buf);
    CHECK(sy_crc32c(0, buf, 32) == 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    CHECK(sy_crc32c(0, buf, 32) == 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    CHECK(sy_crc32c(0, buf, 32) == 0x113FDB5Cu);
    CHECK(sy_crc32c(sy_crc32c(0, "12345", 5), "6789", 4) == 0xE3069283u);   /* chains */
    CHECK(sy_crc32c(0, "", 0) == 0);
}

static void le32(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

static void test_frame_limits(void)
{
    uint8_t h[16] = { 0 };
    struct sy_mongo_header hdr;
    size_t fl = 0;
    CHECK(sy_mongo_frame(h, 3, SY_MONGO_MAX_MESSAGE, &hdr, &fl, err, sizeof err) == SY_PARSE_AGAIN);
    le32(h, 15);
    CHECK(sy_mongo_frame(h, 4, SY_MONGO_MAX_MESSAGE, &hdr, &fl, err, sizeof err) == SY_PARSE_BAD);
    le32(h, -1);
    CHECK(sy_mongo_frame(h, 16, SY_MONGO_MAX_MESSAGE, &hdr, &fl, err, sizeof err) == SY_PARSE_BAD);
    le32(h, INT32_MIN);
    CHECK(sy_mongo_frame(h, 16, SY_MONGO_MAX_MESSAGE, &hdr, &fl, err, sizeof err) == SY_PARSE_BAD);
    le32(h, (int32_t)SY_MONGO_MAX_MESSAGE + 1);     /* the claim alone is refused: no waiting for 48 MB */
    CHECK(sy_mongo_frame(h, 4, SY_MONGO_MAX_MESSAGE, &hdr, &fl, err, sizeof err) == SY_PARSE_BAD);
    CHECK(strstr(err, "maxMessageSizeBytes") != NULL);
    le32(h, 1000);
    CHECK(sy_mongo_frame(h, 16, 999, &hdr, &fl, err, sizeof err) == SY_PARSE_BAD);
    CHECK(sy_mongo_frame(h, 16, 1000, &hdr, &fl, err, sizeof err) == SY_PARSE_AGAIN);
    le32(h, 16);
    le32(h + 4, 7);
    le32(h + 8, 3);
    le32(h + 12, SY_MONGO_OP_MSG);
    CHECK(sy_mongo_frame(h, 16, SY_MONGO_MAX_MESSAGE, &hdr, &fl, err, sizeof err) == SY_PARSE_OK);
    CHECK(fl == 16 && hdr.request_id == 7 && hdr.response_to == 3 && hdr.op_code == SY_MONGO_OP_MSG);
}

/* A message built from a body {insert: "c", $db: "t"} and a "documents" sequence of n docs {_id: i}. */
static size_t build_insert(uint8_t *out, size_t cap, uint32_t flags, int ndocs)
{
    bson_t body = BSON_INITIALIZER, docs[4];
    uint8_t seqbuf[256];
    size_t seql = 0, n = 0;
    BSON_APPEND_UTF8(&body, "insert", "c");
    BSON_APPEND_UTF8(&body, "$db", "t");
    for (int i = 0; i < ndocs; i++) {
        bson_init(&docs[i]);
        BSON_APPEND_INT32(&docs[i], "_id", i);
        memcpy(seqbuf + seql, bson_get_data(&docs[i]), docs[i].len);
        seql += docs[i].len;
        bson_destroy(&docs[i]);
    }
    struct sy_mongo_seq s = { "documents", 9, seqbuf, seql, 0 };
    int rc = sy_mongo_msg_build(out, cap, &n, 42, 0, flags, bson_get_data(&body), body.len, &s, ndocs ? 1 : 0);
    bson_destroy(&body);
    return rc == 0 ? n : 0;
}

static void test_msg_roundtrip(void)
{
    uint8_t buf[512];
    struct sy_mongo_msg m;
    size_t n = build_insert(buf, sizeof buf, SY_MONGO_MSG_CHECKSUM | SY_MONGO_MSG_EXHAUST_ALLOWED, 3);
    CHECK(n > 0);
    CHECK(sy_mongo_msg_parse(buf, n, &m, err, sizeof err) == 0);
    CHECK(m.checksum_present && m.hdr.request_id == 42 && m.nseqs == 1 && m.seqs[0].ndocs == 3);
    CHECK(m.flags == (SY_MONGO_MSG_CHECKSUM | SY_MONGO_MSG_EXHAUST_ALLOWED));
    CHECK(strcmp(m.seqs[0].id, "documents") == 0);
    CHECK(strcmp(sy_mongo_cmd_name(m.body, m.body_len), "insert") == 0);
    size_t off = 0, dl;
    const uint8_t *d;
    int count = 0;
    while (sy_mongo_seq_next(&m.seqs[0], &off, &d, &dl)) {
        bson_t b;
        bson_iter_t it;
        CHECK(bson_init_static(&b, d, dl) && bson_iter_init_find(&it, &b, "_id") && bson_iter_int32(&it) == count);
        count++;
    }
    CHECK(count == 3);
    /* every proper prefix (as a frame claiming the full length) is refused, never read past */
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *p = malloc(cut ? cut : 1);
        memcpy(p, buf, cut);
        CHECK(sy_mongo_msg_parse(p, cut, &m, err, sizeof err) != 0);
        free(p);
    }
    /* a flipped bit anywhere is caught by the checksum (or the header checks) */
    for (size_t i = 16; i < n; i++) {
        buf[i] ^= 0x10;
        CHECK(sy_mongo_msg_parse(buf, n, &m, err, sizeof err) != 0);
        buf[i] ^= 0x10;
    }
    buf[n - 1] ^= 1;
    CHECK(sy_mongo_msg_parse(buf, n, &m, err, sizeof err) != 0 && strstr(err, "checksum") != NULL);
}

static void test_msg_flags(void)
{
    uint8_t buf[512];
    struct sy_mongo_msg m;
    size_t n = build_insert(buf, sizeof buf, SY_MONGO_MSG_MORE_TO_COME, 1);
    CHECK(sy_mongo_msg_parse(buf, n, &m, err, sizeof err) == 0 && (m.flags & SY_MONGO_MSG_MORE_TO_COME));
    CHECK(!m.checksum_present);
    n = build_insert(buf, sizeof buf, 0x4, 1);                 /* unknown required bit */
    CHECK(sy_mongo_msg_parse(buf, n, &m, err, sizeof err) != 0 && strstr(err, "required") != NULL);
    n = build_insert(buf, sizeof buf, 0x8000, 1);
    CHECK(sy_mongo_msg_parse(buf, n, &m, err, sizeof err) != 0);
    n = build_insert(buf, sizeof buf, 0x40000000u, 1);         /* unknown optional bit: ignored */
    CHECK(sy_mongo_msg_parse(buf, n, &m, err, sizeof err) == 0);
    n = build_insert(buf, sizeof buf, 0, 0);                   /* body only */
    CHECK(sy_mongo_msg_parse(buf, n, &m, err, sizeof err) == 0 && m.nseqs == 0);
}

static void test_msg_sections_malformed(void)
{
    uint8_t buf[512];
    struct sy_mongo_msg m;
    size_t n = build_insert(buf, sizeof buf, 0, 1);
    bson_t empty = BSON_INITIALIZER;
    /* a second kind-0 section */
    uint8_t two[600];
    memcpy(two, buf, n);
    two[n] = 0;
    memcpy(two + n + 1, bson_get_data(&empty), empty.len);
    le32(two, (int32_t)(n + 1 + empty.len));
    CHECK(sy_mongo_msg_parse(two, n + 1 + empty.len, &m, err, sizeof err) != 0 && strstr(err, "kind 0") != NULL);
    /* an unknown section kind */
    memcpy(two, buf, n);
    two[n] = 2;
    le32(two, (int32_t)(n + 1));
    CHECK(sy_mongo_msg_parse(two, n + 1, &m, err, sizeof err) != 0 && strstr(err, "section kind") != NULL);
    /* a kind-1 size larger than the message, negative, and below 4 */
    size_t seq_at = 16 + 4 + 1 + (size_t)(buf[21] | buf[22] << 8) + 1;   /* body length is small */
    int32_t bad_sizes[] = { 100000, -5, 3, 0 };
    for (size_t i = 0; i < 4; i++) {
        memcpy(two, buf, n);
        le32(two + seq_at, bad_sizes[i]);
        CHECK(sy_mongo_msg_parse(two, n, &m, err, sizeof err) != 0);
    }
    /* no body at all: only a sequence */
    uint8_t only_seq[64] = { 0 };
    size_t o = 20;
    only_seq[o++] = 1;
    le32(only_seq + o, 4 + 2 + (int32_t)empty.len);
    o += 4;
    only_seq[o++] = 'x';
    only_seq[o++] = 0;
    memcpy(only_seq + o, bson_get_data(&empty), empty.len);
    o += empty.len;
    le32(only_seq, (int32_t)o);
    le32(only_seq + 12, SY_MONGO_OP_MSG);
    CHECK(sy_mongo_msg_parse(only_seq, o, &m, err, sizeof err) != 0 && strstr(err, "no kind 0") != NULL);
    /* messageLength disagreeing with the frame, and the wrong opcode */
    memcpy(two, buf, n);
    CHECK(sy_mongo_msg_parse(two, n - 1, &m, err, sizeof err) != 0);
    le32(two + 12, SY_MONGO_OP_QUERY);
    CHECK(sy_mongo_msg_parse(two, n, &m, err, sizeof err) != 0 && strstr(err, "opCode") != NULL);
    /* a body whose BSON is corrupt (an element type that does not exist) */
    memcpy(two, buf, n);
    two[21 + 4] = 0x77;
    CHECK(sy_mongo_msg_parse(two, n, &m, err, sizeof err) != 0 && strstr(err, "BSON") != NULL);
    bson_destroy(&empty);
}

/* {a: {a: {... depth levels ...}}} */
static bson_t *nested(int depth)
{
    bson_t *cur = bson_new();
    for (int i = 0; i < depth; i++) {
        bson_t *outer = bson_new();
        BSON_APPEND_DOCUMENT(outer, "a", cur);
        bson_destroy(cur);
        cur = outer;
    }
    return cur;
}

static void test_doc_depth(void)
{
    bson_t *ok = nested(SY_MONGO_MAX_DEPTH), *deep = nested(SY_MONGO_MAX_DEPTH + 1);
    CHECK(sy_mongo_doc_check(bson_get_data(ok), ok->len, "t", err, sizeof err) == 0);
    CHECK(sy_mongo_doc_check(bson_get_data(deep), deep->len, "t", err, sizeof err) != 0 &&
          strstr(err, "nested") != NULL);
    bson_destroy(ok);
    bson_destroy(deep);
    /* 1.6 MB of nesting (200000 levels): refused quickly, no stack overflow in us or in libbson.
     * Level i starts at 7 i: int32 length (8 per level inside + the empty innermost 5), 0x03, "a", 0. */
    size_t levels = 200000, len = levels * 8 + 5;
    uint8_t *p = calloc(1, len);
    for (size_t i = 0; i < levels; i++) {
        le32(p + i * 7, (int32_t)(len - i * 8));
        p[i * 7 + 4] = 3;
        p[i * 7 + 5] = 'a';
    }
    p[levels * 7] = 5;                                         /* {} ; every terminator is calloc's 0 */
    CHECK(sy_mongo_doc_check(p, len, "t", err, sizeof err) != 0 && strstr(err, "nested") != NULL);
    free(p);
    uint8_t small[] = { 5, 0, 0, 0, 0 };
    CHECK(sy_mongo_doc_check(small, 5, "t", err, sizeof err) == 0);
    small[4] = 1;
    CHECK(sy_mongo_doc_check(small, 5, "t", err, sizeof err) != 0);
    CHECK(sy_mongo_doc_check(small, 4, "t", err, sizeof err) != 0);
}

static void test_query_and_reply(void)
{
    /* an OP_QUERY isMaster on admin.$cmd, by hand */
    bson_t q = BSON_INITIALIZER;
    BSON_APPEND_INT32(&q, "isMaster", 1);
    uint8_t buf[256];
    size_t o = 16;
    le32(buf + o, SY_MONGO_QUERY_SECONDARY_OK);
    o += 4;
    memcpy(buf + o, "admin.$cmd", 11);
    o += 11;
    le32(buf + o, 0);
    le32(buf + o + 4, -1);
    o += 8;
    memcpy(buf + o, bson_get_data(&q), q.len);
    o += q.len;
    le32(buf, (int32_t)o);
    le32(buf + 4, 5);
    le32(buf + 8, 0);
    le32(buf + 12, SY_MONGO_OP_QUERY);
    struct sy_mongo_query qq;
    size_t dbl = 0;
    CHECK(sy_mongo_query_parse(buf, o, &qq, err, sizeof err) == 0);
    CHECK(qq.nreturn == -1 && qq.fields == NULL && qq.flags == SY_MONGO_QUERY_SECONDARY_OK);
    CHECK(sy_mongo_ns_is_cmd(qq.ns, qq.ns_len, &dbl) && dbl == 5);
    CHECK(sy_mongo_is_hello(sy_mongo_cmd_name(qq.query, qq.query_len)));
    CHECK(!sy_mongo_is_hello("find") && !sy_mongo_is_hello(NULL) && !sy_mongo_is_hello("HELLO"));
    CHECK(!sy_mongo_ns_is_cmd("$cmd", 4, &dbl) && !sy_mongo_ns_is_cmd("a.b", 3, &dbl));
    for (size_t cut = 16; cut < o; cut++) {
        le32(buf, (int32_t)cut);
        CHECK(sy_mongo_query_parse(buf, cut, &qq, err, sizeof err) != 0);
    }
    le32(buf, (int32_t)o);
    buf[20 + 5] = 'X';                                          /* "adminX$cmd": no '.' */
    CHECK(sy_mongo_query_parse(buf, o, &qq, err, sizeof err) != 0);

    /* OP_REPLY round trip */
    bson_t r = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&r, "ismaster", true);
    BSON_APPEND_DOUBLE(&r, "ok", 1.0);
    size_t n = 0;
    CHECK(sy_mongo_reply_build(buf, 10, &n, 9, 5, 0, 0, 0, bson_get_data(&r), r.len, 1) != 0 && n > 10);
    CHECK(sy_mongo_reply_build(buf, sizeof buf, &n, 9, 5, SY_MONGO_REPLY_AWAIT_CAPABLE, -2, 0, bson_get_data(&r),
                               r.len, 1) == 0);
    struct sy_mongo_reply rp;
    CHECK(sy_mongo_reply_parse(buf, n, &rp, err, sizeof err) == 0);
    CHECK(rp.hdr.response_to == 5 && rp.nreturned == 1 && rp.cursor_id == -2 && rp.docs_len == r.len);
    le32(buf + 32, 2);                                          /* numberReturned 2, one document */
    CHECK(sy_mongo_reply_parse(buf, n, &rp, err, sizeof err) != 0);
    le32(buf + 32, -1);
    CHECK(sy_mongo_reply_parse(buf, n, &rp, err, sizeof err) != 0);
    bson_destroy(&q);
    bson_destroy(&r);
}

static void test_compressed_and_error_doc(void)
{
    uint8_t buf[32] = { 0 };
    le32(buf, 25);
    le32(buf + 12, SY_MONGO_OP_COMPRESSED);
    le32(buf + 16, SY_MONGO_OP_MSG);
    le32(buf + 20, 100);
    buf[24] = 1;
    struct sy_mongo_compressed c;
    CHECK(sy_mongo_compressed_parse(buf, 25, &c, err, sizeof err) == 0);
    CHECK(c.original_op == SY_MONGO_OP_MSG && c.compressor == 1 && c.uncompressed_size == 100);
    le32(buf, 24);
    CHECK(sy_mongo_compressed_parse(buf, 24, &c, err, sizeof err) != 0);
    CHECK(strcmp(sy_mongo_op_name(SY_MONGO_OP_COMPRESSED), "OP_COMPRESSED") == 0);
    bson_t e;
    sy_mongo_error_doc(&e, 18, "AuthenticationFailed", "Authentication failed.");
    bson_iter_t it;
    CHECK(bson_iter_init_find(&it, &e, "code") && bson_iter_int32(&it) == 18);
    CHECK(bson_iter_init_find(&it, &e, "ok") && bson_iter_double(&it) == 0.0);
    bson_destroy(&e);
}

/* Frames recorded between pymongo and FerretDB: each must parse as what it is. */
static void test_captured_frames(void)
{
    for (size_t i = 0; i < SY_ARRAY_LEN(mongo_frames); i++) {
        const struct mongo_frame *f = &mongo_frames[i];
        struct sy_mongo_header h;
        size_t fl = 0;
        CHECK(sy_mongo_frame(f->data, f->len, SY_MONGO_MAX_MESSAGE, &h, &fl, err, sizeof err) == SY_PARSE_OK);
        CHECK(fl == f->len);
        if (h.op_code == SY_MONGO_OP_MSG) {
            struct sy_mongo_msg m;
            int rc = sy_mongo_msg_parse(f->data, f->len, &m, err, sizeof err);
            CHECK(rc == 0);
            if (rc != 0) {
                fprintf(stderr, "  frame %s: %s\n", f->name, err);
                continue;
            }
            const char *cmd = sy_mongo_cmd_name(m.body, m.body_len);
            CHECK(cmd != NULL);
            if (f->cmd[0] != '\0')
                CHECK(cmd != NULL && strcmp(cmd, f->cmd) == 0);
            CHECK(m.nseqs == f->nseqs);
            CHECK(m.checksum_present == (strstr(f->name, "checksum") != NULL));
        } else if (h.op_code == SY_MONGO_OP_QUERY) {
            struct sy_mongo_query q;
            CHECK(sy_mongo_query_parse(f->data, f->len, &q, err, sizeof err) == 0);
            CHECK(strcmp(sy_mongo_cmd_name(q.query, q.query_len), f->cmd) == 0);
        } else {
            struct sy_mongo_reply r;
            CHECK(h.op_code == SY_MONGO_OP_REPLY);
            CHECK(sy_mongo_reply_parse(f->data, f->len, &r, err, sizeof err) == 0 && r.nreturned == 1);
        }
    }
    CHECK(SY_ARRAY_LEN(mongo_frames) >= 5);
}

int main(void)
{
    test_crc32c_vectors();
    test_frame_limits();
    test_msg_roundtrip();
    test_msg_flags();
    test_msg_sections_malformed();
    test_doc_depth();
    test_query_and_reply();
    test_compressed_and_error_doc();
    test_captured_frames();
    return CHECK_DONE();
}
