/* core/config.c: writes switchyard.ini variants to temporary files (mkstemp under /tmp) and checks the
 * parsed values, the defaults, and the exact text of each error (file:line, section, key). */
#include "core/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/check.h"

static struct sy_config *cfg; /* ~2.3 MB: on the heap */
static char path[64];         /* the last temporary file */
static char err[1024];

/* Writes text to a fresh temporary file and loads it; the file is removed again. */
static int load(const char *text)
{
    snprintf(path, sizeof path, "/tmp/sy_test_config_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        exit(2);
    }
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len) {
        perror("write");
        exit(2);
    }
    close(fd);
    int rc = sy_config_load(path, cfg, err, sizeof err);
    unlink(path);
    return rc;
}

/* The load fails with exactly "<path><suffix>". */
static bool fails_with(const char *text, const char *suffix, int line)
{
    char want[1200];
    int rc = load(text);
    snprintf(want, sizeof want, "%s%s", path, suffix);
    if (rc == -1 && strcmp(err, want) == 0)
        return true;
    fprintf(stderr, "%s:%d: rc=%d\n  got:  %s\n  want: %s\n", __FILE__, line, rc, err, want);
    return false;
}
#define CHECK_FAILS(text, suffix) CHECK(fails_with((text), (suffix), __LINE__))

static bool loads(const char *text, int line)
{
    if (load(text) == 0)
        return true;
    fprintf(stderr, "%s:%d: unexpected error: %s\n", __FILE__, line, err);
    return false;
}
#define CHECK_LOADS(text) CHECK(loads((text), __LINE__))

/* The CONTRACT.md example, verbatim but for the password. */
static const char contract_ini[] =
    "[switchyard]\n"
    "admin_socket = /run/switchyard/admin.sock   ; created 0600; peers checked with SO_PEERCRED\n"
    "state_dir    = /var/lib/switchyard           ; epochs, instance states, spools\n"
    "log_level    = info                          ; error | warn | info | debug\n"
    "metrics      = 127.0.0.1:9187                "
    "; optional: Prometheus /metrics (and later the web console)\n"
    "\n"
    "[pair orders]                                ; one section per pair\n"
    "engine        = mariadb                      "
    "; mariadb | mongodb | sqlserver  (mysql: reserved for MySQL 8)\n"
    "listen        = 127.0.0.1:6033               ; where applications connect; port 0 = pick one, shown in "
    "status\n"
    "business      = 127.0.0.1:3306               ; source of the forward instance\n"
    "dr            = 127.0.0.1:3307\n"
    "admin_user    = switchyard                   "
    "; account Switchyard uses for capture, replay, precheck, auth\n"
    "admin_password = s3cret\n"
    "objects       = shop.*, crm.customers        ; what is synchronized (db.* or db.table / db.collection)\n"
    "retry_seconds = 720                          ; Retry Time for Failed Connections\n"
    "fence_passive = on                           ; keep the passive side read_only\n"
    "switchover_max_lag_ms = 1000                 ; catch up below this before holding\n"
    "txn_drain_ms  = 2000                         ; how long a hold waits for open transactions\n"
    "drain_timeout_ms = 5000                      ; how long a switchover waits for lag to reach zero\n"
    "max_hold_ms   = 10000                        ; a hold (switchover or manual) never lasts longer\n"
    "spool_max_bytes = 1G\n"
    "on_conflict   = fail                         ; fail | overwrite: a replayed change that does not fit\n"
    "tls_cert      = /etc/switchyard/orders.pem   ; optional: TLS for this pair's clients (with tls_key)\n"
    "tls_key       = /etc/switchyard/orders.key\n"
    "backend_tls   = off                          ; off | on | verify (with backend_ca)\n"
    "backend_ca    = /etc/ssl/certs/ca.pem\n"
    "collector_server_id = 4001                   ; MariaDB: replica id the binlog collectors register with\n"
    "writer_tag    = 4002                         ; MariaDB: server_id Switchyard's writer sessions carry\n"
    "commit_wait   = off                          ; off | collected | applied: hold each commit's OK until DR side "
    "has it\n"
    "commit_wait_timeout_ms = 1000                ; then commit_wait_fallback applies\n"
    "commit_wait_fallback = degrade               ; degrade (log, metric, status flag) | error\n";

/* The required keys of a pair; lines 2-6 after its header. */
#define PAIR_REQ                                                                                            \
    "engine = mariadb\n"                                                                                    \
    "listen = 127.0.0.1:6033\n"                                                                             \
    "business = 127.0.0.1:3306\n"                                                                           \
    "dr = 127.0.0.1:3307\n"                                                                                 \
    "admin_user = switchyard\n"

