/*
 * matformer.c - MatFormer submodel specs: table lookup, JSON, validation,
 * and the execution plan they turn into (as MatFormer Lab's slicing and
 * mistral.rs handle_matformer_slicing, with first_shared and the KV
 * producers taken from the config instead of E2B/E4B constants).
 */
#include "matformer.h"

#include "json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

size_t gm_submodel_count(void) { return gm_submodel_n_rows; }

static void row_to_spec(const gm_submodel_row *r, gm_submodel_spec *spec) {
    memset(spec, 0, sizeof *spec);
    spec->n_layers_to_skip = r->n_skip;
    memcpy(spec->layers_to_skip, r->skip, sizeof(int32_t) * (size_t)r->n_skip);
    spec->n_ffn_hidden_dims = r->n_ffn;
    memcpy(spec->ffn_hidden_dims, r->ffn, sizeof(int32_t) * (size_t)r->n_ffn);
}

gm_status gm_submodel_get(size_t i, gm_submodel_entry *entry, gm_submodel_spec *spec, gm_error *err) {
    if (i >= gm_submodel_n_rows)
        return gm_fail(err, GM_ERR_ARGUMENT, "submodel index %zu past the table (%zu rows)", i, gm_submodel_n_rows);
    const gm_submodel_row *r = &gm_submodel_rows[i];
    if (entry) *entry = (gm_submodel_entry){r->name, r->alias, r->num_layers, r->effective_params_b, r->mmlu};
    if (spec) row_to_spec(r, spec);
    return GM_OK;
}

/* Reads a JSON array of ints into out[cap]; false on anything else. */
static bool int_list(const gm_json *j, int arr, int32_t *out, int32_t *n, int cap) {
    if (arr < 0 || gm_json_kind(j, arr) != GM_JSON_ARRAY || (int)j->tok[arr].size > cap) return false;
    *n = 0;
    for (int e = gm_json_first(j, arr); e >= 0; e = gm_json_next_elem(j, arr, e)) {
        int64_t v;
        if (!gm_json_int64(j, e, &v) || v < 0 || v > INT32_MAX) return false;
        out[(*n)++] = (int32_t)v;
    }
    return true;
}

