/* Connector/C helpers for module threads: admin connections, statements, single values, error
 * classification, identifier quoting, and the `objects` filter. */
#include "engine/mariadb_client.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>

#include <errmsg.h>
#include <mysqld_error.h>

#include "core/instance.h"
#include "core/pair.h"

static MYSQL *connection_new(int timeout_s)
{
    MYSQL *m = mysql_init(NULL);
    if (m == NULL)
        return NULL;
    unsigned int t = (unsigned int)timeout_s, proto = MYSQL_PROTOCOL_TCP;
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &t);
    mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &t);
    mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &t);
    mysql_optionsv(m, MYSQL_OPT_PROTOCOL, &proto);
    mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, "binary");
    return m;
}

static MYSQL *connect_failed(MYSQL *m, const struct sy_endpoint *ep, unsigned int *mysql_errno_out, char *err,
                             size_t errlen)
{
    snprintf(err, errlen, "%s:%u: %u %s", ep->host, ep->port, mysql_errno(m), mysql_error(m));
    if (mysql_errno_out)
        *mysql_errno_out = mysql_errno(m);
    mysql_close(m);
    return NULL;
}

MYSQL *sy_mariadb_connect(const struct sy_endpoint *ep, const struct sy_pair_cfg *cfg, unsigned long flags,
                          int timeout_s, unsigned int *mysql_errno_out, char *err, size_t errlen)
{
    if (mysql_errno_out)
        *mysql_errno_out = 0;
    MYSQL *m = connection_new(timeout_s);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!mysql_real_connect(m, ep->host, cfg->admin_user, cfg->admin_password, NULL, ep->port, NULL, flags))
        return connect_failed(m, ep, mysql_errno_out, err, errlen);
    return m;
}

/* One wait of a non-blocking connect: polls the socket for what the library asked (MYSQL_WAIT_*) and
 * answers with what happened; an error or hang-up on the socket (a stop shut it down) is answered as
 * readable and writable, so the library's next read or write sees it. Once the stop shut the module's
 * sockets, or when nothing can be waited for, it answers a timeout: the library gives up (also on the
 * addresses it has not tried yet). */
static int connect_wait(MYSQL *m, int want, const struct sy_module_ctx *ctx)
{
    struct pollfd p = { .fd = (int)mysql_get_socket(m), .events = 0 };
    if (want & MYSQL_WAIT_READ)
        p.events |= POLLIN;
    if (want & MYSQL_WAIT_WRITE)
        p.events |= POLLOUT;
    if (want & MYSQL_WAIT_EXCEPT)
        p.events |= POLLPRI;
    int timeout = (want & MYSQL_WAIT_TIMEOUT) ? (int)mysql_get_timeout_value_ms(m) : -1;
    if (sy_module_sockets_shut(ctx) || (p.fd < 0 && timeout < 0))
        return MYSQL_WAIT_TIMEOUT;
    uint64_t deadline = timeout >= 0 ? sy_now_ms() + (uint64_t)timeout : 0;
    int n;
    while ((n = poll(&p, 1, timeout)) < 0 && errno == EINTR)
        if (timeout >= 0) {                            /* a signal: the rest of the time, not all of it */
            uint64_t now = sy_now_ms();
            timeout = now >= deadline ? 0 : (int)(deadline - now);
        }
    if (n <= 0)
        return MYSQL_WAIT_TIMEOUT;                     /* the time is up, or poll failed: give up, not spin */
    int got = 0;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL))
        got |= MYSQL_WAIT_READ | MYSQL_WAIT_WRITE;
    if (p.revents & POLLIN)
        got |= MYSQL_WAIT_READ;
    if (p.revents & POLLOUT)
        got |= MYSQL_WAIT_WRITE;
    if (p.revents & POLLPRI)
        got |= MYSQL_WAIT_EXCEPT;
    return got & (want | MYSQL_WAIT_READ | MYSQL_WAIT_WRITE);
}

