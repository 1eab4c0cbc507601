/* See metrics.h. One scrape walks every pair's status (the same JSON `status` answers with) and the
 * proxy's own counters; nothing is kept between scrapes. */
#include "core/metrics.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "core/instance.h"
#include "core/log.h"
#include "core/switch.h"

struct sy_metrics {
    struct evhttp *http;     /* owned */
    struct sy_pair *pairs;   /* ref: the daemon's */
    const size_t *n_pairs;   /* ref: how many are started */
};

static const char *const instance_states[] = { "prechecking", "precheck_failed", "initial_sync", "collecting",
                                               "running", "paused", "retrying", "failed", "terminated",
                                               "stopping" };

/* Label values here are pair names, instance ids and fixed words: no quotes or backslashes to escape
 * (pair names are [A-Za-z0-9_-], checked by the config). */
static void line(struct evbuffer *b, const char *fmt, ...) SY_PRINTF(2, 3);
static void line(struct evbuffer *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(b, fmt, ap);
    va_end(ap);
    evbuffer_add(b, "\n", 1);
}

static void header(struct evbuffer *b, const char *name, const char *type, const char *help)
{
    line(b, "# HELP %s %s", name, help);
    line(b, "# TYPE %s %s", name, type);
}

static void instances(struct evbuffer *b, const char *pair, json_t *list, const char *what)
{
    size_t i;
    json_t *in;
    json_array_foreach(list, i, in) {
        const char *id = json_string_value(json_object_get(in, "id"));
        if (strcmp(what, "state") == 0) {
            const char *st = json_string_value(json_object_get(in, "state"));
            for (size_t k = 0; k < SY_ARRAY_LEN(instance_states); k++)
                line(b, "switchyard_instance_state{pair=\"%s\",instance=\"%s\",state=\"%s\"} %d", pair, id,
                     instance_states[k], st && strcmp(st, instance_states[k]) == 0);
        } else if (strcmp(what, "lag") == 0) {
            static const char *const mods[] = { "collection", "write" };
            for (size_t k = 0; k < 2; k++) {
                json_t *lag = json_object_get(json_object_get(in, mods[k]), "lag_ms");
                if (json_is_integer(lag))
                    line(b, "switchyard_instance_lag_seconds{pair=\"%s\",instance=\"%s\",module=\"%s\"} %.3f", pair,
                         id, mods[k], (double)json_integer_value(lag) / 1000.0);
            }
        } else {
            bool rows = strcmp(what, "rows") == 0;
            json_t *v = json_object_get(json_object_get(in, "write"), rows ? "events" : "conflicts_overwritten");
            line(b, "%s{pair=\"%s\",instance=\"%s\"} %lld",
                 rows ? "switchyard_rows_applied_total" : "switchyard_conflicts_overwritten_total", pair, id,
                 (long long)json_integer_value(v));
        }
    }
}

