/*
 * cmd_bench.c - `gemma3n bench`, like llama-bench: load time, prompt
 * processing of p tokens, generation of n tokens, r repetitions, medians;
 * with --json one object a script can read.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char bench_usage[] =
    "usage: gemma3n bench -m PATH [-p 512] [-n 128] [-r 3] [-c CTX] [-t THREADS] [--warmup W]\n"
    "                     [--weights FMT] [--kv-type f32|f16] [--json]\n"
    "\n"
    "Measures, like llama-bench: model load, prompt processing of -p tokens\n"
    "(one eval call), generation of -n tokens (greedy, one token per call),\n"
    "the time to the first generated token (prompt + sampling its first token),\n"
    "over -r repetitions in a fresh session each; prints the medians. Load is\n"
    "the model open (once per process). Token ids are synthetic (no tokenizer\n"
    "needed): bos, then 3 + (i * 7919) % (vocab - 3). Peak RSS is the process's\n"
    "high-water mark (VmHWM). bench/run.sh runs one process per repetition.\n"
    "\n"
    CLI_MODEL_HELP
    "  -p N          prompt tokens (default 512)\n"
    "  -n N          generated tokens (default 128)\n"
    "  -r N          repetitions (default 3)\n"
    "  -c N          context size of each session (default p + n + 1; e.g. 4096\n"
    "                to measure the peak RSS of a 4096-token session)\n"
    "  -t N          threads (default: all cores)\n"
    "  --kv-type T   K/V cache element type of each session: f32 (default) or f16\n"
    "  --warmup W    first, right after load, one session with a W-token prompt\n"
    "                and its first token, not counted in the medians; its time\n"
    "                is first_token_s (cold: the first compute after load)\n"
    "  --json        one object: {\"pp_tok_s\", \"tg_tok_s\", \"load_s\", \"ttft_s\", \"peak_rss_mb\", ...}\n"
    "                (the same keys as bench/llama_cross/llama_cross.c --bench --json)\n";

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double mb = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) mb = atof(line + 6) / 1024.0;
    if (f) fclose(f);
    return mb;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct bench_run { double pp_s, tg_s, ttft_s; } bench_run;

/*
 * One repetition in a fresh session: the prompt in one eval call, then n
 * greedy tokens, each sampled from the current logits and evaluated (n
 * single-token evals, as llama_cross --bench does n llama_decode calls).
 * The first token exists once it is sampled from the prompt's logits: ttft.
 */
static gm_status run_once(gm_model *m, int32_t p, int32_t n, int32_t n_ctx, int32_t kv_type, bench_run *out,
                          gm_error *err) {
    gm_model_info info;
    gm_model_get_info(m, &info);
    const int32_t vocab = info.vocab_size;
    gm_session_params sp = gm_session_default_params();
    sp.n_ctx = n_ctx;
    sp.kv_type = kv_type;
    sp.sampler.temperature = 0;
    gm_session *s;
    gm_status st = gm_session_new(m, &sp, &s, err);
    if (st != GM_OK) return st;
    int32_t *ids = malloc((size_t)p * sizeof *ids);
    if (!ids) {
        gm_session_free(s);
        return cli_out_of_memory(err);
    }
    for (int32_t i = 0; i < p; i++) ids[i] = i == 0 && info.bos_id >= 0 ? info.bos_id : (int32_t)(3 + (int64_t)i * 7919 % (vocab - 3));
    double t0 = now_s();
    st = gm_session_eval(s, ids, (size_t)p, err);
    const double t1 = now_s();
    int32_t tok = 0;
    if (st == GM_OK) st = gm_session_sample(s, &tok, err);
    const double t2 = now_s();
    for (int32_t k = 0; st == GM_OK && k < n; k++) {
        st = gm_session_eval(s, &tok, 1, err);
        if (st == GM_OK) st = gm_session_sample(s, &tok, err);
    }
    double t3 = now_s();
    out->pp_s = t1 - t0;
    out->ttft_s = t2 - t0;
    out->tg_s = t3 - t1;
    free(ids);
    gm_session_free(s);
    return st;
}

