/* SQL Server log sequence numbers as Switchyard positions: CDC's binary(10) LSNs written as 20 lowercase
 * hex digits ("0000002700000010000a"), which compare as the bytes do. Pure functions (no db-lib): unit-tested
 * in tests/unit/test_sqlserver_lsn.c. "" is no position. */
#ifndef SY_SQLSERVER_LSN_H
#define SY_SQLSERVER_LSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SY_LSN_BYTES 10
#define SY_LSN_TEXT 21 /* 20 hex digits + NUL */

struct sy_lsn {
    uint8_t b[SY_LSN_BYTES]; /* big-endian: VLF sequence (4), log block (4), slot (2) */
};

/* Exactly 20 hex digits (either case), an optional "0x" first. false on anything else (also ""). */
bool sy_lsn_parse(const char *s, struct sy_lsn *out);
/* The bytes of a binary(10) column: len must be 10. */
bool sy_lsn_from_bytes(const uint8_t *p, size_t len, struct sy_lsn *out);
void sy_lsn_format(const struct sy_lsn *l, char out[SY_LSN_TEXT]);
int sy_lsn_cmp(const struct sy_lsn *a, const struct sy_lsn *b);
bool sy_lsn_is_zero(const struct sy_lsn *l);
/* Whether position `have` is at or after `want` (both LSN texts); false when either is not one. */
bool sy_lsn_text_covers(const char *have, const char *want);

#endif
