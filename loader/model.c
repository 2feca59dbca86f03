#include "mfs_model.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_internal.h"

enum ext_kind { EXT_BYTES, EXT_ZERO, EXT_SOURCE, EXT_TRANSFORM };

struct extent {
    uint64_t off, len; /* in the snapshot */
    enum ext_kind kind;
    union {
        uint8_t *bytes;
        struct {
            mfs_source *src;
            uint64_t src_off;
        };
        struct {
            const struct mfs_transform_ops *ops;
            void *ctx;
        };
    };
};

struct watched {
    char *path;
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
};

struct mfs_model {
    atomic_uint refs;
    char *path;
    char *format;
    char **notes;
    size_t n_notes;
    mfs_gguf *gguf;
    uint64_t data_offset, size;
    struct extent *ext;
    size_t n_ext, cap_ext;
    struct watched *files;
    size_t n_files;
    const struct mfs_root *root; /* the tree files are confined to, or NULL */
    mfs_source *main_src;
    pthread_mutex_t meta_mu;
    char *meta;
    size_t meta_len;
};

/* ---------------------------------------------------------------- building */

static struct extent *ext_push(mfs_model *m, uint64_t len, enum ext_kind kind)
{
    if (m->n_ext == m->cap_ext) {
        size_t cap = m->cap_ext ? m->cap_ext * 2 : 16;
        struct extent *e = realloc(m->ext, cap * sizeof *e);
        if (!e)
            return NULL;
        m->ext = e;
        m->cap_ext = cap;
    }
    struct extent *x = &m->ext[m->n_ext++];
    memset(x, 0, sizeof *x);
    x->off = m->size;
    x->len = len;
    x->kind = kind;
    m->size += len;
    return x;
}

int mfs_model_add_bytes(mfs_model *m, const void *data, uint64_t len)
{
    if (len == 0)
        return 0;
    uint8_t *copy = malloc(len);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, data, len);
    struct extent *x = ext_push(m, len, EXT_BYTES);
    if (!x) {
        free(copy);
        return -ENOMEM;
    }
    x->bytes = copy;
    return 0;
}

int mfs_model_add_zero(mfs_model *m, uint64_t len)
{
    if (len == 0)
        return 0;
    if (m->n_ext && m->ext[m->n_ext - 1].kind == EXT_ZERO) {
        m->ext[m->n_ext - 1].len += len;
        m->size += len;
        return 0;
    }
    return ext_push(m, len, EXT_ZERO) ? 0 : -ENOMEM;
}

int mfs_model_add_source(mfs_model *m, mfs_source *src, uint64_t off, uint64_t len)
{
    if (len == 0)
        return 0;
    struct extent *last = m->n_ext ? &m->ext[m->n_ext - 1] : NULL;
    if (last && last->kind == EXT_SOURCE && last->src == src && last->src_off + last->len == off) {
        last->len += len; /* contiguous in the same source */
        m->size += len;
        return 0;
    }
    struct extent *x = ext_push(m, len, EXT_SOURCE);
    if (!x)
        return -ENOMEM;
    x->src = mfs_source_ref(src);
    x->src_off = off;
    return 0;
}

int mfs_model_add_transform(mfs_model *m, uint64_t len, const struct mfs_transform_ops *ops, void *ctx)
{
    struct extent *x = len ? ext_push(m, len, EXT_TRANSFORM) : NULL;
    if (!x) {
        ops->free(ctx);
        return len ? -ENOMEM : 0;
    }
    x->ops = ops;
    x->ctx = ctx;
    return 0;
}

void mfs_model_set_header(mfs_model *m, mfs_gguf *g, uint64_t data_offset)
{
    mfs_gguf_free(m->gguf);
    m->gguf = g;
    m->data_offset = data_offset;
}

static char *vformat(const char *fmt, va_list ap)
{
    char *s = NULL;
    return vasprintf(&s, fmt, ap) < 0 ? NULL : s;
}

