/* Switch hooks for engines whose sessions cannot move yet (proxy/unmovable.h). */
#include "proxy/unmovable.h"

#include <stdio.h>
#include <string.h>

static const struct sy_unmovable_ops *ops_of(void *state)
{
    return *(const struct sy_unmovable_ops *const *)state;
}

void sy_unmovable_warm(void *state, enum sy_side to, bool old_side_alive)
{
    /* No connection on the other side can carry a session yet: switch_progress counts them as failed. */
}

void sy_unmovable_progress(void *state, enum sy_side to, struct sy_switch_progress *out)
{
    const struct sy_unmovable_ops *o = ops_of(state);
    memset(out, 0, sizeof *out);
    for (void *s = o->first(state); s != NULL; s = o->next(s)) {
        out->sessions++;
        if (o->busy(s))
            out->busy++;
        if (o->side(s) != to)
            out->warm_failed++;
    }
}

static json_t *session_list(void *state, const char *key)
{
    const struct sy_unmovable_ops *o = ops_of(state);
    json_t *list = json_array();
    for (void *s = o->first(state); s != NULL; s = o->next(s))
        json_array_append_new(list, o->describe(s, key));
    return list;
}

json_t *sy_unmovable_failures(void *state)
{
    return session_list(state, "error");
}

size_t sy_unmovable_abort(void *state)
{
    return 0; /* transactions are not tracked yet */
}

json_t *sy_unmovable_list(void *state)
{
    return session_list(state, "reason");
}

static size_t close_sessions(void *state, bool only_other_side, enum sy_side side, const char *why)
{
    const struct sy_unmovable_ops *o = ops_of(state);
    size_t n = 0;
    void *s, *next;
    for (s = o->first(state); s != NULL; s = next) {
        next = o->next(s);
        if (only_other_side && o->side(s) == side)
            continue;
        o->force_close(s, why);
        n++;
    }
    return n;
}

size_t sy_unmovable_close_all(void *state)
{
    char why[200];
    snprintf(why, sizeof why, "closed by a forced switch: %s", ops_of(state)->reason);
    return close_sessions(state, false, SY_SIDE_BUSINESS, why);
}

void sy_unmovable_unwarm(void *state)
{
}

size_t sy_unmovable_flip(void *state, enum sy_side to)
{
    /* A session left on the old side would keep writing there: it ends instead. None moved. */
    char why[200];
    snprintf(why, sizeof why, "the active side changed and %s", ops_of(state)->reason);
    close_sessions(state, true, to, why);
    return 0;
}

void sy_unmovable_ledger(void *state, enum sy_side side, char *out, size_t outlen)
{
    if (outlen > 0)
        out[0] = '\0'; /* not tracked yet: no acknowledged position is claimed */
}
