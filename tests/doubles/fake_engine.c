/* The fake engine (tests/doubles/fake_engine.h): modules, positions, fencing and a proxy over two
 * in-memory logs. Test code only. */
#include "tests/doubles/fake_engine.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/change.h"
#include "core/instance.h"
#include "core/spool.h"

struct fake_world *fake_world;

void fake_init(void)
{
    fake_world = mmap(NULL, sizeof *fake_world, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (fake_world == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    memset(fake_world, 0, sizeof *fake_world);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&fake_world->mu, &a);
    pthread_mutexattr_destroy(&a);
}

void fake_lock(void)
{
    if (pthread_mutex_lock(&fake.mu) == EOWNERDEAD)
        pthread_mutex_consistent(&fake.mu);
}

void fake_unlock(void)
{
    pthread_mutex_unlock(&fake.mu);
}

static const char origin_of[2] = { 'B', 'D' };

int fake_client_write(enum fake_side side)
{
    fake_lock();
    struct fake_db *db = &fake.db[side];
    int rc = db->down ? -1 : db->fenced || db->n >= FAKE_LOG_MAX ? 0 : 1;
    if (rc == 1) {
        db->log[db->n++] = origin_of[side];
        fake.acked[side] = db->n;
    }
    fake_unlock();
    return rc;
}

uint64_t fake_log_length(enum fake_side side)
{
    fake_lock();
    uint64_t n = fake.db[side].n;
    fake_unlock();
    return n;
}

uint64_t fake_count_origin(enum fake_side side, char origin)
{
    fake_lock();
    uint64_t k = 0;
    for (uint64_t i = 0; i < fake.db[side].n; i++)
        k += fake.db[side].log[i] == origin;
    fake_unlock();
    return k;
}

bool fake_fenced(enum fake_side side)
{
    fake_lock();
    bool f = fake.db[side].fenced;
    fake_unlock();
    return f;
}

/* ---- positions ---------------------------------------------------------------------------------- */

/* The config names business 127.0.0.1:1 and DR 127.0.0.1:2. */
static enum fake_side side_of(const struct sy_endpoint *ep)
{
    return ep->port == 2 ? FAKE_DR : FAKE_BUSINESS;
}

static bool parse_pos(const char *s, uint64_t *out)
{
    char *end;
    if (s == NULL || strncmp(s, "fake:", 5) != 0)
        return false;
    *out = strtoull(s + 5, &end, 10);
    return end != s + 5 && *end == '\0';
}

static void format_pos(uint64_t n, char *out, size_t outlen)
{
    snprintf(out, outlen, "fake:%" PRIu64, n);
}

static int current(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out, size_t outlen, char *err,
                   size_t errlen)
{
    fake_lock();
    int rc = 0;
    if (fake.db[side_of(src)].down || fake.position_fails) {
        snprintf(err, errlen, "fake %s is unreachable", side_of(src) == FAKE_DR ? "DR" : "business");
        rc = -1;
    } else {
        format_pos(fake.db[side_of(src)].n, out, outlen);
    }
    fake_unlock();
    return rc;
}

static bool covers(const char *have, const char *want)
{
    uint64_t h, w;
    return parse_pos(have, &h) && parse_pos(want, &w) && h >= w;
}

static int poll_position(void **handle, const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, char *out,
                         size_t outlen, char *err, size_t errlen)
{
    return current(cfg, src, out, outlen, err, errlen);
}

static void poll_close(void *handle)
{
}

static int tail_count(const char *collected, const char *now, const char *ledger, uint64_t *transactions,
                      uint64_t *acknowledged, json_t *ranges)
{
    uint64_t c, n, l = 0;
    if (!parse_pos(collected, &c) || !parse_pos(now, &n) || (ledger[0] && !parse_pos(ledger, &l)))
        return -1;
    *transactions = n > c ? n - c : 0;
    *acknowledged = l > c ? (l < n ? l : n) - c : 0;
    json_array_append_new(ranges, json_pack("{s:I,s:I}", "from", (json_int_t)c, "to", (json_int_t)n));
    return 0;
}

/* ---- fencing -------------------------------------------------------------------------------------- */

static int fence(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, bool on, int wait_ms, char *pos,
                 size_t poslen, char *err, size_t errlen)
{
    fake_lock();
    struct fake_db *db = &fake.db[side_of(ep)];
    int *failures = on ? &db->fence_failures : &db->unfence_failures;
    int rc = 0;
    if (db->down) {
        snprintf(err, errlen, "fake database unreachable");
        rc = -1;
    } else if (*failures > 0) {
        (*failures)--;
        snprintf(err, errlen, "injected %s failure", on ? "fence" : "unfence");
        rc = -1;
    } else {
        if (on && db->stall_drain && !db->fenced) {
            if (db->n < FAKE_LOG_MAX)
                db->log[db->n++] = origin_of[side_of(ep)];
            fake.db[1 - side_of(ep)].write_blocked = true;
        }
        db->fenced = on;
        if (pos != NULL)
            format_pos(db->n, pos, poslen);
    }
    fake_unlock();
    return rc;
}

static bool alive(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, int timeout_ms)
{
    fake_lock();
    bool up = !fake.db[side_of(ep)].down;
    fake_unlock();
    return up;
}

/* The tail: every business client commit after from_position, one row each. */
static int tail_read(const struct sy_pair_cfg *cfg, const struct sy_endpoint *src, const char *from_position,
                     const char *collector_dir, json_t *out, char *err, size_t errlen)
{
    uint64_t from;
    if (!parse_pos(from_position, &from)) {
        snprintf(err, errlen, "bad position '%s'", from_position);
        return -1;
    }
    json_t *txns = json_array();
    fake_lock();
    struct fake_db *db = &fake.db[side_of(src)];
    for (uint64_t i = from; i < db->n; i++) {
        char id[64];
        format_pos(i + 1, id, sizeof id);
        json_array_append_new(txns, json_pack("{s:s,s:[s],s:[{s:s,s:s,s:{s:I}}]}", "position", id, "tables", "db.t",
                                              "rows", "table", "db.t", "op", "insert", "key", "id",
                                              (json_int_t)(i + 1)));
    }
    fake_unlock();
    json_object_set_new(out, "from", json_string(from_position));
    json_object_set_new(out, "rows", json_integer((json_int_t)json_array_size(txns)));
    json_object_set_new(out, "tables", json_pack("[s]", "db.t"));
    json_object_set_new(out, "transactions", txns);
    return 0;
}

/* Undoes the tail: business's log back to where the tail began. */
static int tail_revert(const struct sy_pair_cfg *cfg, const struct sy_endpoint *ep, const json_t *tail,
                       json_t *result, char *err, size_t errlen)
{
    uint64_t from;
    if (!parse_pos(json_string_value(json_object_get(tail, "from")), &from)) {
        snprintf(err, errlen, "the tail has no start position");
        return -1;
    }
    fake_lock();
    struct fake_db *db = &fake.db[side_of(ep)];
    uint64_t reverted = db->n > from ? db->n - from : 0;
    if (db->n > from)
        db->n = from;
    fake_unlock();
    json_object_set_new(result, "reverted_transactions", json_integer((json_int_t)reverted));
    return 0;
}

/* ---- modules -------------------------------------------------------------------------------------- */

static bool stopping(const struct sy_module_ctx *ctx)
{
    return __atomic_load_n(ctx->stop, __ATOMIC_ACQUIRE) != 0;
}

static void report_position(struct sy_module_report *r, uint64_t seq, uint64_t pos)
{
    pthread_mutex_lock(&r->lock);
    r->spool_seq = seq;
    format_pos(pos, r->position, sizeof r->position);
    r->events++;
    r->lag_ms = 0;
    pthread_mutex_unlock(&r->lock);
}

static int append(const struct sy_module_ctx *ctx, enum sy_change_kind kind, uint64_t pos, uint64_t *seq)
{
    char text[64];
    format_pos(pos, text, sizeof text);
    struct sy_change ch = { .kind = kind, .position = text, .position_len = strlen(text) };
    struct sy_buf b;
    sy_buf_init(&b);
    char err[256];
    int rc = sy_change_encode(&ch, &b) == 0 &&
                     sy_spool_append(ctx->spool, (uint8_t)kind, b.p, b.len, seq, err, sizeof err) == SY_SPOOL_OK &&
                     sy_spool_sync(ctx->spool, err, sizeof err) == SY_SPOOL_OK
                 ? 0
                 : -1;
    sy_buf_fini(&b);
    return rc;
}

static bool is_position_record(uint8_t type, void *arg)
{
    return type == SY_CHANGE_TXN_COMMIT || type == SY_CHANGE_POSITION;
}

/* Where a collection resumes: the spool's last position, else the start position, else 0. */
static uint64_t resume_position(const struct sy_module_ctx *ctx)
{
    uint64_t seq, pos = 0;
    uint8_t type, *payload = NULL;
    size_t len = 0;
    char err[256];
    if (sy_spool_find_last(ctx->spool, is_position_record, NULL, &seq, &type, &payload, &len, err, sizeof err) ==
        SY_SPOOL_OK) {
        struct sy_change_scratch s;
        struct sy_change ch;
        sy_change_scratch_init(&s);
        if (sy_change_decode(payload, len, &s, &ch) == SY_PARSE_OK)
            parse_pos(ch.position, &pos);
        sy_change_scratch_fini(&s);
        free(payload);
        return pos;
    }
    parse_pos(ctx->start_position, &pos);
    return pos;
}

/* After a transaction's TXN_BEGIN: waits while the source's hold_mid_txn knob is set; whether the rest of
 * the transaction arrives (not lose_rest, not stopping). */
static bool rest_arrives(const struct sy_module_ctx *ctx, enum fake_side src)
{
    for (;;) {
        fake_lock();
        bool hold = fake.db[src].hold_mid_txn, lose = fake.db[src].lose_rest;
        fake.db[src].held_mid_txn = hold;
        fake_unlock();
        if (!hold)
            return !lose && !stopping(ctx);
        if (stopping(ctx))
            return false;
        usleep(1000);
    }
}

static void *collection_run(void *arg)
{
    struct sy_module_ctx *ctx = arg;
    enum fake_side src = side_of(ctx->source);
    uint64_t pos = resume_position(ctx), seq = sy_spool_last_seq(ctx->spool);
    report_position(ctx->report, seq, pos);
    sy_module_report_running(ctx->report);
    bool retrying = false;
    while (!stopping(ctx)) {
        fake_lock();
        bool down = fake.db[src].down;
        uint64_t n = fake.db[src].n;
        char origin = pos < n ? fake.db[src].log[pos] : 0;
        fake_unlock();
        if (down) {
            if (!retrying)
                sy_module_report_retrying(ctx->report, "source_unreachable", "fake source is down");
            retrying = true;
            usleep(2000);
            continue;
        }
        if (retrying)
            sy_module_report_running(ctx->report);
        retrying = false;
        if (origin == 0) {
            usleep(1000);
            continue;
        }
        int rc;
        if (origin == origin_of[src]) {
            rc = append(ctx, SY_CHANGE_TXN_BEGIN, pos, &seq);
            if (rc == 0 && !rest_arrives(ctx, src)) {
                if (!stopping(ctx))
                    sy_module_report_retrying(ctx->report, "source_unreachable", "fake source died mid-transaction");
                retrying = true;
                continue; /* read again from pos (a new TXN_BEGIN) once the source answers */
            }
            if (rc == 0)
                rc = append(ctx, SY_CHANGE_TXN_COMMIT, pos + 1, &seq);
        } else {
            rc = append(ctx, SY_CHANGE_POSITION, pos + 1, &seq); /* echo of the other side's writer */
        }
        if (rc != 0) {
            sy_module_report_failed(ctx->report, "spool_error", "cannot append to the spool");
            return NULL;
        }
        pos++;
        report_position(ctx->report, seq, pos);
    }
    return NULL;
}

static void *write_run(void *arg)
{
    struct sy_module_ctx *ctx = arg;
    enum fake_side dst = side_of(ctx->dest), src = side_of(ctx->source);
    int dir = ctx->direction == SY_DIR_FORWARD ? 0 : 1;
    fake_lock();
    uint64_t seq = fake.db[dst].ckpt_seq[dir];
    uint64_t pos = fake.db[dst].ckpt_pos[dir];
    bool has = fake.db[dst].has_ckpt[dir];
    fake_unlock();
    if (has)
        report_position(ctx->report, seq, pos);
    sy_module_report_running(ctx->report);
    struct sy_change_scratch s;
    sy_change_scratch_init(&s);
    bool retrying = false;
    while (!stopping(ctx)) {
        fake_lock();
        bool blocked = fake.db[dst].write_blocked, down = fake.db[dst].down;
        fake_unlock();
        if (down && !retrying)
            sy_module_report_retrying(ctx->report, "dest_unreachable", "fake destination is down");
        else if (!down && retrying)
            sy_module_report_running(ctx->report);
        retrying = down;
        if (blocked || down) {
            usleep(1000);
            continue;
        }
        uint8_t type;
        const uint8_t *payload;
        size_t len;
        char err[256];
        enum sy_spool_rc rc = sy_spool_read(ctx->spool, seq + 1, &type, &payload, &len, 10, err, sizeof err);
        if (rc == SY_SPOOL_EMPTY)
            continue;
        struct sy_change ch;
        if (rc != SY_SPOOL_OK || sy_change_decode(payload, len, &s, &ch) != SY_PARSE_OK) {
            sy_module_report_failed(ctx->report, "spool_error", "cannot read spool record %" PRIu64, seq + 1);
            break;
        }
        seq++;
        if (ch.kind != SY_CHANGE_TXN_COMMIT && ch.kind != SY_CHANGE_POSITION)
            continue;
        parse_pos(ch.position, &pos);
        fake_lock();
        struct fake_db *db = &fake.db[dst];
        if (ch.kind == SY_CHANGE_TXN_COMMIT && db->n < FAKE_LOG_MAX)
            db->log[db->n++] = origin_of[src];
        db->ckpt_seq[dir] = seq;
        db->ckpt_pos[dir] = pos;
        db->has_ckpt[dir] = true;
        fake_unlock();
        report_position(ctx->report, seq, pos);
    }
    sy_change_scratch_fini(&s);
    return NULL;
}

/* Copies the source's log as the destination's (its own clients' entries), then reports the position. */
static void *initial_sync_run(void *arg)
{
    struct sy_module_ctx *ctx = arg;
    enum fake_side src = side_of(ctx->source), dst = side_of(ctx->dest);
    sy_module_report_running(ctx->report);
    fake_lock();
    uint64_t n = fake.db[src].n;
    memcpy(fake.db[dst].log, fake.db[src].log, n);
    fake.db[dst].n = n;
    fake_unlock();
    pthread_mutex_lock(&ctx->report->lock);
    ctx->report->done_rows = ctx->report->total_rows = n;
    format_pos(n, ctx->report->position, sizeof ctx->report->position);
    ctx->report->initial_sync_done = true;
    pthread_mutex_unlock(&ctx->report->lock);
    return NULL;
}

static int precheck(const struct sy_pair_cfg *cfg, enum sy_direction dir, json_t *checks)
{
    fake_lock();
    bool fails = fake.precheck_fails;
    fake_unlock();
    json_array_append_new(checks, json_pack("{s:s,s:s,s:s,s:s}", "name", "fake", "status", fails ? "fail" : "pass",
                                            "detail", fails ? "the test said so" : "ok", "fix",
                                            fails ? "fake_world.precheck_fails = false" : ""));
    return fails ? -1 : 0;
}

static const struct sy_module_ops fake_initial_sync = { "initial_sync", initial_sync_run };
static const struct sy_module_ops fake_collection = { "collection", collection_run };
static const struct sy_module_ops fake_write = { "write", write_run };

static const struct sy_sync_ops fake_sync = {
    .initial_sync = &fake_initial_sync,
    .collection = &fake_collection,
    .write = &fake_write,
    .precheck = precheck,
};
static const struct sy_position_ops fake_position = {
    .current = current,
    .covers = covers,
    .poll = poll_position,
    .poll_close = poll_close,
    .tail_count = tail_count,
};
static const struct sy_failover_ops fake_failover_ops = {
    .fence = fence, .alive = alive, .tail_read = tail_read, .tail_revert = tail_revert,
};

const struct sy_engine_ops fake_engine = {
    .engine = SY_ENGINE_MONGODB, /* any engine but MariaDB: nothing in core/ may care */
    .sync = &fake_sync,
    .position = &fake_position,
    .failover = &fake_failover_ops,
};

/* The same engine without fencing (a server that cannot be made read-only, as FerretDB): switches
 * must answer not_implemented, synchronization must work. */
const struct sy_engine_ops fake_engine_without_failover = {
    .engine = SY_ENGINE_MONGODB,
    .sync = &fake_sync,
    .position = &fake_position,
};

/* ---- the proxy part (on the loop) ------------------------------------------------------------------ */

static struct sy_pair *fake_pair;

static void *proxy_start(struct sy_pair *pair, char *err, size_t errlen)
{
    fake_pair = pair;
    snprintf(pair->listen_addr, sizeof pair->listen_addr, "fake");
    return &fake;
}

static void proxy_stop(void *state)
{
    fake_pair = NULL;
}

static size_t client_count(void *state)
{
    fake_lock();
    size_t n = fake.proxy.sessions;
    fake_unlock();
    return n;
}

static json_t *clients_json(void *state)
{
    return json_array();
}

static void hold_changed(void *state, bool held)
{
    fake_lock();
    if (held) {
        fake.calls.hold_on++;
        fake.proxy.unmovable += fake.proxy.unmovable_at_hold;
        fake.proxy.unmovable_at_hold = 0;
    } else {
        fake.calls.hold_off++;
    }
    fake_unlock();
}

static void switch_warm(void *state, enum sy_side to, bool old_side_alive)
{
    fake_lock();
    fake.calls.warm++;
    fake_unlock();
}

static void switch_progress(void *state, enum sy_side to, struct sy_switch_progress *out)
{
    fake_lock();
    *out = (struct sy_switch_progress){ .sessions = fake.proxy.sessions,
                                        .in_transaction = fake.proxy.in_transaction,
                                        .busy = fake.proxy.busy,
                                        .not_ready = fake.proxy.not_ready,
                                        .warm_failed = fake.proxy.warm_failed,
                                        .state_pending = fake.proxy.state_pending };
    fake_unlock();
}

static json_t *session_list(size_t n, const char *what)
{
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)(i + 1), "user", "app", "peer",
                                              "fake", what, "fake"));
    return list;
}

