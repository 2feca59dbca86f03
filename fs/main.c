/* modelfs: mount a directory of models, each shown as a GGUF file that can be mmap'ed.
 *
 *   modelfs [-f] [-d] [-s] [-o OPT[,OPT]] SOURCE MOUNTPOINT
 *
 * Standard FUSE daemon: daemonizes unless -f, logs to stderr in the foreground and to syslog
 * otherwise, unmounts on SIGTERM/SIGINT/SIGHUP and on `fusermount3 -u`. Usable from /etc/fstab as
 * type fuse.modelfs (mount.fuse3 runs `modelfs SOURCE MOUNTPOINT -o OPTS`), or as type modelfs
 * through a `mount.modelfs` link in /sbin (then mount(8)'s helper flags are understood, below).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <syslog.h>
#include <unistd.h>

#include "mfs_engine.h"
#include "mfs_log.h"
#include "ops.h"
#include "opts.h"

static const char g_usage[] =
    "Usage: modelfs [-f] [-d] [-s] [-o OPT[,OPT]] SOURCE MOUNTPOINT\n"
    "mount a directory of models read-only, each shown as a GGUF file to mmap\n"
    "\n"
    "  -f                 stay in the foreground, log to stderr\n"
    "  -d                 debug: log every request (implies -f)\n"
    "  -s                 single-threaded\n"
    "  -h, --help         this help\n"
    "  -V, --version      version\n"
    "\n"
    "modelfs options (-o):\n"
    "  align=N            re-lay every GGUF out with tensors aligned to N (a power of two >= 32)\n"
    "  cache=SIZE         budget for decoded chunks held by the daemon (default 256M)\n"
    "  threads=N          decode workers (default: online CPUs)\n"
    "  readahead=SIZE     readahead of the mount, written to its read_ahead_kb (default 4M; 0: kernel's)\n"
    "  allow_other        let other users in (then default_permissions is implied)\n"
    "\n"
    "unmount with: fusermount3 -u MOUNTPOINT\n";

struct cmdline {
    struct fs_opts o;
    char *source;
    int n_nonopt;
    bool help, version, bad;
    char err[512];
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    (void)outargs;
    struct cmdline *cl = data;
    if (key == FUSE_OPT_KEY_NONOPT) {
        if (cl->n_nonopt++ == 0) {
            cl->source = strdup(arg);
            return 0; /* libfuse takes the next one as the mountpoint */
        }
        if (cl->n_nonopt == 2)
            return 1;
        snprintf(cl->err, sizeof cl->err, "unexpected argument '%s'", arg);
        cl->bad = true;
        return -1;
    }
    if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
        cl->help = true;
        return 0;
    }
    if (!strcmp(arg, "-V") || !strcmp(arg, "--version")) {
        cl->version = true;
        return 0;
    }
    if (arg[0] == '-')
        return 1; /* -f, -d, -s... for libfuse */
    int rc = fs_opts_apply(&cl->o, arg, cl->err, sizeof cl->err);
    if (rc < 0) {
        cl->bad = true;
        return -1;
    }
    return rc == FS_OPT_PASS;
}

/* "-oKEY=VALUE" with ',' and '\' escaped as libfuse's option parser expects. */
static int add_opt_escaped(struct fuse_args *args, const char *key, const char *value)
{
    size_t kl = strlen(key), vl = strlen(value);
    char *s = malloc(2 + kl + 2 * vl + 1);
    if (!s)
        return -1;
    char *p = s + sprintf(s, "-o%s", key);
    for (const char *v = value; *v; v++) {
        if (*v == ',' || *v == '\\')
            *p++ = '\\';
        *p++ = *v;
    }
    *p = '\0';
    int rc = fuse_opt_add_arg(args, s);
    free(s);
    return rc;
}

static void syslog_sink(enum mfs_log_level level, const char *line, void *user)
{
    (void)user;
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    syslog(prio[level], "%s", line);
}

static void fuse_syslog(enum fuse_log_level level, const char *fmt, va_list ap)
{
    vsyslog((int)level, fmt, ap);
}

