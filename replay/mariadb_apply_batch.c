/* The fast path of a group of source transactions: their rows become SQL text sent as multi-statement
 * batches, a few round trips per group instead of one per row. It applies a group only when nothing in
 * it conflicts; any conflict rolls the group back for the row path, which fails naming the row
 * (on_conflict = fail) or overwrites / ignores and counts it (overwrite).
 *
 * Rows of one key are first folded into their net effect (net changes): within the group, which is
 * one destination transaction, only the key's state before the first and after the last of its rows
 * can be seen. A chain of rows on one key (a table whose keys compare as bytes, the key not changed
 * by any of them) becomes one operation: present before -> present after: the last image written
 * over the row, which must exist (upsert, counted as below); present -> absent: DELETE; absent ->
 * present: INSERT of the last image; absent -> absent: a locking read that must find nothing. So
 * DELETE + INSERT of one key, or a row updated by several transactions, costs the destination one
 * row operation, and a conflict on the key's first row is still found. The chain is matched on the
 * key's exact literal (hashes only find candidates); a row changing a key ends that key's chain.
 *
 * Rows are reordered only where that cannot be seen: every row gets a round, one more than the last
 * round of any earlier row of the group with the same key (sy_apply_row_key; a table whose keys are
 * not byte-comparable, or that has a second UNIQUE key, is one key), so each key's changes stay in
 * source order while rows of one round have distinct keys and commute. Within a round, the rows of
 * one table and kind are merged: INSERTs into one multi-row INSERT, DELETEs by a one-column key into
 * DELETE ... IN (...), UPDATEs that keep their one-column key into INSERT ... ON DUPLICATE KEY UPDATE
 * (every row must exist: its count 2 x rows proves it; any other count sends the group again with a
 * SELECT COUNT(*) ... FOR UPDATE before each such upsert, locked and counted). Other rows are single
 * UPDATE / DELETE statements by key. Every statement's count is checked (CLIENT_FOUND_ROWS): a
 * missing row, a duplicate key or any other error makes the caller roll the group back and apply it
 * again row by row in source order (sy_apply_row), which names the exact row and source
 * transaction. Values are literals of the bytes the source stored (session charset binary, strings
 * escaped): the same values the prepared path binds. A group with a row whose values are large
 * (> 1 MiB) or have no exact literal (a non-finite double, odd decimal text) takes the row path. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>

#include "engine/mariadb_client.h"
#include "replay/mariadb_apply.h"

#define BATCH_MAX_BYTES (512u * 1024u)   /* per round trip */
#define BATCH_MAX_STMTS 256
#define STMT_MAX_ROWS 1000               /* rows merged into one statement */
#define ROW_MAX_BYTES (1u << 20)
#define PART_MAX_OPS 65536               /* a large group is rendered and sent in parts of this size */
#define PART_MAX_BYTES (16u << 20)

enum op_kind {
    OP_INSERT,    /* frag: "(values)" */
    OP_DELETE_IN, /* frag: key literal */
    OP_UPSERT,    /* frag: "(values)", key: key literal, single: the UPDATE statement */
    OP_SINGLE,    /* single: the whole statement (UPDATE / DELETE by key) */
    OP_ABSENT,    /* single: SELECT COUNT(*) ... FOR UPDATE that must count 0 (a chain absent -> absent) */
};

struct op {
    uint32_t round;
    uint32_t plan_no;      /* in batch.plans */
    uint32_t kind;
    uint32_t idx;          /* source order */
    uint64_t key_before, key_after;
    uint32_t has_key;      /* bit 0: key_before, bit 1: key_after */
    size_t off, len;       /* frag in batch.frag */
    size_t koff, klen;
    size_t soff, slen;
    uint32_t n_src;        /* source rows folded into it */
    bool chained;          /* a net-change op: koff/klen hold its exact key literal */
    bool pre_absent;       /* chained: the key's first row was an INSERT (the key must be absent) */
};

