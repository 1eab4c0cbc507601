/* The MariaDB proxy's part of a switch (switchover, switchback, failover), driven by core/switch.c
 * through the sy_proxy_protocol vtable, all on the loop thread:
 *
 *   warm      every logged-in session gets a second connection on the other side, logged in as the
 *             same account (its proven SHA1 stage), with the session's state rebuilt: database,
 *             tracked session variables, prepared statements re-prepared (ids mapped at the flip,
 *             bound parameter types re-sent at the first execute); once the pair is held and the
 *             session quiet, its user variables are copied too (read from USER_VARIABLES);
 *   abort     transactions still open when txn_drain_ms is spent are rolled back; the client then
 *             gets 1213 / 40001 until it sends ROLLBACK (a COMMIT never returns OK on the new side);
 *   flip      each session's backend is swapped for its warm connection — a pointer swap.
 *
 * A session whose backend died while idle (failover) is rebuilt the same way on its next request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/change.h"
#include "core/log.h"
#include "engine/mariadb_client.h"
#include "proxy/mysql_session.h"

#define USER_VARS_SQL                                                                                      \
    "SELECT VARIABLE_NAME, VARIABLE_VALUE, VARIABLE_TYPE, CHARACTER_SET_NAME FROM "                     \
    "information_schema.USER_VARIABLES"

/* Tracked variables that are not the client's to replay: read-only, or Switchyard's own tracking. */
static const char *const not_replayed[] = {
    "session_track_system_variables", "session_track_schema", "session_track_state_change",
    "session_track_transaction_info", "last_gtid", "gtid_seq_no", "in_transaction", "warning_count",
    "error_count", "identity", "server_id", "timestamp", "rand_seed1", "rand_seed2", "external_user",
    "proxy_user", "pseudo_thread_id", "character_set_results", "max_allowed_packet", "net_buffer_length",
};

static bool replayed(const char *name)
{
    for (size_t i = 0; i < sizeof not_replayed / sizeof not_replayed[0]; i++)
        if (strcmp(name, not_replayed[i]) == 0)
            return false;
    return true;
}

static void add(struct sy_buf *b, const char *s)
{
    sy_buf_add(b, s, strlen(s));
}

/* A value as a literal: plain numbers as they are, anything else as X'hex' (no escaping to get wrong),
 * converted to charset when given. */
static void add_value(struct sy_buf *b, const char *v, const char *charset, bool numeric)
{
    if (v == NULL) {
        add(b, "NULL");
        return;
    }
    bool plain = numeric && v[0] != '\0';
    for (const char *p = v; plain && *p; p++)
        plain = (*p >= '0' && *p <= '9') || *p == '-' || *p == '+' || *p == '.' || *p == 'e' || *p == 'E';
    if (plain) {
        add(b, v);
        return;
    }
    bool convert = charset && charset[0];
    if (convert)
        add(b, "CONVERT(");
    add(b, "X'");
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        char h[2] = { hex[*p >> 4], hex[*p & 15] };
        sy_buf_add(b, h, 2);
    }
    add(b, "'");
    if (convert) {
        add(b, " USING ");
        for (const char *p = charset; *p; p++) /* charset names are [a-z0-9_] */
            if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')
                sy_buf_add(b, p, 1);
        add(b, ")");
    }
}

/* Runs the statement built in b (NUL-terminated here) on the warm connection; false when it could not
 * be sent (why: "out of memory" or "connection busy"). Frees b. */
static bool warm_send(struct sy_mysql_session *s, struct sy_buf *b, sy_mysql_query_cb cb, const char **why)
{
    sy_buf_add(b, "", 1);
    *why = b->oom ? "out of memory" : "connection busy";
    bool sent = !b->oom && sy_mysql_conn_query(s->warm, (const char *)b->p, cb, s) == 0;
    sy_buf_fini(b);
    return sent;
}

/* ---- building a warm connection ---------------------------------------------------------------- */

static void warm_prepare_next(struct sy_mysql_session *s);
static void warm_done(struct sy_mysql_session *s);

static const struct sy_endpoint *side_endpoint(const struct sy_mysql_session *s, enum sy_side side)
{
    return side == SY_SIDE_DR ? &s->px->pair->cfg->dr : &s->px->pair->cfg->business;
}

/* Why the warm connection failed ("" when it did not, or when that could not be kept). */
static const char *warm_error(const struct sy_mysql_session *s)
{
    return s->warm_error ? s->warm_error : "";
}

