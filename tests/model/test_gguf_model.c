/*
 * test_gguf_model.c - GGUF as a model format: gm_convert_to_gguf and
 * gm_model_open on .gguf files.
 *
 *  1. Each tiny golden set converted at every weight format loads and
 *     computes bit for bit what its directory computes at that format
 *     (the converter follows the quantize-at-load policy); F32 / BF16 /
 *     stored also meet the golden logits (1e-3) and greedy ids; the
 *     Q8_0 / Q4_0 error against the golden is printed.
 *  2. A file with only llama.cpp's keys (our extensions stripped) still
 *     meets the golden: sparsity from the stored std multipliers.
 *  3. Alignment 1 (tensors misaligned in the mapping): copied, same logits.
 *     MatFormer submodels select the same plans (and effective parameter
 *     counts) on a GGUF as on its directory.
 *  4. A model with Gemma's real vocabulary (262400 ids, per-layer table
 *     of 262144 rows padded with zeros, tiny widths): the GGUF tokenizer
 *     encodes every reference encoding like tokenizer.json, the padded ids
 *     follow upstream, with and without the vocab-size keys.
 *  5. Errors: architecture, K-quant tensor, missing tensor, wrong shape,
 *     missing key, out-of-range value, truncated file, not a GGUF;
 *     converter errors and cancellation.
 *
 * Corrupt files are written with gm_gguf_writer from a good one.
 */
#define _POSIX_C_SOURCE 200809L
#include "gguf_model.h"
#include "json.h"
#include "session.h"
#include "synth.h"
#include "test_util.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp_dir[256];

static const char *tmp(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmp_dir, name);
    return buf[k];
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) remove_tree(path);
        else unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static const char *golden_dir(const char *set) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/golden/%s", GM_TEST_DATA, set);
    return buf;
}

static int argmax(const float *x, size_t n) {
    size_t best = 0;
    for (size_t i = 1; i < n; i++) if (x[i] > x[best]) best = i;
    return (int)best;
}

/* ---- running a model ---- */

/* Logits of every position of ids (caller frees); NULL on failure (reported). */
static float *prefill(gm_model *m, const int32_t *ids, size_t n) {
    gm_session_params sp = gm_session_default_params();
    sp.n_ctx = 256;
    sp.keep_all_logits = 1;
    gm_session *s = NULL;
    gm_error err;
    float *out = NULL;
    CHECK_OK(gm_session_new(m, &sp, &s, &err), &err);
    if (!s) return NULL;
    gm_status st = gm_session_eval(s, ids, n, &err);
    CHECK(st == GM_OK, "eval: %s", err.message);
    size_t rows = 0;
    const float *all = st == GM_OK ? gm_session_all_logits(s, &rows) : NULL;
    size_t V = (size_t)m->cfg.vocab_size;
    if (all && rows == n) {
        out = malloc(n * V * sizeof *out);
        memcpy(out, all, n * V * sizeof *out);
    }
    gm_session_free(s);
    return out;
}

/* Greedy continuation: ids and per-step logits vs the golden files; returns the worst logit diff. */
static double greedy_vs_golden(gm_model *m, const char *set, const int32_t *ids, size_t n) {
    char path[600];
    npy_array gen, steps;
    snprintf(path, sizeof path, "%s/generated_ids_long.npy", golden_dir(set));
    if (npy_load(path, &gen)) return INFINITY;
    snprintf(path, sizeof path, "%s/decode_step_logits_long.npy", golden_dir(set));
    if (npy_load(path, &steps)) return INFINITY;
    gm_session_params sp = gm_session_default_params();
    sp.n_ctx = 256;
    sp.sampler.temperature = 0;
    gm_session *s = NULL;
    gm_error err;
    CHECK_OK(gm_session_new(m, &sp, &s, &err), &err);
    CHECK_OK(gm_session_eval(s, ids, n, &err), &err);
    gm_generate_params gp = gm_generate_default_params();
    gp.max_tokens = (int32_t)gen.count;
    gp.ignore_eos = 1;
    CHECK_OK(gm_session_generate_begin(s, &gp, &err), &err);
    size_t V = (size_t)m->cfg.vocab_size;
    double worst = 0;
    for (size_t i = 0; i < gen.count; i++) {
        worst = fmax(worst, max_abs_diff(gm_session_logits(s), (const float *)steps.data + i * V, V));
        gm_step step;
        CHECK_OK(gm_session_next(s, &step, &err), &err);
        CHECK(step.token == ((const int64_t *)gen.data)[i], "%s step %zu: token %d, want %lld", set, i, step.token,
              (long long)((const int64_t *)gen.data)[i]);
    }
    gm_session_free(s);
    npy_free(&gen);
    npy_free(&steps);
    return worst;
}

