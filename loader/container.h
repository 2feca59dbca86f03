/* Private to loader/: modelfs's tensor-aware container (see docs/COMPRESSION.md). */
#ifndef MFS_CONTAINER_H
#define MFS_CONTAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mfs_engine.h"
#include "mfs_source.h"

/* Do these first bytes start a container? */
bool mfs_container_is(const uint8_t *head, size_t len);

/* Open a container given as a plain-file source (its reference is taken over, also on
 * failure): a source of the original bytes, decoded chunk by chunk through the engine. */
int mfs_container_open(mfs_source *file, mfs_engine *engine, mfs_source **out, mfs_err *err);

#endif
