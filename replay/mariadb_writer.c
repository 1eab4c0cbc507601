/* Incremental Write for MariaDB: the write module's thread (the coordinator) reads the instance's
 * spool, gathers each source transaction (payload copies) and hands it to one of `apply_threads`
 * workers, each with its own destination connection:
 *
 *   spool -> coordinator -- txn --> worker queue -> group of txns -> one destination transaction
 *              |  keys in flight (db, table, key bytes) -> latest holder (worker, commit seq)
 *              '- in-flight FIFO in spool order -> low-watermark -> checkpoint row, report
 *
 * The coordinator hands transactions out in blocks of one group's size, one worker after the other.
 * Per-key order: a transaction sharing a key with in-flight transactions of other workers depends
 * on the latest of them per worker; a worker takes a transaction into a group only once those are
 * in groups their workers took, renders the group's SQL, and sends it only once they are committed
 * (so a group waits only for groups taken before it: no cycle). Workers thus render and commit
 * while another one's group runs on the destination, and groups without shared keys run at once.
 * A worker takes every queued transaction it may (up to a group size) and applies them in ONE
 * destination transaction that also records their TXN_COMMIT seqs in switchyard.applied (as ranges
 * of transactions consecutive in spool order: about one row per group); it
 * commits as soon as it has nothing more it may take (no waiting for more). The low-watermark W is the last spool record such
 * that everything up to it is committed; the published position is W's. The checkpoint row holds W
 * (written by the coordinator on its control connection, together with deleting the applied rows
 * up to W), so after a kill -9 a restart applies from W + 1 and skips exactly the transactions
 * listed in switchyard.applied: nothing twice, nothing skipped.
 *
 * DDL is a barrier: all workers idle, then the DDL transaction alone on the control connection
 * (checkpoint marks it pending, it runs in its IF [NOT] EXISTS form, then the checkpoint moves past
 * it; a pending DDL found at start is re-run, tolerating "already done" errors). Any transient
 * error ends the session (all connections) and it starts again from the checkpoint with backoff. */
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <mysql.h>

#include "core/change.h"
#include "core/commit_wait.h"
#include "core/engine.h"
#include "core/failpoint.h"
#include "core/instance.h"
#include "core/log.h"
#include "core/pair.h"
#include "engine/mariadb_client.h"
#include "engine/mariadb_gtid_set.h"
#include "core/spool.h"
#include "core/write.h"
#include "replay/mariadb_apply.h"
#include "replay/mariadb_checkpoint.h"
#include "replay/mariadb_fence.h"
#include "replay/mariadb_modules.h"

#define WR_MAX_BACKOFF_MS 2000
#define WR_MAX_WORKERS SY_APPLY_THREADS_MAX
#define WR_GROUP_MAX_TXNS 512        /* source transactions per destination transaction */
#define WR_GROUP_MAX_ROWS 4000
#define WR_INFLIGHT_MAX_TXNS 8192    /* read ahead of the watermark at most this much */
#define WR_INFLIGHT_MAX_BYTES (64u << 20)
#define WR_FLUSH_MS 1000             /* checkpoint row at least this often while busy */
#define WR_DEADLOCK_RETRIES 5
#define WR_STUCK_MS 100              /* a worker's group running this long may be stuck on a lock: the
                                        next transactions go to the others */
#define WR_QUEUE_MAX_TXNS (2 * WR_GROUP_MAX_TXNS) /* handed to one worker, not yet taken: shallow
                                        queues keep few keys in flight, so few transactions share one */

/* Keys in flight: open addressing, linear probing, backward-shift deletion. */
struct key_slot {
    uint64_t key;
    uint64_t seq;     /* commit seq of the latest in-flight transaction holding it */
    int32_t owner;    /* that transaction's worker */
    uint32_t count;   /* in-flight references; 0 = empty slot */
};
struct key_map {
    struct key_slot *s; /* owned */
    size_t cap;         /* power of two */
    size_t n;
};

struct writer;

struct worker {
    struct writer *w;          /* ref */
    int id;
    pthread_t thread;
    bool started;
    struct sy_apply_conn ac;   /* its destination connection */
    pthread_cond_t cv;         /* queue not empty, or abort */
    struct sy_apply_txn *q_head, *q_tail; /* under w->mu: handed, not yet taken */
    size_t q_txns;
    size_t inprog_txns;        /* under w->mu: in the group it is applying */
    uint64_t group_start_ms;   /* under w->mu: when it took that group */
    unsigned ddl_gen;          /* plans are from this DDL generation */
    uint64_t rows;             /* under w->mu: its ac.rows after its last group */
    uint64_t conflicts;        /* under w->mu: its ac.conflicts_overwritten after its last group */
    uint64_t taken_seq;        /* under w->mu: every transaction handed to it up to this commit seq is
                                  in a group it took (its queue is in spool order) */
    uint64_t committed_seq;    /* under w->mu: ... is committed */
};

struct writer {
    struct sy_module_ctx *ctx;
    const struct sy_pair_cfg *cfg;
    struct sy_apply_conn ctl;          /* control connection: checkpoint, plans for keys, DDL */
    struct worker *workers;            /* owned: n_workers */
    int n_workers;
    int next_worker;                   /* the worker whose block is being filled */
    size_t block_txns, block_rows;     /* handed to it in this block */

    pthread_mutex_t mu;                /* guards the worker queues, done list, abort, errors, ddl_gen */
    pthread_cond_t coord_cv;           /* a worker finished a group */
    struct sy_apply_txn *done_head;    /* finished by workers, keys not yet released */
    bool abort;                        /* workers stop after their current group */
    int worker_rc;                     /* first worker failure: SY_APPLY_* */
    uint64_t worker_fenced_by;         /* worker_rc SY_APPLY_FENCED: the token the destination names */
    bool fenced;                       /* another node owns the pair: nothing more is committed (fenced()) */
    char worker_reason[32];
    char worker_err[1024];
    unsigned ddl_gen;

    /* coordinator only */
    struct sy_apply_txn *fifo_head, *fifo_tail; /* in-flight, spool order */
    size_t inflight_txns, inflight_bytes;
    struct sy_apply_txn *blocked;      /* read, waiting for its keys to free up (not in the FIFO) */
    struct key_map keys;
    uint64_t watermark;                /* every record <= it is committed */
    char position[1024];               /* source position at the watermark */
    uint64_t durable_seq;              /* the checkpoint row's spool_seq */
    uint64_t last_flush_ms;
    uint64_t *gc;                      /* owned: applied seqs <= watermark still in switchyard.applied */
    size_t n_gc, cap_gc;
    struct applied_range {
        uint64_t first, last;
    } *skip;                           /* owned: ranges applied above the checkpoint before a restart */
    size_t n_skip, i_skip;
    uint64_t n_read;                   /* transactions read (their `ord`) */
    uint64_t rows_before;              /* rows of earlier sessions */
    uint64_t conflicts_before;         /* conflicts overwritten in earlier sessions */
    struct sy_gtid_set until;          /* ctx->overwrite_until parsed (has_until): a takeover's idempotent replay */
    bool has_until;
    bool until_at_first_change;        /* overwrite_until is SY_UNTIL_FIRST_CHANGE: until is read from the
                                          source before the first change is dispatched (resolve_until) */
    uint64_t txn_time_ms;
    bool failed;
};

static uint64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static bool stopping(const struct writer *w)
{
    return __atomic_load_n(w->ctx->stop, __ATOMIC_ACQUIRE) != 0;
}

static void fail(struct writer *w, const char *reason, const char *fmt, ...) SY_PRINTF(3, 4);
static void fenced(struct writer *w, const char *why, uint64_t newer);
static void fail(struct writer *w, const char *reason, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sy_module_report_failed(w->ctx->report, reason, "%s", msg);
    w->failed = true;
}

