/*
 * gguf.c - the GGUF v3 reader (the writer is gguf_write.c). See gguf.h for
 * the format.
 *
 * Opening parses the whole header once, validating as it goes, into:
 *   - a KV table: type, element count and the image offset of each value
 *     (values stay in the image: nothing is copied but keys and names);
 *   - for string arrays, the image offset of every element (random access
 *     into a 262k-token vocabulary);
 *   - the tensor directory;
 *   - two hash indexes (keys, tensor names), which also find duplicates.
 * Every read goes through take()/read_str(), which check the bytes left
 * before touching them; sizes are computed in uint64 with explicit
 * overflow checks.
 */
#include "gguf.h"

#include <stdio.h>
#include <stdlib.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c reads little-endian values in place: big-endian hosts are not supported"
#endif

/* Smallest encodings, used to reject counts that cannot fit in the file. */
#define MIN_KV_BYTES 14     /* key len 8 + key 1 + type 4 + 1-byte value */
#define MIN_TENSOR_BYTES 25 /* name len 8 + name 1 + n_dims 4 + type 4 + offset 8 */
#define MIN_ARRAY_BYTES 12  /* element type 4 + count 8 */

/* ---- KV value types ---- */

static const struct { const char *name; size_t size; } kv_types[GM_GGUF_TYPE_COUNT] = {
    [GM_GGUF_U8] = {"u8", 1},     [GM_GGUF_I8] = {"i8", 1},     [GM_GGUF_U16] = {"u16", 2},
    [GM_GGUF_I16] = {"i16", 2},   [GM_GGUF_U32] = {"u32", 4},   [GM_GGUF_I32] = {"i32", 4},
    [GM_GGUF_F32] = {"f32", 4},   [GM_GGUF_BOOL] = {"bool", 1}, [GM_GGUF_STR] = {"str", 0},
    [GM_GGUF_ARRAY] = {"arr", 0}, [GM_GGUF_U64] = {"u64", 8},   [GM_GGUF_I64] = {"i64", 8},
    [GM_GGUF_F64] = {"f64", 8},
};

static bool type_valid(int64_t t) { return t >= 0 && t < GM_GGUF_TYPE_COUNT; }

const char *gm_gguf_type_name(gm_gguf_type t) { return type_valid(t) ? kv_types[t].name : "?"; }
size_t gm_gguf_type_size(gm_gguf_type t) { return type_valid(t) ? kv_types[t].size : 0; }

static bool type_is_int(int32_t t) {
    return t == GM_GGUF_U8 || t == GM_GGUF_I8 || t == GM_GGUF_U16 || t == GM_GGUF_I16 ||
           t == GM_GGUF_U32 || t == GM_GGUF_I32 || t == GM_GGUF_U64 || t == GM_GGUF_I64;
}
static bool type_is_num(int32_t t) {
    return type_is_int(t) || t == GM_GGUF_F32 || t == GM_GGUF_F64 || t == GM_GGUF_BOOL;
}

/* ---- the reader's data ---- */

typedef struct gguf_kv {
    size_t key_off;    /* into key_names (the arena moves while parsing) */
    const char *key;   /* set once parsing is done */
    int32_t type;      /* gm_gguf_type of the value */
    int32_t arr_type;  /* arrays: element type */
    uint64_t n;        /* arrays: element count; scalars: 1 */
    size_t pos;        /* image offset of the scalar / string bytes / first element */
    uint64_t len;      /* string scalars: byte length */
    size_t *str_pos;   /* string arrays: image offset of each element's bytes */
} gguf_kv;

typedef struct tensor_rec {
    gm_gguf_tensor t;
    size_t name_off;   /* into tensor_names, until t.name is set */
} tensor_rec;

/* Open-addressing hash of NUL-terminated names (keys or tensor names). */
typedef struct name_slot {
    const char *name;  /* NULL: empty */
    int64_t index;
} name_slot;
typedef struct name_index {
    name_slot *slots;
    size_t mask;
} name_index;

struct gm_gguf {
    gm_mapped_file file;    /* when opened by path */
    const uint8_t *data;    /* the file image */
    size_t size;
    char *what;             /* name for messages */
    uint32_t version;
    size_t alignment, data_offset;
    gguf_kv *kv;
    int64_t n_kv;
    size_t kv_cap;
    tensor_rec *tensors;
    int64_t n_tensors;
    size_t tensor_cap;
    gm_buf key_names;       /* NUL-terminated keys; complete before tensor infos are read */
    gm_buf tensor_names;    /* NUL-terminated tensor names */
    name_index key_index, tensor_index;
};

/* ---- name index ---- */

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static bool index_init(name_index *ix, int64_t n) {
    size_t cap = 16;
    while (cap / 2 < (uint64_t)n) {
        if (cap > SIZE_MAX / 2 / sizeof(name_slot)) return false;
        cap *= 2;
    }
    ix->slots = gm_calloc(cap, sizeof(name_slot));
    ix->mask = cap - 1;
    return ix->slots != NULL;
}

