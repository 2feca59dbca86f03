/* fs/names: which name each entry of one source directory gets in the mount.
 *
 * Rules (DESIGN.md "What the mount shows"):
 * - Entries shown under their own name (directories, symlinks, plain files, model candidates that
 *   failed to open) keep it; reserved names (".modelfs" at the root) are never given out.
 * - A model whose presented name is its own name (a plain NAME.gguf) keeps it.
 * - Any other model gets its presented name if no shown entry has it and no other model wants it;
 *   otherwise it gets its full source name plus ".gguf" ("m.gguf.zst" -> "m.gguf.zst.gguf"), and is
 *   not shown at all if that is taken too.
 * - Each model named BASE.gguf also gets BASE.tensors and BASE.meta, unless a name above has them.
 * The result does not depend on the order of the entries. No FUSE types: unit-tested on its own.
 */
#ifndef MFS_FS_NAMES_H
#define MFS_FS_NAMES_H

#include <stdbool.h>
#include <stddef.h>

struct fs_name_req {
    const char *own;   /* the source entry's name */
    const char *model; /* the name the loader presents it under, or NULL if it is not a model */
    bool shown;        /* also shown under its own name */
};

struct fs_name_res {
    char *gguf;    /* granted model name, or NULL */
    char *tensors; /* BASE.tensors, or NULL */
    char *meta;    /* BASE.meta, or NULL */
};

/* Fill res[0..n). Own names must be distinct. 0 or -ENOMEM (then res is all NULL). */
int fs_names_resolve(const struct fs_name_req *req, size_t n, const char *const *reserved, size_t n_reserved,
                     struct fs_name_res *res);
/* Free the strings of res[0..n). */
void fs_names_free(struct fs_name_res *res, size_t n);

#endif
