/* What a session holds that pins it to its side, read from its statements' text (proxy/mysql_sql.c):
 * temporary tables and sequences by name, LOCK TABLES, user locks by name (GET_LOCK is recursive: counted
 * per name), open HANDLERs by name, XA. The server reports none of
 * it, so the proxy errs on the side of pinning: what a statement starts (a table, a lock) counts from
 * the request on, what it ends (DROP, UNLOCK, RELEASE_LOCK, XA COMMIT) only once its reply carried no
 * error. A prepared statement's text is read again at each execute.
 *
 * Also the session-tracking settings the proxy relies on ('*', schema, state change): a statement that
 * names them makes the proxy read the session's variables back from the server once the reply is in
 * (information_schema.SYSTEM_VARIABLES, session against global value: the state a switch must replay,
 * exactly, whatever the statement also changed untracked), set its own tracking again, and from then
 * on show the client only the tracking it asked for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/comma_list.h"
#include "core/log.h"
#include "proxy/mysql_accounts.h"
#include "proxy/mysql_session.h"
#include "proxy/mysql_sql.h"

/* ---- temporary tables by name -------------------------------------------------------------------- */

/* "db" 0x1F "name": a name qualified by the schema current when it was named. */
static char *temp_key(const struct sy_mysql_session *s, const struct sy_sql_name *nm)
{
    char *k = NULL;
    if (nm->db_len > 0)
        k = strndup((const char *)nm->db_p, nm->db_len);
    else
        k = strdup(s->schema);
    if (k == NULL)
        return NULL;
    size_t dl = strlen(k);
    char *full = malloc(dl + 1 + nm->name_len + 1);
    if (full != NULL) {
        memcpy(full, k, dl);
        full[dl] = 0x1F;
        memcpy(full + dl + 1, nm->name_p, nm->name_len);
        full[dl + 1 + nm->name_len] = '\0';
    }
    free(k);
    return full;
}

static ssize_t names_find(char **v, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], key) == 0)
            return (ssize_t)i;
    return -1;
}

/* Appends key (taking it), duplicates too. On allocation failure the session is pinned anyway. */
static void names_push(struct sy_mysql_session *s, char ***v, size_t *n, size_t *cap, char *key)
{
    if (key == NULL) {
        s->pin_unknown = true;
        return;
    }
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        char **nv = realloc(*v, nc * sizeof *nv);
        if (nv == NULL) {
            free(key);
            s->pin_unknown = true;
            return;
        }
        *v = nv;
        *cap = nc;
    }
    (*v)[(*n)++] = key;
}

/* Adds key (taking it) unless present. */
static void names_add(struct sy_mysql_session *s, char ***v, size_t *n, size_t *cap, char *key)
{
    if (key != NULL && names_find(*v, *n, key) >= 0) {
        free(key);
        return;
    }
    names_push(s, v, n, cap, key);
}

static void names_remove(char **v, size_t *n, const char *key)
{
    ssize_t i = names_find(v, *n, key);
    if (i < 0)
        return;
    free(v[i]);
    v[i] = v[--*n];
}

static void names_clear(char **v, size_t *n)
{
    for (size_t i = 0; i < *n; i++)
        free(v[i]);
    *n = 0;
}

/* ---- user locks by name -------------------------------------------------------------------------- *
 * RELEASE_LOCK of a name the session does not hold returns NULL or 0 without an error: only names tell
 * whether it ended anything. A name is compared as written (two spellings of one name keep the session
 * pinned, never the reverse); a GET_LOCK whose name is no literal ends only with RELEASE_ALL_LOCKS. */

/* A pending lock call: op ('G', 'R', 'U', 'A') followed by the name. */
static char *lock_op_new(char op, const struct sy_sql_lock *lk)
{
    size_t n = lk->name_p ? lk->name_len : 0;
    char *v = malloc(n + 2);
    if (v != NULL) {
        v[0] = op;
        if (n > 0)
            memcpy(v + 1, lk->name_p, n);
        v[n + 1] = '\0';
    }
    return v;
}