static void test_contract_example(void)
{
    CHECK_LOADS(contract_ini);
    const struct sy_config *c = cfg;
    CHECK(strcmp(c->path, path) == 0);
    CHECK(strcmp(c->admin_socket, "/run/switchyard/admin.sock") == 0);
    CHECK(strcmp(c->state_dir, "/var/lib/switchyard") == 0);
    CHECK(c->log_level == SY_LOG_INFO);
    CHECK(c->has_metrics && strcmp(c->metrics.host, "127.0.0.1") == 0 && c->metrics.port == 9187);
    CHECK(c->n_pairs == 1);
    const struct sy_pair_cfg *p = &c->pairs[0];
    CHECK(strcmp(p->name, "orders") == 0);
    CHECK(p->line == 7);
    CHECK(p->engine == SY_ENGINE_MARIADB);
    CHECK(strcmp(p->listen.host, "127.0.0.1") == 0 && p->listen.port == 6033);
    CHECK(strcmp(p->business.host, "127.0.0.1") == 0 && p->business.port == 3306);
    CHECK(strcmp(p->dr.host, "127.0.0.1") == 0 && p->dr.port == 3307);
    CHECK(strcmp(p->admin_user, "switchyard") == 0);
    CHECK(strcmp(p->admin_password, "s3cret") == 0);
    CHECK(p->n_objects == 2);
    CHECK(strcmp(p->objects[0].db, "shop") == 0 && strcmp(p->objects[0].table, "*") == 0);
    CHECK(strcmp(p->objects[1].db, "crm") == 0 && strcmp(p->objects[1].table, "customers") == 0);
    CHECK(p->retry_seconds == 720);
    CHECK(p->fence_passive == true);
    CHECK(p->switchover_max_lag_ms == 1000);
    CHECK(p->txn_drain_ms == 2000);
    CHECK(p->drain_timeout_ms == 5000);
    CHECK(p->max_hold_ms == 10000);
    CHECK(p->spool_max_bytes == 1073741824u);
    CHECK(p->on_conflict == SY_ON_CONFLICT_FAIL);
    CHECK(strcmp(p->tls_cert, "/etc/switchyard/orders.pem") == 0);
    CHECK(strcmp(p->tls_key, "/etc/switchyard/orders.key") == 0);
    CHECK(p->backend_tls == SY_BACKEND_TLS_OFF);
    CHECK(strcmp(p->backend_ca, "/etc/ssl/certs/ca.pem") == 0); /* kept even with backend_tls = off */
    CHECK(p->collector_server_id == 4001);
    CHECK(p->writer_tag == 4002);
    CHECK(p->commit_wait == SY_COMMIT_WAIT_OFF);
    CHECK(p->commit_wait_timeout_ms == 1000);
    CHECK(p->commit_wait_fallback == SY_COMMIT_WAIT_DEGRADE);

    sy_config_wipe(cfg);
    static const char zero[sizeof p->admin_password];
    CHECK(memcmp(p->admin_password, zero, sizeof zero) == 0);
}

static void test_defaults(void)
{
    CHECK_LOADS("[pair orders]\n" PAIR_REQ);
    const struct sy_config *c = cfg;
    CHECK(strcmp(c->admin_socket, "/run/switchyard/admin.sock") == 0);
    CHECK(strcmp(c->state_dir, "/var/lib/switchyard") == 0);
    CHECK(c->log_level == SY_LOG_INFO);
    CHECK(!c->has_metrics);
    CHECK(c->n_pairs == 1);
    const struct sy_pair_cfg *p = &c->pairs[0];
    CHECK(p->line == 1);
    CHECK(p->admin_password[0] == '\0');
    CHECK(p->n_objects == 0);
    CHECK(p->retry_seconds == 720);
    CHECK(p->fence_passive == true);
    CHECK(p->switchover_max_lag_ms == 1000);
    CHECK(p->txn_drain_ms == 2000);
    CHECK(p->drain_timeout_ms == 5000);
    CHECK(p->max_hold_ms == 10000);
    CHECK(p->spool_max_bytes == 1073741824u);
    CHECK(p->on_conflict == SY_ON_CONFLICT_FAIL);
    CHECK(p->tls_cert[0] == '\0' && p->tls_key[0] == '\0');
    CHECK(p->backend_tls == SY_BACKEND_TLS_OFF);
    CHECK(p->backend_ca[0] == '\0');
    CHECK(p->collector_server_id == 4001);
    CHECK(p->writer_tag == 4002);
    CHECK(c->proxy_threads == 1);

    /* Zero pairs: the daemon only serves its admin socket. An empty file is a valid config too. */
    CHECK_LOADS("[switchyard]\nlog_level = debug\n");
    CHECK(cfg->n_pairs == 0 && cfg->log_level == SY_LOG_DEBUG);
    CHECK_LOADS("");
    CHECK(cfg->n_pairs == 0 && strcmp(cfg->state_dir, "/var/lib/switchyard") == 0);
}

