/* The MongoDB source's positions: the newest oplog entry's `ts` (where a new reverse instance starts
 * collecting), and comparing two of them. No lag poll: finding the newest entry reads the whole oplog on
 * FerretDB (any sort is done in memory), so lag comes from the collector's own reports. */
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
    mongoc_client_t *c = sy_mongo_connect(cfg, src, 30000, err, errlen);
    if (c == NULL)
        return -1;
    int rc = newest(c, out, outlen, err, errlen);
    mongoc_client_destroy(c);
    return rc;
}

/* `have` may be an ack ledger that names writes it has not seen in the oplog (engine/mongo_acks.h,
 * "sec:inc and N ..."): as `want` it is covered by nothing; as `have` (a failover's tail: which entries
 * were acknowledged) its position counts. */
bool sy_mongo_position_covers(const char *have, const char *want)
{
    struct sy_mongo_ts h, w;
    char head[32];
    snprintf(head, sizeof head, "%.*s", (int)strcspn(have, " "), have);
    return sy_mongo_ts_parse(head, &h) && sy_mongo_ts_parse(want, &w) && sy_mongo_ts_cmp(h, w) >= 0;
}
