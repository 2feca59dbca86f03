#include "mfs_pack.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "pack_internal.h"

/* ---------------------------------------------------------------- output file */

int mfs_out_open(struct mfs_out *o, const char *path, bool force, mfs_err *err)
{
    memset(o, 0, sizeof *o);
    o->fd = -1;
    struct stat st;
    if (!force && lstat(path, &st) == 0) {
        mfs_err_set(err, "%s: already exists (use -f to overwrite)", path);
        return -EEXIST;
    }
    size_t n = strlen(path) + sizeof ".tmp.XXXXXX";
    o->tmp = malloc(n);
    o->path = strdup(path);
    if (!o->tmp || !o->path) {
        free(o->tmp);
        free(o->path);
        mfs_err_set(err, "%s: out of memory", path);
        return -ENOMEM;
    }
    snprintf(o->tmp, n, "%s.tmp.XXXXXX", path);
    o->fd = mkstemp(o->tmp);
    if (o->fd < 0) {
        int e = errno;
        mfs_err_set(err, "%s: cannot create: %s", o->tmp, strerror(e));
        free(o->tmp);
        free(o->path);
        o->tmp = o->path = NULL;
        return -e;
    }
    fchmod(o->fd, 0644);
    return 0;
}

int mfs_out_write(struct mfs_out *o, const void *buf, size_t len, mfs_err *err)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(o->fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            mfs_err_set(err, "%s: write failed: %s", o->path, strerror(e));
            return -e;
        }
        p += n;
        len -= (size_t)n;
        o->written += (uint64_t)n;
    }
    return 0;
}

int mfs_out_commit(struct mfs_out *o, mfs_err *err)
{
    int rc = 0;
    if (close(o->fd) != 0) {
        rc = -errno;
        mfs_err_set(err, "%s: %s", o->path, strerror(-rc));
    } else if (rename(o->tmp, o->path) != 0) {
        rc = -errno;
        mfs_err_set(err, "%s: cannot rename into place: %s", o->path, strerror(-rc));
    }
    o->fd = -1;
    if (rc)
        unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    o->tmp = o->path = NULL;
    return rc;
}

void mfs_out_abort(struct mfs_out *o)
{
    if (o->fd >= 0) {
        close(o->fd);
        unlink(o->tmp);
    }
    free(o->tmp);
    free(o->path);
    o->tmp = o->path = NULL;
    o->fd = -1;
}

/* ---------------------------------------------------------------- shared by both formats */

int mfs_pack_read_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO; /* the input shrank */
        done += (size_t)n;
    }
    return 0;
}

struct ordered_run {
    const struct mfs_pack_ordered *w;
    pthread_mutex_t mu;
    pthread_cond_t turn;
    uint64_t next;      /* next item to claim */
    uint64_t committed; /* items committed */
    int rc;
    mfs_err err;
};

static void *ordered_worker(void *arg)
{
    struct ordered_run *r = arg;
    const struct mfs_pack_ordered *w = r->w;
    void *state = w->init(w->ctx);
    pthread_mutex_lock(&r->mu);
    if (!state && !r->rc) {
        r->rc = -ENOMEM;
        mfs_err_set(&r->err, "%s: out of memory", w->in_path);
    }
    while (!r->rc && r->next < w->n) {
        uint64_t i = r->next++;
        pthread_mutex_unlock(&r->mu);
        mfs_err e = {{0}};
        int rc = w->encode(w->ctx, state, i, &e);
        pthread_mutex_lock(&r->mu);
        while (!r->rc && r->committed != i)
            pthread_cond_wait(&r->turn, &r->mu);
        if (r->rc)
            break;
        if (!rc)
            rc = w->commit(w->ctx, state, i, &e);
        if (rc) {
            r->rc = rc;
            r->err = e;
        } else {
            r->committed++;
        }
        pthread_cond_broadcast(&r->turn);
    }
    pthread_cond_broadcast(&r->turn);
    pthread_mutex_unlock(&r->mu);
    if (state)
        w->fini(state);
    return NULL;
}

