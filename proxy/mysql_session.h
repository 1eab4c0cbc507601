/* One MariaDB client session's state, shared by mysql_session.c (login, relay, tracking) and
 * mysql_switch.c (warm connections on the other side, transaction abort, flip). Private to proxy/. */
#ifndef SY_PROXY_MYSQL_SESSION_H
#define SY_PROXY_MYSQL_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "core/pair.h"
#include "proxy/mysql_codec.h"
#include "proxy/mysql_conn.h"
#include "proxy/mysql_proxy.h"
#include "proxy/relay.h"

/* What the session waits for. */
enum sess_state {
    SS_HANDSHAKE,     /* greeting sent; waiting for the handshake response (or SSLRequest) */
    SS_AUTH_SWITCH,   /* asked the client to switch to mysql_native_password */
    SS_AUTH_RELAY,    /* passed the server's auth request (another plugin) on: the client's answer is due */
    SS_LOOKUP,        /* waiting for the account cache */
    SS_LOGIN,         /* logging in on the active side as the client's account */
    SS_INIT,          /* session-tracking setup query on the new backend */
    SS_IDLE,          /* no request in flight */
    SS_BUSY,          /* request forwarded, reply not complete */
    SS_INFILE,        /* LOAD DATA LOCAL: client file packets flow to the backend */
    SS_CHANGE_USER,   /* COM_CHANGE_USER: verifying and replaying it on the backend */
    SS_HELD,          /* pair held: the next request waits in the socket buffer */
    SS_INTERNAL,      /* the proxy's own query runs on the backend (rollback, user variables) */
    SS_PARKED,        /* logged in by us, but the backend login waits for the release of a hold */
    SS_RECONNECT,     /* the backend was lost while idle: a new one is being built on the active side */
    SS_CLOSING,       /* closed; freed by the reaper */
    SS__COUNT
};

/* What each state means to the code that asks: one table (mysql_session.c) instead of lists of states
 * written out at each place that needs to know. */
struct sess_state_info {
    const char *name;      /* as `clients` and the debug log show it */
    bool logged_in;        /* the client is logged in on a backend session we relay for: IDLE, BUSY, INFILE,
                              HELD, INTERNAL */
    bool relaying;         /* the client's traffic flows through our bufferevents (the backend's is ours, not
                              mysql_conn's): IDLE, BUSY, INFILE, HELD */
    bool between_requests; /* no request of the client in flight: IDLE, HELD */
    bool past_login;       /* the login is done (a backend may be lost or being rebuilt): IDLE .. RECONNECT */
    bool logs_in_later;    /* not on any side yet: it logs in on the active side when it gets there
                              (HANDSHAKE, AUTH_SWITCH, LOOKUP, PARKED) */
};
extern const struct sess_state_info sy_mysql_sess_states[SS__COUNT];
#define SESS_STATE(s) (&sy_mysql_sess_states[(s)->state])


/* A prepared statement as a switchover must re-create it. */
struct sess_stmt {
    uint32_t id;            /* id the client uses (= the backend's until a switchover maps them) */
    uint32_t backend_id;    /* id on the current backend */
    uint16_t num_params;
    uint8_t *types;         /* owned: 2 * num_params bytes of the last bound types, NULL before */
    char *sql;              /* owned: statement text; NULL when longer than SESS_MAX_TRACKED_SQL */
    uint32_t warm_id;       /* id of the re-prepared statement on the warm connection */
    bool warm_ok;           /* warm_id is valid */
    bool send_types;        /* re-prepared: the next execute must carry the remembered types */
};

/* The connection a session moves to at a flip. */
enum sess_warm {
    WARM_NONE,      /* none */
    WARM_BUILDING,  /* logging in / replaying state */
    WARM_READY,     /* logged in with the session's state (user variables: see uservars_done) */
    WARM_FAILED,    /* warm_error says why */
};

