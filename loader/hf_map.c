/* config.json and the stored tensor list -> the presented GGUF header (keys and tensor infos),
 * as convert_hf_to_gguf.py's Model / LlamaModel / Qwen2Model do. See docs/conversion.md. */
#include "hf_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfs_ggml.h"

/* ---------------------------------------------------------------- shared helpers */

int mfs_hf_note(struct mfs_hf_map *map, const char *fmt, ...)
{
    char **n = realloc(map->notes, (map->n_notes + 1) * sizeof *n);
    if (!n)
        return -ENOMEM;
    map->notes = n;
    va_list ap;
    va_start(ap, fmt);
    int rc = vasprintf(&map->notes[map->n_notes], fmt, ap);
    va_end(ap);
    if (rc < 0)
        return -ENOMEM;
    map->n_notes++;
    return 0;
}

int mfs_hf_json(const struct mfs_hf_input *in, const struct mfs_hf_blob *b, json_object **out, mfs_err *err)
{
    *out = NULL;
    if (!b->data)
        return 0;
    if (b->len > MFS_HF_MAX_JSON || memchr(b->data, '\0', b->len)) {
        mfs_err_set(err, "%s: %s: %s", in->dir, b->name,
                    b->len > MFS_HF_MAX_JSON ? "too large for a JSON file modelfs reads" : "holds a NUL byte: not JSON");
        return -EINVAL;
    }
    json_tokener *tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
    if (!tok)
        return -ENOMEM;
    json_tokener_set_flags(tok, JSON_TOKENER_ALLOW_TRAILING_CHARS);
    json_object *o = json_tokener_parse_ex(tok, b->data, (int)b->len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (o || jerr == json_tokener_success) {
        for (size_t i = end; i < b->len; i++) {
            char c = b->data[i];
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                jerr = json_tokener_error_parse_unexpected;
                end = i;
                break;
            }
        }
        if (jerr == json_tokener_success) {
            *out = o;
            return 0;
        }
    }
    json_object_put(o);
    size_t line = 1, col = 1;
    for (size_t i = 0; i < end && i < b->len; i++, col++)
        if (b->data[i] == '\n')
            line++, col = 0;
    if (jerr == json_tokener_continue)
        mfs_err_set(err, "%s: %s: JSON ends early (line %zu)", in->dir, b->name, line);
    else
        mfs_err_set(err, "%s: %s: JSON syntax error at line %zu, column %zu: %s", in->dir, b->name, line, col,
                    json_tokener_error_desc(jerr));
    return -EINVAL;
}

void mfs_hf_map_free(struct mfs_hf_map *map)
{
    if (!map)
        return;
    if (map->out) {
        for (uint64_t i = 0; map->g && i < mfs_gguf_n_tensors(map->g); i++) {
            free(map->out[i].in);
            free(map->out[i].bytes);
        }
    }
    free(map->out);
    mfs_gguf_free(map->g);
    for (size_t i = 0; i < map->n_notes; i++)
        free(map->notes[i]);
    free(map->notes);
    free(map->arch_class);
    memset(map, 0, sizeof *map);
}

/* ---------------------------------------------------------------- config values */

/* hparams.get(key): true if present (*v may be NULL for a JSON null). */
static bool cfg_has(json_object *cfg, const char *key, json_object **v)
{
    return json_object_object_get_ex(cfg, key, v);
}

/* Model.find_hparam: the value of the first key present (NULL if none, or if it is null). */
static json_object *find_hparam(json_object *cfg, const char *const *keys, const char **which)
{
    for (; *keys; keys++) {
        json_object *v;
        if (cfg_has(cfg, *keys, &v)) {
            *which = *keys;
            return v;
        }
    }
    return NULL;
}

static void short_json(json_object *v, char *buf, size_t cap)
{
    const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
    size_t n = strlen(s);
    if (n >= cap - 4) {
        memcpy(buf, s, cap - 4);
        strcpy(buf + cap - 4, "...");
    } else {
        memcpy(buf, s, n + 1);
    }
}

/* A config value that does not fit its key: an error for an architecture we convert (convert
 * would stop too), a note otherwise (the snapshot is for inspection only). */
static int bad_value(struct mfs_hf_ctx *x, const char *from, json_object *v, const char *want)
{
    char buf[64];
    short_json(v, buf, sizeof buf);
    if (x->map->arch != MFS_HF_UNKNOWN) {
        mfs_err_set(x->err, "%s: config.json: %s = %s is not %s", x->in->dir, from, buf, want);
        return -EINVAL;
    }
    return mfs_hf_note(x->map, "config.json: %s = %s is not %s: left out", from, buf, want);
}

