/*
 * config.c - Gemma3nTextConfig from config.json.
 *
 * Accepts the multimodal layout (model_type "gemma3n", text fields under
 * "text_config") and the text-only layout (model_type "gemma3n_text" at the
 * root). Key names are those of the released checkpoints (transformers
 * 4.5x: rope_theta, rope_local_base_freq); the newer "rope_parameters"
 * form ({"full_attention": {"rope_theta": ..}, "sliding_attention": ..})
 * is read too. Anything the decoder cannot honour is an error naming the
 * field, never silently ignored.
 */
#include "model.h"

#include "json.h"

#include <math.h>
#include <stdio.h>

typedef struct cfg_reader {
    const gm_json *j;
    int obj;            /* the text config object */
    const char *path;
    const char *prefix; /* "text_config." or "" for messages */
    gm_error *err;
} cfg_reader;

static gm_status missing(cfg_reader *r, const char *key) {
    return gm_fail(r->err, GM_ERR_FORMAT, "%s: %s%s is missing or not a number", r->path, r->prefix, key);
}

static gm_status get_int(cfg_reader *r, const char *key, int64_t lo, int64_t hi, int32_t *out) {
    int64_t v;
    if (!gm_json_int64(r->j, gm_json_get(r->j, r->obj, key), &v)) return missing(r, key);
    if (v < lo || v > hi)
        return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: %s%s = %lld is outside the supported range [%lld, %lld]",
                       r->path, r->prefix, key, (long long)v, (long long)lo, (long long)hi);
    *out = (int32_t)v;
    return GM_OK;
}

/* Optional integer: absent or null keeps *out. */
static gm_status get_int_opt(cfg_reader *r, const char *key, int64_t lo, int64_t hi, int32_t *out) {
    int t = gm_json_get(r->j, r->obj, key);
    if (t < 0 || gm_json_kind(r->j, t) == GM_JSON_NULL) return GM_OK;
    return get_int(r, key, lo, hi, out);
}

static gm_status get_float_opt(cfg_reader *r, int obj, const char *key, float *out) {
    int t = gm_json_get(r->j, obj, key);
    if (t < 0 || gm_json_kind(r->j, t) == GM_JSON_NULL) return GM_OK;
    double v;
    if (!gm_json_number(r->j, t, &v)) return missing(r, key);
    *out = (float)v;
    return GM_OK;
}

static gm_status get_float(cfg_reader *r, const char *key, float *out) {
    int t = gm_json_get(r->j, r->obj, key);
    if (t < 0 || gm_json_kind(r->j, t) != GM_JSON_NUMBER) return missing(r, key);
    return get_float_opt(r, r->obj, key, out);
}

static bool get_bool(cfg_reader *r, const char *key, bool dflt) {
    int t = gm_json_get(r->j, r->obj, key);
    if (t < 0) return dflt;
    return gm_json_kind(r->j, t) == GM_JSON_TRUE;
}

/* `key` as a per-layer list of L numbers, or a single number repeated. */
static gm_status get_per_layer(cfg_reader *r, const char *key, int L, bool integer, double lo, double hi,
                               double *out) {
    int t = gm_json_get(r->j, r->obj, key);
    double v;
    if (t >= 0 && gm_json_number(r->j, t, &v)) {
        for (int l = 0; l < L; l++) out[l] = v;
    } else if (t >= 0 && gm_json_kind(r->j, t) == GM_JSON_ARRAY) {
        if ((int)r->j->tok[t].size != L)
            return gm_fail(r->err, GM_ERR_FORMAT, "%s: %s%s has %u entries, expected num_hidden_layers = %d",
                           r->path, r->prefix, key, r->j->tok[t].size, L);
        int l = 0;
        for (int e = gm_json_first(r->j, t); e >= 0; e = gm_json_next_elem(r->j, t, e), l++)
            if (!gm_json_number(r->j, e, &out[l]))
                return gm_fail(r->err, GM_ERR_FORMAT, "%s: %s%s[%d] is not a number", r->path, r->prefix, key, l);
    } else {
        return missing(r, key);
    }
    for (int l = 0; l < L; l++)
        if (out[l] < lo || out[l] > hi || (integer && out[l] != floor(out[l])))
            return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: %s%s[%d] = %g is not supported", r->path,
                           r->prefix, key, l, out[l]);
    return GM_OK;
}

