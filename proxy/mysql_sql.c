/* MariaDB SQL text, read as tokens only as far as the proxy needs (see mysql_sql.h). Not a parser:
 * statements are recognised by their first keywords, function calls by a word followed by '('. */
#include "proxy/mysql_sql.h"

#include <string.h>

enum tok { T_END, T_WORD, T_STRING, T_IDENT, T_PUNCT };

struct token {
    enum tok t;
    size_t off, len; /* T_IDENT: the name between the backticks */
};

struct lex {
    const uint8_t *s;
    size_t len, i;
    bool in_exec; /* inside an executable comment: its closing star-slash is trivia */
    enum sy_sql_quoting quoting;
};

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_word(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$' ||
           c >= 0x80;
}

static void skip_to_eol(struct lex *lx)
{
    while (lx->i < lx->len && lx->s[lx->i] != '\n')
        lx->i++;
}

/* Whitespace and comments; the markers of executable comments (their contents are code). */
static void skip_trivia(struct lex *lx)
{
    const uint8_t *s = lx->s;
    for (;;) {
        while (lx->i < lx->len && is_space(s[lx->i]))
            lx->i++;
        size_t left = lx->len - lx->i;
        if (left >= 2 && s[lx->i] == '/' && s[lx->i + 1] == '*') {
            size_t bang = left >= 3 && s[lx->i + 2] == '!' ? 3
                        : left >= 4 && (s[lx->i + 2] == 'M' || s[lx->i + 2] == 'm') && s[lx->i + 3] == '!' ? 4
                        : 0;
            if (bang) {
                lx->i += bang;
                while (lx->i < lx->len && s[lx->i] >= '0' && s[lx->i] <= '9')
                    lx->i++; /* version */
                lx->in_exec = true;
                continue;
            }
            size_t j = lx->i + 2;
            while (j + 1 < lx->len && !(s[j] == '*' && s[j + 1] == '/'))
                j++;
            lx->i = j + 1 < lx->len ? j + 2 : lx->len;
            continue;
        }
        if (lx->in_exec && left >= 2 && s[lx->i] == '*' && s[lx->i + 1] == '/') {
            lx->i += 2;
            lx->in_exec = false;
            continue;
        }
        if (left >= 1 && s[lx->i] == '#') {
            skip_to_eol(lx);
            continue;
        }
        if (left >= 2 && s[lx->i] == '-' && s[lx->i + 1] == '-' && (left == 2 || s[lx->i + 2] <= ' ')) {
            skip_to_eol(lx);
            continue;
        }
        return;
    }
}

/* A quoted string or identifier from its opening quote q: backslash escapes (strings only) and
 * doubled quotes. An unterminated one runs to the end of the text. */
static void skip_quoted(struct lex *lx, uint8_t q)
{
    bool escapes = q != '`' && lx->quoting != SY_SQL_ESC_NONE && !(q == '"' && lx->quoting == SY_SQL_ESC_SINGLE);
    lx->i++;
    while (lx->i < lx->len) {
        uint8_t c = lx->s[lx->i++];
        if (c == '\\' && escapes) {
            if (lx->i < lx->len)
                lx->i++;
        } else if (c == q) {
            if (lx->i < lx->len && lx->s[lx->i] == q)
                lx->i++;
            else
                return;
        }
    }
}

static struct token next_token(struct lex *lx)
{
    skip_trivia(lx);
    struct token t = { T_END, lx->i, 0 };
    if (lx->i >= lx->len)
        return t;
    uint8_t c = lx->s[lx->i];
    if (is_word(c)) {
        while (lx->i < lx->len && is_word(lx->s[lx->i]))
            lx->i++;
        t.t = T_WORD;
    } else if (c == '\'' || c == '"') {
        skip_quoted(lx, c);
        t.t = T_STRING;
    } else if (c == '`') {
        skip_quoted(lx, c);
        t.t = T_IDENT;
        t.off++;
        t.len = lx->i - t.off;
        if (t.len > 0 && lx->s[lx->i - 1] == '`')
            t.len--;
        return t;
    } else {
        lx->i++;
        t.t = T_PUNCT;
    }
    t.len = lx->i - t.off;
    return t;
}

