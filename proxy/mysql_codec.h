/* MySQL/MariaDB client/server protocol: pure decoders and encoders over byte spans.
 * No I/O, no allocation, no globals: everything here is fed by unit tests and libFuzzer.
 * Decoded structs point into the caller's span (fields named *_p / *_len): valid only while it is.
 * Encoders write a packet *payload* (no 4-byte header) into a caller's buffer and return its
 * length, or 0 when it does not fit. */
#ifndef SY_MYSQL_CODEC_H
#define SY_MYSQL_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parse.h"
#include "core/rd.h"

#define SY_MYSQL_HDR_LEN 4
#define SY_MYSQL_MAX_PAYLOAD 0xFFFFFFu /* a payload of exactly this length continues in the next packet */

/* Capability flags (lower 32 bits: MySQL; upper 32: MariaDB extensions, sent in the greeting's and
 * handshake response's filler when CLIENT_MYSQL is clear). */
#define SY_CAP_MYSQL (1ull << 0) /* CLIENT_LONG_PASSWORD; MariaDB servers clear it to announce ext caps */
#define SY_CAP_FOUND_ROWS (1ull << 1)
#define SY_CAP_LONG_FLAG (1ull << 2)
#define SY_CAP_CONNECT_WITH_DB (1ull << 3)
#define SY_CAP_NO_SCHEMA (1ull << 4)
#define SY_CAP_COMPRESS (1ull << 5)
#define SY_CAP_ODBC (1ull << 6)
#define SY_CAP_LOCAL_FILES (1ull << 7)
#define SY_CAP_IGNORE_SPACE (1ull << 8)
#define SY_CAP_PROTOCOL_41 (1ull << 9)
#define SY_CAP_INTERACTIVE (1ull << 10)
#define SY_CAP_SSL (1ull << 11)
#define SY_CAP_IGNORE_SIGPIPE (1ull << 12)
#define SY_CAP_TRANSACTIONS (1ull << 13)
#define SY_CAP_RESERVED (1ull << 14)
#define SY_CAP_SECURE_CONNECTION (1ull << 15)
#define SY_CAP_MULTI_STATEMENTS (1ull << 16)
#define SY_CAP_MULTI_RESULTS (1ull << 17)
#define SY_CAP_PS_MULTI_RESULTS (1ull << 18)
#define SY_CAP_PLUGIN_AUTH (1ull << 19)
#define SY_CAP_CONNECT_ATTRS (1ull << 20)
#define SY_CAP_PLUGIN_AUTH_LENENC (1ull << 21)
#define SY_CAP_CAN_HANDLE_EXPIRED_PASSWORDS (1ull << 22)
#define SY_CAP_SESSION_TRACK (1ull << 23)
#define SY_CAP_DEPRECATE_EOF (1ull << 24)
#define SY_CAP_SSL_VERIFY_SERVER_CERT (1ull << 30)
#define SY_CAP_REMEMBER_OPTIONS (1ull << 31)
#define SY_CAP_MARIADB_PROGRESS (1ull << 32)
#define SY_CAP_MARIADB_COM_MULTI (1ull << 33)
#define SY_CAP_MARIADB_STMT_BULK (1ull << 34)
#define SY_CAP_MARIADB_EXT_TYPE_INFO (1ull << 35)
#define SY_CAP_MARIADB_CACHE_METADATA (1ull << 36)

/* Server status flags (OK, EOF). */
#define SY_STATUS_IN_TRANS 0x0001
#define SY_STATUS_AUTOCOMMIT 0x0002
#define SY_STATUS_MORE_RESULTS 0x0008
#define SY_STATUS_CURSOR_EXISTS 0x0040
#define SY_STATUS_LAST_ROW_SENT 0x0080
#define SY_STATUS_IN_TRANS_READONLY 0x2000
#define SY_STATUS_SESSION_STATE_CHANGED 0x4000

