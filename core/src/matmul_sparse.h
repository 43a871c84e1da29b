/*
 * matmul_sparse.h - y = W x for a chosen subset of W's rows, one activation row at a time.
 *
 * Why: in the FFN of layers with activation sparsity, upstream's
 * Gemma3nTextMLP._gaussian_topk zeroes ~95 % of the gate activations, and
 * gelu(0) = 0, so up_proj's row r only matters where gate[r] != 0. Computing
 * those rows alone saves ~95 % of up_proj's weight traffic per token.
 *
 * Exactness: a row is computed by the same kernel-table GEMV as gm_matmul's
 * one-row-at-a-time path (activation converted the same way), and kernels.h
 * guarantees that GEMV row r has the same bits however [r0, r1) is split.
 * So every requested row has exactly the bits of the dense product whenever
 * gm_matmul takes its GEMV path (T < GM_GEMM_MIN_BATCH: always; larger
 * batches may go to sgemm, whose rounding differs: see text_decoder.c's mlp).
 */
#ifndef GM_MATMUL_SPARSE_H
#define GM_MATMUL_SPARSE_H

#include "matmul.h"

/*
 * y[rows[i]] = W[rows[i], 0:in] . x for i < n_rows (rows ascending, each
 * < out); other entries of y untouched. Matrices not in the plain row-major
 * layout fall back to the dense gm_matmul (all `out` rows written).
 * Uses c->xq as scratch, like gm_matmul; runs on c->pool when worth it.
 * Returns the number of rows computed (n_rows, or out for the fallback).
 */
GM_INTERNAL int64_t gm_matmul_rows(const gm_matmul_ctx *c, const gm_matrix *W, int64_t out, int64_t in, const float *x,
                                const int32_t *rows, int n_rows, float *y);

/*
 * gm_matmul_rows for a row-major W on the calling thread only, with the
 * caller's scratch for x's Q8_0 blocks (xq: in / 32 blocks, used when W is
 * block-quantized; gm_matmul_xq_row gives one per batch row). Several
 * threads can so run whole tokens at once: a prefill batch goes over the
 * pool by tokens instead of waking it for every token's few hundred rows.
 * Same bits as gm_matmul_rows.
 */
GM_INTERNAL void gm_matmul_rows_local(const gm_kernels *k, const gm_matrix *W, int64_t out, int64_t in, const float *x,
                                      void *xq, const int32_t *rows, int n_rows, float *y);

#endif
