/* What replay/ offers the core for SQL Server pairs: the write module (replay/sqlserver_writer.c) and
 * the initial synchronization (replay/sqlserver_initial_sync.c). */
#ifndef SY_REPLAY_SQLSERVER_MODULES_H
#define SY_REPLAY_SQLSERVER_MODULES_H

#include "core/instance.h"

extern const struct sy_module_ops sy_sqlserver_write;
extern const struct sy_module_ops sy_sqlserver_initial_sync;

#endif