/* Chains of a group: key hash -> the chained op holding that key's net change. */
struct chain_map {
    struct chain_slot {
        uint64_t key;
        uint32_t op;     /* index + 1 in batch.ops; 0 = empty; CHAIN_NONE = the key's chain ended */
    } *s;                /* owned */
    size_t cap, n;       /* cap: power of two */
};
#define CHAIN_NONE UINT32_MAX

enum expect_how {
    EXPECT_AFFECTED,
    EXPECT_ANY,
    EXPECT_COUNT,
    EXPECT_UPSERT_ALL_UPDATED, /* n = 2 x rows: every row existed and changed (see emit_run) */
};

struct expect {
    uint64_t n;
    enum expect_how how;
};

struct batch {
    struct sy_apply_conn *ac;
    struct sy_buf *out;          /* where the helpers write: frag or ac->sql */
    struct sy_buf frag;          /* rendered rows */
    struct op *ops;              /* owned */
    size_t n_ops, cap_ops;
    const struct sy_apply_plan **plans; /* owned array of refs (ac's plans stay loaded for the group) */
    size_t n_plans, cap_plans;
    struct expect expect[BATCH_MAX_STMTS];
    size_t n_stmts;
    char *esc;                   /* owned: escaping scratch */
    size_t cap_esc;
    int (*ready)(void *);        /* called once before the first statement is sent; non-zero: give up */
    void *ready_arg;
    bool optimistic;             /* merged UPDATEs without their SELECT COUNT(*) ... FOR UPDATE */
    bool upsert_miss;            /* an optimistic upsert's count did not prove its rows existed */
    struct chain_map chains;
    uint64_t n_src_rows;         /* source rows rendered */
    unsigned parts_sent;         /* parts of the group already sent (see send_part) */
};

static void add_str(struct batch *b, const char *s)
{
    sy_buf_add(b->out, s, strlen(s));
}

static void add_ident(struct batch *b, const char *name)
{
    sy_mariadb_add_ident(b->out, name);
}

static void add_table(struct batch *b, const struct sy_apply_plan *p)
{
    add_ident(b, p->db);
    add_str(b, ".");
    add_ident(b, p->table);
}

/* Whether v has an exact literal (checked before anything of the row is written). */
static bool literal_ok(const struct sy_value *v)
{
    if (v->type == SY_VAL_FLOAT || v->type == SY_VAL_DOUBLE)
        return isfinite(v->d);
    if (v->type == SY_VAL_DECIMAL) {
        if (v->len == 0 || v->len > 80)
            return false;
        for (size_t i = 0; i < v->len; i++)
            if (!strchr("0123456789.-+", v->p[i]))
                return false;
    }
    return true;
}

static int add_value(struct batch *b, const struct sy_value *v)
{
    char num[64];
    switch (v->type) {
    case SY_VAL_NULL:
        add_str(b, "NULL");
        return 0;
    case SY_VAL_INT:
        snprintf(num, sizeof num, "%lld", (long long)v->i);
        add_str(b, num);
        return 0;
    case SY_VAL_UINT:
        snprintf(num, sizeof num, "%llu", (unsigned long long)v->u);
        add_str(b, num);
        return 0;
    case SY_VAL_FLOAT:
    case SY_VAL_DOUBLE:
        snprintf(num, sizeof num, "%.16e", v->d); /* exponent form: a DOUBLE literal; 17 digits: exact */
        add_str(b, num);
        return 0;
    case SY_VAL_DECIMAL:
        sy_buf_add(b->out, v->p, v->len);
        return 0;
    case SY_VAL_STRING:
    case SY_VAL_TEMPORAL:
    case SY_VAL_BLOB:
        if (v->len * 2 + 1 > b->cap_esc) {
            char *n = realloc(b->esc, v->len * 2 + 1);
            if (n == NULL)
                return -1;
            b->esc = n;
            b->cap_esc = v->len * 2 + 1;
        }
        unsigned long n = mysql_real_escape_string(b->ac->conn, b->esc, (const char *)v->p, (unsigned long)v->len);
        add_str(b, "'");
        sy_buf_add(b->out, b->esc, n);
        add_str(b, "'");
        return 0;
    case SY_VAL_DOCUMENT: /* another engine's values: the writer refuses such rows when it reads them */
    case SY_VAL_PATCH:
        return -1;
    }
    return -1;
}

