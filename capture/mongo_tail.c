/* The unreplicated tail of a MongoDB source (ARCHITECTURE.md, "Failover"): after a failover to DR, the
 * business oplog entries the forward collector never took, on synchronized namespaces (and
 * admin.system.users), up to the newest entry at the start of the read: read from where the set of ts the
 * collector left at its stop is exact (capture/mongo_taken.h), those ts skipped — an entry that landed
 * behind a newer one after its last poll has a ts older than the collected position. Without the set, after
 * the collected position alone (logged; "collected_set_missing" in the detail). One entry is one
 * "transaction" (MongoDB without transactions logs one entry per change). Values are canonical
 * extended JSON (lossless: `{"$numberLong": "5"}`, `{"$oid": ...}`), so an export can be replayed by
 * hand with any driver. Blocking: call it from a worker thread.
 *
 *   {"from": "1733241600:5" (collected), "to": "1733241700:2", "read_after": "1733241569:4294967295",
 *    "collected_set": entries skipped as taken | null (no set), "collected_set_missing": why (no set),
 *    "transactions": [{"position": "1733241600:7", "wall": <ms>, "tables": ["db.coll"],
 *                      "rows": [{"table": "db.coll", "op": "insert"|"update"|"delete",
 *                                "key": {"_id": ...}, "after": {document} | null,
 *                                "update": {the logged update} (a partial update instead of "after")}]}],
 *    "tables": ["db.coll"], "rows": N} */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/mongo_modules.h"
#include "capture/mongo_taken.h"
#include "core/log.h"
#include "engine/mongo_client.h"

#define TAIL_TIMEOUT_MS 15000

static json_t *to_json(const bson_t *b)
{
    char *s = bson_as_canonical_extended_json(b, NULL);
    json_t *j = s ? json_loads(s, JSON_DECODE_ANY, NULL) : NULL;
    bson_free(s);
    return j ? j : json_null();
}

static json_t *field_json(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    const uint8_t *data;
    uint32_t len;
    bson_t sub;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return json_null();
    bson_iter_document(&it, &len, &data);
    if (!bson_init_static(&sub, data, len))
        return json_null();
    return to_json(&sub);
}

/* {_id: value} of the entry's document as JSON: from o2 for an update, else from o. */
static json_t *key_json(const bson_t *entry, char op)
{
    bson_iter_t it, sub;
    if (!bson_iter_init_find(&it, entry, op == 'u' ? "o2" : "o") || !BSON_ITER_HOLDS_DOCUMENT(&it) ||
        !bson_iter_recurse(&it, &sub) || !bson_iter_find(&sub, "_id"))
        return json_null();
    bson_t id = BSON_INITIALIZER;
    bson_append_iter(&id, "_id", 3, &sub);
    json_t *j = to_json(&id);
    bson_destroy(&id);
    return j;
}

static void add_table(json_t *tables, const char *ns)
{
    size_t i;
    json_t *t;
    json_array_foreach(tables, i, t) if (strcmp(json_string_value(t), ns) == 0) return;
    json_array_append_new(tables, json_string(ns));
}