/* Whether the token is the word kw (lower case, k bytes), case-insensitive. Every query goes through
 * here many times: the length is compared first, and tok_is() takes strlen of a literal at the call
 * site, where the compiler folds it. */
static inline bool tok_is_n(const struct lex *lx, struct token t, const char *kw, size_t k)
{
    if ((t.t != T_WORD && t.t != T_IDENT) || t.len != k)
        return false;
    for (size_t j = 0; j < k; j++) {
        uint8_t c = lx->s[t.off + j];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c - 'A' + 'a');
        if (c != (uint8_t)kw[j])
            return false;
    }
    return true;
}

#define tok_is(lx, t, kw) tok_is_n((lx), (t), (kw), strlen(kw))

static bool tok_punct(const struct lex *lx, struct token t, char c)
{
    return t.t == T_PUNCT && lx->s[t.off] == (uint8_t)c;
}

/* The first words of a statement decide its kind. */
#define LEAD_MAX 8

static bool is_compound(const struct lex *lx, const struct token *lead, size_t n)
{
    if (n >= 3 && tok_is(lx, lead[0], "begin") && tok_is(lx, lead[1], "not") && tok_is(lx, lead[2], "atomic"))
        return true;
    if (n == 0 || !tok_is(lx, lead[0], "create"))
        return false;
    static const char *const routine[] = { "procedure", "function", "trigger", "event", "package" };
    static const char *const other[] = { "table", "view", "index", "database", "schema", "user", "role",
                                         "sequence", "server", "temporary", "unique", "fulltext", "spatial" };
    for (size_t i = 1; i < n; i++) {
        for (size_t k = 0; k < sizeof routine / sizeof routine[0]; k++)
            if (tok_is(lx, lead[i], routine[k]))
                return true;
        for (size_t k = 0; k < sizeof other / sizeof other[0]; k++)
            if (tok_is(lx, lead[i], other[k]))
                return false;
    }
    return false;
}

/* Past "TABLE [IF [NOT] EXISTS]" at w[i] (the word TABLE): where the names start. */
static size_t names_after(const struct token *w, size_t n, size_t i, const struct lex *lx)
{
    size_t last = i;
    if (i + 2 < n && tok_is(lx, w[i + 1], "if") && tok_is(lx, w[i + 2], "exists"))
        last = i + 2;
    else if (i + 3 < n && tok_is(lx, w[i + 1], "if") && tok_is(lx, w[i + 2], "not") && tok_is(lx, w[i + 3], "exists"))
        last = i + 3;
    return w[last].off + w[last].len;
}

