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
 * Reading: the collector polls `find({ts: {$gt: position}})` (natural order: no sort, see
 * open_cursor), reads it to its end, and polls again after COLL_POLL_MS when nothing was new. It does not use a tailable awaitData cursor:
 * FerretDB 1.24's implements getMore by running the query again and skipping to the last record it
 * returned, and a getMore cut by maxAwaitTimeMS in the middle of a batch loses the entries it had read
 * (the record it skips to has moved past them) — measured: documents missing on DR under load. A plain
 * query per poll carries no server-side state; it also costs less than FerretDB's awaitData loop, which
 * runs the same query every 10 ms. On real MongoDB a tailable cursor would be the better choice.
 *
 * Order: FerretDB stores an entry after a newer one now and then under concurrent writes (its `ts` is taken
 * before the entry is inserted; measured: 1 in 1600 with 8 writers; bench/mongo_oplog_lateness.py: 1 in
 * 20000 the latest 2-6 ms behind, at a load average of 8-17 on 2 cores), so `ts` order and natural order differ. Each
 * poll therefore reads the last WINDOW_S seconds again and takes what it has not taken yet (a set of the
 * `ts` taken in the last SWEEP_S seconds), and a transaction commits at the newest `ts` taken, which keeps
 * the spooled positions monotonic. Every SWEEP_EVERY_MS a poll reads SWEEP_S back instead (a sweep), so an
 * entry landing up to about SWEEP_S - SWEEP_EVERY_MS late is still taken; one only a sweep found is a
 * warning in the log (with the counts of late entries and the latest lateness, by the entries' `wall`), one
 * close to SWEEP_S an error (others as late may have landed beyond it: never seen). A late entry's
 * lateness is in the debug line. The cost: FerretDB reads the whole oplog for either filter (docs/mongodb.md),
 * a sweep decodes and sends the SWEEP_S seconds' entries (measured at 12-15k entries: a poll of 2 s, 30 s or
 * 60 s took 2.0-3.2 s each, the difference within the noise of the whole read).
 *
 * Stopping and resuming (capture/mongo_taken.h): on a clean stop the collector leaves the set of ts it took
 * since the point from which the set is exact (its floor, or SWEEP_S + 1 seconds before pos: seen_rebuild drops
 * older keys), tied to pos, in its state directory. A failover's tail (capture/mongo_tail.c) reads business's
 * oplog from that point and skips exactly those ts: an entry that landed behind a newer one after the last poll
 * before business died has a ts older than the collected position, and only so is it in the tail (never on DR,
 * never lost), while none the collector took is. A restart whose spool position lies within the set's range
 * takes it over (take_over: the floor moves back to where the set is exact), so such an entry is taken then,
 * and none taken before is taken again. Without the set (a crash, a failure) a restart takes only entries
 * after its position (the floor) and the tail starts at the collected position, both saying so in the log.
 * Reading back before the floor without the set was considered and left out: it
 * would take again entries already applied, and although an insert or whole-document update is applied as
 * an upsert by _id (idempotent), the ack ledger matches a taken entry with an acknowledged write by its
 * document's key alone (engine/mongo_acks.h: an old entry taken again would prove a newer write it is not),
 * an echo whose echo mark lies before the re-read would be spooled back to the other side, and a real
 * MongoDB's partial update ($inc) is not idempotent. The exposure is the entries in flight at a crash
 * (measured lateness: milliseconds).
 * A takeover by another node (core/takeover.h) is different: the dead owner's set died with it, and the new
 * spool starts at the destination's checkpoint C. An entry that landed behind a newer one just before the owner
 * died (ts at or before C, never taken) would reach neither side. Neither ts order nor natural order tells it
 * from entries already applied (FerretDB numbers its records before its insert waits for the database, so
 * natural order is not the order in which entries became visible either). So a collector that starts a
 * takeover's spool (ctx->takeover_replay, nothing spooled after its start yet) on FerretDB catches up first
 * (not when its instance only collects: a document's later echo would be suppressed while the candidate
 * waited for the switchback, which would then put the older state on the destination) (catch_up,
 * capture/mongo_catch_up.h): it reads the entries of the CATCH_UP_S seconds up to C and keeps the newest per
 * document, reads the entries after C and drops every one whose document has a newer entry there (that entry
 * decides the document: it is collected next, or it is an echo the destination already has), and spools the
 * rest before anything else: each the newest state of its document, applied by _id, idempotent for one the
 * old owner had applied, in one transaction at C (a stop or a crash before its commit leaves the spool without
 * a position after C: the writer drops the unfinished transaction, and the next start catches up again; no
 * taken set is left meanwhile). They are not given to the ack ledger (armed at this start: an old entry would "prove" a
 * newer acknowledged write of its document) and are not late. Partial updates are never candidates (not
 * idempotent; a server that logs them, MongoDB, shows its entries in ts order: nothing is late there, and the
 * catch-up is skipped). An entry more than CATCH_UP_S late against the dead collector's last poll (which had
 * read past C) is still missed: the same class as one beyond the sweep. The floor stays C.
 * After every poll the capped oplog's oldest entry (one row: cheap) must be at or before the position
 * the poll started from — proof that nothing between was dropped unread; otherwise the instance fails
 * (position_unavailable) naming both, never skips. FerretDB can deliver an entry twice: the set skips it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capture/mongo_catch_up.h"