static void lock_take(struct sy_mysql_session *s, const char *op)
{
    if (op[0] == 'U')
        s->unnamed_locks++;
    else
        names_push(s, &s->user_locks, &s->n_user_locks, &s->cap_user_locks, strdup(op + 1));
}

/* A request's lock calls: what it takes is held from now on; all of them wait for its reply. */
static void locks_request(struct sy_mysql_session *s, const uint8_t *sql, size_t len)
{
    size_t pos = 0;
    struct sy_sql_lock lk;
    while (sy_sql_next_lock(sql, len, &pos, &lk)) {
        bool named = lk.name_p != NULL && memchr(lk.name_p, '\0', lk.name_len) == NULL;
        char op = lk.op == SY_SQL_LOCK_RELEASE_ALL ? 'A' : lk.op == SY_SQL_LOCK_RELEASE ? 'R' : named ? 'G' : 'U';
        if (op == 'R' && !named)
            continue; /* which lock it releases is unknown: keep them all */
        char *v = lock_op_new(op, &lk);
        if (v == NULL) {
            s->pin_unknown = true;
            continue;
        }
        if (op == 'G' || op == 'U')
            lock_take(s, v);
        names_push(s, &s->pend_lock_ops, &s->n_pend_lock_ops, &s->cap_pend_lock_ops, v);
    }
}

/* The request succeeded: its releases apply in order. Its takes were counted at the request; one after a
 * RELEASE_ALL_LOCKS of the same text is counted again (that release ended everything before it). */
static void locks_reply_ok(struct sy_mysql_session *s)
{
    bool after_all = false;
    for (size_t i = 0; i < s->n_pend_lock_ops; i++) {
        const char *op = s->pend_lock_ops[i];
        if (op[0] == 'A') {
            names_clear(s->user_locks, &s->n_user_locks);
            s->unnamed_locks = 0;
            after_all = true;
        } else if (op[0] == 'R') {
            names_remove(s->user_locks, &s->n_user_locks, op + 1); /* one of them: the lock is recursive */
        } else if (after_all) {
            lock_take(s, op);
        }
    }
}

/* ---- SQL-level prepared statements ---------------------------------------------------------------- *
 * PREPARE s FROM 'CREATE TEMPORARY TABLE ...' pins nothing; EXECUTE s does what the text does. The texts
 * prepared from a literal are kept by name, and a request is read with each EXECUTE replaced by its
 * text (EXECUTE IMMEDIATE 'text' by its text). A text from a variable or an expression is not known. */

static ssize_t sql_prepared_find(const struct sy_mysql_session *s, const char *name)
{
    for (size_t i = 0; i < s->n_sql_prepared; i++)
        if (strcmp(s->sql_prepared[i].name, name) == 0)
            return (ssize_t)i;
    return -1;
}

static void sql_prepared_forget(struct sy_mysql_session *s, const char *name)
{
    ssize_t i = sql_prepared_find(s, name);
    if (i < 0)
        return;
    sy_mysql_track_warm_outdated(s); /* a warm connection has it prepared */
    free(s->sql_prepared[i].name);
    free(s->sql_prepared[i].value);
    s->sql_prepared[i] = s->sql_prepared[--s->n_sql_prepared];
}

/* name and text are taken; text NULL: not known. The server forgets the old statement of the name even
 * when the new PREPARE fails. */
static void sql_prepared_set(struct sy_mysql_session *s, char *name, char *text)
{
    sql_prepared_forget(s, name);
    sy_mysql_track_warm_outdated(s); /* a warm connection lacks it */
    if (s->n_sql_prepared == s->cap_sql_prepared) {
        size_t cap = s->cap_sql_prepared ? s->cap_sql_prepared * 2 : 4;
        struct sess_var *nv = realloc(s->sql_prepared, cap * sizeof *nv);
        if (nv == NULL) {
            free(name);
            free(text);
            s->pin_unknown = true;
            return;
        }
        s->sql_prepared = nv;
        s->cap_sql_prepared = cap;
    }
    s->sql_prepared[s->n_sql_prepared++] = (struct sess_var){ .name = name, .value = text };
}

