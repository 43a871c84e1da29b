/*
 * model.c - opening a Gemma 3n model: a Hugging Face directory (config,
 * weights mapped and bound by upstream tensor name with shape checks,
 * tokenizer) or a GGUF file (gguf_model.c supplies the config, the
 * tensors under their upstream names, and the tokenizer; the binding
 * below is shared).
 */
#include "model.h"

#include "gguf_model.h"
#include "kernels.h"
#include "matformer.h"
#include "ops.h"
#include "pack.h"
#include "quant.h"
#include "threadpool.h"

#include <math.h>
#include <stdio.h>
#include <strings.h>

gm_model_params gm_model_default_params(void) {
    gm_model_params p = {.n_threads = 0, .load_tokenizer = 1, .weights = GM_WEIGHTS_AS_STORED};
    return p;
}

/* ---- owned copies (widened vectors, aligned, converted and packed matrices) ---- */

/* An owned copy and how it was allocated. */
struct gm_owned {
    void *p;
    bool pages; /* gm_alloc_weights, else gm_aligned_alloc */
};

static void free_owned(struct gm_owned o) {
    if (o.pages) gm_free_weights(o.p);
    else gm_aligned_free(o.p);
}

/* Frees an owned copy before close (a matrix replaced by its packed copy). */
static void disown(gm_model *m, const void *p) {
    for (size_t i = m->n_owned; i-- > 0;) {
        if (m->owned[i].p == p) {
            free_owned(m->owned[i]);
            m->owned[i] = m->owned[--m->n_owned];
            return;
        }
    }
}

static void *own_with(gm_model *m, size_t bytes, bool pages) {
    if (m->n_owned == m->cap_owned) {
        size_t cap = m->cap_owned ? m->cap_owned * 2 : 256;
        struct gm_owned *n = gm_realloc(m->owned, cap * sizeof *n);
        if (!n) return NULL;
        m->owned = n;
        m->cap_owned = cap;
    }
    void *p = pages ? gm_alloc_weights(bytes) : gm_aligned_alloc(bytes);
    if (p) m->owned[m->n_owned++] = (struct gm_owned){p, pages};
    return p;
}

/* Zeroed, 64-byte aligned. */
static void *own(gm_model *m, size_t bytes) { return own_with(m, bytes, false); }
/* Own pages (huge pages when big): weight copies written in full right away. */
static void *own_weights(gm_model *m, size_t bytes) { return own_with(m, bytes, true); }

static const char *const format_names[] = {"stored", "f32", "f16", "bf16", "q8_0", "q4_0"};

const char *gm_weight_format_name(gm_weight_format f) {
    return (unsigned)f < GM_ARRAY_LEN(format_names) ? format_names[f] : "?";
}

gm_status gm_weight_format_parse(const char *name, gm_weight_format *out, gm_error *err) {
    for (size_t i = 0; name && i < GM_ARRAY_LEN(format_names); i++)
        if (strcasecmp(name, format_names[i]) == 0) {
            *out = (gm_weight_format)i;
            return GM_OK;
        }
    return gm_fail(err, GM_ERR_ARGUMENT, "unknown weight format '%s' (stored, f32, f16, bf16, q8_0, q4_0)",
                   name ? name : "(null)");
}

static gm_dtype format_dtype(gm_weight_format f) {
    static const gm_dtype map[] = {GM_DTYPE_F32, GM_DTYPE_F32, GM_DTYPE_F16, GM_DTYPE_BF16, GM_DTYPE_Q8_0, GM_DTYPE_Q4_0};
    return map[f];
}

void gm_encode_row(gm_dtype t, const float *x, void *dst, int64_t n) {
    uint8_t *d = dst;
    switch (t) {
    case GM_DTYPE_F32: memcpy(d, x, (size_t)n * sizeof(float)); break;
    case GM_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) { uint16_t h = gm_f32_to_f16(x[i]); memcpy(d + 2 * i, &h, 2); }
        break;
    case GM_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) { uint16_t h = gm_f32_to_bf16(x[i]); memcpy(d + 2 * i, &h, 2); }
        break;
    case GM_DTYPE_Q8_0: gm_quantize_row_q8_0(x, (gm_block_q8_0 *)dst, n); break;
    case GM_DTYPE_Q4_0: gm_quantize_row_q4_0(x, (gm_block_q4_0 *)dst, n); break;
    default: break;
    }
}

/* ---- binding tensors by name ---- */

