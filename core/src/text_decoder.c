/*
 * text_decoder.c - Gemma3nTextModel.forward + the tied LM head, batched
 * over T tokens, in f32. The structure follows upstream's
 * modeling_gemma3n.py; each block names the function it reproduces.
 *
 * Layout conventions: activations are row-major [T, width] with row
 * stride = width; AltUp streams are [K][B][H] (stream k, token t at
 * (k * B + t) * H).
 *
 * Per-token elementwise work goes through the kernel table (d->mm.k: SIMD
 * dots, exp, tanh, axpy...), so only the loops without a table twin are
 * scalar; with GEMMA3N_KERNELS=ref everything is the scalar reference.
 */
#include "decoder.h"
#include "matmul_sparse.h"
#include "ops.h"

#include <math.h>

#define STREAM(d, buf, k, t) ((buf) + ((size_t)(k) * (d)->max_batch + (size_t)(t)) * (d)->H)

/* ---- setup ---- */

static float *alloc_floats(size_t n, bool *ok) {
    size_t bytes;
    float *p = gm_mul_size(n, sizeof(float), &bytes) ? gm_aligned_alloc(bytes) : NULL;
    if (!p) *ok = false;
    return p;
}

static uint16_t *alloc_halves(size_t n, bool *ok) {
    size_t bytes;
    uint16_t *p = gm_mul_size(n, sizeof(uint16_t), &bytes) ? gm_aligned_alloc(bytes) : NULL;
    if (!p) *ok = false;
    return p;
}

/* The plan's distinct RoPE bases and their inverse frequencies; false if there are too many. */
static bool setup_rope(gm_decoder *d, bool *ok) {
    for (int p = 0; p < d->plan.n_layers; p++) {
        float theta = d->plan.layers[p].rope_theta;
        int b = 0;
        while (b < d->n_rope_bases && d->rope_theta[b] != theta) b++;
        if (b == d->n_rope_bases) {
            if (b == GM_MAX_ROPE_BASES) return false;
            d->rope_theta[d->n_rope_bases++] = theta;
        }
        d->rope_base[p] = (int8_t)b;
    }
    size_t half = (size_t)d->hd / 2, n = (size_t)GM_MAX_ROPE_BASES * d->max_batch * half;
    d->inv_freq = alloc_floats((size_t)GM_MAX_ROPE_BASES * half, ok);
    d->rope_cos = alloc_floats(n, ok);
    d->rope_sin = alloc_floats(n, ok);
    for (int b = 0; *ok && b < d->n_rope_bases; b++) gm_rope_inv_freq(d->rope_theta[b], d->hd, d->inv_freq + b * half);
    return true;
}

static void alloc_kv(gm_decoder *d, bool *ok) {
    int64_t window = d->model->cfg.sliding_window;
    for (int p = 0; p < d->plan.n_layers; p++) {
        const gm_plan_layer *pl = &d->plan.layers[p];
        if (pl->kv_source != p) continue;
        int64_t cap = pl->sliding ? GM_MIN((int64_t)d->n_ctx, window + d->max_batch) : d->n_ctx;
        d->kv[p].cap = (int32_t)cap;
        if (d->kv_type == GM_KV_F16) {
            d->kv[p].kh = alloc_halves((size_t)cap * d->kv_dim, ok);
            d->kv[p].vh = alloc_halves((size_t)cap * d->kv_dim, ok);
        } else {
            d->kv[p].k = alloc_floats((size_t)cap * d->kv_dim, ok);
            d->kv[p].v = alloc_floats((size_t)cap * d->kv_dim, ok);
        }
    }
    /* An f16 cache is read through f32 copies of GM_KV_CHUNK rows at a time, per pool thread. */
    if (d->kv_type == GM_KV_F16) d->kv_rows = alloc_floats((size_t)d->n_scores * GM_KV_CHUNK * d->hd, ok);
}

