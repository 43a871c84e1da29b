/*
 * kern_avx2.c - the AVX2 + FMA + F16C kernel table (see kernels.h).
 *
 * Compiled with a target pragma, not -m flags, so the library still runs on
 * CPUs without AVX2: nothing here is called unless kern_dispatch.c saw AVX2,
 * FMA, F16C and OS support for the YMM state.
 *
 * Layout of the reductions (the tests bound them against an exact sum):
 *  - every GEMV row (and every dot, which is a one-row GEMV) keeps two
 *    8-lane accumulators over 16 columns a step, then one 8-column step,
 *    then a scalar tail; a 4-row pass and a 1-row pass run the same
 *    per-row operations (gemv_rows is instantiated with nr = 4 and 1), so
 *    y[r] does not depend on how [r0, r1) is cut into tasks;
 *  - quantized rows keep one 8-lane accumulator: per block, the int32 dot
 *    of the 32 quants (exact, see i8_dot) times d_w * d_x (exact in f32:
 *    two binary16 significands) is added with an FMA.
 */
#include "kernels.h"
#include "quant.h"

#include <math.h>

/* Exact-match kernels must not fuse a*b+c: GCC keeps products and sums apart
 * under -std=c11 (-ffp-contract=off); clang needs to be told. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(GM_KERN_X86)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

#define INLINE static inline __attribute__((always_inline))
/* The per-row loops (nr <= 4) must become straight code so the accumulators stay in registers. */
#define UNROLL _Pragma("GCC unroll 4")

/* ---- helpers ---- */

INLINE float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE float hmax8(__m256 v) { /* no NaN in v */
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE float f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }

/* Lane mask for the first m (0..8) lanes, for maskload / maskstore tails. */
INLINE __m256i tail_mask(int64_t m) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)m), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* ---- float GEMV / dot: weights f32, bf16 or f16, activations f32 ---- */

enum { W_F32, W_BF16, W_F16 };

INLINE const void *w_at(const void *w, int64_t i, int type) {
    return (const char *)w + i * (type == W_F32 ? 4 : 2);
}

INLINE __m256 load_w8(const void *w, int64_t i, int type) {
    if (type == W_F32) return _mm256_loadu_ps((const float *)w + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
    if (type == W_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)); /* bf16: high half */
}

INLINE float load_w1(const void *w, int64_t i, int type) {
    if (type == W_F32) return ((const float *)w)[i];
    uint16_t h = ((const uint16_t *)w)[i];
    return type == W_F16 ? f16_to_f32(h) : gm_bf16_to_f32(h);
}

/* y[r + k] = row (r + k) . x for k < nr (nr = 1..4, a constant after inlining). */
INLINE void gemv_rows(const void *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r, int nr,
                      int type) {
    const void *w[4];
    __m256 acc0[4], acc1[4];
    UNROLL for (int k = 0; k < nr; k++) {
        w[k] = w_at(W, (r + k) * ld, type);
        acc0[k] = acc1[k] = _mm256_setzero_ps();
    }
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
        UNROLL for (int k = 0; k < nr; k++) {
            acc0[k] = _mm256_fmadd_ps(load_w8(w[k], i, type), x0, acc0[k]);
            acc1[k] = _mm256_fmadd_ps(load_w8(w[k], i + 8, type), x1, acc1[k]);
        }
    }
    if (i + 8 <= n) {
        const __m256 x0 = _mm256_loadu_ps(x + i);
        UNROLL for (int k = 0; k < nr; k++) acc0[k] = _mm256_fmadd_ps(load_w8(w[k], i, type), x0, acc0[k]);
        i += 8;
    }
    UNROLL for (int k = 0; k < nr; k++) {
        float s = hsum8(_mm256_add_ps(acc0[k], acc1[k]));
        for (int64_t j = i; j < n; j++) s += load_w1(w[k], j, type) * x[j];
        y[r + k] = s;
    }
}

INLINE void gemv_any(const void *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                     int64_t r1, int type) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) gemv_rows(W, ld, x, n, y, r, 4, type);
    for (; r < r1; r++) gemv_rows(W, ld, x, n, y, r, 1, type);
}