static size_t long_prompt(const char *set, int32_t *ids) {
    char path[600];
    npy_array a;
    snprintf(path, sizeof path, "%s/input_ids_long.npy", golden_dir(set));
    if (npy_load(path, &a)) return 0;
    for (size_t i = 0; i < a.count; i++) ids[i] = (int32_t)((const int64_t *)a.data)[i];
    size_t n = a.count;
    npy_free(&a);
    return n;
}

static gm_model *open_model(const char *path, gm_weight_format f) {
    gm_model_params mp = gm_model_default_params();
    mp.weights = f;
    gm_model *m = NULL;
    gm_error err;
    CHECK_OK(gm_model_open(path, &mp, &m, &err), &err);
    return m;
}

/* ---- rewriting a GGUF file (to make corrupt or llama.cpp-like ones) ---- */

typedef struct rewrite {
    const char *const *drop_keys;  /* NULL-terminated, or NULL */
    const char *arch;              /* new general.architecture, or NULL */
    const char *set_u32_key;       /* a u32 key to set (added or replaced) */
    uint32_t set_u32_value;
    const char *drop_tensor;
    const char *replace_tensor;    /* replaced by zeros of new_type / new_ne */
    int32_t new_type;
    int new_dims;
    int64_t new_ne[4];
    uint32_t alignment;            /* 0: as the source */
} rewrite;

static bool listed(const char *const *list, const char *s) {
    for (; list && *list; list++) if (!strcmp(*list, s)) return true;
    return false;
}

static gm_status copy_kv(const gm_gguf *g, int64_t i, gm_gguf_writer *w, gm_error *err) {
    const char *key = gm_gguf_kv_key(g, i);
    gm_gguf_type t = gm_gguf_kv_type(g, i);
    if (t == GM_GGUF_STR) {
        const char *s;
        size_t n;
        gm_gguf_get_str(g, key, &s, &n, err);
        char *z = strndup(s, n);
        gm_status st = gm_gguf_writer_set_str(w, key, z, err);
        free(z);
        return st;
    }
    if (t != GM_GGUF_ARRAY) {
        union { uint64_t u; double d; bool b; } v;
        gm_gguf_get_scalar(g, key, t, &v, err);
        return gm_gguf_writer_set_scalar(w, key, t, &v, err);
    }
    gm_gguf_type e = gm_gguf_arr_type(g, i);
    uint64_t n = gm_gguf_arr_len(g, i);
    gm_status st;
    if (e == GM_GGUF_STR) {
        const char **p = malloc((n + 1) * sizeof *p);
        size_t *l = malloc((n + 1) * sizeof *l);
        for (uint64_t k = 0; k < n; k++) gm_gguf_arr_str(g, i, k, &p[k], &l[k], err);
        st = gm_gguf_writer_set_arr_str(w, key, p, l, n, err);
        free(p);
        free(l);
    } else if (e == GM_GGUF_BOOL) {
        bool *b = malloc(n + 1);
        for (uint64_t k = 0; k < n; k++) b[k] = ((const uint8_t *)gm_gguf_arr_data(g, i))[k] != 0;
        st = gm_gguf_writer_set_arr(w, key, e, b, n, err);
        free(b);
    } else {
        st = gm_gguf_writer_set_arr(w, key, e, gm_gguf_arr_data(g, i), n, err);
    }
    return st;
}

static void rewrite_gguf(const char *in, const char *out, const rewrite *rw) {
    gm_gguf *g = NULL;
    gm_gguf_writer *w = NULL;
    gm_error err;
    CHECK_OK(gm_gguf_open_file(in, &g, &err), &err);
    CHECK_OK(gm_gguf_writer_new(&w, &err), &err);
    if (!g || !w) return;
    if (rw->alignment) CHECK_OK(gm_gguf_writer_set_u32(w, "general.alignment", rw->alignment, &err), &err);
    for (int64_t i = 0; i < gm_gguf_kv_count(g); i++) {
        const char *key = gm_gguf_kv_key(g, i);
        if (listed(rw->drop_keys, key) || (rw->alignment && !strcmp(key, "general.alignment"))) continue;
        if (rw->set_u32_key && !strcmp(key, rw->set_u32_key)) continue;
        if (rw->arch && !strcmp(key, "general.architecture"))
            CHECK_OK(gm_gguf_writer_set_str(w, key, rw->arch, &err), &err);
        else
            CHECK_OK(copy_kv(g, i, w, &err), &err);
    }
    if (rw->set_u32_key) CHECK_OK(gm_gguf_writer_set_u32(w, rw->set_u32_key, rw->set_u32_value, &err), &err);
    void *zeros = NULL;
    for (int64_t i = 0; i < gm_gguf_tensor_count(g); i++) {
        const gm_gguf_tensor *t = gm_gguf_tensor_at(g, i);
        if (rw->drop_tensor && !strcmp(t->name, rw->drop_tensor)) continue;
        if (rw->replace_tensor && !strcmp(t->name, rw->replace_tensor)) {
            int64_t n = 1;
            for (int d = 0; d < rw->new_dims; d++) n *= rw->new_ne[d];
            size_t bytes = 0;
            gm_ggml_nbytes(rw->new_type, n, &bytes);
            zeros = calloc(1, bytes + 1);
            CHECK_OK(gm_gguf_writer_add_tensor(w, t->name, rw->new_type, rw->new_dims, rw->new_ne, zeros, NULL, NULL,
                                               &err), &err);
            continue;
        }
        CHECK_OK(gm_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, NULL, NULL, &err), &err);
    }
    CHECK_OK(gm_gguf_writer_write_file(w, out, &err), &err);
    free(zeros);
    gm_gguf_writer_free(w);
    gm_gguf_free(g);
}

