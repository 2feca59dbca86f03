/* Hugging Face checkpoint directories: which files make the checkpoint, the shards and their
 * index, and the snapshot plan. The mapping itself is in hf_map.c and hf_tokenizer.c. */
#include "hf_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert.h"
#include "model_internal.h"

#define MAX_SHARDS 100000

struct shard {
    char *file;  /* as found in the directory (maybe .zst) */
    char *plain; /* without .zst: the name the index uses, and the sort key */
    mfs_source *src;
    mfs_st *st;
};

struct hf_dir {
    mfs_model *m;
    const char *dir;
    mfs_err *err;
    struct shard *shards;
    size_t n_shards;
    struct mfs_hf_input in;
    char *blobs[7];
    struct mfs_hf_tensor *tensors;
    struct mfs_hf_map map;
};

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Read DIR/NAME whole: 0 with b->data = NULL if it does not exist. Watched for changes. */
static int read_blob(struct hf_dir *h, const char *name, size_t cap, struct mfs_hf_blob *b, char **owned)
{
    b->name = name;
    b->data = NULL;
    b->len = 0;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", h->dir, name) >= sizeof path) {
        mfs_err_set(h->err, "%s: path too long", h->dir);
        return -ENAMETOOLONG;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        int rc = -errno;
        mfs_err_set(h->err, "%s: %s: %s", h->dir, name, strerror(errno));
        return rc;
    }
    struct stat st;
    int rc = 0;
    char *data = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > cap) {
        mfs_err_set(h->err, "%s: %s: %s", h->dir, name,
                    !S_ISREG(st.st_mode) ? "not a regular file" : "too large for modelfs to read");
        rc = -EINVAL;
    } else if (!(data = malloc((size_t)st.st_size + 1))) {
        mfs_err_set(h->err, "%s: %s: out of memory", h->dir, name);
        rc = -ENOMEM;
    } else {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t n = pread(fd, data + got, (size_t)st.st_size - got, (off_t)got);
            if (n <= 0) {
                mfs_err_set(h->err, "%s: %s: %s", h->dir, name, n < 0 ? strerror(errno) : "shorter than its size");
                rc = n < 0 ? -errno : -EIO;
                break;
            }
            got += (size_t)n;
        }
        data[got] = '\0';
    }
    close(fd);
    if (rc == 0)
        rc = mfs_model_watch_file(h->m, path);
    if (rc) {
        free(data);
        return rc;
    }
    *owned = data;
    b->data = data;
    b->len = (size_t)st.st_size;
    return 0;
}

static int by_plain(const void *a, const void *b)
{
    return strcmp(((const struct shard *)a)->plain, ((const struct shard *)b)->plain);
}

/* model*.safetensors[.zst], sorted by name as convert's get_model_part_names does (a plain file
 * wins over a .zst of the same name). */
static int list_shards(struct hf_dir *h)
{
    DIR *d = opendir(h->dir);
    if (!d) {
        int rc = -errno;
        mfs_err_set(h->err, "%s: %s", h->dir, strerror(errno));
        return rc;
    }
    size_t cap = 0;
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        const char *n = e->d_name;
        bool zst = has_suffix(n, ".safetensors.zst");
        if (strncmp(n, "model", 5) != 0 || (!zst && !has_suffix(n, ".safetensors")))
            continue;
        if (h->n_shards == MAX_SHARDS) {
            mfs_err_set(h->err, "%s: more than %d safetensors files", h->dir, MAX_SHARDS);
            rc = -EINVAL;
            break;
        }
        if (h->n_shards == cap) {
            cap = cap ? cap * 2 : 8;
            struct shard *s = realloc(h->shards, cap * sizeof *s);
            if (!s) {
                rc = -ENOMEM;
                break;
            }
            h->shards = s;
        }
        struct shard *s = &h->shards[h->n_shards];
        memset(s, 0, sizeof *s);
        s->file = strdup(n);
        s->plain = strndup(n, strlen(n) - (zst ? 4 : 0));
        h->n_shards++;
        if (!s->file || !s->plain)
            rc = -ENOMEM;
    }
    closedir(d);
    if (rc)
        return rc;
    qsort(h->shards, h->n_shards, sizeof *h->shards, by_plain);
    size_t o = 0;
    for (size_t i = 0; i < h->n_shards; i++) {
        if (o && strcmp(h->shards[o - 1].plain, h->shards[i].plain) == 0) {
            struct shard *keep = &h->shards[o - 1], *drop = &h->shards[i];
            if (has_suffix(keep->file, ".zst")) { /* keep the plain one */
                struct shard t = *keep;
                *keep = *drop;
                *drop = t;
            }
            mfs_model_add_note(h->m, "%s and %s: using %s", keep->file, drop->file, keep->file);
            free(drop->file);
            free(drop->plain);
            continue;
        }
        h->shards[o++] = h->shards[i];
    }
    h->n_shards = o;
    if (o == 0) {
        mfs_err_set(h->err, "%s: no model*.safetensors files", h->dir);
        return -EINVAL;
    }
    return 0;
}

