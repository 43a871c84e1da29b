/*
 * test_session.c - session behaviour: truncate (ring fast path and full
 * recompute), reset, seeded sampling, stop strings and UTF-8-safe pieces,
 * cancellation, a full context. Expectations come from independent runs
 * (a fresh session, the golden logits, a generation without stop strings).
 */
#include <math.h>

#include "gemma3n.h"
#include "session.h" /* test_cancel_between_batches: a cancel flag inside the session */
#include "test_util.h"

static gm_model *open_model(const char *rel) {
    gm_model *m = NULL;
    gm_error err;
    CHECK_OK(gm_model_open(test_path(rel), NULL, &m, &err), &err);
    return m;
}

static gm_session *session(gm_model *m, int n_ctx, float temperature, uint64_t seed) {
    gm_session_params sp = gm_session_default_params();
    sp.n_ctx = n_ctx;
    sp.sampler.temperature = temperature;
    sp.sampler.seed = seed;
    gm_session *s = NULL;
    gm_error err;
    CHECK_OK(gm_session_new(m, &sp, &s, &err), &err);
    return s;
}

static void pseudo_random_ids(int32_t *ids, int n, int vocab) {
    uint32_t x = 12345;
    for (int i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        ids[i] = 3 + (int32_t)((x >> 8) % (uint32_t)(vocab - 3));
    }
}

/* Logits after truncating must equal a fresh session's logits of the kept prefix. */
static void check_truncate(gm_model *m, int total, int keep, const char *what) {
    int32_t ids[300];
    pseudo_random_ids(ids, total, 512);
    gm_session *s = session(m, 300, 0, 1), *fresh = session(m, 300, 0, 1);
    gm_error err;
    CHECK_OK(gm_session_eval(s, ids, (size_t)total, &err), &err);
    CHECK_OK(gm_session_truncate(s, (size_t)keep, &err), &err);
    CHECK(gm_session_n_past(s) == (size_t)keep, "n_past %zu", gm_session_n_past(s));
    CHECK_OK(gm_session_eval(fresh, ids, (size_t)keep, &err), &err);
    double d = max_abs_diff(gm_session_logits(s), gm_session_logits(fresh), 512);
    CHECK(d <= 5e-4, "%s: truncated logits differ by %.3g", what, d);
    /* and continuing from the truncated context matches continuing from the fresh one */
    CHECK_OK(gm_session_eval(s, ids + keep, 3, &err), &err);
    CHECK_OK(gm_session_eval(fresh, ids + keep, 3, &err), &err);
    d = max_abs_diff(gm_session_logits(s), gm_session_logits(fresh), 512);
    CHECK(d <= 5e-4, "%s: continued logits differ by %.3g", what, d);
    gm_session_free(s);
    gm_session_free(fresh);
}

static void test_truncate_and_reset(gm_model *m) {
    check_truncate(m, 44, 40, "ring fast path");
    check_truncate(m, 260, 10, "recompute path");
    check_truncate(m, 44, 1, "to one token");
    int32_t ids[8] = {2, 30, 31, 32, 33, 34, 35, 36};
    gm_session *s = session(m, 64, 0, 1), *fresh = session(m, 64, 0, 1);
    gm_error err;
    CHECK_OK(gm_session_eval(s, ids, 8, &err), &err);
    gm_session_reset(s);
    CHECK(gm_session_n_past(s) == 0 && gm_session_logits(s) == NULL, "reset empties the session");
    CHECK_OK(gm_session_eval(s, ids, 5, &err), &err);
    CHECK_OK(gm_session_eval(fresh, ids, 5, &err), &err);
    CHECK(max_abs_diff(gm_session_logits(s), gm_session_logits(fresh), 512) == 0, "reset == fresh");
    gm_session_free(s);
    gm_session_free(fresh);
}

