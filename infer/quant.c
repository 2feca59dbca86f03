/* Ports of ggml's quantize_row_*_ref (ggml-quants.c, MIT): the same algorithms, so a tensor
 * quantized here gets the same bytes as llama-quantize gives it without an importance matrix. */
#include "quant.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "kernels.h"

#define GROUP_MAX_EPS 1e-15f
#define MAXI(a, b) ((a) > (b) ? (a) : (b))
#define MINI(a, b) ((a) < (b) ? (a) : (b))

/* round to nearest, ties away from... as ggml: the float trick (ties to even) */
static inline int nearest_int(float fval)
{
    float val = fval + 12582912.f;
    int i;
    memcpy(&i, &val, sizeof(int));
    return (i & 0x007fffff) - 0x00400000;
}

static void quantize_q8_0(const float *x, struct mfs_blk_q8_0 *y, int64_t k)
{
    for (int64_t i = 0; i < k / MFS_QK; i++) {
        float amax = 0.0f;
        for (int j = 0; j < MFS_QK; j++)
            amax = fmaxf(amax, fabsf(x[i * MFS_QK + j]));
        const float d = amax / 127.f;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = mfs_f32_to_f16(d);
        for (int j = 0; j < MFS_QK; ++j)
            y[i].qs[j] = (int8_t)roundf(x[i * MFS_QK + j] * id);
    }
}

static void quantize_q4_0(const float *x, struct mfs_blk_q4_0 *y, int64_t k)
{
    for (int64_t i = 0; i < k / MFS_QK; i++) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < MFS_QK; j++) {
            const float v = x[i * MFS_QK + j];
            if (amax < fabsf(v)) {
                amax = fabsf(v);
                max = v;
            }
        }
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = mfs_f32_to_f16(d);
        for (int j = 0; j < MFS_QK / 2; ++j) {
            const float x0 = x[i * MFS_QK + j] * id;
            const float x1 = x[i * MFS_QK + MFS_QK / 2 + j] * id;
            const uint8_t xi0 = (uint8_t)MINI(15, (int8_t)(x0 + 8.5f));
            const uint8_t xi1 = (uint8_t)MINI(15, (int8_t)(x1 + 8.5f));
            y[i].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

static float make_qx_quants(int n, int nmax, const float *x, int8_t *L, int rmse_type)
{
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * x[i]);
        l = MAXI(-nmax, MINI(nmax - 1, l));
        L[i] = (int8_t)(l + nmax);
        float w = rmse_type == 1 ? x[i] * x[i] : 1;
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0)
            continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * x[i]);
            l = MAXI(-nmax, MINI(nmax - 1, l));
            float w = rmse_type == 1 ? x[i] * x[i] : 1;
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + MAXI(-nmax, MINI(nmax - 1, l)));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep, bool use_mad)
{
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_mad = 0;
    for (int i = 0; i < n; ++i) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)MAXI(0, MINI(nmax, l));
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_mad += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            int l = nearest_int(iscale * (x[i] - min));
            l = MAXI(0, MINI(nmax, l));
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float mad = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                mad += weights[i] * diff;
            }
            if (mad < best_mad) {
                memcpy(L, Laux, (size_t)n);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

static void quantize_q4_k(const float *x, struct mfs_blk_q4_k *y, int64_t k)
{
    uint8_t L[MFS_QK_K], Laux[32];
    float weights[32], mins[MFS_QK_K / 32], scales[MFS_QK_K / 32];
    for (int64_t i = 0; i < k / MFS_QK_K; i++) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < MFS_QK_K / 32; ++j) {
            float sum_x2 = 0;
            for (int l = 0; l < 32; ++l)
                sum_x2 += x[32 * j + l] * x[32 * j + l];
            float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; ++l)
                weights[l] = av_x + fabsf(x[32 * j + l]);
            scales[j] = make_qkx2_quants(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20, false);
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }
        float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        memset(y[i].scales, 0, sizeof y[i].scales);
        for (int j = 0; j < MFS_QK_K / 32; ++j) {
            uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
            uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
            ls = MINI(63, ls);
            lm = MINI(63, lm);
            if (j < 4) {
                y[i].scales[j] = ls;
                y[i].scales[j + 4] = lm;
            } else {
                y[i].scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
                y[i].scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
                y[i].scales[j - 0] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        y[i].d = mfs_f32_to_f16(max_scale / 63.f);
        y[i].dmin = mfs_f32_to_f16(max_min / 63.f);
        for (int j = 0; j < MFS_QK_K / 32; ++j) {
            uint8_t sc, m;
            mfs_q4k_scale_min(j, y[i].scales, &sc, &m);
            const float d = mfs_f16_to_f32(y[i].d) * sc;
            if (!d)
                continue;
            const float dm = mfs_f16_to_f32(y[i].dmin) * m;
            for (int ii = 0; ii < 32; ++ii) {
                int l = nearest_int((x[32 * j + ii] + dm) / d);
                L[32 * j + ii] = (uint8_t)MAXI(0, MINI(15, l));
            }
        }
        uint8_t *q = y[i].qs;
        for (int j = 0; j < MFS_QK_K; j += 64) {
            for (int l = 0; l < 32; ++l)
                q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
            q += 32;
        }
        x += MFS_QK_K;
    }
}

