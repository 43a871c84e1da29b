/*
 * bench_kernels.c - GEMV throughput of every kernel variant, as GB/s of
 * weights read, next to the machine's streaming-read bandwidth.
 *
 *   bench_kernels [--quick] [--rows R] [--cols C] [--variant NAME]
 *
 * The matrix is 2048 x 8192 (rows x cols, the FFN down projection of
 * Gemma 3n E2B) in each weight type. "cold" cycles through enough copies of
 * it to exceed 4x the last-level cache, so every GEMV streams its weights
 * from DRAM as decoding a real model does; "hot" repeats one matrix (LLC-
 * resident when it fits). Activations are prepared once (f32, bf16 or Q8_0):
 * their conversion is per row, not per weight, and is not timed. Threads
 * run through threadpool.h with gm_kern_gemv_plan / gm_kern_gemv_task, the
 * API the decoder uses. Each number is the best of several timed rounds
 * (other processes on the machine only ever make a round slower).
 */
#include "kernels.h"
#include "pack.h"
#include "quant.h"
#include "threadpool.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static uint64_t rng_u64(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static float rng_unit(void) { return (float)((double)(rng_u64() >> 11) * 0x1p-53 * 2.0 - 1.0); }

static size_t llc_bytes(void) {
    long l3 = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
    l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    return l3 > 0 ? (size_t)l3 : (size_t)64 << 20;
}

/*
 * ---- streaming read bandwidth ----
 * The buffer is read as STREAMS interleaved sequential streams (as a 4-row
 * GEMV reads 4 weight rows and x): one stream alone leaves the hardware
 * prefetchers short of parallelism and reads ~30% slower here. The buffer
 * asks for transparent huge pages (fewer TLB misses), so this is a best
 * case: GEMV percentages of it are conservative.
 */
#define STREAMS 8

typedef struct stream_job {
    const uint64_t *buf;
    int64_t per_stream; /* uint64 words in each stream */
    uint64_t sink[GM_POOL_MAX_THREADS];
} stream_job;

static void stream_task(void *ctx, int task, int n_tasks, int thread) {
    stream_job *j = ctx;
    const int64_t per = j->per_stream / n_tasks, lo = per * task;
    const int64_t hi = task == n_tasks - 1 ? j->per_stream : lo + per;
    uint64_t acc[STREAMS] = {0};
    for (int64_t i = lo; i < hi; i++)
        for (int s = 0; s < STREAMS; s++) acc[s] += j->buf[s * j->per_stream + i]; /* vectorized by -O3 */
    uint64_t t = 0;
    for (int s = 0; s < STREAMS; s++) t += acc[s];
    j->sink[task] = t;
    (void)thread;
}

static double stream_gbs(gm_pool *pool, const uint64_t *buf, int64_t words, int rounds) {
    stream_job *j = calloc(1, sizeof *j);
    if (!j) return 0;
    j->buf = buf;
    j->per_stream = words / STREAMS;
    const int tasks = gm_pool_n_threads(pool);
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        const double t0 = now_s();
        gm_pool_run(pool, stream_task, j, tasks);
        const double dt = now_s() - t0;
        if (dt < best) best = dt;
    }
    free(j);
    return (double)(words / STREAMS * STREAMS) * 8 / best / 1e9;
}

/* ---- GEMV ---- */

typedef struct wkind {
    const char *name;
    gm_kern_wtype type;
    int64_t row_bytes_num, row_bytes_den; /* bytes per element = num / den */
} wkind;

static const wkind kinds[] = {
    {"bf16", GM_KERN_BF16, 2, 1},      {"q8_0", GM_KERN_Q8_0, 34, 32},  {"q4_0", GM_KERN_Q4_0, 18, 32},
    {"f16", GM_KERN_F16, 2, 1},        {"f32", GM_KERN_F32, 4, 1},      {"bf16xbf16", GM_KERN_BF16_BF16, 2, 1},
    {"q4_0x16", GM_KERN_Q4_0X16, 18, 32}, /* Q4_0 packed at load (pack.h), variants with matmul_q4_0x16 */
};

