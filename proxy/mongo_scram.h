/* SCRAM (RFC 5802; SHA-256: RFC 7677) message parts and arithmetic, pure (no I/O, no randomness: the
 * caller passes nonces). Both sides, because the proxy plays both (FINDINGS.md "SCRAM pass-through"):
 *   server side with the client: parse client-first, build server-first from the user's stored credential
 *     (salt, iterations, StoredKey, ServerKey), parse client-final, recover ClientKey = proof XOR
 *     HMAC(StoredKey, AuthMessage) and check H(ClientKey) == StoredKey, build server-final (v=ServerSignature);
 *   client side toward a backend holding the same credential: build client-first, parse server-first, build
 *     client-final with proof = ClientKey XOR HMAC(H(ClientKey), AuthMessage), check the server's v=.
 * AuthMessage = client-first-bare "," server-first "," client-final-without-proof.
 * MongoDB specifics: SCRAM-SHA-1 uses hex(MD5("user:mongo:password")) as the password
 * (sy_scram_mongo_sha1_password); SCRAM-SHA-256 uses the SASLprep'd password (identity for ASCII).
 * Messages are spans (not NUL-terminated); parsed fields are copied into fixed buffers (bounded). */
#ifndef SY_MONGO_SCRAM_H
#define SY_MONGO_SCRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parse.h"

enum sy_scram_hash { SY_SCRAM_SHA1, SY_SCRAM_SHA256 };

#define SY_SCRAM_MAX_KEY 32          /* SHA-256 digest */
#define SY_SCRAM_MAX_USER 256        /* a user name, decoded (=2C -> ',', =3D -> '=') */
#define SY_SCRAM_MAX_NONCE 256
#define SY_SCRAM_MAX_SALT 128
#define SY_SCRAM_MAX_MSG 1024        /* any one SCRAM message the proxy builds or accepts */
#define SY_SCRAM_MAX_ITERATIONS 10000000u

/* The stored credential of one user and mechanism (admin.system.users credentials.SCRAM-SHA-*). */
struct sy_scram_cred {
    enum sy_scram_hash hash;
    uint32_t iterations;
    uint8_t salt[SY_SCRAM_MAX_SALT];
    size_t salt_len;
    uint8_t stored_key[SY_SCRAM_MAX_KEY];
    uint8_t server_key[SY_SCRAM_MAX_KEY];
};

struct sy_scram_client_first {
    char user[SY_SCRAM_MAX_USER + 1];    /* decoded */
    char nonce[SY_SCRAM_MAX_NONCE + 1];
    size_t gs2_len;                      /* "n,," (or "y,,", "n,a=authz,"): the prefix before bare */
    char gs2[SY_SCRAM_MAX_USER + 8];     /* copy of it (checked against c= later) */
    const char *bare;                    /* ref: into the message: client-first-message-bare */
    size_t bare_len;
};

struct sy_scram_server_first {
    char nonce[SY_SCRAM_MAX_NONCE * 2 + 1]; /* combined nonce */
    uint8_t salt[SY_SCRAM_MAX_SALT];
    size_t salt_len;
    uint32_t iterations;
};

struct sy_scram_client_final {
    char nonce[SY_SCRAM_MAX_NONCE * 2 + 1];
    uint8_t proof[SY_SCRAM_MAX_KEY];
    size_t proof_len;
    const char *without_proof;           /* ref: into the message: client-final-without-proof */
    size_t without_proof_len;
};

const char *sy_scram_mech_name(enum sy_scram_hash h);  /* "SCRAM-SHA-1" / "SCRAM-SHA-256" */
size_t sy_scram_key_len(enum sy_scram_hash h);         /* 20 / 32 */

/* Base64 (RFC 4648, padded, no whitespace): encode returns the length written (NUL added) or 0 when cap is
 * short; decode returns 0 with *out_len, -1 on a bad alphabet/padding/length or a short out. */
size_t sy_scram_b64_encode(const uint8_t *in, size_t len, char *out, size_t cap);
int sy_scram_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len) SY_MUST_CHECK;

