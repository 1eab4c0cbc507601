/* Incremental Write for MongoDB: the write module's thread reads the instance's spool in batches of
 * whole source transactions and applies them to the destination, idempotently by `_id`:
 *
 *   INSERT / UPDATE with the whole document  ->  replace by _id, upsert
 *   UPDATE with a patch (a real MongoDB's `$v: 1` operators or `$v: 2` diff)  ->  update by _id
 *   DELETE                                    ->  delete by _id
 *
 * A batch (up to WR_BATCH_ROWS rows) is split by hash(namespace, _id) over `apply_threads` workers,
 * each with its own client, applying its share in spool order as ordered bulk writes (so one key's
 * changes keep their order and different keys run in parallel). Before the batch an echo mark with the
 * batch's fingerprints goes into the destination's capped switchyard.echo (engine/mongo_echo.h): the
 * opposite collector drops those entries when it reads them. After the batch the checkpoint document
 * {_id: instance, seq, position} in switchyard.checkpoints moves past it. FerretDB has no transactions,
 * so a kill between the batch and its checkpoint applies the batch again at restart — harmless, since
 * every operation is idempotent by `_id`, and the end state is the source's.
 *
 * Conflicts: an UPDATE whose document is missing is upserted (counted in `conflicts`); with
 * on_conflict = fail it stops the instance (conflict), except for batches that a restart applies again
 * (records up to the spool's end when the writer started: they may have been applied before) and for
 * source changes inside the initial copy's overlap (up to its `end`, engine/mongo_client.h).
 * A `$v: 2` diff (MongoDB 5+) is applied as the update it stands for (engine/mongo_diff.h); one that
 * cannot be (an array resized) fails the instance naming it (unsupported_update).
 * Transient errors end the session; it starts again from the checkpoint with backoff. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/change.h"
#include "core/collect.h"
#include "core/engine.h"
#include "core/failpoint.h"
#include "core/grow.h"
#include "core/instance.h"
#include "core/log.h"
#include "core/spool.h"
#include "core/write.h"
#include "engine/mongo_client.h"
#include "engine/mongo_diff.h"
#include "engine/mongo_echo.h"
#include "replay/mongo_modules.h"

#define WR_TIMEOUT_MS 60000   /* a batch of updates costs ~4 ms a document on FerretDB */
#define WR_BATCH_ROWS 500
#define WR_BULK_BY_ID 50      /* changes by _id per bulk write: FerretDB 1.24 never answers an ordered bulk of
                                 more than about 100 upserts (measured: 99 in 0.12 s, 101 no reply in 20 s) */
#define WR_BATCH_BYTES (16u << 20)
#define WR_MAX_WORKERS SY_APPLY_THREADS_MAX
#define WR_MAX_BACKOFF_MS 2000
#define WR_WAIT_MS 200

struct op {
    size_t ns;              /* index into batch.ns */
    enum sy_row_op kind;
    bool patch;
    bson_t *id;             /* owned: {_id: value} */
    bson_t *doc;            /* owned: the document or the patch; NULL for a delete */
    uint64_t seq;           /* its spool record */
    struct sy_mongo_ts ts;  /* its source transaction's position */
};

struct batch {
    struct op *ops;
    size_t n, cap;
    char **ns;              /* owned "db.coll" strings */
    size_t n_ns, cap_ns;
    uint64_t bytes;
    uint64_t last_seq;      /* the last record consumed (a TXN_COMMIT or POSITION) */
    char position[1024];    /* its position */
    uint64_t source_time_ms;
};

struct writer;

struct worker {
    struct writer *w;
    int id;
    mongoc_client_t *client;    /* owned */
    pthread_t thread;
    int rc;                     /* 0, 1 transient, -1 failed */
    char reason[64], err[1024];
    uint64_t upserted_updates;  /* UPDATEs that found no document, this batch */
    const struct op *conflict;  /* the first of them */
};

struct writer {
    struct sy_module_ctx *ctx;
    const struct sy_pair_cfg *cfg;
    mongoc_client_t *ctl;       /* owned: marks and the checkpoint */
    struct worker *workers;
    int n_workers;
    uint64_t next_seq;          /* next spool record to read */
    uint64_t durable_seq;       /* the checkpoint's seq */
    uint64_t reapply_to;        /* records up to it may have been applied before this start */
    struct sy_mongo_ts overlap_end; /* source changes up to it overlap the initial copy (SY_MONGO_COPIES) */
    struct sy_mongo_ts until;   /* has_until: a takeover's idempotent replay ends there (ctx->overwrite_until) */
    bool has_until;
    bool until_at_first_change; /* overwrite_until is SY_UNTIL_FIRST_CHANGE: until is read from the source
                                   before the first batch with changes (resolve_until) */
    bool ckpt_exists;           /* the checkpoint document exists (read or written): gone = fenced */
    struct sy_mongo_ts txn_ts;  /* the source transaction being read */
    char position[1024];
    uint64_t rows, conflicts, source_time_ms;
    struct batch b;
    struct sy_change_scratch scratch;
    /* a source transaction being read: its rows are added to the batch only at its commit */
    bool in_txn;
    size_t txn_first_op;
    char table_ns[512];
    bool table_synced;
    bool failed;
    char err[1024];
};

