/* What replay/ offers the core for MariaDB pairs: Initial Synchronization and Incremental Write. */
#ifndef SY_REPLAY_MARIADB_MODULES_H
#define SY_REPLAY_MARIADB_MODULES_H

#include "core/instance.h"

extern const struct sy_module_ops sy_mariadb_initial_sync;
extern const struct sy_module_ops sy_mariadb_write;

#endif
