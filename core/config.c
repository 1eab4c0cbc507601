/* switchyard.ini -> struct sy_config: one table row per key (type, field, default, bounds), inih for the
 * key = value split, our own line reader around it for what inih does not give a handler: the line number,
 * section headers (also empty ones, and pair names longer than inih's 49-character section buffer),
 * overlong lines, and `objects` continued on indented lines. The first error stops the parse and names
 * file:line, the section and the key. Nothing here logs, opens sockets or checks that files exist. */
#include "core/config.h"

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>
#include <openssl/crypto.h>

enum cfg_type {
    CFG_STR,      /* char[size]: at most size - 1 characters */
    CFG_INT,      /* int, min..max */
    CFG_U32,      /* uint32_t, min..max */
    CFG_BOOL,     /* bool: on/off, true/false, yes/no, 1/0 */
    CFG_SIZE,     /* uint64_t bytes, optional K/M/G/T suffix (powers of 1024), min..max */
    CFG_ENUM,     /* an enum stored as int: index into names[] */
    CFG_ENDPOINT, /* struct sy_endpoint; CFG_PORT0 allows port 0 */
    CFG_OBJECTS,  /* struct sy_object_pattern[size], count (size_t) at aux */
};

#define CFG_REQUIRED 0x1u /* no default: "missing required key" at the section's line */
#define CFG_NONEMPTY 0x2u /* CFG_STR: "" is refused */
#define CFG_SECRET 0x4u   /* the value never appears in a message */
#define CFG_PORT0 0x8u    /* CFG_ENDPOINT: port 0 (= ephemeral) allowed */

struct cfg_key {
    const char *name;
    enum cfg_type type;
    size_t offset;            /* of the field in struct sy_config or struct sy_pair_cfg */
    size_t size;              /* sizeof the field; CFG_OBJECTS: capacity of the array */
    const char *def;          /* parsed like a value from the file when the section opens; NULL = none */
    int64_t min, max;         /* CFG_INT, CFG_U32, CFG_SIZE */
    const char *const *names; /* CFG_ENUM: names indexed by value, NULL-terminated */
    size_t aux;               /* CFG_OBJECTS: offset of the count */
    unsigned flags;
};

/* Enum fields are written as int: that only works while the compiler agrees. */
_Static_assert(sizeof(enum sy_engine) == sizeof(int), "enum sy_engine stored as int");
_Static_assert(sizeof(enum sy_backend_tls) == sizeof(int), "enum sy_backend_tls stored as int");
_Static_assert(sizeof(enum sy_on_conflict) == sizeof(int), "enum sy_on_conflict stored as int");
_Static_assert(sizeof(enum sy_log_level) == sizeof(int), "enum sy_log_level stored as int");
_Static_assert(sizeof(enum sy_commit_wait_mode) == sizeof(int), "enum sy_commit_wait_mode stored as int");
_Static_assert(sizeof(enum sy_commit_wait_fallback) == sizeof(int), "enum sy_commit_wait_fallback stored as int");

static const char *const engine_names[] = { "mariadb", "mongodb", "sqlserver", "mysql", NULL };
static const char *const log_level_names[] = { "error", "warn", "info", "debug", NULL };
static const char *const backend_tls_names[] = { "off", "on", "verify", NULL };
static const char *const on_conflict_names[] = { "fail", "overwrite", NULL };
static const char *const commit_wait_names[] = { "off", "collected", "applied", NULL };
static const char *const commit_wait_fallback_names[] = { "degrade", "error", NULL };

#define FSIZE(type, m) sizeof(((type *)0)->m)
#define GK(m) offsetof(struct sy_config, m), FSIZE(struct sy_config, m)
#define PK(m) offsetof(struct sy_pair_cfg, m), FSIZE(struct sy_pair_cfg, m)
#define MS_MAX 3600000 /* one hour, for every *_ms key */
#define SIZE_CAP ((int64_t)1 << 50) /* 1024T: keeps spool arithmetic far from overflow */

static const struct cfg_key global_keys[] = {
    { "admin_socket", CFG_STR, GK(admin_socket), "/run/switchyard/admin.sock", 0, 0, NULL, 0, CFG_NONEMPTY },
    { "state_dir", CFG_STR, GK(state_dir), "/var/lib/switchyard", 0, 0, NULL, 0, CFG_NONEMPTY },
    { "log_level", CFG_ENUM, GK(log_level), "info", 0, 0, log_level_names, 0, 0 },
    { "metrics", CFG_ENDPOINT, GK(metrics), NULL, 0, 0, NULL, 0, 0 }, /* has_metrics: set after the parse */
    { "console", CFG_ENDPOINT, GK(console), NULL, 0, 0, NULL, 0, 0 }, /* has_console: set after the parse */
    { "console_token_file", CFG_STR, GK(console_token_file), "", 0, 0, NULL, 0, 0 },
    { "console_tls_cert", CFG_STR, GK(console_tls_cert), "", 0, 0, NULL, 0, 0 },
    { "console_tls_key", CFG_STR, GK(console_tls_key), "", 0, 0, NULL, 0, 0 },
    { "console_max_connections", CFG_INT, GK(console_max_connections), "32", 1, 10000, NULL, 0, 0 },
    { "proxy_threads", CFG_INT, GK(proxy_threads), "1", 1, 64, NULL, 0, 0 },
};