gm_status gm_decoder_init(gm_decoder *d, const gm_model *m, const gm_plan *plan, int32_t n_ctx,
                          int32_t max_batch, int32_t kv_type, gm_error *err) {
    memset(d, 0, sizeof *d);
    d->kv_type = kv_type;
    const gm_text_config *c = &m->cfg;
    d->model = m;
    d->plan = *plan;
    d->n_ctx = n_ctx;
    d->max_batch = max_batch;
    d->H = c->hidden_size, d->K = c->altup_num_inputs, d->P = c->hidden_size_per_layer_input;
    d->V = c->vocab_size, d->nh = c->num_heads, d->nkv = c->num_kv_heads, d->hd = c->head_dim;
    d->q_dim = d->nh * d->hd, d->kv_dim = d->nkv * d->hd, d->r = c->laurel_rank;
    for (int p = 0; p < plan->n_layers; p++) d->max_ffn = GM_MAX(d->max_ffn, plan->layers[p].ffn_dim);
    size_t B = (size_t)max_batch, H = (size_t)d->H;
    int64_t max_cols = GM_MAX(GM_MAX(d->H, d->q_dim), GM_MAX(d->max_ffn, GM_MAX(d->P, d->r)));
    bool ok = true;
    d->x0 = alloc_floats(B * H, &ok);
    d->streams = alloc_floats((size_t)d->K * B * H, &ok);
    d->pred = alloc_floats((size_t)d->K * B * H, &ok);
    d->ple_proj = alloc_floats(B * (size_t)c->num_layers * d->P, &ok);
    d->pli = alloc_floats(B * (size_t)plan->n_layers * d->P, &ok);
    d->an = alloc_floats(B * H, &ok);
    d->laurel = alloc_floats(B * H, &ok);
    d->attn = alloc_floats(B * H, &ok);
    d->al = alloc_floats(B * H, &ok);
    d->tmp_h = alloc_floats(B * H, &ok);
    d->hidden = alloc_floats(B * H, &ok);
    d->low_rank = alloc_floats(B * (size_t)GM_MAX(d->r, d->P), &ok);
    d->q = alloc_floats(B * (size_t)d->q_dim, &ok);
    d->att_out = alloc_floats(B * (size_t)d->q_dim, &ok);
    d->k = alloc_floats(B * (size_t)d->kv_dim, &ok);
    d->v = alloc_floats(B * (size_t)d->kv_dim, &ok);
    d->n_scores = m->params.n_threads > 0 ? m->params.n_threads : gm_cpu_count(); /* one block per pool thread */
    d->scores = alloc_floats((size_t)d->n_scores * GM_ATTN_SCRATCH(d), &ok);
    d->gate = alloc_floats(B * (size_t)d->max_ffn, &ok);
    d->up = alloc_floats(B * (size_t)d->max_ffn, &ok);
    d->router = alloc_floats(B * (size_t)d->K, &ok);
    d->coefs = alloc_floats(B * (size_t)d->K * d->K, &ok);
    d->ffn_rows = gm_aligned_alloc(sizeof(int32_t) * B * (size_t)GM_MAX(d->max_ffn, 1));
    d->ffn_counts = gm_aligned_alloc(sizeof(int32_t) * B);
    ok = ok && d->ffn_rows && d->ffn_counts;
    d->sparse_ffn = true;
    if (ok) alloc_kv(d, &ok);
    if (ok && !setup_rope(d, &ok)) {
        gm_decoder_free(d);
        return gm_fail(err, GM_ERR_UNSUPPORTED, "more than %d RoPE bases in one model", GM_MAX_ROPE_BASES);
    }
    if (!ok) {
        gm_decoder_free(d);
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory allocating the KV cache and buffers (n_ctx %d)", n_ctx);
    }
    gm_status st = gm_matmul_init(&d->mm, max_cols, m->params.n_threads, err);
    if (st != GM_OK) gm_decoder_free(d);
    return st;
}

void gm_decoder_free(gm_decoder *d) {
    float **bufs[] = {&d->x0, &d->streams, &d->pred, &d->ple_proj, &d->pli, &d->an, &d->laurel, &d->attn,
                      &d->al, &d->tmp_h, &d->hidden, &d->low_rank, &d->q, &d->att_out, &d->k, &d->v,
                      &d->scores, &d->gate, &d->up, &d->router, &d->coefs, &d->inv_freq, &d->rope_cos,
                      &d->rope_sin, &d->kv_rows};
    for (size_t i = 0; i < GM_ARRAY_LEN(bufs); i++) {
        gm_aligned_free(*bufs[i]);
        *bufs[i] = NULL;
    }
    gm_aligned_free(d->ffn_rows);
    gm_aligned_free(d->ffn_counts);
    d->ffn_rows = NULL;
    d->ffn_counts = NULL;
    gm_matmul_free(&d->mm);
    for (int p = 0; p < GM_MAX_LAYERS; p++) {
        gm_aligned_free(d->kv[p].k);
        gm_aligned_free(d->kv[p].v);
        gm_aligned_free(d->kv[p].kh);
        gm_aligned_free(d->kv[p].vh);
        d->kv[p].k = d->kv[p].v = NULL;
        d->kv[p].kh = d->kv[p].vh = NULL;
    }
}