/* A Python int (JSON integer or boolean). */
static bool json_pyint(json_object *v, int64_t *out)
{
    if (json_object_get_type(v) == json_type_boolean) {
        *out = json_object_get_boolean(v);
        return true;
    }
    if (json_object_get_type(v) != json_type_int)
        return false;
    *out = json_object_get_int64(v);
    return true;
}

static int put_u32(struct mfs_hf_ctx *x, const char *key, const char *from, json_object *v)
{
    int64_t i;
    if (!json_pyint(v, &i) || i < 0 || i > UINT32_MAX)
        return bad_value(x, from, v, "an integer from 0 to 4294967295");
    return mfs_gguf_set_u32(x->map->g, key, (uint32_t)i);
}

static bool json_number(json_object *v, double *out)
{
    int64_t i;
    if (json_pyint(v, &i)) {
        *out = (double)i;
        return true;
    }
    if (json_object_get_type(v) != json_type_double)
        return false;
    *out = json_object_get_double(v);
    return true;
}

static int put_f32(struct mfs_hf_ctx *x, const char *key, const char *from, json_object *v)
{
    double d;
    if (!json_number(v, &d) || (isfinite(d) && !isfinite((float)d)))
        return bad_value(x, from, v, "a float32 number");
    return mfs_gguf_set_f32(x->map->g, key, (float)d);
}

static const char *arch_name(const struct mfs_hf_map *map)
{
    return map->arch == MFS_HF_LLAMA ? "llama" : map->arch == MFS_HF_QWEN2 ? "qwen2" : NULL;
}

/* "{arch}.suffix" */
static const char *akey(struct mfs_hf_ctx *x, const char *suffix, char *buf, size_t cap)
{
    struct mfs_str a = {0, ""};
    mfs_gguf_get_str(x->map->g, "general.architecture", &a);
    snprintf(buf, cap, "%.*s.%s", (int)(a.len < 64 ? a.len : 64), a.p, suffix);
    return buf;
}

/* ---------------------------------------------------------------- general.name and size label */

/* gguf-py's Metadata.id_to_title, on ASCII: '-' to ' ', words split on whitespace; an all-lowercase
 * word that is not a version (v1.2) and does not start with a digit gets str.title(). */
static char *id_to_title(const char *s)
{
    size_t n = strlen(s);
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '-' || (*p >= '\t' && *p <= '\r'))
            p++;
        if (!*p)
            break;
        const char *w = p;
        while (*p && *p != ' ' && *p != '-' && !(*p >= '\t' && *p <= '\r'))
            p++;
        size_t wl = (size_t)(p - w);
        bool cased = false, upper = false;
        for (size_t i = 0; i < wl; i++) {
            cased |= (w[i] >= 'a' && w[i] <= 'z') || (w[i] >= 'A' && w[i] <= 'Z');
            upper |= w[i] >= 'A' && w[i] <= 'Z';
        }
        bool version = wl >= 2 && w[0] == 'v' && w[1] >= '0' && w[1] <= '9';
        for (size_t i = 1; version && i < wl; i++) {
            if (w[i] == '.' && i + 1 < wl && w[i + 1] >= '0' && w[i + 1] <= '9' && w[i - 1] != '.')
                continue;
            version = w[i] >= '0' && w[i] <= '9';
        }
        bool digit = w[0] >= '0' && w[0] <= '9';
        if (o != out)
            *o++ = ' ';
        bool title = cased && !upper && !version && !digit, prev_letter = false;
        for (size_t i = 0; i < wl; i++) {
            char c = w[i];
            bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
            if (title && letter)
                c = prev_letter ? (char)(c | 0x20) : (char)(c & ~0x20);
            prev_letter = letter;
            *o++ = c;
        }
    }
    *o = '\0';
    return out;
}

/* gguf-py's model_weight_count_rounded_notation(n, min_digits=2). */
static void size_label(uint64_t n, char *buf, size_t cap)
{
    double x;
    const char *s;
    if (n > 1e12)
        x = (double)n * 1e-12, s = "T";
    else if (n > 1e9)
        x = (double)n * 1e-9, s = "B";
    else if (n > 1e6)
        x = (double)n * 1e-6, s = "M";
    else
        x = (double)n * 1e-3, s = "K";
    double r = nearbyint(x); /* Python's round(): halves to even */
    int digits = 0;
    for (; r >= 1; r = floor(r / 10))
        digits++;
    snprintf(buf, cap, "%.*f%s", digits < 2 ? 2 - digits : 0, x, s);
}

