/* quant.c - ggml type table, Q8_0 / Q4_0 reference kernels. See quant.h. */
#include "quant.h"

#include <math.h>

/* ---- plain types: F32 / F16 / BF16 rows ---- */

static void f32_to_float(const void *src, float *dst, int64_t n) {
    if (n > 0) memcpy(dst, src, (size_t)n * sizeof(float));
}
static void f16_to_float(const void *src, float *dst, int64_t n) {
    if (n > 0) gm_to_f32(GM_DTYPE_F16, src, dst, (size_t)n);
}
static void bf16_to_float(const void *src, float *dst, int64_t n) {
    if (n > 0) gm_to_f32(GM_DTYPE_BF16, src, dst, (size_t)n);
}

static void f32_from_float(const float *src, void *dst, int64_t n) {
    if (n > 0) memcpy(dst, src, (size_t)n * sizeof(float));
}
static void f16_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = gm_f32_to_f16(src[i]);
        memcpy(d + 2 * i, &h, 2);
    }
}
static void bf16_from_float(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = gm_f32_to_bf16(src[i]);
        memcpy(d + 2 * i, &h, 2);
    }
}

/* Adapters from the block-typed kernels to the traits' void* signatures. */
static void q8_0_to_float(const void *src, float *dst, int64_t n) { gm_dequantize_row_q8_0(src, dst, n); }
static void q4_0_to_float(const void *src, float *dst, int64_t n) { gm_dequantize_row_q4_0(src, dst, n); }
static void q8_0_from_float(const float *src, void *dst, int64_t n) { gm_quantize_row_q8_0(src, dst, n); }
static void q4_0_from_float(const float *src, void *dst, int64_t n) { gm_quantize_row_q4_0(src, dst, n); }

/* ---- the type table ---- */

#define PLAIN(nm, size) {nm, 1, size, false, NULL, NULL}
#define BLOCK(nm, bs, size) {nm, bs, size, false, NULL, NULL}

/* Indexed by ggml type id; entries with name == NULL are ids ggml does not
 * define. Block sizes/bytes follow ggml-common.h. */
static const gm_ggml_traits ggml_traits[GM_GGML_TYPE_COUNT] = {
    [GM_GGML_F32] = {"F32", 1, 4, true, f32_to_float, f32_from_float},
    [GM_GGML_F16] = {"F16", 1, 2, true, f16_to_float, f16_from_float},
    [GM_GGML_Q4_0] = {"Q4_0", GM_QK4_0, sizeof(gm_block_q4_0), true, q4_0_to_float, q4_0_from_float},
    [GM_GGML_Q4_1] = BLOCK("Q4_1", 32, 20),
    [GM_GGML_Q5_0] = BLOCK("Q5_0", 32, 22),
    [GM_GGML_Q5_1] = BLOCK("Q5_1", 32, 24),
    [GM_GGML_Q8_0] = {"Q8_0", GM_QK8_0, sizeof(gm_block_q8_0), true, q8_0_to_float, q8_0_from_float},
    [GM_GGML_Q8_1] = BLOCK("Q8_1", 32, 36),
    [GM_GGML_Q2_K] = BLOCK("Q2_K", 256, 84),
    [GM_GGML_Q3_K] = BLOCK("Q3_K", 256, 110),
    [GM_GGML_Q4_K] = BLOCK("Q4_K", 256, 144),
    [GM_GGML_Q5_K] = BLOCK("Q5_K", 256, 176),
    [GM_GGML_Q6_K] = BLOCK("Q6_K", 256, 210),
    [GM_GGML_Q8_K] = BLOCK("Q8_K", 256, 292),
    [GM_GGML_IQ2_XXS] = BLOCK("IQ2_XXS", 256, 66),
    [GM_GGML_IQ2_XS] = BLOCK("IQ2_XS", 256, 74),
    [GM_GGML_IQ3_XXS] = BLOCK("IQ3_XXS", 256, 98),
    [GM_GGML_IQ1_S] = BLOCK("IQ1_S", 256, 50),
    [GM_GGML_IQ4_NL] = BLOCK("IQ4_NL", 32, 18),
    [GM_GGML_IQ3_S] = BLOCK("IQ3_S", 256, 110),
    [GM_GGML_IQ2_S] = BLOCK("IQ2_S", 256, 82),
    [GM_GGML_IQ4_XS] = BLOCK("IQ4_XS", 256, 136),
    [GM_GGML_I8] = PLAIN("I8", 1),
    [GM_GGML_I16] = PLAIN("I16", 2),
    [GM_GGML_I32] = PLAIN("I32", 4),
    [GM_GGML_I64] = PLAIN("I64", 8),
    [GM_GGML_F64] = PLAIN("F64", 8),
    [GM_GGML_IQ1_M] = BLOCK("IQ1_M", 256, 56),
    [GM_GGML_BF16] = {"BF16", 1, 2, true, bf16_to_float, bf16_from_float},
    [GM_GGML_TQ1_0] = BLOCK("TQ1_0", 256, 54),
    [GM_GGML_TQ2_0] = BLOCK("TQ2_0", 256, 66),
    [GM_GGML_MXFP4] = BLOCK("MXFP4", 32, 17),
    [GM_GGML_NVFP4] = BLOCK("NVFP4", 64, 36),
    [GM_GGML_Q1_0] = BLOCK("Q1_0", 128, 18),
    [GM_GGML_Q2_0] = BLOCK("Q2_0", 64, 18),
};

