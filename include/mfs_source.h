/* mfs_source: random access to the decoded bytes of one model file.
 *
 * Every format reader (GGUF, safetensors) and the snapshot planner read through this interface,
 * so a header can be parsed from a compressed file without decompressing the rest.
 *
 * Kinds (see mfs_source_open): a plain file (pread), the zstd seekable format (seek table),
 * multi-frame zstd without a seek table (indexed at open by walking frame headers), single-frame
 * zstd (streaming decoder that restarts on a backward seek), a memory buffer, and the
 * tensor-aware container. Compressed kinds decode through an mfs_engine (cache + workers).
 *
 * Ownership: a source is reference counted. mfs_source_open/create return one reference;
 * mfs_source_unref(NULL) is a no-op. Thread safety: mfs_source_read may be called from many
 * threads at once on the same source.
 */
#ifndef MFS_SOURCE_H
#define MFS_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "mfs_log.h"

struct mfs_engine;

enum mfs_source_kind {
    MFS_SRC_FILE,
    MFS_SRC_MEMORY,
    MFS_SRC_ZSTD_SEEKABLE,
    MFS_SRC_ZSTD_FRAMES,
    MFS_SRC_ZSTD_STREAM,
    MFS_SRC_CONTAINER,
};

/* One compressed unit, for modelfs-inspect and NAME.meta. */
struct mfs_frame_info {
    uint64_t stored_off;  /* where it starts in the stored file */
    uint64_t stored_size; /* bytes on disk */
    uint64_t off;         /* where its decoded bytes start */
    uint64_t size;        /* decoded bytes */
    bool has_checksum;
    const char *codec;    /* how it is coded ("bf16-planes", ...); NULL: a plain zstd frame */
    bool in_tensor;       /* it holds bytes of one tensor only (the container's chunks): */
    uint32_t tensor;      /*   that tensor's index in the source file's tensor table */
};

struct mfs_source_info {
    enum mfs_source_kind kind;
    uint64_t size;        /* decoded bytes: what reads see */
    uint64_t stored_size; /* bytes of the file on disk */
    uint64_t n_frames;    /* compressed frames or chunks; 0 for plain files and memory */
    bool checksums;       /* every frame carries a checksum that reads verify */
};

typedef struct mfs_source mfs_source;

/* Operations of one kind of source. `read` must fill the whole range unless it reaches the end of
 * the data; it returns the number of bytes read or a negative errno (-EIO for corrupt data,
 * -ESTALE when the file changed under the reader). */
struct mfs_source_ops {
    ssize_t (*read)(void *impl, void *buf, size_t len, uint64_t off);
    void (*destroy)(void *impl);
    /* Optional: describe frame i (i < info.n_frames). */
    int (*frame)(void *impl, uint64_t i, struct mfs_frame_info *out);
};

/* Wrap an implementation. On success the source owns `impl` (ops->destroy runs on the last
 * unref); on failure `impl` is destroyed too. `name` is copied; it names the file in messages. */
int mfs_source_create(const struct mfs_source_ops *ops, void *impl, const struct mfs_source_info *info,
                      const char *name, mfs_source **out);

/* A tree the caller does not trust (the daemon's SOURCE): files in it are opened relative to its
 * open directory, never following a symlink in any component and never leaving it, so that a
 * regular file or a directory swapped for a symlink between the caller's lstat and the loader's
 * open cannot make the loader read a file outside the tree. The caller keeps `fd` open as long as
 * anything opened with this root (sources, models) lives. */
struct mfs_root {
    int fd;           /* the tree's directory, open */
    const char *path; /* its absolute path, as the paths given to the loader begin */
};

/* Open `path` like open(2) (O_CLOEXEC added). Without a root (NULL): open(2) itself, symlinks
 * followed (the tools). With one: `path` must be root->path or lie under it, and is resolved from
 * root->fd with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) (on kernels without openat2, one
 * openat(O_NOFOLLOW) per component). Returns a descriptor, or -ELOOP for a symlink anywhere in
 * the path, -EXDEV for a path outside the root (or with a `..` component), -errno otherwise. */
int mfs_open_in(const struct mfs_root *root, const char *path, int flags);
/* The same resolution for `relpath` relative to the directory `dirfd`. */
int mfs_open_beneath(int dirfd, const char *relpath, int flags);
/* stat(2) without a root; with one, lstat(2) of `path` resolved as mfs_open_in does (a symlink
 * as the last component is described, not followed). 0 or -errno. */
int mfs_stat_in(const struct mfs_root *root, const char *path, struct stat *st);

struct mfs_open_opts {
    struct mfs_engine *engine;   /* decodes compressed kinds: opening one without it is -EINVAL */
    const struct mfs_root *root; /* NULL: open `path` as given; else confined to this tree */
};

/* Open `path`, detecting its kind from its bytes: zstd (seekable, multi-frame or single frame),
 * the tensor-aware container, otherwise a plain file. The file stays open (its descriptor) for
 * the source's lifetime, so a file replaced by rename keeps serving the old bytes. With
 * opts->root, the path is opened confined to that tree (mfs_open_in).
 * Errors: -ENOENT/-EACCES/... from open, -ELOOP/-EXDEV from confinement, -EINVAL with `err`
 * filled for malformed compressed data. */
int mfs_source_open(const char *path, const struct mfs_open_opts *opts, mfs_source **out, mfs_err *err);

/* Plain file only, no detection. */
int mfs_source_open_file(const char *path, mfs_source **out, mfs_err *err);

/* A source over caller memory that must outlive the source (not copied). */
int mfs_source_open_memory(const void *data, size_t size, const char *name, mfs_source **out);

/* Like read(2) at an offset, but fills the whole range unless the end is reached. */
ssize_t mfs_source_read(mfs_source *src, void *buf, size_t len, uint64_t off);

/* Read exactly `len` bytes or fail: -EIO with `err` filled if the data ends early. */
int mfs_source_read_exact(mfs_source *src, void *buf, size_t len, uint64_t off, mfs_err *err);

uint64_t mfs_source_size(const mfs_source *src);
const struct mfs_source_info *mfs_source_info(const mfs_source *src);
const char *mfs_source_name(const mfs_source *src);
const char *mfs_source_kind_name(enum mfs_source_kind kind);
int mfs_source_frame(mfs_source *src, uint64_t i, struct mfs_frame_info *out);

mfs_source *mfs_source_ref(mfs_source *src);
void mfs_source_unref(mfs_source *src);

#endif