/* Inserts name -> i; returns the index already stored under an equal name, or -1. */
static int64_t index_put(name_index *ix, const char *name, int64_t i) {
    for (size_t h = (size_t)hash_name(name) & ix->mask;; h = (h + 1) & ix->mask) {
        if (!ix->slots[h].name) {
            ix->slots[h].name = name;
            ix->slots[h].index = i;
            return -1;
        }
        if (strcmp(ix->slots[h].name, name) == 0) return ix->slots[h].index;
    }
}

static int64_t index_get(const name_index *ix, const char *name) {
    if (!ix->slots || !name) return -1;
    for (size_t h = (size_t)hash_name(name) & ix->mask;; h = (h + 1) & ix->mask) {
        if (!ix->slots[h].name) return -1;
        if (strcmp(ix->slots[h].name, name) == 0) return ix->slots[h].index;
    }
}

/* ---- the cursor ---- */

typedef struct parser {
    gm_gguf *g;
    size_t pos;   /* next byte to read */
    gm_error *err;
} parser;

static size_t left(const parser *ps) { return ps->g->size - ps->pos; }

/* Fails with the message prefixed by the file name. */
static gm_status pfail(parser *ps, gm_status st, const char *fmt, ...) GM_PRINTF(3, 4);
static gm_status pfail(parser *ps, gm_status st, const char *fmt, ...) {
    char msg[GM_ERROR_MESSAGE_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return gm_fail(ps->err, st, "%s: %s", ps->g->what, msg);
}

static gm_status oom(parser *ps) { return pfail(ps, GM_ERR_OUT_OF_MEMORY, "out of memory"); }

/* Claims n bytes at the cursor (*at = their offset), or fails naming `label`. */
static gm_status take(parser *ps, uint64_t n, const char *label, size_t *at) {
    if (n > left(ps))
        return pfail(ps, GM_ERR_FORMAT,
                     "truncated at offset %zu: %s needs %llu bytes, %zu left", ps->pos, label,
                     (unsigned long long)n, left(ps));
    *at = ps->pos;
    ps->pos += (size_t)n;
    return GM_OK;
}

static uint32_t rd_u32(const parser *ps, size_t at) {
    uint32_t v;
    memcpy(&v, ps->g->data + at, 4);
    return v;
}
static uint64_t rd_u64(const parser *ps, size_t at) {
    uint64_t v;
    memcpy(&v, ps->g->data + at, 8);
    return v;
}

static gm_status take_u32(parser *ps, const char *label, uint32_t *v) {
    size_t at = 0;
    gm_status st = take(ps, 4, label, &at);
    if (st == GM_OK) *v = rd_u32(ps, at);
    return st;
}
static gm_status take_u64(parser *ps, const char *label, uint64_t *v) {
    size_t at = 0;
    gm_status st = take(ps, 8, label, &at);
    if (st == GM_OK) *v = rd_u64(ps, at);
    return st;
}

/* Reads a string (u64 length + bytes, length <= max): *at = offset of the bytes. */
static gm_status read_str(parser *ps, uint64_t max, const char *label, size_t *at, uint64_t *len) {
    uint64_t n = 0;
    size_t len_at = ps->pos;
    gm_status st = take_u64(ps, label, &n);
    if (st != GM_OK) return st;
    if (n > max)
        return pfail(ps, GM_ERR_FORMAT, "%s: string length %llu at offset %zu is absurd (limit %llu)",
                     label, (unsigned long long)n, len_at, (unsigned long long)max);
    if (n > left(ps))
        return pfail(ps, GM_ERR_FORMAT,
                     "%s: string length %llu at offset %zu runs past the end of the file (%zu bytes left)",
                     label, (unsigned long long)n, len_at, left(ps));
    *len = n;
    return take(ps, n, label, at);
}

/* Copies a name into an arena; *off = its offset there (the arena may move). */
static gm_status store_name(parser *ps, gm_buf *arena, size_t at, uint64_t len, size_t *off) {
    *off = arena->len;
    if (!gm_buf_append(arena, ps->g->data + at, (size_t)len) || !gm_buf_append(arena, "", 1))
        return oom(ps);
    return GM_OK;
}

/* Grows *arr (of *cap elements of `elem` bytes) to hold n + 1. */
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

/* ---- header ---- */

static gm_status parse_header(parser *ps, int64_t *n_tensors, int64_t *n_kv) {
    gm_gguf *g = ps->g;
    if (g->size < 24)
        return pfail(ps, GM_ERR_FORMAT, "truncated header (%zu bytes, a GGUF file has at least 24)",
                     g->size);
    if (memcmp(g->data, "GGUF", 4) != 0) {
        char m[5];
        for (int i = 0; i < 4; i++) m[i] = g->data[i] >= 32 && g->data[i] < 127 ? (char)g->data[i] : '?';
        m[4] = 0;
        return pfail(ps, GM_ERR_FORMAT, "bad magic '%s' (not a GGUF file)", m);
    }
    uint32_t v;
    uint64_t nt, nk;
    memcpy(&v, g->data + 4, 4);
    memcpy(&nt, g->data + 8, 8);
    memcpy(&nk, g->data + 16, 8);
    ps->pos = 24;
    g->version = v;
    if (v != 0 && (v & 0xFFFF) == 0) /* 3 read with the wrong byte order is 0x03000000 */
        return pfail(ps, GM_ERR_UNSUPPORTED,
                     "unsupported GGUF version %u: a big-endian file? (only little-endian v3 is supported)", v);
    if (v != GM_GGUF_VERSION)
        return pfail(ps, GM_ERR_UNSUPPORTED, "unsupported GGUF version %u (only version 3 is supported)", v);
    if (nt > (uint64_t)INT64_MAX || nt > left(ps) / MIN_TENSOR_BYTES)
        return pfail(ps, GM_ERR_FORMAT, "tensor count %llu cannot fit in the file (%zu bytes after the header)",
                     (unsigned long long)nt, left(ps));
    if (nk > (uint64_t)INT64_MAX || nk > left(ps) / MIN_KV_BYTES)
        return pfail(ps, GM_ERR_FORMAT, "KV count %llu cannot fit in the file (%zu bytes after the header)",
                     (unsigned long long)nk, left(ps));
    *n_tensors = (int64_t)nt;
    *n_kv = (int64_t)nk;
    return GM_OK;
}

/* ---- KV values ---- */

static gm_status check_bools(parser *ps, size_t at, uint64_t n, const char *label) {
    for (uint64_t i = 0; i < n; i++) {
        uint8_t b = ps->g->data[at + i];
        if (b > 1)
            return pfail(ps, GM_ERR_FORMAT, "%s: invalid bool value %u at offset %zu (must be 0 or 1)",
                         label, b, at + (size_t)i);
    }
    return GM_OK;
}

static gm_status parse_array_body(parser *ps, const char *label, int depth, int32_t elem, uint64_t n,
                                  size_t *str_pos);

/* Reads an array's element type and count and checks the elements can fit. */
static gm_status parse_array_head(parser *ps, const char *label, int depth, int32_t *elem, uint64_t *n) {
    uint32_t t = 0;
    gm_status st;
    if (depth > GM_GGUF_MAX_NESTING)
        return pfail(ps, GM_ERR_FORMAT, "%s: arrays nested deeper than %d levels", label,
                     GM_GGUF_MAX_NESTING);
    if ((st = take_u32(ps, label, &t)) != GM_OK || (st = take_u64(ps, label, n)) != GM_OK) return st;
    *elem = (int32_t)t;
    if (!type_valid(*elem))
        return pfail(ps, GM_ERR_FORMAT, "%s: array of unknown value type %d", label, *elem);
    uint64_t min = *elem == GM_GGUF_STR ? 8 : *elem == GM_GGUF_ARRAY ? MIN_ARRAY_BYTES
                                                                        : kv_types[*elem].size;
    if (*n > left(ps) / min)
        return pfail(ps, GM_ERR_FORMAT, "%s: array of %llu %s elements cannot fit in the file (%zu bytes left)",
                     label, (unsigned long long)*n, kv_types[*elem].name, left(ps));
    return GM_OK;
}

/* Validates and skips n elements; str_pos (if not NULL) receives string offsets. */
static gm_status parse_array_body(parser *ps, const char *label, int depth, int32_t elem, uint64_t n,
                                  size_t *str_pos) {
    gm_status st;
    size_t at = 0;
    uint64_t len = 0;
    if (elem == GM_GGUF_STR) {
        for (uint64_t i = 0; i < n; i++) {
            if ((st = read_str(ps, GM_GGUF_MAX_STRING, label, &at, &len)) != GM_OK) return st;
            if (str_pos) str_pos[i] = at;
        }
        return GM_OK;
    }
    if (elem == GM_GGUF_ARRAY) {
        for (uint64_t i = 0; i < n; i++) {
            int32_t sub = 0;
            uint64_t sub_n = 0;
            if ((st = parse_array_head(ps, label, depth + 1, &sub, &sub_n)) != GM_OK ||
                (st = parse_array_body(ps, label, depth + 1, sub, sub_n, NULL)) != GM_OK)
                return st;
        }
        return GM_OK;
    }
    if ((st = take(ps, n * kv_types[elem].size, label, &at)) != GM_OK) return st; /* fit checked */
    return elem == GM_GGUF_BOOL ? check_bools(ps, at, n, label) : GM_OK;
}

/* Parses the value of KV `kv` (its type already read) into the table entry. */
static gm_status parse_value(parser *ps, gguf_kv *kv, const char *label) {
    gm_status st;
    if (kv->type == GM_GGUF_STR) return read_str(ps, GM_GGUF_MAX_STRING, label, &kv->pos, &kv->len);
    if (kv->type != GM_GGUF_ARRAY) {
        if ((st = take(ps, kv_types[kv->type].size, label, &kv->pos)) != GM_OK) return st;
        return kv->type == GM_GGUF_BOOL ? check_bools(ps, kv->pos, 1, label) : GM_OK;
    }
    if ((st = parse_array_head(ps, label, 1, &kv->arr_type, &kv->n)) != GM_OK) return st;
    kv->pos = ps->pos;
    if (kv->arr_type == GM_GGUF_STR && kv->n > 0) {
        kv->str_pos = gm_malloc((size_t)kv->n * sizeof(size_t)); /* n <= bytes left / 8 */
        if (!kv->str_pos) return oom(ps);
    }
    return parse_array_body(ps, label, 1, kv->arr_type, kv->n, kv->str_pos);
}

static gm_status parse_kv(parser *ps, int64_t i) {
    gm_gguf *g = ps->g;
    char label[96];
    snprintf(label, sizeof label, "KV #%lld", (long long)i);
    if (!grow((void **)&g->kv, &g->kv_cap, (size_t)g->n_kv, sizeof(gguf_kv))) return oom(ps);
    gguf_kv *kv = &g->kv[g->n_kv];
    memset(kv, 0, sizeof *kv);
    size_t at = 0;
    uint64_t len = 0;
    uint32_t type = 0;
    gm_status st = read_str(ps, GM_GGUF_MAX_KEY, label, &at, &len);
    if (st != GM_OK) return st;
    if (len == 0) return pfail(ps, GM_ERR_FORMAT, "%s has an empty key", label);
    if (memchr(g->data + at, 0, (size_t)len))
        return pfail(ps, GM_ERR_FORMAT, "%s: key contains a NUL byte", label);
    if ((st = store_name(ps, &g->key_names, at, len, &kv->key_off)) != GM_OK) return st;
    g->n_kv++; /* from here on the entry is owned by g (str_pos freed with it) */
    snprintf(label, sizeof label, "key '%.80s'", g->key_names.data + kv->key_off);
    if ((st = take_u32(ps, label, &type)) != GM_OK) return st;
    kv->type = (int32_t)type;
    kv->n = 1;
    if (!type_valid(kv->type))
        return pfail(ps, GM_ERR_FORMAT, "%s has unknown value type %d", label, kv->type);
    return parse_value(ps, kv, label);
}

/* Fixes key pointers, indexes keys (rejecting duplicates), reads the alignment. */
static gm_status finish_kvs(parser *ps) {
    gm_gguf *g = ps->g;
    if (!index_init(&g->key_index, g->n_kv)) return oom(ps);
    for (int64_t i = 0; i < g->n_kv; i++) {
        g->kv[i].key = g->key_names.data + g->kv[i].key_off;
        if (index_put(&g->key_index, g->kv[i].key, i) >= 0)
            return pfail(ps, GM_ERR_FORMAT, "duplicate key '%s'", g->kv[i].key);
    }
    g->alignment = GM_GGUF_DEFAULT_ALIGNMENT;
    int64_t a = index_get(&g->key_index, "general.alignment");
    if (a < 0) return GM_OK;
    if (g->kv[a].type != GM_GGUF_U32)
        return pfail(ps, GM_ERR_FORMAT, "key 'general.alignment' has type %s, expected u32",
                     kv_types[g->kv[a].type].name);
    uint32_t v = rd_u32(ps, g->kv[a].pos);
    if (v == 0 || (v & (v - 1)) != 0)
        return pfail(ps, GM_ERR_FORMAT, "alignment %u is not a power of 2", v);
    g->alignment = v;
    return GM_OK;
}

/* ---- tensor infos ---- */

static gm_status parse_shape(parser *ps, gm_gguf_tensor *t, const char *label) {
    uint32_t nd = 0;
    gm_status st = take_u32(ps, label, &nd);
    if (st != GM_OK) return st;
    if (nd > GM_GGUF_MAX_DIMS)
        return pfail(ps, GM_ERR_FORMAT, "%s has %u dimensions (max %d)", label, nd, GM_GGUF_MAX_DIMS);
    t->n_dims = (int32_t)nd;
    t->n_elems = 1;
    for (int d = 0; d < GM_GGUF_MAX_DIMS; d++) {
        uint64_t v = 1;
        if ((uint32_t)d < nd && (st = take_u64(ps, label, &v)) != GM_OK) return st;
        t->ne[d] = (int64_t)v;
        if (t->ne[d] <= 0)
            return pfail(ps, GM_ERR_FORMAT, "%s: dimension %d is %lld (must be > 0)", label, d,
                         (long long)t->ne[d]);
        if (t->n_elems > INT64_MAX / t->ne[d])
            return pfail(ps, GM_ERR_FORMAT, "%s: element count overflows int64 at dimension %d (%lld)",
                         label, d, (long long)t->ne[d]);
        t->n_elems *= t->ne[d];
    }
    return GM_OK;
}

/* Reads and checks the type; computes the byte size. */
static gm_status parse_type(parser *ps, gm_gguf_tensor *t, const char *label, const char *name) {
    uint32_t ty = 0;
    gm_status st = take_u32(ps, label, &ty);
    if (st != GM_OK) return st;
    t->type = (int32_t)ty;
    const gm_ggml_traits *tr = gm_ggml_type_traits(t->type);
    if (!tr) return pfail(ps, GM_ERR_FORMAT, "%s has unknown type id %d", label, t->type);
    if (!tr->supported)
        return pfail(ps, GM_ERR_UNSUPPORTED, "unsupported tensor type %s (tensor %s)", tr->name, name);
    if (t->ne[0] % tr->block_size != 0)
        return pfail(ps, GM_ERR_FORMAT,
                     "%s of type %s: row length %lld is not a multiple of the block size %d", label,
                     tr->name, (long long)t->ne[0], tr->block_size);
    if (!gm_ggml_nbytes(t->type, t->n_elems, &t->size))
        return pfail(ps, GM_ERR_FORMAT, "%s: size in bytes overflows", label);
    return GM_OK;
}

static gm_status parse_tensor(parser *ps, int64_t i) {
    gm_gguf *g = ps->g;
    char label[96];
    snprintf(label, sizeof label, "tensor #%lld", (long long)i);
    if (!grow((void **)&g->tensors, &g->tensor_cap, (size_t)g->n_tensors, sizeof(tensor_rec)))
        return oom(ps);
    tensor_rec *r = &g->tensors[g->n_tensors];
    memset(r, 0, sizeof *r);
    size_t at = 0;
    uint64_t len = 0;
    gm_status st = read_str(ps, GM_GGUF_MAX_STRING, label, &at, &len);
    if (st != GM_OK) return st;
    if (len == 0) return pfail(ps, GM_ERR_FORMAT, "%s has an empty name", label);
    if (len > GM_GGUF_MAX_NAME)
        return pfail(ps, GM_ERR_FORMAT, "%s: name of %llu bytes is too long (max %d)", label,
                     (unsigned long long)len, GM_GGUF_MAX_NAME);
    if (memchr(g->data + at, 0, (size_t)len))
        return pfail(ps, GM_ERR_FORMAT, "%s: name contains a NUL byte", label);
    if ((st = store_name(ps, &g->tensor_names, at, len, &r->name_off)) != GM_OK) return st;
    char name[GM_GGUF_MAX_NAME + 1];
    memcpy(name, g->data + at, (size_t)len);
    name[len] = 0;
    snprintf(label, sizeof label, "tensor '%s'", name);
    if ((st = parse_shape(ps, &r->t, label)) != GM_OK || (st = parse_type(ps, &r->t, label, name)) != GM_OK ||
        (st = take_u64(ps, label, &r->t.offset)) != GM_OK)
        return st;
    if (r->t.offset % g->alignment != 0)
        return pfail(ps, GM_ERR_FORMAT, "%s: offset %llu is not a multiple of the alignment %zu", label,
                     (unsigned long long)r->t.offset, g->alignment);
    g->n_tensors++;
    return GM_OK;
}

/* ---- data section ---- */

typedef struct span {
    uint64_t begin, end;
    int64_t index;
} span;

/* By offset, then by index (so reports do not depend on qsort's order). */
static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Sorts tensors by offset and reports the first pair that overlaps. */
static gm_status check_overlaps(parser *ps) {
    gm_gguf *g = ps->g;
    if (g->n_tensors < 2) return GM_OK;
    span *s = gm_malloc((size_t)g->n_tensors * sizeof *s);
    if (!s) return oom(ps);
    for (int64_t i = 0; i < g->n_tensors; i++)
        s[i] = (span){g->tensors[i].t.offset, g->tensors[i].t.offset + g->tensors[i].t.size, i};
    qsort(s, (size_t)g->n_tensors, sizeof *s, span_cmp);
    gm_status st = GM_OK;
    for (int64_t i = 1; i < g->n_tensors && st == GM_OK; i++) {
        if (s[i].begin < s[i - 1].end)
            st = pfail(ps, GM_ERR_FORMAT, "tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap",
                       g->tensors[s[i - 1].index].t.name, (unsigned long long)s[i - 1].begin,
                       (unsigned long long)s[i - 1].end, g->tensors[s[i].index].t.name,
                       (unsigned long long)s[i].begin, (unsigned long long)s[i].end);
    }
    gm_free(s);
    return st;
}

/* Fixes names, indexes them, places the data section and bounds every tensor. */
static gm_status finish_tensors(parser *ps) {
    gm_gguf *g = ps->g;
    if (!index_init(&g->tensor_index, g->n_tensors)) return oom(ps);
    for (int64_t i = 0; i < g->n_tensors; i++) {
        gm_gguf_tensor *t = &g->tensors[i].t;
        t->name = g->tensor_names.data + g->tensors[i].name_off;
        if (index_put(&g->tensor_index, t->name, i) >= 0)
            return pfail(ps, GM_ERR_FORMAT, "duplicate tensor name '%s'", t->name);
    }
    /* llama.cpp pads to the data section only when there are tensors. */
    size_t pad = g->n_tensors > 0 ? (g->alignment - ps->pos % g->alignment) % g->alignment : 0;
    if (pad > left(ps))
        return pfail(ps, GM_ERR_FORMAT, "data section starts at %llu, past the end of the file (%zu bytes)",
                     (unsigned long long)ps->pos + pad, g->size);
    g->data_offset = ps->pos + pad;
    uint64_t avail = g->size - g->data_offset;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        gm_gguf_tensor *t = &g->tensors[i].t;
        if (t->offset > avail || t->size > avail - t->offset)
            return pfail(ps, GM_ERR_FORMAT,
                         "tensor '%s' (data bytes [%llu, +%zu)) extends past the end of the file "
                         "(data section has %llu bytes)",
                         t->name, (unsigned long long)t->offset, t->size, (unsigned long long)avail);
        t->data = g->data + g->data_offset + t->offset;
    }
    return check_overlaps(ps);
}

