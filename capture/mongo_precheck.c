/* The MongoDB precheck (issue 10 item 12; docs/mongodb.md): one blocking pass over both sides of a pair
 * as admin_user that appends a {name, status, detail, fix} object per check. It reads only (hello,
 * listDatabases, listCollections, listIndexes, admin.system.users) and changes nothing. The oplog is
 * checked on both sides whatever the direction: the forward instance collects from business, the
 * reverse one from DR. A side that cannot be reached turns its dependent checks into "skipped".
 * Credentials: the proxy's SCRAM pass-through logs a client in on either side with what it proved on
 * one, so both must hold the same credential documents (same salt); the forward initial sync copies
 * them, so a difference is a warning there and a failure for the reverse direction (a switch). */
#include "capture/mongo_precheck.h"

#include <stdio.h>
#include <string.h>

#include "core/checks.h"
#include "engine/mongo_client.h"

#define CONNECT_TIMEOUT_MS 5000
#define OPLOG_MIN_BYTES (64ll << 20) /* smaller: a burst of writes can outrun a paused instance */
#define MAX_NAMED 20                 /* users or collections named in one detail */

struct run {
    const struct sy_pair_cfg *cfg; /* ref */
    enum sy_direction dir;
    json_t *checks;                /* ref: the caller's array */
    bool failed;                   /* a check with status "fail" was added */
};

struct side {
    const char *name;             /* "business" | "dr" */
    const struct sy_endpoint *ep; /* ref: the pair's config */
    char label[300];              /* "business 127.0.0.1:27017": how details name the server */
    mongoc_client_t *c;           /* owned; NULL when unreachable */
    char skip[600];               /* why c is NULL, for the checks skipped because of it */
    char skip_see[32];            /* the check to fix first: "dr_reachable" */
};

static void add_check(struct run *r, const char *name, const char *status, const char *detail, const char *fix)
{
    if (sy_check_add(r->checks, name, status, detail, fix))
        r->failed = true;
}

static void add_skipped(struct run *r, const char *name, const char *why, const char *see)
{
    sy_check_add_skipped(r->checks, name, why, see);
}

static void add_skipped_side(struct run *r, const char *name, const struct side *s)
{
    add_skipped(r, name, s->skip, s->skip_see);
}

/* "<side>_<what>": the per-side check names ("business_oplog"). */
static const char *side_check(const struct side *s, const char *what, char *buf, size_t len)
{
    snprintf(buf, len, "%s_%s", s->name, what);
    return buf;
}

static void check_objects(struct run *r)
{
    const struct sy_pair_cfg *cfg = r->cfg;
    if (cfg->n_objects == 0) {
        char fix[256];
        snprintf(fix, sizeof fix, "set objects in [pair %s], e.g. objects = shop.*, crm.customers", cfg->name);
        add_check(r, "objects_configured", "fail", "objects is empty: nothing to synchronize", fix);
        return;
    }
    bson_string_t *b = bson_string_new(NULL);
    bson_string_append_printf(b, "%zu pattern%s: ", cfg->n_objects, cfg->n_objects == 1 ? "" : "s");
    for (size_t i = 0; i < cfg->n_objects; i++)
        bson_string_append_printf(b, "%s%s.%s", i ? ", " : "", cfg->objects[i].db, cfg->objects[i].table);
    add_check(r, "objects_configured", "pass", b->str, NULL);
    bson_string_free(b, true);
}

