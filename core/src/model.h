/*
 * model.h - the Gemma 3n text model: config, weights, execution plan.
 *
 * Shapes use the upstream names: H = hidden_size, L = num_hidden_layers,
 * P = hidden_size_per_layer_input, K = altup_num_inputs, V = vocab_size,
 * Vp = vocab_size_per_layer_input, nh/nkv = attention/KV heads,
 * hd = head_dim, F_l = intermediate_size[l], r = laurel_rank.
 * Matrices are [out_features, in_features] as in nn.Linear.
 */
#ifndef GM_MODEL_H
#define GM_MODEL_H

#include "gm_internal.h"
#include "safetensors.h"

#include <pthread.h>
#include <stdatomic.h>

#define GM_MAX_LAYERS 128
#define GM_MAX_ALTUP 8

struct gm_gguf;

/* Gemma3nTextConfig: every field the decoder reads. */
typedef struct gm_text_config {
    int32_t vocab_size;                  /* V */
    int32_t vocab_size_per_layer_input;  /* Vp: ids >= Vp use PLE row 0 (as Gemma3nModel.forward) */
    int32_t hidden_size;                 /* H */
    int32_t hidden_size_per_layer_input; /* P */
    int32_t num_layers;                  /* L */
    int32_t num_heads, num_kv_heads, head_dim;
    int32_t num_kv_shared_layers;
    int32_t sliding_window;
    int32_t altup_num_inputs;            /* K */
    int32_t altup_active_idx;
    int32_t laurel_rank;                 /* r */
    int32_t max_position_embeddings;
    float rms_norm_eps;
    float rope_theta_full;               /* rope_theta: full_attention layers */
    float rope_theta_sliding;            /* rope_local_base_freq: sliding_attention layers */
    float final_logit_softcap;           /* 0 = none */
    float altup_coef_clip;               /* 0 = none */
    bool altup_correct_scale;
    int32_t intermediate_size[GM_MAX_LAYERS];     /* F_l */
    float activation_sparsity[GM_MAX_LAYERS];     /* target sparsity p_l, 0 = dense */
    bool layer_is_sliding[GM_MAX_LAYERS];
    int32_t bos_id, eos_id, pad_id;
    /*
     * GGUF files store the sparsity as its std multiplier icdf_normal(p_l)
     * (llama.cpp's gemma3n.activation_sparsity_scale). When `std_multiplier_stored`,
     * plans use these values as they are instead of recomputing them from
     * activation_sparsity (which then holds Phi(multiplier), for display).
     */
    bool std_multiplier_stored;
    float std_multiplier[GM_MAX_LAYERS];
} gm_text_config;

/* Every KV-shared layer has an earlier layer of its type to read (both loaders check this). */
GM_INTERNAL gm_status gm_config_check_kv_sharing(const gm_text_config *c, const char *path, gm_error *err);

/* Parses config.json text (multimodal with text_config, or text-only). */
GM_INTERNAL gm_status gm_config_parse(const char *json, size_t len, const char *path,
                                      gm_text_config *cfg, gm_error *err);

/*
 * A stored tensor as the binder sees it, whatever the container: shape in
 * PyTorch order ([rows, cols] for matrices), data in the file image.
 */
typedef struct gm_tensor_view {
    const char *name;        /* the stored name, for messages */
    gm_dtype type;
    int ndim;
    int64_t shape[4];
    const void *data;        /* any alignment */
    size_t nbytes;
    bool ggml_order;         /* messages print the shape reversed, as {ne0, ne1} (GGUF) */
} gm_tensor_view;

typedef enum gm_model_format {
    GM_FORMAT_HF_DIR = 0,    /* config.json + *.safetensors (+ tokenizer.json) */
    GM_FORMAT_GGUF           /* one llama.cpp-style .gguf file (gguf_model.c) */
} gm_model_format;

typedef struct gm_layer_weights {
    gm_vector input_norm, post_attn_norm, pre_ffw_norm, post_ffw_norm; /* [H] */
    gm_matrix q_proj;                  /* [nh*hd, H] */
    gm_matrix k_proj, v_proj;          /* [nkv*hd, H]; not bound on KV-shared layers */
    gm_matrix o_proj;                  /* [H, nh*hd] */
    gm_vector q_norm, k_norm;          /* [hd]; k_norm not bound on KV-shared layers */
    gm_matrix gate_proj, up_proj;      /* [F_l, H] */
    gm_matrix down_proj;               /* [H, F_l] */
    /* Gemma3nTextAltUp */
    gm_vector altup_correct_output_scale; /* [H] */
    gm_matrix altup_correction_coefs;  /* [K, K], f32, clipped to +-altup_coef_clip */
    gm_matrix altup_prediction_coefs;  /* [K*K, K], f32 */
    gm_matrix altup_modality_router;   /* [K, H] */
    gm_vector altup_router_norm;       /* [H] */
    /* Gemma3nTextLaurelBlock */
    gm_matrix laurel_left;             /* [r, H] */
    gm_matrix laurel_right;            /* [H, r] */
    gm_vector laurel_post_norm;        /* [H] */
    /* per-layer input path */
    gm_matrix per_layer_input_gate;    /* [P, H] */
    gm_matrix per_layer_projection;    /* [H, P] */
    gm_vector post_per_layer_input_norm; /* [H] */
} gm_layer_weights;