void gm_decoder_set_sparse_ffn(gm_decoder *d, bool on) { d->sparse_ffn = on; }

int64_t gm_decoder_rewind_limit(const gm_decoder *d) {
    int64_t limit = INT64_MAX, window = d->model->cfg.sliding_window;
    for (int p = 0; p < d->plan.n_layers; p++)
        if (d->kv[p].cap > 0 && d->plan.layers[p].sliding && d->kv[p].cap < d->n_ctx)
            limit = GM_MIN(limit, d->kv[p].cap - window);
    return limit;
}

/* ---- helpers ---- */

static void matmul(gm_decoder *d, const gm_matrix *W, int64_t out, int64_t in, const float *X, int T, float *Y) {
    gm_matmul(&d->mm, W, out, in, X, T, Y);
}

/* Scales `x` [H] to the RMS `target` (new mean-square floored at 1e-5, as upstream). */
static void match_magnitude(const gm_kernels *k, float *x, int H, float target) {
    float mag = (float)sqrt(fmax((double)k->sumsq(x, H) / H, 1e-5));
    k->scale(target / mag, x, H);
}

/* ---- embeddings: Gemma3nTextModel.forward up to the first layer ---- */

/* get_per_layer_inputs + project_per_layer_inputs, for the plan's layers. */
static void per_layer_inputs(gm_decoder *d, const int32_t *ids, int T) {
    const gm_text_config *c = &d->model->cfg;
    const gm_text_weights *w = &d->model->w;
    const gm_kernels *k = d->mm.k;
    int P = d->P, L = c->num_layers, n = d->plan.n_layers;
    matmul(d, &w->per_layer_model_projection, (int64_t)L * P, d->H, d->x0, T, d->ple_proj);
    const float proj_scale = 1.0f / sqrtf((float)d->H), ple_scale = sqrtf((float)P);
    const float input_scale = 1.0f / sqrtf(2.0f);
    float *ple_row = d->low_rank; /* [P] */
    for (int t = 0; t < T; t++) {
        int32_t ple_id = ids[t] < c->vocab_size_per_layer_input ? ids[t] : 0;
        for (int p = 0; p < n; p++) {
            int src = d->plan.layers[p].src;
            float *proj = d->ple_proj + ((size_t)t * L + src) * P;
            float *out = d->pli + ((size_t)t * n + p) * P;
            k->scale(proj_scale, proj, P);
            gm_rmsnorm(k, proj, w->per_layer_projection_norm.data, P, c->rms_norm_eps, out);
            gm_matrix_row(&w->embed_tokens_per_layer, ple_id, (int64_t)src * P, P, ple_row);
            k->axpy(ple_scale, ple_row, out, P); /* (out + ple * ple_scale) * input_scale */
            k->scale(input_scale, out, P);
        }
        gm_matrix_release_row(&w->embed_tokens_per_layer, ple_id); /* never resident (gm_matrix_release_row) */
    }
}

static void embed(gm_decoder *d, const int32_t *ids, int T) {
    const gm_text_weights *w = &d->model->w;
    const gm_kernels *kt = d->mm.k;
    int H = d->H;
    const float scale = sqrtf((float)H); /* float32 constant, as the goldens (see golden README) */
    for (int t = 0; t < T; t++) {
        float *x = d->x0 + (size_t)t * H;
        gm_matrix_row(&w->embed_tokens, ids[t], 0, H, x);
        kt->scale(scale, x, H);
    }
    per_layer_inputs(d, ids, T);
    /* AltUp stream 0 is the embedding; streams 1..K-1 are projections at its magnitude. */
    for (int t = 0; t < T; t++) memcpy(STREAM(d, d->streams, 0, t), d->x0 + (size_t)t * H, sizeof(float) * H);
    for (int k = 1; k < d->K; k++) {
        matmul(d, &w->altup_projections[k - 1], H, H, d->x0, T, d->tmp_h);
        for (int t = 0; t < T; t++) {
            float *s = STREAM(d, d->streams, k, t);
            memcpy(s, d->tmp_h + (size_t)t * H, sizeof(float) * H);
            match_magnitude(kt, s, H, gm_rms(kt, d->x0 + (size_t)t * H, H));
        }
    }
}

