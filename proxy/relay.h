/* Relaying bytes between a client's and a backend's bufferevents, the same for every engine's sessions
 * (pgbouncer's sbuf.c): how much is still on its way to a socket, writing it out at once, and when a
 * side's reading pauses because the other side's output is full.
 *
 * Backpressure: bytes move from one side's input to the other side's output; when that output holds
 * more than SY_RELAY_HIGH_WATER, reading the first side stops (the kernel's buffers then push back on
 * the peer), and it starts again once the output has drained to half: a write watermark at that level
 * calls the session back, but only while the write event is armed - a direct write that takes everything
 * disarms it, so the session must also look after each flush (mysql_session.c: sy_mysql_session_flush).
 * Nothing is ever dropped or buffered without bound.
 *
 * Direct writes: once a session relays, the bytes produced while handling a read are written straight
 * to a plain TCP socket at the end of that callback (one write per batch); libevent's write event (two
 * epoll_ctl calls per message) is armed only when the socket takes less than we have, and disarmed
 * once drained. A TLS or compression filter keeps its own writing. */
#ifndef SY_PROXY_RELAY_H
#define SY_PROXY_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/config.h"

#define SY_RELAY_HIGH_WATER (4u << 20) /* pause reading a side while the other's output holds more */
#define SY_RELAY_LOW_WATER (SY_RELAY_HIGH_WATER / 2) /* resume once it has drained to this */

/* Whether bev writes to its socket itself (no filter underneath: no TLS, no compression). */
bool sy_relay_is_plain(struct bufferevent *bev);

/* Writes bev's output to its socket now (plain), arming the write event only for what the socket did
 * not take; a filtered bev is just told to write. */
void sy_relay_flush(struct bufferevent *bev);

/* A plain bev's output has drained: stop watching writability. */
void sy_relay_write_drained(struct bufferevent *bev);

/* Bytes queued toward bev's peer that the kernel does not have yet: `staged` (may be NULL: bytes kept
 * before the first filter) plus the output of bev and of every bufferevent under it. */
size_t sy_relay_pending(struct bufferevent *bev, struct evbuffer *staged);

/* Whether a side's reading must pause with `queued` bytes on their way out the other side, and whether
 * a paused one may resume. */
static inline bool sy_relay_over(size_t queued)
{
    return queued > SY_RELAY_HIGH_WATER;
}

static inline bool sy_relay_drained(size_t queued)
{
    return queued <= SY_RELAY_LOW_WATER;
}

/* ---- reading a plain socket ourselves ----------------------------------------------------------------
 *
 * libevent 2.1's socket bufferevent reads with ioctl(FIONREAD) and then readv() of at most 4096 bytes:
 * two syscalls per read, and a reply of 10 KiB takes three reads (and so three writes on to the peer).
 * A reader replaces that while a session relays: one recv() of up to SY_RELAY_READ_MAX bytes (the bev's
 * max single read does not apply) into a per-thread buffer, appended to the bev's input, then the
 * bev's own read callback - or its event callback with BEV_EVENT_READING | EOF/ERROR - whatever callbacks
 * the bev has at that moment, so the code above it does not change. While attached, the bev's own EV_READ
 * stays off and reading goes on and off through sy_relay_reader_enable; detached, the bev reads itself
 * again (its read timeouts only work then: attach only where none is set). A bev under a filter (TLS,
 * compression) is never attached: the filter reads it. The input evbuffer holds only what was read and
 * not yet consumed (no reservation left behind: an idle session keeps no read buffer). */
#define SY_RELAY_READ_MAX (64u << 10)

struct sy_relay_reader {
    struct event *ev;          /* owned: EV_READ | EV_PERSIST on bev's socket; NULL before the first attach.
                                  Asleep (sy_relay_sleep) it watches the bare socket for the wake instead */
    struct bufferevent *bev;   /* ref: the bev whose reads this does while attached; NULL when detached */
    const struct timeval *idle;/* ref (a common timeout of ev's base) or NULL: nothing read for this long while
                                  reading is on -> the bev's event callback gets BEV_EVENT_READING |
                                  BEV_EVENT_TIMEOUT, and again each period until something is read */
};

/* Takes over reading of bev (plain, connected): its EV_READ state moves to the reader. -1 (nothing
 * changed, the bev keeps reading itself) when bev is not plain or the event cannot be made. */
int sy_relay_reader_attach(struct sy_relay_reader *r, struct bufferevent *bev);
/* Gives reading back to the bev (its EV_READ as the reader's was). Nothing when not attached. */
void sy_relay_reader_detach(struct sy_relay_reader *r);
/* Reading of bev on or off: through the reader when attached to bev, else the bev's own EV_READ. */
void sy_relay_reader_enable(struct sy_relay_reader *r, struct bufferevent *bev, bool on);
/* Detaches and frees the event (before the bev is freed: its fd closes with it; asleep, the reader owns the
 * fd and closes it here). */
void sy_relay_reader_fini(struct sy_relay_reader *r);
/* The idle period (r->idle) from now on: `ms` on the base of r's event (a common timeout: cheap to re-arm at
 * every read); 0 = none. Attached readers only (nothing happens otherwise). */
void sy_relay_reader_set_idle(struct sy_relay_reader *r, unsigned ms);

