/* Walking a comma-separated list ("a, b ,c"): the items without the spaces around them. Used for the
 * --objects filter of verify and for a client's session_track_system_variables list. */
#ifndef SY_COMMA_LIST_H
#define SY_COMMA_LIST_H

#include <stdbool.h>
#include <stddef.h>

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

#endif
