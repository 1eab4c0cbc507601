/* Switchover, switchback and failover of a pair (ARCHITECTURE.md): the algorithm, engine-neutral,
 * on its own thread; see switch.c. Each answers the admin request when done (result fields of
 * CONTRACT.md, or an error code with nothing changed). */
#ifndef SY_SWITCH_H
#define SY_SWITCH_H

#include <stdbool.h>

#include "core/admin.h"
#include "core/pair.h"

void sy_switch_switchover(struct sy_pair *p, struct sy_admin_req *req, bool force);
void sy_switch_switchback(struct sy_pair *p, struct sy_admin_req *req, bool force);
void sy_switch_failover(struct sy_pair *p, struct sy_admin_req *req, bool force);

/* `precheck --direction switchover`: the checks that need no database (instances, lag, sessions);
 * the caller adds both directions' database checks. */
json_t *sy_switch_readiness(struct sy_pair *p);

/* Called by the loop at daemon shutdown: running switches stop waiting and roll back (when before the
 * flip). Switch threads read the flag atomically (the loop and they share nothing else for it). */
void sy_switch_shutdown(void);

#endif
