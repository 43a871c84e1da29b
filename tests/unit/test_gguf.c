/*
 * test_gguf.c - the GGUF writer and reader: a full round trip of every KV
 * type and every supported tensor type, the byte layout llama.cpp expects,
 * then one corrupted file per reader check (each with its own message),
 * truncations and random byte flips, nested arrays, getter and writer errors.
 */
#include "gguf.h"
#include "test_util.h"

#include <unistd.h>

#define NAME "c.gguf"

/* ---- helpers ---- */

static uint8_t *to_buffer(gm_gguf_writer *w, size_t *size) {
    uint8_t *data = NULL;
    gm_error err;
    CHECK_OK(gm_gguf_writer_write_buffer(w, &data, size, &err), &err);
    return data;
}

static void put32(uint8_t *b, size_t at, uint32_t v) { memcpy(b + at, &v, 4); }
static void put64(uint8_t *b, size_t at, uint64_t v) { memcpy(b + at, &v, 8); }
static uint32_t get32(const uint8_t *b, size_t at) { uint32_t v; memcpy(&v, b + at, 4); return v; }
static uint64_t get64(const uint8_t *b, size_t at) { uint64_t v; memcpy(&v, b + at, 8); return v; }

/* Offset of the bytes of the first GGUF string (u64 length + bytes) equal to s. */
static size_t find_str(const uint8_t *b, size_t size, const char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i + 8 + n <= size; i++)
        if (get64(b, i) == n && memcmp(b + i + 8, s, n) == 0) return i + 8;
    fprintf(stderr, "find_str: '%s' not found\n", s);
    abort();
}

static uint8_t *dup_bytes(const uint8_t *b, size_t n) {
    uint8_t *d = malloc(n ? n : 1);
    memcpy(d, b, n);
    return d;
}

/* Opens a (corrupted) buffer, expecting failure with `status` and `needle` in the message. */
#define EXPECT_FAIL(buf, size, status, needle)                                               \
    do {                                                                                     \
        gm_gguf *g_ = (gm_gguf *)1;                                                          \
        gm_error e_;                                                                         \
        CHECK_FAILS(gm_gguf_open_buffer((buf), (size), NAME, &g_, &e_), (status), (needle), &e_); \
        CHECK(g_ == NULL, "out must be NULL on failure");                                    \
        CHECK(strncmp(e_.message, NAME ": ", strlen(NAME) + 2) == 0, "message names the file: %s", e_.message); \
    } while (0)

/* ---- the full round trip ---- */

typedef struct full_data {
    float f32[30];
    uint16_t f16[16];
    uint16_t bf16[7];
    gm_block_q8_0 q8[6];
    gm_block_q4_0 q4[4];
} full_data;

/* Streams the F16 tensor in two pieces. */
static gm_status f16_cb(void *user, const char *name, gm_gguf_sink *sink, gm_error *err) {
    const full_data *d = user;
    CHECK(strcmp(name, "f16.w") == 0, "callback name %s", name);
    gm_status st = gm_gguf_sink_write(sink, d->f16, 10, err);
    if (st == GM_OK) st = gm_gguf_sink_write(sink, (const uint8_t *)d->f16 + 10, sizeof d->f16 - 10, err);
    return st;
}

static void make_full_data(full_data *d) {
    float src[192];
    for (int i = 0; i < 30; i++) d->f32[i] = (float)i * 0.25f - 3.0f;
    for (int i = 0; i < 16; i++) d->f16[i] = gm_f32_to_f16((float)i / 7.0f);
    for (int i = 0; i < 7; i++) d->bf16[i] = gm_f32_to_bf16((float)(i * i) - 10.5f);
    for (int i = 0; i < 192; i++) src[i] = sinf((float)i * 0.37f) * (1 + i % 5);
    gm_quantize_row_q8_0(src, d->q8, 192);
    gm_quantize_row_q4_0(src, d->q4, 128);
}

static const char *const strs[] = {"", "a", "na\xc3\xafve", "<0x00>", "x\0y"};
static const size_t str_lens[] = {0, 1, 6, 6, 3};

static void build_full(gm_gguf_writer *w, full_data *d, uint32_t alignment) {
    gm_error err;
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    uint64_t u64 = ((uint64_t)1 << 40) + 7;
    int64_t i64 = -((int64_t)1 << 40);
    double f64 = 2.718281828459045;
    CHECK_OK(gm_gguf_writer_set_scalar(w, "t.u8", GM_GGUF_U8, &u8, &err), &err);
    CHECK_OK(gm_gguf_writer_set_scalar(w, "t.i8", GM_GGUF_I8, &i8, &err), &err);
    CHECK_OK(gm_gguf_writer_set_scalar(w, "t.u16", GM_GGUF_U16, &u16, &err), &err);
    CHECK_OK(gm_gguf_writer_set_scalar(w, "t.i16", GM_GGUF_I16, &i16, &err), &err);
    CHECK_OK(gm_gguf_writer_set_u32(w, "t.u32", 4000000000u, &err), &err);
    CHECK_OK(gm_gguf_writer_set_i32(w, "t.i32", -2000000000, &err), &err);
    CHECK_OK(gm_gguf_writer_set_f32(w, "t.f32", 3.5f, &err), &err);
    CHECK_OK(gm_gguf_writer_set_bool(w, "t.bool", true, &err), &err);
    CHECK_OK(gm_gguf_writer_set_str(w, "t.str", "h\xc3\xa9llo", &err), &err);
    CHECK_OK(gm_gguf_writer_set_scalar(w, "t.u64", GM_GGUF_U64, &u64, &err), &err);
    CHECK_OK(gm_gguf_writer_set_scalar(w, "t.i64", GM_GGUF_I64, &i64, &err), &err);
    CHECK_OK(gm_gguf_writer_set_scalar(w, "t.f64", GM_GGUF_F64, &f64, &err), &err);
    if (alignment) CHECK_OK(gm_gguf_writer_set_u32(w, "general.alignment", alignment, &err), &err);

    static const uint8_t au8[] = {1, 2, 255};
    static const int8_t ai8[] = {-128, 0, 127};
    static const uint16_t au16[] = {0, 65535};
    static const int16_t ai16[] = {-32768, 32767};
    static const uint32_t au32[] = {1, 2, 3, 4000000000u};
    static const int32_t ai32[] = {-1, 7, INT32_MIN};
    static const float af32[] = {0.5f, -1.25f, 1e30f};
    static const bool abool[] = {true, false, true};
    static const uint64_t au64[] = {UINT64_MAX, 5};
    static const int64_t ai64[] = {INT64_MIN, -5};
    static const double af64[] = {1e300, -0.125};
    CHECK_OK(gm_gguf_writer_set_arr(w, "a.u8", GM_GGUF_U8, au8, 3, &err), &err);
    CHECK_OK(gm_gguf_writer_set_arr(w, "a.i8", GM_GGUF_I8, ai8, 3, &err), &err);
    CHECK_OK(gm_gguf_writer_set_arr(w, "a.u16", GM_GGUF_U16, au16, 2, &err), &err);
    CHECK_OK(gm_gguf_writer_set_arr(w, "a.i16", GM_GGUF_I16, ai16, 2, &err), &err);
    CHECK_OK(gm_gguf_writer_set_arr(w, "a.u32", GM_GGUF_U32, au32, 4, &err), &err);
    CHECK_OK(gm_gguf_writer_set_arr(w, "a.i32", GM_GGUF_I32, ai32, 3, &err), &err);
    CHECK_OK(gm_gguf_writer_set_arr(w, "a.f32", GM_GGUF_F32, af32, 3, &err), &err);
    CHECK_OK(gm_gguf_writer_set_arr(w, "a.bool", GM_GGUF_BOOL, abool, 3, &err), &err);
    CHECK_OK(gm_gguf_writer_set_arr(w, "a.u64", GM_GGUF_U64, au64, 2, &err), &err);
    CHECK_OK(gm_gguf_writer_set_arr(w, "a.i64", GM_GGUF_I64, ai64, 2, &err), &err);
    CHECK_OK(gm_gguf_writer_set_arr(w, "a.f64", GM_GGUF_F64, af64, 2, &err), &err);
    CHECK_OK(gm_gguf_writer_set_arr(w, "a.empty", GM_GGUF_U32, NULL, 0, &err), &err);
    CHECK_OK(gm_gguf_writer_set_arr_str(w, "a.str", strs, str_lens, 5, &err), &err);
    CHECK_OK(gm_gguf_writer_set_arr_str(w, "a.str0", strs, NULL, 4, &err), &err);

    int64_t ne_f32[] = {5, 3, 2}, ne_f16[] = {8, 2}, ne_bf16[] = {7}, ne_q8[] = {64, 3}, ne_q4[] = {32, 2, 1, 2};
    CHECK_OK(gm_gguf_writer_add_tensor(w, "f32.w", GM_GGML_F32, 3, ne_f32, d->f32, NULL, NULL, &err), &err);
    CHECK_OK(gm_gguf_writer_add_tensor(w, "f16.w", GM_GGML_F16, 2, ne_f16, NULL, f16_cb, d, &err), &err);
    CHECK_OK(gm_gguf_writer_add_tensor(w, "bf16.w", GM_GGML_BF16, 1, ne_bf16, d->bf16, NULL, NULL, &err), &err);
    CHECK_OK(gm_gguf_writer_add_tensor(w, "blk.0.q8.weight", GM_GGML_Q8_0, 2, ne_q8, d->q8, NULL, NULL, &err), &err);
    CHECK_OK(gm_gguf_writer_add_tensor(w, "q4.w", GM_GGML_Q4_0, 4, ne_q4, d->q4, NULL, NULL, &err), &err);
}

