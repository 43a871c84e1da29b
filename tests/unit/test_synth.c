/*
 * test_synth.c - the random-weight checkpoint writer (core/src/synth.c).
 *
 * Writes the tensor list of text_tiny_a (names and shapes taken from its
 * model.safetensors) with a tiny shard budget and checks the layout (every
 * tensor once, BF16, shapes, index total_size / weight_map / formatting,
 * padded headers), that the model loads and gives finite logits, that the
 * bytes depend only on the seed (not on threads, sharding or tensor
 * order), the value distributions, and the error paths (disk space, bad
 * lists, wrong variant files).
 *
 *   test_synth         the unit tests (label unit)
 *   test_synth e2b     writes the real E2B checkpoint (10.9 GB) to a
 *                      temporary directory under /tmp (or $GM_SYNTH_E2B_DIR,
 *                      then kept), loads it and prints gm_model_describe
 *                      (label slow)
 */
#include "gemma3n.h"
#include "json.h"
#include "safetensors.h"
#include "synth.h"
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmp_root[256];

/* ---- helpers ---- */

/* A whole file, NUL-terminated (the core's gm_read_file); NULL if unreadable. Free with gm_free. */
static char *read_all(const char *path, size_t *n) {
    char *data;
    return gm_read_file(path, &data, n, NULL) == GM_OK ? data : NULL;
}

static const char *sub_dir(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", tmp_root, name);
    return b;
}

