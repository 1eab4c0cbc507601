/* commit_wait for MariaDB sessions (zero-RPO mode, docs/architecture.md): an OK whose session-state
 * block moved last_gtid (COMMIT, autocommit DML, DDL) is held — left undrained at the head of the
 * backend's input, the backend not read meanwhile — until the pair's commit_wait position on the
 * session's side (collected: the collection's fsync'd spool; applied: the destination's checkpoint,
 * core/commit_wait.h) covers its GTID. Module threads wake the loop when a position moves
 * (px->pair->commit_wait.wake), and only the waiting sessions are looked at: one session's held OK
 * holds nobody else. Each wait is bounded by commit_wait_timeout_ms; then commit_wait_fallback:
 * degrade = this and every waiting OK passes, the pair is `degraded` (commits pass at once) until the
 * position covers everything acknowledged at most commit_wait_timeout_ms earlier; error = this client
 * gets ERR 1180 (its transaction is committed on the source side, only not confirmed for DR).
 * With proxy_threads, each shard holds its own sessions' OKs on its loop; the pair's wake-up is passed on to
 * every shard (mysql_fanout.c), the counters and the degraded flag are shared under the commit_wait lock, and
 * the recovery check runs on the main loop against the ack ledger merged over shards. */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "core/log.h"
#include "proxy/mysql_fanout.h"
#include "proxy/mysql_session.h"

static struct sy_commit_wait *pair_cw(const struct sy_mysql_proxy *px)
{
    return &px->pair->commit_wait;
}

/* The counters are shared by every shard's loop (and read by status and metrics): under the lock. */
static void count(struct sy_commit_wait *cw, uint64_t *counter, int delta)
{
    pthread_mutex_lock(&cw->lock);
    *counter += (uint64_t)(int64_t)delta;
    pthread_mutex_unlock(&cw->lock);
}

static bool is_degraded(struct sy_commit_wait *cw)
{
    pthread_mutex_lock(&cw->lock);
    bool d = cw->degraded;
    pthread_mutex_unlock(&cw->lock);
    return d;
}

/* The position the pair waits for on `side`, parsed; false when unknown or unreadable. */
static bool target_of(struct sy_mysql_proxy *px, enum sy_side side, struct sy_gtid_set *out)
{
    char pos[1024];
    sy_commit_wait_target(pair_cw(px), side, pos, sizeof pos);
    return pos[0] != '\0' && sy_gtid_set_parse(pos, strlen(pos), out);
}

static bool covers_gtid(const struct sy_gtid_set *set, const struct sy_gtid *g)
{
    struct sy_gtid_set one = { .n = 1, .v = { *g } };
    return sy_gtid_set_covers(set, &one);
}

/* Ends a session's wait (off the list, timer stopped, counted); the caller then answers. */
static void wait_end(struct sy_mysql_session *s)
{
    struct sy_mysql_proxy *px = s->px;
    struct sy_commit_wait *cw = pair_cw(px);
    TAILQ_REMOVE(&px->cw_waiters, s, cw_link);
    s->cw_waiting = false;
    if (s->cw_timer)
        evtimer_del(s->cw_timer);
    count(cw, &cw->waiting, -1);
    uint64_t now = sy_now_ms();
    sy_commit_wait_note_end(cw, now > s->cw_since_ms ? now - s->cw_since_ms : 0);
}

static void release_ok(struct sy_mysql_session *s)
{
    wait_end(s);
    sy_mysql_relay_cw_done(s, true, NULL);
}

static const char *what_name(const struct sy_pair_cfg *c)
{
    return c->commit_wait == SY_COMMIT_WAIT_APPLIED ? "applied on the other side" : "collected for it";
}

/* Degraded: has the position caught up? It must cover the pair's ack ledger as it stood at most
 * commit_wait_timeout_ms ago — what a new wait would then most likely see within its timeout. */
void sy_mysql_cw_check_recovery(struct sy_mysql_fanout *f, const struct sy_gtid_set *ledger)
{
    struct sy_commit_wait *cw = &f->pair->commit_wait;
    const struct sy_pair_cfg *c = f->pair->cfg;
    enum sy_side side = f->pair->active_side;
    struct sy_gtid_set pos;
    char text[1024];
    sy_commit_wait_target(cw, side, text, sizeof text);
    if (text[0] == '\0' || !sy_gtid_set_parse(text, strlen(text), &pos))
        return;
    pthread_mutex_lock(&cw->lock);
    bool degraded = cw->degraded;
    uint64_t since = cw->degraded_since_ms;
    pthread_mutex_unlock(&cw->lock);
    if (!degraded)
        return;
    if (f->cw_recover_armed && f->cw_recover_for != since)
        f->cw_recover_armed = false; /* degraded again since the target was taken */
    uint64_t now = sy_now_ms();
    for (int round = 0; round < 2; round++) {
        if (!f->cw_recover_armed) {
            f->cw_recover_target = *ledger;
            f->cw_recover_ms = now;
            f->cw_recover_for = since;
            f->cw_recover_armed = true;
        }
        if (!sy_gtid_set_covers(&pos, &f->cw_recover_target))
            return;
        if (now - f->cw_recover_ms <= (uint64_t)c->commit_wait_timeout_ms) {
            pthread_mutex_lock(&cw->lock);
            cw->degraded = false;
            cw->recovered_count++;
            pthread_mutex_unlock(&cw->lock);
            f->cw_recover_armed = false;
            sy_log_info("pair %s: commit_wait = %s again after %llu ms degraded: everything acknowledged is %s",
                        c->name, sy_commit_wait_mode_name(c->commit_wait), (unsigned long long)(now - since),
                        what_name(c));
            return;
        }
        f->cw_recover_armed = false; /* an old target was reached: take today's and look again */
    }
}