static void sql_prepared_clear(struct sy_mysql_session *s)
{
    for (size_t i = 0; i < s->n_sql_prepared; i++) {
        free(s->sql_prepared[i].name);
        free(s->sql_prepared[i].value);
    }
    s->n_sql_prepared = 0;
}

/* A statement name as the server compares it: case-insensitive. */
static char *stmt_name(const uint8_t *p, size_t n)
{
    char *v = malloc(n + 1);
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++)
        v[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] - 'A' + 'a' : p[i]);
    v[n] = '\0';
    return v;
}

/* The value of a literal as a C string; NULL when it has a NUL byte, is too long or memory is short. */
static char *literal_text(const uint8_t *lit, size_t n)
{
    if (n == 0 || n > SESS_MAX_TRACKED_SQL)
        return NULL;
    char *v = malloc(n + 1);
    if (v == NULL)
        return NULL;
    size_t len = sy_sql_unquote(lit, n, (uint8_t *)v);
    v[len] = '\0';
    if (memchr(v, '\0', len) != NULL) {
        free(v);
        return NULL;
    }
    return v;
}

static bool buf_add(char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t nc = (*len + n + 1) * 2;
        char *nb = realloc(*buf, nc);
        if (nb == NULL)
            return false;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
    return true;
}

/* The text as the server runs it (see above), PREPARE and DEALLOCATE recorded on the way in order; NULL
 * when memory is short. */
static char *sql_prepared_expand(struct sy_mysql_session *s, const uint8_t *sql, size_t len, size_t *out_len)
{
    char *buf = NULL;
    size_t n = 0, cap = 0, pos = 0;
    struct sy_sql_stmt st;
    bool ok = true;
    while (ok && sy_sql_next(sql, len, &pos, &st)) {
        const char *piece = (const char *)sql + st.off;
        size_t plen = st.len;
        char *own = NULL, *name = NULL;
        if (st.kind == SY_SQL_PREPARE || st.kind == SY_SQL_EXECUTE || st.kind == SY_SQL_DEALLOCATE) {
            name = stmt_name(sql + st.name_off, st.name_len);
            ok = name != NULL;
        }
        if (ok && st.kind == SY_SQL_PREPARE) {
            sql_prepared_set(s, name, st.text_len ? literal_text(sql + st.text_off, st.text_len) : NULL);
            name = NULL;
        } else if (ok && st.kind == SY_SQL_DEALLOCATE) {
            sql_prepared_forget(s, name);
        } else if (ok && st.kind == SY_SQL_EXECUTE) {
            ssize_t i = sql_prepared_find(s, name);
            if (i >= 0 && s->sql_prepared[i].value != NULL) {
                piece = s->sql_prepared[i].value;
                plen = strlen(piece);
            }
        } else if (st.kind == SY_SQL_EXECUTE_TEXT && st.text_len > 0 &&
                   (own = literal_text(sql + st.text_off, st.text_len)) != NULL) {
            piece = own;
            plen = strlen(own);
        }
        /* a newline first: a text may end in a -- comment */
        ok = ok && buf_add(&buf, &n, &cap, piece, plen) && buf_add(&buf, &n, &cap, "\n;\n", 3);
        free(own);
        free(name);
    }
    if (!ok) {
        free(buf);
        return NULL;
    }
    *out_len = n;
    return buf;
}

/* ---- applying a statement text ------------------------------------------------------------------- */

static void track_text(struct sy_mysql_session *s, const uint8_t *sql, size_t len, const struct sy_sql_effect *e,
                       bool clear);

void sy_mysql_track_request(struct sy_mysql_session *s, const uint8_t *sql, size_t len)
{
    struct sy_sql_effect e;
    bool clear = sy_sql_effect_any_mode(sql, len, &e);
    if (!e.prepared_sql) {
        track_text(s, sql, len, &e, clear);
        return;
    }
    size_t n = 0;
    char *run = sql_prepared_expand(s, sql, len, &n);
    if (run == NULL) {
        s->pin_unknown = true; /* out of memory: what it runs is not known */
        track_text(s, sql, len, &e, clear);
        return;
    }
    bool clear_run = sy_sql_effect_any_mode((const uint8_t *)run, n, &e);
    track_text(s, (const uint8_t *)run, n, &e, clear && clear_run);
    free(run);
}

