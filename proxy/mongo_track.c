/* The MongoDB proxy's tracking of server-side state across a switch (proxy/mongo_track.h): request fields
 * (cursor ids, lsid + txnNumber), a reply's cursor id, and the pair's open cursors and transactions. Pure:
 * libbson over byte spans, tables in plain arrays (a handful of entries in practice; searched linearly). */
#include "proxy/mongo_track.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/grow.h"
#include "proxy/mongo_wire.h"

static int64_t iter_int(const bson_iter_t *it, bool *ok)
{
    *ok = true;
    if (BSON_ITER_HOLDS_INT64(it))
        return bson_iter_int64(it);
    if (BSON_ITER_HOLDS_INT32(it))
        return bson_iter_int32(it);
    if (BSON_ITER_HOLDS_DOUBLE(it))
        return (int64_t)bson_iter_double(it);
    *ok = false;
    return 0;
}

static enum sy_mongo_req_kind kind_of(const char *cmd)
{
    static const struct { const char *name; enum sy_mongo_req_kind kind; } kinds[] = {
        { "find", SY_MREQ_CURSOR }, { "aggregate", SY_MREQ_CURSOR }, { "listCollections", SY_MREQ_CURSOR },
        { "listIndexes", SY_MREQ_CURSOR }, { "getMore", SY_MREQ_GET_MORE }, { "killCursors", SY_MREQ_KILL },
        { "commitTransaction", SY_MREQ_COMMIT }, { "abortTransaction", SY_MREQ_ABORT },
    };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(cmd, kinds[i].name) == 0)
            return kinds[i].kind;
    return SY_MREQ_OTHER;
}

bool sy_mongo_req_info_parse(const uint8_t *body, size_t len, struct sy_mongo_req_info *out)
{
    memset(out, 0, sizeof *out);
    bson_t b;
    bson_iter_t it, sub;
    if (!bson_init_static(&b, body, len) || !bson_iter_init(&it, &b))
        return false;
    bool first = true, ok;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        if (first) {                              /* the command is the first member */
            first = false;
            out->kind = kind_of(key);
            if (out->kind == SY_MREQ_GET_MORE) {
                out->cursor_id = iter_int(&it, &ok);
                if (!ok)
                    out->kind = SY_MREQ_OTHER;    /* the server answers a malformed getMore */
            }
            continue;
        }
        if (out->kind == SY_MREQ_KILL && strcmp(key, "cursors") == 0 && BSON_ITER_HOLDS_ARRAY(&it) &&
            bson_iter_recurse(&it, &sub)) {
            while (bson_iter_next(&sub)) {
                int64_t id = iter_int(&sub, &ok);
                if (!ok)
                    continue;
                if (out->n_kill < SY_MONGO_KILL_MAX)
                    out->kill_ids[out->n_kill++] = id;
                else
                    out->kill_more = true;
            }
        } else if (strcmp(key, "lsid") == 0 && BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub) &&
                   bson_iter_find(&sub, "id") && BSON_ITER_HOLDS_BINARY(&sub)) {
            bson_subtype_t st;
            uint32_t n = 0;
            const uint8_t *data = NULL;
            bson_iter_binary(&sub, &st, &n, &data);
            if (n == SY_MONGO_LSID_LEN) {
                memcpy(out->lsid, data, SY_MONGO_LSID_LEN);
                out->has_lsid = true;
            }
        } else if (strcmp(key, "txnNumber") == 0) {
            out->txn_number = iter_int(&it, &ok);
            out->has_txn = ok;
        } else if (strcmp(key, "autocommit") == 0 && BSON_ITER_HOLDS_BOOL(&it)) {
            out->autocommit_false = !bson_iter_bool(&it);
        } else if (strcmp(key, "startTransaction") == 0 && BSON_ITER_HOLDS_BOOL(&it)) {
            out->start_transaction = bson_iter_bool(&it);
        }
    }
    return !first;
}

