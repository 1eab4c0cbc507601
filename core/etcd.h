/* A small etcd v3 client over its JSON gateway (HTTP/1.1 POST /v3/<service>/<method>, keys and values
 * base64), asynchronous on the daemon's loop through libevent's evhttp. One connection per endpoint; a
 * request that fails on one (no connection, timeout, a 5xx answer) is sent to the next, each endpoint at
 * most once, before its callback hears the error. etcd's own answers (a 4xx with {"error"...}) are errors
 * too. Loop thread only. */
#ifndef SY_ETCD_H
#define SY_ETCD_H

#include <stddef.h>

#include <event2/event.h>
#include <jansson.h>

struct sy_etcd;

/* reply: the answer's JSON object (borrowed for the call; NULL on error, then err says why). */
typedef void (*sy_etcd_done)(void *arg, json_t *reply, const char *err);

/* endpoints: "http://h:p,http://h:p" (as core/config.c checked). NULL with err when none is usable. */
struct sy_etcd *sy_etcd_new(struct event_base *base, const char *endpoints, int timeout_ms, char *err, size_t errlen);
/* Pending requests are dropped without their callbacks. */
void sy_etcd_free(struct sy_etcd *e);

/* POSTs body (stolen) to path ("/v3/kv/put"); done(arg, ...) later, on the loop, exactly once (unless
 * the client is freed first). -1 when it cannot even be queued (out of memory): done is not called. */
int sy_etcd_post(struct sy_etcd *e, const char *path, json_t *body, sy_etcd_done done, void *arg);

/* base64 of a string (etcd keys and values), and back (NUL-terminated; NULL when not base64).
 * Both malloc'ed. */
char *sy_etcd_b64(const char *s, size_t len);
char *sy_etcd_unb64(const char *s, size_t *len);
/* The endpoint the last answer came from ("http://h:p"). */
const char *sy_etcd_endpoint(const struct sy_etcd *e);

#endif