/* A position moved (the wake event, on this shard's loop): release every wait it covers; every wait once
 * degraded (another shard may have degraded the pair). */
void sy_mysql_cw_progress(struct sy_mysql_proxy *px)
{
    struct sy_gtid_set pos[2];
    bool known[2] = { target_of(px, SY_SIDE_BUSINESS, &pos[0]), target_of(px, SY_SIDE_DR, &pos[1]) };
    bool degraded = is_degraded(pair_cw(px));
    struct sy_mysql_session *s = TAILQ_FIRST(&px->cw_waiters), *next;
    for (; s != NULL; s = next) {
        next = TAILQ_NEXT(s, cw_link); /* releasing s removes only s */
        if (degraded || (known[s->side] && covers_gtid(&pos[s->side], &s->cw_gtid))) {
            count(pair_cw(px), &pair_cw(px)->released, 1);
            release_ok(s);
        }
    }
}

static void degrade(struct sy_mysql_proxy *px, struct sy_mysql_session *why)
{
    struct sy_commit_wait *cw = pair_cw(px);
    const struct sy_pair_cfg *c = px->pair->cfg;
    char pos[1024];
    sy_commit_wait_target(cw, why->side, pos, sizeof pos);
    pthread_mutex_lock(&cw->lock);
    bool already = cw->degraded; /* another shard's wait degraded it a moment ago */
    if (!already) {
        cw->degraded = true;
        cw->degraded_count++;
        cw->degraded_since_ms = sy_now_ms();
    }
    pthread_mutex_unlock(&cw->lock);
    if (already) {
        sy_mysql_cw_progress(px);
        return;
    }
    sy_log_warn("pair %s: commit_wait degraded to off: %s's commit %u-%u-%llu was not %s within "
                "commit_wait_timeout_ms=%d (position there: %s); commits are acknowledged without waiting "
                "until the position catches up",
                c->name, why->label, why->cw_gtid.domain, why->cw_gtid.server, (unsigned long long)why->cw_gtid.seq,
                what_name(c), c->commit_wait_timeout_ms, pos[0] ? pos : "unknown");
    struct sy_mysql_session *s;
    while ((s = TAILQ_FIRST(&px->cw_waiters)) != NULL)
        release_ok(s);
    sy_mysql_fanout_cw_wake_all(px->fan); /* the other shards' held OKs pass too */
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct sy_mysql_session *s = arg;
    struct sy_mysql_proxy *px = s->px;
    struct sy_commit_wait *cw = pair_cw(px);
    const struct sy_pair_cfg *c = px->pair->cfg;
    if (!s->cw_waiting)
        return;
    count(cw, &cw->timeouts, 1);
    if (c->commit_wait_fallback == SY_COMMIT_WAIT_DEGRADE) {
        degrade(px, s);
        return;
    }
    count(cw, &cw->errors, 1);
    char msg[400];
    const char *other = s->side == SY_SIDE_BUSINESS ? "DR" : "business";
    snprintf(msg, sizeof msg,
             "Switchyard commit_wait: transaction %u-%u-%llu is committed and durable on %s but was not "
             "confirmed %s %s within commit_wait_timeout_ms=%d; it is not lost there, do not retry it blindly",
             s->cw_gtid.domain, s->cw_gtid.server, (unsigned long long)s->cw_gtid.seq, sy_side_name(s->side),
             c->commit_wait == SY_COMMIT_WAIT_APPLIED ? "applied on" : "collected for", other,
             c->commit_wait_timeout_ms);
    sy_log_warn("%s: commit_wait timeout: %u-%u-%llu answered with error %d", s->label, s->cw_gtid.domain,
                s->cw_gtid.server, (unsigned long long)s->cw_gtid.seq, SY_ER_ERROR_DURING_COMMIT);
    wait_end(s);
    sy_mysql_relay_cw_done(s, false, msg);
}

bool sy_mysql_cw_hold(struct sy_mysql_session *s, bool final)
{
    struct sy_mysql_proxy *px = s->px;
    struct sy_commit_wait *cw = pair_cw(px);
    const struct sy_pair_cfg *c = px->pair->cfg;
    if (c->commit_wait == SY_COMMIT_WAIT_OFF || s->cw_waiting || is_degraded(cw))
        return false;
    count(cw, &cw->waits, 1);
    struct sy_gtid_set pos;
    if (target_of(px, s->side, &pos) && covers_gtid(&pos, &s->cw_gtid)) {
        count(cw, &cw->released, 1);
        sy_commit_wait_note_end(cw, 0);
        return false;
    }
    if (s->cw_timer == NULL && (s->cw_timer = evtimer_new(px->base, on_timeout, s)) == NULL) {
        sy_log_warn("%s: commit_wait: out of memory: the OK passes without waiting", s->label);
        return false;
    }
    struct timeval tv = { c->commit_wait_timeout_ms / 1000, (c->commit_wait_timeout_ms % 1000) * 1000 };
    evtimer_add(s->cw_timer, &tv);
    s->cw_waiting = true;
    s->cw_final = final;
    s->cw_since_ms = sy_now_ms();
    TAILQ_INSERT_TAIL(&px->cw_waiters, s, cw_link);
    count(cw, &cw->waiting, 1);
    return true;
}

void sy_mysql_cw_cancel(struct sy_mysql_session *s)
{
    if (!s->cw_waiting)
        return;
    wait_end(s);
    s->cw_gtid_new = false;
}

void sy_mysql_cw_free(struct sy_mysql_session *s)
{
    sy_mysql_cw_cancel(s);
    if (s->cw_timer)
        event_free(s->cw_timer);
    s->cw_timer = NULL;
}
