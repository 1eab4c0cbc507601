/* The unreplicated tail of a failover: business transactions after the last one the forward collector
 * spooled. While the business DB is down the tail is "pending"; a timer looks for it every second and,
 * once it answers, a thread fences it (nothing more lands there), reads its position and the
 * tail's transactions from its binlog (GTIDs, tables, keys, row images; engine's tail_read). The tail is
 * reported in status as "open" with how many of its transactions the ack ledger saw acknowledged to
 * clients; the full detail is kept in state_dir/pairs/<pair>.tail.json. Nothing is applied anywhere until
 * the operator decides:
 *
 *   resolve-tail --export FILE   writes the detail to a new file (0600), then reverts the tail on the
 *                                business DB, newest first (engine's tail_revert), so it equals DR again;
 *   resolve-tail --discard       reverts it without a copy.
 *
 * Then the forward collection restarts after the tail (it is never replayed to DR by a later
 * switchback) and the reverse write starts. An empty tail resolves by itself. */
#include "core/tail.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cluster_held.h"
#include "core/cluster_tail.h"
#include "core/election.h"
#include "core/engine.h"
#include "core/instance.h"
#include "core/log.h"
#include "core/state_file.h"
#include "core/tail_export.h"

#define TAIL_POLL_MS 1000
#define TAIL_LISTED 100   /* transactions listed in status (all of them are in the detail file) */

struct tail_job {
    struct sy_pair *p;
    struct sy_admin_req *req;      /* resolve: the request to answer */
    struct event *done;
    bool alive;
    int rc;
    char position[1024];           /* the business position after the job */
    char collected[1024];          /* find: the tail starts after it (copied on the loop: p->tail is the
                                      loop's) */
    char collector_dir[1200];      /* find: where the forward collector's file is (engine's tail_read): its
                                      instance dir, or where collector_state is written */
    json_t *collector_state;       /* owned: find: the file from the tail record (another node's failover), or
                                      NULL: this node's own is in the instance dir */
    char err[1024];
    json_t *detail;                /* owned: tail_read's output (find) / input (resolve) */
    json_t *result;                /* owned: tail_revert's result */
    char export_path[1024];        /* resolve: "" = --discard */
};

static void job_free(struct tail_job *j)
{
    if (j->done)
        event_free(j->done);
    json_decref(j->detail);
    json_decref(j->result);
    json_decref(j->collector_state);
    free(j);
}

static void detail_path(const struct sy_pair *p, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/pairs/%s.tail.json", p->state_dir, p->cfg->name);
}

/* Starts fn on a thread that ends with event_active(j->done). */
static int job_start(struct tail_job *j, void *(*fn)(void *), event_callback_fn done)
{
    j->done = event_new(j->p->base, -1, 0, done, j);
    pthread_t th;
    sy_admin_job_begin();
    if (j->done == NULL || pthread_create(&th, NULL, fn, j) != 0) {
        sy_admin_job_end();
        return -1;
    }
    pthread_detach(th);
    j->p->tail_job = true;
    return 0;
}

/* ---- finding the tail ------------------------------------------------------------------------------ */

static void *find_thread(void *arg)
{
    struct tail_job *j = arg;
    struct sy_pair *p = j->p;
    j->alive = p->eng->failover->alive(p->cfg, &p->cfg->business, 1000);
    if (j->alive) {
        pthread_mutex_lock(&p->fence_lock); /* the keeper fences the same side */
        j->rc = p->eng->failover->fence(p->cfg, &p->cfg->business, true, 2000, j->position, sizeof j->position, j->err,
                               sizeof j->err);
        pthread_mutex_unlock(&p->fence_lock);
        if (j->rc == 0 && p->eng->failover->tail_read != NULL) {
            char err[512];
            if (j->collector_state != NULL &&       /* without it: tail_read says what it misses */
                sy_cluster_tail_collector_restore(j->collector_state, j->collector_dir, err, sizeof err) != 0)
                sy_log_warn("pair %s: the tail record's collector state cannot be used: %s", p->cfg->name, err);
            j->detail = json_object();
            if (p->eng->failover->tail_read(p->cfg, &p->cfg->business, j->collected, j->collector_dir,
                                            j->detail, j->err, sizeof j->err) != 0) {
                json_decref(j->detail);
                j->detail = NULL;
                j->rc = -1;
            }
            if (j->collector_state != NULL)
                sy_cluster_tail_collector_remove(j->collector_dir);
        }
    }
    event_active(j->done, 0, 0);
    sy_admin_job_end(); /* last touch of shared state */
    return NULL;
}