/* Commands (first payload byte of a request). */
enum sy_mysql_cmd {
    SY_COM_SLEEP = 0x00,
    SY_COM_QUIT = 0x01,
    SY_COM_INIT_DB = 0x02,
    SY_COM_QUERY = 0x03,
    SY_COM_FIELD_LIST = 0x04,
    SY_COM_CREATE_DB = 0x05,
    SY_COM_DROP_DB = 0x06,
    SY_COM_REFRESH = 0x07,
    SY_COM_SHUTDOWN = 0x08,
    SY_COM_STATISTICS = 0x09,
    SY_COM_PROCESS_INFO = 0x0a,
    SY_COM_CONNECT = 0x0b,
    SY_COM_PROCESS_KILL = 0x0c,
    SY_COM_DEBUG = 0x0d,
    SY_COM_PING = 0x0e,
    SY_COM_TIME = 0x0f,
    SY_COM_DELAYED_INSERT = 0x10,
    SY_COM_CHANGE_USER = 0x11,
    SY_COM_BINLOG_DUMP = 0x12,
    SY_COM_TABLE_DUMP = 0x13,
    SY_COM_CONNECT_OUT = 0x14,
    SY_COM_REGISTER_SLAVE = 0x15,
    SY_COM_STMT_PREPARE = 0x16,
    SY_COM_STMT_EXECUTE = 0x17,
    SY_COM_STMT_SEND_LONG_DATA = 0x18,
    SY_COM_STMT_CLOSE = 0x19,
    SY_COM_STMT_RESET = 0x1a,
    SY_COM_SET_OPTION = 0x1b,
    SY_COM_STMT_FETCH = 0x1c,
    SY_COM_DAEMON = 0x1d,
    SY_COM_BINLOG_DUMP_GTID = 0x1e,
    SY_COM_RESET_CONNECTION = 0x1f,
    SY_COM_STMT_BULK_EXECUTE = 0xfa,
};

/* Session-state-change entry types (OK packet, CLIENT_SESSION_TRACK). */
enum sy_mysql_track_type {
    SY_TRACK_SYSTEM_VARIABLES = 0,
    SY_TRACK_SCHEMA = 1,
    SY_TRACK_STATE_CHANGE = 2,
    SY_TRACK_GTIDS = 3,
    SY_TRACK_TRANSACTION_CHARACTERISTICS = 4,
    SY_TRACK_TRANSACTION_STATE = 5,
};

/* ---- framing ---------------------------------------------------------------------------------- */

struct sy_mysql_hdr {
    uint32_t len; /* payload length, 0 .. SY_MYSQL_MAX_PAYLOAD */
    uint8_t seq;  /* sequence id */
};

/* AGAIN when n < 4; never BAD (every 4-byte header is well formed). */
enum sy_parse sy_mysql_hdr_parse(const uint8_t *p, size_t n, struct sy_mysql_hdr *out);
void sy_mysql_hdr_encode(uint8_t out[4], uint32_t len, uint8_t seq);

/* Length-encoded integers and strings. lenenc_get returns false (and sets r->bad) on 0xFF or a
 * short span; 0xFB means SQL NULL: *is_null = true, *v = 0 (is_null may be NULL: then 0xFB is bad). */
bool sy_mysql_lenenc_get(struct sy_rd *r, uint64_t *v, bool *is_null);
/* A lenenc string: pointer into the span and its length; NULL + r->bad when short or NULL-marked. */
const uint8_t *sy_mysql_lenenc_str_get(struct sy_rd *r, size_t *len);
void sy_mysql_lenenc_put(struct sy_wr *w, uint64_t v);
void sy_mysql_lenenc_str_put(struct sy_wr *w, const void *s, size_t len);

/* ---- compressed protocol (CLIENT_COMPRESS) ----------------------------------------------------
 * After the login, every packet travels inside frames: 3 bytes payload length, 1 byte sequence id (its
 * own counter: 0 for a command's first frame, +1 per frame either way), 3 bytes uncompressed length
 * (0: the payload is stored as is), then the payload (zlib when compressed). A frame may hold several
 * packets or part of one. */
#define SY_MYSQL_ZHDR_LEN 7
#define SY_MYSQL_ZMIN 50 /* shorter payloads are sent as is, as servers do */
struct sy_mysql_zhdr {
    uint32_t comp_len; /* bytes of payload in this frame */
    uint8_t seq;
    uint32_t raw_len;  /* its length uncompressed; 0 = stored */
};
/* AGAIN when n < 7; never BAD (every 7-byte header is well formed). */
enum sy_parse sy_mysql_zhdr_parse(const uint8_t *p, size_t n, struct sy_mysql_zhdr *out);
void sy_mysql_zhdr_encode(uint8_t out[SY_MYSQL_ZHDR_LEN], const struct sy_mysql_zhdr *h);
struct libdeflate_decompressor;
/* One frame at p (n bytes there): OK with *frame_len bytes of it consumed and its payload written to out
 * (*out_len bytes: raw_len when compressed, else comp_len); AGAIN when the frame is not all there; BAD
 * when it does not inflate to exactly its stated length or does not fit cap. Pure (fuzzed). */
