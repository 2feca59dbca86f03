/* mfs_infer: a Llama-family forward pass over a mapped GGUF, and a sampler.
 *
 * Architectures: `llama` (Llama 1-3, Mistral, TinyLlama, SmolLM: grouped-query attention, rope
 * theta, Llama 3 frequency factors from `rope_freqs.weight`, linear rope scaling, tied or untied
 * output) and `qwen2` (q/k/v biases, NEOX-style rotary). Any other `general.architecture` is
 * refused naming it. Matrix types F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K; 1-D tensors (norms, biases,
 * rope factors) must be F32, as llama.cpp writes them.
 *
 * The model points into the mapping (mfs_map): no weight is copied. A context holds the KV cache
 * (F32), the scratch buffers and the thread pool; the kernels are chosen once for the CPU
 * (AVX-512, AVX2 or portable; $MFS_KERNELS=scalar|avx2|avx512 lowers the choice).
 *
 * Ownership: mfs_llm owns its mfs_map; a context borrows its model, which must outlive it.
 * Thread safety: a model may be shared by contexts; a context is used by one thread at a time.
 */
#ifndef MFS_INFER_H
#define MFS_INFER_H

#include <stdbool.h>
#include <stdint.h>

#include "mfs_gguf.h"
#include "mfs_log.h"
#include "mfs_map.h"

typedef struct mfs_llm mfs_llm;
typedef struct mfs_llm_ctx mfs_llm_ctx;

struct mfs_llm_info {
    const char *arch;     /* "llama" or "qwen2" */
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_rot, n_ff, n_ctx_train;
    float rope_theta, rope_freq_scale, norm_eps;
    bool rope_neox, tied_output, has_rope_freqs, has_qkv_bias;
    uint64_t weight_bytes; /* bytes of every matrix read per token (the streaming bound) */
    uint32_t main_type;    /* type of most matrix bytes, for printing */
};

/* Map and validate: 0, or a negative errno and one line in `err` naming the file and the reason
 * (unknown architecture, missing tensor, wrong shape, unsupported type, missing key). */
int mfs_llm_load(const char *path, unsigned map_flags, mfs_llm **out, mfs_err *err);
void mfs_llm_free(mfs_llm *m);
const struct mfs_llm_info *mfs_llm_info(const mfs_llm *m);
const mfs_map *mfs_llm_map(const mfs_llm *m);
/* Name of the kernel level in use ("avx512", "avx2", "scalar"). */
const char *mfs_llm_kernels(const mfs_llm *m);

/* A context for n_ctx positions (0: the model's context length, at most 4096) on n_threads
 * threads (the caller's included). 0, -ENOMEM or -EINVAL (with `err`). */
int mfs_llm_ctx_create(const mfs_llm *m, int n_ctx, int n_threads, mfs_llm_ctx **out, mfs_err *err);
void mfs_llm_ctx_free(mfs_llm_ctx *c);
int mfs_llm_ctx_n_ctx(const mfs_llm_ctx *c);
/* Positions already in the KV cache. */
int mfs_llm_ctx_pos(const mfs_llm_ctx *c);
/* Forget the cache: the next eval starts at position 0. */
void mfs_llm_ctx_reset(mfs_llm_ctx *c);

/* Run n tokens at the next positions. all_logits: keep the logits of every token (else only the
 * last). 0, or -EINVAL for a token id out of range or a context overflow (with `err`). */
int mfs_llm_ctx_eval(mfs_llm_ctx *c, const int32_t *tokens, int n, bool all_logits, mfs_err *err);
/* Logits (n_vocab floats) of token i of the last eval; i = -1 is the last token. Valid until the
 * next eval. NULL if i was not kept. */
const float *mfs_llm_ctx_logits(const mfs_llm_ctx *c, int i);

/* ---- sampling */

struct mfs_sampler_params {
    float temp;    /* <= 0: greedy (argmax, lowest id on ties) */
    int top_k;     /* <= 0: off */
    float top_p;   /* >= 1: off */
    float min_p;   /* <= 0: off */
    uint64_t seed;
};

typedef struct mfs_sampler mfs_sampler;

/* Filters apply in llama.cpp's default order: top-k, top-p, min-p, then temperature. */
mfs_sampler *mfs_sampler_create(const struct mfs_sampler_params *p, int n_vocab);
void mfs_sampler_free(mfs_sampler *s);
int32_t mfs_sampler_sample(mfs_sampler *s, const float *logits);

#endif
