/* Unit tests for replay/mariadb_fence.c: the owner token's SQL (a locking read, shared or exclusive; the
 * claim that never lowers the token) and the verdict. What the server does with them (row locks that make
 * a takeover and an old writer's commit serialize) is tested in tests/integration/test_cluster.py. */
#include <string.h>

#include "replay/mariadb_fence.h"
#include "tests/unit/check.h"

static void test_read_sql(void)
{
    char sql[256];
    CHECK(sy_mariadb_fence_read_sql(sql, sizeof sql, "p/forward", false) > 0);
    CHECK(strcmp(sql, "SELECT owner_token FROM switchyard.checkpoint WHERE instance='p/forward' LOCK IN SHARE MODE")
          == 0);
    CHECK(sy_mariadb_fence_read_sql(sql, sizeof sql, "p/reverse", true) > 0);
    CHECK(strcmp(sql, "SELECT owner_token FROM switchyard.checkpoint WHERE instance='p/reverse' FOR UPDATE") == 0);
    CHECK(sy_mariadb_fence_read_sql(sql, 20, "p/forward", true) == -1);     /* too small: refused, not cut */
}

static void test_claim_sql(void)
{
    char sql[256];
    CHECK(sy_mariadb_fence_claim_sql(sql, sizeof sql, "p/forward", 18446744073709551615ull) > 0);
    CHECK(strcmp(sql, "UPDATE switchyard.checkpoint SET owner_token=18446744073709551615 WHERE "
                      "instance='p/forward' AND owner_token<=18446744073709551615") == 0);
    CHECK(sy_mariadb_fence_claim_sql(sql, 30, "p/forward", 7) == -1);
}

static void test_verdict(void)
{
    CHECK(!sy_mariadb_fence_is_fenced(0, false, 0));     /* no cluster: never fenced, whatever the row says */
    CHECK(!sy_mariadb_fence_is_fenced(0, true, 99));
    CHECK(!sy_mariadb_fence_is_fenced(42, true, 42));    /* its own token */
    CHECK(!sy_mariadb_fence_is_fenced(42, true, 7));     /* an older one (never lowered by a claim) */
    CHECK(sy_mariadb_fence_is_fenced(42, true, 43));     /* a newer owner took over */
    CHECK(sy_mariadb_fence_is_fenced(42, false, 0));     /* the row is gone: a new history elsewhere */
}

int main(void)
{
    test_read_sql();
    test_claim_sql();
    test_verdict();
    return CHECK_DONE();
}