/* Removes a flat directory and its files. */
static void remove_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static int count_files(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

/* True when dir_a/name and dir_b/name exist and hold the same bytes. */
static bool same_file(const char *dir_a, const char *dir_b, const char *name) {
    char pa[1024], pb[1024];
    snprintf(pa, sizeof pa, "%s/%s", dir_a, name);
    snprintf(pb, sizeof pb, "%s/%s", dir_b, name);
    size_t na, nb;
    char *a = read_all(pa, &na), *b = read_all(pb, &nb);
    bool same = a && b && na == nb && memcmp(a, b, na) == 0;
    gm_free(a);
    gm_free(b);
    return same;
}

/* The tensor list (names, shapes) of a golden model; names point into *st. */
static gm_synth_tensor *tiny_list(gm_st_dir *st, size_t *n) {
    gm_error err;
    CHECK_OK(gm_st_open_file(test_path("golden/text_tiny_a/model.safetensors"), st, &err), &err);
    gm_synth_tensor *t = calloc(st->n_tensors, sizeof *t);
    for (size_t i = 0; i < st->n_tensors; i++) {
        t[i].name = st->tensors[i].name;
        t[i].ndim = st->tensors[i].ndim;
        memcpy(t[i].shape, st->tensors[i].shape, sizeof(int64_t) * (size_t)st->tensors[i].ndim);
    }
    *n = st->n_tensors;
    return t;
}

static int64_t numel_of(const gm_synth_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

typedef struct progress_log {
    int calls;
    double last;
    bool monotonic;
} progress_log;

static void on_progress(void *user, double f) {
    progress_log *p = user;
    if (f < p->last || f > 1.0) p->monotonic = false;
    p->last = f;
    p->calls++;
}

static gm_status write_tiny(const gm_synth_tensor *t, size_t n, const char *config, const char *dir,
                            uint64_t seed, size_t shard_bytes, int n_threads, progress_log *log,
                            gm_error *err) {
    gm_synth_options opt = {.seed = seed, .shard_bytes = shard_bytes, .n_threads = n_threads,
                            .progress = log ? on_progress : NULL, .user = log};
    return gm_synth_write_list(t, n, config, strlen(config), dir, &opt, err);
}

/* ---- layout ---- */

static void check_index(const char *dir, const gm_synth_tensor *t, size_t n, const gm_st_dir *st) {
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    size_t len;
    char *text = read_all(path, &len);
    CHECK(text != NULL, "no index in %s", dir);
    if (!text) return;
    /* transformers' formatting: indent 2, sorted keys, trailing newline */
    CHECK(strncmp(text, "{\n  \"metadata\": {\n    \"total_size\": ", 36) == 0, "index starts: %.60s", text);
    CHECK(len > 2 && strcmp(text + len - 4, "}\n}\n") == 0, "index ends with '%s'", text + len - 4);
    gm_json j;
    gm_error err;
    CHECK_OK(gm_json_parse(text, len, path, &j, &err), &err);
    int64_t total = -1, want = 0;
    for (size_t i = 0; i < n; i++) want += 2 * numel_of(&t[i]);
    gm_json_int64(&j, gm_json_get(&j, gm_json_get(&j, 0, "metadata"), "total_size"), &total);
    CHECK(total == want, "total_size %lld, want %lld", (long long)total, (long long)want);
    int map = gm_json_get(&j, 0, "weight_map");
    CHECK(map >= 0 && j.tok[map].size == n, "weight_map has %u entries, want %zu", map >= 0 ? j.tok[map].size : 0, n);
    char prev[256] = "", name[256], file[256];
    int sorted = 1, where_ok = 1;
    for (int k = gm_json_first(&j, map); k >= 0; k = gm_json_next_key(&j, map, k)) {
        gm_json_string_copy(&j, k, name, sizeof name);
        gm_json_string_copy(&j, k + 1, file, sizeof file);
        if (strcmp(prev, name) >= 0) sorted = 0;
        snprintf(prev, sizeof prev, "%s", name);
        const gm_st_tensor *x = gm_st_find(st, name);
        if (!x || strstr(st->files[x->file_index].path, file) == NULL) where_ok = 0;
    }
    CHECK(sorted, "weight_map keys are not sorted");
    CHECK(where_ok, "weight_map names a shard that does not hold the tensor");
    gm_json_free(&j);
    gm_free(text);
}

/* Every tensor once, BF16, right shape, values = gm_f32_to_bf16(gm_synth_values). */
static void check_tensors(const gm_st_dir *st, const gm_synth_tensor *t, size_t n, uint64_t seed) {
    CHECK(st->n_tensors == n, "%zu tensors, want %zu", st->n_tensors, n);
    int bad_shape = 0, bad_values = 0;
    for (size_t i = 0; i < n; i++) {
        const gm_st_tensor *x = gm_st_find(st, t[i].name);
        if (!x || x->dtype != GM_ST_BF16 || x->ndim != t[i].ndim ||
            memcmp(x->shape, t[i].shape, sizeof(int64_t) * (size_t)t[i].ndim) != 0) {
            bad_shape++;
            continue;
        }
        size_t ne = (size_t)numel_of(&t[i]);
        float *v = malloc(ne * sizeof *v);
        gm_synth_values(seed, t[i].name, t[i].ndim, t[i].shape, 0, ne, v);
        for (size_t e = 0; e < ne; e++) {
            uint16_t h;
            memcpy(&h, x->data + 2 * e, 2);
            if (h != gm_f32_to_bf16(v[e]) || !isfinite(v[e])) { bad_values++; break; }
        }
        free(v);
    }
    CHECK(bad_shape == 0, "%d tensors missing or with a wrong dtype/shape", bad_shape);
    CHECK(bad_values == 0, "%d tensors differ from gm_synth_values", bad_values);
}

static void check_headers(const char *dir, int n_shards) {
    for (int k = 1; k <= n_shards; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/model-%05d-of-%05d.safetensors", dir, k, n_shards);
        FILE *f = fopen(path, "rb");
        unsigned char b[8] = {0};
        CHECK(f && fread(b, 1, 8, f) == 8, "cannot read %s", path);
        uint64_t len = 0;
        for (int i = 0; i < 8; i++) len |= (uint64_t)b[i] << (8 * i);
        CHECK(len > 0 && len % 8 == 0, "%s: header length %llu not a multiple of 8", path, (unsigned long long)len);
        if (f) fclose(f);
    }
}

static void check_model_runs(const char *dir) {
    gm_model *m = NULL;
    gm_error err;
    CHECK_OK(gm_model_open(dir, NULL, &m, &err), &err);
    if (!m) return;
    gm_session_params sp = gm_session_default_params();
    sp.n_ctx = 64;
    gm_session *s = NULL;
    CHECK_OK(gm_session_new(m, &sp, &s, &err), &err);
    int32_t ids[12] = {2, 17, 99, 250, 3, 511, 42, 7, 300, 128, 64, 5};
    if (s) {
        CHECK_OK(gm_session_eval(s, ids, 12, &err), &err);
        const float *logits = gm_session_logits(s);
        gm_model_info info;
        gm_model_get_info(m, &info);
        int finite = logits != NULL, varied = 0;
        for (int32_t i = 0; logits && i < info.vocab_size; i++) {
            finite &= isfinite(logits[i]) != 0;
            varied |= logits[i] != logits[0];
        }
        CHECK(finite && varied, "logits finite %d, not constant %d", finite, varied);
        gm_session_free(s);
    }
    gm_model_free(m);
}

static void test_layout_and_load(const gm_synth_tensor *t, size_t n, const char *config) {
    const char *dir = sub_dir("a");
    progress_log log = {.monotonic = true};
    gm_error err;
    CHECK_OK(write_tiny(t, n, config, dir, 7, 200000, 0, &log, &err), &err);
    CHECK(log.calls >= 2 && log.monotonic && log.last == 1.0, "progress: %d calls, last %g, monotonic %d",
          log.calls, log.last, log.monotonic);
    int n_shards = count_files(dir, "model-");
    CHECK(n_shards >= 3, "a 200 kB budget should give several shards, got %d", n_shards);
    CHECK(same_file(dir, test_path("golden/text_tiny_a"), "config.json"), "config.json not copied");
    check_headers(dir, n_shards);
    gm_st_dir st;
    gm_status status = gm_st_open_dir(dir, &st, &err);
    CHECK(status == GM_OK, "%s", err.message);
    if (status == GM_OK) {
        CHECK(st.n_files == n_shards, "%d files in the index, %d on disk", st.n_files, n_shards);
        check_tensors(&st, t, n, 7);
        check_index(dir, t, n, &st);
        gm_st_close(&st);
    }
    check_model_runs(dir);
}

/* ---- determinism ---- */

/* Same seed: identical files, whatever the number of threads. */
static void test_same_seed(const gm_synth_tensor *t, size_t n, const char *config) {
    const char *a = sub_dir("a"), *b = sub_dir("b");
    gm_error err;
    CHECK_OK(write_tiny(t, n, config, b, 7, 200000, -1, NULL, &err), &err); /* no threads */
    int n_shards = count_files(a, "model-");
    CHECK(count_files(b, "model-") == n_shards, "shard count differs");
    const char *names[] = {"config.json", "model.safetensors.index.json"};
    for (size_t i = 0; i < 2; i++) CHECK(same_file(a, b, names[i]), "%s differs", names[i]);
    for (int k = 1; k <= n_shards; k++) {
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k, n_shards);
        CHECK(same_file(a, b, name), "%s differs between 0 and no worker threads", name);
    }
}

/* Counts tensors whose bytes are equal in two checkpoints. */
static size_t count_equal_tensors(const char *dir_a, const char *dir_b, const gm_synth_tensor *t, size_t n,
                                  size_t min_numel) {
    gm_st_dir sa, sb;
    gm_error err;
    size_t equal = 0;
    CHECK_OK(gm_st_open_dir(dir_a, &sa, &err), &err);
    CHECK_OK(gm_st_open_dir(dir_b, &sb, &err), &err);
    for (size_t i = 0; i < n; i++) {
        const gm_st_tensor *x = gm_st_find(&sa, t[i].name), *y = gm_st_find(&sb, t[i].name);
        if ((size_t)numel_of(&t[i]) < min_numel) continue;
        equal += x && y && x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes) == 0;
    }
    gm_st_close(&sa);
    gm_st_close(&sb);
    return equal;
}

