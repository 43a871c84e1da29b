/*
 * gguf_write.c - the GGUF v3 writer. See gguf.h for the format and the API.
 *
 * KVs are serialized into a byte buffer as they are set (so the order in
 * the file is the order of the calls); tensors are recorded as
 * descriptions whose bytes are pulled only while writing. Offsets are
 * assigned at write time: tensor i starts at the sum of the sizes of
 * tensors 0..i-1, each rounded up to the alignment - the layout llama.cpp
 * writes and checks.
 */
#include "gguf.h"

#include <errno.h>
#include <stdio.h>

typedef struct wtensor {
    char *name;
    int32_t type;
    int n_dims;
    int64_t ne[GM_GGUF_MAX_DIMS];
    size_t size;              /* bytes */
    const void *data;         /* or NULL: ask fn */
    gm_gguf_data_fn fn;
    void *user;
} wtensor;

struct gm_gguf_writer {
    gm_buf kv_bytes;          /* the serialized KVs */
    uint64_t n_kv;
    char **keys;              /* for duplicate checks */
    size_t keys_cap;
    wtensor *tensors;
    size_t n_tensors, tensors_cap;
    uint32_t alignment;
};

/* The output of one write: a FILE or a growable buffer. */
typedef struct wout {
    FILE *f;
    gm_buf *buf;
    const char *what;
    uint64_t written;
} wout;

struct gm_gguf_sink {
    wout *out;
    const wtensor *t;
    uint64_t got;             /* bytes received so far */
};

#define WHAT "gguf writer"

gm_status gm_gguf_writer_new(gm_gguf_writer **out, gm_error *err) {
    *out = gm_calloc(1, sizeof **out);
    if (!*out) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, WHAT ": out of memory");
    (*out)->alignment = GM_GGUF_DEFAULT_ALIGNMENT;
    return GM_OK;
}

void gm_gguf_writer_free(gm_gguf_writer *w) {
    if (!w) return;
    for (uint64_t i = 0; i < w->n_kv; i++) gm_free(w->keys[i]);
    gm_free(w->keys);
    for (size_t i = 0; i < w->n_tensors; i++) gm_free(w->tensors[i].name);
    gm_free(w->tensors);
    gm_buf_free(&w->kv_bytes);
    gm_free(w);
}

static bool grow(void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return true;
    size_t c = *cap ? *cap * 2 : 16;
    if (c > SIZE_MAX / elem) return false;
    void *p = gm_realloc(*arr, c * elem);
    if (!p) return false;
    *arr = p;
    *cap = c;
    return true;
}

/* ---- serialization helpers (little-endian host) ---- */

static bool put(gm_buf *b, const void *p, size_t n) { return n == 0 || gm_buf_append(b, p, n); }
static bool put_u32(gm_buf *b, uint32_t v) { return put(b, &v, 4); }
static bool put_u64(gm_buf *b, uint64_t v) { return put(b, &v, 8); }
static bool put_str(gm_buf *b, const char *s, size_t n) { return put_u64(b, n) && put(b, s, n); }

/* ---- KVs ---- */

/* Checks a new key of value type `type`: non-empty, not too long, not set
 * before; "general.alignment" only as a u32. */
static gm_status check_key(const gm_gguf_writer *w, const char *key, gm_gguf_type type, gm_error *err) {
    if (!key || !*key) return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": empty key");
    if (strcmp(key, "general.alignment") == 0 && type != GM_GGUF_U32)
        return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": 'general.alignment' must be u32, not %s",
                       gm_gguf_type_name(type));
    if (strlen(key) > GM_GGUF_MAX_KEY)
        return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": key of %zu bytes is too long (max %d)", strlen(key),
                       GM_GGUF_MAX_KEY);
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->keys[i], key) == 0)
            return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": duplicate key '%s'", key);
    return GM_OK;
}

/* Serializes the key and the value type (the value follows). */
static bool begin_kv(gm_gguf_writer *w, const char *key, gm_gguf_type type) {
    return put_str(&w->kv_bytes, key, strlen(key)) && put_u32(&w->kv_bytes, (uint32_t)type);
}

/* Commits a fully serialized KV, or rolls the buffer back to `mark` on failure. */
static gm_status end_kv(gm_gguf_writer *w, const char *key, size_t mark, bool ok, gm_error *err) {
    char *copy = ok ? gm_strndup(key, strlen(key)) : NULL;
    if (!copy || !grow((void **)&w->keys, &w->keys_cap, (size_t)w->n_kv, sizeof(char *))) {
        gm_free(copy);
        w->kv_bytes.len = mark;
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, WHAT ": out of memory");
    }
    w->keys[w->n_kv++] = copy;
    return GM_OK;
}

