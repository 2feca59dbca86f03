/* The "llama" (SentencePiece BPE over scores) and "gpt2" (byte-level BPE over merges) tokenizers,
 * following llama.cpp's src/llama-vocab.cpp and src/unicode.cpp (Feb 2025) case by case.
 *
 * Encoding, as llama.cpp does it:
 *   1. Partition the text on special-token texts (tokenizer_st_partition): for each control,
 *      user-defined or unknown token, longest text first, every occurrence inside the remaining
 *      raw fragments becomes that token. Control and unknown tokens only with parse_special;
 *      user-defined tokens always.
 *   2. SPM: each raw fragment gets a leading space when it starts the text or follows a special
 *      token (add_space_prefix), spaces become U+2581, then adjacent symbols (UTF-8 characters at
 *      first) whose concatenation is a token merge, highest score first, leftmost on ties; what
 *      is left and is not a token is written as <0xNN> byte tokens.
 *   2'. BPE: each raw fragment is split into words by the pre-tokenizer of `tokenizer.ggml.pre`
 *      (hand-written versions of llama.cpp's regexes, over the Unicode classes of tok_unicode.c),
 *      each word's bytes are mapped to GPT-2's printable characters, and adjacent symbols merge by
 *      the rank of their pair in `tokenizer.ggml.merges`, lowest rank first, leftmost on ties.
 *
 * Where this differs from llama.cpp, on purpose:
 *   - Invalid UTF-8. BPE: llama.cpp turns each bad byte into U+FFFD (three bytes, so the text
 *     does not round-trip); here a bad byte is classified like U+FFFD for the word split but
 *     encoded as itself. SPM: llama.cpp cuts characters at the length their lead byte announces,
 *     so a stray lead byte swallows the bytes after it; here a byte that starts no well-formed
 *     character is a symbol of its own. Either way decode(encode(x)) == x for any bytes (SPM: with
 *     the leading space). Overlong forms, surrogates and code points past U+10FFFF are bad bytes.
 *   - Merges must name two tokens whose concatenation is a token; others are skipped (counted in
 *     a warning). Every published vocab satisfies this, and then the result is the same.
 *   - An SPM byte that has neither a <0xNN> token nor a one-byte token becomes the unknown token
 *     (or is dropped if there is none); llama.cpp throws.
 *   - Out-of-range bos/eos/unk/eot/eom ids are errors (llama.cpp warns and keeps its default);
 *     out-of-range padding/separator/mask/FIM ids are ignored with a warning, as in llama.cpp.
 */
#include "mfs_tokenizer.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_split.h"
#include "tok_unicode.h"

/* tokenizer.ggml.token_type values (llama.h's llama_token_type). */
enum {
    TT_UNDEFINED = 0,
    TT_NORMAL = 1,
    TT_UNKNOWN = 2,
    TT_CONTROL = 3,
    TT_USER_DEFINED = 4,
    TT_UNUSED = 5,
    TT_BYTE = 6,
    TT_COUNT = 7,
};

/* Per-token attributes (llama.h's llama_token_attr, plus our EOG bit). */
enum {
    A_UNKNOWN = 1 << 0,
    A_UNUSED = 1 << 1,
    A_NORMAL = 1 << 2,
    A_CONTROL = 1 << 3,
    A_USER_DEFINED = 1 << 4,
    A_BYTE = 1 << 5,
    A_LSTRIP = 1 << 7,
    A_RSTRIP = 1 << 8,
    A_EOG = 1 << 12,
};

static const uint16_t k_type_attr[TT_COUNT] = {
    [TT_UNDEFINED] = 0,          [TT_NORMAL] = A_NORMAL, [TT_UNKNOWN] = A_UNKNOWN,
    [TT_CONTROL] = A_CONTROL,    [TT_USER_DEFINED] = A_USER_DEFINED,
    [TT_UNUSED] = A_UNUSED,      [TT_BYTE] = A_BYTE,
};

enum model { MODEL_SPM, MODEL_BPE };

/* The pre-tokenizers implemented: each is a sequence of split passes (see k_pre_passes). */
enum pre {
    PRE_DEFAULT, /* "[\p{P}\$\+<=>\^~\|]+", gpt2, "\p{N}+", "[0-9][0-9][0-9]" */
    PRE_GPT2,    /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) */
    PRE_LLAMA3,  /* (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|... */
    PRE_QWEN2,   /* llama3 with \p{N} instead of \p{N}{1,3} */
    PRE_SMOLLM,  /* "\p{N}", then gpt2 */
    PRE_FALCON,  /* "[\p{P}\$\+<=>\^~\|`]+", gpt2, "[0-9][0-9][0-9]" */
    PRE_TEKKEN,  /* Mistral's tekken: case-aware words, single digits */
    PRE_COUNT,
};

static const char *const k_pre_desc[PRE_COUNT] = {
    [PRE_DEFAULT] = "default", [PRE_GPT2] = "gpt-2",   [PRE_LLAMA3] = "llama3", [PRE_QWEN2] = "qwen2",
    [PRE_SMOLLM] = "smollm",   [PRE_FALCON] = "falcon", [PRE_TEKKEN] = "tekken",
};

/* tokenizer.ggml.pre values, as llama.cpp's llama_vocab::impl::load maps them, with the flags it
 * sets for some: take a word that is a token whole (ignore_merges) and add BOS; no default BOS. */
enum { PF_WHOLE_BOS = 1, PF_NO_BOS_ID = 2 };

static const struct {
    const char *name;
    uint8_t pre;
    uint8_t flags;
} k_pre_names[] = {
    {"default", PRE_DEFAULT, 0},
    {"gpt-2", PRE_GPT2, 0},
    {"phi-2", PRE_GPT2, 0},
    {"jina-es", PRE_GPT2, 0},
    {"jina-de", PRE_GPT2, 0},
    {"gigachat", PRE_GPT2, 0},
    {"jina-v1-en", PRE_GPT2, 0},
    {"jina-v2-es", PRE_GPT2, 0},
    {"jina-v2-de", PRE_GPT2, 0},
    {"jina-v2-code", PRE_GPT2, 0},
    {"roberta-bpe", PRE_GPT2, 0},
    {"mpt", PRE_GPT2, 0},
    {"olmo", PRE_GPT2, 0},
    {"jais", PRE_GPT2, 0},
    {"llama3", PRE_LLAMA3, PF_WHOLE_BOS},
    {"llama-v3", PRE_LLAMA3, PF_WHOLE_BOS},
    {"llama-bpe", PRE_LLAMA3, PF_WHOLE_BOS},
    {"falcon3", PRE_LLAMA3, PF_WHOLE_BOS},
    {"dbrx", PRE_LLAMA3, 0},
    {"smaug-bpe", PRE_LLAMA3, 0},
    {"chatglm-bpe", PRE_LLAMA3, PF_NO_BOS_ID},
    {"qwen2", PRE_QWEN2, 0},
    {"deepseek-r1-qwen", PRE_QWEN2, 0},
    {"stablelm2", PRE_QWEN2, 0},
    {"megrez", PRE_QWEN2, 0},
    {"smollm", PRE_SMOLLM, 0},
    {"starcoder", PRE_SMOLLM, 0},
    {"refact", PRE_SMOLLM, 0},
    {"command-r", PRE_SMOLLM, 0},
    {"codeshell", PRE_SMOLLM, 0},
    {"exaone", PRE_SMOLLM, 0},
    {"minerva-7b", PRE_SMOLLM, 0},
    {"falcon", PRE_FALCON, 0},
    {"tekken", PRE_TEKKEN, PF_WHOLE_BOS},
};

/* Known to llama.cpp, not implemented here (their regexes need classes we do not split by). */
static const char *const k_pre_unsupported[] = {
    "deepseek-llm", "deepseek-coder", "deepseek-v3", "poro-chat", "bloom", "gpt3-finnish", "viking", "chameleon",
};

/* Hash tables: open addressing, linear probing, at most 80% full; zeroed slots are empty. */
struct tok_slot {
    uint32_t hash; /* high bits of the text's hash */
    uint32_t id1;  /* token id + 1; 0: empty */
};

struct merge_slot {
    uint32_t left1; /* left token id + 1; 0: empty */
    int32_t right;
    int32_t rank;
    int32_t result;
};

struct mfs_tokenizer {
    enum model model;
    enum pre pre;
    int32_t n_vocab;
    /* per token, in separate arrays so that lookups only touch `off` and `text` */
    uint32_t *off; /* n_vocab + 1: token id's text is text[off[id] .. off[id + 1] - 1), then a NUL */
    char *text;
    float *score;
    uint16_t *attr;

    struct tok_slot *slots; /* open addressing over token texts */
    uint32_t slot_mask;

