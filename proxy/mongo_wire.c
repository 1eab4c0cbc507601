/* MongoDB wire protocol codecs (see mongo_wire.h). Layouts from the MongoDB wire protocol reference:
 *   MsgHeader     int32 messageLength, int32 requestID, int32 responseTo, int32 opCode   (all LE)
 *   OP_MSG        uint32 flagBits, sections..., [uint32 CRC-32C of all bytes before it]
 *                 section kind 0: byte 0, document; kind 1: byte 1, int32 size (counts itself), cstring
 *                 identifier, documents filling the rest of size. Exactly one kind 0 section.
 *   OP_QUERY      int32 flags, cstring fullCollectionName, int32 numberToSkip, int32 numberToReturn,
 *                 document query, [document returnFieldsSelector]
 *   OP_REPLY      int32 responseFlags, int64 cursorID, int32 startingFrom, int32 numberReturned, documents
 *   OP_COMPRESSED int32 originalOpcode, int32 uncompressedSize, uint8 compressorId, bytes */
#include "proxy/mongo_wire.h"

#include <stdio.h>
#include <string.h>

#include "core/rd.h"

static const uint32_t crc32c_table[256] = {
    0x00000000u, 0xf26b8303u, 0xe13b70f7u, 0x1350f3f4u, 0xc79a971fu, 0x35f1141cu,
    0x26a1e7e8u, 0xd4ca64ebu, 0x8ad958cfu, 0x78b2dbccu, 0x6be22838u, 0x9989ab3bu,
    0x4d43cfd0u, 0xbf284cd3u, 0xac78bf27u, 0x5e133c24u, 0x105ec76fu, 0xe235446cu,
    0xf165b798u, 0x030e349bu, 0xd7c45070u, 0x25afd373u, 0x36ff2087u, 0xc494a384u,
    0x9a879fa0u, 0x68ec1ca3u, 0x7bbcef57u, 0x89d76c54u, 0x5d1d08bfu, 0xaf768bbcu,
    0xbc267848u, 0x4e4dfb4bu, 0x20bd8edeu, 0xd2d60dddu, 0xc186fe29u, 0x33ed7d2au,
    0xe72719c1u, 0x154c9ac2u, 0x061c6936u, 0xf477ea35u, 0xaa64d611u, 0x580f5512u,
    0x4b5fa6e6u, 0xb93425e5u, 0x6dfe410eu, 0x9f95c20du, 0x8cc531f9u, 0x7eaeb2fau,
    0x30e349b1u, 0xc288cab2u, 0xd1d83946u, 0x23b3ba45u, 0xf779deaeu, 0x05125dadu,
    0x1642ae59u, 0xe4292d5au, 0xba3a117eu, 0x4851927du, 0x5b016189u, 0xa96ae28au,
    0x7da08661u, 0x8fcb0562u, 0x9c9bf696u, 0x6ef07595u, 0x417b1dbcu, 0xb3109ebfu,
    0xa0406d4bu, 0x522bee48u, 0x86e18aa3u, 0x748a09a0u, 0x67dafa54u, 0x95b17957u,
    0xcba24573u, 0x39c9c670u, 0x2a993584u, 0xd8f2b687u, 0x0c38d26cu, 0xfe53516fu,
    0xed03a29bu, 0x1f682198u, 0x5125dad3u, 0xa34e59d0u, 0xb01eaa24u, 0x42752927u,
    0x96bf4dccu, 0x64d4cecfu, 0x77843d3bu, 0x85efbe38u, 0xdbfc821cu, 0x2997011fu,
    0x3ac7f2ebu, 0xc8ac71e8u, 0x1c661503u, 0xee0d9600u, 0xfd5d65f4u, 0x0f36e6f7u,
    0x61c69362u, 0x93ad1061u, 0x80fde395u, 0x72966096u, 0xa65c047du, 0x5437877eu,
    0x4767748au, 0xb50cf789u, 0xeb1fcbadu, 0x197448aeu, 0x0a24bb5au, 0xf84f3859u,
    0x2c855cb2u, 0xdeeedfb1u, 0xcdbe2c45u, 0x3fd5af46u, 0x7198540du, 0x83f3d70eu,
    0x90a324fau, 0x62c8a7f9u, 0xb602c312u, 0x44694011u, 0x5739b3e5u, 0xa55230e6u,
    0xfb410cc2u, 0x092a8fc1u, 0x1a7a7c35u, 0xe811ff36u, 0x3cdb9bddu, 0xceb018deu,
    0xdde0eb2au, 0x2f8b6829u, 0x82f63b78u, 0x709db87bu, 0x63cd4b8fu, 0x91a6c88cu,
    0x456cac67u, 0xb7072f64u, 0xa457dc90u, 0x563c5f93u, 0x082f63b7u, 0xfa44e0b4u,
    0xe9141340u, 0x1b7f9043u, 0xcfb5f4a8u, 0x3dde77abu, 0x2e8e845fu, 0xdce5075cu,
    0x92a8fc17u, 0x60c37f14u, 0x73938ce0u, 0x81f80fe3u, 0x55326b08u, 0xa759e80bu,
    0xb4091bffu, 0x466298fcu, 0x1871a4d8u, 0xea1a27dbu, 0xf94ad42fu, 0x0b21572cu,
    0xdfeb33c7u, 0x2d80b0c4u, 0x3ed04330u, 0xccbbc033u, 0xa24bb5a6u, 0x502036a5u,
    0x4370c551u, 0xb11b4652u, 0x65d122b9u, 0x97baa1bau, 0x84ea524eu, 0x7681d14du,
    0x2892ed69u, 0xdaf96e6au, 0xc9a99d9eu, 0x3bc21e9du, 0xef087a76u, 0x1d63f975u,
    0x0e330a81u, 0xfc588982u, 0xb21572c9u, 0x407ef1cau, 0x532e023eu, 0xa145813du,
    0x758fe5d6u, 0x87e466d5u, 0x94b49521u, 0x66df1622u, 0x38cc2a06u, 0xcaa7a905u,
    0xd9f75af1u, 0x2b9cd9f2u, 0xff56bd19u, 0x0d3d3e1au, 0x1e6dcdeeu, 0xec064eedu,
    0xc38d26c4u, 0x31e6a5c7u, 0x22b65633u, 0xd0ddd530u, 0x0417b1dbu, 0xf67c32d8u,
    0xe52cc12cu, 0x1747422fu, 0x49547e0bu, 0xbb3ffd08u, 0xa86f0efcu, 0x5a048dffu,
    0x8ecee914u, 0x7ca56a17u, 0x6ff599e3u, 0x9d9e1ae0u, 0xd3d3e1abu, 0x21b862a8u,
    0x32e8915cu, 0xc083125fu, 0x144976b4u, 0xe622f5b7u, 0xf5720643u, 0x07198540u,
    0x590ab964u, 0xab613a67u, 0xb831c993u, 0x4a5a4a90u, 0x9e902e7bu, 0x6cfbad78u,
    0x7fab5e8cu, 0x8dc0dd8fu, 0xe330a81au, 0x115b2b19u, 0x020bd8edu, 0xf0605beeu,
    0x24aa3f05u, 0xd6c1bc06u, 0xc5914ff2u, 0x37faccf1u, 0x69e9f0d5u, 0x9b8273d6u,
    0x88d28022u, 0x7ab90321u, 0xae7367cau, 0x5c18e4c9u, 0x4f48173du, 0xbd23943eu,
    0xf36e6f75u, 0x0105ec76u, 0x12551f82u, 0xe03e9c81u, 0x34f4f86au, 0xc69f7b69u,
    0xd5cf889du, 0x27a40b9eu, 0x79b737bau, 0x8bdcb4b9u, 0x988c474du, 0x6ae7c44eu,
    0xbe2da0a5u, 0x4c4623a6u, 0x5f16d052u, 0xad7d5351u,
};

