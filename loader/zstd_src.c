/* zstd-compressed sources: seekable format, multi-frame without seek table, single frame.
 *
 * Seekable format (zstd contrib/seekable_format), at the end of the file, little-endian:
 *   u32 0x184D2A5E             skippable frame magic
 *   u32 frame_size             bytes that follow in this skippable frame = n * entry + 9
 *   n entries:  u32 compressed size, u32 decompressed size, [u32 low 32 bits of XXH64(decoded)]
 *   u32 n                      number of frames
 *   u8  descriptor             bit 7: entries carry checksums; bits 6-2 reserved, must be 0
 *   u32 0x8F92EAB1             seekable magic
 * The data frames come first, back to back, and their compressed sizes add up to the table's
 * position.
 *
 * Without a seek table, frames are found by walking frame and block headers (RFC 8878):
 *   u32 magic 0xFD2FB528; u8 descriptor (bits 7-6 content size field, bit 5 single segment,
 *   bit 3 reserved, bit 2 checksum, bits 1-0 dictionary id field); [u8 window]; [dict id];
 *   [content size]; blocks of u24 header (bit 0 last, bits 2-1 type, bits 23-3 size) + content;
 *   [u32 checksum]. Skippable frames (magic 0x184D2A5?) are u32 magic + u32 size + size bytes.
 */
#include "zstd_src.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#include "mfs_engine.h"

#define SEEKABLE_MAGIC 0x8F92EAB1u
#define SKIPPABLE_SEEK_TABLE 0x184D2A5Eu
#define SKIPPABLE_MASK 0xFFFFFFF0u
#define SKIPPABLE_START 0x184D2A50u
#define ZSTD_MAGIC 0xFD2FB528u
#define FOOTER_SIZE 9
#define BLOCK_MAX (128u << 10)

/* Frames bigger than this decoded are not cached whole: the file is served as a stream. */
#define MAX_FRAME_CHUNK (64ull << 20)
/* A frame without a content size is decoded at open to learn it, up to this much. */
#define MAX_COUNTED (64ull << 30)
/* Piece of a stream decoded at a time. */
#define STREAM_CHUNK (4ull << 20)

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---------------------------------------------------------------- decoder pool
 * Decompression contexts and input buffers, shared by every zstd source of the process, so
 * memory follows the number of concurrent decodes, not the number of files. */

struct dec {
    struct dec *next;
    ZSTD_DCtx *dctx;
    uint8_t *in;
    size_t in_cap;
};

static pthread_mutex_t g_pool_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dec *g_pool;
static unsigned g_pool_n;
static size_t g_pool_bytes; /* input buffers held by the pool */
#define POOL_KEEP 8
/* Input buffers the pool may hold in all: a frame's compressed bytes (~3 MiB for modelfs-pack's
 * 4 MiB frames, up to ~64 MiB) are outside the cache budget, so eight pooled decoders could keep
 * 30-500 MiB after the reads are over. A decoder whose buffer does not fit keeps only its context. */
#define POOL_BYTES (4u << 20)

static struct dec *dec_get(size_t in_size)
{
    pthread_mutex_lock(&g_pool_mu);
    struct dec *d = g_pool;
    if (d) {
        g_pool = d->next;
        g_pool_n--;
        g_pool_bytes -= d->in_cap;
    }
    pthread_mutex_unlock(&g_pool_mu);
    if (!d) {
        d = calloc(1, sizeof *d);
        if (!d)
            return NULL;
        d->dctx = ZSTD_createDCtx();
        if (!d->dctx) {
            free(d);
            return NULL;
        }
    }
    if (d->in_cap < in_size) {
        free(d->in);
        d->in = malloc(in_size);
        d->in_cap = d->in ? in_size : 0;
        if (!d->in) {
            ZSTD_freeDCtx(d->dctx);
            free(d);
            return NULL;
        }
    }
    return d;
}

static void dec_put(struct dec *d)
{
    pthread_mutex_lock(&g_pool_mu);
    if (g_pool_n < POOL_KEEP) {
        if (d->in_cap > POOL_BYTES - g_pool_bytes) {
            free(d->in);
            d->in = NULL;
            d->in_cap = 0;
        }
        g_pool_bytes += d->in_cap;
        d->next = g_pool;
        g_pool = d;
        g_pool_n++;
        d = NULL;
    }
    pthread_mutex_unlock(&g_pool_mu);
    if (d) {
        ZSTD_freeDCtx(d->dctx);
        free(d->in);
        free(d);
    }
}

