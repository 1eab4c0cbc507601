/* Incremental Data Collection for MongoDB: a thread that tails the source's `local.oplog.rs` through
 * libmongoc (a tailable awaitData cursor from the instance's position) and appends one source
 * transaction per oplog entry to the spool:
 *
 *   i / u / d on a synchronized namespace  ->  TXN_BEGIN(ts), TABLE(db, coll), ROW, TXN_COMMIT(ts)
 *   the same on admin.system.users         ->  the same (users' SCRAM credentials stay equal on both
 *                                              sides: the proxy's SCRAM pass-through needs that)
 *   an echo mark (switchyard.echo insert)  ->  its fingerprints into the echo ledger (engine/mongo_echo.h)
 *   an entry the ledger matches (echo), anything else  ->  POSITION (at most every second), so the
 *                                              checkpoint advances
 *
 * core/change.h says how a document maps onto TABLE/ROW. An update is spooled as the whole document
 * (FerretDB logs `{$v: 1, $set: <the whole new document>}`, recognised by `$set` carrying `_id`; a
 * replacement logs the document itself) or, for a real MongoDB's partial update (`$v: 1` operators or a
 * `$v: 2` diff), as SY_VAL_PATCH holding the entry's `o` for the writer to apply.
 *
 * Reading: the collector polls `find({ts: {$gt: position}})` in $natural order, reads it to its end, and
 * polls again after COLL_POLL_MS when nothing was new. It does not use a tailable awaitData cursor:
 * FerretDB 1.24's implements getMore by running the query again and skipping to the last record it
 * returned, and a getMore cut by maxAwaitTimeMS in the middle of a batch loses the entries it had read
 * (the record it skips to has moved past them) — measured: documents missing on DR under load. A plain
 * query per poll carries no server-side state; it also costs less than FerretDB's awaitData loop, which
 * runs the same query every 10 ms. On real MongoDB a tailable cursor would be the better choice.
 *
 * Resuming: the first query starts at the position's entry itself (`ts >= position`) and that entry
 * must come first — proof that nothing between was dropped from the capped oplog; otherwise the
 * instance fails (position_unavailable) naming the position and the oplog's oldest entry, never skips.
 * ("0:0" — an oplog that was empty when the instance began — has no entry to check.) FerretDB can
 * deliver an entry twice (docs/mongodb.md): only entries with ts greater than the last one taken count.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/mongo_modules.h"
#include "core/change.h"
#include "core/collect.h"
#include "core/instance.h"
#include "core/log.h"
#include "engine/mongo_client.h"
#include "engine/mongo_echo.h"

#define COLL_TIMEOUT_MS 10000
#define COLL_POLL_MS 50
#define COLL_BATCH 1000
#define COLL_MAX_BACKOFF_MS 2000
#define POSITION_EVERY_MS 1000

#define USERS_NS "admin.system.users"

struct collector {
    struct sy_module_ctx *ctx;     /* ref */
    const struct sy_pair_cfg *cfg; /* ref */
    struct sy_collect out;
    mongoc_client_t *client;       /* owned */
    struct sy_mongo_ts pos;        /* everything up to it is spooled or skipped */
    bool resume_checked;           /* pos's own entry was seen (or there is none to see: 0:0) */
    struct sy_mongo_echo *echo;    /* owned */
    bool skipped_since_position;
    uint64_t last_position_ms;
    uint64_t events;
    uint64_t echoes;
    char err[1024];
};

static bool stopping(const struct collector *c)
{
    return __atomic_load_n(c->ctx->stop, __ATOMIC_ACQUIRE) != 0;
}

static void publish_position(struct collector *c)
{
    pthread_mutex_lock(&c->ctx->report->lock);
    sy_mongo_ts_format(c->pos, c->ctx->report->position, sizeof c->ctx->report->position);
    c->ctx->report->events = c->events;
    pthread_mutex_unlock(&c->ctx->report->lock);
}

static bool append_position(struct collector *c)
{
    char text[32];
    sy_mongo_ts_format(c->pos, text, sizeof text);
    struct sy_change ch = { .kind = SY_CHANGE_POSITION, .position = text, .position_len = strlen(text) };
    c->skipped_since_position = false;
    c->last_position_ms = sy_wall_ms();
    return sy_collect_append(&c->out, &ch);
}

