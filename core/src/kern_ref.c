/*
 * kern_ref.c - the scalar reference of every kernel in kernels.h.
 *
 * Plain C11, one loop per kernel, written to be read: this file is the
 * specification the SIMD variants are tested against, and the table used on
 * CPUs without a SIMD variant (or with GEMMA3N_KERNELS=ref).
 *
 * Sums run left to right in f32, as the simplest loop does. The quantized
 * kernels are quant.c's (gm_quantize_row_q8_0, gm_vec_dot_*), so there is one
 * definition of the Q8_0 / Q4_0 math in the project.
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

/* ---- dot products ---- */

static float ref_dot_f32(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static float ref_dot_bf16_f32(const uint16_t *w, const float *x, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += gm_bf16_to_f32(w[i]) * x[i];
    return s;
}

static float ref_dot_f16_f32(const uint16_t *w, const float *x, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += gm_f16_to_f32(w[i]) * x[i];
    return s;
}

static float ref_dot_bf16_bf16(const uint16_t *w, const uint16_t *x, int64_t n) {
    float s = 0.0f; /* each product of two bf16 is exact in f32 (8 x 8 significant bits) */
    for (int64_t i = 0; i < n; i++) s += gm_bf16_to_f32(w[i]) * gm_bf16_to_f32(x[i]);
    return s;
}

static float ref_dot_q8_0_q8_0(const void *w, const void *x, int64_t n) {
    return gm_vec_dot_q8_0_q8_0(w, x, n);
}

static float ref_dot_q4_0_q8_0(const void *w, const void *x, int64_t n) {
    return gm_vec_dot_q4_0_q8_0(w, x, n);
}

/* ---- GEMV row blocks: one dot per row ---- */

static void ref_gemv_f32(const float *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                         int64_t r1) {
    for (int64_t r = r0; r < r1; r++) y[r] = ref_dot_f32(W + r * ld, x, n);
}

static void ref_gemv_bf16(const uint16_t *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                          int64_t r1) {
    for (int64_t r = r0; r < r1; r++) y[r] = ref_dot_bf16_f32(W + r * ld, x, n);
}

static void ref_gemv_f16(const uint16_t *W, int64_t ld, const float *x, int64_t n, float *y, int64_t r0,
                         int64_t r1) {
    for (int64_t r = r0; r < r1; r++) y[r] = ref_dot_f16_f32(W + r * ld, x, n);
}

static void ref_gemv_bf16_bf16(const uint16_t *W, int64_t ld, const uint16_t *x, int64_t n, float *y,
                               int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) y[r] = ref_dot_bf16_bf16(W + r * ld, x, n);
}

static void ref_gemv_q8_0(const void *W, int64_t ld, const void *x, int64_t n, float *y, int64_t r0,
                          int64_t r1) {
    const gm_block_q8_0 *w = W;
    for (int64_t r = r0; r < r1; r++) y[r] = gm_vec_dot_q8_0_q8_0(w + r * (ld / GM_QK8_0), x, n);
}

static void ref_gemv_q4_0(const void *W, int64_t ld, const void *x, int64_t n, float *y, int64_t r0,
                          int64_t r1) {
    const gm_block_q4_0 *w = W;
    for (int64_t r = r0; r < r1; r++) y[r] = gm_vec_dot_q4_0_q8_0(w + r * (ld / GM_QK4_0), x, n);
}

/* ---- f32 block products: the per-token attention loop, entry by entry ---- */

static void ref_axpy(float a, const float *x, float *y, int64_t n);

static void ref_gemm_nt_f32(const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc,
                            int64_t M, int64_t N, int64_t K) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) C[i * ldc + j] = ref_dot_f32(A + i * lda, B + j * ldb, K);
}

static void ref_gemm_nn_acc_f32(const float *P, int64_t ldp, const float *V, int64_t ldv, float *C, int64_t ldc,
                                int64_t M, int64_t N, int64_t D) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) ref_axpy(P[i * ldp + j], V + j * ldv, C + i * ldc, D);
}

/* ---- activation conversion ---- */

static void ref_quantize_row_q8_0(const float *x, void *blocks, int64_t n) {
    gm_quantize_row_q8_0(x, blocks, n);
}

static void ref_f32_to_bf16(const float *x, uint16_t *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = gm_f32_to_bf16(x[i]);
}

static void ref_f16_to_f32(const uint16_t *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = gm_f16_to_f32(x[i]);
}

/* ---- elementwise ---- */

static void ref_axpy(float a, const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i]; /* product rounded, then the sum (no FMA) */
}

static void ref_scale(float a, float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] *= a;
}

static void ref_mul(const float *x, const float *w, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * w[i];
}

static float ref_sumsq(const float *x, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += x[i] * x[i];
    return s;
}

static float ref_max_f32(const float *x, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++)
        if (x[i] > m) m = x[i];
    return m;
}

static float ref_exp_sum(float *x, int64_t n, float m) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - m);
        s += x[i];
    }
    return s;
}

static void ref_tanh_f32(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
}

/* gelu_pytorch_tanh (transformers GELUTanh / PytorchGELUTanh): the reference operation order. */
static void ref_gelu_tanh(float *x, int64_t n) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
    }
}

static void ref_softcap(float *x, int64_t n, float cap) {
    for (int64_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}

const gm_kernels gm_kernels_ref = {
    .name = "ref",
    .dot_f32 = ref_dot_f32,
    .dot_bf16_f32 = ref_dot_bf16_f32,
    .dot_f16_f32 = ref_dot_f16_f32,
    .dot_bf16_bf16 = ref_dot_bf16_bf16,
    .dot_q8_0_q8_0 = ref_dot_q8_0_q8_0,
    .dot_q4_0_q8_0 = ref_dot_q4_0_q8_0,
    .gemv_f32 = ref_gemv_f32,
    .gemv_bf16 = ref_gemv_bf16,
    .gemv_f16 = ref_gemv_f16,
    .gemv_bf16_bf16 = ref_gemv_bf16_bf16,
    .gemv_q8_0 = ref_gemv_q8_0,
    .gemv_q4_0 = ref_gemv_q4_0,
    .matmul_q4_0x16 = gm_matmul_q4_0x16_ref,
    .pack_q4_0x16 = gm_pack_q4_0x16,
    .gemm_nt_f32 = ref_gemm_nt_f32,
    .gemm_nn_acc_f32 = ref_gemm_nn_acc_f32,
    .quantize_row_q8_0 = ref_quantize_row_q8_0,
    .f32_to_bf16 = ref_f32_to_bf16,
    .f16_to_f32 = ref_f16_to_f32,
    .axpy = ref_axpy,
    .scale = ref_scale,
    .mul = ref_mul,
    .sumsq = ref_sumsq,
    .max_f32 = ref_max_f32,
    .exp_sum = ref_exp_sum,
    .tanh_f32 = ref_tanh_f32,
    .gelu_tanh = ref_gelu_tanh,
    .softcap = ref_softcap,
};
