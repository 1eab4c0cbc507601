/* Data verification for MongoDB (issue 10 item 12). Neither MongoDB nor FerretDB gives a snapshot to
 * read both sides at one position, so verify compares in three steps:
 *  1. business's oplog position is read and the forward writer must apply it (everything business
 *     had then is on DR, unless lost);
 *  2. per collection, one scan of each side in _id order (two cursors, merged by _id in the server's
 *     sort order: MinKey < null < numbers < strings < objects < arrays < binary < ObjectId < bool <
 *     date < timestamp < regex < MaxKey). The scan is cut into chunks of CHUNK_DOCS business
 *     documents, (from, to] in _id order, the same bounds for DR's documents; each side's chunk gets a
 *     hash of its document bytes as stored (FNV-1a 64 over length + bytes, in _id order) and a count.
 *     The merge notes each _id whose bytes differ or that one side lacks;
 *  3. a chunk whose counts or hashes differ is narrowed to those _ids; after the scan all of a
 *     collection's are read again by _id on business, then — once the writer has applied a position
 *     read after that — on DR, up to RECHECKS times: writes still flowing make a document differ for a
 *     moment; one that still differs after the writer caught up each time is listed (`confirmed`).
 *     One position read per round, not per chunk: on FerretDB each costs a scan of the oplog.
 * Reads only, on both sides; never logs document data. */
#include "replay/mongo_verify.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/comma_list.h"
#include "core/log.h"
#include "engine/mongo_client.h"
#include "engine/mongo_echo.h"

#define CHUNK_DOCS 1000
#define RECHECKS 3                 /* reads by _id after the scan found a difference */
#define WAIT_MS 30000              /* for the writer to reach a position */
#define WAIT_AFTER_TIMEOUT_MS 2000 /* once a wait timed out: the writer is stuck, do not wait long again */
#define MAX_LISTED 100             /* mismatching chunks listed per collection */
#define MAX_IDS 10                 /* differing _ids listed per chunk */
#define MAX_TRACKED 1000           /* differing _ids noted per chunk; more: the chunk is simply listed */
#define MAX_TRACKED_ALL 10000      /* differing _ids read again per collection */
#define TIMEOUT_MS 120000          /* connect and each socket read */

struct verify {
    const struct sy_pair_cfg *cfg;                      /* ref */
    bool (*reached)(void *arg, const char *pos, int ms); /* NULL: do not wait */
    void *arg;
    const struct sy_module_ctx *watch;                  /* ref: where the connections' sockets are published */
    mongoc_client_t *src, *dst;                         /* owned: business, dr */
    int wait_ms;                                        /* current budget for one wait */
    char err[1024];                                     /* fatal error: the verify fails */
};

/* One _id whose document differs, with where it was found at the last look. */
struct diff {
    bson_t id;   /* owned: {"_id": value} */
    bool on_src; /* business has it */
    bool on_dst; /* dr has it */
};

struct chunk {
    bson_t *lo, *hi;          /* owned: {"_id": value}; NULL = unbounded */
    uint64_t src_rows, dst_rows;
    uint64_t src_hash, dst_hash;
    struct diff *diffs;       /* owned */
    size_t n_diffs, cap;
    size_t untracked;         /* differing _ids past MAX_TRACKED */
};

/* ---- _id order and hashing ---------------------------------------------------------------------- */

static int type_rank(bson_type_t t)
{
    switch (t) {
    case BSON_TYPE_MINKEY: return 1;
    case BSON_TYPE_NULL:
    case BSON_TYPE_UNDEFINED: return 2;
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_DECIMAL128: return 3;
    case BSON_TYPE_SYMBOL:
    case BSON_TYPE_UTF8: return 4;
    case BSON_TYPE_DOCUMENT: return 5;
    case BSON_TYPE_ARRAY: return 6;
    case BSON_TYPE_BINARY: return 7;
    case BSON_TYPE_OID: return 8;
    case BSON_TYPE_BOOL: return 9;
    case BSON_TYPE_DATE_TIME: return 10;
    case BSON_TYPE_TIMESTAMP: return 11;
    case BSON_TYPE_REGEX: return 12;
    case BSON_TYPE_MAXKEY: return 100;
    default: return 50;
    }
}

