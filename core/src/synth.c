/*
 * synth.c - streamed, deterministic writer of random-weight Gemma 3n
 * checkpoints (HF layout, BF16). See synth.h for the contract and
 * shared/golden/full_size/make_synthetic_checkpoint.md for the format.
 *
 * Sections: random numbers -> value rules -> tensor-list TSV -> plan
 * (shards, headers, index) -> disk checks -> the generate/write pipeline ->
 * entry points.
 */
#define _POSIX_C_SOURCE 200809L
#include "synth.h"
#include "json.h"
#include "model.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#ifdef __clang__
#pragma STDC FP_CONTRACT OFF /* clang contracts a * b + c to an FMA by default: not bit-stable */
#endif

/* ------------------------------------------------------------------ */
/* Random numbers                                                     */
/* ------------------------------------------------------------------ */

/*
 * One block of GM_SYNTH_BLOCK elements is drawn from LANES independent
 * xoshiro256** generators run side by side (structure of arrays, so the
 * compiler can vectorize the lanes). Each 64-bit draw gives two normals by
 * Box-Muller. The lane states are seeded by splitmix64 from a hash of
 * (seed, tensor name) mixed with the block index, so any block can be
 * produced alone: threads split tensors freely and a value never depends on
 * what was generated before it.
 *
 * Layout inside a block: draw d = step * LANES + lane (the step-th output
 * of lane `lane`) gives element d (first Box-Muller output) and element
 * GM_SYNTH_BLOCK / 2 + d (second). Changing LANES, the block size, this
 * layout or any arithmetic below changes every checkpoint (test_synth pins
 * a checksum).
 */
#define LANES 8
#define DRAWS_PER_BLOCK (GM_SYNTH_BLOCK / 2)
#define STEPS_PER_BLOCK (DRAWS_PER_BLOCK / LANES)
_Static_assert(GM_SYNTH_BLOCK % (2 * LANES) == 0, "block must hold whole steps");

static inline uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* splitmix64 finalizer (Steele, Lea, Flood 2014): a bijective 64-bit mixer. */
static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static inline uint64_t splitmix64_next(uint64_t *state) {
    *state += 0x9E3779B97F4A7C15u;
    return mix64(*state);
}

/* Key of a tensor's streams: FNV-1a of the name mixed with the seed. */
static uint64_t tensor_key(uint64_t seed, const char *name) {
    uint64_t h = 0xCBF29CE484222325u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001B3u;
    }
    return mix64(mix64(seed ^ 0x5851F42D4C957F2Du) ^ h);
}

static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/*
 * Natural log of a positive normal float, Cephes logf (about 1 ulp), written
 * without branches so that the Box-Muller loop vectorizes. Our own
 * polynomial rather than libm: the bytes must not depend on the libm.
 */
static inline float ln_pos(float x) {
    uint32_t b = f2u(x);
    float e = (float)((int32_t)(b >> 23) - 126);       /* x = m * 2^e, m in [0.5, 1) */
    float m = u2f((b & 0x007FFFFFu) | 0x3F000000u);
    float small = u2f((0u - (uint32_t)(m < 0.70710678118654752f)) & 0x3F800000u); /* 1.0f or 0.0f */
    e = e - small;
    m = m + m * small - 1.0f;                           /* m in [sqrt(.5) - 1, sqrt(2) - 1) */
    float z = m * m;
    float y = 7.0376836292e-2f;
    y = y * m - 1.1514610310e-1f;
    y = y * m + 1.1676998740e-1f;
    y = y * m - 1.2420140846e-1f;
    y = y * m + 1.4249322787e-1f;
    y = y * m - 1.6668057665e-1f;
    y = y * m + 2.0000714765e-1f;
    y = y * m - 2.4999993993e-1f;
    y = y * m + 3.3333331174e-1f;
    y = y * m * z;
    y += -2.12194440e-4f * e;
    y += -0.5f * z;
    return m + y + 0.693359375f * e;
}

/*
 * sqrt of a finite x >= 0 to about 2e-6 (relative; bf16 keeps 4e-3): the
 * reciprocal square root of Moroz et al. 2018 ("Fast calculation of inverse
 * square root with the use of magic constant", InvSqrt1: 9e-4) plus one
 * Newton step. sqrtf would do, but its errno path keeps GCC from vectorizing
 * the loop without -fno-math-errno.
 */
static inline float sqrt_pos(float x) {
    float y = u2f(0x5F1FFFF9u - (f2u(x) >> 1));
    y = y * (0.703952253f * (2.38924456f - x * y * y));
    y = y * (1.5f - 0.5f * x * y * y);
    return x * y;
}

/*
 * Box-Muller from one 64-bit draw r:
 *   u1    = 24 high bits, centred in (0, 1)       -> radius sqrt(-2 ln u1) (max ~5.9)
 *   angle = quadrant (2 bits) * pi/2 + x, x uniform in (-pi/4, pi/4) from 22 bits,
 * so sin/cos need only short Cephes polynomials on [-pi/4, pi/4] and the
 * quadrant turns into a swap and sign flips. (z0, z1) are two independent
 * N(0,1) samples (up to the 24-bit resolution of u1).
 */
static inline void box_muller(uint64_t r, float *z0, float *z1) {
    uint32_t hi = (uint32_t)(r >> 32), lo = (uint32_t)r;
    float u1 = ((float)(int32_t)(hi >> 8) + 0.5f) * 0x1p-24f;
    uint32_t q = hi & 3u;
    float x = (((float)(int32_t)(lo >> 10) + 0.5f) * 0x1p-22f - 0.5f) * 1.57079632679489662f;
    float rad = sqrt_pos(-2.0f * ln_pos(u1));
    float xx = x * x;
    float s = ((-1.9515295891e-4f * xx + 8.3321608736e-3f) * xx - 1.6666654611e-1f) * xx * x + x;
    float c = ((2.443315711809948e-5f * xx - 1.388731625493765e-3f) * xx + 4.166664568298827e-2f)
                  * xx * xx - 0.5f * xx + 1.0f;
    /* quadrant q: (c,s) (-s,c) (-c,-s) (s,-c); masks, not branches, so that it vectorizes */
    uint32_t swap = 0u - (q & 1u), us = f2u(s), uc = f2u(c);
    float a = u2f((us & swap) | (uc & ~swap)), b = u2f((uc & swap) | (us & ~swap));
    *z0 = u2f(f2u(rad * a) ^ (((q + 1u) & 2u) << 30));
    *z1 = u2f(f2u(rad * b) ^ ((q & 2u) << 30));
}

