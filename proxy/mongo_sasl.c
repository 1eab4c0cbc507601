/* MongoDB SASL command documents (see mongo_sasl.h). Documents are read with bson_iter over spans the
 * caller validated (sy_mongo_msg_parse / sy_mongo_query_parse did); lookups are by exact key. */
#include "proxy/mongo_sasl.h"

#include <stdio.h>
#include <string.h>

static bool doc_init(bson_t *b, const uint8_t *doc, size_t len)
{
    return len >= 5 && bson_init_static(b, doc, len);
}

/* A number field as int32 (MongoDB drivers send conversationId as int32; accept int64/double that fit). */
static bool iter_as_i32(const bson_iter_t *it, int32_t *out)
{
    if (BSON_ITER_HOLDS_INT32(it)) {
        *out = bson_iter_int32(it);
        return true;
    }
    if (BSON_ITER_HOLDS_INT64(it)) {
        int64_t v = bson_iter_int64(it);
        if (v < INT32_MIN || v > INT32_MAX)
            return false;
        *out = (int32_t)v;
        return true;
    }
    if (BSON_ITER_HOLDS_DOUBLE(it)) {
        double v = bson_iter_double(it);
        if (!(v >= INT32_MIN && v <= INT32_MAX) || v != (double)(int32_t)v)
            return false;
        *out = (int32_t)v;
        return true;
    }
    return false;
}

static bool iter_payload(const bson_iter_t *it, const char **p, size_t *n)
{
    if (BSON_ITER_HOLDS_BINARY(it)) {
        bson_subtype_t st;
        uint32_t len = 0;
        const uint8_t *data = NULL;
        bson_iter_binary(it, &st, &len, &data);
        *p = (const char *)data;
        *n = len;
        return data != NULL || len == 0;
    }
    if (BSON_ITER_HOLDS_UTF8(it)) {
        uint32_t len = 0;
        *p = bson_iter_utf8(it, &len);
        *n = len;
        return true;
    }
    return false;
}

/* Reads the fields of a saslStart/saslContinue document (or a speculativeAuthenticate subdocument). */
static int sasl_fields(bson_iter_t *it, struct sy_mongo_sasl *out, char *err, size_t errlen)
{
    bool have_payload = false, have_conv = false;
    while (bson_iter_next(it)) {
        const char *k = bson_iter_key(it);
        if (strcmp(k, "mechanism") == 0) {
            const char *m = BSON_ITER_HOLDS_UTF8(it) ? bson_iter_utf8(it, NULL) : NULL;
            if (m != NULL && strcmp(m, "SCRAM-SHA-256") == 0) {
                out->mech = SY_SCRAM_SHA256;
            } else if (m != NULL && strcmp(m, "SCRAM-SHA-1") == 0) {
                out->mech = SY_SCRAM_SHA1;
            } else {
                snprintf(err, errlen, "mechanism %.40s is not supported", m ? m : "(not a string)");
                return -1;
            }
            out->has_mechanism = true;
        } else if (strcmp(k, "payload") == 0) {
            if (!iter_payload(it, &out->payload, &out->payload_len)) {
                snprintf(err, errlen, "payload is neither BinData nor a string");
                return -1;
            }
            have_payload = true;
        } else if (strcmp(k, "conversationId") == 0) {
            if (!iter_as_i32(it, &out->conversation_id)) {
                snprintf(err, errlen, "conversationId is not a 32-bit number");
                return -1;
            }
            have_conv = true;
        } else if (strcmp(k, "$db") == 0 || strcmp(k, "db") == 0) {
            uint32_t dl = 0;
            const char *d = BSON_ITER_HOLDS_UTF8(it) ? bson_iter_utf8(it, &dl) : NULL;
            if (d == NULL || dl >= sizeof out->db || memchr(d, '\0', dl) != NULL) {
                snprintf(err, errlen, "%s is not a database name", k);
                return -1;
            }
            memcpy(out->db, d, dl);
            out->db[dl] = '\0';
        } else if (strcmp(k, "options") == 0 && BSON_ITER_HOLDS_DOCUMENT(it)) {
            bson_iter_t o;
            if (bson_iter_recurse(it, &o) && bson_iter_find(&o, "skipEmptyExchange"))
                out->skip_empty_exchange = bson_iter_as_bool(&o);
        }
    }
    if (!have_payload) {
        snprintf(err, errlen, "no payload");
        return -1;
    }
    if (out->kind == SY_SASL_START && !out->has_mechanism) {
        snprintf(err, errlen, "saslStart without mechanism");
        return -1;
    }
    if (out->kind == SY_SASL_CONTINUE && !have_conv) {
        snprintf(err, errlen, "saslContinue without conversationId");
        return -1;
    }
    return 0;
}