/* The socket a non-blocking connect currently uses, as published to ctx. The library tries a host's
 * addresses in turn, each on a new socket that may get the same descriptor number: the socket is told by
 * its inode, and a new one replaces the old in the watch list. */
struct watched {
    const struct sy_module_ctx *ctx;
    int *slot;       /* the watch slot, -1: none */
    ino_t ino;       /* the watched socket's inode */
};

static void watch_current(struct watched *w, int fd)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || (*w->slot >= 0 && st.st_ino == w->ino))
        return;
    sy_module_socket_drop(w->ctx, *w->slot);
    *w->slot = sy_module_socket_watch(w->ctx, fd);
    w->ino = st.st_ino;
}

MYSQL *sy_mariadb_connect_watched(const struct sy_endpoint *ep, const struct sy_pair_cfg *cfg, unsigned long flags,
                                  int timeout_s, const struct sy_module_ctx *ctx, int *slot,
                                  unsigned int *mysql_errno_out, char *err, size_t errlen)
{
    *slot = -1;
    if (ctx == NULL)
        return sy_mariadb_connect(ep, cfg, flags, timeout_s, mysql_errno_out, err, errlen);
    if (mysql_errno_out)
        *mysql_errno_out = 0;
    if (sy_module_sockets_shut(ctx)) {
        snprintf(err, errlen, "%s:%u: not connecting: stopping", ep->host, ep->port);
        return NULL;
    }
    MYSQL *m = connection_new(timeout_s);
    if (m == NULL || mysql_options(m, MYSQL_OPT_NONBLOCK, NULL) != 0) {
        if (m != NULL)
            mysql_close(m);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    MYSQL *ret = NULL;
    struct watched w = { .ctx = ctx, .slot = slot };
    int want = mysql_real_connect_start(&ret, m, ep->host, cfg->admin_user, cfg->admin_password, NULL, ep->port,
                                        NULL, flags);
    while (want != 0) {
        watch_current(&w, (int)mysql_get_socket(m));   /* shut at once if stopping */
        want = mysql_real_connect_cont(&ret, m, connect_wait(m, want, ctx));
    }
    if (ret == NULL) {
        sy_module_socket_drop(ctx, *slot);
        *slot = -1;
        return connect_failed(m, ep, mysql_errno_out, err, errlen);
    }
    watch_current(&w, (int)mysql_get_socket(m));       /* also when it never had to wait */
    return m;
}

static int vexec(MYSQL *m, char *err, size_t errlen, const char *fmt, va_list ap)
{
    char stack[4096];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(stack, sizeof stack, fmt, ap);
    char *sql = stack;
    if (n < 0) {
        va_end(ap2);
        snprintf(err, errlen, "bad statement format");
        return -1;
    }
    if ((size_t)n >= sizeof stack) {
        sql = malloc((size_t)n + 1);
        if (sql == NULL) {
            va_end(ap2);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        vsnprintf(sql, (size_t)n + 1, fmt, ap2);
    }
    va_end(ap2);
    int rc = mysql_real_query(m, sql, (unsigned long)n);
    if (sql != stack)
        free(sql);
    if (rc != 0) {
        snprintf(err, errlen, "%u %s", mysql_errno(m), mysql_error(m));
        return -1;
    }
    return 0;
}

int sy_mariadb_exec(MYSQL *m, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vexec(m, err, errlen, fmt, ap);
    va_end(ap);
    if (rc != 0)
        return -1;
    do {
        MYSQL_RES *res = mysql_store_result(m);
        if (res)
            mysql_free_result(res);
        else if (mysql_field_count(m) != 0) {
            snprintf(err, errlen, "%u %s", mysql_errno(m), mysql_error(m));
            return -1;
        }
    } while (mysql_next_result(m) == 0);
    if (mysql_errno(m) != 0) {
        snprintf(err, errlen, "%u %s", mysql_errno(m), mysql_error(m));
        return -1;
    }
    return 0;
}

int sy_mariadb_value(MYSQL *m, char *out, size_t outlen, bool *found, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vexec(m, err, errlen, fmt, ap);
    va_end(ap);
    if (rc != 0)
        return -1;
    MYSQL_RES *res = mysql_store_result(m);
    if (res == NULL) {
        if (mysql_field_count(m) != 0) {
            snprintf(err, errlen, "%u %s", mysql_errno(m), mysql_error(m));
            return -1;
        }
        *found = false;
        out[0] = '\0';
        return 0;
    }
    MYSQL_ROW row = mysql_fetch_row(res);
    unsigned long *lens = row ? mysql_fetch_lengths(res) : NULL;
    *found = row != NULL && row[0] != NULL;
    if (*found)
        snprintf(out, outlen, "%.*s", (int)lens[0], row[0]);
    else
        out[0] = '\0';
    mysql_free_result(res);
    while (mysql_next_result(m) == 0) {
        MYSQL_RES *r = mysql_store_result(m);
        if (r)
            mysql_free_result(r);
    }
    return 0;
}

bool sy_mariadb_is_transient(unsigned int e)
{
    switch (e) {
    case CR_CONNECTION_ERROR:     /* 2002 */
    case CR_CONN_HOST_ERROR:      /* 2003 */
    case CR_SERVER_GONE_ERROR:    /* 2006 */
    case CR_SERVER_LOST:          /* 2013 */
    case CR_SERVER_LOST_EXTENDED: /* 2055 */
    case ER_SERVER_SHUTDOWN:      /* 1053 */
    case ER_CONNECTION_KILLED:    /* 1927 */
    case ER_CON_COUNT_ERROR:      /* 1040 */
    case ER_LOCK_WAIT_TIMEOUT:    /* 1205 */
    case ER_LOCK_DEADLOCK:        /* 1213 */
    case ER_QUERY_INTERRUPTED:    /* 1317 */
        return true;
    default:
        return false;
    }
}

char *sy_mariadb_escape(MYSQL *m, const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 1);
    if (out)
        mysql_real_escape_string(m, out, s, (unsigned long)n);
    return out;
}

void sy_mariadb_quote_ident(const char *name, char *out, size_t outlen)
{
    size_t o = 0;
    if (outlen < 3) {
        if (outlen)
            out[0] = '\0';
        return;
    }
    out[o++] = '`';
    for (const char *p = name; *p && o + 3 < outlen; p++) {
        if (*p == '`')
            out[o++] = '`';
        out[o++] = *p;
    }
    out[o++] = '`';
    out[o] = '\0';
}

void sy_mariadb_add_ident(struct sy_buf *b, const char *name)
{
    sy_buf_add(b, "`", 1);
    for (const char *p = name; *p; p++)
        sy_buf_add(b, *p == '`' ? "``" : p, *p == '`' ? 2 : 1);
    sy_buf_add(b, "`", 1);
}

static bool system_schema(const char *db)
{
    static const char *const sys[] = { "mysql", "information_schema", "performance_schema", "sys", SY_SCHEMA };
    for (size_t i = 0; i < SY_ARRAY_LEN(sys); i++)
        if (strcasecmp(db, sys[i]) == 0)
            return true;
    return false;
}

bool sy_objects_match(const struct sy_pair_cfg *cfg, const char *db, const char *table)
{
    if (system_schema(db))
        return false;
    for (size_t i = 0; i < cfg->n_objects; i++) {
        const struct sy_object_pattern *o = &cfg->objects[i];
        if (strcmp(o->db, db) == 0 && (strcmp(o->table, "*") == 0 || strcmp(o->table, table) == 0))
            return true;
    }
    return false;
}

bool sy_objects_match_db(const struct sy_pair_cfg *cfg, const char *db)
{
    if (system_schema(db))
        return false;
    for (size_t i = 0; i < cfg->n_objects; i++)
        if (strcmp(cfg->objects[i].db, db) == 0)
            return true;
    return false;
}