/* Block `block` of the tensor keyed `key`: out[i] = mean + scale * N(0,1). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline void gen_block_body(uint64_t key, uint64_t block, float mean, float scale, float *out) {
    uint64_t s0[LANES], s1[LANES], s2[LANES], s3[LANES], r[DRAWS_PER_BLOCK];
    uint64_t sm = key ^ mix64(block + 0x632BE59BD9B4E019u);
    for (int l = 0; l < LANES; l++) {
        s0[l] = splitmix64_next(&sm);
        s1[l] = splitmix64_next(&sm);
        s2[l] = splitmix64_next(&sm);
        s3[l] = splitmix64_next(&sm);
    }
    for (int step = 0; step < STEPS_PER_BLOCK; step++) {
        for (int l = 0; l < LANES; l++) { /* xoshiro256** (Blackman, Vigna 2018) */
            uint64_t x5 = (s1[l] << 2) + s1[l], x = rotl64(x5, 7); /* shifts: SSE2 has no 64-bit multiply */
            r[step * LANES + l] = (x << 3) + x;
            uint64_t t = s1[l] << 17;
            s2[l] ^= s0[l];
            s3[l] ^= s1[l];
            s1[l] ^= s2[l];
            s0[l] ^= s3[l];
            s2[l] ^= t;
            s3[l] = rotl64(s3[l], 45);
        }
    }
    for (int d = 0; d < DRAWS_PER_BLOCK; d++) {
        float z0, z1;
        box_muller(r[d], &z0, &z1);
        out[d] = mean + scale * z0;
        out[DRAWS_PER_BLOCK + d] = mean + scale * z1;
    }
}

/*
 * gen_block is most of the run time, so on x86-64 it is also compiled for
 * AVX2 and AVX-512 (2.3x faster than SSE2) and chosen by a CPU check at the
 * start of each write (a plain function pointer: no ifunc resolver, which
 * would run before sanitizer runtimes start). Every variant performs the
 * same IEEE operations in the same order - no libm, no reassociation, no
 * FMA contraction (off in GCC's ISO C mode, -std=c11, as CMake and setup.py
 * compile; clang is told by the pragma at the top) - so the bytes do not
 * depend on the CPU. test_synth pins a checksum.
 */
typedef void (*gen_block_fn)(uint64_t key, uint64_t block, float mean, float scale, float *out);

static void gen_block_generic(uint64_t key, uint64_t block, float mean, float scale, float *out) {
    gen_block_body(key, block, mean, scale, out);
}

#if defined(__GNUC__) && defined(__x86_64__) && (defined(__clang__) || defined(__STRICT_ANSI__)) && \
    !defined(GM_SYNTH_GENERIC_ONLY)
#define GM_SYNTH_X86_VARIANTS 1
__attribute__((target("avx2"))) static void gen_block_avx2(uint64_t key, uint64_t block, float mean,
                                                             float scale, float *out) {
    gen_block_body(key, block, mean, scale, out);
}

__attribute__((target("avx512f"))) static void gen_block_avx512(uint64_t key, uint64_t block, float mean,
                                                                 float scale, float *out) {
    gen_block_body(key, block, mean, scale, out);
}
#endif

static gen_block_fn pick_gen_block(void) {
#ifdef GM_SYNTH_X86_VARIANTS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return gen_block_avx512;
    if (__builtin_cpu_supports("avx2")) return gen_block_avx2;
#endif
    return gen_block_generic;
}

/* f32 -> bf16, round to nearest even (inputs are finite); same bits as gm_f32_to_bf16. */
static void to_bf16(const float *src, uint16_t *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u = f2u(src[i]);
        dst[i] = (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
    }
}

/* ------------------------------------------------------------------ */
/* Value rules (spec section 4)                                       */
/* ------------------------------------------------------------------ */

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

void gm_synth_rule(const char *name, int ndim, const int64_t *shape, float *mean, float *scale) {
    static const struct { const char *suffix; float mean, scale; } fixed[] = {
        {"altup.correct_output_scale", 1.0f, 0.3f},
        {"altup.prediction_coefs.weight", 0.0f, 0.1f},
        {"altup.correction_coefs.weight", 0.0f, 0.1f},
        {"self_attn.q_norm.weight", 0.5f, 0.1f},
        {"self_attn.k_norm.weight", 0.5f, 0.1f},
        {"attn.per_dim_scale", 0.0f, 0.5f},        /* audio; passed through softplus */
        {"layer_scale.gamma", 0.5f, 0.1f},         /* vision */
        {"embed_tokens.weight", 0.0f, 0.3f},       /* the forward scales by sqrt(dim) */
        {"embed_tokens_per_layer.weight", 0.0f, 0.3f},
        {"embed_audio.embedding.weight", 0.0f, 1.0f},
        {"embed_vision.embedding.weight", 0.0f, 1.0f},
    };
    for (size_t i = 0; i < GM_ARRAY_LEN(fixed); i++) {
        if (ends_with(name, fixed[i].suffix)) {
            *mean = fixed[i].mean;
            *scale = fixed[i].scale;
            return;
        }
    }
    *mean = 0.0f;
    if (ends_with(name, "altup.modality_router.weight") && ndim >= 1) {
        /* [K, H]: the router input is scaled by 1/H upstream. */
        *scale = (float)sqrt((double)shape[ndim - 1]);
    } else if (ends_with(name, ".bias")) {
        *scale = 0.1f;
    } else if (ndim <= 1) {
        /* Norm scales (Gemma 3n multiplies by w, not 1 + w) and any other 1-D scale. */
        *mean = 1.0f;
        *scale = 0.2f;
    } else {
        double fan_in = 1.0; /* Linear [out, in]; conv [out, in/groups, k...] */
        for (int d = 1; d < ndim; d++) fan_in *= (double)shape[d];
        *scale = (float)(1.0 / sqrt(fan_in > 0 ? fan_in : 1.0));
    }
}