static const struct sy_value null_value = { .type = SY_VAL_NULL };

static const struct sy_value *col_value(const struct sy_apply_table *t, const struct sy_value *vals, size_t col)
{
    const struct sy_value *v = sy_apply_src_value(t, vals, col);
    return v ? v : &null_value;
}

/* What a column list writes for each column it takes. */
enum col_form {
    COL_NAME,    /* c */
    COL_VALUE,   /* value */
    COL_SET,     /* c=value */
    COL_UPSERT,  /* c=VALUES(c) */
};

/* The written (non-generated) columns, or with `keys` the key columns, in destination order,
 * separated by sep. vals: the row image (COL_VALUE, COL_SET). */
static int add_col_list(struct batch *b, const struct sy_apply_table *t, const struct sy_apply_plan *p,
                        const struct sy_value *vals, bool keys, enum col_form form, const char *sep)
{
    bool first = true;
    for (size_t i = 0; i < p->n_cols; i++) {
        if (keys ? !p->cols[i].key : p->cols[i].generated)
            continue;
        if (!first)
            add_str(b, sep);
        first = false;
        if (form != COL_VALUE)
            add_ident(b, p->cols[i].name);
        if (form == COL_UPSERT) {
            add_str(b, "=VALUES(");
            add_ident(b, p->cols[i].name);
            add_str(b, ")");
        } else if (form != COL_NAME) {
            if (form == COL_SET)
                add_str(b, "=");
            if (add_value(b, col_value(t, vals, i)) != 0)
                return -1;
        }
    }
    return 0;
}

/* "(v1,v2,...)" of the written columns. */
static int add_row_values(struct batch *b, const struct sy_apply_table *t, const struct sy_value *vals)
{
    add_str(b, "(");
    int rc = add_col_list(b, t, t->plan, vals, false, COL_VALUE, ",");
    add_str(b, ")");
    return rc;
}

static int add_where_key(struct batch *b, const struct sy_apply_table *t, const struct sy_value *vals)
{
    add_str(b, " WHERE ");
    return add_col_list(b, t, t->plan, vals, true, COL_SET, " AND ");
}

/* ---- pass 1: render every row of the group -------------------------------------------------------- */

static int plan_no(struct batch *b, const struct sy_apply_plan *p, uint32_t *out)
{
    for (size_t i = 0; i < b->n_plans; i++)
        if (b->plans[i] == p) {
            *out = (uint32_t)i;
            return 0;
        }
    if (sy_grow((void **)&b->plans, &b->cap_plans, b->n_plans + 1, sizeof *b->plans, 16) != 0)
        return -1;
    *out = (uint32_t)b->n_plans;
    b->plans[b->n_plans++] = p;
    return 0;
}

static bool same_key(const struct sy_apply_table *t, const struct sy_value *a, const struct sy_value *b)
{
    for (size_t i = 0; i < t->plan->n_cols; i++) {
        if (!t->plan->cols[i].key)
            continue;
        const struct sy_value *x = col_value(t, a, i), *y = col_value(t, b, i);
        if (x->type != y->type || x->i != y->i || x->u != y->u || x->len != y->len ||
            (x->len && memcmp(x->p, y->p, x->len) != 0))
            return false;
    }
    return true;
}

static int render_update(struct batch *b, const struct sy_apply_table *t, const struct sy_change_row *r)
{
    const struct sy_apply_plan *p = t->plan;
    add_str(b, "UPDATE ");
    add_table(b, p);
    add_str(b, " SET ");
    if (add_col_list(b, t, p, r->after, false, COL_SET, ",") != 0)
        return -1;
    return add_where_key(b, t, r->before);
}

/* The key's value (a one-column key). */
static int key_literal(struct batch *b, const struct sy_apply_table *t, const struct sy_value *vals)
{
    return add_col_list(b, t, t->plan, vals, true, COL_VALUE, ",");
}

/* ---- net changes --------------------------------------------------------------------------------- */