static void avx2_gemv_f32(const float *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                          int64_t r1) {
    gemv_any(W, ld, x, n, y, r0, r1, W_F32);
}
static void avx2_gemv_bf16(const uint16_t *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                           int64_t r1) {
    gemv_any(W, ld, x, n, y, r0, r1, W_BF16);
}
static void avx2_gemv_f16(const uint16_t *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                          int64_t r1) {
    gemv_any(W, ld, x, n, y, r0, r1, W_F16);
}

static float avx2_dot_f32(const float *a, const float *b, int64_t n) {
    float y;
    gemv_rows(a, 0, b, n, &y, 0, 1, W_F32);
    return y;
}
static float avx2_dot_bf16_f32(const uint16_t *w, const float *x, int64_t n) {
    float y;
    gemv_rows(w, 0, x, n, &y, 0, 1, W_BF16);
    return y;
}
static float avx2_dot_f16_f32(const uint16_t *w, const float *x, int64_t n) {
    float y;
    gemv_rows(w, 0, x, n, &y, 0, 1, W_F16);
    return y;
}

/* ---- bf16 x bf16: both sides widened (AVX2 has no bf16 dot) ---- */

INLINE __m256 load_bf16x8(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

INLINE void gemv_bb_rows(const uint16_t *W, int64_t ld, const uint16_t *x, int64_t n, float *y, int64_t r,
                         int nr) {
    const uint16_t *w[4];
    __m256 acc0[4], acc1[4];
    UNROLL for (int k = 0; k < nr; k++) {
        w[k] = W + (r + k) * ld;
        acc0[k] = acc1[k] = _mm256_setzero_ps();
    }
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 x0 = load_bf16x8(x + i), x1 = load_bf16x8(x + i + 8);
        UNROLL for (int k = 0; k < nr; k++) {
            acc0[k] = _mm256_fmadd_ps(load_bf16x8(w[k] + i), x0, acc0[k]);
            acc1[k] = _mm256_fmadd_ps(load_bf16x8(w[k] + i + 8), x1, acc1[k]);
        }
    }
    if (i + 8 <= n) {
        const __m256 x0 = load_bf16x8(x + i);
        UNROLL for (int k = 0; k < nr; k++) acc0[k] = _mm256_fmadd_ps(load_bf16x8(w[k] + i), x0, acc0[k]);
        i += 8;
    }
    UNROLL for (int k = 0; k < nr; k++) {
        float s = hsum8(_mm256_add_ps(acc0[k], acc1[k]));
        for (int64_t j = i; j < n; j++) s += gm_bf16_to_f32(w[k][j]) * gm_bf16_to_f32(x[j]);
        y[r + k] = s;
    }
}

static void avx2_gemv_bf16_bf16(const uint16_t *W, int64_t ld, const uint16_t *x, int64_t n, float *y,
                                int64_t r0, int64_t r1) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) gemv_bb_rows(W, ld, x, n, y, r, 4);
    for (; r < r1; r++) gemv_bb_rows(W, ld, x, n, y, r, 1);
}

static float avx2_dot_bf16_bf16(const uint16_t *w, const uint16_t *x, int64_t n) {
    float y;
    gemv_bb_rows(w, 0, x, n, &y, 0, 1);
    return y;
}

/* ---- quantized: Q8_0 / Q4_0 weights x Q8_0 activations ---- */

/*
 * Per 32-bit lane, the sum of 4 products u8 * s8. vpmaddubsw adds pairs into
 * int16 with saturation; the callers keep every pair within int16 (q8: |u|
 * <= 128, |s| <= 127; q4: u <= 15), so the sum is exact.
 */
INLINE __m256i i8_dot(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* Q8_0 rows: sumi = |w| . (x with w's sign) (vpsignb: x = 0 where w = 0). */
INLINE void gemv_q8_rows(const gm_block_q8_0 *W, int64_t nbl, const gm_block_q8_0 *x, int64_t nb,
                         float *y, int64_t r, int nr) {
    const gm_block_q8_0 *w[4];
    __m256 acc[4];
    UNROLL for (int k = 0; k < nr; k++) {
        w[k] = W + (r + k) * nbl;
        acc[k] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        const __m256i qx = _mm256_loadu_si256((const __m256i *)x[b].qs);
        const float dx = f16_to_f32(x[b].d);
        UNROLL for (int k = 0; k < nr; k++) {
            const __m256i qw = _mm256_loadu_si256((const __m256i *)w[k][b].qs);
            const __m256i sumi = i8_dot(_mm256_sign_epi8(qw, qw), _mm256_sign_epi8(qx, qw));
            const __m256 d = _mm256_set1_ps(f16_to_f32(w[k][b].d) * dx);
            acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), d, acc[k]);
        }
    }
    UNROLL for (int k = 0; k < nr; k++) y[r + k] = hsum8(acc[k]);
}

