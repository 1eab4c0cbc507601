/* One MongoDB client session's types, shared by proxy/mongo_session.c (the relay and the login) and
 * proxy/mongo_switch.c (a switch's part: warm connections on the other side, the flip). Private to proxy/. */
#ifndef SY_MONGO_SESSION_H
#define SY_MONGO_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/bufferevent.h>

#include "proxy/mongo_cmd.h"
#include "proxy/mongo_login.h"
#include "proxy/mongo_proxy.h"
#include "proxy/mongo_scram.h"
#include "proxy/mongo_write.h"
#include "proxy/relay.h"

struct sy_mongo_warm;

/* What the session waits for. */
enum sess_state {
    MS_CONNECTING, /* backend connect in progress: client bytes wait in its input */
    MS_IDLE,       /* no request with a reply in flight */
    MS_BUSY,       /* a request was forwarded, its reply is not complete */
    MS_HELD,       /* pair held: the next request waits (reading paused) until release */
    MS_CREDS,      /* a login step waits for the user's credential (the request stays in the client's input) */
    MS_CLOSING,    /* closed; freed by the reaper */
    MS__COUNT
};

/* What the reply in flight needs from the session beyond its header. */
enum req_kind {
    REQ_PLAIN, /* streamed through */
    REQ_HELLO, /* hello/isMaster: topology rewritten (and a speculative login noted) */
    REQ_AUTH,  /* a login step: its outcome noted */
    REQ_LOGIN, /* the proxy's own login on the backend (SCRAM pass-through): answered by the proxy */
    REQ_TRACKED,  /* the reply is read whole for what it opens or ends: a cursor (find, aggregate,
                     listCollections, listIndexes, getMore), a transaction's start (refused: not open) */
    REQ_INTERNAL, /* the proxy's own command (a switch's abortTransaction): its reply is dropped */
};

/* Where the proxy's own SCRAM conversation with the client is. */
enum scram_phase {
    SC_NONE,
    SC_SPECULATIVE, /* a hello's speculativeAuthenticate was answered: server-first goes into its reply */
    SC_FIRST_SENT,  /* server-first sent: the client-final (proof) comes next */
    SC_FINAL_SENT,  /* v= sent with done: false: the empty saslContinue comes next */
};

/* The proxy's server side of SCRAM with one client, then its client side on the backend (ClientKey). */
struct scram_conv {
    enum scram_phase phase;
    enum sy_scram_hash mech;
    bool skip_empty;                        /* saslStart options.skipEmptyExchange: done with v= */
    int32_t conv_id;
    char db[128];
    char user[SY_SCRAM_MAX_USER + 1];
    struct sy_scram_cred cred;              /* the user's stored credential (from the cache) */
    struct sy_scram_client_first cf;        /* cf.bare points at `bare` */
    char bare[SY_SCRAM_MAX_MSG];
    char server_first[SY_SCRAM_MAX_MSG];
    size_t server_first_len;
    char combined_nonce[SY_SCRAM_MAX_NONCE * 2 + 1];
    char server_final[SY_SCRAM_MAX_MSG];    /* v=...: what the client gets once the backend accepted */
    size_t server_final_len;
    struct sy_mongo_login backend;          /* the backend login from ClientKey */
    int32_t client_op;                      /* the client's request opcode (reply as OP_MSG or OP_REPLY) */
};

