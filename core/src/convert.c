/*
 * convert.c - gm_convert_to_gguf: a Hugging Face Gemma 3n directory to one
 * GGUF file, as llama.cpp's convert_hf_to_gguf.py (Gemma3NModel) writes it
 * and llama.cpp loads it, plus the upstream config fields llama.cpp has no
 * key for (gguf_model.c lists them), so that any config round-trips.
 *
 * What llama.cpp's converter does and we do the same way:
 *   - the text decoder only (audio / vision towers are left out), tensor
 *     names and shapes of gguf_model.h;
 *   - altup_projections.{0,1,2} and altup_unembed_projections.{..} stacked
 *     into one [K-1, H, H] tensor each;
 *   - embed_tokens_per_layer padded with zero rows to vocab_size (262144 ->
 *     262400 for the released checkpoints); embed_tokens is not trimmed
 *     (Gemma3NModel handles it before Gemma3Model's OOV trimming);
 *   - no norm shift (Gemma 3n's RMSNorm multiplies by w, not 1 + w);
 *   - upstream "*_scale" tensors get ".weight";
 *   - 1-D tensors, norms and the AltUp coefficient matrices stay F32;
 *   - the tokenizer as a "llama" (SentencePiece) vocabulary: tokens padded
 *     to vocab_size with "[PAD<id>]" (UNUSED, score -10000), token types
 *     (CONTROL for special added tokens, USER_DEFINED with U+2581 written
 *     as spaces for the other added tokens, BYTE, NORMAL), special ids and
 *     add_bos/add_eos from tokenizer_config.json (config.json as fallback),
 *     the chat template, add_space_prefix false.
 *
 * What differs:
 *   - the weight format follows our quantize-at-load policy (gm_weight_format,
 *     gm_weight_target): large matrices whose rows are whole blocks get the
 *     format, the per-layer table stays as stored. Loading the GGUF gives
 *     bit for bit what loading the directory with the same format gives.
 *   - llama.cpp reads scores from tokenizer.model; we start from
 *     tokenizer.json, which has merges instead. Scores are synthesized so
 *     that ranking every split of every token by its score (transformers'
 *     generate_merges, which made Gemma's merge list, and what our reader
 *     does) gives back the merge list exactly; this is verified by
 *     rebuilding the tokenizer the reader will build, and when it does not
 *     hold the merges are written too (tokenizer.ggml.merges, which
 *     llama.cpp ignores for "llama" vocabularies).
 *
 * Memory: tensors are streamed 4 MB at a time from the mapped shards into
 * the file (gm_gguf_writer's data callbacks), and the mapped pages of each
 * piece are released once it is written, so converting a 10 GB checkpoint
 * needs a few MB of heap besides the tokenizer.
 */
#include "gguf_model.h"
#include "json.h"
#include "safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#if defined(__linux__)
#  include <sys/mman.h>
#  include <unistd.h>
#endif

#define CHUNK_BYTES ((size_t)4 << 20)
#define PAD_SCORE (-10000.0f)  /* llama.cpp's score for padding slots */
#define ADDED_SCORE (-1000.0f) /* ... and for tokenizer_config's added tokens */

/* How a tensor is written. */
typedef enum kind {
    K_VECTOR,  /* 1-D: F32 */
    K_SMALL,   /* AltUp coefficient matrices and router: F32 (as bind_f32_matrix) */
    K_MATRIX,  /* the weight format (gm_weight_target) */
    K_TABLE,   /* the per-layer embedding table: as stored, zero rows up to vocab_size */
    K_KEEP     /* the AltUp projections: as stored under Q8_0 / Q4_0 (see gm_weight_format) */
} kind;

struct converter;

typedef struct out_tensor {
    struct converter *cv;
    char name[GM_GGUF_MAX_NAME + 1];
    gm_dtype type;                              /* as written */
    int n_dims;
    int64_t ne[3];                              /* ggml order */
    const gm_st_tensor *src[GM_MAX_ALTUP - 1];  /* stacked along the outermost dimension */
    int n_src;
    int64_t rows, cols;                         /* of each source (1-D: one row) */
    int64_t pad_rows;                           /* zero rows after the sources */
} out_tensor;

typedef struct converter {
    const char *dir;
    gm_text_config cfg;
    gm_st_dir st;
    const char *prefix;            /* "model.language_model." or "model." */
    gm_weight_format format;
    out_tensor *t;
    size_t n, cap;
    uint64_t total, done;          /* source bytes, for progress */
    gm_progress_fn progress;
    void *user;
    float *row;                    /* one row widened */
    uint8_t *chunk;                /* encoded rows waiting to be written */
    size_t chunk_len, chunk_cap;
    gm_error *err;
} converter;

static gm_dtype dtype_of(gm_st_dtype t) {
    return t == GM_ST_F32 ? GM_DTYPE_F32 : t == GM_ST_F16 ? GM_DTYPE_F16 : GM_DTYPE_BF16;
}

static int32_t ggml_type_of(gm_dtype t) {
    static const int32_t map[] = {GM_GGML_F32, GM_GGML_F16, GM_GGML_BF16, GM_GGML_Q8_0, GM_GGML_Q4_0};
    return map[t];
}

/* ---- the tensor list ---- */

static gm_status find_source(converter *cv, const char *local, int ndim, int64_t d0, int64_t d1, bool optional,
                             const gm_st_tensor **out) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", cv->prefix, local);
    const gm_st_tensor *t = *out = gm_st_find(&cv->st, full);
    if (!t) return optional ? GM_OK : gm_fail(cv->err, GM_ERR_FORMAT, "%s: missing tensor '%s'", cv->dir, full);
    if (t->dtype != GM_ST_F32 && t->dtype != GM_ST_F16 && t->dtype != GM_ST_BF16)
        return gm_fail(cv->err, GM_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (supported: BF16, F16, F32)",
                       cv->dir, full, gm_st_dtype_name(t->dtype));
    if (t->ndim == ndim && t->shape[0] == d0 && (ndim == 1 || t->shape[1] == d1)) return GM_OK;
    char got[128];
    size_t o = (size_t)snprintf(got, sizeof got, "[");
    for (int i = 0; i < t->ndim && o < sizeof got; i++)
        o += (size_t)snprintf(got + o, sizeof got - o, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (o < sizeof got) snprintf(got + o, sizeof got - o, "]");
    if (ndim == 1)
        return gm_fail(cv->err, GM_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected [%lld]", cv->dir, full, got,
                       (long long)d0);
    return gm_fail(cv->err, GM_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected [%lld, %lld]", cv->dir, full, got,
                   (long long)d0, (long long)d1);
}

