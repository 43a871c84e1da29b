/*
 * ops.h - the numeric building blocks of the decoder (scalar, f32).
 * Each op names the upstream function whose math it reproduces.
 */
#ifndef GM_OPS_H
#define GM_OPS_H

#include "gm_internal.h"

/*
 * Gemma3nRMSNorm: out = x / sqrt(mean(x^2) + eps) * w   (w == NULL: no scale,
 * as v_norm). Note: Gemma 3n multiplies by w, not (1 + w) as Gemma 1-3.
 * out may alias x.
 */
GM_INTERNAL void gm_rmsnorm(const float *x, const float *w, int n, float eps, float *out);

/* sqrt(mean(x^2)) (AltUp magnitude matching). */
GM_INTERNAL float gm_rms(const float *x, int n);

/* gelu_pytorch_tanh, in place. */
GM_INTERNAL void gm_gelu_tanh(float *x, int n);

/*
 * apply_rotary_pos_emb with rotate_half on one head of `hd` values:
 * pairs (i, i + hd/2) rotated by pos * theta^(-2i/hd), computed in f32 as
 * Gemma3nRotaryEmbedding does.
 */
GM_INTERNAL void gm_rope(float *x, int hd, int64_t pos, float theta);

/*
 * Gemma3nTextMLP._gaussian_topk: x = relu(x - (mean(x) + std(x) * mult))
 * with the population std over the n values, in place.
 */
GM_INTERNAL void gm_gaussian_topk(float *x, int n, float std_multiplier);

/* In-place softmax of n values (max-subtracted, f32 accumulation in double). */
GM_INTERNAL void gm_softmax(float *x, int n);

/* x = cap * tanh(x / cap), in place (final logit soft-capping). */
GM_INTERNAL void gm_softcap(float *x, int64_t n, float cap);

GM_INTERNAL float gm_dot_f32(const float *a, const float *b, int64_t n);

/* Row `r` of W widened to f32 (embedding lookups). */
GM_INTERNAL void gm_matrix_row(const gm_matrix *W, int64_t r, int64_t col0, int64_t n, float *out);

#endif
