/* Admin socket: accepts local connections (0600 + SO_PEERCRED), reads one JSON object per line,
 * dispatches to registered command tables, writes one JSON reply line. A request may be answered
 * after its connection closed: the reply is then dropped, the request still freed once. */
#include "core/admin.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "core/log.h"

#define ADMIN_LINE_MAX (1u << 20) /* a request line longer than this is refused */
#define ADMIN_MAX_TABLES 16

struct admin_table {
    const struct sy_admin_cmd *cmds; /* ref: static table of the registering module */
    size_t n;
    void *ctx;                       /* ref: handed to each handler */
};

struct admin_conn;
TAILQ_HEAD(admin_conn_list, admin_conn);

struct sy_admin {
    struct admin_conn_list conns;     /* open connections, freed by sy_admin_close */
    struct event_base *base;          /* ref */
    struct evconnlistener *listener;  /* owned */
    char path[108];                   /* socket path, unlinked on close */
    struct admin_table tables[ADMIN_MAX_TABLES];
    size_t n_tables;
    bool shutting_down;               /* set by sy_admin_shutdown: every new request is refused */
};

struct admin_conn {
    TAILQ_ENTRY(admin_conn) link;  /* in admin->conns */
    struct sy_admin *admin;   /* ref */
    struct bufferevent *bev;  /* owned; NULL once closed */
    int pending;              /* requests not answered yet: the conn lives until they are */
    bool closing;             /* peer gone or protocol error: free when pending reaches 0 */
};

struct sy_admin_req {
    struct admin_conn *conn;  /* ref: counted in conn->pending; NULL for a call (sy_admin_call) */
    sy_admin_reply_fn reply;  /* a call's answer goes here instead (the console's HTTP transport) */
    void *reply_arg;
    char cmd[64];             /* for logs */
};

static void conn_maybe_free(struct admin_conn *c)
{
    if (c->closing && c->pending == 0) {
        if (c->bev)
            bufferevent_free(c->bev);
        TAILQ_REMOVE(&c->admin->conns, c, link);
        free(c);
    }
}

