/* What an engine offers the core besides its proxy (core/pair.h's sy_proxy_protocol): three tables,
 * one per concern, so that an engine can be built a part at a time and a reader sees which calls a
 * step depends on. Positions are opaque strings (MariaDB: a GTID set; MongoDB: an oplog timestamp)
 * that only the engine's position ops read or compare; the core stores, persists and shows them.
 * Every call here blocks (a client library talks to a database): module threads, the switch thread
 * and admin job threads make them, never the loop. Engines put their tables together in
 * engine/<engine>_engine.c. */
#ifndef SY_ENGINE_H
#define SY_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/config.h"
#include "core/instance.h"

/* Where a new owner of an instance resumes (core/takeover.c): the destination's checkpoint, not the spool
 * (a cache of the source's log that the old owner kept on its own disk). */
struct sy_takeover_point {
    uint64_t owner_token;     /* in: the new owner's fencing token, written into the destination's
                                 checkpoint before anything is read (an older writer commits nothing after) */
    bool found;               /* the destination holds a checkpoint for the instance */
    uint64_t spool_seq;       /* its low-watermark: the new spool continues at spool_seq + 1 */
    char position[1024];      /* the source position after it: collection starts there */
    char until[1024];         /* a source position, or SY_UNTIL_FIRST_CHANGE: changes up to it may
                                 already be on the destination (applied above the watermark): replayed
                                 idempotently */
};

/* sy_takeover_point.until (and the instance's overwrite_until): the writer reads the source's position
 * before it applies its first change. Any position read after the new owner's token claim bounds what an
 * older owner applied; the source may be down during the takeover (nothing to apply then anyway). */
#define SY_UNTIL_FIRST_CHANGE "(source position at the first change)"

/* Synchronization: the instance's modules and the checks around them. */
struct sy_sync_ops {
    const struct sy_module_ops *initial_sync;   /* NULL: none */
    const struct sy_module_ops *collection;
    const struct sy_module_ops *write;
    /* Runs the precheck (a worker thread); fills checks (JSON array of {name, status: pass|fail|warn,
     * detail, fix}). Returns 0 when nothing failed. */
    int (*precheck)(const struct sy_pair_cfg *cfg, enum sy_direction dir, json_t *checks);
    /* `verify` (a worker thread; the daemon has checked the objects filter's syntax, logs the start and
     * end and adds elapsed_ms): fills result; write_reached(arg, position, timeout_ms) says whether
     * the forward writer has applied a source position. 0; -1 (err) failed; -2 (err) bad objects
     * filter. NULL: not built for this engine. See replay/mariadb_verify.h. watch: the connections'
     * sockets are published there (sy_module_socket_watch): the daemon's stop shuts them down, which ends
     * a verify blocked on a server that stopped answering. */
    int (*verify)(const struct sy_pair_cfg *cfg, const struct sy_module_ctx *watch, const char *objects,
                  bool (*write_reached)(void *arg, const char *position, int timeout_ms), void *arg, json_t *result,
                  char *err, size_t errlen);
    /* A new owner takes the instance over (a worker thread): reads dest's checkpoint of instance_id and
     * src's current position into out, and forgets what on dest was tied to the old owner's spool (the
     * sequence numbers of transactions applied above the watermark). 0, or -1 with err. NULL: not built —
     * the instance then starts from this node's own state. */
    int (*takeover)(const struct sy_pair_cfg *cfg, const char *instance_id, const struct sy_endpoint *src,
                    const struct sy_endpoint *dest, struct sy_takeover_point *out, char *err, size_t errlen);
    /* A new instance takes an id an earlier one had (create-reverse after a terminate; a worker thread,
     * before the new instance exists anywhere): dest forgets what the earlier one left there — else the new
     * writer, or a new owner's takeover, would resume from the old watermark and skip the new spool's first
     * records. The checkpoint is reset (record 0, no position: what writers and takeovers read as no
     * history), not deleted: its owner token stays, at least owner_token, and still fences an older
     * owner's writer. Fenced: what names an owner token above owner_token (a newer owner) is left and -2
     * returned. 0, -1 or -2 with err. NULL: the engine keeps nothing per instance on the destination. */
    int (*forget)(const struct sy_pair_cfg *cfg, const char *instance_id, const struct sy_endpoint *dest,
                  uint64_t owner_token, char *err, size_t errlen);
};

/* forget's -2 text: dest's checkpoint of instance_id names owner token held, above mine (core/takeover.c). */
void sy_forget_newer_owner(char *err, size_t errlen, const struct sy_endpoint *dest, const char *instance_id,
                           uint64_t held, uint64_t mine);