typedef struct binder {
    gm_model *m;
    const char *prefix; /* "model.language_model." or "model." */
    bool convert;       /* apply the weight format to matrices bound now */
    bool pack;          /* interleave Q4_0 matrices bound now for the packed kernels (pack.h) */
    gm_pool *pool;      /* load-time threads for packing (NULL: the calling thread) */
    gm_error *err;
} binder;

static gm_dtype to_dtype(gm_st_dtype t) {
    return t == GM_ST_F32 ? GM_DTYPE_F32 : t == GM_ST_F16 ? GM_DTYPE_F16 : GM_DTYPE_BF16;
}

/* The stored tensor for upstream name `name` (relative to the prefix), from either container. */
static gm_status find_tensor(binder *b, const char *name, gm_tensor_view *out) {
    if (b->m->format == GM_FORMAT_GGUF) return gm_gguf_model_find(b->m, name, out, b->err);
    char full[256];
    snprintf(full, sizeof full, "%s%s", b->prefix, name);
    const gm_st_tensor *t = gm_st_find(&b->m->st, full);
    if (!t) return gm_fail(b->err, GM_ERR_FORMAT, "%s: missing tensor '%s'", b->m->path, full);
    if (t->dtype != GM_ST_F32 && t->dtype != GM_ST_F16 && t->dtype != GM_ST_BF16)
        return gm_fail(b->err, GM_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s (supported: BF16, F16, F32)",
                       b->m->path, full, gm_st_dtype_name(t->dtype));
    *out = (gm_tensor_view){.name = t->name, .type = to_dtype(t->dtype), .ndim = t->ndim, .data = t->data,
                            .nbytes = t->nbytes};
    for (int i = 0; i < t->ndim && i < 4; i++) out->shape[i] = t->shape[i];
    if (t->ndim > 4) out->ndim = 4 + 1; /* never matches a wanted shape */
    return GM_OK;
}

/* "[2048, 256]", or "{256, 2048}" (ggml order) for GGUF tensors. */
static void shape_str(const int64_t *shape, int ndim, bool ggml_order, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, ggml_order ? "{" : "[");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, i ? ", %lld" : "%lld",
                              (long long)shape[ggml_order ? ndim - 1 - i : i]);
    if (o < cap) snprintf(buf + o, cap - o, ggml_order ? "}" : "]");
}

static gm_status check_shape(binder *b, const gm_tensor_view *t, int ndim, int64_t d0, int64_t d1) {
    bool ok = t->ndim == ndim && t->shape[0] == d0 && (ndim == 1 || t->shape[1] == d1);
    if (ok) return GM_OK;
    char got[128], want[128];
    int64_t w[2] = {d0, d1};
    shape_str(t->shape, GM_MIN(t->ndim, 4), t->ggml_order, got, sizeof got);
    shape_str(w, ndim, t->ggml_order, want, sizeof want);
    return gm_fail(b->err, GM_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", b->m->path, t->name, got,
                   want);
}

/* Converts W row by row into an owned matrix of `target` (quantize at load). */
static gm_status convert_matrix(binder *b, gm_matrix *W, gm_dtype target) {
    size_t row_bytes = gm_dtype_row_bytes(target, W->cols), total;
    float *row = gm_malloc((size_t)W->cols * sizeof(float));
    uint8_t *dst = gm_mul_size(row_bytes, (size_t)W->rows, &total) ? own_weights(b->m, total) : NULL;
    if (!row || !dst) {
        gm_free(row);
        return gm_fail(b->err, GM_ERR_OUT_OF_MEMORY, "out of memory converting weights to %s", gm_dtype_name(target));
    }
    for (int64_t r = 0; r < W->rows; r++) {
        gm_matrix_row(W, r, 0, W->cols, row);
        gm_encode_row(target, row, dst + (size_t)r * row_bytes, W->cols);
    }
    gm_free(row);
    *W = (gm_matrix){.type = target, .rows = W->rows, .cols = W->cols, .row_stride = W->cols, .data = dst};
    return GM_OK;
}

bool gm_weight_format_is_quantized(gm_weight_format f) { return f == GM_WEIGHTS_Q8_0 || f == GM_WEIGHTS_Q4_0; }

gm_dtype gm_weight_target(gm_weight_format f, gm_dtype stored, int64_t cols) {
    if (f == GM_WEIGHTS_AS_STORED) return stored;
    gm_dtype target = format_dtype(f);
    return cols % gm_dtype_block(target) == 0 ? target : stored; /* tiny widths stay as stored */
}

