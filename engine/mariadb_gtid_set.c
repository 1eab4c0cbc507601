/* GTID set arithmetic: parse, advance per domain, cover test, format. */
#include "engine/mariadb_gtid_set.h"

#include <stdio.h>
#include <string.h>

static bool parse_num(const char **p, const char *end, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = *p;
    if (s == end || *s < '0' || *s > '9')
        return false;
    while (s < end && *s >= '0' && *s <= '9') {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
        s++;
    }
    *p = s;
    *out = v;
    return true;
}

bool sy_gtid_parse(const char *s, size_t len, struct sy_gtid *out)
{
    const char *p = s, *end = s + len;
    uint64_t d, srv, seq;
    if (!parse_num(&p, end, UINT32_MAX, &d) || p == end || *p++ != '-' ||
        !parse_num(&p, end, UINT32_MAX, &srv) || p == end || *p++ != '-' ||
        !parse_num(&p, end, UINT64_MAX, &seq) || p != end)
        return false;
    out->domain = (uint32_t)d;
    out->server = (uint32_t)srv;
    out->seq = seq;
    return true;
}

bool sy_gtid_set_advance(struct sy_gtid_set *set, const struct sy_gtid *g)
{
    size_t i = 0;
    while (i < set->n && set->v[i].domain < g->domain)
        i++;
    if (i < set->n && set->v[i].domain == g->domain) {
        if (g->seq > set->v[i].seq)
            set->v[i] = *g;
        return true;
    }
    if (set->n == SY_GTID_SET_MAX)
        return false;
    memmove(&set->v[i + 1], &set->v[i], (set->n - i) * sizeof set->v[0]);
    set->v[i] = *g;
    set->n++;
    return true;
}

bool sy_gtid_set_parse(const char *s, size_t len, struct sy_gtid_set *out)
{
    out->n = 0;
    size_t start = 0;
    while (start < len) {
        while (start < len && (s[start] == ' ' || s[start] == '\n'))
            start++;
        size_t end = start;
        while (end < len && s[end] != ',')
            end++;
        size_t tail = end;
        while (tail > start && (s[tail - 1] == ' ' || s[tail - 1] == '\n'))
            tail--;
        struct sy_gtid g;
        if (!sy_gtid_parse(s + start, tail - start, &g) || !sy_gtid_set_advance(out, &g))
            return false;
        start = end + 1;
        if (end == len - 1) /* a trailing comma */
            return false;
    }
    return true;
}

bool sy_gtid_set_covers(const struct sy_gtid_set *outer, const struct sy_gtid_set *inner)
{
    for (size_t i = 0; i < inner->n; i++) {
        bool found = false;
        for (size_t j = 0; j < outer->n; j++)
            if (outer->v[j].domain == inner->v[i].domain) {
                found = outer->v[j].seq >= inner->v[i].seq;
                break;
            }
        if (!found)
            return false;
    }
    return true;
}

void sy_gtid_set_format(const struct sy_gtid_set *set, char *buf, size_t len)
{
    size_t off = 0;
    if (len == 0)
        return;
    buf[0] = '\0';
    for (size_t i = 0; i < set->n && off < len; i++) {
        int n = snprintf(buf + off, len - off, "%s%u-%u-%llu", i ? "," : "", set->v[i].domain, set->v[i].server,
                         (unsigned long long)set->v[i].seq);
        if (n < 0)
            return;
        off += (size_t)n;
    }
}