/* ---------------------------------------------------------------- framed sources */

struct frame {
    uint64_t coff;  /* in the stored file */
    uint64_t csize;
    uint64_t doff;  /* decoded offset */
    uint64_t dsize; /* at most MAX_FRAME_CHUNK for a framed source */
    uint32_t checksum;
};

struct framed {
    mfs_source *file;
    mfs_chunked *chunks;
    struct frame *frames; /* every data frame, empty ones included */
    uint64_t n_frames;
    uint64_t *chunk_frame; /* chunk index -> frame index (empty frames are not chunks) */
    bool checksums;
};

static int framed_decode(void *ctx, uint64_t i, void *dst, size_t size)
{
    struct framed *f = ctx;
    const struct frame *fr = &f->frames[f->chunk_frame[i]];
    struct dec *d = dec_get(fr->csize);
    if (!d)
        return -ENOMEM;
    int rc = mfs_source_read_exact(f->file, d->in, fr->csize, fr->coff, NULL);
    if (rc == 0) {
        size_t got = ZSTD_decompressDCtx(d->dctx, dst, size, d->in, fr->csize);
        if (ZSTD_isError(got) || got != size)
            rc = -EIO;
        else if (f->checksums && (uint32_t)XXH64(dst, size, 0) != fr->checksum)
            rc = -EIO;
    }
    dec_put(d);
    return rc;
}

static const struct mfs_chunk_ops k_framed_chunk_ops = {.decode = framed_decode};

static ssize_t framed_read(void *impl, void *buf, size_t len, uint64_t off)
{
    struct framed *f = impl;
    return f->chunks ? mfs_chunked_read(f->chunks, buf, len, off) : 0;
}

static void framed_destroy(void *impl)
{
    struct framed *f = impl;
    mfs_chunked_destroy(f->chunks);
    mfs_source_unref(f->file);
    free(f->frames);
    free(f->chunk_frame);
    free(f);
}

static int framed_frame(void *impl, uint64_t i, struct mfs_frame_info *out)
{
    const struct framed *f = impl;
    const struct frame *fr = &f->frames[i];
    *out = (struct mfs_frame_info){.stored_off = fr->coff, .stored_size = fr->csize, .off = fr->doff,
                                   .size = fr->dsize, .has_checksum = f->checksums};
    return 0;
}

static const struct mfs_source_ops k_framed_ops = {.read = framed_read, .destroy = framed_destroy,
                                                   .frame = framed_frame};

/* Takes ownership of `frames` and of the reference to `file`. */
static int framed_create(mfs_source *file, struct frame *frames, uint64_t n, bool checksums,
                         enum mfs_source_kind kind, mfs_engine *engine, mfs_source **out, mfs_err *err)
{
    const char *name = mfs_source_name(file);
    struct framed *f = calloc(1, sizeof *f);
    uint64_t *ends = malloc((n ? n : 1) * sizeof *ends);
    uint64_t *chunk_frame = malloc((n ? n : 1) * sizeof *chunk_frame);
    int rc = -ENOMEM;
    if (!f || !ends || !chunk_frame) {
        mfs_err_set(err, "%s: out of memory for %" PRIu64 " frames", name, n);
        goto fail;
    }
    uint64_t nc = 0, total = 0;
    for (uint64_t i = 0; i < n; i++) {
        frames[i].doff = total;
        total += frames[i].dsize; /* < 2^32 * n: no overflow for any n that fits in a file */
        if (frames[i].dsize) {
            ends[nc] = total;
            chunk_frame[nc++] = i;
        }
    }
    f->file = file;
    f->frames = frames;
    f->n_frames = n;
    f->chunk_frame = chunk_frame;
    f->checksums = checksums;
    if (nc > 0) {
        rc = mfs_chunked_create(engine, ends, nc, &k_framed_chunk_ops, f, 0, name, &f->chunks);
        if (rc) {
            mfs_err_set(err, "%s: cannot index frames: %s", name, strerror(-rc));
            f->file = NULL;
            f->frames = NULL;
            f->chunk_frame = NULL;
            goto fail;
        }
    }
    free(ends);
    struct mfs_source_info info = {.kind = kind, .size = total, .stored_size = mfs_source_size(file),
                                   .n_frames = n, .checksums = checksums};
    return mfs_source_create(&k_framed_ops, f, &info, name, out);
fail:
    free(f);
    free(ends);
    free(chunk_frame);
    free(frames);
    mfs_source_unref(file);
    return rc;
}


