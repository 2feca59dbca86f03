/* The tokenizer of a Hugging Face checkpoint as tokenizer.* keys, as convert_hf_to_gguf.py's
 * set_vocab does: _set_vocab_sentencepiece (tokenizer.model), _set_vocab_gpt2 (tokenizer.json),
 * and gguf-py's SpecialVocab (special ids, add_bos/add_eos, chat template, merges).
 * See docs/conversion.md for the rules, including how tokenizer.ggml.pre is chosen. */
#include "hf_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfs_ggml.h"

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

/* ---------------------------------------------------------------- tokenizer.model (protobuf) */

struct pb {
    const uint8_t *p, *end;
};

static bool pb_varint(struct pb *b, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (b->p >= b->end)
            return false;
        uint8_t c = *b->p++;
        *v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80))
            return true;
    }
    return false; /* more than 10 bytes */
}

/* One field: its number, wire type, and for wire type 2 its bytes, for 0 its value. NULL, or what
 * is wrong. */
static const char *pb_field(struct pb *b, uint32_t *field, uint32_t *wire, struct pb *sub, uint64_t *val)
{
    uint64_t key;
    if (!pb_varint(b, &key))
        return "truncated or overlong field key";
    if (key >> 3 == 0 || key >> 3 > UINT32_MAX)
        return "field number out of range";
    *field = (uint32_t)(key >> 3);
    *wire = key & 7;
    switch (*wire) {
    case 0: return pb_varint(b, val) ? NULL : "truncated or overlong varint";
    case 1:
    case 5: {
        size_t n = *wire == 1 ? 8 : 4;
        if ((size_t)(b->end - b->p) < n)
            return "fixed-size value runs past the end";
        *val = 0;
        for (size_t i = 0; i < n; i++)
            *val |= (uint64_t)b->p[i] << (8 * i);
        b->p += n;
        return NULL;
    }
    case 2: {
        uint64_t n;
        if (!pb_varint(b, &n))
            return "truncated or overlong length";
        if (n > (uint64_t)(b->end - b->p))
            return "length runs past the end";
        sub->p = b->p;
        sub->end = b->p + n;
        b->p += n;
        return NULL;
    }
    default: return "unsupported wire type"; /* groups (3, 4) are not used by sentencepiece */
    }
}

int mfs_spm_parse(const uint8_t *data, size_t len, const char *name, struct mfs_spm_piece **pieces, size_t *n,
                  mfs_err *err)
{
    *pieces = NULL;
    *n = 0;
    struct pb b = {data, data + len};
    size_t cap = 0;
    while (b.p < b.end) {
        uint32_t field, wire;
        struct pb sub;
        uint64_t val;
        size_t at = (size_t)(b.p - data);
        const char *why = pb_field(&b, &field, &wire, &sub, &val);
        if (why) {
            mfs_err_set(err, "%s: malformed protobuf at byte %zu: %s", name, at, why);
            goto bad;
        }
        if (field != 1)
            continue; /* trainer_spec, normalizer_spec, ...: not needed */
        if (wire != 2) {
            mfs_err_set(err, "%s: piece at byte %zu is not a message", name, at);
            goto bad;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            struct mfs_spm_piece *p = realloc(*pieces, cap * sizeof *p);
            if (!p) {
                free(*pieces);
                *pieces = NULL;
                return -ENOMEM;
            }
            *pieces = p;
        }
        struct mfs_spm_piece pc = {.piece = "", .len = 0, .score = 0.0f, .type = TT_NORMAL};
        while (sub.p < sub.end) {
            uint32_t f2, w2;
            struct pb s2;
            uint64_t v2;
            size_t at2 = (size_t)(sub.p - data);
            const char *bad = pb_field(&sub, &f2, &w2, &s2, &v2);
            if (bad) {
                mfs_err_set(err, "%s: malformed piece %zu at byte %zu: %s", name, *n, at2, bad);
                goto bad;
            }
            if (f2 == 1 && w2 == 2) {
                pc.piece = (const char *)s2.p;
                pc.len = (size_t)(s2.end - s2.p);
            } else if (f2 == 2 && w2 == 5) {
                uint32_t bits = (uint32_t)v2;
                memcpy(&pc.score, &bits, 4);
            } else if (f2 == 3 && w2 == 0) {
                pc.type = v2 <= 6 ? (uint32_t)v2 : TT_NORMAL;
            } else if (f2 <= 3) {
                mfs_err_set(err, "%s: piece %zu: field %" PRIu32 " has wire type %" PRIu32, name, *n, f2, w2);
                goto bad;
            }
        }
        (*pieces)[(*n)++] = pc;
    }
    if (*n == 0) {
        mfs_err_set(err, "%s: no pieces: not a SentencePiece model", name);
        goto bad;
    }
    return 0;
bad:
    free(*pieces);
    *pieces = NULL;
    *n = 0;
    return -EINVAL;
}

