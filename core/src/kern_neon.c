/*
 * kern_neon.c - the AArch64 kernel tables (see kernels.h):
 *   neon          Advanced SIMD, baseline on every AArch64 CPU
 *   neon_dotprod  + the ARMv8.2 dot product (sdot) for the int8 block dots
 *
 * As in kern_avx512.c, both tables share one source body: sdot is inline
 * asm inside an always-inline helper whose `dotprod` argument is a constant
 * at each call site. The instruction is written as its encoding (.inst) on
 * operands pinned to v0..v2, because assemblers disagree on how to enable it
 * (GNU as 2.40 wants ".arch armv8.2-a+dotprod", clang 14 accepts none of the
 * spellings) and GCC at -O0 keeps the never-taken branch in the plain
 * functions too. No function needs a target attribute; dispatch hands the
 * dotprod table out only when HWCAP says the CPU has the instruction.
 *
 * Int8 dots need no sign trick here: smull / sdot multiply signed by signed,
 * so any int8 on either side is exact. Q4_0 nibbles become q - 8 in int8.
 * Per-row summation: two 4-lane accumulators over 8 columns a step, then a
 * 4-column step, then a scalar tail (float GEMV); one 4-lane accumulator per
 * row for the quantized ones. Rows done 4 and 1 at a time run the same
 * per-row operations. The transcendental maps push their tail through a
 * padded register so every element gets the same approximation.
 */
#include "kernels.h"
#include "quant.h"

#include <math.h>

/* Exact-match kernels must not fuse a*b+c: GCC keeps products and sums apart
 * under -std=c11 (-ffp-contract=off); clang needs to be told. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(GM_KERN_NEON)
#include <arm_neon.h>

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 4")

/* ---- helpers ---- */

INLINE float f16_to_f32(uint16_t h) {
    __fp16 v;
    memcpy(&v, &h, sizeof v);
    return (float)v;
}

INLINE uint16_t f32_to_f16(float f) { /* FCVT: round to nearest even (FPCR default), overflow to inf */
    __fp16 v = (__fp16)f;
    uint16_t h;
    memcpy(&h, &v, sizeof h);
    return h;
}

/* ---- float GEMV / dot: weights f32, bf16 or f16, activations f32 ---- */

enum { W_F32, W_BF16, W_F16 };

INLINE const void *w_at(const void *w, int64_t i, int type) {
    return (const char *)w + i * (type == W_F32 ? 4 : 2);
}

INLINE float32x4_t bf16x4_to_f32(uint16x4_t h) { return vreinterpretq_f32_u32(vshll_n_u16(h, 16)); }

INLINE float32x4_t load_w4(const void *w, int64_t i, int type) {
    if (type == W_F32) return vld1q_f32((const float *)w + i);
    const uint16x4_t h = vld1_u16((const uint16_t *)w + i);
    if (type == W_F16) return vcvt_f32_f16(vreinterpret_f16_u16(h));
    return bf16x4_to_f32(h);
}

INLINE float load_w1(const void *w, int64_t i, int type) {
    if (type == W_F32) return ((const float *)w)[i];
    const uint16_t h = ((const uint16_t *)w)[i];
    return type == W_F16 ? f16_to_f32(h) : gm_bf16_to_f32(h);
}

