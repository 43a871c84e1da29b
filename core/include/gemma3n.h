/*
 * gemma3n.h - the public C API of the gemma3n inference engine.
 *
 * gemma3n runs Google's Gemma 3n models on a CPU. It loads checkpoints as
 * users have them (a Hugging Face directory with config.json, *.safetensors
 * and tokenizer.json) and computes exactly what the upstream reference
 * (transformers' models/gemma3n) computes.
 *
 * Objects
 * -------
 *   gm_model      weights + config + (optional) tokenizer. Immutable after
 *                 gm_model_open: share one model between any number of
 *                 threads and sessions. Reference counted: a session keeps
 *                 its model alive, so the free order never matters.
 *   gm_session    one conversation: KV cache, scratch buffers, sampler and
 *                 the token history. Single-threaded: use one session from
 *                 one thread at a time (different sessions may run in
 *                 parallel on the same model).
 *   gm_tokenizer  text <-> token ids from a tokenizer.json. Immutable and
 *                 thread-safe. Owned by the model when it comes from one.
 *
 * Errors
 * ------
 * Every fallible call returns a gm_status and, when `err` is not NULL, fills
 * it with the status and a message naming the problem (file, tensor, field,
 * expected and actual values). The library never aborts or exits on bad
 * input, and never prints: there is no global state, no logger to set.
 *
 * Minimal use
 * -----------
 *   gm_error err;
 *   gm_model *model;
 *   if (gm_model_open("gemma-3n-E2B-it", NULL, &model, &err) != GM_OK) {
 *       fprintf(stderr, "%s\n", err.message); return 1;
 *   }
 *   gm_session_params sp = gm_session_default_params();
 *   gm_session *s;
 *   gm_session_new(model, &sp, &s, &err);
 *   int32_t ids[512]; size_t n;
 *   gm_tokenize(gm_model_tokenizer(model), "Hello", 5, GM_TOKENIZE_ADD_BOS,
 *               ids, 512, &n, &err);
 *   gm_session_eval(s, ids, n, &err);
 *   gm_generate_params gp = gm_generate_default_params();
 *   gp.max_tokens = 64;
 *   gm_session_generate_begin(s, &gp, &err);
 *   gm_step step;
 *   while (gm_session_next(s, &step, &err) == GM_OK) {
 *       fwrite(step.text, 1, step.text_len, stdout);
 *       if (step.finish != GM_FINISH_NONE) break;
 *   }
 *   gm_session_free(s);
 *   gm_model_free(model);
 */
#ifndef GEMMA3N_H
#define GEMMA3N_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(GM_SHARED)
#  ifdef GM_BUILD
#    define GM_API __declspec(dllexport)
#  else
#    define GM_API __declspec(dllimport)
#  endif
#elif defined(__GNUC__)
#  define GM_API __attribute__((visibility("default")))
#else
#  define GM_API
#endif

#define GEMMA3N_VERSION_MAJOR 0
#define GEMMA3N_VERSION_MINOR 1
#define GEMMA3N_VERSION_PATCH 0
#define GEMMA3N_VERSION_STRING "0.1.0"

/* ------------------------------------------------------------------ */
/* Status and errors                                                  */
/* ------------------------------------------------------------------ */

typedef enum gm_status {
    GM_OK = 0,
    GM_ERR_IO,               /* a file could not be opened, read or mapped */
    GM_ERR_FORMAT,           /* a file is malformed, truncated or inconsistent */
    GM_ERR_UNSUPPORTED,      /* valid input this engine does not handle (dtype, config value) */
    GM_ERR_ARGUMENT,         /* a caller passed an invalid argument (bad id, empty prompt, bad UTF-8) */
    GM_ERR_NO_TOKENIZER,     /* a text-level call on a model without tokenizer.json */
    GM_ERR_CONTEXT_OVERFLOW, /* the session's context (n_ctx) is full */
    GM_ERR_STATE,            /* call not valid in the object's current state */
    GM_ERR_OUT_OF_MEMORY,    /* an allocation failed */
    GM_ERR_CANCELLED,        /* the caller's cancel flag stopped the work */
    GM_ERR_INTERNAL          /* a broken invariant: a bug, please report */
} gm_status;

