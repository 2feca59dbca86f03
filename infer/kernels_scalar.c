/* The portable kernels: the definition every SIMD kernel is tested against. */
#include "kernels.h"

#include <math.h>

float mfs_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (man << 13); /* inf, NaN */
    } else if (exp != 0) {
        u = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        u = sign;
    } else { /* subnormal: normalize */
        int e = -1;
        do {
            e++;
            man <<= 1;
        } while (!(man & 0x400));
        u = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t mfs_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t abs = u & 0x7fffffff;
    if (abs > 0x7f800000)
        return (uint16_t)(sign | 0x7e00); /* NaN */
    if (abs >= 0x477ff000)
        return (uint16_t)(sign | 0x7c00); /* rounds to inf */
    if (abs < 0x38800000) {               /* subnormal or zero in half */
        if (abs < 0x33000000)
            return (uint16_t)sign;
        uint32_t e = abs >> 23;
        uint32_t m = (abs & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1)))
            r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = abs - 0x38000000; /* rebias 127 -> 15 */
    uint32_t out = r >> 13, rem = r & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (out & 1)))
        out++;
    return (uint16_t)(sign | out);
}

int mfs_kernel_type_ok(uint32_t t)
{
    return mfs_act_fmt_for(t) >= 0;
}

int mfs_act_fmt_for(uint32_t t)
{
    switch (t) {
    case MFS_GGML_F32:
    case MFS_GGML_F16:
    case MFS_GGML_BF16:
        return MFS_ACT_F32;
    case MFS_GGML_Q8_0:
    case MFS_GGML_Q4_0:
        return MFS_ACT_Q8_0;
    case MFS_GGML_Q4_K:
    case MFS_GGML_Q6_K:
        return MFS_ACT_Q8_K;
    default:
        return -1;
    }
}

size_t mfs_act_row_bytes(enum mfs_act_fmt fmt, int k)
{
    size_t n = 0;
    switch (fmt) {
    case MFS_ACT_F32:
        n = (size_t)k * 4;
        break;
    case MFS_ACT_Q8_0:
        n = mfs_act_q8_0_vec_off(k) + (size_t)(k / MFS_QK + 1) / 2 * 128;
        break;
    case MFS_ACT_Q8_K:
        n = (size_t)k + (size_t)k / MFS_QK_K * 4 + (size_t)k / 16 * 2;
        break;
    }
    return (n + 63) & ~(size_t)63;
}

