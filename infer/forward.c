/* The forward pass: contexts, the KV cache and one eval over a batch of tokens.
 *
 * Per layer, for a batch of n tokens (x: n x n_embd floats, one row per token):
 *   xb = rmsnorm(x) * attn_norm;  q, k, v = xb Wq^T (+bq), xb Wk^T (+bk), xb Wv^T (+bv)
 *   rotate q and k; append k, v to the cache; per token and head, causal softmax attention
 *   x += attn Wo^T;  xb = rmsnorm(x) * ffn_norm;  x += (silu(xb Wg^T) * xb Wu^T) Wd^T
 * then logits = rmsnorm(x) * output_norm Wout^T for the kept tokens.
 *
 * Each matrix product quantizes its input once to the weight type's activation format
 * (kernels.h), then the pool's threads take chunks of (16 weight rows x up to 64 tokens) from an
 * atomic counter, so a slow thread never holds the others up. Products that share an input
 * (q/k/v, gate/up) run as one job.
 *
 * KV cache, F32: k[layer][pos][n_head_kv * head_dim], v transposed: v[layer][n_head_kv * head_dim][pos],
 * so both attention products are the kernels' row-times-row dots.
 */
#include "mfs_infer.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"
#include "pool.h"

#define BATCH_MAX 256  /* tokens per internal batch */
#define ROW_CHUNK 16   /* weight rows per work item (batches; generation takes ~64 KiB) */
#define COL_BLOCK 64   /* tokens per work item */
#define COL_GROUP 16   /* tokens per kernel call inside an item */
#ifndef MATVEC_CHUNK
#define MATVEC_CHUNK 65536 /* bytes of weights per work item for one token */
#endif

struct mfs_llm_ctx {
    const mfs_llm *m;
    mfs_pool *pool;
    int n_ctx, pos;
    float *k_cache, *v_cache;
    /* per-batch buffers, BATCH_MAX rows */
    float *x, *xb, *q, *k, *v, *att, *hb, *hb2;
    uint8_t *act;
    float *scores; /* per thread: rep x n_ctx */
    float *rope;   /* BATCH_MAX x n_rot/2 x (cos, sin) */
    float *logits;
    size_t logits_cap; /* floats */
    int logits_n;      /* rows of logits kept by the last eval */
    bool logits_all;
};

static void *xalloc(size_t n)
{
    void *p = NULL;
    n = (n + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, n ? n : 64) != 0)
        return NULL;
    return p;
}

int mfs_llm_ctx_create(const mfs_llm *m, int n_ctx, int n_threads, mfs_llm_ctx **out, mfs_err *err)
{
    const struct mfs_llm_info *h = &m->info;
    if (n_ctx <= 0)
        n_ctx = h->n_ctx_train < 4096 ? h->n_ctx_train : 4096;
    if (n_ctx <= 0 || n_ctx > (1 << 20)) {
        mfs_err_set(err, "%s: context size %d is out of range", mfs_map_path(m->map), n_ctx);
        return -EINVAL;
    }
    mfs_llm_ctx *c = calloc(1, sizeof *c);
    if (!c)
        goto nomem;
    c->m = m;
    c->n_ctx = n_ctx;
    int q_dim = h->n_head * h->head_dim, kv_dim = h->n_head_kv * h->head_dim;
    int wide = h->n_ff > q_dim ? h->n_ff : q_dim;
    if (h->n_embd > wide)
        wide = h->n_embd;
    size_t cache = (size_t)h->n_layer * (size_t)n_ctx * (size_t)kv_dim * sizeof(float);
    /* calloc: the kernel hands out zero pages lazily, so a big context costs only what is used */
    c->k_cache = calloc(1, cache);
    c->v_cache = calloc(1, cache);
    size_t B = BATCH_MAX;
    c->x = xalloc(B * (size_t)h->n_embd * 4);
    c->xb = xalloc(B * (size_t)wide * 4);
    c->q = xalloc(B * (size_t)q_dim * 4);
    c->k = xalloc(B * (size_t)kv_dim * 4);
    c->v = xalloc(B * (size_t)kv_dim * 4);
    c->att = xalloc(B * (size_t)q_dim * 4);
    c->hb = xalloc(B * (size_t)h->n_ff * 4);
    c->hb2 = xalloc(B * (size_t)h->n_ff * 4);
    c->act = xalloc(B * mfs_act_row_bytes(MFS_ACT_F32, wide));
    c->rope = xalloc(B * (size_t)h->n_rot * 4);
    c->pool = mfs_pool_create(n_threads);
    if (!c->pool)
        goto nomem;
    int nth = mfs_pool_size(c->pool), rep = h->n_head / h->n_head_kv;
    c->scores = xalloc((size_t)nth * (size_t)rep * (size_t)n_ctx * 4);
    if (!c->k_cache || !c->v_cache || !c->x || !c->xb || !c->q || !c->k || !c->v || !c->att || !c->hb || !c->hb2 ||
        !c->act || !c->rope || !c->scores)
        goto nomem;
    *out = c;
    return 0;
nomem:
    mfs_llm_ctx_free(c);
    mfs_err_set(err, "%s: out of memory for a context of %d positions", mfs_map_path(m->map), n_ctx);
    return -ENOMEM;
}

