/* AVX2 kernels (with FMA and F16C), for x86-64 CPUs without AVX-512: chosen at run time by
 * kernels.c; the pragma gives every function here the target attribute. One weight row times one
 * activation row per call, 256-bit vectors; the integer dots use vpmaddubsw (u8 x s8) with the
 * sign trick for Q8_0 (|w| times y with w's sign) and raw unsigned nibbles elsewhere.
 */
#include "kernels.h"

#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>

#define INLINE static inline __attribute__((always_inline))

INLINE float f16(uint16_t h) { return _cvtsh_ss(h); }

INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE __m256 w8_f32(const void *p, int i) { return _mm256_loadu_ps((const float *)p + i); }
INLINE __m256 w8_f16(const void *p, int i)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + i)));
}
INLINE __m256 w8_bf16(const void *p, int i)
{
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
static float w1_f32(const void *p, int i) { return ((const float *)p)[i]; }
static float w1_f16(const void *p, int i) { return f16(((const uint16_t *)p)[i]); }
static float w1_bf16(const void *p, int i) { return mfs_bf16_to_f32(((const uint16_t *)p)[i]); }

#define FLOAT_DOT(NAME, W8, W1)                                                                             \
    static float NAME(int k, const void *w, const void *a)                                                  \
    {                                                                                                       \
        const float *y = a;                                                                                 \
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),                \
               s3 = _mm256_setzero_ps();                                                                    \
        int i = 0;                                                                                          \
        for (; i + 32 <= k; i += 32) {                                                                      \
            s0 = _mm256_fmadd_ps(W8(w, i), _mm256_loadu_ps(y + i), s0);                                     \
            s1 = _mm256_fmadd_ps(W8(w, i + 8), _mm256_loadu_ps(y + i + 8), s1);                             \
            s2 = _mm256_fmadd_ps(W8(w, i + 16), _mm256_loadu_ps(y + i + 16), s2);                           \
            s3 = _mm256_fmadd_ps(W8(w, i + 24), _mm256_loadu_ps(y + i + 24), s3);                           \
        }                                                                                                   \
        for (; i + 8 <= k; i += 8)                                                                          \
            s0 = _mm256_fmadd_ps(W8(w, i), _mm256_loadu_ps(y + i), s0);                                     \
        float s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));                       \
        for (; i < k; i++)                                                                                  \
            s += W1(w, i) * y[i];                                                                           \
        return s;                                                                                           \
    }

FLOAT_DOT(dot_f32, w8_f32, w1_f32)
FLOAT_DOT(dot_f16, w8_f16, w1_f16)
FLOAT_DOT(dot_bf16, w8_bf16, w1_bf16)

static float dot_q8_0(int k, const void *w, const void *a)
{
    const struct mfs_blk_q8_0 *x = w;
    const int8_t *q = mfs_act_q(a);
    const float *d = mfs_act_d(a, k);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < k / MFS_QK; b++) {
        __m256i wv = _mm256_loadu_si256((const __m256i *)x[b].qs);
        __m256i yv = _mm256_loadu_si256((const __m256i *)(q + b * MFS_QK));
        __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(yv, wv));
        __m256 t = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
        acc = _mm256_fmadd_ps(t, _mm256_set1_ps(f16(x[b].d) * d[b]), acc);
    }
    return hsum8(acc);
}

static float dot_q4_0(int k, const void *w, const void *a)
{
    const struct mfs_blk_q4_0 *x = w;
    const int8_t *q = mfs_act_q(a);
    const float *d = mfs_act_d(a, k);
    const int32_t *s = mfs_act_s8_0(a, k);
    const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < k / MFS_QK; b++) {
        __m128i v = _mm_loadu_si128((const __m128i *)x[b].qs);
        __m256i wv = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi16(v, 4), 1), m4);
        __m256i p = _mm256_maddubs_epi16(wv, _mm256_loadu_si256((const __m256i *)(q + b * MFS_QK)));
        __m256i t = _mm256_add_epi32(_mm256_madd_epi16(p, ones), _mm256_set1_epi32(-s[b])); /* -8 * s over 8 lanes */
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(t), _mm256_set1_ps(f16(x[b].d) * d[b]), acc);
    }
    return hsum8(acc);
}