/* ---- 1-3: the golden sets ---- */

static const char *const extension_keys[] = {
    "gemma3n.vocab_size", "gemma3n.vocab_size_per_layer_input", "gemma3n.activation_sparsity_pattern",
    "gemma3n.altup.coef_clip", "gemma3n.altup.correct_scale", NULL};

static void golden_set(const char *set) {
    int32_t ids[256];
    size_t n = long_prompt(set, ids);
    char path[600];
    npy_array ref;
    snprintf(path, sizeof path, "%s/logits_prefill_long.npy", golden_dir(set));
    if (!n || npy_load(path, &ref)) {
        CHECK(0, "%s: golden files", set);
        return;
    }
    printf("%-12s %-6s %10s %10s %7s %s\n", set, "format", "max|diff|", "rms", "top-1", "(vs golden; GGUF == directory bit for bit)");
    const gm_weight_format formats[] = {GM_WEIGHTS_F32, GM_WEIGHTS_BF16, GM_WEIGHTS_AS_STORED, GM_WEIGHTS_F16,
                                        GM_WEIGHTS_Q8_0, GM_WEIGHTS_Q4_0};
    for (size_t fi = 0; fi < GM_ARRAY_LEN(formats); fi++) {
        gm_weight_format f = formats[fi];
        char name[64];
        snprintf(name, sizeof name, "%s_%s.gguf", set, gm_weight_format_name(f));
        gm_error err;
        CHECK_OK(gm_convert_to_gguf(golden_dir(set), tmp(name), f, NULL, NULL, &err), &err);
        gm_model *g = open_model(tmp(name), GM_WEIGHTS_AS_STORED), *h = open_model(golden_dir(set), f);
        if (!g || !h) return;
        float *lg = prefill(g, ids, n), *lh = prefill(h, ids, n);
        size_t V = (size_t)h->cfg.vocab_size;
        CHECK(lg && lh && memcmp(lg, lh, n * V * sizeof *lg) == 0, "%s %s: GGUF logits differ from the directory's",
              set, gm_weight_format_name(f));
        double mx = 0, sq = 0;
        int agree = 0;
        for (size_t r = 0; lg && r < n; r++) {
            for (size_t v = 0; v < V; v++) {
                double d = fabs((double)lg[r * V + v] - ((const float *)ref.data)[r * V + v]);
                mx = fmax(mx, d);
                sq += d * d;
            }
            agree += argmax(lg + r * V, V) == argmax((const float *)ref.data + r * V, V);
        }
        printf("%-12s %-6s %10.3g %10.3g %6.1f%%\n", "", gm_weight_format_name(f), mx, sqrt(sq / (double)(n * V)),
               100.0 * agree / (double)n);
        CHECK(isfinite(mx), "%s %s: non-finite logits", set, gm_weight_format_name(f));
        if (f != GM_WEIGHTS_Q8_0 && f != GM_WEIGHTS_Q4_0) {
            CHECK(mx <= 1e-3, "%s %s: prefill max |diff| %.3g", set, gm_weight_format_name(f), mx);
            double d = greedy_vs_golden(g, set, ids, n);
            CHECK(d <= 1e-3, "%s %s: decode steps max |diff| %.3g", set, gm_weight_format_name(f), d);
        }
        free(lg);
        free(lh);
        gm_model_free(g);
        gm_model_free(h);
    }
    /* only llama.cpp's keys: the std multipliers, no vocabulary extras, no coefficient clip */
    char f32[64], plain[64];
    snprintf(f32, sizeof f32, "%s_f32.gguf", set);
    snprintf(plain, sizeof plain, "%s_llamacpp_keys.gguf", set);
    rewrite rw = {.drop_keys = extension_keys};
    rewrite_gguf(tmp(f32), tmp(plain), &rw);
    gm_model *g = open_model(tmp(plain), GM_WEIGHTS_AS_STORED);
    if (g) {
        CHECK(g->cfg.std_multiplier_stored && g->cfg.vocab_size_per_layer_input == g->cfg.vocab_size, "%s: fallbacks", set);
        float *lg = prefill(g, ids, n);
        double d = lg ? max_abs_diff(lg, ref.data, ref.count) : INFINITY;
        CHECK(d <= 1e-3, "%s with llama.cpp keys only: max |diff| %.3g", set, d);
        printf("%-12s %-6s %10.3g   (llama.cpp keys only)\n", "", "f32", d);
        free(lg);
        gm_model_free(g);
    }
    /* alignment 1: tensors land on odd addresses and are copied */
    const char *q8 = strcmp(set, "text_tiny_a") == 0 ? "text_tiny_a_q8_0.gguf" : NULL;
    const char *srcs[] = {f32, q8};
    for (int k = 0; k < 2 && srcs[k]; k++) {
        char packed[80], orig[80];
        snprintf(orig, sizeof orig, "%s", srcs[k]);
        snprintf(packed, sizeof packed, "packed_%s", srcs[k]);
        rewrite al = {.alignment = 1};
        rewrite_gguf(tmp(orig), tmp(packed), &al);
        gm_model *a = open_model(tmp(orig), GM_WEIGHTS_AS_STORED), *b = open_model(tmp(packed), GM_WEIGHTS_AS_STORED);
        float *la = a ? prefill(a, ids, n) : NULL, *lb = b ? prefill(b, ids, n) : NULL;
        CHECK(la && lb && memcmp(la, lb, n * (size_t)a->cfg.vocab_size * sizeof *la) == 0,
              "%s: alignment 1 changes the logits", packed);
        free(la);
        free(lb);
        gm_model_free(a);
        gm_model_free(b);
    }
    npy_free(&ref);
}

