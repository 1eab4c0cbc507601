/* An instance's spool: an append-only sequence of records on disk under state_dir, between the
 * collection module (one appending thread) and the write module (one reading thread).
 *
 *   <dir>/00000000000000000001.spool   segment files named by their first record's sequence number
 *   record = u32 payload_len | u32 crc32(seq..payload) | u64 seq | u8 type | payload
 *
 * Sequence numbers start at 1 and have no gaps. Open recovers: a torn record at the very end of the
 * last segment (a crash mid-append) is truncated away; a CRC failure anywhere else is corruption and
 * fails the open naming segment and offset. The spool never holds more than max_bytes on disk: an
 * append that would exceed it fails with SY_SPOOL_FULL (one that hits ENOSPC with SY_SPOOL_NO_SPACE) and
 * writes nothing, so the collector can retry the same record later ("spool_full"). Records below the writer's checkpoint
 * are dropped a whole segment at a time, and while the disk is full the first segment's applied records are
 * punched out too (core/spool.c). Thread-safe for one appender and one reader. */
#ifndef SY_SPOOL_H
#define SY_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parse.h"

#define SY_SPOOL_RECORD_MAX (1u << 30)  /* a single record (one row change) is never larger */

enum sy_spool_rc {
    SY_SPOOL_OK = 0,
    SY_SPOOL_EMPTY = 1,   /* reader: no record yet (wait, then try again) */
    SY_SPOOL_FULL = 2,    /* append: max_bytes reached; nothing written */
    SY_SPOOL_NO_SPACE = 3, /* append: the disk under the spool is full (ENOSPC, EDQUOT); nothing written */
    SY_SPOOL_ERROR = -1,  /* I/O error or corruption: err says which file and offset */
};

struct sy_spool;

/* Creates dir if needed, recovers, returns the spool or NULL with err. segment_bytes: size after
 * which a new segment starts (0 = 64 MiB). max_bytes 0 = no cap. */
struct sy_spool *sy_spool_open(const char *dir, uint64_t max_bytes, uint64_t segment_bytes, char *err,
                               size_t errlen);
void sy_spool_close(struct sy_spool *s); /* NULL-safe */

/* Appends one record; *seq_out = its sequence number. Durable only after sy_spool_sync(). A record that
 * could never fit (len > SY_SPOOL_RECORD_MAX, or larger than max_bytes) is an ERROR, not FULL. */
enum sy_spool_rc sy_spool_append(struct sy_spool *s, uint8_t type, const void *payload, size_t len,
                                 uint64_t *seq_out, char *err, size_t errlen);
enum sy_spool_rc sy_spool_sync(struct sy_spool *s, char *err, size_t errlen);

/* Sequence of the last appended record (0 = none ever), and of the first still on disk (0 = none). */
uint64_t sy_spool_last_seq(struct sy_spool *s);
uint64_t sy_spool_first_seq(struct sy_spool *s);
uint64_t sy_spool_bytes(struct sy_spool *s);

/* Reads the record with sequence `seq` (the reader keeps its own cursor: callers read seq, seq+1, ...).
 * On OK, *type, *payload and *len describe it; payload is owned by the spool until the next read. EMPTY when
 * seq > last_seq. Waits up to wait_ms for it to be appended (0 = no wait), or until sy_spool_wake(): a wake
 * with no reader waiting is kept for the next read that would wait. ERROR when seq was truncated away. */
enum sy_spool_rc sy_spool_read(struct sy_spool *s, uint64_t seq, uint8_t *type, const uint8_t **payload,
                               size_t *len, int wait_ms, char *err, size_t errlen);

/* The last record on disk whose type want(type, arg) accepts: *seq_out, *type_out, and a copy of its payload
 * in *payload_out (malloc'ed, NUL-terminated after len bytes; the caller frees it). Reads the segments
 * newest first and stops in the first one that holds such a record, so its cost is the spool's tail, not
 * its size; every record it reads is CRC-checked. Uses its own file handle: safe beside the reader and the
 * appender (it sees the records appended before the call). OK, EMPTY (no such record), ERROR (err). */
enum sy_spool_rc sy_spool_find_last(struct sy_spool *s, bool (*want)(uint8_t type, void *arg), void *arg,
                                    uint64_t *seq_out, uint8_t *type_out, uint8_t **payload_out, size_t *len_out,
                                    char *err, size_t errlen);

/* Hands the records from..to to fn in order (payload valid during the call only); fn returns non-zero to
 * stop after the record it got. *next = the seq fn would have got next. Like sy_spool_find_last, it reads
 * with its own handle (safe beside the reader and the appender) and holds off hole punching while it
 * runs, so fn must not append. OK, or ERROR (err: a record of the range is no longer on disk, or I/O). */
typedef int (*sy_spool_scan_fn)(void *arg, uint64_t seq, uint8_t type, const uint8_t *payload, size_t len);
enum sy_spool_rc sy_spool_scan(struct sy_spool *s, uint64_t from, uint64_t to, sy_spool_scan_fn fn, void *arg,
                               uint64_t *next, char *err, size_t errlen);

/* Bytes that sy_spool_truncate_below(seq) would keep: the segment holding seq and every later one (all of
 * them when seq precedes the first record). What the spool cannot shrink below while record seq and those
 * after it still wait to be applied. */
uint64_t sy_spool_bytes_kept_from(struct sy_spool *s, uint64_t seq);

/* On-disk size of a record with a payload of len bytes (header included), as counted against max_bytes. */
uint64_t sy_spool_record_bytes(size_t len);

/* Drops every segment whose records are all < seq (the write checkpoint); while the last append met a full
 * disk, also frees the first segment's records < seq in whole blocks (hole punching; best effort). An
 * append that meets a full disk punches below the highest seq given here so far by itself. */
enum sy_spool_rc sy_spool_truncate_below(struct sy_spool *s, uint64_t seq, char *err, size_t errlen);

/* Empties the spool in dir (not open) so that its next record is next_seq: every segment goes, an empty
 * one named next_seq stays (a new owner rebuilds the spool from the source's log, continuing the
 * destination checkpoint's numbering; core/takeover.c). 0, or -1 with err. */
int sy_spool_reset(const char *dir, uint64_t next_seq, char *err, size_t errlen);

/* Wakes a reader blocked in sy_spool_read (shutdown, pause). */
void sy_spool_wake(struct sy_spool *s);

#endif
