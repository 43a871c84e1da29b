/*
 * attention.c - Gemma3nTextAttention.forward over the KV cache, batched over
 * T tokens: q/k/v projections (one shared pass), q_norm / k_norm / v_norm, RoPE, the K/V
 * append, softmax(Q K^T) V per head (scaling 1.0, no softcap), o_proj and
 * post_attention_layernorm.
 *
 * The softmax(Q K^T) V part works on blocks of query rows of one head at a
 * time, as two block products of the kernel table (kernels.h):
 *
 *     S [n, nk]  = Q_h [n, hd] . K[lo .. lo + nk)^T      gemm_nt_f32
 *     S          = row softmax over each row's keys, 0 elsewhere
 *     O_h [n, hd] = S . V[lo .. lo + nk)                 gemm_nn_acc_f32
 *
 * where [lo, lo + nk) is the union of the block's key ranges. Query row at
 * position pos sees keys lo(pos) .. pos, lo(pos) = max(0, pos - window + 1)
 * on sliding layers and 0 on full ones; its columns outside that range get
 * probability exactly 0 (not exp(-inf): nothing non-finite is ever formed),
 * and a 0 times a finite V row adds nothing, so the result is the per-token
 * softmax of the same scores. Each K and V row loaded serves the block's n
 * rows (the kernels keep register blocks of several rows), where the
 * per-token loop this replaces read the whole window once per query row and
 * head and was L2-bandwidth bound.
 *
 * With the reference kernel table the two products are dot_f32 per score and
 * axpy per key, i.e. exactly the per-token loop; SIMD tables differ from it
 * only by summation order (kernels.h).
 *
 * Decode (T == 1) takes the same path with one-row blocks: the kernels'
 * one-row shapes (8 keys, or 8 output vectors, in flight) run ~3x the
 * multiply-adds per second of the old dot_f32 + axpy loop (E2B shapes,
 * one thread), so there is no separate decode path.
 *
 * An f16 cache (GM_KV_F16) stores the same rows rounded to binary16; the
 * products then read its keys and values converted back to f32 (exactly)
 * GM_KV_CHUNK rows at a time. gemm_nn_acc splits add exactly (kernels.h);
 * the ref and avx512_amx tables' gemm_nt entries do not depend on the
 * split either, so there the logits are bit for bit those of an f32 cache
 * holding the rounded values (checked on text_tiny_a and synthetic E2B).
 */
#include "decoder.h"
#include "ops.h"

/* ---- RoPE ---- */

void gm_rope_tables(gm_decoder *d, int T, int64_t pos0) {
    size_t half = (size_t)d->hd / 2;
    for (int b = 0; b < d->n_rope_bases; b++)
        for (int t = 0; t < T; t++) {
            size_t o = ((size_t)b * d->max_batch + t) * half;
            gm_rope_angles(d->inv_freq + b * half, d->hd, pos0 + t, d->rope_cos + o, d->rope_sin + o);
        }
}

/* Rotates one head of batch row t in plan layer p. */
static void rope(const gm_decoder *d, int p, int t, float *x) {
    size_t o = ((size_t)d->rope_base[p] * d->max_batch + t) * (d->hd / 2);
    gm_rope(x, d->hd, d->rope_cos + o, d->rope_sin + o);
}

/* n floats to binary16 bits, round to nearest even (the f16 cache's only rounding). */
static void to_f16(const float *x, uint16_t *y, int n) {
    for (int i = 0; i < n; i++) y[i] = gm_f32_to_f16(x[i]);
}

/*
 * store_kv for an f16 cache: the same norms and RoPE, in place in d->k /
 * d->v (nothing reads them afterwards), then each row rounded into the
 * cache, so the stored values are exactly the f32 cache's, rounded once.
 */