/* ---- open / free ---- */

static gm_status parse(gm_gguf *g, gm_error *err) {
    parser ps = {.g = g, .pos = 0, .err = err};
    int64_t n_tensors = 0, n_kv = 0;
    gm_status st = parse_header(&ps, &n_tensors, &n_kv);
    for (int64_t i = 0; st == GM_OK && i < n_kv; i++) st = parse_kv(&ps, i);
    if (st == GM_OK) st = finish_kvs(&ps);
    for (int64_t i = 0; st == GM_OK && i < n_tensors; i++) st = parse_tensor(&ps, i);
    if (st == GM_OK) st = finish_tensors(&ps);
    return st;
}

static gm_status open_image(gm_gguf *g, const char *what, gm_gguf **out, gm_error *err) {
    g->what = gm_strndup(what, strlen(what));
    gm_status st = g->what ? parse(g, err) : gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    if (st != GM_OK) {
        gm_gguf_free(g);
        return st;
    }
    *out = g;
    return GM_OK;
}

gm_status gm_gguf_open_buffer(const void *data, size_t size, const char *what, gm_gguf **out,
                              gm_error *err) {
    *out = NULL;
    if (!what) what = "<buffer>";
    if (!data && size > 0) return gm_fail(err, GM_ERR_ARGUMENT, "%s: NULL data", what);
    gm_gguf *g = gm_calloc(1, sizeof *g);
    if (!g) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", what);
    g->data = data;
    g->size = size;
    return open_image(g, what, out, err);
}

