/* Byte relay helpers shared by every engine's sessions (proxy/relay.h): direct writes, pending bytes,
 * and for the sessions built on struct sy_relay_link the backpressure loop and the backend's connect. */
#include "proxy/relay.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>

#include <event2/event.h>

#include "core/log.h"
#include "core/pair.h"

bool sy_relay_is_plain(struct bufferevent *bev)
{
    return bufferevent_get_underlying(bev) == NULL;
}

/* One write of out to fd: send() when the bytes are one piece (a request, a reply read in one go; no iovec
 * to build or copy in), libevent's writev otherwise (one syscall for every piece: rows moved from the
 * server's input plus an OK or EOF the proxy wrote itself). What was taken is drained. */
static int write_out(struct evbuffer *out, evutil_socket_t fd)
{
    struct evbuffer_iovec v;
    /* with a negative length evbuffer_peek stops when v is full: compare sizes, not its count */
    if (evbuffer_peek(out, -1, NULL, &v, 1) < 1 || v.iov_len < evbuffer_get_length(out))
        return evbuffer_write(out, fd);
    ssize_t n = send(fd, v.iov_base, v.iov_len, MSG_NOSIGNAL);
    if (n > 0)
        evbuffer_drain(out, (size_t)n);
    return (int)n;
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
        if (write_out(out, bufferevent_getfd(bev)) <= 0)
            break; /* EAGAIN, or an error libevent will report once the write event runs */
    evbuffer_freeze(out, 1);
    if (evbuffer_get_length(out) > 0)
        bufferevent_enable(bev, EV_WRITE);
    else if (bufferevent_get_enabled(bev) & EV_WRITE)
        bufferevent_disable(bev, EV_WRITE); /* looked at first: disabling takes the base's lock and an event_del */
}

void sy_relay_write_drained(struct bufferevent *bev)
{
    if (sy_relay_is_plain(bev) && evbuffer_get_length(bufferevent_get_output(bev)) == 0 &&
        (bufferevent_get_enabled(bev) & EV_WRITE))
        bufferevent_disable(bev, EV_WRITE);
}

/* ---- reader ---------------------------------------------------------------------------------------- */

static void reader_on_read(evutil_socket_t fd, short what, void *arg)
{
    static _Thread_local uint8_t buf[SY_RELAY_READ_MAX];
    struct sy_relay_reader *r = arg;
    struct bufferevent *bev = r->bev;
    if (bev == NULL)
        return;
    bufferevent_data_cb rd = NULL;
    bufferevent_event_cb evcb = NULL;
    void *cbarg = NULL;
    bufferevent_getcb(bev, &rd, NULL, &evcb, &cbarg);
    /* timed out and readable in the same loop turn: read (the idle period starts again) */
    bool idle = (what & EV_TIMEOUT) && !(what & EV_READ);
    ssize_t n = idle ? 0 : recv(fd, buf, sizeof buf, 0);
    short ev = BEV_EVENT_READING;
    if (idle) {
        /* nothing read for r->idle: told like a bev's read timeout, but reading stays on (EV_PERSIST
         * re-arms it); the callback may put the bev to sleep or free it */
        if (evcb)
            evcb(bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, cbarg);
        return;
    }
    if (n > 0) {
        /* a socket bufferevent keeps its input's end frozen; its own read path unfreezes around the read,
         * and so do we */
        struct evbuffer *in = bufferevent_get_input(bev);
        evbuffer_unfreeze(in, 0);
        int rc = evbuffer_add(in, buf, (size_t)n);
        evbuffer_freeze(in, 0);
        if (rc == 0) {
            if (rd)
                rd(bev, cbarg); /* may detach r or release the bev's owner: nothing touches them after */
            return;
        }
        ev |= BEV_EVENT_ERROR; /* out of memory: as libevent reports a failed read */
    } else if (n == 0) {
        ev |= BEV_EVENT_EOF;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return;
    } else {
        ev |= BEV_EVENT_ERROR;
    }
    event_del(r->ev); /* as libevent does after EOF or an error: reading stays off until enabled again */
    if (evcb)
        evcb(bev, ev, cbarg);
}

int sy_relay_reader_attach(struct sy_relay_reader *r, struct bufferevent *bev)
{
    if (r->bev == bev)
        return 0;
    sy_relay_reader_detach(r);
    if (!sy_relay_is_plain(bev) || bufferevent_getfd(bev) < 0)
        return -1;
    if (r->ev != NULL && event_get_fd(r->ev) != bufferevent_getfd(bev)) {
        event_free(r->ev);
        r->ev = NULL;
    }
    if (r->ev == NULL && (r->ev = event_new(bufferevent_get_base(bev), bufferevent_getfd(bev),
                                            EV_READ | EV_PERSIST, reader_on_read, r)) == NULL)
        return -1;
    bool on = (bufferevent_get_enabled(bev) & EV_READ) != 0;
    bufferevent_disable(bev, EV_READ);
    r->bev = bev;
    if (on)
        event_add(r->ev, r->idle);
    return 0;
}

