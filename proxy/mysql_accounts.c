/* Account cache: one admin connection to the active side, a load = "who am I" + all rows of
 * mysql.global_priv. Waiters of a load are called in order; a refresh asked during a load is
 * served by the next load. */
#include "proxy/mysql_accounts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "proxy/mysql_conn.h"

struct sy_mysql_accounts_wait {
    TAILQ_ENTRY(sy_mysql_accounts_wait) link;
    struct sy_mysql_accounts *a;   /* ref */
    sy_mysql_accounts_cb cb;
    void *arg;
};
TAILQ_HEAD(wait_list, sy_mysql_accounts_wait);

struct sy_mysql_accounts {
    struct event_base *base;          /* ref */
    const struct sy_pair_cfg *cfg;    /* ref: admin_user / admin_password */
    struct sy_endpoint ep;            /* the active side */
    char label[96];
    struct sy_mysql_conn *conn;       /* owned: admin connection, NULL when closed */
    struct event *kick;               /* owned: starts a load from the loop, so callbacks never run
                                         inside sy_mysql_accounts_refresh() */
    bool loading;                     /* a load runs; `current` waits for it */
    struct wait_list current;         /* served by the running load */
    struct wait_list next;            /* asked during the running load: served by the next one */
    struct sy_mysql_account *rows;    /* owned */
    size_t n_rows;
    bool loaded;
    char host_name[256];              /* the proxy as the server names it ("localhost") */
    char host_ip[64];                 /* the proxy's address toward the server */
    char server_version[SY_MYSQL_VERSION_MAX];
    uint8_t server_collation;
    uint64_t server_caps;
    bool track_known;                 /* the server's default session tracking: */
    char track_vars[1024];            /* @@global.session_track_system_variables */
    bool track_schema, track_state;   /* @@global.session_track_schema / _state_change */
};

static void free_rows(struct sy_mysql_accounts *a)
{
    for (size_t i = 0; i < a->n_rows; i++) {
        free(a->rows[i].user);
        free(a->rows[i].host);
        free(a->rows[i].plugin);
        if (a->rows[i].auth_string) {
            OPENSSL_cleanse(a->rows[i].auth_string, strlen(a->rows[i].auth_string));
            free(a->rows[i].auth_string);
        }
    }
    free(a->rows);
    a->rows = NULL;
    a->n_rows = 0;
    a->loaded = false;
}

static void on_kick(evutil_socket_t fd, short what, void *arg);

struct sy_mysql_accounts *sy_mysql_accounts_new(struct event_base *base, const char *pair_name,
                                                const struct sy_pair_cfg *cfg)
{
    struct sy_mysql_accounts *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->base = base;
    a->cfg = cfg;
    a->ep = cfg->business;
    snprintf(a->label, sizeof a->label, "%s accounts", pair_name);
    TAILQ_INIT(&a->current);
    TAILQ_INIT(&a->next);
    a->kick = evtimer_new(base, on_kick, a);
    if (a->kick == NULL) {
        free(a);
        return NULL;
    }
    return a;
}

void sy_mysql_accounts_free(struct sy_mysql_accounts *a)
{
    if (a == NULL)
        return;
    struct sy_mysql_accounts_wait *w;
    while ((w = TAILQ_FIRST(&a->current)) != NULL) {
        TAILQ_REMOVE(&a->current, w, link);
        free(w);
    }
    while ((w = TAILQ_FIRST(&a->next)) != NULL) {
        TAILQ_REMOVE(&a->next, w, link);
        free(w);
    }
    sy_mysql_conn_free(a->conn);
    event_free(a->kick);
    free_rows(a);
    free(a);
}

void sy_mysql_accounts_set_endpoint(struct sy_mysql_accounts *a, const struct sy_endpoint *ep)
{
    if (strcmp(a->ep.host, ep->host) == 0 && a->ep.port == ep->port)
        return;
    a->ep = *ep;
    if (!a->loading) {
        sy_mysql_conn_free(a->conn);
        a->conn = NULL;
    }
    free_rows(a);
}

const struct sy_mysql_account *sy_mysql_accounts_find(const struct sy_mysql_accounts *a, const char *user)
{
    if (!a->loaded)
        return NULL;
    return sy_mysql_account_match(a->rows, a->n_rows, user, a->host_name[0] ? a->host_name : NULL,
                                  a->host_ip);
}

