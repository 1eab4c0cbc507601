/* TDS (SQL Server's protocol, MS-TDS 7.x): pure decoders and encoders over byte spans (no I/O, no globals).
 * Fed by the unit tests and libFuzzer (fuzz/fuzz_tds_*.c); the session code is proxy/tds_session.c.
 *
 * Every message travels as packets with an 8-byte header (type, status, BE length including the header, BE
 * spid, packet id, window); the packet with status EOM ends the message. The proxy reads:
 *   PRELOGIN (0x12)  option table (token, BE offset, BE length) up to 0xFF, then the option data
 *   LOGIN7 (0x10)    94-byte fixed part with an offsets/lengths table into UTF-16LE strings; the password
 *                    obfuscated (each byte nibble-swapped then XORed with 0xA5); optional FeatureExt block
 *   TABULAR (0x04)   the server's token stream: only enough of it is scanned to read a login's outcome
 *                    (LOGINACK, ERROR/INFO, ENVCHANGE, DONE, FEATUREEXTACK) and a message's last DONE
 * Decoded structs point into the caller's span: valid only while it is. No length read from the wire is
 * trusted: each is checked against the span before use; whole-payload decoders answer OK or BAD (with a
 * one-line reason in err), framing answers AGAIN for a valid prefix. */
#ifndef SY_TDS_WIRE_H
#define SY_TDS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parse.h"

#define SY_TDS_HDR_LEN 8
#define SY_TDS_MAX_PACKET 32767u       /* the largest packet size a server negotiates (header included) */
#define SY_TDS_MIN_PACKET 512u
#define SY_TDS_LOGIN_PACKET 4096u      /* packet size until the login's ENVCHANGE says otherwise */

/* Packet types (MS-TDS 2.2.3.1.1) */
#define SY_TDS_SQL_BATCH 0x01
#define SY_TDS_RPC 0x03
#define SY_TDS_TABULAR 0x04
#define SY_TDS_ATTENTION 0x06
#define SY_TDS_BULK_LOAD 0x07
#define SY_TDS_FEDAUTH_TOKEN 0x08
#define SY_TDS_TRANSACTION_MANAGER 0x0E
#define SY_TDS_LOGIN7 0x10
#define SY_TDS_SSPI 0x11
#define SY_TDS_PRELOGIN 0x12
#define SY_TDS_SMP 0x53                /* first byte of a MARS (SMP) header: not a TDS packet type */

/* Packet status bits */
#define SY_TDS_STATUS_EOM 0x01
#define SY_TDS_STATUS_IGNORE 0x02
#define SY_TDS_STATUS_RESETCONNECTION 0x08
#define SY_TDS_STATUS_RESETCONNECTIONSKIPTRAN 0x10

/* PRELOGIN option tokens and ENCRYPTION values */
#define SY_TDS_PL_VERSION 0x00
#define SY_TDS_PL_ENCRYPTION 0x01
#define SY_TDS_PL_INSTOPT 0x02
#define SY_TDS_PL_THREADID 0x03
#define SY_TDS_PL_MARS 0x04
#define SY_TDS_PL_TRACEID 0x05
#define SY_TDS_PL_FEDAUTHREQUIRED 0x06
#define SY_TDS_PL_NONCEOPT 0x07
#define SY_TDS_PL_TERMINATOR 0xFF
#define SY_TDS_ENCRYPT_OFF 0x00
#define SY_TDS_ENCRYPT_ON 0x01
#define SY_TDS_ENCRYPT_NOT_SUP 0x02
#define SY_TDS_ENCRYPT_REQ 0x03

/* Tokens of the server's stream the scan reads */
#define SY_TDS_TOK_RETURNSTATUS 0x79
#define SY_TDS_TOK_ORDER 0xA9
#define SY_TDS_TOK_ERROR 0xAA
#define SY_TDS_TOK_INFO 0xAB
#define SY_TDS_TOK_LOGINACK 0xAD
#define SY_TDS_TOK_FEATUREEXTACK 0xAE
#define SY_TDS_TOK_ENVCHANGE 0xE3
#define SY_TDS_TOK_SSPI 0xED
#define SY_TDS_TOK_FEDAUTHINFO 0xEE
#define SY_TDS_TOK_DONE 0xFD
#define SY_TDS_TOK_DONEPROC 0xFE
#define SY_TDS_TOK_DONEINPROC 0xFF
#define SY_TDS_DONE_LEN 13             /* token + status u16 + curcmd u16 + rowcount u64 (TDS 7.2+) */
#define SY_TDS_DONE_ERROR 0x0002
#define SY_TDS_DONE_ATTN 0x0020

