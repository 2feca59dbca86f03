/* libFuzzer target: the container's header and index checks, then reads through the engine, which
 * run every codec's decoder on whatever the payloads hold. Any input opens or fails cleanly;
 * reads of what opens return data or an error, never crash, and the index describes a
 * contiguous decoded stream. */
#include <stdlib.h>
#include <string.h>

#include "container.h"
#include "mfs_engine.h"

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
    if (mfs_container_open(mem, e, &src, &err) != 0)
        return 0;
    const struct mfs_source_info *info = mfs_source_info(src);
    uint64_t at = 0;
    for (uint64_t i = 0; i < info->n_frames; i++) {
        struct mfs_frame_info fi;
        if (mfs_source_frame(src, i, &fi) != 0 || fi.off != at || fi.size == 0 || !fi.codec ||
            (fi.stored_size && fi.stored_off + fi.stored_size > size))
            abort();
        at += fi.size;
    }
    if (at != info->size)
        abort();
    static uint8_t buf[1 << 16];
    /* the start, the end and the middle: enough to touch every chunk of a small input */
    uint64_t offs[3] = {0, at / 2, at > sizeof buf ? at - sizeof buf : 0};
    for (int i = 0; i < 3; i++)
        if (mfs_source_read(src, buf, sizeof buf, offs[i]) > (ssize_t)sizeof buf)
            abort();
    mfs_source_unref(src);
    return 0;
}