/* Applies the model's weight format to a large matrix (see gm_weight_format). */
static gm_status apply_format(binder *b, gm_matrix *W) {
    gm_dtype target = gm_weight_target(b->m->params.weights, W->type, W->cols);
    return target == W->type ? GM_OK : convert_matrix(b, W, target);
}

/* Byte alignment the kernels need to read `t` in place (block types: the fp16 scale). */
static size_t dtype_align(gm_dtype t) { return gm_dtype_block(t) > 1 ? 2 : gm_dtype_size(t); }

/*
 * Q4_0 matrices the products read become Q4_0x16 (pack.h) when the kernel
 * table has a packed kernel: same bytes rearranged, an owned copy; the
 * source (a converted copy, or mapped pages) is dropped right away, so the
 * peak stays one matrix above the final size.
 */
typedef struct pack_job {
    const gm_matrix *W;
    gm_tile_q4_0x16 *P;
} pack_job;

static void pack_task(void *ctx, int task, int n_tasks, int thread) {
    const pack_job *j = ctx;
    const int64_t groups = j->W->rows / GM_PACK_ROWS;
    (void)thread;
    gm_kern()->pack_q4_0x16(j->W->data, j->W->cols / GM_QK4_0, j->P, groups * task / n_tasks,
                            groups * (task + 1) / n_tasks);
}

static gm_status pack_matrix(binder *b, gm_matrix *W, const void *mapped, size_t mapped_bytes) {
    if (!b->pack || W->type != GM_DTYPE_Q4_0 || W->layout != GM_LAYOUT_ROWS || W->row_stride != W->cols ||
        !gm_pack_q4_0x16_fits(W->rows, W->cols) || !gm_kern()->matmul_q4_0x16)
        return GM_OK;
    const size_t bytes = (size_t)W->rows * (size_t)(W->cols / GM_QK4_0) * sizeof(gm_block_q4_0);
    gm_tile_q4_0x16 *P = own_weights(b->m, bytes);
    if (!P) return gm_fail(b->err, GM_ERR_OUT_OF_MEMORY, "out of memory packing a [%lld, %lld] Q4_0 matrix",
                           (long long)W->rows, (long long)W->cols);
    pack_job job = {W, P};
    const int64_t groups = W->rows / GM_PACK_ROWS;
    if (b->pool && groups >= 64) /* the pool's threads also take the new pages' faults */
        gm_pool_run(b->pool, pack_task, &job, (int)GM_MIN(groups, 4 * gm_pool_n_threads(b->pool)));
    else
        pack_task(&job, 0, 1, 0);
    if (W->data == mapped) gm_release_pages(mapped, mapped_bytes);
    else disown(b->m, W->data);
    W->data = P;
    W->layout = GM_LAYOUT_Q4_0X16;
    W->file_backed = false;
    return GM_OK;
}

/* A [rows, cols] matrix used in place when the mapping is aligned for its type. */
static gm_status bind_matrix(binder *b, const char *name, int64_t rows, int64_t cols, gm_matrix *out) {
    gm_tensor_view t;
    gm_status st = find_tensor(b, name, &t);
    if (st == GM_OK) st = check_shape(b, &t, 2, rows, cols);
    if (st != GM_OK) return st;
    out->type = t.type;
    out->rows = rows;
    out->cols = cols;
    out->row_stride = cols;
    out->data = t.data;
    if ((uintptr_t)t.data % dtype_align(t.type) != 0) { /* safetensors, or GGUF with general.alignment 1 */
        void *copy = own(b->m, t.nbytes);
        if (!copy) return gm_fail(b->err, GM_ERR_OUT_OF_MEMORY, "out of memory copying '%s'", t.name);
        memcpy(copy, t.data, t.nbytes);
        out->data = copy;
    }
    out->file_backed = out->data == t.data;
    if (!b->convert) return GM_OK;
    const void *source = out->data;
    gm_status st2 = apply_format(b, out);
    /* Converted at load: the mapped source is never read again, so drop its
     * pages now instead of keeping both copies resident. */
    if (st2 == GM_OK && out->data != source && source == t.data) gm_release_pages(t.data, t.nbytes);
    return st2 == GM_OK ? pack_matrix(b, out, t.data, t.nbytes) : st2;
}

