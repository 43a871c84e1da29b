/*
 * test_threadpool.c - the persistent pool (threadpool.h): every task runs
 * exactly once, on a valid thread index, truly in parallel; many short runs;
 * the sleep path (idle workers must not burn CPU) and the wake-up after it;
 * nested runs; create/free edge cases, including failed allocations when
 * linked against the allocation-failing core.
 */
#include "threadpool.h"
#include "test_util.h"

#include <stdatomic.h>
#include <sys/resource.h>
#include <time.h>

/* Present only in the GM_TEST_ALLOC_FAIL core (alloc.c). */
extern void gm_test_fail_allocation_after(long n) __attribute__((weak));

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * The core links OpenBLAS, whose server threads start with the process and
 * spin for ~0.1 s before they sleep: wait (up to 5 s) until the process uses
 * under 2 ms of CPU per 100 ms, so the idle checks below measure our pool.
 */
static void wait_until_quiet(void) {
    for (int i = 0; i < 50; i++) {
        const double c0 = cpu_s();
        sleep_ms(100);
        if (cpu_s() - c0 < 0.002) return;
    }
}

/* ---- every task once ---- */

enum { MAX_TASKS = 4096 };

typedef struct count_ctx {
    atomic_int hits[MAX_TASKS];
    atomic_int bad_args;
    atomic_int threads_seen; /* bit per thread index < 32 */
    int n_threads;
    int expect_tasks;
} count_ctx;

static void count_task(void *p, int task, int n_tasks, int thread) {
    count_ctx *c = p;
    if (task < 0 || task >= n_tasks || n_tasks != c->expect_tasks || thread < 0 || thread >= c->n_threads)
        atomic_fetch_add(&c->bad_args, 1);
    else atomic_fetch_add(&c->hits[task], 1);
    if (thread >= 0 && thread < 32) atomic_fetch_or(&c->threads_seen, 1 << thread);
}

static void check_each_task_once(gm_pool *pool, int n_threads, int n_tasks) {
    static count_ctx c;
    memset(&c, 0, sizeof c);
    c.n_threads = n_threads;
    c.expect_tasks = n_tasks;
    gm_pool_run(pool, count_task, &c, n_tasks);
    int wrong = 0;
    for (int t = 0; t < MAX_TASKS; t++) wrong += atomic_load(&c.hits[t]) != (t < n_tasks ? 1 : 0);
    CHECK(wrong == 0 && atomic_load(&c.bad_args) == 0, "%d threads, %d tasks: %d tasks not run exactly once, %d bad args",
          n_threads, n_tasks, wrong, atomic_load(&c.bad_args));
}

/* ---- real parallelism: each task waits until all n have started ---- */

typedef struct rendezvous {
    atomic_int started;
    int n;
    atomic_int timed_out;
} rendezvous;

static void rendezvous_task(void *p, int task, int n_tasks, int thread) {
    (void)task, (void)n_tasks, (void)thread;
    rendezvous *r = p;
    atomic_fetch_add(&r->started, 1);
    const double deadline = now_s() + 10.0;
    while (atomic_load(&r->started) < r->n)
        if (now_s() > deadline) {
            atomic_store(&r->timed_out, 1);
            return;
        }
}

/* ---- many short runs ---- */

typedef struct sum_ctx {
    int64_t slots[64];
} sum_ctx;

static void sum_task(void *p, int task, int n_tasks, int thread) {
    (void)n_tasks, (void)thread;
    sum_ctx *s = p;
    s->slots[task] += task + 1; /* each slot written by one task per run: no race */
}

static void many_short_runs(gm_pool *pool, int n_threads, int runs) {
    sum_ctx s;
    memset(&s, 0, sizeof s);
    const double t0 = now_s();
    for (int i = 0; i < runs; i++) gm_pool_run(pool, sum_task, &s, 2 + i % 30);
    const double dt = now_s() - t0;
    int wrong = 0;
    for (int t = 0; t < 32; t++) {
        int64_t want = 0;
        for (int i = 0; i < runs; i++) want += t < 2 + i % 30 ? t + 1 : 0;
        wrong += s.slots[t] != want;
    }
    CHECK(wrong == 0, "%d threads: %d slots wrong after %d runs", n_threads, wrong, runs);
    printf("  %d threads: %d runs in %.3f s (%.2f us per run)\n", n_threads, runs, dt, 1e6 * dt / runs);
}

