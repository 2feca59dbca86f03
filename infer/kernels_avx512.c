/* AVX-512 kernels (F, BW, VL, VNNI, with F16C/FMA): chosen at run time by kernels.c, so the whole
 * file is compiled for that target (the pragma below gives every function here the target
 * attribute) and nothing in it runs unless the CPU has those features.
 *
 * Shapes: a float tile is 4 weight rows x up to 4 activation rows (16 zmm accumulators); a
 * quantized tile is 1 weight row x up to 4 activation rows, so the unpacking of a weight block is
 * shared by 4 dot products. Integer dots use vpdpbusd (u8 x s8): the weight side is made unsigned
 * (Q8_0: q ^ 0x80 = q + 128; Q4_0, Q4_K: the raw nibbles; Q6_K: the raw 6-bit values) and the
 * offset is taken out with the activation block sums, so no sign tricks are needed.
 */
#include "kernels.h"

#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")
#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

/* Software prefetch distance on the weight stream, bytes: about a DRAM latency's worth of data at
 * one core's bandwidth, and past the 4 KiB boundaries where hardware prefetchers stop. */
#define PREFETCH 4096

INLINE float f16(uint16_t h) { return _cvtsh_ss(h); }

/* ---- float weights: 4 x 4 tiles, 16 values per step, masked tail */

INLINE __m512 load_w_f32(const uint8_t *p, int i, __mmask16 m)
{
    return _mm512_maskz_loadu_ps(m, (const float *)p + i);
}
INLINE __m512 load_w_f16(const uint8_t *p, int i, __mmask16 m)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i));
}
INLINE __m512 load_w_bf16(const uint8_t *p, int i, __mmask16 m)
{
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

#define FLOAT_TILE(NAME, LOADW)                                                                              \
    INLINE void NAME(int k, const uint8_t *w, size_t ws, const uint8_t *a, size_t as, float *y, size_t ys,   \
                     const int RM, const int RN)                                                            \
    {                                                                                                        \
        __m512 acc[4][4];                                                                                    \
        _Pragma("GCC unroll 4") for (int r = 0; r < RM; r++)                                                 \
            _Pragma("GCC unroll 4") for (int c = 0; c < RN; c++) acc[r][c] = _mm512_setzero_ps();            \
        for (int i = 0; i < k; i += 16) {                                                                    \
            __mmask16 m = k - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - i)) - 1);                \
            __m512 wv[4];                                                                                    \
            _Pragma("GCC unroll 4") for (int r = 0; r < RM; r++) wv[r] = LOADW(w + (size_t)r * ws, i, m);    \
            _Pragma("GCC unroll 4") for (int c = 0; c < RN; c++)                                             \
            {                                                                                                \
                __m512 av = _mm512_maskz_loadu_ps(m, (const float *)(a + (size_t)c * as) + i);               \
                _Pragma("GCC unroll 4") for (int r = 0; r < RM; r++) acc[r][c] =                             \
                    _mm512_fmadd_ps(wv[r], av, acc[r][c]);                                                   \
            }                                                                                                \
        }                                                                                                    \
        _Pragma("GCC unroll 4") for (int r = 0; r < RM; r++)                                                 \
            _Pragma("GCC unroll 4") for (int c = 0; c < RN; c++) y[(size_t)c * ys + r] =                     \
                _mm512_reduce_add_ps(acc[r][c]);                                                             \
    }

FLOAT_TILE(tile_f32, load_w_f32)
FLOAT_TILE(tile_f16, load_w_f16)
FLOAT_TILE(tile_bf16, load_w_bf16)

/* One activation row (generation): the weight rows are one sequential stream, read with four
 * independent accumulators and a software prefetch well ahead, which keeps a core's memory
 * pipeline fuller than interleaving four rows does (each row starts a new page). */
