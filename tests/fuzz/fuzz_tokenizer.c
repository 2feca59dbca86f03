/* libFuzzer target: the tokenizers on arbitrary bytes.
 *
 * Input: one flag byte (bit 0: parse_special, bit 1: add_special), then the text, encoded with the
 * shared llama-spm and gpt-2 vocabs. Checked: every id is in range; gpt-2 decodes back to the
 * exact bytes; llama-spm too (after its added leading space) when there is nothing it is meant
 * to change (no special tokens parsed, no U+2581 in the text).
 * An input that starts with "GGUF" is a vocab instead: parsed, and when it makes a tokenizer,
 * a fixed text and the input itself are encoded and every id printed.
 *
 * The vocabs come from $MFS_SHARED_DATA (default ../shared/data, from the repository root), loaded
 * on the first input: the replay build (tests/fuzz/replay.c) calls only LLVMFuzzerTestOneInput. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfs_tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mfs_tokenizer *g_spm, *g_gpt2;

static mfs_tokenizer *load(const char *file)
{
    const char *dir = getenv("MFS_SHARED_DATA");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "../shared/data", file);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_tokenizer: cannot open %s (set MFS_SHARED_DATA)\n", path);
        abort();
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n)
        abort();
    fclose(f);
    mfs_gguf *g;
    mfs_tokenizer *t;
    mfs_err err;
    if (mfs_gguf_parse_memory(buf, (size_t)n, file, &g, &err) || mfs_tokenizer_create(g, file, &t, &err)) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        abort();
    }
    mfs_gguf_free(g);
    free(buf);
    return t;
}

static void init_once(void)
{
    if (g_spm)
        return;
    mfs_log_set_sink(NULL, NULL, MFS_LOG_ERROR); /* no warnings from fuzzed vocabs */
    g_spm = load("ggml-vocab-llama-spm.gguf");
    g_gpt2 = load("ggml-vocab-gpt-2.gguf");
}

/* The concatenated pieces (special tokens included); malloc'ed. */
static char *decode(const mfs_tokenizer *t, const int32_t *ids, size_t n, size_t *len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int k = mfs_tokenizer_piece(t, ids[i], true, NULL, 0);
        if (k < 0)
            abort();
        total += (size_t)k;
    }
    char *s = malloc(total + 1);
    if (!s)
        abort();
    size_t at = 0;
    for (size_t i = 0; i < n; i++)
        at += (size_t)mfs_tokenizer_piece(t, ids[i], true, s + at, total - at);
    if (at != total)
        abort();
    *len = total;
    return s;
}

static int32_t *encode(const mfs_tokenizer *t, const char *text, size_t len, bool add, bool parse, size_t *n)
{
    int32_t *ids;
    if (mfs_tokenizer_encode(t, text, len, add, parse, &ids, n))
        abort();
    for (size_t i = 0; i < *n; i++)
        if (ids[i] < 0 || ids[i] >= mfs_tokenizer_n_vocab(t)) {
            fprintf(stderr, "id %d out of range\n", ids[i]);
            abort();
        }
    return ids;
}

static void fuzz_vocab(const uint8_t *data, size_t size)
{
    mfs_gguf *g;
    mfs_tokenizer *t;
    mfs_err err;
    if (mfs_gguf_parse_memory(data, size, "fuzz", &g, &err))
        return;
    int rc = mfs_tokenizer_create(g, "fuzz", &t, &err);
    mfs_gguf_free(g);
    if (rc)
        return;
    static const char text[] = " Hello world! 123 <s> \xe2\x96\x81 \xc3\xa9\xe4\xb8\xad \xff";
    for (int pass = 0; pass < 2; pass++) {
        size_t n, len;
        int32_t *ids = pass ? encode(t, (const char *)data, size, true, true, &n)
                            : encode(t, text, sizeof text - 1, true, true, &n);
        free(decode(t, ids, n, &len));
        free(ids);
    }
    for (int32_t id = -1; id <= mfs_tokenizer_n_vocab(t); id++)
        (void)mfs_tokenizer_is_eog(t, id);
    mfs_tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size >= 4 && memcmp(data, "GGUF", 4) == 0) {
        fuzz_vocab(data, size);
        return 0;
    }
    if (size == 0)
        return 0;
    bool parse = data[0] & 1, add = data[0] & 2;
    const char *text = (const char *)data + 1;
    size_t len = size - 1, n, dlen;

    /* gpt-2 adds neither BOS nor EOS, and special tokens decode to their text: exact */
    int32_t *ids = encode(g_gpt2, text, len, add, parse, &n);
    char *d = decode(g_gpt2, ids, n, &dlen);
    if (dlen != len || memcmp(d, text, len) != 0) {
        fprintf(stderr, "gpt-2 round trip: %zu bytes in, %zu out\n", len, dlen);
        abort();
    }
    free(d);
    free(ids);

    ids = encode(g_spm, text, len, add, parse, &n);
    d = decode(g_spm, ids, n, &dlen);
    if (!parse && !add && !memmem(text, len, "\xe2\x96\x81", 3) &&
        (len == 0 ? dlen != 0 : dlen != len + 1 || d[0] != ' ' || memcmp(d + 1, text, len) != 0)) {
        fprintf(stderr, "llama-spm round trip: %zu bytes in, %zu out\n", len, dlen);
        abort();
    }
    free(d);
    free(ids);
    return 0;
}
