/* One MariaDB client session's relay: one request in flight, framed and inspected on the way (KILL of a proxy
 * id rewritten, statement ids mapped after a flip, requests in an aborted transaction answered, pins and
 * tracking from the statement text), the reply followed by the tracker to its end (status flags, OK
 * state blocks, errors) (see mysql_session.c for how the session's files divide). */
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

#include "core/grow.h"
#include "core/log.h"
#include "proxy/mysql_codec.h"
#include "proxy/mysql_compress.h"
#include "proxy/mysql_conn.h"
#include "proxy/mysql_proxy.h"
#include "proxy/mysql_fanout.h"
#include "proxy/mysql_session.h"
#include "proxy/mysql_sql.h"

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
    if (sy_grow((void **)&s->stmts, &s->cap_stmts, s->n_stmts + 1, sizeof *s->stmts, 8) != 0)
        return id;
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
            sy_mysql_session_stmt_free(&s->stmts[i]);
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

/* ---- requests ---------------------------------------------------------------------------------- */

static void backend_packet(struct sy_mysql_session *s, uint8_t seq, const uint8_t *payload, size_t len)
{
    uint8_t hdr[4];
    sy_mysql_hdr_encode(hdr, (uint32_t)len, seq);
    struct evbuffer *out = bufferevent_get_output(sy_mysql_conn_bev(s->backend));
    evbuffer_add(out, hdr, 4);
    evbuffer_add(out, payload, len);
}

/* A KILL request's target id (COM_PROCESS_KILL's 4 bytes, or KILL [QUERY] <id> in a COM_QUERY). */
static bool kill_parse(const uint8_t *p, size_t n, struct sy_mysql_kill *k)
{
    if (p[0] != SY_COM_PROCESS_KILL)
        return sy_mysql_kill_parse(p + 1, n - 1, k);
    if (n < 5)
        return false;
    memset(k, 0, sizeof *k);
    k->id = (uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24;
    return true;
}

/* Sends the KILL to the backend with the proxy id replaced by the target's backend thread. */
static bool kill_send(struct sy_mysql_session *s, const uint8_t *p, size_t n, uint8_t seq,
                      const struct sy_mysql_kill *k, uint32_t thread)
{
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
        int m = snprintf((char *)buf + 1, sizeof buf - 1, "%.*s%u%.*s", (int)k->id_off, (const char *)p + 1, thread,
                         (int)(n - 1 - k->id_off - k->id_len), (const char *)p + 1 + k->id_off + k->id_len);
        if (m < 0 || (size_t)m >= sizeof buf - 1)
            return false;
        buf[0] = SY_COM_QUERY;
        len = 1 + (size_t)m;
    }
    sy_log_info("%s: KILL%s %llu -> backend thread %u", s->label, k->query_only ? " QUERY" : "",
                (unsigned long long)k->id, thread);
    backend_packet(s, seq, buf, len);
    return true;
}

static void kill_unknown(struct sy_mysql_session *s, uint64_t id, uint8_t seq)
{
    char msg[64];
    snprintf(msg, sizeof msg, "Unknown thread id: %llu", (unsigned long long)id);
    sy_mysql_session_client_err(s, (uint8_t)(seq + 1), 1094, "HY000", msg);
}

/* KILL with a proxy connection id -> the backend thread of that session (asked of its worker loop when
 * another one has it: the session is BUSY until sy_mysql_relay_kill_answer). */
static bool rewrite_kill(struct sy_mysql_session *s, const uint8_t *p, size_t n, uint8_t seq)
{
    struct sy_mysql_kill k;
    if (!kill_parse(p, n, &k))
        return false;
    if (k.id < SY_MYSQL_FIRST_SESSION_ID)
        return false; /* a backend thread id: the server decides */
    uint32_t thread = 0;
    enum sy_side side = s->side;
    int found = k.id <= UINT32_MAX ? sy_mysql_fanout_kill_target(s, (uint32_t)k.id, p, n, seq, &thread, &side) : 0;
    if (found < 0) { /* the server's own answer when it runs out of memory */
        sy_mysql_session_client_err(s, (uint8_t)(seq + 1), 1041, "HY000",
                                    "Out of memory; check if mysqld or some other process uses all available "
                                    "memory; if not, you may have to use 'ulimit' to allow mysqld to use more "
                                    "memory or you can add more swap space");
        return true;
    }
    if (found != 2 && (thread == 0 || side != s->side)) {
        kill_unknown(s, k.id, seq);
        return true;
    }
    if (found != 2 && !kill_send(s, p, n, seq, &k, thread))
        return false;
    s->cmd = p[0];
    sy_mysql_resp_start(&s->resp, p[0], s->backend_caps);
    sy_mysql_session_set_state(s, SS_BUSY);
    return true;
}