const gm_ggml_traits *gm_ggml_type_traits(int32_t type) {
    if (type < 0 || type >= GM_GGML_TYPE_COUNT || !ggml_traits[type].name) return NULL;
    return &ggml_traits[type];
}

const char *gm_ggml_type_name(int32_t type) {
    const gm_ggml_traits *t = gm_ggml_type_traits(type);
    return t ? t->name : NULL;
}

bool gm_ggml_nbytes(int32_t type, int64_t n_elems, size_t *out) {
    const gm_ggml_traits *t = gm_ggml_type_traits(type);
    if (!t || n_elems < 0 || n_elems % t->block_size != 0) return false;
    uint64_t blocks = (uint64_t)(n_elems / t->block_size);
    if (blocks > SIZE_MAX / (uint64_t)t->type_size) return false;
    *out = (size_t)blocks * (size_t)t->type_size;
    return true;
}

/* ---- Q8_0 ---- */

/* roundf(v) (halves away from zero) as int8, for |v| <= 127 as the math
 * guarantees; anything else (NaN from non-finite input) is clamped/zeroed
 * instead of being an undefined conversion. */
static int8_t q8_round(float v) {
    if (!(v == v)) return 0;
    float r = roundf(v);
    if (r > 127.0f) r = 127.0f;
    if (r < -127.0f) r = -127.0f;
    return (int8_t)r;
}

void gm_quantize_row_q8_0(const float *x, gm_block_q8_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / GM_QK8_0; b++, x += GM_QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < GM_QK8_0; j++) {
            float a = fabsf(x[j]);
            if (a > amax) amax = a;
        }
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = gm_f32_to_f16(d);
        for (int j = 0; j < GM_QK8_0; j++) y[b].qs[j] = q8_round(x[j] * id);
    }
}

void gm_dequantize_row_q8_0(const gm_block_q8_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / GM_QK8_0; b++, y += GM_QK8_0) {
        const float d = gm_f16_to_f32(x[b].d);
        for (int j = 0; j < GM_QK8_0; j++) y[j] = (float)x[b].qs[j] * d;
    }
}

/* ---- Q4_0 ---- */

/* ggml's  MIN(15, (int8_t)(v * id + 8.5f))  for the in-range values the math
 * produces (0.5 .. 16.5), and 0 for NaN. The product and the sum are kept in
 * separate statements so no compiler fuses them into an FMA (which would
 * change the rounding and break byte equality with ggml's files). */
static uint8_t q4_nibble(float v, float id) {
    float s = v * id;
    float t = s + 8.5f;
    if (t >= 15.0f) return 15;
    if (t > 0.0f) return (uint8_t)(int)t; /* truncation, as ggml's (int8_t) cast */
    return 0;
}

void gm_quantize_row_q4_0(const float *x, gm_block_q4_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / GM_QK4_0; b++, x += GM_QK4_0) {
        float amax = 0.0f, max = 0.0f; /* max: the signed value of largest magnitude */
        for (int j = 0; j < GM_QK4_0; j++) {
            if (amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = gm_f32_to_f16(d);
        for (int j = 0; j < GM_QK4_0 / 2; j++) {
            uint8_t lo = q4_nibble(x[j], id), hi = q4_nibble(x[j + GM_QK4_0 / 2], id);
            y[b].qs[j] = (uint8_t)(lo | (hi << 4));
        }
    }
}

void gm_dequantize_row_q4_0(const gm_block_q4_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / GM_QK4_0; b++, y += GM_QK4_0) {
        const float d = gm_f16_to_f32(x[b].d);
        for (int j = 0; j < GM_QK4_0 / 2; j++) {
            y[j] = (float)((x[b].qs[j] & 0x0F) - 8) * d;
            y[j + GM_QK4_0 / 2] = (float)((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

/* ---- dot products ---- */

float gm_vec_dot_q8_0_q8_0(const gm_block_q8_0 *w, const gm_block_q8_0 *x, int64_t n) {
    float sum = 0.0f;
    for (int64_t b = 0; b < n / GM_QK8_0; b++) {
        int32_t sumi = 0; /* |sumi| <= 32 * 127 * 127: no overflow */
        for (int j = 0; j < GM_QK8_0; j++) sumi += (int32_t)w[b].qs[j] * (int32_t)x[b].qs[j];
        sum += (float)sumi * (gm_f16_to_f32(w[b].d) * gm_f16_to_f32(x[b].d));
    }
    return sum;
}

float gm_vec_dot_q4_0_q8_0(const gm_block_q4_0 *w, const gm_block_q8_0 *x, int64_t n) {
    float sum = 0.0f;
    for (int64_t b = 0; b < n / GM_QK4_0; b++) {
        int32_t sumi = 0;
        for (int j = 0; j < GM_QK4_0 / 2; j++) {
            sumi += ((w[b].qs[j] & 0x0F) - 8) * (int32_t)x[b].qs[j];
            sumi += ((w[b].qs[j] >> 4) - 8) * (int32_t)x[b].qs[j + GM_QK4_0 / 2];
        }
        sum += (float)sumi * (gm_f16_to_f32(w[b].d) * gm_f16_to_f32(x[b].d));
    }
    return sum;
}
