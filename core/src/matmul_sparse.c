/* matmul_sparse.c - see matmul_sparse.h. */
#include "matmul_sparse.h"

/*
 * Below this many multiply-adds the rows run on the calling thread: waking
 * the pool costs more. Measured with E2B's up_proj (Q4_0, 2048 columns, 2
 * threads, AVX-512 VNNI): 410 rows 190 us on one thread, 105 us on two;
 * 100 rows 40 vs 53 us; the two meet near 200 rows (4e5).
 */
#define GM_ROWS_PARALLEL_MIN 400000
/* Rows per task at least: a task is a few microseconds of work. */
#define GM_ROWS_MIN_PER_TASK 16

typedef struct rows_job {
    gm_kern_gemv_job gemv; /* the one-row path's job: same kernel, same converted x */
    const int32_t *rows;
    int n_rows, per_task;
    size_t stride_bytes;   /* between rows of W */
    size_t row_bytes;      /* of the columns used of a row (what the prefetch fetches) */
} rows_job;

/* Rows this far ahead in the list are prefetched: scattered rows defeat the hardware prefetcher. */
#define GM_ROWS_PREFETCH_AHEAD 2

static void prefetch_row(const rows_job *j, int32_t r) {
    const char *p = (const char *)j->gemv.W + j->stride_bytes * (size_t)r;
    for (size_t o = 0; o < j->row_bytes; o += 64) __builtin_prefetch(p + o);
}

/* gm_pool_fn: the task's slice of the row list, consecutive rows in one kernel call (its 4-row passes). */
static void rows_task(void *ctx, int task, int n_tasks, int thread) {
    (void)n_tasks;
    (void)thread;
    const rows_job *j = ctx;
    const int i0 = task * j->per_task, i1 = GM_MIN(j->n_rows, (task + 1) * j->per_task);
    for (int i = i0; i < GM_MIN(i1, i0 + GM_ROWS_PREFETCH_AHEAD); i++) prefetch_row(j, j->rows[i]);
    for (int i = i0; i < i1;) {
        int e = i + 1;
        while (e < i1 && j->rows[e] == j->rows[e - 1] + 1) e++;
        for (int f = i + GM_ROWS_PREFETCH_AHEAD; f < GM_MIN(i1, e + GM_ROWS_PREFETCH_AHEAD); f++)
            prefetch_row(j, j->rows[f]);
        gm_kern_gemv_range(&j->gemv, j->rows[i], (int64_t)j->rows[e - 1] + 1);
        i = e;
    }
}

/* The job for rows of W against x, with x converted into xq first when W is block-quantized (ggml's vec_dot_type). */
static rows_job rows_job_for(const gm_kernels *k, const gm_matrix *W, int64_t out, int64_t in, const float *x,
                             void *xq, const int32_t *rows, int n_rows, float *y) {
    rows_job j = {{k, gm_matmul_kernel_type(W), W->data, W->row_stride, x, in, y, out, 0, NULL}, rows, n_rows,
                  n_rows, gm_dtype_row_bytes(W->type, W->row_stride), gm_dtype_row_bytes(W->type, in)};
    if (gm_dtype_block(W->type) > 1) {
        k->quantize_row_q8_0(x, xq, in);
        j.gemv.x = xq;
    }
    return j;
}

void gm_matmul_rows_local(const gm_kernels *k, const gm_matrix *W, int64_t out, int64_t in, const float *x, void *xq,
                          const int32_t *rows, int n_rows, float *y) {
    rows_job j = rows_job_for(k, W, out, in, x, xq, rows, n_rows, y);
    rows_task(&j, 0, 1, 0);
}

int64_t gm_matmul_rows(const gm_matmul_ctx *c, const gm_matrix *W, int64_t out, int64_t in, const float *x,
                    const int32_t *rows, int n_rows, float *y) {
    if (W->layout != GM_LAYOUT_ROWS) { /* interleaved rows: no cheap row subset */
        gm_matmul(c, W, out, in, x, 1, y);
        return out;
    }
    rows_job j = rows_job_for(c->k, W, out, in, x, c->xq, rows, n_rows, y);
    int threads = (int64_t)n_rows * in < GM_ROWS_PARALLEL_MIN ? 1 : gm_pool_n_threads(c->pool);
    if (threads == 1) {
        rows_task(&j, 0, 1, 0);
        return n_rows;
    }
    /* 2 tasks per thread: the rows cost the same, so balance is easy */
    j.per_task = GM_MAX(GM_ROWS_MIN_PER_TASK, (n_rows + 2 * threads - 1) / (2 * threads));
    gm_pool_run(c->pool, rows_task, &j, (n_rows + j.per_task - 1) / j.per_task);
    return n_rows;
}
