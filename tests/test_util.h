/*
 * test_util.h - a tiny test harness: CHECK macros, a pass/fail summary
 * line ("N passed, N failed"), and a .npy reader for golden files.
 * Header-only so every test is one executable from one source file.
 */
#ifndef GM_TEST_UTIL_H
#define GM_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int gm_test_passed, gm_test_failed;

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) gm_test_passed++;                                             \
        else {                                                                  \
            gm_test_failed++;                                                   \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
        }                                                                       \
    } while (0)

/* Asserts a call returned GM_OK, printing the error message otherwise. */
#define CHECK_OK(call, errp)                                                    \
    do {                                                                        \
        gm_status st_ = (call);                                                 \
        CHECK(st_ == GM_OK, "%s -> %s: %s", #call, gm_status_name(st_), (errp)->message); \
    } while (0)

/* Asserts a call failed with `status` and that the message contains `needle`. */
#define CHECK_FAILS(call, status, needle, errp)                                 \
    do {                                                                        \
        gm_status st_ = (call);                                                 \
        CHECK(st_ == (status) && strstr((errp)->message, (needle)) != NULL,     \
              "%s -> %s (%s), wanted %s containing \"%s\"", #call, gm_status_name(st_), \
              (errp)->message, gm_status_name(status), (needle));               \
    } while (0)

static inline int gm_test_summary(void) {
    printf("%d passed, %d failed\n", gm_test_passed, gm_test_failed);
    return gm_test_failed ? 1 : 0;
}

/* ---- .npy (v1/v2, little-endian, C order) ---- */

typedef struct npy_array {
    char dtype[8];     /* "<f4", "<i8", "|u1", "|b1" ... */
    int ndim;
    long shape[8];
    size_t count;      /* product of shape */
    void *data;
} npy_array;

static inline void npy_free(npy_array *a) { free(a->data); memset(a, 0, sizeof *a); }

/* Loads a .npy file; returns 0 on success. Only what the golden files use. */
static inline int npy_load(const char *path, npy_array *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "npy: cannot open %s\n", path); return -1; }
    unsigned char magic[8];
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "\x93NUMPY", 6) != 0) { fclose(f); return -1; }
    size_t hlen = 0;
    if (magic[6] == 1) {
        unsigned char b[2];
        if (fread(b, 1, 2, f) != 2) { fclose(f); return -1; }
        hlen = b[0] | (size_t)b[1] << 8;
    } else {
        unsigned char b[4];
        if (fread(b, 1, 4, f) != 4) { fclose(f); return -1; }
        hlen = b[0] | (size_t)b[1] << 8 | (size_t)b[2] << 16 | (size_t)b[3] << 24;
    }
    char *h = calloc(1, hlen + 1);
    if (!h || fread(h, 1, hlen, f) != hlen) { free(h); fclose(f); return -1; }
    char *d = strstr(h, "'descr': '");
    char *s = strstr(h, "'shape': (");
    if (!d || !s || strstr(h, "'fortran_order': True")) { free(h); fclose(f); return -1; }
    d += 10;
    size_t k = 0;
    while (d[k] && d[k] != '\'' && k < sizeof out->dtype - 1) { out->dtype[k] = d[k]; k++; }
    s += 10;
    out->count = 1;
    while (*s && *s != ')') {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        long v = strtol(s, &s, 10);
        out->shape[out->ndim++] = v;
        out->count *= (size_t)v;
    }
    free(h);
    size_t esz = (size_t)atoi(out->dtype + 2);
    out->data = malloc(out->count * esz + 1);
    if (!out->data || fread(out->data, esz, out->count, f) != out->count) { fclose(f); npy_free(out); return -1; }
    fclose(f);
    return 0;
}

/* Max |a - b| over n floats. */
static inline double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d != d ? INFINITY : d;
    }
    return m;
}

/* Joins GM_TEST_DATA/rel into a static buffer (one at a time). */
static inline const char *test_path(const char *rel) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s", GM_TEST_DATA, rel);
    return buf;
}

#endif