static enum sy_sql_kind classify(const struct lex *lx, const struct token *w, size_t n, size_t *names_off)
{
    if (n == 0)
        return SY_SQL_OTHER;
    size_t i = 1;
    if (tok_is(lx, w[0], "create")) {
        if (i + 1 < n && tok_is(lx, w[i], "or") && tok_is(lx, w[i + 1], "replace"))
            i += 2;
        if (i + 1 < n && tok_is(lx, w[i], "temporary") &&
            (tok_is(lx, w[i + 1], "table") || tok_is(lx, w[i + 1], "sequence"))) {
            *names_off = names_after(w, n, i + 1, lx);
            return SY_SQL_TEMP_CREATE;
        }
        return SY_SQL_OTHER;
    }
    if (tok_is(lx, w[0], "drop")) {
        if (n >= 3 && tok_is(lx, w[1], "temporary") && (tok_is(lx, w[2], "table") || tok_is(lx, w[2], "sequence"))) {
            *names_off = names_after(w, n, 2, lx);
            return SY_SQL_TEMP_DROP;
        }
        if (n >= 2 && (tok_is(lx, w[1], "table") || tok_is(lx, w[1], "sequence"))) {
            *names_off = names_after(w, n, 1, lx);
            return SY_SQL_DROP_TABLE;
        }
        return SY_SQL_OTHER;
    }
    if (n >= 2 && (tok_is(lx, w[1], "tables") || tok_is(lx, w[1], "table"))) {
        if (tok_is(lx, w[0], "lock"))
            return SY_SQL_LOCK_TABLES;
        if (tok_is(lx, w[0], "unlock"))
            return SY_SQL_UNLOCK_TABLES;
    }
    if (n >= 2 && tok_is(lx, w[0], "backup")) {
        if (tok_is(lx, w[1], "lock"))
            return SY_SQL_LOCK_TABLES;
        if (tok_is(lx, w[1], "unlock"))
            return SY_SQL_UNLOCK_TABLES;
    }
    if (n >= 2 && tok_is(lx, w[0], "xa")) {
        if (tok_is(lx, w[1], "start") || tok_is(lx, w[1], "begin"))
            return SY_SQL_XA_START;
        if (tok_is(lx, w[1], "commit") || tok_is(lx, w[1], "rollback"))
            return SY_SQL_XA_END;
        return SY_SQL_OTHER;
    }
    if (tok_is(lx, w[0], "commit"))
        return SY_SQL_COMMIT;
    if (tok_is(lx, w[0], "rollback")) {
        if (i < n && tok_is(lx, w[i], "work"))
            i++;
        return i < n && tok_is(lx, w[i], "to") ? SY_SQL_OTHER : SY_SQL_ROLLBACK;
    }
    if (tok_is(lx, w[0], "call"))
        return SY_SQL_CALL;
    return SY_SQL_OTHER;
}

static bool is_name(struct token t)
{
    return t.t == T_WORD || t.t == T_IDENT;
}

/* PREPARE name FROM text, EXECUTE name | IMMEDIATE text, DEALLOCATE | DROP PREPARE name. */
static void prepared_stmt(const struct lex *lx, const struct token *h, size_t n, struct sy_sql_stmt *out)
{
    if (n >= 3 && tok_is(lx, h[0], "prepare") && is_name(h[1]) && tok_is(lx, h[2], "from")) {
        out->kind = SY_SQL_PREPARE;
        out->name_off = h[1].off;
        out->name_len = h[1].len;
        if (n >= 4 && h[3].t == T_STRING && h[3].len >= 2) {
            out->text_off = h[3].off;
            out->text_len = h[3].len;
        }
    } else if (n >= 2 && tok_is(lx, h[0], "execute") && is_name(h[1])) {
        if (n >= 3 && tok_is(lx, h[1], "immediate") && h[1].t == T_WORD && h[2].t != T_PUNCT) {
            out->kind = SY_SQL_EXECUTE_TEXT;
            if (h[2].t == T_STRING && h[2].len >= 2) {
                out->text_off = h[2].off;
                out->text_len = h[2].len;
            }
            return;
        }
        out->kind = SY_SQL_EXECUTE;
        out->name_off = h[1].off;
        out->name_len = h[1].len;
    } else if (n >= 3 && (tok_is(lx, h[0], "deallocate") || tok_is(lx, h[0], "drop")) &&
               tok_is(lx, h[1], "prepare") && is_name(h[2])) {
        out->kind = SY_SQL_DEALLOCATE;
        out->name_off = h[2].off;
        out->name_len = h[2].len;
    }
}

/* HANDLER [db.]t OPEN [[AS] alias] | HANDLER name CLOSE: the handler's name. */
static void handler_stmt(const struct lex *lx, const struct token *h, size_t n, struct sy_sql_stmt *out)
{
    if (n < 3 || !tok_is(lx, h[0], "handler") || !is_name(h[1]))
        return;
    size_t at = 2, name = 1;
    if (n >= 5 && tok_punct(lx, h[2], '.') && is_name(h[3])) {
        at = 4;
        name = 3;
    }
    if (at < n && tok_is(lx, h[at], "open") && h[at].t == T_WORD) {
        out->kind = SY_SQL_HANDLER_OPEN;
        if (at + 2 < n && tok_is(lx, h[at + 1], "as") && is_name(h[at + 2]))
            name = at + 2;
        else if (at + 1 < n && is_name(h[at + 1]))
            name = at + 1;
    } else if (at < n && tok_is(lx, h[at], "close") && h[at].t == T_WORD) {
        out->kind = SY_SQL_HANDLER_CLOSE;
    } else {
        return;
    }
    out->name_off = h[name].off;
    out->name_len = h[name].len;
}