uint32_t sy_crc32c(uint32_t crc, const void *p, size_t n)
{
    const uint8_t *b = p;
    crc = ~crc;
    while (n--)
        crc = crc32c_table[(crc ^ *b++) & 0xFFu] ^ (crc >> 8);
    return ~crc;
}

const char *sy_mongo_op_name(int32_t op_code)
{
    switch (op_code) {
    case SY_MONGO_OP_REPLY: return "OP_REPLY";
    case SY_MONGO_OP_UPDATE: return "OP_UPDATE";
    case SY_MONGO_OP_INSERT: return "OP_INSERT";
    case SY_MONGO_OP_QUERY: return "OP_QUERY";
    case SY_MONGO_OP_GET_MORE: return "OP_GET_MORE";
    case SY_MONGO_OP_DELETE: return "OP_DELETE";
    case SY_MONGO_OP_KILL_CURSORS: return "OP_KILL_CURSORS";
    case SY_MONGO_OP_COMPRESSED: return "OP_COMPRESSED";
    case SY_MONGO_OP_MSG: return "OP_MSG";
    default: return "unknown opcode";
    }
}

static int32_t rd_i32(struct sy_rd *r)
{
    return (int32_t)sy_rd_u32le(r);
}

static void header_read(struct sy_rd *r, struct sy_mongo_header *h)
{
    h->length = rd_i32(r);
    h->request_id = rd_i32(r);
    h->response_to = rd_i32(r);
    h->op_code = rd_i32(r);
}

