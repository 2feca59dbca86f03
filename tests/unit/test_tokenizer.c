/* Tokenizers: llama.cpp's tokenizer test suites for the shared llama-spm and gpt-2 vocabs pass
 * exactly, pieces give back the text (invalid UTF-8 included), special tokens are parsed as in
 * llama.cpp, each pre-tokenizer splits as its regex says, and each inconsistent vocab is refused
 * with its own message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <time.h>

#include "../../infer/tok_split.h"
#include "mfs_tokenizer.h"
#include "test_util.h"

static mfs_tokenizer *g_spm, *g_gpt2;

static mfs_tokenizer *load_shared(const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", test_shared_data(), file);
    size_t len;
    uint8_t *data = test_read_file(path, &len);
    if (!data) {
        fprintf(stderr, "cannot read %s\n", path);
        return NULL;
    }
    mfs_gguf *g = NULL;
    mfs_tokenizer *t = NULL;
    mfs_err err = {{0}};
    if (mfs_gguf_parse_memory(data, len, file, &g, &err) || mfs_tokenizer_create(g, file, &t, &err))
        fprintf(stderr, "%s\n", err.msg);
    mfs_gguf_free(g);
    free(data);
    return t;
}

static int setup(void **state)
{
    (void)state;
    g_spm = load_shared("ggml-vocab-llama-spm.gguf");
    g_gpt2 = load_shared("ggml-vocab-gpt-2.gguf");
    return g_spm && g_gpt2 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    mfs_tokenizer_free(g_spm);
    mfs_tokenizer_free(g_gpt2);
    return 0;
}

/* The concatenated pieces of ids, malloc'ed, length in *len. */
static char *decode(const mfs_tokenizer *t, const int32_t *ids, size_t n, bool special, size_t *len)
{
    size_t cap = 64, at = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) {
        int k = mfs_tokenizer_piece(t, ids[i], special, NULL, 0);
        assert_true(k >= 0);
        while (at + (size_t)k + 1 > cap)
            s = realloc(s, cap *= 2);
        assert_non_null(s);
        assert_int_equal(mfs_tokenizer_piece(t, ids[i], special, s + at, (size_t)k), k);
        at += (size_t)k;
    }
    s[at] = '\0';
    *len = at;
    return s;
}

static size_t encode(const mfs_tokenizer *t, const char *text, size_t len, bool add_special, bool parse_special,
                     int32_t **ids)
{
    size_t n = 99;
    assert_int_equal(mfs_tokenizer_encode(t, text, len, add_special, parse_special, ids, &n), 0);
    assert_non_null(*ids);
    for (size_t i = 0; i < n; i++)
        assert_true((*ids)[i] >= 0 && (*ids)[i] < mfs_tokenizer_n_vocab(t));
    return n;
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    fprintf(stderr, "    %s:", what);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

/* ---------------------------------------------------------------- llama.cpp's suites */

/* tests/test-tokenizer-0.cpp: inputs separated by "\n__ggml_vocab_test__\n", one line of ids per
 * input in .out; tokenized with add_special = false, parse_special = false. */
static void run_suite(const mfs_tokenizer *t, const char *vocab)
{
    char path[4096];
    size_t inp_len, out_len;
    snprintf(path, sizeof path, "%s/%s.inp", test_shared_data(), vocab);
    char *inp = (char *)test_read_file(path, &inp_len);
    snprintf(path, sizeof path, "%s/%s.out", test_shared_data(), vocab);
    char *outs = (char *)test_read_file(path, &out_len);
    assert_non_null(inp);
    assert_non_null(outs);
    outs = realloc(outs, out_len + 1);
    outs[out_len] = '\0';

    static const char sep[] = "\n__ggml_vocab_test__\n";
    size_t pos = 0, n_cases = 0, n_pass = 0;
    char *line = outs;
    while (pos < inp_len) {
        char *next = memmem(inp + pos, inp_len - pos, sep, sizeof sep - 1);
        size_t end = next ? (size_t)(next - inp) : inp_len;
        assert_non_null(line);
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = '\0';

        int32_t want[1024];
        size_t n_want = 0;
        for (char *p = line, *q; n_want < 1024; p = q) {
            long v = strtol(p, &q, 10);
            if (q == p)
                break;
            want[n_want++] = (int32_t)v;
        }
        int32_t *got;
        size_t n_got = encode(t, inp + pos, end - pos, false, false, &got);
        n_cases++;
        if (n_got == n_want && memcmp(got, want, n_got * sizeof *got) == 0) {
            n_pass++;
        } else {
            fprintf(stderr, "%s: case %zu '%.*s' differs\n", vocab, n_cases, (int)(end - pos), inp + pos);
            print_ids("want", want, n_want);
            print_ids("got ", got, n_got);
        }
        free(got);
        line = eol ? eol + 1 : NULL;
        pos = next ? end + sizeof sep - 1 : inp_len;
    }
    fprintf(stderr, "%s: %zu of %zu cases pass\n", vocab, n_pass, n_cases);
    assert_true(n_cases >= 40);
    assert_int_equal(n_pass, n_cases);
    free(inp);
    free(outs);
}

static void test_suite_llama_spm(void **state)
{
    (void)state;
    run_suite(g_spm, "ggml-vocab-llama-spm.gguf");
}

static void test_suite_gpt2(void **state)
{
    (void)state;
    run_suite(g_gpt2, "ggml-vocab-gpt-2.gguf");
}

/* ---------------------------------------------------------------- round trips */

static const struct {
    const char *s;
    size_t len; /* 0: strlen */
} k_texts[] = {
    {"", 0},
    {"Hello world", 0},
    {"  leading and trailing   ", 0},
    {"tabs\tand\nnewlines\r\n\r\n\n\n  \t ", 0},
    {"\xc2\xa0no-break\xe2\x80\x83" "em space\xe3\x80\x80ideographic\xc2\x85next line", 0},
    {"emoji \xf0\x9f\xa6\x99 llama \xf0\x9f\x98\xb6\xe2\x80\x8d\xf0\x9f\x8c\xab\xef\xb8\x8f fog \xe2\x9c\x85", 0},
    {"\xe6\x88\x91\xe6\x83\xb3\xe5\x9c\xa8" "apple\xe5\xb7\xa5\xe4\xbd\x9c" "1314151\xe5\xa4\xa9\xef\xbd\x9e", 0},
    {"\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 \xd0\xbd\xd0\xb5\xd1\x89\xd0\xbe \xe0\xa4\xb9\xe0\xa4\xbf\xe0\xa4\x82", 0},
    {"\xe1\x9e\x80\xe1\x9e\xb6\xe1\x9e\x93\xe1\x9f\x8b", 0},
    {"3333333 12.5e-3 \xd9\xa3\xd9\xa4 \xc2\xbd", 0},
    {"y'all DON'T we'Ve it'S 'll", 0},
    {"<s> </s> <unk> <|endoftext|> <0x0A>", 0},
    {"\x80\x81\xff\xfe invalid \xc3\x28 \xe2\x82 \xf0\x9f\x98 cut", 0},
    {"\xc0\xaf overlong \xed\xa0\x80 surrogate \xf4\x90\x80\x80 too big \xf8\x88\x80\x80\x80", 0},
    {"nul\0inside\0", 12},
    {"\x01\x02\x1b[0m control \x7f", 0},
    {"                                                                                 many spaces", 0},
    {"```c\nint main(void) { return 0; }\n```\n", 0},
    {"$+<=>^~|` !!! ??? ... ---", 0},
};

/* SPM with parse_special: a space is added before each raw fragment; the rest is the same. */
static bool same_without_spaces(const char *a, size_t na, const char *b, size_t nb)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < na && a[i] == ' ')
            i++;
        while (j < nb && b[j] == ' ')
            j++;
        if (i == na || j == nb)
            return i == na && j == nb;
        if (a[i++] != b[j++])
            return false;
    }
}