/* Values depend on (seed, name) only: other sharding, thread count and tensor order give the same tensors. */
static void test_independence(const gm_synth_tensor *t, size_t n, const char *config) {
    gm_synth_tensor *rev = malloc(n * sizeof *rev);
    for (size_t i = 0; i < n; i++) rev[i] = t[n - 1 - i];
    const char *c = sub_dir("c"), *d = sub_dir("d");
    gm_error err;
    CHECK_OK(write_tiny(rev, n, config, c, 7, 0, 3, NULL, &err), &err);
    CHECK(count_files(c, "model-") == 1, "the default budget should give one shard");
    CHECK(count_equal_tensors(sub_dir("a"), c, t, n, 0) == n, "reordered/resharded tensors differ");
    CHECK_OK(write_tiny(t, n, config, d, 8, 200000, 2, NULL, &err), &err);
    size_t big = 0;
    for (size_t i = 0; i < n; i++) big += numel_of(&t[i]) >= 16;
    size_t same = count_equal_tensors(sub_dir("a"), d, t, n, 16);
    CHECK(big > 0 && same == 0, "%zu of %zu tensors unchanged by another seed", same, big);
    free(rev);
}

/* ---- values ---- */

typedef struct moments {
    double mean, std;
} moments;

static moments tensor_moments(const gm_st_dir *st, const char *pattern, int n_layers) {
    double s = 0, s2 = 0, cnt = 0;
    for (int l = 0; l < (n_layers ? n_layers : 1); l++) {
        char name[256];
        snprintf(name, sizeof name, pattern, l);
        const gm_st_tensor *x = gm_st_find(st, name);
        CHECK(x != NULL, "no tensor %s", name);
        for (int64_t e = 0; x && e < x->numel; e++) {
            uint16_t h;
            memcpy(&h, x->data + 2 * e, 2);
            double v = gm_bf16_to_f32(h);
            s += v;
            s2 += v * v;
            cnt++;
        }
    }
    moments m = {s / cnt, sqrt(s2 / cnt - (s / cnt) * (s / cnt))};
    return m;
}

