/*
 * kernels.h - the CPU kernel table: dot products, row-block GEMV, activation
 * quantization and the per-token elementwise ops, in one struct of function
 * pointers chosen once at run time.
 *
 *     const gm_kernels *k = gm_kern();          // chosen once, immutable
 *     k->quantize_row_q8_0(x, xq, n);           // activations -> Q8_0, once per row
 *     k->gemv_q4_0(W, n, xq, n, y, r0, r1);     // y[r] = W[r,:] . x for r in [r0, r1)
 *
 * Variants (one table each; kern_dispatch.c knows which the CPU can run):
 *   ref          kern_ref.c     portable scalar C11: the readable reference
 *   avx2         kern_avx2.c    AVX2 + FMA + F16C
 *   avx512       kern_avx512.c  AVX-512 F/DQ/BW/VL (+ AVX2/FMA/F16C)
 *   avx512_vnni  kern_avx512.c  avx512 + VNNI: vpdpbusd for the Q8_0 / Q4_0 dots
 *   avx512_bf16  kern_avx512.c  avx512_vnni + AVX512_BF16: vdpbf16ps for the bf16 x bf16 dots
 *   avx512_amx   kern_avx512.c  avx512_bf16 + AMX-INT8 (kern_amx.c): tdpbssd tiles for the
 *                               packed Q4_0 products of 16 and more activation rows
 *   neon         kern_neon.c    AArch64 Advanced SIMD
 *   neon_dotprod kern_neon.c    neon + the ARMv8.2 dot product (sdot)
 * The SIMD files compile without -m flags (#pragma GCC target), so the
 * library runs on any CPU of its architecture; dispatch never hands out a
 * table whose instructions the CPU or the OS (XSAVE state) lacks.
 *
 * Selection: gm_kern() picks the best supported variant the first time it is
 * called (pthread_once), unless the environment variable GEMMA3N_KERNELS
 * names a variant (exact name from the list above), which is then used if
 * the CPU supports it. An unknown or unsupported name is ignored (the best
 * variant is used; gm_kern_selection() says so). The environment is read
 * only that once. The chosen table is a pointer to a const struct: the only
 * global state of the kernel layer, written once, immutable afterwards.
 *
 * Numerical contract (what tests/kernels/test_kernels.c checks on every
 * variant the host supports):
 *  - Elementwise ops that need no transcendental (axpy, scale, mul,
 *    f32_to_bf16, quantize_row_q8_0, max_f32) give the reference's bits exactly:
 *    same operations in the same order, no FMA contraction (GCC: -std=c11
 *    implies -ffp-contract=off; clang: each kern_*.c says
 *    #pragma STDC FP_CONTRACT OFF).
 *  - Reductions (dots, GEMV, sumsq, exp_sum's sum) differ from the reference
 *    only by summation order: within (n + 2) * 2^-24 * sum|terms| of the exact
 *    sum. Quantized dots compute the exact same int32 per-block sums as the
 *    reference; only the f32 combination of the blocks is reordered.
 *  - Within a variant, GEMV row r gives the same bits as that variant's dot
 *    of row r, however [r0, r1) is split (so across threads and tasks):
 *    results never depend on the thread count.
 *  - The block products (gemm_nt_f32, gemm_nn_acc_f32) are reductions too:
 *    each output is within (n + 2) * 2^-24 * sum|terms| of the exact sum
 *    (n terms: K products; N products plus C's old value). Within a
 *    variant an output's bits do not depend on M, N or how the rows and
 *    the key range are cut into calls.
 *  - tanh_f32 / gelu_tanh / softcap / exp_sum use a vectorized exp / tanh in the
 *    SIMD variants: tanh within 1e-6 relative of tanhf (measured over all
 *    2^32 inputs: <= 2 ulp, 2.4e-7, of glibc's), exp within 1 ulp of expf
 *    (also exhaustive, subnormal results included); the reference variant
 *    calls libm. gelu_tanh and softcap then differ from the reference only
 *    through that tanh difference.
 *
 * Arguments: n >= 0 is an element count (n == 0: dots return 0, GEMV rows
 * get 0). Float arrays need no alignment; bf16 / f16 arrays need 2-byte
 * alignment; quantized block arrays (quant.h) need 2-byte alignment and n a
 * multiple of 32 (a remainder is ignored, as in quant.c). The activation
 * blocks of the quantized dots must come from quantize_row_q8_0 (quants in
 * [-127, 127], which the ggml quantizers guarantee too): the AVX2/AVX-512
 * int8 dots move the weight's sign onto the activation, and -128 has no
 * negation. Weight quants may be any int8. quantize_row_q8_0 matches quant.c
 * byte for byte on non-finite input too; max_f32 ignores (quiet) NaNs; the
 * sign of a zero max is unspecified.
 *
 * Not thread-affine: every function is reentrant and may be called from any
 * thread (threadpool.h runs GEMV row blocks on several threads at once).
 */
