/*
 * extract.c - writes a MatFormer submodel as a standalone Hugging Face
 * directory: config.json (the source's, with the sliced text_config
 * fields), model.safetensors (kept layers renumbered, FFN prefixes, the
 * kept layers' slices of the two per-layer-embedding tensors; audio and
 * vision tensors unchanged), and the tokenizer files. Tensors are written
 * one at a time, straight from the mapping, in their stored dtype: the
 * result is what MatFormer Lab's slicing notebook produces.
 */
#include "matformer.h"

#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* How one output tensor is produced from a source tensor. */
typedef enum slice_kind {
    SLICE_COPY,        /* bytes as stored */
    SLICE_ROWS,        /* first `keep` rows (gate/up: [F, H]) */
    SLICE_COLS,        /* first `keep` columns of every row (down: [H, F]) */
    SLICE_LAYER_ROWS,  /* per_layer_model_projection [L*P, H]: the kept layers' row blocks */
    SLICE_LAYER_COLS   /* embed_tokens_per_layer [Vp, L*P]: the kept layers' column blocks */
} slice_kind;

typedef struct out_tensor {
    char name[256];
    const gm_st_tensor *src;
    slice_kind kind;
    int64_t keep;            /* rows/cols kept for SLICE_ROWS/COLS */
    int64_t shape[2];        /* output shape when sliced */
    size_t nbytes;
} out_tensor;

typedef struct extract_ctx {
    const gm_model *m;
    const gm_plan *plan;
    int new_index[GM_MAX_LAYERS]; /* original -> plan index, -1 when skipped */
    out_tensor *out;
    size_t n_out;
    gm_error *err;
} extract_ctx;

static int parse_layer(const char *local, const char **rest) {
    if (strncmp(local, "layers.", 7) != 0) return -1;
    char *end;
    long l = strtol(local + 7, &end, 10);
    if (end == local + 7 || *end != '.' || l < 0 || l >= GM_MAX_LAYERS) return -1;
    *rest = end + 1;
    return (int)l;
}

/* Decides the output name, slicing and size of source tensor t; false = not written. */
static bool plan_tensor(extract_ctx *x, const gm_st_tensor *t, out_tensor *o) {
    const gm_text_config *c = &x->m->cfg;
    size_t es = gm_st_dtype_size(t->dtype), plen = strlen(x->m->prefix);
    memset(o, 0, sizeof *o);
    o->src = t;
    o->kind = SLICE_COPY;
    o->nbytes = t->nbytes;
    snprintf(o->name, sizeof o->name, "%s", t->name);
    if (strncmp(t->name, x->m->prefix, plen) != 0) return true; /* audio / vision / others */
    const char *local = t->name + plen, *rest;
    int64_t P = c->hidden_size_per_layer_input, kept = x->plan->n_layers;
    int l = parse_layer(local, &rest);
    if (l >= 0) {
        if (l >= c->num_layers || x->new_index[l] < 0) return false;
        const gm_plan_layer *pl = &x->plan->layers[x->new_index[l]];
        snprintf(o->name, sizeof o->name, "%slayers.%d.%s", x->m->prefix, x->new_index[l], rest);
        bool rows = strcmp(rest, "mlp.gate_proj.weight") == 0 || strcmp(rest, "mlp.up_proj.weight") == 0;
        bool cols = strcmp(rest, "mlp.down_proj.weight") == 0;
        if ((rows || cols) && t->ndim == 2) {
            o->kind = rows ? SLICE_ROWS : SLICE_COLS;
            o->keep = pl->ffn_dim;
            o->shape[0] = rows ? pl->ffn_dim : t->shape[0];
            o->shape[1] = rows ? t->shape[1] : pl->ffn_dim;
            o->nbytes = (size_t)(o->shape[0] * o->shape[1]) * es;
        }
    } else if (strcmp(local, "per_layer_model_projection.weight") == 0 && t->ndim == 2) {
        o->kind = SLICE_LAYER_ROWS;
        o->shape[0] = kept * P, o->shape[1] = t->shape[1];
        o->nbytes = (size_t)(o->shape[0] * o->shape[1]) * es;
    } else if (strcmp(local, "embed_tokens_per_layer.weight") == 0 && t->ndim == 2) {
        o->kind = SLICE_LAYER_COLS;
        o->shape[0] = t->shape[0], o->shape[1] = kept * P;
        o->nbytes = (size_t)(o->shape[0] * o->shape[1]) * es;
    }
    return true;
}

