#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "mfs_ggml.h"
#include "mfs_model.h"
#include "watch.h"

/* Snapshots are immutable while their source is unchanged, and changes are found on open,
 * lookup and getattr: the kernel may cache names and attributes for a long time. */
#define LONG_TIMEOUT 86400.0

/* Inode numbers below FS_FIRST_INO that are not the root. */
#define CTL_INO 2u   /* .modelfs/ */
#define STATS_INO 3u /* .modelfs/stats */
#define CTL_NAME ".modelfs"
#define STATS_NAME "stats"

#define NOTIFY_QUEUE_MAX 4096

enum node_kind { N_DIR, N_FILE, N_LINK, N_GGUF, N_TENSORS, N_META, N_TENSOR, N_CTL, N_STATS };

/* What the kernel knows under one inode number. `e` and `dir` are references. */
struct node {
    struct node *next;  /* hash chain */
    uint64_t ino;
    uint64_t nlookup;
    enum node_kind kind;
    struct fs_entry *e;   /* NULL for N_CTL, N_STATS */
    struct fs_entry *dir; /* the directory it was looked up in; NULL for the root and N_TENSOR */
    char *name;           /* its name there */
    uint64_t tensor;      /* N_TENSOR */
};

/* One open file or directory. */
struct handle {
    struct handle *prev, *next; /* every open handle, so that teardown releases what the kernel
                                   never released (a connection ended with files open) */
    enum node_kind kind;
    mfs_model *model;       /* N_GGUF, N_TENSOR, N_META */
    uint64_t base, size;    /* the file is [base, base + size) of the model's snapshot */
    int fd;                 /* N_FILE */
    struct stat st;         /* N_FILE: the version opened */
    const char *text;       /* N_META (the model's), N_STATS (owned) */
    char *owned;
    /* directories */
    struct fs_entry *e;     /* N_TENSORS */
    struct fs_dirent *ents; /* N_DIR, N_CTL */
    size_t n_ents;
    uint64_t self_ino, parent_ino;
};

struct notice {
    struct notice *next;
    uint64_t parent;
    char name[];
};

struct fs_ctx {
    struct fs_tree *tree;
    struct mfs_model_opts mopts;
    mfs_engine *engine;
    struct timespec started;

    pthread_mutex_t mu; /* the node table */
    struct node **buckets;
    size_t n_buckets, n_nodes;
    struct node *root, *ctl, *stats;

    /* notifier */
    pthread_mutex_t nmu;
    pthread_cond_t ncv;
    struct notice *nq_head, *nq_tail;
    size_t nq_len;
    bool nstop, nstarted;
    bool in_notify; /* the notifier is inside a notify call */
    pthread_t nthread;
    struct fuse_session *se;
    struct fs_watch *watch; /* NULL without inotify */

    pthread_key_t buf_key; /* per-thread read buffer */

    pthread_mutex_t hmu; /* the list of open handles */
    struct handle handles; /* list head */

    atomic_uint_fast64_t reads, bytes_served, read_errors, opens, lookups, stale, notices, dropped_notices;
};

static void handle_free(struct fs_ctx *c, struct handle *h);

/* ---------------------------------------------------------------- node table */

static size_t bucket_of(const struct fs_ctx *c, uint64_t ino)
{
    return (size_t)((ino * 0x9E3779B97F4A7C15ull) >> 20) & (c->n_buckets - 1);
}

static struct node *find_locked(struct fs_ctx *c, uint64_t ino)
{
    for (struct node *n = c->buckets[bucket_of(c, ino)]; n; n = n->next)
        if (n->ino == ino)
            return n;
    return NULL;
}

static void grow_locked(struct fs_ctx *c)
{
    size_t nb = c->n_buckets * 2;
    struct node **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    struct node **old = c->buckets;
    size_t on = c->n_buckets;
    c->buckets = b;
    c->n_buckets = nb;
    for (size_t i = 0; i < on; i++) {
        for (struct node *n = old[i], *next; n; n = next) {
            next = n->next;
            size_t k = bucket_of(c, n->ino);
            n->next = b[k];
            b[k] = n;
        }
    }
    free(old);
}

static void node_free(struct node *n)
{
    if (!n)
        return;
    fs_entry_unref(n->e);
    fs_entry_unref(n->dir);
    free(n->name);
    free(n);
}

