/* What replay/ offers the core for MongoDB pairs: the Incremental Write module. */
#ifndef SY_REPLAY_MONGO_MODULES_H
#define SY_REPLAY_MONGO_MODULES_H

#include "core/instance.h"

extern const struct sy_module_ops sy_mongo_write;

/* A failover's tail made undone on the business side: every key it touched made equal to DR's document
 * (replay/mongo_tail_revert.c). */
int sy_mongo_tail_revert(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, const json_t *tail,
                         json_t *result, char *err, size_t errlen);

#endif