static void check_scalar_kvs(const gm_gguf *g) {
    gm_error err;
    uint8_t u8 = 0;
    int8_t i8 = 0;
    uint16_t u16 = 0;
    int16_t i16 = 0;
    uint32_t u32 = 0;
    int32_t i32 = 0;
    float f32 = 0;
    bool b = false;
    uint64_t u64 = 0;
    int64_t i64 = 0, iv = 0;
    double f64 = 0;
    CHECK_OK(gm_gguf_get_scalar(g, "t.u8", GM_GGUF_U8, &u8, &err), &err);
    CHECK_OK(gm_gguf_get_scalar(g, "t.i8", GM_GGUF_I8, &i8, &err), &err);
    CHECK_OK(gm_gguf_get_scalar(g, "t.u16", GM_GGUF_U16, &u16, &err), &err);
    CHECK_OK(gm_gguf_get_scalar(g, "t.i16", GM_GGUF_I16, &i16, &err), &err);
    CHECK_OK(gm_gguf_get_u32(g, "t.u32", &u32, &err), &err);
    CHECK_OK(gm_gguf_get_i32(g, "t.i32", &i32, &err), &err);
    CHECK_OK(gm_gguf_get_f32(g, "t.f32", &f32, &err), &err);
    CHECK_OK(gm_gguf_get_bool(g, "t.bool", &b, &err), &err);
    CHECK_OK(gm_gguf_get_scalar(g, "t.u64", GM_GGUF_U64, &u64, &err), &err);
    CHECK_OK(gm_gguf_get_scalar(g, "t.i64", GM_GGUF_I64, &i64, &err), &err);
    CHECK_OK(gm_gguf_get_scalar(g, "t.f64", GM_GGUF_F64, &f64, &err), &err);
    CHECK(u8 == 200 && i8 == -100 && u16 == 60000 && i16 == -30000 && u32 == 4000000000u &&
              i32 == -2000000000 && f32 == 3.5f && b && u64 == ((uint64_t)1 << 40) + 7 &&
              i64 == -((int64_t)1 << 40) && f64 == 2.718281828459045,
          "scalar values");
    CHECK_OK(gm_gguf_get_int(g, "t.u32", &iv, &err), &err);
    CHECK(iv == 4000000000, "get_int u32 %lld", (long long)iv);
    CHECK_OK(gm_gguf_get_int(g, "t.i8", &iv, &err), &err);
    CHECK(iv == -100, "get_int i8");
    const char *s;
    size_t len;
    CHECK_OK(gm_gguf_get_str(g, "t.str", &s, &len, &err), &err);
    CHECK(len == 6 && memcmp(s, "h\xc3\xa9llo", 6) == 0, "string value");
    CHECK(gm_gguf_kv_type(g, gm_gguf_find_key(g, "t.f64")) == GM_GGUF_F64, "kv type");
}

