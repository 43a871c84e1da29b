/* sampler.c - the sampling chain; sampler.h states the semantics and costs. */
#include "sampler.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

/* Top-p histogram: GM_BUCKETS_PER_UNIT buckets per logit unit of
 * (max - logit) over [0, GM_BUCKET_RANGE), plus one for everything farther
 * (mass <= n * e^-32 of the top token's, so that bucket is almost never
 * the one where the nucleus ends). */
#define GM_BUCKETS_PER_UNIT 32
#define GM_BUCKET_RANGE 32
#define GM_N_BUCKETS (GM_BUCKETS_PER_UNIT * GM_BUCKET_RANGE + 1)

typedef struct gm_cand {
    float logit;
    int32_t id;
} gm_cand;

struct gm_sampler {
    int32_t n_vocab;
    gm_sampler_params params;  /* params.logit_bias points at `bias` */
    gm_logit_bias *bias;       /* owned copy, params.n_logit_bias entries */
    uint64_t rng[4];           /* xoshiro256** state */
    float *work;               /* [n_vocab] logits after bias + penalty; later the draw weights */
    gm_cand *cand;             /* [n_vocab] candidates */
    uint8_t *seen;             /* [n_vocab] penalty dedupe marks, all zero between calls */
    double mass[GM_N_BUCKETS]; /* top-p histogram of exp(l - max) */
};

/* ------------------------------------------------------------------ */
/* PRNG: xoshiro256** (Blackman & Vigna), seeded through splitmix64.   */
/* ------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t st[4]) {
    uint64_t result = rotl64(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl64(st[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t st[4]) { return (double)(rng_next(st) >> 11) * 0x1.0p-53; }

/* ------------------------------------------------------------------ */
/* Lifecycle and validation                                           */
/* ------------------------------------------------------------------ */

static gm_status check_bias(int32_t n_vocab, const gm_sampler_params *p, gm_error *err) {
    if (p->n_logit_bias && !p->logit_bias)
        return gm_fail(err, GM_ERR_ARGUMENT, "logit_bias is NULL but n_logit_bias is %zu",
                       p->n_logit_bias);
    for (size_t i = 0; i < p->n_logit_bias; i++) {
        const gm_logit_bias *b = &p->logit_bias[i];
        if (b->token < 0 || b->token >= n_vocab)
            return gm_fail(err, GM_ERR_ARGUMENT, "logit_bias token %d out of range [0, %d)",
                           b->token, n_vocab);
        if (isnan(b->bias) || b->bias == INFINITY)
            return gm_fail(err, GM_ERR_ARGUMENT,
                           "logit_bias for token %d must be a number or -inf (got %g)", b->token,
                           (double)b->bias);
    }
    return GM_OK;
}

static gm_status check_params(int32_t n_vocab, const gm_sampler_params *p, gm_error *err) {
    if (!p) return gm_fail(err, GM_ERR_ARGUMENT, "sampler params are NULL");
    if (!isfinite(p->temperature))
        return gm_fail(err, GM_ERR_ARGUMENT, "temperature must be finite (got %g)",
                       (double)p->temperature);
    if (isnan(p->top_p) || p->top_p < 0)
        return gm_fail(err, GM_ERR_ARGUMENT, "top_p must be >= 0 (>= 1 is off) (got %g)",
                       (double)p->top_p);
    if (isnan(p->min_p) || p->min_p > 1)
        return gm_fail(err, GM_ERR_ARGUMENT, "min_p must be <= 1 (<= 0 is off) (got %g)",
                       (double)p->min_p);
    if (!isfinite(p->repeat_penalty) || p->repeat_penalty <= 0)
        return gm_fail(err, GM_ERR_ARGUMENT,
                       "repeat_penalty must be finite and > 0 (1 is off) (got %g)",
                       (double)p->repeat_penalty);
    if (p->repeat_last_n < -1)
        return gm_fail(err, GM_ERR_ARGUMENT,
                       "repeat_last_n must be >= -1 (-1 = whole context) (got %d)",
                       p->repeat_last_n);
    return check_bias(n_vocab, p, err);
}

void gm_sampler_reset(gm_sampler *s) {
    uint64_t x = s->params.seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
}