/* A node the kernel holds (its lookup count is > 0 while a request names it). */
static struct node *node_get(struct fs_ctx *c, uint64_t ino)
{
    pthread_mutex_lock(&c->mu);
    struct node *n = find_locked(c, ino);
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* The node for `tmpl->ino`, created from `tmpl` (whose references it takes over) if new, with its
 * lookup count raised by one. `tmpl` is consumed either way. NULL if out of memory. */
static struct node *node_lookup(struct fs_ctx *c, struct node *tmpl)
{
    pthread_mutex_lock(&c->mu);
    struct node *n = find_locked(c, tmpl->ino);
    if (!n) {
        n = malloc(sizeof *n);
        if (n) {
            *n = *tmpl;
            n->nlookup = 0;
            size_t k = bucket_of(c, n->ino);
            n->next = c->buckets[k];
            c->buckets[k] = n;
            if (++c->n_nodes > 2 * c->n_buckets)
                grow_locked(c);
            tmpl->e = tmpl->dir = NULL;
            tmpl->name = NULL;
        }
    }
    if (n)
        n->nlookup++;
    pthread_mutex_unlock(&c->mu);
    fs_entry_unref(tmpl->e);
    fs_entry_unref(tmpl->dir);
    free(tmpl->name);
    return n;
}

static void node_forget(struct fs_ctx *c, uint64_t ino, uint64_t nlookup)
{
    if (ino < FS_FIRST_INO)
        return; /* the root and .modelfs live as long as the mount */
    struct node *dead = NULL;
    pthread_mutex_lock(&c->mu);
    struct node **p = &c->buckets[bucket_of(c, ino)];
    while (*p && (*p)->ino != ino)
        p = &(*p)->next;
    struct node *n = *p;
    if (n) {
        n->nlookup = nlookup >= n->nlookup ? 0 : n->nlookup - nlookup;
        if (!n->nlookup) {
            *p = n->next;
            c->n_nodes--;
            dead = n;
        }
    }
    pthread_mutex_unlock(&c->mu);
    node_free(dead); /* may close a model: outside the lock */
}

/* ---------------------------------------------------------------- notifier */

/* fs_tree's callback: a name in directory `dir_ino` changed meaning. Invalidating a dentry takes
 * the directory's lock in the kernel, which the request that found the change may hold: the
 * notifier thread does it once that request is answered. */
static void on_changed(void *user, uint64_t dir_ino, const char *name)
{
    struct fs_ctx *c = user;
    size_t len = strlen(name);
    struct notice *q = malloc(sizeof *q + len + 1);
    if (!q)
        return;
    q->next = NULL;
    q->parent = dir_ino;
    memcpy(q->name, name, len + 1);
    pthread_mutex_lock(&c->nmu);
    if (!c->nstarted || c->nstop || c->nq_len >= NOTIFY_QUEUE_MAX) {
        pthread_mutex_unlock(&c->nmu);
        atomic_fetch_add(&c->dropped_notices, 1);
        free(q);
        return;
    }
    if (c->nq_tail)
        c->nq_tail->next = q;
    else
        c->nq_head = q;
    c->nq_tail = q;
    c->nq_len++;
    pthread_cond_signal(&c->ncv);
    pthread_mutex_unlock(&c->nmu);
}

static void *notifier(void *arg)
{
    struct fs_ctx *c = arg;
    pthread_mutex_lock(&c->nmu);
    for (;;) {
        while (!c->nq_head && !c->nstop)
            pthread_cond_wait(&c->ncv, &c->nmu);
        if (c->nstop)
            break;
        struct notice *q = c->nq_head;
        c->nq_head = q->next;
        if (!c->nq_head)
            c->nq_tail = NULL;
        c->nq_len--;
        c->in_notify = true;
        pthread_mutex_unlock(&c->nmu);
        /* -ENOENT: the kernel has no such dentry; nothing to do */
        int rc = fuse_lowlevel_notify_inval_entry(c->se, q->parent, q->name, strlen(q->name));
        mfs_log(MFS_LOG_DEBUG, "invalidate %s in directory %" PRIu64 ": %s", q->name, q->parent,
                rc ? strerror(-rc) : "done");
        atomic_fetch_add(&c->notices, 1);
        free(q);
        pthread_mutex_lock(&c->nmu);
        c->in_notify = false;
        pthread_cond_broadcast(&c->ncv);
    }
    pthread_mutex_unlock(&c->nmu);
    return NULL;
}

static void on_listed(void *user, struct fs_entry *dir)
{
    struct fs_ctx *c = user;
    pthread_mutex_lock(&c->nmu); /* fs_ctx_stop may be taking the watch away */
    fs_watch_add(c->watch, dir);
    pthread_mutex_unlock(&c->nmu);
}

int fs_ctx_start(struct fs_ctx *c, struct fuse_session *se)
{
    c->se = se;
    int wrc = fs_watch_create(c->tree, &c->watch);
    if (wrc)
        mfs_log(MFS_LOG_WARN, "inotify: %s; source changes are found on open, lookup and listing only",
                strerror(-wrc));
    pthread_mutex_lock(&c->nmu);
    c->nstop = false;
    int rc = pthread_create(&c->nthread, NULL, notifier, c);
    c->nstarted = rc == 0;
    pthread_mutex_unlock(&c->nmu);
    return -rc;
}

void fs_ctx_stop(struct fs_ctx *c)
{
    pthread_mutex_lock(&c->nmu); /* the signal thread and main may both get here */
    struct fs_watch *w = c->watch;
    c->watch = NULL;
    pthread_mutex_unlock(&c->nmu);
    fs_watch_destroy(w); /* it feeds the notifier */
    /* No notification starts from now on. One under way may be waiting for a directory lock that a
     * request nobody will answer holds (the session loop has ended): give it a moment, then let
     * the unmount abort the connection, which releases it. It already holds the device file, so
     * closing the session's descriptor cannot redirect it. */
    pthread_mutex_lock(&c->nmu);
    c->nstop = true;
    pthread_cond_broadcast(&c->ncv);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    while (c->in_notify && pthread_cond_timedwait(&c->ncv, &c->nmu, &until) == 0)
        ;
    pthread_mutex_unlock(&c->nmu);
}

/* After the unmount: the notifier has nothing left to wait for. */
static void notifier_join(struct fs_ctx *c)
{
    pthread_mutex_lock(&c->nmu);
    bool started = c->nstarted;
    c->nstop = true;
    c->nstarted = false;
    pthread_cond_broadcast(&c->ncv);
    pthread_mutex_unlock(&c->nmu);
    if (started)
        pthread_join(c->nthread, NULL);
    for (struct notice *q = c->nq_head, *next; q; q = next) {
        next = q->next;
        free(q);
    }
    c->nq_head = c->nq_tail = NULL;
    c->nq_len = 0;
}

/* ---------------------------------------------------------------- context */

static void free_buf(void *p)
{
    free(p);
}

int fs_ctx_create(const struct fs_ctx_config *cfg, struct fs_ctx **out, mfs_err *err)
{
    struct fs_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    clock_gettime(CLOCK_REALTIME, &c->started);
    c->mopts.align = cfg->align;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->nmu, NULL);
    pthread_mutex_init(&c->hmu, NULL);
    c->handles.next = c->handles.prev = &c->handles;
    pthread_cond_init(&c->ncv, NULL);
    int rc = -ENOMEM;
    if (pthread_key_create(&c->buf_key, free_buf)) {
        free(c);
        return -ENOMEM;
    }
    c->n_buckets = 1024;
    if (!(c->buckets = calloc(c->n_buckets, sizeof *c->buckets)))
        goto fail;
    struct fs_tree_config tc = {
        .root = cfg->source, .model = c->mopts, .changed = on_changed, .listed = on_listed, .user = c};
    if ((rc = fs_tree_create(&tc, &c->tree, err)))
        goto fail;
    rc = -ENOMEM;
    struct node root = {.ino = FS_ROOT_INO, .kind = N_DIR, .e = fs_entry_ref(fs_tree_root(c->tree))};
    struct node ctl = {.ino = CTL_INO, .kind = N_CTL};
    struct node stats = {.ino = STATS_INO, .kind = N_STATS};
    if (!(c->root = node_lookup(c, &root)) || !(c->ctl = node_lookup(c, &ctl)) || !(c->stats = node_lookup(c, &stats)))
        goto fail;
    *out = c;
    return 0;
fail:
    fs_ctx_destroy(c);
    return rc;
}

