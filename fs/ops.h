/* fs/ops: the FUSE low-level operations, a thin adapter over fs_tree and mfs_model.
 *
 * Inode numbers come from fs_tree (one block per entry version, never reused); the daemon keeps a
 * table from inode number to node with the kernel's lookup count, and frees a node when the
 * kernel forgets it. A read touches only its file handle, which holds a reference to the model
 * version it opened (or the plain file's descriptor): no path lookup per read, and an open file
 * keeps reading the version it opened.
 *
 * When a source changes, the entry the kernel holds becomes stale: open, opendir, readlink and
 * getattr on it return ESTALE, which makes the kernel walk the path again with LOOKUP_REVAL and
 * find the new version under a new inode number. Names found changed when a listing is rebuilt
 * are also invalidated in the kernel's dentry cache from a notifier thread.
 *
 * Thread safety: the operations run on libfuse's worker threads; everything is shared safely.
 */
#ifndef MFS_FS_OPS_H
#define MFS_FS_OPS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "mfs_engine.h"
#include "mfs_log.h"
#include "tree.h"

struct fs_ctx;

struct fs_ctx_config {
    const char *source; /* absolute path of the source directory */
    uint32_t align;     /* mfs_model_opts.align */
};

/* Opens the source directory (no thread is started). -errno with `err` filled. */
int fs_ctx_create(const struct fs_ctx_config *cfg, struct fs_ctx **out, mfs_err *err);
/* After fs_ctx_stop and fuse_session_unmount. NULL is a no-op. Releases every model: call it
 * before mfs_engine_destroy. */
void fs_ctx_destroy(struct fs_ctx *c);

struct fs_tree *fs_ctx_tree(struct fs_ctx *c);
/* The engine that decodes models; set before the session runs. */
void fs_ctx_set_engine(struct fs_ctx *c, mfs_engine *e);

const struct fuse_lowlevel_ops *fs_ops(void);
size_t fs_ops_size(void);

/* Start the notifier and inotify threads for session `se`. 0 or -errno. */
int fs_ctx_start(struct fs_ctx *c, struct fuse_session *se);
/* Once the session loop has ended, before fuse_session_unmount: stop inotify and any new kernel
 * notification. Safe if never started. fs_ctx_destroy (after the unmount) joins the notifier. */
void fs_ctx_stop(struct fs_ctx *c);

/* The text of .modelfs/stats (malloc'ed, *len bytes). */
char *fs_ctx_stats_text(struct fs_ctx *c, size_t *len);

#endif
