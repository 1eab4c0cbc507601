/* mysql_native_password arithmetic over OpenSSL 3 EVP SHA1, and the account choice MariaDB makes
 * for a (user, host) pair: acl_users sorted by host specificity then named-before-anonymous, first
 * match wins, with '%'/'_' LIKE patterns and a.b.c.d/m.m.m.m netmasks. No I/O and no globals;
 * every temporary derived from a password is wiped with OPENSSL_cleanse before returning. */
#include "proxy/mysql_auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

/* ---- mysql_native_password -------------------------------------------------------------------- */

static bool sha1(const void *p, size_t len, uint8_t out[SY_SHA1_LEN])
{
    unsigned int n = 0;
    if (EVP_Digest(len ? p : "", len, out, &n, EVP_sha1(), NULL) == 1 && n == SY_SHA1_LEN)
        return true;
    OPENSSL_cleanse(out, SY_SHA1_LEN);
    return false;
}

/* SHA1(a + b) without concatenating into a buffer sized from the wire. */
static bool sha1_two(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[SY_SHA1_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
              (alen == 0 || EVP_DigestUpdate(ctx, a, alen) == 1) &&
              (blen == 0 || EVP_DigestUpdate(ctx, b, blen) == 1) && EVP_DigestFinal_ex(ctx, out, &n) == 1 &&
              n == SY_SHA1_LEN;
    EVP_MD_CTX_free(ctx);                     /* NULL-safe; wipes the digest state */
    if (!ok)
        OPENSSL_cleanse(out, SY_SHA1_LEN);
    return ok;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool sy_mysql_native_hash_parse(const char *auth_string, uint8_t stage2[SY_SHA1_LEN])
{
    if (auth_string == NULL || auth_string[0] != '*' || strnlen(auth_string, 2 * SY_SHA1_LEN + 2) !=
        2 * SY_SHA1_LEN + 1)
        return false;
    for (size_t i = 0; i < SY_SHA1_LEN; i++) {
        int hi = hex_val(auth_string[1 + 2 * i]);
        int lo = hex_val(auth_string[2 + 2 * i]);
        if (hi < 0 || lo < 0) {
            memset(stage2, 0, SY_SHA1_LEN);
            return false;
        }
        stage2[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

void sy_mysql_native_stage1(const char *password, size_t len, uint8_t stage1[SY_SHA1_LEN])
{
    (void)sha1(password, len, stage1);        /* on failure stage1 is zeroed: auth then fails */
}

void sy_mysql_native_scramble(const uint8_t stage1[SY_SHA1_LEN], const uint8_t *salt, size_t salt_len,
                              uint8_t out[SY_SHA1_LEN])
{
    uint8_t stage2[SY_SHA1_LEN];
    uint8_t mask[SY_SHA1_LEN];
    if (sha1(stage1, SY_SHA1_LEN, stage2) && sha1_two(salt, salt_len, stage2, SY_SHA1_LEN, mask)) {
        for (size_t i = 0; i < SY_SHA1_LEN; i++)
            out[i] = stage1[i] ^ mask[i];
    } else {
        memset(out, 0, SY_SHA1_LEN);          /* a response no server accepts */
    }
    OPENSSL_cleanse(stage2, sizeof stage2);
    OPENSSL_cleanse(mask, sizeof mask);
}

bool sy_mysql_native_recover(const uint8_t *resp, size_t resp_len, const uint8_t *salt, size_t salt_len,
                             const uint8_t stage2[SY_SHA1_LEN], uint8_t stage1[SY_SHA1_LEN])
{
    uint8_t mask[SY_SHA1_LEN];
    uint8_t cand[SY_SHA1_LEN];
    uint8_t check[SY_SHA1_LEN];
    bool ok = false;
    if (resp != NULL && resp_len == SY_SHA1_LEN && sha1_two(salt, salt_len, stage2, SY_SHA1_LEN, mask)) {
        for (size_t i = 0; i < SY_SHA1_LEN; i++)
            cand[i] = resp[i] ^ mask[i];
        ok = sha1(cand, SY_SHA1_LEN, check) && CRYPTO_memcmp(check, stage2, SY_SHA1_LEN) == 0;
    }
    if (ok)
        memcpy(stage1, cand, SY_SHA1_LEN);
    else
        OPENSSL_cleanse(stage1, SY_SHA1_LEN);
    OPENSSL_cleanse(mask, sizeof mask);
    OPENSSL_cleanse(cand, sizeof cand);
    OPENSSL_cleanse(check, sizeof check);
    return ok;
}

/* ---- host patterns ---------------------------------------------------------------------------- */

#define WILD_MANY '%'
#define WILD_ONE '_'
#define WILD_ESCAPE '\\'

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* LIKE match, case-insensitive, '\' escapes the next char. Iterative with one backtrack point, so
 * "%%%%...a" patterns stay O(pattern x host) instead of exponential. */
static bool like_match(const char *pat, const char *str)
{
    const char *p = pat, *s = str;
    const char *star_p = NULL, *star_s = NULL;
    while (*s != '\0') {
        if (*p == WILD_MANY) {
            star_p = ++p;
            star_s = s;
            continue;
        }
        if (*p == WILD_ONE) {
            p++;
            s++;
            continue;
        }
        if (*p != '\0') {
            const char *lit = (*p == WILD_ESCAPE && p[1] != '\0') ? p + 1 : p;
            if (lower((unsigned char)*lit) == lower((unsigned char)*s)) {
                p = lit + 1;
                s++;
                continue;
            }
        }
        if (star_p == NULL)
            return false;
        p = star_p;                           /* let the last '%' swallow one more char */
        s = ++star_s;
    }
    while (*p == WILD_MANY)
        p++;
    return *p == '\0';
}

/* MariaDB calc_ip(): four decimal parts 0..255 separated by '.', then `end`. */
static const char *parse_ipv4(const char *s, uint32_t *out, char end)
{
    uint32_t v = 0;
    for (int part = 0; part < 4; part++) {
        uint32_t octet = 0;
        const char *start = s;
        while (*s >= '0' && *s <= '9') {
            octet = octet * 10 + (uint32_t)(*s - '0');
            if (octet > 255)
                return NULL;
            s++;
        }
        if (s == start || *s != (part < 3 ? '.' : end))
            return NULL;
        v = v << 8 | octet;
        if (part < 3)
            s++;
    }
    *out = v;
    return s;
}

/* MariaDB compare_hostname(): a netmask pattern decides alone for an IPv4 client; otherwise the
 * pattern is matched against the resolved name and against the address text. */
static bool host_matches(const char *pattern, const char *host_name, const char *host_ip)
{
    uint32_t net = 0, mask = 0, addr = 0;
    const char *slash = parse_ipv4(pattern, &net, '/');
    if (slash != NULL && parse_ipv4(slash + 1, &mask, '\0') != NULL && mask != 0 && host_ip != NULL &&
        parse_ipv4(host_ip, &addr, '\0') != NULL)
        return (addr & mask) == net;
    return (host_name != NULL && like_match(pattern, host_name)) ||
           (host_ip != NULL && like_match(pattern, host_ip));
}

/* An empty Host column means any host, as MariaDB's update_hostname() turns it into '%'. */
static const char *host_pattern(const char *host)
{
    return (host == NULL || host[0] == '\0') ? "%" : host;
}

bool sy_mysql_host_match(const char *pattern, const char *host)
{
    return host != NULL && host_matches(host_pattern(pattern), NULL, host);
}

/* ---- account choice --------------------------------------------------------------------------- */

/* One byte of MariaDB's get_sort(): 128 for a literal, 0 for empty, else the first wildcard's
 * position + 1 (capped at 127), where a lone "%" gets 1 and so sorts below every other pattern. */
static unsigned sort_part(const char *s)
{
    unsigned chars = 0, wild_pos = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p == WILD_ESCAPE && p[1] != '\0') {
            p++;
        } else if (*p == WILD_MANY || *p == WILD_ONE) {
            wild_pos = (unsigned)(p - s) + 1;
            if (!(wild_pos == 1 && *p == WILD_MANY && p[1] == '\0'))
                wild_pos++;
            break;
        }
        chars = 128;
    }
    return wild_pos ? (wild_pos < 127 ? wild_pos : 127) : chars;
}

static const char *row_user(const struct sy_mysql_account *a)
{
    return a->user ? a->user : "";
}

static unsigned long row_sort(const struct sy_mysql_account *a)
{
    return (unsigned long)sort_part(host_pattern(a->host)) << 8 | sort_part(row_user(a));
}

/* MariaDB's acl_user_compare() within one user name: higher sort first, then greater host text
 * ("localhost" before "127.0.0.1"). Equal rows keep their input order. */
static bool ranks_before(const struct sy_mysql_account *a, const struct sy_mysql_account *b)
{
    unsigned long sa = row_sort(a), sb = row_sort(b);
    if (sa != sb)
        return sa > sb;
    return strcmp(host_pattern(a->host), host_pattern(b->host)) > 0;
}

const struct sy_mysql_account *sy_mysql_account_match(const struct sy_mysql_account *rows, size_t n,
                                                      const char *user, const char *host_name,
                                                      const char *host_ip)
{
    const struct sy_mysql_account *named = NULL, *anon = NULL;
    if (rows == NULL || user == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const struct sy_mysql_account *a = &rows[i];
        bool is_anon = row_user(a)[0] == '\0';
        if (!is_anon && strcmp(row_user(a), user) != 0)
            continue;
        if (!host_matches(host_pattern(a->host), host_name, host_ip))
            continue;
        const struct sy_mysql_account **best = is_anon ? &anon : &named;
        if (*best == NULL || ranks_before(a, *best))
            *best = a;
    }
    /* find_by_username_or_anon(): an anonymous row wins only when it sorts strictly higher. */
    if (anon != NULL && (named == NULL || row_sort(anon) > row_sort(named)))
        return anon;
    return named;
}
