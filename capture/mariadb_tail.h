/* The unreplicated tail of a MariaDB source (ARCHITECTURE.md, "Failover"): after a failover to DR, the
 * business transactions after the last one the forward collector spooled. Reads the source's binlog
 * (GTID dump with Connector/C mariadb_rpl, non-blocking: the server ends the stream at its binlog's end)
 * from `from_position` up to the source's @@gtid_binlog_pos read at the start, and describes every
 * transaction that changed synchronized objects (cfg->objects), leaving out Switchyard's own writes
 * (server_id == cfg->writer_tag). Blocking: call it from a worker thread, never the loop.
 *
 * Output (jansson object, filled into `out`, which must be an empty object):
 *   {"from": "1-10-57", "to": "1-10-63",
 *    "transactions": [{"gtid": "1-10-58", "server_id": 10, "timestamp": 1767225600,
 *                      "tables": ["db.t"],
 *                      "rows": [{"table": "db.t", "op": "insert"|"update"|"delete",
 *                                "key": {"id": 5} | null,
 *                                "before": {COLUMN: VALUE, ...} | null,    (update, delete)
 *                                "after": {COLUMN: VALUE, ...} | null}],   (insert, update)
 *                      "ddl": ["ALTER TABLE t ADD c INT"]}],
 *    "tables": ["db.t"], "rows": 6}
 * Transactions are in binlog order; rows in the order they were logged. "table" is "db.name" (split at
 * the first dot: database names containing a dot are not supported). "key" holds the columns of the
 * table's PRIMARY KEY, else of its first UNIQUE key whose columns are all NOT NULL (as found on the
 * source now; the binlog's own primary-key metadata when the table is gone), taken from the after
 * image for insert and update and from the before image for delete; null when the table has none.
 * "ddl" lists every statement of the transaction on a synchronized database that the rows do not
 * describe: DDL (including DDL whose objects cannot be told) and DML logged in STATEMENT format.
 * A transaction only listed there has "rows": [].
 *
 * VALUE encoding (lossless: sy_mariadb_tail_revert binds exactly the bytes / numbers the source logged):
 *   null                     SQL NULL
 *   JSON integer             a signed integer, or an unsigned one up to 2^63-1 (TINYINT..BIGINT, YEAR,
 *                            BIT as its integer, ENUM index / SET bitmask when the binlog has no names)
 *   {"uint": "<digits>"}     an unsigned integer above 2^63-1
 *   {"float": "<%.9g>"}      FLOAT (the text parses back to the same float)
 *   {"double": "<%.17g>"}    DOUBLE (the text parses back to the same double)
 *   JSON string              bytes that are valid UTF-8 without NUL, as logged in the column's own charset
 *                            (CHAR/VARCHAR/TEXT/JSON/BLOB bytes, ENUM/SET names), DECIMAL text ("-12.50"),
 *                            temporal text ("2024-01-02 03:04:05.123456", TIMESTAMP in UTC, TIME may be
 *                            negative or above 24h)
 *   {"hex": "<lowercase>"}   any other bytes (binary data, latin1 or utf16 text that is not UTF-8)
 */
#ifndef SY_CAPTURE_MARIADB_TAIL_H
#define SY_CAPTURE_MARIADB_TAIL_H

#include <stddef.h>

#include <jansson.h>

#include "core/config.h"
#include "core/parse.h"

/* The reader's replication server_id on the source: collector_server_id + this (mod 2^32, never 0), so it
 * can run while the forward collector (re)connects to the same server (one id = one reader). */
#define SY_TAIL_SERVER_ID_OFFSET 0x10000u
/* Bounds: each network read, and the whole read. */
#define SY_TAIL_READ_TIMEOUT_S 15
#define SY_TAIL_DEADLINE_S 600
/* The tail is held in memory: a tail whose values exceed this many bytes is refused (err says so). */
#define SY_TAIL_MAX_BYTES (512u << 20)

/* Reads the tail of src after from_position (a GTID set, "" = from the oldest binlog) into out (see above).
 * 0, or -1 with err (unreachable source, a purged position, row images without FULL metadata / image,
 * timeout, malformed events, size cap). On -1, out may hold a partial result: discard it. */
int sy_mariadb_tail_read(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, const char *from_position,
                         const char *collector_dir,
                         json_t *out, char *err, size_t errlen) SY_MUST_CHECK;

#endif