static json_t *switch_failures(void *state)
{
    fake_lock();
    json_t *list = session_list(fake.proxy.warm_failed, "error");
    fake_unlock();
    return list;
}

static size_t switch_abort_transactions(void *state)
{
    fake_lock();
    fake.calls.abort++;
    size_t n = fake.proxy.in_transaction;
    if (fake.proxy.abort_ends_transactions) {
        fake.calls.aborted += n;
        fake.proxy.in_transaction = 0;
    } else {
        n = 0;
    }
    fake_unlock();
    return n;
}

static json_t *switch_unmovable(void *state)
{
    fake_lock();
    json_t *list = session_list(fake.proxy.unmovable, "reason");
    fake_unlock();
    return list;
}

static size_t switch_close_unmovable(void *state)
{
    fake_lock();
    fake.calls.close_unmovable++;
    size_t n = fake.proxy.unmovable;
    fake.proxy.unmovable = 0;
    fake_unlock();
    return n;
}

static void switch_unwarm(void *state)
{
    fake_lock();
    fake.calls.unwarm++;
    fake_unlock();
}

static size_t switch_flip(void *state, enum sy_side to)
{
    fake_lock();
    fake.calls.flip++;
    fake.calls.flipped_to = to;
    size_t n = fake.proxy.sessions;
    fake_unlock();
    return n;
}

static void ack_ledger(void *state, enum sy_side side, char *out, size_t outlen)
{
    fake_lock();
    uint64_t n = fake.acked[side == SY_SIDE_DR ? FAKE_DR : FAKE_BUSINESS];
    fake_unlock();
    if (n == 0)
        out[0] = '\0';
    else
        format_pos(n, out, outlen);
}

static json_t *client_errors(void *state)
{
    return json_object();
}

const struct sy_proxy_protocol fake_proxy = {
    .engine = SY_ENGINE_MONGODB, /* any engine but MariaDB: nothing in core/ may care */
    .start = proxy_start,
    .stop = proxy_stop,
    .client_count = client_count,
    .clients_json = clients_json,
    .hold_changed = hold_changed,
    .switch_warm = switch_warm,
    .switch_progress = switch_progress,
    .switch_failures = switch_failures,
    .switch_abort_transactions = switch_abort_transactions,
    .switch_unmovable = switch_unmovable,
    .switch_close_unmovable = switch_close_unmovable,
    .switch_unwarm = switch_unwarm,
    .switch_flip = switch_flip,
    .ack_ledger = ack_ledger,
    .client_errors = client_errors,
};
