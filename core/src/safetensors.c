/* safetensors.c - see safetensors.h for the format and the contract. */
#include "safetensors.h"

#include "json.h"

#include <stdio.h>
#include <stdlib.h>

/* A header this large is certainly corrupt (real ones are < 2 MB). */
#define GM_ST_MAX_HEADER ((uint64_t)256 << 20)

static const struct { const char *name; size_t size; } st_types[GM_ST_DTYPE_COUNT] = {
    [GM_ST_F32] = {"F32", 4},  [GM_ST_F16] = {"F16", 2},     [GM_ST_BF16] = {"BF16", 2},
    [GM_ST_F64] = {"F64", 8},  [GM_ST_I64] = {"I64", 8},     [GM_ST_I32] = {"I32", 4},
    [GM_ST_I16] = {"I16", 2},  [GM_ST_I8] = {"I8", 1},       [GM_ST_U64] = {"U64", 8},
    [GM_ST_U32] = {"U32", 4},  [GM_ST_U16] = {"U16", 2},     [GM_ST_U8] = {"U8", 1},
    [GM_ST_BOOL] = {"BOOL", 1}, [GM_ST_F8_E4M3] = {"F8_E4M3", 1}, [GM_ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *gm_st_dtype_name(gm_st_dtype t) { return t < GM_ST_DTYPE_COUNT ? st_types[t].name : "?"; }
size_t gm_st_dtype_size(gm_st_dtype t) { return t < GM_ST_DTYPE_COUNT ? st_types[t].size : 0; }

static bool parse_dtype(const gm_json *j, int tok, gm_st_dtype *out) {
    for (int t = 0; t < GM_ST_DTYPE_COUNT; t++)
        if (gm_json_string_eq(j, tok, st_types[t].name)) {
            *out = (gm_st_dtype)t;
            return true;
        }
    return false;
}

/* Accumulates tensors of all files before sorting. */
typedef struct st_builder {
    gm_st_tensor *tensors;
    size_t n, cap;
    gm_buf names; /* names stored as offsets until the arena stops moving */
} st_builder;

static bool builder_push(st_builder *b, const gm_st_tensor *t) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        gm_st_tensor *n = gm_realloc(b->tensors, cap * sizeof *n);
        if (!n) return false;
        b->tensors = n;
        b->cap = cap;
    }
    b->tensors[b->n++] = *t;
    return true;
}

/* Parses one tensor entry `name: {dtype, shape, data_offsets}`. */
static gm_status parse_entry(const gm_json *j, int key, int val, const gm_mapped_file *f,
                             size_t data_start, int file_index, st_builder *b, gm_error *err) {
    size_t name_len;
    char *name = gm_json_string_dup(j, key, &name_len);
    if (!name) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
    gm_status st = GM_OK;
    gm_st_tensor t = {.file_index = file_index};
    int dt = gm_json_get(j, val, "dtype"), sh = gm_json_get(j, val, "shape");
    int off = gm_json_get(j, val, "data_offsets");
    if (gm_json_kind(j, val) != GM_JSON_OBJECT || dt < 0 || sh < 0 || off < 0) {
        st = gm_fail(err, GM_ERR_FORMAT, "%s: tensor '%s': entry needs dtype, shape and data_offsets",
                     f->path, name);
        goto done;
    }
    if (!parse_dtype(j, dt, &t.dtype)) {
        char buf[32] = "?";
        gm_json_string_copy(j, dt, buf, sizeof buf);
        st = gm_fail(err, GM_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%s'", f->path, name, buf);
        goto done;
    }
    if (gm_json_kind(j, sh) != GM_JSON_ARRAY || j->tok[sh].size > GM_ST_MAX_DIMS) {
        st = gm_fail(err, GM_ERR_FORMAT, "%s: tensor '%s': bad shape", f->path, name);
        goto done;
    }
    t.numel = 1;
    for (int e = gm_json_first(j, sh); e >= 0; e = gm_json_next_elem(j, sh, e)) {
        int64_t v;
        if (!gm_json_int64(j, e, &v) || v < 0 || (v > 0 && t.numel > INT64_MAX / 4 / v)) {
            st = gm_fail(err, GM_ERR_FORMAT, "%s: tensor '%s': bad shape dimension", f->path, name);
            goto done;
        }
        t.shape[t.ndim++] = v;
        t.numel *= v;
    }
    int64_t begin, end;
    int o0 = gm_json_first(j, off), o1 = o0 >= 0 ? gm_json_next_elem(j, off, o0) : -1;
    if (gm_json_kind(j, off) != GM_JSON_ARRAY || j->tok[off].size != 2 || !gm_json_int64(j, o0, &begin) ||
        !gm_json_int64(j, o1, &end) || begin < 0 || end < begin) {
        st = gm_fail(err, GM_ERR_FORMAT, "%s: tensor '%s': bad data_offsets", f->path, name);
        goto done;
    }
    size_t data_size = f->size - data_start;
    if ((uint64_t)end > data_size) {
        st = gm_fail(err, GM_ERR_FORMAT,
                     "%s: tensor '%s': data_offsets [%lld, %lld) out of range (data section is %zu bytes; file truncated?)",
                     f->path, name, (long long)begin, (long long)end, data_size);
        goto done;
    }
    t.nbytes = (size_t)(end - begin);
    if ((uint64_t)t.numel * gm_st_dtype_size(t.dtype) != t.nbytes) {
        st = gm_fail(err, GM_ERR_FORMAT, "%s: tensor '%s': %zu bytes for %lld elements of %s",
                     f->path, name, t.nbytes, (long long)t.numel, gm_st_dtype_name(t.dtype));
        goto done;
    }
    t.data = f->data + data_start + begin;
    t.name = (const char *)(uintptr_t)b->names.len; /* offset; fixed up after all files */
    if (!gm_buf_append(&b->names, name, name_len + 1) || !builder_push(b, &t))
        st = gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", f->path);
done:
    gm_free(name);
    return st;
}

static gm_status parse_file(const gm_mapped_file *f, int file_index, st_builder *b, gm_error *err) {
    if (f->size < 8)
        return gm_fail(err, GM_ERR_FORMAT, "%s: too small for a safetensors file (%zu bytes)", f->path, f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f->data[i];
    if (hlen > f->size - 8 || hlen > GM_ST_MAX_HEADER)
        return gm_fail(err, GM_ERR_FORMAT,
                       "%s: header length %llu past the end of the file (%zu bytes; truncated or not safetensors)",
                       f->path, (unsigned long long)hlen, f->size);
    gm_json j;
    gm_status st = gm_json_parse((const char *)f->data + 8, (size_t)hlen, f->path, &j, err);
    if (st != GM_OK) return st;
    if (gm_json_kind(&j, 0) != GM_JSON_OBJECT) {
        gm_json_free(&j);
        return gm_fail(err, GM_ERR_FORMAT, "%s: header is not a JSON object", f->path);
    }
    size_t data_start = 8 + (size_t)hlen;
    for (int k = gm_json_first(&j, 0); k >= 0 && st == GM_OK; k = gm_json_next_key(&j, 0, k)) {
        if (gm_json_string_eq(&j, k, "__metadata__")) continue;
        st = parse_entry(&j, k, k + 1, f, data_start, file_index, b, err);
    }
    gm_json_free(&j);
    return st;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const gm_st_tensor *)a)->name, ((const gm_st_tensor *)b)->name);
}