#ifndef GM_KERNELS_H
#define GM_KERNELS_H

#include "gm_internal.h"

struct gm_q8_aux; /* pack.h: per-block activation data of the packed Q4_0 kernels */

typedef struct gm_kernels {
    const char *name; /* "ref", "avx2", ... (see above) */

    /* ---- dot products: sum over i < n of w[i] * x[i] ---- */
    float (*dot_f32)(const float *a, const float *b, int64_t n);
    float (*dot_bf16_f32)(const uint16_t *w, const float *x, int64_t n);
    float (*dot_f16_f32)(const uint16_t *w, const float *x, int64_t n);
    /* bf16 weights x bf16 activations (from f32_to_bf16): products exact in
     * f32; vdpbf16ps where available (which treats bf16 subnormals as 0). */
    float (*dot_bf16_bf16)(const uint16_t *w, const uint16_t *x, int64_t n);
    /* Q8_0 / Q4_0 weights (gm_block_q8_0 / gm_block_q4_0 arrays) x Q8_0
     * activations: sum over blocks of (f32)sumi_b * (d_w * d_x). */
    float (*dot_q8_0_q8_0)(const void *w, const void *x, int64_t n);
    float (*dot_q4_0_q8_0)(const void *w, const void *x, int64_t n);

    /*
     * ---- GEMV row blocks (the decode hot loop) ----
     * y[r] = dot(W + r * ld, x, n)  for r0 <= r < r1; other y untouched.
     * W is row-major with a row stride of ld ELEMENTS (ld >= n; for Q8_0 /
     * Q4_0 a multiple of 32, row r starting at block r * ld / 32). The SIMD
     * variants do 4 rows per pass so every load of x serves 4 rows.
     */
    void (*gemv_f32)(const float *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                     int64_t r1);
    void (*gemv_bf16)(const uint16_t *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                      int64_t r1);
    void (*gemv_f16)(const uint16_t *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                     int64_t r1);
    void (*gemv_bf16_bf16)(const uint16_t *W, int64_t ld, const uint16_t *x, int64_t n, float *y,
                           int64_t r0, int64_t r1);
    void (*gemv_q8_0)(const void *W, int64_t ld, const void *x, int64_t n, float *y, int64_t r0,
                      int64_t r1);
    void (*gemv_q4_0)(const void *W, int64_t ld, const void *x, int64_t n, float *y, int64_t r0,
                      int64_t r1);

    /*
     * ---- packed Q4_0 (pack.h's Q4_0x16 tiles) x Q8_0 activations ----
     * Y[t * ldy + r] = dot(row r, activation row t) for t < T, r0 <= r < r1.
     * P: the matrix's tiles, nbl per group of 16 rows. X: T rows of nb Q8_0
     * blocks each (from quantize_row_q8_0; nb <= nbl: a column prefix);
     * xa: T rows of nb gm_q8_aux (pack.h: gm_q8_0_aux). r0 is a multiple
     * of 16; the rest of r1's group is computed but not stored.
     * Every variant gives exactly the ref table's dot_q4_0_q8_0 bits for the
     * same row (same int32 block sums, same f32 order; pack.h), for any T
     * and any split of the rows. NULL in variants without a packed kernel:
     * the model then leaves its Q4_0 matrices row-major (model.c).
     */
    void (*matmul_q4_0x16)(const void *P, int64_t nbl, const void *X, const struct gm_q8_aux *xa, int64_t nb, int64_t T,
                           float *Y, int64_t ldy, int64_t r0, int64_t r1);
    /* gm_pack_q4_0x16 (pack.h), byte for byte: set whenever matmul_q4_0x16 is. */
    void (*pack_q4_0x16)(const void *W, int64_t nbl, void *P, int64_t g0, int64_t g1);

    /*
     * ---- f32 block products (attention: S = Q K^T, O += P V) ----
     * Row-major blocks with row strides in elements; no operand may overlap C.
     * gemm_nt_f32:     C[i*ldc + j]  = sum_{k<K} A[i*lda + k] * B[j*ldb + k]
     *                  for i < M, j < N (C overwritten; K == 0 gives 0).
     * gemm_nn_acc_f32: C[i*ldc + d] += sum_{j<N} P[i*ldp + j] * V[j*ldv + d]
     *                  for i < M, d < D, added in increasing j, so a call over
     *                  [0, N) equals calls over [0, n) then [n, N) (with P and
     *                  V advanced), bit for bit. A P entry of exactly 0 leaves C
     *                  unchanged when its V row is finite.
     * The SIMD variants keep a register block of C (several rows of A against
     * several rows of B, or several rows of P against a strip of V) so that
     * each row of B or V loaded serves many rows of A or P; the reference is
     * ref dot_f32 per entry and ref axpy per (i, j), i.e. exactly the
     * per-token attention loop it replaces.
     */
    void (*gemm_nt_f32)(const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
                        int64_t M, int64_t N, int64_t K);
    void (*gemm_nn_acc_f32)(const float *P, int64_t ldp, const float *V, int64_t ldv, float *C, int64_t ldc,
                            int64_t M, int64_t N, int64_t D);

    /* ---- activation conversion (once per row, before a GEMV) ---- */
    /* ggml block_q8_0 (n / 32 blocks), bit-identical to gm_quantize_row_q8_0. */
    void (*quantize_row_q8_0)(const float *x, void *blocks, int64_t n);
    /* Round to nearest even, as gm_f32_to_bf16 (NaN stays NaN). */
    void (*f32_to_bf16)(const float *x, uint16_t *y, int64_t n);
    /* binary16 -> f32, exact: gm_f16_to_f32's bits for every non-NaN input, a NaN for a NaN
     * (the f16 KV cache read back before attention's products; F16C / fcvtl where present). */
    void (*f16_to_f32)(const uint16_t *x, float *y, int64_t n);

    /* ---- elementwise, per token ---- */
    void (*axpy)(float a, const float *x, float *y, int64_t n);      /* y[i] += a * x[i] */
    void (*scale)(float a, float *x, int64_t n);                     /* x[i] *= a */
    void (*mul)(const float *x, const float *w, float *y, int64_t n); /* y[i] = x[i] * w[i]; y may be x */
    float (*sumsq)(const float *x, int64_t n);                       /* sum x[i]^2 (RMSNorm) */
    float (*max_f32)(const float *x, int64_t n);                     /* -INFINITY for n == 0 */
    /* x[i] = exp(x[i] - m), returns the sum of the new x (softmax with m = max). */
    float (*exp_sum)(float *x, int64_t n, float m);
    void (*tanh_f32)(float *x, int64_t n);
    /* gelu_pytorch_tanh: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in place,
     * in the same f32 operation order as kern_ref.c's reference. */
    void (*gelu_tanh)(float *x, int64_t n);
    /* x[i] = cap * tanh(x[i] / cap) (final logit soft-capping), as kern_ref.c. */
    void (*softcap)(float *x, int64_t n, float cap);
} gm_kernels;

