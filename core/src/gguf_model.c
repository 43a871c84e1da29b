/*
 * gguf_model.c - Gemma 3n from a llama.cpp GGUF file: the config from the
 * gemma3n.* metadata, the tensors under their upstream names (model.c binds
 * them exactly as it binds a Hugging Face directory), the tokenizer from
 * tokenizer.ggml.*. See gguf_model.h for the name table.
 *
 * Metadata. The keys are those convert_hf_to_gguf.py writes for
 * Gemma3NModel. llama.cpp itself reads only some of them and hard-codes
 * the rest (src/models/gemma3n.cpp, llama-hparams.h); we read every key
 * that is present and fall back to llama.cpp's fixed value when it is not:
 *
 *   key (gemma3n.*)                      when absent (llama.cpp's value)
 *   block_count, embedding_length,       required
 *   context_length, feed_forward_length,
 *   attention.head_count,
 *   attention.layer_norm_rms_epsilon,
 *   attention.sliding_window
 *   attention.head_count_kv              head_count
 *   attention.key_length / value_length  embedding_length / head_count
 *   rope.freq_base                       10000 (llama.cpp's generic default;
 *                                        converters always write 1e6 for Gemma 3n)
 *   rope.freq_base_swa                   10000
 *   final_logit_softcapping              30 (llama.cpp ignores the key: always 30)
 *   attention.sliding_window_pattern     5: every 5th layer full (bool array, or u32 period)
 *   attention.shared_kv_layers           L - 20 (n_layer_kv_from_start = 20)
 *   altup.num_inputs / altup.active_idx  4 / 0
 *   embedding_length_per_layer_input     256
 *   activation_sparsity_scale            std multipliers; absent: 1.6448533535003662
 *                                        (icdf(0.95)) on the first 10 layers, dense after
 *
 * and our converter's extensions, which llama.cpp ignores (upstream
 * config fields it has no key for; absent = llama.cpp's behaviour):
 *
 *   vocab_size                           tokenizer.ggml.tokens count, else token_embd rows
 *   vocab_size_per_layer_input           the per-layer table's rows without its trailing
 *                                        all-zero rows (llama.cpp's converter pads it
 *                                        from 262144 to 262400 rows with zeros)
 *   laurel_rank                          64
 *   activation_sparsity_pattern          the upstream p_l; preferred over the scale,
 *                                        so plans recompute exactly what config.json gives
 *   altup.coef_clip                      0 = none (llama.cpp never clips; upstream clips
 *                                        correction_coefs to +-120, which real checkpoints
 *                                        never reach)
 *   altup.correct_scale                  true
 *
 * Padded vocabulary. Upstream (Gemma3nModel.forward) gives ids >=
 * vocab_size_per_layer_input the per-layer row of id 0; llama.cpp reads
 * the zero rows its converter appended. We keep upstream's rule (the
 * table is bound as its first Vp rows), so text ids < Vp (all of Gemma's
 * 262144 text tokens) behave identically in both engines and the ids
 * 262144..262399 (multimodal soft tokens, never produced by the
 * tokenizer) follow upstream.
 */
#include "gguf_model.h"

#include <math.h>
#include <stdio.h>

#define ARCH "gemma3n"

/* ---- sniffing ---- */

bool gm_gguf_model_sniff(const char *path) {
    if (gm_is_directory(path)) return false;
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    char magic[4];
    bool ok = fread(magic, 1, 4, f) == 4 && memcmp(magic, "GGUF", 4) == 0;
    fclose(f);
    return ok;
}

/* ---- metadata ---- */

typedef struct meta {
    const gm_gguf *g;
    const char *path;
    gm_error *err;
} meta;

static const char *akey(const char *suffix, char *buf, size_t cap) {
    snprintf(buf, cap, ARCH ".%s", suffix);
    return buf;
}

static bool has(const meta *r, const char *key) { return gm_gguf_find_key(r->g, key) >= 0; }

static gm_status out_of_range(const meta *r, const char *key, double v, double lo, double hi) {
    return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: %s = %g is outside the supported range [%g, %g]", r->path, key,
                   v, lo, hi);
}

/* Integer key (any integer type) in [lo, hi]; absent: *out = dflt, or an error when required. */
static gm_status get_int(const meta *r, const char *key, bool required, int64_t dflt, int64_t lo, int64_t hi,
                         int32_t *out) {
    int64_t v = dflt;
    if (required || has(r, key)) {
        gm_status st = gm_gguf_get_int(r->g, key, &v, r->err);
        if (st != GM_OK) return st;
    }
    if (v < lo || v > hi) return out_of_range(r, key, (double)v, (double)lo, (double)hi);
    *out = (int32_t)v;
    return GM_OK;
}

/* A number key (f32, f64 or an integer); absent: dflt, or an error when required. */
static gm_status get_float(const meta *r, const char *key, bool required, float dflt, float *out) {
    int64_t kv = gm_gguf_find_key(r->g, key);
    if (kv < 0) {
        if (required) return gm_fail(r->err, GM_ERR_FORMAT, "%s: missing key '%s'", r->path, key);
        *out = dflt;
        return GM_OK;
    }
    gm_gguf_type t = gm_gguf_kv_type(r->g, kv);
    if (t == GM_GGUF_F32) return gm_gguf_get_f32(r->g, key, out, r->err);
    if (t == GM_GGUF_F64) {
        double d;
        gm_status st = gm_gguf_get_scalar(r->g, key, GM_GGUF_F64, &d, r->err);
        *out = (float)d;
        return st;
    }
    int64_t v;
    gm_status st = gm_gguf_get_int(r->g, key, &v, r->err);
    if (st != GM_OK) return gm_fail(r->err, GM_ERR_FORMAT, "%s: key '%s' is not a number", r->path, key);
    *out = (float)v;
    return GM_OK;
}