/* Another cluster node owns the pair now (replay/mariadb_fence.h): the transaction was rolled back; the
 * write stops for good, never retried as a conflict or a lost connection. */
static void fenced(struct writer *w, const char *why, uint64_t newer)
{
    if (w->fenced)
        return;
    w->fenced = true;
    w->failed = true;
    sy_write_fenced(w->ctx, newer, why);
}

/* The fence on the control connection before it commits: 0, or -1 (fenced and reported, or c->err). */
static int ctl_fence(struct writer *w)
{
    int rc = sy_apply_fence(&w->ctl, true);
    if (rc == SY_APPLY_FENCED)
        fenced(w, w->ctl.err, w->ctl.fenced_by);
    return rc == 0 ? 0 : -1;
}

/* ---- transactions ----------------------------------------------------------------------------- */

static struct sy_apply_txn *txn_new(uint64_t first_seq)
{
    struct sy_apply_txn *tx = calloc(1, sizeof *tx);
    if (tx) {
        tx->first_seq = first_seq;
        tx->worker = -1;
    }
    return tx;
}

static void txn_free(struct sy_apply_txn *tx)
{
    if (tx == NULL)
        return;
    free(tx->position);
    free(tx->buf);
    free(tx->recs);
    free(tx->keys);
    free(tx);
}

static int txn_add_rec(struct sy_apply_txn *tx, uint64_t seq, const uint8_t *p, size_t len)
{
    if (sy_grow((void **)&tx->recs, &tx->cap_recs, tx->n_recs + 1, sizeof *tx->recs, 8) != 0)
        return -1;
    if (tx->cap - tx->len < len) {
        size_t cap = tx->cap ? tx->cap : 512;
        while (cap - tx->len < len)
            cap *= 2;
        uint8_t *n = realloc(tx->buf, cap);
        if (n == NULL)
            return -1;
        tx->buf = n;
        tx->cap = cap;
    }
    memcpy(tx->buf + tx->len, p, len);
    tx->recs[tx->n_recs++] = (struct sy_apply_rec){ .seq = seq, .off = tx->len, .len = len };
    tx->len += len;
    return 0;
}

static int txn_add_key(struct sy_apply_txn *tx, uint64_t key)
{
    for (size_t i = tx->n_keys; i > 0 && i + 8 > tx->n_keys; i--) /* cheap dedup of the recent ones */
        if (tx->keys[i - 1] == key)
            return 0;
    if (sy_grow((void **)&tx->keys, &tx->cap_keys, tx->n_keys + 1, sizeof *tx->keys, 8) != 0)
        return -1;
    tx->keys[tx->n_keys++] = key;
    return 0;
}

/* ---- keys in flight ----------------------------------------------------------------------------- */

static struct key_slot *keys_find(struct key_map *m, uint64_t key)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = key & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->s[i].count == 0)
            return NULL;
        if (m->s[i].key == key)
            return &m->s[i];
    }
}

static int keys_grow(struct key_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 4096;
    struct key_slot *s = calloc(cap, sizeof *s);
    if (s == NULL)
        return -1;
    for (size_t j = 0; j < m->cap; j++) {
        if (m->s[j].count == 0)
            continue;
        size_t i = m->s[j].key & (cap - 1);
        while (s[i].count)
            i = (i + 1) & (cap - 1);
        s[i] = m->s[j];
    }
    free(m->s);
    m->s = s;
    m->cap = cap;
    return 0;
}

static int keys_acquire(struct key_map *m, uint64_t key, int owner, uint64_t seq)
{
    struct key_slot *k = keys_find(m, key);
    if (k) {
        k->owner = owner;
        k->seq = seq;
        k->count++;
        return 0;
    }
    if ((m->n + 1) * 2 > m->cap && keys_grow(m) != 0)
        return -1;
    size_t i = key & (m->cap - 1);
    while (m->s[i].count)
        i = (i + 1) & (m->cap - 1);
    m->s[i] = (struct key_slot){ .key = key, .seq = seq, .owner = owner, .count = 1 };
    m->n++;
    return 0;
}

static void keys_release(struct key_map *m, uint64_t key)
{
    struct key_slot *k = keys_find(m, key);
    if (k == NULL || --k->count > 0)
        return;
    /* backward-shift deletion keeps every probe chain unbroken */
    size_t i = (size_t)(k - m->s), j = i;
    for (;;) {
        j = (j + 1) & (m->cap - 1);
        if (m->s[j].count == 0)
            break;
        size_t home = m->s[j].key & (m->cap - 1);
        if (((j - home) & (m->cap - 1)) >= ((j - i) & (m->cap - 1))) {
            m->s[i] = m->s[j];
            i = j;
        }
    }
    m->s[i].count = 0;
    m->n--;
}

/* ---- workers -------------------------------------------------------------------------------------- */

/* Under w->mu: the transactions of other workers that tx shares keys with are in groups those
 * workers took (taken) or committed (!taken). A group takes a transaction only when its dependencies
 * are taken, so every group waits only for groups taken before it: no cycle. */
static bool deps_met(const struct writer *w, const struct sy_apply_txn *tx, bool taken)
{
    for (uint32_t i = 0; i < tx->n_deps; i++) {
        const struct worker *o = &w->workers[tx->dep_worker[i]];
        if ((taken ? o->taken_seq : o->committed_seq) < tx->dep_seq[i])
            return false;
    }
    return true;
}

struct group_ref {
    struct worker *wk;
    struct sy_apply_txn *const *txs;
    size_t n;
    bool ready;          /* group_ready said yes: past the stop checks, its statements may be sent */
};

/* Before a group's first statement is sent: waits until every transaction it depends on is
 * committed (its SQL was rendered meanwhile). 0, or -1 when the workers stop. */
