/* Unit tests of proxy/tds_wire.c: packet headers and reassembly, PRELOGIN (a FreeTDS 1.3 PRELOGIN as
 * recorded by TDSDUMP), LOGIN7 build/parse and password obfuscation, the login's token stream (the
 * double's login response layout: ENVCHANGE, INFO, LOGINACK, ENVCHANGE packet size, DONE; and a refused
 * login's ERROR 18456), and every length claim that must not be trusted. */
#include <stdlib.h>
#include <string.h>

#include "proxy/tds_wire.h"
#include "tests/unit/check.h"

static char err[256];

static size_t utf16(const char *ascii, uint8_t *out)
{
    size_t n = strlen(ascii);
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = (uint8_t)ascii[i];
        out[2 * i + 1] = 0;
    }
    return 2 * n;
}

/* ---- packets ------------------------------------------------------------------------------------------- */

static void test_header(void)
{
    const uint8_t p[8] = { 0x01, 0x09, 0x00, 0x20, 0x00, 0x33, 0x02, 0x00 };
    struct sy_tds_hdr h;
    CHECK(sy_tds_hdr_parse(p, 7, 4096, &h, err, sizeof err) == SY_PARSE_AGAIN);
    CHECK(sy_tds_hdr_parse(p, 8, 4096, &h, err, sizeof err) == SY_PARSE_OK);
    CHECK(h.type == SY_TDS_SQL_BATCH && h.length == 32 && h.spid == 0x33 && h.packet_id == 2 && h.window == 0);
    CHECK((h.status & SY_TDS_STATUS_EOM) && (h.status & SY_TDS_STATUS_RESETCONNECTION) &&
          !(h.status & SY_TDS_STATUS_RESETCONNECTIONSKIPTRAN));
    uint8_t q[8];
    sy_tds_hdr_put(q, &h);
    CHECK(memcmp(p, q, 8) == 0);
    const uint8_t small[8] = { 0x01, 0x01, 0x00, 0x07, 0, 0, 1, 0 };
    CHECK(sy_tds_hdr_parse(small, 8, 4096, &h, err, sizeof err) == SY_PARSE_BAD);
    const uint8_t big[8] = { 0x01, 0x01, 0x10, 0x01, 0, 0, 1, 0 };   /* 4097 > the negotiated 4096 */
    CHECK(sy_tds_hdr_parse(big, 8, 4096, &h, err, sizeof err) == SY_PARSE_BAD && strstr(err, "4097") != NULL);
    const uint8_t huge[8] = { 0x12, 0x01, 0xff, 0xff, 0, 0, 1, 0 };
    CHECK(sy_tds_hdr_parse(huge, 8, SY_TDS_MAX_PACKET, &h, err, sizeof err) == SY_PARSE_BAD);
}