void fs_ctx_destroy(struct fs_ctx *c)
{
    if (!c)
        return;
    fs_watch_destroy(c->watch);
    notifier_join(c);
    while (c->handles.next != &c->handles)
        handle_free(c, c->handles.next);
    for (size_t i = 0; c->buckets && i < c->n_buckets; i++) {
        for (struct node *n = c->buckets[i], *next; n; n = next) {
            next = n->next;
            node_free(n);
        }
    }
    free(c->buckets);
    fs_tree_destroy(c->tree);
    pthread_key_delete(c->buf_key);
    pthread_cond_destroy(&c->ncv);
    pthread_mutex_destroy(&c->hmu);
    pthread_mutex_destroy(&c->nmu);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

struct fs_tree *fs_ctx_tree(struct fs_ctx *c)
{
    return c->tree;
}

void fs_ctx_set_engine(struct fs_ctx *c, mfs_engine *e)
{
    c->engine = e;
    c->mopts.engine = e;
    /* the tree copied the options at creation: give it the engine too */
    fs_tree_set_engine(c->tree, e);
}

/* ---------------------------------------------------------------- attributes */

static const struct mfs_gguf_tensor *node_tensor(const struct node *n)
{
    return mfs_gguf_tensor(mfs_model_gguf(n->e->model), n->tensor);
}

static void set_times(struct stat *st, struct timespec t)
{
    st->st_atim = st->st_mtim = st->st_ctim = t;
}

static void node_attr(struct fs_ctx *c, const struct node *n, struct stat *st)
{
    memset(st, 0, sizeof *st);
    st->st_ino = n->ino;
    st->st_nlink = 1;
    const struct stat *src = n->e ? &n->e->st : NULL;
    if (src) {
        st->st_uid = src->st_uid;
        st->st_gid = src->st_gid;
    }
    mode_t r = src ? src->st_mode & 0444 : 0444; /* read bits of the source */
    switch (n->kind) {
    case N_DIR:
        st->st_mode = S_IFDIR | (src->st_mode & 0555);
        st->st_nlink = 2;
        st->st_size = src->st_size;
        st->st_atim = src->st_atim;
        st->st_mtim = src->st_mtim;
        st->st_ctim = src->st_ctim;
        break;
    case N_FILE:
    case N_LINK:
        st->st_mode = n->kind == N_LINK ? S_IFLNK | 0777 : S_IFREG | (src->st_mode & 0555);
        st->st_size = src->st_size;
        st->st_atim = src->st_atim;
        st->st_mtim = src->st_mtim;
        st->st_ctim = src->st_ctim;
        break;
    case N_GGUF:
        st->st_mode = S_IFREG | r;
        st->st_size = (off_t)mfs_model_size(n->e->model);
        set_times(st, mfs_model_mtime(n->e->model));
        break;
    case N_TENSORS:
        st->st_mode = S_IFDIR | r | (r >> 2); /* searchable by whoever may read */
        st->st_nlink = 2;
        set_times(st, mfs_model_mtime(n->e->model));
        break;
    case N_META: {
        size_t len = 0;
        mfs_model_meta(n->e->model, &len);
        st->st_mode = S_IFREG | r;
        st->st_size = (off_t)len;
        set_times(st, mfs_model_mtime(n->e->model));
        break;
    }
    case N_TENSOR:
        st->st_mode = S_IFREG | r;
        st->st_size = (off_t)node_tensor(n)->size;
        set_times(st, mfs_model_mtime(n->e->model));
        break;
    case N_CTL:
        st->st_mode = S_IFDIR | 0555;
        st->st_nlink = 2;
        set_times(st, c->started);
        break;
    case N_STATS: {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        st->st_mode = S_IFREG | 0444;
        set_times(st, now); /* size 0, read with direct_io: like a /proc file */
        break;
    }
    }
    st->st_blocks = (st->st_size + 511) / 512;
}

static double attr_timeout(const struct node *n)
{
    return n->kind == N_STATS ? 0.0 : LONG_TIMEOUT;
}

/* Is the node still what its name resolves to? Called where the kernel can walk the path again
 * on ESTALE (open, opendir, readlink, stat). */
static bool node_current(struct fs_ctx *c, const struct node *n)
{
    switch (n->kind) {
    case N_CTL:
    case N_STATS:
        return true;
    case N_TENSOR:
        return !fs_tree_model_changed(n->e);
    default:
        if (!n->dir)
            return true; /* the root */
        return fs_tree_current(c->tree, n->dir, n->name, n->e,
                               n->kind == N_TENSORS ? FS_VIEW_TENSORS : n->kind == N_META ? FS_VIEW_META : FS_VIEW_MAIN);
    }
}

/* ---------------------------------------------------------------- replies */

static struct fs_ctx *ctx_of(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static void reply_err(fuse_req_t req, int rc)
{
    if (rc == -ESTALE)
        atomic_fetch_add(&ctx_of(req)->stale, 1);
    fuse_reply_err(req, -rc); /* the one place a negative errno changes sign */
}

/* ---------------------------------------------------------------- operations */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    /* we invalidate explicitly; the kernel must never drop decoded pages on its own */
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
    if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA)
        conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
    if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
        conn->want |= FUSE_CAP_CACHE_SYMLINKS;
    /* readahead of a sequential reader goes out as several 1 MiB requests at once */
    if (conn->max_background < 64)
        conn->max_background = 64;
    conn->congestion_threshold = conn->max_background * 3 / 4;
    mfs_log(MFS_LOG_DEBUG, "kernel FUSE %u.%u: capable 0x%x, want 0x%x, max_write %u, max_readahead %u", conn->proto_major,
            conn->proto_minor, conn->capable, conn->want, conn->max_write, conn->max_readahead);
}

