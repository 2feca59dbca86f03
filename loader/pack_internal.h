/* Private to loader/: the pieces modelfs-pack's formats share. */
#ifndef MFS_PACK_INTERNAL_H
#define MFS_PACK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mfs_log.h"
#include "mfs_pack.h"

/* An output file written under a temporary name and renamed into place by commit. */
struct mfs_out {
    int fd;
    char *path, *tmp;
    uint64_t written;
};

int mfs_out_open(struct mfs_out *o, const char *path, bool force, mfs_err *err);
int mfs_out_write(struct mfs_out *o, const void *buf, size_t len, mfs_err *err);
int mfs_out_commit(struct mfs_out *o, mfs_err *err);
/* Close and delete the temporary file. */
void mfs_out_abort(struct mfs_out *o);

/* Read exactly len bytes at off: 0, -errno, or -EIO if the input ends first (it shrank). */
int mfs_pack_read_full(int fd, void *buf, size_t len, uint64_t off);

/* Items 0..n-1 worked on by `threads` threads (0: online CPUs; never more than n) and committed
 * in item order: each worker takes the next item, runs `encode` on it without the lock, waits for
 * its turn and runs `commit` under the lock (writes go out in order while the others encode).
 * The first error stops every worker; its message goes to `err`. `state` is per thread, made by
 * `init` (NULL: out of memory) and given back to `fini`. Returns 0 or the first error. */
struct mfs_pack_ordered {
    uint64_t n;
    unsigned threads;
    const char *in_path; /* for the out-of-memory message */
    void *ctx;
    void *(*init)(void *ctx);
    void (*fini)(void *state);
    int (*encode)(void *ctx, void *state, uint64_t i, mfs_err *e);
    int (*commit)(void *ctx, void *state, uint64_t i, mfs_err *e);
};
int mfs_pack_run_ordered(const struct mfs_pack_ordered *w, mfs_err *err);

/* What an input file is, from its first bytes (at least 9 for safetensors): MFZ_INPUT_GGUF,
 * MFZ_INPUT_SAFETENSORS, or 0 (MFZ_INPUT_OTHER) for anything else (loader/container.h). */
int mfs_pack_input_kind(const uint8_t *head, size_t len, uint64_t file_size);

/* The tensor-aware container (loader/container_pack.c). */
int mfs_pack_container(int in_fd, const char *in_path, uint64_t in_size, struct mfs_out *out,
                       const struct mfs_pack_opts *opts, struct mfs_pack_result *res, mfs_err *err);

#endif