static void test_message_reassembly(void)
{
    static uint8_t payload[10000], wire[11000], back[10000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 7);
    size_t w = sy_tds_msg_build(wire, sizeof wire, SY_TDS_RPC, 0, 4096, payload, sizeof payload);
    CHECK(w == sizeof payload + 3 * 8);
    CHECK(wire[0] == SY_TDS_RPC && wire[1] == 0 && wire[6] == 1);             /* first: no EOM, id 1 */
    CHECK(wire[4096 + 1] == 0 && wire[4096 + 6] == 2);
    CHECK(wire[8192 + 1] == SY_TDS_STATUS_EOM && wire[8192 + 6] == 3);        /* last: EOM, id 3 */
    struct sy_tds_msg m;
    CHECK(sy_tds_msg_frame(wire, w, 4096, 1u << 20, &m, err, sizeof err) == SY_PARSE_OK);
    CHECK(m.type == SY_TDS_RPC && m.packets == 3 && m.wire_len == w && m.payload_len == sizeof payload);
    sy_tds_msg_payload(wire, &m, back);
    CHECK(memcmp(back, payload, sizeof payload) == 0);
    /* every prefix is AGAIN */
    bool all_again = true;
    for (size_t n = 0; n < w; n += 97)
        all_again &= sy_tds_msg_frame(wire, n, 4096, 1u << 20, &m, err, sizeof err) == SY_PARSE_AGAIN;
    CHECK(all_again);
    /* the payload limit is checked on the claims, before the bodies arrive */
    CHECK(sy_tds_msg_frame(wire, 8, 4096, 100, &m, err, sizeof err) == SY_PARSE_BAD);
    CHECK(sy_tds_msg_frame(wire, w, 4096, 9000, &m, err, sizeof err) == SY_PARSE_BAD);
    /* packets above the negotiated size */
    CHECK(sy_tds_msg_frame(wire, w, 2048, 1u << 20, &m, err, sizeof err) == SY_PARSE_BAD);
    /* a type change inside a message */
    wire[4096] = SY_TDS_SQL_BATCH;
    CHECK(sy_tds_msg_frame(wire, w, 4096, 1u << 20, &m, err, sizeof err) == SY_PARSE_BAD &&
          strstr(err, "type changed") != NULL);
    /* ATTENTION is a message of its own, EOM or not */
    const uint8_t attn[8] = { SY_TDS_ATTENTION, 0, 0, 8, 0, 0, 1, 0 };
    CHECK(sy_tds_msg_frame(attn, 8, 4096, 100, &m, err, sizeof err) == SY_PARSE_OK && m.payload_len == 0);
    /* empty packets before the last one: refused (nothing else would bound the wire) */
    const uint8_t empties[24] = { 1, 0, 0, 8, 0, 0, 1, 0, 1, 0, 0, 8, 0, 0, 2, 0, 1, 1, 0, 8, 0, 0, 3, 0 };
    CHECK(sy_tds_msg_frame(empties, 24, 4096, 100, &m, err, sizeof err) == SY_PARSE_BAD && strstr(err, "empty"));
    CHECK(sy_tds_msg_frame(empties + 16, 8, 4096, 100, &m, err, sizeof err) == SY_PARSE_OK && m.payload_len == 0);
    /* an empty message is one packet */
    CHECK(sy_tds_msg_build(wire, sizeof wire, SY_TDS_TABULAR, 0, 512, NULL, 0) == 8 && wire[1] == SY_TDS_STATUS_EOM);
    CHECK(sy_tds_msg_build(wire, 100, SY_TDS_RPC, 0, 4096, payload, 200) == 0);  /* does not fit */
}

/* ---- PRELOGIN ------------------------------------------------------------------------------------------- */

/* FreeTDS 1.3 (tsql/pymssql) PRELOGIN payload, TDSVER=7.4, from TDSDUMP. */
static const uint8_t freetds_prelogin[] = {
    0x00, 0x00, 0x1a, 0x00, 0x06, 0x01, 0x00, 0x20, 0x00, 0x01, 0x02, 0x00, 0x21, 0x00, 0x0c, 0x03, 0x00, 0x2d,
    0x00, 0x04, 0x04, 0x00, 0x31, 0x00, 0x01, 0xff, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4d, 0x53, 0x53,
    0x51, 0x4c, 0x53, 0x65, 0x72, 0x76, 0x65, 0x72, 0x00, 0xe5, 0x6f, 0x00, 0x00, 0x00,
};