#define CMP(a, b) ((a) < (b) ? -1 : (a) > (b) ? 1 : 0)

static int cmp_value(const bson_iter_t *a, const bson_iter_t *b);

static int cmp_bytes(const uint8_t *a, size_t la, const uint8_t *b, size_t lb)
{
    int c = memcmp(a, b, la < lb ? la : lb);
    return c != 0 ? (c < 0 ? -1 : 1) : CMP(la, lb);
}

/* Documents and arrays: element by element (type, then name for documents, then value). */
static int cmp_children(const bson_iter_t *a, const bson_iter_t *b, bool names)
{
    bson_iter_t ca, cb;
    if (!bson_iter_recurse(a, &ca) || !bson_iter_recurse(b, &cb))
        return 0;
    for (;;) {
        bool na = bson_iter_next(&ca), nb = bson_iter_next(&cb);
        if (!na || !nb)
            return CMP(na, nb);
        int c = CMP(type_rank(bson_iter_type(&ca)), type_rank(bson_iter_type(&cb)));
        if (c == 0 && names)
            c = strcmp(bson_iter_key(&ca), bson_iter_key(&cb));
        if (c == 0)
            c = cmp_value(&ca, &cb);
        if (c != 0)
            return c < 0 ? -1 : 1;
    }
}

/* MongoDB's sort order of two values (no collation). */
static int cmp_value(const bson_iter_t *a, const bson_iter_t *b)
{
    bson_type_t ta = bson_iter_type(a), tb = bson_iter_type(b);
    int c = CMP(type_rank(ta), type_rank(tb));
    if (c != 0)
        return c;
    uint32_t la, lb;
    const uint8_t *pa, *pb;
    switch (type_rank(ta)) {
    case 3:
        if (ta != BSON_TYPE_DOUBLE && tb != BSON_TYPE_DOUBLE)
            return CMP(bson_iter_as_int64(a), bson_iter_as_int64(b));
        return CMP(bson_iter_as_double(a), bson_iter_as_double(b));
    case 4: {
        const char *sa = ta == BSON_TYPE_UTF8 ? bson_iter_utf8(a, &la) : bson_iter_symbol(a, &la);
        const char *sb = tb == BSON_TYPE_UTF8 ? bson_iter_utf8(b, &lb) : bson_iter_symbol(b, &lb);
        return cmp_bytes((const uint8_t *)sa, la, (const uint8_t *)sb, lb);
    }
    case 5:
    case 6:
        return cmp_children(a, b, ta == BSON_TYPE_DOCUMENT);
    case 7: {
        bson_subtype_t sa, sb;
        bson_iter_binary(a, &sa, &la, &pa);
        bson_iter_binary(b, &sb, &lb, &pb);
        if (la != lb)
            return CMP(la, lb);
        if (sa != sb)
            return CMP(sa, sb);
        return cmp_bytes(pa, la, pb, lb);
    }
    case 8:
        c = bson_oid_compare(bson_iter_oid(a), bson_iter_oid(b));
        return CMP(c, 0);
    case 9:
        return CMP(bson_iter_bool(a), bson_iter_bool(b));
    case 10:
        return CMP(bson_iter_date_time(a), bson_iter_date_time(b));
    case 11: {
        uint32_t t1, i1, t2, i2;
        bson_iter_timestamp(a, &t1, &i1);
        bson_iter_timestamp(b, &t2, &i2);
        return t1 != t2 ? CMP(t1, t2) : CMP(i1, i2);
    }
    case 12: {
        const char *oa, *ob;
        const char *ra = bson_iter_regex(a, &oa), *rb = bson_iter_regex(b, &ob);
        c = strcmp(ra, rb);
        return c != 0 ? CMP(c, 0) : CMP(strcmp(oa, ob), 0);
    }
    default:
        return 0;
    }
}