    struct merge_slot *merges; /* BPE: (left id, right id) -> rank and result */
    uint64_t merge_mask;

    /* SPM: <0xNN> (or the one-byte token); BPE: the token of the byte's GPT-2 character. -1 if none. */
    int32_t byte_tok[256];
    /* BPE, for a byte whose character is not a token: the tokens of its UTF-8 bytes, as llama.cpp. */
    int32_t byte_fallback[256][2];

    int32_t *special; /* control, user-defined and unknown tokens, longest text first */
    size_t n_special;

    int32_t bos, eos, unk;
    bool add_bos, add_eos, add_space_prefix, ignore_merges;
};

/* ---------------------------------------------------------------- small helpers */

/* Eight bytes at a time, multiply-xorshift mixing (splitmix64's constants); the tail is read with
 * fixed-size (overlapping) loads, which the length mixed in first makes unambiguous. */
static uint64_t hash_bytes(const char *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n, v;
    size_t len = n;
    for (; n > 8; p += 8, n -= 8) {
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
    if (len >= 8) {
        memcpy(&v, p + n - 8, 8);
    } else if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        v = (uint64_t)a << 32 | b;
    } else {
        v = n ? (uint64_t)(uint8_t)p[0] | (uint64_t)(uint8_t)p[n / 2] << 8 | (uint64_t)(uint8_t)p[n - 1] << 16 : 0;
    }
    h = (h ^ v) * 0x94D049BB133111EBull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

/* Slots for n entries: a power of two, at most 80% full (8 slots share a cache line, so probing
 * stays cheap; the smaller table costs fewer page faults to build). */
static uint64_t table_cap(uint64_t n)
{
    uint64_t cap = 16;
    while (cap < n + n / 4)
        cap *= 2;
    return cap;
}

static const char *tok_text(const mfs_tokenizer *t, int32_t id)
{
    return t->text + t->off[id];
}

static uint32_t tok_len(const mfs_tokenizer *t, int32_t id)
{
    return t->off[id + 1] - t->off[id] - 1;
}

/* The id of the token whose text is exactly p[0..n), or -1. */
static int32_t find_token(const mfs_tokenizer *t, const char *p, size_t n)
{
    uint64_t h = hash_bytes(p, n);
    for (uint32_t i = (uint32_t)h & t->slot_mask;; i = (i + 1) & t->slot_mask) {
        const struct tok_slot *s = &t->slots[i];
        if (s->id1 == 0)
            return -1;
        int32_t id = (int32_t)s->id1 - 1;
        if (s->hash == (uint32_t)(h >> 32) && tok_len(t, id) == n && memcmp(tok_text(t, id), p, n) == 0)
            return id;
    }
}

static int32_t find_token_str(const mfs_tokenizer *t, const char *s)
{
    return find_token(t, s, strlen(s));
}

static uint64_t merge_hash(int32_t left, int32_t right)
{
    uint64_t k = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    k *= 0x9E3779B97F4A7C15ull;
    return k ^ (k >> 32);
}

static const struct merge_slot *find_merge(const mfs_tokenizer *t, int32_t left, int32_t right)
{
    for (uint64_t i = merge_hash(left, right) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        const struct merge_slot *s = &t->merges[i];
        if (s->left1 == 0)
            return NULL;
        if (s->left1 == (uint32_t)left + 1 && s->right == right)
            return s;
    }
}

/* GPT-2's byte <-> printable character mapping: bytes that are printable Latin-1 map to themselves,
 * the other 68 to U+0100.. in byte order. */
static uint32_t byte_to_cp(uint8_t b)
{
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)
        return b;
    if (b <= 0x20)
        return 0x100 + b;
    if (b <= 0xA0)
        return 0x100 + 33 + (b - 0x7F);
    return 0x100 + 67; /* 0xAD */
}

static int cp_to_byte(uint32_t cp)
{
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    if (cp >= 0x100 && cp <= 0x120)
        return (int)(cp - 0x100);
    if (cp >= 0x121 && cp <= 0x142)
        return (int)(cp - 0x121 + 0x7F);
    if (cp == 0x143)
        return 0xAD;
    return -1;
}