/* switchyard_commit_wait_*: only pairs with commit_wait on (collected / applied). */
static void commit_wait(struct evbuffer *b, struct sy_pair *pairs, size_t n)
{
    static const struct {
        const char *name, *type, *help;
        size_t offset;
    } counters[] = {
        { "switchyard_commit_wait_waits_total", "counter", "commits whose OK was checked against the position",
          offsetof(struct sy_commit_wait, waits) },
        { "switchyard_commit_wait_timeouts_total", "counter", "waits that reached commit_wait_timeout_ms",
          offsetof(struct sy_commit_wait, timeouts) },
        { "switchyard_commit_wait_errors_total", "counter", "timeouts answered with an error (fallback = error)",
          offsetof(struct sy_commit_wait, errors) },
        { "switchyard_commit_wait_degraded_total", "counter", "times the pair degraded to off (fallback = degrade)",
          offsetof(struct sy_commit_wait, degraded_count) },
        { "switchyard_commit_wait_waiting", "gauge", "sessions holding a commit's OK now",
          offsetof(struct sy_commit_wait, waiting) },
    };
    for (size_t i = 0; i < n; i++) /* the proxy's worker loops count under it; one pair's at a time elsewhere */
        pthread_mutex_lock(&pairs[i].commit_wait.lock);
    for (size_t k = 0; k < SY_ARRAY_LEN(counters); k++) {
        header(b, counters[k].name, counters[k].type, counters[k].help);
        for (size_t i = 0; i < n; i++) {
            const struct sy_commit_wait *cw = &pairs[i].commit_wait;
            if (pairs[i].cfg->commit_wait != SY_COMMIT_WAIT_OFF)
                line(b, "%s{pair=\"%s\"} %llu", counters[k].name, pairs[i].cfg->name,
                     (unsigned long long)*(const uint64_t *)((const char *)cw + counters[k].offset));
        }
    }
    header(b, "switchyard_commit_wait_degraded", "gauge", "1 while commit_wait is degraded to off");
    for (size_t i = 0; i < n; i++)
        if (pairs[i].cfg->commit_wait != SY_COMMIT_WAIT_OFF)
            line(b, "switchyard_commit_wait_degraded{pair=\"%s\"} %d", pairs[i].cfg->name,
                 pairs[i].commit_wait.degraded);
    header(b, "switchyard_commit_wait_wait_seconds", "histogram", "how long commits' OKs were held");
    for (size_t i = 0; i < n; i++) {
        const struct sy_commit_wait *cw = &pairs[i].commit_wait;
        if (pairs[i].cfg->commit_wait == SY_COMMIT_WAIT_OFF)
            continue;
        uint64_t cum = 0;
        for (size_t j = 0; j <= SY_COMMIT_WAIT_BUCKETS; j++) {
            cum += cw->wait_buckets[j];
            if (j < SY_COMMIT_WAIT_BUCKETS)
                line(b, "switchyard_commit_wait_wait_seconds_bucket{pair=\"%s\",le=\"%g\"} %llu", pairs[i].cfg->name,
                     sy_commit_wait_bucket_s[j], (unsigned long long)cum);
            else
                line(b, "switchyard_commit_wait_wait_seconds_bucket{pair=\"%s\",le=\"+Inf\"} %llu", pairs[i].cfg->name,
                     (unsigned long long)cum);
        }
        line(b, "switchyard_commit_wait_wait_seconds_sum{pair=\"%s\"} %.6f", pairs[i].cfg->name, cw->wait_seconds_sum);
        line(b, "switchyard_commit_wait_wait_seconds_count{pair=\"%s\"} %llu", pairs[i].cfg->name,
             (unsigned long long)cum);
    }
    for (size_t i = n; i-- > 0;)
        pthread_mutex_unlock(&pairs[i].commit_wait.lock);
}

/* One gauge per instance from a status field (module NULL: the instance's own field). */
static void per_instance(struct evbuffer *b, struct sy_pair *pairs, size_t n, json_t *const *status, const char *name,
                         const char *help, const char *module, const char *key)
{
    header(b, name, "gauge", help);
    for (size_t i = 0; i < n; i++) {
        size_t k;
        json_t *in;
        json_array_foreach(json_object_get(status[i], "instances"), k, in) {
            json_t *v = json_object_get(module ? json_object_get(in, module) : in, key);
            const char *id = json_string_value(json_object_get(in, "id"));
            if (json_is_integer(v))
                line(b, "%s{pair=\"%s\",instance=\"%s\"} %lld", name, pairs[i].cfg->name, id,
                     (long long)json_integer_value(v));
            else
                line(b, "%s{pair=\"%s\",instance=\"%s\"} %.3f", name, pairs[i].cfg->name, id, json_number_value(v));
        }
    }
}

