/*
 * gguf.h - GGUF v3 container: a validating zero-copy reader and a streaming
 * writer, byte-compatible with llama.cpp (ggml/src/gguf.cpp).
 *
 * File layout (all integers little-endian):
 *
 *   "GGUF"                      4 bytes magic
 *   u32 version                 3 (v1/v2 and later versions are rejected)
 *   i64 n_tensors
 *   i64 n_kv
 *   n_kv x KV:
 *     str key                   str = u64 byte length + bytes (no NUL)
 *     i32 value type            gm_gguf_type
 *     value:                    scalar: its bytes (bool = 1 byte 0/1)
 *                               str: as above
 *                               array: i32 element type, u64 count, elements
 *                                      (arrays may nest; llama.cpp itself
 *                                       reads only one level)
 *   n_tensors x tensor info:
 *     str name                  < 64 bytes (ggml's GGML_MAX_NAME)
 *     u32 n_dims                <= 4
 *     i64 ne[n_dims]            ne[0] = innermost (row length), ...
 *     i32 type                  ggml type id (quant.h)
 *     u64 offset                relative to the data section, multiple of
 *                               the alignment
 *   zero padding to the alignment
 *   data section                tensor bytes; llama.cpp's writer (and ours)
 *                               lays tensors out in info order, each padded
 *                               to the alignment
 *
 * The alignment is the u32 key "general.alignment" when present (a power
 * of two), else 32.
 *
 * The reader treats the file as hostile: every count, length, offset and
 * size is checked against the bytes present before use, with overflow-safe
 * arithmetic, and each failure gets its own message naming the file and
 * the key or tensor. Tensor types are restricted to the ones this engine
 * computes with (F32, F16, BF16, Q8_0, Q4_0): other ggml types are
 * GM_ERR_UNSUPPORTED, ids ggml does not define are GM_ERR_FORMAT.
 *
 * A gm_gguf is immutable after opening and may be read from several
 * threads at once.
 */
#ifndef GM_GGUF_H
#define GM_GGUF_H

#include "gm_internal.h"
#include "quant.h"

#define GM_GGUF_VERSION 3
#define GM_GGUF_DEFAULT_ALIGNMENT 32
#define GM_GGUF_MAX_DIMS 4
#define GM_GGUF_MAX_NAME 63           /* longest tensor name, in bytes */
#define GM_GGUF_MAX_KEY 65535         /* longest key (GGUF spec) */
#define GM_GGUF_MAX_STRING ((uint64_t)1 << 30) /* longest string value (as llama.cpp) */
#define GM_GGUF_MAX_NESTING 8         /* deepest array-of-array nesting accepted */

/* KV value types, as stored (int32) in the file. */
typedef enum gm_gguf_type {
    GM_GGUF_INVALID = -1, /* returned for out-of-range indices */
    GM_GGUF_U8 = 0,
    GM_GGUF_I8 = 1,
    GM_GGUF_U16 = 2,
    GM_GGUF_I16 = 3,
    GM_GGUF_U32 = 4,
    GM_GGUF_I32 = 5,
    GM_GGUF_F32 = 6,
    GM_GGUF_BOOL = 7,
    GM_GGUF_STR = 8,
    GM_GGUF_ARRAY = 9,
    GM_GGUF_U64 = 10,
    GM_GGUF_I64 = 11,
    GM_GGUF_F64 = 12,
    GM_GGUF_TYPE_COUNT = 13
} gm_gguf_type;

/* "u32", "str", "arr" ... (llama.cpp's names); "?" for anything else. */
GM_INTERNAL const char *gm_gguf_type_name(gm_gguf_type t);
/* Bytes of one scalar of type t; 0 for STR, ARRAY and invalid types. */
GM_INTERNAL size_t gm_gguf_type_size(gm_gguf_type t);

/* ------------------------------------------------------------------ */
/* Reader                                                             */
/* ------------------------------------------------------------------ */

typedef struct gm_gguf gm_gguf;