static void test_brief_messages(void)
{
    CHECK_FAILS("[switchyard]\n"
                "log_level = info\n"
                "[pair orders]\n" PAIR_REQ /* lines 4-8 */
                "retry_seconds = abc\n",   /* line 9 */
                ":9: [pair orders] retry_seconds: \"abc\" is not an integer");
    CHECK_FAILS("; comment\n\n[pair orders]\n" PAIR_REQ "\n"
                "retry_secs = 5\n", /* line 10 */
                ":10: [pair orders] unknown key 'retry_secs'");
    CHECK_FAILS("[switchyard]\n\n"
                "[pair orders]\n" /* line 3 */
                "engine = mariadb\nlisten = 127.0.0.1:6033\ndr = 127.0.0.1:3307\nadmin_user = u\n",
                ":3: [pair orders] missing required key 'business'");
    CHECK_FAILS("[pair orders]\nengine = oracle\n",
                ":2: [pair orders] engine: \"oracle\" is not one of mariadb, mongodb, sqlserver, mysql");
    CHECK_FAILS("[pair orders]\nretry_seconds = 0\n",
                ":2: [pair orders] retry_seconds: must be between 1 and 86400");
    CHECK_FAILS("[pair orders]\nretry_seconds = 86401\n",
                ":2: [pair orders] retry_seconds: must be between 1 and 86400");
    CHECK_FAILS("[pair orders]\nretry_seconds = 99999999999999999999999\n",
                ":2: [pair orders] retry_seconds: must be between 1 and 86400");
    CHECK_FAILS("[pair orders]\nretry_seconds = 5s\n",
                ":2: [pair orders] retry_seconds: \"5s\" is not an integer");
    CHECK_FAILS("[pair orders]\nretry_seconds =\n",
                ":2: [pair orders] retry_seconds: \"\" is not an integer");
    CHECK_FAILS("[pair orders]\nmax_hold_ms = -1\n",
                ":2: [pair orders] max_hold_ms: must be between 1 and 3600000");
}

static void test_structure_errors(void)
{
    CHECK_FAILS("[pair orders]\n" PAIR_REQ "listen = 127.0.0.1:7000\n",
                ":7: [pair orders] duplicate key 'listen' (first set on line 3)");
    CHECK_FAILS("[pair orders]\n" PAIR_REQ "[pair orders]\n",
                ":7: duplicate [pair orders] (first on line 1)");
    CHECK_FAILS("[switchyard]\n[pair a]\n" PAIR_REQ "[switchyard]\n",
                ":8: duplicate section [switchyard] (first on line 1)");
    CHECK_FAILS("[switchyard]\n[pairs]\nengine = mariadb\n",
                ":2: unknown section [pairs] (expected [switchyard], [cluster] or [pair NAME])");
    CHECK_FAILS("[global]\n", ":1: unknown section [global] (expected [switchyard], [cluster] or [pair NAME])");
    CHECK_FAILS("[pair]\n", ":1: [pair] needs a name: [pair NAME]");
    CHECK_FAILS("[pair a.b]\n", ":1: [pair a.b]: a pair name is 1 to 63 letters, digits, _ or -");
    CHECK_FAILS("[pair orders\n", ":1: section header without ']'");
    CHECK_FAILS("[pair orders] x\n", ":1: text after the section header: \" x\"");
    CHECK_FAILS("log_level = info\n",
                ":1: key 'log_level' is outside any section (put it under [switchyard] or [pair NAME])");
    CHECK_FAILS("[switchyard]\nlog_level\n", ":2: expected \"key = value\", \"[section]\" or a comment");
    CHECK_FAILS("[switchyard]\n= info\n", ":2: [switchyard] a key name is missing before '='");
    CHECK_FAILS("[switchyard]\nengine = mariadb\n", ":2: [switchyard] unknown key 'engine'");
    CHECK_FAILS("[pair orders]\nadmin_socket = /x\n", ":2: [pair orders] unknown key 'admin_socket'");
    /* An empty pair section is still a pair: its required keys are missing. */
    CHECK_FAILS("[switchyard]\n[pair empty]\n", ":2: [pair empty] missing required key 'engine'");
    CHECK_FAILS("[pair a]\n" PAIR_REQ "\n[pair b]\nengine = mariadb\nlisten = 127.0.0.1:0\nbusiness = h:1\n"
                "dr = h:2\n",
                ":8: [pair b] missing required key 'admin_user'");

    /* Pair names: up to 63 characters, past inih's own 49-character section buffer. */
    char ini[512], name[80];
    memset(name, 'n', 63);
    name[63] = '\0';
    snprintf(ini, sizeof ini, "[pair %s]\n" PAIR_REQ, name);
    CHECK_LOADS(ini);
    CHECK(strcmp(cfg->pairs[0].name, name) == 0);
    strcat(name, "n");
    snprintf(ini, sizeof ini, "[pair %s]\n" PAIR_REQ, name);
    char want[256];
    snprintf(want, sizeof want, ":1: [pair %s]: a pair name is 1 to 63 letters, digits, _ or -", name);
    CHECK_FAILS(ini, want);
    CHECK_LOADS("[  pair   Orders_2-b ]   ; spaces inside the brackets are fine\n" PAIR_REQ);
    CHECK(strcmp(cfg->pairs[0].name, "Orders_2-b") == 0);

    /* At most SY_MAX_PAIRS pairs. */
    size_t cap = (SY_MAX_PAIRS + 1) * 200, off = 0;
    char *big = malloc(cap);
    CHECK(big != NULL);
    if (big == NULL)
        return;
    for (int i = 0; i <= SY_MAX_PAIRS; i++)
        off += (size_t)snprintf(big + off, cap - off, "[pair p%d]\n%s", i,
                                "engine=mariadb\nlisten=h:0\nbusiness=h:1\ndr=h:2\nadmin_user=u\n");
    snprintf(want, sizeof want, ":%d: [pair p%d]: more than %d pairs", SY_MAX_PAIRS * 6 + 1, SY_MAX_PAIRS,
             SY_MAX_PAIRS);
    CHECK_FAILS(big, want);
    *strstr(big, "[pair p64]") = '\0';
    CHECK_LOADS(big);
    CHECK(cfg->n_pairs == SY_MAX_PAIRS);
    free(big);
}

