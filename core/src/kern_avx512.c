/*
 * kern_avx512.c - the AVX-512 kernel tables (see kernels.h):
 *   avx512       F + BW + VL + DQ (with AVX2, FMA, F16C)
 *   avx512_vnni  + VNNI: the int8 block dots use vpdpbusd
 *   avx512_bf16  + AVX512_BF16: the bf16 x bf16 dots use vdpbf16ps
 *
 * The three tables share every function except the int8 / bf16 dot
 * primitives. Those two instructions are emitted with inline asm inside
 * always-inline helpers whose `vnni` / `bf16dp` argument is a constant at
 * each call site, so one source body serves both the plain and the
 * extended table, the compiler drops the unused branch, and no function
 * compiled for the plain table needs the extension's target flag (GCC
 * refuses to inline an intrinsic of a wider target). The asm instruction
 * only ever executes in the table dispatch hands out when CPUID says so.
 *
 * Tails use masked loads and stores (they never touch memory past n, and do
 * not fault on it), so there is no scalar tail in this file. The per-row
 * summation layout (kern_avx2.c explains it): two 16-lane accumulators over
 * 32 columns a step, then a 16-column step, then one masked step; rows done
 * 4 at a time and 1 at a time run the same per-row operations.
 */
#include "kernels.h"
#include "pack.h"
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
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")
#endif

#define INLINE static inline __attribute__((always_inline))
/* The per-row loops (nr <= 4) must become straight code so the accumulators stay in registers. */
#define UNROLL _Pragma("GCC unroll 4")

/* ---- helpers ---- */

INLINE __mmask16 mask16(int64_t m) { return (__mmask16)((1u << m) - 1); }           /* m <= 16 */
INLINE __mmask32 mask32(int64_t m) { return (__mmask32)((m >= 32 ? 0u : (1u << m)) - 1); } /* m <= 32 */


/* ---- float GEMV / dot: weights f32, bf16 or f16, activations f32 ---- */

enum { W_F32, W_BF16, W_F16 };

INLINE const void *w_at(const void *w, int64_t i, int type) {
    return (const char *)w + i * (type == W_F32 ? 4 : 2);
}

INLINE __m512 widen_w16(__m256i h, int type) {
    if (type == W_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); /* bf16 */
}

INLINE __m512 load_w16(const void *w, int64_t i, int type) {
    if (type == W_F32) return _mm512_loadu_ps((const float *)w + i);
    return widen_w16(_mm256_loadu_si256((const __m256i *)((const uint16_t *)w + i)), type);
}

INLINE __m512 maskload_w16(const void *w, int64_t i, __mmask16 m, int type) {
    if (type == W_F32) return _mm512_maskz_loadu_ps(m, (const float *)w + i);
    return widen_w16(_mm256_maskz_loadu_epi16(m, (const uint16_t *)w + i), type);
}

INLINE void gemv_rows(const void *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r, int nr,
                      int type) {
    const void *w[4];
    __m512 acc0[4], acc1[4];
    UNROLL for (int k = 0; k < nr; k++) {
        w[k] = w_at(W, (r + k) * ld, type);
        acc0[k] = acc1[k] = _mm512_setzero_ps();
    }
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
        UNROLL for (int k = 0; k < nr; k++) {
            acc0[k] = _mm512_fmadd_ps(load_w16(w[k], i, type), x0, acc0[k]);
            acc1[k] = _mm512_fmadd_ps(load_w16(w[k], i + 16, type), x1, acc1[k]);
        }
    }
    if (i + 16 <= n) {
        const __m512 x0 = _mm512_loadu_ps(x + i);
        UNROLL for (int k = 0; k < nr; k++) acc0[k] = _mm512_fmadd_ps(load_w16(w[k], i, type), x0, acc0[k]);
        i += 16;
    }
    if (i < n) {
        const __mmask16 m = mask16(n - i);
        const __m512 x0 = _mm512_maskz_loadu_ps(m, x + i);
        UNROLL for (int k = 0; k < nr; k++) acc1[k] = _mm512_fmadd_ps(maskload_w16(w[k], i, m, type), x0, acc1[k]);
    }
    UNROLL for (int k = 0; k < nr; k++) y[r + k] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[k], acc1[k]));
}

INLINE void gemv_any(const void *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                     int64_t r1, int type) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) gemv_rows(W, ld, x, n, y, r, 4, type);
    for (; r < r1; r++) gemv_rows(W, ld, x, n, y, r, 1, type);
}

static void avx512_gemv_f32(const float *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                            int64_t r1) {
    gemv_any(W, ld, x, n, y, r0, r1, W_F32);
}
static void avx512_gemv_bf16(const uint16_t *W, int64_t ld, const float *x, int64_t n, float *y,
                             int64_t r0, int64_t r1) {
    gemv_any(W, ld, x, n, y, r0, r1, W_BF16);
}
static void avx512_gemv_f16(const uint16_t *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                            int64_t r1) {
    gemv_any(W, ld, x, n, y, r0, r1, W_F16);
}

static float avx512_dot_f32(const float *a, const float *b, int64_t n) {
    float y;
    gemv_rows(a, 0, b, n, &y, 0, 1, W_F32);
    return y;
}
static float avx512_dot_bf16_f32(const uint16_t *w, const float *x, int64_t n) {
    float y;
    gemv_rows(w, 0, x, n, &y, 0, 1, W_BF16);
    return y;
}
static float avx512_dot_f16_f32(const uint16_t *w, const float *x, int64_t n) {
    float y;
    gemv_rows(w, 0, x, n, &y, 0, 1, W_F16);
    return y;
}

/* ---- bf16 x bf16 ---- */

/* acc + per lane i: w[2i] x[2i] + w[2i+1] x[2i+1] (vdpbf16ps: products exact,
 * bf16 subnormals read as 0), for 32 bf16 pairs. */
