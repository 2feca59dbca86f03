#include "mfs_ggml.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <strings.h>

struct type_desc {
    const char *name;
    uint32_t blck;
    uint32_t size;
};

/* Block sizes and bytes per block from ggml's block_* structs (QK_K = 256). */
static const struct type_desc k_types[MFS_GGML_TYPE_COUNT] = {
    [MFS_GGML_F32] = {"F32", 1, 4},
    [MFS_GGML_F16] = {"F16", 1, 2},
    [MFS_GGML_Q4_0] = {"Q4_0", 32, 18},
    [MFS_GGML_Q4_1] = {"Q4_1", 32, 20},
    [MFS_GGML_Q5_0] = {"Q5_0", 32, 22},
    [MFS_GGML_Q5_1] = {"Q5_1", 32, 24},
    [MFS_GGML_Q8_0] = {"Q8_0", 32, 34},
    [MFS_GGML_Q8_1] = {"Q8_1", 32, 36},
    [MFS_GGML_Q2_K] = {"Q2_K", 256, 84},
    [MFS_GGML_Q3_K] = {"Q3_K", 256, 110},
    [MFS_GGML_Q4_K] = {"Q4_K", 256, 144},
    [MFS_GGML_Q5_K] = {"Q5_K", 256, 176},
    [MFS_GGML_Q6_K] = {"Q6_K", 256, 210},
    [MFS_GGML_Q8_K] = {"Q8_K", 256, 292},
    [MFS_GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66},
    [MFS_GGML_IQ2_XS] = {"IQ2_XS", 256, 74},
    [MFS_GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98},
    [MFS_GGML_IQ1_S] = {"IQ1_S", 256, 50},
    [MFS_GGML_IQ4_NL] = {"IQ4_NL", 32, 18},
    [MFS_GGML_IQ3_S] = {"IQ3_S", 256, 110},
    [MFS_GGML_IQ2_S] = {"IQ2_S", 256, 82},
    [MFS_GGML_IQ4_XS] = {"IQ4_XS", 256, 136},
    [MFS_GGML_I8] = {"I8", 1, 1},
    [MFS_GGML_I16] = {"I16", 1, 2},
    [MFS_GGML_I32] = {"I32", 1, 4},
    [MFS_GGML_I64] = {"I64", 1, 8},
    [MFS_GGML_F64] = {"F64", 1, 8},
    [MFS_GGML_IQ1_M] = {"IQ1_M", 256, 56},
    [MFS_GGML_BF16] = {"BF16", 1, 2},
    [MFS_GGML_TQ1_0] = {"TQ1_0", 256, 54},
    [MFS_GGML_TQ2_0] = {"TQ2_0", 256, 66},
    [MFS_GGML_MXFP4] = {"MXFP4", 32, 17},
};

static_assert(sizeof k_types / sizeof k_types[0] == MFS_GGML_TYPE_COUNT, "type table follows the enum");

bool mfs_ggml_type_valid(uint32_t type)
{
    return type < MFS_GGML_TYPE_COUNT && k_types[type].name != NULL;
}

const char *mfs_ggml_type_name(uint32_t type)
{
    return mfs_ggml_type_valid(type) ? k_types[type].name : NULL;
}

int mfs_ggml_type_from_name(const char *name)
{
    for (uint32_t t = 0; t < MFS_GGML_TYPE_COUNT; t++)
        if (k_types[t].name && strcasecmp(k_types[t].name, name) == 0)
            return (int)t;
    return -1;
}

uint32_t mfs_ggml_blck_size(uint32_t type)
{
    return mfs_ggml_type_valid(type) ? k_types[type].blck : 0;
}

uint32_t mfs_ggml_type_size(uint32_t type)
{
    return mfs_ggml_type_valid(type) ? k_types[type].size : 0;
}

bool mfs_ggml_is_float(uint32_t type)
{
    return type == MFS_GGML_F32 || type == MFS_GGML_F16 || type == MFS_GGML_BF16 || type == MFS_GGML_F64;
}

int mfs_ggml_nbytes(uint32_t type, uint32_t n_dims, const int64_t *ne, uint64_t *out)
{
    if (!mfs_ggml_type_valid(type) || n_dims > MFS_GGML_MAX_DIMS)
        return -EINVAL;
    const uint64_t blck = k_types[type].blck;
    uint64_t n = 1; /* elements, then bytes; kept <= INT64_MAX like ggml's nbytes */
    for (uint32_t d = 0; d < n_dims; d++) {
        if (ne[d] < 0)
            return -EINVAL;
        if (d == 0 && (uint64_t)ne[0] % blck != 0)
            return -EINVAL;
        uint64_t v = d == 0 ? (uint64_t)ne[0] / blck : (uint64_t)ne[d];
        if (v != 0 && n > (uint64_t)INT64_MAX / v)
            return -EOVERFLOW;
        n *= v;
    }
    if (n > (uint64_t)INT64_MAX / k_types[type].size)
        return -EOVERFLOW;
    *out = n * k_types[type].size;
    return 0;
}