struct sess_var {
    char *name;   /* owned */
    char *value;  /* owned */
};

struct sy_mysql_session {
    TAILQ_ENTRY(sy_mysql_session) link;  /* in px->sessions, then px->closing */
    struct sy_mysql_proxy *px;           /* ref: owns the session */
    uint32_t id;                         /* connection id the client sees (greeting, KILL) */
    enum sess_state state;
    char *peer;                          /* owned (sy_mysql_session_str_set): "127.0.0.1:51234" */
    char *label;                         /* owned: "orders C-1000000001 127.0.0.1:51234" for logs */
    struct bufferevent *client;          /* owned; an OpenSSL filter over the socket once TLS is up */
    struct sy_relay_reader client_rd;    /* reads a plain client socket once the session relays (s->direct) */
    struct sy_mysql_conn *backend;       /* owned; its bufferevent is driven by us once logged in */
    struct sy_mysql_accounts_wait *wait; /* owned registration while in SS_LOOKUP / CHANGE_USER */
    enum sy_side side;                   /* which DB the backend is on */
    uint8_t salt[SY_MYSQL_SALT_LEN];     /* our scramble to the client */
    uint64_t caps;                       /* negotiated with the client */
    uint64_t backend_caps;               /* asked of the backend: client's + SESSION_TRACK */
    uint8_t collation;
    uint32_t max_packet;
    char *user;                          /* owned, never NULL ("" until the handshake response) */
    char *schema;                        /* owned, never NULL: current database ("" = none) */
    uint8_t *attrs;                      /* owned: client's connect attributes, replayed on logins */
    size_t attrs_len;
    bool have_stage1;                    /* stage1 below is valid (client proved the password) */
    bool empty_password;                 /* account has no password and the client sent none */
    char *relayed_plugin;                /* owned, NULL unless the login was relayed to the server (this
                                            plugin): the proxy cannot log the session in elsewhere: pinned */
    enum sess_state relay_return;        /* SS_LOGIN or SS_CHANGE_USER, after the client's answer */
    uint8_t stage1[SY_SHA1_LEN];         /* secret: SHA1(password); wiped on free */
    uint8_t *client_auth;                /* owned: the scramble being verified (sy_mysql_session_auth_set),
                                            wiped and freed once used: an idle session keeps none */
    size_t client_auth_len;
    bool refreshed;                      /* the account cache was reloaded for this login already */
    uint8_t seq;                         /* last sequence id received from the client */
    uint16_t status;                     /* last server status flags */
    bool in_txn;                         /* status has IN_TRANS */
    uint8_t cmd;                         /* command in flight (SS_BUSY) */
    bool kill_pending;                   /* SS_BUSY with a KILL whose target another worker loop looks up
                                            (mysql_fanout.c); nothing sent to the backend yet; cleared
                                            when the session goes idle (whatever ended the command) */
    uint8_t kill_ticket;                 /* numbers this session's cross-worker KILLs: an answer to an
                                            older one (its command ended another way) is dropped */
    struct sy_mysql_resp resp;           /* tracker of the reply in flight */
    uint64_t req_left;                   /* bytes of the current client packet still to forward */
    uint64_t discard_left;               /* bytes of a request the proxy answered itself, still to drop */
    bool discard_continues;              /* ... and it continues in another 16 MiB packet */
    bool req_continues;                  /* current client packet is 0xFFFFFF long: more follow */
    uint8_t fwd_seq;                     /* sequence id of the last request packet sent to the backend */
    uint64_t resp_left;                  /* bytes of the current server packet still to forward */
    bool resp_done_after_stream;         /* the streaming packet ends the reply */
    uint64_t held_since_ms;              /* when SS_HELD (or SS_PARKED) began */
    bool direct;                         /* logged in: plain sockets are written directly (see flush) */
    bool asleep;                         /* idle without bufferevents (mysql_relay.c, sleeping): client is
                                            NULL, backend's bev too; both readers watch the bare sockets */
    bool compressed;                     /* client is a compression filter (CLIENT_COMPRESS) from login on */
    struct evbuffer *zout;               /* owned, compressed sessions: client bytes until client_push() */
    struct event *drained_ev;            /* owned, compressed sessions: the socket's output shrank */
    bool pulling;                        /* inflating buffered frames in client_read_update */
    uint64_t flush_deadline_ms;          /* SS_CLOSING with a final error queued: freed by then at the latest */
    bool client_gone;                    /* SS_CLOSING: the client socket ended (nothing left to flush) */
    bool client_bp;                      /* client reads paused: backend output over high water */
    bool backend_bp;                     /* backend reads paused: client output over high water */
    char *pending_prepare_sql;           /* owned: text of the COM_STMT_PREPARE in flight */
    bool pending_reset;                  /* reply in flight is for COM_RESET_CONNECTION */
    bool login_reply_due;                /* INIT ends a login: the client still waits for its OK */
    struct sess_stmt *stmts;             /* owned array */
    size_t n_stmts, cap_stmts;
    struct sess_var *vars;               /* owned: tracked session variables, as last reported */
    size_t n_vars, cap_vars;
    char last_gtid[64];                  /* this session's last acknowledged commit */
    /* commit_wait (mysql_commit_wait.c) */
    bool cw_gtid_new;                    /* the OK just tracked moved last_gtid to cw_gtid: not yet in the ack
                                            ledger (sy_mysql_track_ack puts it there when the OK is passed on) */
    struct sy_gtid cw_gtid;
    bool cw_waiting;                     /* that OK waits, undrained, at the head of the backend's input; in
                                            px->cw_waiters; the backend is not read meanwhile */
    bool cw_final;                       /* the held OK ends the reply */
    uint64_t cw_since_ms;                /* monotonic, when the wait began */
    struct event *cw_timer;              /* owned: commit_wait_timeout_ms of the wait */
    TAILQ_ENTRY(sy_mysql_session) cw_link; /* in px->cw_waiters while cw_waiting */
    /* switch support (mysql_switch.c) */
    struct sy_mysql_conn *warm;          /* owned: logged in on warm_side with this session's state */
    enum sess_warm warm_state;
    enum sy_side warm_side;
    bool warm_stale;                     /* session state changed after the warm connection was built */
    bool uservars_done;                  /* user variables were copied (needs a quiet session) */
    bool uservars_copying;               /* a copy is in flight (read on the backend, set on warm) */
    size_t warm_next;                    /* next statement to re-prepare while building */
    char *warm_error;                    /* owned: why the warm connection failed (WARM_FAILED), else NULL */
    bool txn_aborted;                    /* the proxy rolled the transaction back: 1213 until ROLLBACK */
    bool abort_due;                      /* roll back once the statement in flight ends */
    bool ids_mapped;                     /* statements were re-prepared: client ids != backend ids */
    bool backend_lost;                   /* the backend went away while idle; rebuilt on the next request */
    struct sy_mysql_conn *probe;         /* owned: after backend_lost, does the same server still answer? */
    enum sess_state internal_return;     /* state to go back to after SS_INTERNAL */
    int parked_auth;                     /* SS_PARKED: the login kind to use at release */
    /* pins (mysql_track.c): what the session holds on its side, from its statements' text */
    char **temp_names;                   /* owned: temporary tables, "schema" 0x1F "name" */
    size_t n_temp, cap_temp;
    bool locked_tables;                  /* LOCK TABLES / FLUSH ... WITH READ LOCK / BACKUP LOCK */
    char **handlers;                     /* owned: open HANDLERs by name as written (alias, else table) */
    size_t n_handlers, cap_handlers;
    char **user_locks;                   /* owned: user locks held, by name as written; a name taken n
                                            times is here n times (GET_LOCK is recursive) */
    size_t n_user_locks, cap_user_locks;
    unsigned unnamed_locks;              /* GET_LOCK of a name that is no literal: only RELEASE_ALL_LOCKS ends it */
    bool xa;                             /* XA START seen, XA COMMIT / ROLLBACK not yet */
    bool req_read;                       /* the request in flight is an autocommit read (it may finish on
                                            the old side while the others move: see flip_due) */
    bool flip_due;                       /* a switch flipped while a read ran: move once its reply ends */
    bool cursors_used;                   /* an execute asked for a cursor: CURSOR_EXISTS then means one is open */
    bool pin_unknown;
    bool pin_ambiguous;                  /* a statement read differently under other quoting sql_modes */                    /* the proxy lost track (out of memory, variables unreadable) */
    char **pend_drops;                   /* owned: temporary tables the request in flight drops */
    size_t n_pend_drops, cap_pend_drops;
    bool pend_unlock, pend_xa_end;       /* ends the request in flight applies if it succeeds */
    bool pend_drops_known;               /* an "Unknown table" error left in pend_drops only what was dropped */
    struct sess_var *sql_prepared;       /* owned: PREPARE name FROM 'text' (SQL level), by name in lower case;
                                            value NULL when the text was no literal or too long */
    size_t n_sql_prepared, cap_sql_prepared;
    char **pend_closes;                  /* owned: HANDLERs the request in flight closes */
    size_t n_pend_closes, cap_pend_closes;
    char **pend_lock_ops;                /* owned: the request in flight's lock calls in order, replayed if it
                                            succeeds: "G"/"R" + name, "U" (GET, no literal name), "A" (all) */
    size_t n_pend_lock_ops, cap_pend_lock_ops;
    /* the client's own session-tracking settings (mysql_track.c) */
    unsigned resync_names;               /* SY_SQL_TRACK_* a statement set: read the variables back */
    unsigned resync_names_now;           /* those of the read-back in flight */
    bool client_track_set;               /* the client chose its own: filter what it is shown */
    char *client_track_vars;             /* owned: its session_track_system_variables list */
    bool client_track_schema, client_track_state;
};


