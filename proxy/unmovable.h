/* The switch hooks of an engine whose sessions cannot move between sides yet (MongoDB, SQL Server): every
 * answer follows from each session's side, busy flag and identity, read through a table the engine gives.
 * The engine's proxy state must begin with a `const struct sy_unmovable_ops *` (these functions go straight
 * into its sy_proxy_protocol and find the table there). Nothing is warmed, no transaction is tracked, no
 * ack-ledger position is claimed; a forced switch closes every session, a flip those left on the old side. */
#ifndef SY_PROXY_UNMOVABLE_H
#define SY_PROXY_UNMOVABLE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/pair.h"

struct sy_unmovable_ops {
    const char *reason;                               /* "mongodb sessions cannot move yet" */
    void *(*first)(void *state);                      /* the first live session, in accept order */
    void *(*next)(void *session);                     /* safe to take before closing session */
    bool (*busy)(const void *session);                /* a request, login or connect in flight */
    enum sy_side (*side)(const void *session);        /* where its backend connection is */
    json_t *(*describe)(const void *session, const char *key); /* {id, user, peer, <key>: why} */
    void (*force_close)(void *session, const char *why);       /* closes it, counted forced_close */
};

void sy_unmovable_warm(void *state, enum sy_side to, bool old_side_alive);
void sy_unmovable_progress(void *state, enum sy_side to, struct sy_switch_progress *out);
json_t *sy_unmovable_failures(void *state);
size_t sy_unmovable_abort(void *state);
json_t *sy_unmovable_list(void *state);
size_t sy_unmovable_close_all(void *state);
void sy_unmovable_unwarm(void *state);
size_t sy_unmovable_flip(void *state, enum sy_side to);
void sy_unmovable_ledger(void *state, enum sy_side side, char *out, size_t outlen);

#endif