void sy_relay_reader_detach(struct sy_relay_reader *r)
{
    if (r->bev == NULL)
        return;
    bool on = event_pending(r->ev, EV_READ, NULL) != 0;
    event_del(r->ev);
    struct bufferevent *bev = r->bev;
    r->bev = NULL;
    if (on)
        bufferevent_enable(bev, EV_READ);
}

void sy_relay_reader_enable(struct sy_relay_reader *r, struct bufferevent *bev, bool on)
{
    if (r->bev != NULL && r->bev == bev) {
        if (on)
            event_add(r->ev, r->idle); /* no syscall when it is already added (the idle timeout restarts) */
        else
            event_del(r->ev);
    } else if (on) {
        bufferevent_enable(bev, EV_READ);
    } else {
        bufferevent_disable(bev, EV_READ);
    }
}

void sy_relay_reader_fini(struct sy_relay_reader *r)
{
    if (r->ev) {
        bool asleep = sy_relay_asleep(r);
        event_del(r->ev);
        if (asleep)
            evutil_closesocket(event_get_fd(r->ev)); /* no bev owns it while asleep */
        event_free(r->ev);
    }
    r->ev = NULL;
    r->bev = NULL;
}

void sy_relay_reader_set_idle(struct sy_relay_reader *r, unsigned ms)
{
    if (r->bev == NULL || r->ev == NULL)
        return;
    const struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000 };
    r->idle = ms ? event_base_init_common_timeout(event_get_base(r->ev), &tv) : NULL;
    if (event_pending(r->ev, EV_READ, NULL)) {
        event_del(r->ev); /* a NULL timeout would leave the old one armed */
        event_add(r->ev, r->idle);
    }
}

/* ---- sleeping ---------------------------------------------------------------------------------------- */

bool sy_relay_asleep(const struct sy_relay_reader *r)
{
    return r->ev != NULL && r->bev == NULL && event_get_callback(r->ev) != reader_on_read;
}

int sy_relay_sleep(struct sy_relay_reader *r, struct bufferevent *bev, event_callback_fn wake, void *arg)
{
    if (r->bev == NULL || r->bev != bev || !sy_relay_is_plain(bev) ||
        evbuffer_get_length(bufferevent_get_input(bev)) > 0 || evbuffer_get_length(bufferevent_get_output(bev)) > 0)
        return -1;
    evutil_socket_t fd = bufferevent_getfd(bev);
    struct event_base *base = event_get_base(r->ev);
    event_del(r->ev);
    if (event_assign(r->ev, base, fd, EV_READ | EV_PERSIST, wake, arg) != 0) {
        event_assign(r->ev, base, fd, EV_READ | EV_PERSIST, reader_on_read, r);
        event_add(r->ev, r->idle);
        return -1;
    }
    r->bev = NULL;
    bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    bufferevent_setfd(bev, -1); /* the socket outlives it */
    bufferevent_free(bev);
    event_add(r->ev, NULL);
    return 0;
}

struct bufferevent *sy_relay_wake(struct sy_relay_reader *r)
{
    if (!sy_relay_asleep(r))
        return NULL;
    evutil_socket_t fd = event_get_fd(r->ev);
    struct event_base *base = event_get_base(r->ev);
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL)
        return NULL;
    bufferevent_disable(bev, EV_READ | EV_WRITE);
    event_del(r->ev);
    event_assign(r->ev, base, fd, EV_READ | EV_PERSIST, reader_on_read, r); /* same base and fd: cannot fail */
    r->bev = bev;
    event_add(r->ev, r->idle);
    return bev;
}

size_t sy_relay_pending(struct bufferevent *bev, struct evbuffer *staged)
{
    size_t n = staged ? evbuffer_get_length(staged) : 0;
    for (struct bufferevent *b = bev; b != NULL; b = bufferevent_get_underlying(b))
        n += evbuffer_get_length(bufferevent_get_output(b));
    return n;
}

size_t sy_relay_link_client_pending(const struct sy_relay_link *l)
{
    return l->client ? sy_relay_pending(l->client, NULL) : 0;
}

size_t sy_relay_link_backend_pending(const struct sy_relay_link *l)
{
    return l->backend ? sy_relay_pending(l->backend, NULL) : 0;
}

bool sy_relay_link_backend_over(struct sy_relay_link *l)
{
    size_t n = sy_relay_link_backend_pending(l);
    if (!sy_relay_over(n))
        return false;
    sy_log_debug("%s: client reads paused: %zu bytes queued to the server", l->label, n);
    l->client_bp = true;
    return true;
}

bool sy_relay_link_client_over(struct sy_relay_link *l)
{
    size_t n = sy_relay_link_client_pending(l);
    if (!sy_relay_over(n))
        return false;
    sy_log_debug("%s: server reads paused: %zu bytes queued to the client", l->label, n);
    l->backend_bp = true;
    return true;
}

void sy_relay_link_backend_read_update(struct sy_relay_link *l)
{
    if (l->backend == NULL || !l->backend_connected)
        return;
    if (l->backend_bp)
        bufferevent_disable(l->backend, EV_READ);
    else
        bufferevent_enable(l->backend, EV_READ);
}

