/* proxy/mongo_scram.c against RFC 5802 (SCRAM-SHA-1) and RFC 7677 (SCRAM-SHA-256) test vectors, both the
 * server side (the proxy checking a client) and the client side (the proxy logging in with a recovered
 * ClientKey), plus malformed messages and an exchange recorded from pymongo 4.10 against FerretDB 1.24.2
 * with the credential FerretDB stored (tests/unit/mongo_frames.h). */
#include <string.h>

#include "proxy/mongo_scram.h"
#include "tests/unit/check.h"
#include "tests/unit/mongo_frames.h"

static char err[256];

struct vec {
    enum sy_scram_hash h;
    const char *client_first, *client_nonce, *server_nonce, *salt_b64, *server_first, *client_final,
        *server_final;
    uint32_t iterations;
};

static const struct vec rfc5802 = {
    SY_SCRAM_SHA1, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", "fyko+d2lbbFgONRv9qkxdawL", "3rfcNHYJY1ZVvWVs7j",
    "QSXCR+Q6sek8bf92", "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=", 4096,
};

static const struct vec rfc7677 = {
    SY_SCRAM_SHA256, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO", "rOprNGfwEbeRWgbNEkqO", "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    "W22ZaJ0SNY7soEsUEjb6gQ==",
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", 4096,
};

static void cred_from_password(const struct vec *v, const char *password, struct sy_scram_cred *c,
                               uint8_t client_key[SY_SCRAM_MAX_KEY])
{
    memset(c, 0, sizeof *c);
    c->hash = v->h;
    c->iterations = v->iterations;
    CHECK(sy_scram_b64_decode(v->salt_b64, strlen(v->salt_b64), c->salt, sizeof c->salt, &c->salt_len) == 0);
    CHECK(sy_scram_keys_from_password(v->h, password, strlen(password), c->salt, c->salt_len, c->iterations,
                                      client_key, c->stored_key, c->server_key) == 0);
}

static void run_vector(const struct vec *v)
{
    struct sy_scram_cred cred;
    uint8_t ck[SY_SCRAM_MAX_KEY], recovered[SY_SCRAM_MAX_KEY];
    char sf[SY_SCRAM_MAX_MSG], auth[3 * SY_SCRAM_MAX_MSG], out[SY_SCRAM_MAX_MSG];
    size_t kl = sy_scram_key_len(v->h);
    cred_from_password(v, "pencil", &cred, ck);

    /* server side */
    struct sy_scram_client_first cf;
    CHECK(sy_scram_client_first_parse(v->client_first, strlen(v->client_first), &cf, err, sizeof err) == 0);
    CHECK(strcmp(cf.user, "user") == 0 && strcmp(cf.nonce, v->client_nonce) == 0);
    CHECK(cf.gs2_len == 3 && cf.bare == v->client_first + 3);
    size_t sfl = sy_scram_server_first_build(sf, sizeof sf, cf.nonce, v->server_nonce, &cred);
    CHECK(sfl == strlen(v->server_first) && strcmp(sf, v->server_first) == 0);
    char combined[2 * SY_SCRAM_MAX_NONCE + 1];
    snprintf(combined, sizeof combined, "%s%s", v->client_nonce, v->server_nonce);
    struct sy_scram_client_final fin;
    CHECK(sy_scram_client_final_parse(v->client_final, strlen(v->client_final), &cf, combined, v->h, &fin, err,
                                      sizeof err) == 0);
    CHECK(fin.proof_len == kl);
    size_t al = sy_scram_auth_message(auth, sizeof auth, cf.bare, cf.bare_len, sf, sfl, fin.without_proof,
                                      fin.without_proof_len);
    CHECK(al > 0);
    CHECK(sy_scram_recover_client_key(&cred, auth, al, fin.proof, fin.proof_len, recovered) == 0);
    CHECK(memcmp(recovered, ck, kl) == 0);
    CHECK(sy_scram_server_final_build(out, sizeof out, &cred, auth, al) == strlen(v->server_final));
    CHECK(strcmp(out, v->server_final) == 0);
    /* a wrong password's proof does not verify (and wipes the output) */
    struct sy_scram_cred other;
    uint8_t ock[SY_SCRAM_MAX_KEY];
    cred_from_password(v, "pencil2", &other, ock);
    uint8_t bad_proof[SY_SCRAM_MAX_KEY];
    memcpy(bad_proof, fin.proof, kl);
    bad_proof[0] ^= 1;
    CHECK(sy_scram_recover_client_key(&cred, auth, al, bad_proof, kl, recovered) != 0);
    CHECK(sy_scram_recover_client_key(&other, auth, al, fin.proof, kl, recovered) != 0);
    CHECK(sy_scram_recover_client_key(&cred, auth, al, fin.proof, kl - 1, recovered) != 0);

    /* client side: from ClientKey alone the proxy produces the same client-final as the RFC client */
    CHECK(sy_scram_client_first_build(out, sizeof out, "user", v->client_nonce) == strlen(v->client_first));
    CHECK(strcmp(out, v->client_first) == 0);
    struct sy_scram_server_first sfp;
    CHECK(sy_scram_server_first_parse(v->server_first, strlen(v->server_first), v->client_nonce, &sfp, err,
                                      sizeof err) == 0);
    CHECK(sfp.iterations == 4096 && sfp.salt_len == cred.salt_len && strcmp(sfp.nonce, combined) == 0);
    size_t al2 = 0;
    char auth2[3 * SY_SCRAM_MAX_MSG];
    size_t fl = sy_scram_client_final_build(out, sizeof out, v->h, ck, v->client_first + 3,
                                            strlen(v->client_first) - 3, v->server_first,
                                            strlen(v->server_first), sfp.nonce, auth2, sizeof auth2, &al2);
    CHECK(fl == strlen(v->client_final) && strcmp(out, v->client_final) == 0);
    CHECK(al2 == al && memcmp(auth, auth2, al) == 0);
    CHECK(sy_scram_server_final_verify(v->server_final, strlen(v->server_final), &cred, auth2, al2, err,
                                       sizeof err) == 0);
    CHECK(sy_scram_server_final_verify(v->server_final, strlen(v->server_final), &other, auth2, al2, err,
                                       sizeof err) != 0);
    CHECK(sy_scram_server_final_verify("e=invalid-proof", 15, &cred, auth2, al2, err, sizeof err) != 0 &&
          strstr(err, "invalid-proof") != NULL);
    CHECK(sy_scram_server_first_parse(v->server_first, strlen(v->server_first), "other", &sfp, err,
                                      sizeof err) != 0);
}