static int group_ready(void *arg)
{
    struct group_ref *g = arg;
    struct writer *w = g->wk->w;
    int rc = -1;
    pthread_mutex_lock(&w->mu);
    while (!w->abort) {
        size_t k = 0;
        while (k < g->n && deps_met(w, g->txs[k], false))
            k++;
        if (k == g->n) {
            rc = 0;
            break;
        }
        pthread_cond_wait(&g->wk->cv, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    if (rc == 0) /* tests: a group taken and past the stop checks, its statements not sent yet */
        sy_failpoint_stall("writer_group_taken");
    g->ready = rc == 0;
    return rc;
}

/* Wakes the other workers: a group was taken or committed. Under w->mu. */
static void wake_others(struct writer *w, const struct worker *wk)
{
    for (int i = 0; i < w->n_workers; i++)
        if (i != wk->id)
            pthread_cond_signal(&w->workers[i].cv);
}

/* Whether tx lies in a takeover's idempotent replay (core/takeover.h): at or before overwrite_until, where
 * the old owner may have applied it already — a conflict there is overwritten, whatever on_conflict says. */
static bool in_takeover_replay(const struct writer *w, const struct sy_apply_txn *tx)
{
    struct sy_gtid_set after;
    return w->has_until && tx->position != NULL && sy_gtid_set_parse(tx->position, strlen(tx->position), &after) &&
           sy_gtid_set_covers(&w->until, &after);
}

/* Applies the group row by row with prepared statements (exact conflict reports). */
static int apply_rows(struct worker *wk, struct sy_apply_txn *const *txs, size_t n, char *reason, size_t rlen)
{
    struct sy_apply_conn *ac = &wk->ac;
    for (size_t k = 0; k < n; k++) {
        const struct sy_apply_txn *tx = txs[k];
        sy_apply_txn_reset(ac);
        ac->overwrite_txn = in_takeover_replay(wk->w, tx);
        for (size_t i = 0; i < tx->n_recs; i++) {
            const struct sy_apply_rec *rec = &tx->recs[i];
            struct sy_change ch;
            int rc = 0;
            if (sy_change_decode(tx->buf + rec->off, rec->len, &ac->scratch, &ch) != SY_PARSE_OK) {
                snprintf(ac->err, sizeof ac->err, "spool record %llu does not decode", (unsigned long long)rec->seq);
                rc = SY_APPLY_HARD;
            } else if (ch.kind == SY_CHANGE_TABLE) {
                rc = sy_apply_table(ac, &ch.u.table);
            } else if (ch.kind == SY_CHANGE_ROW) {
                rc = sy_apply_row(ac, &ch.u.row, rec->seq, tx->gtid);
            }
            if (rc == SY_APPLY_CONFLICT) {
                snprintf(reason, rlen, "conflict");
                return rc;
            }
            if (rc == SY_APPLY_HARD) {
                char msg[1024];
                snprintf(msg, sizeof msg, "source transaction %s (spool seq %llu): %s", tx->gtid,
                         (unsigned long long)rec->seq, ac->err);
                snprintf(ac->err, sizeof ac->err, "%s", msg);
                snprintf(reason, rlen, "apply_failed");
                return rc;
            }
            if (rc != 0)
                return SY_APPLY_TRANSIENT;
        }
    }
    sy_apply_txn_reset(ac);
    return 0;
}

/* The group's TXN_COMMIT seqs, in the group's own transaction: one row per run of transactions
 * consecutive in spool order (no other transaction committed between them, so [first, last] holds
 * exactly this run's commits). The run's last transaction carries the row's key for its deletion. */
static int record_applied(struct worker *wk, struct sy_apply_txn *const *txs, size_t n)
{
    struct sy_apply_conn *ac = &wk->ac;
    char *eid = sy_mariadb_escape(ac->conn, ac->ctx->instance_id);
    struct sy_buf *b = &ac->sql;
    sy_buf_reset(b);
    static const char head[] = "INSERT INTO " SY_SCHEMA ".applied (instance, spool_seq, last_seq) VALUES ";
    sy_buf_add(b, head, sizeof head - 1);
    for (size_t k = 0, rows = 0; k < n; k++) {
        size_t j = k;
        while (j + 1 < n && txs[j + 1]->ord == txs[j]->ord + 1)
            j++;
        char v[400];
        int len = snprintf(v, sizeof v, "%s('%s',%llu,%llu)", rows++ ? "," : "", eid ? eid : "",
                           (unsigned long long)txs[k]->commit_seq, (unsigned long long)txs[j]->commit_seq);
        sy_buf_add(b, v, (size_t)len);
        for (size_t i = k; i < j; i++)
            txs[i]->applied_row = 0;
        txs[j]->applied_row = txs[k]->commit_seq;
        k = j;
    }
    free(eid);
    if (b->oom || mysql_real_query(ac->conn, (const char *)b->p, (unsigned long)b->len) != 0) {
        snprintf(ac->err, sizeof ac->err, "recording applied transactions: %u %s", mysql_errno(ac->conn),
                 mysql_error(ac->conn));
        return sy_mariadb_is_transient(mysql_errno(ac->conn)) ? SY_APPLY_TRANSIENT : SY_APPLY_HARD;
    }
    return 0;
}

static int apply_group(struct worker *wk, struct sy_apply_txn *const *txs, size_t n, char *reason, size_t rlen)
{
    struct sy_apply_conn *ac = &wk->ac;
    struct group_ref g = { .wk = wk, .txs = txs, .n = n };
    for (int attempt = 0;; attempt++) {
        uint64_t rows0 = ac->rows, conflicts0 = ac->conflicts_overwritten;
        g.ready = false;
        /* the batch applies a group only when nothing conflicts; a conflict sends the group row by row,
         * which fails naming it (on_conflict = fail) or overwrites and counts it (overwrite) */
        int rc = sy_apply_batch(ac, txs, n, group_ready, &g);
        if (rc == -3) {
            sy_log_debug("%s: worker %d: a group of %zu transactions goes row by row: %s", ac->ctx->instance_id,
                         wk->id, n, ac->err);
            sy_apply_rollback(ac);
            ac->rows = rows0;
            rc = group_ready(&g) == 0 ? apply_rows(wk, txs, n, reason, rlen) : SY_APPLY_TRANSIENT;
        } else if (rc != 0) {
            rc = SY_APPLY_TRANSIENT;
        }
        /* a group without statements still waits for its dependencies; one whose statements went commits
           even if a stop came meanwhile (the fence, not the stop, keeps a stale owner out) */
        if (rc == 0 && !g.ready && group_ready(&g) != 0)
            rc = SY_APPLY_TRANSIENT;
        if (rc == 0)
            rc = record_applied(wk, txs, n);
        if (rc == 0)
            rc = sy_apply_fence(ac, false); /* shared lock: the workers commit in parallel */
        if (rc == 0) {
            sy_failpoint_stall("writer_fence_read"); /* tests: the checkpoint row's shared lock held */
            sy_failpoint("writer_before_commit");
            rc = sy_apply_commit(ac) == 0 ? 0 : SY_APPLY_TRANSIENT;
        }
        if (rc == 0)
            return 0;
        sy_apply_rollback(ac);
        ac->rows = rows0;
        ac->conflicts_overwritten = conflicts0;
        pthread_mutex_lock(&wk->w->mu);
        bool stop = wk->w->abort;
        pthread_mutex_unlock(&wk->w->mu);
        /* a deadlock or lock wait timeout leaves the connection usable: try the group again */
        if (stop || rc != SY_APPLY_TRANSIENT || attempt >= WR_DEADLOCK_RETRIES || mysql_ping(ac->conn) != 0)
            return rc;
        sy_log_info("%s: worker %d: group of %zu transactions retried: %s", ac->ctx->instance_id, wk->id, n,
                    ac->err);
    }
}

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    struct writer *w = wk->w;
    struct sy_apply_txn **group = calloc(WR_GROUP_MAX_TXNS, sizeof *group);
    mysql_thread_init();
    pthread_mutex_lock(&w->mu);
    while (group != NULL) {
        while ((wk->q_head == NULL || !deps_met(w, wk->q_head, true)) && !w->abort)
            pthread_cond_wait(&wk->cv, &w->mu);
        if (w->abort)
            break;
        size_t n = 0, rows = 0;
        while (wk->q_head && n < WR_GROUP_MAX_TXNS && (n == 0 || rows + wk->q_head->n_rows <= WR_GROUP_MAX_ROWS) &&
               deps_met(w, wk->q_head, true)) {
            struct sy_apply_txn *tx = wk->q_head;
            wk->q_head = tx->next_q;
            if (wk->q_head == NULL)
                wk->q_tail = NULL;
            wk->q_txns--;
            tx->next_q = NULL;
            group[n++] = tx;
            rows += tx->n_rows;
        }
        wk->inprog_txns = n;
        wk->group_start_ms = wall_ms();
        wk->taken_seq = group[n - 1]->commit_seq;
        wake_others(w, wk);
        unsigned gen = w->ddl_gen;
        pthread_mutex_unlock(&w->mu);
        if (gen != wk->ddl_gen) { /* table layouts may have changed */
            sy_apply_plans_clear(&wk->ac);
            wk->ddl_gen = gen;
        }
        char reason[32] = "";
        int rc = apply_group(wk, group, n, reason, sizeof reason);
        pthread_mutex_lock(&w->mu);
        wk->rows = wk->ac.rows;
        wk->conflicts = wk->ac.conflicts_overwritten;
        wk->inprog_txns = 0;
        if (rc == 0) {
            wk->committed_seq = group[n - 1]->commit_seq;
            for (size_t i = n; i > 0; i--) { /* `done` is the coordinator's to set (collect_done) */
                group[i - 1]->next_q = w->done_head;
                w->done_head = group[i - 1];
            }
            wake_others(w, wk); /* a group may wait for this one */
        } else if (w->abort && rc != SY_APPLY_FENCED) {
            break; /* stopped while waiting for another worker: whoever set abort reports */
        } else { /* a fence is reported even during a stop: the owner must learn it lost the pair */
            if (w->worker_rc == 0) {
                w->worker_rc = rc;
                w->worker_fenced_by = wk->ac.fenced_by;
                snprintf(w->worker_reason, sizeof w->worker_reason, "%s",
                         rc == SY_APPLY_FENCED ? "fenced" : reason);
                snprintf(w->worker_err, sizeof w->worker_err, "%s", wk->ac.err);
            }
            w->abort = true;
        }
        pthread_cond_signal(&w->coord_cv);
        sy_spool_wake(w->ctx->spool); /* the coordinator may be waiting for the spool */
    }
    pthread_mutex_unlock(&w->mu);
    free(group);
    mysql_thread_end();
    return NULL;
}

static void workers_stop(struct writer *w)
{
    pthread_mutex_lock(&w->mu);
    w->abort = true;
    for (int i = 0; i < w->n_workers; i++)
        pthread_cond_signal(&w->workers[i].cv);
    pthread_mutex_unlock(&w->mu);
    for (int i = 0; i < w->n_workers; i++) {
        struct worker *wk = &w->workers[i];
        if (wk->started)
            pthread_join(wk->thread, NULL);
        wk->started = false;
        w->rows_before += wk->ac.rows;
        w->conflicts_before += wk->ac.conflicts_overwritten;
        wk->ac.rows = wk->ac.conflicts_overwritten = 0;
        wk->rows = wk->conflicts = 0;
        wk->q_head = wk->q_tail = NULL;
        wk->q_txns = wk->inprog_txns = 0;
        wk->taken_seq = wk->committed_seq = 0;
        sy_apply_conn_close(&wk->ac);
    }
}

/* ---- watermark and checkpoint ------------------------------------------------------------------- */

static void publish(struct writer *w)
{
    uint64_t rows = w->rows_before + w->ctl.rows, conflicts = w->conflicts_before + w->ctl.conflicts_overwritten;
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < w->n_workers; i++) {
        rows += w->workers[i].rows;
        conflicts += w->workers[i].conflicts;
    }
    pthread_mutex_unlock(&w->mu);
    sy_write_report(w->ctx, w->position, w->watermark, rows, conflicts, w->txn_time_ms);
    /* commit_wait = applied: everything up to the position is committed on the destination */
    if (w->position[0] != '\0')
        sy_commit_wait_publish(w->ctx->commit_wait, w->ctx->source_side, true, w->position);
}

