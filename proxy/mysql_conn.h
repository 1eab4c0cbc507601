/* A server connection Switchyard drives itself: connect, log in with mysql_native_password from a
 * stage1 hash (never a password), and run internal queries whose text rows it collects. Sessions
 * use it to open their backend and then take over its bufferevent; the account cache uses it for
 * its admin queries. Every failure is reported as a MySQL ERR payload the caller can forward. */
#ifndef SY_MYSQL_CONN_H
#define SY_MYSQL_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/config.h"
#include "proxy/mysql_auth.h"
#include "proxy/mysql_codec.h"

/* Who to log in as, and how. */
struct sy_mysql_login {
    char user[SY_MYSQL_NAME_MAX];
    enum { SY_LOGIN_STAGE1, SY_LOGIN_EMPTY, SY_LOGIN_BOGUS, SY_LOGIN_RELAY } auth; /* RELAY: the server's
                                      auth exchange goes to the relay callback (sy_mysql_conn_set_relay);
                                      BOGUS: the client failed our check:
                                                                      let the server say "denied" */
    uint8_t stage1[SY_SHA1_LEN];      /* secret (STAGE1 only): wiped with the conn */
    char db[SY_MYSQL_DB_MAX];         /* "" = none */
    uint64_t caps;                    /* wanted capabilities; masked with the server's */
    uint8_t collation;
    uint8_t *attrs;                   /* owned copy of connect attributes, may be NULL */
    size_t attrs_len;
};

/* Rows of an internal query, text protocol; cells[r * n_cols + c] is NULL for SQL NULL. */
struct sy_mysql_result {
    bool ok;                 /* false: err_* describe the failure */
    uint16_t err_code;
    char err_state[6];
    char err_msg[512];
    uint16_t status;         /* final server status */
    uint64_t affected_rows;
    uint32_t stmt_id;        /* sy_mysql_conn_prepare: the server's statement id */
    uint16_t num_params;
    size_t n_cols;
    size_t n_rows;
    char **cells;            /* owned by the result */
};

struct sy_mysql_conn;

/* err/err_len: NULL on success, else an ERR payload (from the server or made up for network errors). */
typedef void (*sy_mysql_login_cb)(struct sy_mysql_conn *c, const uint8_t *err, size_t err_len, void *arg);
typedef void (*sy_mysql_query_cb)(struct sy_mysql_conn *c, const struct sy_mysql_result *res, void *arg);

/* Starts connecting; cb is called exactly once (never from inside this call). The login struct is
 * copied (attrs too) and the caller's copy may be wiped. label names the conn in logs. */
struct sy_mysql_conn *sy_mysql_conn_open(struct event_base *base, const struct sy_endpoint *ep,
                                         const struct sy_mysql_login *login, const char *label,
                                         sy_mysql_login_cb cb, void *arg);
void sy_mysql_conn_free(struct sy_mysql_conn *c); /* NULL-safe; never calls callbacks */

/* SY_LOGIN_RELAY: every packet of the server's authentication exchange (an auth switch request, more
 * data) is handed to cb, which answers with sy_mysql_conn_auth_answer; set right after open. The login
 * callback still reports the end (OK or the server's ERR). */
typedef void (*sy_mysql_auth_relay_cb)(struct sy_mysql_conn *c, const uint8_t *p, size_t n, void *arg);
void sy_mysql_conn_set_relay(struct sy_mysql_conn *c, sy_mysql_auth_relay_cb cb);
/* No callback of c runs any more (its owner let it go; it is freed later). */
void sy_mysql_conn_detach(struct sy_mysql_conn *c);
void sy_mysql_conn_auth_answer(struct sy_mysql_conn *c, const uint8_t *p, size_t n);

/* One internal COM_QUERY on a logged-in, idle conn; cb once. -1 if the conn is not idle. */
int sy_mysql_conn_query(struct sy_mysql_conn *c, const char *sql, sy_mysql_query_cb cb, void *arg) SY_MUST_CHECK;

/* COM_STMT_PREPARE on a logged-in, idle conn; the result carries stmt_id and num_params. */
int sy_mysql_conn_prepare(struct sy_mysql_conn *c, const char *sql, sy_mysql_query_cb cb, void *arg) SY_MUST_CHECK;
/* The server status after the last internal command (or the greeting's). */
uint16_t sy_mysql_conn_status(const struct sy_mysql_conn *c);

/* What the server told us at connect and login. The whole greeting only until a session relays over c
 * (NULL after sy_mysql_conn_relay_start: an idle session keeps none); its thread id always. */
const struct sy_mysql_greeting *sy_mysql_conn_greeting(const struct sy_mysql_conn *c);
uint32_t sy_mysql_conn_thread_id(const struct sy_mysql_conn *c);
uint64_t sy_mysql_conn_caps(const struct sy_mysql_conn *c);     /* negotiated */
/* A session relays over c from now on (logged in, idle): c's socket is read with one recv() per readiness
 * (proxy/relay.h, reader) until c runs a query of its own again. */
void sy_mysql_conn_relay_start(struct sy_mysql_conn *c);
/* A relaying, idle conn with nothing buffered frees its bufferevent (proxy/relay.h, sleeping): wake(fd, what,
 * arg) runs when the server sends anything or closes. -1 (nothing changed) when it cannot. */
int sy_mysql_conn_sleep(struct sy_mysql_conn *c, event_callback_fn wake, void *arg) SY_MUST_CHECK;
/* A new bufferevent on the socket (no callbacks; the reader reads, on): the session takes it over again.
 * -1 when out of memory (still asleep). Nothing (0) when awake. */
int sy_mysql_conn_wake(struct sy_mysql_conn *c) SY_MUST_CHECK;
/* Reading c's socket on or off (through the reader while a session relays). */
void sy_mysql_conn_read_enable(struct sy_mysql_conn *c, bool on);
struct bufferevent *sy_mysql_conn_bev(struct sy_mysql_conn *c); /* ref: the caller may set callbacks
                                                                    while no query runs */
/* The local address of the connection as the server sees it ("127.0.0.1"; "" when unknown). */
void sy_mysql_conn_local_ip(const struct sy_mysql_conn *c, char *out, size_t outlen);

void sy_mysql_result_clear(struct sy_mysql_result *r);

/* Builds an ERR payload (for a made-up error) into buf; returns its length. */
size_t sy_mysql_conn_make_err(uint8_t *buf, size_t cap, uint16_t code, const char *state, const char *fmt, ...)
    SY_PRINTF(5, 6);

#endif
