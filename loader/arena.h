/* A bump allocator for objects that live and die together (a parsed header's strings and arrays).
 * Not thread safe. mfs_arena_free releases everything at once. */
#ifndef MFS_ARENA_H
#define MFS_ARENA_H

#include <stddef.h>

struct mfs_arena_block;

typedef struct mfs_arena {
    struct mfs_arena_block *head;
    size_t used, cap; /* of the head block */
} mfs_arena;

void mfs_arena_init(mfs_arena *a);
/* 8-byte aligned memory, or NULL (also for n == 0). */
void *mfs_arena_alloc(mfs_arena *a, size_t n);
void mfs_arena_free(mfs_arena *a);

#endif
