/* A new instance of an id that an earlier one used (create-reverse after a terminate; core/engine.h
 * sy_sync_ops.forget): the destination resets that one's switchyard.checkpoint rows (record 0, no position:
 * nothing applied; the owner token kept, at least this node's, so that an older owner's writer that opens a
 * session now is fenced instead of starting a history of its own). Left there, the new
 * writer would resume its workers from the old sequence numbers — skipping the new spool's first records
 * (it notices only rows past its spool's end) — and a new owner's takeover from the old position. Rows
 * naming an owner token above this node's are a newer owner's (this node lost the pair): none is deleted
 * then (an instance's rows carry one token: written and claimed together). The echo rows stay: the new
 * writer rewrites them with its checkpoint rows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "engine/sqlserver_client.h"
#include "replay/sqlserver_modules.h"

int sy_sqlserver_forget(const struct sy_pair_cfg *cfg, const char *instance_id, const struct sy_endpoint *dest,
                        uint64_t owner_token, char *err, size_t errlen)
{
    int rc = -1;
    char e[1024], left[32];
    struct sy_tds *t = NULL;
    struct sy_buf b, lit;
    bool exists;
    sy_buf_init(&b);
    sy_buf_init(&lit);
    if (sy_sqlserver_checkpoint_open(cfg, dest, instance_id, &t, &lit, &exists, err, errlen) != 0)
        goto done;
    const char *inst = sy_tds_sql(&lit);
    if (!exists) {
        rc = 0;
        goto done;
    }
    /* in one transaction: the rows no newer owner claimed (the UPDATE's own predicate, which a claim that
     * commits first makes it skip; never a subquery, which under READ_COMMITTED_SNAPSHOT reads the
     * statement's snapshot), then none may name a newer owner — else every row goes back as it was */
    sy_tds_addf(&b, "SET XACT_ABORT ON; BEGIN TRANSACTION; UPDATE [%s].[%s] SET seq = 0, position = ''",
                SY_TDS_SCHEMA, SY_TDS_CHECKPOINT);
    if (owner_token != 0)
        sy_tds_addf(&b, ", owner_token = %llu", (unsigned long long)owner_token);
    sy_tds_addf(&b, " WHERE instance = %s", inst);
    if (owner_token != 0)
        sy_tds_addf(&b, " AND owner_token <= %llu", (unsigned long long)owner_token);
    if (sy_tds_exec(t, sy_tds_sql(&b), NULL, 0, NULL, e, sizeof e) != SY_TDS_OK)
        goto failed;
    sy_buf_reset(&b);
    sy_tds_addf(&b, "SELECT MAX(owner_token) FROM [%s].[%s] WHERE instance = %s AND owner_token > %llu", SY_TDS_SCHEMA,
                SY_TDS_CHECKPOINT, inst, (unsigned long long)owner_token);
    if (sy_tds_scalar(t, sy_tds_sql(&b), left, sizeof left, e, sizeof e) != SY_TDS_OK)
        goto failed;
    if (owner_token != 0 && left[0] != '\0') {
        sy_forget_newer_owner(err, errlen, dest, instance_id, strtoull(left, NULL, 10), owner_token);
        rc = -2;
        goto done;                  /* rolled back by the close */
    }
    if (sy_tds_exec(t, "COMMIT TRANSACTION", NULL, 0, NULL, e, sizeof e) != SY_TDS_OK)
        goto failed;
    rc = 0;
    goto done;
failed:
    snprintf(err, errlen, "destination %s:%u: %s", dest->host, dest->port, e);
done:
    sy_tds_close(t);
    sy_buf_fini(&b);
    sy_buf_fini(&lit);
    return rc;
}
