/* A persistent thread pool: n-1 workers plus the calling thread run one function at a time.
 * Workers spin briefly between jobs (jobs come every few microseconds during a forward pass),
 * then sleep on a condition variable. Not reentrant: one mfs_pool_run at a time. */
#ifndef MFS_INFER_POOL_H
#define MFS_INFER_POOL_H

typedef struct mfs_pool mfs_pool;
typedef void (*mfs_pool_fn)(void *arg, int ith, int nth);

/* n_threads >= 1 in total, the caller included. NULL if out of memory or threads. */
mfs_pool *mfs_pool_create(int n_threads);
void mfs_pool_free(mfs_pool *p);
int mfs_pool_size(const mfs_pool *p);
/* Run fn(arg, ith, nth) for ith = 0..nth-1 (ith 0 on the caller); returns when all are done. */
void mfs_pool_run(mfs_pool *p, mfs_pool_fn fn, void *arg);

#endif