static bool stopping(const struct writer *w)
{
    return __atomic_load_n(w->ctx->stop, __ATOMIC_ACQUIRE) != 0;
}

static void fail(struct writer *w, const char *reason, const char *fmt, ...) SY_PRINTF(3, 4);
static void fail(struct writer *w, const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
    w->failed = true;
    sy_module_report_failed(w->ctx->report, reason, "%s", w->err);
}

/* ---- the batch --------------------------------------------------------------------------------------- */

static void ops_free_from(struct batch *b, size_t from)
{
    for (size_t i = from; i < b->n; i++) {
        bson_destroy(b->ops[i].id);
        if (b->ops[i].doc)
            bson_destroy(b->ops[i].doc);
    }
    b->n = from;
}

static void batch_clear(struct batch *b)
{
    ops_free_from(b, 0);
    for (size_t i = 0; i < b->n_ns; i++)
        free(b->ns[i]);
    b->n_ns = 0;
    b->bytes = 0;
}

static void batch_free(struct batch *b)
{
    batch_clear(b);
    free(b->ops);
    free(b->ns);
}

static long ns_index(struct batch *b, const char *ns)
{
    for (size_t i = 0; i < b->n_ns; i++)
        if (strcmp(b->ns[i], ns) == 0)
            return (long)i;
    if (sy_grow((void **)&b->ns, &b->cap_ns, b->n_ns + 1, sizeof *b->ns, 64) != 0 || (b->ns[b->n_ns] = strdup(ns)) == NULL)
        return -1;
    return (long)b->n_ns++;
}

static bool doc_value(const struct sy_value *v, bson_t **out)
{
    *out = NULL;
    if (v->type != SY_VAL_DOCUMENT && v->type != SY_VAL_PATCH)
        return false;
    *out = bson_new_from_data(v->p, v->len);
    return *out != NULL && bson_validate(*out, BSON_VALIDATE_NONE, NULL);
}

/* A ROW record into the batch. false: failed (reported). */
static bool add_row(struct writer *w, const struct sy_change_row *r, uint64_t seq)
{
    if (!w->table_synced)
        return true;
    if (r->n_columns != 2) {
        fail(w, "bad_record", "spool record %llu: a MongoDB row has 2 columns, not %u", (unsigned long long)seq,
             r->n_columns);
        return false;
    }
    const struct sy_value *key = r->after ? &r->after[0] : &r->before[0];
    struct op op = { .kind = r->op, .seq = seq, .ts = w->txn_ts };
    long ns = ns_index(&w->b, w->table_ns);
    bool ok = ns >= 0 && doc_value(key, &op.id);
    if (ok && r->op != SY_ROW_DELETE) {
        ok = doc_value(&r->after[1], &op.doc);
        op.patch = r->after[1].type == SY_VAL_PATCH;
    }
    if (!ok || sy_grow((void **)&w->b.ops, &w->b.cap, w->b.n + 1, sizeof *w->b.ops, 64) != 0) {
        if (op.id)
            bson_destroy(op.id);
        if (op.doc)
            bson_destroy(op.doc);
        fail(w, "bad_record", "spool record %llu: an undecodable document (or out of memory)",
             (unsigned long long)seq);
        return false;
    }
    if (op.patch) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, op.doc, "$v") && bson_iter_as_int64(&it) >= 2) {
            /* MongoDB 5+: a diff, applied as the update it stands for */
            bson_t update;
            const char *why = "";
            bool translated = sy_mongo_diff_to_update(op.doc, &update, &why);
            bool empty = update.len <= 5;
            bson_destroy(op.doc);
            op.doc = translated && !empty ? bson_copy(&update) : NULL;
            bson_destroy(&update);
            if (op.doc == NULL) {
                bson_destroy(op.id);
                if (translated && empty)
                    return true; /* an empty diff: nothing to do */
                fail(w, "unsupported_update", "%s: spool record %llu holds a $v:2 update diff with %s",
                     w->table_ns, (unsigned long long)seq, why);
                return false;
            }
        }
    }
    op.ns = (size_t)ns;
    w->b.ops[w->b.n++] = op;
    w->b.bytes += op.id->len + (op.doc ? op.doc->len : 0);
    return true;
}

/* One spool record. 1: the batch is complete enough to apply (a commit past the limits); 0: go on;
 * -1: failed (reported). */