INLINE void gemv_rows(const void *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r, int nr,
                      int type) {
    const void *w[4];
    float32x4_t acc0[4], acc1[4];
    UNROLL for (int k = 0; k < nr; k++) {
        w[k] = w_at(W, (r + k) * ld, type);
        acc0[k] = acc1[k] = vdupq_n_f32(0.0f);
    }
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float32x4_t x0 = vld1q_f32(x + i), x1 = vld1q_f32(x + i + 4);
        UNROLL for (int k = 0; k < nr; k++) {
            acc0[k] = vfmaq_f32(acc0[k], load_w4(w[k], i, type), x0);
            acc1[k] = vfmaq_f32(acc1[k], load_w4(w[k], i + 4, type), x1);
        }
    }
    if (i + 4 <= n) {
        const float32x4_t x0 = vld1q_f32(x + i);
        UNROLL for (int k = 0; k < nr; k++) acc0[k] = vfmaq_f32(acc0[k], load_w4(w[k], i, type), x0);
        i += 4;
    }
    UNROLL for (int k = 0; k < nr; k++) {
        float s = vaddvq_f32(vaddq_f32(acc0[k], acc1[k]));
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

static void neon_gemv_f32(const float *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                          int64_t r1) {
    gemv_any(W, ld, x, n, y, r0, r1, W_F32);
}
static void neon_gemv_bf16(const uint16_t *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                           int64_t r1) {
    gemv_any(W, ld, x, n, y, r0, r1, W_BF16);
}
static void neon_gemv_f16(const uint16_t *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                          int64_t r1) {
    gemv_any(W, ld, x, n, y, r0, r1, W_F16);
}
static float neon_dot_f32(const float *a, const float *b, int64_t n) {
    float y;
    gemv_rows(a, 0, b, n, &y, 0, 1, W_F32);
    return y;
}
static float neon_dot_bf16_f32(const uint16_t *w, const float *x, int64_t n) {
    float y;
    gemv_rows(w, 0, x, n, &y, 0, 1, W_BF16);
    return y;
}
static float neon_dot_f16_f32(const uint16_t *w, const float *x, int64_t n) {
    float y;
    gemv_rows(w, 0, x, n, &y, 0, 1, W_F16);
    return y;
}

/* ---- bf16 x bf16: both sides widened ---- */

INLINE void gemv_bb_rows(const uint16_t *W, int64_t ld, const uint16_t *x, int64_t n, float *y, int64_t r,
                         int nr) {
    const uint16_t *w[4];
    float32x4_t acc0[4], acc1[4];
    UNROLL for (int k = 0; k < nr; k++) {
        w[k] = W + (r + k) * ld;
        acc0[k] = acc1[k] = vdupq_n_f32(0.0f);
    }
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const uint16x8_t xh = vld1q_u16(x + i);
        const float32x4_t x0 = bf16x4_to_f32(vget_low_u16(xh)), x1 = bf16x4_to_f32(vget_high_u16(xh));
        UNROLL for (int k = 0; k < nr; k++) {
            const uint16x8_t wh = vld1q_u16(w[k] + i);
            acc0[k] = vfmaq_f32(acc0[k], bf16x4_to_f32(vget_low_u16(wh)), x0);
            acc1[k] = vfmaq_f32(acc1[k], bf16x4_to_f32(vget_high_u16(wh)), x1);
        }
    }
    UNROLL for (int k = 0; k < nr; k++) {
        float s = vaddvq_f32(vaddq_f32(acc0[k], acc1[k]));
        for (int64_t j = i; j < n; j++) s += gm_bf16_to_f32(w[k][j]) * gm_bf16_to_f32(x[j]);
        y[r + k] = s;
    }
}

static void neon_gemv_bf16_bf16(const uint16_t *W, int64_t ld, const uint16_t *x, int64_t n, float *y,
                                int64_t r0, int64_t r1) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) gemv_bb_rows(W, ld, x, n, y, r, 4);
    for (; r < r1; r++) gemv_bb_rows(W, ld, x, n, y, r, 1);
}
static float neon_dot_bf16_bf16(const uint16_t *w, const uint16_t *x, int64_t n) {
    float y;
    gemv_bb_rows(w, 0, x, n, &y, 0, 1);
    return y;
}

/* ---- quantized: Q8_0 / Q4_0 weights x Q8_0 activations ---- */

/* sdot v0.4s, v1.16b, v2.16b: acc lane i += sum of a[4i..4i+3] * b[4i..4i+3]. */
INLINE int32x4_t sdot(int32x4_t acc, int8x16_t a, int8x16_t b) {
    register int32x4_t r_acc __asm__("v0") = acc;
    register int8x16_t r_a __asm__("v1") = a;
    register int8x16_t r_b __asm__("v2") = b;
    __asm__(".inst 0x4e829420" : "+w"(r_acc) : "w"(r_a), "w"(r_b));
    return r_acc;
}

