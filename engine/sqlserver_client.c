/* FreeTDS db-lib helpers (engine/sqlserver_client.h). db-lib reports through two process-wide handlers;
 * each connection carries its own error slot (dbsetuserdata), and a login in progress uses the calling
 * thread's, so concurrent module threads never see each other's errors. */
#define MSDBLIB 1
#include "engine/sqlserver_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sybdb.h>
#include <sybfront.h>

#include "core/log.h"

#define TDS_LOGIN_TIMEOUT_S 10
#define TDS_QUERY_TIMEOUT_S 60

struct tds_err {
    int msgno;      /* the first server error (severity > 10) of the current call, 0 none */
    int severity;
    bool lost;      /* db-lib: the connection is gone, timed out or could not be made */
    char text[768];
};

struct sy_tds {
    DBPROCESS *dbp;      /* owned */
    struct tds_err e;    /* what the handlers saw during the current call */
    char host[300];      /* "host:port" for messages */
};

static __thread struct tds_err *tl_login_err; /* the error slot of a login in progress on this thread */

static struct tds_err *err_slot(DBPROCESS *dbp)
{
    if (dbp != NULL) {
        struct sy_tds *t = (struct sy_tds *)dbgetuserdata(dbp);
        if (t != NULL)
            return &t->e;
    }
    return tl_login_err;
}

static int on_error(DBPROCESS *dbp, int severity, int dberr, int oserr, char *dberrstr, char *oserrstr)
{
    struct tds_err *e = err_slot(dbp);
    if (e != NULL) {
        if (dberr == SYBEFCON || dberr == SYBECONN || dberr == SYBETIME || dberr == SYBEREAD || dberr == SYBEWRIT ||
            dberr == SYBESEOF || dberr == SYBESMSG || (dbp != NULL && DBDEAD(dbp)))
            e->lost = e->lost || dberr != SYBESMSG;
        if (dberr != SYBESMSG && e->msgno == 0 && !(e->text[0] != '\0' && e->lost))
            snprintf(e->text, sizeof e->text, "%s%s%s", dberrstr ? dberrstr : "db-lib error",
                     oserr != DBNOERR && oserrstr ? ": " : "", oserr != DBNOERR && oserrstr ? oserrstr : "");
    }
    return INT_CANCEL;
}

static int on_message(DBPROCESS *dbp, DBINT msgno, int msgstate, int severity, char *msgtext, char *srvname,
                      char *proc, int line)
{
    struct tds_err *e = err_slot(dbp);
    if (e != NULL && severity > 10 && e->msgno == 0) {
        e->msgno = (int)msgno;
        e->severity = severity;
        snprintf(e->text, sizeof e->text, "error %d: %s", (int)msgno, msgtext ? msgtext : "");
    }
    return 0;
}

void sy_tds_library_init(void)
{
    dbinit();
    dbsetversion(DBVERSION_74);
    dberrhandle(on_error);
    dbmsghandle(on_message);
    dbsetlogintime(TDS_LOGIN_TIMEOUT_S);
    dbsettime(TDS_QUERY_TIMEOUT_S);
}

void sy_tds_library_end(void)
{
    dbexit();
}

struct sy_tds *sy_tds_connect(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, const char *db,
                              char *err, size_t errlen, enum sy_tds_rc *rc)
{
    struct sy_tds *t = calloc(1, sizeof *t);
    LOGINREC *login = dblogin();
    *rc = SY_TDS_REFUSED;
    if (t == NULL || login == NULL) {
        snprintf(err, errlen, "out of memory");
        free(t);
        if (login)
            dbloginfree(login);
        return NULL;
    }
    snprintf(t->host, sizeof t->host, strchr(ep->host, ':') ? "[%s]:%u" : "%s:%u", ep->host, ep->port);
    char server[300];
    snprintf(server, sizeof server, "%s:%u", ep->host, ep->port);
    DBSETLUSER(login, cfg->admin_user);
    DBSETLPWD(login, cfg->admin_password);
    DBSETLAPP(login, "switchyard");
    DBSETLCHARSET(login, "UTF-8");
    DBSETLVERSION(login, DBVERSION_74);
    if (db != NULL && db[0] != '\0')
        DBSETLDBNAME(login, db);
    tl_login_err = &t->e;
    t->dbp = dbopen(login, server);
    tl_login_err = NULL;
    dbloginfree(login);
    if (t->dbp == NULL) {
        /* a server's answer (18456 login failed, 4060 database) is a refusal; anything else: not reached */
        *rc = t->e.msgno != 0 ? SY_TDS_REFUSED : SY_TDS_TRANSIENT;
        snprintf(err, errlen, "%s: %s", t->host, t->e.text[0] ? t->e.text : "cannot connect");
        free(t);
        return NULL;
    }
    dbsetuserdata(t->dbp, (BYTE *)t);
    *rc = SY_TDS_OK;
    return t;
}

