/* What capture/ offers the core for MongoDB pairs: the oplog collection module and positions
 * (oplog timestamps, engine/mongo_client.h). */
#ifndef SY_CAPTURE_MONGO_MODULES_H
#define SY_CAPTURE_MONGO_MODULES_H

#include "core/instance.h"

extern const struct sy_module_ops sy_mongo_collection;

/* The newest oplog entry's ts of src (blocking; worker threads only). */
int sy_mongo_source_position(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out, size_t outlen,
                             char *err, size_t errlen);
/* Whether ts `have` is at or after ts `want`. */
bool sy_mongo_position_covers(const char *have, const char *want);
/* A switch's fence (capture/mongo_fence.c: nothing is fenced; on: the side's final position). */
int sy_mongo_fence(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, bool on, int wait_ms, char *pos,
                   size_t poslen, char *err, size_t errlen);
/* A failover's tail: the source's oplog entries after from_position (capture/mongo_tail.c). */
int sy_mongo_tail_read(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, const char *from_position,
                       const char *collector_dir,
                       json_t *out, char *err, size_t errlen);
/* Whether ep accepts the admin login and answers a ping within about timeout_ms. */
bool sy_mongo_alive(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, int timeout_ms);

#endif
