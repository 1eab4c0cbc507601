/* libFuzzer target: frames of the MySQL compressed protocol (sy_mysql_zframe_decode). Input = a stream of
 * frames; each decoded frame must stay inside the input and its output inside the buffer; a stored frame
 * decodes to its own payload. Traps on broken invariants. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>

#include "proxy/mysql_codec.h"
#include "fuzz/fuzz_require.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct libdeflate_decompressor *d;
    static uint8_t out[1 << 16];
    if (d == NULL)
        d = libdeflate_alloc_decompressor();
    size_t off = 0;
    while (off < size) {
        size_t used = 0, len = 0;
        uint8_t seq = 0;
        enum sy_parse rc = sy_mysql_zframe_decode(d, data + off, size - off, out, sizeof out, &used, &len, &seq);
        if (rc != SY_PARSE_OK)
            break;
        REQUIRE(used >= SY_MYSQL_ZHDR_LEN && used <= size - off && len <= sizeof out);
        struct sy_mysql_zhdr h;
        REQUIRE(sy_mysql_zhdr_parse(data + off, size - off, &h) == SY_PARSE_OK && h.seq == seq);
        if (h.raw_len == 0)
            REQUIRE(len == h.comp_len && memcmp(out, data + off + SY_MYSQL_ZHDR_LEN, len) == 0);
        else
            REQUIRE(len == h.raw_len);
        off += used;
    }
    return 0;
}
