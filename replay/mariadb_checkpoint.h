/* The destination's checkpoint tables (Switchyard's own schema). checkpoint: one row per instance,
 * the low-watermark: spool_seq = every record up to it is applied; position: the source position
 * after it; pending_ddl_seq: a DDL that may have run (DDL commits implicitly). */
#ifndef SY_REPLAY_MARIADB_CHECKPOINT_H
#define SY_REPLAY_MARIADB_CHECKPOINT_H

#include "core/mariadb_client.h"

#define SY_MARIADB_CHECKPOINT_DDL                                                                          \
    "CREATE TABLE IF NOT EXISTS " SY_SCHEMA ".checkpoint (instance VARCHAR(128) NOT NULL PRIMARY KEY, "   \
    "spool_seq BIGINT UNSIGNED NOT NULL, position TEXT NOT NULL, pending_ddl_seq BIGINT UNSIGNED NOT NULL " \
    "DEFAULT 0, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"

/* Source transactions a worker committed above the checkpoint's spool_seq (parallel apply: the
 * checkpoint row is the low-watermark, every record <= spool_seq is applied). A worker inserts the
 * TXN_COMMIT seqs of its group in the group's own transaction; a restart skips them; rows at or
 * below the watermark are deleted in the transaction that moves it. */
#define SY_MARIADB_APPLIED_DDL                                                                             \
    "CREATE TABLE IF NOT EXISTS " SY_SCHEMA ".applied (instance VARCHAR(128) NOT NULL, "                   \
    "spool_seq BIGINT UNSIGNED NOT NULL, PRIMARY KEY (instance, spool_seq)) ENGINE=InnoDB"

#endif
