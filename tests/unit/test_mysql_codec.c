/* Unit tests for proxy/mysql_codec.c. Most vectors are bytes a MariaDB 10.11.19 server sent (or
 * accepted from a PyMySQL-like client) on loopback, captured as payloads without the 4-byte header:
 * greeting, handshake responses, OK with session-state entries, ERR, classic and DEPRECATE_EOF result
 * sets, prepare/execute/fetch with a cursor, LOCAL INFILE with a progress report, CACHE_METADATA. */
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>

#include "proxy/mysql_codec.h"
#include "tests/unit/check.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define MAXP SY_MYSQL_MAX_PAYLOAD

#define CAPS_CLASSIC                                                                                   \
    (SY_CAP_PROTOCOL_41 | SY_CAP_TRANSACTIONS | SY_CAP_SECURE_CONNECTION | SY_CAP_MULTI_STATEMENTS |   \
     SY_CAP_MULTI_RESULTS | SY_CAP_PS_MULTI_RESULTS | SY_CAP_PLUGIN_AUTH | SY_CAP_LOCAL_FILES)
#define CAPS_DEPRECATE (CAPS_CLASSIC | SY_CAP_SESSION_TRACK | SY_CAP_DEPRECATE_EOF)
#define CAPS_MARIADB (CAPS_DEPRECATE | SY_CAP_MARIADB_PROGRESS | SY_CAP_MARIADB_CACHE_METADATA)

/* ---- captured vectors (hex payloads) ---------------------------------------------------------- */

static const char greeting_hex[] =
    "0a352e352e352d31302e31312e31392d4d6172696144422d302b646562313275312d6c6f6700100000005453255b7a75"
    "5d5300fef7080200ff81150000000000001d000000662a397e3323515123587153006d7973716c5f6e61746976655f70"
    "617373776f726400";
static const char greeting_salt_hex[] = "5453255b7a755d53662a397e3323515123587153";
static const char hsresp_pymysql_hex[] =
    "8da2bf01000000012d0000000000000000000000000000000000000000000000617070001424c55f7790bbe0bae8d8bb"
    "833aef4e568df6b4f874006d7973716c5f6e61746976655f70617373776f7264004a0c5f636c69656e745f6e616d6507"
    "70796d7973716c045f70696404343234320f5f636c69656e745f76657273696f6e05312e312e310c70726f6772616d5f"
    "6e616d650773792d74657374";
static const char hsresp_mariadb_hex[] =
    "8ca2bf01000000012d00000000000000000000000000000000000000110000006170700014ec27a53dd758fe93ca5143"
    "59264094a04044663974006d7973716c5f6e61746976655f70617373776f7264004a0c5f636c69656e745f6e616d6507"
    "70796d7973716c045f70696404343234320f5f636c69656e745f76657273696f6e05312e312e310c70726f6772616d5f"
    "6e616d650773792d74657374";
static const char auth_ok_schema_hex[] = "00000002400000000401020174";
static const char insert_ok_gtid_hex[] = "0001080240000000130011096c6173745f6774696406302d312d3138";
static const char infile_ok_classic_hex[] =
    "000200020000002f5265636f7264733a2032202044656c657465643a20302020536b69707065643a203020205761726e"
    "696e67733a2030";
static const char infile_ok_track_hex[] =
    "000200024000002f5265636f7264733a2032202044656c657465643a20302020536b69707065643a203020205761726e"
    "696e67733a2030130011096c6173745f6774696406302d312d3139";
static const char err_no_table_hex[] =
    "ff7a042334325330325461626c652027742e6e6f70652720646f65736e2774206578697374";
static const char err_access_denied_hex[] =
    "ff15042332383030304163636573732064656e69656420666f72207573657220276170702740276c6f63616c686f7374"
    "2720287573696e672070617373776f72643a2059455329";
static const char err_unknown_db_hex[] =
    "ff1904233432303030556e6b6e6f776e20646174616261736520276e6f73756368646227";
static const char infile_req_hex[] = "fb2f746d702f73792e637376";
static const char progress_hex[] = "ffffff0102020000000f456e642062756c6b20696e73657274";
static const char statistics_hex[] =
    "557074696d653a2035332020546872656164733a203120205175657374696f6e733a2039342020536c6f772071756572"
    "6965733a203020204f70656e733a20323220204f70656e207461626c65733a2031342020517565726965732070657220"
    "7365636f6e64206176673a20312e373733";
static const char execute_req_hex[] = "170500000001010000000001030000000000";
static const char execute_req2_hex[] = "17050000000001000000000001000000";
static const char hs_switch_hex[] =
    "05a22a0000000001210000000000000000000000000000000000000000000000617070000063616368696e675f736861"
    "325f70617373776f726400";
static const char auth_switch_hex[] =
    "fe6d7973716c5f6e61746976655f70617373776f72640052584632693d317d4479592e78333651782a623300";
static const char change_user_req_hex[] =
    "116170700014941e9662eef83840bde11cf073356b91bb9546be74002d006d7973716c5f6e61746976655f7061737377"
    "6f726400";

static const char *const classic_select[] = {
    "02",
    "036465660174017801780269640269640c3f000b000000030342000000",
    "03646566017401780178017301730c2d0050000000fd0000000000",
    "fe00002200",
    "01310161",
    "01320162",
    "0133fb",
    "fe00002200",
};
static const char *const classic_multi[] = {
    "01", "036465660000000131000c3f0001000000038100000000", "fe00000a00", "0131", "fe00000a00",
    "01", "036465660000000132000c3f0001000000038100000000", "fe00000200", "0132", "fe00000200",
};
static const char *const classic_multi_ok[] = {
    "0000000a000000", "01", "036465660000000133000c3f0001000000038100000000", "fe00000a00", "0133",
    "fe00000a00",     "00000002000000",
};
static const char *const classic_prepare[] = {
    "000500000002000100000000",
    "03646566000000013f000c3f0000000000068000000000",
    "fe00000200",
    "036465660174017801780269640269640c3f000b000000030342000000",
    "03646566017401780178017301730c2d0050000000fd0000000000",
    "fe00000200",
};
static const char *const classic_execute_cursor[] = {
    "02",
    "036465660174017801780269640269640c3f000b000000030100000000",
    "03646566017401780178017301730c2d0050000000fd0000000000",
    "fe00004200",
};
static const char *const classic_fetch[] = { "0000010000000161", "0000020000000162", "fe00004200" };
static const char *const classic_execute_nocursor[] = {
    "02",
    "036465660174017801780269640269640c3f000b000000030342000000",
    "03646566017401780178017301730c2d0050000000fd0000000000",
    "fe00000200",
    "0000020000000162",
    "000803000000",
    "0000040000000163",
    "fe00000200",
};
static const char *const classic_field_list[] = {
    "036465660174017801780269640269640c3f000b0000000303420000000130",
    "03646566017401780178017301730c2d0050000000fd0000000000fb",
    "fe00000200",
};
static const char *const deprecate_select[] = {
    "02",
    "036465660174017801780269640269640c3f000b000000030342000000",
    "03646566017401780178017301730c2d0050000000fd0000000000",
    "01310161",
    "01320162",
    "0133fb",
    "fe000022000000",
};
static const char *const deprecate_multi[] = {
    "01", "036465660000000131000c3f0001000000038100000000", "0131", "fe00000a000000",
    "01", "036465660000000132000c3f0001000000038100000000", "0132", "fe000002000000",
};
static const char *const deprecate_multi_ok[] = {
    "0000000a000000", "01", "036465660000000133000c3f0001000000038100000000", "0133", "fe00000a000000",
    "00000002000000",
};
static const char *const deprecate_prepare[] = {
    "000600000002000100000000",
    "03646566000000013f000c3f0000000000068000000000",
    "036465660174017801780269640269640c3f000b000000030342000000",
    "03646566017401780178017301730c2d0050000000fd0000000000",
};
static const char *const deprecate_execute_cursor[] = {
    "02",
    "036465660174017801780269640269640c3f000b000000030100000000",
    "03646566017401780178017301730c2d0050000000fd0000000000",
    "fe000042000000",
};
static const char *const deprecate_fetch[] = { "0000010000000161", "0000020000000162", "fe000042000000" };
static const char *const deprecate_execute_nocursor[] = {
    "02",
    "036465660174017801780269640269640c3f000b000000030342000000",
    "03646566017401780178017301730c2d0050000000fd0000000000",
    "0000020000000162",
    "000803000000",
    "0000040000000163",
    "0000050000000178",
    "0000060000000179",
    "0000080000000163",
    "fe000002000000",
};
static const char *const deprecate_field_list[] = {
    "036465660174017801780269640269640c3f000b0000000303420000000130",
    "03646566017401780178017301730c2d0050000000fd0000000000fb",
    "fe000002000000",
};
/* CACHE_METADATA: the column count is followed by a "metadata follows" byte. */
static const char *const mariadb_select[] = {
    "0201",
    "036465660174017801780269640269640c3f000b000000030342000000",
    "03646566017401780178017301730c2d0050000000fd0000000000",
    "01310161",
    "01320162",
    "0133fb",
    "fe000022000000",
};

/* ---- helpers ---------------------------------------------------------------------------------- */

static int hex_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes hex into out[cap]; aborts on a malformed vector (a bug in this file, not in the codec). */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    if (strlen(hex) % 2 != 0 || n > cap)
        abort();
    for (size_t i = 0; i < n; i++) {
        int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            abort();
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return n;
}

struct run {
    size_t fed;                  /* packets fed */
    enum sy_mysql_step last;     /* step returned for the last one */
    unsigned kinds[8];           /* packets seen per sy_mysql_pkt_kind */
    struct sy_mysql_pkt pkt;     /* the last packet's decode */
};