/* ---- between the session's files (mysql_session.c, mysql_login.c, mysql_relay.c) --------------- */

#define SESS_MAX_TRACKED_SQL (1u << 20) /* prepared statement text kept for re-prepare */
#define SESS_FLUSH_MS 5000              /* how long a closed session's final error may take to be read */
/* MariaDB extensions offered when the server offers them: progress reports (ERR 0xFFFF packets inside a
 * reply, followed by the tracker), bulk execute (statement ids mapped like any COM_STMT_*), extended type
 * info and metadata caching (the tracker reads the "metadata follows" byte). COM_MULTI is not offered. */
#define SESS_EXT_CAPS                                                                                      \
    (SY_CAP_MARIADB_PROGRESS | SY_CAP_MARIADB_STMT_BULK | SY_CAP_MARIADB_EXT_TYPE_INFO |                 \
     SY_CAP_MARIADB_CACHE_METADATA)

/* mysql_session.c: client writes, backpressure, closing, socket callbacks */
void sy_mysql_session_backend_lost(struct sy_mysql_session *s);
void sy_mysql_session_client_err(struct sy_mysql_session *s, uint8_t seq, uint16_t code, const char *state, const char *msg);
void sy_mysql_session_client_ok(struct sy_mysql_session *s, uint8_t seq);
struct evbuffer *sy_mysql_session_client_out(const struct sy_mysql_session *s);
void sy_mysql_session_client_packet(struct sy_mysql_session *s, uint8_t seq, const uint8_t *payload, size_t len);
void sy_mysql_session_client_read_update(struct sy_mysql_session *s);
void sy_mysql_session_lose(struct sy_mysql_session *s, const char *why);
void sy_mysql_session_move_bytes(struct sy_mysql_session *s, struct evbuffer *src, struct evbuffer *dst, size_t n, bool to_backend);
void sy_mysql_session_on_client_drained(evutil_socket_t fd, short what, void *arg);
void sy_mysql_session_on_socket_out(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg);
void sy_mysql_session_rearm_client(struct sy_mysql_session *s);
void sy_mysql_session_flush(struct sy_mysql_session *s);
void sy_mysql_session_stmt_free(struct sess_stmt *st);
/* The session's string fields (label, peer, user, schema, relayed_plugin) are sized to their text, not
 * to their protocol maximum (an idle session is mostly these): *dst becomes fmt's text, cut at max - 1
 * bytes as the fixed arrays they replace did; false when out of memory (*dst unchanged). "" costs nothing
 * (sy_mysql_session_empty). */