static bool is_num_type(gm_gguf_type t) {
    return t >= GM_GGUF_U8 && t < GM_GGUF_TYPE_COUNT && t != GM_GGUF_STR && t != GM_GGUF_ARRAY;
}

/* Appends n elements of numeric/bool type t from data (bools as 0/1 bytes). */
static bool put_elems(gm_buf *b, gm_gguf_type t, const void *data, uint64_t n) {
    if (t != GM_GGUF_BOOL) return put(b, data, (size_t)n * gm_gguf_type_size(t));
    const bool *v = data;
    for (uint64_t i = 0; i < n; i++) {
        uint8_t byte = v[i] ? 1 : 0;
        if (!put(b, &byte, 1)) return false;
    }
    return true;
}

gm_status gm_gguf_writer_set_scalar(gm_gguf_writer *w, const char *key, gm_gguf_type type,
                                    const void *value, gm_error *err) {
    if (!is_num_type(type))
        return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": key '%s': type %s is not a number type",
                       key ? key : "", gm_gguf_type_name(type));
    gm_status st = check_key(w, key, type, err);
    if (st != GM_OK) return st;
    bool is_alignment = strcmp(key, "general.alignment") == 0;
    if (is_alignment && type != GM_GGUF_U32)
        return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": general.alignment must be a u32, not %s", gm_gguf_type_name(type));
    if (is_alignment && type == GM_GGUF_U32) {
        uint32_t a;
        memcpy(&a, value, 4);
        if (a == 0 || (a & (a - 1)) != 0)
            return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": alignment %u is not a power of 2", a);
    }
    size_t mark = w->kv_bytes.len;
    bool ok = begin_kv(w, key, type) && put_elems(&w->kv_bytes, type, value, 1);
    if ((st = end_kv(w, key, mark, ok, err)) == GM_OK && is_alignment && type == GM_GGUF_U32)
        memcpy(&w->alignment, value, 4);
    return st;
}

gm_status gm_gguf_writer_set_u32(gm_gguf_writer *w, const char *key, uint32_t v, gm_error *err) {
    return gm_gguf_writer_set_scalar(w, key, GM_GGUF_U32, &v, err);
}
gm_status gm_gguf_writer_set_i32(gm_gguf_writer *w, const char *key, int32_t v, gm_error *err) {
    return gm_gguf_writer_set_scalar(w, key, GM_GGUF_I32, &v, err);
}
gm_status gm_gguf_writer_set_f32(gm_gguf_writer *w, const char *key, float v, gm_error *err) {
    return gm_gguf_writer_set_scalar(w, key, GM_GGUF_F32, &v, err);
}
gm_status gm_gguf_writer_set_bool(gm_gguf_writer *w, const char *key, bool v, gm_error *err) {
    return gm_gguf_writer_set_scalar(w, key, GM_GGUF_BOOL, &v, err);
}

gm_status gm_gguf_writer_set_str(gm_gguf_writer *w, const char *key, const char *s, gm_error *err) {
    gm_status st = check_key(w, key, GM_GGUF_STR, err);
    if (st != GM_OK) return st;
    if (!s || strlen(s) > GM_GGUF_MAX_STRING)
        return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": key '%s': NULL or too long string", key);
    size_t mark = w->kv_bytes.len;
    bool ok = begin_kv(w, key, GM_GGUF_STR) && put_str(&w->kv_bytes, s, strlen(s));
    return end_kv(w, key, mark, ok, err);
}

gm_status gm_gguf_writer_set_arr(gm_gguf_writer *w, const char *key, gm_gguf_type elem,
                                 const void *data, uint64_t n, gm_error *err) {
    gm_status st = check_key(w, key, GM_GGUF_ARRAY, err);
    if (st != GM_OK) return st;
    if (!is_num_type(elem))
        return gm_fail(err, GM_ERR_ARGUMENT,
                       WHAT ": key '%s': arrays of %s are not written by set_arr (strings: set_arr_str; "
                       "nested arrays: unsupported, llama.cpp cannot read them)",
                       key, gm_gguf_type_name(elem));
    if (n > SIZE_MAX / 8 || (n > 0 && !data))
        return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": key '%s': bad array (%llu elements)", key,
                       (unsigned long long)n);
    size_t mark = w->kv_bytes.len;
    bool ok = begin_kv(w, key, GM_GGUF_ARRAY) && put_u32(&w->kv_bytes, (uint32_t)elem) &&
              put_u64(&w->kv_bytes, n) && put_elems(&w->kv_bytes, elem, data, n);
    return end_kv(w, key, mark, ok, err);
}