/* Widens any stored tensor of `n` elements to an owned f32 array. */
static gm_status widen(binder *b, const gm_tensor_view *t, size_t n, float **out) {
    float *v = own(b->m, n * sizeof(float));
    if (!v) return gm_fail(b->err, GM_ERR_OUT_OF_MEMORY, "out of memory widening '%s'", t->name);
    const void *src = t->data;
    void *copy = NULL;
    if ((uintptr_t)src % dtype_align(t->type) != 0) { /* block types must be read aligned */
        copy = gm_aligned_alloc(t->nbytes);
        if (!copy) return gm_fail(b->err, GM_ERR_OUT_OF_MEMORY, "out of memory widening '%s'", t->name);
        memcpy(copy, src, t->nbytes);
        src = copy;
    }
    gm_to_f32(t->type, src, v, n);
    gm_aligned_free(copy);
    *out = v;
    return GM_OK;
}

static gm_status bind_vector(binder *b, const char *name, int64_t n, gm_vector *out) {
    gm_tensor_view t;
    float *v = NULL;
    gm_status st = find_tensor(b, name, &t);
    if (st == GM_OK) st = check_shape(b, &t, 1, n, 0);
    if (st == GM_OK) st = widen(b, &t, (size_t)n, &v);
    if (st != GM_OK) return st;
    out->n = n;
    out->data = v;
    return GM_OK;
}

/* Small matrix widened to f32, optionally clipped to +-clip (AltUp coefficients). */
static gm_status bind_f32_matrix(binder *b, const char *name, int64_t rows, int64_t cols, float clip,
                                 gm_matrix *out) {
    gm_tensor_view t;
    float *v = NULL;
    gm_status st = find_tensor(b, name, &t);
    if (st == GM_OK) st = check_shape(b, &t, 2, rows, cols);
    if (st == GM_OK) st = widen(b, &t, (size_t)(rows * cols), &v);
    if (st != GM_OK) return st;
    for (int64_t i = 0; clip > 0 && i < rows * cols; i++) v[i] = fminf(fmaxf(v[i], -clip), clip);
    *out = (gm_matrix){.type = GM_DTYPE_F32, .rows = rows, .cols = cols, .row_stride = cols, .data = v};
    return GM_OK;
}

/* ---- the decoder's tensors (names as the released checkpoints) ---- */

static gm_status bind_attention(binder *b, int l, bool owns_kv, gm_layer_weights *lw) {
    const gm_text_config *c = &b->m->cfg;
    int64_t H = c->hidden_size, q = (int64_t)c->num_heads * c->head_dim, kv = (int64_t)c->num_kv_heads * c->head_dim;
    char n[128];
    gm_status st;
#define NAME(s) (snprintf(n, sizeof n, "layers.%d.%s", l, s), n)
    if ((st = bind_matrix(b, NAME("self_attn.q_proj.weight"), q, H, &lw->q_proj))) return st;
    if ((st = bind_matrix(b, NAME("self_attn.o_proj.weight"), H, q, &lw->o_proj))) return st;
    if ((st = bind_vector(b, NAME("self_attn.q_norm.weight"), c->head_dim, &lw->q_norm))) return st;
    if (!owns_kv) return GM_OK; /* KV-shared layers: k/v weights are stored but never used */
    if ((st = bind_matrix(b, NAME("self_attn.k_proj.weight"), kv, H, &lw->k_proj))) return st;
    if ((st = bind_matrix(b, NAME("self_attn.v_proj.weight"), kv, H, &lw->v_proj))) return st;
    return bind_vector(b, NAME("self_attn.k_norm.weight"), c->head_dim, &lw->k_norm);
}

static gm_status bind_altup_laurel(binder *b, int l, gm_layer_weights *lw) {
    const gm_text_config *c = &b->m->cfg;
    int64_t H = c->hidden_size, K = c->altup_num_inputs, r = c->laurel_rank;
    char n[128];
    gm_status st;
    if ((st = bind_vector(b, NAME("altup.correct_output_scale"), H, &lw->altup_correct_output_scale))) return st;
    if ((st = bind_f32_matrix(b, NAME("altup.correction_coefs.weight"), K, K, c->altup_coef_clip,
                              &lw->altup_correction_coefs))) return st;
    /* upstream clips prediction_coefs only while training */
    if ((st = bind_f32_matrix(b, NAME("altup.prediction_coefs.weight"), K * K, K, 0, &lw->altup_prediction_coefs))) return st;
    if ((st = bind_f32_matrix(b, NAME("altup.modality_router.weight"), K, H, 0, &lw->altup_modality_router))) return st;
    if ((st = bind_vector(b, NAME("altup.router_norm.weight"), H, &lw->altup_router_norm))) return st;
    if ((st = bind_matrix(b, NAME("laurel.linear_left.weight"), r, H, &lw->laurel_left))) return st;
    if ((st = bind_matrix(b, NAME("laurel.linear_right.weight"), H, r, &lw->laurel_right))) return st;
    return bind_vector(b, NAME("laurel.post_laurel_norm.weight"), H, &lw->laurel_post_norm);
}

