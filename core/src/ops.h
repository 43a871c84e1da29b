/*
 * ops.h - the numeric building blocks of the decoder (f32).
 * Each op names the upstream function whose math it reproduces.
 *
 * The per-token ops take the kernel table (kernels.h) for their reductions
 * and transcendentals: SIMD in decode's hot loop, and the scalar reference
 * when given &gm_kernels_ref. The elementwise ops with a table twin
 * (gelu_tanh, softcap, dot_f32, axpy, mul, scale) are called on the table
 * directly; their scalar reference is kern_ref.c.
 */
#ifndef GM_OPS_H
#define GM_OPS_H

#include "kernels.h"

/*
 * Gemma3nRMSNorm: out = x / sqrt(mean(x^2) + eps) * w   (w == NULL: no scale,
 * as v_norm). Note: Gemma 3n multiplies by w, not (1 + w) as Gemma 1-3.
 * out may alias x.
 */
GM_INTERNAL void gm_rmsnorm(const gm_kernels *k, const float *x, const float *w, int n, float eps, float *out);

/* sqrt(mean(x^2)) (AltUp magnitude matching). */
GM_INTERNAL float gm_rms(const gm_kernels *k, const float *x, int n);

/* In-place softmax of n values (max-subtracted). */
GM_INTERNAL void gm_softmax(const gm_kernels *k, float *x, int n);

/*
 * Rotary embedding tables of one head size and base (Gemma3nRotaryEmbedding):
 * inv_freq[i] = 1 / theta^(2i/hd), rounded to f32 as upstream, computed once;
 * gm_rope_angles fills cos/sin of pos * inv_freq for one position, so the
 * heads and layers of a token share one set of transcendentals.
 */
GM_INTERNAL void gm_rope_inv_freq(float theta, int hd, float *inv_freq);
GM_INTERNAL void gm_rope_angles(const float *inv_freq, int hd, int64_t pos, float *cs, float *sn);

/*
 * apply_rotary_pos_emb with rotate_half on one head of `hd` values: pairs
 * (i, i + hd/2) rotated by the angles of gm_rope_angles (cs, sn: [hd/2]).
 */
GM_INTERNAL void gm_rope(float *x, int hd, const float *cs, const float *sn);

/*
 * Gemma3nTextMLP._gaussian_topk: x = relu(x - (mean(x) + std(x) * mult))
 * with the population std over the n values, in place.
 */
GM_INTERNAL void gm_gaussian_topk(float *x, int n, float std_multiplier);

/* Row `r` of W widened to f32 (embedding lookups), whatever W's layout. */
GM_INTERNAL void gm_matrix_row(const gm_matrix *W, int64_t r, int64_t col0, int64_t n, float *out);

/*
 * Drops this process's mapping of row r's pages when W is file-backed (no
 * effect otherwise): the pages stay in the page cache and fault back in on
 * the next read. For tables read a row at a time (the per-layer embedding
 * table): the kernel maps a 64 KiB window around each faulting page
 * ("fault-around"), so without this every token leaves ~1 MB of the 4 GB
 * table counted in the resident set.
 */
GM_INTERNAL void gm_matrix_release_row(const gm_matrix *W, int64_t r);

#endif
