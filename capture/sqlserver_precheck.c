/* The SQL Server precheck (docs/sqlserver.md): one blocking, read-only pass over both sides of a pair as
 * admin_user that appends a {name, status, detail, fix} object per check:
 *   objects_configured        one database named by `objects` (CDC positions belong to one database)
 *   <side>_reachable          admin login into that database on each side
 *   <side>_cdc_database       change data capture enabled on the database (both sides: the source for
 *                             collection, the destination for the writer's echo marker table)
 *   source_tables             the synchronized tables that exist on the source (warn when none)
 *   source_keys               every synchronized table has a primary key
 *   source_cdc_tables         every synchronized table has a capture instance
 *   <side>_fence              what fencing that side allows (engine/sqlserver_fence.c): admin_user may DENY
 *                             (dbo, db_owner or db_securityadmin), the users a fence denies, a warning for
 *                             those holding a database-scope GRANT of INSERT/UPDATE/DELETE (unfencing's
 *                             REVOKE would remove it), for application roles (sp_setapprole: a DENY to
 *                             users does not reach them) and for fence_passive = off
 *   capture_job               a note: on a real SQL Server the Agent's capture and cleanup jobs must run,
 *                             with a retention longer than retry_seconds (not checkable on the double)
 * The source is business for the forward direction, DR for the reverse one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/sqlserver_modules.h"
#include "core/checks.h"
#include "engine/sqlserver_cdc.h"
#include "engine/sqlserver_fence.h"

struct side {
    const char *name;             /* "business" | "dr" */
    const struct sy_endpoint *ep; /* ref */
    struct sy_tds *t;             /* owned; NULL when unreachable */
    char skip[600];
};

static void list(struct sy_buf *b, char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        sy_tds_addf(b, "%s%s", i ? ", " : "", v[i]);
    if (v == NULL || v[0] == NULL)
        sy_tds_addf(b, "none");
}

static bool add(json_t *checks, bool *failed, const char *name, const char *status, const char *detail,
                const char *fix)
{
    if (sy_check_add(checks, name, status, detail, fix))
        *failed = true;
    return true;
}

/* <side>_fence: what fencing this side allows (engine/sqlserver_fence.c). */
static void check_fence(const struct sy_pair_cfg *cfg, struct side *s, json_t *checks, bool *failed)
{
    char name[64], err[600];
    enum sy_tds_rc rc;
    snprintf(name, sizeof name, "%s_fence", s->name);
    char **admin = sy_sqlserver_fence_names(
        s->t, "SELECT USER_NAME() WHERE USER_NAME() = 'dbo' OR EXISTS (SELECT 1 FROM sys.database_role_members m "
              "JOIN sys.database_principals r ON r.principal_id = m.role_principal_id JOIN sys.database_principals u ON "
              "u.principal_id = m.member_principal_id WHERE u.name = USER_NAME() AND r.name IN ('db_owner', "
              "'db_securityadmin'))", &rc, err, sizeof err);
    char **users = admin == NULL ? NULL : sy_sqlserver_fence_names(
        s->t, "SELECT p.name FROM sys.database_principals p WHERE p.type IN ('S', 'U', 'G', 'E', 'X', 'C', 'K') AND "
              "p.name NOT IN ('dbo', 'sys', 'INFORMATION_SCHEMA') AND p.name <> USER_NAME() ORDER BY p.name",
        &rc, err, sizeof err);
    char **granted = users == NULL ? NULL : sy_sqlserver_fence_names(
        s->t, "SELECT DISTINCT p.name FROM sys.database_permissions d JOIN sys.database_principals p ON "
              "p.principal_id = d.grantee_principal_id WHERE d.class = 0 AND d.state IN ('G', 'W') AND "
              "d.permission_name IN ('INSERT', 'UPDATE', 'DELETE') AND p.name <> USER_NAME() ORDER BY p.name",
        &rc, err, sizeof err);
    char **approles = granted == NULL ? NULL : sy_sqlserver_fence_names(
        s->t, "SELECT p.name FROM sys.database_principals p WHERE p.type = 'A' ORDER BY p.name", &rc, err, sizeof err);
    struct sy_buf d;
    sy_buf_init(&d);
    if (granted == NULL || approles == NULL) {
        add(checks, failed, name, "fail", err, "let admin_user read sys.database_principals and sys.database_permissions");
    } else if (admin[0] == NULL) {
        sy_tds_addf(&d, "%s is neither dbo nor in db_owner or db_securityadmin: it cannot DENY writes to the "
                    "application's users", cfg->admin_user);
        add(checks, failed, name, cfg->fence_passive ? "fail" : "warn", sy_tds_sql(&d),
            "ALTER ROLE db_owner ADD MEMBER [<admin_user's user>] (the writer needs it too)");
    } else {
        sy_tds_addf(&d, "a fence denies INSERT, UPDATE, DELETE (database scope) to: ");
        list(&d, users);
        sy_tds_addf(&d, "; sysadmin logins and the database owner cannot be denied: an application logging in as "
                    "one of them is not fenced");
        if (granted[0] != NULL) {
            sy_tds_addf(&d, "; unfencing REVOKEs at database scope, which also removes the database-scope GRANT "
                        "these users hold: ");
            list(&d, granted);
        }
        if (approles[0] != NULL) {
            sy_tds_addf(&d, "; application roles are not fenced: a session that activates one (sp_setapprole) "
                        "writes with the role's permissions, which the fence's DENY to users does not touch: ");
            list(&d, approles);
        }
        if (!cfg->fence_passive)
            sy_tds_addf(&d, "; fence_passive = off: the passive side takes the application's writes");
        const char *fix = NULL;
        if (granted[0] != NULL)
            fix = "grant on SCHEMA::dbo or through db_datawriter instead of at database scope";
        else if (approles[0] != NULL)
            fix = "drop the application roles the application does not use, or keep applications that use one "
                  "away from the passive side (DENY INSERT, UPDATE, DELETE to the role there)";
        add(checks, failed, name, granted[0] != NULL || approles[0] != NULL || !cfg->fence_passive ? "warn" : "pass",
            sy_tds_sql(&d), fix);
    }
    sy_buf_fini(&d);
    sy_tds_strv_free(admin);
    sy_tds_strv_free(users);
    sy_tds_strv_free(granted);
    sy_tds_strv_free(approles);
}