static void check_array_kvs(const gm_gguf *g) {
    gm_error err;
    int64_t kv, iv;
    uint64_t n;
    double v;
    CHECK_OK(gm_gguf_get_arr(g, "a.u8", GM_GGUF_U8, &kv, &n, &err), &err);
    CHECK(n == 3 && gm_gguf_arr_int(g, kv, 2, &iv, &err) == GM_OK && iv == 255, "a.u8");
    CHECK_OK(gm_gguf_get_arr(g, "a.i8", GM_GGUF_I8, &kv, &n, &err), &err);
    CHECK(gm_gguf_arr_int(g, kv, 0, &iv, &err) == GM_OK && iv == -128, "a.i8");
    CHECK_OK(gm_gguf_get_arr(g, "a.u16", GM_GGUF_U16, &kv, &n, &err), &err);
    CHECK(gm_gguf_arr_int(g, kv, 1, &iv, &err) == GM_OK && iv == 65535, "a.u16");
    CHECK_OK(gm_gguf_get_arr(g, "a.i16", GM_GGUF_I16, &kv, &n, &err), &err);
    CHECK(gm_gguf_arr_int(g, kv, 0, &iv, &err) == GM_OK && iv == -32768, "a.i16");
    CHECK_OK(gm_gguf_get_arr(g, "a.u32", GM_GGUF_U32, &kv, &n, &err), &err);
    CHECK(n == 4 && gm_gguf_arr_int(g, kv, 3, &iv, &err) == GM_OK && iv == 4000000000, "a.u32");
    const uint8_t *raw = gm_gguf_arr_data(g, kv);
    CHECK(raw && get32(raw, 4) == 2, "a.u32 raw data");
    CHECK_OK(gm_gguf_get_arr(g, "a.i32", GM_GGUF_I32, &kv, &n, &err), &err);
    CHECK(gm_gguf_arr_int(g, kv, 2, &iv, &err) == GM_OK && iv == INT32_MIN, "a.i32");
    CHECK_OK(gm_gguf_get_arr(g, "a.f32", GM_GGUF_F32, &kv, &n, &err), &err);
    CHECK(gm_gguf_arr_num(g, kv, 2, &v, &err) == GM_OK && v == (double)1e30f, "a.f32");
    CHECK_OK(gm_gguf_get_arr(g, "a.bool", GM_GGUF_BOOL, &kv, &n, &err), &err);
    CHECK(gm_gguf_arr_int(g, kv, 0, &iv, &err) == GM_OK && iv == 1 &&
              gm_gguf_arr_int(g, kv, 1, &iv, &err) == GM_OK && iv == 0,
          "a.bool");
    CHECK_OK(gm_gguf_get_arr(g, "a.u64", GM_GGUF_U64, &kv, &n, &err), &err);
    CHECK(gm_gguf_arr_num(g, kv, 0, &v, &err) == GM_OK && v == 18446744073709551615.0, "a.u64 as double");
    CHECK_FAILS(gm_gguf_arr_int(g, kv, 0, &iv, &err), GM_ERR_FORMAT, "does not fit in int64", &err);
    CHECK_OK(gm_gguf_get_arr(g, "a.i64", GM_GGUF_I64, &kv, &n, &err), &err);
    CHECK(gm_gguf_arr_int(g, kv, 0, &iv, &err) == GM_OK && iv == INT64_MIN, "a.i64");
    CHECK_OK(gm_gguf_get_arr(g, "a.f64", GM_GGUF_F64, &kv, &n, &err), &err);
    CHECK(gm_gguf_arr_num(g, kv, 0, &v, &err) == GM_OK && v == 1e300, "a.f64");
    CHECK_OK(gm_gguf_get_arr(g, "a.empty", GM_GGUF_U32, &kv, &n, &err), &err);
    CHECK(n == 0, "a.empty");
    CHECK_OK(gm_gguf_get_arr(g, "a.str", GM_GGUF_STR, &kv, &n, &err), &err);
    CHECK(n == 5 && gm_gguf_arr_data(g, kv) == NULL, "a.str");
    for (uint64_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        CHECK_OK(gm_gguf_arr_str(g, kv, i, &s, &len, &err), &err);
        CHECK(len == str_lens[i] && memcmp(s, strs[i], len) == 0, "a.str[%llu]", (unsigned long long)i);
    }
    CHECK_OK(gm_gguf_get_arr(g, "a.str0", GM_GGUF_INVALID, &kv, &n, &err), &err);
    CHECK(n == 4 && gm_gguf_arr_type(g, kv) == GM_GGUF_STR && gm_gguf_arr_len(g, kv) == 4, "a.str0");
}

static void check_tensors(const gm_gguf *g, const full_data *d) {
    static const struct { const char *name; int32_t type; int n_dims; int64_t ne[4]; size_t size; } want[] = {
        {"f32.w", GM_GGML_F32, 3, {5, 3, 2, 1}, 120},
        {"f16.w", GM_GGML_F16, 2, {8, 2, 1, 1}, 32},
        {"bf16.w", GM_GGML_BF16, 1, {7, 1, 1, 1}, 14},
        {"blk.0.q8.weight", GM_GGML_Q8_0, 2, {64, 3, 1, 1}, 204},
        {"q4.w", GM_GGML_Q4_0, 4, {32, 2, 1, 2}, 72},
    };
    const void *data[] = {d->f32, d->f16, d->bf16, d->q8, d->q4};
    CHECK(gm_gguf_tensor_count(g) == 5, "tensor count");
    for (int i = 0; i < 5; i++) {
        int64_t k = gm_gguf_find_tensor(g, want[i].name);
        const gm_gguf_tensor *t = gm_gguf_tensor_at(g, k);
        CHECK(k == i && t && strcmp(t->name, want[i].name) == 0, "find %s", want[i].name);
        if (!t) continue;
        CHECK(t->type == want[i].type && t->n_dims == want[i].n_dims && memcmp(t->ne, want[i].ne, sizeof t->ne) == 0 &&
                  t->size == want[i].size,
              "%s: meta", t->name);
        CHECK(memcmp(t->data, data[i], t->size) == 0, "%s: data", t->name);
    }
    CHECK(gm_gguf_find_tensor(g, "nope") == -1 && gm_gguf_tensor_at(g, 5) == NULL && gm_gguf_tensor_at(g, -1) == NULL,
          "missing tensors");
}

/* The layout llama.cpp's reader insists on: data section aligned, tensors in order, each padded. */
static void check_layout(const uint8_t *b, size_t size, const gm_gguf *g) {
    size_t a = gm_gguf_alignment(g), off = gm_gguf_data_offset(g);
    CHECK(memcmp(b, "GGUF", 4) == 0 && get32(b, 4) == 3, "magic/version");
    CHECK(get64(b, 8) == (uint64_t)gm_gguf_tensor_count(g) && get64(b, 16) == (uint64_t)gm_gguf_kv_count(g), "counts");
    CHECK(off % a == 0, "data offset %zu aligned to %zu", off, a);
    uint64_t expect = 0;
    for (int64_t i = 0; i < gm_gguf_tensor_count(g); i++) {
        const gm_gguf_tensor *t = gm_gguf_tensor_at(g, i);
        CHECK(t->offset == expect, "%s offset %llu, expected %llu", t->name, (unsigned long long)t->offset,
              (unsigned long long)expect);
        uint64_t end = t->offset + t->size, padded = (end + a - 1) / a * a;
        for (uint64_t p = end; p < padded && off + p < size; p++) CHECK(b[off + p] == 0, "padding byte");
        expect = padded;
    }
    CHECK(size == off + expect, "file size %zu, expected %zu", size, (size_t)(off + expect));
}

static void test_full_roundtrip(uint32_t alignment) {
    full_data *d = calloc(1, sizeof *d);
    make_full_data(d);
    gm_gguf_writer *w;
    gm_error err;
    CHECK_OK(gm_gguf_writer_new(&w, &err), &err);
    build_full(w, d, alignment);
    size_t size;
    uint8_t *buf = to_buffer(w, &size);
    const char *path = "test_gguf_full.gguf";
    CHECK_OK(gm_gguf_writer_write_file(w, path, &err), &err);
    gm_gguf_writer_free(w);

    gm_gguf *g = NULL;
    CHECK_OK(gm_gguf_open_buffer(buf, size, "full", &g, &err), &err);
    if (g) {
        CHECK(gm_gguf_version(g) == 3 && gm_gguf_alignment(g) == (alignment ? alignment : 32), "alignment");
        CHECK(gm_gguf_kv_count(g) == 26 + (alignment != 0), "kv count %lld", (long long)gm_gguf_kv_count(g));
        CHECK(strcmp(gm_gguf_kv_key(g, 0), "t.u8") == 0 && gm_gguf_kv_key(g, 999) == NULL, "key order");
        check_scalar_kvs(g);
        check_array_kvs(g);
        check_tensors(g, d);
        check_layout(buf, size, g);
        gm_gguf_free(g);
    }
    /* The file is the same bytes, and reads the same through the mapping. */
    gm_mapped_file f;
    CHECK_OK(gm_map_file(path, &f, &err), &err);
    CHECK(f.size == size && memcmp(f.data, buf, size) == 0, "file bytes == buffer bytes");
    gm_unmap_file(&f);
    CHECK_OK(gm_gguf_open_file(path, &g, &err), &err);
    if (g) {
        check_tensors(g, d);
        CHECK(strcmp(gm_gguf_name(g), path) == 0, "name");
        gm_gguf_free(g);
    }
    remove(path);
    free(buf);
    free(d);
}