static struct chain_slot *chain_slot(struct chain_map *m, uint64_t key)
{
    size_t j = key & (m->cap - 1);
    while (m->s[j].op && m->s[j].key != key)
        j = (j + 1) & (m->cap - 1);
    return &m->s[j];
}

/* The slot of key (created empty when missing); NULL when out of memory. */
static struct chain_slot *chain_get(struct chain_map *m, uint64_t key)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct chain_map g = { .cap = m->cap ? m->cap * 2 : 256, .n = m->n };
        if ((g.s = calloc(g.cap, sizeof *g.s)) == NULL)
            return NULL;
        for (size_t i = 0; i < m->cap; i++)
            if (m->s[i].op)
                *chain_slot(&g, m->s[i].key) = m->s[i];
        free(m->s);
        *m = g;
    }
    struct chain_slot *sl = chain_slot(m, key);
    if (sl->op == 0) {
        sl->key = key;
        m->n++;
    }
    return sl;
}

/* Whether a row's key can carry a net change: a key that compares as bytes, not NULL, the same
 * before and after. */
static bool chainable(const struct sy_apply_table *t, const struct sy_change_row *r)
{
    const struct sy_apply_plan *p = t->plan;
    if (p->whole_table || p->n_key == 0)
        return false;
    const struct sy_value *img = r->before ? r->before : r->after;
    for (size_t i = 0; i < p->n_cols; i++)
        if (p->cols[i].key && col_value(t, img, i)->type == SY_VAL_NULL)
            return false;
    return r->op != SY_ROW_UPDATE || same_key(t, r->before, r->after);
}

/* Renders a chained op for the key's state after row r: its kind and fragments from the chain's
 * first requirement (o->pre_absent) and r's result. */
static int render_net(struct batch *b, const struct sy_apply_table *t, struct op *o, const struct sy_change_row *r)
{
    const struct sy_apply_plan *p = t->plan;
    const struct sy_value *img = r->after ? r->after : r->before;
    bool post_absent = r->op == SY_ROW_DELETE;
    b->out = &b->frag;
    o->off = o->len = o->soff = o->slen = 0;
    int rc = 0;
    if (post_absent && o->pre_absent) {
        o->kind = OP_ABSENT;
        o->soff = b->frag.len;
        add_str(b, "SELECT COUNT(*) FROM ");
        add_table(b, p);
        rc = add_where_key(b, t, img);
        add_str(b, " FOR UPDATE");
        o->slen = b->frag.len - o->soff;
    } else if (post_absent) {
        if (p->n_key == 1) {
            o->kind = OP_DELETE_IN;
            o->off = o->koff;
            o->len = o->klen;
        } else {
            o->kind = OP_SINGLE;
            o->soff = b->frag.len;
            add_str(b, "DELETE FROM ");
            add_table(b, p);
            rc = add_where_key(b, t, img);
            o->slen = b->frag.len - o->soff;
        }
    } else if (o->pre_absent) {
        o->kind = OP_INSERT;
        o->off = b->frag.len;
        rc = add_row_values(b, t, img);
        o->len = b->frag.len - o->off;
    } else {
        if (p->n_key == 1) {
            o->kind = OP_UPSERT;
            o->off = b->frag.len;
            rc = add_row_values(b, t, img);
            o->len = b->frag.len - o->off;
        } else {
            o->kind = OP_SINGLE;
        }
        const struct sy_change_row u = { .table_id = r->table_id, .op = SY_ROW_UPDATE, .n_columns = r->n_columns,
                                         .before = img, .after = img };
        o->soff = b->frag.len;
        rc = rc ? rc : render_update(b, t, &u);
        o->slen = b->frag.len - o->soff;
    }
    return rc == 0 && !b->frag.oom ? 0 : -3;
}