/* ---------------------------------------------------------------- seek table */

int mfs_zstd_open_seekable(mfs_source *file, mfs_engine *engine, mfs_source **out, mfs_err *err)
{
    const char *name = mfs_source_name(file);
    uint64_t size = mfs_source_size(file);
    uint8_t foot[FOOTER_SIZE], head[8];
    uint8_t *raw = NULL;
    struct frame *frames = NULL;
    int rc;
    if (size < FOOTER_SIZE + 8) {
        mfs_err_set(err, "%s: too small for a seek table (%" PRIu64 " bytes)", name, size);
        rc = -EINVAL;
        goto fail;
    }
    if ((rc = mfs_source_read_exact(file, foot, FOOTER_SIZE, size - FOOTER_SIZE, err)))
        goto fail;
    uint32_t n = le32(foot), magic = le32(foot + 5);
    uint8_t desc = foot[4];
    rc = -EINVAL;
    if (magic != SEEKABLE_MAGIC) {
        mfs_err_set(err, "%s: no seek table (footer magic 0x%08" PRIx32 ")", name, magic);
        goto fail;
    }
    if (desc & 0x7C) {
        mfs_err_set(err, "%s: bad seek table: reserved descriptor bits set (0x%02x)", name, desc);
        goto fail;
    }
    bool sums = desc & 0x80;
    uint64_t entry = sums ? 12 : 8;
    uint64_t table = (uint64_t)n * entry + FOOTER_SIZE; /* the skippable frame's content */
    if (table + 8 > size) {
        mfs_err_set(err, "%s: bad seek table: %" PRIu32 " entries do not fit in the file", name, n);
        goto fail;
    }
    uint64_t table_start = size - table - 8;
    if ((rc = mfs_source_read_exact(file, head, 8, table_start, err)))
        goto fail;
    rc = -EINVAL;
    if (le32(head) != SKIPPABLE_SEEK_TABLE || le32(head + 4) != table) {
        mfs_err_set(err, "%s: bad seek table: its frame header does not match %" PRIu32 " entries", name, n);
        goto fail;
    }
    raw = malloc(table);
    frames = calloc(n ? n : 1, sizeof *frames);
    if (!raw || !frames) {
        mfs_err_set(err, "%s: out of memory for a seek table of %" PRIu32 " entries", name, n);
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = mfs_source_read_exact(file, raw, table, table_start + 8, err)))
        goto fail;
    rc = -EINVAL;
    uint64_t coff = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = raw + (uint64_t)i * entry;
        struct frame *fr = &frames[i];
        fr->coff = coff;
        fr->csize = le32(p);
        fr->dsize = le32(p + 4);
        fr->checksum = sums ? le32(p + 8) : 0;
        coff += fr->csize;
        if (fr->dsize > MAX_FRAME_CHUNK) {
            mfs_err_set(err, "%s: frame %" PRIu32 " decodes to %" PRIu64 " bytes; frames over %llu MiB are not supported",
                        name, i, fr->dsize, MAX_FRAME_CHUNK >> 20);
            rc = -ENOTSUP;
            goto fail;
        }
        if (fr->csize == 0) {
            mfs_err_set(err, "%s: bad seek table: frame %" PRIu32 " has no compressed bytes", name, i);
            goto fail;
        }
    }
    if (coff != table_start) {
        mfs_err_set(err, "%s: bad seek table: frames add up to %" PRIu64 " bytes but the table starts at %" PRIu64, name,
                    coff, table_start);
        goto fail;
    }
    free(raw);
    return framed_create(file, frames, n, sums, MFS_SRC_ZSTD_SEEKABLE, engine, out, err);
fail:
    free(raw);
    free(frames);
    mfs_source_unref(file);
    return rc;
}