static void roundtrip(const mfs_tokenizer *t, bool spm)
{
    for (size_t i = 0; i < sizeof k_texts / sizeof k_texts[0]; i++) {
        const char *s = k_texts[i].s;
        size_t len = k_texts[i].len ? k_texts[i].len : strlen(s);
        for (int parse = 0; parse < 2; parse++) {
            int32_t *ids;
            size_t n = encode(t, s, len, false, parse, &ids), dlen;
            char *d = decode(t, ids, n, true, &dlen);
            /* SPM adds a space in front of the text and after each special token */
            bool ok;
            if (!spm)
                ok = dlen == len && memcmp(d, s, len) == 0;
            else if (len == 0)
                ok = dlen == 0;
            else if (!parse)
                ok = dlen == len + 1 && d[0] == ' ' && memcmp(d + 1, s, len) == 0;
            else
                ok = same_without_spaces(d, dlen, s, len);
            if (!ok)
                fprintf(stderr, "round trip %zu (parse_special %d): '%.*s' -> '%.*s'\n", i, parse, (int)len, s,
                        (int)dlen, d);
            assert_true(ok);
            free(d);
            free(ids);
        }
    }
}

static void test_roundtrip_gpt2(void **state)
{
    (void)state;
    roundtrip(g_gpt2, false);
}

static void test_roundtrip_spm(void **state)
{
    (void)state;
    roundtrip(g_spm, true);
}

/* Random bytes, random valid UTF-8 from every plane, and long runs: always round-trip. */
static void test_roundtrip_random(void **state)
{
    (void)state;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    char buf[4096];
    for (int iter = 0; iter < 300; iter++) {
        size_t len = 0;
        size_t want = (size_t)(iter * 13 % 1000);
        bool bytes_ok = iter % 2; /* half the texts valid UTF-8 */
        while (len + 4 < want) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint32_t cp;
            switch (x % 5) {
            case 0:
                if (bytes_ok) {
                    buf[len++] = (char)(x >> 8); /* any byte */
                    continue;
                }
                cp = 'x';
                break;
            case 1: buf[len++] = " \n\ta1'"[(x >> 8) % 6]; continue;
            case 2: cp = (uint32_t)(x >> 8) % 0x80 + 0x20; break;
            case 3: cp = (uint32_t)(x >> 8) % 0x3000; break;
            default: cp = (uint32_t)(x >> 8) % 0x110000; break;
            }
            if (cp >= 0xD800 && cp <= 0xDFFF)
                cp = 0xFFFD;
            if (cp < 0x80) {
                buf[len++] = (char)cp;
            } else if (cp < 0x800) {
                buf[len++] = (char)(0xC0 | cp >> 6), buf[len++] = (char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                buf[len++] = (char)(0xE0 | cp >> 12), buf[len++] = (char)(0x80 | (cp >> 6 & 0x3F));
                buf[len++] = (char)(0x80 | (cp & 0x3F));
            } else {
                buf[len++] = (char)(0xF0 | cp >> 18), buf[len++] = (char)(0x80 | (cp >> 12 & 0x3F));
                buf[len++] = (char)(0x80 | (cp >> 6 & 0x3F)), buf[len++] = (char)(0x80 | (cp & 0x3F));
            }
        }
        for (int v = 0; v < 2; v++) {
            const mfs_tokenizer *t = v ? g_spm : g_gpt2;
            int32_t *ids;
            size_t n = encode(t, buf, len, false, false, &ids), dlen;
            char *d = decode(t, ids, n, true, &dlen);
            if (v && len > 0) {
                /* SPM: U+2581 in the input decodes to a space */
                if (!memmem(buf, len, "\xe2\x96\x81", 3)) {
                    assert_int_equal(dlen, len + 1);
                    assert_int_equal(d[0], ' ');
                    assert_memory_equal(d + 1, buf, len);
                }
            } else {
                assert_int_equal(dlen, len);
                assert_memory_equal(d, buf, len);
            }
            free(d);
            free(ids);
        }
    }
}