static void shape_json(gm_buf *b, const out_tensor *o) {
    const gm_st_tensor *t = o->src;
    gm_buf_printf(b, "[");
    if (o->kind != SLICE_COPY) gm_buf_printf(b, "%lld,%lld", (long long)o->shape[0], (long long)o->shape[1]);
    else
        for (int i = 0; i < t->ndim; i++) gm_buf_printf(b, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    gm_buf_printf(b, "]");
}

/* A JSON string body: tensor names come from a file, so quote what needs quoting. */
static void json_escaped(gm_buf *b, const char *s) {
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') gm_buf_printf(b, "\\%c", ch);
        else if (ch < 0x20) gm_buf_printf(b, "\\u%04x", ch);
        else gm_buf_append(b, s, 1);
    }
}

/* The safetensors header for x->out, padded with spaces to a multiple of 8 bytes (as HF writes). */
static bool build_header(extract_ctx *x, gm_buf *h) {
    size_t offset = 0;
    gm_buf_printf(h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < x->n_out; i++) {
        const out_tensor *o = &x->out[i];
        gm_buf_printf(h, ",\"");
        json_escaped(h, o->name);
        gm_buf_printf(h, "\":{\"dtype\":\"%s\",\"shape\":", gm_st_dtype_name(o->src->dtype));
        shape_json(h, o);
        gm_buf_printf(h, ",\"data_offsets\":[%zu,%zu]}", offset, offset + o->nbytes);
        offset += o->nbytes;
    }
    gm_buf_printf(h, "}");
    while (h->len % 8) gm_buf_append(h, " ", 1);
    return h->data != NULL;
}

static bool write_tensor(FILE *f, const extract_ctx *x, const out_tensor *o) {
    const gm_st_tensor *t = o->src;
    size_t es = gm_st_dtype_size(t->dtype);
    int64_t P = x->m->cfg.hidden_size_per_layer_input;
    switch (o->kind) {
    case SLICE_COPY: return fwrite(t->data, 1, t->nbytes, f) == t->nbytes;
    case SLICE_ROWS: return fwrite(t->data, 1, o->nbytes, f) == o->nbytes; /* a prefix of rows is a prefix of bytes */
    case SLICE_COLS:
        for (int64_t r = 0; r < t->shape[0]; r++)
            if (fwrite(t->data + (size_t)(r * t->shape[1]) * es, es, (size_t)o->keep, f) != (size_t)o->keep) return false;
        return true;
    case SLICE_LAYER_ROWS:
        for (int p = 0; p < x->plan->n_layers; p++) {
            size_t block = (size_t)(P * t->shape[1]) * es;
            if (fwrite(t->data + (size_t)x->plan->layers[p].src * block, 1, block, f) != block) return false;
        }
        return true;
    case SLICE_LAYER_COLS:
        for (int64_t r = 0; r < t->shape[0]; r++)
            for (int p = 0; p < x->plan->n_layers; p++) {
                const uint8_t *src = t->data + (size_t)(r * t->shape[1] + x->plan->layers[p].src * P) * es;
                if (fwrite(src, es, (size_t)P, f) != (size_t)P) return false;
            }
        return true;
    }
    return false;
}

