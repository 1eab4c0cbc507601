/* Initial Synchronization for MongoDB (issue 10 item 11): the source oplog's newest `ts` is read first
 * and becomes the position the collection starts from; then the users, then every synchronized
 * collection, copied while the source keeps taking writes. MongoDB (and FerretDB) offer no snapshot
 * across collections, so a document may be copied in a state newer than that position: applying the
 * oplog from the position again is idempotent (upsert/replace/delete by _id) and closes the overlap.
 *
 * Order: admin.system.users first (replace by _id: the proxy's SCRAM pass-through needs the same salt
 * and keys on both sides; users only on the destination are left alone); then per collection, sorted
 * by name: dropped on the destination and created again with the source's options, its indexes
 * (listIndexes -> createIndexes, _id_ aside), its documents in _id order, COPY_BATCH per bulk insert
 * (into a new collection: FerretDB's upserts are 200 times slower). An attempt always starts from scratch (new position, collections
 * dropped), so a retry, a restart or a kill -9 in the middle ends with the destination equal to the
 * source. Progress: done_rows / total_rows (estimated counts). Database sockets are not published for
 * a stop (libmongoc does not expose them): a stop is seen between batches; a call in flight ends at the
 * socket timeout. */
#include "replay/mongo_initial_sync.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "engine/mongo_client.h"

#define COPY_BATCH 1000        /* documents per bulk write */
#define TIMEOUT_MS 60000       /* connect and each socket read */
#define SETTLE_MS 1000         /* after the position, before the copy reads (take_position) */

struct isync {
    struct sy_module_ctx *ctx;       /* ref */
    const struct sy_pair_cfg *cfg;   /* ref: ctx->cfg */
    mongoc_client_t *src, *dst;      /* owned during an attempt */
    char position[64];               /* the source oplog's newest ts, read before anything is copied */
    char err[1024];                  /* why the attempt failed */
    bool transient;                  /* the failure was about reaching a server: retry */
    uint64_t done, total;
};

static bool stopping(const struct isync *s)
{
    return __atomic_load_n(s->ctx->stop, __ATOMIC_ACQUIRE) != 0;
}

static void progress(struct isync *s)
{
    sy_module_report_progress(s->ctx->report, s->done, s->total);
}

/* Records why the attempt fails ("reading db.c on the source: <why>"); -1. */
static int failed(struct isync *s, const bson_error_t *e, const char *verb, const char *ns, const char *where)
{
    snprintf(s->err, sizeof s->err, "%s %s%s%s: %s", verb, ns, where[0] ? " " : "", where, e->message);
    s->transient = sy_mongo_is_transient(e);
    return -1;
}

/* The source's position: its oplog's newest ts ("0:0" while empty: every later entry is new). */
static int take_position(struct isync *s)
{
    struct sy_mongo_ts ts = { 0, 0 };
    char err[600];
    if (sy_mongo_oplog_edge(s->src, true, &ts, err, sizeof err) < 0) {
        /* a lost server is retried; an oplog that does not exist is for the operator */
        bson_t ping = BSON_INITIALIZER;
        BSON_APPEND_INT32(&ping, "ping", 1);
        bson_error_t e;
        s->transient = !mongoc_client_command_simple(s->src, "admin", &ping, NULL, NULL, &e) &&
                       sy_mongo_is_transient(&e);
        bson_destroy(&ping);
        snprintf(s->err, sizeof s->err, "source position: %s", err);
        return -1;
    }
    sy_mongo_ts_format(ts, s->position, sizeof s->position);
    sy_log_info("%s: initial synchronization from source oplog position %s", s->ctx->instance_id, s->position);
    /* FerretDB gives an entry its ts before the entry is stored: under concurrent writes one with a lower
     * ts is stored after one with a higher ts (measured: about 1 in 1600 entries, a few increments apart).
     * A write in flight now may so carry a ts below the position and be collected from nowhere; waiting
     * before the copy reads anything lets such writes finish, so the copy sees them. */
    for (int waited = 0; waited < SETTLE_MS && !stopping(s); waited += 50)
        usleep(50 * 1000);
    return 0;
}