/* ---- AltUp (Gemma3nTextAltUp) ---- */

/* compute_router_modalities: tanh(router @ (RMSNorm(x; router_norm) / H)) -> [K]. */
static void router_modalities(gm_decoder *d, const gm_layer_weights *lw, const float *x, float *out) {
    const gm_text_config *c = &d->model->cfg;
    const gm_kernels *kt = d->mm.k;
    float *xn = d->tmp_h; /* one row is enough: callers pass rows from other buffers */
    gm_rmsnorm(kt, x, lw->altup_router_norm.data, d->H, c->rms_norm_eps, xn);
    kt->scale(1.0f / (float)d->H, xn, d->H);
    const float *router = lw->altup_modality_router.data; /* [K, H] f32 */
    for (int k = 0; k < d->K; k++) out[k] = kt->dot_f32(router + (size_t)k * d->H, xn, d->H);
    kt->tanh_f32(out, d->K);
}

/* predict: pred_j = s_j + sum_i P[K*j + i] * s_i with P = prediction_coefs @ m(s_active). */
static void altup_predict(gm_decoder *d, const gm_layer_weights *lw, int T) {
    const gm_kernels *kt = d->mm.k;
    int K = d->K, H = d->H, active = d->model->cfg.altup_active_idx;
    const float *pc = lw->altup_prediction_coefs.data; /* [K*K, K] */
    for (int t = 0; t < T; t++) {
        float m[GM_MAX_ALTUP], coef[GM_MAX_ALTUP * GM_MAX_ALTUP];
        router_modalities(d, lw, STREAM(d, d->streams, active, t), m);
        for (int o = 0; o < K * K; o++) coef[o] = kt->dot_f32(pc + (size_t)o * K, m, K);
        for (int j = 0; j < K; j++) {
            float *out = STREAM(d, d->pred, j, t);
            memcpy(out, STREAM(d, d->streams, j, t), sizeof(float) * H);
            for (int i = 0; i < K; i++) kt->axpy(coef[K * j + i], STREAM(d, d->streams, i, t), out, H);
        }
    }
}

/* correct: corr_j = pred_j + (correction_coefs @ m(out) + 1)_j * (out - pred_active), into streams. */
static void altup_correct(gm_decoder *d, const gm_layer_weights *lw, const float *activated, int T) {
    const gm_kernels *kt = d->mm.k;
    int K = d->K, H = d->H, active = d->model->cfg.altup_active_idx;
    const float *cc = lw->altup_correction_coefs.data; /* [K, K] */
    for (int t = 0; t < T; t++) {
        const float *out = activated + (size_t)t * H, *pa = STREAM(d, d->pred, active, t);
        float m[GM_MAX_ALTUP], *innov = d->tmp_h; /* free again once the router has run */
        router_modalities(d, lw, out, m);
        for (int h = 0; h < H; h++) innov[h] = out[h] - pa[h];
        for (int j = 0; j < K; j++) {
            float c = kt->dot_f32(cc + (size_t)j * K, m, K) + 1.0f;
            float *s = STREAM(d, d->streams, j, t);
            memcpy(s, STREAM(d, d->pred, j, t), sizeof(float) * H);
            kt->axpy(c, innov, s, H); /* pred_j + c * (out - pred_active) */
        }
    }
}

/* ---- feed-forward (Gemma3nTextMLP) and LAuReL (Gemma3nTextLaurelBlock) ---- */

/* laurel [T, H] = an + RMSNorm(linear_right(linear_left(an)); post_laurel_norm). */
static void laurel(gm_decoder *d, const gm_layer_weights *lw, int T) {
    const gm_text_config *c = &d->model->cfg;
    matmul(d, &lw->laurel_left, d->r, d->H, d->an, T, d->low_rank);
    matmul(d, &lw->laurel_right, d->H, d->r, d->low_rank, T, d->laurel);
    for (int t = 0; t < T; t++) {
        float *x = d->laurel + (size_t)t * d->H;
        const float *a = d->an + (size_t)t * d->H;
        gm_rmsnorm(d->mm.k, x, lw->laurel_post_norm.data, d->H, c->rms_norm_eps, x);
        d->mm.k->axpy(1.0f, a, x, d->H); /* 1 * a is exact: x + a */
    }
}