typedef struct gm_text_weights {
    gm_matrix embed_tokens;               /* [V, H]; also the tied LM head */
    gm_matrix embed_tokens_per_layer;     /* [Vp, L*P] */
    gm_matrix per_layer_model_projection; /* [L*P, H] */
    gm_vector per_layer_projection_norm;  /* [P] */
    gm_matrix altup_projections[GM_MAX_ALTUP - 1];         /* [H, H] x (K-1) */
    gm_matrix altup_unembed_projections[GM_MAX_ALTUP - 1]; /* [H, H] x (K-1) */
    gm_vector final_norm;                 /* [H] */
    gm_layer_weights layers[GM_MAX_LAYERS];
} gm_text_weights;

/*
 * Execution plan: which original layers run, in order, and how. The full
 * model is the identity plan; a MatFormer submodel is another plan over
 * the same weights (no copies).
 */
typedef struct gm_plan_layer {
    int32_t src;          /* original layer index: weights, PLE slice */
    int32_t ffn_dim;      /* width actually used: prefix of gate/up rows, down columns */
    float sparsity;       /* activation_sparsity_pattern value, 0 = dense */
    float sparsity_std_multiplier; /* icdf_normal(sparsity), precomputed */
    bool sliding;
    int32_t kv_source;    /* plan index of the layer whose K/V this layer attends to (itself if it owns a cache) */
    float rope_theta;
} gm_plan_layer;

typedef struct gm_plan {
    int32_t n_layers;
    gm_plan_layer layers[GM_MAX_LAYERS];
} gm_plan;

/* The identity plan of the full model (KV-sharing sources as Gemma3nTextAttention). */
GM_INTERNAL void gm_plan_full(const gm_text_config *cfg, gm_plan *plan);

struct gm_model {
    atomic_int refcount;
    gm_text_config cfg;
    gm_text_weights w;
    /* The one mutable setting (gm_model_select_submodel), under plan_lock: */
    pthread_mutex_t plan_lock;
    gm_plan plan;              /* the plan new sessions use */
    gm_submodel_spec submodel; /* ... and the spec it came from (all zero: full model) */
    gm_model_format format;
    gm_st_dir st;              /* mapped checkpoint files (GM_FORMAT_HF_DIR) */
    struct gm_gguf *gguf;      /* the mapped file (GM_FORMAT_GGUF) */
    struct gm_owned *owned;    /* widened/aligned/converted/packed weight copies, freed at close */
    size_t n_owned, cap_owned;
    gm_tokenizer *tokenizer;   /* NULL when the directory (or GGUF file) has none */
    gm_model_params params;
    char *path;
    const char *prefix;        /* tensor name prefix: "model.language_model." or "model." (text-only) */
    int64_t n_params_text, n_params_file;
    gm_dtype main_dtype;
};

GM_INTERNAL void gm_model_retain(gm_model *m);

/*
 * The quantize-at-load policy for one large matrix (see gm_weight_format):
 * the dtype a matrix stored as `stored` with rows of `cols` elements is
 * used in under format f. Rows that are not a whole number of blocks stay
 * as stored. The converter (convert.c) writes what this says, so a GGUF
 * converted at format f computes exactly what the directory loaded at f does.
 */
GM_INTERNAL gm_dtype gm_weight_target(gm_weight_format f, gm_dtype stored, int64_t cols);
GM_INTERNAL bool gm_weight_format_is_quantized(gm_weight_format f); /* Q8_0 or Q4_0 */

/* Encodes n floats as dtype t (block types: n a multiple of 32, dst 2-byte aligned). */
GM_INTERNAL void gm_encode_row(gm_dtype t, const float *x, void *dst, int64_t n);

/* The plan for a session: of `spec` if given (validated), else the model's current one. */
GM_INTERNAL gm_status gm_model_session_plan(gm_model *m, const gm_submodel_spec *spec, gm_plan *plan, gm_error *err);

#endif /* GM_MODEL_H */