gm_status gm_sampler_configure(gm_sampler *s, const gm_sampler_params *p, gm_error *err) {
    gm_status st = check_params(s->n_vocab, p, err);
    if (st != GM_OK) return st;
    gm_logit_bias *copy = NULL;
    if (p->n_logit_bias) {
        size_t bytes;
        if (!gm_mul_size(p->n_logit_bias, sizeof *copy, &bytes) || !(copy = gm_malloc(bytes)))
            return gm_fail(err, GM_ERR_OUT_OF_MEMORY,
                           "sampler: out of memory copying %zu logit_bias entries",
                           p->n_logit_bias);
        memcpy(copy, p->logit_bias, bytes);
    }
    gm_free(s->bias);
    s->bias = copy;
    s->params = *p;
    s->params.logit_bias = copy;
    gm_sampler_reset(s);
    return GM_OK;
}

gm_status gm_sampler_new(int32_t n_vocab, const gm_sampler_params *p, gm_sampler **out,
                         gm_error *err) {
    *out = NULL;
    if (n_vocab <= 0)
        return gm_fail(err, GM_ERR_ARGUMENT, "sampler: vocabulary size must be > 0 (got %d)",
                       n_vocab);
    gm_status st = check_params(n_vocab, p, err);
    if (st != GM_OK) return st;
    gm_sampler *s = gm_calloc(1, sizeof *s);
    if (s) {
        s->n_vocab = n_vocab;
        s->work = gm_malloc((size_t)n_vocab * sizeof *s->work);
        s->cand = gm_malloc((size_t)n_vocab * sizeof *s->cand);
        s->seen = gm_calloc((size_t)n_vocab, 1);
    }
    if (!s || !s->work || !s->cand || !s->seen) {
        gm_sampler_free(s);
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "sampler: out of memory for a vocabulary of %d",
                       n_vocab);
    }
    st = gm_sampler_configure(s, p, err);
    if (st != GM_OK) {
        gm_sampler_free(s);
        return st;
    }
    *out = s;
    return GM_OK;
}

void gm_sampler_free(gm_sampler *s) {
    if (!s) return;
    gm_free(s->bias);
    gm_free(s->work);
    gm_free(s->cand);
    gm_free(s->seen);
    gm_free(s);
}

/* ------------------------------------------------------------------ */
/* Logit adjustments: bias, penalty, sanitising                        */
/* ------------------------------------------------------------------ */

static void apply_bias(gm_sampler *s) {
    for (size_t i = 0; i < s->params.n_logit_bias; i++)
        s->work[s->bias[i].token] += s->bias[i].bias;
}

/* Penalises each distinct in-range token of the window once (llama.cpp
 * llama_sampler_penalties_apply: logit <= 0 is multiplied, else divided). */
static void apply_penalty(gm_sampler *s, const int32_t *history, size_t n_history) {
    float pen = s->params.repeat_penalty;
    int32_t last_n = s->params.repeat_last_n;
    if (pen == 1.0f || last_n == 0 || !history || n_history == 0) return;
    size_t win = last_n < 0 ? n_history : GM_MIN(n_history, (size_t)last_n);
    const int32_t *h = history + (n_history - win);
    for (size_t i = 0; i < win; i++) {
        int32_t t = h[i];
        if (t < 0 || t >= s->n_vocab || s->seen[t]) continue;
        s->seen[t] = 1;
        s->work[t] = s->work[t] > 0 ? s->work[t] / pen : s->work[t] * pen;
    }
    for (size_t i = 0; i < win; i++)
        if (h[i] >= 0 && h[i] < s->n_vocab) s->seen[h[i]] = 0;
}

/* Max of w[0..n) ignoring NaN, in 8 independent lanes so that compilers
 * vectorise it (x > m ? x : m is exactly MAXPS). *special is set when a NaN
 * or +inf was seen, i.e. when sanitize() is needed. */
static float max_logit(const float *w, int32_t n, bool *special) {
    float m8[8];
    int nan8[8];
    for (int j = 0; j < 8; j++) {
        m8[j] = -INFINITY;
        nan8[j] = 0;
    }
    int32_t i = 0;
    for (; n - i >= 8; i += 8)
        for (int j = 0; j < 8; j++) {
            float x = w[i + j];
            m8[j] = x > m8[j] ? x : m8[j];
            nan8[j] |= x != x; /* only NaN differs from itself */
        }
    float m = -INFINITY;
    int nan = 0;
    for (int j = 0; j < 8; j++) {
        m = m8[j] > m ? m8[j] : m;
        nan |= nan8[j];
    }
    for (; i < n; i++) {
        m = w[i] > m ? w[i] : m;
        nan |= w[i] != w[i];
    }
    *special = nan || m == INFINITY;
    return m;
}

