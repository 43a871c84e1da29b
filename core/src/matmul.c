/* matmul.c - see matmul.h. */
#include "matmul.h"

#include "ops.h"
#include "pack.h"
#include "quant.h"

#ifdef GM_USE_BLAS
#include <cblas.h>
#endif

/* Rows widened per sgemm block: big enough for BLAS efficiency, small enough for cache. */
#define GM_GEMM_BLOCK_ROWS 512
/* Below this many multiply-adds a GEMV runs on the calling thread (pool wake-up costs more). */
#define GM_GEMV_PARALLEL_MIN (1 << 15)

gm_status gm_matmul_init(gm_matmul_ctx *c, int64_t max_cols, int n_threads, gm_error *err) {
    memset(c, 0, sizeof *c);
    c->k = gm_kern();
    c->max_cols = max_cols;
    size_t widen_bytes;
    if (!gm_mul_size((size_t)GM_GEMM_BLOCK_ROWS * sizeof(float), (size_t)max_cols, &widen_bytes))
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "matrix too wide (%lld columns)", (long long)max_cols);
    c->widen = gm_aligned_alloc(widen_bytes);
    const size_t blocks = (size_t)(max_cols / 32 + 1) * GM_MATMUL_QROWS;
    c->xq = gm_aligned_alloc(blocks * sizeof(gm_block_q8_0));
    c->xa = gm_aligned_alloc(blocks * sizeof(gm_q8_aux));
    if (n_threads <= 0) n_threads = gm_cpu_count();
    if (n_threads > 1) c->pool = gm_pool_create(n_threads);
    if (!c->widen || !c->xq || !c->xa || (n_threads > 1 && !c->pool)) {
        gm_matmul_free(c);
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory (matmul scratch / %d threads)", n_threads);
    }
    return GM_OK;
}

void *gm_matmul_xq_row(const gm_matmul_ctx *c, int t) {
    return (gm_block_q8_0 *)c->xq + (size_t)t * (size_t)(c->max_cols / 32 + 1);
}

void gm_matmul_free(gm_matmul_ctx *c) {
    gm_pool_free(c->pool);
    gm_aligned_free(c->widen);
    gm_aligned_free(c->xq);
    gm_aligned_free(c->xa);
    memset(c, 0, sizeof *c);
}

gm_kern_wtype gm_matmul_kernel_type(const gm_matrix *W) {
    if (W->layout == GM_LAYOUT_Q4_0X16) return GM_KERN_Q4_0X16;
    switch (W->type) {
    case GM_DTYPE_BF16: return GM_KERN_BF16;
    case GM_DTYPE_F16: return GM_KERN_F16;
    case GM_DTYPE_Q8_0: return GM_KERN_Q8_0;
    case GM_DTYPE_Q4_0: return GM_KERN_Q4_0;
    default: return GM_KERN_F32;
    }
}

/* y = W[0:out, 0:in] x, rows split over the pool (kernels.h's threaded GEMV). */
static void gemv(const gm_matmul_ctx *c, const gm_matrix *W, int64_t out, int64_t in, const float *x, float *y) {
    gm_kern_gemv_job job = {c->k, gm_matmul_kernel_type(W), W->data, W->row_stride, x, in, y, out, 0, NULL};
    if (gm_dtype_block(W->type) > 1) {
        c->k->quantize_row_q8_0(x, c->xq, in); /* ggml's vec_dot_type for Q8_0 / Q4_0 weights */
        job.x = c->xq;
    }
    if (job.type == GM_KERN_Q4_0X16) {
        gm_q8_0_aux(c->xq, in, c->xa);
        job.xa = c->xa;
    }
    int threads = out * in < GM_GEMV_PARALLEL_MIN ? 1 : gm_pool_n_threads(c->pool);
    int n_tasks = gm_kern_gemv_plan(&job, threads);
    if (threads == 1) {
        for (int t = 0; t < n_tasks; t++) gm_kern_gemv_task(&job, t, n_tasks, 0);
        return;
    }
    gm_pool_run(c->pool, gm_kern_gemv_task, &job, n_tasks);
}

/* ---- packed Q4_0x16: groups of 16 rows over the pool ---- */