void sy_tds_close(struct sy_tds *t)
{
    if (t == NULL)
        return;
    if (t->dbp != NULL)
        dbclose(t->dbp);
    free(t);
}

int sy_tds_fd(const struct sy_tds *t)
{
    return t != NULL && t->dbp != NULL ? DBIORDESC(t->dbp) : -1;
}

static void call_begin(struct sy_tds *t)
{
    memset(&t->e, 0, sizeof t->e);
}

/* The call's outcome: lost connection -> TRANSIENT; a server error -> REFUSED, except deadlock victims
 * (1205) and lock timeouts (1222), which a retry can get past. */
static enum sy_tds_rc call_end(struct sy_tds *t, bool failed, char *err, size_t errlen)
{
    bool dead = DBDEAD(t->dbp);
    if (!failed && !dead && t->e.msgno == 0)
        return SY_TDS_OK;
    snprintf(err, errlen, "%s: %s", t->host, t->e.text[0] ? t->e.text : dead ? "connection lost" : "request failed");
    if (dead || t->e.lost || t->e.msgno == 1205 || t->e.msgno == 1222)
        return SY_TDS_TRANSIENT;
    return SY_TDS_REFUSED;
}

static bool send_batch(struct sy_tds *t, const char *sql)
{
    return dbcmd(t->dbp, sql) == SUCCEED && dbsqlexec(t->dbp) == SUCCEED;
}

enum sy_tds_rc sy_tds_exec(struct sy_tds *t, const char *sql, long *counts, size_t n_counts, size_t *n_done,
                           char *err, size_t errlen)
{
    call_begin(t);
    size_t n = 0;
    bool failed = !send_batch(t, sql);
    if (!failed) {
        RETCODE r;
        while ((r = dbresults(t->dbp)) != NO_MORE_RESULTS) {
            if (r == FAIL) {
                failed = true;
                break;
            }
            while (dbnextrow(t->dbp) != NO_MORE_ROWS)
                ;
            if (counts != NULL && n < n_counts)
                counts[n++] = DBCOUNT(t->dbp);
        }
    }
    if (failed && !DBDEAD(t->dbp))
        dbcancel(t->dbp);
    if (n_done != NULL)
        *n_done = n;
    return call_end(t, failed, err, errlen);
}

enum sy_tds_rc sy_tds_query(struct sy_tds *t, const char *sql, int (*row)(void *arg, struct sy_tds *t), void *arg,
                            char *err, size_t errlen)
{
    return sy_tds_query_cols(t, sql, NULL, row, arg, err, errlen);
}

enum sy_tds_rc sy_tds_query_cols(struct sy_tds *t, const char *sql, int (*columns)(void *arg, struct sy_tds *t),
                                 int (*row)(void *arg, struct sy_tds *t), void *arg, char *err, size_t errlen)
{
    call_begin(t);
    bool failed = !send_batch(t, sql);
    int stopped = 0;
    if (!failed) {
        RETCODE r;
        while (!stopped && (r = dbresults(t->dbp)) != NO_MORE_RESULTS) {
            if (r == FAIL) {
                failed = true;
                break;
            }
            if (columns != NULL && dbnumcols(t->dbp) > 0 && (stopped = columns(arg, t)) != 0)
                break;
            STATUS s;
            while ((s = dbnextrow(t->dbp)) != NO_MORE_ROWS) {
                if (s == FAIL) {
                    failed = true;
                    break;
                }
                if (s == REG_ROW && (stopped = row(arg, t)) != 0)
                    break;
            }
            if (failed)
                break;
        }
    }
    if ((failed || stopped) && !DBDEAD(t->dbp))
        dbcancel(t->dbp);
    enum sy_tds_rc rc = call_end(t, failed, err, errlen);
    if (rc == SY_TDS_OK && stopped)
        return SY_TDS_REFUSED; /* the callback's err */
    return rc;
}

