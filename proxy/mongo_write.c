/* The documents an acknowledged write changed (proxy/mongo_write.h). */
#include "proxy/mongo_write.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "engine/mongo_echo.h"

static const struct {
    const char *cmd, *statements;
    enum sy_mongo_write_op op;
} WRITES[] = {
    { "insert", "documents", SY_MWRITE_INSERT },
    { "update", "updates", SY_MWRITE_UPDATE },
    { "delete", "deletes", SY_MWRITE_DELETE },
};

/* The key of {_id: value} at it in namespace db.coll. */
static uint64_t key_of(const struct sy_mongo_write *w, const bson_iter_t *it)
{
    char ns[sizeof w->db + sizeof w->coll + 1];
    snprintf(ns, sizeof ns, "%s.%s", w->db, w->coll);
    return sy_mongo_id_key(ns, it);
}

/* Whether a filter is exactly {_id: value} with value a plain value (not an operator document). */
static bool filter_is_id(const bson_t *q, bson_iter_t *id)
{
    bson_iter_t it, sub;
    if (!bson_iter_init(&it, q) || !bson_iter_next(&it) || strcmp(bson_iter_key(&it), "_id") != 0)
        return false;
    *id = it;
    if (bson_iter_next(&it) || BSON_ITER_HOLDS_REGEX(id) || BSON_ITER_HOLDS_ARRAY(id))
        return false;
    if (BSON_ITER_HOLDS_DOCUMENT(id) && bson_iter_recurse(id, &sub) && bson_iter_next(&sub) &&
        bson_iter_key(&sub)[0] == '$')
        return false;
    return true;
}

/* The key a statement names (0: none). */
static uint64_t statement_key(const struct sy_mongo_write *w, const uint8_t *doc, size_t len)
{
    bson_t d, q;
    bson_iter_t it, id;
    if (!bson_init_static(&d, doc, len))
        return 0;
    if (w->op == SY_MWRITE_INSERT)
        return bson_iter_init_find(&it, &d, "_id") ? key_of(w, &it) : 0;
    uint32_t qlen;
    const uint8_t *qdata;
    if (!bson_iter_init_find(&it, &d, "q") || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return 0;
    bson_iter_document(&it, &qlen, &qdata);
    if (!bson_init_static(&q, qdata, qlen) || !filter_is_id(&q, &id))
        return 0;
    return key_of(w, &id);
}

/* FNV-1a 64 over a document's elements other than _id (their bytes as stored): equal for documents whose
 * fields other than _id are the same bytes in the same order. */
static uint64_t hash_without_id(const uint8_t *doc, size_t len)
{
    bson_t d;
    bson_iter_t it;
    uint64_t h = 1469598103934665603ULL;
    if (!bson_init_static(&d, doc, len) || !bson_iter_init(&it, &d))
        return 0;
    while (bson_iter_next(&it)) {
        if (strcmp(bson_iter_key(&it), "_id") == 0)
            continue;
        uint32_t off = bson_iter_offset(&it), next = it.next_off;
        for (uint32_t i = off; i < next && i < len; i++) {
            h ^= doc[i];
            h *= 1099511628211ULL;
        }
    }
    return h;
}

static bool empty_doc(const bson_iter_t *it)
{
    bson_iter_t sub;
    return !BSON_ITER_HOLDS_DOCUMENT(it) || !bson_iter_recurse(it, &sub) || !bson_iter_next(&sub);
}

/* findAndModify {findAndModify: coll, query, remove, update, new, upsert, fields, $db}: w->n = 1. */
static int fam_parse(bson_t *b, struct sy_mongo_write *w)
{
    bson_iter_t it;
    bool returns_new = false, replacement = false;
    const uint8_t *upd = NULL;
    uint32_t upd_len = 0;
    uint64_t key = 0;
    if (!bson_iter_init(&it, b))
        return -1;
    bson_iter_next(&it);
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (strcmp(k, "query") == 0 && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            uint32_t qlen;
            const uint8_t *qdata;
            bson_t q;
            bson_iter_t id;
            bson_iter_document(&it, &qlen, &qdata);
            if (bson_init_static(&q, qdata, qlen) && filter_is_id(&q, &id))
                key = key_of(w, &id);
        } else if (strcmp(k, "remove") == 0) {
            w->fam_remove = bson_iter_as_bool(&it);
        } else if (strcmp(k, "new") == 0) {
            returns_new = bson_iter_as_bool(&it);
        } else if (strcmp(k, "fields") == 0) {
            w->fam_projected = !empty_doc(&it);
        } else if (strcmp(k, "update") == 0 && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            bson_iter_t sub;
            bson_iter_document(&it, &upd_len, &upd);
            replacement = !bson_iter_recurse(&it, &sub) || !bson_iter_next(&sub) || bson_iter_key(&sub)[0] != '$';
        }
    }
    if (upd != NULL && replacement && !returns_new) {
        bson_t u;
        bson_iter_t id;
        w->fam_replace_diff = bson_init_static(&u, upd, upd_len) && !bson_iter_init_find(&id, &u, "_id");
        w->fam_replace_hash = w->fam_replace_diff ? hash_without_id(upd, upd_len) : 0;
    }
    w->keys = malloc(sizeof *w->keys);
    if (w->keys == NULL)
        return -1;
    w->keys[0] = key;
    w->n = 1;
    return 1;
}