static void side_connect(struct run *r, struct side *s)
{
    char err[512], name[48], detail[700], fix[512];
    s->c = sy_mongo_connect(r->cfg, s->ep, CONNECT_TIMEOUT_MS, err, sizeof err);
    side_check(s, "reachable", name, sizeof name);
    if (s->c != NULL) {
        snprintf(detail, sizeof detail, "%s: logged in as %s (SCRAM-SHA-256, admin)", s->label, r->cfg->admin_user);
        add_check(r, name, "pass", detail, NULL);
        return;
    }
    snprintf(detail, sizeof detail, "%s %s", s->name, err); /* err starts with "host:port: " */
    snprintf(fix, sizeof fix, "start the server at %s:%u, or correct [pair %s] %s; admin_user must log in to the "
             "admin database with SCRAM-SHA-256 and admin_password", s->ep->host, s->ep->port, r->cfg->name,
             s->name);
    add_check(r, name, "fail", detail, fix);
    snprintf(s->skip, sizeof s->skip, "%s cannot be used: %s", s->name, err);
    snprintf(s->skip_see, sizeof s->skip_see, "%s", name);
}

static void check_distinct_servers(struct run *r, const struct side *b, const struct side *d)
{
    char detail[700];
    if (strcmp(b->ep->host, d->ep->host) == 0 && b->ep->port == d->ep->port) {
        snprintf(detail, sizeof detail, "business and dr are the same address %s:%u", b->ep->host, b->ep->port);
        add_check(r, "distinct_servers", "fail", detail, "point dr at the disaster-recovery server");
        return;
    }
    snprintf(detail, sizeof detail, "%s and %s are different addresses", b->label, d->label);
    add_check(r, "distinct_servers", "pass", detail, NULL);
}

/* hello.setName: FerretDB reports one only with --repl-set-name, and drivers (and the proxy's
 * topology rewrite) treat the server as a replica-set member by it. */
static void check_replica_set(struct run *r, struct side *s)
{
    char name[48], detail[800];
    side_check(s, "replica_set", name, sizeof name);
    if (s->c == NULL) {
        add_skipped_side(r, name, s);
        return;
    }
    bson_t cmd = BSON_INITIALIZER, reply;
    BSON_APPEND_INT32(&cmd, "hello", 1);
    bson_error_t e;
    bool ok = mongoc_client_command_simple(s->c, "admin", &cmd, NULL, &reply, &e);
    bson_destroy(&cmd);
    bson_iter_t it;
    if (!ok) {
        snprintf(detail, sizeof detail, "%s: hello failed: %s", s->label, e.message);
        add_check(r, name, "fail", detail, "make sure the server answers hello");
    } else if (bson_iter_init_find(&it, &reply, "setName") && BSON_ITER_HOLDS_UTF8(&it) &&
               bson_iter_utf8(&it, NULL)[0] != '\0') {
        snprintf(detail, sizeof detail, "%s: replica set %s", s->label, bson_iter_utf8(&it, NULL));
        add_check(r, name, "pass", detail, NULL);
    } else {
        snprintf(detail, sizeof detail, "%s: hello has no setName: the server is not a replica-set member (it "
                 "keeps no oplog to collect from)", s->label);
        add_check(r, name, "fail", detail,
                  "start it as a replica-set member (FerretDB: --repl-set-name=rs0; MongoDB: --replSet and "
                  "rs.initiate())");
    }
    bson_destroy(&reply);
}

/* A number of a document field (int32, int64 or double); 0 when absent. */
static int64_t field_number(const bson_t *doc, const char *dotted)
{
    bson_iter_t it, f;
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, dotted, &f))
        return 0;
    return BSON_ITER_HOLDS_NUMBER(&f) ? bson_iter_as_int64(&f) : 0;
}