static gm_status get_bool(const meta *r, const char *key, bool dflt, bool *out) {
    *out = dflt;
    return has(r, key) ? gm_gguf_get_bool(r->g, key, out, r->err) : GM_OK;
}

/*
 * A per-layer integer: a scalar for every layer, or an array of L entries
 * (llama.cpp's get_key_or_arr). Values must lie in [lo, hi].
 */
static gm_status get_per_layer_int(const meta *r, const char *key, int L, int64_t lo, int64_t hi, int32_t *out) {
    int64_t kv = gm_gguf_find_key(r->g, key);
    if (kv < 0) return gm_fail(r->err, GM_ERR_FORMAT, "%s: missing key '%s'", r->path, key);
    if (gm_gguf_kv_type(r->g, kv) != GM_GGUF_ARRAY) {
        int32_t v = 0;
        gm_status st = get_int(r, key, true, 0, lo, hi, &v);
        for (int l = 0; l < L && st == GM_OK; l++) out[l] = v;
        return st;
    }
    if (gm_gguf_arr_len(r->g, kv) != (uint64_t)L)
        return gm_fail(r->err, GM_ERR_FORMAT, "%s: key '%s' has %llu entries, expected block_count = %d", r->path,
                       key, (unsigned long long)gm_gguf_arr_len(r->g, kv), L);
    for (int l = 0; l < L; l++) {
        int64_t v;
        gm_status st = gm_gguf_arr_int(r->g, kv, (uint64_t)l, &v, r->err);
        if (st != GM_OK) return st;
        if (v < lo || v > hi) return out_of_range(r, key, (double)v, (double)lo, (double)hi);
        out[l] = (int32_t)v;
    }
    return GM_OK;
}

/* Head counts may be per-layer arrays in GGUF; Gemma 3n's are uniform. */
static gm_status get_uniform(const meta *r, const char *key, int L, int64_t hi, int32_t *out) {
    int32_t v[GM_MAX_LAYERS];
    gm_status st = get_per_layer_int(r, key, L, 1, hi, v);
    for (int l = 1; l < L && st == GM_OK; l++)
        if (v[l] != v[0])
            return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: %s differs between layers (%d, %d): not supported",
                           r->path, key, v[0], v[l]);
    if (st == GM_OK) *out = v[0];
    return st;
}

/* A per-layer float array of exactly L entries. */
static gm_status get_float_array(const meta *r, const char *key, int L, float *out) {
    int64_t kv;
    uint64_t n;
    gm_status st = gm_gguf_get_arr(r->g, key, GM_GGUF_INVALID, &kv, &n, r->err);
    if (st != GM_OK) return st;
    if (n != (uint64_t)L)
        return gm_fail(r->err, GM_ERR_FORMAT, "%s: key '%s' has %llu entries, expected block_count = %d", r->path,
                       key, (unsigned long long)n, L);
    for (int l = 0; l < L && st == GM_OK; l++) {
        double v;
        st = gm_gguf_arr_num(r->g, kv, (uint64_t)l, &v, r->err);
        out[l] = (float)v;
    }
    return st;
}

static gm_status read_sizes(const meta *r, gm_text_config *c) {
    char k[96];
    gm_status st;
    if ((st = get_int(r, akey("block_count", k, sizeof k), true, 0, 1, GM_MAX_LAYERS, &c->num_layers))) return st;
    int L = c->num_layers;
    if ((st = get_int(r, akey("embedding_length", k, sizeof k), true, 0, 2, 1 << 16, &c->hidden_size))) return st;
    if ((st = get_int(r, akey("context_length", k, sizeof k), true, 0, 1, INT32_MAX, &c->max_position_embeddings)))
        return st;
    if ((st = get_uniform(r, akey("attention.head_count", k, sizeof k), L, 1024, &c->num_heads))) return st;
    c->num_kv_heads = c->num_heads;
    if (has(r, akey("attention.head_count_kv", k, sizeof k)) &&
        (st = get_uniform(r, k, L, 1024, &c->num_kv_heads))) return st;
    if ((st = get_int(r, akey("attention.key_length", k, sizeof k), false, c->hidden_size / c->num_heads, 2, 4096,
                      &c->head_dim))) return st;
    int32_t v_len = 0;
    if ((st = get_int(r, akey("attention.value_length", k, sizeof k), false, c->head_dim, 1, 4096, &v_len))) return st;
    if (v_len != c->head_dim)
        return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: " ARCH ".attention.value_length %d != key_length %d",
                       r->path, v_len, c->head_dim);
    if ((st = get_per_layer_int(r, akey("feed_forward_length", k, sizeof k), L, 1, 1 << 20, c->intermediate_size)))
        return st;
    if ((st = get_int(r, akey("attention.sliding_window", k, sizeof k), true, 0, 1, INT32_MAX, &c->sliding_window)))
        return st;
    if ((st = get_int(r, akey("attention.shared_kv_layers", k, sizeof k), false, GM_MAX(0, L - 20), 0, L - 1,
                      &c->num_kv_shared_layers))) return st;
    if ((st = get_int(r, akey("altup.num_inputs", k, sizeof k), false, 4, 1, GM_MAX_ALTUP, &c->altup_num_inputs)))
        return st;
    if ((st = get_int(r, akey("altup.active_idx", k, sizeof k), false, 0, 0, GM_MAX_ALTUP - 1, &c->altup_active_idx)))
        return st;
    if ((st = get_int(r, akey("embedding_length_per_layer_input", k, sizeof k), false, 256, 1, 1 << 14,
                      &c->hidden_size_per_layer_input))) return st;
    return get_int(r, akey("laurel_rank", k, sizeof k), false, 64, 1, 1 << 16, &c->laurel_rank);
}

