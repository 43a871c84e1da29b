/* ops.c - the decoder's composite ops (see ops.h). */
#include "ops.h"

#include "pack.h"
#include "quant.h"

#include <math.h>

/* inv = 1 / sqrt(mean square + eps); the sum of squares is the table's (SIMD) reduction. */
void gm_rmsnorm(const gm_kernels *k, const float *x, const float *w, int n, float eps, float *out) {
    float inv = (float)(1.0 / sqrt((double)k->sumsq(x, n) / n + eps));
    if (out != x) memcpy(out, x, sizeof(float) * (size_t)n);
    k->scale(inv, out, n);      /* x * inv, then * w: the order of the scalar formula */
    if (w) k->mul(out, w, out, n);
}

float gm_rms(const gm_kernels *k, const float *x, int n) { return (float)sqrt((double)k->sumsq(x, n) / n); }

void gm_softmax(const gm_kernels *k, float *x, int n) {
    float sum = k->exp_sum(x, n, k->max_f32(x, n));
    k->scale(1.0f / sum, x, n);
}

void gm_rope_inv_freq(float theta, int hd, float *inv_freq) {
    for (int i = 0; i < hd / 2; i++) inv_freq[i] = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
}

void gm_rope_angles(const float *inv_freq, int hd, int64_t pos, float *cs, float *sn) {
    for (int i = 0; i < hd / 2; i++) {
        float angle = inv_freq[i] * (float)pos; /* rounded to f32 as upstream */
        cs[i] = cosf(angle);
        sn[i] = sinf(angle);
    }
}

void gm_rope(float *x, int hd, const float *cs, const float *sn) {
    int half = hd / 2;
    for (int i = 0; i < half; i++) {
        float a = x[i], b = x[i + half];
        x[i] = a * cs[i] - b * sn[i];
        x[i + half] = b * cs[i] + a * sn[i];
    }
}

/* Mean and std in double: a decode-time cost of two passes over F, negligible next to gate_proj. */
void gm_gaussian_topk(float *x, int n, float std_multiplier) {
    double sum = 0, ss = 0;
    for (int i = 0; i < n; i++) sum += x[i];
    double mean = sum / n;
    for (int i = 0; i < n; i++) ss += (x[i] - mean) * (x[i] - mean);
    float cutoff = (float)mean + (float)sqrt(ss / n) * std_multiplier;
    for (int i = 0; i < n; i++) x[i] = x[i] > cutoff ? x[i] - cutoff : 0.0f;
}

/* Address of element (r, col) of a row-major W; col is a multiple of the block size for block types. */
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

#define GM_FAULT_AROUND_BYTES ((uintptr_t)64 << 10) /* Linux's default fault_around_bytes */

void gm_matrix_release_row(const gm_matrix *W, int64_t r) {
    if (!W->file_backed || W->layout != GM_LAYOUT_ROWS) return;
    const uintptr_t start = (uintptr_t)element_at(W, r, 0), end = (uintptr_t)element_at(W, r, W->cols);
    const uintptr_t lo = start & ~(GM_FAULT_AROUND_BYTES - 1), hi = (end + GM_FAULT_AROUND_BYTES - 1) & ~(GM_FAULT_AROUND_BYTES - 1);
    const uintptr_t first = (uintptr_t)W->data, last = (uintptr_t)element_at(W, W->rows, 0); /* stay inside the table */
    const uintptr_t a = lo < first ? first : lo, b = hi > last ? last : hi;
    if (b > a) gm_release_pages((const void *)a, b - a);
}