static gm_status read_layer_types(cfg_reader *r, gm_text_config *c) {
    int t = gm_json_get(r->j, r->obj, "layer_types");
    if (t < 0 || gm_json_kind(r->j, t) != GM_JSON_ARRAY)
        return gm_fail(r->err, GM_ERR_FORMAT, "%s: %slayer_types is missing", r->path, r->prefix);
    if ((int)r->j->tok[t].size != c->num_layers)
        return gm_fail(r->err, GM_ERR_FORMAT, "%s: %slayer_types has %u entries, expected %d", r->path,
                       r->prefix, r->j->tok[t].size, c->num_layers);
    int l = 0;
    for (int e = gm_json_first(r->j, t); e >= 0; e = gm_json_next_elem(r->j, t, e), l++) {
        if (gm_json_string_eq(r->j, e, "sliding_attention")) c->layer_is_sliding[l] = true;
        else if (gm_json_string_eq(r->j, e, "full_attention")) c->layer_is_sliding[l] = false;
        else
            return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: %slayer_types[%d] is not sliding_attention or full_attention",
                           r->path, r->prefix, l);
    }
    return GM_OK;
}

static gm_status read_rope(cfg_reader *r, gm_text_config *c) {
    int scaling = gm_json_get(r->j, r->obj, "rope_scaling");
    if (scaling >= 0 && gm_json_kind(r->j, scaling) != GM_JSON_NULL)
        return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: %srope_scaling is not supported (only null)", r->path, r->prefix);
    c->rope_theta_full = 1000000.0f;
    c->rope_theta_sliding = 10000.0f;
    gm_status st = get_float_opt(r, r->obj, "rope_theta", &c->rope_theta_full);
    if (st == GM_OK) st = get_float_opt(r, r->obj, "rope_local_base_freq", &c->rope_theta_sliding);
    int params = gm_json_get(r->j, r->obj, "rope_parameters");
    if (st == GM_OK && params >= 0 && gm_json_kind(r->j, params) == GM_JSON_OBJECT) {
        int full = gm_json_get(r->j, params, "full_attention");
        int sliding = gm_json_get(r->j, params, "sliding_attention");
        if (full >= 0) st = get_float_opt(r, full, "rope_theta", &c->rope_theta_full);
        if (st == GM_OK && sliding >= 0) st = get_float_opt(r, sliding, "rope_theta", &c->rope_theta_sliding);
    }
    if (st == GM_OK && (!(c->rope_theta_full > 1) || !(c->rope_theta_sliding > 1)))
        return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: rope theta must be > 1", r->path);
    return st;
}

static gm_status check_supported(cfg_reader *r, const gm_text_config *c) {
    int act = gm_json_get(r->j, r->obj, "hidden_activation");
    if (act >= 0 && !gm_json_string_eq(r->j, act, "gelu_pytorch_tanh"))
        return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: %shidden_activation must be gelu_pytorch_tanh", r->path, r->prefix);
    if (get_bool(r, "attention_bias", false))
        return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: %sattention_bias = true is not supported", r->path, r->prefix);
    if (c->num_heads % c->num_kv_heads != 0)
        return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                       r->path, c->num_heads, c->num_kv_heads);
    if (c->head_dim % 2 != 0)
        return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: head_dim %d must be even (RoPE)", r->path, c->head_dim);
    if (c->altup_active_idx >= c->altup_num_inputs)
        return gm_fail(r->err, GM_ERR_UNSUPPORTED, "%s: altup_active_idx %d >= altup_num_inputs %d", r->path,
                       c->altup_active_idx, c->altup_num_inputs);
    return gm_config_check_kv_sharing(c, r->path, r->err);
}

gm_status gm_config_check_kv_sharing(const gm_text_config *c, const char *path, gm_error *err) {
    int first_shared = c->num_layers - c->num_kv_shared_layers;
    for (int l = first_shared; l < c->num_layers; l++) {
        bool found = false;
        for (int p = 0; p < first_shared && !found; p++) found = c->layer_is_sliding[p] == c->layer_is_sliding[l];
        if (!found)
            return gm_fail(err, GM_ERR_UNSUPPORTED, "%s: KV-shared layer %d has no earlier %s layer to share the cache of",
                           path, l, c->layer_is_sliding[l] ? "sliding" : "full");
    }
    return GM_OK;
}