/* ---------------------------------------------------------------- building the vocabulary */

/* Strings the vocabulary owns (replacements, [PADn]); freed together. */
struct pool {
    char **s;
    size_t n, cap;
};

static char *pool_add(struct pool *p, char *s)
{
    if (!s)
        return NULL;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        char **q = realloc(p->s, cap * sizeof *q);
        if (!q) {
            free(s);
            return NULL;
        }
        p->s = q;
        p->cap = cap;
    }
    return p->s[p->n++] = s;
}

static void pool_free(struct pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->s[i]);
    free(p->s);
}

struct vocab {
    uint64_t n;
    struct mfs_str *tok;
    float *score;
    int32_t *type;
    struct pool pool;
};

static void vocab_free(struct vocab *v)
{
    free(v->tok);
    free(v->score);
    free(v->type);
    pool_free(&v->pool);
}

/* n tokens, all "[PADi]" (tok[i].p NULL until write_arrays names them) with `score` and `type`. */
static int vocab_init(struct vocab *v, uint64_t n, float score, int32_t type)
{
    memset(v, 0, sizeof *v);
    if (n > MFS_HF_MAX_VOCAB || !(v->tok = calloc(n ? n : 1, sizeof *v->tok)) ||
        !(v->score = malloc((n ? n : 1) * sizeof *v->score)) || !(v->type = malloc((n ? n : 1) * sizeof *v->type)))
        return -ENOMEM;
    v->n = n;
    for (uint64_t i = 0; i < n; i++) {
        v->score[i] = score;
        v->type[i] = type;
    }
    return 0;
}

/* Name the missing tokens "[PADi]", as convert does, in one buffer. */
static int vocab_pad_names(struct vocab *v)
{
    uint64_t missing = 0;
    for (uint64_t i = 0; i < v->n; i++)
        missing += !v->tok[i].p;
    if (!missing)
        return 0;
    char *buf = pool_add(&v->pool, malloc(missing * 16)), *o = buf; /* "[PAD2097151]" + NUL fits */
    if (!buf)
        return -ENOMEM;
    for (uint64_t i = 0; i < v->n; i++) {
        if (v->tok[i].p)
            continue;
        int k = snprintf(o, 16, "[PAD%" PRIu64 "]", i);
        v->tok[i] = (struct mfs_str){(size_t)k, o};
        o += k + 1;
    }
    return 0;
}

/* token.replace("\u2581", " "): user-defined tokens are stored pre-normalized. */
static int set_user_defined(struct vocab *v, uint64_t id, const char *s, size_t len)
{
    char *o = malloc(len + 1);
    if (!pool_add(&v->pool, o))
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (i + 2 < len && (uint8_t)s[i] == 0xE2 && (uint8_t)s[i + 1] == 0x96 && (uint8_t)s[i + 2] == 0x81) {
            o[k++] = ' ';
            i += 2;
        } else {
            o[k++] = s[i];
        }
    }
    o[k] = '\0';
    v->tok[id] = (struct mfs_str){k, o};
    v->type[id] = TT_USER_DEFINED;
    return 0;
}

/* Model.does_token_look_special */
static bool looks_special(const char *s, size_t n)
{
    static const char *const words[] = {"<pad>", "<mask>", "<2mass>", "[@BOS@]"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strlen(words[i]) == n && memcmp(s, words[i], n) == 0)
            return true;
#define AFFIX(pre, post) (n >= sizeof pre - 1 + sizeof post - 1 && memcmp(s, pre, sizeof pre - 1) == 0 && \
                          memcmp(s + n - (sizeof post - 1), post, sizeof post - 1) == 0)
    return AFFIX("<|", "|>") || AFFIX("<\xEF\xBD\x9C", "\xEF\xBD\x9C>") || AFFIX("<unused", ">");
#undef AFFIX
}

/* A failure in the tokenizer: an error for an architecture we convert, a note otherwise (an
 * unknown architecture still mounts for inspection). */
