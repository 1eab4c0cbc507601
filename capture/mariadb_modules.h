/* What capture/ offers the core for MariaDB pairs: the Incremental Data Collection module. */
#ifndef SY_CAPTURE_MARIADB_MODULES_H
#define SY_CAPTURE_MARIADB_MODULES_H

#include "core/instance.h"

extern const struct sy_module_ops sy_mariadb_collection;

#endif
