/* proxy/mongo_login.c (the client side of a SCRAM login as command documents) against the server side
 * built from proxy/mongo_scram.c: with a password and, as the proxy does for pass-through, from a ClientKey
 * alone; both mechanisms; the empty exchange; a server refusal (code, errmsg) and a forged signature. */
#include <string.h>

#include "proxy/mongo_login.h"
#include "proxy/mongo_sasl.h"
#include "tests/unit/check.h"

static char err[256];

struct server {
    struct sy_scram_cred cred;
    uint8_t client_key[SY_SCRAM_MAX_KEY];
    struct sy_scram_client_first cf;
    char first[SY_SCRAM_MAX_MSG];
    char server_first[SY_SCRAM_MAX_MSG];
    size_t server_first_len;
    char combined[SY_SCRAM_MAX_NONCE * 2 + 1];
};

static void server_init(struct server *sv, enum sy_scram_hash h, const char *user, const char *password)
{
    memset(sv, 0, sizeof *sv);
    static const uint8_t salt[] = "0123456789abcdef";
    char hex[33];
    const char *pw = password;
    if (h == SY_SCRAM_SHA1) {
        sy_scram_mongo_sha1_password(user, password, hex);
        pw = hex;
    }
    sv->cred.hash = h;
    sv->cred.iterations = 4096;
    memcpy(sv->cred.salt, salt, 16);
    sv->cred.salt_len = 16;
    CHECK(sy_scram_keys_from_password(h, pw, strlen(pw), salt, 16, 4096, sv->client_key, sv->cred.stored_key,
                                      sv->cred.server_key) == 0);
}

/* The payload of a command document (saslStart / saslContinue) into out; its length. */
static size_t payload_of(const bson_t *cmd, char *out, size_t cap)
{
    struct sy_mongo_sasl s;
    CHECK(sy_mongo_sasl_parse(bson_get_data(cmd), cmd->len, &s, err, sizeof err) == 0);
    CHECK(strcmp(s.db, "admin") == 0);
    CHECK(s.payload_len < cap);
    memcpy(out, s.payload, s.payload_len);
    out[s.payload_len] = '\0';
    return s.payload_len;
}

static bson_t *reply(bool done, const char *payload)
{
    bson_t *b = bson_new();
    sy_mongo_sasl_reply_append(b, 1, done, payload, strlen(payload), true);
    return b;
}

/* One whole login; tamper: 0 none, 1 forged v=, 2 server refuses the proof. Returns the final step's rc. */
static int run(enum sy_scram_hash h, bool from_key, bool skip_empty, int tamper)
{
    struct server sv;
    server_init(&sv, h, "app", "secret");
    struct sy_mongo_login l;
    bson_t cmd;
    int32_t code = 0;
    char msg[SY_SCRAM_MAX_MSG];
    int rc;
    if (from_key)
        rc = sy_mongo_login_start(&l, h, "app", "admin", NULL, sv.client_key, &sv.cred, "clientnonce", &cmd);
    else
        rc = sy_mongo_login_start(&l, h, "app", "admin", "secret", NULL, NULL, "clientnonce", &cmd);
    CHECK(rc == 0);
    size_t n = payload_of(&cmd, msg, sizeof msg);
    bson_destroy(&cmd);
    CHECK(strcmp(msg, "n,,n=app,r=clientnonce") == 0);
    CHECK(sy_scram_client_first_parse(msg, n, &sv.cf, err, sizeof err) == 0);
    memcpy(sv.first, msg, n + 1);
    sv.cf.bare = sv.first + 3;
    sv.server_first_len = sy_scram_server_first_build(sv.server_first, sizeof sv.server_first, sv.cf.nonce, "SRV",
                                                      &sv.cred);
    snprintf(sv.combined, sizeof sv.combined, "%sSRV", sv.cf.nonce);
    bson_t *r = reply(false, sv.server_first);
    CHECK(sy_mongo_login_step(&l, bson_get_data(r), r->len, &cmd, &code, err, sizeof err) == 0);
    bson_destroy(r);
    n = payload_of(&cmd, msg, sizeof msg);
    bson_destroy(&cmd);
    struct sy_scram_client_final fin;
    CHECK(sy_scram_client_final_parse(msg, n, &sv.cf, sv.combined, h, &fin, err, sizeof err) == 0);
    char auth[SY_SCRAM_MAX_MSG * 3];
    size_t al = sy_scram_auth_message(auth, sizeof auth, sv.cf.bare, sv.cf.bare_len, sv.server_first,
                                      sv.server_first_len, fin.without_proof, fin.without_proof_len);
    uint8_t key[SY_SCRAM_MAX_KEY];
    CHECK(al > 0 && sy_scram_recover_client_key(&sv.cred, auth, al, fin.proof, fin.proof_len, key) == 0);
    CHECK(memcmp(key, sv.client_key, sy_scram_key_len(h)) == 0);
    if (tamper == 2) {
        bson_t *e = bson_new();
        BSON_APPEND_DOUBLE(e, "ok", 0.0);
        BSON_APPEND_UTF8(e, "errmsg", "Authentication failed.");
        BSON_APPEND_INT32(e, "code", 18);
        BSON_APPEND_UTF8(e, "codeName", "AuthenticationFailed");
        rc = sy_mongo_login_step(&l, bson_get_data(e), e->len, &cmd, &code, err, sizeof err);
        CHECK(rc == -1 && code == 18 && strcmp(err, "Authentication failed.") == 0);
        bson_destroy(e);
        sy_mongo_login_wipe(&l);
        return rc;
    }
    char v[SY_SCRAM_MAX_MSG];
    CHECK(sy_scram_server_final_build(v, sizeof v, &sv.cred, auth, al) > 0);
    if (tamper == 1)
        v[3] = v[3] == 'A' ? 'B' : 'A';
    r = reply(skip_empty, v);
    rc = sy_mongo_login_step(&l, bson_get_data(r), r->len, &cmd, &code, err, sizeof err);
    bson_destroy(r);
    if (rc != 0) {
        sy_mongo_login_wipe(&l);
        return rc;
    }
    n = payload_of(&cmd, msg, sizeof msg);
    bson_destroy(&cmd);
    CHECK(n == 0);                                   /* the empty saslContinue */
    r = reply(true, "");
    rc = sy_mongo_login_step(&l, bson_get_data(r), r->len, &cmd, &code, err, sizeof err);
    bson_destroy(r);
    sy_mongo_login_wipe(&l);
    return rc;
}

int main(void)
{
    for (int h = 0; h < 2; h++) {
        CHECK(run((enum sy_scram_hash)h, false, false, 0) == 1);
        CHECK(run((enum sy_scram_hash)h, true, false, 0) == 1);
        CHECK(run((enum sy_scram_hash)h, true, true, 0) == 1);
        CHECK(run((enum sy_scram_hash)h, true, false, 1) == -1);
        CHECK(run((enum sy_scram_hash)h, false, false, 2) == -1);
    }
    /* too long a user does not fit */
    char big[600];
    memset(big, 'u', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    struct sy_mongo_login l;
    bson_t cmd;
    CHECK(sy_mongo_login_start(&l, SY_SCRAM_SHA256, big, "admin", "pw", NULL, NULL, "n", &cmd) == -1);
    return CHECK_DONE();
}
