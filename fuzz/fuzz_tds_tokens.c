/* libFuzzer target: the server's token stream as the proxy reads it. Input = a TABULAR payload: scanned
 * token by token (every token inside the span, the scan always advancing), each token decoded by its type,
 * then the whole payload as a login response. Traps on broken invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_require.h"
#include "proxy/tds_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    size_t off = 0;
    while (off < size) {
        struct sy_tds_token t;
        size_t used = 0;
        if (sy_tds_token_next(data + off, size - off, &t, &used, err, sizeof err) != SY_PARSE_OK)
            break;
        REQUIRE(used >= 1 && used <= size - off && t.body >= data + off && t.body + t.len <= data + off + used);
        struct sy_tds_error e;
        struct sy_tds_loginack a;
        struct sy_tds_envchange ev;
        struct sy_tds_done d;
        if (sy_tds_error_parse(&t, &e) == SY_PARSE_OK)
            REQUIRE(strlen(e.message) < sizeof e.message);
        if (sy_tds_loginack_parse(&t, &a) == SY_PARSE_OK)
            REQUIRE(strlen(a.prog_name) < sizeof a.prog_name);
        if (sy_tds_envchange_parse(&t, &ev) == SY_PARSE_OK)
            REQUIRE(ev.new_value.len == 0 ||
                    (ev.new_value.p >= t.body && ev.new_value.p + ev.new_value.len <= t.body + t.len));
        (void)sy_tds_done_parse(&t, &d);
        off += used;
    }
    struct sy_tds_login_result r;
    if (sy_tds_login_result_scan(data, size, &r, err, sizeof err) == SY_PARSE_OK)
        REQUIRE(r.packet_size == 0 || (r.packet_size >= SY_TDS_MIN_PACKET && r.packet_size <= SY_TDS_MAX_PACKET));
    else
        REQUIRE(err[0] != '\0');
    if (size >= SY_TDS_DONE_LEN)
        (void)sy_tds_is_attention_ack(data + size - SY_TDS_DONE_LEN);
    return 0;
}
