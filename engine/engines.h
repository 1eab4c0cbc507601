/* The engines built into switchyardd (engine/<engine>_engine.c); core/engine.h says what each offers. */
#ifndef SY_ENGINES_H
#define SY_ENGINES_H

#include "core/engine.h"

extern const struct sy_engine_ops sy_mariadb_engine;
extern const struct sy_engine_ops sy_mongo_engine;
extern const struct sy_engine_ops sy_sqlserver_engine;

/* NULL-terminated. */
extern const struct sy_engine_ops *const sy_engines[];

#endif
