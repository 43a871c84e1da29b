/*
 * make_synthetic.c - gemma3n-synth: writes a random-weight full-size Gemma 3n
 * checkpoint (HF layout, BF16 shards + index + config.json) for benchmarks.
 *
 *   gemma3n-synth E2B|E4B OUT_DIR [--seed N] [--shard-gb G] [--data DIR]
 *
 * Same seed => byte-identical files. The tensor lists and configs come from
 * tests/data/full_size (GM_SYNTH_DATA, set by CMake) unless --data is given.
 */
#define _POSIX_C_SOURCE 200809L
#include "synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef GM_SYNTH_DATA
#define GM_SYNTH_DATA "tests/data/full_size"
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct bar {
    double t0, last;
    double total_gb;
} bar;

/* A progress bar on stderr, redrawn at most 5 times a second. */
static void show_progress(void *user, double fraction) {
    bar *b = user;
    double t = now_s();
    if (fraction < 1.0 && t - b->last < 0.2) return;
    b->last = t;
    char cells[41];
    int filled = (int)(fraction * 40.0);
    for (int i = 0; i < 40; i++) cells[i] = i < filled ? '#' : '.';
    cells[40] = '\0';
    double done = fraction * b->total_gb, dt = t - b->t0;
    fprintf(stderr, "\r[%s] %5.1f%%  %6.2f / %.2f GB  %5.2f GB/s", cells, 100.0 * fraction, done,
            b->total_gb, dt > 0 ? done / dt : 0.0);
    fflush(stderr);
}

static int usage(void) {
    fprintf(stderr,
            "usage: gemma3n-synth E2B|E4B OUT_DIR [--seed N] [--shard-gb G] [--data DIR]\n"
            "  Writes a random-weight Gemma 3n checkpoint (BF16, HF layout) to OUT_DIR.\n"
            "  --seed N      random seed (default 0); same seed => identical files\n"
            "  --shard-gb G  shard size budget in GB (default 5)\n"
            "  --data DIR    where <variant>_weights.tsv and <variant>_config.json are\n"
            "                (default %s)\n", GM_SYNTH_DATA);
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 3) return usage();
    const char *variant = argv[1], *out_dir = argv[2], *data = GM_SYNTH_DATA;
    if (strcmp(variant, "E2B") != 0 && strcmp(variant, "E4B") != 0) {
        fprintf(stderr, "gemma3n-synth: unknown variant '%s' (E2B or E4B)\n", variant);
        return 2;
    }
    unsigned long long seed = 0;
    double shard_gb = 5.0;
    for (int i = 3; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], &end, 0);
        } else if (strcmp(argv[i], "--shard-gb") == 0 && i + 1 < argc) {
            shard_gb = strtod(argv[++i], &end);
            if (!(shard_gb > 0 && shard_gb < 1e6)) end = argv[i];
        } else if (strcmp(argv[i], "--data") == 0 && i + 1 < argc) {
            data = argv[++i];
            continue;
        } else {
            return usage();
        }
        if (!end || end == argv[i] || *end) {
            fprintf(stderr, "gemma3n-synth: bad value '%s' for %s\n", argv[i], argv[i - 1]);
            return 2;
        }
    }
    char tsv[4096], config[4096];
    snprintf(tsv, sizeof tsv, "%s/%s_weights.tsv", data, variant);
    snprintf(config, sizeof config, "%s/%s_config.json", data, variant);

    gm_synth_list list; /* read once here only for the byte total of the progress bar */
    gm_error err = {0};
    if (gm_synth_read_tsv(tsv, &list, &err) != GM_OK) {
        fprintf(stderr, "gemma3n-synth: %s\n", err.message);
        return 1;
    }
    double total = 0;
    for (size_t i = 0; i < list.n; i++) {
        double n = 2;
        for (int d = 0; d < list.tensors[i].ndim; d++) n *= (double)list.tensors[i].shape[d];
        total += n;
    }
    gm_synth_list_free(&list);

    bar b = {.t0 = now_s(), .total_gb = total / 1e9};
    gm_status st = gm_synth_write(variant, tsv, config, out_dir, (uint64_t)seed, (size_t)(shard_gb * 1e9),
                                  show_progress, &b, &err);
    double dt = now_s() - b.t0;
    fputc('\n', stderr);
    if (st != GM_OK) {
        fprintf(stderr, "gemma3n-synth: %s\n", err.message);
        return 1;
    }
    fprintf(stderr, "gemma3n-synth: wrote %s (seed %llu) to %s: %.2f GB in %.1f s (%.2f GB/s)\n", variant,
            seed, out_dir, total / 1e9, dt, dt > 0 ? total / 1e9 / dt : 0.0);
    return 0;
}
