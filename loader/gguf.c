#include "mfs_gguf.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "modelfs reads little-endian files with native loads: a little-endian host is required"
#endif

/* Nesting of arrays inside arrays: gguf allows it, no published file goes past 2. */
#define MAX_ARRAY_DEPTH 8

struct mfs_gguf {
    uint32_t version;
    uint32_t alignment;
    uint64_t header_size;
    uint64_t data_offset;

    struct mfs_gguf_kv *kvs;
    uint64_t n_kv, cap_kv;

    struct mfs_gguf_tensor *tensors;
    uint64_t n_tensors, cap_tensors;
    /* open addressing over tensor names: slot holds index + 1, 0 = empty */
    uint64_t *thash;
    uint64_t thash_cap;

    mfs_arena arena;
};

static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE float sizes");

static const struct {
    const char *name;
    size_t size;
} k_vtypes[MFS_GGUF_VTYPE_COUNT] = {
    [MFS_GGUF_U8] = {"u8", 1},   [MFS_GGUF_I8] = {"i8", 1},     [MFS_GGUF_U16] = {"u16", 2},
    [MFS_GGUF_I16] = {"i16", 2}, [MFS_GGUF_U32] = {"u32", 4},   [MFS_GGUF_I32] = {"i32", 4},
    [MFS_GGUF_F32] = {"f32", 4}, [MFS_GGUF_BOOL] = {"bool", 1}, [MFS_GGUF_STR] = {"str", 0},
    [MFS_GGUF_ARR] = {"arr", 0}, [MFS_GGUF_U64] = {"u64", 8},   [MFS_GGUF_I64] = {"i64", 8},
    [MFS_GGUF_F64] = {"f64", 8},
};
static_assert(sizeof k_vtypes / sizeof k_vtypes[0] == MFS_GGUF_VTYPE_COUNT, "table follows the enum");

const char *mfs_gguf_vtype_name(uint32_t type)
{
    return type < MFS_GGUF_VTYPE_COUNT ? k_vtypes[type].name : NULL;
}

size_t mfs_gguf_vtype_size(uint32_t type)
{
    return type < MFS_GGUF_VTYPE_COUNT ? k_vtypes[type].size : 0;
}

static uint64_t pad_to(uint64_t x, uint64_t align)
{
    return (x + align - 1) / align * align;
}

