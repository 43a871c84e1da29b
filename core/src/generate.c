/*
 * generate.c - pull-based generation: gm_session_generate_begin + gm_session_next.
 *
 * Each gm_session_next samples a token, feeds it to the model (so the KV
 * cache always matches the history and a chat can continue from it) and
 * returns the text it completes. Decisions:
 *  - stop tokens (eos, <end_of_turn>) end the generation, produce no text
 *    and are NOT added to the context;
 *  - other special tokens produce no text (as detokenize with skip_special);
 *  - byte-fallback tokens ("<0xE4>") are held until their run ends, then
 *    resolved as HF's ByteFallback decoder does: the run's bytes if they
 *    are valid UTF-8, else one U+FFFD per byte. So the pieces always
 *    concatenate to gm_detokenize(ids, skip_special = 1) and never split
 *    a character;
 *  - text that could still become a stop string is held back; a matched
 *    stop string and everything after it are dropped.
 */
#include "session.h"

#include "utf8.h"

#include <stdio.h>

/* Longest byte-fallback run held back (a character is <= 4 bytes; this allows 64 of them). */
#define GM_MAX_BYTE_RUN 256

gm_generate_params gm_generate_default_params(void) {
    gm_generate_params p;
    memset(&p, 0, sizeof p);
    p.max_tokens = 256;
    return p;
}

void gm_generation_free(gm_generation *g) {
    for (int i = 0; i < g->n_stop; i++) gm_free(g->stop[i]);
    gm_buf_free(&g->byte_run);
    gm_buf_free(&g->pending);
    gm_buf_free(&g->out);
    memset(g, 0, sizeof *g);
}

static void add_stop_id(gm_generation *g, int32_t id) {
    if (id < 0 || g->n_stop_ids >= (int)GM_ARRAY_LEN(g->stop_ids)) return;
    for (int i = 0; i < g->n_stop_ids; i++)
        if (g->stop_ids[i] == id) return;
    g->stop_ids[g->n_stop_ids++] = id;
}

/* eos from config.json; <eos> and <end_of_turn> from the tokenizer when there is one. */
static void collect_byte_tokens(const gm_tokenizer *tok, gm_generation *g) {
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        g->byte_token[b] = tok ? gm_tokenizer_token_id(tok, name) : -1;
    }
}

static void collect_stop_ids(const gm_session *s, gm_generation *g) {
    const gm_tokenizer *tok = s->model->tokenizer;
    add_stop_id(g, s->model->cfg.eos_id);
    if (tok) {
        add_stop_id(g, gm_tokenizer_eos_id(tok));
        add_stop_id(g, gm_tokenizer_token_id(tok, "<end_of_turn>"));
    }
}

gm_status gm_session_generate_begin(gm_session *s, const gm_generate_params *p, gm_error *err) {
    gm_error_clear(err);
    gm_generate_params dflt = gm_generate_default_params();
    if (!p) p = &dflt;
    if (!s->has_logits || s->n_past == 0)
        return gm_fail(err, GM_ERR_STATE, "nothing to continue from: evaluate a prompt before generating");
    gm_generation *g = &s->gen;
    gm_generation_free(g);
    g->max_tokens = p->max_tokens;
    g->ignore_eos = p->ignore_eos != 0;
    collect_stop_ids(s, g);
    collect_byte_tokens(s->model->tokenizer, g);
    size_t longest = 0;
    for (int i = 0; i < GM_MAX_STOP_STRINGS && p->stop[i]; i++) {
        size_t len = strlen(p->stop[i]);
        if (len == 0) continue;
        if (!gm_utf8_valid(p->stop[i], len, NULL))
            return gm_fail(err, GM_ERR_ARGUMENT, "stop string %d is not valid UTF-8", i);
        if (!(g->stop[g->n_stop] = gm_strndup(p->stop[i], len)))
            return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
        g->stop_len[g->n_stop++] = len;
        longest = GM_MAX(longest, len);
    }
    /* Reserve once so the token loop does not allocate (a token's text is far below 4 KiB). */
    if (!gm_buf_reserve(&g->pending, longest + 4096 + 3 * GM_MAX_BYTE_RUN) || !gm_buf_reserve(&g->out, longest + 4096) ||
        !gm_buf_reserve(&g->byte_run, GM_MAX_BYTE_RUN))
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    g->active = true;
    return GM_OK;
}

static bool is_stop_id(const gm_generation *g, int32_t id) {
    for (int i = 0; i < g->n_stop_ids; i++)
        if (g->stop_ids[i] == id) return true;
    return false;
}

/* Longest suffix of text[0..n) that is a proper prefix of some stop string. */
static size_t stop_prefix_suffix(const gm_generation *g, const char *text, size_t n) {
    size_t best = 0;
    for (int i = 0; i < g->n_stop; i++)
        for (size_t k = GM_MIN(n, g->stop_len[i] - 1); k > best; k--)
            if (memcmp(text + n - k, g->stop[i], k) == 0) {
                best = k;
                break;
            }
    return best;
}