#define FLOAT_MATVEC(NAME, LOADW, ESZ)                                                                      \
    INLINE void NAME(int k, const uint8_t *w, size_t ws, int nr, const float *a, float *y)                  \
    {                                                                                                        \
        for (int r = 0; r < nr; r++) {                                                                       \
            const uint8_t *wr = w + (size_t)r * ws;                                                          \
            __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;                                      \
            int i = 0;                                                                                       \
            for (; i + 64 <= k; i += 64) {                                                                   \
                for (int l = 0; l < ESZ; l++)                                                                \
                    _mm_prefetch((const char *)(wr + (size_t)i * ESZ) + PREFETCH + 64 * l, _MM_HINT_T0);    \
                s0 = _mm512_fmadd_ps(LOADW(wr, i, 0xffff), _mm512_loadu_ps(a + i), s0);                      \
                s1 = _mm512_fmadd_ps(LOADW(wr, i + 16, 0xffff), _mm512_loadu_ps(a + i + 16), s1);            \
                s2 = _mm512_fmadd_ps(LOADW(wr, i + 32, 0xffff), _mm512_loadu_ps(a + i + 32), s2);            \
                s3 = _mm512_fmadd_ps(LOADW(wr, i + 48, 0xffff), _mm512_loadu_ps(a + i + 48), s3);            \
            }                                                                                                \
            for (; i < k; i += 16) {                                                                         \
                __mmask16 m = k - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (k - i)) - 1);             \
                s0 = _mm512_fmadd_ps(LOADW(wr, i, m), _mm512_maskz_loadu_ps(m, a + i), s0);                  \
            }                                                                                                \
            y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));        \
        }                                                                                                    \
    }

FLOAT_MATVEC(matvec_f32, load_w_f32, 4)
FLOAT_MATVEC(matvec_f16, load_w_f16, 2)
FLOAT_MATVEC(matvec_bf16, load_w_bf16, 2)

/* Walk nr x nc in RM x 4 tiles, then the edges. */
#define FLOAT_GEMM(NAME, TILE, MATVEC)                                                                         \
    static void NAME(int k, const void *w, size_t ws, int nr, const void *a, size_t as, int nc, float *y,      \
                     size_t ys)                                                                                \
    {                                                                                                          \
        const uint8_t *W = w, *A = a;                                                                          \
        if (nc == 1) {                                                                                         \
            MATVEC(k, W, ws, nr, (const float *)a, y);                                                         \
            return;                                                                                            \
        }                                                                                                      \
        int r = 0;                                                                                             \
        for (; r + 4 <= nr; r += 4) {                                                                          \
            int c = 0;                                                                                         \
            for (; c + 4 <= nc; c += 4)                                                                        \
                TILE(k, W + r * ws, ws, A + c * as, as, y + c * ys + r, ys, 4, 4);                             \
            switch (nc - c) {                                                                                  \
            case 3: TILE(k, W + r * ws, ws, A + c * as, as, y + c * ys + r, ys, 4, 3); break;                  \
            case 2: TILE(k, W + r * ws, ws, A + c * as, as, y + c * ys + r, ys, 4, 2); break;                  \
            case 1: TILE(k, W + r * ws, ws, A + c * as, as, y + c * ys + r, ys, 4, 1); break;                  \
            }                                                                                                  \
        }                                                                                                      \
        for (; r < nr; r++) {                                                                                  \
            int c = 0;                                                                                         \
            for (; c + 4 <= nc; c += 4)                                                                        \
                TILE(k, W + r * ws, ws, A + c * as, as, y + c * ys + r, ys, 1, 4);                             \
            for (; c < nc; c++)                                                                                \
                TILE(k, W + r * ws, ws, A + c * as, as, y + c * ys + r, ys, 1, 1);                             \
        }                                                                                                      \
    }

FLOAT_GEMM(gemm_f32, tile_f32, matvec_f32)
FLOAT_GEMM(gemm_f16, tile_f16, matvec_f16)
FLOAT_GEMM(gemm_bf16, tile_bf16, matvec_bf16)

/* ---- quantized weights: 1 row x RN activation rows */

/* Two consecutive 32-value blocks' scales (or one, the other 0) as lanes 0-7 / 8-15. */
INLINE __m512 pair_ps(float lo, float hi) { return _mm512_insertf32x8(_mm512_set1_ps(lo), _mm256_set1_ps(hi), 1); }

/* Q8_0 and Q4_0: 64 values (2 blocks) per step; `wq` gives the unsigned weight bytes and the
 * offset (128 or 8) that makes them unsigned. */