int mfs_pack_run_ordered(const struct mfs_pack_ordered *w, mfs_err *err)
{
    struct ordered_run r = {.w = w};
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.turn, NULL);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned nt = w->threads ? w->threads : cpus > 0 ? (unsigned)cpus : 1;
    if (nt > w->n)
        nt = w->n ? (unsigned)w->n : 1;
    pthread_t *th = calloc(nt, sizeof *th);
    unsigned started = 0;
    if (th)
        for (; started < nt; started++)
            if (pthread_create(&th[started], NULL, ordered_worker, &r) != 0)
                break;
    if (started == 0)
        ordered_worker(&r); /* no threads: do it here */
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
    pthread_cond_destroy(&r.turn);
    pthread_mutex_destroy(&r.mu);
    if (r.rc)
        *err = r.err;
    return r.rc;
}

/* ---------------------------------------------------------------- seekable zstd */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

struct zst_job {
    int in_fd;
    const char *in_path;
    uint64_t in_size, n_frames;
    uint32_t chunk;
    int level;
    struct mfs_out *out;
    const struct mfs_pack_opts *opts;
    uint8_t *table; /* entries: u32 csize, u32 dsize, u32 checksum; written in frame order */
};

/* One worker's buffers and the frame it has just compressed. */
struct zst_state {
    ZSTD_CCtx *cctx;
    size_t cap, len, csize;
    uint8_t *in, *out;
    uint32_t sum;
};

static void zst_fini(void *arg)
{
    struct zst_state *st = arg;
    ZSTD_freeCCtx(st->cctx);
    free(st->in);
    free(st->out);
    free(st);
}

static void *zst_init(void *ctx)
{
    const struct zst_job *j = ctx;
    struct zst_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->cctx = ZSTD_createCCtx();
    st->cap = ZSTD_compressBound(j->chunk);
    st->in = malloc(j->chunk);
    st->out = malloc(st->cap);
    if (!st->cctx || !st->in || !st->out) {
        zst_fini(st);
        return NULL;
    }
    return st;
}

static int zst_encode(void *ctx, void *state, uint64_t i, mfs_err *e)
{
    const struct zst_job *j = ctx;
    struct zst_state *st = state;
    uint64_t off = i * j->chunk;
    st->len = j->in_size - off < j->chunk ? (size_t)(j->in_size - off) : j->chunk;
    int rc = mfs_pack_read_full(j->in_fd, st->in, st->len, off);
    if (rc) {
        mfs_err_set(e, "%s: read failed at offset %" PRIu64 ": %s", j->in_path, off, strerror(-rc));
        return rc;
    }
    st->csize = ZSTD_compressCCtx(st->cctx, st->out, st->cap, st->in, st->len, j->level);
    if (ZSTD_isError(st->csize)) {
        mfs_err_set(e, "%s: compression failed: %s", j->in_path, ZSTD_getErrorName(st->csize));
        return -EIO;
    }
    st->sum = (uint32_t)XXH64(st->in, st->len, 0);
    return 0;
}

static int zst_commit(void *ctx, void *state, uint64_t i, mfs_err *e)
{
    const struct zst_job *j = ctx;
    const struct zst_state *st = state;
    int rc = mfs_out_write(j->out, st->out, st->csize, e);
    if (rc)
        return rc;
    uint8_t *t = j->table + i * 12;
    put32(t, (uint32_t)st->csize);
    put32(t + 4, (uint32_t)st->len);
    put32(t + 8, st->sum);
    if (j->opts->progress)
        j->opts->progress(j->opts->progress_user, i * j->chunk + st->len, j->in_size);
    return 0;
}