size_t sy_sql_unquote(const uint8_t *lit, size_t n, uint8_t *out)
{
    if (n < 2)
        return 0;
    uint8_t q = lit[0];
    size_t o = 0, end = lit[n - 1] == q ? n - 1 : n; /* an unterminated one runs to the end */
    for (size_t i = 1; i < end; i++) {
        uint8_t c = lit[i];
        if (c == q && i + 1 < end && lit[i + 1] == q) {
            i++;
        } else if (c == '\\' && i + 1 < end) {
            c = lit[++i];
            switch (c) {
            case '0': c = 0; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'b': c = '\b'; break;
            case 'Z': c = 0x1A; break;
            case '%':
            case '_':
                out[o++] = '\\'; /* kept as written: LIKE wildcards */
                break;
            default: break;
            }
        }
        out[o++] = c;
    }
    return o;
}

bool sy_sql_next(const uint8_t *sql, size_t len, size_t *pos, struct sy_sql_stmt *out)
{
    return sy_sql_next_q(sql, len, pos, SY_SQL_ESC_ALL, out);
}

bool sy_sql_next_q(const uint8_t *sql, size_t len, size_t *pos, enum sy_sql_quoting quoting, struct sy_sql_stmt *out)
{
    memset(out, 0, sizeof *out);
    if (sql == NULL || *pos >= len)
        return false;
    struct lex lx = { .s = sql, .len = len, .i = *pos, .quoting = quoting };
    struct token lead[LEAD_MAX];
    size_t n_lead = 0;
    bool compound = false, flush = false, with_read = false, not_read = false;
    unsigned depth = 0, commas = 0;
    struct token prev = { T_END, 0, 0 }, prev2 = { T_END, 0, 0 };
    struct token head[8]; /* the first tokens, of any type: PREPARE / EXECUTE / DEALLOCATE / HANDLER */
    size_t n_head = 0;
    size_t end = 0;
    bool started = false;
    for (;;) {
        struct token t = next_token(&lx);
        if (t.t == T_END)
            break;
        if (!started) {
            started = true;
            out->off = t.off;
        }
        if (!compound && tok_punct(&lx, t, ';')) {
            lx.i = t.off + 1;
            break;
        }
        if (n_head < 8)
            head[n_head++] = t;
        end = t.t == T_IDENT ? lx.i : t.off + t.len;
        if (n_lead < LEAD_MAX && t.t == T_WORD) {
            lead[n_lead++] = t;
            if (n_lead == 1)
                flush = tok_is(&lx, t, "flush");
            if (!compound && (n_lead == 3 || tok_is(&lx, lead[0], "create")))
                compound = is_compound(&lx, lead, n_lead);
        }
        if (tok_punct(&lx, t, '('))
            depth++;
        else if (tok_punct(&lx, t, ')') && depth > 0)
            depth--;
        else if (tok_punct(&lx, t, ',') && depth == 0)
            commas++;
        if (tok_punct(&lx, t, '(') && prev.t == T_WORD) {
            if (tok_is(&lx, prev, "get_lock"))
                out->get_locks++;
            else if (tok_is(&lx, prev, "release_lock"))
                out->release_locks++;
            else if (tok_is(&lx, prev, "release_all_locks"))
                out->release_all_locks = true;
        }
        if (n_lead > 0 && tok_is(&lx, lead[0], "set")) {
            if (tok_is(&lx, t, "session_track_system_variables"))
                out->tracking |= SY_SQL_TRACK_VARIABLES;
            else if (tok_is(&lx, t, "session_track_schema"))
                out->tracking |= SY_SQL_TRACK_SCHEMA;
            else if (tok_is(&lx, t, "session_track_state_change"))
                out->tracking |= SY_SQL_TRACK_STATE;
        }
        if (tok_is(&lx, t, "value") && tok_is(&lx, prev, "next"))
            not_read = true; /* NEXT VALUE FOR seq: a read that writes */
        if ((tok_is(&lx, t, "update") && tok_is(&lx, prev, "for")) || (tok_is(&lx, t, "mode") && tok_is(&lx, prev, "share")) ||
            tok_is(&lx, t, "into") || tok_is(&lx, t, "nextval") || tok_is(&lx, t, "setval") ||
            tok_is(&lx, t, "analyze"))
            not_read = true;
        if (flush && tok_is(&lx, t, "lock") && tok_is(&lx, prev, "read") && tok_is(&lx, prev2, "with"))
            with_read = true;
        prev2 = prev;
        prev = t;
    }
    if (!started) {
        *pos = len;
        return false;
    }
    out->len = end - out->off;
    out->kind = classify(&lx, lead, n_lead, &out->names_off);
    if (with_read)
        out->kind = SY_SQL_LOCK_TABLES;
    prepared_stmt(&lx, head, n_head, out);
    handler_stmt(&lx, head, n_head, out);
    if (out->kind == SY_SQL_TEMP_DROP || out->kind == SY_SQL_DROP_TABLE)
        out->tables = commas + 1;
    static const char *const reads[] = { "select", "with", "values", "show", "desc", "describe", "explain" };
    for (size_t k = 0; n_lead > 0 && k < sizeof reads / sizeof reads[0]; k++)
        if (tok_is(&lx, lead[0], reads[k]) && lead[0].off == out->off)
            out->read = !not_read && out->get_locks == 0 && out->release_locks == 0 && !out->release_all_locks;
    *pos = lx.i;
    return true;
}