static void store_kv_f16(gm_decoder *d, int p, const gm_layer_weights *lw, int T, int64_t pos0) {
    const gm_text_config *c = &d->model->cfg;
    const gm_kernels *k = d->mm.k;
    gm_kv_layer *kv = &d->kv[p];
    for (int t = 0; t < T; t++) {
        int64_t pos = pos0 + t;
        float *kr = d->k + (size_t)t * d->kv_dim, *vr = d->v + (size_t)t * d->kv_dim;
        for (int h = 0; h < d->nkv; h++) {
            float *kh = kr + (size_t)h * d->hd, *vh = vr + (size_t)h * d->hd;
            gm_rmsnorm(k, kh, lw->k_norm.data, d->hd, c->rms_norm_eps, kh);
            rope(d, p, t, kh);
            gm_rmsnorm(k, vh, NULL, d->hd, c->rms_norm_eps, vh); /* v_norm: no weight */
        }
        to_f16(kr, kv->kh + (size_t)(pos % kv->cap) * d->kv_dim, d->kv_dim);
        to_f16(vr, kv->vh + (size_t)(pos % kv->cap) * d->kv_dim, d->kv_dim);
    }
}

/* The batch's k_proj / v_proj outputs (d->k, d->v), normed (k with RoPE) into the cache slots pos % cap. */
static void store_kv(gm_decoder *d, int p, const gm_layer_weights *lw, int T, int64_t pos0) {
    if (d->kv_type == GM_KV_F16) {
        store_kv_f16(d, p, lw, T, pos0);
        return;
    }
    const gm_text_config *c = &d->model->cfg;
    const gm_kernels *k = d->mm.k;
    gm_kv_layer *kv = &d->kv[p];
    for (int t = 0; t < T; t++) {
        int64_t pos = pos0 + t;
        float *kdst = kv->k + (size_t)(pos % kv->cap) * d->kv_dim;
        float *vdst = kv->v + (size_t)(pos % kv->cap) * d->kv_dim;
        for (int h = 0; h < d->nkv; h++) {
            size_t o = (size_t)t * d->kv_dim + (size_t)h * d->hd;
            gm_rmsnorm(k, d->k + o, lw->k_norm.data, d->hd, c->rms_norm_eps, kdst + h * d->hd);
            rope(d, p, t, kdst + h * d->hd);
            gm_rmsnorm(k, d->v + o, NULL, d->hd, c->rms_norm_eps, vdst + h * d->hd); /* v_norm: no weight */
        }
    }
}

/* ---- softmax(Q K^T) V on blocks of query rows ---- */

typedef struct attn_job {
    const gm_decoder *d;
    const gm_layer_weights *lw;
    const gm_kv_layer *kv;  /* the cache this layer reads (its own or a KV-shared source's) */
    int p, T;
    int64_t pos0;
    int64_t window;         /* sliding layers: the window; full layers: INT64_MAX */
    int rows;               /* query rows per block */
    int n_blocks;           /* ceil(T / rows) */
} attn_job;

/* First key position the query at `pos` sees. */
static int64_t key_lo(const attn_job *j, int64_t pos) {
    return pos >= j->window ? pos - j->window + 1 : 0;
}

/*
 * The cache slots of key positions [lo, lo + nk) as at most two runs of
 * consecutive slots (slot = pos % cap): run r covers columns col[r] ..
 * col[r] + len[r] - 1 from slot slot[r]. nk <= cap (decoder.h: a sliding
 * ring has cap >= window + max_batch > nk; otherwise cap = n_ctx), so the
 * range never meets itself, and every position in it is still cached.
 */
static int ring_runs(const gm_kv_layer *kv, int64_t lo, int64_t nk, int64_t col[2], int64_t slot[2], int64_t len[2]) {
    col[0] = 0;
    slot[0] = lo % kv->cap;
    len[0] = GM_MIN(nk, kv->cap - slot[0]);
    col[1] = len[0];
    slot[1] = 0;
    len[1] = nk - len[0];
    return len[1] > 0 ? 2 : 1;
}

/*
 * Row r of S (query at key column `last`, first seen column `first`) to
 * probabilities: softmax over [first, last], exactly 0 elsewhere. The same
 * operations as the per-token softmax (gm_softmax) on the same scores.
 */
static void masked_softmax(const gm_kernels *kt, float *row, int64_t nk, int64_t first, int64_t last) {
    gm_softmax(kt, row + first, (int)(last - first + 1));
    memset(row, 0, sizeof(float) * (size_t)first);
    memset(row + last + 1, 0, sizeof(float) * (size_t)(nk - last - 1));
}

/*
 * The block's key runs (ring_runs) of one KV head (offset koff in a row).
 * The products read an f32 cache in place (row stride kv_dim), so those
 * calls are exactly the ones before f16 caches existed. An f16 cache is
 * read GM_KV_CHUNK keys at a time, converted exactly (kernel table f16_to_f32)
 * into the thread's chunk scratch `buf` [GM_KV_CHUNK, hd]: the scratch
 * stays small and in cache, whatever the context length.
 */
