/* test_quant.c - Q8_0 / Q4_0 blocks, reference kernels and the ggml type table. */
#include "quant.h"
#include "test_util.h"

/* ---- deterministic data ---- */

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}
/* Uniform in [-1, 1). */
static float rng_uniform(uint64_t *s) { return (float)((double)(rng_next(s) >> 11) / 4503599627370496.0 - 1.0); }

static const int64_t lengths[] = {32, 64, 96, 160, 256, 1024, 2048, 4096};

/* ---- hand-computed blocks ---- */

static void test_q8_0_hand(void) {
    /* amax = 127 gives d = 1.0 (binary16 0x3C00), so q = roundf(x): halves go away from zero. */
    float x[32] = {127, -127, 2.5f, -2.5f, 0.49f, -0.5f, 126.5f, 1.5f, 0, 3, -3};
    for (int j = 11; j < 32; j++) x[j] = (float)(j - 20);
    static const uint8_t want[34] = {
        0x00, 0x3C,                                          /* d = 1.0 */
        127, (uint8_t)-127, 3, (uint8_t)-3, 0, (uint8_t)-1, 127, 2, 0, 3, (uint8_t)-3,
        (uint8_t)-9, (uint8_t)-8, (uint8_t)-7, (uint8_t)-6, (uint8_t)-5, (uint8_t)-4, (uint8_t)-3,
        (uint8_t)-2, (uint8_t)-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    gm_block_q8_0 b;
    gm_quantize_row_q8_0(x, &b, 32);
    CHECK(memcmp(&b, want, 34) == 0, "q8_0 hand block bytes differ");
    float y[32];
    gm_dequantize_row_q8_0(&b, y, 32);
    CHECK(y[0] == 127 && y[2] == 3 && y[5] == -1 && y[31] == 11, "q8_0 hand dequant");

    /* amax = 1: d = 1/127 -> binary16 0x2008 = 0.00787353515625. */
    float x2[32] = {1.0f, -1.0f, 0.25f, 0.1f};
    gm_quantize_row_q8_0(x2, &b, 32);
    uint8_t *p = (uint8_t *)&b;
    CHECK(p[0] == 0x08 && p[1] == 0x20, "q8_0 d bytes %02x %02x", p[0], p[1]);
    CHECK(b.qs[0] == 127 && b.qs[1] == -127 && b.qs[2] == 32 && b.qs[3] == 13 && b.qs[4] == 0,
          "q8_0 quants %d %d %d %d", b.qs[0], b.qs[1], b.qs[2], b.qs[3]);
    gm_dequantize_row_q8_0(&b, y, 32);
    CHECK(y[3] == 13 * 0.00787353515625f && y[1] == -127 * 0.00787353515625f, "q8_0 dequant %g", y[3]);

    /* All zeros: d = 0, quants 0, dequantizes to exact zeros. */
    float z[32] = {0};
    gm_quantize_row_q8_0(z, &b, 32);
    static const uint8_t zero[34] = {0};
    CHECK(memcmp(&b, zero, 34) == 0, "q8_0 zero block");
}

static void test_q4_0_hand(void) {
    /* max = -8 (first of largest magnitude: the later +8 ties, does not win): d = 1.0,
     * nibble = min(15, trunc(x + 8.5)); low nibbles hold x[0..15], high nibbles x[16..31]. */
    float x[32] = {0};
    x[0] = -8;  x[16] = 8;      /* 0, 16 -> 15      : 0xF0 */
    x[1] = 0;   x[17] = -0.6f;  /* 8, 7             : 0x78 */
    x[2] = 0.5f; x[18] = -3.5f; /* 9, 5             : 0x59 */
    x[3] = 1.49f; x[19] = -7.99f; /* 9, 0           : 0x09 */
    x[4] = 7;   x[20] = 6.5f;   /* 15, 15           : 0xFF */
    x[5] = -4.2f; x[21] = 2.7f; /* 4, 11            : 0xB4 */
    static const uint8_t want[18] = {0x00, 0x3C, 0xF0, 0x78, 0x59, 0x09, 0xFF, 0xB4,
                                     0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88};
    gm_block_q4_0 b;
    gm_quantize_row_q4_0(x, &b, 32);
    CHECK(memcmp(&b, want, 18) == 0, "q4_0 hand block bytes differ");
    float y[32];
    gm_dequantize_row_q4_0(&b, y, 32);
    CHECK(y[0] == -8 && y[16] == 7 && y[17] == -1 && y[5] == -4 && y[21] == 3 && y[31] == 0,
          "q4_0 hand dequant %g %g %g", y[0], y[16], y[17]);

    /* Positive max 3: d = 3 / -8 = -0.375 (0xB600); 3 -> 0, -3 -> 15, 1 -> 5, -1 -> 11. */
    float x2[32] = {3, 1};
    x2[16] = -3;
    x2[17] = -1;
    static const uint8_t want2[18] = {0x00, 0xB6, 0xF0, 0xB5, 0x88, 0x88, 0x88, 0x88, 0x88,
                                      0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88};
    gm_quantize_row_q4_0(x2, &b, 32);
    CHECK(memcmp(&b, want2, 18) == 0, "q4_0 positive-max block bytes differ");
    gm_dequantize_row_q4_0(&b, y, 32);
    CHECK(y[0] == 3 && y[1] == 1.125f && y[16] == -2.625f, "q4_0 dequant %g %g %g", y[0], y[1], y[16]);

    /* All zeros: d = 0 / -8 = -0.0 (0x8000, as ggml writes), every nibble 8. */
    float z[32] = {0};
    static const uint8_t want0[18] = {0x00, 0x80, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88,
                                      0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88, 0x88};
    gm_quantize_row_q4_0(z, &b, 32);
    CHECK(memcmp(&b, want0, 18) == 0, "q4_0 zero block bytes differ");
    gm_dequantize_row_q4_0(&b, y, 32);
    CHECK(y[0] == 0 && y[31] == 0, "q4_0 zero dequant");
}

/*
 * ggml's reference expressions written out literally, as an oracle for the
 * bytes on random data (quantize_row_q8_0_ref / quantize_row_q4_0_ref).
 */
static void oracle_q8_0(const float *x, uint8_t *out) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
    const float d = amax / ((1 << 7) - 1);
    const float id = d ? 1.0f / d : 0.0f;
    uint16_t h = gm_f32_to_f16(d);
    memcpy(out, &h, 2);
    for (int j = 0; j < 32; j++) {
        const float x0 = x[j] * id;
        out[2 + j] = (uint8_t)(int8_t)roundf(x0);
    }
}

