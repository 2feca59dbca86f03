/* libFuzzer target: the Hugging Face mapping (config.json, tokenizer_config.json, tokenizer.json,
 * generation_config.json, added_tokens.json, tokenizer.model). The input is those files in that
 * order separated by NUL bytes (JSON holds none); what follows the fifth NUL is tokenizer.model.
 * The stored tensors are a fixed small llama checkpoint. Any input maps or fails cleanly with a
 * message; what maps has one presented tensor per header tensor, each with a valid type. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../loader/hf_internal.h"
#include "mfs_ggml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct mfs_hf_tensor k_tensors[] = {
    {.name = "lm_head.weight", .dtype = MFS_ST_F16, .n_dims = 2, .shape = {8, 16}},
    {.name = "model.embed_tokens.weight", .dtype = MFS_ST_BF16, .n_dims = 2, .shape = {8, 16}},
    {.name = "model.layers.0.input_layernorm.weight", .dtype = MFS_ST_F16, .n_dims = 1, .shape = {16}},
    {.name = "model.layers.0.self_attn.k_proj.bias", .dtype = MFS_ST_F32, .n_dims = 1, .shape = {8}},
    {.name = "model.layers.0.self_attn.k_proj.weight", .dtype = MFS_ST_F16, .n_dims = 2, .shape = {8, 16}},
    {.name = "model.layers.0.self_attn.q_proj.weight", .dtype = MFS_ST_F8_E4M3, .n_dims = 2, .shape = {16, 16}},
    {.name = "model.layers.1.mlp.gate_proj.weight", .dtype = MFS_ST_U8, .n_dims = 3, .shape = {2, 4, 4}},
    {.name = "model.norm.weight", .dtype = MFS_ST_F64, .n_dims = 0},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mfs_hf_blob *slots[5];
    struct mfs_hf_input in = {.dir = "fuzz", .base = "fuzz-model-7B"};
    slots[0] = &in.config, slots[1] = &in.tokenizer_config, slots[2] = &in.tokenizer_json;
    slots[3] = &in.generation_config, slots[4] = &in.added_tokens;
    static const char *const names[5] = {"config.json", "tokenizer_config.json", "tokenizer.json",
                                         "generation_config.json", "added_tokens.json"};
    const char *p = (const char *)data, *end = p + size;
    for (int i = 0; i < 5 && p <= end; i++) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        size_t n = nul ? (size_t)(nul - p) : (size_t)(end - p);
        *slots[i] = (struct mfs_hf_blob){names[i], n || i == 0 ? p : NULL, n};
        p += n + 1;
    }
    if (p < end)
        in.tokenizer_model = (struct mfs_hf_blob){"tokenizer.model", p, (size_t)(end - p)};
    in.tensors = k_tensors;
    in.n_tensors = sizeof k_tensors / sizeof k_tensors[0];
    struct mfs_hf_map map;
    mfs_err err = {{0}};
    int rc = mfs_hf_map(&in, &map, &err);
    if (rc != 0 && (rc != -EINVAL || !err.msg[0]))
        abort();
    if (rc == 0) {
        for (uint64_t i = 0; i < mfs_gguf_n_tensors(map.g); i++) {
            const struct mfs_gguf_tensor *t = mfs_gguf_tensor(map.g, i);
            const struct mfs_hf_out *o = &map.out[i];
            if (!mfs_ggml_type_valid(t->type) || (!o->bytes && (o->n_in != 1 || o->in[0] >= in.n_tensors)))
                abort();
        }
        uint8_t *hdr;
        size_t len;
        if (mfs_gguf_layout(map.g, 4096) != 0 || mfs_gguf_write_header(map.g, &hdr, &len, &err) != 0)
            abort();
        free(hdr);
    }
    mfs_hf_map_free(&map);
    return 0;
}
