/* mfs_tokenizer: the tokenizers a GGUF describes in its `tokenizer.ggml.*` keys.
 *
 * Supported `tokenizer.ggml.model` values:
 *   "llama": SentencePiece-style BPE over scores (tokens, scores, token_type; byte fallback through
 *            the <0xNN> tokens; a leading space added and spaces shown as U+2581),
 *   "gpt2":  byte-level BPE over merges, with the pre-tokenizer named by `tokenizer.ggml.pre`
 *            ("default", "gpt-2", "llama-bpe"/"llama3", "qwen2", "smollm", "tekken", "falcon" and
 *            their llama.cpp aliases; docs/tokenizer.md lists them).
 * Any other model or pre type is refused with a clear message naming it. Token ids and text
 * follow llama.cpp (Feb 2025) exactly for valid UTF-8; docs/tokenizer.md lists the deliberate
 * differences (invalid UTF-8 round-trips here, stricter checks of the vocab).
 *
 * Ownership: the tokenizer copies what it needs from the mfs_gguf, which may be freed afterwards.
 * Thread safety: encode and decode may run concurrently on one tokenizer.
 */
#ifndef MFS_TOKENIZER_H
#define MFS_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mfs_gguf.h"
#include "mfs_log.h"

/* Limits: the largest text one encode call takes, and the largest vocab. */
#define MFS_TOKENIZER_MAX_TEXT ((size_t)1 << 29)
#define MFS_TOKENIZER_MAX_VOCAB (1 << 24)

typedef struct mfs_tokenizer mfs_tokenizer;

/* 0, or -EINVAL (missing, mistyped or inconsistent tokenizer keys: counts that disagree, ids out
 * of range, duplicate tokens, ...), -ENOTSUP (a model or pre-tokenizer type not implemented) or
 * -ENOMEM, with `err` naming the file (`name`) and the problem. Warnings (skipped merges, ignored
 * optional ids) go to mfs_log. */
int mfs_tokenizer_create(const mfs_gguf *g, const char *name, mfs_tokenizer **out, mfs_err *err);
void mfs_tokenizer_free(mfs_tokenizer *t);

/* Encode UTF-8 text (invalid UTF-8 is encoded byte by byte, never rejected).
 * add_special: add BOS (and EOS) as the model's add_bos/add_eos keys say.
 * parse_special: text that spells a control/unknown token becomes that token (user-defined tokens
 * are always recognized, as in llama.cpp).
 * On success *ids is malloc'ed (never NULL, caller frees) and *n_ids set; returns 0, -ENOMEM, or
 * -EOVERFLOW for a text longer than MFS_TOKENIZER_MAX_TEXT. */
int mfs_tokenizer_encode(const mfs_tokenizer *t, const char *text, size_t len, bool add_special,
                         bool parse_special, int32_t **ids, size_t *n_ids);

/* The bytes token `id` stands for when printed (control and unknown tokens: empty unless
 * `special`). Writes at most `cap` bytes to buf (NULL allowed when cap is 0) and returns the full
 * length (like snprintf, no NUL), or -EINVAL for an id out of range. Concatenating the pieces of
 * an encoding, with `special`, gives back the text (SPM: with the added leading space). */
int mfs_tokenizer_piece(const mfs_tokenizer *t, int32_t id, bool special, char *buf, size_t cap);

int32_t mfs_tokenizer_n_vocab(const mfs_tokenizer *t);
int32_t mfs_tokenizer_bos(const mfs_tokenizer *t); /* -1 if none */
int32_t mfs_tokenizer_eos(const mfs_tokenizer *t); /* -1 if none */
/* End of generation: EOS, EOT and the like. */
bool mfs_tokenizer_is_eog(const mfs_tokenizer *t, int32_t id);

#endif