/* general.name (and general.organization) as Metadata.load falls back to: config.json's
 * _name_or_path if it looks like a model id ("org/name", at most one '/'), else the directory's
 * name; title-cased (get_model_id_components: an id with a space is a name as is). */
static int put_name(struct mfs_hf_ctx *x)
{
    json_object *v;
    const char *id = x->in->base;
    if (cfg_has(x->config, "_name_or_path", &v) && json_object_get_type(v) == json_type_string) {
        const char *s = json_object_get_string(v), *slash = strchr(s, '/');
        if (!slash || !strchr(slash + 1, '/'))
            id = s;
    }
    char *name, *org = NULL;
    if (strchr(id, ' ')) {
        name = strdup(id);
    } else if (strchr(id, '/')) {
        const char *full = strchr(id, '/') + 1;
        if (full - 1 > id && id[0] != '.') {
            char *o = strndup(id, (size_t)(full - 1 - id));
            org = o ? id_to_title(o) : NULL;
            free(o);
            if (!org)
                return -ENOMEM;
        }
        name = id_to_title(full);
    } else {
        name = id_to_title(id);
    }
    int rc = name ? mfs_gguf_set_str(x->map->g, "general.name", name) : -ENOMEM;
    if (rc == 0 && org)
        rc = mfs_gguf_set_str(x->map->g, "general.organization", org);
    free(name);
    free(org);
    return rc;
}

/* ---------------------------------------------------------------- tensor names */

static const struct {
    const char *hf, *gguf;
    bool llama_only;
} k_block_names[] = {
    {"input_layernorm", "attn_norm", false},
    {"self_attn.q_proj", "attn_q", false},
    {"self_attn.k_proj", "attn_k", false},
    {"self_attn.v_proj", "attn_v", false},
    {"self_attn.o_proj", "attn_output", false},
    {"post_attention_layernorm", "ffn_norm", false},
    {"mlp.gate_proj", "ffn_gate", false},
    {"mlp.up_proj", "ffn_up", false},
    {"mlp.down_proj", "ffn_down", false},
    {"self_attn.q_proj_no_perm", "attn_q", true},
    {"self_attn.k_proj_no_perm", "attn_k", true},
};

static const struct {
    const char *hf, *gguf;
} k_global_names[] = {
    {"model.embed_tokens", "token_embd"},
    {"model.norm", "output_norm"},
    {"lm_head", "output"},
};

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* TensorNameMap.get_name with try_suffixes (".weight", ".bias"): the GGUF name into `out`, or
 * false if the name has none. */
static bool map_name(const char *name, enum mfs_hf_arch arch, uint64_t n_blocks, char *out, size_t cap)
{
    static const char *const suffixes[] = {"", ".weight", ".bias"};
    for (size_t k = 0; k < 3; k++) {
        size_t n = strlen(name), sl = strlen(suffixes[k]);
        if (!ends_with(name, suffixes[k]) || n == sl)
            continue;
        size_t base = n - sl;
        for (size_t i = 0; i < sizeof k_global_names / sizeof k_global_names[0]; i++)
            if (strlen(k_global_names[i].hf) == base && memcmp(name, k_global_names[i].hf, base) == 0)
                return (size_t)snprintf(out, cap, "%s%s", k_global_names[i].gguf, suffixes[k]) < cap;
        static const char prefix[] = "model.layers.";
        if (strncmp(name, prefix, sizeof prefix - 1) != 0)
            continue;
        const char *p = name + sizeof prefix - 1, *q = p;
        uint64_t bid = 0;
        while (*q >= '0' && *q <= '9' && q - p < 10)
            bid = bid * 10 + (uint64_t)(*q++ - '0');
        if (q == p || *q != '.' || (q - p > 1 && *p == '0') || bid >= n_blocks)
            continue;
        q++;
        size_t rest = base - (size_t)(q - name);
        for (size_t i = 0; i < sizeof k_block_names / sizeof k_block_names[0]; i++) {
            if (k_block_names[i].llama_only && arch != MFS_HF_LLAMA)
                continue;
            if (strlen(k_block_names[i].hf) == rest && memcmp(q, k_block_names[i].hf, rest) == 0)
                return (size_t)snprintf(out, cap, "blk.%" PRIu64 ".%s%s", bid, k_block_names[i].gguf, suffixes[k]) < cap;
        }
    }
    return false;
}

