/* What replay/ offers the core for SQL Server pairs: the write module (replay/sqlserver_writer.c) and
 * the initial synchronization (replay/sqlserver_initial_sync.c). */
#ifndef SY_REPLAY_SQLSERVER_MODULES_H
#define SY_REPLAY_SQLSERVER_MODULES_H

#include <jansson.h>

#include "core/instance.h"

extern const struct sy_module_ops sy_sqlserver_write;
extern const struct sy_module_ops sy_sqlserver_initial_sync;

/* Makes business equal DR on every key a failover's tail touched (replay/sqlserver_tail_revert.c). */
int sy_sqlserver_tail_revert(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, const json_t *tail,
                             json_t *result, char *err, size_t errlen);

#endif
