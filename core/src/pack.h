/*
 * pack.h - the interleaved Q4_0 weight layout of the matrix products
 * ("Q4_0x16"), made from a Q4_0 matrix at load.
 *
 * Why: in the row-major ggml layout a 64-byte register holds two blocks of
 * ONE row, so every block pair costs shuffles (nibble order, scale spreads)
 * and every row a horizontal sum; the Q4_0 GEMV was compute-bound at 40-80 %
 * of the memory bandwidth. Interleaving 16 rows puts one 4-byte group of
 * each of 16 rows in a register: lane j is row j, a broadcast activation
 * word feeds all 16 lanes (vpdpbusd), no shuffle, no horizontal sum.
 *
 * Layout. A Q4_0 matrix [rows, cols] with rows % 16 == 0 and cols % 32 == 0
 * (nbl = cols / 32 blocks per row) becomes rows / 16 groups of nbl tiles,
 * group-major: tile (g, b) is element g * nbl + b and holds block b of rows
 * 16g .. 16g + 15:
 *     d[j]          binary16 scale of row 16g + j
 *     qs[q][j][i]   byte 4q + i of row 16g + j's block (q < 4, i < 4)
 * Bytes keep their Q4_0 meaning: low nibble = element 4q + i, high nibble =
 * element 16 + 4q + i, value = (nibble - 8) * d. A tile is the 16 blocks'
 * 288 bytes rearranged, so a packed matrix takes exactly the memory of the
 * original. The leading `in` columns of every row are the leading in / 32
 * tiles of every group, so MatFormer column prefixes work unchanged.
 *
 * Products. Y[t, r] = sum_b (f32)sumi(r, t, b) * (d_w * d_x) in block order,
 * with sumi the exact int32 dot of the block's quants: the same operations
 * in the same order as gm_vec_dot_q4_0_q8_0 (quant.c), so every kernel of
 * this layout gives the reference's bits. The kernels use
 *     sumi = sum_i nibble_i * x_i - 8 * sum_i x_i
 * (unsigned nibbles times signed activations is what vpdpbusd multiplies),
 * so they take each activation block's quant sum (gm_q8_aux).
 */
#ifndef GM_PACK_H
#define GM_PACK_H

#include "quant.h"

#define GM_PACK_ROWS 16

typedef struct gm_tile_q4_0x16 {
    uint16_t d[GM_PACK_ROWS];           /* binary16 scales, one per row */
    uint8_t qs[4][GM_PACK_ROWS][4];     /* [quad][row][byte]: Q4_0 bytes 4q..4q+3 of each row */
} gm_tile_q4_0x16;
_Static_assert(sizeof(gm_tile_q4_0x16) == GM_PACK_ROWS * sizeof(gm_block_q4_0), "a tile is 16 blocks' bytes");

/* Whether a [rows, cols] Q4_0 matrix has the shape this layout needs. */
GM_INTERNAL bool gm_pack_q4_0x16_fits(int64_t rows, int64_t cols);

/* Packs rows [g0 * 16, g1 * 16) of W (row-major gm_block_q4_0, nbl blocks per row) into P (the whole
 * matrix's gm_tile_q4_0x16 array). The reference of kernels.h's pack_q4_0x16. */
GM_INTERNAL void gm_pack_q4_0x16(const void *W, int64_t nbl, void *P, int64_t g0, int64_t g1);

/* Row r's blocks [b0, b0 + nb) as n = 32 nb floats (a row of the original matrix, dequantized). */
GM_INTERNAL void gm_q4_0x16_row(const gm_tile_q4_0x16 *P, int64_t nbl, int64_t r, int64_t b0, int64_t nb, float *out);

/*
 * What the packed kernels take with each activation block, computed once per
 * row instead of once per weight group: bias = -8 * (sum of the block's
 * quants) (the nibbles' offset, folded), d = the block's scale as f32.
 */
typedef struct gm_q8_aux {
    int32_t bias;
    float d;
} gm_q8_aux;

/* aux[b] for the n / 32 blocks of x. */
GM_INTERNAL void gm_q8_0_aux(const gm_block_q8_0 *x, int64_t n, gm_q8_aux *aux);

/*
 * The scalar reference of kernels.h's matmul_q4_0x16 (the contract is
 * there): written as the plain loop, used by the ref table and the tests.
 */
GM_INTERNAL void gm_matmul_q4_0x16_ref(const void *P, int64_t nbl, const void *X, const gm_q8_aux *xa, int64_t nb,
                                       int64_t T, float *Y, int64_t ldy, int64_t r0, int64_t r1);

#endif