/* Feeds captured packets as the proxy would: whole when the tracker asks for it, else just the
 * first byte (the rest is "streamed"). Stops at the first step that is not MORE. */
static struct run run_packets(struct sy_mysql_resp *r, const char *const *pkts, size_t n)
{
    static uint8_t buf[4096];
    struct run out;
    memset(&out, 0, sizeof out);
    out.last = SY_STEP_MORE;
    for (size_t i = 0; i < n; i++) {
        size_t len = unhex(pkts[i], buf, sizeof buf);
        bool whole = sy_mysql_resp_wants_whole(r, len ? buf[0] : 0, (uint32_t)len);
        size_t avail = whole ? len : (len ? 1 : 0);
        out.last = sy_mysql_resp_feed(r, buf, avail, (uint32_t)len, &out.pkt);
        out.fed++;
        out.kinds[out.pkt.kind]++;
        if (out.last != SY_STEP_MORE)
            break;
    }
    return out;
}

static enum sy_mysql_step feed_hex(struct sy_mysql_resp *r, const char *hex, struct sy_mysql_pkt *pkt)
{
    const char *const one[] = { hex };
    struct run x = run_packets(r, one, 1);
    *pkt = x.pkt;
    return x.last;
}

static bool span_eq(const void *p, size_t n, const char *s)
{
    return n == strlen(s) && (n == 0 || memcmp(p, s, n) == 0);
}

/* ---- framing and lenenc ----------------------------------------------------------------------- */

static void test_hdr(void)
{
    const uint8_t b[4] = { 0xff, 0xff, 0xff, 0x07 };
    struct sy_mysql_hdr h;
    for (size_t n = 0; n < 4; n++)
        CHECK(sy_mysql_hdr_parse(b, n, &h) == SY_PARSE_AGAIN);
    CHECK(sy_mysql_hdr_parse(NULL, 4, &h) == SY_PARSE_AGAIN);
    CHECK(sy_mysql_hdr_parse(b, 4, &h) == SY_PARSE_OK && h.len == MAXP && h.seq == 7);
    uint8_t e[4];
    sy_mysql_hdr_encode(e, 0x123456, 255);
    CHECK(e[0] == 0x56 && e[1] == 0x34 && e[2] == 0x12 && e[3] == 255);
    CHECK(sy_mysql_hdr_parse(e, 4, &h) == SY_PARSE_OK && h.len == 0x123456 && h.seq == 255);
}

static void test_lenenc(void)
{
    static const uint64_t vals[] = { 0, 1, 250, 251, 0xFFFF, 0x10000, 0xFFFFFF, 0x1000000, UINT64_MAX };
    static const size_t widths[] = { 1, 1, 1, 3, 3, 4, 4, 9, 9 };
    for (size_t i = 0; i < N(vals); i++) {
        uint8_t buf[9];
        struct sy_wr w = sy_wr_make(buf, sizeof buf);
        sy_mysql_lenenc_put(&w, vals[i]);
        CHECK(!w.bad && w.len == widths[i]);
        struct sy_rd r = sy_rd_make(buf, w.len);
        uint64_t v = 1;
        bool is_null = true;
        CHECK(sy_mysql_lenenc_get(&r, &v, &is_null) && v == vals[i] && !is_null && sy_rd_left(&r) == 0);
        for (size_t cut = 0; cut < w.len; cut++) { /* every truncation fails and sticks */
            r = sy_rd_make(buf, cut);
            CHECK(!sy_mysql_lenenc_get(&r, &v, NULL) && r.bad);
        }
        w = sy_wr_make(buf, widths[i] - 1);    /* writer overflow sticks */
        sy_mysql_lenenc_put(&w, vals[i]);
        CHECK(w.bad);
    }
    const uint8_t null_mark[] = { 0xFB }, ff[] = { 0xFF };
    struct sy_rd r = sy_rd_make(null_mark, 1);
    uint64_t v = 7;
    bool is_null = false;
    CHECK(sy_mysql_lenenc_get(&r, &v, &is_null) && is_null && v == 0);
    r = sy_rd_make(null_mark, 1);
    CHECK(!sy_mysql_lenenc_get(&r, &v, NULL) && r.bad);      /* NULL not allowed here */
    r = sy_rd_make(ff, 1);
    CHECK(!sy_mysql_lenenc_get(&r, &v, &is_null) && r.bad);

    /* strings: a huge claimed length must fail without reading past the span */
    const uint8_t huge[] = { 0xFE, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 'a', 'b' };
    size_t len = 99;
    r = sy_rd_make(huge, sizeof huge);
    CHECK(sy_mysql_lenenc_str_get(&r, &len) == NULL && r.bad && len == 0);
    const uint8_t over[] = { 0x05, 'a', 'b' };
    r = sy_rd_make(over, sizeof over);
    CHECK(sy_mysql_lenenc_str_get(&r, &len) == NULL && r.bad);
    r = sy_rd_make(null_mark, 1);
    CHECK(sy_mysql_lenenc_str_get(&r, &len) == NULL && r.bad);
    const uint8_t ok[] = { 0x00, 0x03, 'a', 'b', 'c' };
    r = sy_rd_make(ok, sizeof ok);
    const uint8_t *s = sy_mysql_lenenc_str_get(&r, &len);
    CHECK(s != NULL && len == 0);
    s = sy_mysql_lenenc_str_get(&r, &len);
    CHECK(s != NULL && span_eq(s, len, "abc") && sy_rd_left(&r) == 0);
    uint8_t out[8];
    struct sy_wr w = sy_wr_make(out, sizeof out);
    sy_mysql_lenenc_str_put(&w, "abc", 3);
    CHECK(!w.bad && w.len == 4 && memcmp(out, "\x03" "abc", 4) == 0);
}

/* ---- connection phase ------------------------------------------------------------------------- */

static void test_greeting_real(void)
{
    uint8_t p[256], salt[20], enc[256];
    size_t n = unhex(greeting_hex, p, sizeof p);
    unhex(greeting_salt_hex, salt, sizeof salt);
    struct sy_mysql_greeting g;
    CHECK(sy_mysql_greeting_parse(p, n, &g) == SY_PARSE_OK);
    CHECK(strcmp(g.server_version, "5.5.5-10.11.19-MariaDB-0+deb12u1-log") == 0);
    CHECK(g.thread_id == 16 && g.collation == 8 && g.status == SY_STATUS_AUTOCOMMIT);
    CHECK(g.salt_len == 20 && memcmp(g.salt, salt, 20) == 0);
    CHECK(!(g.caps & SY_CAP_MYSQL) && (g.caps & SY_CAP_PROTOCOL_41) && (g.caps & SY_CAP_DEPRECATE_EOF));
    CHECK((g.caps >> 32) == 0x1d); /* PROGRESS | STMT_BULK | EXT_TYPE_INFO | CACHE_METADATA */
    CHECK((g.caps & SY_CAP_MARIADB_CACHE_METADATA) && !(g.caps & SY_CAP_MARIADB_COM_MULTI));
    CHECK(strcmp(g.auth_plugin, "mysql_native_password") == 0);
    CHECK(sy_mysql_greeting_encode(&g, enc, sizeof enc) == n && memcmp(enc, p, n) == 0);
    CHECK(sy_mysql_greeting_encode(&g, enc, n - 1) == 0);

    /* Truncated anywhere before the end of the scramble: BAD. After it, only the plugin name is cut
     * (a missing final NUL is tolerated, as clients do). */
    size_t salt_end = 1 + strlen(g.server_version) + 1 + 4 + 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10 + 13;
    for (size_t cut = 0; cut < n; cut++) {
        struct sy_mysql_greeting t;
        enum sy_parse want = cut < salt_end ? SY_PARSE_BAD : SY_PARSE_OK;
        CHECK(sy_mysql_greeting_parse(p, cut, &t) == want);
    }
    CHECK(sy_mysql_greeting_parse(NULL, 0, &g) == SY_PARSE_BAD);

    /* An ERR instead of a greeting, and protocol 9, are BAD. */
    uint8_t e[128];
    size_t en = unhex(err_access_denied_hex, e, sizeof e);
    CHECK(sy_mysql_greeting_parse(e, en, &g) == SY_PARSE_BAD);
    p[0] = 9;
    CHECK(sy_mysql_greeting_parse(p, n, &g) == SY_PARSE_BAD);
    p[0] = 10;

    /* CLIENT_MYSQL set (a MySQL server): the filler is not extended caps. */
    p[1 + 37 + 4 + 8 + 1] |= 0x01;
    CHECK(sy_mysql_greeting_parse(p, n, &g) == SY_PARSE_OK && (g.caps >> 32) == 0 && (g.caps & SY_CAP_MYSQL));
}

