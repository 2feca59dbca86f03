/* Private to loader/: Hugging Face checkpoints to GGUF, following llama.cpp's
 * convert_hf_to_gguf.py (Feb 2025). docs/conversion.md states every rule.
 *
 * Split in three so the mapping runs on memory (unit tests, fuzzing):
 *   hf.c            the directory: which files, shards and the index, opening sources, planning
 *   hf_map.c        config.json and the tensor list -> GGUF keys and presented tensors
 *   hf_tokenizer.c  tokenizer.model / tokenizer.json / tokenizer_config.json -> tokenizer.* keys
 */
#ifndef MFS_HF_INTERNAL_H
#define MFS_HF_INTERNAL_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mfs_gguf.h"
#include "mfs_safetensors.h"

/* Caps on the JSON and tokenizer files we read whole (the largest published tokenizer.json files
 * are ~20 MB; config files are a few KB). */
#define MFS_HF_MAX_JSON (64u << 20)
#define MFS_HF_MAX_SMALL_JSON (16u << 20)
/* The largest vocabulary (config.json vocab_size) we build: published ones reach 262144. */
#define MFS_HF_MAX_VOCAB (1 << 21)

/* One input file: its bytes (NULL: the file is absent). `name` is its file name ("config.json"). */
struct mfs_hf_blob {
    const char *name;
    const char *data;
    size_t len;
};

/* A stored tensor, in convert_hf_to_gguf.py's order (shard files sorted by name, each file's
 * tensors sorted by name). */
struct mfs_hf_tensor {
    const char *name;
    uint32_t dtype;  /* enum mfs_st_dtype */
    uint32_t n_dims; /* 0..MFS_ST_MAX_DIMS */
    uint64_t shape[MFS_ST_MAX_DIMS];
    size_t shard;    /* which source (for the planner; unused by the mapping) */
    uint64_t off;    /* where its bytes start in that source */
};

struct mfs_hf_input {
    const char *dir;  /* the directory as given: prefixes messages */
    const char *base; /* its last component: general.name when config.json does not name the model */
    struct mfs_hf_blob config, tokenizer_config, tokenizer_json, tokenizer_model, added_tokens, generation_config;
    const struct mfs_hf_tensor *tensors;
    size_t n_tensors;
};

/* A presented tensor: either stored tensors `in[0..n_in)` concatenated (experts stacked), each
 * converted to `type` and permuted when n_head != 0, or `bytes` computed at mount (rope_freqs). */
struct mfs_hf_out {
    size_t *in;
    size_t n_in;
    uint32_t type;
    uint64_t n_head;
    uint8_t *bytes;
};

enum mfs_hf_arch { MFS_HF_UNKNOWN, MFS_HF_LLAMA, MFS_HF_QWEN2 };

struct mfs_hf_map {
    mfs_gguf *g;              /* keys and tensor infos, not laid out */
    struct mfs_hf_out *out;   /* one per tensor of g */
    char *arch_class;         /* config.json architectures[0], or NULL */
    enum mfs_hf_arch arch;
    char **notes;             /* for NAME.meta and the log */
    size_t n_notes;
};

/* Map a checkpoint: 0, or -EINVAL/-ENOMEM with `err` = "DIR: FILE: reason". An unknown
 * architecture is not an error: its tensors keep their names (a note says llama.cpp will not run
 * it). `map` is filled on success and must be freed with mfs_hf_map_free (also after failure). */
int mfs_hf_map(const struct mfs_hf_input *in, struct mfs_hf_map *map, mfs_err *err);
void mfs_hf_map_free(struct mfs_hf_map *map);

/* ---- shared between hf_map.c and hf_tokenizer.c */

struct mfs_hf_ctx {
    const struct mfs_hf_input *in;
    struct mfs_hf_map *map;
    json_object *config; /* the parsed config.json (an object) */
    mfs_err *err;
};

/* Parse a blob as JSON: 0 with *out = NULL if the file is absent; -EINVAL with `err` naming the
 * file, the line and the column of a syntax error. Lenient like Python's json module (NaN,
 * Infinity); at most MFS_HF_MAX_JSON bytes and JSON_TOKENER_DEFAULT_DEPTH levels. */
int mfs_hf_json(const struct mfs_hf_input *in, const struct mfs_hf_blob *b, json_object **out, mfs_err *err);

/* Append a note (printf format); -ENOMEM. */
int mfs_hf_note(struct mfs_hf_map *map, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Write the tokenizer.* keys (convert's set_vocab for the architecture). 0, -EINVAL, -ENOMEM. */
int mfs_hf_vocab(struct mfs_hf_ctx *x);

/* One SentencePiece piece from tokenizer.model (ModelProto.pieces). */
struct mfs_spm_piece {
    const char *piece; /* into the input, not NUL-terminated */
    size_t len;
    float score;
    uint32_t type; /* 1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE */
};

/* Bounds-checked protobuf reader for a ModelProto: its pieces (field 1), everything else skipped.
 * *pieces is malloc'ed (free it). -EINVAL with `err` = "FILE: reason" for a malformed file. */
int mfs_spm_parse(const uint8_t *data, size_t len, const char *name, struct mfs_spm_piece **pieces, size_t *n,
                  mfs_err *err);

#endif