/* prepare_tensors: tensors llama.cpp wants in F32 whatever the file type. */
static bool forced_f32(const char *gguf_name, uint32_t n_dims)
{
    if (n_dims <= 1 || ends_with(gguf_name, "_norm.weight") || !ends_with(gguf_name, ".weight"))
        return true;
    const char *p = strrchr(gguf_name, '.');
    size_t n = (size_t)(p - gguf_name);
    /* blk.N.ffn_gate_inp.weight (FFN_GATE_INP), the only one of convert's list in llama/qwen2 */
    return n > 13 && memcmp(gguf_name + n - 13, ".ffn_gate_inp", 13) == 0;
}

/* The type a stored tensor is presented as: F32 when forced (floats widened, F64 rounded),
 * else the stored type (see mfs_st_ggml_type). -1: not presentable. */
static int out_type(uint32_t dtype, bool f32)
{
    if (f32 && (dtype == MFS_ST_F32 || dtype == MFS_ST_F16 || dtype == MFS_ST_BF16 || dtype == MFS_ST_F64 ||
                dtype == MFS_ST_F8_E4M3 || dtype == MFS_ST_F8_E5M2))
        return MFS_GGML_F32;
    return mfs_st_ggml_type(dtype);
}

/* ---------------------------------------------------------------- llama3 rope factors */

/* LlamaModel.generate_extra_tensors for rope_scaling.rope_type "llama3": the rope_freqs tensor,
 * computed in float32 like the torch code (pow in double, rounded). */
static int llama3_rope_freqs(struct mfs_hf_ctx *x, json_object *rs, float **out, uint64_t *n_out)
{
    json_object *cfg = x->config, *v;
    double base = 10000.0, factor = 8.0, low = 1.0, high = 4.0, old = 8192;
    if (cfg_has(cfg, "rope_theta", &v) && !json_number(v, &base))
        return bad_value(x, "rope_theta", v, "a number");
    int64_t dim = 0, hidden = 0, heads = 0;
    if (cfg_has(cfg, "head_dim", &v)) {
        if (!json_pyint(v, &dim))
            return bad_value(x, "head_dim", v, "an integer");
    } else if (cfg_has(cfg, "hidden_size", &v) && json_pyint(v, &hidden) && cfg_has(cfg, "num_attention_heads", &v) &&
               json_pyint(v, &heads) && heads > 0) {
        dim = hidden / heads - (hidden % heads < 0); /* Python's floor division */
    }
    if (dim <= 0 || dim > 65536) {
        mfs_err_set(x->err, "%s: config.json: llama3 rope scaling needs a head size from 1 to 65536", x->in->dir);
        return -EINVAL;
    }
    if ((json_object_object_get_ex(rs, "factor", &v) && !json_number(v, &factor)) ||
        (json_object_object_get_ex(rs, "low_freq_factor", &v) && !json_number(v, &low)) ||
        (json_object_object_get_ex(rs, "high_freq_factor", &v) && !json_number(v, &high)) ||
        (cfg_has(cfg, "original_max_position_embeddings", &v) && !json_number(v, &old))) {
        mfs_err_set(x->err, "%s: config.json: rope_scaling (llama3) has a value that is not a number", x->in->dir);
        return -EINVAL;
    }
    double low_wl = old / low, high_wl = old / high;
    if (!(low_wl != high_wl) || !isfinite(low_wl) || !isfinite(high_wl)) {
        mfs_err_set(x->err, "%s: config.json: rope_scaling (llama3): low_freq_factor equals high_freq_factor", x->in->dir);
        return -EINVAL;
    }
    uint64_t n = (uint64_t)(dim + 1) / 2;
    float *f = malloc(n * sizeof *f);
    if (!f)
        return -ENOMEM;
    const float two_pi = (float)(2 * M_PI), fold = (float)old, flow = (float)low, fdiff = (float)(high - low),
                ffactor = (float)factor;
    for (uint64_t i = 0; i < n; i++) {
        float e = (float)(2 * i) / (float)dim;
        float freq = 1.0f / (float)pow(base, (double)e);
        float wavelen = (1.0f / freq) * two_pi; /* torch: 2 * pi / freq is reciprocal(freq) * 2pi */
        if (wavelen < (float)high_wl) {
            f[i] = 1.0f;
        } else if (wavelen > (float)low_wl) {
            f[i] = ffactor;
        } else {
            float smooth = ((1.0f / wavelen) * fold - flow) / fdiff;
            f[i] = 1.0f / ((1.0f - smooth) / ffactor + smooth);
        }
    }
    *out = f;
    *n_out = n;
    return 0;
}