static gm_status read_layer_types(const meta *r, gm_text_config *c) {
    char k[96];
    akey("attention.sliding_window_pattern", k, sizeof k);
    int64_t kv = gm_gguf_find_key(r->g, k);
    int L = c->num_layers;
    if (kv < 0 || gm_gguf_kv_type(r->g, kv) != GM_GGUF_ARRAY) { /* llama.cpp set_swa_pattern(n) */
        int32_t n = 5;
        gm_status st = get_int(r, k, false, 5, 0, INT32_MAX, &n);
        for (int l = 0; l < L; l++) c->layer_is_sliding[l] = n == 0 || l % n < n - 1;
        return st;
    }
    if (gm_gguf_arr_len(r->g, kv) != (uint64_t)L)
        return gm_fail(r->err, GM_ERR_FORMAT, "%s: key '%s' has %llu entries, expected block_count = %d", r->path, k,
                       (unsigned long long)gm_gguf_arr_len(r->g, kv), L);
    for (int l = 0; l < L; l++) {
        int64_t v;
        gm_status st = gm_gguf_arr_int(r->g, kv, (uint64_t)l, &v, r->err);
        if (st != GM_OK) return st;
        c->layer_is_sliding[l] = v != 0;
    }
    return GM_OK;
}

/* Standard normal CDF: the sparsity p a std multiplier stands for. */
static double normal_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

static gm_status read_sparsity(const meta *r, gm_text_config *c) {
    char k[96];
    int L = c->num_layers;
    gm_status st;
    if (has(r, akey("activation_sparsity_pattern", k, sizeof k))) { /* ours: the upstream values */
        if ((st = get_float_array(r, k, L, c->activation_sparsity))) return st;
        for (int l = 0; l < L; l++)
            if (!(c->activation_sparsity[l] >= 0 && c->activation_sparsity[l] < 1))
                return out_of_range(r, k, c->activation_sparsity[l], 0, 0.999999);
        return GM_OK;
    }
    c->std_multiplier_stored = true;
    if (has(r, akey("activation_sparsity_scale", k, sizeof k))) {
        if ((st = get_float_array(r, k, L, c->std_multiplier))) return st;
    } else { /* llama.cpp: n_layer_sparsity = 10, f_sparsity_std_mul = icdf(0.95) */
        for (int l = 0; l < L; l++) c->std_multiplier[l] = l < 10 ? 1.6448533535003662f : -INFINITY;
    }
    for (int l = 0; l < L; l++) {
        float s = c->std_multiplier[l];
        if (isnan(s) || s == INFINITY)
            return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: %s[%d] = %g is not supported", r->path, k, l, s);
        /* icdf(0) = -inf marks a dense layer (the converter writes icdf of every p_l) */
        c->activation_sparsity[l] = s == -INFINITY ? 0.0f : (float)normal_cdf(s);
        if (s != -INFINITY && !(c->activation_sparsity[l] > 0 && c->activation_sparsity[l] < 1))
            return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: %s[%d] = %g is not supported", r->path, k, l, s);
    }
    return GM_OK;
}

/* The same rules as config.c's check_supported, for values that came from metadata. */
static gm_status check_supported(const meta *r, const gm_text_config *c) {
    if (c->num_heads % c->num_kv_heads != 0)
        return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: head_count %d is not a multiple of head_count_kv %d", r->path,
                       c->num_heads, c->num_kv_heads);
    if (c->head_dim % 2 != 0)
        return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: key_length %d must be even (RoPE)", r->path, c->head_dim);
    if (c->altup_active_idx >= c->altup_num_inputs)
        return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: altup.active_idx %d >= altup.num_inputs %d", r->path,
                       c->altup_active_idx, c->altup_num_inputs);
    if (!(c->rms_norm_eps > 0) || !(c->rope_theta_full > 1) || !(c->rope_theta_sliding > 1) ||
        !(c->final_logit_softcap >= 0) || !(c->altup_coef_clip >= 0))
        return gm_fail(r->err, GM_ERR_UNSUPPORTED,
                       "%s: unsupported value (rms eps %g, rope %g / %g, softcap %g, coef clip %g)", r->path,
                       c->rms_norm_eps, c->rope_theta_full, c->rope_theta_sliding, c->final_logit_softcap,
                       c->altup_coef_clip);
    return gm_config_check_kv_sharing(c, r->path, r->err);
}

