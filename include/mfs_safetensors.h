/* mfs_safetensors: the safetensors reader.
 *
 * File layout (https://github.com/huggingface/safetensors, all little-endian):
 *   u64   N: length of the JSON header (at most MFS_ST_MAX_HEADER, and 8 + N <= file size)
 *   u8[N] JSON header, UTF-8, starting with '{', possibly padded with trailing spaces:
 *           { "__metadata__": { "key": "value", ... },          (optional, strings only)
 *             "NAME": { "dtype": "F16", "shape": [d0, d1, ...], "data_offsets": [BEGIN, END] }, ... }
 *   bytes  the data buffer: tensor NAME is bytes [BEGIN, END) of it, row-major (d0 slowest)
 *
 * The reader enforces the format's rules: every tensor's END - BEGIN equals the product of its
 * shape times its dtype's size (products checked for overflow); the tensors, sorted by offset,
 * tile the buffer exactly: no hole between two tensors, no overlap, no byte after the last one,
 * nothing past the end of the file. A bad file gives -EINVAL and one line in `err`
 * ("NAME: reason"); -ENOMEM and -EIO as usual.
 *
 * Ownership: an mfs_st owns its strings; mfs_st_free(NULL) is a no-op. Pointers returned by
 * accessors live as long as the mfs_st. Thread safety: a parsed mfs_st is read-only.
 */
#ifndef MFS_SAFETENSORS_H
#define MFS_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mfs_log.h"
#include "mfs_source.h"

/* The reference implementation's limit on N. */
#define MFS_ST_MAX_HEADER 100000000ull
/* Dimensions we accept per tensor (the format sets no limit; GGUF has 4, see mfs_st_ggml_shape). */
#define MFS_ST_MAX_DIMS 8

/* The dtypes of the format. Sizes in bytes: BOOL, U8, I8, F8_* 1; I16, U16, F16, BF16 2;
 * I32, U32, F32 4; I64, U64, F64 8. */
enum mfs_st_dtype {
    MFS_ST_BOOL,
    MFS_ST_U8,
    MFS_ST_I8,
    MFS_ST_F8_E5M2,
    MFS_ST_F8_E4M3,
    MFS_ST_I16,
    MFS_ST_U16,
    MFS_ST_F16,
    MFS_ST_BF16,
    MFS_ST_I32,
    MFS_ST_U32,
    MFS_ST_F32,
    MFS_ST_F64,
    MFS_ST_I64,
    MFS_ST_U64,
    MFS_ST_DTYPE_COUNT,
};

struct mfs_st_tensor {
    const char *name; /* NUL-terminated; contains no NUL */
    size_t name_len;
    uint32_t dtype;   /* enum mfs_st_dtype */
    uint32_t n_dims;  /* 0 (a scalar) to MFS_ST_MAX_DIMS */
    uint64_t shape[MFS_ST_MAX_DIMS]; /* row-major: shape[0] varies slowest */
    uint64_t off;     /* where the data starts, from the start of the file */
    uint64_t size;    /* bytes */
};

struct mfs_st_meta {
    const char *key, *value; /* NUL-terminated (may hold NULs: use the lengths) */
    size_t key_len, value_len;
};

typedef struct mfs_st mfs_st;

/* Parse the header at the start of `src` (reads 8 + N bytes, nothing of the data). `name` names
 * the file in messages (NULL: the source's name). The source is not retained. */
int mfs_st_parse(mfs_source *src, const char *name, mfs_st **out, mfs_err *err);
/* Same over memory: `size` is the size of the whole file. */
int mfs_st_parse_memory(const void *data, size_t size, const char *name, mfs_st **out, mfs_err *err);
void mfs_st_free(mfs_st *st);

/* Tensors in file order (sorted by data offset). */
uint64_t mfs_st_n_tensors(const mfs_st *st);
const struct mfs_st_tensor *mfs_st_tensor(const mfs_st *st, uint64_t i);
/* Index of the tensor called `name`, or -1. */
int64_t mfs_st_find(const mfs_st *st, const char *name);
/* `__metadata__` entries, in header order. */
uint64_t mfs_st_n_meta(const mfs_st *st);
const struct mfs_st_meta *mfs_st_meta(const mfs_st *st, uint64_t i);
/* 8 + N: where the data buffer starts. */
uint64_t mfs_st_data_offset(const mfs_st *st);

/* "F16", ... or NULL; inverse (exact, case-sensitive as in the format) -1 if unknown. */
const char *mfs_st_dtype_name(uint32_t dtype);
int mfs_st_dtype_from_name(const char *name, size_t len);
/* Bytes per element; 0 for an unknown dtype. */
uint32_t mfs_st_dtype_size(uint32_t dtype);

/* The ggml type a dtype is presented as, -1 if it has none (U64):
 * F64, F32, F16, BF16, I64, I32, I16, I8 as themselves; BOOL as I8 (same bytes); U8, U16, U32
 * widened to I16, I32, I64; F8_E4M3 and F8_E5M2 converted to F16 (exactly: every value of
 * both is an F16 value). mfs_st_needs_conversion tells whether the bytes change. */
int mfs_st_ggml_type(uint32_t dtype);
bool mfs_st_needs_conversion(uint32_t dtype, uint32_t ggml_type);

/* The GGUF shape of a tensor: the row-major shape reversed (ne[0] = the last dimension); a scalar
 * becomes [1]; more than 4 dimensions fold the leading ones into ne[3]. Returns n_dims (1..4). */
uint32_t mfs_st_ggml_shape(const struct mfs_st_tensor *t, int64_t ne[4]);

#endif
