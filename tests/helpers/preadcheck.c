/* preadcheck [-t THREADS] [-s SECONDS] [-m MAXLEN] [-D] [-M] FILE=REF...: THREADS threads pread random
 * ranges of random FILEs for SECONDS and compare each with the same range of its REF (read from
 * the same offset). With -D, odd threads open FILE with O_DIRECT (aligned reads that bypass the
 * page cache and go to the filesystem) and every thread drops FILE's cached pages now and then
 * (POSIX_FADV_DONTNEED), so that the filesystem keeps serving. With -M, FILE is read through a
 * shared read-only mapping instead, as llama.cpp reads a model (with -D, the mapped range is
 * dropped now and then: MADV_DONTNEED, then POSIX_FADV_DONTNEED). Prints the counts; exit 1 on any
 * mismatch or error, 2 on bad usage. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct pair {
    const char *file, *ref;
    uint64_t size;
};

static struct pair *g_pairs;
static int g_n_pairs;
static double g_seconds = 30;
static size_t g_maxlen = 2u << 20;
static int g_direct, g_map;
static atomic_uint_fast64_t g_ops, g_bytes, g_bad;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *worker(void *arg)
{
    uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(uintptr_t)arg + 1;
    int direct = g_direct && !g_map && ((uintptr_t)arg & 1);
    int *fds = calloc((size_t)g_n_pairs * 2, sizeof *fds);
    const unsigned char **maps = calloc((size_t)g_n_pairs, sizeof *maps);
    void *a = NULL, *b = NULL;
    if (posix_memalign(&a, 4096, g_maxlen) || posix_memalign(&b, 4096, g_maxlen) || !fds || !maps) {
        atomic_fetch_add(&g_bad, 1);
        return NULL;
    }
    for (int i = 0; i < g_n_pairs; i++) {
        fds[2 * i] = open(g_pairs[i].file, O_RDONLY | (direct ? O_DIRECT : 0));
        fds[2 * i + 1] = open(g_pairs[i].ref, O_RDONLY);
        if (fds[2 * i] < 0 || fds[2 * i + 1] < 0) {
            fprintf(stderr, "preadcheck: open %s: %s\n", g_pairs[i].file, strerror(errno));
            atomic_fetch_add(&g_bad, 1);
            return NULL;
        }
        if (g_map && g_pairs[i].size) {
            void *m = mmap(NULL, g_pairs[i].size, PROT_READ, MAP_SHARED, fds[2 * i], 0);
            if (m == MAP_FAILED) {
                fprintf(stderr, "preadcheck: mmap %s: %s\n", g_pairs[i].file, strerror(errno));
                atomic_fetch_add(&g_bad, 1);
                return NULL;
            }
            maps[i] = m;
        }
    }
    double end = now() + g_seconds;
    for (uint64_t op = 0; now() < end && !atomic_load(&g_bad); op++) {
        int i = (int)(rnd(&seed) % (uint64_t)g_n_pairs);
        uint64_t size = g_pairs[i].size;
        uint64_t off = rnd(&seed) % (size + 1);
        size_t len = (size_t)(rnd(&seed) % g_maxlen) + 1;
        if (rnd(&seed) % 4 == 0) /* page-aligned 1 MiB, like readahead */
            off &= ~(uint64_t)4095, len = 1u << 20;
        if (direct) {
            off &= ~(uint64_t)4095;
            len = (len + 4095) & ~(size_t)4095;
            if (len > g_maxlen)
                len = g_maxlen & ~(size_t)4095;
        }
        if (g_direct && op % 64 == 0) {
            if (maps[i])
                madvise((void *)maps[i], g_pairs[i].size, MADV_DONTNEED);
            posix_fadvise(fds[2 * i], 0, 0, POSIX_FADV_DONTNEED);
        }
        ssize_t y = pread(fds[2 * i + 1], b, len, (off_t)off), x;
        if (g_map) { /* the mapped bytes of the range, as many as the file has */
            x = off >= size ? 0 : (ssize_t)(size - off < len ? size - off : len);
            if (x)
                memcpy(a, maps[i] + off, (size_t)x);
        } else {
            x = pread(fds[2 * i], a, len, (off_t)off);
        }
        if (x < 0 || y < 0 || x != y || memcmp(a, b, (size_t)x)) {
            fprintf(stderr, "preadcheck: %s [%" PRIu64 ", +%zu): got %zd (%s), want %zd\n", g_pairs[i].file, off, len,
                    x, x < 0 ? strerror(errno) : "bytes differ", y);
            atomic_fetch_add(&g_bad, 1);
            break;
        }
        atomic_fetch_add(&g_ops, 1);
        atomic_fetch_add(&g_bytes, (uint64_t)x);
    }
    for (int i = 0; i < g_n_pairs; i++)
        if (maps[i])
            munmap((void *)maps[i], g_pairs[i].size);
    for (int i = 0; i < 2 * g_n_pairs; i++)
        close(fds[i]);
    free(maps);
    free(fds);
    free(a);
    free(b);
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 8, c;
    while ((c = getopt(argc, argv, "t:s:m:DM")) != -1) {
        switch (c) {
        case 'D': g_direct = 1; break;
        case 'M': g_map = 1; break;
        case 't': threads = atoi(optarg); break;
        case 's': g_seconds = atof(optarg); break;
        case 'm': g_maxlen = (size_t)strtoull(optarg, NULL, 10); break;
        default: return 2;
        }
    }
    g_n_pairs = argc - optind;
    if (g_n_pairs < 1 || threads < 1 || threads > 256 || g_maxlen < 1) {
        fprintf(stderr, "usage: preadcheck [-t THREADS] [-s SECONDS] [-m MAXLEN] [-D] [-M] FILE=REF...\n");
        return 2;
    }
    if (g_maxlen < (1u << 20))
        g_maxlen = 1u << 20;
    g_pairs = calloc((size_t)g_n_pairs, sizeof *g_pairs);
    for (int i = 0; i < g_n_pairs; i++) {
        char *s = argv[optind + i], *eq = strchr(s, '=');
        struct stat st;
        if (!eq) {
            fprintf(stderr, "preadcheck: %s: expected FILE=REF\n", s);
            return 2;
        }
        *eq = '\0';
        g_pairs[i].file = s;
        g_pairs[i].ref = eq + 1;
        if (stat(g_pairs[i].ref, &st)) {
            fprintf(stderr, "preadcheck: %s: %s\n", g_pairs[i].ref, strerror(errno));
            return 1;
        }
        g_pairs[i].size = (uint64_t)st.st_size;
    }
    pthread_t *t = calloc((size_t)threads, sizeof *t);
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("%d threads, %" PRIu64 " %s, %" PRIu64 " MiB compared, %" PRIu64 " mismatches or errors\n", threads,
           (uint64_t)g_ops, g_map ? "mapped reads" : "preads", (uint64_t)g_bytes >> 20, (uint64_t)g_bad);
    free(t);
    free(g_pairs);
    return g_bad ? 1 : 0;
}