static const struct cfg_key cluster_keys[] = {
    { "etcd", CFG_STR, GK(cluster.etcd), NULL, 0, 0, NULL, 0, CFG_REQUIRED | CFG_NONEMPTY },
    { "node", CFG_STR, GK(cluster.node), "", 0, 0, NULL, 0, 0 },
    { "lease_ttl_ms", CFG_INT, GK(cluster.lease_ttl_ms), "5000", 2000, 60000, NULL, 0, 0 },
};

static const struct cfg_key pair_keys[] = {
    { "engine", CFG_ENUM, PK(engine), NULL, 0, 0, engine_names, 0, CFG_REQUIRED },
    { "listen", CFG_ENDPOINT, PK(listen), NULL, 0, 0, NULL, 0, CFG_REQUIRED | CFG_PORT0 },
    { "business", CFG_ENDPOINT, PK(business), NULL, 0, 0, NULL, 0, CFG_REQUIRED },
    { "dr", CFG_ENDPOINT, PK(dr), NULL, 0, 0, NULL, 0, CFG_REQUIRED },
    { "admin_user", CFG_STR, PK(admin_user), NULL, 0, 0, NULL, 0, CFG_REQUIRED | CFG_NONEMPTY },
    { "admin_password", CFG_STR, PK(admin_password), "", 0, 0, NULL, 0, CFG_SECRET },
    { "objects", CFG_OBJECTS, offsetof(struct sy_pair_cfg, objects), SY_MAX_OBJECTS, "", 0, 0, NULL,
      offsetof(struct sy_pair_cfg, n_objects), 0 },
    { "retry_seconds", CFG_INT, PK(retry_seconds), "720", 1, 86400, NULL, 0, 0 },
    { "fence_passive", CFG_BOOL, PK(fence_passive), "on", 0, 0, NULL, 0, 0 },
    { "switchover_max_lag_ms", CFG_INT, PK(switchover_max_lag_ms), "1000", 0, MS_MAX, NULL, 0, 0 },
    { "txn_drain_ms", CFG_INT, PK(txn_drain_ms), "2000", 0, MS_MAX, NULL, 0, 0 },
    { "drain_timeout_ms", CFG_INT, PK(drain_timeout_ms), "5000", 1, MS_MAX, NULL, 0, 0 },
    { "max_hold_ms", CFG_INT, PK(max_hold_ms), "10000", 1, MS_MAX, NULL, 0, 0 },
    { "idle_sleep_ms", CFG_INT, PK(idle_sleep_ms), "250", 0, MS_MAX, NULL, 0, 0 },
    { "spool_max_bytes", CFG_SIZE, PK(spool_max_bytes), "1G", 1, SIZE_CAP, NULL, 0, 0 },
    { "initial_sync_chunk_rows", CFG_INT, PK(initial_sync_chunk_rows), "2000", 1, 1000000, NULL, 0, 0 },
    { "on_conflict", CFG_ENUM, PK(on_conflict), "fail", 0, 0, on_conflict_names, 0, 0 },
    { "tls_cert", CFG_STR, PK(tls_cert), "", 0, 0, NULL, 0, 0 },
    { "tls_key", CFG_STR, PK(tls_key), "", 0, 0, NULL, 0, 0 },
    { "backend_tls", CFG_ENUM, PK(backend_tls), "off", 0, 0, backend_tls_names, 0, 0 },
    { "backend_ca", CFG_STR, PK(backend_ca), "", 0, 0, NULL, 0, 0 },
    { "collector_server_id", CFG_U32, PK(collector_server_id), "4001", 1, UINT32_MAX, NULL, 0, 0 },
    { "writer_tag", CFG_U32, PK(writer_tag), "4002", 1, UINT32_MAX, NULL, 0, 0 },
    { "apply_threads", CFG_INT, PK(apply_threads), "2", 1, SY_APPLY_THREADS_MAX, NULL, 0, 0 },
    { "commit_wait", CFG_ENUM, PK(commit_wait), "off", 0, 0, commit_wait_names, 0, 0 },
    { "commit_wait_timeout_ms", CFG_INT, PK(commit_wait_timeout_ms), "1000", 1, MS_MAX, NULL, 0, 0 },
    { "commit_wait_fallback", CFG_ENUM, PK(commit_wait_fallback), "degrade", 0, 0, commit_wait_fallback_names, 0,
      0 },
};

#define MAX_KEYS 32 /* per section; key_line[] below is sized by it */
_Static_assert(SY_ARRAY_LEN(global_keys) <= MAX_KEYS, "global_keys fits key_line");
_Static_assert(SY_ARRAY_LEN(pair_keys) <= MAX_KEYS, "pair_keys fits key_line");
_Static_assert(SY_ARRAY_LEN(cluster_keys) <= MAX_KEYS, "cluster_keys fits key_line");

enum cfg_sect { SECT_NONE, SECT_GLOBAL, SECT_PAIR, SECT_CLUSTER };

/* Parse state shared by the line reader and the inih handler. inih reads exactly one line per reader
 * call and handles it before asking for the next, so `lineno` and `sect` always describe the line the
 * handler is called for. */
