/* Change records <-> bytes: the spool payload of one change (core/change.h).
 *
 *   u8 version | u8 kind | varint source_time_ms | text position | kind fields
 * version 2 for a DDL record, 1 for every other kind (their encoding did not change in 2, so a daemon
 * of format 1 can still read a spool that holds no DDL; DOCUMENT and PATCH values exist only in
 * MongoDB spools, which such a daemon never had).
 *   text  = varint len | len bytes | NUL          (decoded strings are NUL-terminated in place)
 *   TABLE = varint table_id | text db | text table | varint n_columns |
 *           n x (text name | u8 source_type | u8 flags | u16 charset)
 *   ROW   = varint table_id | u8 op | varint n_columns | before values (UPDATE, DELETE) | after values
 *           (INSERT, UPDATE)
 *   DDL   = text db | text sql | varint len | len bytes of context (the engine's encoding, opaque here)
 *           Format 1 (read, never written) had MariaDB's session fields where the context is, without
 *           a length: they are taken as the context (every byte left), which is what
 *           engine/mariadb_ddl_context.c encodes, so spools written before 2 apply the same.
 *   value = u8 type | NULL: - | INT: zigzag varint | UINT: varint | FLOAT, DOUBLE: u64 IEEE bits |
 *           DECIMAL, STRING, BLOB, TEMPORAL, DOCUMENT, PATCH: varint len | len bytes | u16 charset
 * Integers are little-endian, varints LEB128 (at most 10 bytes). Identifiers (db, table, column,
 * time_zone) may not contain NUL; positions and SQL text may. The decoder is pure: every length and
 * count is checked against the bytes left before it is used, counts are capped before the scratch
 * grows, trailing bytes are an error. No I/O, no globals. */
#include "core/change.h"

#include <stdlib.h>
#include <string.h>

#include "core/rd.h"

#define CHANGE_FORMAT_VERSION 2
#define CHANGE_FORMAT_V1 1 /* DDL context without its length */

#define TEXT_MIN_BYTES 2   /* varint 0 + NUL */
#define COLUMN_MIN_BYTES (TEXT_MIN_BYTES + 4)
#define VALUE_MIN_BYTES 1  /* a NULL */

/* ---- sy_buf ---- */

void sy_buf_init(struct sy_buf *b)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = false;
}

void sy_buf_fini(struct sy_buf *b)
{
    free(b->p);
    sy_buf_init(b);
}

/* Empties the buffer for a new encoding (keeps the memory) and clears oom. */
void sy_buf_reset(struct sy_buf *b)
{
    b->len = 0;
    b->oom = false;
}

void sy_buf_add(struct sy_buf *b, const void *p, size_t len)
{
    if (b->oom || len == 0)
        return;
    if (len > SIZE_MAX - b->len) {
        b->oom = true;
        return;
    }
    size_t need = b->len + len;
    if (need > b->cap) {
        size_t cap = b->cap < 64 ? 64 : b->cap;
        while (cap < need)
            cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        uint8_t *np = realloc(b->p, cap);
        if (np == NULL) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, len);
    b->len = need;
}

/* ---- encoding ---- */

static void put_u8(struct sy_buf *b, uint8_t v)
{
    sy_buf_add(b, &v, 1);
}

