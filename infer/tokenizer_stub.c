/* TEMPORARY stand-in for infer/tokenizer.c (being written elsewhere): pieces only, no real
 * encoding (each byte becomes its <0xNN> token). Deleted when the real tokenizer lands. */
#include "mfs_tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mfs_tokenizer {
    int32_t n;
    char **tok;
    int32_t bos, eos;
};

int mfs_tokenizer_create(const mfs_gguf *g, const char *name, mfs_tokenizer **out, mfs_err *err)
{
    const struct mfs_gguf_value *arr;
    if (mfs_gguf_get_arr(g, "tokenizer.ggml.tokens", MFS_GGUF_STR, &arr)) {
        mfs_err_set(err, "%s: no tokenizer.ggml.tokens", name);
        return -EINVAL;
    }
    mfs_tokenizer *t = calloc(1, sizeof *t);
    t->n = (int32_t)arr->arr.n;
    t->tok = calloc((size_t)t->n, sizeof *t->tok);
    const struct mfs_str *s = arr->arr.data;
    for (int32_t i = 0; i < t->n; i++)
        t->tok[i] = strndup(s[i].p, s[i].len);
    uint64_t v;
    t->bos = mfs_gguf_get_uint(g, "tokenizer.ggml.bos_token_id", &v) == 0 ? (int32_t)v : -1;
    t->eos = mfs_gguf_get_uint(g, "tokenizer.ggml.eos_token_id", &v) == 0 ? (int32_t)v : -1;
    *out = t;
    return 0;
}

void mfs_tokenizer_free(mfs_tokenizer *t)
{
    if (!t)
        return;
    for (int32_t i = 0; i < t->n; i++)
        free(t->tok[i]);
    free(t->tok);
    free(t);
}

int mfs_tokenizer_encode(const mfs_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                         int32_t **ids, size_t *n_ids)
{
    (void)parse_special;
    int32_t *o = malloc((len + 1) * sizeof *o);
    size_t n = 0;
    if (add_special && t->bos >= 0)
        o[n++] = t->bos;
    for (size_t i = 0; i < len; i++) {
        char b[16];
        snprintf(b, sizeof b, "<0x%02X>", (unsigned char)text[i]);
        for (int32_t j = 0; j < t->n; j++)
            if (strcmp(t->tok[j], b) == 0) {
                o[n++] = j;
                break;
            }
    }
    *ids = o;
    *n_ids = n;
    return 0;
}

int mfs_tokenizer_piece(const mfs_tokenizer *t, int32_t id, bool special, char *buf, size_t cap)
{
    (void)special;
    if (id < 0 || id >= t->n)
        return -EINVAL;
    const char *s = t->tok[id];
    char tmp[256];
    size_t n = 0;
    unsigned b;
    if (sscanf(s, "<0x%02X>", &b) == 1 && strlen(s) == 6) {
        tmp[n++] = (char)b;
    } else {
        for (; *s && n < sizeof tmp - 1; s++) {
            if ((unsigned char)s[0] == 0xE2 && (unsigned char)s[1] == 0x96 && (unsigned char)s[2] == 0x81) {
                tmp[n++] = ' ';
                s += 2;
            } else {
                tmp[n++] = *s;
            }
        }
    }
    memcpy(buf, tmp, n < cap ? n : cap);
    return (int)n;
}

int32_t mfs_tokenizer_n_vocab(const mfs_tokenizer *t) { return t->n; }
int32_t mfs_tokenizer_bos(const mfs_tokenizer *t) { return t->bos; }
int32_t mfs_tokenizer_eos(const mfs_tokenizer *t) { return t->eos; }
bool mfs_tokenizer_is_eog(const mfs_tokenizer *t, int32_t id) { return id == t->eos; }