static uint64_t hash_doc(uint64_t h, const bson_t *doc)
{
    uint8_t len[4] = { (uint8_t)doc->len, (uint8_t)(doc->len >> 8), (uint8_t)(doc->len >> 16),
                       (uint8_t)(doc->len >> 24) };
    return sy_mongo_hash_more(sy_mongo_hash_more(h, len, 4), bson_get_data(doc), doc->len);
}

/* {"_id": value} of a document (empty when it has none: never for a stored document). */
static void id_of(const bson_t *doc, bson_t *out)
{
    bson_init(out);
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, "_id"))
        bson_append_iter(out, "_id", 3, &it);
}

static bool id_iter(const bson_t *doc, bson_iter_t *it)
{
    return bson_iter_init_find(it, doc, "_id");
}

/* The _id's value as relaxed extended JSON ("5", "{ \"$oid\" : \"...\" }", "\"abc\""). */
static json_t *id_json(const bson_t *id)
{
    if (id == NULL)
        return json_null();
    size_t n;
    char *s = bson_as_relaxed_extended_json(id, &n);
    json_t *j = NULL;
    const char *pre = "{ \"_id\" : ";
    if (s != NULL && n > strlen(pre) + 2 && strncmp(s, pre, strlen(pre)) == 0)
        j = json_stringn(s + strlen(pre), n - strlen(pre) - 2);
    bson_free(s);
    return j ? j : json_string("?");
}

/* ---- chunks ------------------------------------------------------------------------------------- */

static void chunk_note(struct chunk *ch, const bson_t *doc, bool on_src, bool on_dst)
{
    if (ch->n_diffs >= MAX_TRACKED) {
        ch->untracked++;
        return;
    }
    if (ch->n_diffs == ch->cap) {
        ch->cap = ch->cap ? ch->cap * 2 : 16;
        ch->diffs = bson_realloc(ch->diffs, ch->cap * sizeof *ch->diffs);
    }
    struct diff *d = &ch->diffs[ch->n_diffs++];
    id_of(doc, &d->id);
    d->on_src = on_src;
    d->on_dst = on_dst;
}

static void chunk_reset(struct chunk *ch, bson_t *lo)
{
    for (size_t i = 0; i < ch->n_diffs; i++)
        bson_destroy(&ch->diffs[i].id);
    bson_free(ch->diffs);
    if (ch->lo != NULL)
        bson_destroy(ch->lo);
    if (ch->hi != NULL && ch->hi != lo)
        bson_destroy(ch->hi);
    *ch = (struct chunk){ .lo = lo, .src_hash = 14695981039346656037ull, .dst_hash = 14695981039346656037ull };
}

static bool reached(struct verify *v, const char *pos, int timeout_ms)
{
    if (v->reached == NULL || pos[0] == '\0')
        return true;
    if (v->reached(v->arg, pos, timeout_ms))
        return true;
    v->wait_ms = WAIT_AFTER_TIMEOUT_MS;
    return false;
}

static int business_position(struct verify *v, char *pos, size_t poslen)
{
    struct sy_mongo_ts ts = { 0, 0 };
    char err[600];
    if (sy_mongo_oplog_edge(v->src, true, &ts, err, sizeof err) < 0) {
        snprintf(v->err, sizeof v->err, "business: %s", err);
        return -1;
    }
    sy_mongo_ts_format(ts, pos, poslen);
    return 0;
}

/* Reads the chunk's differing documents by _id on one side; sets on_src/on_dst and keeps the bytes
 * found in found[i] (owned by the caller, NULL = absent). 0 or -1. */