/* Rare path: NaN -> -inf (never a candidate), +inf -> FLT_MAX (so that
 * l - max stays a number). */
static void sanitize(float *w, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        if (isnan(w[i])) w[i] = -INFINITY;
        else if (w[i] > FLT_MAX) w[i] = FLT_MAX;
    }
}

/* Lowest id whose logit equals max (the greedy pick: ties -> lowest id). */
static int32_t first_index_of(const float *w, int32_t n, float max) {
    for (int32_t i = 0; i < n; i++)
        if (w[i] == max) return i;
    return -1;
}

/* ------------------------------------------------------------------ */
/* Candidate order and selection                                      */
/* ------------------------------------------------------------------ */

/* The candidate order: logit descending, then id ascending. */
static inline bool cand_before(gm_cand a, gm_cand b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

static int cand_cmp(const void *pa, const void *pb) {
    const gm_cand *a = pa, *b = pb;
    return cand_before(*a, *b) ? -1 : cand_before(*b, *a) ? 1 : 0;
}

static void cand_swap(gm_cand *a, gm_cand *b) {
    gm_cand t = *a;
    *a = *b;
    *b = t;
}

/* Heap whose root h[0] is the candidate that comes last in the order. */
static void heap_up(gm_cand *h, size_t i) {
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_before(h[parent], h[i])) return;
        cand_swap(&h[parent], &h[i]);
        i = parent;
    }
}

static void heap_down(gm_cand *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, last = i;
        if (l < n && cand_before(h[last], h[l])) last = l;
        if (r < n && cand_before(h[last], h[r])) last = r;
        if (last == i) return;
        cand_swap(&h[i], &h[last]);
        i = last;
    }
}

/* Lowest logit min-p keeps (-FLT_MAX when off: every finite logit). */
static float min_p_threshold(const gm_sampler_params *p, float max) {
    if (p->min_p <= 0) return -FLT_MAX;
    return fmaxf(max + logf(p->min_p), -FLT_MAX);
}

/* top-p on candidates sorted in the candidate order: the kept prefix length. */
static size_t top_p_sorted(const gm_cand *c, size_t n, float top_p) {
    if (top_p >= 1) return n;
    double z = 0, cum = 0;
    for (size_t i = 0; i < n; i++) z += expf(c[i].logit - c[0].logit);
    double target = (double)top_p * z;
    for (size_t i = 0; i < n; i++) {
        cum += expf(c[i].logit - c[0].logit);
        if (cum >= target) return i + 1;
    }
    return n;
}

/* top_k on: heap-select the first k finite candidates, sort them, then cut
 * by top-p and min-p (both prefixes of the sorted list). */
static size_t select_top_k(gm_sampler *s, float max) {
    size_t k = (size_t)s->params.top_k, n = 0;
    gm_cand *h = s->cand;
    const float *w = s->work;
    int32_t i = 0;
    for (; i < s->n_vocab && n < k; i++) /* fill */
        if (w[i] != -INFINITY) {
            h[n] = (gm_cand){w[i], i};
            heap_up(h, n++);
        }
    for (; i < s->n_vocab; i++) {
        /* Ids ascend, so an equal logit comes after the root: reject it too.
         * This test is all most tokens ever see. */
        if (w[i] <= h[0].logit) continue;
        h[0] = (gm_cand){w[i], i};
        heap_down(h, n, 0);
    }
    qsort(h, n, sizeof *h, cand_cmp);
    n = top_p_sorted(h, n, s->params.top_p);
    float thr = min_p_threshold(&s->params, max);
    size_t m = 1; /* h[0] holds the max, which min-p always keeps */
    while (m < n && h[m].logit >= thr) m++;
    return m;
}

/* Bucket of a token at distance d = max - logit >= 0 (d may be +inf). */
static inline int bucket_of(float d) {
    return d < GM_BUCKET_RANGE ? (int)(d * GM_BUCKETS_PER_UNIT) : GM_N_BUCKETS - 1;
}

