#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "names.h"

/* One name of a listing. `name` points into an entry or into the listing's `owned` strings. */
struct fs_lname {
    const char *name;
    struct fs_entry *e;
    enum fs_view view;
};

/* A directory that is a model candidate but failed to open: not retried (nor logged again) while
 * the directory is unchanged. Files need no memo: an unchanged FILE entry is reused as it is. */
struct fs_memo {
    char *name;
    struct stat st;
};

struct fs_listing {
    struct stat dirst;         /* the directory when it was read */
    int64_t retry_at;          /* the earliest retry_at of its entries (0: none) */
    struct fs_entry **entries; /* owned references */
    size_t n;
    struct fs_lname *names;    /* sorted by name */
    size_t n_names;
    char **owned;              /* model names given out by fs_names_resolve */
    size_t n_owned;
    struct fs_memo *memos;
    size_t n_memos;
};

struct fs_tree {
    struct fs_tree_config cfg;
    char *root;
    int rootfd;
    struct mfs_root confine; /* {rootfd, root}: models are opened confined to the source */
    struct fs_entry *root_e;
    atomic_uint_fast64_t next_ino;
    bool hide;
    dev_t hide_dev;
    ino_t hide_ino;
    atomic_uint_fast64_t st_models, st_failed, st_rebuilds, st_changes;
};

static const char *const g_reserved_root[] = {".modelfs"};

/* ---------------------------------------------------------------- entries */

struct fs_entry *fs_entry_ref(struct fs_entry *e)
{
    if (e)
        atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
    return e;
}

static void listing_free(struct fs_listing *l);

void fs_entry_unref(struct fs_entry *e)
{
    if (!e || atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1)
        return;
    mfs_model_unref(e->model);
    if (e->kind == FS_DIR) {
        listing_free(e->listing);
        pthread_mutex_destroy(&e->mu);
    }
    free(e->name);
    free(e->pname);
    free(e->relpath);
    free(e->path);
    free(e);
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    bool slash = la && a[la - 1] != '/';
    char *s = malloc(la + slash + lb + 1);
    if (!s)
        return NULL;
    memcpy(s, a, la);
    if (slash)
        s[la] = '/';
    memcpy(s + la + slash, b, lb + 1);
    return s;
}

/* A new entry named `name` in `dir` (NULL: the root). The caller sets the ino. */
static struct fs_entry *entry_new(struct fs_tree *t, const struct fs_entry *dir, const char *name,
                                  const struct stat *st, enum fs_kind kind)
{
    struct fs_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    atomic_init(&e->refs, 1);
    atomic_init(&e->stale, false);
    e->kind = kind;
    e->st = *st;
    e->name = strdup(name);
    e->relpath = !dir ? strdup(".") : strcmp(dir->relpath, ".") ? join(dir->relpath, name) : strdup(name);
    e->path = !dir ? strdup(t->root) : join(t->root, e->relpath);
    if (kind == FS_DIR && pthread_mutex_init(&e->mu, NULL)) {
        e->kind = FS_FILE; /* nothing to destroy */
        fs_entry_unref(e);
        return NULL;
    }
    if (!e->name || !e->relpath || !e->path) {
        fs_entry_unref(e);
        return NULL;
    }
    return e;
}

static uint64_t take_inos(struct fs_tree *t, uint64_t n)
{
    return atomic_fetch_add_explicit(&t->next_ino, n, memory_order_relaxed);
}

/* Same version of a file or symlink: same inode, size, mtime and ctime (a chmod or a rewrite in
 * place is a new version: the kernel's cached pages and attributes for it must go). */
static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && (a->st_mode & S_IFMT) == (b->st_mode & S_IFMT) &&
           a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec && a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
           a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Same directory: its contents are tracked by its listing, not by its identity. */
static bool same_dir(const struct stat *a, const struct stat *b)
{
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && S_ISDIR(b->st_mode);
}

