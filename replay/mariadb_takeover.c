/* A new owner takes a MariaDB instance over (core/takeover.c): the destination's checkpoint row says where
 * to resume (the idempotent replay ends at the source's @@gtid_binlog_pos, read by the writer before its
 * first change: the takeover needs the destination only), and the destination forgets
 * the old owner's `applied` rows (their spool sequence numbers mean nothing in the new spool: the
 * transactions they name are collected again and replayed, conflicts overwritten) and its pending DDL
 * (above the checkpoint too: collected again and run in its IF [NOT] EXISTS form). In a cluster it first
 * writes the new owner's fencing token into the checkpoint row, under the row's lock: the old owner's
 * writer, if it still runs, commits nothing more into the destination (replay/mariadb_fence.h). */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "core/log.h"
#include "engine/mariadb_client.h"
#include "replay/mariadb_checkpoint.h"
#include "replay/mariadb_fence.h"
#include "replay/mariadb_modules.h"

#define TAKEOVER_TIMEOUT_S 5
#define TAKEOVER_KILL_WAIT_MS 10000   /* an old owner's writer connection ended (KILL) must be gone by then */
#define ROW_LOCK_PATIENCE_MS 1000     /* the checkpoint row's lock waited for this long: its holders are ended */
#define ROW_LOCK_GIVE_UP_MS 10000     /* ... and the takeover fails (retried) after this long */

/* Ends the connections whose transactions hold the lock `waiter` (a thread id) waits for: the checkpoint
 * row of an instance this node now owns, so they are an older owner's writers (a worker paused between its
 * fence read and its commit keeps the row's shared lock for as long as the server keeps its connection:
 * hours). Through `watch`, a second connection. */
static void end_row_lock_holders(MYSQL *watch, unsigned long waiter, const char *instance_id,
                                 const struct sy_endpoint *dest)
{
    char sql[512], e[256];
    snprintf(sql, sizeof sql, "SELECT DISTINCT b.trx_mysql_thread_id FROM information_schema.INNODB_LOCK_WAITS w "
             "JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id "
             "JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id "
             "WHERE r.trx_mysql_thread_id = %lu", waiter);
    MYSQL_RES *res = NULL;
    if (mysql_real_query(watch, sql, (unsigned long)strlen(sql)) != 0 || (res = mysql_store_result(watch)) == NULL) {
        sy_log_warn("%s: cannot see who holds the checkpoint row's lock on %s:%u: %u %s", instance_id, dest->host,
                    dest->port, mysql_errno(watch), mysql_error(watch));
        return;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        unsigned long long id = row[0] ? strtoull(row[0], NULL, 10) : 0;
        if (id == 0)
            continue;
        if (sy_mariadb_exec(watch, e, sizeof e, "KILL CONNECTION %llu", id) != 0)
            sy_log_warn("%s: connection %llu holds the checkpoint row's lock on %s:%u and cannot be ended: %s",
                        instance_id, id, dest->host, dest->port, e);
        else
            sy_log_warn("%s: connection %llu held the checkpoint row's lock on %s:%u (an older owner's writer, "
                        "paused mid-commit): ended, its transaction rolled back", instance_id, id, dest->host,
                        dest->port);
    }
    mysql_free_result(res);
}

/* The checkpoint row read FOR UPDATE (sql) even when an older owner's paused writer holds its lock: past
 * ROW_LOCK_PATIENCE_MS the holders are ended. The result, or NULL with err. */
static MYSQL_RES *lock_checkpoint_row(MYSQL *m, const struct sy_pair_cfg *cfg, const struct sy_endpoint *dest,
                                      const char *instance_id, const char *sql, char *err, size_t errlen)
{
    MYSQL *watch = NULL;
    MYSQL_RES *res = NULL;
    bool ready = false;
    if (mysql_send_query(m, sql, (unsigned long)strlen(sql)) != 0)
        goto fail;
    for (int waited = 0; !ready && waited < ROW_LOCK_GIVE_UP_MS; waited += 250) {
        struct pollfd pfd = { .fd = (int)mysql_get_socket(m), .events = POLLIN };
        ready = poll(&pfd, 1, 250) != 0; /* readable, or an error: the read says which */
        if (!ready && waited + 250 >= ROW_LOCK_PATIENCE_MS) {
            char e[256];
            if (watch == NULL && (watch = sy_mariadb_connect(dest, cfg, 0, TAKEOVER_TIMEOUT_S, NULL, e, sizeof e)) == NULL)
                sy_log_warn("%s: cannot open a second connection to %s:%u: %s", instance_id, dest->host, dest->port, e);
            if (watch != NULL)
                end_row_lock_holders(watch, mysql_thread_id(m), instance_id, dest);
        }
    }
    if (mysql_read_query_result(m) != 0 || (res = mysql_store_result(m)) == NULL)
        goto fail;
    if (watch)
        mysql_close(watch);
    return res;
fail:
    snprintf(err, errlen, "destination %s:%u: reading the checkpoint: %u %s", dest->host, dest->port, mysql_errno(m),
             mysql_error(m));
    if (watch)
        mysql_close(watch);
    return NULL;
}