/* A writer with only KVs: like llama.cpp's it still pads the header, whose
 * reader (and ours) then puts the empty data section right after the infos. */
static void test_no_tensors(void) {
    gm_gguf_writer *w;
    gm_error err;
    CHECK_OK(gm_gguf_writer_new(&w, &err), &err);
    CHECK_OK(gm_gguf_writer_set_str(w, "general.architecture", "gemma3n", &err), &err);
    size_t size;
    uint8_t *buf = to_buffer(w, &size);
    gm_gguf_writer_free(w);
    CHECK(size == 96, "kv-only size %zu (71 padded to 32)", size);
    gm_gguf *g;
    CHECK_OK(gm_gguf_open_buffer(buf, size, "kv", &g, &err), &err);
    if (g) {
        CHECK(gm_gguf_tensor_count(g) == 0 && gm_gguf_data_offset(g) == 71, "no tensors");
        gm_gguf_free(g);
    }
    free(buf);
}

/* Many long keys and tensor names: the name arenas grow (and move) while
 * parsing; every key and tensor must still be found afterwards. */
static void test_many_names(void) {
    gm_gguf_writer *w;
    gm_error err;
    static float data[32];
    char name[96];
    int64_t ne[] = {8};
    CHECK_OK(gm_gguf_writer_new(&w, &err), &err);
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "gemma3n.some.rather.long.metadata.key.number.%d", i);
        CHECK_OK(gm_gguf_writer_set_u32(w, name, (uint32_t)i * 3, &err), &err);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "blk.%d.a_long_tensor_name_for_growth.weight", i);
        CHECK_OK(gm_gguf_writer_add_tensor(w, name, GM_GGML_F32, 1, ne, data, NULL, NULL, &err), &err);
    }
    size_t size;
    uint8_t *buf = to_buffer(w, &size);
    gm_gguf_writer_free(w);
    gm_gguf *g;
    CHECK_OK(gm_gguf_open_buffer(buf, size, "many", &g, &err), &err);
    if (g) {
        int bad = 0;
        for (int i = 0; i < 300; i++) {
            uint32_t v = 0;
            snprintf(name, sizeof name, "gemma3n.some.rather.long.metadata.key.number.%d", i);
            bad += gm_gguf_find_key(g, name) != i || gm_gguf_get_u32(g, name, &v, &err) != GM_OK || v != (uint32_t)i * 3 ||
                   strcmp(gm_gguf_kv_key(g, i), name) != 0;
        }
        for (int i = 0; i < 1000; i++) {
            snprintf(name, sizeof name, "blk.%d.a_long_tensor_name_for_growth.weight", i);
            bad += gm_gguf_find_tensor(g, name) != i || strcmp(gm_gguf_tensor_at(g, i)->name, name) != 0;
        }
        CHECK(bad == 0, "%d names not found", bad);
        gm_gguf_free(g);
    }
    free(buf);
}

/* ---- the small file every corruption test starts from ---- */

static uint8_t t0_data[136], t1_data[28];

static uint8_t *small_file(size_t *size) {
    gm_gguf_writer *w;
    gm_error err;
    static const uint32_t arr[] = {1, 2, 3};
    static const char *const names[] = {"x", "yz"};
    for (size_t i = 0; i < sizeof t0_data; i++) t0_data[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof t1_data; i++) t1_data[i] = (uint8_t)(i + 100);
    gm_gguf_writer_new(&w, &err);
    gm_gguf_writer_set_str(w, "general.architecture", "gemma3n", &err);
    gm_gguf_writer_set_u32(w, "general.alignment", 32, &err);
    gm_gguf_writer_set_u32(w, "k.a", 7, &err);
    gm_gguf_writer_set_u32(w, "k.b", 8, &err);
    gm_gguf_writer_set_bool(w, "k.bool", true, &err);
    gm_gguf_writer_set_arr(w, "k.arr", GM_GGUF_U32, arr, 3, &err);
    gm_gguf_writer_set_arr_str(w, "k.strs", names, NULL, 2, &err);
    int64_t ne0[] = {64, 2}, ne1[] = {7};
    gm_gguf_writer_add_tensor(w, "t0", GM_GGML_Q8_0, 2, ne0, t0_data, NULL, NULL, &err);
    gm_gguf_writer_add_tensor(w, "t1", GM_GGML_F32, 1, ne1, t1_data, NULL, NULL, &err);
    uint8_t *b = to_buffer(w, size);
    gm_gguf_writer_free(w);
    return b;
}

typedef struct small_ctx {
    uint8_t *base;
    size_t size;
    size_t t0, t1;       /* offsets of the tensor name bytes */
    size_t data_offset;
} small_ctx;

/* A fresh copy with a 32-bit / 64-bit value patched at `at`. */
static uint8_t *patched32(const small_ctx *c, size_t at, uint32_t v) {
    uint8_t *b = dup_bytes(c->base, c->size);
    put32(b, at, v);
    return b;
}
static uint8_t *patched64(const small_ctx *c, size_t at, uint64_t v) {
    uint8_t *b = dup_bytes(c->base, c->size);
    put64(b, at, v);
    return b;
}

#define FAIL32(c, at, v, status, needle)                  \
    do {                                                  \
        uint8_t *b_ = patched32((c), (at), (v));          \
        EXPECT_FAIL(b_, (c)->size, (status), (needle));   \
        free(b_);                                         \
    } while (0)
#define FAIL64(c, at, v, status, needle)                  \
    do {                                                  \
        uint8_t *b_ = patched64((c), (at), (v));          \
        EXPECT_FAIL(b_, (c)->size, (status), (needle));   \
        free(b_);                                         \
    } while (0)

static void test_header_checks(const small_ctx *c) {
    EXPECT_FAIL(c->base, 0, GM_ERR_FORMAT, "truncated header (0 bytes");
    EXPECT_FAIL(NULL, 0, GM_ERR_FORMAT, "truncated header");
    EXPECT_FAIL(c->base, 23, GM_ERR_FORMAT, "truncated header (23 bytes");
    FAIL32(c, 0, 0x4C4D4747, GM_ERR_FORMAT, "bad magic 'GGML'");
    FAIL32(c, 4, 1, GM_ERR_UNSUPPORTED, "unsupported GGUF version 1 (only version 3");
    FAIL32(c, 4, 2, GM_ERR_UNSUPPORTED, "unsupported GGUF version 2 (only version 3");
    FAIL32(c, 4, 4, GM_ERR_UNSUPPORTED, "unsupported GGUF version 4 (only version 3");
    FAIL32(c, 4, 0x03000000, GM_ERR_UNSUPPORTED, "big-endian");
    FAIL64(c, 8, (uint64_t)1 << 40, GM_ERR_FORMAT, "tensor count 1099511627776 cannot fit");
    FAIL64(c, 8, UINT64_MAX, GM_ERR_FORMAT, "tensor count 18446744073709551615 cannot fit");
    FAIL64(c, 16, (uint64_t)1 << 40, GM_ERR_FORMAT, "KV count 1099511627776 cannot fit");
    FAIL64(c, 16, UINT64_MAX, GM_ERR_FORMAT, "KV count 18446744073709551615 cannot fit");
    /* One KV fewer than written: the last KV is parsed as a tensor info (type 9 = 9 dims). */
    FAIL64(c, 16, get64(c->base, 16) - 1, GM_ERR_FORMAT, "tensor 'k.strs' has 9 dimensions (max 4)");
}

