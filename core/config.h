/* switchyard.ini: parsed with inih through a key table (name, type, default, bounds) into a fresh
 * struct sy_config, validated, and only then handed to the daemon. Errors name file:line and the key,
 * e.g. "switchyard.ini:12: [pair orders] retry_seconds: must be between 1 and 86400". */
#ifndef SY_CONFIG_H
#define SY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/parse.h"

enum sy_engine { SY_ENGINE_MARIADB, SY_ENGINE_MONGODB, SY_ENGINE_SQLSERVER, SY_ENGINE_MYSQL };
enum sy_backend_tls { SY_BACKEND_TLS_OFF, SY_BACKEND_TLS_ON, SY_BACKEND_TLS_VERIFY };
enum sy_on_conflict { SY_ON_CONFLICT_FAIL, SY_ON_CONFLICT_OVERWRITE };
enum sy_log_level { SY_LOG_ERROR, SY_LOG_WARN, SY_LOG_INFO, SY_LOG_DEBUG };
/* What the proxy waits for before passing a commit's OK on (zero-RPO mode, core/commit_wait.h). */
enum sy_commit_wait_mode { SY_COMMIT_WAIT_OFF, SY_COMMIT_WAIT_COLLECTED, SY_COMMIT_WAIT_APPLIED };
/* What a commit gets when commit_wait_timeout_ms passes first. */
enum sy_commit_wait_fallback { SY_COMMIT_WAIT_DEGRADE, SY_COMMIT_WAIT_ERROR };

struct sy_endpoint {
    char host[256]; /* literal address or name; "127.0.0.1" */
    uint16_t port;  /* 0 only for `listen` (= pick a free port) */
};

/* An object pattern from `objects`: db.* or db.table (db.collection). */
struct sy_object_pattern {
    char db[65];
    char table[65]; /* "*" = every table of db */
};

#define SY_MAX_OBJECTS 256
#define SY_APPLY_THREADS_MAX 64  /* apply_threads is 1..this (checked at load: writers size their tables by it) */

struct sy_pair_cfg {
    char name[64];                       /* from "[pair NAME]": [A-Za-z0-9_-]+ */
    int line;                            /* line of the section header, for messages */
    enum sy_engine engine;               /* required */
    struct sy_endpoint listen;           /* required; port 0 = ephemeral */
    struct sy_endpoint business;         /* required */
    struct sy_endpoint dr;               /* required */
    char admin_user[129];                /* required */
    char admin_password[256];            /* secret: never logged */
    struct sy_object_pattern objects[SY_MAX_OBJECTS];
    size_t n_objects;                    /* 0 = nothing synchronized yet */
    int retry_seconds;                   /* default 720, 1..86400 */
    bool fence_passive;                  /* default on (off for engines that cannot fence: tools/switchyardd.c) */
    bool fence_passive_set;              /* the key was in the file */
    int switchover_max_lag_ms;           /* default 1000, 0..3600000 */
    int txn_drain_ms;                    /* default 2000, 0..3600000 */
    int drain_timeout_ms;                /* default 5000, 1..3600000 */
    int max_hold_ms;                     /* default 10000, 1..3600000 */
    int idle_sleep_ms;                   /* default 250, 0..3600000 (0 = never): a plain MariaDB session idle this
                                            long frees its bufferevents (proxy/mysql_relay.c, sleeping) */
    uint64_t spool_max_bytes;            /* default 1G; accepts K/M/G/T suffixes (powers of 1024) */
    int initial_sync_chunk_rows;         /* default 2000, 1..1000000: rows per SELECT of the initial copy */
    enum sy_on_conflict on_conflict;     /* default fail */
    char tls_cert[512];                  /* "" = no client TLS; tls_cert and tls_key go together */
    char tls_key[512];
    enum sy_backend_tls backend_tls;     /* default off */
    char backend_ca[512];                /* required when backend_tls = verify */
    uint32_t collector_server_id;        /* default 4001, 1..4294967295 */
    uint32_t writer_tag;                 /* default 4002, 1..4294967295 */
    int apply_threads;                   /* default 2, 1..SY_APPLY_THREADS_MAX: writer connections in parallel */
    enum sy_commit_wait_mode commit_wait; /* default off; collected/applied: MariaDB pairs with objects */
    int commit_wait_timeout_ms;          /* default 1000, 1..3600000: then commit_wait_fallback */
    enum sy_commit_wait_fallback commit_wait_fallback; /* default degrade */
};

#define SY_MAX_PAIRS 64

/* [cluster]: several switchyardd coordinated through etcd (docs/cluster.md). etcd "" = one node alone. */
struct sy_cluster_cfg {
    char etcd[512];                 /* comma list of http://host:port endpoints of one etcd cluster */
    char node[64];                  /* this node's name (default: the host name) */
    int lease_ttl_ms;               /* default 5000, 2000..60000: the node's registration outlives it by this */
    int line;                       /* of [cluster]; 0 = no such section */
};

struct sy_config {
    char path[512];                 /* the file it came from */
    char admin_socket[108];         /* default /run/switchyard/admin.sock (sun_path limit) */
    char state_dir[512];            /* default /var/lib/switchyard */
    enum sy_log_level log_level;    /* default info */
    bool has_metrics;
    struct sy_endpoint metrics;     /* optional */
    bool has_console;
    struct sy_endpoint console;     /* optional: the web console (core/console.c) */
    char console_token_file[512];   /* "" = the console is read-only; read once at start, must be 0600 */
    char console_tls_cert[512];     /* "" = plain HTTP; with console_tls_key: HTTPS only */
    char console_tls_key[512];
    int console_max_connections;    /* open console connections at most; beyond: 503 too_many_connections */
    int proxy_threads;              /* 1..64, default 1: worker event loops of the MariaDB proxies (1 = the
                                       proxies run on the main loop, core/loop_pool.h) */
    struct sy_pair_cfg pairs[SY_MAX_PAIRS];
    size_t n_pairs;
    struct sy_cluster_cfg cluster;
};

/* Parses and validates `path` into *out (overwritten). 0 on success; -1 with "file:line: ..." in err.
 * Checks: unknown sections and keys, bad values and bounds, duplicate pair names, missing required
 * keys (named, with the pair's section line), tls_cert without tls_key, backend_ca with verify,
 * distinct listen ports among pairs (port 0 excepted). An engine other than mariadb parses fine:
 * the daemon refuses it with `not_implemented`, which is the caller's business. */
int sy_config_load(const char *path, struct sy_config *out, char *err, size_t errlen) SY_MUST_CHECK;

/* "mariadb", "mongodb", "sqlserver", "mysql". */
const char *sy_engine_name(enum sy_engine e);
const char *sy_log_level_name(enum sy_log_level l);
/* "127.0.0.1:6033" or "[::1]:6033" -> endpoint; -1 when malformed. allow_port0 for listen. */
/* Whether host names this machine's loopback only (localhost, 127.0.0.0/8, ::1): a console bound anywhere
 * else is reachable from other machines, so it needs console_token_file and the token on every request. */
bool sy_host_is_loopback(const char *host);
int sy_endpoint_parse(const char *s, bool allow_port0, struct sy_endpoint *out) SY_MUST_CHECK;

/* Wipes secrets (admin passwords) before the struct is freed or reused. */
void sy_config_wipe(struct sy_config *c);

#endif
