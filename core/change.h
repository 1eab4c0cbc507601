/* Change records: what a collector appends to an instance's spool and a writer applies. Engine-
 * neutral in shape (transactions of row changes and DDL, with positions as opaque text), typed
 * values as a destination needs them to bind. One spool record holds one change; a transaction is
 * TXN_BEGIN, TABLE/ROW/DDL records, TXN_COMMIT. Encoding and decoding are pure (fuzzed).
 *
 * How engines map onto it:
 *   MariaDB  a table is a TABLE record (its columns with types and key flags); a row change is a
 *            ROW with typed values per column; DDL carries the statement and its session context.
 *   MongoDB  a collection is a TABLE record with db = database, table = collection and two columns:
 *            `_id` (SY_COL_KEY) and `doc`, both SY_VAL_DOCUMENT (`_id` as the one-field document
 *            {_id: value}, so any BSON type can be a key). INSERT: after = the document; DELETE:
 *            before = {_id} and NULL; UPDATE: after `doc` = the whole document after the update
 *            (FerretDB's `$set` of everything), or an SY_VAL_PATCH holding the update description
 *            when the source logged only a diff (MongoDB's `$v:2`). Positions are oplog timestamps. */
#ifndef SY_CHANGE_H
#define SY_CHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parse.h"

enum sy_change_kind {
    SY_CHANGE_TXN_BEGIN = 1, /* a source transaction starts */
    SY_CHANGE_TABLE = 2,     /* describes a table for the ROW records that follow in this transaction */
    SY_CHANGE_ROW = 3,       /* one row inserted, updated or deleted */
    SY_CHANGE_DDL = 4,       /* a schema change (applied alone, as a barrier) */
    SY_CHANGE_TXN_COMMIT = 5,/* the transaction ends; position = the source position after it */
    SY_CHANGE_POSITION = 6,  /* events that were skipped (echo, other objects): advances the position */
};

enum sy_row_op { SY_ROW_INSERT = 1, SY_ROW_UPDATE = 2, SY_ROW_DELETE = 3 };

/* How a value is bound on the destination. */
enum sy_value_type {
    SY_VAL_NULL = 0,
    SY_VAL_INT = 1,      /* i: signed integers (TINYINT..BIGINT) */
    SY_VAL_UINT = 2,     /* u: unsigned integers, YEAR, BIT (as its integer), SET bitmask, ENUM index */
    SY_VAL_FLOAT = 3,    /* d: FLOAT (kept as the double of the float) */
    SY_VAL_DOUBLE = 4,   /* d */
    SY_VAL_DECIMAL = 5,  /* p/len: decimal text "-12.50" (binlog's has no leading zero: ".5" stays valid) */
    SY_VAL_STRING = 6,   /* p/len: bytes in `charset` (CHAR, VARCHAR, TEXT, ENUM/SET as text, JSON) */
    SY_VAL_BLOB = 7,     /* p/len: binary bytes (BINARY, VARBINARY, BLOB, GEOMETRY) */
    SY_VAL_TEMPORAL = 8, /* p/len: "YYYY-MM-DD", "hh:mm:ss[.ffffff]" (may be negative / > 24h),
                            "YYYY-MM-DD hh:mm:ss[.ffffff]"; TIMESTAMP values in UTC */
    SY_VAL_DOCUMENT = 9, /* p/len: one BSON document (MongoDB), validated by the engine that reads it */
    SY_VAL_PATCH = 10,   /* p/len: a BSON update description to apply to the destination's document
                            (MongoDB `$v:2` oplog diffs) */
};

struct sy_value {
    enum sy_value_type type;
    int64_t i;
    uint64_t u;
    double d;
    const uint8_t *p;  /* ref: into the decoded record or the source event */
    size_t len;
    uint16_t charset;  /* collation id for SY_VAL_STRING (0 = unknown: the column's); 0 for DOCUMENT/PATCH */
};

/* Column flags in a TABLE record. */
#define SY_COL_UNSIGNED 0x01
#define SY_COL_NULLABLE 0x02
#define SY_COL_KEY 0x04       /* part of the key the writer uses in WHERE (primary or non-null unique) */
#define SY_COL_GENERATED 0x08 /* virtual/stored generated: never written */

#define SY_CHANGE_MAX_COLUMNS 4096