int mfs_model_set_format(mfs_model *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    if (!s)
        return -ENOMEM;
    free(m->format);
    m->format = s;
    return 0;
}

int mfs_model_add_note(mfs_model *m, const char *fmt, ...)
{
    char **n = realloc(m->notes, (m->n_notes + 1) * sizeof *n);
    if (!n)
        return -ENOMEM;
    m->notes = n;
    va_list ap;
    va_start(ap, fmt);
    char *s = vformat(fmt, ap);
    va_end(ap);
    if (!s)
        return -ENOMEM;
    m->notes[m->n_notes++] = s;
    return 0;
}

int mfs_model_watch_file(mfs_model *m, const char *path)
{
    struct stat st;
    int rc = mfs_stat_in(m->root, path, &st);
    if (rc)
        return rc;
    struct watched *f = realloc(m->files, (m->n_files + 1) * sizeof *f);
    if (!f)
        return -ENOMEM;
    m->files = f;
    char *p = strdup(path);
    if (!p)
        return -ENOMEM;
    m->files[m->n_files++] = (struct watched){.path = p, .dev = st.st_dev, .ino = st.st_ino, .size = st.st_size,
                                              .mtime = st.st_mtim};
    return 0;
}

void mfs_model_set_main_source(mfs_model *m, mfs_source *src)
{
    mfs_source_unref(m->main_src);
    m->main_src = mfs_source_ref(src);
}

const char *mfs_model_path(const mfs_model *m)
{
    return m->path;
}

mfs_source *mfs_model_main_source(const mfs_model *m)
{
    return m->main_src;
}

size_t mfs_model_notes(const mfs_model *m, const char *const **notes)
{
    *notes = (const char *const *)m->notes;
    return m->n_notes;
}

const char *mfs_model_meta(mfs_model *m, size_t *len)
{
    pthread_mutex_lock(&m->meta_mu);
    if (!m->meta) {
        char *buf = NULL;
        size_t n = 0;
        FILE *f = open_memstream(&buf, &n);
        if (f) {
            mfs_meta_write(m, f, false);
            if (fclose(f) == 0) {
                m->meta = buf;
                m->meta_len = n;
            } else {
                free(buf);
            }
        }
    }
    const char *meta = m->meta ? m->meta : "";
    *len = m->meta ? m->meta_len : 0;
    pthread_mutex_unlock(&m->meta_mu);
    return meta;
}

int mfs_model_describe(mfs_model *m, FILE *out, bool frames)
{
    mfs_meta_write(m, out, frames);
    return ferror(out) ? -EIO : 0;
}

static uint64_t pad_len(uint64_t x, uint64_t align)
{
    return (align - x % align) % align;
}

int mfs_plan_dense(mfs_model *m, mfs_gguf *g, uint32_t align, mfs_plan_tensor_fn fn, void *ctx, mfs_err *err)
{
    int rc = mfs_gguf_layout(g, align);
    if (rc) {
        mfs_err_set(err, "%s: cannot lay out the snapshot with alignment %" PRIu32 ": %s", m->path, align,
                    strerror(-rc));
        mfs_gguf_free(g);
        return rc;
    }
    uint8_t *hdr;
    size_t hlen;
    if ((rc = mfs_gguf_write_header(g, &hdr, &hlen, err))) {
        mfs_err_prefix(err, "%s", m->path);
        mfs_gguf_free(g);
        return rc;
    }
    rc = mfs_model_add_bytes(m, hdr, hlen);
    free(hdr);
    mfs_model_set_header(m, g, hlen);
    for (uint64_t i = 0; rc == 0 && i < mfs_gguf_n_tensors(g); i++) {
        const struct mfs_gguf_tensor *t = mfs_gguf_tensor(g, i);
        uint64_t before = m->size;
        rc = fn(ctx, m, i, t);
        if (rc == 0 && m->size - before != t->size) {
            mfs_err_set(err, "%s: internal error: tensor '%s' planned with %" PRIu64 " bytes, not %" PRIu64, m->path,
                        t->name.p, m->size - before, t->size);
            rc = -EINVAL;
        }
        if (rc == 0)
            rc = mfs_model_add_zero(m, pad_len(m->size, align));
    }
    if (rc == -ENOMEM)
        mfs_err_set(err, "%s: out of memory planning the snapshot", m->path);
    return rc;
}

