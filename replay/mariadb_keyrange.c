/* Key-range conditions for chunked reads of a MariaDB table (replay/mariadb_keyrange.h): literals that
 * compare in index order per column kind, and the expanded OR/AND form MariaDB range-scans. */
#include "replay/mariadb_keyrange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/mariadb_client.h"


/* Up to this many ordinals an ENUM bound is written as an IN list (range-scanned); above it as
 * `e` > N, which compares right but reads the index from its start. */
#define ENUM_IN_MAX 256

void sy_keyrange_str(struct sy_buf *b, const char *s)
{
    sy_buf_add(b, s, strlen(s));
}

enum sy_key_kind sy_keyrange_kind_of(const char *data_type, bool has_charset)
{
    static const char *const numbers[] = { "tinyint", "smallint", "mediumint", "int", "bigint", "decimal",
                                           "year" };
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
        if (strcmp(data_type, numbers[i]) == 0)
            return SY_KEY_NUMBER;
    if (strcmp(data_type, "float") == 0 || strcmp(data_type, "double") == 0)
        return SY_KEY_FLOAT;
    if (strcmp(data_type, "enum") == 0)
        return SY_KEY_ENUM;
    if (strcmp(data_type, "set") == 0)
        return SY_KEY_SET;
    if (strcmp(data_type, "bit") == 0)
        return SY_KEY_BIT;
    return has_charset ? SY_KEY_TEXT : SY_KEY_BYTES;
}

unsigned sy_keyrange_enum_count(const char *column_type)
{
    if (strncmp(column_type, "enum(", 5) != 0)
        return 0;
    unsigned n = 0;
    bool in_quote = false;
    for (const char *p = column_type + 5; *p; p++) {
        if (in_quote) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '\'' && p[1] == '\'')
                p++;
            else if (*p == '\'')
                in_quote = false;
        } else if (*p == '\'') {
            in_quote = true;
            n++;
        } else if (*p == ')') {
            break;
        }
    }
    return n;
}

static bool is_ordinal(enum sy_key_kind k)
{
    return k == SY_KEY_ENUM || k == SY_KEY_SET || k == SY_KEY_BIT;
}

void sy_keyrange_readback(struct sy_buf *b, const struct sy_key_col *c)
{
    if (c->kind == SY_KEY_FLOAT) {
        sy_keyrange_str(b, "CAST(");
        sy_mariadb_add_ident(b, c->name);
        sy_keyrange_str(b, " AS DOUBLE)");
        return;
    }
    if (is_ordinal(c->kind))
        sy_keyrange_str(b, "(");
    sy_mariadb_add_ident(b, c->name);
    if (is_ordinal(c->kind))
        sy_keyrange_str(b, "+0)");
}

void sy_keyrange_order(struct sy_buf *b, const struct sy_key_col *cols, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            sy_keyrange_str(b, ",");
        sy_mariadb_add_ident(b, cols[i].name);
    }
}

static bool is_number(const char *s, unsigned long n)
{
    if (n == 0)
        return false;
    for (unsigned long i = 0; i < n; i++)
        if (s[i] == '\0' || !strchr("0123456789+-.eE", s[i]))
            return false;
    return true;
}

