/* The unreplicated tail of a failover: business transactions after the last one the forward collector
 * spooled. While the business DB is down the tail is "pending"; a timer looks for it every second and,
 * once it answers, a thread fences it (read_only: nothing more lands there) and reads its position. The
 * tail is then (collected position, that position]: counted per domain, with how many of those
 * transactions the ack ledger saw acknowledged to clients, and reported in status as "open". Nothing
 * is applied anywhere until the operator decides: `resolve-tail --export FILE` writes the report to a
 * new file, `--discard` does not; both then restart the forward collection after the tail (so it is
 * never replayed to DR by a later switchback) and start the reverse write. An empty tail resolves by
 * itself. */
#include "core/tail.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/instance.h"
#include "core/log.h"

#define TAIL_POLL_MS 1000

struct tail_job {
    struct sy_pair *p;
    struct event *done;
    bool alive;
    int rc;
    char position[1024];
    char err[512];
};

static void *tail_thread(void *arg)
{
    struct tail_job *j = arg;
    struct sy_pair *p = j->p;
    j->alive = p->mods->alive(p->cfg, &p->cfg->business, 1000);
    if (j->alive) {
        pthread_mutex_lock(&p->fence_lock); /* against the keeper: same fence, same side */
        j->rc = p->mods->fence(p->cfg, &p->cfg->business, true, 2000, j->position, sizeof j->position, j->err,
                               sizeof j->err);
        pthread_mutex_unlock(&p->fence_lock);
    }
    event_active(j->done, 0, 0);
    sy_admin_job_end(); /* last touch of shared state */
    return NULL;
}

/* Moves the forward collection past the tail and lets the reverse write start. */
static int tail_close(struct sy_pair *p, const char *how, char *err, size_t errlen)
{
    const char *business = json_string_value(json_object_get(p->tail, "business_position"));
    if (business == NULL || p->forward == NULL) {
        snprintf(err, errlen, "the tail has no business position yet");
        return -1;
    }
    if (sy_instance_state(p->forward) == SY_INST_PAUSED &&
        sy_instance_skip_to(p->forward, business, err, errlen) != 0)
        return -1;
    json_object_set_new(p->tail, "resolved", json_string(how));
    p->tail_state[0] = '\0';
    if (sy_pair_save(p, err, errlen) != 0)
        return -1;
    const char *code;
    char msg[600];
    if (p->reverse && sy_instance_state(p->reverse) == SY_INST_COLLECTING && p->active_side == SY_SIDE_DR &&
        sy_instance_start_write(p->reverse, &code, msg, sizeof msg) != 0)
        sy_log_warn("pair %s: %s", p->cfg->name, msg);
    sy_log_info("pair %s: tail %s; %s collects from %s", p->cfg->name, how, sy_instance_id(p->forward), business);
    return 0;
}

static void on_tail_done(evutil_socket_t fd, short what, void *arg)
{
    struct tail_job *j = arg;
    struct sy_pair *p = j->p;
    p->tail_job = false;
    if (j->alive && j->rc != 0)
        sy_log_warn("pair %s: the business DB is back but cannot be fenced: %s", p->cfg->name, j->err);
    if (j->alive && j->rc == 0 && strcmp(p->tail_state, "pending") == 0) {
        const char *collected = json_string_value(json_object_get(p->tail, "collected_position")) ?: "";
        const char *ledger = json_string_value(json_object_get(p->tail, "ack_ledger_position")) ?: "";
        uint64_t n = 0, acked = 0;
        json_t *ranges = json_array();
        if (p->mods->tail_count(collected, j->position, ledger, &n, &acked, ranges) != 0) {
            sy_log_error("pair %s: cannot compare positions %s and %s", p->cfg->name, collected, j->position);
            json_decref(ranges);
        } else {
            json_object_set_new(p->tail, "business_position", json_string(j->position));
            json_object_set_new(p->tail, "transactions", json_integer((json_int_t)n));
            json_object_set_new(p->tail, "acknowledged", json_integer((json_int_t)acked));
            json_object_set_new(p->tail, "ranges", ranges);
            char err[512];
            if (n == 0) {
                if (tail_close(p, "empty", err, sizeof err) != 0)
                    sy_log_error("pair %s: %s", p->cfg->name, err);
            } else {
                snprintf(p->tail_state, sizeof p->tail_state, "open");
                if (sy_pair_save(p, err, sizeof err) != 0)
                    sy_log_error("pair %s: %s", p->cfg->name, err);
                sy_log_warn("pair %s: the business DB is back (fenced): %llu transaction(s) after %s were never "
                            "replicated to DR (%llu acknowledged to clients): decide with `switchyardctl "
                            "resolve-tail %s --export FILE | --discard`",
                            p->cfg->name, (unsigned long long)n, collected, (unsigned long long)acked, p->cfg->name);
            }
        }
    }
    event_free(j->done);
    free(j);
}