/* Folds r into its key's chain, or starts one. 0, -3. */
static int render_chained(struct batch *b, const struct sy_apply_table *t, uint32_t plan, const struct sy_change_row *r)
{
    const struct sy_value *img = r->before ? r->before : r->after;
    uint64_t key = sy_apply_row_key(t, img);
    b->out = &b->frag;
    size_t koff = b->frag.len;
    if (key_literal(b, t, img) != 0 || b->frag.oom)
        return -3;
    size_t klen = b->frag.len - koff;
    struct chain_slot *sl = chain_get(&b->chains, key);
    if (sl == NULL)
        return -3;
    struct op *o = NULL;
    if (sl->op != 0 && sl->op != CHAIN_NONE) {
        struct op *c = &b->ops[sl->op - 1];
        if (c->plan_no == plan && c->klen == klen && memcmp(b->frag.p + c->koff, b->frag.p + koff, klen) == 0)
            o = c; /* else: another key with the same hash; the newer one takes the slot */
    }
    if (o == NULL) {
        if (sy_grow((void **)&b->ops, &b->cap_ops, b->n_ops + 1, sizeof *b->ops, 256) != 0)
            return -3;
        o = &b->ops[b->n_ops];
        memset(o, 0, sizeof *o);
        o->idx = (uint32_t)b->n_ops;
        o->plan_no = plan;
        o->key_before = o->key_after = key;
        o->has_key = 3;
        o->chained = true;
        o->pre_absent = r->op == SY_ROW_INSERT;
        b->n_ops++;
        sl->op = o->idx + 1;
    }
    o->koff = koff;
    o->klen = klen;
    o->n_src++;
    return render_net(b, t, o, r);
}

/* A row that changes a key (or of a table without byte keys) ends the chains of its keys: later
 * rows of those keys start new ones, after it. */
static int end_chains(struct batch *b, const struct op *o)
{
    for (int k = 0; k < 2; k++) {
        if (!(o->has_key & (1u << k)))
            continue;
        struct chain_slot *sl = chain_get(&b->chains, k ? o->key_after : o->key_before);
        if (sl == NULL)
            return -1;
        sl->op = CHAIN_NONE;
    }
    return 0;
}

/* 0, -3: this group takes the row path. */
static int render_row(struct batch *b, const struct sy_change_row *r)
{
    struct sy_apply_table *t = sy_apply_table_find(b->ac, r->table_id);
    if (t == NULL || r->n_columns != t->n_src)
        return -3;
    const struct sy_apply_plan *p = t->plan;
    size_t bytes = 0;
    for (uint32_t i = 0; i < r->n_columns; i++) {
        if ((r->before && !literal_ok(&r->before[i])) || (r->after && !literal_ok(&r->after[i])))
            return -3;
        bytes += (r->before ? r->before[i].len : 0) + (r->after ? r->after[i].len : 0);
    }
    if (bytes > ROW_MAX_BYTES)
        return -3;
    b->n_src_rows++;
    uint32_t plan;
    if (plan_no(b, p, &plan) != 0)
        return -3;
    if (chainable(t, r))
        return render_chained(b, t, plan, r);
    if (sy_grow((void **)&b->ops, &b->cap_ops, b->n_ops + 1, sizeof *b->ops, 256) != 0)
        return -3;
    struct op *o = &b->ops[b->n_ops];
    memset(o, 0, sizeof *o);
    o->idx = (uint32_t)b->n_ops;
    o->plan_no = plan;
    o->n_src = 1;
    o->key_before = r->before ? sy_apply_row_key(t, r->before) : 0;
    o->key_after = r->after ? sy_apply_row_key(t, r->after) : 0;
    o->has_key = (r->before ? 1u : 0u) | (r->after ? 2u : 0u);
    if (end_chains(b, o) != 0)
        return -3;
    b->out = &b->frag;
    int rc = 0;
    o->off = b->frag.len;
    switch (r->op) {
    case SY_ROW_INSERT:
        o->kind = OP_INSERT;
        rc = add_row_values(b, t, r->after);
        break;
    case SY_ROW_UPDATE:
        o->kind = OP_SINGLE;
        o->soff = b->frag.len;
        rc = render_update(b, t, r);
        o->slen = b->frag.len - o->soff;
        b->n_ops++;
        return rc == 0 && !b->frag.oom ? 0 : -3;
    default:
        if (p->n_key == 1) {
            o->kind = OP_DELETE_IN;
            rc = key_literal(b, t, r->before);
        } else {
            o->kind = OP_SINGLE;
            o->soff = b->frag.len;
            add_str(b, "DELETE FROM ");
            add_table(b, p);
            rc = add_where_key(b, t, r->before);
            o->slen = b->frag.len - o->soff;
        }
        break;
    }
    o->len = b->frag.len - o->off;
    b->n_ops++;
    return rc == 0 && !b->frag.oom ? 0 : -3;
}