/* what: the step that failed; detail: why. */
static void warm_fail(struct sy_mysql_session *s, const char *what, const char *detail)
{
    s->warm_state = WARM_FAILED;
    char why[400];
    snprintf(why, sizeof why, "%s: %s", what, detail);
    free(s->warm_error);
    s->warm_error = strdup(why); /* kept only after a failure: an idle session holds none */
    sy_log_warn("%s: cannot prepare the session on the %s side: %s", s->label, sy_side_name(s->warm_side),
                why);
    if (s->state == SS_RECONNECT) {
        char msg[600];
        snprintf(msg, sizeof msg, "Switchyard: lost connection to the database server; reconnecting on the %s side "
                                  "failed: %s",
                 sy_side_name(s->warm_side), why);
        sy_mysql_session_fail(s, (uint8_t)(s->seq + 1), 2013, "HY000", msg);
    }
}

static void finish_flip_now(struct sy_mysql_session *s);

static void on_warm_uservars(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg)
{
    struct sy_mysql_session *s = arg;
    s->uservars_copying = false;
    if (!res->ok) {
        warm_fail(s, "copying user variables", res->err_msg);
        if (s->flip_due)
            finish_flip_now(s);
        return;
    }
    s->uservars_done = true;
    if (s->flip_due)
        finish_flip_now(s);
}

/* The session's user variables, read on its current backend (the session is quiet). */
static void on_source_uservars(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg)
{
    struct sy_mysql_session *s = arg;
    sy_mysql_session_take_backend(s);
    sy_mysql_session_set_state(s, s->internal_return);
    if (!res->ok) {
        s->uservars_copying = false;
        warm_fail(s, "reading user variables", res->err_msg);
        if (s->flip_due) {
            finish_flip_now(s);
            return;
        }
        sy_mysql_session_kick(s);
        return;
    }
    if (s->warm == NULL || s->warm_state != WARM_READY || res->n_rows == 0 || res->n_cols < 4) {
        s->uservars_copying = false;
        s->uservars_done = s->warm_state == WARM_READY;
        if (s->flip_due) {
            finish_flip_now(s);
            return;
        }
        sy_mysql_session_kick(s);
        return;
    }
    struct sy_buf sql;
    sy_buf_init(&sql);
    add(&sql, "SET ");
    for (size_t r = 0; r < res->n_rows; r++) {
        char **row = res->cells + r * res->n_cols;
        const char *type = row[2] ? row[2] : "";
        bool numeric = strcmp(type, "INT") == 0 || strcmp(type, "INTEGER") == 0 || strcmp(type, "DECIMAL") == 0 ||
                       strcmp(type, "DOUBLE") == 0 || strcmp(type, "REAL") == 0;
        add(&sql, r == 0 ? "@" : ", @");
        sy_mariadb_add_ident(&sql, row[0] ? row[0] : "");
        add(&sql, " = ");
        add_value(&sql, row[1], numeric ? NULL : row[3], numeric);
    }
    const char *why;
    if (!warm_send(s, &sql, on_warm_uservars, &why)) {
        s->uservars_copying = false;
        warm_fail(s, "copying user variables", why);
        if (s->flip_due) {
            finish_flip_now(s);
            return;
        }
    }
    if (s->flip_due) {
        sy_mysql_session_set_state(s, SS_INTERNAL); /* waits for the warm connection's answer */
        return;
    }
    sy_mysql_session_kick(s); /* what the client sent meanwhile */
}

/* Reads the session's user variables on its backend and sets them on the warm connection. Only one copy
 * is ever in flight (uservars_copying, until the warm connection answered); a session that is not quiet
 * is simply asked again at the next warm tick, inside the hold, so a busy session never fails a switch. */
static void copy_uservars(struct sy_mysql_session *s)
{
    if (s->uservars_copying)
        return;
    s->uservars_copying = true;
    s->internal_return = s->state;
    sy_mysql_session_set_state(s, SS_INTERNAL);
    if (sy_mysql_conn_query(s->backend, USER_VARS_SQL, on_source_uservars, s) != 0) {
        s->uservars_copying = false;
        sy_mysql_session_set_state(s, s->internal_return);
        sy_mysql_session_take_backend(s); /* the backend is busy: the next tick tries again */
    }
}

