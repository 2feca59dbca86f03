/* Kernel dispatch: pick the best level the CPU supports, once. */
#include "kernels.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static struct mfs_kernels g_levels[MFS_KL_COUNT];
static int g_have[MFS_KL_COUNT];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void kernels_init(void)
{
    g_levels[MFS_KL_SCALAR] = mfs_kernels_scalar;
    g_have[MFS_KL_SCALAR] = 1;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
        g_levels[MFS_KL_AVX2] = mfs_kernels_scalar;
        mfs_kernels_avx2_fill(&g_levels[MFS_KL_AVX2]);
        g_have[MFS_KL_AVX2] = 1;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
            __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
            __builtin_cpu_supports("avx512vnni")) {
            g_levels[MFS_KL_AVX512] = g_levels[MFS_KL_AVX2];
            mfs_kernels_avx512_fill(&g_levels[MFS_KL_AVX512]);
            g_have[MFS_KL_AVX512] = 1;
        }
    }
#endif
}

const struct mfs_kernels *mfs_kernels_get(enum mfs_kernel_level level)
{
    pthread_once(&g_once, kernels_init);
    if ((unsigned)level >= MFS_KL_COUNT || !g_have[level])
        return NULL;
    return &g_levels[level];
}

const struct mfs_kernels *mfs_kernels_best(void)
{
    int cap = MFS_KL_COUNT - 1;
    const char *env = getenv("MFS_KERNELS");
    if (env && *env) {
        for (int l = 0; l < MFS_KL_COUNT; l++) {
            const struct mfs_kernels *k = mfs_kernels_get((enum mfs_kernel_level)l);
            if (k && strcmp(env, k->name) == 0)
                cap = l;
        }
        if (strcmp(env, "scalar") == 0)
            cap = MFS_KL_SCALAR;
    }
    for (int l = cap; l > 0; l--)
        if (mfs_kernels_get((enum mfs_kernel_level)l))
            return mfs_kernels_get((enum mfs_kernel_level)l);
    return mfs_kernels_get(MFS_KL_SCALAR);
}
