/*
 * cmd_convert.c - `gemma3n convert SRC_DIR OUT.gguf [--weights FORMAT]`:
 * a Hugging Face directory to a GGUF file llama.cpp loads, with a progress
 * bar on stderr (when it is a terminal). Ctrl-C cancels cleanly: the
 * partial file is removed.
 */
#define _POSIX_C_SOURCE 200809L /* sigaction, isatty, clock_gettime */

#include "cli.h"

#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int gm_cli_convert(int argc, char **argv);

static const char convert_usage[] =
    "usage: gemma3n convert SRC_DIR OUT.gguf [--weights FORMAT] [--quiet]\n"
    "\n"
    "Writes the text decoder of a Hugging Face Gemma 3n directory (config.json,\n"
    "*.safetensors, tokenizer.json) as one GGUF file with llama.cpp's tensor names,\n"
    "metadata and tokenizer layout. `gemma3n` and llama.cpp both load the result.\n"
    "\n"
    "options:\n"
    "  --weights FORMAT  stored (default: the checkpoint's dtypes), f32, f16, bf16,\n"
    "                    q8_0 or q4_0. Norms and AltUp coefficients stay f32, the\n"
    "                    per-layer embedding table stays as stored, matrices whose\n"
    "                    rows are not whole 32-blocks keep their dtype.\n"
    "  --quiet           no progress bar\n"
    "\n"
    "example:\n"
    "  gemma3n convert gemma-3n-E2B-it gemma-3n-E2B-it-q8_0.gguf --weights q8_0\n";

/* Ctrl-C: the progress callback sees it and cancels (the one signal-handler global). */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct progress_bar {
    bool show;
    int last_permille;
    const char *last_what;
} progress_bar;

static int on_progress(void *user, double fraction, const char *what) {
    progress_bar *p = user;
    if (interrupted) return 1;
    int permille = (int)(fraction * 1000);
    if (!p->show || (permille == p->last_permille && what == p->last_what)) return 0;
    p->last_permille = permille;
    p->last_what = what;
    enum { WIDTH = 30 };
    char bar[WIDTH + 1];
    int full = (int)(fraction * WIDTH);
    for (int i = 0; i < WIDTH; i++) bar[i] = i < full ? '#' : '.';
    bar[WIDTH] = 0;
    fprintf(stderr, "\r[%s] %5.1f%% %-40.40s", bar, fraction * 100, what);
    fflush(stderr);
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int gm_cli_convert(int argc, char **argv) {
    const char *cmd = argv[0], *weights = "stored", *pos[2];
    int quiet = 0, n_pos = 0;
    const cli_opt opts[] = {
        {"--weights", "-w", CLI_STR, &weights, 0, 0},
        {"--quiet", "-q", CLI_FLAG, &quiet, 0, 0},
        {NULL, NULL, CLI_FLAG, NULL, 0, 0},
    };
    int rc = cli_parse(argc, argv, opts, convert_usage, pos, 2, &n_pos);
    if (rc != CLI_CONTINUE) return rc;
    if (n_pos != 2) return cli_usage_error(cmd, "expected SRC_DIR and OUT.gguf");
    gm_error err;
    gm_weight_format format;
    if (gm_weight_format_parse(weights, &format, &err) != GM_OK) return cli_usage_error(cmd, "%s", err.message);

    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old);
    interrupted = 0;
    progress_bar bar = {.show = !quiet && isatty(STDERR_FILENO), .last_permille = -1};
    double t0 = now();
    gm_status st = gm_convert_to_gguf(pos[0], pos[1], format, on_progress, &bar, &err);
    sigaction(SIGINT, &old, NULL);
    if (bar.show) fputc('\n', stderr);
    if (st != GM_OK) return cli_fail_err(cmd, &err);
    struct stat sb;
    double mb = stat(pos[1], &sb) == 0 ? (double)sb.st_size / 1e6 : 0;
    if (!quiet)
        fprintf(stderr, "gemma3n %s: wrote %s (%.1f MB, weights %s) in %.1f s\n", cmd, pos[1], mb,
                gm_weight_format_name(format), now() - t0);
    return CLI_EXIT_OK;
}
