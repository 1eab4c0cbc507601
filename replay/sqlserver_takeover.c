/* A new owner takes a SQL Server instance over (core/takeover.c): the destination's switchyard.checkpoint
 * rows (one per apply worker) say where to resume. The workers may stand at different spool records; the
 * new spool continues after the lowest, so every row is moved down to it (same `workers`: the writer then
 * resumes all of them there) and the records above it are collected again and replayed idempotently up to
 * the source's position read by the writer before its first change (core/engine.h SY_UNTIL_FIRST_CHANGE).
 * In a cluster the rows first get the new owner's fencing token (`owner_token`), in the same transaction:
 * a writer of an older owner commits nothing more (its checkpoint UPDATE, in each of its transactions,
 * requires owner_token <= its own token; replay/sqlserver_writer.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "engine/sqlserver_client.h"
#include "replay/sqlserver_modules.h"

struct ckpt_low {
    int n;
    uint64_t seq;           /* the lowest worker's */
    char position[64];      /* its position */
    uint64_t max_token;     /* the highest owner_token of the rows */
};

static int on_row(void *arg, struct sy_tds *t)
{
    struct ckpt_low *c = arg;
    uint64_t seq = (uint64_t)sy_tds_col_int(t, 1);
    uint64_t token = (uint64_t)sy_tds_col_int(t, 3);
    if (c->n++ == 0 || seq < c->seq) {
        c->seq = seq;
        sy_tds_col_text(t, 2, c->position, sizeof c->position);
    }
    if (token > c->max_token)
        c->max_token = token;
    return 0;
}

enum sy_tds_rc sy_sqlserver_checkpoint_upgrade(struct sy_tds *t, char *err, size_t errlen)
{
    char n[16];
    enum sy_tds_rc rc = sy_tds_scalar(t, "SELECT COUNT(*) FROM sys.columns WHERE object_id = OBJECT_ID('"
                                      SY_TDS_SCHEMA "." SY_TDS_CHECKPOINT "') AND name = 'owner_token'", n, sizeof n,
                                      err, errlen);
    if (rc == SY_TDS_OK && strcmp(n, "0") == 0)
        rc = sy_tds_exec(t, "ALTER TABLE [" SY_TDS_SCHEMA "].[" SY_TDS_CHECKPOINT "] ADD owner_token bigint NOT NULL "
                         "DEFAULT 0", NULL, 0, NULL, err, errlen);
    return rc;
}

int sy_sqlserver_checkpoint_open(const struct sy_pair_cfg *cfg, const struct sy_endpoint *dest,
                                 const char *instance_id, struct sy_tds **t, struct sy_buf *lit, bool *exists,
                                 char *err, size_t errlen)
{
    char db[80], e[1024], id[32];
    enum sy_tds_rc trc;
    *exists = false;
    if (!sy_tds_pair_database(cfg, db, sizeof db, err, errlen))
        return -1;
    if ((*t = sy_tds_connect(cfg, dest, db, e, sizeof e, &trc)) == NULL) {
        snprintf(err, errlen, "destination: %s", e);
        return -1;
    }
    struct sy_value v = { .type = SY_VAL_STRING, .p = (const uint8_t *)instance_id, .len = strlen(instance_id) };
    sy_tds_literal(lit, &v);
    if (sy_tds_scalar(*t, "SELECT OBJECT_ID('" SY_TDS_SCHEMA "." SY_TDS_CHECKPOINT "')", id, sizeof id, e,
                      sizeof e) != SY_TDS_OK ||
        (id[0] != '\0' && sy_sqlserver_checkpoint_upgrade(*t, e, sizeof e) != SY_TDS_OK)) {
        snprintf(err, errlen, "destination %s:%u: %s", dest->host, dest->port, e);
        return -1;
    }
    *exists = id[0] != '\0';       /* else never written to: no checkpoint */
    return 0;
}