/* One tensor of the directory. All fields are validated at open. */
typedef struct gm_gguf_tensor {
    const char *name;        /* NUL-terminated, owned by the gm_gguf */
    int32_t type;            /* gm_ggml_type: F32, F16, BF16, Q8_0 or Q4_0 */
    int32_t n_dims;          /* 0..4 as stored */
    int64_t ne[GM_GGUF_MAX_DIMS]; /* ne[0] = row length; dims past n_dims are 1; all > 0 */
    int64_t n_elems;         /* product of ne */
    uint64_t offset;         /* from the start of the data section */
    size_t size;             /* bytes */
    const void *data;        /* into the file image: data section + offset. Aligned to
                              * gm_gguf_alignment() relative to the image start, so a
                              * loader must still check the address suits the type
                              * (an alignment of 1 is legal) before casting. */
} gm_gguf_tensor;

/*
 * Maps and validates the GGUF file at `path`. On success *out owns the
 * mapping until gm_gguf_free. On failure *out is NULL and err says why
 * (GM_ERR_IO, GM_ERR_FORMAT, GM_ERR_UNSUPPORTED or GM_ERR_OUT_OF_MEMORY).
 */
GM_INTERNAL gm_status gm_gguf_open_file(const char *path, gm_gguf **out, gm_error *err);

/*
 * Same over `size` bytes at `data`, which are NOT copied and must outlive
 * the gm_gguf. `what` names the buffer in messages (NULL: "<buffer>").
 * Block tensors need `data` 2-byte aligned to be used in place.
 */
GM_INTERNAL gm_status gm_gguf_open_buffer(const void *data, size_t size, const char *what,
                                          gm_gguf **out, gm_error *err);

/* Frees everything (unmaps a file opened by path). NULL is a no-op. */
GM_INTERNAL void gm_gguf_free(gm_gguf *g);

GM_INTERNAL uint32_t gm_gguf_version(const gm_gguf *g);
/* The file mapping of a GGUF opened by path and its size; NULL (size 0) for a
 * caller's buffer, whose pages are not ours to drop (MADV_DONTNEED would zero
 * anonymous memory). */
GM_INTERNAL const void *gm_gguf_image(const gm_gguf *g, size_t *size);
GM_INTERNAL size_t gm_gguf_alignment(const gm_gguf *g);
/* Offset of the data section from the start of the file. */
GM_INTERNAL size_t gm_gguf_data_offset(const gm_gguf *g);
/* The file path or buffer name used in messages. */
GM_INTERNAL const char *gm_gguf_name(const gm_gguf *g);

/* ---- key/value metadata ----
 * KVs are addressed by index 0..count-1 in file order; gm_gguf_find_key
 * maps a key to its index (hashed). Keys are unique (checked at open). */

GM_INTERNAL int64_t gm_gguf_kv_count(const gm_gguf *g);
/* Index of `key`, or -1 when absent. */
GM_INTERNAL int64_t gm_gguf_find_key(const gm_gguf *g, const char *key);
/* Key of KV i (NUL-terminated, owned by g), or NULL when out of range. */
GM_INTERNAL const char *gm_gguf_kv_key(const gm_gguf *g, int64_t kv);
/* Value type of KV i (GM_GGUF_ARRAY for arrays), GM_GGUF_INVALID out of range. */
GM_INTERNAL gm_gguf_type gm_gguf_kv_type(const gm_gguf *g, int64_t kv);

/*
 * Typed scalar getters by key. A missing key or a value of another type is
 * GM_ERR_FORMAT with a message naming the key, the type found and the type
 * wanted; *out is untouched then.
 *   get_scalar copies the value of any numeric/bool type `want` into out
 *   (a uint8_t/.../double, or a bool for GM_GGUF_BOOL).
 *   get_int accepts any integer type and widens it to int64 (u64 values
 *   above INT64_MAX are an error): for counts that converters write as
 *   u32 or u64 alike.
 *   get_str gives a pointer into the file image: NOT NUL-terminated, use
 *   *len; valid until gm_gguf_free.
 */
GM_INTERNAL gm_status gm_gguf_get_scalar(const gm_gguf *g, const char *key, gm_gguf_type want,
                                         void *out, gm_error *err);
