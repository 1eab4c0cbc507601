/* A pair at run time: one business DB + one DR DB of one engine and the proxy listener in front.
 * Owns the active side and the epoch (persisted before anyone acts on a change), the hold state
 * (bounded by max_hold_ms), and the engine's proxy through the sy_proxy_protocol vtable. */
#ifndef SY_PAIR_H
#define SY_PAIR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "core/commit_wait.h"
#include "core/config.h"
#include "core/parse.h"

enum sy_side { SY_SIDE_BUSINESS, SY_SIDE_DR };

struct sy_pair;
struct sy_instance;
struct sy_engine_ops;
struct sy_loop_pool;

/* Where the sessions stand during a switch (core/switch.c polls it). */
struct sy_switch_progress {
    size_t sessions;        /* open client sessions */
    size_t in_transaction;  /* inside a transaction */
    size_t busy;            /* a request, login or internal query in flight */
    size_t reading;         /* an autocommit read in flight (not waited for: it ends on the old side) */
    size_t not_ready;       /* logged in, but no ready connection on the target side yet */
    size_t warm_failed;     /* a connection on the target side could not be prepared */
    size_t state_pending;   /* prepared, but state that can only be copied while the pair is held and the
                               session quiet (MariaDB: user variables) not copied yet */
};

/* What an engine's proxy offers the core. Implemented once per engine in proxy/. */
struct sy_proxy_protocol {
    enum sy_engine engine;
    /* Opens the listener; returns the engine's state or NULL with err filled. */
    void *(*start)(struct sy_pair *pair, char *err, size_t errlen);
    /* Closes the listener and every session. NULL-safe. */
    void (*stop)(void *state);
    /* Open client sessions. */
    size_t (*client_count)(void *state);
    /* One JSON object per session for `clients` (CONTRACT.md fields). */
    json_t *(*clients_json)(void *state);
    /* The pair's hold state changed: on release, held sessions resume in arrival order. */
    void (*hold_changed)(void *state, bool held);

    /* ---- switches (core/switch.c); all on the loop thread ---- */
    /* Prepares, for every logged-in session, a connection on `to` with the session's state (again for
     * sessions whose state changed; user variables once the pair is held and the session quiet, read
     * from the old side unless old_side_alive is false). Asynchronous: poll switch_progress. */
    void (*switch_warm)(void *state, enum sy_side to, bool old_side_alive);
    void (*switch_progress)(void *state, enum sy_side to, struct sy_switch_progress *out);
    json_t *(*switch_failures)(void *state);      /* [{id, user, error}] of sessions that cannot be prepared */
    size_t (*switch_abort_transactions)(void *state); /* rolls open transactions back; how many */
    json_t *(*switch_unmovable)(void *state);     /* [{id, user, peer, reason}] */
    size_t (*switch_close_unmovable)(void *state);/* --force: closes them with a named error; how many */
    void (*switch_unwarm)(void *state);           /* a switch rolled back: drops the prepared connections */
    size_t (*switch_flip)(void *state, enum sy_side to); /* after active_side changed: swaps; sessions moved */
    /* The ack ledger of a side: highest position acknowledged to any client there ("" = none). */
    void (*ack_ledger)(void *state, enum sy_side side, char *out, size_t outlen);
    /* Merges `other`, another node's ack ledger of the same side (as its ack_ledger wrote it), into `into`
     * (rewritten in place, at most intolen with the NUL): what the clients of either were told. Pure: any
     * thread (a cluster failover's tail, core/switch.c). NULL: the engine's ledgers claim no position. */
    void (*ack_ledger_merge)(char *into, size_t intolen, const char *other);
    /* Errors the proxy answered itself: {"reason": count, ...} (metrics). */
    json_t *(*client_errors)(void *state);
    /* A cluster node cut off from etcd (core/shared_epoch.c): every session whose request (or login) has
     * waited at least held_ms gets msg as an error and is closed; how many. NULL: the engine's held
     * sessions wait until etcd answers again. */
    size_t (*fail_held)(void *state, uint64_t held_ms, const char *msg);
};

