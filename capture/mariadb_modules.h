/* What capture/ offers the core for MariaDB pairs: the Incremental Data Collection module. */
#ifndef SY_CAPTURE_MARIADB_MODULES_H
#define SY_CAPTURE_MARIADB_MODULES_H

#include "core/instance.h"

extern const struct sy_module_ops sy_mariadb_collection;

/* @@gtid_binlog_pos of src (blocking; worker threads only). */
int sy_mariadb_source_position(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out,
                               size_t outlen, char *err, size_t errlen);

#endif