void gm_synth_values(uint64_t seed, const char *name, int ndim, const int64_t *shape,
                     uint64_t start, size_t count, float *out) {
    float mean, scale, block_buf[GM_SYNTH_BLOCK];
    gm_synth_rule(name, ndim, shape, &mean, &scale);
    uint64_t key = tensor_key(seed, name);
    gen_block_fn gen_block = pick_gen_block();
    while (count > 0) {
        uint64_t block = start / GM_SYNTH_BLOCK;
        size_t off = (size_t)(start % GM_SYNTH_BLOCK);
        size_t n = GM_MIN(count, (size_t)GM_SYNTH_BLOCK - off);
        gen_block(key, block, mean, scale, block_buf);
        memcpy(out, block_buf + off, n * sizeof *out);
        out += n;
        start += n;
        count -= n;
    }
}

/* ------------------------------------------------------------------ */
/* Tensor-list TSV                                                    */
/* ------------------------------------------------------------------ */

/* Parses a non-negative decimal int64 at *p; advances *p. */
static bool parse_i64(const char **p, int64_t *out) {
    const char *s = *p;
    if (*s < '0' || *s > '9') return false;
    int64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (INT64_MAX - (*s - '0')) / 10) return false;
        v = v * 10 + (*s - '0');
    }
    *p = s;
    *out = v;
    return true;
}

static void skip_spaces(const char **p) {
    while (**p == ' ') (*p)++;
}

/* "[a, b, ...]" (JSON list of non-negative integers) -> t->shape. */
static bool parse_shape(const char *s, gm_synth_tensor *t) {
    t->ndim = 0;
    skip_spaces(&s);
    if (*s++ != '[') return false;
    skip_spaces(&s);
    if (*s == ']') return s[1 + strspn(s + 1, " ")] == '\0';
    for (;;) {
        if (t->ndim == GM_SYNTH_MAX_DIMS || !parse_i64(&s, &t->shape[t->ndim])) return false;
        t->ndim++;
        skip_spaces(&s);
        if (*s == ']') break;
        if (*s++ != ',') return false;
        skip_spaces(&s);
    }
    s++;
    skip_spaces(&s);
    return *s == '\0';
}

/* numel of a shape, or -1 when the byte size (2 * numel) would overflow int64. */
static int64_t shape_numel(const gm_synth_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0) return -1;
        if (t->shape[d] != 0 && n > INT64_MAX / 2 / t->shape[d]) return -1;
        n *= t->shape[d];
    }
    return n;
}

#define GM_SYNTH_NAME_MAX 160

static void add_text_tensor(gm_synth_list *l, const char *name, int ndim, int64_t d0, int64_t d1) {
    char *dst = l->text + l->n * GM_SYNTH_NAME_MAX;
    snprintf(dst, GM_SYNTH_NAME_MAX, "model.language_model.%s", name);
    l->tensors[l->n++] = (gm_synth_tensor){.name = dst, .ndim = ndim, .shape = {d0, d1}};
}

gm_status gm_synth_text_tensors(const gm_text_config *c, gm_synth_list *out, gm_error *err) {
    static const int per_layer = 24;
    const int64_t H = c->hidden_size, P = c->hidden_size_per_layer_input, L = c->num_layers, K = c->altup_num_inputs;
    const int64_t q = (int64_t)c->num_heads * c->head_dim, kv = (int64_t)c->num_kv_heads * c->head_dim;
    const int64_t r = c->laurel_rank;
    const size_t cap = 5 + 2 * (size_t)GM_MAX(K - 1, 0) + (size_t)per_layer * (size_t)L;
    memset(out, 0, sizeof *out);
    out->tensors = gm_calloc(cap, sizeof *out->tensors);
    out->text = gm_calloc(cap, GM_SYNTH_NAME_MAX);
    if (!out->tensors || !out->text) {
        gm_synth_list_free(out);
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    }
    char n[96];
    add_text_tensor(out, "embed_tokens.weight", 2, c->vocab_size, H);
    add_text_tensor(out, "embed_tokens_per_layer.weight", 2, c->vocab_size_per_layer_input, L * P);
    add_text_tensor(out, "per_layer_model_projection.weight", 2, L * P, H);
    add_text_tensor(out, "per_layer_projection_norm.weight", 1, P, 0);
    add_text_tensor(out, "norm.weight", 1, H, 0);
    for (int i = 0; i + 1 < K; i++) {
        snprintf(n, sizeof n, "altup_projections.%d.weight", i);
        add_text_tensor(out, n, 2, H, H);
        snprintf(n, sizeof n, "altup_unembed_projections.%d.weight", i);
        add_text_tensor(out, n, 2, H, H);
    }
    for (int i = 0; i < L; i++) {
        const int64_t F = c->intermediate_size[i];
        const struct { const char *s; int nd; int64_t a, b; } per[] = {
            {"self_attn.q_proj.weight", 2, q, H}, {"self_attn.k_proj.weight", 2, kv, H},
            {"self_attn.v_proj.weight", 2, kv, H}, {"self_attn.o_proj.weight", 2, H, q},
            {"self_attn.q_norm.weight", 1, c->head_dim, 0}, {"self_attn.k_norm.weight", 1, c->head_dim, 0},
            {"mlp.gate_proj.weight", 2, F, H}, {"mlp.up_proj.weight", 2, F, H}, {"mlp.down_proj.weight", 2, H, F},
            {"input_layernorm.weight", 1, H, 0}, {"post_attention_layernorm.weight", 1, H, 0},
            {"pre_feedforward_layernorm.weight", 1, H, 0}, {"post_feedforward_layernorm.weight", 1, H, 0},
            {"altup.correct_output_scale", 1, H, 0}, {"altup.correction_coefs.weight", 2, K, K},
            {"altup.prediction_coefs.weight", 2, K * K, K}, {"altup.modality_router.weight", 2, K, H},
            {"altup.router_norm.weight", 1, H, 0}, {"laurel.linear_left.weight", 2, r, H},
            {"laurel.linear_right.weight", 2, H, r}, {"laurel.post_laurel_norm.weight", 1, H, 0},
            {"per_layer_input_gate.weight", 2, P, H}, {"per_layer_projection.weight", 2, H, P},
            {"post_per_layer_input_norm.weight", 1, H, 0}};
        _Static_assert(GM_ARRAY_LEN(per) == 24, "per_layer counts these");
        for (size_t k = 0; k < GM_ARRAY_LEN(per); k++) {
            snprintf(n, sizeof n, "layers.%d.%s", i, per[k].s);
            add_text_tensor(out, n, per[k].nd, per[k].a, per[k].b);
        }
    }
    return GM_OK;
}

