/* What replay/ offers the core for MariaDB pairs: Initial Synchronization and Incremental Write. */
#ifndef SY_REPLAY_MARIADB_MODULES_H
#define SY_REPLAY_MARIADB_MODULES_H

#include "core/instance.h"

extern const struct sy_module_ops sy_mariadb_initial_sync;
extern const struct sy_module_ops sy_mariadb_write;

/* engine.h's sync->takeover (replay/mariadb_takeover.c). */
struct sy_takeover_point;
int sy_mariadb_takeover(const struct sy_pair_cfg *cfg, const char *instance_id, const struct sy_endpoint *src,
                        const struct sy_endpoint *dest, struct sy_takeover_point *out, char *err, size_t errlen);
/* engine.h's sync->forget (replay/mariadb_forget.c). */
int sy_mariadb_forget(const struct sy_pair_cfg *cfg, const char *instance_id, const struct sy_endpoint *dest,
                      uint64_t owner_token, char *err, size_t errlen);

#endif