/* MatFormer submodels select the same plans on a GGUF (also with only llama.cpp's keys). */
static void matformer(void) {
    gm_error err;
    char dir[512], path[600], plain[600];
    snprintf(dir, sizeof dir, "%s", golden_dir("matformer_tiny"));
    snprintf(path, sizeof path, "%s", tmp("matformer.gguf"));
    snprintf(plain, sizeof plain, "%s", tmp("matformer_llamacpp_keys.gguf"));
    CHECK_OK(gm_convert_to_gguf(dir, path, GM_WEIGHTS_F32, NULL, NULL, &err), &err);
    rewrite rw = {.drop_keys = extension_keys};
    rewrite_gguf(path, plain, &rw);
    gm_model *h = open_model(dir, GM_WEIGHTS_F32), *g = open_model(path, GM_WEIGHTS_AS_STORED),
             *p = open_model(plain, GM_WEIGHTS_AS_STORED);
    int32_t ids[256];
    size_t n = long_prompt("matformer_tiny/full", ids);
    const char *specs[] = {"full", "slice_A", "slice_B", "slice_C"};
    for (size_t i = 0; h && g && p && n && i < GM_ARRAY_LEN(specs); i++) {
        gm_submodel_spec spec;
        char json[600];
        snprintf(json, sizeof json, "%s/%s.json", dir, specs[i]);
        CHECK_OK(gm_submodel_resolve(i ? json : "full", &spec, &err), &err);
        int64_t eh = -1, eg = -2, ep = -3;
        CHECK_OK(gm_model_check_submodel(h, &spec, &eh, &err), &err);
        CHECK_OK(gm_model_check_submodel(g, &spec, &eg, &err), &err);
        CHECK_OK(gm_model_check_submodel(p, &spec, &ep, &err), &err);
        CHECK(eh == eg && eh == ep, "%s: effective params %lld / %lld / %lld", specs[i], (long long)eh, (long long)eg,
              (long long)ep);
        gm_model *models[] = {h, g, p};
        float *logits[3];
        for (int k = 0; k < 3; k++) {
            CHECK_OK(gm_model_select_submodel(models[k], &spec, &err), &err);
            logits[k] = prefill(models[k], ids, n);
        }
        size_t bytes = n * (size_t)h->cfg.vocab_size * sizeof(float);
        CHECK(logits[0] && logits[1] && logits[2] && !memcmp(logits[0], logits[1], bytes) &&
              !memcmp(logits[0], logits[2], bytes), "%s: GGUF logits differ from the directory's", specs[i]);
        for (int k = 0; k < 3; k++) free(logits[k]);
    }
    gm_model_free(h);
    gm_model_free(g);
    gm_model_free(p);
}

/* ---- 4: Gemma's vocabulary ---- */