int sy_mongo_tail_read(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, const char *from_position,
                       const char *collector_dir,
                       json_t *out, char *err, size_t errlen)
{
    struct sy_mongo_ts from = { 0, 0 }, to = { 0, 0 };
    if (from_position[0] != '\0' && !sy_mongo_ts_parse(from_position, &from)) {
        snprintf(err, errlen, "cannot parse the tail's start position '%s'", from_position);
        return -1;
    }
    /* what the forward collector took near from (capture/mongo_taken.h): read from its `after`, skip those */
    struct sy_mongo_ts after = from;
    uint64_t *taken = NULL;
    size_t n_taken = 0;
    char why[1400] = "";
    int have_set = collector_dir != NULL && collector_dir[0] != '\0'
                       ? sy_mongo_taken_load(collector_dir, from, false, &after, &taken, &n_taken, why, sizeof why)
                       : 0;
    if (have_set <= 0) {
        after = from;
        if (why[0] == '\0')
            snprintf(why, sizeof why, "no collector state directory");
        sy_log_warn("mongodb tail of %s:%u: the entries the forward collector took before %s are not known (%s): the "
                    "tail starts at %s; an entry that landed behind a newer one after its last poll is neither on DR "
                    "nor in the tail",
                    src->host, src->port, from_position, why, from_position);
    } else if (sy_mongo_ts_cmp(after, from) > 0) {
        after = from; /* never past the collected position */
    }
    mongoc_client_t *c = sy_mongo_connect(cfg, src, TAIL_TIMEOUT_MS, err, errlen);
    if (c == NULL) {
        free(taken);
        return -1;
    }
    int rc = sy_mongo_oplog_edge(c, true, &to, err, errlen) < 0 ? -1 : 0;
    json_t *txns = json_array(), *tables = json_array(), *read = json_object();
    size_t rows = 0, skipped = 0;
    if (rc == 0) {
        mongoc_collection_t *oplog = mongoc_client_get_collection(c, "local", SY_MONGO_OPLOG);
        bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, range;
        BSON_APPEND_DOCUMENT_BEGIN(&filter, "ts", &range);
        BSON_APPEND_TIMESTAMP(&range, "$gt", after.t, after.i);
        BSON_APPEND_TIMESTAMP(&range, "$lte", to.t, to.i);
        bson_append_document_end(&filter, &range);
        /* natural order without a sort (FerretDB sorts in memory: capture/mongo_collector.c); natural order is not
         * ts order (an entry can land behind a newer one), so repeats are found by ts, not by order */
        mongoc_cursor_t *cur = mongoc_collection_find_with_opts(oplog, &filter, &opts, NULL);
        const bson_t *e;
        while (mongoc_cursor_next(cur, &e)) {
            bson_iter_t it;
            struct sy_mongo_ts ts;
            const char *ns = NULL;
            char op = 0;
            if (!bson_iter_init_find(&it, e, "ts") || !BSON_ITER_HOLDS_TIMESTAMP(&it))
                continue;
            bson_iter_timestamp(&it, &ts.t, &ts.i);
            char key[32];
            sy_mongo_ts_format(ts, key, sizeof key);
            if (json_object_get(read, key) != NULL)
                continue; /* delivered again */
            json_object_set_new(read, key, json_true());
            if (sy_mongo_taken_has(taken, n_taken, (uint64_t)ts.t << 32 | ts.i)) {
                skipped++;
                continue; /* the forward collector took it: on DR */
            }
            if (bson_iter_init_find(&it, e, "op") && BSON_ITER_HOLDS_UTF8(&it))
                op = bson_iter_utf8(&it, NULL)[0];
            if (bson_iter_init_find(&it, e, "ns") && BSON_ITER_HOLDS_UTF8(&it))
                ns = bson_iter_utf8(&it, NULL);
            char db[128];
            const char *coll;
            if (ns == NULL || (op != 'i' && op != 'u' && op != 'd') || !sy_mongo_ns_split(ns, db, sizeof db, &coll) ||
                (strcmp(ns, "admin.system.users") != 0 && !sy_mongo_ns_synced(cfg, db, coll)))
                continue;
            char pos[32];
            sy_mongo_ts_format(ts, pos, sizeof pos);
            json_t *row = json_pack("{s:s,s:s,s:o}", "table", ns, "op",
                                    op == 'i' ? "insert" : op == 'u' ? "update" : "delete", "key", key_json(e, op));
            if (op == 'i')
                json_object_set_new(row, "after", field_json(e, "o"));
            else if (op == 'u')
                json_object_set_new(row, "update", field_json(e, "o"));
            int64_t wall = bson_iter_init_find(&it, e, "wall") && BSON_ITER_HOLDS_DATE_TIME(&it)
                               ? bson_iter_date_time(&it)
                               : (int64_t)ts.t * 1000;
            json_array_append_new(txns, json_pack("{s:s,s:I,s:[s],s:[o]}", "position", pos, "wall", (json_int_t)wall,
                                                  "tables", ns, "rows", row));
            add_table(tables, ns);
            rows++;
        }
        bson_error_t be;
        if (mongoc_cursor_error(cur, &be)) {
            snprintf(err, errlen, "reading the oplog of %s:%u: %s", src->host, src->port, be.message);
            rc = -1;
        }
        mongoc_cursor_destroy(cur);
        bson_destroy(&filter);
        bson_destroy(&opts);
        mongoc_collection_destroy(oplog);
    }
    mongoc_client_destroy(c);
    free(taken);
    json_decref(read);
    if (rc == 0) {
        char f[32], t[32], a[32];
        sy_mongo_ts_format(from, f, sizeof f);
        sy_mongo_ts_format(to, t, sizeof t);
        sy_mongo_ts_format(after, a, sizeof a);
        json_object_set_new(out, "from", json_string(f));
        json_object_set_new(out, "read_after", json_string(a));
        json_object_set_new(out, "collected_set", have_set > 0 ? json_integer((json_int_t)skipped) : json_null());
        if (have_set <= 0)
            json_object_set_new(out, "collected_set_missing", json_string(why));
        json_object_set_new(out, "to", json_string(t));
        json_object_set_new(out, "transactions", txns);
        json_object_set_new(out, "tables", tables);
        json_object_set_new(out, "rows", json_integer((json_int_t)rows));
    } else {
        json_decref(txns);
        json_decref(tables);
    }
    return rc;
}