static int read_ids(struct verify *v, mongoc_collection_t *coll, const char *side, struct chunk *ch, bson_t **found)
{
    bson_t filter = BSON_INITIALIZER, in, list;
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "_id", &in);
    BSON_APPEND_ARRAY_BEGIN(&in, "$in", &list);
    for (size_t i = 0; i < ch->n_diffs; i++) {
        bson_iter_t it;
        char key[16];
        const char *k;
        bson_uint32_to_string((uint32_t)i, &k, key, sizeof key);
        if (bson_iter_init_find(&it, &ch->diffs[i].id, "_id"))
            bson_append_iter(&list, k, -1, &it);
        found[i] = NULL;
    }
    bson_append_array_end(&in, &list);
    bson_append_document_end(&filter, &in);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, NULL, NULL);
    const bson_t *doc;
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t a, b;
        if (!id_iter(doc, &a))
            continue;
        for (size_t i = 0; i < ch->n_diffs; i++)
            if (found[i] == NULL && bson_iter_init_find(&b, &ch->diffs[i].id, "_id") &&
                bson_iter_type(&a) == bson_iter_type(&b) && cmp_value(&a, &b) == 0) {
                found[i] = bson_copy(doc);
                break;
            }
    }
    bson_error_t e;
    int rc = 0;
    if (mongoc_cursor_error(cur, &e)) {
        snprintf(v->err, sizeof v->err, "%s: reading documents by _id: %s", side, e.message);
        rc = -1;
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    return rc;
}

/* ---- one collection ----------------------------------------------------------------------------- */

struct coll_result {
    const char *status;
    uint64_t src_rows, dst_rows, chunks;
    struct chunk *pending;   /* owned: chunks that differed in the scan (bounds copied), to read again */
    size_t n_pending, cap_pending;
    size_t tracked;          /* differing _ids held in pending, at most MAX_TRACKED_ALL */
    bool confirmed;          /* every recheck came after the writer reached business's position */
    json_t *mismatches;      /* owned until put in the result */
    uint64_t bad;            /* chunks still differing after the rechecks */
    char detail[1200];
};

/* Closes a chunk of the scan: counted; kept for step 3 when it differs. */
static void chunk_close(struct chunk *ch, struct coll_result *r)
{
    r->chunks++;
    r->src_rows += ch->src_rows;
    r->dst_rows += ch->dst_rows;
    if (ch->src_rows == ch->dst_rows && ch->src_hash == ch->dst_hash && ch->n_diffs == 0 && ch->untracked == 0)
        return;
    if (r->n_pending == r->cap_pending) {
        r->cap_pending = r->cap_pending ? r->cap_pending * 2 : 8;
        r->pending = bson_realloc(r->pending, r->cap_pending * sizeof *r->pending);
    }
    struct chunk *p = &r->pending[r->n_pending++];
    *p = *ch; /* the differing _ids move; the bounds are copied (the next chunk's lo is this hi) */
    p->lo = ch->lo ? bson_copy(ch->lo) : NULL;
    p->hi = ch->hi ? bson_copy(ch->hi) : NULL;
    if (r->tracked + p->n_diffs > MAX_TRACKED_ALL) { /* too many to read again: listed as found */
        p->untracked += p->n_diffs;
        for (size_t i = 0; i < p->n_diffs; i++)
            bson_destroy(&p->diffs[i].id);
        p->n_diffs = 0;
    }
    r->tracked += p->n_diffs;
    ch->diffs = NULL;
    ch->n_diffs = ch->cap = 0;
}

/* One chunk's differing documents after both sides were read again (a: business, b: dr): equal ones are
 * dropped, the counts follow what was found. rc != 0: the reads failed, only a and b are freed. */
static void recheck_chunk(struct chunk *ch, struct coll_result *r, bson_t **a, bson_t **b, int rc)
{
    size_t kept = 0;
    for (size_t i = 0; i < ch->n_diffs; i++) {
        struct diff *d = &ch->diffs[i];
        bool same = a[i] != NULL && b[i] != NULL ? bson_equal(a[i], b[i]) : a[i] == b[i];
        if (rc == 0) {
            /* modulo 2^64: adding 0 - 1 takes one away when the document is gone now */
            uint64_t ds = (uint64_t)(a[i] != NULL) - (uint64_t)d->on_src;
            uint64_t dd = (uint64_t)(b[i] != NULL) - (uint64_t)d->on_dst;
            ch->src_rows += ds;
            ch->dst_rows += dd;
            r->src_rows += ds;
            r->dst_rows += dd;
            d->on_src = a[i] != NULL;
            d->on_dst = b[i] != NULL;
        }
        if (rc == 0 && same)
            bson_destroy(&d->id);
        else
            ch->diffs[kept++] = *d;
        if (a[i])
            bson_destroy(a[i]);
        if (b[i])
            bson_destroy(b[i]);
    }
    ch->n_diffs = kept;
}