void sy_buf_put_le(struct sy_buf *b, uint64_t v, size_t n)
{
    uint8_t t[8];
    for (size_t i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    sy_buf_add(b, t, n);
}

void sy_buf_put_varint(struct sy_buf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    while (v >= 0x80) {
        t[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    t[n++] = (uint8_t)v;
    sy_buf_add(b, t, n);
}

/* len bytes + NUL; -1 when an identifier holds a NUL (it could not be NUL-terminated faithfully). */
int sy_buf_put_text(struct sy_buf *b, const char *s, size_t len, bool ident)
{
    if (len > 0 && s == NULL)
        return -1;
    if (ident && len > 0 && memchr(s, 0, len) != NULL)
        return -1;
    sy_buf_put_varint(b, len);
    sy_buf_add(b, s, len);
    put_u8(b, 0);
    return 0;
}

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static int put_value(struct sy_buf *b, const struct sy_value *v)
{
    put_u8(b, (uint8_t)v->type);
    switch (v->type) {
    case SY_VAL_NULL:
        return 0;
    case SY_VAL_INT:
        sy_buf_put_varint(b, ((uint64_t)v->i << 1) ^ (v->i < 0 ? UINT64_MAX : 0)); /* zigzag */
        return 0;
    case SY_VAL_UINT:
        sy_buf_put_varint(b, v->u);
        return 0;
    case SY_VAL_FLOAT:
    case SY_VAL_DOUBLE:
        sy_buf_put_le(b, double_bits(v->d), 8);
        return 0;
    case SY_VAL_DECIMAL:
    case SY_VAL_STRING:
    case SY_VAL_BLOB:
    case SY_VAL_TEMPORAL:
    case SY_VAL_DOCUMENT:
    case SY_VAL_PATCH:
        if (v->len > 0 && v->p == NULL)
            return -1;
        sy_buf_put_varint(b, v->len);
        sy_buf_add(b, v->p, v->len);
        sy_buf_put_le(b, v->charset, 2);
        return 0;
    }
    return -1;
}

static int put_values(struct sy_buf *b, const struct sy_value *vals, uint32_t n)
{
    if (vals == NULL)
        return -1;
    for (uint32_t i = 0; i < n; i++)
        if (put_value(b, &vals[i]) != 0)
            return -1;
    return 0;
}

static int encode_table(const struct sy_change_table *t, struct sy_buf *out)
{
    if (t->n_columns == 0 || t->n_columns > SY_CHANGE_MAX_COLUMNS || t->columns == NULL)
        return -1;
    sy_buf_put_varint(out, t->table_id);
    if (sy_buf_put_text(out, t->db, t->db_len, true) != 0 || sy_buf_put_text(out, t->table, t->table_len, true) != 0)
        return -1;
    sy_buf_put_varint(out, t->n_columns);
    for (uint32_t i = 0; i < t->n_columns; i++) {
        const struct sy_column *c = &t->columns[i];
        if (sy_buf_put_text(out, c->name, c->name_len, true) != 0)
            return -1;
        put_u8(out, c->source_type);
        put_u8(out, c->flags);
        sy_buf_put_le(out, c->charset, 2);
    }
    return 0;
}

static int encode_row(const struct sy_change_row *r, struct sy_buf *out)
{
    if (r->n_columns == 0 || r->n_columns > SY_CHANGE_MAX_COLUMNS)
        return -1;
    if (r->op != SY_ROW_INSERT && r->op != SY_ROW_UPDATE && r->op != SY_ROW_DELETE)
        return -1;
    sy_buf_put_varint(out, r->table_id);
    put_u8(out, (uint8_t)r->op);
    sy_buf_put_varint(out, r->n_columns);
    if (r->op != SY_ROW_INSERT && put_values(out, r->before, r->n_columns) != 0)
        return -1;
    if (r->op != SY_ROW_DELETE && put_values(out, r->after, r->n_columns) != 0)
        return -1;
    return 0;
}

static int encode_ddl(const struct sy_change_ddl *d, struct sy_buf *out)
{
    if (sy_buf_put_text(out, d->db, d->db_len, true) != 0 || sy_buf_put_text(out, d->sql, d->sql_len, false) != 0)
        return -1;
    if (d->context_len > 0 && d->context == NULL)
        return -1;
    sy_buf_put_varint(out, d->context_len);
    if (d->context_len > 0)
        sy_buf_add(out, d->context, d->context_len);
    return 0;
}

int sy_change_encode(const struct sy_change *c, struct sy_buf *out)
{
    sy_buf_reset(out);
    put_u8(out, c->kind == SY_CHANGE_DDL ? CHANGE_FORMAT_VERSION : CHANGE_FORMAT_V1);
    put_u8(out, (uint8_t)c->kind);
    sy_buf_put_varint(out, c->source_time_ms);
    if (sy_buf_put_text(out, c->position, c->position_len, false) != 0)
        return -1;
    int rc;
    switch (c->kind) {
    case SY_CHANGE_TXN_BEGIN:
    case SY_CHANGE_TXN_COMMIT:
    case SY_CHANGE_POSITION:
        rc = 0;
        break;
    case SY_CHANGE_TABLE:
        rc = encode_table(&c->u.table, out);
        break;
    case SY_CHANGE_ROW:
        rc = encode_row(&c->u.row, out);
        break;
    case SY_CHANGE_DDL:
        rc = encode_ddl(&c->u.ddl, out);
        break;
    default:
        rc = -1;
        break;
    }
    return rc != 0 || out->oom ? -1 : 0;
}

/* ---- decoding ---- */

void sy_change_scratch_init(struct sy_change_scratch *s)
{
    s->columns = NULL;
    s->cap_columns = 0;
    s->values = NULL;
    s->cap_values = 0;
}

void sy_change_scratch_fini(struct sy_change_scratch *s)
{
    free(s->columns);
    free(s->values);
    sy_change_scratch_init(s);
}

/* Callers cap n (SY_CHANGE_MAX_COLUMNS, x2 for values) before calling: these never see a raw count. */
static bool scratch_columns(struct sy_change_scratch *s, size_t n)
{
    if (n <= s->cap_columns)
        return true;
    struct sy_column *p = realloc(s->columns, n * sizeof *p);
    if (p == NULL)
        return false;
    s->columns = p;
    s->cap_columns = n;
    return true;
}

static bool scratch_values(struct sy_change_scratch *s, size_t n)
{
    if (n <= s->cap_values)
        return true;
    struct sy_value *p = realloc(s->values, n * sizeof *p);
    if (p == NULL)
        return false;
    s->values = p;
    s->cap_values = n;
    return true;
}

/* LEB128 as the encoder writes it: at most 10 bytes, no bits beyond 64, no needless trailing zero
 * group (so every value has one encoding and a decoded record re-encodes to the same bytes). */
uint64_t sy_change_read_varint(struct sy_rd *r)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        uint8_t b = sy_rd_u8(r);
        if (r->bad)
            return 0;
        if (shift == 63 && b > 1) {
            r->bad = true;
            return 0;
        }
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            if (b == 0 && shift > 0) { /* overlong: "80 00" for 0 */
                r->bad = true;
                return 0;
            }
            return v;
        }
    }
    r->bad = true;
    return 0;
}