void gm_synth_list_free(gm_synth_list *list) {
    if (!list) return;
    gm_free(list->tensors);
    gm_free(list->text);
    memset(list, 0, sizeof *list);
}

/* One data line "name\tshape\tnumel" (modified in place: the name is NUL-terminated). */
static gm_status parse_tsv_line(char *line, const char *path, int line_no, gm_synth_tensor *t,
                                gm_error *err) {
    char *tab1 = strchr(line, '\t');
    char *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
    if (!tab2 || tab1 == line)
        return gm_fail(err, GM_ERR_FORMAT, "%s:%d: expected name<TAB>shape<TAB>numel", path, line_no);
    *tab1 = *tab2 = '\0';
    t->name = line;
    if (!parse_shape(tab1 + 1, t))
        return gm_fail(err, GM_ERR_FORMAT, "%s:%d: bad shape '%s' (a JSON list of at most %d sizes)",
                       path, line_no, tab1 + 1, GM_SYNTH_MAX_DIMS);
    const char *p = tab2 + 1;
    int64_t numel;
    if (!parse_i64(&p, &numel) || *p != '\0' || numel != shape_numel(t))
        return gm_fail(err, GM_ERR_FORMAT, "%s:%d: numel '%s' does not match the shape of %s",
                       path, line_no, tab2 + 1, line);
    return GM_OK;
}

gm_status gm_synth_read_tsv(const char *path, gm_synth_list *out, gm_error *err) {
    memset(out, 0, sizeof *out);
    size_t size;
    gm_status st = gm_read_file(path, &out->text, &size, err);
    if (st != GM_OK) return st;
    size_t cap = 1;
    for (size_t i = 0; i < size; i++) cap += out->text[i] == '\n';
    out->tensors = gm_calloc(cap, sizeof *out->tensors);
    if (!out->tensors) {
        gm_synth_list_free(out);
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    int64_t declared_total = -1, sum = 0;
    int line_no = 0;
    char *line = out->text;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        size_t len = strlen(line);
        if (len > 0 && line[len - 1] == '\r') line[--len] = '\0';
        line_no++;
        static const char total_tag[] = "# TOTAL stored params";
        if (strncmp(line, total_tag, sizeof total_tag - 1) == 0) {
            const char *p = line + sizeof total_tag - 1;
            while (*p == '\t' || *p == ' ') p++;
            if (!parse_i64(&p, &declared_total)) declared_total = -1;
        } else if (len > 0 && line[0] != '#' && strncmp(line, "name\t", 5) != 0) {
            gm_synth_tensor *t = &out->tensors[out->n];
            if ((st = parse_tsv_line(line, path, line_no, t, err)) != GM_OK) {
                gm_synth_list_free(out);
                return st;
            }
            sum += shape_numel(t);
            if (sum < 0) {
                gm_synth_list_free(out);
                return gm_fail(err, GM_ERR_FORMAT, "%s: total size overflows", path);
            }
            out->n++;
        }
        line = nl ? nl + 1 : NULL;
    }
    if (declared_total >= 0 && declared_total != sum) {
        gm_synth_list_free(out);
        return gm_fail(err, GM_ERR_FORMAT,
                       "%s: the tensors add up to %lld parameters but the file says TOTAL %lld", path,
                       (long long)sum, (long long)declared_total);
    }
    return GM_OK;
}

/* ------------------------------------------------------------------ */
/* Plan: shards, headers, index                                       */
/* ------------------------------------------------------------------ */

typedef struct shard {
    size_t first, count;   /* tensors [first, first + count) of the list */
    uint64_t data_bytes;
    char file[64];         /* model-0000i-of-0000K.safetensors */
    gm_buf header;         /* JSON header, space-padded to a multiple of 8 */
} shard;

typedef struct plan {
    const gm_synth_tensor *t;
    size_t n;
    uint64_t *nbytes;      /* per tensor */
    shard *shards;
    int n_shards;
    uint64_t total_bytes;  /* tensor data over all shards (index total_size) */
    gm_buf index;          /* model.safetensors.index.json text */
} plan;

static void plan_free(plan *p) {
    for (int i = 0; i < p->n_shards; i++) gm_buf_free(&p->shards[i].header);
    gm_free(p->shards);
    gm_free(p->nbytes);
    gm_buf_free(&p->index);
    memset(p, 0, sizeof *p);
}

/* Names go into JSON unescaped, so only printable ASCII without '"' and '\\'. */
static bool valid_name(const char *s) {
    if (!*s || strcmp(s, "__metadata__") == 0) return false;
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7E || *s == '"' || *s == '\\') return false;
    return true;
}

typedef struct named {
    const char *name;
    size_t index;          /* position in the list */
} named;

static int cmp_named(const void *a, const void *b) {
    return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

/* The list's names sorted (byte order = code point order, as Python's sort_keys); NULL on OOM. */
static named *sorted_names(const gm_synth_tensor *t, size_t n) {
    named *v = gm_malloc(n * sizeof *v);
    if (!v) return NULL;
    for (size_t i = 0; i < n; i++) v[i] = (named){t[i].name, i};
    qsort(v, n, sizeof *v, cmp_named);
    return v;
}

static gm_status check_list(plan *p, gm_error *err) {
    if (p->n == 0) return gm_fail(err, GM_ERR_ARGUMENT, "synthetic checkpoint: empty tensor list");
    p->nbytes = gm_malloc(p->n * sizeof *p->nbytes);
    if (!p->nbytes) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "synthetic checkpoint: out of memory");
    for (size_t i = 0; i < p->n; i++) {
        const gm_synth_tensor *t = &p->t[i];
        if (!t->name || !valid_name(t->name))
            return gm_fail(err, GM_ERR_ARGUMENT, "synthetic checkpoint: tensor %zu has an invalid name '%s'",
                           i, t->name ? t->name : "(null)");
        int64_t numel = t->ndim < 0 || t->ndim > GM_SYNTH_MAX_DIMS ? -1 : shape_numel(t);
        if (numel < 0 || (uint64_t)numel * 2 > UINT64_MAX / 2 - p->total_bytes)
            return gm_fail(err, GM_ERR_ARGUMENT, "synthetic checkpoint: %s: bad or too large shape", t->name);
        p->nbytes[i] = (uint64_t)numel * 2;
        p->total_bytes += p->nbytes[i];
    }
    return GM_OK;
}

