/*
 * test_sparsity.c - decode's exact use of activation sparsity (issue #6).
 *
 * 1. gm_matmul_rows against the dense gm_matmul, bit for bit, for every
 *    weight type, on 1 thread and on a pool (the row list split in tasks),
 *    with scattered rows and runs of consecutive rows.
 * 2. A golden model with sparsity on its first layers (text_tiny_a:
 *    activation_sparsity_pattern 0.95 x 4, then 0), as BF16, Q8_0 and Q4_0
 *    weights: the same token-by-token decode (a short prefill, then greedy
 *    steps) with up_proj row skipping on and off gives identical logits,
 *    and skipping did skip (fewer up rows computed than a dense product).
 *    Batches stay below GM_GEMM_MIN_BATCH: larger ones may go through
 *    sgemm when skipping is off, whose rounding differs.
 * The golden suite reruns this under each kernel variant (run_all.sh), so
 * the reference kernels' path is checked too.
 */
#include "matmul_sparse.h"
#include "model.h"
#include "session.h"
#include "test_util.h"

/* ---- 1. rows vs dense ---- */

static float frand(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void check_rows(gm_dtype type, int threads) {
    enum { OUT = 1040, IN = 1024 }; /* ~700 rows of 1024: above matmul_sparse.c's parallel threshold (4e5) */
    uint32_t seed = 7;
    static float w[OUT * IN], x[IN], dense[OUT], sparse[OUT];
    static uint8_t enc[OUT * IN * 4];
    for (int i = 0; i < OUT * IN; i++) w[i] = frand(&seed);
    for (int i = 0; i < IN; i++) x[i] = frand(&seed);
    size_t row_bytes = gm_dtype_row_bytes(type, IN);
    for (int r = 0; r < OUT; r++) gm_encode_row(type, w + r * IN, enc + r * row_bytes, IN);
    gm_matrix W = {.type = type, .rows = OUT, .cols = IN, .row_stride = IN, .data = enc};
    gm_matmul_ctx c;
    gm_error err;
    CHECK_OK(gm_matmul_init(&c, IN, threads, &err), &err);
    gm_matmul(&c, &W, OUT, IN, x, 1, dense);
    int32_t rows[OUT];
    int n = 0;
    for (int r = 0; r < OUT; r++) /* pairs of rows, plus a long run (the kernels' 4-row passes) */
        if (r % 3 != 1 || (r >= 100 && r < 140)) rows[n++] = r;
    for (int r = 0; r < OUT; r++) sparse[r] = NAN;
    int64_t done = gm_matmul_rows(&c, &W, OUT, IN, x, rows, n, sparse);
    CHECK(done == n, "%s: %lld rows computed, %d asked", gm_dtype_name(type), (long long)done, n);
    int bad = 0, untouched = 1;
    for (int i = 0, r = 0; r < OUT; r++) {
        if (i < n && rows[i] == r) {
            bad += memcmp(&sparse[r], &dense[r], sizeof(float)) != 0;
            i++;
        } else {
            untouched &= isnan(sparse[r]);
        }
    }
    CHECK(bad == 0, "%s, %d threads: %d rows differ from the dense product", gm_dtype_name(type), threads, bad);
    CHECK(untouched, "%s: rows not asked for were written", gm_dtype_name(type));
    CHECK(gm_matmul_rows(&c, &W, OUT, IN, x, rows, 0, sparse) == 0, "no rows");
    gm_matmul_free(&c);
}

/* ---- 2. a whole decode, skipping on and off ---- */

typedef struct run {
    float *logits;         /* [STEPS, V] */
    int64_t computed, dense;
} run;

enum { STEPS = 12 };

/*
 * Feeds the prompt's first 3 tokens in one call (a batch still below
 * GM_GEMM_MIN_BATCH: several rows through the sparse path), then its other
 * tokens one at a time, then greedy tokens, keeping every call's last logits.
 */
static void decode(gm_model *m, const int32_t *prompt, int n, bool skip, run *out) {
    gm_session_params sp = gm_session_default_params();
    sp.n_ctx = 64;
    gm_session *s = NULL;
    gm_error err;
    CHECK_OK(gm_session_new(m, &sp, &s, &err), &err);
    if (!s) return;
    gm_decoder_set_sparse_ffn(&s->dec, skip);
    size_t V = (size_t)m->cfg.vocab_size;
    int32_t id = prompt[3];
    CHECK_OK(gm_session_eval(s, prompt, 3, &err), &err);
    for (int i = 0; i < STEPS; i++) {
        if (i > 0) CHECK_OK(gm_session_eval(s, &id, 1, &err), &err);
        const float *lg = gm_session_logits(s);
        memcpy(out->logits + i * V, lg, V * sizeof(float));
        int best = 0;
        for (size_t v = 1; v < V; v++) best = lg[v] > lg[best] ? (int)v : best;
        id = i + 4 < n ? prompt[i + 4] : best;
    }
    out->computed = s->dec.ffn_rows_computed;
    out->dense = s->dec.ffn_rows_dense;
    gm_session_free(s);
}

static void check_decode(gm_weight_format format) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/golden/text_tiny_a", GM_TEST_DATA);
    gm_model_params mp = gm_model_default_params();
    mp.weights = format;
    gm_model *m = NULL;
    gm_error err;
    CHECK_OK(gm_model_open(dir, &mp, &m, &err), &err);
    if (!m) return;
    size_t V = (size_t)m->cfg.vocab_size;
    const int32_t prompt[] = {2, 105, 236, 107, 1, 77};
    run on = {calloc(STEPS * V, sizeof(float)), 0, 0}, off = {calloc(STEPS * V, sizeof(float)), 0, 0};
    decode(m, prompt, 6, true, &on);
    decode(m, prompt, 6, false, &off);
    double d = 0;
    for (size_t i = 0; i < STEPS * V; i++) d = fmax(d, fabs((double)on.logits[i] - off.logits[i]));
    const char *name = gm_weight_format_name(format);
    CHECK(d <= 1e-5, "%s: skipping changed the logits by %.3g", name, d);
    CHECK(d == 0, "%s: skipping should be exact, max |diff| %.3g", name, d);
    CHECK(on.dense > 0 && on.computed < on.dense, "%s: %lld of %lld up rows computed", name, (long long)on.computed,
          (long long)on.dense);
    CHECK(off.computed == 0 && off.dense == 0, "%s: skipping off still counted rows", name);
    printf("  %-5s max|diff| %.2g, up rows computed %lld of %lld (%.1f %%)\n", name, d, (long long)on.computed,
           (long long)on.dense, 100.0 * (double)on.computed / (double)(on.dense ? on.dense : 1));
    free(on.logits);
    free(off.logits);
    gm_model_free(m);
}

int main(void) {
    const gm_dtype types[] = {GM_DTYPE_F32, GM_DTYPE_BF16, GM_DTYPE_F16, GM_DTYPE_Q8_0, GM_DTYPE_Q4_0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        check_rows(types[i], 1);
        check_rows(types[i], 2);
    }
    printf("kernels: %s\n", gm_kern_selection());
    check_decode(GM_WEIGHTS_BF16);
    check_decode(GM_WEIGHTS_Q8_0);
    check_decode(GM_WEIGHTS_Q4_0);
    return gm_test_summary();
}
