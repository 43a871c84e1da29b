/*
 * matformer.h - MatFormer submodels as execution plans (see the public
 * comment in gemma3n.h for the rules) and the embedded official table.
 */
#ifndef GM_MATFORMER_H
#define GM_MATFORMER_H

#include "model.h"

/* One row of the official slicing table (matformer_table.c, generated from core/data/). */
typedef struct gm_submodel_row {
    const char *name, *alias;
    int32_t num_layers;
    double effective_params_b;
    const char *mmlu;
    int32_t n_skip;
    int32_t skip[GM_MAX_SUBMODEL_LAYERS];
    int32_t n_ffn;                        /* per KEPT layer */
    int32_t ffn[GM_MAX_SUBMODEL_LAYERS];
} gm_submodel_row;

extern const gm_submodel_row gm_submodel_rows[];
extern const size_t gm_submodel_n_rows;

/*
 * Builds the plan of `spec` (NULL = full model) over a model with config
 * `cfg`. FFN widths must be multiples of `ffn_multiple` (the weights'
 * quantization block; 1 for BF16/F16/F32). Explains every rejection.
 */
GM_INTERNAL gm_status gm_plan_from_spec(const gm_text_config *cfg, const gm_submodel_spec *spec, int ffn_multiple,
                                        gm_plan *plan, gm_error *err);

/*
 * Effective parameters of `plan` from the checkpoint's tensor shapes:
 * names[i] (full names) with numel[i]; tensors outside `prefix` (audio,
 * vision) and the two embedding tables are not counted.
 */
GM_INTERNAL int64_t gm_plan_effective_params(const gm_text_config *cfg, const gm_plan *plan, const char *prefix,
                                             const char *const *names, const int64_t *numel, size_t n);

#endif
