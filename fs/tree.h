/* fs/tree: the source tree as the mount shows it, one directory listing at a time.
 *
 * An fs_entry is one version of one source entry: a directory, a plain file, a symlink, or a model
 * (a model candidate that the loader opened). It never changes: when the source changes, a new
 * entry replaces it in its directory's listing and the old one is marked stale. Every entry owns a
 * block of inode numbers, never reused, so the kernel never mixes the page cache of two versions:
 *   ino       the entry itself (for a model: NAME.gguf)
 *   ino + 1   NAME.tensors/        (models only)
 *   ino + 2   NAME.meta            (models only)
 *   ino + 3 + i  NAME.tensors/ file of tensor i
 *
 * A directory's listing is built on first use and rebuilt when the directory's mtime changes or
 * one of its entries changed (checked on lookup and readdir); unchanged entries carry over, so a
 * model is opened once per version and a source that fails to open is logged once. Symlinks are
 * never followed; devices, FIFOs and sockets are not shown; the mountpoint itself is hidden when it
 * sits inside the source.
 *
 * Thread safety: everything may be called from any thread; a directory's listing has its own lock,
 * held while the listing is rebuilt (which opens models: headers only).
 * No FUSE types here.
 */
#ifndef MFS_FS_TREE_H
#define MFS_FS_TREE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "mfs_log.h"
#include "mfs_model.h"

enum fs_kind { FS_DIR, FS_FILE, FS_LINK, FS_MODEL };
enum fs_view { FS_VIEW_MAIN = 0, FS_VIEW_TENSORS = 1, FS_VIEW_META = 2 };
#define FS_TENSOR_INO0 3u /* ino offset of tensor 0 in a model's block */
#define FS_ROOT_INO 1u
#define FS_FIRST_INO 16u  /* below: the root and the daemon's own files */

struct fs_listing;

struct fs_entry {
    atomic_uint refs;
    atomic_bool stale;   /* no longer in its directory's listing */
    enum fs_kind kind;
    bool failed;         /* a model candidate that did not open: shown as itself */
    int64_t retry_at;    /* failed for a passing reason (EIO...): opened again from then (ns) */
    char *name;          /* source name */
    char *pname;         /* FS_MODEL: the name the loader presents it under */
    char *relpath;       /* from the source root; "." for the root */
    char *path;          /* full path, for the loader and log lines */
    struct stat st;      /* lstat when listed */
    mfs_model *model;    /* FS_MODEL */
    uint64_t ino;
    uint64_t n_tensors;  /* FS_MODEL */
    /* FS_DIR */
    pthread_mutex_t mu;
    struct fs_listing *listing;
};

struct fs_dirent {
    char *name;
    uint64_t ino;
    mode_t type; /* S_IFDIR, S_IFREG, S_IFLNK */
};

struct fs_tree;

/* Called, without any lock held, for each name of directory `dir_ino` whose meaning changed
 * when a listing was rebuilt (the kernel may hold a stale dentry for it). */
typedef void (*fs_tree_changed_fn)(void *user, uint64_t dir_ino, const char *name);

/* Called with the directory's lock held when `dir`'s first listing was built (to watch it). */
typedef void (*fs_tree_listed_fn)(void *user, struct fs_entry *dir);

struct fs_tree_config {
    const char *root;              /* absolute path of the source directory */
    struct mfs_model_opts model;   /* how models are opened */
    fs_tree_changed_fn changed;    /* may be NULL */
    fs_tree_listed_fn listed;      /* may be NULL */
    void *user;
};

struct fs_tree_stats {
    uint64_t models;      /* model versions opened */
    uint64_t failed;      /* candidates that failed to open */
    uint64_t rebuilds;    /* listings built or rebuilt */
    uint64_t changes;     /* source entries found changed, removed or replaced */
};

/* Opens the root directory. -errno with `err` filled if it is not a readable directory. */
int fs_tree_create(const struct fs_tree_config *cfg, struct fs_tree **out, mfs_err *err);
/* Entries must all have been released. NULL is a no-op. */
void fs_tree_destroy(struct fs_tree *t);
/* Set the engine models are opened with (before any lookup). */
void fs_tree_set_engine(struct fs_tree *t, mfs_engine *e);
/* Hide the source entry with this (st_dev, st_ino): the mountpoint, when it is inside the source. */
void fs_tree_hide(struct fs_tree *t, dev_t dev, ino_t ino);

/* Borrowed: lives as long as the tree. */
struct fs_entry *fs_tree_root(struct fs_tree *t);

/* Resolve `name` in directory `dir`: a new reference in *out and the view it names.
 * -ENOENT, -ESTALE if `dir` itself was replaced or removed, -ENOTDIR, -ENOMEM, -EIO. */
int fs_tree_lookup(struct fs_tree *t, struct fs_entry *dir, const char *name, struct fs_entry **out,
                   enum fs_view *view);
/* Is (`e`, `view`) still what `name` in `dir` resolves to? */
bool fs_tree_current(struct fs_tree *t, struct fs_entry *dir, const char *name, const struct fs_entry *e,
                     enum fs_view view);
/* Has the source of model entry `e` changed since it was opened? */
bool fs_tree_model_changed(const struct fs_entry *e);

/* Bring `dir`'s listing up to date if it was built and anything in it changed (reporting the
 * names that changed). -ESTALE if `dir` is gone. */
int fs_tree_refresh(struct fs_tree *t, struct fs_entry *dir);

/* A snapshot of the listing of `dir`, sorted by name: free with fs_dirents_free. */
int fs_tree_readdir(struct fs_tree *t, struct fs_entry *dir, struct fs_dirent **out, size_t *n);
void fs_dirents_free(struct fs_dirent *d, size_t n);

/* Open plain file entry `e` read-only (a descriptor), never following a symlink nor leaving the
 * source; -ESTALE if the file at its path is no longer the version `e` describes. */
int fs_tree_open_file(struct fs_tree *t, const struct fs_entry *e);
/* readlink(2) of symlink entry `e`; -ESTALE if it changed. */
ssize_t fs_tree_readlink(struct fs_tree *t, const struct fs_entry *e, char *buf, size_t cap);

/* Index of the tensor whose NAME.tensors/ file name is `fname`; -ENOENT if none. */
int fs_tree_find_tensor(const struct fs_entry *e, const char *fname, uint64_t *idx);

void fs_tree_stats(struct fs_tree *t, struct fs_tree_stats *out);
/* The root's descriptor (for statfs). */
int fs_tree_root_fd(const struct fs_tree *t);

struct fs_entry *fs_entry_ref(struct fs_entry *e);
void fs_entry_unref(struct fs_entry *e);

#endif
