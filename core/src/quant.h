/*
 * quant.h - ggml tensor types: the type-id table, the Q8_0 / Q4_0 block
 * formats, and the scalar reference kernels on them.
 *
 * Block layouts (byte-identical to ggml's ggml-common.h, little-endian):
 *
 *   Q8_0, 32 values in 34 bytes:
 *     [0..1]   d      IEEE binary16 scale
 *     [2..33]  qs[32] int8 quants;        value[j] = qs[j] * d
 *
 *   Q4_0, 32 values in 18 bytes:
 *     [0..1]   d      IEEE binary16 scale
 *     [2..17]  qs[16] two 4-bit quants per byte, offset by 8:
 *                     value[j]      = ((qs[j] & 0x0F) - 8) * d     j = 0..15
 *                     value[j + 16] = ((qs[j] >> 4)   - 8) * d
 *              i.e. the low nibbles hold the first half of the block and
 *              the high nibbles the second half (NOT interleaved pairs).
 *
 * The quantizers reproduce ggml's quantize_row_*_ref bit for bit on finite
 * input (same scale choice, same rounding, binary16 round-to-nearest-even),
 * so files we write match the ones llama.cpp writes. Non-finite input gives
 * unspecified but defined bytes (ggml's behaviour there is undefined).
 *
 * The dot products are the scalar references the SIMD kernels are tested
 * against: per block, an exact int32 sum of quant products; across blocks,
 * an f32 sum of  sumi * (d_w * d_x)  in block order.
 *
 * Block pointers need only 2-byte alignment (a GGUF data section always
 * provides it when the file image starts on an even address).
 */
#ifndef GM_QUANT_H
#define GM_QUANT_H

#include "gm_internal.h"

/* ---- ggml type ids (the int32 stored in GGUF tensor infos) ---- */

typedef enum gm_ggml_type {
    GM_GGML_F32 = 0,
    GM_GGML_F16 = 1,
    GM_GGML_Q4_0 = 2,
    GM_GGML_Q4_1 = 3,
    /* 4, 5: Q4_2 / Q4_3, removed from ggml */
    GM_GGML_Q5_0 = 6,
    GM_GGML_Q5_1 = 7,
    GM_GGML_Q8_0 = 8,
    GM_GGML_Q8_1 = 9,
    GM_GGML_Q2_K = 10,
    GM_GGML_Q3_K = 11,
    GM_GGML_Q4_K = 12,
    GM_GGML_Q5_K = 13,
    GM_GGML_Q6_K = 14,
    GM_GGML_Q8_K = 15,
    GM_GGML_IQ2_XXS = 16,
    GM_GGML_IQ2_XS = 17,
    GM_GGML_IQ3_XXS = 18,
    GM_GGML_IQ1_S = 19,
    GM_GGML_IQ4_NL = 20,
    GM_GGML_IQ3_S = 21,
    GM_GGML_IQ2_S = 22,
    GM_GGML_IQ4_XS = 23,
    GM_GGML_I8 = 24,
    GM_GGML_I16 = 25,
    GM_GGML_I32 = 26,
    GM_GGML_I64 = 27,
    GM_GGML_F64 = 28,
    GM_GGML_IQ1_M = 29,
    GM_GGML_BF16 = 30,
    /* 31-33: Q4_0_4_4 / Q4_0_4_8 / Q4_0_8_8, removed from GGUF files */
    GM_GGML_TQ1_0 = 34,
    GM_GGML_TQ2_0 = 35,
    /* 36-38: IQ4_NL_4_4 / _4_8 / _8_8, removed */
    GM_GGML_MXFP4 = 39,
    GM_GGML_NVFP4 = 40,
    GM_GGML_Q1_0 = 41,
    GM_GGML_Q2_0 = 42,
    GM_GGML_TYPE_COUNT = 43
} gm_ggml_type;

/* Widens n elements (n a multiple of the block size) to f32; src may be unaligned
 * for F32/F16/BF16, block types need 2-byte alignment. */