#define L "model.language_model.layers.%d."

static void check_moments(const gm_st_dir *st, const char *pattern, int n_layers, double mean, double std,
                          double mean_tol, double std_rel_tol) {
    moments m = tensor_moments(st, pattern, n_layers);
    CHECK(fabs(m.mean - mean) <= mean_tol && fabs(m.std / std - 1) <= std_rel_tol,
          "%s: mean %.4f std %.4f, want %.4f / %.4f", pattern, m.mean, m.std, mean, std);
}

static void test_distributions(void) {
    gm_st_dir st;
    gm_error err;
    gm_status status = gm_st_open_dir(sub_dir("a"), &st, &err);
    CHECK(status == GM_OK, "%s", err.message);
    if (status != GM_OK) return;
    /* text_tiny_a: hidden 64, 8 layers, head_dim 32, FFN 128, per-layer input 16 */
    check_moments(&st, L "input_layernorm.weight", 8, 1.0, 0.2, 0.05, 0.15);
    check_moments(&st, L "self_attn.q_norm.weight", 8, 0.5, 0.1, 0.03, 0.2);
    check_moments(&st, L "self_attn.q_proj.weight", 8, 0.0, 1 / sqrt(64), 0.01, 0.05);
    check_moments(&st, L "mlp.down_proj.weight", 8, 0.0, 1 / sqrt(128), 0.01, 0.05);
    check_moments(&st, L "altup.modality_router.weight", 8, 0.0, sqrt(64), 1.0, 0.15);
    check_moments(&st, L "altup.prediction_coefs.weight", 8, 0.0, 0.1, 0.03, 0.2);
    check_moments(&st, L "altup.correct_output_scale", 8, 1.0, 0.3, 0.05, 0.15);
    check_moments(&st, "model.language_model.embed_tokens.weight", 0, 0.0, 0.3, 0.01, 0.05);
    gm_st_close(&st);
}

