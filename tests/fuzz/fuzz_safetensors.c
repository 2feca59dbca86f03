/* libFuzzer target: the safetensors reader and the conversions behind a lone file's snapshot. Any
 * input parses or fails cleanly; what parses tiles its data buffer exactly, finds every tensor by
 * name, and every tensor reads whole (converted as presented) from a source over the input. */
#include <stdlib.h>
#include <string.h>

#include "../../loader/convert.h"
#include "mfs_ggml.h"
#include "mfs_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mfs_st *st;
    mfs_err err;
    if (mfs_st_parse_memory(data, size, "fuzz", &st, &err) != 0)
        return 0;
    mfs_source *src;
    if (mfs_source_open_memory(data, size, "fuzz", &src) != 0)
        abort();
    uint64_t at = mfs_st_data_offset(st);
    for (uint64_t i = 0; i < mfs_st_n_tensors(st); i++) {
        const struct mfs_st_tensor *t = mfs_st_tensor(st, i);
        if (t->off != at || mfs_st_find(st, t->name) != (int64_t)i)
            abort();
        at += t->size;
        int type = mfs_st_ggml_type(t->dtype);
        if (type < 0)
            continue;
        int64_t ne[4];
        uint32_t nd = mfs_st_ggml_shape(t, ne);
        uint64_t nbytes;
        if (mfs_ggml_nbytes((uint32_t)type, nd, ne, &nbytes) != 0)
            abort();
        struct mfs_conv c = {.src = src, .off = t->off, .dtype = t->dtype, .type = (uint32_t)type,
                             .rows = t->n_dims ? t->shape[0] : 1, .row_elems = 1};
        for (uint32_t d = 1; d < t->n_dims; d++)
            c.row_elems *= t->shape[d];
        /* as a lone file, and permuted as if it were a q_proj with 1 or 2 heads */
        for (uint64_t heads = 0; heads <= 2; heads++) {
            c.n_head = heads;
            uint64_t out;
            if (mfs_conv_check(&c, &out, NULL) != 0)
                continue;
            if (out != nbytes && heads == 0)
                abort();
            const struct mfs_transform_ops *ops;
            void *ctx;
            if (out > (1u << 20) || mfs_conv_transform(&c, &ops, &ctx) != 0)
                continue;
            uint8_t *buf = malloc(out ? out : 1);
            if (ops->read(ctx, buf, out, 0) != (ssize_t)out)
                abort();
            if (out > 3 && ops->read(ctx, buf, out / 2, out / 3) != (ssize_t)(out / 2))
                abort();
            free(buf);
            ops->free(ctx);
        }
    }
    if (at != size)
        abort();
    mfs_source_unref(src);
    mfs_st_free(st);
    return 0;
}
