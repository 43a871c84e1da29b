/* gm_bind.c - the option table and error families shared by both bindings. */
#include "gm_bind.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define OPT(name, type, group, strct, field, lo, hi, doc) \
    {name, type, group, offsetof(strct, field), lo, hi, doc}

static const gm_bind_option options[] = {
    OPT("n_threads", GM_OPT_INT, GM_OPT_MODEL, gm_model_params, n_threads, 0, 1024,
        "threads for the batched GEMMs (0 = all cores)"),
    OPT("load_tokenizer", GM_OPT_BOOL, GM_OPT_MODEL, gm_model_params, load_tokenizer, 0, 1,
        "load tokenizer.json when the model directory has one"),
    OPT("weights", GM_OPT_STRING, GM_OPT_MODEL, gm_model_params, weights, 0, 0,
        "weight format at load: stored, f32, f16, bf16, q8_0, q4_0"),
    OPT("submodel", GM_OPT_STRING, GM_OPT_SESSION, gm_session_params, submodel, 0, 0,
        "MatFormer submodel: E2B, E4B, a table row name, full, or a .json spec"),
    OPT("n_ctx", GM_OPT_INT, GM_OPT_SESSION, gm_session_params, n_ctx, 0, 1 << 30,
        "context length in tokens (0 = model maximum, capped at 4096)"),
    OPT("kv_type", GM_OPT_STRING, GM_OPT_SESSION, gm_session_params, kv_type, 0, 0,
        "K/V cache element type: f32 (default) or f16 (half the KV memory; logits move by ~1e-2)"),
    OPT("logits_all", GM_OPT_BOOL, GM_OPT_SESSION, gm_session_params, keep_all_logits, 0, 1,
        "keep the logits of every evaluated position (scores)"),
    OPT("temperature", GM_OPT_FLOAT, GM_OPT_SAMPLER, gm_sampler_params, temperature, 0, 1e9,
        "sampling temperature; 0 = greedy"),
    OPT("top_k", GM_OPT_INT, GM_OPT_SAMPLER, gm_sampler_params, top_k, -1, 1 << 30, "top-k (<= 0: off)"),
    OPT("top_p", GM_OPT_FLOAT, GM_OPT_SAMPLER, gm_sampler_params, top_p, 0, 1, "nucleus sampling (1: off)"),
    OPT("min_p", GM_OPT_FLOAT, GM_OPT_SAMPLER, gm_sampler_params, min_p, 0, 1, "min-p (0: off)"),
    OPT("repeat_penalty", GM_OPT_FLOAT, GM_OPT_SAMPLER, gm_sampler_params, repeat_penalty, 1e-6, 1e9,
        "repetition penalty (1: off)"),
    OPT("repeat_last_n", GM_OPT_INT, GM_OPT_SAMPLER, gm_sampler_params, repeat_last_n, -1, 1 << 30,
        "tokens the repetition penalty looks back (-1: all)"),
    OPT("seed", GM_OPT_SEED, GM_OPT_SAMPLER, gm_sampler_params, seed, 0, 1.8446744073709552e19, "RNG seed"),
    OPT("logit_bias", GM_OPT_BIAS, GM_OPT_SAMPLER, gm_sampler_params, logit_bias, 0, 0, "{token_id: bias}"),
    OPT("max_tokens", GM_OPT_INT, GM_OPT_GENERATE, gm_generate_params, max_tokens, -1, 1 << 30,
        "maximum new tokens (<= 0: until stop or a full context)"),
    OPT("ignore_eos", GM_OPT_BOOL, GM_OPT_GENERATE, gm_generate_params, ignore_eos, 0, 1,
        "keep generating past <eos>/<end_of_turn>"),
    OPT("stop", GM_OPT_STOP, GM_OPT_GENERATE, gm_generate_params, stop, 0, 0, "stop string or list of them"),
};

const gm_bind_option *gm_bind_options(size_t *count) {
    *count = sizeof options / sizeof options[0];
    return options;
}

const gm_bind_option *gm_bind_find_option(const char *name) {
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if (strcmp(options[i].name, name) == 0) return &options[i];
    return NULL;
}

void gm_bind_params_init(gm_bind_params *p) {
    memset(p, 0, sizeof *p);
    p->model = gm_model_default_params();
    p->session = gm_session_default_params();
    p->generate = gm_generate_default_params();
}

void gm_bind_params_copy(gm_bind_params *dst, const gm_bind_params *src) {
    if (dst == src) return;
    memcpy(dst, src, sizeof *dst);
    for (int i = 0; i < GM_MAX_STOP_STRINGS; i++)
        dst->generate.stop[i] = src->generate.stop[i] ? dst->stop_storage[i] : NULL;
    if (src->session.sampler.logit_bias) dst->session.sampler.logit_bias = dst->bias_storage;
    if (src->session.submodel) dst->session.submodel = &dst->submodel_storage;
}

void gm_bind_set_seed(gm_bind_params *p, uint64_t seed) { p->session.sampler.seed = seed; }