/* One matrix of random, well-scaled weights (no NaN / subnormal slow paths). */
static void fill_matrix(const wkind *kd, void *W, int64_t rows, int64_t cols) {
    const int64_t n = rows * cols;
    switch (kd->type) {
    case GM_KERN_F32:
        for (int64_t i = 0; i < n; i++) ((float *)W)[i] = rng_unit();
        break;
    case GM_KERN_BF16:
    case GM_KERN_BF16_BF16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)W)[i] = gm_f32_to_bf16(rng_unit());
        break;
    case GM_KERN_F16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)W)[i] = gm_f32_to_f16(rng_unit());
        break;
    case GM_KERN_Q8_0:
        for (int64_t b = 0; b < n / 32; b++) {
            gm_block_q8_0 *blk = (gm_block_q8_0 *)W + b;
            blk->d = gm_f32_to_f16(0.01f);
            for (int j = 0; j < 32; j++) blk->qs[j] = (int8_t)(rng_u64() % 255) - 127;
        }
        break;
    case GM_KERN_Q4_0:
    case GM_KERN_Q4_0X16: /* packed by the caller */
        for (int64_t b = 0; b < n / 32; b++) {
            gm_block_q4_0 *blk = (gm_block_q4_0 *)W + b;
            blk->d = gm_f32_to_f16(0.01f);
            for (int j = 0; j < 16; j++) blk->qs[j] = (uint8_t)rng_u64();
        }
        break;
    }
}

typedef struct gemv_result {
    double gbs[2][2]; /* [cold/hot][1 thread / pool] */
} gemv_result;

/* Runs GEMVs over `copies` matrices (cycling) for at least min_s per round; GB/s of the best round. */
static double time_gemv(gm_kern_gemv_job *job, gm_pool *pool, void *const *mats, int copies, size_t mat_bytes,
                        int rounds, double min_s) {
    const int n_tasks = gm_kern_gemv_plan(job, gm_pool_n_threads(pool));
    double best = 1e30;
    for (int r = 0; r < rounds; r++) {
        int64_t calls = 0;
        const double t0 = now_s();
        double dt;
        do {
            job->W = mats[calls % copies];
            gm_pool_run(pool, gm_kern_gemv_task, job, n_tasks);
            calls++;
            dt = now_s() - t0;
        } while (dt < min_s || calls < copies);
        if (dt / (double)calls < best) best = dt / (double)calls;
    }
    return (double)mat_bytes / best / 1e9;
}

/*
 * The prefill product: T activation rows through a packed Q4_0 [rows, cols]
 * matrix on one thread, hot in cache (as in prefill, where a 64-row batch
 * reuses each group of weights), in GMAC/s per variant with a packed kernel.
 */
static void bench_packed_gemm(int64_t rows, int64_t cols, int64_t T, const char *only, double min_s) {
    const int64_t nb = cols / 32;
    gm_block_q4_0 *W = malloc((size_t)(rows * nb) * sizeof *W);
    gm_block_q4_0 *P = malloc((size_t)(rows * nb) * sizeof *P);
    float *xf = malloc((size_t)cols * sizeof *xf);
    gm_block_q8_0 *X = malloc((size_t)(T * nb) * sizeof *X);
    gm_q8_aux *xa = malloc((size_t)(T * nb) * sizeof *xa);
    float *Y = malloc((size_t)(T * rows) * sizeof *Y);
    if (!W || !P || !xf || !X || !xa || !Y) exit(1);
    const wkind q4 = {"q4_0", GM_KERN_Q4_0, 18, 32};
    fill_matrix(&q4, W, rows, cols);
    gm_pack_q4_0x16(W, nb, P, 0, rows / GM_PACK_ROWS);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t i = 0; i < cols; i++) xf[i] = rng_unit();
        gm_kernels_ref.quantize_row_q8_0(xf, X + t * nb, cols);
        gm_q8_0_aux(X + t * nb, cols, xa + t * nb);
    }
    /* copies enough to overflow the last-level cache 4 times: "cold" cycles through them (weights from memory) */
    const size_t pbytes = (size_t)(rows * nb) * sizeof *P;
    const int copies = (int)GM_MAX(2, (4 * llc_bytes() + pbytes - 1) / pbytes);
    void **cold = calloc((size_t)copies, sizeof *cold);
    if (!cold) exit(1);
    for (int c = 0; c < copies; c++) {
        if (!(cold[c] = malloc(pbytes))) exit(1);
        memcpy(cold[c], P, pbytes);
    }
    printf("\npacked q4_0 gemm: %lld activation rows x [%lld x %lld], 1 thread; weights hot (in cache) and cold "
           "(%d copies)\n", (long long)T, (long long)rows, (long long)cols, copies);
    printf("%-12s %9s %9s %9s\n", "variant", "ms hot", "GMAC/s", "cold");
    for (int v = 0; v < gm_kern_variant_count(); v++) {
        const gm_kernels *k = gm_kern_variant(v);
        if (!k || !k->matmul_q4_0x16 || k == &gm_kernels_ref || (only && strcmp(only, k->name) != 0)) continue;
        double best[2] = {1e30, 1e30};
        for (int round = 0; round < 6; round++) {
            const int is_cold = round % 2;
            int calls = 0;
            const double t0 = now_s();
            double dt;
            do {
                k->matmul_q4_0x16(is_cold ? cold[calls % copies] : P, nb, X, xa, nb, T, Y, rows, 0, rows);
                calls++;
                dt = now_s() - t0;
            } while (dt < min_s || (is_cold && calls < copies));
            best[is_cold] = GM_MIN(best[is_cold], dt / calls);
        }
        const double macs = (double)rows * (double)cols * (double)T;
        printf("%-12s %9.3f %9.1f %9.1f\n", k->name, 1e3 * best[0], macs / best[0] / 1e9, macs / best[1] / 1e9);
    }
    for (int c = 0; c < copies; c++) free(cold[c]);
    free(cold), free(W), free(P), free(xf), free(X), free(xa), free(Y);
}

