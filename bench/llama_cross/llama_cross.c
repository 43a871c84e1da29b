/*
 * llama_cross.c - llama.cpp's side of the cross-check: loads a GGUF with
 * the prebuilt CPU libraries of node-llama-cpp (dlopen, no link-time
 * dependency), feeds the prompt one token at a time and prints greedy
 * tokens; --dump writes the logits of every prompt position and of every
 * step (n_ids + N rows of n_vocab f32), in the format gemma_cross writes.
 *
 *   llama_cross LIB_DIR MODEL.gguf --ids 2,105,... --n N [--dump FILE] [--threads T]
 *               [--dump-layers FILE]   (AltUp streams after each layer, first token)
 *               [--no-repack]          (no CPU weight repacking: use_extra_bufts = false)
 *   llama_cross LIB_DIR MODEL.gguf --bench (--p P | --ids ...) --n N [--ctx C] [--threads T]
 *               [--warmup W] [--json]
 *
 * --bench measures what `gemma3n bench -r 1` measures, the same way, with
 * llama.cpp's defaults (F16 KV cache, weight repacking, n_batch 2048 /
 * n_ubatch 512, flash attention auto): load (model load + context
 * creation), the prompt (--p P synthetic ids as gemma3n bench picks them:
 * bos, then 3 + (i * 7919) % (vocab - 3); or --ids) in llama_decode calls of
 * n_batch tokens, then N greedy tokens one llama_decode each; ttft = prompt
 * + sampling the first token; peak RSS = getrusage ru_maxrss. Context C
 * (default P + N + 1). --warmup W: first, right after load, a W-token
 * prompt and its first token (time: first_token_s, cold), then the cache
 * is cleared. --json prints gemma3n bench's keys.
 *
 * Built by run.sh with llama.h from the bundled llama.cpp sources
 * (-std=gnu11 for __typeof__) and by bench/run.sh. In the cross-check
 * modes the KV cache is F32 so that only the weights' arithmetic differs
 * from our engine.
 */
#define _GNU_SOURCE
#include "llama.h"

#include <dlfcn.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

/* Function pointers named like the API, resolved from the loaded libraries. */
#define API(name) static __typeof__(&name) p_##name
API(llama_backend_init);
API(llama_backend_free);
API(llama_log_set);
API(llama_model_default_params);
API(llama_context_default_params);
API(llama_model_load_from_file);
API(llama_model_free);
API(llama_init_from_model);
API(llama_free);
API(llama_model_get_vocab);
API(llama_vocab_n_tokens);
API(llama_vocab_bos);
API(llama_get_memory);
API(llama_memory_clear);
API(llama_synchronize);
API(llama_batch_get_one);
API(llama_decode);
API(llama_get_logits_ith);
API(ggml_backend_load_all_from_path);

static void *load(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!h) fprintf(stderr, "llama_cross: %s\n", dlerror());
    return h;
}