#define GM_ERROR_MESSAGE_SIZE 512

typedef struct gm_error {
    gm_status status;
    char message[GM_ERROR_MESSAGE_SIZE]; /* NUL-terminated, human readable */
} gm_error;

/* Short stable name of a status ("ok", "io", "format", ...). Never NULL. */
GM_API const char *gm_status_name(gm_status status);

/* ------------------------------------------------------------------ */
/* Tokenizer                                                          */
/* ------------------------------------------------------------------ */

typedef struct gm_tokenizer gm_tokenizer;

enum {
    GM_TOKENIZE_ADD_BOS = 1u << 0,       /* prepend <bos> (as the HF post-processor does) */
    GM_TOKENIZE_PARSE_SPECIAL = 1u << 1  /* "<start_of_turn>" in the text becomes token 105 */
};

/* Loads a Hugging Face tokenizer.json (BPE with byte fallback, as Gemma 3/3n ship). */
GM_API gm_status gm_tokenizer_open(const char *path, gm_tokenizer **out, gm_error *err);
GM_API void gm_tokenizer_free(gm_tokenizer *tok);

GM_API int32_t gm_tokenizer_vocab_size(const gm_tokenizer *tok);
GM_API int32_t gm_tokenizer_bos_id(const gm_tokenizer *tok);
GM_API int32_t gm_tokenizer_eos_id(const gm_tokenizer *tok);
/* Id of a token written exactly as in the vocabulary ("<end_of_turn>"), or -1. */
GM_API int32_t gm_tokenizer_token_id(const gm_tokenizer *tok, const char *token);

/*
 * Encodes `len` bytes of UTF-8 `text`. Writes at most `cap` ids to `ids`
 * and the full count to `*n_ids`; when the count exceeds `cap` it returns
 * GM_ERR_ARGUMENT with *n_ids set to the needed capacity (call again with a
 * larger buffer). Invalid UTF-8 is an error (GM_ERR_ARGUMENT naming the byte
 * offset), never silently replaced.
 */
GM_API gm_status gm_tokenize(const gm_tokenizer *tok, const char *text, size_t len,
                             unsigned flags, int32_t *ids, size_t cap, size_t *n_ids,
                             gm_error *err);

/*
 * Decodes ids to UTF-8 text as the HF decoder does (U+2581 -> space, byte
 * fallback tokens fused into bytes; byte runs that are not valid UTF-8
 * become U+FFFD). Special tokens are written as their text unless
 * `skip_special` is non-zero. Same buffer contract as gm_tokenize: the
 * needed size (without terminator) goes to *len; the output is
 * NUL-terminated when it fits in `cap` with room for the terminator.
 */
GM_API gm_status gm_detokenize(const gm_tokenizer *tok, const int32_t *ids, size_t n_ids,
                               int skip_special, char *text, size_t cap, size_t *len,
                               gm_error *err);

/*
 * The raw bytes one token stands for after decoding: "▁the" -> " the",
 * "<0x0A>" -> "\n" (a single byte, possibly part of a multi-byte character).
 * Returns a pointer into the tokenizer (valid for its lifetime) and the
 * length in *len; NULL for an out-of-range id.
 */
GM_API const char *gm_token_bytes(const gm_tokenizer *tok, int32_t id, size_t *len);

/* Non-zero when the id is a special/control token (<bos>, <end_of_turn>, ...). */
GM_API int gm_token_is_special(const gm_tokenizer *tok, int32_t id);

/* ------------------------------------------------------------------ */
/* Model                                                              */
/* ------------------------------------------------------------------ */

typedef struct gm_model gm_model;