struct cfg_load {
    struct sy_config *cfg;          /* ref: the caller's, filled in place */
    FILE *f;                        /* owned by sy_config_load */
    int lineno;                     /* last line handed to inih, 1-based */
    enum cfg_sect sect;             /* section of that line */
    struct sy_pair_cfg *pair;       /* SECT_PAIR: cfg->pairs[n_pairs - 1] */
    char label[80];                 /* "[switchyard]" or "[pair NAME]", for messages */
    const struct cfg_key *last_key; /* set by the last key line of this section: what an indented line
                                       continues; NULL after a section header */
    bool cont;                      /* the current line continues last_key */
    int global_line;                /* line of [switchyard]; 0 = not seen */
    int global_key_line[MAX_KEYS];  /* line where each global key was set; 0 = not set */
    int cluster_key_line[MAX_KEYS]; /* the same for [cluster] */
    int pair_key_line[SY_MAX_PAIRS][MAX_KEYS];
    int read_errno;                 /* errno of a failed read; 0 = none */
    int err_line;                   /* 0 = no error yet; else the first error and its line */
    char err[1200];
    char raw[4096];                 /* the current line; wiped at the end (it may hold a password) */
};

static void ld_fail(struct cfg_load *ld, int line, const char *fmt, ...) SY_PRINTF(3, 4);

/* Keeps the first error only: "path:line: text". */
static void ld_fail(struct cfg_load *ld, int line, const char *fmt, ...)
{
    if (ld->err_line != 0)
        return;
    ld->err_line = line > 0 ? line : 1;
    int n = snprintf(ld->err, sizeof ld->err, "%s:%d: ", ld->cfg->path, ld->err_line);
    if (n < 0 || (size_t)n >= sizeof ld->err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ld->err + n, sizeof ld->err - (size_t)n, fmt, ap);
    va_end(ap);
}

/* ---- values ---------------------------------------------------------------------------------------- */

static bool is_blank(int c)
{
    return isspace((unsigned char)c) != 0;
}

/* Unsigned decimal digits at *sp; advances it. -1 when there are none, 1 when they overflow. */
static int parse_digits(const char **sp, uint64_t *out)
{
    const char *s = *sp;
    uint64_t v = 0;
    int rc = 0;
    if (!isdigit((unsigned char)*s))
        return -1;
    for (; isdigit((unsigned char)*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            rc = 1;
        else
            v = v * 10 + d;
    }
    *sp = s;
    *out = v;
    return rc;
}

/* "-12", "7": -1 = not an integer, 1 = an integer outside int64, 0 = *out set. */
static int parse_int(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    uint64_t v;
    if (neg)
        s++;
    int rc = parse_digits(&s, &v);
    if (rc < 0 || *s != '\0')
        return -1;
    if (rc > 0 || v > (uint64_t)INT64_MAX)
        return 1;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

/* "1G" -> 1073741824; same return convention as parse_int. */
static int parse_size(const char *s, int64_t *out)
{
    uint64_t v;
    int rc = parse_digits(&s, &v);
    if (rc < 0)
        return -1;
    unsigned shift = 0;
    switch (*s) {
    case '\0': break;
    case 'K': case 'k': shift = 10; break;
    case 'M': case 'm': shift = 20; break;
    case 'G': case 'g': shift = 30; break;
    case 'T': case 't': shift = 40; break;
    default: return -1;
    }
    if (shift != 0 && s[1] != '\0')
        return -1;
    if (rc > 0 || v > ((uint64_t)INT64_MAX >> shift))
        return 1;
    *out = (int64_t)(v << shift);
    return 0;
}

/* 1073741824 -> "1G" when exact, else plain bytes. */
static const char *fmt_size(int64_t v, char *buf, size_t len)
{
    static const char suffix[] = "TGMK";
    for (int i = 0; i < 4; i++) {
        int64_t unit = (int64_t)1 << (10 * (4 - i));
        if (v >= unit && v % unit == 0) {
            snprintf(buf, len, "%" PRId64 "%c", v / unit, suffix[i]);
            return buf;
        }
    }
    snprintf(buf, len, "%" PRId64, v);
    return buf;
}

static int parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "on", "true", "yes", "1" };
    static const char *const no[] = { "off", "false", "no", "0" };
    for (size_t i = 0; i < SY_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

enum ep_result { EP_OK, EP_SYNTAX, EP_HOST, EP_PORT };

static bool is_host_char(int c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '-' || c == '_';
}

/* host:port or [v6]:port; the brackets are not kept. */
static enum ep_result endpoint_parse(const char *s, bool allow_port0, struct sy_endpoint *out)
{
    const char *host = s, *host_end, *colon;
    if (*s == '[') {
        host = s + 1;
        host_end = strchr(host, ']');
        if (host_end == NULL || host_end[1] != ':')
            return EP_SYNTAX;
        colon = host_end + 1;
        size_t n = (size_t)(host_end - host);
        if (n == 0 || n >= sizeof out->host)
            return n == 0 ? EP_SYNTAX : EP_HOST;
        char addr[sizeof out->host];
        memcpy(addr, host, n);
        addr[n] = '\0';
        char *zone = strchr(addr, '%'); /* fe80::1%eth0 */
        if (zone != NULL) {
            *zone++ = '\0';
            if (*zone == '\0')
                return EP_SYNTAX;
            for (const char *z = zone; *z; z++)
                if (!is_host_char(*z))
                    return EP_SYNTAX;
        }
        struct in6_addr a6;
        if (inet_pton(AF_INET6, addr, &a6) != 1)
            return EP_SYNTAX;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || colon == s)
            return EP_SYNTAX;
        host_end = colon;
        for (const char *p = s; p < host_end; p++)
            if (!is_host_char(*p)) /* a bare IPv6 address lands here too: it needs brackets */
                return EP_SYNTAX;
        if ((size_t)(host_end - host) >= sizeof out->host)
            return EP_HOST;
    }
    const char *p = colon + 1;
    uint64_t port;
    if (parse_digits(&p, &port) < 0 || *p != '\0')
        return EP_SYNTAX;
    if (p - (colon + 1) > 5 || port > 65535 || (port == 0 && !allow_port0))
        return EP_PORT;
    size_t n = (size_t)(host_end - host);
    memcpy(out->host, host, n);
    out->host[n] = '\0';
    out->port = (uint16_t)port;
    return EP_OK;
}

static bool is_object_name(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '$')
            return false;
    return true;
}