enum sy_parse sy_mysql_zframe_decode(struct libdeflate_decompressor *d, const uint8_t *p, size_t n, uint8_t *out,
                                     size_t cap, size_t *frame_len, size_t *out_len, uint8_t *seq);


/* ---- connection phase ------------------------------------------------------------------------- */

#define SY_MYSQL_SALT_LEN 20
#define SY_MYSQL_NAME_MAX 385   /* user names: 128 chars x 3 bytes + NUL */
#define SY_MYSQL_DB_MAX 257     /* schema names: 64 chars x 4 bytes + NUL */
#define SY_MYSQL_VERSION_MAX 96
#define SY_MYSQL_PLUGIN_MAX 64
#define SY_MYSQL_AUTH_MAX 255

/* Initial Handshake Packet, protocol 10 (server -> client). */
struct sy_mysql_greeting {
    char server_version[SY_MYSQL_VERSION_MAX]; /* NUL-terminated; truncated if longer */
    uint32_t thread_id;                        /* the connection id KILL uses */
    uint8_t salt[SY_MYSQL_SALT_LEN];           /* scramble: part 1 (8) + part 2 (12) */
    size_t salt_len;                           /* usually 20 */
    uint64_t caps;                             /* lower 32 + MariaDB ext caps in the upper 32 */
    uint8_t collation;                         /* server default collation id */
    uint16_t status;                           /* server status flags */
    char auth_plugin[SY_MYSQL_PLUGIN_MAX];     /* "" when CLIENT_PLUGIN_AUTH is absent */
};

/* OK, or BAD (wrong protocol version, short, missing NULs). An ERR packet instead of a
 * greeting (server refuses the connection) is BAD here: check payload[0] == 0xFF first. */
enum sy_parse sy_mysql_greeting_parse(const uint8_t *p, size_t n, struct sy_mysql_greeting *out);
size_t sy_mysql_greeting_encode(const struct sy_mysql_greeting *g, uint8_t *buf, size_t cap);

/* Handshake Response 41 (client -> server), and SSLRequest, its 32-byte prefix. */
struct sy_mysql_hsresp {
    uint64_t caps;             /* lower 32 + ext caps from the filler when CLIENT_MYSQL is clear */
    uint32_t max_packet;       /* client's max packet size */
    uint8_t collation;         /* client character set / collation id */
    bool ssl_request;          /* only the 32-byte prefix was sent with CLIENT_SSL: upgrade first */
    char user[SY_MYSQL_NAME_MAX];
    uint8_t auth[SY_MYSQL_AUTH_MAX]; /* auth response as sent (scramble for mysql_native_password) */
    size_t auth_len;
    bool has_db;                    /* CLIENT_CONNECT_WITH_DB and a schema was named */
    char db[SY_MYSQL_DB_MAX];
    char plugin[SY_MYSQL_PLUGIN_MAX];  /* "" when absent */
    const uint8_t *attrs_p;         /* ref: connect attributes block contents (without its lenenc length) */
    size_t attrs_len;
};

/* Requires CLIENT_PROTOCOL_41. Over-long user/db/plugin/auth -> BAD, never truncated. */
enum sy_parse sy_mysql_hsresp_parse(const uint8_t *p, size_t n, struct sy_mysql_hsresp *out);
/* Encodes the full response (never an SSLRequest); attrs written when CONNECT_ATTRS is in caps. */
size_t sy_mysql_hsresp_encode(const struct sy_mysql_hsresp *h, uint8_t *buf, size_t cap);

/* AuthSwitchRequest (0xFE, plugin NUL, data) from the server during auth. */
struct sy_mysql_auth_switch {
    char plugin[SY_MYSQL_PLUGIN_MAX];
    uint8_t data[SY_MYSQL_AUTH_MAX]; /* new salt; a trailing NUL is stripped */
    size_t data_len;
};
enum sy_parse sy_mysql_auth_switch_parse(const uint8_t *p, size_t n, struct sy_mysql_auth_switch *out);