/* ---------------------------------------------------------------- frame walking */

struct walker {
    mfs_source *file;
    const char *name;
    uint64_t size;
    uint8_t buf[1 << 16];
    uint64_t buf_off;
    size_t buf_len;
};

/* n <= 18 bytes at off, all inside the file (the caller checks). */
static int walk_peek(struct walker *w, uint64_t off, uint8_t *dst, size_t n, mfs_err *err)
{
    if (off < w->buf_off || off + n > w->buf_off + w->buf_len) {
        size_t want = w->size - off < sizeof w->buf ? (size_t)(w->size - off) : sizeof w->buf;
        int rc = mfs_source_read_exact(w->file, w->buf, want, off, err);
        if (rc)
            return rc;
        w->buf_off = off;
        w->buf_len = want;
    }
    memcpy(dst, w->buf + (off - w->buf_off), n);
    return 0;
}

#define CONTENT_SIZE_UNKNOWN UINT64_MAX

/* The frame at `pos`: its compressed size, decoded size (or unknown), or skippable. */
static int walk_frame(struct walker *w, uint64_t pos, uint64_t *csize, uint64_t *dsize, bool *skippable, mfs_err *err)
{
    uint8_t h[18];
    uint64_t left = w->size - pos;
    if (left < 8) {
        mfs_err_set(err, "%s: %" PRIu64 " stray bytes at offset %" PRIu64 " after the last frame", w->name, left, pos);
        return -EINVAL;
    }
    int rc = walk_peek(w, pos, h, left < 18 ? (size_t)left : 18, err);
    if (rc)
        return rc;
    uint32_t magic = le32(h);
    if ((magic & SKIPPABLE_MASK) == SKIPPABLE_START) {
        uint64_t n = 8 + (uint64_t)le32(h + 4);
        if (n > left) {
            mfs_err_set(err, "%s: skippable frame at offset %" PRIu64 " runs past the end of the file", w->name, pos);
            return -EINVAL;
        }
        *csize = n;
        *dsize = 0;
        *skippable = true;
        return 0;
    }
    if (magic != ZSTD_MAGIC) {
        mfs_err_set(err, "%s: no zstd frame at offset %" PRIu64 " (magic 0x%08" PRIx32 ")", w->name, pos, magic);
        return -EINVAL;
    }
    *skippable = false;
    uint8_t d = h[4];
    unsigned fcs_flag = d >> 6, single = (d >> 5) & 1, checksum = (d >> 2) & 1, did_flag = d & 3;
    if (d & 0x08) {
        mfs_err_set(err, "%s: corrupt frame header at offset %" PRIu64 " (reserved bit set)", w->name, pos);
        return -EINVAL;
    }
    static const unsigned did_size[4] = {0, 1, 2, 4};
    unsigned fcs_size = fcs_flag == 0 ? single : 1u << fcs_flag;
    unsigned hdr = 5 + !single + did_size[did_flag] + fcs_size;
    if (hdr > left) {
        mfs_err_set(err, "%s: frame header at offset %" PRIu64 " runs past the end of the file", w->name, pos);
        return -EINVAL;
    }
    uint64_t window = 0, fcs = CONTENT_SIZE_UNKNOWN;
    if (!single) {
        unsigned e = h[5] >> 3, m = h[5] & 7;
        window = (1ull << (10 + e));
        window += window / 8 * m;
    }
    if (fcs_size) {
        const uint8_t *p = h + 5 + !single + did_size[did_flag];
        fcs = 0;
        for (unsigned i = 0; i < fcs_size; i++)
            fcs |= (uint64_t)p[i] << (8 * i);
        if (fcs_size == 2)
            fcs += 256;
    }
    if (single)
        window = fcs;
    uint64_t block_max = window < BLOCK_MAX ? window : BLOCK_MAX;
    uint64_t at = pos + hdr, blocks = 0;
    for (;;) {
        uint8_t b[3];
        if (w->size - at < 3) {
            mfs_err_set(err, "%s: frame at offset %" PRIu64 " is truncated", w->name, pos);
            return -EINVAL;
        }
        if ((rc = walk_peek(w, at, b, 3, err)))
            return rc;
        uint32_t bh = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16;
        unsigned last = bh & 1, type = (bh >> 1) & 3;
        uint64_t bsize = bh >> 3;
        if (type == 3 || bsize > block_max) {
            mfs_err_set(err, "%s: corrupt block header at offset %" PRIu64 " in the frame at %" PRIu64, w->name, at, pos);
            return -EINVAL;
        }
        uint64_t content = type == 1 ? 1 : bsize;
        if (w->size - at - 3 < content) {
            mfs_err_set(err, "%s: frame at offset %" PRIu64 " is truncated", w->name, pos);
            return -EINVAL;
        }
        at += 3 + content;
        blocks++;
        if (last)
            break;
    }
    /* Each block decodes to at most block_max bytes: a larger claimed size is a lie that would
     * make us plan (and allocate for) data that cannot exist. */
    if (fcs != CONTENT_SIZE_UNKNOWN && fcs > blocks * (block_max ? block_max : 1)) {
        mfs_err_set(err, "%s: frame at offset %" PRIu64 " claims %" PRIu64 " bytes, more than its %" PRIu64
                    " blocks can hold", w->name, pos, fcs, blocks);
        return -EINVAL;
    }
    if (checksum) {
        if (w->size - at < 4) {
            mfs_err_set(err, "%s: frame at offset %" PRIu64 " is truncated", w->name, pos);
            return -EINVAL;
        }
        at += 4;
    }
    *csize = at - pos;
    *dsize = fcs;
    return 0;
}

