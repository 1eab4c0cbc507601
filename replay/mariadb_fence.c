/* Fencing a MariaDB writer by its cluster owner token (replay/mariadb_fence.h): the SQL, the verdict, and
 * the check a writer runs just before each COMMIT. The token itself comes from the election
 * (core/election.c: the owner key's create_revision); the takeover writes it (replay/mariadb_takeover.c). */
#include "replay/mariadb_fence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

void sy_mariadb_writer_lock_name(char *out, size_t outlen, const char *instance_id, uint64_t token)
{
    uint64_t h = 1469598103934665603ull;                  /* FNV-1a: the id may be longer than a lock name */
    for (const unsigned char *c = (const unsigned char *)instance_id; *c; c++)
        h = (h ^ *c) * 1099511628211ull;
    snprintf(out, outlen, "switchyard_writer_%016llx_%llu", (unsigned long long)h, (unsigned long long)token);
}

/* The lock's holder: 0 none (or -1 with err). */
static int lock_holder(MYSQL *m, const char *name, unsigned long long *id, char *err, size_t errlen)
{
    char sql[160];
    MYSQL_RES *res = NULL;
    snprintf(sql, sizeof sql, "SELECT IS_USED_LOCK('%s')", name);
    if (mysql_real_query(m, sql, (unsigned long)strlen(sql)) != 0 || (res = mysql_store_result(m)) == NULL) {
        snprintf(err, errlen, "%u %s", mysql_errno(m), mysql_error(m));
        return -1;
    }
    MYSQL_ROW row = mysql_fetch_row(res);
    *id = row && row[0] ? strtoull(row[0], NULL, 10) : 0;
    mysql_free_result(res);
    return 0;
}

int sy_mariadb_writer_lock_take(MYSQL *m, const char *instance_id, uint64_t token, int wait_s, char *err,
                                size_t errlen)
{
    char name[80], sql[200];
    sy_mariadb_writer_lock_name(name, sizeof name, instance_id, token);
    snprintf(sql, sizeof sql, "SELECT GET_LOCK('%s', %d)", name, wait_s);
    MYSQL_RES *res = NULL;
    if (mysql_real_query(m, sql, (unsigned long)strlen(sql)) != 0 || (res = mysql_store_result(m)) == NULL) {
        snprintf(err, errlen, "taking the writer lock: %u %s", mysql_errno(m), mysql_error(m));
        return -1;
    }
    MYSQL_ROW row = mysql_fetch_row(res);
    bool got = row && row[0] && strcmp(row[0], "1") == 0;
    mysql_free_result(res);
    if (!got)
        snprintf(err, errlen, "the writer lock %s is still held by another connection after %d s (a session of "
                 "this writer still ending)", name, wait_s);
    return got ? 0 : -1;
}

int sy_mariadb_writer_lock_end(MYSQL *m, const char *instance_id, uint64_t token, int wait_ms,
                               unsigned long long *killed, char *err, size_t errlen)
{
    char name[80], e[400];
    unsigned long long id = 0, now = 0;
    *killed = 0;
    sy_mariadb_writer_lock_name(name, sizeof name, instance_id, token);
    if (lock_holder(m, name, &id, e, sizeof e) != 0) {
        snprintf(err, errlen, "looking for the old owner's writer: %s", e);
        return -1;
    }
    if (id == 0)
        return 0;
    char sql[80];
    snprintf(sql, sizeof sql, "KILL CONNECTION %llu", id);
    if (mysql_real_query(m, sql, (unsigned long)strlen(sql)) != 0 && mysql_errno(m) != 1094 /* gone already */) {
        snprintf(err, errlen, "ending the old owner's writer connection %llu (it may run a DDL): %u %s", id,
                 mysql_errno(m), mysql_error(m));
        return -1;
    }
    *killed = id;
    for (int waited = 0;; waited += 50) {
        if (lock_holder(m, name, &now, e, sizeof e) != 0) {
            snprintf(err, errlen, "waiting for the old owner's writer connection %llu to end: %s", id, e);
            return -1;
        }
        if (now != id)
            return 0;
        if (waited >= wait_ms)
            break;
        usleep(50 * 1000);
    }
    snprintf(err, errlen, "the old owner's writer connection %llu (it may run a DDL) has not ended %d ms after KILL",
             id, wait_ms);
    return -1;
}