int sy_tds_ncols(struct sy_tds *t)
{
    return dbnumcols(t->dbp);
}

const char *sy_tds_col_name(struct sy_tds *t, int col)
{
    const char *n = dbcolname(t->dbp, col);
    return n ? n : "";
}

bool sy_tds_col_is_null(struct sy_tds *t, int col)
{
    return dbdata(t->dbp, col) == NULL && dbdatlen(t->dbp, col) == 0;
}

const uint8_t *sy_tds_col_bytes(struct sy_tds *t, int col, size_t *len)
{
    DBINT n = dbdatlen(t->dbp, col);
    *len = n > 0 ? (size_t)n : 0;
    return dbdata(t->dbp, col);
}

static bool is_temporal(int type)
{
    return type == SYBDATETIME || type == SYBDATETIME4 || type == SYBDATETIMN || type == SYBMSDATE ||
           type == SYBMSTIME || type == SYBMSDATETIME2;
}

/* A temporal column as "YYYY-MM-DD hh:mm:ss.fffffff" (date or time alone for those types). */
static bool temporal_text(struct sy_tds *t, int col, int type, char *out, size_t outlen)
{
    DBDATEREC2 d;
    if (dbanydatecrack(t->dbp, &d, type, dbdata(t->dbp, col)) != SUCCEED)
        return false;
    int n;
    if (type == SYBMSDATE)
        n = snprintf(out, outlen, "%04d-%02d-%02d", d.year, d.month, d.day);
    else if (type == SYBMSTIME)
        n = snprintf(out, outlen, "%02d:%02d:%02d.%07d", d.hour, d.minute, d.second, d.nanosecond / 100);
    else
        n = snprintf(out, outlen, "%04d-%02d-%02d %02d:%02d:%02d.%07d", d.year, d.month, d.day, d.hour, d.minute,
                     d.second, d.nanosecond / 100);
    return n > 0 && (size_t)n < outlen;
}

bool sy_tds_col_text(struct sy_tds *t, int col, char *out, size_t outlen)
{
    out[0] = '\0';
    if (sy_tds_col_is_null(t, col))
        return true;
    int type = dbcoltype(t->dbp, col);
    if (is_temporal(type))
        return temporal_text(t, col, type, out, outlen);
    size_t len;
    const uint8_t *p = sy_tds_col_bytes(t, col, &len);
    if (type == SYBCHAR || type == SYBVARCHAR || type == SYBTEXT) {
        if (len >= outlen)
            return false;
        memcpy(out, p, len);
        out[len] = '\0';
        return true;
    }
    DBINT n = dbconvert(t->dbp, type, p, (DBINT)len, SYBCHAR, (BYTE *)out, (DBINT)outlen - 1);
    if (n < 0 || (size_t)n >= outlen)
        return false;
    out[n] = '\0';
    return true;
}