static void test_greeting_edges(void)
{
    struct sy_mysql_greeting g, back;
    uint8_t buf[256];
    memset(&g, 0, sizeof g);
    memset(g.server_version, 'v', sizeof g.server_version - 1);   /* longest that fits */
    g.thread_id = 0xdeadbeef;
    for (int i = 0; i < 20; i++)
        g.salt[i] = (uint8_t)(0x21 + i);
    g.salt_len = 20;
    g.caps = SY_CAP_PROTOCOL_41 | SY_CAP_SECURE_CONNECTION | SY_CAP_PLUGIN_AUTH | SY_CAP_MARIADB_STMT_BULK;
    strcpy(g.auth_plugin, "client_ed25519");
    size_t n = sy_mysql_greeting_encode(&g, buf, sizeof buf);
    CHECK(n > 0 && sy_mysql_greeting_parse(buf, n, &back) == SY_PARSE_OK);
    CHECK(memcmp(&g, &back, sizeof g) == 0);

    /* an over-long version is truncated, still NUL-terminated */
    uint8_t big[300];
    memset(big, 0, sizeof big);
    big[0] = 10;
    memset(big + 1, 'x', 150);
    memcpy(big + 152, buf + 1 + 96, n - 1 - 96);   /* the rest of the greeting above */
    CHECK(sy_mysql_greeting_parse(big, 152 + n - 97, &back) == SY_PARSE_OK);
    CHECK(strlen(back.server_version) == SY_MYSQL_VERSION_MAX - 1 && back.thread_id == 0xdeadbeef);

    /* auth_plugin_data_len claims 40: 32 scramble bytes do not fit in 20 -> BAD */
    uint8_t w[200];
    size_t off = 1 + 96 + 4 + 8 + 1 + 2 + 1 + 2 + 2;  /* apdl byte */
    memcpy(w, buf, off);
    w[off] = 40;
    memset(w + off + 1, 0, 10);
    memset(w + off + 11, 'k', 32);
    CHECK(sy_mysql_greeting_parse(w, off + 11 + 32, &back) == SY_PARSE_BAD);

    /* no NUL after the version */
    uint8_t nonul[] = { 10, 'a', 'b', 'c' };
    CHECK(sy_mysql_greeting_parse(nonul, sizeof nonul, &back) == SY_PARSE_BAD);
    /* encode refuses what it cannot represent */
    g.salt_len = 21;
    CHECK(sy_mysql_greeting_encode(&g, buf, sizeof buf) == 0);
}

static void test_hsresp_real(void)
{
    uint8_t p[512], enc[512];
    size_t n = unhex(hsresp_pymysql_hex, p, sizeof p);
    struct sy_mysql_hsresp h;
    CHECK(sy_mysql_hsresp_parse(p, n, &h) == SY_PARSE_OK);
    CHECK((h.caps & SY_CAP_MYSQL) && (h.caps >> 32) == 0 && (h.caps & SY_CAP_PLUGIN_AUTH_LENENC));
    CHECK((h.caps & SY_CAP_SESSION_TRACK) && (h.caps & SY_CAP_DEPRECATE_EOF) && !h.ssl_request);
    CHECK(h.max_packet == 16777216 && h.collation == 45 && strcmp(h.user, "app") == 0 && h.auth_len == 20);
    CHECK(h.has_db && strcmp(h.db, "t") == 0 && strcmp(h.plugin, "mysql_native_password") == 0);
    CHECK(h.attrs_len == 0x4a && h.attrs_p != NULL && h.attrs_p[0] == 0x0c &&
          memcmp(h.attrs_p + 1, "_client_name", 12) == 0);
    CHECK(sy_mysql_hsresp_encode(&h, enc, sizeof enc) == n && memcmp(enc, p, n) == 0);

    n = unhex(hsresp_mariadb_hex, p, sizeof p);   /* CLIENT_MYSQL clear: ext caps in bytes 28..31 */
    CHECK(sy_mysql_hsresp_parse(p, n, &h) == SY_PARSE_OK);
    CHECK(!(h.caps & SY_CAP_MYSQL) && (h.caps & SY_CAP_MARIADB_PROGRESS) &&
          (h.caps & SY_CAP_MARIADB_CACHE_METADATA) && (h.caps >> 32) == 0x11);
    CHECK(sy_mysql_hsresp_encode(&h, enc, sizeof enc) == n && memcmp(enc, p, n) == 0);

    /* Every cut before the user's NUL is BAD (a 32-byte cut without CLIENT_SSL too). */
    for (size_t cut = 0; cut < 36; cut++)
        CHECK(sy_mysql_hsresp_parse(p, cut, &h) == SY_PARSE_BAD);
    CHECK(sy_mysql_hsresp_parse(p, 40, &h) == SY_PARSE_BAD);      /* inside the auth response */

    /* SSLRequest: exactly the prefix, with CLIENT_SSL */
    uint8_t ssl[32];
    memcpy(ssl, p, 32);
    ssl[1] |= 0x08;
    CHECK(sy_mysql_hsresp_parse(ssl, 32, &h) == SY_PARSE_OK && h.ssl_request && (h.caps & SY_CAP_SSL));
    CHECK(h.user[0] == '\0' && (h.caps >> 32) == 0x11);
    /* no PROTOCOL_41 */
    memcpy(enc, p, n);
    enc[1] &= (uint8_t)~0x02;
    CHECK(sy_mysql_hsresp_parse(enc, n, &h) == SY_PARSE_BAD);

    /* a real response naming an unknown plugin, 0-length lenenc auth */
    n = unhex(hs_switch_hex, p, sizeof p);
    CHECK(sy_mysql_hsresp_parse(p, n, &h) == SY_PARSE_OK && h.auth_len == 0 && !h.has_db);
    CHECK(strcmp(h.plugin, "caching_sha2_password") == 0 && h.attrs_p == NULL);
    CHECK(sy_mysql_hsresp_encode(&h, enc, sizeof enc) == n && memcmp(enc, p, n) == 0);
}

static void test_hsresp_edges(void)
{
    struct sy_mysql_hsresp h, back;
    uint8_t buf[1024];
    memset(&h, 0, sizeof h);
    h.caps = SY_CAP_PROTOCOL_41 | SY_CAP_CONNECT_WITH_DB;          /* old style: NUL-terminated auth */
    h.max_packet = 1 << 24;
    strcpy(h.user, "u");
    memcpy(h.auth, "secret", 6);
    h.auth_len = 6;
    h.has_db = true;
    strcpy(h.db, "db1");
    size_t n = sy_mysql_hsresp_encode(&h, buf, sizeof buf);
    CHECK(n == 32 + 2 + 7 + 4);
    CHECK(sy_mysql_hsresp_parse(buf, n, &back) == SY_PARSE_OK && back.auth_len == 6 &&
          memcmp(back.auth, "secret", 6) == 0 && back.has_db && strcmp(back.db, "db1") == 0);
    h.auth[2] = 0;                                                 /* not representable */
    CHECK(sy_mysql_hsresp_encode(&h, buf, sizeof buf) == 0);

    /* 1-byte auth length (SECURE_CONNECTION without LENENC) */
    h.caps = SY_CAP_PROTOCOL_41 | SY_CAP_SECURE_CONNECTION | SY_CAP_PLUGIN_AUTH;
    h.auth_len = 255;
    memset(h.auth, 0, sizeof h.auth);
    n = sy_mysql_hsresp_encode(&h, buf, sizeof buf);
    CHECK(n > 0 && sy_mysql_hsresp_parse(buf, n, &back) == SY_PARSE_OK && back.auth_len == 255);
    CHECK(!back.has_db && back.plugin[0] == '\0');

    /* over-long user: BAD, never truncated */
    uint8_t p[32 + 400 + 8];
    memset(p, 0, sizeof p);
    p[1] = 0x02;                                                   /* PROTOCOL_41 */
    memset(p + 32, 'a', 400);
    CHECK(sy_mysql_hsresp_parse(p, sizeof p, &back) == SY_PARSE_BAD);
    memset(p + 32, 'a', SY_MYSQL_NAME_MAX - 1);                     /* 384 chars + NUL fits */
    p[32 + SY_MYSQL_NAME_MAX - 1] = 0;
    p[32 + SY_MYSQL_NAME_MAX] = 0;                                  /* empty auth */
    CHECK(sy_mysql_hsresp_parse(p, 32 + SY_MYSQL_NAME_MAX + 1, &back) == SY_PARSE_OK);
    CHECK(strlen(back.user) == SY_MYSQL_NAME_MAX - 1);

    /* lenenc auth of 300 bytes: BAD; huge lenenc attrs: BAD */
    uint8_t q[32 + 2 + 3 + 300];
    memset(q, 0, sizeof q);
    q[1] = 0x02;
    q[2] = 0x20;                                                   /* PLUGIN_AUTH_LENENC */
    q[32] = 'u';
    q[34] = 0xFC;
    q[35] = 300 & 0xff;
    q[36] = 300 >> 8;
    CHECK(sy_mysql_hsresp_parse(q, sizeof q, &back) == SY_PARSE_BAD);
    uint8_t a[32 + 2 + 1 + 9];
    memset(a, 0, sizeof a);
    a[1] = 0x02;
    a[2] = 0x10;                                                   /* CONNECT_ATTRS */
    a[32] = 'u';
    a[34] = 0;                                                     /* empty NUL-terminated auth */
    memset(a + 35, 0xff, 9);
    a[35] = 0xFE;
    CHECK(sy_mysql_hsresp_parse(a, sizeof a, &back) == SY_PARSE_BAD);
}

static void test_auth_switch(void)
{
    uint8_t p[128];
    size_t n = unhex(auth_switch_hex, p, sizeof p);
    struct sy_mysql_auth_switch s;
    CHECK(sy_mysql_auth_switch_parse(p, n, &s) == SY_PARSE_OK);
    CHECK(strcmp(s.plugin, "mysql_native_password") == 0 && s.data_len == 20 && s.data[19] != 0);
    CHECK(sy_mysql_auth_switch_parse(p, 1, &s) == SY_PARSE_OK && strcmp(s.plugin, "mysql_old_password") == 0);
    CHECK(sy_mysql_auth_switch_parse(p, 10, &s) == SY_PARSE_BAD);  /* plugin name without NUL */
    const uint8_t empty_data[] = { 0xFE, 'x', 0 };
    CHECK(sy_mysql_auth_switch_parse(empty_data, 3, &s) == SY_PARSE_OK && s.data_len == 0);
    p[0] = 0x00;
    CHECK(sy_mysql_auth_switch_parse(p, n, &s) == SY_PARSE_BAD);
    CHECK(sy_mysql_auth_switch_parse(NULL, 0, &s) == SY_PARSE_BAD);
    uint8_t big[2 + 300];
    memset(big, 'd', sizeof big);
    big[0] = 0xFE;
    big[1] = 0;
    CHECK(sy_mysql_auth_switch_parse(big, sizeof big, &s) == SY_PARSE_BAD);
}

