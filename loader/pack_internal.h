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

/* What an input file is, from its first bytes (at least 9 for safetensors): MFZ_INPUT_GGUF,
 * MFZ_INPUT_SAFETENSORS, or 0 (MFZ_INPUT_OTHER) for anything else (loader/container.h). */
int mfs_pack_input_kind(const uint8_t *head, size_t len, uint64_t file_size);

/* The tensor-aware container (loader/container_pack.c). */
int mfs_pack_container(int in_fd, const char *in_path, uint64_t in_size, struct mfs_out *out,
                       const struct mfs_pack_opts *opts, struct mfs_pack_result *res, mfs_err *err);

#endif