static int add_statement(struct sy_mongo_write *w, const uint8_t *doc, size_t len, size_t *cap)
{
    if (w->n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        uint64_t *k = realloc(w->keys, c * sizeof *k);
        if (k == NULL)
            return -1;
        w->keys = k;
        *cap = c;
    }
    w->keys[w->n++] = statement_key(w, doc, len);
    return 0;
}

int sy_mongo_write_parse(const struct sy_mongo_msg *m, struct sy_mongo_write *w)
{
    memset(w, 0, sizeof *w);
    w->ordered = true;
    bson_t b;
    bson_iter_t it, arr;
    const char *stmts = NULL;
    if (!bson_init_static(&b, m->body, m->body_len) || !bson_iter_init(&it, &b) || !bson_iter_next(&it))
        return 0;
    for (size_t i = 0; i < sizeof WRITES / sizeof WRITES[0]; i++)
        if (strcmp(bson_iter_key(&it), WRITES[i].cmd) == 0) {
            stmts = WRITES[i].statements;
            w->op = WRITES[i].op;
        }
    if (strcmp(bson_iter_key(&it), "findAndModify") == 0 || strcmp(bson_iter_key(&it), "findandmodify") == 0)
        w->op = SY_MWRITE_FAM;
    if (w->op == SY_MWRITE_NONE || !BSON_ITER_HOLDS_UTF8(&it)) {
        w->op = SY_MWRITE_NONE;
        return 0;
    }
    snprintf(w->coll, sizeof w->coll, "%s", bson_iter_utf8(&it, NULL));
    bool in_transaction = false;
    while (bson_iter_next(&it)) {                      /* the namespace first: keys need it */
        const char *key = bson_iter_key(&it);
        if (strcmp(key, "$db") == 0 && BSON_ITER_HOLDS_UTF8(&it))
            snprintf(w->db, sizeof w->db, "%s", bson_iter_utf8(&it, NULL));
        else if (strcmp(key, "ordered") == 0)
            w->ordered = bson_iter_as_bool(&it);
        else if (strcmp(key, "autocommit") == 0)
            in_transaction = true;                     /* part of a multi-document transaction */
    }
    if (in_transaction || w->db[0] == '\0') {
        w->op = SY_MWRITE_NONE;
        return in_transaction ? 0 : -1;
    }
    if (w->op == SY_MWRITE_FAM) {
        if (fam_parse(&b, w) == 1)
            return 1;
        goto fail;
    }
    size_t cap = 0;
    if (bson_iter_init_find(&it, &b, stmts) && BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr)) {
        while (bson_iter_next(&arr)) {
            uint32_t dlen;
            const uint8_t *d;
            if (!BSON_ITER_HOLDS_DOCUMENT(&arr))
                continue;
            bson_iter_document(&arr, &dlen, &d);
            if (add_statement(w, d, dlen, &cap) != 0)
                goto fail;
        }
    }
    for (unsigned s = 0; s < m->nseqs; s++) {
        if (m->seqs[s].id_len != strlen(stmts) || memcmp(m->seqs[s].id, stmts, m->seqs[s].id_len) != 0)
            continue;
        size_t off = 0, dlen;
        const uint8_t *d;
        while (sy_mongo_seq_next(&m->seqs[s], &off, &d, &dlen))
            if (add_statement(w, d, dlen, &cap) != 0)
                goto fail;
    }
    return 1;
