/* session.h - the session object shared by session.c and generate.c. */
#ifndef GM_SESSION_H
#define GM_SESSION_H

#include "decoder.h"
#include "sampler.h"

/* Default context when the caller passes n_ctx = 0. */
#define GM_DEFAULT_N_CTX 4096
/*
 * Tokens per forward call during prompt evaluation. 64: the packed int8
 * GEMM quantizes and streams the weights once per GM_MATMUL_QROWS (64)
 * activation rows anyway, so larger batches only grow the per-batch
 * buffers and the sliding layers' KV rings (window + batch positions).
 */
#define GM_MAX_BATCH 64

/* State of one pull-based generation (gm_session_generate_begin .. finish). */
typedef struct gm_generation {
    bool active;
    bool finished;
    int32_t max_tokens, n_generated;
    bool ignore_eos;
    int32_t stop_ids[4];
    int n_stop_ids;
    char *stop[GM_MAX_STOP_STRINGS]; /* owned copies */
    size_t stop_len[GM_MAX_STOP_STRINGS];
    int n_stop;
    int32_t byte_token[256]; /* id of "<0xNN>" per byte value, -1 when absent */
    gm_buf byte_run;  /* bytes of consecutive byte-fallback tokens, resolved when the run ends */
    gm_buf pending;   /* decoded text not yet returned (possible stop-string prefix) */
    gm_buf out;       /* text returned by the last gm_session_next */
} gm_generation;

struct gm_session {
    gm_model *model;              /* retained */
    gm_session_params params;
    int32_t n_ctx;
    gm_decoder dec;
    gm_sampler *sampler;
    int32_t *tokens;              /* [n_ctx] the context */
    size_t n_past;
    float *logits;                /* [V] last position */
    bool has_logits;
    float *all_logits;            /* [all_rows, V] when keep_all_logits */
    size_t all_rows, all_logits_cap;
    const volatile int *cancel;
    gm_generation gen;
};

/* Runs validated tokens through the model (batches of max_batch), appending them to the context. */
GM_INTERNAL gm_status gm_session_run(gm_session *s, const int32_t *ids, size_t n, bool keep_all, gm_error *err);
GM_INTERNAL bool gm_session_cancelled(const gm_session *s);
GM_INTERNAL void gm_generation_free(gm_generation *g);

#endif
