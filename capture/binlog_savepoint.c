/* Savepoint statements and the savepoints of a transaction (capture/binlog_savepoint.h). */
#include "capture/binlog_savepoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "capture/binlog_ddl.h"
#include "core/grow.h"

enum sy_savepoint_op sy_savepoint_parse(const char *sql, size_t len, char *name, size_t namelen)
{
    if (namelen > 0)
        name[0] = '\0';
    if (sql == NULL || namelen == 0)
        return SY_SAVEPOINT_NONE;
    const char *p = sql, *end = sql + len;
    char w[16];
    enum sy_savepoint_op op;
    p = sy_ddl_next_token(p, end, w, sizeof w);
    if (strcasecmp(w, "SAVEPOINT") == 0) {
        op = SY_SAVEPOINT_SET;
    } else if (strcasecmp(w, "ROLLBACK") == 0) {
        p = sy_ddl_next_token(p, end, w, sizeof w);
        if (strcasecmp(w, "WORK") == 0)
            p = sy_ddl_next_token(p, end, w, sizeof w);
        if (strcasecmp(w, "TO") != 0)
            return SY_SAVEPOINT_NONE;
        const char *after_to = p;
        p = sy_ddl_next_token(p, end, w, sizeof w);
        if (strcasecmp(w, "SAVEPOINT") != 0 || (p[-1] != 'T' && p[-1] != 't'))
            p = after_to; /* ROLLBACK TO name (`savepoint` quoted is a name) */
        op = SY_SAVEPOINT_ROLLBACK_TO;
    } else if (strcasecmp(w, "RELEASE") == 0) {
        p = sy_ddl_next_token(p, end, w, sizeof w);
        if (strcasecmp(w, "SAVEPOINT") != 0)
            return SY_SAVEPOINT_NONE;
        op = SY_SAVEPOINT_RELEASE;
    } else {
        return SY_SAVEPOINT_NONE;
    }
    sy_ddl_name(p, end, name, namelen);
    return name[0] != '\0' ? op : SY_SAVEPOINT_NONE;
}

void sy_savepoints_init(struct sy_savepoints *s)
{
    *s = (struct sy_savepoints){ 0 };
}

void sy_savepoints_fini(struct sy_savepoints *s)
{
    free(s->v);
    *s = (struct sy_savepoints){ 0 };
}

void sy_savepoints_clear(struct sy_savepoints *s)
{
    s->n = 0;
}

static size_t find(const struct sy_savepoints *s, const char *name)
{
    for (size_t i = s->n; i-- > 0;)
        if (strcasecmp(s->v[i].name, name) == 0)
            return i;
    return SIZE_MAX;
}

static void drop_at(struct sy_savepoints *s, size_t i)
{
    memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof s->v[0]);
    s->n--;
}

bool sy_savepoints_set(struct sy_savepoints *s, const char *name, uint64_t mark, uint64_t aux)
{
    size_t i = find(s, name);
    if (i != SIZE_MAX)
        drop_at(s, i);
    if (sy_grow((void **)&s->v, &s->cap, s->n + 1, sizeof *s->v, 8) != 0)
        return false;
    struct sy_savepoint *sp = &s->v[s->n++];
    snprintf(sp->name, sizeof sp->name, "%s", name);
    sp->mark = mark;
    sp->aux = aux;
    return true;
}

const struct sy_savepoint *sy_savepoints_rollback_to(struct sy_savepoints *s, const char *name)
{
    size_t i = find(s, name);
    if (i == SIZE_MAX)
        return NULL;
    s->n = i + 1;
    return &s->v[i];
}

void sy_savepoints_release(struct sy_savepoints *s, const char *name)
{
    size_t i = find(s, name);
    if (i != SIZE_MAX)
        s->n = i;
}