/* Step 3: the differing _ids of every pending chunk read again on business, then — once the writer
 * reached a position read after that — on DR, up to RECHECKS times (one position read per round: on
 * FerretDB it costs a scan of the oplog). 0 or -1. */
static int recheck(struct verify *v, mongoc_collection_t *src, mongoc_collection_t *dst, struct coll_result *r)
{
    r->confirmed = true;
    int rc = 0;
    for (int round = 0; round < RECHECKS && rc == 0; round++) {
        size_t n = 0;
        for (size_t k = 0; k < r->n_pending; k++)
            n += r->pending[k].n_diffs;
        if (n == 0)
            break;
        bson_t ***a = bson_malloc0(r->n_pending * sizeof *a), ***b = bson_malloc0(r->n_pending * sizeof *b);
        for (size_t k = 0; k < r->n_pending; k++) {
            a[k] = bson_malloc0((r->pending[k].n_diffs + 1) * sizeof **a);
            b[k] = bson_malloc0((r->pending[k].n_diffs + 1) * sizeof **b);
        }
        char pos[64];
        for (size_t k = 0; k < r->n_pending && rc == 0; k++)
            if (r->pending[k].n_diffs > 0)
                rc = read_ids(v, src, "business", &r->pending[k], a[k]);
        if (rc == 0 && business_position(v, pos, sizeof pos) != 0)
            rc = -1;
        if (rc == 0 && !reached(v, pos, v->wait_ms))
            r->confirmed = false;
        for (size_t k = 0; k < r->n_pending && rc == 0; k++)
            if (r->pending[k].n_diffs > 0)
                rc = read_ids(v, dst, "dr", &r->pending[k], b[k]);
        for (size_t k = 0; k < r->n_pending; k++) {
            recheck_chunk(&r->pending[k], r, a[k], b[k], rc);
            bson_free(a[k]);
            bson_free(b[k]);
        }
        bson_free(a);
        bson_free(b);
    }
    return rc;
}

/* The chunks still differing after step 3, listed; the pending list freed. */
static void list_pending(struct coll_result *r)
{
    for (size_t k = 0; k < r->n_pending; k++) {
        struct chunk *ch = &r->pending[k];
        if (ch->n_diffs > 0 || ch->untracked > 0) {
            /* a difference the writer may still close is not called a mismatch (as MariaDB's verify) */
            if (r->confirmed || ch->untracked > 0)
                r->status = "mismatch";
            else if (strcmp(r->status, "ok") == 0)
                r->status = "not_caught_up";
            if (r->bad++ < MAX_LISTED) {
                json_t *ids = json_array();
                for (size_t i = 0; i < ch->n_diffs && i < MAX_IDS; i++)
                    json_array_append_new(ids, id_json(&ch->diffs[i].id));
                json_array_append_new(r->mismatches,
                                      json_pack("{s:o,s:o,s:I,s:I,s:b,s:o}", "from", id_json(ch->lo), "to",
                                                id_json(ch->hi), "business_rows", (json_int_t)ch->src_rows,
                                                "dr_rows", (json_int_t)ch->dst_rows, "confirmed",
                                                r->confirmed && ch->untracked == 0, "ids", ids));
            }
        }
        chunk_reset(ch, NULL);
    }
    bson_free(r->pending);
    r->pending = NULL;
    r->n_pending = r->cap_pending = 0;
}