static gm_status bind_layer(binder *b, int l) {
    const gm_text_config *c = &b->m->cfg;
    gm_layer_weights *lw = &b->m->w.layers[l];
    int64_t H = c->hidden_size, F = c->intermediate_size[l], P = c->hidden_size_per_layer_input;
    char n[128];
    gm_status st;
    bool owns_kv = l < c->num_layers - c->num_kv_shared_layers;
    if ((st = bind_attention(b, l, owns_kv, lw))) return st;
    if ((st = bind_altup_laurel(b, l, lw))) return st;
    if ((st = bind_vector(b, NAME("input_layernorm.weight"), H, &lw->input_norm))) return st;
    if ((st = bind_vector(b, NAME("post_attention_layernorm.weight"), H, &lw->post_attn_norm))) return st;
    if ((st = bind_vector(b, NAME("pre_feedforward_layernorm.weight"), H, &lw->pre_ffw_norm))) return st;
    if ((st = bind_vector(b, NAME("post_feedforward_layernorm.weight"), H, &lw->post_ffw_norm))) return st;
    if ((st = bind_matrix(b, NAME("mlp.gate_proj.weight"), F, H, &lw->gate_proj))) return st;
    /* Sparse layers compute only the up rows whose gate survives the cutoff
     * (matmul_sparse.h): row subsets need the row-major layout. */
    b->pack = c->activation_sparsity[l] <= 0;
    st = bind_matrix(b, NAME("mlp.up_proj.weight"), F, H, &lw->up_proj);
    b->pack = true;
    if (st != GM_OK) return st;
    if ((st = bind_matrix(b, NAME("mlp.down_proj.weight"), H, F, &lw->down_proj))) return st;
    if ((st = bind_matrix(b, NAME("per_layer_input_gate.weight"), P, H, &lw->per_layer_input_gate))) return st;
    if ((st = bind_matrix(b, NAME("per_layer_projection.weight"), H, P, &lw->per_layer_projection))) return st;
    return bind_vector(b, NAME("post_per_layer_input_norm.weight"), H, &lw->post_per_layer_input_norm);
#undef NAME
}

static gm_status bind_globals(binder *b) {
    const gm_text_config *c = &b->m->cfg;
    gm_text_weights *w = &b->m->w;
    int64_t H = c->hidden_size, LP = (int64_t)c->num_layers * c->hidden_size_per_layer_input;
    gm_status st;
    /* packed too: the tied LM head is the biggest GEMV; the embedding lookup reads rows via gm_matrix_row */
    if ((st = bind_matrix(b, "embed_tokens.weight", c->vocab_size, H, &w->embed_tokens))) return st;
    b->convert = false; /* the per-layer embedding table stays mapped as stored (read a row per token) */
    st = bind_matrix(b, "embed_tokens_per_layer.weight", c->vocab_size_per_layer_input, LP, &w->embed_tokens_per_layer);
    b->convert = true;
    if (st != GM_OK) return st;
    int64_t block = gm_dtype_block(w->embed_tokens_per_layer.type);
    if (c->hidden_size_per_layer_input % block != 0) /* a layer's slice of a row must start a block */
        return gm_fail(b->err, GM_ERR_UNSUPPORTED,
                       "%s: the per-layer embedding table is %s, which needs hidden_size_per_layer_input (%d) "
                       "to be a multiple of %lld", b->m->path, gm_dtype_name(w->embed_tokens_per_layer.type),
                       c->hidden_size_per_layer_input, (long long)block);
    if ((st = bind_matrix(b, "per_layer_model_projection.weight", LP, H, &w->per_layer_model_projection))) return st;
    if ((st = bind_vector(b, "per_layer_projection_norm.weight", c->hidden_size_per_layer_input,
                          &w->per_layer_projection_norm))) return st;
    if ((st = bind_vector(b, "norm.weight", H, &w->final_norm))) return st;
    for (int i = 0; i + 1 < c->altup_num_inputs; i++) {
        char n[96];
        /* kept as stored under Q8_0 / Q4_0 (1 % of E2B): llama.cpp's CPU repacking
         * breaks on these stacked 3-D tensors when they are quantized (convert.c
         * writes them the same way, so a GGUF computes what its source does) */
        b->convert = !gm_weight_format_is_quantized(b->m->params.weights);
        snprintf(n, sizeof n, "altup_projections.%d.weight", i);
        st = bind_matrix(b, n, H, H, &w->altup_projections[i]);
        snprintf(n, sizeof n, "altup_unembed_projections.%d.weight", i);
        if (st == GM_OK) st = bind_matrix(b, n, H, H, &w->altup_unembed_projections[i]);
        b->convert = true;
        if (st != GM_OK) return st;
    }
    return GM_OK;
}

