/* mfs_util: small helpers the tools and the daemon share. */
#ifndef MFS_UTIL_H
#define MFS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "4096", "256K", "4M", "1G", "2T" (binary units, optional "iB"/"B" suffix) -> bytes.
 * 0 or -EINVAL (not a size, or overflow). */
int mfs_parse_size(const char *s, uint64_t *out);

/* "2.20 GiB", "512 KiB", "17 B" into buf; returns buf. */
const char *mfs_format_size(uint64_t bytes, char *buf, size_t cap);

/* Monotonic seconds. */
double mfs_now(void);

#endif