int sy_mongo_reply_cursor(const uint8_t *body, size_t len, int64_t *id, bool *ok)
{
    bson_t b;
    bson_iter_t it, sub;
    int found = 0;
    *id = 0;
    *ok = false;
    if (!bson_init_static(&b, body, len) || !bson_iter_init(&it, &b))
        return 0;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        bool num;
        if (strcmp(key, "ok") == 0) {
            *ok = iter_int(&it, &num) == 1 && num;
            if (BSON_ITER_HOLDS_BOOL(&it))
                *ok = bson_iter_bool(&it);
        } else if (strcmp(key, "cursor") == 0 && BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &sub) &&
                   bson_iter_find(&sub, "id")) {
            *id = iter_int(&sub, &num);
            found = num;
        }
    }
    if (!*ok)
        *id = 0;
    return found && *ok ? 1 : 0;
}

static bool dropped(int64_t id, const int64_t *drop, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (drop[i] == id)
            return true;
    return false;
}

int sy_mongo_kill_filter(const uint8_t *body, size_t len, const int64_t *drop, size_t n_drop, bson_t *out)
{
    bson_t b;
    bson_iter_t it, sub;
    bson_init(out);
    if (!bson_init_static(&b, body, len) || !bson_iter_init(&it, &b))
        return -1;
    while (bson_iter_next(&it)) {
        if (strcmp(bson_iter_key(&it), "cursors") != 0 || !BSON_ITER_HOLDS_ARRAY(&it) ||
            !bson_iter_recurse(&it, &sub)) {
            bson_append_iter(out, NULL, 0, &it);
            continue;
        }
        bson_t arr;
        uint32_t i = 0;
        bson_append_array_begin(out, "cursors", -1, &arr);
        while (bson_iter_next(&sub)) {
            bool ok;
            int64_t id = iter_int(&sub, &ok);
            if (ok && dropped(id, drop, n_drop))
                continue;
            char k[16];
            const char *kp;
            size_t kl = bson_uint32_to_string(i++, &kp, k, sizeof k);
            bson_append_iter(&arr, kp, (int)kl, &sub);
        }
        bson_append_array_end(out, &arr);
    }
    return 0;
}

/* ---- tables ---- */

void sy_mongo_track_fini(struct sy_mongo_track *t)
{
    free(t->cursors);
    free(t->txns);
    memset(t, 0, sizeof *t);
}

void sy_mongo_track_expire(struct sy_mongo_track *t, uint64_t now_ms)
{
    size_t k = 0;
    for (size_t i = 0; i < t->n_cursors; i++)
        if (now_ms < t->cursors[i].used_ms || now_ms - t->cursors[i].used_ms < SY_MONGO_CURSOR_IDLE_MS)
            t->cursors[k++] = t->cursors[i];
    t->n_cursors = k;
    k = 0;
    for (size_t i = 0; i < t->n_txns; i++)
        if (now_ms < t->txns[i].used_ms || now_ms - t->txns[i].used_ms < SY_MONGO_TXN_IDLE_MS)
            t->txns[k++] = t->txns[i];
    t->n_txns = k;
}

struct sy_mongo_cursor *sy_mongo_cursor_find(struct sy_mongo_track *t, int64_t id)
{
    for (size_t i = 0; i < t->n_cursors; i++)
        if (t->cursors[i].id == id)
            return &t->cursors[i];
    return NULL;
}

int sy_mongo_cursor_open(struct sy_mongo_track *t, int64_t id, uint32_t session, uint64_t now_ms)
{
    struct sy_mongo_cursor *c = sy_mongo_cursor_find(t, id);
    if (c == NULL) {
        if (sy_grow((void **)&t->cursors, &t->cap_cursors, t->n_cursors + 1, sizeof *t->cursors, 16) != 0)
            return -1;
        c = &t->cursors[t->n_cursors++];
    }
    *c = (struct sy_mongo_cursor){ .id = id, .state = SY_MCUR_OPEN, .session = session, .used_ms = now_ms };
    return 0;
}

void sy_mongo_cursor_drop(struct sy_mongo_track *t, int64_t id)
{
    struct sy_mongo_cursor *c = sy_mongo_cursor_find(t, id);
    if (c != NULL)
        *c = t->cursors[--t->n_cursors];
}

