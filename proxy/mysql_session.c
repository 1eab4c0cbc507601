/* One MariaDB client session: the proxy's own handshake and mysql_native_password check, the
 * backend login as the same account, then packet-by-packet relay with one request in flight:
 *
 *   client --request--> [frame, inspect, maybe rewrite] --> backend
 *   client <--reply---- [track status, session state, ack ledger] <-- backend
 *
 * What a switchover needs is tracked on the way: in-transaction (server status flags), schema and
 * session variables (session tracking '*', hidden from clients that did not ask for it), prepared
 * statements, the last GTID acknowledged. Rows and large packets stream through without being
 * buffered whole. A request that arrives while the pair is held (and no transaction is open) stays
 * in the socket buffer until release. Sessions are freed by the proxy's reaper, never inside their
 * own callbacks. */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/log.h"
#include "proxy/mysql_codec.h"
#include "proxy/mysql_compress.h"
#include "proxy/mysql_conn.h"
#include "proxy/mysql_proxy.h"
#include "proxy/mysql_session.h"
#include "proxy/mysql_sql.h"

#define SESS_HIGH_WATER (4u << 20)  /* stop reading a side while the other's output holds more */
#define SESS_MAX_TRACKED_SQL (1u << 20) /* prepared statement text kept for re-prepare */
#define SESS_FLUSH_MS 5000              /* how long a closed session's final error may take to be read */
/* MariaDB extensions offered when the server offers them: progress reports (ERR 0xFFFF packets inside a
 * reply, followed by the tracker), bulk execute (statement ids mapped like any COM_STMT_*), extended type
 * info and metadata caching (the tracker reads the "metadata follows" byte). COM_MULTI is not offered. */
#define SESS_EXT_CAPS                                                                                      \
    (SY_CAP_MARIADB_PROGRESS | SY_CAP_MARIADB_STMT_BULK | SY_CAP_MARIADB_EXT_TYPE_INFO |                 \
     SY_CAP_MARIADB_CACHE_METADATA)

static const char *const sess_state_names[SS__COUNT] = {
    "HANDSHAKE", "AUTH_SWITCH", "AUTH_RELAY", "LOOKUP", "LOGIN", "INIT", "IDLE",
    "BUSY", "INFILE", "CHANGE_USER", "HELD", "INTERNAL", "PARKED", "RECONNECT", "CLOSING",
};

static void process_client(struct sy_mysql_session *s);
static void process_backend(struct sy_mysql_session *s);
static void auth_lookup(struct sy_mysql_session *s);
static void rearm_client(struct sy_mysql_session *s);
static void backend_lost(struct sy_mysql_session *s);
static void on_backend_auth_packet(struct sy_mysql_conn *c, const uint8_t *p, size_t n, void *arg);
static void on_client_write(struct bufferevent *bev, void *arg);
static void on_socket_out(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);
static void on_client_drained(evutil_socket_t fd, short what, void *arg);

/* ---- state, closing ---------------------------------------------------------------------------- */

bool sy_mysql_session_set_state(struct sy_mysql_session *s, enum sess_state to)
{
    sy_log_debug("%s: %s -> %s", s->label, sess_state_names[s->state], sess_state_names[to]);
    s->state = to;
    return true;
}

static void stmt_free(struct sess_stmt *st)
{
    free(st->types);
    free(st->sql);
}

static void stmts_clear(struct sy_mysql_session *s)
{
    for (size_t i = 0; i < s->n_stmts; i++)
        stmt_free(&s->stmts[i]);
    s->n_stmts = 0;
}

/* Where bytes for the client go: the socket's (or TLS filter's) output, or, for a compressed session, a
 * plain buffer that client_push() hands to the compression filter in one piece per loop callback (so a
 * result set becomes a few frames, not one per row). */
static struct evbuffer *client_out(const struct sy_mysql_session *s)
{
    return s->zout ? s->zout : bufferevent_get_output(s->client);
}

static void client_push(struct sy_mysql_session *s)
{
    if (s->zout && s->client && evbuffer_get_length(s->zout) > 0)
        evbuffer_add_buffer(bufferevent_get_output(s->client), s->zout);
}

/* Bytes queued toward the client that the kernel does not have yet, down every filter (TLS,
 * compression) to the socket's own bufferevent. */
static size_t client_pending(const struct sy_mysql_session *s)
{
    size_t n = s->zout ? evbuffer_get_length(s->zout) : 0;
    for (struct bufferevent *b = s->client; b != NULL; b = bufferevent_get_underlying(b))
        n += evbuffer_get_length(bufferevent_get_output(b));
    return n;
}

/* A connection the session no longer uses: its reads and writes stop now, and the reaper frees it on the
 * next loop turn (never inside a callback of its own), so the database ends that session (its locks, its
 * temporary tables) without waiting for anything else. */
void sy_mysql_session_release_conn(struct sy_mysql_proxy *px, struct sy_mysql_conn *c)
{
    if (c == NULL)
        return;
    sy_mysql_conn_detach(c);
    bufferevent_setcb(sy_mysql_conn_bev(c), NULL, NULL, NULL, NULL); /* not the session's any more */
    bufferevent_disable(sy_mysql_conn_bev(c), EV_READ | EV_WRITE);
    if (px->n_dead == px->cap_dead) {
        size_t cap = px->cap_dead ? px->cap_dead * 2 : 16;
        struct sy_mysql_conn **nd = realloc(px->dead, cap * sizeof *nd);
        if (nd == NULL) {
            sy_mysql_conn_free(c); /* out of memory: free it now (it never calls back) */
            return;
        }
        px->dead = nd;
        px->cap_dead = cap;
    }
    px->dead[px->n_dead++] = c;
    static const struct timeval now = { 0, 0 };
    evtimer_add(px->reaper, &now);
}

/* The one way a session ends. With `flush`, what is queued for the client (a final error) is still
 * written, for at most SESS_FLUSH_MS; the backend and any warm connection are released at once either
 * way. The session leaves the live list now and is freed by the reaper. */
static void close_session(struct sy_mysql_session *s, const char *why, bool flush)
{
    if (s->state == SS_CLOSING)
        return;
    sy_log_info("%s: closed (%s)", s->label, why);
    sy_mysql_session_set_state(s, SS_CLOSING);
    struct sy_mysql_proxy *px = s->px;
    sy_mysql_session_release_conn(px, s->backend);
    sy_mysql_session_release_conn(px, s->warm);
    sy_mysql_session_release_conn(px, s->probe);
    s->backend = s->warm = s->probe = NULL;
    sy_mysql_accounts_cancel(s->wait);
    s->wait = NULL;
    s->flush_deadline_ms = 0;
    if (s->client) {
        bufferevent_disable(s->client, EV_READ);
        client_push(s);
        if (flush && client_pending(s) > 0) {
            s->flush_deadline_ms = sy_now_ms() + SESS_FLUSH_MS;
            bufferevent_enable(s->client, EV_WRITE); /* on_client_write wakes the reaper once drained */
        } else {
            bufferevent_disable(s->client, EV_WRITE);
        }
    }
    TAILQ_REMOVE(&px->sessions, s, link);
    px->n_sessions--;
    TAILQ_INSERT_TAIL(&px->closing, s, link);
    static const struct timeval now = { 0, 0 };
    evtimer_add(px->reaper, &now);
}

void sy_mysql_session_close(struct sy_mysql_session *s, const char *why)
{
    close_session(s, why, false);
}

static void session_free(struct sy_mysql_session *s)
{
    if (s->client)
        bufferevent_free(s->client);
    if (s->zout)
        evbuffer_free(s->zout);
    if (s->drained_ev)
        event_free(s->drained_ev);
    sy_mysql_conn_free(s->backend); /* released at close already: NULL here */
    sy_mysql_conn_free(s->warm);
    OPENSSL_cleanse(s->stage1, sizeof s->stage1);
    OPENSSL_cleanse(s->client_auth, sizeof s->client_auth);
    free(s->attrs);
    free(s->pending_prepare_sql);
    stmts_clear(s);
    free(s->stmts);
    sy_mysql_track_vars_clear(s);
    free(s->vars);
    sy_mysql_track_free(s);
    free(s);
}

/* The reaper (a zero timer: the next loop turn after a close): frees released connections, and closed
 * sessions whose last bytes reached the client, whose client is gone, or whose flush deadline passed
 * (a client that never reads cannot keep anything open). `all`: everything now (proxy shutdown). */
