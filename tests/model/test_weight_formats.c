/*
 * test_weight_formats.c - the same tiny golden models with their matrices
 * converted at load. F32/F16/BF16 are exact for these weights (all values
 * are bf16- and f16-representable), so the golden tolerance holds; Q8_0 and
 * Q4_0 are lossy: their error against the f32 golden is measured and
 * printed (max abs, RMS, top-1 agreement). These random tiny models amplify
 * weight noise very differently (text_tiny_a: Q8_0 RMS ~0.12, text_tiny_b:
 * ~0.016), so no absolute bound is asserted; what must hold is that 8 bits
 * beat 4 bits and everything stays finite. The quantizers themselves are
 * checked bit for bit against ggml's in test_quant, and the end-to-end
 * quality against llama.cpp on the same GGUF.
 */
#include "gemma3n.h"
#include "test_util.h"

typedef struct errors { double max_abs, rms, top1; } errors;

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return best;
}

static errors measure(const char *set, gm_weight_format format) {
    errors e = {INFINITY, INFINITY, 0};
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/golden/%s", GM_TEST_DATA, set);
    gm_model_params mp = gm_model_default_params();
    mp.weights = format;
    gm_model *m = NULL;
    gm_error err;
    CHECK_OK(gm_model_open(dir, &mp, &m, &err), &err);
    npy_array ids64, ref;
    snprintf(path, sizeof path, "%s/input_ids_long.npy", dir);
    if (!m || npy_load(path, &ids64)) return e;
    snprintf(path, sizeof path, "%s/logits_prefill_long.npy", dir);
    if (npy_load(path, &ref)) return e;
    int32_t ids[256];
    for (size_t i = 0; i < ids64.count; i++) ids[i] = (int32_t)((int64_t *)ids64.data)[i];
    gm_session_params sp = gm_session_default_params();
    sp.n_ctx = 128;
    sp.keep_all_logits = 1;
    gm_session *s = NULL;
    CHECK_OK(gm_session_new(m, &sp, &s, &err), &err);
    CHECK_OK(gm_session_eval(s, ids, ids64.count, &err), &err);
    size_t rows, V = (size_t)ref.shape[1];
    const float *got = gm_session_all_logits(s, &rows);
    const float *want = ref.data;
    double sq = 0, mx = 0;
    int agree = 0;
    for (size_t r = 0; r < rows; r++) {
        for (size_t v = 0; v < V; v++) {
            double d = fabs((double)got[r * V + v] - want[r * V + v]);
            mx = d > mx ? d : mx;
            sq += d * d;
        }
        agree += argmax(got + r * V, (int)V) == argmax(want + r * V, (int)V);
    }
    e.max_abs = mx;
    e.rms = sqrt(sq / (double)(rows * V));
    e.top1 = (double)agree / (double)rows;
    gm_session_free(s);
    gm_model_free(m);
    npy_free(&ids64);
    npy_free(&ref);
    return e;
}

int main(void) {
    const char *sets[] = {"text_tiny_a", "text_tiny_b"};
    printf("%-12s %-6s %10s %10s %8s\n", "set", "format", "max|diff|", "rms", "top-1");
    for (int i = 0; i < 2; i++) {
        errors by_format[GM_WEIGHTS_Q4_0 + 1];
        for (gm_weight_format f = GM_WEIGHTS_F32; f <= GM_WEIGHTS_Q4_0; f++) {
            errors e = by_format[f] = measure(sets[i], f);
            printf("%-12s %-6s %10.3g %10.3g %7.1f%%\n", sets[i], gm_weight_format_name(f), e.max_abs, e.rms, 100 * e.top1);
            CHECK(isfinite(e.max_abs), "%s %s: non-finite logits", sets[i], gm_weight_format_name(f));
            if (f <= GM_WEIGHTS_BF16) CHECK(e.max_abs <= 1e-3, "%s %s: %.3g", sets[i], gm_weight_format_name(f), e.max_abs);
        }
        CHECK(by_format[GM_WEIGHTS_Q8_0].rms < by_format[GM_WEIGHTS_Q4_0].rms, "%s: q8_0 should beat q4_0", sets[i]);
    }
    gm_weight_format f;
    gm_error err;
    CHECK_FAILS(gm_weight_format_parse("q3_k", &f, &err), GM_ERR_ARGUMENT, "unknown weight format 'q3_k'", &err);
    CHECK_OK(gm_weight_format_parse("Q4_0", &f, &err), &err);
    CHECK(f == GM_WEIGHTS_Q4_0, "parse");
    return gm_test_summary();
}