static int add_record(struct writer *w, uint8_t type, const uint8_t *p, size_t len, uint64_t seq)
{
    struct sy_change ch;
    if (sy_change_decode(p, len, &w->scratch, &ch) != SY_PARSE_OK) {
        fail(w, "bad_record", "spool record %llu: undecodable", (unsigned long long)seq);
        return -1;
    }
    switch (ch.kind) {
    case SY_CHANGE_TXN_BEGIN:
        if (w->in_txn) /* a transaction the collector never finished (it restarted): drop it */
            ops_free_from(&w->b, w->txn_first_op);
        w->in_txn = true;
        w->txn_first_op = w->b.n;
        {
            char pos[64];
            snprintf(pos, sizeof pos, "%.*s", (int)(ch.position_len < 63 ? ch.position_len : 63), ch.position);
            if (!sy_mongo_ts_parse(pos, &w->txn_ts))
                w->txn_ts = (struct sy_mongo_ts){ 0, 0 };
        }
        w->table_synced = false;
        return 0;
    case SY_CHANGE_TABLE: {
        const struct sy_change_table *t = &ch.u.table;
        snprintf(w->table_ns, sizeof w->table_ns, "%.*s.%.*s", (int)t->db_len, t->db, (int)t->table_len, t->table);
        w->table_synced = true;
        return 0;
    }
    case SY_CHANGE_ROW:
        if (!w->in_txn)
            return 0;
        return add_row(w, &ch.u.row, seq) ? 0 : -1;
    case SY_CHANGE_DDL:
        return 0; /* not produced for MongoDB */
    case SY_CHANGE_TXN_COMMIT:
    case SY_CHANGE_POSITION:
        if (ch.kind == SY_CHANGE_POSITION && w->in_txn) /* its source broke off mid-transaction, went on past it */
            ops_free_from(&w->b, w->txn_first_op);
        w->in_txn = false;
        w->b.last_seq = seq;
        snprintf(w->b.position, sizeof w->b.position, "%.*s", (int)ch.position_len, ch.position);
        if (ch.source_time_ms)
            w->b.source_time_ms = ch.source_time_ms;
        return w->b.n >= WR_BATCH_ROWS || w->b.bytes >= WR_BATCH_BYTES ? 1 : 0;
    }
    return 0;
}

static int add_record_cb(void *arg, uint8_t type, const uint8_t *p, size_t len, uint64_t seq)
{
    return add_record(arg, type, p, len, seq);
}

/* Whether the batch holds a complete source transaction (then reading stops waiting for more). */
static bool batch_complete(void *arg)
{
    const struct writer *w = arg;
    return w->b.last_seq >= w->next_seq;
}

/* ---- applying ---------------------------------------------------------------------------------------- */

static int worker_of(const struct writer *w, const struct batch *b, const struct op *op)
{
    if (w->n_workers == 1)
        return 0;
    uint64_t h = sy_mongo_hash(b->ns[op->ns], strlen(b->ns[op->ns]), 0);
    h = sy_mongo_hash(bson_get_data(op->id), op->id->len, h);
    return (int)(h % (uint64_t)w->n_workers);
}

static void worker_error(struct worker *wk, const bson_error_t *e, const char *ns)
{
    wk->rc = sy_mongo_is_transient(e) ? 1 : -1;
    snprintf(wk->reason, sizeof wk->reason, "%s", wk->rc > 0 ? "destination_unreachable" : "destination_refused");
    snprintf(wk->err, sizeof wk->err, "%s:%u %s: %s", wk->w->ctx->dest->host, wk->w->ctx->dest->port, ns, e->message);
}

/* Counts the UPDATEs among run[0..n) that found no document (the bulk reply's `upserted`). An upsert is
 * known by its _id, not its index: FerretDB numbers `upserted[].index` among the upserts instead of the
 * statements (measured). The first statement of the run on that _id is the one that created it. */
static void note_upserts(struct worker *wk, const bson_t *reply, const struct op *const *run, size_t n)
{
    bson_iter_t it, arr, one;
    if (!bson_iter_init_find(&it, reply, "upserted") || !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr))
        return;
    while (bson_iter_next(&arr)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &one) || !bson_iter_find(&one, "_id"))
            continue;
        bson_t id = BSON_INITIALIZER;
        bson_append_iter(&id, "_id", 3, &one);
        for (size_t i = 0; i < n; i++) {
            const struct op *op = run[i];
            if (op->id->len != id.len || memcmp(bson_get_data(op->id), bson_get_data(&id), id.len) != 0)
                continue;
            if (op->kind == SY_ROW_UPDATE) {
                wk->upserted_updates++;
                const struct writer *w = wk->w; /* a takeover's replay: overwritten, never a conflict */
                bool replay = w->has_until && sy_mongo_ts_cmp(op->ts, w->until) <= 0;
                if (wk->conflict == NULL && !replay)
                    wk->conflict = op;
            }
            break;
        }
        bson_destroy(&id);
    }
}

/* One ordered bulk write of run[0..n) on c: every change by `_id` (replace-upsert, update, delete), or,
 * as_inserts (a run of inserts only), plain inserts. true, or false with *e. */