/* ---------------------------------------------------------------- special tokens */

static void test_special_spm(void **state)
{
    (void)state;
    assert_int_equal(mfs_tokenizer_bos(g_spm), 1);
    assert_int_equal(mfs_tokenizer_eos(g_spm), 2);
    assert_true(mfs_tokenizer_is_eog(g_spm, 2));
    assert_false(mfs_tokenizer_is_eog(g_spm, 1));
    assert_false(mfs_tokenizer_is_eog(g_spm, -1));
    assert_false(mfs_tokenizer_is_eog(g_spm, 32000));

    int32_t *ids, *hello;
    size_t nh = encode(g_spm, "Hello", 5, false, false, &hello); /* "▁Hello" */
    assert_int_equal(nh, 1);

    /* add_special: BOS in front (add_bos_token true), no EOS */
    size_t n = encode(g_spm, "Hello", 5, true, false, &ids);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], hello[0]);
    free(ids);
    n = encode(g_spm, "", 0, true, false, &ids);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 1);
    free(ids);
    n = encode(g_spm, "", 0, false, false, &ids);
    assert_int_equal(n, 0);
    free(ids);

    /* parse_special: "<s>" and "</s>" are control tokens; text after one gets the space prefix */
    const char *s = "<s>Hello</s>";
    n = encode(g_spm, s, strlen(s), false, true, &ids);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], hello[0]);
    assert_int_equal(ids[2], 2);
    free(ids);
    /* without parse_special, the same text is plain text */
    n = encode(g_spm, s, strlen(s), false, false, &ids);
    assert_true(n > 3);
    for (size_t i = 0; i < n; i++)
        assert_true(ids[i] > 2);
    size_t dl;
    char *d = decode(g_spm, ids, n, false, &dl);
    assert_string_equal(d, " <s>Hello</s>");
    free(d);
    free(ids);

    /* pieces: control tokens print only with `special`, byte tokens as their byte */
    char buf[16];
    assert_int_equal(mfs_tokenizer_piece(g_spm, 1, false, buf, sizeof buf), 0);
    assert_int_equal(mfs_tokenizer_piece(g_spm, 1, true, buf, sizeof buf), 3);
    assert_memory_equal(buf, "<s>", 3);
    assert_int_equal(mfs_tokenizer_piece(g_spm, 0, true, buf, sizeof buf), 5); /* <unk> */
    assert_int_equal(mfs_tokenizer_piece(g_spm, 3 + 0x0A, false, buf, sizeof buf), 1);
    assert_int_equal(buf[0], '\n');
    assert_int_equal(mfs_tokenizer_piece(g_spm, hello[0], false, buf, sizeof buf), 6);
    assert_memory_equal(buf, " Hello", 6);
    /* a short buffer: the full length, the prefix written */
    memset(buf, 'x', sizeof buf);
    assert_int_equal(mfs_tokenizer_piece(g_spm, hello[0], false, buf, 3), 6);
    assert_memory_equal(buf, " Hexxx", 6);
    assert_int_equal(mfs_tokenizer_piece(g_spm, 32000, true, buf, sizeof buf), -EINVAL);
    assert_int_equal(mfs_tokenizer_piece(g_spm, -1, true, buf, sizeof buf), -EINVAL);
    free(hello);
}

static void test_special_gpt2(void **state)
{
    (void)state;
    assert_int_equal(mfs_tokenizer_n_vocab(g_gpt2), 50257);
    assert_int_equal(mfs_tokenizer_bos(g_gpt2), 50256);
    assert_int_equal(mfs_tokenizer_eos(g_gpt2), 50256);
    assert_true(mfs_tokenizer_is_eog(g_gpt2, 50256));
    assert_false(mfs_tokenizer_is_eog(g_gpt2, 0));

    const char *s = "a<|endoftext|>b<|endoftext|>";
    int32_t *ids;
    size_t n = encode(g_gpt2, s, strlen(s), false, true, &ids);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 64); /* "a" */
    assert_int_equal(ids[1], 50256);
    assert_int_equal(ids[2], 65); /* "b" */
    assert_int_equal(ids[3], 50256);
    free(ids);
    n = encode(g_gpt2, s, strlen(s), false, false, &ids);
    assert_true(n > 4);
    for (size_t i = 0; i < n; i++)
        assert_int_not_equal(ids[i], 50256);
    free(ids);
    /* gpt2 adds neither BOS nor EOS by default */
    n = encode(g_gpt2, "a", 1, true, false, &ids);
    assert_int_equal(n, 1);
    free(ids);
    char buf[32];
    assert_int_equal(mfs_tokenizer_piece(g_gpt2, 50256, false, buf, sizeof buf), 0);
    assert_int_equal(mfs_tokenizer_piece(g_gpt2, 50256, true, buf, sizeof buf), 13);
    assert_int_equal(mfs_tokenizer_piece(g_gpt2, 220, false, buf, sizeof buf), 1); /* "Ġ" */
    assert_int_equal(buf[0], ' ');
}

/* ---------------------------------------------------------------- tiny vocabs */

