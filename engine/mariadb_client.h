/* Blocking MariaDB Connector/C helpers shared by the module threads (capture, replay, precheck):
 * connect as the pair's admin account with timeouts, run a statement, read one value, and tell
 * network errors (retry) from SQL errors (a real failure). In engine/ because capture/, replay/ and
 * proxy/ all need it and may not depend on each other. Never used on the loop. */
#ifndef SY_MARIADB_CLIENT_H
#define SY_MARIADB_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <mysql.h>

#include "core/change.h"
#include "core/config.h"
#include "core/parse.h"

/* Connects to ep as cfg's admin account. flags: CLIENT_* for mysql_real_connect (e.g.
 * CLIENT_FOUND_ROWS). timeout_s applies to connect, read and write. NULL + err on failure;
 * *mysql_errno_out (may be NULL) gets the client error number (2003: unreachable, 1045: denied...). */
MYSQL *sy_mariadb_connect(const struct sy_endpoint *ep, const struct sy_pair_cfg *cfg, unsigned long flags,
                          int timeout_s, unsigned int *mysql_errno_out, char *err, size_t errlen);

struct sy_module_ctx;

/* sy_mariadb_connect, with the socket published to ctx (sy_module_socket_watch) as soon as it exists:
 * before the TCP connect completes and before the server's greeting is read, so a stop can cut a connect
 * to a server that accepts connections but never answers (the kernel completes the handshake of a
 * stopped mariadbd). Connector/C's non-blocking connect (MYSQL_OPT_NONBLOCK, mysql_real_connect_start/
 * _cont) gives the socket while it waits; this thread polls it with the library's own timeouts. The
 * connection then works with the blocking API as usual. *slot: the watch slot to drop after mysql_close
 * (-1 on failure or when not watched). ctx NULL: as sy_mariadb_connect. Fails at once when ctx's
 * sockets were already shut ("stopping"). */
MYSQL *sy_mariadb_connect_watched(const struct sy_endpoint *ep, const struct sy_pair_cfg *cfg, unsigned long flags,
                                  int timeout_s, const struct sy_module_ctx *ctx, int *slot,
                                  unsigned int *mysql_errno_out, char *err, size_t errlen);

/* Runs one statement (results, if any, are read and dropped). 0 or -1 with "errno: text" in err. */
int sy_mariadb_exec(MYSQL *m, char *err, size_t errlen, const char *fmt, ...) SY_PRINTF(4, 5) SY_MUST_CHECK;

/* First column of the first row into out ("" for NULL / no row: *found = false). 0 or -1. */
int sy_mariadb_value(MYSQL *m, char *out, size_t outlen, bool *found, char *err, size_t errlen, const char *fmt,
                     ...) SY_PRINTF(7, 8) SY_MUST_CHECK;

/* Connection-level failures (server gone, killed, unreachable, read-only shutdown): retry later. */
bool sy_mariadb_is_transient(unsigned int mysql_errno);

/* s escaped for a '...' string literal (malloc'ed; NULL on out of memory). */
char *sy_mariadb_escape(MYSQL *m, const char *s);

/* A scalar subquery over information_schema for column alias `c` of COLUMNS: its position (1..n) in the
 * key rows are found by — the PRIMARY KEY, else the first UNIQUE key whose columns are all NOT NULL —
 * or NULL when the column is not part of it. Shared by initial sync, write and verify. */
#define SY_MARIADB_KEY_SEQ_SQL                                                                                  \
    "(SELECT k.SEQ_IN_INDEX FROM information_schema.STATISTICS k WHERE k.TABLE_SCHEMA=c.TABLE_SCHEMA AND "    \
    "k.TABLE_NAME=c.TABLE_NAME AND k.COLUMN_NAME=c.COLUMN_NAME AND k.INDEX_NAME=(SELECT x.INDEX_NAME FROM "    \
    "information_schema.STATISTICS x WHERE x.TABLE_SCHEMA=c.TABLE_SCHEMA AND x.TABLE_NAME=c.TABLE_NAME AND "   \
    "x.NON_UNIQUE=0 GROUP BY x.INDEX_NAME HAVING SUM(x.NULLABLE='YES')=0 ORDER BY x.INDEX_NAME<>'PRIMARY', "  \
    "x.INDEX_NAME LIMIT 1))"

/* `name` quoted as an identifier: `a``b` (out must hold 2 * strlen + 3). */
void sy_mariadb_quote_ident(const char *name, char *out, size_t outlen);

/* Appends `name` to b, backquotes doubled (any length). */
void sy_mariadb_add_ident(struct sy_buf *b, const char *name);

/* Whether db.table is synchronized by cfg->objects (never Switchyard's own schema or system schemas). */
bool sy_objects_match(const struct sy_pair_cfg *cfg, const char *db, const char *table);
/* Whether any object pattern names db. */
bool sy_objects_match_db(const struct sy_pair_cfg *cfg, const char *db);

#define SY_SCHEMA "switchyard" /* Switchyard's own schema on each side (checkpoints) */

#endif
