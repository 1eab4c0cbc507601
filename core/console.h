/* The operators' web console (`console = host:port`): one embedded page plus a JSON API served by evhttp on
 * the daemon's loop. Every API call is an admin command run through sy_admin_call, the admin socket's own
 * dispatch: the console implements no command itself. Reading (status, clients, help) needs nothing;
 * actions need `Authorization: Bearer <token>` matching console_token_file (compared in constant time). */
#ifndef SY_CONSOLE_H
#define SY_CONSOLE_H

#include <stddef.h>

#include <event2/event.h>

#include "core/admin.h"
#include "core/config.h"

struct sy_console;

/* Listens on cfg->console. Reads and checks cfg->console_token_file now: it must be a regular file of mode
 * 0600 (or stricter) owned by us, with one non-empty line ("" = read-only console). With console_tls_cert
 * and console_tls_key it speaks HTTPS only. NULL with err on failure. */
struct sy_console *sy_console_open(struct event_base *base, const struct sy_config *cfg, struct sy_admin *admin,
                                   char *err, size_t errlen);
void sy_console_close(struct sy_console *c); /* NULL-safe */

/* 0600 and owned by this uid; the token is the first line, trailing blanks removed. 0 or -1 with err.
 * (Exported for the unit test.) */
int sy_console_token_load(const char *path, char *out, size_t outlen, char *err, size_t errlen);

#endif