static size_t utf8_put(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length (1..4) of the well-formed UTF-8 sequence at p[0..n) and its code point; 0 if the first
 * byte does not start one (stray continuation, overlong form, surrogate, past U+10FFFF, cut short). */
static size_t utf8_get(const uint8_t *p, size_t n, uint32_t *cp)
{
    uint8_t b = p[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t len;
    uint32_t c, min;
    if (b >= 0xC2 && b <= 0xDF) {
        len = 2, c = b & 0x1F, min = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
        len = 3, c = b & 0x0F, min = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
        len = 4, c = b & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (p[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

/* C-locale isspace, as llama.cpp's lstrip/rstrip use it. */
static bool ascii_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* ---------------------------------------------------------------- growable arrays */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        if (n > SIZE_MAX / 2 / elem)
            return -ENOMEM;
        n *= 2;
    }
    void *q = realloc(*p, n * elem);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

struct ids {
    int32_t *v;
    size_t n, cap;
};

static int ids_push(struct ids *o, int32_t id)
{
    if (o->n == o->cap && grow((void **)&o->v, &o->cap, o->n + 1, sizeof *o->v))
        return -ENOMEM;
    o->v[o->n++] = id;
    return 0;
}

/* A candidate merge of symbols `left` and `right`, `size` bytes together when it was queued.
 * SPM: prio = score of the merged token; BPE: prio = -rank (exact: fewer than 2^24 merges fit in a
 * header). A symbol only grows by taking its right neighbor, so while both are still alive the
 * pair is unchanged exactly when its size is: llama.cpp's size (SPM) and text (BPE) checks. */
struct bigram {
    float prio;
    int32_t left, right;
    uint32_t size;
};

static_assert(MFS_GGUF_MAX_HEADER / 8 <= 1 << 24, "merge ranks are exact as float");

struct heap {
    struct bigram *v;
    size_t n, cap;
};

/* Highest priority first, then leftmost: llama.cpp's llm_bigram_spm/bpe comparators. */
static bool bigram_before(const struct bigram *x, const struct bigram *y)
{
    return x->prio > y->prio || (x->prio == y->prio && x->left < y->left);
}

static int heap_push(struct heap *h, const struct bigram *b)
{
    if (h->n == h->cap && grow((void **)&h->v, &h->cap, h->n + 1, sizeof *h->v))
        return -ENOMEM;
    size_t i = h->n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!bigram_before(b, &h->v[up]))
            break;
        h->v[i] = h->v[up];
        i = up;
    }
    h->v[i] = *b;
    return 0;
}

static struct bigram heap_pop(struct heap *h)
{
    struct bigram top = h->v[0];
    struct bigram last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && bigram_before(&h->v[c + 1], &h->v[c]))
            c++;
        if (!bigram_before(&h->v[c], &last))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0)
        h->v[i] = last;
    return top;
}

/* ---------------------------------------------------------------- encoding state */

struct sym {
    int32_t prev, next;
    uint32_t start, n; /* bytes of the word (BPE) or escaped text (SPM) */
    int32_t id;        /* BPE: current token, -1 if the byte has none */
};

/* Code points of the BPE text being split: cp and class bits, and where each starts. */
struct unit {
    uint32_t cp;
    uint32_t flags;
};

struct enc {
    const mfs_tokenizer *t;
    struct ids out;
    struct sym *sym;
    size_t cap_sym;
    struct heap heap;
    char *buf;
    size_t cap_buf;
    struct unit *units;
    uint32_t *uoff; /* byte offset of each unit, plus the end */
    uint32_t *seg, *seg2;
    size_t cap_units;
};

static void enc_free(struct enc *e)
{
    free(e->sym);
    free(e->heap.v);
    free(e->buf);
    free(e->units);
    free(e->uoff);
    free(e->seg);
    free(e->seg2);
    free(e->out.v);
}

/* ---------------------------------------------------------------- SPM */

static int spm_try_bigram(struct enc *e, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return 0;
    const struct sym *l = &e->sym[left], *r = &e->sym[right];
    size_t n = (size_t)l->n + r->n; /* l and r are adjacent: the pair is contiguous */
    int32_t id = find_token(e->t, e->buf + l->start, n);
    if (id < 0)
        return 0;
    struct bigram b = {.prio = e->t->score[id], .left = left, .right = right, .size = (uint32_t)n};
    return heap_push(&e->heap, &b);
}

static int spm_byte(struct enc *e, uint8_t byte)
{
    int32_t id = e->t->byte_tok[byte];
    if (id < 0)
        id = e->t->unk;
    return id < 0 ? 0 : ids_push(&e->out, id);
}

/* llm_tokenizer_spm_session::tokenize over text[0..len), with the space prefix and escaping. */
static int spm_encode(struct enc *e, const char *text, size_t len, bool prefix_space)
{
    size_t n = 0;
    if (grow((void **)&e->buf, &e->cap_buf, 3 * (len + 1), 1))
        return -ENOMEM;
    if (prefix_space) {
        memcpy(e->buf, "\xe2\x96\x81", 3);
        n = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(e->buf + n, "\xe2\x96\x81", 3);
            n += 3;
        } else {
            e->buf[n++] = text[i];
        }
    }
    if (n == 0)
        return 0;

    if (grow((void **)&e->sym, &e->cap_sym, n, sizeof *e->sym))
        return -ENOMEM;
    int32_t n_sym = 0;
    for (size_t off = 0; off < n;) {
        /* a character, or a byte that does not start one (llama.cpp takes the length the lead byte
         * announces, so a stray lead byte there eats the next bytes, even of a U+2581 escape) */
        uint32_t cp;
        size_t k = utf8_get((const uint8_t *)e->buf + off, n - off, &cp);
        if (k == 0)
            k = 1;
        e->sym[n_sym] = (struct sym){.prev = n_sym - 1, .start = (uint32_t)off, .n = (uint32_t)k, .id = -1};
        off += k;
        e->sym[n_sym].next = off == n ? -1 : n_sym + 1;
        n_sym++;
    }

    int rc;
    e->heap.n = 0;
    for (int32_t i = 1; i < n_sym; i++)
        if ((rc = spm_try_bigram(e, i - 1, i)))
            return rc;
    while (e->heap.n > 0) {
        struct bigram b = heap_pop(&e->heap);
        struct sym *l = &e->sym[b.left], *r = &e->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue; /* one side already merged elsewhere */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            e->sym[r->next].prev = b.left;
        if ((rc = spm_try_bigram(e, l->prev, b.left)) || (rc = spm_try_bigram(e, b.left, l->next)))
            return rc;
    }

    /* Every merged symbol is a token (a pair is queued only if it is one); what is not, is a
     * character missing from the vocab: its bytes. */
    for (int32_t i = 0; i != -1; i = e->sym[i].next) {
        const struct sym *s = &e->sym[i];
        int32_t id = find_token(e->t, e->buf + s->start, s->n);
        if (id >= 0) {
            if ((rc = ids_push(&e->out, id)))
                return rc;
            continue;
        }
        for (uint32_t j = 0; j < s->n; j++)
            if ((rc = spm_byte(e, (uint8_t)e->buf[s->start + j])))
                return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- BPE pre-tokenizers */

#define OUT_OF_RANGE 0xFFFFFFFFu

/* One segment [ini, end) of units being split into words; words are written as end indices. */
struct seg {
    const struct unit *u;
    size_t ini, end;
    uint32_t *out;
    size_t n_out;
    size_t prev; /* end of the last word */
};

static uint32_t seg_cp(const struct seg *s, size_t pos)
{
    return pos >= s->ini && pos < s->end ? s->u[pos].cp : OUT_OF_RANGE;
}

/* 0 outside the segment: every code point inside has at least one bit. */
static uint32_t seg_fl(const struct seg *s, size_t pos)
{
    return pos >= s->ini && pos < s->end ? s->u[pos].flags : 0;
}

static void seg_word(struct seg *s, size_t end)
{
    if (end > s->prev)
        s->out[s->n_out++] = (uint32_t)end;
    s->prev = end;
}

#define F_L MFS_UC_LETTER
#define F_N MFS_UC_NUMBER
#define F_S MFS_UC_SPACE

static uint32_t ascii_lower(uint32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* 's|'t|'re|'ve|'m|'ll|'d (case-insensitive or not): the end of the contraction at pos, or 0. */
static size_t contraction(const struct seg *s, size_t pos, bool any_case)
{
    if (seg_cp(s, pos) != '\'' || pos + 1 >= s->end)
        return 0;
    uint32_t c1 = seg_cp(s, pos + 1);
    if (any_case)
        c1 = ascii_lower(c1);
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
        return pos + 2;
    if (pos + 2 >= s->end)
        return 0;
    uint32_t c2 = seg_cp(s, pos + 2);
    if (any_case)
        c2 = ascii_lower(c2);
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
        return pos + 3;
    return 0;
}

/* \s+(?!\S) then \s+, and for llama3 first \s*[\r\n]+: the end of the whitespace word at pos,
 * or 0 if pos is not whitespace. */
static size_t whitespace_word(const struct seg *s, size_t pos, bool cr_lf)
{
    size_t n = 0, last_crlf = 0;
    while (seg_fl(s, pos + n) & F_S) {
        uint32_t c = seg_cp(s, pos + n);
        if (c == '\r' || c == '\n')
            last_crlf = pos + n + 1;
        n++;
    }
    if (cr_lf && last_crlf > 0)
        return last_crlf;
    if (n > 1 && seg_cp(s, pos + n) != OUT_OF_RANGE)
        return pos + n - 1; /* leave the last space to the word after it */
    return n > 0 ? pos + n : 0;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static void split_gpt2(struct seg *s)
{
    for (size_t pos = s->ini; pos < s->end;) {
        size_t end = contraction(s, pos, false);
        if (end) {
            seg_word(s, pos = end);
            continue;
        }
        uint32_t cp = seg_cp(s, pos);
        uint32_t fl2 = cp == ' ' ? seg_fl(s, pos + 1) : seg_fl(s, pos);
        if (fl2 & (F_L | F_N)) {
            uint32_t cls = fl2 & F_L ? F_L : F_N;
            pos += cp == ' ';
            while (seg_fl(s, pos) & cls)
                pos++;
            seg_word(s, pos);
            continue;
        }
        if (fl2 && !(fl2 & (F_S | F_L | F_N))) {
            pos += cp == ' ';
            for (uint32_t f; (f = seg_fl(s, pos)) && !(f & (F_S | F_L | F_N));)
                pos++;
            seg_word(s, pos);
            continue;
        }
        end = whitespace_word(s, pos, false);
        seg_word(s, pos = end ? end : pos + 1);
    }
}

/* llama3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
 *         ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static void split_llama3(struct seg *s, size_t max_digits)
{
    for (size_t pos = s->ini; pos < s->end;) {
        size_t end = contraction(s, pos, true);
        if (end) {
            seg_word(s, pos = end);
            continue;
        }
        uint32_t cp = seg_cp(s, pos);
        uint32_t fl = seg_fl(s, pos);
        if (!(cp == '\r' || cp == '\n' || (fl & F_N)) && ((fl & F_L) || (seg_fl(s, pos + 1) & F_L))) {
            pos++;
            while (seg_fl(s, pos) & F_L)
                pos++;
            seg_word(s, pos);
            continue;
        }
        if (fl & F_N) {
            size_t ini = pos;
            while (seg_fl(s, pos) & F_N) {
                if (++pos - ini >= max_digits) {
                    seg_word(s, pos);
                    ini = pos;
                }
            }
            seg_word(s, pos);
            continue;
        }
        /* as llama.cpp: the class test is on the code point after a space, the "in range" test on
         * the space itself, so a lone space at the end of a segment is a word here */
        uint32_t fl2 = cp == ' ' ? seg_fl(s, pos + 1) : fl;
        if (!(fl2 & (F_S | F_L | F_N)) && fl) {
            pos += cp == ' ';
            for (uint32_t f; (f = seg_fl(s, pos)) && !(f & (F_S | F_L | F_N));)
                pos++;
            for (uint32_t c = seg_cp(s, pos); c == '\r' || c == '\n'; c = seg_cp(s, ++pos))
                ;
            seg_word(s, pos);
            continue;
        }
        end = whitespace_word(s, pos, true);
        seg_word(s, pos = end ? end : pos + 1);
    }
}

/* tekken, the regex llama.cpp runs through std::regex (ECMAScript: first alternative that matches,
 * greedy with backtracking):
 *   [^\r\n\p{L}\p{N}]?U*W+ | [^\r\n\p{L}\p{N}]?U+W* | \p{N} | ?[^\s\p{L}\p{N}]+[\r\n/]* |
 *   \s*[\r\n]+ | \s+(?!\S) | \s+
 * where U = a letter but a-z, W = a letter but A-Z (non-ASCII letters are both). */
static bool tk_upper(const struct seg *s, size_t pos)
{
    uint32_t c = seg_cp(s, pos);
    return (seg_fl(s, pos) & F_L) && !(c >= 'a' && c <= 'z');
}

static bool tk_lower(const struct seg *s, size_t pos)
{
    uint32_t c = seg_cp(s, pos);
    return (seg_fl(s, pos) & F_L) && !(c >= 'A' && c <= 'Z');
}

static void split_tekken(struct seg *s)
{
    for (size_t pos = s->ini; pos < s->end;) {
        uint32_t cp = seg_cp(s, pos);
        uint32_t fl = seg_fl(s, pos);
        /* With the optional prefix taken when it can be (if it can, the char at pos is no letter,
         * so the variants without it fail too). */
        size_t q = pos + (cp != '\r' && cp != '\n' && !(fl & (F_L | F_N)));
        size_t m = 0;
        while (tk_upper(s, q + m))
            m++;
        /* U*W+: the longest U* that still leaves a W after it */
        size_t k = m + 1;
        while (k-- > 0)
            if (tk_lower(s, q + k))
                break;
        if (k != (size_t)-1 || m > 0) {
            size_t end = k != (size_t)-1 ? q + k : q + m; /* else U+W* */
            while (tk_lower(s, end))
                end++;
            seg_word(s, pos = end);
            continue;
        }
        if (fl & F_N) {
            seg_word(s, ++pos);
            continue;
        }
        size_t p = pos + (cp == ' ');
        uint32_t f = seg_fl(s, p);
        if (f && !(f & (F_S | F_L | F_N))) {
            while ((f = seg_fl(s, p)) && !(f & (F_S | F_L | F_N)))
                p++;
            for (uint32_t c = seg_cp(s, p); c == '\r' || c == '\n' || c == '/'; c = seg_cp(s, ++p))
                ;
            seg_word(s, pos = p);
            continue;
        }
        size_t end = whitespace_word(s, pos, true);
        seg_word(s, pos = end ? end : pos + 1);
    }
}

/* Runs of code points of a class are words, and so are the runs between them ("[class]+");
 * with `single`, each code point of the class is a word of its own ("\p{N}"). */
static void split_class(struct seg *s, bool (*in)(const struct unit *), bool single)
{
    for (size_t pos = s->ini; pos < s->end;) {
        if (!in(&s->u[pos])) {
            pos++;
            continue;
        }
        seg_word(s, pos);
        pos++;
        while (!single && pos < s->end && in(&s->u[pos]))
            pos++;
        seg_word(s, pos);
    }
    seg_word(s, s->end);
}

static bool is_number(const struct unit *u)
{
    return u->flags & F_N;
}

static bool is_ascii_digit(const struct unit *u)
{
    return u->cp >= '0' && u->cp <= '9';
}

/* [\p{P}\$\+<=>\^~\|]+ */
static bool is_punct_default(const struct unit *u)
{
    return (u->flags & MFS_UC_PUNCT) || (u->cp && u->cp < 128 && strchr("$+<=>^~|", (int)u->cp));
}

/* [\p{P}\$\+<=>\^~\|`]+ */
static bool is_punct_falcon(const struct unit *u)
{
    return is_punct_default(u) || u->cp == '`';
}

/* [0-9][0-9][0-9]: leftmost groups of three ASCII digits are words, the rest between them too. */
static void split_digits3(struct seg *s)
{
    for (size_t pos = s->ini; pos + 3 <= s->end;) {
        if (is_ascii_digit(&s->u[pos]) && is_ascii_digit(&s->u[pos + 1]) && is_ascii_digit(&s->u[pos + 2])) {
            seg_word(s, pos);
            seg_word(s, pos += 3);
        } else {
            pos++;
        }
    }
    seg_word(s, s->end);
}

enum pass {
    P_END,
    P_GPT2,
    P_LLAMA3,
    P_QWEN2,
    P_TEKKEN,
    P_NUMBER_EACH,
    P_NUMBER_RUN,
    P_PUNCT,
    P_PUNCT_FALCON,
    P_DIGITS3,
};

/* The regexes llama.cpp applies in turn, each inside the words of the previous one. */
static const uint8_t k_pre_passes[PRE_COUNT][5] = {
    [PRE_DEFAULT] = {P_PUNCT, P_GPT2, P_NUMBER_RUN, P_DIGITS3, P_END},
    [PRE_GPT2] = {P_GPT2, P_END},
    [PRE_LLAMA3] = {P_LLAMA3, P_END},
    [PRE_QWEN2] = {P_QWEN2, P_END},
    [PRE_SMOLLM] = {P_NUMBER_EACH, P_GPT2, P_END},
    [PRE_FALCON] = {P_PUNCT_FALCON, P_GPT2, P_DIGITS3, P_END},
    [PRE_TEKKEN] = {P_TEKKEN, P_END},
};

static void run_pass(struct seg *s, enum pass p)
{
    switch (p) {
    case P_GPT2: split_gpt2(s); break;
    case P_LLAMA3: split_llama3(s, 3); break;
    case P_QWEN2: split_llama3(s, 1); break;
    case P_TEKKEN: split_tekken(s); break;
    case P_NUMBER_EACH: split_class(s, is_number, true); break;
    case P_NUMBER_RUN: split_class(s, is_number, false); break;
    case P_PUNCT: split_class(s, is_punct_default, false); break;
    case P_PUNCT_FALCON: split_class(s, is_punct_falcon, false); break;
    case P_DIGITS3: split_digits3(s); break;
    case P_END: break;
    }
}

/* ---------------------------------------------------------------- BPE */

static int bpe_try_bigram(struct enc *e, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return 0;
    int32_t a = e->sym[left].id, b = e->sym[right].id;
    if (a < 0 || b < 0)
        return 0;
    const struct merge_slot *m = find_merge(e->t, a, b);
    if (!m)
        return 0;
    struct bigram bg = {
        .prio = -(float)m->rank, .left = left, .right = right, .size = e->sym[left].n + e->sym[right].n};
    return heap_push(&e->heap, &bg);
}

/* One word: bytes w[0..n), n > 0. */
static int bpe_word(struct enc *e, const uint8_t *w, size_t n)
{
    const mfs_tokenizer *t = e->t;
    int rc;
    if (t->ignore_merges) {
        /* the word as one token, if it is one */
        if (grow((void **)&e->buf, &e->cap_buf, 2 * n, 1))
            return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            k += utf8_put(e->buf + k, byte_to_cp(w[i]));
        int32_t id = find_token(t, e->buf, k);
        if (id >= 0)
            return ids_push(&e->out, id);
    }

    if (grow((void **)&e->sym, &e->cap_sym, n, sizeof *e->sym))
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        e->sym[i] = (struct sym){.prev = (int32_t)i - 1,
                                 .next = i + 1 == n ? -1 : (int32_t)i + 1,
                                 .start = (uint32_t)i,
                                 .n = 1,
                                 .id = t->byte_tok[w[i]]};
    e->heap.n = 0;
    for (size_t i = 1; i < n; i++)
        if ((rc = bpe_try_bigram(e, (int32_t)i - 1, (int32_t)i)))
            return rc;
    while (e->heap.n > 0) {
        struct bigram b = heap_pop(&e->heap);
        struct sym *l = &e->sym[b.left], *r = &e->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
            continue; /* outdated: one side changed since the pair was queued */
        l->id = find_merge(t, l->id, r->id)->result;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0)
            e->sym[r->next].prev = b.left;
        if ((rc = bpe_try_bigram(e, l->prev, b.left)) || (rc = bpe_try_bigram(e, b.left, l->next)))
            return rc;
    }
    for (int32_t i = 0; i != -1; i = e->sym[i].next) {
        const struct sym *s = &e->sym[i];
        if (s->id >= 0) {
            if ((rc = ids_push(&e->out, s->id)))
                return rc;
            continue;
        }
        /* a byte whose character is no token (merged symbols always are) */
        for (int j = 0; j < 2; j++)
            if (t->byte_fallback[w[s->start]][j] >= 0 && (rc = ids_push(&e->out, t->byte_fallback[w[s->start]][j])))
                return rc;
    }
    return 0;
}

/* Split text[0..len) (len > 0) into words: fills e->units and e->uoff, returns the words as unit
 * end indices in *words (e->seg or e->seg2) and their count. */
static int split_words(struct enc *e, const char *text, size_t len, const uint32_t **words, size_t *n_words)
{
    const uint8_t *p = (const uint8_t *)text;
    if (e->cap_units < len + 1) {
        free(e->units);
        free(e->uoff);
        free(e->seg);
        free(e->seg2);
        e->units = malloc((len + 1) * sizeof *e->units);
        e->uoff = malloc((len + 1) * sizeof *e->uoff);
        e->seg = malloc((len + 1) * sizeof *e->seg);
        e->seg2 = malloc((len + 1) * sizeof *e->seg2);
        e->cap_units = len + 1;
        if (!e->units || !e->uoff || !e->seg || !e->seg2) {
            e->cap_units = 0;
            return -ENOMEM;
        }
    }
    size_t n = 0;
    for (size_t off = 0; off < len; n++) {
        uint32_t cp;
        size_t k = utf8_get(p + off, len - off, &cp);
        if (k == 0) {
            /* a bad byte: split like llama.cpp's U+FFFD (a symbol), keep the byte */
            e->units[n] = (struct unit){.cp = 0xFFFD, .flags = MFS_UC_SYMBOL};
            k = 1;
        } else {
            e->units[n] = (struct unit){.cp = cp, .flags = mfs_uc_flags(cp)};
        }
        e->uoff[n] = (uint32_t)off;
        off += k;
    }
    e->uoff[n] = (uint32_t)len;

    /* start with one word, the whole text; each pass splits every word further */
    uint32_t *cur = e->seg, *next = e->seg2;
    size_t n_cur = 1;
    cur[0] = (uint32_t)n;
    for (const uint8_t *pass = k_pre_passes[e->t->pre]; *pass != P_END; pass++) {
        struct seg s = {.u = e->units, .out = next};
        for (size_t i = 0; i < n_cur; i++) {
            s.ini = s.prev = i ? cur[i - 1] : 0;
            s.end = cur[i];
            run_pass(&s, (enum pass) * pass);
            seg_word(&s, s.end); /* every pass covers its segment; this only makes sure */
        }
        uint32_t *tmp = cur;
        cur = next;
        next = tmp;
        n_cur = s.n_out;
    }
    *words = cur;
    *n_words = n_cur;
    return 0;
}

static int bpe_encode(struct enc *e, const char *text, size_t len)
{
    if (len == 0)
        return 0;
    const uint32_t *words;
    size_t n_words;
    int rc = split_words(e, text, len, &words, &n_words);
    for (size_t i = 0; !rc && i < n_words; i++) {
        size_t b0 = e->uoff[i ? words[i - 1] : 0], b1 = e->uoff[words[i]];
        rc = bpe_word(e, (const uint8_t *)text + b0, b1 - b0);
    }
    return rc;
}

int mfs_tok_split(const mfs_tokenizer *t, const char *text, size_t len, size_t **ends, size_t *n_ends)
{
    *ends = NULL;
    *n_ends = 0;
    if (t->model != MODEL_BPE)
        return -EINVAL;
    if (len > MFS_TOKENIZER_MAX_TEXT)
        return -EOVERFLOW;
    struct enc e = {.t = t};
    const uint32_t *words;
    size_t n_words = 0;
    int rc = len ? split_words(&e, text, len, &words, &n_words) : 0;
    if (!rc && !(*ends = malloc((n_words ? n_words : 1) * sizeof **ends)))
        rc = -ENOMEM;
    for (size_t i = 0; !rc && i < n_words; i++)
        (*ends)[i] = e.uoff[words[i]];
    if (!rc)
        *n_ends = n_words;
    enc_free(&e);
    return rc;
}

/* ---------------------------------------------------------------- special tokens and encode */

struct frag {
    int32_t id; /* -1: raw text */
    size_t off, len;
};

struct frags {
    struct frag *v;
    size_t n, cap;
};

static int frags_push(struct frags *f, int32_t id, size_t off, size_t len)
{
    if (f->n == f->cap && grow((void **)&f->v, &f->cap, f->n + 1, sizeof *f->v))
        return -ENOMEM;
    f->v[f->n++] = (struct frag){.id = id, .off = off, .len = len};
    return 0;
}

/* tokenizer_st_partition: for each special token in turn, every occurrence inside a raw fragment
 * splits it. A pass rebuilds the list, so the whole is linear in the fragments per token. */
static int partition(const mfs_tokenizer *t, const char *text, size_t len, bool parse_special, struct frags *out)
{
    struct frags cur = {0}, nxt = {0};
    int rc = frags_push(&cur, -1, 0, len);
    for (size_t si = 0; !rc && si < t->n_special; si++) {
        int32_t id = t->special[si];
        uint16_t attr = t->attr[id];
        size_t sl = tok_len(t, id);
        if (!parse_special && (attr & (A_CONTROL | A_UNKNOWN)))
            continue;
        const char *st = tok_text(t, id);
        nxt.n = 0;
        for (size_t fi = 0; !rc && fi < cur.n; fi++) {
            struct frag f = cur.v[fi];
            if (f.id >= 0 || f.len < sl) {
                rc = frags_push(&nxt, f.id, f.off, f.len);
                continue;
            }
            size_t off = f.off, end = f.off + f.len;
            while (!rc && off < end) {
                const char *m = memmem(text + off, end - off, st, sl);
                if (!m) {
                    rc = frags_push(&nxt, -1, off, end - off);
                    break;
                }
                size_t at = (size_t)(m - text);
                size_t left = at - off;
                if (attr & A_LSTRIP)
                    while (left > 0 && ascii_space(text[off + left - 1]))
                        left--;
                if (left > 0)
                    rc = frags_push(&nxt, -1, off, left);
                if (!rc)
                    rc = frags_push(&nxt, id, 0, 0);
                off = at + sl;
                if (attr & A_RSTRIP)
                    while (off < end && ascii_space(text[off]))
                        off++;
            }
        }
        struct frags tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    free(nxt.v);
    if (rc) {
        free(cur.v);
        return rc;
    }
    *out = cur;
    return 0;
}

int mfs_tokenizer_encode(const mfs_tokenizer *t, const char *text, size_t len, bool add_special,
                         bool parse_special, int32_t **ids, size_t *n_ids)
{
    *ids = NULL;
    *n_ids = 0;
    if (len > MFS_TOKENIZER_MAX_TEXT)
        return -EOVERFLOW;
    struct enc e = {.t = t};
    struct frags fr = {0};
    int rc = 0;
    if (len > 0 && (rc = partition(t, text, len, parse_special, &fr)))
        goto out;

    if (add_special && t->add_bos && (rc = ids_push(&e.out, t->bos)))
        goto out;
    bool prev_special = true; /* SPM: the first fragment gets the space prefix */
    for (size_t i = 0; i < fr.n; i++) {
        const struct frag *f = &fr.v[i];
        if (f->id >= 0) {
            rc = ids_push(&e.out, f->id);
            prev_special = true;
        } else if (t->model == MODEL_SPM) {
            rc = spm_encode(&e, text + f->off, f->len, t->add_space_prefix && prev_special);
            prev_special = false;
        } else {
            rc = bpe_encode(&e, text + f->off, f->len);
        }
        if (rc)
            goto out;
    }
    if (add_special && t->add_eos && (rc = ids_push(&e.out, t->eos)))
        goto out;
    if (!e.out.v && (rc = grow((void **)&e.out.v, &e.out.cap, 1, sizeof *e.out.v)))
        goto out;

    *ids = e.out.v;
    *n_ids = e.out.n;
    e.out.v = NULL;
out:
    free(fr.v);
    enc_free(&e);
    return rc;
}

/* ---------------------------------------------------------------- pieces */

static int put_piece(char *buf, size_t cap, const char *p, size_t n)
{
    if (cap > 0)
        memcpy(buf, p, n < cap ? n : cap);
    return (int)n;
}

int mfs_tokenizer_piece(const mfs_tokenizer *t, int32_t id, bool special, char *buf, size_t cap)
{
    if (id < 0 || id >= t->n_vocab)
        return -EINVAL;
    uint16_t attr = t->attr[id];
    const char *text = tok_text(t, id);
    size_t len = tok_len(t, id);
    if (!special && (attr & (A_UNKNOWN | A_CONTROL)))
        return 0;
    if (attr & (A_UNKNOWN | A_CONTROL | A_USER_DEFINED))
        return put_piece(buf, cap, text, len);

    if (t->model == MODEL_SPM) {
        if (attr & A_BYTE) {
            /* validated at load: "<0xHH>" */
            char byte = (char)strtol(text + 3, NULL, 16);
            return put_piece(buf, cap, &byte, 1);
        }
        if (!(attr & A_NORMAL))
            return 0;
        size_t n = 0;
        for (size_t i = 0; i < len;) {
            char c = text[i];
            size_t k = 1;
            if (i + 3 <= len && memcmp(text + i, "\xe2\x96\x81", 3) == 0) {
                c = ' ';
                k = 3;
            }
            if (n < cap)
                buf[n] = c;
            n++;
            i += k;
        }
        return (int)n;
    }

    if (!(attr & A_NORMAL))
        return 0;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp = 0xFFFD;
        size_t k = utf8_get((const uint8_t *)text + i, len - i, &cp);
        int b = k ? cp_to_byte(cp) : -1;
        i += k ? k : 1;
        if (b >= 0) {
            if (n < cap)
                buf[n] = (char)b;
            n++;
            continue;
        }
        /* not a GPT-2 byte character: llama.cpp writes this marker */
        char u[4], tmp[32];
        size_t ul = utf8_put(u, cp);
        int m = snprintf(tmp, sizeof tmp, "[UNK_BYTE_0x");
        for (size_t j = 0; j < ul; j++)
            m += snprintf(tmp + m, sizeof tmp - (size_t)m, "%02x", (uint8_t)u[j]);
        for (int j = 0; j < m; j++, n++)
            if (n < cap)
                buf[n] = tmp[j];
        for (size_t j = 0; j <= len; j++, n++)
            if (n < cap)
                buf[n] = j < len ? text[j] : ']';
    }
    return n > INT32_MAX ? INT32_MAX : (int)n;
}

int32_t mfs_tokenizer_n_vocab(const mfs_tokenizer *t)
{
    return t->n_vocab;
}

int32_t mfs_tokenizer_bos(const mfs_tokenizer *t)
{
    return t->bos;
}

int32_t mfs_tokenizer_eos(const mfs_tokenizer *t)
{
    return t->eos;
}

bool mfs_tokenizer_is_eog(const mfs_tokenizer *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->attr[id] & A_EOG);
}

