/* The daemon: one event loop, the admin socket, every configured pair; the pair commands of
 * CONTRACT.md (status, clients, hold, release; the rest answer not_implemented until built). */
#ifndef SY_DAEMON_H
#define SY_DAEMON_H

#include "core/config.h"
#include "core/instance.h"
#include "core/pair.h"

/* Runs until SIGTERM/SIGINT. protos / engines: NULL-terminated lists of the built engines' proxies and
 * synchronization, positions and failover (core/engine.h). Returns the process exit status. */
int sy_daemon_run(const struct sy_config *cfg, const struct sy_proxy_protocol *const *protos,
                  const struct sy_engine_ops *const *engines);

#endif