static gm_status read_floats(const meta *r, gm_text_config *c) {
    char k[96];
    gm_status st;
    if ((st = get_float(r, akey("attention.layer_norm_rms_epsilon", k, sizeof k), true, 0, &c->rms_norm_eps))) return st;
    if ((st = get_float(r, akey("rope.freq_base", k, sizeof k), false, 10000.0f, &c->rope_theta_full))) return st;
    if ((st = get_float(r, akey("rope.freq_base_swa", k, sizeof k), false, 10000.0f, &c->rope_theta_sliding))) return st;
    if ((st = get_float(r, akey("final_logit_softcapping", k, sizeof k), false, 30.0f, &c->final_logit_softcap)))
        return st;
    if ((st = get_float(r, akey("altup.coef_clip", k, sizeof k), false, 0.0f, &c->altup_coef_clip))) return st;
    if ((st = get_bool(r, akey("altup.correct_scale", k, sizeof k), true, &c->altup_correct_scale))) return st;
    if (has(r, akey("rope.scaling.type", k, sizeof k))) {
        const char *s;
        size_t n;
        if ((st = gm_gguf_get_str(r->g, k, &s, &n, r->err))) return st;
        if (!(n == 4 && memcmp(s, "none", 4) == 0))
            return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: %s '%.*s' is not supported (only none)", r->path, k,
                           (int)GM_MIN(n, 32), s);
    }
    if (has(r, akey("hidden_activation", k, sizeof k))) {
        const char *s;
        size_t n;
        if ((st = gm_gguf_get_str(r->g, k, &s, &n, r->err))) return st;
        if (!(n == 17 && memcmp(s, "gelu_pytorch_tanh", 17) == 0))
            return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: %s must be gelu_pytorch_tanh", r->path, k);
    }
    return GM_OK;
}

/* ---- vocabulary sizes ---- */

static const gm_gguf_tensor *tensor(const gm_gguf *g, const char *name) {
    return gm_gguf_tensor_at(g, gm_gguf_find_tensor(g, name));
}

/* True when row r of t holds only zeros (any sign; block types: every scale is zero). */
static bool row_is_zero(const gm_gguf_tensor *t, int64_t r, size_t row_bytes) {
    const uint8_t *p = (const uint8_t *)t->data + (size_t)r * row_bytes;
    switch (t->type) {
    case GM_GGML_F32:
        for (size_t i = 0; i < row_bytes; i += 4) {
            uint32_t v;
            memcpy(&v, p + i, 4);
            if (v & 0x7fffffffu) return false;
        }
        return true;
    case GM_GGML_F16: case GM_GGML_BF16:
        for (size_t i = 0; i < row_bytes; i += 2)
            if ((p[i] | (p[i + 1] & 0x7f)) != 0) return false;
        return true;
    default: { /* Q8_0 / Q4_0: the block's fp16 scale comes first */
        size_t bs = (size_t)gm_ggml_type_traits(t->type)->type_size;
        for (size_t i = 0; i < row_bytes; i += bs)
            if ((p[i] | (p[i + 1] & 0x7f)) != 0) return false;
        return true;
    }
    }
}

static gm_status read_vocab_sizes(const meta *r, gm_text_config *c) {
    char k[96];
    gm_status st;
    const gm_gguf_tensor *embd = tensor(r->g, "token_embd.weight");
    const gm_gguf_tensor *ple = tensor(r->g, "per_layer_token_embd.weight");
    int64_t tokens = -1;
    int64_t kv = gm_gguf_find_key(r->g, "tokenizer.ggml.tokens");
    if (kv >= 0 && gm_gguf_kv_type(r->g, kv) == GM_GGUF_ARRAY) tokens = (int64_t)gm_gguf_arr_len(r->g, kv);
    /* without either, the binder reports the missing token_embd */
    int64_t dflt = tokens > 0 ? tokens : embd && embd->n_dims == 2 ? embd->ne[1] : 1;
    if ((st = get_int(r, akey("vocab_size", k, sizeof k), false, dflt, 1, GM_TOKENIZER_MAX_ID, &c->vocab_size)))
        return st;
    if (has(r, akey("vocab_size_per_layer_input", k, sizeof k)))
        return get_int(r, k, true, 0, 1, c->vocab_size, &c->vocab_size_per_layer_input);
    c->vocab_size_per_layer_input = c->vocab_size;
    size_t row_bytes;
    if (!ple || ple->n_dims != 2 || ple->ne[1] != c->vocab_size || !gm_ggml_nbytes(ple->type, ple->ne[0], &row_bytes))
        return GM_OK; /* the binder reports a missing or misshapen table */
    int64_t rows = ple->ne[1];
    while (rows > 1 && row_is_zero(ple, rows - 1, row_bytes)) rows--;
    c->vocab_size_per_layer_input = (int32_t)rows;
    return GM_OK;
}

static gm_status read_config(const meta *r, gm_text_config *c) {
    memset(c, 0, sizeof *c);
    gm_status st = read_sizes(r, c);
    if (st == GM_OK) st = read_layer_types(r, c);
    if (st == GM_OK) st = read_sparsity(r, c);
    if (st == GM_OK) st = read_floats(r, c);
    if (st == GM_OK) st = read_vocab_sizes(r, c);
    if (st != GM_OK) return st;
    c->bos_id = 2, c->eos_id = 1, c->pad_id = 0; /* upstream's, unless the tokenizer keys say otherwise */
    if ((st = get_int(r, "tokenizer.ggml.bos_token_id", false, c->bos_id, 0, c->vocab_size - 1, &c->bos_id))) return st;
    if ((st = get_int(r, "tokenizer.ggml.eos_token_id", false, c->eos_id, 0, c->vocab_size - 1, &c->eos_id))) return st;
    if ((st = get_int(r, "tokenizer.ggml.padding_token_id", false, c->pad_id, 0, c->vocab_size - 1, &c->pad_id)))
        return st;
    return check_supported(r, c);
}