gm_status gm_gguf_open_file(const char *path, gm_gguf **out, gm_error *err) {
    *out = NULL;
    gm_gguf *g = gm_calloc(1, sizeof *g);
    if (!g) return gm_fail(err, GM_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    gm_status st = gm_map_file(path, &g->file, err);
    if (st != GM_OK) {
        gm_free(g);
        return st;
    }
    g->data = g->file.data;
    g->size = g->file.size;
    return open_image(g, path, out, err);
}

void gm_gguf_free(gm_gguf *g) {
    if (!g) return;
    for (int64_t i = 0; i < g->n_kv; i++) gm_free(g->kv[i].str_pos);
    gm_free(g->kv);
    gm_free(g->tensors);
    gm_buf_free(&g->key_names);
    gm_buf_free(&g->tensor_names);
    gm_free(g->key_index.slots);
    gm_free(g->tensor_index.slots);
    gm_unmap_file(&g->file);
    gm_free(g->what);
    gm_free(g);
}

const void *gm_gguf_image(const gm_gguf *g, size_t *size) {
    *size = g->file.data ? g->file.size : 0;
    return g->file.data;
}

uint32_t gm_gguf_version(const gm_gguf *g) { return g->version; }
size_t gm_gguf_alignment(const gm_gguf *g) { return g->alignment; }
size_t gm_gguf_data_offset(const gm_gguf *g) { return g->data_offset; }
const char *gm_gguf_name(const gm_gguf *g) { return g->what; }

/* ---- KV access ---- */

int64_t gm_gguf_kv_count(const gm_gguf *g) { return g->n_kv; }
int64_t gm_gguf_find_key(const gm_gguf *g, const char *key) { return index_get(&g->key_index, key); }

static const gguf_kv *kv_at(const gm_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL;
}

const char *gm_gguf_kv_key(const gm_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? kv->key : NULL;
}

gm_gguf_type gm_gguf_kv_type(const gm_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv ? (gm_gguf_type)kv->type : GM_GGUF_INVALID;
}

/* "u32" or "array of u32" into buf. */
static const char *type_desc(const gguf_kv *kv, char *buf, size_t cap) {
    if (kv->type != GM_GGUF_ARRAY) return kv_types[kv->type].name;
    snprintf(buf, cap, "array of %s", kv_types[kv->arr_type].name);
    return buf;
}

static gm_status kv_find(const gm_gguf *g, const char *key, const gguf_kv **out, gm_error *err) {
    *out = kv_at(g, gm_gguf_find_key(g, key));
    if (!*out) return gm_fail(err, GM_ERR_FORMAT, "%s: missing key '%s'", g->what, key);
    return GM_OK;
}

static gm_status wrong_type(const gm_gguf *g, const gguf_kv *kv, const char *want, gm_error *err) {
    char buf[32];
    return gm_fail(err, GM_ERR_FORMAT, "%s: key '%s' has type %s, expected %s", g->what, kv->key,
                   type_desc(kv, buf, sizeof buf), want);
}

/* Decodes one little-endian number of type t at p as int64 (false: u64 too large). */
static bool decode_int(int32_t t, const uint8_t *p, int64_t *out) {
    switch (t) {
    case GM_GGUF_U8: case GM_GGUF_BOOL: *out = p[0]; return true;
    case GM_GGUF_I8: *out = (int8_t)p[0]; return true;
    case GM_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case GM_GGUF_I16: { int16_t v; memcpy(&v, p, 2); *out = v; return true; }
    case GM_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); *out = v; return true; }
    case GM_GGUF_I32: { int32_t v; memcpy(&v, p, 4); *out = v; return true; }
    case GM_GGUF_I64: { int64_t v; memcpy(&v, p, 8); *out = v; return true; }
    case GM_GGUF_U64: {
        uint64_t v;
        memcpy(&v, p, 8);
        *out = (int64_t)v;
        return v <= (uint64_t)INT64_MAX;
    }
    default: return false;
    }
}