static void test_prelogin(void)
{
    struct sy_tds_prelogin pl;
    CHECK(sy_tds_prelogin_parse(freetds_prelogin, sizeof freetds_prelogin, &pl, err, sizeof err) == SY_PARSE_OK);
    CHECK(pl.has_version && pl.version[0] == 9 && pl.encryption == SY_TDS_ENCRYPT_OFF && pl.mars == 0);
    CHECK(pl.instopt_len == 12 && memcmp(pl.instopt, "MSSQLServer", 12) == 0);
    CHECK(pl.has_threadid && pl.threadid == 0xe56f0000u && pl.n_options == 5 && pl.fedauth_required == -1);
    uint8_t b[sizeof freetds_prelogin];
    memcpy(b, freetds_prelogin, sizeof b);
    b[3] = 0x40;                                                   /* VERSION offset past the end */
    CHECK(sy_tds_prelogin_parse(b, sizeof b, &pl, err, sizeof err) == SY_PARSE_BAD && strstr(err, "outside"));
    memcpy(b, freetds_prelogin, sizeof b);
    b[9] = 2;                                                      /* ENCRYPTION with 2 bytes */
    CHECK(sy_tds_prelogin_parse(b, sizeof b, &pl, err, sizeof err) == SY_PARSE_BAD);
    CHECK(sy_tds_prelogin_parse(freetds_prelogin, 23, &pl, err, sizeof err) == SY_PARSE_BAD);  /* cut table */
    const uint8_t none[] = { 0x00, 0x00, 0x05, 0x00, 0x00 };       /* no terminator */
    CHECK(sy_tds_prelogin_parse(none, sizeof none, &pl, err, sizeof err) == SY_PARSE_BAD);
    const uint8_t empty[] = { 0xff };
    CHECK(sy_tds_prelogin_parse(empty, 1, &pl, err, sizeof err) == SY_PARSE_OK && pl.n_options == 0 && pl.encryption == -1);
    /* build -> parse */
    const uint8_t ver[6] = { 16, 0, 0x10, 0x7a, 0, 0 }, enc = SY_TDS_ENCRYPT_NOT_SUP, mars = 1, fed = 0;
    const struct sy_tds_prelogin_opt opts[] = { { SY_TDS_PL_VERSION, ver, 6 }, { SY_TDS_PL_ENCRYPTION, &enc, 1 },
                                                { SY_TDS_PL_THREADID, NULL, 0 }, { SY_TDS_PL_MARS, &mars, 1 },
                                                { SY_TDS_PL_FEDAUTHREQUIRED, &fed, 1 } };
    uint8_t out[64];
    size_t n = sy_tds_prelogin_build(out, sizeof out, opts, 5);
    CHECK(n == 5 * 5 + 1 + 9 && out[25] == 0xff);
    CHECK(sy_tds_prelogin_parse(out, n, &pl, err, sizeof err) == SY_PARSE_OK);
    CHECK(memcmp(pl.version, ver, 6) == 0 && pl.encryption == SY_TDS_ENCRYPT_NOT_SUP && pl.mars == 1 &&
          !pl.has_threadid && pl.fedauth_required == 0);
    CHECK(sy_tds_prelogin_build(out, 20, opts, 5) == 0);
}

/* ---- LOGIN7 ---------------------------------------------------------------------------------------------- */

static void test_password_obfuscation(void)
{
    const uint8_t plain[2] = { 'a', 0 }, obf[2] = { 0xB3, 0xA5 };  /* swap nibbles, XOR 0xA5 */
    uint8_t b[2];
    sy_tds_password_encode(plain, 2, b);
    CHECK(memcmp(b, obf, 2) == 0);
    sy_tds_password_decode(b, 2, b);
    CHECK(memcmp(b, plain, 2) == 0);
}

static size_t sample_login7(uint8_t *out, size_t cap, bool ext)
{
    static uint8_t host[64], user[64], app[64], db[64], pw[64];
    static const uint8_t features[] = { 0x04, 1, 0, 0, 0, 0x01, 0xff }; /* UTF8_SUPPORT-ish, then terminator */
    struct sy_tds_login7 l;
    memset(&l, 0, sizeof l);
    l.tds_version = 0x74000004;
    l.packet_size = 8192;
    l.client_pid = 4242;
    l.flags1 = 0xE0;
    l.flags2 = 0x03;
    l.client_lcid = 0x409;
    l.str[SY_L7_HOSTNAME] = (struct sy_tds_span){ host, utf16("client-host", host) };
    l.str[SY_L7_USERNAME] = (struct sy_tds_span){ user, utf16("app_user", user) };
    l.str[SY_L7_APPNAME] = (struct sy_tds_span){ app, utf16("pytds", app) };
    l.str[SY_L7_DATABASE] = (struct sy_tds_span){ db, utf16("orders", db) };
    if (ext)
        l.feature_ext = (struct sy_tds_span){ features, sizeof features };
    size_t pwlen = utf16("s3cret!", pw);
    return sy_tds_login7_build(out, cap, &l, pw, pwlen);
}