/* Splits the list into shards: a new shard when the next tensor would pass the budget. */
static gm_status plan_shards(plan *p, uint64_t budget, gm_error *err) {
    int k = 0;
    uint64_t size = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (i == 0 || size + p->nbytes[i] > budget) { k++; size = 0; }
        size += p->nbytes[i];
    }
    if (k > 99999) return gm_fail(err, GM_ERR_ARGUMENT, "synthetic checkpoint: %d shards (max 99999): raise the shard budget", k);
    p->shards = gm_calloc((size_t)k, sizeof *p->shards);
    if (!p->shards) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "synthetic checkpoint: out of memory");
    p->n_shards = k;
    int s = -1;
    for (size_t i = 0; i < p->n; i++) {
        if (s < 0 || p->shards[s].data_bytes + p->nbytes[i] > budget) {
            s++;
            p->shards[s].first = i;
            snprintf(p->shards[s].file, sizeof p->shards[s].file, "model-%05d-of-%05d.safetensors", s + 1, k);
        }
        p->shards[s].count++;
        p->shards[s].data_bytes += p->nbytes[i];
    }
    return GM_OK;
}

/* {"name":{"dtype":"BF16","shape":[..],"data_offsets":[b,e]},...,"__metadata__":{"format":"pt"}} */
static bool build_header(const plan *p, shard *sh) {
    gm_buf *b = &sh->header;
    uint64_t off = 0;
    bool ok = gm_buf_append(b, "{", 1);
    for (size_t i = sh->first; ok && i < sh->first + sh->count; i++) {
        const gm_synth_tensor *t = &p->t[i];
        ok = gm_buf_printf(b, "\"%s\":{\"dtype\":\"BF16\",\"shape\":[", t->name);
        for (int d = 0; ok && d < t->ndim; d++) ok = gm_buf_printf(b, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        ok = ok && gm_buf_printf(b, "],\"data_offsets\":[%llu,%llu]},", (unsigned long long)off,
                                 (unsigned long long)(off + p->nbytes[i]));
        off += p->nbytes[i];
    }
    ok = ok && gm_buf_printf(b, "\"__metadata__\":{\"format\":\"pt\"}}");
    while (ok && b->len % 8 != 0) ok = gm_buf_append(b, " ", 1);
    return ok;
}

/* As transformers: json.dumps(index, indent=2, sort_keys=True) + "\n". */
static bool build_index(plan *p, const named *sorted) {
    int *shard_of = gm_malloc(p->n * sizeof *shard_of);
    if (!shard_of) return false;
    for (int k = 0; k < p->n_shards; k++)
        for (size_t i = 0; i < p->shards[k].count; i++) shard_of[p->shards[k].first + i] = k;
    gm_buf *b = &p->index;
    bool ok = gm_buf_printf(b, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {\n",
                            (unsigned long long)p->total_bytes);
    for (size_t i = 0; ok && i < p->n; i++)
        ok = gm_buf_printf(b, "    \"%s\": \"%s\"%s\n", sorted[i].name, p->shards[shard_of[sorted[i].index]].file,
                           i + 1 < p->n ? "," : "");
    ok = ok && gm_buf_printf(b, "  }\n}\n");
    gm_free(shard_of);
    return ok;
}

/* Checks the list and lays out shards, headers and the index (all in memory, a few hundred KB). */
static gm_status plan_build(plan *p, const gm_synth_tensor *t, size_t n, uint64_t budget, gm_error *err) {
    memset(p, 0, sizeof *p);
    p->t = t;
    p->n = n;
    gm_status st = check_list(p, err);
    if (st != GM_OK) return st;
    named *sorted = sorted_names(t, n);
    if (!sorted) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "synthetic checkpoint: out of memory");
    for (size_t i = 1; i < n; i++) {
        if (strcmp(sorted[i - 1].name, sorted[i].name) == 0) {
            st = gm_fail(err, GM_ERR_ARGUMENT, "synthetic checkpoint: tensor %s listed twice", sorted[i].name);
            break;
        }
    }
    if (st == GM_OK) st = plan_shards(p, budget, err);
    for (int k = 0; st == GM_OK && k < p->n_shards; k++)
        if (!build_header(p, &p->shards[k])) st = gm_fail(err, GM_ERR_OUT_OF_MEMORY, "synthetic checkpoint: out of memory");
    if (st == GM_OK && !build_index(p, sorted))
        st = gm_fail(err, GM_ERR_OUT_OF_MEMORY, "synthetic checkpoint: out of memory");
    gm_free(sorted);
    return st;
}

/* ------------------------------------------------------------------ */
/* Output directory and disk space                                    */
/* ------------------------------------------------------------------ */

/* Bytes a file we are about to overwrite occupies (freed when it is truncated). */
static uint64_t reclaimable(const char *dir, const char *name) {
    char *path = gm_path_join(dir, name);
    struct stat st;
    uint64_t n = 0;
    if (path && stat(path, &st) == 0 && S_ISREG(st.st_mode)) n = (uint64_t)st.st_blocks * 512u;
    gm_free(path);
    return n;
}

/* Fails before anything is written when the checkpoint would not fit. */
static gm_status check_space(const plan *p, const char *dir, size_t config_len, gm_error *err) {
    const uint64_t slack = 1u << 16; /* per file: block rounding, metadata */
    uint64_t need = config_len + p->index.len + 2 * slack;
    uint64_t reclaim = reclaimable(dir, "config.json") + reclaimable(dir, "model.safetensors.index.json");
    for (int k = 0; k < p->n_shards; k++) {
        need += 8 + p->shards[k].header.len + p->shards[k].data_bytes + slack;
        reclaim += reclaimable(dir, p->shards[k].file);
    }
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0)
        return gm_fail(err, GM_ERR_IO, "%s: cannot query free space: %s", dir, strerror(errno));
    uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    if (need > avail + reclaim)
        return gm_fail(err, GM_ERR_IO,
                       "%s: not enough free disk space: the checkpoint needs %.2f GB, %.2f GB are available",
                       dir, (double)need / 1e9, (double)(avail + reclaim) / 1e9);
    return GM_OK;
}

