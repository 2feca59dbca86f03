/* Reading the tensor-aware container: validate the header and the chunk index, then serve the
 * original bytes through the decode engine, one chunk at a time (layout: container.h and
 * docs/COMPRESSION.md). Every chunk carries the XXH3-64 of its decoded bytes; a chunk that does
 * not decode or does not match makes the reads that need it fail with -EIO. */
#include "container.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

struct chunk {
    uint64_t coff;
    uint64_t sum;
    uint32_t csize, dsize;
    uint32_t tensor;
    uint8_t codec, param;
};

struct container {
    mfs_source *file;
    mfs_chunked *chunks;
    struct chunk *c;
    uint64_t n;
    uint64_t *doff; /* decoded offset of each chunk */
};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

bool mfs_container_is(const uint8_t *head, size_t len)
{
    return len >= 8 && memcmp(head, MFZ_MAGIC, 8) == 0;
}

/* ---------------------------------------------------------------- decoding
 * Decompression contexts and buffers shared by every container of the process: memory follows
 * the number of decodes running at once, not the number of files. */

struct dec {
    struct dec *next;
    ZSTD_DCtx *dctx;
    uint8_t *in, *scratch;
    size_t in_cap, scratch_cap;
};

static pthread_mutex_t g_pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dec *g_pool;
static unsigned g_pool_n;
static size_t g_pool_bytes; /* input and scratch buffers held by the pool */
#define POOL_KEEP 8
/* Buffers the pool may hold in all. They are outside the cache budget: a container with 64 MiB
 * chunks (the most the format allows) needs ~200 MiB of them per decode, and eight pooled
 * decoders of 256 KiB chunks (the default) ~6 MiB. A decoder whose buffers do not fit keeps only
 * its context. */
#define POOL_BYTES (4u << 20)

static void dec_free(struct dec *d)
{
    if (!d)
        return;
    ZSTD_freeDCtx(d->dctx);
    free(d->in);
    free(d->scratch);
    free(d);
}

static bool grow(uint8_t **buf, size_t *cap, size_t want)
{
    if (*cap >= want)
        return true;
    free(*buf);
    *buf = malloc(want ? want : 1);
    *cap = *buf ? want : 0;
    return *buf != NULL;
}

static struct dec *dec_get(size_t in_size, size_t scratch_size)
{
    pthread_mutex_lock(&g_pool_mu);
    struct dec *d = g_pool;
    if (d) {
        g_pool = d->next;
        g_pool_n--;
        g_pool_bytes -= d->in_cap + d->scratch_cap;
    }
    pthread_mutex_unlock(&g_pool_mu);
    if (!d && (!(d = calloc(1, sizeof *d)) || !(d->dctx = ZSTD_createDCtx()))) {
        dec_free(d);
        return NULL;
    }
    if (!grow(&d->in, &d->in_cap, in_size) || !grow(&d->scratch, &d->scratch_cap, scratch_size)) {
        dec_free(d);
        return NULL;
    }
    return d;
}

static void dec_put(struct dec *d)
{
    pthread_mutex_lock(&g_pool_mu);
    if (g_pool_n < POOL_KEEP) {
        if (d->in_cap + d->scratch_cap > POOL_BYTES - g_pool_bytes) {
            free(d->in);
            free(d->scratch);
            d->in = d->scratch = NULL;
            d->in_cap = d->scratch_cap = 0;
        }
        g_pool_bytes += d->in_cap + d->scratch_cap;
        d->next = g_pool;
        g_pool = d;
        g_pool_n++;
        d = NULL;
    }
    pthread_mutex_unlock(&g_pool_mu);
    dec_free(d);
}

static int chunk_decode(void *ctx, uint64_t i, void *dst, size_t size)
{
    struct container *k = ctx;
    const struct chunk *c = &k->c[i];
    int rc = 0;
    if (c->codec == MFZ_ZERO) {
        memset(dst, 0, size);
    } else if (c->codec == MFZ_RAW) {
        rc = mfs_source_read_exact(k->file, dst, size, c->coff, NULL);
    } else {
        struct dec *d = dec_get(c->csize, c->codec == MFZ_ZSTD ? 0 : MFZ_SCRATCH(size));
        if (!d)
            return -ENOMEM;
        rc = mfs_source_read_exact(k->file, d->in, c->csize, c->coff, NULL);
        if (rc == 0)
            rc = mfz_decode(d->dctx, c->codec, c->param, d->in, c->csize, dst, size, d->scratch);
        dec_put(d);
    }
    if (rc == 0 && mfz_checksum(dst, size) != c->sum)
        rc = -EIO;
    return rc;
}

