/* What replay/ offers the core for SQL Server pairs: the write module (replay/sqlserver_writer.c) and
 * the initial synchronization (replay/sqlserver_initial_sync.c). */
#ifndef SY_REPLAY_SQLSERVER_MODULES_H
#define SY_REPLAY_SQLSERVER_MODULES_H

#include <jansson.h>

#include "core/instance.h"
#include "engine/sqlserver_client.h"

struct sy_takeover_point;

extern const struct sy_module_ops sy_sqlserver_write;
extern const struct sy_module_ops sy_sqlserver_initial_sync;

/* Makes business equal DR on every key a failover's tail touched (replay/sqlserver_tail_revert.c). */
int sy_sqlserver_tail_revert(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, const json_t *tail,
                             json_t *result, char *err, size_t errlen);

/* A new owner resumes from the destination's checkpoint (core/engine.h sy_sync_ops.takeover;
 * replay/sqlserver_takeover.c). */
int sy_sqlserver_takeover(const struct sy_pair_cfg *cfg, const char *instance_id, const struct sy_endpoint *src,
                          const struct sy_endpoint *dest, struct sy_takeover_point *out, char *err, size_t errlen);
/* A new instance of instance_id forgets an earlier one's checkpoint rows (core/engine.h
 * sy_sync_ops.forget; replay/sqlserver_forget.c). */
int sy_sqlserver_forget(const struct sy_pair_cfg *cfg, const char *instance_id, const struct sy_endpoint *dest,
                        uint64_t owner_token, char *err, size_t errlen);
/* Connects *t to dest (the pair's database) for instance_id's checkpoint rows: lit gets the id as a
 * literal, *exists whether switchyard.checkpoint exists (then with its owner_token column). 0, or -1 with
 * err (*t may be set: close it). */
int sy_sqlserver_checkpoint_open(const struct sy_pair_cfg *cfg, const struct sy_endpoint *dest,
                                 const char *instance_id, struct sy_tds **t, struct sy_buf *lit, bool *exists,
                                 char *err, size_t errlen);
/* Adds switchyard.checkpoint's owner_token column (the fencing token) to a table from before it. */
enum sy_tds_rc sy_sqlserver_checkpoint_upgrade(struct sy_tds *t, char *err, size_t errlen);

#endif