static void test_values(void)
{
    CHECK_LOADS("[switchyard]\nlog_level = warn\nmetrics = [::1]:9187\nadmin_socket = /tmp/sy.sock\n"
                "state_dir = /srv/switchyard\n"
                "[pair m]\nengine = MongoDB\nlisten = 0.0.0.0:0\nbusiness = db1.example.com:27017\n"
                "dr = [fe80::1%eth0]:27018\nadmin_user = sy\nadmin_password = a;b ;comment\n"
                "fence_passive = OFF\nspool_max_bytes = 512k\non_conflict = overwrite\nbackend_tls = verify\n"
                "backend_ca = /etc/ca.pem\ncollector_server_id = 4294967295\nwriter_tag = 1\n"
                "switchover_max_lag_ms = 0\ntxn_drain_ms = 3600000\n");
    const struct sy_config *c = cfg;
    CHECK(c->log_level == SY_LOG_WARN);
    CHECK(c->has_metrics && strcmp(c->metrics.host, "::1") == 0 && c->metrics.port == 9187);
    CHECK(strcmp(c->admin_socket, "/tmp/sy.sock") == 0 && strcmp(c->state_dir, "/srv/switchyard") == 0);
    const struct sy_pair_cfg *p = &c->pairs[0];
    CHECK(p->engine == SY_ENGINE_MONGODB); /* parses; refusing it is the daemon's business */
    CHECK(strcmp(p->listen.host, "0.0.0.0") == 0 && p->listen.port == 0);
    CHECK(strcmp(p->business.host, "db1.example.com") == 0 && p->business.port == 27017);
    CHECK(strcmp(p->dr.host, "fe80::1%eth0") == 0 && p->dr.port == 27018);
    CHECK(strcmp(p->admin_password, "a;b") == 0); /* ';' starts a comment only after whitespace */
    CHECK(p->fence_passive == false);
    CHECK(p->spool_max_bytes == 512u * 1024);
    CHECK(p->on_conflict == SY_ON_CONFLICT_OVERWRITE);
    CHECK(p->backend_tls == SY_BACKEND_TLS_VERIFY && strcmp(p->backend_ca, "/etc/ca.pem") == 0);
    CHECK(p->collector_server_id == 4294967295u && p->writer_tag == 1);
    CHECK(p->switchover_max_lag_ms == 0 && p->txn_drain_ms == 3600000);

    static const struct {
        const char *text;
        uint64_t bytes;
    } sizes[] = {
        { "1", 1 }, { "1000", 1000 }, { "1K", 1024 }, { "3M", 3u << 20 }, { "1g", 1u << 30 },
        { "2T", 2ull << 40 }, { "1024T", 1ull << 50 }, { "1099511627776", 1ull << 40 },
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char ini[256];
        snprintf(ini, sizeof ini, "[pair s]\n" PAIR_REQ "spool_max_bytes = %s\n", sizes[i].text);
        CHECK_LOADS(ini);
        CHECK(cfg->pairs[0].spool_max_bytes == sizes[i].bytes);
    }
    static const char *const bad_sizes[] = { "1X", "1.5G", "G", "-1", "1GB", "1 G" };
    for (size_t i = 0; i < sizeof bad_sizes / sizeof bad_sizes[0]; i++) {
        char ini[256], want[256];
        snprintf(ini, sizeof ini, "[pair s]\nspool_max_bytes = %s\n", bad_sizes[i]);
        snprintf(want, sizeof want,
                 ":2: [pair s] spool_max_bytes: \"%s\" is not a size (bytes, or a number with K, M, G or T)",
                 bad_sizes[i]);
        CHECK_FAILS(ini, want);
    }
    CHECK_FAILS("[pair s]\nspool_max_bytes = 0\n",
                ":2: [pair s] spool_max_bytes: must be between 1 and 1024T");
    CHECK_FAILS("[pair s]\nspool_max_bytes = 1025T\n",
                ":2: [pair s] spool_max_bytes: must be between 1 and 1024T");
    CHECK_FAILS("[pair s]\nspool_max_bytes = 99999999999999999999T\n",
                ":2: [pair s] spool_max_bytes: must be between 1 and 1024T");

    CHECK_LOADS("[switchyard]\nproxy_threads = 64\n");
    CHECK(cfg->proxy_threads == 64);
    CHECK_LOADS("[switchyard]\nproxy_threads = 4\n");
    CHECK(cfg->proxy_threads == 4);
    CHECK_FAILS("[switchyard]\nproxy_threads = 0\n", ":2: [switchyard] proxy_threads: must be between 1 and 64");
    CHECK_FAILS("[switchyard]\nproxy_threads = 65\n", ":2: [switchyard] proxy_threads: must be between 1 and 64");

    static const char *const trues[] = { "on", "true", "yes", "1", "ON", "True" };
    static const char *const falses[] = { "off", "false", "no", "0", "No" };
    for (size_t i = 0; i < sizeof trues / sizeof trues[0]; i++) {
        char ini[256];
        snprintf(ini, sizeof ini, "[pair b]\n" PAIR_REQ "fence_passive = %s\n", trues[i]);
        CHECK_LOADS(ini);
        CHECK(cfg->pairs[0].fence_passive == true);
    }
    for (size_t i = 0; i < sizeof falses / sizeof falses[0]; i++) {
        char ini[256];
        snprintf(ini, sizeof ini, "[pair b]\n" PAIR_REQ "fence_passive = %s\n", falses[i]);
        CHECK_LOADS(ini);
        CHECK(cfg->pairs[0].fence_passive == false);
    }
    CHECK_FAILS("[pair b]\nfence_passive = maybe\n",
                ":2: [pair b] fence_passive: \"maybe\" is not on/off, true/false, yes/no or 1/0");

    CHECK_FAILS("[pair u]\ncollector_server_id = 0\n",
                ":2: [pair u] collector_server_id: must be between 1 and 4294967295");
    CHECK_FAILS("[pair u]\nwriter_tag = 4294967296\n",
                ":2: [pair u] writer_tag: must be between 1 and 4294967295");
    CHECK_FAILS("[switchyard]\nlog_level = trace\n",
                ":2: [switchyard] log_level: \"trace\" is not one of error, warn, info, debug");
    CHECK_FAILS("[pair e]\non_conflict = ignore\n",
                ":2: [pair e] on_conflict: \"ignore\" is not one of fail, overwrite");
    CHECK_FAILS("[pair e]\nbackend_tls = required\n",
                ":2: [pair e] backend_tls: \"required\" is not one of off, on, verify");

    /* Strings: length limits, and a password never shows up in a message. */
    char ini[600], v[300];
    memset(v, 'a', 107);
    v[107] = '\0';
    snprintf(ini, sizeof ini, "[switchyard]\nadmin_socket = /%s\n", v + 1);
    CHECK_LOADS(ini);
    CHECK(strlen(cfg->admin_socket) == 107);
    snprintf(ini, sizeof ini, "[switchyard]\nadmin_socket = /%s\n", v);
    CHECK_FAILS(ini, ":2: [switchyard] admin_socket: longer than 107 characters");
    CHECK_FAILS("[switchyard]\nstate_dir =\n", ":2: [switchyard] state_dir: must not be empty");
    CHECK_FAILS("[pair s]\nadmin_user =   ; nobody\n", ":2: [pair s] admin_user: must not be empty");
    memset(v, 'P', 170);
    v[170] = '\0';
    snprintf(ini, sizeof ini, "[pair s]\n" PAIR_REQ "admin_password = %s\n", v);
    CHECK_LOADS(ini); /* the password may be long (up to 255) */
    CHECK(strlen(cfg->pairs[0].admin_password) == 170);
    memset(v, 'a', 130);
    v[130] = '\0';
    snprintf(ini, sizeof ini, "[pair s]\nadmin_password = SECRETPW\nadmin_user = %s\n", v);
    CHECK_FAILS(ini, ":3: [pair s] admin_user: longer than 128 characters");
    CHECK(strstr(err, "SECRETPW") == NULL);
    static const char zero[sizeof cfg->pairs[0].admin_password];
    CHECK(memcmp(cfg->pairs[0].admin_password, zero, sizeof zero) == 0); /* a failed load wipes it */
}

