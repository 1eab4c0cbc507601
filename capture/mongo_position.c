/* The MongoDB source's positions: the newest oplog entry's `ts` (where a new reverse instance starts
 * collecting, and what lag polls), and comparing two of them. */
#include <stdio.h>
#include <string.h>

#include "capture/mongo_modules.h"
#include "engine/mongo_client.h"

/* The oplog's newest ts as a position ("0:0" for an empty oplog: everything after it is new). */
static int newest(mongoc_client_t *c, char *out, size_t outlen, char *err, size_t errlen)
{
    struct sy_mongo_ts ts = { 0, 0 };
    if (sy_mongo_oplog_edge(c, true, &ts, err, errlen) < 0)
        return -1;
    sy_mongo_ts_format(ts, out, outlen);
    return 0;
}

int sy_mongo_source_position(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out, size_t outlen,
                             char *err, size_t errlen)
{
    mongoc_client_t *c = sy_mongo_connect(cfg, src, 5000, err, errlen);
    if (c == NULL)
        return -1;
    int rc = newest(c, out, outlen, err, errlen);
    mongoc_client_destroy(c);
    return rc;
}

bool sy_mongo_position_covers(const char *have, const char *want)
{
    struct sy_mongo_ts h, w;
    return sy_mongo_ts_parse(have, &h) && sy_mongo_ts_parse(want, &w) && sy_mongo_ts_cmp(h, w) >= 0;
}

int sy_mongo_position_poll(void **handle, const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out,
                           size_t outlen, char *err, size_t errlen)
{
    mongoc_client_t *c = *handle;
    if (c == NULL && (c = sy_mongo_connect(cfg, src, 2000, err, errlen)) == NULL)
        return -1;
    *handle = c;
    if (newest(c, out, outlen, err, errlen) != 0) {
        mongoc_client_destroy(c);
        *handle = NULL; /* reconnect next time */
        return -1;
    }
    return 0;
}

void sy_mongo_position_poll_close(void *handle)
{
    if (handle != NULL)
        mongoc_client_destroy(handle);
}
