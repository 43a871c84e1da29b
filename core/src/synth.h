/*
 * synth.h - writer of random-weight Gemma 3n checkpoints in the Hugging
 * Face layout (BF16 safetensors shards + model.safetensors.index.json +
 * config.json), for benchmarks of loading, memory, speed and MatFormer
 * slicing at full size. The values mean nothing; only their scale matters
 * (activations must stay finite). Specification:
 * shared/golden/full_size/make_synthetic_checkpoint.md.
 *
 * Output of gm_synth_write(.., out_dir, ..):
 *   out_dir/config.json                           copy of the config
 *   out_dir/model-0000i-of-0000K.safetensors      tensors in list order, a new
 *                                                 shard when the next tensor
 *                                                 would pass the budget
 *   out_dir/model.safetensors.index.json          written last (indent 2, sorted
 *                                                 keys, as transformers)
 *
 * Values. Every tensor is mean + scale * N(0,1) with (mean, scale) picked
 * from its name and shape (gm_synth_rule: norms 1 + 0.2 N, matrices
 * N / sqrt(fan_in), ...), rounded to bf16 (nearest even). The normals come
 * from Box-Muller over xoshiro256** streams; the streams are keyed by
 * (seed, tensor name, block of GM_SYNTH_BLOCK elements), so a tensor's
 * values depend neither on the tensor order, nor on sharding, nor on the
 * number of threads: same seed and list => byte-identical files.
 *
 * Memory: a ring of a few 1 MB slots, whatever the tensor sizes. Threads:
 * generator threads fill the ring, the calling thread writes it in order.
 */
#ifndef GM_SYNTH_H
#define GM_SYNTH_H

#include "gm_internal.h"

#define GM_SYNTH_MAX_DIMS 8
/* Elements per independently keyed random stream (part of the value definition). */
#define GM_SYNTH_BLOCK 8192
/* Default shard budget: transformers' save_pretrained default (5 GB). */
#define GM_SYNTH_DEFAULT_SHARD_BYTES ((size_t)5000000000u)

typedef struct gm_synth_tensor {
    const char *name;                  /* printable ASCII, no '"' or '\\' */
    int ndim;                          /* 0..GM_SYNTH_MAX_DIMS */
    int64_t shape[GM_SYNTH_MAX_DIMS];
} gm_synth_tensor;

typedef struct gm_synth_options {
    uint64_t seed;
    size_t shard_bytes;   /* tensor-data budget per shard; 0 = GM_SYNTH_DEFAULT_SHARD_BYTES */
    int n_threads;        /* generator threads: 0 = one per core (at most 4); < 0 = none,
                             everything on the calling thread */
    /* Called on the calling thread after each written piece with the fraction
       of tensor bytes written so far (ends with 1.0). May be NULL. */
    void (*progress)(void *user, double fraction);
    void *user;
    /* Optional override of the value rule: called with gm_synth_rule's (mean,
       scale) of each tensor, may replace them. Called from the generator
       threads, so it must be a pure function of its arguments. NULL = the
       rule as is (same bytes as before this hook existed). */
    void (*rule)(void *rule_user, const char *name, int ndim, const int64_t *shape, float *mean,
                 float *scale);
    void *rule_user;
} gm_synth_options;

/*
 * Writes the checkpoint of a full-size variant. `variant` is "E2B" or
 * "E4B" (the tensor count and byte total of the TSV are checked against
 * the released checkpoints) or NULL for any other list. `tsv_path` is the
 * tensor list (name<TAB>shape JSON<TAB>numel, header line and '#' comments
 * skipped), `config_path` the config.json to copy. out_dir is created if
 * missing (not its parents); free space is checked before anything is
 * written. shard_bytes 0 = 5e9. progress may be NULL.
 */
GM_INTERNAL gm_status gm_synth_write(const char *variant, const char *tsv_path,
                                     const char *config_path, const char *out_dir, uint64_t seed,
                                     size_t shard_bytes,
                                     void (*progress)(void *user, double fraction), void *user,
                                     gm_error *err);

/*
 * The same from an in-memory tensor list and config text (tests write small
 * checkpoints this way). config_text must be valid JSON.
 */
GM_INTERNAL gm_status gm_synth_write_list(const gm_synth_tensor *tensors, size_t n_tensors,
                                          const char *config_text, size_t config_len,
                                          const char *out_dir, const gm_synth_options *opt,
                                          gm_error *err);

/* A parsed tensor-list TSV; names point into `text`. Free with gm_synth_list_free. */
typedef struct gm_synth_list {
    gm_synth_tensor *tensors;
    size_t n;
    char *text;
} gm_synth_list;

GM_INTERNAL gm_status gm_synth_read_tsv(const char *path, gm_synth_list *out, gm_error *err);

/*
 * The text decoder's tensors as a released checkpoint names and shapes them
 * for config c (under model.language_model.; the k/v projections of
 * KV-shared layers included, as upstream stores them). For small synthetic
 * checkpoints of any shape (tests, the llama.cpp cross-check).
 */
struct gm_text_config;
GM_INTERNAL gm_status gm_synth_text_tensors(const struct gm_text_config *c, gm_synth_list *out, gm_error *err);
GM_INTERNAL void gm_synth_list_free(gm_synth_list *list);

/* The value rule of a tensor: its elements are mean + scale * N(0,1). */
GM_INTERNAL void gm_synth_rule(const char *name, int ndim, const int64_t *shape, float *mean,
                               float *scale);

/*
 * Elements [start, start + count) of tensor `name` (row-major flat index)
 * before rounding to bf16, exactly as gm_synth_write computes them; the
 * stored bf16 is gm_f32_to_bf16 of these. For tests and tools.
 */
GM_INTERNAL void gm_synth_values(uint64_t seed, const char *name, int ndim, const int64_t *shape,
                                 uint64_t start, size_t count, float *out);

#endif /* GM_SYNTH_H */