GM_INTERNAL gm_status gm_gguf_get_u32(const gm_gguf *g, const char *key, uint32_t *out, gm_error *err);
GM_INTERNAL gm_status gm_gguf_get_i32(const gm_gguf *g, const char *key, int32_t *out, gm_error *err);
GM_INTERNAL gm_status gm_gguf_get_f32(const gm_gguf *g, const char *key, float *out, gm_error *err);
GM_INTERNAL gm_status gm_gguf_get_bool(const gm_gguf *g, const char *key, bool *out, gm_error *err);
GM_INTERNAL gm_status gm_gguf_get_int(const gm_gguf *g, const char *key, int64_t *out, gm_error *err);
GM_INTERNAL gm_status gm_gguf_get_str(const gm_gguf *g, const char *key, const char **s, size_t *len,
                                      gm_error *err);

/*
 * Arrays. gm_gguf_get_arr finds `key`, checks it is an array whose element
 * type is `elem` (GM_GGUF_INVALID: any element type) and gives its KV index
 * and element count for the element accessors below.
 */
GM_INTERNAL gm_status gm_gguf_get_arr(const gm_gguf *g, const char *key, gm_gguf_type elem,
                                      int64_t *kv, uint64_t *n, gm_error *err);
/* Element type of array KV i (GM_GGUF_ARRAY when nested); GM_GGUF_INVALID if not an array. */
GM_INTERNAL gm_gguf_type gm_gguf_arr_type(const gm_gguf *g, int64_t kv);
/* Element count of array KV i; 0 if not an array. */
GM_INTERNAL uint64_t gm_gguf_arr_len(const gm_gguf *g, int64_t kv);
/*
 * Raw little-endian elements of a numeric/bool array (possibly unaligned:
 * copy with memcpy), or NULL for string arrays, nested arrays and non-arrays.
 */
GM_INTERNAL const void *gm_gguf_arr_data(const gm_gguf *g, int64_t kv);
/*
 * Element i of an array KV. Errors (GM_ERR_FORMAT naming the key): not an
 * array, element type not accepted, i out of range (GM_ERR_ARGUMENT).
 *   arr_str: string arrays; pointer into the image, NOT NUL-terminated.
 *   arr_num: any numeric or bool element, as double (exact up to 2^53).
 *   arr_int: integer or bool elements, as int64 (u64 > INT64_MAX: error).
 */
GM_INTERNAL gm_status gm_gguf_arr_str(const gm_gguf *g, int64_t kv, uint64_t i, const char **s,
                                      size_t *len, gm_error *err);
GM_INTERNAL gm_status gm_gguf_arr_num(const gm_gguf *g, int64_t kv, uint64_t i, double *out,
                                      gm_error *err);
GM_INTERNAL gm_status gm_gguf_arr_int(const gm_gguf *g, int64_t kv, uint64_t i, int64_t *out,
                                      gm_error *err);

/* ---- tensor directory ---- */

GM_INTERNAL int64_t gm_gguf_tensor_count(const gm_gguf *g);
/* Index of the tensor named `name`, or -1 (hashed). */
GM_INTERNAL int64_t gm_gguf_find_tensor(const gm_gguf *g, const char *name);
/* Tensor i (file order), or NULL when out of range. Owned by g. */
GM_INTERNAL const gm_gguf_tensor *gm_gguf_tensor_at(const gm_gguf *g, int64_t i);

/* ------------------------------------------------------------------ */
/* Writer                                                             */
/* ------------------------------------------------------------------ */

/*
 * Collects KVs and tensor descriptions, then writes the file in one pass:
 * header, KVs in the order set, tensor infos in the order added, padding,
 * then each tensor's bytes padded to the alignment (exactly the layout
 * llama.cpp's gguf_write_to_file produces and its reader requires).
 * Tensor bytes are pulled at write time, one tensor after the other, from
 * a pointer or a callback, so a converter never holds more than it wants.
 *
 *   gm_gguf_writer *w;
 *   gm_gguf_writer_new(&w, &err);
 *   gm_gguf_writer_set_str(w, "general.architecture", "gemma3n", &err);
 *   gm_gguf_writer_add_tensor(w, "token_embd.weight", GM_GGML_Q8_0, 2, ne, NULL,
 *                             fill_embd, &ctx, &err);
 *   gm_gguf_writer_write_file(w, "out.gguf", &err);
 *   gm_gguf_writer_free(w);
 *
 * Argument errors (duplicate key or tensor, bad name, shape or type) are
 * GM_ERR_ARGUMENT and leave the writer unchanged. Tensor data bytes are
 * written as given (host order; all supported hosts are little-endian).
 */