static gm_status ensure_dir(const char *dir, gm_error *err) {
    if (gm_is_directory(dir)) return GM_OK;
    if (mkdir(dir, 0777) != 0)
        return gm_fail(err, GM_ERR_IO, "%s: cannot create the output directory: %s", dir, strerror(errno));
    return GM_OK;
}

/* Writes dir/name atomically (through name.tmp + rename). */
static gm_status write_small_file(const char *dir, const char *name, const char *data, size_t len,
                                  gm_error *err) {
    char tmp_name[256];
    snprintf(tmp_name, sizeof tmp_name, "%s.tmp", name);
    char *path = gm_path_join(dir, name), *tmp = gm_path_join(dir, tmp_name);
    gm_status st = GM_OK;
    FILE *f = path && tmp ? fopen(tmp, "wb") : NULL;
    if (!path || !tmp) st = gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", name);
    else if (!f) st = gm_fail(err, GM_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    else {
        bool ok = fwrite(data, 1, len, f) == len;
        int e = errno;
        if (fclose(f) != 0 && ok) { ok = false; e = errno; }
        if (!ok) st = gm_fail(err, GM_ERR_IO, "%s: write failed: %s", tmp, strerror(e));
        else if (rename(tmp, path) != 0)
            st = gm_fail(err, GM_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        if (st != GM_OK) remove(tmp);
    }
    gm_free(path);
    gm_free(tmp);
    return st;
}

/* ------------------------------------------------------------------ */
/* Shard writer (calling thread)                                      */
/* ------------------------------------------------------------------ */

typedef struct writer {
    const plan *p;
    const char *dir;
    int shard;             /* open shard, -1 before the first */
    FILE *f;
    char *path;            /* of the open shard */
    uint64_t written;      /* tensor bytes over all shards */
} writer;

static gm_status writer_fail(writer *w, const char *what, int e, gm_error *err) {
    gm_status st = gm_fail(err, GM_ERR_IO, "%s: %s: %s", w->path ? w->path : w->dir, what, strerror(e));
    if (w->f) {
        fclose(w->f);
        w->f = NULL;
        remove(w->path); /* a partial shard only wastes space: the index is never written */
    }
    return st;
}

static gm_status writer_close(writer *w, gm_error *err) {
    if (!w->f) return GM_OK;
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f) != 0) {
        int e = errno;
        gm_status st = gm_fail(err, GM_ERR_IO, "%s: write failed: %s", w->path, strerror(e));
        remove(w->path);
        return st;
    }
    return GM_OK;
}

/* Closes the open shard and starts the next: 8-byte LE header length, then the header. */
static gm_status writer_next_shard(writer *w, gm_error *err) {
    gm_status st = writer_close(w, err);
    if (st != GM_OK) return st;
    const shard *sh = &w->p->shards[++w->shard];
    gm_free(w->path);
    w->path = gm_path_join(w->dir, sh->file);
    if (!w->path) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", w->dir);
    w->f = fopen(w->path, "wb");
    if (!w->f) return writer_fail(w, "cannot create", errno, err);
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)sh->header.len >> (8 * i));
    if (fwrite(len, 1, 8, w->f) != 8 || fwrite(sh->header.data, 1, sh->header.len, w->f) != sh->header.len)
        return writer_fail(w, "write failed", errno, err);
    return GM_OK;
}

/* Appends `n` elements of tensor `tensor`, opening shards up to the one that holds it. */
static gm_status writer_put(writer *w, size_t tensor, const uint16_t *data, size_t n, gm_error *err) {
    while (w->shard < 0 || tensor >= w->p->shards[w->shard].first + w->p->shards[w->shard].count) {
        gm_status st = writer_next_shard(w, err);
        if (st != GM_OK) return st;
    }
    if (fwrite(data, 2, n, w->f) != n) return writer_fail(w, "write failed", errno, err);
    w->written += 2 * (uint64_t)n;
    return GM_OK;
}

/* Opens (and so writes the headers of) any shards left, e.g. ones of zero-size tensors only. */
static gm_status writer_finish(writer *w, gm_error *err) {
    while (w->shard + 1 < w->p->n_shards) {
        gm_status st = writer_next_shard(w, err);
        if (st != GM_OK) return st;
    }
    return writer_close(w, err);
}

/* ------------------------------------------------------------------ */
/* Pipeline: generator threads fill a ring of slots, the caller writes */
/* ------------------------------------------------------------------ */

/* A unit of work: elements [e0, e0 + n) of one tensor; e0 is a multiple of GM_SYNTH_BLOCK. */
#define UNIT_ELEMS ((size_t)64 * GM_SYNTH_BLOCK) /* 1 MiB of bf16 */
#define MAX_WORKERS 4

typedef struct unit {
    size_t tensor;
    uint64_t e0;
    size_t n;
} unit;

enum { SLOT_FREE, SLOT_BUSY, SLOT_READY };

typedef struct slot {
    int state;
    uint64_t id;           /* unit number in write order */
    unit u;
    uint16_t *data;        /* UNIT_ELEMS */
} slot;

typedef struct pipeline {
    const plan *p;
    uint64_t seed;
    gen_block_fn gen_block;
    void (*rule)(void *rule_user, const char *name, int ndim, const int64_t *shape, float *mean, float *scale);
    void *rule_user;
    pthread_mutex_t lock;
    pthread_cond_t slot_free, slot_ready;
    slot *slots;
    int n_slots;
    uint64_t n_units, next_id;   /* next unit to claim */
    size_t cur_tensor;           /* claim cursor */
    uint64_t cur_e0;
    bool stop;
} pipeline;

