/* Watched libmongoc connections (engine/mongo_stream.h). The connection is libmongoc's own socket stream
 * (mongoc_socket_connect, mongoc_stream_socket_new: public API), wrapped in a stream that forwards every
 * call to it and drops the watch when it is closed, failed or destroyed. The descriptor: the first member of
 * libmongoc's socket (as its own TLS code reads it), used only when its local and peer addresses are those
 * mongoc_socket_getsockname reports for that socket — otherwise the connection is simply not watched. */
#include "engine/mongo_stream.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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

static bool same_addr(const struct sockaddr_storage *a, socklen_t alen, const struct sockaddr_storage *b,
                      socklen_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* The descriptor of libmongoc's socket, proven by its local address; -1 when it cannot be. */
static int socket_fd(mongoc_socket_t *sock)
{
    struct sockaddr_storage mine, fds;
    mongoc_socklen_t mlen = sizeof mine;
    socklen_t flen = sizeof fds;
    int fd = *(const int *)(const void *)sock;      /* struct _mongoc_socket_t { int sd; ... } on POSIX */
    if (mongoc_socket_getsockname(sock, (struct sockaddr *)&mine, &mlen) != 0 || fd < 0 ||
        getsockname(fd, (struct sockaddr *)&fds, &flen) != 0 || !same_addr(&mine, mlen, &fds, flen))
        return -1;
    return fd;
}

/* mongoc_stream_initiator_t: connects to host (the URI's connectTimeoutMS) as libmongoc's own would. */
static mongoc_stream_t *initiate(const mongoc_uri_t *uri, const mongoc_host_list_t *host, void *user_data,
                                 bson_error_t *error)
{
    const struct sy_module_ctx *ctx = user_data;
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
    for (struct addrinfo *a = res; a != NULL && sock == NULL; a = a->ai_next) {
        if ((sock = mongoc_socket_new(a->ai_family, SOCK_STREAM, 0)) == NULL)
            continue;
        int one = 1;
        mongoc_socket_setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int64_t expire_at = bson_get_monotonic_time() + (int64_t)timeout_ms * 1000;
        if (mongoc_socket_connect(sock, a->ai_addr, (mongoc_socklen_t)a->ai_addrlen, expire_at) != 0) {
            mongoc_socket_destroy(sock);
            sock = NULL;
        }
    }
    freeaddrinfo(res);
    if (sock == NULL) {
        bson_set_error(error, MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_CONNECT, "Failed to connect to target host: %s",
                       host->host_and_port);
        return NULL;
    }
    int fd = socket_fd(sock);
    mongoc_stream_t *inner = mongoc_stream_socket_new(sock);     /* owns sock */
    struct watched *w = inner != NULL ? calloc(1, sizeof *w) : NULL;
    if (w == NULL) {
        if (inner != NULL)
            mongoc_stream_destroy(inner);
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
    w->slot = fd >= 0 ? sy_module_socket_watch(ctx, fd) : -1;
    return &w->vtable;
}

void sy_mongo_watch_sockets(mongoc_client_t *c, const struct sy_module_ctx *ctx)
{
    mongoc_client_set_stream_initiator(c, initiate, (void *)ctx);
}