/* ---------------------------------------------------------------- loading */

void mfs_tokenizer_free(mfs_tokenizer *t)
{
    if (!t)
        return;
    free(t->off);
    free(t->text);
    free(t->score);
    free(t->attr);
    free(t->slots);
    free(t->merges);
    free(t->special);
    free(t);
}

struct load {
    const mfs_gguf *g;
    const char *name;
    mfs_err *err;
    mfs_tokenizer *t;
};

static int load_fail(struct load *l, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int load_fail(struct load *l, int rc, const char *fmt, ...)
{
    char reason[MFS_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    mfs_err_set(l->err, "%s: %s", l->name, reason);
    return rc;
}

static const char *vtype_name(const struct mfs_gguf_value *v)
{
    const char *n = mfs_gguf_vtype_name(v->type);
    return n ? n : "?";
}

/* An optional bool key: 0 (absent leaves *out), or -EINVAL for another type. */
static int load_bool(struct load *l, const char *key, bool *out)
{
    int rc = mfs_gguf_get_bool(l->g, key, out);
    if (rc == -ENOENT)
        return 0;
    if (rc)
        return load_fail(l, -EINVAL, "%s has type %s, expected bool", key, vtype_name(mfs_gguf_get(l->g, key)));
    return 0;
}

/* An optional token id key. Absent: *id unchanged. Out of range: an error if `strict`, else a
 * warning and *id unchanged (llama.cpp's behavior for every id). */
static int load_id(struct load *l, const char *key, int32_t *id, bool strict)
{
    uint64_t v;
    int rc = mfs_gguf_get_uint(l->g, key, &v);
    if (rc == -ENOENT)
        return 0;
    if (rc)
        return load_fail(l, -EINVAL, "%s is not a non-negative integer (type %s)", key,
                         vtype_name(mfs_gguf_get(l->g, key)));
    if (v >= (uint64_t)l->t->n_vocab) {
        if (strict)
            return load_fail(l, -EINVAL, "%s = %" PRIu64 " is out of range (%" PRId32 " tokens)", key, v,
                             l->t->n_vocab);
        mfs_log(MFS_LOG_WARN, "%s: %s = %" PRIu64 " is out of range (%" PRId32 " tokens), ignored", l->name, key, v,
                l->t->n_vocab);
        return 0;
    }
    *id = (int32_t)v;
    return 0;
}

/* A string key that must be there. */
static int load_str(struct load *l, const char *key, struct mfs_str *out)
{
    int rc = mfs_gguf_get_str(l->g, key, out);
    if (rc == -ENOENT)
        return load_fail(l, -EINVAL, "no %s", key);
    if (rc)
        return load_fail(l, -EINVAL, "%s has type %s, expected str", key, vtype_name(mfs_gguf_get(l->g, key)));
    return 0;
}

/* The pretty form of a string from the file for messages: at most 64 printable bytes. */
static void show(char *dst, size_t cap, const char *p, uint64_t n)
{
    size_t k = 0;
    for (uint64_t i = 0; i < n && k + 5 < cap; i++) {
        uint8_t c = (uint8_t)p[i];
        if (i == 64) {
            memcpy(dst + k, "...", 3);
            k += 3;
            break;
        }
        if (c >= 0x20 && c != 0x7F)
            dst[k++] = (char)c;
        else
            k += (size_t)snprintf(dst + k, cap - k, "\\x%02x", c);
    }
    dst[k] = '\0';
}

static int load_model_type(struct load *l)
{
    mfs_tokenizer *t = l->t;
    struct mfs_str model;
    int rc = load_str(l, "tokenizer.ggml.model", &model);
    if (rc)
        return rc;
    char shown[128];
    show(shown, sizeof shown, model.p, model.len);
    if (model.len == 5 && memcmp(model.p, "llama", 5) == 0) {
        t->model = MODEL_SPM;
        t->pre = PRE_DEFAULT;
        t->bos = 1, t->eos = 2, t->unk = 0;
        t->add_space_prefix = true;
        t->add_bos = true;
        return 0;
    }
    if (!(model.len == 4 && memcmp(model.p, "gpt2", 4) == 0))
        return load_fail(l, -ENOTSUP,
                         "tokenizer model '%s' (tokenizer.ggml.model) is not supported: only 'llama' and 'gpt2'", shown);
    t->model = MODEL_BPE;
    t->bos = 11, t->eos = 11, t->unk = -1; /* llama.cpp's defaults for gpt2 */

    struct mfs_str pre;
    rc = mfs_gguf_get_str(l->g, "tokenizer.ggml.pre", &pre);
    if (rc == -ENOENT) {
        mfs_log(MFS_LOG_WARN,
                "%s: no tokenizer.ggml.pre, using the 'default' pre-tokenizer: generation quality may suffer", l->name);
        t->pre = PRE_DEFAULT;
        return 0;
    }
    if (rc)
        return load_fail(l, -EINVAL, "tokenizer.ggml.pre has type %s, expected str",
                         vtype_name(mfs_gguf_get(l->g, "tokenizer.ggml.pre")));
    show(shown, sizeof shown, pre.p, pre.len);
    for (size_t i = 0; i < sizeof k_pre_names / sizeof k_pre_names[0]; i++) {
        if (strlen(k_pre_names[i].name) != pre.len || memcmp(k_pre_names[i].name, pre.p, pre.len) != 0)
            continue;
        t->pre = k_pre_names[i].pre;
        if (k_pre_names[i].flags & PF_NO_BOS_ID)
            t->bos = -1;
        if (k_pre_names[i].flags & PF_WHOLE_BOS)
            t->ignore_merges = t->add_bos = true;
        return 0;
    }
    for (size_t i = 0; i < sizeof k_pre_unsupported / sizeof k_pre_unsupported[0]; i++)
        if (strlen(k_pre_unsupported[i]) == pre.len && memcmp(k_pre_unsupported[i], pre.p, pre.len) == 0)
            return load_fail(l, -ENOTSUP, "pre-tokenizer '%s' (tokenizer.ggml.pre) is not implemented", shown);
    return load_fail(l, -ENOTSUP, "unknown pre-tokenizer '%s' (tokenizer.ggml.pre)", shown);
}

static int load_tokens(struct load *l)
{
    mfs_tokenizer *t = l->t;
    const struct mfs_gguf_value *tokens, *scores = NULL, *types = NULL;
    int rc = mfs_gguf_get_arr(l->g, "tokenizer.ggml.tokens", MFS_GGUF_STR, &tokens);
    if (rc == -ENOENT)
        return load_fail(l, -EINVAL, "no tokenizer.ggml.tokens");
    if (rc)
        return load_fail(l, -EINVAL, "tokenizer.ggml.tokens is not an array of strings");
    uint64_t n = tokens->arr.n;
    if (n == 0)
        return load_fail(l, -EINVAL, "tokenizer.ggml.tokens is empty");
    if (n > MFS_TOKENIZER_MAX_VOCAB)
        return load_fail(l, -EINVAL, "tokenizer.ggml.tokens has %" PRIu64 " tokens, more than %d", n,
                         MFS_TOKENIZER_MAX_VOCAB);

    rc = mfs_gguf_get_arr(l->g, "tokenizer.ggml.scores", MFS_GGUF_F32, &scores);
    if (rc == -EINVAL)
        return load_fail(l, -EINVAL, "tokenizer.ggml.scores is not an array of f32");
    if (rc == 0 && scores->arr.n != n)
        return load_fail(l, -EINVAL, "tokenizer.ggml.scores has %" PRIu64 " entries for %" PRIu64 " tokens",
                         scores->arr.n, n);
    rc = mfs_gguf_get_arr(l->g, "tokenizer.ggml.token_type", -1, &types);
    if (rc == 0 && types->arr.type != MFS_GGUF_I32 && types->arr.type != MFS_GGUF_U32)
        rc = -EINVAL;
    if (rc == -EINVAL)
        return load_fail(l, -EINVAL, "tokenizer.ggml.token_type is not an array of i32");
    if (rc == 0 && types->arr.n != n)
        return load_fail(l, -EINVAL, "tokenizer.ggml.token_type has %" PRIu64 " entries for %" PRIu64 " tokens",
                         types->arr.n, n);

    const struct mfs_str *strs = tokens->arr.data;
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++)
        total += (strs[i].len ? strs[i].len : 32) + 1; /* 32: room for "[EMPTY_i]" */
    if (total > UINT32_MAX)
        return load_fail(l, -EINVAL, "tokenizer.ggml.tokens holds more than 4 GiB of text");
    t->n_vocab = (int32_t)n;
    t->off = malloc((n + 1) * sizeof *t->off);
    t->text = malloc(total);
    t->score = calloc(n, sizeof *t->score);
    t->attr = malloc(n * sizeof *t->attr);
    if (!t->off || !t->text || !t->score || !t->attr)
        return load_fail(l, -ENOMEM, "out of memory for %" PRIu64 " tokens", n);

    uint32_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t len;
        t->off[i] = off;
        if (strs[i].len == 0) {
            /* as llama.cpp: an empty token gets a placeholder text */
            len = (uint32_t)snprintf(t->text + off, 32, "[EMPTY_%" PRIu64 "]", i);
        } else {
            len = (uint32_t)strs[i].len;
            memcpy(t->text + off, strs[i].p, len);
        }
        t->text[off + len] = '\0';
        off += len + 1;

        if (scores) {
            float s;
            memcpy(&s, (const char *)scores->arr.data + 4 * i, 4);
            if (isnan(s))
                return load_fail(l, -EINVAL, "tokenizer.ggml.scores[%" PRIu64 "] is NaN", i);
            t->score[i] = s;
        }
        int32_t ty = TT_NORMAL;
        if (types) {
            memcpy(&ty, (const char *)types->arr.data + 4 * i, 4);
            if (ty < 0 || ty >= TT_COUNT)
                return load_fail(l, -EINVAL,
                                 "tokenizer.ggml.token_type[%" PRIu64 "] = %" PRId32 " is not a token type (0..6)", i, ty);
        }
        t->attr[i] = k_type_attr[ty];
    }
    t->off[n] = off;

    /* the text -> id table, at most half full */
    uint64_t cap = table_cap(n);
    t->slots = calloc(cap, sizeof *t->slots);
    if (!t->slots)
        return load_fail(l, -ENOMEM, "out of memory for %" PRIu64 " tokens", n);
    t->slot_mask = (uint32_t)(cap - 1);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *p = tok_text(t, id);
        size_t len = tok_len(t, id);
        uint64_t h = hash_bytes(p, len);
        uint32_t i = (uint32_t)h & t->slot_mask;
        for (; t->slots[i].id1 != 0; i = (i + 1) & t->slot_mask) {
            int32_t o = (int32_t)t->slots[i].id1 - 1;
            if (t->slots[i].hash == (uint32_t)(h >> 32) && tok_len(t, o) == len &&
                memcmp(tok_text(t, o), p, len) == 0) {
                char shown[128];
                show(shown, sizeof shown, p, len);
                return load_fail(l, -EINVAL, "tokenizer.ggml.tokens[%" PRId32 "] '%s' repeats token %" PRId32, id,
                                 shown, o);
            }
        }
        t->slots[i] = (struct tok_slot){.hash = (uint32_t)(h >> 32), .id1 = (uint32_t)id + 1};
    }
    return 0;
}