/* acc + per lane: a sum of products of 8 int8 pairs (sdot, or smull + sadalp: exact). */
INLINE int32x4_t i8_dot(int32x4_t acc, int8x16_t a, int8x16_t b, const int dotprod) {
    if (dotprod) return sdot(acc, a, b);
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
}

/* Weights of a block as 2 x 16 int8 in element order (q4: q - 8). */
INLINE void load_w_block(const void *w, int64_t b, int q4, int8x16_t *lo, int8x16_t *hi) {
    if (q4) {
        const uint8x16_t q = vld1q_u8(((const gm_block_q4_0 *)w)[b].qs);
        const int8x16_t eight = vdupq_n_s8(8);
        *lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), eight);
        *hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
    } else {
        const int8_t *qs = ((const gm_block_q8_0 *)w)[b].qs;
        *lo = vld1q_s8(qs);
        *hi = vld1q_s8(qs + 16);
    }
}

INLINE uint16_t w_scale(const void *w, int64_t b, int q4) {
    return q4 ? ((const gm_block_q4_0 *)w)[b].d : ((const gm_block_q8_0 *)w)[b].d;
}

INLINE void gemv_q_rows(const void *W, int64_t nbl, const gm_block_q8_0 *x, int64_t nb, float *y, int64_t r,
                        int nr, const int q4, const int dotprod) {
    const size_t bsz = q4 ? sizeof(gm_block_q4_0) : sizeof(gm_block_q8_0);
    const void *w[4];
    float32x4_t acc[4];
    UNROLL for (int k = 0; k < nr; k++) {
        w[k] = (const char *)W + (size_t)((r + k) * nbl) * bsz;
        acc[k] = vdupq_n_f32(0.0f);
    }
    for (int64_t b = 0; b < nb; b++) {
        const int8x16_t x0 = vld1q_s8(x[b].qs), x1 = vld1q_s8(x[b].qs + 16);
        const float dx = f16_to_f32(x[b].d);
        UNROLL for (int k = 0; k < nr; k++) {
            int8x16_t w0, w1;
            load_w_block(w[k], b, q4, &w0, &w1);
            const int32x4_t sumi = i8_dot(i8_dot(vdupq_n_s32(0), w0, x0, dotprod), w1, x1, dotprod);
            acc[k] = vfmaq_n_f32(acc[k], vcvtq_f32_s32(sumi), f16_to_f32(w_scale(w[k], b, q4)) * dx);
        }
    }
    UNROLL for (int k = 0; k < nr; k++) y[r + k] = vaddvq_f32(acc[k]);
}

INLINE void gemv_q_any(const void *W, int64_t ld, const void *x, int64_t n, float *y, int64_t r0, int64_t r1,
                       const int q4, const int dotprod) {
    const int64_t nbl = ld / 32, nb = n / 32;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) gemv_q_rows(W, nbl, x, nb, y, r, 4, q4, dotprod);
    for (; r < r1; r++) gemv_q_rows(W, nbl, x, nb, y, r, 1, q4, dotprod);
}

static void neon_gemv_q8_0(const void *W, int64_t ld, const void *x, int64_t n, float *y, int64_t r0,
                           int64_t r1) {
    gemv_q_any(W, ld, x, n, y, r0, r1, 0, 0);
}
static void neon_gemv_q4_0(const void *W, int64_t ld, const void *x, int64_t n, float *y, int64_t r0,
                           int64_t r1) {
    gemv_q_any(W, ld, x, n, y, r0, r1, 1, 0);
}
static float neon_dot_q8_0_q8_0(const void *w, const void *x, int64_t n) {
    float y;
    gemv_q_rows(w, 0, x, n / 32, &y, 0, 1, 0, 0);
    return y;
}
static float neon_dot_q4_0_q8_0(const void *w, const void *x, int64_t n) {
    float y;
    gemv_q_rows(w, 0, x, n / 32, &y, 0, 1, 1, 0);
    return y;
}
static void dp_gemv_q8_0(const void *W, int64_t ld, const void *x, int64_t n, float *y,
                                        int64_t r0, int64_t r1) {
    gemv_q_any(W, ld, x, n, y, r0, r1, 0, 1);
}
static void dp_gemv_q4_0(const void *W, int64_t ld, const void *x, int64_t n, float *y,
                                        int64_t r0, int64_t r1) {
    gemv_q_any(W, ld, x, n, y, r0, r1, 1, 1);
}
static float dp_dot_q8_0_q8_0(const void *w, const void *x, int64_t n) {
    float y;
    gemv_q_rows(w, 0, x, n / 32, &y, 0, 1, 0, 1);
    return y;
}
static float dp_dot_q4_0_q8_0(const void *w, const void *x, int64_t n) {
    float y;
    gemv_q_rows(w, 0, x, n / 32, &y, 0, 1, 1, 1);
    return y;
}