#define SY_SWITCH_KINDS 3          /* switchover, switchback, failover */
#define SY_SWITCH_OUTCOMES 3       /* done, refused (nothing started), rolled_back (started, undone) */
#define SY_PAUSE_BUCKETS 12
#define SY_SWITCH_HISTORY 20       /* switches kept for `status` (switch_history), since the daemon started */
/* Switch counts for /metrics (core/switch.c counts, core/metrics.c prints); loop thread only. */
struct sy_switch_stats {
    uint64_t outcomes[SY_SWITCH_KINDS][SY_SWITCH_OUTCOMES];
    uint64_t pause_le[SY_SWITCH_KINDS][SY_PAUSE_BUCKETS]; /* done switches with pause <= bucket i (cumulative) */
    uint64_t pause_count[SY_SWITCH_KINDS];
    uint64_t pause_sum_ms[SY_SWITCH_KINDS];
};

/* A writer fenced by a newer cluster owner says so here (replay/mariadb_fence.h): set by the writer's thread,
 * read by the loop for status, cleared when this node takes the pair over again. */
struct sy_fence_report {
    _Atomic uint64_t lost_to_token;  /* the token the destination named (0: its checkpoint row was gone) */
    atomic_bool fenced;              /* set after lost_to_token */
};

struct sy_pair {
    const struct sy_pair_cfg *cfg;   /* ref: owned by the daemon's struct sy_config */
    const char *state_dir;           /* ref: the daemon's state_dir */
    struct event_base *base;         /* ref: the daemon's loop */
    struct sy_loop_pool *pool;       /* ref: the daemon's proxy_threads worker loops; NULL = the proxy runs on
                                        `base` (proxy_threads = 1, or an engine that uses none) */
    _Atomic enum sy_side active_side;/* which DB receives client traffic; written on the loop, read by the
                                        proxy's worker loops (atomic) */
    uint64_t epoch;                  /* bumped (and persisted first) on every change of active side */
    _Atomic bool held;               /* new requests outside transactions wait; written on the loop, read by
                                        the proxy's worker loops */
    uint64_t hold_started_ms;        /* monotonic, when held */
    struct event *hold_timer;        /* owned: releases after max_hold_ms */
    char listen_addr[300];           /* the address actually bound ("127.0.0.1:41234") */
    const struct sy_proxy_protocol *proto; /* ref: static vtable of the engine */
    void *proto_state;               /* owned through proto->stop */
    struct sy_instance *forward;     /* owned: NULL when the pair synchronizes nothing (no objects) */
    struct sy_instance *reverse;     /* owned: created by create-reverse */
    const struct sy_engine_ops *eng; /* ref: the engine's synchronization (NULL: none built) */
    /* fencing: the keeper thread keeps the passive side fenced (fence_passive) */
    pthread_mutex_t fence_lock;      /* held around every fencing change and the flip of active_side */
    pthread_t keeper;
    bool keeper_running;
    volatile int keeper_stop;
    int keeper_done;                 /* __atomic: the keeper thread returned (joining it cannot block) */
    volatile int switching;          /* a switch runs: the keeper leaves the sides alone */
    char fence_error[512];           /* last fencing error the keeper logged (logged once) */
    struct sy_switch *op;            /* the switch in progress (owned by core/switch.c), NULL when none */
    json_t *last_switch;             /* owned: result of the last switch (status) */
    struct sy_switch_stats switch_stats;
    json_t *switch_history;          /* owned: the last SY_SWITCH_HISTORY switches done or rolled back,
                                        newest first ({at, operation, outcome, pause_ms | error, steps...}) */
    /* failover: business transactions the forward collector had not spooled (persisted) */
    char tail_state[16];             /* "" none | "pending" (business not back) | "open" (reported, undecided) */
    json_t *tail;                    /* owned: what is known about the tail (persisted) */
    struct event *tail_timer;        /* owned by core/tail.c: looks for the business DB while "pending" */
    bool tail_job;                   /* a tail thread runs */
    struct sy_commit_wait commit_wait; /* positions held commits wait for, published by module threads */
    struct sy_shared_epoch *shared;  /* owned by the daemon: the cluster's epoch of this pair; NULL without
                                        [cluster] (then the persisted epoch alone decides) */
    struct sy_election *election;    /* owned by the daemon: who runs the instances; NULL without [cluster] or
                                        without objects (then no instance runs here) */
    struct sy_fence_report fence_report; /* this node's writers lost the pair to a newer owner */
    uint64_t owner_token;            /* with an election: this node's fencing token as owner (set before the
                                        takeover starts, read by it and by the instances' writers); 0 else */
    bool taking_over;                /* the owner's takeover (core/takeover.c) runs: instances not open yet */
    bool sync_open;                  /* with an election: this node opened the instances as their owner */
    bool sync_closing;               /* stepped down: the instances retire (core/daemon.c close_instances) */
    bool clustered;                  /* the daemon runs with [cluster] (whether or not this pair has an election) */
    unsigned tail_gen;               /* cluster: bumped when the failover tail changes (recorded or resolved) */
    unsigned tail_gen_recorded;      /* ... the last generation etcd has (core/cluster_tail.h) */
    bool tail_recording;             /* a put of it is in flight */
    uint64_t closing_since_ms;       /* sy_now_ms of that step-down */
    uint64_t closing_by;             /* sy_now_ms: its busy modules are cut then */
    int instance_users;              /* threads besides a switch's that use the instances (verify): they
                                        are not freed meanwhile (loop only) */
    bool reverse_later;              /* sync_open, but the reverse instance's takeover failed: retried alone
                                        (core/takeover.h reverse_only); create-reverse is refused meanwhile */
    bool reverse_taking_over;        /* that takeover runs (its thread writes the reverse instance's state) */
    bool reverse_writing;            /* a create-reverse (its thread clears business's checkpoint of an earlier
                                        one, then etcd records it) or a terminate of the reverse instance waits
                                        for an answer: another of them is refused meanwhile */
    bool terminating[2];             /* per direction (forward, reverse): a terminate waits for etcd; pause,
                                        start and switches are refused meanwhile (core/daemon.c) */
    char reverse_record[2048];       /* with an election: etcd's record of the reverse instance this node runs
                                        (its text; "": none known), compared by its terminate */
    char takeover_error[1280];       /* why the last takeover failed ("" none; retried): fits its 1200 */
    uint64_t takeover_failures;      /* takeovers failed in a row (the log collapses them) */
    uint64_t takeover_warned_ms;     /* monotonic: when the last "takeover failed" was logged */
    struct sy_cluster_switch *cswitch; /* owned by the daemon: one switch for every node; NULL without [cluster] */
    bool cut_off;                    /* held because etcd has not confirmed the cluster's epoch (at start) or did
                                        not answer for longer than the lease: the active side may have changed
                                        without this node (released once it answers). Written on the loop, read
                                        atomically by the fence keeper, which leaves the sides alone meanwhile */
};