static int cmp_tensor_offset(const void *a, const void *b) {
    const gm_st_tensor *x = a, *y = b;
    if (x->file_index != y->file_index) return x->file_index < y->file_index ? -1 : 1;
    return x->data < y->data ? -1 : x->data > y->data;
}

/* Names unique, byte ranges disjoint: sorting twice is cheap (a few thousand tensors). */
static gm_status check_and_sort(gm_st_dir *d, gm_error *err) {
    qsort(d->tensors, d->n_tensors, sizeof *d->tensors, cmp_tensor_offset);
    for (size_t i = 1; i < d->n_tensors; i++) {
        const gm_st_tensor *p = &d->tensors[i - 1], *t = &d->tensors[i];
        if (p->file_index == t->file_index && p->data + p->nbytes > t->data && t->nbytes && p->nbytes)
            return gm_fail(err, GM_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap",
                           d->files[t->file_index].path, p->name, t->name);
    }
    qsort(d->tensors, d->n_tensors, sizeof *d->tensors, cmp_tensor_name);
    for (size_t i = 1; i < d->n_tensors; i++)
        if (strcmp(d->tensors[i - 1].name, d->tensors[i].name) == 0)
            return gm_fail(err, GM_ERR_FORMAT, "tensor '%s' appears twice (in %s and %s)",
                           d->tensors[i].name, d->files[d->tensors[i - 1].file_index].path,
                           d->files[d->tensors[i].file_index].path);
    return GM_OK;
}

static gm_status finish(gm_st_dir *d, st_builder *b, gm_error *err) {
    d->names = b->names.data;
    b->names.data = NULL;
    d->tensors = b->tensors;
    d->n_tensors = b->n;
    for (size_t i = 0; i < d->n_tensors; i++)
        d->tensors[i].name = d->names + (uintptr_t)d->tensors[i].name;
    return check_and_sort(d, err);
}

static gm_status open_files(gm_st_dir *d, char **paths, int n, gm_error *err) {
    st_builder b = {0};
    gm_status st = GM_OK;
    d->files = gm_calloc((size_t)n, sizeof *d->files);
    if (!d->files) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    for (int i = 0; i < n && st == GM_OK; i++) {
        st = gm_map_file(paths[i], &d->files[i], err);
        if (st == GM_OK) {
            d->n_files = i + 1;
            st = parse_file(&d->files[i], i, &b, err);
        }
    }
    if (st == GM_OK) {
        if (!b.names.data && !gm_buf_append(&b.names, "", 0)) st = gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
        else return finish(d, &b, err);
    }
    gm_free(b.tensors);
    gm_buf_free(&b.names);
    return st;
}

