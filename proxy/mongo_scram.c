/* SCRAM message parts and arithmetic (see mongo_scram.h). Grammar (RFC 5802 section 7), the parts used:
 *   client-first  = gs2-header client-first-bare;  gs2-header = ("n" / "y") "," ["a=" authzid] ","
 *                   ("p=" channel binding is refused: neither MongoDB nor the proxy offer it)
 *   client-first-bare = "n=" saslname ",r=" c-nonce ["," extensions]   (a leading "m=" is refused)
 *   server-first  = "r=" c-nonce s-nonce ",s=" base64(salt) ",i=" iterations ["," extensions]
 *   client-final  = "c=" base64(gs2-header) ",r=" nonce ["," extensions] ",p=" base64(proof)
 *   server-final  = "v=" base64(ServerSignature) / "e=" error
 * saslname escapes ',' as "=2C" and '=' as "=3D"; any other '=' is malformed. */
#include "proxy/mongo_scram.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

const char *sy_scram_mech_name(enum sy_scram_hash h)
{
    return h == SY_SCRAM_SHA1 ? "SCRAM-SHA-1" : "SCRAM-SHA-256";
}

size_t sy_scram_key_len(enum sy_scram_hash h)
{
    return h == SY_SCRAM_SHA1 ? 20 : 32;
}

static const EVP_MD *md_of(enum sy_scram_hash h)
{
    return h == SY_SCRAM_SHA1 ? EVP_sha1() : EVP_sha256();
}

/* --- base64 ------------------------------------------------------------------------------------------ */

static const char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t sy_scram_b64_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
    size_t need = (len + 2) / 3 * 4;
    if (len > SIZE_MAX / 2 || need + 1 > cap)
        return 0;
    char *o = out;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        *o++ = b64_alphabet[(v >> 18) & 63];
        *o++ = b64_alphabet[(v >> 12) & 63];
        *o++ = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
        *o++ = i + 2 < len ? b64_alphabet[v & 63] : '=';
    }
    *o = '\0';
    return need;
}

static int b64_val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int sy_scram_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    if (len % 4 != 0)
        return -1;
    size_t pad = 0;
    if (len > 0 && in[len - 1] == '=')
        pad++;
    if (len > 1 && in[len - 2] == '=')
        pad++;
    size_t n = len / 4 * 3 - pad;
    if (n > cap)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++) {
            bool last_quad = i + 4 == len;
            if (in[i + k] == '=' && last_quad && k >= 4 - (int)pad)
                v[k] = 0;
            else if ((v[k] = b64_val(in[i + k])) < 0)
                return -1;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        uint8_t b[3] = { (uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w };
        for (int k = 0; k < 3 && o < n; k++)
            out[o++] = b[k];
    }
    *out_len = n;
    return 0;
}

/* --- attribute cursor -------------------------------------------------------------------------------- */

/* The next "k=value" attribute at *off (values end at ',' or the end). Returns false at the end or when
 * the attribute is not a letter followed by '='. */
static bool next_attr(const char *msg, size_t len, size_t *off, char *key, const char **val, size_t *vlen)
{
    if (*off >= len)
        return false;
    size_t i = *off;
    if (len - i < 2 || msg[i + 1] != '=' || !((msg[i] >= 'a' && msg[i] <= 'z') || (msg[i] >= 'A' && msg[i] <= 'Z')))
        return false;
    *key = msg[i];
    size_t s = i + 2, e = s;
    while (e < len && msg[e] != ',')
        e++;
    *val = msg + s;
    *vlen = e - s;
    *off = e < len ? e + 1 : e;
    return true;
}

static int copy_nonce(char *dst, size_t cap, const char *v, size_t vlen)
{
    if (vlen == 0 || vlen >= cap)
        return -1;
    for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x21 || c > 0x7E || c == ',')
            return -1;
    }
    memcpy(dst, v, vlen);
    dst[vlen] = '\0';
    return 0;
}