static bool execute_run(struct worker *wk, mongoc_collection_t *c, const struct op *const *run, size_t n,
                        bool as_inserts, bson_error_t *e)
{
    bson_t bulk_opts = BSON_INITIALIZER, upsert = BSON_INITIALIZER, reply;
    BSON_APPEND_BOOL(&bulk_opts, "ordered", true);
    BSON_APPEND_BOOL(&upsert, "upsert", true);
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(c, &bulk_opts);
    bool ok = true;
    for (size_t k = 0; k < n && ok; k++) {
        const struct op *op = run[k];
        if (as_inserts)
            ok = mongoc_bulk_operation_insert_with_opts(bulk, op->doc, NULL, e);
        else if (op->kind == SY_ROW_DELETE)
            ok = mongoc_bulk_operation_remove_one_with_opts(bulk, op->id, NULL, e);
        else if (op->patch) {
            bson_t update = BSON_INITIALIZER;
            bson_iter_t it;
            bson_iter_init(&it, op->doc);
            while (bson_iter_next(&it))
                if (strcmp(bson_iter_key(&it), "$v") != 0)
                    bson_append_iter(&update, NULL, 0, &it);
            ok = mongoc_bulk_operation_update_one_with_opts(bulk, op->id, &update, &upsert, e);
            bson_destroy(&update);
        } else {
            ok = mongoc_bulk_operation_replace_one_with_opts(bulk, op->id, op->doc, &upsert, e);
        }
    }
    if (ok && n > 0) {
        ok = mongoc_bulk_operation_execute(bulk, &reply, e) != 0;
        if (ok && !as_inserts)
            note_upserts(wk, &reply, run, n);
        bson_destroy(&reply);
    }
    bson_destroy(&upsert);
    bson_destroy(&bulk_opts);
    mongoc_bulk_operation_destroy(bulk);
    return ok;
}

/* Applies this worker's share of the batch, in order, one ordered bulk write per run of one namespace. A
 * run of inserts goes first as plain inserts (FerretDB: ~0.1 ms a document against ~4 ms for a
 * replace-upsert, measured by bench/mongo_bench.py); if any of them finds its `_id` taken (a batch applied
 * again after a restart, the initial copy's overlap) the run is applied again by `_id`, which is idempotent
 * over the inserts that did land. */
/* A stop (or a step-down: the lease may end soon) seen between two bulk writes: the rest of the batch is
 * not sent; the batch is applied again, idempotently by `_id`, at the next start (its checkpoint did not
 * move). Besides this, a stop past its grace period cuts the writer's sockets (engine/mongo_stream.h): a bulk
 * write already sent may still land whole or in part, then is applied again the same way. */
static bool stop_seen(struct worker *wk)
{
    if (!stopping(wk->w))
        return false;
    wk->rc = 1;
    snprintf(wk->reason, sizeof wk->reason, "stopped");
    snprintf(wk->err, sizeof wk->err, "stopped before the batch ended (it is applied again at the next start)");
    return true;
}

static void apply_share(struct worker *wk)
{
    struct writer *w = wk->w;
    const struct batch *b = &w->b;
    const struct op **run = malloc(b->n * sizeof *run);
    if (run == NULL && b->n > 0) {
        wk->rc = -1;
        snprintf(wk->reason, sizeof wk->reason, "out_of_memory");
        snprintf(wk->err, sizeof wk->err, "out of memory");
        return;
    }
    size_t i = 0;
    while (i < b->n && wk->rc == 0 && !stop_seen(wk)) {
        while (i < b->n && worker_of(w, b, &b->ops[i]) != wk->id)
            i++;
        if (i == b->n)
            break;
        size_t ns = b->ops[i].ns, n = 0;
        bool inserts = true;
        for (; i < b->n; i++) {
            const struct op *op = &b->ops[i];
            if (worker_of(w, b, op) != wk->id)
                continue;
            if (op->ns != ns)
                break;
            inserts = inserts && op->kind == SY_ROW_INSERT && !op->patch;
            run[n++] = op;
        }
        char db[128];
        const char *coll;
        if (!sy_mongo_ns_split(b->ns[ns], db, sizeof db, &coll)) {
            wk->rc = -1;
            snprintf(wk->reason, sizeof wk->reason, "bad_record");
            snprintf(wk->err, sizeof wk->err, "namespace '%s' has no collection", b->ns[ns]);
            break;
        }
        mongoc_collection_t *c = mongoc_client_get_collection(wk->client, db, coll);
        bson_error_t e;
        bool ok = inserts && execute_run(wk, c, run, n, true, &e);
        if (!ok && (!inserts || !sy_mongo_is_transient(&e))) {
            ok = true;
            for (size_t k = 0; ok && k < n && !stop_seen(wk); k += WR_BULK_BY_ID)
                ok = execute_run(wk, c, run + k, n - k < WR_BULK_BY_ID ? n - k : WR_BULK_BY_ID, false, &e);
        }
        if (!ok)
            worker_error(wk, &e, b->ns[ns]);
        mongoc_collection_destroy(c);
    }
    free(run);
}

