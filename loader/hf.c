/* Hugging Face checkpoint directories: not written yet (issue 4). */
#include <errno.h>

#include "model_internal.h"

int mfs_plan_hf_dir(mfs_model *m, const char *dir, const struct mfs_model_opts *opts, mfs_err *err)
{
    (void)opts;
    mfs_err_set(err, "%s: Hugging Face checkpoint conversion is not supported yet", dir);
    (void)m;
    return -ENOTSUP;
}
