/* fs/opts: the daemon's own mount options, separated from the ones libfuse handles.
 *
 * `modelfs -o a,b,c` hands every option to fs_opts_apply one at a time: modelfs's options
 * (align=, cache=, threads=, readahead=) are consumed, options that only make sense to mount(8) or
 * /etc/fstab are dropped, `rw` is dropped (the mount is always read-only) and everything else goes
 * to libfuse. No FUSE types here: unit-tested on its own.
 */
#ifndef MFS_FS_OPTS_H
#define MFS_FS_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FS_DEFAULT_CACHE (256ull << 20)
#define FS_DEFAULT_READAHEAD (4ull << 20)

struct fs_opts {
    uint32_t align;      /* 0: keep each GGUF's alignment */
    uint64_t cache;      /* bytes for the decode engine's cache */
    unsigned threads;    /* decode workers; 0: online CPUs */
    uint64_t readahead;  /* bytes, written to the mount's read_ahead_kb; 0: leave the kernel's */
    bool allow_other;    /* seen among the libfuse options */
    bool default_permissions;
    bool saw_rw;         /* `rw` was asked for and ignored */
};

void fs_opts_init(struct fs_opts *o);

enum fs_opt_action {
    FS_OPT_CONSUMED = 0, /* modelfs's own, or dropped */
    FS_OPT_PASS = 1,     /* give it to libfuse */
};

/* Look at one option (`key` or `key=value`, no commas). Returns an fs_opt_action, or -EINVAL with
 * one line naming the option and the reason in `err`. */
int fs_opts_apply(struct fs_opts *o, const char *opt, char *err, size_t errcap);

#endif
