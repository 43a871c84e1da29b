/*
 * matmul.h - Y = X W^T for every weight type the model can hold.
 *
 * Decode (a few rows of X): one activation row at a time, converted once
 * (Q8_0 blocks for quantized weights), then the weight rows are split into
 * row blocks run on the session's thread pool through the kernel table
 * (kernels.h: SIMD chosen once at run time). Within a kernel variant a
 * row's result does not depend on how rows are split, so results are the
 * same for any thread count.
 * Prefill of row-major matrices (from GM_GEMM_MIN_BATCH rows for f32
 * weights, 32 for the others: gm_matmul_row_at_a_time): OpenBLAS sgemm,
 * weights widened to f32 in row blocks unless they already are f32.
 * Decision: BLAS measured faster than per-row dots for such batches; the
 * pool's threads sleep while OpenBLAS runs its own.
 * Packed Q4_0 matrices (GM_LAYOUT_Q4_0X16, pack.h) take the int8 path for
 * any batch: activation rows quantized to Q8_0 once (over the pool), then
 * groups of 16 weight rows split over the pool; each group's nibbles are
 * decoded once for up to 8 activation rows (avx512_vnni) or once for up
 * to 64 on AMX tiles (kern_amx.c). Row r of token t then has exactly the
 * bits of the reference dot, so a batched prefill equals token-by-token
 * decoding.
 */
#ifndef GM_MATMUL_H
#define GM_MATMUL_H

#include "kernels.h"
#include "threadpool.h"

#define GM_GEMM_MIN_BATCH 4
/* Activation rows quantized at a time for the packed int8 path. */
#define GM_MATMUL_QROWS 64

typedef struct gm_matmul_ctx {
    const gm_kernels *k;
    gm_pool *pool;      /* NULL: the calling thread does everything */
    float *widen;       /* [GM_GEMM_BLOCK_ROWS * max_cols] weight rows widened for sgemm */
    void *xq;           /* activation rows as Q8_0 blocks [GM_MATMUL_QROWS][max_cols / 32] */
    struct gm_q8_aux *xa; /* their gm_q8_aux [GM_MATMUL_QROWS][max_cols / 32] (packed kernels) */
    int64_t max_cols;
} gm_matmul_ctx;

/* Allocates the scratch for matrices of up to max_cols columns and a pool of n_threads (0 = all cores). */
GM_INTERNAL gm_status gm_matmul_init(gm_matmul_ctx *c, int64_t max_cols, int n_threads, gm_error *err);
GM_INTERNAL void gm_matmul_free(gm_matmul_ctx *c);

/*
 * Y[T, out] = X[T, in] @ W[0:out, 0:in]^T: only the leading `out` rows and
 * `in` columns of W are used (MatFormer FFN prefixes; `in` a multiple of
 * 32 for Q8_0/Q4_0 weights). in <= max_cols.
 */
/* Whether gm_matmul computes T activation rows of W one row at a time (GEMV path). */
GM_INTERNAL bool gm_matmul_row_at_a_time(const gm_matrix *W, int64_t T);

/* The kernel the one-row (GEMV) path uses for W: one definition, shared with matmul_sparse.c. */
GM_INTERNAL gm_kern_wtype gm_matmul_kernel_type(const gm_matrix *W);

/* Scratch for batch row t's activation as Q8_0 (max_cols / 32 blocks), t < GM_MATMUL_QROWS; gm_matmul overwrites it. */
GM_INTERNAL void *gm_matmul_xq_row(const gm_matmul_ctx *c, int t);

GM_INTERNAL void gm_matmul(const gm_matmul_ctx *c, const gm_matrix *W, int64_t out, int64_t in, const float *X,
                           int64_t T, float *Y);

/* Most matrices gm_matmul_shared takes in one pass. */
#define GM_MATMUL_MAX_SHARED 4

/*
 * Y[m] = gm_matmul(W[m], out[m], in, X, T) for m < n, matrices that read the
 * same input (q/k/v, gate/up): packed ones in a batch share one activation
 * quantization and one pool run over all their row groups. The same bits as
 * n calls of gm_matmul; other layouts (or n > GM_MATMUL_MAX_SHARED) are
 * exactly those calls.
 */
GM_INTERNAL void gm_matmul_shared(const gm_matmul_ctx *c, int n, const gm_matrix *const *W, const int64_t *out,
                                  int64_t in, const float *X, int64_t T, float *const *Y);

#endif