#include "capture/mongo_modules.h"
#include "capture/mongo_taken.h"
#include "core/change.h"
#include "core/collect.h"
#include "core/instance.h"
#include "core/log.h"
#include "engine/mongo_client.h"
#include "engine/mongo_acks.h"
#include "engine/mongo_echo.h"

#define COLL_TIMEOUT_MS 30000  /* a poll reads the whole oplog on FerretDB */
#define COLL_POLL_MS 100
#define COLL_HURRY_POLL_MS 10   /* while a switch waits for its fence mark (each poll reads the whole oplog
                                   on FerretDB: faster only loads the server) */
#define COLL_BATCH 1000
#define COLL_MAX_BACKOFF_MS 2000
#define POSITION_EVERY_MS 1000
#define WINDOW_S 2              /* every poll reads again the entries this many seconds behind the newest */
#define SWEEP_S 30              /* every SWEEP_EVERY_MS a poll reads back this far instead (a sweep) */
#define SWEEP_EVERY_MS 10000
#define CATCH_UP_S 5            /* a takeover looks this far before the checkpoint (see above) */

#define USERS_NS "admin.system.users"

struct collector {
    struct sy_module_ctx *ctx;     /* ref */
    const struct sy_pair_cfg *cfg; /* ref */
    struct sy_collect out;
    mongoc_client_t *client;       /* owned */
    struct sy_mongo_ts pos;        /* the newest ts taken (spooled or skipped) */
    uint64_t pos_wall_ms;          /* the wall clock of the entry at pos */
    struct sy_mongo_ts floor;      /* where this run resumed: entries at or before it were taken before */
    struct sy_mongo_catch_up *catch_up; /* owned: a takeover's catch-up not done yet (NULL: none) */
    struct sy_mongo_ts fast_from;  /* this poll's fast window starts after it (WINDOW_S behind pos) */
    uint64_t last_sweep_ms;
    uint64_t *seen;                /* owned: open-addressing set of the ts (t << 32 | i) taken in the last
                                      SWEEP_S seconds: a poll reads them again and skips them */
    size_t seen_cap, seen_n;
    struct sy_mongo_echo *echo;    /* owned */
    struct sy_mongo_acks *acks;    /* ref: the source side's ack ledger (engine/mongo_acks.h) */
    bool skipped_since_position;
    uint64_t last_position_ms;
    uint64_t events;
    uint64_t echoes;
    uint64_t late, late_max_ms;    /* entries that landed behind a newer one; the latest of them (ms) */
    uint64_t swept;                /* entries only a sweep found (behind the fast window) */
    bool failed;                   /* reported failed: no taken set is left behind */
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
    c->ctx->report->late_events = c->late;
    c->ctx->report->late_max_ms = c->late_max_ms;
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
    bool reread;                /* a takeover's catch-up: at or before its start, maybe applied already */
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
/* The part of an entry that names its document's _id: o2 of an update, o otherwise (NULL: none). */
static const bson_t *id_holder(const struct entry *e)
{
    return e->op == 'u' ? (e->has_o2 ? &e->o2 : NULL) : &e->o;
}

static bool entry_id(const struct entry *e, bson_t *id)
{
    bson_iter_t it;
    const bson_t *from = id_holder(e);
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

/* TXN_BEGIN (at: the transaction's own ts) or TXN_COMMIT (at: the position after it) of a spooled transaction. */
static bool append_edge(struct collector *c, enum sy_change_kind kind, struct sy_mongo_ts at, uint64_t wall_ms)
{
    char text[32];
    sy_mongo_ts_format(at, text, sizeof text);
    struct sy_change ch = { .kind = kind, .source_time_ms = wall_ms, .position = text, .position_len = strlen(text) };
    return sy_collect_append(&c->out, &ch);
}

/* The TABLE and ROW records of one entry's change, inside a transaction. */
static bool append_row(struct collector *c, const struct entry *e, const char *db, const char *coll,
                       const bson_t *id, const bson_t *doc, bool patch)
{
    struct sy_change ch;
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
    return sy_collect_append(&c->out, &ch);
}

/* One entry as one transaction, committed at the newest ts taken (an entry that landed late has an older ts of
 * its own); a catch-up's (e->reread) as rows of the catch-up's one transaction. */
static bool append_change(struct collector *c, const struct entry *e, const char *db, const char *coll,
                          const bson_t *id, const bson_t *doc, bool patch)
{
    if (e->reread)
        return append_row(c, e, db, coll, id, doc, patch);
    return append_edge(c, SY_CHANGE_TXN_BEGIN, e->ts, e->wall_ms) && append_row(c, e, db, coll, id, doc, patch) &&
           append_edge(c, SY_CHANGE_TXN_COMMIT, c->pos, e->wall_ms);
}

/* Whether an entry of SY_MONGO_FENCE_COLL is this pair's mark (_id = the pair's name). */
static bool is_own_mark(const struct collector *c, const struct entry *e)
{
    bson_iter_t it;
    const bson_t *from = id_holder(e);
    return from != NULL && bson_iter_init_find(&it, from, "_id") && BSON_ITER_HOLDS_UTF8(&it) &&
           strcmp(bson_iter_utf8(&it, NULL), c->cfg->name) == 0;
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
        bson_iter_t idv;
        if (ok && c->acks != NULL && !e->reread && bson_iter_init_find(&idv, &id, "_id"))
            sy_mongo_acks_taken(c->acks, sy_mongo_id_key(e->ns, &idv), e->ts.t, e->ts.i, sy_wall_ms());
    }
    bson_destroy(&id);
    return ok;
}

#ifdef SY_FAILPOINTS
/* SY_LOSE_OPLOG_ENTRY=db.coll[,db.coll...] (up to 8): the first entry of each namespace this process reads
 * is dropped, as FerretDB acknowledges a write whose oplog entry it could not write (tests of the ack
 * ledger). */
static bool lose_entry(const char *ns)
{
    static int lost[8];
    const char *want = getenv("SY_LOSE_OPLOG_ENTRY");
    size_t n = strlen(ns);
    for (int i = 0; want != NULL && *want != '\0' && i < 8; i++) {
        const char *end = strchr(want, ',');
        size_t len = end != NULL ? (size_t)(end - want) : strlen(want);
        if (len == n && strncmp(want, ns, n) == 0)
            return __atomic_exchange_n(&lost[i], 1, __ATOMIC_ACQ_REL) == 0;
        want = end != NULL ? end + 1 : "";
    }
    return false;
}

/* SY_HIDE_OPLOG_NS=db.coll: this process never sees the entries of that namespace, as if each landed
 * (behind newer ones) after the collector's last poll (tests of the failover's tail). */
static bool hide_entry(const char *ns)
{
    const char *want = getenv("SY_HIDE_OPLOG_NS");
    return want != NULL && strcmp(want, ns) == 0;
}
#else
static bool lose_entry(const char *ns)
{
    return false;
}

static bool hide_entry(const char *ns)
{
    return false;
}
#endif

/* ---- the window of taken entries ---------------------------------------------------------------------- */

static bool seen_has(const struct collector *c, uint64_t key)
{
    if (c->seen_cap == 0)
        return false;
    for (size_t i = key * 0x9E3779B97F4A7C15ULL >> 20 & (c->seen_cap - 1);; i = (i + 1) & (c->seen_cap - 1)) {
        if (c->seen[i] == key)
            return true;
        if (c->seen[i] == 0)
            return false;
    }
}

static void seen_put(uint64_t *v, size_t cap, uint64_t key)
{
    size_t i = key * 0x9E3779B97F4A7C15ULL >> 20 & (cap - 1);
    while (v[i] != 0 && v[i] != key)
        i = (i + 1) & (cap - 1);
    v[i] = key;
}

/* Rebuilds the set with the keys not older than SWEEP_S + 1 seconds before pos, in a table at least
 * twice their number. */
static int seen_rebuild(struct collector *c, size_t want)
{
    uint64_t min = c->pos.t > SWEEP_S + 1 ? (uint64_t)(c->pos.t - SWEEP_S - 1) << 32 : 0;
    size_t live = 0;
    for (size_t i = 0; i < c->seen_cap; i++)
        live += c->seen[i] != 0 && c->seen[i] >= min;
    size_t cap = 1024;
    while (cap < 2 * (live + want))
        cap *= 2;
    uint64_t *v = calloc(cap, sizeof *v);
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < c->seen_cap; i++)
        if (c->seen[i] != 0 && c->seen[i] >= min)
            seen_put(v, cap, c->seen[i]);
    free(c->seen);
    c->seen = v;
    c->seen_cap = cap;
    c->seen_n = live;
    return 0;
}

