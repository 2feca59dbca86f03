/* mfs_ggml: the ggml tensor types found in published GGUF files, and their exact byte sizes.
 *
 * A tensor of type t with shape ne[0..3] (ne[0] varies fastest) occupies
 *   ne[0] / block_size(t) * type_size(t) * ne[1] * ne[2] * ne[3] bytes,
 * and ne[0] must be a multiple of the block size. Type ids are ggml's (`enum ggml_type`); ids that
 * ggml removed (4, 5, 31-33, 36-38) are unknown here.
 */
#ifndef MFS_GGML_H
#define MFS_GGML_H

#include <stdbool.h>
#include <stdint.h>

enum mfs_ggml_type {
    MFS_GGML_F32 = 0,
    MFS_GGML_F16 = 1,
    MFS_GGML_Q4_0 = 2,
    MFS_GGML_Q4_1 = 3,
    MFS_GGML_Q5_0 = 6,
    MFS_GGML_Q5_1 = 7,
    MFS_GGML_Q8_0 = 8,
    MFS_GGML_Q8_1 = 9,
    MFS_GGML_Q2_K = 10,
    MFS_GGML_Q3_K = 11,
    MFS_GGML_Q4_K = 12,
    MFS_GGML_Q5_K = 13,
    MFS_GGML_Q6_K = 14,
    MFS_GGML_Q8_K = 15,
    MFS_GGML_IQ2_XXS = 16,
    MFS_GGML_IQ2_XS = 17,
    MFS_GGML_IQ3_XXS = 18,
    MFS_GGML_IQ1_S = 19,
    MFS_GGML_IQ4_NL = 20,
    MFS_GGML_IQ3_S = 21,
    MFS_GGML_IQ2_S = 22,
    MFS_GGML_IQ4_XS = 23,
    MFS_GGML_I8 = 24,
    MFS_GGML_I16 = 25,
    MFS_GGML_I32 = 26,
    MFS_GGML_I64 = 27,
    MFS_GGML_F64 = 28,
    MFS_GGML_IQ1_M = 29,
    MFS_GGML_BF16 = 30,
    MFS_GGML_TQ1_0 = 34,
    MFS_GGML_TQ2_0 = 35,
    MFS_GGML_MXFP4 = 39,
    MFS_GGML_TYPE_COUNT = 40,
};

#define MFS_GGML_MAX_DIMS 4

/* Name as ggml prints it ("F16", "Q4_K"), or NULL for an unknown id. */
const char *mfs_ggml_type_name(uint32_t type);
/* Inverse of mfs_ggml_type_name, case-insensitive; -1 if unknown. */
int mfs_ggml_type_from_name(const char *name);
bool mfs_ggml_type_valid(uint32_t type);
/* Elements per block and bytes per block; 0 for an unknown id. */
uint32_t mfs_ggml_blck_size(uint32_t type);
uint32_t mfs_ggml_type_size(uint32_t type);
/* Is it a float type stored element by element (F32, F16, BF16, F64)? */
bool mfs_ggml_is_float(uint32_t type);

/* Bytes of a tensor, with every product checked: 0 on success, -EINVAL if the type is unknown,
 * ne[0] is not a multiple of the block size or a dimension is negative, -EOVERFLOW if the size
 * does not fit in int64. Dimensions past n_dims must be 1 (or are ignored if n_dims says so). */
int mfs_ggml_nbytes(uint32_t type, uint32_t n_dims, const int64_t *ne, uint64_t *out);

#endif