static void test_change_user(void)
{
    uint64_t caps = SY_CAP_MYSQL | SY_CAP_LONG_FLAG | SY_CAP_PROTOCOL_41 | SY_CAP_TRANSACTIONS |
                    SY_CAP_SECURE_CONNECTION | SY_CAP_MULTI_RESULTS | SY_CAP_PLUGIN_AUTH |
                    SY_CAP_PLUGIN_AUTH_LENENC;                    /* as negotiated for that capture */
    uint8_t p[256], enc[256];
    size_t n = unhex(change_user_req_hex, p, sizeof p);
    struct sy_mysql_change_user c;
    CHECK(sy_mysql_change_user_parse(p, n, caps, &c) == SY_PARSE_OK);
    CHECK(strcmp(c.user, "app") == 0 && c.auth_len == 20 && strcmp(c.db, "t") == 0);
    CHECK(c.has_collation && c.collation == 45 && strcmp(c.plugin, "mysql_native_password") == 0);
    CHECK(c.attrs_p == NULL);
    CHECK(sy_mysql_change_user_encode(&c, caps, enc, sizeof enc) == n && memcmp(enc, p, n) == 0);
    /* an old client stops after the schema */
    size_t old = 1 + 4 + 21 + 2;
    CHECK(sy_mysql_change_user_parse(p, old, caps, &c) == SY_PARSE_OK && !c.has_collation);
    CHECK(sy_mysql_change_user_encode(&c, caps, enc, sizeof enc) == old && memcmp(enc, p, old) == 0);
    CHECK(sy_mysql_change_user_parse(p, old - 1, caps, &c) == SY_PARSE_BAD);  /* schema without NUL */
    CHECK(sy_mysql_change_user_parse(p, 3, caps, &c) == SY_PARSE_BAD);
    p[0] = SY_COM_QUERY;
    CHECK(sy_mysql_change_user_parse(p, n, caps, &c) == SY_PARSE_BAD);
    /* with connect attributes */
    p[0] = SY_COM_CHANGE_USER;
    memcpy(p + n, "\x04\x01k\x01v", 5);
    CHECK(sy_mysql_change_user_parse(p, n + 5, caps | SY_CAP_CONNECT_ATTRS, &c) == SY_PARSE_OK);
    CHECK(c.attrs_len == 4 && memcmp(c.attrs_p, "\x01k\x01v", 4) == 0);
    CHECK(sy_mysql_change_user_encode(&c, caps | SY_CAP_CONNECT_ATTRS, enc, sizeof enc) == n + 5);
    CHECK(sy_mysql_change_user_parse(p, n + 4, caps | SY_CAP_CONNECT_ATTRS, &c) == SY_PARSE_BAD);
}

/* ---- generic replies -------------------------------------------------------------------------- */

static void check_ok_roundtrip(const uint8_t *p, size_t n, uint64_t caps)
{
    struct sy_mysql_ok ok;
    uint8_t enc[512];
    CHECK(sy_mysql_ok_parse(p, n, caps, &ok) == SY_PARSE_OK);
    CHECK(sy_mysql_ok_encode(&ok, p[0], caps, enc, sizeof enc) == n && memcmp(enc, p, n) == 0);
}

static void test_ok_session_state(void)
{
    uint8_t p[256];
    struct sy_mysql_ok ok;
    struct sy_mysql_track t;
    size_t n = unhex(auth_ok_schema_hex, p, sizeof p);
    CHECK(sy_mysql_ok_parse(p, n, CAPS_DEPRECATE, &ok) == SY_PARSE_OK);
    CHECK(ok.affected_rows == 0 && ok.status == (SY_STATUS_AUTOCOMMIT | SY_STATUS_SESSION_STATE_CHANGED));
    CHECK(ok.info_len == 0 && ok.state_len == 4);
    struct sy_rd r = sy_rd_make(ok.state_p, ok.state_len);
    CHECK(sy_mysql_track_next(&r, &t) == 1 && t.type == SY_TRACK_SCHEMA);
    CHECK(span_eq(t.name_p, t.name_len, "t"));
    CHECK(sy_mysql_track_next(&r, &t) == 0);
    check_ok_roundtrip(p, n, CAPS_DEPRECATE);

    n = unhex(insert_ok_gtid_hex, p, sizeof p);
    CHECK(sy_mysql_ok_parse(p, n, CAPS_DEPRECATE, &ok) == SY_PARSE_OK);
    CHECK(ok.affected_rows == 1 && ok.last_insert_id == 8 && ok.warnings == 0);
    r = sy_rd_make(ok.state_p, ok.state_len);
    CHECK(sy_mysql_track_next(&r, &t) == 1 && t.type == SY_TRACK_SYSTEM_VARIABLES);
    CHECK(span_eq(t.name_p, t.name_len, "last_gtid") && span_eq(t.value_p, t.value_len, "0-1-18"));
    CHECK(sy_mysql_track_next(&r, &t) == 0);
    check_ok_roundtrip(p, n, CAPS_DEPRECATE);

    /* LOAD DATA's OK: the info is lenenc even without SESSION_TRACK (the server always sends it so) */
    n = unhex(infile_ok_classic_hex, p, sizeof p);
    CHECK(sy_mysql_ok_parse(p, n, CAPS_CLASSIC, &ok) == SY_PARSE_OK && ok.affected_rows == 2);
    CHECK(span_eq(ok.info_p, ok.info_len, "Records: 2  Deleted: 0  Skipped: 0  Warnings: 0"));
    CHECK(ok.state_p == NULL);
    check_ok_roundtrip(p, n, CAPS_CLASSIC);
    n = unhex(infile_ok_track_hex, p, sizeof p);
    CHECK(sy_mysql_ok_parse(p, n, CAPS_DEPRECATE, &ok) == SY_PARSE_OK);
    CHECK(span_eq(ok.info_p, ok.info_len, "Records: 2  Deleted: 0  Skipped: 0  Warnings: 0"));
    r = sy_rd_make(ok.state_p, ok.state_len);
    CHECK(sy_mysql_track_next(&r, &t) == 1 && span_eq(t.value_p, t.value_len, "0-1-19"));
    check_ok_roundtrip(p, n, CAPS_DEPRECATE);

    /* A raw string<EOF> info (as the protocol docs describe it) is still read whole */
    const uint8_t raw[] = { 0, 0, 0, 2, 0, 0, 0, 'h', 'i', '!' };
    CHECK(sy_mysql_ok_parse(raw, sizeof raw, CAPS_CLASSIC, &ok) == SY_PARSE_OK);
    CHECK(span_eq(ok.info_p, ok.info_len, "hi!"));
    /* SESSION_TRACK with the flag but nothing after the warnings: empty info and state */
    const uint8_t bare[] = { 0, 0, 0, 0x02, 0x40, 0, 0 };
    CHECK(sy_mysql_ok_parse(bare, sizeof bare, CAPS_DEPRECATE, &ok) == SY_PARSE_OK && ok.state_len == 0);
    /* the DEPRECATE_EOF terminator form and a huge affected-rows count */
    const uint8_t fe_ok[] = { 0xFE, 0xFE, 1, 2, 3, 4, 5, 6, 7, 8, 0xFC, 0x34, 0x12, 0x22, 0, 1, 0 };
    CHECK(sy_mysql_ok_parse(fe_ok, sizeof fe_ok, CAPS_DEPRECATE, &ok) == SY_PARSE_OK);
    CHECK(ok.affected_rows == 0x0807060504030201ull && ok.last_insert_id == 0x1234 && ok.warnings == 1);
    check_ok_roundtrip(fe_ok, sizeof fe_ok, CAPS_DEPRECATE);

    /* malformed */
    n = unhex(insert_ok_gtid_hex, p, sizeof p);
    for (size_t cut = 0; cut < 7; cut++)                    /* header, counts, status, warnings */
        CHECK(sy_mysql_ok_parse(p, cut, CAPS_DEPRECATE, &ok) == SY_PARSE_BAD);
    CHECK(sy_mysql_ok_parse(p, n - 1, CAPS_DEPRECATE, &ok) == SY_PARSE_BAD);   /* state block cut */
    p[8] = 0x40;                                            /* state claims 64 bytes */
    CHECK(sy_mysql_ok_parse(p, n, CAPS_DEPRECATE, &ok) == SY_PARSE_BAD);
    p[0] = 0x01;
    CHECK(sy_mysql_ok_parse(p, n, CAPS_DEPRECATE, &ok) == SY_PARSE_BAD);
    const uint8_t nullcount[] = { 0, 0xFB, 0, 2, 0, 0, 0 };
    CHECK(sy_mysql_ok_parse(nullcount, sizeof nullcount, CAPS_DEPRECATE, &ok) == SY_PARSE_BAD);
    CHECK(sy_mysql_ok_encode(&ok, 0x01, CAPS_DEPRECATE, p, sizeof p) == 0);

    /* session-state iteration: entry types and malformed entries */
    const uint8_t entries[] = {
        SY_TRACK_STATE_CHANGE, 2, 1, '1',                   /* raw: lenenc "1" */
        SY_TRACK_TRANSACTION_STATE, 9, 8, 'T', '_', '_', '_', 'W', '_', 'S', '_',
        SY_TRACK_SYSTEM_VARIABLES, 3, 1, 'a', 5,            /* value claims 5 bytes: malformed */
    };
    r = sy_rd_make(entries, sizeof entries);
    CHECK(sy_mysql_track_next(&r, &t) == 1 && t.type == SY_TRACK_STATE_CHANGE && t.name_len == 2);
    CHECK(sy_mysql_track_next(&r, &t) == 1 && t.type == SY_TRACK_TRANSACTION_STATE && t.name_len == 9);
    CHECK(sy_mysql_track_next(&r, &t) == -1 && sy_mysql_track_next(&r, &t) == -1);   /* sticky */
    const uint8_t cut_entry[] = { SY_TRACK_SCHEMA, 5, 4, 'a' };
    r = sy_rd_make(cut_entry, sizeof cut_entry);
    CHECK(sy_mysql_track_next(&r, &t) == -1);
}