typedef struct ffn_job {
    gm_decoder *d;
    const gm_plan_layer *pl;
    const gm_matrix *up;
    const float *x; /* [T, H] the MLP input */
    int T, F;
    bool sparse;    /* up rows only where the gate survives (else d->up holds the dense up(x)) */
    bool local;     /* sparse rows on the token's thread (a batch over the pool), else over the pool */
} ffn_job;

/*
 * Token t's gate row [F] -> gelu_tanh(sparsify(g)) * up(x_t). Sparse: g[i]
 * *= up(x)[i] only for the rows where g survived the top-k (gelu(0) = 0, so
 * the others stay exactly 0, as 0 * up is in the dense product; down_proj
 * sums those zeros without effect). Rows come from the same GEMV kernel as
 * the dense path (matmul_sparse.h): same bits, wherever they run. Not exact
 * only where the dense product would give inf/NaN in a skipped row (0 * inf).
 */
static void ffn_token(const ffn_job *j, int t) {
    gm_decoder *d = j->d;
    const gm_kernels *k = d->mm.k;
    const int F = j->F;
    float *g = d->gate + (size_t)t * F, *u = d->up + (size_t)t * F;
    if (j->pl->sparsity > 0) gm_gaussian_topk(g, F, j->pl->sparsity_std_multiplier);
    k->gelu_tanh(g, F);
    if (!j->sparse) {
        k->mul(g, u, g, F);
        return;
    }
    int32_t *rows = d->ffn_rows + (size_t)t * d->max_ffn;
    int n = 0;
    for (int i = 0; i < F; i++)
        if (g[i] != 0.0f) rows[n++] = i;
    const float *x = j->x + (size_t)t * d->H;
    if (j->local)
        gm_matmul_rows_local(k, j->up, F, d->H, x, gm_matmul_xq_row(&d->mm, t), rows, n, u);
    else
        n = (int)gm_matmul_rows(&d->mm, j->up, F, d->H, x, rows, n, u);
    d->ffn_counts[t] = n;
    for (int i = 0; i < n; i++) g[rows[i]] *= u[rows[i]];
}

/* gm_pool_fn: a contiguous run of tokens (they cost about the same). */
static void ffn_task(void *ctx, int task, int n_tasks, int thread) {
    (void)thread;
    const ffn_job *j = ctx;
    for (int t = j->T * task / n_tasks; t < j->T * (task + 1) / n_tasks; t++) ffn_token(j, t);
}

/*
 * out [T, H] = down(gelu_tanh(sparsify(gate(x))) * up(x)) over the plan's FFN width.
 * A sparse layer computes only the up rows that matter, token by token:
 *  - whenever the dense product would go row at a time (decode; quantized
 *    or bf16 weights below the sgemm batch size): the same bits;
 *  - for quantized weights at any batch size: the dense product would widen
 *    the weights to f32 for sgemm, 4.5x slower than per-token row subsets
 *    (E2B up_proj Q4_0, 2 threads, 128 tokens: 41 vs 186 ms), and the rows
 *    then get Q8_0 activations exactly as in decode (like every packed
 *    matrix in a batch), so a batch equals token-by-token decoding here.
 * Float weights in sgemm-sized batches stay dense: swapping sgemm's rounding
 * for GEMV's moved matformer_tiny/slice_B's token-by-token vs batch
 * difference past its 5e-4 tolerance under avx2 (that model amplifies any
 * rounding ~10x in its F=32 sparse layer: relu(g - cutoff) keeps 1-2 values
 * barely above the cutoff, a cancellation), so which rounding wins is luck.
 * A batch's tokens go over the pool, each token's rows on its own thread
 * (one pool run per layer instead of one per token); a single token's rows
 * go over the pool instead.
 */