/*
 * Q4_0 rows: the 16 bytes of nibbles become 32 unsigned bytes (low nibbles =
 * elements 0..15 in the low 128 bits, high nibbles = 16..31 in the high 128,
 * the order of x's quants), and sum (q - 8) * x = q . x - 8 * sum(x), with
 * 8 * sum(x) computed once per activation block for all rows.
 */
INLINE __m256i q4_nibbles(const uint8_t *qs) {
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

INLINE void gemv_q4_rows(const gm_block_q4_0 *W, int64_t nbl, const gm_block_q8_0 *x, int64_t nb,
                         float *y, int64_t r, int nr) {
    const gm_block_q4_0 *w[4];
    __m256 acc[4];
    UNROLL for (int k = 0; k < nr; k++) {
        w[k] = W + (r + k) * nbl;
        acc[k] = _mm256_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        const __m256i qx = _mm256_loadu_si256((const __m256i *)x[b].qs);
        const __m256i sx8 = _mm256_slli_epi32(i8_dot(_mm256_set1_epi8(1), qx), 3);
        const float dx = f16_to_f32(x[b].d);
        UNROLL for (int k = 0; k < nr; k++) {
            const __m256i sumi = _mm256_sub_epi32(i8_dot(q4_nibbles(w[k][b].qs), qx), sx8);
            const __m256 d = _mm256_set1_ps(f16_to_f32(w[k][b].d) * dx);
            acc[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), d, acc[k]);
        }
    }
    UNROLL for (int k = 0; k < nr; k++) y[r + k] = hsum8(acc[k]);
}

static void avx2_gemv_q8_0(const void *W, int64_t ld, const void *x, int64_t n, float *y, int64_t r0,
                           int64_t r1) {
    const int64_t nbl = ld / GM_QK8_0, nb = n / GM_QK8_0;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) gemv_q8_rows(W, nbl, x, nb, y, r, 4);
    for (; r < r1; r++) gemv_q8_rows(W, nbl, x, nb, y, r, 1);
}

static void avx2_gemv_q4_0(const void *W, int64_t ld, const void *x, int64_t n, float *y, int64_t r0,
                           int64_t r1) {
    const int64_t nbl = ld / GM_QK4_0, nb = n / GM_QK4_0;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) gemv_q4_rows(W, nbl, x, nb, y, r, 4);
    for (; r < r1; r++) gemv_q4_rows(W, nbl, x, nb, y, r, 1);
}

static float avx2_dot_q8_0_q8_0(const void *w, const void *x, int64_t n) {
    float y;
    gemv_q8_rows(w, 0, x, n / GM_QK8_0, &y, 0, 1);
    return y;
}

static float avx2_dot_q4_0_q8_0(const void *w, const void *x, int64_t n) {
    float y;
    gemv_q4_rows(w, 0, x, n / GM_QK4_0, &y, 0, 1);
    return y;
}

/* ---- f32 block products (attention; contract in kernels.h) ---- */

/* The block loops (up to 8 outputs or vectors) must become straight code too. */
#define UNROLL8 _Pragma("GCC unroll 8")

/*
 * hsum8 of four vectors at once, with hsum8's pairs: per vector e = lo128 +
 * hi128, then (e0 + e2) + (e1 + e3). Same bits as four hsum8 calls, so an
 * output of gemm_nt does not depend on whether its column came in a block
 * of 4 or alone.
 */
INLINE __m128 hsum8x4(__m256 v0, __m256 v1, __m256 v2, __m256 v3) {
    const __m256 t01 = _mm256_add_ps(_mm256_permute2f128_ps(v0, v1, 0x20), _mm256_permute2f128_ps(v0, v1, 0x31));
    const __m256 t23 = _mm256_add_ps(_mm256_permute2f128_ps(v2, v3, 0x20), _mm256_permute2f128_ps(v2, v3, 0x31));
    /* lane 0: [v0 (e0+e2), v2 (e0+e2), v0 (e1+e3), v2 (e1+e3)]; lane 1: the same for v1, v3 */
    const __m256 x = _mm256_add_ps(_mm256_unpacklo_ps(t01, t23), _mm256_unpackhi_ps(t01, t23));
    const __m256 y = _mm256_add_ps(x, _mm256_permute_ps(x, 0x4E)); /* lane 0: [s0, s2, s0, s2]; lane 1: s1, s3 */
    return _mm_unpacklo_ps(_mm256_castps256_ps128(y), _mm256_extractf128_ps(y, 1));
}