/* Appends a replace-with-upsert by _id of doc to bulk. */
static bool bulk_replace(mongoc_bulk_operation_t *bulk, const bson_t *doc, bson_error_t *e)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, "_id")) {
        bson_set_error(e, MONGOC_ERROR_BSON, MONGOC_ERROR_BSON_INVALID, "a document without _id");
        return false;
    }
    bson_t sel = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    bson_append_iter(&sel, "_id", 3, &it);
    BSON_APPEND_BOOL(&opts, "upsert", true);
    bool ok = mongoc_bulk_operation_replace_one_with_opts(bulk, &sel, doc, &opts, e);
    bson_destroy(&sel);
    bson_destroy(&opts);
    return ok;
}

/* Whether a failed bulk write only met documents already there (11000: the source cursor, no snapshot,
 * returned a document twice; the oplog from the position brings its last state anyway). */
static bool only_duplicates(const bson_t *reply)
{
    bson_iter_t it, errs;
    if (!bson_iter_init_find(&it, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &errs))
        return false;
    size_t n = 0;
    while (bson_iter_next(&errs)) {
        bson_iter_t code;
        if (!BSON_ITER_HOLDS_DOCUMENT(&errs) || !bson_iter_recurse(&errs, &code) || !bson_iter_find(&code, "code") ||
            bson_iter_as_int64(&code) != 11000)
            return false;
        n++;
    }
    bson_iter_t wce;
    return n > 0 && !(bson_iter_init_find(&wce, reply, "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY(&wce) &&
                      bson_iter_recurse(&wce, &errs) && bson_iter_next(&errs));
}

/* Copies every document of src db.coll into the (new, empty) destination collection in _id order, as
 * unordered bulk inserts of COPY_BATCH (FerretDB 1.24: 1000 inserts ~0.07 s, 1000 replace-upserts by
 * _id ~14 s). 0, 1 stopped, -1. */
static int copy_documents(struct isync *s, const char *db, const char *coll, const char *ns)
{
    mongoc_collection_t *from = mongoc_client_get_collection(s->src, db, coll);
    mongoc_collection_t *to = mongoc_client_get_collection(s->dst, db, coll);
    mongoc_cursor_t *cur = sy_mongo_find_in_id_order(from, COPY_BATCH);
    bson_t bulk_opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&bulk_opts, "ordered", false);
    mongoc_bulk_operation_t *bulk = NULL;
    size_t n = 0;
    const bson_t *doc;
    bson_error_t e;
    int rc = 0;
    for (;;) {
        bool more = mongoc_cursor_next(cur, &doc);
        if (more) {
            if (bulk == NULL)
                bulk = mongoc_collection_create_bulk_operation_with_opts(to, &bulk_opts);
            if (!mongoc_bulk_operation_insert_with_opts(bulk, doc, NULL, &e)) {
                rc = failed(s, &e, "copying", ns, "");
                break;
            }
            n++;
        } else if (mongoc_cursor_error(cur, &e)) {
            rc = failed(s, &e, "reading", ns, "on the source");
            break;
        }
        if (n > 0 && (n == COPY_BATCH || !more)) {
            bson_t reply;
            bool ok = mongoc_bulk_operation_execute(bulk, &reply, &e) != 0 || only_duplicates(&reply);
            bson_destroy(&reply);
            mongoc_bulk_operation_destroy(bulk);
            bulk = NULL;
            if (!ok) {
                rc = failed(s, &e, "writing", ns, "on the destination");
                break;
            }
            s->done += n;
            n = 0;
            progress(s);
        }
        if (!more)
            break;
        if (stopping(s)) {
            rc = 1;
            break;
        }
    }
    if (bulk != NULL)
        mongoc_bulk_operation_destroy(bulk);
    bson_destroy(&bulk_opts);
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(from);
    mongoc_collection_destroy(to);
    return rc;
}