/* What a text starts and ends (e: its effect; clear: it reads the same under every quoting mode). */
static void track_text(struct sy_mysql_session *s, const uint8_t *sql, size_t len, const struct sy_sql_effect *ep,
                       bool clear)
{
    struct sy_sql_effect e = *ep;
    s->req_read = e.read && !s->in_txn && (s->status & SY_STATUS_AUTOCOMMIT);
    s->resync_names |= e.tracking;
    if (!clear)
        s->pin_ambiguous = true; /* its meaning depends on quoting modes: assume the worst */
    if (e.lock_tables)
        s->locked_tables = true;
    s->pend_unlock = e.unlock_tables;
    if (e.xa_start)
        s->xa = true;
    s->pend_xa_end = e.xa_end;
    names_clear(s->pend_lock_ops, &s->n_pend_lock_ops);
    if (e.lock_calls)
        locks_request(s, sql, len);
    names_clear(s->pend_drops, &s->n_pend_drops);
    names_clear(s->pend_closes, &s->n_pend_closes);
    if (!e.names_tables && !e.handlers)
        return; /* the usual case: one pass over the text was enough */
    size_t pos = 0;
    struct sy_sql_stmt st;
    while (sy_sql_next(sql, len, &pos, &st)) {
        if (st.kind == SY_SQL_HANDLER_OPEN) { /* open from the request on (a second OPEN of a name fails) */
            names_add(s, &s->handlers, &s->n_handlers, &s->cap_handlers, strndup((const char *)sql + st.name_off,
                                                                                 st.name_len));
            continue;
        }
        if (st.kind == SY_SQL_HANDLER_CLOSE) {
            names_add(s, &s->pend_closes, &s->n_pend_closes, &s->cap_pend_closes,
                      strndup((const char *)sql + st.name_off, st.name_len));
            continue;
        }
        if (st.kind != SY_SQL_TEMP_CREATE && st.kind != SY_SQL_TEMP_DROP && st.kind != SY_SQL_DROP_TABLE)
            continue;
        size_t np = st.names_off, end = st.off + st.len;
        struct sy_sql_name nm;
        while (sy_sql_next_name(sql, end, &np, &nm)) {
            char *key = temp_key(s, &nm);
            if (st.kind == SY_SQL_TEMP_CREATE) {
                names_add(s, &s->temp_names, &s->n_temp, &s->cap_temp, key);
                /* CREATE OR REPLACE TEMPORARY TABLE t ... (rest of the statement is not a name list) */
                break;
            }
            if (key == NULL)
                continue;
            if (names_find(s->temp_names, s->n_temp, key) < 0) {
                free(key); /* not a temporary table of ours: a plain DROP TABLE of a real one */
                continue;
            }
            names_add(s, &s->pend_drops, &s->n_pend_drops, &s->cap_pend_drops, key);
        }
    }
}

#define ER_BAD_TABLE_ERROR 1051 /* "Unknown table 'db.a,db.b'": DROP drops the others and says so */

void sy_mysql_track_error(struct sy_mysql_session *s, const struct sy_mysql_err *e)
{
    if (e->code != ER_BAD_TABLE_ERROR || s->n_pend_drops == 0)
        return;
    for (size_t i = 0; i < s->n_pend_drops;) {
        /* the key "db" 0x1F "name" as the server writes it: db.name */
        char dotted[SY_MYSQL_DB_MAX + 200];
        snprintf(dotted, sizeof dotted, "%s", s->pend_drops[i]);
        char *sep = strchr(dotted, 0x1F);
        if (sep != NULL)
            *sep = '.';
        bool missing = false;
        size_t dl = strlen(dotted);
        for (size_t j = 0; j + dl <= e->msg_len && !missing; j++)
            missing = memcmp(e->msg_p + j, dotted, dl) == 0 &&
                      (j + dl == e->msg_len || e->msg_p[j + dl] == ',' || e->msg_p[j + dl] == '\'') &&
                      (j == 0 || e->msg_p[j - 1] == ',' || e->msg_p[j - 1] == '\'');
        if (missing) {
            free(s->pend_drops[i]);
            s->pend_drops[i] = s->pend_drops[--s->n_pend_drops];
        } else {
            i++;
        }
    }
    s->pend_drops_known = true;
}