/* ---- one oplog entry --------------------------------------------------------------------------------- */

struct entry {
    struct sy_mongo_ts ts;
    char op;                    /* 'i', 'u', 'd', 'n', 'c', ... */
    const char *ns;
    uint64_t wall_ms;
    bson_t o, o2;               /* views into the entry (o2 empty when absent) */
    bool has_o2;
};

static bool view_doc(const bson_t *doc, const char *key, bson_t *out)
{
    bson_iter_t it;
    const uint8_t *data;
    uint32_t len;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return false;
    bson_iter_document(&it, &len, &data);
    return bson_init_static(out, data, len);
}

static bool entry_parse(const bson_t *doc, struct entry *e)
{
    bson_iter_t it;
    memset(e, 0, sizeof *e);
    if (!bson_iter_init_find(&it, doc, "ts") || !BSON_ITER_HOLDS_TIMESTAMP(&it))
        return false;
    bson_iter_timestamp(&it, &e->ts.t, &e->ts.i);
    if (!bson_iter_init_find(&it, doc, "op") || !BSON_ITER_HOLDS_UTF8(&it))
        return false;
    e->op = bson_iter_utf8(&it, NULL)[0];
    if (!bson_iter_init_find(&it, doc, "ns") || !BSON_ITER_HOLDS_UTF8(&it))
        return false;
    e->ns = bson_iter_utf8(&it, NULL);
    if (bson_iter_init_find(&it, doc, "wall") && BSON_ITER_HOLDS_DATE_TIME(&it) && bson_iter_date_time(&it) > 0)
        e->wall_ms = (uint64_t)bson_iter_date_time(&it);
    else
        e->wall_ms = (uint64_t)e->ts.t * 1000u;
    if (!view_doc(doc, "o", &e->o))
        bson_init(&e->o); /* a noop may carry none */
    e->has_o2 = view_doc(doc, "o2", &e->o2);
    return true;
}

/* {_id: value} of the document the entry changes: from o2 for an update, else from o. */
static bool entry_id(const struct entry *e, bson_t *id)
{
    bson_iter_t it;
    const bson_t *from = e->op == 'u' ? (e->has_o2 ? &e->o2 : NULL) : &e->o;
    if (from == NULL || !bson_iter_init_find(&it, from, "_id"))
        return false;
    bson_init(id);
    return bson_append_iter(id, "_id", 3, &it);
}

/* What an update writes: the whole new document (into *doc, a view) or a patch (the entry's o). */
static bool update_is_whole(const struct entry *e, bson_t *doc)
{
    bson_iter_t it;
    bool only_set = true, has_set = false;
    if (bson_iter_init(&it, &e->o)) {
        bool first = true;
        while (bson_iter_next(&it)) {
            const char *k = bson_iter_key(&it);
            if (first && k[0] != '$') { /* a replacement: the document itself */
                *doc = e->o;
                return true;
            }
            first = false;
            if (strcmp(k, "$set") == 0)
                has_set = true;
            else if (strcmp(k, "$v") != 0)
                only_set = false;
        }
    }
    if (!has_set || !only_set || !view_doc(&e->o, "$set", doc))
        return false;
    return bson_iter_init_find(&it, doc, "_id"); /* FerretDB's whole-document $set; MongoDB never sets _id */
}

