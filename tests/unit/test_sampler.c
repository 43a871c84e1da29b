/*
 * test_sampler.c - the sampling chain: greedy, bias, penalty, top-k/top-p/
 * min-p masks and frequencies, seeding, validation, and the fast candidate
 * paths against a brute-force full sort on a Gemma-sized vocabulary.
 */
#include "sampler.h"
#include "test_util.h"

#include <float.h>
#include <time.h>

static gm_sampler_params base_params(void) {
    gm_sampler_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.0f;
    p.repeat_last_n = 64;
    p.seed = 42;
    return p;
}

static gm_sampler *make(int32_t n_vocab, const gm_sampler_params *p) {
    gm_sampler *s = NULL;
    gm_error err;
    gm_status st = gm_sampler_new(n_vocab, p, &s, &err);
    CHECK(st == GM_OK, "gm_sampler_new: %s", err.message);
    return s;
}

/* Test-side PRNG (independent of the sampler's). */
static uint64_t test_rng = 0x1234567;
static double test_uniform(void) {
    test_rng ^= test_rng << 13;
    test_rng ^= test_rng >> 7;
    test_rng ^= test_rng << 17;
    return (double)(test_rng >> 11) * 0x1.0p-53;
}
static double test_normal(void) {
    double u = test_uniform() + 1e-12, v = test_uniform();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static int32_t argmax(const float *l, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

/* ------------------------------------------------------------------ */

static void test_greedy(void) {
    gm_sampler_params p = base_params();
    p.temperature = 0;
    gm_sampler *s = make(16, &p);
    float l[16];
    for (int row = 0; row < 50; row++) {
        for (int i = 0; i < 16; i++) l[i] = (float)test_normal();
        CHECK(gm_sampler_sample(s, l, NULL, 0) == argmax(l, 16), "row %d", row);
    }
    float ties[16] = {0, 1, 5, 2, 5, 5, -1, 0, 0, 0, 0, 0, 0, 0, 0, 5};
    CHECK(gm_sampler_sample(s, ties, NULL, 0) == 2, "ties go to the lowest id");
    float nan_first[16] = {NAN, 1, 5, 2, NAN};
    CHECK(gm_sampler_sample(s, nan_first, NULL, 0) == 2, "NaN is never picked");
    float pinf[16] = {0, 1, INFINITY, 2};
    CHECK(gm_sampler_sample(s, pinf, NULL, 0) == 2, "+inf is the max");
    p.temperature = -1; /* also greedy */
    gm_error err;
    CHECK_OK(gm_sampler_configure(s, &p, &err), &err);
    CHECK(gm_sampler_sample(s, ties, NULL, 0) == 2, "negative temperature is greedy");
    gm_sampler_free(s);
}

static void test_bias(void) {
    gm_sampler_params p = base_params();
    p.temperature = 0;
    float l[8] = {0.5f, 3.0f, 2.0f, 2.5f, -1, 0, 0, 0};
    gm_logit_bias ban[] = {{1, -INFINITY}};
    p.logit_bias = ban;
    p.n_logit_bias = 1;
    gm_sampler *s = make(8, &p);
    CHECK(gm_sampler_sample(s, l, NULL, 0) == 3, "banned argmax -> next best");
    ban[0].token = 3; /* the sampler copied the array: changing it changes nothing */
    CHECK(gm_sampler_sample(s, l, NULL, 0) == 3, "logit_bias is copied");
    CHECK(l[1] == 3.0f, "logits not modified");

    gm_logit_bias boost[] = {{4, 2.0f}, {4, 2.5f}, {1, -0.1f}}; /* same token: biases add */
    p.logit_bias = boost;
    p.n_logit_bias = 3;
    gm_error err;
    CHECK_OK(gm_sampler_configure(s, &p, &err), &err);
    CHECK(gm_sampler_sample(s, l, NULL, 0) == 4, "-1 + 4.5 = 3.5 wins");

    gm_logit_bias all[8];
    for (int i = 0; i < 8; i++) all[i] = (gm_logit_bias){i, -INFINITY};
    p.logit_bias = all;
    p.n_logit_bias = 8;
    CHECK_OK(gm_sampler_configure(s, &p, &err), &err);
    CHECK(gm_sampler_sample(s, l, NULL, 0) == -1, "everything banned -> -1 (greedy)");
    p.temperature = 0.8f;
    p.top_p = 0.9f;
    CHECK_OK(gm_sampler_configure(s, &p, &err), &err);
    CHECK(gm_sampler_sample(s, l, NULL, 0) == -1, "everything banned -> -1 (sampling)");
    gm_sampler_free(s);
}

/* Penalty, computed by hand on a tiny vocabulary. Greedy picks flip exactly
 * where the hand computation says they do. */
static void test_penalty(void) {
    gm_sampler_params p = base_params();
    p.temperature = 0;
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = -1;
    gm_sampler *s = make(4, &p);
    gm_error err;
    float a[4] = {3.0f, 2.0f, -0.5f, 1.9f};
    int32_t h0[] = {0};
    CHECK(gm_sampler_sample(s, a, h0, 1) == 1, "3.0 / 2 = 1.5 < 2.0");
    float b[4] = {3.0f, 1.0f, -5, -5};
    int32_t h00[] = {0, 0, 0};
    CHECK(gm_sampler_sample(s, b, h00, 3) == 0, "once per distinct token: 1.5 > 1.0, not 0.375");
    float c[4] = {-1.0f, -1.5f, -9, -9};
    CHECK(gm_sampler_sample(s, c, h0, 1) == 1, "negative logit multiplied: -2.0 < -1.5");
    float z[4] = {0.0f, -0.1f, -9, -9};
    CHECK(gm_sampler_sample(s, z, h0, 1) == 0, "0 * 2 = 0 > -0.1");
    int32_t h01[] = {0, 1};
    p.repeat_last_n = 1; /* only token 1 is in the window */
    CHECK_OK(gm_sampler_configure(s, &p, &err), &err);
    CHECK(gm_sampler_sample(s, a, h01, 2) == 0, "window of 1 sees only the last token");
    p.repeat_last_n = 0;
    CHECK_OK(gm_sampler_configure(s, &p, &err), &err);
    CHECK(gm_sampler_sample(s, a, h0, 1) == 0, "repeat_last_n 0 is off");
    p.repeat_last_n = -1;
    p.repeat_penalty = 1.0f;
    CHECK_OK(gm_sampler_configure(s, &p, &err), &err);
    CHECK(gm_sampler_sample(s, a, h0, 1) == 0, "penalty 1 is off");
    int32_t junk[] = {-5, 99, 0};
    p.repeat_penalty = 2.0f;
    CHECK_OK(gm_sampler_configure(s, &p, &err), &err);
    CHECK(gm_sampler_sample(s, a, junk, 3) == 1, "out-of-range history ids ignored");

    /* The exact values show in the distribution: logits {ln 3, ln 1}, history {0},
     * penalty 2 -> {ln3 / 2, 0}: P(0) = sqrt(3) / (sqrt(3) + 1) = 0.634. */
    p.temperature = 1.0f;
    CHECK_OK(gm_sampler_configure(s, &p, &err), &err);
    float d[4] = {logf(3.0f), 0.0f, -INFINITY, -INFINITY};
    int hits = 0, n = 20000;
    for (int i = 0; i < n; i++) hits += gm_sampler_sample(s, d, h0, 1) == 0;
    double want = sqrt(3.0) / (sqrt(3.0) + 1);
    CHECK(fabs((double)hits / n - want) < 0.02, "P(0) %.3f, want %.3f", (double)hits / n, want);
    gm_sampler_free(s);
}

static void test_top_k_1(void) {
    const float temps[] = {0.1f, 1.0f, 5.0f, 1000.0f};
    float l[64];
    for (int i = 0; i < 64; i++) l[i] = (float)test_normal();
    int32_t want = argmax(l, 64);
    for (size_t t = 0; t < GM_ARRAY_LEN(temps); t++) {
        gm_sampler_params p = base_params();
        p.top_k = 1;
        p.temperature = temps[t];
        gm_sampler *s = make(64, &p);
        int bad = 0;
        for (int i = 0; i < 500; i++) bad += gm_sampler_sample(s, l, NULL, 0) != want;
        CHECK(bad == 0, "top_k 1 at T=%g: %d non-argmax picks", (double)temps[t], bad);
        gm_sampler_free(s);
    }
}

/* Draws `n` samples; every token with want[i] == 0 must never appear and
 * the others must be within `tol` of want[i]. */
static void check_freq(const gm_sampler_params *p, const float *l, const double *want,
                       int32_t n_vocab, int n, const char *what) {
    gm_sampler *s = make(n_vocab, p);
    if (!s) return;
    int count[16] = {0};
    for (int i = 0; i < n; i++) {
        int32_t t = gm_sampler_sample(s, l, NULL, 0);
        if (t >= 0 && t < 16) count[t]++;
    }
    for (int32_t i = 0; i < n_vocab; i++) {
        double f = (double)count[i] / n;
        if (want[i] == 0) CHECK(count[i] == 0, "%s: token %d drawn %d times", what, i, count[i]);
        else CHECK(fabs(f - want[i]) < 0.02, "%s: token %d freq %.4f, want %.4f", what, i, f,
                   want[i]);
    }
    gm_sampler_free(s);
}

/* A hand-made distribution: p = {.05 .10 .30 .40 .15} at ids 0..4 (sorted:
 * 3 (.40), 2 (.30), 4 (.15), 1 (.10), 0 (.05)); ids 5..7 banned (-inf). */
static void hand_logits(float *l) {
    const double prob[8] = {0.05, 0.10, 0.30, 0.40, 0.15, 0, 0, 0};
    for (int i = 0; i < 8; i++) l[i] = prob[i] > 0 ? (float)log(prob[i]) + 1.5f : -INFINITY;
}

static void test_masks(void) {
    float l[8];
    hand_logits(l);
    const int n = 20000;
    gm_sampler_params p = base_params();

    /* top_p 0.75: 0.40 + 0.30 = 0.70 < 0.75, + 0.15 = 0.85 -> {3, 2, 4}. */
    double topp[8] = {0, 0, 0.30 / 0.85, 0.40 / 0.85, 0.15 / 0.85};
    p.top_p = 0.75f;
    check_freq(&p, l, topp, 8, n, "top_p 0.75 (histogram path)");
    p.top_k = 4; /* same set through the sorted top-k path */
    check_freq(&p, l, topp, 8, n, "top_k 4 + top_p 0.75");
    p.top_k = 2;
    double topk2[8] = {0, 0, 0.30 / 0.70, 0.40 / 0.70};
    check_freq(&p, l, topk2, 8, n, "top_k 2 (then top_p over the two)");

    /* top-p renormalises over the top-k set: top_k 3 -> {.40 .30 .15}/.85;
     * top_p 0.8: .47 + .35 = .82 >= .8 -> {3, 2}. */
    p.top_k = 3;
    p.top_p = 0.8f;
    check_freq(&p, l, topk2, 8, n, "top_p after top_k renormalises");

    /* min_p 0.3: keep p >= 0.12 -> {3, 2, 4}; min_p 0.5: p >= 0.2 -> {3, 2}. */
    p = base_params();
    p.min_p = 0.3f;
    check_freq(&p, l, topp, 8, n, "min_p 0.3");
    p.min_p = 0.5f;
    check_freq(&p, l, topk2, 8, n, "min_p 0.5");
    p.top_p = 0.95f; /* nucleus {3,2,4,1}, then min_p 0.5 -> {3, 2} */
    check_freq(&p, l, topk2, 8, n, "top_p 0.95 then min_p 0.5");
    p.min_p = 1.0f;
    double only3[8] = {0, 0, 0, 1.0};
    check_freq(&p, l, only3, 8, n, "min_p 1 keeps the max only");

    /* Temperature after the masks: T = 2 over {3, 2, 4} -> p^(1/2) renormalised. */
    p = base_params();
    p.top_p = 0.75f;
    p.temperature = 2.0f;
    double r = sqrt(0.40) + sqrt(0.30) + sqrt(0.15);
    double temp2[8] = {0, 0, sqrt(0.30) / r, sqrt(0.40) / r, sqrt(0.15) / r};
    check_freq(&p, l, temp2, 8, n, "temperature 2 after top_p");

    /* Everything off: the plain softmax. */
    p = base_params();
    double full[8] = {0.05, 0.10, 0.30, 0.40, 0.15};
    check_freq(&p, l, full, 8, n, "plain softmax");
    p.top_p = 0.0f;
    check_freq(&p, l, only3, 8, n, "top_p 0 keeps one token");
}

/* Equal logits: the candidate order breaks ties by id, so top_p 0.5 over 64
 * equal tokens is exactly ids 0..31 (cumulative 32/64 reaches 0.5); with
 * top_k 48 first it is ids 0..23; top_k 10 alone is ids 0..9. */
static void test_ties(void) {
    float l[64];
    for (int i = 0; i < 64; i++) l[i] = 1.0f;
    struct { int top_k; float top_p; int kept; } t[] = {
        {0, 0.5f, 32}, {48, 0.5f, 24}, {10, 1.0f, 10}};
    for (size_t c = 0; c < GM_ARRAY_LEN(t); c++) {
        gm_sampler_params p = base_params();
        p.top_k = t[c].top_k;
        p.top_p = t[c].top_p;
        gm_sampler *s = make(64, &p);
        int seen[64] = {0};
        for (int i = 0; i < 4000; i++) {
            int32_t id = gm_sampler_sample(s, l, NULL, 0);
            if (id >= 0 && id < 64) seen[id]++;
        }
        int ok = 1;
        for (int i = 0; i < 64; i++) ok &= i < t[c].kept ? seen[i] > 0 : seen[i] == 0;
        CHECK(ok, "equal logits, top_k %d, top_p %g: ids 0..%d", t[c].top_k, (double)t[c].top_p,
              t[c].kept - 1);
        gm_sampler_free(s);
    }
}

static void test_seeding(void) {
    float l[32];
    for (int i = 0; i < 32; i++) l[i] = (float)test_normal();
    gm_sampler_params p = base_params();
    p.top_k = 20;
    p.top_p = 0.95f;
    gm_sampler *a = make(32, &p), *b = make(32, &p);
    p.seed = 43;
    gm_sampler *c = make(32, &p);
    int32_t first[200];
    int same_ab = 1, diff_ac = 0;
    for (int i = 0; i < 200; i++) {
        first[i] = gm_sampler_sample(a, l, NULL, 0);
        same_ab &= first[i] == gm_sampler_sample(b, l, NULL, 0);
        diff_ac += first[i] != gm_sampler_sample(c, l, NULL, 0);
    }
    CHECK(same_ab, "same seed -> same sequence");
    CHECK(diff_ac > 20, "different seed -> different sequence (%d differences)", diff_ac);
    gm_sampler_reset(a);
    int again = 1;
    for (int i = 0; i < 200; i++) again &= first[i] == gm_sampler_sample(a, l, NULL, 0);
    CHECK(again, "reset reproduces the sequence");
    /* configure re-seeds too; a failed configure changes nothing. */
    gm_error err;
    p.seed = 42;
    CHECK_OK(gm_sampler_configure(c, &p, &err), &err);
    int32_t x = gm_sampler_sample(c, l, NULL, 0);
    CHECK(x == first[0], "configure re-seeds");
    gm_sampler_params bad = p;
    bad.top_p = NAN;
    bad.seed = 7;
    CHECK_FAILS(gm_sampler_configure(c, &bad, &err), GM_ERR_ARGUMENT, "top_p", &err);
    int cont = 1;
    for (int i = 1; i < 50; i++) cont &= first[i] == gm_sampler_sample(c, l, NULL, 0);
    CHECK(cont, "failed configure leaves params and RNG alone");
    gm_sampler_free(a);
    gm_sampler_free(b);
    gm_sampler_free(c);
}

static void test_validation(void) {
    gm_sampler *s = NULL;
    gm_error err;
    gm_sampler_params p = base_params();
    gm_logit_bias far[] = {{5, 1.0f}, {999999, 1.0f}};
    p.logit_bias = far;
    p.n_logit_bias = 2;
    CHECK_FAILS(gm_sampler_new(512, &p, &s, &err), GM_ERR_ARGUMENT,
                "logit_bias token 999999 out of range [0, 512)", &err);
    CHECK(s == NULL, "no sampler on error");
    far[1].token = -1;
    CHECK_FAILS(gm_sampler_new(512, &p, &s, &err), GM_ERR_ARGUMENT,
                "logit_bias token -1 out of range [0, 512)", &err);
    far[1] = (gm_logit_bias){7, NAN};
    CHECK_FAILS(gm_sampler_new(512, &p, &s, &err), GM_ERR_ARGUMENT, "logit_bias for token 7", &err);
    far[1].bias = INFINITY;
    CHECK_FAILS(gm_sampler_new(512, &p, &s, &err), GM_ERR_ARGUMENT, "logit_bias for token 7", &err);
    p.logit_bias = NULL;
    CHECK_FAILS(gm_sampler_new(512, &p, &s, &err), GM_ERR_ARGUMENT, "logit_bias is NULL", &err);

    const struct { int field; float value; const char *needle; } bad[] = {
        {0, NAN, "temperature must be finite (got nan)"},
        {0, INFINITY, "temperature must be finite (got inf)"},
        {1, NAN, "top_p must be >= 0"},
        {1, -0.1f, "top_p must be >= 0"},
        {2, NAN, "min_p must be <= 1"},
        {2, 1.5f, "min_p must be <= 1"},
        {3, 0, "repeat_penalty must be finite and > 0"},
        {3, -1, "repeat_penalty must be finite and > 0"},
        {3, NAN, "repeat_penalty"},
        {3, INFINITY, "repeat_penalty"},
        {4, -2, "repeat_last_n must be >= -1"},
    };
    for (size_t i = 0; i < GM_ARRAY_LEN(bad); i++) {
        gm_sampler_params q = base_params();
        float *fields[] = {&q.temperature, &q.top_p, &q.min_p, &q.repeat_penalty};
        if (bad[i].field < 4) *fields[bad[i].field] = bad[i].value;
        else q.repeat_last_n = (int32_t)bad[i].value;
        CHECK_FAILS(gm_sampler_new(16, &q, &s, &err), GM_ERR_ARGUMENT, bad[i].needle, &err);
        CHECK(s == NULL, "no sampler on error");
    }
    p = base_params();
    CHECK_FAILS(gm_sampler_new(0, &p, &s, &err), GM_ERR_ARGUMENT, "vocabulary size", &err);
    CHECK_FAILS(gm_sampler_new(16, NULL, &s, &err), GM_ERR_ARGUMENT, "NULL", &err);

    /* "Off" values are accepted. */
    p.top_k = -3;
    p.top_p = 7.0f;
    p.min_p = -1.0f;
    p.temperature = -2.0f;
    CHECK_OK(gm_sampler_new(16, &p, &s, &err), &err);
    gm_sampler_free(s);
    gm_sampler_free(NULL);
}

/* ------------------------------------------------------------------ */
/* Fast paths vs a brute-force full sort on a large vocabulary.        */
/* ------------------------------------------------------------------ */

/* Large enough that the top-p histogram (1025 buckets) and the heap do
 * real work; an eighth of Gemma's so the sanitizer build stays quick. */
#define BIG_VOCAB 32768
#define GEMMA_VOCAB 262144

typedef struct ref_cand { float l; int32_t id; } ref_cand;

static int ref_cmp(const void *pa, const void *pb) {
    const ref_cand *a = pa, *b = pb;
    if (a->l != b->l) return a->l > b->l ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* The final candidate set by definition (sampler.h) with a full sort;
 * marks in[] and returns its size. */
static size_t reference_set(const float *l, ref_cand *c, const gm_sampler_params *p,
                            unsigned char *in) {
    size_t n = 0;
    for (int32_t i = 0; i < BIG_VOCAB; i++)
        if (l[i] != -INFINITY) c[n++] = (ref_cand){l[i], i};
    qsort(c, n, sizeof *c, ref_cmp);
    if (p->top_k > 0 && (size_t)p->top_k < n) n = (size_t)p->top_k;
    if (p->top_p < 1) {
        double z = 0, cum = 0;
        for (size_t i = 0; i < n; i++) z += expf(c[i].l - c[0].l);
        for (size_t i = 0; i < n; i++) {
            cum += expf(c[i].l - c[0].l);
            if (cum >= p->top_p * z) { n = i + 1; break; }
        }
    }
    if (p->min_p > 0) {
        float thr = c[0].l + logf(p->min_p);
        size_t m = 1;
        while (m < n && c[m].l >= thr) m++;
        n = m;
    }
    memset(in, 0, BIG_VOCAB);
    for (size_t i = 0; i < n; i++) in[c[i].id] = 1;
    return n;
}

/* Background N(0, 2^2) over the whole vocabulary, 10 spikes at random ids
 * with logits 14..17 (carrying > 99% of the mass), some banned tokens. */
static void big_logits(float *l) {
    for (int32_t i = 0; i < BIG_VOCAB; i++) l[i] = (float)(2 * test_normal());
    for (int k = 0; k < 10; k++)
        l[(int32_t)(test_uniform() * BIG_VOCAB)] = 14 + 3 * (float)test_uniform();
    for (int k = 0; k < 100; k++) l[(int32_t)(test_uniform() * BIG_VOCAB)] = -INFINITY;
}

/* With T = 1e4 the draw is almost uniform over the final set, so 150
 * draws see every member of a set of <= 10 (miss chance < 1e-5; the
 * seeds are fixed, so the test is deterministic anyway). */
static void check_big(const float *l, gm_sampler_params p, ref_cand *rc, unsigned char *in,
                      const char *what) {
    size_t want = reference_set(l, rc, &p, in);
    p.temperature = 1e4f;
    gm_sampler *s = make(BIG_VOCAB, &p);
    if (!s) return;
    static unsigned char hit[BIG_VOCAB];
    memset(hit, 0, sizeof hit);
    size_t outside = 0, distinct = 0;
    for (int i = 0; i < 150; i++) {
        int32_t t = gm_sampler_sample(s, l, NULL, 0);
        if (t < 0 || !in[t]) outside++;
        else if (!hit[t]) {
            hit[t] = 1;
            distinct++;
        }
    }
    CHECK(want <= 10, "%s: test set too large (%zu)", what, want);
    CHECK(outside == 0 && distinct == want, "%s: %zu draws outside, %zu of %zu members seen",
          what, outside, distinct, want);
    gm_sampler_free(s);
}

static void test_big_vocab_exact(void) {
    float *l = malloc(BIG_VOCAB * sizeof *l);
    ref_cand *rc = malloc(BIG_VOCAB * sizeof *rc);
    unsigned char *in = malloc(BIG_VOCAB);
    if (!l || !rc || !in) { CHECK(0, "test OOM"); free(l); free(rc); free(in); return; }
    big_logits(l);
    const float ps[] = {0.0f, 0.3f, 0.6f, 0.9f};
    char what[96];
    for (size_t i = 0; i < GM_ARRAY_LEN(ps); i++) {
        gm_sampler_params p = base_params();
        p.top_p = ps[i];
        snprintf(what, sizeof what, "top_p %g", (double)ps[i]);
        check_big(l, p, rc, in, what);
        p.min_p = 0.2f;
        snprintf(what, sizeof what, "top_p %g + min_p 0.2", (double)ps[i]);
        check_big(l, p, rc, in, what);
        p.top_k = 4;
        snprintf(what, sizeof what, "top_k 4 + top_p %g + min_p 0.2", (double)ps[i]);
        check_big(l, p, rc, in, what);
    }
    gm_sampler_params p = base_params();
    p.min_p = 0.3f;
    check_big(l, p, rc, in, "min_p 0.3 alone");

    /* The cut inside a crowded bucket past the first: a top token at 10 and
     * 8 tokens within 0.02 of 9 (one histogram bucket), ties included;
     * top_p 0.5 keeps the top token and the first 3 of the cluster. */
    for (int32_t i = 0; i < BIG_VOCAB; i++) l[i] = (float)test_normal() - 5;
    l[BIG_VOCAB / 2] = 10.0f;
    for (int k = 0; k < 8; k++) l[1000 + 3000 * k] = 9.0f + 0.002f * (float)(k % 5);
    p = base_params();
    p.top_p = 0.5f;
    check_big(l, p, rc, in, "cut inside a crowded bucket");
    p.top_p = 0.8f;
    check_big(l, p, rc, in, "cut inside a crowded bucket, top_p 0.8");
    p.top_p = 1.0f;
    p.top_k = 4; /* the 4th and 5th tokens tie (9.004): the lower id is kept */
    check_big(l, p, rc, in, "top_k 4 cutting through a tie");
    free(l);
    free(rc);
    free(in);
}

/* Not a pass/fail check: with GM_SAMPLER_BENCH set in the environment,
 * prints the per-token cost at Gemma's vocabulary (use a Release build). */
static void bench(void) {
    if (!getenv("GM_SAMPLER_BENCH")) return;
    float *l = malloc(GEMMA_VOCAB * sizeof *l);
    if (!l) return;
    for (int32_t i = 0; i < GEMMA_VOCAB; i++) l[i] = (float)(3 * test_normal());
    int32_t hist[256];
    for (int i = 0; i < 256; i++) hist[i] = (int32_t)(test_uniform() * GEMMA_VOCAB);
    struct { const char *name; int top_k; float top_p, min_p, temp; } cfg[] = {
        {"greedy", 0, 1, 0, 0},
        {"top_k 64, top_p 0.95", 64, 0.95f, 0, 1},
        {"top_p 0.95 (no top_k)", 0, 0.95f, 0, 1},
        {"top_p 0.95, min_p 0.05", 0, 0.95f, 0.05f, 1},
        {"temperature only", 0, 1, 0, 1},
    };
    for (size_t c = 0; c < GM_ARRAY_LEN(cfg); c++) {
        gm_sampler_params p = base_params();
        p.top_k = cfg[c].top_k;
        p.top_p = cfg[c].top_p;
        p.min_p = cfg[c].min_p;
        p.temperature = cfg[c].temp;
        p.repeat_penalty = 1.1f;
        gm_sampler *s = make(GEMMA_VOCAB, &p);
        if (!s) continue;
        clock_t t0 = clock();
        int reps = 50;
        for (int r = 0; r < reps; r++) gm_sampler_sample(s, l, hist, 256);
        double us = 1e6 * (double)(clock() - t0) / CLOCKS_PER_SEC / reps;
        printf("  sample over %d: %-26s %8.1f us\n", GEMMA_VOCAB, cfg[c].name, us);
        gm_sampler_free(s);
    }
    free(l);
}

int main(void) {
    test_greedy();
    test_bias();
    test_penalty();
    test_top_k_1();
    test_masks();
    test_ties();
    test_seeding();
    test_validation();
    test_big_vocab_exact();
    bench();
    return gm_test_summary();
}
