/* Private to loader/: tensors whose snapshot bytes differ from their stored bytes, computed on
 * demand for any byte range (no whole-tensor pass, nothing cached here: the page cache keeps the
 * result).
 *
 * A stored tensor is `rows` rows of `row_elems` elements of a safetensors dtype (rows = the first
 * dimension, row-major). Two conversions, combinable:
 * - element type: F16, BF16, F64, F8_E4M3, F8_E5M2 to F32; F8_E4M3, F8_E5M2 to F16; U8, U16, U32
 *   widened to I16, I32, I64. All exact except F64 to F32 (round to nearest, as torch does).
 * - row order: llama.cpp's rotary permutation of Q and K (convert_hf_to_gguf.py's
 *   LlamaModel.permute), applied to the rows with n_head groups of hd = rows / n_head rows:
 *   presented row h*hd + 2*i + s is stored row h*hd + s*hd/2 + i (s in {0, 1}, i < hd/2).
 */
#ifndef MFS_CONVERT_H
#define MFS_CONVERT_H

#include <stdbool.h>
#include <stdint.h>

#include "model_internal.h"

struct mfs_conv {
    mfs_source *src;    /* where the stored bytes are (a reference is taken by add/transform) */
    uint64_t off;       /* first byte of the tensor in src */
    uint32_t dtype;     /* enum mfs_st_dtype of the stored elements */
    uint32_t type;      /* ggml type presented */
    uint64_t rows;      /* first dimension of the stored tensor (1 for a scalar) */
    uint64_t row_elems; /* product of the other dimensions */
    uint64_t n_head;    /* 0: rows in stored order; else the rotary permutation with n_head groups */
};

/* Can `dtype` be presented as `type` (the same bytes, or one of the conversions above)? */
bool mfs_conv_supported(uint32_t dtype, uint32_t type);

/* Check a conversion: supported types, sizes that fit, rows a multiple of 2 * n_head. Fills `err`
 * with a reason (no file name) and returns -EINVAL if not. `*out_size` gets the presented bytes. */
int mfs_conv_check(const struct mfs_conv *c, uint64_t *out_size, mfs_err *err);

/* Append the presented bytes of the tensor to the snapshot: a plain source extent when nothing
 * changes, else a transform. 0, -EINVAL (mfs_conv_check fails), -ENOMEM. */
int mfs_conv_add(mfs_model *m, const struct mfs_conv *c);

/* The transform alone, for tests: `*ctx` is freed with (*ops)->free. */
int mfs_conv_transform(const struct mfs_conv *c, const struct mfs_transform_ops **ops, void **ctx);

/* Element conversions (exposed for tests). */
float mfs_half_to_float(uint16_t h);
float mfs_e4m3_to_float(uint8_t b);
uint16_t mfs_e4m3_to_half(uint8_t b);

#endif