void sy_mysql_relay_kill_answer(struct sy_mysql_session *s, const uint8_t *p, size_t n, uint8_t seq, uint32_t thread,
                                enum sy_side side)
{
    struct sy_mysql_kill k;
    bool parsed = kill_parse(p, n, &k);
    if (!parsed || thread == 0 || side != s->side) {
        sy_mysql_session_set_state(s, SS_IDLE);
        kill_unknown(s, parsed ? k.id : 0, seq);
        sy_mysql_session_kick(s);
        return;
    }
    if (!kill_send(s, p, n, seq, &k, thread))
        backend_packet(s, seq, p, n); /* no room to rewrite: as written, the server decides */
    sy_mysql_session_flush(s);
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

static void discard_request(struct sy_mysql_session *s, struct evbuffer *in, struct sy_mysql_hdr hdr);

/* A statement id this session does not have (closed, reset away, never prepared) after a flip: the new
 * side's statements have ids of their own, and one of them may carry it, so it is answered here as the
 * server answers it (ER_UNKNOWN_STMT_HANDLER), or dropped where the server sends nothing. True: handled. */
static bool unknown_stmt(struct sy_mysql_session *s, struct evbuffer *in, struct sy_mysql_hdr hdr, uint8_t cmd,
                         uint32_t id)
{
    const char *fn = cmd == SY_COM_STMT_EXECUTE ? "mysqld_stmt_execute" :
                     cmd == SY_COM_STMT_FETCH ? "mysqld_stmt_fetch" :
                     cmd == SY_COM_STMT_RESET ? "mysqld_stmt_reset" :
                     cmd == SY_COM_STMT_BULK_EXECUTE ? "mysqld_stmt_bulk_execute" : NULL;
    discard_request(s, in, hdr);
    if (fn != NULL) { /* COM_STMT_CLOSE and COM_STMT_SEND_LONG_DATA have no reply */
        char msg[96];
        snprintf(msg, sizeof msg, "Unknown prepared statement handler (%u) given to %s", id, fn);
        sy_mysql_session_client_err(s, (uint8_t)(hdr.seq + 1), 1243, "HY000", msg);
    }
    return true;
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
    if (st == NULL && id == UINT32_MAX)
        return false; /* MariaDB's "the statement prepared last" (execute-direct): the server's own */
    if (st == NULL)
        return unknown_stmt(s, in, hdr, p[0], id);
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
 * continuation packets) as it arrives (sy_mysql_relay_client). */
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
        sy_mysql_session_client_ok(s, (uint8_t)(hdr.seq + 1));
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
    sy_mysql_session_client_err(s, (uint8_t)(hdr.seq + 1), 1213, "40001",
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
            sy_mysql_session_fail(s, (uint8_t)(hdr.seq + 1), 1043, "08S01", "Bad handshake (COM_CHANGE_USER)");
            return;
        }
        if (!sy_mysql_session_auth_set(s, cu->auth, cu->auth_len)) {
            OPENSSL_cleanse(cu->auth, sizeof cu->auth);
            free(cu);
            sy_mysql_session_close(s, "out of memory");
            return;
        }
        if (cu->attrs_len > 0) {
            uint8_t *a = malloc(cu->attrs_len);
            if (a) {
                memcpy(a, cu->attrs_p, cu->attrs_len);
                free(s->attrs);
                s->attrs = a;
                s->attrs_len = cu->attrs_len;
            }
        }
        /* Replayed as a fresh login as the new account: the server checks it, resets the session
         * (as COM_CHANGE_USER does) and the proxy keeps the secret for later logins. */
        if (!sy_mysql_session_str_set(&s->user, SY_MYSQL_NAME_MAX, "%s", cu->user) ||
            !sy_mysql_session_str_set(&s->schema, SY_MYSQL_DB_MAX, "%s", cu->db)) {
            OPENSSL_cleanse(cu->auth, sizeof cu->auth);
            free(cu);
            sy_mysql_session_close(s, "out of memory");
            return;
        }
        if (cu->has_collation)
            s->collation = (uint8_t)cu->collation;
        OPENSSL_cleanse(cu->auth, sizeof cu->auth);
        free(cu);
        evbuffer_drain(in, 4 + hdr.len);
        sy_mysql_session_set_state(s, SS_CHANGE_USER);
        sy_mysql_session_stmts_clear(s);
        sy_mysql_track_vars_clear(s);
        pins_reset(s);
        s->have_stage1 = false;
        s->empty_password = false;
        OPENSSL_cleanse(s->stage1, sizeof s->stage1);
        sy_mysql_session_release_conn(s->px, s->backend); /* the old session ends, as COM_CHANGE_USER ends it */
        s->backend = NULL;
        sy_mysql_login_start_auth(s);
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
        sy_mysql_session_client_err(s, (uint8_t)(hdr.seq + 1), 1235, "42000",
                   "Switchyard: replication commands are not supported through the proxy");
        return;
    default:
        break;
    }
    /* Forward the header and what we have of the payload; stream the rest. */
    size_t avail = evbuffer_get_length(in) - 4;
    size_t now = avail < hdr.len ? avail : hdr.len;
    sy_mysql_session_move_bytes(s, in, bufferevent_get_output(sy_mysql_conn_bev(s->backend)), 4 + now, true);
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

