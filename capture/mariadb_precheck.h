/* The MariaDB precheck of one instance direction: reachability, engine, binlog settings of the
 * source, distinct server ids, privileges of admin_user on both sides, keys, engines and triggers
 * of the synchronized tables, binlog retention. Blocking (Connector/C): run it in a worker thread. */
#ifndef SY_CAPTURE_MARIADB_PRECHECK_H
#define SY_CAPTURE_MARIADB_PRECHECK_H

#include <jansson.h>

#include "core/config.h"
#include "core/instance.h"

/* Appends one object per check to the JSON array `checks`:
 *   {"name": "snake_case", "status": "pass"|"fail"|"warn", "detail": "...", "fix": "..." (fail/warn)}
 * Forward: source = cfg->business, destination = cfg->dr; reverse: the other way round. Checks that
 * need an unreachable side are reported as warn "skipped: ...". Returns 0 when no check failed, 1
 * otherwise. Needs mysql_library_init() done by the process; opens and closes its own connections. */
int sy_mariadb_precheck(const struct sy_pair_cfg *cfg, enum sy_direction dir, json_t *checks);

#endif