int sy_mongo_sasl_parse(const uint8_t *doc, size_t len, struct sy_mongo_sasl *out, char *err, size_t errlen)
{
    bson_t b;
    bson_iter_t it;
    memset(out, 0, sizeof *out);
    if (!doc_init(&b, doc, len) || !bson_iter_init(&it, &b) || !bson_iter_next(&it)) {
        snprintf(err, errlen, "not sasl");
        return -1;
    }
    const char *cmd = bson_iter_key(&it);
    if (strcmp(cmd, "saslStart") == 0)
        out->kind = SY_SASL_START;
    else if (strcmp(cmd, "saslContinue") == 0)
        out->kind = SY_SASL_CONTINUE;
    else {
        snprintf(err, errlen, "not sasl");
        return -1;
    }
    return sasl_fields(&it, out, err, errlen);
}

int sy_mongo_sasl_speculative(const uint8_t *hello, size_t len, struct sy_mongo_sasl *out, char *err, size_t errlen)
{
    bson_t b;
    bson_iter_t it, sub;
    memset(out, 0, sizeof *out);
    if (!doc_init(&b, hello, len) || !bson_iter_init_find(&it, &b, "speculativeAuthenticate"))
        return 0;
    if (!BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &sub) || !bson_iter_next(&sub) ||
        strcmp(bson_iter_key(&sub), "saslStart") != 0) {
        /* MONGODB-X509 speculative auth has {authenticate: 1, ...}: not SCRAM */
        snprintf(err, errlen, "speculativeAuthenticate is not a saslStart");
        return -1;
    }
    out->kind = SY_SASL_START;
    return sasl_fields(&sub, out, err, errlen) == 0 ? 1 : -1;
}

int sy_mongo_sasl_supported_mechs_user(const uint8_t *hello, size_t len, char *out, size_t cap)
{
    bson_t b;
    bson_iter_t it;
    uint32_t n = 0;
    if (!doc_init(&b, hello, len) || !bson_iter_init_find(&it, &b, "saslSupportedMechs"))
        return 0;
    const char *s = BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, &n) : NULL;
    if (s == NULL || n >= cap || memchr(s, '\0', n) != NULL)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 1;
}

void sy_mongo_sasl_reply_append(bson_t *out, int32_t conversation_id, bool done, const char *payload,
                                size_t payload_len, bool with_ok)
{
    BSON_APPEND_INT32(out, "conversationId", conversation_id);
    BSON_APPEND_BOOL(out, "done", done);
    bson_append_binary(out, "payload", 7, BSON_SUBTYPE_BINARY, (const uint8_t *)payload, (uint32_t)payload_len);
    if (with_ok)
        BSON_APPEND_DOUBLE(out, "ok", 1.0);
}

/* A base64 string field of the credential into out (exactly want bytes when want != 0). */
static int cred_b64(bson_iter_t *c, const char *key, uint8_t *out, size_t cap, size_t want, size_t *got, char *err,
                    size_t errlen)
{
    bson_iter_t f = *c;
    uint32_t n = 0;
    const char *s = bson_iter_find(&f, key) && BSON_ITER_HOLDS_UTF8(&f) ? bson_iter_utf8(&f, &n) : NULL;
    size_t l = 0;
    if (s == NULL || sy_scram_b64_decode(s, n, out, cap, &l) != 0 || (want != 0 && l != want) || l == 0) {
        snprintf(err, errlen, "credential %s missing or not %s base64", key, want ? "key-length" : "valid");
        return -1;
    }
    if (got != NULL)
        *got = l;
    return 0;
}

int sy_mongo_cred_parse(const uint8_t *user_doc, size_t len, enum sy_scram_hash h, struct sy_scram_cred *cred,
                        char *err, size_t errlen)
{
    bson_t b;
    bson_iter_t it, mech, c;
    const char *name = sy_scram_mech_name(h);
    memset(cred, 0, sizeof *cred);
    cred->hash = h;
    if (!doc_init(&b, user_doc, len) || !bson_iter_init_find(&it, &b, "credentials") ||
        !BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &mech)) {
        snprintf(err, errlen, "user document has no credentials");
        return -1;
    }
    if (!bson_iter_find(&mech, name) || !BSON_ITER_HOLDS_DOCUMENT(&mech) || !bson_iter_recurse(&mech, &c)) {
        snprintf(err, errlen, "user has no %s credential", name);
        return -1;
    }
    bson_iter_t f = c;
    int32_t iters = 0;
    if (!bson_iter_find(&f, "iterationCount") || !iter_as_i32(&f, &iters) || iters <= 0 ||
        (uint32_t)iters > SY_SCRAM_MAX_ITERATIONS) {
        snprintf(err, errlen, "%s iterationCount missing or out of range", name);
        return -1;
    }
    cred->iterations = (uint32_t)iters;
    size_t kl = sy_scram_key_len(h);
    if (cred_b64(&c, "salt", cred->salt, sizeof cred->salt, 0, &cred->salt_len, err, errlen) != 0 ||
        cred_b64(&c, "storedKey", cred->stored_key, sizeof cred->stored_key, kl, NULL, err, errlen) != 0 ||
        cred_b64(&c, "serverKey", cred->server_key, sizeof cred->server_key, kl, NULL, err, errlen) != 0)
        return -1;
    return 0;
}
