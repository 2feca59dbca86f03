/* Sampling: greedy, or top-k -> top-p -> min-p -> temperature -> a draw from a seeded generator,
 * in llama.cpp's default order. */
#include "mfs_infer.h"

#include <math.h>
#include <stdlib.h>

struct cand {
    int32_t id;
    float logit;
};

struct mfs_sampler {
    struct mfs_sampler_params p;
    int n_vocab;
    uint64_t rng;
    struct cand *c;
    float *prob;
};

mfs_sampler *mfs_sampler_create(const struct mfs_sampler_params *p, int n_vocab)
{
    mfs_sampler *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->rng = p->seed ^ 0x9e3779b97f4a7c15ull;
    s->c = malloc((size_t)n_vocab * sizeof *s->c);
    s->prob = malloc((size_t)n_vocab * sizeof *s->prob);
    if (!s->c || !s->prob) {
        mfs_sampler_free(s);
        return NULL;
    }
    return s;
}

void mfs_sampler_free(mfs_sampler *s)
{
    if (!s)
        return;
    free(s->c);
    free(s->prob);
    free(s);
}

/* splitmix64 -> [0, 1) */
static double next_uniform(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

static int cmp_cand(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int32_t mfs_sampler_sample(mfs_sampler *s, const float *logits)
{
    int V = s->n_vocab;
    if (s->p.temp <= 0) {
        int32_t best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best])
                best = i;
        return best;
    }
    int n = 0;
    int k = s->p.top_k > 0 && s->p.top_k < V ? s->p.top_k : V;
    if (k < V) {
        /* keep the k best in a sorted array: insertion, cheap for the usual small k */
        for (int i = 0; i < V; i++) {
            float l = logits[i];
            if (n == k && l <= s->c[n - 1].logit)
                continue;
            int j = n < k ? n++ : n - 1;
            while (j > 0 && s->c[j - 1].logit < l) {
                s->c[j] = s->c[j - 1];
                j--;
            }
            s->c[j].id = i;
            s->c[j].logit = l;
        }
    } else {
        for (int i = 0; i < V; i++)
            s->c[i] = (struct cand){i, logits[i]};
        n = V;
        qsort(s->c, (size_t)n, sizeof *s->c, cmp_cand);
    }
    float max = s->c[0].logit;
    if (s->p.top_p < 1.0f) {
        double sum = 0;
        for (int i = 0; i < n; i++)
            sum += s->prob[i] = expf(s->c[i].logit - max);
        double cum = 0;
        for (int i = 0; i < n; i++) {
            cum += s->prob[i] / sum;
            if (cum >= s->p.top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (s->p.min_p > 0.0f) {
        float cut = max + logf(s->p.min_p);
        int m = 1;
        while (m < n && s->c[m].logit >= cut)
            m++;
        n = m;
    }
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += s->prob[i] = expf((s->c[i].logit - max) / s->p.temp);
    double r = next_uniform(&s->rng) * sum;
    for (int i = 0; i < n; i++) {
        r -= s->prob[i];
        if (r < 0)
            return s->c[i].id;
    }
    return s->c[n - 1].id;
}
