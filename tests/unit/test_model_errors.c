/*
 * test_model_errors.c - every bad input to the loader and the session gets
 * a clear error status and message, never a crash.
 *
 * Corrupt models are made from text_tiny_a by editing its safetensors
 * header text or its config.json and writing the result to a temporary
 * directory (data offsets are relative to the end of the header, so a
 * header may change length).
 */
#include "gemma3n.h"
#include "gm_internal.h"
#include "test_util.h"

#include <sys/stat.h>
#include <unistd.h>

#define SRC "golden/text_tiny_a"

static char tmp_root[256];

/* A whole file, NUL-terminated (the core's gm_read_file); NULL if unreadable. Free with gm_free. */
static char *read_all(const char *path, size_t *n) {
    char *data;
    return gm_read_file(path, &data, n, NULL) == GM_OK ? data : NULL;
}

static void write_all(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    fwrite(data, 1, n, f);
    fclose(f);
}

/* Replaces the first occurrence of `find` in s (heap string) with `repl`. */
static char *replace(const char *s, const char *find, const char *repl) {
    const char *at = strstr(s, find);
    if (!at) { fprintf(stderr, "test bug: '%s' not found\n", find); exit(2); }
    size_t a = (size_t)(at - s), fl = strlen(find), rl = strlen(repl), n = strlen(s);
    char *out = malloc(n - fl + rl + 1);
    memcpy(out, s, a);
    memcpy(out + a, repl, rl);
    memcpy(out + a + rl, at + fl, n - a - fl + 1);
    return out;
}

/* A fresh model dir `name` with config.json and model.safetensors as given (NULL = original). */
static const char *make_dir(const char *name, const char *config, const char *header, const char *raw_st, size_t raw_n) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tmp_root, name);
    mkdir(dir, 0755);
    char path[1024];
    size_t n;
    char *orig_cfg = read_all(test_path(SRC "/config.json"), &n);
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_all(path, config ? config : orig_cfg, strlen(config ? config : orig_cfg));
    gm_free(orig_cfg);
    size_t st_n;
    char *st = read_all(test_path(SRC "/model.safetensors"), &st_n);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (raw_st) write_all(path, raw_st, raw_n);
    else if (header) {
        uint64_t old_len = 0;
        for (int i = 7; i >= 0; i--) old_len = old_len << 8 | (unsigned char)st[i];
        uint64_t len = strlen(header);
        unsigned char len_le[8];
        for (int i = 0; i < 8; i++) len_le[i] = (unsigned char)(len >> (8 * i));
        FILE *f = fopen(path, "wb");
        fwrite(len_le, 1, 8, f);
        fwrite(header, 1, len, f);
        fwrite(st + 8 + old_len, 1, st_n - 8 - old_len, f);
        fclose(f);
    } else write_all(path, st, st_n);
    gm_free(st);
    return dir;
}

static char *original_header(void) {
    size_t n;
    char *st = read_all(test_path(SRC "/model.safetensors"), &n);
    uint64_t len = 0;
    for (int i = 7; i >= 0; i--) len = len << 8 | (unsigned char)st[i];
    char *h = malloc(len + 1);
    memcpy(h, st + 8, len);
    h[len] = 0;
    gm_free(st);
    return h;
}

static void expect_open_fails(const char *dir, gm_status status, const char *needle) {
    gm_model *m = NULL;
    gm_error err;
    CHECK_FAILS(gm_model_open(dir, NULL, &m, &err), status, needle, &err);
    CHECK(m == NULL, "no model on failure");
}

static void test_paths(void) {
    expect_open_fails("/nonexistent/model", GM_ERR_IO, "not a model directory");
    expect_open_fails("", GM_ERR_ARGUMENT, "empty");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/empty", tmp_root);
    mkdir(dir, 0755);
    expect_open_fails(dir, GM_ERR_IO, "config.json");
}

