/* libmongoc helpers for module threads: admin connections, error classification, oplog positions
 * and the `objects` filter (engine/mongo_client.h). */
#include "engine/mongo_client.h"
#include "engine/mongo_stream.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mongoc_client_t *sy_mongo_connect(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, int timeout_ms,
                                  char *err, size_t errlen)
{
    return sy_mongo_connect_watched(cfg, ep, timeout_ms, NULL, err, errlen);
}

mongoc_client_t *sy_mongo_connect_watched(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep,
                                          int timeout_ms, const struct sy_module_ctx *ctx, char *err, size_t errlen)
{
    if (timeout_ms <= 0)
        timeout_ms = 10000;
    mongoc_uri_t *uri = mongoc_uri_new_for_host_port(ep->host, ep->port);
    if (uri == NULL) {
        snprintf(err, errlen, "%s:%u: not a usable address", ep->host, ep->port);
        return NULL;
    }
    mongoc_uri_set_username(uri, cfg->admin_user);
    mongoc_uri_set_password(uri, cfg->admin_password);
    mongoc_uri_set_auth_source(uri, "admin");
    mongoc_uri_set_auth_mechanism(uri, "SCRAM-SHA-256");
    mongoc_uri_set_option_as_bool(uri, MONGOC_URI_DIRECTCONNECTION, true);
    mongoc_uri_set_option_as_bool(uri, MONGOC_URI_RETRYWRITES, false); /* the writer retries whole batches */
    mongoc_uri_set_option_as_bool(uri, MONGOC_URI_RETRYREADS, false);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, timeout_ms);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, timeout_ms);
    mongoc_uri_set_option_as_int32(uri, MONGOC_URI_SOCKETTIMEOUTMS, timeout_ms);
    mongoc_uri_set_option_as_bool(uri, MONGOC_URI_SERVERSELECTIONTRYONCE, true);
    mongoc_client_t *c = mongoc_client_new_from_uri(uri);
    mongoc_uri_destroy(uri);
    if (c == NULL) {
        snprintf(err, errlen, "%s:%u: cannot create a client", ep->host, ep->port);
        return NULL;
    }
    mongoc_client_set_error_api(c, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_set_appname(c, "switchyard");
    if (ctx != NULL)
        sy_mongo_watch_sockets(c, ctx);
    bson_t ping = BSON_INITIALIZER;
    BSON_APPEND_INT32(&ping, "ping", 1);
    bson_error_t e;
    bool ok = mongoc_client_command_simple(c, "admin", &ping, NULL, NULL, &e);
    bson_destroy(&ping);
    if (!ok) {
        snprintf(err, errlen, "%s:%u: %s", ep->host, ep->port, e.message);
        mongoc_client_destroy(c);
        return NULL;
    }
    return c;
}

bool sy_mongo_is_transient(const bson_error_t *e)
{
    return e->domain == MONGOC_ERROR_STREAM || e->domain == MONGOC_ERROR_SERVER_SELECTION ||
           (e->domain == MONGOC_ERROR_PROTOCOL && e->code == MONGOC_ERROR_PROTOCOL_INVALID_REPLY);
}

static bool system_db(const char *db)
{
    return strcmp(db, "admin") == 0 || strcmp(db, "local") == 0 || strcmp(db, "config") == 0 ||
           strcmp(db, SY_MONGO_DB) == 0;
}

bool sy_mongo_ns_synced(const struct sy_pair_cfg *cfg, const char *db, const char *coll)
{
    if (system_db(db) || strncmp(coll, "system.", 7) == 0)
        return false;
    for (size_t i = 0; i < cfg->n_objects; i++) {
        const struct sy_object_pattern *o = &cfg->objects[i];
        if (strcmp(o->db, db) == 0 && (strcmp(o->table, "*") == 0 || strcmp(o->table, coll) == 0))
            return true;
    }
    return false;
}

bool sy_mongo_ns_split(const char *ns, char *db, size_t dblen, const char **coll)
{
    const char *dot = strchr(ns, '.');
    if (dot == NULL || dot == ns || (size_t)(dot - ns) >= dblen)
        return false;
    memcpy(db, ns, (size_t)(dot - ns));
    db[dot - ns] = '\0';
    *coll = dot + 1;
    return true;
}