bool sy_mysql_accounts_loaded(const struct sy_mysql_accounts *a)
{
    return a->loaded;
}

bool sy_mysql_accounts_track_defaults(const struct sy_mysql_accounts *a, const char **vars, bool *schema,
                                      bool *state)
{
    *vars = a->track_vars;
    *schema = a->track_schema;
    *state = a->track_state;
    return a->track_known;
}

const char *sy_mysql_accounts_server_version(const struct sy_mysql_accounts *a)
{
    return a->server_version;
}

uint8_t sy_mysql_accounts_server_collation(const struct sy_mysql_accounts *a)
{
    return a->server_collation;
}

uint64_t sy_mysql_accounts_server_caps(const struct sy_mysql_accounts *a)
{
    return a->server_caps;
}

static void start_load(struct sy_mysql_accounts *a);

/* Calls every waiter of the finished load, then starts the next load if anyone asked meanwhile. */
static void finish_load(struct sy_mysql_accounts *a, const char *err)
{
    a->loading = false;
    struct wait_list done;
    TAILQ_INIT(&done);
    TAILQ_CONCAT(&done, &a->current, link);
    TAILQ_CONCAT(&a->current, &a->next, link);
    if (!TAILQ_EMPTY(&a->current))
        start_load(a);
    struct sy_mysql_accounts_wait *w;
    while ((w = TAILQ_FIRST(&done)) != NULL) {
        TAILQ_REMOVE(&done, w, link);
        sy_mysql_accounts_cb cb = w->cb;
        void *arg = w->arg;
        free(w);
        cb(arg, err);
    }
}

static void load_failed(struct sy_mysql_accounts *a, const char *what)
{
    char err[700];
    snprintf(err, sizeof err, "cannot read accounts from %s:%u: %s", a->ep.host, a->ep.port, what);
    sy_log_warn("%s: %s", a->label, err);
    sy_mysql_conn_free(a->conn);
    a->conn = NULL;
    finish_load(a, err);
}

static void on_rows(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg)
{
    struct sy_mysql_accounts *a = arg;
    if (!res->ok || res->n_cols != 4) {
        load_failed(a, res->ok ? "unexpected columns" : res->err_msg);
        return;
    }
    free_rows(a);
    a->rows = calloc(res->n_rows ? res->n_rows : 1, sizeof *a->rows);
    if (a->rows == NULL) {
        load_failed(a, "out of memory");
        return;
    }
    for (size_t r = 0; r < res->n_rows; r++) {
        char *const *cell = &res->cells[r * 4];
        struct sy_mysql_account *acc = &a->rows[a->n_rows];
        acc->user = strdup(cell[0] ? cell[0] : "");
        acc->host = strdup(cell[1] ? cell[1] : "");
        acc->plugin = strdup(cell[2] ? cell[2] : "");
        acc->auth_string = strdup(cell[3] ? cell[3] : "");
        a->n_rows++;
        if (!acc->user || !acc->host || !acc->plugin || !acc->auth_string) {
            load_failed(a, "out of memory");
            return;
        }
    }
    a->loaded = true;
    sy_log_debug("%s: %zu accounts loaded from %s:%u (proxy is '%s' / %s)", a->label, a->n_rows, a->ep.host,
                 a->ep.port, a->host_name, a->host_ip);
    finish_load(a, NULL);
}

static void query_rows(struct sy_mysql_accounts *a)
{
    static const char sql[] =
        "SELECT User, Host, IFNULL(JSON_VALUE(Priv,'$.plugin'),'mysql_native_password'), "
        "IFNULL(JSON_VALUE(Priv,'$.authentication_string'),'') FROM mysql.global_priv";
    if (sy_mysql_conn_query(a->conn, sql, on_rows, a) != 0)
        load_failed(a, "admin connection busy");
}