static int tok_fail(struct mfs_hf_ctx *x, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int tok_fail(struct mfs_hf_ctx *x, int rc, const char *fmt, ...)
{
    char msg[MFS_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (rc == -ENOMEM)
        return rc;
    if (x->map->arch != MFS_HF_UNKNOWN) {
        mfs_err_set(x->err, "%s: %s", x->in->dir, msg);
        return rc;
    }
    return mfs_hf_note(x->map, "%s: no tokenizer keys", msg);
}

static bool json_int(json_object *v, int64_t *out)
{
    if (!v)
        return false;
    if (json_object_get_type(v) == json_type_boolean) {
        *out = json_object_get_boolean(v);
        return true;
    }
    if (json_object_get_type(v) != json_type_int)
        return false;
    *out = json_object_get_int64(v);
    return true;
}

static json_object *jget(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (o && json_object_get_type(o) == json_type_object)
        json_object_object_get_ex(o, key, &v);
    return v;
}

static bool jis(json_object *v, enum json_type t)
{
    return v && json_object_get_type(v) == t;
}

static bool jstr_eq(json_object *v, const char *s)
{
    return jis(v, json_type_string) && strcmp(json_object_get_string(v), s) == 0;
}

/* config.json vocab_size (hparams.get("vocab_size", default)). */
static int config_vocab_size(struct mfs_hf_ctx *x, uint64_t dflt, uint64_t *out)
{
    json_object *v;
    int64_t n;
    *out = dflt;
    if (!json_object_object_get_ex(x->config, "vocab_size", &v))
        return 0;
    if (!json_int(v, &n) || n < 0 || n > MFS_HF_MAX_VOCAB)
        return tok_fail(x, -EINVAL, "config.json: vocab_size is not an integer from 0 to %d", MFS_HF_MAX_VOCAB);
    *out = (uint64_t)n;
    return 0;
}

/* ---------------------------------------------------------------- SpecialVocab */

static const struct {
    const char *typ, *key; /* key NULL: gguf-py's writer has no handler (cls): skipped as convert does */
} k_special[] = {
    {"bos", "tokenizer.ggml.bos_token_id"},     {"eos", "tokenizer.ggml.eos_token_id"},
    {"unk", "tokenizer.ggml.unknown_token_id"}, {"sep", "tokenizer.ggml.seperator_token_id"},
    {"pad", "tokenizer.ggml.padding_token_id"}, {"cls", NULL},
    {"mask", "tokenizer.ggml.mask_token_id"},
};
#define N_SPECIAL (sizeof k_special / sizeof k_special[0])

struct special {
    int64_t id[N_SPECIAL];
    size_t order[N_SPECIAL], n_order; /* insertion order of the ids */
    int add[2];                        /* add_bos_token, add_eos_token: -1 unset */
    uint64_t n_vocab;                  /* 0: no range check */
};

static int set_special(struct mfs_hf_ctx *x, struct special *sp, size_t typ, json_object *v, const char *from)
{
    int64_t id;
    if (!json_int(v, &id))
        return 0;
    if (id < 0)
        return mfs_hf_note(x->map, "%s: %s token id %" PRId64 " is negative: left out", from, k_special[typ].typ, id);
    if (sp->n_vocab && (uint64_t)id >= sp->n_vocab)
        return mfs_hf_note(x->map, "%s: %s token id %" PRId64 " is not below the vocabulary size %" PRIu64 ": left out",
                           from, k_special[typ].typ, id, sp->n_vocab);
    if (sp->id[typ] >= 0)
        return 0;
    sp->id[typ] = id;
    sp->order[sp->n_order++] = typ;
    return 0;
}

/* SpecialVocab._load: tokenizer_config.json ({typ}_token looked up in tokenizer.json's
 * added_tokens, add_{typ}_token, chat_template), then config.json ({typ}_token_id); then ours:
 * generation_config.json's bos/eos_token_id if still unset. Writes merges (given), ids, add_*,
 * chat template. */
static int special_vocab(struct mfs_hf_ctx *x, json_object *tj, json_object *tc, json_object *gc, uint64_t n_vocab,
                         const struct mfs_str *merges, size_t n_merges)
{
    struct special sp = {.n_vocab = n_vocab, .add = {-1, -1}};
    for (size_t i = 0; i < N_SPECIAL; i++)
        sp.id[i] = -1;
    json_object *added = jget(tj, "added_tokens"), *chat = NULL;
    int rc = 0;
    if (jis(tc, json_type_object)) {
        chat = jget(tc, "chat_template");
        for (size_t t = 0; rc == 0 && t < N_SPECIAL; t++) {
            char key[32];
            snprintf(key, sizeof key, "add_%s_token", k_special[t].typ);
            json_object *a = jget(tc, key);
            if (t < 2 && jis(a, json_type_boolean))
                sp.add[t] = json_object_get_boolean(a);
            snprintf(key, sizeof key, "%s_token", k_special[t].typ);
            json_object *e = jget(tc, key);
            if (jis(e, json_type_object))
                e = jget(e, "content");
            if (!jis(e, json_type_string))
                continue;
            for (size_t k = 0; jis(added, json_type_array) && k < json_object_array_length(added); k++) {
                json_object *at = json_object_array_get_idx(added, k);
                json_object *c = jget(at, "content");
                if (jis(c, json_type_string) && json_object_get_string_len(c) == json_object_get_string_len(e) &&
                    memcmp(json_object_get_string(c), json_object_get_string(e), (size_t)json_object_get_string_len(e)) == 0) {
                    rc = set_special(x, &sp, t, jget(at, "id"), "tokenizer_config.json");
                    break;
                }
            }
        }
    }
    for (size_t t = 0; rc == 0 && t < N_SPECIAL; t++) {
        char key[32];
        snprintf(key, sizeof key, "%s_token_id", k_special[t].typ);
        rc = set_special(x, &sp, t, jget(x->config, key), "config.json");
    }
    for (size_t t = 0; rc == 0 && t < 2; t++) {
        char key[32];
        snprintf(key, sizeof key, "%s_token_id", k_special[t].typ);
        if (sp.id[t] < 0)
            rc = set_special(x, &sp, t, jget(gc, key), "generation_config.json");
    }
    mfs_gguf *g = x->map->g;
    if (rc == 0 && n_merges)
        rc = mfs_gguf_set_arr_str(g, "tokenizer.ggml.merges", merges, n_merges);
    for (size_t i = 0; rc == 0 && i < sp.n_order; i++) {
        size_t t = sp.order[i];
        if (k_special[t].key && sp.id[t] <= UINT32_MAX)
            rc = mfs_gguf_set_u32(g, k_special[t].key, (uint32_t)sp.id[t]);
    }
    if (rc == 0 && sp.add[0] >= 0)
        rc = mfs_gguf_set_bool(g, "tokenizer.ggml.add_bos_token", sp.add[0]);
    if (rc == 0 && sp.add[1] >= 0)
        rc = mfs_gguf_set_bool(g, "tokenizer.ggml.add_eos_token", sp.add[1]);
    if (rc || !chat)
        return rc;
    if (jis(chat, json_type_string))
        return mfs_gguf_set_strn(g, "tokenizer.chat_template", json_object_get_string(chat),
                                 (size_t)json_object_get_string_len(chat));
    if (!jis(chat, json_type_array))
        return mfs_hf_note(x->map, "tokenizer_config.json: chat_template is neither a string nor a list: left out");
    /* GGUFWriter.add_chat_template: named templates, their names, and "default" as the main one */
    size_t n = json_object_array_length(chat), n_names = 0;
    struct mfs_str *names = calloc(n ? n : 1, sizeof *names);
    char **owned = calloc(n ? n : 1, sizeof *owned);
    json_object *dflt = NULL;
    rc = names && owned ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_object *c = json_object_array_get_idx(chat, i), *nm = jget(c, "name"), *tpl = jget(c, "template");
        if (!jis(tpl, json_type_string))
            continue;
        const char *s = jis(nm, json_type_string) ? json_object_get_string(nm) : "";
        char *clean = strdup(s);
        if (!(owned[i] = clean)) {
            rc = -ENOMEM;
            break;
        }
        for (char *p = clean; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
                *p = '_';
        if (!*clean)
            continue;
        if (strcmp(clean, "default") == 0) {
            dflt = tpl;
            continue;
        }
        char key[320];
        if ((size_t)snprintf(key, sizeof key, "tokenizer.chat_template.%s", clean) >= sizeof key)
            continue;
        bool seen = false;
        for (size_t k = 0; k < n_names; k++)
            seen |= strcmp(names[k].p, clean) == 0;
        if (!seen)
            names[n_names++] = (struct mfs_str){strlen(clean), clean};
        rc = mfs_gguf_set_strn(g, key, json_object_get_string(tpl), (size_t)json_object_get_string_len(tpl));
    }
    if (rc == 0 && n_names)
        rc = mfs_gguf_set_arr_str(g, "tokenizer.chat_templates", names, n_names);
    if (rc == 0 && dflt)
        rc = mfs_gguf_set_strn(g, "tokenizer.chat_template", json_object_get_string(dflt),
                               (size_t)json_object_get_string_len(dflt));
    for (size_t i = 0; owned && i < n; i++)
        free(owned[i]);
    free(owned);
    free(names);
    return rc;
}

/* ---------------------------------------------------------------- SentencePiece */

static int write_arrays(struct mfs_hf_ctx *x, const char *model, const char *pre, struct vocab *v, bool scores)
{
    mfs_gguf *g = x->map->g;
    int rc = vocab_pad_names(v);
    if (rc == 0)
        rc = mfs_gguf_set_str(g, "tokenizer.ggml.model", model);
    if (rc == 0 && pre)
        rc = mfs_gguf_set_str(g, "tokenizer.ggml.pre", pre);
    if (rc == 0)
        rc = mfs_gguf_set_arr_str(g, "tokenizer.ggml.tokens", v->tok, v->n);
    if (rc == 0 && scores)
        rc = mfs_gguf_set_arr(g, "tokenizer.ggml.scores", MFS_GGUF_F32, v->score, v->n);
    if (rc == 0)
        rc = mfs_gguf_set_arr(g, "tokenizer.ggml.token_type", MFS_GGUF_I32, v->type, v->n);
    return rc;
}

/* _create_vocab_sentencepiece + _set_vocab_sentencepiece */
static int vocab_spm(struct mfs_hf_ctx *x, json_object *tj, json_object *tc, json_object *gc)
{
    const struct mfs_hf_blob *b = &x->in->tokenizer_model;
    struct mfs_spm_piece *pieces;
    size_t np;
    mfs_err perr = {{0}};
    int rc = mfs_spm_parse((const uint8_t *)b->data, b->len, b->name, &pieces, &np, &perr);
    if (rc)
        return tok_fail(x, rc, "%s", perr.msg);
    uint64_t n;
    struct vocab v;
    memset(&v, 0, sizeof v);
    json_object *added = NULL;
    if ((rc = config_vocab_size(x, np, &n)))
        goto out;
    if (np > n) {
        rc = tok_fail(x, -EINVAL, "tokenizer.model has %zu pieces, more than config.json's vocab_size %" PRIu64, np, n);
        goto out;
    }
    if ((rc = vocab_init(&v, n, -10000.0f, TT_UNUSED)))
        goto out;
    for (size_t i = 0; i < np; i++) {
        uint32_t t = pieces[i].type;
        v.tok[i] = (struct mfs_str){pieces[i].len, pieces[i].piece};
        v.score[i] = pieces[i].score;
        /* convert asks IsUnknown, IsControl, IsUnused, IsByte: USER_DEFINED pieces become NORMAL */
        v.type[i] = t == TT_UNKNOWN || t == TT_CONTROL || t == TT_UNUSED || t == TT_BYTE ? (int32_t)t : TT_NORMAL;
    }
    /* added_tokens.json: {"text": id} */
    if ((rc = mfs_hf_json(x->in, &x->in->added_tokens, &added, x->err)))
        goto out;
    if (jis(added, json_type_object)) {
        json_object_object_foreach(added, key, val)
        {
            int64_t id;
            if (!json_int(val, &id) || id < 0 || (uint64_t)id >= n)
                continue; /* convert: "ignore token: id is out of range" */
            char *s = pool_add(&v.pool, strdup(key));
            if (!s) {
                rc = -ENOMEM;
                goto out;
            }
            v.tok[id] = (struct mfs_str){strlen(s), s};
            v.score[id] = -1000.0f;
            v.type[id] = TT_USER_DEFINED;
        }
    }
    /* tokenizer_config.json added_tokens_decoder: {"id": {"content": ..., "special": ...}} */
    json_object *atd = jget(tc, "added_tokens_decoder");
    if (jis(atd, json_type_object)) {
        json_object_object_foreach(atd, key, val)
        {
            char *end;
            unsigned long long id = strtoull(key, &end, 10);
            json_object *content = jget(val, "content"), *special = jget(val, "special");
            if (*end || !*key || key[0] == '-' || !jis(content, json_type_string))
                continue;
            if (id >= n) {
                rc = tok_fail(x, -EINVAL, "tokenizer_config.json: added token id %llu is not below the vocabulary "
                              "size %" PRIu64, id, n);
                goto out;
            }
            const char *s = json_object_get_string(content);
            size_t sl = (size_t)json_object_get_string_len(content);
            bool sp = special && json_object_get_boolean(special);
            if (sp || looks_special(s, sl)) {
                v.tok[id] = (struct mfs_str){sl, s};
                v.type[id] = TT_CONTROL;
            } else if ((rc = set_user_defined(&v, id, s, sl))) {
                goto out;
            }
            v.score[id] = -1000.0f;
        }
    }
    if ((rc = write_arrays(x, "llama", "default", &v, true)) == 0)
        rc = special_vocab(x, tj, tc, gc, n, NULL, 0);
out:
    json_object_put(added);
    vocab_free(&v);
    free(pieces);
    return rc;
}

/* ---------------------------------------------------------------- BPE (tokenizer.json) */

/* The pre-tokenizer llama.cpp names, identified from tokenizer.json's structure (convert hashes a
 * tokenization instead, which needs the transformers package). NULL if not recognized. */
static const char k_re_llama3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                  "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char k_re_qwen2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                 "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char k_re_tekken[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?["
    "\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*["
    "\\r\\n]+|\\s+(?!\\S)|\\s+";

static bool is_bytelevel(json_object *p, bool use_regex)
{
    json_object *r = jget(p, "use_regex");
    bool re = !jis(r, json_type_boolean) || json_object_get_boolean(r);
    return jstr_eq(jget(p, "type"), "ByteLevel") && re == use_regex;
}

static const char *detect_pre(json_object *tj)
{
    json_object *pt = jget(tj, "pre_tokenizer");
    if (is_bytelevel(pt, true))
        return "gpt-2";
    json_object *seq = jget(pt, "pretokenizers");
    if (!jstr_eq(jget(pt, "type"), "Sequence") || !jis(seq, json_type_array))
        return NULL;
    size_t n = json_object_array_length(seq);
    json_object *a = n > 0 ? json_object_array_get_idx(seq, 0) : NULL, *b = n > 1 ? json_object_array_get_idx(seq, 1) : NULL;
    if (n == 1 && is_bytelevel(a, true))
        return "gpt-2";
    if (n != 2)
        return NULL;
    json_object *digits = jget(a, "individual_digits");
    if (jstr_eq(jget(a, "type"), "Digits") && jis(digits, json_type_boolean) && json_object_get_boolean(digits) &&
        is_bytelevel(b, true))
        return "starcoder";
    json_object *re = jget(jget(a, "pattern"), "Regex"), *inv = jget(a, "invert");
    if (!jstr_eq(jget(a, "type"), "Split") || !jstr_eq(jget(a, "behavior"), "Isolated") ||
        (inv && json_object_get_boolean(inv)) || !is_bytelevel(b, false) || !jis(re, json_type_string))
        return NULL;
    json_object *im = jget(jget(tj, "model"), "ignore_merges");
    bool ignore_merges = jis(im, json_type_boolean) && json_object_get_boolean(im);
    if (jstr_eq(re, k_re_llama3))
        return ignore_merges ? "llama-bpe" : "smaug-bpe";
    if (jstr_eq(re, k_re_qwen2))
        return "qwen2";
    if (jstr_eq(re, k_re_tekken))
        return "tekken";
    return NULL;
}

/* A set of strings (added tokens' contents), open addressing. */
struct strset {
    struct mfs_str *s;
    int64_t *id;
    size_t cap;
};

static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

/* Insert (keeping the first id of a content) or look up: the slot's id, -1 if absent on lookup. */
static int64_t strset_put(struct strset *ss, const char *p, size_t n, int64_t id, bool insert)
{
    for (size_t s = hash_bytes(p, n) & (ss->cap - 1);; s = (s + 1) & (ss->cap - 1)) {
        if (!ss->s[s].p) {
            if (!insert)
                return -1;
            ss->s[s] = (struct mfs_str){n, p};
            return ss->id[s] = id;
        }
        if (ss->s[s].len == n && memcmp(ss->s[s].p, p, n) == 0)
            return ss->id[s];
    }
}

/* _set_vocab_gpt2 / get_vocab_base */
static int vocab_bpe(struct mfs_hf_ctx *x, json_object *tj, json_object *tc, json_object *gc)
{
    json_object *model = jget(tj, "model"), *vocab = jget(model, "vocab"), *added = jget(tj, "added_tokens");
    if (!jstr_eq(jget(model, "type"), "BPE") || !jis(vocab, json_type_object))
        return tok_fail(x, -EINVAL, "tokenizer.json: not a BPE tokenizer with a vocab (model.type BPE)");
    size_t n_added = jis(added, json_type_array) ? json_object_array_length(added) : 0;
    json_object *atd = jget(tc, "added_tokens_decoder");
    size_t n_atd = jis(atd, json_type_object) ? (size_t)json_object_object_length(atd) : 0;
    uint64_t n;
    int rc = config_vocab_size(x, (uint64_t)json_object_object_length(vocab) + n_added, &n);
    if (rc)
        return rc;
    struct vocab v;
    struct strset ss = {0};
    struct mfs_str *merges = NULL;
    size_t n_merges = 0;
    uint8_t *special = NULL; /* per id: 0 not added, 1 added, 2 added and special */
    if ((rc = vocab_init(&v, n, 0.0f, TT_UNUSED)))
        goto out;
    for (ss.cap = 16; ss.cap < 2 * (n_added + n_atd + 1); ss.cap *= 2)
        ;
    rc = -ENOMEM;
    if (!(special = calloc(n ? n : 1, 1)) || !(ss.s = calloc(ss.cap, sizeof *ss.s)) || !(ss.id = calloc(ss.cap, sizeof *ss.id)))
        goto out;
    rc = 0;
    for (uint64_t i = 0; i < n; i++)
        v.type[i] = -1; /* not in the vocabulary yet: stays [PADi], UNUSED */
    json_object_object_foreach(vocab, key, val)
    {
        int64_t id;
        if (!json_int(val, &id) || id < 0 || (uint64_t)id >= n) {
            rc = tok_fail(x, -EINVAL, "tokenizer.json: token id of '%.40s' is not from 0 to vocab_size %" PRIu64 " - 1",
                          key, n);
            goto out;
        }
        v.tok[id] = (struct mfs_str){strlen(key), key};
        v.type[id] = TT_NORMAL;
    }
    /* added tokens: tokenizer.json's, then tokenizer_config.json's added_tokens_decoder for ids
     * not listed there (transformers merges both) */
    for (size_t k = 0; k < n_added; k++) {
        json_object *at = json_object_array_get_idx(added, k), *c = jget(at, "content"), *sp = jget(at, "special");
        int64_t id;
        if (!json_int(jget(at, "id"), &id) || id < 0 || (uint64_t)id >= n || !jis(c, json_type_string)) {
            rc = tok_fail(x, -EINVAL, "tokenizer.json: added token %zu: no string content, or its id is not below "
                          "vocab_size %" PRIu64, k, n);
            goto out;
        }
        v.tok[id] = (struct mfs_str){(size_t)json_object_get_string_len(c), json_object_get_string(c)};
        v.type[id] = TT_NORMAL;
        special[id] = sp && json_object_get_boolean(sp) ? 2 : 1;
        strset_put(&ss, v.tok[id].p, v.tok[id].len, id, true);
    }
    if (n_atd) {
        json_object_object_foreach(atd, akey, aval)
        {
            char *end;
            unsigned long long id = strtoull(akey, &end, 10);
            json_object *c = jget(aval, "content"), *sp = jget(aval, "special");
            if (*end || !*akey || akey[0] == '-' || id >= n || special[id] || !jis(c, json_type_string))
                continue;
            v.tok[id] = (struct mfs_str){(size_t)json_object_get_string_len(c), json_object_get_string(c)};
            v.type[id] = TT_NORMAL;
            special[id] = sp && json_object_get_boolean(sp) ? 2 : 1;
            strset_put(&ss, v.tok[id].p, v.tok[id].len, (int64_t)id, true);
        }
    }
    for (uint64_t i = 0; i < n; i++) {
        if (v.type[i] < 0) {
            v.type[i] = TT_UNUSED; /* named [PADi] by write_arrays */
            continue;
        }
        /* `token in added_vocab` goes by content */
        int64_t aid = special[i] ? (int64_t)i : strset_put(&ss, v.tok[i].p, v.tok[i].len, 0, false);
        if (aid < 0)
            continue; /* NORMAL */
        if (special[aid] == 2 || looks_special(v.tok[i].p, v.tok[i].len))
            v.type[i] = TT_CONTROL;
        else if ((rc = set_user_defined(&v, i, v.tok[i].p, v.tok[i].len)))
            goto out;
    }
    /* merges: strings, or pairs (transformers >= 4.45) joined with ' ', spaces in them as U+0120 */
    json_object *jm = jget(model, "merges");
    size_t nm = jis(jm, json_type_array) ? json_object_array_length(jm) : 0;
    if (nm && !(merges = calloc(nm, sizeof *merges))) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t k = 0; k < nm; k++) {
        json_object *e = json_object_array_get_idx(jm, k);
        if (jis(e, json_type_string)) {
            merges[n_merges++] = (struct mfs_str){(size_t)json_object_get_string_len(e), json_object_get_string(e)};
            continue;
        }
        json_object *p0 = jis(e, json_type_array) && json_object_array_length(e) == 2 ? json_object_array_get_idx(e, 0) : NULL;
        json_object *p1 = p0 ? json_object_array_get_idx(e, 1) : NULL;
        if (!jis(p0, json_type_string) || !jis(p1, json_type_string)) {
            rc = tok_fail(x, -EINVAL, "tokenizer.json: merge %zu is neither a string nor a pair of strings", k);
            goto out;
        }
        size_t l0 = (size_t)json_object_get_string_len(p0), l1 = (size_t)json_object_get_string_len(p1);
        char *s = pool_add(&v.pool, malloc(2 * (l0 + l1) + 2)), *o = s;
        if (!s) {
            rc = -ENOMEM;
            goto out;
        }
        for (int part = 0; part < 2; part++) {
            const char *src = json_object_get_string(part ? p1 : p0);
            size_t len = part ? l1 : l0;
            if (part)
                *o++ = ' ';
            for (size_t i = 0; i < len; i++) {
                if (src[i] == ' ') { /* chr(ord(' ') + 256) = U+0120 */
                    *o++ = (char)0xC4;
                    *o++ = (char)0xA0;
                } else {
                    *o++ = src[i];
                }
            }
        }
        *o = '\0';
        merges[n_merges++] = (struct mfs_str){(size_t)(o - s), s};
    }
    const char *pre = detect_pre(tj);
    if (!pre) {
        if ((rc = mfs_hf_note(x->map, "tokenizer.json: pre-tokenizer not recognized (see docs/conversion.md): "
                                      "tokenizer.ggml.pre left out, llama.cpp will use its default")))
            goto out;
    }
    if (!n_merges && (rc = mfs_hf_note(x->map, "tokenizer.json: no merges: llama.cpp cannot tokenize with this vocabulary")))
        goto out;
    if ((rc = write_arrays(x, "gpt2", pre, &v, false)) == 0)
        rc = special_vocab(x, tj, tc, gc, 0, merges, n_merges);
out:
    free(merges);
    free(special);
    free(ss.s);
    free(ss.id);
    vocab_free(&v);
    return rc;
}

/* ---------------------------------------------------------------- set_vocab */

int mfs_hf_vocab(struct mfs_hf_ctx *x)
{
    const struct mfs_hf_input *in = x->in;
    json_object *tj = NULL, *tc = NULL, *gc = NULL;
    mfs_err jerr = {{0}};
    int rc = mfs_hf_json(in, &in->tokenizer_config, &tc, &jerr);
    if (rc == 0)
        rc = mfs_hf_json(in, &in->generation_config, &gc, &jerr);
    if (rc == 0 && in->tokenizer_json.data)
        rc = mfs_hf_json(in, &in->tokenizer_json, &tj, &jerr);
    if (rc) {
        if (rc == -ENOMEM || x->map->arch != MFS_HF_UNKNOWN) {
            if (x->err)
                *x->err = jerr;
        } else {
            rc = mfs_hf_note(x->map, "%s: no tokenizer keys", jerr.msg);
        }
        goto out;
    }
    if (in->tokenizer_model.data) {
        rc = vocab_spm(x, tj, tc, gc);
    } else if (tj) {
        json_object *model = jget(tj, "model"), *bf = jget(model, "byte_fallback"), *im = jget(model, "ignore_merges");
        bool llama3 = jstr_eq(jget(model, "type"), "BPE") && jis(im, json_type_boolean) && json_object_get_boolean(im) &&
                      !(bf && json_object_get_boolean(bf));
        if (x->map->arch == MFS_HF_LLAMA && !llama3 && jstr_eq(jget(model, "type"), "BPE") && bf &&
            json_object_get_boolean(bf) && jstr_eq(jget(jget(tj, "decoder"), "type"), "Sequence"))
            rc = mfs_hf_note(x->map, "tokenizer.json is a byte-fallback BPE tokenizer (convert's LlamaHfVocab path, "
                                     "not supported): no tokenizer keys, llama.cpp will not run this snapshot");
        else
            rc = vocab_bpe(x, tj, tc, gc);
    } else {
        rc = mfs_hf_note(x->map, "no tokenizer.model or tokenizer.json: no tokenizer keys, llama.cpp will not run this "
                                 "snapshot");
    }
    if (rc || x->map->arch != MFS_HF_LLAMA || mfs_gguf_find_key(x->map->g, "tokenizer.ggml.model") < 0)
        goto out;
    /* LlamaModel.set_vocab's additions */
    uint64_t n = 0;
    json_object *v;
    if (json_object_object_get_ex(x->config, "vocab_size", &v) && json_object_get_type(v) == json_type_int)
        n = (uint64_t)json_object_get_int64(v);
    if (n == 32016) /* CodeLlama: of prefix/suffix/middle/eot only eot has a key in gguf-py's writer */
        rc = mfs_gguf_set_u32(x->map->g, "tokenizer.ggml.eot_token_id", 32010);
    json_object *asp = jget(tc, "add_prefix_space");
    if (rc == 0 && asp)
        rc = mfs_gguf_set_bool(x->map->g, "tokenizer.ggml.add_space_prefix", json_object_get_boolean(asp));
    if (rc == 0 && n == 49152) /* granite small models */
        rc = mfs_gguf_set_bool(x->map->g, "tokenizer.ggml.add_bos_token", false);
out:
    json_object_put(tj);
    json_object_put(tc);
    json_object_put(gc);
    return rc;
}