INLINE __m512 bf16_dot(__m512 acc, __m512i w, __m512i x) {
    __asm__("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(w), "v"(x));
    return acc;
}

INLINE __m512 widen_bf16(__m256i h) { return widen_w16(h, W_BF16); }

/*
 * bf16dp: 64 columns a step in two vdpbf16ps accumulators, then 32, then a
 * masked step. Otherwise both sides are widened to f32 as in gemv_rows.
 */
INLINE void gemv_bb_rows(const uint16_t *W, int64_t ld, const uint16_t *x, int64_t n, float *y, int64_t r,
                         int nr, const int bf16dp) {
    const uint16_t *w[4];
    __m512 acc0[4], acc1[4];
    UNROLL for (int k = 0; k < nr; k++) {
        w[k] = W + (r + k) * ld;
        acc0[k] = acc1[k] = _mm512_setzero_ps();
    }
    int64_t i = 0;
    if (bf16dp) {
        for (; i + 64 <= n; i += 64) {
            const __m512i x0 = _mm512_loadu_si512(x + i), x1 = _mm512_loadu_si512(x + i + 32);
            UNROLL for (int k = 0; k < nr; k++) {
                acc0[k] = bf16_dot(acc0[k], _mm512_loadu_si512(w[k] + i), x0);
                acc1[k] = bf16_dot(acc1[k], _mm512_loadu_si512(w[k] + i + 32), x1);
            }
        }
        if (i + 32 <= n) {
            const __m512i x0 = _mm512_loadu_si512(x + i);
            UNROLL for (int k = 0; k < nr; k++) acc0[k] = bf16_dot(acc0[k], _mm512_loadu_si512(w[k] + i), x0);
            i += 32;
        }
        if (i < n) {
            const __mmask32 m = mask32(n - i);
            const __m512i x0 = _mm512_maskz_loadu_epi16(m, x + i);
            UNROLL for (int k = 0; k < nr; k++) acc1[k] = bf16_dot(acc1[k], _mm512_maskz_loadu_epi16(m, w[k] + i), x0);
        }
    } else {
        for (; i + 32 <= n; i += 32) {
            const __m512 x0 = widen_bf16(_mm256_loadu_si256((const __m256i *)(x + i)));
            const __m512 x1 = widen_bf16(_mm256_loadu_si256((const __m256i *)(x + i + 16)));
            UNROLL for (int k = 0; k < nr; k++) {
                acc0[k] = _mm512_fmadd_ps(widen_bf16(_mm256_loadu_si256((const __m256i *)(w[k] + i))), x0, acc0[k]);
                acc1[k] = _mm512_fmadd_ps(widen_bf16(_mm256_loadu_si256((const __m256i *)(w[k] + i + 16))), x1,
                                          acc1[k]);
            }
        }
        if (i + 16 <= n) {
            const __m512 x0 = widen_bf16(_mm256_loadu_si256((const __m256i *)(x + i)));
            UNROLL for (int k = 0; k < nr; k++)
                acc0[k] = _mm512_fmadd_ps(widen_bf16(_mm256_loadu_si256((const __m256i *)(w[k] + i))), x0, acc0[k]);
            i += 16;
        }
        if (i < n) {
            const __mmask16 m = mask16(n - i);
            const __m512 x0 = widen_bf16(_mm256_maskz_loadu_epi16(m, x + i));
            UNROLL for (int k = 0; k < nr; k++)
                acc1[k] = _mm512_fmadd_ps(widen_bf16(_mm256_maskz_loadu_epi16(m, w[k] + i)), x0, acc1[k]);
        }
    }
    UNROLL for (int k = 0; k < nr; k++) y[r + k] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[k], acc1[k]));
}

INLINE void gemv_bb_any(const uint16_t *W, int64_t ld, const uint16_t *x, int64_t n, float *y, int64_t r0,
                        int64_t r1, const int bf16dp) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) gemv_bb_rows(W, ld, x, n, y, r, 4, bf16dp);
    for (; r < r1; r++) gemv_bb_rows(W, ld, x, n, y, r, 1, bf16dp);
}

static void avx512_gemv_bf16_bf16(const uint16_t *W, int64_t ld, const uint16_t *x, int64_t n, float *y,
                                  int64_t r0, int64_t r1) {
    gemv_bb_any(W, ld, x, n, y, r0, r1, 0);
}
static void bf16_gemv_bf16_bf16(const uint16_t *W, int64_t ld, const uint16_t *x, int64_t n, float *y,
                                int64_t r0, int64_t r1) {
    gemv_bb_any(W, ld, x, n, y, r0, r1, 1);
}
static float avx512_dot_bf16_bf16(const uint16_t *w, const uint16_t *x, int64_t n) {
    float y;
    gemv_bb_rows(w, 0, x, n, &y, 0, 1, 0);
    return y;
}
static float bf16_dot_bf16_bf16(const uint16_t *w, const uint16_t *x, int64_t n) {
    float y;
    gemv_bb_rows(w, 0, x, n, &y, 0, 1, 1);
    return y;
}

/* ---- quantized: Q8_0 / Q4_0 weights x Q8_0 activations, two blocks per register ---- */

/*
 * Per 32-bit lane, the sum of 4 products u8 * s8: vpdpbusd (VNNI, no
 * intermediate saturation) or vpmaddubsw + vpmaddwd (saturates pairs at
 * int16, which the callers' operand ranges never reach: see kern_avx2.c).
 * Both group the same 4 bytes per lane, so both tables give the same bits.
 */
INLINE __m512i i8_dot(__m512i u, __m512i s, const int vnni) {
    if (vnni) {
        __m512i acc = _mm512_setzero_si512();
        __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
        return acc;
    }
    return _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1));
}

/* 32 bytes from p0 in the low half, from p1 (or zeros) in the high half. */
INLINE __m512i load_2x32(const int8_t *p0, const int8_t *p1) {
    const __m512i lo = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)p0));
    return p1 ? _mm512_inserti64x4(lo, _mm256_loadu_si256((const __m256i *)p1), 1) : lo;
}