static void on_whoami(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg)
{
    struct sy_mysql_accounts *a = arg;
    if (!res->ok || res->n_rows != 1 || res->n_cols != 4 || res->cells[0] == NULL) {
        load_failed(a, res->ok ? "unexpected reply to USER()" : res->err_msg);
        return;
    }
    snprintf(a->host_name, sizeof a->host_name, "%s", res->cells[0]);
    a->track_known = res->cells[1] != NULL && strlen(res->cells[1]) < sizeof a->track_vars;
    snprintf(a->track_vars, sizeof a->track_vars, "%s", a->track_known ? res->cells[1] : "");
    a->track_schema = res->cells[2] != NULL && (strcmp(res->cells[2], "1") == 0 || strcasecmp(res->cells[2], "ON") == 0);
    a->track_state = res->cells[3] != NULL && (strcmp(res->cells[3], "1") == 0 || strcasecmp(res->cells[3], "ON") == 0);
    sy_mysql_conn_local_ip(c, a->host_ip, sizeof a->host_ip);
    query_rows(a);
}

static void on_login(struct sy_mysql_conn *c, const uint8_t *err, size_t err_len, void *arg)
{
    struct sy_mysql_accounts *a = arg;
    if (err != NULL) {
        struct sy_mysql_err e;
        char msg[600] = "login failed";
        if (sy_mysql_err_parse(err, err_len, &e) == SY_PARSE_OK)
            snprintf(msg, sizeof msg, "admin login as '%s': %u %.*s", a->cfg->admin_user, e.code,
                     (int)e.msg_len, e.msg_p);
        load_failed(a, msg);
        return;
    }
    const struct sy_mysql_greeting *g = sy_mysql_conn_greeting(c);
    snprintf(a->server_version, sizeof a->server_version, "%s", g->server_version);
    a->server_collation = g->collation;
    a->server_caps = g->caps;
    if (sy_mysql_conn_query(c,
                            "SELECT SUBSTRING_INDEX(USER(),'@',-1), @@global.session_track_system_variables, "
                            "@@global.session_track_schema, @@global.session_track_state_change",
                            on_whoami, a) != 0)
        load_failed(a, "admin connection busy");
}

static void start_load(struct sy_mysql_accounts *a)
{
    static const struct timeval now = { 0, 0 };
    a->loading = true;
    evtimer_add(a->kick, &now);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    struct sy_mysql_accounts *a = arg;
    if (a->conn != NULL) {
        query_rows(a);
        return;
    }
    struct sy_mysql_login login = { .auth = SY_LOGIN_STAGE1 };
    snprintf(login.user, sizeof login.user, "%s", a->cfg->admin_user);
    sy_mysql_native_stage1(a->cfg->admin_password, strlen(a->cfg->admin_password), login.stage1);
    login.caps = SY_CAP_MYSQL | SY_CAP_LONG_FLAG | SY_CAP_PROTOCOL_41 | SY_CAP_SECURE_CONNECTION |
                 SY_CAP_PLUGIN_AUTH | SY_CAP_TRANSACTIONS | SY_CAP_MULTI_RESULTS | SY_CAP_PLUGIN_AUTH_LENENC;
    a->conn = sy_mysql_conn_open(a->base, &a->ep, &login, a->label, on_login, a);
    OPENSSL_cleanse(login.stage1, sizeof login.stage1);
    if (a->conn == NULL)
        load_failed(a, "out of memory");
}

struct sy_mysql_accounts_wait *sy_mysql_accounts_refresh(struct sy_mysql_accounts *a, sy_mysql_accounts_cb cb,
                                                         void *arg)
{
    struct sy_mysql_accounts_wait *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->a = a;
    w->cb = cb;
    w->arg = arg;
    if (a->loading) {
        TAILQ_INSERT_TAIL(&a->next, w, link);
    } else {
        TAILQ_INSERT_TAIL(&a->current, w, link);
        start_load(a);
    }
    return w;
}

void sy_mysql_accounts_cancel(struct sy_mysql_accounts_wait *w)
{
    if (w == NULL)
        return;
    struct sy_mysql_accounts *a = w->a;
    struct sy_mysql_accounts_wait *it;
    TAILQ_FOREACH(it, &a->current, link)
        if (it == w) {
            TAILQ_REMOVE(&a->current, w, link);
            free(w);
            return;
        }
    TAILQ_FOREACH(it, &a->next, link)
        if (it == w) {
            TAILQ_REMOVE(&a->next, w, link);
            free(w);
            return;
        }
}
