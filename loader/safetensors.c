#include "mfs_safetensors.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "convert.h"
#include "model_internal.h"

struct mfs_st {
    char *name;
    uint64_t data_off; /* 8 + N */
    struct mfs_st_tensor *t;
    uint64_t n_t;
    struct mfs_st_meta *meta;
    uint64_t n_meta;
    uint64_t *hash; /* open addressing over t: index + 1, 0 empty */
    uint64_t hash_cap;
    mfs_arena arena;
};

static const struct {
    const char *name;
    uint32_t size;
    int ggml; /* presented as; -1: none */
} k_dtypes[] = {
    [MFS_ST_BOOL] = {"BOOL", 1, MFS_GGML_I8},     [MFS_ST_U8] = {"U8", 1, MFS_GGML_I16},
    [MFS_ST_I8] = {"I8", 1, MFS_GGML_I8},         [MFS_ST_F8_E5M2] = {"F8_E5M2", 1, MFS_GGML_F16},
    [MFS_ST_F8_E4M3] = {"F8_E4M3", 1, MFS_GGML_F16}, [MFS_ST_I16] = {"I16", 2, MFS_GGML_I16},
    [MFS_ST_U16] = {"U16", 2, MFS_GGML_I32},      [MFS_ST_F16] = {"F16", 2, MFS_GGML_F16},
    [MFS_ST_BF16] = {"BF16", 2, MFS_GGML_BF16},   [MFS_ST_I32] = {"I32", 4, MFS_GGML_I32},
    [MFS_ST_U32] = {"U32", 4, MFS_GGML_I64},      [MFS_ST_F32] = {"F32", 4, MFS_GGML_F32},
    [MFS_ST_F64] = {"F64", 8, MFS_GGML_F64},      [MFS_ST_I64] = {"I64", 8, MFS_GGML_I64},
    [MFS_ST_U64] = {"U64", 8, -1},
};
static_assert(sizeof k_dtypes / sizeof k_dtypes[0] == MFS_ST_DTYPE_COUNT, "table follows the enum");

const char *mfs_st_dtype_name(uint32_t dtype)
{
    return dtype < MFS_ST_DTYPE_COUNT ? k_dtypes[dtype].name : NULL;
}

int mfs_st_dtype_from_name(const char *name, size_t len)
{
    for (int i = 0; i < MFS_ST_DTYPE_COUNT; i++)
        if (strlen(k_dtypes[i].name) == len && memcmp(k_dtypes[i].name, name, len) == 0)
            return i;
    return -1;
}

uint32_t mfs_st_dtype_size(uint32_t dtype)
{
    return dtype < MFS_ST_DTYPE_COUNT ? k_dtypes[dtype].size : 0;
}

int mfs_st_ggml_type(uint32_t dtype)
{
    return dtype < MFS_ST_DTYPE_COUNT ? k_dtypes[dtype].ggml : -1;
}

bool mfs_st_needs_conversion(uint32_t dtype, uint32_t ggml_type)
{
    uint64_t size;
    struct mfs_conv c = {.dtype = dtype, .type = ggml_type, .rows = 1, .row_elems = 1};
    return mfs_conv_check(&c, &size, NULL) == 0 && size != mfs_st_dtype_size(dtype);
}

uint32_t mfs_st_ggml_shape(const struct mfs_st_tensor *t, int64_t ne[4])
{
    ne[0] = ne[1] = ne[2] = ne[3] = 1;
    if (t->n_dims == 0)
        return 1;
    uint32_t n = t->n_dims < 4 ? t->n_dims : 4;
    for (uint32_t d = 0; d < n; d++)
        ne[d] = (int64_t)t->shape[t->n_dims - 1 - d];
    for (uint32_t d = 0; d + 4 < t->n_dims; d++)
        ne[3] *= (int64_t)t->shape[d]; /* the parser checked that the product fits */
    return n;
}

/* ---------------------------------------------------------------- parsing */

