/* ops.c - scalar reference implementations of the decoder's ops (see ops.h). */
#include "ops.h"

#include "pack.h"
#include "quant.h"

#include <math.h>


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
    if (W->layout == GM_LAYOUT_Q4_0X16) {
        gm_q4_0x16_row(W->data, W->cols / GM_QK4_0, r, col0 / GM_QK4_0, n / GM_QK4_0, out);
        return;
    }
    gm_to_f32(W->type, element_at(W, r, col0), out, (size_t)n);
}
