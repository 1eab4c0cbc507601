/* Fencing a MariaDB writer by its cluster owner token (replay/mariadb_fence.h): the SQL, the verdict, and
 * the check a writer runs just before each COMMIT. The token itself comes from the election
 * (core/election.c: the owner key's create_revision); the takeover writes it (replay/mariadb_takeover.c). */
#include "replay/mariadb_fence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/mariadb_client.h"

static int fit(int n, size_t outlen)
{
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

int sy_mariadb_fence_read_sql(char *out, size_t outlen, const char *eid, bool exclusive)
{
    return fit(snprintf(out, outlen, "SELECT owner_token FROM " SY_SCHEMA ".checkpoint WHERE "
                        "instance='%s' %s", eid, exclusive ? "FOR UPDATE" : "LOCK IN SHARE MODE"), outlen);
}

int sy_mariadb_fence_claim_sql(char *out, size_t outlen, const char *eid, uint64_t token)
{
    return fit(snprintf(out, outlen, "UPDATE " SY_SCHEMA ".checkpoint SET owner_token=%llu WHERE "
                        "instance='%s' AND owner_token<=%llu", (unsigned long long)token, eid,
                        (unsigned long long)token), outlen);
}

bool sy_mariadb_fence_is_fenced(uint64_t token, bool row_found, uint64_t row_token)
{
    if (token == 0)
        return false;
    return !row_found || row_token > token;
}

int sy_mariadb_fence_check(MYSQL *m, const char *instance_id, uint64_t token, bool exclusive, uint64_t *newer,
                           char *err, size_t errlen)
{
    *newer = 0;
    if (token == 0)
        return 0;
    char *eid = sy_mariadb_escape(m, instance_id);
    char sql[512];
    if (eid == NULL || sy_mariadb_fence_read_sql(sql, sizeof sql, eid, exclusive) < 0) {
        free(eid);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    free(eid);
    MYSQL_RES *res = NULL;
    if (mysql_real_query(m, sql, (unsigned long)strlen(sql)) != 0 || (res = mysql_store_result(m)) == NULL) {
        snprintf(err, errlen, "reading the owner token: %u %s", mysql_errno(m), mysql_error(m));
        return -1;
    }
    MYSQL_ROW row = mysql_fetch_row(res);
    bool found = row != NULL && row[0] != NULL;
    uint64_t row_token = found ? strtoull(row[0], NULL, 10) : 0;
    mysql_free_result(res);
    if (!sy_mariadb_fence_is_fenced(token, found, row_token))
        return 0;
    *newer = row_token;
    if (found)
        snprintf(err, errlen, "the destination's checkpoint names owner token %llu, above this writer's "
                 "%llu: another node took the pair over", (unsigned long long)row_token,
                 (unsigned long long)token);
    else
        snprintf(err, errlen, "the destination's checkpoint row is gone (this writer's owner token %llu): "
                 "another node started the instance again", (unsigned long long)token);
    return 1;
}
