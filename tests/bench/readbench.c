/* readbench: read a model source through the loader API, as the daemon does, and time it.
 *
 *   readbench [--cache SIZE] [--threads N] [--block SIZE] seq FILE
 *       one reader, block by block from start to end (what a sequential `cat` or MAP_POPULATE
 *       through the mount asks of the loader); prints seconds, GB/s and the peak RSS
 *   readbench [--cache SIZE] [--threads N] [--block SIZE] random FILE ORIGINAL COUNT
 *       COUNT random reads (random offset, length 1 to --block, default 1 MiB), each compared
 *       with ORIGINAL
 *
 * Output is one line of key=value pairs, for scripts/bench-read.
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
#include "mfs_source.h"
#include "mfs_util.h"

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

int main(int argc, char **argv)
{
    uint64_t cache = 256ull << 20, block = 1u << 20;
    unsigned threads = 0;
    static const struct option longopts[] = {
        {"cache", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 't'},
        {"block", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        if (c == 'c' && mfs_parse_size(optarg, &cache) == 0)
            continue;
        if (c == 'b' && mfs_parse_size(optarg, &block) == 0 && block > 0)
            continue;
        if (c == 't') {
            threads = (unsigned)atoi(optarg);
            continue;
        }
        fprintf(stderr, "readbench: bad option\n");
        return 2;
    }
    if (argc - optind < 2) {
        fprintf(stderr, "usage: readbench [--cache SIZE] [--threads N] [--block SIZE] seq FILE | random FILE ORIG COUNT\n");
        return 2;
    }
    const char *mode = argv[optind], *path = argv[optind + 1];
    mfs_engine *e;
    if (mfs_engine_create(&(struct mfs_engine_config){.cache_bytes = cache, .threads = threads}, &e))
        return 1;
    mfs_source *s;
    mfs_err err = {{0}};
    double t0 = mfs_now();
    if (mfs_source_open(path, &(struct mfs_open_opts){.engine = e}, &s, &err)) {
        fprintf(stderr, "readbench: %s\n", err.msg);
        return 1;
    }
    double t_open = mfs_now() - t0;
    uint64_t size = mfs_source_size(s);
    uint8_t *buf = malloc(block > (1u << 20) ? block : (1u << 20));
    int rc = 0;
    if (strcmp(mode, "seq") == 0) {
        uint64_t sum = 0;
        t0 = mfs_now();
        for (uint64_t off = 0; off < size; off += block) {
            ssize_t n = mfs_source_read(s, buf, block, off);
            if (n <= 0) {
                fprintf(stderr, "readbench: read failed at %llu: %zd\n", (unsigned long long)off, n);
                rc = 1;
                break;
            }
            sum += buf[0] + buf[n - 1];
        }
        double t = mfs_now() - t0;
        struct mfs_engine_stats st;
        mfs_engine_stats(e, &st);
        printf("mode=seq bytes=%llu open_s=%.4f seconds=%.3f gbps=%.3f peak_rss_mb=%.1f cache_peak_mb=%.1f "
               "prefetched=%llu checksum=%llu\n",
               (unsigned long long)size, t_open, t, (double)size / t / 1e9, (double)peak_rss_kb() / 1024,
               (double)st.peak_bytes / 1048576.0, (unsigned long long)st.prefetched, (unsigned long long)sum);
    } else if (strcmp(mode, "random") == 0 && argc - optind == 4) {
        int fd = open(argv[optind + 2], O_RDONLY);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0 || (uint64_t)st.st_size != size) {
            fprintf(stderr, "readbench: %s: missing or of another size\n", argv[optind + 2]);
            return 1;
        }
        const uint8_t *orig = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        long count = atol(argv[optind + 3]);
        uint64_t x = 0x9E3779B97F4A7C15ull;
        long bad = 0;
        t0 = mfs_now();
        for (long i = 0; i < count; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint64_t off = x % size, n = (x >> 40) % block + 1;
            uint64_t want = off + n > size ? size - off : n;
            ssize_t got = mfs_source_read(s, buf, n, off);
            if (got != (ssize_t)want || memcmp(buf, orig + off, want) != 0)
                bad++;
        }
        double t = mfs_now() - t0;
        printf("mode=random reads=%ld mismatches=%ld seconds=%.3f peak_rss_mb=%.1f\n", count, bad, t,
               (double)peak_rss_kb() / 1024);
        rc = bad != 0;
    } else {
        fprintf(stderr, "readbench: unknown mode %s\n", mode);
        rc = 2;
    }
    free(buf);
    mfs_source_unref(s);
    mfs_engine_destroy(e);
    return rc;
}