/* A GGUF with the given tokens (and scores and types when not NULL). */
static mfs_gguf *tiny(const char *model, const char *const *tokens, size_t n, const float *scores,
                      const int32_t *types)
{
    mfs_gguf *g = mfs_gguf_new();
    assert_non_null(g);
    struct mfs_str *strs = calloc(n, sizeof *strs);
    for (size_t i = 0; i < n; i++)
        strs[i] = (struct mfs_str){strlen(tokens[i]), tokens[i]};
    if (model)
        assert_int_equal(mfs_gguf_set_str(g, "tokenizer.ggml.model", model), 0);
    assert_int_equal(mfs_gguf_set_arr_str(g, "tokenizer.ggml.tokens", strs, n), 0);
    if (scores)
        assert_int_equal(mfs_gguf_set_arr(g, "tokenizer.ggml.scores", MFS_GGUF_F32, scores, n), 0);
    if (types)
        assert_int_equal(mfs_gguf_set_arr(g, "tokenizer.ggml.token_type", MFS_GGUF_I32, types, n), 0);
    free(strs);
    return g;
}

static void set_strs(mfs_gguf *g, const char *key, const char *const *items, size_t n)
{
    struct mfs_str *strs = calloc(n ? n : 1, sizeof *strs);
    for (size_t i = 0; i < n; i++)
        strs[i] = (struct mfs_str){strlen(items[i]), items[i]};
    assert_int_equal(mfs_gguf_set_arr_str(g, key, strs, n), 0);
    free(strs);
}

/* create must fail with rc and a message containing `what` */
static void expect_error(const mfs_gguf *g, int rc, const char *what)
{
    mfs_tokenizer *t = (mfs_tokenizer *)1;
    mfs_err err = {{0}};
    int got = mfs_tokenizer_create(g, "tiny.gguf", &t, &err);
    if (got != rc || !strstr(err.msg, what) || strncmp(err.msg, "tiny.gguf: ", 11) != 0)
        fprintf(stderr, "want %d '%s', got %d '%s'\n", rc, what, got, err.msg);
    assert_int_equal(got, rc);
    assert_null(t);
    assert_non_null(strstr(err.msg, what));
    assert_memory_equal(err.msg, "tiny.gguf: ", 11);
}

static const char *const k_spm_tokens[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "\xe2\x96\x81" "a",
                                           "ab", "\xe2\x96\x81" "ab", "<0x0A>", "<tool>", "<|im_end|>"};
static const float k_spm_scores[] = {0, 0, 0, -1, -2, -2, -3, -1, -0.5f, 0, 0, 0};
static const int32_t k_spm_types[] = {2, 3, 3, 1, 1, 1, 1, 1, 1, 6, 4, 1};
#define N_SPM (sizeof k_spm_tokens / sizeof k_spm_tokens[0])