void sy_mysql_session_reap(struct sy_mysql_proxy *px, bool all)
{
    for (size_t i = 0; i < px->n_dead; i++)
        sy_mysql_conn_free(px->dead[i]);
    px->n_dead = 0;
    uint64_t now = sy_now_ms(), next = 0;
    struct sy_mysql_session *s, *tmp;
    for (s = TAILQ_FIRST(&px->closing); s != NULL; s = tmp) {
        tmp = TAILQ_NEXT(s, link);
        bool flushed = s->client == NULL || s->client_gone || client_pending(s) == 0;
        if (all || flushed || now >= s->flush_deadline_ms) {
            if (!flushed)
                sy_log_info("%s: the client did not read its final error within %d ms: dropped", s->label,
                            SESS_FLUSH_MS);
            TAILQ_REMOVE(&px->closing, s, link);
            session_free(s);
        } else if (next == 0 || s->flush_deadline_ms < next) {
            next = s->flush_deadline_ms;
        }
    }
    if (next != 0) {
        uint64_t wait = next > now ? next - now : 1;
        struct timeval tv = { (time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000 };
        evtimer_add(px->reaper, &tv);
    }
}

/* ---- writing to the client ------------------------------------------------------------------- */

static void client_packet(struct sy_mysql_session *s, uint8_t seq, const uint8_t *payload, size_t len)
{
    uint8_t hdr[4];
    sy_mysql_hdr_encode(hdr, (uint32_t)len, seq);
    struct evbuffer *out = client_out(s);
    evbuffer_add(out, hdr, 4);
    evbuffer_add(out, payload, len);
}

/* Why the proxy itself answered an error, for switchyard_client_errors_total{reason}. */
static enum sy_mysql_err_reason err_reason(uint16_t code)
{
    switch (code) {
    case 1043: case 1044: case 1045: case 1251: case 4151:
        return SY_ERR_AUTH;
    case 1213:
        return SY_ERR_ABORTED_TXN;
    case 1927:
        return SY_ERR_FORCED_CLOSE;
    case 2013:
        return SY_ERR_LOST_CONNECTION;
    default:
        return SY_ERR_OTHER;
    }
}

/* Every error the proxy answers itself goes through here. Codes 2000-2999 are the client library's own:
 * Connector/C rejects them from a server ("malformed packet") and then does not treat the connection as
 * dead, so auto-reconnect never triggers. Such a reason is sent as the server's 1927 "connection killed"
 * with SQLSTATE 08S01 (a communication failure to JDBC pools), and the proxy closes the connection after. */
static void client_err(struct sy_mysql_session *s, uint8_t seq, uint16_t code, const char *state, const char *msg)
{
    s->px->client_errors[err_reason(code)]++;
    if (code >= 2000 && code <= 2999) {
        code = SY_ER_CONNECTION_KILLED;
        state = "08S01";
    }
    uint8_t buf[1024];
    size_t len = sy_mysql_err_encode(code, state, msg, buf, sizeof buf);
    if (len)
        client_packet(s, seq, buf, len);
}

static void client_ok(struct sy_mysql_session *s, uint8_t seq)
{
    struct sy_mysql_ok ok = { .status = s->status };
    uint8_t buf[64];
    size_t len = sy_mysql_ok_encode(&ok, 0x00, s->caps & ~SY_CAP_SESSION_TRACK, buf, sizeof buf);
    if (len)
        client_packet(s, seq, buf, len);
}

/* The backend went away: the client's connection goes too, without a packet — exactly what the client
 * would see connected directly (its library reports 2013/2006 and may reconnect). */
static void lose_session(struct sy_mysql_session *s, const char *why)
{
    s->px->client_errors[SY_ERR_LOST_CONNECTION]++;
    sy_mysql_session_close(s, why);
}

/* Closes after flushing an error the client can still read. */
static void fail_session(struct sy_mysql_session *s, uint8_t seq, uint16_t code, const char *state, const char *msg)
{
    if (s->client && s->state != SS_CLOSING)
        client_err(s, seq, code, state, msg);
    char why[700];
    snprintf(why, sizeof why, "%u %s", code, msg);
    close_session(s, why, true);
}

/* ---- backpressure ------------------------------------------------------------------------------ */

static void client_read_update(struct sy_mysql_session *s)
{
    if (s->state == SS_CLOSING)
        return;
    if (s->client_bp || s->state == SS_HELD) {
        bufferevent_disable(s->client, EV_READ);
    } else {
        bufferevent_enable(s->client, EV_READ);
        if (s->compressed) {
            /* frames that reached the socket while reading was off: a filter only looks at them when more
             * arrive, which may be never (the client sent everything). Inflate them now; the caller goes on
             * to process_client, so the read callback this raises is not needed. */
            s->pulling = true;
            bufferevent_flush(s->client, EV_READ, BEV_NORMAL);
            s->pulling = false;
        }
    }
}

static void backend_read_update(struct sy_mysql_session *s)
{
    if (s->state == SS_CLOSING || s->backend == NULL)
        return;
    if (s->backend_bp)
        bufferevent_disable(sy_mysql_conn_bev(s->backend), EV_READ);
    else
        bufferevent_enable(sy_mysql_conn_bev(s->backend), EV_READ);
}

/* Moves n bytes from src to dst; pauses reading src's side when dst is over high water. */
static void move_bytes(struct sy_mysql_session *s, struct evbuffer *src, struct evbuffer *dst, size_t n, bool to_backend)
{
    evbuffer_remove_buffer(src, dst, n);
    if ((to_backend ? evbuffer_get_length(dst) : client_pending(s)) > SESS_HIGH_WATER) {
        if (to_backend) {
            s->client_bp = true;
            client_read_update(s);
        } else {
            s->backend_bp = true;
            backend_read_update(s);
        }
    }
}

/* ---- direct writes -----------------------------------------------------------------------------
 * Once a session is logged in, bytes produced while handling a read are written straight to plain
 * TCP sockets at the end of that callback: one write per batch, and libevent's write event (two
 * epoll_ctl calls per message) is armed only when the socket takes less than we have, disarmed once
 * drained. A TLS client keeps the OpenSSL bufferevent's own writing. */

static bool is_plain(struct bufferevent *bev)
{
    return bufferevent_get_underlying(bev) == NULL;
}

static void flush_side(struct bufferevent *bev)
{
    if (!is_plain(bev)) {
        bufferevent_enable(bev, EV_WRITE);
        return;
    }
    struct evbuffer *out = bufferevent_get_output(bev);
    /* A bufferevent keeps its output's front frozen; its own write path unfreezes around the write,
     * and so do we. */
    evbuffer_unfreeze(out, 1);
    while (evbuffer_get_length(out) > 0)
        if (evbuffer_write(out, bufferevent_getfd(bev)) <= 0)
            break; /* EAGAIN, or an error libevent will report once the write event runs */
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(bev, EV_WRITE);
    else
        bufferevent_disable(bev, EV_WRITE); /* no-op (no syscall) when it was not armed */
}

static void session_flush(struct sy_mysql_session *s)
{
    if (!s->direct || s->state == SS_CLOSING)
        return;
    client_push(s);
    flush_side(s->client);
    /* The backend's bufferevent is ours only between logins (mysql_conn drives it while connecting,
     * logging in or running the session-setup query). */
    bool owned = s->state == SS_IDLE || s->state == SS_BUSY || s->state == SS_INFILE || s->state == SS_HELD;
    if (s->backend && owned)
        flush_side(sy_mysql_conn_bev(s->backend));
}

/* A write callback: output drained -> stop watching writability (plain sockets). */
static void write_drained(struct sy_mysql_session *s, struct bufferevent *bev)
{
    if (s->direct && s->state != SS_CLOSING && is_plain(bev) && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
}

/* ---- prepared statements ------------------------------------------------------------------------ */

static struct sess_stmt *stmt_find(struct sy_mysql_session *s, uint32_t id)
{
    for (size_t i = 0; i < s->n_stmts; i++)
        if (s->stmts[i].id == id)
            return &s->stmts[i];
    return NULL;
}

/* A statement the backend prepared with backend_id: the client gets the same id unless, after a
 * flip, a statement re-prepared there already uses it; then an unused one. Returns the client's id. */
static uint32_t stmt_add(struct sy_mysql_session *s, uint32_t backend_id, uint16_t num_params)
{
    uint32_t id = backend_id;
    if (s->ids_mapped)
        while (stmt_find(s, id) != NULL)
            id = id == UINT32_MAX ? 1 : id + 1;
    sy_mysql_track_warm_outdated(s);
    if (s->n_stmts == s->cap_stmts) {
        size_t cap = s->cap_stmts ? s->cap_stmts * 2 : 8;
        struct sess_stmt *ns = realloc(s->stmts, cap * sizeof *ns);
        if (ns == NULL)
            return id;
        s->stmts = ns;
        s->cap_stmts = cap;
    }
    s->stmts[s->n_stmts++] = (struct sess_stmt){ .id = id, .backend_id = backend_id, .num_params = num_params,
                                                 .sql = s->pending_prepare_sql };
    s->pending_prepare_sql = NULL;
    return id;
}

static void stmt_remove(struct sy_mysql_session *s, uint32_t id)
{
    for (size_t i = 0; i < s->n_stmts; i++) {
        if (s->stmts[i].id == id) {
            sy_mysql_track_warm_outdated(s);
            stmt_free(&s->stmts[i]);
            s->stmts[i] = s->stmts[--s->n_stmts];
            return;
        }
    }
}

static void stmt_note_exec(struct sy_mysql_session *s, const uint8_t *p, size_t n)
{
    if (n < 5)
        return;
    uint32_t id = (uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24;
    struct sess_stmt *st = stmt_find(s, id);
    struct sy_mysql_stmt_exec ex;
    if (st == NULL || st->num_params == 0 || sy_mysql_stmt_exec_parse(p, n, st->num_params, &ex) != SY_PARSE_OK ||
        !ex.new_params_bound)
        return;
    uint8_t *types = malloc(2u * st->num_params);
    if (types == NULL)
        return;
    memcpy(types, ex.types_p, 2u * st->num_params);
    free(st->types);
    st->types = types;
}

/* ---- login ------------------------------------------------------------------------------------- */

static void send_greeting(struct sy_mysql_session *s)
{
    struct sy_mysql_greeting g = { 0 };
    const char *version = sy_mysql_accounts_server_version(s->px->accounts);
    snprintf(g.server_version, sizeof g.server_version, "%s", version[0] ? version : "5.5.5-10.11.0-MariaDB");
    g.thread_id = s->id;
    RAND_bytes(s->salt, sizeof s->salt);
    for (size_t i = 0; i < sizeof s->salt; i++)
        s->salt[i] = (uint8_t)(0x21 + s->salt[i] % 94); /* printable, never NUL: as servers do */
    memcpy(g.salt, s->salt, sizeof s->salt);
    g.salt_len = sizeof s->salt;
    uint64_t caps = SY_CAP_MYSQL | SY_CAP_FOUND_ROWS | SY_CAP_LONG_FLAG | SY_CAP_CONNECT_WITH_DB |
                    SY_CAP_NO_SCHEMA | SY_CAP_ODBC | SY_CAP_LOCAL_FILES | SY_CAP_IGNORE_SPACE |
                    SY_CAP_PROTOCOL_41 | SY_CAP_INTERACTIVE | SY_CAP_IGNORE_SIGPIPE | SY_CAP_TRANSACTIONS |
                    SY_CAP_SECURE_CONNECTION | SY_CAP_MULTI_STATEMENTS | SY_CAP_MULTI_RESULTS |
                    SY_CAP_PS_MULTI_RESULTS | SY_CAP_PLUGIN_AUTH | SY_CAP_CONNECT_ATTRS | SY_CAP_PLUGIN_AUTH_LENENC |
                    SY_CAP_CAN_HANDLE_EXPIRED_PASSWORDS | SY_CAP_SESSION_TRACK | SY_CAP_DEPRECATE_EOF |
                    SY_CAP_COMPRESS | SESS_EXT_CAPS;
    uint64_t server = sy_mysql_accounts_server_caps(s->px->accounts);
    if (server != 0)
        caps &= server; /* a MariaDB server clears CLIENT_MYSQL to announce its extended capabilities */
    else
        caps &= ~SESS_EXT_CAPS;
    if (s->px->tls)
        caps |= SY_CAP_SSL;
    g.caps = caps;
    g.collation = sy_mysql_accounts_server_collation(s->px->accounts);
    if (g.collation == 0)
        g.collation = 45; /* utf8mb4_general_ci */
    g.status = SY_STATUS_AUTOCOMMIT;
    snprintf(g.auth_plugin, sizeof g.auth_plugin, "mysql_native_password");
    uint8_t buf[256];
    size_t len = sy_mysql_greeting_encode(&g, buf, sizeof buf);
    s->seq = 0;
    client_packet(s, 0, buf, len);
}

static void on_init_done(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg);
static void on_backend_read(struct bufferevent *bev, void *arg);
static void on_backend_write(struct bufferevent *bev, void *arg);
static void on_backend_event(struct bufferevent *bev, short what, void *arg);

const char sy_mysql_session_init_sql[] = "SET SESSION session_track_system_variables='*', session_track_schema=ON, "
                               "session_track_state_change=ON";

static void forward_backend_err(struct sy_mysql_session *s, const uint8_t *err, size_t len)
{
    struct sy_mysql_err e;
    char msg[600] = "authentication failed";
    uint16_t code = 1045;
    char state[6] = "28000";
    if (sy_mysql_err_parse(err, len, &e) == SY_PARSE_OK) {
        snprintf(msg, sizeof msg, "%.*s", (int)e.msg_len, e.msg_p);
        code = e.code;
        snprintf(state, sizeof state, "%s", e.sqlstate);
    }
    sy_log_info("%s: login as '%s' refused by %s side: %u %s", s->label, s->user, sy_side_name(s->side), code, msg);
    fail_session(s, (uint8_t)(s->seq + 1), code, state, msg);
}

static void on_backend_login(struct sy_mysql_conn *c, const uint8_t *err, size_t err_len, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (err != NULL) {
        if (s->state == SS_CHANGE_USER) {
            sy_mysql_session_release_conn(s->px, s->backend);
            s->backend = NULL;
        }
        forward_backend_err(s, err, err_len);
        return;
    }
    sy_mysql_session_set_state(s, SS_INIT);
    if (sy_mysql_conn_query(c, sy_mysql_session_init_sql, on_init_done, s) != 0)
        fail_session(s, (uint8_t)(s->seq + 1), 2013, "HY000", "Switchyard: backend session setup failed");
}

void sy_mysql_session_take_backend(struct sy_mysql_session *s)
{
    struct bufferevent *bev = sy_mysql_conn_bev(s->backend);
    bufferevent_setcb(bev, on_backend_read, on_backend_write, on_backend_event, s);
    bufferevent_set_timeouts(bev, NULL, NULL);
    bufferevent_setwatermark(bev, EV_WRITE, SESS_HIGH_WATER / 2, 0);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void on_init_done(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (!res->ok) {
        char msg[700];
        snprintf(msg, sizeof msg, "Switchyard: backend session setup failed: %s", res->err_msg);
        fail_session(s, (uint8_t)(s->seq + 1), res->err_code ? res->err_code : 2013, "HY000", msg);
        return;
    }
    s->status = res->status;
    s->in_txn = (s->status & SY_STATUS_IN_TRANS) != 0;
    sy_mysql_session_take_backend(s);
    s->client_auth_len = 0;
    OPENSSL_cleanse(s->client_auth, sizeof s->client_auth);
    if (s->login_reply_due) {
        s->login_reply_due = false;
        sy_log_info("%s: logged in as '%s' on %s side (backend thread %u)", s->label, s->user,
                    sy_side_name(s->side), sy_mysql_conn_greeting(c)->thread_id);
        client_ok(s, (uint8_t)(s->seq + 1));
        if ((s->caps & SY_CAP_COMPRESS) && !s->compressed) {
            /* the OK above goes out as it is; everything after it in frames */
            struct bufferevent *z = sy_mysql_compress_wrap(s->client);
            if (z == NULL) {
                sy_mysql_session_close(s, "out of memory (compression)");
                return;
            }
            s->client = z;
            s->compressed = true;
            s->zout = evbuffer_new();
            s->drained_ev = event_new(s->px->base, -1, 0, on_client_drained, s);
            if (s->zout == NULL || s->drained_ev == NULL) {
                sy_mysql_session_close(s, "out of memory (compression)");
                return;
            }
            /* the filter calls our write callback only when it has just deflated something; a socket
             * that drains later must still release backpressure: watch its buffer ourselves */
            evbuffer_add_cb(bufferevent_get_output(bufferevent_get_underlying(z)), on_socket_out, s);
            rearm_client(s);
        }
    }
    sy_mysql_session_set_state(s, SS_IDLE);
    s->direct = true;
    process_client(s);
    if (s->state != SS_CLOSING)
        process_backend(s);
    session_flush(s);
}

/* The server asks the client something for its plugin (ed25519's nonce, ...): passed on, re-numbered in the
 * client's sequence; the answer comes back in SS_AUTH_RELAY. */
static void on_backend_auth_packet(struct sy_mysql_conn *c, const uint8_t *p, size_t n, void *arg)
{
    struct sy_mysql_session *s = arg;
    s->seq++;
    client_packet(s, s->seq, p, n);
    s->relay_return = s->state;
    sy_mysql_session_set_state(s, SS_AUTH_RELAY);
}

static void backend_login(struct sy_mysql_session *s, int auth_kind)
{
    if (s->px->pair->held && s->state != SS_CHANGE_USER) {
        /* a switch may be about to change the active side: log in where it ends */
        s->parked_auth = auth_kind;
        sy_mysql_session_set_state(s, SS_PARKED);
        return;
    }
    struct sy_mysql_login login = { .auth = auth_kind, .caps = s->backend_caps, .collation = s->collation };
    snprintf(login.user, sizeof login.user, "%s", s->user);
    snprintf(login.db, sizeof login.db, "%s", s->schema);
    if (auth_kind == SY_LOGIN_STAGE1)
        memcpy(login.stage1, s->stage1, sizeof login.stage1);
    login.attrs = s->attrs;
    login.attrs_len = s->attrs_len;
    const struct sy_endpoint *ep = sy_pair_active_endpoint(s->px->pair);
    s->side = s->px->pair->active_side;
    char label[200];
    snprintf(label, sizeof label, "%s backend %s %s:%u", s->label, sy_side_name(s->side), ep->host, ep->port);
    if (s->state != SS_CHANGE_USER)
        sy_mysql_session_set_state(s, SS_LOGIN);
    s->login_reply_due = true;
    s->backend = sy_mysql_conn_open(s->px->base, ep, &login, label, on_backend_login, s);
    OPENSSL_cleanse(login.stage1, sizeof login.stage1);
    if (s->backend == NULL)
        fail_session(s, (uint8_t)(s->seq + 1), 2013, "HY000", "Switchyard: out of memory");
    else if (auth_kind == SY_LOGIN_RELAY)
        sy_mysql_conn_set_relay(s->backend, on_backend_auth_packet);
}

static void on_accounts(void *arg, const char *err)
{
    struct sy_mysql_session *s = arg;
    s->wait = NULL;
    if (err != NULL) {
        char msg[800];
        snprintf(msg, sizeof msg, "Switchyard: cannot check the password: %s", err);
        fail_session(s, (uint8_t)(s->seq + 1), 2013, "HY000", msg);
        return;
    }
    s->refreshed = true;
    auth_lookup(s);
}

/* Checks the client's scramble against the account the server would match, then logs in on the
 * backend. An unknown user or a wrong password still goes to the backend (with an empty or bogus
 * response) so the client gets the server's own 1045 text, with the host the server sees. */
static void auth_lookup(struct sy_mysql_session *s)
{
    const struct sy_mysql_account *acc = sy_mysql_accounts_find(s->px->accounts, s->user);
    bool verified = false;
    if (acc != NULL) {
        bool native = acc->plugin[0] == '\0' || strcmp(acc->plugin, "mysql_native_password") == 0;
        if (!native) {
            /* ed25519 and other plugins: the server checks the client itself, through the proxy (the
             * proxy learns no secret, so the session cannot move: it is pinned) */
            snprintf(s->relayed_plugin, sizeof s->relayed_plugin, "%s", acc->plugin);
            s->have_stage1 = false;
            sy_log_info("%s: account '%s'@'%s' uses '%s': its login is relayed to the server", s->label, acc->user,
                        acc->host, acc->plugin);
            backend_login(s, SY_LOGIN_RELAY);
            return;
        }
        s->relayed_plugin[0] = '\0';
        uint8_t stage2[SY_SHA1_LEN];
        if (acc->auth_string[0] == '\0') {
            verified = s->client_auth_len == 0;
            s->empty_password = verified;
            s->have_stage1 = false;
        } else if (sy_mysql_native_hash_parse(acc->auth_string, stage2)) {
            verified = sy_mysql_native_recover(s->client_auth, s->client_auth_len, s->salt, sizeof s->salt, stage2,
                                               s->stage1);
            s->have_stage1 = verified;
        }
    }
    if (!verified && !s->refreshed) {
        s->wait = sy_mysql_accounts_refresh(s->px->accounts, on_accounts, s);
        if (s->wait == NULL)
            fail_session(s, (uint8_t)(s->seq + 1), 2013, "HY000", "Switchyard: out of memory");
        return;
    }
    int kind = verified ? (s->empty_password ? SY_LOGIN_EMPTY : SY_LOGIN_STAGE1)
                        : (s->client_auth_len == 0 ? SY_LOGIN_EMPTY : SY_LOGIN_BOGUS);
    if (!verified)
        sy_log_info("%s: password check failed for '%s'%s; the server will refuse it", s->label, s->user,
                    acc ? "" : " (no such account)");
    backend_login(s, kind);
}

static void start_auth(struct sy_mysql_session *s)
{
    s->refreshed = false;
    if (s->state != SS_CHANGE_USER)
        sy_mysql_session_set_state(s, SS_LOOKUP);
    auth_lookup(s);
}

static void on_handshake_response(struct sy_mysql_session *s, const uint8_t *p, size_t n)
{
    struct sy_mysql_hsresp *h = calloc(1, sizeof *h);
    if (h == NULL) {
        sy_mysql_session_close(s, "out of memory");
        return;
    }
    if (sy_mysql_hsresp_parse(p, n, h) != SY_PARSE_OK || !(h->caps & SY_CAP_PROTOCOL_41)) {
        free(h);
        fail_session(s, (uint8_t)(s->seq + 1), 1043, "08S01", "Bad handshake");
        return;
    }
    if (h->ssl_request) {
        free(h);
        if (s->px->tls == NULL || bufferevent_get_underlying(s->client) != NULL) {
            fail_session(s, (uint8_t)(s->seq + 1), 1043, "08S01", "Bad handshake: TLS is not enabled on this listener");
            return;
        }
        SSL *ssl = SSL_new(s->px->tls);
        struct bufferevent *tls = ssl ? bufferevent_openssl_filter_new(s->px->base, s->client, ssl,
                                                                       BUFFEREVENT_SSL_ACCEPTING,
                                                                       BEV_OPT_CLOSE_ON_FREE)
                                      : NULL;
        if (tls == NULL) {
            if (ssl)
                SSL_free(ssl);
            sy_mysql_session_close(s, "TLS setup failed");
            return;
        }
        s->client = tls;
        bufferevent_setcb(s->client, NULL, NULL, NULL, s);
        rearm_client(s);
        return;
    }
    s->caps = h->caps & (SY_CAP_MYSQL | SY_CAP_FOUND_ROWS | SY_CAP_LONG_FLAG | SY_CAP_CONNECT_WITH_DB |
                         SY_CAP_NO_SCHEMA | SY_CAP_ODBC | SY_CAP_LOCAL_FILES | SY_CAP_IGNORE_SPACE |
                         SY_CAP_PROTOCOL_41 | SY_CAP_INTERACTIVE | SY_CAP_SSL | SY_CAP_IGNORE_SIGPIPE |
                         SY_CAP_TRANSACTIONS | SY_CAP_SECURE_CONNECTION | SY_CAP_MULTI_STATEMENTS |
                         SY_CAP_MULTI_RESULTS | SY_CAP_PS_MULTI_RESULTS | SY_CAP_PLUGIN_AUTH | SY_CAP_CONNECT_ATTRS |
                         SY_CAP_PLUGIN_AUTH_LENENC | SY_CAP_CAN_HANDLE_EXPIRED_PASSWORDS | SY_CAP_SESSION_TRACK |
                         SY_CAP_DEPRECATE_EOF | SY_CAP_COMPRESS | SESS_EXT_CAPS);
    s->backend_caps = (s->caps | SY_CAP_SESSION_TRACK) & ~(SY_CAP_SSL | SY_CAP_CONNECT_WITH_DB | SY_CAP_COMPRESS);
    s->collation = h->collation;
    s->max_packet = h->max_packet;
    snprintf(s->user, sizeof s->user, "%s", h->user);
    if (h->has_db)
        snprintf(s->schema, sizeof s->schema, "%s", h->db);
    if (h->attrs_len > 0 && (s->attrs = malloc(h->attrs_len)) != NULL) {
        memcpy(s->attrs, h->attrs_p, h->attrs_len);
        s->attrs_len = h->attrs_len;
    }
    snprintf(s->label + strlen(s->label), sizeof s->label - strlen(s->label), " user=%s", s->user);
    bool other_plugin = (h->caps & SY_CAP_PLUGIN_AUTH) && h->plugin[0] != '\0' &&
                        strcmp(h->plugin, "mysql_native_password") != 0;
    memcpy(s->client_auth, h->auth, h->auth_len);
    s->client_auth_len = h->auth_len;
    OPENSSL_cleanse(h->auth, sizeof h->auth);
    free(h);
    if (other_plugin) {
        /* AuthSwitchRequest: 0xFE, plugin name NUL, our salt NUL. */
        uint8_t buf[1 + 22 + SY_MYSQL_SALT_LEN + 1];
        size_t len = 0;
        buf[len++] = 0xFE;
        memcpy(buf + len, "mysql_native_password", 22);
        len += 22;
        memcpy(buf + len, s->salt, sizeof s->salt);
        len += sizeof s->salt;
        buf[len++] = 0;
        s->seq++;
        client_packet(s, s->seq, buf, len);
        sy_mysql_session_set_state(s, SS_AUTH_SWITCH);
        return;
    }
    start_auth(s);
}

/* ---- requests ---------------------------------------------------------------------------------- */

static void backend_packet(struct sy_mysql_session *s, uint8_t seq, const uint8_t *payload, size_t len)
{
    uint8_t hdr[4];
    sy_mysql_hdr_encode(hdr, (uint32_t)len, seq);
    struct evbuffer *out = bufferevent_get_output(sy_mysql_conn_bev(s->backend));
    evbuffer_add(out, hdr, 4);
    evbuffer_add(out, payload, len);
}

/* KILL with a proxy connection id -> the backend thread of that session. */
static bool rewrite_kill(struct sy_mysql_session *s, const uint8_t *p, size_t n, uint8_t seq)
{
    struct sy_mysql_kill k;
    if (p[0] == SY_COM_PROCESS_KILL) {
        if (n < 5)
            return false;
        k.id = (uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24;
    } else if (!sy_mysql_kill_parse(p + 1, n - 1, &k)) {
        return false;
    }
    if (k.id < SY_MYSQL_FIRST_SESSION_ID)
        return false; /* a backend thread id: the server decides */
    struct sy_mysql_session *target = k.id <= UINT32_MAX ? sy_mysql_proxy_find_session(s->px, (uint32_t)k.id) : NULL;
    uint32_t thread = target ? sy_mysql_session_backend_thread(target) : 0;
    if (thread == 0 || target->side != s->side) {
        char msg[64];
        snprintf(msg, sizeof msg, "Unknown thread id: %llu", (unsigned long long)k.id);
        client_err(s, (uint8_t)(seq + 1), 1094, "HY000", msg);
        return true;
    }
    uint8_t buf[256];
    size_t len;
    if (p[0] == SY_COM_PROCESS_KILL) {
        buf[0] = SY_COM_PROCESS_KILL;
        buf[1] = (uint8_t)thread;
        buf[2] = (uint8_t)(thread >> 8);
        buf[3] = (uint8_t)(thread >> 16);
        buf[4] = (uint8_t)(thread >> 24);
        len = 5;
    } else {
        int m = snprintf((char *)buf + 1, sizeof buf - 1, "%.*s%u%.*s", (int)k.id_off, (const char *)p + 1, thread,
                         (int)(n - 1 - k.id_off - k.id_len), (const char *)p + 1 + k.id_off + k.id_len);
        if (m < 0 || (size_t)m >= sizeof buf - 1)
            return false;
        buf[0] = SY_COM_QUERY;
        len = 1 + (size_t)m;
    }
    sy_log_info("%s: KILL%s %llu -> backend thread %u", s->label, k.query_only ? " QUERY" : "",
                (unsigned long long)k.id, thread);
    backend_packet(s, seq, buf, len);
    s->cmd = p[0];
    sy_mysql_resp_start(&s->resp, p[0], s->backend_caps);
    sy_mysql_session_set_state(s, SS_BUSY);
    return true;
}

/* How many payload bytes of a request we inspect before forwarding it. */
static size_t inspect_len(struct sy_mysql_session *s, uint8_t cmd, uint32_t len)
{
    switch (cmd) {
    case SY_COM_QUERY:
        return len; /* the whole text: pins and tracking settings anywhere in it (mysql_track.c) */
    case SY_COM_STMT_EXECUTE: {
        if (len < 5)
            return len;
        return len; /* types follow a short header; whole packets up to 16 MiB are pulled up */
    }
    case SY_COM_STMT_SEND_LONG_DATA:
    case SY_COM_STMT_RESET:
    case SY_COM_STMT_FETCH:
    case SY_COM_STMT_BULK_EXECUTE:
        return len < 5 ? len : 5; /* the statement id */
    case SY_COM_STMT_PREPARE:
    case SY_COM_CHANGE_USER:
    case SY_COM_PROCESS_KILL:
    case SY_COM_INIT_DB:
    case SY_COM_STMT_CLOSE:
        return len;
    default:
        return 1;
    }
}

/* After a flip the client's statement ids map to re-prepared ones: rewrites the id in the pulled-up
 * request (p, at least 5 bytes). An execute that relies on types bound on the old side gets them
 * inserted: then the packet is sent here and true returned. */
static bool stmt_request_map(struct sy_mysql_session *s, struct evbuffer *in, struct sy_mysql_hdr hdr, uint8_t *p,
                             bool whole)
{
    if (!s->ids_mapped || hdr.len < 5)
        return false;
    uint32_t id = (uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24;
    struct sess_stmt *st = stmt_find(s, id);
    if (st == NULL)
        return false; /* unknown to us: the server answers "unknown prepared statement" */
    p[1] = (uint8_t)st->backend_id;
    p[2] = (uint8_t)(st->backend_id >> 8);
    p[3] = (uint8_t)(st->backend_id >> 16);
    p[4] = (uint8_t)(st->backend_id >> 24);
    if (p[0] != SY_COM_STMT_EXECUTE || !st->send_types)
        return false;
    size_t nb = ((size_t)st->num_params + 7) / 8, at = 10 + nb;
    if (!whole || st->num_params == 0 || st->types == NULL || hdr.len <= at) {
        st->send_types = false;
        return false;
    }
    st->send_types = false;
    if (p[at] != 0)
        return false; /* the client binds types itself */
    size_t tlen = 2u * st->num_params, n = hdr.len + tlen;
    if (n >= SY_MYSQL_MAX_PAYLOAD)
        return false;
    uint8_t *q = malloc(n);
    if (q == NULL)
        return false;
    memcpy(q, p, at);
    q[at] = 1;
    memcpy(q + at + 1, st->types, tlen);
    memcpy(q + at + 1 + tlen, p + at + 1, hdr.len - at - 1);
    evbuffer_drain(in, 4 + hdr.len);
    backend_packet(s, hdr.seq, q, n);
    s->cmd = SY_COM_STMT_EXECUTE;
    sy_mysql_resp_start(&s->resp, SY_COM_STMT_EXECUTE, s->backend_caps);
    s->resp.cursor = q[5] != 0;
    s->cursors_used = s->cursors_used || s->resp.cursor;
    free(q);
    sy_mysql_session_set_state(s, SS_BUSY);
    return true;
}

/* The client's transaction was rolled back by the proxy (switch): everything but ROLLBACK, QUIT,
 * PING and statement close gets 1213 / 40001 — a COMMIT never returns OK. True when answered. */
/* Drops a request the proxy answers itself: what is there now, and the rest of it (and any 16 MiB
 * continuation packets) as it arrives (process_client). */
static void discard_request(struct sy_mysql_session *s, struct evbuffer *in, struct sy_mysql_hdr hdr)
{
    size_t have = evbuffer_get_length(in) - 4;
    size_t n = have < hdr.len ? have : hdr.len;
    evbuffer_drain(in, 4 + n);
    s->discard_left = hdr.len - n;
    s->discard_continues = hdr.len == SY_MYSQL_MAX_PAYLOAD;
}

static bool aborted_txn_reply(struct sy_mysql_session *s, struct evbuffer *in, struct sy_mysql_hdr hdr, const uint8_t *p,
                              size_t want)
{
    uint8_t cmd = p[0];
    if (cmd == SY_COM_STMT_SEND_LONG_DATA) {
        discard_request(s, in, hdr); /* no reply to it, ever: the execute that follows gets the 1213 */
        return true;
    }
    if (cmd == SY_COM_QUIT || cmd == SY_COM_STMT_CLOSE)
        return false;
    if (cmd == SY_COM_RESET_CONNECTION || cmd == SY_COM_CHANGE_USER) {
        s->txn_aborted = false; /* the session starts over anyway */
        return false;
    }
    if (cmd == SY_COM_PING) {
        evbuffer_drain(in, 4 + hdr.len);
        client_ok(s, (uint8_t)(hdr.seq + 1));
        return true;
    }
    /* what the statement is: a query's text, or the text a prepared statement was prepared from */
    struct sy_sql_effect e = { .kind = SY_SQL_OTHER };
    if (cmd == SY_COM_QUERY) {
        sy_sql_effect(p + 1, want - 1, &e);
    } else if (cmd == SY_COM_STMT_EXECUTE && want >= 5) {
        const struct sess_stmt *st = stmt_find(s, (uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 |
                                                      (uint32_t)p[4] << 24);
        if (st != NULL && st->sql != NULL)
            sy_sql_effect((const uint8_t *)st->sql, strlen(st->sql), &e);
    }
    if (e.kind == SY_SQL_ROLLBACK) {
        /* the server rolled back already; this one finds nothing open, and any statements after it in
         * the batch run as they would on the server */
        s->txn_aborted = false;
        return false;
    }
    discard_request(s, in, hdr); /* p is gone from here on */
    if (e.kind == SY_SQL_COMMIT) {
        /* as MariaDB ends a transaction that failed with a deadlock: the COMMIT fails, and the
         * transaction is over (database/sql and JDBC treat a failed COMMIT as its end) */
        s->txn_aborted = false;
    }
    client_err(s, (uint8_t)(hdr.seq + 1), 1213, "40001",
               "Switchyard: the transaction was rolled back by a switchover; send ROLLBACK and run it again");
    return true;
}

/* The session starts over (COM_CHANGE_USER, COM_RESET_CONNECTION): nothing pins it any more. */
static void pins_reset(struct sy_mysql_session *s)
{
    sy_mysql_track_pins_clear(s);
    s->ids_mapped = false;
    sy_mysql_track_warm_outdated(s);
}

/* Handles the request whose header is at the front of `in`, with `want` payload bytes available. */
static void start_request(struct sy_mysql_session *s, struct evbuffer *in, struct sy_mysql_hdr hdr, size_t want)
{
    uint8_t *pk = evbuffer_pullup(in, (ssize_t)(4 + want));
    uint8_t *p = pk + 4;
    uint8_t cmd = p[0];
    bool cursor = cmd == SY_COM_STMT_EXECUTE && want >= 6 && p[5] != 0; /* flags: a cursor type */
    s->req_read = false; /* set by the text of a query or prepared statement */
    s->seq = hdr.seq;
    bool whole = want == hdr.len;
    if (want >= 5 && (cmd == SY_COM_STMT_EXECUTE || cmd == SY_COM_STMT_SEND_LONG_DATA || cmd == SY_COM_STMT_CLOSE ||
                      cmd == SY_COM_STMT_RESET || cmd == SY_COM_STMT_FETCH || cmd == SY_COM_STMT_BULK_EXECUTE)) {
        uint32_t client_id = (uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24;
        if (cmd == SY_COM_STMT_EXECUTE && whole)
            stmt_note_exec(s, p, hdr.len);
        if (cmd == SY_COM_STMT_EXECUTE) {
            const struct sess_stmt *st = stmt_find(s, client_id);
            if (st != NULL && st->sql != NULL)
                sy_mysql_track_request(s, (const uint8_t *)st->sql, strlen(st->sql));
        }
        if (stmt_request_map(s, in, hdr, p, whole))
            return;
        if (cmd == SY_COM_STMT_CLOSE)
            stmt_remove(s, client_id);
    }
    switch (cmd) {
    case SY_COM_QUIT:
        evbuffer_drain(in, 4 + hdr.len);
        sy_mysql_session_close(s, "client quit");
        return;
    case SY_COM_CHANGE_USER: {
        struct sy_mysql_change_user *cu = calloc(1, sizeof *cu);
        if (cu == NULL || sy_mysql_change_user_parse(p, hdr.len, s->caps, cu) != SY_PARSE_OK) {
            free(cu);
            evbuffer_drain(in, 4 + hdr.len);
            fail_session(s, (uint8_t)(hdr.seq + 1), 1043, "08S01", "Bad handshake (COM_CHANGE_USER)");
            return;
        }
        snprintf(s->cu_user, sizeof s->cu_user, "%s", cu->user);
        snprintf(s->cu_db, sizeof s->cu_db, "%s", cu->db);
        s->cu_has_collation = cu->has_collation;
        s->cu_collation = cu->collation;
        memcpy(s->client_auth, cu->auth, cu->auth_len);
        s->client_auth_len = cu->auth_len;
        if (cu->attrs_len > 0) {
            uint8_t *a = malloc(cu->attrs_len);
            if (a) {
                memcpy(a, cu->attrs_p, cu->attrs_len);
                free(s->attrs);
                s->attrs = a;
                s->attrs_len = cu->attrs_len;
            }
        }
        OPENSSL_cleanse(cu->auth, sizeof cu->auth);
        free(cu);
        evbuffer_drain(in, 4 + hdr.len);
        /* Replayed as a fresh login as the new account: the server checks it, resets the session
         * (as COM_CHANGE_USER does) and the proxy keeps the secret for later logins. */
        sy_mysql_session_set_state(s, SS_CHANGE_USER);
        snprintf(s->user, sizeof s->user, "%s", s->cu_user);
        snprintf(s->schema, sizeof s->schema, "%s", s->cu_db);
        if (s->cu_has_collation)
            s->collation = (uint8_t)s->cu_collation;
        stmts_clear(s);
        sy_mysql_track_vars_clear(s);
        pins_reset(s);
        s->have_stage1 = false;
        s->empty_password = false;
        OPENSSL_cleanse(s->stage1, sizeof s->stage1);
        sy_mysql_session_release_conn(s->px, s->backend); /* the old session ends, as COM_CHANGE_USER ends it */
        s->backend = NULL;
        start_auth(s);
        return;
    }
    case SY_COM_PROCESS_KILL:
    case SY_COM_QUERY:
        if (cmd == SY_COM_QUERY)
            sy_mysql_track_request(s, p + 1, want - 1);
        if (whole && (cmd == SY_COM_PROCESS_KILL || hdr.len <= 64)) {
            if (rewrite_kill(s, p, hdr.len, hdr.seq)) {
                evbuffer_drain(in, 4 + hdr.len);
                return;
            }
        }
        break;
    case SY_COM_STMT_PREPARE:
        free(s->pending_prepare_sql);
        s->pending_prepare_sql =
            whole && hdr.len - 1 <= SESS_MAX_TRACKED_SQL ? strndup((const char *)p + 1, hdr.len - 1) : NULL;
        break;
    case SY_COM_RESET_CONNECTION:
        s->pending_reset = true;
        break;
    case SY_COM_BINLOG_DUMP:
    case SY_COM_BINLOG_DUMP_GTID:
    case SY_COM_REGISTER_SLAVE:
        discard_request(s, in, hdr);
        client_err(s, (uint8_t)(hdr.seq + 1), 1235, "42000",
                   "Switchyard: replication commands are not supported through the proxy");
        return;
    default:
        break;
    }
    /* Forward the header and what we have of the payload; stream the rest. */
    size_t avail = evbuffer_get_length(in) - 4;
    size_t now = avail < hdr.len ? avail : hdr.len;
    move_bytes(s, in, bufferevent_get_output(sy_mysql_conn_bev(s->backend)), 4 + now, true);
    s->fwd_seq = hdr.seq;
    s->req_left = hdr.len - now;
    s->req_continues = hdr.len == SY_MYSQL_MAX_PAYLOAD;
    if (sy_mysql_cmd_has_reply(cmd)) {
        s->cmd = cmd;
        sy_mysql_resp_start(&s->resp, cmd, s->backend_caps);
        s->resp.cursor = cursor;
        s->cursors_used = s->cursors_used || cursor;
        sy_mysql_session_set_state(s, SS_BUSY);
    }
}

static void process_client(struct sy_mysql_session *s)
{
    if (s->state == SS_CLOSING || s->client == NULL)
        return;
    struct evbuffer *in = bufferevent_get_input(s->client);
    for (;;) {
        if (s->state == SS_CLOSING)
            return;
        size_t avail = evbuffer_get_length(in);
        /* Rest of a request the proxy answered itself (discard_request). */
        if (s->discard_left > 0 || s->discard_continues) {
            if (s->discard_left == 0) { /* the next 16 MiB continuation packet of it */
                uint8_t h4[4];
                struct sy_mysql_hdr ch;
                if (evbuffer_copyout(in, h4, 4) < 4)
                    return;
                sy_mysql_hdr_parse(h4, 4, &ch);
                evbuffer_drain(in, 4);
                s->discard_left = ch.len;
                s->discard_continues = ch.len == SY_MYSQL_MAX_PAYLOAD;
                continue;
            }
            if (avail == 0)
                return;
            size_t n = avail < s->discard_left ? avail : (size_t)s->discard_left;
            evbuffer_drain(in, n);
            s->discard_left -= n;
            continue;
        }
        /* Rest of a packet being streamed to the backend. */
        if (s->req_left > 0) {
            if (avail == 0 || s->client_bp)
                return;
            size_t n = avail < s->req_left ? avail : (size_t)s->req_left;
            move_bytes(s, in, bufferevent_get_output(sy_mysql_conn_bev(s->backend)), n, true);
            s->req_left -= n;
            continue;
        }
        uint8_t hb[5];
        struct sy_mysql_hdr hdr;
        if (evbuffer_copyout(in, hb, 4) < 4)
            return;
        sy_mysql_hdr_parse(hb, 4, &hdr);
        /* Next packet of a request larger than 16 MiB, or LOCAL INFILE data: passed through. */
        if (s->req_continues || s->state == SS_INFILE) {
            if (s->client_bp)
                return;
            bool infile_end = s->state == SS_INFILE && !s->req_continues && hdr.len == 0;
            if (s->compressed && s->req_continues) {
                /* inside compressed frames the client's continuation packets carry the frames' numbering;
                 * the backend, spoken to uncompressed, wants the packet sequence: one more each time */
                uint8_t fixed[4];
                sy_mysql_hdr_encode(fixed, hdr.len, ++s->fwd_seq);
                evbuffer_drain(in, 4);
                evbuffer_add(bufferevent_get_output(sy_mysql_conn_bev(s->backend)), fixed, 4);
            } else {
                move_bytes(s, in, bufferevent_get_output(sy_mysql_conn_bev(s->backend)), 4, true);
            }
            s->req_continues = hdr.len == SY_MYSQL_MAX_PAYLOAD;
            s->req_left = hdr.len;
            if (infile_end)
                sy_mysql_session_set_state(s, SS_BUSY); /* the server now sends OK or ERR */
            continue;
        }
        switch (s->state) {
        case SS_HANDSHAKE:
        case SS_AUTH_SWITCH: {
            if (hdr.len > 64 * 1024) {
                fail_session(s, (uint8_t)(hdr.seq + 1), 1043, "08S01", "Bad handshake");
                return;
            }
            if (avail < 4 + (size_t)hdr.len)
                return;
            uint8_t *p = malloc(hdr.len ? hdr.len : 1);
            if (p == NULL) {
                sy_mysql_session_close(s, "out of memory");
                return;
            }
            evbuffer_drain(in, 4);
            evbuffer_remove(in, p, hdr.len);
            s->seq = hdr.seq;
            if (s->state == SS_HANDSHAKE) {
                on_handshake_response(s, p, hdr.len);
            } else {
                size_t n = hdr.len < SY_MYSQL_AUTH_MAX ? hdr.len : SY_MYSQL_AUTH_MAX;
                memcpy(s->client_auth, p, n);
                s->client_auth_len = n;
                start_auth(s);
            }
            OPENSSL_cleanse(p, hdr.len);
            free(p);
            if (s->state == SS_HANDSHAKE)
                continue; /* TLS upgrade: the real handshake response follows */
            return;
        }
        case SS_AUTH_RELAY: {
            if (hdr.len > 64 * 1024) {
                fail_session(s, (uint8_t)(hdr.seq + 1), 1043, "08S01", "Bad handshake");
                return;
            }
            if (avail < 4 + (size_t)hdr.len)
                return;
            const uint8_t *p = evbuffer_pullup(in, (ssize_t)(4 + hdr.len)) + 4;
            s->seq = hdr.seq;
            sy_mysql_session_set_state(s, s->relay_return);
            sy_mysql_conn_auth_answer(s->backend, p, hdr.len);
            evbuffer_drain(in, 4 + hdr.len);
            return;
        }
        case SS_IDLE:
            break;
        case SS_HELD:
            if (s->px->pair->held)
                return;
            /* every way out of a hold (release, rollback, timeout, an internal query that ended
             * after it) comes through here: the request that waits goes on */
            sy_mysql_session_set_state(s, SS_IDLE);
            client_read_update(s);
            continue;
        default:
            return; /* one request at a time: the next waits in the buffer */
        }
        /* SS_IDLE: a new request. */
        if (hdr.len == 0) {
            fail_session(s, (uint8_t)(hdr.seq + 1), 1047, "08S01", "Unknown command");
            return;
        }
        if (avail < 5)
            return;
        evbuffer_copyout(in, hb, 5);
        uint8_t cmd = hb[4];
        size_t want = inspect_len(s, cmd, hdr.len);
        if (want == hdr.len && hdr.len == SY_MYSQL_MAX_PAYLOAD)
            want = 5; /* a continued packet is never inspected whole: command and statement id */
        if (s->backend_lost && s->side == s->px->pair->active_side && cmd != SY_COM_QUIT &&
            cmd != SY_COM_STMT_CLOSE) {
            /* killed, timed out or restarted on the same side: gone, as directly - not a switch's abort */
            lose_session(s, "the backend connection was lost while idle; closed at the next request");
            return;
        }
        if (s->txn_aborted) {
            if (avail < 4 + want)
                return;
            if (aborted_txn_reply(s, in, hdr, evbuffer_pullup(in, (ssize_t)(4 + want)) + 4, want))
                continue;
        }
        if (s->px->pair->held && !s->in_txn) {
            if (cmd == SY_COM_PING && hdr.len == 1) {
                evbuffer_drain(in, 5);
                client_ok(s, (uint8_t)(hdr.seq + 1));
                continue;
            }
            s->held_since_ms = sy_now_ms();
            sy_mysql_session_set_state(s, SS_HELD);
            client_read_update(s);
            return;
        }
        if (avail < 4 + want)
            return;
        if (s->backend_lost && cmd != SY_COM_QUIT) {
            if (cmd == SY_COM_STMT_CLOSE && want >= 5) { /* nothing to close on a backend that is gone */
                const uint8_t *p = evbuffer_pullup(in, 9) + 4;
                stmt_remove(s, (uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24);
                evbuffer_drain(in, 4 + hdr.len);
                continue;
            }
            if (s->side == s->px->pair->active_side) {
                /* same side (the server restarted, or a KILL): the session is gone, as it would be direct */
                lose_session(s, "the backend connection was lost while idle; closed at the next request");
                return;
            }
            sy_mysql_switch_reconnect(s); /* failed over meanwhile: the request waits for a new backend */
            return;
        }
        start_request(s, in, hdr, want);
    }
}

/* ---- replies ----------------------------------------------------------------------------------- */

static void finish_reply(struct sy_mysql_session *s)
{
    s->in_txn = (s->status & SY_STATUS_IN_TRANS) != 0;
    sy_mysql_track_reply(s, s->resp.failed);
    if (s->pending_reset) {
        s->pending_reset = false;
        stmts_clear(s);
        sy_mysql_track_vars_clear(s);
        pins_reset(s);
        s->last_gtid[0] = '\0';
        /* RESET_CONNECTION resets session tracking: set it again before the next request. */
        sy_mysql_session_set_state(s, SS_INIT);
        if (sy_mysql_conn_query(s->backend, sy_mysql_session_init_sql, on_init_done, s) != 0)
            fail_session(s, (uint8_t)(s->seq + 1), 2013, "HY000", "Switchyard: backend session setup failed");
        return;
    }
    sy_mysql_session_set_state(s, SS_IDLE);
    if (s->abort_due) {
        s->abort_due = false;
        if (s->in_txn) {
            sy_mysql_switch_rollback(s); /* the switch's drain time is spent */
            return;
        }
    }
    if (s->flip_due && sy_mysql_switch_finish_flip(s))
        return;
    if (sy_mysql_track_resync(s))
        return;
    process_client(s);
}

/* An OK the client may see: hide session tracking it did not ask for. */
static void forward_ok(struct sy_mysql_session *s, uint8_t seq, uint8_t header, const uint8_t *p, size_t n,
                       const struct sy_mysql_ok *ok)
{
    bool hide_all = !(s->caps & SY_CAP_SESSION_TRACK) && (s->backend_caps & SY_CAP_SESSION_TRACK);
    bool filter = (s->caps & SY_CAP_SESSION_TRACK) && s->client_track_set && ok->state_p != NULL;
    if (!hide_all && !filter) {
        client_packet(s, seq, p, n);
        return;
    }
    struct sy_mysql_ok copy = *ok;
    uint8_t *state = NULL;
    size_t state_len = 0;
    if (filter && (state = malloc(ok->state_len + 1)) != NULL)
        state_len = sy_mysql_track_filter(s, ok->state_p, ok->state_len, state, ok->state_len + 1);
    if (filter && (state == NULL || state_len == (size_t)-1)) {
        free(state);
        client_packet(s, seq, p, n); /* cannot rebuild it: more than asked for, never less */
        return;
    }
    if (state_len == 0) {
        copy.status &= (uint16_t)~SY_STATUS_SESSION_STATE_CHANGED;
        copy.state_p = NULL;
        copy.state_len = 0;
    } else {
        copy.state_p = state;
        copy.state_len = state_len;
    }
    size_t cap = n + 16;
    uint8_t *buf = malloc(cap);
    size_t len = buf ? sy_mysql_ok_encode(&copy, header, s->caps, buf, cap) : 0;
    if (len == 0)
        client_packet(s, seq, p, n);
    else
        client_packet(s, seq, buf, len);
    free(buf);
    free(state);
}

static void process_backend(struct sy_mysql_session *s)
{
    if (s->state == SS_CLOSING || s->backend == NULL)
        return;
    struct evbuffer *in = bufferevent_get_input(sy_mysql_conn_bev(s->backend));
    struct evbuffer *out = client_out(s);
    for (;;) {
        if (s->state == SS_CLOSING)
            return;
        size_t avail = evbuffer_get_length(in);
        if (s->resp_left > 0) {
            if (avail == 0 || s->backend_bp)
                return;
            size_t n = avail < s->resp_left ? avail : (size_t)s->resp_left;
            move_bytes(s, in, out, n, false);
            s->resp_left -= n;
            if (s->resp_left == 0 && s->resp_done_after_stream) {
                s->resp_done_after_stream = false;
                finish_reply(s);
                return; /* the backend may have been swapped or lent to an internal query: `in` is stale */
            }
            continue;
        }
        if (avail < 4)
            return;
        uint8_t hb[5];
        struct sy_mysql_hdr hdr;
        evbuffer_copyout(in, hb, avail < 5 ? 4 : 5);
        sy_mysql_hdr_parse(hb, 4, &hdr);
        if (s->state != SS_BUSY && s->state != SS_INFILE) {
            /* The server speaks unasked: an ERR before it closes (killed, shutdown). Pass it on. */
            if (avail < 4 + (size_t)hdr.len)
                return;
            const uint8_t *pk = evbuffer_pullup(in, (ssize_t)(4 + hdr.len));
            struct sy_mysql_err e;
            char msg[600] = "unexpected data from the server";
            bool parsed = hdr.len > 0 && pk[4] == 0xFF && sy_mysql_err_parse(pk + 4, hdr.len, &e) == SY_PARSE_OK;
            if (parsed)
                snprintf(msg, sizeof msg, "%.*s", (int)e.msg_len, e.msg_p);
            evbuffer_drain(in, 4 + hdr.len);
            if (parsed && e.code == 1053 && (s->state == SS_IDLE || s->state == SS_HELD)) {
                backend_lost(s); /* "Server shutdown in progress": like a vanished server */
                return;
            }
            if (parsed) /* the server's own error (a timeout, KILL): the client gets it, then the close */
                fail_session(s, 0, e.code, e.sqlstate, msg);
            else
                lose_session(s, msg);
            return;
        }
        if (s->backend_bp)
            return;
        if (hdr.len > 0 && avail < 5)
            return;
        uint8_t first = hdr.len > 0 ? hb[4] : 0;
        bool whole = !s->resp.continued && sy_mysql_resp_wants_whole(&s->resp, first, hdr.len);
        struct sy_mysql_pkt pkt;
        enum sy_mysql_step step;
        if (whole) {
            if (avail < 4 + (size_t)hdr.len)
                return;
            const uint8_t *pk = evbuffer_pullup(in, (ssize_t)(4 + hdr.len));
            step = sy_mysql_resp_feed(&s->resp, pk + 4, hdr.len, hdr.len, &pkt);
            if (step == SY_STEP_BAD) {
                fail_session(s, (uint8_t)(hdr.seq + 1), 2027, "HY000", "Switchyard: malformed packet from the server");
                return;
            }
            if (pkt.kind == SY_PKT_OK) {
                s->status = pkt.ok.status;
                sy_mysql_track_ok(s, &pkt.ok);
                forward_ok(s, hdr.seq, pk[4], pk + 4, hdr.len, &pkt.ok);
                evbuffer_drain(in, 4 + hdr.len);
            } else {
                if (pkt.kind == SY_PKT_ERR)
                    sy_mysql_track_error(s, &pkt.err);
                if (pkt.kind == SY_PKT_EOF)
                    s->status = pkt.eof.status;
                else if (pkt.kind == SY_PKT_PREPARE_OK) {
                    uint32_t id = stmt_add(s, s->resp.stmt_id, s->resp.num_params);
                    if (id != s->resp.stmt_id) {
                        /* the pulled-up packet is ours: give the client its id */
                        uint8_t *w = (uint8_t *)pk + 5;
                        w[0] = (uint8_t)id;
                        w[1] = (uint8_t)(id >> 8);
                        w[2] = (uint8_t)(id >> 16);
                        w[3] = (uint8_t)(id >> 24);
                    }
                }
                move_bytes(s, in, out, 4 + hdr.len, false);
            }
        } else {
            step = sy_mysql_resp_feed(&s->resp, hb + 4, hdr.len > 0 ? 1 : 0, hdr.len, &pkt);
            if (step == SY_STEP_BAD) {
                fail_session(s, (uint8_t)(hdr.seq + 1), 2027, "HY000", "Switchyard: malformed packet from the server");
                return;
            }
            size_t now = avail - 4 < hdr.len ? avail - 4 : hdr.len;
            move_bytes(s, in, out, 4 + now, false);
            s->resp_left = hdr.len - now;
        }
        if (s->resp.has_status)
            s->status = s->resp.status;
        if (step == SY_STEP_INFILE) {
            sy_mysql_session_set_state(s, SS_INFILE);
            process_client(s);
            continue;
        }
        if (step == SY_STEP_DONE) {
            if (s->resp_left > 0) {
                s->resp_done_after_stream = true;
                continue;
            }
            finish_reply(s);
            return; /* as above; a new reply comes with a new read event */
        }
    }
}

/* ---- events ------------------------------------------------------------------------------------ */

static void on_client_read(struct bufferevent *bev, void *arg)
{
    if (((struct sy_mysql_session *)arg)->pulling)
        return; /* inside client_read_update: its caller processes */
    process_client(arg);
    session_flush(arg);
}

static void on_client_write(struct bufferevent *bev, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (s->state == SS_CLOSING) {
        /* An error was flushed: now the session can go. */
        if (client_pending(s) == 0) {
            static const struct timeval now = { 0, 0 };
            evtimer_add(s->px->reaper, &now);
        }
        return;
    }
    if (s->backend_bp && client_pending(s) <= SESS_HIGH_WATER / 2) {
        s->backend_bp = false;
        backend_read_update(s);
        process_backend(s);
        session_flush(s);
    }
    write_drained(s, bev);
}

/* Compressed sessions: the socket's output shrank (evbuffer callback, inside libevent's write path):
 * look again from the loop. */
static void on_socket_out(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (info->n_deleted > 0 && s->drained_ev != NULL)
        event_active(s->drained_ev, EV_WRITE, 0);
}

static void on_client_drained(evutil_socket_t fd, short what, void *arg)
{
    on_client_write(((struct sy_mysql_session *)arg)->client, arg);
}

static void on_client_event(struct bufferevent *bev, short what, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    if (s->state == SS_CLOSING) {
        s->client_gone = true; /* nothing more can be flushed: free it */
        static const struct timeval now = { 0, 0 };
        evtimer_add(s->px->reaper, &now);
        return;
    }
    if (what & BEV_EVENT_EOF)
        sy_mysql_session_close(s, s->state == SS_BUSY ? "client vanished mid-request" : "client disconnected");
    else if (what & BEV_EVENT_ERROR)
        sy_mysql_session_close(s, "client socket error");
}

static void on_backend_read(struct bufferevent *bev, void *arg)
{
    process_backend(arg);
    session_flush(arg);
}

static void on_backend_write(struct bufferevent *bev, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (s->client_bp && evbuffer_get_length(bufferevent_get_output(bev)) <= SESS_HIGH_WATER / 2) {
        s->client_bp = false;
        client_read_update(s);
        process_client(s);
        session_flush(s);
    }
    write_drained(s, bev);
}

/* The backend went away while nothing was in flight (the database died, restarted, or killed the
 * connection): the client keeps its socket until its next request. If a failover changed the active
 * side meanwhile, that request gets a new backend there with the session's state rebuilt (an open
 * transaction is lost: the client is told at its next statement); otherwise it gets "lost connection",
 * as it would without the proxy. */
/* After an idle backend was lost: does its server still answer? Then it ended the session itself
 * (wait_timeout, KILL from elsewhere) and the client's connection ends now, as it would directly - a
 * pool's stale-connection check sees it before the next statement. If it does not answer, the client
 * stays: a failover may rebuild the session on the other side at its next request. */
static void on_probe(struct sy_mysql_conn *c, const uint8_t *err, size_t err_len, void *arg)
{
    struct sy_mysql_session *s = arg;
    sy_mysql_session_release_conn(s->px, s->probe);
    s->probe = NULL;
    struct sy_mysql_err e;
    bool answered = err == NULL ||
                    (sy_mysql_err_parse(err, err_len, &e) == SY_PARSE_OK && (e.code < 2000 || e.code > 2999));
    if (!answered || s->state == SS_CLOSING || !s->backend_lost)
        return;
    lose_session(s, "the server ended the idle session (it still answers): closed as it would be directly");
}

static void probe_side(struct sy_mysql_session *s)
{
    if (s->probe != NULL || s->side != s->px->pair->active_side || s->px->pair->held)
        return;
    struct sy_mysql_login login;
    sy_mysql_session_login(s, &login);
    char label[220];
    const struct sy_endpoint *ep = sy_pair_active_endpoint(s->px->pair);
    snprintf(label, sizeof label, "%s probe %s:%u", s->label, ep->host, ep->port);
    s->probe = sy_mysql_conn_open(s->px->base, ep, &login, label, on_probe, s);
    OPENSSL_cleanse(login.stage1, sizeof login.stage1);
}

static void backend_lost(struct sy_mysql_session *s)
{
    sy_log_warn("%s: backend on %s side lost while idle%s", s->label, sy_side_name(s->side),
                s->in_txn ? " inside a transaction (rolled back by the server)" : "");
    if (s->in_txn) {
        s->txn_aborted = true;
        s->in_txn = false;
    }
    sy_mysql_session_release_conn(s->px, s->backend); /* we are inside its event callback */
    s->backend = NULL;
    s->backend_lost = true;
    probe_side(s);
}

static void on_backend_event(struct bufferevent *bev, short what, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (s->state == SS_CLOSING)
        return;
    if ((s->state == SS_IDLE || s->state == SS_HELD) && s->resp_left == 0 && s->req_left == 0) {
        backend_lost(s);
        return;
    }
    /* A request in flight: the client sees the connection drop, as it would directly ("lost connection
     * during query"); an error packet could only carry a client-range code. */
    lose_session(s, (what & BEV_EVENT_EOF) ? "lost connection to the database server"
                                           : "database server connection error");
}

static void rearm_client(struct sy_mysql_session *s)
{
    bufferevent_setcb(s->client, on_client_read, on_client_write, on_client_event, s);
    bufferevent_setwatermark(s->client, EV_WRITE, SESS_HIGH_WATER / 2, 0);
    bufferevent_enable(s->client, EV_READ | EV_WRITE);
}

/* ---- public ------------------------------------------------------------------------------------ */

/* ---- shared with mysql_switch.c --------------------------------------------------------------- */

void sy_mysql_session_kick(struct sy_mysql_session *s)
{
    if (s->state == SS_CLOSING)
        return;
    client_read_update(s);
    backend_read_update(s);
    process_client(s);
    if (s->state != SS_CLOSING)
        process_backend(s);
    session_flush(s);
}

void sy_mysql_session_fail(struct sy_mysql_session *s, uint8_t seq, uint16_t code, const char *state, const char *msg)
{
    fail_session(s, seq, code, state, msg);
}

void sy_mysql_session_login(const struct sy_mysql_session *s, struct sy_mysql_login *out)
{
    memset(out, 0, sizeof *out);
    out->auth = s->have_stage1 ? SY_LOGIN_STAGE1 : SY_LOGIN_EMPTY;
    out->caps = s->backend_caps;
    out->collation = s->collation;
    snprintf(out->user, sizeof out->user, "%s", s->user);
    snprintf(out->db, sizeof out->db, "%s", s->schema);
    if (s->have_stage1)
        memcpy(out->stage1, s->stage1, sizeof out->stage1);
    out->attrs = s->attrs;
    out->attrs_len = s->attrs_len;
}

bool sy_mysql_session_quiet(const struct sy_mysql_session *s)
{
    return (s->state == SS_IDLE || s->state == SS_HELD) && s->req_left == 0 && s->resp_left == 0 &&
           !s->req_continues;
}

void sy_mysql_session_accept(struct sy_mysql_proxy *px, evutil_socket_t fd, const struct sockaddr *sa, int salen)
{
    struct sy_mysql_session *s = calloc(1, sizeof *s);
    if (s == NULL) {
        evutil_closesocket(fd);
        return;
    }
    s->px = px;
    s->id = px->next_id++;
    if (px->next_id < SY_MYSQL_FIRST_SESSION_ID)
        px->next_id = SY_MYSQL_FIRST_SESSION_ID;
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    getnameinfo(sa, (socklen_t)salen, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(s->peer, sizeof s->peer, "%s:%s", host, serv);
    snprintf(s->label, sizeof s->label, "%s C-%u %s", px->pair->cfg->name, s->id, s->peer);
    s->status = SY_STATUS_AUTOCOMMIT;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->client = bufferevent_socket_new(px->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (s->client == NULL) {
        evutil_closesocket(fd);
        free(s);
        return;
    }
    TAILQ_INSERT_TAIL(&px->sessions, s, link);
    px->n_sessions++;
    rearm_client(s);
    sy_log_debug("%s: accepted", s->label);
    send_greeting(s);
}

static void session_resume(struct sy_mysql_session *s)
{
    if (s->state == SS_PARKED) {
        backend_login(s, s->parked_auth);
        return;
    }
    if (s->state != SS_HELD)
        return;
    sy_mysql_session_set_state(s, SS_IDLE);
    client_read_update(s);
    process_client(s);
    session_flush(s);
}

struct sy_mysql_session *sy_mysql_proxy_find_session(struct sy_mysql_proxy *px, uint32_t id)
{
    struct sy_mysql_session *s;
    TAILQ_FOREACH(s, &px->sessions, link)
        if (s->id == id)
            return s;
    return NULL;
}

uint32_t sy_mysql_session_backend_thread(const struct sy_mysql_session *s)
{
    if (s->backend == NULL || s->state < SS_IDLE || s->state == SS_CLOSING)
        return 0;
    return sy_mysql_conn_greeting(s->backend)->thread_id;
}

void sy_mysql_sessions_resume(struct sy_mysql_proxy *px)
{
    struct sy_mysql_session *s, *next;
    for (s = TAILQ_FIRST(&px->sessions); s != NULL && !px->pair->held; s = next) {
        next = TAILQ_NEXT(s, link);
        session_resume(s); /* may close s: next was taken first */
    }
}

static json_t *session_json(const struct sy_mysql_session *s)
{
    uint64_t held = s->state == SS_HELD ? sy_now_ms() - s->held_since_ms : 0;
    const char *pinned = sy_mysql_session_pinned(s);
    json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:b,s:I,s:b,s:s,s:s,s:s,s:I,s:I}", "id", (json_int_t)s->id, "user",
                          s->user, "peer", s->peer, "side", sy_side_name(s->side), "in_transaction", s->in_txn,
                          "held_ms", (json_int_t)held, "movable", pinned == NULL, "state", sess_state_names[s->state],
                          "schema", s->schema, "last_gtid", s->last_gtid, "prepared_statements", (json_int_t)s->n_stmts,
                          "backend_thread", (json_int_t)sy_mysql_session_backend_thread(s));
    json_object_set_new(o, "unmovable_reason", pinned ? json_string(pinned) : json_null());
    return o;
}

json_t *sy_mysql_sessions_json(struct sy_mysql_proxy *px)
{
    json_t *list = json_array();
    struct sy_mysql_session *s;
    TAILQ_FOREACH(s, &px->sessions, link)
        json_array_append_new(list, session_json(s));
    return list;
}