static uint64_t hash_bytes(const char *p, uint64_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (uint64_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h;
}

static bool str_eq(struct mfs_str a, const char *b, size_t blen)
{
    return a.len == blen && memcmp(a.p, b, blen) == 0;
}

/* ---------------------------------------------------------------- reader */

struct rd {
    mfs_source *src;
    const char *name;
    mfs_err *err;
    mfs_arena *arena;
    uint64_t pos;  /* next byte to consume */
    uint64_t size; /* of the source */
    uint64_t mem;  /* bytes of memory the parsed header takes so far */
    uint8_t buf[1 << 16];
    uint64_t buf_off; /* source offset of buf[0] */
    size_t buf_len;
};

static int rd_fail(struct rd *r, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int rd_fail(struct rd *r, int rc, const char *fmt, ...)
{
    char reason[MFS_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    mfs_err_set(r->err, "%s: %s", r->name, reason);
    return rc;
}

/* Bytes left in the source from the read position: every count is checked against this. */
static uint64_t rd_left(const struct rd *r)
{
    return r->size - r->pos;
}

static int rd_bytes(struct rd *r, void *dst, uint64_t n, const char *what)
{
    if (n > rd_left(r))
        return rd_fail(r, -EINVAL, "%s at offset %" PRIu64 " runs past the end of the file (%" PRIu64 " bytes)", what,
                       r->pos, r->size);
    if (r->pos + n > MFS_GGUF_MAX_HEADER)
        return rd_fail(r, -EINVAL, "header larger than %llu MiB (at %s)", MFS_GGUF_MAX_HEADER >> 20, what);
    uint8_t *d = dst;
    while (n > 0) {
        if (r->pos < r->buf_off || r->pos >= r->buf_off + r->buf_len) {
            uint64_t want = r->size - r->pos < sizeof r->buf ? r->size - r->pos : sizeof r->buf;
            ssize_t got = mfs_source_read(r->src, r->buf, (size_t)want, r->pos);
            if (got < 0 && want > n) {
                /* The read-ahead may reach past the header into damaged tensor data: only the
                 * bytes the header needs decide. */
                r->buf_len = 0;
                got = mfs_source_read(r->src, d, (size_t)n, r->pos);
                if (got == (ssize_t)n) {
                    r->pos += n;
                    return 0;
                }
                want = n;
            }
            if (got < 0)
                return rd_fail(r, (int)got, "read failed at offset %" PRIu64 ": %s", r->pos, strerror((int)-got));
            if ((uint64_t)got != want)
                return rd_fail(r, -EIO, "short read at offset %" PRIu64, r->pos);
            r->buf_off = r->pos;
            r->buf_len = (size_t)got;
        }
        size_t at = (size_t)(r->pos - r->buf_off);
        size_t k = r->buf_len - at < n ? r->buf_len - at : (size_t)n;
        memcpy(d, r->buf + at, k);
        d += k;
        n -= k;
        r->pos += k;
    }
    return 0;
}

/* Header bytes that may still follow: every count is checked against this before allocating. */
static uint64_t rd_room(const struct rd *r)
{
    uint64_t cap = r->pos < MFS_GGUF_MAX_HEADER ? MFS_GGUF_MAX_HEADER - r->pos : 0;
    return rd_left(r) < cap ? rd_left(r) : cap;
}

/* Account for `bytes` of memory the parsed header will hold (MFS_GGUF_MAX_MEMORY). */
static int rd_mem(struct rd *r, uint64_t bytes, const char *what)
{
    if (bytes > MFS_GGUF_MAX_MEMORY - r->mem)
        return rd_fail(r, -EINVAL, "header would take more than %llu MiB of memory (at %s)",
                       MFS_GGUF_MAX_MEMORY >> 20, what);
    r->mem += bytes;
    return 0;
}

static int rd_u32(struct rd *r, uint32_t *v, const char *what)
{
    return rd_bytes(r, v, 4, what);
}

static int rd_u64(struct rd *r, uint64_t *v, const char *what)
{
    return rd_bytes(r, v, 8, what);
}

static int rd_str(struct rd *r, struct mfs_str *s, uint64_t max_len, const char *what)
{
    uint64_t len;
    int rc = rd_u64(r, &len, what);
    if (rc)
        return rc;
    if (len > rd_left(r))
        return rd_fail(r, -EINVAL, "%s: string length %" PRIu64 " at offset %" PRIu64 " runs past the end of the file",
                       what, len, r->pos - 8);
    if (len > max_len)
        return rd_fail(r, -EINVAL, "%s: string length %" PRIu64 " exceeds the limit of %" PRIu64, what, len, max_len);
    if (len > rd_room(r))
        return rd_fail(r, -EINVAL, "%s: string of %" PRIu64 " bytes: header larger than %llu MiB", what, len,
                       MFS_GGUF_MAX_HEADER >> 20);
    if ((rc = rd_mem(r, (len + 8) & ~(uint64_t)7, what))) /* the arena's rounding */
        return rc;
    char *p = mfs_arena_alloc(r->arena, len + 1);
    if (!p)
        return rd_fail(r, -ENOMEM, "out of memory");
    if ((rc = rd_bytes(r, p, len, what)))
        return rc;
    p[len] = '\0';
    s->len = len;
    s->p = p;
    return 0;
}

static int rd_value(struct rd *r, uint32_t type, struct mfs_gguf_value *v, int depth, const char *what);

static int rd_array(struct rd *r, struct mfs_gguf_value *v, int depth, const char *what)
{
    uint32_t et;
    uint64_t n;
    int rc;
    if ((rc = rd_u32(r, &et, what)) || (rc = rd_u64(r, &n, what)))
        return rc;
    if (et >= MFS_GGUF_VTYPE_COUNT)
        return rd_fail(r, -EINVAL, "%s: unknown array element type %" PRIu32, what, et);
    if (depth >= MAX_ARRAY_DEPTH)
        return rd_fail(r, -EINVAL, "%s: arrays nested deeper than %d", what, MAX_ARRAY_DEPTH);
    /* Smallest encoding of one element: every count is bounded by the bytes left. */
    uint64_t min_elem = et == MFS_GGUF_STR ? 8 : et == MFS_GGUF_ARR ? 12 : k_vtypes[et].size;
    if (n > rd_left(r) / min_elem)
        return rd_fail(r, -EINVAL, "%s: array of %" PRIu64 " %s elements runs past the end of the file", what, n,
                       k_vtypes[et].name);
    if (n > rd_room(r) / min_elem)
        return rd_fail(r, -EINVAL, "%s: array of %" PRIu64 " %s elements: header larger than %llu MiB", what, n,
                       k_vtypes[et].name, MFS_GGUF_MAX_HEADER >> 20);
    /* n < 64 MiB: no product below overflows */
    size_t slot = et == MFS_GGUF_STR ? sizeof(struct mfs_str) : et == MFS_GGUF_ARR ? sizeof(struct mfs_gguf_value) : 0;
    if ((rc = rd_mem(r, slot ? n * slot : (n * min_elem + 7) & ~(uint64_t)7, what)))
        return rc;
    v->arr.type = et;
    v->arr.n = n;
    if (et == MFS_GGUF_STR || et == MFS_GGUF_ARR) {
        size_t item = et == MFS_GGUF_STR ? sizeof(struct mfs_str) : sizeof(struct mfs_gguf_value);
        void *items = mfs_arena_alloc(r->arena, n * item); /* n * item <= 4 * left: no overflow */
        if (!items && n)
            return rd_fail(r, -ENOMEM, "out of memory");
        for (uint64_t i = 0; i < n; i++) {
            if (et == MFS_GGUF_STR)
                rc = rd_str(r, (struct mfs_str *)items + i, UINT64_MAX, what);
            else
                rc = rd_array(r, (struct mfs_gguf_value *)items + i, depth + 1, what);
            if (rc)
                return rc;
            if (et == MFS_GGUF_ARR)
                ((struct mfs_gguf_value *)items)[i].type = MFS_GGUF_ARR;
        }
        v->arr.data = items;
        return 0;
    }
    uint64_t bytes = n * min_elem;
    void *data = mfs_arena_alloc(r->arena, bytes);
    if (!data && bytes)
        return rd_fail(r, -ENOMEM, "out of memory");
    if ((rc = rd_bytes(r, data, bytes, what)))
        return rc;
    if (et == MFS_GGUF_BOOL)
        for (uint64_t i = 0; i < n; i++)
            if (((uint8_t *)data)[i] > 1)
                return rd_fail(r, -EINVAL, "%s: bool array element %" PRIu64 " is %u, not 0 or 1", what, i,
                               ((uint8_t *)data)[i]);
    v->arr.data = data;
    return 0;
}

static int rd_value(struct rd *r, uint32_t type, struct mfs_gguf_value *v, int depth, const char *what)
{
    v->type = type;
    if (type >= MFS_GGUF_VTYPE_COUNT)
        return rd_fail(r, -EINVAL, "%s: unknown value type %" PRIu32, what, type);
    if (type == MFS_GGUF_STR)
        return rd_str(r, &v->str, UINT64_MAX, what);
    if (type == MFS_GGUF_ARR)
        return rd_array(r, v, depth, what);
    int rc = rd_bytes(r, &v->u64, k_vtypes[type].size, what); /* scalars share the union's start */
    if (rc == 0 && type == MFS_GGUF_BOOL && v->u8 > 1)
        return rd_fail(r, -EINVAL, "%s: bool value is %u, not 0 or 1", what, v->u8);
    return rc;
}

/* ---------------------------------------------------------------- storage */

static int grow(void **p, uint64_t *cap, uint64_t need, size_t item)
{
    if (need <= *cap)
        return 0;
    uint64_t c = *cap ? *cap : 8;
    while (c < need)
        c *= 2;
    if (c > SIZE_MAX / item)
        return -ENOMEM;
    void *q = realloc(*p, c * item);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static int thash_rebuild(mfs_gguf *g)
{
    uint64_t cap = 16;
    while (cap < g->n_tensors * 2)
        cap *= 2;
    uint64_t *h = calloc(cap, sizeof *h);
    if (!h)
        return -ENOMEM;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        uint64_t s = hash_bytes(g->tensors[i].name.p, g->tensors[i].name.len) & (cap - 1);
        while (h[s])
            s = (s + 1) & (cap - 1);
        h[s] = i + 1;
    }
    free(g->thash);
    g->thash = h;
    g->thash_cap = cap;
    return 0;
}

static int64_t find_tensor_n(const mfs_gguf *g, const char *name, size_t len)
{
    if (!g->thash)
        return -1;
    uint64_t s = hash_bytes(name, len) & (g->thash_cap - 1);
    while (g->thash[s]) {
        uint64_t i = g->thash[s] - 1;
        if (str_eq(g->tensors[i].name, name, len))
            return (int64_t)i;
        s = (s + 1) & (g->thash_cap - 1);
    }
    return -1;
}

static int64_t find_key_n(const mfs_gguf *g, const char *key, size_t len)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (str_eq(g->kvs[i].key, key, len))
            return (int64_t)i;
    return -1;
}

mfs_gguf *mfs_gguf_new(void)
{
    mfs_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->version = 3;
    g->alignment = MFS_GGUF_DEFAULT_ALIGNMENT;
    mfs_arena_init(&g->arena);
    return g;
}

void mfs_gguf_free(mfs_gguf *g)
{
    if (!g)
        return;
    mfs_arena_free(&g->arena);
    free(g->kvs);
    free(g->tensors);
    free(g->thash);
    free(g);
}

/* ---------------------------------------------------------------- parse */

struct span {
    uint64_t start, end, idx;
};

static int span_cmp(const void *a, const void *b)
{
    const struct span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start ? 1 : (x->end > y->end) - (x->end < y->end);
}

static int check_tensors(struct rd *r, mfs_gguf *g)
{
    struct span *sp = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof *sp);
    if (!sp)
        return rd_fail(r, -ENOMEM, "out of memory");
    uint64_t n = 0;
    int rc = 0;
    for (uint64_t i = 0; i < g->n_tensors && !rc; i++) {
        const struct mfs_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0) {
            rc = rd_fail(r, -EINVAL, "tensor '%s': offset %" PRIu64 " is not a multiple of the alignment %" PRIu32,
                         t->name.p, t->offset, g->alignment);
            break;
        }
        uint64_t start = g->data_offset + t->offset;
        if (start < t->offset || start + t->size < start || start + t->size > r->size) {
            if (start < t->offset || start + t->size < start)
                start = UINT64_MAX - t->size; /* report without wrapping */
            rc = rd_fail(r, -EINVAL, "tensor '%s': data [%" PRIu64 ", %" PRIu64 ") is outside the file (%" PRIu64 " bytes)",
                         t->name.p, start, start + t->size, r->size);
            break;
        }
        if (t->size)
            sp[n++] = (struct span){start, start + t->size, i};
    }
    if (!rc) {
        qsort(sp, n, sizeof *sp, span_cmp);
        for (uint64_t i = 1; i < n; i++)
            if (sp[i].start < sp[i - 1].end) {
                rc = rd_fail(r, -EINVAL, "tensors '%s' and '%s' overlap", g->tensors[sp[i - 1].idx].name.p,
                             g->tensors[sp[i].idx].name.p);
                break;
            }
    }
    free(sp);
    return rc;
}