static const char vocab_config[] =
    "{\"architectures\": [\"Gemma3nForConditionalGeneration\"], \"model_type\": \"gemma3n\",\n"
    " \"text_config\": {\"model_type\": \"gemma3n_text\", \"vocab_size\": 262400,\n"
    "  \"vocab_size_per_layer_input\": 262144, \"hidden_size\": 32, \"hidden_size_per_layer_input\": 8,\n"
    "  \"num_hidden_layers\": 3, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, \"head_dim\": 16,\n"
    "  \"num_kv_shared_layers\": 1, \"sliding_window\": 8, \"altup_num_inputs\": 4, \"altup_active_idx\": 0,\n"
    "  \"altup_coef_clip\": 120.0, \"altup_correct_scale\": true, \"laurel_rank\": 4,\n"
    "  \"intermediate_size\": [64, 64, 64], \"activation_sparsity_pattern\": [0.95, 0.0, 0.0],\n"
    "  \"layer_types\": [\"sliding_attention\", \"full_attention\", \"sliding_attention\"],\n"
    "  \"rms_norm_eps\": 1e-06, \"rope_theta\": 1000000.0, \"rope_local_base_freq\": 10000.0,\n"
    "  \"final_logit_softcapping\": 30.0, \"max_position_embeddings\": 32768, \"hidden_activation\": \"gelu_pytorch_tanh\",\n"
    "  \"bos_token_id\": 2, \"eos_token_id\": 1, \"pad_token_id\": 0}}\n";

static bool copy_file(const char *from, const char *to) {
    char *data = NULL;
    size_t n;
    gm_error err;
    if (gm_read_file(from, &data, &n, &err) != GM_OK) return false;
    FILE *f = fopen(to, "wb");
    bool ok = f && fwrite(data, 1, n, f) == n;
    if (f) ok = fclose(f) == 0 && ok;
    gm_free(data);
    return ok;
}

/*
 * Every reference sample: the GGUF tokenizer gives the reference ids (HF
 * encodes with special tokens parsed) and decodes back; without special
 * parsing it agrees with the tokenizer.json tokenizer.
 */
static void check_encodings(const gm_tokenizer *tok, const gm_tokenizer *json_tok) {
    char *text = NULL;
    size_t len;
    gm_error err;
    gm_json j;
    CHECK_OK(gm_read_file(test_path("tokenizer/reference_encodings.json"), &text, &len, &err), &err);
    if (!text) return;
    CHECK_OK(gm_json_parse(text, len, "reference_encodings.json", &j, &err), &err);
    int n_samples = 0, n_bad = 0;
    for (int e = gm_json_first(&j, 0); e >= 0; e = gm_json_next_elem(&j, 0, e), n_samples++) {
        size_t tl;
        char *s = gm_json_string_dup(&j, gm_json_get(&j, e, "text"), &tl);
        const char *keys[] = {"ids_plain", "ids_with_bos"};
        for (int k = 0; k < 2; k++) {
            int arr = gm_json_get(&j, e, keys[k]);
            size_t want_n = j.tok[arr].size, got_n = 0;
            int32_t *got = malloc((want_n + 16) * sizeof *got);
            unsigned flags = GM_TOKENIZE_PARSE_SPECIAL | (k ? GM_TOKENIZE_ADD_BOS : 0);
            gm_status st = gm_tokenize(tok, s, tl, flags, got, want_n + 16, &got_n, &err);
            bool same = st == GM_OK && got_n == want_n;
            size_t i = 0;
            for (int x = gm_json_first(&j, arr); same && x >= 0; x = gm_json_next_elem(&j, arr, x), i++) {
                int64_t v;
                same = gm_json_int64(&j, x, &v) && v == got[i];
            }
            if (!same && n_bad++ < 5) fprintf(stderr, "sample %d (%s): encoding differs\n", n_samples, keys[k]);
            if (k == 1 && same) { /* decode back */
                size_t dl = 0, wl = 0;
                char *want = gm_json_string_dup(&j, gm_json_get(&j, e, "decoded"), &wl);
                gm_detokenize(tok, got + 1, got_n - 1, 0, NULL, 0, &dl, &err);
                char *dec = malloc(dl + 1);
                gm_detokenize(tok, got + 1, got_n - 1, 0, dec, dl + 1, &dl, &err);
                if (!(dl == wl && memcmp(dec, want, wl) == 0) && n_bad++ < 5)
                    fprintf(stderr, "sample %d: decoding differs\n", n_samples);
                free(dec);
                gm_free(want);
            }
            free(got);
        }
        size_t na = 0, nb = 0;
        int32_t *a = malloc((tl + 8) * sizeof *a), *b = malloc((tl + 8) * sizeof *b);
        gm_status sa = gm_tokenize(tok, s, tl, 0, a, tl + 8, &na, &err);
        gm_status sb = gm_tokenize(json_tok, s, tl, 0, b, tl + 8, &nb, &err);
        if (!(sa == GM_OK && sb == GM_OK && na == nb && memcmp(a, b, na * sizeof *a) == 0) && n_bad++ < 5)
            fprintf(stderr, "sample %d: without special parsing, differs from tokenizer.json\n", n_samples);
        free(a);
        free(b);
        gm_free(s);
    }
    CHECK(n_samples > 100 && n_bad == 0, "%d of %d reference samples differ", n_bad, n_samples);
    printf("tokenizer from tokenizer.ggml.*: %d reference encodings, %d differ\n", n_samples, n_bad);
    gm_json_free(&j);
    gm_free(text);
}

