/* One SQL Server client session's state, shared by tds_session.c (lifecycle, relay, events) and
 * tds_login.c (PRELOGIN, TLS inside PRELOGIN, LOGIN7, the backend login). Private to proxy/. */
#ifndef SY_PROXY_TDS_SESSION_H
#define SY_PROXY_TDS_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <openssl/ssl.h>

#include "proxy/relay.h"
#include "proxy/tds_proxy.h"
#include "proxy/tds_track.h"
#include "proxy/tds_wire.h"

/* What the session waits for. */
enum sy_tds_sess_state {
    TS_PRELOGIN, /* the client's PRELOGIN and the backend's PRELOGIN answer (both before answering) */
    TS_TLS,      /* the client's TLS handshake, its records carried inside PRELOGIN packets */
    TS_LOGIN7,   /* PRELOGIN answered: the client's LOGIN7 */
    TS_LOGIN,    /* the proxy's LOGIN7 sent to the backend: its login response */
    TS_IDLE,     /* logged in, no request in flight */
    TS_BUSY,     /* a request (or an ATTENTION) was forwarded, its response is not complete */
    TS_HELD,     /* pair held: the next request waits (reading paused) until release */
    TS_CLOSING,  /* closed; freed by the reaper */
    TS__COUNT
};

struct sy_tds_session {
    TAILQ_ENTRY(sy_tds_session) link;   /* in px->sessions, then px->closing */
    struct sy_tds_proxy *px;            /* ref: owns the session */
    uint32_t id;                        /* `clients` id, log label */
    enum sy_tds_sess_state state;       /* changed only through set_state() (logged) */
    char peer[80];                      /* "127.0.0.1:51234" */
    char label[160];                    /* "orders T-3 127.0.0.1:51234" for logs */
    struct sy_relay_link io;            /* client and backend bufferevents (owned), backpressure */
    enum sy_side side;                  /* where the backend connection is (or will be: backend_deferred) */
    bool backend_deferred;              /* accepted while the pair was held: the backend connection is opened
                                           (to the side then active) when the hold ends */
    /* handshake */
    bool client_prelogin;               /* the client's PRELOGIN was read (TS_PRELOGIN) */
    bool fedauth_asked;                 /* it had FEDAUTHREQUIRED: the answer carries the option too */
    bool backend_prelogin;              /* the backend's PRELOGIN answer was read */
    int encryption;                     /* what PRELOGIN answered: SY_TDS_ENCRYPT_NOT_SUP (no TLS), _OFF (the
                                           LOGIN7 only), _ON (the whole session) */
    SSL *ssl;                           /* owned while the session holds it: the handshake (memory BIOs), and
                                           for login-only encryption until the end (the filter does not own it) */
    struct bufferevent *client_raw;     /* owned: the client's socket under a TLS filter that does not own it
                                           (login-only encryption, until the login response); else NULL */
    bool tls;                           /* the client's bytes go through TLS now */
    uint8_t server_version[6];          /* from the backend's PRELOGIN: our answer names the same */
    uint8_t password[2 * SY_TDS_LOGIN7_MAX_CHARS]; /* UTF-16LE, de-obfuscated: memory only, wiped on free */
    size_t password_len;
    uint8_t *login7;                    /* owned: the client's LOGIN7 payload, its password field zeroed (a
                                           switch logs in on the other side from it and `password`) */
    size_t login7_len;
    /* who logged in */
    bool logged_in;
    char user[260];
    char database[260];                 /* the login's database (ENVCHANGE); the current one is track.database */
    char language[130];                 /* the login's language (ENVCHANGE) */
    char app[260];
    uint32_t tds_version;               /* what the client's LOGIN7 asked (the server's LOGINACK answers) */
    size_t packet_size;                 /* negotiated (ENVCHANGE 4): the limit of the client's packets */
    /* relay: where each direction stands inside a packet and a message */
    size_t c_left;                      /* bytes of the client's current packet still to forward */
    bool c_in_msg;                      /* a client message started (no EOM yet) */
    uint8_t c_msg_type;
    bool c_eom;                         /* the current client packet ends its message */
    bool c_ignored;                     /* ... with IGNORE: no response comes */
    size_t b_left;                      /* bytes of the server's current packet still to forward */
    bool b_eom;                         /* the current server packet ends its message */
    uint8_t b_tail[SY_TDS_DONE_LEN];    /* last payload bytes of the server's current message */
    size_t b_tail_len;
    bool attention;                     /* an ATTENTION was forwarded: busy until the server acknowledges */
    uint64_t requests;                  /* request messages forwarded */
    uint64_t attentions;                /* ATTENTION packets forwarded */
    uint64_t resets;                    /* requests with RESETCONNECTION(SKIPTRAN) */
    uint64_t held_since_ms;             /* when TS_HELD began */
    /* tracking (tds_track.h): what a move must restore, what pins the session to its server */
    struct sy_tds_track track;          /* from the login response on; track.lost set = unmovable */
    struct sy_tds_rsp_scan scan;        /* the server's current response: its column types */
    struct evbuffer *scanbuf;           /* owned: response bytes not yet scanned (an incomplete token) */
    bool scan_off;                      /* the current response is not scanned (tracking lost in it) */
    /* switches (tds_switch.c) */
    struct sy_tds_warm *warm;           /* owned: the connection prepared on the other side, or NULL */
    bool moved;                         /* on a connection a switch gave it: requests are remapped (handles,
                                           descriptor) for that server */
    bool txn_aborted;                   /* its transaction was rolled back by a switch: the next request is
                                           answered by the proxy (1205 + ENVCHANGE rollback) */
    uint64_t aborted_desc;              /* ... the descriptor the client knows that transaction by */
    bool rollback_pending;              /* the rollback goes to the server once the response in flight ends */
    bool begin_pending;                 /* moved inside an empty transaction: the proxy begins one on the new
                                           server before the client's next request (its descriptor remapped) */
    bool internal;                      /* the request in flight is the proxy's: its response is not relayed */
    bool c_next;                        /* a whole request was taken (forwarded or answered by the proxy): the
                                           relay looks at the next packet (an ATTENTION passes at once) */
};