/* ---- nested runs execute serially instead of deadlocking ---- */

typedef struct nest_ctx {
    gm_pool *pool;
    atomic_int inner;
} nest_ctx;

static void inner_task(void *p, int task, int n_tasks, int thread) {
    (void)task, (void)n_tasks, (void)thread;
    atomic_fetch_add(&((nest_ctx *)p)->inner, 1);
}

static void outer_task(void *p, int task, int n_tasks, int thread) {
    (void)task, (void)n_tasks, (void)thread;
    nest_ctx *c = p;
    gm_pool_run(c->pool, inner_task, c, 5);
}

static void test_pool(int n_threads) {
    gm_pool *pool = gm_pool_create(n_threads);
    CHECK(pool != NULL, "gm_pool_create(%d)", n_threads);
    if (!pool) return;
    CHECK(gm_pool_n_threads(pool) == n_threads, "n_threads %d", gm_pool_n_threads(pool));

    static const int task_counts[] = {0, 1, 2, 3, 4, 7, 64, 1000, MAX_TASKS};
    for (size_t i = 0; i < GM_ARRAY_LEN(task_counts); i++) check_each_task_once(pool, n_threads, task_counts[i]);

    if (n_threads > 1) { /* all threads run tasks at once */
        rendezvous r = {.n = n_threads};
        gm_pool_run(pool, rendezvous_task, &r, n_threads);
        CHECK(!atomic_load(&r.timed_out), "%d threads never ran %d tasks concurrently", n_threads, n_threads);
    }

    many_short_runs(pool, n_threads, 5000);

    /* idle: after the spin, workers sleep; the process must not burn CPU */
    const double c0 = cpu_s();
    sleep_ms(300);
    const double idle_cpu = cpu_s() - c0;
    CHECK(idle_cpu < 0.1, "%d threads: %.3f s of CPU while idle for 0.3 s", n_threads, idle_cpu);
    printf("  %d threads: %.1f ms CPU while idle 300 ms\n", n_threads, 1e3 * idle_cpu);
    check_each_task_once(pool, n_threads, 100); /* wake-up from sleep */
    for (int i = 0; i < 20; i++) { /* runs spaced around the spin window */
        sleep_ms(i % 3 == 0 ? 1 : 0);
        check_each_task_once(pool, n_threads, 1 + i);
    }

    nest_ctx nc = {.pool = pool};
    gm_pool_run(pool, outer_task, &nc, 4);
    CHECK(atomic_load(&nc.inner) == 20, "nested runs: %d inner tasks, wanted 20", atomic_load(&nc.inner));

    gm_pool_free(pool);
}

int main(void) {
    wait_until_quiet();
    CHECK(gm_pool_create(0) == NULL && gm_pool_create(-1) == NULL, "n_threads < 1 is rejected");
    CHECK(gm_pool_create(GM_POOL_MAX_THREADS + 1) == NULL, "too many threads is rejected");
    CHECK(gm_pool_n_threads(NULL) == 1, "NULL pool has one thread");
    gm_pool_free(NULL);

    check_each_task_once(NULL, 1, 10); /* NULL pool: serial */

    for (int n = 1; n <= 4; n++) test_pool(n);

    /* free right after creation, and right after a run (workers still spinning) */
    for (int i = 0; i < 50; i++) {
        gm_pool *p = gm_pool_create(2 + i % 3);
        CHECK(p != NULL, "create %d", i);
        if (i & 1) check_each_task_once(p, 2 + i % 3, 8);
        gm_pool_free(p);
    }

    if (gm_test_fail_allocation_after) { /* allocation failures: NULL, no leak (ASan) */
        for (long n = 1; n <= 2; n++) {
            gm_test_fail_allocation_after(n);
            gm_pool *p = gm_pool_create(3);
            gm_test_fail_allocation_after(0);
            CHECK(p == NULL, "allocation %ld failing: pool not NULL", n);
            gm_pool_free(p);
        }
    }
    return gm_test_summary();
}