static int resolve(void *llama, void *ggml) {
    int ok = 1;
#define SYM(h, name) ok &= (*(void **)&p_##name = dlsym(h, #name)) != NULL; \
    if (!p_##name) fprintf(stderr, "llama_cross: missing symbol %s\n", #name)
    SYM(llama, llama_backend_init);
    SYM(llama, llama_backend_free);
    SYM(llama, llama_log_set);
    SYM(llama, llama_model_default_params);
    SYM(llama, llama_context_default_params);
    SYM(llama, llama_model_load_from_file);
    SYM(llama, llama_model_free);
    SYM(llama, llama_init_from_model);
    SYM(llama, llama_free);
    SYM(llama, llama_model_get_vocab);
    SYM(llama, llama_vocab_n_tokens);
    SYM(llama, llama_vocab_bos);
    SYM(llama, llama_get_memory);
    SYM(llama, llama_memory_clear);
    SYM(llama, llama_synchronize);
    SYM(llama, llama_batch_get_one);
    SYM(llama, llama_decode);
    SYM(llama, llama_get_logits_ith);
    SYM(ggml, ggml_backend_load_all_from_path);
#undef SYM
    return ok;
}

static int quiet;

/* --dump-layers: the AltUp streams after every layer ("l_out-N", [H, n_tokens, K]) of the last decode. */
typedef struct layer_dump {
    FILE *f;
    int n_layers;
} layer_dump;

static bool on_eval(struct ggml_tensor *t, bool ask, void *user) {
    layer_dump *d = user;
    if (strncmp(t->name, "l_out-", 6) != 0 || strchr(t->name, ' ')) return ask ? false : true; /* not "(view)"s */
    if (ask) return true;
    if (d->f && t->type == GGML_TYPE_F32 && t->ne[1] == 1) { /* one token: K rows of H */
        fwrite(t->data, sizeof(float), (size_t)(t->ne[0] * t->ne[2]), d->f);
        d->n_layers++;
    }
    return true;
}

static void on_log(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (!quiet || level >= GGML_LOG_LEVEL_WARN) fputs(text, stderr);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static llama_token argmax(const float *logits, int V) {
    llama_token tok = 0;
    for (int v = 1; v < V; v++) if (logits[v] > logits[tok]) tok = v;
    return tok;
}

/*
 * --bench: one repetition of `gemma3n bench` (see the top comment). ids ==
 * NULL: p synthetic ids. Prints gemma3n bench's line or JSON object.
 */
static int run_bench(const char *model_path, const llama_token *ids_arg, int p, int n, int n_ctx, int threads,
                     int warmup, int repack, int json) {
    const double t_start = now_s();
    struct llama_model_params mp = p_llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.use_extra_bufts = repack != 0;
    struct llama_model *model = p_llama_model_load_from_file(model_path, mp);
    if (!model) {
        fprintf(stderr, "llama_cross: llama.cpp could not load %s\n", model_path);
        return 1;
    }
    struct llama_context_params cp = p_llama_context_default_params(); /* n_batch 2048, n_ubatch 512, F16 KV */
    cp.n_ctx = (uint32_t)(n_ctx > 0 ? n_ctx : p + n + 1);
    cp.n_threads = cp.n_threads_batch = threads;
    struct llama_context *ctx = p_llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "llama_cross: cannot create a context\n");
        return 1;
    }
    const double t_loaded = now_s();
    const struct llama_vocab *vocab = p_llama_model_get_vocab(model);
    const int V = p_llama_vocab_n_tokens(vocab);
    const llama_token bos = p_llama_vocab_bos(vocab);
    const int n_ids = p > warmup ? p : warmup;
    llama_token *ids = malloc((size_t)n_ids * sizeof *ids);
    if (!ids) return 1;
    for (int i = 0; i < n_ids; i++)
        ids[i] = ids_arg && i < p ? ids_arg[i] : i == 0 && bos >= 0 ? bos : (llama_token)(3 + (long long)i * 7919 % (V - 3));
    const int n_batch = (int)(cp.n_batch < cp.n_ctx ? cp.n_batch : cp.n_ctx); /* what llama.cpp accepts per call */
    int rc = 0;
    double first_token_s = 0;
    if (warmup > 0) { /* cold: the first compute after load */
        const double w0 = now_s();
        for (int i = 0; i < warmup && rc == 0; i += n_batch)
            rc = p_llama_decode(ctx, p_llama_batch_get_one(ids + i, warmup - i < n_batch ? warmup - i : n_batch)) != 0;
        if (rc == 0) (void)argmax(p_llama_get_logits_ith(ctx, -1), V);
        first_token_s = now_s() - w0;
        p_llama_memory_clear(p_llama_get_memory(ctx), true);
    }
    const double t0 = now_s();
    for (int i = 0; i < p && rc == 0; i += n_batch)
        rc = p_llama_decode(ctx, p_llama_batch_get_one(ids + i, p - i < n_batch ? p - i : n_batch)) != 0;
    p_llama_synchronize(ctx);
    const double t1 = now_s();
    llama_token tok = rc == 0 ? argmax(p_llama_get_logits_ith(ctx, -1), V) : 0;
    const double t2 = now_s();
    for (int k = 0; k < n && rc == 0; k++) {
        rc = p_llama_decode(ctx, p_llama_batch_get_one(&tok, 1)) != 0;
        if (rc == 0) tok = argmax(p_llama_get_logits_ith(ctx, -1), V);
    }
    const double t3 = now_s();
    free(ids);
    if (rc) {
        fprintf(stderr, "llama_cross: decode failed\n");
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const double rss_mb = ru.ru_maxrss / 1024.0, load_s = t_loaded - t_start;
    if (json)
        printf("{\"pp_tok_s\": %.3f, \"tg_tok_s\": %.3f, \"load_s\": %.3f, \"ttft_s\": %.3f, \"peak_rss_mb\": %.1f, "
               "\"p\": %d, \"n\": %d, \"r\": 1, \"n_ctx\": %u, \"warmup\": %d, \"first_token_s\": %.3f, "
               "\"engine\": \"llama.cpp\"}\n",
               p / (t1 - t0), n / (t3 - t1), load_s, t2 - t0, rss_mb, p, n, cp.n_ctx, warmup, first_token_s);
    else
        printf("llama.cpp: load %.2f s, pp%d %.2f tok/s, tg%d %.2f tok/s, ttft %.3f s, peak RSS %.0f MB\n", load_s, p,
               p / (t1 - t0), n, n / (t3 - t1), t2 - t0, rss_mb);
    p_llama_free(ctx);
    p_llama_model_free(model);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: llama_cross LIB_DIR MODEL.gguf --ids 2,105,... --n N [--dump FILE] [--threads T] [--quiet]\n"
                        "       llama_cross LIB_DIR MODEL.gguf --bench --p P --n N [--ctx C] [--warmup W] [--json]\n"
                        "(see the comment at the top of llama_cross.c)\n");
        return 2;
    }
    const char *dir = argv[1], *model_path = argv[2], *dump = NULL, *ids_arg = NULL, *dump_layers = NULL;
    int n_steps = 16, threads = 2, repack = 1, bench = 0, bench_p = 0, n_ctx = 0, json = 0, warmup = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--quiet")) quiet = 1;
        else if (!strcmp(argv[i], "--no-repack")) repack = 0;
        else if (!strcmp(argv[i], "--bench")) bench = 1; /* llama.cpp's defaults, gemma3n bench's measurements */
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "--p")) bench_p = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--ctx")) n_ctx = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--warmup")) warmup = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--ids")) ids_arg = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--n")) n_steps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--dump")) dump = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--dump-layers")) dump_layers = argv[++i];
    }
    llama_token ids[512];
    int n_ids = 0;
    for (const char *s = ids_arg; s && *s && n_ids < 512;) {
        char *end;
        ids[n_ids++] = (llama_token)strtol(s, &end, 10);
        if (end == s) break;
        s = *end == ',' ? end + 1 : end;
    }
    if (n_ids == 0 && !(bench && bench_p > 0)) {
        fprintf(stderr, "llama_cross: --ids (or --bench --p N) is required\n");
        return 2;
    }
    void *ggml = load(dir, "libggml.v0.5.0.so"), *llama = load(dir, "libllama.v0.5.0.so");
    if (!ggml || !llama || !resolve(llama, ggml)) return 1;
    p_llama_log_set(on_log, NULL);
    p_ggml_backend_load_all_from_path(dir);
    p_llama_backend_init();
    if (bench) {
        int rc = run_bench(model_path, bench_p > 0 ? NULL : ids, bench_p > 0 ? bench_p : n_ids, n_steps, n_ctx,
                           threads, warmup, repack, json);
        p_llama_backend_free();
        return rc;
    }

    struct llama_model_params mp = p_llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.use_extra_bufts = repack != 0; /* CPU weight repacking (see README: wrong for 3-D Q8_0 weights) */
    struct llama_model *model = p_llama_model_load_from_file(model_path, mp);
    if (!model) {
        fprintf(stderr, "llama_cross: llama.cpp could not load %s\n", model_path);
        return 1;
    }
    struct llama_context_params cp = p_llama_context_default_params();
    cp.n_ctx = n_ctx > 0 ? (uint32_t)n_ctx : 512;
    cp.n_batch = 512;
    cp.n_ubatch = 512;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.type_k = GGML_TYPE_F32; /* exact comparisons: F32 KV */
    cp.type_v = GGML_TYPE_F32;
    layer_dump ld = {0};
    if (dump_layers) { /* every layer of the first token */
        ld.f = fopen(dump_layers, "wb");
        cp.cb_eval = on_eval;
        cp.cb_eval_user_data = &ld;
    }
    struct llama_context *ctx = p_llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "llama_cross: cannot create a context\n");
        return 1;
    }
    int V = p_llama_vocab_n_tokens(p_llama_model_get_vocab(model));
    FILE *f = dump ? fopen(dump, "wb") : NULL;
    int rc = 0;
    /* the prompt one token at a time, so every position's logits can be compared */
    for (int i = 0; i < n_ids; i++) {
        if (p_llama_decode(ctx, p_llama_batch_get_one(&ids[i], 1)) != 0) {
            fprintf(stderr, "llama_cross: decode failed\n");
            return 1;
        }
        if (f && i + 1 < n_ids) fwrite(p_llama_get_logits_ith(ctx, -1), sizeof(float), (size_t)V, f);
        if (ld.f) {
            fclose(ld.f);
            ld.f = NULL;
        }
    }
    printf("llama.cpp greedy:");
    for (int i = 0; i <= n_steps; i++) {
        const float *logits = p_llama_get_logits_ith(ctx, -1);
        if (f) fwrite(logits, sizeof(float), (size_t)V, f);
        if (i == n_steps) break;
        llama_token tok = argmax(logits, V);
        printf(" %d", tok);
        if (p_llama_decode(ctx, p_llama_batch_get_one(&tok, 1)) != 0) {
            fprintf(stderr, "llama_cross: decode failed\n");
            rc = 1;
            break;
        }
    }
    printf("\n");
    if (f) fclose(f);
    p_llama_free(ctx);
    p_llama_model_free(model);
    p_llama_backend_free();
    return rc;
}