static int find_shard(const struct hf_dir *h, const char *plain)
{
    for (size_t i = 0; i < h->n_shards; i++)
        if (strcmp(h->shards[i].plain, plain) == 0)
            return (int)i;
    return -1;
}

/* Every shard the index names, or every K of model-K-of-N, must be there. */
static int check_shards(struct hf_dir *h, json_object *index)
{
    json_object *wm = NULL;
    if (index) {
        if (!json_object_object_get_ex(index, "weight_map", &wm) || json_object_get_type(wm) != json_type_object) {
            mfs_err_set(h->err, "%s: model.safetensors.index.json: no weight_map object", h->dir);
            return -EINVAL;
        }
        json_object_object_foreach(wm, name, file)
        {
            (void)name;
            if (json_object_get_type(file) != json_type_string || strchr(json_object_get_string(file), '/')) {
                mfs_err_set(h->err, "%s: model.safetensors.index.json: weight_map value for '%.80s' is not a file name",
                            h->dir, name);
                return -EINVAL;
            }
            if (find_shard(h, json_object_get_string(file)) < 0) {
                mfs_err_set(h->err, "%s: shard %.200s (named in model.safetensors.index.json) is missing", h->dir,
                            json_object_get_string(file));
                return -ENOENT;
            }
        }
        return 0;
    }
    for (size_t i = 0; i < h->n_shards; i++) {
        unsigned k, n;
        int end = 0;
        if (sscanf(h->shards[i].plain, "model-%5u-of-%5u.safetensors%n", &k, &n, &end) != 2 ||
            h->shards[i].plain[end] || n == 0)
            continue;
        for (unsigned j = 1; j <= n && j <= MAX_SHARDS; j++) {
            char want[64];
            snprintf(want, sizeof want, "model-%05u-of-%05u.safetensors", j, n);
            if (find_shard(h, want) < 0) {
                mfs_err_set(h->err, "%s: shard %s is missing (%s is one of %u)", h->dir, want, h->shards[i].file, n);
                return -ENOENT;
            }
        }
    }
    return 0;
}