/*
 * Weight format the matrices are used in. Quantizing at load applies to the
 * large matrices (attention, FFN, LAuReL, per-layer projections, the
 * embedding / tied LM head) whose row length is a multiple of 32; norms
 * and the small AltUp coefficient matrices stay f32; the AltUp projections
 * (1 % of E2B) take the float formats but stay as stored under Q8_0 / Q4_0,
 * because llama.cpp's CPU repacking breaks on them when a GGUF holds them
 * quantized; and the per-layer embedding table
 * (2 G parameters in E2B) stays as stored, mapped and read a row at a
 * time, never made resident.
 */
typedef enum gm_weight_format {
    GM_WEIGHTS_AS_STORED = 0, /* use the file's dtype (BF16/F16/F32/Q8_0/Q4_0) */
    GM_WEIGHTS_F32,
    GM_WEIGHTS_F16,
    GM_WEIGHTS_BF16,
    GM_WEIGHTS_Q8_0,
    GM_WEIGHTS_Q4_0
} gm_weight_format;

/* "stored", "f32", "f16", "bf16", "q8_0", "q4_0" (case-insensitive). */
GM_API gm_status gm_weight_format_parse(const char *name, gm_weight_format *out, gm_error *err);
GM_API const char *gm_weight_format_name(gm_weight_format format);

typedef struct gm_model_params {
    int n_threads;       /* threads for BLAS GEMMs; 0 = number of cores */
    int load_tokenizer;  /* load tokenizer.json when the directory has one (default 1) */
    gm_weight_format weights; /* default GM_WEIGHTS_AS_STORED */
} gm_model_params;

GM_API gm_model_params gm_model_default_params(void);

/*
 * Opens a Hugging Face model directory: config.json (the multimodal
 * Gemma3nForConditionalGeneration layout with text_config, or a text-only
 * gemma3n_text config), model.safetensors or sharded model-*.safetensors
 * with model.safetensors.index.json, and optionally tokenizer.json. The
 * weights are memory-mapped; BF16/F16/F32 tensors are widened to f32 as they
 * are used. `params` may be NULL for defaults.
 *
 * `path` may also be a GGUF file (a regular file starting with "GGUF"), as
 * llama.cpp's convert_hf_to_gguf.py or gm_convert_to_gguf write them for
 * architecture "gemma3n": see the GGUF section below.
 */
GM_API gm_status gm_model_open(const char *path, const gm_model_params *params,
                               gm_model **out, gm_error *err);

/* Drops the caller's reference. Sessions still alive keep the model. */
GM_API void gm_model_free(gm_model *model);

/* The model's tokenizer, or NULL if the directory had no tokenizer.json. */
GM_API const gm_tokenizer *gm_model_tokenizer(const gm_model *model);

/*
 * gm_tokenize / gm_detokenize with the model's tokenizer. A model without
 * tokenizer.json fails with GM_ERR_NO_TOKENIZER ("model has no tokenizer").
 */
GM_API gm_status gm_model_tokenize(const gm_model *model, const char *text, size_t len, unsigned flags,
                                   int32_t *ids, size_t cap, size_t *n_ids, gm_error *err);
GM_API gm_status gm_model_detokenize(const gm_model *model, const int32_t *ids, size_t n_ids,
                                     int skip_special, char *text, size_t cap, size_t *len,
                                     gm_error *err);

typedef struct gm_model_info {
    int32_t vocab_size;
    int32_t hidden_size;
    int32_t num_layers;
    int32_t num_heads;
    int32_t num_kv_heads;
    int32_t head_dim;
    int32_t num_kv_shared_layers;
    int32_t sliding_window;
    int32_t hidden_size_per_layer_input;
    int32_t altup_num_inputs;
    int32_t laurel_rank;
    int32_t bos_id, eos_id, end_of_turn_id; /* -1 when unknown */
    int32_t max_position_embeddings;
    float final_logit_softcap;              /* 0 = none */
    int64_t n_params_text;                  /* parameters of the text decoder (incl. PLE table) */
    int64_t n_params_file;                  /* every tensor in the checkpoint */
    const char *weight_dtype;               /* dominant stored dtype: "BF16", "F16", "F32" */
} gm_model_info;

GM_API void gm_model_get_info(const gm_model *model, gm_model_info *info);