static void on_warm_prepared(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg)
{
    struct sy_mysql_session *s = arg;
    struct sess_stmt *st = s->warm_next < s->n_stmts ? &s->stmts[s->warm_next] : NULL;
    if (!res->ok) {
        warm_fail(s, "re-preparing a statement", res->err_msg);
        return;
    }
    if (st != NULL) {
        st->warm_id = res->stmt_id;
        st->warm_ok = true;
    }
    s->warm_next++;
    warm_prepare_next(s);
}

static void warm_sql_prepare_next(struct sy_mysql_session *s);

static void on_warm_sql_prepared(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (!res->ok) {
        char detail[700];
        snprintf(detail, sizeof detail, "%s: %s",
                 s->warm_next < s->n_sql_prepared ? s->sql_prepared[s->warm_next].name : "?", res->err_msg);
        warm_fail(s, "PREPARE of an SQL prepared statement", detail);
        return;
    }
    s->warm_next++;
    warm_sql_prepare_next(s);
}

/* SQL-level prepared statements (PREPARE name FROM 'text'), by their text as a hex literal: the same bytes
 * whatever sql_mode says about quotes and backslashes. One whose text is not known pins the session. */
static void warm_sql_prepare_next(struct sy_mysql_session *s)
{
    if (s->warm_next >= s->n_sql_prepared || s->sql_prepared[s->warm_next].value == NULL) {
        warm_done(s);
        return;
    }
    struct sy_buf sql;
    sy_buf_init(&sql);
    add(&sql, "PREPARE ");
    sy_mariadb_add_ident(&sql, s->sql_prepared[s->warm_next].name);
    add(&sql, " FROM ");
    add_value(&sql, s->sql_prepared[s->warm_next].value, NULL, false);
    const char *why;
    if (!warm_send(s, &sql, on_warm_sql_prepared, &why))
        warm_fail(s, "PREPARE of an SQL prepared statement", why);
}

static void warm_prepare_next(struct sy_mysql_session *s)
{
    while (s->warm_next < s->n_stmts && s->stmts[s->warm_next].sql == NULL)
        s->warm_next++; /* too long to keep: the server will answer "unknown prepared statement" */
    if (s->warm_next >= s->n_stmts) {
        s->warm_next = 0; /* now the SQL-level ones */
        warm_sql_prepare_next(s);
        return;
    }
    if (sy_mysql_conn_prepare(s->warm, s->stmts[s->warm_next].sql, on_warm_prepared, s) != 0)
        warm_fail(s, "re-preparing a statement", "connection busy");
}

static void on_warm_vars(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (!res->ok) {
        warm_fail(s, "replaying session variables", res->err_msg);
        return;
    }
    for (size_t i = 0; i < s->n_stmts; i++)
        s->stmts[i].warm_ok = false;
    s->warm_next = 0;
    warm_prepare_next(s);
}

static void on_warm_init(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (!res->ok) {
        warm_fail(s, "session setup", res->err_msg);
        return;
    }
    struct sy_buf sql;
    sy_buf_init(&sql);
    for (size_t i = 0; i < s->n_vars; i++) {
        if (!replayed(s->vars[i].name))
            continue;
        add(&sql, sql.len == 0 ? "SET SESSION " : ", ");
        sy_mariadb_add_ident(&sql, s->vars[i].name);
        add(&sql, " = ");
        add_value(&sql, s->vars[i].value, NULL, true);
    }
    if (sql.len == 0 && !sql.oom) {
        struct sy_mysql_result none = { .ok = true };
        on_warm_vars(c, &none, s);
        return;
    }
    const char *why;
    if (!warm_send(s, &sql, on_warm_vars, &why))
        warm_fail(s, "replaying session variables", why);
}

static void on_warm_login(struct sy_mysql_conn *c, const uint8_t *err, size_t err_len, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (err != NULL) {
        struct sy_mysql_err e;
        char msg[600] = "login refused";
        if (sy_mysql_err_parse(err, err_len, &e) == SY_PARSE_OK)
            snprintf(msg, sizeof msg, "%u %.*s", e.code, (int)e.msg_len, e.msg_p);
        warm_fail(s, "login", msg);
        return;
    }
    if (sy_mysql_conn_query(c, sy_mysql_session_init_sql, on_warm_init, s) != 0)
        warm_fail(s, "session setup", "connection busy");
}