void sy_mysql_track_reply(struct sy_mysql_session *s, bool failed)
{
    if (!failed || s->pend_drops_known) {
        for (size_t i = 0; i < s->n_pend_drops; i++)
            names_remove(s->temp_names, &s->n_temp, s->pend_drops[i]);
    }
    s->pend_drops_known = false;
    if (!failed) {
        if (s->pend_unlock)
            s->locked_tables = false;
        if (s->pend_xa_end)
            s->xa = false;
        locks_reply_ok(s);
        for (size_t i = 0; i < s->n_pend_closes; i++)
            names_remove(s->handlers, &s->n_handlers, s->pend_closes[i]);
    }
    names_clear(s->pend_drops, &s->n_pend_drops);
    names_clear(s->pend_closes, &s->n_pend_closes);
    names_clear(s->pend_lock_ops, &s->n_pend_lock_ops);
    s->pend_unlock = s->pend_xa_end = false;
}

void sy_mysql_track_pins_clear(struct sy_mysql_session *s)
{
    names_clear(s->temp_names, &s->n_temp);
    names_clear(s->pend_drops, &s->n_pend_drops);
    s->locked_tables = s->xa = s->pin_unknown = s->pin_ambiguous = false;
    names_clear(s->user_locks, &s->n_user_locks);
    names_clear(s->pend_lock_ops, &s->n_pend_lock_ops);
    names_clear(s->handlers, &s->n_handlers);
    names_clear(s->pend_closes, &s->n_pend_closes);
    s->unnamed_locks = 0;
    s->pend_unlock = s->pend_xa_end = false;
    sql_prepared_clear(s); /* COM_RESET_CONNECTION and COM_CHANGE_USER end them too */
}

void sy_mysql_track_free(struct sy_mysql_session *s)
{
    sy_mysql_track_pins_clear(s);
    free(s->temp_names);
    free(s->pend_drops);
    free(s->user_locks);
    free(s->pend_lock_ops);
    free(s->sql_prepared);
    free(s->handlers);
    free(s->pend_closes);
    s->sql_prepared = NULL;
    s->handlers = s->pend_closes = NULL;
    free(s->client_track_vars);
    s->temp_names = s->pend_drops = s->user_locks = s->pend_lock_ops = NULL;
    s->client_track_vars = NULL;
}

const char *sy_mysql_session_pinned(const struct sy_mysql_session *s)
{
    if (s->n_temp > 0)
        return "temporary tables";
    if (s->locked_tables)
        return "LOCK TABLES";
    if (s->n_handlers > 0)
        return "an open HANDLER";
    if (s->n_user_locks > 0 || s->unnamed_locks > 0)
        return "user locks (GET_LOCK)";
    if (s->xa)
        return "an XA transaction";
    if (s->relayed_plugin != NULL)
        return "a login by another authentication plugin (the proxy cannot repeat it on the other side)";
    if (s->pin_ambiguous)
        return "a statement whose meaning depends on sql_mode's quoting (backslashes inside quotes)";
    if (s->pin_unknown)
        return "state the proxy could not follow (out of memory)";
    for (size_t i = 0; i < s->n_sql_prepared; i++)
        if (s->sql_prepared[i].value == NULL)
            return "a prepared statement whose text the proxy did not see (PREPARE ... FROM a variable)";
    if ((s->status & SY_STATUS_CURSOR_EXISTS) && s->cursors_used)
        return "an open cursor";
    if (s->state == SS_INFILE)
        return "LOAD DATA LOCAL in progress";
    return NULL;
}