static bool append_change(struct collector *c, const struct entry *e, const char *db, const char *coll,
                          const bson_t *id, const bson_t *doc, bool patch)
{
    char text[32];
    sy_mongo_ts_format(e->ts, text, sizeof text);
    struct sy_change ch = { .kind = SY_CHANGE_TXN_BEGIN, .source_time_ms = e->wall_ms, .position = text,
                            .position_len = strlen(text) };
    if (!sy_collect_append(&c->out, &ch))
        return false;
    static const struct sy_column columns[2] = {
        { .name = "_id", .name_len = 3, .flags = SY_COL_KEY },
        { .name = "doc", .name_len = 3, .flags = SY_COL_NULLABLE },
    };
    ch = (struct sy_change){ .kind = SY_CHANGE_TABLE, .source_time_ms = e->wall_ms };
    ch.u.table = (struct sy_change_table){ .table_id = 1, .db = db, .db_len = strlen(db), .table = coll,
                                           .table_len = strlen(coll), .n_columns = 2, .columns = columns };
    if (!sy_collect_append(&c->out, &ch))
        return false;
    struct sy_value idv = { .type = SY_VAL_DOCUMENT, .p = bson_get_data(id), .len = id->len };
    struct sy_value before[2] = { idv, { .type = SY_VAL_NULL } }, after[2] = { idv, { .type = SY_VAL_NULL } };
    if (doc != NULL)
        after[1] = (struct sy_value){ .type = patch ? SY_VAL_PATCH : SY_VAL_DOCUMENT, .p = bson_get_data(doc),
                                      .len = doc->len };
    enum sy_row_op op = e->op == 'i' ? SY_ROW_INSERT : e->op == 'u' ? SY_ROW_UPDATE : SY_ROW_DELETE;
    ch = (struct sy_change){ .kind = SY_CHANGE_ROW, .source_time_ms = e->wall_ms };
    ch.u.row = (struct sy_change_row){ .table_id = 1, .op = op, .n_columns = 2,
                                       .before = op == SY_ROW_INSERT ? NULL : before,
                                       .after = op == SY_ROW_DELETE ? NULL : after };
    if (!sy_collect_append(&c->out, &ch))
        return false;
    ch = (struct sy_change){ .kind = SY_CHANGE_TXN_COMMIT, .source_time_ms = e->wall_ms, .position = text,
                             .position_len = strlen(text) };
    return sy_collect_append(&c->out, &ch);
}

/* A change to a synchronized namespace: spooled, unless the echo ledger says the opposite writer made it. */
static bool on_change(struct collector *c, const struct entry *e, const char *db, const char *coll)
{
    bson_t id, whole;
    if (!entry_id(e, &id)) {
        sy_module_report_failed(c->ctx->report, "bad_entry", "oplog entry %u:%u on %s ('%c') names no _id", e->ts.t,
                                e->ts.i, e->ns, e->op);
        return false;
    }
    const bson_t *doc = NULL;
    bool patch = false;
    if (e->op == 'i')
        doc = &e->o;
    else if (e->op == 'u') {
        if (update_is_whole(e, &whole))
            doc = &whole;
        else {
            doc = &e->o;
            patch = true;
        }
    }
    uint64_t h = doc != NULL && !patch ? sy_mongo_hash(bson_get_data(doc), doc->len, 0) : 0;
    bool ok;
    if (sy_mongo_echo_take(c->echo, e->ns, bson_get_data(&id), id.len, e->op == 'd', h, sy_wall_ms())) {
        c->echoes++;
        c->skipped_since_position = true;
        ok = true;
    } else {
        ok = append_change(c, e, db, coll, &id, doc, patch);
    }
    bson_destroy(&id);
    return ok;
}