typedef struct key_runs {
    int n;
    int64_t col[2], slot[2], len[2];
    size_t koff;
} key_runs;

/* Keys (or values) slot .. slot + m - 1 of an f16 cache, this head only, to f32 rows [m, hd]. */
static void f16_rows(const gm_decoder *d, const uint16_t *cache, size_t koff, int64_t slot, int64_t m, float *buf) {
    for (int64_t i = 0; i < m; i++)
        d->mm.k->f16_to_f32(cache + (size_t)(slot + i) * d->kv_dim + koff, buf + (size_t)i * d->hd, d->hd);
}

/* S [n, nk] = Q_h [n, hd] . K^T over the runs. */
static void block_scores(const attn_job *j, const key_runs *kr, const float *qs, int n, float *S, int64_t nk,
                         float *buf) {
    const gm_decoder *d = j->d;
    const gm_kernels *kt = d->mm.k;
    const int hd = d->hd;
    for (int r = 0; r < kr->n; r++) {
        if (d->kv_type != GM_KV_F16) {
            kt->gemm_nt_f32(qs, hd, j->kv->k + (size_t)kr->slot[r] * d->kv_dim + kr->koff, d->kv_dim, S + kr->col[r],
                            nk, n, kr->len[r], hd);
            continue;
        }
        for (int64_t c = 0; c < kr->len[r]; c += GM_KV_CHUNK) {
            const int64_t m = GM_MIN((int64_t)GM_KV_CHUNK, kr->len[r] - c);
            f16_rows(d, j->kv->kh, kr->koff, kr->slot[r] + c, m, buf);
            kt->gemm_nt_f32(qs, hd, buf, hd, S + kr->col[r] + c, nk, n, m, hd);
        }
    }
}

/* out [n, hd] (row stride q_dim, zeroed) += S . V over the runs, in key order (kernels.h: splits add exactly). */
static void block_values(const attn_job *j, const key_runs *kr, const float *S, int n, int64_t nk, float *out,
                         float *buf) {
    const gm_decoder *d = j->d;
    const gm_kernels *kt = d->mm.k;
    const int hd = d->hd;
    for (int r = 0; r < kr->n; r++) { /* the second run continues the first's sums */
        if (d->kv_type != GM_KV_F16) {
            kt->gemm_nn_acc_f32(S + kr->col[r], nk, j->kv->v + (size_t)kr->slot[r] * d->kv_dim + kr->koff, d->kv_dim,
                                out, d->q_dim, n, kr->len[r], hd);
            continue;
        }
        for (int64_t c = 0; c < kr->len[r]; c += GM_KV_CHUNK) {
            const int64_t m = GM_MIN((int64_t)GM_KV_CHUNK, kr->len[r] - c);
            f16_rows(d, j->kv->vh, kr->koff, kr->slot[r] + c, m, buf);
            kt->gemm_nn_acc_f32(S + kr->col[r] + c, nk, buf, hd, out, d->q_dim, n, m, hd);
        }
    }
}

/*
 * Task `task`: head h, block b of query rows, latest (costliest) blocks
 * first so the schedule ends on short tasks. The task owns its q and output
 * slices and its thread's scores scratch, so tasks run in any order.
 */
