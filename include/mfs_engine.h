/* mfs_engine: the decode engine behind every compressed source.
 *
 * A compressed source is cut into chunks (zstd frames, container chunks, or fixed pieces of a
 * stream) that decode independently. The engine keeps decoded chunks in one cache shared by every
 * source of a mount, bounded by a byte budget (LRU eviction), and runs worker threads that decode
 * ahead of a sequential reader, so one reader gets more than one core of decoding.
 *
 * Memory: decoded bytes held by the engine (cached, being decoded, or prefetched) stay within
 * `cache_bytes`, except that each reader thread may hold one chunk beyond it while the cache is
 * full of chunks other readers are copying from.
 *
 * Thread safety: everything here may be called from any thread, except create/destroy.
 */
#ifndef MFS_ENGINE_H
#define MFS_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct mfs_engine mfs_engine;
typedef struct mfs_chunked mfs_chunked;

struct mfs_engine_config {
    uint64_t cache_bytes;    /* budget for decoded chunks; 0 = 256 MiB */
    unsigned threads;        /* decode workers; 0 = online CPUs */
    uint64_t prefetch_bytes; /* how far ahead of a sequential reader to decode; 0 = 16 MiB */
};

struct mfs_engine_stats {
    uint64_t bytes_decoded;  /* decoded bytes produced, demand and prefetch */
    uint64_t chunks_decoded;
    uint64_t hits;           /* chunk lookups served from the cache (or joined a decode under way) */
    uint64_t misses;         /* chunk lookups that had to decode */
    uint64_t prefetched;     /* chunks decoded ahead by the workers */
    uint64_t decode_errors;
    uint64_t cached_bytes;   /* now held */
    uint64_t peak_bytes;     /* most ever held */
};

int mfs_engine_create(const struct mfs_engine_config *cfg, mfs_engine **out);
/* Stops the workers. Every mfs_chunked of this engine must be destroyed first. NULL is a no-op. */
void mfs_engine_destroy(mfs_engine *e);
void mfs_engine_stats(mfs_engine *e, struct mfs_engine_stats *out);
/* Drop every cached chunk that no reader is using (tests; memory pressure). */
void mfs_engine_drop_cache(mfs_engine *e);

/* How to decode one chunk. */
struct mfs_chunk_ops {
    /* Decode chunk `i` into `dst`, exactly `size` bytes. Return 0, or a negative errno (-EIO for
     * corrupt data: the engine logs it once per chunk with `name`). Called from reader and worker
     * threads at once unless the chunked stream is MFS_CHUNKED_SEQUENTIAL. */
    int (*decode)(void *ctx, uint64_t i, void *dst, size_t size);
};

enum {
    /* Chunks can only be produced in order (a streaming decoder): no parallel prefetch; the decode
     * callback may hand chunks it passes over to mfs_chunked_offer. */
    MFS_CHUNKED_SEQUENTIAL = 1u << 0,
};

/* A decoded stream of `n` chunks; chunk i covers [ends[i] - size_i, ends[i]), ends strictly
 * increasing, ends[n-1] the total size, each chunk at most 1 GiB. `ends` is copied. `name` is
 * used in log lines. The engine does not own `ctx`. */
int mfs_chunked_create(mfs_engine *e, const uint64_t *ends, uint64_t n, const struct mfs_chunk_ops *ops,
                       void *ctx, unsigned flags, const char *name, mfs_chunked **out);
/* Waits for decodes under way for this stream, drops its cached chunks. NULL is a no-op. */
void mfs_chunked_destroy(mfs_chunked *c);

/* Read [off, off+len) of the decoded stream, decoding what is not cached. Returns the bytes read
 * (short only at the end) or a negative errno from decode. */
ssize_t mfs_chunked_read(mfs_chunked *c, void *buf, size_t len, uint64_t off);

/* Put an already-decoded chunk in the cache if there is room (used by sequential decoders for the
 * chunks they decode on the way to the one asked for). `data` is copied. */
void mfs_chunked_offer(mfs_chunked *c, uint64_t i, const void *data, size_t size);

uint64_t mfs_chunked_size(const mfs_chunked *c);
uint64_t mfs_chunked_count(const mfs_chunked *c);

#endif