/* ---- f32 block products (attention; contract in kernels.h) ---- */

/* The block loops (up to 8 outputs or vectors) must become straight code too. */
#define UNROLL8 _Pragma("GCC unroll 8")

/* Lane sum with fixed pairs (v0 + v1) + (v2 + v3), as faddp does it. */
INLINE float hsum4(float32x4_t v) {
    const float32x4_t s = vpaddq_f32(v, v);
    return vgetq_lane_f32(vpaddq_f32(s, s), 0);
}

/* hsum4 of four vectors, the same pairs: lane j is the sum of v_j. */
INLINE float32x4_t hsum4x4(float32x4_t v0, float32x4_t v1, float32x4_t v2, float32x4_t v3) {
    return vpaddq_f32(vpaddq_f32(v0, v1), vpaddq_f32(v2, v3));
}

/*
 * C[i][j] for mr rows of A x nr rows of B ((4, 4), (4, 1), (1, 8), (1, 4),
 * (1, 1)): one 4-lane accumulator per output over 4-column steps (FMA),
 * hsum4's pairs, then the scalar tail K % 4 left to right. 16 accumulators
 * + 4 B + 1 A registers; a lone row of A (decode) takes 8 keys for 8
 * independent chains.
 */
INLINE void nt_block(const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc, int64_t K,
                     int mr, int nr) {
    float32x4_t acc[4][8], b[8];
    UNROLL8 for (int i = 0; i < mr; i++) UNROLL8 for (int j = 0; j < nr; j++) acc[i][j] = vdupq_n_f32(0.0f);
    int64_t k = 0;
    for (; k + 4 <= K; k += 4) {
        UNROLL8 for (int j = 0; j < nr; j++) b[j] = vld1q_f32(B + j * ldb + k);
        UNROLL8 for (int i = 0; i < mr; i++) {
            const float32x4_t a = vld1q_f32(A + i * lda + k);
            UNROLL8 for (int j = 0; j < nr; j++) acc[i][j] = vfmaq_f32(acc[i][j], a, b[j]);
        }
    }
    UNROLL8 for (int i = 0; i < mr; i++) {
        float s[8];
        UNROLL8 for (int j = 0; j + 4 <= nr; j += 4)
            vst1q_f32(s + j, hsum4x4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]));
        if (nr == 1) s[0] = hsum4(acc[i][0]);
        UNROLL8 for (int j = 0; j < nr; j++) {
            for (int64_t t = k; t < K; t++) s[j] += A[i * lda + t] * B[j * ldb + t];
            C[i * ldc + j] = s[j];
        }
    }
}

/*
 * Blocks of 4 rows of A against key blocks of 4 (key blocks outer: the 4
 * rows of B stay in L1 while the rows of A pass), then the last M % 4 rows
 * one at a time against key blocks of 8.
 */