static void quantize_q6_k(const float *x, struct mfs_blk_q6_k *y, int64_t k)
{
    int8_t L[MFS_QK_K];
    float scales[MFS_QK_K / 16];
    for (int64_t i = 0; i < k / MFS_QK_K; i++) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < MFS_QK_K / 16; ++ib) {
            const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1);
            scales[ib] = scale;
            const float abs_scale = fabsf(scale);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            x += MFS_QK_K;
            continue;
        }
        float iscale = -128.f / max_scale;
        y[i].d = mfs_f32_to_f16(1 / iscale);
        for (int ib = 0; ib < MFS_QK_K / 16; ++ib)
            y[i].scales[ib] = (int8_t)MINI(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < MFS_QK_K / 16; ++j) {
            float d = mfs_f16_to_f32(y[i].d) * y[i].scales[j];
            if (!d)
                continue;
            for (int ii = 0; ii < 16; ++ii) {
                int l = nearest_int(x[16 * j + ii] / d);
                l = MAXI(-32, MINI(31, l));
                L[16 * j + ii] = (int8_t)(l + 32);
            }
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < MFS_QK_K; j += 128) {
            for (int l = 0; l < 32; ++l) {
                const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF;
                const uint8_t q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l + 0] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                  ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
        x += MFS_QK_K;
    }
}

static uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000)
        return (uint16_t)((u >> 16) | 64);
    return (uint16_t)((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

int mfs_quantize_row(uint32_t type, const float *x, void *out, int64_t n)
{
    switch (type) {
    case MFS_GGML_F32:
        memcpy(out, x, (size_t)n * 4);
        return 0;
    case MFS_GGML_F16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)out)[i] = mfs_f32_to_f16(x[i]);
        return 0;
    case MFS_GGML_BF16:
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)out)[i] = f32_to_bf16(x[i]);
        return 0;
    case MFS_GGML_Q8_0:
        if (n % MFS_QK)
            return -EINVAL;
        quantize_q8_0(x, out, n);
        return 0;
    case MFS_GGML_Q4_0:
        if (n % MFS_QK)
            return -EINVAL;
        quantize_q4_0(x, out, n);
        return 0;
    case MFS_GGML_Q4_K:
        if (n % MFS_QK_K)
            return -EINVAL;
        quantize_q4_k(x, out, n);
        return 0;
    case MFS_GGML_Q6_K:
        if (n % MFS_QK_K)
            return -EINVAL;
        quantize_q6_k(x, out, n);
        return 0;
    default:
        return -EINVAL;
    }
}
