/* libFuzzer target: LOGIN7. Input = one LOGIN7 payload; every parsed span must lie inside it; a parsed
 * LOGIN7 is rebuilt with its de-obfuscated password (as the proxy does for the backend) and must parse back
 * to the same strings and password. Traps on broken invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_require.h"
#include "proxy/tds_wire.h"

static void inside(const struct sy_tds_span *s, const uint8_t *p, size_t n)
{
    REQUIRE(s->len == 0 || (s->p >= p && s->len <= n && s->p + s->len <= p + n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct sy_tds_login7 l, back;
    if (sy_tds_login7_parse(data, size, &l, err, sizeof err) != SY_PARSE_OK) {
        REQUIRE(err[0] != '\0');
        return 0;
    }
    for (int i = 0; i < SY_L7__COUNT; i++) {
        inside(&l.str[i], data, size);
        REQUIRE(l.str[i].len % 2 == 0 && l.str[i].len <= 2 * SY_TDS_LOGIN7_MAX_CHARS);
    }
    inside(&l.sspi, data, size);
    inside(&l.feature_ext, data, size);
    uint8_t pw[2 * SY_TDS_LOGIN7_MAX_CHARS];
    sy_tds_password_decode(l.str[SY_L7_PASSWORD].p, l.str[SY_L7_PASSWORD].len, pw);
    char utf8[4 * SY_TDS_LOGIN7_MAX_CHARS + 1];
    sy_tds_utf16_to_utf8(l.str[SY_L7_USERNAME].p, l.str[SY_L7_USERNAME].len, utf8, sizeof utf8);
    static uint8_t out[1 << 17];
    size_t n = sy_tds_login7_build(out, sizeof out, &l, pw, l.str[SY_L7_PASSWORD].len);
    if (n == 0)
        return 0; /* over 64 KiB: not buildable */
    REQUIRE(sy_tds_login7_parse(out, n, &back, err, sizeof err) == SY_PARSE_OK);
    for (int i = 0; i < SY_L7__COUNT; i++) {
        if (i == SY_L7_CHANGEPASSWORD)
            continue; /* never carried */
        REQUIRE(back.str[i].len == l.str[i].len);
        REQUIRE(l.str[i].len == 0 || memcmp(back.str[i].p, l.str[i].p, l.str[i].len) == 0);
    }
    REQUIRE(back.tds_version == l.tds_version && back.packet_size == l.packet_size && back.sspi.len == l.sspi.len);
    REQUIRE(back.feature_ext.len == l.feature_ext.len);
    return 0;
}