static gm_status read_sizes(cfg_reader *r, gm_text_config *c) {
    gm_status st;
    if ((st = get_int(r, "vocab_size", 1, 1 << 24, &c->vocab_size)) != GM_OK) return st;
    c->vocab_size_per_layer_input = c->vocab_size;
    if ((st = get_int_opt(r, "vocab_size_per_layer_input", 1, c->vocab_size, &c->vocab_size_per_layer_input))) return st;
    if ((st = get_int(r, "hidden_size", 2, 1 << 16, &c->hidden_size)) != GM_OK) return st;
    if ((st = get_int(r, "hidden_size_per_layer_input", 1, 1 << 14, &c->hidden_size_per_layer_input))) return st;
    if ((st = get_int(r, "num_hidden_layers", 1, GM_MAX_LAYERS, &c->num_layers)) != GM_OK) return st;
    if ((st = get_int(r, "num_attention_heads", 1, 1024, &c->num_heads)) != GM_OK) return st;
    if ((st = get_int(r, "num_key_value_heads", 1, 1024, &c->num_kv_heads)) != GM_OK) return st;
    if ((st = get_int(r, "head_dim", 2, 4096, &c->head_dim)) != GM_OK) return st;
    c->num_kv_shared_layers = 0;
    if ((st = get_int_opt(r, "num_kv_shared_layers", 0, c->num_layers - 1, &c->num_kv_shared_layers))) return st;
    if ((st = get_int(r, "sliding_window", 1, INT32_MAX, &c->sliding_window)) != GM_OK) return st;
    if ((st = get_int(r, "altup_num_inputs", 1, GM_MAX_ALTUP, &c->altup_num_inputs)) != GM_OK) return st;
    c->altup_active_idx = 0;
    if ((st = get_int_opt(r, "altup_active_idx", 0, GM_MAX_ALTUP - 1, &c->altup_active_idx))) return st;
    if ((st = get_int(r, "laurel_rank", 1, 1 << 16, &c->laurel_rank)) != GM_OK) return st;
    c->max_position_embeddings = 32768;
    return get_int_opt(r, "max_position_embeddings", 1, INT32_MAX, &c->max_position_embeddings);
}

static gm_status read_text_config(cfg_reader *r, gm_text_config *c) {
    gm_status st = read_sizes(r, c);
    if (st != GM_OK) return st;
    if ((st = get_float(r, "rms_norm_eps", &c->rms_norm_eps)) != GM_OK) return st;
    c->final_logit_softcap = 0;
    if ((st = get_float_opt(r, r->obj, "final_logit_softcapping", &c->final_logit_softcap))) return st;
    c->altup_coef_clip = 0;
    if ((st = get_float_opt(r, r->obj, "altup_coef_clip", &c->altup_coef_clip)) != GM_OK) return st;
    c->altup_correct_scale = get_bool(r, "altup_correct_scale", true);
    if ((st = read_rope(r, c)) != GM_OK) return st;
    if ((st = read_layer_types(r, c)) != GM_OK) return st;
    double tmp[GM_MAX_LAYERS];
    if ((st = get_per_layer(r, "intermediate_size", c->num_layers, true, 1, 1 << 20, tmp))) return st;
    for (int l = 0; l < c->num_layers; l++) c->intermediate_size[l] = (int32_t)tmp[l];
    /* upstream default: no sparsity when the key is absent is NOT upstream's default, so require it. */
    if ((st = get_per_layer(r, "activation_sparsity_pattern", c->num_layers, false, 0, 0.999999, tmp))) return st;
    for (int l = 0; l < c->num_layers; l++) c->activation_sparsity[l] = (float)tmp[l];
    c->bos_id = 2, c->eos_id = 1, c->pad_id = 0;
    if ((st = get_int_opt(r, "bos_token_id", 0, c->vocab_size - 1, &c->bos_id))) return st;
    if ((st = get_int_opt(r, "eos_token_id", 0, c->vocab_size - 1, &c->eos_id))) return st;
    if ((st = get_int_opt(r, "pad_token_id", 0, c->vocab_size - 1, &c->pad_id))) return st;
    return check_supported(r, c);
}