gm_status gm_gguf_model_load(gm_model *m, gm_error *err) {
    gm_status st = gm_gguf_open_file(m->path, &m->gguf, err);
    if (st != GM_OK) return st;
    meta r = {.g = m->gguf, .path = m->path, .err = err};
    const char *arch;
    size_t n;
    if ((st = gm_gguf_get_str(m->gguf, "general.architecture", &arch, &n, err))) return st;
    if (n != strlen(ARCH) || memcmp(arch, ARCH, n) != 0)
        return gm_fail(err, GM_ERR_UNSUPPORTED, "%s: unsupported architecture '%.*s' (only " ARCH ")", m->path,
                       (int)GM_MIN(n, 64), arch);
    m->prefix = "model.language_model.";
    return read_config(&r, &m->cfg);
}

/* ---- tensor names ---- */

static const struct { const char *upstream, *gguf; } global_names[] = {
    {"embed_tokens.weight", "token_embd.weight"},
    {"embed_tokens_per_layer.weight", "per_layer_token_embd.weight"},
    {"per_layer_model_projection.weight", "per_layer_model_proj.weight"},
    {"per_layer_projection_norm.weight", "per_layer_proj_norm.weight"},
    {"norm.weight", "output_norm.weight"},
    {"altup_projections.weight", "altup_proj.weight"},           /* stacked, see below */
    {"altup_unembed_projections.weight", "altup_unembd_proj.weight"},
};

static const struct { const char *upstream, *gguf; } layer_names[] = {
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"input_layernorm.weight", "attn_norm.weight"},
    {"post_attention_layernorm.weight", "post_attention_norm.weight"},
    {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
    {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"per_layer_input_gate.weight", "inp_gate.weight"},
    {"per_layer_projection.weight", "proj.weight"},
    {"post_per_layer_input_norm.weight", "post_norm.weight"},
    {"altup.correct_output_scale", "altup_correct_scale.weight"}, /* upstream has no ".weight" here */
    {"altup.correction_coefs.weight", "altup_correct_coef.weight"},
    {"altup.prediction_coefs.weight", "altup_predict_coef.weight"},
    {"altup.modality_router.weight", "altup_router.weight"},
    {"altup.router_norm.weight", "altup_router_norm.weight"},
    {"laurel.linear_left.weight", "laurel_l.weight"},
    {"laurel.linear_right.weight", "laurel_r.weight"},
    {"laurel.post_laurel_norm.weight", "laurel_post_norm.weight"},
};

/* "prefix<N>.rest" -> N and rest; false when s does not look like that. */
static bool split_index(const char *s, const char *prefix, int *n, const char **rest) {
    size_t k = strlen(prefix);
    if (strncmp(s, prefix, k) != 0 || s[k] < '0' || s[k] > '9') return false;
    long v = 0;
    const char *p = s + k;
    while (*p >= '0' && *p <= '9' && v < 100000) v = v * 10 + (*p++ - '0');
    if (*p != '.') return false;
    *n = (int)v;
    *rest = p + 1;
    return true;
}

bool gm_gguf_tensor_name(const char *local, char *buf, size_t cap, int *slice) {
    int n;
    const char *rest;
    *slice = -1;
    if (split_index(local, "altup_projections.", &n, &rest) && strcmp(rest, "weight") == 0) {
        *slice = n;
        return (size_t)snprintf(buf, cap, "altup_proj.weight") < cap;
    }
    if (split_index(local, "altup_unembed_projections.", &n, &rest) && strcmp(rest, "weight") == 0) {
        *slice = n;
        return (size_t)snprintf(buf, cap, "altup_unembd_proj.weight") < cap;
    }
    if (split_index(local, "layers.", &n, &rest)) {
        for (size_t i = 0; i < GM_ARRAY_LEN(layer_names); i++)
            if (strcmp(rest, layer_names[i].upstream) == 0)
                return (size_t)snprintf(buf, cap, "blk.%d.%s", n, layer_names[i].gguf) < cap;
        return false;
    }
    for (size_t i = 0; i < GM_ARRAY_LEN(global_names); i++)
        if (strcmp(local, global_names[i].upstream) == 0)
            return (size_t)snprintf(buf, cap, "%s", global_names[i].gguf) < cap;
    return false;
}

bool gm_gguf_model_upstream_name(const char *name, char *buf, size_t cap) {
    int n;
    const char *rest;
    if (split_index(name, "blk.", &n, &rest)) {
        for (size_t i = 0; i < GM_ARRAY_LEN(layer_names); i++)
            if (strcmp(rest, layer_names[i].gguf) == 0)
                return (size_t)snprintf(buf, cap, "layers.%d.%s", n, layer_names[i].upstream) < cap;
        return false;
    }
    for (size_t i = 0; i < GM_ARRAY_LEN(global_names); i++)
        if (strcmp(name, global_names[i].gguf) == 0)
            return (size_t)snprintf(buf, cap, "%s", global_names[i].upstream) < cap;
    return false;
}

static gm_dtype dtype_of(int32_t ggml_type) {
    switch (ggml_type) {
    case GM_GGML_F16: return GM_DTYPE_F16;
    case GM_GGML_BF16: return GM_DTYPE_BF16;
    case GM_GGML_Q8_0: return GM_DTYPE_Q8_0;
    case GM_GGML_Q4_0: return GM_DTYPE_Q4_0;
    default: return GM_DTYPE_F32; /* the reader admits nothing else */
    }
}

/* "{2048, 2048, 3}" */
static void ne_str(const int64_t *ne, int n, char *buf, size_t cap) {
    size_t o = (size_t)snprintf(buf, cap, "{");
    for (int i = 0; i < n && o < cap; i++) o += (size_t)snprintf(buf + o, cap - o, i ? ", %lld" : "%lld", (long long)ne[i]);
    if (o < cap) snprintf(buf + o, cap - o, "}");
}

