/* Worker event loops (`proxy_threads`): N threads, each running its own event_base until the pool is freed.
 * Other threads reach a worker only through its job queue: sy_loop_pool_post (fire and forget) and
 * sy_loop_pool_run (runs a function there and waits for it). The rule that keeps this deadlock-free: only
 * the main loop ever waits (run); a worker never waits for another worker or for the main loop, it posts. */
#ifndef SY_LOOP_POOL_H
#define SY_LOOP_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>

struct sy_loop_pool;
struct sy_loop_waiter;

/* A job: what a worker runs. sy_loop_pool_post allocates one; a caller that must not fail to post (a
 * message already half way between two workers) embeds one in the argument it carries and posts it with
 * sy_loop_pool_post_job. */
struct sy_loop_job {
    void (*fn)(void *arg);
    void *arg;
    /* the pool's */
    struct sy_loop_job *next;
    struct sy_loop_waiter *done;   /* a synchronous caller's (sy_loop_pool_run), NULL for a post */
    bool pool_owned;               /* allocated by sy_loop_pool_post: freed after it ran */
};

/* Starts n (1..64) worker threads. NULL with err filled. Needs evthread_use_pthreads() first. */
struct sy_loop_pool *sy_loop_pool_new(int n, char *err, size_t errlen);
/* Stops every worker loop (jobs already queued run first) and joins the threads. NULL-safe. Whatever still
 * lives on a worker's base must have been freed before (through sy_loop_pool_run). */
void sy_loop_pool_free(struct sy_loop_pool *pool);

int sy_loop_pool_size(const struct sy_loop_pool *pool);
struct event_base *sy_loop_pool_base(const struct sy_loop_pool *pool, int i);
/* Whether the calling thread is worker i's. */
bool sy_loop_pool_on_worker(const struct sy_loop_pool *pool, int i);

/* Queues fn(arg) on worker i and returns at once; fn runs on the worker's thread, in posting order.
 * false when out of memory (fn does not run). Any thread. */
bool sy_loop_pool_post(struct sy_loop_pool *pool, int i, void (*fn)(void *arg), void *arg);
/* The same with the caller's storage (job->fn and job->arg set): cannot fail. The pool does not touch job
 * once job->fn starts, so fn may post the same job again (to another worker); never freed by the pool
 * (one posted after the pool stopped never runs). Any thread. */
void sy_loop_pool_post_job(struct sy_loop_pool *pool, int i, struct sy_loop_job *job);
/* Runs fn(arg) on worker i and returns once it has run (directly when called on worker i). Main loop only
 * (a worker must never wait on another worker). */
void sy_loop_pool_run(struct sy_loop_pool *pool, int i, void (*fn)(void *arg), void *arg);
/* Runs fn(i, arg) on every worker at once and returns when all have run (fan-out and join). Main loop only. */
void sy_loop_pool_run_all(struct sy_loop_pool *pool, void (*fn)(int i, void *arg), void *arg);

#endif
