/* See mysql_fanout.h. The shard of a connection id is (id - SY_MYSQL_FIRST_SESSION_ID) % n: shard i hands out
 * first + i, first + i + n, ... A cross-shard KILL travels as one heap job: asked on the target's loop
 * (post), answered on the asker's loop (post), never waited for. */
#include "proxy/mysql_fanout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proxy/mysql_session.h"

struct each_arg {
    struct sy_mysql_fanout *f;
    void (*fn)(struct sy_mysql_proxy *px, void *arg);
    void *arg;
};

static void each_one(int i, void *arg)
{
    struct each_arg *a = arg;
    a->fn(a->f->shards[i], a->arg);
}

void sy_mysql_fanout_each(struct sy_mysql_fanout *f, void (*fn)(struct sy_mysql_proxy *px, void *arg), void *arg)
{
    if (f->pool == NULL) {
        for (int i = 0; i < f->n; i++)
            fn(f->shards[i], arg);
        return;
    }
    struct each_arg a = { f, fn, arg };
    sy_loop_pool_run_all(f->pool, each_one, &a);
}

struct accept_job {
    struct sy_mysql_proxy *px;     /* ref */
    evutil_socket_t fd;            /* owned until the session takes it */
    struct sockaddr_storage sa;
    int salen;
};

static void accept_on_shard(void *arg)
{
    struct accept_job *j = arg;
    sy_mysql_session_accept(j->px, j->fd, (struct sockaddr *)&j->sa, j->salen);
    free(j);
}

void sy_mysql_fanout_accept(struct sy_mysql_fanout *f, evutil_socket_t fd, const struct sockaddr *sa, int salen)
{
    struct sy_mysql_proxy *px = f->shards[f->next_shard++ % (unsigned)f->n];
    if (f->pool == NULL) {
        sy_mysql_session_accept(px, fd, sa, salen);
        return;
    }
    struct accept_job *j = calloc(1, sizeof *j);
    if (j == NULL || salen < 0 || (size_t)salen > sizeof j->sa) {
        free(j);
        evutil_closesocket(fd);
        return;
    }
    j->px = px;
    j->fd = fd;
    memcpy(&j->sa, sa, (size_t)salen);
    j->salen = salen;
    if (!sy_loop_pool_post(f->pool, px->worker, accept_on_shard, j)) {
        free(j);
        evutil_closesocket(fd);
    }
}

void sy_mysql_fanout_cw_wake_all(struct sy_mysql_fanout *f)
{
    for (int i = 0; i < f->n; i++)
        if (f->shards[i]->cw_wake != NULL)
            event_active(f->shards[i]->cw_wake, 0, 0);
}

struct sy_mysql_ledger_scratch {
    enum sy_side side;
    struct sy_gtid_set sets[SY_MYSQL_MAX_SHARDS];
};

struct sy_mysql_ledger_scratch *sy_mysql_fanout_ledger_scratch_new(void)
{
    return calloc(1, sizeof(struct sy_mysql_ledger_scratch));
}

static void ledger_of(struct sy_mysql_proxy *px, void *arg)
{
    struct sy_mysql_ledger_scratch *a = arg;
    a->sets[px->worker] = px->ack_ledger[a->side];
}

void sy_mysql_fanout_ledger(struct sy_mysql_fanout *f, enum sy_side side, struct sy_gtid_set *out)
{
    struct sy_mysql_ledger_scratch *a = f->ledger_scratch; /* allocated at start: a switch never lacks it */
    memset(out, 0, sizeof *out);
    memset(a, 0, sizeof *a);
    a->side = side;
    sy_mysql_fanout_each(f, ledger_of, a);
    for (int i = 0; i < f->n; i++)
        for (size_t k = 0; k < a->sets[i].n; k++)
            sy_gtid_set_advance(out, &a->sets[i].v[k]);
}

/* ---- KILL across shards --------------------------------------------------------------------------- */

struct kill_job {
    struct sy_loop_job job;        /* posted to the target's shard, then back: never fails to post */
    struct sy_mysql_fanout *f;     /* ref */
    int from;                      /* the asking session's shard */
    uint32_t asker;                /* its connection id */
    uint32_t target;               /* the id KILL names */
    uint8_t ticket;                /* the asker's kill_ticket when it asked */
    uint32_t thread;               /* answer: the target's backend thread (0 = no such session / none) */
    enum sy_side side;             /* answer: the target's side */
    uint8_t seq;
    size_t n;
    uint8_t pkt[];                 /* the request's payload (command byte first) */
};

static void kill_answered(void *arg)
{
    struct kill_job *j = arg;
    struct sy_mysql_session *s = sy_mysql_proxy_find_session(j->f->shards[j->from], j->asker);
    if (s != NULL && s->kill_pending && s->state == SS_BUSY && s->kill_ticket == j->ticket) {
        s->kill_pending = false;
        sy_mysql_relay_kill_answer(s, j->pkt, j->n, j->seq, j->thread, j->side);
    }
    free(j);
}

static void kill_asked(void *arg)
{
    struct kill_job *j = arg;
    struct sy_mysql_proxy *px = j->f->shards[(j->target - SY_MYSQL_FIRST_SESSION_ID) % (uint32_t)j->f->n];
    struct sy_mysql_session *t = sy_mysql_proxy_find_session(px, j->target);
    j->thread = t ? sy_mysql_session_backend_thread(t) : 0;
    j->side = t ? t->side : SY_SIDE_BUSINESS;
    j->job.fn = kill_answered; /* the same job back to the asker's shard: nothing to allocate, cannot fail */
    sy_loop_pool_post_job(j->f->pool, j->from, &j->job);
}

int sy_mysql_fanout_kill_target(struct sy_mysql_session *s, uint32_t id, const uint8_t *p, size_t n, uint8_t seq,
                                uint32_t *thread, enum sy_side *side)
{
    struct sy_mysql_fanout *f = s->px->fan;
    int shard = (int)((id - SY_MYSQL_FIRST_SESSION_ID) % (uint32_t)f->n);
    if (shard == s->px->worker || f->pool == NULL) {
        struct sy_mysql_session *t = sy_mysql_proxy_find_session(f->shards[shard], id);
        *thread = t ? sy_mysql_session_backend_thread(t) : 0;
        *side = t ? t->side : SY_SIDE_BUSINESS;
        return t != NULL;
    }
    struct kill_job *j = calloc(1, sizeof *j + n);
    if (j == NULL)
        return -1;
    s->kill_ticket++;
    *j = (struct kill_job){ .job = { .fn = kill_asked, .arg = j }, .f = f, .from = s->px->worker, .asker = s->id,
                            .target = id, .ticket = s->kill_ticket, .seq = seq, .n = n };
    memcpy(j->pkt, p, n);
    sy_loop_pool_post_job(f->pool, shard, &j->job);
    s->kill_pending = true;
    return 2;
}
