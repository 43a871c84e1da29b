/*
 * bench_matformer.c - MatFormer at full size: one E4B-shaped checkpoint
 * loaded ONCE, then several submodels selected at run time, each timed
 * (prefill and decode tokens/s) with the process's resident memory after
 * it ran. Submodels run smallest first, so the RSS column shows what each
 * size touches: skipped layers' weights are mapped but never read.
 *
 *   bench_matformer MODEL_DIR [--weights q4_0] [-p 32] [-n 32] [-t threads] [SUBMODEL...]
 *
 * Default submodels: E2B, E2.49B-block, E3.24B-block, E4B. Prints a table;
 * not a test.
 */
#define _POSIX_C_SOURCE 200809L
#include "gemma3n.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* VmRSS / VmHWM of this process in MB. */
static double proc_mb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double mb = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, key, n) == 0) mb = atof(line + n + 1) / 1024.0;
    if (f) fclose(f);
    return mb;
}

static int run_one(gm_model *m, const char *name, int n_prompt, int n_gen) {
    gm_error err;
    gm_submodel_spec spec;
    int64_t params;
    if (gm_submodel_resolve(name, &spec, &err) != GM_OK || gm_model_check_submodel(m, &spec, &params, &err) != GM_OK ||
        gm_model_select_submodel(m, &spec, &err) != GM_OK) {
        fprintf(stderr, "%s: %s\n", name, err.message);
        return 1;
    }
    gm_session_params sp = gm_session_default_params();
    sp.n_ctx = n_prompt + n_gen + 8;
    sp.sampler.temperature = 0;
    gm_session *s;
    if (gm_session_new(m, &sp, &s, &err) != GM_OK) {
        fprintf(stderr, "%s: %s\n", name, err.message);
        return 1;
    }
    int32_t ids[4096];
    for (int i = 0; i < n_prompt; i++) ids[i] = i == 0 ? 2 : 1000 + 37 * i;
    double t0 = now_s();
    gm_status st = gm_session_eval(s, ids, (size_t)n_prompt, &err);
    double t1 = now_s();
    gm_generate_params gp = gm_generate_default_params();
    gp.max_tokens = n_gen;
    gp.ignore_eos = 1;
    int produced = 0;
    if (st == GM_OK) st = gm_session_generate_begin(s, &gp, &err);
    gm_step step;
    while (st == GM_OK && (st = gm_session_next(s, &step, &err)) == GM_OK) {
        produced += step.token >= 0;
        if (step.finish != GM_FINISH_NONE) break;
    }
    double t2 = now_s();
    if (st != GM_OK) fprintf(stderr, "%s: %s\n", name, err.message);
    printf("%-16s %8.3f %10.2f %10.2f %10.0f %10.0f\n", name, params / 1e9, n_prompt / (t1 - t0),
           produced / (t2 - t1), proc_mb("VmRSS:"), proc_mb("VmHWM:"));
    fflush(stdout);
    gm_session_free(s);
    return st != GM_OK;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *subs[16];
    int n_subs = 0, n_prompt = 32, n_gen = 32, threads = 0;
    gm_model_params mp = gm_model_default_params();
    mp.load_tokenizer = 0;
    for (int i = 1; i < argc; i++) {
        gm_error err;
        if (!strcmp(argv[i], "--weights") && i + 1 < argc) {
            if (gm_weight_format_parse(argv[++i], &mp.weights, &err) != GM_OK) return fprintf(stderr, "%s\n", err.message), 2;
        } else if (!strcmp(argv[i], "-p") && i + 1 < argc) n_prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n_gen = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!dir) dir = argv[i];
        else if (n_subs < 16) subs[n_subs++] = argv[i];
    }
    if (!dir || n_prompt < 1 || n_prompt > 4000 || n_gen < 1) {
        fprintf(stderr, "usage: %s MODEL_DIR [--weights FMT] [-p N] [-n N] [-t N] [SUBMODEL...]\n", argv[0]);
        return 2;
    }
    if (!n_subs) {
        static const char *dflt[] = {"E2B", "E2.49B-block", "E3.24B-block", "E4B"};
        for (int i = 0; i < 4; i++) subs[n_subs++] = dflt[i];
    }
    mp.n_threads = threads;
    gm_model *m;
    gm_error err;
    double t0 = now_s();
    if (gm_model_open(dir, &mp, &m, &err) != GM_OK) return fprintf(stderr, "%s\n", err.message), 1;
    printf("loaded %s (weights %s) in %.1f s, RSS %.0f MB\n", dir, gm_weight_format_name(mp.weights), now_s() - t0,
           proc_mb("VmRSS:"));
    printf("%-16s %8s %10s %10s %10s %10s\n", "submodel", "eff. B", "pp tok/s", "tg tok/s", "RSS MB", "peak MB");
    int rc = 0;
    for (int i = 0; i < n_subs; i++) rc |= run_one(m, subs[i], n_prompt, n_gen);
    gm_model_free(m);
    return rc;
}
