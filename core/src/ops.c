/* ops.c - scalar reference implementations of the decoder's ops (see ops.h). */
#include "ops.h"

#include "quant.h"

#include <math.h>

#ifdef GM_USE_BLAS
#include <cblas.h>
#endif

void gm_rmsnorm(const float *x, const float *w, int n, float eps, float *out) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float inv = (float)(1.0 / sqrt(ss / n + eps));
    if (w)
        for (int i = 0; i < n; i++) out[i] = x[i] * inv * w[i];
    else
        for (int i = 0; i < n; i++) out[i] = x[i] * inv;
}

float gm_rms(const float *x, int n) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    return (float)sqrt(ss / n);
}

void gm_gelu_tanh(float *x, int n) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    for (int i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
    }
}

void gm_rope(float *x, int hd, int64_t pos, float theta) {
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        /* inv_freq = 1 / theta^(2i/hd) and the angle, both rounded to f32 as upstream */
        float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
        float angle = inv_freq * (float)pos;
        float c = cosf(angle), s = sinf(angle);
        float a = x[i], b = x[i + half];
        x[i] = a * c - b * s;
        x[i + half] = b * c + a * s;
    }
}

void gm_gaussian_topk(float *x, int n, float std_multiplier) {
    double sum = 0, ss = 0;
    for (int i = 0; i < n; i++) sum += x[i];
    double mean = sum / n;
    for (int i = 0; i < n; i++) ss += (x[i] - mean) * (x[i] - mean);
    float cutoff = (float)mean + (float)sqrt(ss / n) * std_multiplier;
    for (int i = 0; i < n; i++) x[i] = x[i] > cutoff ? x[i] - cutoff : 0.0f;
}

void gm_softmax(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void gm_softcap(float *x, int64_t n, float cap) {
    for (int64_t i = 0; i < n; i++) x[i] = cap * tanhf(x[i] / cap);
}

float gm_dot_f32(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[i + k] * b[i + k];
    float s = 0;
    for (; i < n; i++) s += a[i] * b[i];
    return s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* Address of element (r, col) of W; col is a multiple of the block size for block types. */
static const uint8_t *element_at(const gm_matrix *W, int64_t r, int64_t col) {
    return (const uint8_t *)W->data + gm_dtype_row_bytes(W->type, r * W->row_stride + col);
}

void gm_matrix_row(const gm_matrix *W, int64_t r, int64_t col0, int64_t n, float *out) {
    gm_to_f32(W->type, element_at(W, r, col0), out, (size_t)n);
}

/* Rows widened per GEMM block: big enough for BLAS efficiency, small enough for cache. */
#define GM_GEMM_BLOCK_ROWS 64

size_t gm_matmul_scratch_floats(int64_t cols) { return (size_t)GM_GEMM_BLOCK_ROWS * (size_t)cols; }

/*
 * Quantized weights: the activation row is quantized to Q8_0 once (as
 * ggml's vec_dot_type), then each weight row is an integer block dot
 * product with f32 accumulation of the block scales.
 */
static void matvec_quantized(const gm_matrix *W, int64_t out, int64_t in, const float *x, float *y, void *xq) {
    gm_quantize_row_q8_0(x, xq, in);
    for (int64_t r = 0; r < out; r++) {
        const void *w = element_at(W, r, 0);
        y[r] = W->type == GM_DTYPE_Q8_0 ? gm_vec_dot_q8_0_q8_0(w, xq, in) : gm_vec_dot_q4_0_q8_0(w, xq, in);
    }
}

static void matvec_rows(const gm_matrix *W, int64_t out, int64_t in, const float *x, float *y, float *row) {
    if (W->type == GM_DTYPE_Q8_0 || W->type == GM_DTYPE_Q4_0) {
        matvec_quantized(W, out, in, x, y, row);
        return;
    }
    if (W->type == GM_DTYPE_F32) {
        const float *w = W->data;
        for (int64_t r = 0; r < out; r++) y[r] = gm_dot_f32(w + r * W->row_stride, x, in);
        return;
    }
    for (int64_t r = 0; r < out; r++) {
        gm_matrix_row(W, r, 0, in, row);
        y[r] = gm_dot_f32(row, x, in);
    }
}

void gm_matmul(const gm_matrix *W, int64_t out, int64_t in, const float *X, int64_t T, float *Y,
               float *scratch) {
#ifdef GM_USE_BLAS
    if (T >= GM_GEMM_MIN_BATCH) {
        if (W->type == GM_DTYPE_F32) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)out, (int)in, 1.0f, X, (int)in,
                        W->data, (int)W->row_stride, 0.0f, Y, (int)out);
            return;
        }
        for (int64_t r0 = 0; r0 < out; r0 += GM_GEMM_BLOCK_ROWS) {
            int64_t nr = GM_MIN(GM_GEMM_BLOCK_ROWS, out - r0);
            for (int64_t r = 0; r < nr; r++) gm_matrix_row(W, r0 + r, 0, in, scratch + r * in);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)nr, (int)in, 1.0f, X, (int)in,
                        scratch, (int)in, 0.0f, Y + r0, (int)out);
        }
        return;
    }
#endif
    if (W->type == GM_DTYPE_F32 || T == 1 || gm_dtype_block(W->type) > 1) {
        for (int64_t t = 0; t < T; t++) matvec_rows(W, out, in, X + t * in, Y + t * out, scratch);
        return;
    }
    /* widen each row once and reuse it for every token of the batch */
    for (int64_t r = 0; r < out; r++) {
        gm_matrix_row(W, r, 0, in, scratch);
        for (int64_t t = 0; t < T; t++) Y[t * out + r] = gm_dot_f32(scratch, X + t * in, in);
    }
}