static out_tensor *new_tensor(converter *cv) {
    if (cv->n == cv->cap) {
        size_t cap = cv->cap ? cv->cap * 2 : 512;
        out_tensor *t = gm_realloc(cv->t, cap * sizeof *t);
        if (!t) return NULL;
        cv->t = t;
        cv->cap = cap;
    }
    out_tensor *o = &cv->t[cv->n++];
    memset(o, 0, sizeof *o);
    o->cv = cv;
    return o;
}

/* The written type of a tensor of `k` stored as `stored` with rows of `cols` elements. */
static gm_dtype written_type(const converter *cv, kind k, gm_dtype stored, int64_t cols) {
    switch (k) {
    case K_VECTOR: case K_SMALL: return GM_DTYPE_F32;
    case K_TABLE: return stored;
    case K_KEEP: return gm_weight_format_is_quantized(cv->format) ? stored : gm_weight_target(cv->format, stored, cols);
    default: return gm_weight_target(cv->format, stored, cols);
    }
}

/*
 * Adds upstream tensor(s) `local` of shape [d0] or [d0, d1]. With n_stack
 * > 0, `local` is a printf pattern with the index ("altup_projections.%d.weight")
 * and the sources are stacked. Missing optional tensors add nothing.
 */
static gm_status add(converter *cv, const char *local, kind k, int64_t d0, int64_t d1, bool optional, int n_stack) {
    int ndim = k == K_VECTOR ? 1 : 2;
    const gm_st_tensor *src[GM_MAX_ALTUP - 1] = {0};
    char name[160], gguf[GM_GGUF_MAX_NAME + 1];
    int slice, n_src = n_stack ? n_stack : 1;
    for (int i = 0; i < n_src; i++) {
        if (n_stack) snprintf(name, sizeof name, local, i);
        else snprintf(name, sizeof name, "%s", local);
        gm_status st = find_source(cv, name, ndim, d0, d1, optional, &src[i]);
        if (st != GM_OK) return st;
        if (!src[i]) return GM_OK;
    }
    if (!gm_gguf_tensor_name(name, gguf, sizeof gguf, &slice))
        return gm_fail(cv->err, GM_ERR_INTERNAL, "no GGUF name for '%s'", name);
    out_tensor *o = new_tensor(cv);
    if (!o) return gm_fail(cv->err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    memcpy(o->name, gguf, sizeof gguf);
    memcpy(o->src, src, sizeof src);
    o->n_src = n_src;
    o->rows = ndim == 1 ? 1 : d0;
    o->cols = ndim == 1 ? d0 : d1;
    o->type = written_type(cv, k, dtype_of(src[0]->dtype), o->cols);
    if (k == K_TABLE) o->pad_rows = cv->cfg.vocab_size - d0;
    o->ne[0] = o->cols;
    o->n_dims = n_stack ? 3 : ndim;
    if (ndim == 2) o->ne[1] = o->rows + o->pad_rows;
    if (n_stack) o->ne[2] = n_stack;
    for (int i = 0; i < n_src; i++) cv->total += src[i]->nbytes;
    return GM_OK;
}

static gm_status add_layer(converter *cv, int l) {
    const gm_text_config *c = &cv->cfg;
    int64_t H = c->hidden_size, q = (int64_t)c->num_heads * c->head_dim, kv = (int64_t)c->num_kv_heads * c->head_dim;
    int64_t F = c->intermediate_size[l], P = c->hidden_size_per_layer_input, K = c->altup_num_inputs;
    bool shared = l >= c->num_layers - c->num_kv_shared_layers; /* k/v unused: written when stored */
    static const struct { const char *name; kind k; int d0, d1; bool shared_optional; } spec[] = {
        /* d0/d1: 0 H, 1 q, 2 kv, 3 F, 4 P, 5 K, 6 K*K, 7 r, 8 hd */
        {"input_layernorm.weight", K_VECTOR, 0, 0, false},
        {"self_attn.q_proj.weight", K_MATRIX, 1, 0, false},
        {"self_attn.k_proj.weight", K_MATRIX, 2, 0, true},
        {"self_attn.v_proj.weight", K_MATRIX, 2, 0, true},
        {"self_attn.o_proj.weight", K_MATRIX, 0, 1, false},
        {"self_attn.q_norm.weight", K_VECTOR, 8, 0, false},
        {"self_attn.k_norm.weight", K_VECTOR, 8, 0, true},
        {"post_attention_layernorm.weight", K_VECTOR, 0, 0, false},
        {"pre_feedforward_layernorm.weight", K_VECTOR, 0, 0, false},
        {"mlp.gate_proj.weight", K_MATRIX, 3, 0, false},
        {"mlp.up_proj.weight", K_MATRIX, 3, 0, false},
        {"mlp.down_proj.weight", K_MATRIX, 0, 3, false},
        {"post_feedforward_layernorm.weight", K_VECTOR, 0, 0, false},
        {"per_layer_input_gate.weight", K_MATRIX, 4, 0, false},
        {"per_layer_projection.weight", K_MATRIX, 0, 4, false},
        {"post_per_layer_input_norm.weight", K_VECTOR, 0, 0, false},
        {"altup.correction_coefs.weight", K_SMALL, 5, 5, false},
        {"altup.correct_output_scale", K_VECTOR, 0, 0, false},
        {"altup.prediction_coefs.weight", K_SMALL, 6, 5, false},
        {"altup.modality_router.weight", K_SMALL, 5, 0, false},
        {"altup.router_norm.weight", K_VECTOR, 0, 0, false},
        {"laurel.linear_left.weight", K_MATRIX, 7, 0, false},
        {"laurel.linear_right.weight", K_MATRIX, 0, 7, false},
        {"laurel.post_laurel_norm.weight", K_VECTOR, 0, 0, false},
    };
    int64_t dim[] = {H, q, kv, F, P, K, K * K, c->laurel_rank, c->head_dim};
    for (size_t i = 0; i < GM_ARRAY_LEN(spec); i++) {
        char local[128];
        snprintf(local, sizeof local, "layers.%d.%s", l, spec[i].name);
        gm_status st = add(cv, local, spec[i].k, dim[spec[i].d0], dim[spec[i].d1], shared && spec[i].shared_optional, 0);
        if (st != GM_OK) return st;
    }
    return GM_OK;
}

static gm_status plan_tensors(converter *cv) {
    const gm_text_config *c = &cv->cfg;
    int64_t H = c->hidden_size, P = c->hidden_size_per_layer_input, LP = (int64_t)c->num_layers * P;
    int K1 = c->altup_num_inputs - 1;
    gm_status st;
    if ((st = add(cv, "embed_tokens.weight", K_MATRIX, c->vocab_size, H, false, 0))) return st;
    if ((st = add(cv, "embed_tokens_per_layer.weight", K_TABLE, c->vocab_size_per_layer_input, LP, false, 0))) return st;
    if ((st = add(cv, "per_layer_model_projection.weight", K_MATRIX, LP, H, false, 0))) return st;
    if ((st = add(cv, "per_layer_projection_norm.weight", K_VECTOR, P, 0, false, 0))) return st;
    if (K1 > 0 && (st = add(cv, "altup_projections.%d.weight", K_KEEP, H, H, false, K1))) return st;
    if (K1 > 0 && (st = add(cv, "altup_unembed_projections.%d.weight", K_KEEP, H, H, false, K1))) return st;
    if ((st = add(cv, "norm.weight", K_VECTOR, H, 0, false, 0))) return st;
    for (int l = 0; l < c->num_layers; l++)
        if ((st = add_layer(cv, l))) return st;
    return GM_OK;
}

/* ---- tensor data ---- */

/*
 * Drops the mapped pages of source bytes [p, p + n) once written: they are
 * clean file pages, so this only keeps the resident set small (a page
 * shared with bytes still to come is simply read again).
 */
static void release(const void *p, size_t n) {
#if defined(__linux__) && defined(MADV_DONTNEED)
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || n == 0) return;
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(page - 1), b = (uintptr_t)p + n;
    b = (b + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
    madvise((void *)a, b - a, MADV_DONTNEED);
#else
    (void)p, (void)n;
#endif
}

static gm_status report(converter *cv, const char *what, gm_error *err) {
    if (cv->progress && cv->progress(cv->user, cv->total ? (double)cv->done / (double)cv->total : 1.0, what))
        return gm_fail(err, GM_ERR_CANCELLED, "conversion cancelled");
    return GM_OK;
}

static gm_status flush(converter *cv, gm_gguf_sink *sink, gm_error *err) {
    gm_status st = gm_gguf_sink_write(sink, cv->chunk, cv->chunk_len, err);
    cv->chunk_len = 0;
    return st;
}

/* Widens, encodes and writes n rows at src (each `cols` elements of `from`); src NULL: n rows of zeros. */
static gm_status encode_rows(converter *cv, const out_tensor *o, gm_dtype from, const uint8_t *src, int64_t n,
                             gm_gguf_sink *sink, gm_error *err) {
    size_t in_row = gm_dtype_row_bytes(from, o->cols), out_row = gm_dtype_row_bytes(o->type, o->cols);
    gm_status st = GM_OK;
    for (int64_t r = 0; r < n && st == GM_OK; r++) {
        if (cv->chunk_len + out_row > cv->chunk_cap) st = flush(cv, sink, err);
        if (src) gm_to_f32(from, src + (size_t)r * in_row, cv->row, (size_t)o->cols);
        else memset(cv->row, 0, (size_t)o->cols * sizeof(float));
        gm_encode_row(o->type, cv->row, cv->chunk + cv->chunk_len, o->cols);
        cv->chunk_len += out_row;
    }
    if (st == GM_OK) st = flush(cv, sink, err);
    return st;
}

static gm_status write_source(converter *cv, const out_tensor *o, const gm_st_tensor *t, gm_gguf_sink *sink,
                              gm_error *err) {
    gm_dtype from = dtype_of(t->dtype);
    size_t in_row = gm_dtype_row_bytes(from, o->cols);
    int64_t rows_per_chunk = GM_MAX(1, (int64_t)(CHUNK_BYTES / GM_MAX(in_row, 1)));
    gm_status st = GM_OK;
    for (int64_t r = 0; r < o->rows && st == GM_OK; r += rows_per_chunk) {
        int64_t n = GM_MIN(rows_per_chunk, o->rows - r);
        const uint8_t *p = t->data + (size_t)r * in_row;
        st = o->type == from ? gm_gguf_sink_write(sink, p, (size_t)n * in_row, err) /* as stored: raw bytes */
                             : encode_rows(cv, o, from, p, n, sink, err);
        release(p, (size_t)n * in_row);
        cv->done += (uint64_t)n * in_row;
        if (st == GM_OK) st = report(cv, o->name, err);
    }
    return st;
}

/* gm_gguf_data_fn: the bytes of one output tensor, pulled by the writer in file order. */
static gm_status write_data(void *user, const char *name, gm_gguf_sink *sink, gm_error *err) {
    const out_tensor *o = user;
    converter *cv = o->cv;
    (void)name;
    gm_status st = GM_OK;
    for (int i = 0; i < o->n_src && st == GM_OK; i++) st = write_source(cv, o, o->src[i], sink, err);
    if (st == GM_OK && o->pad_rows > 0) st = encode_rows(cv, o, o->type, NULL, o->pad_rows, sink, err);
    return st;
}

/* ---- metadata ---- */

#define TRY(call) do { gm_status st_ = (call); if (st_ != GM_OK) return st_; } while (0)

/* llama_ftype of the file: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q4_0 2, MOSTLY_Q8_0 7, MOSTLY_BF16 32. */
static uint32_t file_type(const converter *cv) {
    static const uint32_t by_dtype[] = {0, 1, 32, 7, 2};                /* gm_dtype order */
    static const uint32_t by_format[] = {0, 0, 1, 32, 7, 2};            /* gm_weight_format order */
    return cv->format == GM_WEIGHTS_AS_STORED ? by_dtype[dtype_of(cv->t[0].src[0]->dtype)] : by_format[cv->format];
}

static gm_status write_hparams(converter *cv, gm_gguf_writer *w, gm_error *err) {
    const gm_text_config *c = &cv->cfg;
    int L = c->num_layers;
    gm_plan plan;
    gm_plan_full(c, &plan);
    int32_t ffn[GM_MAX_LAYERS];
    float scale[GM_MAX_LAYERS];
    bool swa[GM_MAX_LAYERS];
    for (int l = 0; l < L; l++) {
        ffn[l] = c->intermediate_size[l];
        /* torch's Normal(0,1).icdf(0) = -inf marks a dense layer, as llama.cpp's converter writes it */
        scale[l] = c->activation_sparsity[l] > 0 ? plan.layers[l].sparsity_std_multiplier : -INFINITY;
        swa[l] = c->layer_is_sliding[l];
    }
    /* llama.cpp's keys, with gguf-py's value types (u32 counts, f32 reals, i32/f32/bool arrays) */
    TRY(gm_gguf_writer_set_u32(w, "gemma3n.context_length", (uint32_t)c->max_position_embeddings, err));
    TRY(gm_gguf_writer_set_u32(w, "gemma3n.embedding_length", (uint32_t)c->hidden_size, err));
    TRY(gm_gguf_writer_set_u32(w, "gemma3n.block_count", (uint32_t)L, err));
    TRY(gm_gguf_writer_set_arr(w, "gemma3n.feed_forward_length", GM_GGUF_I32, ffn, (uint64_t)L, err));
    TRY(gm_gguf_writer_set_u32(w, "gemma3n.attention.head_count", (uint32_t)c->num_heads, err));
    TRY(gm_gguf_writer_set_u32(w, "gemma3n.attention.head_count_kv", (uint32_t)c->num_kv_heads, err));
    TRY(gm_gguf_writer_set_f32(w, "gemma3n.rope.freq_base", c->rope_theta_full, err));
    TRY(gm_gguf_writer_set_f32(w, "gemma3n.rope.freq_base_swa", c->rope_theta_sliding, err));
    TRY(gm_gguf_writer_set_f32(w, "gemma3n.attention.layer_norm_rms_epsilon", c->rms_norm_eps, err));
    TRY(gm_gguf_writer_set_u32(w, "gemma3n.attention.key_length", (uint32_t)c->head_dim, err));
    TRY(gm_gguf_writer_set_u32(w, "gemma3n.attention.value_length", (uint32_t)c->head_dim, err));
    TRY(gm_gguf_writer_set_f32(w, "gemma3n.final_logit_softcapping", c->final_logit_softcap, err));
    TRY(gm_gguf_writer_set_u32(w, "gemma3n.attention.sliding_window", (uint32_t)c->sliding_window, err));
    TRY(gm_gguf_writer_set_u32(w, "gemma3n.altup.active_idx", (uint32_t)c->altup_active_idx, err));
    TRY(gm_gguf_writer_set_u32(w, "gemma3n.altup.num_inputs", (uint32_t)c->altup_num_inputs, err));
    TRY(gm_gguf_writer_set_u32(w, "gemma3n.embedding_length_per_layer_input", (uint32_t)c->hidden_size_per_layer_input, err));
    TRY(gm_gguf_writer_set_u32(w, "gemma3n.attention.shared_kv_layers", (uint32_t)c->num_kv_shared_layers, err));
    TRY(gm_gguf_writer_set_arr(w, "gemma3n.activation_sparsity_scale", GM_GGUF_F32, scale, (uint64_t)L, err));
    TRY(gm_gguf_writer_set_arr(w, "gemma3n.attention.sliding_window_pattern", GM_GGUF_BOOL, swa, (uint64_t)L, err));
    /* ours (gguf_model.c): upstream fields llama.cpp hard-codes or does not have */
    TRY(gm_gguf_writer_set_u32(w, "gemma3n.vocab_size", (uint32_t)c->vocab_size, err));
    TRY(gm_gguf_writer_set_u32(w, "gemma3n.vocab_size_per_layer_input", (uint32_t)c->vocab_size_per_layer_input, err));
    TRY(gm_gguf_writer_set_u32(w, "gemma3n.laurel_rank", (uint32_t)c->laurel_rank, err));
    TRY(gm_gguf_writer_set_arr(w, "gemma3n.activation_sparsity_pattern", GM_GGUF_F32, c->activation_sparsity,
                               (uint64_t)L, err));
    TRY(gm_gguf_writer_set_f32(w, "gemma3n.altup.coef_clip", c->altup_coef_clip, err));
    TRY(gm_gguf_writer_set_bool(w, "gemma3n.altup.correct_scale", c->altup_correct_scale, err));
    return GM_OK;
}

static const char *base_name(const char *path, char *buf, size_t cap) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && path[s - 1] != '/') s--;
    snprintf(buf, cap, "%.*s", (int)GM_MIN(n - s, cap - 1), path + s);
    return buf;
}

