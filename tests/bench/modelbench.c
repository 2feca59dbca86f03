/* modelbench: plan a model's snapshot through the loader and read all of it, as the daemon would
 * serve a sequential reader, and time both.
 *
 *   modelbench [--cache SIZE] [--threads N] [--block SIZE] [--verify FILE] [--random N] MODEL
 *
 * MODEL is anything mfs_model_open takes (a GGUF, a packed .zst, a safetensors file, a Hugging
 * Face directory). Prints one line of key=value pairs for scripts/bench-convert: open_s (planning),
 * seconds, cpu_s (all threads) and gbps of one sequential pass in --block reads. --verify FILE then checks every byte of
 * the snapshot against FILE (untimed), and --random N does N random reads (offset and length up to
 * 1 MiB) checked against it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mfs_engine.h"
#include "mfs_model.h"
#include "mfs_util.h"

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* CPU seconds of the process so far, every thread (the decode workers too): less sensitive than
 * wall time to other load on a shared machine. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    uint64_t cache = 256ull << 20, block = 1u << 20;
    unsigned threads = 0;
    long random_reads = 0;
    const char *verify = NULL;
    static const struct option longopts[] = {
        {"cache", required_argument, NULL, 'c'},  {"threads", required_argument, NULL, 't'},
        {"block", required_argument, NULL, 'b'},  {"verify", required_argument, NULL, 'v'},
        {"random", required_argument, NULL, 'r'}, {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'c' && mfs_parse_size(optarg, &cache) == 0)
            continue;
        if (c == 'b' && mfs_parse_size(optarg, &block) == 0 && block > 0 && block <= (1u << 30))
            continue;
        if (c == 't') {
            threads = (unsigned)atoi(optarg);
            continue;
        }
        if (c == 'v') {
            verify = optarg;
            continue;
        }
        if (c == 'r') {
            random_reads = atol(optarg);
            continue;
        }
        fprintf(stderr, "modelbench: bad option\n");
        return 2;
    }
    if (argc - optind != 1 || (random_reads && !verify)) {
        fprintf(stderr, "usage: modelbench [--cache SIZE] [--threads N] [--block SIZE] [--verify FILE [--random N]] "
                        "MODEL\n");
        return 2;
    }
    mfs_engine *e;
    if (mfs_engine_create(&(struct mfs_engine_config){.cache_bytes = cache, .threads = threads}, &e))
        return 1;
    mfs_model *m;
    mfs_err err = {{0}};
    double t0 = mfs_now();
    if (mfs_model_open(argv[optind], &(struct mfs_model_opts){.engine = e}, &m, &err)) {
        fprintf(stderr, "modelbench: %s\n", err.msg);
        return 1;
    }
    double t_open = mfs_now() - t0;
    uint64_t size = mfs_model_size(m);
    uint8_t *buf = malloc(block > (1u << 20) ? block : (1u << 20));
    int rc = 0;
    uint64_t sum = 0;
    double c0 = cpu_seconds();
    t0 = mfs_now();
    for (uint64_t off = 0; off < size; off += block) {
        ssize_t n = mfs_model_read(m, buf, block, off);
        if (n <= 0) {
            fprintf(stderr, "modelbench: read failed at %llu: %zd\n", (unsigned long long)off, n);
            rc = 1;
            break;
        }
        sum += buf[0] + buf[n - 1];
    }
    double t = mfs_now() - t0, cpu = cpu_seconds() - c0;
    printf("model=%s bytes=%llu open_s=%.4f seconds=%.3f cpu_s=%.3f gbps=%.3f peak_rss_mb=%.1f checksum=%llu\n",
           argv[optind], (unsigned long long)size, t_open, t, cpu, (double)size / t / 1e9, (double)peak_rss_kb() / 1024,
           (unsigned long long)sum);
    if (verify && rc == 0) {
        int fd = open(verify, O_RDONLY);
        struct stat st;
        const uint8_t *orig = MAP_FAILED;
        if (fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size == size)
            orig = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (orig == MAP_FAILED) {
            fprintf(stderr, "modelbench: %s: missing or not %llu bytes\n", verify, (unsigned long long)size);
            rc = 1;
        }
        uint64_t first_bad = UINT64_MAX;
        for (uint64_t off = 0; rc == 0 && off < size; off += block) {
            ssize_t n = mfs_model_read(m, buf, block, off);
            if (n <= 0 || memcmp(buf, orig + off, (size_t)n) != 0) {
                for (ssize_t i = 0; n > 0 && i < n; i++)
                    if (buf[i] != orig[off + (uint64_t)i]) {
                        first_bad = off + (uint64_t)i;
                        break;
                    }
                rc = 1;
            }
        }
        long bad = 0;
        uint64_t x = 0x9E3779B97F4A7C15ull;
        for (long i = 0; rc == 0 && i < random_reads; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint64_t off = x % size, n = (x >> 40) % (1u << 20) + 1;
            uint64_t want = off + n > size ? size - off : n;
            ssize_t got = mfs_model_read(m, buf, n, off);
            if (got != (ssize_t)want || memcmp(buf, orig + off, want) != 0)
                bad++;
        }
        printf("verify=%s identical=%s random_reads=%ld mismatches=%ld", verify, rc ? "no" : "yes", random_reads, bad);
        if (first_bad != UINT64_MAX)
            printf(" first_difference=%llu", (unsigned long long)first_bad);
        printf("\n");
        rc |= bad != 0;
        if (orig != MAP_FAILED)
            munmap((void *)orig, size);
        if (fd >= 0)
            close(fd);
    }
    free(buf);
    mfs_model_unref(m);
    mfs_engine_destroy(e);
    return rc;
}