/* ---- the record in etcd (a cluster) -------------------------------------------------------------------- */

/* Whether this node acts on the pair's tail: always alone; in a cluster only the owner with its instances
 * open (a node that stepped down keeps a stale copy: it must neither fence business nor resolve). */
static bool acts_on_tail(const struct sy_pair *p)
{
    if (!p->clustered)
        return true;
    return p->election != NULL && sy_election_is_owner(p->election) && p->sync_open && !p->sync_closing;
}

struct tail_put {
    struct sy_pair *p;
    unsigned gen;
};

static void on_tail_put(void *arg, json_t *reply, const char *err)
{
    struct tail_put *tp = arg;
    struct sy_pair *p = tp->p;
    p->tail_recording = false;
    if (reply != NULL && sy_cluster_held_recorded(reply))
        p->tail_gen_recorded = tp->gen;
    else
        sy_log_warn("pair %s: cannot %s the failover's tail in etcd (tried again every second): %s", p->cfg->name,
                    p->tail_state[0] ? "record" : "forget", reply == NULL ? err : "this node no longer owns the pair");
    free(tp);
}

void sy_tail_record(struct sy_pair *p)
{
    if (p->election == NULL || p->tail_recording || p->tail_gen_recorded == p->tail_gen || !acts_on_tail(p))
        return;
    struct tail_put *tp = malloc(sizeof *tp);
    if (tp == NULL)
        return;
    *tp = (struct tail_put){ .p = p, .gen = p->tail_gen };
    p->tail_recording = true;
    if (sy_cluster_tail_put(sy_election_etcd(p->election), p->cfg->name, p->tail_state[0] ? p->tail : NULL,
                            sy_election_node(p->election), sy_election_owner_token(p->election), on_tail_put,
                            tp) != 0) {
        p->tail_recording = false;
        free(tp);
    }
}

static void on_held_forgotten(void *arg, json_t *reply, const char *err)
{
    struct sy_pair *p = arg;
    if (reply == NULL || !sy_cluster_held_recorded(reply))
        sy_log_warn("pair %s: etcd still says the forward instance is paused (an operator's pause the failover "
                    "consumed): %s; a later takeover opens it paused — `start` it there", p->cfg->name,
                    reply == NULL ? err : "this node no longer owns the pair");
}

/* Moves the forward collection past the tail (an operator's pause before the failover included: the failover
 * ran the instance to drain its spool) and lets the reverse write start. */