gm_status gm_gguf_writer_set_arr_str(gm_gguf_writer *w, const char *key, const char *const *strs,
                                     const size_t *lens, uint64_t n, gm_error *err) {
    gm_status st = check_key(w, key, GM_GGUF_ARRAY, err);
    if (st != GM_OK) return st;
    if (n > 0 && !strs) return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": key '%s': NULL strings", key);
    for (uint64_t i = 0; i < n; i++)
        if (!strs[i] || (lens ? lens[i] : strlen(strs[i])) > GM_GGUF_MAX_STRING)
            return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": key '%s': string %llu is NULL or too long", key,
                           (unsigned long long)i);
    size_t mark = w->kv_bytes.len;
    bool ok = begin_kv(w, key, GM_GGUF_ARRAY) && put_u32(&w->kv_bytes, GM_GGUF_STR) &&
              put_u64(&w->kv_bytes, n);
    for (uint64_t i = 0; ok && i < n; i++)
        ok = put_str(&w->kv_bytes, strs[i], lens ? lens[i] : strlen(strs[i]));
    return end_kv(w, key, mark, ok, err);
}

/* ---- tensors ---- */

static gm_status check_tensor(const gm_gguf_writer *w, const char *name, int32_t type, int n_dims,
                              const int64_t *ne, size_t *size, gm_error *err) {
    if (!name || !*name || strlen(name) > GM_GGUF_MAX_NAME)
        return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": tensor name '%s' must have 1 to %d bytes",
                       name ? name : "", GM_GGUF_MAX_NAME);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": duplicate tensor name '%s'", name);
    const gm_ggml_traits *tr = gm_ggml_type_traits(type);
    if (!tr) return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": tensor '%s': unknown type id %d", name, type);
    if (n_dims < 1 || n_dims > GM_GGUF_MAX_DIMS || !ne)
        return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": tensor '%s': %d dimensions (must be 1 to %d)", name,
                       n_dims, GM_GGUF_MAX_DIMS);
    int64_t n = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] <= 0 || n > INT64_MAX / ne[d])
            return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": tensor '%s': bad dimension %d (%lld)", name, d,
                           (long long)ne[d]);
        n *= ne[d];
    }
    if (ne[0] % tr->block_size != 0)
        return gm_fail(err, GM_ERR_ARGUMENT,
                       WHAT ": tensor '%s' of type %s: row length %lld is not a multiple of the block size %d",
                       name, tr->name, (long long)ne[0], tr->block_size);
    if (!gm_ggml_nbytes(type, n, size))
        return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": tensor '%s': size overflows", name);
    return GM_OK;
}

gm_status gm_gguf_writer_add_tensor(gm_gguf_writer *w, const char *name, int32_t type, int n_dims,
                                    const int64_t *ne, const void *data, gm_gguf_data_fn fn, void *user,
                                    gm_error *err) {
    size_t size;
    gm_status st = check_tensor(w, name, type, n_dims, ne, &size, err);
    if (st != GM_OK) return st;
    if (!data && !fn)
        return gm_fail(err, GM_ERR_ARGUMENT, WHAT ": tensor '%s': neither data nor a data callback", name);
    if (!grow((void **)&w->tensors, &w->tensors_cap, w->n_tensors, sizeof(wtensor)))
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, WHAT ": out of memory");
    wtensor *t = &w->tensors[w->n_tensors];
    memset(t, 0, sizeof *t);
    t->name = gm_strndup(name, strlen(name));
    if (!t->name) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, WHAT ": out of memory");
    t->type = type;
    t->n_dims = n_dims;
    for (int d = 0; d < GM_GGUF_MAX_DIMS; d++) t->ne[d] = d < n_dims ? ne[d] : 1;
    t->size = size;
    t->data = data;
    t->fn = data ? NULL : fn;
    t->user = user;
    w->n_tensors++;
    return GM_OK;
}

/* ---- output ---- */

static gm_status out_write(wout *o, const void *p, size_t n, gm_error *err) {
    if (n == 0) return GM_OK;
    if (o->f) {
        if (fwrite(p, 1, n, o->f) != n)
            return gm_fail(err, GM_ERR_IO, "%s: write failed: %s", o->what, strerror(errno));
    } else if (!gm_buf_append(o->buf, p, n)) {
        return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", o->what);
    }
    o->written += n;
    return GM_OK;
}

static uint64_t pad_len(uint64_t pos, uint32_t alignment) {
    return (alignment - pos % alignment) % alignment;
}

static gm_status out_pad(wout *o, uint32_t alignment, gm_error *err) {
    static const uint8_t zeros[64];
    gm_status st = GM_OK;
    for (uint64_t n = pad_len(o->written, alignment); st == GM_OK && n > 0;) {
        size_t k = (size_t)GM_MIN(n, (uint64_t)sizeof zeros);
        st = out_write(o, zeros, k, err);
        n -= k;
    }
    return st;
}