static int gc_add(struct writer *w, uint64_t seq)
{
    if (sy_grow((void **)&w->gc, &w->cap_gc, w->n_gc + 1, sizeof *w->gc, 1024) != 0)
        return -1;
    w->gc[w->n_gc++] = seq;
    return 0;
}

/* Releases the keys of finished transactions and moves the watermark over the done FIFO head. */
static void collect_done(struct writer *w)
{
    pthread_mutex_lock(&w->mu);
    struct sy_apply_txn *d = w->done_head;
    w->done_head = NULL;
    pthread_mutex_unlock(&w->mu);
    for (; d; d = d->next_q) {
        for (size_t i = 0; i < d->n_keys; i++)
            keys_release(&w->keys, d->keys[i]);
        d->done = true;
    }
    bool moved = false;
    while (w->fifo_head && w->fifo_head->done) {
        struct sy_apply_txn *tx = w->fifo_head;
        w->fifo_head = tx->next;
        if (w->fifo_head == NULL)
            w->fifo_tail = NULL;
        w->watermark = tx->commit_seq;
        snprintf(w->position, sizeof w->position, "%s", tx->position ? tx->position : "");
        if (tx->source_time_ms)
            w->txn_time_ms = tx->source_time_ms;
        if (tx->applied_row && gc_add(w, tx->applied_row) != 0)
            sy_log_warn("%s: out of memory: switchyard.applied keeps a row", w->ctx->instance_id);
        w->inflight_txns--;
        w->inflight_bytes -= tx->cap;
        txn_free(tx);
        moved = true;
    }
    if (moved)
        publish(w);
}

/* Writes the watermark into the checkpoint row and deletes the applied rows it covers. */
static int flush_checkpoint(struct writer *w)
{
    if (w->fenced)
        return -1;
    if (w->watermark <= w->durable_seq && w->n_gc == 0)
        return 0;
    sy_failpoint_stall("writer_checkpoint_flush");
    struct sy_apply_conn *c = &w->ctl;
    if (sy_apply_checkpoint(c, w->watermark, w->position, 0) != 0)
        return -1;
    char *eid = sy_mariadb_escape(c->conn, w->ctx->instance_id);
    for (size_t i = 0; i < w->n_gc;) {
        struct sy_buf *b = &c->sql;
        sy_buf_reset(b);
        char head[400];
        int len = snprintf(head, sizeof head, "DELETE FROM " SY_SCHEMA ".applied WHERE instance='%s' AND spool_seq IN (",
                           eid ? eid : "");
        sy_buf_add(b, head, (size_t)len);
        for (size_t k = 0; k < 4096 && i < w->n_gc; k++, i++) {
            char v[32];
            len = snprintf(v, sizeof v, "%s%llu", k ? "," : "", (unsigned long long)w->gc[i]);
            sy_buf_add(b, v, (size_t)len);
        }
        sy_buf_add(b, ")", 1);
        if (b->oom || mysql_real_query(c->conn, (const char *)b->p, (unsigned long)b->len) != 0) {
            snprintf(c->err, sizeof c->err, "checkpoint: %u %s", mysql_errno(c->conn), mysql_error(c->conn));
            free(eid);
            return -1;
        }
    }
    free(eid);
    if (ctl_fence(w) != 0 || sy_apply_commit(c) != 0)
        return -1;
    w->durable_seq = w->watermark;
    w->n_gc = 0;
    w->last_flush_ms = wall_ms();
    char terr[256];
    if (sy_spool_truncate_below(w->ctx->spool, w->durable_seq, terr, sizeof terr) != SY_SPOOL_OK)
        sy_log_warn("%s: spool truncate: %s", w->ctx->instance_id, terr);
    return 0;
}

static void fifo_push(struct writer *w, struct sy_apply_txn *tx)
{
    tx->next = NULL;
    if (w->fifo_tail)
        w->fifo_tail->next = tx;
    else
        w->fifo_head = tx;
    w->fifo_tail = tx;
    w->inflight_txns++;
    w->inflight_bytes += tx->cap;
}

static void fifo_free(struct writer *w)
{
    while (w->fifo_head) {
        struct sy_apply_txn *tx = w->fifo_head;
        w->fifo_head = tx->next;
        txn_free(tx);
    }
    w->fifo_tail = NULL;
    w->inflight_txns = w->inflight_bytes = 0;
    txn_free(w->blocked);
    w->blocked = NULL;
    w->done_head = NULL; /* its entries were in the FIFO */
    free(w->keys.s);
    memset(&w->keys, 0, sizeof w->keys);
}

/* Waits for a worker to finish something (or a timeout). */
static void wait_workers(struct writer *w, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&w->mu);
    if (w->done_head == NULL && w->worker_rc == 0)
        pthread_cond_timedwait(&w->coord_cv, &w->mu, &ts);
    pthread_mutex_unlock(&w->mu);
}