static bool on_entry(struct collector *c, const bson_t *doc)
{
    struct entry e;
    if (!entry_parse(doc, &e)) {
        sy_module_report_failed(c->ctx->report, "bad_entry", "an oplog entry after %u:%u lacks ts, op or ns",
                                c->pos.t, c->pos.i);
        return false;
    }
    int cmp = sy_mongo_ts_cmp(e.ts, c->pos);
    if (!c->resume_checked) {
        if (cmp != 0) {
            struct sy_mongo_ts oldest = { 0, 0 };
            char why[256] = "";
            if (sy_mongo_oplog_edge(c->client, false, &oldest, why, sizeof why) < 0)
                snprintf(why, sizeof why, "unknown");
            sy_module_report_failed(c->ctx->report, "position_unavailable",
                                    "the oplog of %s:%u no longer holds the entry at %u:%u (its oldest entry is "
                                    "%u:%u, the first after the position %u:%u): changes in between are lost to "
                                    "this instance; run its initial sync again (terminate, start)",
                                    c->ctx->source->host, c->ctx->source->port, c->pos.t, c->pos.i, oldest.t,
                                    oldest.i, e.ts.t, e.ts.i);
            return false;
        }
        c->resume_checked = true;
        return true;
    }
    if (cmp <= 0) { /* delivered again (FerretDB) */
        sy_log_debug("%s: oplog entry %u:%u delivered again (at %u:%u): skipped", c->ctx->instance_id, e.ts.t, e.ts.i,
                     c->pos.t, c->pos.i);
        return true;
    }
    c->events++;
    c->pos = e.ts;
    int64_t lag = (int64_t)sy_wall_ms() - (int64_t)e.wall_ms;
    pthread_mutex_lock(&c->ctx->report->lock);
    c->ctx->report->lag_ms = lag < 0 ? 0 : lag;
    c->ctx->report->source_time_ms = e.wall_ms;
    pthread_mutex_unlock(&c->ctx->report->lock);

    char db[128];
    const char *coll;
    bool split = sy_mongo_ns_split(e.ns, db, sizeof db, &coll);
    bool ok = true;
    if (split && e.op == 'i' && strcmp(db, SY_MONGO_DB) == 0 && strcmp(coll, SY_MONGO_ECHO_COLL) == 0) {
        if (sy_mongo_echo_add_mark(c->echo, &e.o, sy_wall_ms()) != 0)
            sy_log_warn("%s: an unreadable echo mark at %u:%u: ignored", c->ctx->instance_id, e.ts.t, e.ts.i);
        c->skipped_since_position = true;
    } else if (split && (e.op == 'i' || e.op == 'u' || e.op == 'd') &&
               (strcmp(e.ns, USERS_NS) == 0 || sy_mongo_ns_synced(c->cfg, db, coll))) {
        ok = on_change(c, &e, db, coll);
    } else {
        c->skipped_since_position = true;
    }
    if (ok && c->skipped_since_position && !c->out.in_txn && sy_wall_ms() - c->last_position_ms >= POSITION_EVERY_MS)
        ok = append_position(c);
    publish_position(c);
    return ok;
}

/* ---- the cursor -------------------------------------------------------------------------------------- */

static mongoc_cursor_t *open_cursor(struct collector *c)
{
    mongoc_collection_t *oplog = mongoc_client_get_collection(c->client, "local", SY_MONGO_OPLOG);
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, child;
    if (c->pos.t != 0 || c->pos.i != 0) {
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "ts", &child);
        if (c->resume_checked)
            BSON_APPEND_TIMESTAMP(&child, "$gt", c->pos.t, c->pos.i);
        else
            BSON_APPEND_TIMESTAMP(&child, "$gte", c->pos.t, c->pos.i);
        bson_append_document_end(&filter, &child);
    } else {
        c->resume_checked = true;
    }
    BSON_APPEND_DOCUMENT_BEGIN(&opts, "sort", &child);
    BSON_APPEND_INT32(&child, "$natural", 1);
    bson_append_document_end(&opts, &child);
    BSON_APPEND_INT32(&opts, "batchSize", COLL_BATCH);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(oplog, &filter, &opts, NULL);
    bson_destroy(&filter);
    bson_destroy(&opts);
    mongoc_collection_destroy(oplog);
    return cur;
}

/* Nothing at or after the position: its entry is gone (or the oplog is empty). -1 failed; 1 retry. */
static int resume_lost(struct collector *c)
{
    struct sy_mongo_ts oldest = { 0, 0 };
    char why[256];
    int have = sy_mongo_oplog_edge(c->client, false, &oldest, why, sizeof why);
    if (have < 0) {
        snprintf(c->err, sizeof c->err, "oplog of %s:%u: %s", c->ctx->source->host, c->ctx->source->port, why);
        return 1;
    }
    sy_module_report_failed(c->ctx->report, "position_unavailable",
                            "the oplog of %s:%u no longer holds the entry at %u:%u (%s%u:%u): changes after it may "
                            "be lost to this instance; run its initial sync again (terminate, start)",
                            c->ctx->source->host, c->ctx->source->port, c->pos.t, c->pos.i,
                            have ? "its oldest entry is " : "it is empty; ", oldest.t, oldest.i);
    return -1;
}