/* ---- tds_session.c, for the login ---- */
void sy_tds_session_set_state(struct sy_tds_session *s, enum sy_tds_sess_state to);
/* The one way a session ends (see close_session); with `flush` a final message is still written. */
void sy_tds_session_end(struct sy_tds_session *s, const char *why, bool flush, enum sy_tds_err_reason reason);
/* Bytes that cannot be trusted from `from` ("client", "server"): closed with a log line. */
void sy_tds_session_bad_packet(struct sy_tds_session *s, const char *from, const char *why);
/* bev becomes the session's client side: its callbacks, watermark and read size, reading and writing on. */
void sy_tds_session_client_attach(struct sy_tds_session *s, struct bufferevent *bev);
/* The login response (whole TABULAR payload) starts the session's tracking. */
void sy_tds_session_track_login(struct sy_tds_session *s, const uint8_t *p, size_t n);
/* After queueing toward the client: pauses the backend's reading past high water. */
void sy_tds_session_to_client_done(struct sy_tds_session *s);

/* Why s cannot move now (NULL: it can); buf holds the text when it is the tracker's. */
const char *sy_tds_session_unmovable_reason(const struct sy_tds_session *s, char *buf, size_t len);
/* Ends s with an ERROR (class 20, the text) the client reads first; counted forced_close. */
void sy_tds_session_fatal(struct sy_tds_session *s, const char *msg);
/* txn_drain_ms spent: rolls the session's transaction back on its server (now when idle, else after the
 * response in flight); its next request gets 1205. */
void sy_tds_session_abort_transaction(struct sy_tds_session *s);
/* A switch holds the pair: the session's empty transaction is rolled back on its server now and begun
 * again (on whichever server it is then) before the client's next request, its descriptor remapped. */
void sy_tds_session_end_empty_transaction(struct sy_tds_session *s);
/* The session's login has not reached a server yet (its backend is deferred, or the client's LOGIN7 has not
 * been sent): a switch need not wait for it and need not warm it; the flip points it at the new side. */
bool sy_tds_session_login_unsent(const struct sy_tds_session *s);
/* The flip, for such a session: its login goes to the now active side (a new backend connection, the proxy's
 * PRELOGIN again; a deferred one connects when the hold ends). */
void sy_tds_session_login_repoint(struct sy_tds_session *s);
/* The flip: bev (connected and logged in on `side`, state restored) becomes the session's backend. */
void sy_tds_session_adopt_backend(struct sy_tds_session *s, struct bufferevent *bev, enum sy_side side);

/* ---- tds_switch.c (the sy_proxy_protocol switch hooks) ---- */
void sy_tds_warm_free(struct sy_tds_session *s);
void sy_tds_switch_warm(void *state, enum sy_side to, bool old_side_alive);
void sy_tds_switch_progress(void *state, enum sy_side to, struct sy_switch_progress *out);
json_t *sy_tds_switch_failures(void *state);
size_t sy_tds_switch_abort_transactions(void *state);
json_t *sy_tds_switch_unmovable(void *state);
size_t sy_tds_switch_close_unmovable(void *state);
void sy_tds_switch_unwarm(void *state);
size_t sy_tds_switch_flip(void *state, enum sy_side to);
void sy_tds_switch_ack_ledger(void *state, enum sy_side side, char *out, size_t outlen);

/* ---- tds_login.c ---- */
/* The proxy's PRELOGIN to a server (the session's backend, or a switch's warm connection). */
void sy_tds_login_prelogin_send(struct bufferevent *to);
/* A server's PRELOGIN answer: 0 usable, 1 the server requires encryption, -1 malformed (err). */
int sy_tds_login_prelogin_check(const uint8_t *p, size_t n, uint8_t type, struct sy_tds_prelogin *sp, char *err,
                                size_t errlen);
/* The session's LOGIN7 rebuilt (kept fields + password) and queued to `to`: 0, or -1 with err. */
int sy_tds_login_login7_send(struct sy_tds_session *s, struct bufferevent *to, char *err, size_t errlen);
/* The backend connected: the proxy's PRELOGIN goes out. */
void sy_tds_login_start(struct sy_tds_session *s);
/* Client bytes in TS_PRELOGIN, TS_TLS, TS_LOGIN7. */
void sy_tds_login_client_input(struct sy_tds_session *s, struct evbuffer *in);
/* Backend bytes in TS_PRELOGIN (its PRELOGIN answer) and TS_LOGIN (the login response). */
void sy_tds_login_server_input(struct sy_tds_session *s, struct evbuffer *in);

#endif