static int by_name(const void *a, const void *b)
{
    const struct mfs_hf_tensor *x = a, *y = b;
    if (x->shard != y->shard)
        return x->shard < y->shard ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int open_shards(struct hf_dir *h, const struct mfs_model_opts *opts, json_object *index)
{
    size_t total = 0;
    for (size_t i = 0; i < h->n_shards; i++) {
        struct shard *s = &h->shards[i];
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", h->dir, s->file) >= sizeof path) {
            mfs_err_set(h->err, "%s: path too long", h->dir);
            return -ENAMETOOLONG;
        }
        int rc = mfs_source_open(path, &(struct mfs_open_opts){.engine = opts->engine}, &s->src, h->err);
        if (rc == 0)
            rc = mfs_st_parse(s->src, path, &s->st, h->err);
        if (rc == 0)
            rc = mfs_model_watch_file(h->m, path);
        if (rc == 0 && mfs_source_info(s->src)->n_frames)
            rc = mfs_model_add_note(h->m, "%s: %s, %" PRIu64 " frames", s->file, mfs_source_kind_name(mfs_source_info(s->src)->kind),
                                    mfs_source_info(s->src)->n_frames);
        if (rc)
            return rc;
        total += mfs_st_n_tensors(s->st);
    }
    if (!(h->tensors = calloc(total ? total : 1, sizeof *h->tensors)))
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < h->n_shards; i++) {
        const mfs_st *st = h->shards[i].st;
        for (uint64_t j = 0; j < mfs_st_n_tensors(st); j++) {
            const struct mfs_st_tensor *t = mfs_st_tensor(st, j);
            struct mfs_hf_tensor *o = &h->tensors[k++];
            o->name = t->name;
            o->dtype = t->dtype;
            o->n_dims = t->n_dims;
            memcpy(o->shape, t->shape, sizeof o->shape);
            o->shard = i;
            o->off = t->off;
        }
    }
    /* safe_open().keys() is sorted; shards in file name order */
    qsort(h->tensors, total, sizeof *h->tensors, by_name);
    h->in.tensors = h->tensors;
    h->in.n_tensors = total;

    /* names: unique across shards, and the same set as the index's (convert checks both) */
    for (size_t i = 0; i < h->n_shards; i++) {
        for (uint64_t j = 0; j < mfs_st_n_tensors(h->shards[i].st); j++) {
            const char *name = mfs_st_tensor(h->shards[i].st, j)->name;
            for (size_t o = i + 1; o < h->n_shards; o++) {
                if (mfs_st_find(h->shards[o].st, name) >= 0) {
                    mfs_err_set(h->err, "%s: tensor '%.80s' is in both %s and %s", h->dir, name, h->shards[i].file,
                                h->shards[o].file);
                    return -EINVAL;
                }
            }
            json_object *wm, *f;
            if (index && json_object_object_get_ex(index, "weight_map", &wm) && !json_object_object_get_ex(wm, name, &f)) {
                mfs_err_set(h->err, "%s: tensor '%.80s' of %s is not in model.safetensors.index.json", h->dir, name,
                            h->shards[i].file);
                return -EINVAL;
            }
        }
    }
    json_object *wm;
    if (index && json_object_object_get_ex(index, "weight_map", &wm)) {
        json_object_object_foreach(wm, name, file)
        {
            int s = find_shard(h, json_object_get_string(file));
            if (s < 0 || mfs_st_find(h->shards[s].st, name) < 0) {
                mfs_err_set(h->err, "%s: tensor '%.80s' is not in %s as model.safetensors.index.json says", h->dir, name,
                            json_object_get_string(file));
                return -EINVAL;
            }
        }
    }
    return 0;
}

static int hf_tensor(void *ctx, mfs_model *m, uint64_t i, const struct mfs_gguf_tensor *gt)
{
    const struct hf_dir *h = ctx;
    const struct mfs_hf_out *o = &h->map.out[i];
    if (o->bytes)
        return mfs_model_add_bytes(m, o->bytes, gt->size);
    for (size_t k = 0; k < o->n_in; k++) {
        const struct mfs_hf_tensor *t = &h->tensors[o->in[k]];
        struct mfs_conv c = {.src = h->shards[t->shard].src, .off = t->off, .dtype = t->dtype, .type = o->type,
                             .rows = t->n_dims ? t->shape[0] : 1, .row_elems = 1, .n_head = o->n_head};
        for (uint32_t d = 1; d < t->n_dims; d++)
            c.row_elems *= t->shape[d];
        int rc = mfs_conv_add(m, &c);
        if (rc)
            return rc;
    }
    return 0;
}

static void hf_dir_free(struct hf_dir *h)
{
    for (size_t i = 0; i < h->n_shards; i++) {
        free(h->shards[i].file);
        free(h->shards[i].plain);
        mfs_source_unref(h->shards[i].src);
        mfs_st_free(h->shards[i].st);
    }
    free(h->shards);
    for (size_t i = 0; i < sizeof h->blobs / sizeof h->blobs[0]; i++)
        free(h->blobs[i]);
    free(h->tensors);
    mfs_hf_map_free(&h->map);
}