/* ---------------------------------------------------------------- GGUF sources */

struct gguf_plan {
    mfs_source *src;
    const mfs_gguf *old;
    uint64_t old_data;
};

static int gguf_tensor(void *ctx, mfs_model *m, uint64_t i, const struct mfs_gguf_tensor *t)
{
    const struct gguf_plan *p = ctx;
    return mfs_model_add_source(m, p->src, p->old_data + mfs_gguf_tensor(p->old, i)->offset, t->size);
}

int mfs_plan_gguf(mfs_model *m, mfs_source *src, uint32_t align, mfs_err *err)
{
    mfs_gguf *g;
    int rc = mfs_gguf_parse(src, m->path, &g, err);
    if (rc)
        return rc;
    if (align == 0 || (align == mfs_gguf_alignment(g) && mfs_gguf_is_dense(g))) {
        /* Served as is: the same bytes as the source. */
        mfs_model_set_header(m, g, mfs_gguf_data_offset(g));
        return mfs_model_add_source(m, src, 0, mfs_source_size(src));
    }
    mfs_gguf *ng = mfs_gguf_dup(g);
    if (!ng) {
        mfs_gguf_free(g);
        mfs_err_set(err, "%s: out of memory", m->path);
        return -ENOMEM;
    }
    struct gguf_plan p = {.src = src, .old = g, .old_data = mfs_gguf_data_offset(g)};
    rc = mfs_plan_dense(m, ng, align, gguf_tensor, &p, err);
    if (rc == 0)
        mfs_model_add_note(m, "re-laid out with alignment %" PRIu32 " (source alignment %" PRIu32 ")", align,
                           mfs_gguf_alignment(g));
    mfs_gguf_free(g);
    return rc;
}

/* ---------------------------------------------------------------- open */

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void model_free(mfs_model *m)
{
    for (size_t i = 0; i < m->n_ext; i++) {
        struct extent *x = &m->ext[i];
        if (x->kind == EXT_BYTES)
            free(x->bytes);
        else if (x->kind == EXT_SOURCE)
            mfs_source_unref(x->src);
        else if (x->kind == EXT_TRANSFORM)
            x->ops->free(x->ctx);
    }
    for (size_t i = 0; i < m->n_files; i++)
        free(m->files[i].path);
    for (size_t i = 0; i < m->n_notes; i++)
        free(m->notes[i]);
    free(m->notes);
    free(m->files);
    free(m->ext);
    mfs_gguf_free(m->gguf);
    mfs_source_unref(m->main_src);
    free(m->format);
    free(m->meta);
    free(m->path);
    pthread_mutex_destroy(&m->meta_mu);
    free(m);
}

static int open_file_model(mfs_model *m, const struct mfs_model_opts *opts, mfs_err *err)
{
    mfs_source *src;
    int rc = mfs_source_open(m->path, &(struct mfs_open_opts){.engine = opts->engine, .root = opts->root}, &src, err);
    if (rc)
        return rc;
    mfs_model_set_main_source(m, src);
    const struct mfs_source_info *info = mfs_source_info(src);
    uint8_t magic[4] = {0};
    if (info->size >= 4 && (rc = mfs_source_read_exact(src, magic, 4, 0, err)))
        goto out;
    if (memcmp(magic, "GGUF", 4) == 0) {
        rc = mfs_plan_gguf(m, src, opts->align, err);
        if (rc == 0)
            rc = mfs_model_set_format(m, "GGUF v%" PRIu32, mfs_gguf_version(m->gguf));
    } else if (mfs_safetensors_is(src)) {
        rc = mfs_plan_safetensors(m, src, opts, err);
    } else {
        mfs_err_set(err, "%s: not a model file modelfs knows (no GGUF magic)", m->path);
        rc = -EINVAL;
    }
    if (rc == 0 && info->kind == MFS_SRC_ZSTD_STREAM)
        mfs_model_add_note(m, "single-frame zstd has no random access: reads decode from the start after every "
                              "backward seek; repack with `modelfs-pack` for fast random access");
out:
    mfs_source_unref(src);
    return rc;
}