/* --- server side (the proxy facing the client) --- */
int sy_scram_client_first_parse(const char *msg, size_t len, struct sy_scram_client_first *cf, char *err,
                                size_t errlen) SY_MUST_CHECK;
/* "r=<client nonce><server nonce>,s=<b64 salt>,i=<n>" into out; returns its length (0: does not fit). */
size_t sy_scram_server_first_build(char *out, size_t cap, const char *client_nonce, const char *server_nonce,
                                   const struct sy_scram_cred *cred);
/* Also checks c= (base64 of the gs2 header the client-first carried) and that r= is the combined nonce. */
int sy_scram_client_final_parse(const char *msg, size_t len, const struct sy_scram_client_first *cf,
                                const char *combined_nonce, enum sy_scram_hash h,
                                struct sy_scram_client_final *fin, char *err, size_t errlen) SY_MUST_CHECK;
/* AuthMessage into out (NUL-terminated); its length, or 0 when it does not fit. */
size_t sy_scram_auth_message(char *out, size_t cap, const char *bare, size_t bare_len, const char *server_first,
                             size_t server_first_len, const char *final_wo_proof, size_t final_wo_proof_len);
/* ClientKey from the proof; 0 when H(ClientKey) == StoredKey (the password was right), else -1. */
int sy_scram_recover_client_key(const struct sy_scram_cred *cred, const char *auth_msg, size_t auth_len,
                                const uint8_t *proof, size_t proof_len,
                                uint8_t client_key[SY_SCRAM_MAX_KEY]) SY_MUST_CHECK;
/* "v=<b64 HMAC(ServerKey, AuthMessage)>"; its length, or 0. */
size_t sy_scram_server_final_build(char *out, size_t cap, const struct sy_scram_cred *cred, const char *auth_msg,
                                   size_t auth_len);

/* --- client side (the proxy logging in to a backend with a recovered ClientKey) --- */
/* "n,,n=<escaped user>,r=<nonce>"; its length, or 0. */
size_t sy_scram_client_first_build(char *out, size_t cap, const char *user, const char *client_nonce);
/* Checks the combined nonce starts with client_nonce and adds something; iterations 1..MAX. */
int sy_scram_server_first_parse(const char *msg, size_t len, const char *client_nonce,
                                struct sy_scram_server_first *sf, char *err, size_t errlen) SY_MUST_CHECK;
/* "c=biws,r=<combined nonce>,p=<b64 proof>" from ClientKey; also hands back the AuthMessage it signed
 * (needed to check the server's signature). Returns the final message's length, or 0. */
size_t sy_scram_client_final_build(char *out, size_t cap, enum sy_scram_hash h,
                                   const uint8_t client_key[SY_SCRAM_MAX_KEY], const char *client_first_bare,
                                   size_t bare_len, const char *server_first, size_t server_first_len,
                                   const char *combined_nonce, char *auth_out, size_t auth_cap, size_t *auth_len);
/* The server-final "v=..." must equal HMAC(ServerKey, AuthMessage); "e=..." is the server's refusal. */
int sy_scram_server_final_verify(const char *msg, size_t len, const struct sy_scram_cred *cred,
                                 const char *auth_msg, size_t auth_len, char *err, size_t errlen) SY_MUST_CHECK;

/* --- derivations (tests, tools, copying a password into a credential) --- */
/* SaltedPassword = PBKDF2-HMAC(password, salt, iterations); then ClientKey, StoredKey, ServerKey. */
int sy_scram_keys_from_password(enum sy_scram_hash h, const char *password, size_t password_len,
                                const uint8_t *salt, size_t salt_len, uint32_t iterations,
                                uint8_t client_key[SY_SCRAM_MAX_KEY], uint8_t stored_key[SY_SCRAM_MAX_KEY],
                                uint8_t server_key[SY_SCRAM_MAX_KEY]) SY_MUST_CHECK;
/* MongoDB's SCRAM-SHA-1 password: lowercase hex of MD5("user:mongo:password") (32 chars + NUL). */
void sy_scram_mongo_sha1_password(const char *user, const char *password, char out[33]);

#endif