static void count_params(gm_model *m, const char *prefix) {
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < m->st.n_tensors; i++) {
        const gm_st_tensor *t = &m->st.tensors[i];
        m->n_params_file += t->numel;
        if (strncmp(t->name, prefix, plen) == 0) m->n_params_text += t->numel;
    }
    for (int64_t i = 0; m->gguf && i < gm_gguf_tensor_count(m->gguf); i++)
        m->n_params_file += gm_gguf_tensor_at(m->gguf, i)->n_elems;
    if (m->gguf) { /* a GGUF holds only the text decoder; its per-layer table is padded to V rows */
        const gm_text_config *c = &m->cfg;
        int64_t stored = gm_gguf_find_tensor(m->gguf, "per_layer_token_embd.weight");
        int64_t rows = stored >= 0 ? gm_gguf_tensor_at(m->gguf, stored)->ne[1] : c->vocab_size_per_layer_input;
        m->n_params_text = m->n_params_file - (rows - c->vocab_size_per_layer_input) * c->num_layers *
                                                  (int64_t)c->hidden_size_per_layer_input;
    }
}

static gm_status bind_all(gm_model *m, gm_error *err) {
    binder b = {.m = m, .prefix = "model.language_model.", .convert = true, .pack = true, .err = err};
    int threads = m->params.n_threads > 0 ? m->params.n_threads : gm_cpu_count();
    if (threads > 1 && gm_kern()->matmul_q4_0x16) b.pool = gm_pool_create(threads); /* NULL: packs serially */
    if (m->format == GM_FORMAT_HF_DIR && !gm_st_find(&m->st, "model.language_model.embed_tokens.weight") &&
        gm_st_find(&m->st, "model.embed_tokens.weight"))
        b.prefix = "model."; /* Gemma3nForCausalLM checkpoints */
    gm_status st = bind_globals(&b);
    for (int l = 0; l < m->cfg.num_layers && st == GM_OK; l++) st = bind_layer(&b, l);
    gm_pool_free(b.pool);
    if (st != GM_OK) return st;
    m->prefix = b.prefix;
    count_params(m, b.prefix);
    m->main_dtype = m->w.embed_tokens.type;
    return GM_OK;
}

static gm_status load_config(gm_model *m, gm_error *err) {
    char *path = gm_path_join(m->path, "config.json"), *text = NULL;
    size_t size;
    if (!path) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    gm_status st = gm_read_file(path, &text, &size, err);
    if (st == GM_OK) st = gm_config_parse(text, size, path, &m->cfg, err);
    gm_free(text);
    gm_free(path);
    return st;
}

static gm_status load_tokenizer(gm_model *m, gm_error *err) {
    char *path = gm_path_join(m->path, "tokenizer.json");
    if (!path) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    gm_status st = GM_OK;
    if (gm_file_exists(path)) st = gm_tokenizer_open(path, &m->tokenizer, err);
    gm_free(path);
    return st;
}


/*
 * The tokenizer (0.2-0.4 s for Gemma's 262k vocabulary) is built on its own
 * thread while the weights are bound (and packed): it reads the config and
 * the file, writes only m->tokenizer, and the binding never touches either.
 */
typedef struct tokenizer_job {
    gm_model *m;
    gm_status st;
    gm_error err;
} tokenizer_job;

static void *tokenizer_main(void *arg) {
    tokenizer_job *j = arg;
    j->st = j->m->format == GM_FORMAT_GGUF ? gm_gguf_model_tokenizer(j->m, &j->err) : load_tokenizer(j->m, &j->err);
    return NULL;
}

