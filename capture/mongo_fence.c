/* "Fencing" a MongoDB side. Neither FerretDB nor MongoDB can be made read-only for everyone but
 * Switchyard's writer (FerretDB has no such switch at all; MongoDB's fsyncLock stops the writer too), so a
 * MongoDB pair is never fenced (config: fence_passive is off and cannot be set on): a switch relies on
 * the proxy's hold, which has stopped every client request before this is called. Fencing on therefore
 * only reads the side's final position: the newest oplog entry (FerretDB writes it before it answers
 * the write, so every acknowledged write is at or before it). Fencing off has nothing to undo. */
#include <stdio.h>

#include "capture/mongo_modules.h"
#include "engine/mongo_client.h"

int sy_mongo_fence(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, bool on, int wait_ms, char *pos,
                   size_t poslen, char *err, size_t errlen)
{
    if (!on || pos == NULL)
        return 0;
    mongoc_client_t *c = sy_mongo_connect(cfg, ep, wait_ms > 1000 ? wait_ms : 1000, err, errlen);
    if (c == NULL)
        return -1;
    struct sy_mongo_ts ts = { 0, 0 };
    int rc = sy_mongo_oplog_edge(c, true, &ts, err, errlen) < 0 ? -1 : 0;
    if (rc == 0)
        sy_mongo_ts_format(ts, pos, poslen);
    mongoc_client_destroy(c);
    return rc;
}

bool sy_mongo_alive(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, int timeout_ms)
{
    char err[256];
    mongoc_client_t *c = sy_mongo_connect(cfg, ep, timeout_ms > 0 ? timeout_ms : 1000, err, sizeof err);
    if (c == NULL)
        return false;
    mongoc_client_destroy(c); /* sy_mongo_connect proved it with a ping */
    return true;
}
