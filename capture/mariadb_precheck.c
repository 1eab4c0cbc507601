/* The MariaDB precheck (ARCHITECTURE.md, reverse-instance rules 5 and 6; FINDINGS.md, binlog): one
 * blocking pass over both sides of a pair as admin_user that appends a {name, status, detail, fix}
 * object per check. It reads only (SHOW GRANTS, @@variables, information_schema) and changes
 * nothing. Privileges are judged from SHOW GRANTS of the account and its active role, not by
 * trying statements; SUPER is never required (10.11 split it: BINLOG REPLAY, READ ONLY ADMIN...).
 * A side that cannot be reached (or is not MariaDB) turns its dependent checks into "skipped". */
#include "capture/mariadb_precheck.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <errmsg.h>
#include <mysql.h>
#include <mysqld_error.h>

#include "core/checks.h"
#include "engine/mariadb_client.h"

#define CONNECT_TIMEOUT_S 5
#define MAX_ROLES 16 /* active role plus the roles granted to it, transitively */

/* ---- growable string ---------------------------------------------------------------------------- */

struct sbuf {
    char *s;    /* owned; NUL-terminated when non-NULL */
    size_t len; /* bytes before the NUL */
    size_t cap;
};

static void sb_vprintf(struct sbuf *b, const char *fmt, va_list ap) SY_PRINTF(2, 0);
static void sb_vprintf(struct sbuf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + (size_t)n + 1)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (s == NULL)
            return; /* out of memory: the text stays shorter, nothing else breaks */
        b->s = s;
        b->cap = cap;
    }
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    b->len += (size_t)n;
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) SY_PRINTF(2, 3);
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