/* The source collection's options (capped, size, ...), as listCollections gives them. */
static int source_options(struct isync *s, const char *db, const char *coll, const char *ns, bson_t *out)
{
    bson_t info;
    bson_error_t e;
    bson_init(out);
    if (sy_mongo_collection_info(s->src, db, coll, &info, &e) < 0) {
        bson_destroy(&info);
        return failed(s, &e, "listing", ns, "on the source");
    }
    bson_iter_t it;
    if (bson_iter_init_find(&it, &info, "options") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
        const uint8_t *data;
        uint32_t len;
        bson_iter_document(&it, &len, &data);
        bson_t o;
        if (bson_init_static(&o, data, len))
            bson_copy_to_excluding_noinit(&o, out, "idIndex", NULL); /* createCollection refuses it */
    }
    bson_destroy(&info);
    return 0;
}

/* The destination's collection made afresh: dropped, created with the source's options, indexes. */
static int prepare_collection(struct isync *s, const char *db, const char *coll, const char *ns)
{
    bson_t options;
    if (source_options(s, db, coll, ns, &options) != 0) {
        bson_destroy(&options);
        return -1;
    }
    bson_error_t e;
    mongoc_collection_t *to = mongoc_client_get_collection(s->dst, db, coll);
    bool ok = mongoc_collection_drop_with_opts(to, NULL, &e) || e.code == 26; /* 26: NamespaceNotFound */
    mongoc_collection_destroy(to);
    if (!ok) {
        bson_destroy(&options);
        return failed(s, &e, "dropping", ns, "on the destination");
    }
    mongoc_database_t *d = mongoc_client_get_database(s->dst, db);
    to = mongoc_database_create_collection(d, coll, &options, &e);
    bson_destroy(&options);
    if (to == NULL) {
        mongoc_database_destroy(d);
        return failed(s, &e, "creating", ns, "on the destination");
    }
    mongoc_collection_destroy(to);

    /* indexes: every spec but _id_ (created with the collection), without its version and namespace */
    mongoc_collection_t *from = mongoc_client_get_collection(s->src, db, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(from, NULL);
    bson_t cmd = BSON_INITIALIZER, list;
    BSON_APPEND_UTF8(&cmd, "createIndexes", coll);
    BSON_APPEND_ARRAY_BEGIN(&cmd, "indexes", &list);
    const bson_t *spec;
    unsigned n = 0;
    while (mongoc_cursor_next(cur, &spec)) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, spec, "name") && BSON_ITER_HOLDS_UTF8(&it) &&
            strcmp(bson_iter_utf8(&it, NULL), "_id_") == 0)
            continue;
        char key[16];
        const char *k;
        bson_uint32_to_string(n++, &k, key, sizeof key);
        bson_t one;
        bson_append_document_begin(&list, k, -1, &one);
        bson_copy_to_excluding_noinit(spec, &one, "v", "ns", NULL);
        bson_append_document_end(&list, &one);
    }
    bson_append_array_end(&cmd, &list);
    int rc = 0;
    if (mongoc_cursor_error(cur, &e))
        rc = failed(s, &e, "listing the indexes of", ns, "on the source");
    else if (n > 0 && !mongoc_database_write_command_with_opts(d, &cmd, NULL, NULL, &e))
        rc = failed(s, &e, "creating the indexes of", ns, "on the destination");
    else if (n > 0)
        sy_log_info("%s: %s: %u index(es) created", s->ctx->instance_id, ns, n);
    bson_destroy(&cmd);
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(from);
    mongoc_database_destroy(d);
    return rc;
}