static int parse_tensor(struct rd *r, mfs_gguf *g, uint64_t i)
{
    struct mfs_gguf_tensor *t = &g->tensors[i];
    char what[64];
    snprintf(what, sizeof what, "tensor %" PRIu64, i);
    int rc = rd_str(r, &t->name, MFS_GGUF_MAX_KEY, what);
    if (rc)
        return rc;
    if (memchr(t->name.p, '\0', t->name.len))
        return rd_fail(r, -EINVAL, "tensor %" PRIu64 ": name contains a NUL byte", i);
    if ((rc = rd_u32(r, &t->n_dims, what)))
        return rc;
    if (t->n_dims < 1 || t->n_dims > MFS_GGML_MAX_DIMS)
        return rd_fail(r, -EINVAL, "tensor '%s': %" PRIu32 " dimensions (must be 1 to %d)", t->name.p, t->n_dims,
                       MFS_GGML_MAX_DIMS);
    for (uint32_t d = 0; d < MFS_GGML_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < t->n_dims && (rc = rd_u64(r, &ne, what)))
            return rc;
        if (ne > (uint64_t)INT64_MAX)
            return rd_fail(r, -EINVAL, "tensor '%s': dimension %" PRIu32 " is %" PRIu64 " (negative as int64)", t->name.p,
                           d, ne);
        t->ne[d] = (int64_t)ne;
    }
    if ((rc = rd_u32(r, &t->type, what)) || (rc = rd_u64(r, &t->offset, what)))
        return rc;
    if (!mfs_ggml_type_valid(t->type))
        return rd_fail(r, -EINVAL, "tensor '%s': unknown ggml type %" PRIu32, t->name.p, t->type);
    rc = mfs_ggml_nbytes(t->type, t->n_dims, t->ne, &t->size);
    if (rc == -EOVERFLOW)
        return rd_fail(r, -EINVAL, "tensor '%s': shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64 "] overflows",
                       t->name.p, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
    if (rc)
        return rd_fail(r, -EINVAL, "tensor '%s': first dimension %" PRId64 " is not a multiple of %s's block size %" PRIu32,
                       t->name.p, t->ne[0], mfs_ggml_type_name(t->type), mfs_ggml_blck_size(t->type));
    return 0;
}