static void neon_gemm_nt_f32(const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
                             int64_t M, int64_t N, int64_t K) {
    const int64_t M4 = M / 4 * 4;
    int64_t j = 0;
    for (; j + 4 <= N; j += 4)
        for (int64_t i = 0; i < M4; i += 4) nt_block(A + i * lda, lda, B + j * ldb, ldb, C + i * ldc + j, ldc, K, 4, 4);
    for (; j < N; j++)
        for (int64_t i = 0; i < M4; i += 4) nt_block(A + i * lda, lda, B + j * ldb, ldb, C + i * ldc + j, ldc, K, 4, 1);
    for (int64_t i = M4; i < M; i++) {
        const float *a = A + i * lda;
        float *c = C + i * ldc;
        for (j = 0; j + 8 <= N; j += 8) nt_block(a, lda, B + j * ldb, ldb, c + j, ldc, K, 1, 8);
        for (; j + 4 <= N; j += 4) nt_block(a, lda, B + j * ldb, ldb, c + j, ldc, K, 1, 4);
        for (; j < N; j++) nt_block(a, lda, B + j * ldb, ldb, c + j, ldc, K, 1, 1);
    }
}

/*
 * C[i][0 .. 4 nv) += P[i][j] V[j][...] for mr rows over j < N: one FMA per
 * j in increasing j (each output's chain is the same however the call is
 * blocked, and the same as nn_cols' fmaf chain). Shapes: 4 rows x 4
 * vectors (16 accumulators) and, for a lone row (decode), 1 x 8.
 */
INLINE void nn_strip(const float *P, int64_t ldp, const float *V, int64_t ldv, float *C, int64_t ldc, int64_t N,
                     int mr, int nv) {
    float32x4_t acc[4][8], v[8];
    UNROLL8 for (int i = 0; i < mr; i++) UNROLL8 for (int x = 0; x < nv; x++)
        acc[i][x] = vld1q_f32(C + i * ldc + 4 * x);
    for (int64_t j = 0; j < N; j++) {
        UNROLL8 for (int x = 0; x < nv; x++) v[x] = vld1q_f32(V + j * ldv + 4 * x);
        UNROLL8 for (int i = 0; i < mr; i++) {
            const float32x4_t p = vdupq_n_f32(P[i * ldp + j]);
            UNROLL8 for (int x = 0; x < nv; x++) acc[i][x] = vfmaq_f32(acc[i][x], p, v[x]);
        }
    }
    UNROLL8 for (int i = 0; i < mr; i++) UNROLL8 for (int x = 0; x < nv; x++) vst1q_f32(C + i * ldc + 4 * x, acc[i][x]);
}

/* Columns [d0, d1) of rows [i0, i1), one at a time (the last D % 4, and narrow strips). */
static void nn_cols(const float *P, int64_t ldp, const float *V, int64_t ldv, float *C, int64_t ldc, int64_t i0,
                    int64_t i1, int64_t N, int64_t d0, int64_t d1) {
    for (int64_t i = i0; i < i1; i++)
        for (int64_t d = d0; d < d1; d++) {
            float c = C[i * ldc + d];
            for (int64_t j = 0; j < N; j++) c = fmaf(P[i * ldp + j], V[j * ldv + d], c);
            C[i * ldc + d] = c;
        }
}

/* Keys per pass: a strip's V chunk (64 rows x 16 floats, 4 KiB) stays in L1
 * while every row block of P passes over it. */
#define NN_KEYS 64

/* Rows [i0, i1) in blocks of mr, the full strips of 4 nv columns in NN_KEYS
 * passes; the columns past the last full strip go to nn_cols. */
INLINE void nn_rows(const float *P, int64_t ldp, const float *V, int64_t ldv, float *C, int64_t ldc, int64_t i0,
                    int64_t i1, int64_t N, int64_t D, int mr, int nv) {
    int64_t d = 0;
    for (; d + 4 * nv <= D; d += 4 * nv)
        for (int64_t j = 0; j < N; j += NN_KEYS) {
            const int64_t nj = GM_MIN(NN_KEYS, N - j);
            for (int64_t i = i0; i < i1; i += mr)
                nn_strip(P + i * ldp + j, ldp, V + j * ldv + d, ldv, C + i * ldc + d, ldc, nj, mr, nv);
        }
    for (; d + 4 <= D; d += 4) /* whole vectors of a partial strip */
        for (int64_t i = i0; i < i1; i++) nn_strip(P + i * ldp, ldp, V + d, ldv, C + i * ldc + d, ldc, N, 1, 1);
    nn_cols(P, ldp, V, ldv, C, ldc, i0, i1, N, d, D);
}

