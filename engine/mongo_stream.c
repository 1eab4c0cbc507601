/* Watched libmongoc connections (engine/mongo_stream.h). The connection is libmongoc's own socket stream
 * (mongoc_socket_new/bind/connect, mongoc_stream_socket_new: public API), wrapped in a stream that forwards
 * every call to it and drops the watch when it is closed, failed or destroyed. The descriptor: the first
 * member of libmongoc's socket (as its own TLS code reads it), published only when, bound to a port of its
 * own, its local address is the one mongoc_socket_getsockname reports for that socket, and kept only when its
 * peer after the connect is the address connected to — otherwise the connection is simply not watched. It is
 * published before the connect, so a stop also aborts a connect to a black-holed address; while the module
 * stops, no connection is made at all (libmongoc's endSessions at a client's destroy would connect again).
 * mongoc_stream_poll polls the innermost stream (get_base_stream), so w_poll only maps a poll made on ours. */
#include "engine/mongo_stream.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/log.h"

#define WATCHED_STREAM_TYPE 0x5359 /* not one of libmongoc's (MONGOC_STREAM_SOCKET etc.) */

struct watched {
    mongoc_stream_t vtable;            /* first: libmongoc calls through it */
    mongoc_stream_t *inner;            /* owned: libmongoc's socket stream */
    const struct sy_module_ctx *ctx;
    int slot;                          /* sy_module_socket_watch's, -1 none */
};

static void unwatch(struct watched *w)
{
    sy_module_socket_drop(w->ctx, w->slot);
    w->slot = -1;
}

static void w_destroy(mongoc_stream_t *s)
{
    struct watched *w = (struct watched *)s;
    unwatch(w);
    mongoc_stream_destroy(w->inner);
    free(w);
}

static void w_failed(mongoc_stream_t *s)
{
    struct watched *w = (struct watched *)s;
    unwatch(w);
    mongoc_stream_failed(w->inner);
    free(w);
}

static int w_close(mongoc_stream_t *s)
{
    struct watched *w = (struct watched *)s;
    unwatch(w);
    return mongoc_stream_close(w->inner);
}

static int w_flush(mongoc_stream_t *s)
{
    return mongoc_stream_flush(((struct watched *)s)->inner);
}

static ssize_t w_writev(mongoc_stream_t *s, mongoc_iovec_t *iov, size_t n, int32_t timeout_ms)
{
    return mongoc_stream_writev(((struct watched *)s)->inner, iov, n, timeout_ms);
}

static ssize_t w_readv(mongoc_stream_t *s, mongoc_iovec_t *iov, size_t n, size_t min_bytes, int32_t timeout_ms)
{
    return mongoc_stream_readv(((struct watched *)s)->inner, iov, n, min_bytes, timeout_ms);
}

static int w_setsockopt(mongoc_stream_t *s, int level, int name, void *value, mongoc_socklen_t len)
{
    return mongoc_stream_setsockopt(((struct watched *)s)->inner, level, name, value, len);
}

static mongoc_stream_t *w_base(mongoc_stream_t *s)
{
    return ((struct watched *)s)->inner;
}

static bool w_check_closed(mongoc_stream_t *s)
{
    return mongoc_stream_check_closed(((struct watched *)s)->inner);
}

static bool w_timed_out(mongoc_stream_t *s)
{
    return mongoc_stream_timed_out(((struct watched *)s)->inner);
}

static bool w_should_retry(mongoc_stream_t *s)
{
    return mongoc_stream_should_retry(((struct watched *)s)->inner);
}

/* A poll of watched streams: the same poll of their inner streams. */
static ssize_t w_poll(mongoc_stream_poll_t *streams, size_t n, int32_t timeout_ms)
{
    mongoc_stream_poll_t *inner = calloc(n ? n : 1, sizeof *inner);
    if (inner == NULL)
        return -1;
    for (size_t k = 0; k < n; k++)
        inner[k] = (mongoc_stream_poll_t){ .stream = ((struct watched *)streams[k].stream)->inner,
                                           .events = streams[k].events };
    ssize_t rc = mongoc_stream_poll(inner, n, timeout_ms);
    for (size_t k = 0; k < n; k++)
        streams[k].revents = inner[k].revents;
    free(inner);
    return rc;
}

