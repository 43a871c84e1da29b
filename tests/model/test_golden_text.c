/*
 * test_golden_text.c - the text decoder against the upstream reference.
 *
 * For one golden results directory (argv[1], relative to tests/data/golden),
 * with the model in argv[2] (default: the same directory) and optionally a
 * MatFormer submodel selected at run time from argv[3] (a slice_X.json):
 * prefill logits of every prompt position, every decode step's logits and
 * the greedy ids, the full-sequence prefill, the long prompt (many sliding
 * windows), every layer's AltUp streams, and token-by-token decoding vs
 * one batched prefill. Tolerances are the golden README's.
 */
#include "session.h"
#include "test_util.h"

#define LOGIT_TOL 1e-3
#define HIDDEN_TOL 1e-3          /* relative to max(1, max|ref|) */
#define TOKEN_BY_TOKEN_TOL 5e-4

static char set_dir[1024];

static const char *golden(const char *file) {
    static char buf[2048];
    snprintf(buf, sizeof buf, "%s/%s", set_dir, file);
    return buf;
}

static int load(const char *file, npy_array *a) {
    int rc = npy_load(golden(file), a);
    CHECK(rc == 0, "cannot load %s", golden(file));
    return rc;
}

static void ids_from_npy(const npy_array *a, int32_t *ids) {
    for (size_t i = 0; i < a->count; i++) ids[i] = (int32_t)((const int64_t *)a->data)[i];
}

static gm_session *new_session(gm_model *m, int keep_all) {
    gm_session_params sp = gm_session_default_params();
    sp.n_ctx = 256;
    sp.keep_all_logits = keep_all;
    sp.sampler.temperature = 0; /* greedy */
    gm_session *s = NULL;
    gm_error err;
    CHECK_OK(gm_session_new(m, &sp, &s, &err), &err);
    return s;
}

/* Prefill logits of every position vs `ref_file` [T, V]. */
static void check_prefill(gm_model *m, const int32_t *ids, size_t T, const char *ref_file) {
    npy_array ref;
    if (load(ref_file, &ref)) return;
    gm_session *s = new_session(m, 1);
    gm_error err;
    CHECK_OK(gm_session_eval(s, ids, T, &err), &err);
    size_t rows;
    const float *all = gm_session_all_logits(s, &rows);
    CHECK(all && rows == T && ref.count == T * (size_t)m->cfg.vocab_size, "rows %zu", rows);
    if (all && rows == T) {
        double d = max_abs_diff(all, ref.data, ref.count);
        CHECK(d <= LOGIT_TOL, "%s: max |diff| %.3g", ref_file, d);
        printf("  %-28s max|diff| %.2e\n", ref_file, d);
    }
    gm_session_free(s);
    npy_free(&ref);
}

/* Greedy decode after the prompt: step logits and ids vs the reference. */
static void check_greedy(gm_model *m, const int32_t *ids, size_t T, const char *ids_file, const char *logits_file) {
    npy_array ref_ids, ref_logits;
    if (load(ids_file, &ref_ids) || load(logits_file, &ref_logits)) return;
    gm_session *s = new_session(m, 0);
    gm_error err;
    CHECK_OK(gm_session_eval(s, ids, T, &err), &err);
    gm_generate_params gp = gm_generate_default_params();
    gp.max_tokens = (int32_t)ref_ids.count;
    gp.ignore_eos = 1;
    CHECK_OK(gm_session_generate_begin(s, &gp, &err), &err);
    size_t V = (size_t)m->cfg.vocab_size;
    double worst = 0;
    for (size_t i = 0; i < ref_ids.count; i++) {
        double d = max_abs_diff(gm_session_logits(s), (const float *)ref_logits.data + i * V, V);
        worst = d > worst ? d : worst;
        gm_step step;
        CHECK_OK(gm_session_next(s, &step, &err), &err);
        int64_t want = ((const int64_t *)ref_ids.data)[i];
        CHECK(step.token == want, "%s step %zu: token %d, want %lld", ids_file, i, step.token, (long long)want);
        CHECK(step.finish == (i + 1 == ref_ids.count ? GM_FINISH_LENGTH : GM_FINISH_NONE), "finish %d", step.finish);
    }
    CHECK(worst <= LOGIT_TOL, "%s: max |diff| %.3g", logits_file, worst);
    printf("  %-28s max|diff| %.2e\n", logits_file, worst);
    gm_session_free(s);
    npy_free(&ref_ids);
    npy_free(&ref_logits);
}

typedef struct observed {
    npy_array ref; /* [L, K, T, H] */
    double worst;
    int H, K, T;
} observed;

static void observe_layer(void *user, int layer, const float *streams, int T, int stride) {
    observed *o = user;
    const float *ref = o->ref.data;
    double mx = 1;
    size_t per_layer = (size_t)o->K * o->T * o->H;
    for (size_t i = 0; i < per_layer; i++) mx = fmax(mx, fabs(ref[layer * per_layer + i]));
    for (int k = 0; k < o->K; k++)
        for (int t = 0; t < T; t++) {
            const float *got = streams + ((size_t)k * stride + t) * o->H;
            const float *want = ref + layer * per_layer + ((size_t)k * o->T + t) * o->H;
            double d = max_abs_diff(got, want, (size_t)o->H) / mx;
            o->worst = d > o->worst ? d : o->worst;
        }
}

