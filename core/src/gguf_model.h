/*
 * gguf_model.h - Gemma 3n models in llama.cpp's GGUF layout: the reader
 * side (gguf_model.c: metadata -> config, tensor names -> views for the
 * binder in model.c, tokenizer.ggml.* -> tokenizer) and what the
 * converter (convert.c) shares with it.
 *
 * Names. llama.cpp names the text decoder's tensors (llama-arch.cpp,
 * LLM_ARCH_GEMMA3N) as below; the upstream (Hugging Face) names are
 * relative to "model.language_model.":
 *
 *   token_embd                embed_tokens                      [V, H]
 *   per_layer_token_embd      embed_tokens_per_layer            [V, L*P] (upstream [Vp, L*P]:
 *                                                                zero rows appended up to V)
 *   per_layer_model_proj      per_layer_model_projection        [L*P, H]
 *   per_layer_proj_norm       per_layer_projection_norm         [P]
 *   altup_proj                altup_projections.{0..K-2}        [K-1, H, H] (stacked)
 *   altup_unembd_proj         altup_unembed_projections.{..}    [K-1, H, H] (stacked)
 *   output_norm               norm                              [H]
 *   blk.N.attn_q / attn_k / attn_v / attn_output   layers.N.self_attn.{q,k,v,o}_proj
 *   blk.N.attn_q_norm / attn_k_norm                layers.N.self_attn.{q,k}_norm
 *   blk.N.attn_norm / post_attention_norm          layers.N.input_layernorm / post_attention_layernorm
 *   blk.N.ffn_norm / post_ffw_norm                 layers.N.{pre,post}_feedforward_layernorm
 *   blk.N.ffn_gate / ffn_up / ffn_down             layers.N.mlp.{gate,up,down}_proj
 *   blk.N.inp_gate / proj / post_norm              layers.N.per_layer_input_gate / per_layer_projection /
 *                                                  post_per_layer_input_norm
 *   blk.N.altup_correct_coef / altup_predict_coef  layers.N.altup.{correction,prediction}_coefs
 *   blk.N.altup_correct_scale                      layers.N.altup.correct_output_scale
 *   blk.N.altup_router / altup_router_norm         layers.N.altup.modality_router / router_norm
 *   blk.N.laurel_l / laurel_r / laurel_post_norm   layers.N.laurel.linear_left / linear_right /
 *                                                  post_laurel_norm
 *
 * every name with the suffix ".weight". Shapes above are in PyTorch order;
 * GGUF stores ggml's ne[] (reversed: ne[0] = row length), and messages
 * about GGUF tensors print that order, as {ne0, ne1, ...}.
 */
#ifndef GM_GGUF_MODEL_H
#define GM_GGUF_MODEL_H

#include "gguf.h"
#include "model.h"
#include "tokenizer.h"

/* llama.cpp's token types (tokenizer.ggml.token_type; llama_token_type / gguf-py TokenType). */
enum {
    GM_GGUF_TOKEN_NORMAL = 1,
    GM_GGUF_TOKEN_UNKNOWN = 2,
    GM_GGUF_TOKEN_CONTROL = 3,
    GM_GGUF_TOKEN_USER_DEFINED = 4,
    GM_GGUF_TOKEN_UNUSED = 5,
    GM_GGUF_TOKEN_BYTE = 6
};

/*
 * A "llama" (SentencePiece) vocabulary as the tokenizer.ggml.* keys carry
 * it. Token strings are as llama.cpp stores them: user-defined tokens with
 * U+2581 turned into spaces (convert_hf_to_gguf's "pre-normalize
 * user-defined spaces").
 */
typedef struct gm_gguf_vocab {
    int32_t n_tokens;
    const gm_str *tokens;    /* [n_tokens] */
    const float *scores;     /* [n_tokens] or NULL */
    const int32_t *types;    /* [n_tokens] GM_GGUF_TOKEN_*, or NULL (all normal) */
    const gm_str *merges;    /* 2 * n_merges strings (left, right), or NULL: derived from scores */
    size_t n_merges;
    int32_t bos_id, eos_id, unk_id; /* -1: none */
    bool add_space_prefix;
} gm_gguf_vocab;

/*
 * Builds the tokenizer a Hugging Face tokenizer.json of the same model
 * gives (Gemma's: normalizer Replace(" " -> U+2581), BPE with byte
 * fallback, control and user-defined tokens as added tokens matched before
 * BPE, decoder Replace + ByteFallback + Fuse). The converter builds the
 * same from what it writes, so both sides agree by construction.
 */
GM_INTERNAL gm_status gm_gguf_vocab_build(const gm_gguf_vocab *v, const char *what, gm_tokenizer **out,
                                          gm_error *err);

/* True when `path` is a regular file starting with the GGUF magic. */
GM_INTERNAL bool gm_gguf_model_sniff(const char *path);

/*
 * Opens m->path as a GGUF file: m->gguf, m->cfg from the gemma3n.* keys,
 * the stored AltUp/sparsity details (see gguf_model.c for the keys, their
 * llama.cpp defaults and our extensions). Tensors are bound afterwards by
 * model.c through gm_gguf_model_find; the tokenizer by
 * gm_gguf_model_tokenizer.
 */
GM_INTERNAL gm_status gm_gguf_model_load(gm_model *m, gm_error *err);

/*
 * The stored tensor that plays the upstream tensor `local` (a name relative
 * to "model.language_model.", e.g. "layers.3.mlp.up_proj.weight"), as a
 * view in upstream shape: a slice for the stacked AltUp projections, the
 * first Vp rows of the padded per-layer table. GM_ERR_FORMAT when missing
 * or when the stored shape does not fit.
 */
GM_INTERNAL gm_status gm_gguf_model_find(const gm_model *m, const char *local, gm_tensor_view *out,
                                         gm_error *err);

/* The tokenizer from tokenizer.ggml.* into m->tokenizer (stays NULL when the file has none). */
GM_INTERNAL gm_status gm_gguf_model_tokenizer(gm_model *m, gm_error *err);

/*
 * The GGUF name of upstream tensor `local` ("layers.3.mlp.up_proj.weight"
 * -> "blk.3.ffn_up.weight"). For "altup_projections.i.weight" and
 * "altup_unembed_projections.i.weight" it is the stacked tensor and
 * *slice = i; else *slice = -1. False for names with no GGUF counterpart.
 */
GM_INTERNAL bool gm_gguf_tensor_name(const char *local, char *buf, size_t cap, int *slice);

/*
 * The upstream local name of GGUF tensor `name` ("blk.3.ffn_up.weight" ->
 * "layers.3.mlp.up_proj.weight"; "altup_proj.weight" ->
 * "altup_projections.weight"), for parameter counting. False when the
 * name is not a Gemma 3n tensor.
 */
GM_INTERNAL bool gm_gguf_model_upstream_name(const char *name, char *buf, size_t cap);

/* "GGUF v3, architecture gemma3n, alignment 32, ... tensor types ..." lines for gm_model_describe. */
GM_INTERNAL void gm_gguf_model_describe(const gm_model *m, gm_buf *b);

#endif /* GM_GGUF_MODEL_H */