INLINE __m512i q8_0_wq(const struct mfs_blk_q8_0 *x, int two)
{
    __m256i lo = _mm256_loadu_si256((const __m256i *)x[0].qs);
    __m256i hi = two ? _mm256_loadu_si256((const __m256i *)x[1].qs) : _mm256_set1_epi8(-128);
    return _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi8(-128));
}
INLINE __m512i q4_0_wq(const struct mfs_blk_q4_0 *x, int two)
{
    __m128i b0 = _mm_loadu_si128((const __m128i *)x[0].qs);
    __m128i b1 = two ? _mm_loadu_si128((const __m128i *)x[1].qs) : _mm_setzero_si128();
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(b0), b1, 1);
    __m256i m = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
    /* [lo0 lo1 hi0 hi1] -> [lo0 hi0 lo1 hi1]: each block's 32 values in order */
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    return _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
}

/* One step: blocks b and b+1 (TWO) or b alone, against RN activation rows. */
#define Q32_STEP(BLK, WQ, OFF, TWO)                                                                          \
    do {                                                                                                     \
        __m512i wq = WQ(x + b, TWO);                                                                         \
        __m512 dw = pair_ps(f16(x[b].d), TWO ? f16(x[b + 1].d) : 0.f);                                       \
        _Pragma("GCC unroll 4") for (int c = 0; c < RN; c++)                                                 \
        {                                                                                                    \
            __m512i q = TWO ? _mm512_loadu_si512(qa[c] + b * MFS_QK)                                         \
                            : _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(qa[c] + b * MFS_QK))); \
            __m512i sv = _mm512_load_si512(sva[c] + b * 8);                                                  \
            __m512i bias = OFF == 128 ? sv : _mm512_srai_epi32(sv, 4); /* -16 s or -s per lane */            \
            __m512 dy = _mm512_load_ps(dva[c] + b * 8);                                                      \
            __m512 t = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(bias, wq, q));                                 \
            acc[c] = _mm512_fmadd_ps(t, _mm512_mul_ps(dw, dy), acc[c]);                                      \
        }                                                                                                    \
    } while (0)

#define Q32_TILE(NAME, BLK, WQ, OFF)                                                                         \
    INLINE void NAME(int k, const uint8_t *w, const uint8_t *a, size_t as, float *y, size_t ys, const int RN) \
    {                                                                                                        \
        const BLK *x = (const BLK *)w;                                                                       \
        const int nb = k / MFS_QK;                                                                           \
        const int8_t *qa[4];                                                                                 \
        const int32_t *sva[4];                                                                               \
        const float *dva[4];                                                                                 \
        __m512 acc[4];                                                                                       \
        _Pragma("GCC unroll 4") for (int c = 0; c < RN; c++)                                                 \
        {                                                                                                    \
            acc[c] = _mm512_setzero_ps();                                                                    \
            qa[c] = mfs_act_q(a + (size_t)c * as);                                                           \
            sva[c] = mfs_act_sv(a + (size_t)c * as, k);                                                      \
            dva[c] = mfs_act_dv(a + (size_t)c * as, k);                                                      \
        }                                                                                                    \
        int b = 0;                                                                                           \
        for (; b + 2 <= nb; b += 2) {                                                                        \
            _mm_prefetch((const char *)(x + b) + PREFETCH, _MM_HINT_T0);                                     \
            Q32_STEP(BLK, WQ, OFF, 1);                                                                       \
        }                                                                                                    \
        if (b < nb)                                                                                          \
            Q32_STEP(BLK, WQ, OFF, 0);                                                                       \
        _Pragma("GCC unroll 4") for (int c = 0; c < RN; c++) y[(size_t)c * ys] = _mm512_reduce_add_ps(acc[c]); \
    }

Q32_TILE(tile_q8_0, struct mfs_blk_q8_0, q8_0_wq, 128)
Q32_TILE(tile_q4_0, struct mfs_blk_q4_0, q4_0_wq, 8)

/* K-quants: 256 values per super-block, 4 zmm of unsigned weight values, int16 scale vectors for
 * vpmaddwd after vpmaddubsw (u8 x s8 pair sums stay below 2 * 63 * 127, no saturation). */