/* Up to GM_MATMUL_MAX_SHARED packed matrices with one input, their groups split into tasks in one pool run. */
typedef struct packed_job {
    const gm_kernels *k;
    int n;                                        /* matrices */
    const gm_matrix *W[GM_MATMUL_MAX_SHARED];
    int64_t out[GM_MATMUL_MAX_SHARED];
    float *Y[GM_MATMUL_MAX_SHARED];               /* [T][out[m]], this pass's first row */
    int first_task[GM_MATMUL_MAX_SHARED + 1];     /* matrix m has tasks first_task[m] .. first_task[m + 1] - 1 */
    const void *X;                                /* T rows of nb Q8_0 blocks */
    const gm_q8_aux *xa;                          /* [T][nb] */
    int64_t nb, T;
    int64_t groups_per_task;
} packed_job;

static void packed_task(void *ctx, int task, int n_tasks, int thread) {
    const packed_job *j = ctx;
    (void)n_tasks;
    (void)thread;
    int m = 0;
    while (task >= j->first_task[m + 1]) m++;
    const int64_t r0 = (int64_t)(task - j->first_task[m]) * j->groups_per_task * GM_PACK_ROWS;
    const int64_t r1 = GM_MIN(r0 + j->groups_per_task * GM_PACK_ROWS, j->out[m]);
    if (r0 < r1)
        j->k->matmul_q4_0x16(j->W[m]->data, j->W[m]->cols / GM_QK4_0, j->X, j->xa, j->nb, j->T, j->Y[m], j->out[m],
                             r0, r1);
}

typedef struct quantize_job {
    const gm_kernels *k;
    const float *X;    /* [T][in] */
    int64_t in, T;
    gm_block_q8_0 *xq; /* [T][in / 32] */
    gm_q8_aux *xa;     /* [T][in / 32] */
} quantize_job;

/* gm_pool_fn: rows [T * task / n, T * (task + 1) / n) to Q8_0 and their aux (byte for byte what one thread gives). */
static void quantize_task(void *ctx, int task, int n_tasks, int thread) {
    const quantize_job *j = ctx;
    (void)thread;
    const int64_t nb = j->in / GM_QK8_0;
    for (int64_t t = j->T * task / n_tasks; t < j->T * (task + 1) / n_tasks; t++) {
        j->k->quantize_row_q8_0(j->X + t * j->in, j->xq + t * nb, j->in);
        gm_q8_0_aux(j->xq + t * nb, j->in, j->xa + t * nb);
    }
}

/*
 * Y_m[T, out_m] = X W_m^T for n packed matrices sharing X and T > 1 (one
 * row goes through gemv), GM_MATMUL_QROWS activation rows at a time: the
 * rows are quantized over the pool once for all the matrices, then about
 * 2 product tasks per thread over all their groups (long tasks: a group's
 * tiles are decoded once for all those rows).
 */
static void packed_matmul(const gm_matmul_ctx *c, int n, const gm_matrix *const *W, const int64_t *out, int64_t in,
                          const float *X, int64_t T, float *const *Y) {
    const int64_t nb = in / GM_QK4_0;
    int64_t groups = 0, work = 0;
    for (int m = 0; m < n; m++) groups += (out[m] + GM_PACK_ROWS - 1) / GM_PACK_ROWS, work += out[m] * in * T;
    const int threads = work < GM_GEMV_PARALLEL_MIN ? 1 : gm_pool_n_threads(c->pool);
    packed_job job = {.k = c->k, .n = n, .X = c->xq, .xa = c->xa, .nb = nb};
    const int64_t want = (int64_t)threads * 2;
    job.groups_per_task = (groups + want - 1) / want;
    for (int m = 0; m < n; m++) {
        job.W[m] = W[m], job.out[m] = out[m];
        const int64_t gm = (out[m] + GM_PACK_ROWS - 1) / GM_PACK_ROWS;
        job.first_task[m + 1] = job.first_task[m] + (int)((gm + job.groups_per_task - 1) / job.groups_per_task);
    }
    const int n_tasks = job.first_task[n];
    for (int64_t t0 = 0; t0 < T; t0 += GM_MATMUL_QROWS) {
        const int64_t nt = GM_MIN(GM_MATMUL_QROWS, T - t0);
        quantize_job q = {c->k, X + t0 * in, in, nt, c->xq, c->xa};
        job.T = nt;
        for (int m = 0; m < n; m++) job.Y[m] = Y[m] + t0 * out[m];
        if (threads == 1) {
            quantize_task(&q, 0, 1, 0);
            for (int t = 0; t < n_tasks; t++) packed_task(&job, t, n_tasks, 0);
        } else {
            gm_pool_run(c->pool, quantize_task, &q, (int)GM_MIN(nt, threads));
            gm_pool_run(c->pool, packed_task, &job, n_tasks);
        }
    }
}

