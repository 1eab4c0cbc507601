/* A new owner takes a MariaDB instance over (core/takeover.c): the destination's checkpoint row says where
 * to resume, the source's @@gtid_binlog_pos where the idempotent replay ends, and the destination forgets
 * the old owner's `applied` rows (their spool sequence numbers mean nothing in the new spool: the
 * transactions they name are collected again and replayed, conflicts overwritten) and its pending DDL
 * (above the checkpoint too: collected again and run in its IF [NOT] EXISTS form). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "engine/mariadb_client.h"
#include "replay/mariadb_checkpoint.h"
#include "replay/mariadb_modules.h"

#define TAKEOVER_TIMEOUT_S 5

/* The source's @@gtid_binlog_pos (every transaction in its binlog). 0, or -1 with err. */
static int source_position(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out, size_t outlen,
                           char *err, size_t errlen)
{
    MYSQL *m = sy_mariadb_connect(src, cfg, 0, TAKEOVER_TIMEOUT_S, NULL, err, errlen);
    if (m == NULL)
        return -1;
    bool found = false;
    int rc = sy_mariadb_value(m, out, outlen, &found, err, errlen, "SELECT @@gtid_binlog_pos");
    mysql_close(m);
    return rc;
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
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT spool_seq, position FROM " SY_SCHEMA ".checkpoint WHERE instance='%s'", eid);
    MYSQL_ROW row;
    if (mysql_real_query(m, sql, (unsigned long)strlen(sql)) != 0 || (res = mysql_store_result(m)) == NULL) {
        snprintf(err, errlen, "destination %s:%u: reading the checkpoint: %u %s", dest->host, dest->port,
                 mysql_errno(m), mysql_error(m));
        goto out;
    }
    if ((row = mysql_fetch_row(res)) == NULL) {
        rc = 0;
        goto out;
    }
    out->spool_seq = row[0] ? strtoull(row[0], NULL, 10) : 0;
    snprintf(out->position, sizeof out->position, "%s", row[1] ? row[1] : "");
    /* the source's position before the destination forgets anything: every change up to it is replayed
     * idempotently, whatever the old owner applied above its watermark */
    if (source_position(cfg, src, out->until, sizeof out->until, e, sizeof e) != 0) {
        snprintf(err, errlen, "source %s:%u: reading its position: %s", src->host, src->port, e);
        goto out;
    }
    if (sy_mariadb_exec(m, e, sizeof e, "DELETE FROM " SY_SCHEMA ".applied WHERE instance='%s'", eid) != 0 ||
        sy_mariadb_exec(m, e, sizeof e, "UPDATE " SY_SCHEMA ".checkpoint SET pending_ddl_seq = 0 WHERE instance='%s'",
                        eid) != 0 ||
        sy_mariadb_exec(m, e, sizeof e, "COMMIT") != 0) {
        snprintf(err, errlen, "destination %s:%u: %s", dest->host, dest->port, e);
        goto out;
    }
    out->found = true;
    rc = 0;
out:
    if (res)
        mysql_free_result(res);
    free(eid);
    if (m)
        mysql_close(m);
    return rc;
}