static int seen_add(struct collector *c, uint64_t key)
{
    if (2 * (c->seen_n + 1) > c->seen_cap && seen_rebuild(c, 1) != 0)
        return -1;
    seen_put(c->seen, c->seen_cap, key);
    c->seen_n++;
    return 0;
}

/* An entry that landed behind a newer one (its ts is older than pos): how late, by the entries' wall clocks.
 * Behind the fast window it was found by a sweep only: loud. Close to the sweep's reach, others as late may
 * have landed beyond it, unseen: an error in the log (nothing can tell which). */
static void on_late(struct collector *c, const struct entry *e)
{
    uint64_t ms = c->pos_wall_ms > e->wall_ms ? c->pos_wall_ms - e->wall_ms : 0;
    c->late++;
    if (ms > c->late_max_ms)
        c->late_max_ms = ms;
    if (sy_mongo_ts_cmp(e->ts, c->fast_from) > 0) {
        sy_log_debug("%s: oplog entry %u:%u landed after %u:%u, %llu ms late", c->ctx->instance_id, e->ts.t, e->ts.i,
                     c->pos.t, c->pos.i, (unsigned long long)ms);
        return;
    }
    c->swept++;
    if (ms + SWEEP_EVERY_MS + 2000 >= SWEEP_S * 1000u)
        sy_log_error("%s: oplog entry %u:%u on %s landed %llu ms after %u:%u, close to the %d s the collector reads "
                     "back: an entry landing later than that is never seen, some may have been missed",
                     c->ctx->instance_id, e->ts.t, e->ts.i, e->ns, (unsigned long long)ms, c->pos.t, c->pos.i,
                     SWEEP_S);
    else
        sy_log_warn("%s: oplog entry %u:%u on %s landed %llu ms after %u:%u, behind the %d s window of every poll: "
                    "taken by the %d s sweep (%llu such, %llu late entries, the latest %llu ms)",
                    c->ctx->instance_id, e->ts.t, e->ts.i, e->ns, (unsigned long long)ms, c->pos.t, c->pos.i, WINDOW_S,
                    SWEEP_S, (unsigned long long)c->swept, (unsigned long long)c->late,
                    (unsigned long long)c->late_max_ms);
}