struct sy_mongo_session {
    TAILQ_ENTRY(sy_mongo_session) link;  /* in px->sessions, then px->closing */
    struct sy_mongo_proxy *px;           /* ref: owns the session */
    uint32_t id;                         /* `clients` id, log label */
    enum sess_state state;
    char peer[80];                       /* "127.0.0.1:51234" */
    char label[160];                     /* "orders M-3 127.0.0.1:51234" for logs */
    char advertised[300];                /* the address hello replies name: the listen address (or, for a
                                            wildcard listen, the local address this client reached) */
    bool tls;                            /* client is an OpenSSL filter over the socket */
    struct sy_relay_link io;             /* client and backend bufferevents (owned), backpressure */
    enum sy_side side;                   /* where the backend connection is */
    int32_t next_backend_id;             /* the proxy's request ids on this backend connection (from 1) */
    int32_t next_own_id;                 /* request ids of the replies the proxy writes itself */
    /* the request in flight (MS_BUSY) */
    int32_t req_client_id;               /* the client's requestID: the reply's responseTo */
    int32_t req_backend_id;              /* ours: the backend's reply answers it */
    int32_t exhaust_next;                /* != 0: a reply had moreToCome; the next answers this id */
    enum req_kind req_kind;
    /* the reply being streamed (or dropped) from the backend */
    size_t resp_left;                    /* its bytes still to move (or drop) */
    uint32_t resp_tail;                  /* then bytes to drop: the server's checksum */
    bool resp_discard;                   /* nobody waits for it: dropped */
    bool resp_more;                      /* it has moreToCome: the request stays open after it */
    int32_t resp_id;                     /* its requestID (the next exhaust reply answers it) */
    struct sy_mongo_auth_req auth;       /* login step in flight; user kept from saslStart to its end */
    bool auth_started;                   /* auth holds a conversation that has not ended */
    struct scram_conv sc;                /* SCRAM pass-through conversation (secrets: wiped on free) */
    struct sy_mongo_creds_wait *cwait;   /* credential read in flight (MS_CREDS) */
    bool creds_failed;                   /* the last read failed: the waiting step is passed through */
    bool creds_read;                     /* the read this login asked for has ended: its result is used */
    bool spec_own;                       /* the hello in flight: speculativeAuthenticate answered by the proxy */
    bool scram;                          /* logged in by the proxy (SCRAM pass-through): client_key holds */
    enum sy_scram_hash scram_mech;       /* with scram: the mechanism the client logged in with */
    struct sy_scram_cred cred;           /* with scram: the user's credential (its ServerKey checks the other
                                            side's signature when a switch logs in there); wiped on free */
    uint32_t login_gen;                  /* bumped by every login and logout: a warm connection logged in
                                            under an older one is prepared again */
    uint8_t client_key[SY_SCRAM_MAX_KEY];/* the logged-in user's ClientKey: memory only, wiped on free */
    /* who logged in (through the server) */
    bool logged_in;
    char user[SY_MONGO_USER_MAX + 1];
    char auth_db[65];
    char mechanism[32];
    uint64_t held_since_ms;              /* when MS_HELD began */
    uint64_t requests;                   /* requests forwarded */
    uint64_t dropped_replies;            /* backend replies no request waited for (moreToCome) */
    int64_t req_cursor_id;               /* REQ_TRACKED for a getMore: its cursor (0 for any other request) */
    bool req_txn_start;                  /* REQ_TRACKED: the request started a transaction (lsid: req_lsid) */
    uint8_t req_lsid[SY_MONGO_LSID_LEN];
    struct sy_mongo_write req_write;     /* REQ_TRACKED: the write in flight (its documents: the ack ledger) */
    bool internal_done;                  /* the dropped reply being read answered a REQ_INTERNAL */
    struct sy_mongo_warm *warm;          /* owned (proxy/mongo_switch.c): a switch's connection on the other
                                            side; NULL when none */
};

/* ---- proxy/mongo_session.c, for proxy/mongo_switch.c ---- */

/* Whether s can move: a login passed through to the server (not SCRAM) cannot be repeated elsewhere. */
bool sy_mongo_session_movable(const struct sy_mongo_session *s);
/* Why s cannot move ("" when it can). */
const char *sy_mongo_session_unmovable_reason(const struct sy_mongo_session *s);
/* The flip: s's backend connection becomes bev (connected, on `side`, our next request id next_id); the old
 * one is closed. s is idle. */
void sy_mongo_session_adopt_backend(struct sy_mongo_session *s, struct bufferevent *bev, enum sy_side side,
                                    int32_t next_id);
/* Sends the proxy's own command on s's backend (s idle); its reply is dropped. -1 when s is not idle. */
int sy_mongo_session_internal(struct sy_mongo_session *s, const bson_t *cmd);

/* The next request id of a sequence: 1..INT32_MAX, then 1 again (0 and negatives are never used). */
int32_t sy_mongo_next_id(int32_t *seq);
/* Queues cmd as an OP_MSG (no flags) with request_id on bev's output; -1 out of memory. */
int sy_mongo_cmd_send(struct bufferevent *bev, int32_t request_id, const bson_t *cmd) SY_MUST_CHECK;

/* ---- proxy/mongo_switch.c ---- */

/* Frees s's warm connection (NULL-safe). */
void sy_mongo_warm_free(struct sy_mongo_session *s);
/* The switch hooks of sy_mongo_protocol (core/pair.h). */
void sy_mongo_switch_warm(void *state, enum sy_side to, bool old_side_alive);
void sy_mongo_switch_progress(void *state, enum sy_side to, struct sy_switch_progress *out);
json_t *sy_mongo_switch_failures(void *state);
size_t sy_mongo_switch_abort_transactions(void *state);
json_t *sy_mongo_switch_unmovable(void *state);
size_t sy_mongo_switch_close_unmovable(void *state);
void sy_mongo_switch_unwarm(void *state);
size_t sy_mongo_switch_flip(void *state, enum sy_side to);

#endif
