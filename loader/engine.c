#include "mfs_engine.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mfs_log.h"

/*
 * One cache entry per (stream, chunk). States:
 *   QUEUED   a prefetch task is waiting for a worker; a reader that needs it takes it over
 *   PENDING  someone is decoding it; others wait on `cv`
 *   READY    data valid; in the LRU list
 *   FAILED   decode failed; waiters read `err`, then the entry goes away with its last pin
 * `bytes` counts the buffers of every entry plus the idle buffer pool.
 */
enum entry_state { QUEUED, PENDING, READY, FAILED };

struct entry {
    struct entry *hnext;
    struct entry *lru_prev, *lru_next; /* READY entries only, most recent first */
    struct entry *qnext;               /* work queue */
    mfs_chunked *owner;
    uint64_t idx;
    uint8_t *data;
    size_t size;
    enum entry_state state;
    int err;
    unsigned pins;
    uint64_t served; /* bytes copied out since it became READY */
    bool spent;      /* read through by a sequential reader: first to be recycled */
};

struct pooled {
    struct pooled *next;
    size_t size;
};

struct mfs_engine {
    pthread_mutex_t mu;
    pthread_cond_t ready_cv; /* an entry left PENDING/QUEUED */
    pthread_cond_t work_cv;  /* the queue got a task, or stop */
    struct entry **buckets;
    uint64_t n_buckets, n_entries;
    struct entry *lru_head, *lru_tail;
    struct entry *q_head, *q_tail;
    struct pooled *pool; /* idle buffers, reused to avoid page faults */
    uint64_t pool_bytes;
    uint64_t bytes, budget, prefetch_bytes;
    uint64_t next_stream_id;
    bool stop;
    unsigned n_threads;
    pthread_t *threads;
    struct mfs_engine_stats st;
};

struct mfs_chunked {
    mfs_engine *e;
    uint64_t id;
    uint64_t *ends;
    uint64_t n;
    struct mfs_chunk_ops ops;
    void *ctx;
    unsigned flags;
    char *name;
    /* under e->mu */
    uint64_t last_idx; /* chunk of the previous read, for sequential detection */
    unsigned run;      /* reads that moved to the next chunk in a row */
    unsigned busy;         /* entries of this stream being decoded or waited on */
    uint8_t *logged;       /* chunks whose failure was logged */
};

#define BIG_BUFFER (64u << 10)

/* ---------------------------------------------------------------- buffers */

/* MAP_POPULATE: the pages are faulted in by the one mmap call instead of one fault per page on the
 * first write; on this project's VMs a page fault costs ~20 us, and a fresh 256 KiB chunk buffer
 * otherwise takes 64 of them (readbench, cache 256M: 43800 faults and 0.91 s of CPU for 177 MB,
 * 614 faults and 0.59 s with it). */