/* ---- sleeping: an idle connection without a bufferevent ------------------------------------------------
 *
 * A bufferevent with its two evbuffers costs ~1.3 KiB; a session idle between requests needs none of it.
 * Sleeping frees the bev attached to r (plain, nothing in its input or output) but keeps its socket open:
 * r's event then watches the bare socket and calls wake(fd, what, arg) when it becomes readable (data, EOF
 * or an error: nothing is read). sy_relay_wake builds a new bev on the socket with the reader attached and
 * reading on, and the data that woke it is read by the reader on the next loop turn (epoll is level-
 * triggered), so the code above sees the same callbacks as if it had never slept. */

/* -1 (nothing changed) when bev is not the attached, plain bev or has bytes buffered either way. */
int sy_relay_sleep(struct sy_relay_reader *r, struct bufferevent *bev, event_callback_fn wake, void *arg);
bool sy_relay_asleep(const struct sy_relay_reader *r);
/* A new socket bev (no callbacks set, EV_READ and EV_WRITE off: the reader reads) on the sleeping socket,
 * on the base of r's event; NULL when out of memory (still asleep: the fd stays with r). */
struct bufferevent *sy_relay_wake(struct sy_relay_reader *r);

/* ---- one session's two sides (the MongoDB and SQL Server sessions embed this) ---------------------- */

/* A client session's bufferevents as the relay sees them: where bytes are queued and which side's reading
 * is paused for backpressure. The session owns the bufferevents and frees them; the callbacks let the
 * relay hand a side back to the session when it may read again. */
struct sy_relay_link {
    struct bufferevent *client;    /* owned by the session */
    struct bufferevent *backend;   /* owned by the session; NULL when none */
    bool backend_connected;        /* the backend's connect completed: its output may be written */
    bool client_bp;                /* client reads paused: the backend's output is over high water */
    bool backend_bp;               /* backend reads paused: the client's output is over high water */
    const char *label;             /* ref: the session's log label */
    void *session;                 /* the callbacks' argument */
    void (*client_resume)(void *session);  /* client_bp was cleared: update reading, take what waits */
    void (*backend_resume)(void *session); /* backend_bp was cleared: the same for the backend */
    bool (*closed)(const void *session);   /* the session closed meanwhile: nothing more to do */
    /* once closed (sy_relay_link_close) */
    uint64_t flush_deadline_ms;    /* a final message still queued for the client: freed by then at the latest */
    uint64_t flush_ms;             /* the bound that deadline came from (logged when it strikes) */
    bool client_gone;              /* the client's socket ended: nothing more can be written */
};

/* Bytes on their way to the client / to the backend (0 without that bufferevent). */
size_t sy_relay_link_client_pending(const struct sy_relay_link *l);
size_t sy_relay_link_backend_pending(const struct sy_relay_link *l);
/* After queueing toward the backend (client): true when the queue passed high water and the client's
 * (backend's) reading must now pause (the flag is set; the session updates its reading). */
bool sy_relay_link_backend_over(struct sy_relay_link *l);
bool sy_relay_link_client_over(struct sy_relay_link *l);
/* Backend reading on or off as backpressure says (nothing without a connected backend). */
void sy_relay_link_backend_read_update(struct sy_relay_link *l);
/* The link's part of closing a session: the backend stops at once (callbacks cleared, no reading or
 * writing); the client stops reading and, with `flush` and bytes still queued for it (a final error), keeps
 * writing them for at most flush_ms (flush_deadline_ms set; the session's reaper frees it once drained). */
void sy_relay_link_close(struct sy_relay_link *l, bool flush, uint64_t flush_ms);
/* Whether a closed session may be freed now (`all`: shutdown): its last bytes reached the client, the
 * client is gone, or the deadline passed (logged: dropped). Otherwise *next is lowered to its deadline. */
bool sy_relay_link_reapable(const struct sy_relay_link *l, bool all, uint64_t now_ms, uint64_t *next);
/* Arms a reaper timer for the earliest deadline `next` (0: nothing waits). */
void sy_relay_reaper_arm(struct event *reaper, uint64_t next, uint64_t now_ms);

/* Writes what is due straight to the sockets, then resumes a paused side whose peer's output drained (a
 * direct write that took everything never runs libevent's write callback), until nothing changes. */
void sy_relay_link_flush(struct sy_relay_link *l);

/* Starts a session's backend connection to ep: a socket bufferevent (stored in *out before connecting;
 * the session frees it, also after a failure) with the callbacks, the write watermark at low water, reads
 * of at most max_read bytes and a connect timeout. -1 with err filled when it cannot start. */
int sy_relay_backend_connect(struct event_base *base, const struct sy_endpoint *ep, int timeout_s, size_t max_read,
                             bufferevent_data_cb rd, bufferevent_data_cb wr, bufferevent_event_cb ev, void *arg,
                             struct bufferevent **out, char *err, size_t errlen);
/* The backend's connect completed: TCP_NODELAY, the connect timeout cleared. */
void sy_relay_backend_connected(struct bufferevent *bev);
/* A switch's flip: bev (connected, logged in on the other side) replaces the link's backend, which is freed
 * (never from inside its own callback), with the session's callbacks, the write watermark, reads of at most
 * max_read bytes, reading and writing on. Returns true when the client's reading was paused for the old
 * backend's output (the flag is cleared: the session updates its reading). */
bool sy_relay_link_adopt_backend(struct sy_relay_link *l, struct bufferevent *bev, size_t max_read,
                                 bufferevent_data_cb rd, bufferevent_data_cb wr, bufferevent_event_cb ev);
/* "host:port" ("[v6]:port") of a numeric socket address ("?:?" when it cannot be named). */
void sy_relay_addr_name(const struct sockaddr *sa, socklen_t salen, char *out, size_t outlen);

#endif