void sy_relay_link_flush(struct sy_relay_link *l)
{
    for (int round = 0; round < 64 && !l->closed(l->session); round++) {
        if (l->client)
            sy_relay_flush(l->client);
        if (l->backend_connected)
            sy_relay_flush(l->backend);
        bool again = false;
        if (l->client_bp && sy_relay_drained(sy_relay_link_backend_pending(l))) {
            sy_log_debug("%s: client reads resumed", l->label);
            l->client_bp = false;
            l->client_resume(l->session);
            again = true;
        }
        if (!l->closed(l->session) && l->backend_bp && sy_relay_drained(sy_relay_link_client_pending(l))) {
            sy_log_debug("%s: server reads resumed", l->label);
            l->backend_bp = false;
            l->backend_resume(l->session);
            again = true;
        }
        if (!again)
            return;
    }
}

void sy_relay_link_close(struct sy_relay_link *l, bool flush, uint64_t flush_ms)
{
    if (l->backend) {
        bufferevent_setcb(l->backend, NULL, NULL, NULL, NULL);
        bufferevent_disable(l->backend, EV_READ | EV_WRITE);
    }
    l->flush_deadline_ms = 0;
    l->flush_ms = flush_ms;
    if (l->client == NULL)
        return;
    bufferevent_disable(l->client, EV_READ);
    if (flush && sy_relay_link_client_pending(l) > 0) {
        l->flush_deadline_ms = sy_now_ms() + flush_ms;
        sy_relay_flush(l->client);
        bufferevent_enable(l->client, EV_WRITE); /* the session's write callback wakes its reaper once drained */
    } else {
        bufferevent_disable(l->client, EV_WRITE);
    }
}

bool sy_relay_link_reapable(const struct sy_relay_link *l, bool all, uint64_t now_ms, uint64_t *next)
{
    bool flushed = l->client == NULL || l->client_gone || sy_relay_link_client_pending(l) == 0;
    if (all || flushed || now_ms >= l->flush_deadline_ms) {
        if (!flushed)
            sy_log_info("%s: the client did not read its final error within %llu ms: dropped", l->label,
                        (unsigned long long)l->flush_ms);
        return true;
    }
    if (*next == 0 || l->flush_deadline_ms < *next)
        *next = l->flush_deadline_ms;
    return false;
}

void sy_relay_reaper_arm(struct event *reaper, uint64_t next, uint64_t now_ms)
{
    if (next == 0)
        return;
    uint64_t wait = next > now_ms ? next - now_ms : 1;
    struct timeval tv = { (time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000 };
    evtimer_add(reaper, &tv);
}

int sy_relay_backend_connect(struct event_base *base, const struct sy_endpoint *ep, int timeout_s, size_t max_read,
                             bufferevent_data_cb rd, bufferevent_data_cb wr, bufferevent_event_cb ev, void *arg,
                             struct bufferevent **out, char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", ep->port);
    int rc = getaddrinfo(ep->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "%s:%u: %s", ep->host, ep->port, gai_strerror(rc));
        return -1;
    }
    struct bufferevent *bev = *out = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        freeaddrinfo(res);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    bufferevent_setcb(bev, rd, wr, ev, arg);
    bufferevent_setwatermark(bev, EV_WRITE, SY_RELAY_LOW_WATER, 0);
    bufferevent_set_max_single_read(bev, max_read);
    struct timeval tmo = { timeout_s, 0 };
    bufferevent_set_timeouts(bev, NULL, &tmo);           /* the connect's timeout */
    rc = bufferevent_socket_connect(bev, res->ai_addr, (int)res->ai_addrlen);
    freeaddrinfo(res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot connect to %s:%u", ep->host, ep->port);
        return -1;
    }
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    return 0;
}

void sy_relay_backend_connected(struct bufferevent *bev)
{
    int one = 1;
    setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bufferevent_set_timeouts(bev, NULL, NULL);
}

bool sy_relay_link_adopt_backend(struct sy_relay_link *l, struct bufferevent *bev, size_t max_read,
                                 bufferevent_data_cb rd, bufferevent_data_cb wr, bufferevent_event_cb ev)
{
    if (l->backend) {
        bufferevent_setcb(l->backend, NULL, NULL, NULL, NULL);
        bufferevent_free(l->backend);
    }
    l->backend = bev;
    l->backend_connected = true;
    l->backend_bp = false;
    bufferevent_setcb(bev, rd, wr, ev, l->session);
    bufferevent_setwatermark(bev, EV_WRITE, SY_RELAY_LOW_WATER, 0);
    bufferevent_set_max_single_read(bev, max_read);
    bufferevent_set_timeouts(bev, NULL, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    bool paused = l->client_bp;
    l->client_bp = false;
    return paused;
}

void sy_relay_addr_name(const struct sockaddr *sa, socklen_t salen, char *out, size_t outlen)
{
    char host[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    getnameinfo(sa, salen, host, sizeof host, serv, sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(out, outlen, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}