/* Fills s->mass with the histogram of exp(l - max); returns the bucket b
 * where the cumulative mass first reaches top_p * Z, the mass of the
 * buckets before it in *before and the target in *target. */
static int nucleus_bucket(gm_sampler *s, float max, double *before, double *target) {
    memset(s->mass, 0, sizeof s->mass);
    for (int32_t i = 0; i < s->n_vocab; i++) {
        float l = s->work[i];
        if (l != -INFINITY) s->mass[bucket_of(max - l)] += expf(l - max);
    }
    double z = 0;
    for (int b = 0; b < GM_N_BUCKETS; b++) z += s->mass[b];
    /* Summed in the same order as z, so the walk reaches the target. */
    *target = (double)s->params.top_p * z;
    double cum = 0;
    int b = 0;
    while (b < GM_N_BUCKETS - 1 && cum + s->mass[b] < *target) cum += s->mass[b++];
    *before = cum;
    return b;
}

/* top_k off, top_p on (sampler.h): buckets before b are in the nucleus,
 * bucket b is sorted to find the exact cut, min-p filters the result.
 * Writes the final (unsorted) set to s->cand and returns its size. */
static size_t select_nucleus(gm_sampler *s, float max, float thr) {
    double cum, target;
    int b = nucleus_bucket(s, max, &cum, &target);
    gm_cand *c = s->cand;
    size_t front = 0, back = (size_t)s->n_vocab; /* sure ones at the front, bucket b at the back */
    for (int32_t i = 0; i < s->n_vocab; i++) {
        float l = s->work[i];
        if (l == -INFINITY) continue;
        int bk = bucket_of(max - l);
        if (bk < b && l >= thr) c[front++] = (gm_cand){l, i};
        else if (bk == b) c[--back] = (gm_cand){l, i};
    }
    size_t n_b = (size_t)s->n_vocab - back;
    qsort(c + back, n_b, sizeof *c, cand_cmp);
    for (size_t j = 0; j < n_b; j++) {
        gm_cand x = c[back + j]; /* front <= back + j: the move never overwrites unread entries */
        cum += expf(x.logit - max);
        if (x.logit >= thr) c[front++] = x;
        if (cum >= target) break;
    }
    return front;
}

/* top_k and top_p off: every finite token at or above the min-p threshold. */
static size_t select_threshold(gm_sampler *s, float thr) {
    size_t n = 0;
    for (int32_t i = 0; i < s->n_vocab; i++)
        if (s->work[i] >= thr) s->cand[n++] = (gm_cand){s->work[i], i};
    return n;
}

/* ------------------------------------------------------------------ */
/* Drawing                                                            */
/* ------------------------------------------------------------------ */

/* One draw from softmax((l - max) / T) over c[0..n); consumes exactly one
 * random number. The weights go to s->work (no longer needed by then). */
static int32_t draw(gm_sampler *s, const gm_cand *c, size_t n, float max) {
    double u = rng_uniform(s->rng);
    if (n == 1) return c[0].id;
    float t = s->params.temperature, *w = s->work;
    double z = 0;
    for (size_t i = 0; i < n; i++) {
        w[i] = expf((c[i].logit - max) / t);
        z += w[i];
    }
    double target = u * z, cum = 0;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i] <= 0) continue;
        cum += w[i];
        last = i;
        if (cum > target) return c[i].id;
    }
    return c[last].id; /* only when u * z rounded up to z */
}

int32_t gm_sampler_sample(gm_sampler *s, const float *logits, const int32_t *history,
                          size_t n_history) {
    memcpy(s->work, logits, (size_t)s->n_vocab * sizeof *s->work);
    apply_bias(s);
    apply_penalty(s, history, n_history);
    bool special;
    float max = max_logit(s->work, s->n_vocab, &special);
    if (special) {
        sanitize(s->work, s->n_vocab);
        max = max_logit(s->work, s->n_vocab, &special);
    }
    const gm_sampler_params *p = &s->params;
    if (max == -INFINITY) return -1; /* every token banned */
    if (p->temperature <= 0) return first_index_of(s->work, s->n_vocab, max);
    size_t n;
    if (p->top_k > 0 && p->top_k < s->n_vocab) n = select_top_k(s, max);
    else if (p->top_p < 1) n = select_nucleus(s, max, min_p_threshold(p, max));
    else n = select_threshold(s, min_p_threshold(p, max));
    return draw(s, s->cand, n, max);
}