static void oracle_q4_0(const float *x, uint8_t *out) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    const float d = max / -8;
    const float id = d ? 1.0f / d : 0.0f;
    uint16_t h = gm_f32_to_f16(d);
    memcpy(out, &h, 2);
    for (int j = 0; j < 16; j++) {
        const float x0 = x[j] * id;
        const float x1 = x[16 + j] * id;
        const int8_t t0 = (int8_t)(x0 + 8.5f), t1 = (int8_t)(x1 + 8.5f);
        const uint8_t xi0 = (uint8_t)(t0 < 15 ? t0 : 15), xi1 = (uint8_t)(t1 < 15 ? t1 : 15);
        out[2 + j] = (uint8_t)(xi0 | (xi1 << 4));
    }
}

static void test_oracle_bytes(void) {
    uint64_t s = 42;
    float x[32];
    int bad8 = 0, bad4 = 0;
    for (int it = 0; it < 20000; it++) {
        float scale = powf(10.0f, (float)(it % 9) - 4.0f); /* 1e-4 .. 1e4 */
        for (int j = 0; j < 32; j++) x[j] = rng_uniform(&s) * scale;
        if (it % 7 == 0) x[it % 32] = -x[(it + 5) % 32]; /* magnitude ties of opposite sign */
        if (it % 11 == 0) x[it % 32] = 0.5f * scale;
        uint8_t a[34], b[34];
        gm_block_q8_0 q8;
        gm_block_q4_0 q4;
        gm_quantize_row_q8_0(x, &q8, 32);
        oracle_q8_0(x, a);
        memcpy(b, &q8, 34);
        bad8 += memcmp(a, b, 34) != 0;
        gm_quantize_row_q4_0(x, &q4, 32);
        oracle_q4_0(x, a);
        memcpy(b, &q4, 18);
        bad4 += memcmp(a, b, 18) != 0;
    }
    CHECK(bad8 == 0, "q8_0 differs from ggml's expression on %d blocks", bad8);
    CHECK(bad4 == 0, "q4_0 differs from ggml's expression on %d blocks", bad4);
}

/* ---- round-trip error bounds ---- */

/*
 * Per-element bound for a block of largest magnitude amax, with d the
 * exact scale and the stored binary16 scale off by <= d*2^-11 (+2^-25
 * absolute, below the smallest normal):
 *   Q8_0: d = amax/127; rounding error d/2; |q| <= 127.
 *   Q4_0: d = amax/8; rounding error d/2, except the top value on the side
 *         opposite to the max, clipped from 16 to 15: error d; |q| <= 8.
 */
