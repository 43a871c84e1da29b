/* dtype.c - element types and scalar conversions to/from f32. */
#include "gm_internal.h"

#include "quant.h"

#include <math.h>

const char *gm_dtype_name(gm_dtype t) {
    switch (t) {
    case GM_DTYPE_F32: return "F32";
    case GM_DTYPE_F16: return "F16";
    case GM_DTYPE_BF16: return "BF16";
    case GM_DTYPE_Q8_0: return "Q8_0";
    case GM_DTYPE_Q4_0: return "Q4_0";
    default: return "?";
    }
}

size_t gm_dtype_size(gm_dtype t) {
    return t == GM_DTYPE_F32 ? 4 : (t == GM_DTYPE_F16 || t == GM_DTYPE_BF16) ? 2 : 0;
}

int64_t gm_dtype_block(gm_dtype t) { return t == GM_DTYPE_Q8_0 || t == GM_DTYPE_Q4_0 ? 32 : 1; }

size_t gm_dtype_row_bytes(gm_dtype t, int64_t n) {
    switch (t) {
    case GM_DTYPE_Q8_0: return (size_t)(n / 32) * sizeof(gm_block_q8_0);
    case GM_DTYPE_Q4_0: return (size_t)(n / 32) * sizeof(gm_block_q4_0);
    default: return (size_t)n * gm_dtype_size(t);
    }
}

/* IEEE binary16 -> binary32, exact for every input (subnormals, inf, NaN). */
float gm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else { /* subnormal: value = man * 2^-24 */
            float f = (float)man * 5.9604644775390625e-8f;
            return sign ? -f : f;
        }
    } else if (exp == 31) bits = sign | 0x7F800000u | (man << 13);
    else bits = sign | ((exp + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* binary32 -> binary16, round to nearest even, overflow to inf. */
uint16_t gm_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7FFFFFFFu;
    if (ax >= 0x7F800000u) return (uint16_t)(sign | 0x7C00 | (ax > 0x7F800000u ? 0x200 : 0));
    if (ax >= 0x477FF000u) return (uint16_t)(sign | 0x7C00); /* rounds to >= 65520 */
    if (ax < 0x38800000u) { /* subnormal or zero in f16 */
        float af;
        memcpy(&af, &ax, sizeof af);
        uint32_t m = (uint32_t)lrintf(af * 16777216.0f); /* units of 2^-24, ties to even */
        return (uint16_t)(sign | m);
    }
    uint32_t e = (ax >> 23) - 112, m = ax & 0x7FFFFF;
    uint32_t h = (e << 10) | (m >> 13);
    uint32_t rest = m & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

uint16_t gm_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7FFF + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

void gm_to_f32(gm_dtype t, const void *src, float *dst, size_t n) {
    const uint8_t *s = src;
    switch (t) {
    case GM_DTYPE_F32: memcpy(dst, s, n * 4); break;
    case GM_DTYPE_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = gm_bf16_to_f32(h);
        }
        break;
    case GM_DTYPE_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, s + 2 * i, 2);
            dst[i] = gm_f16_to_f32(h);
        }
        break;
    case GM_DTYPE_Q8_0: gm_dequantize_row_q8_0(src, dst, (int64_t)n); break;
    case GM_DTYPE_Q4_0: gm_dequantize_row_q4_0(src, dst, (int64_t)n); break;
    default: break;
    }
}