static void test_config_errors(void) {
    size_t n;
    char *cfg = read_all(test_path(SRC "/config.json"), &n);
    char *bad;
    expect_open_fails(make_dir("badjson", "{\"text_config\": {", NULL, NULL, 0), GM_ERR_FORMAT, "invalid JSON");
    bad = replace(cfg, "\"gelu_pytorch_tanh\"", "\"relu\"");
    expect_open_fails(make_dir("act", bad, NULL, NULL, 0), GM_ERR_UNSUPPORTED, "hidden_activation");
    free(bad);
    bad = replace(cfg, "\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"linear\"}");
    expect_open_fails(make_dir("rope", bad, NULL, NULL, 0), GM_ERR_UNSUPPORTED, "rope_scaling");
    free(bad);
    bad = replace(cfg, "\"hidden_size\": 64", "\"hidden_size\": \"64\"");
    expect_open_fails(make_dir("type", bad, NULL, NULL, 0), GM_ERR_FORMAT, "hidden_size");
    free(bad);
    bad = replace(cfg, "\"sliding_attention\",", "\"chunked_attention\",");
    expect_open_fails(make_dir("ltype", bad, NULL, NULL, 0), GM_ERR_UNSUPPORTED, "layer_types[0]");
    free(bad);
    char *step1 = replace(cfg, "\"model_type\": \"gemma3n\"", "\"model_type\": \"llama\"");
    bad = replace(step1, "\"text_config\"", "\"x_config\"");
    expect_open_fails(make_dir("mtype", bad, NULL, NULL, 0), GM_ERR_UNSUPPORTED, "model_type 'llama'");
    free(step1);
    free(bad);
    gm_free(cfg);
}

static void test_safetensors_errors(void) {
    char *h = original_header(), *bad;
    const char *up = "model.language_model.layers.3.mlp.up_proj.weight";
    bad = replace(h, up, "model.language_model.layers.3.mlp.up_projX.weight");
    expect_open_fails(make_dir("missing", NULL, bad, NULL, 0), GM_ERR_FORMAT, "missing tensor 'model.language_model.layers.3.mlp.up_proj.weight'");
    free(bad);
    /* down_proj [64, 128] stored as [128, 64]: same bytes, wrong shape */
    bad = replace(h, "\"model.language_model.layers.0.mlp.down_proj.weight\":{\"dtype\":\"BF16\",\"shape\":[64,128]",
                  "\"model.language_model.layers.0.mlp.down_proj.weight\":{\"dtype\":\"BF16\",\"shape\":[128,64]");
    expect_open_fails(make_dir("shape", NULL, bad, NULL, 0), GM_ERR_FORMAT, "has shape [128, 64], expected [64, 128]");
    free(bad);
    bad = replace(h, "\"dtype\":\"BF16\"", "\"dtype\":\"Q9\"");
    expect_open_fails(make_dir("dtype", NULL, bad, NULL, 0), GM_ERR_FORMAT, "unknown dtype 'Q9'");
    free(bad);
    bad = replace(h, "\"dtype\":\"BF16\"", "\"dtype\":\"I16\"");
    expect_open_fails(make_dir("i16", NULL, bad, NULL, 0), GM_ERR_UNSUPPORTED, "has dtype I16");
    free(bad);
    bad = replace(h, "\"data_offsets\":[8192,16384]", "\"data_offsets\":[4096,12288]");
    expect_open_fails(make_dir("overlap", NULL, bad, NULL, 0), GM_ERR_FORMAT, "overlap");
    free(bad);
    bad = replace(h, "\"data_offsets\":[0,8192]", "\"data_offsets\":[99999999,100008191]");
    expect_open_fails(make_dir("range", NULL, bad, NULL, 0), GM_ERR_FORMAT, "out of range");
    free(bad);
    bad = replace(h, "\"data_offsets\":[0,8192]", "\"data_offsets\":[0,8190]");
    expect_open_fails(make_dir("size", NULL, bad, NULL, 0), GM_ERR_FORMAT, "bytes for 4096 elements");
    free(bad);
    bad = replace(h, "{", "[");
    expect_open_fails(make_dir("hjson", NULL, bad, NULL, 0), GM_ERR_FORMAT, "invalid JSON");
    free(bad);
    free(h);
    /* header length past EOF; a file shorter than 8 bytes; a truncated data section */
    const char past[] = "\xff\xff\x00\x00\x00\x00\x00\x00{}";
    expect_open_fails(make_dir("hlen", NULL, NULL, past, sizeof past - 1), GM_ERR_FORMAT, "past the end of the file");
    expect_open_fails(make_dir("tiny", NULL, NULL, "abc", 3), GM_ERR_FORMAT, "too small");
    size_t n;
    char *st = read_all(test_path(SRC "/model.safetensors"), &n);
    expect_open_fails(make_dir("trunc", NULL, NULL, st, n / 2), GM_ERR_FORMAT, "truncated");
    gm_free(st);
}

