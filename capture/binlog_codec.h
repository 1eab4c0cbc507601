/* MariaDB binlog events: pure decoders over one event's bytes (starting at its 19-byte header,
 * event_size long, CRC32 trailer included when the stream has checksums). No I/O, no globals;
 * fed by the collector (capture/mariadb_collector.c), unit tests and libFuzzer.
 * Values decoded from row images follow core/change.h: integers typed by signedness, DECIMAL and
 * temporal values as text, strings with their collation id, BLOBs as bytes, ENUM/SET as their text
 * when the TABLE_MAP carries the names (binlog_row_metadata=FULL), else as index/bitmask. */
#ifndef SY_BINLOG_CODEC_H
#define SY_BINLOG_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/change.h"
#include "core/parse.h"

#define SY_BINLOG_HEADER_LEN 19
#define SY_BINLOG_CRC_LEN 4
#define SY_BINLOG_EVENT_MAX (1u << 30)

enum sy_binlog_type {
    SY_BL_QUERY = 2,
    SY_BL_STOP = 3,
    SY_BL_ROTATE = 4,
    SY_BL_INTVAR = 5,
    SY_BL_RAND = 13,
    SY_BL_USER_VAR = 14,
    SY_BL_FORMAT_DESCRIPTION = 15,
    SY_BL_XID = 16,
    SY_BL_TABLE_MAP = 19,
    SY_BL_WRITE_ROWS_V1 = 23,
    SY_BL_UPDATE_ROWS_V1 = 24,
    SY_BL_DELETE_ROWS_V1 = 25,
    SY_BL_HEARTBEAT = 27,
    SY_BL_WRITE_ROWS_V2 = 30,
    SY_BL_UPDATE_ROWS_V2 = 31,
    SY_BL_DELETE_ROWS_V2 = 32,
    SY_BL_XA_PREPARE = 38,
    SY_BL_ANNOTATE_ROWS = 160,
    SY_BL_BINLOG_CHECKPOINT = 161,
    SY_BL_GTID = 162,
    SY_BL_GTID_LIST = 163,
    SY_BL_START_ENCRYPTION = 164,
    SY_BL_QUERY_COMPRESSED = 165,
    /* MariaDB numbers the v1 compressed row events first (WRITE_ROWS_COMPRESSED_EVENT_V1 = 166); 10.11
     * with log_bin_compress=ON writes 166-168. */
    SY_BL_WRITE_ROWS_COMPRESSED_V1 = 166,
    SY_BL_UPDATE_ROWS_COMPRESSED_V1 = 167,
    SY_BL_DELETE_ROWS_COMPRESSED_V1 = 168,
    SY_BL_WRITE_ROWS_COMPRESSED_V2 = 169,
    SY_BL_UPDATE_ROWS_COMPRESSED_V2 = 170,
    SY_BL_DELETE_ROWS_COMPRESSED_V2 = 171,
};

struct sy_binlog_header {
    uint32_t timestamp;   /* seconds since the epoch, source clock */
    uint8_t type;
    uint32_t server_id;   /* the originating server (Switchyard's writer_tag marks echoes) */
    uint32_t event_size;  /* whole event incl. header and CRC; >= 19 */
    uint32_t next_pos;    /* log position after this event (0 for artificial events) */
    uint16_t flags;
};
/* BAD when event_size < 19 or > SY_BINLOG_EVENT_MAX; AGAIN when fewer than 19 bytes. */
enum sy_parse sy_binlog_header_parse(const uint8_t *p, size_t n, struct sy_binlog_header *out);

/* CRC32 (zlib) of p[0..n-4) equals the trailing 4 bytes. */
bool sy_binlog_crc_ok(const uint8_t *p, size_t n);

/* FORMAT_DESCRIPTION: tells whether later events end in a CRC32 (checksum_alg 1) or not (0). */
struct sy_binlog_fde {
    uint16_t binlog_version;
    char server_version[51];
    uint8_t checksum_alg;   /* 0 = off, 1 = CRC32 */
};
enum sy_parse sy_binlog_fde_parse(const uint8_t *p, size_t n, struct sy_binlog_fde *out);

/* The body of an event without its CRC: p + 19 .. p + n - (has_crc ? 4 : 0). */
struct sy_binlog_body {
    const uint8_t *p;
    size_t len;
};
bool sy_binlog_body(const uint8_t *p, size_t n, bool has_crc, struct sy_binlog_body *out);

/* GTID (162): starts a transaction (or a standalone DDL / non-transactional group). */
#define SY_GTID_FL_STANDALONE 0x01
#define SY_GTID_FL_GROUP_COMMIT_ID 0x02
#define SY_GTID_FL_TRANSACTIONAL 0x04
#define SY_GTID_FL_PREPARED_XA 0x40
#define SY_GTID_FL_COMPLETED_XA 0x80
struct sy_binlog_gtid {
    uint64_t seq_no;
    uint32_t domain_id;
    uint8_t flags;
    uint64_t commit_id;  /* when FL_GROUP_COMMIT_ID */
};
enum sy_parse sy_binlog_gtid_parse(const struct sy_binlog_body *b, struct sy_binlog_gtid *out);

/* QUERY (2) and, after inflating, QUERY_COMPRESSED (165). */
struct sy_binlog_query {
    uint32_t thread_id;
    uint32_t exec_time;
    uint16_t error_code;
    bool has_sql_mode;
    uint64_t sql_mode;
    bool has_charset;
    uint16_t charset_client, collation_connection, collation_server;
    const char *time_zone;  /* ref, not NUL-terminated; NULL when absent */
    size_t time_zone_len;
    const char *db;         /* ref: default database, may be empty */
    size_t db_len;
    const char *sql;        /* ref: statement text */
    size_t sql_len;
};
enum sy_parse sy_binlog_query_parse(const struct sy_binlog_body *b, struct sy_binlog_query *out);