int sy_sqlserver_precheck(const struct sy_pair_cfg *cfg, enum sy_direction dir, json_t *checks)
{
    bool failed = false;
    char db[80], err[1024], detail[1400], name[64];
    if (!sy_tds_pair_database(cfg, db, sizeof db, err, sizeof err)) {
        add(checks, &failed, "objects_configured", "fail", err, "name tables of one database in objects");
        return -1;
    }
    snprintf(detail, sizeof detail, "database %s", db);
    add(checks, &failed, "objects_configured", "pass", detail, NULL);
    struct side sides[2] = { { "business", &cfg->business, NULL, "" }, { "dr", &cfg->dr, NULL, "" } };
    for (int i = 0; i < 2; i++) {
        struct side *s = &sides[i];
        enum sy_tds_rc rc;
        snprintf(name, sizeof name, "%s_reachable", s->name);
        s->t = sy_tds_connect(cfg, s->ep, db, err, sizeof err, &rc);
        if (s->t == NULL) {
            snprintf(s->skip, sizeof s->skip, "%s", err);
            add(checks, &failed, name, "fail", err,
                "start the server, create the database and a login for admin_user with the right password");
            continue;
        }
        snprintf(detail, sizeof detail, "%s:%u database %s as %s", s->ep->host, s->ep->port, db, cfg->admin_user);
        add(checks, &failed, name, "pass", detail, NULL);
        bool on = false;
        snprintf(name, sizeof name, "%s_cdc_database", s->name);
        if (sy_tds_db_cdc_enabled(s->t, &on, err, sizeof err) != SY_TDS_OK)
            add(checks, &failed, name, "fail", err, "check the login's rights on sys.databases");
        else if (!on)
            add(checks, &failed, name, "fail", "change data capture is not enabled on the database",
                "run EXEC sys.sp_cdc_enable_db in the database");
        else
            add(checks, &failed, name, "pass", "change data capture is enabled", NULL);
        check_fence(cfg, s, checks, &failed);
    }
    struct side *src = &sides[dir == SY_DIR_FORWARD ? 0 : 1];
    if (src->t == NULL) {
        sy_check_add_skipped(checks, "source_tables", src->skip, dir == SY_DIR_FORWARD ? "business_reachable"
                                                                                       : "dr_reachable");
    } else {
        enum sy_tds_rc rc;
        char **tables = sy_tds_synced_tables(src->t, cfg, &rc, err, sizeof err);
        if (tables == NULL) {
            add(checks, &failed, "source_tables", "fail", err, "check the login's rights");
        } else {
            size_t n = 0;
            struct sy_buf nokey;
            sy_buf_init(&nokey);
            for (; tables[n] != NULL; n++) {
                char **keys = sy_tds_key_columns(src->t, tables[n], &rc, err, sizeof err);
                if (keys != NULL && keys[0] == NULL)
                    sy_tds_addf(&nokey, "%sdbo.%s", nokey.len ? ", " : "", tables[n]);
                sy_tds_strv_free(keys);
            }
            snprintf(detail, sizeof detail, "%zu table(s) of %s match objects on the %s side", n, db, src->name);
            add(checks, &failed, "source_tables", n ? "pass" : "warn", detail,
                n ? NULL : "create the tables, or correct objects");
            if (nokey.len)
                snprintf(detail, sizeof detail, "tables without a primary key: %s", sy_tds_sql(&nokey));
            add(checks, &failed, "source_keys", nokey.len ? "fail" : "pass",
                nokey.len ? detail : "every synchronized table has a primary key",
                nokey.len ? "add a PRIMARY KEY to each table named" : NULL);
            sy_buf_fini(&nokey);
            sy_tds_strv_free(tables);
            struct sy_tds_ci *cis = NULL;
            size_t ncis = 0;
            char *missing = NULL;
            bool on = false;
            if (sy_tds_capture_instances(src->t, cfg, &cis, &ncis, &missing, &on, err, sizeof err) != SY_TDS_OK) {
                add(checks, &failed, "source_cdc_tables", "fail", err, "check the login's rights on cdc.change_tables");
            } else if (!on) {
                sy_check_add_skipped(checks, "source_cdc_tables", "change data capture is not enabled",
                                     dir == SY_DIR_FORWARD ? "business_cdc_database" : "dr_cdc_database");
            } else if (missing != NULL && missing[0] != '\0') {
                snprintf(detail, sizeof detail, "tables without change data capture: %s", missing);
                add(checks, &failed, "source_cdc_tables", "fail", detail,
                    "run EXEC sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'<table>', "
                    "@role_name = NULL for each");
            } else {
                add(checks, &failed, "source_cdc_tables", "pass", "every synchronized table has a capture instance",
                    NULL);
            }
            free(missing);
            free(cis);
        }
    }
    add(checks, &failed, "capture_job", "pass",
        "on a real SQL Server the SQL Server Agent's CDC capture and cleanup jobs must run; keep the cleanup "
        "job's retention longer than retry_seconds (a collector whose LSN was cleaned up fails, never skips)",
        NULL);
    for (int i = 0; i < 2; i++)
        sy_tds_close(sides[i].t);
    return failed ? -1 : 0;
}
