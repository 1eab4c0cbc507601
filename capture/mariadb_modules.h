/* What capture/ offers the core for MariaDB pairs: the Incremental Data Collection module. */
#ifndef SY_CAPTURE_MARIADB_MODULES_H
#define SY_CAPTURE_MARIADB_MODULES_H

#include "core/instance.h"

extern const struct sy_module_ops sy_mariadb_collection;

/* @@gtid_binlog_pos of src (blocking; worker threads only). */
int sy_mariadb_source_position(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out,
                               size_t outlen, char *err, size_t errlen);

/* Fencing (read_only) of a side, blocking: see capture/mariadb_fence.c. pos (may be NULL) gets
 * @@gtid_binlog_pos read after the change. 0, or -1 with err. */
int sy_mariadb_fence(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, bool on, int wait_ms, char *pos,
                     size_t poslen, char *err, size_t errlen);
/* Whether GTID set `have` covers every domain's sequence number of `want`. */
bool sy_mariadb_position_covers(const char *have, const char *want);
/* Failover tail between two positions of the business DB (see core/instance.h tail_count). */
int sy_mariadb_tail_count(const char *collected, const char *now, const char *ledger, uint64_t *transactions,
                          uint64_t *acknowledged, json_t *ranges);
/* The source position over a connection kept in *handle (opened on first use, dropped on error). */
int sy_mariadb_position_poll(void **handle, const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out,
                             size_t outlen, char *err, size_t errlen);
void sy_mariadb_position_poll_close(void *handle);
/* Whether ep accepts a login and answers SELECT 1 within about timeout_ms. */
bool sy_mariadb_alive(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, int timeout_ms);

#endif
