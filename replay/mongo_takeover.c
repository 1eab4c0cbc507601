/* A new owner takes a MongoDB instance over (core/takeover.c): the destination's checkpoint document
 * {_id: instance, seq, position} in switchyard.checkpoints says where to resume; the records after it are
 * collected again and replayed up to the source's newest oplog entry read by the writer before its first
 * change (core/engine.h SY_UNTIL_FIRST_CHANGE), their conflicts overwritten. In a cluster the document
 * first gets the new owner's fencing token (`owner_token`, one conditional update: atomic on one document).
 * What that fences (replay/mongo_writer.c): an older owner's checkpoint writes, which are conditional on the
 * token, and its batches that start after the claim (each checks the token first). Not a batch already
 * past that check: FerretDB v1 has no multi-document transactions to tie its writes to the check. */
#include <stdio.h>
#include <string.h>

#include "core/engine.h"
#include "engine/mongo_client.h"
#include "replay/mongo_modules.h"

#define TAKEOVER_TIMEOUT_MS 10000

/* The filter of the document an owner with `token` may write: its token is not above it (or it has none:
 * written before the fencing token). */
void sy_mongo_checkpoint_filter(bson_t *filter, const char *instance_id, uint64_t token)
{
    bson_t or, a, b, lte, none;
    BSON_APPEND_UTF8(filter, "_id", instance_id);
    BSON_APPEND_ARRAY_BEGIN(filter, "$or", &or);
    BSON_APPEND_DOCUMENT_BEGIN(&or, "0", &a);
    BSON_APPEND_DOCUMENT_BEGIN(&a, "owner_token", &lte);
    BSON_APPEND_INT64(&lte, "$lte", (int64_t)token);
    bson_append_document_end(&a, &lte);
    bson_append_document_end(&or, &a);
    BSON_APPEND_DOCUMENT_BEGIN(&or, "1", &b);
    BSON_APPEND_DOCUMENT_BEGIN(&b, "owner_token", &none);
    BSON_APPEND_BOOL(&none, "$exists", false);
    bson_append_document_end(&b, &none);
    bson_append_document_end(&or, &b);
    bson_append_array_end(filter, &or);
}

int sy_mongo_checkpoint_read(mongoc_client_t *c, const char *instance_id, bool *found, uint64_t *seq,
                             char *position, size_t poslen, uint64_t *token, bson_error_t *e)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(c, SY_MONGO_DB, SY_MONGO_CHECKPOINTS);
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "_id", instance_id);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, NULL, NULL);
    const bson_t *doc;
    *found = mongoc_cursor_next(cur, &doc);
    *seq = *token = 0;
    position[0] = '\0';
    if (*found) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "seq"))
            *seq = (uint64_t)bson_iter_as_int64(&it);
        if (bson_iter_init_find(&it, doc, "position") && BSON_ITER_HOLDS_UTF8(&it))
            snprintf(position, poslen, "%s", bson_iter_utf8(&it, NULL));
        if (bson_iter_init_find(&it, doc, "owner_token"))
            *token = (uint64_t)bson_iter_as_int64(&it);
    }
    int rc = !*found && mongoc_cursor_error(cur, e) ? -1 : 0;
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    mongoc_collection_destroy(coll);
    return rc;
}

int sy_mongo_checkpoint_claim(mongoc_client_t *c, const char *instance_id, uint64_t token, bool *claimed,
                              bson_error_t *e)
{
    mongoc_collection_t *coll = mongoc_client_get_collection(c, SY_MONGO_DB, SY_MONGO_CHECKPOINTS);
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, reply;
    sy_mongo_checkpoint_filter(&filter, instance_id, token);
    BSON_APPEND_DOCUMENT_BEGIN(&update, "$set", &set);
    BSON_APPEND_INT64(&set, "owner_token", (int64_t)token);
    bson_append_document_end(&update, &set);
    bool ok = mongoc_collection_update_one(coll, &filter, &update, NULL, &reply, e);
    bson_iter_t it;
    *claimed = ok && bson_iter_init_find(&it, &reply, "matchedCount") && bson_iter_as_int64(&it) > 0;
    bson_destroy(&reply);
    bson_destroy(&filter);
    bson_destroy(&update);
    mongoc_collection_destroy(coll);
    return ok ? 0 : -1;
}

int sy_mongo_takeover(const struct sy_pair_cfg *cfg, const char *instance_id, const struct sy_endpoint *src,
                      const struct sy_endpoint *dest, struct sy_takeover_point *out, char *err, size_t errlen)
{
    (void)src; /* the takeover needs the destination only (a site lost with its owner node) */
    char e[512];
    bson_error_t be;
    out->found = false;
    mongoc_client_t *c = sy_mongo_connect(cfg, dest, TAKEOVER_TIMEOUT_MS, e, sizeof e);
    if (c == NULL) {
        snprintf(err, errlen, "destination: %s", e);
        return -1;
    }
    int rc = -1;
    bool found = false, claimed = true;
    uint64_t held = 0;
    if (out->owner_token != 0 && sy_mongo_checkpoint_claim(c, instance_id, out->owner_token, &claimed, &be) != 0)
        goto failed;
    if (sy_mongo_checkpoint_read(c, instance_id, &found, &out->spool_seq, out->position, sizeof out->position,
                                 &held, &be) != 0)
        goto failed;
    if (!found || out->position[0] == '\0') { /* none, or written before anything was applied */
        rc = 0;
        goto done;
    }
    if (!claimed) {
        snprintf(err, errlen, "destination %s:%u: its checkpoint names owner token %llu, above this node's %llu: a "
                 "newer owner took the pair over (or etcd was recreated from scratch, restarting its revisions: then "
                 "set owner_token to 0 in " SY_MONGO_DB "." SY_MONGO_CHECKPOINTS " once no old owner runs)",
                 dest->host, dest->port, (unsigned long long)held, (unsigned long long)out->owner_token);
        goto done;
    }
    snprintf(out->until, sizeof out->until, "%s", SY_UNTIL_FIRST_CHANGE);
    out->found = true;
    rc = 0;
    goto done;
failed:
    snprintf(err, errlen, "destination %s:%u: %s", dest->host, dest->port, be.message);
done:
    mongoc_client_destroy(c);
    return rc;
}
