/* Byte relay helpers shared by every engine's sessions (proxy/relay.h). */
#include "proxy/relay.h"

#include <event2/event.h>

bool sy_relay_is_plain(struct bufferevent *bev)
{
    return bufferevent_get_underlying(bev) == NULL;
}

void sy_relay_flush(struct bufferevent *bev)
{
    if (!sy_relay_is_plain(bev)) {
        bufferevent_enable(bev, EV_WRITE);
        return;
    }
    struct evbuffer *out = bufferevent_get_output(bev);
    /* A bufferevent keeps its output's front frozen; its own write path unfreezes around the write,
     * and so do we. */
    evbuffer_unfreeze(out, 1);
    while (evbuffer_get_length(out) > 0)
        if (evbuffer_write(out, bufferevent_getfd(bev)) <= 0)
            break; /* EAGAIN, or an error libevent will report once the write event runs */
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(bev, EV_WRITE);
    else
        bufferevent_disable(bev, EV_WRITE); /* no-op (no syscall) when it was not armed */
}

void sy_relay_write_drained(struct bufferevent *bev)
{
    if (sy_relay_is_plain(bev) && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        bufferevent_disable(bev, EV_WRITE);
}

size_t sy_relay_pending(struct bufferevent *bev, struct evbuffer *staged)
{
    size_t n = staged ? evbuffer_get_length(staged) : 0;
    for (struct bufferevent *b = bev; b != NULL; b = bufferevent_get_underlying(b))
        n += evbuffer_get_length(bufferevent_get_output(b));
    return n;
}
