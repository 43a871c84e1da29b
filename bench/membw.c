/*
 * membw.c - the machine's streaming read bandwidth, the ceiling of a
 * memory-bound decode: every generated token reads each weight once.
 *
 *   membw [-t THREADS] [-m MIB] [-r ROUNDS] [--json]     (defaults 2, 1024, 5)
 *
 * Each thread sums its share of a buffer much larger than the caches
 * (1 GiB by default), read as 8 interleaved sequential streams (as a
 * 4-row GEMV reads weight rows and x: one stream alone leaves the hardware
 * prefetchers short of parallelism); the best of ROUNDS passes is reported
 * in GB/s (1e9 bytes). The buffer asks for transparent huge pages. Same
 * method as the streaming-read line of bench_kernels, without the library.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define STREAMS 8
#define MAX_THREADS 64

typedef struct job {
    const uint64_t *buf;
    int64_t per_stream, lo, hi; /* words of each stream; this thread's range of them */
    pthread_barrier_t *start;
    double t0, t1;
    uint64_t sink;
} job;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *reader(void *arg) {
    job *j = arg;
    pthread_barrier_wait(j->start);
    j->t0 = now_s();
    uint64_t acc[STREAMS] = {0};
    for (int64_t i = j->lo; i < j->hi; i++)
        for (int s = 0; s < STREAMS; s++) acc[s] += j->buf[s * j->per_stream + i]; /* vectorized at -O3 */
    uint64_t t = 0;
    for (int s = 0; s < STREAMS; s++) t += acc[s];
    j->sink = t;
    j->t1 = now_s();
    return NULL;
}

int main(int argc, char **argv) {
    int threads = 2, rounds = 5, json = 0;
    long mib = 1024;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (i + 1 < argc && !strcmp(argv[i], "-t")) threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-m")) mib = atol(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-r")) rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: membw [-t THREADS] [-m MIB] [-r ROUNDS] [--json]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > MAX_THREADS || mib < 16 || rounds < 1) {
        fprintf(stderr, "membw: bad arguments\n");
        return 2;
    }
    const size_t bytes = (size_t)mib << 20;
    uint64_t *buf = aligned_alloc((size_t)2 << 20, bytes);
    if (!buf) {
        fprintf(stderr, "membw: cannot allocate %ld MiB\n", mib);
        return 1;
    }
#ifdef MADV_HUGEPAGE
    madvise(buf, bytes, MADV_HUGEPAGE);
#endif
    const int64_t words = (int64_t)(bytes / 8), per_stream = words / STREAMS;
    for (int64_t i = 0; i < words; i++) buf[i] = (uint64_t)i; /* touch every page */
    job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    pthread_barrier_t start;
    double best = 1e30;
    uint64_t sink = 0;
    for (int r = 0; r < rounds; r++) {
        pthread_barrier_init(&start, NULL, (unsigned)threads);
        for (int t = 0; t < threads; t++) {
            jobs[t] = (job){.buf = buf, .per_stream = per_stream, .start = &start,
                            .lo = per_stream * t / threads, .hi = per_stream * (t + 1) / threads};
            pthread_create(&tid[t], NULL, reader, &jobs[t]);
        }
        double t0 = 1e30, t1 = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            if (jobs[t].t0 < t0) t0 = jobs[t].t0;
            if (jobs[t].t1 > t1) t1 = jobs[t].t1;
            sink += jobs[t].sink;
        }
        pthread_barrier_destroy(&start);
        if (t1 - t0 < best) best = t1 - t0;
    }
    const double gbs = (double)(per_stream * STREAMS) * 8 / best / 1e9;
    if (json)
        printf("{\"gb_s\": %.2f, \"threads\": %d, \"mib\": %ld, \"rounds\": %d}\n", gbs, threads, mib, rounds);
    else
        printf("read bandwidth: %.2f GB/s (%d threads, %ld MiB buffer, best of %d)\n", gbs, threads, mib, rounds);
    free(buf);
    return sink == 42; /* keeps the sums alive */
}
