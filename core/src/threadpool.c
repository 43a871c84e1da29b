/*
 * threadpool.c - persistent pthread pool (see threadpool.h).
 *
 * A run is one "generation":
 *   caller: writes fn/ctx/n_tasks, resets next_task, sets pending = workers,
 *           increments `generation` (release) and wakes sleeping workers;
 *   everyone (caller included): t = next_task++ until t >= n_tasks;
 *   worker: decrements `pending` when it runs out of tasks;
 *   caller: waits for pending == 0.
 * The job fields are plain memory: workers read them only after seeing the
 * new generation (acquire), and the caller rewrites them only after seeing
 * pending == 0 (acquire), so they never race.
 *
 * Waiting is spin-then-sleep on both sides. The sleep handshake is the
 * classic Dekker pair on seq_cst atomics, which closes the lost-wakeup
 * window without taking the mutex on the fast path:
 *   sleeper: sleepers++  ; then re-check the condition under the mutex
 *   waker:   publish     ; then if (sleepers) lock + broadcast
 * In any seq_cst order either the sleeper sees the publication or the waker
 * sees the sleeper, who is then blocked in (or about to enter, holding the
 * mutex) pthread_cond_wait and receives the broadcast.
 */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

typedef struct worker {
    struct gm_pool *pool;
    int index; /* 1 .. n_threads-1 */
    pthread_t thread;
} worker;

struct gm_pool {
    int n_threads;
    worker *workers; /* n_threads - 1 */

    /* the current job (see the comment at the top for why these are plain) */
    gm_pool_fn fn;
    void *ctx;
    int n_tasks;

    atomic_int next_task;
    atomic_int pending;         /* workers not yet done with this generation */
    atomic_uint generation;
    atomic_int sleepers;        /* workers in (or entering) the wake_cv wait */
    atomic_int caller_sleeping; /* the caller is in (or entering) the done_cv wait */
    atomic_int stop;
    atomic_int busy;            /* a run is in progress */

    pthread_mutex_t mu;
    pthread_cond_t wake_cv;
    pthread_cond_t done_cv;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Spins until done(pool, arg) or GM_POOL_SPIN_US passed; true if done.
 * Every 256 pauses it reads the clock and yields the core: when the machine
 * has more runnable threads than cores, the thread we wait for may need
 * this very core (measured on 2 loaded cores: ~450 us per short run without
 * the yield, ~30 us with it; on an idle machine the yield returns at once).
 */
static bool spin_until(const gm_pool *pool, bool (*done)(const gm_pool *, unsigned), unsigned arg) {
    int64_t deadline = 0;
    for (unsigned i = 0;; i++) {
        if (done(pool, arg)) return true;
        cpu_relax();
        if ((i & 255) == 255) {
            int64_t t = now_ns();
            if (!deadline) deadline = t + (int64_t)GM_POOL_SPIN_US * 1000;
            else if (t >= deadline) return false;
            sched_yield();
        }
    }
}

static bool generation_changed(const gm_pool *pool, unsigned seen) {
    return atomic_load_explicit(&pool->generation, memory_order_acquire) != seen;
}

static bool job_finished(const gm_pool *pool, unsigned unused) {
    (void)unused;
    return atomic_load_explicit(&pool->pending, memory_order_acquire) == 0;
}

/* Claims and runs tasks of the current job until none is left. */
static void run_tasks(gm_pool *pool, int thread) {
    const gm_pool_fn fn = pool->fn;
    void *ctx = pool->ctx;
    const int n = pool->n_tasks;
    for (;;) {
        int t = atomic_fetch_add_explicit(&pool->next_task, 1, memory_order_relaxed);
        if (t >= n) break;
        fn(ctx, t, n, thread);
    }
}

/* Worker: waits for a generation other than `seen`, returns it. */
static unsigned wait_for_job(gm_pool *pool, unsigned seen) {
    if (!spin_until(pool, generation_changed, seen)) {
        pthread_mutex_lock(&pool->mu);
        atomic_fetch_add(&pool->sleepers, 1); /* seq_cst: see the top comment */
        while (atomic_load(&pool->generation) == seen) pthread_cond_wait(&pool->wake_cv, &pool->mu);
        atomic_fetch_sub(&pool->sleepers, 1);
        pthread_mutex_unlock(&pool->mu);
    }
    return atomic_load_explicit(&pool->generation, memory_order_acquire);
}

static void *worker_main(void *arg) {
    worker *w = arg;
    gm_pool *pool = w->pool;
    unsigned seen = 0; /* generation starts at 0 with no job */
    for (;;) {
        seen = wait_for_job(pool, seen);
        if (atomic_load_explicit(&pool->stop, memory_order_acquire)) break;
        run_tasks(pool, w->index);
        if (atomic_fetch_sub(&pool->pending, 1) == 1 && atomic_load(&pool->caller_sleeping)) {
            pthread_mutex_lock(&pool->mu);
            pthread_cond_broadcast(&pool->done_cv);
            pthread_mutex_unlock(&pool->mu);
        }
    }
    return NULL;
}

static void wake_workers(gm_pool *pool) {
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->wake_cv);
        pthread_mutex_unlock(&pool->mu);
    }
}