static bool same_mtime(const struct stat *a, const struct stat *b)
{
    return a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

bool fs_tree_model_changed(const struct fs_entry *e)
{
    return atomic_load(&e->stale) || (e->model && mfs_model_changed(e->model));
}

/* A candidate whose open failed for a reason that can pass (a failing disk, no descriptors left)
 * is opened again, at most every FS_RETRY_NS, even if its file did not change; a bad file is not. */
#define FS_RETRY_NS 2000000000LL

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static bool passing_error(int r)
{
    return r == -EIO || r == -EINTR || r == -EAGAIN || r == -EMFILE || r == -ENFILE || r == -ETIMEDOUT;
}

static bool retry_due(const struct fs_entry *e)
{
    return e->retry_at && now_ns() >= e->retry_at;
}

/* Has the source of `e` changed since it was listed (or is a failed open due for a retry)? */
static bool entry_changed(struct fs_tree *t, const struct fs_entry *e)
{
    if (e->kind == FS_MODEL)
        return mfs_model_changed(e->model);
    if (retry_due(e))
        return true;
    struct stat st;
    if (fstatat(t->rootfd, e->relpath, &st, AT_SYMLINK_NOFOLLOW))
        return true;
    return e->kind == FS_DIR ? !same_dir(&e->st, &st) : !same_file(&e->st, &st);
}

/* ---------------------------------------------------------------- listings */

static void listing_free(struct fs_listing *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        fs_entry_unref(l->entries[i]);
    for (size_t i = 0; i < l->n_owned; i++)
        free(l->owned[i]);
    for (size_t i = 0; i < l->n_memos; i++)
        free(l->memos[i].name);
    free(l->entries);
    free(l->names);
    free(l->owned);
    free(l->memos);
    free(l);
}

static int cmp_lname(const void *a, const void *b)
{
    return strcmp(((const struct fs_lname *)a)->name, ((const struct fs_lname *)b)->name);
}

static const struct fs_lname *listing_find(const struct fs_listing *l, const char *name)
{
    if (!l || !l->n_names)
        return NULL;
    struct fs_lname key = {.name = name};
    return bsearch(&key, l->names, l->n_names, sizeof *l->names, cmp_lname);
}

/* The entry of kind `kind` named `name` in the old listing (linear: listings are rebuilt rarely). */
static struct fs_entry *old_entry(const struct fs_listing *l, const char *name, enum fs_kind kind)
{
    for (size_t i = 0; l && i < l->n; i++)
        if (l->entries[i]->kind == kind && !strcmp(l->entries[i]->name, name))
            return l->entries[i];
    return NULL;
}

static const struct fs_memo *old_memo(const struct fs_listing *l, const char *name, const struct stat *st)
{
    for (size_t i = 0; l && i < l->n_memos; i++)
        if (!strcmp(l->memos[i].name, name) && same_dir(&l->memos[i].st, st) && same_mtime(&l->memos[i].st, st))
            return &l->memos[i];
    return NULL;
}

/* Open `relpath` under the root without following any symlink and without leaving the root. */
static int open_beneath(const struct fs_tree *t, const char *relpath, int flags)
{
    return mfs_open_beneath(t->rootfd, relpath, flags);
}

/* A model candidate that opened, as an entry; NULL (and logged unless `quiet`) if it did not, with
 * the loader's error in *why. */
static struct fs_entry *open_model(struct fs_tree *t, const struct fs_entry *dir, const char *name,
                                   const struct stat *st, const char *pname, bool quiet, int *rc, int *why)
{
    *rc = 0;
    *why = 0;
    struct fs_entry *e = entry_new(t, dir, name, st, FS_MODEL);
    if (!e) {
        *rc = -ENOMEM;
        return NULL;
    }
    mfs_err err = {{0}};
    int r = mfs_model_open(e->path, &t->cfg.model, &e->model, &err);
    if (r) {
        *why = r;
        if (r == -ENOMEM) {
            *rc = r;
        } else if (!quiet) {
            atomic_fetch_add(&t->st_failed, 1);
            mfs_log(MFS_LOG_WARN, "%s; shown as it is%s", err.msg[0] ? err.msg : e->path,
                    passing_error(r) ? " (opened again on later lookups)" : "");
        }
        fs_entry_unref(e);
        return NULL;
    }
    e->pname = strdup(pname);
    if (!e->pname) {
        *rc = -ENOMEM;
        fs_entry_unref(e);
        return NULL;
    }
    const mfs_gguf *g = mfs_model_gguf(e->model);
    e->n_tensors = mfs_gguf_n_tensors(g);
    e->ino = take_inos(t, FS_TENSOR_INO0 + e->n_tensors);
    atomic_fetch_add(&t->st_models, 1);
    mfs_log(MFS_LOG_INFO, "%s: %s, %" PRIu64 " tensors, %" PRIu64 " bytes", e->path, mfs_model_format(e->model),
            e->n_tensors, mfs_model_size(e->model));
    return e;
}

/* Work area of one rebuild: one request per source entry shown. Arrays are sized for every
 * source entry up front (at most two listing entries each), so adding never fails. */
struct build {
    struct fs_listing *l;
    size_t n;                 /* requests */
    struct fs_name_req *reqs;
    struct fs_entry **shown;  /* per request: entry shown under its own name, or NULL */
    struct fs_entry **model;  /* per request: model entry, or NULL */
    bool *fresh;              /* per request: the model was opened by this build */
};

static void add_memo(struct fs_listing *l, const char *name, const struct stat *st)
{
    char *s = strdup(name);
    if (!s)
        return; /* only costs a retry */
    l->memos[l->n_memos].name = s;
    l->memos[l->n_memos++].st = *st;
}

static struct fs_entry *new_plain(struct fs_tree *t, struct fs_entry *dir, const char *name, const struct stat *st,
                                  enum fs_kind kind)
{
    struct fs_entry *e = entry_new(t, dir, name, st, kind);
    if (e)
        e->ino = take_inos(t, 1);
    return e;
}

/* Decide what source entry `name` (in the directory open as `dfd`) is now, reusing the old
 * listing's entries for what did not change. Adds one request, or none for an entry not shown. */
static int classify(struct fs_tree *t, struct fs_entry *dir, int dfd, const struct fs_listing *old, struct build *b,
                    const char *name)
{
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW))
        return 0; /* gone since readdir, or unreadable: not shown */
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode))
        return 0; /* devices, FIFOs and sockets are not passed through */
    struct fs_entry *shown = NULL, *model = NULL, *o;
    bool fresh = false;
    int rc = 0;
    char pname[4096];

    if (S_ISLNK(st.st_mode)) {
        o = old_entry(old, name, FS_LINK);
        shown = o && same_file(&o->st, &st) ? fs_entry_ref(o) : new_plain(t, dir, name, &st, FS_LINK);
        if (!shown)
            return -ENOMEM;
    } else if (S_ISDIR(st.st_mode)) {
        o = old_entry(old, name, FS_DIR);
        shown = o && same_dir(&o->st, &st) ? fs_entry_ref(o) : new_plain(t, dir, name, &st, FS_DIR);
        if (!shown)
            return -ENOMEM;
        o = old_entry(old, name, FS_MODEL);
        if (o && !mfs_model_changed(o->model)) {
            model = fs_entry_ref(o);
        } else if (old_memo(old, name, &st)) {
            add_memo(b->l, name, &st); /* failed before, unchanged since */
        } else if (mfs_model_presented_name(shown->path, name, &st, pname, sizeof pname)) {
            int why;
            model = open_model(t, dir, name, &st, pname, false, &rc, &why);
            fresh = model != NULL;
            if (!model && !rc)
                add_memo(b->l, name, &st);
        }
    } else {
        o = old_entry(old, name, FS_MODEL);
        struct fs_entry *of = old_entry(old, name, FS_FILE);
        if (o && !mfs_model_changed(o->model)) {
            model = fs_entry_ref(o);
        } else if (of && same_file(&of->st, &st) && !retry_due(of)) {
            shown = fs_entry_ref(of); /* a plain file, or a candidate that failed: unchanged */
            if (of->retry_at && (!b->l->retry_at || of->retry_at < b->l->retry_at))
                b->l->retry_at = of->retry_at;
        } else {
            if (!(shown = entry_new(t, dir, name, &st, FS_FILE)))
                return -ENOMEM;
            if (mfs_model_presented_name(shown->path, name, &st, pname, sizeof pname)) {
                int why;
                bool again = of && of->retry_at && same_file(&of->st, &st); /* logged the first time */
                model = open_model(t, dir, name, &st, pname, again, &rc, &why);
                fresh = model != NULL;
                shown->failed = !model;
                if (!model && passing_error(why)) {
                    shown->retry_at = now_ns() + FS_RETRY_NS;
                    if (!b->l->retry_at || shown->retry_at < b->l->retry_at)
                        b->l->retry_at = shown->retry_at;
                }
            }
            if (model) {
                fs_entry_unref(shown);
                shown = NULL;
            } else {
                shown->ino = take_inos(t, 1);
            }
        }
    }
    if (rc) {
        fs_entry_unref(shown);
        fs_entry_unref(model);
        return rc;
    }
    if (shown)
        b->l->entries[b->l->n++] = shown;
    if (model)
        b->l->entries[b->l->n++] = model;
    size_t i = b->n++;
    b->shown[i] = shown;
    b->model[i] = model;
    b->fresh[i] = fresh;
    b->reqs[i] = (struct fs_name_req){
        .own = shown ? shown->name : model->name, .model = model ? model->pname : NULL, .shown = shown != NULL};
    return 0;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Read directory `dfd` (closed here): its entry names, without the hidden ones. */