/* bind_all, with the tokenizer loaded alongside (or after, if no thread can be started). */
static gm_status bind_with_tokenizer_thread(gm_model *m, gm_error *err) {
    if (!m->params.load_tokenizer) return bind_all(m, err);
    tokenizer_job job = {.m = m};
    pthread_t thread;
    const bool threaded = pthread_create(&thread, NULL, tokenizer_main, &job) == 0;
    gm_status st = bind_all(m, err);
    if (threaded) pthread_join(thread, NULL);
    else if (st == GM_OK) tokenizer_main(&job);
    if (st == GM_OK && job.st != GM_OK) {
        if (err) *err = job.err;
        st = job.st;
    }
    return st;
}

/*
 * Drops this process's mapping of every page of the model files (they stay
 * in the page cache). After binding, the weights used in place fault back
 * in as they are read; the pages read only while loading (tensors packed
 * or converted into their own memory, the tokenizer arrays, and whatever a
 * fault mapped around them: a whole large page-cache folio, up to 2 MiB,
 * on recent kernels) leave the resident set. Measured: +110 MiB peak RSS
 * for E2B Q4_0 without this when the file had been read with readahead.
 */
static void release_file_pages(gm_model *m) {
    if (m->format == GM_FORMAT_GGUF && m->gguf) {
        size_t size;
        const void *image = gm_gguf_image(m->gguf, &size); /* NULL unless file-mapped */
        if (image) gm_release_pages(image, size);
        return;
    }
    for (int i = 0; i < m->st.n_files; i++) gm_release_pages(m->st.files[i].data, m->st.files[i].size);
}

/* bind_with_tokenizer_thread, then release_file_pages. */
static gm_status bind_with_tokenizer(gm_model *m, gm_error *err) {
    gm_status st = bind_with_tokenizer_thread(m, err);
    if (st == GM_OK) release_file_pages(m);
    return st;
}

/* config.json + *.safetensors (+ tokenizer.json) */
static gm_status open_hf_dir(gm_model *m, gm_error *err) {
    gm_status st = load_config(m, err);
    if (st == GM_OK) st = gm_st_open_dir(m->path, &m->st, err);
    if (st == GM_OK) st = bind_with_tokenizer(m, err);
    return st;
}

/* One .gguf file: config from its metadata, the same binding, tokenizer.ggml.* */
static gm_status open_gguf(gm_model *m, gm_error *err) {
    m->format = GM_FORMAT_GGUF;
    gm_status st = gm_gguf_model_load(m, err);
    if (st == GM_OK) st = bind_with_tokenizer(m, err);
    return st;
}

gm_status gm_model_open(const char *path, const gm_model_params *params, gm_model **out, gm_error *err) {
    *out = NULL;
    gm_error_clear(err);
    if (!path || !*path) return gm_fail(err, GM_ERR_ARGUMENT, "model path is empty");
    if (params && (unsigned)params->weights > GM_WEIGHTS_Q4_0)
        return gm_fail(err, GM_ERR_ARGUMENT, "unknown weight format %d", (int)params->weights);
    bool gguf = !gm_is_directory(path) && gm_gguf_model_sniff(path);
    if (!gguf && !gm_is_directory(path))
        return gm_fail(err, GM_ERR_IO,
                       "%s: not a model directory (expected config.json + *.safetensors) or a GGUF file", path);
    gm_model *m = gm_calloc(1, sizeof *m);
    if (!m) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    atomic_init(&m->refcount, 1);
    pthread_mutex_init(&m->plan_lock, NULL);
    m->params = params ? *params : gm_model_default_params();
    m->path = gm_strndup(path, strlen(path));
    gm_status st = m->path ? GM_OK : gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    if (st == GM_OK) st = gguf ? open_gguf(m, err) : open_hf_dir(m, err);
    if (st != GM_OK) {
        gm_model_free(m);
        return st;
    }
    gm_plan_full(&m->cfg, &m->plan);
    *out = m;
    return GM_OK;
}

void gm_model_retain(gm_model *m) { atomic_fetch_add(&m->refcount, 1); }

void gm_model_free(gm_model *m) {
    if (!m || atomic_fetch_sub(&m->refcount, 1) != 1) return;
    for (size_t i = 0; i < m->n_owned; i++) free_owned(m->owned[i]);
    gm_free(m->owned);
    gm_st_close(&m->st);
    gm_gguf_free(m->gguf);
    gm_tokenizer_free(m->tokenizer);
    gm_free(m->path);
    pthread_mutex_destroy(&m->plan_lock);
    gm_free(m);
}