static void neon_gemm_nn_acc_f32(const float *P, int64_t ldp, const float *V, int64_t ldv, float *C, int64_t ldc,
                                 int64_t M, int64_t N, int64_t D) {
    const int64_t M4 = M / 4 * 4;
    nn_rows(P, ldp, V, ldv, C, ldc, 0, M4, N, D, 4, 4);
    nn_rows(P, ldp, V, ldv, C, ldc, M4, M, N, D, 1, 8);
}

#undef UNROLL8
#undef NN_KEYS

/* ---- activation conversion ---- */

/* Same bytes as gm_quantize_row_q8_0: FRINTA is roundf (ties away from zero). */
static void neon_quantize_row_q8_0(const float *x, void *blocks, int64_t n) {
    gm_block_q8_0 *y = blocks;
    for (int64_t b = 0; b < n / GM_QK8_0; b++, x += GM_QK8_0) {
        float32x4_t v[8], amax = vdupq_n_f32(0.0f);
        for (int j = 0; j < 8; j++) {
            v[j] = vld1q_f32(x + 4 * j);
            amax = vmaxnmq_f32(amax, vabsq_f32(v[j])); /* a quiet NaN loses, as in quant.c */
        }
        const float d = vmaxnmvq_f32(amax) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = f32_to_f16(d);
        int16x8_t q16[4];
        for (int j = 0; j < 4; j++) {
            int32x4_t q32[2];
            for (int h = 0; h < 2; h++) {
                const float32x4_t s = vmulq_n_f32(v[2 * j + h], id);
                float32x4_t r = vreinterpretq_f32_u32(
                    vandq_u32(vreinterpretq_u32_f32(vrndaq_f32(s)), vceqq_f32(s, s))); /* NaN -> 0 */
                r = vminq_f32(vmaxq_f32(r, vdupq_n_f32(-127.0f)), vdupq_n_f32(127.0f));
                q32[h] = vcvtq_s32_f32(r);
            }
            q16[j] = vcombine_s16(vmovn_s32(q32[0]), vmovn_s32(q32[1]));
        }
        vst1q_s8(y[b].qs, vcombine_s8(vmovn_s16(q16[0]), vmovn_s16(q16[1])));
        vst1q_s8(y[b].qs + 16, vcombine_s8(vmovn_s16(q16[2]), vmovn_s16(q16[3])));
    }
}

INLINE uint16x4_t f32x4_to_bf16(float32x4_t v) {
    const uint32x4_t u = vreinterpretq_u32_f32(v);
    const uint32x4_t lsb = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    const uint32x4_t rounded = vshrq_n_u32(vaddq_u32(vaddq_u32(u, vdupq_n_u32(0x7FFF)), lsb), 16);
    const uint32x4_t quiet = vorrq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(0x40));
    const uint32x4_t nan = vmvnq_u32(vceqq_f32(v, v));
    return vmovn_u32(vbslq_u32(nan, quiet, rounded));
}

static void neon_f32_to_bf16(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(y + i, f32x4_to_bf16(vld1q_f32(x + i)));
    for (; i < n; i++) y[i] = gm_f32_to_bf16(x[i]);
}

static void neon_f16_to_f32(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(x + i))));
    for (; i < n; i++) y[i] = gm_f16_to_f32(x[i]);
}

/* ---- elementwise: same operations as kern_ref.c (no FMA), so the same bits ---- */

static void neon_axpy(float a, const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vmulq_n_f32(vld1q_f32(x + i), a)));
    for (; i < n; i++) y[i] += a * x[i];
}

static void neon_scale(float a, float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_n_f32(vld1q_f32(x + i), a));
    for (; i < n; i++) x[i] *= a;
}

static void neon_mul(const float *x, const float *w, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_f32(vld1q_f32(x + i), vld1q_f32(w + i)));
    for (; i < n; i++) y[i] = x[i] * w[i];
}