/* Write the readahead into the mount's backing device info. The mount's device number is only
 * known once the kernel has the session's INIT answer, so this runs beside the session loop: its
 * stat() of the mountpoint is answered by the loop. */
struct readahead {
    const char *mountpoint;
    uint64_t bytes;
};

static void *set_readahead(void *arg)
{
    const struct readahead *ra = arg;
    struct stat st;
    if (stat(ra->mountpoint, &st)) {
        mfs_log(MFS_LOG_WARN, "%s: %s; readahead left as it is", ra->mountpoint, strerror(errno));
        return NULL;
    }
    char path[128];
    snprintf(path, sizeof path, "/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev), minor(st.st_dev));
    FILE *f = fopen(path, "w");
    if (!f || fprintf(f, "%" PRIu64 "\n", ra->bytes / 1024) < 0 || fclose(f)) {
        int e = errno;
        if (f)
            fclose(f);
        mfs_log(MFS_LOG_WARN, "%s: %s; readahead left as it is (run as root to set it)", path, strerror(e));
        return NULL;
    }
    mfs_log(MFS_LOG_DEBUG, "%s = %" PRIu64, path, ra->bytes / 1024);
    return NULL;
}

/* Unmounting on a signal. libfuse's own handlers end the session loop at once; but the notifier
 * may be waiting inside the kernel for a directory lock that a queued request holds, and a loop
 * that has ended answers nothing more. So a signal only wakes this thread, which first stops the
 * notifications while the loop still serves, then ends the loop (a statfs of the mountpoint makes
 * it look at its exit flag). */
static int g_sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t n = write(g_sig_pipe[1], &b, 1);
    (void)n; /* full pipe: a signal is pending anyway */
    errno = saved;
}

struct shutdown {
    struct fuse_session *se;
    struct fs_ctx *ctx;
    const char *mountpoint;
};

static void *shutdown_thread(void *arg)
{
    const struct shutdown *sd = arg;
    unsigned char b = 0;
    while (read(g_sig_pipe[0], &b, 1) < 0 && errno == EINTR)
        ;
    if (b == 0)
        return NULL; /* the loop ended by itself (unmounted): nothing to do */
    mfs_log(MFS_LOG_INFO, "%s: unmounting %s", strsignal(b), sd->mountpoint);
    fs_ctx_stop(sd->ctx);
    fuse_session_exit(sd->se);
    struct statvfs sv; /* statfs always reaches the daemon, never answered from a cache */
    statvfs(sd->mountpoint, &sv);
    return NULL;
}

static int set_signals(void)
{
    if (pipe2(g_sig_pipe, O_CLOEXEC))
        return -1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&ign.sa_mask);
    return sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL) || sigaction(SIGHUP, &sa, NULL) ||
                   sigaction(SIGPIPE, &ign, NULL)
               ? -1
               : 0;
}

static bool path_inside(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    if (n == 1 && dir[0] == '/')
        return true;
    return !strncmp(path, dir, n) && (path[n] == '\0' || path[n] == '/');
}

/* Run as mount(8)'s helper (named mount.modelfs or mount.fuse.modelfs), argv is
 * `SOURCE MOUNTPOINT [-sfnv] [-o OPTS] [-t TYPE]`: -s (sloppy), -n (no mtab), -v (verbose) and
 * -t are dropped; -f (fake: do everything but mount) returns false, and the helper exits 0.
 * Our own -f and -s mean something else, so only the helper names get this treatment. */
static bool helper_args(int *argc, char **argv)
{
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    if (strncmp(base, "mount.", 6) != 0)
        return true;
    int n = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1] != '-' && a[1] != 'o' && a[1] != 't' && a[1] != '\0' &&
            strspn(a + 1, "sfnv") == strlen(a + 1)) {
            if (strchr(a, 'f'))
                return false;
            continue;
        }
        if (!strcmp(a, "-t") && i + 1 < *argc) {
            i++;
            continue;
        }
        if (!strncmp(a, "-t", 2) && a[2])
            continue;
        argv[n++] = argv[i];
    }
    argv[n] = NULL;
    *argc = n;
    return true;
}