/* FFN widths must be multiples of this (the quantization block; 1 for float weights). */
static int ffn_multiple(const gm_model *m) {
    int64_t block = 1;
    for (int l = 0; l < m->cfg.num_layers; l++) {
        block = GM_MAX(block, gm_dtype_block(m->w.layers[l].gate_proj.type));
        block = GM_MAX(block, gm_dtype_block(m->w.layers[l].down_proj.type));
    }
    return (int)block;
}

static int64_t effective_params(const gm_model *m, const gm_plan *plan) {
    int64_t total = 0;
    for (size_t i = 0; i < m->st.n_tensors; i++) {
        const char *name = m->st.tensors[i].name;
        total += gm_plan_effective_params(&m->cfg, plan, m->prefix, &name, &m->st.tensors[i].numel, 1);
    }
    for (int64_t i = 0; m->gguf && i < gm_gguf_tensor_count(m->gguf); i++) { /* counted under upstream names */
        const gm_gguf_tensor *t = gm_gguf_tensor_at(m->gguf, i);
        char local[128], full[160];
        if (!gm_gguf_model_upstream_name(t->name, local, sizeof local)) continue;
        snprintf(full, sizeof full, "%s%s", m->prefix, local);
        const char *name = full;
        total += gm_plan_effective_params(&m->cfg, plan, m->prefix, &name, &t->n_elems, 1);
    }
    return total;
}

gm_status gm_model_check_submodel(const gm_model *m, const gm_submodel_spec *spec, int64_t *params, gm_error *err) {
    gm_error_clear(err);
    gm_plan plan;
    gm_status st = gm_plan_from_spec(&m->cfg, spec, ffn_multiple(m), &plan, err);
    if (st == GM_OK && params) *params = effective_params(m, &plan);
    return st;
}

gm_status gm_model_select_submodel(gm_model *m, const gm_submodel_spec *spec, gm_error *err) {
    gm_error_clear(err);
    gm_plan plan;
    gm_status st = gm_plan_from_spec(&m->cfg, spec, ffn_multiple(m), &plan, err);
    if (st != GM_OK) return st;
    pthread_mutex_lock(&m->plan_lock);
    m->plan = plan;
    if (spec) m->submodel = *spec;
    else memset(&m->submodel, 0, sizeof m->submodel);
    pthread_mutex_unlock(&m->plan_lock);
    return GM_OK;
}

void gm_model_get_submodel(const gm_model *m, gm_submodel_spec *spec) {
    gm_model *mm = (gm_model *)(uintptr_t)m; /* the lock is not part of the model's logical state */
    pthread_mutex_lock(&mm->plan_lock);
    *spec = m->submodel;
    pthread_mutex_unlock(&mm->plan_lock);
}

gm_status gm_model_session_plan(gm_model *m, const gm_submodel_spec *spec, gm_plan *plan, gm_error *err) {
    if (spec) return gm_plan_from_spec(&m->cfg, spec, ffn_multiple(m), plan, err);
    pthread_mutex_lock(&m->plan_lock);
    *plan = m->plan;
    pthread_mutex_unlock(&m->plan_lock);
    return GM_OK;
}

const gm_tokenizer *gm_model_tokenizer(const gm_model *m) { return m ? m->tokenizer : NULL; }

void gm_model_get_info(const gm_model *m, gm_model_info *info) {
    const gm_text_config *c = &m->cfg;
    memset(info, 0, sizeof *info);
    info->vocab_size = c->vocab_size;
    info->hidden_size = c->hidden_size;
    info->num_layers = c->num_layers;
    info->num_heads = c->num_heads;
    info->num_kv_heads = c->num_kv_heads;
    info->head_dim = c->head_dim;
    info->num_kv_shared_layers = c->num_kv_shared_layers;
    info->sliding_window = c->sliding_window;
    info->hidden_size_per_layer_input = c->hidden_size_per_layer_input;
    info->altup_num_inputs = c->altup_num_inputs;
    info->laurel_rank = c->laurel_rank;
    info->bos_id = c->bos_id;
    info->eos_id = c->eos_id;
    info->end_of_turn_id = m->tokenizer ? gm_tokenizer_token_id(m->tokenizer, "<end_of_turn>") : -1;
    info->max_position_embeddings = c->max_position_embeddings;
    info->final_logit_softcap = c->final_logit_softcap;
    info->n_params_text = m->n_params_text;
    info->n_params_file = m->n_params_file;
    info->weight_dtype = gm_dtype_name(m->main_dtype);
}
