#include "opts.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfs_util.h"

void fs_opts_init(struct fs_opts *o)
{
    memset(o, 0, sizeof *o);
    o->cache = FS_DEFAULT_CACHE;
    o->readahead = FS_DEFAULT_READAHEAD;
}

static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Options meant for mount(8), fstab or systemd that may reach us when mount.fuse3 or a user
 * passes them through: harmless, dropped. */
static bool is_mount_only(const char *opt)
{
    static const char *const names[] = {"defaults", "auto", "noauto", "user", "nouser", "users",
                                        "nofail", "_netdev", "owner", "group", NULL};
    for (size_t i = 0; names[i]; i++)
        if (!strcmp(opt, names[i]))
            return true;
    /* x-systemd.automount, x-gvfs-show, comment=... */
    return !strncmp(opt, "x-", 2) || !strncmp(opt, "comment=", 8);
}

int fs_opts_apply(struct fs_opts *o, const char *opt, char *err, size_t errcap)
{
    const char *eq = strchr(opt, '=');
    size_t klen = eq ? (size_t)(eq - opt) : strlen(opt);
    const char *val = eq ? eq + 1 : NULL;
#define KEY(k) (klen == sizeof(k) - 1 && !memcmp(opt, k, klen))
    uint64_t v;
    if (KEY("align")) {
        if (parse_uint(val, UINT32_MAX, &v) || v < 32 || (v & (v - 1))) {
            snprintf(err, errcap, "-o %s: the alignment must be a power of two >= 32", opt);
            return -EINVAL;
        }
        o->align = (uint32_t)v;
        return FS_OPT_CONSUMED;
    }
    if (KEY("cache")) {
        if (mfs_parse_size(val, &v) || v == 0) {
            snprintf(err, errcap, "-o %s: expected a size such as 256M or 2G", opt);
            return -EINVAL;
        }
        o->cache = v;
        return FS_OPT_CONSUMED;
    }
    if (KEY("threads")) {
        if (parse_uint(val, 1024, &v) || v == 0) {
            snprintf(err, errcap, "-o %s: expected a number of threads from 1 to 1024", opt);
            return -EINVAL;
        }
        o->threads = (unsigned)v;
        return FS_OPT_CONSUMED;
    }
    if (KEY("readahead")) {
        /* read_ahead_kb is a count of KiB in an unsigned long; 1 GiB is already absurd */
        if (mfs_parse_size(val, &v) || v > (1ull << 30)) {
            snprintf(err, errcap, "-o %s: expected a size up to 1G such as 4M (0 keeps the kernel's)", opt);
            return -EINVAL;
        }
        o->readahead = v;
        return FS_OPT_CONSUMED;
    }
#undef KEY
    if (!strcmp(opt, "rw")) {
        o->saw_rw = true;
        return FS_OPT_CONSUMED;
    }
    if (is_mount_only(opt))
        return FS_OPT_CONSUMED;
    if (!strcmp(opt, "allow_other") || !strcmp(opt, "allow_root"))
        o->allow_other = true;
    else if (!strcmp(opt, "default_permissions"))
        o->default_permissions = true;
    return FS_OPT_PASS;
}
