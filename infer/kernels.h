/* Kernels of the runner: weight block formats, activation formats, dot products and their
 * dispatch by CPU features. Private to infer/ (and its unit tests).
 *
 * Weight blocks are ggml's, little-endian, read in place from the mapped file (every bit pattern
 * is a valid block, so casting mapped bytes to these structs reads nothing out of bounds as long
 * as the tensor's size was checked, which the GGUF reader does):
 *   Q8_0  34 B / 32 values:  f16 d; i8 qs[32]                       x = d * q
 *   Q4_0  18 B / 32 values:  f16 d; u8 qs[16]  (low nibbles: values 0..15, high: 16..31)
 *                                                                    x = d * (q - 8)
 *   Q4_K 144 B / 256 values: f16 d, dmin; u8 scales[12] (8 x (6-bit scale, 6-bit min));
 *                            u8 qs[128] (per 64 values: 32 bytes, low nibbles first 32)
 *                                                                    x = d*sc[s]*q - dmin*m[s]
 *   Q6_K 210 B / 256 values: u8 ql[128] (low 4 bits), u8 qh[64] (high 2 bits), i8 scales[16]
 *                            (one per 16 values), f16 d                x = d * sc[s] * (q - 32)
 *
 * Activations are quantized once per matrix product to a format that suits the weight type
 * (struct mfs_act_fmt), like ggml's vec_dot_type, but laid out for SIMD: per row
 *   F32:   float x[k]
 *   Q8_0:  i8 q[k]; float d[k/32]; i32 s[k/32]      x ~= d[b] * q, s[b] = sum of the block's q
 *          then, 64-aligned, per pair of blocks p: float dv[p][16], i32 sv[p][16] (lanes 0-7: block
 *          2p, 8-15: block 2p+1, 0 past the end): d and -16 * s spread for 512-bit lanes (eight
 *          lanes of -16 * s take 128 * s out of a dot with weights made unsigned by + 128)
 *   Q8_K:  i8 q[k]; float d[k/256]; i16 bs[k/16]    bs = sums of 16 q
 * with q = round-half-even(x / d), d = amax/127 (Q8_0) or -max/127 of the signed extreme (Q8_K,
 * as ggml's quantize_row_q8_K). Rows are padded to 64 bytes (mfs_act_row_bytes).
 */
#ifndef MFS_INFER_KERNELS_H
#define MFS_INFER_KERNELS_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mfs_ggml.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the runner reads ggml blocks in place: little-endian hosts only"
#endif

#define MFS_QK 32   /* values per Q8_0/Q4_0 block */
#define MFS_QK_K 256 /* values per K-quant super-block */

struct mfs_blk_q8_0 {
    uint16_t d;
    int8_t qs[32];
};
struct mfs_blk_q4_0 {
    uint16_t d;
    uint8_t qs[16];
};
struct mfs_blk_q4_k {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[128];
};
struct mfs_blk_q6_k {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint16_t d;
};
static_assert(sizeof(struct mfs_blk_q8_0) == 34, "Q8_0 block");
static_assert(sizeof(struct mfs_blk_q4_0) == 18, "Q4_0 block");
static_assert(sizeof(struct mfs_blk_q4_k) == 144, "Q4_K block");
static_assert(sizeof(struct mfs_blk_q6_k) == 210, "Q6_K block");

enum mfs_act_fmt { MFS_ACT_F32 = 0, MFS_ACT_Q8_0 = 1, MFS_ACT_Q8_K = 2 };

/* Bytes of one activation row of k values (k a multiple of the format's block), 64-aligned. */
size_t mfs_act_row_bytes(enum mfs_act_fmt fmt, int k);
/* The activation format a weight type multiplies with; -1 if the type is not supported. */
int mfs_act_fmt_for(uint32_t wtype);
/* Is the weight type supported by the matrix kernels (F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K)? */
int mfs_kernel_type_ok(uint32_t wtype);
/* Quantize one row of k floats into activation format fmt (portable; the same bytes on every
 * CPU, so every kernel level sees the same input). */
void mfs_act_quantize(enum mfs_act_fmt fmt, const float *x, void *out, int k);
/* Views into a quantized activation row. */
static inline const int8_t *mfs_act_q(const void *a) { return (const int8_t *)a; }
static inline const float *mfs_act_d(const void *a, int k) { return (const float *)((const int8_t *)a + k); }
static inline const int32_t *mfs_act_s8_0(const void *a, int k) { return (const int32_t *)(mfs_act_d(a, k) + k / MFS_QK); }
static inline const int16_t *mfs_act_bs(const void *a, int k) { return (const int16_t *)(mfs_act_d(a, k) + k / MFS_QK_K); }
static inline size_t mfs_act_q8_0_vec_off(int k) { return ((size_t)k + (size_t)k / MFS_QK * 8 + 63) & ~(size_t)63; }
static inline const float *mfs_act_dv(const void *a, int k) { return (const float *)((const uint8_t *)a + mfs_act_q8_0_vec_off(k)); }
static inline const int32_t *mfs_act_sv(const void *a, int k)
{
    return (const int32_t *)(mfs_act_dv(a, k) + (size_t)(k / MFS_QK + 1) / 2 * 16);
}

/* y[c * ys + r] = dot(weight row r, activation row c) for r < nr, c < nc.
 * k: values per row; w: first weight row, ws bytes apart; a: first activation row, as bytes apart. */
typedef void (*mfs_gemm_fn)(int k, const void *w, size_t ws, int nr, const void *a, size_t as, int nc, float *y,
                            size_t ys);

enum mfs_kernel_level { MFS_KL_SCALAR = 0, MFS_KL_AVX2 = 1, MFS_KL_AVX512 = 2, MFS_KL_COUNT = 3 };

struct mfs_kernels {
    const char *name;
    mfs_gemm_fn gemm[MFS_GGML_TYPE_COUNT]; /* NULL: unsupported type */
};

/* The kernel set for a level, or NULL if this CPU (or this build) lacks it. */
const struct mfs_kernels *mfs_kernels_get(enum mfs_kernel_level level);
/* The best level this CPU supports, lowered by $MFS_KERNELS (scalar|avx2|avx512) if set. */
const struct mfs_kernels *mfs_kernels_best(void);

/* Each level's table (NULL entries where a level relies on a lower one). */
extern const struct mfs_kernels mfs_kernels_scalar;
void mfs_kernels_avx2_fill(struct mfs_kernels *k);
void mfs_kernels_avx512_fill(struct mfs_kernels *k);

/* Convert a weight row of k values to floats (any supported type; portable). */
void mfs_row_to_f32(uint32_t wtype, const void *row, float *out, int k);

/* IEEE half and bfloat16 conversions (portable, round to nearest even). */
float mfs_f16_to_f32(uint16_t h);
uint16_t mfs_f32_to_f16(float f);
static inline float mfs_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Q4_K/Q6_K scale unpacking shared by the kernels. */
static inline void mfs_q4k_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

#endif