static void *worker_main(void *arg)
{
    apply_share(arg);
    return NULL;
}

/* The batch's echo mark, before any of its changes. 0, or 1 (transient) / -1 with w->err. */
static int write_mark(struct writer *w)
{
    bson_t mark = BSON_INITIALIZER, fp;
    BSON_APPEND_DATE_TIME(&mark, "at", (int64_t)sy_wall_ms());
    BSON_APPEND_UTF8(&mark, "from", w->ctx->instance_id);
    BSON_APPEND_ARRAY_BEGIN(&mark, "fp", &fp);
    for (size_t i = 0; i < w->b.n; i++) {
        const struct op *op = &w->b.ops[i];
        uint64_t h = op->kind == SY_ROW_DELETE || op->patch ? 0
                                                           : sy_mongo_hash(bson_get_data(op->doc), op->doc->len, 0);
        uint64_t f = sy_mongo_echo_fingerprint(w->b.ns[op->ns], bson_get_data(op->id), op->id->len,
                                               op->kind == SY_ROW_DELETE, h);
        const char *key;
        char keybuf[16];
        bson_uint32_to_string((uint32_t)i, &key, keybuf, sizeof keybuf);
        BSON_APPEND_INT64(&fp, key, (int64_t)f);
    }
    bson_append_array_end(&mark, &fp);
    mongoc_collection_t *c = mongoc_client_get_collection(w->ctl, SY_MONGO_DB, SY_MONGO_ECHO_COLL);
    bson_error_t e;
    bool ok = mongoc_collection_insert_one(c, &mark, NULL, NULL, &e);
    mongoc_collection_destroy(c);
    bson_destroy(&mark);
    if (ok)
        return 0;
    snprintf(w->err, sizeof w->err, "%s:%u: writing the echo mark: %s", w->ctx->dest->host, w->ctx->dest->port,
             e.message);
    return sy_mongo_is_transient(&e) ? 1 : -1;
}

/* Another node owns the pair (replay/mongo_takeover.c): nothing more is written into the destination;
 * the write stops for good (never retried as a conflict or a lost connection). */
static void fenced(struct writer *w, uint64_t newer, const char *why)
{
    snprintf(w->err, sizeof w->err, "%s", why);
    w->failed = true;
    sy_write_fenced(w->ctx, newer, why);
}

/* In a cluster, before a batch: the checkpoint document still names this owner (not a newer one). Not
 * atomic with the batch (FerretDB v1 has no multi-document transactions): a takeover that claims the
 * document after this check does not stop the batch; it stops the checkpoint after it, and every later
 * batch. 0, 1 (transient: w->err), -1 (fenced: reported). */
static int fence_check(struct writer *w)
{
    if (w->ctx->owner_token == 0)
        return 0;
    bool found = false;
    uint64_t seq, held;
    char pos[8];
    bson_error_t e;
    if (sy_mongo_checkpoint_read(w->ctl, w->ctx->instance_id, &found, &seq, pos, sizeof pos, &held, &e) != 0) {
        snprintf(w->err, sizeof w->err, "%s:%u: reading the checkpoint's owner token: %s", w->ctx->dest->host,
                 w->ctx->dest->port, e.message);
        return sy_mongo_is_transient(&e) ? 1 : -1;
    }
    if (found && held > w->ctx->owner_token) {
        fenced(w, held, "the destination's checkpoint names a newer owner");
        return -1;
    }
    if (!found && w->ckpt_exists) {
        fenced(w, 0, "the destination's checkpoint is gone: another node started the instance again");
        return -1;
    }
    return 0;
}

/* The checkpoint document, replaced; in a cluster only while its owner_token is not above this writer's
 * (one document: atomic). Then the upsert's insert meets the existing _id: duplicate key, fenced. */