/* Generates up to n tokens; returns the count, writes ids and concatenated text. */
static int generate(gm_session *s, const gm_generate_params *gp, int32_t *ids, char *text, size_t cap,
                    gm_finish *finish) {
    gm_error err;
    int n = 0;
    size_t len = 0;
    CHECK_OK(gm_session_generate_begin(s, gp, &err), &err);
    for (;;) {
        gm_step step;
        gm_status st = gm_session_next(s, &step, &err);
        CHECK(st == GM_OK, "next: %s", err.message);
        if (st != GM_OK) break;
        if (step.token >= 0) ids[n++] = step.token;
        if (len + step.text_len < cap) {
            memcpy(text + len, step.text, step.text_len);
            len += step.text_len;
        }
        if (step.finish != GM_FINISH_NONE) {
            *finish = step.finish;
            break;
        }
    }
    text[len] = 0;
    return n;
}

static void test_seeded_sampling(gm_model *m) {
    int32_t prompt[4] = {2, 40, 41, 42}, a[32], b[32], c[32];
    char text[64];
    gm_finish fin;
    gm_generate_params gp = gm_generate_default_params();
    gp.max_tokens = 24;
    gp.ignore_eos = 1;
    gm_session *s1 = session(m, 64, 1.0f, 7), *s2 = session(m, 64, 1.0f, 7), *s3 = session(m, 64, 1.0f, 8);
    gm_error err;
    CHECK_OK(gm_session_eval(s1, prompt, 4, &err), &err);
    CHECK_OK(gm_session_eval(s2, prompt, 4, &err), &err);
    CHECK_OK(gm_session_eval(s3, prompt, 4, &err), &err);
    int na = generate(s1, &gp, a, text, sizeof text, &fin);
    int nb = generate(s2, &gp, b, text, sizeof text, &fin);
    int nc = generate(s3, &gp, c, text, sizeof text, &fin);
    CHECK(na == 24 && nb == 24 && nc == 24 && fin == GM_FINISH_LENGTH, "counts %d %d %d", na, nb, nc);
    CHECK(memcmp(a, b, sizeof(int32_t) * 24) == 0, "same seed, same tokens");
    CHECK(memcmp(a, c, sizeof(int32_t) * 24) != 0, "different seed, different tokens");
    gm_session_free(s1);
    gm_session_free(s2);
    gm_session_free(s3);
}

/* Stop strings cut the text exactly where a run without them has the string first. */
static void test_stop_strings(void) {
    gm_model *m = open_model("tiny_chat");
    if (!m) return;
    gm_session *s = session(m, 128, 0, 1);
    gm_error err;
    int32_t prompt[64];
    size_t n;
    CHECK_OK(gm_model_tokenize(m, "hello world", 11, GM_TOKENIZE_ADD_BOS, prompt, 64, &n, &err), &err);
    CHECK_OK(gm_session_eval(s, prompt, n, &err), &err);
    gm_generate_params gp = gm_generate_default_params();
    gp.max_tokens = 40;
    gp.ignore_eos = 1;
    int32_t ids[64];
    char full[4096], cut[4096], decoded[4096];
    gm_finish fin;
    int count = generate(s, &gp, ids, full, sizeof full, &fin);
    /* pieces concatenate to the detokenized ids (skip_special: specials produce no text) */
    size_t dl;
    CHECK_OK(gm_model_detokenize(m, ids, (size_t)count, 1, decoded, sizeof decoded, &dl, &err), &err);
    CHECK(strcmp(full, decoded) == 0, "pieces '%s' != decoded '%s'", full, decoded);
    size_t len = strlen(full);
    CHECK(len >= 6, "need some text to cut (got '%s')", full);
    if (len >= 6) {
        char stop[4];
        memcpy(stop, full + len / 2, 3);
        stop[3] = 0;
        const char *first = strstr(full, stop);
        gm_session_truncate(s, n, &err);
        gp.stop[0] = stop;
        generate(s, &gp, ids, cut, sizeof cut, &fin);
        CHECK(fin == GM_FINISH_STOP, "finish %d", fin);
        CHECK(strlen(cut) == (size_t)(first - full) && strncmp(cut, full, strlen(cut)) == 0,
              "stop '%s': got '%s' from '%s'", stop, cut, full);
    }
    gm_session_free(s);
    gm_model_free(m);
}