int sy_sqlserver_takeover(const struct sy_pair_cfg *cfg, const char *instance_id, const struct sy_endpoint *src,
                          const struct sy_endpoint *dest, struct sy_takeover_point *out, char *err, size_t errlen)
{
    (void)src; /* the takeover needs the destination only (a site lost with its owner node) */
    int rc = -1;
    char e[1024];
    struct sy_tds *t = NULL;
    struct sy_buf b, lit;
    bool exists;
    sy_buf_init(&b);
    sy_buf_init(&lit);
    out->found = false;
    if (sy_sqlserver_checkpoint_open(cfg, dest, instance_id, &t, &lit, &exists, err, errlen) != 0)
        goto done;
    const char *inst = sy_tds_sql(&lit);
    if (!exists) {
        rc = 0;
        goto done;
    }
    if (sy_tds_exec(t, "SET XACT_ABORT ON; BEGIN TRANSACTION", NULL, 0, NULL, e, sizeof e) != SY_TDS_OK)
        goto failed;
    /* the claim first: its row locks serialize it with an older owner's transactions (each moves its
     * worker's row), which commit either before it (at most the source position replayed up to) or not */
    if (out->owner_token != 0) {
        sy_tds_addf(&b, "UPDATE [%s].[%s] SET owner_token = %llu WHERE instance = %s AND owner_token <= %llu",
                    SY_TDS_SCHEMA, SY_TDS_CHECKPOINT, (unsigned long long)out->owner_token, inst,
                    (unsigned long long)out->owner_token);
        if (sy_tds_exec(t, sy_tds_sql(&b), NULL, 0, NULL, e, sizeof e) != SY_TDS_OK)
            goto failed;
    }
    struct ckpt_low low = { 0 };
    sy_buf_reset(&b);
    sy_tds_addf(&b, "SELECT seq, position, owner_token FROM [%s].[%s] WHERE instance = %s", SY_TDS_SCHEMA,
                SY_TDS_CHECKPOINT, inst);
    if (sy_tds_query(t, sy_tds_sql(&b), on_row, &low, e, sizeof e) != SY_TDS_OK)
        goto failed;
    if (low.n == 0 || low.position[0] == '\0') { /* none, or written before the first batch: nothing applied */
        sy_tds_exec(t, "IF @@TRANCOUNT > 0 ROLLBACK", NULL, 0, NULL, e, sizeof e);
        rc = 0;
        goto done;
    }
    if (out->owner_token != 0 && low.max_token > out->owner_token) {
        snprintf(err, errlen, "destination %s:%u: its checkpoint names owner token %llu, above this node's %llu: a "
                 "newer owner took the pair over (or etcd was recreated from scratch, restarting its revisions: then "
                 "set " SY_TDS_SCHEMA "." SY_TDS_CHECKPOINT ".owner_token to 0 once no old owner runs)", dest->host,
                 dest->port, (unsigned long long)low.max_token, (unsigned long long)out->owner_token);
        goto done;
    }
    /* the rows moved down, and claimed (again): on an MVCC server the claim above, once it waited for an
     * older owner's rewrite of the rows (DELETE + INSERT), finds none of them, and the rows read here
     * still name that owner, whose writer would go on committing until this owner's writer claims them */
    sy_buf_reset(&b);
    sy_tds_addf(&b, "UPDATE [%s].[%s] SET seq = %llu, position = '%s'", SY_TDS_SCHEMA, SY_TDS_CHECKPOINT,
                (unsigned long long)low.seq, low.position);
    if (out->owner_token != 0)
        sy_tds_addf(&b, ", owner_token = %llu", (unsigned long long)out->owner_token);
    sy_tds_addf(&b, " WHERE instance = %s", inst);
    if (out->owner_token != 0)
        sy_tds_addf(&b, " AND owner_token <= %llu", (unsigned long long)out->owner_token);
    if (strchr(low.position, '\'') != NULL) { /* an LSN's text never holds one */
        snprintf(e, sizeof e, "its checkpoint's position is not an LSN");
        goto failed;
    }
    long moved = -1;
    size_t n_done = 0;
    if (sy_tds_exec(t, sy_tds_sql(&b), &moved, 1, &n_done, e, sizeof e) != SY_TDS_OK)
        goto failed;
    if (n_done == 1 && moved >= 0 && moved < low.n) {
        snprintf(err, errlen, "destination %s:%u: a newer owner claimed the checkpoint rows during the takeover "
                 "(%ld of %d moved)", dest->host, dest->port, moved, low.n);
        goto done;                  /* rolled back by the close */
    }
    if (sy_tds_exec(t, "COMMIT TRANSACTION", NULL, 0, NULL, e, sizeof e) != SY_TDS_OK)
        goto failed;
    out->spool_seq = low.seq;
    snprintf(out->position, sizeof out->position, "%s", low.position);
    snprintf(out->until, sizeof out->until, "%s", SY_UNTIL_FIRST_CHANGE);
    out->found = true;
    rc = 0;
    goto done;
failed:
    snprintf(err, errlen, "destination %s:%u: %s", dest->host, dest->port, e);
done:
    sy_tds_close(t); /* rolls back what was not committed */
    sy_buf_fini(&b);
    sy_buf_fini(&lit);
    return rc;
}