enum sy_parse sy_mongo_frame(const uint8_t *p, size_t n, uint32_t max_len, struct sy_mongo_header *hdr,
                             size_t *frame_len, char *err, size_t errlen)
{
    if (n < 4)
        return SY_PARSE_AGAIN;
    int32_t len = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    if (len < SY_MONGO_HDR_LEN) {                 /* negative included */
        snprintf(err, errlen, "message length %d is below the 16-byte header", (int)len);
        return SY_PARSE_BAD;
    }
    if ((uint32_t)len > max_len) {                /* the claim, before waiting for (or allocating) it */
        snprintf(err, errlen, "message length %d exceeds maxMessageSizeBytes %u", (int)len, max_len);
        return SY_PARSE_BAD;
    }
    if (n < (size_t)len)
        return SY_PARSE_AGAIN;
    struct sy_rd r = sy_rd_make(p, SY_MONGO_HDR_LEN);
    header_read(&r, hdr);
    *frame_len = (size_t)len;
    return SY_PARSE_OK;
}

/* The deepest nesting of the document at p (already length-checked), walked with bson_iter and an
 * explicit stack so a hostile document cannot recurse us (or libbson) off the stack. Returns -1 when
 * the walk hits corruption (bson_validate then names it) or the depth passes the limit (*too_deep). */
static int doc_depth_ok(const bson_t *b, bool *too_deep)
{
    struct level { bson_iter_t it; } stack[SY_MONGO_MAX_DEPTH + 1];   /* bson_iter_t is over-aligned */
    int depth = 0;
    *too_deep = false;
    if (!bson_iter_init(&stack[0].it, b))
        return -1;
    for (;;) {
        bson_iter_t *it = &stack[depth].it;
        if (!bson_iter_next(it)) {
            if (it->err_off != 0)
                return -1;
            if (depth == 0)
                return 0;
            depth--;
            continue;
        }
        bson_type_t t = bson_iter_type(it);
        if (t != BSON_TYPE_DOCUMENT && t != BSON_TYPE_ARRAY && t != BSON_TYPE_CODEWSCOPE)
            continue;
        if (depth + 1 > SY_MONGO_MAX_DEPTH) {
            *too_deep = true;
            return -1;
        }
        if (t == BSON_TYPE_CODEWSCOPE) {          /* its scope is a document bson_validate walks too */
            uint32_t code_len = 0, scope_len = 0;
            const uint8_t *scope = NULL;
            bson_t sb;
            bson_iter_codewscope(it, &code_len, &scope_len, &scope);
            if (scope == NULL || !bson_init_static(&sb, scope, scope_len) ||
                !bson_iter_init(&stack[depth + 1].it, &sb))
                return -1;                        /* the iterator only keeps scope's bytes, not sb */
        } else if (!bson_iter_recurse(it, &stack[depth + 1].it)) {
            return -1;
        }
        depth++;
    }
}