static void *buf_map(size_t size)
{
    if (size < BIG_BUFFER)
        return malloc(size ? size : 1);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void buf_unmap(void *p, size_t size)
{
    if (size < BIG_BUFFER)
        free(p);
    else if (p)
        munmap(p, size);
}

/* A buffer of exactly `size` bytes, from the pool if one fits. Called with mu held; the pool's
 * bytes are already counted in e->bytes, a fresh buffer is counted by the caller. */
static void *pool_take(mfs_engine *e, size_t size)
{
    for (struct pooled **pp = &e->pool; *pp; pp = &(*pp)->next) {
        if ((*pp)->size == size) {
            struct pooled *p = *pp;
            *pp = p->next;
            e->pool_bytes -= size;
            return p;
        }
    }
    return NULL;
}

static void pool_trim(mfs_engine *e, uint64_t keep)
{
    while (e->pool && e->pool_bytes > keep) {
        struct pooled *p = e->pool;
        e->pool = p->next;
        e->pool_bytes -= p->size;
        e->bytes -= p->size;
        buf_unmap(p, p->size);
    }
}

/* Give a buffer back: into the pool when it is big enough to be worth it (the pool is part of
 * the budget; buffer_for trims it when the budget needs the room). */
static void buf_release(mfs_engine *e, uint8_t *data, size_t size)
{
    if (!data)
        return;
    if (size >= BIG_BUFFER && e->bytes <= e->budget) {
        struct pooled *p = (struct pooled *)data;
        p->size = size;
        p->next = e->pool;
        e->pool = p;
        e->pool_bytes += size;
        return;
    }
    e->bytes -= size;
    buf_unmap(data, size);
}

/* ---------------------------------------------------------------- hash and LRU */

static uint64_t slot_of(const mfs_engine *e, uint64_t stream, uint64_t idx)
{
    uint64_t h = (stream * 0x9E3779B97F4A7C15ull) ^ (idx * 0xC2B2AE3D27D4EB4Full);
    h ^= h >> 29;
    return h & (e->n_buckets - 1);
}

static struct entry *lookup(mfs_engine *e, mfs_chunked *c, uint64_t idx)
{
    for (struct entry *x = e->buckets[slot_of(e, c->id, idx)]; x; x = x->hnext)
        if (x->owner == c && x->idx == idx)
            return x;
    return NULL;
}

static void rehash(mfs_engine *e)
{
    uint64_t nb = e->n_buckets * 2;
    struct entry **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    struct entry **old = e->buckets;
    uint64_t old_n = e->n_buckets;
    e->buckets = b;
    e->n_buckets = nb;
    for (uint64_t i = 0; i < old_n; i++) {
        struct entry *x = old[i];
        while (x) {
            struct entry *next = x->hnext;
            uint64_t s = slot_of(e, x->owner->id, x->idx);
            x->hnext = b[s];
            b[s] = x;
            x = next;
        }
    }
    free(old);
}

static void hash_insert(mfs_engine *e, struct entry *x)
{
    if (e->n_entries + 1 > e->n_buckets * 2)
        rehash(e);
    uint64_t s = slot_of(e, x->owner->id, x->idx);
    x->hnext = e->buckets[s];
    e->buckets[s] = x;
    e->n_entries++;
}

static void hash_remove(mfs_engine *e, struct entry *x)
{
    for (struct entry **pp = &e->buckets[slot_of(e, x->owner->id, x->idx)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == x) {
            *pp = x->hnext;
            e->n_entries--;
            return;
        }
    }
}

static void lru_unlink(mfs_engine *e, struct entry *x)
{
    if (x->lru_prev)
        x->lru_prev->lru_next = x->lru_next;
    else
        e->lru_head = x->lru_next;
    if (x->lru_next)
        x->lru_next->lru_prev = x->lru_prev;
    else
        e->lru_tail = x->lru_prev;
    x->lru_prev = x->lru_next = NULL;
}

static void lru_push(mfs_engine *e, struct entry *x)
{
    x->lru_prev = NULL;
    x->lru_next = e->lru_head;
    if (e->lru_head)
        e->lru_head->lru_prev = x;
    e->lru_head = x;
    if (!e->lru_tail)
        e->lru_tail = x;
}

static void lru_push_tail(mfs_engine *e, struct entry *x)
{
    x->lru_next = NULL;
    x->lru_prev = e->lru_tail;
    if (e->lru_tail)
        e->lru_tail->lru_next = x;
    e->lru_tail = x;
    if (!e->lru_head)
        e->lru_head = x;
}

/* Remove an entry that nobody uses any more; its buffer goes back. */
static void entry_drop(mfs_engine *e, struct entry *x)
{
    hash_remove(e, x);
    if (x->state == READY)
        lru_unlink(e, x);
    buf_release(e, x->data, x->size);
    free(x);
}

/* A buffer of `size` bytes counted in e->bytes: from the pool, or a fresh one if the budget has
 * room, else made by evicting unpinned READY entries, oldest first (their buffers go to the pool,
 * so a buffer of the same size is reused without a page fault). When nothing more can be evicted
 * the budget is exceeded for a demand read (at most one chunk per reader thread) and NULL is
 * returned for an optional one. mu held. */
static uint8_t *buffer_for(mfs_engine *e, size_t size, bool optional)
{
    struct entry *x = e->lru_tail;
    for (;;) {
        uint8_t *data = pool_take(e, size);
        if (data)
            return data;
        /* A chunk a sequential reader is done with goes before the cache grows: streaming a
         * big model then cycles through a few buffers that stay in the CPU's caches, instead of
         * faulting in (and cooling) the whole budget. */
        if (e->lru_tail && e->lru_tail->spent && e->lru_tail->pins == 0) {
            if (x == e->lru_tail)
                x = x->lru_prev;
            entry_drop(e, e->lru_tail);
            continue;
        }
        if (e->bytes + size <= e->budget)
            break;
        /* Pooled buffers of other sizes (a stream's short last chunk, another stream's chunks)
         * make room by unmapping just enough of them: evicting on while they pile up in the pool
         * would empty the whole cache and pool for one odd-sized chunk. */
        if (e->pool_bytes >= size) {
            pool_trim(e, e->pool_bytes - size);
            if (e->bytes + size <= e->budget)
                break;
        }
        while (x && x->pins)
            x = x->lru_prev;
        if (!x)
            break;
        struct entry *prev = x->lru_prev;
        entry_drop(e, x);
        x = prev;
    }
    if (e->bytes + size > e->budget)
        pool_trim(e, 0); /* buffers of other sizes */
    if (e->bytes + size > e->budget && optional)
        return NULL;
    uint8_t *data = buf_map(size);
    if (data)
        e->bytes += size;
    return data;
}

/* A new entry in the table, with its buffer. NULL if out of memory or, when `optional`, out of
 * budget. mu held (fresh buffers are mapped under it: rare once the pool is warm). */
static struct entry *entry_new(mfs_engine *e, mfs_chunked *c, uint64_t idx, bool optional)
{
    size_t size = (size_t)(c->ends[idx] - (idx ? c->ends[idx - 1] : 0));
    struct entry *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->data = buffer_for(e, size, optional);
    if (!x->data) {
        free(x);
        return NULL;
    }
    if (e->bytes > e->st.peak_bytes)
        e->st.peak_bytes = e->bytes;
    x->owner = c;
    x->idx = idx;
    x->size = size;
    hash_insert(e, x);
    return x;
}

/* ---------------------------------------------------------------- decoding */

/* Once per chunk (a bitmap, made at the first failure). mu held. */
static void log_failure(mfs_chunked *c, uint64_t idx, int err)
{
    if (!c->logged && !(c->logged = calloc((c->n + 7) / 8, 1)))
        return;
    if (c->logged[idx / 8] & (1u << (idx % 8)))
        return;
    c->logged[idx / 8] |= (uint8_t)(1u << (idx % 8));
    uint64_t off = idx ? c->ends[idx - 1] : 0;
    mfs_log(MFS_LOG_ERROR, "%s: chunk %" PRIu64 " (decoded bytes %" PRIu64 "-%" PRIu64 ") cannot be decoded: %s",
            c->name, idx, off, c->ends[idx], err == -EIO ? "corrupt or unreadable stored data (EIO)" : strerror(-err));
}

/* Decode x (PENDING, pinned by the caller) with mu released during the work; mu held on return. */
static void decode_entry(mfs_engine *e, struct entry *x)
{
    mfs_chunked *c = x->owner;
    pthread_mutex_unlock(&e->mu);
    int rc = c->ops.decode(c->ctx, x->idx, x->data, x->size);
    pthread_mutex_lock(&e->mu);
    if (rc == 0) {
        x->state = READY;
        lru_push(e, x);
        e->st.chunks_decoded++;
        e->st.bytes_decoded += x->size;
    } else {
        x->state = FAILED;
        x->err = rc;
        e->st.decode_errors++;
        log_failure(c, x->idx, rc);
        /* Out of the table now, so the next read tries again; freed with its last pin. */
        hash_remove(e, x);
        buf_release(e, x->data, x->size);
        x->data = NULL;
    }
    pthread_cond_broadcast(&e->ready_cv);
}

static void unpin(mfs_engine *e, struct entry *x)
{
    mfs_chunked *c = x->owner;
    if (--x->pins == 0 && x->state == FAILED)
        free(x);
    if (--c->busy == 0)
        pthread_cond_broadcast(&e->ready_cv);
}

static void *worker_main(void *arg)
{
    mfs_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stop && !e->q_head)
            pthread_cond_wait(&e->work_cv, &e->mu);
        if (e->stop)
            break;
        struct entry *x = e->q_head;
        e->q_head = x->qnext;
        if (!e->q_head)
            e->q_tail = NULL;
        x->qnext = NULL;
        if (x->state != QUEUED) {
            /* a reader took it over; the queue's pin goes */
            unpin(e, x);
            continue;
        }
        x->state = PENDING;
        decode_entry(e, x);
        if (x->state == READY)
            e->st.prefetched++;
        unpin(e, x);
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* Queue chunks ahead of a sequential reader at chunk `idx`. mu held. */
static void prefetch(mfs_engine *e, mfs_chunked *c, uint64_t idx)
{
    /* Sequential: reading the same chunk again or the next one (concurrent kernel requests
     * arrive a little out of order within a chunk, rarely across two). */
    if (idx == c->last_idx + 1)
        c->run++;
    else if (idx != c->last_idx)
        c->run = 0;
    c->last_idx = idx;
    if (c->run == 0 || e->n_threads == 0 || (c->flags & MFS_CHUNKED_SEQUENTIAL))
        return;
    uint64_t base = c->ends[idx];
    uint64_t ahead = e->prefetch_bytes < e->budget / 2 ? e->prefetch_bytes : e->budget / 2;
    for (uint64_t j = idx + 1; j < c->n && c->ends[j] - base <= ahead; j++) {
        if (lookup(e, c, j))
            continue;
        struct entry *x = entry_new(e, c, j, true);
        if (!x)
            break;
        x->state = QUEUED;
        x->pins = 1; /* the queue's */
        c->busy++;
        if (e->q_tail)
            e->q_tail->qnext = x;
        else
            e->q_head = x;
        e->q_tail = x;
        pthread_cond_signal(&e->work_cv);
    }
}

/* Copy [from, to) of chunk idx into dst. */
static ssize_t read_chunk(mfs_engine *e, mfs_chunked *c, uint64_t idx, uint8_t *dst, uint64_t from, uint64_t to)
{
    pthread_mutex_lock(&e->mu);
    struct entry *x = lookup(e, c, idx);
    if (x) {
        e->st.hits++;
        x->pins++;
        c->busy++;
        if (x->state == QUEUED) {
            x->state = PENDING; /* take it over from the worker queue */
            decode_entry(e, x);
        }
        while (x->state == PENDING)
            pthread_cond_wait(&e->ready_cv, &e->mu);
        if (x->state == READY) {
            lru_unlink(e, x);
            lru_push(e, x);
            x->spent = false;
        }
    } else {
        e->st.misses++;
        x = entry_new(e, c, idx, false);
        if (!x) {
            pthread_mutex_unlock(&e->mu);
            return -ENOMEM;
        }
        x->state = PENDING;
        x->pins = 1;
        c->busy++;
        decode_entry(e, x);
    }
    prefetch(e, c, idx);
    if (x->state != READY) {
        int err = x->err;
        unpin(e, x);
        pthread_mutex_unlock(&e->mu);
        return err;
    }
    pthread_mutex_unlock(&e->mu);
    memcpy(dst, x->data + from, to - from);
    pthread_mutex_lock(&e->mu);
    x->served += to - from;
    if (x->served >= x->size && c->run > 0 && x->state == READY && !x->spent) {
        x->spent = true; /* the kernel's page cache has these bytes now */
        lru_unlink(e, x);
        lru_push_tail(e, x);
    }
    unpin(e, x);
    pthread_mutex_unlock(&e->mu);
    return (ssize_t)(to - from);
}

static uint64_t find_chunk(const mfs_chunked *c, uint64_t off)
{
    uint64_t lo = 0, hi = c->n - 1; /* first chunk whose end is past off */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (c->ends[mid] > off)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

ssize_t mfs_chunked_read(mfs_chunked *c, void *buf, size_t len, uint64_t off)
{
    uint64_t size = mfs_chunked_size(c);
    if (off >= size || len == 0)
        return 0;
    if (len > size - off)
        len = (size_t)(size - off);
    size_t done = 0;
    uint64_t idx = find_chunk(c, off);
    while (done < len) {
        uint64_t start = idx ? c->ends[idx - 1] : 0;
        uint64_t from = off + done - start;
        uint64_t to = c->ends[idx] - start;
        if (to - from > len - done)
            to = from + (len - done);
        ssize_t n = read_chunk(c->e, c, idx, (uint8_t *)buf + done, from, to);
        if (n < 0)
            return n;
        done += (size_t)n;
        idx++;
    }
    return (ssize_t)done;
}

void mfs_chunked_offer(mfs_chunked *c, uint64_t i, const void *data, size_t size)
{
    mfs_engine *e = c->e;
    if (i >= c->n || size != c->ends[i] - (i ? c->ends[i - 1] : 0))
        return;
    pthread_mutex_lock(&e->mu);
    if (!lookup(e, c, i)) {
        struct entry *x = entry_new(e, c, i, true);
        if (x) {
            memcpy(x->data, data, size);
            x->state = READY;
            lru_push(e, x);
        }
    }
    pthread_mutex_unlock(&e->mu);
}

/* ---------------------------------------------------------------- lifecycle */

int mfs_chunked_create(mfs_engine *e, const uint64_t *ends, uint64_t n, const struct mfs_chunk_ops *ops,
                       void *ctx, unsigned flags, const char *name, mfs_chunked **out)
{
    if (n == 0 || n > SIZE_MAX / sizeof(uint64_t))
        return -EINVAL;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t prev = i ? ends[i - 1] : 0;
        if (ends[i] <= prev || ends[i] - prev > (1ull << 30))
            return -EINVAL;
    }
    mfs_chunked *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->ends = malloc(n * sizeof *c->ends);
    c->name = strdup(name ? name : "(stream)");
    if (!c->ends || !c->name) {
        free(c->ends);
        free(c->name);
        free(c);
        return -ENOMEM;
    }
    memcpy(c->ends, ends, n * sizeof *ends);
    c->n = n;
    c->e = e;
    c->ops = *ops;
    c->ctx = ctx;
    c->flags = flags;
    c->last_idx = UINT64_MAX - 8; /* nothing is sequential to it */
    pthread_mutex_lock(&e->mu);
    c->id = e->next_stream_id++;
    pthread_mutex_unlock(&e->mu);
    *out = c;
    return 0;
}

void mfs_chunked_destroy(mfs_chunked *c)
{
    if (!c)
        return;
    mfs_engine *e = c->e;
    pthread_mutex_lock(&e->mu);
    /* Cancel queued prefetches of this stream (the worker skips them and drops their pin). */
    for (struct entry *x = e->q_head; x; x = x->qnext)
        if (x->owner == c && x->state == QUEUED) {
            x->state = FAILED;
            x->err = -ECANCELED;
            hash_remove(e, x);
            buf_release(e, x->data, x->size);
            x->data = NULL;
        }
    while (c->busy)
        pthread_cond_wait(&e->ready_cv, &e->mu);
    for (uint64_t b = 0; b < e->n_buckets; b++) {
        struct entry **pp = &e->buckets[b];
        while (*pp) {
            struct entry *x = *pp;
            if (x->owner == c) {
                *pp = x->hnext;
                e->n_entries--;
                if (x->state == READY)
                    lru_unlink(e, x);
                buf_release(e, x->data, x->size);
                free(x);
            } else {
                pp = &x->hnext;
            }
        }
    }
    pthread_mutex_unlock(&e->mu);
    free(c->ends);
    free(c->name);
    free(c->logged);
    free(c);
}

uint64_t mfs_chunked_size(const mfs_chunked *c)
{
    return c->ends[c->n - 1];
}

uint64_t mfs_chunked_count(const mfs_chunked *c)
{
    return c->n;
}

int mfs_engine_create(const struct mfs_engine_config *cfg, mfs_engine **out)
{
    mfs_engine *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    e->budget = cfg && cfg->cache_bytes ? cfg->cache_bytes : 256ull << 20;
    e->prefetch_bytes = cfg && cfg->prefetch_bytes ? cfg->prefetch_bytes : 16ull << 20;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    e->n_threads = cfg && cfg->threads ? cfg->threads : cpus > 0 ? (unsigned)cpus : 1;
    e->n_buckets = 1024;
    e->buckets = calloc(e->n_buckets, sizeof *e->buckets);
    e->threads = calloc(e->n_threads, sizeof *e->threads);
    if (!e->buckets || !e->threads) {
        free(e->buckets);
        free(e->threads);
        free(e);
        return -ENOMEM;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->ready_cv, NULL);
    pthread_cond_init(&e->work_cv, NULL);
    unsigned started = 0;
    for (; started < e->n_threads; started++)
        if (pthread_create(&e->threads[started], NULL, worker_main, e) != 0)
            break;
    e->n_threads = started; /* fewer workers still work: reads decode in the caller */
    *out = e;
    return 0;
}

void mfs_engine_destroy(mfs_engine *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_broadcast(&e->work_cv);
    pthread_mutex_unlock(&e->mu);
    for (unsigned i = 0; i < e->n_threads; i++)
        pthread_join(e->threads[i], NULL);
    pool_trim(e, 0);
    free(e->buckets);
    free(e->threads);
    pthread_cond_destroy(&e->ready_cv);
    pthread_cond_destroy(&e->work_cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

void mfs_engine_stats(mfs_engine *e, struct mfs_engine_stats *out)
{
    pthread_mutex_lock(&e->mu);
    *out = e->st;
    out->cached_bytes = e->bytes;
    pthread_mutex_unlock(&e->mu);
}

void mfs_engine_drop_cache(mfs_engine *e)
{
    pthread_mutex_lock(&e->mu);
    struct entry *x = e->lru_tail;
    while (x) {
        struct entry *prev = x->lru_prev;
        if (x->pins == 0)
            entry_drop(e, x);
        x = prev;
    }
    pool_trim(e, 0);
    pthread_mutex_unlock(&e->mu);
}