/* admin.system.users of the source into the destination, replaced by _id. */
static int copy_users(struct isync *s)
{
    mongoc_collection_t *from = mongoc_client_get_collection(s->src, "admin", "system.users");
    mongoc_collection_t *to = mongoc_client_get_collection(s->dst, "admin", "system.users");
    bson_t filter = BSON_INITIALIZER;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(from, &filter, NULL, NULL);
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(to, NULL);
    const bson_t *doc;
    bson_error_t e;
    unsigned n = 0;
    int rc = 0;
    while (rc == 0 && mongoc_cursor_next(cur, &doc)) {
        if (!bulk_replace(bulk, doc, &e))
            rc = failed(s, &e, "copying", "admin.system.users", "");
        n++;
    }
    if (rc == 0 && mongoc_cursor_error(cur, &e))
        rc = failed(s, &e, "reading", "admin.system.users", "on the source");
    if (rc == 0 && n > 0) {
        bson_t reply;
        if (!mongoc_bulk_operation_execute(bulk, &reply, &e))
            rc = failed(s, &e, "writing", "admin.system.users", "on the destination");
        bson_destroy(&reply);
    }
    if (rc == 0)
        sy_log_info("%s: %u user(s) of admin.system.users copied", s->ctx->instance_id, n);
    mongoc_bulk_operation_destroy(bulk);
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    mongoc_collection_destroy(from);
    mongoc_collection_destroy(to);
    return rc;
}

/* A new copy starts a new history of the instance: a checkpoint an earlier one left on the destination
 * (terminated, created again) must not make the writer skip records of the new spool, and the record
 * of an earlier copy's overlap (SY_MONGO_COPIES) goes until this copy is done. */
static int forget_history(struct isync *s)
{
    static const char *const colls[] = { SY_MONGO_CHECKPOINTS, SY_MONGO_COPIES };
    int rc = 0;
    for (size_t i = 0; i < 2 && rc == 0; i++) {
        mongoc_collection_t *c = mongoc_client_get_collection(s->dst, SY_MONGO_DB, colls[i]);
        bson_t sel = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&sel, "_id", s->ctx->instance_id);
        bson_error_t e;
        if (!mongoc_collection_delete_one(c, &sel, NULL, NULL, &e))
            rc = failed(s, &e, "clearing", colls[i], "in " SY_MONGO_DB " on the destination");
        bson_destroy(&sel);
        mongoc_collection_destroy(c);
    }
    return rc;
}

/* After the copy: the source's newest ts now ends the overlap (engine/mongo_client.h, SY_MONGO_COPIES),
 * recorded on the destination for the writer. */
static int record_overlap(struct isync *s)
{
    struct sy_mongo_ts end = { 0, 0 };
    char err[600];
    if (sy_mongo_oplog_edge(s->src, true, &end, err, sizeof err) < 0) {
        snprintf(s->err, sizeof s->err, "source position after the copy: %s", err);
        return -1;
    }
    char text[64];
    sy_mongo_ts_format(end, text, sizeof text);
    mongoc_collection_t *c = mongoc_client_get_collection(s->dst, SY_MONGO_DB, SY_MONGO_COPIES);
    bson_t sel = BSON_INITIALIZER, doc = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&sel, "_id", s->ctx->instance_id);
    BSON_APPEND_UTF8(&doc, "_id", s->ctx->instance_id);
    BSON_APPEND_UTF8(&doc, "start", s->position);
    BSON_APPEND_UTF8(&doc, "end", text);
    BSON_APPEND_BOOL(&opts, "upsert", true);
    bson_error_t e;
    int rc = 0;
    if (!mongoc_collection_replace_one(c, &sel, &doc, &opts, NULL, &e))
        rc = failed(s, &e, "recording the copy's overlap in", SY_MONGO_DB "." SY_MONGO_COPIES, "on the destination");
    else
        sy_log_info("%s: the copy overlaps the oplog from %s to %s: entries up to %s may meet documents it "
                    "already shows changed", s->ctx->instance_id, s->position, text, text);
    bson_destroy(&sel);
    bson_destroy(&doc);
    bson_destroy(&opts);
    mongoc_collection_destroy(c);
    return rc;
}

