/* pack.c - the interleaved Q4_0x16 layout: packing, row access, scalar reference product (see pack.h). */
#include "pack.h"

bool gm_pack_q4_0x16_fits(int64_t rows, int64_t cols) {
    return rows > 0 && cols > 0 && rows % GM_PACK_ROWS == 0 && cols % GM_QK4_0 == 0;
}

void gm_pack_q4_0x16(const void *Wv, int64_t nbl, void *Pv, int64_t g0, int64_t g1) {
    const gm_block_q4_0 *W = Wv;
    gm_tile_q4_0x16 *P = Pv;
    for (int64_t g = g0; g < g1; g++) {
        for (int64_t b = 0; b < nbl; b++) {
            gm_tile_q4_0x16 *t = &P[g * nbl + b];
            for (int j = 0; j < GM_PACK_ROWS; j++) {
                const gm_block_q4_0 *src = &W[(g * GM_PACK_ROWS + j) * nbl + b];
                t->d[j] = src->d;
                for (int q = 0; q < 4; q++) memcpy(t->qs[q][j], src->qs + 4 * q, 4);
            }
        }
    }
}

void gm_q4_0x16_row(const gm_tile_q4_0x16 *P, int64_t nbl, int64_t r, int64_t b0, int64_t nb, float *out) {
    const int64_t g = r / GM_PACK_ROWS;
    const int j = (int)(r % GM_PACK_ROWS);
    for (int64_t b = b0; b < b0 + nb; b++, out += GM_QK4_0) {
        const gm_tile_q4_0x16 *t = &P[g * nbl + b];
        const float d = gm_f16_to_f32(t->d[j]);
        for (int q = 0; q < 4; q++) {
            for (int i = 0; i < 4; i++) {
                const uint8_t byte = t->qs[q][j][i];
                out[4 * q + i] = (float)((byte & 0x0F) - 8) * d;
                out[16 + 4 * q + i] = (float)((byte >> 4) - 8) * d;
            }
        }
    }
}

void gm_q8_0_aux(const gm_block_q8_0 *x, int64_t n, gm_q8_aux *aux) {
    for (int64_t b = 0; b < n / GM_QK8_0; b++) {
        int32_t s = 0;
        for (int i = 0; i < GM_QK8_0; i++) s += x[b].qs[i];
        aux[b] = (gm_q8_aux){-8 * s, gm_f16_to_f32(x[b].d)};
    }
}

/* One row's dot with one activation row: the loop of gm_vec_dot_q4_0_q8_0 over the tile layout. */
static float packed_row_dot(const gm_tile_q4_0x16 *group, int j, const gm_block_q8_0 *x, const gm_q8_aux *xa,
                            int64_t nb) {
    float sum = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        const gm_tile_q4_0x16 *t = &group[b];
        int32_t sumi = xa[b].bias;
        for (int q = 0; q < 4; q++) {
            for (int i = 0; i < 4; i++) {
                const uint8_t byte = t->qs[q][j][i];
                sumi += (byte & 0x0F) * (int32_t)x[b].qs[4 * q + i];
                sumi += (byte >> 4) * (int32_t)x[b].qs[16 + 4 * q + i];
            }
        }
        sum += (float)sumi * (gm_f16_to_f32(t->d[j]) * xa[b].d);
    }
    return sum;
}

void gm_matmul_q4_0x16_ref(const void *P, int64_t nbl, const void *X, const gm_q8_aux *xa, int64_t nb, int64_t T,
                           float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    const gm_tile_q4_0x16 *tiles = P;
    const gm_block_q8_0 *x = X;
    for (int64_t t = 0; t < T; t++) {
        for (int64_t r = r0; r < r1; r++) {
            const gm_tile_q4_0x16 *group = &tiles[(r / GM_PACK_ROWS) * nbl];
            Y[t * ldy + r] = packed_row_dot(group, (int)(r % GM_PACK_ROWS), x + t * nb, xa + t * nb, nb);
        }
    }
}