void mfs_llm_ctx_free(mfs_llm_ctx *c)
{
    if (!c)
        return;
    mfs_pool_free(c->pool);
    free(c->k_cache), free(c->v_cache), free(c->x), free(c->xb), free(c->q), free(c->k), free(c->v);
    free(c->att), free(c->hb), free(c->hb2), free(c->act), free(c->rope), free(c->scores), free(c->logits);
    free(c);
}

int mfs_llm_ctx_n_ctx(const mfs_llm_ctx *c) { return c->n_ctx; }
int mfs_llm_ctx_pos(const mfs_llm_ctx *c) { return c->pos; }
void mfs_llm_ctx_reset(mfs_llm_ctx *c) { c->pos = 0; }

/* ---- matrix products */

struct mm_job {
    const struct mfs_wt *w;
    float *y; /* n x w->rows */
};

struct mm_task {
    const struct mfs_kernels *kern;
    /* quantize phase */
    const float *x;
    int k, n;
    enum mfs_act_fmt fmt;
    uint8_t *act;
    size_t as;
    /* product phase */
    struct mm_job jobs[3];
    int n_jobs;
    int row_chunks[3]; /* chunks per job */
    int chunk_rows[3]; /* weight rows per chunk */
    int items_per_block;
    int n_items;
    atomic_int next;
};

static void quant_fn(void *arg, int ith, int nth)
{
    struct mm_task *t = arg;
    for (int i = ith; i < t->n; i += nth)
        mfs_act_quantize(t->fmt, t->x + (size_t)i * t->k, t->act + (size_t)i * t->as, t->k);
}

static void mm_fn(void *arg, int ith, int nth)
{
    (void)ith, (void)nth;
    struct mm_task *t = arg;
    for (;;) {
        int it = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed);
        if (it >= t->n_items)
            return;
        int cb = it / t->items_per_block, r = it % t->items_per_block, j = 0;
        while (r >= t->row_chunks[j])
            r -= t->row_chunks[j++];
        const struct mfs_wt *w = t->jobs[j].w;
        int cr = t->chunk_rows[j], r0 = r * cr, nr = w->rows - r0 < cr ? w->rows - r0 : cr;
        int c0 = cb * COL_BLOCK, nc = t->n - c0 < COL_BLOCK ? t->n - c0 : COL_BLOCK;
        /* tokens in groups of COL_GROUP: the kernels walk every token for each weight row, so a
         * group's activations (up to ~20 KiB a token) must stay in L2 while the rows go by */
        for (int cg = c0; cg < c0 + nc; cg += COL_GROUP) {
            int ng = c0 + nc - cg < COL_GROUP ? c0 + nc - cg : COL_GROUP;
            t->kern->gemm[w->type](t->k, w->data + (size_t)r0 * w->row_bytes, w->row_bytes, nr,
                                   t->act + (size_t)cg * t->as, t->as, ng, t->jobs[j].y + (size_t)cg * w->rows + r0,
                                   (size_t)w->rows);
        }
    }
}