/* ---------------------------------------------------------------- the mapping */

static int add_out(struct mfs_hf_ctx *x, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne,
                   struct mfs_hf_out o)
{
    mfs_gguf *g = x->map->g;
    uint64_t n = mfs_gguf_n_tensors(g);
    int rc = mfs_gguf_add_tensor(g, name, type, n_dims, ne);
    if (rc) {
        free(o.in);
        free(o.bytes);
        if (rc == -ENOMEM)
            return rc;
        mfs_err_set(x->err, "%s: tensor '%s' cannot be presented (%s)", x->in->dir, name,
                    mfs_gguf_find_tensor(g, name) >= 0 ? "two tensors get this name" : "bad shape or type");
        return -EINVAL;
    }
    struct mfs_hf_out *out = realloc(x->map->out, (n + 1) * sizeof *out);
    if (!out) {
        free(o.in);
        free(o.bytes);
        return -ENOMEM;
    }
    x->map->out = out;
    out[n] = o;
    return 0;
}

static int map_tensors(struct mfs_hf_ctx *x, uint64_t n_blocks, uint64_t n_head, uint64_t n_head_kv)
{
    const struct mfs_hf_input *in = x->in;
    enum mfs_hf_arch arch = x->map->arch;
    uint64_t unmapped = 0;
    for (size_t i = 0; i < in->n_tensors; i++) {
        const struct mfs_hf_tensor *t = &in->tensors[i];
        char name[512];
        bool known = arch != MFS_HF_UNKNOWN;
        if (known && (ends_with(t->name, ".attention.masked_bias") || ends_with(t->name, ".attention.bias") ||
                      ends_with(t->name, ".rotary_emb.inv_freq")))
            continue; /* "we don't need these" */
        if (!known || !map_name(t->name, arch, n_blocks, name, sizeof name)) {
            if (known && unmapped++ < 8) {
                int rc = mfs_hf_note(x->map, "tensor '%s' has no llama.cpp name: kept as is (llama.cpp will refuse it)",
                                     t->name);
                if (rc)
                    return rc;
            }
            if (strlen(t->name) >= sizeof name) {
                mfs_err_set(x->err, "%s: a tensor name of %zu bytes is too long", in->dir, strlen(t->name));
                return -EINVAL;
            }
            strcpy(name, t->name);
        }
        struct mfs_st_tensor st = {.n_dims = t->n_dims};
        memcpy(st.shape, t->shape, sizeof st.shape);
        int64_t ne[4];
        uint32_t nd = mfs_st_ggml_shape(&st, ne);
        int type = out_type(t->dtype, known && forced_f32(name, t->n_dims));
        if (type < 0) {
            mfs_err_set(x->err, "%s: tensor '%s': dtype %s has no GGUF type", in->dir, t->name, mfs_st_dtype_name(t->dtype));
            return -EINVAL;
        }
        struct mfs_hf_out o = {.in = malloc(sizeof *o.in), .n_in = 1, .type = (uint32_t)type};
        if (!o.in)
            return -ENOMEM;
        o.in[0] = i;
        if (arch == MFS_HF_LLAMA && (ends_with(t->name, "q_proj.weight") || ends_with(t->name, "q_proj.bias")))
            o.n_head = n_head;
        if (arch == MFS_HF_LLAMA && (ends_with(t->name, "k_proj.weight") || ends_with(t->name, "k_proj.bias")))
            o.n_head = n_head_kv;
        if (o.n_head) {
            uint64_t rows = t->n_dims ? t->shape[0] : 1;
            if (rows % o.n_head || (rows / o.n_head) % 2) {
                free(o.in);
                mfs_err_set(x->err, "%s: tensor '%s': %" PRIu64 " rows cannot be permuted for %" PRIu64
                            " attention heads", in->dir, t->name, rows, o.n_head);
                return -EINVAL;
            }
        }
        int rc = add_out(x, name, (uint32_t)type, nd, ne, o);
        if (rc)
            return rc;
    }
    if (unmapped > 8)
        return mfs_hf_note(x->map, "%" PRIu64 " tensors in all have no llama.cpp name", unmapped);
    return 0;
}

