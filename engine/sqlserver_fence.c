/* Fencing a SQL Server side for a switch, and whether a side answers (core/engine.h sy_failover_ops).
 * Provisional and minimal (written on branch tds-move so the proxy's move can be tested end to end; the
 * SQL Server sync's owner may replace it): the pair's database is set READ_ONLY WITH ROLLBACK IMMEDIATE
 * (what the double supports; it also stops Switchyard's own writer, so a passive side is never kept
 * fenced: fence_passive stays off for sqlserver pairs, and the core unfences the old side after a switch).
 *
 * The final position: a mark row committed on the side just before READ_ONLY (switchyard.initial_sync_mark,
 * CDC-enabled, read by no collector; instance N'fence'), then the capture job's max LSN once it has captured
 * the mark. Every transaction acknowledged to a client committed before the switch's hold, so before the
 * mark: its LSN is at or below the position. A writer bypassing the proxy that commits between the mark and
 * READ_ONLY (milliseconds) is still covered when the capture job has reached it by then, not otherwise. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "engine/sqlserver_cdc.h"
#include "engine/sqlserver_client.h"
#include "engine/sqlserver_fence.h"

#define FENCE_MARK_INSTANCE "N'fence'"

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Writes the mark; *n its value. */
static enum sy_tds_rc mark_write(struct sy_tds *t, uint64_t *n, char *err, size_t errlen)
{
    bool created;
    char ci[200];
    enum sy_tds_rc rc = sy_tds_ensure_own_table(t, SY_TDS_MARK, "instance nvarchar(200) NOT NULL PRIMARY KEY, n bigint NOT NULL",
                                                &created, err, errlen);
    if (rc == SY_TDS_OK)
        rc = sy_tds_scalar(t, "SELECT capture_instance FROM cdc.change_tables WHERE capture_instance = '" SY_TDS_MARK_CI "'",
                           ci, sizeof ci, err, errlen);
    if (rc == SY_TDS_OK && ci[0] == '\0')
        rc = sy_tds_exec(t, "EXEC sys.sp_cdc_enable_table @source_schema = N'" SY_TDS_SCHEMA "', @source_name = N'" SY_TDS_MARK
                            "', @role_name = NULL", NULL, 0, NULL, err, errlen);
    if (rc != SY_TDS_OK)
        return rc;
    *n = wall_ms();
    char sql[400];
    snprintf(sql, sizeof sql, "BEGIN TRANSACTION; DELETE FROM [%s].[%s] WHERE instance = %s; INSERT INTO [%s].[%s] "
             "(instance, n) VALUES (%s, %llu); COMMIT TRANSACTION;", SY_TDS_SCHEMA, SY_TDS_MARK, FENCE_MARK_INSTANCE,
             SY_TDS_SCHEMA, SY_TDS_MARK, FENCE_MARK_INSTANCE, (unsigned long long)*n);
    return sy_tds_exec(t, sql, NULL, 0, NULL, err, errlen);
}

/* Waits (at most wait_ms) for the capture job to capture mark n; then *pos = its max LSN. */
static int mark_wait(struct sy_tds *t, uint64_t n, int wait_ms, char *pos, size_t poslen, char *err, size_t errlen)
{
    for (int waited = 0;; waited += 20) {
        struct sy_lsn min, max, at;
        memset(&at, 0, sizeof at);
        enum sy_tds_rc rc = sy_tds_lsn_query(t, "SELECT sys.fn_cdc_get_min_lsn('" SY_TDS_MARK_CI "')", &min, err, errlen);
        if (rc == SY_TDS_OK)
            rc = sy_tds_lsn_query(t, "SELECT sys.fn_cdc_get_max_lsn()", &max, err, errlen);
        if (rc != SY_TDS_OK)
            return -1;
        if (sy_lsn_cmp(&min, &max) <= 0 && !sy_lsn_is_zero(&min)) {
            char mn[SY_LSN_TEXT], mx[SY_LSN_TEXT], sql[400];
            sy_lsn_format(&min, mn);
            sy_lsn_format(&max, mx);
            snprintf(sql, sizeof sql, "SELECT __$start_lsn FROM cdc.fn_cdc_get_all_changes_%s(0x%s, 0x%s, N'all') "
                     "WHERE instance = %s AND n = %llu", SY_TDS_MARK_CI, mn, mx, FENCE_MARK_INSTANCE,
                     (unsigned long long)n);
            if (sy_tds_lsn_query(t, sql, &at, err, errlen) != SY_TDS_OK)
                return -1;
            if (!sy_lsn_is_zero(&at)) {
                if (pos != NULL) {
                    char text[SY_LSN_TEXT];
                    sy_lsn_format(&max, text);
                    snprintf(pos, poslen, "%s", text);
                }
                return 0;
            }
        }
        if (waited >= wait_ms) {
            snprintf(err, errlen, "the capture job did not capture the fence mark within %d ms: is it running?",
                     wait_ms);
            return -1;
        }
        usleep(20 * 1000);
    }
}

int sy_sqlserver_fence(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, bool on, int wait_ms, char *pos,
                       size_t poslen, char *err, size_t errlen)
{
    char db[80], sql[300];
    enum sy_tds_rc rc;
    if (!sy_tds_pair_database(cfg, db, sizeof db, err, errlen))
        return -1;
    struct sy_tds *t = sy_tds_connect(cfg, ep, db, err, errlen, &rc);
    if (t == NULL)
        return -1;
    int ret = -1;
    uint64_t n = 0;
    if (!on) {
        snprintf(sql, sizeof sql, "ALTER DATABASE [%s] SET READ_WRITE", db);
        ret = sy_tds_exec(t, sql, NULL, 0, NULL, err, errlen) == SY_TDS_OK ? 0 : -1;
        goto out;
    }
    if (mark_write(t, &n, err, errlen) != SY_TDS_OK)
        goto out;
    snprintf(sql, sizeof sql, "ALTER DATABASE [%s] SET READ_ONLY WITH ROLLBACK IMMEDIATE", db);
    if (sy_tds_exec(t, sql, NULL, 0, NULL, err, errlen) != SY_TDS_OK)
        goto out;
    if (mark_wait(t, n, wait_ms, pos, poslen, err, errlen) != 0) {
        char e2[200];
        snprintf(sql, sizeof sql, "ALTER DATABASE [%s] SET READ_WRITE", db);   /* the switch rolls back */
        (void)sy_tds_exec(t, sql, NULL, 0, NULL, e2, sizeof e2);
        goto out;
    }
    ret = 0;
out:
    sy_tds_close(t);
    return ret;
}

bool sy_sqlserver_alive(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, int timeout_ms)
{
    (void)timeout_ms;                      /* db-lib's login timeout (sy_tds_library_init) bounds it */
    char err[300];
    enum sy_tds_rc rc;
    struct sy_tds *t = sy_tds_connect(cfg, ep, "", err, sizeof err, &rc);
    if (t == NULL)
        return false;
    sy_tds_close(t);
    return true;
}