fail:
    sy_mongo_write_fini(w);
    return -1;
}

void sy_mongo_write_fini(struct sy_mongo_write *w)
{
    free(w->keys);
    w->keys = NULL;
    w->n = 0;
    w->op = SY_MWRITE_NONE;
}

static int64_t count_of(const bson_t *r, const char *name)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, r, name) || !BSON_ITER_HOLDS_NUMBER(&it))
        return 0;
    int64_t v = bson_iter_as_int64(&it);
    return v < 0 ? 0 : v > (int64_t)1 << 40 ? (int64_t)1 << 40 : v;
}

/* The statement indexes of an array of {index, ...} (writeErrors, upserted) as a bitmap over w->n; the
 * smallest into *first (SIZE_MAX: none). false when there is none. */
static bool indexes(const bson_t *r, const char *name, size_t n, uint8_t *mark, size_t *first)
{
    bson_iter_t it, arr, el;
    *first = SIZE_MAX;
    bool any = false;
    if (!bson_iter_init_find(&it, r, name) || !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr))
        return false;
    while (bson_iter_next(&arr)) {
        any = true;
        if (!BSON_ITER_HOLDS_DOCUMENT(&arr) || !bson_iter_recurse(&arr, &el) || !bson_iter_find(&el, "index") ||
            !BSON_ITER_HOLDS_NUMBER(&el))
            continue;
        int64_t i = bson_iter_as_int64(&el);
        if (i < 0 || (uint64_t)i >= n)
            continue;
        mark[i] = 1;
        if ((size_t)i < *first)
            *first = (size_t)i;
    }
    return any;
}

/* Keys of the upserted documents (reply `upserted: [{index, _id}]`). */
static size_t upserted_keys(const struct sy_mongo_write *w, const bson_t *r, uint64_t *keys, size_t at)
{
    bson_iter_t it, arr, el;
    if (!bson_iter_init_find(&it, r, "upserted") || !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr))
        return at;
    while (bson_iter_next(&arr) && at < w->n)
        if (BSON_ITER_HOLDS_DOCUMENT(&arr) && bson_iter_recurse(&arr, &el) && bson_iter_find(&el, "_id"))
            keys[at++] = key_of(w, &el);
    return at;
}