/* A count that must fit the remaining bytes at min_bytes each, and max. */
static uint32_t rd_count(struct sy_rd *r, uint32_t max, size_t min_bytes)
{
    uint64_t n = sy_change_read_varint(r);
    if (r->bad || n == 0 || n > max || n > sy_rd_left(r) / min_bytes) {
        r->bad = true;
        return 0;
    }
    return (uint32_t)n;
}

const char *sy_change_read_text(struct sy_rd *r, size_t *len_out, bool ident)
{
    uint64_t len = sy_change_read_varint(r);
    if (r->bad || len >= sy_rd_left(r)) { /* room for the NUL too */
        r->bad = true;
        return NULL;
    }
    const uint8_t *s = sy_rd_take(r, (size_t)len + 1);
    if (s[len] != 0 || (ident && memchr(s, 0, (size_t)len) != NULL)) {
        r->bad = true;
        return NULL;
    }
    *len_out = (size_t)len;
    return (const char *)s;
}

static void rd_value(struct sy_rd *r, struct sy_value *v)
{
    memset(v, 0, sizeof *v);
    uint8_t type = sy_rd_u8(r);
    if (r->bad)
        return;
    switch (type) {
    case SY_VAL_NULL:
        break;
    case SY_VAL_INT: {
        uint64_t z = sy_change_read_varint(r);
        v->i = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
        break;
    }
    case SY_VAL_UINT:
        v->u = sy_change_read_varint(r);
        break;
    case SY_VAL_FLOAT:
    case SY_VAL_DOUBLE: {
        uint64_t bits = sy_rd_uNle(r, 8);
        memcpy(&v->d, &bits, sizeof v->d);
        break;
    }
    case SY_VAL_DECIMAL:
    case SY_VAL_STRING:
    case SY_VAL_BLOB:
    case SY_VAL_TEMPORAL:
    case SY_VAL_DOCUMENT:
    case SY_VAL_PATCH: {
        uint64_t len = sy_change_read_varint(r);
        if (r->bad || len > sy_rd_left(r)) {
            r->bad = true;
            return;
        }
        v->p = sy_rd_take(r, (size_t)len);
        v->len = (size_t)len;
        v->charset = sy_rd_u16le(r);
        break;
    }
    default:
        r->bad = true;
        return;
    }
    v->type = (enum sy_value_type)type;
}

