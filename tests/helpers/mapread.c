/* mapread [-q] FILE: map FILE as llama.cpp does (posix_fadvise(SEQUENTIAL), then
 * mmap(PROT_READ, MAP_SHARED | MAP_POPULATE)), touch every page, and write the mapped bytes to
 * stdout (with -q: print the seconds taken instead). Exit 1 on any error. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int quiet = argc == 3 && !strcmp(argv[1], "-q");
    if (argc != 2 + quiet) {
        fprintf(stderr, "usage: mapread [-q] FILE\n");
        return 2;
    }
    const char *path = argv[1 + quiet];
    double t0 = now();
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st)) {
        fprintf(stderr, "mapread: %s: %s\n", path, strerror(errno));
        return 1;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    size_t size = (size_t)st.st_size;
    if (size == 0)
        return 0;
    const volatile uint8_t *p = mmap(NULL, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "mapread: mmap %s: %s\n", path, strerror(errno));
        return 1;
    }
    uint64_t sum = 0;
    for (size_t o = 0; o < size; o += 4096)
        sum += p[o];
    double t1 = now();
    if (quiet) {
        printf("%.4f %llu\n", t1 - t0, (unsigned long long)sum);
        return 0;
    }
    for (size_t done = 0; done < size;) {
        ssize_t n = write(1, (const uint8_t *)p + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "mapread: write: %s\n", strerror(errno));
            return 1;
        }
        done += (size_t)n;
    }
    return 0;
}