/* Appends the comma-separated patterns in v to the list; empty items are skipped, so a line may end
 * with a comma before an indented continuation. */
static int objects_add(struct sy_object_pattern *objs, size_t *n, size_t cap, const char *v, char *why,
                       size_t whylen)
{
    const size_t name_max = sizeof objs->db - 1;
    while (*v != '\0') {
        while (is_blank(*v))
            v++;
        const char *item = v, *end = strchr(v, ',');
        if (end == NULL)
            end = v + strlen(v);
        v = *end == ',' ? end + 1 : end;
        while (end > item && is_blank(end[-1]))
            end--;
        size_t len = (size_t)(end - item);
        if (len == 0)
            continue;
        const char *dot = memchr(item, '.', len);
        size_t dblen = dot ? (size_t)(dot - item) : 0, tlen = dot ? (size_t)(end - dot - 1) : 0;
        bool star = tlen == 1 && dot[1] == '*';
        if (dot == NULL || !is_object_name(item, dblen) || (!star && !is_object_name(dot + 1, tlen))) {
            snprintf(why, whylen, "\"%.*s\" is not db.* or db.table (names: letters, digits, _ and $)",
                     (int)len, item);
            return -1;
        }
        if (dblen > name_max || tlen > name_max) {
            snprintf(why, whylen, "\"%.*s\": a name is longer than %zu characters", (int)len, item, name_max);
            return -1;
        }
        struct sy_object_pattern o;
        memcpy(o.db, item, dblen);
        o.db[dblen] = '\0';
        memcpy(o.table, dot + 1, tlen);
        o.table[tlen] = '\0';
        for (size_t i = 0; i < *n; i++) {
            if (strcmp(objs[i].db, o.db) == 0 && strcmp(objs[i].table, o.table) == 0) {
                snprintf(why, whylen, "\"%.*s\" is listed twice", (int)len, item);
                return -1;
            }
        }
        if (*n == cap) {
            snprintf(why, whylen, "more than %zu patterns", cap);
            return -1;
        }
        objs[(*n)++] = o;
    }
    return 0;
}

/* Sets one field of base (struct sy_config or struct sy_pair_cfg) from v. append: a continuation line
 * (CFG_OBJECTS only). On error, why gets the text after "key: ". */
