/* What replay/ offers the core for MongoDB pairs: the Incremental Write module. */
#ifndef SY_REPLAY_MONGO_MODULES_H
#define SY_REPLAY_MONGO_MODULES_H

#include "core/instance.h"

extern const struct sy_module_ops sy_mongo_write;

#endif