static double bound_q8(double amax) {
    double d = amax / 127;
    return d / 2 + 127 * (d / 2048 + 3e-8) + amax * 1e-6;
}
static double bound_q4(double amax) {
    double d = amax / 8;
    return d + 8 * (d / 2048 + 3e-8) + amax * 1e-6;
}

/* Max over the row of |x - deq| / bound(block amax); <= 1 passes. Also returns the RMS error. */
static double roundtrip(int64_t type, const float *x, int64_t n, double *rms) {
    void *q = malloc((size_t)n * 2);
    float *y = malloc((size_t)n * sizeof *y);
    if (type == GM_GGML_Q8_0) {
        gm_quantize_row_q8_0(x, q, n);
        gm_dequantize_row_q8_0(q, y, n);
    } else {
        gm_quantize_row_q4_0(x, q, n);
        gm_dequantize_row_q4_0(q, y, n);
    }
    double worst = 0, se = 0;
    for (int64_t b = 0; b < n / 32; b++) {
        double amax = 0;
        for (int j = 0; j < 32; j++) amax = fmax(amax, fabs(x[b * 32 + j]));
        double bound = type == GM_GGML_Q8_0 ? bound_q8(amax) : bound_q4(amax);
        for (int j = 0; j < 32; j++) {
            double e = fabs((double)x[b * 32 + j] - y[b * 32 + j]);
            se += e * e;
            if (bound > 0) worst = fmax(worst, e / bound);
            else if (e > 0) worst = INFINITY;
        }
    }
    *rms = sqrt(se / (double)n);
    free(q);
    free(y);
    return worst;
}

typedef enum { D_UNIFORM, D_ZEROS, D_CONST, D_OUTLIER, D_TINY, D_RAMP, D_ALTERNATE, D_COUNT } dist;
static const char *dist_names[D_COUNT] = {"uniform", "zeros", "constant", "outlier", "tiny", "ramp",
                                          "alternate"};

static void fill(dist d, float *x, int64_t n, uint64_t *s) {
    for (int64_t i = 0; i < n; i++) {
        switch (d) {
        case D_UNIFORM: x[i] = rng_uniform(s); break;
        case D_ZEROS: x[i] = 0; break;
        case D_CONST: x[i] = -0.3125f; break;
        case D_OUTLIER: x[i] = 0.01f * rng_uniform(s); break;
        case D_TINY: x[i] = 1e-6f * rng_uniform(s); break;
        case D_RAMP: x[i] = (float)(i % 97) - 48.0f; break;
        default: x[i] = (i % 2 ? 1.0f : -1.0f) * (float)(1 + i % 5); break;
        }
    }
    if (d == D_OUTLIER) x[n / 3] = 1000.0f;
}

static void test_roundtrip(void) {
    uint64_t s = 7;
    for (size_t li = 0; li < GM_ARRAY_LEN(lengths); li++) {
        int64_t n = lengths[li];
        float *x = malloc((size_t)n * sizeof *x);
        for (int d = 0; d < D_COUNT; d++) {
            fill((dist)d, x, n, &s);
            double rms8, rms4;
            double w8 = roundtrip(GM_GGML_Q8_0, x, n, &rms8);
            double w4 = roundtrip(GM_GGML_Q4_0, x, n, &rms4);
            CHECK(w8 <= 1.0, "q8_0 %s n=%lld: error %.3f x bound", dist_names[d], (long long)n, w8);
            CHECK(w4 <= 1.0, "q4_0 %s n=%lld: error %.3f x bound", dist_names[d], (long long)n, w4);
            if (d == D_UNIFORM) { /* step/sqrt(12): 1/127/3.46 = 0.0023; 1/8/3.46 = 0.036 */
                CHECK(rms8 < 0.0030, "q8_0 uniform rms %g", rms8);
                CHECK(rms4 < 0.045, "q4_0 uniform rms %g", rms4);
            }
            if (d == D_ZEROS) CHECK(rms8 == 0 && rms4 == 0, "zeros must round-trip exactly");
            if (d == D_CONST) CHECK(rms8 < 0.3125 / 2048 && rms4 < 0.3125 / 2048, "constant rms %g %g", rms8, rms4);
        }
        free(x);
    }
}

/* ---- dot products ---- */