static int load_merges(struct load *l)
{
    mfs_tokenizer *t = l->t;
    const struct mfs_gguf_value *merges;
    int rc = mfs_gguf_get_arr(l->g, "tokenizer.ggml.merges", MFS_GGUF_STR, &merges);
    if (rc == -ENOENT)
        return load_fail(l, -EINVAL, "no tokenizer.ggml.merges (a gpt2 tokenizer needs them)");
    if (rc)
        return load_fail(l, -EINVAL, "tokenizer.ggml.merges is not an array of strings");
    uint64_t n = merges->arr.n;
    if (n > INT32_MAX)
        return load_fail(l, -EINVAL, "tokenizer.ggml.merges has %" PRIu64 " entries", n);
    /* A merge that is kept splits a token's text in two, and (result, split point) determines it:
     * there are fewer distinct merges than bytes of token text. That bounds the table for a file
     * of millions of bogus merges too. */
    uint64_t cap = table_cap(n < t->off[t->n_vocab] ? n : t->off[t->n_vocab]);
    t->merges = calloc(cap, sizeof *t->merges);
    if (!t->merges)
        return load_fail(l, -ENOMEM, "out of memory for %" PRIu64 " merges", n);
    t->merge_mask = cap - 1;

    const struct mfs_str *strs = merges->arr.data;
    uint64_t skipped = 0, first_bad = 0;
    char *cat = NULL;
    size_t cat_cap = 0;
    for (uint64_t i = 0; i < n; i++) {
        const char *p = strs[i].p;
        size_t len = strs[i].len;
        /* "left right", split at the first space after the first byte (llama.cpp's find(' ', 1)) */
        const char *sp = len > 1 ? memchr(p + 1, ' ', len - 1) : NULL;
        int32_t left = -1, right = -1, result = -1;
        if (sp) {
            size_t ll = (size_t)(sp - p), rl = len - ll - 1;
            left = find_token(t, p, ll);
            right = find_token(t, sp + 1, rl);
            if (left >= 0 && right >= 0) {
                if (grow((void **)&cat, &cat_cap, ll + rl, 1)) {
                    free(cat);
                    return load_fail(l, -ENOMEM, "out of memory");
                }
                memcpy(cat, p, ll);
                memcpy(cat + ll, sp + 1, rl);
                result = find_token(t, cat, ll + rl);
            }
        }
        if (result < 0) {
            if (skipped++ == 0)
                first_bad = i;
            continue;
        }
        uint64_t j = merge_hash(left, right) & t->merge_mask;
        while (t->merges[j].left1 != 0 && !(t->merges[j].left1 == (uint32_t)left + 1 && t->merges[j].right == right))
            j = (j + 1) & t->merge_mask;
        if (t->merges[j].left1 != 0)
            continue; /* a repeated pair keeps its first rank, as llama.cpp's emplace */
        t->merges[j] =
            (struct merge_slot){.left1 = (uint32_t)left + 1, .right = right, .rank = (int32_t)i, .result = result};
    }
    free(cat);
    if (skipped)
        mfs_log(MFS_LOG_WARN, "%s: %" PRIu64 " of %" PRIu64 " merges do not name two tokens and their concatenation "
                "(first: #%" PRIu64 "); they are skipped", l->name, skipped, n, first_bad);
    return 0;
}