static const struct mfs_chunk_ops k_chunk_ops = {.decode = chunk_decode};

/* ---------------------------------------------------------------- source */

static ssize_t container_read(void *impl, void *buf, size_t len, uint64_t off)
{
    struct container *k = impl;
    return k->chunks ? mfs_chunked_read(k->chunks, buf, len, off) : 0;
}

static void container_destroy(void *impl)
{
    struct container *k = impl;
    mfs_chunked_destroy(k->chunks);
    mfs_source_unref(k->file);
    free(k->c);
    free(k->doff);
    free(k);
}

static int container_frame(void *impl, uint64_t i, struct mfs_frame_info *out)
{
    const struct container *k = impl;
    const struct chunk *c = &k->c[i];
    *out = (struct mfs_frame_info){.stored_off = c->coff, .stored_size = c->csize, .off = k->doff[i],
                                   .size = c->dsize, .has_checksum = true, .codec = mfz_codec_name(c->codec),
                                   .in_tensor = c->tensor != MFZ_NO_TENSOR, .tensor = c->tensor};
    return 0;
}

static const struct mfs_source_ops k_container_ops = {.read = container_read, .destroy = container_destroy,
                                                      .frame = container_frame};

/* ---------------------------------------------------------------- open */

/* Check one index entry against the codec's rules and the data area [MFZ_HEADER_SIZE, data_end). */
static int check_chunk(const char *name, uint64_t i, const struct chunk *c, uint64_t prev_end, uint64_t data_end,
                       mfs_err *err)
{
    if (c->codec >= MFZ_CODEC_COUNT) {
        mfs_err_set(err, "%s: chunk %" PRIu64 ": unknown codec %u", name, i, c->codec);
        return -EINVAL;
    }
    if (c->dsize == 0 || c->dsize > MFZ_MAX_CHUNK) {
        mfs_err_set(err, "%s: chunk %" PRIu64 ": decoded size %" PRIu32 " is out of range (1 byte to %u MiB)", name, i,
                    c->dsize, MFZ_MAX_CHUNK >> 20);
        return -EINVAL;
    }
    if (c->csize && (c->coff < MFZ_HEADER_SIZE || c->coff > data_end || c->csize > data_end - c->coff)) {
        mfs_err_set(err, "%s: chunk %" PRIu64 ": stored bytes [%" PRIu64 ", %" PRIu64 ") are outside the data area [%u, %" PRIu64 ")",
                    name, i, c->coff, c->coff + c->csize, MFZ_HEADER_SIZE, data_end);
        return -EINVAL;
    }
    if (c->csize && c->coff < prev_end) {
        mfs_err_set(err, "%s: chunk %" PRIu64 ": stored bytes at %" PRIu64 " overlap the previous chunk's (up to %" PRIu64 ")",
                    name, i, c->coff, prev_end);
        return -EINVAL;
    }
    uint32_t elem;
    int rc = mfz_check_sizes(c->codec, c->param, c->csize, c->dsize, &elem);
    if (rc == -ENOENT) {
        mfs_err_set(err, "%s: chunk %" PRIu64 ": codec %s has no layout for parameter %u", name, i,
                    mfz_codec_name(c->codec), c->param);
        return -EINVAL;
    }
    if (rc == -EDOM) {
        mfs_err_set(err, "%s: chunk %" PRIu64 ": decoded size %" PRIu32 " is not a multiple of the %s element size %" PRIu32,
                    name, i, c->dsize, mfz_codec_name(c->codec), elem);
        return -EINVAL;
    }
    if (rc) {
        mfs_err_set(err, "%s: chunk %" PRIu64 ": %" PRIu32 " stored bytes for %" PRIu32 " decoded do not fit codec %s%s",
                    name, i, c->csize, c->dsize, mfz_codec_name(c->codec), c->param ? " (parameter set)" : "");
        return -EINVAL;
    }
    if (c->codec == MFZ_ZERO && c->coff != 0) {
        mfs_err_set(err, "%s: chunk %" PRIu64 ": a zero chunk has a stored offset (%" PRIu64 ")", name, i, c->coff);
        return -EINVAL;
    }
    return 0;
}