static void test_endpoints(void)
{
    CHECK_LOADS("[pair a]\nengine=mariadb\nlisten = 127.0.0.1:0\nbusiness=h:1\ndr=h:2\nadmin_user=u\n"
                "[pair b]\nengine=mariadb\nlisten = 127.0.0.1:0\nbusiness=h:1\ndr=h:2\nadmin_user=u\n");
    CHECK(cfg->n_pairs == 2 && cfg->pairs[0].listen.port == 0 && cfg->pairs[1].listen.port == 0);
    CHECK_FAILS("[pair a]\nbusiness = 127.0.0.1:0\n",
                ":2: [pair a] business: \"127.0.0.1:0\": port must be between 1 and 65535");
    CHECK_FAILS("[pair a]\nlisten = 127.0.0.1:65536\n",
                ":2: [pair a] listen: \"127.0.0.1:65536\": port must be between 0 and 65535");
    CHECK_FAILS("[pair a]\ndr = localhost\n",
                ":2: [pair a] dr: \"localhost\" is not host:port or [ipv6]:port");
    CHECK_FAILS("[pair a]\ndr = ::1:3306\n", ":2: [pair a] dr: \"::1:3306\" is not host:port or [ipv6]:port");
    CHECK_FAILS("[pair a]\ndr = [::1]\n", ":2: [pair a] dr: \"[::1]\" is not host:port or [ipv6]:port");
    CHECK_FAILS("[pair a]\ndr = [nothex]:1\n",
                ":2: [pair a] dr: \"[nothex]:1\" is not host:port or [ipv6]:port");
    CHECK_FAILS("[pair a]\ndr = :3306\n", ":2: [pair a] dr: \":3306\" is not host:port or [ipv6]:port");
    CHECK_FAILS("[pair a]\ndr = host:http\n",
                ":2: [pair a] dr: \"host:http\" is not host:port or [ipv6]:port");
    CHECK_FAILS("[pair a]\ndr = ho st:1\n", ":2: [pair a] dr: \"ho st:1\" is not host:port or [ipv6]:port");
    CHECK_FAILS("[switchyard]\nmetrics = 9187\n",
                ":2: [switchyard] metrics: \"9187\" is not host:port or [ipv6]:port");

    struct sy_endpoint ep;
    CHECK(sy_endpoint_parse("127.0.0.1:6033", false, &ep) == 0 && strcmp(ep.host, "127.0.0.1") == 0 &&
          ep.port == 6033);
    CHECK(sy_endpoint_parse("[::1]:6033", false, &ep) == 0 && strcmp(ep.host, "::1") == 0 && ep.port == 6033);
    CHECK(sy_endpoint_parse("[::ffff:10.0.0.1]:1", false, &ep) == 0 &&
          strcmp(ep.host, "::ffff:10.0.0.1") == 0);
    CHECK(sy_endpoint_parse("db_1.local:65535", false, &ep) == 0 && ep.port == 65535);
    CHECK(sy_endpoint_parse("h:0", true, &ep) == 0 && ep.port == 0);
    CHECK(sy_endpoint_parse("h:0", false, &ep) == -1);
    CHECK(sy_endpoint_parse("h:000001", false, &ep) == -1);
    CHECK(sy_endpoint_parse("h:-1", true, &ep) == -1);
    CHECK(sy_endpoint_parse("h:", true, &ep) == -1);
    CHECK(sy_endpoint_parse("", true, &ep) == -1);
    CHECK(sy_endpoint_parse("[]:1", true, &ep) == -1);
    CHECK(sy_endpoint_parse("[::1]x:1", true, &ep) == -1);
    CHECK(sy_endpoint_parse("[fe80::1%]:1", true, &ep) == -1);
    char host[300];
    memset(host, 'h', 255);
    strcpy(host + 255, ":1");
    CHECK(sy_endpoint_parse(host, false, &ep) == 0 && strlen(ep.host) == 255);
    memset(host, 'h', 256);
    strcpy(host + 256, ":1");
    CHECK(sy_endpoint_parse(host, false, &ep) == -1);
}