/* ENVCHANGE types the proxy reads */
#define SY_TDS_ENV_DATABASE 1
#define SY_TDS_ENV_LANGUAGE 2
#define SY_TDS_ENV_PACKETSIZE 4
#define SY_TDS_ENV_COLLATION 7
#define SY_TDS_ENV_BEGIN_TRAN 8
#define SY_TDS_ENV_COMMIT_TRAN 9
#define SY_TDS_ENV_ROLLBACK_TRAN 10
#define SY_TDS_ENV_RESET_ACK 18

/* LOGIN7 */
#define SY_TDS_LOGIN7_FIXED 94          /* fixed part of TDS 7.2+ (7.0/7.1: 86, without the last two fields) */
#define SY_TDS_LOGIN7_MAX (128u << 10)  /* bytes of a LOGIN7 message the proxy accepts */
#define SY_TDS_LOGIN7_MAX_CHARS 260     /* longest string field (attach-db file name; names are 128) */
#define SY_TDS_LOGIN7_FLAG2_INTSECURITY 0x80 /* OptionFlags2: integrated (SSPI) authentication */
#define SY_TDS_LOGIN7_FLAG3_EXTENSION 0x10   /* OptionFlags3: ibExtension points at FeatureExt */
#define SY_TDS_FEATURE_FEDAUTH 0x02
#define SY_TDS_FEATURE_TERMINATOR 0xFF

struct sy_tds_hdr {
    uint8_t type;       /* SY_TDS_SQL_BATCH ... */
    uint8_t status;     /* SY_TDS_STATUS_* bits */
    uint16_t length;    /* the packet's bytes, header included: SY_TDS_HDR_LEN..limit */
    uint16_t spid;      /* server process id (the server's; clients send 0) */
    uint8_t packet_id;  /* 1, 2, ... per message, wrapping at 255 */
    uint8_t window;     /* unused, 0 */
};

/* One packet's header. AGAIN below 8 bytes; BAD for a length below the header or above max_len (the
 * claim is checked before any of its bytes are waited for). The packet is whole when n >= h->length. */
enum sy_parse sy_tds_hdr_parse(const uint8_t *p, size_t n, size_t max_len, struct sy_tds_hdr *h, char *err,
                               size_t errlen) SY_MUST_CHECK;
/* Writes an 8-byte header at p. */
void sy_tds_hdr_put(uint8_t *p, const struct sy_tds_hdr *h);

/* A message spread over packets, as seen from its first packet on. */
struct sy_tds_msg {
    uint8_t type;         /* of the first packet; every later packet must have it */
    uint8_t status;       /* of the first packet (RESETCONNECTION bits live there) */
    size_t wire_len;      /* bytes of all its packets, headers included */
    size_t payload_len;   /* bytes without the headers: <= max_payload */
    uint32_t packets;     /* how many */
};

/* Reassembly: walks the packets at p up to the one with EOM. OK when that packet is whole (m filled),
 * AGAIN before, BAD on a bad length, a type change, an empty packet before the last (the wire is then at
 * most 9 bytes per payload byte), or a payload above max_payload (checked as each header arrives). An
 * ATTENTION packet is always a message of its own. */
enum sy_parse sy_tds_msg_frame(const uint8_t *p, size_t n, size_t max_packet, size_t max_payload,
                               struct sy_tds_msg *m, char *err, size_t errlen) SY_MUST_CHECK;
/* Copies the payloads of the message framed at p (m from sy_tds_msg_frame) to out (m->payload_len bytes). */
void sy_tds_msg_payload(const uint8_t *p, const struct sy_tds_msg *m, uint8_t *out);
/* Packs payload into packets of at most packet_size bytes (EOM on the last, ids from 1) at out.
 * Returns the bytes written, 0 when out is too small. */
size_t sy_tds_msg_build(uint8_t *out, size_t cap, uint8_t type, uint16_t spid, size_t packet_size,
                        const uint8_t *payload, size_t len);

/* ---- PRELOGIN ---------------------------------------------------------------------------------------- */

