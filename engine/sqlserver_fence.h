/* Fencing a SQL Server side for a switch and whether a side answers (engine/sqlserver_fence.c). */
#ifndef SY_SQLSERVER_FENCE_H
#define SY_SQLSERVER_FENCE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

int sy_sqlserver_fence(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, bool on, int wait_ms, char *pos,
                       size_t poslen, char *err, size_t errlen);
bool sy_sqlserver_alive(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, int timeout_ms);

#endif
