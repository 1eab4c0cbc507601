/* MongoDB wire protocol: pure decoders and encoders over byte spans (no I/O, no globals).
 * Fed by unit tests and libFuzzer (fuzz/fuzz_mongo_frame.c, fuzz/fuzz_mongo_query.c).
 *
 * Every message starts with a 16-byte MsgHeader (int32 LE: messageLength, requestID, responseTo, opCode);
 * messageLength counts the header. Messages the proxy understands:
 *   OP_MSG (2013)        flagBits, sections (kind 0: one BSON body; kind 1: int32 size, cstring identifier,
 *                        BSON documents), optional CRC-32C of everything before it (checksumPresent)
 *   OP_QUERY (2004)      legacy: drivers before OP_MSG open with `isMaster` on `admin.$cmd`
 *   OP_REPLY (1)         the answer to an OP_QUERY
 *   OP_COMPRESSED (2012) recognized only, so the proxy can answer with a clear error (it never
 *                        advertises compression, so a correct client never sends one)
 * Decoded structs point into the caller's span: valid only while it is. Every BSON document is checked
 * with bson_init_static + bson_validate after a nesting-depth bound (libbson 1.23 validates recursively).
 * Decoders return 0, or -1 with a one-line reason in err (no wire bytes copied into it beyond names). */
#ifndef SY_MONGO_WIRE_H
#define SY_MONGO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "core/parse.h"

#define SY_MONGO_HDR_LEN 16
#define SY_MONGO_OP_REPLY 1
#define SY_MONGO_OP_UPDATE 2001
#define SY_MONGO_OP_INSERT 2002
#define SY_MONGO_OP_QUERY 2004
#define SY_MONGO_OP_GET_MORE 2005
#define SY_MONGO_OP_DELETE 2006
#define SY_MONGO_OP_KILL_CURSORS 2007
#define SY_MONGO_OP_COMPRESSED 2012
#define SY_MONGO_OP_MSG 2013

/* maxMessageSizeBytes as MongoDB (and FerretDB) announce it in hello; BSON documents max 16 MiB. */
#define SY_MONGO_MAX_MESSAGE 48000000u
#define SY_MONGO_MAX_BSON (16u * 1024 * 1024)
/* Deepest nesting accepted (MongoDB's BSONDepth default is 200 for commands). */
#define SY_MONGO_MAX_DEPTH 200

/* OP_MSG flagBits. Bits 0-15 are required: a receiver must reject a set bit it does not know. */
#define SY_MONGO_MSG_CHECKSUM 0x00000001u
#define SY_MONGO_MSG_MORE_TO_COME 0x00000002u
#define SY_MONGO_MSG_EXHAUST_ALLOWED 0x00010000u
#define SY_MONGO_MSG_REQUIRED_MASK 0x0000FFFFu
#define SY_MONGO_MSG_KNOWN_REQUIRED (SY_MONGO_MSG_CHECKSUM | SY_MONGO_MSG_MORE_TO_COME)

/* OP_QUERY flags (the ones the handshake cares about) and OP_REPLY responseFlags. */
#define SY_MONGO_QUERY_SECONDARY_OK 0x4u
#define SY_MONGO_REPLY_CURSOR_NOT_FOUND 0x1u
#define SY_MONGO_REPLY_QUERY_FAILURE 0x2u
#define SY_MONGO_REPLY_AWAIT_CAPABLE 0x8u

/* At most this many kind-1 sections in one OP_MSG (drivers send one: documents/updates/deletes). */
#define SY_MONGO_MAX_SEQS 4

struct sy_mongo_header {
    int32_t length;      /* messageLength, header included */
    int32_t request_id;  /* requestID */
    int32_t response_to; /* responseTo */
    int32_t op_code;     /* opCode */
};

/* One kind-1 section: its identifier and its documents, back to back. */
struct sy_mongo_seq {
    const char *id;       /* ref: into the frame; NUL-terminated there */
    size_t id_len;
    const uint8_t *docs;  /* ref: first document */
    size_t len;           /* bytes of documents (section size minus 4 and the identifier) */
    uint32_t ndocs;       /* documents counted (and validated) by the parser */
};

struct sy_mongo_msg {
    struct sy_mongo_header hdr;
    uint32_t flags;                               /* flagBits */
    const uint8_t *body;                          /* ref: the kind-0 document */
    size_t body_len;
    struct sy_mongo_seq seqs[SY_MONGO_MAX_SEQS];
    unsigned nseqs;
    bool checksum_present;
    uint32_t checksum;                            /* as sent (already verified by the parser) */
};

