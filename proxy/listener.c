/* TCP listeners for client-facing proxies: resolve, bind (port 0 = ephemeral), report the address; the
 * server TLS context of a pair's tls_cert/tls_key. */
#include "proxy/proxy.h"
#include "core/tls.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>


const struct sy_proxy_protocol *const sy_proxy_protocols[] = { &sy_mysql_protocol, &sy_mongo_protocol,
                                                                &sy_tds_protocol, NULL };

struct evconnlistener *sy_listener_open(struct event_base *base, const struct sy_endpoint *ep,
                                        evconnlistener_cb cb, void *arg, char *bound, size_t boundlen,
                                        char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", ep->port);
    int rc = getaddrinfo(ep->host, port, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "listen %s:%u: %s", ep->host, ep->port, gai_strerror(rc));
        return NULL;
    }
    struct evconnlistener *l = evconnlistener_new_bind(
        base, cb, arg, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 1024, res->ai_addr,
        (int)res->ai_addrlen);
    int saved = errno;
    freeaddrinfo(res);
    if (l == NULL) {
        snprintf(err, errlen, "listen %s:%u: %s", ep->host, ep->port, strerror(saved));
        return NULL;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss, &sl) == 0 &&
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(bound, boundlen, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
    else
        snprintf(bound, boundlen, "%s:%u", ep->host, ep->port);
    return l;
}

SSL_CTX *sy_tls_server_context(const struct sy_pair_cfg *cfg, char *err, size_t errlen)
{
    return sy_tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, "", err, errlen);
}