static int read_names(struct fs_tree *t, struct fs_entry *dir, int dfd, const struct stat *dirst, char ***out,
                      size_t *n_out)
{
    DIR *d = fdopendir(dfd);
    if (!d) {
        int rc = -errno;
        close(dfd);
        return rc;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        const char *nm = de->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, ".."))
            continue;
        if (dir == t->root_e && !strcmp(nm, g_reserved_root[0]))
            continue;
        /* our own mountpoint: never stat it, that would ask this daemon */
        if (t->hide && dirst->st_dev == t->hide_dev && de->d_ino == t->hide_ino)
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 32;
            char **p = realloc(names, nc * sizeof *p);
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            names = p;
            cap = nc;
        }
        if (!(names[n] = strdup(nm))) {
            rc = -ENOMEM;
            break;
        }
        n++;
        errno = 0;
    }
    if (!rc && errno)
        rc = -errno;
    closedir(d);
    if (rc) {
        free_names(names, n);
        return rc;
    }
    *out = names;
    *n_out = n;
    return 0;
}

/* Names of the old listing whose meaning changed in the new one (both sorted). */
static void collect_changes(const struct fs_listing *old, const struct fs_listing *nl, char ***out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (!old)
        return;
    char **ch = NULL;
    size_t n = 0;
    for (size_t i = 0; i < old->n_names; i++) {
        const struct fs_lname *now = listing_find(nl, old->names[i].name);
        if (now && now->e == old->names[i].e && now->view == old->names[i].view)
            continue;
        char **p = realloc(ch, (n + 1) * sizeof *p);
        if (!p)
            break;
        ch = p;
        if (!(ch[n] = strdup(old->names[i].name)))
            break;
        n++;
    }
    *out = ch;
    *n_out = n;
}

