/*
 * test_kv_f16.c - the binary16 K/V cache (gm_session_params.kv_type =
 * GM_KV_F16) on the golden model text_tiny_a (the f16 -> f32 conversion
 * itself is test_kernels' f16_to_f32, exhaustive per variant): prefill
 * logits stay within the f16 rounding's reach of the f32 cache's (and are
 * not identical: the f16 path really ran), also over several conversion
 * chunks and wrapped rings, greedy decoding gives the golden ids, and bad
 * kv_type values are rejected.
 */
#include <math.h>

#include "gemma3n.h"
#include "session.h" /* m->cfg */
#include "test_util.h"

#define SET "golden/text_tiny_a"

/*
 * Bound on max |logit(f16 cache) - logit(f32 cache)|. Every cached K/V
 * element is RMSNormed (K also rotated), so |x| is O(1) and binary16 keeps
 * it to a relative 2^-11 (4.9e-4, round to nearest even; no overflow or
 * underflow at that magnitude). Scores q.k (hd = 32) and the softmax
 * average of V move by that relative amount; o_proj, the residual/AltUp
 * stack of 8 layers (the KV-shared tail reads the rounded caches too) and
 * the tied lm_head amplify it: measured 6.5e-3 (ref table) and 6.9e-3
 * (avx512_amx), ~14 x 2^-11. 2e-2 (~40 x 2^-11) leaves ~3x headroom for
 * any kernel table's summation order, and twice it is still 8x below the
 * golden greedy paths' smallest top-1/top-2 margin (0.32, stats.json), so
 * the greedy ids must agree with the golden ones.
 */
#define KV_F16_LOGIT_TOL 2e-2

/*
 * The same bound for a 300-token pseudo-random prompt (n_ctx 320): every
 * full-attention query then averages over up to 300 keys read in 5 chunks
 * of GM_KV_CHUNK (64) converted rows, and the sliding rings wrap many
 * times; a wrong chunk or slot offset gives errors of order 1. The rounding
 * error grows with the number of rounded keys and values each logit
 * depends on: measured 2.74e-2 .. 2.76e-2 (ref, avx2, avx512_amx tables),
 * ~56 x 2^-11; 5e-2 (~100 x 2^-11) leaves ~1.8x headroom, while a
 * misplaced row would still fail it by far.
 */
#define KV_F16_LONG_LOGIT_TOL 5e-2
#define LONG_T 300

static gm_model *open_model(void) {
    gm_model *m = NULL;
    gm_error err;
    CHECK_OK(gm_model_open(test_path(SET), NULL, &m, &err), &err);
    return m;
}

static gm_session *new_session(gm_model *m, int32_t kv_type, int keep_all, int32_t n_ctx) {
    gm_session_params sp = gm_session_default_params();
    sp.n_ctx = n_ctx;
    sp.keep_all_logits = keep_all;
    sp.sampler.temperature = 0; /* greedy */
    sp.kv_type = kv_type;
    gm_session *s = NULL;
    gm_error err;
    CHECK_OK(gm_session_new(m, &sp, &s, &err), &err);
    return s;
}

static size_t load_ids(const char *file, int32_t *ids, size_t cap) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", test_path(SET), file);
    npy_array a;
    if (npy_load(path, &a) != 0) {
        CHECK(0, "cannot load %s", path);
        return 0;
    }
    size_t n = a.count < cap ? a.count : cap;
    for (size_t i = 0; i < n; i++) ids[i] = (int32_t)((const int64_t *)a.data)[i];
    npy_free(&a);
    return n;
}

static void test_names_and_validation(gm_model *m) {
    CHECK(gm_kv_type_from_name("f32") == GM_KV_F32 && gm_kv_type_from_name("f16") == GM_KV_F16, "names");
    CHECK(gm_kv_type_from_name("bf16") == -1 && gm_kv_type_from_name(NULL) == -1, "bad names");
    CHECK(strcmp(gm_kv_type_name(GM_KV_F16), "f16") == 0 && strcmp(gm_kv_type_name(7), "?") == 0, "name");
    CHECK(gm_session_default_params().kv_type == GM_KV_F32, "default is f32");
    gm_session_params sp = gm_session_default_params();
    gm_session *s = NULL;
    gm_error err;
    int32_t bad[] = {-1, 2, 16};
    for (size_t i = 0; i < GM_ARRAY_LEN(bad); i++) {
        sp.kv_type = bad[i];
        CHECK_FAILS(gm_session_new(m, &sp, &s, &err), GM_ERR_ARGUMENT, "kv_type", &err);
        CHECK(s == NULL, "no session on a bad kv_type");
    }
}

