/* Command-document helpers of the MongoDB session (see mongo_cmd.h). Documents come from frames the wire
 * codecs validated, but every access here is through bson_iter (bounds-checked) anyway. */
#include "proxy/mongo_cmd.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proxy/mongo_scram.h"
#include "proxy/mongo_wire.h"

/* Members of a hello reply that name servers other than the one the client reached. */
static bool topology_key(const char *k)
{
    static const char *const keys[] = { "hosts", "passives", "arbiters", "me", "primary", "compression",
                                        "tags", NULL };
    for (size_t i = 0; keys[i]; i++)
        if (strcmp(k, keys[i]) == 0)
            return true;
    return false;
}

/* Members of a hello reply that answer one client's request only: its login (the proxy's own hello answer
 * leaves them out) and the writable-primary flag, named after the command asked. */
static bool per_request_key(const char *k)
{
    static const char *const keys[] = { "speculativeAuthenticate", "saslSupportedMechs", "isWritablePrimary",
                                        "ismaster", "localTime", NULL };
    for (size_t i = 0; keys[i]; i++)
        if (strcmp(k, keys[i]) == 0)
            return true;
    return false;
}

/* The topology rewrite; with `cached` the per-request members are left out too, and *primary says whether
 * the server said it is the writable primary. */
static int hello_rewrite(const uint8_t *doc, size_t len, const char *addr, bool cached, bool *primary, bool *ok,
                         bson_t *out)
{
    bson_t in;
    bson_iter_t it;
    bson_init(out);
    if (!bson_init_static(&in, doc, len) || !bson_iter_init(&it, &in))
        return -1;
    bool member = false, had_hosts = false;
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (strcmp(k, "setName") == 0)
            member = true;
        if (strcmp(k, "hosts") == 0)
            had_hosts = true;
        if (cached && (strcmp(k, "isWritablePrimary") == 0 || strcmp(k, "ismaster") == 0))
            *primary = *primary || bson_iter_as_bool(&it);
        if (cached && strcmp(k, "ok") == 0)
            *ok = bson_iter_as_bool(&it);
        if (topology_key(k) || (cached && per_request_key(k)))
            continue;
        if (!bson_append_iter(out, NULL, 0, &it))
            return -1;
    }
    if (it.err_off != 0)                          /* the walk stopped on corruption, not at the end */
        return -1;
    if (member || had_hosts) {
        bson_t arr;
        BSON_APPEND_ARRAY_BEGIN(out, "hosts", &arr);
        BSON_APPEND_UTF8(&arr, "0", addr);
        bson_append_array_end(out, &arr);
    }
    if (member) {
        BSON_APPEND_UTF8(out, "me", addr);
        BSON_APPEND_UTF8(out, "primary", addr);
    }
    return 0;
}

int sy_mongo_hello_rewrite(const uint8_t *doc, size_t len, const char *addr, bson_t *out)
{
    return hello_rewrite(doc, len, addr, false, NULL, NULL, out);
}

int sy_mongo_hello_cached(const uint8_t *doc, size_t len, const char *addr, bool legacy, int64_t now_ms,
                          bson_t *out)
{
    bool primary = false, ok = false;
    if (hello_rewrite(doc, len, addr, true, &primary, &ok, out) != 0 || !ok)
        return -1;
    BSON_APPEND_BOOL(out, legacy ? "ismaster" : "isWritablePrimary", primary);
    BSON_APPEND_DATE_TIME(out, "localTime", now_ms);
    return 0;
}

bool sy_mongo_hello_logs_in(const uint8_t *cmd, size_t len)
{
    bson_t b;
    bson_iter_t it;
    if (!bson_init_static(&b, cmd, len) || !bson_iter_init(&it, &b))
        return true;
    while (bson_iter_next(&it))
        if (strcmp(bson_iter_key(&it), "speculativeAuthenticate") == 0 ||
            strcmp(bson_iter_key(&it), "saslSupportedMechs") == 0)
            return true;
    return it.err_off != 0;
}

bool sy_mongo_query_command(const uint8_t *q, size_t q_len, const uint8_t **cmd, size_t *cmd_len)
{
    bson_t b;
    bson_iter_t it;
    if (!bson_init_static(&b, q, q_len) || !bson_iter_init(&it, &b))
        return false;
    *cmd = q;
    *cmd_len = q_len;
    if (bson_iter_next(&it) && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        (strcmp(bson_iter_key(&it), "$query") == 0 || strcmp(bson_iter_key(&it), "query") == 0)) {
        uint32_t l = 0;
        const uint8_t *d = NULL;
        bson_iter_document(&it, &l, &d);
        if (d != NULL) {
            *cmd = d;
            *cmd_len = l;
        }
    }
    return true;
}