/* Two binary16 scales as f32 in lanes 0 and 1 (lanes 2, 3 zero). */
INLINE __m128 scales2(uint16_t d0, uint16_t d1) {
    return _mm_cvtph_ps(_mm_cvtsi32_si128((int)((uint32_t)d0 | (uint32_t)d1 << 16)));
}

/* d_b in lanes 0..7, d_{b+1} in lanes 8..15. */
INLINE __m512 spread2(__m128 d) {
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(d));
}

/* Blocks b and b+1 (b+1 only if two) of nr Q8_0 rows into acc. */
INLINE void q8_pair(const gm_block_q8_0 *const *w, const gm_block_q8_0 *x, int64_t b, int two, int nr,
                    __m512 *acc, const int vnni) {
    const __m512i qx = load_2x32(x[b].qs, two ? x[b + 1].qs : NULL);
    const __m128 dx = scales2(x[b].d, two ? x[b + 1].d : 0);
    UNROLL for (int k = 0; k < nr; k++) {
        const __m512i qw = load_2x32(w[k][b].qs, two ? w[k][b + 1].qs : NULL);
        /* |w| . (x with w's sign): 0 - x where w < 0 */
        const __m512i sx = _mm512_mask_sub_epi8(qx, _mm512_movepi8_mask(qw), _mm512_setzero_si512(), qx);
        const __m512i sumi = i8_dot(_mm512_abs_epi8(qw), sx, vnni);
        const __m512 d = spread2(_mm_mul_ps(scales2(w[k][b].d, two ? w[k][b + 1].d : 0), dx));
        acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), d, acc[k]);
    }
}

INLINE void gemv_q8_rows(const gm_block_q8_0 *W, int64_t nbl, const gm_block_q8_0 *x, int64_t nb, float *y,
                         int64_t r, int nr, const int vnni) {
    const gm_block_q8_0 *w[4];
    __m512 acc[4];
    UNROLL for (int k = 0; k < nr; k++) {
        w[k] = W + (r + k) * nbl;
        acc[k] = _mm512_setzero_ps();
    }
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) q8_pair(w, x, b, 1, nr, acc, vnni);
    if (b < nb) q8_pair(w, x, b, 0, nr, acc, vnni);
    UNROLL for (int k = 0; k < nr; k++) y[r + k] = _mm512_reduce_add_ps(acc[k]);
}

/* The 32 nibbles of Q4_0 blocks b and b+1 (or zeros) as bytes 0..15, in x's element order. */
INLINE __m512i q4_nibbles_2(const gm_block_q4_0 *w, int64_t b, int two) {
    const __m128i q0 = _mm_loadu_si128((const __m128i *)w[b].qs);
    const __m128i q1 = two ? _mm_loadu_si128((const __m128i *)w[b + 1].qs) : _mm_setzero_si128();
    const __m256i q01 = _mm256_inserti128_si256(_mm256_castsi128_si256(q0), q1, 1);
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(q01), _mm256_srli_epi16(q01, 4), 1);
    /* v = [q0 | q1 | q0>>4 | q1>>4] -> [q0 | q0>>4 | q1 | q1>>4] (low nibbles = elements 0..15) */
    const __m512i ordered = _mm512_shuffle_i64x2(v, v, _MM_SHUFFLE(3, 1, 2, 0));
    return _mm512_and_si512(ordered, _mm512_set1_epi8(0x0F));
}

/* sum (q - 8) x = q . x - 8 sum(x), the last term once per block pair for all rows. */
INLINE void q4_pair(const gm_block_q4_0 *const *w, const gm_block_q8_0 *x, int64_t b, int two, int nr,
                    __m512 *acc, const int vnni) {
    const __m512i qx = load_2x32(x[b].qs, two ? x[b + 1].qs : NULL);
    const __m512i sx8 = _mm512_slli_epi32(i8_dot(_mm512_set1_epi8(1), qx, vnni), 3);
    const __m128 dx = scales2(x[b].d, two ? x[b + 1].d : 0);
    UNROLL for (int k = 0; k < nr; k++) {
        const __m512i sumi = _mm512_sub_epi32(i8_dot(q4_nibbles_2(w[k], b, two), qx, vnni), sx8);
        const __m512 d = spread2(_mm_mul_ps(scales2(w[k][b].d, two ? w[k][b + 1].d : 0), dx));
        acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), d, acc[k]);
    }
}

INLINE void gemv_q4_rows(const gm_block_q4_0 *W, int64_t nbl, const gm_block_q8_0 *x, int64_t nb, float *y,
                         int64_t r, int nr, const int vnni) {
    const gm_block_q4_0 *w[4];
    __m512 acc[4];
    UNROLL for (int k = 0; k < nr; k++) {
        w[k] = W + (r + k) * nbl;
        acc[k] = _mm512_setzero_ps();
    }
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) q4_pair(w, x, b, 1, nr, acc, vnni);
    if (b < nb) q4_pair(w, x, b, 0, nr, acc, vnni);
    UNROLL for (int k = 0; k < nr; k++) y[r + k] = _mm512_reduce_add_ps(acc[k]);
}

INLINE void gemv_q8_any(const void *W, int64_t ld, const void *x, int64_t n, float *y, int64_t r0, int64_t r1,
                        const int vnni) {
    const int64_t nbl = ld / GM_QK8_0, nb = n / GM_QK8_0;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) gemv_q8_rows(W, nbl, x, nb, y, r, 4, vnni);
    for (; r < r1; r++) gemv_q8_rows(W, nbl, x, nb, y, r, 1, vnni);
}

INLINE void gemv_q4_any(const void *W, int64_t ld, const void *x, int64_t n, float *y, int64_t r0, int64_t r1,
                        const int vnni) {
    const int64_t nbl = ld / GM_QK4_0, nb = n / GM_QK4_0;
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) gemv_q4_rows(W, nbl, x, nb, y, r, 4, vnni);
    for (; r < r1; r++) gemv_q4_rows(W, nbl, x, nb, y, r, 1, vnni);
}

