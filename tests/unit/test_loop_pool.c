/* core/loop_pool.c: jobs run on their worker's thread in posting order, run() and run_all() return only after
 * the work is done, a posted job may post to another worker (never waits), free() joins with work queued. */
#include "core/loop_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/thread.h>

#include "tests/unit/check.h"

static struct sy_loop_pool *pool;
static int order[4][100];
static int n_order[4];
static pthread_t ran_on[4];
static atomic_int posted_done;
static atomic_int wrong_thread; /* CHECK counts in plain globals: workers only note, main checks */

struct item {
    int worker, value;
};

static void record(void *arg)
{
    struct item *it = arg;
    if (!sy_loop_pool_on_worker(pool, it->worker))
        atomic_fetch_add(&wrong_thread, 1);
    order[it->worker][n_order[it->worker]++] = it->value;
    free(it);
    atomic_fetch_add(&posted_done, 1);
}

static void note_thread(int i, void *arg)
{
    int *sum = arg;
    ran_on[i] = pthread_self();
    __atomic_fetch_add(sum, i + 1, __ATOMIC_SEQ_CST);
}

static void noop(void *arg)
{
    *(int *)arg = 42;
}

/* Worker 0 posts to worker 1 (the cross-worker pattern KILL uses: ask, never wait). */
static void relay(void *arg)
{
    struct item *it = arg;
    it->worker = 1;
    if (!sy_loop_pool_post(pool, 1, record, it))
        atomic_fetch_add(&wrong_thread, 1);
}

/* A message with its job inside, bounced 0 -> 3 -> 0 -> 3 ... by reposting the same job (KILL's ask and
 * answer): the pool allocates nothing and never touches the job once its fn starts. */
struct bounce {
    struct sy_loop_job job;
    int hops, on[8];
    atomic_bool done;
};

static void bounce_hop(void *arg)
{
    struct bounce *b = arg;
    int here = b->hops % 2 == 0 ? 0 : 3;
    if (!sy_loop_pool_on_worker(pool, here))
        atomic_fetch_add(&wrong_thread, 1);
    b->on[b->hops++] = here;
    if (b->hops == 8) {
        atomic_store(&b->done, true);
        return;
    }
    sy_loop_pool_post_job(pool, here == 0 ? 3 : 0, &b->job);
}

int main(void)
{
    char err[256];
    evthread_use_pthreads();
    CHECK(sy_loop_pool_new(0, err, sizeof err) == NULL);
    CHECK(sy_loop_pool_new(65, err, sizeof err) == NULL);
    pool = sy_loop_pool_new(4, err, sizeof err);
    CHECK(pool != NULL);
    if (pool == NULL)
        return CHECK_DONE();
    CHECK(sy_loop_pool_size(pool) == 4);
    for (int i = 0; i < 4; i++)
        CHECK(!sy_loop_pool_on_worker(pool, i) && sy_loop_pool_base(pool, i) != NULL);

    /* posts to each worker run there, in order */
    for (int v = 0; v < 100; v++)
        for (int w = 0; w < 4; w++) {
            struct item *it = malloc(sizeof *it);
            *it = (struct item){ w, v };
            CHECK(sy_loop_pool_post(pool, w, record, it));
        }
    int x = 0;
    for (int w = 0; w < 4; w++)
        sy_loop_pool_run(pool, w, noop, &x); /* FIFO: after this every earlier post of w has run */
    CHECK(x == 42);
    CHECK(atomic_load(&posted_done) == 400);
    for (int w = 0; w < 4; w++) {
        CHECK(n_order[w] == 100);
        bool sorted = true;
        for (int v = 0; v < n_order[w]; v++)
            sorted = sorted && order[w][v] == v;
        CHECK(sorted);
    }

    /* run_all: each worker once, on four distinct threads, joined */
    int sum = 0;
    sy_loop_pool_run_all(pool, note_thread, &sum);
    CHECK(sum == 1 + 2 + 3 + 4);
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            CHECK(!pthread_equal(ran_on[i], ran_on[j]));

    /* a worker posting to another */
    struct item *it = malloc(sizeof *it);
    *it = (struct item){ 0, 100 };
    n_order[1] = 0;
    CHECK(sy_loop_pool_post(pool, 0, relay, it));
    sy_loop_pool_run(pool, 0, noop, &x);
    sy_loop_pool_run(pool, 1, noop, &x);
    CHECK(n_order[1] == 1 && order[1][0] == 100);

    /* a caller-owned job posted again from its own fn, across workers */
    struct bounce *b = calloc(1, sizeof *b);
    b->job = (struct sy_loop_job){ .fn = bounce_hop, .arg = b };
    sy_loop_pool_post_job(pool, 0, &b->job);
    for (int spins = 0; !atomic_load(&b->done) && spins < 5000; spins++)
        sy_loop_pool_run(pool, 0, noop, &x);
    CHECK(atomic_load(&b->done) && b->hops == 8 && b->on[0] == 0 && b->on[1] == 3 && b->on[7] == 3);
    free(b);

    /* free with posts still queued: they run before the stop (FIFO), nothing leaks */
    n_order[2] = 0;
    for (int v = 0; v < 10; v++) {
        struct item *p = malloc(sizeof *p);
        *p = (struct item){ 2, v };
        sy_loop_pool_post(pool, 2, record, p);
    }
    sy_loop_pool_free(pool);
    CHECK(atomic_load(&posted_done) == 400 + 1 + 10);
    CHECK(n_order[2] == 10 && order[2][9] == 9);
    sy_loop_pool_free(NULL);
    CHECK(atomic_load(&wrong_thread) == 0);
    return CHECK_DONE();
}