/* ---- dispatch ------------------------------------------------------------------------------------ */

/* Under w->mu: wk's group has run for WR_STUCK_MS (it may wait for a lock held outside). */
static bool stuck(const struct worker *wk, uint64_t now)
{
    return wk->inprog_txns > 0 && now - wk->group_start_ms >= WR_STUCK_MS;
}

/* Hands tx to a worker: true when handed (it is then in the FIFO), false when its worker's queue is
 * full (or out of memory, or its keys are held by more than SY_APPLY_MAX_DEPS workers): try again
 * after a worker finished something. A transaction whose keys in-flight ones hold goes to the worker
 * of the latest of them (its queue is applied in order) while that queue has room; every other
 * holder's latest transaction becomes a dependency: the worker starts tx only once those are
 * committed (deps_met), so per-key order holds across workers without stopping the reading. */
static bool try_dispatch(struct writer *w, struct sy_apply_txn *tx)
{
    int hw[SY_APPLY_MAX_DEPS];
    uint64_t hs[SY_APPLY_MAX_DEPS];
    uint32_t nh = 0;
    bool too_many = false;
    for (size_t i = 0; i < tx->n_keys; i++) {
        const struct key_slot *k = keys_find(&w->keys, tx->keys[i]);
        if (k == NULL)
            continue;
        uint32_t j = 0;
        while (j < nh && hw[j] != k->owner)
            j++;
        if (j == nh) {
            if (nh == SY_APPLY_MAX_DEPS) {
                too_many = true;
                continue;
            }
            hw[nh] = k->owner;
            hs[nh++] = k->seq;
        } else if (k->seq > hs[j]) {
            hs[j] = k->seq;
        }
    }
    if (too_many)
        return false; /* more workers than dependencies fit: wait until some are done */
    while ((w->keys.n + tx->n_keys) * 2 > w->keys.cap) /* keys_acquire below cannot fail */
        if (keys_grow(&w->keys) != 0)
            return false;
    uint64_t now = wall_ms();
    int owner;
    pthread_mutex_lock(&w->mu);
    if (nh == 1 && stuck(&w->workers[hw[0]], now)) {
        owner = hw[0]; /* behind a group that may wait for a lock: keep the others free of it */
    } else {
        if (w->block_txns >= WR_GROUP_MAX_TXNS || (w->block_txns > 0 && w->block_rows + tx->n_rows > WR_GROUP_MAX_ROWS) ||
            stuck(&w->workers[w->next_worker], now)) {
            w->next_worker = (w->next_worker + 1) % w->n_workers;
            w->block_txns = w->block_rows = 0;
        }
        owner = w->next_worker;
    }
    bool full = w->workers[owner].q_txns >= WR_QUEUE_MAX_TXNS;
    pthread_mutex_unlock(&w->mu);
    if (full)
        return false;
    if (owner == w->next_worker) {
        w->block_txns++;
        w->block_rows += tx->n_rows;
    }
    tx->n_deps = 0;
    for (uint32_t j = 0; j < nh; j++)
        if (hw[j] != owner) {
            tx->dep_worker[tx->n_deps] = hw[j];
            tx->dep_seq[tx->n_deps++] = hs[j];
        }
    for (size_t i = 0; i < tx->n_keys; i++)
        (void)keys_acquire(&w->keys, tx->keys[i], owner, tx->commit_seq);
    tx->worker = owner;
    fifo_push(w, tx);
    struct worker *wk = &w->workers[owner];
    pthread_mutex_lock(&w->mu);
    tx->next_q = NULL;
    if (wk->q_tail)
        wk->q_tail->next_q = tx;
    else
        wk->q_head = tx;
    wk->q_tail = tx;
    wk->q_txns++;
    pthread_cond_signal(&wk->cv);
    pthread_mutex_unlock(&w->mu);
    return true;
}

/* ---- barrier: a DDL transaction alone on the control connection --------------------------------- */

/* 0 ok, 1 transient, -1 failed (reported). */
static int apply_barrier(struct writer *w, struct sy_apply_txn *tx)
{
    while (w->fifo_head) { /* every earlier transaction committed */
        collect_done(w);
        if (w->fifo_head == NULL)
            break;
        pthread_mutex_lock(&w->mu);
        int wrc = w->worker_rc;
        pthread_mutex_unlock(&w->mu);
        if (wrc != 0)
            return 2; /* the caller reports the worker's failure */
        wait_workers(w, 100);
    }
    struct sy_apply_conn *c = &w->ctl;
    if (flush_checkpoint(w) != 0)
        return w->fenced ? -1 : 1;
    bool retry = tx->ddl_retry;
    sy_apply_txn_reset(c);
    c->overwrite_txn = in_takeover_replay(w, tx);
    for (size_t i = 0; i < tx->n_recs; i++) {
        const struct sy_apply_rec *rec = &tx->recs[i];
        struct sy_change ch;
        int rc = 0;
        if (sy_change_decode(tx->buf + rec->off, rec->len, &c->scratch, &ch) != SY_PARSE_OK) {
            fail(w, "spool_corrupt", "spool record %llu does not decode", (unsigned long long)rec->seq);
            return -1;
        }
        switch (ch.kind) {
        case SY_CHANGE_TABLE:
            rc = sy_apply_table(c, &ch.u.table);
            break;
        case SY_CHANGE_ROW:
            rc = sy_apply_row(c, &ch.u.row, rec->seq, tx->gtid);
            break;
        case SY_CHANGE_DDL:
            if (!retry) {
                /* DDL commits by itself: the fence covers the "pending" mark just before it */
                if (sy_apply_checkpoint(c, w->watermark, w->position, rec->seq) != 0 || ctl_fence(w) != 0 ||
                    sy_apply_commit(c) != 0)
                    return w->fenced ? -1 : 1;
            }
            if (!retry)
                sy_failpoint_stall("writer_before_ddl"); /* tests: paused between the mark and the DDL */
            rc = sy_apply_ddl(c, &ch.u.ddl, retry);
            retry = false;
            pthread_mutex_lock(&w->mu);
            w->ddl_gen++;
            pthread_mutex_unlock(&w->mu);
            break;
        default:
            break;
        }
        if (rc == SY_APPLY_TRANSIENT)
            return 1;
        if (rc == SY_APPLY_CONFLICT) {
            sy_apply_rollback(c);
            fail(w, "conflict", "%s", c->err);
            return -1;
        }
        if (rc < 0) {
            sy_apply_rollback(c);
            fail(w, "apply_failed", "source transaction %s (spool seq %llu): %s", tx->gtid,
                 (unsigned long long)rec->seq, c->err);
            return -1;
        }
    }
    if (sy_apply_checkpoint(c, tx->commit_seq, tx->position, 0) != 0 || ctl_fence(w) != 0)
        return w->fenced ? -1 : 1;
    sy_failpoint("writer_before_commit");
    if (sy_apply_commit(c) != 0)
        return 1;
    sy_apply_txn_reset(c);
    w->watermark = w->durable_seq = tx->commit_seq;
    snprintf(w->position, sizeof w->position, "%s", tx->position);
    w->txn_time_ms = tx->source_time_ms;
    publish(w);
    return 0;
}

/* ---- the session: one set of connections, from the checkpoint on ------------------------------- */