/* Positions in a source's log. */
struct sy_position_ops {
    /* The source's current position (MariaDB: @@gtid_binlog_pos): where a reverse instance starts
     * collecting when it is created, and what a switch's catch-up step compares with. 0, or -1. */
    int (*current)(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out, size_t outlen, char *err,
                   size_t errlen);
    /* Whether position `have` includes every transaction of `want` (same source). false when either
     * cannot be read. */
    bool (*covers)(const char *have, const char *want);
    /* The current position for lag (core/lag.h), over a connection kept in *handle between calls. */
    int (*poll)(void **handle, const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out, size_t outlen,
                char *err, size_t errlen);
    void (*poll_close)(void *handle);
    /* The transactions between two positions of the same source (a failover's unreplicated tail): how
     * many, and how many of them at or below `ledger` (acknowledged to clients); ranges: a JSON array
     * describing them. 0, or -1. NULL: positions alone cannot tell (oplog timestamps): the core counts
     * the transactions tail_read lists instead, with `covers` against the ledger. */
    int (*tail_count)(const char *collected, const char *now, const char *ledger, uint64_t *transactions,
                      uint64_t *acknowledged, json_t *ranges);
};

/* Fencing and failover. */
struct sy_failover_ops {
    /* Fencing a side (MariaDB: read_only). on: returns once commits in flight are done (at most
     * wait_ms) and fills pos (may be NULL) with the side's position after them. 0, or -1. NULL: the
     * engine's servers cannot be fenced (no switchover: a flip without a fence could lose writes). */
    int (*fence)(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, bool on, int wait_ms, char *pos,
                 size_t poslen, char *err, size_t errlen);
    /* Non-NULL: the engine's servers cannot be kept fenced while passive (fence_passive), and why; such
     * pairs default to fence_passive = off and refuse it on (tools/switchyardd.c). */
    const char *passive_fence_refused;
    /* Whether ep answers within about timeout_ms (failover is refused while the business DB does). */
    bool (*alive)(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, int timeout_ms);
    /* The tail's transactions with their changes, into out: {"transactions": [{"position": the
     * transaction's position (what the ack ledger is compared with), "tables": [names], "rows": [{"table",
     * "op", "key"}], ...engine fields}], "tables": [...], "rows": count}; the same object goes to
     * tail_revert and, on export, to the file (MariaDB: capture/mariadb_tail.h). collector_dir: the forward
     * instance's state directory, where its collector may have left what it took near from_position (MongoDB:
     * capture/mongo_taken.h). NULL: not built. */
    int (*tail_read)(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, const char *from_position,
                     const char *collector_dir, json_t *out, char *err, size_t errlen);
    /* Undoes a tail read by tail_read on ep, newest first (replay/mariadb_tail_revert.h). */
    int (*tail_revert)(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, const json_t *tail,
                       json_t *result, char *err, size_t errlen);
};

/* One engine. A part left NULL is not built yet: the commands that need it answer not_implemented
 * (the daemon asks the sy_engine_can_* checks below before calling anything). */
struct sy_engine_ops {
    enum sy_engine engine;
    const struct sy_sync_ops *sync;
    const struct sy_position_ops *position;
    const struct sy_failover_ops *failover;
    /* Process-wide set-up of the engine's client library, before any thread uses it, and its end
     * after every thread stopped. NULL: nothing to do. */
    void (*library_init)(void);
    void (*library_end)(void);
};

/* What the core needs for instances (forward, reverse, precheck, create-reverse, lag): the modules,
 * the precheck and reading/comparing positions. The daemon treats an engine without them as having no
 * synchronization at all. */
static inline bool sy_engine_can_sync(const struct sy_engine_ops *e)
{
    return e != NULL && e->sync != NULL && e->sync->collection != NULL && e->sync->write != NULL &&
           e->sync->precheck != NULL && e->position != NULL && e->position->current != NULL &&
           e->position->covers != NULL;
}

/* What a switchover, switchback or failover needs besides synchronization. */
static inline bool sy_engine_can_switch(const struct sy_engine_ops *e)
{
    return sy_engine_can_sync(e) && e->failover != NULL && e->failover->fence != NULL && e->failover->alive != NULL;
}

/* A failover's tail: found once the business DB is back (counted), and resolved (reverted). */
static inline bool sy_engine_can_count_tail(const struct sy_engine_ops *e)
{
    return sy_engine_can_switch(e) && (e->position->tail_count != NULL || e->failover->tail_read != NULL);
}

static inline bool sy_engine_can_resolve_tail(const struct sy_engine_ops *e)
{
    return sy_engine_can_count_tail(e) && e->failover->tail_revert != NULL;
}

#endif