static void test_kv_checks(const small_ctx *c) {
    size_t arch = find_str(c->base, c->size, "general.architecture");
    size_t val = find_str(c->base, c->size, "gemma3n");
    size_t ka = find_str(c->base, c->size, "k.a"), kb = find_str(c->base, c->size, "k.b");
    size_t kbool = find_str(c->base, c->size, "k.bool"), karr = find_str(c->base, c->size, "k.arr");
    size_t kstrs = find_str(c->base, c->size, "k.strs"), align = find_str(c->base, c->size, "general.alignment");

    FAIL64(c, arch - 8, c->size, GM_ERR_FORMAT, "KV #0: string length");
    FAIL64(c, arch - 8, c->size, GM_ERR_FORMAT, "runs past the end of the file");
    FAIL64(c, arch - 8, 70000, GM_ERR_FORMAT, "string length 70000 at offset 24 is absurd (limit 65535)");
    FAIL64(c, val - 8, c->size, GM_ERR_FORMAT, "key 'general.architecture': string length");
    FAIL64(c, val - 8, (uint64_t)1 << 62, GM_ERR_FORMAT, "is absurd (limit 1073741824)");
    FAIL64(c, kstrs + 6 + 4 + 4 + 8, 1000, GM_ERR_FORMAT, "key 'k.strs': string length 1000");
    FAIL64(c, arch - 8, 0, GM_ERR_FORMAT, "KV #0 has an empty key");
    {
        uint8_t *b = dup_bytes(c->base, c->size);
        b[ka + 1] = 0;
        EXPECT_FAIL(b, c->size, GM_ERR_FORMAT, "key contains a NUL byte");
        free(b);
    }
    FAIL32(c, ka + 3, 13, GM_ERR_FORMAT, "key 'k.a' has unknown value type 13");
    FAIL32(c, ka + 3, (uint32_t)-1, GM_ERR_FORMAT, "key 'k.a' has unknown value type -1");
    FAIL32(c, karr + 5 + 4, 77, GM_ERR_FORMAT, "key 'k.arr': array of unknown value type 77");
    FAIL64(c, karr + 5 + 8, (uint64_t)1 << 40, GM_ERR_FORMAT,
           "key 'k.arr': array of 1099511627776 u32 elements cannot fit in the file");
    FAIL64(c, kstrs + 6 + 8, UINT64_MAX, GM_ERR_FORMAT, "array of 18446744073709551615 str elements cannot fit");
    {
        uint8_t *b = dup_bytes(c->base, c->size);
        b[kbool + 6 + 4] = 2;
        EXPECT_FAIL(b, c->size, GM_ERR_FORMAT, "key 'k.bool': invalid bool value 2");
        memcpy(b + kb, "k.a", 3);
        EXPECT_FAIL(b, c->size, GM_ERR_FORMAT, "key 'k.bool': invalid bool"); /* found while parsing */
        b[kbool + 6 + 4] = 1;
        EXPECT_FAIL(b, c->size, GM_ERR_FORMAT, "duplicate key 'k.a'");
        free(b);
    }
    FAIL32(c, align + 17 + 4, 48, GM_ERR_FORMAT, "alignment 48 is not a power of 2");
    FAIL32(c, align + 17 + 4, 0, GM_ERR_FORMAT, "alignment 0 is not a power of 2");
    FAIL32(c, align + 17, GM_GGUF_I32, GM_ERR_FORMAT, "key 'general.alignment' has type i32, expected u32");
    /* Alignment 16 is valid, but the data section moves: a different check fires or it reads. */
}

static void test_tensor_checks(const small_ctx *c) {
    size_t t0 = c->t0, t1 = c->t1;
    FAIL64(c, t0 - 8, 0, GM_ERR_FORMAT, "tensor #0 has an empty name");
    FAIL64(c, t0 - 8, 64, GM_ERR_FORMAT, "tensor #0: name of 64 bytes is too long (max 63)");
    FAIL64(c, t0 - 8, c->size, GM_ERR_FORMAT, "tensor #0: string length");
    FAIL32(c, t0 + 2, 5, GM_ERR_FORMAT, "tensor 't0' has 5 dimensions (max 4)");
    FAIL64(c, t0 + 2 + 4 + 8, 0, GM_ERR_FORMAT, "tensor 't0': dimension 1 is 0 (must be > 0)");
    FAIL64(c, t0 + 2 + 4 + 8, (uint64_t)-3, GM_ERR_FORMAT, "tensor 't0': dimension 1 is -3 (must be > 0)");
    FAIL64(c, t0 + 2 + 4, 0, GM_ERR_FORMAT, "tensor 't0': dimension 0 is 0");
    FAIL64(c, t0 + 2 + 4 + 8, (uint64_t)1 << 62, GM_ERR_FORMAT, "tensor 't0': element count overflows");
    FAIL32(c, t0 + 2 + 4 + 16, 99, GM_ERR_FORMAT, "tensor 't0' has unknown type id 99");
    FAIL32(c, t0 + 2 + 4 + 16, 4, GM_ERR_FORMAT, "tensor 't0' has unknown type id 4");
    FAIL32(c, t0 + 2 + 4 + 16, (uint32_t)-2, GM_ERR_FORMAT, "tensor 't0' has unknown type id -2");
    FAIL32(c, t0 + 2 + 4 + 16, GM_GGML_Q4_K, GM_ERR_UNSUPPORTED, "unsupported tensor type Q4_K (tensor t0)");
    FAIL32(c, t0 + 2 + 4 + 16, GM_GGML_IQ2_XXS, GM_ERR_UNSUPPORTED, "unsupported tensor type IQ2_XXS (tensor t0)");
    FAIL64(c, t0 + 2 + 4, 48, GM_ERR_FORMAT,
           "tensor 't0' of type Q8_0: row length 48 is not a multiple of the block size 32");
    FAIL64(c, t1 + 2 + 4 + 8 + 4, 160 + 4, GM_ERR_FORMAT, "tensor 't1': offset 164 is not a multiple of the alignment 32");
    FAIL64(c, t1 + 2 + 4 + 8 + 4, 1 << 20, GM_ERR_FORMAT, "tensor 't1' (data bytes [1048576, +28)) extends past the end");
    FAIL64(c, t1 + 2 + 4 + 8 + 4, UINT64_MAX - 31, GM_ERR_FORMAT, "extends past the end of the file");
    FAIL64(c, t0 + 2 + 4 + 8, 3, GM_ERR_FORMAT, "tensor 't0' (data bytes [0, +204)) extends past the end");
    FAIL64(c, t1 + 2 + 4 + 8 + 4, 128, GM_ERR_FORMAT, "tensors 't0' [0, 136) and 't1' [128, 156) overlap");
    FAIL64(c, t1 + 2 + 4 + 8 + 4, 0, GM_ERR_FORMAT, "tensors 't0' [0, 136) and 't1' [0, 28) overlap");
    FAIL64(c, t1 + 2 + 4 + 8 + 4, 0, GM_ERR_FORMAT, "overlap");
    {
        uint8_t *b = dup_bytes(c->base, c->size);
        b[t1 + 1] = '0';
        EXPECT_FAIL(b, c->size, GM_ERR_FORMAT, "duplicate tensor name 't0'");
        b[t1 + 1] = 0;
        EXPECT_FAIL(b, c->size, GM_ERR_FORMAT, "tensor #1: name contains a NUL byte");
        free(b);
    }
    /* Swapping the offsets is fine for us (not for llama.cpp): any disjoint aligned layout reads. */
    {
        uint8_t *b = dup_bytes(c->base, c->size);
        put64(b, t0 + 2 + 4 + 16 + 4, 32);
        put64(b, t1 + 2 + 4 + 8 + 4, 0);
        gm_gguf *g;
        gm_error err;
        CHECK_OK(gm_gguf_open_buffer(b, c->size, NAME, &g, &err), &err);
        gm_gguf_free(g);
        free(b);
    }
    /* Truncated inside the header padding: the data section would start past the end. */
    size_t hdr_end = t1 + 2 + 4 + 8 + 4 + 8;
    CHECK(hdr_end % 32 != 0 && c->data_offset > hdr_end, "the small file has header padding (%zu)", hdr_end);
    EXPECT_FAIL(c->base, hdr_end + 1, GM_ERR_FORMAT, "data section starts at");
    EXPECT_FAIL(c->base, c->data_offset + 170, GM_ERR_FORMAT, "tensor 't1' (data bytes [160, +28)) extends past");
}

