/* Sampler: greedy is the argmax (lowest id on ties), top-k 1 is greedy at any temperature, a seed
 * reproduces a sequence, min-p/top-p/top-k never pick outside their sets, and temperature sampling
 * follows the softmax. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "mfs_infer.h"

#define V 100

static void fill(float *l)
{
    for (int i = 0; i < V; i++)
        l[i] = (float)((i * 37) % V) / 10.f; /* max 9.9 at i with i*37 % 100 == 99: i = 27 */
}

static void test_greedy(void **state)
{
    (void)state;
    float l[V];
    fill(l);
    struct mfs_sampler_params p = {.temp = 0};
    mfs_sampler *s = mfs_sampler_create(&p, V);
    assert_int_equal(mfs_sampler_sample(s, l), 27);
    l[5] = l[27];
    assert_int_equal(mfs_sampler_sample(s, l), 5);
    mfs_sampler_free(s);
    p = (struct mfs_sampler_params){.temp = 5.f, .top_k = 1, .top_p = 1.f, .seed = 3};
    s = mfs_sampler_create(&p, V);
    fill(l);
    for (int i = 0; i < 50; i++)
        assert_int_equal(mfs_sampler_sample(s, l), 27);
    mfs_sampler_free(s);
}

static void test_seed_and_sets(void **state)
{
    (void)state;
    float l[V];
    fill(l);
    struct mfs_sampler_params p = {.temp = 1.5f, .top_k = 10, .top_p = 0.9f, .min_p = 0.05f, .seed = 42};
    mfs_sampler *a = mfs_sampler_create(&p, V), *b = mfs_sampler_create(&p, V);
    for (int i = 0; i < 200; i++) {
        int32_t x = mfs_sampler_sample(a, l);
        assert_int_equal(x, mfs_sampler_sample(b, l));
        /* top-k 10: logits >= 9.0 */
        assert_true(l[x] >= 9.0f - 1e-6f);
    }
    mfs_sampler_free(a);
    mfs_sampler_free(b);
    /* min-p alone: nothing below p_max * min_p */
    p = (struct mfs_sampler_params){.temp = 1.f, .top_k = 0, .top_p = 1.f, .min_p = 0.5f, .seed = 7};
    a = mfs_sampler_create(&p, V);
    for (int i = 0; i < 200; i++)
        assert_true(l[mfs_sampler_sample(a, l)] >= 9.9f + logf(0.5f) - 1e-5f);
    mfs_sampler_free(a);
}

static void test_distribution(void **state)
{
    (void)state;
    float l[3] = {0.f, 1.f, 2.f};
    struct mfs_sampler_params p = {.temp = 1.f, .top_k = 0, .top_p = 1.f, .min_p = 0.f, .seed = 1};
    mfs_sampler *s = mfs_sampler_create(&p, 3);
    int n[3] = {0};
    const int N = 30000;
    for (int i = 0; i < N; i++)
        n[mfs_sampler_sample(s, l)]++;
    double z = 1 + exp(1) + exp(2);
    for (int i = 0; i < 3; i++)
        assert_true(fabs(n[i] / (double)N - exp(i) / z) < 0.02);
    mfs_sampler_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_seed_and_sets),
        cmocka_unit_test(test_distribution),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