/* Reads the checkpoint and the transactions applied above it. 0, or 1 transient (ctl.err). */
static int read_checkpoint(struct writer *w, uint64_t *pending_ddl)
{
    struct sy_apply_conn *c = &w->ctl;
    char *eid = sy_mariadb_escape(c->conn, w->ctx->instance_id);
    char sql[512], err[512];
    snprintf(sql, sizeof sql, "SELECT spool_seq, position, pending_ddl_seq FROM " SY_SCHEMA ".checkpoint WHERE "
             "instance='%s'", eid ? eid : "");
    int rc = 1;
    MYSQL_RES *res = NULL;
    MYSQL_ROW row;
    if (mysql_query(c->conn, SY_MARIADB_APPLIED_HAS_RANGES_SQL) != 0 || (res = mysql_store_result(c->conn)) == NULL)
        goto out;
    bool ranges = (row = mysql_fetch_row(res)) != NULL && row[0] && strtoull(row[0], NULL, 10) > 0;
    mysql_free_result(res);
    res = NULL;
    if (!ranges && sy_mariadb_exec(c->conn, err, sizeof err, SY_MARIADB_APPLIED_ADD_RANGES_SQL) != 0)
        goto out;
    if (mysql_query(c->conn, SY_MARIADB_CHECKPOINT_HAS_TOKEN_SQL) != 0 || (res = mysql_store_result(c->conn)) == NULL)
        goto out;
    bool token_col = (row = mysql_fetch_row(res)) != NULL && row[0] && strtoull(row[0], NULL, 10) > 0;
    mysql_free_result(res);
    res = NULL;
    if (!token_col && sy_mariadb_exec(c->conn, err, sizeof err, SY_MARIADB_CHECKPOINT_ADD_TOKEN_SQL) != 0)
        goto out;
    if (mysql_real_query(c->conn, sql, (unsigned long)strlen(sql)) != 0 || (res = mysql_store_result(c->conn)) == NULL)
        goto out;
    row = mysql_fetch_row(res);
    bool have = row != NULL;
    w->watermark = w->durable_seq = have && row[0] ? strtoull(row[0], NULL, 10) : 0;
    /* no checkpoint yet (or one reset by a new creation: no position): the destination holds what the copy
     * (or creation) started from */
    snprintf(w->position, sizeof w->position, "%s", have && row[1] && row[1][0] ? row[1] : w->ctx->start_position);
    *pending_ddl = have && row[2] ? strtoull(row[2], NULL, 10) : 0;
    mysql_free_result(res);
    res = NULL;
    if (!have) {
        /* a new history (first start, or a new copy): applied rows of an earlier one mean nothing */
        if (sy_mariadb_exec(c->conn, err, sizeof err, "DELETE FROM " SY_SCHEMA ".applied WHERE instance='%s'",
                            eid ? eid : "") != 0 ||
            sy_apply_checkpoint(c, 0, w->position, 0) != 0)
            goto out;
    } else if (sy_mariadb_exec(c->conn, err, sizeof err,
                               "DELETE FROM " SY_SCHEMA ".applied WHERE instance='%s' AND GREATEST(spool_seq, "
                               "last_seq) <= %llu",
                               eid ? eid : "", (unsigned long long)w->watermark) != 0) {
        goto out;
    }
    if (w->ctx->owner_token != 0) {
        /* the session claims the row for this owner (the takeover did already, or the row is new): a
         * higher token there means another node owns the pair */
        if (sy_mariadb_fence_claim_sql(sql, sizeof sql, eid ? eid : "", w->ctx->owner_token) < 0 ||
            mysql_real_query(c->conn, sql, (unsigned long)strlen(sql)) != 0)
            goto out;
        if (mysql_affected_rows(c->conn) != 1) { /* CLIENT_FOUND_ROWS: matched rows */
            if (ctl_fence(w) == 0)
                fenced(w, "the destination's checkpoint names another owner", 0);
            goto out;
        }
        /* this connection runs the DDL: a takeover that finds one pending ends it (mariadb_fence.h). A
         * holder with this token is an earlier session of this very writer that the server still keeps
         * (a connection cut without the server noticing): ended, then the lock is taken. */
        unsigned long long stale = 0;
        if (sy_mariadb_writer_lock_take(c->conn, w->ctx->instance_id, w->ctx->owner_token, 0, c->err,
                                        sizeof c->err) != 0 &&
            (sy_mariadb_writer_lock_end(c->conn, w->ctx->instance_id, w->ctx->owner_token, 5000, &stale, c->err,
                                        sizeof c->err) != 0 ||
             sy_mariadb_writer_lock_take(c->conn, w->ctx->instance_id, w->ctx->owner_token, 5, c->err,
                                         sizeof c->err) != 0))
            goto out;
        if (stale != 0)
            sy_log_info("%s: an earlier session of this writer (connection %llu) still held its lock on the "
                        "destination: ended", w->ctx->instance_id, stale);
        c->err[0] = '\0';
    }
    snprintf(sql, sizeof sql, "SELECT spool_seq, last_seq FROM " SY_SCHEMA ".applied WHERE instance='%s' "
             "ORDER BY spool_seq", eid ? eid : "");
    if (mysql_real_query(c->conn, sql, (unsigned long)strlen(sql)) != 0 || (res = mysql_store_result(c->conn)) == NULL)
        goto out;
    size_t n = (size_t)mysql_num_rows(res);
    free(w->skip);
    w->skip = calloc(n ? n : 1, sizeof *w->skip);
    w->n_skip = w->i_skip = 0;
    while (w->skip && (row = mysql_fetch_row(res)) != NULL) {
        struct applied_range *r = &w->skip[w->n_skip++];
        r->first = strtoull(row[0], NULL, 10);
        r->last = row[1] ? strtoull(row[1], NULL, 10) : 0;
        if (r->last < r->first) /* a row of an older version: one transaction */
            r->last = r->first;
    }
    rc = sy_apply_commit(c) == 0 && w->skip ? 0 : 1;
out:
    if (rc != 0 && c->err[0] == '\0')
        snprintf(c->err, sizeof c->err, "reading the checkpoint: %u %s", mysql_errno(c->conn), mysql_error(c->conn));
    if (rc != 0 && mysql_errno(c->conn))
        snprintf(c->err, sizeof c->err, "reading the checkpoint: %u %s", mysql_errno(c->conn), mysql_error(c->conn));
    if (res)
        mysql_free_result(res);
    free(eid);
    return rc;
}

/* Whether the transaction committed at commit_seq was applied before a restart; *row: the key of
 * its applied row when it ends that row's range (0 otherwise). */
static bool skipped(struct writer *w, uint64_t commit_seq, uint64_t *row)
{
    while (w->i_skip < w->n_skip && w->skip[w->i_skip].last < commit_seq)
        w->i_skip++;
    const struct applied_range *r = w->i_skip < w->n_skip ? &w->skip[w->i_skip] : NULL;
    *row = r && r->last == commit_seq ? r->first : 0;
    return r && r->first <= commit_seq;
}

/* A record of the transaction being read: keep it, and its keys. -1 transient, -2 hard (ctl.err). */
static int read_record(struct writer *w, struct sy_apply_txn *tx, const struct sy_change *ch, uint64_t seq,
                       const uint8_t *payload, size_t len)
{
    if (txn_add_rec(tx, seq, payload, len) != 0) {
        snprintf(w->ctl.err, sizeof w->ctl.err, "out of memory");
        return -2;
    }
    if (ch->kind == SY_CHANGE_DDL)
        tx->barrier = true;
    if (tx->barrier)
        return 0;
    if (ch->kind == SY_CHANGE_TABLE) {
        size_t loaded = w->ctl.n_plans;
        int rc = sy_apply_table(&w->ctl, &ch->u.table);
        if (rc == 0 && w->ctl.n_plans != loaded) /* end the read's transaction: no metadata locks kept */
            rc = sy_apply_commit(&w->ctl) == 0 ? 0 : SY_APPLY_TRANSIENT;
        return rc;
    }
    if (ch->kind != SY_CHANGE_ROW)
        return 0;
    const struct sy_change_row *r = &ch->u.row;
    for (int img = 0; img < 2; img++) {
        const struct sy_value *v = img ? r->after : r->before;
        for (uint32_t i = 0; v != NULL && i < r->n_columns; i++)
            if (v[i].type == SY_VAL_DOCUMENT || v[i].type == SY_VAL_PATCH) {
                snprintf(w->ctl.err, sizeof w->ctl.err,
                         "spool record %llu is not a MariaDB row change (it holds a document value)",
                         (unsigned long long)seq);
                return -2;
            }
    }
    tx->n_rows++;
    struct sy_apply_table *t = sy_apply_table_find(&w->ctl, r->table_id);
    if (t == NULL || r->n_columns != t->n_src) { /* the worker's row path reports it */
        tx->barrier = true;
        return 0;
    }
    if ((r->before && txn_add_key(tx, sy_apply_row_key(t, r->before)) != 0) ||
        (r->after && txn_add_key(tx, sy_apply_row_key(t, r->after)) != 0)) {
        snprintf(w->ctl.err, sizeof w->ctl.err, "out of memory");
        return -2;
    }
    return 0;
}