static int cfg_set(void *base, const struct cfg_key *k, const char *v, bool append, char *why, size_t whylen)
{
    void *f = (char *)base + k->offset;
    int64_t i;
    int rc;
    char lo[32], hi[32];
    switch (k->type) {
    case CFG_STR: {
        size_t n = strlen(v);
        if (n == 0 && (k->flags & CFG_NONEMPTY)) {
            snprintf(why, whylen, "must not be empty");
            return -1;
        }
        if (n >= k->size) {
            snprintf(why, whylen, "longer than %zu characters", k->size - 1);
            return -1;
        }
        memcpy(f, v, n + 1);
        return 0;
    }
    case CFG_INT:
    case CFG_U32:
    case CFG_SIZE:
        rc = k->type == CFG_SIZE ? parse_size(v, &i) : parse_int(v, &i);
        if (rc < 0) {
            if (k->type == CFG_SIZE)
                snprintf(why, whylen, "\"%s\" is not a size (bytes, or a number with K, M, G or T)", v);
            else
                snprintf(why, whylen, "\"%s\" is not an integer", v);
            return -1;
        }
        if (rc > 0 || i < k->min || i > k->max) {
            if (k->type == CFG_SIZE)
                snprintf(why, whylen, "must be between %s and %s", fmt_size(k->min, lo, sizeof lo),
                         fmt_size(k->max, hi, sizeof hi));
            else
                snprintf(why, whylen, "must be between %" PRId64 " and %" PRId64, k->min, k->max);
            return -1;
        }
        if (k->type == CFG_INT) {
            int iv = (int)i;
            memcpy(f, &iv, sizeof iv);
        } else if (k->type == CFG_U32) {
            uint32_t uv = (uint32_t)i;
            memcpy(f, &uv, sizeof uv);
        } else {
            uint64_t sv = (uint64_t)i;
            memcpy(f, &sv, sizeof sv);
        }
        return 0;
    case CFG_BOOL: {
        bool b;
        if (parse_bool(v, &b) != 0) {
            snprintf(why, whylen, "\"%s\" is not on/off, true/false, yes/no or 1/0", v);
            return -1;
        }
        memcpy(f, &b, sizeof b);
        return 0;
    }
    case CFG_ENUM:
        for (int e = 0; k->names[e] != NULL; e++) {
            if (strcasecmp(v, k->names[e]) == 0) {
                memcpy(f, &e, sizeof e);
                return 0;
            }
        }
        rc = snprintf(why, whylen, "\"%s\" is not one of ", v);
        for (int e = 0; k->names[e] != NULL && rc >= 0 && (size_t)rc < whylen; e++)
            rc += snprintf(why + rc, whylen - (size_t)rc, "%s%s", e ? ", " : "", k->names[e]);
        return -1;
    case CFG_ENDPOINT: {
        struct sy_endpoint ep;
        switch (endpoint_parse(v, (k->flags & CFG_PORT0) != 0, &ep)) {
        case EP_OK:
            memcpy(f, &ep, sizeof ep);
            return 0;
        case EP_HOST:
            snprintf(why, whylen, "host is longer than %zu characters", sizeof ep.host - 1);
            return -1;
        case EP_PORT:
            snprintf(why, whylen, "\"%s\": port must be between %d and 65535", v,
                     (k->flags & CFG_PORT0) ? 0 : 1);
            return -1;
        case EP_SYNTAX:
            break;
        }
        snprintf(why, whylen, "\"%s\" is not host:port or [ipv6]:port", v);
        return -1;
    }
    case CFG_OBJECTS: {
        size_t *n = (size_t *)(void *)((char *)base + k->aux);
        if (!append)
            *n = 0;
        return objects_add(f, n, k->size, v, why, whylen);
    }
    }
    snprintf(why, whylen, "unsupported key type");
    return -1;
}

static void apply_defaults(void *base, const struct cfg_key *keys, size_t n)
{
    char why[256];
    for (size_t i = 0; i < n; i++) {
        if (keys[i].def != NULL) {
            int rc = cfg_set(base, &keys[i], keys[i].def, false, why, sizeof why);
            assert(rc == 0 && "a default in the key table does not parse"); /* test_config loads them all */
            (void)rc;
        }
    }
}

static const struct cfg_key *key_find(const struct cfg_key *keys, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

/* ---- sections and lines ---------------------------------------------------------------------------- */

static bool is_pair_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= FSIZE(struct sy_pair_cfg, name))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return false;
    return true;
}

/* s: a trimmed line starting with '[', inline comment already cut. */
static void section_open(struct cfg_load *ld, char *s)
{
    char *close = strchr(s, ']');
    if (close == NULL) {
        ld_fail(ld, ld->lineno, "section header without ']'");
        return;
    }
    if (close[1] != '\0') {
        ld_fail(ld, ld->lineno, "text after the section header: \"%s\"", close + 1);
        return;
    }
    *close = '\0';
    char *in = s + 1;
    while (is_blank(*in))
        in++;
    for (char *e = close; e > in && is_blank(e[-1]); e--)
        e[-1] = '\0';
    ld->last_key = NULL;

    if (strcmp(in, "switchyard") == 0) {
        if (ld->global_line != 0) {
            ld_fail(ld, ld->lineno, "duplicate section [switchyard] (first on line %d)", ld->global_line);
            return;
        }
        ld->global_line = ld->lineno;
        ld->sect = SECT_GLOBAL;
        ld->pair = NULL;
        snprintf(ld->label, sizeof ld->label, "[switchyard]");
        return;
    }
    if (strcmp(in, "cluster") == 0) {
        if (ld->cfg->cluster.line != 0) {
            ld_fail(ld, ld->lineno, "duplicate section [cluster] (first on line %d)", ld->cfg->cluster.line);
            return;
        }
        ld->cfg->cluster.line = ld->lineno;
        ld->sect = SECT_CLUSTER;
        ld->pair = NULL;
        snprintf(ld->label, sizeof ld->label, "[cluster]");
        return;
    }
    if (strncmp(in, "pair", 4) != 0 || (in[4] != '\0' && !is_blank(in[4]))) {
        ld_fail(ld, ld->lineno, "unknown section [%s] (expected [switchyard], [cluster] or [pair NAME])", in);
        return;
    }
    const char *name = in + 4;
    while (is_blank(*name))
        name++;
    if (*name == '\0') {
        ld_fail(ld, ld->lineno, "[pair] needs a name: [pair NAME]");
        return;
    }
    if (!is_pair_name(name)) {
        ld_fail(ld, ld->lineno, "[pair %s]: a pair name is 1 to %zu letters, digits, _ or -", name,
                FSIZE(struct sy_pair_cfg, name) - 1);
        return;
    }
    struct sy_config *c = ld->cfg;
    for (size_t i = 0; i < c->n_pairs; i++) {
        if (strcmp(c->pairs[i].name, name) == 0) {
            ld_fail(ld, ld->lineno, "duplicate [pair %s] (first on line %d)", name, c->pairs[i].line);
            return;
        }
    }
    if (c->n_pairs == SY_MAX_PAIRS) {
        ld_fail(ld, ld->lineno, "[pair %s]: more than %d pairs", name, SY_MAX_PAIRS);
        return;
    }
    struct sy_pair_cfg *p = &c->pairs[c->n_pairs++];
    memcpy(p->name, name, strlen(name) + 1);
    p->line = ld->lineno;
    apply_defaults(p, pair_keys, SY_ARRAY_LEN(pair_keys));
    ld->sect = SECT_PAIR;
    ld->pair = p;
    snprintf(ld->label, sizeof ld->label, "[pair %s]", name);
}