static double decode_num(int32_t t, const uint8_t *p) {
    if (t == GM_GGUF_F32) { float v; memcpy(&v, p, 4); return v; }
    if (t == GM_GGUF_F64) { double v; memcpy(&v, p, 8); return v; }
    if (t == GM_GGUF_U64) { uint64_t v; memcpy(&v, p, 8); return (double)v; }
    int64_t v = 0;
    decode_int(t, p, &v);
    return (double)v;
}

gm_status gm_gguf_get_scalar(const gm_gguf *g, const char *key, gm_gguf_type want, void *out,
                             gm_error *err) {
    if (!type_is_num(want))
        return gm_fail(err, GM_ERR_ARGUMENT, "gm_gguf_get_scalar: type %s is not a number type",
                       gm_gguf_type_name(want));
    const gguf_kv *kv = NULL;
    gm_status st = kv_find(g, key, &kv, err);
    if (st != GM_OK) return st;
    if (kv->type != (int32_t)want) return wrong_type(g, kv, kv_types[want].name, err);
    if (want == GM_GGUF_BOOL) *(bool *)out = g->data[kv->pos] != 0;
    else memcpy(out, g->data + kv->pos, kv_types[want].size);
    return GM_OK;
}

gm_status gm_gguf_get_u32(const gm_gguf *g, const char *key, uint32_t *out, gm_error *err) {
    return gm_gguf_get_scalar(g, key, GM_GGUF_U32, out, err);
}
gm_status gm_gguf_get_i32(const gm_gguf *g, const char *key, int32_t *out, gm_error *err) {
    return gm_gguf_get_scalar(g, key, GM_GGUF_I32, out, err);
}
gm_status gm_gguf_get_f32(const gm_gguf *g, const char *key, float *out, gm_error *err) {
    return gm_gguf_get_scalar(g, key, GM_GGUF_F32, out, err);
}
gm_status gm_gguf_get_bool(const gm_gguf *g, const char *key, bool *out, gm_error *err) {
    return gm_gguf_get_scalar(g, key, GM_GGUF_BOOL, out, err);
}