/* Step 2: both sides in _id order, merged. 0 or -1 (v->err). */
static int scan(struct verify *v, const char *db, const char *name, struct coll_result *r)
{
    mongoc_collection_t *src = mongoc_client_get_collection(v->src, db, name);
    mongoc_collection_t *dst = mongoc_client_get_collection(v->dst, db, name);
    mongoc_cursor_t *cs = sy_mongo_find_in_id_order(src, CHUNK_DOCS);
    mongoc_cursor_t *cd = sy_mongo_find_in_id_order(dst, CHUNK_DOCS);
    const bson_t *a = NULL, *b = NULL;
    bool more_a = mongoc_cursor_next(cs, &a), more_b = mongoc_cursor_next(cd, &b);
    struct chunk ch = { 0 };
    chunk_reset(&ch, NULL);
    int rc = 0;
    while (rc == 0 && (more_a || more_b)) {
        bson_iter_t ia, ib;
        int c = !more_a ? 1 : !more_b ? -1 : id_iter(a, &ia) && id_iter(b, &ib) ? cmp_value(&ia, &ib) : 0;
        bool took_src = c <= 0;
        if (c <= 0) {
            ch.src_rows++;
            ch.src_hash = hash_doc(ch.src_hash, a);
        }
        if (c >= 0) {
            ch.dst_rows++;
            ch.dst_hash = hash_doc(ch.dst_hash, b);
        }
        if (c != 0 || !bson_equal(a, b))
            chunk_note(&ch, c <= 0 ? a : b, c <= 0, c >= 0);
        if (took_src && ch.src_rows == CHUNK_DOCS) { /* the chunk ends at this _id */
            ch.hi = bson_new();
            bson_iter_t it;
            if (id_iter(a, &it))
                bson_append_iter(ch.hi, "_id", 3, &it);
        }
        if (c <= 0)
            more_a = mongoc_cursor_next(cs, &a);
        if (c >= 0)
            more_b = mongoc_cursor_next(cd, &b);
        if (ch.hi != NULL && (more_a || more_b)) {
            bson_t *lo = ch.hi;
            chunk_close(&ch, r);
            ch.hi = NULL;
            chunk_reset(&ch, lo);
        }
    }
    bson_error_t e;
    if (rc == 0 && (mongoc_cursor_error(cs, &e) || mongoc_cursor_error(cd, &e))) {
        snprintf(v->err, sizeof v->err, "reading %s.%s: %s", db, name, e.message);
        rc = -1;
    }
    if (rc == 0 && (ch.src_rows > 0 || ch.dst_rows > 0 || r->chunks == 0)) {
        if (ch.hi != NULL) { /* the last chunk ended exactly at CHUNK_DOCS: unbounded all the same */
            bson_destroy(ch.hi);
            ch.hi = NULL;
        }
        chunk_close(&ch, r);
    }
    chunk_reset(&ch, NULL);
    if (rc == 0)
        rc = recheck(v, src, dst, r);
    list_pending(r);
    mongoc_cursor_destroy(cs);
    mongoc_cursor_destroy(cd);
    mongoc_collection_destroy(src);
    mongoc_collection_destroy(dst);
    return rc;
}

/* Whether dr has the collection: 1 yes, 0 no, -1 error. */
static int dr_has(struct verify *v, const char *db, const char *name)
{
    bson_t info;
    bson_error_t e;
    int rc = sy_mongo_collection_info(v->dst, db, name, &info, &e);
    bson_destroy(&info);
    if (rc < 0)
        snprintf(v->err, sizeof v->err, "dr: listing the collections of %s: %s", db, e.message);
    return rc;
}