static void test_cancel_and_full_context(gm_model *m) {
    gm_session *s = session(m, 8, 0, 1);
    gm_error err;
    int32_t prompt[6] = {2, 5, 6, 7, 8, 9}, ids[16];
    char text[16];
    gm_finish fin = GM_FINISH_NONE;
    CHECK_OK(gm_session_eval(s, prompt, 6, &err), &err);
    gm_generate_params gp = gm_generate_default_params();
    gp.max_tokens = 100;
    gp.ignore_eos = 1;
    int n = generate(s, &gp, ids, text, sizeof text, &fin);
    CHECK(n == 2 && fin == GM_FINISH_LENGTH && gm_session_n_past(s) == 8, "full context: %d tokens, finish %d", n, fin);
    volatile int flag = 1;
    gm_session_set_cancel_flag(s, &flag);
    gm_session_reset(s);
    CHECK_FAILS(gm_session_eval(s, prompt, 6, &err), GM_ERR_CANCELLED, "cancelled", &err);
    flag = 0;
    CHECK_OK(gm_session_eval(s, prompt, 6, &err), &err);
    CHECK_OK(gm_session_generate_begin(s, &gp, &err), &err);
    flag = 1;
    gm_step step;
    CHECK_FAILS(gm_session_next(s, &step, &err), GM_ERR_CANCELLED, "cancelled", &err);
    gm_session_set_cancel_flag(s, NULL);
    gm_session_free(s);
}

/*
 * Only a prompt's last batch computes logits; a cancel between batches must
 * still leave the last evaluated token's logits (session.c). The cancel is
 * made deterministic by pointing the flag at context slot 64, which turns
 * non-zero when the second batch (64 tokens each) has been stored: the
 * eval then stops at the top of the third. Expectation: a fresh session
 * that evaluates exactly those 128 tokens.
 */
static void test_cancel_between_batches(gm_model *m) {
    enum { N = 200, DONE = 128 };
    int32_t ids[N];
    for (int i = 0; i < N; i++) ids[i] = 2 + i % 50; /* non-zero: slot 64 flips when written */
    gm_session *s = session(m, 256, 0, 1), *fresh = session(m, 256, 0, 1);
    gm_error err;
    CHECK(s->dec.max_batch == 64, "batches of 64 (got %d)", s->dec.max_batch);
    gm_session_set_cancel_flag(s, (const volatile int *)&s->tokens[64]);
    CHECK_FAILS(gm_session_eval(s, ids, N, &err), GM_ERR_CANCELLED, "cancelled", &err);
    gm_session_set_cancel_flag(s, NULL);
    CHECK(gm_session_n_past(s) == DONE, "stopped after two batches (n_past %zu)", gm_session_n_past(s));
    CHECK_OK(gm_session_eval(fresh, ids, DONE, &err), &err);
    const float *got = gm_session_logits(s), *want = gm_session_logits(fresh);
    CHECK(got && want, "logits after a cancel between batches");
    if (got && want) {
        float worst = 0;
        for (int i = 0; i < m->cfg.vocab_size; i++) worst = fmaxf(worst, fabsf(got[i] - want[i]));
        CHECK(worst <= 5e-4f, "logits after the cancel vs a fresh run: max |diff| %g", worst);
    }
    int32_t next;
    CHECK_OK(gm_session_sample(s, &next, &err), &err);
    gm_session_free(s);
    gm_session_free(fresh);
}

int main(void) {
    gm_model *m = open_model("golden/text_tiny_a");
    if (m) {
        test_truncate_and_reset(m);
        test_seeded_sampling(m);
        test_cancel_and_full_context(m);
        test_cancel_between_batches(m);
        gm_model_free(m);
    }
    test_stop_strings();
    return gm_test_summary();
}