/* One attempt: 0 done, 1 stopped, -1 failed (s->transient: retry). */
static int attempt(struct isync *s)
{
    s->done = s->total = 0;
    s->transient = true;
    char err[700];
    /* watched: a stop cuts a copy blocked on a server that stopped answering (engine/mongo_stream.h) */
    if ((s->src = sy_mongo_connect_watched(s->cfg, s->ctx->source, TIMEOUT_MS, s->ctx, err, sizeof err)) == NULL ||
        (s->dst = sy_mongo_connect_watched(s->cfg, s->ctx->dest, TIMEOUT_MS, s->ctx, err, sizeof err)) == NULL) {
        snprintf(s->err, sizeof s->err, "%s: %s", s->src == NULL ? "source" : "destination", err);
        return -1; /* an unreachable side or a refused login: retried within retry_seconds */
    }
    if (forget_history(s) != 0 || take_position(s) != 0 || copy_users(s) != 0)
        return -1;
    bson_error_t e;
    char **colls = sy_mongo_synced_collections(s->src, s->cfg, &e, err, sizeof err);
    if (colls == NULL) {
        snprintf(s->err, sizeof s->err, "source: %s", err);
        s->transient = sy_mongo_is_transient(&e);
        return -1;
    }
    size_t n = 0;
    for (; colls[n] != NULL; n++) {
        char db[128];
        const char *coll;
        if (!sy_mongo_ns_split(colls[n], db, sizeof db, &coll))
            continue;
        mongoc_collection_t *c = mongoc_client_get_collection(s->src, db, coll);
        int64_t count = mongoc_collection_estimated_document_count(c, NULL, NULL, NULL, &e);
        mongoc_collection_destroy(c);
        if (count > 0)
            s->total += (uint64_t)count;
    }
    progress(s);
    sy_log_info("%s: initial synchronization of %zu collection(s), about %llu document(s)", s->ctx->instance_id,
                n, (unsigned long long)s->total);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char db[128];
        const char *coll;
        if (!sy_mongo_ns_split(colls[i], db, sizeof db, &coll))
            continue;
        if (stopping(s))
            rc = 1;
        else if ((rc = prepare_collection(s, db, coll, colls[i])) == 0)
            rc = copy_documents(s, db, coll, colls[i]);
    }
    bson_strfreev(colls);
    return rc == 0 ? record_overlap(s) : rc;
}

static void *isync_main(void *arg)
{
    struct isync *s = bson_malloc0(sizeof *s);
    s->ctx = arg;
    s->cfg = s->ctx->cfg;
    int backoff_ms = 200;
    for (;;) {
        int rc = attempt(s);
        if (s->src != NULL)
            mongoc_client_destroy(s->src);
        if (s->dst != NULL)
            mongoc_client_destroy(s->dst);
        s->src = s->dst = NULL;
        if (rc == 0) {
            sy_log_info("%s: initial synchronization copied %llu document(s)", s->ctx->instance_id,
                        (unsigned long long)s->done);
            sy_module_report_sync_done(s->ctx->report, s->position);
            break;
        }
        if (rc == 1 || stopping(s))
            break;
        if (!s->transient) {
            sy_module_report_failed(s->ctx->report, "initial_sync_failed", "%s", s->err);
            break;
        }
        sy_module_report_retrying(s->ctx->report, "unreachable", "%s (the copy starts again)", s->err);
        for (int waited = 0; waited < backoff_ms && !stopping(s); waited += 50)
            usleep(50 * 1000);
        if (backoff_ms < 2000)
            backoff_ms *= 2;
        if (stopping(s))
            break;
        sy_module_report_running(s->ctx->report);
    }
    bson_free(s);
    return NULL;
}

const struct sy_module_ops sy_mongo_initial_sync = { "initial_sync", isync_main };
