#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* Waiting: spin (jobs come every few microseconds during a forward pass), then yield the CPU
 * (on a loaded machine a spinning thread would burn the time slice the thread it waits for
 * needs), and a worker idle for longer sleeps on the condition variable. */
#define SPIN_PAUSES 2000
#define SPIN_YIELDS 200

struct worker {
    mfs_pool *pool;
    int ith;
    pthread_t tid;
};

struct mfs_pool {
    int n;
    struct worker *workers;
    mfs_pool_fn fn;
    void *arg;
    atomic_uint gen;     /* bumped for each job */
    atomic_int pending;  /* workers still running the current job */
    atomic_int sleepers; /* workers waiting on cond */
    atomic_bool quit;
    pthread_mutex_t mu;
    pthread_cond_t cond;
};

static void *worker_main(void *p)
{
    struct worker *w = p;
    mfs_pool *pool = w->pool;
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&pool->gen, memory_order_acquire) == seen && !atomic_load(&pool->quit)) {
            if (++spins < SPIN_PAUSES) {
                cpu_relax();
                continue;
            }
            if (spins < SPIN_PAUSES + SPIN_YIELDS) {
                sched_yield();
                continue;
            }
            pthread_mutex_lock(&pool->mu);
            atomic_fetch_add(&pool->sleepers, 1);
            while (atomic_load(&pool->gen) == seen && !atomic_load(&pool->quit))
                pthread_cond_wait(&pool->cond, &pool->mu);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->mu);
        }
        if (atomic_load(&pool->quit))
            return NULL;
        seen = atomic_load_explicit(&pool->gen, memory_order_acquire);
        pool->fn(pool->arg, w->ith, pool->n);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
    }
}

mfs_pool *mfs_pool_create(int n_threads)
{
    if (n_threads < 1)
        n_threads = 1;
    mfs_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->n = n_threads;
    p->workers = calloc((size_t)n_threads, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    for (int i = 1; i < n_threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].ith = i;
        if (pthread_create(&p->workers[i].tid, NULL, worker_main, &p->workers[i]) != 0) {
            p->n = i; /* join the ones that started */
            mfs_pool_free(p);
            return NULL;
        }
    }
    return p;
}

void mfs_pool_free(mfs_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        pthread_join(p->workers[i].tid, NULL);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

int mfs_pool_size(const mfs_pool *p) { return p->n; }

void mfs_pool_run(mfs_pool *p, mfs_pool_fn fn, void *arg)
{
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n - 1, memory_order_relaxed);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: pairs with the sleepers check in the worker */
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->mu);
    }
    fn(arg, 0, p->n);
    for (int spins = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0; spins++) {
        if (spins < SPIN_PAUSES)
            cpu_relax();
        else
            sched_yield();
    }
}