/* A POSITION record outside a transaction, or a transaction applied before a restart: nothing to
 * apply, the watermark passes it once everything before it is done. applied_row: the switchyard.applied
 * row it ends (0: none). */
static int position_entry(struct writer *w, uint64_t seq, const char *pos, size_t pos_len, uint64_t applied_row)
{
    struct sy_apply_txn *tail = w->fifo_tail;
    if (tail && tail->position_only && !tail->applied_row && !applied_row) {
        char *p = strndup(pos, pos_len);
        if (p == NULL)
            return -1;
        free(tail->position);
        tail->position = p;
        tail->commit_seq = seq;
        return 0;
    }
    struct sy_apply_txn *tx = txn_new(seq);
    if (tx == NULL || (tx->position = strndup(pos, pos_len)) == NULL) {
        txn_free(tx);
        return -1;
    }
    tx->commit_seq = seq;
    tx->position_only = tx->done = true;
    tx->applied_row = applied_row;
    fifo_push(w, tx);
    return 0;
}

/* 1 transient (reconnect), 0 stopping, -1 failed (reported). */
/* A takeover that ran while the source was down (core/engine.h SY_UNTIL_FIRST_CHANGE): the idempotent
 * replay ends at the source's position read now, before the first change is dispatched (the workers read
 * until only for dispatched transactions). Read after the new owner's token claim, it covers whatever an
 * older owner applied. 0, or 1 (transient: w->ctl.err). */
static int resolve_until(struct writer *w)
{
    if (!w->until_at_first_change)
        return 0;
    char pos[1024], err[512];
    bool found = false;
    MYSQL *m = sy_mariadb_connect(w->ctx->source, w->cfg, 0, 5, NULL, err, sizeof err);
    int rc = -1;
    if (m != NULL) {
        rc = sy_mariadb_value(m, pos, sizeof pos, &found, err, sizeof err, "SELECT @@gtid_binlog_pos");
        mysql_close(m);
    }
    if (rc != 0) {
        snprintf(w->ctl.err, sizeof w->ctl.err, "source %s:%u: reading its position (the end of the "
                 "takeover's idempotent replay): %s", w->ctx->source->host, w->ctx->source->port, err);
        return 1;
    }
    w->has_until = found && sy_gtid_set_parse(pos, strlen(pos), &w->until);
    w->until_at_first_change = false;
    struct sy_module_report *r = w->ctx->report;       /* the instance persists it, and clears it once passed */
    pthread_mutex_lock(&r->lock);
    snprintf(r->until, sizeof r->until, "%s", w->has_until ? pos : "");
    r->until_read = true;
    pthread_mutex_unlock(&r->lock);
    sy_log_info("%s: changes up to %s are replayed idempotently (taken over)", w->ctx->instance_id,
                found ? pos : "(none)");
    return 0;
}

static int apply_session(struct writer *w, uint64_t pending_ddl)
{
    struct sy_spool *sp = w->ctx->spool;
    if (sy_spool_first_seq(sp) > w->watermark + 1 && sy_spool_last_seq(sp) >= sy_spool_first_seq(sp)) {
        fail(w, "spool_gap",
             "the spool starts at record %llu but the destination's checkpoint is at %llu: records in between are "
             "gone",
             (unsigned long long)sy_spool_first_seq(sp), (unsigned long long)w->watermark);
        return -1;
    }
    if (w->watermark > sy_spool_last_seq(sp)) {
        fail(w, "spool_mismatch",
             "the destination's checkpoint (%s record %llu) is ahead of this spool (last record %llu): "
             "the state directory was replaced; terminate and recreate the instance",
             w->ctx->instance_id, (unsigned long long)w->watermark, (unsigned long long)sy_spool_last_seq(sp));
        return -1;
    }
    uint64_t seq = w->watermark + 1;
    struct sy_apply_txn *cur = NULL;
    if (pending_ddl) {
        /* Crash between "pending" and "done": the DDL may or may not have run. Run it again. */
        seq = pending_ddl;
        if ((cur = txn_new(seq)) == NULL)
            return 1;
        cur->barrier = cur->ddl_retry = true;
        snprintf(cur->gtid, sizeof cur->gtid, "(pending DDL)");
    }
    int ret = 0;
    while (!stopping(w)) {
        collect_done(w);
        pthread_mutex_lock(&w->mu);
        int wrc = w->worker_rc;
        pthread_mutex_unlock(&w->mu);
        if (wrc != 0) {
            ret = wrc == SY_APPLY_TRANSIENT ? 1 : 2;
            break;
        }
        if (w->fenced) { /* the control connection found it */
            ret = -1;
            break;
        }
        if (w->blocked) {
            if (try_dispatch(w, w->blocked))
                w->blocked = NULL;
            else
                wait_workers(w, 100);
            continue;
        }
        if (w->inflight_txns >= WR_INFLIGHT_MAX_TXNS || w->inflight_bytes >= WR_INFLIGHT_MAX_BYTES) {
            wait_workers(w, 100);
            continue;
        }
        if (w->fifo_head == NULL && cur == NULL &&
            (w->watermark > w->durable_seq || w->n_gc > 0) && sy_spool_last_seq(sp) < seq) {
            if (flush_checkpoint(w) != 0) { /* idle: the checkpoint row catches up */
                ret = 1;
                break;
            }
        } else if (w->watermark > w->durable_seq && wall_ms() - w->last_flush_ms >= WR_FLUSH_MS) {
            if (flush_checkpoint(w) != 0) {
                ret = 1;
                break;
            }
        }
        uint8_t type;
        const uint8_t *payload;
        size_t len;
        char err[512];
        enum sy_spool_rc src = sy_spool_read(sp, seq, &type, &payload, &len, 200, err, sizeof err);
        if (src == SY_SPOOL_EMPTY) {
            publish(w);
            continue;
        }
        if (src != SY_SPOOL_OK) {
            fail(w, "spool_error", "%s", err);
            ret = -1;
            break;
        }
        if (resolve_until(w) != 0) {
            ret = 1;
            break;
        }
        struct sy_change ch;
        if (sy_change_decode(payload, len, &w->ctl.scratch, &ch) != SY_PARSE_OK) {
            fail(w, "spool_corrupt", "spool record %llu does not decode", (unsigned long long)seq);
            ret = -1;
            break;
        }
        int rc = 0;
        switch (ch.kind) {
        case SY_CHANGE_TXN_BEGIN:
            /* a partial transaction before it: the collector re-read it after a broken stream */
            txn_free(cur);
            sy_apply_txn_reset(&w->ctl);
            if ((cur = txn_new(seq)) == NULL) {
                rc = -2;
                break;
            }
            snprintf(cur->gtid, sizeof cur->gtid, "%.*s", (int)ch.position_len, ch.position);
            cur->source_time_ms = ch.source_time_ms;
            break;
        case SY_CHANGE_TABLE:
        case SY_CHANGE_ROW:
        case SY_CHANGE_DDL:
            if (cur == NULL && (cur = txn_new(seq)) == NULL) {
                rc = -2;
                break;
            }
            rc = read_record(w, cur, &ch, seq, payload, len);
            break;
        case SY_CHANGE_TXN_COMMIT: {
            if (cur == NULL && (cur = txn_new(seq)) == NULL) {
                rc = -2;
                break;
            }
            struct sy_apply_txn *tx = cur;
            cur = NULL;
            sy_apply_txn_reset(&w->ctl);
            tx->commit_seq = seq;
            tx->source_time_ms = ch.source_time_ms;
            tx->ord = ++w->n_read;
            if ((tx->position = strndup(ch.position, ch.position_len)) == NULL) {
                txn_free(tx);
                rc = -2;
                break;
            }
            uint64_t applied_row;
            if (skipped(w, seq, &applied_row)) {
                rc = position_entry(w, seq, ch.position, ch.position_len, applied_row) == 0 ? 0 : -2;
                txn_free(tx);
            } else if (tx->barrier) {
                int brc = apply_barrier(w, tx);
                txn_free(tx);
                if (brc != 0) {
                    ret = brc == 1 ? 1 : brc == 2 ? 2 : -1;
                    goto end;
                }
            } else if (tx->n_rows == 0) {
                rc = position_entry(w, seq, ch.position, ch.position_len, 0) == 0 ? 0 : -2;
                txn_free(tx);
            } else if (!try_dispatch(w, tx)) {
                w->blocked = tx;
            }
            break;
        }
        case SY_CHANGE_POSITION:
            if (cur != NULL) { /* its source broke off mid-transaction and went on past it: dropped */
                txn_free(cur);
                cur = NULL;
                sy_apply_txn_reset(&w->ctl);
            }
            if (position_entry(w, seq, ch.position, ch.position_len, 0) != 0)
                rc = -2;
            break;
        }
        if (rc == SY_APPLY_TRANSIENT) {
            ret = 1;
            break;
        }
        if (rc < 0) {
            fail(w, "apply_failed", "source transaction %s (spool seq %llu): %s", cur ? cur->gtid : "",
                 (unsigned long long)seq, w->ctl.err[0] ? w->ctl.err : "out of memory");
            ret = -1;
            break;
        }
        seq++;
    }
end:
    txn_free(cur);
    workers_stop(w);
    collect_done(w);
    if ((ret == 2 || ret == 0) && w->worker_rc == SY_APPLY_FENCED) { /* 0: fenced while stopping */
        fenced(w, w->worker_err, w->worker_fenced_by);
        ret = -1;
    } else if (ret == 2) {
        fail(w, w->worker_reason[0] ? w->worker_reason : "apply_failed", "%s", w->worker_err);
        ret = -1;
    } else if (ret == 1 && w->worker_err[0]) {
        snprintf(w->ctl.err, sizeof w->ctl.err, "%s", w->worker_err);
    }
    if (ret != 1 && w->ctl.conn && flush_checkpoint(w) != 0 && ret == 0)
        sy_log_warn("%s: checkpoint at stop: %s", w->ctx->instance_id, w->ctl.err);
    publish(w);
    return ret;
}