/*
 * C[i][j] for mr rows of A x nr rows of B ((2, 4), (2, 1), (1, 8), (1, 4),
 * (1, 1)): one 8-lane accumulator per output over 8-column steps (FMA),
 * hsum8's pairs, then the scalar tail K % 8 left to right. Per step mr + nr
 * loads feed mr * nr FMAs in at most 8 accumulators: enough independent
 * chains to cover the FMA latency, also for the single row of decode.
 */
INLINE void nt_block(const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc, int64_t K,
                     int mr, int nr) {
    __m256 acc[2][8];
    UNROLL8 for (int i = 0; i < mr; i++) UNROLL8 for (int j = 0; j < nr; j++) acc[i][j] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        UNROLL8 for (int i = 0; i < mr; i++) {
            const __m256 a = _mm256_loadu_ps(A + i * lda + k);
            UNROLL8 for (int j = 0; j < nr; j++)
                acc[i][j] = _mm256_fmadd_ps(a, _mm256_loadu_ps(B + j * ldb + k), acc[i][j]);
        }
    }
    UNROLL8 for (int i = 0; i < mr; i++) {
        float s[8];
        UNROLL8 for (int j = 0; j + 4 <= nr; j += 4)
            _mm_storeu_ps(s + j, hsum8x4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]));
        if (nr == 1) s[0] = hsum8(acc[i][0]);
        UNROLL8 for (int j = 0; j < nr; j++) {
            for (int64_t t = k; t < K; t++) s[j] += A[i * lda + t] * B[j * ldb + t];
            C[i * ldc + j] = s[j];
        }
    }
}

/*
 * Pairs of rows of A against key blocks of 4 (key blocks outer: the 4 rows
 * of B stay in L1 while the rows of A pass), then a last odd row of A
 * against key blocks of 8.
 */
static void avx2_gemm_nt_f32(const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
                             int64_t M, int64_t N, int64_t K) {
    const int64_t M2 = M / 2 * 2;
    int64_t j = 0;
    for (; j + 4 <= N; j += 4)
        for (int64_t i = 0; i < M2; i += 2) nt_block(A + i * lda, lda, B + j * ldb, ldb, C + i * ldc + j, ldc, K, 2, 4);
    for (; j < N; j++)
        for (int64_t i = 0; i < M2; i += 2) nt_block(A + i * lda, lda, B + j * ldb, ldb, C + i * ldc + j, ldc, K, 2, 1);
    if (M2 == M) return;
    const float *a = A + M2 * lda;
    float *c = C + M2 * ldc;
    for (j = 0; j + 8 <= N; j += 8) nt_block(a, lda, B + j * ldb, ldb, c + j, ldc, K, 1, 8);
    for (; j + 4 <= N; j += 4) nt_block(a, lda, B + j * ldb, ldb, c + j, ldc, K, 1, 4);
    for (; j < N; j++) nt_block(a, lda, B + j * ldb, ldb, c + j, ldc, K, 1, 1);
}

/*
 * C[i][0 .. w) += P[i][j] V[j][...] for mr rows over j < N, w <= 8 nv
 * columns (nv vectors; masked when `partial`): one FMA per j in increasing j,
 * so each output's chain is the same however the call is blocked. Shapes:
 * 4 rows x 2 vectors (8 accumulators + 2 V + 1 broadcast of the 16
 * registers) and, for a lone row (decode), 1 x 8 (8 independent chains).
 */