typedef struct gm_gguf_writer gm_gguf_writer;
/* Where a data callback sends a tensor's bytes. */
typedef struct gm_gguf_sink gm_gguf_sink;

/*
 * Produces the bytes of one tensor by calling gm_gguf_sink_write any number
 * of times; the pieces must add up to exactly the tensor's size. Returning
 * an error (with err filled) aborts the write.
 */
typedef gm_status (*gm_gguf_data_fn)(void *user, const char *name, gm_gguf_sink *sink,
                                     gm_error *err);
GM_INTERNAL gm_status gm_gguf_sink_write(gm_gguf_sink *sink, const void *data, size_t n,
                                         gm_error *err);

GM_INTERNAL gm_status gm_gguf_writer_new(gm_gguf_writer **out, gm_error *err);
GM_INTERNAL void gm_gguf_writer_free(gm_gguf_writer *w);

/*
 * Scalar KVs. set_scalar reads one value of numeric/bool type `type` from
 * `value` (bool: a C bool). "general.alignment" must be a u32 power of two
 * and sets the writer's alignment.
 */
GM_INTERNAL gm_status gm_gguf_writer_set_scalar(gm_gguf_writer *w, const char *key, gm_gguf_type type,
                                                const void *value, gm_error *err);
GM_INTERNAL gm_status gm_gguf_writer_set_u32(gm_gguf_writer *w, const char *key, uint32_t v, gm_error *err);
GM_INTERNAL gm_status gm_gguf_writer_set_i32(gm_gguf_writer *w, const char *key, int32_t v, gm_error *err);
GM_INTERNAL gm_status gm_gguf_writer_set_f32(gm_gguf_writer *w, const char *key, float v, gm_error *err);
GM_INTERNAL gm_status gm_gguf_writer_set_bool(gm_gguf_writer *w, const char *key, bool v, gm_error *err);
/* NUL-terminated string value. */
GM_INTERNAL gm_status gm_gguf_writer_set_str(gm_gguf_writer *w, const char *key, const char *s,
                                             gm_error *err);
/*
 * Array of n numeric/bool elements (bool: C bools, written as 0/1 bytes)
 * read from `data` in host order.
 */
GM_INTERNAL gm_status gm_gguf_writer_set_arr(gm_gguf_writer *w, const char *key, gm_gguf_type elem,
                                             const void *data, uint64_t n, gm_error *err);
/* Array of n strings; lens[i] gives each length (NULL: NUL-terminated). */
GM_INTERNAL gm_status gm_gguf_writer_set_arr_str(gm_gguf_writer *w, const char *key,
                                                 const char *const *strs, const size_t *lens,
                                                 uint64_t n, gm_error *err);

/*
 * Adds a tensor of ggml type `type` (any type ggml defines; the bytes are
 * not interpreted) and shape ne[0..n_dims-1] (ne[0] = row length, a
 * multiple of the type's block size; 1 <= n_dims <= 4; all ne > 0). Its
 * bytes come from `data` (size = gm_ggml_nbytes, must stay valid until the
 * write) or, when data is NULL, from fn(user, name, sink, err) at write time.
 */
GM_INTERNAL gm_status gm_gguf_writer_add_tensor(gm_gguf_writer *w, const char *name, int32_t type,
                                                int n_dims, const int64_t *ne, const void *data,
                                                gm_gguf_data_fn fn, void *user, gm_error *err);

/* Writes the file; on failure the partial file is removed. */
GM_INTERNAL gm_status gm_gguf_writer_write_file(const gm_gguf_writer *w, const char *path,
                                                gm_error *err);
/* Writes into a new heap buffer (*data, free with gm_free) of *size bytes. */
GM_INTERNAL gm_status gm_gguf_writer_write_buffer(const gm_gguf_writer *w, uint8_t **data,
                                                  size_t *size, gm_error *err);

#endif /* GM_GGUF_H */
