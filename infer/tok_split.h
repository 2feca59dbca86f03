/* tok_split: the pre-tokenizer of a BPE tokenizer on its own, for tests (private to infer/).
 * The encoder runs the same code; this shows the words it then merges. */
#ifndef MFS_TOK_SPLIT_H
#define MFS_TOK_SPLIT_H

#include <stddef.h>

#include "mfs_tokenizer.h"

/* The words text[0..len) splits into, as their end offsets in bytes (the last is len); *ends is
 * malloc'ed (caller frees). 0, -EINVAL for an SPM tokenizer (it has no pre-tokenizer), -ENOMEM or
 * -EOVERFLOW. */
int mfs_tok_split(const mfs_tokenizer *t, const char *text, size_t len, size_t **ends, size_t *n_ends);

#endif
