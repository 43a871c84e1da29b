/*
 * session.c - gm_session: context (token history + KV cache), prompt
 * evaluation in batches, logits access, reset/truncate, sampling.
 * Pull-based generation lives in generate.c.
 */
#include "session.h"

#include "utf8.h"

#include <math.h>
#include <stdio.h>

gm_sampler_params gm_sampler_default_params(void) {
    gm_sampler_params p = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                           .repeat_penalty = 1.0f, .repeat_last_n = 64, .seed = 0x5EEDu};
    return p;
}

gm_session_params gm_session_default_params(void) {
    gm_session_params p = {.n_ctx = 0, .keep_all_logits = 0, .sampler = gm_sampler_default_params(),
                           .kv_type = GM_KV_F32};
    return p;
}

const char *gm_kv_type_name(int32_t kv_type) {
    return kv_type == GM_KV_F32 ? "f32" : kv_type == GM_KV_F16 ? "f16" : "?";
}

int32_t gm_kv_type_from_name(const char *name) {
    if (!name) return -1;
    if (strcmp(name, "f32") == 0) return GM_KV_F32;
    if (strcmp(name, "f16") == 0) return GM_KV_F16;
    return -1;
}

static int32_t choose_n_ctx(const gm_model *m, int32_t requested) {
    int32_t max = m->cfg.max_position_embeddings;
    if (requested <= 0) return GM_MIN(max, GM_DEFAULT_N_CTX);
    return requested;
}

gm_status gm_session_new(gm_model *model, const gm_session_params *params, gm_session **out, gm_error *err) {
    *out = NULL;
    gm_error_clear(err);
    if (!model) return gm_fail(err, GM_ERR_ARGUMENT, "model is NULL");
    gm_session_params p = params ? *params : gm_session_default_params();
    if (p.n_ctx < 0 || p.n_ctx > model->cfg.max_position_embeddings)
        return gm_fail(err, GM_ERR_ARGUMENT, "n_ctx %d is outside [1, %d] (max_position_embeddings)", p.n_ctx,
                       model->cfg.max_position_embeddings);
    if (p.kv_type != GM_KV_F32 && p.kv_type != GM_KV_F16)
        return gm_fail(err, GM_ERR_ARGUMENT, "kv_type %d is not a gm_kv_type (GM_KV_F32 = 0 or GM_KV_F16 = 1)",
                       p.kv_type);
    gm_session *s = gm_calloc(1, sizeof *s);
    if (!s) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    s->model = model;
    gm_model_retain(model);
    s->params = p;
    s->params.submodel = NULL; /* copied into the plan; the caller's spec need not outlive this call */
    s->n_ctx = choose_n_ctx(model, p.n_ctx);
    int32_t batch = GM_MIN(s->n_ctx, GM_MAX_BATCH);
    gm_plan plan;
    gm_status st = gm_model_session_plan(model, p.submodel, &plan, err);
    if (st == GM_OK) st = gm_decoder_init(&s->dec, model, &plan, s->n_ctx, batch, p.kv_type, err);
    if (st == GM_OK) st = gm_sampler_new(model->cfg.vocab_size, &p.sampler, &s->sampler, err);
    if (st == GM_OK) {
        s->tokens = gm_calloc((size_t)s->n_ctx, sizeof *s->tokens);
        s->logits = gm_aligned_alloc((size_t)model->cfg.vocab_size * sizeof(float));
        if (!s->tokens || !s->logits)
            st = gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    }
    if (st != GM_OK) {
        gm_session_free(s);
        return st;
    }
    *out = s;
    return GM_OK;
}

void gm_session_free(gm_session *s) {
    if (!s) return;
    gm_decoder_free(&s->dec);
    gm_sampler_free(s->sampler);
    gm_free(s->tokens);
    gm_aligned_free(s->logits);
    gm_aligned_free(s->all_logits);
    gm_generation_free(&s->gen);
    gm_model_free(s->model);
    gm_free(s);
}

gm_status gm_session_set_sampler(gm_session *s, const gm_sampler_params *p, gm_error *err) {
    gm_error_clear(err);
    if (!p) return gm_fail(err, GM_ERR_ARGUMENT, "sampler params are NULL");
    gm_status st = gm_sampler_configure(s->sampler, p, err);
    if (st == GM_OK) s->params.sampler = *p;
    return st;
}

void gm_session_set_cancel_flag(gm_session *s, const volatile int *flag) { s->cancel = flag; }

/* An atomic load: the flag is written by another thread or a signal handler. */
bool gm_session_cancelled(const gm_session *s) { return s->cancel && __atomic_load_n(s->cancel, __ATOMIC_RELAXED); }

static gm_status validate_tokens(const gm_session *s, const int32_t *ids, size_t n, gm_error *err) {
    if (n == 0) return gm_fail(err, GM_ERR_ARGUMENT, "no tokens to evaluate (empty prompt)");
    if (!ids) return gm_fail(err, GM_ERR_ARGUMENT, "token array is NULL");
    int32_t V = s->model->cfg.vocab_size;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return gm_fail(err, GM_ERR_ARGUMENT, "token id %d at position %zu is outside the vocabulary [0, %d)",
                           ids[i], i, V);
    if (n > (size_t)s->n_ctx - s->n_past)
        return gm_fail(err, GM_ERR_CONTEXT_OVERFLOW,
                       "context overflow: %zu tokens in the context + %zu new > n_ctx %d", s->n_past, n, s->n_ctx);
    return GM_OK;
}

