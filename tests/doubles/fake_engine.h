/* A fake engine (test double, never shipped): two in-memory "databases" and the tables of
 * core/engine.h plus a sy_proxy_protocol, so that C unit tests run the real core — daemon, admin
 * socket, instances, spools, switches, fence keeper — in milliseconds, with every failure a test
 * wants at hand. It proves the core is engine-neutral: nothing here is MariaDB.
 *
 * The model. Each database keeps a log: one entry per committed transaction, holding the letter of
 * the side whose clients wrote it ('B' business, 'D' DR); a position is "fake:N", the log's length
 * after N entries. A collector reads its source's log from its position: entries written by the
 * source's own clients become TXN_BEGIN + TXN_COMMIT records, entries a writer applied there (echo)
 * become POSITION records. A writer applies each committed transaction by appending its letter to
 * the destination's log and keeps its checkpoint (spool seq + source position) in the destination,
 * per direction, as a real writer keeps it in a table. Fencing refuses client writes; the writer
 * writes through a fence, as Switchyard's privileged writer does.
 *
 * The proxy part keeps counters a test sets (sessions in a transaction, busy, not prepared, ...) and
 * records what the core asked of it (warm, abort, unwarm, flip). Its ack ledger is, per side, the
 * position of the last client write acknowledged there (fake_client_write). */
#ifndef SY_FAKE_ENGINE_H
#define SY_FAKE_ENGINE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/engine.h"
#include "core/pair.h"

#define FAKE_LOG_MAX 100000

enum fake_side { FAKE_BUSINESS = 0, FAKE_DR = 1 };

struct fake_db {
    char log[FAKE_LOG_MAX]; /* origin letter of each committed transaction */
    uint64_t n;             /* entries: the position is "fake:n" */
    bool fenced;            /* client writes refused */
    bool down;              /* every call fails as if the server were unreachable */
    bool write_blocked;     /* the writer into this database waits (a lock held by someone else) */
    int fence_failures;     /* the next N fence calls on this database fail */
    int unfence_failures;   /* the next N unfence calls fail */
    bool stall_drain;       /* fencing this database lets one more client commit land first (in flight)
                               and then blocks the writer into the other one: the drain cannot finish */
    bool hold_mid_txn;      /* a collector reading this database spools a transaction's TXN_BEGIN, then
                               waits (running) while this is set, with held_mid_txn true */
    bool held_mid_txn;
    bool lose_rest;         /* once released, the rest of that transaction never arrives (the server died
                               while sending it): its TXN_COMMIT is not spooled, the collector retries */
    /* writer checkpoints, per direction writing into this database (0 forward, 1 reverse) */
    uint64_t ckpt_seq[2];
    uint64_t ckpt_pos[2];
    bool has_ckpt[2];
};

struct fake_proxy_knobs {
    size_t sessions, in_transaction, busy, not_ready, warm_failed, state_pending;
    size_t unmovable;       /* sessions reported unmovable (each {id, user, peer, reason}) */
    size_t unmovable_at_hold; /* become unmovable when the pair is held (a LOCK TABLES that raced the hold) */
    bool abort_ends_transactions; /* switch_abort_transactions sets in_transaction to 0 */
};

struct fake_proxy_calls {
    unsigned warm, abort, unwarm, flip, close_unmovable, hold_on, hold_off;
    enum sy_side flipped_to;
    size_t aborted;         /* transactions the aborts rolled back */
};

/* Shared between the test process and the daemon processes it forks (MAP_SHARED), so a daemon can be
 * killed and restarted while the "databases" live on. */
struct fake_world {
    pthread_mutex_t mu;     /* process-shared and robust (a killed daemon may hold it): fake_lock() */
    struct fake_db db[2];
    bool precheck_fails;
    bool position_fails;    /* position->current fails (the catch-up step cannot read it) */
    struct fake_proxy_knobs proxy;
    struct fake_proxy_calls calls;
    uint64_t acked[2];      /* per side: position after the last client write acknowledged there */
};

extern struct fake_world *fake_world;
#define fake (*fake_world)

/* Maps a fresh shared world: empty logs, nothing fenced or down, no knobs set. Before any fork. */
void fake_init(void);
/* The world's lock (a daemon killed while holding it leaves it consistent: every change under it is a
 * single step). */
void fake_lock(void);
void fake_unlock(void);

/* A client transaction committed on a side: 1 (acknowledged: counted in that side's ack ledger),
 * 0 refused (fenced), -1 (down). */
int fake_client_write(enum fake_side side);

/* Copies of a database's state under the lock. */
uint64_t fake_log_length(enum fake_side side);
/* How many entries of a side's log came from clients of `origin` ('B' or 'D'). */
uint64_t fake_count_origin(enum fake_side side, char origin);
bool fake_fenced(enum fake_side side);

extern const struct sy_engine_ops fake_engine;
extern const struct sy_engine_ops fake_engine_without_failover;
/* Which engine ops the next daemon_start hands the daemon (default &fake_engine). */
extern const struct sy_proxy_protocol fake_proxy;

#endif
