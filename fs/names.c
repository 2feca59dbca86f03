#include "names.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A set of borrowed strings (open addressing), each with a count. */
struct set {
    const char **keys;
    unsigned *counts;
    size_t cap;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static int set_init(struct set *s, size_t n)
{
    s->cap = 16;
    while (s->cap < 2 * n + 1)
        s->cap *= 2;
    s->keys = calloc(s->cap, sizeof *s->keys);
    s->counts = calloc(s->cap, sizeof *s->counts);
    if (!s->keys || !s->counts) {
        free(s->keys);
        free(s->counts);
        return -ENOMEM;
    }
    return 0;
}

static void set_free(struct set *s)
{
    free(s->keys);
    free(s->counts);
}

static size_t set_slot(const struct set *s, const char *k)
{
    size_t i = hash_str(k) & (s->cap - 1);
    while (s->keys[i] && strcmp(s->keys[i], k))
        i = (i + 1) & (s->cap - 1);
    return i;
}

static unsigned set_count(const struct set *s, const char *k)
{
    size_t i = set_slot(s, k);
    return s->keys[i] ? s->counts[i] : 0;
}

/* The caller sizes the set for everything it adds. */
static void set_add(struct set *s, const char *k)
{
    size_t i = set_slot(s, k);
    s->keys[i] = k;
    s->counts[i]++;
}

static char *concat(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    char *s = malloc(alen + blen + 1);
    if (s) {
        memcpy(s, a, alen);
        memcpy(s + alen, b, blen + 1);
    }
    return s;
}

void fs_names_free(struct fs_name_res *res, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(res[i].gguf);
        free(res[i].tensors);
        free(res[i].meta);
        res[i].gguf = res[i].tensors = res[i].meta = NULL;
    }
}

int fs_names_resolve(const struct fs_name_req *req, size_t n, const char *const *reserved, size_t n_reserved,
                     struct fs_name_res *res)
{
    memset(res, 0, n * sizeof *res);
    /* taken: every name given out so far; wanted: how many renamed models want each name */
    struct set taken, wanted;
    if (n > SIZE_MAX / 8 || set_init(&taken, 4 * n + n_reserved))
        return -ENOMEM;
    if (set_init(&wanted, n)) {
        set_free(&taken);
        return -ENOMEM;
    }
    int rc = -ENOMEM;
    for (size_t i = 0; i < n_reserved; i++)
        set_add(&taken, reserved[i]);
    for (size_t i = 0; i < n; i++)
        if (req[i].shown && !set_count(&taken, req[i].own))
            set_add(&taken, req[i].own);
    /* a model under its own name first: nothing else can have that name */
    for (size_t i = 0; i < n; i++) {
        if (!req[i].model || strcmp(req[i].model, req[i].own) || set_count(&taken, req[i].own))
            continue;
        if (!(res[i].gguf = strdup(req[i].own)))
            goto out;
        set_add(&taken, res[i].gguf);
    }
    for (size_t i = 0; i < n; i++)
        if (req[i].model && !res[i].gguf)
            set_add(&wanted, req[i].model);
    for (size_t i = 0; i < n; i++) {
        if (!req[i].model || res[i].gguf || set_count(&taken, req[i].model) || set_count(&wanted, req[i].model) != 1)
            continue;
        if (!(res[i].gguf = strdup(req[i].model)))
            goto out;
        set_add(&taken, res[i].gguf);
    }
    /* the clashing ones, in a second pass so that none takes a name a unique one was granted */
    for (size_t i = 0; i < n; i++) {
        if (!req[i].model || res[i].gguf || !strcmp(req[i].model, req[i].own))
            continue;
        char *alt = concat(req[i].own, strlen(req[i].own), ".gguf");
        if (!alt)
            goto out;
        if (set_count(&taken, alt)) {
            free(alt);
            continue;
        }
        res[i].gguf = alt;
        set_add(&taken, alt);
    }
    /* derived names: a shown entry or a model name wins over them; two models never derive the
     * same base because their names differ and end in ".gguf" */
    for (size_t i = 0; i < n; i++) {
        if (!res[i].gguf)
            continue;
        size_t len = strlen(res[i].gguf);
        size_t base = len >= 5 && !strcmp(res[i].gguf + len - 5, ".gguf") ? len - 5 : len;
        char *t = concat(res[i].gguf, base, ".tensors");
        char *m = concat(res[i].gguf, base, ".meta");
        if (!t || !m) {
            free(t);
            free(m);
            goto out;
        }
        if (set_count(&taken, t)) {
            free(t);
        } else {
            res[i].tensors = t;
            set_add(&taken, t);
        }
        if (set_count(&taken, m)) {
            free(m);
        } else {
            res[i].meta = m;
            set_add(&taken, m);
        }
    }
    rc = 0;
out:
    if (rc)
        fs_names_free(res, n);
    set_free(&wanted);
    set_free(&taken);
    return rc;
}
