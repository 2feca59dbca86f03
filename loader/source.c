#include "mfs_source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container.h"
#include "zstd_src.h"

struct mfs_source {
    atomic_uint refs;
    const struct mfs_source_ops *ops;
    void *impl;
    struct mfs_source_info info;
    char *name;
};

int mfs_source_create(const struct mfs_source_ops *ops, void *impl, const struct mfs_source_info *info,
                      const char *name, mfs_source **out)
{
    mfs_source *s = calloc(1, sizeof *s);
    char *n = strdup(name ? name : "(unnamed)");
    if (!s || !n) {
        free(s);
        free(n);
        ops->destroy(impl);
        return -ENOMEM;
    }
    atomic_init(&s->refs, 1);
    s->ops = ops;
    s->impl = impl;
    s->info = *info;
    s->name = n;
    *out = s;
    return 0;
}

mfs_source *mfs_source_ref(mfs_source *src)
{
    if (src)
        atomic_fetch_add(&src->refs, 1);
    return src;
}

void mfs_source_unref(mfs_source *src)
{
    if (!src || atomic_fetch_sub(&src->refs, 1) != 1)
        return;
    src->ops->destroy(src->impl);
    free(src->name);
    free(src);
}

ssize_t mfs_source_read(mfs_source *src, void *buf, size_t len, uint64_t off)
{
    if (off >= src->info.size || len == 0)
        return 0;
    if (len > src->info.size - off)
        len = src->info.size - off;
    return src->ops->read(src->impl, buf, len, off);
}

int mfs_source_read_exact(mfs_source *src, void *buf, size_t len, uint64_t off, mfs_err *err)
{
    ssize_t n = mfs_source_read(src, buf, len, off);
    if (n < 0) {
        mfs_err_set(err, "%s: read of %zu bytes at offset %llu failed: %s", src->name, len,
                    (unsigned long long)off, strerror((int)-n));
        return (int)n;
    }
    if ((size_t)n != len) {
        mfs_err_set(err, "%s: unexpected end of data at offset %llu (wanted %zu bytes, size %llu)", src->name,
                    (unsigned long long)off, len, (unsigned long long)src->info.size);
        return -EIO;
    }
    return 0;
}

uint64_t mfs_source_size(const mfs_source *src)
{
    return src->info.size;
}

const struct mfs_source_info *mfs_source_info(const mfs_source *src)
{
    return &src->info;
}

const char *mfs_source_name(const mfs_source *src)
{
    return src->name;
}

const char *mfs_source_kind_name(enum mfs_source_kind kind)
{
    switch (kind) {
    case MFS_SRC_FILE: return "file";
    case MFS_SRC_MEMORY: return "memory";
    case MFS_SRC_ZSTD_SEEKABLE: return "zstd seekable";
    case MFS_SRC_ZSTD_FRAMES: return "zstd multi-frame";
    case MFS_SRC_ZSTD_STREAM: return "zstd single-frame";
    case MFS_SRC_CONTAINER: return "modelfs container";
    }
    return "unknown";
}

int mfs_source_frame(mfs_source *src, uint64_t i, struct mfs_frame_info *out)
{
    if (!src->ops->frame || i >= src->info.n_frames)
        return -EINVAL;
    return src->ops->frame(src->impl, i, out);
}

/* ---- memory ---- */

struct mem_impl {
    const uint8_t *data;
};

static ssize_t mem_read(void *impl, void *buf, size_t len, uint64_t off)
{
    const struct mem_impl *m = impl;
    memcpy(buf, m->data + off, len); /* mfs_source_read clamped the range */
    return (ssize_t)len;
}

static void mem_destroy(void *impl)
{
    free(impl);
}

static const struct mfs_source_ops k_mem_ops = {.read = mem_read, .destroy = mem_destroy};

int mfs_source_open_memory(const void *data, size_t size, const char *name, mfs_source **out)
{
    struct mem_impl *m = malloc(sizeof *m);
    if (!m)
        return -ENOMEM;
    m->data = data;
    struct mfs_source_info info = {.kind = MFS_SRC_MEMORY, .size = size, .stored_size = size};
    return mfs_source_create(&k_mem_ops, m, &info, name, out);
}

/* ---- plain file ---- */

struct file_impl {
    int fd;
    char *name;
    struct stat st; /* at open: a change of size or mtime means the file changed under us */
    atomic_bool change_logged;
};

static bool same_version(const struct stat *a, const struct stat *b)
{
    return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec && a->st_ino == b->st_ino;
}

static ssize_t file_read(void *impl, void *buf, size_t len, uint64_t off)
{
    struct file_impl *f = impl;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(f->fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        done += (size_t)n;
    }
    /* The bytes just read belong to the version we opened only if the file did not change: a
     * writer updates mtime before its bytes become visible. */
    struct stat now;
    if (fstat(f->fd, &now) != 0)
        return -errno;
    if (done != len || !same_version(&f->st, &now)) {
        if (!atomic_exchange(&f->change_logged, true))
            mfs_log(MFS_LOG_ERROR, "%s: file changed while in use (size %lld -> %lld); reads of it fail until it is reopened",
                    f->name, (long long)f->st.st_size, (long long)now.st_size);
        return -ESTALE;
    }
    return (ssize_t)done;
}

static void file_destroy(void *impl)
{
    struct file_impl *f = impl;
    close(f->fd);
    free(f->name);
    free(f);
}

static const struct mfs_source_ops k_file_ops = {.read = file_read, .destroy = file_destroy};

int mfs_source_open_file(const char *path, mfs_source **out, mfs_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        mfs_err_set(err, "%s: cannot open: %s", path, strerror(e));
        return -e;
    }
    struct file_impl *f = calloc(1, sizeof *f);
    if (!f || !(f->name = strdup(path))) {
        free(f);
        close(fd);
        return -ENOMEM;
    }
    f->fd = fd;
    if (fstat(fd, &f->st) != 0) {
        int e = errno;
        mfs_err_set(err, "%s: cannot stat: %s", path, strerror(e));
        file_destroy(f);
        return -e;
    }
    if (!S_ISREG(f->st.st_mode)) {
        mfs_err_set(err, "%s: not a regular file", path);
        file_destroy(f);
        return -EINVAL;
    }
    /* Models are mostly read front to back, by several daemon threads at once whose reads reach
     * the file slightly out of order: a bigger readahead window keeps the disk streaming. */
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    struct mfs_source_info info = {.kind = MFS_SRC_FILE, .size = (uint64_t)f->st.st_size,
                                   .stored_size = (uint64_t)f->st.st_size};
    return mfs_source_create(&k_file_ops, f, &info, path, out);
}

int mfs_source_open(const char *path, const struct mfs_open_opts *opts, mfs_source **out, mfs_err *err)
{
    mfs_source *file;
    int rc = mfs_source_open_file(path, &file, err);
    if (rc)
        return rc;
    uint8_t head[8] = {0};
    size_t n = mfs_source_size(file) < sizeof head ? (size_t)mfs_source_size(file) : sizeof head;
    if ((rc = mfs_source_read_exact(file, head, n, 0, err))) {
        mfs_source_unref(file);
        return rc;
    }
    bool zstd = mfs_zstd_is_zstd(head, n), container = mfs_container_is(head, n);
    if (zstd || container) {
        if (!opts || !opts->engine) {
            mfs_err_set(err, "%s: compressed source opened without a decode engine", path);
            mfs_source_unref(file);
            return -EINVAL;
        }
        return zstd ? mfs_zstd_open(file, opts->engine, out, err) : mfs_container_open(file, opts->engine, out, err);
    }
    *out = file;
    return 0;
}