gm_status gm_gguf_get_int(const gm_gguf *g, const char *key, int64_t *out, gm_error *err) {
    const gguf_kv *kv = NULL;
    gm_status st = kv_find(g, key, &kv, err);
    if (st != GM_OK) return st;
    if (!type_is_int(kv->type)) return wrong_type(g, kv, "an integer", err);
    if (!decode_int(kv->type, g->data + kv->pos, out))
        return gm_fail(err, GM_ERR_FORMAT, "%s: key '%s': value does not fit in int64", g->what, key);
    return GM_OK;
}

gm_status gm_gguf_get_str(const gm_gguf *g, const char *key, const char **s, size_t *len,
                          gm_error *err) {
    const gguf_kv *kv = NULL;
    gm_status st = kv_find(g, key, &kv, err);
    if (st != GM_OK) return st;
    if (kv->type != GM_GGUF_STR) return wrong_type(g, kv, "str", err);
    *s = (const char *)g->data + kv->pos;
    *len = (size_t)kv->len;
    return GM_OK;
}

/* ---- arrays ---- */

gm_status gm_gguf_get_arr(const gm_gguf *g, const char *key, gm_gguf_type elem, int64_t *index,
                          uint64_t *n, gm_error *err) {
    const gguf_kv *kv = NULL;
    gm_status st = kv_find(g, key, &kv, err);
    if (st != GM_OK) return st;
    if (kv->type != GM_GGUF_ARRAY || (elem != GM_GGUF_INVALID && kv->arr_type != (int32_t)elem)) {
        char want[32];
        snprintf(want, sizeof want, "array of %s", elem == GM_GGUF_INVALID ? "any" : gm_gguf_type_name(elem));
        return wrong_type(g, kv, want, err);
    }
    *index = kv - g->kv;
    *n = kv->n;
    return GM_OK;
}