static int write_checkpoint(struct writer *w, uint64_t seq, const char *position)
{
    mongoc_collection_t *c = mongoc_client_get_collection(w->ctl, SY_MONGO_DB, SY_MONGO_CHECKPOINTS);
    bson_t sel = BSON_INITIALIZER, doc = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    uint64_t token = w->ctx->owner_token;
    if (token != 0)
        sy_mongo_checkpoint_filter(&sel, w->ctx->instance_id, token);
    else
        BSON_APPEND_UTF8(&sel, "_id", w->ctx->instance_id);
    BSON_APPEND_UTF8(&doc, "_id", w->ctx->instance_id);
    BSON_APPEND_INT64(&doc, "seq", (int64_t)seq);
    BSON_APPEND_UTF8(&doc, "position", position);
    BSON_APPEND_DATE_TIME(&doc, "at", (int64_t)sy_wall_ms());
    if (token != 0)
        BSON_APPEND_INT64(&doc, "owner_token", (int64_t)token);
    BSON_APPEND_BOOL(&opts, "upsert", true);
    bson_error_t e;
    bool ok = mongoc_collection_replace_one(c, &sel, &doc, &opts, NULL, &e);
    bson_destroy(&sel);
    bson_destroy(&doc);
    bson_destroy(&opts);
    mongoc_collection_destroy(c);
    if (!ok && token != 0 && e.code == 11000) { /* DuplicateKey: the document names a newer owner */
        bool found = false;
        uint64_t s2, held = 0;
        char pos[8];
        bson_error_t e2;
        sy_mongo_checkpoint_read(w->ctl, w->ctx->instance_id, &found, &s2, pos, sizeof pos, &held, &e2);
        fenced(w, held, "the destination's checkpoint names a newer owner");
        return -1;
    }
    if (!ok) {
        snprintf(w->err, sizeof w->err, "%s:%u: writing the checkpoint: %s", w->ctx->dest->host, w->ctx->dest->port,
                 e.message);
        return sy_mongo_is_transient(&e) ? 1 : -1;
    }
    w->ckpt_exists = true;
    w->durable_seq = seq;
    char terr[256];
    if (sy_spool_truncate_below(w->ctx->spool, seq, terr, sizeof terr) != SY_SPOOL_OK)
        sy_log_warn("%s: spool truncate: %s", w->ctx->instance_id, terr);
    return 0;
}

static void publish(struct writer *w)
{
    sy_write_report(w->ctx, w->position, w->durable_seq, w->rows, w->conflicts, w->source_time_ms);
}

/* A takeover (core/engine.h SY_UNTIL_FIRST_CHANGE): the idempotent replay ends at the source's newest oplog
 * entry read now, before the first change is applied. Read after the new owner's token claim, it covers
 * whatever an older owner applied. 0, or 1 (transient: w->err). */
static int resolve_until(struct writer *w)
{
    if (!w->until_at_first_change)
        return 0;
    char err[512] = "", pos[64];
    struct sy_mongo_ts ts = { 0, 0 };
    int rc = -1;
    mongoc_client_t *c = sy_mongo_connect_watched(w->cfg, w->ctx->source, WR_TIMEOUT_MS, w->ctx, err, sizeof err);
    if (c != NULL) {
        rc = sy_mongo_oplog_edge(c, true, &ts, err, sizeof err);
        mongoc_client_destroy(c);
    }
    if (rc < 0) {
        snprintf(w->err, sizeof w->err, "source %s:%u: reading its position (the end of the takeover's idempotent "
                 "replay): %s", w->ctx->source->host, w->ctx->source->port, err);
        return 1;
    }
    w->until = ts;
    w->has_until = true;
    w->until_at_first_change = false;
    sy_mongo_ts_format(ts, pos, sizeof pos);
    sy_log_info("%s: changes up to %s are replayed idempotently (taken over)", w->ctx->instance_id, pos);
    return 0;
}

/* Applies the batch and moves the checkpoint past it. 0, 1 (transient: w->err), -1 (failed: reported). */
static int apply_batch(struct writer *w)
{
    int rc = 0;
    if (w->b.n > 0) {
        sy_failpoint_stall("mongo_write_batch_taken"); /* tests: a writer paused with a batch taken */
        if ((rc = resolve_until(w)) != 0 || (rc = fence_check(w)) != 0 || (rc = write_mark(w)) != 0)
            goto out;
        sy_failpoint("mongo_write_after_mark");
        for (int i = 0; i < w->n_workers; i++) {
            struct worker *wk = &w->workers[i];
            wk->rc = 0;
            wk->upserted_updates = 0;
            wk->conflict = NULL;
        }
        int started = 0;
        for (int i = 1; i < w->n_workers; i++)
            if (pthread_create(&w->workers[i].thread, NULL, worker_main, &w->workers[i]) == 0)
                started = i;
            else
                apply_share(&w->workers[i]);
        apply_share(&w->workers[0]);
        for (int i = 1; i <= started; i++)
            pthread_join(w->workers[i].thread, NULL);
        for (int i = 0; i < w->n_workers; i++) {
            struct worker *wk = &w->workers[i];
            if (wk->rc < 0) {
                fail(w, wk->reason, "%s", wk->err);
                return -1;
            }
            if (wk->rc > 0 && rc == 0) {
                rc = 1;
                snprintf(w->err, sizeof w->err, "%s", wk->err);
            }
        }
        if (rc != 0)
            goto out;
        sy_failpoint("mongo_write_before_checkpoint");
        for (int i = 0; i < w->n_workers; i++) {
            struct worker *wk = &w->workers[i];
            w->conflicts += wk->upserted_updates;
            if (wk->conflict != NULL && w->cfg->on_conflict == SY_ON_CONFLICT_FAIL && !w->failed &&
                wk->conflict->seq > w->reapply_to && sy_mongo_ts_cmp(wk->conflict->ts, w->overlap_end) > 0) {
                char *id = bson_as_relaxed_extended_json(wk->conflict->id, NULL);
                fail(w, "conflict",
                     "%s: the source updated document %s, which the destination does not have (it was inserted "
                     "as the source has it; on_conflict = overwrite accepts such changes)",
                     w->b.ns[wk->conflict->ns], id ? id : "?");
                bson_free(id);
                return -1;
            }
        }
        w->rows += w->b.n;
    }
    if (w->b.last_seq > w->durable_seq) {
        if ((rc = write_checkpoint(w, w->b.last_seq, w->b.position)) != 0)
            goto out;
        snprintf(w->position, sizeof w->position, "%s", w->b.position);
        if (w->b.source_time_ms)
            w->source_time_ms = w->b.source_time_ms;
    }
    w->next_seq = w->b.last_seq + 1;
    publish(w);
out:
    batch_clear(&w->b);
    w->in_txn = false;
    return rc;
}

