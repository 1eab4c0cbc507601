/* Client side of a MongoDB SCRAM login (see mongo_login.h). */
#include "proxy/mongo_login.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

static void sasl_cmd(const struct sy_mongo_login *l, bson_t *cmd, bool start, const char *payload, size_t len)
{
    bson_init(cmd);
    if (start) {
        BSON_APPEND_INT32(cmd, "saslStart", 1);
        BSON_APPEND_UTF8(cmd, "mechanism", sy_scram_mech_name(l->hash));
    } else {
        BSON_APPEND_INT32(cmd, "saslContinue", 1);
        BSON_APPEND_INT32(cmd, "conversationId", l->conversation_id);
    }
    bson_append_binary(cmd, "payload", 7, BSON_SUBTYPE_BINARY, (const uint8_t *)payload, (uint32_t)len);
    if (start) {
        bson_t opts;
        BSON_APPEND_DOCUMENT_BEGIN(cmd, "options", &opts);
        BSON_APPEND_BOOL(&opts, "skipEmptyExchange", true);
        bson_append_document_end(cmd, &opts);
    }
    BSON_APPEND_UTF8(cmd, "$db", l->db);
}

int sy_mongo_login_start(struct sy_mongo_login *l, enum sy_scram_hash h, const char *user, const char *db,
                         const char *password, const uint8_t *client_key, const struct sy_scram_cred *cred,
                         const char *nonce, bson_t *cmd)
{
    memset(l, 0, sizeof *l);
    l->hash = h;
    if (snprintf(l->user, sizeof l->user, "%s", user) >= (int)sizeof l->user ||
        snprintf(l->db, sizeof l->db, "%s", db) >= (int)sizeof l->db ||
        snprintf(l->nonce, sizeof l->nonce, "%s", nonce) >= (int)sizeof l->nonce)
        return -1;
    if (password != NULL) {
        if (h == SY_SCRAM_SHA1) {
            char hex[33];
            sy_scram_mongo_sha1_password(user, password, hex);
            snprintf(l->password, sizeof l->password, "%s", hex);
            OPENSSL_cleanse(hex, sizeof hex);
        } else if (snprintf(l->password, sizeof l->password, "%s", password) >= (int)sizeof l->password) {
            return -1;
        }
    } else {
        if (client_key == NULL || cred == NULL)
            return -1;
        memcpy(l->client_key, client_key, sy_scram_key_len(h));
        l->cred = *cred;
        l->have_key = true;
    }
    l->first_len = sy_scram_client_first_build(l->first, sizeof l->first, user, nonce);
    if (l->first_len == 0)
        return -1;
    sasl_cmd(l, cmd, true, l->first, l->first_len);
    l->step = 0;
    return 0;
}

static bool reply_payload(const bson_t *b, const char **p, size_t *n)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, b, "payload"))
        return false;
    if (BSON_ITER_HOLDS_BINARY(&it)) {
        bson_subtype_t st;
        uint32_t len = 0;
        const uint8_t *d = NULL;
        bson_iter_binary(&it, &st, &len, &d);
        *p = (const char *)d;
        *n = len;
        return true;
    }
    if (BSON_ITER_HOLDS_UTF8(&it)) {
        uint32_t len = 0;
        *p = bson_iter_utf8(&it, &len);
        *n = len;
        return true;
    }
    return false;
}

int sy_mongo_login_step(struct sy_mongo_login *l, const uint8_t *reply, size_t len, bson_t *cmd, int32_t *code,
                        char *err, size_t errlen)
{
    bson_t b;
    bson_iter_t it;
    *code = 0;
    if (!bson_init_static(&b, reply, len)) {
        snprintf(err, errlen, "login reply is not a document");
        return -1;
    }
    bool ok = bson_iter_init_find(&it, &b, "ok") && bson_iter_as_bool(&it);
    if (!ok) {
        if (bson_iter_init_find(&it, &b, "code"))
            *code = (int32_t)bson_iter_as_int64(&it);
        uint32_t n = 0;
        const char *m = bson_iter_init_find(&it, &b, "errmsg") && BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, &n)
                                                                                           : "login refused";
        snprintf(err, errlen, "%s", m);
        return -1;
    }
    bool done = bson_iter_init_find(&it, &b, "done") && bson_iter_as_bool(&it);
    if (bson_iter_init_find(&it, &b, "conversationId"))
        l->conversation_id = (int32_t)bson_iter_as_int64(&it);
    const char *p = NULL;
    size_t pn = 0;
    if (!reply_payload(&b, &p, &pn)) {
        snprintf(err, errlen, "login reply without payload");
        return -1;
    }
    if (l->step == 0) {
        struct sy_scram_server_first sf;
        if (sy_scram_server_first_parse(p, pn, l->nonce, &sf, err, errlen) != 0)
            return -1;
        if (!l->have_key) {
            uint8_t stored[SY_SCRAM_MAX_KEY];
            if (sy_scram_keys_from_password(l->hash, l->password, strlen(l->password), sf.salt, sf.salt_len,
                                            sf.iterations, l->client_key, stored, l->cred.server_key) != 0) {
                snprintf(err, errlen, "key derivation failed");
                return -1;
            }
            l->cred.hash = l->hash;
            l->have_key = true;
        }
        char fin[SY_SCRAM_MAX_MSG];
        const char *bare = l->first + 3; /* after "n,," */
        size_t fl = sy_scram_client_final_build(fin, sizeof fin, l->hash, l->client_key, bare, l->first_len - 3, p,
                                                pn, sf.nonce, l->auth, sizeof l->auth, &l->auth_len);
        if (fl == 0) {
            snprintf(err, errlen, "client-final does not fit");
            return -1;
        }
        sasl_cmd(l, cmd, false, fin, fl);
        l->step = 1;
        return 0;
    }
    if (l->step == 1) {
        if (sy_scram_server_final_verify(p, pn, &l->cred, l->auth, l->auth_len, err, errlen) != 0)
            return -1;
        if (done)
            return 1;
        sasl_cmd(l, cmd, false, "", 0);
        l->step = 2;
        return 0;
    }
    if (done)
        return 1;
    snprintf(err, errlen, "server did not end the conversation");
    return -1;
}

void sy_mongo_login_wipe(struct sy_mongo_login *l)
{
    OPENSSL_cleanse(l, sizeof *l);
}