static void copy_str(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* The user of a SCRAM client-first payload (binary or string). */
static void scram_user(bson_iter_t *payload, struct sy_mongo_auth_req *out)
{
    const uint8_t *p = NULL;
    uint32_t n = 0;
    if (BSON_ITER_HOLDS_BINARY(payload)) {
        bson_subtype_t st;
        bson_iter_binary(payload, &st, &n, &p);
    } else if (BSON_ITER_HOLDS_UTF8(payload)) {
        p = (const uint8_t *)bson_iter_utf8(payload, &n);
    }
    struct sy_scram_client_first cf;
    char err[128];
    if (p != NULL && sy_scram_client_first_parse((const char *)p, n, &cf, err, sizeof err) == 0)
        copy_str(out->user, sizeof out->user, cf.user, strlen(cf.user));
}

/* saslStart-shaped members (a saslStart body, or speculativeAuthenticate's document). */
static void sasl_start_fields(const bson_t *b, struct sy_mongo_auth_req *out)
{
    bson_iter_t it;
    if (!bson_iter_init(&it, b))
        return;
    while (bson_iter_next(&it)) {
        const char *k = bson_iter_key(&it);
        if (strcmp(k, "mechanism") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
            uint32_t n;
            const char *m = bson_iter_utf8(&it, &n);
            copy_str(out->mechanism, sizeof out->mechanism, m, n);
        } else if ((strcmp(k, "db") == 0 || strcmp(k, "$db") == 0) && BSON_ITER_HOLDS_UTF8(&it)) {
            uint32_t n;
            const char *d = bson_iter_utf8(&it, &n);
            copy_str(out->db, sizeof out->db, d, n);
        } else if (strcmp(k, "user") == 0 && BSON_ITER_HOLDS_UTF8(&it)) {
            uint32_t n;
            const char *u = bson_iter_utf8(&it, &n);
            copy_str(out->user, sizeof out->user, u, n);
        }
    }
    /* the payload once the mechanism is known (either may come first) */
    if (out->user[0] == '\0' && strncmp(out->mechanism, "SCRAM", 5) == 0 && bson_iter_init_find(&it, b, "payload"))
        scram_user(&it, out);
}

void sy_mongo_auth_classify(const uint8_t *body, size_t len, const char *db, size_t db_len,
                            struct sy_mongo_auth_req *out)
{
    memset(out, 0, sizeof *out);
    if (db != NULL)
        copy_str(out->db, sizeof out->db, db, db_len);
    bson_t b;
    bson_iter_t it;
    if (!bson_init_static(&b, body, len) || !bson_iter_init(&it, &b) || !bson_iter_next(&it))
        return;
    const char *cmd = bson_iter_key(&it);
    if (strcmp(cmd, "saslStart") == 0 || strcmp(cmd, "authenticate") == 0) {
        out->step = SY_AUTH_START;
        if (strcmp(cmd, "authenticate") == 0)
            snprintf(out->mechanism, sizeof out->mechanism, "MONGODB-X509");
        sasl_start_fields(&b, out);
    } else if (strcmp(cmd, "saslContinue") == 0) {
        out->step = SY_AUTH_CONTINUE;
    } else if (strcmp(cmd, "logout") == 0) {
        out->step = SY_AUTH_LOGOUT;
    } else if (sy_mongo_is_hello(cmd)) {
        if (bson_iter_find(&it, "speculativeAuthenticate") && BSON_ITER_HOLDS_DOCUMENT(&it)) {
            uint32_t l = 0;
            const uint8_t *d = NULL;
            bson_t spec;
            bson_iter_document(&it, &l, &d);
            if (d != NULL && bson_init_static(&spec, d, l)) {
                out->step = SY_AUTH_SPECULATIVE;
                bson_iter_t sit;
                if (bson_iter_init(&sit, &spec) && bson_iter_next(&sit) &&
                    strcmp(bson_iter_key(&sit), "authenticate") == 0)
                    snprintf(out->mechanism, sizeof out->mechanism, "MONGODB-X509");
                sasl_start_fields(&spec, out);
            }
        }
        return; /* a hello's $db is not the authentication database: speculativeAuthenticate.db is */
    }
    if (out->step != SY_AUTH_NONE && bson_iter_init_find(&it, &b, "$db") && BSON_ITER_HOLDS_UTF8(&it)) {
        uint32_t n;
        const char *d = bson_iter_utf8(&it, &n);
        copy_str(out->db, sizeof out->db, d, n);
    }
}

static bool iter_true(const bson_iter_t *it)
{
    return bson_iter_as_bool(it);
}

static int sasl_reply(const bson_t *b)
{
    bson_iter_t it;
    bool ok = false, done = false;
    if (bson_iter_init_find(&it, b, "ok"))
        ok = iter_true(&it);
    if (bson_iter_init_find(&it, b, "done"))
        done = iter_true(&it);
    if (!ok)
        return -1;
    return done ? 1 : 0;
}

int sy_mongo_auth_reply(const uint8_t *body, size_t len, bool hello)
{
    bson_t b;
    bson_iter_t it;
    if (!bson_init_static(&b, body, len))
        return -1;
    if (!hello)
        return sasl_reply(&b);
    if (!bson_iter_init_find(&it, &b, "speculativeAuthenticate") || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return 0;
    uint32_t l = 0;
    const uint8_t *d = NULL;
    bson_t spec;
    bson_iter_document(&it, &l, &d);
    if (d == NULL || !bson_init_static(&spec, d, l))
        return 0;
    /* X.509's speculative reply is {dbname, user} with no `done`: logged in */
    if (!bson_iter_init_find(&it, &spec, "done") && !bson_iter_init_find(&it, &spec, "conversationId"))
        return 1;
    if (!bson_iter_init_find(&it, &spec, "ok"))
        return bson_iter_init_find(&it, &spec, "done") && iter_true(&it) ? 1 : 0;
    return sasl_reply(&spec);
}
