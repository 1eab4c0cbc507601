/* The MariaDB proxy of one pair across proxy_threads worker loops: the listener on the main loop hands each
 * accepted socket to a shard (round robin), a session lives on its shard for life, and every operation that
 * spans sessions (the `clients` listing, the switch steps, the ack ledger, commit_wait wake-ups, hold release,
 * shutdown, metrics) runs on every shard's loop and is joined on the main loop. Only the main loop waits for
 * shards; a shard never waits for another (KILL of another shard's session is asked and answered by posts). */
#ifndef SY_MYSQL_FANOUT_H
#define SY_MYSQL_FANOUT_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/listener.h>
#include <openssl/ssl.h>

#include "core/loop_pool.h"
#include "engine/mariadb_gtid_set.h"
#include "proxy/mysql_proxy.h"

#define SY_MYSQL_MAX_SHARDS 64

struct sy_mysql_fanout {
    struct sy_pair *pair;                    /* ref: owns us through proto_state */
    struct sy_loop_pool *pool;               /* ref: pair->pool; NULL = one shard, on the main loop */
    struct evconnlistener *listener;         /* owned, on the main loop */
    SSL_CTX *tls;                            /* owned; NULL = no client TLS; shared by the shards' sessions */
    int n;                                   /* shards */
    struct sy_mysql_proxy *shards[SY_MYSQL_MAX_SHARDS]; /* owned, each freed on its own loop */
    unsigned next_shard;                     /* main loop: round robin of accepted sockets */
    /* commit_wait's degraded recovery (main loop; see sy_mysql_cw_check_recovery) */
    bool cw_recover_armed;                   /* cw_recover_target was taken ... */
    uint64_t cw_recover_for;                 /* ... for the degradation that began at this degraded_since_ms */
    struct sy_gtid_set cw_recover_target;    /* the ack ledger at cw_recover_ms; covered by the position within
                                                commit_wait_timeout_ms = caught up */
    uint64_t cw_recover_ms;
    /* owned scratch of the main loop's fan-outs, allocated at start so that no switch step, ack ledger merge
       or listing can fail (and skip the step, or read as "nothing acknowledged") for want of memory */
    struct sy_mysql_gather *gather;          /* mysql_proxy.c's per-shard results */
    struct sy_mysql_ledger_scratch *ledger_scratch; /* the shards' ledgers while they merge */
};

/* Main loop: runs fn(shard, arg) on every shard's loop, in parallel, and returns when all have run. */
void sy_mysql_fanout_each(struct sy_mysql_fanout *f, void (*fn)(struct sy_mysql_proxy *px, void *arg), void *arg);
/* Main loop: an accepted client socket goes to the next shard. */
void sy_mysql_fanout_accept(struct sy_mysql_fanout *f, evutil_socket_t fd, const struct sockaddr *sa, int salen);
/* Any shard: wakes every shard's commit_wait (degraded: their held OKs pass too). Never waits. */
void sy_mysql_fanout_cw_wake_all(struct sy_mysql_fanout *f);
/* The scratch sy_mysql_fanout_ledger uses (NULL when out of memory); the caller owns it, freed with free(). */
struct sy_mysql_ledger_scratch *sy_mysql_fanout_ledger_scratch_new(void);
/* Main loop: the pair's ack ledger of a side, merged over the shards. */
void sy_mysql_fanout_ledger(struct sy_mysql_fanout *f, enum sy_side side, struct sy_gtid_set *out);

/* KILL <id> from session s (on its shard's loop). A session of s's own shard is looked up at once: 1 with
 * *thread (its backend thread, 0 = none) and *side, or 0 when there is none. Another shard's: it is asked
 * by a post and 2 is returned; the answer comes back to s's loop as sy_mysql_relay_kill_answer(s, ...)
 * with the request packet (p, n, seq) copied here — unless s has closed or its command ended by then
 * (kill_ticket). -1: out of memory (nothing asked). */
int sy_mysql_fanout_kill_target(struct sy_mysql_session *s, uint32_t id, const uint8_t *p, size_t n, uint8_t seq,
                                uint32_t *thread, enum sy_side *side);
/* mysql_relay.c: the answer to a KILL asked of another shard (s is SS_BUSY with kill_pending). */
void sy_mysql_relay_kill_answer(struct sy_mysql_session *s, const uint8_t *p, size_t n, uint8_t seq, uint32_t thread,
                                enum sy_side side);

#endif