/* y_j = x W_j^T for up to 3 matrices of the same type and input width; x: n x k. */
static void matmul(mfs_llm_ctx *c, const float *x, int n, const struct mm_job *jobs, int n_jobs)
{
    struct mm_task t = {.kern = c->m->kern, .x = x, .k = jobs[0].w->cols, .n = n, .n_jobs = n_jobs};
    t.fmt = (enum mfs_act_fmt)mfs_act_fmt_for(jobs[0].w->type);
    t.as = mfs_act_row_bytes(t.fmt, t.k);
    t.act = c->act;
    if (t.fmt == MFS_ACT_F32) {
        t.act = (uint8_t *)x; /* F32 rows are already the activation format */
        t.as = (size_t)t.k * 4;
    } else if (n >= 4) {
        mfs_pool_run(c->pool, quant_fn, &t);
    } else {
        quant_fn(&t, 0, 1);
    }
    for (int j = 0; j < n_jobs; j++) {
        t.jobs[j] = jobs[j];
        /* one token (generation): ~64 KiB of weights per item, so each thread streams long runs of
         * consecutive rows; a batch: ROW_CHUNK rows, which stay in L2 while the tokens go by */
        int cr = ROW_CHUNK;
        if (n == 1) {
            cr = (int)((size_t)MATVEC_CHUNK / jobs[j].w->row_bytes) & ~3;
            cr = cr < ROW_CHUNK ? ROW_CHUNK : cr > 1024 ? 1024 : cr;
        }
        t.chunk_rows[j] = cr;
        t.row_chunks[j] = (jobs[j].w->rows + cr - 1) / cr;
        t.items_per_block += t.row_chunks[j];
    }
    t.n_items = t.items_per_block * ((n + COL_BLOCK - 1) / COL_BLOCK);
    atomic_init(&t.next, 0);
    mfs_pool_run(c->pool, mm_fn, &t);
}

/* ---- attention */

struct att_task {
    mfs_llm_ctx *c;
    int layer, n, pos0;
    atomic_int next;
};

static void softmax(float *x, int n, float scale)
{
    float max = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] * scale > max)
            max = x[i] * scale;
    float sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] * scale - max);
        sum += x[i];
    }
    for (int i = 0; i < n; i++)
        x[i] /= sum;
}

static void att_fn(void *arg, int ith, int nth)
{
    (void)nth;
    struct att_task *t = arg;
    mfs_llm_ctx *c = t->c;
    const struct mfs_llm_info *h = &c->m->info;
    int hd = h->head_dim, rep = h->n_head / h->n_head_kv, kv_dim = h->n_head_kv * hd, q_dim = h->n_head * hd;
    const mfs_gemm_fn dot = c->m->kern->gemm[MFS_GGML_F32];
    float *S = c->scores + (size_t)ith * rep * c->n_ctx;
    const float *K = c->k_cache + (size_t)t->layer * c->n_ctx * kv_dim;
    const float *V = c->v_cache + (size_t)t->layer * c->n_ctx * kv_dim;
    float scale = 1.0f / sqrtf((float)hd);
    for (;;) {
        int it = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed);
        if (it >= t->n * h->n_head_kv)
            return;
        int tok = it / h->n_head_kv, g = it % h->n_head_kv, np = t->pos0 + tok + 1;
        const float *q = c->q + (size_t)tok * q_dim + (size_t)g * rep * hd;
        /* S (rep x np) = q_heads . K_g */
        dot(hd, K + (size_t)g * hd, (size_t)kv_dim * 4, np, q, (size_t)hd * 4, rep, S, (size_t)np);
        for (int r = 0; r < rep; r++)
            softmax(S + (size_t)r * np, np, scale);
        /* out (rep x hd) = S . V_g^T, V transposed: row d of head g is V[(g*hd + d) * n_ctx] */
        dot(np, V + (size_t)g * hd * c->n_ctx, (size_t)c->n_ctx * 4, hd, S, (size_t)np * 4, rep,
            c->att + (size_t)tok * q_dim + (size_t)g * rep * hd, (size_t)hd);
    }
}

/* ---- element-wise */

static void rmsnorm(float *out, const float *x, const float *w, int n, float eps)
{
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float s = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++)
        out[i] = x[i] * s * w[i];
}