extern char sy_mysql_session_empty[1];
bool sy_mysql_session_str_set(char **dst, size_t max, const char *fmt, ...) SY_PRINTF(3, 4) SY_MUST_CHECK;
void sy_mysql_session_str_free(char **dst);
/* Keeps the client's auth response (at most SY_MYSQL_AUTH_MAX bytes) for the login to verify; false when out
 * of memory (the caller closes the session: an empty response must never stand in for it). */
bool sy_mysql_session_auth_set(struct sy_mysql_session *s, const uint8_t *p, size_t n);
/* Wipes and frees it. */
void sy_mysql_session_auth_clear(struct sy_mysql_session *s);
void sy_mysql_session_stmts_clear(struct sy_mysql_session *s);
void sy_mysql_session_on_backend_read(struct bufferevent *bev, void *arg);
void sy_mysql_session_on_backend_write(struct bufferevent *bev, void *arg);
void sy_mysql_session_on_backend_event(struct bufferevent *bev, short what, void *arg);

/* mysql_login.c */
void sy_mysql_login_backend(struct sy_mysql_session *s, int auth_kind);
void sy_mysql_login_handshake_response(struct sy_mysql_session *s, const uint8_t *p, size_t n);
void sy_mysql_login_on_init_done(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg);
void sy_mysql_login_greet(struct sy_mysql_session *s);
void sy_mysql_login_start_auth(struct sy_mysql_session *s);
void sy_mysql_login_lookup(struct sy_mysql_session *s);
void sy_mysql_login_on_auth_packet(struct sy_mysql_conn *c, const uint8_t *p, size_t n, void *arg);

