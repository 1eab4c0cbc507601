/* The one CDC row order (engine/sqlserver_cdc.h, sy_tds_cdc_order_cmp) that the collector and the
 * unreplicated tail both sort merged change rows by: commit LSN, __$seqval, __$operation, then the
 * capture instance read. */
#include <stdlib.h>
#include <string.h>

#include "engine/sqlserver_cdc.h"
#include "tests/unit/check.h"

static struct sy_tds_cdc_key key(const char *lsn, unsigned seq, int op, uint32_t table)
{
    struct sy_tds_cdc_key k;
    memset(&k, 0, sizeof k);
    CHECK(sy_lsn_parse(lsn, &k.lsn));
    k.seq[8] = (uint8_t)(seq >> 8);
    k.seq[9] = (uint8_t)seq;
    k.op = op;
    k.table = table;
    return k;
}

static int sign(int d)
{
    return (d > 0) - (d < 0);
}

static void test_keys_in_priority_order(void)
{
    struct sy_tds_cdc_key a = key("00000027000000100001", 9, 4, 7), b = key("00000027000000100002", 1, 1, 0);
    CHECK(sy_tds_cdc_order_cmp(&a, &b) < 0 && sy_tds_cdc_order_cmp(&b, &a) > 0); /* commit LSN first */
    a = key("00000027000000100002", 1, 4, 7);
    b = key("00000027000000100002", 2, 1, 0);
    CHECK(sy_tds_cdc_order_cmp(&a, &b) < 0 && sy_tds_cdc_order_cmp(&b, &a) > 0); /* then __$seqval */
    a = key("00000027000000100002", 2, 3, 7);
    b = key("00000027000000100002", 2, 4, 0);
    CHECK(sy_tds_cdc_order_cmp(&a, &b) < 0 && sy_tds_cdc_order_cmp(&b, &a) > 0); /* an update's before image first */
    a = key("00000027000000100002", 2, 2, 1);
    b = key("00000027000000100002", 2, 2, 3);
    CHECK(sy_tds_cdc_order_cmp(&a, &b) < 0 && sy_tds_cdc_order_cmp(&b, &a) > 0); /* then the capture instance */
    CHECK(sy_tds_cdc_order_cmp(&a, &a) == 0);
}

static void test_seqval_compares_as_bytes(void)
{
    struct sy_tds_cdc_key a = key("00000027000000100002", 0x00ff, 2, 0), b = key("00000027000000100002", 0x0100, 2, 0);
    CHECK(sy_tds_cdc_order_cmp(&a, &b) < 0);    /* big-endian binary(10), as SQL Server orders it */
    a.seq[0] = 0x80;                           /* the high bit is no sign */
    CHECK(sy_tds_cdc_order_cmp(&a, &b) > 0);
}

static void test_extreme_ops_and_tables_do_not_overflow(void)
{
    struct sy_tds_cdc_key a = key("00000027000000100002", 1, -2147483647 - 1, 0), b = key("00000027000000100002", 1, 2147483647, 0);
    CHECK(sy_tds_cdc_order_cmp(&a, &b) < 0 && sy_tds_cdc_order_cmp(&b, &a) > 0);
    a = key("00000027000000100002", 1, 2, 0);
    b = key("00000027000000100002", 1, 2, 0xffffffffu);
    CHECK(sy_tds_cdc_order_cmp(&a, &b) < 0 && sy_tds_cdc_order_cmp(&b, &a) > 0);
}

struct row { /* a reader's row, the key first as in the collector's and the tail's */
    struct sy_tds_cdc_key k;
    int id;
};

static int row_cmp(const void *a, const void *b)
{
    return sy_tds_cdc_order_cmp(&((const struct row *)a)->k, &((const struct row *)b)->k);
}

/* Rows of two capture instances read one after the other sort into one source order: transactions by
 * commit LSN, inside each the change order, an update's 3 right before its 4. */
static void test_merge_of_two_instances(void)
{
    struct row v[] = {
        { key("00000027000000200001", 2, 4, 0), 4 }, { key("00000027000000100001", 1, 2, 0), 1 },
        { key("00000027000000200001", 2, 3, 0), 3 }, { key("00000027000000200001", 1, 1, 1), 2 },
        { key("00000027000000300001", 1, 2, 1), 6 }, { key("00000027000000200001", 3, 2, 1), 5 },
    };
    size_t n = sizeof v / sizeof v[0];
    qsort(v, n, sizeof v[0], row_cmp);
    for (size_t i = 0; i < n; i++)
        CHECK(v[i].id == (int)i + 1);
    for (size_t i = 0; i < n; i++) /* a total order: antisymmetric, consistent with itself */
        for (size_t j = 0; j < n; j++)
            CHECK(sign(sy_tds_cdc_order_cmp(&v[i].k, &v[j].k)) == -sign(sy_tds_cdc_order_cmp(&v[j].k, &v[i].k)) &&
                  (sy_tds_cdc_order_cmp(&v[i].k, &v[j].k) == 0) == (i == j));
}

/* A capture instance's CDC function and its name as a literal, for any name (tests/integration
 * test_capture_instance_name_with_space_quote_and_bracket runs them against the double). */
static void test_capture_instance_quoting(void)
{
    struct sy_buf b;
    sy_buf_init(&b);
    sy_tds_cdc_fn(&b, "fn_cdc_get_all_changes_", "dbo_orders o'k]");
    CHECK(strcmp(sy_tds_sql(&b), "cdc.[fn_cdc_get_all_changes_dbo_orders o'k]]]") == 0);
    sy_buf_fini(&b);
    sy_buf_init(&b);
    sy_tds_cdc_fn(&b, "fn_cdc_get_all_changes_", "dbo_orders");
    CHECK(strcmp(sy_tds_sql(&b), "cdc.[fn_cdc_get_all_changes_dbo_orders]") == 0);
    sy_buf_fini(&b);
    sy_buf_init(&b);
    sy_tds_cdc_ci_literal(&b, "dbo_orders o'k]");
    CHECK(strcmp(sy_tds_sql(&b), "N'dbo_orders o''k]'") == 0);
    sy_buf_fini(&b);
}

int main(void)
{
    test_capture_instance_quoting();
    test_keys_in_priority_order();
    test_seqval_compares_as_bytes();
    test_extreme_ops_and_tables_do_not_overflow();
    test_merge_of_two_instances();
    return CHECK_DONE();
}