#ifdef GM_USE_BLAS
typedef struct widen_job {
    const gm_matrix *W;
    int64_t r0, nr, in;
    float *dst;
} widen_job;

static void widen_task(void *ctx, int task, int n_tasks, int thread) {
    const widen_job *j = ctx;
    (void)thread;
    for (int64_t r = j->nr * task / n_tasks; r < j->nr * (task + 1) / n_tasks; r++)
        gm_matrix_row(j->W, j->r0 + r, 0, j->in, j->dst + r * j->in);
}

static void gemm_blas(const gm_matmul_ctx *c, const gm_matrix *W, int64_t out, int64_t in, const float *X, int64_t T,
                      float *Y) {
    if (W->type == GM_DTYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)out, (int)in, 1.0f, X, (int)in, W->data,
                    (int)W->row_stride, 0.0f, Y, (int)out);
        return;
    }
    int threads = gm_pool_n_threads(c->pool);
    for (int64_t r0 = 0; r0 < out; r0 += GM_GEMM_BLOCK_ROWS) {
        widen_job j = {W, r0, GM_MIN(GM_GEMM_BLOCK_ROWS, out - r0), in, c->widen};
        gm_pool_run(c->pool, widen_task, &j, (int)GM_MIN(threads, j.nr)); /* widen rows in parallel */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)j.nr, (int)in, 1.0f, X, (int)in, c->widen,
                    (int)in, 0.0f, Y + r0, (int)out);
    }
}

/*
 * Batch size from which sgemm beats one GEMV per row. F32 weights go
 * straight to sgemm. Other types must be widened first, which costs about
 * as much as several GEMVs (measured on E2B with Q4_0 weights: 8 rows took
 * 5x longer through widen + sgemm than as 8 GEMVs), so they switch later.
 */
static int64_t gemm_min_batch(gm_dtype t) { return t == GM_DTYPE_F32 ? GM_GEMM_MIN_BATCH : 32; }
#endif

bool gm_matmul_row_at_a_time(const gm_matrix *W, int64_t T) {
    if (W->layout == GM_LAYOUT_Q4_0X16) return T == 1;
#ifdef GM_USE_BLAS
    return T < gemm_min_batch(W->type);
#else
    return true;
#endif
}

void gm_matmul(const gm_matmul_ctx *c, const gm_matrix *W, int64_t out, int64_t in, const float *X, int64_t T,
               float *Y) {
    if (W->layout == GM_LAYOUT_Q4_0X16 && T > 1) {
        packed_matmul(c, 1, &W, &out, in, X, T, &Y);
        return;
    }
#ifdef GM_USE_BLAS
    if (T >= gemm_min_batch(W->type)) {
        gemm_blas(c, W, out, in, X, T, Y);
        return;
    }
#endif
    for (int64_t t = 0; t < T; t++) gemv(c, W, out, in, X + t * in, Y + t * out);
}

void gm_matmul_shared(const gm_matmul_ctx *c, int n, const gm_matrix *const *W, const int64_t *out, int64_t in,
                      const float *X, int64_t T, float *const *Y) {
    bool packed = T > 1 && n <= GM_MATMUL_MAX_SHARED;
    for (int m = 0; m < n; m++) packed = packed && W[m]->layout == GM_LAYOUT_Q4_0X16;
    if (packed) {
        packed_matmul(c, n, W, out, in, X, T, Y);
        return;
    }
    for (int m = 0; m < n; m++) gm_matmul(c, W[m], out[m], in, X, T, Y[m]);
}
