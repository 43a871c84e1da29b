/* model_info.c - descriptions of a loaded model and its text helpers. */
#include "gguf_model.h"
#include "model.h"

#include <stdio.h>

static gm_status no_tokenizer(const gm_model *m, gm_error *err) {
    return gm_fail(err, GM_ERR_NO_TOKENIZER, "model has no tokenizer (no %s in %s): use token ids",
                   m->format == GM_FORMAT_GGUF ? "tokenizer.ggml.* metadata" : "tokenizer.json", m->path);
}

gm_status gm_model_tokenize(const gm_model *m, const char *text, size_t len, unsigned flags, int32_t *ids,
                            size_t cap, size_t *n_ids, gm_error *err) {
    gm_error_clear(err);
    if (!m->tokenizer) return no_tokenizer(m, err);
    return gm_tokenize(m->tokenizer, text, len, flags, ids, cap, n_ids, err);
}

gm_status gm_model_detokenize(const gm_model *m, const int32_t *ids, size_t n_ids, int skip_special, char *text,
                              size_t cap, size_t *len, gm_error *err) {
    gm_error_clear(err);
    if (!m->tokenizer) return no_tokenizer(m, err);
    return gm_detokenize(m->tokenizer, ids, n_ids, skip_special, text, cap, len, err);
}

static void describe_config(const gm_model *m, gm_buf *b) {
    const gm_text_config *c = &m->cfg;
    gm_buf_printf(b, "model: %s\n", m->path);
    gm_buf_printf(b, "architecture: gemma3n (text decoder)\n");
    gm_buf_printf(b, "layers: %d (%d KV-shared), hidden %d, heads %d/%d, head_dim %d\n", c->num_layers,
                  c->num_kv_shared_layers, c->hidden_size, c->num_heads, c->num_kv_heads, c->head_dim);
    gm_buf_printf(b, "vocab: %d (per-layer %d), per-layer input %d, altup %d, laurel rank %d\n", c->vocab_size,
                  c->vocab_size_per_layer_input, c->hidden_size_per_layer_input, c->altup_num_inputs,
                  c->laurel_rank);
    gm_buf_printf(b, "attention: sliding window %d, rope theta %g (full) / %g (sliding), softcap %g\n",
                  c->sliding_window, c->rope_theta_full, c->rope_theta_sliding, c->final_logit_softcap);
    gm_buf_printf(b, "layer types: ");
    for (int l = 0; l < c->num_layers; l++) gm_buf_printf(b, "%c", c->layer_is_sliding[l] ? 's' : 'F');
    gm_buf_printf(b, "\nffn sizes:");
    for (int l = 0; l < c->num_layers; l++) gm_buf_printf(b, " %d", c->intermediate_size[l]);
    gm_buf_printf(b, "\nactivation sparsity:");
    for (int l = 0; l < c->num_layers; l++) gm_buf_printf(b, " %g", c->activation_sparsity[l]);
    gm_buf_printf(b, "\n");
}

static void describe_tensors(const gm_model *m, gm_buf *b) {
    int64_t by_type[GM_ST_DTYPE_COUNT] = {0};
    size_t count[GM_ST_DTYPE_COUNT] = {0}, bytes = 0;
    for (size_t i = 0; i < m->st.n_tensors; i++) {
        by_type[m->st.tensors[i].dtype] += m->st.tensors[i].numel;
        count[m->st.tensors[i].dtype]++;
        bytes += m->st.tensors[i].nbytes;
    }
    gm_buf_printf(b, "parameters: %.3f M text decoder, %.3f M in the checkpoint (%.1f MB in %d file%s)\n",
                  m->n_params_text / 1e6, m->n_params_file / 1e6, bytes / 1e6, m->st.n_files,
                  m->st.n_files == 1 ? "" : "s");
    gm_buf_printf(b, "tensor dtypes:");
    for (int t = 0; t < GM_ST_DTYPE_COUNT; t++)
        if (count[t]) gm_buf_printf(b, " %s x%zu (%.3f M)", gm_st_dtype_name((gm_st_dtype)t), count[t], by_type[t] / 1e6);
    gm_buf_printf(b, "\ntokenizer: %s\n", m->tokenizer ? "tokenizer.json" : "none (token ids only)");
}

gm_status gm_model_describe(const gm_model *m, char *buf, size_t cap, size_t *len, gm_error *err) {
    gm_error_clear(err);
    gm_buf b = {0};
    describe_config(m, &b);
    if (m->format == GM_FORMAT_GGUF) gm_gguf_model_describe(m, &b);
    else describe_tensors(m, &b);
    if (!b.data) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    gm_status st = gm_copy_out(b.data, b.len, buf, cap, len, err);
    gm_buf_free(&b);
    return st;
}