/* Whether an entry is a change the collector spools: i/u/d on a synchronized namespace or the users' (db and
 * coll: its namespace, split). */
static bool is_synced_change(const struct collector *c, const struct entry *e, const char *db, const char *coll)
{
    return (e->op == 'i' || e->op == 'u' || e->op == 'd') &&
           (strcmp(e->ns, USERS_NS) == 0 || sy_mongo_ns_synced(c->cfg, db, coll));
}

static bool on_entry(struct collector *c, const bson_t *doc)
{
    struct entry e;
    if (!entry_parse(doc, &e)) {
        sy_module_report_failed(c->ctx->report, "bad_entry", "an oplog entry after %u:%u lacks ts, op or ns",
                                c->pos.t, c->pos.i);
        return false;
    }
    uint64_t key = (uint64_t)e.ts.t << 32 | e.ts.i;
    if (hide_entry(e.ns))
        return true;
    if (sy_mongo_ts_cmp(e.ts, c->floor) <= 0 || seen_has(c, key))
        return true; /* taken before (this poll reads the window again; FerretDB delivers some twice) */
    if (seen_add(c, key) != 0) {
        sy_module_report_failed(c->ctx->report, "out_of_memory", "out of memory");
        return false;
    }
    if (sy_mongo_ts_cmp(e.ts, c->pos) < 0)
        on_late(c, &e);
    c->events++;
    if (sy_mongo_ts_cmp(e.ts, c->pos) > 0) {
        c->pos = e.ts;
        c->pos_wall_ms = e.wall_ms;
    }
    int64_t lag = (int64_t)sy_wall_ms() - (int64_t)e.wall_ms;
    pthread_mutex_lock(&c->ctx->report->lock);
    c->ctx->report->lag_ms = lag < 0 ? 0 : lag;
    c->ctx->report->source_time_ms = e.wall_ms;
    pthread_mutex_unlock(&c->ctx->report->lock);

    char db[128];
    const char *coll;
    bool split = sy_mongo_ns_split(e.ns, db, sizeof db, &coll);
    bool ok = true;
    if (split && strcmp(db, SY_MONGO_DB) == 0 && strcmp(coll, SY_MONGO_FENCE_COLL) == 0 && is_own_mark(c, &e)) {
        /* a switch's fence mark: the position that covers it goes to the writer now, not within a second */
        c->skipped_since_position = true;
        c->last_position_ms = 0;
        if (c->acks != NULL)
            sy_mongo_acks_mark_taken(c->acks, e.ts.t, e.ts.i);
    } else if (split && e.op == 'i' && strcmp(db, SY_MONGO_DB) == 0 && strcmp(coll, SY_MONGO_ECHO_COLL) == 0) {
        if (sy_mongo_echo_add_mark(c->echo, &e.o, sy_wall_ms()) != 0)
            sy_log_warn("%s: an unreadable echo mark at %u:%u: ignored", c->ctx->instance_id, e.ts.t, e.ts.i);
        c->skipped_since_position = true;
    } else if (split && is_synced_change(c, &e, db, coll)) {
        if (lose_entry(e.ns))
            sy_log_warn("%s: SY_LOSE_OPLOG_ENTRY: oplog entry %u:%u on %s dropped", c->ctx->instance_id, e.ts.t,
                        e.ts.i, e.ns);
        else
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

static struct sy_mongo_ts behind(const struct collector *c, uint32_t s)
{
    struct sy_mongo_ts from = { c->pos.t > s ? c->pos.t - s : 0, 0 };
    return sy_mongo_ts_cmp(from, c->floor) < 0 ? c->floor : from;
}

/* A poll: the last WINDOW_S seconds again (an entry can land behind a newer one), or SWEEP_S seconds when a
 * sweep is due; never before the floor. */
static mongoc_cursor_t *open_cursor(struct collector *c)
{
    mongoc_collection_t *oplog = mongoc_client_get_collection(c->client, "local", SY_MONGO_OPLOG);
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, child;
    c->fast_from = behind(c, WINDOW_S);
    struct sy_mongo_ts from = c->fast_from;
    uint64_t now = sy_wall_ms();
    if (now - c->last_sweep_ms >= SWEEP_EVERY_MS) {
        c->last_sweep_ms = now;
        from = behind(c, SWEEP_S);
    }
    if (from.t != 0 || from.i != 0) {
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "ts", &child);
        BSON_APPEND_TIMESTAMP(&child, "$gt", from.t, from.i);
        bson_append_document_end(&filter, &child);
    }
    /* no sort: a capped collection is read in natural (insertion) order anyway, and FerretDB loads every
     * document into memory for any explicit sort, $natural included (measured: seconds on a full oplog) */
    BSON_APPEND_INT32(&opts, "batchSize", COLL_BATCH);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(oplog, &filter, &opts, NULL);
    bson_destroy(&filter);
    bson_destroy(&opts);
    mongoc_collection_destroy(oplog);
    return cur;
}

/* After a poll that started at `before`: the capped oplog must still reach back to it (its oldest entry at
 * or before it), else entries between may have been dropped unread. -1 failed (reported); 1 retry. */
static int check_reach(struct collector *c, struct sy_mongo_ts before)
{
    if (before.t == 0 && before.i == 0)
        return 0;
    struct sy_mongo_ts oldest = { 0, 0 };
    char why[256];
    int have = sy_mongo_oplog_edge(c->client, false, &oldest, why, sizeof why);
    if (have < 0) {
        snprintf(c->err, sizeof c->err, "oplog of %s:%u: %s", c->ctx->source->host, c->ctx->source->port, why);
        return 1;
    }
    if (have == 0 || sy_mongo_ts_cmp(oldest, before) <= 0)
        return 0;
    sy_module_report_failed(c->ctx->report, "position_unavailable",
                            "the oplog of %s:%u no longer reaches back to %u:%u (its oldest entry is %u:%u): changes "
                            "in between may be lost to this instance; make the oplog larger and run the initial "
                            "sync again (terminate, start)",
                            c->ctx->source->host, c->ctx->source->port, before.t, before.i, oldest.t, oldest.i);
    return -1;
}

/* A read of the oplog ended (rc: its own result): a cursor error makes it 1 (transient: c->err); cur is
 * destroyed. */
static int cursor_done(struct collector *c, mongoc_cursor_t *cur, int rc)
{
    bson_error_t e;
    if (rc == 0 && mongoc_cursor_error(cur, &e)) {
        snprintf(c->err, sizeof c->err, "oplog of %s:%u: %s", c->ctx->source->host, c->ctx->source->port,
                 e.message);
        rc = 1;
    }
    mongoc_cursor_destroy(cur);
    return rc;
}

/* ---- a takeover's catch-up (see the top) ------------------------------------------------------------ */

/* The document key of an entry the collector would spool as a change (i/u/d on a synchronized namespace or
 * the users'). */
static bool change_key(const struct collector *c, const struct entry *e, uint64_t *key)
{
    char db[128];
    const char *coll;
    bson_iter_t it;
    const bson_t *from = id_holder(e);
    if (!sy_mongo_ns_split(e->ns, db, sizeof db, &coll) || !is_synced_change(c, e, db, coll) || from == NULL ||
        !bson_iter_init_find(&it, from, "_id"))
        return false;
    *key = sy_mongo_id_key(e->ns, &it);
    return true;
}

/* One read for the catch-up: the entries in (from, floor] (candidates), or after from (up_to_floor false:
 * they drop older candidates of their documents). 0, 1 (transient: c->err) or -1 (failed: reported). */
static int catch_up_read(struct collector *c, struct sy_mongo_ts from, bool up_to_floor)
{
    mongoc_collection_t *oplog = mongoc_client_get_collection(c->client, "local", SY_MONGO_OPLOG);
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, child;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "ts", &child);
    BSON_APPEND_TIMESTAMP(&child, "$gt", from.t, from.i);
    if (up_to_floor)
        BSON_APPEND_TIMESTAMP(&child, "$lte", c->floor.t, c->floor.i);
    bson_append_document_end(&filter, &child);
    BSON_APPEND_INT32(&opts, "batchSize", COLL_BATCH);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(oplog, &filter, &opts, NULL);
    const bson_t *doc;
    int rc = 0;
    while (rc == 0 && !stopping(c) && mongoc_cursor_next(cur, &doc)) {
        struct entry e;
        bson_t whole;
        uint64_t key;
        if (!entry_parse(doc, &e) || hide_entry(e.ns) || !change_key(c, &e, &key))
            continue;
        if (!up_to_floor)
            sy_mongo_catch_up_seen(c->catch_up, key, e.ts.t, e.ts.i);
        else if (sy_mongo_catch_up_put(c->catch_up, key, e.ts.t, e.ts.i,
                                       e.op == 'u' && !update_is_whole(&e, &whole) ? NULL : doc) != 0) {
            sy_module_report_failed(c->ctx->report, "out_of_memory", "out of memory");
            rc = -1;
        }
    }
    rc = cursor_done(c, cur, rc);
    bson_destroy(&filter);
    bson_destroy(&opts);
    mongoc_collection_destroy(oplog);
    return rc;
}

