/* Loading: read the hyperparameters, find every tensor, check its shape and type. */
#include "mfs_infer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"

struct loader {
    const mfs_map *map;
    const mfs_gguf *g;
    const char *path;
    const char *arch;
    mfs_err *err;
};

static int get_u(struct loader *l, const char *suffix, bool required, uint64_t def, int *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", l->arch, suffix);
    uint64_t v;
    int rc = mfs_gguf_get_uint(l->g, key, &v);
    if (rc == -ENOENT && !required) {
        v = def;
    } else if (rc) {
        mfs_err_set(l->err, "%s: %s key %s", l->path, rc == -ENOENT ? "missing" : "wrong type for", key);
        return -EINVAL;
    }
    if (v > (1u << 30)) {
        mfs_err_set(l->err, "%s: %s = %" PRIu64 " is out of range", l->path, key, v);
        return -EINVAL;
    }
    *out = (int)v;
    return 0;
}

static int get_f(struct loader *l, const char *suffix, double def, float *out)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", l->arch, suffix);
    double v;
    int rc = mfs_gguf_get_float(l->g, key, &v);
    if (rc == -ENOENT) {
        v = def;
    } else if (rc) {
        mfs_err_set(l->err, "%s: wrong type for key %s", l->path, key);
        return -EINVAL;
    }
    *out = (float)v;
    return 0;
}

/* Find `name` with shape (cols, rows) (rows = 0: a vector of cols). Missing and optional: zeroed. */
static int get_wt(struct loader *l, const char *name, int cols, int rows, bool optional, struct mfs_wt *w)
{
    memset(w, 0, sizeof *w);
    struct mfs_map_tensor t;
    if (mfs_map_find(l->map, name, &t) != 0) {
        if (optional)
            return 0;
        mfs_err_set(l->err, "%s: missing tensor %s", l->path, name);
        return -EINVAL;
    }
    const struct mfs_gguf_tensor *ti = t.info;
    bool vec = rows == 0;
    if (ti->ne[0] != cols || ti->ne[1] != (vec ? 1 : rows) || ti->ne[2] != 1 || ti->ne[3] != 1) {
        mfs_err_set(l->err, "%s: tensor %s has shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                            "], expected [%d, %d]", l->path, name, ti->ne[0], ti->ne[1], ti->ne[2], ti->ne[3],
                    cols, vec ? 1 : rows);
        return -EINVAL;
    }
    if (vec ? ti->type != MFS_GGML_F32 : !mfs_kernel_type_ok(ti->type)) {
        const char *tn = mfs_ggml_type_name(ti->type);
        mfs_err_set(l->err, "%s: tensor %s has type %s, which the runner does not support%s", l->path, name,
                    tn ? tn : "?", vec ? " for vectors (F32 only)" : " (F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K)");
        return -EINVAL;
    }
    w->data = t.data;
    w->type = ti->type;
    w->cols = cols;
    w->rows = vec ? 1 : rows;
    w->row_bytes = (size_t)(ti->size / (uint64_t)w->rows);
    return 0;
}