static int child(struct fs_ctx *c, struct node *p, const char *name, struct node *out)
{
    memset(out, 0, sizeof *out);
    switch (p->kind) {
    case N_DIR: {
        if (p->ino == FS_ROOT_INO && !strcmp(name, CTL_NAME)) {
            out->ino = CTL_INO;
            out->kind = N_CTL;
            return 0;
        }
        struct fs_entry *e;
        enum fs_view view;
        int rc = fs_tree_lookup(c->tree, p->e, name, &e, &view);
        if (rc)
            return rc;
        out->e = e;
        out->ino = e->ino + (uint64_t)view;
        out->dir = fs_entry_ref(p->e);
        out->name = strdup(name);
        if (!out->name) {
            fs_entry_unref(out->e);
            fs_entry_unref(out->dir);
            return -ENOMEM;
        }
        switch (e->kind) {
        case FS_DIR: out->kind = N_DIR; break;
        case FS_FILE: out->kind = N_FILE; break;
        case FS_LINK: out->kind = N_LINK; break;
        case FS_MODEL:
            out->kind = view == FS_VIEW_TENSORS ? N_TENSORS : view == FS_VIEW_META ? N_META : N_GGUF;
            break;
        }
        return 0;
    }
    case N_TENSORS: {
        if (fs_tree_model_changed(p->e))
            return -ESTALE;
        int rc = fs_tree_find_tensor(p->e, name, &out->tensor);
        if (rc)
            return rc;
        out->kind = N_TENSOR;
        out->e = fs_entry_ref(p->e);
        out->ino = p->e->ino + FS_TENSOR_INO0 + out->tensor;
        return 0;
    }
    case N_CTL:
        if (strcmp(name, STATS_NAME))
            return -ENOENT;
        out->ino = STATS_INO;
        out->kind = N_STATS;
        return 0;
    default:
        return -ENOTDIR;
    }
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct fs_ctx *c = ctx_of(req);
    atomic_fetch_add(&c->lookups, 1);
    struct node *p = node_get(c, parent);
    if (!p) {
        reply_err(req, -ESTALE);
        return;
    }
    struct node tmpl;
    int rc = child(c, p, name, &tmpl);
    if (rc) {
        reply_err(req, rc);
        return;
    }
    struct node *n = node_lookup(c, &tmpl);
    if (!n) {
        reply_err(req, -ENOMEM);
        return;
    }
    struct fuse_entry_param ep = {.ino = n->ino, .attr_timeout = attr_timeout(n), .entry_timeout = LONG_TIMEOUT};
    node_attr(c, n, &ep.attr);
    if (fuse_reply_entry(req, &ep))
        node_forget(c, n->ino, 1); /* the kernel did not get it */
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    node_forget(ctx_of(req), ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
    for (size_t i = 0; i < count; i++)
        node_forget(ctx_of(req), forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs_ctx *c = ctx_of(req);
    struct node *n = node_get(c, ino);
    if (!n) {
        reply_err(req, -ESTALE);
        return;
    }
    /* fstat on an open file describes the version it opened; stat by name finds the new one */
    if (!fi && !node_current(c, n)) {
        reply_err(req, -ESTALE);
        return;
    }
    struct stat st;
    node_attr(c, n, &st);
    fuse_reply_attr(req, &st, attr_timeout(n));
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    struct fs_ctx *c = ctx_of(req);
    struct node *n = node_get(c, ino);
    if (!n || n->kind != N_LINK) {
        reply_err(req, n ? -EINVAL : -ESTALE);
        return;
    }
    char buf[4097];
    ssize_t len = fs_tree_readlink(c->tree, n->e, buf, sizeof buf - 1);
    if (len < 0) {
        reply_err(req, (int)len);
        return;
    }
    buf[len] = '\0';
    fuse_reply_readlink(req, buf);
}

static void handle_free(struct fs_ctx *c, struct handle *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&c->hmu);
    h->prev->next = h->next;
    h->next->prev = h->prev;
    pthread_mutex_unlock(&c->hmu);
    mfs_model_unref(h->model);
    if (h->fd >= 0)
        close(h->fd);
    free(h->owned);
    fs_entry_unref(h->e);
    fs_dirents_free(h->ents, h->n_ents);
    free(h);
}

static struct handle *handle_new(struct fs_ctx *c, enum node_kind kind)
{
    struct handle *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->kind = kind;
    h->fd = -1;
    pthread_mutex_lock(&c->hmu);
    h->next = c->handles.next;
    h->prev = &c->handles;
    h->next->prev = h;
    c->handles.next = h;
    pthread_mutex_unlock(&c->hmu);
    return h;
}

static int open_file(struct fs_ctx *c, struct node *n, struct handle *h, struct fuse_file_info *fi)
{
    fi->keep_cache = 1;
    fi->noflush = 1;
    switch (n->kind) {
    case N_FILE: {
        int fd = fs_tree_open_file(c->tree, n->e);
        if (fd < 0)
            return fd;
        h->fd = fd;
        h->st = n->e->st;
        h->size = (uint64_t)n->e->st.st_size;
        return 0;
    }
    case N_GGUF:
        h->model = mfs_model_ref(n->e->model);
        h->size = mfs_model_size(h->model);
        return 0;
    case N_TENSOR: {
        const struct mfs_gguf_tensor *t = node_tensor(n);
        h->model = mfs_model_ref(n->e->model);
        h->base = mfs_model_data_offset(h->model) + t->offset;
        h->size = t->size;
        return 0;
    }
    case N_META: {
        size_t len = 0;
        h->model = mfs_model_ref(n->e->model);
        h->text = mfs_model_meta(h->model, &len);
        h->size = len;
        return h->text ? 0 : -ENOMEM;
    }
    case N_STATS: {
        size_t len;
        if (!(h->owned = fs_ctx_stats_text(c, &len)))
            return -ENOMEM;
        h->text = h->owned;
        h->size = len;
        /* a fresh snapshot at every open, whatever its size: no page cache */
        fi->keep_cache = 0;
        fi->direct_io = 1;
        return 0;
    }
    case N_DIR:
    case N_TENSORS:
    case N_CTL:
        return -EISDIR;
    default:
        return -EINVAL;
    }
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs_ctx *c = ctx_of(req);
    atomic_fetch_add(&c->opens, 1);
    if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
        reply_err(req, -EROFS);
        return;
    }
    struct node *n = node_get(c, ino);
    if (!n) {
        reply_err(req, -ESTALE);
        return;
    }
    if (!node_current(c, n)) {
        reply_err(req, -ESTALE); /* the kernel looks the path up again and opens the new version */
        return;
    }
    struct handle *h = handle_new(c, n->kind);
    int rc = h ? open_file(c, n, h, fi) : -ENOMEM;
    if (rc) {
        handle_free(c, h);
        reply_err(req, rc);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    if (fuse_reply_open(req, fi))
        handle_free(c, h); /* interrupted: no release will come */
}

/* A buffer of at least `size` bytes owned by the calling thread. */
static void *thread_buf(struct fs_ctx *c, size_t size)
{
    struct tbuf {
        size_t cap;
        max_align_t data[];
    } *b = pthread_getspecific(c->buf_key);
    if (!b || b->cap < size) {
        size_t cap = size < (1u << 20) ? (1u << 20) : size;
        free(b);
        b = malloc(sizeof *b + cap);
        pthread_setspecific(c->buf_key, b);
        if (!b)
            return NULL;
        b->cap = cap;
    }
    return b->data;
}

static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return done ? (ssize_t)done : -errno;
        if (r == 0)
            break;
        done += (size_t)r;
    }
    return (ssize_t)done;
}