struct sy_tds_prelogin {
    bool has_version;        /* VERSION present (version valid) */
    uint8_t version[6];      /* major, minor, build (BE u16), sub-build (BE u16) */
    int encryption;          /* SY_TDS_ENCRYPT_* (the low nibble; 0x80 = client certificate), -1 absent */
    const uint8_t *instopt;  /* instance name (NUL-terminated on the wire), NULL absent */
    size_t instopt_len;
    bool has_threadid;       /* THREADID with 4 bytes (clients may send it empty) */
    uint32_t threadid;
    int mars;                /* 0/1, -1 absent */
    bool has_traceid;        /* 36 bytes: connection id (16) + activity id (16) + sequence (4) */
    int fedauth_required;    /* -1 absent */
    unsigned n_options;      /* options before the terminator (every token, known or not) */
};

/* A whole PRELOGIN payload: option table entries must lie inside the payload, known options have their
 * sizes (VERSION 6, ENCRYPTION 1, THREADID 0 or 4, MARS 1, TRACEID 36, FEDAUTHREQUIRED 1). */
enum sy_parse sy_tds_prelogin_parse(const uint8_t *p, size_t n, struct sy_tds_prelogin *pl, char *err,
                                    size_t errlen) SY_MUST_CHECK;

struct sy_tds_prelogin_opt {
    uint8_t token;         /* SY_TDS_PL_* */
    const uint8_t *data;   /* ref: len bytes (NULL when len is 0) */
    uint16_t len;
};
/* The option table + data for opts (terminator added). Returns bytes written, 0 when it does not fit. */
size_t sy_tds_prelogin_build(uint8_t *out, size_t cap, const struct sy_tds_prelogin_opt *opts, size_t n);

/* ---- LOGIN7 ------------------------------------------------------------------------------------------ */

/* A span of the LOGIN7 payload: UTF-16LE characters (cch) or bytes (SSPI, extension). */
struct sy_tds_span {
    const uint8_t *p;   /* NULL when empty */
    size_t len;         /* bytes */
};

/* Indexes of the offset/length table's string fields. */
enum sy_tds_login7_field {
    SY_L7_HOSTNAME,
    SY_L7_USERNAME,
    SY_L7_PASSWORD,      /* obfuscated on the wire */
    SY_L7_APPNAME,
    SY_L7_SERVERNAME,
    SY_L7_LIBRARY,       /* ibCltIntName */
    SY_L7_LANGUAGE,
    SY_L7_DATABASE,
    SY_L7_ATTACHDB,
    SY_L7_CHANGEPASSWORD,/* obfuscated on the wire */
    SY_L7__COUNT
};

struct sy_tds_login7 {
    uint32_t length;          /* the LOGIN7 structure's own length field (<= the payload) */
    uint32_t tds_version;     /* 0x74000004 = 7.4 (sent little-endian in LOGIN7) */
    uint32_t packet_size;     /* what the client asks for (0: the server's default) */
    uint32_t client_prog_ver; /* the client library's version, carried as is */
    uint32_t client_pid;      /* the client's process id, carried as is */
    uint32_t connection_id;   /* 0 for a new connection */
    uint8_t flags1, flags2, type_flags, flags3; /* OptionFlags1..3, TypeFlags: SY_TDS_LOGIN7_FLAG* */
    int32_t client_timezone;  /* minutes from UTC, carried as is */
    uint32_t client_lcid;     /* the client's locale (collation), carried as is */
    uint8_t client_id[6];     /* the client's MAC address */
    struct sy_tds_span str[SY_L7__COUNT];  /* UTF-16LE, in the payload */
    struct sy_tds_span sspi;               /* integrated authentication blob (bytes) */
    struct sy_tds_span feature_ext;        /* FeatureExt block incl. its 0xFF terminator (fExtension) */
};

/* A whole LOGIN7 payload. BAD when a field lies outside the structure, a string is longer than
 * SY_TDS_LOGIN7_MAX_CHARS or the FeatureExt list runs past the payload. */
enum sy_parse sy_tds_login7_parse(const uint8_t *p, size_t n, struct sy_tds_login7 *l, char *err,
                                  size_t errlen) SY_MUST_CHECK;

/* Password (de)obfuscation over n bytes of UTF-16LE: decode = XOR 0xA5 then swap nibbles; encode is the
 * reverse (what the client does). in and out may be the same buffer. */
void sy_tds_password_decode(const uint8_t *in, size_t n, uint8_t *out);
void sy_tds_password_encode(const uint8_t *in, size_t n, uint8_t *out);

/* A LOGIN7 payload from l's fixed fields and strings, except the password, taken from `password`
 * (plain UTF-16LE, obfuscated here) and the change-password field, always empty. The FeatureExt block
 * is copied when l has one. Returns bytes written, 0 when it does not fit in cap. */
