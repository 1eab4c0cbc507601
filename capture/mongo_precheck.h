/* The MongoDB precheck of one instance direction (sy_sync_ops.precheck): reachability and the admin
 * login, replica-set names, local.oplog.rs on both sides, the synchronized collections and their _id
 * index on the source, SCRAM credentials of admin.system.users on both sides, and what fencing the
 * server allows. Blocking (libmongoc): run it in a worker thread. */
#ifndef SY_CAPTURE_MONGO_PRECHECK_H
#define SY_CAPTURE_MONGO_PRECHECK_H

#include <jansson.h>

#include "core/config.h"
#include "core/instance.h"

/* Appends one {name, status, detail, fix} object per check to `checks` (core/checks.h). Forward:
 * source = business, destination = dr; reverse: the other way round. Checks that need a side that
 * cannot be reached are warn "skipped: ...". 0 when no check failed, 1 otherwise. */
int sy_mongo_precheck(const struct sy_pair_cfg *cfg, enum sy_direction dir, json_t *checks);

#endif
