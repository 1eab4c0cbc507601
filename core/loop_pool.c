/* See loop_pool.h. Each worker: a thread, an event_base, a mutex-protected FIFO of jobs and one persistent
 * event that a poster activates (event_active is thread-safe with evthread_use_pthreads). The kick runs every
 * job queued at that moment. A synchronous run waits on a condition variable the job signals when done;
 * run_all posts to every worker first and then waits for all, so N workers work on it in parallel. */
#include "core/loop_pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/thread.h>

/* A synchronous caller waits here for `left` jobs to end. */
struct sy_loop_waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int left;
};

struct worker {
    struct sy_loop_pool *pool;    /* ref */
    int index;
    pthread_t thread;
    bool started;
    struct event_base *base;      /* owned */
    struct event *kick;           /* owned: runs the queued jobs on the worker */
    pthread_mutex_t lock;         /* guards head/tail */
    struct sy_loop_job *head, *tail;      /* owned: FIFO */
};

struct sy_loop_pool {
    int n;
    struct worker w[64];
};

static void run_jobs(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    pthread_mutex_lock(&w->lock);
    struct sy_loop_job *j = w->head;
    w->head = w->tail = NULL;
    pthread_mutex_unlock(&w->lock);
    while (j != NULL) {
        struct sy_loop_job *next = j->next;
        struct sy_loop_waiter *wt = j->done;
        bool owned = j->pool_owned;     /* read first: a caller's job may be posted again by fn */
        j->fn(j->arg);
        if (wt != NULL) {                /* the job lives on the caller's stack: not touched after this */
            pthread_mutex_lock(&wt->lock);
            wt->left--;
            pthread_cond_broadcast(&wt->cond);
            pthread_mutex_unlock(&wt->lock);
        } else if (owned) {
            free(j);
        }
        j = next;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void enqueue(struct worker *w, struct sy_loop_job *j)
{
    j->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->tail)
        w->tail->next = j;
    else
        w->head = j;
    w->tail = j;
    pthread_mutex_unlock(&w->lock);
    event_active(w->kick, EV_READ, 0);
}

struct sy_loop_pool *sy_loop_pool_new(int n, char *err, size_t errlen)
{
    if (n < 1 || n > 64) {
        snprintf(err, errlen, "proxy_threads must be between 1 and 64");
        return NULL;
    }
    struct sy_loop_pool *pool = calloc(1, sizeof *pool);
    if (pool == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        struct worker *w = &pool->w[i];
        w->pool = pool;
        w->index = i;
        pthread_mutex_init(&w->lock, NULL);
        pool->n = i + 1;
        w->base = event_base_new();
        w->kick = w->base ? event_new(w->base, -1, EV_PERSIST, run_jobs, w) : NULL;
        if (w->kick == NULL) {
            snprintf(err, errlen, "out of memory");
            sy_loop_pool_free(pool);
            return NULL;
        }
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            snprintf(err, errlen, "cannot start proxy thread %d", i);
            sy_loop_pool_free(pool);
            return NULL;
        }
        w->started = true;
    }
    return pool;
}

static void stop_loop(void *arg)
{
    event_base_loopbreak(arg);
}

void sy_loop_pool_free(struct sy_loop_pool *pool)
{
    if (pool == NULL)
        return;
    for (int i = 0; i < pool->n; i++) {
        struct worker *w = &pool->w[i];
        if (w->started) {
            sy_loop_pool_run(pool, i, stop_loop, w->base);
            pthread_join(w->thread, NULL);
        }
        struct sy_loop_job *j = w->head;
        while (j != NULL) {        /* posted after the stop: never run */
            struct sy_loop_job *next = j->next;
            if (j->pool_owned)
                free(j);
            j = next;
        }
        if (w->kick)
            event_free(w->kick);
        if (w->base)
            event_base_free(w->base);
        pthread_mutex_destroy(&w->lock);
    }
    free(pool);
}

int sy_loop_pool_size(const struct sy_loop_pool *pool)
{
    return pool ? pool->n : 0;
}

struct event_base *sy_loop_pool_base(const struct sy_loop_pool *pool, int i)
{
    return pool->w[i].base;
}

bool sy_loop_pool_on_worker(const struct sy_loop_pool *pool, int i)
{
    return pool->w[i].started && pthread_equal(pthread_self(), pool->w[i].thread);
}

bool sy_loop_pool_post(struct sy_loop_pool *pool, int i, void (*fn)(void *arg), void *arg)
{
    struct sy_loop_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return false;
    j->fn = fn;
    j->arg = arg;
    j->pool_owned = true;
    enqueue(&pool->w[i], j);
    return true;
}

void sy_loop_pool_post_job(struct sy_loop_pool *pool, int i, struct sy_loop_job *job)
{
    job->done = NULL;
    job->pool_owned = false;
    enqueue(&pool->w[i], job);
}

static void waiter_wait(struct sy_loop_waiter *wt)
{
    pthread_mutex_lock(&wt->lock);
    while (wt->left > 0)
        pthread_cond_wait(&wt->cond, &wt->lock);
    pthread_mutex_unlock(&wt->lock);
    pthread_cond_destroy(&wt->cond);
    pthread_mutex_destroy(&wt->lock);
}

void sy_loop_pool_run(struct sy_loop_pool *pool, int i, void (*fn)(void *arg), void *arg)
{
    if (sy_loop_pool_on_worker(pool, i)) {
        fn(arg);
        return;
    }
    struct sy_loop_waiter wt = { .left = 1 };
    pthread_mutex_init(&wt.lock, NULL);
    pthread_cond_init(&wt.cond, NULL);
    struct sy_loop_job j = { .fn = fn, .arg = arg, .done = &wt };
    enqueue(&pool->w[i], &j);
    waiter_wait(&wt);
}

struct all_arg {
    void (*fn)(int i, void *arg);
    void *arg;
    int i;
};

static void run_one(void *arg)
{
    struct all_arg *a = arg;
    a->fn(a->i, a->arg);
}

void sy_loop_pool_run_all(struct sy_loop_pool *pool, void (*fn)(int i, void *arg), void *arg)
{
    struct sy_loop_waiter wt = { .left = pool->n };
    pthread_mutex_init(&wt.lock, NULL);
    pthread_cond_init(&wt.cond, NULL);
    struct all_arg args[64];
    struct sy_loop_job jobs[64];
    for (int i = 0; i < pool->n; i++) {
        args[i] = (struct all_arg){ .fn = fn, .arg = arg, .i = i };
        jobs[i] = (struct sy_loop_job){ .fn = run_one, .arg = &args[i], .done = &wt };
        enqueue(&pool->w[i], &jobs[i]);
    }
    waiter_wait(&wt);
}