/* COM_CHANGE_USER (client -> server). Charset and later fields are optional on the wire. */
struct sy_mysql_change_user {
    char user[SY_MYSQL_NAME_MAX];
    uint8_t auth[SY_MYSQL_AUTH_MAX];
    size_t auth_len;
    char db[SY_MYSQL_DB_MAX];
    bool has_collation;
    uint16_t collation;
    char plugin[SY_MYSQL_PLUGIN_MAX];
    const uint8_t *attrs_p; /* ref, as in hsresp */
    size_t attrs_len;
};
/* p starts at the command byte. caps: the session's negotiated capabilities. */
enum sy_parse sy_mysql_change_user_parse(const uint8_t *p, size_t n, uint64_t caps,
                                         struct sy_mysql_change_user *out);
size_t sy_mysql_change_user_encode(const struct sy_mysql_change_user *c, uint64_t caps, uint8_t *buf,
                                   size_t cap);

/* ---- generic replies -------------------------------------------------------------------------- */

struct sy_mysql_ok {
    uint64_t affected_rows;
    uint64_t last_insert_id;
    uint16_t status;
    uint16_t warnings;
    const uint8_t *info_p;  /* ref: human-readable info, may be empty */
    size_t info_len;
    const uint8_t *state_p; /* ref: session state changes (entries), when SESSION_TRACK and the flag */
    size_t state_len;
};
/* p[0] must be 0x00 or 0xFE (an OK used as EOF with DEPRECATE_EOF). */
enum sy_parse sy_mysql_ok_parse(const uint8_t *p, size_t n, uint64_t caps, struct sy_mysql_ok *out);
/* header: 0x00 or 0xFE. state_p is written only if caps has SESSION_TRACK and status has the flag. */
size_t sy_mysql_ok_encode(const struct sy_mysql_ok *ok, uint8_t header, uint64_t caps, uint8_t *buf,
                          size_t cap);

#define SY_ER_CONNECTION_KILLED 1927 /* the server's "Connection was killed" */
#define SY_ER_ERROR_DURING_COMMIT 1180 /* "Got error during COMMIT": commit_wait's fallback = error */

struct sy_mysql_err {
    uint16_t code;
    char sqlstate[6];   /* 5 chars + NUL; "HY000" when the packet has no '#' marker */
    const char *msg_p;  /* ref: not NUL-terminated */
    size_t msg_len;
};
enum sy_parse sy_mysql_err_parse(const uint8_t *p, size_t n, struct sy_mysql_err *out);
size_t sy_mysql_err_encode(uint16_t code, const char *sqlstate, const char *msg, uint8_t *buf,
                           size_t cap);

struct sy_mysql_eof {
    uint16_t warnings;
    uint16_t status;
};
/* Classic EOF: 0xFE and payload length < 9. */
enum sy_parse sy_mysql_eof_parse(const uint8_t *p, size_t n, struct sy_mysql_eof *out);

/* One entry of an OK's session-state block. For SYSTEM_VARIABLES name/value are the variable and
 * its new value; for SCHEMA name is the schema; for other types name is the raw entry data. */
struct sy_mysql_track {
    uint8_t type;
    const uint8_t *name_p;
    size_t name_len;
    const uint8_t *value_p;
    size_t value_len;
};
/* Iterate with r over ok.state_p/state_len: 1 = an entry, 0 = end, -1 = malformed. */
int sy_mysql_track_next(struct sy_rd *r, struct sy_mysql_track *out);

/* ---- response tracking -----------------------------------------------------------------------
 * Follows one command's response packet by packet to find where it ends and what status it ends
 * with, without buffering rows: for each packet the caller first asks wants_whole() with the
 * packet's first byte and length; when false the parser only needs that first byte (a row, a
 * column definition, a continuation) and the payload can be streamed through. */

enum sy_mysql_resp_phase {
    SY_RESP_FIRST,          /* first packet of a result: OK, ERR, LOCAL INFILE, column count */
    SY_RESP_COLDEFS,        /* `left` column definitions to go */
    SY_RESP_COLDEFS_EOF,    /* classic EOF after column definitions */
    SY_RESP_ROWS,           /* rows until EOF/OK terminator or ERR */
    SY_RESP_PREP_PARAMS,    /* COM_STMT_PREPARE: `left` parameter definitions */
    SY_RESP_PREP_PARAMS_EOF,
    SY_RESP_PREP_COLS,
    SY_RESP_PREP_COLS_EOF,
    SY_RESP_INFILE_WAIT,    /* server asked for a local file: client data flows, then FIRST */
    SY_RESP_DONE,
};