/* Every prefix shorter than the last tensor's end fails cleanly; the rest (only padding cut) read. */
static void test_truncations(const small_ctx *c) {
    size_t end = c->data_offset + 160 + 28;
    CHECK(end < c->size, "small file ends with padding");
    int bad = 0;
    for (size_t n = 0; n < c->size; n++) {
        uint8_t *b = dup_bytes(c->base, n); /* exact-size copy: ASan sees any overread */
        gm_gguf *g = NULL;
        gm_error err;
        gm_status st = gm_gguf_open_buffer(b, n, NAME, &g, &err);
        if (n < end ? st != GM_ERR_FORMAT : st != GM_OK) {
            bad++;
            fprintf(stderr, "prefix %zu: %s %s\n", n, gm_status_name(st), err.message);
        }
        gm_gguf_free(g);
        free(b);
    }
    CHECK(bad == 0, "%d prefixes misjudged", bad);
}

/* Random byte flips in the header: never a crash, always a clean result. */
static void test_random_flips(const small_ctx *c) {
    uint64_t s = 12345;
    int bad = 0, failed = 0;
    for (int it = 0; it < 5000; it++) {
        uint8_t *b = dup_bytes(c->base, c->size);
        int flips = 1 + it % 4;
        for (int k = 0; k < flips; k++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            size_t at = (size_t)(s % c->data_offset);
            b[at] = it % 3 ? (uint8_t)(s >> 32) : (uint8_t)(b[at] ^ (1u << (s >> 40) % 8));
        }
        gm_gguf *g = NULL;
        gm_error err;
        gm_status st = gm_gguf_open_buffer(b, c->size, NAME, &g, &err);
        if (st != GM_OK) {
            failed++;
            bad += !(st == GM_ERR_FORMAT || st == GM_ERR_UNSUPPORTED) || g != NULL ||
                   strncmp(err.message, NAME ": ", strlen(NAME) + 2) != 0;
        } else {
            for (int64_t i = 0; i < gm_gguf_tensor_count(g); i++) { /* every tensor is inside the buffer */
                const gm_gguf_tensor *t = gm_gguf_tensor_at(g, i);
                bad += (const uint8_t *)t->data < b || (const uint8_t *)t->data + t->size > b + c->size;
            }
        }
        gm_gguf_free(g);
        free(b);
    }
    CHECK(bad == 0, "%d bad outcomes", bad);
    CHECK(failed > 2500, "most flips must be caught (%d)", failed);
}

/* ---- hand-built files: nested arrays ---- */

typedef struct bb {
    uint8_t d[1024];
    size_t n;
} bb;
static void bb_put(bb *b, const void *p, size_t n) { memcpy(b->d + b->n, p, n); b->n += n; }
static void bb_u32(bb *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_put(b, &v, 8); }
static void bb_str(bb *b, const char *s) { bb_u64(b, strlen(s)); bb_put(b, s, strlen(s)); }
static void bb_header(bb *b, uint64_t n_kv) {
    b->n = 0;
    bb_put(b, "GGUF", 4);
    bb_u32(b, 3);
    bb_u64(b, 0);
    bb_u64(b, n_kv);
}

/* `levels` array headers nested in one another around an empty u8 array. */
static void bb_nested(bb *b, int levels) {
    bb_header(b, 1);
    bb_str(b, "deep");
    bb_u32(b, GM_GGUF_ARRAY);
    for (int i = 1; i < levels; i++) {
        bb_u32(b, GM_GGUF_ARRAY);
        bb_u64(b, 1);
    }
    bb_u32(b, GM_GGUF_U8);
    bb_u64(b, 0);
}

static void test_nested_arrays(void) {
    bb b;
    bb_header(&b, 2);
    bb_str(&b, "nest");
    bb_u32(&b, GM_GGUF_ARRAY);
    bb_u32(&b, GM_GGUF_ARRAY);
    bb_u64(&b, 2);
    bb_u32(&b, GM_GGUF_U8); /* [1, 2, 3] */
    bb_u64(&b, 3);
    bb_put(&b, "\1\2\3", 3);
    bb_u32(&b, GM_GGUF_STR); /* ["hi"] */
    bb_u64(&b, 1);
    bb_str(&b, "hi");
    bb_str(&b, "after");
    bb_u32(&b, GM_GGUF_U32);
    bb_u32(&b, 5);
    gm_gguf *g;
    gm_error err;
    CHECK_OK(gm_gguf_open_buffer(b.d, b.n, "nested", &g, &err), &err);
    if (g) {
        int64_t kv;
        uint64_t n;
        uint32_t v = 0;
        double x;
        CHECK_OK(gm_gguf_get_arr(g, "nest", GM_GGUF_ARRAY, &kv, &n, &err), &err);
        CHECK(n == 2 && gm_gguf_arr_type(g, kv) == GM_GGUF_ARRAY && gm_gguf_arr_data(g, kv) == NULL, "nested meta");
        CHECK_FAILS(gm_gguf_arr_num(g, kv, 0, &x, &err), GM_ERR_FORMAT,
                    "key 'nest' has type array of arr, expected array of numbers", &err);
        CHECK_OK(gm_gguf_get_u32(g, "after", &v, &err), &err);
        CHECK(v == 5, "value after a nested array");
        gm_gguf_free(g);
    }
    b.n -= 4; /* cut into the last value */
    EXPECT_FAIL(b.d, b.n, GM_ERR_FORMAT, "truncated at offset");
    bb_nested(&b, GM_GGUF_MAX_NESTING);
    CHECK_OK(gm_gguf_open_buffer(b.d, b.n, "nested", &g, &err), &err);
    gm_gguf_free(g);
    bb_nested(&b, GM_GGUF_MAX_NESTING + 1);
    EXPECT_FAIL(b.d, b.n, GM_ERR_FORMAT, "key 'deep': arrays nested deeper than 8 levels");
    /* An inner array whose count cannot fit. */
    bb_header(&b, 1);
    bb_str(&b, "bad");
    bb_u32(&b, GM_GGUF_ARRAY);
    bb_u32(&b, GM_GGUF_ARRAY);
    bb_u64(&b, 1);
    bb_u32(&b, GM_GGUF_F64);
    bb_u64(&b, 1000);
    EXPECT_FAIL(b.d, b.n, GM_ERR_FORMAT, "array of 1000 f64 elements cannot fit");
}