/* Appends sep first unless b is empty: lists "a, b, c". */
static void sb_item(struct sbuf *b, const char *sep, const char *fmt, ...) SY_PRINTF(3, 4);
static void sb_item(struct sbuf *b, const char *sep, const char *fmt, ...)
{
    if (b->len > 0)
        sb_printf(b, "%s", sep);
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

static const char *sb_str(const struct sbuf *b)
{
    return b->s ? b->s : "";
}

static void sb_free(struct sbuf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

/* ---- the check list ----------------------------------------------------------------------------- */

struct run {
    const struct sy_pair_cfg *cfg; /* ref */
    json_t *checks;                /* ref: the caller's array */
    bool failed;                   /* a check with status "fail" was added */
};

static void add_check(struct run *r, const char *name, const char *status, const char *detail,
                      const char *fix)
{
    if (sy_check_add(r->checks, name, status, detail, fix))
        r->failed = true;
}

static void add_skipped(struct run *r, const char *name, const char *why, const char *see)
{
    sy_check_add_skipped(r->checks, name, why, see);
}

/* ---- one side of the pair ----------------------------------------------------------------------- */

struct side {
    const char *name;             /* "business" | "dr" */
    const struct sy_endpoint *ep; /* ref: the pair's config */
    char label[300];              /* "business 127.0.0.1:3306": how details name the server */
    MYSQL *m;                     /* owned; NULL when unreachable */
    bool usable;                  /* reachable and MariaDB: dependent checks may run */
    char skip[512];               /* why not usable, for the checks skipped because of it */
    char skip_see[32];            /* the check to fix first: "dr_reachable" */
    bool have_ids;                /* the four identity values below were read */
    char server_id[32];
    char hostname[256];
    char port[16];
    char datadir[512];
};

static void side_init(struct side *s, const char *name, const struct sy_endpoint *ep)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    s->ep = ep;
    if (strchr(ep->host, ':') != NULL)
        snprintf(s->label, sizeof s->label, "%s [%s]:%u", name, ep->host, ep->port);
    else
        snprintf(s->label, sizeof s->label, "%s %s:%u", name, ep->host, ep->port);
}

static int global_var(struct side *s, const char *var, char *out, size_t outlen, char *err, size_t errlen)
{
    bool found;
    return sy_mariadb_value(s->m, out, outlen, &found, err, errlen, "SELECT @@global.%s", var);
}

/* Rows of one statement; NULL + err on failure. */
static MYSQL_RES *query_rows(MYSQL *m, const char *sql, char *err, size_t errlen)
{
    if (mysql_real_query(m, sql, (unsigned long)strlen(sql)) != 0) {
        snprintf(err, errlen, "%u %s", mysql_errno(m), mysql_error(m));
        return NULL;
    }
    MYSQL_RES *res = mysql_store_result(m);
    if (res == NULL)
        snprintf(err, errlen, "%u %s", mysql_errno(m), mysql_errno(m) ? mysql_error(m) : "no result set");
    return res;
}

static void side_connect(struct run *r, struct side *s)
{
    char err[512], check[48];
    unsigned int eno = 0;
    snprintf(check, sizeof check, "%s_reachable", s->name);
    s->m = sy_mariadb_connect(s->ep, r->cfg, 0, CONNECT_TIMEOUT_S, &eno, err, sizeof err);
    if (s->m != NULL) {
        char detail[512];
        snprintf(detail, sizeof detail, "%s: connected as %s", s->label, r->cfg->admin_user);
        add_check(r, check, "pass", detail, NULL);
        return;
    }
    char detail[1024], fix[512];
    snprintf(detail, sizeof detail, "%s %s", s->name, err); /* err starts with "host:port: " */
    switch (eno) {
    case ER_ACCESS_DENIED_ERROR:
    case ER_DBACCESS_DENIED_ERROR:
        snprintf(fix, sizeof fix, "check admin_user/admin_password in [pair %s]: the account must exist on "
                 "%s for the host Switchyard connects from", r->cfg->name, s->label);
        break;
    case ER_CON_COUNT_ERROR:
        snprintf(fix, sizeof fix, "raise max_connections on %s", s->label);
        break;
    case ER_HOST_IS_BLOCKED:
        snprintf(fix, sizeof fix, "run FLUSH HOSTS on %s (or raise max_connect_errors)", s->label);
        break;
    default:
        snprintf(fix, sizeof fix, "start the server, or correct `%s` in [pair %s]", s->name, r->cfg->name);
        break;
    }
    add_check(r, check, "fail", detail, fix);
    snprintf(s->skip, sizeof s->skip, "%s is unreachable", s->label);
    snprintf(s->skip_see, sizeof s->skip_see, "%s_reachable", s->name);
}

static void side_check_engine(struct run *r, struct side *s)
{
    char check[48], version[256], err[512], detail[1024];
    snprintf(check, sizeof check, "%s_engine", s->name);
    if (s->m == NULL) {
        add_skipped(r, check, s->skip, s->skip_see);
        return;
    }
    snprintf(s->skip_see, sizeof s->skip_see, "%s_engine", s->name);
    if (global_var(s, "version", version, sizeof version, err, sizeof err) != 0) {
        snprintf(detail, sizeof detail, "%s: cannot read @@version: %s", s->label, err);
        add_check(r, check, "fail", detail, "make sure admin_user can run SELECT @@version");
        snprintf(s->skip, sizeof s->skip, "%s: cannot read @@version", s->label);
        return;
    }
    if (strstr(version, "MariaDB") == NULL) {
        char fix[512];
        snprintf(detail, sizeof detail, "%s runs %s: MySQL is not supported (engine mysql is reserved)",
                 s->label, version);
        snprintf(fix, sizeof fix, "point `%s` of [pair %s] at a MariaDB server", s->name, r->cfg->name);
        add_check(r, check, "fail", detail, fix);
        snprintf(s->skip, sizeof s->skip, "%s is not MariaDB", s->label);
        return;
    }
    snprintf(detail, sizeof detail, "%s: %s", s->label, version);
    add_check(r, check, "pass", detail, NULL);
    s->usable = true;

    /* Identity, for the server-id and same-server checks. */
    s->have_ids = global_var(s, "server_id", s->server_id, sizeof s->server_id, err, sizeof err) == 0 &&
                  global_var(s, "hostname", s->hostname, sizeof s->hostname, err, sizeof err) == 0 &&
                  global_var(s, "port", s->port, sizeof s->port, err, sizeof err) == 0 &&
                  global_var(s, "datadir", s->datadir, sizeof s->datadir, err, sizeof err) == 0;
}

/* ---- checks on configuration and identity ------------------------------------------------------- */

static void check_objects(struct run *r)
{
    const struct sy_pair_cfg *cfg = r->cfg;
    if (cfg->n_objects == 0) {
        char fix[256];
        snprintf(fix, sizeof fix, "set objects in [pair %s], e.g. objects = shop.*, crm.customers",
                 cfg->name);
        add_check(r, "objects_configured", "fail", "objects is empty: nothing to synchronize", fix);
        return;
    }
    struct sbuf b = { 0 };
    sb_printf(&b, "%zu pattern%s: ", cfg->n_objects, cfg->n_objects == 1 ? "" : "s");
    for (size_t i = 0; i < cfg->n_objects; i++)
        sb_printf(&b, "%s%s.%s", i ? ", " : "", cfg->objects[i].db, cfg->objects[i].table);
    add_check(r, "objects_configured", "pass", sb_str(&b), NULL);
    sb_free(&b);
}

struct id_entry {
    char what[340]; /* "business 127.0.0.1:3306 @@server_id", "writer_tag" */
    unsigned long long id;
    bool known;
    bool is_cfg;    /* collector_server_id or writer_tag: fixed in the ini */
};

static void check_server_ids(struct run *r, struct side *sides)
{
    struct id_entry e[4];
    memset(e, 0, sizeof e);
    struct sbuf skipped = { 0 }, see = { 0 };
    for (int i = 0; i < 2; i++) {
        snprintf(e[i].what, sizeof e[i].what, "%s server_id", sides[i].label);
        e[i].known = sides[i].have_ids;
        if (e[i].known)
            e[i].id = strtoull(sides[i].server_id, NULL, 10);
        else {
            sb_item(&skipped, "; ", "%s", sides[i].usable ? sides[i].label : sides[i].skip);
            sb_item(&see, " and ", "%s", sides[i].usable ? "distinct_servers" : sides[i].skip_see);
        }
    }
    snprintf(e[2].what, sizeof e[2].what, "collector_server_id");
    e[2].id = r->cfg->collector_server_id;
    snprintf(e[3].what, sizeof e[3].what, "writer_tag");
    e[3].id = r->cfg->writer_tag;
    e[2].known = e[3].known = e[2].is_cfg = e[3].is_cfg = true;

    struct sbuf clash = { 0 };
    bool cfg_clash = false, server_clash = false;
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (e[i].known && e[j].known && e[i].id == e[j].id) {
                /* the ini's id first: "writer_tag 10 = business 127.0.0.1:3306 server_id" */
                const struct id_entry *a = e[j].is_cfg && !e[i].is_cfg ? &e[j] : &e[i];
                sb_item(&clash, "; ", "%s %llu = %s", a->what, a->id, a == &e[i] ? e[j].what : e[i].what);
                if (e[i].is_cfg || e[j].is_cfg)
                    cfg_clash = true;
                else
                    server_clash = true;
            }
    struct sbuf d = { 0 };
    if (clash.len > 0) {
        struct sbuf fix = { 0 };
        if (cfg_clash)
            sb_item(&fix, "; ", "set collector_server_id and writer_tag in [pair %s] to ids no server uses "
                    "and that differ from each other", r->cfg->name);
        if (server_clash)
            sb_item(&fix, "; ", "give business and dr their own server_id (SET GLOBAL server_id = N, and "
                    "server_id = N under [mariadbd] in my.cnf)");
        sb_printf(&d, "%s", sb_str(&clash));
        add_check(r, "server_ids", "fail", sb_str(&d), sb_str(&fix));
        sb_free(&fix);
    } else {
        for (int i = 0; i < 4; i++)
            if (e[i].known)
                sb_item(&d, ", ", "%s %llu", e[i].what, e[i].id);
        sb_printf(&d, ": distinct");
        if (skipped.len > 0) {
            sb_printf(&d, "; not compared: %s", sb_str(&skipped));
            struct sbuf fix = { 0 };
            sb_printf(&fix, "fix %s first, then run the precheck again", sb_str(&see));
            add_check(r, "server_ids", "warn", sb_str(&d), sb_str(&fix));
            sb_free(&fix);
        } else {
            add_check(r, "server_ids", "pass", sb_str(&d), NULL);
        }
    }
    sb_free(&d);
    sb_free(&clash);
    sb_free(&skipped);
    sb_free(&see);
}

static void check_distinct_servers(struct run *r, struct side *b, struct side *d)
{
    char detail[2048];
    for (struct side *s = b; s != NULL; s = s == b ? d : NULL)
        if (!s->usable) {
            add_skipped(r, "distinct_servers", s->skip, s->skip_see);
            return;
        }
    if (!b->have_ids || !d->have_ids) {
        snprintf(detail, sizeof detail, "cannot read @@server_id/@@hostname/@@port/@@datadir on %s",
                 b->have_ids ? d->label : b->label);
        add_check(r, "distinct_servers", "warn", detail, "make sure admin_user can read these variables");
        return;
    }
    if (strcmp(b->server_id, d->server_id) == 0 && strcmp(b->hostname, d->hostname) == 0 &&
        strcmp(b->port, d->port) == 0 && strcmp(b->datadir, d->datadir) == 0) {
        char fix[256];
        snprintf(detail, sizeof detail, "%s and %s are the same server (server_id %s, %s:%s, datadir %s)",
                 b->label, d->label, b->server_id, b->hostname, b->port, b->datadir);
        snprintf(fix, sizeof fix, "point `dr` of [pair %s] at the DR server: business and dr must be two "
                 "servers", r->cfg->name);
        add_check(r, "distinct_servers", "fail", detail, fix);
        return;
    }
    snprintf(detail, sizeof detail, "business is %s:%s (server_id %s), dr is %s:%s (server_id %s)",
             b->hostname, b->port, b->server_id, d->hostname, d->port, d->server_id);
    add_check(r, "distinct_servers", "pass", detail, NULL);
}

/* ---- binlog of the source ----------------------------------------------------------------------- */

/* One @@global variable of the source that must have a given value. */
static void check_source_var(struct run *r, struct side *src, const char *check, const char *var,
                             const char *want, const char *fix)
{
    char val[128], err[512], detail[1024];
    if (!src->usable) {
        add_skipped(r, check, src->skip, src->skip_see);
        return;
    }
    if (global_var(src, var, val, sizeof val, err, sizeof err) != 0) {
        snprintf(detail, sizeof detail, "%s (source): cannot read @@global.%s: %s", src->label, var, err);
        add_check(r, check, "fail", detail, fix);
        return;
    }
    bool is_bool = strcmp(want, "ON") == 0;
    bool ok = is_bool ? strcmp(val, "1") == 0 || strcasecmp(val, "ON") == 0 : strcasecmp(val, want) == 0;
    const char *shown = is_bool ? (strcmp(val, "1") == 0 || strcasecmp(val, "ON") == 0 ? "ON" : "OFF") : val;
    if (ok) {
        snprintf(detail, sizeof detail, "%s (source): %s=%s", src->label, var, shown);
        add_check(r, check, "pass", detail, NULL);
    } else {
        snprintf(detail, sizeof detail, "%s (source): %s=%s, needs %s", src->label, var, shown, want);
        add_check(r, check, "fail", detail, fix);
    }
}

static void check_binlog(struct run *r, struct side *src)
{
    char fix[1024];
    snprintf(fix, sizeof fix, "log_bin cannot be set at runtime: add log_bin = binlog under [mariadbd] in "
             "my.cnf of %s and restart it", src->label);
    check_source_var(r, src, "log_bin", "log_bin", "ON", fix);

    static const struct { const char *var, *want; bool session; } vars[] = {
        { "binlog_format", "ROW", true },
        { "binlog_row_image", "FULL", true },
        { "binlog_row_metadata", "FULL", false },
    };
    for (size_t i = 0; i < SY_ARRAY_LEN(vars); i++) {
        snprintf(fix, sizeof fix, "SET GLOBAL %s = '%s'; and %s = %s under [mariadbd] in my.cnf of %s%s",
                 vars[i].var, vars[i].want, vars[i].var, vars[i].want, src->label,
                 vars[i].session ? " (sessions already open keep their value until they reconnect)" : "");
        check_source_var(r, src, vars[i].var, vars[i].var, vars[i].want, fix);
    }

    /* Retention (rule 6): binlogs purged sooner than the retry window lose a stalled collector. */
    if (!src->usable) {
        add_skipped(r, "binlog_retention", src->skip, src->skip_see);
        return;
    }
    char val[64], err[512], detail[1024];
    const char *var = "binlog_expire_logs_seconds";
    double seconds;
    if (global_var(src, var, val, sizeof val, err, sizeof err) == 0) {
        seconds = strtod(val, NULL);
    } else {
        var = "expire_logs_days";
        if (global_var(src, var, val, sizeof val, err, sizeof err) != 0) {
            snprintf(detail, sizeof detail, "%s (source): cannot read the binlog retention: %s", src->label,
                     err);
            add_check(r, "binlog_retention", "warn", detail, "make sure admin_user can read "
                      "@@binlog_expire_logs_seconds");
            return;
        }
        seconds = strtod(val, NULL) * 86400.0;
    }
    long long secs = (long long)seconds;
    if (secs <= 0) {
        snprintf(detail, sizeof detail, "%s (source): %s=%s: binlogs are never purged automatically",
                 src->label, var, val);
        add_check(r, "binlog_retention", "pass", detail, NULL);
    } else if (secs < r->cfg->retry_seconds) {
        snprintf(detail, sizeof detail,
                 "%s (source): binlogs kept %lld s (%s=%s), shorter than retry_seconds=%d", src->label, secs,
                 var, val, r->cfg->retry_seconds);
        snprintf(fix, sizeof fix, "SET GLOBAL binlog_expire_logs_seconds = %d; and "
                 "binlog_expire_logs_seconds = %d under [mariadbd] in my.cnf of %s (or more), or lower "
                 "retry_seconds in [pair %s]",
                 r->cfg->retry_seconds, r->cfg->retry_seconds, src->label, r->cfg->name);
        add_check(r, "binlog_retention", "warn", detail, fix);
    } else {
        snprintf(detail, sizeof detail, "%s (source): binlogs kept %lld s (%s=%s), retry_seconds=%d",
                 src->label, secs, var, val, r->cfg->retry_seconds);
        add_check(r, "binlog_retention", "pass", detail, NULL);
    }
}

/* ---- privileges --------------------------------------------------------------------------------- */

enum {
    PV_SELECT = 1u << 0,
    PV_INSERT = 1u << 1,
    PV_UPDATE = 1u << 2,
    PV_DELETE = 1u << 3,
    PV_CREATE = 1u << 4,
    PV_DROP = 1u << 5,
    PV_ALTER = 1u << 6,
    PV_INDEX = 1u << 7,
    PV_REPLICATION_SLAVE = 1u << 8,
    PV_BINLOG_MONITOR = 1u << 9,
    PV_BINLOG_REPLAY = 1u << 10,
    PV_READ_ONLY_ADMIN = 1u << 11,
    PV_ALL = (1u << 12) - 1,
};

/* What the destination's writer does on the objects and on the checkpoint schema: replay rows
 * (UPDATE/DELETE ... WHERE key also need SELECT), replay DDL (CREATE INDEX needs INDEX). */
#define PV_DEST_OBJECTS \
    (PV_SELECT | PV_INSERT | PV_UPDATE | PV_DELETE | PV_CREATE | PV_DROP | PV_ALTER | PV_INDEX)

static const struct {
    unsigned bit;
    const char *name; /* as in GRANT; SHOW GRANTS spells the last one READ_ONLY ADMIN */
} priv_names[] = {
    { PV_SELECT, "SELECT" }, { PV_INSERT, "INSERT" }, { PV_UPDATE, "UPDATE" }, { PV_DELETE, "DELETE" },
    { PV_CREATE, "CREATE" }, { PV_DROP, "DROP" }, { PV_ALTER, "ALTER" }, { PV_INDEX, "INDEX" },
    { PV_REPLICATION_SLAVE, "REPLICATION SLAVE" }, { PV_BINLOG_MONITOR, "BINLOG MONITOR" },
    { PV_BINLOG_REPLAY, "BINLOG REPLAY" }, { PV_READ_ONLY_ADMIN, "READ ONLY ADMIN" },
};

enum grant_level { GL_GLOBAL, GL_DB, GL_TABLE };

struct grant {
    enum grant_level level;
    char db[160];    /* GL_DB: a LIKE pattern as SHOW GRANTS prints it (`shop\_x`: \ escapes _ and %) */
    char table[160]; /* GL_TABLE only */
    unsigned privs;  /* PV_* bits; column-level grants are not counted */
};

struct grants {
    struct grant *v; /* owned */
    size_t n, cap;
};

static unsigned priv_bit(const char *tok, size_t len)
{
    char name[64];
    if (len == 0 || len >= sizeof name)
        return 0;
    for (size_t i = 0; i < len; i++)
        name[i] = tok[i] == '_' ? ' ' : (char)toupper((unsigned char)tok[i]);
    name[len] = '\0';
    if (strcmp(name, "ALL") == 0 || strcmp(name, "ALL PRIVILEGES") == 0)
        return PV_ALL;
    if (strcmp(name, "REPLICATION CLIENT") == 0) /* an alias of BINLOG MONITOR since 10.5 */
        return PV_BINLOG_MONITOR;
    for (size_t i = 0; i < SY_ARRAY_LEN(priv_names); i++)
        if (strcmp(name, priv_names[i].name) == 0)
            return priv_names[i].bit;
    return 0;
}

/* `name` (backticks, `` inside) or a bare word up to '.', ' ' or NUL. */
static bool read_ident(const char **pp, char *out, size_t outlen)
{
    const char *p = *pp;
    size_t o = 0;
    if (*p == '`') {
        for (p++;; p++) {
            if (*p == '\0')
                return false;
            if (*p == '`') {
                if (p[1] != '`')
                    break;
                p++;
            }
            if (o + 1 >= outlen)
                return false;
            out[o++] = *p;
        }
        p++;
    } else {
        while (*p && *p != '.' && *p != ' ') {
            if (o + 1 >= outlen)
                return false;
            out[o++] = *p++;
        }
        if (o == 0)
            return false;
    }
    out[o] = '\0';
    *pp = p;
    return true;
}

/* One line of SHOW GRANTS. 1: *g filled; 2: a role grant ("GRANT `r` TO ..."), name in role; 0: ignored
 * (PROXY, routines, column-only grants, SET DEFAULT ROLE, anything unexpected). */
static int grant_parse(const char *line, struct grant *g, char *role, size_t rolelen)
{
    if (strncasecmp(line, "GRANT ", 6) != 0)
        return 0;
    const char *privs = line + 6, *p = privs, *on = NULL;
    int depth = 0;
    bool quoted = false;
    for (; *p; p++) {
        if (quoted) {
            if (*p == '`') {
                if (p[1] == '`')
                    p++;
                else
                    quoted = false;
            }
            continue;
        }
        if (*p == '`')
            quoted = true;
        else if (*p == '(')
            depth++;
        else if (*p == ')')
            depth--;
        else if (depth == 0 && strncmp(p, " ON ", 4) == 0) {
            on = p;
            break;
        } else if (depth == 0 && strncmp(p, " TO ", 4) == 0) {
            const char *q = privs;
            return read_ident(&q, role, rolelen) && q == p ? 2 : 0;
        }
    }
    if (on == NULL)
        return 0;

    memset(g, 0, sizeof *g);
    const char *tok = privs;
    depth = 0;
    quoted = false;
    for (p = privs; p <= on; p++) {
        if (p < on && quoted) {
            if (*p == '`')
                quoted = false;
            continue;
        }
        if (p < on && *p == '`') {
            quoted = true;
        } else if (p < on && *p == '(') {
            depth++;
        } else if (p < on && *p == ')') {
            depth--;
        } else if (p == on || (depth == 0 && *p == ',')) {
            const char *end = p;
            while (tok < end && *tok == ' ')
                tok++;
            while (end > tok && end[-1] == ' ')
                end--;
            if (memchr(tok, '(', (size_t)(end - tok)) == NULL) /* "SELECT (`a`)": column-level only */
                g->privs |= priv_bit(tok, (size_t)(end - tok));
            tok = p + 1;
        }
    }

    const char *t = on + 4;
    if (strncmp(t, "*.*", 3) == 0) {
        g->level = GL_GLOBAL;
        return 1;
    }
    if (strncasecmp(t, "PROCEDURE ", 10) == 0 || strncasecmp(t, "FUNCTION ", 9) == 0 ||
        strncasecmp(t, "PACKAGE ", 8) == 0)
        return 0;
    if (!read_ident(&t, g->db, sizeof g->db) || *t++ != '.')
        return 0;
    if (*t == '*') {
        g->level = GL_DB;
        return 1;
    }
    if (!read_ident(&t, g->table, sizeof g->table))
        return 0;
    g->level = GL_TABLE;
    return 1;
}

static void grants_add(struct grants *gs, const struct grant *g)
{
    if (gs->n == gs->cap) {
        size_t cap = gs->cap ? gs->cap * 2 : 16;
        struct grant *v = realloc(gs->v, cap * sizeof *v);
        if (v == NULL)
            return;
        gs->v = v;
        gs->cap = cap;
    }
    gs->v[gs->n++] = *g;
}

/* SQL LIKE with \ escapes, as db-level grants match database names. */
static bool like_match(const char *p, const char *s)
{
    for (; *p; p++, s++) {
        if (*p == '%') {
            while (p[1] == '%')
                p++;
            for (;; s++) {
                if (like_match(p + 1, s))
                    return true;
                if (*s == '\0')
                    return false;
            }
        }
        if (*p == '\\' && p[1] != '\0') {
            p++;
            if (*s != *p)
                return false;
            continue;
        }
        if (*s == '\0' || (*p != '_' && *p != *s))
            return false;
    }
    return *s == '\0';
}

static bool has_wildcard(const char *p)
{
    for (; *p; p++) {
        if (*p == '\\' && p[1] != '\0')
            p++;
        else if (*p == '%' || *p == '_')
            return true;
    }
    return false;
}

static unsigned privs_global(const struct grants *gs)
{
    unsigned p = 0;
    for (size_t i = 0; i < gs->n; i++)
        if (gs->v[i].level == GL_GLOBAL)
            p |= gs->v[i].privs;
    return p;
}

/* Privileges on db.table (table "*": on the whole database). The server uses the most specific
 * matching db-level row; approximated here: an exact database name wins over wildcard patterns,
 * whose privileges are otherwise added up. */
static unsigned privs_on(const struct grants *gs, const char *db, const char *table)
{
    unsigned p = privs_global(gs), exact = 0, wild = 0;
    bool have_exact = false;
    for (size_t i = 0; i < gs->n; i++) {
        const struct grant *g = &gs->v[i];
        if (g->level == GL_DB && like_match(g->db, db)) {
            if (has_wildcard(g->db)) {
                wild |= g->privs;
            } else {
                exact |= g->privs;
                have_exact = true;
            }
        } else if (g->level == GL_TABLE && strcmp(table, "*") != 0 && strcmp(g->db, db) == 0 &&
                   strcmp(g->table, table) == 0) {
            p |= g->privs;
        }
    }
    return p | (have_exact ? exact : wild);
}

static void sb_privs(struct sbuf *b, unsigned bits)
{
    bool first = true;
    for (size_t i = 0; i < SY_ARRAY_LEN(priv_names); i++)
        if (bits & priv_names[i].bit) {
            sb_printf(b, "%s%s", first ? "" : ", ", priv_names[i].name);
            first = false;
        }
}

/* 'user'@'host' from CURRENT_USER()'s "user@host". */
static void account_sql(const char *current_user, char *out, size_t outlen)
{
    const char *at = strrchr(current_user, '@');
    size_t ulen = at ? (size_t)(at - current_user) : strlen(current_user), o = 0;
    const char *host = at ? at + 1 : "%";
    for (int part = 0; part < 2; part++) {
        const char *s = part == 0 ? current_user : host;
        size_t len = part == 0 ? ulen : strlen(host);
        if (part == 1 && o + 1 < outlen)
            out[o++] = '@';
        if (o + 1 < outlen)
            out[o++] = '\'';
        for (size_t i = 0; i < len && o + 3 < outlen; i++) {
            if (s[i] == '\'' || s[i] == '\\')
                out[o++] = s[i] == '\'' ? '\'' : '\\';
            out[o++] = s[i];
        }
        if (o + 1 < outlen)
            out[o++] = '\'';
    }
    out[o < outlen ? o : outlen - 1] = '\0';
}

/* The grants in force for this connection: the account's, plus its active role's (transitively). */
static int grants_fetch(struct side *s, struct grants *gs, char *account, size_t accountlen, char *err,
                        size_t errlen)
{
    char user[512], roles[MAX_ROLES][130];
    size_t n_roles = 0;
    bool found;
    if (sy_mariadb_value(s->m, user, sizeof user, &found, err, errlen, "SELECT CURRENT_USER()") != 0)
        return -1;
    account_sql(user, account, accountlen);
    if (sy_mariadb_value(s->m, roles[0], sizeof roles[0], &found, err, errlen, "SELECT CURRENT_ROLE()") != 0)
        return -1;
    if (found && roles[0][0] != '\0')
        n_roles = 1;

    for (size_t k = 0; k <= n_roles; k++) {
        char sql[340], q[300];
        if (k == 0) {
            snprintf(sql, sizeof sql, "SHOW GRANTS FOR CURRENT_USER()");
        } else {
            sy_mariadb_quote_ident(roles[k - 1], q, sizeof q);
            snprintf(sql, sizeof sql, "SHOW GRANTS FOR %s", q);
        }
        MYSQL_RES *res = query_rows(s->m, sql, err, errlen);
        if (res == NULL) {
            if (k == 0)
                return -1;
            continue; /* a nested role we may not inspect: judge without it */
        }
        MYSQL_ROW row;
        while ((row = mysql_fetch_row(res)) != NULL) {
            if (row[0] == NULL)
                continue;
            struct grant g;
            char role[130];
            int kind = grant_parse(row[0], &g, role, sizeof role);
            if (kind == 1) {
                grants_add(gs, &g);
            } else if (kind == 2 && k > 0 && n_roles < MAX_ROLES) { /* a role granted to an active role */
                bool seen = false;
                for (size_t i = 0; i < n_roles; i++)
                    seen = seen || strcmp(roles[i], role) == 0;
                if (!seen)
                    snprintf(roles[n_roles++], sizeof roles[0], "%s", role);
            }
        }
        mysql_free_result(res);
    }
    return 0;
}

/* One thing the account must be allowed to do somewhere. */
struct need {
    char target[140];     /* as details print it: "*.*", "shop.*", "mysql.global_priv" */
    char target_sql[300]; /* as GRANT takes it: *.*, `shop`.*, `mysql`.`global_priv` */
    char db[65], table[65]; /* "" for *.* */
    unsigned bits;
};

/* `db` for a db-level GRANT: _ and % escaped (else they are wildcards), backticks doubled. */
static void grant_db_ident(const char *db, char *out, size_t outlen)
{
    char esc[140];
    size_t o = 0;
    for (const char *p = db; *p && o + 2 < sizeof esc; p++) {
        if (*p == '_' || *p == '%')
            esc[o++] = '\\';
        esc[o++] = *p;
    }
    esc[o] = '\0';
    sy_mariadb_quote_ident(esc, out, outlen);
}

static void need_set(struct need *n, const char *db, const char *table, unsigned bits)
{
    memset(n, 0, sizeof *n);
    n->bits = bits;
    if (db == NULL) {
        snprintf(n->target, sizeof n->target, "*.*");
        snprintf(n->target_sql, sizeof n->target_sql, "*.*");
        return;
    }
    snprintf(n->db, sizeof n->db, "%s", db);
    snprintf(n->table, sizeof n->table, "%s", table);
    snprintf(n->target, sizeof n->target, "%s.%s", db, table);
    char qd[140], qt[140];
    if (strcmp(table, "*") == 0) {
        grant_db_ident(db, qd, sizeof qd);
        snprintf(n->target_sql, sizeof n->target_sql, "%s.*", qd);
    } else {
        sy_mariadb_quote_ident(db, qd, sizeof qd);
        sy_mariadb_quote_ident(table, qt, sizeof qt);
        snprintf(n->target_sql, sizeof n->target_sql, "%s.%s", qd, qt);
    }
}

/* The needs of a role: *n_out entries in a calloc'ed array (NULL when out of memory): the global
 * one first, the object patterns in [*obj_begin, *obj_end), then mysql.global_priv or the schema. */
static struct need *needs_build(const struct sy_pair_cfg *cfg, bool source, size_t *n_out, size_t *obj_begin,
                                size_t *obj_end)
{
    struct need *v = calloc(cfg->n_objects + 3, sizeof *v);
    size_t n = 0;
    if (v == NULL)
        return NULL;
    need_set(&v[n++], NULL, NULL,
             source ? PV_REPLICATION_SLAVE | PV_BINLOG_MONITOR : PV_BINLOG_REPLAY | PV_READ_ONLY_ADMIN);
    *obj_begin = n;
    unsigned obj_bits = source ? PV_SELECT : PV_DEST_OBJECTS;
    for (size_t i = 0; i < cfg->n_objects; i++) {
        const struct sy_object_pattern *o = &cfg->objects[i];
        bool covered = false; /* db.t when db.* is listed too */
        for (size_t j = 0; j < cfg->n_objects && strcmp(o->table, "*") != 0; j++)
            covered = covered ||
                      (strcmp(cfg->objects[j].db, o->db) == 0 && strcmp(cfg->objects[j].table, "*") == 0);
        if (!covered)
            need_set(&v[n++], o->db, o->table, obj_bits);
    }
    *obj_end = n;
    if (source)
        need_set(&v[n++], "mysql", "global_priv", PV_SELECT); /* the proxy's auth reads the account hashes */
    else
        need_set(&v[n++], SY_SCHEMA, "*", PV_DEST_OBJECTS); /* checkpoints */
    *n_out = n;
    return v;
}

/* source_privileges / destination_privileges. *sees_objects: the account has some privilege on every
 * object pattern, so information_schema shows it its tables (else the table checks would pass on
 * nothing). */
static void check_privileges(struct run *r, struct side *s, bool source, bool *sees_objects)
{
    const char *check = source ? "source_privileges" : "destination_privileges";
    const char *role = source ? "source" : "destination";
    *sees_objects = false;
    if (!s->usable) {
        add_skipped(r, check, s->skip, s->skip_see);
        return;
    }
    struct grants gs = { 0 };
    char account[600], err[512];
    struct sbuf detail = { 0 }, fix = { 0 };
    size_t n = 0, ob = 0, oe = 0;
    struct need *needs = NULL;
    if (grants_fetch(s, &gs, account, sizeof account, err, sizeof err) != 0) {
        sb_printf(&detail, "%s (%s): cannot read SHOW GRANTS FOR CURRENT_USER(): %s", s->label, role, err);
        add_check(r, check, "fail", sb_str(&detail), "make sure admin_user can connect and run SHOW GRANTS");
        goto out;
    }
    if ((needs = needs_build(r->cfg, source, &n, &ob, &oe)) == NULL) {
        add_check(r, check, "fail", "out of memory", "retry");
        goto out;
    }
    *sees_objects = true;
    for (size_t i = 0; i < n; i++) {
        struct need *nd = &needs[i];
        unsigned have = nd->db[0] ? privs_on(&gs, nd->db, nd->table) : privs_global(&gs);
        unsigned missing = nd->bits & ~have;
        if (i >= ob && i < oe && (have & PV_DEST_OBJECTS) == 0)
            *sees_objects = false;
        if (missing == 0)
            continue;
        if (detail.len > 0)
            sb_printf(&detail, "; ");
        sb_privs(&detail, missing);
        sb_printf(&detail, " on %s", nd->target);
        sb_item(&fix, " ", "GRANT ");
        sb_privs(&fix, missing);
        sb_printf(&fix, " ON %s TO %s;", nd->target_sql, account);
    }
    if (detail.len > 0) {
        struct sbuf d = { 0 };
        sb_printf(&d, "%s (%s): %s lacks %s", s->label, role, account, sb_str(&detail));
        add_check(r, check, "fail", sb_str(&d), sb_str(&fix));
        sb_free(&d);
    } else {
        sb_printf(&detail, "%s (%s): %s has %s", s->label, role, account,
                  source ? "REPLICATION SLAVE, BINLOG MONITOR, SELECT on the objects and on mysql.global_priv"
                         : "BINLOG REPLAY, READ ONLY ADMIN, and SELECT, INSERT, UPDATE, DELETE, CREATE, "
                           "DROP, ALTER, INDEX on the objects and on " SY_SCHEMA ".*");
        add_check(r, check, "pass", sb_str(&detail), NULL);
    }
out:
    free(needs);
    free(gs.v);
    sb_free(&detail);
    sb_free(&fix);
}

/* ---- synchronized tables ------------------------------------------------------------------------ */

/* "'shop','crm'": the distinct databases of the objects, as SQL strings. */
static void sb_object_dbs(struct sbuf *b, MYSQL *m, const struct sy_pair_cfg *cfg)
{
    for (size_t i = 0; i < cfg->n_objects; i++) {
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            dup = dup || strcmp(cfg->objects[j].db, cfg->objects[i].db) == 0;
        if (dup)
            continue;
        char esc[2 * sizeof cfg->objects[i].db + 1];
        mysql_real_escape_string(m, esc, cfg->objects[i].db, (unsigned long)strlen(cfg->objects[i].db));
        sb_item(b, ",", "'%s'", esc);
    }
}

static void check_tables(struct run *r, struct side *src, bool src_sees, struct side *dst, bool dst_sees)
{
    static const char *const src_checks[] = { "object_databases", "primary_keys", "innodb_tables" };
    const struct sy_pair_cfg *cfg = r->cfg;
    char why[1400], see[32];
    struct sbuf sql = { 0 }, dbs = { 0 }, missing = { 0 }, nokey = { 0 }, other = { 0 }, trig = { 0 };
    MYSQL_RES *res = NULL;
    char err[512];

    /* Source side: databases and tables of the objects. */
    why[0] = '\0';
    if (cfg->n_objects == 0) {
        snprintf(why, sizeof why, "objects is empty");
        snprintf(see, sizeof see, "objects_configured");
    } else if (!src->usable) {
        snprintf(why, sizeof why, "%s", src->skip);
        snprintf(see, sizeof see, "%s", src->skip_see);
    } else if (!src_sees) {
        snprintf(why, sizeof why, "admin_user cannot see the objects on %s", src->label);
        snprintf(see, sizeof see, "source_privileges");
    }
    if (why[0] != '\0') {
        for (size_t i = 0; i < SY_ARRAY_LEN(src_checks); i++)
            add_skipped(r, src_checks[i], why, see);
        goto dest;
    }

    bool db_seen[SY_MAX_OBJECTS] = { false }, table_seen[SY_MAX_OBJECTS] = { false };
    sb_object_dbs(&dbs, src->m, cfg);
    sb_printf(&sql, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (%s)",
              sb_str(&dbs));
    if ((res = query_rows(src->m, sb_str(&sql), err, sizeof err)) == NULL) {
        snprintf(why, sizeof why, "%s (source): cannot list databases: %s", src->label, err);
        for (size_t i = 0; i < SY_ARRAY_LEN(src_checks); i++)
            add_check(r, src_checks[i], "fail", why, "make sure admin_user can read information_schema");
        goto dest;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL)
        for (size_t i = 0; i < cfg->n_objects; i++)
            db_seen[i] = db_seen[i] || (row[0] != NULL && strcmp(row[0], cfg->objects[i].db) == 0);
    mysql_free_result(res);

    /* Base tables with a flag: has a unique key whose columns are all NOT NULL (PRIMARY included). */
    sql.len = 0;
    sb_printf(&sql,
              "SELECT t.TABLE_SCHEMA, t.TABLE_NAME, IFNULL(t.ENGINE, ''), k.TABLE_NAME IS NOT NULL "
              "FROM information_schema.TABLES t LEFT JOIN ("
              " SELECT DISTINCT u.TABLE_SCHEMA, u.TABLE_NAME FROM ("
              "  SELECT s.TABLE_SCHEMA, s.TABLE_NAME FROM information_schema.STATISTICS s"
              "  JOIN information_schema.COLUMNS c ON c.TABLE_SCHEMA = s.TABLE_SCHEMA"
              "   AND c.TABLE_NAME = s.TABLE_NAME AND c.COLUMN_NAME = s.COLUMN_NAME"
              "  WHERE s.NON_UNIQUE = 0 AND s.TABLE_SCHEMA IN (%s)"
              "  GROUP BY s.TABLE_SCHEMA, s.TABLE_NAME, s.INDEX_NAME"
              "  HAVING SUM(c.IS_NULLABLE = 'YES') = 0) u) k"
              " ON k.TABLE_SCHEMA = t.TABLE_SCHEMA AND k.TABLE_NAME = t.TABLE_NAME "
              "WHERE t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') AND t.TABLE_SCHEMA IN (%s) "
              "ORDER BY t.TABLE_SCHEMA, t.TABLE_NAME",
              sb_str(&dbs), sb_str(&dbs));
    if ((res = query_rows(src->m, sb_str(&sql), err, sizeof err)) == NULL) {
        snprintf(why, sizeof why, "%s (source): cannot list tables: %s", src->label, err);
        for (size_t i = 0; i < SY_ARRAY_LEN(src_checks); i++)
            add_check(r, src_checks[i], "fail", why, "make sure admin_user can read information_schema");
        goto dest;
    }
    size_t n_tables = 0;
    while ((row = mysql_fetch_row(res)) != NULL) {
        if (row[0] == NULL || row[1] == NULL || !sy_objects_match(cfg, row[0], row[1]))
            continue;
        n_tables++;
        for (size_t i = 0; i < cfg->n_objects; i++)
            if (strcmp(cfg->objects[i].db, row[0]) == 0 && strcmp(cfg->objects[i].table, row[1]) == 0)
                table_seen[i] = true;
        if (row[3] == NULL || strcmp(row[3], "1") != 0)
            sb_item(&nokey, ", ", "%s.%s", row[0], row[1]);
        if (row[2] == NULL || strcasecmp(row[2], "InnoDB") != 0)
            sb_item(&other, ", ", "%s.%s (%s)", row[0], row[1], row[2] && row[2][0] ? row[2] : "?");
    }
    mysql_free_result(res);

    for (size_t i = 0; i < cfg->n_objects; i++) {
        const struct sy_object_pattern *o = &cfg->objects[i];
        if (!db_seen[i])
            sb_item(&missing, ", ", "database %s (%s.%s)", o->db, o->db, o->table);
        else if (strcmp(o->table, "*") != 0 && !table_seen[i])
            sb_item(&missing, ", ", "table %s.%s", o->db, o->table);
    }
    struct sbuf d = { 0 }, f = { 0 };
    if (missing.len > 0) {
        sb_printf(&d, "%s (source): no %s", src->label, sb_str(&missing));
        sb_printf(&f, "create it on %s, or correct objects in [pair %s] (a name is case-sensitive)",
                  src->label, cfg->name);
        add_check(r, "object_databases", "warn", sb_str(&d), sb_str(&f));
    } else {
        sb_printf(&d, "%s (source): every database and table named in objects exists", src->label);
        add_check(r, "object_databases", "pass", sb_str(&d), NULL);
    }
    d.len = f.len = 0;
    if (nokey.len > 0) {
        sb_printf(&d, "%s (source): no PRIMARY KEY or NOT NULL UNIQUE key: %s", src->label, sb_str(&nokey));
        add_check(r, "primary_keys", "fail", sb_str(&d),
                  "add a PRIMARY KEY (or a UNIQUE key on NOT NULL columns) to each, or leave them out of "
                  "objects");
    } else {
        sb_printf(&d, "%s (source): all %zu synchronized table%s have a PRIMARY KEY or NOT NULL UNIQUE key",
                  src->label, n_tables, n_tables == 1 ? "" : "s");
        add_check(r, "primary_keys", "pass", sb_str(&d), NULL);
    }
    d.len = 0;
    if (other.len > 0) {
        sb_printf(&d, "%s (source): not InnoDB: %s: only InnoDB tables are consistent in the initial copy",
                  src->label, sb_str(&other));
        add_check(r, "innodb_tables", "warn", sb_str(&d),
                  "ALTER TABLE ... ENGINE = InnoDB, or leave them out of objects");
    } else {
        sb_printf(&d, "%s (source): all %zu synchronized table%s are InnoDB", src->label, n_tables,
                  n_tables == 1 ? "" : "s");
        add_check(r, "innodb_tables", "pass", sb_str(&d), NULL);
    }
    sb_free(&d);
    sb_free(&f);

dest:
    /* Destination side: triggers would fire again on the rows Switchyard replays. */
    if (cfg->n_objects == 0) {
        add_skipped(r, "destination_triggers", "objects is empty", "objects_configured");
        goto out;
    }
    if (!dst->usable) {
        add_skipped(r, "destination_triggers", dst->skip, dst->skip_see);
        goto out;
    }
    if (!dst_sees) {
        snprintf(why, sizeof why, "admin_user cannot see the objects on %s", dst->label);
        add_skipped(r, "destination_triggers", why, "destination_privileges");
        goto out;
    }
    dbs.len = sql.len = 0;
    sb_object_dbs(&dbs, dst->m, cfg);
    sb_printf(&sql, "SELECT EVENT_OBJECT_SCHEMA, EVENT_OBJECT_TABLE, TRIGGER_NAME "
              "FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA IN (%s) ORDER BY 1, 2, 3",
              sb_str(&dbs));
    if ((res = query_rows(dst->m, sb_str(&sql), err, sizeof err)) == NULL) {
        snprintf(why, sizeof why, "%s (destination): cannot list triggers: %s", dst->label, err);
        add_check(r, "destination_triggers", "warn", why, "make sure admin_user can read information_schema");
        goto out;
    }
    char last_db[200] = "", last_table[200] = "";
    while ((row = mysql_fetch_row(res)) != NULL) {
        if (row[0] == NULL || row[1] == NULL || row[2] == NULL || !sy_objects_match(cfg, row[0], row[1]))
            continue;
        if (strcmp(last_db, row[0]) == 0 && strcmp(last_table, row[1]) == 0) {
            if (trig.len > 0)
                trig.s[--trig.len] = '\0'; /* reopen "db.t (a)" as "db.t (a, b)" */
            sb_printf(&trig, ", %s)", row[2]);
        } else {
            sb_item(&trig, ", ", "%s.%s (%s)", row[0], row[1], row[2]);
            snprintf(last_db, sizeof last_db, "%s", row[0]);
            snprintf(last_table, sizeof last_table, "%s", row[1]);
        }
    }
    mysql_free_result(res);
    struct sbuf td = { 0 }, tf = { 0 };
    if (trig.len > 0) {
        sb_printf(&td, "%s (destination): triggers on synchronized tables: %s: they would fire on replayed "
                  "rows", dst->label, sb_str(&trig));
        sb_printf(&tf, "drop them on %s, or make them skip Switchyard's writer: IF @@session.server_id <> %u "
                  "THEN ... END IF", dst->label, (unsigned)cfg->writer_tag);
        add_check(r, "destination_triggers", "warn", sb_str(&td), sb_str(&tf));
    } else {
        sb_printf(&td, "%s (destination): no triggers on synchronized tables", dst->label);
        add_check(r, "destination_triggers", "pass", sb_str(&td), NULL);
    }
    sb_free(&td);
    sb_free(&tf);
out:
    sb_free(&sql);
    sb_free(&dbs);
    sb_free(&missing);
    sb_free(&nokey);
    sb_free(&other);
    sb_free(&trig);
}

/* ---- entry point -------------------------------------------------------------------------------- */

int sy_mariadb_precheck(const struct sy_pair_cfg *cfg, enum sy_direction dir, json_t *checks)
{
    mysql_thread_init(); /* the caller's worker thread; paired below */
    struct run r = { .cfg = cfg, .checks = checks, .failed = false };
    struct side sides[2];
    side_init(&sides[0], "business", &cfg->business);
    side_init(&sides[1], "dr", &cfg->dr);
    struct side *src = dir == SY_DIR_FORWARD ? &sides[0] : &sides[1];
    struct side *dst = dir == SY_DIR_FORWARD ? &sides[1] : &sides[0];

    check_objects(&r);
    for (int i = 0; i < 2; i++)
        side_connect(&r, &sides[i]);
    for (int i = 0; i < 2; i++)
        side_check_engine(&r, &sides[i]);
    check_server_ids(&r, sides);
    check_distinct_servers(&r, &sides[0], &sides[1]);
    check_binlog(&r, src);
    bool src_sees = false, dst_sees = false;
    check_privileges(&r, src, true, &src_sees);
    check_privileges(&r, dst, false, &dst_sees);
    check_tables(&r, src, src_sees, dst, dst_sees);

    for (int i = 0; i < 2; i++)
        if (sides[i].m != NULL)
            mysql_close(sides[i].m);
    mysql_thread_end();
    return r.failed ? 1 : 0;
}
