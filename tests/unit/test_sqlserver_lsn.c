/* SQL Server LSN positions (engine/sqlserver_lsn.h): parsing, formatting, ordering, covers. */
#include <string.h>

#include "engine/sqlserver_lsn.h"
#include "tests/unit/check.h"

static void test_parse_and_format_round_trip(void)
{
    struct sy_lsn l;
    char out[SY_LSN_TEXT];
    CHECK(sy_lsn_parse("0000002700000010000a", &l));
    CHECK(l.b[3] == 0x27 && l.b[7] == 0x10 && l.b[9] == 0x0a);
    sy_lsn_format(&l, out);
    CHECK(strcmp(out, "0000002700000010000a") == 0);
    CHECK(sy_lsn_parse("0x0000002700000010000A", &l)); /* 0x prefix and upper case, as T-SQL writes it */
    sy_lsn_format(&l, out);
    CHECK(strcmp(out, "0000002700000010000a") == 0);
}

static void test_parse_rejects_anything_else(void)
{
    struct sy_lsn l;
    CHECK(!sy_lsn_parse("", &l));
    CHECK(!sy_lsn_parse(NULL, &l));
    CHECK(!sy_lsn_parse("0x", &l));
    CHECK(!sy_lsn_parse("0000002700000010000", &l));   /* 19 digits */
    CHECK(!sy_lsn_parse("0000002700000010000a0", &l)); /* 21 */
    CHECK(!sy_lsn_parse("000000270000001000g0", &l));  /* not hex */
    CHECK(!sy_lsn_parse("1733241600:5", &l));          /* another engine's position */
    CHECK(!sy_lsn_parse(" 0000002700000010000a", &l));
}

static void test_order_is_byte_order(void)
{
    struct sy_lsn a, b, z;
    CHECK(sy_lsn_parse("00000027000000100001", &a));
    CHECK(sy_lsn_parse("00000028000000000000", &b)); /* a later VLF wins over a larger block number */
    CHECK(sy_lsn_cmp(&a, &b) < 0 && sy_lsn_cmp(&b, &a) > 0 && sy_lsn_cmp(&a, &a) == 0);
    CHECK(sy_lsn_parse("00000000000000000000", &z) && sy_lsn_is_zero(&z) && !sy_lsn_is_zero(&a));
    CHECK(sy_lsn_text_covers("00000028000000000000", "00000027000000100001"));
    CHECK(sy_lsn_text_covers("00000027000000100001", "00000027000000100001"));
    CHECK(!sy_lsn_text_covers("00000027000000100001", "00000028000000000000"));
    CHECK(!sy_lsn_text_covers("", "00000027000000100001"));
    CHECK(!sy_lsn_text_covers("00000027000000100001", "garbage"));
}

static void test_from_bytes_needs_ten(void)
{
    static const uint8_t ten[10] = { 0, 0, 0, 0x27, 0, 0, 0, 0x10, 0, 1 };
    struct sy_lsn l;
    CHECK(sy_lsn_from_bytes(ten, 10, &l) && l.b[9] == 1);
    CHECK(!sy_lsn_from_bytes(ten, 9, &l));
    CHECK(!sy_lsn_from_bytes(NULL, 10, &l));
}

int main(void)
{
    test_parse_and_format_round_trip();
    test_parse_rejects_anything_else();
    test_order_is_byte_order();
    test_from_bytes_needs_ten();
    return CHECK_DONE();
}
