/* A synchronization instance: one direction of a pair (forward business -> dr, or reverse) with its
 * modules — Initial Synchronization (forward only), Incremental Data Collection (source log -> spool)
 * and Incremental Write (spool -> destination). Engines supply the modules through vtables; the core
 * owns the state machine, its persistence (state_dir/instances/<pair>.<direction>.json), the spool,
 * the retry window and the admin commands (pause, start, terminate, status fields).
 *
 * Modules run in their own threads (the engines' client libraries block) and report through a
 * mutex-protected struct sy_module_report; the loop polls the reports every 200 ms and decides
 * state changes here, in one place. Stopping a module never blocks the loop: the instance is
 * `stopping` until every thread asked to stop said it is done (then joined at once); a thread
 * still busy after a grace period has its database sockets shut down (sy_module_socket_watch). */
#ifndef SY_INSTANCE_H
#define SY_INSTANCE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/config.h"
#include "core/pair.h"
#include "core/spool.h"

enum sy_direction { SY_DIR_FORWARD, SY_DIR_REVERSE };

enum sy_instance_state {
    SY_INST_PRECHECKING,
    SY_INST_PRECHECK_FAILED,
    SY_INST_INITIAL_SYNC,
    SY_INST_COLLECTING,
    SY_INST_RUNNING,
    SY_INST_PAUSED,
    SY_INST_RETRYING,
    SY_INST_FAILED,
    SY_INST_TERMINATED,
    SY_INST_STOPPING,  /* module threads asked to stop are not done yet; then the target state (never
                          persisted: the state file holds the target) */
};

/* STOPPING: shown for a module whose thread was asked to stop and has not returned yet (never reported
 * by a module itself). */
enum sy_module_state { SY_MOD_STOPPED, SY_MOD_RUNNING, SY_MOD_PAUSED, SY_MOD_RETRYING, SY_MOD_FAILED,
                       SY_MOD_STOPPING };

/* What a module thread tells the loop. Written by the module under `lock`, read by the loop. */
struct sy_module_report {
    pthread_mutex_t lock;
    enum sy_module_state state;  /* RUNNING, RETRYING (a database or the spool cannot be used), FAILED */
    char position[1024];         /* collector: source position collected; writer: applied */
    uint64_t spool_seq;          /* collector: last appended; writer: last applied (checkpoint) */
    uint64_t events;             /* collector: events read; writer: rows applied (monotonic counters) */
    uint64_t conflicts;          /* writer: changes that did not fit and were overwritten / ignored
                                    (on_conflict = overwrite; monotonic) */
    uint64_t source_time_ms;     /* source timestamp of the last event handled (wall clock, ms) */
    uint64_t late_events;        /* collector: entries that landed in the log behind a newer one (MongoDB's
                                    oplog on FerretDB), taken late; late_max_ms: the latest of them */
    uint64_t late_max_ms;
    int64_t lag_ms;              /* -1 = unknown */
    uint64_t lag_events;
    uint64_t done_rows, total_rows; /* initial sync progress */
    bool initial_sync_done;      /* initial sync module: finished; start position is in `position` */
    char reason[64];             /* snake_case: why RETRYING/FAILED ("spool_full", "dr_unreachable") */
    char error[1024];            /* human text for last_error */
    uint64_t retry_since_ms;     /* monotonic: when the current RETRYING began (0 = not retrying) */
    char until[1024];            /* writer: the end of a takeover's idempotent replay, read from the source
                                    at its first change (SY_UNTIL_FIRST_CHANGE resolved; "" nothing to
                                    replay); valid while until_read */
    bool until_read;             /* writer: set with until; the loop takes it (persists or clears the
                                    instance's overwrite_until) and resets it */
};

void sy_module_report_init(struct sy_module_report *r);
void sy_module_report_fini(struct sy_module_report *r);
/* Helpers modules call from their threads. */
void sy_module_report_running(struct sy_module_report *r);
void sy_module_report_retrying(struct sy_module_report *r, const char *reason, const char *fmt, ...)
    SY_PRINTF(3, 4);
void sy_module_report_failed(struct sy_module_report *r, const char *reason, const char *fmt, ...) SY_PRINTF(3, 4);
/* Initial synchronization: rows copied so far of about total_rows; then done, with the source position
 * the collection starts from. */
void sy_module_report_progress(struct sy_module_report *r, uint64_t done_rows, uint64_t total_rows);
void sy_module_report_sync_done(struct sy_module_report *r, const char *position);

struct sy_instance;
struct sy_module_sockets;
struct sy_fence_report;

