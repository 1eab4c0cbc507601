/* switchyardd -c switchyard.ini [--foreground | --check-config]: loads and validates the config (and with
 * --check-config stops there), raises the open-file limit, detaches unless --foreground (logging then goes to
 * state_dir/switchyardd.log), and runs. Under systemd (Type=notify, --foreground) it reports READY=1 once
 * the admin socket and every listener are open, and STOPPING=1 when it begins to stop (core/daemon.c). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "core/config.h"
#include "core/console.h"
#include "core/tls.h"
#include "core/daemon.h"
#include "core/log.h"
#include "core/state_file.h"
#include "engine/engines.h"
#include "proxy/proxy.h"

static struct sy_config config; /* large: static, not on the stack */

static void usage(FILE *f)
{
    fprintf(f, "usage: switchyardd -c switchyard.ini [--foreground | --check-config]\n");
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = rl.rlim_max;
    if (want == RLIM_INFINITY || want > 1048576)
        want = 1048576;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            sy_log_warn("cannot raise open-file limit to %llu: %s", (unsigned long long)want, strerror(errno));
    }
}

static int detach(const char *state_dir)
{
    char path[1100], err[256];
    if (sy_mkdirs(state_dir, err, sizeof err) != 0) {
        fprintf(stderr, "switchyardd: %s\n", err);
        return -1;
    }
    snprintf(path, sizeof path, "%s/switchyardd.log", state_dir);
    FILE *log = fopen(path, "a");
    if (log == NULL) {
        fprintf(stderr, "switchyardd: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (daemon(1, 0) != 0) {
        fprintf(stderr, "switchyardd: daemon: %s\n", strerror(errno));
        return -1;
    }
    sy_log_set_stream(log);
    snprintf(path, sizeof path, "%s/switchyardd.pid", state_dir);
    FILE *pid = fopen(path, "w");
    if (pid) {
        fprintf(pid, "%d\n", (int)getpid());
        fclose(pid);
    }
    return 0;
}

/* What an engine cannot do shapes its pairs' defaults: servers that cannot be kept fenced get
 * fence_passive = off, and refuse it set on. */
static int apply_engine_limits(struct sy_config *cfg, const char *path)
{
    for (size_t i = 0; i < cfg->n_pairs; i++) {
        struct sy_pair_cfg *p = &cfg->pairs[i];
        for (size_t e = 0; sy_engines[e] != NULL; e++) {
            const struct sy_failover_ops *f = sy_engines[e]->failover;
            if (sy_engines[e]->engine != p->engine || f == NULL || f->passive_fence_refused == NULL)
                continue;
            if (p->fence_passive && p->fence_passive_set) {
                fprintf(stderr, "switchyardd: %s: [pair %s] fence_passive = on cannot be kept for engine %s: %s\n",
                        path, p->name, sy_engine_name(p->engine), f->passive_fence_refused);
                return -1;
            }
            p->fence_passive = false;
        }
    }
    return 0;
}

/* --check-config: the files the config names are read as the daemon will read them at start (as the user
 * it runs as: the token file's owner is checked), so a systemd ExecStartPre catches them. */
static int check_files(const struct sy_config *cfg, char *err, size_t errlen)
{
    if (cfg->console_token_file[0] != '\0') {
        char token[600];
        int rc = sy_console_token_load(cfg->console_token_file, token, sizeof token, err, errlen);
        OPENSSL_cleanse(token, sizeof token);
        if (rc != 0)
            return -1;
    }
    SSL_CTX *ctx;
    if (cfg->console_tls_cert[0] != '\0') {
        if ((ctx = sy_tls_server_ctx_new(cfg->console_tls_cert, cfg->console_tls_key, "console_", err, errlen)) == NULL)
            return -1;
        SSL_CTX_free(ctx);
    }
    for (size_t i = 0; i < cfg->n_pairs; i++) {
        const struct sy_pair_cfg *p = &cfg->pairs[i];
        if (p->tls_cert[0] == '\0')
            continue;
        char what[200];
        if ((ctx = sy_tls_server_ctx_new(p->tls_cert, p->tls_key, "", what, sizeof what)) == NULL) {
            snprintf(err, errlen, "[pair %s] %s", p->name, what);
            return -1;
        }
        SSL_CTX_free(ctx);
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "foreground", no_argument, NULL, 'f' },
        { "check-config", no_argument, NULL, 'k' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *path = NULL;
    bool foreground = false, check_only = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:fkh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'f':
            foreground = true;
            break;
        case 'k':
            check_only = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (path == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    char err[1024];
    if (sy_config_load(path, &config, err, sizeof err) != 0) {
        fprintf(stderr, "switchyardd: %s\n", err);
        return 1;
    }
    if (apply_engine_limits(&config, path) != 0)
        return 1;
    if (check_only) {
        int rc = check_files(&config, err, sizeof err);
        if (rc == 0)
            printf("%s: OK (%zu pair(s)%s)\n", path, config.n_pairs, config.cluster.line ? ", [cluster]" : "");
        else
            fprintf(stderr, "switchyardd: %s: %s\n", path, err);
        sy_config_wipe(&config);
        return rc == 0 ? 0 : 1;
    }
    sy_log_set_level(config.log_level);
    raise_nofile();
    if (!foreground && detach(config.state_dir) != 0)
        return 1;
    for (size_t i = 0; sy_engines[i] != NULL; i++)
        if (sy_engines[i]->library_init != NULL)
            sy_engines[i]->library_init();
    int rc = sy_daemon_run(&config, sy_proxy_protocols, sy_engines);
    for (size_t i = 0; sy_engines[i] != NULL; i++)
        if (sy_engines[i]->library_end != NULL)
            sy_engines[i]->library_end();
    sy_config_wipe(&config);
    return rc;
}