/* Text-detected special tokens, as llama.cpp's load(): for a role with no id from its key, the
 * first token with one of these texts takes it and becomes a control token. */
enum role { R_EOT, R_EOM, R_FIM_PRE, R_FIM_SUF, R_FIM_MID, R_FIM_PAD, R_FIM_REP, R_FIM_SEP, R_COUNT };

static const struct {
    const char *key;
    const char *texts[8];
} k_roles[R_COUNT] = {
    [R_EOT] = {"tokenizer.ggml.eot_token_id",
               {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
                "<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"}},
    [R_EOM] = {"tokenizer.ggml.eom_token_id", {"<|eom_id|>"}},
    [R_FIM_PRE] = {"tokenizer.ggml.fim_pre_token_id",
                   {"<|fim_prefix|>", "<fim-prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>"}},
    [R_FIM_SUF] = {"tokenizer.ggml.fim_suf_token_id",
                   {"<|fim_suffix|>", "<fim-suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81hole\xef\xbd\x9c>", "<SUF>"}},
    [R_FIM_MID] = {"tokenizer.ggml.fim_mid_token_id",
                   {"<|fim_middle|>", "<fim-middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>"}},
    [R_FIM_PAD] = {"tokenizer.ggml.fim_pad_token_id", {"<|fim_pad|>", "<fim-pad>", "<PAD>"}},
    [R_FIM_REP] = {"tokenizer.ggml.fim_rep_token_id", {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"}},
    [R_FIM_SEP] = {"tokenizer.ggml.fim_sep_token_id", {"<|file_sep|>"}},
};

/* Texts that end generation whatever their role. */
static const char *const k_eog_texts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>",
};

static int cmp_special(const void *a, const void *b, void *arg);

static int load_special(struct load *l)
{
    mfs_tokenizer *t = l->t;
    int rc;
    /* the defaults are llama.cpp's; a tiny vocab may not reach them */
    if (t->bos >= t->n_vocab)
        t->bos = -1;
    if (t->eos >= t->n_vocab)
        t->eos = -1;
    if (t->unk >= t->n_vocab)
        t->unk = -1;
    int32_t role[R_COUNT];
    for (int r = 0; r < R_COUNT; r++)
        role[r] = -1;
    int32_t ignored = -1;
    if ((rc = load_id(l, "tokenizer.ggml.bos_token_id", &t->bos, true)) ||
        (rc = load_id(l, "tokenizer.ggml.eos_token_id", &t->eos, true)) ||
        (rc = load_id(l, "tokenizer.ggml.unknown_token_id", &t->unk, true)) ||
        (rc = load_id(l, k_roles[R_EOT].key, &role[R_EOT], true)) ||
        (rc = load_id(l, k_roles[R_EOM].key, &role[R_EOM], true)) ||
        (rc = load_id(l, "tokenizer.ggml.seperator_token_id", &ignored, false)) ||
        (rc = load_id(l, "tokenizer.ggml.padding_token_id", &ignored, false)) ||
        (rc = load_id(l, "tokenizer.ggml.mask_token_id", &ignored, false)))
        return rc;
    for (int r = R_FIM_PRE; r < R_COUNT; r++)
        if ((rc = load_id(l, k_roles[r].key, &role[r], false)))
            return rc;
    /* the deprecated names win, as in llama.cpp */
    if ((rc = load_id(l, "tokenizer.ggml.prefix_token_id", &role[R_FIM_PRE], false)) ||
        (rc = load_id(l, "tokenizer.ggml.suffix_token_id", &role[R_FIM_SUF], false)) ||
        (rc = load_id(l, "tokenizer.ggml.middle_token_id", &role[R_FIM_MID], false)))
        return rc;
    if ((rc = load_bool(l, "tokenizer.ggml.add_bos_token", &t->add_bos)) ||
        (rc = load_bool(l, "tokenizer.ggml.add_eos_token", &t->add_eos)))
        return rc;
    if (t->model == MODEL_SPM && (rc = load_bool(l, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix)))
        return rc;
    if (t->add_bos && t->bos < 0)
        return load_fail(l, -EINVAL, "the tokenizer adds a BOS token but has none (tokenizer.ggml.bos_token_id)");
    if (t->add_eos && t->eos < 0)
        return load_fail(l, -EINVAL, "the tokenizer adds an EOS token but has none (tokenizer.ggml.eos_token_id)");

    for (int r = 0; r < R_COUNT; r++) {
        if (role[r] >= 0)
            continue;
        int32_t best = -1;
        for (int i = 0; i < 8 && k_roles[r].texts[i]; i++) {
            int32_t id = find_token_str(t, k_roles[r].texts[i]);
            if (id >= 0 && (best < 0 || id < best))
                best = id;
        }
        if (best >= 0) {
            role[r] = best;
            t->attr[best] |= A_CONTROL;
        }
    }
    for (size_t i = 0; i < sizeof k_eog_texts / sizeof k_eog_texts[0]; i++) {
        int32_t id = find_token_str(t, k_eog_texts[i]);
        if (id >= 0)
            t->attr[id] |= A_EOG | A_CONTROL;
    }
    const int32_t eog[] = {t->eos, role[R_EOT], role[R_EOM], role[R_FIM_PAD], role[R_FIM_REP], role[R_FIM_SEP]};
    for (size_t i = 0; i < sizeof eog / sizeof eog[0]; i++)
        if (eog[i] >= 0)
            t->attr[eog[i]] |= A_EOG;

    /* the partition order: longest text first, then lowest id (llama.cpp's sort is unstable) */
    size_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        n += (t->attr[id] & (A_CONTROL | A_USER_DEFINED | A_UNKNOWN)) != 0;
    t->special = malloc((n ? n : 1) * sizeof *t->special);
    if (!t->special)
        return load_fail(l, -ENOMEM, "out of memory");
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->attr[id] & (A_CONTROL | A_USER_DEFINED | A_UNKNOWN))
            t->special[t->n_special++] = id;
    qsort_r(t->special, t->n_special, sizeof *t->special, cmp_special, t);

    /* per-model strip attributes, as llama.cpp sets them by name */
    struct mfs_str name = {0}, pre = {0};
    (void)mfs_gguf_get_str(l->g, "general.name", &name);
    (void)mfs_gguf_get_str(l->g, "tokenizer.ggml.pre", &pre);
    char lname[256];
    size_t ln = name.len < sizeof lname - 1 ? (size_t)name.len : sizeof lname - 1;
    for (size_t i = 0; i < ln; i++)
        lname[i] = (char)(name.p[i] >= 'A' && name.p[i] <= 'Z' ? name.p[i] + 32 : name.p[i]);
    lname[ln] = '\0';
    if (pre.len && (memmem(pre.p, pre.len, "jina-v2-de", 10) || memmem(pre.p, pre.len, "jina-v2-es", 10) ||
                    memmem(pre.p, pre.len, "jina-v2-code", 12))) {
        int32_t id = find_token_str(t, "<mask>");
        if (id >= 0)
            t->attr[id] |= A_LSTRIP;
    } else if (strstr(lname, "phi-3") || strstr(lname, "phi3")) {
        for (size_t i = 0; i < t->n_special; i++)
            t->attr[t->special[i]] |= A_RSTRIP;
        int32_t id = find_token_str(t, "</s>");
        if (id >= 0)
            t->attr[id] |= A_RSTRIP;
        static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t i = 0; i < 3; i++)
            if ((id = find_token_str(t, keep[i])) >= 0)
                t->attr[id] &= (uint16_t)~A_RSTRIP;
    }
    return 0;
}

