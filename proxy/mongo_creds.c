/* SCRAM credential cache of a MongoDB pair (see mongo_creds.h). One admin connection to the active side:
 *   connect -> saslStart/saslContinue as admin_user (SCRAM-SHA-256, mongo_login.c) -> READY
 *   READY + a waiter -> {usersInfo: user, showCredentials: true, $db: db} -> its users[0] credentials
 * One command in flight; waiters are served in order. Any failure closes the connection and fails every
 * waiter with the reason (the login that asked answers the client with an error); the next fetch
 * reconnects. A change of the active side drops the connection and everything cached. */
#include "proxy/mongo_creds.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/log.h"
#include "proxy/mongo_login.h"
#include "proxy/mongo_sasl.h"
#include "proxy/mongo_wire.h"

#define CREDS_CONNECT_S 10
#define CREDS_IO_S 30

struct sy_mongo_creds_wait {
    TAILQ_ENTRY(sy_mongo_creds_wait) link;
    char db[128];
    char user[SY_SCRAM_MAX_USER + 1];
    sy_mongo_creds_cb cb;          /* NULL: cancelled */
    void *arg;
    uint64_t seq;                  /* order of asking: a read sent later serves it */
};
TAILQ_HEAD(creds_wait_list, sy_mongo_creds_wait);

struct creds_entry {
    struct creds_entry *next;
    char db[128];
    char user[SY_SCRAM_MAX_USER + 1];
    bool has[2];                       /* by enum sy_scram_hash */
    uint64_t read_ms;                  /* when it was read (sy_now_ms) */
    struct sy_scram_cred cred[2];
};

enum conn_state { CS_CLOSED, CS_CONNECTING, CS_LOGIN, CS_READY, CS_QUERY };

struct sy_mongo_creds {
    struct event_base *base;           /* ref */
    struct sy_pair *pair;              /* ref */
    char label[96];
    struct bufferevent *conn;          /* owned; NULL when closed */
    enum conn_state st;
    char host[256];                    /* where conn goes */
    unsigned port;
    struct sy_mongo_login login;       /* the admin login (secrets wiped after) */
    int32_t next_id, want_id;          /* request ids; the reply awaited answers want_id */
    struct event *kick;                /* owned: pumps the queue from the loop */
    struct creds_wait_list queue;
    struct creds_entry *entries;
    uint64_t next_seq;                 /* of waiters */
    uint64_t sent_seq;                 /* next_seq when the usersInfo in flight was sent */
};

static void entry_free(struct creds_entry *e)
{
    OPENSSL_cleanse(e, sizeof *e);
    free(e);
}

static void entries_clear(struct sy_mongo_creds *c)
{
    struct creds_entry *e, *n;
    for (e = c->entries; e != NULL; e = n) {
        n = e->next;
        entry_free(e);
    }
    c->entries = NULL;
}

static struct creds_entry **entry_find(struct sy_mongo_creds *c, const char *db, const char *user)
{
    struct creds_entry **pp;
    for (pp = &c->entries; *pp != NULL; pp = &(*pp)->next)
        if (strcmp((*pp)->db, db) == 0 && strcmp((*pp)->user, user) == 0)
            return pp;
    return pp;
}

static void on_kick(evutil_socket_t fd, short what, void *arg);