/* The tables (each defined by its kern_*.c; only dispatch and tests name them). */
GM_INTERNAL extern const gm_kernels gm_kernels_ref;
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) /* GCC or Clang: target pragmas, cpuid.h */
#define GM_KERN_X86 1
GM_INTERNAL extern const gm_kernels gm_kernels_avx2;
GM_INTERNAL extern const gm_kernels gm_kernels_avx512;
GM_INTERNAL extern const gm_kernels gm_kernels_avx512_vnni;
GM_INTERNAL extern const gm_kernels gm_kernels_avx512_bf16;
/* The avx512_vnni packed product (kern_avx512.c), which kern_amx.c hands its partial chunks. */
GM_INTERNAL void gm_vnni_matmul_q4_0x16(const void *P, int64_t nbl, const void *X, const struct gm_q8_aux *xa,
                                        int64_t nb, int64_t T, float *Y, int64_t ldy, int64_t r0, int64_t r1);
/* AMX intrinsics: GCC 11, clang 12 (and an assembler of their time). */
#if (defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && __GNUC__ >= 11)
#define GM_KERN_AMX 1
GM_INTERNAL extern const gm_kernels gm_kernels_avx512_amx;
GM_INTERNAL void gm_amx_matmul_q4_0x16(const void *P, int64_t nbl, const void *X, const struct gm_q8_aux *xa,
                                       int64_t nb, int64_t T, float *Y, int64_t ldy, int64_t r0, int64_t r1);
