/* The unreplicated tail of a failover (ARCHITECTURE.md "Failover"): found once the business DB
 * answers again (fenced first), reported in status, decided by `resolve-tail`; see tail.c. */
#ifndef SY_TAIL_H
#define SY_TAIL_H

#include <stdbool.h>

#include "core/admin.h"
#include "core/pair.h"

/* Starts watching for the business DB while the pair's tail is pending. 0, or -1. */
int sy_tail_watch_start(struct sy_pair *p);
void sy_tail_watch_stop(struct sy_pair *p);
/* In a cluster: has etcd keep the pair's tail (or forget it once resolved) when p->tail_gen moved past what
 * etcd has; retried every second by the watch. A no-op alone or on a node that does not own the pair. */
void sy_tail_record(struct sy_pair *p);
/* resolve-tail PAIR --export FILE | --discard: answers req. */
void sy_tail_resolve(struct sy_pair *p, struct sy_admin_req *req, const char *export_path, bool discard);

#endif