static void conn_close(struct admin_conn *c)
{
    c->closing = true;
    if (c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    conn_maybe_free(c);
}

static void send_line(struct admin_conn *c, json_t *reply)
{
    char *text = json_dumps(reply, JSON_COMPACT);
    if (text && c->bev && !c->closing) {
        struct evbuffer *out = bufferevent_get_output(c->bev);
        evbuffer_add(out, text, strlen(text));
        evbuffer_add(out, "\n", 1);
    }
    free(text);
}

static void req_finish(struct sy_admin_req *req, json_t *reply)
{
    struct admin_conn *c = req->conn;
    if (c == NULL) {
        req->reply(reply, req->reply_arg);
        json_decref(reply);
        free(req);
        return;
    }
    send_line(c, reply);
    json_decref(reply);
    c->pending--;
    free(req);
    conn_maybe_free(c);
}

void sy_admin_ok(struct sy_admin_req *req, json_t *result)
{
    json_t *reply = json_pack("{s:b,s:o}", "ok", 1, "result", result ? result : json_object());
    req_finish(req, reply);
}

void sy_admin_fail(struct sy_admin_req *req, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sy_log_info("admin: %s -> %s: %s", req->cmd, code, msg);
    json_t *reply = json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code", code, "message", msg);
    req_finish(req, reply);
}

void sy_admin_fail_with(struct sy_admin_req *req, const char *code, json_t *extra, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sy_log_info("admin: %s -> %s: %s", req->cmd, code, msg);
    json_t *error = json_pack("{s:s,s:s}", "code", code, "message", msg);
    if (extra) {
        json_object_update(error, extra);
        json_decref(extra);
    }
    req_finish(req, json_pack("{s:b,s:o}", "ok", 0, "error", error));
}

void sy_admin_answer(struct sy_admin_req *req, json_t *reply)
{
    json_incref(reply);
    req_finish(req, reply);
}

const char *sy_admin_req_cmd(const struct sy_admin_req *req)
{
    return req->cmd;
}

const char *sy_admin_arg_str(json_t *args, const char *key)
{
    json_t *v = json_object_get(args, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

bool sy_admin_arg_bool(json_t *args, const char *key)
{
    return json_is_true(json_object_get(args, key));
}

static void cmd_help(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct sy_admin *a = ctx;
    json_t *list = json_array();
    for (size_t t = 0; t < a->n_tables; t++)
        for (size_t i = 0; i < a->tables[t].n; i++)
            json_array_append_new(list, json_pack("{s:s,s:s}", "name", a->tables[t].cmds[i].name, "usage",
                                                  a->tables[t].cmds[i].usage));
    sy_admin_ok(req, json_pack("{s:o}", "commands", list));
}

static const struct sy_admin_cmd admin_cmds[] = {
    { "help", "help : list the commands", cmd_help },
};

void sy_admin_register(struct sy_admin *a, const struct sy_admin_cmd *cmds, size_t n, void *ctx)
{
    if (a->n_tables == ADMIN_MAX_TABLES) {
        sy_log_error("admin: too many command tables (internal limit %d)", ADMIN_MAX_TABLES);
        return;
    }
    a->tables[a->n_tables++] = (struct admin_table){ cmds, n, ctx };
}

/* Runs command `name` for req, whichever transport it came by: the one dispatch of every command. */
static void run(struct sy_admin *a, struct sy_admin_req *req, const char *name, json_t *args)
{
    snprintf(req->cmd, sizeof req->cmd, "%s", name);
    if (a->shutting_down) { /* no new worker thread may start once shutdown counts them */
        sy_admin_fail(req, "shutting_down", "switchyardd is shutting down: '%s' was not run", name);
        return;
    }
    json_t *empty = NULL;
    if (args == NULL)
        args = empty = json_object();
    for (size_t t = 0; t < a->n_tables; t++) {
        for (size_t i = 0; i < a->tables[t].n; i++) {
            const struct sy_admin_cmd *cmd = &a->tables[t].cmds[i];
            if (strcmp(cmd->name, name) == 0) {
                sy_log_debug("admin: %s", name);
                cmd->fn(req, args, a->tables[t].ctx);
                json_decref(empty);
                return;
            }
        }
    }
    sy_admin_fail(req, "unknown_command", "unknown command '%s' (try: help)", name);
    json_decref(empty);
}

void sy_admin_call(struct sy_admin *a, const char *name, json_t *args, sy_admin_reply_fn reply, void *arg)
{
    struct sy_admin_req *req = calloc(1, sizeof *req);
    if (req == NULL) {
        json_t *oom = json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code", "internal", "message",
                                "out of memory");
        reply(oom, arg);
        json_decref(oom);
        return;
    }
    req->reply = reply;
    req->reply_arg = arg;
    run(a, req, name, args);
}

static void dispatch(struct admin_conn *c, const char *line, size_t len)
{
    struct sy_admin_req *req = calloc(1, sizeof *req);
    if (req == NULL) {
        conn_close(c);
        return;
    }
    req->conn = c;
    c->pending++;
    snprintf(req->cmd, sizeof req->cmd, "?");
    json_error_t je;
    json_t *doc = json_loadb(line, len, 0, &je);
    if (doc == NULL || !json_is_object(doc)) {
        sy_admin_fail(req, "bad_request", "request is not a JSON object: %s", doc ? "wrong type" : je.text);
        json_decref(doc);
        return;
    }
    const char *name = sy_admin_arg_str(doc, "cmd");
    json_t *args = json_object_get(doc, "args");
    if (name == NULL || (args != NULL && !json_is_object(args))) {
        sy_admin_fail(req, "bad_request", "request needs \"cmd\" (string) and optional \"args\" (object)");
        json_decref(doc);
        return;
    }
    run(c->admin, req, name, args);
    json_decref(doc);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct admin_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        struct evbuffer_ptr nl = evbuffer_search(in, "\n", 1, NULL);
        if (nl.pos < 0) {
            if (evbuffer_get_length(in) > ADMIN_LINE_MAX) {
                sy_log_warn("admin: request line over %u bytes, closing", ADMIN_LINE_MAX);
                conn_close(c);
            }
            return;
        }
        if ((size_t)nl.pos > ADMIN_LINE_MAX) {
            conn_close(c);
            return;
        }
        size_t len = (size_t)nl.pos;
        char *line = malloc(len + 1);
        if (line == NULL) {
            conn_close(c);
            return;
        }
        evbuffer_remove(in, line, len + 1);
        line[len] = '\0';
        c->pending++; /* keep c alive across handlers that answer synchronously */
        dispatch(c, line, len);
        free(line);
        c->pending--;
        if (c->closing) {
            conn_maybe_free(c);
            return;
        }
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct admin_conn *c = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_close(c);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
    struct sy_admin *a = arg;
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        (cred.uid != 0 && cred.uid != geteuid())) {
        sy_log_warn("admin: refused peer uid %d pid %d (only root or uid %d)", (int)cred.uid, (int)cred.pid,
                    (int)geteuid());
        close(fd);
        return;
    }
    struct admin_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return;
    }
    c->admin = a;
    c->bev = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        free(c);
        close(fd);
        return;
    }
    TAILQ_INSERT_TAIL(&a->conns, c, link);
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