/* The generator itself: a real N(0,1) (moments, tails, no correlation between neighbours). */
static void test_normality(void) {
    const size_t n = (size_t)1 << 22;
    float *v = malloc(n * sizeof *v);
    int64_t shape[2] = {2048, 2048}; /* scale 1/sqrt(2048) */
    gm_synth_values(3, "x.weight", 2, shape, 0, n, v);
    double s = 0, s2 = 0, s4 = 0, lag = 0, half = 0, k = sqrt(2048.0);
    size_t t2 = 0, t3 = 0, t4 = 0;
    for (size_t i = 0; i < n; i++) {
        double z = v[i] * k;
        s += z;
        s2 += z * z;
        s4 += z * z * z * z;
        t2 += fabs(z) > 2;
        t3 += fabs(z) > 3;
        t4 += fabs(z) > 4;
        if (i + 1 < n) lag += z * v[i + 1] * k;
        /* the two Box-Muller outputs of one draw: elements d and d + BLOCK/2 */
        if (i % GM_SYNTH_BLOCK < GM_SYNTH_BLOCK / 2) half += z * v[i + GM_SYNTH_BLOCK / 2] * k;
    }
    double mean = s / n, var = s2 / n, kurt = s4 / n / (var * var);
    CHECK(fabs(mean) < 0.003 && fabs(var - 1) < 0.005, "mean %.5f var %.5f", mean, var);
    CHECK(fabs(kurt - 3) < 0.03, "kurtosis %.4f", kurt);
    CHECK(fabs((double)t2 / n - 0.0455003) < 0.0006, "P(|z|>2) = %.5f", (double)t2 / n);
    CHECK(fabs((double)t3 / n - 0.0026998) < 0.0002, "P(|z|>3) = %.5f", (double)t3 / n);
    CHECK(fabs((double)t4 / n - 6.334e-5) < 2.5e-5, "P(|z|>4) = %.6f", (double)t4 / n);
    CHECK(fabs(lag / n) < 0.003 && fabs(half / (n / 2)) < 0.004, "correlations %.5f %.5f", lag / n, half / (n / 2));
    /* any sub-range is the same slice of the whole tensor */
    float w[10000];
    gm_synth_values(3, "x.weight", 2, shape, 5000, 10000, w);
    CHECK(memcmp(w, v + 5000, sizeof w) == 0, "sub-range differs from the whole");
    free(v);
}

/*
 * The values are part of the format: a checkpoint written today must be
 * byte-identical to one written by another build, CPU (the AVX2/AVX-512
 * clones of the generator) or compiler. Changing the generator on purpose
 * means changing this constant (and regenerating saved checkpoints).
 */
static void test_golden_checksum(void) {
    const size_t n = (size_t)1 << 20;
    float *v = malloc(n * sizeof *v);
    int64_t shape[2] = {2048, 2048};
    gm_synth_values(0, "model.language_model.layers.0.self_attn.q_proj.weight", 2, shape, 0, n, v);
    uint64_t h = 0xCBF29CE484222325u; /* FNV-1a over the little-endian bf16 bytes */
    for (size_t i = 0; i < n; i++) {
        uint16_t b = gm_f32_to_bf16(v[i]);
        h = (h ^ (b & 0xFFu)) * 0x100000001B3u;
        h = (h ^ (b >> 8)) * 0x100000001B3u;
    }
    CHECK(h == 0xfc241f33d4dfe04eu, "generator output changed: checksum %016llx", (unsigned long long)h);
    free(v);
}

