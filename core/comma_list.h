/* Walking a comma-separated list ("a, b ,c"): the items without the spaces around them. Used for the
 * --objects filter of verify (checked and matched here, for every engine) and for a client's
 * session_track_system_variables list. */
#ifndef SY_COMMA_LIST_H
#define SY_COMMA_LIST_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* The next item from *p: *item and *len (spaces trimmed); false at the end. Empty items are skipped. */
static inline bool sy_comma_next(const char **p, const char **item, size_t *len)
{
    const char *s = *p;
    for (;;) {
        while (*s == ' ' || *s == ',')
            s++;
        if (*s == '\0') {
            *p = s;
            return false;
        }
        const char *e = s;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > s && t[-1] == ' ')
            t--;
        *p = e;
        *item = s;
        *len = (size_t)(t - s);
        return true;
    }
}

/* Whether db.table passes verify's --objects filter ("db.table,db.*"); NULL passes everything. */
static inline bool sy_objects_filter_match(const char *filter, const char *db, const char *table)
{
    if (filter == NULL)
        return true;
    const char *walk = filter, *p;
    size_t n;
    while (sy_comma_next(&walk, &p, &n)) {
        const char *end = p + n;
        const char *dot = memchr(p, '.', n);
        if (dot && (size_t)(dot - p) == strlen(db) && strncmp(p, db, (size_t)(dot - p)) == 0) {
            size_t tl = (size_t)(end - dot - 1);
            if ((tl == 1 && dot[1] == '*') || (tl == strlen(table) && strncmp(dot + 1, table, tl) == 0))
                return true;
        }
    }
    return false;
}

/* Every entry of an --objects filter is db.table or db.* with non-empty parts. */
static inline bool sy_objects_filter_valid(const char *filter)
{
    const char *p = filter;
    size_t entries = 0;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *end = e;
        while (end > p && end[-1] == ' ')
            end--;
        const char *dot = memchr(p, '.', (size_t)(end - p));
        if (dot == NULL || dot == p || dot + 1 == end)
            return false;
        entries++;
        p = e;
    }
    return entries > 0;
}

#endif