bool sy_mongo_ts_parse(const char *s, struct sy_mongo_ts *out)
{
    unsigned long long t, i;
    int n = 0;
    if (s == NULL || sscanf(s, "%llu:%llu%n", &t, &i, &n) != 2 || s[n] != '\0' || s[0] < '0' || s[0] > '9' ||
        t > UINT32_MAX || i > UINT32_MAX || strchr(s, '-') != NULL || strchr(s, '+') != NULL ||
        strchr(s, ' ') != NULL)
        return false;
    out->t = (uint32_t)t;
    out->i = (uint32_t)i;
    return true;
}

void sy_mongo_ts_format(struct sy_mongo_ts ts, char *out, size_t outlen)
{
    snprintf(out, outlen, "%" PRIu32 ":%" PRIu32, ts.t, ts.i);
}

int sy_mongo_ts_cmp(struct sy_mongo_ts a, struct sy_mongo_ts b)
{
    if (a.t != b.t)
        return a.t < b.t ? -1 : 1;
    if (a.i != b.i)
        return a.i < b.i ? -1 : 1;
    return 0;
}

int sy_mongo_is_ferretdb(mongoc_client_t *c, bool *yes, bson_error_t *e)
{
    bson_t cmd = BSON_INITIALIZER, reply;
    BSON_APPEND_INT32(&cmd, "buildInfo", 1);
    bool ok = mongoc_client_command_simple(c, "admin", &cmd, NULL, &reply, e);
    bson_iter_t it;
    *yes = ok && bson_iter_init_find(&it, &reply, "ferretdbVersion");
    bson_destroy(&reply);
    bson_destroy(&cmd);
    return ok ? 0 : -1;
}

int sy_mongo_oplog_edge(mongoc_client_t *c, bool newest, struct sy_mongo_ts *out, char *err, size_t errlen)
{
    /* Natural order without a sort: FerretDB loads the whole collection into memory for any explicit sort
     * ($natural included) and pushes a limit down only without one. So the oldest entry is one row, and
     * the newest is the last of a streamed read (projected to ts). */
    mongoc_collection_t *coll = mongoc_client_get_collection(c, "local", SY_MONGO_OPLOG);
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, proj;
    if (!newest)
        BSON_APPEND_INT64(&opts, "limit", 1);
    else
        BSON_APPEND_INT32(&opts, "batchSize", 10000);
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
    BSON_APPEND_INT32(&proj, "ts", 1);
    bson_append_document_end(&opts, &proj);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
    const bson_t *doc;
    int rc = 0;
    while (rc >= 0 && mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "ts") && BSON_ITER_HOLDS_TIMESTAMP(&it)) {
            struct sy_mongo_ts ts;
            bson_iter_timestamp(&it, &ts.t, &ts.i);
            if (rc == 0 || sy_mongo_ts_cmp(ts, *out) > 0)
                *out = ts;
            rc = 1;
        } else {
            snprintf(err, errlen, "local.oplog.rs: an entry without a timestamp `ts`");
            rc = -1;
        }
    }
    bson_error_t e;
    if (rc >= 0 && mongoc_cursor_error(cur, &e)) {
        snprintf(err, errlen, "reading local.oplog.rs: %s", e.message);
        rc = -1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    bson_destroy(&opts);
    if (rc == 0) {
        /* an empty oplog and a missing one look alike to find: tell them apart */
        bson_t names_filter = BSON_INITIALIZER, names_opts = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&names_filter, "name", SY_MONGO_OPLOG);
        BSON_APPEND_DOCUMENT(&names_opts, "filter", &names_filter);
        mongoc_database_t *local = mongoc_client_get_database(c, "local");
        char **names = mongoc_database_get_collection_names_with_opts(local, &names_opts, &e);
        if (names == NULL) {
            snprintf(err, errlen, "listing local's collections: %s", e.message);
            rc = -1;
        } else if (names[0] == NULL) {
            snprintf(err, errlen, "local.oplog.rs does not exist (create it capped: the server logs no changes "
                                  "without it)");
            rc = -1;
        }
        bson_strfreev(names);
        mongoc_database_destroy(local);
        bson_destroy(&names_filter);
        bson_destroy(&names_opts);
    }
    mongoc_collection_destroy(coll);
    return rc;
}