static void avx512_gemv_q8_0(const void *W, int64_t ld, const void *x, int64_t n, float *y, int64_t r0,
                             int64_t r1) {
    gemv_q8_any(W, ld, x, n, y, r0, r1, 0);
}
static void vnni_gemv_q8_0(const void *W, int64_t ld, const void *x, int64_t n, float *y, int64_t r0,
                           int64_t r1) {
    gemv_q8_any(W, ld, x, n, y, r0, r1, 1);
}
static void avx512_gemv_q4_0(const void *W, int64_t ld, const void *x, int64_t n, float *y, int64_t r0,
                             int64_t r1) {
    gemv_q4_any(W, ld, x, n, y, r0, r1, 0);
}
static void vnni_gemv_q4_0(const void *W, int64_t ld, const void *x, int64_t n, float *y, int64_t r0,
                           int64_t r1) {
    gemv_q4_any(W, ld, x, n, y, r0, r1, 1);
}
static float avx512_dot_q8_0_q8_0(const void *w, const void *x, int64_t n) {
    float y;
    gemv_q8_rows(w, 0, x, n / GM_QK8_0, &y, 0, 1, 0);
    return y;
}
static float vnni_dot_q8_0_q8_0(const void *w, const void *x, int64_t n) {
    float y;
    gemv_q8_rows(w, 0, x, n / GM_QK8_0, &y, 0, 1, 1);
    return y;
}
static float avx512_dot_q4_0_q8_0(const void *w, const void *x, int64_t n) {
    float y;
    gemv_q4_rows(w, 0, x, n / GM_QK4_0, &y, 0, 1, 0);
    return y;
}
static float vnni_dot_q4_0_q8_0(const void *w, const void *x, int64_t n) {
    float y;
    gemv_q4_rows(w, 0, x, n / GM_QK4_0, &y, 0, 1, 1);
    return y;
}

/* ---- packed Q4_0x16 (pack.h) x Q8_0: 16 rows per register, vpdpbusd only ---- */

/* acc += per lane the sum of 4 products u8 * s8 (vpdpbusd; VNNI tables only). */
INLINE __m512i dpbusd(__m512i acc, __m512i u, __m512i s) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
    return acc;
}

/* The 8 activation words of a Q8_0 block, each broadcast to 16 lanes: bytes 4i..4i+3 in word i. */
INLINE __m512i x_word(const gm_block_q8_0 *x, int i) {
    return _mm512_broadcastd_epi32(_mm_loadu_si32(x->qs + 4 * i)); /* vpbroadcastd from memory: a load, no shuffle */
}
INLINE void x_words(const gm_block_q8_0 *x, __m512i *w) {
    UNROLL for (int i = 0; i < 8; i++) w[i] = x_word(x, i);
}

/*
 * int32 block sums of 16 rows: -8 sum(x) + nibbles . x (low nibbles: elements
 * 4q.., high: 16 + 4q..). The high nibbles are used in place (byte & 0xF0 =
 * 16 hi): their sum, a multiple of 16 below 2^20, is shifted down once per
 * tile instead of every byte once per load (shifts compete with vpdpbusd
 * for the same port).
 */
INLINE __m512i tile_sumi(const gm_tile_q4_0x16 *t, const __m512i *xw, int32_t bias) {
    const __m512i lo4 = _mm512_set1_epi8(0x0F), hi4 = _mm512_set1_epi8((char)0xF0);
    __m512i s = _mm512_set1_epi32(bias), s16 = _mm512_setzero_si512();
    UNROLL for (int q = 0; q < 4; q++) {
        const __m512i v = _mm512_loadu_si512(t->qs[q]);
        s = dpbusd(s, _mm512_and_si512(v, lo4), xw[q]);
        s16 = dpbusd(s16, _mm512_and_si512(v, hi4), xw[4 + q]);
    }
    return _mm512_add_epi32(s, _mm512_srai_epi32(s16, 4));
}

/* acc + (f32)sumi * (d_w * d_x): the reference's operations, unfused. */
INLINE __m512 tile_acc(__m512 acc, const gm_tile_q4_0x16 *t, __m512i sumi, __m512 dx) {
    const __m512 d = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)t->d)), dx);
    return _mm512_add_ps(acc, _mm512_mul_ps(_mm512_cvtepi32_ps(sumi), d));
}

INLINE void store_rows(float *y, int64_t r, int64_t r1, __m512 v) {
    _mm512_mask_storeu_ps(y + r, r1 - r >= 16 ? (__mmask16)0xFFFF : mask16(r1 - r), v);
}

/*
 * Software prefetch distance of the one-row pass, in tiles of each group's
 * stream. The hardware prefetchers alone left the cold GEMV (weights from
 * DRAM, as in decoding) at ~70 % of the streaming bandwidth; 8 tiles
 * (2.3 KB) ahead measured 27-32 GB/s with 2 threads (bench_kernels, E2B
 * decode 12.5 -> 14.8 tok/s). Prefetches never fault, so running past the
 * end of a group or matrix is harmless.
 */
#define GM_PACKED_PREFETCH 8

/* One activation row, NG groups at once (independent accumulation chains; every x word loaded once). */
INLINE void packed_gemv_groups(const gm_tile_q4_0x16 *P, int64_t nbl, const gm_block_q8_0 *x, const gm_q8_aux *xa,
                               int64_t nb, float *y, int64_t g, int ng, int64_t r1) {
    __m512 acc[4];
    UNROLL for (int k = 0; k < ng; k++) acc[k] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m512i xw[8];
        x_words(&x[b], xw);
        const __m512 dx = _mm512_set1_ps(xa[b].d);
        UNROLL for (int k = 0; k < ng; k++) {
            const gm_tile_q4_0x16 *t = &P[(g + k) * nbl + b];
            for (int c = 0; c < (int)sizeof *t; c += 64) _mm_prefetch((const char *)(t + GM_PACKED_PREFETCH) + c, _MM_HINT_T0);
            acc[k] = tile_acc(acc[k], t, tile_sumi(t, xw, xa[b].bias), dx);
        }
    }
    UNROLL for (int k = 0; k < ng; k++) store_rows(y, (g + k) * 16, r1, acc[k]);
}

