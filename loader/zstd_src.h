/* Private to loader/: the zstd sources behind mfs_source_open. */
#ifndef MFS_ZSTD_SRC_H
#define MFS_ZSTD_SRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mfs_engine.h"
#include "mfs_source.h"

/* Do these first bytes start a zstd frame or a skippable frame? */
bool mfs_zstd_is_zstd(const uint8_t *head, size_t len);

/* Open a zstd file (given as a plain-file source whose reference is taken over, also on failure):
 * the seekable format if the file ends with a seek table, else the frames found by walking their
 * headers; one frame (or a frame too big to cache whole) is served by a streaming decoder. */
int mfs_zstd_open(mfs_source *file, mfs_engine *engine, mfs_source **out, mfs_err *err);

/* The seekable format only; errors if the seek table is missing or bad. */
int mfs_zstd_open_seekable(mfs_source *file, mfs_engine *engine, mfs_source **out, mfs_err *err);

#endif