gm_gguf_type gm_gguf_arr_type(const gm_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == GM_GGUF_ARRAY ? (gm_gguf_type)kv->arr_type : GM_GGUF_INVALID;
}

uint64_t gm_gguf_arr_len(const gm_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    return kv && kv->type == GM_GGUF_ARRAY ? kv->n : 0;
}

const void *gm_gguf_arr_data(const gm_gguf *g, int64_t i) {
    const gguf_kv *kv = kv_at(g, i);
    if (!kv || kv->type != GM_GGUF_ARRAY || !type_is_num(kv->arr_type)) return NULL;
    return g->data + kv->pos;
}

/* Common checks of the element accessors: valid array KV, accepted type, index in range. */
static gm_status arr_elem(const gm_gguf *g, int64_t index, uint64_t i, bool (*accept)(int32_t),
                          const char *want, const gguf_kv **out, gm_error *err) {
    const gguf_kv *kv = kv_at(g, index);
    if (!kv)
        return gm_fail(err, GM_ERR_ARGUMENT, "%s: KV index %lld out of range (%lld KVs)", g->what,
                       (long long)index, (long long)g->n_kv);
    if (kv->type != GM_GGUF_ARRAY || !accept(kv->arr_type)) return wrong_type(g, kv, want, err);
    if (i >= kv->n)
        return gm_fail(err, GM_ERR_ARGUMENT, "%s: index %llu out of range for key '%s' (%llu elements)",
                       g->what, (unsigned long long)i, kv->key, (unsigned long long)kv->n);
    *out = kv;
    return GM_OK;
}

