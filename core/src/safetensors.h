/*
 * safetensors.h - a checked directory of the tensors of one or more
 * .safetensors files (a single model.safetensors, or shards listed by
 * model.safetensors.index.json).
 *
 * File layout (https://github.com/huggingface/safetensors):
 *   u64 LE   N                    header length
 *   N bytes  JSON header          {"__metadata__": {...}?,
 *                                  "name": {"dtype": "BF16", "shape": [..],
 *                                           "data_offsets": [begin, end]}, ...}
 *   ...      data                 offsets are relative to byte 8 + N
 *
 * Every offset, size and shape is checked against the file before use:
 * files are treated as hostile.
 */
#ifndef GM_SAFETENSORS_H
#define GM_SAFETENSORS_H

#include "gm_internal.h"

/* safetensors element types; only F32/F16/BF16 can feed the decoder. */
typedef enum gm_st_dtype {
    GM_ST_F32, GM_ST_F16, GM_ST_BF16, GM_ST_F64, GM_ST_I64, GM_ST_I32, GM_ST_I16, GM_ST_I8,
    GM_ST_U64, GM_ST_U32, GM_ST_U16, GM_ST_U8, GM_ST_BOOL, GM_ST_F8_E4M3, GM_ST_F8_E5M2,
    GM_ST_DTYPE_COUNT
} gm_st_dtype;

#define GM_ST_MAX_DIMS 8

typedef struct gm_st_tensor {
    const char *name;      /* points into the directory's name arena */
    gm_st_dtype dtype;
    int ndim;
    int64_t shape[GM_ST_MAX_DIMS];
    int64_t numel;
    const uint8_t *data;   /* inside the mapped file; any alignment */
    size_t nbytes;
    int file_index;        /* which shard */
} gm_st_tensor;

typedef struct gm_st_dir {
    gm_mapped_file *files;
    int n_files;
    gm_st_tensor *tensors; /* sorted by name */
    size_t n_tensors;
    char *names;           /* arena of NUL-terminated names */
} gm_st_dir;

/*
 * Opens the weights of a model directory: model.safetensors.index.json
 * (sharded) if present, else model.safetensors. Checks the header of every
 * file, every tensor's dtype/shape/offsets, overlaps, and (sharded) that
 * each tensor named in the index is in the file the index names.
 */
GM_INTERNAL gm_status gm_st_open_dir(const char *dir, gm_st_dir *out, gm_error *err);

/* Opens exactly one .safetensors file (used by tests and tools). */
GM_INTERNAL gm_status gm_st_open_file(const char *path, gm_st_dir *out, gm_error *err);

GM_INTERNAL void gm_st_close(gm_st_dir *d);

/* The tensor called `name`, or NULL. O(log n). */
GM_INTERNAL const gm_st_tensor *gm_st_find(const gm_st_dir *d, const char *name);

GM_INTERNAL const char *gm_st_dtype_name(gm_st_dtype t);
GM_INTERNAL size_t gm_st_dtype_size(gm_st_dtype t);

#endif /* GM_SAFETENSORS_H */