int sy_mongo_doc_check(const uint8_t *p, size_t n, const char *what, char *err, size_t errlen)
{
    bson_t b;
    size_t off = 0;
    bool too_deep = false;
    if (n < 5 || n > SY_MONGO_MAX_BSON) {
        snprintf(err, errlen, "%s: document length %zu out of range (5..%u)", what, n, SY_MONGO_MAX_BSON);
        return -1;
    }
    if (!bson_init_static(&b, p, n)) {
        snprintf(err, errlen, "%s: malformed document (length prefix or terminator)", what);
        return -1;
    }
    if (doc_depth_ok(&b, &too_deep) != 0 && too_deep) {
        snprintf(err, errlen, "%s: document nested deeper than %d levels", what, SY_MONGO_MAX_DEPTH);
        return -1;
    }
    if (!bson_validate(&b, BSON_VALIDATE_NONE, &off)) {
        snprintf(err, errlen, "%s: invalid BSON at offset %zu", what, off);
        return -1;
    }
    return 0;
}

/* One document at the cursor: its int32 length must fit what is left. */
static int rd_doc(struct sy_rd *r, const uint8_t **doc, size_t *doc_len, const char *what, char *err,
                  size_t errlen)
{
    size_t left = sy_rd_left(r);
    if (left < 5) {
        snprintf(err, errlen, "%s: %zu bytes left, a document needs at least 5", what, left);
        return -1;
    }
    const uint8_t *p = r->p + r->off;
    int32_t len = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    if (len < 5 || (size_t)len > left) {
        snprintf(err, errlen, "%s: document length %d does not fit the %zu bytes left", what, (int)len, left);
        return -1;
    }
    if (sy_mongo_doc_check(p, (size_t)len, what, err, errlen) != 0)
        return -1;
    *doc = sy_rd_take(r, (size_t)len);
    *doc_len = (size_t)len;
    return 0;
}

static int check_op(const struct sy_mongo_header *h, size_t len, int32_t want, char *err, size_t errlen)
{
    if (len < SY_MONGO_HDR_LEN || h->length < 0 || (size_t)h->length != len) {
        snprintf(err, errlen, "frame of %zu bytes does not match its messageLength %d", len, (int)h->length);
        return -1;
    }
    if (h->op_code != want) {
        snprintf(err, errlen, "opCode %d is not %s", (int)h->op_code, sy_mongo_op_name(want));
        return -1;
    }
    return 0;
}

/* Starts decoding a whole frame: header read into *h, opcode `want`, messageLength == len. */
static int frame_open(struct sy_rd *r, const uint8_t *frame, size_t len, int32_t want, struct sy_mongo_header *h,
                      char *err, size_t errlen)
{
    *r = sy_rd_make(frame, len);
    header_read(r, h);
    if (r->bad) {
        snprintf(err, errlen, "%s: %zu bytes, shorter than the header", sy_mongo_op_name(want), len);
        return -1;
    }
    return check_op(h, len, want, err, errlen);
}

