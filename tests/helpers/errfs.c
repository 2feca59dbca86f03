/* errfs LOWER MOUNTPOINT CONTROL [FUSE options]: a read-only FUSE passthrough of LOWER that fails
 * operations on demand, for the fault tests (a disk that returns EIO under modelfs's SOURCE).
 *
 * CONTROL is a text file read before every operation (a missing or empty file: no faults). Each
 * line is a rule `OP SUBSTRING [ARG]`: operation OP on a path containing SUBSTRING (`*`: any path)
 *   read S OFF     read(2) of bytes at or past offset OFF fails with EIO
 *   open S         open(2) fails with EIO
 *   getattr S      stat(2) fails with EIO
 *   readdir S      listing a directory fails with EIO
 *   delay S MS     reads sleep MS milliseconds first (a slow disk)
 * Counts of injected errors go to stderr as they happen. Always foreground (-f), multi-threaded. */
#define FUSE_USE_VERSION 35
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char g_lower[PATH_MAX];
static const char *g_control;

static void lower_path(const char *path, char *out)
{
    snprintf(out, PATH_MAX, "%s%s", g_lower, path);
}

/* Does a rule for `op` match `path`? Its argument (or 0) in *arg. */
static int rule(const char *op, const char *path, long long *arg)
{
    FILE *f = fopen(g_control, "r");
    if (!f)
        return 0;
    char line[1024], o[32], s[900];
    int hit = 0;
    while (!hit && fgets(line, sizeof line, f)) {
        long long a = 0;
        int n = sscanf(line, "%31s %899s %lld", o, s, &a);
        if (n >= 2 && !strcmp(o, op) && (!strcmp(s, "*") || strstr(path, s))) {
            hit = 1;
            *arg = n == 3 ? a : 0;
        }
    }
    fclose(f);
    return hit;
}

static int inject(const char *op, const char *path)
{
    long long a;
    if (rule(op, path, &a)) {
        fprintf(stderr, "errfs: %s %s: EIO\n", op, path);
        return 1;
    }
    return 0;
}

static void *e_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
    (void)conn;
    cfg->use_ino = 1;
    cfg->attr_timeout = 0;
    cfg->entry_timeout = 0;
    cfg->negative_timeout = 0;
    cfg->direct_io = 1; /* every read reaches us: faults appear when they are set */
    return NULL;
}

static int e_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
    (void)fi;
    if (inject("getattr", path))
        return -EIO;
    char p[PATH_MAX];
    lower_path(path, p);
    return lstat(p, st) ? -errno : 0;
}

static int e_readlink(const char *path, char *buf, size_t size)
{
    char p[PATH_MAX];
    lower_path(path, p);
    ssize_t n = readlink(p, buf, size - 1);
    if (n < 0)
        return -errno;
    buf[n] = '\0';
    return 0;
}

static int e_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off, struct fuse_file_info *fi,
                     enum fuse_readdir_flags flags)
{
    (void)off, (void)fi, (void)flags;
    if (inject("readdir", path))
        return -EIO;
    char p[PATH_MAX];
    lower_path(path, p);
    DIR *d = opendir(p);
    if (!d)
        return -errno;
    for (struct dirent *e; (e = readdir(d));) {
        struct stat st = {.st_ino = e->d_ino, .st_mode = (mode_t)DTTOIF(e->d_type)};
        if (fill(buf, e->d_name, &st, 0, 0))
            break;
    }
    closedir(d);
    return 0;
}

static int e_open(const char *path, struct fuse_file_info *fi)
{
    if ((fi->flags & O_ACCMODE) != O_RDONLY)
        return -EROFS;
    if (inject("open", path))
        return -EIO;
    char p[PATH_MAX];
    lower_path(path, p);
    int fd = open(p, O_RDONLY);
    if (fd < 0)
        return -errno;
    fi->fh = (uint64_t)fd;
    return 0;
}

static int e_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
    long long a;
    if (rule("delay", path, &a) && a > 0)
        nanosleep(&(struct timespec){a / 1000, (a % 1000) * 1000000}, NULL);
    if (rule("read", path, &a) && (long long)off + (long long)size > a) {
        if (off >= a) {
            fprintf(stderr, "errfs: read %s at %lld: EIO\n", path, (long long)off);
            return -EIO;
        }
        size = (size_t)(a - off); /* the good part first; the next read fails */
    }
    ssize_t n = pread((int)fi->fh, buf, size, off);
    return n < 0 ? -errno : (int)n;
}

static int e_release(const char *path, struct fuse_file_info *fi)
{
    (void)path;
    close((int)fi->fh);
    return 0;
}

static int e_statfs(const char *path, struct statvfs *st)
{
    (void)path;
    return statvfs(g_lower, st) ? -errno : 0;
}

static const struct fuse_operations k_ops = {
    .init = e_init,
    .getattr = e_getattr,
    .readlink = e_readlink,
    .readdir = e_readdir,
    .open = e_open,
    .read = e_read,
    .release = e_release,
    .statfs = e_statfs,
};

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: errfs LOWER MOUNTPOINT CONTROL [FUSE options]\n");
        return 2;
    }
    if (!realpath(argv[1], g_lower)) {
        perror(argv[1]);
        return 1;
    }
    g_control = argv[3];
    char *fargv[64];
    int fargc = 0;
    fargv[fargc++] = argv[0];
    fargv[fargc++] = "-f";
    fargv[fargc++] = "-o";
    fargv[fargc++] = "ro,fsname=errfs,default_permissions";
    for (int i = 4; i < argc && fargc < 62; i++)
        fargv[fargc++] = argv[i];
    fargv[fargc++] = argv[2];
    return fuse_main(fargc, fargv, &k_ops, NULL);
}
