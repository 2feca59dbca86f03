#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

/* Coalesce the events of one burst (a copy, a rename) into one refresh per directory. */
#define SETTLE_MS 20

/* What changes a cached name: entries gone, arriving over an old name, rewritten, chmod'ed.
 * IN_CREATE is only used for directories: a new file is looked at when its writer closes it
 * (a new name needs no invalidation, the kernel never cached it). */
#define MASK                                                                                       \
    (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | \
     IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)

struct watched {
    int wd;
    struct fs_entry *dir; /* reference */
    bool dirty;
};

struct fs_watch {
    struct fs_tree *t;
    int ifd;
    int wake[2]; /* a byte here stops the thread */
    pthread_t thread;
    pthread_mutex_t mu;
    struct watched *v; /* few: the directories someone listed */
    size_t n, cap;
    bool full_logged;
};

static struct watched *find_wd(struct fs_watch *w, int wd)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->v[i].wd == wd)
            return &w->v[i];
    return NULL;
}

static void drop_locked(struct fs_watch *w, struct watched *x)
{
    fs_entry_unref(x->dir);
    *x = w->v[--w->n];
}

void fs_watch_add(struct fs_watch *w, struct fs_entry *dir)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    int wd = inotify_add_watch(w->ifd, dir->path, MASK);
    if (wd < 0) {
        if (!w->full_logged) {
            w->full_logged = true;
            mfs_log(MFS_LOG_WARN, "%s: inotify: %s; changes there are found on the next open or listing", dir->path,
                    strerror(errno));
        }
        pthread_mutex_unlock(&w->mu);
        return;
    }
    struct watched *x = find_wd(w, wd);
    if (x) {
        /* the same directory inode: keep the newest entry for it */
        fs_entry_unref(x->dir);
        x->dir = fs_entry_ref(dir);
    } else {
        if (w->n == w->cap) {
            size_t cap = w->cap ? 2 * w->cap : 64;
            struct watched *v = realloc(w->v, cap * sizeof *v);
            if (!v) {
                inotify_rm_watch(w->ifd, wd);
                pthread_mutex_unlock(&w->mu);
                return;
            }
            w->v = v;
            w->cap = cap;
        }
        w->v[w->n++] = (struct watched){.wd = wd, .dir = fs_entry_ref(dir)};
    }
    pthread_mutex_unlock(&w->mu);
}

/* Read what is queued; mark directories dirty. */
static void drain(struct fs_watch *w)
{
    _Alignas(struct inotify_event) char buf[16384];
    for (;;) {
        ssize_t n = read(w->ifd, buf, sizeof buf);
        if (n <= 0)
            return; /* EAGAIN: nothing more for now */
        pthread_mutex_lock(&w->mu);
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                for (size_t i = 0; i < w->n; i++)
                    w->v[i].dirty = true;
                continue;
            }
            struct watched *x = find_wd(w, ev->wd);
            if (!x)
                continue;
            if (ev->mask & IN_IGNORED) {
                drop_locked(w, x);
                continue;
            }
            if ((ev->mask & IN_CREATE) && !(ev->mask & IN_ISDIR))
                continue;
            x->dirty = true;
        }
        pthread_mutex_unlock(&w->mu);
    }
}

/* Refresh the dirty directories, one at a time, without holding the lock. */
static void refresh(struct fs_watch *w)
{
    for (;;) {
        struct fs_entry *dir = NULL;
        pthread_mutex_lock(&w->mu);
        for (size_t i = 0; i < w->n && !dir; i++) {
            if (w->v[i].dirty) {
                w->v[i].dirty = false;
                dir = fs_entry_ref(w->v[i].dir);
            }
        }
        pthread_mutex_unlock(&w->mu);
        if (!dir)
            return;
        int rc = fs_tree_refresh(w->t, dir); /* -ESTALE: gone; inotify says IN_IGNORED next */
        mfs_log(MFS_LOG_DEBUG, "%s: changed, refreshed: %s", dir->path, rc ? strerror(-rc) : "ok");
        fs_entry_unref(dir);
    }
}

static void *run(void *arg)
{
    struct fs_watch *w = arg;
    struct pollfd pfd[2] = {{.fd = w->ifd, .events = POLLIN}, {.fd = w->wake[0], .events = POLLIN}};
    bool pending = false;
    for (;;) {
        int r = poll(pfd, 2, pending ? SETTLE_MS : -1);
        if (r < 0 && errno != EINTR)
            break;
        if (pfd[1].revents)
            break;
        if (r > 0 && pfd[0].revents) {
            drain(w);
            pending = true;
            continue; /* wait for the burst to settle */
        }
        if (pending) {
            refresh(w);
            pending = false;
        }
    }
    return NULL;
}

int fs_watch_create(struct fs_tree *t, struct fs_watch **out)
{
    struct fs_watch *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->t = t;
    w->wake[0] = w->wake[1] = -1;
    pthread_mutex_init(&w->mu, NULL);
    int rc;
    w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->ifd < 0 || pipe2(w->wake, O_CLOEXEC)) {
        rc = -errno;
        goto fail;
    }
    if ((rc = -pthread_create(&w->thread, NULL, run, w)))
        goto fail;
    *out = w;
    return 0;
fail:
    if (w->ifd >= 0)
        close(w->ifd);
    if (w->wake[0] >= 0) {
        close(w->wake[0]);
        close(w->wake[1]);
    }
    pthread_mutex_destroy(&w->mu);
    free(w);
    return rc;
}

void fs_watch_destroy(struct fs_watch *w)
{
    if (!w)
        return;
    char c = 1;
    while (write(w->wake[1], &c, 1) < 0 && errno == EINTR)
        ;
    pthread_join(w->thread, NULL);
    for (size_t i = 0; i < w->n; i++)
        fs_entry_unref(w->v[i].dir);
    free(w->v);
    close(w->ifd);
    close(w->wake[0]);
    close(w->wake[1]);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
