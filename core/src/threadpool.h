/*
 * threadpool.h - a persistent pthread pool for the data-parallel parts of a
 * forward pass (GEMV row blocks, attention heads).
 *
 *     gm_pool *pool = gm_pool_create(4);          // the caller + 3 workers
 *     gm_pool_run(pool, fn, ctx, n_tasks);       // fn(ctx, t, n_tasks, thread) for every t
 *     gm_pool_free(pool);
 *
 * gm_pool_run publishes one job, the caller and the workers claim task
 * indices from an atomic counter until none are left, and it returns when
 * every task has finished (all writes made by the tasks are visible to the
 * caller then). Idle workers spin for GM_POOL_SPIN_US and then sleep on a
 * condition variable, so a pool costs no CPU between tokens; the caller
 * waits for stragglers the same way. Nothing is allocated per run.
 *
 * Ownership and threading: the pool is an object with no global state (a
 * session or model owns one). gm_pool_run is meant to be called by one
 * thread at a time; if it is called while a run is in progress (from
 * another thread, or from inside a task), that call does not deadlock: it
 * runs its tasks serially on the calling thread, reporting thread 0.
 * gm_pool_free must not race with gm_pool_run.
 */
#ifndef GM_THREADPOOL_H
#define GM_THREADPOOL_H

#include "gm_internal.h"

/* How long an idle thread spins before it sleeps (microseconds). */
#define GM_POOL_SPIN_US 100

typedef struct gm_pool gm_pool;

/*
 * One task. `task` is in [0, n_tasks); `thread` in [0, n_threads) names the
 * thread running it (0 = the caller of gm_pool_run), for per-thread scratch.
 * Tasks of one run may execute in any order and concurrently.
 */
typedef void (*gm_pool_fn)(void *ctx, int task, int n_tasks, int thread);

/*
 * A pool of n_threads threads in total: the caller of gm_pool_run plus
 * n_threads - 1 workers started now. NULL if n_threads is outside
 * [1, GM_POOL_MAX_THREADS] or memory / thread creation fails.
 */
#define GM_POOL_MAX_THREADS 1024
GM_INTERNAL gm_pool *gm_pool_create(int n_threads);

/* Runs fn for tasks 0 .. n_tasks-1 (nothing if n_tasks <= 0). pool == NULL
 * runs them serially on the calling thread. */
GM_INTERNAL void gm_pool_run(gm_pool *pool, gm_pool_fn fn, void *ctx, int n_tasks);

/* Threads in the pool, caller included (1 for NULL). */
GM_INTERNAL int gm_pool_n_threads(const gm_pool *pool);

/* Stops and joins the workers, frees the pool. NULL is a no-op. */
GM_INTERNAL void gm_pool_free(gm_pool *pool);

#endif /* GM_THREADPOOL_H */