#endif
#endif
#if defined(__aarch64__)
#define GM_KERN_NEON 1
GM_INTERNAL extern const gm_kernels gm_kernels_neon;
GM_INTERNAL extern const gm_kernels gm_kernels_neon_dotprod;
#endif

/* ---- selection (kern_dispatch.c) ---- */

/* The table for this process: chosen on the first call, never NULL. */
GM_INTERNAL const gm_kernels *gm_kern(void);

/* How the table was chosen, e.g. "avx512_bf16 (auto)" or
 * "ref (GEMMA3N_KERNELS=ref)" or "avx2 (GEMMA3N_KERNELS=foo ignored: unknown)". */
GM_INTERNAL const char *gm_kern_selection(void);

/* Variants compiled into this build, best last: i in [0, count). */
GM_INTERNAL int gm_kern_variant_count(void);
GM_INTERNAL const char *gm_kern_variant_name(int i);
/* The i-th variant's table, or NULL if this CPU / OS cannot run it. */
GM_INTERNAL const gm_kernels *gm_kern_variant(int i);
/* A variant by name, or NULL if unknown or unsupported here. */
GM_INTERNAL const gm_kernels *gm_kern_by_name(const char *name);
/* The CPU features dispatch saw, as a space-separated list ("avx2 fma f16c ..."). */
GM_INTERNAL const char *gm_kern_cpu_features(void);

/*
 * ---- threaded GEMV (one task = a block of rows) ----
 * Fill a job, let gm_kern_gemv_plan size the row blocks, then run
 * gm_kern_gemv_task over the tasks, e.g. with threadpool.h:
 *
 *     gm_kern_gemv_job job = {k, GM_KERN_Q4_0, W, ld, xq, n, y, rows, 0};
 *     int n_tasks = gm_kern_gemv_plan(&job, gm_pool_n_threads(pool));
 *     gm_pool_run(pool, gm_kern_gemv_task, &job, n_tasks);
 *
 * Every task writes a disjoint range of y (a multiple of 4 rows, 16 for
 * packed weights, except the last), so the result does not depend on the
 * thread count or schedule.
 */
typedef enum gm_kern_wtype {
    GM_KERN_F32,       /* W f32,      x f32 */
    GM_KERN_BF16,      /* W bf16,     x f32 */
    GM_KERN_F16,       /* W f16,      x f32 */
    GM_KERN_BF16_BF16, /* W bf16,     x bf16 (f32_to_bf16) */
    GM_KERN_Q8_0,      /* W Q8_0,     x Q8_0 (quantize_row_q8_0) */
    GM_KERN_Q4_0,      /* W Q4_0,     x Q8_0 */
    GM_KERN_Q4_0X16    /* W Q4_0x16 tiles (pack.h; ld = columns), x Q8_0 + xa; needs matmul_q4_0x16 */
} gm_kern_wtype;

typedef struct gm_kern_gemv_job {
    const gm_kernels *k;
    gm_kern_wtype type;
    const void *W;
    int64_t ld;            /* row stride in elements */
    const void *x;
    int64_t n;             /* columns used */
    float *y;              /* rows outputs */
    int64_t rows;
    int64_t rows_per_task; /* set by gm_kern_gemv_plan */
    const struct gm_q8_aux *xa; /* GM_KERN_Q4_0X16: x's block aux (pack.h: gm_q8_0_aux) */
} gm_kern_gemv_job;

/* Sets job->rows_per_task for n_threads threads; returns the task count (0 if rows == 0). */
GM_INTERNAL int gm_kern_gemv_plan(gm_kern_gemv_job *job, int n_threads);
/* gm_pool_fn-compatible: computes the rows of task `task`. */
GM_INTERNAL void gm_kern_gemv_task(void *job, int task, int n_tasks, int thread);
/* Rows [r0, r1) of the job (packed weights: r0 a multiple of 16), on the calling thread. */
GM_INTERNAL void gm_kern_gemv_range(const gm_kern_gemv_job *job, int64_t r0, int64_t r1);

#endif /* GM_KERNELS_H */