static gm_status write_safetensors(extract_ctx *x, const char *path) {
    gm_buf h = {0};
    if (!build_header(x, &h)) return gm_fail(x->err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    FILE *f = fopen(path, "wb");
    if (!f) {
        gm_buf_free(&h);
        return gm_fail(x->err, GM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    }
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    bool ok = fwrite(len, 1, 8, f) == 8 && fwrite(h.data, 1, h.len, f) == h.len;
    for (size_t i = 0; i < x->n_out && ok; i++) ok = write_tensor(f, x, &x->out[i]);
    ok = fclose(f) == 0 && ok;
    gm_buf_free(&h);
    return ok ? GM_OK : gm_fail(x->err, GM_ERR_IO, "%s: write failed (disk full?)", path);
}

/* ---- config.json: the source text with the sliced fields spliced in ---- */

/* Byte span [*b, *e) of value token i (containers: to the matching bracket). */
static void value_span(const gm_json *j, int i, size_t *b, size_t *e) {
    const gm_json_token *t = &j->tok[i];
    if (t->type == GM_JSON_STRING) {
        *b = t->start - 1, *e = t->start + t->len + 1;
        return;
    }
    *b = t->start;
    if (t->type != GM_JSON_ARRAY && t->type != GM_JSON_OBJECT) {
        *e = t->start + t->len;
        return;
    }
    int depth = 0;
    bool in_str = false;
    for (size_t p = t->start; p < j->src_len; p++) {
        char ch = j->src[p];
        if (in_str) {
            if (ch == '\\') p++;
            else if (ch == '"') in_str = false;
        } else if (ch == '"') in_str = true;
        else if (ch == '[' || ch == '{') depth++;
        else if ((ch == ']' || ch == '}') && --depth == 0) {
            *e = p + 1;
            return;
        }
    }
    *e = j->src_len;
}

typedef struct splice { size_t b, e; char *text; } splice;

static int cmp_splice(const void *a, const void *b) {
    const splice *x = a, *y = b;
    return x->b < y->b ? -1 : x->b > y->b;
}

static char *field_value(const extract_ctx *x, int which) {
    const gm_text_config *c = &x->m->cfg;
    const gm_plan *pl = x->plan;
    int first_shared = c->num_layers - c->num_kv_shared_layers, skipped_shared = 0;
    for (int l = first_shared; l < c->num_layers; l++) skipped_shared += x->new_index[l] < 0;
    gm_buf b = {0};
    switch (which) {
    case 0: gm_buf_printf(&b, "%d", pl->n_layers); break;
    case 1: gm_buf_printf(&b, "%d", c->num_kv_shared_layers - skipped_shared); break;
    default:
        gm_buf_printf(&b, "[");
        for (int p = 0; p < pl->n_layers; p++) {
            const char *sep = p ? ", " : "";
            if (which == 2) gm_buf_printf(&b, "%s\"%s\"", sep, pl->layers[p].sliding ? "sliding_attention" : "full_attention");
            if (which == 3) gm_buf_printf(&b, "%s%.9g", sep, pl->layers[p].sparsity);
            if (which == 4) gm_buf_printf(&b, "%s%d", sep, pl->layers[p].ffn_dim);
        }
        gm_buf_printf(&b, "]");
    }
    return b.data;
}

static gm_status write_config(extract_ctx *x, const char *src_path, const char *dst_path) {
    static const char *const keys[] = {"num_hidden_layers", "num_kv_shared_layers", "layer_types",
                                       "activation_sparsity_pattern", "intermediate_size"};
    char *text;
    size_t len;
    gm_json j;
    gm_status st = gm_read_file(src_path, &text, &len, x->err);
    if (st != GM_OK) return st;
    if ((st = gm_json_parse(text, len, src_path, &j, x->err)) != GM_OK) {
        gm_free(text);
        return st;
    }
    int tc = gm_json_get(&j, 0, "text_config");
    int obj = tc >= 0 ? tc : 0;
    splice sp[5];
    for (int k = 0; k < 5; k++) {
        int v = gm_json_get(&j, obj, keys[k]);
        char *val = field_value(x, k);
        if (v >= 0) value_span(&j, v, &sp[k].b, &sp[k].e), sp[k].text = val;
        else { /* absent: insert right after the object's '{' */
            gm_buf b = {0};
            gm_buf_printf(&b, "\"%s\": %s, ", keys[k], val ? val : "");
            gm_free(val);
            sp[k].b = sp[k].e = j.tok[obj].start + 1, sp[k].text = b.data;
        }
    }
    qsort(sp, 5, sizeof sp[0], cmp_splice);
    gm_buf out = {0};
    size_t at = 0;
    for (int k = 0; k < 5; k++) {
        gm_buf_append(&out, text + at, sp[k].b - at);
        if (sp[k].text) gm_buf_append(&out, sp[k].text, strlen(sp[k].text));
        at = sp[k].e;
        gm_free(sp[k].text);
    }
    gm_buf_append(&out, text + at, len - at);
    gm_json_free(&j);
    gm_free(text);
    FILE *f = out.data ? fopen(dst_path, "wb") : NULL;
    bool ok = f && fwrite(out.data, 1, out.len, f) == out.len;
    if (f) ok = fclose(f) == 0 && ok;
    gm_buf_free(&out);
    return ok ? GM_OK : gm_fail(x->err, GM_ERR_IO, "%s: cannot write", dst_path);
}

static gm_status copy_file_if_present(const char *src_dir, const char *dst_dir, const char *name, gm_error *err) {
    char *src = gm_path_join(src_dir, name), *dst = gm_path_join(dst_dir, name);
    gm_status st = GM_OK;
    if (!src || !dst) st = gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    else if (gm_file_exists(src)) {
        char *data;
        size_t n;
        if ((st = gm_read_file(src, &data, &n, err)) == GM_OK) {
            FILE *f = fopen(dst, "wb");
            bool ok = f && fwrite(data, 1, n, f) == n;
            if (f) ok = fclose(f) == 0 && ok;
            if (!ok) st = gm_fail(err, GM_ERR_IO, "%s: cannot write", dst);
            gm_free(data);
        }
    }
    gm_free(src);
    gm_free(dst);
    return st;
}

gm_status gm_model_extract_submodel(const gm_model *m, const gm_submodel_spec *spec, const char *out_dir,
                                    gm_error *err) {
    gm_error_clear(err);
    if (m->format != GM_FORMAT_HF_DIR)
        return gm_fail(err, GM_ERR_UNSUPPORTED,
                       "%s: extracting a submodel needs the Hugging Face directory the model came from, not a GGUF file",
                       m->path);
    gm_plan plan;
    gm_status st = gm_model_check_submodel(m, spec, NULL, err);
    if (st == GM_OK) st = gm_plan_from_spec(&m->cfg, spec, 1, &plan, err);
    if (st != GM_OK) return st;
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return gm_fail(err, GM_ERR_IO, "%s: cannot create directory: %s", out_dir, strerror(errno));
    extract_ctx x = {.m = m, .plan = &plan, .err = err};
    for (int l = 0; l < GM_MAX_LAYERS; l++) x.new_index[l] = -1;
    for (int p = 0; p < plan.n_layers; p++) x.new_index[plan.layers[p].src] = p;
    x.out = gm_calloc(m->st.n_tensors + 1, sizeof *x.out);
    if (!x.out) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    for (size_t i = 0; i < m->st.n_tensors; i++)
        if (plan_tensor(&x, &m->st.tensors[i], &x.out[x.n_out])) x.n_out++;
    char *cfg_src = gm_path_join(m->path, "config.json"), *cfg_dst = gm_path_join(out_dir, "config.json");
    char *st_dst = gm_path_join(out_dir, "model.safetensors");
    if (!cfg_src || !cfg_dst || !st_dst) st = gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    if (st == GM_OK) st = write_config(&x, cfg_src, cfg_dst);
    if (st == GM_OK) st = write_safetensors(&x, st_dst);
    static const char *const extras[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                         "generation_config.json", "preprocessor_config.json"};
    for (size_t i = 0; i < GM_ARRAY_LEN(extras) && st == GM_OK; i++) st = copy_file_if_present(m->path, out_dir, extras[i], err);
    gm_free(cfg_src);
    gm_free(cfg_dst);
    gm_free(st_dst);
    gm_free(x.out);
    return st;
}