/* Exact dot of the dequantized rows, in double. */
static double deq_dot(int64_t wtype, const void *w, const gm_block_q8_0 *x, int64_t n, double *abs_sum) {
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
    if (wtype == GM_GGML_Q8_0) gm_dequantize_row_q8_0(w, a, n);
    else gm_dequantize_row_q4_0(w, a, n);
    gm_dequantize_row_q8_0(x, b, n);
    double s = 0, as = 0;
    for (int64_t i = 0; i < n; i++) {
        s += (double)a[i] * b[i];
        as += fabs((double)a[i] * b[i]);
    }
    free(a);
    free(b);
    *abs_sum = as;
    return s;
}

static void check_dot(int64_t wtype, const float *wf, const float *xf, int64_t n, const char *what) {
    void *w = malloc((size_t)n * 2);
    gm_block_q8_0 *x = malloc((size_t)n / 32 * sizeof *x);
    gm_quantize_row_q8_0(xf, x, n);
    float got;
    if (wtype == GM_GGML_Q8_0) {
        gm_quantize_row_q8_0(wf, w, n);
        got = gm_vec_dot_q8_0_q8_0(w, x, n);
    } else {
        gm_quantize_row_q4_0(wf, w, n);
        got = gm_vec_dot_q4_0_q8_0(w, x, n);
    }
    /* 1. Against the dequantized rows: only f32 rounding of the per-block terms and the sum. */
    double abs_sum, exact = deq_dot(wtype, w, x, n, &abs_sum);
    double tol = (double)(n / 32 + 2) * 1.2e-7 * abs_sum + 1e-30;
    CHECK(fabs(got - exact) <= tol, "%s %s n=%lld: dot %.9g vs dequantized %.9g", gm_ggml_type_name((int32_t)wtype),
          what, (long long)n, got, exact);
    /* 2. Against the f32 rows, within the sum of per-element quantization bounds. */
    double f = 0, bound = tol;
    for (int64_t b = 0; b < n / 32; b++) {
        double aw = 0, ax = 0;
        for (int j = 0; j < 32; j++) {
            aw = fmax(aw, fabs(wf[b * 32 + j]));
            ax = fmax(ax, fabs(xf[b * 32 + j]));
        }
        double ew = wtype == GM_GGML_Q8_0 ? bound_q8(aw) : bound_q4(aw), ex = bound_q8(ax);
        for (int j = 0; j < 32; j++) {
            int64_t i = b * 32 + j;
            f += (double)wf[i] * xf[i];
            bound += fabs(wf[i]) * ex + fabs(xf[i]) * ew + ew * ex;
        }
    }
    CHECK(fabs(got - f) <= bound, "%s %s n=%lld: dot %.9g vs f32 %.9g (bound %.3g)",
          gm_ggml_type_name((int32_t)wtype), what, (long long)n, got, f, bound);
    free(w);
    free(x);
}

static void test_dot(void) {
    uint64_t s = 99;
    for (size_t li = 0; li < GM_ARRAY_LEN(lengths); li++) {
        int64_t n = lengths[li];
        float *w = malloc((size_t)n * sizeof *w), *x = malloc((size_t)n * sizeof *x);
        for (int d = 0; d < D_COUNT; d++) {
            fill((dist)d, w, n, &s);
            fill(D_UNIFORM, x, n, &s);
            check_dot(GM_GGML_Q8_0, w, x, n, dist_names[d]);
            check_dot(GM_GGML_Q4_0, w, x, n, dist_names[d]);
            check_dot(GM_GGML_Q8_0, x, w, n, dist_names[d]); /* awkward activations too */
        }
        free(w);
        free(x);
    }
}

/* Extreme quants with d = 1: every product is exact, so is the float result. */
static void test_dot_extremes(void) {
    gm_block_q8_0 a[8], b[8];
    gm_block_q4_0 c[8];
    for (int i = 0; i < 8; i++) {
        a[i].d = b[i].d = c[i].d = 0x3C00;
        memset(a[i].qs, 127, 32);
        memset(b[i].qs, 0x80, 32); /* -128: never produced by the quantizer, must still work */
        memset(c[i].qs, 0x00, 16); /* every nibble 0 -> -8 */
    }
    CHECK(gm_vec_dot_q8_0_q8_0(a, b, 256) == 8.0f * 32 * 127 * -128, "q8 extremes %g",
          gm_vec_dot_q8_0_q8_0(a, b, 256));
    CHECK(gm_vec_dot_q4_0_q8_0(c, b, 256) == 8.0f * 32 * -8 * -128, "q4 extremes %g",
          gm_vec_dot_q4_0_q8_0(c, b, 256));
    CHECK(gm_vec_dot_q8_0_q8_0(a, b, 0) == 0.0f, "empty dot");
    /* Per-block scales multiply: block 1 scaled by 2 (0x4000) and 0.5 (0x3800). */
    a[1].d = 0x4000;
    b[1].d = 0x3800;
    CHECK(gm_vec_dot_q8_0_q8_0(a, b, 64) == 2.0f * 32 * 127 * -128, "scales %g", gm_vec_dot_q8_0_q8_0(a, b, 64));
}