/* inih's reader: hands it one line at a time, trimmed, with the inline comment cut, so that what inih
 * sees never depends on its build options. Section headers are ours (inih gets a blank line); an indented
 * line without '=' or ':' after a key continues that key and reaches inih as "=value". */
static char *read_line(char *str, int num, void *stream)
{
    struct cfg_load *ld = stream;
    if (ld->err_line != 0)
        return NULL;
    size_t n = 0;
    bool too_long = false, nul = false;
    int ch;
    while ((ch = getc(ld->f)) != EOF && ch != '\n') {
        if (ch == '\0')
            nul = true;
        if (n < sizeof ld->raw - 1)
            ld->raw[n++] = (char)ch;
        else
            too_long = true;
    }
    if (ch == EOF && ferror(ld->f)) {
        ld->read_errno = errno; /* sy_config_load reports it */
        return NULL;
    }
    if (ch == EOF && n == 0 && !too_long && !nul)
        return NULL;
    ld->raw[n] = '\0';
    ld->lineno++;
    ld->cont = false;
    const size_t limit = num > 3 ? (size_t)num - 3 : 0; /* room for '\n' and '\0', as inih wants */
    if (nul) {
        ld_fail(ld, ld->lineno, "the line contains a NUL byte");
        return NULL;
    }
    if (too_long) {
        ld_fail(ld, ld->lineno, "the line is longer than %zu characters", limit);
        return NULL;
    }

    char *s = ld->raw;
    if (ld->lineno == 1 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) /* UTF-8 byte order mark */
        s += 3;
    bool indented = *s == ' ' || *s == '\t';
    while (is_blank(*s))
        s++;
    const char *out = s;
    if (*s == '\0' || *s == ';' || *s == '#') {
        out = "";
    } else {
        for (char *p = s + 1; *p; p++) { /* inline comment: ';' after whitespace, as inih does it */
            if (*p == ';' && is_blank(p[-1])) {
                *p = '\0';
                break;
            }
        }
        for (char *e = s + strlen(s); e > s && is_blank(e[-1]); e--)
            e[-1] = '\0';
        if (*s == '[') {
            section_open(ld, s);
            if (ld->err_line != 0)
                return NULL;
            out = "";
        } else if (indented && ld->last_key != NULL && strpbrk(s, "=:") == NULL) {
            ld->cont = true;
            *--s = '='; /* the indentation leaves room for it */
            out = s;
        } else if (strpbrk(s, "=:") == NULL) {
            ld_fail(ld, ld->lineno, "expected \"key = value\", \"[section]\" or a comment");
            return NULL;
        }
    }
    if (strlen(out) > limit) {
        ld_fail(ld, ld->lineno, "the line is longer than %zu characters", limit);
        return NULL;
    }
    size_t len = strlen(out);
    memcpy(str, out, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    return str;
}

/* inih's handler: section is always "" (headers are ours), lineno and sect are the current line's. */
static int on_ini_key(void *user, const char *section, const char *name, const char *value)
{
    struct cfg_load *ld = user;
    (void)section;
    if (ld->err_line != 0)
        return 0;
    const struct cfg_key *keys = ld->sect == SECT_PAIR ? pair_keys : ld->sect == SECT_CLUSTER ? cluster_keys
                                                                                             : global_keys;
    size_t nkeys = ld->sect == SECT_PAIR      ? SY_ARRAY_LEN(pair_keys)
                   : ld->sect == SECT_CLUSTER ? SY_ARRAY_LEN(cluster_keys)
                                              : SY_ARRAY_LEN(global_keys);
    void *base = ld->sect == SECT_PAIR ? (void *)ld->pair : (void *)ld->cfg;
    char why[400];

    if (ld->cont) {
        const struct cfg_key *k = ld->last_key;
        if (k->type != CFG_OBJECTS) {
            ld_fail(ld, ld->lineno, "%s %s: an indented line continues the previous key, and only objects "
                    "may continue (remove the indentation)", ld->label, k->name);
            return 0;
        }
        if (cfg_set(base, k, value, true, why, sizeof why) != 0) {
            ld_fail(ld, ld->lineno, "%s %s: %s", ld->label, k->name, why);
            return 0;
        }
        return 1;
    }
    if (ld->sect == SECT_NONE) {
        ld_fail(ld, ld->lineno, "key '%s' is outside any section (put it under [switchyard] or [pair NAME])",
                name);
        return 0;
    }
    if (name[0] == '\0') {
        ld_fail(ld, ld->lineno, "%s a key name is missing before '='", ld->label);
        return 0;
    }
    const struct cfg_key *k = key_find(keys, nkeys, name);
    if (k == NULL) {
        ld_fail(ld, ld->lineno, "%s unknown key '%s'", ld->label, name);
        return 0;
    }
    int *key_line = ld->sect == SECT_PAIR      ? ld->pair_key_line[ld->pair - ld->cfg->pairs]
                    : ld->sect == SECT_CLUSTER ? ld->cluster_key_line
                                               : ld->global_key_line;
    size_t idx = (size_t)(k - keys);
    if (key_line[idx] != 0) {
        ld_fail(ld, ld->lineno, "%s duplicate key '%s' (first set on line %d)", ld->label, name,
                key_line[idx]);
        return 0;
    }
    if (cfg_set(base, k, value, false, why, sizeof why) != 0) {
        ld_fail(ld, ld->lineno, "%s %s: %s", ld->label, k->name, why);
        return 0;
    }
    key_line[idx] = ld->lineno;
    ld->last_key = k;
    return 1;
}

/* ---- whole-file checks ----------------------------------------------------------------------------- */

static int line_of(const struct cfg_load *ld, size_t pair, const char *key)
{
    const struct cfg_key *k = key_find(pair_keys, SY_ARRAY_LEN(pair_keys), key);
    return k ? ld->pair_key_line[pair][k - pair_keys] : 0;
}

/* [cluster]: etcd endpoints are http://host:port (the JSON gateway; no TLS yet), the node a name. */
static void validate_cluster(struct cfg_load *ld)
{
    struct sy_cluster_cfg *k = &ld->cfg->cluster;
    if (k->line == 0)
        return;
    if (ld->cluster_key_line[0] == 0) {
        ld_fail(ld, k->line, "[cluster] missing required key 'etcd'");
        return;
    }
    char list[sizeof k->etcd];
    snprintf(list, sizeof list, "%s", k->etcd);
    char *save = NULL;
    for (char *u = strtok_r(list, ",", &save); u != NULL; u = strtok_r(NULL, ",", &save)) {
        while (is_blank(*u))
            u++;
        struct sy_endpoint ep;
        if (strncmp(u, "http://", 7) != 0 || sy_endpoint_parse(u + 7, false, &ep) != 0) {
            ld_fail(ld, ld->cluster_key_line[0], "[cluster] etcd: '%s' is not http://host:port (https is not "
                    "supported yet)", u);
            return;
        }
    }
    if (k->node[0] == '\0' && gethostname(k->node, sizeof k->node - 1) != 0)
        snprintf(k->node, sizeof k->node, "switchyard");
    for (const char *s = k->node; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.') {
            ld_fail(ld, ld->cluster_key_line[1] ? ld->cluster_key_line[1] : k->line,
                    "[cluster] node: '%s' is not a name (letters, digits, '-', '_', '.')", k->node);
            return;
        }
    }
}