gm_status gm_st_open_file(const char *path, gm_st_dir *out, gm_error *err) {
    memset(out, 0, sizeof *out);
    char *paths[1] = {(char *)(uintptr_t)path};
    gm_status st = open_files(out, paths, 1, err);
    if (st != GM_OK) gm_st_close(out);
    return st;
}

/* Reads model.safetensors.index.json: the unique shard names, in first-seen order. */
static gm_status read_index(const char *dir, const char *index_path, gm_json *j, char **text,
                            char ***paths, int *n_paths, gm_error *err) {
    size_t size;
    gm_status st = gm_read_file(index_path, text, &size, err);
    if (st != GM_OK) return st;
    if ((st = gm_json_parse(*text, size, index_path, j, err)) != GM_OK) return st;
    int map = gm_json_get(j, 0, "weight_map");
    if (gm_json_kind(j, map) != GM_JSON_OBJECT || map < 0)
        return gm_fail(err, GM_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
    *paths = gm_calloc(j->tok[map].size + 1, sizeof **paths);
    if (!*paths) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    for (int k = gm_json_first(j, map); k >= 0; k = gm_json_next_key(j, map, k)) {
        char file[1024];
        if (gm_json_kind(j, k + 1) != GM_JSON_STRING ||
            gm_json_string_copy(j, k + 1, file, sizeof file) == (size_t)-1 || strchr(file, '/') || !file[0])
            return gm_fail(err, GM_ERR_FORMAT, "%s: bad shard file name in weight_map", index_path);
        bool seen = false;
        for (int i = 0; i < *n_paths && !seen; i++) seen = strcmp(strrchr((*paths)[i], '/') + 1, file) == 0;
        if (seen) continue;
        if (!((*paths)[*n_paths] = gm_path_join(dir, file))) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
        (*n_paths)++;
    }
    if (*n_paths == 0) return gm_fail(err, GM_ERR_FORMAT, "%s: weight_map is empty", index_path);
    return GM_OK;
}

/* Every tensor the index names must be in the shard it names. */
static gm_status check_index(const gm_st_dir *d, const gm_json *j, const char *index_path, gm_error *err) {
    int map = gm_json_get(j, 0, "weight_map");
    for (int k = gm_json_first(j, map); k >= 0; k = gm_json_next_key(j, map, k)) {
        char name[512], file[1024];
        if (gm_json_string_copy(j, k, name, sizeof name) == (size_t)-1)
            return gm_fail(err, GM_ERR_FORMAT, "%s: tensor name too long", index_path);
        gm_json_string_copy(j, k + 1, file, sizeof file);
        const gm_st_tensor *t = gm_st_find(d, name);
        if (!t) return gm_fail(err, GM_ERR_FORMAT, "%s lists tensor '%s' but no shard contains it", index_path, name);
        const char *shard = strrchr(d->files[t->file_index].path, '/') + 1;
        if (strcmp(shard, file) != 0)
            return gm_fail(err, GM_ERR_FORMAT, "%s puts tensor '%s' in %s but it is in %s", index_path, name, file, shard);
    }
    return GM_OK;
}

gm_status gm_st_open_dir(const char *dir, gm_st_dir *out, gm_error *err) {
    memset(out, 0, sizeof *out);
    char *index_path = gm_path_join(dir, "model.safetensors.index.json");
    char *single = gm_path_join(dir, "model.safetensors");
    gm_status st = GM_OK;
    if (!index_path || !single) st = gm_fail(err, GM_ERR_OUT_OF_MEMORY, "out of memory");
    else if (gm_file_exists(index_path)) {
        gm_json j = {0};
        char *text = NULL, **paths = NULL;
        int n = 0;
        st = read_index(dir, index_path, &j, &text, &paths, &n, err);
        if (st == GM_OK) st = open_files(out, paths, n, err);
        if (st == GM_OK) st = check_index(out, &j, index_path, err);
        for (int i = 0; paths && i < n; i++) gm_free(paths[i]);
        gm_free(paths);
        gm_json_free(&j);
        gm_free(text);
    } else if (gm_file_exists(single)) {
        st = gm_st_open_file(single, out, err);
    } else {
        st = gm_fail(err, GM_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json", dir);
    }
    gm_free(index_path);
    gm_free(single);
    if (st != GM_OK) gm_st_close(out);
    return st;
}

void gm_st_close(gm_st_dir *d) {
    if (!d) return;
    for (int i = 0; i < d->n_files; i++) gm_unmap_file(&d->files[i]);
    gm_free(d->files);
    gm_free(d->tensors);
    gm_free(d->names);
    memset(d, 0, sizeof *d);
}

const gm_st_tensor *gm_st_find(const gm_st_dir *d, const char *name) {
    size_t lo = 0, hi = d->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(d->tensors[mid].name, name);
        if (c == 0) return &d->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}