static gm_status write_general(converter *cv, gm_gguf_writer *w, gm_error *err) {
    char name[256];
    TRY(gm_gguf_writer_set_str(w, "general.architecture", "gemma3n", err));
    TRY(gm_gguf_writer_set_str(w, "general.type", "model", err));
    TRY(gm_gguf_writer_set_str(w, "general.name", base_name(cv->dir, name, sizeof name), err));
    TRY(gm_gguf_writer_set_u32(w, "general.quantization_version", 2, err)); /* GGML_QNT_VERSION */
    return gm_gguf_writer_set_u32(w, "general.file_type", file_type(cv), err);
}

/* ---- tokenizer ---- */

typedef struct vocab_out {
    int32_t n;              /* = vocab_size */
    gm_buf arena;           /* token strings as written */
    size_t *off;            /* [n + 1] */
    float *scores;
    int32_t *types;
    gm_str *tokens;         /* views into arena (after it stops growing) */
    const char **ptrs;
    size_t *lens;
} vocab_out;

static void vocab_free(vocab_out *v) {
    gm_buf_free(&v->arena);
    gm_free(v->off);
    gm_free(v->scores);
    gm_free(v->types);
    gm_free(v->tokens);
    gm_free((void *)v->ptrs);
    gm_free(v->lens);
}

