/* The destination's checkpoint tables (Switchyard's own schema). checkpoint: one row per instance,
 * the low-watermark: spool_seq = every record up to it is applied; position: the source position
 * after it; pending_ddl_seq: a DDL that may have run (DDL commits implicitly); owner_token: the
 * fencing token of the cluster owner that last took the instance over (0 without a cluster): a
 * writer whose token is lower lost the pair and commits nothing more (docs/cluster.md). */
#ifndef SY_REPLAY_MARIADB_CHECKPOINT_H
#define SY_REPLAY_MARIADB_CHECKPOINT_H

#include "engine/mariadb_client.h"

#define SY_MARIADB_CHECKPOINT_DDL                                                                          \
    "CREATE TABLE IF NOT EXISTS " SY_SCHEMA ".checkpoint (instance VARCHAR(128) NOT NULL PRIMARY KEY, "   \
    "spool_seq BIGINT UNSIGNED NOT NULL, position TEXT NOT NULL, pending_ddl_seq BIGINT UNSIGNED NOT NULL " \
    "DEFAULT 0, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), owner_token BIGINT UNSIGNED " \
    "NOT NULL DEFAULT 0) ENGINE=InnoDB"

/* The token column, for a table created before it existed (an existing install upgrades on start). */
#define SY_MARIADB_CHECKPOINT_HAS_TOKEN_SQL                                                                \
    "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='" SY_SCHEMA "' AND "              \
    "TABLE_NAME='checkpoint' AND COLUMN_NAME='owner_token'"
#define SY_MARIADB_CHECKPOINT_ADD_TOKEN_SQL                                                                \
    "ALTER TABLE " SY_SCHEMA ".checkpoint ADD COLUMN IF NOT EXISTS owner_token BIGINT UNSIGNED NOT NULL "  \
    "DEFAULT 0"

/* Source transactions a worker committed above the checkpoint's spool_seq (parallel apply: the
 * checkpoint row is the low-watermark, every record <= spool_seq is applied). A row is a range: every
 * source transaction whose TXN_COMMIT seq is in [spool_seq, last_seq] is applied (last_seq 0: just
 * spool_seq; rows of an older version). A worker inserts one row per run of consecutive transactions
 * in its group (no other transaction's commit between them), in the group's own transaction; a
 * restart skips them; a row is deleted in the transaction that moves the watermark past last_seq. */
#define SY_MARIADB_APPLIED_DDL                                                                             \
    "CREATE TABLE IF NOT EXISTS " SY_SCHEMA ".applied (instance VARCHAR(128) NOT NULL, "                   \
    "spool_seq BIGINT UNSIGNED NOT NULL, last_seq BIGINT UNSIGNED NOT NULL DEFAULT 0, "                    \
    "PRIMARY KEY (instance, spool_seq)) ENGINE=InnoDB"

/* The range column, for a table created before it existed. */
#define SY_MARIADB_APPLIED_HAS_RANGES_SQL                                                                  \
    "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='" SY_SCHEMA "' AND "              \
    "TABLE_NAME='applied' AND COLUMN_NAME='last_seq'"
#define SY_MARIADB_APPLIED_ADD_RANGES_SQL                                                                  \
    "ALTER TABLE " SY_SCHEMA ".applied ADD COLUMN IF NOT EXISTS last_seq BIGINT UNSIGNED NOT NULL DEFAULT 0"

#endif