/* Earliest stop-string match in text[0..n): its offset, or n when none. */
static size_t find_stop(const gm_generation *g, const char *text, size_t n) {
    size_t first = n;
    for (int i = 0; i < g->n_stop; i++)
        for (size_t o = 0; o + g->stop_len[i] <= n && o < first; o++)
            if (memcmp(text + o, g->stop[i], g->stop_len[i]) == 0) {
                first = o;
                break;
            }
    return first;
}

/* Moves the first `n` pending bytes to the output. */
static void emit(gm_generation *g, size_t n) {
    gm_buf_append(&g->out, g->pending.data, n); /* capacity reserved in generate_begin */
    memmove(g->pending.data, g->pending.data + n, g->pending.len - n);
    g->pending.len -= n;
}

/* Ends a byte-fallback run (decoders/byte_fallback.rs): valid UTF-8 as is, else U+FFFD per byte. */
static void resolve_byte_run(gm_generation *g) {
    if (!g->byte_run.len) return;
    if (gm_utf8_valid(g->byte_run.data, g->byte_run.len, NULL))
        gm_buf_append(&g->pending, g->byte_run.data, g->byte_run.len);
    else
        for (size_t i = 0; i < g->byte_run.len; i++) gm_buf_append(&g->pending, "\xEF\xBF\xBD", 3);
    g->byte_run.len = 0;
}

static void finish(gm_generation *g, gm_step *step, gm_finish why, bool flush) {
    resolve_byte_run(g);
    size_t stop_at = find_stop(g, g->pending.data, g->pending.len);
    if (stop_at < g->pending.len) {
        emit(g, stop_at);
        why = GM_FINISH_STOP;
    } else if (flush) {
        emit(g, g->pending.len); /* held-back text that never became a stop string */
    }
    g->finished = true;
    step->finish = why;
}

/* Appends the token's text and decides what can be returned now. */
static void push_text(gm_session *s, int32_t token, gm_step *step) {
    gm_generation *g = &s->gen;
    const gm_tokenizer *tok = s->model->tokenizer;
    size_t len = 0;
    const char *bytes = tok && !gm_token_is_special(tok, token) ? gm_token_bytes(tok, token, &len) : NULL;
    if (!bytes || !len) return;
    if (len == 1 && g->byte_token[(unsigned char)bytes[0]] == token) {
        if (g->byte_run.len == GM_MAX_BYTE_RUN) resolve_byte_run(g); /* 256 raw bytes in a row: not text */
        gm_buf_append(&g->byte_run, bytes, 1);
        return;
    }
    resolve_byte_run(g);
    gm_buf_append(&g->pending, bytes, len);
    size_t stop_at = find_stop(g, g->pending.data, g->pending.len);
    if (stop_at < g->pending.len) {
        emit(g, stop_at);
        finish(g, step, GM_FINISH_STOP, false);
        return;
    }
    emit(g, g->pending.len - stop_prefix_suffix(g, g->pending.data, g->pending.len));
}

gm_status gm_session_next(gm_session *s, gm_step *step, gm_error *err) {
    gm_error_clear(err);
    gm_generation *g = &s->gen;
    memset(step, 0, sizeof *step);
    step->token = -1;
    if (!g->active || g->finished)
        return gm_fail(err, GM_ERR_STATE, g->finished ? "generation already finished" : "no generation started");
    if (gm_session_cancelled(s)) return gm_fail(err, GM_ERR_CANCELLED, "generation cancelled");
    g->out.len = 0;
    if (s->n_past >= (size_t)s->n_ctx) {
        finish(g, step, GM_FINISH_LENGTH, true); /* the prompt filled the context */
    } else {
        int32_t token = gm_sampler_sample(s->sampler, s->logits, s->tokens, s->n_past);
        if (token < 0) return gm_fail(err, GM_ERR_ARGUMENT, "every token is banned (logit_bias / NaN logits)");
        step->token = token;
        g->n_generated++;
        if (!g->ignore_eos && is_stop_id(g, token)) {
            finish(g, step, GM_FINISH_STOP, true);
        } else {
            gm_status st = gm_session_run(s, &token, 1, false, err);
            if (st != GM_OK) return st;
            push_text(s, token, step);
            bool full = (g->max_tokens > 0 && g->n_generated >= g->max_tokens) || s->n_past >= (size_t)s->n_ctx;
            if (!g->finished && full) finish(g, step, GM_FINISH_LENGTH, true);
        }
    }
    if (g->out.data) g->out.data[g->out.len] = 0;
    step->text = g->out.data ? g->out.data : "";
    step->text_len = g->out.len;
    step->n_generated = g->n_generated;
    return GM_OK;
}