static float dot_q4_k(int k, const void *w, const void *a)
{
    const struct mfs_blk_q4_k *x = w;
    const int8_t *q = mfs_act_q(a);
    const float *d = mfs_act_d(a, k);
    const int16_t *bs = mfs_act_bs(a, k);
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < k / MFS_QK_K; b++) {
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; j++)
            mfs_q4k_scale_min(j, x[b].scales, &sc[j], &mn[j]);
        const int8_t *qb = q + b * MFS_QK_K;
        __m256i isum = _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * j));
            __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(qb + 64 * j)));
            __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(qb + 64 * j + 32)));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p0, _mm256_set1_epi16(sc[2 * j])));
            isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p1, _mm256_set1_epi16(sc[2 * j + 1])));
        }
        __m256i mins = _mm256_cvtepu8_epi16(_mm_set_epi8((char)mn[7], (char)mn[7], (char)mn[6], (char)mn[6],
                                                         (char)mn[5], (char)mn[5], (char)mn[4], (char)mn[4],
                                                         (char)mn[3], (char)mn[3], (char)mn[2], (char)mn[2],
                                                         (char)mn[1], (char)mn[1], (char)mn[0], (char)mn[0]));
        __m256i msum = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(bs + 16 * b)), mins);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(x[b].d) * d[b]), acc);
        acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(msum), _mm256_set1_ps(f16(x[b].dmin) * d[b]), acc);
    }
    return hsum8(acc);
}

static float dot_q6_k(int k, const void *w, const void *a)
{
    const struct mfs_blk_q6_k *x = w;
    const int8_t *q = mfs_act_q(a);
    const float *d = mfs_act_d(a, k);
    const int16_t *bs = mfs_act_bs(a, k);
    const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int b = 0; b < k / MFS_QK_K; b++) {
        const int8_t *sc = x[b].scales;
        __m256i isum = _mm256_setzero_si256();
        for (int n = 0; n < 2; n++) {
            __m256i ql0 = _mm256_loadu_si256((const __m256i *)(x[b].ql + 64 * n));
            __m256i ql1 = _mm256_loadu_si256((const __m256i *)(x[b].ql + 64 * n + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(x[b].qh + 32 * n));
            __m256i v[4];
            v[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
            v[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
            v[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
            v[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
            for (int j = 0; j < 4; j++) {
                const int8_t *qj = q + b * MFS_QK_K + 128 * n + 32 * j;
                int s0 = sc[8 * n + 2 * j], s1 = sc[8 * n + 2 * j + 1];
                __m256i scv = _mm256_set_m128i(_mm_set1_epi16((short)s1), _mm_set1_epi16((short)s0));
                __m256i p = _mm256_maddubs_epi16(v[j], _mm256_loadu_si256((const __m256i *)qj));
                isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, scv));
            }
        }
        __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)sc));
        __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(bs + 16 * b)), sc16), 5);
        isum = _mm256_sub_epi32(isum, corr);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(f16(x[b].d) * d[b]), acc);
    }
    return hsum8(acc);
}

#define GEMM_FROM_DOT(name, dot)                                                                                \
    static void name(int k, const void *w, size_t ws, int nr, const void *a, size_t as, int nc, float *y,      \
                     size_t ys)                                                                                 \
    {                                                                                                           \
        for (int r = 0; r < nr; r++)                                                                            \
            for (int c = 0; c < nc; c++)                                                                        \
                y[(size_t)c * ys + r] = dot(k, (const uint8_t *)w + (size_t)r * ws, (const uint8_t *)a + (size_t)c * as); \
    }

GEMM_FROM_DOT(gemm_f32, dot_f32)
GEMM_FROM_DOT(gemm_f16, dot_f16)
GEMM_FROM_DOT(gemm_bf16, dot_bf16)
GEMM_FROM_DOT(gemm_q8_0, dot_q8_0)
GEMM_FROM_DOT(gemm_q4_0, dot_q4_0)
GEMM_FROM_DOT(gemm_q4_k, dot_q4_k)
GEMM_FROM_DOT(gemm_q6_k, dot_q6_k)

void mfs_kernels_avx2_fill(struct mfs_kernels *t)
{
    t->name = "avx2";
    t->gemm[MFS_GGML_F32] = gemm_f32;
    t->gemm[MFS_GGML_F16] = gemm_f16;
    t->gemm[MFS_GGML_BF16] = gemm_bf16;
    t->gemm[MFS_GGML_Q8_0] = gemm_q8_0;
    t->gemm[MFS_GGML_Q4_0] = gemm_q4_0;
    t->gemm[MFS_GGML_Q4_K] = gemm_q4_k;
    t->gemm[MFS_GGML_Q6_K] = gemm_q6_k;
}