static void test_cross_checks(void)
{
    CHECK_FAILS("[pair orders]\n" PAIR_REQ "tls_cert = /etc/c.pem\n",
                ":7: [pair orders] tls_cert is set but tls_key is not: client TLS needs both");
    CHECK_FAILS("[pair orders]\n" PAIR_REQ "tls_key = /etc/c.key\n",
                ":7: [pair orders] tls_key is set but tls_cert is not: client TLS needs both");
    CHECK_FAILS("[pair orders]\n" PAIR_REQ "backend_tls = verify\n",
                ":7: [pair orders] backend_tls: verify needs backend_ca");
    CHECK_LOADS("[pair orders]\n" PAIR_REQ "backend_tls = on\n");
    CHECK(cfg->pairs[0].backend_tls == SY_BACKEND_TLS_ON);
    CHECK_FAILS("[pair a]\n" PAIR_REQ "\n[pair b]\nengine = mariadb\nlisten = 10.0.0.1:6033\nbusiness = h:1\n"
                "dr = h:2\nadmin_user = u\n",
                ":10: [pair b] listen: port 6033 is already used by [pair a] (line 3)");
    CHECK_LOADS("[pair a]\n" PAIR_REQ
                "[pair b]\nengine = sqlserver\nlisten = 127.0.0.1:6034\nbusiness = h:1\ndr = h:2\n"
                "admin_user = u\n");
    CHECK(cfg->n_pairs == 2 && cfg->pairs[1].engine == SY_ENGINE_SQLSERVER && cfg->pairs[1].line == 7);
    /* commit_wait: only MariaDB pairs, and only with something collected for DR */
    CHECK_LOADS("[pair orders]\n" PAIR_REQ "objects = shop.*\ncommit_wait = applied\ncommit_wait_fallback = error\n"
                "commit_wait_timeout_ms = 250\n");
    CHECK(cfg->pairs[0].commit_wait == SY_COMMIT_WAIT_APPLIED &&
          cfg->pairs[0].commit_wait_fallback == SY_COMMIT_WAIT_ERROR && cfg->pairs[0].commit_wait_timeout_ms == 250);
    CHECK_FAILS("[pair orders]\n" PAIR_REQ "commit_wait = collected\n",
                ":7: [pair orders] commit_wait: needs objects (nothing is collected for DR without them; use off)");
    CHECK_FAILS("[pair orders]\nengine = mongodb\nlisten = 127.0.0.1:6033\nbusiness = h:1\ndr = h:2\n"
                "admin_user = u\nobjects = a.*\ncommit_wait = collected\n",
                ":8: [pair orders] commit_wait: only engine = mariadb can hold a commit's OK (use off)");
    CHECK_FAILS("[pair orders]\n" PAIR_REQ "commit_wait = always\n",
                ":7: [pair orders] commit_wait: \"always\" is not one of off, collected, applied");
    CHECK_FAILS("[pair orders]\n" PAIR_REQ "commit_wait_timeout_ms = 0\n",
                ":7: [pair orders] commit_wait_timeout_ms: must be between 1 and 3600000");
    CHECK_FAILS("[pair orders]\n" PAIR_REQ "commit_wait_fallback = ignore\n",
                ":7: [pair orders] commit_wait_fallback: \"ignore\" is not one of degrade, error");
}

