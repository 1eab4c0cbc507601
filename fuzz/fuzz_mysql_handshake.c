/* libFuzzer target: connection-phase packets. Input = [selector][8 bytes of caps][payload]: the
 * greeting, handshake response (and SSLRequest), auth switch and COM_CHANGE_USER parsers; whatever
 * parses is re-encoded and re-parsed, and must come back field for field. Traps on a mismatch. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/mysql_codec.h"
#include "fuzz/fuzz_require.h"

static uint8_t enc[1 << 17];   /* larger than any input libFuzzer sends here (-max_len) plus slack */

static bool same_span(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void greeting(const uint8_t *p, size_t n)
{
    struct sy_mysql_greeting g, back;
    if (sy_mysql_greeting_parse(p, n, &g) != SY_PARSE_OK)
        return;
    REQUIRE(g.salt_len >= 8 && g.salt_len <= SY_MYSQL_SALT_LEN);
    REQUIRE(memchr(g.server_version, 0, sizeof g.server_version) != NULL);
    REQUIRE(memchr(g.auth_plugin, 0, sizeof g.auth_plugin) != NULL);
    size_t m = sy_mysql_greeting_encode(&g, enc, sizeof enc);
    REQUIRE(m > 0);
    REQUIRE(sy_mysql_greeting_parse(enc, m, &back) == SY_PARSE_OK);
    REQUIRE(strcmp(g.server_version, back.server_version) == 0 && g.thread_id == back.thread_id);
    REQUIRE(same_span(g.salt, g.salt_len, back.salt, back.salt_len));
    REQUIRE(g.caps == back.caps && g.collation == back.collation && g.status == back.status);
    REQUIRE(strcmp(g.auth_plugin, back.auth_plugin) == 0);
    REQUIRE(sy_mysql_greeting_encode(&back, enc + m, sizeof enc - m) == m && memcmp(enc, enc + m, m) == 0);
}

static void hsresp(const uint8_t *p, size_t n)
{
    struct sy_mysql_hsresp h, back;
    if (sy_mysql_hsresp_parse(p, n, &h) != SY_PARSE_OK)
        return;
    REQUIRE(h.caps & SY_CAP_PROTOCOL_41);
    if (h.ssl_request) {
        REQUIRE(n == 32 && (h.caps & SY_CAP_SSL));
        return;
    }
    REQUIRE(h.auth_len <= SY_MYSQL_AUTH_MAX);
    REQUIRE(h.attrs_p == NULL ||
            (h.attrs_p >= p && h.attrs_len <= n && h.attrs_p - p <= (ptrdiff_t)(n - h.attrs_len)));
    size_t m = sy_mysql_hsresp_encode(&h, enc, sizeof enc);
    REQUIRE(m > 32);
    REQUIRE(sy_mysql_hsresp_parse(enc, m, &back) == SY_PARSE_OK && !back.ssl_request);
    REQUIRE(h.caps == back.caps && h.max_packet == back.max_packet && h.collation == back.collation);
    REQUIRE(strcmp(h.user, back.user) == 0 && same_span(h.auth, h.auth_len, back.auth, back.auth_len));
    REQUIRE(h.has_db == back.has_db && strcmp(h.db, back.db) == 0 && strcmp(h.plugin, back.plugin) == 0);
    REQUIRE(same_span(h.attrs_p, h.attrs_len, back.attrs_p, back.attrs_len));
}

static void auth_switch(const uint8_t *p, size_t n)
{
    struct sy_mysql_auth_switch s;
    if (sy_mysql_auth_switch_parse(p, n, &s) != SY_PARSE_OK)
        return;
    REQUIRE(s.data_len <= sizeof s.data && memchr(s.plugin, 0, sizeof s.plugin));
}

static void change_user(const uint8_t *p, size_t n, uint64_t caps)
{
    struct sy_mysql_change_user c, back;
    if (sy_mysql_change_user_parse(p, n, caps, &c) != SY_PARSE_OK)
        return;
    size_t m = sy_mysql_change_user_encode(&c, caps, enc, sizeof enc);
    REQUIRE(m > 0);
    REQUIRE(sy_mysql_change_user_parse(enc, m, caps, &back) == SY_PARSE_OK);
    REQUIRE(strcmp(c.user, back.user) == 0 && same_span(c.auth, c.auth_len, back.auth, back.auth_len));
    REQUIRE(strcmp(c.db, back.db) == 0);
    REQUIRE(c.has_collation == back.has_collation && c.collation == back.collation);
    REQUIRE(strcmp(c.plugin, back.plugin) == 0);
    REQUIRE(same_span(c.attrs_p, c.attrs_len, back.attrs_p, back.attrs_len));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9)
        return 0;
    uint64_t caps = 0;
    for (int i = 0; i < 8; i++)
        caps |= (uint64_t)data[1 + i] << (8 * i);
    const uint8_t *p = data + 9;
    size_t n = size - 9;
    switch (data[0] & 3) {
    case 0:
        greeting(p, n);
        break;
    case 1:
        hsresp(p, n);
        break;
    case 2:
        auth_switch(p, n);
        break;
    default:
        change_user(p, n, caps);
        break;
    }
    return 0;
}
