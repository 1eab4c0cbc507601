/* What capture/ offers the core for SQL Server pairs: the CDC collection module, positions (CDC LSNs as
 * 20 hex digits, engine/sqlserver_lsn.h), the precheck and the fence stubs. */
#ifndef SY_CAPTURE_SQLSERVER_MODULES_H
#define SY_CAPTURE_SQLSERVER_MODULES_H

#include <jansson.h>

#include "core/instance.h"

extern const struct sy_module_ops sy_sqlserver_collection;

/* Where a collection of src would start now (engine/sqlserver_cdc.h, sy_tds_start_position). */
int sy_sqlserver_source_position(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out,
                                 size_t outlen, char *err, size_t errlen);
bool sy_sqlserver_position_covers(const char *have, const char *want);
/* The precheck (capture/sqlserver_precheck.c). */
int sy_sqlserver_precheck(const struct sy_pair_cfg *cfg, enum sy_direction dir, json_t *checks);

/* The failover's unreplicated tail of src after from_position (capture/sqlserver_tail.c: the format). 0, or
 * -1 with err (out may then hold a partial result: discard it). */
int sy_sqlserver_tail_read(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, const char *from_position,
                           const char *collector_dir,
                           json_t *out, char *err, size_t errlen);
/* A change value as the tail writes it (NULL: out of memory). */
struct sy_value;
json_t *sy_sqlserver_value_json(const struct sy_value *v);

#endif