/* Starts a warm connection on `side` (replacing one that is outdated). */
static void warm_build(struct sy_mysql_session *s, enum sy_side side)
{
    sy_mysql_session_release_conn(s->px, s->warm);
    s->warm = NULL;
    s->warm_state = WARM_BUILDING;
    s->warm_side = side;
    s->warm_stale = false;
    s->uservars_done = false;
    s->uservars_copying = false;
    free(s->warm_error);
    s->warm_error = NULL;
    struct sy_mysql_login login;
    sy_mysql_session_login(s, &login);
    char label[220];
    const struct sy_endpoint *ep = side_endpoint(s, side);
    snprintf(label, sizeof label, "%s warm %s %s:%u", s->label, sy_side_name(side), ep->host, ep->port);
    s->warm = sy_mysql_conn_open(s->px->base, ep, &login, label, on_warm_login, s);
    OPENSSL_cleanse(login.stage1, sizeof login.stage1);
    if (s->warm == NULL)
        warm_fail(s, "login", "out of memory");
}

/* Makes the warm connection the session's backend. */
static void install_warm(struct sy_mysql_session *s)
{
    sy_mysql_session_release_conn(s->px, s->backend);
    s->backend = s->warm;
    s->warm = NULL;
    s->warm_state = WARM_NONE;
    s->side = s->warm_side;
    s->backend_lost = false;
    for (size_t i = 0; i < s->n_stmts; i++) {
        struct sess_stmt *st = &s->stmts[i];
        st->backend_id = st->warm_ok ? st->warm_id : 0; /* 0: the server answers "unknown statement" */
        st->send_types = st->warm_ok && st->types != NULL;
        st->warm_ok = false;
    }
    s->ids_mapped = s->ids_mapped || s->n_stmts > 0;
    s->status = sy_mysql_conn_status(s->backend);
    s->in_txn = false;
    sy_mysql_session_take_backend(s);
}

static void warm_done(struct sy_mysql_session *s)
{
    s->warm_state = WARM_READY;
    if (s->state == SS_RECONNECT) {
        /* the old side is gone: its user variables went with it */
        sy_log_info("%s: reconnected on the %s side", s->label, sy_side_name(s->warm_side));
        install_warm(s);
        sy_mysql_session_set_state(s, SS_IDLE);
        sy_mysql_session_kick(s);
    }
}

/* ---- session entry points ------------------------------------------------------------------------ */

static void on_rollback(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg)
{
    struct sy_mysql_session *s = arg;
    s->txn_aborted = true;
    s->in_txn = false;
    if (!res->ok) {
        sy_log_warn("%s: rollback of the open transaction failed (%u %s): dropping the backend", s->label,
                    res->err_code, res->err_msg);
        sy_mysql_session_release_conn(s->px, s->backend); /* the server rolls back what it had open */
        s->backend = NULL;
        s->backend_lost = true;
    } else {
        s->status = res->status;
        sy_mysql_session_take_backend(s);
    }
    sy_log_info("%s: open transaction rolled back for a switch", s->label);
    sy_mysql_session_set_state(s, s->internal_return);
    sy_mysql_session_kick(s);
}

void sy_mysql_switch_rollback(struct sy_mysql_session *s)
{
    s->internal_return = s->state;
    sy_mysql_session_set_state(s, SS_INTERNAL);
    if (sy_mysql_conn_query(s->backend, "ROLLBACK", on_rollback, s) != 0) {
        struct sy_mysql_result failed = { .ok = false, .err_code = 2013, .err_msg = "connection busy" };
        on_rollback(s->backend, &failed, s);
    }
}

/* Moves a session whose read ran across the flip, or fails it if its connection on the active side
 * could not be completed. */