/* One part of a name: a word or a backquoted identifier. */
static bool name_part(struct lex *lx, const uint8_t **p, size_t *n)
{
    struct token t = next_token(lx);
    if (t.t != T_WORD && t.t != T_IDENT)
        return false;
    *p = lx->s + t.off;
    *n = t.len;
    return true;
}

bool sy_sql_next_name(const uint8_t *sql, size_t end, size_t *pos, struct sy_sql_name *out)
{
    memset(out, 0, sizeof *out);
    if (sql == NULL || *pos >= end)
        return false;
    struct lex lx = { .s = sql, .len = end, .i = *pos };
    if (!name_part(&lx, &out->name_p, &out->name_len))
        return false;
    struct token t = next_token(&lx);
    if (tok_punct(&lx, t, '.')) {
        out->db_p = out->name_p;
        out->db_len = out->name_len;
        if (!name_part(&lx, &out->name_p, &out->name_len))
            return false;
        t = next_token(&lx);
    }
    /* past a following ',' to the next name; anything else ends the list after this name */
    *pos = tok_punct(&lx, t, ',') ? lx.i : end;
    return true;
}

bool sy_sql_next_lock(const uint8_t *sql, size_t len, size_t *pos, struct sy_sql_lock *out)
{
    memset(out, 0, sizeof *out);
    if (sql == NULL)
        return false;
    struct lex lx = { .s = sql, .len = len, .i = *pos };
    struct token prev = { T_END, 0, 0 };
    for (;;) {
        struct token t = next_token(&lx);
        if (t.t == T_END) {
            *pos = len;
            return false;
        }
        if (!tok_punct(&lx, t, '(') || prev.t != T_WORD) {
            prev = t;
            continue;
        }
        if (tok_is(&lx, prev, "get_lock"))
            out->op = SY_SQL_LOCK_GET;
        else if (tok_is(&lx, prev, "release_lock"))
            out->op = SY_SQL_LOCK_RELEASE;
        else if (tok_is(&lx, prev, "release_all_locks"))
            out->op = SY_SQL_LOCK_RELEASE_ALL;
        else {
            prev = t;
            continue;
        }
        *pos = lx.i; /* the arguments are read again from here: a call inside them is found too */
        if (out->op == SY_SQL_LOCK_RELEASE_ALL)
            return true;
        struct token a = next_token(&lx), b = next_token(&lx);
        char end = out->op == SY_SQL_LOCK_GET ? ',' : ')';
        /* one literal and nothing else (an unterminated one runs to the end: no punctuation after it) */
        if (a.t == T_STRING && a.len >= 2 && tok_punct(&lx, b, end)) {
            out->name_p = sql + a.off + 1;
            out->name_len = a.len - 2;
            *pos = lx.i;
        }
        return true;
    }
}