static void check_vocab_keys(const char *path) {
    gm_gguf *g = NULL;
    gm_error err;
    CHECK_OK(gm_gguf_open_file(path, &g, &err), &err);
    if (!g) return;
    CHECK(gm_gguf_find_key(g, "tokenizer.ggml.merges") < 0, "the scores should give back the merges");
    int64_t kv, eos = -1, bos = -1;
    uint64_t n;
    CHECK_OK(gm_gguf_get_arr(g, "tokenizer.ggml.token_type", GM_GGUF_I32, &kv, &n, &err), &err);
    int64_t t_bos = 0, t_spaces = 0, t_byte = 0, t_pad = 0, t_normal = 0;
    gm_gguf_arr_int(g, kv, 2, &t_bos, &err);       /* <bos> */
    gm_gguf_arr_int(g, kv, 248, &t_byte, &err);    /* <0x0A> */
    gm_gguf_arr_int(g, kv, 262399, &t_pad, &err);  /* padding slot */
    gm_gguf_arr_int(g, kv, 506, &t_normal, &err);  /* ▁the */
    CHECK(n == 262400 && t_bos == GM_GGUF_TOKEN_CONTROL && t_byte == GM_GGUF_TOKEN_BYTE &&
          t_pad == GM_GGUF_TOKEN_UNUSED && t_normal == GM_GGUF_TOKEN_NORMAL, "token types");
    int64_t tokens;
    uint64_t nt;
    CHECK_OK(gm_gguf_get_arr(g, "tokenizer.ggml.tokens", GM_GGUF_STR, &tokens, &nt, &err), &err);
    for (uint64_t i = 0; i < nt; i++) { /* the user-defined "▁▁" is written with spaces, as llama.cpp's converter */
        const char *s;
        size_t l;
        gm_gguf_arr_str(g, tokens, i, &s, &l, &err);
        if (l == 2 && !memcmp(s, "  ", 2)) {
            gm_gguf_arr_int(g, kv, i, &t_spaces, &err);
            break;
        }
    }
    CHECK(t_spaces == GM_GGUF_TOKEN_USER_DEFINED, "\"  \" type %lld", (long long)t_spaces);
    gm_gguf_get_int(g, "tokenizer.ggml.eos_token_id", &eos, &err);
    gm_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &bos, &err);
    CHECK(eos == 106 && bos == 2, "eos %lld bos %lld (tokenizer_config.json: <end_of_turn>, <bos>)", (long long)eos,
          (long long)bos);
    const char *model;
    size_t ml;
    CHECK(gm_gguf_get_str(g, "tokenizer.ggml.model", &model, &ml, &err) == GM_OK && ml == 5 && !memcmp(model, "llama", 5),
          "tokenizer model");
    gm_gguf_free(g);
}