/* The 8 scales and 8 mins of a Q4_K block as bytes 0-7 and 8-15 (ggml's utmp unpacking). */
INLINE __m128i q4k_scales_mins(const uint8_t *s12)
{
    uint32_t u[4];
    memcpy(u, s12, 12);
    const uint32_t k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;
    u[3] = ((u[2] >> 4) & k2) | (((u[1] >> 6) & k3) << 4);
    uint32_t aux = u[1] & k1;
    u[1] = (u[2] & k2) | (((u[0] >> 6) & k3) << 4);
    u[2] = aux;
    u[0] &= k1;
    return _mm_loadu_si128((const __m128i *)u);
}

#define K_TILE_BEGIN                                                                                         \
    __m512 acc[4];                                                                                           \
    _Pragma("GCC unroll 4") for (int c = 0; c < RN; c++) acc[c] = _mm512_setzero_ps();

INLINE void tile_q4_k(int k, const uint8_t *w, const uint8_t *a, size_t as, float *y, size_t ys, const int RN)
{
    const struct mfs_blk_q4_k *x = (const struct mfs_blk_q4_k *)w;
    const int nb = k / MFS_QK_K;
    /* lane i of the int16 scale vector for zmm j takes scale 2j + (i >= 16) */
    const __m512i sel0 = _mm512_set_epi16(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                          0, 0, 0, 0, 0, 0, 0);
    const __m512i two16 = _mm512_set1_epi16(2);
    const __m512i shifts = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    K_TILE_BEGIN
    for (int b = 0; b < nb; b++) {
        for (int l = 0; l < 3; l++)
            _mm_prefetch((const char *)(x + b) + PREFETCH + 64 * l, _MM_HINT_T0);
        __m128i sm = q4k_scales_mins(x[b].scales);
        __m512i sc16 = _mm512_cvtepu8_epi16(_mm256_castsi128_si256(sm)); /* scales in int16 lanes 0-7 */
        __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm)); /* each min twice */
        __m512i wq[4], sc[4];
        __m512i sel = sel0;
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)
        {
            __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * j)));
            wq[j] = _mm512_and_si512(_mm512_srlv_epi16(v, shifts), m4);
            sc[j] = _mm512_permutexvar_epi16(sel, sc16);
            sel = _mm512_add_epi16(sel, two16);
        }
        float d = f16(x[b].d), dmin = f16(x[b].dmin);
        _Pragma("GCC unroll 4") for (int c = 0; c < RN; c++)
        {
            const uint8_t *ac = a + (size_t)c * as;
            const int8_t *q = mfs_act_q(ac) + b * MFS_QK_K;
            float dy = mfs_act_d(ac, k)[b];
            __m512i isum = _mm512_setzero_si512();
            _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)
            {
                __m512i p = _mm512_maddubs_epi16(wq[j], _mm512_loadu_si512(q + 64 * j));
                isum = _mm512_add_epi32(isum, _mm512_madd_epi16(p, sc[j]));
            }
            __m256i bs = _mm256_loadu_si256((const __m256i *)(mfs_act_bs(ac, k) + 16 * b));
            __m256i msum = _mm256_madd_epi16(bs, mins16);
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * dy), acc[c]);
            acc[c] = _mm512_fnmadd_ps(_mm512_zextps256_ps512(_mm256_cvtepi32_ps(msum)), _mm512_set1_ps(dmin * dy),
                                      acc[c]);
        }
    }
    _Pragma("GCC unroll 4") for (int c = 0; c < RN; c++) y[(size_t)c * ys] = _mm512_reduce_add_ps(acc[c]);
}

