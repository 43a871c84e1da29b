/*
 * decoder.h - the Gemma 3n text decoder's forward pass over a KV cache.
 *
 * A gm_decoder holds everything mutable that one session needs to run the
 * model: the KV cache and every scratch buffer, all allocated once in
 * gm_decoder_init. gm_decoder_forward never allocates.
 */
#ifndef GM_DECODER_H
#define GM_DECODER_H

#include "matmul.h"
#include "model.h"

/*
 * K/V of one cache-owning layer, [cap, nkv * hd] each. Position j lives in
 * slot j % cap: full-attention layers have cap = n_ctx; sliding layers keep
 * a ring of cap = min(n_ctx, sliding_window + max_batch) positions (the
 * window plus room for one batch, so a batch never overwrites keys its own
 * first query still needs). KV-shared layers own nothing.
 */
typedef struct gm_kv_layer {
    float *k, *v;        /* GM_KV_F32 caches */
    uint16_t *kh, *vh;   /* GM_KV_F16 caches: binary16 bits */
    int32_t cap;         /* 0 for KV-shared layers */
} gm_kv_layer;

/*
 * Attention (attention.c) works on blocks of at most GM_ATTN_ROWS query rows
 * of one head; each pool thread has scratch for one block: its queries
 * [GM_ATTN_ROWS, hd], then its scores against up to n_ctx keys
 * [GM_ATTN_ROWS, n_ctx] (pages never touched cost nothing: gm_aligned_alloc).
 */
#define GM_ATTN_ROWS 16
#define GM_ATTN_SCRATCH(d) ((size_t)GM_ATTN_ROWS * ((size_t)(d)->n_ctx + (size_t)(d)->hd))

/* An f16 K/V cache is converted to f32 this many keys at a time (attention.c): 64 KiB of scratch at hd 256. */
#define GM_KV_CHUNK 64

/* Distinct RoPE bases a plan may use: Gemma 3n has a local (sliding) and a global one. */
#define GM_MAX_ROPE_BASES 2

/* Called after each layer with the AltUp streams [K][stride][H] (rows 0..T-1 valid). Tests use it. */
typedef void (*gm_layer_observer)(void *user, int plan_layer, const float *streams, int T, int stride);

typedef struct gm_decoder {
    const gm_model *model;
    gm_plan plan;
    int32_t n_ctx;
    int32_t max_batch;              /* B: tokens per forward call */
    int32_t H, K, P, V, nh, nkv, hd, q_dim, kv_dim, max_ffn, r;
    gm_kv_layer kv[GM_MAX_LAYERS];  /* by plan index; cap == 0 for KV-shared layers */
    int32_t kv_type;    /* gm_kv_type: which of kv[].k/v (f32) or kv[].kh/vh (f16) is allocated */
    /* f16 cache only: per pool thread, GM_KV_CHUNK keys or values of one
     * KV head converted to f32, [n_scores][GM_KV_CHUNK, hd] (attention.c) */
    float *kv_rows;
    /* scratch, all [B, ...] unless noted */
    float *x0;          /* [B, H] scaled token embeddings */
    float *streams;     /* [K, B, H] AltUp streams between layers */
    float *pred;        /* [K, B, H] AltUp predictions */
    float *ple_proj;    /* [B, L_full * P] per_layer_model_projection output */
    float *pli;         /* [B, n_plan_layers, P] per-layer inputs */
    float *an;          /* [B, H] normed active prediction */
    float *laurel;      /* [B, H] */
    float *attn;        /* [B, H] */
    float *al;          /* [B, H] */
    float *tmp_h;       /* [B, H] */
    float *low_rank;    /* [B, max(r, P)] */
    float *q, *k, *v;   /* [B, q_dim], [B, kv_dim] x2 */
    float *att_out;     /* [B, q_dim] */
    float *scores;      /* [n_scores][GM_ATTN_SCRATCH]: per pool thread, one attention block's q and scores */
    int n_scores;
    float *gate, *up;   /* [B, max_ffn] */
    float *router;      /* [B, K] modalities */
    float *coefs;       /* [B, K*K] */
    float *hidden;      /* [B, H] final normed hidden states */
    /* RoPE: angles per base and batch row, computed once per forward for every layer and head */
    int n_rope_bases;
    float rope_theta[GM_MAX_ROPE_BASES];
    int8_t rope_base[GM_MAX_LAYERS];  /* by plan index: which base */
    float *inv_freq;    /* [n_rope_bases, hd/2] */
    float *rope_cos, *rope_sin; /* [n_rope_bases, B, hd/2] */
    /*
     * Activation sparsity (matmul_sparse.h): in layers with sparsity > 0,
     * decode (batches below GM_GEMM_MIN_BATCH) computes up_proj only for
     * the rows whose gate activation survived the gaussian top-k. Exact
     * (same bits as the dense GEMV), so it is on by default and not a user
     * option; tests and measurements switch it off with
     * gm_decoder_set_sparse_ffn. The counters add up, over every
     * token of those layers, the up_proj rows computed and the rows a dense
     * product would have computed.
     */
    bool sparse_ffn;
    int32_t *ffn_rows;  /* [B, max_ffn] each token's active up rows (sparse FFN) */
    int32_t *ffn_counts; /* [B] how many up rows each token computed */
    int64_t ffn_rows_computed, ffn_rows_dense;
    gm_matmul_ctx mm;   /* kernels, thread pool and scratch of the matrix products */
    gm_layer_observer observer;
    void *observer_user;
} gm_decoder;

/* kv_type: a gm_kv_type (validated by the caller). */
GM_INTERNAL gm_status gm_decoder_init(gm_decoder *d, const gm_model *m, const gm_plan *plan, int32_t n_ctx,
                                      int32_t max_batch, int32_t kv_type, gm_error *err);
GM_INTERNAL void gm_decoder_free(gm_decoder *d);

/*
 * Runs T <= max_batch tokens at absolute positions pos0 .. pos0+T-1 (ids
 * already validated, pos0 + T <= n_ctx), appending their K/V to the cache.
 * Writes softcapped logits [T - first_logit_row, V] for batch rows
 * first_logit_row .. T-1 to `logits` (first_logit_row == T: none).
 * Rows before first_logit_row stop before the KV-shared tail layers (no
 * cache of theirs is written there, and their outputs would feed only
 * their own logits), unless an observer is set.
 */
GM_INTERNAL void gm_decoder_forward(gm_decoder *d, const int32_t *ids, int T, int64_t pos0,
                                    float *logits, int first_logit_row);

/* cos/sin of batch rows 0..T-1 (positions pos0..) for each RoPE base: once per forward (attention.c). */
GM_INTERNAL void gm_rope_tables(gm_decoder *d, int T, int64_t pos0);

/* d->attn [T, H] = RMSNorm(o_proj(attention(d->an)); post_attention_layernorm) of plan layer p,
 * appending the batch's K/V to the cache first if the layer owns one (attention.c). */
GM_INTERNAL void gm_attention(gm_decoder *d, int p, const gm_layer_weights *lw, int T, int64_t pos0);

/* Switches the exact up_proj row skipping of sparse FFN layers (default on). */
GM_INTERNAL void gm_decoder_set_sparse_ffn(gm_decoder *d, bool on);

/* Number of most recent positions a truncation can go back without recomputation. */
GM_INTERNAL int64_t gm_decoder_rewind_limit(const gm_decoder *d);

#endif /* GM_DECODER_H */