static void test_err(void)
{
    uint8_t p[256], enc[256];
    struct sy_mysql_err e;
    size_t n = unhex(err_no_table_hex, p, sizeof p);
    CHECK(sy_mysql_err_parse(p, n, &e) == SY_PARSE_OK && e.code == 1146 && strcmp(e.sqlstate, "42S02") == 0);
    CHECK(span_eq(e.msg_p, e.msg_len, "Table 't.nope' doesn't exist"));
    CHECK(sy_mysql_err_encode(e.code, e.sqlstate, "Table 't.nope' doesn't exist", enc, sizeof enc) == n &&
          memcmp(enc, p, n) == 0);
    n = unhex(err_access_denied_hex, p, sizeof p);
    CHECK(sy_mysql_err_parse(p, n, &e) == SY_PARSE_OK && e.code == 1045 && strcmp(e.sqlstate, "28000") == 0);
    CHECK(span_eq(e.msg_p, e.msg_len, "Access denied for user 'app'@'localhost' (using password: YES)"));
    n = unhex(err_unknown_db_hex, p, sizeof p);
    CHECK(sy_mysql_err_parse(p, n, &e) == SY_PARSE_OK && e.code == 1049 && strcmp(e.sqlstate, "42000") == 0);

    /* before the handshake the server sends no SQLSTATE */
    static const char blocked[] = "\xff\x69\x04Host '10.0.0.9' is blocked because of many connection errors";
    CHECK(sy_mysql_err_parse((const uint8_t *)blocked, sizeof blocked - 1, &e) == SY_PARSE_OK);
    CHECK(e.code == 1129 && strcmp(e.sqlstate, "HY000") == 0 && e.msg_len == sizeof blocked - 4);
    size_t en = sy_mysql_err_encode(1129, NULL, blocked + 3, enc, sizeof enc);
    CHECK(en == sizeof blocked - 1 && memcmp(enc, blocked, en) == 0);
    const uint8_t hash_short[] = { 0xff, 1, 0, '#', 'a', 'b' };  /* '#' but too short for a state */
    CHECK(sy_mysql_err_parse(hash_short, sizeof hash_short, &e) == SY_PARSE_OK);
    CHECK(span_eq(e.msg_p, e.msg_len, "#ab") && strcmp(e.sqlstate, "HY000") == 0);
    CHECK(sy_mysql_err_parse(p, 2, &e) == SY_PARSE_BAD && sy_mysql_err_parse(p, 0, &e) == SY_PARSE_BAD);
    const uint8_t bare[] = { 0xff, 0x10, 0x27 };
    CHECK(sy_mysql_err_parse(bare, 3, &e) == SY_PARSE_OK && e.code == 10000 && e.msg_len == 0);
    CHECK(sy_mysql_err_encode(1, "4200", "x", enc, sizeof enc) == 0);      /* 4-char SQLSTATE */
    CHECK(sy_mysql_err_encode(1, "HY000", "message", enc, 10) == 0);     /* does not fit */
    CHECK(sy_mysql_err_encode(1, "HY000", NULL, enc, 9) == 9);
}

static void test_eof(void)
{
    struct sy_mysql_eof e;
    const uint8_t eof[] = { 0xfe, 0x01, 0x00, 0x42, 0x00 };
    CHECK(sy_mysql_eof_parse(eof, 5, &e) == SY_PARSE_OK && e.warnings == 1 && e.status == 0x42);
    CHECK(sy_mysql_eof_parse(eof, 1, &e) == SY_PARSE_OK && e.status == 0);
    for (size_t n = 2; n < 5; n++)
        CHECK(sy_mysql_eof_parse(eof, n, &e) == SY_PARSE_BAD);
    const uint8_t nine[9] = { 0xfe };
    CHECK(sy_mysql_eof_parse(nine, 9, &e) == SY_PARSE_BAD);
    CHECK(sy_mysql_eof_parse(nine, 8, &e) == SY_PARSE_OK);
    const uint8_t not_eof[] = { 0x00, 0, 0, 2, 0 };
    CHECK(sy_mysql_eof_parse(not_eof, 5, &e) == SY_PARSE_BAD);
}

/* ---- response tracking ------------------------------------------------------------------------ */

static void test_resp_resultsets(void)
{
    struct sy_mysql_resp r;
    struct run x;

    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    x = run_packets(&r, classic_select, N(classic_select));
    CHECK(x.fed == N(classic_select) && x.last == SY_STEP_DONE && r.phase == SY_RESP_DONE);
    CHECK(x.kinds[SY_PKT_EOF] == 2 && x.kinds[SY_PKT_DATA] == 6);
    CHECK(r.has_status && r.status == 0x22 && !r.failed);

    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_DEPRECATE);
    x = run_packets(&r, deprecate_select, N(deprecate_select));
    CHECK(x.fed == N(deprecate_select) && x.last == SY_STEP_DONE);
    CHECK(x.kinds[SY_PKT_OK] == 1 && r.status == 0x22);

    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_MARIADB);      /* CACHE_METADATA count packets */
    x = run_packets(&r, mariadb_select, N(mariadb_select));
    CHECK(x.fed == N(mariadb_select) && x.last == SY_STEP_DONE && x.kinds[SY_PKT_OK] == 1);
    /* metadata skipped: count + follows=0, then rows directly (DEPRECATE_EOF) */
    static const char *const skipped[] = { "0200", "0000020000000162", "fe000002000000" };
    sy_mysql_resp_start(&r, SY_COM_STMT_EXECUTE, CAPS_MARIADB);
    x = run_packets(&r, skipped, N(skipped));
    CHECK(x.fed == 3 && x.last == SY_STEP_DONE);
    static const char *const skipped_classic[] = { "0200", "fe00000200", "0000020000000162", "fe00000200" };
    sy_mysql_resp_start(&r, SY_COM_STMT_EXECUTE, CAPS_CLASSIC | SY_CAP_MARIADB_CACHE_METADATA);
    x = run_packets(&r, skipped_classic, N(skipped_classic));
    CHECK(x.fed == 4 && x.last == SY_STEP_DONE && x.kinds[SY_PKT_EOF] == 2);
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_MARIADB);      /* the follows byte is required */
    x = run_packets(&r, classic_select, 1);
    CHECK(x.last == SY_STEP_BAD);

    /* multi-results: MORE_RESULTS on the final EOF/OK loops back to FIRST */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    x = run_packets(&r, classic_multi, N(classic_multi));
    CHECK(x.fed == N(classic_multi) && x.last == SY_STEP_DONE && x.kinds[SY_PKT_EOF] == 4 && r.status == 2);
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_DEPRECATE);
    x = run_packets(&r, deprecate_multi, N(deprecate_multi));
    CHECK(x.fed == N(deprecate_multi) && x.last == SY_STEP_DONE && x.kinds[SY_PKT_OK] == 2);
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    x = run_packets(&r, classic_multi_ok, N(classic_multi_ok));
    CHECK(x.fed == N(classic_multi_ok) && x.last == SY_STEP_DONE && x.kinds[SY_PKT_OK] == 2);
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_DEPRECATE);
    x = run_packets(&r, deprecate_multi_ok, N(deprecate_multi_ok));
    CHECK(x.fed == N(deprecate_multi_ok) && x.last == SY_STEP_DONE && x.kinds[SY_PKT_OK] == 3);
    /* a result set then an error: ERR ends it all, even after MORE_RESULTS */
    static const char *const then_err[] = { "0000000a000000", "ff7a042334325330325461626c65" };
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_DEPRECATE);
    x = run_packets(&r, then_err, 2);
    CHECK(x.fed == 2 && x.last == SY_STEP_DONE && r.failed);
    CHECK(x.pkt.kind == SY_PKT_ERR && x.pkt.err.code == 1146);
    /* MORE_RESULTS on a COM_PING OK is not a chain */
    sy_mysql_resp_start(&r, SY_COM_PING, CAPS_DEPRECATE);
    x = run_packets(&r, then_err, 1);
    CHECK(x.last == SY_STEP_DONE);
}

