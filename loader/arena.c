#include "arena.h"

#include <stdint.h>
#include <stdlib.h>

#define BLOCK_SIZE (64u << 10)

struct mfs_arena_block {
    struct mfs_arena_block *next;
    _Alignas(8) unsigned char data[];
};

void mfs_arena_init(mfs_arena *a)
{
    a->head = NULL;
    a->used = a->cap = 0;
}

static struct mfs_arena_block *new_block(size_t cap)
{
    if (cap > SIZE_MAX - sizeof(struct mfs_arena_block))
        return NULL;
    return malloc(sizeof(struct mfs_arena_block) + cap);
}

void *mfs_arena_alloc(mfs_arena *a, size_t n)
{
    if (n == 0 || n > SIZE_MAX - 7)
        return NULL;
    n = (n + 7) & ~(size_t)7;
    if (n > BLOCK_SIZE / 4) {
        /* big objects get a block of their own, linked behind the head so the head keeps its space */
        struct mfs_arena_block *b = new_block(n);
        if (!b)
            return NULL;
        if (a->head) {
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = NULL;
            a->head = b;
            a->used = a->cap = n;
        }
        return b->data;
    }
    if (!a->head || a->cap - a->used < n) {
        /* blocks double from 4 KiB to BLOCK_SIZE: a small header (a model is kept as long as it
         * is mounted, and a mount may hold hundreds) does not cost a whole block */
        size_t cap = a->head ? (a->cap < BLOCK_SIZE ? a->cap * 2 : BLOCK_SIZE) : 4096;
        while (cap < n)
            cap *= 2;
        struct mfs_arena_block *b = new_block(cap);
        if (!b)
            return NULL;
        b->next = a->head;
        a->head = b;
        a->used = 0;
        a->cap = cap;
    }
    void *p = a->head->data + a->used;
    a->used += n;
    return p;
}

void mfs_arena_free(mfs_arena *a)
{
    struct mfs_arena_block *b = a->head;
    while (b) {
        struct mfs_arena_block *next = b->next;
        free(b);
        b = next;
    }
    mfs_arena_init(a);
}