static void test_login7_round_trip(void)
{
    uint8_t buf[1024];
    size_t n = sample_login7(buf, sizeof buf, false);
    CHECK(n == SY_TDS_LOGIN7_FIXED + 2 * (11 + 8 + 7 + 5 + 6));
    struct sy_tds_login7 l;
    CHECK(sy_tds_login7_parse(buf, n, &l, err, sizeof err) == SY_PARSE_OK);
    CHECK(l.length == n && l.tds_version == 0x74000004 && l.packet_size == 8192 && l.client_pid == 4242);
    char s[64];
    sy_tds_utf16_to_utf8(l.str[SY_L7_USERNAME].p, l.str[SY_L7_USERNAME].len, s, sizeof s);
    CHECK(strcmp(s, "app_user") == 0);
    sy_tds_utf16_to_utf8(l.str[SY_L7_DATABASE].p, l.str[SY_L7_DATABASE].len, s, sizeof s);
    CHECK(strcmp(s, "orders") == 0);
    CHECK(l.str[SY_L7_SERVERNAME].len == 0 && l.sspi.len == 0 && l.feature_ext.len == 0);
    uint8_t pw[64];
    CHECK(l.str[SY_L7_PASSWORD].len == 14);
    CHECK(memcmp(l.str[SY_L7_PASSWORD].p, "s\0", 2) != 0);                    /* obfuscated on the wire */
    sy_tds_password_decode(l.str[SY_L7_PASSWORD].p, 14, pw);
    sy_tds_utf16_to_utf8(pw, 14, s, sizeof s);
    CHECK(strcmp(s, "s3cret!") == 0);
    /* rebuilt from what was parsed: the same bytes */
    uint8_t again[1024];
    CHECK(sy_tds_login7_build(again, sizeof again, &l, pw, 14) == n && memcmp(again, buf, n) == 0);
    /* FeatureExt carried */
    n = sample_login7(buf, sizeof buf, true);
    CHECK(sy_tds_login7_parse(buf, n, &l, err, sizeof err) == SY_PARSE_OK);
    CHECK((l.flags3 & SY_TDS_LOGIN7_FLAG3_EXTENSION) && l.feature_ext.len == 7 && l.feature_ext.p[0] == 0x04);
    CHECK(sy_tds_login7_build(again, sizeof again, &l, pw, 14) == n && memcmp(again, buf, n) == 0);
    CHECK(sy_tds_login7_build(again, 100, &l, pw, 14) == 0);
}

static void test_login7_bad(void)
{
    uint8_t buf[1024], b[1024];
    size_t n = sample_login7(buf, sizeof buf, true);
    struct sy_tds_login7 l;
    CHECK(sy_tds_login7_parse(buf, 80, &l, err, sizeof err) == SY_PARSE_BAD);          /* below the fixed part */
    memcpy(b, buf, n);
    b[0] = (uint8_t)(n + 1);                                                         /* length past the payload */
    CHECK(sy_tds_login7_parse(b, n, &l, err, sizeof err) == SY_PARSE_BAD);
    memcpy(b, buf, n);
    b[40] = 0x60; b[41] = 0xea;                                                      /* user name at 60000 */
    CHECK(sy_tds_login7_parse(b, n, &l, err, sizeof err) == SY_PARSE_BAD && strstr(err, "field 1"));
    memcpy(b, buf, n);
    b[42] = 0x2c; b[43] = 0x01;                                                      /* 300 characters */
    CHECK(sy_tds_login7_parse(b, n, &l, err, sizeof err) == SY_PARSE_BAD);
    memcpy(b, buf, n);
    b[36] = 10; b[37] = 0;                                                           /* host inside the fixed part */
    CHECK(sy_tds_login7_parse(b, n, &l, err, sizeof err) == SY_PARSE_BAD);
    memcpy(b, buf, n);
    b[n - 1] = 0x05;                                                                 /* FeatureExt unterminated */
    CHECK(sy_tds_login7_parse(b, n, &l, err, sizeof err) == SY_PARSE_BAD);
    memcpy(b, buf, n);
    b[n - 6] = 0xff; b[n - 5] = 0xff; b[n - 4] = 0xff; b[n - 3] = 0x7f;              /* feature length 2^31 */
    CHECK(sy_tds_login7_parse(b, n, &l, err, sizeof err) == SY_PARSE_BAD);
    memcpy(b, buf, n);
    b[78] = 0; b[79] = 1; b[80] = 0xff; b[81] = 0xff;                                /* SSPI: cbSSPILong */
    b[90] = 0xff; b[91] = 0xff; b[92] = 0xff; b[93] = 0xff;
    CHECK(sy_tds_login7_parse(b, n, &l, err, sizeof err) == SY_PARSE_BAD);
}

