/*
 * gm_internal.h - types and helpers shared by the core's source files.
 * Nothing here is part of the public API.
 */
#ifndef GM_INTERNAL_H
#define GM_INTERNAL_H

#include "gemma3n.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#  define GM_INTERNAL __attribute__((visibility("hidden")))
#  define GM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#  define GM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#  define GM_INTERNAL
#  define GM_PRINTF(a, b)
#  define GM_UNLIKELY(x) (x)
#endif

#define GM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GM_MAX(a, b) ((a) > (b) ? (a) : (b))
#define GM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- errors (status.c) ---- */

/*
 * Records `status` and a formatted message in `err` (which may be NULL) and
 * returns `status`, so that failures read `return gm_fail(err, GM_ERR_FORMAT, ...)`.
 */
GM_INTERNAL gm_status gm_fail(gm_error *err, gm_status status, const char *fmt, ...)
    GM_PRINTF(3, 4);

/* Prefixes the message already in `err` with more context ("model.safetensors: ..."). */
GM_INTERNAL void gm_error_prefix(gm_error *err, const char *fmt, ...) GM_PRINTF(2, 3);

/* Clears err to GM_OK / "" (err may be NULL). */
GM_INTERNAL void gm_error_clear(gm_error *err);

/* ---- allocation (alloc.c) ----
 * All core allocation goes through these so tests can inject failures. */
GM_INTERNAL void *gm_malloc(size_t size);
GM_INTERNAL void *gm_calloc(size_t count, size_t size);
GM_INTERNAL void *gm_realloc(void *ptr, size_t size);
GM_INTERNAL void gm_free(void *ptr);
/* 64-byte aligned, zeroed; NULL on overflow or failure. Free with gm_aligned_free. */
GM_INTERNAL void *gm_aligned_alloc(size_t size);
GM_INTERNAL void gm_aligned_free(void *ptr);
/* A weight copy in its own pages (zeroed by the OS), page aligned; from
 * 2 MiB on 2 MiB aligned with transparent huge pages advised (fewer page
 * faults at load, fewer TLB misses in the GEMVs). Free with gm_free_weights. */
GM_INTERNAL void *gm_alloc_weights(size_t size);
GM_INTERNAL void gm_free_weights(void *ptr);
GM_INTERNAL char *gm_strndup(const char *s, size_t n);
/* Overflow-checked a*b: false on overflow. */
static inline bool gm_mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}

/* Growable byte buffer (used for text assembly and error-free appends). */
typedef struct gm_buf {
    char *data;
    size_t len, cap;
} gm_buf;
GM_INTERNAL bool gm_buf_reserve(gm_buf *b, size_t extra);
GM_INTERNAL bool gm_buf_append(gm_buf *b, const void *data, size_t n);
GM_INTERNAL bool gm_buf_printf(gm_buf *b, const char *fmt, ...) GM_PRINTF(2, 3);
GM_INTERNAL void gm_buf_free(gm_buf *b);

/*
 * Copies `len` bytes to a caller buffer following the public contract:
 * *out_len = len; the copy (NUL-terminated) happens only if cap > len;
 * otherwise GM_ERR_ARGUMENT naming the needed size.
 */
GM_INTERNAL gm_status gm_copy_out(const char *src, size_t len, char *dst, size_t cap,
                                  size_t *out_len, gm_error *err);

/* ---- files (platform.c) ---- */

typedef struct gm_mapped_file {
    const uint8_t *data; /* read-only mapping of the whole file */
    size_t size;
    char *path;          /* owned copy, for error messages */
} gm_mapped_file;

/* Maps a whole file read-only. An empty file maps to data == NULL, size 0. */
GM_INTERNAL gm_status gm_map_file(const char *path, gm_mapped_file *out, gm_error *err);
GM_INTERNAL void gm_unmap_file(gm_mapped_file *f);
/* Reads a whole file into a NUL-terminated heap buffer. */
GM_INTERNAL gm_status gm_read_file(const char *path, char **data, size_t *size, gm_error *err);
GM_INTERNAL bool gm_file_exists(const char *path);
GM_INTERNAL bool gm_is_directory(const char *path);
/* "dir" + "/" + "name" into a new heap string (NULL on OOM). */
GM_INTERNAL char *gm_path_join(const char *dir, const char *name);
GM_INTERNAL int gm_cpu_count(void);
/* Tells the OS the whole pages inside [p, p+n) of a read-only file mapping
 * will not be read again (they are dropped, and re-read from the file if
 * they ever are). A no-op where unsupported. */
GM_INTERNAL void gm_release_pages(const void *p, size_t n);

/* ---- element types and conversions (dtype.c) ---- */

typedef enum gm_dtype {
    GM_DTYPE_F32 = 0,
    GM_DTYPE_F16,
    GM_DTYPE_BF16,
    GM_DTYPE_Q8_0,   /* ggml block_q8_0: 32 weights = fp16 scale + 32 x int8 (34 bytes) */
    GM_DTYPE_Q4_0,   /* ggml block_q4_0: 32 weights = fp16 scale + 16 bytes of nibbles (18 bytes) */
    GM_DTYPE_COUNT
} gm_dtype;

GM_INTERNAL const char *gm_dtype_name(gm_dtype t);
/* Bytes per element of the float types (F32/F16/BF16); 0 for block types. */
GM_INTERNAL size_t gm_dtype_size(gm_dtype t);
/* Elements per block: 1 for float types, 32 for Q8_0/Q4_0. */
GM_INTERNAL int64_t gm_dtype_block(gm_dtype t);
/* Bytes of n elements (n a multiple of the block size). */
GM_INTERNAL size_t gm_dtype_row_bytes(gm_dtype t, int64_t n);

static inline float gm_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

GM_INTERNAL float gm_f16_to_f32(uint16_t h);
GM_INTERNAL uint16_t gm_f32_to_f16(float f);
GM_INTERNAL uint16_t gm_f32_to_bf16(float f); /* round to nearest even */

/* Widens n elements of type t starting at src to f32. Float types: any
 * alignment. Block types: src at a block start, n a multiple of 32. */
GM_INTERNAL void gm_to_f32(gm_dtype t, const void *src, float *dst, size_t n);

/* ---- weight matrices ---- */

/* How a matrix's bytes are arranged. */
typedef enum gm_layout {
    GM_LAYOUT_ROWS = 0,  /* row-major, as stored in the checkpoint */
    GM_LAYOUT_Q4_0X16    /* Q4_0 rows interleaved by 16 (pack.h); row_stride == cols */
} gm_layout;

/*
 * A 2-D weight [rows, cols], by default in row-major order as stored in the
 * checkpoint (PyTorch nn.Linear layout: [out_features, in_features]).
 * `data` points into the mapped file (or into an aligned copy when the
 * file's bytes are misaligned for the type, or into the model's converted /
 * packed copy); `row_stride` is in elements (a multiple of the block size
 * for Q8_0/Q4_0). Read rows through gm_matrix_row, which knows the layouts.
 */
typedef struct gm_matrix {
    gm_dtype type;
    gm_layout layout;
    bool file_backed;   /* data is the read-only file mapping itself: pages may be dropped and re-read */
    int64_t rows, cols;
    int64_t row_stride;
    const void *data;
} gm_matrix;

/* A 1-D weight (norm scales etc.), always widened to f32 at load. */
typedef struct gm_vector {
    int64_t n;
    const float *data;
} gm_vector;

#endif /* GM_INTERNAL_H */