static bool same_addr(const struct sockaddr_storage *a, socklen_t alen, const struct sockaddr *b, socklen_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* The descriptor of libmongoc's socket, bound already (a port of its own): proven by its local address; -1
 * when it cannot be. */
static int socket_fd(mongoc_socket_t *sock)
{
    struct sockaddr_storage mine, fds;
    mongoc_socklen_t mlen = sizeof mine;
    socklen_t flen = sizeof fds;
    int fd = *(const int *)(const void *)sock;      /* struct _mongoc_socket_t { int sd; ... } on POSIX */
    if (mongoc_socket_getsockname(sock, (struct sockaddr *)&mine, &mlen) != 0 || fd < 0 ||
        getsockname(fd, (struct sockaddr *)&fds, &flen) != 0 || !same_addr(&mine, mlen, (struct sockaddr *)&fds, flen))
        return -1;
    return fd;
}

/* One address: a socket bound to a port of its own (so its descriptor can be proven), published to the
 * module's watch list before it connects (a stop aborts the connect too), connected within timeout_ms.
 * NULL when it fails (*slot dropped). */
static mongoc_socket_t *connect_one(const struct sy_module_ctx *ctx, const struct addrinfo *a, int32_t timeout_ms,
                                    int *slot)
{
    *slot = -1;
    mongoc_socket_t *sock = mongoc_socket_new(a->ai_family, SOCK_STREAM, 0);  /* sets TCP_NODELAY, keepalive */
    if (sock == NULL)
        return NULL;
    struct sockaddr_storage any = { .ss_family = (sa_family_t)a->ai_family };
    socklen_t anylen = a->ai_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = mongoc_socket_bind(sock, (struct sockaddr *)&any, anylen) == 0 ? socket_fd(sock) : -1;
    if (fd >= 0)
        *slot = sy_module_socket_watch(ctx, fd);
    else
        sy_log_debug("%s: a MongoDB connection a stop cannot cut (its socket is not known)", ctx->instance_id);
    int64_t expire_at = bson_get_monotonic_time() + (int64_t)timeout_ms * 1000;
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    if (mongoc_socket_connect(sock, a->ai_addr, (mongoc_socklen_t)a->ai_addrlen, expire_at) != 0 ||
        (fd >= 0 && (getpeername(fd, (struct sockaddr *)&peer, &plen) != 0 ||
                     !same_addr(&peer, plen, a->ai_addr, (socklen_t)a->ai_addrlen)))) {
        sy_module_socket_drop(ctx, *slot);
        *slot = -1;
        mongoc_socket_destroy(sock);
        return NULL;
    }
    return sock;
}

/* mongoc_stream_initiator_t: connects to host (the URI's connectTimeoutMS) as libmongoc's own would; at once
 * NULL while the module stops. */
static mongoc_stream_t *initiate(const mongoc_uri_t *uri, const mongoc_host_list_t *host, void *user_data,
                                 bson_error_t *error)
{
    const struct sy_module_ctx *ctx = user_data;
    if (sy_module_sockets_shut(ctx)) {
        bson_set_error(error, MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_CONNECT, "%s: not connecting: stopping",
                       host->host_and_port);
        return NULL;
    }
    int32_t timeout_ms = mongoc_uri_get_option_as_int32(uri, MONGOC_URI_CONNECTTIMEOUTMS, 10000);
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)host->port);
    struct addrinfo hints = { .ai_family = host->family, .ai_socktype = SOCK_STREAM }, *res = NULL;
    int gai = getaddrinfo(host->host, port, &hints, &res);
    if (gai != 0) {
        bson_set_error(error, MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_NAME_RESOLUTION, "%s: %s", host->host,
                       gai_strerror(gai));
        return NULL;
    }
    mongoc_socket_t *sock = NULL;
    int slot = -1;
    for (struct addrinfo *a = res; a != NULL && sock == NULL; a = a->ai_next)
        if (a->ai_family == AF_INET || a->ai_family == AF_INET6)
            sock = connect_one(ctx, a, timeout_ms, &slot);
    freeaddrinfo(res);
    if (sock == NULL) {
        bson_set_error(error, MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_CONNECT, "Failed to connect to target host: %s",
                       host->host_and_port);
        return NULL;
    }
    mongoc_stream_t *inner = mongoc_stream_socket_new(sock);     /* owns sock */
    struct watched *w = inner != NULL ? calloc(1, sizeof *w) : NULL;
    if (w == NULL) {
        sy_module_socket_drop(ctx, slot);
        if (inner != NULL)
            mongoc_stream_destroy(inner);
        else
            mongoc_socket_destroy(sock);
        bson_set_error(error, MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, "out of memory");
        return NULL;
    }
    w->vtable = (mongoc_stream_t){ .type = WATCHED_STREAM_TYPE, .destroy = w_destroy, .close = w_close,
                                   .flush = w_flush, .writev = w_writev, .readv = w_readv,
                                   .setsockopt = w_setsockopt, .get_base_stream = w_base,
                                   .check_closed = w_check_closed, .poll = w_poll, .failed = w_failed,
                                   .timed_out = w_timed_out, .should_retry = w_should_retry };
    w->inner = inner;
    w->ctx = ctx;
    w->slot = slot;
    return &w->vtable;
}

void sy_mongo_watch_sockets(mongoc_client_t *c, const struct sy_module_ctx *ctx)
{
    mongoc_client_set_stream_initiator(c, initiate, (void *)ctx);
}
