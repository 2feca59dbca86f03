/* mfs_pack: write model files for modelfs.
 *
 * MFS_PACK_CONTAINER writes modelfs's tensor-aware container (`.mfz`, docs/COMPRESSION.md): each
 * tensor of a GGUF or safetensors input cut into chunks coded for its type (byte planes for floats,
 * field planes for quantized blocks), with a checksum per chunk and an index for random access.
 *
 * MFS_PACK_ZST writes the zstd seekable format (see loader/zstd_src.c for the layout): the input
 * cut into frames of `chunk` bytes, each an independent zstd frame with its content size, then a
 * seek table with the low 32 bits of each frame's XXH64. Stock `zstd -d` restores the input
 * exactly (it skips the seek table, a skippable frame).
 *
 * The output is written to a temporary file beside OUT and renamed over it at the end, so an
 * interrupted pack never leaves a truncated OUT; OUT is replaced only with `force`.
 * Thread safety: one call packs one file, with `threads` workers of its own.
 */
#ifndef MFS_PACK_H
#define MFS_PACK_H

#include <stdbool.h>
#include <stdint.h>

#include "mfs_log.h"

/* Chosen by measurement on model weights (docs/PACKING.md): the ratio is within 0.1% of one
 * frame, random reads decode little more than they need, and frames are big enough for the
 * decoder to run at full speed. */
#define MFS_PACK_DEFAULT_CHUNK (4u << 20)
/* Container chunks: random reads decode little, a chunk and its planes stay in L2 while it is
 * decoded, and the ratio is within 0.1% of bigger chunks (docs/COMPRESSION.md). */
#define MFS_PACK_DEFAULT_CONTAINER_CHUNK (256u << 10)
#define MFS_PACK_DEFAULT_LEVEL 3
#define MFS_PACK_MAX_CHUNK (64u << 20)

enum mfs_pack_format {
    MFS_PACK_ZST,       /* zstd seekable format */
    MFS_PACK_CONTAINER, /* modelfs's tensor-aware container */
};

struct mfs_pack_opts {
    enum mfs_pack_format format;
    int level;        /* zstd level; 0 = MFS_PACK_DEFAULT_LEVEL */
    uint32_t chunk;   /* bytes per frame (zst) or tensor chunk (container); 0 = the format's default
                       * (MFS_PACK_DEFAULT_CHUNK, MFS_PACK_DEFAULT_CONTAINER_CHUNK); at most MFS_PACK_MAX_CHUNK */
    unsigned threads; /* 0 = online CPUs */
    bool force;       /* replace an existing OUT */
    /* Called from the writing thread after each frame (may be NULL). */
    void (*progress)(void *user, uint64_t done, uint64_t total);
    void *progress_user;
};

struct mfs_pack_result {
    uint64_t in_bytes, out_bytes, frames;
};

/* The format modelfs-pack writes without --format: zst for an OUT ending in ".zst" and for inputs
 * that are neither GGUF nor safetensors (or cannot be read), else the container. */
enum mfs_pack_format mfs_pack_default_format(const char *in, const char *out);

/* Pack `in` (a plain file) into `out`. 0, or a negative errno with `err` naming the file. */
int mfs_pack_file(const char *in, const char *out, const struct mfs_pack_opts *opts, struct mfs_pack_result *res,
                  mfs_err *err);

#endif
