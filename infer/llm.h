/* Private: the model's tensors as pointers into the mapping. */
#ifndef MFS_INFER_LLM_H
#define MFS_INFER_LLM_H

#include "mfs_infer.h"

#include "kernels.h"

/* A matrix (rows x cols, cols = ne[0] contiguous) or a vector (rows = 1) in the mapping. */
struct mfs_wt {
    const uint8_t *data;
    uint32_t type;
    int rows, cols;
    size_t row_bytes;
};

struct mfs_layer {
    struct mfs_wt attn_norm, wq, wk, wv, wo, bq, bk, bv, ffn_norm, w_gate, w_up, w_down;
};

struct mfs_llm {
    mfs_map *map;
    struct mfs_llm_info info;
    const struct mfs_kernels *kern;
    struct mfs_wt tok_embd, out_norm, output, rope_freqs;
    struct mfs_layer *layers;
};

#endif