int sy_mongo_msg_parse(const uint8_t *frame, size_t len, struct sy_mongo_msg *m, char *err, size_t errlen)
{
    struct sy_rd r;
    memset(m, 0, sizeof *m);
    if (frame_open(&r, frame, len, SY_MONGO_OP_MSG, &m->hdr, err, errlen) != 0)
        return -1;
    m->flags = sy_rd_u32le(&r);
    if (r.bad) {
        snprintf(err, errlen, "OP_MSG: no flagBits");
        return -1;
    }
    uint32_t unknown = m->flags & SY_MONGO_MSG_REQUIRED_MASK & ~SY_MONGO_MSG_KNOWN_REQUIRED;
    if (unknown != 0) {
        snprintf(err, errlen, "OP_MSG: unknown required flag bits 0x%x", unknown);
        return -1;
    }
    size_t end = len;
    if (m->flags & SY_MONGO_MSG_CHECKSUM) {
        if (len < SY_MONGO_HDR_LEN + 4 + 4) {
            snprintf(err, errlen, "OP_MSG: checksumPresent but no room for the checksum");
            return -1;
        }
        end = len - 4;
        const uint8_t *c = frame + end;
        m->checksum = (uint32_t)c[0] | (uint32_t)c[1] << 8 | (uint32_t)c[2] << 16 | (uint32_t)c[3] << 24;
        m->checksum_present = true;
        uint32_t want = sy_crc32c(0, frame, end);
        if (want != m->checksum) {
            snprintf(err, errlen, "OP_MSG: checksum 0x%08x does not match the content (CRC-32C 0x%08x)",
                     m->checksum, want);
            return -1;
        }
    }
    r.len = end;
    bool have_body = false;
    while (!r.bad && sy_rd_left(&r) > 0) {
        uint8_t kind = sy_rd_u8(&r);
        if (kind == 0) {
            if (have_body) {
                snprintf(err, errlen, "OP_MSG: more than one kind 0 section");
                return -1;
            }
            if (rd_doc(&r, &m->body, &m->body_len, "OP_MSG body", err, errlen) != 0)
                return -1;
            have_body = true;
        } else if (kind == 1) {
            size_t at = r.off;
            int32_t size = rd_i32(&r);
            if (r.bad || size < 4 || (size_t)size - 4 > sy_rd_left(&r)) {
                snprintf(err, errlen, "OP_MSG: document sequence size %d does not fit the message", (int)size);
                return -1;
            }
            if (m->nseqs == SY_MONGO_MAX_SEQS) {
                snprintf(err, errlen, "OP_MSG: more than %d document sequences", SY_MONGO_MAX_SEQS);
                return -1;
            }
            struct sy_rd s = sy_rd_make(frame, at + (size_t)size);
            s.off = r.off;
            struct sy_mongo_seq *q = &m->seqs[m->nseqs];
            q->id = sy_rd_cstr(&s, &q->id_len);
            if (s.bad || q->id_len == 0) {
                snprintf(err, errlen, "OP_MSG: document sequence without an identifier");
                return -1;
            }
            q->docs = s.p + s.off;
            q->len = sy_rd_left(&s);
            while (sy_rd_left(&s) > 0) {
                const uint8_t *d;
                size_t dl;
                if (rd_doc(&s, &d, &dl, "OP_MSG document sequence", err, errlen) != 0)
                    return -1;
                q->ndocs++;
            }
            for (unsigned i = 0; i < m->nseqs; i++) {
                if (m->seqs[i].id_len == q->id_len && memcmp(m->seqs[i].id, q->id, q->id_len) == 0) {
                    snprintf(err, errlen, "OP_MSG: two document sequences named %.64s", q->id);
                    return -1;
                }
            }
            m->nseqs++;
            r.off = at + (size_t)size;
        } else {
            snprintf(err, errlen, "OP_MSG: unknown section kind %u", kind);
            return -1;
        }
    }
    if (!have_body) {
        snprintf(err, errlen, "OP_MSG: no kind 0 section (body)");
        return -1;
    }
    return 0;
}

bool sy_mongo_seq_next(const struct sy_mongo_seq *s, size_t *off, const uint8_t **doc, size_t *doc_len)
{
    if (*off + 4 > s->len)
        return false;
    const uint8_t *p = s->docs + *off;
    uint32_t len = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    if (len < 5 || len > s->len - *off)           /* the parser validated it; guard anyway */
        return false;
    *doc = p;
    *doc_len = len;
    *off += len;
    return true;
}