/* A pass-through file, checked like the loader checks model sources: bytes read after the file
 * changed in place may mix versions, so they are not served (ESTALE; a new open sees the new file). */
static ssize_t file_read(struct handle *h, void *buf, size_t len, uint64_t off)
{
    ssize_t n = pread_full(h->fd, buf, len, off);
    struct stat st;
    if (n >= 0 && (fstat(h->fd, &st) || st.st_size != h->st.st_size || st.st_mtim.tv_sec != h->st.st_mtim.tv_sec ||
                   st.st_mtim.tv_nsec != h->st.st_mtim.tv_nsec))
        return -ESTALE;
    return n;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)ino;
    struct fs_ctx *c = ctx_of(req);
    struct handle *h = (struct handle *)(uintptr_t)fi->fh;
    if (h->kind != N_STATS)
        atomic_fetch_add_explicit(&c->reads, 1, memory_order_relaxed);
    uint64_t o = (uint64_t)off;
    if (off < 0 || (h->kind != N_FILE && o >= h->size)) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    size_t len = h->kind == N_FILE || size <= h->size - o ? size : (size_t)(h->size - o);
    ssize_t n;
    const void *data;
    switch (h->kind) {
    case N_META:
    case N_STATS: {
        /* copied: once the kernel has the reply, a RELEASE on another thread may free the text
         * before fuse_reply_buf returns here */
        void *buf = thread_buf(c, len);
        if (!buf) {
            reply_err(req, -ENOMEM);
            return;
        }
        memcpy(buf, h->text + o, len);
        data = buf;
        n = (ssize_t)len;
        break;
    }
    case N_FILE:
    case N_GGUF:
    case N_TENSOR: {
        void *buf = thread_buf(c, len);
        if (!buf) {
            reply_err(req, -ENOMEM);
            return;
        }
        n = h->kind == N_FILE ? file_read(h, buf, len, o) : mfs_model_read(h->model, buf, len, h->base + o);
        data = buf;
        break;
    }
    default:
        n = -EISDIR;
        data = NULL;
        break;
    }
    if (n < 0) {
        atomic_fetch_add(&c->read_errors, 1);
        reply_err(req, (int)n);
        return;
    }
    if (h->kind != N_STATS)
        atomic_fetch_add_explicit(&c->bytes_served, (uint64_t)n, memory_order_relaxed);
    fuse_reply_buf(req, data, (size_t)n);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    handle_free(ctx_of(req), (struct handle *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct fs_ctx *c = ctx_of(req);
    struct node *n = node_get(c, ino);
    if (!n) {
        reply_err(req, -ESTALE);
        return;
    }
    if (n->kind != N_DIR && n->kind != N_TENSORS && n->kind != N_CTL) {
        reply_err(req, -ENOTDIR);
        return;
    }
    if (!node_current(c, n)) {
        reply_err(req, -ESTALE);
        return;
    }
    struct handle *h = handle_new(c, n->kind);
    if (!h) {
        reply_err(req, -ENOMEM);
        return;
    }
    h->self_ino = n->ino;
    h->parent_ino = n->dir ? n->dir->ino : FS_ROOT_INO;
    int rc = 0;
    if (n->kind == N_DIR) {
        rc = fs_tree_readdir(c->tree, n->e, &h->ents, &h->n_ents);
    } else if (n->kind == N_TENSORS) {
        h->e = fs_entry_ref(n->e);
    } else {
        h->ents = calloc(1, sizeof *h->ents);
        if (h->ents && (h->ents[0].name = strdup(STATS_NAME))) {
            h->ents[0].ino = STATS_INO;
            h->ents[0].type = S_IFREG;
            h->n_ents = 1;
        } else {
            rc = -ENOMEM;
        }
    }
    if (!rc && n->ino == FS_ROOT_INO) {
        /* .modelfs goes first in the root */
        struct fs_dirent *d = realloc(h->ents, (h->n_ents + 1) * sizeof *d);
        char *nm = strdup(CTL_NAME);
        if (d && nm) {
            memmove(d + 1, d, h->n_ents * sizeof *d);
            d[0] = (struct fs_dirent){.name = nm, .ino = CTL_INO, .type = S_IFDIR};
            h->ents = d;
            h->n_ents++;
        } else {
            if (d)
                h->ents = d;
            free(nm);
            rc = -ENOMEM;
        }
    }
    if (rc) {
        handle_free(c, h);
        reply_err(req, rc);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    if (fuse_reply_open(req, fi))
        handle_free(c, h);
}

enum { DIR_END, DIR_ENTRY, DIR_SKIP };

/* Entry `i` of an open directory: ".", "..", then the listing. Name in `*name` (may point into
 * `scratch`, of `cap` bytes). DIR_END past the end; DIR_SKIP for a tensor that has no file (its
 * escaped name is over NAME_MAX): the tensors after it are still listed. */
static int dir_entry(struct handle *h, uint64_t i, const char **name, char **scratch, size_t *cap, struct stat *st)
{
    memset(st, 0, sizeof *st);
    if (i < 2) {
        *name = i ? ".." : ".";
        st->st_ino = i ? h->parent_ino : h->self_ino;
        st->st_mode = S_IFDIR;
        return DIR_ENTRY;
    }
    i -= 2;
    if (h->kind != N_TENSORS) {
        if (i >= h->n_ents)
            return DIR_END;
        *name = h->ents[i].name;
        st->st_ino = h->ents[i].ino;
        st->st_mode = h->ents[i].type;
        return DIR_ENTRY;
    }
    const mfs_gguf *g = mfs_model_gguf(h->e->model);
    if (i >= mfs_gguf_n_tensors(g))
        return DIR_END;
    const struct mfs_gguf_tensor *t = mfs_gguf_tensor(g, i);
    size_t need = 3 * t->name.len + 1;
    if (need > *cap) {
        char *s = realloc(*scratch, need);
        if (!s)
            return DIR_END;
        *scratch = s;
        *cap = need;
    }
    if (!mfs_model_tensor_filename(t->name.p, t->name.len, *scratch, *cap))
        return DIR_SKIP;
    *name = *scratch;
    st->st_ino = h->e->ino + FS_TENSOR_INO0 + i;
    st->st_mode = S_IFREG;
    return DIR_ENTRY;
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
    (void)ino;
    struct handle *h = (struct handle *)(uintptr_t)fi->fh;
    char *buf = malloc(size ? size : 1);
    if (!buf || off < 0) {
        free(buf);
        reply_err(req, off < 0 ? -EINVAL : -ENOMEM);
        return;
    }
    size_t pos = 0, cap = 0;
    char *scratch = NULL;
    const char *name;
    struct stat st;
    for (uint64_t i = (uint64_t)off;; i++) {
        int r = dir_entry(h, i, &name, &scratch, &cap, &st);
        if (r == DIR_END)
            break;
        if (r == DIR_SKIP)
            continue;
        size_t need = fuse_add_direntry(req, buf + pos, size - pos, name, &st, (off_t)(i + 1));
        if (need > size - pos)
            break;
        pos += need;
    }
    free(scratch);
    fuse_reply_buf(req, buf, pos);
    free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino;
    handle_free(ctx_of(req), (struct handle *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    struct statvfs sv;
    if (fstatvfs(fs_tree_root_fd(ctx_of(req)->tree), &sv)) {
        reply_err(req, -errno);
        return;
    }
    sv.f_flag |= ST_RDONLY;
    fuse_reply_statfs(req, &sv);
}

#define XATTR_TYPE "user.ggml.type"
#define XATTR_SHAPE "user.ggml.shape"
#define XATTR_OFFSET "user.gguf.offset"

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
    struct fs_ctx *c = ctx_of(req);
    struct node *n = node_get(c, ino);
    if (!n || n->kind != N_TENSOR) {
        reply_err(req, n ? -ENODATA : -ESTALE);
        return;
    }
    const struct mfs_gguf_tensor *t = node_tensor(n);
    char val[512];
    int len;
    if (!strcmp(name, XATTR_TYPE)) {
        const char *s = mfs_ggml_type_name(t->type);
        len = snprintf(val, sizeof val, "%s", s ? s : "?");
    } else if (!strcmp(name, XATTR_SHAPE)) {
        int rc = mfs_model_shape_str(t, val, sizeof val);
        len = rc < 0 ? rc : (int)strnlen(val, sizeof val);
    } else if (!strcmp(name, XATTR_OFFSET)) {
        len = snprintf(val, sizeof val, "%" PRIu64, mfs_model_data_offset(n->e->model) + t->offset);
    } else {
        reply_err(req, -ENODATA);
        return;
    }
    if (len < 0 || (size_t)len >= sizeof val) {
        reply_err(req, -EIO);
        return;
    }
    if (size == 0)
        fuse_reply_xattr(req, (size_t)len);
    else if (size < (size_t)len)
        reply_err(req, -ERANGE);
    else
        fuse_reply_buf(req, val, (size_t)len);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
    static const char list[] = XATTR_TYPE "\0" XATTR_SHAPE "\0" XATTR_OFFSET;
    struct node *n = node_get(ctx_of(req), ino);
    size_t len = n && n->kind == N_TENSOR ? sizeof list : 0;
    if (size == 0)
        fuse_reply_xattr(req, len);
    else if (size < len)
        reply_err(req, -ERANGE);
    else
        fuse_reply_buf(req, list, len);
}

/* ---- everything that would write: the mount is read-only */

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
    (void)ino, (void)attr, (void)to_set, (void)fi;
    reply_err(req, -EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
    (void)parent, (void)name, (void)mode, (void)rdev;
    reply_err(req, -EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
    (void)parent, (void)name, (void)mode;
    reply_err(req, -EROFS);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    (void)parent, (void)name;
    reply_err(req, -EROFS);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
    (void)link, (void)parent, (void)name;
    reply_err(req, -EROFS);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent, const char *newname,
                      unsigned int flags)
{
    (void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
    reply_err(req, -EROFS);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
    (void)ino, (void)newparent, (void)newname;
    reply_err(req, -EROFS);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
    (void)ino, (void)buf, (void)size, (void)off, (void)fi;
    reply_err(req, -EROFS);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
    (void)parent, (void)name, (void)mode, (void)fi;
    reply_err(req, -EROFS);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags)
{
    (void)ino, (void)name, (void)value, (void)size, (void)flags;
    reply_err(req, -EROFS);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
    (void)ino, (void)name;
    reply_err(req, -EROFS);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                         struct fuse_file_info *fi)
{
    (void)ino, (void)mode, (void)offset, (void)length, (void)fi;
    reply_err(req, -EROFS);
}

static const struct fuse_lowlevel_ops g_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .readlink = op_readlink,
    .open = op_open,
    .read = op_read,
    .release = op_release,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
    .setattr = op_setattr,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_unlink,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .write = op_write,
    .create = op_create,
    .setxattr = op_setxattr,
    .removexattr = op_removexattr,
    .fallocate = op_fallocate,
};

const struct fuse_lowlevel_ops *fs_ops(void)
{
    return &g_ops;
}

size_t fs_ops_size(void)
{
    return sizeof g_ops;
}

/* ---------------------------------------------------------------- stats */

char *fs_ctx_stats_text(struct fs_ctx *c, size_t *len)
{
    struct mfs_engine_stats es = {0};
    if (c->engine)
        mfs_engine_stats(c->engine, &es);
    struct fs_tree_stats ts;
    fs_tree_stats(c->tree, &ts);
    pthread_mutex_lock(&c->mu);
    size_t nodes = c->n_nodes;
    pthread_mutex_unlock(&c->mu);
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    if (!f)
        return NULL;
    /* one "name value" per line; the first six are the contract (DESIGN.md) */
    fprintf(f,
            "read_requests %" PRIu64 "\n"
            "bytes_served %" PRIu64 "\n"
            "bytes_decoded %" PRIu64 "\n"
            "cache_hits %" PRIu64 "\n"
            "cache_misses %" PRIu64 "\n"
            "decode_errors %" PRIu64 "\n"
            "read_errors %" PRIu64 "\n"
            "chunks_decoded %" PRIu64 "\n"
            "chunks_prefetched %" PRIu64 "\n"
            "cache_bytes %" PRIu64 "\n"
            "cache_peak_bytes %" PRIu64 "\n"
            "opens %" PRIu64 "\n"
            "lookups %" PRIu64 "\n"
            "stale_replies %" PRIu64 "\n"
            "invalidations %" PRIu64 "\n"
            "models_opened %" PRIu64 "\n"
            "sources_failed %" PRIu64 "\n"
            "source_changes %" PRIu64 "\n"
            "listings_built %" PRIu64 "\n"
            "inodes %zu\n",
            (uint64_t)atomic_load(&c->reads), (uint64_t)atomic_load(&c->bytes_served), es.bytes_decoded, es.hits,
            es.misses, es.decode_errors, (uint64_t)atomic_load(&c->read_errors), es.chunks_decoded, es.prefetched,
            es.cached_bytes, es.peak_bytes, (uint64_t)atomic_load(&c->opens), (uint64_t)atomic_load(&c->lookups),
            (uint64_t)atomic_load(&c->stale), (uint64_t)atomic_load(&c->notices), ts.models, ts.failed, ts.changes,
            ts.rebuilds, nodes);
    if (fclose(f)) {
        free(s);
        return NULL;
    }
    *len = n;
    return s;
}