static bool accept_str(int32_t t) { return t == GM_GGUF_STR; }
static bool accept_int(int32_t t) { return type_is_int(t) || t == GM_GGUF_BOOL; }

gm_status gm_gguf_arr_str(const gm_gguf *g, int64_t index, uint64_t i, const char **s, size_t *len,
                          gm_error *err) {
    const gguf_kv *kv = NULL;
    gm_status st = arr_elem(g, index, i, accept_str, "array of str", &kv, err);
    if (st != GM_OK) return st;
    size_t at = kv->str_pos[i];
    uint64_t n = 0;
    memcpy(&n, g->data + at - 8, 8);
    *s = (const char *)g->data + at;
    *len = (size_t)n;
    return GM_OK;
}

gm_status gm_gguf_arr_num(const gm_gguf *g, int64_t index, uint64_t i, double *out, gm_error *err) {
    const gguf_kv *kv = NULL;
    gm_status st = arr_elem(g, index, i, type_is_num, "array of numbers", &kv, err);
    if (st != GM_OK) return st;
    *out = decode_num(kv->arr_type, g->data + kv->pos + (size_t)i * kv_types[kv->arr_type].size);
    return GM_OK;
}

gm_status gm_gguf_arr_int(const gm_gguf *g, int64_t index, uint64_t i, int64_t *out, gm_error *err) {
    const gguf_kv *kv = NULL;
    gm_status st = arr_elem(g, index, i, accept_int, "array of integers", &kv, err);
    if (st != GM_OK) return st;
    if (!decode_int(kv->arr_type, g->data + kv->pos + (size_t)i * kv_types[kv->arr_type].size, out))
        return gm_fail(err, GM_ERR_FORMAT, "%s: key '%s' element %llu does not fit in int64", g->what,
                       kv->key, (unsigned long long)i);
    return GM_OK;
}

/* ---- tensors ---- */

int64_t gm_gguf_tensor_count(const gm_gguf *g) { return g->n_tensors; }
int64_t gm_gguf_find_tensor(const gm_gguf *g, const char *name) {
    return index_get(&g->tensor_index, name);
}
const gm_gguf_tensor *gm_gguf_tensor_at(const gm_gguf *g, int64_t i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i].t : NULL;
}