/*
 * Writes a human-readable description (config, parameter counts, tensor
 * dtypes) to `buf`; same size contract as gm_detokenize.
 */
GM_API gm_status gm_model_describe(const gm_model *model, char *buf, size_t cap, size_t *len,
                                   gm_error *err);

/* ------------------------------------------------------------------ */
/* Session                                                            */
/* ------------------------------------------------------------------ */

typedef struct gm_session gm_session;

typedef struct gm_logit_bias {
    int32_t token;
    float bias;          /* added to the logit; -INFINITY bans the token */
} gm_logit_bias;

typedef struct gm_sampler_params {
    float temperature;     /* <= 0: greedy (argmax) */
    int32_t top_k;         /* <= 0: off */
    float top_p;           /* >= 1: off */
    float min_p;           /* <= 0: off */
    float repeat_penalty;  /* 1: off; as llama.cpp / CTRL: divide positive logits, multiply negative */
    int32_t repeat_last_n; /* window of history the penalty sees; -1 = whole context */
    uint64_t seed;         /* same seed + same inputs = same tokens */
    const gm_logit_bias *logit_bias; /* copied by the session */
    size_t n_logit_bias;
} gm_sampler_params;

struct gm_submodel_spec;

/*
 * Element type of the session's K/V cache. GM_KV_F32 (the default) keeps
 * the RMSNormed (K also RoPE'd) rows exactly as computed. GM_KV_F16 stores
 * them as IEEE binary16 (round to nearest even): half the cache memory and
 * half the K/V bytes attention reads, at a relative rounding error of at
 * most 2^-11 per stored element (the rows are RMSNormed, so |K|, |V| ~ 1
 * and far inside binary16's range); logits then differ slightly from f32.
 */
typedef enum gm_kv_type {
    GM_KV_F32 = 0,
    GM_KV_F16 = 1,
} gm_kv_type;

/* "f32" / "f16" for a gm_kv_type; "?" for anything else. */
GM_API const char *gm_kv_type_name(int32_t kv_type);
/* The gm_kv_type named "f32" or "f16" (case-sensitive), or -1 for anything else (also NULL). */
GM_API int32_t gm_kv_type_from_name(const char *name);

typedef struct gm_session_params {
    int32_t n_ctx;             /* maximum positions (prompt + generated); 0 = model maximum, capped at 4096 */
    int32_t keep_all_logits;   /* keep the logits of every position of each gm_session_eval call */
    gm_sampler_params sampler;
    const struct gm_submodel_spec *submodel; /* MatFormer submodel (copied); NULL = the model's current one */
    int32_t kv_type;           /* gm_kv_type of the K/V cache; 0 = GM_KV_F32 (default); others: GM_ERR_ARGUMENT */
} gm_session_params;

GM_API gm_sampler_params gm_sampler_default_params(void);
GM_API gm_session_params gm_session_default_params(void);

GM_API gm_status gm_session_new(gm_model *model, const gm_session_params *params,
                                gm_session **out, gm_error *err);
GM_API void gm_session_free(gm_session *session);

/* Replaces the sampler settings (history and KV cache are kept). */
GM_API gm_status gm_session_set_sampler(gm_session *s, const gm_sampler_params *params,
                                        gm_error *err);

/*
 * Appends tokens to the context and runs them through the model (batched:
 * one GEMM per weight for the whole chunk). Afterwards gm_session_logits
 * returns the logits of the last position. Fails without changing the
 * session on: n == 0 (empty prompt), an id outside [0, vocab), or
 * n_past + n > n_ctx (context overflow).
 */
GM_API gm_status gm_session_eval(gm_session *s, const int32_t *ids, size_t n, gm_error *err);

/* Logits [vocab] of the last evaluated position (softcapped as upstream), or NULL before any eval. */
GM_API const float *gm_session_logits(const gm_session *s);

/*
 * Logits [*n_rows, vocab] of every position of the last gm_session_eval
 * call (row i = position n_past_before + i). NULL unless keep_all_logits.
 */
GM_API const float *gm_session_all_logits(const gm_session *s, size_t *n_rows);