/* Per instance: spool size, apply rate and lag in events per module (the status fields of the same names). */
static void instance_extras(struct evbuffer *b, struct sy_pair *pairs, size_t n, json_t *const *status)
{
    static const char *const mods[] = { "collection", "write" };
    per_instance(b, pairs, n, status, "switchyard_spool_bytes",
                 "bytes the instance's spool holds on disk (spool_max_bytes caps it)", NULL, "spool_bytes");
    per_instance(b, pairs, n, status, "switchyard_apply_rows_per_second",
                 "rows the write module applied per second, last second", "write", "rows_per_s");
    per_instance(b, pairs, n, status, "switchyard_collection_late_events",
                 "log entries the collection took after a newer one had landed (MongoDB on FerretDB: oplog entries "
                 "stored late), since start",
                 "collection", "late_events");
    header(b, "switchyard_instance_lag_events", "gauge", "events behind the source, per module");
    for (size_t i = 0; i < n; i++) {
        size_t k;
        json_t *in;
        json_array_foreach(json_object_get(status[i], "instances"), k, in)
            for (size_t m = 0; m < 2; m++)
                line(b, "switchyard_instance_lag_events{pair=\"%s\",instance=\"%s\",module=\"%s\"} %lld",
                     pairs[i].cfg->name, json_string_value(json_object_get(in, "id")), mods[m],
                     (long long)json_integer_value(json_object_get(json_object_get(in, mods[m]), "lag_events")));
    }
    header(b, "switchyard_active_side", "gauge", "1 for the side that receives client traffic");
    for (size_t i = 0; i < n; i++)
        for (int side = 0; side < 2; side++)
            line(b, "switchyard_active_side{pair=\"%s\",side=\"%s\"} %d", pairs[i].cfg->name,
                 side ? "dr" : "business", (pairs[i].active_side == SY_SIDE_DR) == side);
    header(b, "switchyard_epoch", "gauge", "the pair's epoch: bumped by every change of active side");
    for (size_t i = 0; i < n; i++)
        line(b, "switchyard_epoch{pair=\"%s\"} %llu", pairs[i].cfg->name, (unsigned long long)pairs[i].epoch);
    header(b, "switchyard_failover_tail_unresolved", "gauge",
           "1 while the unreplicated tail of a failover waits for resolve-tail (pending or open)");
    for (size_t i = 0; i < n; i++)
        line(b, "switchyard_failover_tail_unresolved{pair=\"%s\"} %d", pairs[i].cfg->name,
             pairs[i].tail_state[0] != '\0');
}