static void gemma_vocabulary(void) {
    const char *dir = tmp("vocab_model");
    gm_error err;
    gm_text_config cfg;
    CHECK_OK(gm_config_parse(vocab_config, strlen(vocab_config), "vocab_config", &cfg, &err), &err);
    gm_synth_list l;
    CHECK_OK(gm_synth_text_tensors(&cfg, &l, &err), &err);
    gm_synth_options opt = {.seed = 7, .n_threads = -1};
    CHECK_OK(gm_synth_write_list(l.tensors, l.n, vocab_config, strlen(vocab_config), dir, &opt, &err), &err);
    gm_synth_list_free(&l);
    char to[600];
    snprintf(to, sizeof to, "%s/tokenizer.json", dir);
    CHECK(copy_file(test_path("tokenizer/tokenizer.json"), to), "copy tokenizer.json");
    snprintf(to, sizeof to, "%s/tokenizer_config.json", dir);
    CHECK(copy_file(test_path("tokenizer/tokenizer_config.json"), to), "copy tokenizer_config.json");
    const char *path = tmp("vocab_model.gguf");
    CHECK_OK(gm_convert_to_gguf(dir, path, GM_WEIGHTS_AS_STORED, NULL, NULL, &err), &err);
    check_vocab_keys(path);
    gm_model *g = open_model(path, GM_WEIGHTS_AS_STORED), *h = open_model(dir, GM_WEIGHTS_AS_STORED);
    if (!g || !h) return;
    CHECK(gm_model_tokenizer(g) != NULL && gm_model_tokenizer(h) != NULL, "GGUF tokenizer");
    if (gm_model_tokenizer(g) && gm_model_tokenizer(h)) check_encodings(gm_model_tokenizer(g), gm_model_tokenizer(h));
    CHECK(g->cfg.vocab_size == 262400 && g->cfg.vocab_size_per_layer_input == 262144, "vocab sizes %d / %d",
          g->cfg.vocab_size, g->cfg.vocab_size_per_layer_input);
    /* ids past the per-layer table (padded with zero rows in the file) read row 0, as upstream */
    const int32_t ids[] = {2, 105, 2364, 262144, 262145, 262300, 262399, 506, 0, 236761};
    size_t n = GM_ARRAY_LEN(ids), V = 262400;
    float *lg = prefill(g, ids, n), *lh = prefill(h, ids, n);
    CHECK(lg && lh && memcmp(lg, lh, n * V * sizeof *lg) == 0, "padded vocabulary: GGUF logits differ");
    /* llama.cpp's files have no vocab-size keys: the zero rows are found */
    rewrite rw = {.drop_keys = extension_keys};
    rewrite_gguf(path, tmp("vocab_llamacpp_keys.gguf"), &rw);
    gm_model *p = open_model(tmp("vocab_llamacpp_keys.gguf"), GM_WEIGHTS_AS_STORED);
    if (p) {
        CHECK(p->cfg.vocab_size == 262400 && p->cfg.vocab_size_per_layer_input == 262144,
              "detected vocab sizes %d / %d", p->cfg.vocab_size, p->cfg.vocab_size_per_layer_input);
        float *lp = prefill(p, ids, n);
        CHECK(lp && lh && memcmp(lp, lh, n * V * sizeof *lp) == 0, "llama.cpp keys: logits differ");
        free(lp);
        gm_model_free(p);
    }
    size_t dl = 0;
    char desc[4096];
    CHECK_OK(gm_model_describe(g, desc, sizeof desc, &dl, &err), &err);
    CHECK(strstr(desc, "GGUF v3") && strstr(desc, "tokenizer.ggml (llama, 262400 tokens)"), "describe:\n%s", desc);
    free(lg);
    free(lh);
    gm_model_free(g);
    gm_model_free(h);
    remove_tree(dir);
}

/* ---- 5: errors ---- */

static void expect_open_error(const char *file, gm_status status, const char *needle) {
    gm_model *m = NULL;
    gm_error err;
    CHECK_FAILS(gm_model_open(tmp(file), NULL, &m, &err), status, needle, &err);
    CHECK(m == NULL, "no model on failure");
    gm_model_free(m);
}