static int cmp_special(const void *a, const void *b, void *arg)
{
    const mfs_tokenizer *t = arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (tok_len(t, x) != tok_len(t, y))
        return tok_len(t, x) > tok_len(t, y) ? -1 : 1;
    return x < y ? -1 : x > y;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

static int load_bytes(struct load *l)
{
    mfs_tokenizer *t = l->t;
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        t->byte_fallback[b][0] = t->byte_fallback[b][1] = -1;
        if (t->model == MODEL_SPM) {
            char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
            char one = (char)b;
            t->byte_tok[b] = find_token_str(t, name);
            if (t->byte_tok[b] < 0)
                t->byte_tok[b] = find_token(t, &one, 1);
        } else {
            char u[4];
            size_t n = utf8_put(u, byte_to_cp((uint8_t)b));
            t->byte_tok[b] = find_token(t, u, n);
            for (size_t j = 0; j < n; j++)
                t->byte_fallback[b][j] = find_token(t, u + j, 1);
        }
    }
    if (t->model != MODEL_SPM)
        return 0;
    /* byte tokens print as their byte: their text must say which */
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const char *s = tok_text(t, id);
        if (!(t->attr[id] & A_BYTE))
            continue;
        if (tok_len(t, id) != 6 || memcmp(s, "<0x", 3) != 0 || !is_hex(s[3]) || !is_hex(s[4]) || s[5] != '>') {
            char shown[128];
            show(shown, sizeof shown, s, tok_len(t, id));
            return load_fail(l, -EINVAL, "token %" PRId32 " '%s' has type byte but is not spelled <0xNN>", id, shown);
        }
    }
    return 0;
}

int mfs_tokenizer_create(const mfs_gguf *g, const char *name, mfs_tokenizer **out, mfs_err *err)
{
    *out = NULL;
    struct load l = {.g = g, .name = name ? name : "(tokenizer)", .err = err};
    l.t = calloc(1, sizeof *l.t);
    if (!l.t)
        return load_fail(&l, -ENOMEM, "out of memory");
    int rc;
    if ((rc = load_model_type(&l)) || (rc = load_tokens(&l)) ||
        (l.t->model == MODEL_BPE && (rc = load_merges(&l))) || (rc = load_special(&l)) || (rc = load_bytes(&l))) {
        mfs_tokenizer_free(l.t);
        return rc;
    }
    mfs_log(MFS_LOG_DEBUG, "%s: %s tokenizer, %" PRId32 " tokens, pre-tokenizer %s, %zu special tokens", l.name,
            l.t->model == MODEL_SPM ? "llama (SPM)" : "gpt2 (BPE)", l.t->n_vocab,
            l.t->model == MODEL_SPM ? "none" : k_pre_desc[l.t->pre], l.t->n_special);
    *out = l.t;
    return 0;
}
