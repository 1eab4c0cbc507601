/* MongoDB's Initial Synchronization module (the forward instance's first step, core/instance.h). */
#ifndef SY_REPLAY_MONGO_INITIAL_SYNC_H
#define SY_REPLAY_MONGO_INITIAL_SYNC_H

#include "core/instance.h"

extern const struct sy_module_ops sy_mongo_initial_sync;

#endif
