/* The MongoDB proxy of one pair: its listener, client TLS context and sessions. Types shared by
 * mongo_proxy.c (pair level: sy_proxy_protocol, hold, switch hooks) and mongo_session.c (one client).
 * A switch moves sessions to the other side (proxy/mongo_switch.c). */
#ifndef SY_MONGO_PROXY_H
#define SY_MONGO_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/listener.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "core/pair.h"
#include "proxy/mongo_track.h"

struct sy_mongo_acks;

struct sy_mongo_session;
struct sy_mongo_creds;
TAILQ_HEAD(sy_mongo_session_list, sy_mongo_session);

/* What the proxy did to a client itself, by reason (metrics switchyard_client_errors_total). */
enum sy_mongo_err_reason {
    SY_MERR_UNSUPPORTED,     /* answered with an error: OP_COMPRESSED, unknown required flag bits */
    SY_MERR_BAD_FRAME,       /* closed: malformed or over-size frame, bad checksum, unknown opcode */
    SY_MERR_LOST_CONNECTION, /* closed: the backend went away or could not be reached */
    SY_MERR_FORCED_CLOSE,    /* closed by a switch (--force, or the active side changed under it) */
    SY_MERR__COUNT
};

struct sy_mongo_proxy {
    struct sy_pair *pair;                    /* ref: owns us through proto_state */
    struct event_base *base;                 /* ref: pair->base */
    struct evconnlistener *listener;         /* owned */
    SSL_CTX *tls;                            /* owned; NULL = no client TLS */
    struct sy_mongo_session_list sessions;   /* every live session, in accept order (release order) */
    struct sy_mongo_session_list closing;    /* closed sessions the reaper frees on a later loop turn */
    size_t n_sessions;                       /* length of `sessions` */
    uint32_t next_id;                        /* client-visible session ids, from 1 */
    struct event *reaper;                    /* owned: frees closed sessions */
    struct event *resume;                    /* owned: lets held sessions through after a release */
    uint64_t client_errors[SY_MERR__COUNT];  /* by enum sy_mongo_err_reason */
    struct sy_mongo_creds *creds;            /* owned: users' SCRAM credentials (SCRAM pass-through) */
    struct sy_mongo_acks *acks[2];           /* ref: the ack ledger of each side (engine/mongo_acks.h) */
    struct sy_mongo_track track;             /* the pair's open cursors and transactions (proxy/mongo_track.h):
                                                every session is on one side, so they are that side's */
    uint8_t *hello[2];                       /* owned: the last ok hello/isMaster reply document each side's
                                                server sent (as received; NULL before the first): a held
                                                session's hello is answered from it (sy_mongo_hello_cached) */
    size_t hello_len[2];                     /* their lengths */
};

/* Accepted client socket -> new session (backend connection to the active side started). */
void sy_mongo_session_accept(struct sy_mongo_proxy *px, evutil_socket_t fd, const struct sockaddr *sa, int salen);
/* Frees the closed sessions that are done flushing (all of them: `all`). */
void sy_mongo_session_reap(struct sy_mongo_proxy *px, bool all);
/* Closes a session now (shutdown, a forced switch); counted under `reason` unless SY_MERR__COUNT. */
void sy_mongo_session_close(struct sy_mongo_session *s, const char *why, enum sy_mongo_err_reason reason);
/* After a release: lets every held session's waiting request through, in accept order. */
void sy_mongo_sessions_resume(struct sy_mongo_proxy *px);
/* A node cut off from etcd (sy_proxy_protocol.fail_held): each session whose request was held at least
 * held_ms gets msg as an error reply (code 50 MaxTimeMSExpired) and is closed; how many. */
size_t sy_mongo_sessions_fail_held(struct sy_mongo_proxy *px, uint64_t held_ms, const char *msg);
/* `clients` listing: one object per live session. */
json_t *sy_mongo_sessions_json(struct sy_mongo_proxy *px);
/* Walks the live sessions in accept order (next is safe to take before closing s). */
struct sy_mongo_session *sy_mongo_session_first(struct sy_mongo_proxy *px);
struct sy_mongo_session *sy_mongo_session_next(struct sy_mongo_session *s);
/* Whether a request of s is in flight (sent to the backend, its reply not complete). */
bool sy_mongo_session_busy(const struct sy_mongo_session *s);
/* The side s's backend connection is on. */
enum sy_side sy_mongo_session_side(const struct sy_mongo_session *s);
/* s as {id, user, peer, reason} for switch_unmovable / switch_failures (key of the reason: `key`). */
json_t *sy_mongo_session_unmovable_json(const struct sy_mongo_session *s, const char *key);

#endif