int64_t sy_tds_col_int(struct sy_tds *t, int col)
{
    size_t len;
    const uint8_t *p = sy_tds_col_bytes(t, col, &len);
    if (p == NULL)
        return 0;
    switch (dbcoltype(t->dbp, col)) {
    case SYBINT1:
    case SYBBIT:
        return len >= 1 ? p[0] : 0;
    case SYBINT2: {
        int16_t v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    case SYBINT4: {
        int32_t v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    case SYBINT8: {
        int64_t v;
        memcpy(&v, p, sizeof v);
        return v;
    }
    default: {
        char buf[64];
        return sy_tds_col_text(t, col, buf, sizeof buf) ? strtoll(buf, NULL, 10) : 0;
    }
    }
}

static void scratch_text(struct sy_value *v, enum sy_value_type type, struct sy_buf *scratch, const char *s,
                         size_t len)
{
    *v = (struct sy_value){ .type = type, .len = len, .i = (int64_t)scratch->len + 1 };
    sy_buf_add(scratch, s, len);
}

bool sy_tds_col_value(struct sy_tds *t, int col, struct sy_value *v, struct sy_buf *scratch, char *err,
                      size_t errlen)
{
    *v = (struct sy_value){ .type = SY_VAL_NULL };
    if (sy_tds_col_is_null(t, col))
        return true;
    int type = dbcoltype(t->dbp, col);
    size_t len;
    const uint8_t *p = sy_tds_col_bytes(t, col, &len);
    char text[160];
    switch (type) {
    case SYBINT1:
    case SYBBIT:
    case SYBINT2:
    case SYBINT4:
    case SYBINT8:
        v->type = SY_VAL_INT;
        v->i = sy_tds_col_int(t, col);
        return true;
    case SYBFLT8:
        v->type = SY_VAL_DOUBLE;
        memcpy(&v->d, p, sizeof v->d);
        return true;
    case SYBREAL: {
        float f;
        memcpy(&f, p, sizeof f);
        v->type = SY_VAL_DOUBLE;
        v->d = f;
        return true;
    }
    case SYBDECIMAL:
    case SYBNUMERIC:
    case SYBMONEY:
    case SYBMONEY4:
        if (!sy_tds_col_text(t, col, text, sizeof text))
            break;
        scratch_text(v, SY_VAL_DECIMAL, scratch, text, strlen(text));
        return true;
    case SYBCHAR:
    case SYBVARCHAR:
    case SYBTEXT:
        *v = (struct sy_value){ .type = SY_VAL_STRING, .p = p, .len = len };
        return true;
    case 36: /* uniqueidentifier (SYBUNIQUE in FreeTDS's tds.h, not in sybdb.h) */
    case SYBMSDATETIMEOFFSET:
        if (!sy_tds_col_text(t, col, text, sizeof text))
            break;
        scratch_text(v, SY_VAL_STRING, scratch, text, strlen(text));
        return true;
    case SYBBINARY:
    case SYBVARBINARY:
    case SYBIMAGE:
        *v = (struct sy_value){ .type = SY_VAL_BLOB, .p = p, .len = len };
        return true;
    default:
        if (is_temporal(type) && temporal_text(t, col, type, text, sizeof text)) {
            scratch_text(v, SY_VAL_TEMPORAL, scratch, text, strlen(text));
            return true;
        }
        break;
    }
    snprintf(err, errlen, "column %s: type %s (%d) cannot be carried", sy_tds_col_name(t, col),
             dbprtype(type) ? dbprtype(type) : "?", type);
    return false;
}

void sy_tds_values_fix(struct sy_value *v, size_t n, const struct sy_buf *scratch)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].p == NULL && v[i].i > 0 &&
            (v[i].type == SY_VAL_DECIMAL || v[i].type == SY_VAL_STRING || v[i].type == SY_VAL_TEMPORAL ||
             v[i].type == SY_VAL_BLOB)) {
            v[i].p = scratch->p + (v[i].i - 1);
            v[i].i = 0;
        }
}

/* ---- SQL text ----------------------------------------------------------------------------------------- */