static gm_status bad_shape(const gm_model *m, const gm_gguf_tensor *t, const int64_t *want, int n, gm_error *err) {
    char got[96], exp[96];
    ne_str(t->ne, t->n_dims, got, sizeof got);
    ne_str(want, n, exp, sizeof exp);
    return gm_fail(err, GM_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s", m->path, t->name, got, exp);
}

gm_status gm_gguf_model_find(const gm_model *m, const char *local, gm_tensor_view *out, gm_error *err) {
    char name[GM_GGUF_MAX_NAME + 1];
    int slice;
    if (!gm_gguf_tensor_name(local, name, sizeof name, &slice))
        return gm_fail(err, GM_ERR_INTERNAL, "no GGUF name for tensor '%s'", local);
    const gm_gguf_tensor *t = tensor(m->gguf, name);
    if (!t) return gm_fail(err, GM_ERR_FORMAT, "%s: missing tensor '%s'", m->path, name);
    const gm_text_config *c = &m->cfg;
    *out = (gm_tensor_view){.name = t->name, .type = dtype_of(t->type), .ndim = t->n_dims, .data = t->data,
                            .nbytes = t->size, .ggml_order = true};
    for (int i = 0; i < t->n_dims; i++) out->shape[i] = t->ne[t->n_dims - 1 - i];
    size_t row_bytes = 0;
    gm_ggml_nbytes(t->type, t->ne[0], &row_bytes);
    if (slice >= 0) { /* altup_proj / altup_unembd_proj: {H, H, K-1}, slice i = projection i */
        int64_t H = c->hidden_size, want[3] = {H, H, c->altup_num_inputs - 1};
        if (t->n_dims != 3 || t->ne[0] != H || t->ne[1] != H || t->ne[2] != want[2]) return bad_shape(m, t, want, 3, err);
        out->ndim = 2;
        out->shape[0] = out->shape[1] = H;
        out->nbytes = row_bytes * (size_t)H;
        out->data = (const uint8_t *)t->data + (size_t)slice * out->nbytes;
    } else if (strcmp(local, "embed_tokens_per_layer.weight") == 0) {
        /* {L*P, V} as llama.cpp pads it (or {L*P, Vp}): bound as its first Vp rows */
        int64_t want[2] = {(int64_t)c->num_layers * c->hidden_size_per_layer_input, c->vocab_size};
        if (t->n_dims != 2 || t->ne[0] != want[0] || (t->ne[1] != c->vocab_size && t->ne[1] != c->vocab_size_per_layer_input))
            return bad_shape(m, t, want, 2, err);
        out->shape[0] = c->vocab_size_per_layer_input;
        out->nbytes = row_bytes * (size_t)c->vocab_size_per_layer_input;
    }
    return GM_OK;
}

/* ---- tokenizer ---- */

static const char SPM_SPACE[] = "\xE2\x96\x81"; /* U+2581, SentencePiece's visible space */

/* s with every ' ' replaced by U+2581, appended to arena. */
static bool unspace(gm_buf *arena, gm_str s) {
    for (size_t i = 0; i < s.len; i++)
        if (!(s.ptr[i] == ' ' ? gm_buf_append(arena, SPM_SPACE, 3) : gm_buf_append(arena, &s.ptr[i], 1))) return false;
    return true;
}

static bool has_space(gm_str s) { return s.len && memchr(s.ptr, ' ', s.len) != NULL; }

static int32_t find_token(const gm_gguf_vocab *v, const char *s) {
    size_t n = strlen(s);
    for (int32_t i = 0; i < v->n_tokens; i++)
        if (v->tokens[i].len == n && memcmp(v->tokens[i].ptr, s, n) == 0) return i;
    return -1;
}

static int32_t token_type(const gm_gguf_vocab *v, int32_t i) { return v->types ? v->types[i] : GM_GGUF_TOKEN_NORMAL; }

/*
 * The token strings as upstream has them: padding slots (UNUSED) are no
 * token; user-defined tokens get their U+2581 back (llama.cpp's converter
 * writes them as spaces, "pre-normalize user-defined spaces"), the rest
 * point into the file. Rewritten strings live in `arena`.
 */
static bool upstream_tokens(const gm_gguf_vocab *v, gm_buf *arena, gm_str *tokens) {
    size_t *off = gm_malloc((size_t)GM_MAX(v->n_tokens, 1) * sizeof *off);
    bool ok = off != NULL;
    for (int32_t i = 0; ok && i < v->n_tokens; i++) {
        off[i] = arena->len;
        if (token_type(v, i) == GM_GGUF_TOKEN_USER_DEFINED && has_space(v->tokens[i])) ok = unspace(arena, v->tokens[i]);
    }
    for (int32_t i = 0; ok && i < v->n_tokens; i++) { /* the arena may have moved: take pointers now */
        size_t end = i + 1 < v->n_tokens ? off[i + 1] : arena->len;
        if (token_type(v, i) == GM_GGUF_TOKEN_UNUSED) tokens[i] = (gm_str){NULL, 0};
        else if (end > off[i]) tokens[i] = (gm_str){arena->data + off[i], end - off[i]};
        else tokens[i] = v->tokens[i];
    }
    gm_free(off);
    return ok;
}

gm_status gm_gguf_vocab_build(const gm_gguf_vocab *v, const char *what, gm_tokenizer **out, gm_error *err) {
    *out = NULL;
    gm_str *tokens = gm_calloc((size_t)GM_MAX(v->n_tokens, 1), sizeof *tokens);
    gm_added_token *added = gm_calloc((size_t)GM_MAX(v->n_tokens, 1), sizeof *added);
    gm_buf arena = {0};
    if (!tokens || !added || !upstream_tokens(v, &arena, tokens)) {
        gm_buf_free(&arena);
        gm_free(added);
        gm_free(tokens);
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory for the vocabulary", what);
    }
    /* control, unknown and user-defined tokens are upstream's added tokens (matched before BPE) */
    size_t n_added = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        int32_t type = token_type(v, i);
        if (type == GM_GGUF_TOKEN_CONTROL || type == GM_GGUF_TOKEN_UNKNOWN)
            added[n_added++] = (gm_added_token){i, tokens[i], GM_ADDED_SPECIAL};
        else if (type == GM_GGUF_TOKEN_USER_DEFINED)
            added[n_added++] = (gm_added_token){i, tokens[i], 0};
    }
    gm_tokenizer_spec spec = {
        .n_tokens = v->n_tokens, .tokens = tokens,
        .merges = v->merges, .n_merges = v->n_merges, .scores = v->merges ? NULL : v->scores,
        .byte_fallback = true, .fuse_unk = true, .ignore_merges = false,
        .unk_id = v->unk_id >= 0 && v->unk_id < v->n_tokens ? v->unk_id : -1,
        .added = added, .n_added = n_added,
        .split = GM_SPLIT_MERGED_WITH_PREVIOUS, /* Gemma's Split(" "): a no-op after the Replace */
        .split_pattern = {" ", 1},
        .dec_replace_pattern = {SPM_SPACE, 3}, .dec_replace_content = {" ", 1}, .dec_byte_fallback = true,
        .bos_id = v->bos_id >= 0 && v->bos_id < v->n_tokens ? v->bos_id : -1,
    };
    if (v->add_space_prefix) spec.norm[spec.n_norm++] = (gm_norm_step){GM_NORM_PREPEND, {NULL, 0}, {SPM_SPACE, 3}};
    spec.norm[spec.n_norm++] = (gm_norm_step){GM_NORM_REPLACE, {" ", 1}, {SPM_SPACE, 3}};
    /* as tokenizer_json.c: "<eos>" (or "</s>") is the tokenizer's eos; the key may name <end_of_turn> */
    spec.eos_id = find_token(v, "<eos>");
    if (spec.eos_id < 0) spec.eos_id = find_token(v, "</s>");
    if (spec.eos_id < 0) spec.eos_id = v->eos_id >= 0 && v->eos_id < v->n_tokens ? v->eos_id : -1;
    gm_status st = gm_tokenizer_build(&spec, what, out, err);
    gm_buf_free(&arena);
    gm_free(added);
    gm_free(tokens);
    return st;
}

