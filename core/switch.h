/* Switchover, switchback and failover of a pair (ARCHITECTURE.md): the algorithm, engine-neutral,
 * on its own thread; see switch.c. Each answers the admin request when done (result fields of
 * CONTRACT.md, or an error code with nothing changed). */
#ifndef SY_SWITCH_H
#define SY_SWITCH_H

#include <stdbool.h>
#include <stdint.h>

#include "core/admin.h"
#include "core/pair.h"

void sy_switch_switchover(struct sy_pair *p, struct sy_admin_req *req, bool force);
void sy_switch_switchback(struct sy_pair *p, struct sy_admin_req *req, bool force);
void sy_switch_failover(struct sy_pair *p, struct sy_admin_req *req, bool force);
/* A cluster: this node's part in switch `id` another node coordinates (core/cluster_switch.h): hold, warm,
 * acknowledge, then flip when the cluster's epoch moves to `to` or release on the old side. A node that
 * cannot take part acknowledges "refused" at once. */
void sy_switch_participate(struct sy_pair *p, const char *id, enum sy_side to, uint64_t from_epoch, bool failover);

/* `precheck --direction switchover`: the checks that need no database (instances, lag, sessions);
 * the caller adds both directions' database checks. */
json_t *sy_switch_readiness(struct sy_pair *p);

/* Called by the loop at daemon shutdown: running switches stop waiting and roll back (when before the
 * flip). Switch threads read the flag atomically (the loop and they share nothing else for it). */
void sy_switch_shutdown(void);

/* The running switch's progress for `status` ("switch": {operation, last_step, elapsed_ms}); loop thread. */
json_t *sy_switch_progress_json(const struct sy_switch *sw);
/* Upper bounds (seconds) of the switch pause histogram's buckets (+Inf not included), and its names. */
extern const double sy_switch_pause_buckets_s[SY_PAUSE_BUCKETS];
extern const char *const sy_switch_kind_names[SY_SWITCH_KINDS];
extern const char *const sy_switch_outcome_names[SY_SWITCH_OUTCOMES];

#endif