GM_API size_t gm_session_n_past(const gm_session *s);
GM_API size_t gm_session_n_ctx(const gm_session *s);
GM_API const int32_t *gm_session_tokens(const gm_session *s, size_t *n);
GM_API gm_model *gm_session_model(const gm_session *s);

/* Forgets everything: empty context, sampler RNG re-seeded. */
GM_API void gm_session_reset(gm_session *s);

/*
 * Keeps only the first n tokens of the context (n <= n_past), e.g. to
 * reuse a shared prefix between turns. Cheap when the sliding-window ring
 * still holds the positions n needs; otherwise the kept prefix is
 * re-evaluated (exact, slower). Logits afterwards are those of position
 * n-1 (none when n == 0).
 */
GM_API gm_status gm_session_truncate(gm_session *s, size_t n, gm_error *err);

/*
 * Cooperative cancellation: while *flag is non-zero, gm_session_eval stops
 * between batches and gm_session_next before sampling, both returning
 * GM_ERR_CANCELLED. Tokens evaluated before the stop stay in the context
 * (gm_session_n_past tells how many). The flag may be set from any thread
 * or a signal handler; the caller clears it. NULL disables.
 */
GM_API void gm_session_set_cancel_flag(gm_session *s, const volatile int *flag);

/* Samples one token from the current logits with the session's sampler. */
GM_API gm_status gm_session_sample(gm_session *s, int32_t *token, gm_error *err);

/* ---- pull-based generation ---- */

typedef enum gm_finish {
    GM_FINISH_NONE = 0,  /* keep calling gm_session_next */
    GM_FINISH_STOP,      /* end-of-turn / eos token or a stop string */
    GM_FINISH_LENGTH     /* max_tokens reached, or the context is full */
} gm_finish;

#define GM_MAX_STOP_STRINGS 8

typedef struct gm_generate_params {
    int32_t max_tokens;     /* <= 0: until stop or the context is full */
    int32_t ignore_eos;     /* keep going past <eos> / <end_of_turn> */
    const char *stop[GM_MAX_STOP_STRINGS]; /* stop strings (copied); unused entries NULL */
} gm_generate_params;

GM_API gm_generate_params gm_generate_default_params(void);

/*
 * Starts a generation from the current context (which must hold at least
 * one evaluated token). Then call gm_session_next until step.finish is not
 * GM_FINISH_NONE.
 */
GM_API gm_status gm_session_generate_begin(gm_session *s, const gm_generate_params *params,
                                           gm_error *err);

typedef struct gm_step {
    int32_t token;        /* the sampled token, -1 when none was produced (finish only) */
    const char *text;     /* newly completed UTF-8 text (never half a character); valid until the next call */
    size_t text_len;
    gm_finish finish;
    int32_t n_generated;  /* tokens produced so far in this generation */
} gm_step;

/*
 * Samples the next token, appends it to the context and evaluates it, and
 * returns it with the text it completes. Text that may be the beginning of
 * a stop string is held back until it is known not to be; a matched stop
 * string is not returned. Stop tokens (eos, end_of_turn) produce no text.
 * When the context fills up, finish is GM_FINISH_LENGTH.
 */
GM_API gm_status gm_session_next(gm_session *s, gm_step *step, gm_error *err);

/* ------------------------------------------------------------------ */
/* MatFormer submodels                                                */
/* ------------------------------------------------------------------ */

/*
 * Gemma 3n E4B contains E2B and a family of sizes between them: a
 * submodel skips some layers and uses a prefix of each kept layer's FFN
 * (gate/up rows, down columns). Selecting one needs no reload and no
 * copy: it is another execution plan over the same mapped weights, and
 * skipped layers' weights are never touched.
 *
 * Rules (upstream's MatFormer Lab): with first_shared = L -
 * num_kv_shared_layers, the layers whose K/V the shared layers read (the
 * last sliding and the last full layer before first_shared) cannot be
 * skipped; skipped shared layers reduce num_kv_shared_layers; kept layers
 * keep their activation sparsity and are renumbered in order.
 */