int main(int argc, char **argv)
{
    if (!helper_args(&argc, argv))
        return 0;
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct cmdline cl = {0};
    fs_opts_init(&cl.o);
    struct fuse_cmdline_opts copts = {0};
    struct fs_ctx *ctx = NULL;
    struct fuse_session *se = NULL;
    mfs_engine *engine = NULL;
    char *source = NULL;
    int status = 1;
    bool mounted = false, sd_started = false, ra_started = false;
    pthread_t sd_thread, ra_thread;
    /* One malloc arena: the memory outside the cache budget is small buffers (cache entries,
     * chunks under 64 KiB, headers) allocated and freed by whichever request thread gets there;
     * with glibc's default of one arena per thread (up to 8 per CPU) each keeps its own freed
     * memory, ~10 MiB more RSS over a run (test_mount_damaged), and the allocations are not hot
     * enough for the lock to matter. */
    mallopt(M_ARENA_MAX, 1);

    if (fuse_opt_parse(&args, &cl, NULL, opt_proc) == -1) {
        fprintf(stderr, "modelfs: %s\n%s", cl.err[0] ? cl.err : "bad arguments", g_usage);
        status = 2;
        goto out;
    }
    if (cl.help) {
        printf("%s\nFUSE options:\n", g_usage);
        fuse_cmdline_help();
        fuse_lowlevel_help();
        status = 0;
        goto out;
    }
    if (cl.version) {
        printf("modelfs %s\n", MFS_VERSION);
        fflush(stdout); /* before libfuse runs fusermount3 --version, which writes to our stdout */
        fuse_lowlevel_version();
        status = 0;
        goto out;
    }
    /* always read-only, whatever mount(8) passed ("rw" was dropped); no device files or setuid
     * bits are ever shown, say so to the kernel too */
    if (fuse_opt_add_arg(&args, "-oro,nosuid,nodev") || fuse_opt_add_arg(&args, "-osubtype=modelfs") ||
        (cl.o.allow_other && !cl.o.default_permissions && fuse_opt_add_arg(&args, "-odefault_permissions")) ||
        (cl.source && add_opt_escaped(&args, "fsname=", cl.source))) {
        fprintf(stderr, "modelfs: out of memory\n");
        goto out;
    }
    if (fuse_parse_cmdline(&args, &copts)) {
        status = 2;
        goto out;
    }
    if (!cl.source || !copts.mountpoint) {
        fprintf(stderr, "modelfs: %s\n%s", cl.source ? "no MOUNTPOINT" : "no SOURCE", g_usage);
        status = 2;
        goto out;
    }
    if (!(source = realpath(cl.source, NULL))) {
        fprintf(stderr, "modelfs: %s: %s\n", cl.source, strerror(errno));
        goto out;
    }
    struct stat mst;
    if (stat(copts.mountpoint, &mst) || !S_ISDIR(mst.st_mode)) {
        fprintf(stderr, "modelfs: %s: %s\n", copts.mountpoint, errno ? strerror(errno) : "not a directory");
        goto out;
    }
    if (path_inside(source, copts.mountpoint)) {
        fprintf(stderr, "modelfs: %s: the source cannot be inside the mountpoint %s\n", source, copts.mountpoint);
        goto out;
    }
    if (copts.debug)
        mfs_log_set_sink(NULL, NULL, MFS_LOG_DEBUG);

    /* every model keeps its source files open: allow as many as the hard limit does */
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    mfs_err err = {{0}};
    struct fs_ctx_config cfg = {.source = source, .align = cl.o.align};
    int rc = fs_ctx_create(&cfg, &ctx, &err);
    if (rc) {
        fprintf(stderr, "modelfs: %s\n", err.msg[0] ? err.msg : strerror(-rc));
        goto out;
    }
    /* the mountpoint may sit inside the source: hide it there, never look into it */
    fs_tree_hide(fs_ctx_tree(ctx), mst.st_dev, mst.st_ino);

    if (!(se = fuse_session_new(&args, fs_ops(), fs_ops_size(), ctx))) {
        status = 2; /* libfuse said why: an unknown option, nearly always */
        goto out;
    }
    if (set_signals()) {
        fprintf(stderr, "modelfs: signal handlers: %s\n", strerror(errno));
        goto out;
    }
    if (fuse_session_mount(se, copts.mountpoint))
        goto out;
    mounted = true;
    if (fuse_daemonize(copts.foreground))
        goto out;
    if (!copts.foreground) {
        openlog("modelfs", LOG_PID, LOG_DAEMON);
        mfs_log_set_sink(syslog_sink, NULL, copts.debug ? MFS_LOG_DEBUG : MFS_LOG_INFO);
        fuse_set_log_func(fuse_syslog);
    }

    /* threads only after fuse_daemonize forked */
    struct mfs_engine_config ec = {.cache_bytes = cl.o.cache, .threads = cl.o.threads};
    if ((rc = mfs_engine_create(&ec, &engine))) {
        mfs_log(MFS_LOG_ERROR, "cannot start the decode engine: %s", strerror(-rc));
        goto out;
    }
    fs_ctx_set_engine(ctx, engine);
    if ((rc = fs_ctx_start(ctx, se))) {
        mfs_log(MFS_LOG_ERROR, "cannot start the notifier: %s", strerror(-rc));
        goto out;
    }
    struct shutdown sd = {.se = se, .ctx = ctx, .mountpoint = copts.mountpoint};
    if (pthread_create(&sd_thread, NULL, shutdown_thread, &sd)) {
        mfs_log(MFS_LOG_ERROR, "cannot start the signal thread");
        goto out;
    }
    sd_started = true;
    struct readahead ra = {.mountpoint = copts.mountpoint, .bytes = cl.o.readahead};
    ra_started = cl.o.readahead && !pthread_create(&ra_thread, NULL, set_readahead, &ra);
    mfs_log(MFS_LOG_INFO, "%s mounted on %s (cache %" PRIu64 " MiB, align %u)", source, copts.mountpoint,
            cl.o.cache >> 20, cl.o.align);

    if (copts.singlethread) {
        rc = fuse_session_loop(se);
    } else {
        struct fuse_loop_config *lc = fuse_loop_cfg_create();
        if (!lc) {
            rc = -ENOMEM;
        } else {
            fuse_loop_cfg_set_clone_fd(lc, (unsigned)copts.clone_fd);
            if (copts.max_idle_threads != UINT_MAX) /* libfuse's "unset" */
                fuse_loop_cfg_set_idle_threads(lc, copts.max_idle_threads);
            fuse_loop_cfg_set_max_threads(lc, copts.max_threads);
            rc = fuse_session_loop_mt(se, lc);
            fuse_loop_cfg_destroy(lc);
        }
    }
    status = rc < 0 ? 1 : 0;
    if (rc < 0)
        mfs_log(MFS_LOG_ERROR, "session ended: %s", strerror(-rc));
    else
        mfs_log(MFS_LOG_INFO, "%s unmounted", copts.mountpoint);
out:
    if (ctx)
        fs_ctx_stop(ctx);
    if (mounted)
        fuse_session_unmount(se);
    /* after the unmount: a stat of theirs that the loop did not answer has failed by now */
    if (ra_started)
        pthread_join(ra_thread, NULL);
    if (sd_started) {
        unsigned char zero = 0;
        if (write(g_sig_pipe[1], &zero, 1) != 1)
            pthread_cancel(sd_thread);
        pthread_join(sd_thread, NULL);
    }
    if (se)
        fuse_session_destroy(se);
    fs_ctx_destroy(ctx);
    mfs_engine_destroy(engine);
    free(source);
    free(cl.source);
    free(copts.mountpoint);
    fuse_opt_free_args(&args);
    return status;
}