static int pack_zst(int in_fd, const char *in_path, uint64_t in_size, struct mfs_out *out,
                    const struct mfs_pack_opts *opts, struct mfs_pack_result *res, mfs_err *err)
{
    struct zst_job j = {.in_fd = in_fd, .in_path = in_path, .in_size = in_size, .out = out, .opts = opts};
    j.chunk = opts->chunk ? opts->chunk : MFS_PACK_DEFAULT_CHUNK;
    j.level = opts->level ? opts->level : MFS_PACK_DEFAULT_LEVEL;
    j.n_frames = (in_size + j.chunk - 1) / j.chunk;
    if (j.n_frames > UINT32_MAX / 12) {
        mfs_err_set(err, "%s: too many frames (%" PRIu64 "); use a bigger --chunk", in_path, j.n_frames);
        return -EFBIG;
    }
    uint64_t table_len = 8 + j.n_frames * 12 + 9;
    j.table = malloc(table_len);
    if (!j.table) {
        mfs_err_set(err, "%s: out of memory", in_path);
        return -ENOMEM;
    }
    uint8_t *entries = j.table;
    j.table = entries + 8; /* entries after the skippable frame header */
    struct mfs_pack_ordered w = {.n = j.n_frames, .threads = opts->threads, .in_path = in_path, .ctx = &j,
                                 .init = zst_init, .fini = zst_fini, .encode = zst_encode, .commit = zst_commit};
    int rc = mfs_pack_run_ordered(&w, err);
    if (!rc) {
        uint64_t content = j.n_frames * 12 + 9;
        put32(entries, 0x184D2A5E);
        put32(entries + 4, (uint32_t)content);
        uint8_t *foot = entries + 8 + j.n_frames * 12;
        put32(foot, (uint32_t)j.n_frames);
        foot[4] = 0x80; /* checksums present */
        put32(foot + 5, 0x8F92EAB1);
        rc = mfs_out_write(out, entries, table_len, err);
    }
    if (res) {
        res->in_bytes = in_size;
        res->out_bytes = out->written;
        res->frames = j.n_frames;
    }
    free(entries);
    return rc;
}

enum mfs_pack_format mfs_pack_default_format(const char *in, const char *out)
{
    size_t ol = strlen(out);
    if (ol >= 4 && strcmp(out + ol - 4, ".zst") == 0)
        return MFS_PACK_ZST;
    int fd = open(in, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint8_t head[16];
    ssize_t n = -1;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        n = pread(fd, head, sizeof head, 0);
    if (fd >= 0)
        close(fd);
    if (n > 0 && mfs_pack_input_kind(head, (size_t)n, (uint64_t)st.st_size) != 0)
        return MFS_PACK_CONTAINER;
    return MFS_PACK_ZST;
}

int mfs_pack_file(const char *in, const char *out, const struct mfs_pack_opts *opts, struct mfs_pack_result *res,
                  mfs_err *err)
{
    if (opts->chunk > MFS_PACK_MAX_CHUNK || (opts->chunk && opts->chunk < 4096)) {
        mfs_err_set(err, "chunk size %" PRIu32 " is out of range (4 KiB to %u MiB)", opts->chunk, MFS_PACK_MAX_CHUNK >> 20);
        return -EINVAL;
    }
    if (opts->level < 0 || opts->level > ZSTD_maxCLevel()) {
        mfs_err_set(err, "compression level %d is out of range (1 to %d)", opts->level, ZSTD_maxCLevel());
        return -EINVAL;
    }
    int fd = open(in, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        mfs_err_set(err, "%s: cannot open: %s", in, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        mfs_err_set(err, "%s: not a regular file", in);
        close(fd);
        return -EINVAL;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    struct mfs_out o;
    int rc = mfs_out_open(&o, out, opts->force, err);
    if (rc) {
        close(fd);
        return rc;
    }
    if (opts->format == MFS_PACK_CONTAINER)
        rc = mfs_pack_container(fd, in, (uint64_t)st.st_size, &o, opts, res, err);
    else
        rc = pack_zst(fd, in, (uint64_t)st.st_size, &o, opts, res, err);
    close(fd);
    if (rc) {
        mfs_out_abort(&o);
        return rc;
    }
    return mfs_out_commit(&o, err);
}