static void test_resp_prepare_execute(void)
{
    struct sy_mysql_resp r;
    struct run x;

    sy_mysql_resp_start(&r, SY_COM_STMT_PREPARE, CAPS_CLASSIC);
    x = run_packets(&r, classic_prepare, N(classic_prepare));
    CHECK(x.fed == N(classic_prepare) && x.last == SY_STEP_DONE && x.kinds[SY_PKT_PREPARE_OK] == 1);
    CHECK(r.stmt_id == 5 && r.num_cols == 2 && r.num_params == 1 && x.kinds[SY_PKT_EOF] == 2);
    sy_mysql_resp_start(&r, SY_COM_STMT_PREPARE, CAPS_DEPRECATE);
    x = run_packets(&r, deprecate_prepare, N(deprecate_prepare));
    CHECK(x.fed == N(deprecate_prepare) && x.last == SY_STEP_DONE && r.stmt_id == 6);
    static const char *const no_defs[] = { "000700000000000000000000" };   /* e.g. PREPARE of a DO */
    sy_mysql_resp_start(&r, SY_COM_STMT_PREPARE, CAPS_CLASSIC);
    x = run_packets(&r, no_defs, 1);
    CHECK(x.last == SY_STEP_DONE && x.pkt.kind == SY_PKT_PREPARE_OK && r.stmt_id == 7);
    static const char *const cols_only[] = { "000800000001000000000000", "03646566", "fe00000200" };
    sy_mysql_resp_start(&r, SY_COM_STMT_PREPARE, CAPS_CLASSIC);
    x = run_packets(&r, cols_only, 3);
    CHECK(x.fed == 3 && x.last == SY_STEP_DONE);
    static const char *const params_only[] = { "000900000000000200000000", "03646566", "03646566" };
    sy_mysql_resp_start(&r, SY_COM_STMT_PREPARE, CAPS_DEPRECATE);
    x = run_packets(&r, params_only, 3);
    CHECK(x.fed == 3 && x.last == SY_STEP_DONE && r.num_params == 2);
    sy_mysql_resp_start(&r, SY_COM_STMT_PREPARE, CAPS_CLASSIC);
    x = run_packets(&r, (const char *const[]){ "0009000000" }, 1);   /* short PREPARE_OK */
    CHECK(x.last == SY_STEP_BAD);
    sy_mysql_resp_start(&r, SY_COM_STMT_PREPARE, CAPS_CLASSIC);
    x = run_packets(&r, (const char *const[]){ err_no_table_hex }, 1);
    CHECK(x.last == SY_STEP_DONE && r.failed);

    /* execute with a cursor: ends after the metadata; rows come with COM_STMT_FETCH */
    sy_mysql_resp_start(&r, SY_COM_STMT_EXECUTE, CAPS_CLASSIC);
    r.cursor = true;
    CHECK(r.binary_rows);
    x = run_packets(&r, classic_execute_cursor, N(classic_execute_cursor));
    CHECK(x.fed == N(classic_execute_cursor) && x.last == SY_STEP_DONE);
    CHECK(r.status & SY_STATUS_CURSOR_EXISTS);
    /* the same flag on an execute that asked for no cursor (a CALL whose procedure opened one): rows follow */
    sy_mysql_resp_start(&r, SY_COM_STMT_EXECUTE, CAPS_CLASSIC);
    x = run_packets(&r, classic_execute_cursor, N(classic_execute_cursor));
    CHECK(x.fed == N(classic_execute_cursor) && x.last == SY_STEP_MORE && r.phase == SY_RESP_ROWS);
    sy_mysql_resp_start(&r, SY_COM_STMT_EXECUTE, CAPS_DEPRECATE);
    x = run_packets(&r, deprecate_execute_cursor, N(deprecate_execute_cursor));
    CHECK(x.fed == N(deprecate_execute_cursor) && x.last == SY_STEP_DONE && x.pkt.kind == SY_PKT_OK);
    CHECK(r.status & SY_STATUS_CURSOR_EXISTS);
    sy_mysql_resp_start(&r, SY_COM_STMT_FETCH, CAPS_CLASSIC);
    x = run_packets(&r, classic_fetch, N(classic_fetch));
    CHECK(x.fed == N(classic_fetch) && x.last == SY_STEP_DONE && x.kinds[SY_PKT_DATA] == 2);
    sy_mysql_resp_start(&r, SY_COM_STMT_FETCH, CAPS_DEPRECATE);
    x = run_packets(&r, deprecate_fetch, N(deprecate_fetch));
    CHECK(x.fed == N(deprecate_fetch) && x.last == SY_STEP_DONE);

    /* without a cursor: binary rows start with 0x00 and are rows, not OKs */
    sy_mysql_resp_start(&r, SY_COM_STMT_EXECUTE, CAPS_CLASSIC);
    x = run_packets(&r, classic_execute_nocursor, N(classic_execute_nocursor));
    CHECK(x.fed == N(classic_execute_nocursor) && x.last == SY_STEP_DONE && x.kinds[SY_PKT_DATA] == 6);
    sy_mysql_resp_start(&r, SY_COM_STMT_EXECUTE, CAPS_DEPRECATE);
    x = run_packets(&r, deprecate_execute_nocursor, N(deprecate_execute_nocursor));
    CHECK(x.fed == N(deprecate_execute_nocursor) && x.last == SY_STEP_DONE && x.kinds[SY_PKT_DATA] == 9);
    /* CURSOR_EXISTS on a COM_QUERY's column EOF means nothing: rows follow */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    x = run_packets(&r, classic_execute_cursor, N(classic_execute_cursor));
    CHECK(x.last == SY_STEP_MORE && r.phase == SY_RESP_ROWS);
}

static void test_resp_other_commands(void)
{
    struct sy_mysql_resp r;
    struct sy_mysql_pkt pkt;
    struct run x;

    sy_mysql_resp_start(&r, SY_COM_FIELD_LIST, CAPS_CLASSIC);
    x = run_packets(&r, classic_field_list, N(classic_field_list));
    CHECK(x.fed == 3 && x.last == SY_STEP_DONE && x.pkt.kind == SY_PKT_EOF);
    sy_mysql_resp_start(&r, SY_COM_FIELD_LIST, CAPS_DEPRECATE);
    x = run_packets(&r, deprecate_field_list, N(deprecate_field_list));
    CHECK(x.fed == 3 && x.last == SY_STEP_DONE && x.pkt.kind == SY_PKT_OK);

    sy_mysql_resp_start(&r, SY_COM_STATISTICS, CAPS_CLASSIC);
    CHECK(!sy_mysql_resp_wants_whole(&r, 'U', 113) && sy_mysql_resp_wants_whole(&r, 0xFF, 20));
    CHECK(feed_hex(&r, statistics_hex, &pkt) == SY_STEP_DONE && pkt.kind == SY_PKT_TEXT);
    sy_mysql_resp_start(&r, SY_COM_STATISTICS, CAPS_CLASSIC);
    CHECK(sy_mysql_resp_feed(&r, NULL, 0, 0, &pkt) == SY_STEP_DONE && pkt.kind == SY_PKT_TEXT);

    sy_mysql_resp_start(&r, SY_COM_SET_OPTION, CAPS_CLASSIC);
    CHECK(feed_hex(&r, "fe00000200", &pkt) == SY_STEP_DONE && pkt.kind == SY_PKT_EOF);
    sy_mysql_resp_start(&r, SY_COM_SET_OPTION, CAPS_DEPRECATE);
    CHECK(feed_hex(&r, "fe000002000000", &pkt) == SY_STEP_DONE && pkt.kind == SY_PKT_OK && r.status == 2);
    sy_mysql_resp_start(&r, SY_COM_PING, CAPS_DEPRECATE);
    CHECK(feed_hex(&r, "00000002000000", &pkt) == SY_STEP_DONE && pkt.kind == SY_PKT_OK);
    sy_mysql_resp_start(&r, SY_COM_RESET_CONNECTION, CAPS_DEPRECATE);
    CHECK(feed_hex(&r, "00000002000000", &pkt) == SY_STEP_DONE);
    sy_mysql_resp_start(&r, SY_COM_INIT_DB, CAPS_DEPRECATE);
    CHECK(feed_hex(&r, err_unknown_db_hex, &pkt) == SY_STEP_DONE && r.failed && pkt.err.code == 1049);
    sy_mysql_resp_start(&r, SY_COM_PING, CAPS_DEPRECATE);
    CHECK(feed_hex(&r, "0301", &pkt) == SY_STEP_BAD);          /* not a reply to a simple command */
    CHECK(feed_hex(&r, "00000002000000", &pkt) == SY_STEP_BAD); /* and the stream stays untrusted */

    /* COM_CHANGE_USER: auth switch (client answers), then OK */
    sy_mysql_resp_start(&r, SY_COM_CHANGE_USER, CAPS_DEPRECATE);
    CHECK(feed_hex(&r, auth_switch_hex, &pkt) == SY_STEP_MORE && pkt.kind == SY_PKT_DATA);
    CHECK(feed_hex(&r, "00000002000000", &pkt) == SY_STEP_DONE && pkt.kind == SY_PKT_OK);

    /* binlog dump: 0x00-prefixed events until EOF */
    sy_mysql_resp_start(&r, SY_COM_BINLOG_DUMP_GTID, CAPS_CLASSIC);
    CHECK(r.phase == SY_RESP_ROWS);
    CHECK(feed_hex(&r, "0000000000040100000027000000000000002000", &pkt) == SY_STEP_MORE);
    CHECK(feed_hex(&r, "fe00000200", &pkt) == SY_STEP_DONE);

    CHECK(!sy_mysql_cmd_has_reply(SY_COM_QUIT) && !sy_mysql_cmd_has_reply(SY_COM_STMT_CLOSE) &&
          !sy_mysql_cmd_has_reply(SY_COM_STMT_SEND_LONG_DATA));
    CHECK(sy_mysql_cmd_has_reply(SY_COM_QUERY) && sy_mysql_cmd_has_reply(SY_COM_STMT_RESET) &&
          sy_mysql_cmd_has_reply(SY_COM_PING) && sy_mysql_cmd_has_reply(0x42));
    sy_mysql_resp_start(&r, SY_COM_STMT_CLOSE, CAPS_CLASSIC);
    CHECK(r.phase == SY_RESP_DONE && feed_hex(&r, "00000002000000", &pkt) == SY_STEP_BAD);
}

