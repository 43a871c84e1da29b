/*
 * kern_amx.c - the packed Q4_0 matrix product (kernels.h's matmul_q4_0x16)
 * on Intel AMX-INT8 tiles, for the avx512_amx table (kern_avx512.c).
 *
 * Why: in prefill the avx512_vnni GEMM spends per activation row and block
 * 8 vpdpbusd for 512 multiply-adds; one tdpbssd does 16 activation rows x
 * 16 weight rows x 32 of them (8192) while the vector ports do the f32
 * part. The reference combines the exact int32 block sums as
 * acc += (f32)sumi * (d_w * d_x), block by block (pack.h), and we keep
 * those bits, so every (row, token, block) still costs a convert, two
 * multiplies and an add on the vector ports, and every block its own sums
 * tile, zeroed, stored and re-read: measured on this project's machine,
 * the tile operations (not the vector ports) bound the kernel, at about 2x
 * the VNNI kernel's multiply-adds per second.
 *
 * Tiles per block b of a group of 16 weight rows and a chunk of 16
 * activation rows (K = 32, the block):
 *   A  16 rows x 32 bytes   the chunk's Q8_0 quants of block b, from a
 *                           window of 16 blocks re-laid out once per call
 *                           for every group (x_window: one A tile is 512
 *                           contiguous bytes, not 16 rows nb * 34 apart)
 *   B   8 rows x 64 bytes   the block's weights in the VNNI layout tdpbssd
 *                           wants: row k, column j = 4 consecutive
 *                           elements of weight row j. A Q4_0x16 tile is
 *                           already that layout for the low nibbles
 *                           (qs[q][j][0..3] = elements 4q..4q+3, q < 4) and
 *                           the high ones (16 + 4q ..); they are widened to
 *                           signed bytes (nibble - 8), once per window for
 *                           all the chunks (up to 64 activation rows).
 *   C  16 x 16 int32        sumi(token, row), stored and scaled on AVX-512.
 * Signed weights (tdpbssd) fold the -8 offset into the product, so the
 * activation quant sums (gm_q8_aux.bias) are not needed here.
 * Two sets of tiles alternate between blocks so the next block's tile
 * loads and product overlap the current block's f32 work. Partial sums
 * wait in Y between windows (an exact f32 round trip).
 *
 * Tile state is per thread: each call loads the configuration and
 * releases the tiles before it returns. The OS must have granted this
 * process the tile data state (kern_dispatch.c asks, arch_prctl); the
 * table is only handed out when it has.
 *
 * Activation rows that do not fill a 16-row chunk, and T == 1 (decode),
 * go through the avx512_vnni kernel: the same bits (pack.h).
 */
#include "kernels.h"
#include "pack.h"
#include "quant.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#if defined(GM_KERN_AMX)
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(                                                                                  \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,amx-tile,amx-int8"))),            \
    apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c,amx-tile,amx-int8")
#endif

#define INLINE static inline __attribute__((always_inline))
#define UNROLL16 _Pragma("GCC unroll 16")

enum { CHUNK = 16 }; /* activation rows per A tile */

/* The LDTILECFG operand (Intel SDM: palette 1). */
typedef struct tile_config {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;
_Static_assert(sizeof(tile_config) == 64, "LDTILECFG reads 64 bytes");

/* tmm0..2 and tmm3..5: (C, A, B) for even and odd blocks. */
static void configure_tiles(void) {
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int s = 0; s < 2; s++) {
        cfg.rows[3 * s + 0] = CHUNK, cfg.colsb[3 * s + 0] = 16 * 4;       /* C: 16 x 16 int32 */
        cfg.rows[3 * s + 1] = CHUNK, cfg.colsb[3 * s + 1] = GM_QK8_0;     /* A: 16 x 32 int8 */
        cfg.rows[3 * s + 2] = GM_QK4_0 / 4, cfg.colsb[3 * s + 2] = 16 * 4; /* B: 8 x (16 x 4) int8 */
    }
    _tile_loadconfig(&cfg);
}

/* One Q4_0x16 tile as tdpbssd's B operand: rows 0-3 the low nibbles, 4-7 the high ones, minus 8. */
INLINE void widen_weights(const gm_tile_q4_0x16 *tile, int8_t *B) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
    for (int q = 0; q < 4; q++) {
        const __m512i v = _mm512_loadu_si512(tile->qs[q]);
        _mm512_store_si512(B + 64 * q, _mm512_sub_epi8(_mm512_and_si512(v, m4), eight));
        _mm512_store_si512(B + 64 * (4 + q), _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4), eight));
    }
}

enum {
    WINDOW = 16,    /* blocks per pass over the rows: their activations re-laid out (32 KiB), in L1/L2 */
    MAX_CHUNKS = 4, /* 16-row activation chunks per pass: each widened weight block serves all of them */
};

/*
 * One window of activations, laid out for the tiles: the quants of block
 * b0 + w, row t at qs[w][t] (an A tile is 512 contiguous bytes instead of 16
 * rows 34 * nb bytes apart), their scales at d[w][t].
 */
typedef struct x_window {
    _Alignas(64) int8_t qs[WINDOW][MAX_CHUNKS * CHUNK][GM_QK8_0];
    _Alignas(64) float d[WINDOW][MAX_CHUNKS * CHUNK];
} x_window;

static void load_window(x_window *xw, const gm_block_q8_0 *X, const gm_q8_aux *xa, int64_t nb, int rows, int64_t b0,
                        int64_t b1) {
    for (int t = 0; t < rows; t++)
        for (int64_t b = b0; b < b1; b++) {
            _mm256_store_si256((__m256i *)xw->qs[b - b0][t], _mm256_loadu_si256((const __m256i *)X[t * nb + b].qs));
            xw->d[b - b0][t] = xa[t * nb + b].d;
        }
}

