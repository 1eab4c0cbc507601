/* Account cache of a MariaDB pair: mysql.global_priv of the active side, read over the pair's
 * admin connection, so the proxy can check mysql_native_password itself. Refreshes coalesce: a
 * refresh asked while a load runs gets a second load that starts after it (an account created
 * just before the request is always seen). */
#ifndef SY_MYSQL_ACCOUNTS_H
#define SY_MYSQL_ACCOUNTS_H

#include <stdbool.h>

#include <event2/event.h>

#include "core/config.h"
#include "proxy/mysql_auth.h"

struct sy_mysql_accounts;
struct sy_mysql_accounts_wait;

/* err NULL: the cache was reloaded; else why it could not be. */
typedef void (*sy_mysql_accounts_cb)(void *arg, const char *err);

/* ep/admin: ref, must outlive the cache (the pair's config). */
struct sy_mysql_accounts *sy_mysql_accounts_new(struct event_base *base, const char *pair_name,
                                                const struct sy_pair_cfg *cfg);
void sy_mysql_accounts_free(struct sy_mysql_accounts *a);
/* The side the cache reads from (changes with the active side). Drops the loaded rows. */
void sy_mysql_accounts_set_endpoint(struct sy_mysql_accounts *a, const struct sy_endpoint *ep);

/* The account the server would match for user from the proxy's address; NULL when not loaded or none.
 * Valid until the next reload. */
const struct sy_mysql_account *sy_mysql_accounts_find(const struct sy_mysql_accounts *a, const char *user);
bool sy_mysql_accounts_loaded(const struct sy_mysql_accounts *a);
/* The active server's version string ("5.5.5-10.11.19-MariaDB-..."), "" before the first load. */
const char *sy_mysql_accounts_server_version(const struct sy_mysql_accounts *a);
uint8_t sy_mysql_accounts_server_collation(const struct sy_mysql_accounts *a);
uint64_t sy_mysql_accounts_server_caps(const struct sy_mysql_accounts *a);
/* The server's default session tracking (its globals, read at the cache's first load): what a client that
 * never set its own sees directly. false before they are known. */
bool sy_mysql_accounts_track_defaults(const struct sy_mysql_accounts *a, const char **vars, bool *schema,
                                      bool *state);

/* Reload; cb is called once, never from inside this call, unless cancelled first. */
struct sy_mysql_accounts_wait *sy_mysql_accounts_refresh(struct sy_mysql_accounts *a, sy_mysql_accounts_cb cb,
                                                         void *arg);
void sy_mysql_accounts_cancel(struct sy_mysql_accounts_wait *w); /* NULL-safe */

#endif