/* ---- type table ---- */

static void test_traits(void) {
    const gm_ggml_traits *t = gm_ggml_type_traits(GM_GGML_Q4_K);
    CHECK(t && strcmp(t->name, "Q4_K") == 0 && t->block_size == 256 && t->type_size == 144 && !t->supported &&
              !t->to_float,
          "Q4_K traits");
    CHECK(gm_ggml_type_traits(4) == NULL && gm_ggml_type_traits(31) == NULL && gm_ggml_type_traits(-1) == NULL &&
              gm_ggml_type_traits(GM_GGML_TYPE_COUNT) == NULL,
          "removed/unknown ids have no traits");
    CHECK(gm_ggml_type_name(GM_GGML_BF16) && strcmp(gm_ggml_type_name(GM_GGML_BF16), "BF16") == 0, "BF16 name");
    CHECK(gm_ggml_type_name(99) == NULL, "unknown name");
    static const int32_t supported[] = {GM_GGML_F32, GM_GGML_F16, GM_GGML_BF16, GM_GGML_Q8_0, GM_GGML_Q4_0};
    int n_supported = 0;
    for (int32_t i = 0; i < GM_GGML_TYPE_COUNT; i++) {
        const gm_ggml_traits *tr = gm_ggml_type_traits(i);
        if (!tr) continue;
        CHECK(tr->block_size > 0 && tr->type_size > 0, "type %d sizes", i);
        n_supported += tr->supported;
        CHECK(tr->supported == (tr->to_float != NULL && tr->from_float != NULL), "type %d functions", i);
    }
    CHECK(n_supported == 5, "supported types %d", n_supported);
    size_t sz = 0;
    CHECK(gm_ggml_nbytes(GM_GGML_Q8_0, 64, &sz) && sz == 68, "q8_0 nbytes %zu", sz);
    CHECK(gm_ggml_nbytes(GM_GGML_Q4_0, 96, &sz) && sz == 54, "q4_0 nbytes %zu", sz);
    CHECK(gm_ggml_nbytes(GM_GGML_F16, 3, &sz) && sz == 6, "f16 nbytes %zu", sz);
    CHECK(!gm_ggml_nbytes(GM_GGML_Q8_0, 33, &sz), "q8_0 33 elements");
    CHECK(!gm_ggml_nbytes(GM_GGML_F32, INT64_MAX, &sz), "overflow");
    CHECK(!gm_ggml_nbytes(GM_GGML_F32, -1, &sz) && !gm_ggml_nbytes(5, 32, &sz), "bad args");

    /* to_float / from_float through the table. */
    float src[64], back[64];
    uint8_t buf[256];
    uint64_t s = 3;
    for (int i = 0; i < 64; i++) src[i] = rng_uniform(&s) * 10;
    for (size_t k = 0; k < GM_ARRAY_LEN(supported); k++) {
        const gm_ggml_traits *tr = gm_ggml_type_traits(supported[k]);
        tr->from_float(src, buf, 64);
        tr->to_float(buf, back, 64);
        double worst = 0;
        for (int i = 0; i < 64; i++) worst = fmax(worst, fabs(src[i] - back[i]) / 10);
        double tol = supported[k] == GM_GGML_F32 ? 0 : supported[k] == GM_GGML_F16 ? 1.0 / 2048
                   : supported[k] == GM_GGML_BF16 ? 1.0 / 256 : supported[k] == GM_GGML_Q8_0 ? 0.005 : 0.13;
        CHECK(worst <= tol, "%s via traits: relative error %g", tr->name, worst);
    }
    gm_block_q8_0 direct[2];
    gm_quantize_row_q8_0(src, direct, 64);
    gm_ggml_type_traits(GM_GGML_Q8_0)->from_float(src, buf, 64);
    CHECK(memcmp(direct, buf, sizeof direct) == 0, "traits q8_0 == direct");
    uint16_t h;
    gm_ggml_type_traits(GM_GGML_F16)->from_float((const float[]){1.0f}, &h, 1);
    CHECK(h == 0x3C00, "f16 of 1.0 = %04x", h);
}

int main(void) {
    test_q8_0_hand();
    test_q4_0_hand();
    test_oracle_bytes();
    test_roundtrip();
    test_dot();
    test_dot_extremes();
    test_traits();
    return gm_test_summary();
}
