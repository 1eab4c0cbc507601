/* libFuzzer target: SCRAM message parsers. Input = [selector][text]; selector % 5:
 *   0 client-first
 *   1 server-first: text = client nonce '\n' server-first
 *   2 client-final: text = client-first '\n' server-first '\n' client-final (SHA-256 and SHA-1); when all
 *     parse, the AuthMessage is built and the proof checked against a fixed credential (never passes
 *     unless the proof is right, which the fuzzer cannot find: the check must just not misbehave)
 *   3 server-final against a fixed credential
 *   4 base64 decode, and encode(decode(x)) == x for canonical input */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/mongo_scram.h"
#include "fuzz/fuzz_require.h"

static const struct sy_scram_cred cred = {
    SY_SCRAM_SHA256, 4096, { 1, 2, 3, 4 }, 4, { 0x11 }, { 0x22 },
};

/* The i-th '\n'-separated part of t[0..n). */
static bool part(const char *t, size_t n, int i, const char **p, size_t *len)
{
    size_t s = 0;
    for (int k = 0; k < i; k++) {
        const char *nl = memchr(t + s, '\n', n - s);
        if (nl == NULL)
            return false;
        s = (size_t)(nl - t) + 1;
    }
    const char *nl = memchr(t + s, '\n', n - s);
    *p = t + s;
    *len = nl ? (size_t)(nl - (t + s)) : n - s;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    if (size < 1 || size > 4 * SY_SCRAM_MAX_MSG)
        return 0;
    const char *t = (const char *)data + 1;
    size_t n = size - 1;
    struct sy_scram_client_first cf;
    struct sy_scram_server_first sf;
    struct sy_scram_client_final fin;
    const char *a, *b, *c;
    size_t al, bl, cl;
    switch (data[0] % 5) {
    case 0:
        if (sy_scram_client_first_parse(t, n, &cf, err, sizeof err) == 0) {
            REQUIRE(cf.bare >= t && cf.bare + cf.bare_len == t + n && cf.gs2_len + cf.bare_len == n);
            REQUIRE(cf.nonce[0] != '\0' && strchr(cf.nonce, ',') == NULL);
            char out[SY_SCRAM_MAX_MSG * 4];
            struct sy_scram_client_first back;
            size_t ol = sy_scram_client_first_build(out, sizeof out, cf.user, cf.nonce);
            if (ol > 0 && strlen(cf.user) == strnlen(cf.user, sizeof cf.user)) {
                REQUIRE(sy_scram_client_first_parse(out, ol, &back, err, sizeof err) == 0 || strlen(cf.user) == 0);
            }
        }
        break;
    case 1: {
        char nonce[SY_SCRAM_MAX_NONCE + 1];
        if (!part(t, n, 0, &a, &al) || !part(t, n, 1, &b, &bl) || al > SY_SCRAM_MAX_NONCE)
            break;
        memcpy(nonce, a, al);
        nonce[al] = '\0';
        if (memchr(nonce, '\0', al) != NULL && strlen(nonce) != al)
            break;
        if (sy_scram_server_first_parse(b, bl, nonce, &sf, err, sizeof err) == 0)
            REQUIRE(sf.iterations > 0 && sf.salt_len > 0 && strncmp(sf.nonce, nonce, strlen(nonce)) == 0);
        break;
    }
    case 2:
        if (!part(t, n, 0, &a, &al) || !part(t, n, 1, &b, &bl) || !part(t, n, 2, &c, &cl))
            break;
        if (sy_scram_client_first_parse(a, al, &cf, err, sizeof err) != 0 ||
            sy_scram_server_first_parse(b, bl, cf.nonce, &sf, err, sizeof err) != 0)
            break;
        for (int h = 0; h < 2; h++) {
            enum sy_scram_hash hh = h ? SY_SCRAM_SHA1 : SY_SCRAM_SHA256;
            if (sy_scram_client_final_parse(c, cl, &cf, sf.nonce, hh, &fin, err, sizeof err) != 0)
                continue;
            REQUIRE(fin.proof_len == sy_scram_key_len(hh) && fin.without_proof == c && fin.without_proof_len < cl);
            char auth[3 * SY_SCRAM_MAX_MSG + 3];
            uint8_t ck[SY_SCRAM_MAX_KEY];
            size_t aml = sy_scram_auth_message(auth, sizeof auth, cf.bare, cf.bare_len, b, bl, fin.without_proof,
                                               fin.without_proof_len);
            struct sy_scram_cred cr = cred;
            cr.hash = hh;
            if (aml > 0)
                REQUIRE(sy_scram_recover_client_key(&cr, auth, aml, fin.proof, fin.proof_len, ck) != 0);
        }
        break;
    case 3:
        (void)sy_scram_server_final_verify(t, n, &cred, "x", 1, err, sizeof err);
        break;
    default: {
        uint8_t out[4 * SY_SCRAM_MAX_MSG];
        char enc[8 * SY_SCRAM_MAX_MSG];
        size_t ol = 0;
        if (sy_scram_b64_decode(t, n, out, sizeof out, &ol) == 0) {
            REQUIRE(ol <= n / 4 * 3);
            size_t el = sy_scram_b64_encode(out, ol, enc, sizeof enc);
            REQUIRE(el == n);
        }
        break;
    }
    }
    return 0;
}
