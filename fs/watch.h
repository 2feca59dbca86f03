/* fs/watch: inotify on the source directories the mount has listed, so that a source removed,
 * replaced, rewritten or chmod'ed is found without waiting for the next open or lookup, and the
 * kernel's cached names for it are invalidated (through fs_tree's `changed` callback).
 *
 * Best effort: where inotify says nothing (network filesystems, too many directories for
 * fs.inotify.max_user_watches), changes are still found on open, lookup and readdir.
 * Events are coalesced for a few milliseconds; files being written are looked at when closed
 * (IN_CLOSE_WRITE), not on every write.
 *
 * Thread safety: fs_watch_add may be called from any thread.
 */
#ifndef MFS_FS_WATCH_H
#define MFS_FS_WATCH_H

#include "tree.h"

struct fs_watch;

/* -errno if inotify is unavailable (the caller carries on without it). */
int fs_watch_create(struct fs_tree *t, struct fs_watch **out);
/* Stops the thread, drops every watch. NULL is a no-op. */
void fs_watch_destroy(struct fs_watch *w);
/* Watch directory entry `dir` (a reference is taken; dropped when the directory goes away). */
void fs_watch_add(struct fs_watch *w, struct fs_entry *dir);

#endif