/* A string array key as gm_str views into the file. */
static gm_status str_array(const meta *r, const char *key, gm_str **out, uint64_t *n) {
    int64_t kv;
    gm_status st = gm_gguf_get_arr(r->g, key, GM_GGUF_STR, &kv, n, r->err);
    if (st != GM_OK) return st;
    if (*n > (uint64_t)GM_TOKENIZER_MAX_ID * 4)
        return gm_fail(r->err, GM_ERR_FORMAT, "%s: '%s' has too many entries", r->path, key);
    *out = gm_calloc((size_t)GM_MAX(*n, 1), sizeof **out);
    if (!*out) return gm_fail(r->err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
    for (uint64_t i = 0; i < *n && st == GM_OK; i++) st = gm_gguf_arr_str(r->g, kv, i, &(*out)[i].ptr, &(*out)[i].len, r->err);
    return st;
}

/* An optional numeric array of n entries copied out as f32 or i32 (elem_f32). */
static gm_status num_array(const meta *r, const char *key, uint64_t n, bool as_float, void **out) {
    *out = NULL;
    if (!has(r, key)) return GM_OK;
    int64_t kv;
    uint64_t len;
    gm_status st = gm_gguf_get_arr(r->g, key, GM_GGUF_INVALID, &kv, &len, r->err);
    if (st != GM_OK) return st;
    if (len != n)
        return gm_fail(r->err, GM_ERR_FORMAT, "%s: '%s' has %llu entries, expected %llu (one per token)", r->path, key,
                       (unsigned long long)len, (unsigned long long)n);
    *out = gm_malloc((size_t)GM_MAX(n, 1) * 4);
    if (!*out) return gm_fail(r->err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
    for (uint64_t i = 0; i < n && st == GM_OK; i++) {
        double d;
        if (as_float) {
            st = gm_gguf_arr_num(r->g, kv, i, &d, r->err);
            ((float *)*out)[i] = (float)d;
        } else {
            int64_t v = 0;
            st = gm_gguf_arr_int(r->g, kv, i, &v, r->err);
            ((int32_t *)*out)[i] = (int32_t)GM_MAX(INT32_MIN, GM_MIN(INT32_MAX, v));
        }
    }
    return st;
}

/* "left right" -> two views (split at the first space after the first byte, as llama.cpp). */
static gm_status split_merges(const meta *r, const gm_str *lines, uint64_t n, gm_str **pairs) {
    *pairs = gm_calloc((size_t)GM_MAX(n, 1) * 2, sizeof **pairs);
    if (!*pairs) return gm_fail(r->err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
    for (uint64_t i = 0; i < n; i++) {
        const char *sp = lines[i].len > 1 ? memchr(lines[i].ptr + 1, ' ', lines[i].len - 1) : NULL;
        if (!sp)
            return gm_fail(r->err, GM_ERR_FORMAT, "%s: tokenizer.ggml.merges[%llu] is not \"left right\"", r->path,
                           (unsigned long long)i);
        (*pairs)[2 * i] = (gm_str){lines[i].ptr, (size_t)(sp - lines[i].ptr)};
        (*pairs)[2 * i + 1] = (gm_str){sp + 1, lines[i].len - (size_t)(sp + 1 - lines[i].ptr)};
    }
    return GM_OK;
}

static int32_t opt_id(const meta *r, const char *key, int32_t dflt) {
    int64_t v;
    if (!has(r, key) || gm_gguf_get_int(r->g, key, &v, NULL) != GM_OK || v < 0 || v > INT32_MAX) return dflt;
    return (int32_t)v;
}

gm_status gm_gguf_model_tokenizer(gm_model *m, gm_error *err) {
    meta r = {.g = m->gguf, .path = m->path, .err = err};
    const char *model;
    size_t n;
    if (!has(&r, "tokenizer.ggml.model")) return GM_OK;
    gm_status st = gm_gguf_get_str(m->gguf, "tokenizer.ggml.model", &model, &n, err);
    if (st != GM_OK) return st;
    if ((n == 4 && memcmp(model, "none", 4) == 0) || (n == 8 && memcmp(model, "no_vocab", 8) == 0)) return GM_OK;
    if (!(n == 5 && memcmp(model, "llama", 5) == 0))
        return gm_fail(err, GM_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model '%.*s' is not supported (only llama)", m->path,
                       (int)GM_MIN(n, 32), model);
    gm_str *tokens = NULL, *lines = NULL, *pairs = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    uint64_t n_tokens = 0, n_merges = 0;
    st = str_array(&r, "tokenizer.ggml.tokens", &tokens, &n_tokens);
    if (st == GM_OK && n_tokens > (uint64_t)m->cfg.vocab_size) /* every id it produces must have an embedding */
        st = gm_fail(err, GM_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries, more than the %d of token_embd",
                     m->path, (unsigned long long)n_tokens, m->cfg.vocab_size);
    if (st == GM_OK) st = num_array(&r, "tokenizer.ggml.scores", n_tokens, true, (void **)&scores);
    if (st == GM_OK) st = num_array(&r, "tokenizer.ggml.token_type", n_tokens, false, (void **)&types);
    if (st == GM_OK && has(&r, "tokenizer.ggml.merges")) {
        st = str_array(&r, "tokenizer.ggml.merges", &lines, &n_merges);
        if (st == GM_OK) st = split_merges(&r, lines, n_merges, &pairs);
    }
    bool space_prefix = true; /* llama.cpp's default for SentencePiece vocabularies */
    if (st == GM_OK) st = get_bool(&r, "tokenizer.ggml.add_space_prefix", true, &space_prefix);
    if (st == GM_OK) {
        gm_gguf_vocab v = {.n_tokens = (int32_t)n_tokens, .tokens = tokens, .scores = scores, .types = types,
                           .merges = pairs, .n_merges = (size_t)n_merges,
                           /* llama.cpp's SentencePiece defaults when the ids are absent */
                           .bos_id = opt_id(&r, "tokenizer.ggml.bos_token_id", 1),
                           .eos_id = opt_id(&r, "tokenizer.ggml.eos_token_id", 2),
                           .unk_id = opt_id(&r, "tokenizer.ggml.unknown_token_id", 0),
                           .add_space_prefix = space_prefix};
        st = gm_gguf_vocab_build(&v, m->path, &m->tokenizer, err);
    }
    gm_free(tokens);
    gm_free(lines);
    gm_free(pairs);
    gm_free(scores);
    gm_free(types);
    return st;
}

/* ---- description ---- */

void gm_gguf_model_describe(const gm_model *m, gm_buf *b) {
    const gm_gguf *g = m->gguf;
    int64_t count[GM_GGML_TYPE_COUNT] = {0}, elems[GM_GGML_TYPE_COUNT] = {0};
    size_t bytes = 0;
    for (int64_t i = 0; i < gm_gguf_tensor_count(g); i++) {
        const gm_gguf_tensor *t = gm_gguf_tensor_at(g, i);
        if (t->type >= 0 && t->type < GM_GGML_TYPE_COUNT) count[t->type]++, elems[t->type] += t->n_elems;
        bytes += t->size;
    }
    int64_t ftype = -1;
    if (gm_gguf_find_key(g, "general.file_type") >= 0) gm_gguf_get_int(g, "general.file_type", &ftype, NULL);
    gm_buf_printf(b, "format: GGUF v%u, architecture " ARCH ", alignment %zu, general.file_type %lld\n",
                  gm_gguf_version(g), gm_gguf_alignment(g), (long long)ftype);
    gm_buf_printf(b, "parameters: %.3f M text decoder, %.3f M in the file (%.1f MB of tensor data, %lld tensors)\n",
                  m->n_params_text / 1e6, m->n_params_file / 1e6, bytes / 1e6, (long long)gm_gguf_tensor_count(g));
    gm_buf_printf(b, "tensor types:");
    for (int t = 0; t < GM_GGML_TYPE_COUNT; t++)
        if (count[t]) gm_buf_printf(b, " %s x%lld (%.3f M)", gm_ggml_type_name(t), (long long)count[t], elems[t] / 1e6);
    if (m->tokenizer)
        gm_buf_printf(b, "\ntokenizer: tokenizer.ggml (llama, %d tokens)\n", gm_tokenizer_vocab_size(m->tokenizer));
    else
        gm_buf_printf(b, "\ntokenizer: none (token ids only)\n");
}
