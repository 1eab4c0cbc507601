/* Blocking FreeTDS db-lib helpers shared by SQL Server's capture, replay and checks (module threads and
 * admin job threads; never the loop): a connection as the pair's admin account into one database, batches
 * and queries with a server's error kept per connection, the error classes (a lost or unreachable server
 * is retried, a server's refusal is not), typed values of result columns as change records carry them,
 * T-SQL literals for values, and the `objects` filter. In engine/ because capture/ and replay/ both need
 * them. db-lib's process-wide set-up is sy_tds_library_init (engine/sqlserver_engine.c calls it).
 *
 * One database per pair: CDC positions (LSNs) belong to one database's log, so every `objects` pattern
 * must name the same database (sy_tds_pair_database). Tables are those of schema dbo. */
#ifndef SY_SQLSERVER_CLIENT_H
#define SY_SQLSERVER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/change.h"
#include "core/config.h"

#define SY_TDS_SCHEMA "switchyard" /* Switchyard's own schema in the pair's database on each side */
/* switchyard.checkpoint (instance, worker, seq, position): the writer's checkpoint, one row per apply
 * worker, written in that worker's destination transaction (replay/sqlserver_writer.c). */
#define SY_TDS_CHECKPOINT "checkpoint"
/* switchyard.echo (instance, worker, n): CDC-enabled; every writer transaction that changes rows also
 * updates its row here, and a collector drops every source transaction holding a change of it. */
#define SY_TDS_ECHO "echo"
#define SY_TDS_ECHO_CI "switchyard_echo" /* its capture instance */
/* switchyard.initial_sync (instance, start_lsn, end_lsn, done) on a destination: the forward instance's
 * last initial copy; source changes up to end_lsn overlap it (replay/sqlserver_initial_sync.c). */
#define SY_TDS_COPIES "initial_sync"
/* switchyard.initial_sync_mark (instance, n) on a source, CDC-enabled: the copy's end mark. */
#define SY_TDS_MARK "initial_sync_mark"
#define SY_TDS_MARK_CI "switchyard_initial_sync_mark"

enum sy_tds_rc { SY_TDS_OK = 0, SY_TDS_TRANSIENT = 1, SY_TDS_REFUSED = -1 };

struct sy_tds;

/* db-lib set-up (dbinit, handlers, TDS 7.4, timeouts); once, before any thread uses it. */
void sy_tds_library_init(void);
void sy_tds_library_end(void);

/* A connection to ep logged in as cfg's admin account, in database db ("" = the login's default), TDS
 * 7.4, UTF-8 client charset. NULL + err ("host:port: why") and *rc (TRANSIENT: could not reach it;
 * REFUSED: login or database refused). */
struct sy_tds *sy_tds_connect(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, const char *db,
                              char *err, size_t errlen, enum sy_tds_rc *rc);
void sy_tds_close(struct sy_tds *t); /* NULL-safe */
int sy_tds_fd(const struct sy_tds *t); /* the socket, for sy_module_socket_watch */

/* Runs a batch, discarding rows. counts (may be NULL): the row count of each of the first n_counts
 * statements that reported one, in order (-1 where none); *n_done how many were filled. */
enum sy_tds_rc sy_tds_exec(struct sy_tds *t, const char *sql, long *counts, size_t n_counts, size_t *n_done,
                           char *err, size_t errlen);

/* Runs a query; row(arg, t) is called for every row of every result set (read its columns with the
 * sy_tds_col_* calls); a non-zero return from row stops reading (the rest is cancelled) and is returned
 * as REFUSED with the callback's err. */
enum sy_tds_rc sy_tds_query(struct sy_tds *t, const char *sql, int (*row)(void *arg, struct sy_tds *t), void *arg,
                            char *err, size_t errlen);

/* The same, with columns(arg, t) called once per result set before its rows (its metadata: names,
 * declarations), also for a result without rows. */
enum sy_tds_rc sy_tds_query_cols(struct sy_tds *t, const char *sql, int (*columns)(void *arg, struct sy_tds *t),
                                 int (*row)(void *arg, struct sy_tds *t), void *arg, char *err, size_t errlen);