static bool db_has_pattern(const struct sy_pair_cfg *cfg, const char *db)
{
    for (size_t i = 0; i < cfg->n_objects; i++)
        if (strcmp(cfg->objects[i].db, db) == 0)
            return true;
    return false;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char **sy_mongo_synced_collections(mongoc_client_t *c, const struct sy_pair_cfg *cfg, bson_error_t *e, char *err,
                                   size_t errlen)
{
    memset(e, 0, sizeof *e);
    char **dbs = mongoc_client_get_database_names_with_opts(c, NULL, e);
    if (dbs == NULL) {
        snprintf(err, errlen, "listing databases: %s", e->message);
        return NULL;
    }
    size_t n = 0, cap = 16;
    char **out = bson_malloc0(cap * sizeof *out);
    bool ok = true;
    for (size_t d = 0; ok && dbs[d] != NULL; d++) {
        if (!db_has_pattern(cfg, dbs[d]))
            continue;
        mongoc_database_t *db = mongoc_client_get_database(c, dbs[d]);
        bson_t opts = BSON_INITIALIZER, filter;
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "filter", &filter);
        BSON_APPEND_UTF8(&filter, "type", "collection");
        bson_append_document_end(&opts, &filter);
        char **names = mongoc_database_get_collection_names_with_opts(db, &opts, e);
        bson_destroy(&opts);
        mongoc_database_destroy(db);
        if (names == NULL) {
            snprintf(err, errlen, "listing the collections of %s: %s", dbs[d], e->message);
            ok = false;
            break;
        }
        for (size_t i = 0; names[i] != NULL; i++) {
            if (!sy_mongo_ns_synced(cfg, dbs[d], names[i]))
                continue;
            if (n + 1 >= cap) {
                cap *= 2;
                out = bson_realloc(out, cap * sizeof *out);
            }
            out[n++] = bson_strdup_printf("%s.%s", dbs[d], names[i]);
            out[n] = NULL;
        }
        bson_strfreev(names);
    }
    bson_strfreev(dbs);
    if (!ok) {
        bson_strfreev(out);
        return NULL;
    }
    qsort(out, n, sizeof *out, cmp_names);
    return out;
}

int sy_mongo_collection_info(mongoc_client_t *c, const char *db, const char *name, bson_t *out, bson_error_t *e)
{
    mongoc_database_t *d = mongoc_client_get_database(c, db);
    bson_t opts = BSON_INITIALIZER, filter;
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "filter", &filter);
    BSON_APPEND_UTF8(&filter, "name", name);
    bson_append_document_end(&opts, &filter);
    mongoc_cursor_t *cur = mongoc_database_find_collections_with_opts(d, &opts);
    const bson_t *doc;
    int rc = 0;
    if (mongoc_cursor_next(cur, &doc)) {
        bson_copy_to(doc, out);
        rc = 1;
    } else {
        bson_init(out);
        if (mongoc_cursor_error(cur, e))
            rc = -1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&opts);
    mongoc_database_destroy(d);
    return rc;
}

mongoc_cursor_t *sy_mongo_find_in_id_order(mongoc_collection_t *coll, int32_t batch_size)
{
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort;
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &sort);
    BSON_APPEND_INT32(&sort, "_id", 1);
    bson_append_document_end(&opts, &sort);
    BSON_APPEND_INT32(&opts, "batchSize", batch_size);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return cur;
}

int sy_mongo_copy_overlap_end(mongoc_client_t *dst, const char *instance_id, struct sy_mongo_ts *end, bson_error_t *e)
{
    mongoc_collection_t *c = mongoc_client_get_collection(dst, SY_MONGO_DB, SY_MONGO_COPIES);
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "_id", instance_id);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, &filter, NULL, NULL);
    const bson_t *doc;
    int rc = 0;
    if (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        rc = bson_iter_init_find(&it, doc, "end") && BSON_ITER_HOLDS_UTF8(&it) &&
             sy_mongo_ts_parse(bson_iter_utf8(&it, NULL), end);
    } else if (mongoc_cursor_error(cur, e)) {
        rc = -1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    mongoc_collection_destroy(c);
    return rc;
}
