/* The SQL Server (TDS) proxy of one pair: its listener and sessions. Types shared by tds_proxy.c (pair
 * level: sy_proxy_protocol, hold), tds_switch.c (switch hooks) and tds_session.c (one client). */
#ifndef SY_TDS_PROXY_H
#define SY_TDS_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/listener.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "core/pair.h"

struct sy_tds_session;
TAILQ_HEAD(sy_tds_session_list, sy_tds_session);

/* What the proxy did to a client itself, by reason (metrics switchyard_client_errors_total). */
enum sy_tds_err_reason {
    SY_TERR_UNSUPPORTED,     /* refused with a message: integrated/federated login, MARS packets */
    SY_TERR_BAD_PACKET,      /* closed: malformed or over-size packet, wrong packet where another was due */
    SY_TERR_LOST_CONNECTION, /* closed: the backend went away, could not be reached or refused the handshake */
    SY_TERR_FORCED_CLOSE,    /* closed by a switch (--force, or the active side changed under it) */
    SY_TERR__COUNT
};

struct sy_tds_proxy {
    struct sy_pair *pair;                  /* ref: owns us through proto_state */
    struct event_base *base;               /* ref: pair->base */
    struct evconnlistener *listener;       /* owned */
    SSL_CTX *tls;                          /* owned; NULL = no client TLS (PRELOGIN answers ENCRYPT_NOT_SUP) */
    struct sy_tds_session_list sessions;   /* every live session, in accept order (release order) */
    struct sy_tds_session_list closing;    /* closed sessions the reaper frees on a later loop turn */
    size_t n_sessions;                     /* length of `sessions` */
    uint32_t next_id;                      /* client-visible session ids, from 1 */
    struct event *reaper;                  /* owned: frees closed sessions */
    struct event *resume;                  /* owned: lets held sessions through after a release */
    uint64_t client_errors[SY_TERR__COUNT];/* by enum sy_tds_err_reason */
};

/* Accepted client socket -> new session (backend connection to the active side started). */
void sy_tds_session_accept(struct sy_tds_proxy *px, evutil_socket_t fd, const struct sockaddr *sa, int salen);
/* Frees the closed sessions that are done flushing (all of them: `all`). */
void sy_tds_session_reap(struct sy_tds_proxy *px, bool all);
/* Closes a session now (shutdown, a forced switch); counted under `reason` unless SY_TERR__COUNT. */
void sy_tds_session_close(struct sy_tds_session *s, const char *why, enum sy_tds_err_reason reason);
/* After a release: lets every held session's waiting request through, in accept order. */
void sy_tds_sessions_resume(struct sy_tds_proxy *px);
/* A node cut off from etcd (sy_proxy_protocol.fail_held): each session whose request was held at least
 * held_ms gets msg as an ERROR token (50000, class 20) and is closed; how many. Logins waiting for the
 * release keep waiting. */
size_t sy_tds_sessions_fail_held(struct sy_tds_proxy *px, uint64_t held_ms, const char *msg);
/* `clients` listing: one object per live session. */
json_t *sy_tds_sessions_json(struct sy_tds_proxy *px);
/* Walks the live sessions in accept order (next is safe to take before closing s). */
struct sy_tds_session *sy_tds_session_first(struct sy_tds_proxy *px);
struct sy_tds_session *sy_tds_session_next(struct sy_tds_session *s);
/* Whether a request, a login or a connect of s is in flight. */
bool sy_tds_session_busy(const struct sy_tds_session *s);
/* The side s's backend connection is on. */
enum sy_side sy_tds_session_side(const struct sy_tds_session *s);
/* s as {id, user, peer, <key>: reason} for switch_unmovable / switch_failures. */
json_t *sy_tds_session_unmovable_json(const struct sy_tds_session *s, const char *key);

#endif