/* Decode a frame whose header has no content size, only to learn its size. */
static int count_frame(mfs_source *file, uint64_t coff, uint64_t csize, uint64_t *dsize, mfs_err *err)
{
    ZSTD_DStream *ds = ZSTD_createDStream();
    uint8_t *in = malloc(1 << 17), *out = malloc(1 << 17);
    int rc = 0;
    uint64_t total = 0, done = 0;
    if (!ds || !in || !out) {
        rc = -ENOMEM;
        goto out;
    }
    size_t zr = 1;
    while (done < csize) {
        size_t n = csize - done < (1 << 17) ? (size_t)(csize - done) : (1 << 17);
        if ((rc = mfs_source_read_exact(file, in, n, coff + done, err)))
            goto out;
        done += n;
        ZSTD_inBuffer ib = {in, n, 0};
        while (ib.pos < ib.size) {
            ZSTD_outBuffer ob = {out, 1 << 17, 0};
            zr = ZSTD_decompressStream(ds, &ob, &ib);
            if (ZSTD_isError(zr)) {
                mfs_err_set(err, "%s: corrupt frame at offset %" PRIu64 ": %s", mfs_source_name(file), coff,
                            ZSTD_getErrorName(zr));
                rc = -EINVAL;
                goto out;
            }
            total += ob.pos;
            if (total > MAX_COUNTED) {
                mfs_err_set(err, "%s: the frame at offset %" PRIu64 " has no content size and decodes to more than "
                            "%llu GiB; recompress it with the content size", mfs_source_name(file), coff,
                            MAX_COUNTED >> 30);
                rc = -EFBIG;
                goto out;
            }
        }
    }
    if (zr != 0) {
        mfs_err_set(err, "%s: frame at offset %" PRIu64 " is truncated", mfs_source_name(file), coff);
        rc = -EINVAL;
    }
    *dsize = total;
out:
    ZSTD_freeDStream(ds);
    free(in);
    free(out);
    return rc;
}

static int stream_create(mfs_source *file, uint64_t total, uint64_t n_frames, mfs_engine *engine, mfs_source **out,
                         mfs_err *err);