static void check_oplog(struct run *r, struct side *s)
{
    char name[48], detail[900], fix[600];
    side_check(s, "oplog", name, sizeof name);
    if (s->c == NULL) {
        add_skipped_side(r, name, s);
        return;
    }
    snprintf(fix, sizeof fix, "on %s: db.getSiblingDB(\"local\").createCollection(\"oplog.rs\", {capped: true, "
             "size: 1073741824}) (FerretDB logs inserts, updates and deletes only once it exists)", s->label);
    bson_t doc;
    bson_error_t e;
    int found = sy_mongo_collection_info(s->c, "local", SY_MONGO_OPLOG, &doc, &e);
    /* both sides whatever the direction: an instance collects from each (forward, then reverse) */
    const char *role = strcmp(s->name, "business") == 0 ? "the forward instance collects from it"
                                                         : "a reverse instance collects from it";
    if (found < 0) {
        snprintf(detail, sizeof detail, "%s: cannot list local's collections: %s", s->label, e.message);
        add_check(r, name, "fail", detail, "make sure admin_user can read the local database");
    } else if (found == 0) {
        snprintf(detail, sizeof detail, "%s: local.oplog.rs does not exist: the server logs no changes (%s)",
                 s->label, role);
        add_check(r, name, "fail", detail, fix);
    } else {
        bson_iter_t it, f;
        bool capped = bson_iter_init(&it, &doc) && bson_iter_find_descendant(&it, "options.capped", &f) &&
                      bson_iter_as_bool(&f);
        int64_t size = field_number(&doc, "options.size");
        if (!capped) {
            snprintf(detail, sizeof detail, "%s: local.oplog.rs is not capped (%s)", s->label, role);
            add_check(r, name, "fail", detail, "drop it and create it capped");
        } else if (size < OPLOG_MIN_BYTES) {
            snprintf(detail, sizeof detail, "%s: local.oplog.rs is capped at %lld bytes (%lld MB): entries an "
                     "instance has not collected yet may be overwritten during a burst or a pause (%s)", s->label,
                     (long long)size, (long long)(size >> 20), role);
            add_check(r, name, "warn", detail, "re-create it larger (at least 64 MB; 1 GB or more is usual)");
        } else {
            snprintf(detail, sizeof detail, "%s: local.oplog.rs exists, capped at %lld MB", s->label,
                     (long long)(size >> 20));
            add_check(r, name, "pass", detail, NULL);
        }
    }
    bson_destroy(&doc);
}