void sy_mysql_relay_client(struct sy_mysql_session *s)
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
            sy_mysql_session_move_bytes(s, in, bufferevent_get_output(sy_mysql_conn_bev(s->backend)), n, true);
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
                sy_mysql_session_move_bytes(s, in, bufferevent_get_output(sy_mysql_conn_bev(s->backend)), 4, true);
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
                sy_mysql_session_fail(s, (uint8_t)(hdr.seq + 1), 1043, "08S01", "Bad handshake");
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
                sy_mysql_login_handshake_response(s, p, hdr.len);
            } else {
                if (!sy_mysql_session_auth_set(s, p, hdr.len)) {
                    OPENSSL_cleanse(p, hdr.len);
                    free(p);
                    sy_mysql_session_close(s, "out of memory");
                    return;
                }
                sy_mysql_login_start_auth(s);
            }
            OPENSSL_cleanse(p, hdr.len);
            free(p);
            if (s->state == SS_HANDSHAKE)
                continue; /* TLS upgrade: the real handshake response follows */
            return;
        }
        case SS_AUTH_RELAY: {
            if (hdr.len > 64 * 1024) {
                sy_mysql_session_fail(s, (uint8_t)(hdr.seq + 1), 1043, "08S01", "Bad handshake");
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
            sy_mysql_session_client_read_update(s);
            continue;
        default:
            return; /* one request at a time: the next waits in the buffer */
        }
        /* SS_IDLE: a new request. */
        if (hdr.len == 0) {
            sy_mysql_session_fail(s, (uint8_t)(hdr.seq + 1), 1047, "08S01", "Unknown command");
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
            sy_mysql_session_lose(s, "the backend connection was lost while idle; closed at the next request");
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
                sy_mysql_session_client_ok(s, (uint8_t)(hdr.seq + 1));
                continue;
            }
            s->held_since_ms = sy_now_ms();
            sy_mysql_session_set_state(s, SS_HELD);
            sy_mysql_session_client_read_update(s);
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
                sy_mysql_session_lose(s, "the backend connection was lost while idle; closed at the next request");
                return;
            }
            sy_mysql_switch_reconnect(s); /* failed over meanwhile: the request waits for a new backend */
            return;
        }
        start_request(s, in, hdr, want);
    }
}

/* ---- replies ----------------------------------------------------------------------------------- */

static void finish_reply(struct sy_mysql_session *s);
static void forward_ok(struct sy_mysql_session *s, uint8_t seq, uint8_t header, const uint8_t *p, size_t n,
                       const struct sy_mysql_ok *ok);

