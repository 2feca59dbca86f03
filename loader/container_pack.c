/* Writing the tensor-aware container (modelfs-pack --format container).
 *
 * The input's tensor table (GGUF header or safetensors JSON header) cuts the file into regions:
 * tensors and the bytes between them (header, padding). Each region is cut into chunks of about
 * `chunk` bytes, on element boundaries, never across a region boundary. Worker threads encode the
 * chunks (the tensor type's codec; padding that is all zeros stores nothing) and a writer appends
 * them in order, then the index; the header is written last, at offset 0. */
#include "container.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfs_gguf.h"
#include "pack_internal.h"

#define NO_TYPE UINT32_MAX
/* safetensors headers larger than this are refused (the format's own reader caps it at 100 MB) */
#define ST_MAX_HEADER (100u << 20)

struct region {
    uint64_t off, len;
    uint32_t type;   /* ggml type of a tensor, NO_TYPE for the bytes between tensors */
    uint32_t tensor; /* index in the input's tensor table, MFZ_NO_TENSOR between tensors */
};

struct plan {
    uint64_t off;
    uint32_t len;
    uint32_t tensor;
    uint8_t codec, param; /* wanted codec; MFZ_ZERO: bytes between tensors (zero or zstd) */
};

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int mfs_pack_input_kind(const uint8_t *head, size_t len, uint64_t file_size)
{
    if (len >= 4 && memcmp(head, "GGUF", 4) == 0)
        return MFZ_INPUT_GGUF;
    if (len >= 9 && head[8] == '{') {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | head[i];
        if (n >= 2 && n <= ST_MAX_HEADER && n <= file_size - 8)
            return MFZ_INPUT_SAFETENSORS;
    }
    return MFZ_INPUT_OTHER;
}

/* ---------------------------------------------------------------- regions */