static float neon_sumsq(const float *x, int64_t n) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const float32x4_t v0 = vld1q_f32(x + i), v1 = vld1q_f32(x + i + 4);
        a0 = vfmaq_f32(a0, v0, v0);
        a1 = vfmaq_f32(a1, v1, v1);
    }
    float s = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < n; i++) s += x[i] * x[i];
    return s;
}

static float neon_max_f32(const float *x, int64_t n) {
    float32x4_t m = vdupq_n_f32(-INFINITY);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) m = vmaxnmq_f32(m, vld1q_f32(x + i)); /* a quiet NaN loses */
    float s = vmaxnmvq_f32(m);
    for (; i < n; i++)
        if (x[i] > s) s = x[i];
    return s;
}

/* ---- exp / tanh: the algorithms and error analysis of kern_avx2.c's exp8 / tanh8 ---- */

INLINE float32x4_t exp4(float32x4_t x) {
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-104.0f)), vdupq_n_f32(89.0f)); /* FMAX/FMIN keep NaN */
    const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.0f / 5040);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 720), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 120), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 24), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f / 6), p, r);
    p = vfmaq_f32(vdupq_n_f32(0.5f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    const int32x4_t ni = vcvtq_s32_f32(n);
    const int32x4_t n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
    const float32x4_t s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, vdupq_n_s32(127)), 23));
    const float32x4_t s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, vdupq_n_s32(127)), 23));
    return vmulq_f32(vmulq_f32(p, s1), s2);
}

INLINE float32x4_t tanh4(float32x4_t x) {
    const float32x4_t a = vabsq_f32(x);
    const float32x4_t x2 = vmulq_f32(a, a);
    float32x4_t p = vdupq_n_f32(5.90027440945585e-4f);
    p = vfmaq_f32(vdupq_n_f32(-1.45583438705132e-3f), p, x2);
    p = vfmaq_f32(vdupq_n_f32(3.59212803657248e-3f), p, x2);
    p = vfmaq_f32(vdupq_n_f32(-8.86323552990220e-3f), p, x2);
    p = vfmaq_f32(vdupq_n_f32(2.18694885361552e-2f), p, x2);
    p = vfmaq_f32(vdupq_n_f32(-5.39682539682540e-2f), p, x2);
    p = vfmaq_f32(vdupq_n_f32(1.33333333333333e-1f), p, x2);
    p = vfmaq_f32(vdupq_n_f32(-3.33333333333333e-1f), p, x2);
    const float32x4_t small = vfmaq_f32(a, vmulq_f32(a, x2), p);
    const float32x4_t a2 = vminq_f32(vaddq_f32(a, a), vdupq_n_f32(20.0f));
    const float32x4_t q = vdivq_f32(vdupq_n_f32(2.0f), vaddq_f32(exp4(a2), vdupq_n_f32(1.0f)));
    const float32x4_t large = vsubq_f32(vdupq_n_f32(1.0f), q);
    const float32x4_t t = vbslq_f32(vcltq_f32(a, vdupq_n_f32(0.55f)), small, large);
    const uint32x4_t sign = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x80000000u));
    return vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(t), sign));
}

INLINE float32x4_t gelu4(float32x4_t v) {
    const float32x4_t cube = vmulq_f32(vmulq_f32(vmulq_n_f32(v, 0.044715f), v), v);
    const float32x4_t z = vmulq_n_f32(vaddq_f32(v, cube), 0.7978845608028654f);
    return vmulq_f32(vmulq_n_f32(v, 0.5f), vaddq_f32(vdupq_n_f32(1.0f), tanh4(z)));
}

/* Applies `expr_of_v` to x in place; the tail is padded into a register. */
#define MAP_INPLACE(x, n, expr_of_v)                                                  \
    do {                                                                              \
        int64_t i_ = 0;                                                               \
        for (; i_ + 4 <= (n); i_ += 4) {                                              \
            const float32x4_t v = vld1q_f32((x) + i_);                                \
            vst1q_f32((x) + i_, (expr_of_v));                                         \
        }                                                                             \
        if (i_ < (n)) {                                                               \
            float pad_[4] = {0, 0, 0, 0};                                             \
            memcpy(pad_, (x) + i_, (size_t)((n) - i_) * sizeof(float));               \
            const float32x4_t v = vld1q_f32(pad_);                                    \
            vst1q_f32(pad_, (expr_of_v));                                             \
            memcpy((x) + i_, pad_, (size_t)((n) - i_) * sizeof(float));               \
        }                                                                             \
    } while (0)