int mfs_gguf_parse(mfs_source *src, const char *name, mfs_gguf **out, mfs_err *err)
{
    *out = NULL;
    mfs_gguf *g = mfs_gguf_new();
    struct rd *r = malloc(sizeof *r);
    if (!g || !r) {
        mfs_gguf_free(g);
        free(r);
        mfs_err_set(err, "%s: out of memory", name ? name : mfs_source_name(src));
        return -ENOMEM;
    }
    *r = (struct rd){.src = src, .name = name ? name : mfs_source_name(src), .err = err, .arena = &g->arena,
                     .size = mfs_source_size(src)};
    int rc;
    uint32_t magic;
    uint64_t n_tensors, n_kv;
    if ((rc = rd_u32(r, &magic, "magic")))
        goto fail;
    if (magic != MFS_GGUF_MAGIC) {
        rc = rd_fail(r, -EINVAL, "not a GGUF file (bad magic)");
        goto fail;
    }
    if ((rc = rd_u32(r, &g->version, "version")))
        goto fail;
    if (g->version != 2 && g->version != 3) {
        rc = rd_fail(r, -EINVAL, "GGUF version %" PRIu32 " is not supported (only 2 and 3)", g->version);
        goto fail;
    }
    if ((rc = rd_u64(r, &n_tensors, "tensor count")) || (rc = rd_u64(r, &n_kv, "key count")))
        goto fail;
    /* A key/value takes at least 8 + 4 + 1 bytes, a tensor info 8 + 4 + 8 + 4 + 8; the header
     * holds at most MFS_GGUF_MAX_HEADER of them (so the products below cannot overflow). */
    if (n_kv > rd_room(r) / 13) {
        rc = rd_fail(r, -EINVAL, "key count %" PRIu64 " is too large for the %s", n_kv,
                     rd_left(r) <= rd_room(r) ? "file" : "header size limit");
        goto fail;
    }
    if (n_tensors > rd_room(r) / 32) {
        rc = rd_fail(r, -EINVAL, "tensor count %" PRIu64 " is too large for the %s", n_tensors,
                     rd_left(r) <= rd_room(r) ? "file" : "header size limit");
        goto fail;
    }
    /* the tables, and the tensor name hash (2 slots per tensor at most, 8 bytes each) */
    if ((rc = rd_mem(r, n_kv * sizeof *g->kvs, "key table")) ||
        (rc = rd_mem(r, n_tensors * (sizeof *g->tensors + 16), "tensor table")))
        goto fail;
    if ((rc = grow((void **)&g->kvs, &g->cap_kv, n_kv, sizeof *g->kvs)) ||
        (rc = grow((void **)&g->tensors, &g->cap_tensors, n_tensors, sizeof *g->tensors))) {
        rd_fail(r, rc, "out of memory");
        goto fail;
    }
    for (uint64_t i = 0; i < n_kv; i++) {
        struct mfs_gguf_kv *kv = &g->kvs[i];
        char what[64];
        snprintf(what, sizeof what, "key %" PRIu64, i);
        uint32_t type;
        if ((rc = rd_str(r, &kv->key, MFS_GGUF_MAX_KEY, what)) || (rc = rd_u32(r, &type, kv->key.p)) ||
            (rc = rd_value(r, type, &kv->value, 0, kv->key.p)))
            goto fail;
        if (memchr(kv->key.p, '\0', kv->key.len)) {
            rc = rd_fail(r, -EINVAL, "key %" PRIu64 ": name contains a NUL byte", i);
            goto fail;
        }
        if (find_key_n(g, kv->key.p, kv->key.len) >= 0) {
            rc = rd_fail(r, -EINVAL, "duplicate key '%s'", kv->key.p);
            goto fail;
        }
        g->n_kv = i + 1;
    }
    const struct mfs_gguf_value *al = mfs_gguf_get(g, "general.alignment");
    if (al) {
        if (al->type != MFS_GGUF_U32) {
            rc = rd_fail(r, -EINVAL, "general.alignment has type %s, not u32", mfs_gguf_vtype_name(al->type));
            goto fail;
        }
        if (al->u32 == 0 || (al->u32 & (al->u32 - 1)) != 0) {
            rc = rd_fail(r, -EINVAL, "general.alignment %" PRIu32 " is not a power of two", al->u32);
            goto fail;
        }
        g->alignment = al->u32;
    }
    for (uint64_t i = 0; i < n_tensors; i++) {
        if ((rc = parse_tensor(r, g, i)))
            goto fail;
        g->n_tensors = i + 1;
        if (find_tensor_n(g, g->tensors[i].name.p, g->tensors[i].name.len) >= 0) {
            rc = rd_fail(r, -EINVAL, "duplicate tensor name '%s'", g->tensors[i].name.p);
            goto fail;
        }
        /* keep the hash current so duplicates are found as they come */
        if (g->n_tensors * 2 > g->thash_cap) {
            if ((rc = thash_rebuild(g))) {
                rd_fail(r, rc, "out of memory");
                goto fail;
            }
        } else {
            uint64_t s = hash_bytes(g->tensors[i].name.p, g->tensors[i].name.len) & (g->thash_cap - 1);
            while (g->thash[s])
                s = (s + 1) & (g->thash_cap - 1);
            g->thash[s] = i + 1;
        }
    }
    g->header_size = r->pos;
    g->data_offset = pad_to(r->pos, g->alignment);
    if ((rc = check_tensors(r, g)))
        goto fail;
    if (!g->thash && (rc = thash_rebuild(g)))
        goto fail;
    free(r);
    *out = g;
    return 0;
fail:
    free(r);
    mfs_gguf_free(g);
    return rc;
}