int mfs_llm_load(const char *path, unsigned map_flags, mfs_llm **out, mfs_err *err)
{
    mfs_llm *m = calloc(1, sizeof *m);
    if (!m) {
        mfs_err_set(err, "%s: out of memory", path);
        return -ENOMEM;
    }
    int rc = mfs_map_open(path, map_flags, &m->map, err);
    if (rc)
        goto fail;
    struct loader l = {.map = m->map, .g = mfs_map_gguf(m->map), .path = path, .err = err};
    struct mfs_llm_info *h = &m->info;
    struct mfs_str arch;
    rc = mfs_gguf_get_str(l.g, "general.architecture", &arch);
    if (rc) {
        mfs_err_set(err, "%s: no general.architecture key: not a model", path);
        rc = -EINVAL;
        goto fail;
    }
    if (strcmp(arch.p, "llama") == 0) {
        h->arch = "llama";
    } else if (strcmp(arch.p, "qwen2") == 0) {
        h->arch = "qwen2";
        h->rope_neox = true;
    } else {
        mfs_err_set(err, "%s: architecture '%.64s' is not supported (only llama and qwen2)", path, arch.p);
        rc = -ENOTSUP;
        goto fail;
    }
    l.arch = h->arch;
    if ((rc = get_u(&l, "embedding_length", true, 0, &h->n_embd)) || (rc = get_u(&l, "block_count", true, 0, &h->n_layer)) ||
        (rc = get_u(&l, "feed_forward_length", true, 0, &h->n_ff)) ||
        (rc = get_u(&l, "attention.head_count", true, 0, &h->n_head)) ||
        (rc = get_u(&l, "attention.head_count_kv", false, (uint64_t)h->n_head, &h->n_head_kv)) ||
        (rc = get_u(&l, "context_length", false, 2048, &h->n_ctx_train)) ||
        (rc = get_f(&l, "rope.freq_base", 10000.0, &h->rope_theta)) ||
        (rc = get_f(&l, "attention.layer_norm_rms_epsilon", 1e-5, &h->norm_eps)))
        goto fail;
    /* caps far above any published model keep every product below in int range */
    if (h->n_embd <= 0 || h->n_layer <= 0 || h->n_ff <= 0 || h->n_head <= 0 || h->n_head_kv <= 0 ||
        h->n_embd > (1 << 17) || h->n_layer > (1 << 12) || h->n_ff > (1 << 20) || h->n_head > (1 << 12) ||
        h->n_head_kv > h->n_head || h->n_head % h->n_head_kv != 0 || h->n_embd % h->n_head != 0) {
        mfs_err_set(err, "%s: inconsistent hyperparameters (embd %d, layers %d, ff %d, heads %d, kv heads %d)", path,
                    h->n_embd, h->n_layer, h->n_ff, h->n_head, h->n_head_kv);
        rc = -EINVAL;
        goto fail;
    }
    if ((rc = get_u(&l, "attention.key_length", false, (uint64_t)(h->n_embd / h->n_head), &h->head_dim)))
        goto fail;
    int vlen;
    if ((rc = get_u(&l, "attention.value_length", false, (uint64_t)h->head_dim, &vlen)) ||
        (rc = get_u(&l, "rope.dimension_count", false, (uint64_t)h->head_dim, &h->n_rot)))
        goto fail;
    if (vlen != h->head_dim || h->head_dim <= 0 || h->head_dim > (1 << 12) || h->head_dim % 2 || h->n_rot <= 0 ||
        h->n_rot > h->head_dim ||
        h->n_rot % 2) {
        mfs_err_set(err, "%s: unsupported head sizes (key %d, value %d, rope dims %d)", path, h->head_dim, vlen,
                    h->n_rot);
        rc = -EINVAL;
        goto fail;
    }
    h->rope_freq_scale = 1.0f;
    char key[128];
    struct mfs_str st;
    snprintf(key, sizeof key, "%s.rope.scaling.type", h->arch);
    if (mfs_gguf_get_str(l.g, key, &st) == 0 && strcmp(st.p, "none") != 0) {
        if (strcmp(st.p, "linear") != 0) {
            mfs_err_set(err, "%s: rope scaling '%.32s' is not supported (none, linear, llama3 factors)", path, st.p);
            rc = -ENOTSUP;
            goto fail;
        }
        float factor;
        if ((rc = get_f(&l, "rope.scaling.factor", 1.0, &factor)))
            goto fail;
        if (factor > 0)
            h->rope_freq_scale = 1.0f / factor;
    }

    int n_embd = h->n_embd, q_dim = h->n_head * h->head_dim, kv_dim = h->n_head_kv * h->head_dim;
    struct mfs_map_tensor te;
    if (mfs_map_find(m->map, "token_embd.weight", &te) != 0) {
        mfs_err_set(err, "%s: missing tensor token_embd.weight", path);
        rc = -EINVAL;
        goto fail;
    }
    if (te.info->ne[1] <= 0 || te.info->ne[1] > (1 << 24)) {
        mfs_err_set(err, "%s: token_embd.weight has %" PRId64 " rows", path, te.info->ne[1]);
        rc = -EINVAL;
        goto fail;
    }
    h->n_vocab = (int)te.info->ne[1];
    if ((rc = get_wt(&l, "token_embd.weight", n_embd, h->n_vocab, false, &m->tok_embd)) ||
        (rc = get_wt(&l, "output_norm.weight", n_embd, 0, false, &m->out_norm)) ||
        (rc = get_wt(&l, "output.weight", n_embd, h->n_vocab, true, &m->output)) ||
        (rc = get_wt(&l, "rope_freqs.weight", h->n_rot / 2, 0, true, &m->rope_freqs)))
        goto fail;
    if (!m->output.data) {
        m->output = m->tok_embd;
        h->tied_output = true;
    }
    h->has_rope_freqs = m->rope_freqs.data != NULL;
    m->layers = calloc((size_t)h->n_layer, sizeof *m->layers);
    if (!m->layers) {
        mfs_err_set(err, "%s: out of memory", path);
        rc = -ENOMEM;
        goto fail;
    }
    bool qwen = h->rope_neox;
    for (int i = 0; i < h->n_layer; i++) {
        struct mfs_layer *L = &m->layers[i];
        char n[12][64];
        static const char *const names[12] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                                               "ffn_gate", "ffn_up", "ffn_down", "attn_q", "attn_k", "attn_v"};
        for (int j = 0; j < 12; j++)
            snprintf(n[j], sizeof n[j], "blk.%d.%s.%s", i, names[j], j < 9 ? "weight" : "bias");
        if ((rc = get_wt(&l, n[0], n_embd, 0, false, &L->attn_norm)) ||
            (rc = get_wt(&l, n[1], n_embd, q_dim, false, &L->wq)) ||
            (rc = get_wt(&l, n[2], n_embd, kv_dim, false, &L->wk)) ||
            (rc = get_wt(&l, n[3], n_embd, kv_dim, false, &L->wv)) ||
            (rc = get_wt(&l, n[4], q_dim, n_embd, false, &L->wo)) ||
            (rc = get_wt(&l, n[5], n_embd, 0, false, &L->ffn_norm)) ||
            (rc = get_wt(&l, n[6], n_embd, h->n_ff, false, &L->w_gate)) ||
            (rc = get_wt(&l, n[7], n_embd, h->n_ff, false, &L->w_up)) ||
            (rc = get_wt(&l, n[8], h->n_ff, n_embd, false, &L->w_down)) ||
            (rc = get_wt(&l, n[9], q_dim, 0, !qwen, &L->bq)) || (rc = get_wt(&l, n[10], kv_dim, 0, !qwen, &L->bk)) ||
            (rc = get_wt(&l, n[11], kv_dim, 0, !qwen, &L->bv)))
            goto fail;
        if (L->bq.data)
            h->has_qkv_bias = true;
        const struct mfs_wt *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t j = 0; j < sizeof mats / sizeof *mats; j++)
            h->weight_bytes += (uint64_t)mats[j]->row_bytes * (uint64_t)mats[j]->rows;
    }
    h->weight_bytes += (uint64_t)m->output.row_bytes * (uint64_t)m->output.rows;
    /* the most common type by bytes among the first layer's matrices */
    h->main_type = m->layers[0].w_gate.type;
    m->kern = mfs_kernels_best();
    *out = m;
    return 0;

fail:
    mfs_llm_free(m);
    return rc;
}

void mfs_llm_free(mfs_llm *m)
{
    if (!m)
        return;
    free(m->layers);
    mfs_map_close(m->map);
    free(m);
}

const struct mfs_llm_info *mfs_llm_info(const mfs_llm *m) { return &m->info; }
const mfs_map *mfs_llm_map(const mfs_llm *m) { return m->map; }
const char *mfs_llm_kernels(const mfs_llm *m) { return m->kern->name; }