int cmd_bench(int argc, char **argv) {
    const char *cmd = argv[0], *model = NULL, *weights = NULL, *kv_name = NULL;
    int32_t p = 512, n = 128, reps = 3, threads = 0, n_ctx = 0, warmup = 0, kv_type = GM_KV_F32;
    int json = 0;
    const cli_opt opts[] = {
        {"--model", "-m", CLI_STR, &model, 0, 0},
        {"--weights", "-w", CLI_STR, &weights, 0, 0},
        {"--prompt-tokens", "-p", CLI_INT, &p, 1, 1 << 20},
        {"--gen-tokens", "-n", CLI_INT, &n, 1, 1 << 20},
        {"--repetitions", "-r", CLI_INT, &reps, 1, 100},
        {"--threads", "-t", CLI_INT, &threads, 0, 1024},
        {"--ctx-size", "-c", CLI_INT, &n_ctx, 0, 1 << 20},
        {"--warmup", NULL, CLI_INT, &warmup, 0, 1 << 20},
        {"--kv-type", NULL, CLI_STR, &kv_name, 0, 0},
        {"--json", NULL, CLI_FLAG, &json, 0, 0},
        {NULL, NULL, CLI_FLAG, NULL, 0, 0},
    };
    int n_pos;
    int rc = cli_parse(argc, argv, opts, bench_usage, NULL, 0, &n_pos);
    if (rc != CLI_CONTINUE) return rc;
    if ((rc = cli_parse_kv_type(cmd, kv_name, &kv_type)) != CLI_CONTINUE) return rc;
    if (n_ctx == 0) n_ctx = p + n + 1;
    if ((int64_t)p + n > n_ctx) return cli_usage_error(cmd, "-c %d is smaller than -p %d + -n %d", n_ctx, p, n);
    if (warmup > n_ctx) return cli_usage_error(cmd, "-c %d is smaller than --warmup %d", n_ctx, warmup);
    gm_model *m = NULL;
    double t0 = now_s();
    if ((rc = cli_open_model(cmd, model, threads, weights, NULL, &m)) != CLI_CONTINUE) return rc;
    double load_s = now_s() - t0;
    double pp[100], tg[100], ttft[100];
    gm_error err;
    bench_run warm = {0, 0, 0};
    if (warmup > 0 && run_once(m, warmup, 0, n_ctx, kv_type, &warm, &err) != GM_OK) {
        gm_model_free(m);
        return cli_fail_err(cmd, &err);
    }
    for (int r = 0; r < reps; r++) {
        bench_run br = {0, 0, 0};
        if (run_once(m, p, n, n_ctx, kv_type, &br, &err) != GM_OK) {
            gm_model_free(m);
            return cli_fail_err(cmd, &err);
        }
        pp[r] = p / br.pp_s, tg[r] = n / br.tg_s, ttft[r] = br.ttft_s;
        if (!json)
            fprintf(stderr, "gemma3n bench: run %d: pp%d %.2f tok/s, tg%d %.2f tok/s, ttft %.3f s\n", r + 1, p,
                    pp[r], n, tg[r], ttft[r]);
    }
    double pp_m = median(pp, reps), tg_m = median(tg, reps), ttft_m = median(ttft, reps), rss = peak_rss_mb();
    if (json)
        printf("{\"pp_tok_s\": %.3f, \"tg_tok_s\": %.3f, \"load_s\": %.3f, \"ttft_s\": %.3f, \"peak_rss_mb\": %.1f, "
               "\"p\": %d, \"n\": %d, \"r\": %d, \"n_ctx\": %d, \"warmup\": %d, \"first_token_s\": %.3f, "
               "\"kv_type\": \"%s\", \"engine\": \"gemma3n\"}\n",
               pp_m, tg_m, load_s, ttft_m, rss, p, n, reps, n_ctx, warmup, warm.ttft_s, gm_kv_type_name(kv_type));
    else if (warmup > 0)
        printf("model %s: load %.2f s, first token (%d-token prompt) %.3f s after it; then pp%d %.2f tok/s, tg%d %.2f "
               "tok/s, ttft %.3f s, peak RSS %.0f MB (median of %d)\n",
               model, load_s, warmup, warm.ttft_s, p, pp_m, n, tg_m, ttft_m, rss, reps);
    else
        printf("model %s: load %.2f s, pp%d %.2f tok/s, tg%d %.2f tok/s, ttft %.3f s, peak RSS %.0f MB (median of %d)\n",
               model, load_s, p, pp_m, n, tg_m, ttft_m, rss, reps);
    gm_model_free(m);
    return CLI_EXIT_OK;
}
