/* Private to loader/: modelfs's tensor-aware container, `.mfz` (the format: docs/COMPRESSION.md).
 *
 * Three files: container.c reads a container (a chunked source in the decode engine),
 * container_codec.c holds the chunk codecs (byte planes, block fields, the SIMD inverse shuffle),
 * container_pack.c writes one (modelfs-pack --format container).
 *
 * File layout, little-endian, fixed width:
 *   header (64 bytes) | chunk payloads, back to back, in decoded order | index (n_chunks * 32 bytes)
 * Header:
 *   u8[8] magic 89 'M' 'F' 'Z' 0D 0A 1A 0A   u32 version (1)   u32 flags (0)
 *   u64 decoded size   u64 n_chunks   u64 index offset   u32 input kind   u32 chunk size   u8[16] zero
 * Index entry (one per chunk; the chunks' decoded bytes follow each other from offset 0):
 *   u64 stored offset   u32 stored size   u32 decoded size   u64 XXH3-64 of the decoded bytes
 *   u32 tensor (index in the input's tensor table, 0xFFFFFFFF: header or padding)
 *   u8 codec   u8 param (the ggml type for MFZ_BLOCKS, else 0)   u8[2] zero
 * Payload of the plane codecs (MFZ_BF16, MFZ_F16, MFZ_F32, MFZ_BLOCKS): one u32 per plane,
 * bit 31 = the plane is a zstd frame (else raw bytes), bits 0-30 its stored size; then the planes.
 * MFZ_BF16X and MFZ_F16X put an 8-byte header before their plane table (below).
 *
 * Thread safety: a container source serves reads from any number of threads; an mfz_enc belongs to
 * one thread; everything else here is stateless or initialized once.
 */
#ifndef MFS_CONTAINER_H
#define MFS_CONTAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zstd.h>

#include "mfs_engine.h"
#include "mfs_source.h"

#define MFZ_MAGIC "\x89MFZ\r\n\x1a\n"
#define MFZ_VERSION 1u
#define MFZ_HEADER_SIZE 64u
#define MFZ_ENTRY_SIZE 32u
#define MFZ_NO_TENSOR 0xFFFFFFFFu
/* Chunks decode to at most this (the engine caches whole chunks). */
#define MFZ_MAX_CHUNK (64u << 20)
#define MFZ_MAX_PLANES 8u
#define MFZ_PLANE_ZSTD 0x80000000u

enum mfz_codec {
    MFZ_RAW = 0,    /* stored as is */
    MFZ_ZERO = 1,   /* all zero bytes, nothing stored (padding) */
    MFZ_ZSTD = 2,   /* one zstd frame */
    MFZ_BF16 = 3,   /* 2-byte elements rotated left by 1 (sign to bit 0), then 2 byte planes */
    MFZ_F16 = 4,    /* same for F16 */
    MFZ_F32 = 5,    /* 4-byte elements rotated left by 1, then 4 byte planes */
    MFZ_BLOCKS = 6, /* quantized blocks of ggml type `param` split into field planes */
    MFZ_BF16X = 7,  /* BF16 rotated left by 1; exponents as 4-bit codes from a base, two per byte
                     * (code 15: the exponent is in the escape plane), low bytes as a plane */
    MFZ_F16X = 8,   /* same for F16, whose 3 bits between exponent and low byte are 3 bit planes */
    MFZ_CODEC_COUNT
};

/* MFZ_BF16X / MFZ_F16X payload: u8 base exponent, u8[3] zero, u32 escapes, then the plane table:
 * codes (ceil(n/2) bytes, element 2k in the low nibble of byte k), low bytes (n), [F16X: bit
 * planes of mantissa bits 7, 8, 9 (ceil(n/8) bytes each, element i in bit i%8 of byte i/8)],
 * escapes (one exponent byte each). */
#define MFZ_XHEADER 8u
/* Exponent codes cover [base, base + 14]; 15 escapes. */
#define MFZ_NIBBLE_SPAN 15u

enum mfz_input { MFZ_INPUT_OTHER = 0, MFZ_INPUT_GGUF = 1, MFZ_INPUT_SAFETENSORS = 2 };

/* How a plane codec cuts an element (a float or a quantized block) into planes: plane p holds
 * bytes [off[p], off[p] + len[p]) of every element. The planes cover the element exactly. */
struct mfz_layout {
    uint32_t elem;     /* bytes per element */
    uint32_t n_planes; /* 1..MFZ_MAX_PLANES */
    uint16_t off[MFZ_MAX_PLANES], len[MFZ_MAX_PLANES];
    bool rotate;       /* float: the element is rotated left by one bit before the split */
};

/* Do these first bytes start a container? */
bool mfs_container_is(const uint8_t *head, size_t len);

/* Open a container given as a plain-file source (its reference is taken over, also on
 * failure): a source of the original bytes, decoded chunk by chunk through the engine. */
int mfs_container_open(mfs_source *file, mfs_engine *engine, mfs_source **out, mfs_err *err);

/* ---- codecs (container_codec.c) ---- */

/* The chunk checksum: XXH3-64 (seed 0) of the decoded bytes, with the fastest code for this CPU. */
uint64_t mfz_checksum(const void *p, size_t n);