static void test_rules(void) {
    static const struct { const char *name; int ndim; int64_t shape[4]; float mean, scale; } cases[] = {
        {L "input_layernorm.weight", 1, {2048}, 1.0f, 0.2f},
        {L "altup.correct_output_scale", 1, {2048}, 1.0f, 0.3f},
        {L "altup.modality_router.weight", 2, {4, 2048}, 0.0f, 45.254834f},
        {L "altup.correction_coefs.weight", 2, {4, 4}, 0.0f, 0.1f},
        {L "self_attn.k_norm.weight", 1, {256}, 0.5f, 0.1f},
        {L "self_attn.q_proj.weight", 2, {2048, 2048}, 0.0f, 0.02209709f},
        {"model.language_model.embed_tokens_per_layer.weight", 2, {262144, 7680}, 0.0f, 0.3f},
        {"model.embed_vision.embedding.weight", 2, {128, 2048}, 0.0f, 1.0f},
        {"model.embed_vision.embedding_projection.weight", 2, {2048, 2048}, 0.0f, 0.02209709f},
        {"model.audio_tower.conformer.0.attention.attn.per_dim_scale", 1, {192}, 0.0f, 0.5f},
        {"model.vision_tower.timm_model.blocks.0.1.layer_scale.gamma", 1, {128}, 0.5f, 0.1f},
        {"model.vision_tower.timm_model.conv_stem.conv.bias", 1, {64}, 0.0f, 0.1f},
        {"model.vision_tower.timm_model.conv_stem.conv.weight", 4, {64, 3, 3, 3}, 0.0f, 0.19245009f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        float mean, scale;
        gm_synth_rule(cases[i].name, cases[i].ndim, cases[i].shape, &mean, &scale);
        CHECK(mean == cases[i].mean && fabsf(scale - cases[i].scale) < 1e-6f, "%s: %g + %g N, want %g + %g N",
              cases[i].name, mean, scale, cases[i].mean, cases[i].scale);
    }
}

/* ---- errors and the TSV path ---- */

static void write_tsv(const char *path, const gm_synth_tensor *t, size_t n, const char *extra) {
    FILE *f = fopen(path, "wb");
    fprintf(f, "name\tshape\tnumel\n");
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s\t[", t[i].name);
        for (int d = 0; d < t[i].ndim; d++) fprintf(f, d ? ", %lld" : "%lld", (long long)t[i].shape[d]);
        fprintf(f, "]\t%lld\n", (long long)numel_of(&t[i]));
        total += numel_of(&t[i]);
    }
    fprintf(f, "%s# TOTAL stored params\t%lld\n", extra ? extra : "", (long long)total);
    fclose(f);
}

static void test_tsv_path(const gm_synth_tensor *t, size_t n) {
    char tsv[512];
    snprintf(tsv, sizeof tsv, "%s/tiny.tsv", tmp_root);
    write_tsv(tsv, t, n, NULL);
    gm_synth_list list;
    gm_error err;
    CHECK_OK(gm_synth_read_tsv(tsv, &list, &err), &err);
    CHECK(list.n == n, "TSV gave %zu tensors, want %zu", list.n, n);
    gm_synth_list_free(&list);
    const char *e = sub_dir("e");
    CHECK_OK(gm_synth_write(NULL, tsv, test_path("golden/text_tiny_a/config.json"), e, 7, 0, NULL, NULL, &err), &err);
    CHECK(count_equal_tensors(sub_dir("a"), e, t, n, 0) == n, "TSV path gives other tensors");
    remove_dir(e);
    CHECK_FAILS(gm_synth_write("E2B", tsv, test_path("golden/text_tiny_a/config.json"), e, 7, 0, NULL, NULL, &err),
                GM_ERR_FORMAT, "but E2B has 1556", &err);
    CHECK_FAILS(gm_synth_write("E3B", tsv, test_path("golden/text_tiny_a/config.json"), e, 7, 0, NULL, NULL, &err),
                GM_ERR_ARGUMENT, "unknown variant", &err);
    CHECK(count_files(tmp_root, "e") == 0, "a failed write left %s", e);

    /* malformed lines: the message names the line */
    write_tsv(tsv, t, n, "bad.weight\t[2, x]\t4\n");
    CHECK_FAILS(gm_synth_read_tsv(tsv, &list, &err), GM_ERR_FORMAT, "bad shape", &err);
    write_tsv(tsv, t, n, "bad.weight\t[2, 3]\t5\n");
    CHECK_FAILS(gm_synth_read_tsv(tsv, &list, &err), GM_ERR_FORMAT, "does not match the shape", &err);
    CHECK(strstr(err.message, "tiny.tsv:") != NULL, "no line number in '%s'", err.message);
    write_tsv(tsv, t, n, "extra.weight\t[4]\t4\n"); /* not counted in the TOTAL line */
    CHECK_FAILS(gm_synth_read_tsv(tsv, &list, &err), GM_ERR_FORMAT, "TOTAL", &err);
    CHECK_FAILS(gm_synth_read_tsv(sub_dir("missing.tsv"), &list, &err), GM_ERR_IO, "missing.tsv", &err);
}

static void test_full_size_lists(void) {
    static const struct { const char *tsv; size_t n; int64_t bytes; } v[] = {
        {"full_size/E2B_weights.tsv", 1556, 10878876544LL},
        {"full_size/E4B_weights.tsv", 1676, 15699956384LL},
    };
    for (size_t i = 0; i < 2; i++) {
        gm_synth_list list;
        gm_error err;
        CHECK_OK(gm_synth_read_tsv(test_path(v[i].tsv), &list, &err), &err);
        int64_t bytes = 0;
        for (size_t k = 0; k < list.n; k++) bytes += 2 * numel_of(&list.tensors[k]);
        CHECK(list.n == v[i].n && bytes == v[i].bytes, "%s: %zu tensors, %lld bytes", v[i].tsv, list.n,
              (long long)bytes);
        gm_synth_list_free(&list);
    }
    /* wrong pairings fail before anything is written */
    char e2b_tsv[4096], e4b_cfg[4096];
    snprintf(e2b_tsv, sizeof e2b_tsv, "%s", test_path("full_size/E2B_weights.tsv"));
    snprintf(e4b_cfg, sizeof e4b_cfg, "%s", test_path("full_size/E4B_config.json"));
    gm_error err;
    const char *f = sub_dir("f");
    CHECK_FAILS(gm_synth_write("E4B", e2b_tsv, e4b_cfg, f, 0, 0, NULL, NULL, &err), GM_ERR_FORMAT, "E4B has 1676", &err);
    CHECK_FAILS(gm_synth_write("E2B", e2b_tsv, e4b_cfg, f, 0, 0, NULL, NULL, &err), GM_ERR_FORMAT,
                "num_hidden_layers is 35", &err);
    CHECK(count_files(tmp_root, "f") == 0, "a failed write left %s", f);
}

static void test_errors(const gm_synth_tensor *t, size_t n, const char *config) {
    gm_error err;
    /* 2^22 x 2^22 BF16 = 32 TiB: refused before any byte is written */
    gm_synth_tensor huge = {.name = "huge.weight", .ndim = 2, .shape = {1 << 22, 1 << 22}};
    const char *g = sub_dir("g");
    CHECK_FAILS(write_tiny(&huge, 1, config, g, 0, 0, 0, NULL, &err), GM_ERR_IO, "not enough free disk space", &err);
    CHECK(count_files(g, "model") == 0, "files written despite the space check");
    remove_dir(g);

    gm_synth_tensor dup[2] = {t[0], t[0]};
    CHECK_FAILS(write_tiny(dup, 2, config, g, 0, 0, 0, NULL, &err), GM_ERR_ARGUMENT, "listed twice", &err);
    gm_synth_tensor bad = t[0];
    bad.name = "has\"quote";
    CHECK_FAILS(write_tiny(&bad, 1, config, g, 0, 0, 0, NULL, &err), GM_ERR_ARGUMENT, "invalid name", &err);
    CHECK_FAILS(write_tiny(t, n, "{\"a\": ", g, 0, 0, 0, NULL, &err), GM_ERR_FORMAT, "config.json", &err);
    CHECK_FAILS(write_tiny(t, 0, config, g, 0, 0, 0, NULL, &err), GM_ERR_ARGUMENT, "empty", &err);
    CHECK_FAILS(write_tiny(t, n, config, "/nonexistent_gm_dir/sub", 0, 0, 0, NULL, &err), GM_ERR_IO,
                "cannot create the output directory", &err);
    remove_dir(g);
}

/* ---- the real E2B (label slow) ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void print_progress(void *user, double f) {
    int *tenth = user;
    if ((int)(f * 10) > *tenth) {
        *tenth = (int)(f * 10);
        fprintf(stderr, "  %d%%\n", *tenth * 10);
    }
}

/*
 * A run killed by a ctest timeout leaves 11 GB behind: remove the
 * directories of earlier runs whose process (owner.pid) is gone.
 */
static void remove_stale_runs(void) {
    DIR *d = opendir("/tmp");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "gm_synth_e2b_", 13) != 0) continue;
        char dir[512], pid_path[600];
        snprintf(dir, sizeof dir, "/tmp/%s", e->d_name);
        snprintf(pid_path, sizeof pid_path, "%s/owner.pid", dir);
        size_t n;
        char *text = read_all(pid_path, &n);
        long pid = text ? strtol(text, NULL, 10) : 0;
        gm_free(text);
        if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            fprintf(stderr, "removing %s, left by a killed run\n", dir);
            remove_dir(dir);
        }
    }
    closedir(d);
}