static int decode_saslname(char *dst, size_t cap, const char *v, size_t vlen)
{
    size_t o = 0;
    if (vlen == 0)
        return -1;
    for (size_t i = 0; i < vlen; i++) {
        char c = v[i];
        if (c == '\0')
            return -1;
        if (c == '=') {
            if (vlen - i < 3)
                return -1;
            if (v[i + 1] == '2' && v[i + 2] == 'C')
                c = ',';
            else if (v[i + 1] == '3' && v[i + 2] == 'D')
                c = '=';
            else
                return -1;
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        dst[o++] = c;
    }
    dst[o] = '\0';
    return 0;
}

/* --- server side ------------------------------------------------------------------------------------- */

int sy_scram_client_first_parse(const char *msg, size_t len, struct sy_scram_client_first *cf, char *err,
                                size_t errlen)
{
    memset(cf, 0, sizeof *cf);
    if (len > SY_SCRAM_MAX_MSG) {
        snprintf(err, errlen, "SCRAM client-first: %zu bytes is too long", len);
        return -1;
    }
    if (len < 3 || (msg[0] != 'n' && msg[0] != 'y')) {
        if (len >= 2 && msg[0] == 'p' && msg[1] == '=')
            snprintf(err, errlen, "SCRAM client-first: channel binding is not supported");
        else
            snprintf(err, errlen, "SCRAM client-first: bad gs2 header");
        return -1;
    }
    if (msg[1] != ',') {
        snprintf(err, errlen, "SCRAM client-first: bad gs2 header");
        return -1;
    }
    size_t i = 2;
    if (msg[i] == 'a') {                             /* authzid: skipped up to its ',' */
        if (len - i < 2 || msg[i + 1] != '=') {
            snprintf(err, errlen, "SCRAM client-first: bad authzid");
            return -1;
        }
        while (i < len && msg[i] != ',')
            i++;
    }
    if (i >= len || msg[i] != ',') {
        snprintf(err, errlen, "SCRAM client-first: gs2 header does not end with ','");
        return -1;
    }
    i++;
    if (i >= sizeof cf->gs2) {
        snprintf(err, errlen, "SCRAM client-first: gs2 header too long");
        return -1;
    }
    memcpy(cf->gs2, msg, i);
    cf->gs2[i] = '\0';
    cf->gs2_len = i;
    cf->bare = msg + i;
    cf->bare_len = len - i;

    size_t off = i;
    char k;
    const char *v;
    size_t vl;
    if (!next_attr(msg, len, &off, &k, &v, &vl) || k != 'n') {
        snprintf(err, errlen, k == 'm' ? "SCRAM client-first: mandatory extension m= is not supported"
                                       : "SCRAM client-first: no n=user");
        return -1;
    }
    if (decode_saslname(cf->user, sizeof cf->user, v, vl) != 0) {
        snprintf(err, errlen, "SCRAM client-first: bad or too long user name");
        return -1;
    }
    if (!next_attr(msg, len, &off, &k, &v, &vl) || k != 'r' || copy_nonce(cf->nonce, sizeof cf->nonce, v, vl) != 0) {
        snprintf(err, errlen, "SCRAM client-first: no valid r=nonce");
        return -1;
    }
    while (off < len) {                              /* extensions: ignored, but each must be k=value */
        if (!next_attr(msg, len, &off, &k, &v, &vl)) {
            snprintf(err, errlen, "SCRAM client-first: malformed attribute after r=");
            return -1;
        }
    }
    return 0;
}

size_t sy_scram_server_first_build(char *out, size_t cap, const char *client_nonce, const char *server_nonce,
                                   const struct sy_scram_cred *cred)
{
    char salt[SY_SCRAM_MAX_SALT * 2];
    if (sy_scram_b64_encode(cred->salt, cred->salt_len, salt, sizeof salt) == 0 && cred->salt_len > 0)
        return 0;
    int n = snprintf(out, cap, "r=%s%s,s=%s,i=%u", client_nonce, server_nonce, salt, cred->iterations);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

int sy_scram_client_final_parse(const char *msg, size_t len, const struct sy_scram_client_first *cf,
                                const char *combined_nonce, enum sy_scram_hash h,
                                struct sy_scram_client_final *fin, char *err, size_t errlen)
{
    memset(fin, 0, sizeof *fin);
    if (len > SY_SCRAM_MAX_MSG) {
        snprintf(err, errlen, "SCRAM client-final: %zu bytes is too long", len);
        return -1;
    }
    size_t off = 0, attr_start = 0;
    char k = 0;
    const char *v;
    size_t vl;
    uint8_t cb[SY_SCRAM_MAX_USER + 8];
    size_t cbl = 0;
    if (!next_attr(msg, len, &off, &k, &v, &vl) || k != 'c' ||
        sy_scram_b64_decode(v, vl, cb, sizeof cb, &cbl) != 0) {
        snprintf(err, errlen, "SCRAM client-final: no valid c=");
        return -1;
    }
    if (cbl != cf->gs2_len || memcmp(cb, cf->gs2, cbl) != 0) {
        snprintf(err, errlen, "SCRAM client-final: c= does not match the gs2 header of client-first");
        return -1;
    }
    if (!next_attr(msg, len, &off, &k, &v, &vl) || k != 'r' ||
        copy_nonce(fin->nonce, sizeof fin->nonce, v, vl) != 0) {
        snprintf(err, errlen, "SCRAM client-final: no valid r=");
        return -1;
    }
    if (strcmp(fin->nonce, combined_nonce) != 0) {
        snprintf(err, errlen, "SCRAM client-final: nonce does not match");
        return -1;
    }
    for (;;) {
        attr_start = off;
        if (!next_attr(msg, len, &off, &k, &v, &vl)) {
            snprintf(err, errlen, "SCRAM client-final: no p=proof");
            return -1;
        }
        if (k == 'p')
            break;
    }
    if (off != len || attr_start == 0) {
        snprintf(err, errlen, "SCRAM client-final: p= must be the last attribute");
        return -1;
    }
    if (sy_scram_b64_decode(v, vl, fin->proof, sizeof fin->proof, &fin->proof_len) != 0 ||
        fin->proof_len != sy_scram_key_len(h)) {
        snprintf(err, errlen, "SCRAM client-final: proof is not %zu bytes of base64", sy_scram_key_len(h));
        return -1;
    }
    fin->without_proof = msg;
    fin->without_proof_len = attr_start - 1;          /* without the ',' before p= */
    return 0;
}

size_t sy_scram_auth_message(char *out, size_t cap, const char *bare, size_t bare_len, const char *server_first,
                             size_t server_first_len, const char *final_wo_proof, size_t final_wo_proof_len)
{
    size_t n = bare_len + 1 + server_first_len + 1 + final_wo_proof_len;
    if (bare_len > SY_SCRAM_MAX_MSG || server_first_len > SY_SCRAM_MAX_MSG ||
        final_wo_proof_len > SY_SCRAM_MAX_MSG || n + 1 > cap)
        return 0;
    char *o = out;
    memcpy(o, bare, bare_len);
    o += bare_len;
    *o++ = ',';
    memcpy(o, server_first, server_first_len);
    o += server_first_len;
    *o++ = ',';
    memcpy(o, final_wo_proof, final_wo_proof_len);
    o += final_wo_proof_len;
    *o = '\0';
    return n;
}

static int hmac(enum sy_scram_hash h, const uint8_t *key, size_t key_len, const void *data, size_t len,
                uint8_t out[SY_SCRAM_MAX_KEY])
{
    unsigned int ol = 0;
    if (HMAC(md_of(h), key, (int)key_len, data, len, out, &ol) == NULL || ol != sy_scram_key_len(h))
        return -1;
    return 0;
}

static int digest(enum sy_scram_hash h, const uint8_t *in, size_t len, uint8_t out[SY_SCRAM_MAX_KEY])
{
    unsigned int ol = 0;
    if (EVP_Digest(in, len, out, &ol, md_of(h), NULL) != 1 || ol != sy_scram_key_len(h))
        return -1;
    return 0;
}

int sy_scram_recover_client_key(const struct sy_scram_cred *cred, const char *auth_msg, size_t auth_len,
                                const uint8_t *proof, size_t proof_len, uint8_t client_key[SY_SCRAM_MAX_KEY])
{
    size_t kl = sy_scram_key_len(cred->hash);
    uint8_t sig[SY_SCRAM_MAX_KEY], stored[SY_SCRAM_MAX_KEY];
    int rc = -1;
    if (proof_len != kl || hmac(cred->hash, cred->stored_key, kl, auth_msg, auth_len, sig) != 0)
        goto out;
    for (size_t i = 0; i < kl; i++)
        client_key[i] = proof[i] ^ sig[i];
    if (digest(cred->hash, client_key, kl, stored) != 0)
        goto out;
    rc = CRYPTO_memcmp(stored, cred->stored_key, kl) == 0 ? 0 : -1;
out:
    OPENSSL_cleanse(sig, sizeof sig);
    if (rc != 0)
        OPENSSL_cleanse(client_key, SY_SCRAM_MAX_KEY);
    return rc;
}

size_t sy_scram_server_final_build(char *out, size_t cap, const struct sy_scram_cred *cred, const char *auth_msg,
                                   size_t auth_len)
{
    uint8_t sig[SY_SCRAM_MAX_KEY];
    char b64[SY_SCRAM_MAX_KEY * 2];
    if (hmac(cred->hash, cred->server_key, sy_scram_key_len(cred->hash), auth_msg, auth_len, sig) != 0 ||
        sy_scram_b64_encode(sig, sy_scram_key_len(cred->hash), b64, sizeof b64) == 0)
        return 0;
    int n = snprintf(out, cap, "v=%s", b64);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* --- client side ------------------------------------------------------------------------------------- */

size_t sy_scram_client_first_build(char *out, size_t cap, const char *user, const char *client_nonce)
{
    char esc[SY_SCRAM_MAX_USER * 3 + 1];
    size_t o = 0;
    for (const char *p = user; *p; p++) {
        if (o + 4 > sizeof esc)
            return 0;
        if (*p == ',') {
            memcpy(esc + o, "=2C", 3);
            o += 3;
        } else if (*p == '=') {
            memcpy(esc + o, "=3D", 3);
            o += 3;
        } else {
            esc[o++] = *p;
        }
    }
    esc[o] = '\0';
    int n = snprintf(out, cap, "n,,n=%s,r=%s", esc, client_nonce);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

int sy_scram_server_first_parse(const char *msg, size_t len, const char *client_nonce,
                                struct sy_scram_server_first *sf, char *err, size_t errlen)
{
    memset(sf, 0, sizeof *sf);
    if (len > SY_SCRAM_MAX_MSG) {
        snprintf(err, errlen, "SCRAM server-first: %zu bytes is too long", len);
        return -1;
    }
    size_t off = 0;
    char k = 0;
    const char *v;
    size_t vl;
    if (!next_attr(msg, len, &off, &k, &v, &vl) || k != 'r' || copy_nonce(sf->nonce, sizeof sf->nonce, v, vl) != 0) {
        snprintf(err, errlen, k == 'm' ? "SCRAM server-first: mandatory extension m= is not supported"
                                       : "SCRAM server-first: no valid r=nonce");
        return -1;
    }
    size_t cl = strlen(client_nonce);
    if (vl <= cl || memcmp(sf->nonce, client_nonce, cl) != 0) {
        snprintf(err, errlen, "SCRAM server-first: nonce does not extend the client's");
        return -1;
    }
    if (!next_attr(msg, len, &off, &k, &v, &vl) || k != 's' || vl == 0 ||
        sy_scram_b64_decode(v, vl, sf->salt, sizeof sf->salt, &sf->salt_len) != 0 || sf->salt_len == 0) {
        snprintf(err, errlen, "SCRAM server-first: no valid s=salt");
        return -1;
    }
    if (!next_attr(msg, len, &off, &k, &v, &vl) || k != 'i' || vl == 0 || vl > 10) {
        snprintf(err, errlen, "SCRAM server-first: no valid i=iterations");
        return -1;
    }
    uint64_t it = 0;
    for (size_t i = 0; i < vl; i++) {
        if (v[i] < '0' || v[i] > '9') {
            snprintf(err, errlen, "SCRAM server-first: no valid i=iterations");
            return -1;
        }
        it = it * 10 + (uint64_t)(v[i] - '0');
    }
    if (it == 0 || it > SY_SCRAM_MAX_ITERATIONS) {
        snprintf(err, errlen, "SCRAM server-first: iterations %llu out of range", (unsigned long long)it);
        return -1;
    }
    sf->iterations = (uint32_t)it;
    return 0;
}

size_t sy_scram_client_final_build(char *out, size_t cap, enum sy_scram_hash h,
                                   const uint8_t client_key[SY_SCRAM_MAX_KEY], const char *client_first_bare,
                                   size_t bare_len, const char *server_first, size_t server_first_len,
                                   const char *combined_nonce, char *auth_out, size_t auth_cap, size_t *auth_len)
{
    char wo[SY_SCRAM_MAX_NONCE * 2 + 16];
    size_t kl = sy_scram_key_len(h);
    uint8_t stored[SY_SCRAM_MAX_KEY], sig[SY_SCRAM_MAX_KEY], proof[SY_SCRAM_MAX_KEY];
    char b64[SY_SCRAM_MAX_KEY * 2];
    size_t n = 0;
    int wl = snprintf(wo, sizeof wo, "c=biws,r=%s", combined_nonce);   /* biws = base64("n,,") */
    if (wl < 0 || (size_t)wl >= sizeof wo)
        return 0;
    *auth_len = sy_scram_auth_message(auth_out, auth_cap, client_first_bare, bare_len, server_first,
                                      server_first_len, wo, (size_t)wl);
    if (*auth_len == 0 || digest(h, client_key, kl, stored) != 0 ||
        hmac(h, stored, kl, auth_out, *auth_len, sig) != 0)
        goto out;
    for (size_t i = 0; i < kl; i++)
        proof[i] = client_key[i] ^ sig[i];
    if (sy_scram_b64_encode(proof, kl, b64, sizeof b64) == 0)
        goto out;
    int fl = snprintf(out, cap, "%s,p=%s", wo, b64);
    n = fl < 0 || (size_t)fl >= cap ? 0 : (size_t)fl;
out:
    OPENSSL_cleanse(proof, sizeof proof);
    OPENSSL_cleanse(sig, sizeof sig);
    return n;
}

int sy_scram_server_final_verify(const char *msg, size_t len, const struct sy_scram_cred *cred,
                                 const char *auth_msg, size_t auth_len, char *err, size_t errlen)
{
    size_t off = 0;
    char k = 0;
    const char *v;
    size_t vl;
    uint8_t want[SY_SCRAM_MAX_KEY], got[SY_SCRAM_MAX_KEY];
    size_t gl = 0, kl = sy_scram_key_len(cred->hash);
    if (len > SY_SCRAM_MAX_MSG || !next_attr(msg, len, &off, &k, &v, &vl)) {
        snprintf(err, errlen, "SCRAM server-final: malformed");
        return -1;
    }
    if (k == 'e') {
        snprintf(err, errlen, "SCRAM server-final: server error %.*s", (int)(vl > 64 ? 64 : vl), v);
        return -1;
    }
    if (k != 'v' || sy_scram_b64_decode(v, vl, got, sizeof got, &gl) != 0 || gl != kl) {
        snprintf(err, errlen, "SCRAM server-final: no valid v=");
        return -1;
    }
    if (hmac(cred->hash, cred->server_key, kl, auth_msg, auth_len, want) != 0 || CRYPTO_memcmp(want, got, kl) != 0) {
        snprintf(err, errlen, "SCRAM server-final: server signature does not match (not the same credential)");
        return -1;
    }
    return 0;
}

/* --- derivations ------------------------------------------------------------------------------------- */

int sy_scram_keys_from_password(enum sy_scram_hash h, const char *password, size_t password_len,
                                const uint8_t *salt, size_t salt_len, uint32_t iterations,
                                uint8_t client_key[SY_SCRAM_MAX_KEY], uint8_t stored_key[SY_SCRAM_MAX_KEY],
                                uint8_t server_key[SY_SCRAM_MAX_KEY])
{
    uint8_t salted[SY_SCRAM_MAX_KEY];
    size_t kl = sy_scram_key_len(h);
    int rc = -1;
    if (iterations == 0 || iterations > SY_SCRAM_MAX_ITERATIONS || password_len > 4096 || salt_len > 4096)
        return -1;
    if (PKCS5_PBKDF2_HMAC(password, (int)password_len, salt, (int)salt_len, (int)iterations, md_of(h), (int)kl,
                          salted) != 1)
        goto out;
    if (hmac(h, salted, kl, "Client Key", 10, client_key) != 0 || digest(h, client_key, kl, stored_key) != 0 ||
        hmac(h, salted, kl, "Server Key", 10, server_key) != 0)
        goto out;
    rc = 0;
out:
    OPENSSL_cleanse(salted, sizeof salted);
    return rc;
}

void sy_scram_mongo_sha1_password(const char *user, const char *password, char out[33])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t d[16];
    unsigned int dl = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    out[0] = '\0';
    if (c == NULL)
        return;
    if (EVP_DigestInit_ex(c, EVP_md5(), NULL) == 1 && EVP_DigestUpdate(c, user, strlen(user)) == 1 &&
        EVP_DigestUpdate(c, ":mongo:", 7) == 1 && EVP_DigestUpdate(c, password, strlen(password)) == 1 &&
        EVP_DigestFinal_ex(c, d, &dl) == 1 && dl == 16) {
        for (int i = 0; i < 16; i++) {
            out[2 * i] = hex[d[i] >> 4];
            out[2 * i + 1] = hex[d[i] & 15];
        }
        out[32] = '\0';
    }
    EVP_MD_CTX_free(c);
    OPENSSL_cleanse(d, sizeof d);
}