static void neon_tanh_f32(float *x, int64_t n) { MAP_INPLACE(x, n, tanh4(v)); }

static void neon_gelu_tanh(float *x, int64_t n) { MAP_INPLACE(x, n, gelu4(v)); }

static void neon_softcap(float *x, int64_t n, float cap) {
    const float32x4_t c = vdupq_n_f32(cap);
    MAP_INPLACE(x, n, vmulq_f32(c, tanh4(vdivq_f32(v, c))));
}

static float neon_exp_sum(float *x, int64_t n, float m) {
    const float32x4_t vm = vdupq_n_f32(m);
    float32x4_t acc = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t e = exp4(vsubq_f32(vld1q_f32(x + i), vm));
        vst1q_f32(x + i, e);
        acc = vaddq_f32(acc, e);
    }
    if (i < n) {
        float pad[4] = {0, 0, 0, 0};
        const int64_t rest = n - i;
        memcpy(pad, x + i, (size_t)rest * sizeof(float));
        vst1q_f32(pad, exp4(vsubq_f32(vld1q_f32(pad), vm)));
        memcpy(x + i, pad, (size_t)rest * sizeof(float));
        for (int64_t j = rest; j < 4; j++) pad[j] = 0.0f; /* padding lanes add nothing */
        acc = vaddq_f32(acc, vld1q_f32(pad));
    }
    return vaddvq_f32(acc);
}

#undef MAP_INPLACE

#define NEON_COMMON                                     \
    .dot_f32 = neon_dot_f32,                            \
    .dot_bf16_f32 = neon_dot_bf16_f32,                  \
    .dot_f16_f32 = neon_dot_f16_f32,                    \
    .dot_bf16_bf16 = neon_dot_bf16_bf16,                \
    .gemv_f32 = neon_gemv_f32,                          \
    .gemv_bf16 = neon_gemv_bf16,                        \
    .gemv_f16 = neon_gemv_f16,                          \
    .gemv_bf16_bf16 = neon_gemv_bf16_bf16,              \
    .gemm_nt_f32 = neon_gemm_nt_f32,                    \
    .gemm_nn_acc_f32 = neon_gemm_nn_acc_f32,            \
    .quantize_row_q8_0 = neon_quantize_row_q8_0,        \
    .f32_to_bf16 = neon_f32_to_bf16,                    \
    .f16_to_f32 = neon_f16_to_f32,                      \
    .axpy = neon_axpy,                                  \
    .scale = neon_scale,                                \
    .mul = neon_mul,                                    \
    .sumsq = neon_sumsq,                                \
    .max_f32 = neon_max_f32,                            \
    .exp_sum = neon_exp_sum,                            \
    .tanh_f32 = neon_tanh_f32,                          \
    .gelu_tanh = neon_gelu_tanh,                        \
    .softcap = neon_softcap

const gm_kernels gm_kernels_neon = {
    .name = "neon",
    NEON_COMMON,
    .dot_q8_0_q8_0 = neon_dot_q8_0_q8_0,
    .dot_q4_0_q8_0 = neon_dot_q4_0_q8_0,
    .gemv_q8_0 = neon_gemv_q8_0,
    .gemv_q4_0 = neon_gemv_q4_0,
};

const gm_kernels gm_kernels_neon_dotprod = {
    .name = "neon_dotprod",
    NEON_COMMON,
    .dot_q8_0_q8_0 = dp_dot_q8_0_q8_0,
    .dot_q4_0_q8_0 = dp_dot_q4_0_q8_0,
    .gemv_q8_0 = dp_gemv_q8_0,
    .gemv_q4_0 = dp_gemv_q4_0,
};

#undef NEON_COMMON

#else
typedef int gm_kern_neon_unused; /* not an AArch64 build: the file is empty */
#endif