static void on_tail_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sy_pair *p = arg;
    if (strcmp(p->tail_state, "pending") != 0 || p->tail_job || p->op != NULL || p->tail == NULL)
        return;
    struct tail_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return;
    j->p = p;
    j->done = event_new(p->base, -1, 0, on_tail_done, j);
    pthread_t th;
    sy_admin_job_begin();
    if (j->done == NULL || pthread_create(&th, NULL, tail_thread, j) != 0) {
        sy_admin_job_end();
        if (j->done)
            event_free(j->done);
        free(j);
        return;
    }
    pthread_detach(th);
    p->tail_job = true;
}

int sy_tail_watch_start(struct sy_pair *p)
{
    if (p->mods == NULL || p->mods->tail_count == NULL)
        return 0;
    p->tail_timer = event_new(p->base, -1, EV_PERSIST, on_tail_timer, p);
    struct timeval tv = { TAIL_POLL_MS / 1000, (TAIL_POLL_MS % 1000) * 1000 };
    return p->tail_timer && event_add(p->tail_timer, &tv) == 0 ? 0 : -1;
}

void sy_tail_watch_stop(struct sy_pair *p)
{
    if (p->tail_timer)
        event_free(p->tail_timer);
    p->tail_timer = NULL;
}

/* Writes the report to a file that must not exist yet, readable by its owner only. */
static int export_tail(const json_t *tail, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *text = json_dumps(tail, JSON_INDENT(2) | JSON_SORT_KEYS);
    size_t len = text ? strlen(text) : 0;
    bool ok = text && write(fd, text, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    if (!ok)
        snprintf(err, errlen, "%s: %s", path, text ? strerror(errno) : "out of memory");
    free(text);
    close(fd);
    if (!ok)
        unlink(path);
    return ok ? 0 : -1;
}

void sy_tail_resolve(struct sy_pair *p, struct sy_admin_req *req, const char *export_path, bool discard)
{
    if ((export_path == NULL) == !discard) {
        sy_admin_fail(req, "bad_request", "resolve-tail wants exactly one of --export FILE or --discard");
        return;
    }
    if (p->tail_state[0] == '\0') {
        sy_admin_fail(req, "bad_state", "%s has no unresolved failover tail", p->cfg->name);
        return;
    }
    if (strcmp(p->tail_state, "open") != 0) {
        sy_admin_fail(req, "tail_unresolved", "the business DB of %s has not answered since the failover: the tail "
                                              "is not known yet (status shows it once it is)", p->cfg->name);
        return;
    }
    char err[1024];
    if (export_path && export_tail(p->tail, export_path, err, sizeof err) != 0) {
        sy_admin_fail(req, "export_failed", "cannot export the tail: %s (nothing changed)", err);
        return;
    }
    json_t *tail = json_deep_copy(p->tail);
    if (tail_close(p, export_path ? "exported" : "discarded", err, sizeof err) != 0) {
        json_decref(tail);
        sy_admin_fail(req, "internal", "%s", err);
        return;
    }
    json_object_set_new(tail, "resolved", json_string(export_path ? "exported" : "discarded"));
    if (export_path)
        json_object_set_new(tail, "file", json_string(export_path));
    sy_admin_ok(req, json_pack("{s:s,s:o}", "pair", p->cfg->name, "tail", tail));
}
