/* The MariaDB proxy of one pair: its listener, client TLS context, account cache, sessions and the
 * ack ledger. Types shared by mysql_proxy.c (pair-level) and mysql_session.c (one client). */
#ifndef SY_MYSQL_PROXY_H
#define SY_MYSQL_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/listener.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "engine/mariadb_gtid_set.h"
#include "core/pair.h"
#include "proxy/mysql_accounts.h"

#define SY_MYSQL_FIRST_SESSION_ID 1000000000u /* far above backend thread ids: KILL can tell them apart */

struct sy_mysql_session;
struct sy_mysql_fanout;
TAILQ_HEAD(sy_mysql_session_list, sy_mysql_session);

/* Errors the proxy answered itself, by reason (metrics). */
enum sy_mysql_err_reason { SY_ERR_AUTH, SY_ERR_ABORTED_TXN, SY_ERR_FORCED_CLOSE, SY_ERR_LOST_CONNECTION, SY_ERR_OTHER,
                           SY_ERR_COMMIT_WAIT, SY_ERR__COUNT };

/* One shard of the pair's proxy: the sessions of one event loop (a worker of proxy_threads, or the main loop
 * when there is one shard). Everything here is touched only on that loop; what spans shards goes through
 * struct sy_mysql_fanout (mysql_fanout.h). */
struct sy_mysql_proxy {
    struct sy_pair *pair;                    /* ref: owns the fan-out through proto_state */
    struct sy_mysql_fanout *fan;             /* ref: owns this shard */
    int worker;                              /* this shard's index (its worker in pair->pool) */
    struct event_base *base;                 /* ref: this shard's loop (pair->base, or the worker's) */
    SSL_CTX *tls;                            /* ref: the fan-out's; NULL = no client TLS */
    struct sy_mysql_accounts *accounts;      /* owned: this shard's copy of the account cache */
    struct sy_mysql_session_list sessions;   /* every live session, in accept order */
    struct sy_mysql_session_list closing;    /* closed sessions freed by `reaper` next loop turn */
    size_t n_sessions;                       /* length of `sessions` */
    uint32_t next_id;                        /* client-visible connection ids: shard i hands out first + i,
                                                then steps by id_step (the number of shards), so an id names
                                                its shard (KILL across workers) */
    uint32_t id_step;
    struct event *reaper;                    /* owned: frees closed sessions and released conns */
    struct sy_mysql_conn **dead;             /* owned: released connections the reaper frees */
    size_t n_dead, cap_dead;
    struct event *resume;                    /* owned: lets held sessions through after a release */
    uint64_t client_errors[SY_ERR__COUNT];   /* by enum sy_mysql_err_reason */
    struct sy_gtid_set ack_ledger[2];        /* per side (enum sy_side): highest last_gtid acknowledged to
                                                any client of this shard, per domain (the pair's ledger is the
                                                merge of every shard's) */
    /* commit_wait (mysql_commit_wait.c) */
    struct sy_mysql_session_list cw_waiters; /* sessions holding an OK (linked by cw_link), oldest first */
    struct event *cw_wake;                   /* owned: the pair's wake-up, passed on to this shard's loop */
};
/* commit_wait, on the shard's loop: releases every held OK the position covers (all of them once degraded). */
void sy_mysql_cw_progress(struct sy_mysql_proxy *px);
/* Main loop, while degraded: comes back from degraded once the position covers `ledger` (the pair's ack
 * ledger on the active side, merged over shards) within commit_wait_timeout_ms. */
void sy_mysql_cw_check_recovery(struct sy_mysql_fanout *f, const struct sy_gtid_set *ledger);
/* A new client-visible connection id of this shard. */
uint32_t sy_mysql_proxy_new_id(struct sy_mysql_proxy *px);

/* Accepted client socket -> new session (greeting sent). */
void sy_mysql_session_accept(struct sy_mysql_proxy *px, evutil_socket_t fd, const struct sockaddr *sa, int salen);
/* Frees released connections and the closed sessions that are done flushing (all of them: `all`). */
void sy_mysql_session_reap(struct sy_mysql_proxy *px, bool all);
/* Stops a connection's I/O now and frees it on the next loop turn (never inside its own callbacks). */
void sy_mysql_session_release_conn(struct sy_mysql_proxy *px, struct sy_mysql_conn *c);
/* Closes a session now (proxy shutdown). */
void sy_mysql_session_close(struct sy_mysql_session *s, const char *why);
/* After a release: lets every held session's queued request through, in accept order. */
void sy_mysql_sessions_resume(struct sy_mysql_proxy *px);
/* Closes, with msg as error 1927 (70100), every session held (a request or a login) for held_ms or more. */
size_t sy_mysql_sessions_fail_held(struct sy_mysql_proxy *px, uint64_t held_ms, const char *msg);
/* `clients` listing: one object per live session. */
json_t *sy_mysql_sessions_json(struct sy_mysql_proxy *px);
/* Wakes every sleeping session (mysql_relay.c): before a switch step touches their connections. */
void sy_mysql_sessions_wake(struct sy_mysql_proxy *px);
/* The session with this client-visible id, or NULL. */
struct sy_mysql_session *sy_mysql_proxy_find_session(struct sy_mysql_proxy *px, uint32_t id);
/* The backend thread id of a session (0 when it has no backend yet). */
uint32_t sy_mysql_session_backend_thread(const struct sy_mysql_session *s);

/* Switch support (mysql_switch.c); see sy_proxy_protocol's switch_* members in core/pair.h. */
void sy_mysql_switch_warm(struct sy_mysql_proxy *px, enum sy_side to, bool old_side_alive);
void sy_mysql_switch_progress(struct sy_mysql_proxy *px, enum sy_side to, struct sy_switch_progress *out);
json_t *sy_mysql_switch_failures(struct sy_mysql_proxy *px);
size_t sy_mysql_switch_abort_transactions(struct sy_mysql_proxy *px);
json_t *sy_mysql_switch_unmovable(struct sy_mysql_proxy *px);
size_t sy_mysql_switch_close_unmovable(struct sy_mysql_proxy *px);
void sy_mysql_switch_unwarm(struct sy_mysql_proxy *px);
size_t sy_mysql_switch_flip(struct sy_mysql_proxy *px, enum sy_side to);

#endif
