/* Fencing a SQL Server side (core/engine.h sy_failover_ops) and whether a side answers.
 *
 * A fenced database takes no INSERT, UPDATE or DELETE from the application and keeps taking Switchyard's
 * writer: `DENY INSERT, UPDATE, DELETE TO [user]` at database scope for every database user but admin_user's
 * own (and dbo, sys, INFORMATION_SCHEMA, which cannot be denied). A DENY wins over every GRANT, at any scope
 * and through any role (db_owner and db_datawriter included); it does not apply to sysadmin members nor to
 * the database owner (dbo), which is why an application logging in as one of those cannot be fenced (the
 * precheck says so). READ_ONLY, the other way SQL Server offers, would stop the writer too. Each user denied
 * is recorded in switchyard.fence (one row per user and permission) in the same transaction as its DENY; a user
 * that already holds a database-scope DENY of some of the three (an operator's) is denied only the others;
 * unfencing REVOKEs exactly what was recorded (an operator's own DENY is left alone). A REVOKE removes whatever
 * that user held at database scope: a database-scope GRANT of INSERT/UPDATE/DELETE to an application user would
 * be lost (the precheck warns).
 *
 * The switch's fence (pos wanted): the DENYs, then a mark the capture job must reach (engine/sqlserver_cdc.h
 * sy_tds_mark_captured); the final position is the capture job's max LSN then. Every write acknowledged to a
 * client through the proxy committed before the switch's hold, so before the mark. Not stopped: a writer that
 * bypasses the proxy and commits a transaction it began before the DENY (permissions are checked per
 * statement), and writes through procedures or triggers owned by dbo (ownership chaining skips the check). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"
#include "engine/sqlserver_cdc.h"
#include "engine/sqlserver_client.h"
#include "engine/sqlserver_fence.h"

#define FENCE_TABLE "fence"
#define FENCE_MARK_INSTANCE "N'fence'"

static const char *const fence_perms[] = { "INSERT", "UPDATE", "DELETE" };

/* The database users the fence denies that lack a database-scope DENY of any of INSERT/UPDATE/DELETE. */
#define UNFENCED_USERS                                                                                              \
    "SELECT p.name FROM sys.database_principals p WHERE p.type IN ('S', 'U', 'G', 'E', 'X', 'C', 'K') AND "        \
    "p.name NOT IN ('dbo', 'sys', 'INFORMATION_SCHEMA') AND p.name <> USER_NAME() AND (SELECT COUNT(*) FROM "      \
    "sys.database_permissions d WHERE d.class = 0 AND d.grantee_principal_id = p.principal_id AND "                \
    "d.permission_name IN ('INSERT', 'UPDATE', 'DELETE') AND d.state = 'D') < 3 ORDER BY p.name"

/* A sysname is up to 128 UTF-16 code units: at most 4 bytes of UTF-8 each. */
#define SYSNAME_UTF8 (4 * 128 + 1)

struct names {
    char **v;
    size_t n, cap;
    bool oom, unreadable;
};

static int on_name(void *arg, struct sy_tds *t)
{
    struct names *l = arg;
    char name[SYSNAME_UTF8];
    if (!sy_tds_col_text(t, 1, name, sizeof name)) {
        l->unreadable = true;    /* a user skipped here would stay writable on a fenced side */
        return 1;
    }
    if (l->n + 1 >= l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **v = realloc(l->v, cap * sizeof *v);
        if (v == NULL) {
            l->oom = true;
            return 0;
        }
        l->v = v;
        l->cap = cap;
    }
    if ((l->v[l->n] = strdup(name)) == NULL)
        l->oom = true;
    else
        l->v[++l->n] = NULL;
    return 0;
}

char **sy_sqlserver_fence_names(struct sy_tds *t, const char *sql, enum sy_tds_rc *rc, char *err, size_t errlen)
{
    struct names l = { 0 };
    *rc = sy_tds_query(t, sql, on_name, &l, err, errlen);
    if (l.unreadable) {
        *rc = SY_TDS_REFUSED;
        snprintf(err, errlen, "a name longer than a sysname (%d bytes of UTF-8) or not text", SYSNAME_UTF8 - 1);
    } else if (*rc == SY_TDS_OK && (l.oom || l.v == NULL)) {
        if (l.oom) {
            *rc = SY_TDS_REFUSED;
            snprintf(err, errlen, "out of memory");
        } else if ((l.v = calloc(1, sizeof *l.v)) == NULL) {
            *rc = SY_TDS_REFUSED;
            snprintf(err, errlen, "out of memory");
        }
    }
    if (*rc != SY_TDS_OK) {
        for (size_t i = 0; i < l.n; i++)
            free(l.v[i]);
        free(l.v);
        return NULL;
    }
    return l.v;
}

