/* A new instance of an id that an earlier one used (create-reverse after a terminate; core/engine.h
 * sy_sync_ops.forget): the destination forgets that one's `applied` rows and resets its checkpoint row (record
 * 0, no position: no history; the owner token kept, at least this node's, so that an older owner's writer
 * that opens a session now is fenced instead of starting a history of its own), in one transaction under the
 * row's lock. Left there, the new writer would resume from the old watermark —
 * skipping the new spool's first records, or failing spool_mismatch — and a new owner's takeover would
 * resume the new instance from the old position. A row naming an owner token above this node's is a
 * newer owner's (this node lost the pair): kept. The session writes with the writer's tag, as the writer
 * does: the collector of the other direction drops it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "engine/mariadb_client.h"
#include "replay/mariadb_checkpoint.h"
#include "replay/mariadb_modules.h"

#define FORGET_TIMEOUT_S 10

int sy_mariadb_forget(const struct sy_pair_cfg *cfg, const char *instance_id, const struct sy_endpoint *dest,
                      uint64_t owner_token, char *err, size_t errlen)
{
    char e[512], v[32];
    bool found = false;
    int rc = -1;
    MYSQL *m = sy_mariadb_connect(dest, cfg, 0, FORGET_TIMEOUT_S, NULL, e, sizeof e);
    char *eid = m ? sy_mariadb_escape(m, instance_id) : NULL;
    if (m == NULL || eid == NULL) {
        snprintf(err, errlen, "destination %s:%u: %s", dest->host, dest->port, m ? "out of memory" : e);
        goto out;
    }
    char tables[8];
    if (sy_mariadb_exec(m, e, sizeof e, "SET SESSION server_id=%u, innodb_lock_wait_timeout=%d", cfg->writer_tag,
                        FORGET_TIMEOUT_S) != 0 ||
        sy_mariadb_value(m, tables, sizeof tables, &found, e, sizeof e,
                         "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='" SY_SCHEMA
                         "' AND TABLE_NAME IN ('checkpoint', 'applied')") != 0 ||
        sy_mariadb_value(m, v, sizeof v, &found, e, sizeof e,
                         "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='" SY_SCHEMA
                         "' AND TABLE_NAME = 'checkpoint'") != 0)
        goto failed;
    if (strcmp(v, "0") == 0) { /* never written to */
        rc = 0;
        goto out;
    }
    bool applied = strcmp(tables, "2") == 0;        /* an install from before it has the checkpoint only */
    if (sy_mariadb_value(m, v, sizeof v, &found, e, sizeof e, SY_MARIADB_CHECKPOINT_HAS_TOKEN_SQL) != 0 ||
        (strcmp(v, "0") == 0 && sy_mariadb_exec(m, e, sizeof e, SY_MARIADB_CHECKPOINT_ADD_TOKEN_SQL) != 0) ||
        sy_mariadb_exec(m, e, sizeof e, "START TRANSACTION") != 0 ||
        sy_mariadb_value(m, v, sizeof v, &found, e, sizeof e,
                         "SELECT owner_token FROM " SY_SCHEMA ".checkpoint WHERE instance='%s' FOR UPDATE", eid) != 0)
        goto failed;
    uint64_t held = found ? strtoull(v, NULL, 10) : 0;
    if (owner_token != 0 && held > owner_token) {
        sy_forget_newer_owner(err, errlen, dest, instance_id, held, owner_token);
        rc = -2;
        goto out;
    }
    if ((applied &&
         sy_mariadb_exec(m, e, sizeof e, "DELETE FROM " SY_SCHEMA ".applied WHERE instance='%s'", eid) != 0) ||
        sy_mariadb_exec(m, e, sizeof e, "UPDATE " SY_SCHEMA ".checkpoint SET spool_seq=0, position='', "
                        "pending_ddl_seq=0, owner_token=GREATEST(owner_token, %llu), updated_at=NOW(6) WHERE "
                        "instance='%s'", (unsigned long long)owner_token, eid) != 0 ||
        sy_mariadb_exec(m, e, sizeof e, "COMMIT") != 0)
        goto failed;
    rc = 0;
    goto out;
failed:
    snprintf(err, errlen, "destination %s:%u: %s", dest->host, dest->port, e);
out:
    free(eid);
    if (m)
        mysql_close(m);
    return rc;
}
