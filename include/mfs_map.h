/* mfs_map: a GGUF file mapped read-only, for programs that compute on the weights in place.
 *
 * mfs_map_open mmaps the whole file (PROT_READ, MAP_SHARED), parses the header from the mapping
 * (mfs_gguf_parse_memory: every tensor is checked to lie inside the file, aligned, not overlapping)
 * and hands out pointers into the mapping. No weight is copied and nothing is done per tensor
 * beyond that validation, so opening a file already in the page cache costs the header parse plus
 * the page faults of whatever is touched later. Processes that map the same file share its pages.
 *
 * Tensor data pointers are aligned as the file's `general.alignment` says relative to the start of
 * the file, which the mapping puts on a page boundary.
 *
 * Ownership: the mfs_map owns the mapping, the file descriptor and the parsed header; every
 * pointer it returns lives until mfs_map_close. mfs_map_close(NULL) is a no-op.
 * Thread safety: after open, every accessor may be called from any thread.
 */
#ifndef MFS_MAP_H
#define MFS_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "mfs_gguf.h"
#include "mfs_log.h"

typedef struct mfs_map mfs_map;

enum mfs_map_flags {
    /* Ask the kernel to map every page at open (MAP_POPULATE): open takes longer, the first
     * pass over the weights takes no page faults. */
    MFS_MAP_POPULATE = 1u << 0,
    /* madvise(MADV_WILLNEED): start reading the file in the background. */
    MFS_MAP_WILLNEED = 1u << 1,
};

/* One tensor: its header entry and its bytes (info->size of them) inside the mapping. */
struct mfs_map_tensor {
    const struct mfs_gguf_tensor *info;
    const void *data;
};

/* Open and map `path`. 0, or a negative errno with one line in `err` naming the file:
 * -ENOENT/-EACCES/... from open, -EINVAL for a file that is not a valid GGUF or is empty,
 * -ENOMEM if mmap fails. */
int mfs_map_open(const char *path, unsigned flags, mfs_map **out, mfs_err *err);
void mfs_map_close(mfs_map *m);

const char *mfs_map_path(const mfs_map *m);
const mfs_gguf *mfs_map_gguf(const mfs_map *m);
/* The whole file. */
const void *mfs_map_base(const mfs_map *m);
uint64_t mfs_map_size(const mfs_map *m);

uint64_t mfs_map_n_tensors(const mfs_map *m);
/* Tensor i (i < mfs_map_n_tensors). */
struct mfs_map_tensor mfs_map_tensor(const mfs_map *m, uint64_t i);
/* By name: 0, or -ENOENT (out untouched). */
int mfs_map_find(const mfs_map *m, const char *name, struct mfs_map_tensor *out);

#endif