static gm_str model_string(const gm_tokenizer *tok, int32_t id) {
    const gm_tok_entry *e = &tok->entry[id];
    if (e->model_off != GM_TOK_NONE) return (gm_str){tok->arena + e->model_off, e->model_len};
    return (gm_str){tok->arena + e->text_off, e->text_len};
}

/* Appends the token as llama.cpp writes it: user-defined tokens with U+2581 as spaces. */
static bool put_token(gm_buf *b, gm_str s, bool user_defined) {
    for (size_t i = 0; i < s.len;) {
        if (user_defined && i + 3 <= s.len && memcmp(s.ptr + i, "\xE2\x96\x81", 3) == 0) {
            if (!gm_buf_append(b, " ", 1)) return false;
            i += 3;
        } else {
            if (!gm_buf_append(b, s.ptr + i, 1)) return false;
            i++;
        }
    }
    return true;
}

typedef struct piece_rank { int32_t id; uint32_t lo, hi; } piece_rank;

static int cmp_lo(const void *a, const void *b) {
    const piece_rank *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/*
 * Scores that give back the merge list: the pieces merges produce, in the
 * order of their first merge, are cut into blocks of pieces whose merge
 * rank ranges overlap (their merges interleave, so they must share a
 * score); block b gets score -b. Ranking every split by (score, left
 * length, right length) then reproduces the ranks (checked afterwards).
 */
static bool merge_scores(const gm_tokenizer *tok, float *scores, bool *has_merge) {
    piece_rank *p = gm_malloc((size_t)GM_MAX(tok->n_vocab, 1) * sizeof *p);
    if (!p) return false;
    for (int32_t i = 0; i < tok->n_vocab; i++) p[i] = (piece_rank){i, UINT32_MAX, 0};
    for (uint32_t s = 0; tok->merges && s <= tok->merge_mask; s++) {
        const gm_tok_merge_slot *m = &tok->merges[s];
        if (m->left == UINT32_MAX || m->merged < 0 || m->merged >= tok->n_vocab) continue;
        piece_rank *r = &p[m->merged];
        r->lo = GM_MIN(r->lo, m->rank);
        r->hi = GM_MAX(r->hi, m->rank);
    }
    size_t n = 0;
    for (int32_t i = 0; i < tok->n_vocab; i++)
        if (p[i].lo != UINT32_MAX) p[n++] = p[i];
    qsort(p, n, sizeof *p, cmp_lo);
    int64_t block = -1, hi = -1;
    for (size_t i = 0; i < n; i++) {
        if ((int64_t)p[i].lo > hi) block++;
        hi = GM_MAX(hi, (int64_t)p[i].hi);
        scores[p[i].id] = -(float)block;
        has_merge[p[i].id] = true;
    }
    gm_free(p);
    return true;
}

/* The id -> (string, score, type) table llama.cpp's "llama" vocabulary holds, padded to n slots. */
static gm_status vocab_from(const gm_tokenizer *tok, int32_t n, vocab_out *v, gm_error *err) {
    v->n = n;
    v->off = gm_calloc((size_t)n + 1, sizeof *v->off);
    v->scores = gm_calloc((size_t)n, sizeof *v->scores);
    v->types = gm_calloc((size_t)n, sizeof *v->types);
    bool *has_merge = gm_calloc((size_t)n, sizeof *has_merge);
    bool ok = v->off && v->scores && v->types && has_merge && merge_scores(tok, v->scores, has_merge);
    for (int32_t id = 0; ok && id < n; id++) {
        v->off[id] = v->arena.len;
        uint32_t f = id < tok->n_vocab ? tok->entry[id].flags : 0;
        int32_t type;
        if (!(f & GM_TOKF_EXISTS)) {
            char pad[32];
            snprintf(pad, sizeof pad, "[PAD%d]", id);
            ok = gm_buf_append(&v->arena, pad, strlen(pad));
            v->types[id] = GM_GGUF_TOKEN_UNUSED;
            v->scores[id] = PAD_SCORE;
            continue;
        }
        if (f & GM_TOKF_SPECIAL) type = GM_GGUF_TOKEN_CONTROL;
        else if (f & GM_TOKF_ADDED) type = GM_GGUF_TOKEN_USER_DEFINED;
        else if (id == tok->unk_id) type = GM_GGUF_TOKEN_UNKNOWN;
        else if (f & GM_TOKF_BYTE) type = GM_GGUF_TOKEN_BYTE;
        else type = GM_GGUF_TOKEN_NORMAL;
        v->types[id] = type;
        if (!has_merge[id]) v->scores[id] = (f & GM_TOKF_ADDED) ? ADDED_SCORE : 0.0f;
        ok = put_token(&v->arena, model_string(tok, id), type == GM_GGUF_TOKEN_USER_DEFINED);
    }
    gm_free(has_merge);
    if (ok) {
        v->off[n] = v->arena.len;
        v->tokens = gm_malloc((size_t)GM_MAX(n, 1) * sizeof *v->tokens);
        v->ptrs = gm_malloc((size_t)GM_MAX(n, 1) * sizeof *v->ptrs);
        v->lens = gm_malloc((size_t)GM_MAX(n, 1) * sizeof *v->lens);
        ok = v->tokens && v->ptrs && v->lens && gm_buf_reserve(&v->arena, 1);
    }
    if (!ok) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory for the vocabulary");
    for (int32_t id = 0; id < n; id++) {
        v->tokens[id] = (gm_str){v->arena.data + v->off[id], v->off[id + 1] - v->off[id]};
        v->ptrs[id] = v->tokens[id].ptr;
        v->lens[id] = v->tokens[id].len;
    }
    return GM_OK;
}

static bool same_str(const char *a, size_t na, const char *b, size_t nb) { return na == nb && memcmp(a, b, na) == 0; }

/*
 * Whether `b` (built from what we write) tokenizes as `a` (tokenizer.json):
 * same merges with the same ranks, same tokens and flags, same decoded
 * bytes, same normalizer, pre-tokenizer and options. `why` says what differs.
 */
static bool same_tokenizer(const gm_tokenizer *a, const gm_tokenizer *b, char *why, size_t cap) {
    if (a->n_merges != b->n_merges) {
        snprintf(why, cap, "%zu merges, the scores give %zu", a->n_merges, b->n_merges);
        return false;
    }
    for (uint32_t s = 0; a->merges && s <= a->merge_mask; s++) {
        const gm_tok_merge_slot *m = &a->merges[s];
        if (m->left == UINT32_MAX) continue;
        const gm_tok_merge_slot *o = gm_tok_merge_find(b, (int32_t)m->left, (int32_t)m->right);
        if (!o || o->rank != m->rank || o->merged != m->merged) {
            snprintf(why, cap, "merge %u (ids %u + %u) gets rank %d from the scores", m->rank, m->left, m->right,
                     o ? (int)o->rank : -1);
            return false;
        }
    }
    const uint32_t mask = GM_TOKF_EXISTS | GM_TOKF_ADDED | GM_TOKF_SPECIAL | GM_TOKF_BYTE | GM_TOKF_LSTRIP |
                          GM_TOKF_RSTRIP | GM_TOKF_SINGLE_WORD;
    for (int32_t id = 0; id < GM_MAX(a->n_vocab, b->n_vocab); id++) {
        uint32_t fa = id < a->n_vocab ? a->entry[id].flags & mask : 0, fb = id < b->n_vocab ? b->entry[id].flags & mask : 0;
        size_t la = 0, lb = 0;
        const char *da = gm_token_bytes(a, id, &la), *db = gm_token_bytes(b, id, &lb);
        if (fa != fb || (da && !same_str(da, la, db, lb))) {
            snprintf(why, cap, "token %d differs (flags %#x / %#x)", id, fa, fb);
            return false;
        }
    }
    bool same = a->n_norm == b->n_norm && a->split == b->split && a->byte_fallback == b->byte_fallback &&
                a->fuse_unk == b->fuse_unk && a->ignore_merges == b->ignore_merges && a->unk_id == b->unk_id &&
                a->bos_id == b->bos_id && a->dec_byte_fallback == b->dec_byte_fallback &&
                same_str(a->split_pattern.ptr, a->split_pattern.len, b->split_pattern.ptr, b->split_pattern.len);
    for (int i = 0; same && i < a->n_norm; i++)
        same = a->norm[i].kind == b->norm[i].kind &&
               same_str(a->norm[i].pattern.ptr, a->norm[i].pattern.len, b->norm[i].pattern.ptr, b->norm[i].pattern.len) &&
               same_str(a->norm[i].content.ptr, a->norm[i].content.len, b->norm[i].content.ptr, b->norm[i].content.len);
    if (!same) snprintf(why, cap, "its normalizer, pre-tokenizer or options are not SentencePiece's");
    return same;
}

/* The merges of `tok` as "left right" strings in rank order (upstream token strings). */
static gm_status merge_lines(const gm_tokenizer *tok, gm_buf *arena, size_t **off, gm_error *err) {
    *off = gm_calloc(tok->n_merges + 1, sizeof **off);
    const gm_tok_merge_slot **by_rank = gm_calloc(GM_MAX(tok->n_merges, 1), sizeof *by_rank);
    bool ok = *off && by_rank;
    for (uint32_t s = 0; ok && tok->merges && s <= tok->merge_mask; s++)
        if (tok->merges[s].left != UINT32_MAX && tok->merges[s].rank < tok->n_merges) by_rank[tok->merges[s].rank] = &tok->merges[s];
    for (size_t r = 0; ok && r < tok->n_merges; r++) {
        (*off)[r] = arena->len;
        if (!by_rank[r]) continue;
        gm_str l = model_string(tok, (int32_t)by_rank[r]->left), rr = model_string(tok, (int32_t)by_rank[r]->right);
        ok = gm_buf_append(arena, l.ptr, l.len) && gm_buf_append(arena, " ", 1) && gm_buf_append(arena, rr.ptr, rr.len);
    }
    if (ok) (*off)[tok->n_merges] = arena->len;
    gm_free((void *)by_rank);
    return ok ? GM_OK : gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory for the merges");
}

/* tokenizer_config.json (optional): special tokens, add_bos/add_eos, chat template. */
typedef struct tok_config {
    char *text;
    gm_json j;
    bool parsed;
} tok_config;

static int tc_get(const tok_config *tc, const char *key) { return tc->parsed ? gm_json_get(&tc->j, 0, key) : -1; }

/* The id of the special token tokenizer_config.json names under `key` ("eos_token"), or dflt. */
static int32_t tc_token_id(const tok_config *tc, const gm_tokenizer *tok, const char *key, int32_t dflt) {
    int t = tc_get(tc, key);
    if (t >= 0 && gm_json_kind(&tc->j, t) == GM_JSON_OBJECT) t = gm_json_get(&tc->j, t, "content");
    char buf[256];
    if (t < 0 || gm_json_kind(&tc->j, t) != GM_JSON_STRING || gm_json_string_copy(&tc->j, t, buf, sizeof buf) == (size_t)-1)
        return dflt;
    int32_t id = gm_tokenizer_token_id(tok, buf);
    return id >= 0 ? id : dflt;
}

static bool tc_bool(const tok_config *tc, const char *key, bool dflt) {
    int t = tc_get(tc, key);
    if (t < 0) return dflt;
    gm_json_type k = gm_json_kind(&tc->j, t);
    return k == GM_JSON_TRUE ? true : k == GM_JSON_FALSE ? false : dflt;
}

static gm_status write_chat_template(converter *cv, const tok_config *tc, gm_gguf_writer *w, gm_error *err) {
    int t = tc_get(tc, "chat_template");
    char *s = NULL;
    size_t len;
    gm_status st = GM_OK;
    if (t >= 0 && gm_json_kind(&tc->j, t) == GM_JSON_STRING) {
        s = gm_json_string_dup(&tc->j, t, &len);
        if (!s) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    } else {
        char *path = gm_path_join(cv->dir, "chat_template.jinja");
        if (!path) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
        if (gm_file_exists(path)) st = gm_read_file(path, &s, &len, err);
        gm_free(path);
    }
    if (st == GM_OK && s) st = gm_gguf_writer_set_str(w, "tokenizer.chat_template", s, err);
    gm_free(s);
    return st;
}

static gm_status write_special_ids(converter *cv, const gm_tokenizer *tok, const tok_config *tc, gm_gguf_writer *w,
                                   gm_error *err) {
    const gm_text_config *c = &cv->cfg;
    /* gguf-py SpecialVocab: tokenizer_config.json first, config.json for what it lacks */
    int32_t bos = tok ? tc_token_id(tc, tok, "bos_token", c->bos_id) : c->bos_id;
    int32_t eos = tok ? tc_token_id(tc, tok, "eos_token", c->eos_id) : c->eos_id;
    int32_t pad = tok ? tc_token_id(tc, tok, "pad_token", c->pad_id) : c->pad_id;
    TRY(gm_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)bos, err));
    TRY(gm_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eos, err));
    if (tok) {
        int32_t unk = tc_token_id(tc, tok, "unk_token", tok->unk_id);
        if (unk >= 0) TRY(gm_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", (uint32_t)unk, err));
    }
    TRY(gm_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", (uint32_t)pad, err));
    if (!tok) return GM_OK;
    TRY(gm_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", tc_bool(tc, "add_bos_token", true), err));
    TRY(gm_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", tc_bool(tc, "add_eos_token", false), err));
    return write_chat_template(cv, tc, w, err);
}

/* Builds what gguf_model.c will build from `v` (and merges when given) and compares it with tok. */
static gm_status check_vocab(const gm_tokenizer *tok, const vocab_out *v, const gm_str *merges, size_t n_merges,
                             int32_t bos, int32_t eos, bool space_prefix, bool *same, char *why, size_t cap,
                             gm_error *err) {
    gm_gguf_vocab gv = {.n_tokens = v->n, .tokens = v->tokens, .scores = v->scores, .types = v->types,
                        .merges = merges, .n_merges = n_merges, .bos_id = bos, .eos_id = eos,
                        .unk_id = tok->unk_id, .add_space_prefix = space_prefix};
    gm_tokenizer *rebuilt = NULL;
    gm_status st = gm_gguf_vocab_build(&gv, "tokenizer.ggml", &rebuilt, err);
    if (st != GM_OK) return st;
    *same = same_tokenizer(tok, rebuilt, why, cap);
    gm_tokenizer_free(rebuilt);
    return GM_OK;
}

static gm_status write_vocab(converter *cv, const gm_tokenizer *tok, const tok_config *tc, gm_gguf_writer *w,
                             gm_error *err) {
    if (tok->n_vocab > cv->cfg.vocab_size)
        return gm_fail(err, GM_ERR_UNSUPPORTED, "%s: tokenizer.json has %d tokens, more than vocab_size %d", cv->dir,
                       tok->n_vocab, cv->cfg.vocab_size);
    bool space_prefix = tok->n_norm > 0 && tok->norm[0].kind == GM_NORM_PREPEND;
    vocab_out v = {0};
    gm_buf marena = {0};
    size_t *moff = NULL;
    gm_str *pairs = NULL;
    char why[160] = "";
    bool same = false;
    gm_status st = vocab_from(tok, cv->cfg.vocab_size, &v, err);
    if (st == GM_OK) st = check_vocab(tok, &v, NULL, 0, tok->bos_id, tok->eos_id, space_prefix, &same, why, sizeof why, err);
    if (st == GM_OK && !same) { /* the scores do not give back the merges: write them too */
        st = merge_lines(tok, &marena, &moff, err);
        pairs = st == GM_OK ? gm_calloc(GM_MAX(tok->n_merges, 1) * 2, sizeof *pairs) : NULL;
        if (st == GM_OK && !pairs) st = gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory for the merges");
        for (size_t r = 0; st == GM_OK && r < tok->n_merges; r++) {
            const char *line = marena.data + moff[r], *sp = memchr(line + 1, ' ', moff[r + 1] - moff[r] - 1);
            pairs[2 * r] = (gm_str){line, (size_t)(sp - line)};
            pairs[2 * r + 1] = (gm_str){sp + 1, moff[r + 1] - moff[r] - (size_t)(sp + 1 - line)};
        }
        char why2[160];
        if (st == GM_OK)
            st = check_vocab(tok, &v, pairs, tok->n_merges, tok->bos_id, tok->eos_id, space_prefix, &same, why2,
                             sizeof why2, err);
        if (st == GM_OK && !same)
            st = gm_fail(err, GM_ERR_UNSUPPORTED,
                         "%s: tokenizer.json cannot be written as a GGUF \"llama\" vocabulary: %s", cv->dir, why2);
    }
    if (st == GM_OK) st = gm_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama", err);
    if (st == GM_OK) st = gm_gguf_writer_set_str(w, "tokenizer.ggml.pre", "default", err);
    if (st == GM_OK) st = gm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", v.ptrs, v.lens, (uint64_t)v.n, err);
    if (st == GM_OK) st = gm_gguf_writer_set_arr(w, "tokenizer.ggml.scores", GM_GGUF_F32, v.scores, (uint64_t)v.n, err);
    if (st == GM_OK) st = gm_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GM_GGUF_I32, v.types, (uint64_t)v.n, err);
    if (st == GM_OK && pairs) { /* "left right", as gguf-py writes tokenizer.json merges */
        const char **lines = gm_malloc(GM_MAX(tok->n_merges, 1) * sizeof *lines);
        size_t *lens = gm_malloc(GM_MAX(tok->n_merges, 1) * sizeof *lens);
        if (!lines || !lens) st = gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory for the merges");
        for (size_t r = 0; st == GM_OK && r < tok->n_merges; r++) lines[r] = marena.data + moff[r], lens[r] = moff[r + 1] - moff[r];
        if (st == GM_OK) st = gm_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", lines, lens, tok->n_merges, err);
        gm_free((void *)lines);
        gm_free(lens);
    }
    if (st == GM_OK) st = gm_gguf_writer_set_bool(w, "tokenizer.ggml.add_space_prefix", space_prefix, err);
    if (st == GM_OK) st = write_special_ids(cv, tok, tc, w, err);
    gm_free(pairs);
    gm_free(moff);
    gm_buf_free(&marena);
    vocab_free(&v);
    return st;
}

static gm_status write_tokenizer(converter *cv, gm_gguf_writer *w, gm_error *err) {
    char *path = gm_path_join(cv->dir, "tokenizer.json"), *tc_path = gm_path_join(cv->dir, "tokenizer_config.json");
    gm_tokenizer *tok = NULL;
    tok_config tc = {0};
    size_t len;
    gm_status st = path && tc_path ? GM_OK : gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    if (st == GM_OK && gm_file_exists(path)) {
        TRY(report(cv, "tokenizer", err));
        st = gm_tokenizer_open(path, &tok, err);
    }
    if (st == GM_OK && tok && gm_file_exists(tc_path)) {
        st = gm_read_file(tc_path, &tc.text, &len, err);
        if (st == GM_OK) st = gm_json_parse(tc.text, len, tc_path, &tc.j, err);
        tc.parsed = st == GM_OK;
        if (st == GM_OK && gm_json_kind(&tc.j, 0) != GM_JSON_OBJECT)
            st = gm_fail(err, GM_ERR_FORMAT, "%s: not a JSON object", tc_path);
    }
    if (st == GM_OK) st = tok ? write_vocab(cv, tok, &tc, w, err) : write_special_ids(cv, NULL, &tc, w, err);
    if (tc.parsed) gm_json_free(&tc.j);
    gm_free(tc.text);
    gm_tokenizer_free(tok);
    gm_free(path);
    gm_free(tc_path);
    return st;
}

/* ---- the whole conversion ---- */

static gm_status load_source(converter *cv, gm_error *err) {
    char *path = gm_path_join(cv->dir, "config.json"), *text = NULL;
    size_t size;
    if (!path) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    gm_status st = gm_read_file(path, &text, &size, err);
    if (st == GM_OK) st = gm_config_parse(text, size, path, &cv->cfg, err);
    gm_free(text);
    gm_free(path);
    if (st == GM_OK) st = gm_st_open_dir(cv->dir, &cv->st, err);
    if (st != GM_OK) return st;
    cv->prefix = "model.language_model.";
    if (!gm_st_find(&cv->st, "model.language_model.embed_tokens.weight") && gm_st_find(&cv->st, "model.embed_tokens.weight"))
        cv->prefix = "model."; /* Gemma3nForCausalLM checkpoints */
    return GM_OK;
}

static gm_status add_tensors(converter *cv, gm_gguf_writer *w, gm_error *err) {
    int64_t max_cols = 1;
    for (size_t i = 0; i < cv->n; i++) {
        out_tensor *o = &cv->t[i];
        max_cols = GM_MAX(max_cols, o->cols);
        TRY(gm_gguf_writer_add_tensor(w, o->name, ggml_type_of(o->type), o->n_dims, o->ne, NULL, write_data, o, err));
    }
    cv->row = gm_malloc((size_t)max_cols * sizeof(float));
    cv->chunk_cap = GM_MAX(CHUNK_BYTES, (size_t)max_cols * sizeof(float));
    cv->chunk = gm_aligned_alloc(cv->chunk_cap);
    if (!cv->row || !cv->chunk) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    return GM_OK;
}

gm_status gm_convert_to_gguf(const char *src_dir, const char *out_path, gm_weight_format format,
                             gm_progress_fn progress, void *user, gm_error *err) {
    gm_error_clear(err);
    if (!src_dir || !*src_dir || !out_path || !*out_path)
        return gm_fail(err, GM_ERR_ARGUMENT, "gm_convert_to_gguf: empty source or output path");
    if ((unsigned)format > GM_WEIGHTS_Q4_0) return gm_fail(err, GM_ERR_ARGUMENT, "unknown weight format %d", (int)format);
    if (!gm_is_directory(src_dir))
        return gm_fail(err, GM_ERR_IO, "%s: not a model directory (expected config.json + *.safetensors)", src_dir);
    converter cv = {.dir = src_dir, .format = format, .progress = progress, .user = user, .err = err};
    gm_gguf_writer *w = NULL;
    gm_status st = load_source(&cv, err);
    if (st == GM_OK) st = plan_tensors(&cv);
    if (st == GM_OK) st = gm_gguf_writer_new(&w, err);
    if (st == GM_OK) st = write_general(&cv, w, err);
    if (st == GM_OK) st = write_hparams(&cv, w, err);
    if (st == GM_OK) st = write_tokenizer(&cv, w, err);
    if (st == GM_OK) st = add_tensors(&cv, w, err);
    if (st == GM_OK) st = gm_gguf_writer_write_file(w, out_path, err);
    if (st == GM_OK && progress) progress(user, 1.0, "done");
    gm_gguf_writer_free(w);
    gm_free(cv.row);
    gm_aligned_free(cv.chunk);
    gm_free(cv.t);
    gm_st_close(&cv.st);
    return st;
}
