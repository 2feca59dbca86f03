/* libFuzzer target: the zstd seek-table parser and frame walker, then reads through the engine.
 * Any input opens or fails cleanly; reads of what opens return data or an error, never crash. */
#include <stdlib.h>
#include <string.h>

#include "mfs_engine.h"
#include "zstd_src.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mfs_engine *e;
    if (!e && mfs_engine_create(&(struct mfs_engine_config){.cache_bytes = 4u << 20, .threads = 1}, &e))
        abort();
    mfs_source *mem, *src;
    mfs_err err;
    if (mfs_source_open_memory(data, size, "fuzz", &mem))
        return 0;
    if (mfs_zstd_open(mem, e, &src, &err) != 0)
        return 0;
    uint64_t total = mfs_source_size(src);
    static uint8_t buf[1 << 16];
    /* the start, the end and the middle: enough to touch every frame of a small input */
    uint64_t offs[3] = {0, total / 2, total > sizeof buf ? total - sizeof buf : 0};
    for (int i = 0; i < 3; i++)
        if (mfs_source_read(src, buf, sizeof buf, offs[i]) > (ssize_t)sizeof buf)
            abort();
    mfs_source_unref(src);
    return 0;
}