/* ---- the session ------------------------------------------------------------------------------------- */

static int read_checkpoint(struct writer *w)
{
    if (w->ctx->owner_token != 0) { /* the document names this owner (or a newer one: fenced) */
        bool claimed = false, found = false;
        uint64_t s2, held = 0;
        char pos[8];
        bson_error_t e;
        if (sy_mongo_checkpoint_claim(w->ctl, w->ctx->instance_id, w->ctx->owner_token, &claimed, &e) != 0 ||
            (!claimed &&
             sy_mongo_checkpoint_read(w->ctl, w->ctx->instance_id, &found, &s2, pos, sizeof pos, &held, &e) != 0)) {
            snprintf(w->err, sizeof w->err, "%s:%u: claiming the checkpoint: %s", w->ctx->dest->host,
                     w->ctx->dest->port, e.message);
            return sy_mongo_is_transient(&e) ? 1 : -1;
        }
        if (found) {
            fenced(w, held, "the destination's checkpoint names a newer owner");
            return -1;
        }
    }
    mongoc_collection_t *c = mongoc_client_get_collection(w->ctl, SY_MONGO_DB, SY_MONGO_CHECKPOINTS);
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "_id", w->ctx->instance_id);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(c, &filter, NULL, NULL);
    const bson_t *doc;
    uint64_t seq = 0;
    char position[1024] = "";
    bool have = mongoc_cursor_next(cur, &doc);
    if (have) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "seq"))
            seq = (uint64_t)bson_iter_as_int64(&it);
        if (bson_iter_init_find(&it, doc, "position") && BSON_ITER_HOLDS_UTF8(&it))
            snprintf(position, sizeof position, "%s", bson_iter_utf8(&it, NULL));
    }
    bson_error_t e;
    int rc = 0;
    if (!have && mongoc_cursor_error(cur, &e)) {
        snprintf(w->err, sizeof w->err, "%s:%u: reading the checkpoint: %s", w->ctx->dest->host, w->ctx->dest->port,
                 e.message);
        rc = sy_mongo_is_transient(&e) ? 1 : -1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    mongoc_collection_destroy(c);
    if (rc != 0)
        return rc;
    uint64_t last = sy_spool_last_seq(w->ctx->spool), first = sy_spool_first_seq(w->ctx->spool);
    if (have && seq > last) {
        /* an earlier history of an instance with this name (terminated, created again): not ours */
        sy_log_warn("%s: the destination's checkpoint (spool record %llu) is past this spool's end (%llu): it "
                    "belongs to an earlier instance and is ignored",
                    w->ctx->instance_id, (unsigned long long)seq, (unsigned long long)last);
        have = false;
        seq = 0;
    }
    if (!have || position[0] == '\0')    /* none, or reset by a new creation (forget): no history yet */
        snprintf(position, sizeof position, "%s", w->ctx->start_position ? w->ctx->start_position : "");
    if (first > seq + 1 && first != 0) {
        fail(w, "spool_error", "the spool starts at record %llu but the checkpoint is at %llu: records are missing",
             (unsigned long long)first, (unsigned long long)seq);
        return -1;
    }
    w->ckpt_exists = have;
    w->durable_seq = seq;
    w->next_seq = seq + 1;
    w->reapply_to = last;
    w->overlap_end = (struct sy_mongo_ts){ 0, 0 };
    if (w->ctx->direction == SY_DIR_FORWARD &&
        sy_mongo_copy_overlap_end(w->ctl, w->ctx->instance_id, &w->overlap_end, &e) < 0) {
        snprintf(w->err, sizeof w->err, "%s:%u: reading the initial copy's overlap: %s", w->ctx->dest->host,
                 w->ctx->dest->port, e.message);
        return sy_mongo_is_transient(&e) ? 1 : -1;
    }
    snprintf(w->position, sizeof w->position, "%s", position);
    return 0;
}