int mfs_model_open(const char *path, const struct mfs_model_opts *opts, mfs_model **out, mfs_err *err)
{
    *out = NULL;
    if (opts->align && (opts->align < 32 || (opts->align & (opts->align - 1)))) {
        mfs_err_set(err, "align=%" PRIu32 ": must be a power of two >= 32", opts->align);
        return -EINVAL;
    }
    mfs_model *m = calloc(1, sizeof *m);
    if (!m || !(m->path = strdup(path))) {
        free(m);
        mfs_err_set(err, "%s: out of memory", path);
        return -ENOMEM;
    }
    atomic_init(&m->refs, 1);
    pthread_mutex_init(&m->meta_mu, NULL);
    m->root = opts->root;
    int rc = mfs_model_watch_file(m, path);
    if (rc) {
        mfs_err_set(err, "%s: %s", path, rc == -ELOOP && m->root ? "a symlink on the way (not followed)" : strerror(-rc));
        model_free(m);
        return rc;
    }
    struct stat st;
    if (mfs_stat_in(m->root, path, &st) == 0 && S_ISDIR(st.st_mode))
        rc = mfs_plan_hf_dir(m, path, opts, err);
    else
        rc = open_file_model(m, opts, err);
    if (rc) {
        model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

mfs_model *mfs_model_ref(mfs_model *m)
{
    if (m)
        atomic_fetch_add(&m->refs, 1);
    return m;
}

void mfs_model_unref(mfs_model *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1)
        model_free(m);
}

/* ---------------------------------------------------------------- reading */

static size_t find_extent(const mfs_model *m, uint64_t off)
{
    size_t lo = 0, hi = m->n_ext - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo + 1) / 2;
        if (m->ext[mid].off <= off)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

ssize_t mfs_model_read(mfs_model *m, void *buf, size_t len, uint64_t off)
{
    if (off >= m->size || len == 0)
        return 0;
    if (len > m->size - off)
        len = (size_t)(m->size - off);
    size_t done = 0;
    for (size_t i = find_extent(m, off); done < len; i++) {
        const struct extent *x = &m->ext[i];
        uint64_t at = off + done - x->off;
        size_t n = x->len - at < len - done ? (size_t)(x->len - at) : len - done;
        uint8_t *dst = (uint8_t *)buf + done;
        ssize_t got = (ssize_t)n;
        switch (x->kind) {
        case EXT_BYTES: memcpy(dst, x->bytes + at, n); break;
        case EXT_ZERO: memset(dst, 0, n); break;
        case EXT_SOURCE: got = mfs_source_read(x->src, dst, n, x->src_off + at); break;
        case EXT_TRANSFORM: got = x->ops->read(x->ctx, dst, n, at); break;
        }
        if (got < 0)
            return got;
        if ((size_t)got != n)
            return -EIO; /* a source shorter than planned: it changed */
        done += n;
    }
    return (ssize_t)done;
}

uint64_t mfs_model_size(const mfs_model *m) { return m->size; }
const mfs_gguf *mfs_model_gguf(const mfs_model *m) { return m->gguf; }
uint64_t mfs_model_data_offset(const mfs_model *m) { return m->data_offset; }
const char *mfs_model_format(const mfs_model *m) { return m->format ? m->format : "unknown"; }

struct timespec mfs_model_mtime(const mfs_model *m)
{
    struct timespec t = {0, 0};
    for (size_t i = 0; i < m->n_files; i++) {
        const struct timespec *f = &m->files[i].mtime;
        if (f->tv_sec > t.tv_sec || (f->tv_sec == t.tv_sec && f->tv_nsec > t.tv_nsec))
            t = *f;
    }
    return t;
}

bool mfs_model_changed(const mfs_model *m)
{
    for (size_t i = 0; i < m->n_files; i++) {
        const struct watched *f = &m->files[i];
        struct stat st;
        if (mfs_stat_in(m->root, f->path, &st) != 0 || st.st_dev != f->dev || st.st_ino != f->ino || st.st_size != f->size ||
            st.st_mtim.tv_sec != f->mtime.tv_sec || st.st_mtim.tv_nsec != f->mtime.tv_nsec)
            return true;
    }
    return false;
}

/* ---------------------------------------------------------------- names */

bool mfs_model_presented_name(const char *path, const char *name, const struct stat *st, char *out, size_t cap)
{
    char base[4096];
    if (S_ISDIR(st->st_mode)) {
        /* A Hugging Face checkpoint: config.json and at least one *.safetensors[.zst]. */
        char p[4096];
        if ((size_t)snprintf(p, sizeof p, "%s/config.json", path) >= sizeof p || access(p, R_OK) != 0)
            return false;
        DIR *d = opendir(path);
        if (!d)
            return false;
        bool found = false;
        for (struct dirent *e; !found && (e = readdir(d));)
            found = has_suffix(e->d_name, ".safetensors") || has_suffix(e->d_name, ".safetensors.zst");
        closedir(d);
        return found && (size_t)snprintf(out, cap, "%s.gguf", name) < cap;
    }
    if (!S_ISREG(st->st_mode) || strlen(name) >= sizeof base)
        return false;
    strcpy(base, name);
    bool container = false;
    if (has_suffix(base, ".zst"))
        base[strlen(base) - 4] = '\0';
    else if (has_suffix(base, ".mfz"))
        base[strlen(base) - 4] = '\0', container = true;
    if (has_suffix(base, ".safetensors"))
        base[strlen(base) - strlen(".safetensors")] = '\0';
    else if (has_suffix(base, ".gguf"))
        base[strlen(base) - 5] = '\0';
    else if (!container)
        return false;
    if (!base[0])
        return false;
    return (size_t)snprintf(out, cap, "%s.gguf", base) < cap;
}

bool mfs_model_tensor_filename(const char *name, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        bool esc = c == '%' || c == '/' || c < 0x20 || c == 0x7F || (i == 0 && c == '.');
        if (o + (esc ? 3 : 1) >= cap)
            return false;
        if (esc) {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            out[o++] = (char)c;
        }
    }
    if (o == 0 || o >= cap || o > 255) /* empty, or over NAME_MAX: no file for it */
        return false;
    out[o] = '\0';
    return true;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

bool mfs_model_tensor_unescape(const char *fname, char *out, size_t cap, size_t *out_len)
{
    size_t o = 0;
    for (const char *p = fname; *p; p++) {
        char c = *p;
        if (c == '%') {
            int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
            if (lo < 0)
                return false;
            c = (char)(hi << 4 | lo);
            p += 2;
        }
        if (o + 1 >= cap)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    *out_len = o;
    return true;
}

int mfs_model_shape_str(const struct mfs_gguf_tensor *t, char *out, size_t cap)
{
    size_t o = 0;
    int n = snprintf(out, cap, "[");
    for (uint32_t d = 0; n >= 0 && d < t->n_dims; d++) {
        o += (size_t)n;
        if (o >= cap)
            return -ENOSPC;
        n = snprintf(out + o, cap - o, d ? ", %" PRId64 : "%" PRId64, t->ne[d]);
    }
    if (n < 0)
        return -EINVAL;
    o += (size_t)n;
    if (o >= cap || (size_t)snprintf(out + o, cap - o, "]") >= cap - o)
        return -ENOSPC;
    return 0;
}
