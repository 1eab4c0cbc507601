/* Fencing a SQL Server side (DENY INSERT, UPDATE, DELETE to the application's database users) and whether a
 * side answers (engine/sqlserver_fence.c). */
#ifndef SY_SQLSERVER_FENCE_H
#define SY_SQLSERVER_FENCE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"
#include "engine/sqlserver_client.h"

/* The first column of every row of sql as a NULL-terminated list of malloc'd strings (sy_tds_strv_free);
 * NULL + rc/err on failure. */
char **sy_sqlserver_fence_names(struct sy_tds *t, const char *sql, enum sy_tds_rc *rc, char *err, size_t errlen);

int sy_sqlserver_fence(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, bool on, int wait_ms, char *pos,
                       size_t poslen, char *err, size_t errlen);
bool sy_sqlserver_alive(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, int timeout_ms);

#endif