/* NT activation rows through one group: its nibbles are decoded once per block for all NT rows. */
INLINE void packed_gemm_group(const gm_tile_q4_0x16 *P, int64_t nbl, const gm_block_q8_0 *X, const gm_q8_aux *xa,
                              int64_t nb, int nt, float *Y, int64_t ldy, int64_t g, int64_t r1) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 acc[8];
    UNROLL for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const gm_tile_q4_0x16 *tile = &P[g * nbl + b];
        __m512i lo[4], hi[4]; /* decoded once for all nt rows: here the shift is cheap */
        UNROLL for (int q = 0; q < 4; q++) {
            const __m512i v = _mm512_loadu_si512(tile->qs[q]);
            lo[q] = _mm512_and_si512(v, m4);
            hi[q] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)tile->d));
        UNROLL for (int t = 0; t < nt; t++) {
            const gm_block_q8_0 *x = &X[t * nb + b];
            const gm_q8_aux *a = &xa[t * nb + b];
            __m512i s = _mm512_set1_epi32(a->bias);
            UNROLL for (int q = 0; q < 4; q++) {
                s = dpbusd(s, lo[q], x_word(x, q));
                s = dpbusd(s, hi[q], x_word(x, 4 + q));
            }
            const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(a->d));
            acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_cvtepi32_ps(s), d));
        }
    }
    UNROLL for (int t = 0; t < nt; t++) store_rows(Y + t * ldy, g * 16, r1, acc[t]);
}

/*
 * pack.h's interleave, 16 rows' blocks per tile: each row's 16 quant bytes
 * are one 128-bit lane; 4 rows per register, a dword transpose inside each
 * register (vpermd), then a 4 x 4 transpose of 128-bit lanes across the
 * four registers gives quad q of all 16 rows in register q.
 */
static void avx512_pack_q4_0x16(const void *Wv, int64_t nbl, void *Pv, int64_t g0, int64_t g1) {
    const gm_block_q4_0 *W = Wv;
    gm_tile_q4_0x16 *P = Pv;
    const __m512i dword_t = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    for (int64_t g = g0; g < g1; g++) {
        const gm_block_q4_0 *rows = W + g * 16 * nbl;
        for (int64_t b = 0; b < nbl; b++) {
            gm_tile_q4_0x16 *t = &P[g * nbl + b];
            __m512i z[4];
            UNROLL for (int k = 0; k < 4; k++) {
                const gm_block_q4_0 *r = rows + 4 * k * nbl + b;
                __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)r[0].qs));
                v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)r[nbl].qs), 1);
                v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)r[2 * nbl].qs), 2);
                v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)r[3 * nbl].qs), 3);
                z[k] = _mm512_permutexvar_epi32(dword_t, v); /* lane q = dword q of the 4 rows */
            }
            const __m512i t0 = _mm512_shuffle_i32x4(z[0], z[1], 0x44), t1 = _mm512_shuffle_i32x4(z[0], z[1], 0xEE);
            const __m512i t2 = _mm512_shuffle_i32x4(z[2], z[3], 0x44), t3 = _mm512_shuffle_i32x4(z[2], z[3], 0xEE);
            _mm512_storeu_si512(t->qs[0], _mm512_shuffle_i32x4(t0, t2, 0x88));
            _mm512_storeu_si512(t->qs[1], _mm512_shuffle_i32x4(t0, t2, 0xDD));
            _mm512_storeu_si512(t->qs[2], _mm512_shuffle_i32x4(t1, t3, 0x88));
            _mm512_storeu_si512(t->qs[3], _mm512_shuffle_i32x4(t1, t3, 0xDD));
            UNROLL for (int j = 0; j < 16; j++) t->d[j] = rows[j * nbl + b].d;
        }
    }
}

#define GM_PACKED_NT 8 /* activation rows per pass of packed_gemm_group (accumulators in registers) */

void gm_vnni_matmul_q4_0x16(const void *Pv, int64_t nbl, const void *Xv, const gm_q8_aux *xa, int64_t nb,
                                int64_t T, float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    const gm_tile_q4_0x16 *P = Pv;
    const gm_block_q8_0 *X = Xv;
    const int64_t g0 = r0 / 16, g1 = (r1 + 15) / 16;
    if (T == 1) {
        int64_t g = g0;
        for (; g + 4 <= g1; g += 4) packed_gemv_groups(P, nbl, X, xa, nb, Y, g, 4, r1);
        for (; g < g1; g++) packed_gemv_groups(P, nbl, X, xa, nb, Y, g, 1, r1);
        return;
    }
    for (int64_t g = g0; g < g1; g++) { /* a group's tiles stay in L2 while every activation row passes */
        for (int64_t t = 0; t < T; t += GM_PACKED_NT) {
            const int nt = (int)GM_MIN(GM_PACKED_NT, T - t);
            if (nt == GM_PACKED_NT)
                packed_gemm_group(P, nbl, X + t * nb, xa + t * nb, nb, GM_PACKED_NT, Y + t * ldy, ldy, g, r1);
            else
                packed_gemm_group(P, nbl, X + t * nb, xa + t * nb, nb, nt, Y + t * ldy, ldy, g, r1);
        }
    }
}

/* ---- f32 block products (attention; contract in kernels.h) ---- */

/* The block loops (up to 8 outputs or vectors) must become straight code too. */
#define UNROLL8 _Pragma("GCC unroll 8")

/* Sum of the 16 lanes with fixed pairs: e = (q0 + q2) + (q1 + q3) over the
 * 128-bit quarters q, then (e0 + e2) + (e1 + e3). */
