/* Pair runtime: persisted epoch and active side, the hold timer, and the pair's status entry.
 * The engine's proxy is reached only through pair->proto (core never includes proxy/). */
#include "core/pair.h"
#include "core/switch.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/cluster_tail.h"
#include "core/instance.h"
#include "core/log.h"
#include "core/shared_epoch.h"
#include "core/election.h"
#include "core/state_file.h"

uint64_t sy_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *sy_side_name(enum sy_side s)
{
    return s == SY_SIDE_DR ? "dr" : "business";
}

const struct sy_endpoint *sy_pair_active_endpoint(const struct sy_pair *p)
{
    return p->active_side == SY_SIDE_DR ? &p->cfg->dr : &p->cfg->business;
}

static void pair_state_path(const struct sy_pair *p, char *buf, size_t len)
{
    snprintf(buf, len, "%s/pairs/%s.json", p->state_dir, p->cfg->name);
}

static int pair_load_epoch(struct sy_pair *p, char *err, size_t errlen)
{
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/pairs", p->state_dir);
    if (sy_mkdirs(dir, err, errlen) != 0)
        return -1;
    pair_state_path(p, path, sizeof path);
    int missing = 0;
    json_t *doc = sy_state_read_json(path, &missing, err, errlen);
    if (doc == NULL && !missing)
        return -1;
    if (doc == NULL) {
        p->epoch = 1;
        p->active_side = SY_SIDE_BUSINESS;
        return sy_pair_save(p, err, errlen);
    }
    json_t *epoch = json_object_get(doc, "epoch");
    const char *side = json_string_value(json_object_get(doc, "active_side"));
    if (!json_is_integer(epoch) || json_integer_value(epoch) < 1 || side == NULL ||
        (strcmp(side, "business") != 0 && strcmp(side, "dr") != 0)) {
        snprintf(err, errlen, "%s: expected {\"epoch\": N >= 1, \"active_side\": \"business\"|\"dr\"}", path);
        json_decref(doc);
        return -1;
    }
    p->epoch = (uint64_t)json_integer_value(epoch);
    p->active_side = strcmp(side, "dr") == 0 ? SY_SIDE_DR : SY_SIDE_BUSINESS;
    snprintf(p->tail_state, sizeof p->tail_state, "%s", json_string_value(json_object_get(doc, "tail_state")) ?: "");
    json_t *tail = json_object_get(doc, "tail");
    p->tail = json_is_object(tail) ? json_incref(tail) : NULL;
    json_decref(doc);
    return 0;
}

int sy_pair_save(struct sy_pair *p, char *err, size_t errlen)
{
    char path[1100];
    pair_state_path(p, path, sizeof path);
    json_t *doc = json_pack("{s:I,s:s,s:s}", "epoch", (json_int_t)p->epoch, "active_side",
                            sy_side_name(p->active_side), "tail_state", p->tail_state);
    if (p->tail)          /* a record's collector_state is read from etcd again by a takeover */
        json_object_set_new(doc, "tail", sy_cluster_tail_public(p->tail));
    int rc = sy_state_write_json(path, doc, err, errlen);
    json_decref(doc);
    return rc;
}

/* Persists {epoch, to} and only then makes it the pair's. */
static int set_and_save(struct sy_pair *p, uint64_t epoch, enum sy_side to, const char *why, char *err,
                        size_t errlen)
{
    enum sy_side was = p->active_side;
    uint64_t old = p->epoch;
    p->active_side = to;
    p->epoch = epoch;
    if (sy_pair_save(p, err, errlen) != 0) {
        p->active_side = was;
        p->epoch = old;
        return -1;
    }
    sy_log_info("pair %s: epoch %llu%s: %s side is active (%s:%u)", p->cfg->name, (unsigned long long)p->epoch, why,
                sy_side_name(to), sy_pair_active_endpoint(p)->host, sy_pair_active_endpoint(p)->port);
    return 0;
}

int sy_pair_set_active(struct sy_pair *p, enum sy_side to, char *err, size_t errlen)
{
    return set_and_save(p, p->epoch + 1, to, "", err, errlen);
}

int sy_pair_adopt(struct sy_pair *p, uint64_t epoch, enum sy_side side, size_t *moved_out, char *err,
                  size_t errlen)
{
    enum sy_side was = p->active_side;
    if (set_and_save(p, epoch, side, " (the cluster's)", err, errlen) != 0)
        return -1;
    if (was != side) {
        size_t moved = p->proto->switch_flip(p->proto_state, side);
        sy_log_info("pair %s: %zu session(s) moved to the %s side", p->cfg->name, moved, sy_side_name(side));
        if (moved_out != NULL)
            *moved_out = moved;
    }
    return 0;
}

static void on_hold_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct sy_pair *p = arg;
    sy_log_warn("pair %s: hold reached max_hold_ms=%d, releasing", p->cfg->name, p->cfg->max_hold_ms);
    sy_pair_release(p, "max_hold_ms");
}