static void check_hidden_states(gm_model *m, const int32_t *ids, size_t T) {
    observed o = {.H = m->cfg.hidden_size, .K = m->cfg.altup_num_inputs, .T = (int)T};
    if (load("hidden_states_layers.npy", &o.ref)) return;
    CHECK(o.ref.ndim == 4 && o.ref.shape[1] == o.K && o.ref.shape[2] == (long)T && o.ref.shape[3] == o.H,
          "hidden_states_layers shape");
    gm_session *s = new_session(m, 0);
    s->dec.observer = observe_layer;
    s->dec.observer_user = &o;
    gm_error err;
    CHECK_OK(gm_session_eval(s, ids, T, &err), &err);
    CHECK(o.worst <= HIDDEN_TOL, "hidden states: max rel |diff| %.3g", o.worst);
    printf("  %-28s max rel|diff| %.2e\n", "hidden_states_layers.npy", o.worst);
    gm_session_free(s);
    npy_free(&o.ref);
}

/* Feeding tokens one at a time through the cache == one batched prefill. */
static void check_token_by_token(gm_model *m, const int32_t *ids, size_t T) {
    gm_session *batched = new_session(m, 1), *single = new_session(m, 0);
    gm_error err;
    CHECK_OK(gm_session_eval(batched, ids, T, &err), &err);
    const float *all = gm_session_all_logits(batched, NULL);
    size_t V = (size_t)m->cfg.vocab_size;
    double worst = 0;
    for (size_t t = 0; t < T && all; t++) {
        CHECK_OK(gm_session_eval(single, ids + t, 1, &err), &err);
        double d = max_abs_diff(gm_session_logits(single), all + t * V, V);
        worst = d > worst ? d : worst;
    }
    CHECK(worst <= TOKEN_BY_TOKEN_TOL, "token-by-token vs batched: %.3g", worst);
    printf("  %-28s max|diff| %.2e\n", "token-by-token vs batch", worst);
    gm_session_free(batched);
    gm_session_free(single);
}

/*
 * A prompt whose logits are wanted only for its last token skips the
 * KV-shared tail layers for the other rows (text_decoder.c): its last row,
 * and the generation after it, must match the run that keeps every row
 * (which cannot skip). Reference: the keep-all session's last row.
 */
static void check_shared_tail_skip(gm_model *m, const int32_t *ids, size_t T) {
    CHECK(m->cfg.num_kv_shared_layers > 0, "the golden model has a KV-shared tail to skip");
    gm_session *all = new_session(m, 1), *last = new_session(m, 0);
    gm_error err;
    CHECK_OK(gm_session_eval(all, ids, T, &err), &err);
    CHECK_OK(gm_session_eval(last, ids, T, &err), &err);
    size_t V = (size_t)m->cfg.vocab_size, rows = 0;
    const float *a = gm_session_all_logits(all, &rows);
    if (a && rows == T) {
        double d = max_abs_diff(gm_session_logits(last), a + (T - 1) * V, V);
        CHECK(d <= TOKEN_BY_TOKEN_TOL, "last row with the shared tail skipped: %.3g", d);
        printf("  %-28s max|diff| %.2e\n", "shared tail skipped", d);
    }
    gm_session_free(all);
    gm_session_free(last);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s RESULTS_DIR [MODEL_DIR [SUBMODEL.json]]\n", argv[0]);
        return 2;
    }
    char model_dir[1024];
    snprintf(set_dir, sizeof set_dir, "%s/golden/%s", GM_TEST_DATA, argv[1]);
    snprintf(model_dir, sizeof model_dir, "%s/golden/%s", GM_TEST_DATA, argc > 2 ? argv[2] : argv[1]);
    gm_model *m = NULL;
    gm_error err;
    CHECK_OK(gm_model_open(model_dir, NULL, &m, &err), &err);
    if (!m) return gm_test_summary();
    if (argc > 3) {
        char spec_path[1024];
        gm_submodel_spec spec;
        snprintf(spec_path, sizeof spec_path, "%s/golden/%s", GM_TEST_DATA, argv[3]);
        CHECK_OK(gm_submodel_resolve(spec_path, &spec, &err), &err);
        CHECK_OK(gm_model_select_submodel(m, &spec, &err), &err);
    }
    npy_array a, b, gen;
    if (load("input_ids.npy", &a) || load("input_ids_long.npy", &b) || load("generated_ids.npy", &gen))
        return gm_test_summary();
    int32_t ids[512], long_ids[512], full[512];
    ids_from_npy(&a, ids);
    ids_from_npy(&b, long_ids);
    printf("%s\n", argv[1]);
    check_prefill(m, ids, a.count, "logits_prefill.npy");
    check_greedy(m, ids, a.count, "generated_ids.npy", "decode_step_logits.npy");
    memcpy(full, ids, a.count * sizeof *ids);
    for (size_t i = 0; i + 1 < gen.count; i++) full[a.count + i] = (int32_t)((const int64_t *)gen.data)[i];
    check_prefill(m, full, a.count + gen.count - 1, "logits_full_sequence.npy");
    check_hidden_states(m, ids, a.count);
    check_prefill(m, long_ids, b.count, "logits_prefill_long.npy");
    check_greedy(m, long_ids, b.count, "generated_ids_long.npy", "decode_step_logits_long.npy");
    check_token_by_token(m, long_ids, b.count);
    check_shared_tail_skip(m, long_ids, b.count);
    npy_free(&a);
    npy_free(&b);
    npy_free(&gen);
    gm_model_free(m);
    return gm_test_summary();
}