gm_status gm_submodel_parse_json(const char *text, size_t len, gm_submodel_spec *spec, gm_error *err) {
    memset(spec, 0, sizeof *spec);
    gm_json j;
    gm_status st = gm_json_parse(text, len, "submodel JSON", &j, err);
    if (st != GM_OK) return st;
    int skip = gm_json_get(&j, 0, "layers_to_skip"), ffn = gm_json_get(&j, 0, "ffn_hidden_dims");
    if (gm_json_kind(&j, 0) != GM_JSON_OBJECT || (skip < 0 && ffn < 0))
        st = gm_fail(err, GM_ERR_FORMAT, "submodel JSON: expected an object with layers_to_skip and/or ffn_hidden_dims");
    else if (skip >= 0 && !int_list(&j, skip, spec->layers_to_skip, &spec->n_layers_to_skip, GM_MAX_SUBMODEL_LAYERS))
        st = gm_fail(err, GM_ERR_FORMAT, "submodel JSON: layers_to_skip must be a list of layer indices");
    else if (ffn >= 0 && !int_list(&j, ffn, spec->ffn_hidden_dims, &spec->n_ffn_hidden_dims, GM_MAX_SUBMODEL_LAYERS))
        st = gm_fail(err, GM_ERR_FORMAT, "submodel JSON: ffn_hidden_dims must be a list of non-negative widths");
    gm_json_free(&j);
    return st;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

gm_status gm_submodel_resolve(const char *name, gm_submodel_spec *spec, gm_error *err) {
    memset(spec, 0, sizeof *spec);
    if (!name || !*name) return gm_fail(err, GM_ERR_ARGUMENT, "submodel name is empty");
    if (strcasecmp(name, "full") == 0) return GM_OK;
    for (size_t i = 0; i < gm_submodel_n_rows; i++) {
        const gm_submodel_row *r = &gm_submodel_rows[i];
        if (strcmp(name, r->name) == 0 || (r->alias[0] && strcasecmp(name, r->alias) == 0)) {
            row_to_spec(r, spec);
            return GM_OK;
        }
    }
    if (ends_with(name, ".json")) {
        char *text;
        size_t len;
        gm_status st = gm_read_file(name, &text, &len, err);
        if (st != GM_OK) return st;
        st = gm_submodel_parse_json(text, len, spec, err);
        gm_free(text);
        if (st != GM_OK) gm_error_prefix(err, "%s", name);
        return st;
    }
    char known[512] = "";
    size_t o = 0;
    for (size_t i = 0; i < gm_submodel_n_rows && o < sizeof known - 1; i++)
        if (gm_submodel_rows[i].alias[0])
            o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", o ? ", " : "", gm_submodel_rows[i].alias);
    return gm_fail(err, GM_ERR_ARGUMENT,
                   "unknown submodel '%s' (known: full, %s, the table's row names, or a .json file)", name, known);
}

/* ---- validation and the plan ---- */

static gm_status check_skips(const gm_text_config *c, const gm_submodel_spec *s, const gm_plan *full,
                             bool *skipped, gm_error *err) {
    if (s->n_layers_to_skip < 0 || s->n_layers_to_skip > GM_MAX_SUBMODEL_LAYERS)
        return gm_fail(err, GM_ERR_ARGUMENT, "n_layers_to_skip %d is out of range", s->n_layers_to_skip);
    for (int i = 0; i < s->n_layers_to_skip; i++) {
        int l = s->layers_to_skip[i];
        if (l < 0 || l >= c->num_layers)
            return gm_fail(err, GM_ERR_ARGUMENT, "layers_to_skip[%d] = %d is not a layer (the model has %d)", i, l,
                           c->num_layers);
        if (skipped[l]) return gm_fail(err, GM_ERR_ARGUMENT, "layer %d is listed twice in layers_to_skip", l);
        skipped[l] = true;
    }
    for (int l = 0; l < c->num_layers; l++)
        if (full->layers[l].kv_source != l && skipped[full->layers[l].kv_source] && !skipped[l])
            return gm_fail(err, GM_ERR_ARGUMENT,
                           "layer %d cannot be skipped: it is a KV-cache producer (KV-shared layer %d reads its keys and values)",
                           full->layers[l].kv_source, l);
    for (int l = 0; l < c->num_layers; l++) {
        int first_shared = c->num_layers - c->num_kv_shared_layers;
        if (skipped[l] && l < first_shared && (l == first_shared - 1 || l == first_shared - 2) && c->num_kv_shared_layers)
            return gm_fail(err, GM_ERR_ARGUMENT,
                           "layer %d cannot be skipped: layers first_shared-2 and first_shared-1 (%d, %d) are the KV-cache producers",
                           l, first_shared - 2, first_shared - 1);
    }
    if (s->n_layers_to_skip >= c->num_layers) return gm_fail(err, GM_ERR_ARGUMENT, "a submodel must keep at least one layer");
    return GM_OK;
}

/* Width of original layer l under the spec. */
static gm_status ffn_width(const gm_text_config *c, const gm_submodel_spec *s, int l, int kept_index, int n_kept,
                           int ffn_multiple, int32_t *out, gm_error *err) {
    int32_t d = c->intermediate_size[l];
    if (s->n_ffn_hidden_dims == c->num_layers) d = s->ffn_hidden_dims[l];
    else if (s->n_ffn_hidden_dims == n_kept) d = s->ffn_hidden_dims[kept_index];
    else if (s->n_ffn_hidden_dims != 0)
        return gm_fail(err, GM_ERR_ARGUMENT,
                       "ffn_hidden_dims has %d entries: expected %d (one per original layer) or %d (one per kept layer)",
                       s->n_ffn_hidden_dims, c->num_layers, n_kept);
    if (d <= 0) return gm_fail(err, GM_ERR_ARGUMENT, "FFN width of kept layer %d is %d: must be positive", l, d);
    if (d > c->intermediate_size[l])
        return gm_fail(err, GM_ERR_ARGUMENT, "FFN width %d of layer %d is larger than the layer's intermediate_size %d",
                       d, l, c->intermediate_size[l]);
    if (d % ffn_multiple != 0)
        return gm_fail(err, GM_ERR_ARGUMENT,
                       "FFN width %d of layer %d is not a multiple of the weights' quantization block (%d)", d, l,
                       ffn_multiple);
    *out = d;
    return GM_OK;
}

gm_status gm_plan_from_spec(const gm_text_config *c, const gm_submodel_spec *s, int ffn_multiple, gm_plan *plan,
                            gm_error *err) {
    gm_plan full;
    gm_plan_full(c, &full);
    if (!s) {
        *plan = full;
        return GM_OK;
    }
    bool skipped[GM_MAX_LAYERS] = {false};
    gm_status st = check_skips(c, s, &full, skipped, err);
    if (st != GM_OK) return st;
    int n_kept = c->num_layers - s->n_layers_to_skip, new_index[GM_MAX_LAYERS];
    memset(plan, 0, sizeof *plan);
    for (int l = 0; l < c->num_layers; l++) {
        if (skipped[l]) continue;
        int p = plan->n_layers++;
        new_index[l] = p;
        plan->layers[p] = full.layers[l]; /* src, sparsity, sliding, rope as the original layer */
        if ((st = ffn_width(c, s, l, p, n_kept, ffn_multiple, &plan->layers[p].ffn_dim, err)) != GM_OK) return st;
        /* KV-shared layers read the same original producer, renumbered */
        plan->layers[p].kv_source = full.layers[l].kv_source == l ? p : new_index[full.layers[l].kv_source];
    }
    return GM_OK;
}

static bool layer_of(const char *name, const char *prefix, int *layer, const char **rest) {
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0 || strncmp(name + n, "layers.", 7) != 0) return false;
    char *end;
    long l = strtol(name + n + 7, &end, 10);
    if (end == name + n + 7 || *end != '.') return false;
    *layer = (int)l;
    *rest = end + 1;
    return true;
}

int64_t gm_plan_effective_params(const gm_text_config *c, const gm_plan *plan, const char *prefix,
                                 const char *const *names, const int64_t *numel, size_t n) {
    int plan_of[GM_MAX_LAYERS];
    for (int l = 0; l < GM_MAX_LAYERS; l++) plan_of[l] = -1;
    for (int p = 0; p < plan->n_layers; p++) plan_of[plan->layers[p].src] = p;
    size_t plen = strlen(prefix);
    int64_t total = 0, H = c->hidden_size;
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i], *rest;
        int l;
        if (strncmp(name, prefix, plen) != 0) continue;
        const char *local = name + plen;
        if (strcmp(local, "embed_tokens.weight") == 0 || strcmp(local, "embed_tokens_per_layer.weight") == 0) continue;
        if (strcmp(local, "per_layer_model_projection.weight") == 0) {
            total += numel[i] / c->num_layers * plan->n_layers;
        } else if (layer_of(name, prefix, &l, &rest)) {
            if (l < 0 || l >= GM_MAX_LAYERS || plan_of[l] < 0) continue;
            total += strncmp(rest, "mlp.", 4) == 0 ? H * plan->layers[plan_of[l]].ffn_dim : numel[i];
        } else {
            total += numel[i];
        }
    }
    return total;
}