/* mysql_relay.c: processes what waits in the client's / the backend's input */
void sy_mysql_relay_backend(struct sy_mysql_session *s);
void sy_mysql_relay_client(struct sy_mysql_session *s);
/* Nothing read from the client for the pair's idle_sleep_ms: sleeps (frees both bufferevents) when the session may. */
void sy_mysql_relay_idle(struct sy_mysql_session *s);
/* Builds a sleeping session's bufferevents again (nothing when awake). false: out of memory (the caller
 * closes the session; nothing else may use it). */
bool sy_mysql_relay_wake(struct sy_mysql_session *s) SY_MUST_CHECK;

/* ---- shared between mysql_session.c and mysql_switch.c ------------------------------------------ */

/* Session tracking for everything a switchover replays, on every backend session. */
extern const char sy_mysql_session_init_sql[];

bool sy_mysql_session_set_state(struct sy_mysql_session *s, enum sess_state to);
/* Takes the backend's bufferevent over for relaying (after a login or an internal query). */
void sy_mysql_session_take_backend(struct sy_mysql_session *s);
/* Processes what waits in the client buffer, then writes what is due (after a state change). */
void sy_mysql_session_kick(struct sy_mysql_session *s);
/* Sends an ERR to the client and closes once it is flushed. */
void sy_mysql_session_fail(struct sy_mysql_session *s, uint8_t seq, uint16_t code, const char *state,
                           const char *msg);