int sy_mongo_query_parse(const uint8_t *frame, size_t len, struct sy_mongo_query *q, char *err, size_t errlen)
{
    struct sy_rd r;
    memset(q, 0, sizeof *q);
    if (frame_open(&r, frame, len, SY_MONGO_OP_QUERY, &q->hdr, err, errlen) != 0)
        return -1;
    q->flags = sy_rd_u32le(&r);
    q->ns = sy_rd_cstr(&r, &q->ns_len);
    q->skip = rd_i32(&r);
    q->nreturn = rd_i32(&r);
    if (r.bad) {
        snprintf(err, errlen, "OP_QUERY: truncated before the query document");
        return -1;
    }
    if (q->ns_len == 0 || memchr(q->ns, '.', q->ns_len) == NULL) {
        snprintf(err, errlen, "OP_QUERY: fullCollectionName is not db.collection");
        return -1;
    }
    if (rd_doc(&r, &q->query, &q->query_len, "OP_QUERY query", err, errlen) != 0)
        return -1;
    if (sy_rd_left(&r) > 0) {
        if (rd_doc(&r, &q->fields, &q->fields_len, "OP_QUERY returnFieldsSelector", err, errlen) != 0)
            return -1;
        if (sy_rd_left(&r) > 0) {
            snprintf(err, errlen, "OP_QUERY: %zu bytes after returnFieldsSelector", sy_rd_left(&r));
            return -1;
        }
    }
    return 0;
}

int sy_mongo_reply_parse(const uint8_t *frame, size_t len, struct sy_mongo_reply *rp, char *err, size_t errlen)
{
    struct sy_rd r;
    memset(rp, 0, sizeof *rp);
    if (frame_open(&r, frame, len, SY_MONGO_OP_REPLY, &rp->hdr, err, errlen) != 0)
        return -1;
    rp->flags = sy_rd_u32le(&r);
    rp->cursor_id = (int64_t)sy_rd_uNle(&r, 8);
    rp->starting_from = rd_i32(&r);
    rp->nreturned = rd_i32(&r);
    if (r.bad) {
        snprintf(err, errlen, "OP_REPLY: truncated fixed fields");
        return -1;
    }
    if (rp->nreturned < 0) {
        snprintf(err, errlen, "OP_REPLY: numberReturned %d is negative", (int)rp->nreturned);
        return -1;
    }
    rp->docs = r.p + r.off;
    rp->docs_len = sy_rd_left(&r);
    int32_t n = 0;
    while (sy_rd_left(&r) > 0) {
        const uint8_t *d;
        size_t dl;
        if (rd_doc(&r, &d, &dl, "OP_REPLY document", err, errlen) != 0)
            return -1;
        n++;
    }
    if (n != rp->nreturned) {
        snprintf(err, errlen, "OP_REPLY: numberReturned %d but %d documents", (int)rp->nreturned, (int)n);
        return -1;
    }
    return 0;
}

int sy_mongo_compressed_parse(const uint8_t *frame, size_t len, struct sy_mongo_compressed *c, char *err,
                              size_t errlen)
{
    struct sy_rd r;
    memset(c, 0, sizeof *c);
    if (frame_open(&r, frame, len, SY_MONGO_OP_COMPRESSED, &c->hdr, err, errlen) != 0)
        return -1;
    c->original_op = rd_i32(&r);
    c->uncompressed_size = rd_i32(&r);
    c->compressor = sy_rd_u8(&r);
    if (r.bad) {
        snprintf(err, errlen, "OP_COMPRESSED: truncated fixed fields");
        return -1;
    }
    return 0;
}

const char *sy_mongo_cmd_name(const uint8_t *doc, size_t len)
{
    bson_t b;
    bson_iter_t it;
    if (!bson_init_static(&b, doc, len) || !bson_iter_init(&it, &b) || !bson_iter_next(&it))
        return NULL;
    return bson_iter_key(&it);
}

bool sy_mongo_is_hello(const char *cmd_name)
{
    return cmd_name != NULL && (strcmp(cmd_name, "hello") == 0 || strcmp(cmd_name, "isMaster") == 0 ||
                                strcmp(cmd_name, "ismaster") == 0);
}