static void errors(void) {
    char good[600];
    snprintf(good, sizeof good, "%s", tmp("text_tiny_a_f32.gguf"));
    rewrite arch = {.arch = "llama"};
    rewrite_gguf(good, tmp("arch.gguf"), &arch);
    expect_open_error("arch.gguf", GM_ERR_UNSUPPORTED, "unsupported architecture 'llama'");

    rewrite kq = {.replace_tensor = "blk.0.ffn_up.weight", .new_type = GM_GGML_Q4_K, .new_dims = 2, .new_ne = {256, 128}};
    rewrite_gguf(good, tmp("q4k.gguf"), &kq);
    expect_open_error("q4k.gguf", GM_ERR_UNSUPPORTED, "unsupported tensor type Q4_K (tensor blk.0.ffn_up.weight)");

    rewrite missing = {.drop_tensor = "blk.3.laurel_l.weight"};
    rewrite_gguf(good, tmp("missing.gguf"), &missing);
    expect_open_error("missing.gguf", GM_ERR_FORMAT, "missing tensor 'blk.3.laurel_l.weight'");

    rewrite shape = {.replace_tensor = "blk.0.ffn_up.weight", .new_type = GM_GGML_F32, .new_dims = 2, .new_ne = {64, 100}};
    rewrite_gguf(good, tmp("shape.gguf"), &shape);
    expect_open_error("shape.gguf", GM_ERR_FORMAT, "tensor 'blk.0.ffn_up.weight' has shape {64, 100}, expected {64, 128}");

    rewrite stack = {.replace_tensor = "altup_proj.weight", .new_type = GM_GGML_F32, .new_dims = 3, .new_ne = {64, 64, 2}};
    rewrite_gguf(good, tmp("stack.gguf"), &stack);
    expect_open_error("stack.gguf", GM_ERR_FORMAT, "tensor 'altup_proj.weight' has shape {64, 64, 2}, expected {64, 64, 3}");

    const char *const no_embd[] = {"gemma3n.embedding_length", NULL};
    rewrite key = {.drop_keys = no_embd};
    rewrite_gguf(good, tmp("key.gguf"), &key);
    expect_open_error("key.gguf", GM_ERR_FORMAT, "missing key 'gemma3n.embedding_length'");

    rewrite range = {.set_u32_key = "gemma3n.block_count", .set_u32_value = 1000};
    rewrite_gguf(good, tmp("range.gguf"), &range);
    expect_open_error("range.gguf", GM_ERR_UNSUPPORTED, "gemma3n.block_count = 1000 is outside the supported range");

    /* the laurel rank llama.cpp hard-codes (64) does not fit the tiny model */
    const char *const no_rank[] = {"gemma3n.laurel_rank", NULL};
    rewrite rank = {.drop_keys = no_rank};
    rewrite_gguf(good, tmp("rank.gguf"), &rank);
    expect_open_error("rank.gguf", GM_ERR_FORMAT, "tensor 'blk.0.laurel_l.weight' has shape {64, 8}, expected {64, 64}");

    /* truncated: the tensor data runs past the end */
    char *data = NULL;
    size_t size;
    gm_error err;
    CHECK_OK(gm_read_file(good, &data, &size, &err), &err);
    FILE *f = fopen(tmp("truncated.gguf"), "wb");
    if (f && data) fwrite(data, 1, size * 2 / 3, f);
    if (f) fclose(f);
    gm_free(data);
    expect_open_error("truncated.gguf", GM_ERR_FORMAT, "extends past the end of the file");

    f = fopen(tmp("not.gguf"), "wb");
    if (f) fputs("GGML this is not a GGUF file", f);
    if (f) fclose(f);
    expect_open_error("not.gguf", GM_ERR_IO, "not a model directory (expected config.json + *.safetensors) or a GGUF file");

    /* a model without tokenizer metadata says so */
    gm_model *m = open_model(good, GM_WEIGHTS_AS_STORED);
    int32_t ids[4];
    size_t n;
    if (m) CHECK_FAILS(gm_model_tokenize(m, "hi", 2, 0, ids, 4, &n, &err), GM_ERR_NO_TOKENIZER, "tokenizer.ggml", &err);
    gm_model_free(m);
}

static int cancel_at_half(void *user, double fraction, const char *what) {
    (void)what;
    ++*(int *)user;
    return fraction > 0.5;
}

static void converter_errors(void) {
    gm_error err;
    CHECK_FAILS(gm_convert_to_gguf(tmp("nope"), tmp("x.gguf"), GM_WEIGHTS_F32, NULL, NULL, &err), GM_ERR_IO,
                "not a model directory", &err);
    CHECK_FAILS(gm_convert_to_gguf(golden_dir("text_tiny_a"), tmp("x.gguf"), (gm_weight_format)42, NULL, NULL, &err),
                GM_ERR_ARGUMENT, "unknown weight format", &err);
    int calls = 0;
    CHECK_FAILS(gm_convert_to_gguf(golden_dir("text_tiny_a"), tmp("cancelled.gguf"), GM_WEIGHTS_Q8_0, cancel_at_half,
                                   &calls, &err), GM_ERR_CANCELLED, "cancelled", &err);
    CHECK(calls > 1 && access(tmp("cancelled.gguf"), F_OK) != 0, "cancelled: %d calls, file left behind?", calls);
    /* a vocabulary larger than the model's: the embedding rows could not cover it */
    const char *dir = tmp("big_vocab");
    mkdir(dir, 0755);
    char from[600], to[600];
    const char *files[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(from, sizeof from, "%s/%s", golden_dir("text_tiny_a"), files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        CHECK(copy_file(from, to), "copy %s", files[i]);
    }
    snprintf(to, sizeof to, "%s/tokenizer.json", dir);
    CHECK(copy_file(test_path("tokenizer/tokenizer.json"), to), "copy tokenizer");
    CHECK_FAILS(gm_convert_to_gguf(dir, tmp("big.gguf"), GM_WEIGHTS_F32, NULL, NULL, &err), GM_ERR_UNSUPPORTED,
                "262145 tokens, more than vocab_size 512", &err);
    CHECK(access(tmp("big.gguf"), F_OK) != 0, "no file after a failure");
    remove_tree(dir);
}

int main(void) {
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/gm_test_gguf_XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    golden_set("text_tiny_a");
    golden_set("text_tiny_b");
    matformer();
    errors();
    converter_errors();
    gemma_vocabulary();
    remove_tree(tmp_dir);
    return gm_test_summary();
}