/* cos/sin of pos * theta_i for i < n_rot/2, once per batch (shared by every layer) */
static void rope_table(mfs_llm_ctx *c, int n, int pos0)
{
    const struct mfs_llm *m = c->m;
    const struct mfs_llm_info *h = &m->info;
    int half = h->n_rot / 2;
    const float *ff = m->rope_freqs.data ? (const float *)m->rope_freqs.data : NULL;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < half; i++) {
            double theta = (double)(pos0 + t) * h->rope_freq_scale * pow(h->rope_theta, -2.0 * i / h->n_rot);
            if (ff)
                theta /= ff[i];
            c->rope[((size_t)t * half + i) * 2] = (float)cos(theta);
            c->rope[((size_t)t * half + i) * 2 + 1] = (float)sin(theta);
        }
}

/* Rotate n_heads heads of one token. llama: pairs (2i, 2i+1); NEOX: pairs (i, i + n_rot/2). */
static void rope_apply(const mfs_llm_ctx *c, float *v, int n_heads, int tok)
{
    const struct mfs_llm_info *h = &c->m->info;
    int half = h->n_rot / 2;
    const float *cs = c->rope + (size_t)tok * half * 2;
    for (int hh = 0; hh < n_heads; hh++) {
        float *x = v + (size_t)hh * h->head_dim;
        for (int i = 0; i < half; i++) {
            int a = h->rope_neox ? i : 2 * i, b = h->rope_neox ? i + half : 2 * i + 1;
            float x0 = x[a], x1 = x[b];
            x[a] = x0 * cs[2 * i] - x1 * cs[2 * i + 1];
            x[b] = x0 * cs[2 * i + 1] + x1 * cs[2 * i];
        }
    }
}

static void add_bias(float *y, const struct mfs_wt *b, int n, int dim)
{
    if (!b->data)
        return;
    const float *bb = (const float *)b->data;
    for (int t = 0; t < n; t++)
        for (int i = 0; i < dim; i++)
            y[(size_t)t * dim + i] += bb[i];
}

struct swiglu_task {
    float *g;
    const float *u;
    int n, ff;
};

static void swiglu_fn(void *arg, int ith, int nth)
{
    struct swiglu_task *t = arg;
    size_t total = (size_t)t->n * t->ff, per = (total + nth - 1) / nth, b = per * ith;
    size_t e = b + per < total ? b + per : total;
    for (size_t i = b; i < e; i++)
        t->g[i] = t->g[i] / (1.0f + expf(-t->g[i])) * t->u[i];
}