static void finish_flip_now(struct sy_mysql_session *s)
{
    s->flip_due = false;
    enum sy_side active = s->px->pair->active_side;
    if (s->side == active) { /* switched back meanwhile: it never left */
        sy_mysql_session_release_conn(s->px, s->warm);
        s->warm = NULL;
        s->warm_state = WARM_NONE;
        sy_mysql_session_set_state(s, SS_IDLE);
        sy_mysql_session_kick(s);
        return;
    }
    const char *pinned = sy_mysql_session_pinned(s);
    if (pinned != NULL) { /* its read left something on the old side (a cursor, a lock): it cannot move */
        char msg[400];
        snprintf(msg, sizeof msg, "Switchyard: connection closed by a switchover: the session held %s, which "
                                  "cannot move to the other database", pinned);
        sy_mysql_session_fail(s, (uint8_t)(s->seq + 1), 1927, "70100", msg);
        return;
    }
    if (s->warm_state != WARM_READY || s->warm_side != active || s->warm_stale || !s->uservars_done) {
        char msg[600];
        snprintf(msg, sizeof msg, "Switchyard: the session could not be moved to the %s side%s%s",
                 sy_side_name(active), warm_error(s)[0] ? ": " : "", warm_error(s));
        sy_mysql_session_fail(s, (uint8_t)(s->seq + 1), 1927, "08S01", msg);
        return;
    }
    install_warm(s);
    sy_log_info("%s: moved to the %s side after its read ended", s->label, sy_side_name(active));
    sy_mysql_session_set_state(s, SS_IDLE);
    sy_mysql_session_kick(s);
}

bool sy_mysql_switch_finish_flip(struct sy_mysql_session *s)
{
    if (!s->flip_due)
        return false;
    if (s->side == s->px->pair->active_side || s->uservars_done || s->warm_state != WARM_READY) {
        finish_flip_now(s);
        return true;
    }
    copy_uservars(s); /* the old side is fenced but readable: then on_warm_uservars moves it */
    if (!s->uservars_copying)
        finish_flip_now(s);
    return true;
}

void sy_mysql_switch_reconnect(struct sy_mysql_session *s)
{
    enum sy_side active = s->px->pair->active_side;
    sy_mysql_session_set_state(s, SS_RECONNECT);
    if (s->warm_state == WARM_READY && s->warm_side == active && !s->warm_stale) {
        warm_done(s);
        return;
    }
    if (s->warm_state == WARM_BUILDING && s->warm_side == active && !s->warm_stale)
        return; /* warm_done installs it */
    warm_build(s, active);
}

/* ---- proxy level (sy_proxy_protocol) ----------------------------------------------------------- */

static bool logged_in(const struct sy_mysql_session *s)
{
    return SESS_STATE(s)->logged_in;
}

/* An autocommit read in flight outside a transaction: it finishes on the old side (a fence does not stop
 * reads), and the session moves right after (flip_due), so no one else waits for it. */
static bool reads_across(const struct sy_mysql_session *s)
{
    return s->state == SS_BUSY && s->req_read && !s->resp.cursor && !s->in_txn && !s->backend_lost &&
           s->req_left == 0 && !s->req_continues;
}

void sy_mysql_switch_warm(struct sy_mysql_proxy *px, enum sy_side to, bool old_side_alive)
{
    struct sy_mysql_session *s;
    TAILQ_FOREACH(s, &px->sessions, link) {
        if (!logged_in(s) && !s->backend_lost)
            continue;
        if (s->relayed_plugin != NULL || s->flip_due)
            continue; /* a login that cannot be repeated (pinned), or a move still in progress */
        bool outdated = s->warm_state == WARM_NONE || s->warm_side != to ||
                        (s->warm_stale && s->warm_state != WARM_FAILED);
        if (outdated) {
            warm_build(s, to);
            continue;
        }
        if (s->warm_state != WARM_READY || s->uservars_done)
            continue;
        if (!old_side_alive || s->backend_lost)
            s->uservars_done = true; /* nothing to read them from */
        else if (px->pair->held && sy_mysql_session_quiet(s) && !s->in_txn)
            copy_uservars(s);
    }
}

void sy_mysql_switch_progress(struct sy_mysql_proxy *px, enum sy_side to, struct sy_switch_progress *out)
{
    memset(out, 0, sizeof *out);
    struct sy_mysql_session *s;
    TAILQ_FOREACH(s, &px->sessions, link) {
        out->sessions++;
        if (s->in_txn)
            out->in_transaction++;
        if (SESS_STATE(s)->logs_in_later)
            continue; /* logs in on the active side once released */
        bool reading = reads_across(s);
        if (reading)
            out->reading++;
        else if (!sy_mysql_session_quiet(s) && !s->backend_lost)
            out->busy++;
        if ((!logged_in(s) && !s->backend_lost) || s->relayed_plugin != NULL)
            continue;
        if (s->warm_state == WARM_FAILED)
            out->warm_failed++;
        else if (s->warm_state != WARM_READY || s->warm_side != to || s->warm_stale)
            out->not_ready++;
        else if (!s->uservars_done && !reading)
            out->state_pending++; /* a reading session's are copied once its read ends */
    }
}