INLINE void nn_strip(const float *P, int64_t ldp, const float *V, int64_t ldv, float *C, int64_t ldc, int64_t N,
                     int mr, int nv, int64_t w, int partial) {
    __m256i m[8];
    __m256 acc[4][8];
    UNROLL8 for (int x = 0; x < nv; x++) m[x] = tail_mask(GM_MAX(0, GM_MIN(8, w - 8 * x)));
    UNROLL8 for (int i = 0; i < mr; i++) UNROLL8 for (int x = 0; x < nv; x++) {
        const float *c = C + i * ldc + 8 * x;
        acc[i][x] = partial ? _mm256_maskload_ps(c, m[x]) : _mm256_loadu_ps(c);
    }
    for (int64_t j = 0; j < N; j++) {
        __m256 v[8];
        UNROLL8 for (int x = 0; x < nv; x++)
            v[x] = partial ? _mm256_maskload_ps(V + j * ldv + 8 * x, m[x]) : _mm256_loadu_ps(V + j * ldv + 8 * x);
        UNROLL8 for (int i = 0; i < mr; i++) {
            const __m256 p = _mm256_broadcast_ss(P + i * ldp + j);
            UNROLL8 for (int x = 0; x < nv; x++) acc[i][x] = _mm256_fmadd_ps(p, v[x], acc[i][x]);
        }
    }
    UNROLL8 for (int i = 0; i < mr; i++) UNROLL8 for (int x = 0; x < nv; x++) {
        float *c = C + i * ldc + 8 * x;
        if (partial) _mm256_maskstore_ps(c, m[x], acc[i][x]);
        else _mm256_storeu_ps(c, acc[i][x]);
    }
}

/* Keys per pass of nn_strip: a strip's V chunk (64 rows x 16 floats, 4 KiB)
 * stays in L1 while every row block of P passes over it. */
#define NN_KEYS 64

/* Rows [i0, i1) in blocks of mr, columns in strips of 8 nv, keys in NN_KEYS passes. */
INLINE void nn_rows(const float *P, int64_t ldp, const float *V, int64_t ldv, float *C, int64_t ldc, int64_t i0,
                    int64_t i1, int64_t N, int64_t D, int mr, int nv) {
    for (int64_t d = 0; d < D; d += 8 * nv) {
        const int64_t w = GM_MIN(8 * nv, D - d);
        for (int64_t j = 0; j < N; j += NN_KEYS) {
            const int64_t nj = GM_MIN(NN_KEYS, N - j);
            for (int64_t i = i0; i < i1; i += mr) {
                const float *p = P + i * ldp + j, *v = V + j * ldv + d;
                if (w == 8 * nv) nn_strip(p, ldp, v, ldv, C + i * ldc + d, ldc, nj, mr, nv, w, 0);
                else nn_strip(p, ldp, v, ldv, C + i * ldc + d, ldc, nj, mr, nv, w, 1);
            }
        }
    }
}

static void avx2_gemm_nn_acc_f32(const float *P, int64_t ldp, const float *V, int64_t ldv, float *C, int64_t ldc,
                                 int64_t M, int64_t N, int64_t D) {
    const int64_t M4 = M / 4 * 4;
    nn_rows(P, ldp, V, ldv, C, ldc, 0, M4, N, D, 4, 2);
    nn_rows(P, ldp, V, ldv, C, ldc, M4, M, N, D, 1, 8);
}

#undef UNROLL8
#undef NN_KEYS

/* ---- activation conversion ---- */

/* roundf (halves away from zero) of values with |v| < 2^23: trunc, then
 * +-1 when the (exactly computed) fraction is at least one half. */
INLINE __m256 round_away(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
    const __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    return _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one));
}

/* Same bytes as gm_quantize_row_q8_0 (quant.c), non-finite input included. */
static void avx2_quantize_row_q8_0(const float *x, void *blocks, int64_t n) {
    gm_block_q8_0 *y = blocks;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / GM_QK8_0; b++, x += GM_QK8_0) {
        __m256 v[4], amax = _mm256_setzero_ps();
        for (int j = 0; j < 4; j++) {
            v[j] = _mm256_loadu_ps(x + 8 * j);
            amax = _mm256_max_ps(_mm256_andnot_ps(sign, v[j]), amax); /* NaN lanes lose, as in quant.c */
        }
        const float d = hmax8(amax) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        __m256i q[4];
        for (int j = 0; j < 4; j++) {
            const __m256 s = _mm256_mul_ps(v[j], _mm256_set1_ps(id));
            __m256 r = _mm256_and_ps(round_away(s), _mm256_cmp_ps(s, s, _CMP_ORD_Q)); /* NaN -> 0 */
            r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
            q[j] = _mm256_cvtps_epi32(r);
        }
        /* packs interleave the 128-bit lanes; the permute restores element order */
        const __m256i q16a = _mm256_packs_epi32(q[0], q[1]), q16b = _mm256_packs_epi32(q[2], q[3]);
        const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16a, q16b),
                                                       _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)y[b].qs, q8);
    }
}