struct sy_mysql_resp {
    uint8_t cmd;                     /* command this response answers */
    uint64_t caps;                   /* negotiated capabilities (DEPRECATE_EOF, SESSION_TRACK) */
    enum sy_mysql_resp_phase phase;
    uint64_t left;                   /* definitions still expected in a *DEFS/PREP phase */
    bool continued;                  /* previous packet had length 0xFFFFFF: this one continues it */
    bool binary_rows;                /* COM_STMT_EXECUTE / FETCH: rows start with 0x00 */
    uint16_t status;                 /* last server status seen; valid when has_status */
    bool has_status;
    bool failed;                     /* an ERR packet ended (part of) the response */
    bool cursor;                     /* COM_STMT_EXECUTE asked for a cursor (flags != 0): only then does
                                        CURSOR_EXISTS end the reply after the metadata (MariaDB also sets
                                        it for a CALL whose procedure opened a cursor, then sends rows) */
    uint32_t stmt_id;                /* COM_STMT_PREPARE reply */
    uint16_t num_params;
    uint16_t num_cols;
};

/* What one fed packet was, for the session to act on (session tracking, ledger, statements). */
enum sy_mysql_pkt_kind {
    SY_PKT_DATA,        /* row, column definition, count, continuation, MariaDB progress report */
    SY_PKT_OK,          /* ok is set (also the DEPRECATE_EOF terminator) */
    SY_PKT_ERR,         /* err is set */
    SY_PKT_EOF,         /* eof is set */
    SY_PKT_PREPARE_OK,  /* resp->stmt_id/num_params/num_cols are set */
    SY_PKT_INFILE,      /* LOCAL INFILE request: the client must now send the file */
    SY_PKT_TEXT,        /* COM_STATISTICS' string reply */
};

struct sy_mysql_pkt {
    enum sy_mysql_pkt_kind kind;
    struct sy_mysql_ok ok;
    struct sy_mysql_err err;
    struct sy_mysql_eof eof;
};

enum sy_mysql_step {
    SY_STEP_MORE,   /* the response continues */
    SY_STEP_DONE,   /* this packet ended the response; resp->status is the final status */
    SY_STEP_INFILE, /* client sends file packets + an empty one; feed on: INFILE_WAIT acts as FIRST */
    SY_STEP_BAD,    /* not a valid packet here: the stream cannot be trusted any more */
};

/* A COM_STMT_EXECUTE that opened a cursor ends after its metadata: the EOF/OK after the column
 * definitions carries SY_STATUS_CURSOR_EXISTS, and rows come later through COM_STMT_FETCH. The caller
 * sets r->cursor after start when the execute asked for one. */
void sy_mysql_resp_start(struct sy_mysql_resp *r, uint8_t cmd, uint64_t caps);
/* Whether feed() needs the whole payload of a packet that starts with `first` and has `len`. */
bool sy_mysql_resp_wants_whole(const struct sy_mysql_resp *r, uint8_t first, uint32_t len);
/* p/avail: the packet's payload (avail == len when wants_whole, else at least 1 byte unless len == 0). */
enum sy_mysql_step sy_mysql_resp_feed(struct sy_mysql_resp *r, const uint8_t *p, size_t avail, uint32_t len,
                                      struct sy_mysql_pkt *out);
/* Commands that get no reply at all. */
bool sy_mysql_cmd_has_reply(uint8_t cmd);

/* ---- requests --------------------------------------------------------------------------------- */

/* COM_STMT_EXECUTE header; p starts at the command byte. num_params from the PREPARE reply. */
struct sy_mysql_stmt_exec {
    uint32_t stmt_id;
    uint8_t flags;               /* cursor type; 0 = no cursor */
    bool new_params_bound;
    const uint8_t *types_p;      /* ref: 2 * num_params bytes when new_params_bound */
};
enum sy_parse sy_mysql_stmt_exec_parse(const uint8_t *p, size_t n, uint16_t num_params,
                                       struct sy_mysql_stmt_exec *out);

/* `KILL [HARD|SOFT] [QUERY|CONNECTION] <id>` at the start of a COM_QUERY text (after leading spaces
 * and comments are NOT skipped: only plain leading whitespace). id_off/id_len locate the number in
 * the text so the caller can substitute another id. Returns false when the text is anything else. */
struct sy_mysql_kill {
    bool query_only;  /* KILL QUERY: cancel the statement, keep the connection */
    uint64_t id;
    size_t id_off;
    size_t id_len;
};
bool sy_mysql_kill_parse(const uint8_t *sql, size_t len, struct sy_mysql_kill *out);


#endif