int mfs_gguf_parse_memory(const void *data, size_t size, const char *name, mfs_gguf **out, mfs_err *err)
{
    mfs_source *src;
    int rc = mfs_source_open_memory(data, size, name, &src);
    if (rc) {
        mfs_err_set(err, "%s: out of memory", name);
        return rc;
    }
    rc = mfs_gguf_parse(src, name, out, err);
    mfs_source_unref(src);
    return rc;
}

/* ---------------------------------------------------------------- accessors */

uint32_t mfs_gguf_version(const mfs_gguf *g) { return g->version; }
uint32_t mfs_gguf_alignment(const mfs_gguf *g) { return g->alignment; }
uint64_t mfs_gguf_data_offset(const mfs_gguf *g) { return g->data_offset; }
uint64_t mfs_gguf_header_size(const mfs_gguf *g) { return g->header_size; }
uint64_t mfs_gguf_n_kv(const mfs_gguf *g) { return g->n_kv; }
uint64_t mfs_gguf_n_tensors(const mfs_gguf *g) { return g->n_tensors; }

uint64_t mfs_gguf_data_end(const mfs_gguf *g)
{
    uint64_t end = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].offset + g->tensors[i].size > end)
            end = g->tensors[i].offset + g->tensors[i].size;
    return end;
}

const struct mfs_gguf_kv *mfs_gguf_kv(const mfs_gguf *g, uint64_t i)
{
    return i < g->n_kv ? &g->kvs[i] : NULL;
}

