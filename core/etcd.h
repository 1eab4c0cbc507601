/* A small etcd v3 client over its JSON gateway (HTTP/1.1 POST /v3/<service>/<method>, keys and values
 * base64), asynchronous on the daemon's loop through libevent's evhttp. One connection per endpoint; a
 * request that fails on one (no connection, timeout, a 5xx answer) is sent to the next, each endpoint at
 * most once, before its callback hears the error. etcd's own answers (a 4xx with {"error"...}) are errors
 * too. A watch (sy_etcd_watch_start) streams the changes of one key on a connection of its own. Loop
 * thread only. */
#ifndef SY_ETCD_H
#define SY_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

struct sy_etcd;

/* reply: the answer's JSON object (borrowed for the call; NULL on error, then err says why). */
typedef void (*sy_etcd_done)(void *arg, json_t *reply, const char *err);

/* endpoints: "http://h:p,http://h:p" (as core/config.c checked). NULL with err when none is usable. */
struct sy_etcd *sy_etcd_new(struct event_base *base, const char *endpoints, int timeout_ms, char *err, size_t errlen);
/* Pending requests are dropped without their callbacks. */
void sy_etcd_free(struct sy_etcd *e);

/* The requests in flight whose callback argument is arg will not call back (arg is being freed). */
void sy_etcd_forget(struct sy_etcd *e, const void *arg);
/* The requests in flight with callback `done` call it now, as failed with err (a shutdown that will not
 * wait for etcd: their callers answer whoever waits), and never again. */
void sy_etcd_fail_now(struct sy_etcd *e, sy_etcd_done done, const char *err);

/* POSTs body (stolen) to path ("/v3/kv/put"); done(arg, ...) later, on the loop, exactly once (unless
 * the client is freed first) — never before this returns, also when the request cannot be sent. -1 when
 * it cannot even be queued (out of memory): done is not called. */
int sy_etcd_post(struct sy_etcd *e, const char *path, json_t *body, sy_etcd_done done, void *arg);

/* base64 of a string (etcd keys and values), and back (NUL-terminated; NULL when not base64).
 * Both malloc'ed. */
char *sy_etcd_b64(const char *s, size_t len);
char *sy_etcd_unb64(const char *s, size_t *len);
/* The endpoint the last answer came from ("http://h:p"). */
const char *sy_etcd_endpoint(const struct sy_etcd *e);

/* A transaction (POST /v3/kv/txn) built step by step: if every compare holds, the success ops run, else the
 * failure ops (in order; their answers in the reply's "responses"). Keys and values are plain text, base64'd
 * here. A step that cannot be added (out of memory) makes the transaction bad, for good; sending a bad one
 * fails without sending anything. init, the steps, then post (or take): each consumes the transaction. */
enum sy_etcd_target { SY_ETCD_CREATE, SY_ETCD_MOD, SY_ETCD_VERSION };   /* create_revision, mod_revision, version */
enum sy_etcd_branch { SY_ETCD_SUCCESS, SY_ETCD_FAILURE };
struct sy_etcd_txn {
    json_t *body;                      /* owned: {"compare": [...], "success": [...], "failure": [...]} */
    bool bad;                          /* sticky: a step was lost; the transaction must not be sent */
};
void sy_etcd_txn_init(struct sy_etcd_txn *t);
/* Compares key's create_revision (0: the key does not exist), mod_revision or version with n (EQUAL). */
void sy_etcd_txn_compare(struct sy_etcd_txn *t, const char *key, enum sy_etcd_target target, int64_t n);
/* Compares key's value with value (EQUAL; a key that does not exist never matches). */
void sy_etcd_txn_compare_value(struct sy_etcd_txn *t, const char *key, const char *value);
/* Puts key = value under lease (0: none). */
void sy_etcd_txn_put(struct sy_etcd_txn *t, enum sy_etcd_branch b, const char *key, const char *value, int64_t lease);
/* Puts key = the compact JSON of v (stolen), its keys sorted. */
void sy_etcd_txn_put_json(struct sy_etcd_txn *t, enum sy_etcd_branch b, const char *key, json_t *v, int64_t lease);
/* Deletes key, or with prefix every key starting with it. */
void sy_etcd_txn_delete(struct sy_etcd_txn *t, enum sy_etcd_branch b, const char *key, bool prefix);
/* Reads key (the answer's "response_range" at the op's place in "responses"). */
void sy_etcd_txn_range(struct sy_etcd_txn *t, enum sy_etcd_branch b, const char *key);
/* Reads every key starting with prefix; keys_only: without their values. */
void sy_etcd_txn_range_prefix(struct sy_etcd_txn *t, enum sy_etcd_branch b, const char *prefix, bool keys_only);
/* The body to POST (the caller owns it), NULL when the transaction is bad. */
json_t *sy_etcd_txn_take(struct sy_etcd_txn *t);
/* Sends it as sy_etcd_post to /v3/kv/txn; -1 (done not called) when it is bad or cannot be queued. */
int sy_etcd_txn_post(struct sy_etcd *e, struct sy_etcd_txn *t, sy_etcd_done done, void *arg);

/* A watch of one key, or of every key under it when prefix (POST /v3/watch: a streaming answer, one JSON
 * object a line) on a connection of its own. fn(arg, kv, deleted, mod_revision) for every change from
 * from_revision on: kv is the event's key-value (borrowed; "key" and "value" are base64; no value when
 * deleted). A watch that ends (the member died,
 * the stream was cut or timed out) is made again on the next endpoint from the revision after the last
 * event seen, a little later: no event is skipped, none is seen twice. A watch from revision 0 ("now")
 * takes its first stream's created revision + 1 as where it goes on from. */
typedef void (*sy_etcd_watch_fn)(void *arg, json_t *kv, bool deleted, int64_t mod_revision);
struct sy_etcd_watch;
struct sy_etcd_watch *sy_etcd_watch_start(struct sy_etcd *e, const char *key, bool prefix, int64_t from_revision,
                                          sy_etcd_watch_fn fn, void *arg);
/* The range_end that makes [key, end) every key starting with key (etcd's "prefix + 1"), base64. */
char *sy_etcd_prefix_end_b64(const char *key);
/* Makes the watch again from from_revision (a poll saw a newer revision than the stream delivered). */
void sy_etcd_watch_restart(struct sy_etcd_watch *w, int64_t from_revision);
/* fn(arg) once a stream made again (after one ended, was canceled or compacted) is created: events
 * compacted away are lost, a caller that must not miss one reads the keys then. */
void sy_etcd_watch_on_remade(struct sy_etcd_watch *w, void (*fn)(void *arg));
/* The revision the stream waits for next (every change before it was delivered). */
int64_t sy_etcd_watch_next_revision(const struct sy_etcd_watch *w);
/* "ok" (the stream is open and created), or "connecting". */
const char *sy_etcd_watch_state(const struct sy_etcd_watch *w);
/* NULL-safe; before sy_etcd_free of its client. fn is not called again. */
void sy_etcd_watch_free(struct sy_etcd_watch *w);

#endif