static void test_resp_infile(void)
{
    struct sy_mysql_resp r;
    struct sy_mysql_pkt pkt;
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    CHECK(feed_hex(&r, infile_req_hex, &pkt) == SY_STEP_INFILE && pkt.kind == SY_PKT_INFILE);
    CHECK(r.phase == SY_RESP_INFILE_WAIT);
    CHECK(feed_hex(&r, infile_ok_classic_hex, &pkt) == SY_STEP_DONE && pkt.kind == SY_PKT_OK &&
          pkt.ok.affected_rows == 2);

    /* MariaDB PROGRESS: a 0xFF/0xFFFF report before the OK is not an error */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_MARIADB);
    CHECK(feed_hex(&r, infile_req_hex, &pkt) == SY_STEP_INFILE);
    CHECK(feed_hex(&r, progress_hex, &pkt) == SY_STEP_MORE && pkt.kind == SY_PKT_DATA && !r.failed);
    CHECK(r.phase == SY_RESP_INFILE_WAIT);
    CHECK(feed_hex(&r, infile_ok_track_hex, &pkt) == SY_STEP_DONE && pkt.kind == SY_PKT_OK);
    /* without the capability it is an ERR */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_DEPRECATE);
    CHECK(feed_hex(&r, progress_hex, &pkt) == SY_STEP_DONE && r.failed && pkt.err.code == 0xFFFF);
    /* an error for the file, and LOCAL INFILE where it cannot be */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    CHECK(feed_hex(&r, infile_req_hex, &pkt) == SY_STEP_INFILE);
    CHECK(feed_hex(&r, err_no_table_hex, &pkt) == SY_STEP_DONE && r.failed);
    sy_mysql_resp_start(&r, SY_COM_STMT_EXECUTE, CAPS_CLASSIC); /* a prepared LOAD DATA LOCAL */
    CHECK(feed_hex(&r, infile_req_hex, &pkt) == SY_STEP_INFILE);
    sy_mysql_resp_start(&r, SY_COM_PROCESS_INFO, CAPS_CLASSIC);
    CHECK(feed_hex(&r, infile_req_hex, &pkt) == SY_STEP_BAD);
}

static void test_resp_terminator_rules(void)
{
    struct sy_mysql_resp r;
    struct sy_mysql_pkt pkt;
    const uint8_t fe[16] = { 0xFE, 0, 0, 2, 0, 0, 0 };

    /* classic: 0xFE with len >= 9 is a row whose first value has an 8-byte length */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    r.phase = SY_RESP_ROWS;
    CHECK(!sy_mysql_resp_wants_whole(&r, 0xFE, 9) && sy_mysql_resp_wants_whole(&r, 0xFE, 8));
    CHECK(sy_mysql_resp_feed(&r, fe, 1, 9, &pkt) == SY_STEP_MORE && pkt.kind == SY_PKT_DATA);
    CHECK(sy_mysql_resp_feed(&r, fe, 1, 100000, &pkt) == SY_STEP_MORE);
    /* 0x00 (binary row, or an empty first string) and 0xFB (NULL) are rows */
    CHECK(!sy_mysql_resp_wants_whole(&r, 0x00, 7));
    CHECK(sy_mysql_resp_feed(&r, (const uint8_t *)"\x00", 1, 7, &pkt) == SY_STEP_MORE);
    CHECK(pkt.kind == SY_PKT_DATA);
    CHECK(sy_mysql_resp_feed(&r, (const uint8_t *)"\xfb", 1, 1, &pkt) == SY_STEP_MORE);
    /* a terminator must come whole */
    CHECK(sy_mysql_resp_feed(&r, fe, 1, 5, &pkt) == SY_STEP_BAD && r.phase == SY_RESP_DONE);

    /* DEPRECATE_EOF: any 0xFE shorter than 16 MiB ends the rows as an OK */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_DEPRECATE);
    r.phase = SY_RESP_ROWS;
    CHECK(sy_mysql_resp_wants_whole(&r, 0xFE, 1000) && !sy_mysql_resp_wants_whole(&r, 0xFE, MAXP));
    CHECK(sy_mysql_resp_feed(&r, fe, 1, MAXP, &pkt) == SY_STEP_MORE && r.continued);
    CHECK(sy_mysql_resp_feed(&r, fe, 7, 7, &pkt) == SY_STEP_MORE && !r.continued);   /* continuation */
    CHECK(sy_mysql_resp_feed(&r, fe, 5, 5, &pkt) == SY_STEP_BAD);     /* classic EOF shape: bad OK */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_DEPRECATE);
    r.phase = SY_RESP_ROWS;
    CHECK(sy_mysql_resp_feed(&r, fe, 7, 7, &pkt) == SY_STEP_DONE && pkt.kind == SY_PKT_OK);
    CHECK(sy_mysql_resp_feed(&r, fe, 7, 7, &pkt) == SY_STEP_BAD);     /* nothing after DONE */

    /* column definitions are streamed; an EOF in their place is just a (strange) definition */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    CHECK(sy_mysql_resp_feed(&r, (const uint8_t *)"\x02", 1, 1, &pkt) == SY_STEP_MORE && r.left == 2);
    CHECK(!sy_mysql_resp_wants_whole(&r, 0x03, 40));
    CHECK(sy_mysql_resp_wants_whole(&r, 0xFF, 40));
    /* the EOF after definitions must be an EOF */
    r.phase = SY_RESP_COLDEFS_EOF;
    CHECK(sy_mysql_resp_feed(&r, (const uint8_t *)"\x01\x61", 2, 2, &pkt) == SY_STEP_BAD);

    /* caller errors and impossible lengths */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    CHECK(sy_mysql_resp_feed(&r, fe, 8, 7, &pkt) == SY_STEP_BAD);     /* avail > len */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    CHECK(sy_mysql_resp_feed(&r, fe, 0, 7, &pkt) == SY_STEP_BAD);     /* no byte at all */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    CHECK(sy_mysql_resp_feed(&r, fe, 1, MAXP + 1, &pkt) == SY_STEP_BAD);
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    CHECK(sy_mysql_resp_feed(&r, NULL, 0, 0, &pkt) == SY_STEP_BAD);   /* empty first packet */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    CHECK(sy_mysql_resp_feed(&r, (const uint8_t *)"\x00", 1, 1, &pkt) == SY_STEP_BAD);   /* cut OK */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    CHECK(sy_mysql_resp_feed(&r, (const uint8_t *)"\xff\x01", 2, 2, &pkt) == SY_STEP_BAD);  /* cut ERR */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    CHECK(sy_mysql_resp_feed(&r, (const uint8_t *)"\x00", 1, MAXP, &pkt) == SY_STEP_BAD);   /* 16 MiB OK */
}

static void test_resp_column_counts(void)
{
    struct sy_mysql_resp r;
    struct sy_mysql_pkt pkt;
    static const struct {
        const char *hex;
        enum sy_mysql_step step;
        uint64_t left;
    } cases[] = {
        { "01", SY_STEP_MORE, 1 },
        { "fa", SY_STEP_MORE, 250 },
        { "fcffff", SY_STEP_MORE, 0xFFFF },
        { "fc0000", SY_STEP_BAD, 0 },                    /* zero columns, non-canonical */
        { "fd000001", SY_STEP_BAD, 0 },                  /* 65536 columns */
        { "feffffffffffffffff", SY_STEP_BAD, 0 },        /* 2^64 - 1 */
        { "fe0000000000000001", SY_STEP_BAD, 0 },
        { "fcff", SY_STEP_BAD, 0 },                      /* truncated count */
        { "fe00000200", SY_STEP_BAD, 0 },                /* classic EOF shape where a count belongs */
    };
    for (size_t i = 0; i < N(cases); i++) {
        sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
        CHECK(feed_hex(&r, cases[i].hex, &pkt) == cases[i].step);
        CHECK(cases[i].step != SY_STEP_MORE || (r.phase == SY_RESP_COLDEFS && r.left == cases[i].left));
    }
}

/* A 16 MiB+ row split into 0xFFFFFF-long packets, framed from a real byte stream: later pieces
 * start with 0xFE and are short, yet are continuations, never EOF. */