struct sy_column {
    const char *name;     /* ref, NUL-terminated in the decoded buffer */
    size_t name_len;
    uint8_t source_type;  /* engine type code (MariaDB: MYSQL_TYPE_*), for logs and checks */
    uint8_t flags;        /* SY_COL_* */
    uint16_t charset;     /* collation id, 0 for non-strings */
};

struct sy_change_table {
    uint64_t table_id;          /* the source's id for this transaction; ROW records refer to it */
    const char *db;             /* ref */
    size_t db_len;
    const char *table;          /* ref */
    size_t table_len;
    uint32_t n_columns;
    const struct sy_column *columns; /* ref: decoder-provided array (see sy_change_decode) */
};

struct sy_change_row {
    uint64_t table_id;
    enum sy_row_op op;
    uint32_t n_columns;          /* of the table */
    const struct sy_value *before; /* UPDATE, DELETE: n_columns values; NULL for INSERT */
    const struct sy_value *after;  /* INSERT, UPDATE: n_columns values; NULL for DELETE */
};

struct sy_change_ddl {
    const char *db;            /* default database of the statement ("" = none) */
    size_t db_len;
    const char *sql;           /* the statement: SQL text for SQL engines; for MongoDB the command document
                                  (BSON bytes; the text may hold NULs). Never logged whole */
    size_t sql_len;
    const uint8_t *context;    /* the source session's context the statement needs, encoded by the
                                  engine that wrote it and read back by the same engine's writer
                                  (MariaDB: engine/mariadb_ddl_context.h); may be empty */
    size_t context_len;
};

struct sy_change {
    enum sy_change_kind kind;
    uint64_t source_time_ms;   /* when the source wrote it (binlog: seconds * 1000) */
    const char *position;      /* TXN_BEGIN: the transaction's id (MariaDB GTID "1-10-5");
                                  TXN_COMMIT / POSITION: the position after it (a GTID set text) */
    size_t position_len;
    union {
        struct sy_change_table table;
        struct sy_change_row row;
        struct sy_change_ddl ddl;
    } u;
};

/* A growable byte buffer for encoding. */
struct sy_buf {
    uint8_t *p;   /* owned */
    size_t len;
    size_t cap;
    bool oom;     /* an append failed; sticky */
};
void sy_buf_init(struct sy_buf *b);
void sy_buf_fini(struct sy_buf *b);
void sy_buf_reset(struct sy_buf *b);
void sy_buf_add(struct sy_buf *b, const void *p, size_t len);
/* The encodings change records use, for engines that encode their own parts (a DDL context) alike:
 * little-endian integers, LEB128 varints, text = varint len | bytes | NUL (-1: an identifier holding
 * a NUL, or len > 0 with s NULL). */
void sy_buf_put_le(struct sy_buf *b, uint64_t v, size_t n);
void sy_buf_put_varint(struct sy_buf *b, uint64_t v);
int sy_buf_put_text(struct sy_buf *b, const char *s, size_t len, bool ident) SY_MUST_CHECK;
/* And their readers over a struct sy_rd (core/rd.h); r->bad on anything malformed. */
struct sy_rd;
uint64_t sy_change_read_varint(struct sy_rd *r);
const char *sy_change_read_text(struct sy_rd *r, size_t *len_out, bool ident);

/* Appends the encoding of c to out (cleared first). Values of ROW records are encoded with their
 * types; TABLE columns with names. Returns 0, or -1 on out of memory or a change that cannot be
 * encoded (too many columns). */
int sy_change_encode(const struct sy_change *c, struct sy_buf *out) SY_MUST_CHECK;

/* Decoding scratch: holds the column and value arrays a decoded change points to. */
struct sy_change_scratch {
    struct sy_column *columns;  /* owned */
    size_t cap_columns;
    struct sy_value *values;    /* owned: before then after */
    size_t cap_values;
};
void sy_change_scratch_init(struct sy_change_scratch *s);
void sy_change_scratch_fini(struct sy_change_scratch *s);

/* Decodes one record's payload; pointers in *out refer into p and the scratch. BAD on anything
 * malformed (never trusts a count: n_columns is capped at SY_CHANGE_MAX_COLUMNS before allocating). */
enum sy_parse sy_change_decode(const uint8_t *p, size_t n, struct sy_change_scratch *s, struct sy_change *out);

const char *sy_change_kind_name(enum sy_change_kind k);

#endif
