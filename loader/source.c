#include "mfs_source.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

/* ---- confined opens ---- */

/* openat2 is missing (ENOSYS, kernels before 5.6): walk the path one component at a time. */
static int open_walk(int dirfd, const char *relpath, int flags)
{
    if (relpath[0] == '/')
        return -EXDEV;
    char *copy = strdup(relpath), *save = NULL;
    if (!copy)
        return -ENOMEM;
    int cur = -1, rc = 0;
    char *comp = strtok_r(copy, "/", &save);
    if (!comp) /* "." or "": the directory itself */
        comp = ".";
    while (comp) {
        char *next = strtok_r(NULL, "/", &save);
        if (!strcmp(comp, "..")) {
            rc = -EXDEV;
            break;
        }
        int at = cur >= 0 ? cur : dirfd;
        int fd = next ? openat(at, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                      : openat(at, comp, flags | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
            rc = errno == ENOTDIR && next ? -ELOOP : -errno; /* a symlink as a directory component */
            break;
        }
        if (cur >= 0)
            close(cur);
        cur = fd;
        comp = next;
    }
    free(copy);
    if (rc) {
        if (cur >= 0)
            close(cur);
        return rc;
    }
    return cur;
}

int mfs_open_beneath(int dirfd, const char *relpath, int flags)
{
    struct open_how how = {.flags = (uint64_t)(flags | O_CLOEXEC | O_NOFOLLOW),
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
    for (int tries = 0;; tries++) {
        int fd = (int)syscall(SYS_openat2, dirfd, relpath, &how, sizeof how);
        if (fd >= 0)
            return fd;
        if (errno == ENOSYS)
            return open_walk(dirfd, relpath, flags);
        /* EAGAIN: a rename somewhere in the tree raced the lookup; EXDEV: `..` or an absolute path */
        if (errno != EAGAIN || tries == 8)
            return -errno;
    }
}

/* `path` relative to the root: NULL if it is not the root nor under it. */
static const char *rel_to_root(const struct mfs_root *root, const char *path)
{
    size_t n = strlen(root->path);
    while (n > 1 && root->path[n - 1] == '/')
        n--;
    if (strncmp(path, root->path, n) != 0)
        return NULL;
    const char *rest = path + n;
    if (n == 1 && root->path[0] == '/') /* the root is / */
        rest = path + 1;
    else if (*rest == '/')
        rest++;
    else if (*rest)
        return NULL; /* "/src2" is not under "/src" */
    return *rest ? rest : ".";
}

int mfs_open_in(const struct mfs_root *root, const char *path, int flags)
{
    if (!root) {
        int fd = open(path, flags | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
    }
    const char *rel = rel_to_root(root, path);
    return rel ? mfs_open_beneath(root->fd, rel, flags) : -EXDEV;
}

int mfs_stat_in(const struct mfs_root *root, const char *path, struct stat *st)
{
    if (!root)
        return stat(path, st) ? -errno : 0;
    /* O_PATH | O_NOFOLLOW: a trailing symlink gives a descriptor of the link itself */
    int fd = mfs_open_in(root, path, O_PATH);
    if (fd < 0)
        return fd;
    int rc = fstat(fd, st) ? -errno : 0;
    close(fd);
    return rc;
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

static int open_file(const struct mfs_root *root, const char *path, mfs_source **out, mfs_err *err)
{
    int fd = mfs_open_in(root, path, O_RDONLY);
    if (fd < 0) {
        const char *why = !root ? strerror(-fd)
                          : fd == -ELOOP ? "a symlink on the way (not followed)"
                          : fd == -EXDEV ? "outside the source tree"
                                         : strerror(-fd);
        mfs_err_set(err, "%s: cannot open: %s", path, why);
        return fd;
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

int mfs_source_open_file(const char *path, mfs_source **out, mfs_err *err)
{
    return open_file(NULL, path, out, err);
}

int mfs_source_open(const char *path, const struct mfs_open_opts *opts, mfs_source **out, mfs_err *err)
{
    mfs_source *file;
    int rc = open_file(opts ? opts->root : NULL, path, &file, err);
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