size_t sy_tds_login7_build(uint8_t *out, size_t cap, const struct sy_tds_login7 *l, const uint8_t *password,
                           size_t password_len);

/* UTF-16LE -> UTF-8 into out (NUL-terminated, truncated to fit at a character boundary; an unpaired
 * surrogate becomes U+FFFD). Returns the bytes written without the NUL. */
size_t sy_tds_utf16_to_utf8(const uint8_t *p, size_t n, char *out, size_t cap);

/* ---- the server's token stream --------------------------------------------------------------------- */

struct sy_tds_token {
    uint8_t type;          /* SY_TDS_TOK_* */
    const uint8_t *body;   /* after the token byte and its length field */
    size_t len;            /* body bytes */
};

/* The next token at p (bounded: the scan stops at tokens other than the ones above: BAD with the token
 * named in err). AGAIN when the token is cut by the end of the span. *used = bytes of the whole token. */
enum sy_parse sy_tds_token_next(const uint8_t *p, size_t n, struct sy_tds_token *t, size_t *used, char *err,
                                size_t errlen) SY_MUST_CHECK;

struct sy_tds_error {
    int32_t number;        /* 18456, 208, ... */
    uint8_t state;
    uint8_t klass;         /* severity */
    char message[512];     /* UTF-8, truncated */
    char server[130];      /* the server's name (UTF-8) */
    char proc[130];        /* the procedure's, "" for a batch */
    int32_t line;          /* in the batch or procedure */
};
/* ERROR and INFO tokens (same layout). */
enum sy_parse sy_tds_error_parse(const struct sy_tds_token *t, struct sy_tds_error *e) SY_MUST_CHECK;

struct sy_tds_loginack {
    uint8_t interface;       /* 1 = SQL */
    uint32_t tds_version;    /* as sent (big-endian in LOGINACK): 0x74000004 */
    char prog_name[130];     /* "Microsoft SQL Server" (UTF-8) */
    uint8_t prog_version[4]; /* major, minor, build high, build low */
};
enum sy_parse sy_tds_loginack_parse(const struct sy_tds_token *t, struct sy_tds_loginack *a) SY_MUST_CHECK;

struct sy_tds_envchange {
    uint8_t type;                /* SY_TDS_ENV_* */
    struct sy_tds_span new_value;/* B_VARCHAR (UTF-16LE) or B_VARBYTE, by type */
    struct sy_tds_span old_value;
};
enum sy_parse sy_tds_envchange_parse(const struct sy_tds_token *t, struct sy_tds_envchange *e) SY_MUST_CHECK;

struct sy_tds_done {
    uint16_t status;       /* SY_TDS_DONE_* bits (MORE 0x1, ERROR 0x2, INXACT 0x4, COUNT 0x10, ATTN 0x20) */
    uint16_t curcmd;       /* the statement's kind (SELECT 0xC1, ...) */
    uint64_t rows;         /* valid with DONE_COUNT */
};
enum sy_parse sy_tds_done_parse(const struct sy_tds_token *t, struct sy_tds_done *d) SY_MUST_CHECK;

/* What a login response said (a whole TABULAR payload). */
struct sy_tds_login_result {
    bool loginack;               /* LOGINACK seen: logged in */
    struct sy_tds_loginack ack;
    bool has_error;
    struct sy_tds_error error;   /* the last ERROR token (18456 after a 4060, as the server sends them) */
    uint32_t packet_size;        /* ENVCHANGE packet size (0: none) */
    char database[130];          /* ENVCHANGE database ("" none) */
    bool done;                   /* a final DONE was read */
    uint16_t done_status;
};
enum sy_parse sy_tds_login_result_scan(const uint8_t *p, size_t n, struct sy_tds_login_result *r, char *err,
                                       size_t errlen) SY_MUST_CHECK;

/* Whether the last SY_TDS_DONE_LEN bytes of a server message are a DONE with DONE_ATTN: the attention
 * acknowledgement (a message's last token is always one of the DONE tokens). */
bool sy_tds_is_attention_ack(const uint8_t tail[SY_TDS_DONE_LEN]);

/* An ERROR (or INFO) token with an ASCII/UTF-8 message (UTF-16LE on the wire) followed by a final DONE
 * with done_status, as a server answers a refused login. Returns bytes written, 0 when it does not fit. */
size_t sy_tds_error_reply_build(uint8_t *out, size_t cap, uint8_t token, int32_t number, uint8_t state,
                                uint8_t klass, const char *message, const char *server, uint16_t done_status);

const char *sy_tds_type_name(uint8_t type);

#endif