/* Build `dir`'s listing anew. Called with dir->mu held. -ESTALE if `dir` is not the directory now
 * at its path. The names whose meaning changed go to *changed. */
static int rebuild(struct fs_tree *t, struct fs_entry *dir, char ***changed, size_t *n_changed)
{
    *changed = NULL;
    *n_changed = 0;
    int dfd = dir == t->root_e ? openat(t->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
                               : open_beneath(t, dir->relpath, O_RDONLY | O_DIRECTORY);
    if (dfd < 0)
        return dir == t->root_e ? -errno : -ESTALE;
    struct stat dirst;
    if (fstat(dfd, &dirst) || !same_dir(&dir->st, &dirst)) {
        close(dfd);
        return dir == t->root_e ? -EIO : -ESTALE;
    }
    int dfd2 = dup(dfd); /* read_names closes its descriptor; classify needs one */
    if (dfd2 < 0) {
        close(dfd);
        return -errno;
    }
    char **srcnames = NULL;
    size_t n_src = 0;
    int rc = read_names(t, dir, dfd, &dirst, &srcnames, &n_src);
    if (rc) {
        close(dfd2);
        return rc;
    }

    struct fs_listing *old = dir->listing;
    struct fs_listing *l = calloc(1, sizeof *l);
    struct build b = {.l = l};
    struct fs_name_res *res = NULL;
    rc = -ENOMEM;
    if (!l)
        goto out;
    l->dirst = dirst;
    l->entries = calloc(2 * n_src + 1, sizeof *l->entries);
    l->memos = calloc(n_src + 1, sizeof *l->memos);
    b.reqs = calloc(n_src + 1, sizeof *b.reqs);
    b.shown = calloc(n_src + 1, sizeof *b.shown);
    b.model = calloc(n_src + 1, sizeof *b.model);
    b.fresh = calloc(n_src + 1, sizeof *b.fresh);
    res = calloc(n_src + 1, sizeof *res);
    if (!l->entries || !l->memos || !b.reqs || !b.shown || !b.model || !b.fresh || !res)
        goto out;
    for (size_t i = 0; i < n_src; i++)
        if ((rc = classify(t, dir, dfd2, old, &b, srcnames[i])))
            goto out;

    const char *const *reserved = dir == t->root_e ? g_reserved_root : NULL;
    if ((rc = fs_names_resolve(b.reqs, b.n, reserved, reserved ? 1 : 0, res)))
        goto out;
    rc = -ENOMEM;
    l->names = calloc(4 * b.n + 1, sizeof *l->names);
    l->owned = calloc(3 * b.n + 1, sizeof *l->owned);
    if (!l->names || !l->owned)
        goto out;
    for (size_t i = 0; i < b.n; i++) {
        if (b.shown[i])
            l->names[l->n_names++] = (struct fs_lname){b.shown[i]->name, b.shown[i], FS_VIEW_MAIN};
        if (!b.model[i])
            continue;
        if (!res[i].gguf && b.fresh[i])
            mfs_log(MFS_LOG_WARN, "%s: every name for it is taken (%s, %s.gguf); not shown", b.model[i]->path,
                    b.model[i]->pname, b.model[i]->name);
        char **views[] = {&res[i].gguf, &res[i].tensors, &res[i].meta};
        for (int v = 0; v < 3; v++) {
            if (!*views[v])
                continue;
            l->owned[l->n_owned++] = *views[v];
            l->names[l->n_names++] = (struct fs_lname){*views[v], b.model[i], (enum fs_view)v};
            *views[v] = NULL;
        }
    }
    qsort(l->names, l->n_names, sizeof *l->names, cmp_lname);

    collect_changes(old, l, changed, n_changed);
    /* entries of the old listing that did not carry over are stale from now on */
    for (size_t i = 0; old && i < old->n; i++) {
        bool kept = false;
        for (size_t j = 0; j < l->n && !kept; j++)
            kept = l->entries[j] == old->entries[i];
        if (!kept) {
            atomic_store(&old->entries[i]->stale, true);
            atomic_fetch_add(&t->st_changes, 1);
        }
    }
    dir->listing = l;
    l = NULL;
    listing_free(old);
    if (!old && t->cfg.listed)
        t->cfg.listed(t->cfg.user, dir);
    atomic_fetch_add(&t->st_rebuilds, 1);
    rc = 0;
out:
    if (res)
        fs_names_free(res, b.n);
    free(res);
    free(b.reqs);
    free(b.shown);
    free(b.model);
    free(b.fresh);
    listing_free(l);
    free_names(srcnames, n_src);
    close(dfd2);
    return rc;
}

/* Is `dir`'s listing up to date with its directory? */
static int dir_state(struct fs_tree *t, struct fs_entry *dir, bool *fresh)
{
    struct stat st;
    int r = dir == t->root_e ? fstat(t->rootfd, &st) : fstatat(t->rootfd, dir->relpath, &st, AT_SYMLINK_NOFOLLOW);
    if (r || !same_dir(&dir->st, &st))
        return dir == t->root_e ? -EIO : -ESTALE;
    *fresh = dir->listing && same_mtime(&dir->listing->dirst, &st);
    return 0;
}

static void report_changes(struct fs_tree *t, struct fs_entry *dir, char **changed, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (t->cfg.changed)
            t->cfg.changed(t->cfg.user, dir->ino, changed[i]);
    free_names(changed, n);
}

int fs_tree_lookup(struct fs_tree *t, struct fs_entry *dir, const char *name, struct fs_entry **out,
                   enum fs_view *view)
{
    if (dir->kind != FS_DIR)
        return -ENOTDIR;
    if (atomic_load(&dir->stale))
        return -ESTALE;
    char **changed = NULL;
    size_t n_changed = 0;
    bool fresh;
    pthread_mutex_lock(&dir->mu);
    int rc = dir_state(t, dir, &fresh);
    if (!rc && !fresh)
        rc = rebuild(t, dir, &changed, &n_changed);
    const struct fs_lname *ln = rc ? NULL : listing_find(dir->listing, name);
    if (!rc && fresh && ((ln && entry_changed(t, ln->e)) ||
                         (!ln && dir->listing->retry_at && now_ns() >= dir->listing->retry_at))) {
        /* changed in place, replaced without the directory's mtime moving, or a failed open is
         * due for a retry (the name looked up may be one it would present) */
        rc = rebuild(t, dir, &changed, &n_changed);
        ln = rc ? NULL : listing_find(dir->listing, name);
    }
    if (!rc && !ln)
        rc = -ENOENT;
    if (!rc) {
        *out = fs_entry_ref(ln->e);
        *view = ln->view;
    }
    pthread_mutex_unlock(&dir->mu);
    report_changes(t, dir, changed, n_changed);
    return rc;
}

bool fs_tree_current(struct fs_tree *t, struct fs_entry *dir, const char *name, const struct fs_entry *e,
                     enum fs_view view)
{
    struct fs_entry *now;
    enum fs_view v;
    if (fs_tree_lookup(t, dir, name, &now, &v))
        return false;
    bool same = now == e && v == view;
    fs_entry_unref(now);
    return same;
}

static mode_t view_type(const struct fs_lname *ln)
{
    if (ln->e->kind == FS_MODEL)
        return ln->view == FS_VIEW_TENSORS ? S_IFDIR : S_IFREG;
    return ln->e->st.st_mode & S_IFMT;
}

void fs_dirents_free(struct fs_dirent *d, size_t n)
{
    for (size_t i = 0; d && i < n; i++)
        free(d[i].name);
    free(d);
}

/* With dir->mu held: is the listing up to date with the directory and every entry in it? */
static int listing_fresh(struct fs_tree *t, struct fs_entry *dir, bool *fresh)
{
    int rc = dir_state(t, dir, fresh);
    for (size_t i = 0; !rc && *fresh && i < dir->listing->n; i++)
        *fresh = !entry_changed(t, dir->listing->entries[i]);
    return rc;
}

int fs_tree_refresh(struct fs_tree *t, struct fs_entry *dir)
{
    if (dir->kind != FS_DIR)
        return -ENOTDIR;
    if (atomic_load(&dir->stale))
        return -ESTALE;
    char **changed = NULL;
    size_t n_changed = 0;
    bool fresh = true;
    pthread_mutex_lock(&dir->mu);
    int rc = dir->listing ? listing_fresh(t, dir, &fresh) : 0;
    if (!rc && !fresh)
        rc = rebuild(t, dir, &changed, &n_changed);
    pthread_mutex_unlock(&dir->mu);
    report_changes(t, dir, changed, n_changed);
    return rc;
}

int fs_tree_readdir(struct fs_tree *t, struct fs_entry *dir, struct fs_dirent **out, size_t *n_out)
{
    if (dir->kind != FS_DIR)
        return -ENOTDIR;
    if (atomic_load(&dir->stale))
        return -ESTALE;
    char **changed = NULL;
    size_t n_changed = 0;
    bool fresh;
    pthread_mutex_lock(&dir->mu);
    /* a listing is shown whole: every entry is checked, not only the directory's mtime */
    int rc = listing_fresh(t, dir, &fresh);
    if (!rc && !fresh)
        rc = rebuild(t, dir, &changed, &n_changed);
    struct fs_dirent *d = NULL;
    size_t n = 0;
    if (!rc) {
        const struct fs_listing *l = dir->listing;
        d = calloc(l->n_names + 1, sizeof *d);
        rc = d ? 0 : -ENOMEM;
        for (; !rc && n < l->n_names; n++) {
            const struct fs_lname *ln = &l->names[n];
            d[n].ino = ln->e->ino + (uint64_t)ln->view;
            d[n].type = view_type(ln);
            if (!(d[n].name = strdup(ln->name)))
                rc = -ENOMEM;
        }
    }
    pthread_mutex_unlock(&dir->mu);
    report_changes(t, dir, changed, n_changed);
    if (rc) {
        fs_dirents_free(d, n);
        return rc;
    }
    *out = d;
    *n_out = n;
    return 0;
}

int fs_tree_find_tensor(const struct fs_entry *e, const char *fname, uint64_t *idx)
{
    if (e->kind != FS_MODEL)
        return -ENOENT;
    size_t flen = strlen(fname);
    char *name = malloc(flen + 1); /* unescaping only shortens */
    if (!name)
        return -ENOMEM;
    size_t len;
    int rc = -ENOENT;
    char canon[256];
    if (mfs_model_tensor_unescape(fname, name, flen + 1, &len) && len <= flen) {
        name[len] = '\0';
        const mfs_gguf *g = mfs_model_gguf(e->model);
        int64_t i = memchr(name, '\0', len) ? -1 : mfs_gguf_find_tensor(g, name);
        /* only the listed (escaped) spelling: "line\nbreak" or "%2e" must not be a second name */
        if (i >= 0 && mfs_model_tensor_filename(name, len, canon, sizeof canon) && !strcmp(canon, fname)) {
            *idx = (uint64_t)i;
            rc = 0;
        }
    }
    free(name);
    return rc;
}

int fs_tree_open_file(struct fs_tree *t, const struct fs_entry *e)
{
    int fd = open_beneath(t, e->relpath, O_RDONLY);
    if (fd < 0)
        return fd == -ENOENT || fd == -ELOOP || fd == -EXDEV ? -ESTALE : fd;
    struct stat st;
    if (fstat(fd, &st) || !same_file(&e->st, &st)) {
        close(fd);
        return -ESTALE;
    }
    return fd;
}

ssize_t fs_tree_readlink(struct fs_tree *t, const struct fs_entry *e, char *buf, size_t cap)
{
    int fd = open_beneath(t, e->relpath, O_PATH);
    if (fd < 0)
        return fd == -ENOENT ? -ESTALE : fd;
    struct stat st;
    ssize_t n = -ESTALE;
    if (!fstat(fd, &st) && same_file(&e->st, &st)) {
        n = readlinkat(fd, "", buf, cap);
        if (n < 0)
            n = -errno;
    }
    close(fd);
    return n;
}

/* ---------------------------------------------------------------- the tree */

int fs_tree_create(const struct fs_tree_config *cfg, struct fs_tree **out, mfs_err *err)
{
    struct fs_tree *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->cfg = *cfg;
    t->rootfd = -1;
    atomic_init(&t->next_ino, FS_FIRST_INO);
    int rc = -ENOMEM;
    if (!(t->root = strdup(cfg->root)))
        goto fail;
    t->rootfd = open(cfg->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    if (t->rootfd < 0 || fstat(t->rootfd, &st)) {
        rc = -errno;
        mfs_err_set(err, "%s: %s", cfg->root, strerror(errno));
        goto fail;
    }
    t->confine = (struct mfs_root){.fd = t->rootfd, .path = t->root};
    t->cfg.model.root = &t->confine;
    rc = -ENOMEM;
    if (!(t->root_e = entry_new(t, NULL, "", &st, FS_DIR)))
        goto fail;
    t->root_e->ino = FS_ROOT_INO;
    *out = t;
    return 0;
fail:
    fs_tree_destroy(t);
    return rc;
}

void fs_tree_destroy(struct fs_tree *t)
{
    if (!t)
        return;
    fs_entry_unref(t->root_e);
    if (t->rootfd >= 0)
        close(t->rootfd);
    free(t->root);
    free(t);
}

void fs_tree_set_engine(struct fs_tree *t, mfs_engine *e)
{
    t->cfg.model.engine = e;
}

void fs_tree_hide(struct fs_tree *t, dev_t dev, ino_t ino)
{
    t->hide = true;
    t->hide_dev = dev;
    t->hide_ino = ino;
}

struct fs_entry *fs_tree_root(struct fs_tree *t)
{
    return t->root_e;
}

int fs_tree_root_fd(const struct fs_tree *t)
{
    return t->rootfd;
}

void fs_tree_stats(struct fs_tree *t, struct fs_tree_stats *out)
{
    out->models = atomic_load(&t->st_models);
    out->failed = atomic_load(&t->st_failed);
    out->rebuilds = atomic_load(&t->st_rebuilds);
    out->changes = atomic_load(&t->st_changes);
}