int mfs_zstd_open(mfs_source *file, mfs_engine *engine, mfs_source **out, mfs_err *err)
{
    const char *name = mfs_source_name(file);
    uint64_t size = mfs_source_size(file);
    uint8_t foot[FOOTER_SIZE];
    if (size >= FOOTER_SIZE + 8 && mfs_source_read_exact(file, foot, FOOTER_SIZE, size - FOOTER_SIZE, NULL) == 0 &&
        le32(foot + 5) == SEEKABLE_MAGIC)
        return mfs_zstd_open_seekable(file, engine, out, err);

    struct walker *w = malloc(sizeof *w);
    struct frame *frames = NULL;
    uint64_t n = 0, cap = 0, total = 0;
    bool big = false;
    int rc = -ENOMEM;
    if (!w) {
        mfs_err_set(err, "%s: out of memory", name);
        goto fail;
    }
    *w = (struct walker){.file = file, .name = name, .size = size};
    for (uint64_t pos = 0; pos < size;) {
        uint64_t csize, dsize;
        bool skip;
        if ((rc = walk_frame(w, pos, &csize, &dsize, &skip, err)))
            goto fail;
        if (!skip) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                struct frame *f2 = realloc(frames, cap * sizeof *frames);
                if (!f2) {
                    rc = -ENOMEM;
                    mfs_err_set(err, "%s: out of memory indexing frames", name);
                    goto fail;
                }
                frames = f2;
            }
            if (dsize == CONTENT_SIZE_UNKNOWN && (rc = count_frame(file, pos, csize, &dsize, err)))
                goto fail;
            if (total + dsize < total) {
                mfs_err_set(err, "%s: frame sizes overflow", name);
                rc = -EINVAL;
                goto fail;
            }
            frames[n++] = (struct frame){.coff = pos, .csize = csize, .doff = total, .dsize = dsize};
            total += dsize;
            big = big || dsize > MAX_FRAME_CHUNK;
        }
        pos += csize;
    }
    free(w);
    w = NULL;
    if (n == 0) {
        mfs_err_set(err, "%s: no zstd frame in the file", name);
        rc = -EINVAL;
        goto fail;
    }
    if (n == 1 || big) {
        free(frames);
        return stream_create(file, total, n, engine, out, err);
    }
    return framed_create(file, frames, n, false, MFS_SRC_ZSTD_FRAMES, engine, out, err);
fail:
    free(w);
    free(frames);
    mfs_source_unref(file);
    return rc;
}

/* ---------------------------------------------------------------- streaming decoder
 * One decoder walks the whole file in order. A read behind it restarts from the start (slow: the
 * log and NAME.meta say so). The two chunks decoded last are kept, so readers that arrive a little
 * out of order do not restart it. */

struct stream {
    mfs_source *file;
    mfs_chunked *chunks;
    uint64_t total, n_frames;
    pthread_mutex_t mu;
    ZSTD_DStream *ds;
    uint8_t *in;
    ZSTD_inBuffer ib;
    uint64_t in_pos;  /* next stored byte to read */
    uint64_t out_pos; /* decoded bytes produced */
    uint8_t *recent[2];
    uint64_t recent_idx[2];
    uint64_t restarts;
};

#define STREAM_IN (1u << 20)

static uint64_t stream_chunk_size(const struct stream *s, uint64_t i)
{
    uint64_t start = i * STREAM_CHUNK;
    return s->total - start < STREAM_CHUNK ? s->total - start : STREAM_CHUNK;
}

/* Decode the next `size` bytes into dst. s->mu held. */
static int stream_next(struct stream *s, uint8_t *dst, size_t size)
{
    ZSTD_outBuffer ob = {dst, size, 0};
    uint64_t stored = mfs_source_size(s->file);
    while (ob.pos < ob.size) {
        if (s->ib.pos == s->ib.size) {
            if (s->in_pos >= stored)
                return -EIO; /* the frames decode to less than they said */
            size_t n = stored - s->in_pos < STREAM_IN ? (size_t)(stored - s->in_pos) : STREAM_IN;
            int rc = mfs_source_read_exact(s->file, s->in, n, s->in_pos, NULL);
            if (rc)
                return rc;
            s->in_pos += n;
            s->ib = (ZSTD_inBuffer){s->in, n, 0};
        }
        size_t zr = ZSTD_decompressStream(s->ds, &ob, &s->ib);
        if (ZSTD_isError(zr))
            return -EIO;
    }
    s->out_pos += size;
    return 0;
}

static void stream_restart(struct stream *s)
{
    ZSTD_DCtx_reset(s->ds, ZSTD_reset_session_only);
    s->ib = (ZSTD_inBuffer){s->in, 0, 0};
    s->in_pos = 0;
    s->out_pos = 0;
    s->recent_idx[0] = s->recent_idx[1] = UINT64_MAX;
    s->restarts++;
    if (s->restarts == 1 || s->restarts % 100 == 0)
        mfs_log(MFS_LOG_WARN, "%s: single-frame zstd read backwards: decoding again from the start (%" PRIu64
                " times so far); repack with modelfs-pack for random access", mfs_source_name(s->file), s->restarts);
}