gm_status gm_config_parse(const char *text, size_t len, const char *path, gm_text_config *cfg,
                          gm_error *err) {
    memset(cfg, 0, sizeof *cfg);
    gm_json j;
    gm_status st = gm_json_parse(text, len, path, &j, err);
    if (st != GM_OK) return st;
    cfg_reader r = {.j = &j, .obj = 0, .path = path, .prefix = "", .err = err};
    int mt = gm_json_get(&j, 0, "model_type");
    int tc = gm_json_get(&j, 0, "text_config");
    if (gm_json_kind(&j, 0) != GM_JSON_OBJECT) {
        st = gm_fail(err, GM_ERR_FORMAT, "%s: not a JSON object", path);
    } else if (tc >= 0 && gm_json_kind(&j, tc) == GM_JSON_OBJECT) {
        if (mt >= 0 && !gm_json_string_eq(&j, mt, "gemma3n"))
            st = gm_fail(err, GM_ERR_UNSUPPORTED, "%s: model_type is not gemma3n", path);
        r.obj = tc;
        r.prefix = "text_config.";
    } else if (mt < 0 || !gm_json_string_eq(&j, mt, "gemma3n_text")) {
        char buf[64] = "(none)";
        if (mt >= 0) gm_json_string_copy(&j, mt, buf, sizeof buf);
        st = gm_fail(err, GM_ERR_UNSUPPORTED,
                     "%s: model_type '%s' is not supported (expected gemma3n with text_config, or gemma3n_text)",
                     path, buf);
    }
    if (st == GM_OK) st = read_text_config(&r, cfg);
    gm_json_free(&j);
    return st;
}


/* Inverse standard normal CDF (Acklam's rational approximation + one Halley step: ~1e-15). */
static double inverse_normal_cdf(double p) {
    static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                               1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                               6.680131188771972e+01, -1.328068155288572e+01};
    static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                               -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                               3.754408661907416e+00};
    double q, x;
    if (p < 0.02425) {
        q = sqrt(-2 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    } else if (p <= 1 - 0.02425) {
        q = p - 0.5;
        double rr = q * q;
        x = (((((a[0] * rr + a[1]) * rr + a[2]) * rr + a[3]) * rr + a[4]) * rr + a[5]) * q /
            (((((b[0] * rr + b[1]) * rr + b[2]) * rr + b[3]) * rr + b[4]) * rr + 1);
    } else {
        q = sqrt(-2 * log(1 - p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
    }
    double e = 0.5 * erfc(-x / sqrt(2)) - p;
    double u = e * sqrt(2 * M_PI) * exp(x * x / 2);
    return x - u / (1 + x * u / 2);
}

/*
 * The identity plan. KV sharing as Gemma3nTextAttention: a layer at or past
 * first_shared = L - num_kv_shared_layers reads the cache of the LAST layer
 * before first_shared with the same layer type.
 */
void gm_plan_full(const gm_text_config *c, gm_plan *plan) {
    memset(plan, 0, sizeof *plan);
    plan->n_layers = c->num_layers;
    int first_shared = c->num_layers - c->num_kv_shared_layers;
    for (int l = 0; l < c->num_layers; l++) {
        gm_plan_layer *pl = &plan->layers[l];
        pl->src = l;
        pl->ffn_dim = c->intermediate_size[l];
        pl->sparsity = c->activation_sparsity[l];
        /* upstream: Normal(0,1).icdf(p) in f32, then cast to the input dtype (f32) */
        /* a GGUF file stores the multiplier itself (llama.cpp's activation_sparsity_scale): use it as is */
        pl->sparsity_std_multiplier = pl->sparsity <= 0          ? 0
                                      : c->std_multiplier_stored ? c->std_multiplier[l]
                                                                 : (float)inverse_normal_cdf(pl->sparsity);
        pl->sliding = c->layer_is_sliding[l];
        pl->rope_theta = pl->sliding ? c->rope_theta_sliding : c->rope_theta_full;
        pl->kv_source = l;
        if (l >= first_shared)
            for (int p = first_shared - 1; p >= 0; p--)
                if (c->layer_is_sliding[p] == pl->sliding) {
                    pl->kv_source = p;
                    break;
                }
    }
}