int main(int argc, char **argv) {
    int64_t rows = 2048, cols = 8192, gemm_rows = 0;
    bool quick = false;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = true;
        else if (strcmp(argv[i], "--rows") == 0 && i + 1 < argc) rows = atoll(argv[++i]);
        else if (strcmp(argv[i], "--cols") == 0 && i + 1 < argc) cols = atoll(argv[++i]);
        else if (strcmp(argv[i], "--variant") == 0 && i + 1 < argc) only = argv[++i];
        else if (strcmp(argv[i], "--gemm") == 0 && i + 1 < argc) gemm_rows = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--quick] [--rows R] [--cols C] [--variant NAME] [--gemm T]\n"
                            "  --gemm T: only the packed Q4_0 product of T activation rows\n", argv[0]);
            return 2;
        }
    }
    cols = (cols + 31) / 32 * 32;
    const int rounds = quick ? 2 : 4;
    const double min_s = quick ? 0.05 : 0.15;
    if (gemm_rows > 0) {
        printf("cpu: %s | kernels: %s\n", gm_kern_cpu_features(), gm_kern_selection());
        bench_packed_gemm(rows / GM_PACK_ROWS * GM_PACK_ROWS, cols, gemm_rows, only, min_s);
        return 0;
    }
    gm_pool *pool = gm_pool_create(2);
    if (!pool) {
        fprintf(stderr, "cannot create a thread pool\n");
        return 1;
    }
    const size_t llc = llc_bytes();
    printf("cpu: %s | kernels: %s | LLC %.0f MiB\n", gm_kern_cpu_features(), gm_kern_selection(), llc / 1048576.0);

    /* streaming read: a buffer of 8x the LLC (at least 512 MiB), in 2 MiB-aligned memory */
    const size_t sbytes = (GM_MAX(llc * 8, (size_t)512 << 20) + ((size_t)2 << 20) - 1) & ~(((size_t)2 << 20) - 1);
    uint64_t *sbuf = aligned_alloc((size_t)2 << 20, sbytes);
    if (!sbuf) return 1;
#ifdef MADV_HUGEPAGE
    madvise(sbuf, sbytes, MADV_HUGEPAGE);
