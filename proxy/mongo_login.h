/* The client side of a MongoDB SCRAM login as command documents, pure (no I/O; the caller passes the
 * nonce): saslStart -> saslContinue(client-final) -> (empty saslContinue while the server says done: false),
 * checking the server's signature. Two uses: the credential cache logs in as the pair's admin_user with its
 * password; a session logs in on its backend as the client's user from the ClientKey it recovered
 * (pass-through, no password). Unit-tested in tests/unit/test_mongo_login.c against the server side. */
#ifndef SY_MONGO_LOGIN_H
#define SY_MONGO_LOGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <bson/bson.h>

#include "core/parse.h"
#include "proxy/mongo_scram.h"

struct sy_mongo_login {
    enum sy_scram_hash hash;
    int step;                                   /* 0 saslStart sent, 1 client-final sent, 2 empty sent */
    bool have_key;                              /* client_key (and cred.server_key) known */
    uint8_t client_key[SY_SCRAM_MAX_KEY];       /* secret */
    struct sy_scram_cred cred;                  /* server_key (to check v=); from the password: derived */
    char password[256];                         /* secret; "" when logging in from a ClientKey */
    char user[SY_SCRAM_MAX_USER + 1];
    char db[128];
    char nonce[SY_SCRAM_MAX_NONCE + 1];
    char first[SY_SCRAM_MAX_MSG];               /* client-first message ("n,,n=..,r=..") */
    size_t first_len;
    char auth[SY_SCRAM_MAX_MSG * 3 + 4];        /* AuthMessage once the client-final is built */
    size_t auth_len;
    int32_t conversation_id;
};

/* Starts a login of user on db: with `password` (SCRAM-SHA-1 hashes MongoDB's way) or, password NULL, from
 * client_key + cred (the user's stored credential: its ServerKey checks the server). Fills *cmd (initialized
 * here) with the saslStart document (with $db). -1 when a field does not fit. */
int sy_mongo_login_start(struct sy_mongo_login *l, enum sy_scram_hash h, const char *user, const char *db,
                         const char *password, const uint8_t *client_key, const struct sy_scram_cred *cred,
                         const char *nonce, bson_t *cmd) SY_MUST_CHECK;
/* The server's reply to the last command: 1 logged in (server signature checked), 0 *cmd (initialized here)
 * is the next command to send, -1 refused or malformed (err: the server's errmsg or what was wrong;
 * *code the server's code, 0 when the failure is the proxy's finding). */
int sy_mongo_login_step(struct sy_mongo_login *l, const uint8_t *reply, size_t len, bson_t *cmd, int32_t *code,
                        char *err, size_t errlen) SY_MUST_CHECK;
/* Wipes the secrets (client key, password). */
void sy_mongo_login_wipe(struct sy_mongo_login *l);

#endif