/* The capped echo collection on the destination (created once; "already exists" is fine). */
static int ensure_echo(struct writer *w)
{
    mongoc_database_t *db = mongoc_client_get_database(w->ctl, SY_MONGO_DB);
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&opts, "capped", true);
    BSON_APPEND_INT64(&opts, "size", SY_MONGO_ECHO_BYTES);
    bson_error_t e;
    mongoc_collection_t *c = mongoc_database_create_collection(db, SY_MONGO_ECHO_COLL, &opts, &e);
    int rc = 0;
    if (c != NULL)
        mongoc_collection_destroy(c);
    else if (e.code != 48) { /* NamespaceExists */
        snprintf(w->err, sizeof w->err, "%s:%u: creating %s.%s: %s", w->ctx->dest->host, w->ctx->dest->port,
                 SY_MONGO_DB, SY_MONGO_ECHO_COLL, e.message);
        rc = sy_mongo_is_transient(&e) ? 1 : -1;
    }
    bson_destroy(&opts);
    mongoc_database_destroy(db);
    return rc;
}

static void session_close(struct writer *w)
{
    for (int i = 0; i < w->n_workers; i++)
        if (w->workers[i].client != NULL) {
            mongoc_client_destroy(w->workers[i].client);
            w->workers[i].client = NULL;
        }
    if (w->ctl != NULL) {
        mongoc_client_destroy(w->ctl);
        w->ctl = NULL;
    }
}

/* A connection to the destination whose socket a stop can cut (engine/mongo_stream.h). */
static mongoc_client_t *connect_dest(struct writer *w)
{
    return sy_mongo_connect_watched(w->cfg, w->ctx->dest, WR_TIMEOUT_MS, w->ctx, w->err, sizeof w->err);
}

static int session_open(struct writer *w)
{
    if ((w->ctl = connect_dest(w)) == NULL)
        return 1;
    int rc = ensure_echo(w);
    if (rc == 0)
        rc = read_checkpoint(w);
    for (int i = 0; i < w->n_workers && rc == 0; i++)
        if ((w->workers[i].client = connect_dest(w)) == NULL)
            rc = 1;
    return rc;
}

/* Reads and applies until stopped or an error. 1: transient (w->err); -1: failed (reported). */
static int apply_session(struct writer *w)
{
    while (!stopping(w)) {
        char err[512];
        uint64_t seq = w->next_seq;
        int rc = sy_write_fill(w->ctx->spool, &seq, WR_WAIT_MS, batch_complete, add_record_cb, w, err, sizeof err);
        if (rc == -1)
            return -1;
        if (rc == -2) {
            fail(w, "spool_error", "%s", err);
            return -1;
        }
        /* a transaction read only in part waits for its end: apply up to the last complete one */
        if (w->in_txn)
            ops_free_from(&w->b, w->txn_first_op);
        if (w->b.last_seq >= w->next_seq) {
            int arc = apply_batch(w);
            if (arc != 0)
                return arc;
        } else {
            batch_clear(&w->b);
            w->in_txn = false;
        }
    }
    return 0;
}

static void *writer_main(void *arg)
{
    struct writer *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->ctx = arg;
    w->cfg = w->ctx->cfg;
    sy_change_scratch_init(&w->scratch);
    w->until_at_first_change = w->ctx->overwrite_until != NULL &&
                               strcmp(w->ctx->overwrite_until, SY_UNTIL_FIRST_CHANGE) == 0;
    w->has_until = !w->until_at_first_change && w->ctx->overwrite_until != NULL &&
                   sy_mongo_ts_parse(w->ctx->overwrite_until, &w->until);
    w->n_workers = w->cfg->apply_threads; /* 1..WR_MAX_WORKERS: core/config.c */
    w->workers = calloc((size_t)w->n_workers, sizeof *w->workers);
    if (w->workers == NULL) {
        fail(w, "out_of_memory", "out of memory");
        w->n_workers = 0;
    }
    for (int i = 0; i < w->n_workers; i++)
        w->workers[i] = (struct worker){ .w = w, .id = i };
    int backoff = 100;
    while (!stopping(w) && !w->failed) {
        w->err[0] = '\0';
        int rc = session_open(w);
        if (rc < 0) {
            if (!w->failed)
                fail(w, "destination_refused", "%s", w->err);
            break;
        }
        if (rc == 0) {
            backoff = 100;
            sy_module_report_running(w->ctx->report);
            publish(w);
            rc = apply_session(w);
        }
        session_close(w);
        batch_clear(&w->b);
        w->in_txn = false;
        if (rc < 0 && !w->failed)
            fail(w, "destination_refused", "%s", w->err);
        if (rc <= 0 || stopping(w))
            break;
        sy_module_report_retrying(w->ctx->report, "destination_unreachable", "%s", w->err);
        sy_module_backoff(w->ctx, &backoff, WR_MAX_BACKOFF_MS);
    }
    session_close(w);
    batch_free(&w->b);
    sy_change_scratch_fini(&w->scratch);
    free(w->workers);
    free(w);
    return NULL;
}

const struct sy_module_ops sy_mongo_write = { "write", writer_main };
