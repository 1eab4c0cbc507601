/* Keeps the passive side of a pair fenced (MariaDB: read_only) and the active side writable after a start;
 * see fence_keeper.c. */
#ifndef SY_FENCE_KEEPER_H
#define SY_FENCE_KEEPER_H

#include <stdbool.h>

#include "core/pair.h"

/* Starts the pair's keeper thread (no-op for engines without fencing). 0, or -1. */
int sy_fence_keeper_start(struct sy_pair *p);
/* Stops and joins it; NULL-safe in effect (no-op when not running). */
void sy_fence_keeper_stop(struct sy_pair *p);
/* Asks it to stop without waiting (a step-down: a fence call can take seconds); whether it returned, so that
 * sy_fence_keeper_stop then does not wait (true when not running). */
void sy_fence_keeper_ask_stop(struct sy_pair *p);
bool sy_fence_keeper_done(const struct sy_pair *p);

#endif
