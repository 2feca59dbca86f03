#include <errno.h>

#include "pack_internal.h"

int mfs_pack_container(int in_fd, const char *in_path, uint64_t in_size, struct mfs_out *out,
                       const struct mfs_pack_opts *opts, struct mfs_pack_result *res, mfs_err *err)
{
    (void)in_fd, (void)in_size, (void)out, (void)opts, (void)res;
    mfs_err_set(err, "%s: the tensor-aware container is not implemented yet; use --format zst", in_path);
    return -ENOTSUP;
}
