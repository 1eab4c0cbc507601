/* Keeps the passive side of a pair fenced (MariaDB: read_only) and the active side writable after a start;
 * see fence_keeper.c. */
#ifndef SY_FENCE_KEEPER_H
#define SY_FENCE_KEEPER_H

#include "core/pair.h"

/* Starts the pair's keeper thread (no-op for engines without fencing). 0, or -1. */
int sy_fence_keeper_start(struct sy_pair *p);
/* Stops and joins it; NULL-safe in effect (no-op when not running). */
void sy_fence_keeper_stop(struct sy_pair *p);

#endif
