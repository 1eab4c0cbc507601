/* "Fencing" a MongoDB side. Neither FerretDB nor MongoDB can be made read-only for everyone but
 * Switchyard's writer (FerretDB has no such switch at all; MongoDB's fsyncLock stops the writer too), so a
 * MongoDB pair is never fenced (the engine declares it: fence_passive defaults off and cannot be set on): a
 * switch relies on the proxy's hold, which has stopped every client request and seen every reply in
 * flight before this is called. Fencing on therefore only gives the side's final position, made safe
 * against FerretDB's out-of-order oplog: it writes a mark (`switchyard.fence`, _id = the pair) that takes
 * the server's current timestamp ($currentDate {$type: "timestamp"}) and reads it back in the same
 * findAndModify. FerretDB draws that timestamp and every oplog entry's ts from one process-wide counter, so
 * the mark's value is above every acknowledged write's entry (logged before the write was answered) and
 * below the mark's own entry; a collector that has taken the mark's entry has taken every entry committed
 * before it in the same read. A drain up to this position has applied every acknowledged write — even one
 * whose entry landed behind a newer one — and the fence never reads the oplog (FerretDB reads it whole:
 * ~0.1 ms an entry). The mark also tells the side's collector to poll fast until it has taken it
 * (engine/mongo_acks.h: hurry). Fencing off has nothing to undo. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "capture/mongo_modules.h"
#include "core/collect.h"
#include "engine/mongo_acks.h"
#include "engine/mongo_client.h"

#define FENCE_HURRY_MS 5000   /* the collector polls fast at most this long after a mark */

/* The mark's timestamp from a findAndModify reply ({value: {ts}}). */
static bool mark_ts(const bson_t *reply, struct sy_mongo_ts *ts)
{
    bson_iter_t it;
    if (!bson_iter_init(&it, reply) || !bson_iter_find_descendant(&it, "value.ts", &it) ||
        !BSON_ITER_HOLDS_TIMESTAMP(&it))
        return false;
    bson_iter_timestamp(&it, &ts->t, &ts->i);
    return true;
}

/* The fence's connection to each side of each pair, kept between switches: a new one (TCP, hello, SCRAM)
 * was most of the fence's time inside the hold. Only a pair's switch thread uses its own (one switch per
 * pair at a time); the table itself is shared. Never freed: it lives as long as the process. */
struct kept {
    char pair[sizeof ((struct sy_pair_cfg *)0)->name];
    bool dr;
    mongoc_client_t *c;
};
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kept kept[2 * SY_MAX_PAIRS];

static mongoc_client_t **kept_client(const struct sy_pair_cfg *cfg, bool dr)
{
    mongoc_client_t **out = NULL;
    pthread_mutex_lock(&kept_lock);
    for (size_t i = 0; i < sizeof kept / sizeof kept[0] && out == NULL; i++) {
        if (kept[i].pair[0] == '\0') {
            snprintf(kept[i].pair, sizeof kept[i].pair, "%s", cfg->name);
            kept[i].dr = dr;
        }
        if (kept[i].dr == dr && strcmp(kept[i].pair, cfg->name) == 0)
            out = &kept[i].c;
    }
    pthread_mutex_unlock(&kept_lock);
    return out;
}

/* Writes the mark and reads its timestamp back: 0, or -1 with err. */
static int write_mark(mongoc_client_t *c, const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep,
                      struct sy_mongo_ts *ts, char *err, size_t errlen)
{
    mongoc_collection_t *marks = mongoc_client_get_collection(c, SY_MONGO_DB, SY_MONGO_FENCE_COLL);
    bson_t sel = BSON_INITIALIZER, update = BSON_INITIALIZER, cd, tsdoc, reply; /* whole document back:
                                                                               FerretDB has no `fields` */
    BSON_APPEND_UTF8(&sel, "_id", cfg->name);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$currentDate", &cd);
    BSON_APPEND_DOCUMENT_BEGIN(&cd, "ts", &tsdoc);
    BSON_APPEND_UTF8(&tsdoc, "$type", "timestamp");
    bson_append_document_end(&cd, &tsdoc);
    bson_append_document_end(&update, &cd);
    mongoc_find_and_modify_opts_t *opts = mongoc_find_and_modify_opts_new();
    mongoc_find_and_modify_opts_set_update(opts, &update);
    mongoc_find_and_modify_opts_set_flags(opts, MONGOC_FIND_AND_MODIFY_UPSERT | MONGOC_FIND_AND_MODIFY_RETURN_NEW);
    bson_error_t e;
    int rc = 0;
    if (!mongoc_collection_find_and_modify_with_opts(marks, &sel, opts, &reply, &e)) {
        snprintf(err, errlen, "%s:%u: writing the fence mark: %s", ep->host, ep->port, e.message);
        rc = -1;
    } else if (!mark_ts(&reply, ts)) {
        snprintf(err, errlen, "%s:%u: the fence mark came back without its timestamp", ep->host, ep->port);
        rc = -1;
    }
    bson_destroy(&reply);
    mongoc_find_and_modify_opts_destroy(opts);
    bson_destroy(&sel);
    bson_destroy(&update);
    mongoc_collection_destroy(marks);
    return rc;
}

int sy_mongo_fence(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, bool on, int wait_ms, char *pos,
                   size_t poslen, char *err, size_t errlen)
{
    if (!on || pos == NULL)
        return 0;
    bool dr = ep != &cfg->business;
    struct sy_mongo_acks *acks = sy_mongo_acks_of(cfg->name, dr ? SY_SIDE_DR : SY_SIDE_BUSINESS);
    if (acks != NULL)
        sy_mongo_acks_hurry(acks, sy_wall_ms() + FENCE_HURRY_MS);
    mongoc_client_t **c = kept_client(cfg, dr);
    struct sy_mongo_ts ts = { 0, 0 };
    int rc = -1;
    snprintf(err, errlen, "out of memory");
    for (int attempt = 0; c != NULL && attempt < 2 && rc != 0; attempt++) {
        bool reused = *c != NULL;
        if (!reused && (*c = sy_mongo_connect(cfg, ep, wait_ms > 1000 ? wait_ms : 1000, err, errlen)) == NULL)
            break;
        rc = write_mark(*c, cfg, ep, &ts, err, errlen);
        if (rc != 0) {                        /* a kept connection may have gone stale: one new try */
            mongoc_client_destroy(*c);
            *c = NULL;
            if (!reused)
                break;
        }
    }
    if (rc == 0)
        sy_mongo_ts_format(ts, pos, poslen);
    else if (acks != NULL)
        sy_mongo_acks_hurry(acks, 0);
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