const struct mfs_gguf_tensor *mfs_gguf_tensor(const mfs_gguf *g, uint64_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

int64_t mfs_gguf_find_key(const mfs_gguf *g, const char *key)
{
    return find_key_n(g, key, strlen(key));
}

int64_t mfs_gguf_find_tensor(const mfs_gguf *g, const char *name)
{
    return find_tensor_n(g, name, strlen(name));
}

const struct mfs_gguf_value *mfs_gguf_get(const mfs_gguf *g, const char *key)
{
    int64_t i = mfs_gguf_find_key(g, key);
    return i < 0 ? NULL : &g->kvs[i].value;
}

int mfs_gguf_get_uint(const mfs_gguf *g, const char *key, uint64_t *out)
{
    const struct mfs_gguf_value *v = mfs_gguf_get(g, key);
    if (!v)
        return -ENOENT;
    int64_t s;
    switch (v->type) {
    case MFS_GGUF_U8: *out = v->u8; return 0;
    case MFS_GGUF_U16: *out = v->u16; return 0;
    case MFS_GGUF_U32: *out = v->u32; return 0;
    case MFS_GGUF_U64: *out = v->u64; return 0;
    case MFS_GGUF_I8: s = v->i8; break;
    case MFS_GGUF_I16: s = v->i16; break;
    case MFS_GGUF_I32: s = v->i32; break;
    case MFS_GGUF_I64: s = v->i64; break;
    default: return -EINVAL;
    }
    if (s < 0)
        return -EINVAL;
    *out = (uint64_t)s;
    return 0;
}

int mfs_gguf_get_float(const mfs_gguf *g, const char *key, double *out)
{
    const struct mfs_gguf_value *v = mfs_gguf_get(g, key);
    if (!v)
        return -ENOENT;
    if (v->type == MFS_GGUF_F32)
        *out = v->f32;
    else if (v->type == MFS_GGUF_F64)
        *out = v->f64;
    else
        return -EINVAL;
    return 0;
}

int mfs_gguf_get_bool(const mfs_gguf *g, const char *key, bool *out)
{
    const struct mfs_gguf_value *v = mfs_gguf_get(g, key);
    if (!v)
        return -ENOENT;
    if (v->type != MFS_GGUF_BOOL)
        return -EINVAL;
    *out = v->b;
    return 0;
}

int mfs_gguf_get_str(const mfs_gguf *g, const char *key, struct mfs_str *out)
{
    const struct mfs_gguf_value *v = mfs_gguf_get(g, key);
    if (!v)
        return -ENOENT;
    if (v->type != MFS_GGUF_STR)
        return -EINVAL;
    *out = v->str;
    return 0;
}

int mfs_gguf_get_arr(const mfs_gguf *g, const char *key, int elem_type, const struct mfs_gguf_value **out)
{
    const struct mfs_gguf_value *v = mfs_gguf_get(g, key);
    if (!v)
        return -ENOENT;
    if (v->type != MFS_GGUF_ARR || (elem_type >= 0 && v->arr.type != (uint32_t)elem_type))
        return -EINVAL;
    *out = v;
    return 0;
}

/* ---------------------------------------------------------------- building */

static int copy_str(mfs_arena *a, struct mfs_str *dst, const char *p, uint64_t len)
{
    char *q = mfs_arena_alloc(a, len + 1);
    if (!q)
        return -ENOMEM;
    memcpy(q, p, len);
    q[len] = '\0';
    dst->p = q;
    dst->len = len;
    return 0;
}

static int copy_value(mfs_arena *a, struct mfs_gguf_value *dst, const struct mfs_gguf_value *src, int depth)
{
    if (src->type >= MFS_GGUF_VTYPE_COUNT || depth > MAX_ARRAY_DEPTH)
        return -EINVAL;
    *dst = *src;
    if (src->type == MFS_GGUF_STR)
        return copy_str(a, &dst->str, src->str.p, src->str.len);
    if (src->type != MFS_GGUF_ARR)
        return 0;
    uint32_t et = src->arr.type;
    uint64_t n = src->arr.n;
    if (et >= MFS_GGUF_VTYPE_COUNT)
        return -EINVAL;
    size_t item = et == MFS_GGUF_STR ? sizeof(struct mfs_str) : et == MFS_GGUF_ARR ? sizeof(struct mfs_gguf_value)
                                                                                  : k_vtypes[et].size;
    if (n > SIZE_MAX / item)
        return -ENOMEM;
    void *data = mfs_arena_alloc(a, n * item);
    if (!data && n)
        return -ENOMEM;
    dst->arr.data = data;
    if (et == MFS_GGUF_STR) {
        for (uint64_t i = 0; i < n; i++) {
            const struct mfs_str *s = (const struct mfs_str *)src->arr.data + i;
            if (copy_str(a, (struct mfs_str *)data + i, s->p, s->len))
                return -ENOMEM;
        }
    } else if (et == MFS_GGUF_ARR) {
        for (uint64_t i = 0; i < n; i++) {
            int rc = copy_value(a, (struct mfs_gguf_value *)data + i, (const struct mfs_gguf_value *)src->arr.data + i,
                                depth + 1);
            if (rc)
                return rc;
        }
    } else if (n) {
        memcpy(data, src->arr.data, n * item);
    }
    return 0;
}

int mfs_gguf_set(mfs_gguf *g, const char *key, const struct mfs_gguf_value *v)
{
    size_t klen = strlen(key);
    if (klen > MFS_GGUF_MAX_KEY)
        return -EINVAL;
    struct mfs_gguf_value copy;
    int rc = copy_value(&g->arena, &copy, v, 0);
    if (rc)
        return rc;
    int64_t i = find_key_n(g, key, klen);
    if (i >= 0) {
        g->kvs[i].value = copy;
        return 0;
    }
    if ((rc = grow((void **)&g->kvs, &g->cap_kv, g->n_kv + 1, sizeof *g->kvs)))
        return rc;
    struct mfs_gguf_kv *kv = &g->kvs[g->n_kv];
    if ((rc = copy_str(&g->arena, &kv->key, key, klen)))
        return rc;
    kv->value = copy;
    g->n_kv++;
    return 0;
}

int mfs_gguf_set_u32(mfs_gguf *g, const char *key, uint32_t v)
{
    return mfs_gguf_set(g, key, &(struct mfs_gguf_value){.type = MFS_GGUF_U32, .u32 = v});
}

int mfs_gguf_set_i32(mfs_gguf *g, const char *key, int32_t v)
{
    return mfs_gguf_set(g, key, &(struct mfs_gguf_value){.type = MFS_GGUF_I32, .i32 = v});
}

int mfs_gguf_set_u64(mfs_gguf *g, const char *key, uint64_t v)
{
    return mfs_gguf_set(g, key, &(struct mfs_gguf_value){.type = MFS_GGUF_U64, .u64 = v});
}

int mfs_gguf_set_f32(mfs_gguf *g, const char *key, float v)
{
    return mfs_gguf_set(g, key, &(struct mfs_gguf_value){.type = MFS_GGUF_F32, .f32 = v});
}

int mfs_gguf_set_bool(mfs_gguf *g, const char *key, bool v)
{
    return mfs_gguf_set(g, key, &(struct mfs_gguf_value){.type = MFS_GGUF_BOOL, .b = v});
}

int mfs_gguf_set_strn(mfs_gguf *g, const char *key, const char *s, size_t len)
{
    return mfs_gguf_set(g, key, &(struct mfs_gguf_value){.type = MFS_GGUF_STR, .str = {len, s}});
}

int mfs_gguf_set_str(mfs_gguf *g, const char *key, const char *s)
{
    return mfs_gguf_set_strn(g, key, s, strlen(s));
}

int mfs_gguf_set_arr(mfs_gguf *g, const char *key, uint32_t elem_type, const void *data, uint64_t n)
{
    if (elem_type >= MFS_GGUF_VTYPE_COUNT || elem_type == MFS_GGUF_STR || elem_type == MFS_GGUF_ARR)
        return -EINVAL;
    struct mfs_gguf_value v = {.type = MFS_GGUF_ARR};
    v.arr.type = elem_type;
    v.arr.n = n;
    v.arr.data = data;
    return mfs_gguf_set(g, key, &v);
}

int mfs_gguf_set_arr_str(mfs_gguf *g, const char *key, const struct mfs_str *items, uint64_t n)
{
    struct mfs_gguf_value v = {.type = MFS_GGUF_ARR};
    v.arr.type = MFS_GGUF_STR;
    v.arr.n = n;
    v.arr.data = items;
    return mfs_gguf_set(g, key, &v);
}

int mfs_gguf_remove(mfs_gguf *g, const char *key)
{
    int64_t i = mfs_gguf_find_key(g, key);
    if (i < 0)
        return -ENOENT;
    memmove(&g->kvs[i], &g->kvs[i + 1], (g->n_kv - (uint64_t)i - 1) * sizeof *g->kvs);
    g->n_kv--;
    return 0;
}

int mfs_gguf_add_tensor(mfs_gguf *g, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne)
{
    size_t len = strlen(name);
    if (n_dims < 1 || n_dims > MFS_GGML_MAX_DIMS || len > MFS_GGUF_MAX_KEY || find_tensor_n(g, name, len) >= 0)
        return -EINVAL;
    struct mfs_gguf_tensor t = {.n_dims = n_dims, .type = type, .ne = {1, 1, 1, 1}};
    for (uint32_t d = 0; d < n_dims; d++)
        t.ne[d] = ne[d];
    int rc = mfs_ggml_nbytes(type, n_dims, t.ne, &t.size);
    if (rc)
        return rc;
    if ((rc = grow((void **)&g->tensors, &g->cap_tensors, g->n_tensors + 1, sizeof *g->tensors)) ||
        (rc = copy_str(&g->arena, &t.name, name, len)))
        return rc;
    g->tensors[g->n_tensors++] = t;
    return thash_rebuild(g);
}

/* ---------------------------------------------------------------- writing */

/* The writer runs twice: once with out == NULL to size the header, once to fill it. */
struct wr {
    uint8_t *out;
    uint64_t pos;
};

static void wr_bytes(struct wr *w, const void *p, uint64_t n)
{
    if (w->out && n)
        memcpy(w->out + w->pos, p, n);
    w->pos += n;
}

static void wr_u32(struct wr *w, uint32_t v) { wr_bytes(w, &v, 4); }
static void wr_u64(struct wr *w, uint64_t v) { wr_bytes(w, &v, 8); }

static void wr_str(struct wr *w, struct mfs_str s)
{
    wr_u64(w, s.len);
    wr_bytes(w, s.p, s.len);
}

static void wr_value(struct wr *w, const struct mfs_gguf_value *v)
{
    if (v->type == MFS_GGUF_STR) {
        wr_str(w, v->str);
    } else if (v->type == MFS_GGUF_ARR) {
        wr_u32(w, v->arr.type);
        wr_u64(w, v->arr.n);
        if (v->arr.type == MFS_GGUF_STR) {
            for (uint64_t i = 0; i < v->arr.n; i++)
                wr_str(w, ((const struct mfs_str *)v->arr.data)[i]);
        } else if (v->arr.type == MFS_GGUF_ARR) {
            for (uint64_t i = 0; i < v->arr.n; i++) {
                const struct mfs_gguf_value *item = (const struct mfs_gguf_value *)v->arr.data + i;
                wr_value(w, item);
            }
        } else {
            wr_bytes(w, v->arr.data, v->arr.n * k_vtypes[v->arr.type].size);
        }
    } else {
        wr_bytes(w, &v->u64, k_vtypes[v->type].size);
    }
}

static void wr_header(struct wr *w, const mfs_gguf *g)
{
    wr_u32(w, MFS_GGUF_MAGIC);
    wr_u32(w, g->version);
    wr_u64(w, g->n_tensors);
    wr_u64(w, g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        wr_str(w, g->kvs[i].key);
        wr_u32(w, g->kvs[i].value.type);
        wr_value(w, &g->kvs[i].value);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const struct mfs_gguf_tensor *t = &g->tensors[i];
        wr_str(w, t->name);
        wr_u32(w, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            wr_u64(w, (uint64_t)t->ne[d]);
        wr_u32(w, t->type);
        wr_u64(w, t->offset);
    }
}

int mfs_gguf_layout(mfs_gguf *g, uint32_t alignment)
{
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        return -EINVAL;
    if (alignment != MFS_GGUF_DEFAULT_ALIGNMENT || mfs_gguf_find_key(g, "general.alignment") >= 0) {
        int rc = mfs_gguf_set_u32(g, "general.alignment", alignment);
        if (rc)
            return rc;
    }
    g->alignment = alignment;
    uint64_t off = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        g->tensors[i].offset = off;
        uint64_t next = pad_to(off + g->tensors[i].size, alignment);
        if (next < off)
            return -EOVERFLOW;
        off = next;
    }
    struct wr w = {0};
    wr_header(&w, g);
    g->header_size = w.pos;
    g->data_offset = pad_to(w.pos, alignment);
    return 0;
}

bool mfs_gguf_is_dense(const mfs_gguf *g)
{
    uint64_t off = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if (g->tensors[i].offset != off)
            return false;
        off = pad_to(off + g->tensors[i].size, g->alignment);
    }
    return true;
}