/* ---- rounds --------------------------------------------------------------------------------------- */

struct round_map {
    struct round_slot {
        uint64_t key;
        uint32_t round; /* 0 = empty */
    } *s;               /* owned */
    size_t cap;         /* power of two, > 2x the keys */
};

static struct round_slot *round_slot(struct round_map *m, uint64_t key)
{
    size_t j = key & (m->cap - 1);
    while (m->s[j].round && m->s[j].key != key)
        j = (j + 1) & (m->cap - 1);
    return &m->s[j];
}

/* Each op's round: one more than the last round of its keys (before and after image). */
static int assign_rounds(struct batch *b)
{
    struct round_map m = { .cap = 64 };
    while (m.cap < b->n_ops * 4)
        m.cap *= 2;
    if ((m.s = calloc(m.cap, sizeof *m.s)) == NULL)
        return -1;
    for (size_t i = 0; i < b->n_ops; i++) {
        struct op *o = &b->ops[i];
        uint32_t round = 1;
        for (int k = 0; k < 2; k++) {
            if (!(o->has_key & (1u << k)))
                continue;
            struct round_slot *sl = round_slot(&m, k ? o->key_after : o->key_before);
            if (sl->round >= round)
                round = sl->round + 1;
        }
        o->round = round;
        for (int k = 0; k < 2; k++) {
            if (!(o->has_key & (1u << k)))
                continue;
            uint64_t key = k ? o->key_after : o->key_before;
            struct round_slot *sl = round_slot(&m, key);
            sl->key = key;
            sl->round = round;
        }
    }
    free(m.s);
    return 0;
}

static int op_cmp(const void *x, const void *y)
{
    const struct op *a = x, *b = y;
    if (a->round != b->round)
        return a->round < b->round ? -1 : 1;
    if (a->plan_no != b->plan_no)
        return a->plan_no < b->plan_no ? -1 : 1;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* ---- pass 2: statements --------------------------------------------------------------------------- */

/* Sends the statements so far and checks every count. 0, -1 transient, -3 mismatch / error. */
static int run(struct batch *b)
{
    if (b->n_stmts == 0)
        return 0;
    struct sy_apply_conn *ac = b->ac;
    size_t n = b->n_stmts;
    b->n_stmts = 0;
    if (ac->sql.oom) {
        snprintf(ac->err, sizeof ac->err, "out of memory");
        sy_buf_reset(&ac->sql);
        return -3;
    }
    int rc = 0;
    if (b->ready) {
        int (*ready)(void *) = b->ready;
        b->ready = NULL;
        if (ready(b->ready_arg) != 0) {
            snprintf(ac->err, sizeof ac->err, "stopped");
            sy_buf_reset(&ac->sql);
            return -1;
        }
    }
    if (mysql_real_query(ac->conn, (const char *)ac->sql.p, (unsigned long)ac->sql.len) != 0)
        goto error;
    for (size_t i = 0; i < n; i++) {
        const struct expect *e = &b->expect[i];
        uint64_t got;
        if (mysql_field_count(ac->conn) > 0) {
            MYSQL_RES *res = mysql_store_result(ac->conn);
            MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
            got = row && row[0] ? strtoull(row[0], NULL, 10) : UINT64_MAX;
            if (res)
                mysql_free_result(res);
        } else {
            got = (uint64_t)mysql_affected_rows(ac->conn);
        }
        if (e->how != EXPECT_ANY && got != e->n && rc == 0) {
            if (e->how == EXPECT_UPSERT_ALL_UPDATED)
                b->upsert_miss = true;
            snprintf(ac->err, sizeof ac->err, "statement %zu of a batch: %llu rows, not %llu", i,
                     (unsigned long long)got, (unsigned long long)e->n);
            rc = -3; /* keep reading: the connection must end the batch in sync */
        }
        int nr = mysql_next_result(ac->conn);
        if (nr > 0)
            goto error;
        if (nr < 0)
            break;
    }
    sy_buf_reset(&ac->sql);
    return rc;
error: {
    unsigned int en = mysql_errno(ac->conn);
    snprintf(ac->err, sizeof ac->err, "%u %s", en, mysql_error(ac->conn));
    sy_buf_reset(&ac->sql);
    return sy_mariadb_is_transient(en) ? -1 : -3;
}
}

static void stmt_begin(struct batch *b)
{
    b->out = &b->ac->sql;
    if (b->n_stmts > 0)
        add_str(b, ";");
}

static int stmt_end(struct batch *b, uint64_t n, enum expect_how how)
{
    b->expect[b->n_stmts++] = (struct expect){ .n = n, .how = how };
    if (b->n_stmts >= BATCH_MAX_STMTS || b->ac->sql.len >= BATCH_MAX_BYTES)
        return run(b);
    return 0;
}

/* The fragments of ops[0..n), comma-separated; key: their key fragments. */
static void add_frags(struct batch *b, const struct op *ops, size_t n, bool key)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            add_str(b, ",");
        sy_buf_add(b->out, b->frag.p + (key ? ops[i].koff : ops[i].off), key ? ops[i].klen : ops[i].len);
    }
}