/* The client's login as the account it proved, for a connection on another side. */
void sy_mysql_session_login(const struct sy_mysql_session *s, struct sy_mysql_login *out);
/* Whether the session has a logged-in backend and nothing in flight (idle or held). */
bool sy_mysql_session_quiet(const struct sy_mysql_session *s);
/* Why the session cannot move to the other side (temporary tables, LOCK TABLES, GET_LOCK, XA, an
 * open cursor), or NULL. */
const char *sy_mysql_session_pinned(const struct sy_mysql_session *s);

/* ---- mysql_track.c ------------------------------------------------------------------------------- */

/* A request's SQL text (COM_QUERY, or a prepared statement's at execute): pins it starts count now,
 * ends wait for the reply (sy_mysql_track_reply). */
void sy_mysql_track_request(struct sy_mysql_session *s, const uint8_t *sql, size_t len);
void sy_mysql_track_reply(struct sy_mysql_session *s, bool failed);
/* An error in the reply in flight: "Unknown table" names the tables a DROP did not find; the others
 * it dropped. */
void sy_mysql_track_error(struct sy_mysql_session *s, const struct sy_mysql_err *e);
void sy_mysql_track_pins_clear(struct sy_mysql_session *s);
void sy_mysql_track_free(struct sy_mysql_session *s);
void sy_mysql_track_vars_clear(struct sy_mysql_session *s);
/* The session's state changed: a warm connection built before no longer matches it. */
void sy_mysql_track_warm_outdated(struct sy_mysql_session *s);
/* Schema and variables from an OK's session-state block; a new last_gtid is noted in cw_gtid. */
void sy_mysql_track_ok(struct sy_mysql_session *s, const struct sy_mysql_ok *ok);
/* The OK noted by sy_mysql_track_ok goes to the client: its GTID enters the ack ledger. */
void sy_mysql_track_ack(struct sy_mysql_session *s);
/* After a reply, when a statement named the tracking settings: reads the session's variables back and
 * sets the proxy's tracking again (internal queries); true when started (the session is INTERNAL). */
bool sy_mysql_track_resync(struct sy_mysql_session *s);
/* The state block with only what the client's own tracking settings show; (size_t)-1 when it cannot be
 * rebuilt in cap. */
size_t sy_mysql_track_filter(const struct sy_mysql_session *s, const uint8_t *state, size_t len, uint8_t *out,
                             size_t cap);

/* ---- mysql_commit_wait.c ---------------------------------------------------------------------- */

/* An OK that moved last_gtid (s->cw_gtid) arrived: whether it must wait for the pair's commit_wait
 * position (then the session is in px->cw_waiters and the caller leaves the packet in the backend's
 * input and returns). final: the OK ends the reply. */
bool sy_mysql_cw_hold(struct sy_mysql_session *s, bool final);
/* The session closes: its wait ends without an answer. */
void sy_mysql_cw_cancel(struct sy_mysql_session *s);
void sy_mysql_cw_free(struct sy_mysql_session *s);
/* mysql_relay.c: the held OK is passed on (ok) or replaced by an error. */
void sy_mysql_relay_cw_done(struct sy_mysql_session *s, bool ok, const char *errmsg);

/* ---- mysql_switch.c ---------------------------------------------------------------------------- */

/* Rolls the open transaction back on the backend (internal query); afterwards the client gets
 * 1213 / 40001 until it sends ROLLBACK. */
void sy_mysql_switch_rollback(struct sy_mysql_session *s);
/* The backend was lost while idle and a request waits: builds a new one on the active side with the
 * session's state, then lets the request through (or fails the session with the reason). */
void sy_mysql_switch_reconnect(struct sy_mysql_session *s);
/* The reply of a read that ran across a flip has ended: copies the user variables (now that the session
 * is quiet), then moves the session to its warm connection. True when it took the session over. */
bool sy_mysql_switch_finish_flip(struct sy_mysql_session *s);

#endif