void mfs_act_quantize(enum mfs_act_fmt fmt, const float *x, void *out, int k)
{
    if (fmt == MFS_ACT_F32) {
        memcpy(out, x, (size_t)k * 4);
        return;
    }
    int8_t *q = out;
    float *d = (float *)(q + k);
    if (fmt == MFS_ACT_Q8_0) {
        int32_t *s = (int32_t *)(d + k / MFS_QK);
        for (int b = 0; b < k / MFS_QK; b++) {
            const float *xb = x + b * MFS_QK;
            float amax = 0;
            for (int i = 0; i < MFS_QK; i++)
                amax = fmaxf(amax, fabsf(xb[i]));
            float db = amax / 127.f, id = db != 0.f ? 1.f / db : 0.f;
            int32_t sum = 0;
            for (int i = 0; i < MFS_QK; i++) {
                int v = (int)nearbyintf(xb[i] * id);
                q[b * MFS_QK + i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
                sum += q[b * MFS_QK + i];
            }
            d[b] = db;
            s[b] = sum;
        }
        float *dv = (float *)mfs_act_dv(out, k);
        int32_t *sv = (int32_t *)mfs_act_sv(out, k);
        for (int b = 0; b < (k / MFS_QK + 1) / 2 * 2; b++)
            for (int l = 0; l < 8; l++) {
                dv[b * 8 + l] = b < k / MFS_QK ? d[b] : 0.f;
                sv[b * 8 + l] = b < k / MFS_QK ? -16 * s[b] : 0;
            }
        return;
    }
    int16_t *bs = (int16_t *)(d + k / MFS_QK_K);
    for (int b = 0; b < k / MFS_QK_K; b++) {
        const float *xb = x + b * MFS_QK_K;
        float amax = 0, max = 0;
        for (int i = 0; i < MFS_QK_K; i++) {
            if (fabsf(xb[i]) > amax) {
                amax = fabsf(xb[i]);
                max = xb[i];
            }
        }
        float iscale = amax != 0.f ? -127.f / max : 0.f;
        for (int i = 0; i < MFS_QK_K; i++) {
            int v = (int)nearbyintf(iscale * xb[i]);
            q[b * MFS_QK_K + i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
        }
        for (int j = 0; j < MFS_QK_K / 16; j++) {
            int sum = 0;
            for (int i = 0; i < 16; i++)
                sum += q[b * MFS_QK_K + j * 16 + i];
            bs[b * 16 + j] = (int16_t)sum;
        }
        d[b] = amax != 0.f ? 1.f / iscale : 0.f;
    }
}

void mfs_row_to_f32(uint32_t t, const void *row, float *y, int k)
{
    switch (t) {
    case MFS_GGML_F32:
        memcpy(y, row, (size_t)k * 4);
        break;
    case MFS_GGML_F16:
        for (int i = 0; i < k; i++)
            y[i] = mfs_f16_to_f32(((const uint16_t *)row)[i]);
        break;
    case MFS_GGML_BF16:
        for (int i = 0; i < k; i++)
            y[i] = mfs_bf16_to_f32(((const uint16_t *)row)[i]);
        break;
    case MFS_GGML_Q8_0:
        for (int b = 0; b < k / MFS_QK; b++) {
            const struct mfs_blk_q8_0 *x = (const struct mfs_blk_q8_0 *)row + b;
            float d = mfs_f16_to_f32(x->d);
            for (int i = 0; i < MFS_QK; i++)
                y[b * MFS_QK + i] = d * x->qs[i];
        }
        break;
    case MFS_GGML_Q4_0:
        for (int b = 0; b < k / MFS_QK; b++) {
            const struct mfs_blk_q4_0 *x = (const struct mfs_blk_q4_0 *)row + b;
            float d = mfs_f16_to_f32(x->d);
            for (int i = 0; i < 16; i++) {
                y[b * MFS_QK + i] = d * ((x->qs[i] & 0xF) - 8);
                y[b * MFS_QK + i + 16] = d * ((x->qs[i] >> 4) - 8);
            }
        }
        break;
    case MFS_GGML_Q4_K:
        for (int b = 0; b < k / MFS_QK_K; b++) {
            const struct mfs_blk_q4_k *x = (const struct mfs_blk_q4_k *)row + b;
            float d = mfs_f16_to_f32(x->d), dmin = mfs_f16_to_f32(x->dmin);
            float *yb = y + b * MFS_QK_K;
            for (int j = 0; j < 4; j++) { /* 64 values: two sub-blocks share 32 bytes */
                uint8_t sc, m;
                const uint8_t *q = x->qs + 32 * j;
                mfs_q4k_scale_min(2 * j, x->scales, &sc, &m);
                float d1 = d * sc, m1 = dmin * m;
                mfs_q4k_scale_min(2 * j + 1, x->scales, &sc, &m);
                float d2 = d * sc, m2 = dmin * m;
                for (int l = 0; l < 32; l++) {
                    yb[64 * j + l] = d1 * (q[l] & 0xF) - m1;
                    yb[64 * j + 32 + l] = d2 * (q[l] >> 4) - m2;
                }
            }
        }
        break;
    case MFS_GGML_Q6_K:
        for (int b = 0; b < k / MFS_QK_K; b++) {
            const struct mfs_blk_q6_k *x = (const struct mfs_blk_q6_k *)row + b;
            float d = mfs_f16_to_f32(x->d);
            for (int n = 0; n < 2; n++) { /* 128 values each */
                const uint8_t *ql = x->ql + 64 * n, *qh = x->qh + 32 * n;
                const int8_t *sc = x->scales + 8 * n;
                float *yb = y + b * MFS_QK_K + 128 * n;
                for (int l = 0; l < 32; l++) {
                    int is = l / 16;
                    int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    yb[l] = d * sc[is] * q1;
                    yb[l + 32] = d * sc[is + 2] * q2;
                    yb[l + 64] = d * sc[is + 4] * q3;
                    yb[l + 96] = d * sc[is + 6] * q4;
                }
            }
        }
        break;
    default:
        assert(!"mfs_row_to_f32: unsupported type");
    }
}

/* ---- dot products of one weight row with one activation row */

static float dot_f32(int k, const void *w, const void *a)
{
    const float *x = w, *y = a;
    float s = 0;
    for (int i = 0; i < k; i++)
        s += x[i] * y[i];
    return s;
}

static float dot_f16(int k, const void *w, const void *a)
{
    const uint16_t *x = w;
    const float *y = a;
    float s = 0;
    for (int i = 0; i < k; i++)
        s += mfs_f16_to_f32(x[i]) * y[i];
    return s;
}

static float dot_bf16(int k, const void *w, const void *a)
{
    const uint16_t *x = w;
    const float *y = a;
    float s = 0;
    for (int i = 0; i < k; i++)
        s += mfs_bf16_to_f32(x[i]) * y[i];
    return s;
}

static float dot_q8_0(int k, const void *w, const void *a)
{
    const struct mfs_blk_q8_0 *x = w;
    const int8_t *q = mfs_act_q(a);
    const float *d = mfs_act_d(a, k);
    float s = 0;
    for (int b = 0; b < k / MFS_QK; b++) {
        int32_t isum = 0;
        for (int i = 0; i < MFS_QK; i++)
            isum += x[b].qs[i] * q[b * MFS_QK + i];
        s += mfs_f16_to_f32(x[b].d) * d[b] * (float)isum;
    }
    return s;
}

static float dot_q4_0(int k, const void *w, const void *a)
{
    const struct mfs_blk_q4_0 *x = w;
    const int8_t *q = mfs_act_q(a);
    const float *d = mfs_act_d(a, k);
    float s = 0;
    for (int b = 0; b < k / MFS_QK; b++) {
        int32_t isum = 0;
        for (int i = 0; i < 16; i++)
            isum += ((x[b].qs[i] & 0xF) - 8) * q[b * MFS_QK + i] + ((x[b].qs[i] >> 4) - 8) * q[b * MFS_QK + 16 + i];
        s += mfs_f16_to_f32(x[b].d) * d[b] * (float)isum;
    }
    return s;
}

static float dot_q4_k(int k, const void *w, const void *a)
{
    const struct mfs_blk_q4_k *x = w;
    const int8_t *q = mfs_act_q(a);
    const float *d = mfs_act_d(a, k);
    const int16_t *bs = mfs_act_bs(a, k);
    float s = 0;
    for (int b = 0; b < k / MFS_QK_K; b++) {
        int32_t isum = 0, msum = 0;
        const int8_t *qb = q + b * MFS_QK_K;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            mfs_q4k_scale_min(j, x[b].scales, &sc, &m);
            const uint8_t *qs = x[b].qs + 32 * (j / 2);
            int shift = (j & 1) * 4;
            int32_t sub = 0;
            for (int l = 0; l < 32; l++)
                sub += ((qs[l] >> shift) & 0xF) * qb[32 * j + l];
            isum += sc * sub;
            msum += m * (bs[b * 16 + 2 * j] + bs[b * 16 + 2 * j + 1]);
        }
        s += d[b] * (mfs_f16_to_f32(x[b].d) * (float)isum - mfs_f16_to_f32(x[b].dmin) * (float)msum);
    }
    return s;
}

static float dot_q6_k(int k, const void *w, const void *a)
{
    const struct mfs_blk_q6_k *x = w;
    const int8_t *q = mfs_act_q(a);
    const float *d = mfs_act_d(a, k);
    float s = 0;
    for (int b = 0; b < k / MFS_QK_K; b++) {
        int32_t isum = 0;
        for (int n = 0; n < 2; n++) {
            const uint8_t *ql = x[b].ql + 64 * n, *qh = x[b].qh + 32 * n;
            const int8_t *sc = x[b].scales + 8 * n;
            const int8_t *qb = q + b * MFS_QK_K + 128 * n;
            int32_t sub[8] = {0};
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                sub[is + 0] += (((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32) * qb[l];
                sub[is + 2] += (((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32) * qb[l + 32];
                sub[is + 4] += (((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32) * qb[l + 64];
                sub[is + 6] += (((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32) * qb[l + 96];
            }
            for (int j = 0; j < 8; j++)
                isum += sc[j] * sub[j];
        }
        s += d[b] * mfs_f16_to_f32(x[b].d) * (float)isum;
    }
    return s;
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

const struct mfs_kernels mfs_kernels_scalar = {
    .name = "scalar",
    .gemm = {
        [MFS_GGML_F32] = gemm_f32,
        [MFS_GGML_F16] = gemm_f16,
        [MFS_GGML_BF16] = gemm_bf16,
        [MFS_GGML_Q8_0] = gemm_q8_0,
        [MFS_GGML_Q4_0] = gemm_q4_0,
        [MFS_GGML_Q4_K] = gemm_q4_k,
        [MFS_GGML_Q6_K] = gemm_q6_k,
    },
};