static mfs_tokenizer *create_ok(const mfs_gguf *g)
{
    mfs_tokenizer *t = NULL;
    mfs_err err = {{0}};
    int rc = mfs_tokenizer_create(g, "tiny.gguf", &t, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    return t;
}

static void expect_ids(const mfs_tokenizer *t, const char *text, bool add, bool parse, const int32_t *want,
                       size_t n_want)
{
    int32_t *ids;
    size_t n = encode(t, text, strlen(text), add, parse, &ids);
    if (n != n_want || memcmp(ids, want, n * sizeof *ids) != 0) {
        fprintf(stderr, "'%s':\n", text);
        print_ids("want", want, n_want);
        print_ids("got ", ids, n);
        fail();
    }
    free(ids);
}

#define EXPECT(t, text, add, parse, ...)                                                                               \
    do {                                                                                                               \
        const int32_t want_[] = {__VA_ARGS__};                                                                         \
        expect_ids(t, text, add, parse, want_, sizeof want_ / sizeof want_[0]);                                        \
    } while (0)

static void test_tiny_spm(void **state)
{
    (void)state;
    mfs_gguf *g = tiny("llama", k_spm_tokens, N_SPM, k_spm_scores, k_spm_types);
    mfs_tokenizer *t = create_ok(g);
    /* "▁ab" beats "▁a"+"b" by score; bytes without a token become <unk> (no byte tokens but \n) */
    EXPECT(t, "ab", false, false, 8);
    EXPECT(t, "ab ab", true, false, 1, 8, 8);
    EXPECT(t, "ba\n", false, false, 3, 5, 4, 9);
    EXPECT(t, "c", false, false, 3, 0);
    /* user-defined "<tool>" is split out even without parse_special; control "<s>" only with it */
    EXPECT(t, "a<tool>a", false, false, 6, 10, 6); /* a space prefix after a special token too */
    EXPECT(t, "<s>a", false, true, 1, 6);
    /* "<|im_end|>" is promoted to a control, end-of-generation token, as llama.cpp does */
    assert_true(mfs_tokenizer_is_eog(t, 11));
    EXPECT(t, "<|im_end|>", false, true, 11);
    char buf[16];
    assert_int_equal(mfs_tokenizer_piece(t, 11, false, buf, sizeof buf), 0);
    assert_int_equal(mfs_tokenizer_piece(t, 10, false, buf, sizeof buf), 6); /* user-defined: printed */
    mfs_tokenizer_free(t);

    /* no space prefix, EOS added */
    assert_int_equal(mfs_gguf_set_bool(g, "tokenizer.ggml.add_space_prefix", false), 0);
    assert_int_equal(mfs_gguf_set_bool(g, "tokenizer.ggml.add_eos_token", true), 0);
    assert_int_equal(mfs_gguf_set_bool(g, "tokenizer.ggml.add_bos_token", false), 0);
    t = create_ok(g);
    EXPECT(t, "ab", true, false, 7, 2);
    mfs_tokenizer_free(t);

    /* phi-3: special tokens eat the whitespace after them (rstrip), but not <s> */
    assert_int_equal(mfs_gguf_set_str(g, "general.name", "Phi-3 mini"), 0);
    t = create_ok(g);
    EXPECT(t, "<tool>  a", false, false, 10, 4);
    EXPECT(t, "<s> a", false, true, 1, 6); /* "<s>" keeps the space: "▁a" */
    EXPECT(t, "<tool> a", false, true, 10, 4);
    mfs_tokenizer_free(t);
    mfs_gguf_free(g);
}

/* GPT-2 byte characters for the bytes used below, merges over them. */
static void test_tiny_bpe(void **state)
{
    (void)state;
    static const char *const tokens[] = {"a", "b", "c", "\xc4\xa0" /* Ġ = space */, "ab", "abc", "\xc4\xa0" "a",
                                         "\xc4\xa0" "ab", "1", "2", "12", "<|end|>", "bc", "ca"};
    static const char *const merges[] = {"a b", "\xc4\xa0 a", "ab c", "\xc4\xa0" "a b", "1 2", "b c",
                                         "x y", "nospace", "a zz"};
    mfs_gguf *g = tiny("gpt2", tokens, 14, NULL, NULL);
    set_strs(g, "tokenizer.ggml.merges", merges, 9);
    assert_int_equal(mfs_gguf_set_str(g, "tokenizer.ggml.pre", "gpt-2"), 0);
    mfs_tokenizer *t = create_ok(g);
    /* merges by rank: "a b" (0) before "b c" (5), so "abc" = ab+c -> abc */
    EXPECT(t, "abc", false, false, 5);
    EXPECT(t, "bc", false, false, 12);
    EXPECT(t, " ab ab", false, false, 3, 4, 3, 4); /* "a b" ranks before "Ġ a"; there is no "Ġ ab" */
    EXPECT(t, "12 1", false, false, 10, 3, 8);
    /* "<|end|>" is promoted to control: only with parse_special */
    EXPECT(t, "a<|end|>", false, true, 0, 11);
    assert_true(mfs_tokenizer_is_eog(t, 11));
    EXPECT(t, "ca", true, false, 2, 0); /* gpt-2: no BOS added, merges only */
    mfs_tokenizer_free(t);

    /* llama3 ignores merges when the whole word is a token, and adds BOS */
    assert_int_equal(mfs_gguf_set_str(g, "tokenizer.ggml.pre", "llama-bpe"), 0);
    assert_int_equal(mfs_gguf_set_u32(g, "tokenizer.ggml.bos_token_id", 2), 0);
    t = create_ok(g);
    EXPECT(t, "abc", true, false, 2, 5);
    EXPECT(t, "121", false, false, 10, 8); /* \p{N}{1,3}: "121" is one word, not a token: merges */
    EXPECT(t, "ca", false, false, 13);     /* no merge makes "ca", but it is a token */
    mfs_tokenizer_free(t);

    /* dbrx splits like llama3 but neither adds BOS nor takes whole words */
    assert_int_equal(mfs_gguf_set_str(g, "tokenizer.ggml.pre", "dbrx"), 0);
    t = create_ok(g);
    EXPECT(t, "ca", true, false, 2, 0);
    mfs_tokenizer_free(t);
    mfs_gguf_free(g);
}

/* A gpt2 tokenizer of just the 256 byte characters, no merges, with the given pre-tokenizer. */
static mfs_tokenizer *byte_vocab(const char *pre)
{
    char bytes[256][3] = {{0}};
    const char *tokens[256];
    for (int b = 0; b < 256; b++) {
        uint32_t cp = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE ? (uint32_t)b
                      : b <= 0x20 ? 0x100u + (uint32_t)b
                      : b <= 0xA0 ? 0x100u + 33 + (uint32_t)b - 0x7F
                                  : 0x143u;
        if (cp < 0x80) {
            bytes[b][0] = (char)cp;
        } else {
            bytes[b][0] = (char)(0xC0 | cp >> 6);
            bytes[b][1] = (char)(0x80 | (cp & 0x3F));
        }
        tokens[b] = bytes[b];
    }
    mfs_gguf *g = tiny("gpt2", tokens, 256, NULL, NULL);
    set_strs(g, "tokenizer.ggml.merges", NULL, 0);
    assert_int_equal(mfs_gguf_set_str(g, "tokenizer.ggml.pre", pre), 0);
    assert_int_equal(mfs_gguf_set_bool(g, "tokenizer.ggml.add_bos_token", false), 0);
    mfs_tokenizer *t = create_ok(g);
    mfs_gguf_free(g);
    return t;
}

static void print_split(const char *pre, const char *text, const size_t *ends, size_t n)
{
    fprintf(stderr, "pre '%s' splits '%s' into", pre, text);
    for (size_t i = 0, at = 0; i < n; at = ends[i++])
        fprintf(stderr, " '%.*s'", (int)(ends[i] - at), text + at);
    fprintf(stderr, "\n");
}

/* The words a pre-tokenizer splits text into. */
static void expect_words(const char *pre, const char *text, const char *const *words, size_t n_words)
{
    mfs_tokenizer *t = byte_vocab(pre);
    size_t *ends, n, len = strlen(text);
    assert_int_equal(mfs_tok_split(t, text, len, &ends, &n), 0);
    bool ok = n == n_words;
    for (size_t i = 0, at = 0; ok && i < n; at = ends[i++])
        ok = ends[i] - at == strlen(words[i]) && memcmp(text + at, words[i], ends[i] - at) == 0;
    if (!ok)
        print_split(pre, text, ends, n);
    assert_true(ok);
    /* and the tokens are the bytes, in order */
    int32_t *ids;
    size_t n_ids = encode(t, text, len, false, false, &ids);
    assert_int_equal(n_ids, len);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(ids[i], (uint8_t)text[i]);
    free(ids);
    free(ends);
    mfs_tokenizer_free(t);
}

/* tests/data/tokenizer-splits.txt: the regexes' own splits (scripts/gen-tokenizer-splits.py runs
 * them through Python's re): "pre <tab> text in hex <tab> word ends". */
static void test_pretokenizer_golden(void **state)
{
    (void)state;
    size_t len;
    char *data = (char *)test_read_file("tests/data/tokenizer-splits.txt", &len);
    assert_non_null(data);
    data = realloc(data, len + 1);
    data[len] = '\0';
    mfs_tokenizer *t = NULL;
    char cur_pre[32] = "";
    size_t n_lines = 0, n_bad = 0;
    for (char *line = data, *eol; *line; line = eol + 1) {
        eol = strchr(line, '\n');
        assert_non_null(eol);
        *eol = '\0';
        char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        assert_non_null(tab2);
        *tab1 = *tab2 = '\0';
        if (strcmp(line, cur_pre) != 0) {
            mfs_tokenizer_free(t);
            t = byte_vocab(line);
            snprintf(cur_pre, sizeof cur_pre, "%s", line);
        }
        char text[512];
        size_t tl = strlen(tab1 + 1) / 2;
        assert_true(tl < sizeof text);
        for (size_t i = 0; i < tl; i++)
            text[i] = (char)strtol((char[3]){tab1[1 + 2 * i], tab1[2 + 2 * i], 0}, NULL, 16);
        text[tl] = '\0';
        size_t want[512], n_want = 0;
        for (char *p = tab2 + 1, *q; n_want < 512; p = q) {
            unsigned long v = strtoul(p, &q, 10);
            if (q == p)
                break;
            want[n_want++] = v;
        }
        size_t *ends, n;
        assert_int_equal(mfs_tok_split(t, text, tl, &ends, &n), 0);
        if (n != n_want || memcmp(ends, want, n * sizeof *ends) != 0) {
            print_split(cur_pre, text, ends, n);
            n_bad++;
        }
        free(ends);
        n_lines++;
    }
    mfs_tokenizer_free(t);
    free(data);
    fprintf(stderr, "%zu golden splits, %zu differ\n", n_lines, n_bad);
    assert_true(n_lines >= 700);
    assert_int_equal(n_bad, 0);
}

#define WORDS(pre, text, ...)                                                                                          \
    do {                                                                                                               \
        const char *const w_[] = {__VA_ARGS__};                                                                        \
        expect_words(pre, text, w_, sizeof w_ / sizeof w_[0]);                                                         \
    } while (0)

static void test_pretokenizers(void **state)
{
    (void)state;
    /* llama3: contractions any case, letters with one leading non-letter, numbers by three,
     * punctuation with its newlines, newline runs, spaces before the next word */
    WORDS("llama-bpe", "Hello, y'ALL! 1234567 ok\n\n  x  ", "Hello", ",", " y", "'ALL", "!", " ", "123", "456",
          "7", " ok", "\n\n", " ", " x", "  ");
    WORDS("llama3", "a...\n\nb\r\n c\t\td y'S", "a", "...\n\n", "b", "\r\n", " c", "\t", "\td", " y", "'S");
    WORDS("llama3", "\xd0\xbf\xd1\x80\xd0\xb8 $\xd0\xbc\xd0\xb8\xd1\x80 3\xc2\xbd",
          "\xd0\xbf\xd1\x80\xd0\xb8", " $", "\xd0\xbc\xd0\xb8\xd1\x80", " ", "3\xc2\xbd");
    /* qwen2: like llama3 with single digits */
    WORDS("qwen2", "x 2024 y's", "x", " ", "2", "0", "2", "4", " y", "'s");
    /* tekken: case-aware words (camelCase splits), single digits, slashes after punctuation */
    WORDS("tekken", "helloWorld HTTPServer ABC", "hello", "World", " HTTPServer", " ABC");
    WORDS("tekken", "a//b 12 x\n\n", "a", "//", "b", " ", "1", "2", " x", "\n\n");
    /* gpt-2: contractions lower case only, space attached to the next word */
    WORDS("gpt-2", "I'm OK'S  123abc", "I", "'m", " OK", "'", "S", " ", " 123", "abc");
    /* smollm: every digit alone, then gpt-2 */
    WORDS("smollm", "ab 123 cd", "ab", " ", "1", "2", "3", " cd");
    /* default: punctuation runs first, then gpt-2, then number runs and groups of three digits */
    WORDS("default", "x+=1234567,y", "x", "+=", "123", "456", "7", ",", "y");
    /* falcon: backtick too, digits by three */
    WORDS("falcon", "a`b 12345", "a", "`", "b", " ", "123", "45");
}

static void test_corrupt_vocabs(void **state)
{
    (void)state;
    mfs_gguf *g;

    g = tiny("bert", k_spm_tokens, N_SPM, NULL, NULL);
    expect_error(g, -ENOTSUP, "tokenizer model 'bert' (tokenizer.ggml.model) is not supported");
    mfs_gguf_free(g);

    g = tiny(NULL, k_spm_tokens, N_SPM, NULL, NULL);
    expect_error(g, -EINVAL, "no tokenizer.ggml.model");
    mfs_gguf_free(g);

    g = tiny("llama", k_spm_tokens, N_SPM, k_spm_scores, k_spm_types);
    assert_int_equal(mfs_gguf_set_arr(g, "tokenizer.ggml.scores", MFS_GGUF_F32, k_spm_scores, N_SPM - 1), 0);
    expect_error(g, -EINVAL, "tokenizer.ggml.scores has 11 entries for 12 tokens");
    assert_int_equal(mfs_gguf_set_arr(g, "tokenizer.ggml.scores", MFS_GGUF_I32, k_spm_types, N_SPM), 0);
    expect_error(g, -EINVAL, "tokenizer.ggml.scores is not an array of f32");
    float nan_scores[N_SPM];
    memcpy(nan_scores, k_spm_scores, sizeof nan_scores);
    nan_scores[5] = NAN;
    assert_int_equal(mfs_gguf_set_arr(g, "tokenizer.ggml.scores", MFS_GGUF_F32, nan_scores, N_SPM), 0);
    expect_error(g, -EINVAL, "tokenizer.ggml.scores[5] is NaN");
    assert_int_equal(mfs_gguf_set_arr(g, "tokenizer.ggml.scores", MFS_GGUF_F32, k_spm_scores, N_SPM), 0);

    assert_int_equal(mfs_gguf_set_arr(g, "tokenizer.ggml.token_type", MFS_GGUF_I32, k_spm_types, 3), 0);
    expect_error(g, -EINVAL, "tokenizer.ggml.token_type has 3 entries for 12 tokens");
    int32_t bad_types[N_SPM];
    memcpy(bad_types, k_spm_types, sizeof bad_types);
    bad_types[4] = 9;
    assert_int_equal(mfs_gguf_set_arr(g, "tokenizer.ggml.token_type", MFS_GGUF_I32, bad_types, N_SPM), 0);
    expect_error(g, -EINVAL, "tokenizer.ggml.token_type[4] = 9 is not a token type");
    bad_types[4] = 6; /* "a" as a byte token */
    assert_int_equal(mfs_gguf_set_arr(g, "tokenizer.ggml.token_type", MFS_GGUF_I32, bad_types, N_SPM), 0);
    expect_error(g, -EINVAL, "token 4 'a' has type byte but is not spelled <0xNN>");
    assert_int_equal(mfs_gguf_set_arr(g, "tokenizer.ggml.token_type", MFS_GGUF_I32, k_spm_types, N_SPM), 0);

    assert_int_equal(mfs_gguf_set_u32(g, "tokenizer.ggml.bos_token_id", 12), 0);
    expect_error(g, -EINVAL, "tokenizer.ggml.bos_token_id = 12 is out of range (12 tokens)");
    assert_int_equal(mfs_gguf_set_u32(g, "tokenizer.ggml.bos_token_id", 1), 0);
    assert_int_equal(mfs_gguf_set_u32(g, "tokenizer.ggml.eos_token_id", 4000000000u), 0);
    expect_error(g, -EINVAL, "tokenizer.ggml.eos_token_id = 4000000000 is out of range (12 tokens)");
    assert_int_equal(mfs_gguf_set_i32(g, "tokenizer.ggml.eos_token_id", -1), 0);
    expect_error(g, -EINVAL, "tokenizer.ggml.eos_token_id is not a non-negative integer (type i32)");
    assert_int_equal(mfs_gguf_set_str(g, "tokenizer.ggml.eos_token_id", "2"), 0);
    expect_error(g, -EINVAL, "tokenizer.ggml.eos_token_id is not a non-negative integer (type str)");
    assert_int_equal(mfs_gguf_set_u32(g, "tokenizer.ggml.eos_token_id", 2), 0);
    /* an optional id out of range is only a warning, as in llama.cpp */
    assert_int_equal(mfs_gguf_set_u32(g, "tokenizer.ggml.padding_token_id", 12), 0);
    mfs_tokenizer_free(create_ok(g));
    assert_int_equal(mfs_gguf_set_str(g, "tokenizer.ggml.add_bos_token", "yes"), 0);
    expect_error(g, -EINVAL, "tokenizer.ggml.add_bos_token has type str, expected bool");
    assert_int_equal(mfs_gguf_remove(g, "tokenizer.ggml.add_bos_token"), 0);
    assert_int_equal(mfs_gguf_set_str(g, "tokenizer.ggml.model", "gpt2"), 0);
    expect_error(g, -EINVAL, "no tokenizer.ggml.merges");
    mfs_gguf_free(g);

    /* a tokenizer that adds a BOS it does not have (the default BOS 1 is past 1 token) */
    static const char *const one[] = {"x"};
    g = tiny("llama", one, 1, NULL, NULL);
    expect_error(g, -EINVAL, "adds a BOS token but has none");
    assert_int_equal(mfs_gguf_set_bool(g, "tokenizer.ggml.add_bos_token", false), 0);
    mfs_tokenizer_free(create_ok(g));
    mfs_gguf_free(g);

    static const char *const dup[] = {"<unk>", "<s>", "</s>", "a", "b", "a"};
    g = tiny("llama", dup, 6, NULL, NULL);
    expect_error(g, -EINVAL, "tokenizer.ggml.tokens[5] 'a' repeats token 3");
    mfs_gguf_free(g);

    g = tiny("llama", dup, 0, NULL, NULL);
    expect_error(g, -EINVAL, "tokenizer.ggml.tokens is empty");
    assert_int_equal(mfs_gguf_set_u32(g, "tokenizer.ggml.tokens", 5), 0);
    expect_error(g, -EINVAL, "tokenizer.ggml.tokens is not an array of strings");
    assert_int_equal(mfs_gguf_remove(g, "tokenizer.ggml.tokens"), 0);
    expect_error(g, -EINVAL, "no tokenizer.ggml.tokens");
    mfs_gguf_free(g);

    /* gpt2: unknown and unimplemented pre-tokenizers are named */
    static const char *const bpe[] = {"a", "b", "ab"};
    static const char *const merges[] = {"a b"};
    g = tiny("gpt2", bpe, 3, NULL, NULL);
    set_strs(g, "tokenizer.ggml.merges", merges, 1);
    assert_int_equal(mfs_gguf_set_str(g, "tokenizer.ggml.pre", "llama5"), 0);
    expect_error(g, -ENOTSUP, "unknown pre-tokenizer 'llama5' (tokenizer.ggml.pre)");
    assert_int_equal(mfs_gguf_set_str(g, "tokenizer.ggml.pre", "deepseek-coder"), 0);
    expect_error(g, -ENOTSUP, "pre-tokenizer 'deepseek-coder' (tokenizer.ggml.pre) is not implemented");
    assert_int_equal(mfs_gguf_set_u32(g, "tokenizer.ggml.pre", 3), 0);
    expect_error(g, -EINVAL, "tokenizer.ggml.pre has type u32, expected str");
    assert_int_equal(mfs_gguf_remove(g, "tokenizer.ggml.pre"), 0);
    mfs_tokenizer_free(create_ok(g)); /* no pre: "default", with a warning */
    assert_int_equal(mfs_gguf_set_arr(g, "tokenizer.ggml.merges", MFS_GGUF_U32, bad_types, 2), 0);
    expect_error(g, -EINVAL, "tokenizer.ggml.merges is not an array of strings");
    mfs_gguf_free(g);
}

/* ---------------------------------------------------------------- threads and speed */

/* Encode and decode from several threads at once on one tokenizer: the same ids as alone. */
struct worker {
    const char *text;
    size_t len;
    const int32_t *want[2];
    size_t n_want[2];
    int bad;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    const mfs_tokenizer *ts[2] = {g_spm, g_gpt2};
    for (int r = 0; r < 20; r++) {
        for (int v = 0; v < 2; v++) {
            int32_t *ids;
            size_t n;
            if (mfs_tokenizer_encode(ts[v], w->text, w->len, true, true, &ids, &n)) {
                w->bad++;
                continue;
            }
            w->bad += n != w->n_want[v] || memcmp(ids, w->want[v], n * sizeof *ids) != 0;
            char buf[64];
            for (size_t i = 0; i < n; i++)
                w->bad += mfs_tokenizer_piece(ts[v], ids[i], true, buf, sizeof buf) < 0;
            free(ids);
        }
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/ggml-vocab-gpt-2.gguf.inp", test_shared_data());
    size_t len;
    char *text = (char *)test_read_file(path, &len);
    assert_non_null(text);
    struct worker w[4];
    int32_t *want[2];
    size_t n_want[2];
    n_want[0] = encode(g_spm, text, len, true, true, &want[0]);
    n_want[1] = encode(g_gpt2, text, len, true, true, &want[1]);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.text = text, .len = len, .want = {want[0], want[1]}, .n_want = {n_want[0], n_want[1]}};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(w[i].bad, 0);
    }
    free(want[0]);
    free(want[1]);
    free(text);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Not a benchmark: a guard against quadratic behavior, and numbers for the log. */
static void test_speed(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/ggml-vocab-gpt-2.gguf.inp", test_shared_data());
    size_t len;
    char *text = (char *)test_read_file(path, &len);
    assert_non_null(text);
    double t0 = now();
    mfs_tokenizer *t = load_shared("ggml-vocab-gpt-2.gguf");
    double t_load = now() - t0;
    assert_non_null(t);
    const mfs_tokenizer *ts[2] = {g_spm, g_gpt2};
    for (int v = 0; v < 2; v++) {
        int32_t *ids;
        size_t n = 0;
        int reps = 20;
        t0 = now();
        for (int r = 0; r < reps; r++) {
            n = encode(ts[v], text, len, false, false, &ids);
            free(ids);
        }
        double dt = (now() - t0) / reps;
        fprintf(stderr, "%s: %zu bytes -> %zu tokens in %.3f ms (%.1f MB/s)\n", v ? "gpt-2" : "llama-spm", len, n,
                dt * 1e3, len / dt / 1e6);
        assert_true(dt < 1); /* ~0.1 ms here; generous for sanitizers and busy machines */
    }
    /* one long word and a long run of spaces: must stay near-linear */
    size_t big = 1 << 20;
    char *s = malloc(big);
    for (size_t i = 0; i < big; i++)
        s[i] = i < big / 2 ? "abcdefghij"[i % 10] : ' ';
    for (int v = 0; v < 2; v++) {
        int32_t *ids;
        t0 = now();
        size_t n = encode(ts[v], s, big, false, false, &ids);
        double dt = now() - t0;
        fprintf(stderr, "%s: 1 MiB of one word + spaces -> %zu tokens in %.1f ms\n", v ? "gpt-2" : "llama-spm", n,
                dt * 1e3);
        free(ids);
        assert_true(dt < 60); /* well under 1 s here; quadratic would take hours */
    }
    free(s);
    fprintf(stderr, "gpt-2 vocab (50257 tokens, 50000 merges): parse + tables in %.1f ms\n", t_load * 1e3);
    mfs_tokenizer_free(t);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suite_llama_spm), cmocka_unit_test(test_suite_gpt2),
        cmocka_unit_test(test_roundtrip_gpt2),  cmocka_unit_test(test_roundtrip_spm),
        cmocka_unit_test(test_roundtrip_random), cmocka_unit_test(test_special_spm),
        cmocka_unit_test(test_special_gpt2),    cmocka_unit_test(test_tiny_spm),
        cmocka_unit_test(test_tiny_bpe),        cmocka_unit_test(test_pretokenizers),
        cmocka_unit_test(test_pretokenizer_golden),
        cmocka_unit_test(test_corrupt_vocabs),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_speed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