/* N'name' with ' doubled. */
static void name_literal(struct sy_buf *b, const char *name)
{
    struct sy_value v = { .type = SY_VAL_STRING, .p = (const uint8_t *)name, .len = strlen(name) };
    sy_tds_literal(b, &v);
}

/* The permissions (of fence_perms) sql lists as a ", "-joined T-SQL list into out, those it does not list when
 * missing; false with rc/err when the query fails. */
static bool perm_list(struct sy_tds *t, const char *sql, bool missing, struct sy_buf *out, enum sy_tds_rc *rc,
                      char *err, size_t errlen)
{
    char **have = sy_sqlserver_fence_names(t, sql, rc, err, errlen);
    if (have == NULL)
        return false;
    for (size_t i = 0; i < sizeof fence_perms / sizeof *fence_perms; i++) {
        bool listed = false;
        for (size_t k = 0; have[k] != NULL && !listed; k++)
            listed = strcmp(have[k], fence_perms[i]) == 0;
        if (listed != missing)
            sy_tds_addf(out, "%s%s", out->len ? ", " : "", fence_perms[i]);
    }
    sy_tds_strv_free(have);
    return true;
}

/* One user. Fencing: the permissions it holds no database-scope DENY of are recorded (one row each) and denied
 * in one transaction. Unfencing: those recorded are revoked and forgotten; an operator's own DENY stays. */
static enum sy_tds_rc fence_user(struct sy_tds *t, const char *name, bool on, char *err, size_t errlen)
{
    struct sy_buf q, perms;
    enum sy_tds_rc rc = SY_TDS_OK;
    sy_buf_init(&q);
    sy_buf_init(&perms);
    if (on)
        sy_tds_addf(&q, "SELECT d.permission_name FROM sys.database_permissions d JOIN sys.database_principals p ON "
                    "p.principal_id = d.grantee_principal_id WHERE d.class = 0 AND d.state = 'D' AND p.name = ");
    else
        sy_tds_addf(&q, "SELECT permission FROM [%s].[%s] WHERE principal = ", SY_TDS_SCHEMA, FENCE_TABLE);
    name_literal(&q, name);
    if (!perm_list(t, sy_tds_sql(&q), on, &perms, &rc, err, errlen) || perms.len == 0)
        goto out;
    sy_buf_reset(&q);
    /* XACT_ABORT: on SQL Server a failed DENY does not abort the batch otherwise, and the record would commit */
    sy_tds_addf(&q, "SET XACT_ABORT ON; BEGIN TRANSACTION;");
    for (size_t i = 0; i < sizeof fence_perms / sizeof *fence_perms; i++) {
        if (strstr(sy_tds_sql(&perms), fence_perms[i]) == NULL)
            continue;
        sy_tds_addf(&q, " DELETE FROM [%s].[%s] WHERE principal = ", SY_TDS_SCHEMA, FENCE_TABLE);
        name_literal(&q, name);
        sy_tds_addf(&q, " AND permission = N'%s';", fence_perms[i]);
        if (on) {
            sy_tds_addf(&q, " INSERT INTO [%s].[%s] (principal, permission) VALUES (", SY_TDS_SCHEMA, FENCE_TABLE);
            name_literal(&q, name);
            sy_tds_addf(&q, ", N'%s');", fence_perms[i]);
        }
    }
    sy_tds_addf(&q, on ? " DENY %s TO " : " REVOKE %s FROM ", sy_tds_sql(&perms));
    sy_tds_ident(&q, name, strlen(name));
    sy_tds_addf(&q, "; COMMIT TRANSACTION;");
    rc = sy_tds_exec(t, sy_tds_sql(&q), NULL, 0, NULL, err, errlen);
    if (rc == SY_TDS_OK)
        sy_log_info("sqlserver fence: %s user %s: %s", on ? "denied" : "revoked the fence's", name, sy_tds_sql(&perms));
out:
    sy_buf_fini(&q);
    sy_buf_fini(&perms);
    return rc;
}