static bool name_in(char **names, const char *name)
{
    for (size_t i = 0; names != NULL && names[i] != NULL; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* Whether the collection has the unique _id index (every document is then found by its _id: the writer
 * applies by _id, verify reads in _id order). 1 yes, 0 no, -1 error (e). */
static int has_id_index(mongoc_client_t *c, const char *db, const char *coll, bson_error_t *e)
{
    mongoc_collection_t *col = mongoc_client_get_collection(c, db, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(col, NULL);
    const bson_t *doc;
    int rc = 0;
    while (rc == 0 && mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "name") && BSON_ITER_HOLDS_UTF8(&it) &&
            strcmp(bson_iter_utf8(&it, NULL), "_id_") == 0)
            rc = 1;
    }
    if (rc == 0 && mongoc_cursor_error(cur, e))
        rc = -1;
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(col);
    return rc;
}

/* On the source: every database and collection named in objects exists; every synchronized collection
 * has its _id index. */
static void check_collections(struct run *r, struct side *src)
{
    const struct sy_pair_cfg *cfg = r->cfg;
    char detail[1400], fix[600];
    if (src->c == NULL) {
        add_skipped_side(r, "object_collections", src);
        add_skipped_side(r, "id_indexes", src);
        return;
    }
    if (cfg->n_objects == 0) {
        add_skipped(r, "object_collections", "objects is empty", "objects_configured");
        add_skipped(r, "id_indexes", "objects is empty", "objects_configured");
        return;
    }
    bson_error_t e;
    char err[700];
    char **dbs = mongoc_client_get_database_names_with_opts(src->c, NULL, &e);
    char **colls = dbs ? sy_mongo_synced_collections(src->c, cfg, &e, err, sizeof err) : NULL;
    if (dbs == NULL || colls == NULL) {
        snprintf(detail, sizeof detail, "%s (source): %s%s", src->label, dbs ? err : "listing databases: ",
                 dbs ? "" : e.message);
        add_check(r, "object_collections", "fail", detail, "make sure admin_user can list databases and collections");
        add_check(r, "id_indexes", "fail", detail, "make sure admin_user can list databases and collections");
        bson_strfreev(dbs);
        return;
    }
    bson_string_t *missing = bson_string_new(NULL);
    for (size_t i = 0; i < cfg->n_objects; i++) {
        const struct sy_object_pattern *o = &cfg->objects[i];
        char ns[140];
        snprintf(ns, sizeof ns, "%s.%s", o->db, o->table);
        if (!name_in(dbs, o->db))
            bson_string_append_printf(missing, "%sdatabase %s (%s)", missing->len ? ", " : "", o->db, ns);
        else if (strcmp(o->table, "*") != 0 && !name_in(colls, ns))
            bson_string_append_printf(missing, "%scollection %s", missing->len ? ", " : "", ns);
    }
    size_t n = 0;
    while (colls[n] != NULL)
        n++;
    if (missing->len > 0) {
        snprintf(detail, sizeof detail, "%s (source): no %s", src->label, missing->str);
        snprintf(fix, sizeof fix, "create it on %s, or correct objects in [pair %s] (names are case-sensitive)",
                 src->label, cfg->name);
        add_check(r, "object_collections", "warn", detail, fix);
    } else {
        snprintf(detail, sizeof detail, "%s (source): every database and collection named in objects exists "
                 "(%zu synchronized collection%s)", src->label, n, n == 1 ? "" : "s");
        add_check(r, "object_collections", "pass", detail, NULL);
    }
    bson_string_t *noid = bson_string_new(NULL);
    size_t bad = 0;
    bool error = false;
    for (size_t i = 0; i < n && !error; i++) {
        char db[128];
        const char *coll;
        if (!sy_mongo_ns_split(colls[i], db, sizeof db, &coll))
            continue;
        int rc = has_id_index(src->c, db, coll, &e);
        if (rc < 0) {
            snprintf(detail, sizeof detail, "%s (source): listing the indexes of %s: %s", src->label, colls[i],
                     e.message);
            add_check(r, "id_indexes", "fail", detail, "make sure admin_user can list indexes");
            error = true;
        } else if (rc == 0 && bad++ < MAX_NAMED) {
            bson_string_append_printf(noid, "%s%s", noid->len ? ", " : "", colls[i]);
        }
    }
    if (!error && bad > 0) {
        snprintf(detail, sizeof detail, "%s (source): %zu collection%s without the _id index: %s%s", src->label,
                 bad, bad == 1 ? "" : "s", noid->str, bad > MAX_NAMED ? ", ..." : "");
        add_check(r, "id_indexes", "fail", detail,
                  "changes are applied and compared by _id: leave such collections out of objects");
    } else if (!error) {
        snprintf(detail, sizeof detail, "%s (source): %zu synchronized collection%s, each with the _id index",
                 src->label, n, n == 1 ? "" : "s");
        add_check(r, "id_indexes", "pass", detail, NULL);
    }
    bson_string_free(noid, true);
    bson_string_free(missing, true);
    bson_strfreev(colls);
    bson_strfreev(dbs);
}

/* ---- credentials ------------------------------------------------------------------------------- */

/* admin.system.users of one side: its documents. */
struct users {
    bson_t **docs; /* owned */
    size_t n;
};

static void users_free(struct users *u)
{
    for (size_t i = 0; i < u->n; i++)
        bson_destroy(u->docs[i]);
    bson_free(u->docs);
    u->docs = NULL;
    u->n = 0;
}

static int users_read(mongoc_client_t *c, struct users *u, bson_error_t *e)
{
    mongoc_collection_t *col = mongoc_client_get_collection(c, "admin", "system.users");
    bson_t filter = BSON_INITIALIZER;
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(col, &filter, NULL, NULL);
    const bson_t *doc;
    size_t cap = 0;
    while (mongoc_cursor_next(cur, &doc)) {
        if (u->n == cap) {
            cap = cap ? cap * 2 : 16;
            u->docs = bson_realloc(u->docs, cap * sizeof *u->docs);
        }
        u->docs[u->n++] = bson_copy(doc);
    }
    int rc = mongoc_cursor_error(cur, e) ? -1 : 0;
    mongoc_cursor_destroy(cur);
    bson_destroy(&filter);
    mongoc_collection_destroy(col);
    return rc;
}

/* The user's "_id" ("admin.app") as text ("" when it is not a string: never a FerretDB/MongoDB user). */
static const char *user_id(const bson_t *doc)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL) : "";
}