/* Round to nearest even into the high half; NaN keeps its sign and is quieted (gm_f32_to_bf16). */
INLINE __m128i f32x8_to_bf16(__m256 v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7FFF)), lsb), 16);
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    const __m256i h = _mm256_blendv_epi8(rounded, quiet, nan);
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(h, h), 0xD8);
    return _mm256_castsi256_si128(packed);
}

static void avx2_f32_to_bf16(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *)(y + i), f32x8_to_bf16(_mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] = gm_f32_to_bf16(x[i]);
}

static void avx2_f16_to_f32(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
    for (; i < n; i++) y[i] = gm_f16_to_f32(x[i]);
}

/* ---- elementwise: same operations as kern_ref.c, so the same bits ---- */

static void avx2_axpy(float a, const float *x, float *y, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_mul_ps(va, _mm256_loadu_ps(x + i))));
    for (; i < n; i++) y[i] += a * x[i];
}

static void avx2_scale(float a, float *x, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), va));
    for (; i < n; i++) x[i] *= a;
}

static void avx2_mul(const float *x, const float *w, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(w + i)));
    for (; i < n; i++) y[i] = x[i] * w[i];
}

static float avx2_sumsq(const float *x, int64_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
    }
    float s = hsum8(_mm256_add_ps(a0, a1));
    for (; i < n; i++) s += x[i] * x[i];
    return s;
}

static float avx2_max_f32(const float *x, int64_t n) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_loadu_ps(x + i), m); /* NaN in x loses */
    float s = hmax8(m);
    for (; i < n; i++)
        if (x[i] > s) s = x[i];
    return s;
}

/* ---- exp / tanh (shared constants and error analysis: kern_avx512.c has the same code) ---- */

/*
 * e^x, within 2 ulp: x clamped to [-104, 89] (beyond, the result is 0 or
 * inf anyway; NaN passes through), n = round(x / ln2), r = x - n ln2 in two
 * FMA steps (Cephes' split of ln2: n * hi is exact), e^r by its Taylor
 * series to degree 7 (|r| <= ln2/2: truncation < 0.1 ulp), and 2^n applied
 * as two factors 2^(n/2) so that results near overflow and subnormal results
 * come out with a single rounding.
 */
INLINE __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_set1_ps(89.0f), _mm256_max_ps(_mm256_set1_ps(-104.0f), x));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i ni = _mm256_cvtps_epi32(n);
    const __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

/*
 * tanh, within 3 ulp of the true value (1e-6 relative of tanhf is the
 * contract; the tests sweep it):
 *   a = |x| < 0.55: a + a^3 P(a^2), P the Taylor series of tanh to x^17
 *               (the first omitted term is < 0.1 ulp at 0.55);
 *   otherwise:  1 - 2 / (e^(2a) + 1); from 0.55 up the result is >= 0.5,
 *               so the subtraction loses nothing, and a is capped at 10
 *               where tanh is 1 in f32;
 * then the sign bit of x is put on the (non-negative) result.
 * Keeps -0, maps +-inf to +-1 and NaN to NaN.
 */
INLINE __m256 tanh8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 a = _mm256_andnot_ps(sign, x);
    const __m256 x2 = _mm256_mul_ps(a, a);
    __m256 p = _mm256_set1_ps(5.90027440945585e-4f);                 /* 6404582 / 10854718875 */
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1.45583438705132e-3f)); /* -929569 / 638512875 */
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(3.59212803657248e-3f));  /* 21844 / 6081075 */
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-8.86323552990220e-3f)); /* -1382 / 155925 */
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.18694885361552e-2f));  /* 62 / 2835 */
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-5.39682539682540e-2f)); /* -17 / 315 */
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(1.33333333333333e-1f));  /* 2 / 15 */
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-3.33333333333333e-1f)); /* -1 / 3 */
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(a, x2), p, a);
    const __m256 a2 = _mm256_min_ps(_mm256_set1_ps(20.0f), _mm256_add_ps(a, a)); /* NaN passes */
    const __m256 q = _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(exp8(a2), _mm256_set1_ps(1.0f)));
    const __m256 large = _mm256_sub_ps(_mm256_set1_ps(1.0f), q);
    const __m256 t = _mm256_blendv_ps(large, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.55f), _CMP_LT_OQ));
    return _mm256_or_ps(t, _mm256_and_ps(x, sign)); /* tanh(|x|) >= +0: the sign of x, -0 included */
}