static int verify_collection(struct verify *v, const char *ns, bool caught_up, json_t *tables, bool *clean)
{
    char db[128];
    const char *name;
    if (!sy_mongo_ns_split(ns, db, sizeof db, &name))
        return 0;
    struct coll_result r = { .status = "ok", .mismatches = json_array() };
    int has = dr_has(v, db, name);
    if (has < 0) {
        json_decref(r.mismatches);
        return -1;
    }
    if (has == 0) {
        mongoc_collection_t *c = mongoc_client_get_collection(v->src, db, name);
        int64_t n = mongoc_collection_estimated_document_count(c, NULL, NULL, NULL, NULL);
        mongoc_collection_destroy(c);
        r.src_rows = n > 0 ? (uint64_t)n : 0;
        r.status = caught_up ? "missing_on_dr" : "not_caught_up";
        if (!caught_up)
            snprintf(r.detail, sizeof r.detail, "the forward writer has not created it yet");
    } else if (scan(v, db, name, &r) != 0) {
        json_decref(r.mismatches);
        return -1;
    }
    if (r.bad > MAX_LISTED)
        snprintf(r.detail, sizeof r.detail, "%llu mismatching chunk(s), the first %d listed",
                 (unsigned long long)r.bad, MAX_LISTED);
    if (strcmp(r.status, "not_caught_up") == 0 && r.detail[0] == '\0')
        snprintf(r.detail, sizeof r.detail, "%llu chunk(s) differ, but the forward writer did not reach business's "
                 "position in time to confirm it", (unsigned long long)r.bad);
    if (strcmp(r.status, "ok") == 0 && !caught_up) {
        r.status = "not_caught_up"; /* equal now, but what business had at the start is not proven on dr */
        snprintf(r.detail, sizeof r.detail, "the forward writer did not reach business's position in time");
    }
    if (strcmp(r.status, "ok") != 0)
        *clean = false;
    sy_log_info("pair %s: verify %s: %s, %llu chunk(s), %llu/%llu document(s)", v->cfg->name, ns, r.status,
                (unsigned long long)r.chunks, (unsigned long long)r.src_rows, (unsigned long long)r.dst_rows);
    json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:o}", "table", ns, "status", r.status, "business_rows",
                          (json_int_t)r.src_rows, "dr_rows", (json_int_t)r.dst_rows, "chunks", (json_int_t)r.chunks,
                          "mismatches", r.mismatches);
    if (j != NULL && r.detail[0])
        json_object_set_new(j, "detail", json_string(r.detail));
    json_array_append_new(tables, j);
    return 0;
}

/* ---- the command -------------------------------------------------------------------------------- */

static int run(struct verify *v, const char *filter, json_t *result)
{
    char err[700];
    if ((v->src = sy_mongo_connect_watched(v->cfg, &v->cfg->business, TIMEOUT_MS, v->watch, err, sizeof err)) == NULL ||
        (v->dst = sy_mongo_connect_watched(v->cfg, &v->cfg->dr, TIMEOUT_MS, v->watch, err, sizeof err)) == NULL) {
        snprintf(v->err, sizeof v->err, "%s: %s", v->src == NULL ? "business" : "dr", err);
        return -1;
    }
    char pos[64];
    if (business_position(v, pos, sizeof pos) != 0)
        return -1;
    bson_error_t e;
    char **all = sy_mongo_synced_collections(v->src, v->cfg, &e, err, sizeof err);
    if (all == NULL) {
        snprintf(v->err, sizeof v->err, "business: %s", err);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; all[i] != NULL; i++) {
        char db[128];
        const char *name;
        if (sy_mongo_ns_split(all[i], db, sizeof db, &name) && sy_objects_filter_match(filter, db, name))
            all[n++] = all[i];
        else
            bson_free(all[i]);
    }
    all[n] = NULL;
    if (n == 0 && filter != NULL) {
        bson_strfreev(all);
        snprintf(v->err, sizeof v->err, "no synchronized collection matches --objects '%s'", filter);
        return -2;
    }
    /* Step 1: what business had now is on dr once the writer is past this. */
    bool caught_up = reached(v, pos, v->wait_ms);
    json_t *tables = json_array();
    bool clean = true;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = verify_collection(v, all[i], caught_up, tables, &clean);
    bson_strfreev(all);
    if (rc != 0) {
        json_decref(tables);
        return -1;
    }
    json_object_set_new(result, "pair", json_string(v->cfg->name));
    json_object_set_new(result, "clean", json_boolean(clean));
    json_object_set_new(result, "tables", tables);
    return 0;
}

int sy_mongo_verify(const struct sy_pair_cfg *cfg, const struct sy_module_ctx *watch, const char *objects_filter,
                    bool (*write_reached)(void *arg, const char *position, int timeout_ms), void *arg,
                    json_t *result, char *err, size_t errlen)
{
    struct verify v = { .cfg = cfg, .watch = watch, .reached = write_reached, .arg = arg, .wait_ms = WAIT_MS };
    int rc = run(&v, objects_filter, result);
    if (rc != 0)
        snprintf(err, errlen, "%s", v.err);
    if (v.src != NULL)
        mongoc_client_destroy(v.src);
    if (v.dst != NULL)
        mongoc_client_destroy(v.dst);
    return rc;
}