static const bson_t *user_find(const struct users *u, const char *id)
{
    for (size_t i = 0; i < u->n; i++)
        if (strcmp(user_id(u->docs[i]), id) == 0)
            return u->docs[i];
    return NULL;
}

/* Whether two user documents hold the same SCRAM credentials (salt, iterations, keys, per mechanism). */
static bool same_credentials(const bson_t *a, const bson_t *b)
{
    bson_iter_t ia, ib;
    bool ha = bson_iter_init_find(&ia, a, "credentials") && BSON_ITER_HOLDS_DOCUMENT(&ia);
    bool hb = bson_iter_init_find(&ib, b, "credentials") && BSON_ITER_HOLDS_DOCUMENT(&ib);
    if (!ha || !hb)
        return ha == hb;
    const uint8_t *da, *db;
    uint32_t la, lb;
    bson_iter_document(&ia, &la, &da);
    bson_iter_document(&ib, &lb, &db);
    return la == lb && memcmp(da, db, la) == 0;
}

static void list_item(bson_string_t *s, size_t *count, const char *id)
{
    if ((*count)++ < MAX_NAMED)
        bson_string_append_printf(s, "%s%s", s->len ? ", " : "", id);
    else if (*count == MAX_NAMED + 1)
        bson_string_append(s, ", ...");
}

static void check_credentials(struct run *r, struct side *b, struct side *d)
{
    const char *name = "credentials";
    if (b->c == NULL || d->c == NULL) {
        add_skipped_side(r, name, b->c == NULL ? b : d);
        return;
    }
    struct users ub = { 0 }, ud = { 0 };
    bson_error_t e;
    char detail[2400], fix[800];
    struct side *bad_side = users_read(b->c, &ub, &e) != 0 ? b : users_read(d->c, &ud, &e) != 0 ? d : NULL;
    if (bad_side != NULL) {
        snprintf(detail, sizeof detail, "%s: cannot read admin.system.users: %s", bad_side->label, e.message);
        add_check(r, name, "fail", detail, "admin_user must be able to read admin.system.users on both sides");
        users_free(&ub);
        users_free(&ud);
        return;
    }
    bson_string_t *differ = bson_string_new(NULL), *only_b = bson_string_new(NULL), *only_d = bson_string_new(NULL);
    size_t n_differ = 0, n_only_b = 0, n_only_d = 0;
    for (size_t i = 0; i < ub.n; i++) {
        const bson_t *other = user_find(&ud, user_id(ub.docs[i]));
        if (other == NULL)
            list_item(only_b, &n_only_b, user_id(ub.docs[i]));
        else if (!same_credentials(ub.docs[i], other))
            list_item(differ, &n_differ, user_id(ub.docs[i]));
    }
    for (size_t i = 0; i < ud.n; i++)
        if (user_find(&ub, user_id(ud.docs[i])) == NULL)
            list_item(only_d, &n_only_d, user_id(ud.docs[i]));
    bson_string_t *what = bson_string_new(NULL);
    if (n_differ)
        bson_string_append_printf(what, "different credentials (salt or keys) on the two sides: %s", differ->str);
    if (n_only_b)
        bson_string_append_printf(what, "%sonly on business: %s", what->len ? "; " : "", only_b->str);
    if (n_only_d)
        bson_string_append_printf(what, "%sonly on dr: %s", what->len ? "; " : "", only_d->str);
    if (what->len == 0) {
        snprintf(detail, sizeof detail, "%zu user%s in admin.system.users, with the same credentials on both "
                 "sides", ub.n, ub.n == 1 ? "" : "s");
        add_check(r, name, "pass", detail, NULL);
    } else if (r->dir == SY_DIR_FORWARD) {
        snprintf(detail, sizeof detail, "%s; the initial synchronization copies business's %zu user document%s to "
                 "dr (replacing those of the same _id), and the forward instance keeps them current%s", what->str,
                 ub.n, ub.n == 1 ? "" : "s", n_only_d ? " (users only on dr are left as they are)" : "");
        add_check(r, name, "warn", detail,
                  n_only_d ? "create the users listed as only on dr on business (or drop them on dr): after a "
                             "switchback their logins through the proxy would fail"
                           : "nothing to do before the forward instance's initial synchronization");
    } else {
        snprintf(detail, sizeof detail, "%s: the proxy logs clients in on the other side with the credential "
                 "proven on this one, so these logins would fail after a switch", what->str);
        snprintf(fix, sizeof fix, "let the forward instance of [pair %s] copy business's users (its initial "
                 "synchronization and its collection do), or copy the user documents of admin.system.users "
                 "by _id yourself; createUser on each side makes different salts", r->cfg->name);
        add_check(r, name, "fail", detail, fix);
    }
    bson_string_free(what, true);
    bson_string_free(differ, true);
    bson_string_free(only_b, true);
    bson_string_free(only_d, true);
    users_free(&ub);
    users_free(&ud);
}

