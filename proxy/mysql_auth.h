/* mysql_native_password arithmetic and account matching, as pure functions.
 *   stage1 = SHA1(password), stage2 = SHA1(stage1) (stored as "*" + 40 hex digits),
 *   response = stage1 XOR SHA1(salt + stage2).
 * From a client's valid response the proxy recovers stage1, which lets it answer any later
 * salt (a backend on either side) without ever knowing the password. stage1 is a secret:
 * callers keep it in memory only and wipe it with OPENSSL_cleanse. */
#ifndef SY_MYSQL_AUTH_H
#define SY_MYSQL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SY_SHA1_LEN 20

/* "*94BDCEBE19083CE2A1F959FD02F964C7AF4CFC29" -> stage2. Anything else (empty, "invalid", other
 * plugins' strings) -> false. */
bool sy_mysql_native_hash_parse(const char *auth_string, uint8_t stage2[SY_SHA1_LEN]);

/* stage1 = SHA1(password), for the proxy's own accounts whose password it knows. */
void sy_mysql_native_stage1(const char *password, size_t len, uint8_t stage1[SY_SHA1_LEN]);

/* response = stage1 XOR SHA1(salt + SHA1(stage1)). */
void sy_mysql_native_scramble(const uint8_t stage1[SY_SHA1_LEN], const uint8_t *salt, size_t salt_len,
                              uint8_t out[SY_SHA1_LEN]);

/* Recovers stage1 from a client's response; true only when SHA1(stage1) == stage2, i.e. the client
 * knows the password. A response that is not 20 bytes long is false. */
bool sy_mysql_native_recover(const uint8_t *resp, size_t resp_len, const uint8_t *salt, size_t salt_len,
                             const uint8_t stage2[SY_SHA1_LEN], uint8_t stage1[SY_SHA1_LEN]);

/* One row of mysql.global_priv as the proxy needs it. */
struct sy_mysql_account {
    char *user;        /* owned; "" = anonymous */
    char *host;        /* owned; pattern with % and _, or an IP/netmask */
    char *plugin;      /* owned; "mysql_native_password", "unix_socket", "ed25519", ... */
    char *auth_string; /* owned; "*HEX" for native password */
};

/* The account the server would pick for `user` connecting from a client the server knows as
 * host_name (may be NULL when it does not resolve names) and host_ip: hosts without wildcards
 * first, then longer literal prefixes before the first wildcard, then named users before
 * anonymous ones; the first row that matches both user and host wins. NULL when none matches. */
const struct sy_mysql_account *sy_mysql_account_match(const struct sy_mysql_account *rows, size_t n,
                                                      const char *user, const char *host_name,
                                                      const char *host_ip);

/* SQL LIKE-style host pattern match (% any run, _ one char, case-insensitive), plus
 * "a.b.c.d/m.m.m.m" netmask patterns against an IPv4 address. */
bool sy_mysql_host_match(const char *pattern, const char *host);

#endif