void sy_sql_effect(const uint8_t *sql, size_t len, struct sy_sql_effect *out)
{
    sy_sql_effect_q(sql, len, SY_SQL_ESC_ALL, out);
}

static bool effects_agree(const struct sy_sql_effect *a, const struct sy_sql_effect *b)
{
    return a->kind == b->kind && a->statements == b->statements && a->temp_tables == b->temp_tables &&
           a->lock_tables == b->lock_tables && a->unlock_tables == b->unlock_tables &&
           a->user_locks == b->user_locks && a->release_all_locks == b->release_all_locks &&
           a->lock_calls == b->lock_calls && a->prepared_sql == b->prepared_sql && a->handlers == b->handlers &&
           a->xa_start == b->xa_start && a->xa_end == b->xa_end && a->tracking == b->tracking &&
           a->read == b->read && a->names_tables == b->names_tables;
}

bool sy_sql_effect_any_mode(const uint8_t *sql, size_t len, struct sy_sql_effect *out)
{
    sy_sql_effect_q(sql, len, SY_SQL_ESC_ALL, out);
    if (sql == NULL || memchr(sql, '\\', len) == NULL)
        return true; /* without a backslash every quoting reads the same */
    struct sy_sql_effect other;
    for (int q = SY_SQL_ESC_NONE; q <= SY_SQL_ESC_SINGLE; q++) {
        sy_sql_effect_q(sql, len, (enum sy_sql_quoting)q, &other);
        if (!effects_agree(out, &other)) {
            out->read = false;
            return false;
        }
    }
    return true;
}

void sy_sql_effect_q(const uint8_t *sql, size_t len, enum sy_sql_quoting quoting, struct sy_sql_effect *out)
{
    memset(out, 0, sizeof *out);
    size_t pos = 0;
    struct sy_sql_stmt st;
    bool all_read = true;
    while (sy_sql_next_q(sql, len, &pos, quoting, &st)) {
        all_read = all_read && st.read;
        out->names_tables = out->names_tables || st.kind == SY_SQL_TEMP_CREATE || st.kind == SY_SQL_TEMP_DROP ||
                            st.kind == SY_SQL_DROP_TABLE;
        out->prepared_sql = out->prepared_sql || st.kind == SY_SQL_PREPARE || st.kind == SY_SQL_EXECUTE ||
                            st.kind == SY_SQL_EXECUTE_TEXT || st.kind == SY_SQL_DEALLOCATE;
        out->handlers = out->handlers || st.kind == SY_SQL_HANDLER_OPEN || st.kind == SY_SQL_HANDLER_CLOSE;
        if (out->statements++ == 0)
            out->kind = st.kind;
        switch (st.kind) {
        case SY_SQL_TEMP_CREATE:
            out->temp_tables++;
            break;
        case SY_SQL_TEMP_DROP:
            out->temp_tables -= (int)st.tables;
            break;
        case SY_SQL_LOCK_TABLES:
        case SY_SQL_UNLOCK_TABLES:
            out->lock_tables = st.kind == SY_SQL_LOCK_TABLES;
            out->unlock_tables = !out->lock_tables;
            break;
        case SY_SQL_XA_START:
        case SY_SQL_XA_END:
            out->xa_start = st.kind == SY_SQL_XA_START;
            out->xa_end = !out->xa_start;
            break;
        default:
            break;
        }
        if (st.release_all_locks) {
            out->release_all_locks = true;
            out->user_locks = 0;
        }
        out->user_locks += (int)st.get_locks - (int)st.release_locks;
        out->lock_calls = out->lock_calls || st.get_locks || st.release_locks || st.release_all_locks;
        out->tracking |= st.tracking;
    }
    out->read = all_read && out->statements > 0;
}
