/* libFuzzer target: the GGUF reader. Any input parses or fails cleanly; whatever parses can be
 * copied and written back, and the written header parses again to the same tensors. */
#include <stdlib.h>
#include <string.h>

#include "mfs_gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mfs_gguf *g;
    mfs_err err;
    if (mfs_gguf_parse_memory(data, size, "fuzz", &g, &err) != 0)
        return 0;
    for (uint64_t i = 0; i < mfs_gguf_n_kv(g); i++)
        if (mfs_gguf_find_key(g, mfs_gguf_kv(g, i)->key.p) != (int64_t)i)
            abort();
    for (uint64_t i = 0; i < mfs_gguf_n_tensors(g); i++)
        if (mfs_gguf_find_tensor(g, mfs_gguf_tensor(g, i)->name.p) != (int64_t)i)
            abort();
    mfs_gguf *d = mfs_gguf_dup(g);
    uint8_t *hdr;
    size_t len;
    if (d && mfs_gguf_write_header(d, &hdr, &len, &err) == 0) {
        /* the same header bytes, up to the padding */
        if (len < mfs_gguf_header_size(g) || memcmp(hdr, data, mfs_gguf_header_size(g)) != 0)
            abort();
        free(hdr);
    }
    if (d && mfs_gguf_layout(d, 64) == 0 && mfs_gguf_write_header(d, &hdr, &len, &err) == 0) {
        /* a re-laid-out header parses back, given room for its tensors */
        uint64_t total = len + mfs_gguf_data_end(d);
        if (total < (64u << 20)) {
            uint8_t *file = calloc(1, total ? total : 1);
            memcpy(file, hdr, len);
            mfs_gguf *p;
            if (mfs_gguf_parse_memory(file, total, "relaid", &p, &err) != 0 ||
                mfs_gguf_n_tensors(p) != mfs_gguf_n_tensors(g))
                abort();
            mfs_gguf_free(p);
            free(file);
        }
        free(hdr);
    }
    mfs_gguf_free(d);
    mfs_gguf_free(g);
    return 0;
}