static uint64_t count_units(const plan *p) {
    uint64_t n = 0;
    for (size_t i = 0; i < p->n; i++) n += (p->nbytes[i] / 2 + UNIT_ELEMS - 1) / UNIT_ELEMS;
    return n;
}

/* The next unit in file order (caller holds the lock, next_id < n_units). */
static unit claim_unit(pipeline *pl) {
    while (pl->p->nbytes[pl->cur_tensor] == 0) pl->cur_tensor++;
    uint64_t numel = pl->p->nbytes[pl->cur_tensor] / 2;
    unit u = {pl->cur_tensor, pl->cur_e0, (size_t)GM_MIN((uint64_t)UNIT_ELEMS, numel - pl->cur_e0)};
    pl->cur_e0 += u.n;
    if (pl->cur_e0 == numel) {
        pl->cur_tensor++;
        pl->cur_e0 = 0;
    }
    pl->next_id++;
    return u;
}

static void fill_unit(const pipeline *pl, const unit *u, float *scratch, uint16_t *dst) {
    const gm_synth_tensor *t = &pl->p->t[u->tensor];
    float mean, scale;
    gm_synth_rule(t->name, t->ndim, t->shape, &mean, &scale);
    if (pl->rule) pl->rule(pl->rule_user, t->name, t->ndim, t->shape, &mean, &scale);
    uint64_t key = tensor_key(pl->seed, t->name);
    for (size_t done = 0; done < u->n; done += GM_SYNTH_BLOCK) {
        pl->gen_block(key, (u->e0 + done) / GM_SYNTH_BLOCK, mean, scale, scratch);
        to_bf16(scratch, dst + done, GM_MIN((size_t)GM_SYNTH_BLOCK, u->n - done));
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    for (size_t i = 0; i < u->n; i++) dst[i] = (uint16_t)(dst[i] << 8 | dst[i] >> 8);
#endif
}

typedef struct worker {
    pipeline *pl;
    float *scratch;        /* GM_SYNTH_BLOCK floats */
} worker;

static void *worker_main(void *arg) {
    const worker *wk = arg;
    pipeline *pl = wk->pl;
    pthread_mutex_lock(&pl->lock);
    for (;;) {
        while (!pl->stop && pl->next_id < pl->n_units && pl->slots[pl->next_id % (uint64_t)pl->n_slots].state != SLOT_FREE)
            pthread_cond_wait(&pl->slot_free, &pl->lock);
        if (pl->stop || pl->next_id >= pl->n_units) break;
        slot *s = &pl->slots[pl->next_id % (uint64_t)pl->n_slots];
        s->state = SLOT_BUSY;
        s->id = pl->next_id;
        s->u = claim_unit(pl);
        pthread_mutex_unlock(&pl->lock);
        fill_unit(pl, &s->u, wk->scratch, s->data);
        pthread_mutex_lock(&pl->lock);
        s->state = SLOT_READY;
        pthread_cond_broadcast(&pl->slot_ready);
    }
    pthread_mutex_unlock(&pl->lock);
    return NULL;
}

/* Writes every unit in order; n_workers == 0 generates on this thread. */
static gm_status write_units(pipeline *pl, writer *w, int n_workers, float *scratch,
                             void (*progress)(void *, double), void *user, gm_error *err) {
    gm_status st = GM_OK;
    double total = (double)pl->p->total_bytes;
    for (uint64_t id = 0; st == GM_OK && id < pl->n_units; id++) {
        slot *s = &pl->slots[id % (uint64_t)pl->n_slots];
        if (n_workers == 0) {
            s->u = claim_unit(pl);
            fill_unit(pl, &s->u, scratch, s->data);
        } else {
            pthread_mutex_lock(&pl->lock);
            while (s->state != SLOT_READY || s->id != id) pthread_cond_wait(&pl->slot_ready, &pl->lock);
            pthread_mutex_unlock(&pl->lock);
        }
        st = writer_put(w, s->u.tensor, s->data, s->u.n, err);
        if (n_workers > 0) {
            pthread_mutex_lock(&pl->lock);
            s->state = SLOT_FREE;
            pthread_cond_broadcast(&pl->slot_free);
            pthread_mutex_unlock(&pl->lock);
        }
        if (progress && st == GM_OK) progress(user, (double)w->written / total);
    }
    return st;
}

static gm_status run_pipeline(const plan *p, const char *dir, const gm_synth_options *opt, gm_error *err) {
    int n_threads = opt->n_threads;
    if (n_threads == 0) n_threads = GM_MIN(gm_cpu_count(), MAX_WORKERS);
    n_threads = GM_MAX(0, GM_MIN(n_threads, MAX_WORKERS));
    pipeline pl = {.p = p, .seed = opt->seed, .gen_block = pick_gen_block(), .rule = opt->rule,
                   .rule_user = opt->rule_user, .n_units = count_units(p)};
    pl.n_slots = n_threads > 0 ? 2 * n_threads + 2 : 1;
    writer w = {.p = p, .dir = dir, .shard = -1};
    worker workers[MAX_WORKERS + 1] = {{0}}; /* the last one's scratch serves the inline mode */
    pthread_t threads[MAX_WORKERS];
    gm_status st = GM_OK;
    pl.slots = gm_calloc((size_t)pl.n_slots, sizeof *pl.slots);
    bool ok = pl.slots != NULL;
    for (int i = 0; ok && i < pl.n_slots; i++) ok = (pl.slots[i].data = gm_malloc(UNIT_ELEMS * 2)) != NULL;
    for (int i = 0; ok && i <= n_threads; i++) {
        workers[i].pl = &pl;
        ok = (workers[i].scratch = gm_malloc(GM_SYNTH_BLOCK * sizeof(float))) != NULL;
    }
    if (!ok) st = gm_fail(err, GM_ERR_OUT_OF_MEMORY, "synthetic checkpoint: out of memory for the write buffers");

    if (st == GM_OK) {
        int n_workers = 0;
        pthread_mutex_init(&pl.lock, NULL);
        pthread_cond_init(&pl.slot_free, NULL);
        pthread_cond_init(&pl.slot_ready, NULL);
        while (n_workers < n_threads && pthread_create(&threads[n_workers], NULL, worker_main, &workers[n_workers]) == 0)
            n_workers++;
        st = write_units(&pl, &w, n_workers, workers[n_threads].scratch, opt->progress, opt->user, err);
        pthread_mutex_lock(&pl.lock);
        pl.stop = true;
        pthread_cond_broadcast(&pl.slot_free);
        pthread_mutex_unlock(&pl.lock);
        for (int i = 0; i < n_workers; i++) pthread_join(threads[i], NULL);
        pthread_cond_destroy(&pl.slot_ready);
        pthread_cond_destroy(&pl.slot_free);
        pthread_mutex_destroy(&pl.lock);
        if (st == GM_OK) st = writer_finish(&w, err);
    }
    gm_free(w.path);
    for (int i = 0; pl.slots && i < pl.n_slots; i++) gm_free(pl.slots[i].data);
    gm_free(pl.slots);
    for (int i = 0; i <= MAX_WORKERS; i++) gm_free(workers[i].scratch);
    return st;
}

/* ------------------------------------------------------------------ */
/* Entry points                                                       */
/* ------------------------------------------------------------------ */

gm_status gm_synth_write_list(const gm_synth_tensor *tensors, size_t n_tensors, const char *config_text,
                              size_t config_len, const char *out_dir, const gm_synth_options *opt,
                              gm_error *err) {
    if (!tensors || !config_text || !out_dir || !*out_dir || !opt)
        return gm_fail(err, GM_ERR_ARGUMENT, "synthetic checkpoint: NULL argument");
    gm_json cfg;
    gm_status st = gm_json_parse(config_text, config_len, "config.json", &cfg, err);
    if (st != GM_OK) return st;
    gm_json_free(&cfg);

    plan p;
    st = plan_build(&p, tensors, n_tensors, opt->shard_bytes ? opt->shard_bytes : GM_SYNTH_DEFAULT_SHARD_BYTES, err);
    if (st == GM_OK) st = ensure_dir(out_dir, err);
    if (st == GM_OK) st = check_space(&p, out_dir, config_len, err);
    if (st == GM_OK) {
        /* No index until every shard is complete: a half-written directory does not load. */
        char *index = gm_path_join(out_dir, "model.safetensors.index.json");
        if (!index) st = gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", out_dir);
        else if (remove(index) != 0 && errno != ENOENT)
            st = gm_fail(err, GM_ERR_IO, "%s: cannot remove the old index: %s", index, strerror(errno));
        gm_free(index);
    }
    if (st == GM_OK) st = write_small_file(out_dir, "config.json", config_text, config_len, err);
    if (st == GM_OK) st = run_pipeline(&p, out_dir, opt, err);
    if (st == GM_OK) st = write_small_file(out_dir, "model.safetensors.index.json", p.index.data, p.index.len, err);
    if (st == GM_OK && opt->progress) opt->progress(opt->user, 1.0);
    plan_free(&p);
    return st;
}

/* The released checkpoints (spec table), to catch a wrong TSV or config. */
static const struct {
    const char *name;
    size_t n_tensors;
    uint64_t bytes;
    int64_t n_layers;
} variants[] = {
    {"E2B", 1556, 10878876544u, 30},
    {"E4B", 1676, 15699956384u, 35},
};

static gm_status check_variant(int v, const gm_synth_list *list, const char *tsv_path, const char *config_text,
                               size_t config_len, const char *config_path, gm_error *err) {
    uint64_t bytes = 0;
    for (size_t i = 0; i < list->n; i++) bytes += 2 * (uint64_t)shape_numel(&list->tensors[i]);
    if (list->n != variants[v].n_tensors || bytes != variants[v].bytes)
        return gm_fail(err, GM_ERR_FORMAT, "%s: %zu tensors / %llu bytes, but %s has %zu / %llu", tsv_path, list->n,
                       (unsigned long long)bytes, variants[v].name, variants[v].n_tensors,
                       (unsigned long long)variants[v].bytes);
    gm_json j;
    gm_status st = gm_json_parse(config_text, config_len, config_path, &j, err);
    if (st != GM_OK) return st;
    int tc = gm_json_get(&j, 0, "text_config");
    int layers = gm_json_get(&j, tc >= 0 ? tc : 0, "num_hidden_layers");
    int64_t n_layers = -1;
    if (layers < 0 || !gm_json_int64(&j, layers, &n_layers) || n_layers != variants[v].n_layers)
        st = gm_fail(err, GM_ERR_FORMAT, "%s: num_hidden_layers is %lld, but %s has %lld", config_path,
                     (long long)n_layers, variants[v].name, (long long)variants[v].n_layers);
    gm_json_free(&j);
    return st;
}

gm_status gm_synth_write(const char *variant, const char *tsv_path, const char *config_path, const char *out_dir,
                         uint64_t seed, size_t shard_bytes, void (*progress)(void *user, double fraction),
                         void *user, gm_error *err) {
    if (!tsv_path || !config_path || !out_dir)
        return gm_fail(err, GM_ERR_ARGUMENT, "synthetic checkpoint: NULL path");
    int v = -1;
    if (variant) {
        for (size_t i = 0; i < GM_ARRAY_LEN(variants); i++)
            if (strcmp(variant, variants[i].name) == 0) v = (int)i;
        if (v < 0) return gm_fail(err, GM_ERR_ARGUMENT, "unknown variant '%s' (expected E2B or E4B)", variant);
    }
    gm_synth_list list;
    gm_status st = gm_synth_read_tsv(tsv_path, &list, err);
    if (st != GM_OK) return st;
    char *config = NULL;
    size_t config_len = 0;
    st = gm_read_file(config_path, &config, &config_len, err);
    if (st == GM_OK && v >= 0) st = check_variant(v, &list, tsv_path, config, config_len, config_path, err);
    if (st == GM_OK) {
        gm_synth_options opt = {.seed = seed, .shard_bytes = shard_bytes, .progress = progress, .user = user};
        st = gm_synth_write_list(list.tensors, list.n, config, config_len, out_dir, &opt, err);
    }
    gm_free(config);
    gm_synth_list_free(&list);
    return st;
}