INLINE float hsum16(__m512 v) {
    const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* hsum16 of four vectors at once, the same pairs (so the same bits). */
INLINE __m128 hsum16x4(__m512 v0, __m512 v1, __m512 v2, __m512 v3) {
    /* [v0: q0+q2, q1+q3 | v1: q0+q2, q1+q3], then the same for v2, v3 */
    const __m512 t01 = _mm512_add_ps(_mm512_shuffle_f32x4(v0, v1, 0x44), _mm512_shuffle_f32x4(v0, v1, 0xEE));
    const __m512 t23 = _mm512_add_ps(_mm512_shuffle_f32x4(v2, v3, 0x44), _mm512_shuffle_f32x4(v2, v3, 0xEE));
    /* quarter r holds e of v_r */
    const __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(t01, t23, 0x88), _mm512_shuffle_f32x4(t01, t23, 0xDD));
    const __m512 w = _mm512_add_ps(u, _mm512_permute_ps(u, 0x4E));  /* e0 + e2, e1 + e3 */
    const __m512 x = _mm512_add_ps(w, _mm512_permute_ps(w, 0xB1));  /* (e0 + e2) + (e1 + e3) */
    const __m512i first = _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0); /* lane 0 of each quarter */
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(first, x));
}

/*
 * C[i][j] for mr rows of A x nr rows of B ((4, 4), (4, 1), (1, 8), (1, 4),
 * (1, 1)): one 16-lane accumulator per output over 16-column steps (FMA),
 * the last step masked, then hsum16's pairs. The 4 x 4 block: per step
 * 4 + 4 loads feed 16 FMAs (16 accumulators + 4 B + 1 A of the 32
 * registers); a lone row of A (decode) takes 8 keys, so 8 independent
 * chains cover the FMA latency.
 */
INLINE void nt_block(const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc, int64_t K,
                     int mr, int nr) {
    __m512 acc[4][8], b[8];
    UNROLL8 for (int i = 0; i < mr; i++) UNROLL8 for (int j = 0; j < nr; j++) acc[i][j] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        UNROLL8 for (int j = 0; j < nr; j++) b[j] = _mm512_loadu_ps(B + j * ldb + k);
        UNROLL8 for (int i = 0; i < mr; i++) {
            const __m512 a = _mm512_loadu_ps(A + i * lda + k);
            UNROLL8 for (int j = 0; j < nr; j++) acc[i][j] = _mm512_fmadd_ps(a, b[j], acc[i][j]);
        }
    }
    if (k < K) { /* the masked-off lanes add 0 * 0 */
        const __mmask16 m = mask16(K - k);
        UNROLL8 for (int j = 0; j < nr; j++) b[j] = _mm512_maskz_loadu_ps(m, B + j * ldb + k);
        UNROLL8 for (int i = 0; i < mr; i++) {
            const __m512 a = _mm512_maskz_loadu_ps(m, A + i * lda + k);
            UNROLL8 for (int j = 0; j < nr; j++) acc[i][j] = _mm512_fmadd_ps(a, b[j], acc[i][j]);
        }
    }
    UNROLL8 for (int i = 0; i < mr; i++) {
        UNROLL8 for (int j = 0; j + 4 <= nr; j += 4)
            _mm_storeu_ps(C + i * ldc + j, hsum16x4(acc[i][j], acc[i][j + 1], acc[i][j + 2], acc[i][j + 3]));
        if (nr == 1) C[i * ldc] = hsum16(acc[i][0]);
    }
}

/*
 * Blocks of 4 rows of A against key blocks of 4 (key blocks outer: the 4
 * rows of B stay in L1 while the rows of A pass), then the last M % 4 rows
 * one at a time against key blocks of 8.
 */
static void avx512_gemm_nt_f32(const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
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
 * C[i][0 .. w) += P[i][j] V[j][...] for mr rows over j < N, w <= 16 nv
 * columns as nv masked 16-lane vectors: one FMA per j in increasing j, so
 * each output's chain is the same however the call is blocked. Shapes:
 * 4 rows x 4 vectors (16 accumulators + 4 V + 1 broadcast of the 32
 * registers) and, for a lone row (decode), 1 x 8 (8 independent chains).
 */
INLINE void nn_strip(const float *P, int64_t ldp, const float *V, int64_t ldv, float *C, int64_t ldc, int64_t N,
                     int mr, int nv, int64_t w) {
    __mmask16 m[8];
    __m512 acc[4][8], v[8];
    UNROLL8 for (int x = 0; x < nv; x++) m[x] = mask16(GM_MAX(0, GM_MIN(16, w - 16 * x)));
    UNROLL8 for (int i = 0; i < mr; i++) UNROLL8 for (int x = 0; x < nv; x++)
        acc[i][x] = _mm512_maskz_loadu_ps(m[x], C + i * ldc + 16 * x);
    for (int64_t j = 0; j < N; j++) {
        UNROLL8 for (int x = 0; x < nv; x++) v[x] = _mm512_maskz_loadu_ps(m[x], V + j * ldv + 16 * x);
        UNROLL8 for (int i = 0; i < mr; i++) {
            const __m512 p = _mm512_set1_ps(P[i * ldp + j]);
            UNROLL8 for (int x = 0; x < nv; x++) acc[i][x] = _mm512_fmadd_ps(p, v[x], acc[i][x]);
        }
    }
    UNROLL8 for (int i = 0; i < mr; i++) UNROLL8 for (int x = 0; x < nv; x++)
        _mm512_mask_storeu_ps(C + i * ldc + 16 * x, m[x], acc[i][x]);
}

/* Keys per pass of nn_strip: a strip's V chunk (64 rows x 64 floats, 16 KiB)
 * stays in L1 while every row block of P passes over it. */
#define NN_KEYS 64

/* Rows [i0, i1) in blocks of mr, columns in strips of 16 nv, keys in NN_KEYS passes. */
INLINE void nn_rows(const float *P, int64_t ldp, const float *V, int64_t ldv, float *C, int64_t ldc, int64_t i0,
                    int64_t i1, int64_t N, int64_t D, int mr, int nv) {
    for (int64_t d = 0; d < D; d += 16 * nv) {
        const int64_t w = GM_MIN(16 * nv, D - d);
        for (int64_t j = 0; j < N; j += NN_KEYS) {
            const int64_t nj = GM_MIN(NN_KEYS, N - j);
            for (int64_t i = i0; i < i1; i += mr)
                nn_strip(P + i * ldp + j, ldp, V + j * ldv + d, ldv, C + i * ldc + d, ldc, nj, mr, nv, w);
        }
    }
}

static void avx512_gemm_nn_acc_f32(const float *P, int64_t ldp, const float *V, int64_t ldv, float *C,
                                   int64_t ldc, int64_t M, int64_t N, int64_t D) {
    const int64_t M4 = M / 4 * 4;
    nn_rows(P, ldp, V, ldv, C, ldc, 0, M4, N, D, 4, 4);
    nn_rows(P, ldp, V, ldv, C, ldc, M4, M, N, D, 1, 8);
}

#undef UNROLL8
#undef NN_KEYS

/* ---- activation conversion ---- */

/* roundf (halves away from zero) for |v| < 2^23: trunc, +-1 if |fraction| >= 1/2 (exact). */
INLINE __m512 round_away(__m512 v) {
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    const __m512 one = _mm512_or_ps(_mm512_and_ps(v, _mm512_set1_ps(-0.0f)), _mm512_set1_ps(1.0f));
    return _mm512_mask_add_ps(t, _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ), t, one);
}

