/* The tensor-aware container: not written yet (issue 6). */
#include "container.h"

#include <errno.h>

#include "pack_internal.h"

bool mfs_container_is(const uint8_t *head, size_t len)
{
    (void)head, (void)len;
    return false;
}

int mfs_container_open(mfs_source *file, mfs_engine *engine, mfs_source **out, mfs_err *err)
{
    (void)engine, (void)out;
    mfs_err_set(err, "%s: the tensor-aware container is not supported yet", mfs_source_name(file));
    mfs_source_unref(file);
    return -ENOTSUP;
}

int mfs_pack_container(int in_fd, const char *in_path, uint64_t in_size, struct mfs_out *out,
                       const struct mfs_pack_opts *opts, struct mfs_pack_result *res, mfs_err *err)
{
    (void)in_fd, (void)in_size, (void)out, (void)opts, (void)res;
    mfs_err_set(err, "%s: the tensor-aware container is not implemented yet; use --format zst", in_path);
    return -ENOTSUP;
}
