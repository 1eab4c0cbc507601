/* Prometheus metrics (CONTRACT.md "Metrics") at http://<metrics>/metrics, served by evhttp on the
 * daemon's loop from the same state `status` reports. */
#ifndef SY_METRICS_H
#define SY_METRICS_H

#include <stddef.h>

#include <event2/event.h>

#include "core/config.h"
#include "core/pair.h"

struct sy_metrics;

/* Listens on ep; pairs[0..n) are read at each scrape. NULL with err on failure. */
struct sy_metrics *sy_metrics_open(struct event_base *base, const struct sy_endpoint *ep, struct sy_pair *pairs,
                                   const size_t *n_pairs, char *err, size_t errlen);
void sy_metrics_close(struct sy_metrics *m); /* NULL-safe */

#endif