static void add_insert(struct batch *b, const struct sy_apply_plan *p, const struct op *ops, size_t n)
{
    add_str(b, "INSERT INTO ");
    add_table(b, p);
    add_str(b, " (");
    add_col_list(b, NULL, p, NULL, false, COL_NAME, ",");
    add_str(b, ") VALUES ");
    add_frags(b, ops, n, false);
}

/* "db.t WHERE k IN (k1,k2,...)" */
static void add_key_in(struct batch *b, const struct sy_apply_plan *p, const struct op *ops, size_t n, bool key)
{
    add_table(b, p);
    add_str(b, " WHERE ");
    add_col_list(b, NULL, p, NULL, true, COL_NAME, ",");
    add_str(b, " IN (");
    add_frags(b, ops, n, key);
    add_str(b, ")");
}

/* One merged statement (or two, for UPSERT) of ops[0..n): same round, table and kind. */
static int emit_run(struct batch *b, const struct op *ops, size_t n)
{
    const struct sy_apply_plan *p = b->plans[ops[0].plan_no];
    int rc;
    switch (ops[0].kind) {
    case OP_INSERT:
        stmt_begin(b);
        add_insert(b, p, ops, n);
        return stmt_end(b, n, EXPECT_AFFECTED);
    case OP_DELETE_IN:
        stmt_begin(b);
        add_str(b, "DELETE FROM ");
        add_key_in(b, p, ops, n, false);
        return stmt_end(b, n, EXPECT_AFFECTED);
    case OP_UPSERT:
        if (n == 1)
            break;
        /* Optimistic first: with CLIENT_FOUND_ROWS the upsert counts 1 per inserted row, 1 per row
         * found unchanged and 2 per row found and changed, so 2 x n proves that every row existed.
         * Anything else: the group is rolled back and sent again with the counted locking read
         * first (sy_apply_batch), which tells a missing row from an unchanged one. */
        if (!b->optimistic) {
            stmt_begin(b);
            add_str(b, "SELECT COUNT(*) FROM ");
            add_key_in(b, p, ops, n, true);
            add_str(b, " FOR UPDATE");
            if ((rc = stmt_end(b, n, EXPECT_COUNT)) != 0)
                return rc;
        }
        stmt_begin(b);
        add_insert(b, p, ops, n);
        add_str(b, " ON DUPLICATE KEY UPDATE ");
        add_col_list(b, NULL, p, NULL, false, COL_UPSERT, ",");
        return b->optimistic ? stmt_end(b, 2 * (uint64_t)n, EXPECT_UPSERT_ALL_UPDATED) : stmt_end(b, n, EXPECT_ANY);
    default:
        break;
    }
    for (size_t i = 0; i < n; i++) { /* one statement each */
        stmt_begin(b);
        sy_buf_add(b->out, b->frag.p + ops[i].soff, ops[i].slen);
        rc = ops[i].kind == OP_ABSENT ? stmt_end(b, 0, EXPECT_COUNT) : stmt_end(b, 1, EXPECT_AFFECTED);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int emit(struct batch *b)
{
    qsort(b->ops, b->n_ops, sizeof *b->ops, op_cmp);
    for (size_t i = 0; i < b->n_ops;) {
        size_t j = i + 1;
        while (j < b->n_ops && j - i < STMT_MAX_ROWS && b->ops[j].round == b->ops[i].round &&
               b->ops[j].plan_no == b->ops[i].plan_no && b->ops[j].kind == b->ops[i].kind)
            j++;
        int rc = emit_run(b, &b->ops[i], j - i);
        if (rc != 0)
            return rc;
        i = j;
    }
    return run(b);
}

/* Sends the rendered rows (a part of the group: rows in source order, so parts apply in order) and
 * starts the next part empty: a large transaction costs a part's memory, not its SQL text whole. Net
 * changes and rounds are per part. An optimistic upsert that did not prove its rows is sent again the
 * careful way only while this is the first part (a rollback would undo earlier parts too); later,
 * -3: the group takes the row path. */
static int send_part(struct batch *b)
{
    int rc = assign_rounds(b) == 0 ? emit(b) : -3;
    if (rc == -3 && b->upsert_miss && b->parts_sent == 0) { /* counted locking reads before the upserts */
        sy_buf_reset(&b->ac->sql);
        sy_apply_rollback(b->ac);
        b->optimistic = b->upsert_miss = false;
        b->n_stmts = 0;
        rc = emit(b);
    }
    b->parts_sent++;
    b->n_ops = 0;
    sy_buf_reset(&b->frag);
    free(b->chains.s);
    memset(&b->chains, 0, sizeof b->chains);
    return rc;
}

int sy_apply_batch(struct sy_apply_conn *ac, struct sy_apply_txn *const *txns, size_t ntx, int (*ready)(void *),
                   void *ready_arg)
{
    struct batch b = { .ac = ac, .out = &ac->sql, .ready = ready, .ready_arg = ready_arg, .optimistic = true };
    sy_buf_init(&b.frag);
    sy_buf_reset(&ac->sql);
    int rc = 0;
    for (size_t k = 0; k < ntx && rc == 0; k++) {
        const struct sy_apply_txn *tx = txns[k];
        sy_apply_txn_reset(ac);
        for (size_t i = 0; i < tx->n_recs && rc == 0; i++) {
            const struct sy_apply_rec *rec = &tx->recs[i];
            struct sy_change ch;
            if (sy_change_decode(tx->buf + rec->off, rec->len, &ac->scratch, &ch) != SY_PARSE_OK) {
                rc = -3;
            } else if (ch.kind == SY_CHANGE_TABLE) {
                if (ac->n_plans + 1 >= SY_APPLY_MAX_PLANS) { /* loading could free plans the group uses */
                    rc = -3;
                    break;
                }
                int trc = sy_apply_table(ac, &ch.u.table);
                rc = trc == 0 ? 0 : trc == SY_APPLY_TRANSIENT ? -1 : -3;
            } else if (ch.kind == SY_CHANGE_ROW) {
                rc = render_row(&b, &ch.u.row);
                if (rc == 0 && (b.n_ops >= PART_MAX_OPS || b.frag.len >= PART_MAX_BYTES))
                    rc = send_part(&b);
            }
        }
    }
    sy_apply_txn_reset(ac);
    if (rc == 0)
        rc = send_part(&b);
    if (rc == 0)
        ac->rows += b.n_src_rows;
    sy_buf_reset(&ac->sql);
    sy_buf_fini(&b.frag);
    free(b.ops);
    free(b.plans);
    free(b.esc);
    free(b.chains.s);
    return rc;
}
