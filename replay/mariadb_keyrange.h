/* Key ranges of a MariaDB table for chunked reads (initial sync, verify): the condition "key > last"
 * (or "<", "<=") expanded to (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ..., because MariaDB 10.11 does
 * not range-scan a row constructor (a,b) > (x,y): each chunk would read the index from its start.
 * Every literal compares the way the key's index orders, per column kind (checked against 10.11 in
 * tests/integration/test_initial_sync_keys.py):
 *   character columns   CONVERT(_binary X'..' USING cs) COLLATE coll   (the column's collation)
 *   numbers             the server's own text, unquoted
 *   binary, temporal    _binary X'..'
 *   ENUM                by ordinal: `e` IN (ordinals) — a numeric literal compares by ordinal, and an
 *                       IN list is range-scanned where `e` > N is not; a string would compare as text
 *   SET, BIT            by value: `b` > N (a binary-string literal would compare as bytes)
 * Pure functions: no connection, no I/O. */
#ifndef SY_REPLAY_MARIADB_KEYRANGE_H
#define SY_REPLAY_MARIADB_KEYRANGE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/change.h"

enum sy_key_kind {
    SY_KEY_TEXT,   /* character column: compared in its charset and collation */
    SY_KEY_NUMBER, /* integer, decimal, year */
    SY_KEY_FLOAT,  /* float, double: read back as a DOUBLE, whose text is exact (a FLOAT's own text is
                      rounded to 6 digits, so a bound read from it would repeat or skip rows) */
    SY_KEY_BYTES,  /* binary strings, temporal types: compared as bytes / parsed by the server */
    SY_KEY_ENUM,   /* compared by ordinal (1..enum_count; 0 = the error value '') */
    SY_KEY_SET,    /* compared by its bitmask value */
    SY_KEY_BIT,    /* compared by its unsigned value */
};

/* One key column. Values handed to the functions below are what the column's read-back expression
 * (sy_keyrange_readback) returned: ENUM, SET and BIT as decimal numbers, the others as their bytes. */
struct sy_key_col {
    const char *name;       /* ref: unquoted column name */
    enum sy_key_kind kind;
    const char *charset;    /* ref: SY_KEY_TEXT only, e.g. "utf8mb4" */
    const char *collation;  /* ref: SY_KEY_TEXT only, e.g. "utf8mb4_general_ci" */
    unsigned enum_count;    /* SY_KEY_ENUM: number of members */
};

/* The kind of a column from information_schema.COLUMNS DATA_TYPE; has_charset: CHARACTER_SET_NAME and
 * COLLATION_NAME are set (character columns). */
enum sy_key_kind sy_keyrange_kind_of(const char *data_type, bool has_charset);

/* Number of members of an ENUM from COLUMN_TYPE ("enum('a','b''c')" -> 2); 0 when it is not one. */
unsigned sy_keyrange_enum_count(const char *column_type);

/* Appends how to SELECT the column so that its value can be handed back as a bound: `c`, (`c`+0)
 * for ENUM, SET and BIT, CAST(`c` AS DOUBLE) for FLOAT and DOUBLE. */
void sy_keyrange_readback(struct sy_buf *b, const struct sy_key_col *c);

/* Appends the columns joined by ',' for ORDER BY, in index order (plain columns: the index is used). */
void sy_keyrange_order(struct sy_buf *b, const struct sy_key_col *cols, size_t n);

/* Appends "(key OP bound)" expanded over the n key columns: every column but the last compares with
 * `op` (">" or "<"), the last with `last_op` (">", ">=", "<" or "<="), earlier ones with "=" in the
 * longer terms. v[i] / len[i]: the read-back value of column i (NULL = SQL NULL). */
void sy_keyrange_bound(struct sy_buf *b, const struct sy_key_col *cols, size_t n, const char *const *v,
                       const unsigned long *len, const char *op, const char *last_op);

/* Appends a NUL-free C string (sy_buf_add without the terminator). */
void sy_keyrange_str(struct sy_buf *b, const char *s);

#endif
