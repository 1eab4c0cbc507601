/* proxy/relay.c's reader idle timeout and sleeping: over a socketpair on a real event_base, the idle period is
 * reported as a read timeout, a sleeping socket wakes on data and on EOF without reading anything, the woken
 * bufferevent then gets exactly the bytes that woke it, a bev with bytes buffered refuses to sleep, and a
 * reader freed while asleep closes its socket. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "proxy/relay.h"
#include "tests/unit/check.h"

struct probe {
    struct event_base *base;
    int timeouts;     /* BEV_EVENT_READING | BEV_EVENT_TIMEOUT seen */
    int eofs;
    int wakes;
    size_t read;      /* bytes the read callback found */
    char data[64];
};

static void on_read(struct bufferevent *bev, void *arg)
{
    struct probe *p = arg;
    p->read += bufferevent_read(bev, p->data + p->read, sizeof p->data - 1 - p->read);
    event_base_loopbreak(p->base);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    struct probe *p = arg;
    (void)bev;
    if (what == (BEV_EVENT_READING | BEV_EVENT_TIMEOUT))
        p->timeouts++;
    if (what & BEV_EVENT_EOF)
        p->eofs++;
    event_base_loopbreak(p->base);
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct probe *p = arg;
    (void)fd;
    (void)what;
    p->wakes++;
    event_base_loopbreak(p->base);
}

static void run(struct event_base *base, int ms)
{
    struct timeval tv = { 0, ms * 1000 };
    event_base_loopexit(base, &tv); /* a bound: each step breaks out itself when it happens */
    event_base_dispatch(base);
}

static struct bufferevent *attach(struct probe *p, struct sy_relay_reader *r, int fd)
{
    struct bufferevent *bev = bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(bev, on_read, NULL, on_event, p);
    bufferevent_enable(bev, EV_READ);
    CHECK(sy_relay_reader_attach(r, bev) == 0);
    return bev;
}

static void test_idle_sleep_wake(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    evutil_make_socket_nonblocking(sv[0]);
    struct probe p = { .base = event_base_new() };
    struct sy_relay_reader r = { 0 };
    struct bufferevent *bev = attach(&p, &r, sv[0]);
    sy_relay_reader_set_idle(&r, 20);
    CHECK(r.idle != NULL);

    run(p.base, 1000); /* nothing sent: the idle period strikes as a read timeout */
    CHECK(p.timeouts == 1 && p.read == 0);

    /* bytes waiting in its input: it may not sleep */
    struct evbuffer *in = bufferevent_get_input(bev);
    evbuffer_unfreeze(in, 0); /* a socket bev keeps its input's end frozen outside its own reads */
    CHECK(evbuffer_add(in, "x", 1) == 0);
    CHECK(sy_relay_sleep(&r, bev, on_wake, &p) == -1 && !sy_relay_asleep(&r));
    evbuffer_drain(in, 1);
    evbuffer_freeze(in, 0);

    CHECK(sy_relay_sleep(&r, bev, on_wake, &p) == 0 && sy_relay_asleep(&r));
    CHECK(fcntl(sv[0], F_GETFD) != -1); /* the socket outlived its bev */
    run(p.base, 100);
    CHECK(p.wakes == 0 && p.timeouts == 1); /* asleep: no idle timer, no wake without data */

    CHECK(write(sv[1], "hello", 5) == 5);
    run(p.base, 1000);
    CHECK(p.wakes == 1 && p.read == 0); /* woken, nothing read yet */

    bev = sy_relay_wake(&r);
    CHECK(bev != NULL && !sy_relay_asleep(&r) && r.bev == bev);
    CHECK((bufferevent_get_enabled(bev) & EV_READ) == 0); /* the reader reads, not the bev */
    bufferevent_setcb(bev, on_read, NULL, on_event, &p);
    run(p.base, 1000);
    CHECK(p.read == 5 && memcmp(p.data, "hello", 5) == 0);

    /* asleep again; the peer closes: that wakes it too, and the woken bev sees the EOF */
    CHECK(sy_relay_sleep(&r, bev, on_wake, &p) == 0);
    close(sv[1]);
    run(p.base, 1000);
    CHECK(p.wakes == 2);
    bev = sy_relay_wake(&r);
    CHECK(bev != NULL);
    bufferevent_setcb(bev, on_read, NULL, on_event, &p);
    run(p.base, 1000);
    CHECK(p.eofs == 1);

    /* freed asleep: the reader owns the socket and closes it */
    CHECK(sy_relay_sleep(&r, bev, on_wake, &p) == 0);
    sy_relay_reader_fini(&r);
    CHECK(fcntl(sv[0], F_GETFD) == -1 && errno == EBADF);
    event_base_free(p.base);
}

static void test_wake_when_awake_is_nothing(void)
{
    struct sy_relay_reader r = { 0 };
    CHECK(!sy_relay_asleep(&r) && sy_relay_wake(&r) == NULL);
    sy_relay_reader_set_idle(&r, 250); /* not attached: nothing */
    CHECK(r.idle == NULL);
}

int main(void)
{
    test_idle_sleep_wake();
    test_wake_when_awake_is_nothing();
    return CHECK_DONE();
}
