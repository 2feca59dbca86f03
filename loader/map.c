#include "mfs_map.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct mfs_map {
    char *path;
    int fd;
    void *base;
    uint64_t size;
    mfs_gguf *gguf;
};

int mfs_map_open(const char *path, unsigned flags, mfs_map **out, mfs_err *err)
{
    int rc;
    mfs_map *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        mfs_err_set(err, "%s: out of memory", path);
        rc = -ENOMEM;
        goto fail;
    }
    m->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (m->fd < 0) {
        rc = -errno;
        mfs_err_set(err, "%s: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(m->fd, &st) != 0) {
        rc = -errno;
        mfs_err_set(err, "%s: %s", path, strerror(errno));
        goto fail_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EINVAL;
        mfs_err_set(err, "%s: not a regular file", path);
        goto fail_fd;
    }
    if (st.st_size <= 0 || (uint64_t)st.st_size > SIZE_MAX) {
        rc = -EINVAL;
        mfs_err_set(err, "%s: %s", path, st.st_size <= 0 ? "empty file" : "too large to map");
        goto fail_fd;
    }
    m->size = (uint64_t)st.st_size;
    m->base = mmap(NULL, (size_t)m->size, PROT_READ, MAP_SHARED | (flags & MFS_MAP_POPULATE ? MAP_POPULATE : 0),
                   m->fd, 0);
    if (m->base == MAP_FAILED) {
        rc = -errno;
        mfs_err_set(err, "%s: mmap of %llu bytes failed: %s", path, (unsigned long long)m->size, strerror(errno));
        m->base = NULL;
        goto fail_fd;
    }
    if (flags & MFS_MAP_WILLNEED)
        (void)madvise(m->base, (size_t)m->size, MADV_WILLNEED); /* advice only: failure changes nothing */
    rc = mfs_gguf_parse_memory(m->base, (size_t)m->size, path, &m->gguf, err);
    if (rc)
        goto fail_map;
    *out = m;
    return 0;

fail_map:
    munmap(m->base, (size_t)m->size);
fail_fd:
    close(m->fd);
fail:
    if (m)
        free(m->path);
    free(m);
    return rc;
}

void mfs_map_close(mfs_map *m)
{
    if (!m)
        return;
    mfs_gguf_free(m->gguf);
    munmap(m->base, (size_t)m->size);
    close(m->fd);
    free(m->path);
    free(m);
}

const char *mfs_map_path(const mfs_map *m) { return m->path; }
const mfs_gguf *mfs_map_gguf(const mfs_map *m) { return m->gguf; }
const void *mfs_map_base(const mfs_map *m) { return m->base; }
uint64_t mfs_map_size(const mfs_map *m) { return m->size; }
uint64_t mfs_map_n_tensors(const mfs_map *m) { return mfs_gguf_n_tensors(m->gguf); }

struct mfs_map_tensor mfs_map_tensor(const mfs_map *m, uint64_t i)
{
    const struct mfs_gguf_tensor *t = mfs_gguf_tensor(m->gguf, i);
    /* the parser checked data_offset + offset + size <= file size */
    struct mfs_map_tensor r = {t, (const uint8_t *)m->base + mfs_gguf_data_offset(m->gguf) + t->offset};
    return r;
}

int mfs_map_find(const mfs_map *m, const char *name, struct mfs_map_tensor *out)
{
    int64_t i = mfs_gguf_find_tensor(m->gguf, name);
    if (i < 0)
        return -ENOENT;
    *out = mfs_map_tensor(m, (uint64_t)i);
    return 0;
}