/* acc[t] += (f32)C[t] * (d_w * d_x[t]), the reference's per-block step, for a chunk's 16 rows (scales dx). */
INLINE void scale_block(__m512 acc[CHUNK], const int32_t *C, const gm_tile_q4_0x16 *tile, const float *dx) {
    const __m512 dw = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)tile->d));
    UNROLL16 for (int t = 0; t < CHUNK; t++) {
        const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(dx[t]));
        const __m512 s = _mm512_cvtepi32_ps(_mm512_load_si512(C + 16 * t));
        acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(s, d));
    }
}

/* Window block w's product for chunk k on tile set 0 (tmm0 = tmm1 x tmm2) or 1 (tmm3 = tmm4 x tmm5). */
#define ISSUE_ON(C, A, Bt, w)                                   \
    do {                                                        \
        _tile_loadd(A, xw->qs[w][k * CHUNK], GM_QK8_0);         \
        _tile_loadd(Bt, B[w], 64);                              \
        _tile_zero(C);                                          \
        _tile_dpbssd(C, A, Bt);                                 \
    } while (0)
#define ISSUE(set, w)                         \
    do {                                      \
        if ((set) == 0) ISSUE_ON(0, 1, 2, w); \
        else ISSUE_ON(3, 4, 5, w);            \
    } while (0)

/*
 * acc += window blocks [0, n) of chunk k times the group (tiles: its
 * blocks from the window's first; B: them widened). Software-pipelined
 * over the two tile sets: block w + 2's loads and product are issued
 * before block w's sums are scaled, so the tile unit works while the
 * vector ports do the f32 part.
 */
static void chunk_window(__m512 acc[CHUNK], const gm_tile_q4_0x16 *tiles, const int8_t (*B)[512],
                         const x_window *xw, int k, int n) {
    _Alignas(64) int32_t C[2][CHUNK * 16];
    ISSUE(0, 0);
    if (n > 1) ISSUE(1, 1);
    for (int w = 0; w < n; w += 2) {
        _tile_stored(0, C[0], 64);
        if (w + 2 < n) ISSUE(0, w + 2);
        scale_block(acc, C[0], &tiles[w], &xw->d[w][k * CHUNK]);
        if (w + 1 >= n) break;
        _tile_stored(3, C[1], 64);
        if (w + 3 < n) ISSUE(1, w + 3);
        scale_block(acc, C[1], &tiles[w + 1], &xw->d[w + 1][k * CHUNK]);
    }
}

/*
 * Window [b0, b0 + n) of n_chunks chunks through group g: the partial sums
 * of the earlier windows wait in Y (rows r .. r1 of the group; the f32
 * round trip is exact), the first window starts from 0.
 */
static void window_group(const gm_tile_q4_0x16 *group, const gm_tile_q4_0x16 *next, const x_window *xw, int64_t b0,
                         int n, int n_chunks, float *Y, int64_t ldy, int64_t r, int64_t r1) {
    _Alignas(64) int8_t B[WINDOW][512];
    for (int w = 0; w < n; w++) {
        widen_weights(&group[b0 + w], B[w]);
        if (next) /* the next group's window: a short run of lines at a stride, which the hardware does not prefetch */
            for (int l = 0; l < (int)sizeof(gm_tile_q4_0x16); l += 64)
                _mm_prefetch((const char *)&next[b0 + w] + l, _MM_HINT_T0);
    }
    const __mmask16 m = r1 - r >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (r1 - r)) - 1);
    __m512 acc[CHUNK];
    for (int k = 0; k < n_chunks; k++) {
        float *y = Y + (int64_t)k * CHUNK * ldy + r;
        UNROLL16 for (int t = 0; t < CHUNK; t++) acc[t] = b0 ? _mm512_maskz_loadu_ps(m, y + t * ldy) : _mm512_setzero_ps();
        chunk_window(acc, &group[b0], (const int8_t(*)[512])B, xw, k, n);
        UNROLL16 for (int t = 0; t < CHUNK; t++) _mm512_mask_storeu_ps(y + t * ldy, m, acc[t]);
    }
}

void gm_amx_matmul_q4_0x16(const void *Pv, int64_t nbl, const void *Xv, const gm_q8_aux *xa, int64_t nb, int64_t T,
                           float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    const gm_tile_q4_0x16 *P = Pv;
    const gm_block_q8_0 *X = Xv;
    const int64_t full = T / CHUNK * CHUNK;
    if (full > 0 && nb > 0) {
        x_window xw;
        configure_tiles();
        for (int64_t t = 0; t < full; t += MAX_CHUNKS * CHUNK) {
            const int n_chunks = (int)GM_MIN(MAX_CHUNKS, (full - t) / CHUNK);
            for (int64_t b0 = 0; b0 < nb; b0 += WINDOW) { /* a window's activations serve every group */
                const int n = (int)GM_MIN(WINDOW, nb - b0);
                load_window(&xw, X + t * nb, xa + t * nb, nb, n_chunks * CHUNK, b0, b0 + n);
                const int64_t g1 = (r1 + 15) / 16;
                for (int64_t g = r0 / 16; g < g1; g++)
                    window_group(&P[g * nbl], g + 1 < g1 ? &P[(g + 1) * nbl] : NULL, &xw, b0, n, n_chunks,
                                 Y + t * ldy, ldy, g * 16, r1);
            }
        }
        _tile_release();
    }
    if (full < T || nb == 0)
        gm_vnni_matmul_q4_0x16(Pv, nbl, X + full * nb, xa + full * nb, nb, T - full, Y + full * ldy, ldy, r0, r1);
}

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else
typedef int gm_kern_amx_unused; /* no AMX in this build: the file is empty */
#endif