static void test_objects(void)
{
    CHECK_LOADS("[pair o]\n" PAIR_REQ "objects =   shop.*  ,crm.customers,\tA$b_1.T$2   \n");
    const struct sy_pair_cfg *p = &cfg->pairs[0];
    CHECK(p->n_objects == 3);
    CHECK(strcmp(p->objects[2].db, "A$b_1") == 0 && strcmp(p->objects[2].table, "T$2") == 0);

    /* A long list continues on indented lines; indented key = value lines are still keys. */
    CHECK_LOADS("[pair o]\n"
                "  engine = mariadb\n"
                "  objects = a.*,\n"
                "      b.t1, b.t2   ; comment\n"
                "\n"
                "      ; a comment line inside the list\n"
                "      c.*\n"
                "  listen = 127.0.0.1:6033\n"
                "  business = 127.0.0.1:3306\n"
                "  dr = 127.0.0.1:3307\n"
                "  admin_user = switchyard\n");
    p = &cfg->pairs[0];
    CHECK(p->n_objects == 4);
    CHECK(strcmp(p->objects[1].db, "b") == 0 && strcmp(p->objects[1].table, "t1") == 0);
    CHECK(strcmp(p->objects[3].db, "c") == 0 && strcmp(p->objects[3].table, "*") == 0);
    CHECK(strcmp(p->listen.host, "127.0.0.1") == 0);
    CHECK_FAILS("[pair o]\nengine = mariadb\n  mongodb\n",
                ":3: [pair o] engine: an indented line continues the previous key, "
                "and only objects may continue (remove the indentation)");
    CHECK_FAILS("[pair o]\n  shop.*\n", ":2: expected \"key = value\", \"[section]\" or a comment");

    CHECK_FAILS("[pair o]\nobjects = shop\n",
                ":2: [pair o] objects: \"shop\" is not db.* or db.table (names: letters, digits, _ and $)");
    CHECK_FAILS("[pair o]\nobjects = a.b.c\n",
                ":2: [pair o] objects: \"a.b.c\" is not db.* or db.table (names: letters, digits, _ and $)");
    CHECK_FAILS("[pair o]\nobjects = *.*\n",
                ":2: [pair o] objects: \"*.*\" is not db.* or db.table (names: letters, digits, _ and $)");
    CHECK_FAILS("[pair o]\nobjects = a.t*\n",
                ":2: [pair o] objects: \"a.t*\" is not db.* or db.table (names: letters, digits, _ and $)");
    CHECK_FAILS("[pair o]\nobjects = my-db.*\n",
                ":2: [pair o] objects: \"my-db.*\" is not db.* or db.table "
                "(names: letters, digits, _ and $)");
    CHECK_FAILS("[pair o]\nobjects = a.*, b.t, a.*\n", ":2: [pair o] objects: \"a.*\" is listed twice");
    CHECK_FAILS("[pair o]\nobjects = a.*\nobjects = b.*\n",
                ":3: [pair o] duplicate key 'objects' (first set on line 2)");

    char ini[600], want[300], n64[70];
    memset(n64, 'd', 64);
    n64[64] = '\0';
    snprintf(ini, sizeof ini, "[pair o]\n" PAIR_REQ "objects = %s.%s\n", n64, n64);
    CHECK_LOADS(ini);
    CHECK(strlen(cfg->pairs[0].objects[0].db) == 64 && strlen(cfg->pairs[0].objects[0].table) == 64);
    snprintf(ini, sizeof ini, "[pair o]\nobjects = %sd.*\n", n64);
    snprintf(want, sizeof want, ":2: [pair o] objects: \"%sd.*\": a name is longer than 64 characters", n64);
    CHECK_FAILS(ini, want);

    /* SY_MAX_OBJECTS patterns fit; one more does not. */
    size_t cap = 64 * 1024, off = 0;
    char *big = malloc(cap);
    CHECK(big != NULL);
    if (big == NULL)
        return;
    off += (size_t)snprintf(big + off, cap - off, "[pair o]\n" PAIR_REQ "objects = d0.*,\n");
    for (int i = 1; i < SY_MAX_OBJECTS; i++)
        off += (size_t)snprintf(big + off, cap - off, "    d%d.*,\n", i);
    CHECK_LOADS(big);
    CHECK(cfg->pairs[0].n_objects == SY_MAX_OBJECTS);
    snprintf(big + off, cap - off, "    extra.*\n");
    snprintf(want, sizeof want, ":%d: [pair o] objects: more than %d patterns", 7 + SY_MAX_OBJECTS,
             SY_MAX_OBJECTS);
    CHECK_FAILS(big, want);
    free(big);
}