static void pseudo_random_ids(int32_t *ids, int n, int vocab) {
    uint32_t x = 12345;
    for (int i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        ids[i] = 3 + (int32_t)((x >> 8) % (uint32_t)(vocab - 3));
    }
}

/* Prefill logits of ids[0..T) with an f16 cache vs an f32 cache: within tol, and not identical. */
static void check_prefill(gm_model *m, const int32_t *ids, size_t T, int32_t n_ctx, double tol, const char *what) {
    gm_session *a = new_session(m, GM_KV_F32, 1, n_ctx), *b = new_session(m, GM_KV_F16, 1, n_ctx);
    gm_error err;
    CHECK_OK(gm_session_eval(a, ids, T, &err), &err);
    CHECK_OK(gm_session_eval(b, ids, T, &err), &err);
    size_t ra, rb;
    const float *la = gm_session_all_logits(a, &ra), *lb = gm_session_all_logits(b, &rb);
    CHECK(la && lb && ra == T && rb == T, "rows %zu %zu", ra, rb);
    if (la && lb && ra == T && rb == T) {
        double d = max_abs_diff(la, lb, T * (size_t)m->cfg.vocab_size);
        printf("  %s: prefill logits f16 vs f32 KV: max|diff| %.2e (tolerance %.0e)\n", what, d, tol);
        CHECK(d <= tol, "%s: f16 KV logits differ by %.3g", what, d);
        CHECK(d > 0, "%s: f16 KV logits are identical to f32: the f16 cache was not used", what);
    }
    gm_session_free(a);
    gm_session_free(b);
}

/* The golden long prompt (11 sliding windows: the rings wrap), then 300 pseudo-random tokens (chunks). */
static void test_prefill(gm_model *m) {
    int32_t ids[LONG_T];
    size_t T = load_ids("input_ids_long.npy", ids, 64);
    if (T) check_prefill(m, ids, T, 256, KV_F16_LOGIT_TOL, "golden long prompt");
    ids[0] = 2; /* <bos> */
    pseudo_random_ids(ids + 1, LONG_T - 1, m->cfg.vocab_size);
    check_prefill(m, ids, LONG_T, LONG_T + 20, KV_F16_LONG_LOGIT_TOL, "300 pseudo-random tokens");
}

/* Greedy continuation of prompt 1 (and of the long prompt) with the f16 cache equals the golden ids. */
static void test_greedy(gm_model *m, const char *prompt_file, const char *ids_file) {
    int32_t ids[64], ref[16];
    size_t T = load_ids(prompt_file, ids, 64), n = load_ids(ids_file, ref, 16);
    if (!T || !n) return;
    gm_session *s = new_session(m, GM_KV_F16, 0, 256);
    gm_error err;
    CHECK_OK(gm_session_eval(s, ids, T, &err), &err);
    gm_generate_params gp = gm_generate_default_params();
    gp.max_tokens = (int32_t)n;
    gp.ignore_eos = 1;
    CHECK_OK(gm_session_generate_begin(s, &gp, &err), &err);
    size_t got = 0;
    gm_step step;
    while (got < n && gm_session_next(s, &step, &err) == GM_OK) {
        CHECK(step.token == ref[got], "%s: f16 KV token %zu is %d, golden %d", ids_file, got, step.token, ref[got]);
        got++;
        if (step.finish != GM_FINISH_NONE) break;
    }
    CHECK(got == n, "%s: %zu of %zu tokens", ids_file, got, n);
    gm_session_free(s);
}

int main(void) {
    gm_model *m = open_model();
    if (m) {
        test_names_and_validation(m);
        test_prefill(m);
        test_greedy(m, "input_ids.npy", "generated_ids.npy");
        test_greedy(m, "input_ids_long.npy", "generated_ids_long.npy");
        gm_model_free(m);
    }
    return gm_test_summary();
}