static void test_resp_continuation(void)
{
    static uint8_t stream[(4 + MAXP) + (4 + 5) + (4 + 5)];
    const uint8_t fe_piece[5] = { 0xFE, 0, 0, 2, 0 };
    size_t off = 0;
    sy_mysql_hdr_encode(stream, MAXP, 3);
    stream[4] = 0xFC;                                   /* row: lenenc string, first piece */
    off = 4 + MAXP;
    sy_mysql_hdr_encode(stream + off, 5, 4);
    memcpy(stream + off + 4, fe_piece, 5);              /* last piece of the row, EOF-shaped */
    off += 9;
    sy_mysql_hdr_encode(stream + off, 5, 5);
    memcpy(stream + off + 4, fe_piece, 5);              /* the real EOF */
    off += 9;

    struct sy_mysql_resp r;
    struct sy_mysql_pkt pkt;
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_CLASSIC);
    r.phase = SY_RESP_ROWS;
    enum sy_mysql_step steps[3];
    size_t k = 0, pos = 0;
    while (pos < off && k < 3) {
        struct sy_mysql_hdr h;
        CHECK(sy_mysql_hdr_parse(stream + pos, off - pos, &h) == SY_PARSE_OK);
        const uint8_t *payload = stream + pos + 4;
        bool whole = sy_mysql_resp_wants_whole(&r, payload[0], h.len);
        CHECK(whole == (k == 2));
        steps[k++] = sy_mysql_resp_feed(&r, payload, h.len, h.len, &pkt);   /* avail == len is fine */
        pos += 4 + h.len;
    }
    CHECK(k == 3 && steps[0] == SY_STEP_MORE && steps[1] == SY_STEP_MORE && steps[2] == SY_STEP_DONE);
    CHECK(pkt.kind == SY_PKT_EOF);

    /* an exact multiple of 0xFFFFFF ends with an empty packet; definitions can be continued too */
    sy_mysql_resp_start(&r, SY_COM_QUERY, CAPS_DEPRECATE);
    CHECK(sy_mysql_resp_feed(&r, (const uint8_t *)"\x01", 1, 1, &pkt) == SY_STEP_MORE);
    CHECK(sy_mysql_resp_feed(&r, (const uint8_t *)"\x03", 1, MAXP, &pkt) == SY_STEP_MORE && r.continued);
    CHECK(r.phase == SY_RESP_ROWS);
    CHECK(!sy_mysql_resp_wants_whole(&r, 0xFE, 7));
    CHECK(sy_mysql_resp_feed(&r, NULL, 0, 0, &pkt) == SY_STEP_MORE && !r.continued);
    CHECK(sy_mysql_resp_feed(&r, stream + 4, 1, MAXP, &pkt) == SY_STEP_MORE && r.continued);
    CHECK(sy_mysql_resp_feed(&r, NULL, 0, 0, &pkt) == SY_STEP_MORE);
    const uint8_t ok7[] = { 0xFE, 0, 0, 2, 0, 0, 0 };
    CHECK(sy_mysql_resp_feed(&r, ok7, 7, 7, &pkt) == SY_STEP_DONE);
}

/* ---- requests --------------------------------------------------------------------------------- */

static void test_stmt_exec(void)
{
    uint8_t p[64];
    struct sy_mysql_stmt_exec e;
    size_t n = unhex(execute_req_hex, p, sizeof p);
    CHECK(sy_mysql_stmt_exec_parse(p, n, 1, &e) == SY_PARSE_OK && e.stmt_id == 5 && e.flags == 1);
    CHECK(e.new_params_bound && e.types_p == p + 12 && e.types_p[0] == 3 && e.types_p[1] == 0);
    n = unhex(execute_req2_hex, p, sizeof p);
    CHECK(sy_mysql_stmt_exec_parse(p, n, 1, &e) == SY_PARSE_OK && !e.new_params_bound && e.types_p == NULL);
    CHECK(sy_mysql_stmt_exec_parse(p, 10, 0, &e) == SY_PARSE_OK && e.flags == 0);
    CHECK(sy_mysql_stmt_exec_parse(p, 9, 0, &e) == SY_PARSE_BAD);
    CHECK(sy_mysql_stmt_exec_parse(p, 11, 9, &e) == SY_PARSE_BAD);       /* bitmap needs 2 bytes */
    CHECK(sy_mysql_stmt_exec_parse(p, n, 0xFFFF, &e) == SY_PARSE_BAD);  /* huge param count */
    n = unhex(execute_req_hex, p, sizeof p);
    CHECK(sy_mysql_stmt_exec_parse(p, 13, 1, &e) == SY_PARSE_BAD && e.types_p == NULL);
    p[0] = SY_COM_STMT_FETCH;
    CHECK(sy_mysql_stmt_exec_parse(p, n, 1, &e) == SY_PARSE_BAD);
}

static void test_kill(void)
{
    static const struct {
        const char *sql;
        bool ok, query_only;
        uint64_t id;
        size_t id_off, id_len;
    } cases[] = {
        { "KILL 5", true, false, 5, 5, 1 },
        { "kill query 12", true, true, 12, 11, 2 },
        { "KILL CONNECTION 7", true, false, 7, 16, 1 },
        { "KILL HARD QUERY 3", true, true, 3, 16, 1 },
        { "KILL SOFT 4", true, false, 4, 10, 1 },
        { "  \tKiLl\n  Soft  Connection   0042  ; \n", true, false, 42, 29, 4 },
        { "KILL 5;", true, false, 5, 5, 1 },
        { "KILL 18446744073709551615", true, false, UINT64_MAX, 5, 20 },
        { "KILL 18446744073709551616", false, false, 0, 0, 0 },
        { "KILL USER app", false, false, 0, 0, 0 },
        { "KILL QUERY ID 5", false, false, 0, 0, 0 },
        { "KILL 5 6", false, false, 0, 0, 0 },
        { "KILL 5;;", false, false, 0, 0, 0 },
        { "KILL 5; SELECT 1", false, false, 0, 0, 0 },
        { "KILL5", false, false, 0, 0, 0 },
        { "KILL QUERY5", false, false, 0, 0, 0 },
        { "KILL", false, false, 0, 0, 0 },
        { "KILL ", false, false, 0, 0, 0 },
        { "KILL -5", false, false, 0, 0, 0 },
        { "KILL 0x10", false, false, 0, 0, 0 },
        { "KILL CONNECTION QUERY 4", false, false, 0, 0, 0 },
        { "KILL HARD SOFT 4", false, false, 0, 0, 0 },
        { "/* c */ KILL 5", false, false, 0, 0, 0 },
        { "SELECT 'KILL 5'", false, false, 0, 0, 0 },
        { "", false, false, 0, 0, 0 },
    };
    for (size_t i = 0; i < N(cases); i++) {
        struct sy_mysql_kill k;
        bool ok = sy_mysql_kill_parse((const uint8_t *)cases[i].sql, strlen(cases[i].sql), &k);
        CHECK(ok == cases[i].ok);
        if (ok && cases[i].ok) {
            CHECK(k.query_only == cases[i].query_only && k.id == cases[i].id);
            CHECK(k.id_off == cases[i].id_off && k.id_len == cases[i].id_len);
        }
    }
    struct sy_mysql_kill k;
    CHECK(!sy_mysql_kill_parse(NULL, 0, &k));
    CHECK(!sy_mysql_kill_parse((const uint8_t *)"KILL 5", 5, &k));   /* length honoured: "KILL " */
}

static void test_compressed_frames(void)
{
    struct sy_mysql_zhdr h = { .comp_len = 0x123456, .seq = 7, .raw_len = 0xABCDEF }, back;
    uint8_t hb[SY_MYSQL_ZHDR_LEN];
    sy_mysql_zhdr_encode(hb, &h);
    CHECK(sy_mysql_zhdr_parse(hb, sizeof hb, &back) == SY_PARSE_OK);
    CHECK(back.comp_len == h.comp_len && back.seq == 7 && back.raw_len == h.raw_len);
    CHECK(sy_mysql_zhdr_parse(hb, 6, &back) == SY_PARSE_AGAIN);
    struct libdeflate_compressor *c = libdeflate_alloc_compressor(1);
    struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
    uint8_t raw[300], frame[400], out[400];
    memset(raw, 'q', sizeof raw);
    size_t zn = libdeflate_zlib_compress(c, raw, sizeof raw, frame + SY_MYSQL_ZHDR_LEN, sizeof frame - 7);
    CHECK(zn > 0 && zn < sizeof raw);
    h = (struct sy_mysql_zhdr){ .comp_len = (uint32_t)zn, .seq = 3, .raw_len = sizeof raw };
    sy_mysql_zhdr_encode(frame, &h);
    size_t used, len;
    uint8_t seq;
    CHECK(sy_mysql_zframe_decode(d, frame, 7 + zn, out, sizeof out, &used, &len, &seq) == SY_PARSE_OK);
    CHECK(used == 7 + zn && len == sizeof raw && seq == 3 && memcmp(out, raw, len) == 0);
    CHECK(sy_mysql_zframe_decode(d, frame, 6 + zn, out, sizeof out, &used, &len, &seq) == SY_PARSE_AGAIN);
    CHECK(sy_mysql_zframe_decode(d, frame, 7 + zn, out, 100, &used, &len, &seq) == SY_PARSE_BAD); /* no room */
    h.raw_len = sizeof raw + 1; /* a lie about the length */
    sy_mysql_zhdr_encode(frame, &h);
    CHECK(sy_mysql_zframe_decode(d, frame, 7 + zn, out, sizeof out, &used, &len, &seq) == SY_PARSE_BAD);
    h = (struct sy_mysql_zhdr){ .comp_len = 5, .seq = 0, .raw_len = 0 }; /* stored */
    sy_mysql_zhdr_encode(frame, &h);
    memcpy(frame + 7, "hello", 5);
    CHECK(sy_mysql_zframe_decode(d, frame, 12, out, sizeof out, &used, &len, &seq) == SY_PARSE_OK);
    CHECK(used == 12 && len == 5 && memcmp(out, "hello", 5) == 0);
    libdeflate_free_compressor(c);
    libdeflate_free_decompressor(d);
}

int main(void)
{
    test_compressed_frames();
    test_hdr();
    test_lenenc();
    test_greeting_real();
    test_greeting_edges();
    test_hsresp_real();
    test_hsresp_edges();
    test_auth_switch();
    test_change_user();
    test_ok_session_state();
    test_err();
    test_eof();
    test_resp_resultsets();
    test_resp_prepare_execute();
    test_resp_other_commands();
    test_resp_infile();
    test_resp_terminator_rules();
    test_resp_column_counts();
    test_resp_continuation();
    test_stmt_exec();
    test_kill();
    return CHECK_DONE();
}