/* Everything a module needs to run; owned by the instance, valid while the module runs. */
struct sy_module_ctx {
    const struct sy_pair_cfg *cfg;     /* ref: the pair's config */
    const char *instance_id;           /* "orders/forward" */
    enum sy_direction direction;
    const struct sy_endpoint *source;  /* ref: business for forward */
    const struct sy_endpoint *dest;    /* ref */
    const char *state_dir;             /* instance's own dir: state_dir/instances/<pair>.<direction>/ */
    const char *overwrite_until;       /* write: "" or a source position; changes up to it may already be on
                                          the destination (a takeover): conflicts there are overwritten,
                                          strict apply (on_conflict) after it. The loop changes it (cleared
                                          once the writer applied past it) under report->lock: read it
                                          locked */
    uint64_t owner_token;              /* write: the cluster owner's fencing token (the owner key's
                                          create_revision), 0 without a cluster: a destination that names
                                          a higher one fences the writer (replay/mariadb_fence.h) */
    const char *start_position;        /* collection: where to start when the spool has no position yet
                                          (the initial sync's snapshot position) */
    bool takeover_replay;              /* set at each start of the module: a takeover's idempotent replay
                                          has not ended (overwrite_until set) and the instance writes (its
                                          destination is passive). Collection may then catch up on what the
                                          old owner may have missed (capture/mongo_collector.c) */
    struct sy_spool *spool;            /* ref: owned by the instance */
    struct sy_module_report *report;   /* ref: this module's report */
    volatile int *stop;                /* set to 1 by the loop: the thread returns soon */
    struct sy_module_sockets *sockets; /* ref: the sockets a stop may shut down (sy_module_socket_watch) */
    struct sy_commit_wait *commit_wait; /* ref: the pair's; collection publishes its durable spool position
                                           there, write its checkpoint (sy_commit_wait_publish) */
    int source_side;                   /* enum sy_side the instance reads from (forward: business) */
    struct sy_fence_report *fence_report; /* ref: the pair's; a fenced writer says so there */
};

/* A module thread publishes each database socket it blocks on, right after connecting: a stop that
 * finds the thread still busy after a grace period (at once for a collection, whose reads are always
 * safe to cut) shuts the socket down, which wakes a call stuck in a client library (a lock wait, a
 * black-holed server) with an error; the thread then sees *stop and returns. The registry keeps a
 * duplicate descriptor of the socket, so the library closing or reusing its own descriptor can never
 * make the loop shut a stranger's. A socket published after its module was told to stop is shut at
 * once. Returns the slot to drop when the connection is closed (-1: not watched; the thread returns at
 * its next stop check). */
int sy_module_socket_watch(const struct sy_module_ctx *ctx, int fd);
void sy_module_socket_drop(const struct sy_module_ctx *ctx, int slot); /* slot -1: nothing */
/* Whether a stop already shut the module's sockets down (a connection made now would be shut at once). */
bool sy_module_sockets_shut(const struct sy_module_ctx *ctx);

/* A socket set outside any module, for threads that are not modules (an admin command's: `verify`), in a
 * ctx that has only cfg, instance_id and sockets: the same watch, drop and shut as a module's. The daemon
 * shuts it at its stop (sy_socket_set_shut: the number of sockets shut down); free only after every
 * thread that watches through it ended. */
struct sy_module_sockets *sy_socket_set_new(void);
size_t sy_socket_set_shut(struct sy_module_sockets *s);
void sy_socket_set_free(struct sy_module_sockets *s);

/* A module thread's retry wait: sleeps *backoff_ms in 50 ms steps (returning early once the module is told
 * to stop), then doubles *backoff_ms up to max_ms. */
void sy_module_backoff(const struct sy_module_ctx *ctx, int *backoff_ms, int max_ms);

/* A module = a thread body. run() returns when *ctx->stop is set or it FAILED for good. */
struct sy_module_ops {
    const char *name;    /* "collection", "write", "initial_sync" */
    void *(*run)(void *ctx); /* pthread start routine; arg is struct sy_module_ctx * */
};

/* Loads or creates the forward instance of a pair whose `objects` is set. NULL + err on a broken
 * state file (never silently starts over). */
struct sy_instance *sy_instance_open(struct sy_pair *pair, enum sy_direction dir,
                                     const struct sy_engine_ops *eng, char *err, size_t errlen);
void sy_instance_close(struct sy_instance *in); /* stops the threads (they resume at restart); NULL-safe */
/* The same with the threads' grace ending at deadline_ms (sy_now_ms clock) instead of 2 s from now: past it
 * their database connections are shut (an open transaction is rolled back by the server). */