static void test_malformed(void)
{
    struct sy_scram_client_first cf;
    struct sy_scram_client_final fin;
    struct sy_scram_server_first sf;
    const char *bad_first[] = {
        "", "n", "n,", "p=tls-server-end-point,,n=u,r=x", "x,,n=u,r=abc", "n,,m=ext,n=u,r=abc", "n,,n=u",
        "n,,n=u,r=", "n,,n=a=2,r=abc", "n,,n=a=ZZ,r=abc", "n,,r=abc", "n,,n=,r=abc", "n,a,n=u,r=abc",
        "n,,n=u,r=ab,c", "n,,n=u,r=a b",
    };
    for (size_t i = 0; i < SY_ARRAY_LEN(bad_first); i++)
        if (sy_scram_client_first_parse(bad_first[i], strlen(bad_first[i]), &cf, err, sizeof err) == 0) {
            fprintf(stderr, "accepted: %s\n", bad_first[i]);
            CHECK(!"bad client-first accepted");
        }
    CHECK(sy_scram_client_first_parse("p=x,,n=u,r=a", 12, &cf, err, sizeof err) != 0 &&
          strstr(err, "channel binding") != NULL);
    /* escapes decode; an authzid is accepted; extensions after r= are ignored */
    const char *ok = "n,a=admin,n=a=2Cb=3Dc,r=abc,x=ext";
    CHECK(sy_scram_client_first_parse(ok, strlen(ok), &cf, err, sizeof err) == 0);
    CHECK(strcmp(cf.user, "a,b=c") == 0 && strcmp(cf.nonce, "abc") == 0 && cf.gs2_len == 10);
    char out[SY_SCRAM_MAX_MSG];
    CHECK(sy_scram_client_first_build(out, sizeof out, "a,b=c", "n1") > 0 && strcmp(out, "n,,n=a=2Cb=3Dc,r=n1") == 0);

    const char *first = "n,,n=user,r=abc";
    CHECK(sy_scram_client_first_parse(first, strlen(first), &cf, err, sizeof err) == 0);
    const char *p20 = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";              /* 20 bytes */
    char msg[256];
    snprintf(msg, sizeof msg, "c=biws,r=abcdef,p=%s", p20);
    CHECK(sy_scram_client_final_parse(msg, strlen(msg), &cf, "abcdef", SY_SCRAM_SHA1, &fin, err, sizeof err) == 0);
    CHECK(fin.without_proof_len == strlen("c=biws,r=abcdef"));
    CHECK(sy_scram_client_final_parse(msg, strlen(msg), &cf, "abcdef", SY_SCRAM_SHA256, &fin, err, sizeof err) != 0);
    CHECK(sy_scram_client_final_parse(msg, strlen(msg), &cf, "abcxyz", SY_SCRAM_SHA1, &fin, err, sizeof err) != 0);
    const char *bad_final[] = {
        "c=eSws,r=abcdef,p=AAAAAAAAAAAAAAAAAAAAAAAAAAA=",          /* y,, where client-first said n,, */
        "r=abcdef,c=biws,p=AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "c=biws,r=abcdef,p=AAAAAAAAAAAAAAAAAAAAAAAAAAA=,x=1",      /* p= not last */
        "c=biws,r=abcdef",
        "c=biws,r=abcdef,p=AAAA*AAAAAAAAAAAAAAAAAAAAAA=",
        "c=biws,r=abcdef,p=AAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "c=bi=s,r=abcdef,p=AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "c=biws,p=AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    };
    for (size_t i = 0; i < SY_ARRAY_LEN(bad_final); i++)
        CHECK(sy_scram_client_final_parse(bad_final[i], strlen(bad_final[i]), &cf, "abcdef", SY_SCRAM_SHA1, &fin,
                                          err, sizeof err) != 0);
    const char *bad_sf[] = {
        "r=abc,s=QSXCR+Q6sek8bf92,i=4096",          /* nonce not extended */
        "r=abX1,s=QSXCR+Q6sek8bf92,i=4096",         /* not the client's prefix */
        "m=x,r=abc1,s=QSXCR+Q6sek8bf92,i=4096", "r=abc1,s=,i=4096", "r=abc1,s=QSXCR+Q6sek8bf92,i=0",
        "r=abc1,s=QSXCR+Q6sek8bf92,i=99999999999", "r=abc1,s=QSXCR+Q6sek8bf92,i=12a", "r=abc1,i=4096",
        "r=abc1,s=QSXCR+Q6sek8bf92",
    };
    for (size_t i = 0; i < SY_ARRAY_LEN(bad_sf); i++)
        CHECK(sy_scram_server_first_parse(bad_sf[i], strlen(bad_sf[i]), "abc", &sf, err, sizeof err) != 0);
}

static void test_b64_and_sha1_password(void)
{
    uint8_t b[8];
    size_t n = 0;
    char out[16];
    CHECK(sy_scram_b64_decode("", 0, b, sizeof b, &n) == 0 && n == 0);
    CHECK(sy_scram_b64_decode("Zm9vYg==", 8, b, sizeof b, &n) == 0 && n == 4 && memcmp(b, "foob", 4) == 0);
    CHECK(sy_scram_b64_decode("Zm9vYmE=", 8, b, sizeof b, &n) == 0 && n == 5);
    CHECK(sy_scram_b64_decode("Zm9vYmFy", 8, b, sizeof b, &n) == 0 && n == 6);
    CHECK(sy_scram_b64_decode("Zm9vYmFy", 8, b, 5, &n) != 0);         /* does not fit */
    CHECK(sy_scram_b64_decode("Zm9=YmFy", 8, b, sizeof b, &n) != 0);
    CHECK(sy_scram_b64_decode("Zm9vY", 5, b, sizeof b, &n) != 0);
    CHECK(sy_scram_b64_decode("===", 3, b, sizeof b, &n) != 0);
    CHECK(sy_scram_b64_encode((const uint8_t *)"foob", 4, out, sizeof out) == 8 && strcmp(out, "Zm9vYg==") == 0);
    CHECK(sy_scram_b64_encode((const uint8_t *)"foob", 4, out, 8) == 0);
    char pw[33];
    sy_scram_mongo_sha1_password("user", "pencil", pw);
    CHECK(strcmp(pw, "1c33006ec1ffd90f9cadcbcc0e118200") == 0);
    CHECK(strcmp(sy_scram_mech_name(SY_SCRAM_SHA256), "SCRAM-SHA-256") == 0);
}

/* The recorded pymongo -> FerretDB exchange: the proxy's server-side arithmetic, fed the credential FerretDB
 * stored, accepts the client's real proof and computes the server signature FerretDB sent. */
static void test_recorded_exchange(void)
{
    const struct mongo_scram_rec *r = &mongo_scram_recorded;
    if (r->client_first == NULL) {
        CHECK(!"no recorded SCRAM exchange in mongo_frames.h");
        return;
    }
    struct sy_scram_cred cred = { .hash = r->sha1 ? SY_SCRAM_SHA1 : SY_SCRAM_SHA256, .iterations = r->iterations };
    size_t kl = 0;
    CHECK(sy_scram_b64_decode(r->salt, strlen(r->salt), cred.salt, sizeof cred.salt, &cred.salt_len) == 0);
    CHECK(sy_scram_b64_decode(r->stored_key, strlen(r->stored_key), cred.stored_key, sizeof cred.stored_key, &kl) == 0);
    CHECK(kl == sy_scram_key_len(cred.hash));
    CHECK(sy_scram_b64_decode(r->server_key, strlen(r->server_key), cred.server_key, sizeof cred.server_key, &kl) == 0);
    struct sy_scram_client_first cf;
    CHECK(sy_scram_client_first_parse(r->client_first, strlen(r->client_first), &cf, err, sizeof err) == 0);
    CHECK(strcmp(cf.user, r->user) == 0);
    struct sy_scram_server_first sf;
    CHECK(sy_scram_server_first_parse(r->server_first, strlen(r->server_first), cf.nonce, &sf, err, sizeof err) == 0);
    CHECK(sf.iterations == cred.iterations && sf.salt_len == cred.salt_len);
    struct sy_scram_client_final fin;
    CHECK(sy_scram_client_final_parse(r->client_final, strlen(r->client_final), &cf, sf.nonce, cred.hash, &fin, err,
                                      sizeof err) == 0);
    char auth[3 * SY_SCRAM_MAX_MSG], out[SY_SCRAM_MAX_MSG];
    size_t al = sy_scram_auth_message(auth, sizeof auth, cf.bare, cf.bare_len, r->server_first,
                                      strlen(r->server_first), fin.without_proof, fin.without_proof_len);
    uint8_t ck[SY_SCRAM_MAX_KEY], ck2[SY_SCRAM_MAX_KEY], sk[SY_SCRAM_MAX_KEY], svk[SY_SCRAM_MAX_KEY];
    CHECK(sy_scram_recover_client_key(&cred, auth, al, fin.proof, fin.proof_len, ck) == 0);
    CHECK(sy_scram_server_final_build(out, sizeof out, &cred, auth, al) > 0 && strcmp(out, r->server_final) == 0);
    /* client side: with only the recovered ClientKey the proxy writes the very client-final pymongo sent,
     * and accepts FerretDB's server-final */
    char fin2[SY_SCRAM_MAX_MSG], auth2[3 * SY_SCRAM_MAX_MSG];
    size_t al2 = 0;
    CHECK(sy_scram_client_final_build(fin2, sizeof fin2, cred.hash, ck, cf.bare, cf.bare_len, r->server_first,
                                      strlen(r->server_first), sf.nonce, auth2, sizeof auth2, &al2) > 0);
    CHECK(strcmp(fin2, r->client_final) == 0);
    CHECK(sy_scram_server_final_verify(r->server_final, strlen(r->server_final), &cred, auth2, al2, err,
                                       sizeof err) == 0);
    /* and the password gives the same keys (for SHA-1 through MongoDB's MD5 digest) */
    char pw[33];
    const char *pass = r->password;
    if (cred.hash == SY_SCRAM_SHA1) {
        sy_scram_mongo_sha1_password(r->user, r->password, pw);
        pass = pw;
    }
    CHECK(sy_scram_keys_from_password(cred.hash, pass, strlen(pass), cred.salt, cred.salt_len, cred.iterations, ck2,
                                      sk, svk) == 0);
    CHECK(memcmp(ck, ck2, kl) == 0 && memcmp(sk, cred.stored_key, kl) == 0 && memcmp(svk, cred.server_key, kl) == 0);
}

int main(void)
{
    run_vector(&rfc5802);
    run_vector(&rfc7677);
    test_malformed();
    test_b64_and_sha1_password();
    test_recorded_exchange();
    return CHECK_DONE();
}