bool sy_host_is_loopback(const char *host)
{
    return strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "[::1]") == 0;
}

static void validate(struct cfg_load *ld)
{
    struct sy_config *c = ld->cfg;
    validate_cluster(ld);
    if (ld->err_line != 0)
        return;
    const struct cfg_key *mk = key_find(global_keys, SY_ARRAY_LEN(global_keys), "metrics");
    c->has_metrics = mk != NULL && ld->global_key_line[mk - global_keys] != 0;
    const struct cfg_key *ck = key_find(global_keys, SY_ARRAY_LEN(global_keys), "console");
    c->has_console = ck != NULL && ld->global_key_line[ck - global_keys] != 0;
    const struct cfg_key *tk = key_find(global_keys, SY_ARRAY_LEN(global_keys), "console_token_file");
    if (!c->has_console && c->console_token_file[0] != '\0') {
        ld_fail(ld, ld->global_key_line[tk - global_keys], "[switchyard] console_token_file: needs `console`");
        return;
    }
    if (c->has_console && c->console_token_file[0] == '\0' && !sy_host_is_loopback(c->console.host)) {
        ld_fail(ld, ld->global_key_line[ck - global_keys],
                "[switchyard] console = %s:%u is reachable from other machines: it needs console_token_file (every "
                "request, reads too, then needs the token), or bind it to 127.0.0.1",
                c->console.host[0] ? c->console.host : "*", (unsigned)c->console.port);
        return;
    }
    if ((c->console_tls_cert[0] != '\0') != (c->console_tls_key[0] != '\0')) {
        const struct cfg_key *one = key_find(global_keys, SY_ARRAY_LEN(global_keys),
                                             c->console_tls_cert[0] ? "console_tls_cert" : "console_tls_key");
        ld_fail(ld, ld->global_key_line[one - global_keys], "[switchyard] console_tls_cert and console_tls_key go together");
        return;
    }

    for (size_t i = 0; i < c->n_pairs && ld->err_line == 0; i++) {
        const struct sy_pair_cfg *p = &c->pairs[i];
        for (size_t k = 0; k < SY_ARRAY_LEN(pair_keys); k++) {
            if ((pair_keys[k].flags & CFG_REQUIRED) && ld->pair_key_line[i][k] == 0) {
                ld_fail(ld, p->line, "[pair %s] missing required key '%s'", p->name, pair_keys[k].name);
                return;
            }
        }
        if ((p->tls_cert[0] != '\0') != (p->tls_key[0] != '\0')) {
            const char *set = p->tls_cert[0] != '\0' ? "tls_cert" : "tls_key";
            const char *unset = p->tls_cert[0] != '\0' ? "tls_key" : "tls_cert";
            ld_fail(ld, line_of(ld, i, set), "[pair %s] %s is set but %s is not: client TLS needs both",
                    p->name, set, unset);
            return;
        }
        if (p->backend_tls == SY_BACKEND_TLS_VERIFY && p->backend_ca[0] == '\0') {
            ld_fail(ld, line_of(ld, i, "backend_tls"), "[pair %s] backend_tls: verify needs backend_ca",
                    p->name);
            return;
        }
        if (p->commit_wait != SY_COMMIT_WAIT_OFF && p->engine != SY_ENGINE_MARIADB) {
            ld_fail(ld, line_of(ld, i, "commit_wait"),
                    "[pair %s] commit_wait: only engine = mariadb can hold a commit's OK (use off)", p->name);
            return;
        }
        if (p->commit_wait != SY_COMMIT_WAIT_OFF && p->n_objects == 0) {
            ld_fail(ld, line_of(ld, i, "commit_wait"),
                    "[pair %s] commit_wait: needs objects (nothing is collected for DR without them; use off)",
                    p->name);
            return;
        }
        c->pairs[i].fence_passive_set = line_of(ld, i, "fence_passive") != 0;
        for (size_t j = 0; j < i && p->listen.port != 0; j++) {
            if (c->pairs[j].listen.port == p->listen.port) {
                ld_fail(ld, line_of(ld, i, "listen"),
                        "[pair %s] listen: port %u is already used by [pair %s] (line %d)", p->name,
                        p->listen.port, c->pairs[j].name, line_of(ld, j, "listen"));
                return;
            }
        }
    }
}