/* Switches by kind and outcome, and a histogram of the pause of those done (core/switch.c counts them). */
static void switches(struct evbuffer *b, struct sy_pair *pairs, size_t n)
{
    header(b, "switchyard_switches_total", "counter",
           "switches asked for, by kind and outcome (done, refused: nothing started, rolled_back)");
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < SY_SWITCH_KINDS; k++)
            for (size_t o = 0; o < SY_SWITCH_OUTCOMES; o++)
                line(b, "switchyard_switches_total{pair=\"%s\",kind=\"%s\",outcome=\"%s\"} %llu", pairs[i].cfg->name,
                     sy_switch_kind_names[k], sy_switch_outcome_names[o],
                     (unsigned long long)pairs[i].switch_stats.outcomes[k][o]);
    header(b, "switchyard_switch_pause_seconds", "histogram", "how long clients were held, per switch done");
    for (size_t i = 0; i < n; i++) {
        const struct sy_switch_stats *st = &pairs[i].switch_stats;
        const char *pn = pairs[i].cfg->name;
        for (size_t k = 0; k < SY_SWITCH_KINDS; k++) {
            const char *kn = sy_switch_kind_names[k];
            for (size_t j = 0; j < SY_PAUSE_BUCKETS; j++)
                line(b, "switchyard_switch_pause_seconds_bucket{pair=\"%s\",kind=\"%s\",le=\"%g\"} %llu", pn, kn,
                     sy_switch_pause_buckets_s[j], (unsigned long long)st->pause_le[k][j]);
            line(b, "switchyard_switch_pause_seconds_bucket{pair=\"%s\",kind=\"%s\",le=\"+Inf\"} %llu", pn, kn,
                 (unsigned long long)st->pause_count[k]);
            line(b, "switchyard_switch_pause_seconds_sum{pair=\"%s\",kind=\"%s\"} %.3f", pn, kn,
                 (double)st->pause_sum_ms[k] / 1000.0);
            line(b, "switchyard_switch_pause_seconds_count{pair=\"%s\",kind=\"%s\"} %llu", pn, kn,
                 (unsigned long long)st->pause_count[k]);
        }
    }
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
    struct sy_metrics *m = arg;
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    json_t *status[SY_MAX_PAIRS] = { 0 };
    size_t n = *m->n_pairs;
    for (size_t i = 0; i < n; i++)
        status[i] = sy_pair_status_json(&m->pairs[i]);
    static const struct {
        const char *name, *type, *help, *what;
    } inst[] = {
        { "switchyard_instance_state", "gauge", "1 for the instance's current state", "state" },
        { "switchyard_instance_lag_seconds", "gauge", "time behind the source, per module", "lag" },
        { "switchyard_rows_applied_total", "counter", "rows the write module applied since start", "rows" },
        { "switchyard_conflicts_overwritten_total", "counter",
          "changes that did not fit the destination, overwritten or ignored (on_conflict = overwrite)", "conflicts" },
    };
    for (size_t k = 0; k < SY_ARRAY_LEN(inst); k++) {
        header(b, inst[k].name, inst[k].type, inst[k].help);
        for (size_t i = 0; i < n; i++)
            instances(b, m->pairs[i].cfg->name, json_object_get(status[i], "instances"), inst[k].what);
    }
    header(b, "switchyard_client_connections", "gauge", "client sessions, by the side they use");
    for (size_t i = 0; i < n; i++) {
        struct sy_pair *p = &m->pairs[i];
        json_t *clients = p->proto->clients_json(p->proto_state);
        size_t on[2] = { 0, 0 }, k;
        json_t *c;
        json_array_foreach(clients, k, c)
            on[strcmp(json_string_value(json_object_get(c, "side")) ?: "", "dr") == 0]++;
        json_decref(clients);
        line(b, "switchyard_client_connections{pair=\"%s\",side=\"business\"} %zu", p->cfg->name, on[0]);
        line(b, "switchyard_client_connections{pair=\"%s\",side=\"dr\"} %zu", p->cfg->name, on[1]);
    }
    header(b, "switchyard_switchover_pause_seconds", "gauge", "pause of the last switchover, switchback or failover");
    for (size_t i = 0; i < n; i++) {
        json_t *last = m->pairs[i].last_switch;
        if (last)
            line(b, "switchyard_switchover_pause_seconds{pair=\"%s\"} %.3f", m->pairs[i].cfg->name,
                 (double)json_integer_value(json_object_get(last, "pause_ms")) / 1000.0);
    }
    switches(b, m->pairs, n);
    instance_extras(b, m->pairs, n, status);
    header(b, "switchyard_client_errors_total", "counter", "errors the proxy answered itself, by reason");
    for (size_t i = 0; i < n; i++) {
        struct sy_pair *p = &m->pairs[i];
        json_t *errs = p->proto->client_errors ? p->proto->client_errors(p->proto_state) : json_object();
        const char *reason;
        json_t *v;
        json_object_foreach(errs, reason, v)
            line(b, "switchyard_client_errors_total{pair=\"%s\",reason=\"%s\"} %lld", p->cfg->name, reason,
                 (long long)json_integer_value(v));
        json_decref(errs);
    }
    commit_wait(b, m->pairs, n);
    for (size_t i = 0; i < n; i++)
        json_decref(status[i]);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4");
    evhttp_send_reply(req, HTTP_OK, "OK", b);
    evbuffer_free(b);
}

static void on_other(struct evhttp_request *req, void *arg)
{
    evhttp_send_error(req, HTTP_NOTFOUND, "only /metrics is served here");
}

struct sy_metrics *sy_metrics_open(struct event_base *base, const struct sy_endpoint *ep, struct sy_pair *pairs,
                                   const size_t *n_pairs, char *err, size_t errlen)
{
    struct sy_metrics *m = calloc(1, sizeof *m);
    if (m == NULL || (m->http = evhttp_new(base)) == NULL) {
        snprintf(err, errlen, "metrics: out of memory");
        free(m);
        return NULL;
    }
    m->pairs = pairs;
    m->n_pairs = n_pairs;
    evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(m->http, 10);          /* slow or idle scrapers' connections do not pile up */
    evhttp_set_cb(m->http, "/metrics", on_metrics, m);
    evhttp_set_gencb(m->http, on_other, m);
    if (evhttp_bind_socket(m->http, ep->host, ep->port) != 0) {
        snprintf(err, errlen, "metrics: cannot listen on %s:%u", ep->host, ep->port);
        sy_metrics_close(m);
        return NULL;
    }
    sy_log_info("metrics on http://%s:%u/metrics", ep->host, ep->port);
    return m;
}

void sy_metrics_close(struct sy_metrics *m)
{
    if (m == NULL)
        return;
    if (m->http)
        evhttp_free(m->http);
    free(m);
}