/* ---- session variables, schema, ledger ----------------------------------------------------------- */

void sy_mysql_track_vars_clear(struct sy_mysql_session *s)
{
    for (size_t i = 0; i < s->n_vars; i++) {
        free(s->vars[i].name);
        free(s->vars[i].value);
    }
    s->n_vars = 0;
}

/* Records a tracked variable's value; returns whether it differs from what was known. */
static bool var_set(struct sy_mysql_session *s, const uint8_t *name, size_t nlen, const uint8_t *val, size_t vlen)
{
    for (size_t i = 0; i < s->n_vars; i++) {
        if (strlen(s->vars[i].name) == nlen && memcmp(s->vars[i].name, name, nlen) == 0) {
            if (strlen(s->vars[i].value) == vlen && memcmp(s->vars[i].value, val, vlen) == 0)
                return false;
            char *v = strndup((const char *)val, vlen);
            if (v) {
                free(s->vars[i].value);
                s->vars[i].value = v;
            }
            return true;
        }
    }
    if (s->n_vars == s->cap_vars) {
        size_t cap = s->cap_vars ? s->cap_vars * 2 : 4; /* a login leaves a few (the tracking settings) */
        struct sess_var *nv = realloc(s->vars, cap * sizeof *nv);
        if (nv == NULL)
            return true;
        s->vars = nv;
        s->cap_vars = cap;
    }
    char *n = strndup((const char *)name, nlen), *v = strndup((const char *)val, vlen);
    if (n == NULL || v == NULL) {
        free(n);
        free(v);
        return true;
    }
    s->vars[s->n_vars++] = (struct sess_var){ n, v };
    return true;
}

void sy_mysql_track_warm_outdated(struct sy_mysql_session *s)
{
    if (s->warm_state != WARM_NONE)
        s->warm_stale = true;
}

void sy_mysql_track_ok(struct sy_mysql_session *s, const struct sy_mysql_ok *ok)
{
    if (ok->state_p == NULL)
        return;
    struct sy_rd rd = sy_rd_make(ok->state_p, ok->state_len);
    struct sy_mysql_track t;
    int rc;
    while ((rc = sy_mysql_track_next(&rd, &t)) == 1) {
        if (t.type == SY_TRACK_SCHEMA) {
            if (!sy_mysql_session_str_set(&s->schema, SY_MYSQL_DB_MAX, "%.*s", (int)t.name_len,
                                          (const char *)t.name_p))
                s->pin_unknown = true; /* the schema is not known any more: the session cannot move */
            sy_mysql_track_warm_outdated(s);
        } else if (t.type == SY_TRACK_SYSTEM_VARIABLES) {
            bool gtid = t.name_len == 9 && memcmp(t.name_p, "last_gtid", 9) == 0;
            if (var_set(s, t.name_p, t.name_len, t.value_p, t.value_len) && !gtid)
                sy_mysql_track_warm_outdated(s);
            if (gtid && t.value_len > 0) {
                struct sy_gtid g;
                if (sy_gtid_parse((const char *)t.value_p, t.value_len, &g)) {
                    s->cw_gtid = g; /* the ledger takes it once the OK is passed on (sy_mysql_track_ack) */
                    s->cw_gtid_new = true;
                    snprintf(s->last_gtid, sizeof s->last_gtid, "%.*s", (int)t.value_len,
                             (const char *)t.value_p);
                }
            }
        }
    }
    if (rc < 0)
        sy_log_warn("%s: malformed session-state block ignored", s->label);
}

void sy_mysql_track_ack(struct sy_mysql_session *s)
{
    if (!s->cw_gtid_new)
        return;
    s->cw_gtid_new = false;
    sy_gtid_set_advance(&s->px->ack_ledger[s->side], &s->cw_gtid);
}

/* ---- the client's own tracking settings ----------------------------------------------------------- */

/* The session's settable variables that differ from the server's defaults (not read-only ones such as
 * gtid_current_pos, not session-only counters), its tracking settings, and its schema. */
