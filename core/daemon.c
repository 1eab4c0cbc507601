/* Daemon wiring: loop, signals, admin socket and the pair-level admin commands. Instance commands
 * (precheck, create-reverse, switchover, ...) answer not_implemented until their modules exist. */
#include "core/daemon.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "core/admin.h"
#include "core/log.h"
#include "core/state_file.h"

struct daemon {
    const struct sy_config *cfg;  /* ref: main's */
    struct event_base *base;      /* owned */
    struct sy_admin *admin;       /* owned */
    struct sy_pair *pairs;        /* owned array of cfg->n_pairs */
    size_t n_started;             /* pairs[0..n_started) were started and must be stopped */
};

static struct sy_pair *find_pair(struct daemon *d, const char *name)
{
    for (size_t i = 0; name && i < d->n_started; i++)
        if (strcmp(d->pairs[i].cfg->name, name) == 0)
            return &d->pairs[i];
    return NULL;
}

/* The named pair, or NULL after answering unknown_pair / usage. */
static struct sy_pair *pair_arg(struct sy_admin_req *req, json_t *args, struct daemon *d)
{
    const char *name = sy_admin_arg_str(args, "pair");
    if (name == NULL) {
        sy_admin_fail(req, "bad_request", "missing argument: pair");
        return NULL;
    }
    struct sy_pair *p = find_pair(d, name);
    if (p == NULL)
        sy_admin_fail(req, "unknown_pair", "no pair named '%s'", name);
    return p;
}

static void cmd_status(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct daemon *d = ctx;
    const char *name = sy_admin_arg_str(args, "pair");
    json_t *pairs = json_array();
    for (size_t i = 0; i < d->n_started; i++)
        if (name == NULL || strcmp(name, d->pairs[i].cfg->name) == 0)
            json_array_append_new(pairs, sy_pair_status_json(&d->pairs[i]));
    if (name != NULL && json_array_size(pairs) == 0) {
        json_decref(pairs);
        sy_admin_fail(req, "unknown_pair", "no pair named '%s'", name);
        return;
    }
    sy_admin_ok(req, json_pack("{s:o}", "pairs", pairs));
}

static void cmd_clients(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct sy_pair *p = pair_arg(req, args, ctx);
    if (p != NULL)
        sy_admin_ok(req, json_pack("{s:s,s:o}", "pair", p->cfg->name, "clients",
                                   p->proto->clients_json(p->proto_state)));
}

static void cmd_hold(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct sy_pair *p = pair_arg(req, args, ctx);
    if (p == NULL)
        return;
    sy_pair_hold(p);
    sy_admin_ok(req, json_pack("{s:s,s:b,s:i}", "pair", p->cfg->name, "held", 1, "max_hold_ms",
                               p->cfg->max_hold_ms));
}

static void cmd_release(struct sy_admin_req *req, json_t *args, void *ctx)
{
    struct sy_pair *p = pair_arg(req, args, ctx);
    if (p == NULL)
        return;
    uint64_t held_ms = p->held ? sy_now_ms() - p->hold_started_ms : 0;
    bool was_held = p->held;
    sy_pair_release(p, "release command");
    sy_admin_ok(req, json_pack("{s:s,s:b,s:b,s:I}", "pair", p->cfg->name, "held", 0, "was_held", was_held,
                               "held_ms", (json_int_t)held_ms));
}

static void cmd_not_built(struct sy_admin_req *req, json_t *args, void *ctx)
{
    sy_admin_fail(req, "not_implemented", "'%s' is not built yet in this version of switchyardd",
                  sy_admin_req_cmd(req));
}

static const struct sy_admin_cmd pair_cmds[] = {
    { "status", "status [PAIR] : pairs, active side, epoch, instances, lag", cmd_status },
    { "clients", "clients PAIR : client sessions (id, user, peer, side, in_transaction, held_ms)", cmd_clients },
    { "hold", "hold PAIR : queue new client requests outside transactions (max_hold_ms)", cmd_hold },
    { "release", "release PAIR : let held requests through, in order", cmd_release },
    { "precheck", "precheck PAIR [--direction forward|reverse|switchover] : checks with fixes", cmd_not_built },
    { "create-reverse", "create-reverse PAIR : create the reverse instance", cmd_not_built },
    { "pause", "pause INSTANCE : pause, keeping position and spool", cmd_not_built },
    { "start", "start INSTANCE : start or resume; reverse: start its write", cmd_not_built },
    { "terminate", "terminate INSTANCE : end an instance for good", cmd_not_built },
    { "switchover", "switchover PAIR [--force] : planned switch to the other side", cmd_not_built },
    { "failover", "failover PAIR [--force] : business DB is down: flip to DR", cmd_not_built },
    { "switchback", "switchback PAIR : drain reverse, flip to business", cmd_not_built },
    { "resolve-tail", "resolve-tail PAIR --export FILE | --discard : decide the unreplicated tail", cmd_not_built },
    { "verify", "verify PAIR [--objects ...] : row counts and chunked checksums", cmd_not_built },
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    sy_log_info("signal %d: shutting down", (int)sig);
    event_base_loopbreak(d->base);
}

static const struct sy_proxy_protocol *find_proto(const struct sy_proxy_protocol *const *protos, enum sy_engine e)
{
    for (size_t i = 0; protos[i] != NULL; i++)
        if (protos[i]->engine == e)
            return protos[i];
    return NULL;
}

int sy_daemon_run(const struct sy_config *cfg, const struct sy_proxy_protocol *const *protos)
{
    char err[1024] = "";
    int status = 1;
    struct daemon d = { .cfg = cfg };
    struct event *sigterm = NULL, *sigint = NULL;
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    d.base = event_base_new();
    d.pairs = calloc(cfg->n_pairs ? cfg->n_pairs : 1, sizeof *d.pairs);
    if (d.base == NULL || d.pairs == NULL) {
        sy_log_error("out of memory");
        goto out;
    }
    if (sy_mkdirs(cfg->state_dir, err, sizeof err) != 0) {
        sy_log_error("state_dir: %s", err);
        goto out;
    }
    for (size_t i = 0; i < cfg->n_pairs; i++) {
        if (sy_pair_start(&d.pairs[i], &cfg->pairs[i], find_proto(protos, cfg->pairs[i].engine), cfg->state_dir,
                          d.base, err, sizeof err) != 0) {
            sy_log_error("%s:%d: [pair %s]: %s", cfg->path, cfg->pairs[i].line, cfg->pairs[i].name, err);
            goto out;
        }
        d.n_started = i + 1;
    }
    d.admin = sy_admin_open(d.base, cfg->admin_socket, err, sizeof err);
    if (d.admin == NULL) {
        sy_log_error("%s", err);
        goto out;
    }
    sy_admin_register(d.admin, pair_cmds, SY_ARRAY_LEN(pair_cmds), &d);
    sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
    sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    sy_log_info("switchyardd ready: admin socket %s, %zu pair(s)", cfg->admin_socket, cfg->n_pairs);
    event_base_dispatch(d.base);
    status = 0;
out:
    if (sigterm)
        event_free(sigterm);
    if (sigint)
        event_free(sigint);
    sy_admin_close(d.admin);
    for (size_t i = 0; i < d.n_started; i++)
        sy_pair_stop(&d.pairs[i]);
    free(d.pairs);
    if (d.base)
        event_base_free(d.base);
    if (status == 0)
        sy_log_info("switchyardd stopped");
    return status;
}
