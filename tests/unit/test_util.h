/* Helpers shared by the unit tests: reading files and finding test data. */
#ifndef MFS_TEST_UTIL_H
#define MFS_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ../shared/data, or $MFS_SHARED_DATA. */
static inline const char *test_shared_data(void)
{
    const char *d = getenv("MFS_SHARED_DATA");
    return d && *d ? d : "../shared/data";
}

/* Whole file in a malloc'ed buffer (NULL if unreadable). */
static inline uint8_t *test_read_file(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static inline int test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = fwrite(data, 1, len, f);
    return fclose(f) == 0 && n == len ? 0 : -1;
}

#endif
