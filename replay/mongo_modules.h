/* What replay/ offers the core for MongoDB pairs: the Incremental Write module. */
#ifndef SY_REPLAY_MONGO_MODULES_H
#define SY_REPLAY_MONGO_MODULES_H

#include <mongoc/mongoc.h>

#include "core/instance.h"

struct sy_takeover_point;

extern const struct sy_module_ops sy_mongo_write;

/* A failover's tail made undone on the business side: every key it touched made equal to DR's document
 * (replay/mongo_tail_revert.c). */
int sy_mongo_tail_revert(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, const json_t *tail,
                         json_t *result, char *err, size_t errlen);

/* A new owner resumes from the destination's checkpoint (core/engine.h sy_sync_ops.takeover;
 * replay/mongo_takeover.c). */
int sy_mongo_takeover(const struct sy_pair_cfg *cfg, const char *instance_id, const struct sy_endpoint *src,
                      const struct sy_endpoint *dest, struct sy_takeover_point *out, char *err, size_t errlen);
/* A new instance of instance_id forgets an earlier one's checkpoint (core/engine.h sy_sync_ops.forget;
 * replay/mongo_forget.c). */
int sy_mongo_forget(const struct sy_pair_cfg *cfg, const char *instance_id, const struct sy_endpoint *dest,
                    uint64_t owner_token, char *err, size_t errlen);
/* The checkpoint document's filter for an owner with `token` (0: none checked): _id, and an owner_token
 * not above it or absent. Appended to filter. */
void sy_mongo_checkpoint_filter(bson_t *filter, const char *instance_id, uint64_t token);
/* Reads the checkpoint document of instance_id: *found, its seq, position and owner_token (0: none).
 * 0, or -1 with *e. */
int sy_mongo_checkpoint_read(mongoc_client_t *c, const char *instance_id, bool *found, uint64_t *seq,
                             char *position, size_t poslen, uint64_t *token, bson_error_t *e);
/* Writes token into the checkpoint document unless it names a higher one: *claimed when it matched.
 * 0, or -1 with *e. */
int sy_mongo_checkpoint_claim(mongoc_client_t *c, const char *instance_id, uint64_t token, bool *claimed,
                              bson_error_t *e);

#endif