/* gelu_pytorch_tanh with the reference's operation order (no FMA outside tanh). */
INLINE __m256 gelu8(__m256 v) {
    const __m256 cube = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), v), v), v);
    const __m256 z = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), _mm256_add_ps(v, cube));
    const __m256 t = tanh8(z);
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), v), _mm256_add_ps(_mm256_set1_ps(1.0f), t));
}

/* Applies f to x in place; the tail goes through masked loads so every
 * element sees the same approximation. */
#define MAP_INPLACE(x, n, expr_of_v)                                                  \
    do {                                                                              \
        int64_t i_ = 0;                                                               \
        for (; i_ + 8 <= (n); i_ += 8) {                                              \
            const __m256 v = _mm256_loadu_ps((x) + i_);                               \
            _mm256_storeu_ps((x) + i_, (expr_of_v));                                  \
        }                                                                             \
        if (i_ < (n)) {                                                               \
            const __m256i m_ = tail_mask((n) - i_);                                   \
            const __m256 v = _mm256_maskload_ps((x) + i_, m_);                        \
            _mm256_maskstore_ps((x) + i_, m_, (expr_of_v));                           \
        }                                                                             \
    } while (0)

static void avx2_tanh_f32(float *x, int64_t n) { MAP_INPLACE(x, n, tanh8(v)); }

static void avx2_gelu_tanh(float *x, int64_t n) { MAP_INPLACE(x, n, gelu8(v)); }

static void avx2_softcap(float *x, int64_t n, float cap) {
    const __m256 c = _mm256_set1_ps(cap);
    MAP_INPLACE(x, n, _mm256_mul_ps(c, tanh8(_mm256_div_ps(v, c))));
}

static float avx2_exp_sum(float *x, int64_t n, float m) {
    const __m256 vm = _mm256_set1_ps(m);
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    if (i < n) {
        const __m256i mask = tail_mask(n - i);
        const __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + i, mask), vm));
        _mm256_maskstore_ps(x + i, mask, e);
        acc = _mm256_add_ps(acc, _mm256_and_ps(e, _mm256_castsi256_ps(mask)));
    }
    return hsum8(acc);
}

#undef MAP_INPLACE

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

const gm_kernels gm_kernels_avx2 = {
    .name = "avx2",
    .dot_f32 = avx2_dot_f32,
    .dot_bf16_f32 = avx2_dot_bf16_f32,
    .dot_f16_f32 = avx2_dot_f16_f32,
    .dot_bf16_bf16 = avx2_dot_bf16_bf16,
    .dot_q8_0_q8_0 = avx2_dot_q8_0_q8_0,
    .dot_q4_0_q8_0 = avx2_dot_q4_0_q8_0,
    .gemv_f32 = avx2_gemv_f32,
    .gemv_bf16 = avx2_gemv_bf16,
    .gemv_f16 = avx2_gemv_f16,
    .gemv_bf16_bf16 = avx2_gemv_bf16_bf16,
    .gemv_q8_0 = avx2_gemv_q8_0,
    .gemv_q4_0 = avx2_gemv_q4_0,
    .gemm_nt_f32 = avx2_gemm_nt_f32,
    .gemm_nn_acc_f32 = avx2_gemm_nn_acc_f32,
    .quantize_row_q8_0 = avx2_quantize_row_q8_0,
    .f32_to_bf16 = avx2_f32_to_bf16,
    .f16_to_f32 = avx2_f16_to_f32,
    .axpy = avx2_axpy,
    .scale = avx2_scale,
    .mul = avx2_mul,
    .sumsq = avx2_sumsq,
    .max_f32 = avx2_max_f32,
    .exp_sum = avx2_exp_sum,
    .tanh_f32 = avx2_tanh_f32,
    .gelu_tanh = avx2_gelu_tanh,
    .softcap = avx2_softcap,
};

#else
typedef int gm_kern_avx2_unused; /* not an x86 build: the file is empty */
#endif