static void test_lines(void)
{
    /* CRLF line endings and a UTF-8 byte order mark. */
    CHECK_LOADS("\xEF\xBB\xBF[switchyard]\r\nlog_level = error\r\n[pair w]\r\n"
                "engine = mariadb\r\nlisten = h:0\r\nbusiness = h:1\r\ndr = h:2\r\nadmin_user = u\r\n");
    CHECK(cfg->log_level == SY_LOG_ERROR && strcmp(cfg->pairs[0].admin_user, "u") == 0);
    /* "name: value" is inih's alternative spelling. */
    CHECK_LOADS("[switchyard]\nmetrics: 127.0.0.1:9187\n# hash comment\n");
    CHECK(cfg->has_metrics && cfg->metrics.port == 9187);

    /* inih's line buffer is 200 bytes here: a longer line is refused, not cut in two. */
    char ini[6000], v[5000];
    memset(v, 'x', 300);
    v[300] = '\0';
    snprintf(ini, sizeof ini, "[pair l]\ntls_cert = /%s\nengine = mariadb\n", v);
    CHECK(load(ini) == -1 && strstr(err, ":2: the line is longer than ") != NULL);
    memset(v, 'x', 4999);
    v[4999] = '\0';
    snprintf(ini, sizeof ini, "[pair l]\n; %s\n", v);
    CHECK(load(ini) == -1 && strstr(err, ":2: the line is longer than ") != NULL);

    static const char nul_ini[] = "[switchyard]\nlog_level = info\0x\n";
    snprintf(path, sizeof path, "/tmp/sy_test_config_XXXXXX");
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, nul_ini, sizeof nul_ini - 1) == (ssize_t)(sizeof nul_ini - 1));
    close(fd);
    CHECK(sy_config_load(path, cfg, err, sizeof err) == -1 &&
          strstr(err, ":2: the line contains a NUL byte") != NULL);
    unlink(path);

    CHECK(sy_config_load("/nonexistent/switchyard.ini", cfg, err, sizeof err) == -1);
    CHECK(strcmp(err, "/nonexistent/switchyard.ini: cannot open: No such file or directory") == 0);
    CHECK(sy_config_load("/tmp", cfg, err, sizeof err) == -1);
    CHECK(strcmp(err, "/tmp:1: read error: Is a directory") == 0);
    char small[16];
    CHECK(sy_config_load("/nonexistent/switchyard.ini", cfg, small, sizeof small) == -1 &&
          strlen(small) == sizeof small - 1);
}

static void test_names(void)
{
    CHECK(strcmp(sy_engine_name(SY_ENGINE_MARIADB), "mariadb") == 0);
    CHECK(strcmp(sy_engine_name(SY_ENGINE_MONGODB), "mongodb") == 0);
    CHECK(strcmp(sy_engine_name(SY_ENGINE_SQLSERVER), "sqlserver") == 0);
    CHECK(strcmp(sy_engine_name(SY_ENGINE_MYSQL), "mysql") == 0);
    CHECK(strcmp(sy_engine_name((enum sy_engine)42), "unknown") == 0);
    CHECK(strcmp(sy_log_level_name(SY_LOG_ERROR), "error") == 0);
    CHECK(strcmp(sy_log_level_name(SY_LOG_WARN), "warn") == 0);
    CHECK(strcmp(sy_log_level_name(SY_LOG_INFO), "info") == 0);
    CHECK(strcmp(sy_log_level_name(SY_LOG_DEBUG), "debug") == 0);
    CHECK(strcmp(sy_log_level_name((enum sy_log_level)9), "unknown") == 0);
    CHECK_LOADS("[pair x]\nengine = mysql\nlisten = h:0\nbusiness = h:1\ndr = h:2\nadmin_user = u\n");
    CHECK(cfg->pairs[0].engine == SY_ENGINE_MYSQL);
}

int main(void)
{
    cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL)
        return 2;
    test_contract_example();
    test_defaults();
    test_brief_messages();
    test_structure_errors();
    test_values();
    test_endpoints();
    test_cross_checks();
    test_objects();
    test_lines();
    test_names();
    sy_config_wipe(cfg);
    free(cfg);
    return CHECK_DONE();
}
