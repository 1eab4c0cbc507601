/* A new instance of an id that an earlier one used (create-reverse after a terminate; core/engine.h
 * sy_sync_ops.forget): the destination resets that one's checkpoint document (seq 0, no position: no
 * history; the owner token kept, at least this node's, so that an older owner's writer that opens a session
 * now is fenced instead of starting a history of its own) and forgets an initial copy's overlap record. Left there, the new writer would resume from the old seq — skipping the new
 * spool's first records — and a new owner's takeover from the old position. A document naming an owner
 * token above this node's is a newer owner's (this node lost the pair): kept (the delete is conditional
 * on the token, atomic on one document). */
#include <stdio.h>
#include <string.h>

#include "core/engine.h"
#include "engine/mongo_client.h"
#include "replay/mongo_modules.h"

#define FORGET_TIMEOUT_MS 10000

int sy_mongo_forget(const struct sy_pair_cfg *cfg, const char *instance_id, const struct sy_endpoint *dest,
                    uint64_t owner_token, char *err, size_t errlen)
{
    char e[512], position[64];
    mongoc_client_t *c = sy_mongo_connect(cfg, dest, FORGET_TIMEOUT_MS, e, sizeof e);
    if (c == NULL) {
        snprintf(err, errlen, "destination: %s", e);
        return -1;
    }
    mongoc_collection_t *ckpt = mongoc_client_get_collection(c, SY_MONGO_DB, SY_MONGO_CHECKPOINTS);
    mongoc_collection_t *copies = mongoc_client_get_collection(c, SY_MONGO_DB, SY_MONGO_COPIES);
    bson_t mine = BSON_INITIALIZER, id = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&id, "_id", instance_id);
    if (owner_token != 0)
        sy_mongo_checkpoint_filter(&mine, instance_id, owner_token);
    else
        BSON_APPEND_UTF8(&mine, "_id", instance_id);
    bson_error_t be;
    bool found = false;
    uint64_t seq = 0, held = 0;
    int rc = -1;
    bson_t reset = BSON_INITIALIZER, set;
    BSON_APPEND_DOCUMENT_BEGIN(&reset, "$set", &set);
    BSON_APPEND_INT64(&set, "seq", 0);
    BSON_APPEND_UTF8(&set, "position", "");
    if (owner_token != 0)
        BSON_APPEND_INT64(&set, "owner_token", (int64_t)owner_token);
    bson_append_document_end(&reset, &set);
    bool ok = mongoc_collection_update_one(ckpt, &mine, &reset, NULL, NULL, &be);
    bson_destroy(&reset);
    if (!ok || sy_mongo_checkpoint_read(c, instance_id, &found, &seq, position, sizeof position, &held, &be) != 0 ||
        !mongoc_collection_delete_one(copies, &id, NULL, NULL, &be)) {
        snprintf(err, errlen, "destination %s:%u: %s", dest->host, dest->port, be.message);
    } else if (found && (seq != 0 || position[0] != '\0')) { /* not reset: its token is above this node's */
        sy_forget_newer_owner(err, errlen, dest, instance_id, held, owner_token);
        rc = -2;
    } else {
        rc = 0;
    }
    bson_destroy(&mine);
    bson_destroy(&id);
    mongoc_collection_destroy(copies);
    mongoc_collection_destroy(ckpt);
    mongoc_client_destroy(c);
    return rc;
}
