/* The destination's checkpoint table (Switchyard's own schema): one row per instance, updated in
 * the same transaction as the rows it covers. spool_seq: last spool record applied; position: the
 * source position after it; pending_ddl_seq: a DDL that may have run (DDL commits implicitly). */
#ifndef SY_REPLAY_MARIADB_CHECKPOINT_H
#define SY_REPLAY_MARIADB_CHECKPOINT_H

#include "core/mariadb_client.h"

#define SY_MARIADB_CHECKPOINT_DDL                                                                          \
    "CREATE TABLE IF NOT EXISTS " SY_SCHEMA ".checkpoint (instance VARCHAR(128) NOT NULL PRIMARY KEY, "   \
    "spool_seq BIGINT UNSIGNED NOT NULL, position TEXT NOT NULL, pending_ddl_seq BIGINT UNSIGNED NOT NULL " \
    "DEFAULT 0, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"

#endif