/* Same bytes as gm_quantize_row_q8_0 (quant.c), non-finite input included. */
static void avx512_quantize_row_q8_0(const float *x, void *blocks, int64_t n) {
    gm_block_q8_0 *y = blocks;
    for (int64_t b = 0; b < n / GM_QK8_0; b++, x += GM_QK8_0) {
        const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        /* NaN lanes lose against the running max (the second operand), as in quant.c */
        const __m512 amax = _mm512_max_ps(_mm512_abs_ps(v1), _mm512_max_ps(_mm512_abs_ps(v0), _mm512_setzero_ps()));
        const float d = _mm512_reduce_max_ps(amax) / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        const __m512 vid = _mm512_set1_ps(id), lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
        for (int j = 0; j < 2; j++) {
            const __m512 s = _mm512_mul_ps(j ? v1 : v0, vid);
            __m512 r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(s, s, _CMP_ORD_Q), round_away(s)); /* NaN -> 0 */
            r = _mm512_min_ps(_mm512_max_ps(r, lo), hi);
            _mm_storeu_si128((__m128i *)(y[b].qs + 16 * j), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(r)));
        }
    }
}

/* Round to nearest even into the high half; NaN quieted (gm_f32_to_bf16). */
INLINE __m256i f32x16_to_bf16(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i h = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7FFF)), lsb), 16);
    const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    h = _mm512_mask_mov_epi32(h, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), quiet);
    return _mm512_cvtepi32_epi16(h);
}

static void avx512_f16_to_f32(const uint16_t *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))));
    if (i < n) {
        const __mmask16 m = mask16(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i)));
    }
}

static void avx512_f32_to_bf16(const float *x, uint16_t *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm256_storeu_si256((__m256i *)(y + i), f32x16_to_bf16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 m = mask16(n - i);
        _mm256_mask_storeu_epi16(y + i, m, f32x16_to_bf16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

/* ---- elementwise: same operations as kern_ref.c, so the same bits ---- */

/* Runs `body` (which reads v = x[i..i+16) and may use mask m) over n elements,
 * the last step masked. */
#define FOR_EACH_16(n, body)                                                          \
    do {                                                                              \
        int64_t i = 0;                                                                \
        __mmask16 m = 0xFFFF;                                                         \
        for (; i + 16 <= (n); i += 16) { body; }                                      \
        if (i < (n)) {                                                                \
            m = mask16((n) - i);                                                      \
            body;                                                                     \
        }                                                                             \
    } while (0)

static void avx512_axpy(float a, const float *x, float *y, int64_t n) {
    const __m512 va = _mm512_set1_ps(a);
    FOR_EACH_16(n, _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i),
                                                                _mm512_mul_ps(va, _mm512_maskz_loadu_ps(m, x + i)))));
}

static void avx512_scale(float a, float *x, int64_t n) {
    const __m512 va = _mm512_set1_ps(a);
    FOR_EACH_16(n, _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), va)));
}

static void avx512_mul(const float *x, const float *w, float *y, int64_t n) {
    FOR_EACH_16(n, _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i),
                                                                _mm512_maskz_loadu_ps(m, w + i))));
}

static float avx512_sumsq(const float *x, int64_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
        a0 = _mm512_fmadd_ps(v0, v0, a0);
        a1 = _mm512_fmadd_ps(v1, v1, a1);
    }
    for (; i < n; i += 16) {
        const __m512 v = _mm512_maskz_loadu_ps(mask16(GM_MIN(16, n - i)), x + i);
        a0 = _mm512_fmadd_ps(v, v, a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

static float avx512_max_f32(const float *x, int64_t n) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    __m512 mx = ninf;
    /* masked-off lanes load -inf; NaN in x loses against the running max */
    FOR_EACH_16(n, mx = _mm512_max_ps(_mm512_mask_loadu_ps(ninf, m, x + i), mx));
    return _mm512_reduce_max_ps(mx);
}

/* ---- exp / tanh: the algorithms and error analysis of kern_avx2.c's exp8 / tanh8 ---- */

INLINE __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n); /* p * 2^n with one rounding, like the AVX2 two-step scaling */
}

