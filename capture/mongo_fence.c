/* "Fencing" a MongoDB side. Neither FerretDB nor MongoDB can be made read-only for everyone but
 * Switchyard's writer (FerretDB has no such switch at all; MongoDB's fsyncLock stops the writer too), so a
 * MongoDB pair is never fenced (the engine declares it: fence_passive defaults off and cannot be set on): a
 * switch relies on the proxy's hold, which has stopped every client request and seen every reply in
 * flight before this is called. Fencing on therefore only gives the side's final position, made safe
 * against FerretDB's out-of-order oplog: it first writes a mark (`switchyard.fence`), whose entry's ts is
 * taken after every acknowledged write's entry was committed (FerretDB logs before it answers), then
 * reads the newest ts. A collector that has taken that entry saw every entry committed before it in the
 * same read (and those sort before it in natural order), so a drain up to this position has applied every
 * acknowledged write — even one whose entry landed behind a newer one. Fencing off has nothing to undo. */
#include <stdio.h>
#include <time.h>

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
    mongoc_collection_t *marks = mongoc_client_get_collection(c, SY_MONGO_DB, "fence");
    bson_t sel = BSON_INITIALIZER, update = BSON_INITIALIZER, set, opts = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&sel, "_id", cfg->name);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_DATE_TIME(&set, "at", (int64_t)time(NULL) * 1000);
    bson_append_document_end(&update, &set);
    BSON_APPEND_BOOL(&opts, "upsert", true);
    bson_error_t e;
    int rc = 0;
    if (!mongoc_collection_update_one(marks, &sel, &update, &opts, NULL, &e)) {
        snprintf(err, errlen, "%s:%u: writing the fence mark: %s", ep->host, ep->port, e.message);
        rc = -1;
    }
    bson_destroy(&sel);
    bson_destroy(&update);
    bson_destroy(&opts);
    mongoc_collection_destroy(marks);
    struct sy_mongo_ts ts = { 0, 0 };
    if (rc == 0 && sy_mongo_oplog_edge(c, true, &ts, err, errlen) < 0)
        rc = -1;
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
