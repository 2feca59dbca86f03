/* Matrix kernels: the scalar kernels agree with a double-precision product of the dequantized
 * weights and activations, and every SIMD level this CPU has agrees with the scalar kernels, for
 * every supported type, tile edges (rows and columns not multiples of the tile) and row tails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>

#include "../../infer/kernels.h"
#include "../../infer/quant.h"
#include "mfs_ggml.h"

static uint64_t g_rng = 88172645463325252ull;
static float frand(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 11) * (1.0 / 9007199254740992.0)) * 2.f - 1.f;
}

/* Dequantize an activation row back to floats. */
static void act_to_f32(enum mfs_act_fmt fmt, const void *a, int k, float *out)
{
    if (fmt == MFS_ACT_F32) {
        memcpy(out, a, (size_t)k * 4);
        return;
    }
    int blk = fmt == MFS_ACT_Q8_0 ? MFS_QK : MFS_QK_K;
    for (int i = 0; i < k; i++)
        out[i] = mfs_act_d(a, k)[i / blk] * mfs_act_q(a)[i];
}

static void check_type(uint32_t type, int k, int nr, int nc)
{
    uint64_t row_bytes;
    int64_t ne[2] = {k, 1};
    assert_int_equal(mfs_ggml_nbytes(type, 1, ne, &row_bytes), 0);
    enum mfs_act_fmt fmt = (enum mfs_act_fmt)mfs_act_fmt_for(type);
    size_t as = mfs_act_row_bytes(fmt, k);
    float *x = malloc((size_t)k * sizeof *x), *wf = malloc((size_t)nr * k * sizeof *wf);
    float *af = malloc((size_t)nc * k * sizeof *af);
    uint8_t *w = malloc((size_t)nr * row_bytes), *a = aligned_alloc(64, (size_t)nc * as);
    float *ref = malloc((size_t)nr * nc * sizeof *ref), *y = malloc((size_t)nr * nc * sizeof *y);
    float *mag = malloc((size_t)nr * nc * sizeof *mag);
    for (int r = 0; r < nr; r++) {
        for (int i = 0; i < k; i++)
            x[i] = frand() * (1 + (i % 7)) * 0.1f; /* uneven magnitudes across blocks */
        assert_int_equal(mfs_quantize_row(type, x, w + r * row_bytes, k), 0);
        mfs_row_to_f32(type, w + r * row_bytes, wf + (size_t)r * k, k);
    }
    for (int c = 0; c < nc; c++) {
        for (int i = 0; i < k; i++)
            x[i] = frand();
        mfs_act_quantize(fmt, x, a + c * as, k);
        act_to_f32(fmt, a + c * as, k, af + (size_t)c * k);
    }
    for (int r = 0; r < nr; r++)
        for (int c = 0; c < nc; c++) {
            double s = 0, m = 0;
            for (int i = 0; i < k; i++) {
                s += (double)wf[(size_t)r * k + i] * af[(size_t)c * k + i];
                m += fabs((double)wf[(size_t)r * k + i] * af[(size_t)c * k + i]);
            }
            ref[c * nr + r] = (float)s;
            mag[c * nr + r] = (float)m;
        }
    for (int l = 0; l < MFS_KL_COUNT; l++) {
        const struct mfs_kernels *kt = mfs_kernels_get((enum mfs_kernel_level)l);
        if (!kt)
            continue;
        assert_non_null(kt->gemm[type]);
        memset(y, 0xff, (size_t)nr * nc * sizeof *y);
        kt->gemm[type](k, w, row_bytes, nr, a, as, nc, y, (size_t)nr);
        for (int i = 0; i < nr * nc; i++) {
            double tol = 1e-5 * mag[i] + 1e-6;
            if (fabs(y[i] - ref[i]) > tol)
                fail_msg("%s %s k=%d nr=%d nc=%d: out %d = %.7g, expected %.7g (tolerance %.3g)", kt->name,
                         mfs_ggml_type_name(type), k, nr, nc, i, y[i], ref[i], tol);
        }
    }
    free(x), free(wf), free(af), free(w), free(a), free(ref), free(y), free(mag);
}

static const uint32_t k_types[] = {MFS_GGML_F32, MFS_GGML_F16, MFS_GGML_BF16, MFS_GGML_Q8_0,
                                   MFS_GGML_Q4_0, MFS_GGML_Q4_K, MFS_GGML_Q6_K};

static void test_all_types_all_levels(void **state)
{
    (void)state;
    static const int shapes[][3] = {{256, 1, 1}, {256, 4, 4}, {512, 9, 7}, {768, 5, 3}, {2048, 6, 5}, {256, 13, 1}};
    for (size_t t = 0; t < sizeof k_types / sizeof *k_types; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            check_type(k_types[t], shapes[s][0], shapes[s][1], shapes[s][2]);
}

/* Rows that are not a multiple of the vector width (float types) or hold an odd count of blocks. */
static void test_row_tails(void **state)
{
    (void)state;
    static const int ks[] = {1, 7, 16, 17, 40, 100};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
        check_type(MFS_GGML_F32, ks[i], 5, 5);
        check_type(MFS_GGML_F16, ks[i], 5, 5);
        check_type(MFS_GGML_BF16, ks[i], 5, 5);
    }
    check_type(MFS_GGML_Q8_0, 32, 3, 5);
    check_type(MFS_GGML_Q8_0, 96, 5, 2);
    check_type(MFS_GGML_Q4_0, 32, 2, 6);
    check_type(MFS_GGML_Q4_0, 160, 5, 5);
}

static void test_f16_conversion(void **state)
{
    (void)state;
    /* every half round-trips; NaN stays NaN */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = mfs_f16_to_f32((uint16_t)h);
        if (isnan(f))
            assert_true(isnan(mfs_f16_to_f32(mfs_f32_to_f16(f))));
        else
            assert_int_equal(mfs_f32_to_f16(f), h);
    }
    assert_int_equal(mfs_f32_to_f16(65520.f), 0x7c00); /* rounds to inf */
    assert_int_equal(mfs_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00); /* tie to even */
    assert_int_equal(mfs_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_conversion),
        cmocka_unit_test(test_all_types_all_levels),
        cmocka_unit_test(test_row_tails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