static gm_status reserve_all_logits(gm_session *s, size_t rows, gm_error *err) {
    size_t V = (size_t)s->model->cfg.vocab_size, need;
    if (!gm_mul_size(rows, V * sizeof(float), &need))
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "logits for %zu positions do not fit in memory", rows);
    if (need <= s->all_logits_cap) return GM_OK;
    float *p = gm_aligned_alloc(need);
    if (!p) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory keeping the logits of %zu positions", rows);
    gm_aligned_free(s->all_logits);
    s->all_logits = p;
    s->all_logits_cap = need;
    return GM_OK;
}

/*
 * After a batch that computed no logits (an intermediate batch of a prompt,
 * see gm_session_run), the last context token's logits by running that
 * token again: dropping it is safe (its cache slot is rewritten with the
 * same values, and a sliding ring of window + max_batch positions has lost
 * nothing the re-run needs), and it costs one decode step, only on cancel.
 */
static void restore_last_logits(gm_session *s) {
    if (s->has_logits || s->n_past == 0) return;
    const int64_t pos = (int64_t)s->n_past - 1;
    gm_decoder_forward(&s->dec, s->tokens + pos, 1, pos, s->logits, 0);
    s->has_logits = true;
}

/*
 * Runs already validated tokens; logits of the last one end up in s->logits.
 * Only the last batch of a prompt computes logits (the others then also
 * skip the KV-shared tail layers: decoder.h); a cancel between batches
 * still leaves the last evaluated token's logits (restore_last_logits).
 */
gm_status gm_session_run(gm_session *s, const int32_t *ids, size_t n, bool keep_all, gm_error *err) {
    size_t V = (size_t)s->model->cfg.vocab_size, B = (size_t)s->dec.max_batch;
    for (size_t done = 0; done < n;) {
        if (gm_session_cancelled(s)) {
            restore_last_logits(s);
            return gm_fail(err, GM_ERR_CANCELLED, "cancelled after %zu of %zu tokens", done, n);
        }
        int T = (int)GM_MIN(B, n - done);
        const bool last = done + (size_t)T == n;
        if (keep_all) { /* straight into the kept rows (reserved for all n by the caller) */
            gm_decoder_forward(&s->dec, ids + done, T, (int64_t)s->n_past, s->all_logits + done * V, 0);
            memcpy(s->logits, s->all_logits + (done + (size_t)T - 1) * V, V * sizeof(float));
        } else {
            gm_decoder_forward(&s->dec, ids + done, T, (int64_t)s->n_past, s->logits, last ? T - 1 : T);
        }
        s->has_logits = keep_all || last;
        memmove(s->tokens + s->n_past, ids + done, (size_t)T * sizeof *ids); /* may alias (truncate) */
        s->n_past += (size_t)T;
        done += (size_t)T;
    }
    return GM_OK;
}

gm_status gm_session_eval(gm_session *s, const int32_t *ids, size_t n, gm_error *err) {
    gm_error_clear(err);
    gm_status st = validate_tokens(s, ids, n, err);
    if (st != GM_OK) return st;
    bool keep_all = s->params.keep_all_logits != 0;
    s->all_rows = 0;
    if (keep_all && (st = reserve_all_logits(s, n, err)) != GM_OK) return st;
    /* A cancel before the first batch leaves the session as it was, logits included. */
    st = gm_session_run(s, ids, n, keep_all, err);
    if (st == GM_OK && keep_all) s->all_rows = n;
    return st;
}

const float *gm_session_logits(const gm_session *s) { return s->has_logits ? s->logits : NULL; }

const float *gm_session_all_logits(const gm_session *s, size_t *n_rows) {
    if (n_rows) *n_rows = s->all_rows;
    return s->all_rows ? s->all_logits : NULL;
}

size_t gm_session_n_past(const gm_session *s) { return s->n_past; }
size_t gm_session_n_ctx(const gm_session *s) { return (size_t)s->n_ctx; }
gm_model *gm_session_model(const gm_session *s) { return s->model; }

const int32_t *gm_session_tokens(const gm_session *s, size_t *n) {
    if (n) *n = s->n_past;
    return s->tokens;
}

void gm_session_reset(gm_session *s) {
    s->n_past = 0;
    s->has_logits = false;
    s->all_rows = 0;
    s->gen.active = false;
    gm_sampler_reset(s->sampler);
}

/*
 * Cheap path: the last sliding-window ring still holds every key position
 * n - 1 needs, so we step back to n - 1 and re-run that one token (which
 * rewrites identical K/V and yields its logits). Otherwise the prefix is
 * recomputed from scratch: exact, slower.
 */
gm_status gm_session_truncate(gm_session *s, size_t n, gm_error *err) {
    gm_error_clear(err);
    if (n > s->n_past)
        return gm_fail(err, GM_ERR_ARGUMENT, "cannot truncate to %zu tokens: the context holds %zu", n, s->n_past);
    s->gen.active = false;
    s->all_rows = 0;
    if (n == s->n_past) return GM_OK;
    if (n == 0) {
        s->n_past = 0;
        s->has_logits = false;
        return GM_OK;
    }
    s->has_logits = false;
    if ((int64_t)(s->n_past - (n - 1)) <= gm_decoder_rewind_limit(&s->dec)) {
        s->n_past = n - 1;
        return gm_session_run(s, s->tokens + n - 1, 1, false, err);
    }
    s->n_past = 0;
    return gm_session_run(s, s->tokens, n, false, err); /* tokens[0..n) are read before being rewritten in place */
}

gm_status gm_session_sample(gm_session *s, int32_t *token, gm_error *err) {
    gm_error_clear(err);
    if (!s->has_logits) return gm_fail(err, GM_ERR_STATE, "no logits to sample from: evaluate a prompt first");
    *token = gm_sampler_sample(s->sampler, s->logits, s->tokens, s->n_past);
    if (*token < 0) return gm_fail(err, GM_ERR_ARGUMENT, "every token is banned (logit_bias / NaN logits)");
    return GM_OK;
}