struct sy_mongo_query {
    struct sy_mongo_header hdr;
    uint32_t flags;
    const char *ns;          /* ref: fullCollectionName, e.g. "admin.$cmd" */
    size_t ns_len;
    int32_t skip, nreturn;
    const uint8_t *query;    /* ref: the query (or command) document */
    size_t query_len;
    const uint8_t *fields;   /* ref: returnFieldsSelector, NULL when absent */
    size_t fields_len;
};

struct sy_mongo_reply {
    struct sy_mongo_header hdr;
    uint32_t flags;          /* responseFlags */
    int64_t cursor_id;
    int32_t starting_from;
    int32_t nreturned;
    const uint8_t *docs;     /* ref: the documents, back to back (nreturned of them, each validated) */
    size_t docs_len;
};

struct sy_mongo_compressed {
    struct sy_mongo_header hdr;
    int32_t original_op;
    int32_t uncompressed_size;
    uint8_t compressor;      /* 0 noop, 1 snappy, 2 zlib, 3 zstd */
};

/* CRC-32C (Castagnoli, reflected 0x82F63B78): crc = sy_crc32c(0, p, n); chains: sy_crc32c(crc, more, m). */
uint32_t sy_crc32c(uint32_t crc, const void *p, size_t n);

const char *sy_mongo_op_name(int32_t op_code);

/* Frames one message at the start of p[0..n): OK with *frame_len (= messageLength) and *hdr, AGAIN for a
 * valid prefix, BAD when the length is below 16 or above max_len (checked before waiting for the bytes). */
enum sy_parse sy_mongo_frame(const uint8_t *p, size_t n, uint32_t max_len, struct sy_mongo_header *hdr,
                             size_t *frame_len, char *err, size_t errlen) SY_MUST_CHECK;

/* A BSON document spanning exactly p[0..n): length prefix, terminator, depth, bson_validate. */
int sy_mongo_doc_check(const uint8_t *p, size_t n, const char *what, char *err, size_t errlen) SY_MUST_CHECK;

/* Decoders of one whole frame (as sy_mongo_frame delimited it). */
int sy_mongo_msg_parse(const uint8_t *frame, size_t len, struct sy_mongo_msg *m, char *err,
                       size_t errlen) SY_MUST_CHECK;
int sy_mongo_query_parse(const uint8_t *frame, size_t len, struct sy_mongo_query *q, char *err,
                         size_t errlen) SY_MUST_CHECK;
int sy_mongo_reply_parse(const uint8_t *frame, size_t len, struct sy_mongo_reply *r, char *err,
                         size_t errlen) SY_MUST_CHECK;
int sy_mongo_compressed_parse(const uint8_t *frame, size_t len, struct sy_mongo_compressed *c, char *err,
                              size_t errlen) SY_MUST_CHECK;

/* Walks a kind-1 section: *off starts at 0; each call gives the next document (validated by the parser).
 * Returns false at the end. */
bool sy_mongo_seq_next(const struct sy_mongo_seq *s, size_t *off, const uint8_t **doc, size_t *doc_len);

/* The command name of a command document: its first key (NULL for an empty document). */
const char *sy_mongo_cmd_name(const uint8_t *doc, size_t len);
/* The handshake commands: hello, isMaster, ismaster (as mongod matches them). */
bool sy_mongo_is_hello(const char *cmd_name);
/* "db.$cmd" namespaces of OP_QUERY commands; *db_len = length of "db". */
bool sy_mongo_ns_is_cmd(const char *ns, size_t ns_len, size_t *db_len);

/* Encoders: write into out[0..cap) and set *out_len; -1 (with *out_len = the size needed) when it does not
 * fit or a length would pass SY_MONGO_MAX_MESSAGE. The body and documents are copied as given. */
int sy_mongo_msg_build(uint8_t *out, size_t cap, size_t *out_len, int32_t request_id, int32_t response_to,
                       uint32_t flags, const uint8_t *body, size_t body_len, const struct sy_mongo_seq *seqs,
                       unsigned nseqs) SY_MUST_CHECK;
int sy_mongo_reply_build(uint8_t *out, size_t cap, size_t *out_len, int32_t request_id, int32_t response_to,
                         uint32_t flags, int64_t cursor_id, int32_t starting_from, const uint8_t *docs,
                         size_t docs_len, int32_t ndocs) SY_MUST_CHECK;

/* {ok: 0.0, errmsg, code, codeName}: the error body a server sends (out is initialized here). */
void sy_mongo_error_doc(bson_t *out, int32_t code, const char *code_name, const char *errmsg);

#endif