bool sy_mongo_ns_is_cmd(const char *ns, size_t ns_len, size_t *db_len)
{
    static const char suffix[] = ".$cmd";
    size_t sl = sizeof suffix - 1;
    if (ns_len <= sl || memcmp(ns + ns_len - sl, suffix, sl) != 0)
        return false;
    *db_len = ns_len - sl;
    return true;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void put_header(uint8_t *p, size_t len, int32_t request_id, int32_t response_to, int32_t op)
{
    put32(p, (uint32_t)len);
    put32(p + 4, (uint32_t)request_id);
    put32(p + 8, (uint32_t)response_to);
    put32(p + 12, (uint32_t)op);
}

int sy_mongo_msg_build(uint8_t *out, size_t cap, size_t *out_len, int32_t request_id, int32_t response_to,
                       uint32_t flags, const uint8_t *body, size_t body_len, const struct sy_mongo_seq *seqs,
                       unsigned nseqs)
{
    size_t need = SY_MONGO_HDR_LEN + 4 + 1 + body_len;
    for (unsigned i = 0; i < nseqs; i++) {
        if (seqs[i].len > SY_MONGO_MAX_MESSAGE || seqs[i].id_len > SY_MONGO_MAX_MESSAGE) {
            *out_len = SIZE_MAX;
            return -1;
        }
        need += 1 + 4 + seqs[i].id_len + 1 + seqs[i].len;
    }
    if (flags & SY_MONGO_MSG_CHECKSUM)
        need += 4;
    *out_len = need;
    if (body_len > SY_MONGO_MAX_MESSAGE || need > SY_MONGO_MAX_MESSAGE || need > cap)
        return -1;
    uint8_t *p = out;
    put_header(p, need, request_id, response_to, SY_MONGO_OP_MSG);
    p += SY_MONGO_HDR_LEN;
    put32(p, flags);
    p += 4;
    *p++ = 0;
    memcpy(p, body, body_len);
    p += body_len;
    for (unsigned i = 0; i < nseqs; i++) {
        *p++ = 1;
        put32(p, (uint32_t)(4 + seqs[i].id_len + 1 + seqs[i].len));
        p += 4;
        memcpy(p, seqs[i].id, seqs[i].id_len);
        p += seqs[i].id_len;
        *p++ = 0;
        if (seqs[i].len > 0)
            memcpy(p, seqs[i].docs, seqs[i].len);
        p += seqs[i].len;
    }
    if (flags & SY_MONGO_MSG_CHECKSUM) {
        put32(p, sy_crc32c(0, out, (size_t)(p - out)));
        p += 4;
    }
    return 0;
}

int sy_mongo_reply_build(uint8_t *out, size_t cap, size_t *out_len, int32_t request_id, int32_t response_to,
                         uint32_t flags, int64_t cursor_id, int32_t starting_from, const uint8_t *docs,
                         size_t docs_len, int32_t ndocs)
{
    size_t need = SY_MONGO_HDR_LEN + 4 + 8 + 4 + 4 + docs_len;
    *out_len = need;
    if (docs_len > SY_MONGO_MAX_MESSAGE || need > SY_MONGO_MAX_MESSAGE || need > cap)
        return -1;
    uint8_t *p = out;
    put_header(p, need, request_id, response_to, SY_MONGO_OP_REPLY);
    p += SY_MONGO_HDR_LEN;
    put32(p, flags);
    put32(p + 4, (uint32_t)((uint64_t)cursor_id & 0xFFFFFFFFu));
    put32(p + 8, (uint32_t)((uint64_t)cursor_id >> 32));
    put32(p + 12, (uint32_t)starting_from);
    put32(p + 16, (uint32_t)ndocs);
    p += 20;
    if (docs_len > 0)
        memcpy(p, docs, docs_len);
    return 0;
}

void sy_mongo_error_doc(bson_t *out, int32_t code, const char *code_name, const char *errmsg)
{
    bson_init(out);
    BSON_APPEND_DOUBLE(out, "ok", 0.0);
    BSON_APPEND_UTF8(out, "errmsg", errmsg);
    BSON_APPEND_INT32(out, "code", code);
    if (code_name != NULL)
        BSON_APPEND_UTF8(out, "codeName", code_name);
}