void sy_instance_close_by(struct sy_instance *in, uint64_t deadline_ms);
/* Asks every module thread to stop and returns at once (a close follows): several instances stop together. */
void sy_instance_stop_asking(struct sy_instance *in);
/* A step-down, without blocking the loop: every module is asked to stop now, and one still busy at
 * deadline_ms (sy_now_ms clock) has its database connections shut; from now on nothing starts the
 * instance again (its commands answer owner_lost) and its state machine is stopped. done(arg, in) is called
 * on the loop once every thread returned; the owner then sy_instance_close()s it (which no longer waits).
 * A second call does nothing. */
void sy_instance_retire(struct sy_instance *in, uint64_t deadline_ms, void (*done)(void *arg, struct sy_instance *in),
                        void *arg);
/* Whether sy_instance_retire was called (any thread; false for NULL): waits on its write end. */
bool sy_instance_is_retiring(const struct sy_instance *in);
/* Whether a retiring instance's threads all returned (true for NULL). */
bool sy_instance_is_retired(const struct sy_instance *in);

/* The instance's state directory (state_dir/instances/<pair>.<direction>), whether it exists or not. */
void sy_instance_dir(const struct sy_pair *pair, enum sy_direction dir, char *out, size_t outlen);
/* What a forward collector may leave in the instance's directory at a clean stop for a failover's tail
 * (the engine's tail_read reads it from there; MongoDB: the set of ts taken near its position,
 * capture/mongo_taken.h). A cluster failover carries it in its tail record (core/cluster_tail.h). */
#define SY_INSTANCE_TAIL_FILE "mongo_taken.json"
/* Whether a reverse instance was created for this pair before (its state survives restarts). */
bool sy_instance_exists(const struct sy_pair *pair, enum sy_direction dir);
/* Creates the reverse instance after its precheck passed: incremental only, collecting from
 * start_position (the DR's position at creation), its write not started until `start`. Replaces
 * the state of a terminated one. created: which creation this is (kept in its state; "<node>@<unix ms>",
 * recorded in etcd too in a cluster). NULL + err on failure. */
struct sy_instance *sy_instance_create_reverse(struct sy_pair *pair, const struct sy_engine_ops *eng,
                                               const char *start_position, const char *created, char *err,
                                               size_t errlen);
/* Writes the state of a new reverse instance (replacing whatever this node had), not opened: what
 * create-reverse does, and what a takeover does from etcd's record on a node without that instance's state.
 * write: its write runs (DR is active), else it only collects. 0, or -1 with err. */
int sy_instance_reverse_make(const struct sy_pair *pair, const char *start_position, const char *created,
                             bool write, char *err, size_t errlen);
/* This node's reverse instance state, not opened: 1 with its creation (created, "" when made before it was
 * kept), its start position and whether it is terminated, 0 none, -2 err (its content cannot be read: not
 * JSON, an unknown state), -1 err (the file cannot be read: I/O, permissions, out of files). */
int sy_instance_reverse_created(const struct sy_pair *pair, char *created, size_t createdlen, char *start_position,
                                size_t startlen, bool *terminated, char *err, size_t errlen);
/* Before a new owner opens the instance (core/takeover.c; the instance is not open on this node): its
 * spool is emptied to continue at pt->spool_seq + 1, its collection starts at pt->position, conflicts up
 * to pt->until are overwritten, and it runs (write: its write module runs too, else it only collects).
 * held: what an operator left it in, kept in etcd (core/cluster_held.h): "paused" (prepared the same, but
 * paused), "terminated" (terminated here too), or "". pt NULL: the destination has no checkpoint: this
 * node's own state stays, only paused or terminated as held says. A terminated instance is left alone
 * (*skipped). 0, or -1 with err. */
struct sy_takeover_point;
int sy_instance_prepare_takeover(const struct sy_pair *pair, enum sy_direction dir, const struct sy_takeover_point *pt,
                                 bool write, const char *held, bool *skipped, char *err, size_t errlen);
/* Removes a terminated instance's state directory (spool included). */
int sy_instance_destroy(struct sy_instance *in, char *err, size_t errlen);
/* Whether the write module runs (or retries): for rule 4, start forward refused while reverse writes. */
bool sy_instance_writing(const struct sy_instance *in);

json_t *sy_instance_status_json(struct sy_instance *in);
const char *sy_instance_id(const struct sy_instance *in);
enum sy_direction sy_instance_direction(const struct sy_instance *in);

/* The write's lag over the last hour, one sample every SY_LAG_SAMPLE_S (the daemon's timer calls
 * sy_instance_sample_lag; loop thread): {"instance", "interval_s", "samples": [[unix_ms, lag_ms|null]...]},
 * null while the instance is not running. */
#define SY_LAG_SAMPLE_S 10
void sy_instance_sample_lag(struct sy_instance *in, uint64_t wall_ms);
json_t *sy_instance_lag_history_json(const struct sy_instance *in);
const struct sy_pair *sy_instance_pair(const struct sy_instance *in);
/* The snake_case reason of the current state ("" none); set_reason persists one (e.g. "failover" for
 * an instance a failover paused, so a restart can tell it from an operator's pause). */