#define GM_MAX_SUBMODEL_LAYERS 128

typedef struct gm_submodel_spec {
    int32_t n_layers_to_skip;
    int32_t layers_to_skip[GM_MAX_SUBMODEL_LAYERS];  /* ORIGINAL layer indices */
    /*
     * FFN widths: 0 entries = every kept layer keeps its full width;
     * L entries = one per ORIGINAL layer (entries of skipped layers are
     * ignored, as in slice_X.json); L - n_layers_to_skip entries = one per
     * KEPT layer (as the official table and MatFormer Lab).
     */
    int32_t n_ffn_hidden_dims;
    int32_t ffn_hidden_dims[GM_MAX_SUBMODEL_LAYERS];
} gm_submodel_spec;

/* One row of the official slicing table (gemma3n-slicing-configs), embedded in the library. */
typedef struct gm_submodel_entry {
    const char *name;            /* "Config for official E2B Model", "Main model", ... */
    const char *alias;           /* "E2B", "E4B", "E2.49B-block", ... */
    int32_t num_layers;          /* layers of the resulting model */
    double effective_params_b;   /* the table's "# Effective Params (B)" column */
    const char *mmlu;            /* the table's "MMLU PT accuracy" column */
} gm_submodel_entry;

GM_API size_t gm_submodel_count(void);
/* Row i of the table (entry and/or spec may be NULL). GM_ERR_ARGUMENT past the end. */
GM_API gm_status gm_submodel_get(size_t i, gm_submodel_entry *entry, gm_submodel_spec *spec, gm_error *err);
/*
 * Resolves a table row name ("Config for E2.49B (block-level)"), an alias
 * ("E2B", "E4B", "e2b", "E2.49B-block"), "full", or a path to a .json file
 * with {"layers_to_skip": [...], "ffn_hidden_dims": [...]}.
 */
GM_API gm_status gm_submodel_resolve(const char *name_or_path, gm_submodel_spec *spec, gm_error *err);
/* Parses the JSON form (as slice_X.json / MatFormer Lab). */
GM_API gm_status gm_submodel_parse_json(const char *json, size_t len, gm_submodel_spec *spec, gm_error *err);

/*
 * Validates `spec` against this model (NULL = the full model) and returns
 * its effective parameter count: the text decoder's parameters without
 * the two embedding tables (embed_tokens, embed_tokens_per_layer), with
 * skipped layers removed and FFNs at their chosen widths - the quantity of
 * the table's "Effective Params" column. Errors explain what is wrong
 * (KV-producer layer skipped, width larger than the layer's, index out of
 * range, ...).
 */
GM_API gm_status gm_model_check_submodel(const gm_model *model, const gm_submodel_spec *spec,
                                         int64_t *effective_params, gm_error *err);

/*
 * Sets the submodel that sessions created afterwards use (NULL = full
 * model). Existing sessions keep the submodel they were created with. This
 * is the one mutable setting of a model; it is thread-safe.
 */
GM_API gm_status gm_model_select_submodel(gm_model *model, const gm_submodel_spec *spec, gm_error *err);

/* The submodel new sessions use now (n_layers_to_skip = 0, no widths: the full model). */
GM_API void gm_model_get_submodel(const gm_model *model, gm_submodel_spec *spec);

/*
 * Writes `spec` as a standalone Hugging Face directory `out_dir` (created
 * if needed; files overwritten): config.json with the sliced text_config
 * (num_hidden_layers, num_kv_shared_layers, layer_types,
 * activation_sparsity_pattern, per-layer intermediate_size),
 * model.safetensors with the kept layers renumbered, FFN prefixes and the
 * kept layers' per-layer-embedding slices in the stored dtype, and the
 * tokenizer files. Loading it gives the same numbers as selecting `spec`.
 */
GM_API gm_status gm_model_extract_submodel(const gm_model *model, const gm_submodel_spec *spec,
                                           const char *out_dir, gm_error *err);

/* ------------------------------------------------------------------ */
/* Chat template                                                      */
/* ------------------------------------------------------------------ */