const char *mfz_codec_name(unsigned codec);
/* The plane layout of a plane codec: 0, or -EINVAL if (codec, param) has none. */
int mfz_layout_of(unsigned codec, unsigned param, struct mfz_layout *out);
/* Bytes per element of a codec (1 for RAW, ZERO, ZSTD): chunks hold whole elements. 0 if the
 * codec has no such parameter. */
uint32_t mfz_elem_size(unsigned codec, unsigned param);
/* Element size of a codec that has elements (1 for RAW, ZERO, ZSTD) and whether `csize` stored
 * bytes can hold `dsize` decoded ones under it: the decoder relies on these checks. */
int mfz_check_sizes(unsigned codec, unsigned param, uint32_t csize, uint32_t dsize, uint32_t *elem);

/* The codec for a tensor of ggml type `type` (MFZ_BLOCKS with *param = type for quantized types
 * that have a field table; MFZ_ZSTD for the rest). */
unsigned mfz_codec_for_type(uint32_t type, unsigned *param);

/* Encoder parameters: `level` for MFZ_ZSTD chunks; the plane frames use a zstd setup that makes
 * zstd an entropy coder (fast strategy, long minimum match, small tables); a zstd plane is kept
 * only if it saves at least `min_gain` of the plane, else the plane is stored raw (raw planes
 * cost nothing to decode). */
struct mfz_enc_params {
    int level;
    int plane_level, plane_strategy, plane_min_match, plane_window_log, plane_hash_log;
    double min_gain;
};
void mfz_enc_params_default(struct mfz_enc_params *p, int level);

/* One encoder per thread. */
typedef struct mfz_enc mfz_enc;
mfz_enc *mfz_enc_new(const struct mfz_enc_params *p);
void mfz_enc_free(mfz_enc *e);
/* Encode `n` bytes with `codec` (a plane codec or MFZ_ZSTD) into `out` (capacity `cap`, at least
 * n + 4 * MFZ_MAX_PLANES). Returns the payload size, or 0 if the codec does not fit in `cap` or
 * saves nothing over RAW (the caller then stores the chunk raw), or -errno. */
long mfz_encode(mfz_enc *e, unsigned codec, unsigned param, const uint8_t *src, size_t n, uint8_t *out, size_t cap);

/* Bytes of scratch that mfz_decode needs for a chunk of n decoded bytes. */
#define MFZ_SCRATCH(n) (2 * (size_t)(n) + 64)

/* The codec a chunk is stored with: `codec` (the tensor type's, from mfz_codec_for_type), the byte
 * planes when exponents are too spread for MFZ_BF16X or MFZ_F16X, plain zstd when it is smaller (quantized
 * blocks, chunks up to 16 KiB), raw when nothing saves a byte. Returns the payload size with the
 * payload in `out` and the codec in *used (MFZ_RAW: n, the payload is `src` itself), or -errno. */
long mfz_encode_best(mfz_enc *e, unsigned codec, unsigned param, const uint8_t *src, size_t n, uint8_t *out,
                     size_t cap, unsigned *used);

/* Decode a payload of `csize` bytes into exactly `n` bytes at dst (codec and sizes validated by
 * the caller: mfz_check_sizes). `scratch` holds MFZ_SCRATCH(n) bytes. 0 or -EIO. */
int mfz_decode(ZSTD_DCtx *dctx, unsigned codec, unsigned param, const uint8_t *src, size_t csize, uint8_t *dst,
               size_t n, uint8_t *scratch);

/* The inverse shuffle: interleave the planes of `n` elements into dst, and expand `n` exponent
 * codes (MFZ_BF16X) into bytes. Exposed per instruction set so tests compare each against the
 * scalar one. */
enum mfz_isa { MFZ_ISA_AUTO, MFZ_ISA_SCALAR, MFZ_ISA_AVX2, MFZ_ISA_AVX512 };
/* Is `isa` usable on this CPU? */
bool mfz_isa_supported(enum mfz_isa isa);
/* The one MFZ_ISA_AUTO picks (MFZ_SIMD=scalar|avx2|avx512 in the environment caps it). */
enum mfz_isa mfz_isa_auto(void);
const char *mfz_isa_name(enum mfz_isa isa);
void mfz_merge(enum mfz_isa isa, const struct mfz_layout *l, const uint8_t *const *planes, size_t n, uint8_t *dst);
/* -EIO unless exactly n_esc codes are 15 and the padding nibble of an odd n is 0. */
int mfz_expand_nibbles(enum mfz_isa isa, const uint8_t *codes, size_t n, uint8_t base, const uint8_t *esc,
                       size_t n_esc, uint8_t *out);
/* F16 high bytes in place: e[i] = e[i] << 3 | bit i of b9 << 2 | bit i of b8 << 1 | bit i of b7,
 * for exponents e[i] < 32. */
void mfz_f16_high(enum mfz_isa isa, uint8_t *e, const uint8_t *b7, const uint8_t *b8, const uint8_t *b9, size_t n);
/* The forward shuffle (encoder side; scalar). */
void mfz_split(const struct mfz_layout *l, const uint8_t *src, size_t n, uint8_t *const *planes);

#endif