/* commit_wait (mysql_commit_wait.c) ends a held OK: passed on (ok), or replaced by ERR 1180 with errmsg. */
void sy_mysql_relay_cw_done(struct sy_mysql_session *s, bool ok, const char *errmsg)
{
    if (s->state == SS_CLOSING || s->backend == NULL)
        return;
    struct evbuffer *in = bufferevent_get_input(sy_mysql_conn_bev(s->backend));
    uint8_t hb[4];
    struct sy_mysql_hdr hdr;
    if (evbuffer_copyout(in, hb, 4) < 4) { /* our bug: the held packet must be there */
        sy_mysql_session_lose(s, "commit_wait: the held reply is gone");
        return;
    }
    sy_mysql_hdr_parse(hb, 4, &hdr);
    const uint8_t *pk = evbuffer_pullup(in, (ssize_t)(4 + hdr.len));
    struct sy_mysql_ok okp;
    if (pk == NULL || sy_mysql_ok_parse(pk + 4, hdr.len, s->backend_caps, &okp) != SY_PARSE_OK) {
        sy_mysql_session_lose(s, "commit_wait: the held reply is gone");
        return;
    }
    bool final = s->cw_final;
    if (ok) {
        sy_mysql_track_ack(s);
        forward_ok(s, hdr.seq, pk[4], pk + 4, hdr.len, &okp);
        evbuffer_drain(in, 4 + hdr.len);
    } else {
        s->cw_gtid_new = false; /* the client was not told OK: not acknowledged */
        evbuffer_drain(in, 4 + hdr.len);
        if (!final) {
            /* more results of a multi-statement request follow on the backend: the client cannot be
             * given them after an error, so the session ends with it */
            sy_mysql_session_fail(s, hdr.seq, SY_ER_ERROR_DURING_COMMIT, "HY000", errmsg);
            return;
        }
        sy_mysql_session_client_err(s, hdr.seq, SY_ER_ERROR_DURING_COMMIT, "HY000", errmsg);
    }
    if (final)
        finish_reply(s);
    else
        sy_mysql_relay_backend(s);
    if (s->state != SS_CLOSING)
        sy_mysql_session_flush(s);
}