/* findAndModify's reply {lastErrorObject: {n, updatedExisting, upserted}, value}: at most one key. */
static void fam_acked(const struct sy_mongo_write *w, const bson_t *r, uint64_t *keys, struct sy_mongo_write_ack *out)
{
    bson_iter_t it, leo, v, id;
    bson_t le = BSON_INITIALIZER, value = BSON_INITIALIZER;
    uint32_t len;
    const uint8_t *data;
    if (!bson_iter_init_find(&it, r, "lastErrorObject") || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return;
    bson_iter_document(&it, &len, &data);
    if (!bson_init_static(&le, data, len) || count_of(&le, "n") != 1)
        return;                                        /* nothing matched: nothing written */
    if (bson_iter_init_find(&leo, &le, "upserted")) {
        keys[0] = key_of(w, &leo);
        out->n_keys = 1;
        return;
    }
    bool has_value = bson_iter_init_find(&v, r, "value") && BSON_ITER_HOLDS_DOCUMENT(&v);
    if (has_value) {
        bson_iter_document(&v, &len, &data);
        has_value = bson_init_static(&value, data, len);
    }
    bool value_id = has_value && !w->fam_projected && bson_iter_init_find(&id, &value, "_id");
    bool changed = false;
    if (w->fam_remove) {
        changed = true;
    } else if (w->fam_replace_diff && has_value && !w->fam_projected && bson_iter_init_find(&leo, &le,
                                                                                         "updatedExisting") &&
               bson_iter_as_bool(&leo)) {
        changed = hash_without_id(data, len) != w->fam_replace_hash;
    }
    if (changed && value_id) {
        keys[0] = key_of(w, &id);
        out->n_keys = 1;
    } else if (changed && w->keys[0] != 0) {
        keys[0] = w->keys[0];
        out->n_keys = 1;
    } else {
        out->unproven = 1;
    }
}

bool sy_mongo_write_acked(const struct sy_mongo_write *w, const uint8_t *reply, size_t len, uint64_t *keys,
                          struct sy_mongo_write_ack *out)
{
    memset(out, 0, sizeof *out);
    bson_t r;
    bson_iter_t it;
    if (!bson_init_static(&r, reply, len) || !bson_validate(&r, BSON_VALIDATE_NONE, NULL))
        return false;
    if (bson_iter_init_find(&it, &r, "operationTime") && BSON_ITER_HOLDS_TIMESTAMP(&it)) {
        bson_iter_timestamp(&it, &out->op_t, &out->op_i);
        out->has_op_time = true;
    }
    if (!bson_iter_init_find(&it, &r, "ok") || !BSON_ITER_HOLDS_NUMBER(&it) || bson_iter_as_int64(&it) != 1)
        return true;                                   /* failed: nothing acknowledged */
    if (w->op == SY_MWRITE_FAM) {
        if (w->n >= 1)
            fam_acked(w, &r, keys, out);
        return true;
    }
    uint8_t *err = calloc(w->n + 1, 1), *ups = calloc(w->n + 1, 1);
    if (err == NULL || ups == NULL) {
        free(err);
        free(ups);
        out->unproven = (size_t)count_of(&r, "n");
        return true;
    }
    size_t first_err, first_up, n = (size_t)count_of(&r, "n");
    bool errors = indexes(&r, "writeErrors", w->n, err, &first_err);
    size_t proven = 0, k = 0;
    if (w->op == SY_MWRITE_INSERT) {
        for (size_t i = 0; i < w->n; i++)
            if (!(w->ordered ? i >= first_err : err[i]))
                proven++;
        if (proven == n) {
            for (size_t i = 0; i < w->n; i++)
                if (!(w->ordered ? i >= first_err : err[i]) && w->keys[i] != 0)
                    keys[k++] = w->keys[i];
            out->unproven = n - k;
        } else {
            out->unproven = n;
        }
    } else if (w->op == SY_MWRITE_UPDATE) {
        size_t modified = (size_t)count_of(&r, "nModified");
        bool up = indexes(&r, "upserted", w->n, ups, &first_up);
        size_t named = 0, plain = 0;
        for (size_t i = 0; i < w->n; i++)
            if (!ups[i]) {
                plain++;
                named += w->keys[i] != 0;
            }
        if (!errors && named == plain && modified == plain) {
            for (size_t i = 0; i < w->n; i++)
                if (!ups[i])
                    keys[k++] = w->keys[i];
        } else {
            out->unproven = modified;
        }
        if (up)
            k = upserted_keys(w, &r, keys, k);
    } else {
        size_t named = 0;
        for (size_t i = 0; i < w->n; i++)
            named += w->keys[i] != 0;
        if (!errors && named == w->n && n == w->n) {
            for (size_t i = 0; i < w->n; i++)
                keys[k++] = w->keys[i];
        } else {
            out->unproven = n;
        }
    }
    out->n_keys = k;
    free(err);
    free(ups);
    return true;
}