static bool is_unsigned(const char *s, unsigned long n, unsigned long long *out)
{
    if (n == 0 || n > 20)
        return false;
    unsigned long long v = 0;
    for (unsigned long i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* _binary X'...': a binary string whatever sql_mode says about backslashes. */
static void add_binary(struct sy_buf *b, const char *v, unsigned long n)
{
    static const char hex[] = "0123456789ABCDEF";
    sy_keyrange_str(b, "_binary X'");
    for (unsigned long i = 0; i < n && !b->oom; i++) {
        char h[2] = { hex[(unsigned char)v[i] >> 4], hex[(unsigned char)v[i] & 15] };
        sy_buf_add(b, h, 2);
    }
    sy_keyrange_str(b, "'");
}

static void add_literal(struct sy_buf *b, const struct sy_key_col *c, const char *v, unsigned long n)
{
    if (v == NULL) {
        sy_keyrange_str(b, "NULL");
        return;
    }
    switch (c->kind) {
    case SY_KEY_NUMBER:
    case SY_KEY_FLOAT:
    case SY_KEY_ENUM:
    case SY_KEY_SET:
    case SY_KEY_BIT:
        if (is_number(v, n))
            sy_buf_add(b, v, n);
        else
            add_binary(b, v, n);
        return;
    case SY_KEY_TEXT:
        sy_keyrange_str(b, "CONVERT(");
        add_binary(b, v, n);
        sy_keyrange_str(b, " USING ");
        sy_keyrange_str(b, c->charset ? c->charset : "binary");
        sy_keyrange_str(b, ")");
        if (c->collation) {
            sy_keyrange_str(b, " COLLATE ");
            sy_keyrange_str(b, c->collation);
        }
        return;
    case SY_KEY_BYTES:
        add_binary(b, v, n);
        return;
    }
}

/* An ENUM compared by ordinal as an IN list (or FALSE when no ordinal qualifies). false = not written:
 * the value is not an ordinal or the list would be too long. */
static bool add_enum_term(struct sy_buf *b, const struct sy_key_col *c, const char *v, unsigned long n,
                          const char *op)
{
    unsigned long long ord, lo, hi = c->enum_count;
    if (v == NULL || c->enum_count == 0 || !is_unsigned(v, n, &ord) || strcmp(op, "=") == 0)
        return false;
    if (strcmp(op, ">") == 0)
        lo = ord + 1;
    else if (strcmp(op, ">=") == 0)
        lo = ord;
    else if (strcmp(op, "<") == 0 || strcmp(op, "<=") == 0) {
        lo = 0; /* the error value '' sorts first */
        if (strcmp(op, "<") == 0 && ord == 0) {
            sy_keyrange_str(b, "FALSE");
            return true;
        }
        hi = strcmp(op, "<") == 0 ? ord - 1 : ord;
        if (hi > c->enum_count)
            hi = c->enum_count;
    } else {
        return false;
    }
    if (lo > hi) {
        sy_keyrange_str(b, "FALSE");
        return true;
    }
    if (hi - lo + 1 > ENUM_IN_MAX)
        return false;
    sy_mariadb_add_ident(b, c->name);
    sy_keyrange_str(b, " IN (");
    for (unsigned long long i = lo; i <= hi && !b->oom; i++) {
        char num[24];
        snprintf(num, sizeof num, "%s%llu", i > lo ? "," : "", i);
        sy_keyrange_str(b, num);
    }
    sy_keyrange_str(b, ")");
    return true;
}

/* `c` OP v */
static void add_term(struct sy_buf *b, const struct sy_key_col *c, const char *v, unsigned long n, const char *op)
{
    if (c->kind == SY_KEY_ENUM && add_enum_term(b, c, v, n, op))
        return;
    sy_mariadb_add_ident(b, c->name);
    sy_keyrange_str(b, op);
    add_literal(b, c, v, n);
}

void sy_keyrange_bound(struct sy_buf *b, const struct sy_key_col *cols, size_t n, const char *const *v,
                       const unsigned long *len, const char *op, const char *last_op)
{
    sy_keyrange_str(b, "(");
    for (size_t i = 0; i < n; i++) {
        sy_keyrange_str(b, i ? " OR (" : "(");
        for (size_t j = 0; j < i; j++) {
            add_term(b, &cols[j], v[j], len[j], "=");
            sy_keyrange_str(b, " AND ");
        }
        add_term(b, &cols[i], v[i], len[i], i + 1 == n ? last_op : op);
        sy_keyrange_str(b, ")");
    }
    sy_keyrange_str(b, ")");
}