#endif
    for (size_t i = 0; i < sbytes / 8; i++) sbuf[i] = i;
    const double bw1 = stream_gbs(NULL, sbuf, (int64_t)(sbytes / 8), rounds + 2);
    const double bw2 = stream_gbs(pool, sbuf, (int64_t)(sbytes / 8), rounds + 2);
    free(sbuf);
    printf("streaming read (%d streams, %.0f MiB): 1 thread %.1f GB/s, 2 threads %.1f GB/s\n\n", STREAMS,
           sbytes / 1048576.0, bw1, bw2);

    /* activations in every form */
    float *xf = malloc((size_t)cols * sizeof *xf);
    uint16_t *xb = malloc((size_t)cols * sizeof *xb);
    gm_block_q8_0 *xq = malloc((size_t)(cols / 32) * sizeof *xq);
    float *y = malloc((size_t)rows * sizeof *y);
    if (!xf || !xb || !xq || !y) return 1;
    for (int64_t i = 0; i < cols; i++) xf[i] = rng_unit();
    gm_kernels_ref.f32_to_bf16(xf, xb, cols);
    gm_kernels_ref.quantize_row_q8_0(xf, xq, cols);
    gm_q8_aux *xa = malloc((size_t)(cols / 32) * sizeof *xa);
    if (!xa) return 1;
    gm_q8_0_aux(xq, cols, xa);

    printf("gemv %lld x %lld: GB/s of weights (%% of the streaming bandwidth with as many threads)\n",
           (long long)rows, (long long)cols);
    printf("%-10s %-12s %7s %9s %15s %15s %9s %9s\n", "weights", "variant", "MiB", "ms 1T", "cold 1T", "cold 2T",
           "hot 1T", "hot 2T");
    for (size_t ki = 0; ki < GM_ARRAY_LEN(kinds); ki++) {
        const wkind *kd = &kinds[ki];
        const size_t mat_bytes = (size_t)(rows * cols * kd->row_bytes_num / kd->row_bytes_den);
        int copies = (int)((4 * llc + mat_bytes - 1) / mat_bytes);
        copies = GM_MAX(copies, 2);
        void **mats = calloc((size_t)copies, sizeof *mats);
        if (!mats) return 1;
        for (int c = 0; c < copies; c++) {
            mats[c] = malloc(mat_bytes);
            if (!mats[c]) return 1;
            if (c == 0) fill_matrix(kd, mats[0], rows, cols);
            else memcpy(mats[c], mats[0], mat_bytes);
        }
        if (kd->type == GM_KERN_Q4_0X16 && rows % GM_PACK_ROWS == 0) {
            void *row_major = malloc(mat_bytes);
            if (!row_major) return 1;
            memcpy(row_major, mats[0], mat_bytes);
            for (int c = 0; c < copies; c++) gm_pack_q4_0x16(row_major, cols / 32, mats[c], 0, rows / GM_PACK_ROWS);
            free(row_major);
        }
        const void *x = kd->type == GM_KERN_BF16_BF16 ? (const void *)xb
                        : kd->type == GM_KERN_Q8_0 || kd->type == GM_KERN_Q4_0 || kd->type == GM_KERN_Q4_0X16
                            ? (const void *)xq
                                                                               : (const void *)xf;
        for (int v = 0; v < gm_kern_variant_count(); v++) {
            const gm_kernels *k = gm_kern_variant(v);
            if (!k || (only && strcmp(only, k->name) != 0)) continue;
            if (kd->type == GM_KERN_Q4_0X16 && (!k->matmul_q4_0x16 || rows % GM_PACK_ROWS)) continue;
            gm_kern_gemv_job job = {k, kd->type, mats[0], cols, x, cols, y, rows, 0, xa};
            const bool slow = k == &gm_kernels_ref;
            const int rr = slow ? 1 : rounds;
            const double ms = slow ? 0.0 : min_s;
            const double c1 = time_gemv(&job, NULL, mats, copies, mat_bytes, rr, ms);
            const double c2 = time_gemv(&job, pool, mats, copies, mat_bytes, rr, ms);
            const double h1 = time_gemv(&job, NULL, mats, 1, mat_bytes, rr, ms);
            const double h2 = time_gemv(&job, pool, mats, 1, mat_bytes, rr, ms);
            printf("%-10s %-12s %7.1f %9.2f %7.1f (%3.0f%%) %7.1f (%3.0f%%) %9.1f %9.1f\n", kd->name, k->name,
                   mat_bytes / 1048576.0, 1e3 * mat_bytes / (c1 * 1e9), c1, 100 * c1 / bw1, c2, 100 * c2 / bw2, h1,
                   h2);
            fflush(stdout);
        }
        for (int c = 0; c < copies; c++) free(mats[c]);
        free(mats);
    }
    free(xf);
    free(xb);
    free(xq);
    free(xa);
    free(y);
    gm_pool_free(pool);
    return 0;
}