/* ---- getters: wrong types, missing keys, ranges ---- */

static void test_getter_errors(const small_ctx *c) {
    gm_gguf *g;
    gm_error err;
    CHECK_OK(gm_gguf_open_buffer(c->base, c->size, NAME, &g, &err), &err);
    if (!g) return;
    uint32_t u = 0;
    int32_t i = 0;
    float f;
    bool b;
    int64_t kv, iv;
    uint64_t n;
    const char *s;
    size_t len;
    double x;
    CHECK_FAILS(gm_gguf_get_u32(g, "k.bool", &u, &err), GM_ERR_FORMAT, NAME ": key 'k.bool' has type bool, expected u32", &err);
    CHECK_FAILS(gm_gguf_get_i32(g, "k.a", &i, &err), GM_ERR_FORMAT, "key 'k.a' has type u32, expected i32", &err);
    CHECK_FAILS(gm_gguf_get_f32(g, "k.arr", &f, &err), GM_ERR_FORMAT, "key 'k.arr' has type array of u32, expected f32", &err);
    CHECK_FAILS(gm_gguf_get_bool(g, "general.architecture", &b, &err), GM_ERR_FORMAT, "has type str, expected bool", &err);
    CHECK_FAILS(gm_gguf_get_str(g, "k.a", &s, &len, &err), GM_ERR_FORMAT, "key 'k.a' has type u32, expected str", &err);
    CHECK_FAILS(gm_gguf_get_str(g, "nope", &s, &len, &err), GM_ERR_FORMAT, NAME ": missing key 'nope'", &err);
    CHECK_FAILS(gm_gguf_get_int(g, "k.bool", &iv, &err), GM_ERR_FORMAT, "expected an integer", &err);
    CHECK_FAILS(gm_gguf_get_scalar(g, "k.a", GM_GGUF_STR, &s, &err), GM_ERR_ARGUMENT, "not a number type", &err);
    CHECK_FAILS(gm_gguf_get_arr(g, "k.arr", GM_GGUF_STR, &kv, &n, &err), GM_ERR_FORMAT,
                "key 'k.arr' has type array of u32, expected array of str", &err);
    CHECK_FAILS(gm_gguf_get_arr(g, "k.a", GM_GGUF_INVALID, &kv, &n, &err), GM_ERR_FORMAT,
                "key 'k.a' has type u32, expected array of any", &err);
    CHECK_OK(gm_gguf_get_arr(g, "k.strs", GM_GGUF_STR, &kv, &n, &err), &err);
    CHECK_FAILS(gm_gguf_arr_str(g, kv, 2, &s, &len, &err), GM_ERR_ARGUMENT, "index 2 out of range for key 'k.strs' (2 elements)", &err);
    CHECK_FAILS(gm_gguf_arr_int(g, kv, 0, &iv, &err), GM_ERR_FORMAT, "has type array of str, expected array of integers", &err);
    CHECK_FAILS(gm_gguf_arr_num(g, 999, 0, &x, &err), GM_ERR_ARGUMENT, "KV index 999 out of range", &err);
    CHECK_FAILS(gm_gguf_arr_str(g, gm_gguf_find_key(g, "k.a"), 0, &s, &len, &err), GM_ERR_FORMAT,
                "has type u32, expected array of str", &err);
    CHECK(gm_gguf_arr_type(g, gm_gguf_find_key(g, "k.a")) == GM_GGUF_INVALID && gm_gguf_arr_len(g, -1) == 0 &&
              gm_gguf_kv_type(g, 99) == GM_GGUF_INVALID && gm_gguf_kv_key(g, -1) == NULL &&
              gm_gguf_arr_data(g, gm_gguf_find_key(g, "k.strs")) == NULL,
          "out-of-range introspection");
    CHECK(u == 0 && i == 0, "outputs untouched on failure");
    gm_gguf_free(g);

    CHECK_FAILS(gm_gguf_open_file("/nonexistent/model.gguf", &g, &err), GM_ERR_IO, "/nonexistent/model.gguf", &err);
    CHECK(g == NULL, "no handle");
}

/* ---- writer errors ---- */

static gm_status short_cb(void *user, const char *name, gm_gguf_sink *sink, gm_error *err) {
    static const uint8_t zeros[100];
    return gm_gguf_sink_write(sink, zeros, *(const size_t *)user, err);
}
static gm_status failing_cb(void *user, const char *name, gm_gguf_sink *sink, gm_error *err) {
    return gm_fail(err, GM_ERR_IO, "source.safetensors: read error for %s", name);
}