static void finish_reply(struct sy_mysql_session *s)
{
    s->in_txn = (s->status & SY_STATUS_IN_TRANS) != 0;
    sy_mysql_track_reply(s, s->resp.failed);
    if (s->pending_reset) {
        s->pending_reset = false;
        sy_mysql_session_stmts_clear(s);
        sy_mysql_track_vars_clear(s);
        pins_reset(s);
        s->last_gtid[0] = '\0';
        /* RESET_CONNECTION resets session tracking: set it again before the next request. */
        sy_mysql_session_set_state(s, SS_INIT);
        if (sy_mysql_conn_query(s->backend, sy_mysql_session_init_sql, sy_mysql_login_on_init_done, s) != 0)
            sy_mysql_session_fail(s, (uint8_t)(s->seq + 1), 2013, "HY000", "Switchyard: backend session setup failed");
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
    sy_mysql_relay_client(s);
}

/* An OK the client may see: hide session tracking it did not ask for. */
static void forward_ok(struct sy_mysql_session *s, uint8_t seq, uint8_t header, const uint8_t *p, size_t n,
                       const struct sy_mysql_ok *ok)
{
    bool hide_all = !(s->caps & SY_CAP_SESSION_TRACK) && (s->backend_caps & SY_CAP_SESSION_TRACK);
    /* what the client's own tracking settings show, or the server's defaults when it set none */
    bool filter = (s->caps & SY_CAP_SESSION_TRACK) && ok->state_p != NULL;
    if (!hide_all && !filter) {
        sy_mysql_session_client_packet(s, seq, p, n);
        return;
    }
    struct sy_mysql_ok copy = *ok;
    uint8_t *state = NULL;
    size_t state_len = 0;
    if (filter && (state = malloc(ok->state_len + 1)) != NULL)
        state_len = sy_mysql_track_filter(s, ok->state_p, ok->state_len, state, ok->state_len + 1);
    if (filter && (state == NULL || state_len == (size_t)-1)) {
        free(state);
        sy_mysql_session_client_packet(s, seq, p, n); /* cannot rebuild it: more than asked for, never less */
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
        sy_mysql_session_client_packet(s, seq, p, n);
    else
        sy_mysql_session_client_packet(s, seq, buf, len);
    free(buf);
    free(state);
}

/* A run of packets that stream (rows, column definitions: nothing sy_mysql_resp_wants_whole wants) lying
 * whole in the first chain of `in`: each is fed to the tracker exactly as the per-packet path below feeds it
 * (its first byte), then the run moves to the client in one piece - one evbuffer move per read instead of one
 * per row (a range select's 100 rows were 100 moves, each with its header copied out, both buffers'
 * callbacks and a backpressure check). The run ends before a packet that must be pulled up whole, one not
 * complete in the chain or a bad one (the per-packet path takes those), or after one that ends the reply or
 * starts LOCAL INFILE (*step says which; else SY_STEP_MORE). Returns the bytes moved. */
static size_t relay_stream_run(struct sy_mysql_session *s, struct evbuffer *in, struct evbuffer *out,
                               enum sy_mysql_step *step)
{
    *step = SY_STEP_MORE;
    struct evbuffer_iovec v;
    if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
        return 0;
    const uint8_t *p = v.iov_base;
    size_t n = v.iov_len, off = 0;
    while (n - off >= 4) {
        struct sy_mysql_hdr hdr;
        sy_mysql_hdr_parse(p + off, 4, &hdr);
        if (n - off - 4 < hdr.len)
            break;
        uint8_t first = hdr.len > 0 ? p[off + 4] : 0;
        if (!s->resp.continued && sy_mysql_resp_wants_whole(&s->resp, first, hdr.len))
            break;
        struct sy_mysql_resp before = s->resp;
        struct sy_mysql_pkt pkt;
        enum sy_mysql_step st = sy_mysql_resp_feed(&s->resp, p + off + 4, hdr.len > 0 ? 1 : 0, hdr.len, &pkt);
        if (st == SY_STEP_BAD) {
            s->resp = before; /* the per-packet path feeds it again and answers the error */
            break;
        }
        off += 4 + (size_t)hdr.len;
        if (s->resp.has_status)
            s->status = s->resp.status;
        if (st != SY_STEP_MORE) {
            *step = st;
            break;
        }
    }
    if (off > 0)
        sy_mysql_session_move_bytes(s, in, out, off, false);
    return off;
}

void sy_mysql_relay_backend(struct sy_mysql_session *s)
{
    if (s->state == SS_CLOSING || s->backend == NULL || s->cw_waiting)
        return;
    struct evbuffer *in = bufferevent_get_input(sy_mysql_conn_bev(s->backend));
    struct evbuffer *out = sy_mysql_session_client_out(s);
    for (;;) {
        if (s->state == SS_CLOSING)
            return;
        if (s->resp_left == 0 && !s->backend_bp && (s->state == SS_BUSY || s->state == SS_INFILE)) {
            enum sy_mysql_step step;
            if (relay_stream_run(s, in, out, &step) > 0) {
                if (step == SY_STEP_INFILE) {
                    sy_mysql_session_set_state(s, SS_INFILE);
                    sy_mysql_relay_client(s);
                } else if (step == SY_STEP_DONE) {
                    finish_reply(s);
                    return; /* as below */
                }
                continue;
            }
        }
        size_t avail = evbuffer_get_length(in);
        if (s->resp_left > 0) {
            if (avail == 0 || s->backend_bp)
                return;
            size_t n = avail < s->resp_left ? avail : (size_t)s->resp_left;
            sy_mysql_session_move_bytes(s, in, out, n, false);
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
            if (parsed && e.code == 1053 && SESS_STATE(s)->between_requests) {
                sy_mysql_session_backend_lost(s); /* "Server shutdown in progress": like a vanished server */
                return;
            }
            if (parsed) /* the server's own error (a timeout, KILL): the client gets it, then the close */
                sy_mysql_session_fail(s, 0, e.code, e.sqlstate, msg);
            else
                sy_mysql_session_lose(s, msg);
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
                sy_mysql_session_fail(s, (uint8_t)(hdr.seq + 1), 2027, "HY000", "Switchyard: malformed packet from the server");
                return;
            }
            if (pkt.kind == SY_PKT_OK) {
                s->status = pkt.ok.status;
                s->cw_gtid_new = false;
                sy_mysql_track_ok(s, &pkt.ok);
                if (s->cw_gtid_new && sy_mysql_cw_hold(s, step == SY_STEP_DONE && s->resp_left == 0))
                    return; /* commit_wait: the OK stays in `in`; sy_mysql_relay_cw_done goes on */
                sy_mysql_track_ack(s);
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
                sy_mysql_session_move_bytes(s, in, out, 4 + hdr.len, false);
            }
        } else {
            step = sy_mysql_resp_feed(&s->resp, hb + 4, hdr.len > 0 ? 1 : 0, hdr.len, &pkt);
            if (step == SY_STEP_BAD) {
                sy_mysql_session_fail(s, (uint8_t)(hdr.seq + 1), 2027, "HY000", "Switchyard: malformed packet from the server");
                return;
            }
            size_t now = avail - 4 < hdr.len ? avail - 4 : hdr.len;
            sy_mysql_session_move_bytes(s, in, out, 4 + now, false);
            s->resp_left = hdr.len - now;
        }
        if (s->resp.has_status)
            s->status = s->resp.status;
        if (step == SY_STEP_INFILE) {
            sy_mysql_session_set_state(s, SS_INFILE);
            sy_mysql_relay_client(s);
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


/* ---- sleeping: an idle plain session without bufferevents (proxy/relay.h) --------------------------
 *
 * Most sessions of a pool sit idle between requests, and their two bufferevents (~1.3 KiB each) are most of
 * what they cost. A plain session (no TLS, no compression) that read nothing for idle_sleep_ms (250) while idle,
 * with nothing buffered either way and no transaction, hold, switch or commit_wait work pending, frees both:
 * the sockets stay open and each side's reader event watches its bare socket. The next byte from the client,
 * anything from the server (an ERR before a KILL's close, an EOF) or any wake from outside (a switch step,
 * a close) builds them again, and the bytes that woke it are read on the next loop turn through the usual
 * path: nothing above the bufferevents knows the session slept. Everything comes from the session's own
 * event_base (the one its reader events were made on). */

static bool may_sleep(const struct sy_mysql_session *s)
{
    return s->state == SS_IDLE && !s->asleep && s->direct && !s->compressed && s->client != NULL &&
           s->client_rd.bev == s->client && s->backend != NULL && !s->backend_lost && s->probe == NULL &&
           !s->in_txn && !s->txn_aborted && !s->abort_due && !s->flip_due && !s->cw_waiting &&
           s->req_left == 0 && s->resp_left == 0 && s->discard_left == 0 && !s->req_continues &&
           !s->discard_continues && !s->resp_done_after_stream && !s->client_bp && !s->backend_bp &&
           s->warm == NULL && s->warm_state == WARM_NONE && !s->uservars_copying && s->wait == NULL &&
           s->pending_prepare_sql == NULL && !s->pending_reset && !s->px->pair->held &&
           /* checked before either side sleeps: a client with half a packet would otherwise cost the backend a
              free and a rebuild every idle_sleep_ms */
           evbuffer_get_length(bufferevent_get_input(s->client)) == 0 &&
           evbuffer_get_length(bufferevent_get_output(s->client)) == 0;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct sy_mysql_session *s = arg;
    (void)fd;
    (void)what;
    if (!sy_mysql_relay_wake(s))
        sy_mysql_session_close(s, "out of memory waking the idle session");
    /* what woke it is read on the next loop turn, by the readers of the new bufferevents */
}

void sy_mysql_relay_idle(struct sy_mysql_session *s)
{
    if (!may_sleep(s))
        return;
    if (sy_mysql_conn_sleep(s->backend, on_wake, s) != 0)
        return;
    if (sy_relay_sleep(&s->client_rd, s->client, on_wake, s) != 0) {
        if (sy_mysql_conn_wake(s->backend) != 0) {
            sy_mysql_session_close(s, "out of memory waking the idle session");
            return;
        }
        sy_mysql_session_take_backend(s);
        bufferevent_disable(sy_mysql_conn_bev(s->backend), EV_WRITE);
        return;
    }
    s->client = NULL;
    s->asleep = true;
    sy_log_debug("%s: asleep (idle %d ms)", s->label, s->px->pair->cfg->idle_sleep_ms);
}

bool sy_mysql_relay_wake(struct sy_mysql_session *s)
{
    if (!s->asleep)
        return true;
    struct bufferevent *c = sy_relay_wake(&s->client_rd);
    if (c == NULL) {
        event_del(s->client_rd.ev); /* its fd closes when the session is freed */
        s->asleep = false;
        return false;
    }
    s->client = c;
    s->asleep = false;
    sy_mysql_session_rearm_client(s);
    bufferevent_disable(c, EV_READ | EV_WRITE); /* the reader reads; a direct write arms EV_WRITE if needed */
    if (sy_mysql_conn_wake(s->backend) != 0)
        return false; /* the conn stays asleep: releasing it stops its event, freeing it closes its fd */
    sy_mysql_session_take_backend(s);
    bufferevent_disable(sy_mysql_conn_bev(s->backend), EV_WRITE);
    sy_mysql_session_client_read_update(s);
    sy_log_debug("%s: awake", s->label);
    return true;
}

void sy_mysql_sessions_wake(struct sy_mysql_proxy *px)
{
    struct sy_mysql_session *s, *next;
    for (s = TAILQ_FIRST(&px->sessions); s != NULL; s = next) {
        next = TAILQ_NEXT(s, link);
        if (!sy_mysql_relay_wake(s))
            sy_mysql_session_close(s, "out of memory waking the idle session");
    }
}