struct catch_up_take {
    struct collector *c;
    bool refused;                                    /* on_change failed (reported, or stopping) */
};

static bool catch_up_take(const bson_t *doc, void *arg)
{
    struct catch_up_take *t = arg;
    struct entry e;
    char db[128];
    const char *coll;
    if (!entry_parse(doc, &e) || !sy_mongo_ns_split(e.ns, db, sizeof db, &coll))
        return true;                                 /* parsed before: cannot happen */
    e.reread = true;
    t->c->events++;
    t->refused = !on_change(t->c, &e, db, coll);
    return !t->refused;
}

/* Before the first poll of a takeover's spool: the newest states of documents that may have been missed
 * are spooled first (the floor stays). 0 (done, or stopped: then again at the next start), 1 (transient:
 * c->err) or -1 (failed: reported). */
static int catch_up(struct collector *c)
{
    bool ferretdb = false;
    bson_error_t be;
    if (sy_mongo_is_ferretdb(c->client, &ferretdb, &be) != 0) {
        snprintf(c->err, sizeof c->err, "%s:%u: buildInfo: %s", c->ctx->source->host, c->ctx->source->port,
                 be.message);
        return 1;
    }
    struct sy_mongo_ts from = { c->floor.t > CATCH_UP_S ? c->floor.t - CATCH_UP_S : 0, 0 };
    int rc = 0;
    if (ferretdb && (rc = catch_up_read(c, from, true)) == 0)
        rc = catch_up_read(c, c->floor, false);
    if (rc != 0 || stopping(c))
        return rc;
    /* one transaction: the writer applies none of them before all are spooled (a stop or a crash cuts it:
     * the writer drops a transaction never finished, and the next start catches up again) */
    size_t n = sy_mongo_catch_up_count(c->catch_up);
    struct catch_up_take take = { .c = c };
    if (n > 0) {
        bool begun = append_edge(c, SY_CHANGE_TXN_BEGIN, c->floor, 0);
        bool listed = begun && sy_mongo_catch_up_each(c->catch_up, catch_up_take, &take);
        if (begun && !listed && !take.refused && !stopping(c)) {   /* the list's own memory */
            sy_module_report_failed(c->ctx->report, "out_of_memory", "out of memory");
            return -1;
        }
        if (!listed || !append_edge(c, SY_CHANGE_TXN_COMMIT, c->pos, 0))
            return stopping(c) ? 0 : -1;                            /* failed: reported by the spool */
    }
    if (ferretdb)
        sy_log_info("%s: taken over at %u:%u: %zu document(s) whose newest oplog entry lies in the %d s up to it "
                    "sent again in one transaction (an entry that landed late may have been taken by no owner)",
                    c->ctx->instance_id, c->floor.t, c->floor.i, n, CATCH_UP_S);
    sy_mongo_catch_up_free(c->catch_up);
    c->catch_up = NULL;
    return 0;
}