typedef struct gm_chat_message {
    const char *role;     /* "system", "user", "assistant" (written as "model"), or "model" */
    const char *content;  /* UTF-8 */
} gm_chat_message;

/*
 * Formats messages in the Gemma 3n turn format:
 *   <bos><start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n
 *   <start_of_turn>model\n{assistant}<end_of_turn>\n ... <start_of_turn>model\n
 * A system message is merged into the first user turn. With
 * `add_generation_prompt` the text ends with "<start_of_turn>model\n".
 * `add_bos` writes "<bos>" first (tokenize the result with
 * GM_TOKENIZE_PARSE_SPECIAL and without GM_TOKENIZE_ADD_BOS). Same buffer
 * contract as gm_detokenize.
 */
GM_API gm_status gm_chat_format(const gm_chat_message *messages, size_t n_messages,
                                int add_generation_prompt, int add_bos, char *buf, size_t cap,
                                size_t *len, gm_error *err);

/* ------------------------------------------------------------------ */
/* GGUF                                                               */
/* ------------------------------------------------------------------ */

/*
 * Reading. gm_model_open takes a .gguf file of architecture "gemma3n" with
 * the tensor names and metadata keys of llama.cpp (convert_hf_to_gguf.py,
 * llama-arch.cpp). Tensors of type F32, F16, BF16, Q8_0 and Q4_0 are used
 * in place from the mapping (copied only when the file's alignment leaves
 * them misaligned); any other ggml type (K-quants, IQ*, ...) fails with
 * GM_ERR_UNSUPPORTED naming the type and the tensor. The weight format of
 * gm_model_params applies as for a directory. Hyperparameters llama.cpp
 * hard-codes instead of reading (LAuReL rank 64, per-layer input width
 * 256, KV sharing from layer 20, sparsity on the first 10 layers, logit
 * softcap 30, ...) are read from the file when present and take
 * llama.cpp's fixed values when absent: a file from llama.cpp's converter
 * runs with the hyperparameters llama.cpp uses for it, and a file of
 * gm_convert_to_gguf computes exactly what its source directory does
 * (any config). The math is upstream's either way (llama.cpp's own graph
 * differs slightly: sample std in the activation sparsity, fp16-table
 * GELU). The tokenizer comes from the tokenizer.ggml.* keys
 * ("llama" vocabularies) and encodes like the model's tokenizer.json. The
 * padded rows of the per-layer embedding table (ids 262144..262399 of the
 * released models) follow upstream: such ids read the row of id 0.
 */

/*
 * Progress of a long operation: `fraction` in [0, 1] and what is being
 * done (a tensor name, "tokenizer", "done"). Return non-zero to cancel.
 */
typedef int (*gm_progress_fn)(void *user, double fraction, const char *what);

/*
 * Converts the Hugging Face directory `src_dir` (as gm_model_open reads
 * it) into the GGUF file `out_path` (overwritten), with the text
 * decoder's tensors and llama.cpp's names, shapes, metadata keys and
 * tokenizer layout, so llama.cpp loads the file. Every upstream config
 * value is written (some under gemma3n.* keys of ours that llama.cpp
 * ignores), so models of any shape round-trip. `weights` picks the
 * tensor types with the quantize-at-load policy described above
 * gm_weight_format (GM_WEIGHTS_AS_STORED keeps the checkpoint's dtypes;
 * 1-D tensors and the AltUp coefficient and router matrices are F32 in
 * every format, and the per-layer embedding table stays as stored):
 * loading the file computes bit for bit what gm_model_open(src_dir) with
 * the same weight format computes. Tensors are streamed a few MB at a
 * time: the heap stays at a few MB plus the tokenizer. `progress` may be
 * NULL; when it cancels, the call returns GM_ERR_CANCELLED and no file is
 * left. On any failure the partial file is removed.
 */
GM_API gm_status gm_convert_to_gguf(const char *src_dir, const char *out_path, gm_weight_format weights,
                                    gm_progress_fn progress, void *user, gm_error *err);

#ifdef __cplusplus
}
#endif

#endif /* GEMMA3N_H */