static void test_writer_errors(void) {
    gm_gguf_writer *w;
    gm_error err;
    CHECK_OK(gm_gguf_writer_new(&w, &err), &err);
    CHECK_OK(gm_gguf_writer_set_u32(w, "k", 1, &err), &err);
    CHECK_FAILS(gm_gguf_writer_set_u32(w, "k", 2, &err), GM_ERR_ARGUMENT, "duplicate key 'k'", &err);
    CHECK_FAILS(gm_gguf_writer_set_str(w, "k", "x", &err), GM_ERR_ARGUMENT, "duplicate key 'k'", &err);
    CHECK_FAILS(gm_gguf_writer_set_u32(w, "", 2, &err), GM_ERR_ARGUMENT, "empty key", &err);
    CHECK_FAILS(gm_gguf_writer_set_scalar(w, "s", GM_GGUF_STR, "x", &err), GM_ERR_ARGUMENT, "not a number type", &err);
    CHECK_FAILS(gm_gguf_writer_set_u32(w, "general.alignment", 48, &err), GM_ERR_ARGUMENT, "alignment 48 is not a power of 2", &err);
    CHECK_FAILS(gm_gguf_writer_set_i32(w, "general.alignment", 64, &err), GM_ERR_ARGUMENT, "'general.alignment' must be u32", &err);
    CHECK_FAILS(gm_gguf_writer_set_str(w, "general.alignment", "32", &err), GM_ERR_ARGUMENT, "'general.alignment' must be u32, not str", &err);
    CHECK_FAILS(gm_gguf_writer_set_arr(w, "general.alignment", GM_GGUF_U32, &err, 1, &err), GM_ERR_ARGUMENT,
                "'general.alignment' must be u32, not arr", &err);
    uint32_t one = 1;
    CHECK_FAILS(gm_gguf_writer_set_arr(w, "n", GM_GGUF_ARRAY, &one, 1, &err), GM_ERR_ARGUMENT, "nested arrays", &err);
    CHECK_FAILS(gm_gguf_writer_set_arr(w, "n", GM_GGUF_STR, &one, 1, &err), GM_ERR_ARGUMENT, "set_arr_str", &err);
    CHECK_FAILS(gm_gguf_writer_set_arr(w, "n", GM_GGUF_U32, NULL, 3, &err), GM_ERR_ARGUMENT, "bad array", &err);
    const char *null_str[] = {"a", NULL};
    CHECK_FAILS(gm_gguf_writer_set_arr_str(w, "n", null_str, NULL, 2, &err), GM_ERR_ARGUMENT, "string 1 is NULL", &err);

    float data[64] = {0};
    int64_t ne[] = {32, 2}, bad_ne[] = {33, 2}, zero_ne[] = {32, 0};
    char long_name[80];
    memset(long_name, 'x', 64);
    long_name[64] = 0;
    CHECK_OK(gm_gguf_writer_add_tensor(w, "t", GM_GGML_F32, 2, ne, data, NULL, NULL, &err), &err);
    CHECK_FAILS(gm_gguf_writer_add_tensor(w, "t", GM_GGML_F32, 2, ne, data, NULL, NULL, &err), GM_ERR_ARGUMENT,
                "duplicate tensor name 't'", &err);
    CHECK_FAILS(gm_gguf_writer_add_tensor(w, long_name, GM_GGML_F32, 2, ne, data, NULL, NULL, &err), GM_ERR_ARGUMENT,
                "must have 1 to 63 bytes", &err);
    CHECK_FAILS(gm_gguf_writer_add_tensor(w, "", GM_GGML_F32, 2, ne, data, NULL, NULL, &err), GM_ERR_ARGUMENT,
                "must have 1 to 63 bytes", &err);
    CHECK_FAILS(gm_gguf_writer_add_tensor(w, "u", 4, 2, ne, data, NULL, NULL, &err), GM_ERR_ARGUMENT,
                "tensor 'u': unknown type id 4", &err);
    CHECK_FAILS(gm_gguf_writer_add_tensor(w, "u", GM_GGML_F32, 5, ne, data, NULL, NULL, &err), GM_ERR_ARGUMENT,
                "5 dimensions (must be 1 to 4)", &err);
    CHECK_FAILS(gm_gguf_writer_add_tensor(w, "u", GM_GGML_F32, 0, ne, data, NULL, NULL, &err), GM_ERR_ARGUMENT,
                "0 dimensions", &err);
    CHECK_FAILS(gm_gguf_writer_add_tensor(w, "u", GM_GGML_F32, 2, zero_ne, data, NULL, NULL, &err), GM_ERR_ARGUMENT,
                "bad dimension 1 (0)", &err);
    CHECK_FAILS(gm_gguf_writer_add_tensor(w, "u", GM_GGML_Q8_0, 2, bad_ne, data, NULL, NULL, &err), GM_ERR_ARGUMENT,
                "row length 33 is not a multiple of the block size 32", &err);
    CHECK_FAILS(gm_gguf_writer_add_tensor(w, "u", GM_GGML_F32, 2, ne, NULL, NULL, NULL, &err), GM_ERR_ARGUMENT,
                "neither data nor a data callback", &err);
    /* None of the failed calls changed the writer. */
    size_t size;
    uint8_t *buf = to_buffer(w, &size);
    gm_gguf *g;
    CHECK_OK(gm_gguf_open_buffer(buf, size, "w", &g, &err), &err);
    if (g) {
        CHECK(gm_gguf_kv_count(g) == 1 && gm_gguf_tensor_count(g) == 1 && gm_gguf_alignment(g) == 32, "writer unchanged");
        gm_gguf_free(g);
    }
    free(buf);
    gm_gguf_writer_free(w);

    /* Callbacks writing too little, too much, or failing. */
    size_t n10 = 10, n100 = 100;
    int64_t ne16[] = {16};
    CHECK_OK(gm_gguf_writer_new(&w, &err), &err);
    gm_gguf_writer_add_tensor(w, "short", GM_GGML_F32, 1, ne16, NULL, short_cb, &n10, &err);
    CHECK_FAILS(gm_gguf_writer_write_buffer(w, &buf, &size, &err), GM_ERR_ARGUMENT,
                "tensor 'short': data callback wrote 10 of its 64 bytes", &err);
    gm_gguf_writer_free(w);
    CHECK_OK(gm_gguf_writer_new(&w, &err), &err);
    gm_gguf_writer_add_tensor(w, "long", GM_GGML_F32, 1, ne16, NULL, short_cb, &n100, &err);
    CHECK_FAILS(gm_gguf_writer_write_buffer(w, &buf, &size, &err), GM_ERR_ARGUMENT,
                "tensor 'long': data callback wrote more than its 64 bytes", &err);
    gm_gguf_writer_free(w);
    CHECK_OK(gm_gguf_writer_new(&w, &err), &err);
    gm_gguf_writer_add_tensor(w, "bad", GM_GGML_F32, 1, ne16, NULL, failing_cb, NULL, &err);
    const char *path = "test_gguf_partial.gguf";
    CHECK_FAILS(gm_gguf_writer_write_file(w, path, &err), GM_ERR_IO, "source.safetensors: read error for bad", &err);
    CHECK(access(path, F_OK) != 0, "partial file removed");
    CHECK_FAILS(gm_gguf_writer_write_file(w, "/nonexistent/dir/x.gguf", &err), GM_ERR_IO, "cannot create", &err);
    gm_gguf_writer_free(w);
    gm_gguf_writer_free(NULL);
}

/* A known-but-unsupported type written by us is refused by our reader with its name. */
static void test_unsupported_file(void) {
    gm_gguf_writer *w;
    gm_error err;
    static uint8_t q4k[2 * 144];
    int64_t ne[] = {256, 2};
    CHECK_OK(gm_gguf_writer_new(&w, &err), &err);
    CHECK_OK(gm_gguf_writer_add_tensor(w, "blk.0.ffn_up.weight", GM_GGML_Q4_K, 2, ne, q4k, NULL, NULL, &err), &err);
    size_t size;
    uint8_t *buf = to_buffer(w, &size);
    gm_gguf_writer_free(w);
    EXPECT_FAIL(buf, size, GM_ERR_UNSUPPORTED, "unsupported tensor type Q4_K (tensor blk.0.ffn_up.weight)");
    free(buf);
}

int main(void) {
    test_full_roundtrip(0);
    test_full_roundtrip(64);
    test_no_tensors();
    test_many_names();

    small_ctx c;
    c.base = small_file(&c.size);
    c.t0 = find_str(c.base, c.size, "t0");
    c.t1 = find_str(c.base, c.size, "t1");
    {
        gm_gguf *g;
        gm_error err;
        CHECK_OK(gm_gguf_open_buffer(c.base, c.size, NAME, &g, &err), &err);
        c.data_offset = g ? gm_gguf_data_offset(g) : 0;
        CHECK(g && get64(c.base, c.t1 + 2 + 4 + 8 + 4) == 160, "t1 at 160");
        gm_gguf_free(g);
    }
    test_header_checks(&c);
    test_kv_checks(&c);
    test_tensor_checks(&c);
    test_truncations(&c);
    test_random_flips(&c);
    test_getter_errors(&c);
    free(c.base);

    test_nested_arrays();
    test_writer_errors();
    test_unsupported_file();
    return gm_test_summary();
}