int mfs_gguf_write_header(const mfs_gguf *g, uint8_t **out, size_t *out_len, mfs_err *err)
{
    struct wr w = {0};
    wr_header(&w, g);
    uint64_t total = pad_to(w.pos, g->alignment);
    if (total > MFS_GGUF_MAX_HEADER) {
        mfs_err_set(err, "GGUF header of %" PRIu64 " bytes exceeds the %llu MiB limit", total, MFS_GGUF_MAX_HEADER >> 20);
        return -EFBIG;
    }
    uint8_t *buf = calloc(1, total ? total : 1); /* zeroed: the padding */
    if (!buf) {
        mfs_err_set(err, "out of memory for a %" PRIu64 "-byte header", total);
        return -ENOMEM;
    }
    w = (struct wr){.out = buf};
    wr_header(&w, g);
    *out = buf;
    *out_len = total;
    return 0;
}

mfs_gguf *mfs_gguf_dup(const mfs_gguf *g)
{
    mfs_gguf *d = mfs_gguf_new();
    if (!d)
        return NULL;
    d->version = g->version;
    d->alignment = g->alignment;
    d->header_size = g->header_size;
    d->data_offset = g->data_offset;
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (mfs_gguf_set(d, g->kvs[i].key.p, &g->kvs[i].value))
            goto fail;
    if (grow((void **)&d->tensors, &d->cap_tensors, g->n_tensors, sizeof *d->tensors))
        goto fail;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        d->tensors[i] = g->tensors[i];
        if (copy_str(&d->arena, &d->tensors[i].name, g->tensors[i].name.p, g->tensors[i].name.len))
            goto fail;
    }
    d->n_tensors = g->n_tensors;
    if (thash_rebuild(d))
        goto fail;
    return d;
fail:
    mfs_gguf_free(d);
    return NULL;
}