static void test_utf16(void)
{
    const uint8_t rocket[] = { 'a', 0, 0x3d, 0xd8, 0x80, 0xde, 0xe4, 0x00 };         /* a U+1F680 ä */
    char s[16];
    CHECK(sy_tds_utf16_to_utf8(rocket, sizeof rocket, s, sizeof s) == 7 && strcmp(s, "a\xf0\x9f\x9a\x80\xc3\xa4") == 0);
    const uint8_t lone[] = { 0x3d, 0xd8, 'b', 0 };                                  /* unpaired surrogate */
    CHECK(sy_tds_utf16_to_utf8(lone, sizeof lone, s, sizeof s) == 4 && strcmp(s, "\xef\xbf\xbd" "b") == 0);
    CHECK(sy_tds_utf16_to_utf8(rocket, sizeof rocket, s, 4) == 1 && strcmp(s, "a") == 0); /* cut at a char */
    CHECK(sy_tds_utf16_to_utf8(rocket, 3, s, sizeof s) == 1);                        /* odd byte ignored */
}

/* ---- tokens ---------------------------------------------------------------------------------------------- */

static size_t put_tok(uint8_t *p, uint8_t tok, const uint8_t *body, size_t len)
{
    p[0] = tok;
    p[1] = (uint8_t)len;
    p[2] = (uint8_t)(len >> 8);
    memcpy(p + 3, body, len);
    return 3 + len;
}

static size_t envchange_str(uint8_t *p, uint8_t type, const char *nv, const char *ov)
{
    uint8_t b[300];
    size_t n = 0;
    b[n++] = type;
    b[n++] = (uint8_t)strlen(nv);
    n += utf16(nv, b + n);
    b[n++] = (uint8_t)strlen(ov);
    n += utf16(ov, b + n);
    return put_tok(p, SY_TDS_TOK_ENVCHANGE, b, n);
}

static size_t done_tok(uint8_t *p, uint16_t status)
{
    memset(p, 0, SY_TDS_DONE_LEN);
    p[0] = SY_TDS_TOK_DONE;
    p[1] = (uint8_t)status;
    p[2] = (uint8_t)(status >> 8);
    return SY_TDS_DONE_LEN;
}

/* The double's successful login response (tests/doubles/server.py, Session.login). */
static size_t login_ok(uint8_t *p, const char *size)
{
    size_t n = envchange_str(p, SY_TDS_ENV_DATABASE, "master", "master");
    n += sy_tds_error_reply_build(p + n, 400, SY_TDS_TOK_INFO, 5701, 2, 0, "Changed database context to 'master'.",
                                  "SWITCHYARD-DOUBLE", 0) - SY_TDS_DONE_LEN;     /* the INFO alone */
    uint8_t coll[] = { SY_TDS_ENV_COLLATION, 5, 0x09, 0x04, 0xd0, 0x00, 0x34, 0 };
    n += put_tok(p + n, SY_TDS_TOK_ENVCHANGE, coll, sizeof coll);
    uint8_t ack[64];
    size_t k = 0;
    ack[k++] = 1;
    ack[k++] = 0x74; ack[k++] = 0; ack[k++] = 0; ack[k++] = 4;
    ack[k++] = 20;
    k += utf16("Microsoft SQL Server", ack + k);
    ack[k++] = 16; ack[k++] = 0; ack[k++] = 0x10; ack[k++] = 0x7a;
    n += put_tok(p + n, SY_TDS_TOK_LOGINACK, ack, k);
    p[n++] = SY_TDS_TOK_FEATUREEXTACK;
    p[n++] = SY_TDS_FEATURE_TERMINATOR;
    n += envchange_str(p + n, SY_TDS_ENV_PACKETSIZE, size, "4096");
    n += done_tok(p + n, 0);
    return n;
}

static void test_login_response(void)
{
    uint8_t p[1024];
    size_t n = login_ok(p, "8192");
    struct sy_tds_login_result r;
    CHECK(sy_tds_login_result_scan(p, n, &r, err, sizeof err) == SY_PARSE_OK);
    CHECK(r.loginack && r.ack.tds_version == 0x74000004 && strcmp(r.ack.prog_name, "Microsoft SQL Server") == 0);
    CHECK(r.ack.prog_version[0] == 16 && r.packet_size == 8192 && strcmp(r.database, "master") == 0);
    CHECK(!r.has_error && r.done && r.done_status == 0);
    /* cut anywhere: BAD for the scan of a whole message, AGAIN for the token cut */
    struct sy_tds_token t;
    size_t used;
    CHECK(sy_tds_token_next(p, 5, &t, &used, err, sizeof err) == SY_PARSE_AGAIN);
    CHECK(sy_tds_login_result_scan(p, n - 1, &r, err, sizeof err) == SY_PARSE_BAD && strstr(err, "cut"));
    /* packet sizes the proxy would enforce must be sane */
    n = login_ok(p, "99999");
    CHECK(sy_tds_login_result_scan(p, n, &r, err, sizeof err) == SY_PARSE_BAD);
    n = login_ok(p, "12ab");
    CHECK(sy_tds_login_result_scan(p, n, &r, err, sizeof err) == SY_PARSE_BAD);
    n = login_ok(p, "");
    CHECK(sy_tds_login_result_scan(p, n, &r, err, sizeof err) == SY_PARSE_BAD);
    /* a token the scan does not read (COLMETADATA) */
    const uint8_t colmeta[] = { 0x81, 0x01, 0x00 };
    CHECK(sy_tds_login_result_scan(colmeta, sizeof colmeta, &r, err, sizeof err) == SY_PARSE_BAD &&
          strstr(err, "0x81"));
}

