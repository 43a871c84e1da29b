/*
 * bench_tokenizer.c - load time and encode/decode throughput of the
 * tokenizer (not a test: prints numbers, checks nothing but errors).
 *
 *   bench_tokenizer [tokenizer.json [reference_encodings.json]]
 *
 * Defaults to the copies in tests/data/tokenizer. Load time is the median
 * of 5 loads; throughput is over the reference corpus (every sample's
 * text, with PARSE_SPECIAL as the reference ids were made), repeated until
 * at least half a second has passed. Each figure is given in wall-clock
 * and in CPU time: on a busy machine only the CPU figure means much.
 */
#include "gemma3n.h"
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifndef GM_BENCH_DATA
#define GM_BENCH_DATA "tests/data"
#endif

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU time of this process: unlike wall time, barely moved by other jobs on the machine. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct corpus {
    char **text;
    size_t *len;
    size_t n, bytes;
} corpus;

static int load_corpus(const char *path, corpus *c) {
    gm_error err;
    char *src;
    size_t size;
    gm_json doc;
    if (gm_read_file(path, &src, &size, &err) != GM_OK ||
        gm_json_parse(src, size, path, &doc, &err) != GM_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    size_t n = doc.tok[0].size;
    c->text = calloc(n, sizeof *c->text);
    c->len = calloc(n, sizeof *c->len);
    for (int s = gm_json_first(&doc, 0); s >= 0; s = gm_json_next_elem(&doc, 0, s)) {
        c->text[c->n] = gm_json_string_dup(&doc, gm_json_get(&doc, s, "text"), &c->len[c->n]);
        c->bytes += c->len[c->n++];
    }
    gm_json_free(&doc);
    free(src);
    return 0;
}

/* Median wall time of 5 loads (and the median CPU time in *cpu); keeps the last tokenizer. */
static double median_load(const char *path, gm_tokenizer **keep, double *cpu) {
    double t[5], c[5];
    gm_error err;
    for (int r = 0; r < 5; r++) {
        gm_tokenizer *tok;
        double t0 = now_s(), c0 = cpu_s();
        if (gm_tokenizer_open(path, &tok, &err) != GM_OK) {
            fprintf(stderr, "%s\n", err.message);
            exit(1);
        }
        t[r] = now_s() - t0;
        c[r] = cpu_s() - c0;
        if (r == 4) *keep = tok;
        else gm_tokenizer_free(tok);
    }
    qsort(t, 5, sizeof t[0], cmp_double);
    qsort(c, 5, sizeof c[0], cmp_double);
    *cpu = c[2];
    return t[2];
}

int main(int argc, char **argv) {
    const char *tok_path = argc > 1 ? argv[1] : GM_BENCH_DATA "/tokenizer/tokenizer.json";
    const char *ref_path = argc > 2 ? argv[2] : GM_BENCH_DATA "/tokenizer/reference_encodings.json";
    gm_tokenizer *tok = NULL;
    double load_cpu = 0, load = median_load(tok_path, &tok, &load_cpu);
    printf("load: %.3f s wall, %.3f s CPU (medians of 5), vocab %d\n", load, load_cpu,
           gm_tokenizer_vocab_size(tok));

    corpus c = {0};
    if (load_corpus(ref_path, &c) != 0) return 1;
    size_t cap = c.bytes + 16, n_ids = 0, total_ids = 0, total_bytes = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    char *text = malloc(c.bytes * 4 + 16);
    gm_error err;
    double t0 = now_s(), enc = 0, dec = 0, enc_cpu = 0, dec_cpu = 0;
    int rounds = 0;
    while (now_s() - t0 < 0.5 || rounds < 3) {
        for (size_t i = 0; i < c.n; i++) {
            double a = now_s(), ac = cpu_s();
            if (gm_tokenize(tok, c.text[i], c.len[i], GM_TOKENIZE_PARSE_SPECIAL, ids, cap, &n_ids, &err) != GM_OK) {
                fprintf(stderr, "%s\n", err.message);
                return 1;
            }
            double b = now_s(), bc = cpu_s();
            size_t len;
            if (gm_detokenize(tok, ids, n_ids, 0, text, c.bytes * 4 + 16, &len, &err) != GM_OK) {
                fprintf(stderr, "%s\n", err.message);
                return 1;
            }
            enc += b - a;
            enc_cpu += bc - ac;
            dec += now_s() - b;
            dec_cpu += cpu_s() - bc;
            total_ids += n_ids;
            total_bytes += c.len[i];
        }
        rounds++;
    }
    double mb = (double)total_bytes / 1e6;
    printf("encode: %.1f MB/s wall, %.1f MB/s CPU (%zu samples, %zu bytes, %d rounds, %.2f bytes/token)\n",
           mb / enc, mb / enc_cpu, c.n, c.bytes, rounds, (double)total_bytes / (double)total_ids);
    printf("decode: %.1f MB/s wall, %.1f MB/s CPU (%.1f M tokens/s CPU)\n", mb / dec, mb / dec_cpu,
           (double)total_ids / dec_cpu / 1e6);
    for (size_t i = 0; i < c.n; i++) free(c.text[i]);
    free(c.text);
    free(c.len);
    free(ids);
    free(text);
    gm_tokenizer_free(tok);
    return 0;
}