static int eval_batch(mfs_llm_ctx *c, const int32_t *tokens, int n, float *logits_out, bool all_logits)
{
    const struct mfs_llm *m = c->m;
    const struct mfs_llm_info *h = &m->info;
    int E = h->n_embd, hd = h->head_dim, q_dim = h->n_head * hd, kv_dim = h->n_head_kv * hd, pos0 = c->pos;
    for (int t = 0; t < n; t++)
        mfs_row_to_f32(m->tok_embd.type, m->tok_embd.data + (size_t)tokens[t] * m->tok_embd.row_bytes,
                       c->x + (size_t)t * E, E);
    rope_table(c, n, pos0);
    for (int l = 0; l < h->n_layer; l++) {
        const struct mfs_layer *L = &m->layers[l];
        for (int t = 0; t < n; t++)
            rmsnorm(c->xb + (size_t)t * E, c->x + (size_t)t * E, (const float *)L->attn_norm.data, E, h->norm_eps);
        if (L->wq.type == L->wk.type && L->wq.type == L->wv.type) {
            struct mm_job j[3] = {{&L->wq, c->q}, {&L->wk, c->k}, {&L->wv, c->v}};
            matmul(c, c->xb, n, j, 3);
        } else {
            struct mm_job jq = {&L->wq, c->q}, jk = {&L->wk, c->k}, jv = {&L->wv, c->v};
            matmul(c, c->xb, n, &jq, 1);
            matmul(c, c->xb, n, &jk, 1);
            matmul(c, c->xb, n, &jv, 1);
        }
        add_bias(c->q, &L->bq, n, q_dim);
        add_bias(c->k, &L->bk, n, kv_dim);
        add_bias(c->v, &L->bv, n, kv_dim);
        float *K = c->k_cache + (size_t)l * c->n_ctx * kv_dim, *V = c->v_cache + (size_t)l * c->n_ctx * kv_dim;
        for (int t = 0; t < n; t++) {
            rope_apply(c, c->q + (size_t)t * q_dim, h->n_head, t);
            rope_apply(c, c->k + (size_t)t * kv_dim, h->n_head_kv, t);
            memcpy(K + (size_t)(pos0 + t) * kv_dim, c->k + (size_t)t * kv_dim, (size_t)kv_dim * 4);
            for (int i = 0; i < kv_dim; i++)
                V[(size_t)i * c->n_ctx + pos0 + t] = c->v[(size_t)t * kv_dim + i];
        }
        struct att_task at = {.c = c, .layer = l, .n = n, .pos0 = pos0};
        atomic_init(&at.next, 0);
        mfs_pool_run(c->pool, att_fn, &at);
        struct mm_job jo = {&L->wo, c->xb};
        matmul(c, c->att, n, &jo, 1);
        for (size_t i = 0; i < (size_t)n * E; i++)
            c->x[i] += c->xb[i];
        for (int t = 0; t < n; t++)
            rmsnorm(c->xb + (size_t)t * E, c->x + (size_t)t * E, (const float *)L->ffn_norm.data, E, h->norm_eps);
        if (L->w_gate.type == L->w_up.type) {
            struct mm_job j[2] = {{&L->w_gate, c->hb}, {&L->w_up, c->hb2}};
            matmul(c, c->xb, n, j, 2);
        } else {
            struct mm_job jg = {&L->w_gate, c->hb}, ju = {&L->w_up, c->hb2};
            matmul(c, c->xb, n, &jg, 1);
            matmul(c, c->xb, n, &ju, 1);
        }
        struct swiglu_task st = {c->hb, c->hb2, n, h->n_ff};
        if (n >= 4)
            mfs_pool_run(c->pool, swiglu_fn, &st);
        else
            swiglu_fn(&st, 0, 1);
        struct mm_job jd = {&L->w_down, c->xb};
        matmul(c, c->hb, n, &jd, 1);
        for (size_t i = 0; i < (size_t)n * E; i++)
            c->x[i] += c->xb[i];
    }
    c->pos += n;
    if (!logits_out)
        return 0;
    int first = all_logits ? 0 : n - 1, nl = n - first;
    for (int t = first; t < n; t++)
        rmsnorm(c->xb + (size_t)(t - first) * E, c->x + (size_t)t * E, (const float *)m->out_norm.data, E,
                h->norm_eps);
    struct mm_job jl = {&m->output, logits_out};
    matmul(c, c->xb, nl, &jl, 1);
    return 0;
}

int mfs_llm_ctx_eval(mfs_llm_ctx *c, const int32_t *tokens, int n, bool all_logits, mfs_err *err)
{
    const struct mfs_llm_info *h = &c->m->info;
    const char *path = mfs_map_path(c->m->map);
    if (n <= 0) {
        mfs_err_set(err, "%s: nothing to evaluate", path);
        return -EINVAL;
    }
    if (n > c->n_ctx - c->pos) {
        mfs_err_set(err, "%s: context full (%d positions: %d used, %d more asked)", path, c->n_ctx, c->pos, n);
        return -EINVAL;
    }
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= h->n_vocab) {
            mfs_err_set(err, "%s: token id %d is out of range (vocabulary of %d)", path, tokens[i], h->n_vocab);
            return -EINVAL;
        }
    size_t need = (size_t)(all_logits ? n : 1) * (size_t)h->n_vocab;
    if (need > c->logits_cap) {
        float *p = realloc(c->logits, need * sizeof *p);
        if (!p) {
            mfs_err_set(err, "%s: out of memory for logits", path);
            return -ENOMEM;
        }
        c->logits = p;
        c->logits_cap = need;
    }
    for (int done = 0; done < n;) {
        int b = n - done < BATCH_MAX ? n - done : BATCH_MAX;
        bool last = done + b == n;
        float *lo = all_logits ? c->logits + (size_t)done * h->n_vocab : last ? c->logits : NULL;
        eval_batch(c, tokens + done, b, lo, all_logits);
        done += b;
    }
    c->logits_n = all_logits ? n : 1;
    c->logits_all = all_logits;
    return 0;
}

const float *mfs_llm_ctx_logits(const mfs_llm_ctx *c, int i)
{
    if (c->logits_n == 0)
        return NULL;
    if (i < 0)
        return c->logits + (size_t)(c->logits_n - 1) * c->m->info.n_vocab;
    if (!c->logits_all || i >= c->logits_n)
        return NULL;
    return c->logits + (size_t)i * c->m->info.n_vocab;
}