/* FerretDB has no read-only switch (no fsyncLock, no read_only; docs/mongodb.md), and the engine's fence
 * fences nothing (capture/mongo_fence.c): a switch relies on the proxy's hold alone. The config refuses
 * fence_passive = on for a mongodb pair (core/config.c); the check fails on it too, should it get here. */
static void check_fencing(struct run *r)
{
    char fix[300];
    if (r->cfg->fence_passive) {
        snprintf(fix, sizeof fix, "set fence_passive = off in [pair %s]: the proxy's hold is then the only "
                 "guard, so send every client through the proxy", r->cfg->name);
        add_check(r, "fencing", "fail",
                  "fence_passive = on asks Switchyard to keep the passive side read-only, but the server offers "
                  "no way to make it read-only (FerretDB has no read_only mode and no fsyncLock)", fix);
        return;
    }
    add_check(r, "fencing", "warn",
              "the server offers no way to make a side read-only (FerretDB has no read_only mode and no "
              "fsyncLock): a switch relies on the proxy's hold only, and a client connected to a side directly "
              "can still write to it",
              "send every application through the proxy; do not connect to the passive side directly");
}

int sy_mongo_precheck(const struct sy_pair_cfg *cfg, enum sy_direction dir, json_t *checks)
{
    struct run r = { .cfg = cfg, .dir = dir, .checks = checks, .failed = false };
    struct side sides[2] = { { .name = "business", .ep = &cfg->business }, { .name = "dr", .ep = &cfg->dr } };
    for (int i = 0; i < 2; i++)
        snprintf(sides[i].label, sizeof sides[i].label, "%s %s%s%s:%u", sides[i].name,
                 strchr(sides[i].ep->host, ':') ? "[" : "", sides[i].ep->host,
                 strchr(sides[i].ep->host, ':') ? "]" : "", sides[i].ep->port);
    struct side *src = dir == SY_DIR_FORWARD ? &sides[0] : &sides[1];

    check_objects(&r);
    for (int i = 0; i < 2; i++)
        side_connect(&r, &sides[i]);
    check_distinct_servers(&r, &sides[0], &sides[1]);
    for (int i = 0; i < 2; i++)
        check_replica_set(&r, &sides[i]);
    for (int i = 0; i < 2; i++)
        check_oplog(&r, &sides[i]);
    check_collections(&r, src);
    check_credentials(&r, &sides[0], &sides[1]);
    check_fencing(&r);

    for (int i = 0; i < 2; i++)
        if (sides[i].c != NULL)
            mongoc_client_destroy(sides[i].c);
    return r.failed ? 1 : 0;
}