static int tail_close(struct sy_pair *p, const char *how, const char *position, char *err, size_t errlen)
{
    bool operator_paused = p->forward && sy_instance_state(p->forward) == SY_INST_PAUSED &&
                           strcmp(sy_instance_reason(p->forward), "failover") != 0;
    if (p->forward && sy_instance_state(p->forward) == SY_INST_PAUSED &&
        sy_instance_skip_to(p->forward, position, err, errlen) != 0)
        return -1;
    if (operator_paused && p->election != NULL &&       /* the failover consumed an operator's pause: etcd */
        sy_cluster_held_put(sy_election_etcd(p->election), p->cfg->name, SY_DIR_FORWARD, NULL,  /* forgets it */
                            sy_election_node(p->election), sy_election_owner_token(p->election), NULL,
                            on_held_forgotten, p) != 0)
        sy_log_warn("pair %s: cannot tell etcd that %s is no longer paused (out of memory)", p->cfg->name,
                    sy_instance_id(p->forward));
    json_object_set_new(p->tail, "resolved", json_string(how));
    p->tail_state[0] = '\0';
    p->tail_gen++;
    sy_tail_record(p);                              /* forgotten in etcd (a cluster) */
    if (sy_pair_save(p, err, errlen) != 0)
        return -1;
    const char *code;
    char msg[600];
    if (p->reverse && sy_instance_state(p->reverse) == SY_INST_COLLECTING && p->active_side == SY_SIDE_DR &&
        sy_instance_start_write(p->reverse, &code, msg, sizeof msg) != 0)
        sy_log_warn("pair %s: %s", p->cfg->name, msg);
    sy_log_info("pair %s: tail %s; %s collects from %s", p->cfg->name, how,
                p->forward ? sy_instance_id(p->forward) : "forward", position);
    return 0;
}

/* What status lists of the tail: GTIDs, tables, keys, acknowledged or not (first TAIL_LISTED). */
static void summarize(struct sy_pair *p, const json_t *detail, const char *ledger)
{
    json_t *list = json_array(), *tables = json_object_get(detail, "tables");
    size_t i;
    json_t *txn;
    json_array_foreach(json_object_get(detail, "transactions"), i, txn) {
        if (i >= TAIL_LISTED)
            break;
        /* the transaction's position in the source's terms (an engine may name it too: MariaDB "gtid") */
        const char *position = json_string_value(json_object_get(txn, "position")) ?: "";
        json_t *keys = json_array(), *row;
        size_t k;
        json_array_foreach(json_object_get(txn, "rows"), k, row) {
            if (k >= 20)
                break;
            json_array_append_new(keys, json_pack("{s:O,s:O,s:O}", "table", json_object_get(row, "table"), "op",
                                                  json_object_get(row, "op"), "key", json_object_get(row, "key")));
        }
        bool acked = p->eng->position->covers(ledger, position);
        json_t *gtid = json_object_get(txn, "gtid");
        json_array_append_new(list, json_pack("{s:s,s:O*,s:O,s:o,s:b}", "position", position, "gtid", gtid, "tables",
                                              json_object_get(txn, "tables"), "keys", keys, "acknowledged", acked));
    }
    json_object_set_new(p->tail, "listed", list);
    json_object_set(p->tail, "tables", tables ? tables : json_array());
    json_object_set_new(p->tail, "rows", json_integer(json_integer_value(json_object_get(detail, "rows"))));
}

/* How many transactions the tail holds, and how many the ledger saw acknowledged: from the positions when
 * the engine can tell, else from the transactions tail_read listed. */
static int count(struct sy_pair *p, const json_t *detail, const char *collected, const char *now, const char *ledger,
                 uint64_t *n, uint64_t *acked, json_t *ranges)
{
    if (p->eng->position->tail_count != NULL)
        return p->eng->position->tail_count(collected, now, ledger, n, acked, ranges);
    json_t *txns = json_object_get(detail, "transactions");
    if (!json_is_array(txns))
        return -1;
    size_t i;
    json_t *txn;
    *n = *acked = 0;
    json_array_foreach(txns, i, txn) {
        const char *position = json_string_value(json_object_get(txn, "position")) ?: "";
        (*n)++;
        if (ledger[0] != '\0' && p->eng->position->covers(ledger, position))
            (*acked)++;
    }
    return 0;
}