static void attn_task(void *ctx, int task, int n_tasks, int thread) {
    (void)n_tasks;
    const attn_job *j = ctx;
    const gm_decoder *d = j->d;
    const gm_kernels *kt = d->mm.k;
    const int h = task % d->nh, b = j->n_blocks - 1 - task / d->nh, hd = d->hd;
    const int t0 = b * j->rows, n = GM_MIN(j->rows, j->T - t0);
    const int64_t p0 = j->pos0 + t0, lo = key_lo(j, p0), nk = p0 + n - lo; /* keys of the whole block */
    const size_t koff = (size_t)(h / (d->nh / d->nkv)) * hd;                /* GQA: this head's KV head */
    const float *q = d->q + (size_t)t0 * d->q_dim + (size_t)h * hd;          /* [n, hd], row stride q_dim */
    float *out = d->att_out + (size_t)t0 * d->q_dim + (size_t)h * hd;       /* [n, hd], row stride q_dim */
    float *qs = d->scores + (size_t)thread * GM_ATTN_SCRATCH(d);             /* [n, hd] */
    float *S = qs + (size_t)GM_ATTN_ROWS * hd;                               /* [n, nk] */
    /* q_norm + RoPE into contiguous rows: the block then sits in L1 while
     * the keys stream by (rows q_dim floats apart alias the same L1 sets). */
    for (int t = 0; t < n; t++) {
        float *qt = qs + (size_t)t * hd;
        gm_rmsnorm(kt, q + (size_t)t * d->q_dim, j->lw->q_norm.data, hd, d->model->cfg.rms_norm_eps, qt);
        rope(d, j->p, t0 + t, qt);
    }
    key_runs kr = {.koff = koff};
    kr.n = ring_runs(j->kv, lo, nk, kr.col, kr.slot, kr.len);
    float *buf = d->kv_rows ? d->kv_rows + (size_t)thread * GM_KV_CHUNK * hd : NULL; /* f16 caches only */
    block_scores(j, &kr, qs, n, S, nk, buf);
    for (int t = 0; t < n; t++) {
        masked_softmax(kt, S + (size_t)t * nk, nk, key_lo(j, p0 + t) - lo, p0 + t - lo);
        memset(out + (size_t)t * d->q_dim, 0, sizeof(float) * (size_t)hd);
    }
    block_values(j, &kr, S, n, nk, out, buf);
}

/*
 * Query rows per block: GM_ATTN_ROWS (each K/V row then serves 16 queries),
 * halved down to 4 while that leaves fewer than 4 tasks per thread (the
 * tasks' costs differ: a causal block's key range grows with its position).
 */
static int block_rows(const gm_decoder *d, int T, int threads) {
    int rows = GM_ATTN_ROWS;
    while (rows > 4 && d->nh * ((T + rows - 1) / rows) < 4 * threads) rows /= 2;
    return GM_MIN(rows, T);
}

/* Below this many multiply-adds (q.k and p.v) the heads run on the calling thread. */
#define GM_ATTN_PARALLEL_MIN (1 << 18)

void gm_attention(gm_decoder *d, int p, const gm_layer_weights *lw, int T, int64_t pos0) {
    const gm_text_config *c = &d->model->cfg;
    const gm_plan_layer *pl = &d->plan.layers[p];
    if (pl->kv_source == p) { /* KV-shared layers never compute K/V */
        const gm_matrix *W[] = {&lw->q_proj, &lw->k_proj, &lw->v_proj};
        const int64_t out[] = {d->q_dim, d->kv_dim, d->kv_dim};
        float *Y[] = {d->q, d->k, d->v};
        gm_matmul_shared(&d->mm, 3, W, out, d->H, d->an, T, Y);
        store_kv(d, p, lw, T, pos0);
    } else {
        gm_matmul(&d->mm, &lw->q_proj, d->q_dim, d->H, d->an, T, d->q);
    }
    const int threads = gm_pool_n_threads(d->mm.pool);   /* thread ids index the scores scratch */
    const bool pool = threads > 1 && threads <= d->n_scores;
    attn_job job = {d, lw, &d->kv[pl->kv_source], p, T, pos0, pl->sliding ? c->sliding_window : INT64_MAX,
                    0, 0};
    job.rows = block_rows(d, T, pool ? threads : 1);
    job.n_blocks = (T + job.rows - 1) / job.rows;
    const int64_t span = pl->sliding ? GM_MIN(pos0 + T, (int64_t)c->sliding_window) : pos0 + T;
    const int n_tasks = d->nh * job.n_blocks;
    if (pool && (int64_t)T * d->nh * span * d->hd * 2 >= GM_ATTN_PARALLEL_MIN)
        gm_pool_run(d->mm.pool, attn_task, &job, n_tasks);
    else
        for (int i = 0; i < n_tasks; i++) attn_task(&job, i, n_tasks, 0);
    gm_matmul(&d->mm, &lw->o_proj, d->H, d->q_dim, d->att_out, T, d->attn);
    for (int t = 0; t < T; t++)
        gm_rmsnorm(d->mm.k, d->attn + (size_t)t * d->H, lw->post_attn_norm.data, d->H, c->rms_norm_eps,
                   d->attn + (size_t)t * d->H);
}