const char *sy_instance_reason(const struct sy_instance *in);
/* Its last error ("" none). Loop thread only. */
const char *sy_instance_last_error(const struct sy_instance *in);
void sy_instance_set_reason(struct sy_instance *in, const char *reason);
enum sy_instance_state sy_instance_state(const struct sy_instance *in);

/* The write module's applied position (thread-safe: may be called from worker threads). "" when none. */
void sy_instance_write_position(struct sy_instance *in, char *out, size_t outlen);
/* Waits (worker threads) until the write's applied position covers `want`: true; false at deadline_ms
 * (monotonic) or once *abort is set (may be NULL; read atomically: another thread sets it). Polls
 * first_nap_ms apart, doubling up to max_nap_ms. */
bool sy_instance_write_reaches(struct sy_instance *in, const char *want, uint64_t deadline_ms, unsigned first_nap_ms,
                               unsigned max_nap_ms, int *abort);

/* Where the modules stand (thread-safe). */
struct sy_instance_progress {
    enum sy_instance_state state; /* SY_INST_STOPPING until every stop asked for is done */
    bool write_running;           /* the write module's thread runs (or is stopping, not joined yet) */
    enum sy_module_state write_state;
    bool failed_by_write;         /* state FAILED (or stopping into it) because the write module failed or
                                     spent its retry window (its report then says stopped) */
    uint64_t collected_seq;       /* last spool record the collection appended */
    uint64_t applied_seq;         /* last spool record the write applied (its checkpoint) */
    char collected[1024];         /* source position collected */
    char applied[1024];           /* source position applied (sy_instance_write_position) */
    char error[1024];             /* the write module's last error, "" none */
};
void sy_instance_progress(struct sy_instance *in, struct sy_instance_progress *out);

/* What a drain waits for the write to apply: the spool's last record while the collection may still add to
 * a transaction it is spooling; once it cannot (its module is not running, failed, or retrying because its
 * source does not answer), the last TXN_COMMIT/POSITION on disk — the records after it are a transaction the
 * source never finished sending (open_records), which no writer can apply. Reads the spool's tail once per
 * new end (cached in *t: zero it before the first call). 0, or -1 with err. */
struct sy_drain_target {
    uint64_t seq;            /* the write is drained once its applied seq reaches it */
    uint64_t open_records;   /* spooled after seq, never applicable */
    uint64_t cached_end;     /* the spool end the cached last complete record was read at (0 = none) */
    uint64_t cached_complete;
};
int sy_instance_drain_target(struct sy_instance *in, struct sy_drain_target *t, char *err, size_t errlen);

/* Switches: stop / start only the write module (collections keep running). stop: the instance
 * becomes `collecting` (persisted at once) once the write's thread is done — `stopping` until then:
 * wait for progress.state to leave SY_INST_STOPPING before anything that needs the write gone; start:
 * a collecting instance becomes `running`. 0, or -1 with code and message. */
int sy_instance_stop_write(struct sy_instance *in, const char **code, char *msg, size_t msglen);
int sy_instance_start_write(struct sy_instance *in, const char **code, char *msg, size_t msglen);

/* After a failover's tail is resolved: a paused instance's collection restarts at `position` (a
 * POSITION record in the spool: the writer's checkpoint moves past the tail without applying it),
 * state `collecting`. 0, or -1 with err. */
int sy_instance_skip_to(struct sy_instance *in, const char *position, char *err, size_t errlen);

/* Commands. 0 = done or begun; -1 with code (snake_case) and message. pause and terminate leave the
 * instance `stopping` while module threads finish (the target state is persisted at once; a restart
 * lands in it); sy_instance_when_settled tells when it is there. */
int sy_instance_pause(struct sy_instance *in, const char **code, char *msg, size_t msglen);
int sy_instance_start(struct sy_instance *in, const char **code, char *msg, size_t msglen);
int sy_instance_terminate(struct sy_instance *in, const char **code, char *msg, size_t msglen);
/* What sy_instance_terminate would refuse, without doing anything (a cluster records a terminate in etcd
 * before it is done). */
int sy_instance_may_terminate(const struct sy_instance *in, const char **code, char *msg, size_t msglen);

/* Calls fn(arg, in) on the loop once the instance is no longer `stopping` (at once if it is not), or
 * when it is closed. */
void sy_instance_when_settled(struct sy_instance *in, void (*fn)(void *arg, struct sy_instance *in), void *arg);

const char *sy_instance_state_name(enum sy_instance_state s);
const char *sy_module_state_name(enum sy_module_state s);

#endif