/* Runs fence_user over a list of names; a failure names the user. */
static enum sy_tds_rc fence_users(struct sy_tds *t, char **names, bool on, char *err, size_t errlen)
{
    enum sy_tds_rc rc = SY_TDS_OK;
    for (size_t i = 0; rc == SY_TDS_OK && names[i] != NULL; i++) {
        char e[400];
        rc = fence_user(t, names[i], on, e, sizeof e);
        if (rc != SY_TDS_OK)
            snprintf(err, errlen, "%s user %s: %s", on ? "denying writes to" : "revoking the fence of", names[i], e);
    }
    return rc;
}

static enum sy_tds_rc apply(struct sy_tds *t, const char *db, bool on, char *err, size_t errlen)
{
    bool created;
    enum sy_tds_rc rc = sy_tds_ensure_own_table(t, FENCE_TABLE, "principal nvarchar(128) NOT NULL, permission "
                                                "nvarchar(10) NOT NULL, PRIMARY KEY (principal, permission)",
                                                &created, err, errlen);
    if (rc != SY_TDS_OK)
        return rc;
    char **names;
    if (on) {
        names = sy_sqlserver_fence_names(t, UNFENCED_USERS, &rc, err, errlen);
    } else {
        /* the users this fence denied; one dropped since has nothing left to revoke */
        names = sy_sqlserver_fence_names(t, "SELECT DISTINCT f.principal FROM [" SY_TDS_SCHEMA "].[" FENCE_TABLE
                                            "] f WHERE EXISTS (SELECT 1 FROM sys.database_principals p WHERE p.name = "
                                            "f.principal) ORDER BY f.principal", &rc, err, errlen);
        if (rc == SY_TDS_OK)
            rc = sy_tds_exec(t, "DELETE FROM [" SY_TDS_SCHEMA "].[" FENCE_TABLE "] WHERE NOT EXISTS (SELECT 1 FROM "
                                "sys.database_principals p WHERE p.name = principal)", NULL, 0, NULL, err, errlen);
    }
    if (rc == SY_TDS_OK)
        rc = fence_users(t, names, on, err, errlen);
    sy_tds_strv_free(names);
    if (rc == SY_TDS_OK && !on) {
        /* a database the earlier fence (READ_ONLY) left behind, e.g. by a crash in a switch */
        char ro[8], sql[200];
        rc = sy_tds_scalar(t, "SELECT is_read_only FROM sys.databases WHERE name = DB_NAME()", ro, sizeof ro, err,
                           errlen);
        snprintf(sql, sizeof sql, "ALTER DATABASE [%s] SET READ_WRITE", db);
        if (rc == SY_TDS_OK && (strcmp(ro, "1") == 0 || strcasecmp(ro, "true") == 0))
            rc = sy_tds_exec(t, sql, NULL, 0, NULL, err, errlen);
    }
    return rc;
}

int sy_sqlserver_fence(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, bool on, int wait_ms, char *pos,
                       size_t poslen, char *err, size_t errlen)
{
    char db[80];
    enum sy_tds_rc rc;
    if (!sy_tds_pair_database(cfg, db, sizeof db, err, errlen))
        return -1;
    struct sy_tds *t = sy_tds_connect(cfg, ep, db, err, errlen, &rc);
    if (t == NULL)
        return -1;
    int ret = apply(t, db, on, err, errlen) == SY_TDS_OK ? 0 : -1;
    if (ret == 0 && on && pos != NULL) {
        struct sy_lsn at, max;
        if (sy_tds_mark_captured(t, FENCE_MARK_INSTANCE, wait_ms, NULL, NULL, &at, &max, err, errlen) != SY_TDS_OK) {
            char e2[300];
            ret = -1;                            /* the switch does not unfence what it did not see fenced */
            if (apply(t, db, false, e2, sizeof e2) != SY_TDS_OK)
                sy_log_warn("sqlserver fence: %s:%u: cannot unfence after a failed fence: %s", ep->host, ep->port, e2);
        } else {
            char text[SY_LSN_TEXT];
            sy_lsn_format(&max, text);
            snprintf(pos, poslen, "%s", text);
        }
    }
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