static void decode_table(struct sy_rd *r, struct sy_change_scratch *s, struct sy_change_table *t)
{
    t->table_id = sy_change_read_varint(r);
    t->db = sy_change_read_text(r, &t->db_len, true);
    t->table = sy_change_read_text(r, &t->table_len, true);
    t->n_columns = rd_count(r, SY_CHANGE_MAX_COLUMNS, COLUMN_MIN_BYTES);
    if (r->bad)
        return;
    if (!scratch_columns(s, t->n_columns)) {
        r->bad = true;  /* out of memory: reported as BAD, see sy_change_decode */
        return;
    }
    for (uint32_t i = 0; i < t->n_columns && !r->bad; i++) {
        struct sy_column *c = &s->columns[i];
        c->name = sy_change_read_text(r, &c->name_len, true);
        c->source_type = sy_rd_u8(r);
        c->flags = sy_rd_u8(r);
        c->charset = sy_rd_u16le(r);
    }
    t->columns = s->columns;
}

static void decode_row(struct sy_rd *r, struct sy_change_scratch *s, struct sy_change_row *w)
{
    w->table_id = sy_change_read_varint(r);
    uint8_t op = sy_rd_u8(r);
    if (op != SY_ROW_INSERT && op != SY_ROW_UPDATE && op != SY_ROW_DELETE) {
        r->bad = true;
        return;
    }
    w->op = (enum sy_row_op)op;
    size_t images = op == SY_ROW_UPDATE ? 2 : 1;
    w->n_columns = rd_count(r, SY_CHANGE_MAX_COLUMNS, images * VALUE_MIN_BYTES);
    if (r->bad)
        return;
    size_t n = w->n_columns;
    if (!scratch_values(s, images * n)) {
        r->bad = true;
        return;
    }
    for (size_t i = 0; i < images * n && !r->bad; i++)
        rd_value(r, &s->values[i]);
    w->before = op == SY_ROW_INSERT ? NULL : s->values;
    w->after = op == SY_ROW_DELETE ? NULL : op == SY_ROW_UPDATE ? s->values + n : s->values;
}

static void decode_ddl(struct sy_rd *r, struct sy_change_ddl *d, uint8_t version)
{
    d->db = sy_change_read_text(r, &d->db_len, true);
    d->sql = sy_change_read_text(r, &d->sql_len, false);
    uint64_t len = version == CHANGE_FORMAT_V1 ? sy_rd_left(r) : sy_change_read_varint(r);
    if (r->bad || len > sy_rd_left(r)) {
        r->bad = true;
        return;
    }
    d->context_len = (size_t)len;
    d->context = sy_rd_take(r, d->context_len);
}

/* Never AGAIN: a spool record is whole, so a short one is BAD. Running out of memory for the scratch
 * (at most SY_CHANGE_MAX_COLUMNS columns or 2x that many values) is reported as BAD as well. */
enum sy_parse sy_change_decode(const uint8_t *p, size_t n, struct sy_change_scratch *s, struct sy_change *out)
{
    struct sy_rd r = sy_rd_make(p, n);
    memset(out, 0, sizeof *out);
    uint8_t version = sy_rd_u8(&r);
    if (version != CHANGE_FORMAT_VERSION && version != CHANGE_FORMAT_V1)
        return SY_PARSE_BAD;
    uint8_t kind = sy_rd_u8(&r);
    out->source_time_ms = sy_change_read_varint(&r);
    out->position = sy_change_read_text(&r, &out->position_len, false);
    if (r.bad)
        return SY_PARSE_BAD;
    switch (kind) {
    case SY_CHANGE_TXN_BEGIN:
    case SY_CHANGE_TXN_COMMIT:
    case SY_CHANGE_POSITION:
        break;
    case SY_CHANGE_TABLE:
        decode_table(&r, s, &out->u.table);
        break;
    case SY_CHANGE_ROW:
        decode_row(&r, s, &out->u.row);
        break;
    case SY_CHANGE_DDL:
        decode_ddl(&r, &out->u.ddl, version);
        break;
    default:
        return SY_PARSE_BAD;
    }
    if (r.bad || sy_rd_left(&r) != 0)
        return SY_PARSE_BAD;
    out->kind = (enum sy_change_kind)kind;
    return SY_PARSE_OK;
}

const char *sy_change_kind_name(enum sy_change_kind k)
{
    switch (k) {
    case SY_CHANGE_TXN_BEGIN:
        return "txn_begin";
    case SY_CHANGE_TABLE:
        return "table";
    case SY_CHANGE_ROW:
        return "row";
    case SY_CHANGE_DDL:
        return "ddl";
    case SY_CHANGE_TXN_COMMIT:
        return "txn_commit";
    case SY_CHANGE_POSITION:
        return "position";
    }
    return "unknown";
}