bool gm_bind_set_string(gm_bind_params *p, const gm_bind_option *o, const char *value, char *msg, size_t cap) {
    gm_error err;
    if (o->type != GM_OPT_STRING) {
        snprintf(msg, cap, "%s is not a string option", o->name);
        return false;
    }
    if (strcmp(o->name, "weights") == 0) {
        if (gm_weight_format_parse(value, &p->model.weights, &err) == GM_OK) return true;
    } else if (strcmp(o->name, "submodel") == 0) {
        if (gm_submodel_resolve(value, &p->submodel_storage, &err) == GM_OK) {
            p->session.submodel = &p->submodel_storage;
            return true;
        }
    } else if (strcmp(o->name, "kv_type") == 0) {
        int32_t t = gm_kv_type_from_name(value);
        if (t >= 0) {
            p->session.kv_type = t;
            return true;
        }
        snprintf(err.message, sizeof err.message, "'%s' is not a K/V cache type (f32 or f16)", value);
    } else {
        snprintf(err.message, sizeof err.message, "no parser");
    }
    snprintf(msg, cap, "%s: %s", o->name, err.message);
    return false;
}

static void *field(gm_bind_params *p, const gm_bind_option *o) {
    char *base = o->group == GM_OPT_MODEL     ? (char *)&p->model
                 : o->group == GM_OPT_SESSION ? (char *)&p->session
                 : o->group == GM_OPT_SAMPLER ? (char *)&p->session.sampler
                                              : (char *)&p->generate;
    return base + o->offset;
}

bool gm_bind_set_number(gm_bind_params *p, const gm_bind_option *o, double v, char *msg, size_t cap) {
    if (o->type == GM_OPT_STOP || o->type == GM_OPT_BIAS || o->type == GM_OPT_STRING) {
        snprintf(msg, cap, "%s is not a number option", o->name);
        return false;
    }
    if (isnan(v) || v < o->min || v > o->max) {
        snprintf(msg, cap, "%s must be in [%g, %g], got %g", o->name, o->min, o->max, v);
        return false;
    }
    if ((o->type == GM_OPT_INT || o->type == GM_OPT_SEED) && v != floor(v)) {
        snprintf(msg, cap, "%s must be an integer, got %g", o->name, v);
        return false;
    }
    void *f = field(p, o);
    switch (o->type) {
    case GM_OPT_INT:
    case GM_OPT_BOOL: *(int32_t *)f = (int32_t)v; break;
    case GM_OPT_FLOAT: *(float *)f = (float)v; break;
    case GM_OPT_SEED: *(uint64_t *)f = (uint64_t)v; break;
    default: break;
    }
    return true;
}

bool gm_bind_set_stop(gm_bind_params *p, const char *const *stop, const size_t *lens, size_t n, char *msg,
                      size_t cap) {
    if (n > GM_MAX_STOP_STRINGS) {
        snprintf(msg, cap, "stop: at most %d stop strings, got %zu", GM_MAX_STOP_STRINGS, n);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (lens[i] == 0 || lens[i] >= sizeof p->stop_storage[0] || memchr(stop[i], 0, lens[i])) {
            snprintf(msg, cap, "stop[%zu]: a stop string must be 1..%zu bytes without NUL", i,
                     sizeof p->stop_storage[0] - 1);
            return false;
        }
    for (int i = 0; i < GM_MAX_STOP_STRINGS; i++) {
        if ((size_t)i < n) {
            memcpy(p->stop_storage[i], stop[i], lens[i]);
            p->stop_storage[i][lens[i]] = 0;
            p->generate.stop[i] = p->stop_storage[i];
        } else {
            p->generate.stop[i] = NULL;
        }
    }
    return true;
}

bool gm_bind_set_logit_bias(gm_bind_params *p, const int32_t *tokens, const float *bias, size_t n, char *msg,
                            size_t cap) {
    if (n > GM_BIND_MAX_BIAS) {
        snprintf(msg, cap, "logit_bias: at most %d entries, got %zu", GM_BIND_MAX_BIAS, n);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        p->bias_storage[i].token = tokens[i];
        p->bias_storage[i].bias = bias[i];
    }
    p->session.sampler.logit_bias = n ? p->bias_storage : NULL;
    p->session.sampler.n_logit_bias = n;
    return true;
}

gm_error_family gm_bind_error_family(gm_status st) {
    switch (st) {
    case GM_ERR_FORMAT:
    case GM_ERR_UNSUPPORTED: return GM_FAMILY_FORMAT;
    case GM_ERR_IO: return GM_FAMILY_IO;
    case GM_ERR_ARGUMENT: return GM_FAMILY_ARGUMENT;
    case GM_ERR_CONTEXT_OVERFLOW: return GM_FAMILY_CONTEXT;
    case GM_ERR_STATE:
    case GM_ERR_NO_TOKENIZER: return GM_FAMILY_STATE;
    case GM_ERR_OUT_OF_MEMORY: return GM_FAMILY_MEMORY;
    case GM_ERR_CANCELLED: return GM_FAMILY_CANCELLED;
    default: return GM_FAMILY_INTERNAL;
    }
}