struct sy_admin *sy_admin_open(struct event_base *base, const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sun.sun_path) {
        snprintf(err, errlen, "admin_socket path longer than %zu bytes: %s", sizeof sun.sun_path - 1, path);
        return NULL;
    }
    strcpy(sun.sun_path, path);
    /* A socket file left by a dead daemon is replaced; a live daemon's is not. */
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe >= 0) {
        if (connect(probe, (struct sockaddr *)&sun, sizeof sun) == 0) {
            close(probe);
            snprintf(err, errlen, "admin_socket %s: another switchyardd is listening there", path);
            return NULL;
        }
        close(probe);
    }
    unlink(path);
    struct sy_admin *a = calloc(1, sizeof *a);
    if (a == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->base = base;
    TAILQ_INIT(&a->conns);
    snprintf(a->path, sizeof a->path, "%s", path);
    mode_t old = umask(0177); /* the socket is born 0600: no window where others may connect */
    a->listener = evconnlistener_new_bind(base, on_accept, a, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 64,
                                          (struct sockaddr *)&sun, sizeof sun);
    int saved = errno;
    umask(old);
    if (a->listener == NULL) {
        snprintf(err, errlen, "admin_socket %s: %s", path, strerror(saved));
        free(a);
        return NULL;
    }
    chmod(path, 0600);
    sy_admin_register(a, admin_cmds, SY_ARRAY_LEN(admin_cmds), a);
    return a;
}

void sy_admin_shutdown(struct sy_admin *a)
{
    if (a != NULL)
        a->shutting_down = true;
}

void sy_admin_close(struct sy_admin *a)
{
    if (a == NULL)
        return;
    evconnlistener_free(a->listener);
    unlink(a->path);
    /* Requests still unanswered at shutdown lose their connection; nothing answers them later
     * (the daemon waited for its worker threads first). */
    struct admin_conn *c;
    while ((c = TAILQ_FIRST(&a->conns)) != NULL) {
        TAILQ_REMOVE(&a->conns, c, link);
        if (c->bev)
            bufferevent_free(c->bev);
        free(c);
    }
    free(a);
}

static int admin_jobs;

void sy_admin_job_begin(void)
{
    __atomic_add_fetch(&admin_jobs, 1, __ATOMIC_ACQ_REL);
}

void sy_admin_job_end(void)
{
    __atomic_sub_fetch(&admin_jobs, 1, __ATOMIC_ACQ_REL);
}

int sy_admin_jobs(void)
{
    return __atomic_load_n(&admin_jobs, __ATOMIC_ACQUIRE);
}