json_t *sy_mysql_switch_failures(struct sy_mysql_proxy *px)
{
    json_t *list = json_array();
    struct sy_mysql_session *s;
    TAILQ_FOREACH(s, &px->sessions, link)
        if (s->warm_state == WARM_FAILED)
            json_array_append_new(list, json_pack("{s:I,s:s,s:s}", "id", (json_int_t)s->id, "user", s->user, "error",
                                                  warm_error(s)));
    return list;
}

size_t sy_mysql_switch_abort_transactions(struct sy_mysql_proxy *px)
{
    size_t n = 0;
    struct sy_mysql_session *s, *next;
    for (s = TAILQ_FIRST(&px->sessions); s != NULL; s = next) {
        next = TAILQ_NEXT(s, link);
        if (!s->in_txn || s->abort_due || s->state == SS_INTERNAL)
            continue;
        n++;
        if (s->state == SS_IDLE && s->backend != NULL)
            sy_mysql_switch_rollback(s);
        else
            s->abort_due = true; /* once the statement in flight ends */
    }
    return n;
}

json_t *sy_mysql_switch_unmovable(struct sy_mysql_proxy *px)
{
    json_t *list = json_array();
    struct sy_mysql_session *s;
    TAILQ_FOREACH(s, &px->sessions, link) {
        const char *why = sy_mysql_session_pinned(s);
        if (why != NULL)
            json_array_append_new(list, json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)s->id, "user", s->user,
                                                  "peer", s->peer, "reason", why));
    }
    return list;
}

size_t sy_mysql_switch_close_unmovable(struct sy_mysql_proxy *px)
{
    size_t n = 0;
    struct sy_mysql_session *s, *next;
    for (s = TAILQ_FIRST(&px->sessions); s != NULL; s = next) {
        next = TAILQ_NEXT(s, link);
        const char *why = sy_mysql_session_pinned(s);
        if (why == NULL)
            continue;
        char msg[300];
        snprintf(msg, sizeof msg, "Switchyard: connection closed by a forced switchover: the session held %s, which "
                                  "cannot move to the other database",
                 why);
        sy_mysql_session_fail(s, 1, 1927, "70100", msg);
        n++;
    }
    return n;
}

void sy_mysql_switch_unwarm(struct sy_mysql_proxy *px)
{
    struct sy_mysql_session *s;
    TAILQ_FOREACH(s, &px->sessions, link) {
        sy_mysql_session_release_conn(px, s->warm);
        s->warm = NULL;
        s->warm_state = WARM_NONE;
        s->warm_stale = false;
        s->abort_due = false; /* the switch is off: a statement still running keeps its transaction */
        for (size_t i = 0; i < s->n_stmts; i++)
            s->stmts[i].warm_ok = false;
    }
}

size_t sy_mysql_switch_flip(struct sy_mysql_proxy *px, enum sy_side to)
{
    size_t moved = 0;
    sy_mysql_accounts_set_endpoint(px->accounts, sy_pair_active_endpoint(px->pair));
    struct sy_mysql_session *s, *next;
    for (s = TAILQ_FIRST(&px->sessions); s != NULL; s = next) {
        next = TAILQ_NEXT(s, link);
        if (!logged_in(s) && !s->backend_lost)
            continue; /* not logged in yet: logs in on the active side */
        bool ready = s->warm_state == WARM_READY && s->warm_side == to && !s->warm_stale;
        if (ready && reads_across(s)) {
            s->flip_due = true; /* moves when its read ends (sy_mysql_switch_finish_flip) */
            moved++;
            continue;
        }
        if (ready && !s->uservars_done && sy_mysql_session_quiet(s) && !s->backend_lost) {
            /* its read ended after the last progress check: copy its user variables first, then move */
            s->flip_due = true;
            moved++;
            sy_mysql_switch_finish_flip(s);
            continue;
        }
        if (!ready || !(sy_mysql_session_quiet(s) || s->backend_lost)) {
            char msg[600];
            snprintf(msg, sizeof msg, "Switchyard: the session could not be moved to the %s side%s%s",
                     sy_side_name(to), warm_error(s)[0] ? ": " : "", warm_error(s));
            sy_mysql_session_fail(s, 1, 2013, "HY000", msg);
            continue;
        }
        install_warm(s);
        moved++;
    }
    return moved;
}