/* Polls until stopped or an error: 1 = retry later (transient, c->err); -1 = failed (reported). */
static int tail(struct collector *c)
{
    bool reported_running = false;
    int caught = c->catch_up != NULL ? catch_up(c) : 0;
    if (caught != 0)
        return caught;
    while (!stopping(c)) {
        struct sy_mongo_ts before = c->pos;
        mongoc_cursor_t *cur = open_cursor(c);
        const bson_t *doc;
        uint64_t taken = c->events;
        int rc = 0;
        while (!stopping(c) && mongoc_cursor_next(cur, &doc)) {
            if (!on_entry(c, doc)) {
                rc = -1;
                break;
            }
            sy_collect_sync(&c->out, false);
        }
        rc = cursor_done(c, cur, rc);
        if (rc == 0)
            rc = check_reach(c, before);
        if (rc != 0)
            return rc;
        if (!reported_running) {
            reported_running = true;
            sy_module_report_running(c->ctx->report);
        }
        if (c->events != taken)
            continue;
        /* caught up */
        pthread_mutex_lock(&c->ctx->report->lock);
        c->ctx->report->lag_ms = 0;
        pthread_mutex_unlock(&c->ctx->report->lock);
        if (c->skipped_since_position && !c->out.in_txn && sy_wall_ms() - c->last_position_ms >= POSITION_EVERY_MS &&
            !append_position(c))
            return -1;
        sy_collect_sync(&c->out, true);
        usleep((c->acks != NULL && sy_mongo_acks_hurried(c->acks, sy_wall_ms()) ? COLL_HURRY_POLL_MS : COLL_POLL_MS) *
               1000);
    }
    return 0;
}