INLINE __m512 tanh16(__m512 x) {
    const __m512 a = _mm512_abs_ps(x);
    const __m512 x2 = _mm512_mul_ps(a, a);
    __m512 p = _mm512_set1_ps(5.90027440945585e-4f);
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-1.45583438705132e-3f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(3.59212803657248e-3f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-8.86323552990220e-3f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(2.18694885361552e-2f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-5.39682539682540e-2f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(1.33333333333333e-1f));
    p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-3.33333333333333e-1f));
    const __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(a, x2), p, a);
    const __m512 a2 = _mm512_min_ps(_mm512_set1_ps(20.0f), _mm512_add_ps(a, a));
    const __m512 q = _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(exp16(a2), _mm512_set1_ps(1.0f)));
    const __m512 large = _mm512_sub_ps(_mm512_set1_ps(1.0f), q);
    const __m512 t = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(0.55f), _CMP_LT_OQ), large, small);
    return _mm512_or_ps(t, _mm512_and_ps(x, _mm512_set1_ps(-0.0f)));
}

INLINE __m512 gelu16(__m512 v) {
    const __m512 cube = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), v), v), v);
    const __m512 z = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f), _mm512_add_ps(v, cube));
    const __m512 t = tanh16(z);
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(_mm512_set1_ps(1.0f), t));
}

static void avx512_tanh_f32(float *x, int64_t n) {
    FOR_EACH_16(n, _mm512_mask_storeu_ps(x + i, m, tanh16(_mm512_maskz_loadu_ps(m, x + i))));
}

static void avx512_gelu_tanh(float *x, int64_t n) {
    FOR_EACH_16(n, _mm512_mask_storeu_ps(x + i, m, gelu16(_mm512_maskz_loadu_ps(m, x + i))));
}

static void avx512_softcap(float *x, int64_t n, float cap) {
    const __m512 c = _mm512_set1_ps(cap);
    FOR_EACH_16(n, _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(c, tanh16(_mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), c)))));
}

static float avx512_exp_sum(float *x, int64_t n, float mx) {
    const __m512 vm = _mm512_set1_ps(mx);
    __m512 acc = _mm512_setzero_ps();
    FOR_EACH_16(n, {
        const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vm));
        _mm512_mask_storeu_ps(x + i, m, e);
        acc = _mm512_mask_add_ps(acc, m, acc, e);
    });
    return _mm512_reduce_add_ps(acc);
}

#undef FOR_EACH_16

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

/* The three tables: everything shared but the int8 and bf16 dot primitives. */
#define AVX512_COMMON                                   \
    .dot_f32 = avx512_dot_f32,                          \
    .gemm_nt_f32 = avx512_gemm_nt_f32,                  \
    .gemm_nn_acc_f32 = avx512_gemm_nn_acc_f32,          \
    .dot_bf16_f32 = avx512_dot_bf16_f32,                \
    .dot_f16_f32 = avx512_dot_f16_f32,                  \
    .gemv_f32 = avx512_gemv_f32,                        \
    .gemv_bf16 = avx512_gemv_bf16,                      \
    .gemv_f16 = avx512_gemv_f16,                        \
    .quantize_row_q8_0 = avx512_quantize_row_q8_0,      \
    .f32_to_bf16 = avx512_f32_to_bf16,                  \
    .f16_to_f32 = avx512_f16_to_f32,                    \
    .axpy = avx512_axpy,                                \
    .scale = avx512_scale,                              \
    .mul = avx512_mul,                                  \
    .sumsq = avx512_sumsq,                              \
    .max_f32 = avx512_max_f32,                          \
    .exp_sum = avx512_exp_sum,                          \
    .tanh_f32 = avx512_tanh_f32,                        \
    .gelu_tanh = avx512_gelu_tanh,                      \
    .softcap = avx512_softcap

/* The int8 entries of every table with VNNI (vnni, bf16, amx); each table adds its matmul_q4_0x16. */
#define VNNI_INT8                                       \
    .dot_q8_0_q8_0 = vnni_dot_q8_0_q8_0,                \
    .dot_q4_0_q8_0 = vnni_dot_q4_0_q8_0,                \
    .gemv_q8_0 = vnni_gemv_q8_0,                        \
    .gemv_q4_0 = vnni_gemv_q4_0,                        \
    .pack_q4_0x16 = avx512_pack_q4_0x16

const gm_kernels gm_kernels_avx512 = {
    .name = "avx512",
    AVX512_COMMON,
    .dot_bf16_bf16 = avx512_dot_bf16_bf16,
    .gemv_bf16_bf16 = avx512_gemv_bf16_bf16,
    .dot_q8_0_q8_0 = avx512_dot_q8_0_q8_0,
    .dot_q4_0_q8_0 = avx512_dot_q4_0_q8_0,
    .gemv_q8_0 = avx512_gemv_q8_0,
    .gemv_q4_0 = avx512_gemv_q4_0,
};

const gm_kernels gm_kernels_avx512_vnni = {
    .name = "avx512_vnni",
    AVX512_COMMON,
    .dot_bf16_bf16 = avx512_dot_bf16_bf16,
    .gemv_bf16_bf16 = avx512_gemv_bf16_bf16,
    VNNI_INT8,
    .matmul_q4_0x16 = gm_vnni_matmul_q4_0x16,
};

const gm_kernels gm_kernels_avx512_bf16 = {
    .name = "avx512_bf16",
    AVX512_COMMON,
    .dot_bf16_bf16 = bf16_dot_bf16_bf16,
    .gemv_bf16_bf16 = bf16_gemv_bf16_bf16,
    VNNI_INT8,
    .matmul_q4_0x16 = gm_vnni_matmul_q4_0x16,
};

#if defined(GM_KERN_AMX)
const gm_kernels gm_kernels_avx512_amx = {
    .name = "avx512_amx",
    AVX512_COMMON,
    .dot_bf16_bf16 = bf16_dot_bf16_bf16,
    .gemv_bf16_bf16 = bf16_gemv_bf16_bf16,
    VNNI_INT8,
    .matmul_q4_0x16 = gm_amx_matmul_q4_0x16, /* kern_amx.c */
};
#endif

#undef AVX512_COMMON
#undef VNNI_INT8

#else
typedef int gm_kern_avx512_unused; /* not an x86 build: the file is empty */
#endif