/* Loads the persisted epoch/side (or creates epoch 1, business), starts the proxy.
 * proto NULL = the engine is not built: fails with "not_implemented: ...". */
int sy_pair_start(struct sy_pair *p, const struct sy_pair_cfg *cfg, const struct sy_proxy_protocol *proto,
                  const char *state_dir, struct event_base *base, struct sy_loop_pool *pool, char *err,
                  size_t errlen) SY_MUST_CHECK;
void sy_pair_stop(struct sy_pair *p);

/* Persists a new epoch with `to` active (write temp + fsync + rename) and only then changes the pair.
 * Caller holds fence_lock. */
int sy_pair_set_active(struct sy_pair *p, enum sy_side to, char *err, size_t errlen) SY_MUST_CHECK;
/* Applies an epoch decided elsewhere (the cluster's, core/shared_epoch.c): persisted first, then the pair;
 * when the side changed, sessions move (those not prepared on the new side get an error) and new backend
 * connections go to the new side (*moved, when not NULL: how many moved). Caller holds fence_lock; loop
 * thread. */
int sy_pair_adopt(struct sy_pair *p, uint64_t epoch, enum sy_side side, size_t *moved, char *err,
                  size_t errlen) SY_MUST_CHECK;
/* Persists the failover tail state (with the epoch file). */
int sy_pair_save(struct sy_pair *p, char *err, size_t errlen) SY_MUST_CHECK;
/* A hold for a switch: like sy_pair_hold but bounded by the switch itself, not the pair's timer. */
void sy_pair_hold_for_switch(struct sy_pair *p);

/* The endpoint of the side that receives traffic now. */
const struct sy_endpoint *sy_pair_active_endpoint(const struct sy_pair *p);
const char *sy_side_name(enum sy_side s);

/* Manual hold (CONTRACT `hold`/`release`); a hold never outlasts cfg->max_hold_ms. */
void sy_pair_hold(struct sy_pair *p);
void sy_pair_release(struct sy_pair *p, const char *why);

/* The pair's entry of `status`. */
json_t *sy_pair_status_json(const struct sy_pair *p);

/* Monotonic milliseconds. */
uint64_t sy_now_ms(void);

#endif
