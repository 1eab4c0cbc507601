/* The admin Unix socket: JSON lines each way (CONTRACT.md). Modules register command tables;
 * a handler answers with sy_admin_ok() / sy_admin_fail() now, or keeps the request and answers
 * later (long commands such as switchover), always exactly once. */
#ifndef SY_ADMIN_H
#define SY_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <jansson.h>

#include "core/parse.h"

struct sy_admin;
struct sy_admin_req;

typedef void (*sy_admin_handler_fn)(struct sy_admin_req *req, json_t *args, void *ctx);

struct sy_admin_cmd {
    const char *name;      /* as typed: "status", "create-reverse" */
    const char *usage;     /* "status [PAIR] : pairs, instances, lag" (help prints it) */
    sy_admin_handler_fn fn;
};

/* Creates the socket (mode 0600; peers must be root or the daemon's uid, SO_PEERCRED). */
struct sy_admin *sy_admin_open(struct event_base *base, const char *path, char *err, size_t errlen);
void sy_admin_close(struct sy_admin *a);
/* From now on every request is answered `shutting_down` without running: the loop keeps turning while
 * shutdown waits for running jobs, and a request read then must not start another (NULL-safe). */
void sy_admin_shutdown(struct sy_admin *a);
/* cmds must outlive the admin socket (static tables). */
void sy_admin_register(struct sy_admin *a, const struct sy_admin_cmd *cmds, size_t n, void *ctx);

/* Another transport (the web console) runs a command through the same dispatch: reply gets the whole
 * reply object ({"ok":true,"result":...} or {"ok":false,"error":...}, borrowed) exactly once, now or
 * later on the loop. args may be NULL. */
typedef void (*sy_admin_reply_fn)(json_t *reply, void *arg);
void sy_admin_call(struct sy_admin *a, const char *name, json_t *args, sy_admin_reply_fn reply, void *arg);

/* Answer a request; takes ownership of result (may be NULL = {}). Frees req. */
void sy_admin_ok(struct sy_admin_req *req, json_t *result);
void sy_admin_fail(struct sy_admin_req *req, const char *code, const char *fmt, ...) SY_PRINTF(3, 4);
/* As sy_admin_fail, with more fields in the error object (takes ownership of extra, may be NULL). */
void sy_admin_fail_with(struct sy_admin_req *req, const char *code, json_t *extra, const char *fmt, ...)
    SY_PRINTF(4, 5);

/* Answers with a whole reply object ({"ok":true,"result":...} or {"ok":false,"error":...}, borrowed) that
 * another node gave (core/cluster_admin.c relays it). Frees req. */
void sy_admin_answer(struct sy_admin_req *req, json_t *reply);

/* The command's name as the client typed it. */
const char *sy_admin_req_cmd(const struct sy_admin_req *req);

/* Worker threads of long commands (precheck, verify, switches) still running: shutdown waits for
 * them before freeing what they use. begin before the thread starts; end as its last step. */
void sy_admin_job_begin(void);
void sy_admin_job_end(void);
int sy_admin_jobs(void);

/* Argument helpers: NULL when absent or not a string. */
const char *sy_admin_arg_str(json_t *args, const char *key);
bool sy_admin_arg_bool(json_t *args, const char *key);

#endif