/* Columns of the current row (1-based). */
int sy_tds_ncols(struct sy_tds *t);
const char *sy_tds_col_name(struct sy_tds *t, int col);
bool sy_tds_col_is_null(struct sy_tds *t, int col);
/* Raw bytes (binary columns, strings in UTF-8). */
const uint8_t *sy_tds_col_bytes(struct sy_tds *t, int col, size_t *len);
/* As text into out ("" for NULL); false when it does not fit or cannot be converted. */
bool sy_tds_col_text(struct sy_tds *t, int col, char *out, size_t outlen);
int64_t sy_tds_col_int(struct sy_tds *t, int col); /* integer types (0 for NULL/others) */
/* The column's value as a change record carries it (core/change.h): integers and bit -> INT, float/real ->
 * DOUBLE, decimal/numeric/money -> DECIMAL text, (n)char/(n)varchar/text/uniqueidentifier -> STRING (UTF-8),
 * binary/varbinary/image -> BLOB, date/time/datetime/datetime2 -> TEMPORAL "YYYY-MM-DD hh:mm:ss.fffffff"
 * (date: the date part, time: the time part), datetimeoffset -> STRING as the server's text. Text made
 * here lives in scratch (appended; pointers stay valid only until scratch grows: call sy_tds_values_fix
 * after the last column). false on a type it cannot carry (name in err). */
bool sy_tds_col_value(struct sy_tds *t, int col, struct sy_value *v, struct sy_buf *scratch, char *err,
                      size_t errlen);
/* Re-points values whose text lives in scratch once the row is read (col_value leaves p = NULL and
 * i = offset + 1 for those, since scratch may move while it grows). */
void sy_tds_values_fix(struct sy_value *v, size_t n, const struct sy_buf *scratch);

/* A T-SQL literal for v (N'...' strings, 0x.. binaries, '...' temporals, NULL) appended to b. */
void sy_tds_literal(struct sy_buf *b, const struct sy_value *v);
/* [name] with ] doubled, appended to b. */
void sy_tds_ident(struct sy_buf *b, const char *name, size_t len);
/* NUL-terminates b's text (b->len unchanged) and returns it. */
const char *sy_tds_sql(struct sy_buf *b);
void sy_tds_addf(struct sy_buf *b, const char *fmt, ...) SY_PRINTF(2, 3);

/* The one database of cfg->objects into db; false with err when there is none or several. */
bool sy_tds_pair_database(const struct sy_pair_cfg *cfg, char *db, size_t dblen, char *err, size_t errlen);
/* Whether dbo.table of the pair's database is synchronized by cfg->objects (never Switchyard's own). */
bool sy_tds_table_synced(const struct sy_pair_cfg *cfg, const char *schema, const char *table);

/* The synchronized tables of the connection's database (dbo, base tables, sorted by name), NULL-
 * terminated, each malloc'd; free with sy_tds_strv_free. NULL + rc/err on failure. */
char **sy_tds_synced_tables(struct sy_tds *t, const struct sy_pair_cfg *cfg, enum sy_tds_rc *rc, char *err,
                            size_t errlen);
void sy_tds_strv_free(char **v);
/* The primary key's columns of dbo.table, in key order, NULL-terminated (empty: none). */
char **sy_tds_key_columns(struct sy_tds *t, const char *table, enum sy_tds_rc *rc, char *err, size_t errlen);

/* Creates schema switchyard and table switchyard.<table> (columns: the text inside CREATE TABLE's
 * parentheses) when they do not exist yet. *created: the table was created now. */
enum sy_tds_rc sy_tds_ensure_own_table(struct sy_tds *t, const char *table, const char *columns, bool *created,
                                       char *err, size_t errlen);
/* Whether the connection's database has change data capture enabled. */
enum sy_tds_rc sy_tds_db_cdc_enabled(struct sy_tds *t, bool *on, char *err, size_t errlen);

/* A one-value query's first column as text ("" for NULL or no row). */
enum sy_tds_rc sy_tds_scalar(struct sy_tds *t, const char *sql, char *out, size_t outlen, char *err, size_t errlen);

#endif