static void mlp(gm_decoder *d, const gm_plan_layer *pl, const gm_layer_weights *lw, const float *x, int T,
                float *out) {
    int F = pl->ffn_dim;
    const gm_matrix *up = &lw->up_proj; /* packed rows have no cheap subset */
    bool sparse = pl->sparsity > 0 && d->sparse_ffn && up->layout == GM_LAYOUT_ROWS &&
                  (gm_matmul_row_at_a_time(up, T) || gm_dtype_block(up->type) > 1);
    if (sparse) {
        matmul(d, &lw->gate_proj, F, d->H, x, T, d->gate);
    } else {
        const gm_matrix *W[] = {&lw->gate_proj, &lw->up_proj};
        const int64_t rows[] = {F, F};
        float *Y[] = {d->gate, d->up};
        gm_matmul_shared(&d->mm, 2, W, rows, d->H, x, T, Y);
    }
    const int threads = gm_pool_n_threads(d->mm.pool);
    ffn_job job = {d, pl, up, x, T, F, sparse, T > 1 && threads > 1 && T <= GM_MATMUL_QROWS};
    if (job.local)
        gm_pool_run(d->mm.pool, ffn_task, &job, GM_MIN(T, 2 * threads));
    else
        ffn_task(&job, 0, 1, 0);
    if (sparse)
        for (int t = 0; t < T; t++) d->ffn_rows_computed += d->ffn_counts[t], d->ffn_rows_dense += F;
    matmul(d, &lw->down_proj, d->H, F, d->gate, T, out);
}

/* ---- one decoder layer (Gemma3nTextDecoderLayer.forward) ---- */

static void per_layer_input_update(gm_decoder *d, int p, const gm_layer_weights *lw, int T) {
    const gm_text_config *c = &d->model->cfg;
    const gm_kernels *kt = d->mm.k;
    int H = d->H, P = d->P, active = c->altup_active_idx;
    for (int t = 0; t < T; t++) {
        float *f = d->tmp_h + (size_t)t * H;
        const float *s = STREAM(d, d->streams, active, t);
        if (c->altup_correct_scale)
            kt->mul(s, lw->altup_correct_output_scale.data, f, H);
        else
            memcpy(f, s, sizeof(float) * H);
    }
    matmul(d, &lw->per_layer_input_gate, P, H, d->tmp_h, T, d->low_rank);
    for (int t = 0; t < T; t++) {
        float *g = d->low_rank + (size_t)t * P;
        kt->gelu_tanh(g, P);
        kt->mul(g, d->pli + ((size_t)t * d->plan.n_layers + p) * P, g, P);
    }
    matmul(d, &lw->per_layer_projection, H, P, d->low_rank, T, d->tmp_h);
    for (int t = 0; t < T; t++) {
        float *f = d->tmp_h + (size_t)t * H;
        gm_rmsnorm(kt, f, lw->post_per_layer_input_norm.data, H, c->rms_norm_eps, f);
        for (int k = 1; k < d->K; k++) /* upstream: corrected_predictions[1:] += ... */
            kt->axpy(1.0f, f, STREAM(d, d->streams, k, t), H);
    }
}

static void layer_forward(gm_decoder *d, int p, int T, int64_t pos0) {
    const gm_text_config *c = &d->model->cfg;
    const gm_plan_layer *pl = &d->plan.layers[p];
    const gm_layer_weights *lw = &d->model->w.layers[pl->src];
    int H = d->H;
    const float inv_sqrt2 = 1.0f / sqrtf(2.0f);
    altup_predict(d, lw, T);
    for (int t = 0; t < T; t++)
        gm_rmsnorm(d->mm.k, STREAM(d, d->pred, c->altup_active_idx, t), lw->input_norm.data, H, c->rms_norm_eps,
                   d->an + (size_t)t * H);
    laurel(d, lw, T);
    gm_attention(d, p, lw, T, pos0); /* attention.c */
    for (int t = 0; t < T; t++) {
        const float *pa = STREAM(d, d->pred, c->altup_active_idx, t);
        float *al = d->al + (size_t)t * H, *x = d->tmp_h + (size_t)t * H;
        const float *at = d->attn + (size_t)t * H, *la = d->laurel + (size_t)t * H;
        for (int i = 0; i < H; i++) al[i] = ((pa[i] + at[i]) + la[i]) * inv_sqrt2;
        gm_rmsnorm(d->mm.k, al, lw->pre_ffw_norm.data, H, c->rms_norm_eps, x);
    }
    mlp(d, pl, lw, d->tmp_h, T, d->attn); /* attn buffer reused for the MLP output */
    for (int t = 0; t < T; t++) {
        float *m = d->attn + (size_t)t * H;
        const float *al = d->al + (size_t)t * H;
        gm_rmsnorm(d->mm.k, m, lw->post_ffw_norm.data, H, c->rms_norm_eps, m);
        d->mm.k->axpy(1.0f, al, m, H);
    }
    altup_correct(d, lw, d->attn, T);
    per_layer_input_update(d, p, lw, T);
}

