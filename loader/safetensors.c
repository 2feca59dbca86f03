/* safetensors sources: not written yet (issue 4). */
#include <errno.h>

#include "model_internal.h"

bool mfs_safetensors_is(mfs_source *src)
{
    (void)src;
    return false;
}

int mfs_plan_safetensors(mfs_model *m, mfs_source *src, const struct mfs_model_opts *opts, mfs_err *err)
{
    (void)src, (void)opts;
    mfs_err_set(err, "%s: safetensors conversion is not supported yet", mfs_model_path(m));
    return -ENOTSUP;
}
