/* The list of built engines (engine/engines.h). */
#include "engine/engines.h"

const struct sy_engine_ops *const sy_engines[] = { &sy_mariadb_engine, &sy_mongo_engine, &sy_sqlserver_engine, NULL };