/* ---- output: AltUp un-embedding, mean, final norm, tied LM head, softcap ---- */

static void final_hidden(gm_decoder *d, int t0, int T) {
    const gm_text_config *c = &d->model->cfg;
    const gm_text_weights *w = &d->model->w;
    const gm_kernels *kt = d->mm.k;
    int H = d->H, n = T - t0;
    for (int t = t0; t < T; t++) memcpy(d->hidden + (size_t)(t - t0) * H, STREAM(d, d->streams, 0, t), sizeof(float) * H);
    for (int k = 1; k < d->K; k++) {
        matmul(d, &w->altup_unembed_projections[k - 1], H, H, STREAM(d, d->streams, k, t0), n, d->tmp_h);
        for (int t = 0; t < n; t++) {
            float *u = d->tmp_h + (size_t)t * H;
            match_magnitude(kt, u, H, gm_rms(kt, STREAM(d, d->streams, 0, t0 + t), H));
            kt->axpy(1.0f, u, d->hidden + (size_t)t * H, H);
        }
    }
    for (int t = 0; t < n; t++) {
        float *h = d->hidden + (size_t)t * H;
        for (int i = 0; i < H; i++) h[i] /= (float)d->K;
        gm_rmsnorm(kt, h, w->final_norm.data, H, c->rms_norm_eps, h);
    }
}

/*
 * The first plan layer from which on no layer writes a KV cache (the
 * KV-shared tail: E2B's last 10 of 30 layers read layers 18/19's caches).
 * What those layers compute for a token reaches nothing but that token's
 * own logits: attention there reads caches the earlier layers filled, and
 * AltUp, LAuReL, the per-layer inputs and the MLP are per token.
 */
static int kv_shared_tail(const gm_decoder *d) {
    int p = d->plan.n_layers;
    while (p > 0 && d->plan.layers[p - 1].kv_source != p - 1) p--;
    return p;
}

/* Moves batch rows r0 .. T-1 (their AltUp streams, per-layer inputs, RoPE rows) to rows 0 .. T-r0-1. */
static void keep_rows(gm_decoder *d, int r0, int T, int64_t pos0) {
    const size_t n = (size_t)(T - r0), H = (size_t)d->H, pl = (size_t)d->plan.n_layers * d->P;
    for (int k = 0; k < d->K; k++) memmove(STREAM(d, d->streams, k, 0), STREAM(d, d->streams, k, r0), n * H * sizeof(float));
    memmove(d->pli, d->pli + (size_t)r0 * pl, n * pl * sizeof(float));
    gm_rope_tables(d, (int)n, pos0 + r0);
}

void gm_decoder_forward(gm_decoder *d, const int32_t *ids, int T, int64_t pos0, float *logits, int first_logit_row) {
    embed(d, ids, T);
    gm_rope_tables(d, T, pos0);
    /* Rows before first_logit_row skip the KV-shared tail (their caches are
     * complete without it); an observer sees every row of every layer. */
    const int tail = d->observer ? d->plan.n_layers : kv_shared_tail(d);
    for (int p = 0; p < d->plan.n_layers; p++) {
        if (p == tail && first_logit_row > 0) {
            if (first_logit_row >= T) return;
            keep_rows(d, first_logit_row, T, pos0);
            T -= first_logit_row, pos0 += first_logit_row, first_logit_row = 0;
        }
        layer_forward(d, p, T, pos0);
        if (d->observer) d->observer(d->observer_user, p, d->streams, T, d->max_batch);
    }
    if (first_logit_row >= T) return;
    final_hidden(d, first_logit_row, T);
    int n = T - first_logit_row;
    matmul(d, &d->model->w.embed_tokens, d->V, d->H, d->hidden, n, logits);
    float cap = d->model->cfg.final_logit_softcap;
    if (cap > 0) d->mm.k->softcap(logits, (int64_t)n * d->V, cap);
}