#define RESYNC_SQL                                                                                            \
    "SELECT LOWER(VARIABLE_NAME), SESSION_VALUE FROM information_schema.SYSTEM_VARIABLES WHERE "              \
    "(VARIABLE_SCOPE = 'SESSION' AND READ_ONLY = 'NO' AND NOT (SESSION_VALUE <=> GLOBAL_VALUE)) OR "         \
    "VARIABLE_NAME IN ('SESSION_TRACK_SYSTEM_VARIABLES', 'SESSION_TRACK_SCHEMA', 'SESSION_TRACK_STATE_CHANGE') " \
    "UNION ALL SELECT CONCAT('@', LOWER(VARIABLE_NAME)), GLOBAL_VALUE FROM information_schema.SYSTEM_VARIABLES "      \
    "WHERE VARIABLE_NAME IN ('SESSION_TRACK_SYSTEM_VARIABLES', 'SESSION_TRACK_SCHEMA', 'SESSION_TRACK_STATE_CHANGE') " \
    "UNION ALL SELECT '', DATABASE()"

static bool is_on(const char *v)
{
    return v != NULL && (strcmp(v, "ON") == 0 || strcmp(v, "1") == 0);
}

static void resync_end(struct sy_mysql_session *s, const char *failed)
{
    if (failed != NULL) {
        /* the session's variables are unknown now: keep it on its side rather than move it wrong */
        sy_log_warn("%s: cannot read the session's variables back (%s): the session cannot move", s->label,
                    failed);
        s->pin_unknown = true;
    }
    sy_mysql_session_take_backend(s);
    sy_mysql_session_set_state(s, s->internal_return);
    sy_mysql_session_kick(s);
}

static void on_resync_init(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (res->ok)
        s->status = res->status;
    resync_end(s, res->ok ? NULL : res->err_msg);
}

static void on_resync_vars(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg)
{
    struct sy_mysql_session *s = arg;
    if (!res->ok || res->n_cols < 2) {
        resync_end(s, res->ok ? "unexpected result" : res->err_msg);
        return;
    }
    char *last_gtid = NULL;
    for (size_t i = 0; i < s->n_vars; i++)
        if (strcmp(s->vars[i].name, "last_gtid") == 0)
            last_gtid = strdup(s->vars[i].value);
    sy_mysql_track_vars_clear(s);
    if (last_gtid != NULL)
        var_set(s, (const uint8_t *)"last_gtid", 9, (const uint8_t *)last_gtid, strlen(last_gtid));
    free(last_gtid);
    /* [0] the session's values (what the statement set), [1] the server's defaults */
    const char *list[2] = { "*", "*" };
    bool schema[2] = { true, true }, state[2] = { true, true };
    for (size_t r = 0; r < res->n_rows; r++) {
        const char *name = res->cells[r * res->n_cols], *value = res->cells[r * res->n_cols + 1];
        if (name == NULL)
            continue;
        int g = name[0] == '@';
        const char *bare = name + g;
        if (name[0] == '\0') {
            if (!sy_mysql_session_str_set(&s->schema, SY_MYSQL_DB_MAX, "%s", value ? value : ""))
                s->pin_unknown = true;
        } else if (strcmp(bare, "session_track_system_variables") == 0)
            list[g] = value ? value : "";
        else if (strcmp(bare, "session_track_schema") == 0)
            schema[g] = is_on(value);
        else if (strcmp(bare, "session_track_state_change") == 0)
            state[g] = is_on(value);
        else if (!g)
            var_set(s, (const uint8_t *)name, strlen(name), (const uint8_t *)(value ? value : ""),
                    value ? strlen(value) : 0);
    }
    /* What the client chose: what this statement set, else what it chose before, else the defaults (the
     * backend shows the proxy's own '*'/ON/ON for what the client did not set again). */
    unsigned named = s->resync_names_now;
    const char *prev_list = s->client_track_set && s->client_track_vars ? s->client_track_vars : list[1];
    char *new_list = strdup((named & SY_SQL_TRACK_VARIABLES) ? list[0] : prev_list);
    bool new_schema = (named & SY_SQL_TRACK_SCHEMA) ? schema[0] : s->client_track_set ? s->client_track_schema
                                                                                          : schema[1];
    bool new_state = (named & SY_SQL_TRACK_STATE) ? state[0] : s->client_track_set ? s->client_track_state : state[1];
    free(s->client_track_vars);
    s->client_track_vars = new_list;
    s->client_track_set = new_list != NULL; /* out of memory: the client sees everything, as before */
    s->client_track_schema = new_schema;
    s->client_track_state = new_state;
    const char *shown = new_list ? new_list : "*";
    bool schema_on = new_schema, state_on = new_state;
    sy_mysql_track_warm_outdated(s);
    sy_log_info("%s: the client set its own session tracking (variables '%s', schema %s, state changes %s); "
                "the proxy keeps tracking everything and shows the client only that",
                s->label, shown, schema_on ? "ON" : "OFF", state_on ? "ON" : "OFF");
    if (sy_mysql_conn_query(c, sy_mysql_session_init_sql, on_resync_init, s) != 0)
        resync_end(s, "connection busy");
}