static int region_cmp(const void *a, const void *b)
{
    const struct region *x = a, *y = b;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int gguf_regions(const char *path, struct region **out, uint64_t *n_out, mfs_err *err)
{
    mfs_source *src;
    mfs_gguf *g = NULL;
    int rc = mfs_source_open_file(path, &src, err);
    if (rc)
        return rc;
    rc = mfs_gguf_parse(src, path, &g, err);
    mfs_source_unref(src);
    if (rc)
        return rc;
    uint64_t nt = mfs_gguf_n_tensors(g), n = 0;
    struct region *r = malloc((nt ? nt : 1) * sizeof *r);
    if (!r) {
        mfs_gguf_free(g);
        mfs_err_set(err, "%s: out of memory", path);
        return -ENOMEM;
    }
    for (uint64_t i = 0; i < nt; i++) {
        const struct mfs_gguf_tensor *t = mfs_gguf_tensor(g, i);
        if (t->size) /* the parser checked that it lies inside the file and overlaps no other */
            r[n++] = (struct region){.off = mfs_gguf_data_offset(g) + t->offset, .len = t->size, .type = t->type,
                                     .tensor = i < MFZ_NO_TENSOR ? (uint32_t)i : MFZ_NO_TENSOR};
    }
    mfs_gguf_free(g);
    *out = r;
    *n_out = n;
    return 0;
}

static uint32_t st_type(const char *dtype)
{
    static const struct {
        const char *name;
        uint32_t type;
    } k[] = {{"F32", MFS_GGML_F32}, {"F16", MFS_GGML_F16}, {"BF16", MFS_GGML_BF16}, {"F64", MFS_GGML_F64},
             {"I64", MFS_GGML_I64}, {"I32", MFS_GGML_I32}, {"I16", MFS_GGML_I16}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (strcmp(dtype, k[i].name) == 0)
            return k[i].type;
    return NO_TYPE; /* I8, U8, BOOL, F8_*, ...: plain zstd */
}

/* The tensors of a safetensors file: u64 header length N, N bytes of JSON
 * {"name": {"dtype": "BF16", "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}},
 * then the data, offsets relative to its start. */
static int st_regions(int fd, const char *path, uint64_t size, struct region **out, uint64_t *n_out, mfs_err *err)
{
    uint8_t len8[8];
    int rc = mfs_pack_read_full(fd, len8, 8, 0);
    if (rc) {
        mfs_err_set(err, "%s: cannot read: %s", path, strerror(-rc));
        return rc;
    }
    uint64_t hn = 0;
    for (int i = 7; i >= 0; i--)
        hn = hn << 8 | len8[i];
    char *json = malloc(hn + 1);
    struct region *r = NULL;
    json_object *root = NULL;
    if (!json) {
        mfs_err_set(err, "%s: out of memory", path);
        return -ENOMEM;
    }
    if ((rc = mfs_pack_read_full(fd, json, hn, 8))) {
        mfs_err_set(err, "%s: cannot read the safetensors header: %s", path, strerror(-rc));
        goto out;
    }
    json[hn] = '\0';
    rc = -EINVAL;
    json_tokener *tok = json_tokener_new();
    if (tok) {
        root = json_tokener_parse_ex(tok, json, (int)hn);
        if (json_tokener_get_error(tok) != json_tokener_success) {
            json_object_put(root);
            root = NULL;
        }
        json_tokener_free(tok);
    }
    if (!root || !json_object_is_type(root, json_type_object)) {
        mfs_err_set(err, "%s: the safetensors header is not a JSON object", path);
        goto out;
    }
    uint64_t data = 8 + hn, cap = (uint64_t)json_object_object_length(root), n = 0, idx = 0;
    r = malloc((cap ? cap : 1) * sizeof *r);
    if (!r) {
        rc = -ENOMEM;
        mfs_err_set(err, "%s: out of memory", path);
        goto out;
    }
    json_object_object_foreach(root, key, val)
    {
        if (strcmp(key, "__metadata__") == 0)
            continue;
        json_object *dt, *offs;
        if (!json_object_is_type(val, json_type_object) || !json_object_object_get_ex(val, "dtype", &dt) ||
            !json_object_is_type(dt, json_type_string) || !json_object_object_get_ex(val, "data_offsets", &offs) ||
            !json_object_is_type(offs, json_type_array) || json_object_array_length(offs) != 2) {
            mfs_err_set(err, "%s: tensor '%s': no dtype or data_offsets in the safetensors header", path, key);
            goto out;
        }
        json_object *b = json_object_array_get_idx(offs, 0), *e = json_object_array_get_idx(offs, 1);
        int64_t begin = json_object_get_int64(b), end = json_object_get_int64(e);
        if (!json_object_is_type(b, json_type_int) || !json_object_is_type(e, json_type_int) || begin < 0 ||
            end < begin || (uint64_t)end > size - data) {
            mfs_err_set(err, "%s: tensor '%s': data_offsets [%" PRId64 ", %" PRId64 "] are outside the data (%" PRIu64 " bytes)",
                        path, key, begin, end, size - data);
            goto out;
        }
        uint32_t type = st_type(json_object_get_string(dt));
        uint32_t tsize = type == NO_TYPE ? 1 : mfs_ggml_type_size(type);
        if ((uint64_t)(end - begin) % tsize)
            type = NO_TYPE;
        if (end > begin)
            r[n++] = (struct region){.off = data + (uint64_t)begin, .len = (uint64_t)(end - begin), .type = type,
                                     .tensor = idx < MFZ_NO_TENSOR ? (uint32_t)idx : MFZ_NO_TENSOR};
        idx++;
    }
    qsort(r, n, sizeof *r, region_cmp);
    for (uint64_t i = 1; i < n; i++)
        if (r[i].off < r[i - 1].off + r[i - 1].len) {
            mfs_err_set(err, "%s: two tensors overlap in the safetensors data at offset %" PRIu64, path, r[i].off);
            goto out;
        }
    *out = r;
    *n_out = n;
    r = NULL;
    rc = 0;
out:
    json_object_put(root);
    free(json);
    free(r);
    return rc;
}

/* Cut [off, off + len) into chunks of about `chunk` bytes on multiples of `elem`. */
static int plan_range(struct plan **p, uint64_t *n, uint64_t *cap, uint64_t off, uint64_t len, uint32_t chunk,
                      uint32_t elem, uint32_t tensor, unsigned codec, unsigned param)
{
    uint64_t step = chunk >= elem ? chunk - chunk % elem : elem;
    while (len > 0) {
        if (*n == *cap) {
            uint64_t nc = *cap ? *cap * 2 : 256;
            struct plan *np = realloc(*p, nc * sizeof *np);
            if (!np)
                return -ENOMEM;
            *p = np;
            *cap = nc;
        }
        uint64_t take = len < step ? len : step;
        /* a whole element per chunk at least: a single huge block type still fits MFZ_MAX_CHUNK */
        (*p)[(*n)++] = (struct plan){.off = off, .len = (uint32_t)take, .tensor = tensor, .codec = (uint8_t)codec,
                                     .param = (uint8_t)param};
        off += take;
        len -= take;
    }
    return 0;
}

static int make_plan(const struct region *r, uint64_t nr, uint64_t size, uint32_t chunk, struct plan **out,
                     uint64_t *n_out)
{
    struct plan *p = NULL;
    uint64_t n = 0, cap = 0, at = 0;
    int rc = 0;
    for (uint64_t i = 0; rc == 0 && i <= nr; i++) {
        uint64_t start = i < nr ? r[i].off : size;
        if (start > at)
            rc = plan_range(&p, &n, &cap, at, start - at, chunk, 1, MFZ_NO_TENSOR, MFZ_ZERO, 0);
        if (rc || i == nr)
            break;
        unsigned param = 0, codec = r[i].type == NO_TYPE ? MFZ_ZSTD : mfz_codec_for_type(r[i].type, &param);
        uint32_t elem = mfz_elem_size(codec, param);
        rc = plan_range(&p, &n, &cap, r[i].off, r[i].len, chunk, elem, r[i].tensor, codec, param);
        at = r[i].off + r[i].len;
    }
    if (rc) {
        free(p);
        return rc;
    }
    *out = p;
    *n_out = n;
    return 0;
}

/* ---------------------------------------------------------------- workers */

struct job {
    /* fixed */
    int in_fd;
    const char *in_path;
    uint64_t in_size;
    const struct plan *plan;
    uint64_t n;
    uint32_t max_len;
    struct mfz_enc_params params;
    struct mfs_out *out;
    const struct mfs_pack_opts *opts;
    uint8_t *index; /* written in chunk order */
};

static bool all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Encode one planned chunk: the codec actually used and the payload size (in `out`). */
static long encode_chunk(mfz_enc *enc, const struct plan *pl, const uint8_t *in, uint8_t *out, size_t cap,
                         unsigned *codec)
{
    size_t n = pl->len;
    *codec = MFZ_RAW;
    if (pl->codec == MFZ_ZERO) {
        if (all_zero(in, n)) {
            *codec = MFZ_ZERO;
            return 0;
        }
        long r = mfz_encode(enc, MFZ_ZSTD, 0, in, n, out, cap);
        if (r > 0)
            *codec = MFZ_ZSTD;
        return r < 0 ? r : r > 0 ? r : (long)n;
    }
    return mfz_encode_best(enc, pl->codec, pl->param, in, n, out, cap, codec);
}

/* One worker's encoder and buffers, and the chunk it has just encoded. */
struct chunk_state {
    mfz_enc *enc;
    size_t cap;
    uint8_t *in, *out;
    unsigned codec;
    long csize;
    uint64_t sum;
};

static void chunk_fini(void *arg)
{
    struct chunk_state *st = arg;
    mfz_enc_free(st->enc);
    free(st->in);
    free(st->out);
    free(st);
}

static void *chunk_init(void *ctx)
{
    const struct job *j = ctx;
    struct chunk_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->cap = (size_t)j->max_len + 4 * MFZ_MAX_PLANES;
    st->enc = mfz_enc_new(&j->params);
    st->in = malloc(j->max_len ? j->max_len : 1);
    st->out = malloc(st->cap);
    if (!st->enc || !st->in || !st->out) {
        chunk_fini(st);
        return NULL;
    }
    return st;
}

static int chunk_encode(void *ctx, void *state, uint64_t i, mfs_err *e)
{
    const struct job *j = ctx;
    struct chunk_state *st = state;
    const struct plan *pl = &j->plan[i];
    st->codec = MFZ_RAW;
    int rc = mfs_pack_read_full(j->in_fd, st->in, pl->len, pl->off);
    if (rc) {
        mfs_err_set(e, "%s: read failed at offset %" PRIu64 ": %s", j->in_path, pl->off, strerror(-rc));
        return rc;
    }
    st->csize = encode_chunk(st->enc, pl, st->in, st->out, st->cap, &st->codec);
    if (st->csize < 0) {
        rc = (int)st->csize;
        mfs_err_set(e, "%s: cannot encode the chunk at offset %" PRIu64 ": %s", j->in_path, pl->off, strerror(-rc));
        return rc;
    }
    st->sum = mfz_checksum(st->in, pl->len);
    return 0;
}

static int chunk_commit(void *ctx, void *state, uint64_t i, mfs_err *e)
{
    const struct job *j = ctx;
    const struct chunk_state *st = state;
    const struct plan *pl = &j->plan[i];
    uint64_t coff = st->codec == MFZ_ZERO ? 0 : j->out->written;
    const uint8_t *payload = st->codec == MFZ_RAW ? st->in : st->out;
    int rc = st->csize > 0 ? mfs_out_write(j->out, payload, (size_t)st->csize, e) : 0;
    if (rc)
        return rc;
    uint8_t *x = j->index + i * MFZ_ENTRY_SIZE;
    memset(x, 0, MFZ_ENTRY_SIZE);
    put64(x, coff);
    put32(x + 8, (uint32_t)st->csize);
    put32(x + 12, pl->len);
    put64(x + 16, st->sum);
    put32(x + 24, pl->tensor);
    x[28] = (uint8_t)st->codec;
    x[29] = st->codec == MFZ_BLOCKS ? pl->param : 0;
    if (j->opts->progress)
        j->opts->progress(j->opts->progress_user, pl->off + pl->len, j->in_size);
    return 0;
}

static int write_header(struct mfs_out *o, uint64_t size, uint64_t n, uint64_t index_off, int input, uint32_t chunk,
                        mfs_err *err)
{
    uint8_t h[MFZ_HEADER_SIZE] = {0};
    memcpy(h, MFZ_MAGIC, 8);
    put32(h + 8, MFZ_VERSION);
    put64(h + 16, size);
    put64(h + 24, n);
    put64(h + 32, index_off);
    put32(h + 40, (uint32_t)input);
    put32(h + 44, chunk);
    for (size_t done = 0; done < sizeof h;) {
        ssize_t w = pwrite(o->fd, h + done, sizeof h - done, (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            mfs_err_set(err, "%s: write failed: %s", o->path, strerror(e));
            return -e;
        }
        done += (size_t)w;
    }
    return 0;
}

int mfs_pack_container(int in_fd, const char *in_path, uint64_t in_size, struct mfs_out *out,
                       const struct mfs_pack_opts *opts, struct mfs_pack_result *res, mfs_err *err)
{
    uint8_t head[16] = {0};
    size_t hl = in_size < sizeof head ? (size_t)in_size : sizeof head;
    int rc = mfs_pack_read_full(in_fd, head, hl, 0);
    if (rc) {
        mfs_err_set(err, "%s: cannot read: %s", in_path, strerror(-rc));
        return rc;
    }
    int input = mfs_pack_input_kind(head, hl, in_size);
    struct region *r = NULL;
    struct plan *plan = NULL;
    uint64_t nr = 0, n = 0;
    if (input == MFZ_INPUT_GGUF)
        rc = gguf_regions(in_path, &r, &nr, err);
    else if (input == MFZ_INPUT_SAFETENSORS)
        rc = st_regions(in_fd, in_path, in_size, &r, &nr, err);
    else {
        mfs_err_set(err, "%s: not a GGUF or safetensors file: the container stores models (use --format zst)",
                    in_path);
        return -EINVAL;
    }
    if (rc)
        return rc;
    uint32_t chunk = opts->chunk ? opts->chunk : MFS_PACK_DEFAULT_CONTAINER_CHUNK;
    if (chunk > MFZ_MAX_CHUNK)
        chunk = MFZ_MAX_CHUNK;
    rc = make_plan(r, nr, in_size, chunk, &plan, &n);
    free(r);
    if (rc) {
        mfs_err_set(err, "%s: out of memory", in_path);
        return rc;
    }
    struct job j = {.in_fd = in_fd, .in_path = in_path, .in_size = in_size, .plan = plan, .n = n, .out = out,
                    .opts = opts};
    mfz_enc_params_default(&j.params, opts->level ? opts->level : MFS_PACK_DEFAULT_LEVEL);
    for (uint64_t i = 0; i < n; i++)
        if (plan[i].len > j.max_len)
            j.max_len = plan[i].len;
    j.index = malloc(n ? n * MFZ_ENTRY_SIZE : 1);
    if (!j.index) {
        free(plan);
        mfs_err_set(err, "%s: out of memory for %" PRIu64 " chunks", in_path, n);
        return -ENOMEM;
    }
    static const uint8_t placeholder[MFZ_HEADER_SIZE];
    if ((rc = mfs_out_write(out, placeholder, sizeof placeholder, err)))
        goto done;
    struct mfs_pack_ordered w = {.n = n, .threads = opts->threads, .in_path = in_path, .ctx = &j,
                                 .init = chunk_init, .fini = chunk_fini, .encode = chunk_encode,
                                 .commit = chunk_commit};
    if ((rc = mfs_pack_run_ordered(&w, err)))
        goto done;
    uint64_t index_off = out->written;
    if ((rc = mfs_out_write(out, j.index, n * MFZ_ENTRY_SIZE, err)) ||
        (rc = write_header(out, in_size, n, index_off, input, chunk, err)))
        goto done;
    if (res) {
        res->in_bytes = in_size;
        res->out_bytes = out->written;
        res->frames = n;
    }
done:
    free(j.index);
    free(plan);
    return rc;
}