static void on_found(evutil_socket_t fd, short what, void *arg)
{
    struct tail_job *j = arg;
    struct sy_pair *p = j->p;
    p->tail_job = false;
    if (!acts_on_tail(p)) {                          /* stepped down meanwhile: the new owner finds it */
        job_free(j);
        return;
    }
    if (j->alive && j->rc != 0)
        sy_log_warn("pair %s: the business DB is back but its tail cannot be read yet: %s", p->cfg->name, j->err);
    if (j->alive && j->rc == 0 && strcmp(p->tail_state, "pending") == 0) {
        const char *collected = json_string_value(json_object_get(p->tail, "collected_position")) ?: "";
        const char *ledger = json_string_value(json_object_get(p->tail, "ack_ledger_position")) ?: "";
        uint64_t n = 0, acked = 0;
        json_t *ranges = json_array();
        char err[1024], path[1200];
        if (count(p, j->detail, collected, j->position, ledger, &n, &acked, ranges) != 0) {
            sy_log_error("pair %s: cannot compare positions %s and %s", p->cfg->name, collected, j->position);
            json_decref(ranges);
        } else {
            json_object_set_new(p->tail, "business_position", json_string(j->position));
            json_object_set_new(p->tail, "transactions", json_integer((json_int_t)n));
            json_object_set_new(p->tail, "acknowledged", json_integer((json_int_t)acked));
            json_object_set_new(p->tail, "ranges", ranges);
            if (j->detail)
                summarize(p, j->detail, ledger);
            detail_path(p, path, sizeof path);
            if (n == 0) {
                if (tail_close(p, "empty", j->position, err, sizeof err) != 0)
                    sy_log_error("pair %s: %s", p->cfg->name, err);
            } else if (j->detail && sy_state_write_json(path, j->detail, err, sizeof err) != 0) {
                sy_log_error("pair %s: cannot keep the tail's detail: %s", p->cfg->name, err);
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
    job_free(j);
}

static void on_tail_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sy_pair *p = arg;
    sy_tail_record(p);                              /* a put that failed before */
    if (!acts_on_tail(p) || strcmp(p->tail_state, "pending") != 0 || p->tail_job || p->op != NULL ||
        p->tail == NULL || p->active_side != SY_SIDE_DR)
        return;
    const char *from = json_string_value(json_object_get(p->tail, "collected_position"));
    if (from == NULL || from[0] == '\0') {          /* a record not understood: never "the whole log" */
        static const char bad[] = "the failover's tail record has no collected position: it cannot be found; "
                                  "the forward instance stays paused (see docs/cluster.md)";
        if (json_object_get(p->tail, "error") == NULL) {     /* status shows it with the tail */
            sy_log_error("pair %s: %s", p->cfg->name, bad);
            json_object_set_new(p->tail, "error", json_string(bad));
        }
        return;
    }
    struct tail_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return;
    j->p = p;
    snprintf(j->collected, sizeof j->collected, "%s",
             json_string_value(json_object_get(p->tail, "collected_position")) ?: "");
    json_t *state = json_object_get(p->tail, "collector_state");   /* the record of another node's failover */
    if (json_is_object(state)) {
        snprintf(j->collector_dir, sizeof j->collector_dir, "%s/pairs/%s.tail-collector", p->state_dir,
                 p->cfg->name);
        j->collector_state = json_deep_copy(state);                 /* the thread's own */
    } else {
        sy_instance_dir(p, SY_DIR_FORWARD, j->collector_dir, sizeof j->collector_dir);
    }
    if (job_start(j, find_thread, on_found) != 0)
        job_free(j);
}

int sy_tail_watch_start(struct sy_pair *p)
{
    if (!sy_engine_can_count_tail(p->eng))
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

/* ---- resolving it ------------------------------------------------------------------------------------ */

static void *resolve_thread(void *arg)
{
    struct tail_job *j = arg;
    struct sy_pair *p = j->p;
    j->rc = 0;
    if (j->export_path[0] && sy_tail_export(j->detail, j->export_path, j->err, sizeof j->err) != 0)
        j->rc = -2;
    j->result = json_object();
    if (j->rc == 0 && p->eng->failover->tail_revert(p->cfg, &p->cfg->business, j->detail, j->result, j->err,
                                           sizeof j->err) != 0)
        j->rc = -1;
    if (j->rc == 0 && p->eng->position->current(p->cfg, &p->cfg->business, j->position, sizeof j->position, j->err,
                                               sizeof j->err) != 0)
        j->rc = -1;
    event_active(j->done, 0, 0);
    sy_admin_job_end(); /* last touch of shared state */
    return NULL;
}

static void on_resolved(evutil_socket_t fd, short what, void *arg)
{
    struct tail_job *j = arg;
    struct sy_pair *p = j->p;
    p->tail_job = false;
    const char *how = j->export_path[0] ? "exported and reverted" : "discarded (reverted)";
    char err[1024];
    if (!acts_on_tail(p)) {
        sy_admin_fail(j->req, "owner_lost", "this node stopped owning %s while resolve-tail ran%s: nothing was "
                      "recorded here; give resolve-tail again (it goes to the new owner, which finds the tail anew)",
                      p->cfg->name, j->rc == 0 ? " (business was reverted)" : "");
    } else if (j->rc == -2) {
        sy_admin_fail(j->req, "export_failed", "cannot export the tail: %s (nothing changed)", j->err);
    } else if (j->rc != 0) {
        sy_admin_fail_with(j->req, "revert_failed", json_pack("{s:O}", "result", j->result),
                           "reverting the tail on the business DB failed: %s%s%s (the tail stays open)", j->err,
                           j->export_path[0] ? "; exported to " : "", j->export_path);
    } else if (tail_close(p, how, j->position, err, sizeof err) != 0) {
        sy_admin_fail(j->req, "internal", "%s", err);
    } else {
        json_t *pub = sy_cluster_tail_public(p->tail), *tail = json_deep_copy(pub);
        json_decref(pub);
        json_object_set_new(tail, "revert", json_incref(j->result));
        if (j->export_path[0])
            json_object_set_new(tail, "file", json_string(j->export_path));
        json_object_set_new(tail, "forward_restarts_at", json_string(j->position));
        sy_admin_ok(j->req, json_pack("{s:s,s:o}", "pair", p->cfg->name, "tail", tail));
    }
    job_free(j);
}

void sy_tail_resolve(struct sy_pair *p, struct sy_admin_req *req, const char *export_path, bool discard)
{
    if ((export_path == NULL) == !discard) {
        sy_admin_fail(req, "bad_request", "resolve-tail wants exactly one of --export FILE or --discard");
        return;
    }
    if (export_path != NULL && export_path[0] != '/') {
        sy_admin_fail(req, "bad_request", "--export wants an absolute path (a relative one would land in "
                      "switchyardd's working directory): '%s'", export_path);
        return;
    }
    if (p->tail_state[0] == '\0') {
        sy_admin_fail(req, "bad_state", "%s has no unresolved failover tail", p->cfg->name);
        return;
    }
    if (strcmp(p->tail_state, "open") != 0 || p->tail_job) {
        sy_admin_fail(req, "tail_unresolved", "the business DB of %s has not answered since the failover: the tail "
                                              "is not known yet (status shows it once it is)", p->cfg->name);
        return;
    }
    if (!sy_engine_can_resolve_tail(p->eng)) {
        sy_admin_fail(req, "not_implemented", "engine %s cannot revert a tail yet", sy_engine_name(p->cfg->engine));
        return;
    }
    char path[1200], err[512];
    detail_path(p, path, sizeof path);
    int missing = 0;
    struct tail_job *j = calloc(1, sizeof *j);
    if (j == NULL) {
        sy_admin_fail(req, "internal", "out of memory");
        return;
    }
    j->p = p;
    j->req = req;
    j->detail = sy_state_read_json(path, &missing, err, sizeof err);
    if (j->detail == NULL) {
        sy_admin_fail(req, "internal", "the tail's detail is missing: %s", missing ? path : err);
        job_free(j);
        return;
    }
    snprintf(j->export_path, sizeof j->export_path, "%s", export_path ? export_path : "");
    if (job_start(j, resolve_thread, on_resolved) != 0) {
        sy_admin_fail(req, "internal", "cannot start resolve-tail");
        job_free(j);
    }
}
