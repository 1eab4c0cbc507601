/* Reverting an unreplicated tail (capture/mariadb_tail.h) on a MariaDB server, so that the business
 * database equals DR again before the reverse writer applies DR's changes to it (`resolve-tail PAIR
 * --discard`, or --export after sy_tail_export). Blocking: call it from a worker thread.
 *
 * Transactions are undone newest first, rows in reverse order within each: insert -> DELETE by key,
 * delete -> INSERT of the before image, update -> UPDATE to the before image WHERE key = the row's "key"
 * (the after image's). Each source transaction becomes one destination transaction, on a session like
 * the writers' (server_id = cfg->writer_tag so collectors skip it as echo; time_zone '+00:00';
 * sql_mode NO_AUTO_VALUE_ON_ZERO; charset binary with every value bound as a parameter; found rows;
 * foreign_key_checks=0). The admin account needs BINLOG REPLAY, and READ ONLY ADMIN when ep is fenced.
 * Generated columns are never written.
 *
 * Refused, with nothing changed: a tail holding DDL ("the tail contains DDL: revert it by hand"), a
 * malformed tail (unknown op or value encoding, a row without its key or image), a table or column the
 * server does not have. A row that does not match (no row with the key, or the key already taken) rolls
 * its transaction back and fails naming table, key and GTID; transactions after it in the tail (reverted
 * before it) stay reverted: result says how many.
 *
 * result (an object, filled in also on failure):
 *   {"reverted_transactions": N, "reverted_rows": M}        + "failed_gtid": "1-10-58" on a row failure */
#ifndef SY_REPLAY_MARIADB_TAIL_REVERT_H
#define SY_REPLAY_MARIADB_TAIL_REVERT_H

#include <stddef.h>

#include <jansson.h>

#include "core/config.h"
#include "core/parse.h"

int sy_mariadb_tail_revert(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, const json_t *tail,
                           json_t *result, char *err, size_t errlen) SY_MUST_CHECK;

#endif