INLINE void tile_q6_k(int k, const uint8_t *w, const uint8_t *a, size_t as, float *y, size_t ys, const int RN)
{
    const struct mfs_blk_q6_k *x = (const struct mfs_blk_q6_k *)w;
    const int nb = k / MFS_QK_K;
    /* lane i of scale vector j takes scale 4j + i / 8 */
    const __m512i sel0 = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0,
                                          0, 0, 0, 0, 0, 0, 0);
    const __m512i four16 = _mm512_set1_epi16(4);
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    const __m512i shl_lo = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i shr_hi = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    K_TILE_BEGIN
    for (int b = 0; b < nb; b++) {
        for (int l = 0; l < 4; l++)
            _mm_prefetch((const char *)(x + b) + PREFETCH + 64 * l, _MM_HINT_T0);
        __m256i sc16v = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[b].scales));
        __m512i sc16 = _mm512_castsi256_si512(sc16v);
        __m512i wq[4], sc[4];
        __m512i sel = sel0;
        _Pragma("GCC unroll 2") for (int n = 0; n < 2; n++)
        {
            __m512i ql = _mm512_loadu_si512(x[b].ql + 64 * n);
            __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x[b].qh + 32 * n)));
            __m512i h0 = _mm512_and_si512(_mm512_sllv_epi16(qh, shl_lo), m30);
            __m512i h1 = _mm512_and_si512(_mm512_srlv_epi16(qh, shr_hi), m30);
            wq[2 * n] = _mm512_or_si512(_mm512_and_si512(ql, m4), h0);
            wq[2 * n + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), h1);
        }
        _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)
        {
            sc[j] = _mm512_permutexvar_epi16(sel, sc16);
            sel = _mm512_add_epi16(sel, four16);
        }
        float d = f16(x[b].d);
        _Pragma("GCC unroll 4") for (int c = 0; c < RN; c++)
        {
            const uint8_t *ac = a + (size_t)c * as;
            const int8_t *q = mfs_act_q(ac) + b * MFS_QK_K;
            float dy = mfs_act_d(ac, k)[b];
            __m512i isum = _mm512_setzero_si512();
            _Pragma("GCC unroll 4") for (int j = 0; j < 4; j++)
            {
                __m512i p = _mm512_maddubs_epi16(wq[j], _mm512_loadu_si512(q + 64 * j));
                isum = _mm512_add_epi32(isum, _mm512_madd_epi16(p, sc[j]));
            }
            /* the values are stored + 32: take 32 * sum(scale * block sum) out */
            __m256i bs = _mm256_loadu_si256((const __m256i *)(mfs_act_bs(ac, k) + 16 * b));
            __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(bs, sc16v), 5);
            isum = _mm512_sub_epi32(isum, _mm512_zextsi256_si512(corr));
            acc[c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(d * dy), acc[c]);
        }
    }
    _Pragma("GCC unroll 4") for (int c = 0; c < RN; c++) y[(size_t)c * ys] = _mm512_reduce_add_ps(acc[c]);
}

#define QUANT_GEMM(NAME, TILE)                                                                                \
    static void NAME(int k, const void *w, size_t ws, int nr, const void *a, size_t as, int nc, float *y,     \
                     size_t ys)                                                                               \
    {                                                                                                         \
        const uint8_t *A = a;                                                                                 \
        for (int r = 0; r < nr; r++) {                                                                        \
            const uint8_t *wr = (const uint8_t *)w + (size_t)r * ws;                                          \
            int c = 0;                                                                                        \
            for (; c + 4 <= nc; c += 4)                                                                       \
                TILE(k, wr, A + c * as, as, y + c * ys + r, ys, 4);                                           \
            switch (nc - c) {                                                                                 \
            case 3: TILE(k, wr, A + c * as, as, y + c * ys + r, ys, 3); break;                                \
            case 2: TILE(k, wr, A + c * as, as, y + c * ys + r, ys, 2); break;                                \
            case 1: TILE(k, wr, A + c * as, as, y + c * ys + r, ys, 1); break;                                \
            }                                                                                                 \
        }                                                                                                     \
    }

QUANT_GEMM(gemm_q8_0, tile_q8_0)
QUANT_GEMM(gemm_q4_0, tile_q4_0)
QUANT_GEMM(gemm_q4_k, tile_q4_k)
QUANT_GEMM(gemm_q6_k, tile_q6_k)

void mfs_kernels_avx512_fill(struct mfs_kernels *t)
{
    t->name = "avx512";
    t->gemm[MFS_GGML_F32] = gemm_f32;
    t->gemm[MFS_GGML_F16] = gemm_f16;
    t->gemm[MFS_GGML_BF16] = gemm_bf16;
    t->gemm[MFS_GGML_Q8_0] = gemm_q8_0;
    t->gemm[MFS_GGML_Q4_0] = gemm_q4_0;
    t->gemm[MFS_GGML_Q4_K] = gemm_q4_k;
    t->gemm[MFS_GGML_Q6_K] = gemm_q6_k;
}