/* Connects the control connection and every worker, starts the workers. 0, 1 transient, -1 refused. */
static int session_open(struct writer *w, uint64_t *pending_ddl)
{
    int rc = sy_apply_conn_open(&w->ctl);
    if (rc != 0)
        return rc;
    if (read_checkpoint(w, pending_ddl) != 0)
        return 1;
    for (int i = 0; i < w->n_workers; i++) {
        struct worker *wk = &w->workers[i];
        if ((rc = sy_apply_conn_open(&wk->ac)) != 0) {
            snprintf(w->ctl.err, sizeof w->ctl.err, "%s", wk->ac.err);
            return rc;
        }
    }
    char until[1024] = "";                             /* the loop clears it once passed: read it locked */
    pthread_mutex_lock(&w->ctx->report->lock);
    snprintf(until, sizeof until, "%s", w->ctx->overwrite_until ? w->ctx->overwrite_until : "");
    pthread_mutex_unlock(&w->ctx->report->lock);
    w->until_at_first_change = strcmp(until, SY_UNTIL_FIRST_CHANGE) == 0;
    w->has_until = !w->until_at_first_change && until[0] != '\0' &&
                   sy_gtid_set_parse(until, strlen(until), &w->until);
    w->abort = false;
    w->worker_rc = 0;
    w->worker_reason[0] = w->worker_err[0] = '\0';
    w->last_flush_ms = wall_ms();
    for (int i = 0; i < w->n_workers; i++) {
        struct worker *wk = &w->workers[i];
        if (pthread_create(&wk->thread, NULL, worker_main, wk) != 0) {
            snprintf(w->ctl.err, sizeof w->ctl.err, "starting an apply worker: %s", strerror(errno));
            return 1;
        }
        wk->started = true;
    }
    return 0;
}

static void *writer_main(void *arg)
{
    struct writer *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->ctx = arg;
    w->cfg = w->ctx->cfg;
    mysql_thread_init();
    sy_apply_conn_init(&w->ctl, w->ctx);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->coord_cv, NULL);
    w->n_workers = w->cfg->apply_threads; /* 1..WR_MAX_WORKERS: core/config.c */
    w->workers = calloc((size_t)w->n_workers, sizeof *w->workers);
    if (w->workers == NULL) {
        fail(w, "out_of_memory", "out of memory");
        w->n_workers = 0;
    }
    for (int i = 0; i < w->n_workers; i++) {
        w->workers[i].w = w;
        w->workers[i].id = i;
        sy_apply_conn_init(&w->workers[i].ac, w->ctx);
        pthread_cond_init(&w->workers[i].cv, NULL);
    }
    int backoff = 100;
    while (!stopping(w) && !w->failed) {
        uint64_t pending_ddl = 0;
        w->ctl.err[0] = '\0';
        int rc = session_open(w, &pending_ddl);
        if (rc < 0) {
            fail(w, "destination_refused", "%s", w->ctl.err);
            break;
        }
        if (rc == 0) {
            backoff = 100;
            sy_module_report_running(w->ctx->report);
            publish(w);
            rc = apply_session(w, pending_ddl);
        }
        workers_stop(w);
        fifo_free(w);
        w->n_gc = 0;
        w->rows_before += w->ctl.rows;
        w->conflicts_before += w->ctl.conflicts_overwritten;
        w->ctl.rows = w->ctl.conflicts_overwritten = 0;
        sy_apply_conn_close(&w->ctl);
        if (rc <= 0 || stopping(w) || w->failed)
            break;
        sy_module_report_retrying(w->ctx->report, "destination_unreachable", "%s", w->ctl.err);
        sy_module_backoff(w->ctx, &backoff, WR_MAX_BACKOFF_MS);
    }
    workers_stop(w);
    fifo_free(w);
    for (int i = 0; i < w->n_workers; i++) {
        sy_apply_conn_fini(&w->workers[i].ac);
        pthread_cond_destroy(&w->workers[i].cv);
    }
    sy_apply_conn_fini(&w->ctl);
    pthread_cond_destroy(&w->coord_cv);
    pthread_mutex_destroy(&w->mu);
    free(w->workers);
    free(w->gc);
    free(w->skip);
    free(w);
    mysql_thread_end();
    return NULL;
}

const struct sy_module_ops sy_mariadb_write = { "write", writer_main };