void sy_tds_addf(struct sy_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        sy_buf_add(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sy_buf_add(b, big, (size_t)n);
    free(big);
}

const char *sy_tds_sql(struct sy_buf *b)
{
    sy_buf_add(b, "", 1);
    b->len--;
    return b->p ? (const char *)b->p : "";
}

void sy_tds_ident(struct sy_buf *b, const char *name, size_t len)
{
    sy_buf_add(b, "[", 1);
    for (size_t i = 0; i < len; i++)
        sy_buf_add(b, name[i] == ']' ? "]]" : name + i, name[i] == ']' ? 2 : 1);
    sy_buf_add(b, "]", 1);
}

static void quoted(struct sy_buf *b, const uint8_t *p, size_t len)
{
    sy_buf_add(b, "'", 1);
    size_t from = 0;
    for (size_t i = 0; i < len; i++)
        if (p[i] == '\'') {
            sy_buf_add(b, p + from, i + 1 - from);
            sy_buf_add(b, "'", 1);
            from = i + 1;
        }
    sy_buf_add(b, p + from, len - from);
    sy_buf_add(b, "'", 1);
}

void sy_tds_literal(struct sy_buf *b, const struct sy_value *v)
{
    static const char hex[] = "0123456789ABCDEF";
    switch (v->type) {
    case SY_VAL_NULL:
        sy_buf_add(b, "NULL", 4);
        return;
    case SY_VAL_INT:
        sy_tds_addf(b, "%lld", (long long)v->i);
        return;
    case SY_VAL_UINT:
        sy_tds_addf(b, "%llu", (unsigned long long)v->u);
        return;
    case SY_VAL_FLOAT:
    case SY_VAL_DOUBLE:
        sy_tds_addf(b, "%.17g", v->d);
        return;
    case SY_VAL_DECIMAL:
        sy_buf_add(b, v->p, v->len);
        return;
    case SY_VAL_STRING:
        sy_buf_add(b, "N", 1);
        quoted(b, v->p, v->len);
        return;
    case SY_VAL_TEMPORAL:
        quoted(b, v->p, v->len);
        return;
    case SY_VAL_BLOB:
    default:
        sy_buf_add(b, "0x", 2);
        for (size_t i = 0; i < v->len; i++) {
            char h[2] = { hex[v->p[i] >> 4], hex[v->p[i] & 15] };
            sy_buf_add(b, h, 2);
        }
        return;
    }
}

/* ---- objects ------------------------------------------------------------------------------------------ */

bool sy_tds_pair_database(const struct sy_pair_cfg *cfg, char *db, size_t dblen, char *err, size_t errlen)
{
    if (cfg->n_objects == 0) {
        snprintf(err, errlen, "objects is empty: name the tables to synchronize (db.table or db.*)");
        return false;
    }
    for (size_t i = 1; i < cfg->n_objects; i++)
        if (strcasecmp(cfg->objects[i].db, cfg->objects[0].db) != 0) {
            snprintf(err, errlen,
                     "objects names databases %s and %s: a SQL Server pair synchronizes one database (CDC "
                     "positions belong to one database's log)",
                     cfg->objects[0].db, cfg->objects[i].db);
            return false;
        }
    snprintf(db, dblen, "%s", cfg->objects[0].db);
    return true;
}

bool sy_tds_table_synced(const struct sy_pair_cfg *cfg, const char *schema, const char *table)
{
    if (strcasecmp(schema, "dbo") != 0)
        return false;
    for (size_t i = 0; i < cfg->n_objects; i++)
        if (strcmp(cfg->objects[i].table, "*") == 0 || strcasecmp(cfg->objects[i].table, table) == 0)
            return true;
    return false;
}

struct strv {
    char **v;
    size_t n, cap;
    bool oom;
};

static void strv_push(struct strv *s, const char *x)
{
    if (s->n + 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char **v = realloc(s->v, cap * sizeof *v);
        if (v == NULL) {
            s->oom = true;
            return;
        }
        s->v = v;
        s->cap = cap;
    }
    if ((s->v[s->n] = strdup(x)) == NULL) {
        s->oom = true;
        return;
    }
    s->v[++s->n] = NULL;
}

void sy_tds_strv_free(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

struct tables_arg {
    struct strv s;
    const struct sy_pair_cfg *cfg;
};

static int on_table(void *arg, struct sy_tds *t)
{
    struct tables_arg *a = arg;
    char name[260];
    if (sy_tds_col_text(t, 1, name, sizeof name) && (a->cfg == NULL || sy_tds_table_synced(a->cfg, "dbo", name)))
        strv_push(&a->s, name);
    return 0;
}

static char **strv_done(struct strv *s, enum sy_tds_rc *rc, char *err, size_t errlen)
{
    if (*rc == SY_TDS_OK && s->oom) {
        *rc = SY_TDS_REFUSED;
        snprintf(err, errlen, "out of memory");
    }
    if (*rc != SY_TDS_OK) {
        sy_tds_strv_free(s->v);
        return NULL;
    }
    if (s->v == NULL)
        s->v = calloc(1, sizeof *s->v);
    return s->v;
}

char **sy_tds_synced_tables(struct sy_tds *t, const struct sy_pair_cfg *cfg, enum sy_tds_rc *rc, char *err,
                            size_t errlen)
{
    struct tables_arg a = { .cfg = cfg };
    *rc = sy_tds_query(t,
                       "SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = 'dbo' AND "
                       "TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
                       on_table, &a, err, errlen);
    return strv_done(&a.s, rc, err, errlen);
}

char **sy_tds_key_columns(struct sy_tds *t, const char *table, enum sy_tds_rc *rc, char *err, size_t errlen)
{
    struct tables_arg a = { 0 };
    struct sy_buf b;
    sy_buf_init(&b);
    sy_tds_addf(&b,
                "SELECT k.COLUMN_NAME FROM INFORMATION_SCHEMA.TABLE_CONSTRAINTS c JOIN "
                "INFORMATION_SCHEMA.KEY_COLUMN_USAGE k ON k.CONSTRAINT_NAME = c.CONSTRAINT_NAME AND "
                "k.TABLE_SCHEMA = c.TABLE_SCHEMA AND k.TABLE_NAME = c.TABLE_NAME WHERE c.CONSTRAINT_TYPE = "
                "'PRIMARY KEY' AND c.TABLE_SCHEMA = 'dbo' AND c.TABLE_NAME = ");
    struct sy_value v = { .type = SY_VAL_TEMPORAL, .p = (const uint8_t *)table, .len = strlen(table) };
    sy_tds_literal(&b, &v); /* a plain '...' string */
    sy_tds_addf(&b, " ORDER BY k.ORDINAL_POSITION");
    *rc = sy_tds_query(t, sy_tds_sql(&b), on_table, &a, err, errlen);
    sy_buf_fini(&b);
    return strv_done(&a.s, rc, err, errlen);
}

struct scalar_arg {
    char *out;
    size_t outlen;
    bool got;
};

static int on_scalar(void *arg, struct sy_tds *t)
{
    struct scalar_arg *a = arg;
    if (!a->got)
        sy_tds_col_text(t, 1, a->out, a->outlen);
    a->got = true;
    return 0;
}

enum sy_tds_rc sy_tds_scalar(struct sy_tds *t, const char *sql, char *out, size_t outlen, char *err, size_t errlen)
{
    struct scalar_arg a = { out, outlen, false };
    out[0] = '\0';
    return sy_tds_query(t, sql, on_scalar, &a, err, errlen);
}

enum sy_tds_rc sy_tds_ensure_own_table(struct sy_tds *t, const char *table, const char *columns, bool *created,
                                       char *err, size_t errlen)
{
    char out[260];
    *created = false;
    enum sy_tds_rc rc = sy_tds_scalar(t, "SELECT name FROM sys.schemas WHERE name = '" SY_TDS_SCHEMA "'", out,
                                      sizeof out, err, errlen);
    if (rc == SY_TDS_OK && out[0] == '\0')
        rc = sy_tds_exec(t, "CREATE SCHEMA [" SY_TDS_SCHEMA "]", NULL, 0, NULL, err, errlen);
    if (rc != SY_TDS_OK)
        return rc;
    struct sy_buf b;
    sy_buf_init(&b);
    sy_tds_addf(&b, "SELECT OBJECT_ID('%s.%s')", SY_TDS_SCHEMA, table);
    rc = sy_tds_scalar(t, sy_tds_sql(&b), out, sizeof out, err, errlen);
    if (rc == SY_TDS_OK && out[0] == '\0') {
        sy_buf_reset(&b);
        sy_tds_addf(&b, "CREATE TABLE [%s].[%s] (%s)", SY_TDS_SCHEMA, table, columns);
        rc = sy_tds_exec(t, sy_tds_sql(&b), NULL, 0, NULL, err, errlen);
        *created = rc == SY_TDS_OK;
    }
    sy_buf_fini(&b);
    return rc;
}

enum sy_tds_rc sy_tds_db_cdc_enabled(struct sy_tds *t, bool *on, char *err, size_t errlen)
{
    char out[16];
    enum sy_tds_rc rc = sy_tds_scalar(t, "SELECT is_cdc_enabled FROM sys.databases WHERE name = DB_NAME()", out,
                                      sizeof out, err, errlen);
    *on = rc == SY_TDS_OK && (strcmp(out, "1") == 0 || strcasecmp(out, "true") == 0);
    return rc;
}
