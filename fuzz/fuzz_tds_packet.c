/* libFuzzer target: TDS packet headers and message reassembly. Input = a byte stream of packets, framed
 * message by message as the proxy would (packets up to 4096, messages up to 64 KiB); each framed message's
 * payload is copied out, packed again and must frame back to the same payload. Traps on broken invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_require.h"
#include "proxy/tds_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t payload[64 << 10], wire[(64 << 10) + 4096], back[64 << 10];
    char err[256];
    size_t off = 0;
    while (off < size) {
        struct sy_tds_hdr h;
        if (sy_tds_hdr_parse(data + off, size - off, 4096, &h, err, sizeof err) == SY_PARSE_OK)
            REQUIRE(h.length >= SY_TDS_HDR_LEN && h.length <= 4096);
        struct sy_tds_msg m;
        enum sy_parse r = sy_tds_msg_frame(data + off, size - off, 4096, sizeof payload, &m, err, sizeof err);
        if (r == SY_PARSE_BAD)
            REQUIRE(err[0] != '\0');
        if (r != SY_PARSE_OK)
            break;
        REQUIRE(m.wire_len <= size - off && m.payload_len <= sizeof payload && m.packets >= 1);
        REQUIRE(m.wire_len == m.payload_len + (size_t)m.packets * SY_TDS_HDR_LEN);
        sy_tds_msg_payload(data + off, &m, payload);
        off += m.wire_len;
        if (m.type == SY_TDS_ATTENTION)
            continue; /* one packet whatever its status: packing its payload again would split it */
        size_t w = sy_tds_msg_build(wire, sizeof wire, m.type, 0, 512, payload, m.payload_len);
        REQUIRE(w > 0);
        struct sy_tds_msg m2;
        REQUIRE(sy_tds_msg_frame(wire, w, 512, sizeof payload, &m2, err, sizeof err) == SY_PARSE_OK);
        REQUIRE(m2.payload_len == m.payload_len && m2.wire_len == w);
        sy_tds_msg_payload(wire, &m2, back);
        REQUIRE(memcmp(back, payload, m.payload_len) == 0);
    }
    return 0;
}
