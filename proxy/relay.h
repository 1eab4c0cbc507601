/* Relaying bytes between a client's and a backend's bufferevents, the same for every engine's sessions
 * (pgbouncer's sbuf.c): how much is still on its way to a socket, writing it out at once, and when a
 * side's reading pauses because the other side's output is full.
 *
 * Backpressure: bytes move from one side's input to the other side's output; when that output holds
 * more than SY_RELAY_HIGH_WATER, reading the first side stops (the kernel's buffers then push back on
 * the peer), and it starts again once the output has drained to half (a write watermark at that level
 * calls the session back). Nothing is ever dropped or buffered without bound.
 *
 * Direct writes: once a session relays, the bytes produced while handling a read are written straight
 * to a plain TCP socket at the end of that callback (one write per batch); libevent's write event (two
 * epoll_ctl calls per message) is armed only when the socket takes less than we have, and disarmed
 * once drained. A TLS or compression filter keeps its own writing. */
#ifndef SY_PROXY_RELAY_H
#define SY_PROXY_RELAY_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

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

#endif