bool sy_mysql_track_resync(struct sy_mysql_session *s)
{
    if (s->resync_names == 0 || s->backend == NULL)
        return false;
    s->resync_names_now = s->resync_names;
    s->resync_names = 0;
    s->internal_return = s->state;
    sy_mysql_session_set_state(s, SS_INTERNAL);
    if (sy_mysql_conn_query(s->backend, RESYNC_SQL, on_resync_vars, s) != 0) {
        resync_end(s, "connection busy");
        return true;
    }
    return true;
}

/* Whether name is in the client's comma-separated list (case-insensitive, spaces ignored). */
static bool in_list(const char *list, const uint8_t *name, size_t nlen)
{
    const char *walk = list, *p;
    size_t n;
    while (sy_comma_next(&walk, &p, &n))
        if ((n == 1 && *p == '*') || (n == nlen && strncasecmp(p, (const char *)name, nlen) == 0))
            return true;
    return false;
}

size_t sy_mysql_track_filter(const struct sy_mysql_session *s, const uint8_t *state, size_t len, uint8_t *out,
                             size_t cap)
{
    /* the client's own settings, else the server's defaults (what it would see directly) */
    const char *vars = "";
    bool show_schema = false, show_state = false;
    if (s->client_track_set) {
        vars = s->client_track_vars ? s->client_track_vars : "";
        show_schema = s->client_track_schema;
        show_state = s->client_track_state;
    } else if (!sy_mysql_accounts_track_defaults(s->px->accounts, &vars, &show_schema, &show_state)) {
        return (size_t)-1; /* not known: the caller passes the block on as it is */
    }
    struct sy_rd rd = sy_rd_make(state, len);
    struct sy_wr w = sy_wr_make(out, cap);
    struct sy_mysql_track t;
    uint8_t data[1024];
    while (sy_mysql_track_next(&rd, &t) == 1) {
        struct sy_wr d = sy_wr_make(data, sizeof data);
        if (t.type == SY_TRACK_SYSTEM_VARIABLES) {
            if (!in_list(vars, t.name_p, t.name_len))
                continue;
            sy_mysql_lenenc_str_put(&d, t.name_p, t.name_len);
            sy_mysql_lenenc_str_put(&d, t.value_p, t.value_len);
        } else if (t.type == SY_TRACK_SCHEMA) {
            if (!show_schema)
                continue;
            sy_mysql_lenenc_str_put(&d, t.name_p, t.name_len);
        } else {
            if (t.type == SY_TRACK_STATE_CHANGE && !show_state)
                continue;
            sy_wr_bytes(&d, t.name_p, t.name_len);
        }
        if (d.bad)
            return (size_t)-1; /* too big to rebuild here: the caller passes the packet on as it is */
        sy_wr_u8(&w, t.type);
        sy_mysql_lenenc_str_put(&w, data, d.len);
    }
    return w.bad ? (size_t)-1 : w.len;
}