static int run_e2b(void) {
    const char *keep = getenv("GM_SYNTH_E2B_DIR");
    char dir[512];
    if (keep && *keep) snprintf(dir, sizeof dir, "%s", keep);
    else {
        remove_stale_runs();
        snprintf(dir, sizeof dir, "/tmp/gm_synth_e2b_XXXXXX");
        if (!mkdtemp(dir)) { perror("mkdtemp"); return 2; }
        char pid_path[600];
        snprintf(pid_path, sizeof pid_path, "%s/owner.pid", dir);
        FILE *f = fopen(pid_path, "w");
        if (f) {
            fprintf(f, "%ld\n", (long)getpid());
            fclose(f);
        }
    }
    char tsv[4096], cfg[4096];
    snprintf(tsv, sizeof tsv, "%s", test_path("full_size/E2B_weights.tsv"));
    snprintf(cfg, sizeof cfg, "%s", test_path("full_size/E2B_config.json"));
    gm_error err;
    int tenth = 0;
    double t0 = now_s();
    CHECK_OK(gm_synth_write("E2B", tsv, cfg, dir, 0, 0, print_progress, &tenth, &err), &err);
    double dt = now_s() - t0;
    printf("E2B written to %s in %.1f s (%.2f GB/s)\n", dir, dt, 10.878876544 / dt);
    gm_model *m = NULL;
    t0 = now_s();
    CHECK_OK(gm_model_open(dir, NULL, &m, &err), &err);
    printf("gm_model_open: %.2f s\n", now_s() - t0);
    if (m) {
        size_t len = 0;
        gm_model_describe(m, NULL, 0, &len, &err);
        char *text = malloc(len + 1);
        CHECK_OK(gm_model_describe(m, text, len + 1, &len, &err), &err);
        printf("%s\n", text);
        free(text);
        gm_model_info info;
        gm_model_get_info(m, &info);
        CHECK(info.num_layers == 30 && info.n_params_file == 5439438272LL, "layers %d, params %lld",
              info.num_layers, (long long)info.n_params_file);
        gm_model_free(m);
    }
    if (!(keep && *keep)) remove_dir(dir);
    return gm_test_summary();
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "e2b") == 0) return run_e2b();
    snprintf(tmp_root, sizeof tmp_root, "/tmp/gm_test_synth_XXXXXX");
    if (!mkdtemp(tmp_root)) { perror("mkdtemp"); return 2; }
    size_t cfg_len;
    char *config = read_all(test_path("golden/text_tiny_a/config.json"), &cfg_len);
    gm_st_dir st;
    size_t n = 0;
    gm_synth_tensor *t = tiny_list(&st, &n);
    CHECK(config != NULL && n > 0, "cannot read text_tiny_a");
    if (config && n > 0) {
        test_rules();
        test_golden_checksum();
        test_normality();
        test_layout_and_load(t, n, config);
        test_same_seed(t, n, config);
        test_independence(t, n, config);
        test_distributions();
        test_tsv_path(t, n);
        test_full_size_lists();
        test_errors(t, n, config);
    }
    const char *subs[] = {"a", "b", "c", "d", "e", "f", "g"};
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++) remove_dir(sub_dir(subs[i]));
    char tsv[512];
    snprintf(tsv, sizeof tsv, "%s/tiny.tsv", tmp_root);
    unlink(tsv);
    rmdir(tmp_root);
    gm_st_close(&st);
    free(t);
    gm_free(config);
    return gm_test_summary();
}