/* general.file_type: the presented type of most 2-D weight bytes (F32 0, F16 1, BF16 32). */
static int put_file_type(struct mfs_hf_ctx *x)
{
    uint64_t bytes[3] = {0};
    static const uint32_t types[3] = {MFS_GGML_F32, MFS_GGML_F16, MFS_GGML_BF16}, ftype[3] = {0, 1, 32};
    const mfs_gguf *g = x->map->g;
    for (uint64_t i = 0; i < mfs_gguf_n_tensors(g); i++) {
        const struct mfs_gguf_tensor *t = mfs_gguf_tensor(g, i);
        for (int k = 0; k < 3 && t->n_dims >= 2; k++)
            if (t->type == types[k])
                bytes[k] += t->size;
    }
    int best = bytes[1] >= bytes[0] && bytes[1] >= bytes[2] ? 1 : bytes[2] > bytes[0] ? 2 : 0;
    if (!bytes[0] && !bytes[1] && !bytes[2])
        return 0;
    return mfs_gguf_set_u32(x->map->g, "general.file_type", ftype[best]);
}

/* Model.set_gguf_parameters, then LlamaModel's / Qwen2Model's additions. */
static int put_params(struct mfs_hf_ctx *x)
{
    json_object *cfg = x->config, *v;
    const char *which;
    char kb[128];
    int rc = 0;
    static const char *const blocks[] = {"n_layers", "num_hidden_layers", "n_layer", "num_layers", NULL};
    static const char *const ctx[] = {"max_position_embeddings", "n_ctx", NULL};
    static const char *const embd[] = {"hidden_size", "n_embd", NULL};
    static const char *const ff[] = {"intermediate_size", "n_inner", NULL};
    static const char *const head[] = {"num_attention_heads", "n_head", NULL};
    static const char *const norm_eps[] = {"layer_norm_eps", "layer_norm_epsilon", "norm_epsilon", NULL};
    if ((v = find_hparam(cfg, blocks, &which)))
        rc = put_u32(x, akey(x, "block_count", kb, sizeof kb), which, v);
    if (!rc && (v = find_hparam(cfg, ctx, &which)))
        rc = put_u32(x, akey(x, "context_length", kb, sizeof kb), which, v);
    if (!rc && (v = find_hparam(cfg, embd, &which)))
        rc = put_u32(x, akey(x, "embedding_length", kb, sizeof kb), which, v);
    if (!rc && (v = find_hparam(cfg, ff, &which)))
        rc = put_u32(x, akey(x, "feed_forward_length", kb, sizeof kb), which, v);
    if (!rc && (v = find_hparam(cfg, head, &which)))
        rc = put_u32(x, akey(x, "attention.head_count", kb, sizeof kb), which, v);
    if (!rc && cfg_has(cfg, "num_key_value_heads", &v) && v)
        rc = put_u32(x, akey(x, "attention.head_count_kv", kb, sizeof kb), "num_key_value_heads", v);
    if (!rc && cfg_has(cfg, "rope_theta", &v) && v)
        rc = put_f32(x, akey(x, "rope.freq_base", kb, sizeof kb), "rope_theta", v);
    if (!rc && cfg_has(cfg, "rms_norm_eps", &v) && v)
        rc = put_f32(x, akey(x, "attention.layer_norm_rms_epsilon", kb, sizeof kb), "rms_norm_eps", v);
    if (!rc && (v = find_hparam(cfg, norm_eps, &which)))
        rc = put_f32(x, akey(x, "attention.layer_norm_epsilon", kb, sizeof kb), which, v);
    if (!rc && cfg_has(cfg, "num_local_experts", &v) && v)
        rc = put_u32(x, akey(x, "expert_count", kb, sizeof kb), "num_local_experts", v);
    if (!rc && cfg_has(cfg, "num_experts_per_tok", &v) && v)
        rc = put_u32(x, akey(x, "expert_used_count", kb, sizeof kb), "num_experts_per_tok", v);
    if (!rc && cfg_has(cfg, "head_dim", &v) && v) {
        rc = put_u32(x, akey(x, "attention.key_length", kb, sizeof kb), "head_dim", v);
        if (!rc)
            rc = put_u32(x, akey(x, "attention.value_length", kb, sizeof kb), "head_dim", v);
    }
    if (!rc)
        rc = put_file_type(x);
    if (rc)
        return rc;

    json_object *rs = NULL;
    cfg_has(cfg, "rope_scaling", &rs);
    json_object *rs_type = NULL, *rs_factor = NULL;
    bool scaled = rs && json_object_get_type(rs) == json_type_object && json_object_object_get_ex(rs, "factor", &rs_factor);
    if (scaled)
        json_object_object_get_ex(rs, "type", &rs_type);
    const char *stype = rs_type && json_object_get_type(rs_type) == json_type_string ? json_object_get_string(rs_type) : "";

    if (x->map->arch == MFS_HF_LLAMA) {
        if (!cfg_has(cfg, "vocab_size", &v)) {
            mfs_err_set(x->err, "%s: config.json: no vocab_size", x->in->dir);
            return -EINVAL;
        }
        if ((rc = put_u32(x, "llama.vocab_size", "vocab_size", v)))
            return rc;
        json_object *hd;
        if (cfg_has(cfg, "head_dim", &hd)) {
            rc = put_u32(x, "llama.rope.dimension_count", "head_dim", hd);
        } else {
            json_object *hs = NULL, *nh = NULL;
            int64_t a, b;
            cfg_has(cfg, "hidden_size", &hs);
            cfg_has(cfg, "num_attention_heads", &nh);
            if (!hs || !nh || !json_pyint(hs, &a) || !json_pyint(nh, &b) || b <= 0 || a < 0 || a / b > UINT32_MAX) {
                mfs_err_set(x->err, "%s: config.json: the rope dimension needs hidden_size and num_attention_heads",
                            x->in->dir);
                return -EINVAL;
            }
            rc = mfs_gguf_set_u32(x->map->g, "llama.rope.dimension_count", (uint32_t)(a / b));
        }
        if (!rc && scaled && strcmp(stype, "linear") == 0) {
            rc = mfs_gguf_set_str(x->map->g, "llama.rope.scaling.type", "linear");
            if (!rc)
                rc = put_f32(x, "llama.rope.scaling.factor", "rope_scaling.factor", rs_factor);
        }
    } else if (x->map->arch == MFS_HF_QWEN2 && scaled && strcmp(stype, "yarn") == 0) {
        json_object *orig;
        if (!json_object_object_get_ex(rs, "original_max_position_embeddings", &orig) || !orig) {
            mfs_err_set(x->err, "%s: config.json: yarn rope_scaling has no original_max_position_embeddings", x->in->dir);
            return -EINVAL;
        }
        rc = mfs_gguf_set_str(x->map->g, "qwen2.rope.scaling.type", "yarn");
        if (!rc)
            rc = put_f32(x, "qwen2.rope.scaling.factor", "rope_scaling.factor", rs_factor);
        if (!rc)
            rc = put_u32(x, "qwen2.rope.scaling.original_context_length", "rope_scaling.original_max_position_embeddings",
                         orig);
    }
    return rc;
}