/* Stops and joins the first n_started workers. */
static void stop_workers(gm_pool *pool, int n_started) {
    atomic_store(&pool->stop, 1);
    pthread_mutex_lock(&pool->mu);
    atomic_fetch_add(&pool->generation, 1);
    pthread_cond_broadcast(&pool->wake_cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < n_started; i++) pthread_join(pool->workers[i].thread, NULL);
}

gm_pool *gm_pool_create(int n_threads) {
    if (n_threads < 1 || n_threads > GM_POOL_MAX_THREADS) return NULL;
    gm_pool *pool = gm_calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->n_threads = n_threads;
    atomic_init(&pool->next_task, 0);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->caller_sleeping, 0);
    atomic_init(&pool->stop, 0);
    atomic_init(&pool->busy, 0);
    if (n_threads == 1) return pool;

    pool->workers = gm_calloc((size_t)n_threads - 1, sizeof *pool->workers);
    if (!pool->workers) {
        gm_free(pool);
        return NULL;
    }
    if (pthread_mutex_init(&pool->mu, NULL) != 0) goto fail_mu;
    if (pthread_cond_init(&pool->wake_cv, NULL) != 0) goto fail_wake;
    if (pthread_cond_init(&pool->done_cv, NULL) != 0) goto fail_done;
    for (int i = 0; i < n_threads - 1; i++) {
        pool->workers[i].pool = pool;
        pool->workers[i].index = i + 1;
        if (pthread_create(&pool->workers[i].thread, NULL, worker_main, &pool->workers[i]) != 0) {
            stop_workers(pool, i);
            goto fail_threads;
        }
    }
    return pool;

fail_threads:
    pthread_cond_destroy(&pool->done_cv);
fail_done:
    pthread_cond_destroy(&pool->wake_cv);
fail_wake:
    pthread_mutex_destroy(&pool->mu);
fail_mu:
    gm_free(pool->workers);
    gm_free(pool);
    return NULL;
}

static void run_serial(gm_pool_fn fn, void *ctx, int n_tasks) {
    for (int t = 0; t < n_tasks; t++) fn(ctx, t, n_tasks, 0);
}

void gm_pool_run(gm_pool *pool, gm_pool_fn fn, void *ctx, int n_tasks) {
    if (n_tasks <= 0) return;
    if (!pool || pool->n_threads == 1 || n_tasks == 1) {
        run_serial(fn, ctx, n_tasks);
        return;
    }
    if (atomic_exchange(&pool->busy, 1)) { /* nested or concurrent call: see threadpool.h */
        run_serial(fn, ctx, n_tasks);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n_tasks = n_tasks;
    atomic_store_explicit(&pool->next_task, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->pending, pool->n_threads - 1, memory_order_relaxed);
    atomic_fetch_add(&pool->generation, 1); /* seq_cst: publishes the job (release) */
    wake_workers(pool);

    run_tasks(pool, 0);

    if (!spin_until(pool, job_finished, 0)) {
        pthread_mutex_lock(&pool->mu);
        atomic_store(&pool->caller_sleeping, 1);
        while (atomic_load(&pool->pending) != 0) pthread_cond_wait(&pool->done_cv, &pool->mu);
        atomic_store(&pool->caller_sleeping, 0);
        pthread_mutex_unlock(&pool->mu);
    }
    atomic_store_explicit(&pool->busy, 0, memory_order_release);
}

int gm_pool_n_threads(const gm_pool *pool) { return pool ? pool->n_threads : 1; }

void gm_pool_free(gm_pool *pool) {
    if (!pool) return;
    if (pool->n_threads > 1) {
        stop_workers(pool, pool->n_threads - 1);
        pthread_cond_destroy(&pool->done_cv);
        pthread_cond_destroy(&pool->wake_cv);
        pthread_mutex_destroy(&pool->mu);
    }
    gm_free(pool->workers);
    gm_free(pool);
}