/* ---- public ---------------------------------------------------------------------------------------- */

int sy_config_load(const char *path, struct sy_config *out, char *err, size_t errlen)
{
    struct cfg_load *ld = NULL;
    int rc = -1;
    char msg[sizeof ld->err];

    memset(out, 0, sizeof *out);
    msg[0] = '\0';
    if (strlen(path) >= sizeof out->path) {
        snprintf(msg, sizeof msg, "%.64s...: the path is longer than %zu characters", path,
                 sizeof out->path - 1);
        goto out;
    }
    memcpy(out->path, path, strlen(path) + 1);
    apply_defaults(out, global_keys, SY_ARRAY_LEN(global_keys));
    apply_defaults(out, cluster_keys, SY_ARRAY_LEN(cluster_keys));

    ld = calloc(1, sizeof *ld); /* ~13 KiB of line numbers and buffers: not on the caller's stack */
    if (ld == NULL) {
        snprintf(msg, sizeof msg, "%s: out of memory", path);
        goto out;
    }
    ld->cfg = out;
    ld->f = fopen(path, "re");
    if (ld->f == NULL) {
        snprintf(msg, sizeof msg, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    int ini_rc = ini_parse_stream(read_line, ld, on_ini_key, ld);
    if (ld->err_line == 0 && ld->read_errno != 0) {
        snprintf(msg, sizeof msg, "%s:%d: read error: %s", path, ld->lineno + 1, strerror(ld->read_errno));
        goto out;
    }
    if (ini_rc > 0 && (ld->err_line == 0 || ini_rc < ld->err_line)) {
        ld->err_line = 0; /* a line inih refused that the reader let through: keep the earlier one */
        ld_fail(ld, ini_rc, "expected \"key = value\", \"[section]\" or a comment");
    } else if (ini_rc < 0 && ld->err_line == 0) {
        ld_fail(ld, ld->lineno, "the INI parser failed (%d)", ini_rc);
    }
    if (ld->err_line == 0)
        validate(ld);
    if (ld->err_line != 0) {
        snprintf(msg, sizeof msg, "%s", ld->err);
        goto out;
    }
    rc = 0;
out:
    if (ld != NULL) {
        if (ld->f != NULL)
            fclose(ld->f);
        OPENSSL_cleanse(ld->raw, sizeof ld->raw);
        free(ld);
    }
    if (rc != 0)
        sy_config_wipe(out);
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", rc == 0 ? "" : msg);
    return rc;
}

const char *sy_engine_name(enum sy_engine e)
{
    return (unsigned)e < SY_ARRAY_LEN(engine_names) - 1 ? engine_names[e] : "unknown";
}

const char *sy_log_level_name(enum sy_log_level l)
{
    return (unsigned)l < SY_ARRAY_LEN(log_level_names) - 1 ? log_level_names[l] : "unknown";
}

int sy_endpoint_parse(const char *s, bool allow_port0, struct sy_endpoint *out)
{
    return endpoint_parse(s, allow_port0, out) == EP_OK ? 0 : -1;
}

void sy_config_wipe(struct sy_config *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < SY_MAX_PAIRS; i++)
        OPENSSL_cleanse(c->pairs[i].admin_password, sizeof c->pairs[i].admin_password);
}