static const struct {
    const char *cls;
    enum mfs_hf_arch arch;
} k_classes[] = {
    {"LlamaForCausalLM", MFS_HF_LLAMA},
    {"LLaMAForCausalLM", MFS_HF_LLAMA},
    {"MistralForCausalLM", MFS_HF_LLAMA},
    {"Qwen2ForCausalLM", MFS_HF_QWEN2},
};

/* Does config.json's model_type look like a name (for general.architecture of an unknown model)? */
static bool plain_word(const char *s)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-' || *s == '.'))
            return false;
    return true;
}

int mfs_hf_map(const struct mfs_hf_input *in, struct mfs_hf_map *map, mfs_err *err)
{
    memset(map, 0, sizeof *map);
    struct mfs_hf_ctx x = {.in = in, .map = map, .err = err};
    int rc = mfs_hf_json(in, &in->config, &x.config, err);
    if (rc)
        return rc;
    if (!x.config || json_object_get_type(x.config) != json_type_object) {
        mfs_err_set(err, "%s: config.json: %s", in->dir, x.config ? "not a JSON object" : "missing");
        rc = -EINVAL;
        goto out;
    }
    rc = -ENOMEM;
    if (!(map->g = mfs_gguf_new()))
        goto out;

    /* the architecture: config.json architectures[0] */
    json_object *v, *model_type = NULL;
    if (json_object_object_get_ex(x.config, "architectures", &v) && json_object_get_type(v) == json_type_array &&
        json_object_array_length(v) > 0 &&
        json_object_get_type(json_object_array_get_idx(v, 0)) == json_type_string &&
        !(map->arch_class = strdup(json_object_get_string(json_object_array_get_idx(v, 0)))))
        goto out;
    for (size_t i = 0; map->arch_class && i < sizeof k_classes / sizeof k_classes[0]; i++)
        if (strcmp(map->arch_class, k_classes[i].cls) == 0)
            map->arch = k_classes[i].arch;
    const char *arch = arch_name(map);
    if (!arch) {
        json_object_object_get_ex(x.config, "model_type", &model_type);
        arch = model_type && json_object_get_type(model_type) == json_type_string &&
                       plain_word(json_object_get_string(model_type))
                   ? json_object_get_string(model_type)
                   : "unknown";
        if ((rc = mfs_hf_note(map, "architecture %s is not converted for llama.cpp: tensors keep their Hugging Face "
                                   "names and types; llama.cpp will not run this snapshot",
                              map->arch_class ? map->arch_class : "(none in config.json)")))
            goto out;
    }

    /* block count and heads, needed by the tensor mapping */
    static const char *const blocks[] = {"n_layers", "num_hidden_layers", "n_layer", "num_layers", NULL};
    const char *which;
    int64_t n_blocks = 0, n_head = 0, n_head_kv = 0;
    json_object *bv = find_hparam(x.config, blocks, &which);
    if (map->arch != MFS_HF_UNKNOWN) {
        if (!bv || !json_pyint(bv, &n_blocks) || n_blocks < 0 || n_blocks > UINT32_MAX) {
            mfs_err_set(err, "%s: config.json: no valid block count (num_hidden_layers)", in->dir);
            rc = -EINVAL;
            goto out;
        }
    }
    if (map->arch == MFS_HF_LLAMA) {
        json_object *h = NULL, *kv = NULL;
        if (!cfg_has(x.config, "num_attention_heads", &h) || !json_pyint(h, &n_head) || n_head <= 0 ||
            n_head > UINT32_MAX) {
            mfs_err_set(err, "%s: config.json: num_attention_heads is missing or not a positive integer", in->dir);
            rc = -EINVAL;
            goto out;
        }
        n_head_kv = n_head;
        if (cfg_has(x.config, "num_key_value_heads", &kv) && kv &&
            (!json_pyint(kv, &n_head_kv) || n_head_kv <= 0 || n_head_kv > UINT32_MAX)) {
            mfs_err_set(err, "%s: config.json: num_key_value_heads is not a positive integer", in->dir);
            rc = -EINVAL;
            goto out;
        }
    }

    /* tensors first (convert counts them for the size label) */
    json_object *rs = NULL;
    if (map->arch == MFS_HF_LLAMA && cfg_has(x.config, "rope_scaling", &rs) && rs &&
        json_object_get_type(rs) == json_type_object && json_object_object_length(rs) > 0 &&
        json_object_object_get_ex(rs, "rope_type", &v) && json_object_get_type(v) == json_type_string &&
        strcasecmp(json_object_get_string(v), "llama3") == 0) {
        float *f = NULL;
        uint64_t n = 0;
        if ((rc = llama3_rope_freqs(&x, rs, &f, &n)) || !f)
            goto out;
        int64_t ne[4] = {(int64_t)n, 1, 1, 1};
        if ((rc = add_out(&x, "rope_freqs.weight", MFS_GGML_F32, 1, ne, (struct mfs_hf_out){.bytes = (uint8_t *)f})))
            goto out;
    }
    if ((rc = map_tensors(&x, (uint64_t)n_blocks, (uint64_t)n_head, (uint64_t)n_head_kv)))
        goto out;

    /* keys, in convert's order */
    uint64_t params = 0;
    for (uint64_t i = 0; i < mfs_gguf_n_tensors(map->g); i++) {
        const struct mfs_gguf_tensor *t = mfs_gguf_tensor(map->g, i);
        params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    }
    char label[32];
    size_label(params, label, sizeof label);
    if ((rc = mfs_gguf_set_str(map->g, "general.architecture", arch)) ||
        (rc = mfs_gguf_set_str(map->g, "general.type", "model")) || (rc = put_name(&x)) ||
        (params && (rc = mfs_gguf_set_str(map->g, "general.size_label", label))) || (rc = put_params(&x)) ||
        (rc = mfs_hf_vocab(&x)) || (rc = mfs_gguf_set_u32(map->g, "general.quantization_version", 2)))
        goto out;
out:
    if (rc == -ENOMEM)
        mfs_err_set(err, "%s: out of memory", in->dir);
    json_object_put(x.config);
    return rc;
}