struct parse {
    const char *name;
    mfs_err *err;
};

/* A tensor name fit for one log line: at most 80 bytes, control characters as '?'. */
static const char *shown(const char *s, size_t len, char buf[96])
{
    size_t n = len < 80 ? len : 80, o = 0;
    for (size_t i = 0; i < n; i++)
        buf[o++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7F ? '?' : s[i];
    if (n < len)
        memcpy(buf + o, "...", 3), o += 3;
    buf[o] = '\0';
    return buf;
}

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

int64_t mfs_st_find(const mfs_st *st, const char *name)
{
    if (!st->hash_cap)
        return -1;
    size_t len = strlen(name);
    for (uint64_t s = hash_bytes(name, len) & (st->hash_cap - 1); st->hash[s]; s = (s + 1) & (st->hash_cap - 1)) {
        const struct mfs_st_tensor *t = &st->t[st->hash[s] - 1];
        if (t->name_len == len && memcmp(t->name, name, len) == 0)
            return (int64_t)(st->hash[s] - 1);
    }
    return -1;
}

static int build_hash(mfs_st *st)
{
    uint64_t cap = 16;
    while (cap < st->n_t * 2)
        cap *= 2;
    if (!(st->hash = calloc(cap, sizeof *st->hash)))
        return -ENOMEM;
    st->hash_cap = cap;
    for (uint64_t i = 0; i < st->n_t; i++) {
        uint64_t s = hash_bytes(st->t[i].name, st->t[i].name_len) & (cap - 1);
        while (st->hash[s])
            s = (s + 1) & (cap - 1);
        st->hash[s] = i + 1;
    }
    return 0;
}

static char *arena_strdup(mfs_arena *a, const char *s, size_t len)
{
    char *p = mfs_arena_alloc(a, len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

/* A non-negative JSON integer. */
static bool json_u64(json_object *o, uint64_t *v)
{
    if (!o || json_object_get_type(o) != json_type_int)
        return false;
    int64_t x = json_object_get_int64(o);
    if (x < 0 || x == INT64_MAX) /* INT64_MAX: json-c's clamp for larger values */
        return false;
    *v = (uint64_t)x;
    return true;
}

static int parse_tensor(struct parse *p, mfs_st *st, const char *key, size_t klen, json_object *v,
                        uint64_t buf_size)
{
    char nb[96];
    const char *nm = shown(key, klen, nb);
    struct mfs_st_tensor *t = &st->t[st->n_t];
    json_object *dt, *shape, *offs;
    if (json_object_get_type(v) != json_type_object || !json_object_object_get_ex(v, "dtype", &dt) ||
        !json_object_object_get_ex(v, "shape", &shape) || !json_object_object_get_ex(v, "data_offsets", &offs)) {
        mfs_err_set(p->err, "%s: tensor '%s': not an object with dtype, shape and data_offsets", p->name, nm);
        return -EINVAL;
    }
    if (json_object_get_type(dt) != json_type_string) {
        mfs_err_set(p->err, "%s: tensor '%s': dtype is not a string", p->name, nm);
        return -EINVAL;
    }
    int d = mfs_st_dtype_from_name(json_object_get_string(dt), (size_t)json_object_get_string_len(dt));
    if (d < 0) {
        char db[96];
        mfs_err_set(p->err, "%s: tensor '%s': unknown dtype '%s'", p->name, nm,
                    shown(json_object_get_string(dt), (size_t)json_object_get_string_len(dt), db));
        return -EINVAL;
    }
    t->dtype = (uint32_t)d;
    if (json_object_get_type(shape) != json_type_array) {
        mfs_err_set(p->err, "%s: tensor '%s': shape is not an array", p->name, nm);
        return -EINVAL;
    }
    size_t nd = json_object_array_length(shape);
    if (nd > MFS_ST_MAX_DIMS) {
        mfs_err_set(p->err, "%s: tensor '%s': %zu dimensions (at most %d)", p->name, nm, nd, MFS_ST_MAX_DIMS);
        return -EINVAL;
    }
    t->n_dims = (uint32_t)nd;
    uint64_t elems = 1, nonzero = 1;
    for (size_t i = 0; i < nd; i++) {
        if (!json_u64(json_object_array_get_idx(shape, i), &t->shape[i])) {
            mfs_err_set(p->err, "%s: tensor '%s': shape[%zu] is not a non-negative integer", p->name, nm, i);
            return -EINVAL;
        }
        uint64_t x = t->shape[i];
        if (x && nonzero > (uint64_t)INT64_MAX / x) {
            mfs_err_set(p->err, "%s: tensor '%s': shape overflows", p->name, nm);
            return -EINVAL;
        }
        nonzero *= x ? x : 1;
        elems = x ? elems * x : 0;
    }
    uint64_t b, e;
    if (json_object_get_type(offs) != json_type_array || json_object_array_length(offs) != 2 ||
        !json_u64(json_object_array_get_idx(offs, 0), &b) || !json_u64(json_object_array_get_idx(offs, 1), &e)) {
        mfs_err_set(p->err, "%s: tensor '%s': data_offsets is not [BEGIN, END]", p->name, nm);
        return -EINVAL;
    }
    if (e < b) {
        mfs_err_set(p->err, "%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 ") end before they begin", p->name,
                    nm, b, e);
        return -EINVAL;
    }
    if (e > buf_size) {
        mfs_err_set(p->err, "%s: tensor '%s': data [%" PRIu64 ", %" PRIu64 ") is outside the file (data size %" PRIu64
                    ")", p->name, nm, b, e, buf_size);
        return -EINVAL;
    }
    uint64_t esz = k_dtypes[d].size;
    if (elems > UINT64_MAX / esz || elems * esz != e - b) {
        mfs_err_set(p->err, "%s: tensor '%s': %" PRIu64 " %s elements need %s%" PRIu64 " bytes, data_offsets hold %" PRIu64,
                    p->name, nm, elems, k_dtypes[d].name, elems > UINT64_MAX / esz ? "more than " : "",
                    elems > UINT64_MAX / esz ? UINT64_MAX : elems * esz, e - b);
        return -EINVAL;
    }
    if (!(t->name = arena_strdup(&st->arena, key, klen)))
        return -ENOMEM;
    t->name_len = klen;
    t->off = st->data_off + b;
    t->size = e - b;
    st->n_t++;
    return 0;
}

static int parse_meta(struct parse *p, mfs_st *st, json_object *v)
{
    if (json_object_get_type(v) != json_type_object) {
        mfs_err_set(p->err, "%s: __metadata__ is not an object", p->name);
        return -EINVAL;
    }
    size_t n = (size_t)json_object_object_length(v);
    if (!(st->meta = calloc(n ? n : 1, sizeof *st->meta)))
        return -ENOMEM;
    json_object_object_foreach(v, key, val)
    {
        if (json_object_get_type(val) != json_type_string) {
            char kb[96];
            mfs_err_set(p->err, "%s: __metadata__ value of '%s' is not a string", p->name, shown(key, strlen(key), kb));
            return -EINVAL;
        }
        struct mfs_st_meta *m = &st->meta[st->n_meta];
        m->key_len = strlen(key);
        m->value_len = (size_t)json_object_get_string_len(val);
        if (!(m->key = arena_strdup(&st->arena, key, m->key_len)) ||
            !(m->value = arena_strdup(&st->arena, json_object_get_string(val), m->value_len)))
            return -ENOMEM;
        st->n_meta++;
    }
    return 0;
}

static int by_offset(const void *a, const void *b)
{
    const struct mfs_st_tensor *x = a, *y = b;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return x->size < y->size ? -1 : x->size > y->size;
}

/* The tensors tile the data buffer: no hole, no overlap, nothing after the last one. */
static int check_layout(struct parse *p, mfs_st *st, uint64_t file_size)
{
    qsort(st->t, st->n_t, sizeof *st->t, by_offset);
    uint64_t at = st->data_off;
    for (uint64_t i = 0; i < st->n_t; i++) {
        const struct mfs_st_tensor *t = &st->t[i];
        char a[96], b[96];
        if (t->off < at) {
            mfs_err_set(p->err, "%s: tensors '%s' and '%s' overlap", p->name,
                        shown(st->t[i - 1].name, st->t[i - 1].name_len, a), shown(t->name, t->name_len, b));
            return -EINVAL;
        }
        if (t->off > at) {
            mfs_err_set(p->err, "%s: %" PRIu64 " bytes at data offset %" PRIu64 " before tensor '%s' belong to no tensor",
                        p->name, t->off - at, at - st->data_off, shown(t->name, t->name_len, a));
            return -EINVAL;
        }
        at = t->off + t->size;
    }
    if (at != file_size) {
        mfs_err_set(p->err, "%s: %" PRIu64 " trailing bytes after the last tensor", p->name, file_size - at);
        return -EINVAL;
    }
    return build_hash(st);
}

static bool json_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* `hdr` is the JSON header (hlen bytes), `file_size` the size of the whole file. */
static int parse_header(const char *hdr, size_t hlen, uint64_t file_size, const char *name, mfs_st **out, mfs_err *err)
{
    struct parse p = {.name = name, .err = err};
    if (hlen == 0 || hdr[0] != '{') {
        mfs_err_set(err, "%s: the safetensors header does not start with '{'", name);
        return -EINVAL;
    }
    if (memchr(hdr, '\0', hlen)) {
        mfs_err_set(err, "%s: the safetensors header holds a NUL byte", name);
        return -EINVAL;
    }
    json_tokener *tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
    if (!tok)
        return -ENOMEM;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS | JSON_TOKENER_VALIDATE_UTF8);
    json_object *root = json_tokener_parse_ex(tok, hdr, (int)hlen);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    int rc = -EINVAL;
    mfs_st *st = NULL;
    if (!root) {
        if (jerr == json_tokener_continue)
            mfs_err_set(err, "%s: JSON header ends early (%zu bytes)", name, hlen);
        else
            mfs_err_set(err, "%s: JSON syntax error in the header at byte %zu: %s", name, end,
                        json_tokener_error_desc(jerr));
        return -EINVAL;
    }
    for (size_t i = end; i < hlen; i++) {
        if (!json_space(hdr[i])) {
            mfs_err_set(err, "%s: JSON syntax error in the header at byte %zu: data after the header object", name, i);
            goto out;
        }
    }
    if (json_object_get_type(root) != json_type_object) {
        mfs_err_set(err, "%s: the safetensors header is not a JSON object", name);
        goto out;
    }
    rc = -ENOMEM;
    if (!(st = calloc(1, sizeof *st)) || !(st->name = strdup(name)))
        goto out;
    mfs_arena_init(&st->arena);
    st->data_off = 8 + (uint64_t)hlen;
    size_t n = (size_t)json_object_object_length(root);
    if (!(st->t = calloc(n ? n : 1, sizeof *st->t)))
        goto out;
    json_object_object_foreach(root, key, val)
    {
        size_t klen = strlen(key);
        if (klen == 12 && memcmp(key, "__metadata__", 12) == 0)
            rc = parse_meta(&p, st, val);
        else
            rc = parse_tensor(&p, st, key, klen, val, file_size - st->data_off);
        if (rc)
            goto out;
    }
    rc = check_layout(&p, st, file_size);
out:
    if (rc == -ENOMEM)
        mfs_err_set(err, "%s: out of memory reading the safetensors header", name);
    json_object_put(root);
    if (rc) {
        mfs_st_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

static uint64_t le64(const uint8_t *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static int check_length(uint64_t n, uint64_t size, const char *name, mfs_err *err)
{
    if (size < 8) {
        mfs_err_set(err, "%s: too short for safetensors (%" PRIu64 " bytes)", name, size);
        return -EINVAL;
    }
    if (n > MFS_ST_MAX_HEADER) {
        mfs_err_set(err, "%s: header length %" PRIu64 " is over the limit of %llu bytes", name, n, MFS_ST_MAX_HEADER);
        return -EINVAL;
    }
    if (n > size - 8) {
        mfs_err_set(err, "%s: header length %" PRIu64 " runs past the end of the file (%" PRIu64 " bytes)", name, n, size);
        return -EINVAL;
    }
    return 0;
}

int mfs_st_parse_memory(const void *data, size_t size, const char *name, mfs_st **out, mfs_err *err)
{
    *out = NULL;
    uint64_t n = size >= 8 ? le64(data) : 0;
    int rc = check_length(n, size, name, err);
    return rc ? rc : parse_header((const char *)data + 8, (size_t)n, size, name, out, err);
}

int mfs_st_parse(mfs_source *src, const char *name, mfs_st **out, mfs_err *err)
{
    *out = NULL;
    if (!name)
        name = mfs_source_name(src);
    uint64_t size = mfs_source_size(src);
    uint8_t lb[8] = {0};
    int rc;
    if (size >= 8 && (rc = mfs_source_read_exact(src, lb, 8, 0, err)))
        return rc;
    uint64_t n = le64(lb);
    if ((rc = check_length(n, size, name, err)))
        return rc;
    char *hdr = malloc(n ? n : 1);
    if (!hdr) {
        mfs_err_set(err, "%s: out of memory for a %" PRIu64 "-byte header", name, n);
        return -ENOMEM;
    }
    rc = mfs_source_read_exact(src, hdr, n, 8, err);
    if (rc == 0)
        rc = parse_header(hdr, n, size, name, out, err);
    free(hdr);
    return rc;
}

void mfs_st_free(mfs_st *st)
{
    if (!st)
        return;
    mfs_arena_free(&st->arena);
    free(st->t);
    free(st->meta);
    free(st->hash);
    free(st->name);
    free(st);
}

uint64_t mfs_st_n_tensors(const mfs_st *st) { return st->n_t; }
const struct mfs_st_tensor *mfs_st_tensor(const mfs_st *st, uint64_t i) { return i < st->n_t ? &st->t[i] : NULL; }
uint64_t mfs_st_n_meta(const mfs_st *st) { return st->n_meta; }
const struct mfs_st_meta *mfs_st_meta(const mfs_st *st, uint64_t i) { return i < st->n_meta ? &st->meta[i] : NULL; }
uint64_t mfs_st_data_offset(const mfs_st *st) { return st->data_off; }

/* ---------------------------------------------------------------- a lone safetensors file */

bool mfs_safetensors_is(mfs_source *src)
{
    uint8_t b[9];
    if (mfs_source_size(src) < sizeof b || mfs_source_read(src, b, sizeof b, 0) != (ssize_t)sizeof b)
        return false;
    return le64(b) >= 2 && b[8] == '{';
}

struct lone_plan {
    mfs_source *src;
    const mfs_st *st;
};

static int lone_tensor(void *ctx, mfs_model *m, uint64_t i, const struct mfs_gguf_tensor *gt)
{
    const struct lone_plan *p = ctx;
    const struct mfs_st_tensor *t = mfs_st_tensor(p->st, i);
    struct mfs_conv c = {.src = p->src, .off = t->off, .dtype = t->dtype, .type = gt->type,
                         .rows = t->n_dims ? t->shape[0] : 1, .row_elems = 1};
    for (uint32_t d = 1; d < t->n_dims; d++)
        c.row_elems *= t->shape[d];
    return mfs_conv_add(m, &c);
}

/* NAME for general.name: the file name without directories and .safetensors[.zst]. */
static void base_name(const char *path, char *out, size_t cap)
{
    const char *s = strrchr(path, '/');
    s = s ? s + 1 : path;
    size_t n = strlen(s);
    if (n > 4 && strcmp(s + n - 4, ".zst") == 0)
        n -= 4;
    if (n > 12 && memcmp(s + n - 12, ".safetensors", 12) == 0)
        n -= 12;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

int mfs_plan_safetensors(mfs_model *m, mfs_source *src, const struct mfs_model_opts *opts, mfs_err *err)
{
    const char *path = mfs_model_path(m);
    mfs_st *st;
    int rc = mfs_st_parse(src, path, &st, err);
    if (rc)
        return rc;
    mfs_gguf *g = mfs_gguf_new();
    char name[256];
    base_name(path, name, sizeof name);
    rc = g ? 0 : -ENOMEM;
    if (!rc)
        rc = mfs_gguf_set_str(g, "general.architecture", "unknown");
    if (!rc)
        rc = mfs_gguf_set_str(g, "general.name", name);
    for (uint64_t i = 0; rc == 0 && i < mfs_st_n_meta(st); i++) {
        const struct mfs_st_meta *md = mfs_st_meta(st, i);
        char *key;
        if (asprintf(&key, "safetensors.%s", md->key) < 0) {
            rc = -ENOMEM;
            break;
        }
        rc = mfs_gguf_set_strn(g, key, md->value, md->value_len);
        free(key);
        if (rc == -EINVAL) { /* a key too long for GGUF */
            rc = mfs_model_add_note(m, "__metadata__ key of %zu bytes is too long for GGUF: left out", md->key_len);
        }
    }
    uint64_t converted[MFS_ST_DTYPE_COUNT] = {0};
    for (uint64_t i = 0; rc == 0 && i < mfs_st_n_tensors(st); i++) {
        const struct mfs_st_tensor *t = mfs_st_tensor(st, i);
        int type = mfs_st_ggml_type(t->dtype);
        char nb[96];
        if (type < 0) {
            mfs_err_set(err, "%s: tensor '%s': dtype %s has no GGUF type", path, shown(t->name, t->name_len, nb),
                        mfs_st_dtype_name(t->dtype));
            rc = -EINVAL;
            break;
        }
        int64_t ne[4];
        uint32_t nd = mfs_st_ggml_shape(t, ne);
        if ((rc = mfs_gguf_add_tensor(g, t->name, (uint32_t)type, nd, ne))) {
            mfs_err_set(err, "%s: tensor '%s' cannot be presented in GGUF: %s", path, shown(t->name, t->name_len, nb),
                        strerror(-rc));
            break;
        }
        if (t->n_dims > 4)
            rc = mfs_model_add_note(m, "tensor '%s': %" PRIu32 " dimensions folded into 4", shown(t->name, t->name_len, nb),
                                    t->n_dims);
        if (mfs_st_needs_conversion(t->dtype, (uint32_t)type))
            converted[t->dtype]++;
    }
    for (uint32_t d = 0; rc == 0 && d < MFS_ST_DTYPE_COUNT; d++)
        if (converted[d])
            rc = mfs_model_add_note(m, "%" PRIu64 " tensor%s of %s presented as %s", converted[d],
                                    converted[d] > 1 ? "s" : "", mfs_st_dtype_name(d),
                                    mfs_ggml_type_name((uint32_t)mfs_st_ggml_type(d)));
    if (rc) {
        if (rc == -ENOMEM)
            mfs_err_set(err, "%s: out of memory", path);
        mfs_gguf_free(g);
        mfs_st_free(st);
        return rc;
    }
    struct lone_plan lp = {.src = src, .st = st};
    rc = mfs_plan_dense(m, g, opts->align ? opts->align : 4096, lone_tensor, &lp, err);
    if (rc == 0)
        rc = mfs_model_set_format(m, "safetensors (%" PRIu64 " tensors)", mfs_st_n_tensors(st));
    mfs_st_free(st);
    return rc;
}