static void collect(struct collector *c)
{
    int backoff = 100;
    while (!stopping(c)) {
        if (c->client == NULL) {
            c->client = sy_mongo_connect_watched(c->cfg, c->ctx->source, COLL_TIMEOUT_MS, c->ctx, c->err,
                                                 sizeof c->err);
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
        if (rc < 0)
            c->failed = true;
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
    if (sy_collect_start_position(&c->out, sy_mongo_source_position, from, sizeof from) != 0)
        return -1;
    if (!sy_mongo_ts_parse(from, &c->pos)) {
        sy_module_report_failed(c->ctx->report, "bad_position", "cannot parse the start position '%s'", from);
        return -1;
    }
    c->floor = c->pos;
    return 0;
}

/* ---- the taken set across a stop (capture/mongo_taken.h) ------------------------------------------- */

/* At the start: the set the previous run left at this position becomes this run's, and the floor moves back
 * to where it is exact, so an entry that landed behind a newer one after that run's last poll is taken now
 * and none it took is taken again. The file is removed either way: it describes the previous run only. */
static bool take_over(struct collector *c)
{
    struct sy_mongo_ts after;
    uint64_t *keys = NULL;
    size_t n = 0;
    char why[1400];
    int rc = sy_mongo_taken_load(c->ctx->state_dir, c->pos, true, &after, &keys, &n, why, sizeof why);
    sy_mongo_taken_remove(c->ctx->state_dir);
    if (rc < 0)
        sy_log_warn("%s: the set of entries taken before the stop is unusable (%s): resuming after the position "
                    "alone", c->ctx->instance_id, why);
    if (rc <= 0)
        return false;
    if (n > 0 && seen_rebuild(c, n) != 0) {
        sy_log_warn("%s: out of memory for the %zu entries taken before the stop: resuming after the position alone",
                    c->ctx->instance_id, n);
        free(keys);
        return false;
    }
    for (size_t k = 0; k < n; k++)
        if (keys[k] != 0 && !seen_has(c, keys[k])) {
            seen_put(c->seen, c->seen_cap, keys[k]);
            c->seen_n++;
        }
    free(keys);
    if (sy_mongo_ts_cmp(after, c->floor) < 0)
        c->floor = after;
    sy_log_info("%s: resuming with the %zu entries taken after %u:%u before the stop: any other entry after it is "
                "taken now", c->ctx->instance_id, n, after.t, after.i);
    return true;
}

/* At a clean stop: the ts taken after the oldest point from which the set is exact (the floor, or SWEEP_S + 1
 * seconds before pos: seen_rebuild drops older ones). A failed run leaves none (the next start or a failover's
 * tail falls back to the position alone). */
static void leave_taken(struct collector *c)
{
    struct sy_mongo_ts after = { 0, 0 };
    if (c->pos.t >= SWEEP_S + 2)
        after = (struct sy_mongo_ts){ c->pos.t - SWEEP_S - 2, UINT32_MAX };
    if (sy_mongo_ts_cmp(after, c->floor) < 0)
        after = c->floor;
    char err[1024];
    if (sy_mongo_taken_save(c->ctx->state_dir, c->pos, after, c->seen, c->seen_cap, err, sizeof err) != 0)
        sy_log_warn("%s: cannot keep the entries taken before the stop: %s (a failover's tail then starts at the "
                    "position alone)", c->ctx->instance_id, err);
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
    c->acks = sy_mongo_acks_of(c->cfg->name, c->ctx->direction == SY_DIR_FORWARD ? SY_SIDE_BUSINESS : SY_SIDE_DR);
    if (c->acks != NULL)
        sy_mongo_acks_arm(c->acks, true);
    if (c->echo == NULL)
        sy_module_report_failed(c->ctx->report, "out_of_memory", "out of memory");
    else if (load_position(c) == 0) {
        /* a takeover's spool with nothing after the takeover's start in it yet (a catch-up spools first, at
         * that position: one cut by a stop is done again), and no set of this node's own */
        struct sy_mongo_ts start;
        bool catch_up = !take_over(c) && c->ctx->takeover_replay && c->ctx->start_position != NULL &&
                        sy_mongo_ts_parse(c->ctx->start_position, &start) && sy_mongo_ts_cmp(start, c->pos) == 0 &&
                        (c->pos.t != 0 || c->pos.i != 0);
        if (catch_up && (c->catch_up = sy_mongo_catch_up_new()) == NULL) {
            sy_module_report_failed(c->ctx->report, "out_of_memory", "out of memory");
            c->failed = true;
        } else
            collect(c);
        if (!c->failed && c->catch_up == NULL) /* a catch-up not done: the next start does it again */
            leave_taken(c);
    }
    if (c->acks != NULL)
        sy_mongo_acks_arm(c->acks, false);
    sy_collect_fini(&c->out);
    if (c->client != NULL)
        mongoc_client_destroy(c->client);
    sy_mongo_echo_free(c->echo);
    sy_mongo_catch_up_free(c->catch_up);
    free(c->seen);
    free(c);
    return NULL;
}

const struct sy_module_ops sy_mongo_collection = { "collection", collector_main };