static void test_refused_login(void)
{
    uint8_t p[1024];
    size_t n = sy_tds_error_reply_build(p, sizeof p, SY_TDS_TOK_ERROR, 18456, 1, 14, "Login failed for user 'sa'.",
                                        "SWITCHYARD-DOUBLE", SY_TDS_DONE_ERROR);
    CHECK(n > SY_TDS_DONE_LEN);
    struct sy_tds_login_result r;
    CHECK(sy_tds_login_result_scan(p, n, &r, err, sizeof err) == SY_PARSE_OK);
    CHECK(!r.loginack && r.has_error && r.error.number == 18456 && r.error.state == 1 && r.error.klass == 14);
    CHECK(strcmp(r.error.message, "Login failed for user 'sa'.") == 0 && strcmp(r.error.server, "SWITCHYARD-DOUBLE") == 0);
    CHECK(r.error.line == 1 && r.done && r.done_status == SY_TDS_DONE_ERROR);
    /* the message length claims more than the token holds */
    p[9] = 0xff;
    CHECK(sy_tds_login_result_scan(p, n, &r, err, sizeof err) == SY_PARSE_BAD);
    CHECK(sy_tds_error_reply_build(p, 20, SY_TDS_TOK_ERROR, 1, 1, 1, "x", "y", 0) == 0);
}

static void test_envchange_and_done(void)
{
    uint8_t p[64];
    const uint8_t begin[] = { SY_TDS_ENV_BEGIN_TRAN, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0 };
    size_t n = put_tok(p, SY_TDS_TOK_ENVCHANGE, begin, sizeof begin);
    struct sy_tds_token t;
    size_t used;
    struct sy_tds_envchange e;
    CHECK(sy_tds_token_next(p, n, &t, &used, err, sizeof err) == SY_PARSE_OK && used == n);
    CHECK(sy_tds_envchange_parse(&t, &e) == SY_PARSE_OK && e.type == SY_TDS_ENV_BEGIN_TRAN &&
          e.new_value.len == 8 && e.new_value.p[7] == 8 && e.old_value.len == 0);
    p[4] = 9;                                                      /* descriptor longer than the token */
    CHECK(sy_tds_token_next(p, n, &t, &used, err, sizeof err) == SY_PARSE_OK && sy_tds_envchange_parse(&t, &e) == SY_PARSE_BAD);
    uint8_t d[SY_TDS_DONE_LEN];
    done_tok(d, SY_TDS_DONE_ATTN);
    CHECK(sy_tds_is_attention_ack(d));
    struct sy_tds_done dn;
    CHECK(sy_tds_token_next(d, sizeof d, &t, &used, err, sizeof err) == SY_PARSE_OK && sy_tds_done_parse(&t, &dn) == SY_PARSE_OK &&
          dn.status == SY_TDS_DONE_ATTN && dn.rows == 0);
    done_tok(d, 0x0011);                                           /* DONE_MORE | DONE_COUNT: no ack */
    CHECK(!sy_tds_is_attention_ack(d));
    d[0] = 0xAA;
    d[1] = SY_TDS_DONE_ATTN;
    CHECK(!sy_tds_is_attention_ack(d));
}

int main(void)
{
    test_header();
    test_message_reassembly();
    test_prelogin();
    test_password_obfuscation();
    test_login7_round_trip();
    test_login7_bad();
    test_utf16();
    test_login_response();
    test_refused_login();
    test_envchange_and_done();
    return CHECK_DONE();
}
