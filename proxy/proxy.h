/* The engines' proxies the daemon can start (NULL-terminated), and the shared TCP listener. */
#ifndef SY_PROXY_H
#define SY_PROXY_H

#include <event2/listener.h>
#include <openssl/ssl.h>

#include "core/config.h"
#include "core/pair.h"

extern const struct sy_proxy_protocol sy_mysql_protocol;
extern const struct sy_proxy_protocol sy_mongo_protocol;
extern const struct sy_proxy_protocol sy_tds_protocol;
extern const struct sy_proxy_protocol *const sy_proxy_protocols[];

/* Binds ep (port 0 = any free port), writes the bound "host:port" into bound. */
struct evconnlistener *sy_listener_open(struct event_base *base, const struct sy_endpoint *ep,
                                        evconnlistener_cb cb, void *arg, char *bound, size_t boundlen,
                                        char *err, size_t errlen);

/* A TLS server context from cfg->tls_cert / tls_key (TLS 1.2 at least); NULL with err filled. */
SSL_CTX *sy_tls_server_context(const struct sy_pair_cfg *cfg, char *err, size_t errlen);

#endif
