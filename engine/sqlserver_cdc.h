/* SQL Server change data capture as Switchyard reads it, shared by capture/ (the collector, positions,
 * the precheck) and replay/ (the initial sync's start position): the capture instances of the pair's
 * tables and the position a collection can start from. Blocking (db-lib); module and job threads only. */
#ifndef SY_SQLSERVER_CDC_H
#define SY_SQLSERVER_CDC_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/sqlserver_client.h"
#include "engine/sqlserver_lsn.h"

struct sy_tds_ci {
    char name[130];   /* capture instance ("dbo_orders") */
    char schema[130];
    char table[130];
    bool echo;        /* switchyard.echo: the writers' marker table */
    struct sy_lsn min;/* sys.fn_cdc_get_min_lsn(name) when read */
};

/* Where a change row stands in CDC's order, as both readers of change rows (the collector and the
 * unreplicated tail) sort the rows of several capture instances merged: commit LSN (__$start_lsn), then
 * __$seqval (the change's order inside its transaction), then __$operation (1 delete, 2 insert, 3 an
 * update's before image, 4 its after image: before first), then the capture instance read (a stable last
 * key: qsort is not stable, and nothing else may tell two rows apart). */
struct sy_tds_cdc_key {
    struct sy_lsn lsn;
    uint8_t seq[SY_LSN_BYTES]; /* __$seqval, binary(10); zero-padded when shorter */
    int op;
    uint32_t table;            /* index of the capture instance the row was read from */
};

/* The one CDC row order: <0, 0, >0 as a sorts before, with or after b. */
int sy_tds_cdc_order_cmp(const struct sy_tds_cdc_key *a, const struct sy_tds_cdc_key *b);

/* A capture instance's CDC function, bracket-quoted (a ']' doubled) so that any name works, one with a
 * space, a quote or a bracket too: fn "fn_cdc_get_all_changes_", ci "dbo_orders o'k]" appends
 * cdc.[fn_cdc_get_all_changes_dbo_orders o'k]]]. */
void sy_tds_cdc_fn(struct sy_buf *b, const char *fn, const char *ci);

/* A capture instance's name as an N'...' literal (a quote doubled), for sys.fn_cdc_get_min_lsn(...). */
void sy_tds_cdc_ci_literal(struct sy_buf *b, const char *ci);

/* The capture instances of the synchronized tables of cfg (one per table: the one named schema_table
 * when a table has two, else the first by name) and of switchyard.echo, into *out (malloc'd, *n).
 * missing (may be NULL): a malloc'd ", "-separated list of synchronized tables without one ("" none).
 * Whether the database has CDC at all: *db_enabled. */
enum sy_tds_rc sy_tds_capture_instances(struct sy_tds *t, const struct sy_pair_cfg *cfg, struct sy_tds_ci **out,
                                        size_t *n, char **missing, bool *db_enabled, char *err, size_t errlen);

/* A binary(10) scalar (an LSN function) into *out. */
enum sy_tds_rc sy_tds_lsn_query(struct sy_tds *t, const char *sql, struct sy_lsn *out, char *err, size_t errlen);

/* Where a new collection of this source starts so that it misses nothing committed from now on:
 * sys.fn_cdc_get_max_lsn(), raised to just below each synchronized capture instance's minimum LSN (a
 * capture instance enabled after the last captured commit starts above it; nothing before it was ever
 * captured for it). As LSN text. */
enum sy_tds_rc sy_tds_start_position(struct sy_tds *t, const struct sy_pair_cfg *cfg, char out[SY_LSN_TEXT],
                                     char *err, size_t errlen);

/* A mark the capture job must reach: a row (instance_lit: a T-SQL literal naming who writes it, value =
 * the wall clock in ms) committed into switchyard.initial_sync_mark (created and CDC-enabled when missing;
 * read by no collector), then `sys.sp_cdc_scan` asked for a log scan now (its refusal ignored: a real server
 * refuses it while the Agent's capture job runs), then polled every 20 ms until the capture job has captured it: *at = the mark's
 * commit LSN, *max = sys.fn_cdc_get_max_lsn() at that moment (>= *at). Every transaction committed before
 * the mark has an LSN below *at, captured or not before. Gives up after wait_ms (SY_TDS_TRANSIENT, err "the
 * capture job did not capture ... is it running?") or when stop(arg) (non-NULL) says so (SY_TDS_TRANSIENT,
 * err "stopped"). Shared by the initial sync's end of overlap and the switch's fence. */
enum sy_tds_rc sy_tds_mark_captured(struct sy_tds *t, const char *instance_lit, int wait_ms, bool (*stop)(void *arg),
                                    void *arg, struct sy_lsn *at, struct sy_lsn *max, char *err, size_t errlen);

#endif