typedef void (*gm_to_float_fn)(const void *src, float *dst, int64_t n);
/* Encodes n floats (n a multiple of the block size) into the type's bytes. */
typedef void (*gm_from_float_fn)(const float *src, void *dst, int64_t n);

typedef struct gm_ggml_traits {
    const char *name;            /* "Q4_K", as gguf-py spells it */
    int32_t block_size;          /* elements per block (1 for plain types) */
    int32_t type_size;           /* bytes per block */
    bool supported;              /* this engine can compute with it */
    gm_to_float_fn to_float;     /* NULL unless supported */
    gm_from_float_fn from_float; /* NULL unless supported */
} gm_ggml_traits;

/* Traits of a type id, or NULL for ids ggml does not define (incl. removed ones). */
GM_INTERNAL const gm_ggml_traits *gm_ggml_type_traits(int32_t type);

/* Name of a type id ("Q8_0"), or NULL for unknown ids. */
GM_INTERNAL const char *gm_ggml_type_name(int32_t type);

/*
 * Bytes taken by n_elems elements of `type` laid out contiguously. False if
 * the type is unknown, n_elems < 0 or not a multiple of the block size, or
 * the size does not fit in size_t.
 */
GM_INTERNAL bool gm_ggml_nbytes(int32_t type, int64_t n_elems, size_t *out);

/* ---- block formats ---- */

#define GM_QK8_0 32
#define GM_QK4_0 32

typedef struct gm_block_q8_0 {
    uint16_t d;             /* binary16 scale */
    int8_t qs[GM_QK8_0];    /* quants */
} gm_block_q8_0;
_Static_assert(sizeof(gm_block_q8_0) == 34, "q8_0 block must be 34 bytes (ggml layout)");

typedef struct gm_block_q4_0 {
    uint16_t d;               /* binary16 scale */
    uint8_t qs[GM_QK4_0 / 2]; /* j-th low nibble: element j; j-th high nibble: element j+16 */
} gm_block_q4_0;
_Static_assert(sizeof(gm_block_q4_0) == 18, "q4_0 block must be 18 bytes (ggml layout)");

/*
 * Reference quantizers and dequantizers. `n` is the element count and must
 * be a multiple of 32 (n / 32 blocks are processed; a remainder is ignored).
 *
 * Q8_0: d = amax / 127, q = roundf(x / d) (halves away from zero).
 * Q4_0: m = the element of largest magnitude (first one on ties),
 *       d = m / -8, q = min(15, trunc(x / d + 8.5)); so m itself maps to 0.
 */
GM_INTERNAL void gm_quantize_row_q8_0(const float *x, gm_block_q8_0 *y, int64_t n);
GM_INTERNAL void gm_dequantize_row_q8_0(const gm_block_q8_0 *x, float *y, int64_t n);
GM_INTERNAL void gm_quantize_row_q4_0(const float *x, gm_block_q4_0 *y, int64_t n);
GM_INTERNAL void gm_dequantize_row_q4_0(const gm_block_q4_0 *x, float *y, int64_t n);

/*
 * Dot product of a weight row with an activation row quantized to Q8_0
 * (gm_quantize_row_q8_0), both `n` elements (a multiple of 32):
 *   sum over blocks b of  (float)sumi_b * (d_w[b] * d_x[b])
 * where sumi_b is the exact int32 sum of the 32 quant products: the integer
 * math of ggml's ggml_vec_dot_q8_0_q8_0 / ggml_vec_dot_q4_0_q8_0 (whose f32
 * grouping of the scales differs in the last bit at most).
 */
GM_INTERNAL float gm_vec_dot_q8_0_q8_0(const gm_block_q8_0 *w, const gm_block_q8_0 *x, int64_t n);
GM_INTERNAL float gm_vec_dot_q4_0_q8_0(const gm_block_q4_0 *w, const gm_block_q8_0 *x, int64_t n);

#endif /* GM_QUANT_H */