/* Polls until stopped or an error: 1 = retry later (transient, c->err); -1 = failed (reported). */
static int tail(struct collector *c)
{
    bool reported_running = false;
    while (!stopping(c)) {
        mongoc_cursor_t *cur = open_cursor(c);
        const bson_t *doc;
        size_t n = 0;
        int rc = 0;
        while (!stopping(c) && mongoc_cursor_next(cur, &doc)) {
            n++;
            if (!on_entry(c, doc)) {
                rc = -1;
                break;
            }
            sy_collect_sync(&c->out, false);
        }
        bson_error_t e;
        if (rc == 0 && mongoc_cursor_error(cur, &e)) {
            snprintf(c->err, sizeof c->err, "oplog of %s:%u: %s", c->ctx->source->host, c->ctx->source->port,
                     e.message);
            rc = 1;
        }
        mongoc_cursor_destroy(cur);
        if (rc == 0 && n == 0 && !c->resume_checked)
            rc = resume_lost(c);
        if (rc != 0)
            return rc;
        if (!reported_running) {
            reported_running = true;
            sy_module_report_running(c->ctx->report);
        }
        if (n > 0)
            continue;
        /* caught up */
        pthread_mutex_lock(&c->ctx->report->lock);
        c->ctx->report->lag_ms = 0;
        pthread_mutex_unlock(&c->ctx->report->lock);
        if (c->skipped_since_position && !c->out.in_txn && sy_wall_ms() - c->last_position_ms >= POSITION_EVERY_MS &&
            !append_position(c))
            return -1;
        sy_collect_sync(&c->out, true);
        usleep(COLL_POLL_MS * 1000);
    }
    return 0;
}

static void collect(struct collector *c)
{
    int backoff = 100;
    while (!stopping(c)) {
        if (c->client == NULL) {
            c->client = sy_mongo_connect(c->cfg, c->ctx->source, COLL_TIMEOUT_MS, c->err, sizeof c->err);
            if (c->client != NULL) {
                char pos[32];
                sy_mongo_ts_format(c->pos, pos, sizeof pos);
                sy_log_info("%s: tailing the oplog of %s:%u after %s", c->ctx->instance_id, c->ctx->source->host,
                            c->ctx->source->port, pos);
                publish_position(c);
                backoff = 100;
            }
        }
        int rc = c->client != NULL ? tail(c) : 1;
        sy_collect_sync(&c->out, true);
        if (rc <= 0 || stopping(c))
            return; /* stopped, or failed (reported) */
        sy_module_report_retrying(c->ctx->report, "source_unreachable", "%s", c->err);
        if (c->client != NULL) {
            mongoc_client_destroy(c->client);
            c->client = NULL;
        }
        sy_module_backoff(c->ctx, &backoff, COLL_MAX_BACKOFF_MS);
    }
}

/* The position to start from; "" (no initial sync, nothing spooled): the oplog's newest entry now. */
static int load_position(struct collector *c)
{
    char from[1024];
    if (sy_collect_resume_position(&c->out, from, sizeof from) != 0)
        return -1;
    while (from[0] == '\0' &&
           sy_mongo_source_position(c->cfg, c->ctx->source, from, sizeof from, c->err, sizeof c->err) != 0) {
        from[0] = '\0';
        sy_module_report_retrying(c->ctx->report, "source_unreachable", "reading the start position: %s", c->err);
        for (int waited = 0; waited < COLL_MAX_BACKOFF_MS && !stopping(c); waited += 50)
            usleep(50 * 1000);
        if (stopping(c))
            return -1;
    }
    if (!sy_mongo_ts_parse(from, &c->pos)) {
        sy_module_report_failed(c->ctx->report, "bad_position", "cannot parse the start position '%s'", from);
        return -1;
    }
    return 0;
}

static void *collector_main(void *arg)
{
    struct collector *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->ctx = arg;
    c->cfg = c->ctx->cfg;
    c->last_position_ms = sy_wall_ms();
    sy_collect_init(&c->out, c->ctx);
    c->echo = sy_mongo_echo_new();
    if (c->echo == NULL)
        sy_module_report_failed(c->ctx->report, "out_of_memory", "out of memory");
    else if (load_position(c) == 0)
        collect(c);
    sy_collect_fini(&c->out);
    if (c->client != NULL)
        mongoc_client_destroy(c->client);
    sy_mongo_echo_free(c->echo);
    free(c);
    return NULL;
}

const struct sy_module_ops sy_mongo_collection = { "collection", collector_main };