int mfs_container_open(mfs_source *file, mfs_engine *engine, mfs_source **out, mfs_err *err)
{
    const char *name = mfs_source_name(file);
    uint64_t size = mfs_source_size(file);
    uint8_t h[MFZ_HEADER_SIZE];
    uint8_t *raw = NULL;
    uint64_t *ends = NULL;
    struct container *k = NULL;
    int rc = -EINVAL;
    if (size < MFZ_HEADER_SIZE) {
        mfs_err_set(err, "%s: truncated container header (%" PRIu64 " bytes)", name, size);
        goto fail;
    }
    if ((rc = mfs_source_read_exact(file, h, sizeof h, 0, err)))
        goto fail;
    rc = -EINVAL;
    uint32_t version = le32(h + 8), flags = le32(h + 12), input = le32(h + 40);
    uint64_t total = le64(h + 16), n = le64(h + 24), index_off = le64(h + 32);
    if (memcmp(h, MFZ_MAGIC, 8) != 0) {
        mfs_err_set(err, "%s: not a modelfs container (bad magic)", name);
        goto fail;
    }
    if (version != MFZ_VERSION) {
        mfs_err_set(err, "%s: container version %" PRIu32 " is not supported (only %u)", name, version, MFZ_VERSION);
        goto fail;
    }
    static const uint8_t zero[16];
    if (flags != 0 || memcmp(h + 48, zero, 16) != 0) {
        mfs_err_set(err, "%s: reserved container header fields are not zero", name);
        goto fail;
    }
    if (input > MFZ_INPUT_SAFETENSORS) {
        mfs_err_set(err, "%s: unknown input kind %" PRIu32 " in the container header", name, input);
        goto fail;
    }
    if (index_off < MFZ_HEADER_SIZE || index_off > size) {
        mfs_err_set(err, "%s: chunk index at offset %" PRIu64 " is outside the file (%" PRIu64 " bytes)", name,
                    index_off, size);
        goto fail;
    }
    if (n > (size - index_off) / MFZ_ENTRY_SIZE || n * MFZ_ENTRY_SIZE != size - index_off) {
        mfs_err_set(err, "%s: chunk index of %" PRIu64 " entries does not match the %" PRIu64 " bytes from offset %" PRIu64
                    " to the end of the file", name, n, size - index_off, index_off);
        goto fail;
    }
    /* n * 32 bytes of the file: allocations below are bounded by the file's size */
    k = calloc(1, sizeof *k);
    raw = malloc(n ? n * MFZ_ENTRY_SIZE : 1);
    if (k) {
        k->c = calloc(n ? n : 1, sizeof *k->c);
        k->doff = calloc(n ? n : 1, sizeof *k->doff);
    }
    ends = malloc((n ? n : 1) * sizeof *ends);
    if (!k || !raw || !k->c || !k->doff || !ends) {
        mfs_err_set(err, "%s: out of memory for a chunk index of %" PRIu64 " entries", name, n);
        rc = -ENOMEM;
        goto fail;
    }
    if (n && (rc = mfs_source_read_exact(file, raw, n * MFZ_ENTRY_SIZE, index_off, err)))
        goto fail;
    uint64_t sum = 0, prev_end = MFZ_HEADER_SIZE;
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *p = raw + i * MFZ_ENTRY_SIZE;
        struct chunk *c = &k->c[i];
        *c = (struct chunk){.coff = le64(p), .csize = le32(p + 8), .dsize = le32(p + 12), .sum = le64(p + 16),
                            .tensor = le32(p + 24), .codec = p[28], .param = p[29]};
        if (p[30] || p[31]) {
            mfs_err_set(err, "%s: chunk %" PRIu64 ": reserved index bytes are not zero", name, i);
            rc = -EINVAL;
            goto fail;
        }
        if ((rc = check_chunk(name, i, c, prev_end, index_off, err)))
            goto fail;
        if (c->csize)
            prev_end = c->coff + c->csize;
        k->doff[i] = sum;
        sum += c->dsize; /* at most 2^26 per chunk and n < 2^59: no overflow */
        ends[i] = sum;
    }
    if (sum != total) {
        mfs_err_set(err, "%s: chunks decode to %" PRIu64 " bytes, the container header says %" PRIu64, name, sum, total);
        rc = -EINVAL;
        goto fail;
    }
    free(raw);
    raw = NULL;
    k->file = file;
    k->n = n;
    if (n && (rc = mfs_chunked_create(engine, ends, n, &k_chunk_ops, k, 0, name, &k->chunks))) {
        mfs_err_set(err, "%s: cannot index chunks: %s", name, strerror(-rc));
        k->file = NULL;
        goto fail;
    }
    free(ends);
    struct mfs_source_info info = {.kind = MFS_SRC_CONTAINER, .size = total, .stored_size = size, .n_frames = n,
                                   .checksums = true};
    return mfs_source_create(&k_container_ops, k, &info, name, out);
fail:
    if (k) {
        free(k->c);
        free(k->doff);
        free(k);
    }
    free(raw);
    free(ends);
    mfs_source_unref(file);
    return rc;
}