static int stream_decode(void *ctx, uint64_t i, void *dst, size_t size)
{
    struct stream *s = ctx;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    for (int k = 0; k < 2; k++)
        if (s->recent_idx[k] == i) {
            memcpy(dst, s->recent[k], size);
            goto out;
        }
    if (!s->recent[0] && (!(s->recent[0] = malloc(STREAM_CHUNK)) || !(s->recent[1] = malloc(STREAM_CHUNK)))) {
        rc = -ENOMEM;
        goto out;
    }
    if (s->out_pos > i * STREAM_CHUNK)
        stream_restart(s);
    while (s->out_pos <= i * STREAM_CHUNK) {
        uint64_t j = s->out_pos / STREAM_CHUNK;
        int k = (int)(j & 1);
        size_t n = (size_t)stream_chunk_size(s, j);
        s->recent_idx[k] = UINT64_MAX;
        if ((rc = stream_next(s, s->recent[k], n))) {
            stream_restart(s); /* the decoder state is unusable after an error */
            goto out;
        }
        s->recent_idx[k] = j;
        if (j == i)
            memcpy(dst, s->recent[k], size);
        else
            mfs_chunked_offer(s->chunks, j, s->recent[k], n);
    }
out:
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static const struct mfs_chunk_ops k_stream_chunk_ops = {.decode = stream_decode};

static ssize_t stream_read(void *impl, void *buf, size_t len, uint64_t off)
{
    struct stream *s = impl;
    return s->chunks ? mfs_chunked_read(s->chunks, buf, len, off) : 0;
}

static void stream_destroy(void *impl)
{
    struct stream *s = impl;
    mfs_chunked_destroy(s->chunks);
    mfs_source_unref(s->file);
    ZSTD_freeDStream(s->ds);
    pthread_mutex_destroy(&s->mu);
    free(s->in);
    free(s->recent[0]);
    free(s->recent[1]);
    free(s);
}

static const struct mfs_source_ops k_stream_ops = {.read = stream_read, .destroy = stream_destroy};

static int stream_create(mfs_source *file, uint64_t total, uint64_t n_frames, mfs_engine *engine, mfs_source **out,
                         mfs_err *err)
{
    const char *name = mfs_source_name(file);
    struct stream *s = calloc(1, sizeof *s);
    uint64_t *ends = NULL;
    uint64_t n = (total + STREAM_CHUNK - 1) / STREAM_CHUNK;
    if (!s || !(s->ds = ZSTD_createDStream()) || !(s->in = malloc(STREAM_IN)) ||
        !(ends = malloc((n ? n : 1) * sizeof *ends))) {
        if (s) {
            ZSTD_freeDStream(s->ds);
            free(s->in);
        }
        free(s);
        free(ends);
        mfs_source_unref(file);
        mfs_err_set(err, "%s: out of memory", name);
        return -ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->file = file;
    s->total = total;
    s->n_frames = n_frames;
    s->recent_idx[0] = s->recent_idx[1] = UINT64_MAX;
    for (uint64_t i = 0; i < n; i++)
        ends[i] = i * STREAM_CHUNK + stream_chunk_size(s, i);
    int rc = n ? mfs_chunked_create(engine, ends, n, &k_stream_chunk_ops, s, MFS_CHUNKED_SEQUENTIAL, name, &s->chunks) : 0;
    free(ends);
    if (rc) {
        mfs_err_set(err, "%s: cannot index: %s", name, strerror(-rc));
        stream_destroy(s);
        return rc;
    }
    struct mfs_source_info info = {.kind = MFS_SRC_ZSTD_STREAM, .size = total, .stored_size = mfs_source_size(file),
                                   .n_frames = n_frames};
    return mfs_source_create(&k_stream_ops, s, &info, name, out);
}

bool mfs_zstd_is_zstd(const uint8_t *head, size_t len)
{
    if (len < 4)
        return false;
    uint32_t magic = le32(head);
    return magic == ZSTD_MAGIC || (magic & SKIPPABLE_MASK) == SKIPPABLE_START;
}