static void test_session_errors(void) {
    gm_model *m = NULL;
    gm_error err;
    CHECK_OK(gm_model_open(test_path(SRC), NULL, &m, &err), &err);
    if (!m) return;
    gm_session_params sp = gm_session_default_params();
    sp.n_ctx = 16;
    gm_session *s = NULL;
    CHECK_OK(gm_session_new(m, &sp, &s, &err), &err);
    int32_t ids[20] = {2, 10, 11, 12};
    CHECK_FAILS(gm_session_eval(s, ids, 0, &err), GM_ERR_ARGUMENT, "empty prompt", &err);
    ids[1] = 512;
    CHECK_FAILS(gm_session_eval(s, ids, 4, &err), GM_ERR_ARGUMENT, "token id 512 at position 1", &err);
    ids[1] = -3;
    CHECK_FAILS(gm_session_eval(s, ids, 4, &err), GM_ERR_ARGUMENT, "token id -3", &err);
    CHECK(gm_session_n_past(s) == 0, "failed eval leaves the session unchanged");
    ids[1] = 10;
    CHECK_FAILS(gm_session_eval(s, ids, 17, &err), GM_ERR_CONTEXT_OVERFLOW, "n_ctx 16", &err);
    int32_t tok;
    CHECK_FAILS(gm_session_sample(s, &tok, &err), GM_ERR_STATE, "evaluate a prompt", &err);
    gm_step step;
    CHECK_FAILS(gm_session_next(s, &step, &err), GM_ERR_STATE, "no generation", &err);
    CHECK_FAILS(gm_session_generate_begin(s, NULL, &err), GM_ERR_STATE, "evaluate a prompt", &err);
    CHECK_OK(gm_session_eval(s, ids, 16, &err), &err);
    CHECK_FAILS(gm_session_eval(s, ids, 1, &err), GM_ERR_CONTEXT_OVERFLOW, "context overflow", &err);
    CHECK_FAILS(gm_session_truncate(s, 17, &err), GM_ERR_ARGUMENT, "holds 16", &err);
    /* text on an id-only model */
    size_t n;
    CHECK_FAILS(gm_model_tokenize(m, "hi", 2, 0, ids, 20, &n, &err), GM_ERR_NO_TOKENIZER, "model has no tokenizer", &err);
    gm_session_params bad = sp;
    bad.n_ctx = 1 << 30;
    gm_session *s2 = NULL;
    CHECK_FAILS(gm_session_new(m, &bad, &s2, &err), GM_ERR_ARGUMENT, "n_ctx", &err);
    gm_session_free(s);
    gm_model_free(m);
}

int main(void) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/gm_test_errors_XXXXXX");
    if (!mkdtemp(tmp_root)) { perror("mkdtemp"); return 2; }
    test_paths();
    test_config_errors();
    test_safetensors_errors();
    test_session_errors();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmp_root);
    return gm_test_summary();
}