/* XID (16): commit of a transactional group. */
enum sy_parse sy_binlog_xid_parse(const struct sy_binlog_body *b, uint64_t *xid);

/* ROTATE (4): the next file and position. name is a ref, not NUL-terminated. */
struct sy_binlog_rotate {
    uint64_t position;
    const char *name;
    size_t name_len;
};
enum sy_parse sy_binlog_rotate_parse(const struct sy_binlog_body *b, struct sy_binlog_rotate *out);

/* GTID_LIST (163): the binlog state at the start of a file. */
struct sy_binlog_gtid_list {
    uint32_t count;
    const uint8_t *entries_p;  /* ref: count x (domain u32, server u32, seq u64) */
};
enum sy_parse sy_binlog_gtid_list_parse(const struct sy_binlog_body *b, struct sy_binlog_gtid_list *out);

/* Compressed events (165..171): inflates the compressed part of the body into out (owned by the
 * caller, grown with realloc, capped at SY_BINLOG_EVENT_MAX) and builds the equivalent uncompressed
 * body: for QUERY_COMPRESSED the post-header + status vars + db stay, the query text is inflated;
 * for ROWS_COMPRESSED the post-header (v2: with its extra data), column count and column bitmaps stay
 * and the row images are inflated. BAD on zlib errors or a claimed length zlib could not produce. */
enum sy_parse sy_binlog_inflate(uint8_t type, const struct sy_binlog_body *b, uint8_t **out, size_t *out_cap,
                                struct sy_binlog_body *inflated);
/* The uncompressed equivalent of a compressed type (166 -> 30, ...), or the type itself. */
uint8_t sy_binlog_uncompressed_type(uint8_t type);

/* TABLE_MAP (19), with the optional metadata of binlog_row_metadata=FULL. Owns a copy of the strings
 * and per-column arrays (sizes capped at SY_CHANGE_MAX_COLUMNS). */
struct sy_binlog_table_map {
    uint64_t table_id;
    char db[257];
    char table[257];
    uint32_t n_columns;
    uint8_t *types;          /* owned: real types (STRING columns holding ENUM/SET resolved from meta) */
    uint16_t *meta;          /* owned: per-column metadata, by types[i]: VARCHAR/VAR_STRING max bytes;
                                STRING max bytes (the >255 encoding undone); ENUM/SET, BLOB, GEOMETRY,
                                FLOAT, DOUBLE pack length; NEWDECIMAL precision << 8 | scale; BIT
                                bytes << 8 | bits % 8; TIME2/DATETIME2/TIMESTAMP2 fsp; else 0 */
    uint8_t *nullable;       /* owned: 1 = NULL allowed */
    uint8_t *is_unsigned;    /* owned: from SIGNEDNESS metadata (numeric columns only) */
    uint16_t *charset;       /* owned: collation id per column (0 = not a string / unknown) */
    char **names;            /* owned: column names, NULL when the event has none */
    uint8_t *is_key;         /* owned: from SIMPLE_PRIMARY_KEY / PRIMARY_KEY_WITH_PREFIX */
    char ***enum_names;      /* owned: per ENUM/SET column, its value names (NULL-terminated) or NULL */
    bool has_names;          /* binlog_row_metadata=FULL was in effect */
};
enum sy_parse sy_binlog_table_map_parse(const struct sy_binlog_body *b, struct sy_binlog_table_map *out);
void sy_binlog_table_map_free(struct sy_binlog_table_map *tm); /* frees the arrays; NULL-safe */

/* ROWS events v1 (23-25) and v2 (30-32), after inflating compressed ones. */
struct sy_binlog_rows {
    uint8_t type;             /* uncompressed type */
    enum sy_row_op op;
    uint64_t table_id;
    uint16_t flags;           /* 1 = end of statement */
    uint32_t n_columns;
    const uint8_t *present_before; /* ref: column bitmap of the before image (UPDATE/DELETE) */
    const uint8_t *present_after;  /* ref: column bitmap of the after image (INSERT/UPDATE) */
    const uint8_t *rows_p;    /* ref: the row images */
    size_t rows_len;
};
enum sy_parse sy_binlog_rows_parse(uint8_t type, const struct sy_binlog_body *b, struct sy_binlog_rows *out);
/* Whether every column of the table is present in the images the op carries (FULL row image). */
bool sy_binlog_rows_full_image(const struct sy_binlog_rows *r);

/* Iterates the rows of a ROWS event against its TABLE_MAP. Per row it fills before[] and/or after[]
 * (arrays of tm->n_columns values; absent columns become SY_VAL_NULL with p == NULL and len == 0 —
 * callers check sy_binlog_rows_full_image first). Text made for DECIMAL/temporal/ENUM/SET values lives
 * in the iterator's scratch until the next call. */
struct sy_binlog_row_iter {
    const struct sy_binlog_rows *rows;       /* ref */
    const struct sy_binlog_table_map *tm;    /* ref */
    size_t off;                              /* into rows->rows_p */
    uint8_t *scratch;                        /* owned */
    size_t scratch_len, scratch_cap;
    char err[160];                           /* why a row was BAD */
};
void sy_binlog_row_iter_init(struct sy_binlog_row_iter *it, const struct sy_binlog_rows *rows,
                             const struct sy_binlog_table_map *tm);
void sy_binlog_row_iter_fini(struct sy_binlog_row_iter *it);
/* OK = one row decoded, AGAIN = no more rows, BAD = malformed (it->err says where). */
enum sy_parse sy_binlog_row_next(struct sy_binlog_row_iter *it, struct sy_value *before, struct sy_value *after);

#endif