struct sy_mongo_creds *sy_mongo_creds_new(struct event_base *base, struct sy_pair *pair)
{
    struct sy_mongo_creds *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->base = base;
    c->pair = pair;
    snprintf(c->label, sizeof c->label, "%s credentials", pair->cfg->name);
    TAILQ_INIT(&c->queue);
    c->kick = evtimer_new(base, on_kick, c);
    if (c->kick == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

static void conn_close(struct sy_mongo_creds *c)
{
    if (c->conn)
        bufferevent_free(c->conn);
    c->conn = NULL;
    c->st = CS_CLOSED;
    sy_mongo_login_wipe(&c->login);
}

void sy_mongo_creds_free(struct sy_mongo_creds *c)
{
    if (c == NULL)
        return;
    struct sy_mongo_creds_wait *w;
    while ((w = TAILQ_FIRST(&c->queue)) != NULL) {
        TAILQ_REMOVE(&c->queue, w, link);
        free(w);
    }
    conn_close(c);
    event_free(c->kick);
    entries_clear(c);
    free(c);
}

int sy_mongo_creds_find(struct sy_mongo_creds *c, const char *db, const char *user, enum sy_scram_hash h,
                        uint64_t max_age_ms, struct sy_scram_cred *out)
{
    struct creds_entry *e = *entry_find(c, db, user);
    if (e == NULL || sy_now_ms() - e->read_ms > max_age_ms)
        return -1;
    if (!e->has[h])
        return 0;
    *out = e->cred[h];
    return 1;
}

void sy_mongo_creds_forget(struct sy_mongo_creds *c, const char *db, const char *user)
{
    struct creds_entry **pp = entry_find(c, db, user);
    if (*pp != NULL) {
        struct creds_entry *e = *pp;
        *pp = e->next;
        entry_free(e);
    }
}

static void kick(struct sy_mongo_creds *c)
{
    static const struct timeval now = { 0, 0 };
    evtimer_add(c->kick, &now);
}

struct sy_mongo_creds_wait *sy_mongo_creds_fetch(struct sy_mongo_creds *c, const char *db, const char *user,
                                                 sy_mongo_creds_cb cb, void *arg)
{
    struct sy_mongo_creds_wait *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    snprintf(w->db, sizeof w->db, "%s", db);
    snprintf(w->user, sizeof w->user, "%s", user);
    w->cb = cb;
    w->arg = arg;
    w->seq = ++c->next_seq;
    TAILQ_INSERT_TAIL(&c->queue, w, link);
    kick(c);
    return w;
}

void sy_mongo_creds_cancel(struct sy_mongo_creds_wait *w)
{
    if (w != NULL)
        w->cb = NULL; /* freed when the queue reaches it */
}

/* Every waiter fails with err; the connection closes. */
static void fail_all(struct sy_mongo_creds *c, const char *what)
{
    char err[600];
    snprintf(err, sizeof err, "cannot read credentials from %s:%u: %s", c->host, c->port, what);
    sy_log_warn("%s: %s", c->label, err);
    conn_close(c);
    struct creds_wait_list done;
    TAILQ_INIT(&done);
    TAILQ_CONCAT(&done, &c->queue, link);
    struct sy_mongo_creds_wait *w;
    while ((w = TAILQ_FIRST(&done)) != NULL) {
        TAILQ_REMOVE(&done, w, link);
        if (w->cb)
            w->cb(w->arg, err);
        free(w);
    }
}

static int send_cmd(struct sy_mongo_creds *c, const bson_t *cmd)
{
    size_t need = 0;
    uint8_t *buf = malloc(cmd->len + 64);
    c->next_id = c->next_id >= INT32_MAX || c->next_id < 0 ? 1 : c->next_id + 1;
    int rc = buf != NULL && sy_mongo_msg_build(buf, cmd->len + 64, &need, c->next_id, 0, 0, bson_get_data(cmd),
                                               cmd->len, NULL, 0) == 0 ? 0 : -1;
    if (rc == 0) {
        c->want_id = c->next_id;
        bufferevent_write(c->conn, buf, need);
    }
    free(buf);
    return rc;
}

static void send_query(struct sy_mongo_creds *c)
{
    struct sy_mongo_creds_wait *w = TAILQ_FIRST(&c->queue);
    bson_t cmd;
    bson_init(&cmd);
    BSON_APPEND_UTF8(&cmd, "usersInfo", w->user);
    BSON_APPEND_BOOL(&cmd, "showCredentials", true);
    BSON_APPEND_UTF8(&cmd, "$db", w->db);
    int rc = send_cmd(c, &cmd);
    bson_destroy(&cmd);
    if (rc != 0) {
        fail_all(c, "usersInfo does not fit");
        return;
    }
    c->sent_seq = c->next_seq;
    c->st = CS_QUERY;
}

static void on_read(struct bufferevent *bev, void *arg);
static void on_event(struct bufferevent *bev, short what, void *arg);

static void conn_open(struct sy_mongo_creds *c)
{
    const struct sy_endpoint *ep = sy_pair_active_endpoint(c->pair);
    snprintf(c->host, sizeof c->host, "%s", ep->host);
    c->port = ep->port;
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", ep->port);
    int rc = getaddrinfo(ep->host, port, &hints, &res);
    if (rc != 0) {
        fail_all(c, gai_strerror(rc));
        return;
    }
    c->conn = bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (c->conn == NULL) {
        freeaddrinfo(res);
        fail_all(c, "out of memory");
        return;
    }
    bufferevent_setcb(c->conn, on_read, NULL, on_event, c);
    struct timeval tmo = { CREDS_CONNECT_S, 0 };
    bufferevent_set_timeouts(c->conn, &tmo, &tmo);
    c->st = CS_CONNECTING;
    rc = bufferevent_socket_connect(c->conn, res->ai_addr, (int)res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0) {
        fail_all(c, "connect failed");
        return;
    }
    bufferevent_enable(c->conn, EV_READ | EV_WRITE);
}

/* Serves the queue: drops cancelled waiters at its head, (re)connects, sends the next query. */
static void pump(struct sy_mongo_creds *c)
{
    const struct sy_endpoint *ep = sy_pair_active_endpoint(c->pair);
    if (c->st != CS_CLOSED && (strcmp(ep->host, c->host) != 0 || ep->port != c->port)) {
        conn_close(c);           /* the active side changed: what was read belongs to the other side */
        entries_clear(c);
    }
    if (c->st == CS_QUERY || c->st == CS_CONNECTING || c->st == CS_LOGIN)
        return;
    struct sy_mongo_creds_wait *w;
    while ((w = TAILQ_FIRST(&c->queue)) != NULL && w->cb == NULL) {
        TAILQ_REMOVE(&c->queue, w, link);
        free(w);
    }
    if (w == NULL)
        return;
    if (c->st == CS_CLOSED)
        conn_open(c);
    else if (c->st == CS_READY)
        send_query(c);
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    pump(arg);
}

static void random_nonce(char *out, size_t cap)
{
    uint8_t r[18];
    if (RAND_bytes(r, sizeof r) != 1)
        memset(r, 0x5a, sizeof r);
    sy_scram_b64_encode(r, sizeof r, out, cap);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct sy_mongo_creds *c = arg;
    if ((what & BEV_EVENT_CONNECTED) && c->st == CS_CONNECTING) {
        struct timeval tmo = { CREDS_IO_S, 0 };
        bufferevent_set_timeouts(c->conn, &tmo, &tmo);
        char nonce[64];
        random_nonce(nonce, sizeof nonce);
        bson_t cmd;
        const struct sy_pair_cfg *cfg = c->pair->cfg;
        if (sy_mongo_login_start(&c->login, SY_SCRAM_SHA256, cfg->admin_user, "admin", cfg->admin_password, NULL,
                                 NULL, nonce, &cmd) != 0) {
            fail_all(c, "admin_user does not fit a SCRAM message");
            return;
        }
        int rc = send_cmd(c, &cmd);
        bson_destroy(&cmd);
        if (rc != 0) {
            fail_all(c, "saslStart does not fit");
            return;
        }
        c->st = CS_LOGIN;
        return;
    }
    if (what & BEV_EVENT_TIMEOUT)
        fail_all(c, c->st == CS_CONNECTING ? "connect timed out" : "no answer in time");
    else if (what & BEV_EVENT_EOF)
        fail_all(c, "the server closed the connection");
    else
        fail_all(c, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

/* usersInfo's reply: the head waiter's user stored (or known absent). */
static void users_reply(struct sy_mongo_creds *c, const uint8_t *body, size_t len)
{
    struct sy_mongo_creds_wait *w = TAILQ_FIRST(&c->queue);
    bson_t b;
    bson_iter_t it, arr;
    if (!bson_init_static(&b, body, len) || !bson_iter_init_find(&it, &b, "ok") || !bson_iter_as_bool(&it)) {
        char msg[300] = "usersInfo refused";
        uint32_t n = 0;
        if (bson_init_static(&b, body, len) && bson_iter_init_find(&it, &b, "errmsg") && BSON_ITER_HOLDS_UTF8(&it))
            snprintf(msg, sizeof msg, "usersInfo refused: %s", bson_iter_utf8(&it, &n));
        fail_all(c, msg);
        return;
    }
    struct creds_entry **pp = entry_find(c, w->db, w->user);
    struct creds_entry *e = *pp;
    if (e == NULL) {
        if ((e = calloc(1, sizeof *e)) == NULL) {
            fail_all(c, "out of memory");
            return;
        }
        snprintf(e->db, sizeof e->db, "%s", w->db);
        snprintf(e->user, sizeof e->user, "%s", w->user);
        *pp = e;
    }
    e->has[0] = e->has[1] = false;
    e->read_ms = sy_now_ms();
    if (bson_iter_init_find(&it, &b, "users") && BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr) &&
        bson_iter_next(&arr) && BSON_ITER_HOLDS_DOCUMENT(&arr)) {
        uint32_t dl = 0;
        const uint8_t *d = NULL;
        bson_iter_document(&arr, &dl, &d);
        char err[200];
        for (int h = 0; h < 2 && d != NULL; h++)
            e->has[h] = sy_mongo_cred_parse(d, dl, (enum sy_scram_hash)h, &e->cred[h], err, sizeof err) == 0;
    }
    sy_log_debug("%s: %s.%s read (SCRAM-SHA-1 %s, SCRAM-SHA-256 %s)", c->label, w->db, w->user,
                 e->has[SY_SCRAM_SHA1] ? "yes" : "no", e->has[SY_SCRAM_SHA256] ? "yes" : "no");
    /* served: the head and every waiter for the same user that asked before this read was sent */
    struct creds_wait_list done;
    TAILQ_INIT(&done);
    struct sy_mongo_creds_wait *x, *nx;
    char db[sizeof w->db], user[sizeof w->user];
    snprintf(db, sizeof db, "%s", w->db);
    snprintf(user, sizeof user, "%s", w->user);
    for (x = TAILQ_FIRST(&c->queue); x != NULL; x = nx) {
        nx = TAILQ_NEXT(x, link);
        if (x->seq <= c->sent_seq && strcmp(x->db, db) == 0 && strcmp(x->user, user) == 0) {
            TAILQ_REMOVE(&c->queue, x, link);
            TAILQ_INSERT_TAIL(&done, x, link);
        }
    }
    c->st = CS_READY;
    while ((x = TAILQ_FIRST(&done)) != NULL) {
        TAILQ_REMOVE(&done, x, link);
        if (x->cb)
            x->cb(x->arg, NULL);
        free(x);
    }
    kick(c);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct sy_mongo_creds *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    while (c->conn != NULL && evbuffer_get_length(in) >= SY_MONGO_HDR_LEN) {
        const uint8_t *p = evbuffer_pullup(in, SY_MONGO_HDR_LEN);
        struct sy_mongo_header hdr;
        size_t len = 0;
        char err[300];
        /* sy_mongo_frame reads only the 16 header bytes (contiguous at p); AGAIN: the body is on its way */
        enum sy_parse pr = sy_mongo_frame(p, evbuffer_get_length(in), SY_MONGO_MAX_MESSAGE, &hdr, &len, err,
                                          sizeof err);
        if (pr == SY_PARSE_BAD) {
            fail_all(c, err);
            return;
        }
        if (pr == SY_PARSE_AGAIN)
            return;
        p = evbuffer_pullup(in, (ev_ssize_t)len);
        struct sy_mongo_msg m;
        if (hdr.op_code != SY_MONGO_OP_MSG || sy_mongo_msg_parse(p, len, &m, err, sizeof err) != 0) {
            fail_all(c, hdr.op_code != SY_MONGO_OP_MSG ? "unexpected reply opcode" : err);
            return;
        }
        if (hdr.response_to != c->want_id) {
            evbuffer_drain(in, len);
            continue;
        }
        if (c->st == CS_LOGIN) {
            bson_t next;
            int32_t code = 0;
            int rc = sy_mongo_login_step(&c->login, m.body, m.body_len, &next, &code, err, sizeof err);
            evbuffer_drain(in, len);
            if (rc < 0) {
                char msg[400];
                snprintf(msg, sizeof msg, "admin_user login failed: %s", err);
                fail_all(c, msg);
                return;
            }
            if (rc == 0) {
                int s = send_cmd(c, &next);
                bson_destroy(&next);
                if (s != 0) {
                    fail_all(c, "saslContinue does not fit");
                    return;
                }
                continue;
            }
            sy_mongo_login_wipe(&c->login);
            sy_log_debug("%s: logged in to %s:%u as the admin user", c->label, c->host, c->port);
            c->st = CS_READY;
            pump(c);
            continue;
        }
        if (c->st == CS_QUERY) {
            users_reply(c, m.body, m.body_len);
            if (c->conn != NULL)
                evbuffer_drain(in, len);
            continue;
        }
        evbuffer_drain(in, len);
    }
}