int sy_mariadb_takeover(const struct sy_pair_cfg *cfg, const char *instance_id, const struct sy_endpoint *src,
                        const struct sy_endpoint *dest, struct sy_takeover_point *out, char *err, size_t errlen)
{
    int rc = -1;
    char e[512];
    MYSQL *m = sy_mariadb_connect(dest, cfg, 0, TAKEOVER_TIMEOUT_S, NULL, e, sizeof e);
    char *eid = m ? sy_mariadb_escape(m, instance_id) : NULL;
    MYSQL_RES *res = NULL;
    out->found = false;
    if (m == NULL) {
        snprintf(err, errlen, "destination %s:%u: %s", dest->host, dest->port, e);
        goto out;
    }
    if (eid == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    bool found = false;
    char schema[8];
    if (sy_mariadb_value(m, schema, sizeof schema, &found, e, sizeof e,
                         "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA='" SY_SCHEMA
                         "' AND TABLE_NAME='checkpoint'") != 0) {
        snprintf(err, errlen, "destination %s:%u: %s", dest->host, dest->port, e);
        goto out;
    }
    if (!found) {
        rc = 0;                       /* never written to: no checkpoint */
        goto out;
    }
    /* an install from before the fencing token: upgrade (the writer does the same) */
    char has[8];
    if (sy_mariadb_value(m, has, sizeof has, &found, e, sizeof e, SY_MARIADB_CHECKPOINT_HAS_TOKEN_SQL) != 0 ||
        (strcmp(has, "0") == 0 &&
         sy_mariadb_exec(m, e, sizeof e, SY_MARIADB_CHECKPOINT_ADD_TOKEN_SQL) != 0) ||
        sy_mariadb_exec(m, e, sizeof e, "START TRANSACTION") != 0) {
        snprintf(err, errlen, "destination %s:%u: %s", dest->host, dest->port, e);
        goto out;
    }
    /* the row stays locked until COMMIT: an older owner's writer commits nothing in between (it reads the
     * token with a locking read before each commit), and nothing after (it finds the new token) */
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT spool_seq, position, owner_token, pending_ddl_seq FROM " SY_SCHEMA
             ".checkpoint WHERE instance='%s' FOR UPDATE", eid);
    MYSQL_ROW row;
    if ((res = lock_checkpoint_row(m, cfg, dest, instance_id, sql, err, errlen)) == NULL)
        goto out;
    if ((row = mysql_fetch_row(res)) == NULL) {
        rc = 0;
        goto out;
    }
    out->spool_seq = row[0] ? strtoull(row[0], NULL, 10) : 0;
    snprintf(out->position, sizeof out->position, "%s", row[1] ? row[1] : "");
    uint64_t held = row[2] ? strtoull(row[2], NULL, 10) : 0;
    if (out->owner_token != 0 && held > out->owner_token) {
        snprintf(err, errlen, "destination %s:%u: its checkpoint names owner token %llu, above this node's "
                 "%llu: a newer owner took the pair over (or etcd was recreated from scratch, restarting its "
                 "revisions: then set " SY_SCHEMA ".checkpoint.owner_token to 0 once no old owner runs)",
                 dest->host, dest->port, (unsigned long long)held, (unsigned long long)out->owner_token);
        goto out;
    }
    /* A DDL commits by itself, so the fence cannot undo one: an old owner that marked a DDL pending may be
     * about to run it (paused between the mark and the DDL), and it would land after the new owner's
     * later DDL. Its control connection holds the writer lock of its token: ended here, and waited for,
     * before the pending mark is forgotten (a session it opens again claims the row: fenced). */
    uint64_t pending = row[3] ? strtoull(row[3], NULL, 10) : 0;
    if (out->owner_token != 0 && held != 0 && held != out->owner_token && pending != 0) {
        unsigned long long killed = 0;
        if (sy_mariadb_writer_lock_end(m, instance_id, held, TAKEOVER_KILL_WAIT_MS, &killed, e, sizeof e) != 0) {
            snprintf(err, errlen, "destination %s:%u: %s", dest->host, dest->port, e);
            goto out;
        }
        if (killed != 0)
            sy_log_info("%s: a DDL was pending (spool record %llu): the old owner's writer connection %llu "
                        "(owner token %llu) on %s:%u was ended before the takeover", instance_id,
                        (unsigned long long)pending, killed, (unsigned long long)held, dest->host, dest->port);
    }
    if (out->owner_token != 0) {
        if (sy_mariadb_fence_claim_sql(sql, sizeof sql, eid, out->owner_token) < 0 ||
            sy_mariadb_exec(m, e, sizeof e, "%s", sql) != 0) {
            snprintf(err, errlen, "destination %s:%u: writing the owner token: %s", dest->host, dest->port, e);
            goto out;
        }
    }
    /* the end of the idempotent replay is read from the source later, by the writer before it applies its
     * first change (core/engine.h SY_UNTIL_FIRST_CHANGE): any position read after the claim above covers
     * whatever the old owner applied, and the takeover needs the destination only (a site lost with its
     * owner node) */
    snprintf(out->until, sizeof out->until, "%s", SY_UNTIL_FIRST_CHANGE);
    if (sy_mariadb_exec(m, e, sizeof e, "DELETE FROM " SY_SCHEMA ".applied WHERE instance='%s'", eid) != 0 ||
        sy_mariadb_exec(m, e, sizeof e, "UPDATE " SY_SCHEMA ".checkpoint SET pending_ddl_seq = 0 WHERE instance='%s'",
                        eid) != 0 ||
        sy_mariadb_exec(m, e, sizeof e, "COMMIT") != 0) {
        snprintf(err, errlen, "destination %s:%u: %s", dest->host, dest->port, e);
        goto out;
    }
    out->found = out->position[0] != '\0';   /* reset by a new creation (forget): no history yet */
    rc = 0;
out:
    if (res)
        mysql_free_result(res);
    free(eid);
    if (m)
        mysql_close(m);
    return rc;
}