int sy_pair_start(struct sy_pair *p, const struct sy_pair_cfg *cfg, const struct sy_proxy_protocol *proto,
                  const char *state_dir, struct event_base *base, struct sy_loop_pool *pool, char *err,
                  size_t errlen)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->fence_lock, NULL);
    p->cfg = cfg;
    p->proto = proto;
    p->state_dir = state_dir;
    p->base = base;
    p->pool = pool;
    if (p->proto == NULL) {
        snprintf(err, errlen, "not_implemented: pair %s: engine %s is not built yet", cfg->name,
                 sy_engine_name(cfg->engine));
        return -1;
    }
    if (pair_load_epoch(p, err, errlen) != 0)
        return -1;
    p->hold_timer = evtimer_new(base, on_hold_timeout, p);
    if (p->hold_timer == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (sy_commit_wait_init(&p->commit_wait, cfg, base, err, errlen) != 0) {
        event_free(p->hold_timer);
        p->hold_timer = NULL;
        return -1;
    }
    p->proto_state = p->proto->start(p, err, errlen);
    if (p->proto_state == NULL) {
        sy_commit_wait_fini(&p->commit_wait);
        event_free(p->hold_timer);
        p->hold_timer = NULL;
        return -1;
    }
    sy_log_info("pair %s: %s proxy on %s, active side %s (%s:%u), epoch %llu", cfg->name,
                sy_engine_name(cfg->engine), p->listen_addr, sy_side_name(p->active_side),
                sy_pair_active_endpoint(p)->host, sy_pair_active_endpoint(p)->port,
                (unsigned long long)p->epoch);
    return 0;
}

void sy_pair_stop(struct sy_pair *p)
{
    sy_instance_close(p->forward);
    sy_instance_close(p->reverse);
    p->forward = p->reverse = NULL;
    if (p->proto && p->proto_state)
        p->proto->stop(p->proto_state);
    p->proto_state = NULL;
    sy_commit_wait_fini(&p->commit_wait); /* after the module threads that publish into it are joined */
    if (p->hold_timer)
        event_free(p->hold_timer);
    p->hold_timer = NULL;
    json_decref(p->tail);
    p->tail = NULL;
    json_decref(p->last_switch);
    p->last_switch = NULL;
    json_decref(p->switch_history);
    p->switch_history = NULL;
}

void sy_pair_hold(struct sy_pair *p)
{
    if (p->held)
        return;
    p->held = true;
    p->hold_started_ms = sy_now_ms();
    struct timeval tv = { p->cfg->max_hold_ms / 1000, (p->cfg->max_hold_ms % 1000) * 1000 };
    evtimer_add(p->hold_timer, &tv);
    sy_log_info("pair %s: hold (new requests outside transactions wait, at most %d ms)", p->cfg->name,
                p->cfg->max_hold_ms);
    p->proto->hold_changed(p->proto_state, true);
}

void sy_pair_hold_for_switch(struct sy_pair *p)
{
    if (p->held)
        evtimer_del(p->hold_timer); /* a manual hold becomes the switch's */
    p->held = true;
    p->hold_started_ms = sy_now_ms();
    p->proto->hold_changed(p->proto_state, true);
}

void sy_pair_release(struct sy_pair *p, const char *why)
{
    if (!p->held)
        return;
    p->held = false;
    evtimer_del(p->hold_timer);
    sy_log_info("pair %s: release after %llu ms (%s)", p->cfg->name,
                (unsigned long long)(sy_now_ms() - p->hold_started_ms), why);
    p->proto->hold_changed(p->proto_state, false);
}

json_t *sy_pair_status_json(const struct sy_pair *p)
{
    json_t *instances = json_array();
    if (p->forward)
        json_array_append_new(instances, sy_instance_status_json(p->forward));
    if (p->reverse)
        json_array_append_new(instances, sy_instance_status_json(p->reverse));
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:b,s:I,s:o}", "name", p->cfg->name, "engine",
                          sy_engine_name(p->cfg->engine), "listen", p->listen_addr, "active_side",
                          sy_side_name(p->active_side), "epoch", (json_int_t)p->epoch, "held", p->held, "clients",
                          (json_int_t)p->proto->client_count(p->proto_state), "instances", instances);
    json_object_set_new(o, "switching", json_boolean(p->op != NULL));
    if (p->shared != NULL)
        json_object_set_new(o, "shared_epoch", sy_shared_epoch_status_json(p->shared));
    if (p->election != NULL) {
        json_t *sync = sy_election_status_json(p->election);
        json_object_set_new(sync, "taking_over", json_boolean(p->taking_over));
        json_object_set_new(sync, "instances_open", json_boolean(p->sync_open));
        json_object_set_new(sync, "instances_closing", json_boolean(p->sync_closing));
        if (p->sync_open && p->reverse_later)
            json_object_set_new(sync, "reverse_takeover_pending", json_true());
        if (p->takeover_error[0])
            json_object_set_new(sync, "takeover_error", json_string(p->takeover_error));
        if (atomic_load(&p->fence_report.fenced)) { /* until this node takes the pair over again */
            json_int_t to = (json_int_t)atomic_load(&p->fence_report.lost_to_token);
            json_object_set_new(sync, "fenced", json_pack("{s:I}", "lost_to_token", to));
        }
        json_object_set_new(o, "sync_owner", sync);
    }
    if (p->commit_wait.wake != NULL)
        json_object_set_new(o, "commit_wait", sy_commit_wait_status_json(&p->commit_wait));
    if (p->op != NULL)
        json_object_set_new(o, "switch", sy_switch_progress_json(p->op));
    if (p->last_switch)
        json_object_set(o, "last_switch", p->last_switch);
    if (p->switch_history)
        json_object_set(o, "switch_history", p->switch_history);
    if (p->tail_state[0]) {
        json_t *t = p->tail ? sy_cluster_tail_public(p->tail) : json_object();
        json_object_set_new(t, "state", json_string(p->tail_state));
        json_object_set_new(o, "tail", t);
    }
    return o;
}