size_t sy_mongo_cursors_open(const struct sy_mongo_track *t, uint32_t session)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_cursors; i++)
        n += t->cursors[i].state == SY_MCUR_OPEN && (session == 0 || t->cursors[i].session == session);
    return n;
}

size_t sy_mongo_cursors_set(struct sy_mongo_track *t, enum sy_mongo_cursor_state from, enum sy_mongo_cursor_state to)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_cursors; i++)
        if (t->cursors[i].state == from) {
            t->cursors[i].state = to;
            n++;
        }
    return n;
}

struct sy_mongo_txn *sy_mongo_txn_find(struct sy_mongo_track *t, const uint8_t *lsid)
{
    for (size_t i = 0; i < t->n_txns; i++)
        if (memcmp(t->txns[i].lsid, lsid, SY_MONGO_LSID_LEN) == 0)
            return &t->txns[i];
    return NULL;
}

int sy_mongo_txn_begin(struct sy_mongo_track *t, const uint8_t *lsid, int64_t txn_number, uint32_t session,
                       uint64_t now_ms)
{
    struct sy_mongo_txn *x = sy_mongo_txn_find(t, lsid);
    if (x == NULL) {
        if (sy_grow((void **)&t->txns, &t->cap_txns, t->n_txns + 1, sizeof *t->txns, 16) != 0)
            return -1;
        x = &t->txns[t->n_txns++];
    }
    *x = (struct sy_mongo_txn){ .txn_number = txn_number, .session = session, .used_ms = now_ms };
    memcpy(x->lsid, lsid, SY_MONGO_LSID_LEN);
    return 0;
}

void sy_mongo_txn_end(struct sy_mongo_track *t, const uint8_t *lsid)
{
    struct sy_mongo_txn *x = sy_mongo_txn_find(t, lsid);
    if (x != NULL)
        *x = t->txns[--t->n_txns];
}

size_t sy_mongo_txns_open(const struct sy_mongo_track *t, uint32_t session)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_txns; i++)
        n += !t->txns[i].aborted && (session == 0 || t->txns[i].session == session);
    return n;
}

/* ---- the proxy's answers ---- */

void sy_mongo_txn_aborted_doc(bson_t *out, int64_t txn_number)
{
    char msg[400];
    snprintf(msg, sizeof msg,
             "Switchyard: transaction %" PRId64 " was aborted because the database was switched over while it was "
             "open (it ran past txn_drain_ms): none of its writes were committed; run the transaction again",
             txn_number);
    sy_mongo_error_doc(out, 251, "NoSuchTransaction", msg);
    bson_t labels;
    BSON_APPEND_ARRAY_BEGIN(out, "errorLabels", &labels);
    BSON_APPEND_UTF8(&labels, "0", "TransientTransactionError");
    bson_append_array_end(out, &labels);
}

void sy_mongo_cursor_gone_doc(bson_t *out, int64_t id)
{
    char msg[300];
    snprintf(msg, sizeof msg,
             "cursor id %" PRId64 " was opened on the other database before a Switchyard switchover and cannot "
             "continue there: run the query again",
             id);
    sy_mongo_error_doc(out, 43, "CursorNotFound", msg);
}

void sy_mongo_kill_gone_doc(bson_t *out, const int64_t *ids, size_t n)
{
    bson_t a;
    bson_init(out);
    BSON_APPEND_ARRAY_BEGIN(out, "cursorsKilled", &a);
    bson_append_array_end(out, &a);
    BSON_APPEND_ARRAY_BEGIN(out, "cursorsNotFound", &a);
    for (size_t i = 0; i < n; i++) {
        char k[16];
        const char *kp;
        size_t kl = bson_uint32_to_string((uint32_t)i, &kp, k, sizeof k);
        bson_append_int64(&a, kp, (int)kl, ids[i]);
    }
    bson_append_array_end(out, &a);
    BSON_APPEND_ARRAY_BEGIN(out, "cursorsAlive", &a);
    bson_append_array_end(out, &a);
    BSON_APPEND_ARRAY_BEGIN(out, "cursorsUnknown", &a);
    bson_append_array_end(out, &a);
    BSON_APPEND_DOUBLE(out, "ok", 1.0);
}