int mfs_plan_hf_dir(mfs_model *m, const char *dir, const struct mfs_model_opts *opts, mfs_err *err)
{
    struct hf_dir h = {.m = m, .dir = dir, .err = err};
    const char *slash = strrchr(dir, '/');
    while (slash && slash[1] == '\0' && slash > dir) { /* "dir/" */
        const char *p = slash - 1;
        while (p > dir && *p != '/')
            p--;
        slash = *p == '/' ? p : NULL;
    }
    char base[256];
    const char *b = slash ? slash + 1 : dir;
    size_t bl = strcspn(b, "/");
    snprintf(base, sizeof base, "%.*s", (int)(bl < sizeof base ? bl : sizeof base - 1), b);
    h.in.dir = dir;
    h.in.base = base;
    struct mfs_hf_blob index = {0};
    json_object *jindex = NULL;
    int rc;
    if ((rc = read_blob(&h, "config.json", MFS_HF_MAX_SMALL_JSON, &h.in.config, &h.blobs[0])) ||
        (rc = read_blob(&h, "tokenizer_config.json", MFS_HF_MAX_JSON, &h.in.tokenizer_config, &h.blobs[1])) ||
        (rc = read_blob(&h, "tokenizer.json", MFS_HF_MAX_JSON, &h.in.tokenizer_json, &h.blobs[2])) ||
        (rc = read_blob(&h, "tokenizer.model", MFS_HF_MAX_JSON, &h.in.tokenizer_model, &h.blobs[3])) ||
        (rc = read_blob(&h, "added_tokens.json", MFS_HF_MAX_SMALL_JSON, &h.in.added_tokens, &h.blobs[4])) ||
        (rc = read_blob(&h, "generation_config.json", MFS_HF_MAX_SMALL_JSON, &h.in.generation_config, &h.blobs[5])) ||
        (rc = read_blob(&h, "model.safetensors.index.json", MFS_HF_MAX_JSON, &index, &h.blobs[6])))
        goto out;
    if (!h.in.config.data) {
        mfs_err_set(err, "%s: no config.json: not a Hugging Face checkpoint", dir);
        rc = -EINVAL;
        goto out;
    }
    if ((rc = mfs_hf_json(&h.in, &index, &jindex, err)))
        goto out;
    if (jindex && json_object_get_type(jindex) != json_type_object) {
        mfs_err_set(err, "%s: model.safetensors.index.json: not a JSON object", dir);
        rc = -EINVAL;
        goto out;
    }
    if ((rc = list_shards(&h)) || (rc = check_shards(&h, jindex)) || (rc = open_shards(&h, opts, jindex)) ||
        (rc = mfs_hf_map(&h.in, &h.map, err)))
        goto out;
    for (size_t i = 0; i < h.map.n_notes; i++)
        if ((rc = mfs_model_add_note(m, "%s", h.map.notes[i])))
            goto out;
    bool runnable = h.map.arch != MFS_HF_UNKNOWN && mfs_gguf_find_key(h.map.g, "tokenizer.ggml.tokens") >= 0;
    mfs_gguf *g = h.map.g;
    h.map.g = NULL; /* mfs_plan_dense owns it now; h.map.out stays ours */
    uint64_t n_out = mfs_gguf_n_tensors(g);
    rc = mfs_plan_dense(m, g, opts->align ? opts->align : 4096, hf_tensor, &h, err);
    for (uint64_t i = 0; i < n_out; i++) { /* mfs_hf_map_free needs g for the count */
        free(h.map.out[i].in);
        free(h.map.out[i].bytes);
    }
    free(h.map.out);
    h.map.out = NULL;
    if (rc)
        goto out;
    rc = mfs_model_set_format(m, "Hugging Face checkpoint (%s, %zu shard%s)",
                              h.map.arch_class ? h.map.arch_class : "no architecture", h.n_shards, h.n_shards > 1 ? "s" : "");
    if (rc == 0 && !runnable)
        mfs_log(MFS_LOG_WARN, "%s: llama.cpp will not run this snapshot (%s); it is shown for inspection", dir,
                h.map.arch == MFS_HF_UNKNOWN ? "architecture not converted" : "no tokenizer");
out:
    if (rc == -ENOMEM)
        mfs_err_set(err, "%s: out of memory", dir);
    json_object_put(jindex);
    hf_dir_free(&h);
    return rc;
}