gm_status gm_gguf_sink_write(gm_gguf_sink *s, const void *data, size_t n, gm_error *err) {
    if (n > s->t->size - s->got)
        return gm_fail(err, GM_ERR_ARGUMENT, "%s: tensor '%s': data callback wrote more than its %zu bytes",
                       s->out->what, s->t->name, s->t->size);
    s->got += n;
    return out_write(s->out, data, n, err);
}

/* Offsets of the tensors in the data section (false: the sum overflows). */
static bool assign_offsets(const gm_gguf_writer *w, uint64_t *offsets, uint64_t *total) {
    uint64_t pos = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        uint64_t padded = w->tensors[i].size + pad_len(w->tensors[i].size, w->alignment);
        if (padded < w->tensors[i].size || pos > UINT64_MAX - padded) return false;
        offsets[i] = pos;
        pos += padded;
    }
    *total = pos;
    return true;
}

static gm_status write_meta(const gm_gguf_writer *w, wout *o, const uint64_t *offsets, gm_error *err) {
    gm_buf h = {0};
    bool ok = put(&h, "GGUF", 4) && put_u32(&h, GM_GGUF_VERSION) && put_u64(&h, w->n_tensors) &&
              put_u64(&h, w->n_kv);
    gm_status st = ok ? out_write(o, h.data, h.len, err) : gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", o->what);
    if (st == GM_OK) st = out_write(o, w->kv_bytes.data, w->kv_bytes.len, err);
    for (size_t i = 0; st == GM_OK && i < w->n_tensors; i++) {
        const wtensor *t = &w->tensors[i];
        h.len = 0;
        ok = put_str(&h, t->name, strlen(t->name)) && put_u32(&h, (uint32_t)t->n_dims) &&
             put(&h, t->ne, (size_t)t->n_dims * 8) && put_u32(&h, (uint32_t)t->type) && put_u64(&h, offsets[i]);
        st = ok ? out_write(o, h.data, h.len, err) : gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", o->what);
    }
    gm_buf_free(&h);
    return st == GM_OK ? out_pad(o, w->alignment, err) : st;
}

static gm_status write_tensor(const wtensor *t, wout *o, gm_error *err) {
    gm_gguf_sink sink = {.out = o, .t = t, .got = 0};
    if (t->data) return out_write(o, t->data, t->size, err);
    gm_status st = t->fn(t->user, t->name, &sink, err);
    if (st == GM_OK && sink.got != t->size)
        st = gm_fail(err, GM_ERR_ARGUMENT, "%s: tensor '%s': data callback wrote %llu of its %zu bytes",
                     o->what, t->name, (unsigned long long)sink.got, t->size);
    return st;
}

static gm_status write_all(const gm_gguf_writer *w, wout *o, gm_error *err) {
    uint64_t *offsets = gm_malloc((w->n_tensors ? w->n_tensors : 1) * sizeof *offsets);
    uint64_t total;
    if (!offsets) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", o->what);
    gm_status st = assign_offsets(w, offsets, &total)
                       ? write_meta(w, o, offsets, err)
                       : gm_fail(err, GM_ERR_ARGUMENT, "%s: tensor data larger than 2^64 bytes", o->what);
    uint64_t data_start = o->written;
    for (size_t i = 0; st == GM_OK && i < w->n_tensors; i++) {
        if (o->written - data_start != offsets[i])
            st = gm_fail(err, GM_ERR_INTERNAL, "%s: tensor '%s' at %llu, expected %llu", o->what,
                         w->tensors[i].name, (unsigned long long)(o->written - data_start),
                         (unsigned long long)offsets[i]);
        if (st == GM_OK) st = write_tensor(&w->tensors[i], o, err);
        if (st == GM_OK) st = out_pad(o, w->alignment, err);
    }
    gm_free(offsets);
    return st;
}

gm_status gm_gguf_writer_write_file(const gm_gguf_writer *w, const char *path, gm_error *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return gm_fail(err, GM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    wout o = {.f = f, .what = path};
    gm_status st = write_all(w, &o, err);
    if (fclose(f) != 0 && st == GM_OK)
        st = gm_fail(err, GM_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (st != GM_OK) remove(path);
    return st;
}

gm_status gm_gguf_writer_write_buffer(const gm_gguf_writer *w, uint8_t **data, size_t *size,
                                      gm_error *err) {
    gm_buf b = {0};
    wout o = {.buf = &b, .what = WHAT};
    gm_status st = write_all(w, &o, err);
    if (st != GM_OK) {
        gm_buf_free(&b);
        return st;
    }
    *data = (uint8_t *)b.data;
    *size = b.len;
    return GM_OK;
}
