/* GGUF reader, builder and writer: real vocab files rewrite byte for byte, every value type
 * round-trips, and each handcrafted corrupt file gets its exact error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>

#include "mfs_gguf.h"
#include "test_util.h"

static void rewrite_file(const char *name, uint64_t n_tokens)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", test_shared_data(), name);
    size_t len;
    uint8_t *file = test_read_file(path, &len);
    assert_non_null(file);
    mfs_gguf *g;
    mfs_err err = {{0}};
    assert_int_equal(mfs_gguf_parse_memory(file, len, name, &g, &err), 0);
    assert_int_equal(mfs_gguf_version(g), 3);
    const struct mfs_gguf_value *tokens;
    assert_int_equal(mfs_gguf_get_arr(g, "tokenizer.ggml.tokens", MFS_GGUF_STR, &tokens), 0);
    assert_int_equal(tokens->arr.n, n_tokens);

    uint8_t *hdr;
    size_t hlen;
    assert_int_equal(mfs_gguf_write_header(g, &hdr, &hlen, &err), 0);
    assert_int_equal(hlen, mfs_gguf_data_offset(g));
    /* a vocab file holds no tensors and, as gguf-py writes it, no padding: the header is the file */
    assert_int_equal(mfs_gguf_header_size(g), len);
    assert_memory_equal(hdr, file, len);
    free(hdr);

    /* a deep copy writes the same bytes */
    mfs_gguf *d = mfs_gguf_dup(g);
    assert_non_null(d);
    assert_int_equal(mfs_gguf_write_header(d, &hdr, &hlen, &err), 0);
    assert_memory_equal(hdr, file, len);
    free(hdr);
    mfs_gguf_free(d);
    mfs_gguf_free(g);
    free(file);
}

static void test_vocab_llama_rewrites(void **state)
{
    (void)state;
    rewrite_file("ggml-vocab-llama-spm.gguf", 32000);
}

static void test_vocab_gpt2_rewrites(void **state)
{
    (void)state;
    rewrite_file("ggml-vocab-gpt-2.gguf", 50257);
}

/* Build a header with every value type, nested arrays and tensors; write, parse, compare. */
static void test_build_roundtrip(void **state)
{
    (void)state;
    mfs_gguf *g = mfs_gguf_new();
    assert_non_null(g);
    assert_int_equal(mfs_gguf_set(g, "t.u8", &(struct mfs_gguf_value){.type = MFS_GGUF_U8, .u8 = 200}), 0);
    assert_int_equal(mfs_gguf_set(g, "t.i8", &(struct mfs_gguf_value){.type = MFS_GGUF_I8, .i8 = -3}), 0);
    assert_int_equal(mfs_gguf_set(g, "t.u16", &(struct mfs_gguf_value){.type = MFS_GGUF_U16, .u16 = 60000}), 0);
    assert_int_equal(mfs_gguf_set(g, "t.i16", &(struct mfs_gguf_value){.type = MFS_GGUF_I16, .i16 = -30000}), 0);
    assert_int_equal(mfs_gguf_set_u32(g, "t.u32", 4000000000u), 0);
    assert_int_equal(mfs_gguf_set_i32(g, "t.i32", -2000000000), 0);
    assert_int_equal(mfs_gguf_set_f32(g, "t.f32", 1.5f), 0);
    assert_int_equal(mfs_gguf_set_bool(g, "t.bool", true), 0);
    assert_int_equal(mfs_gguf_set_str(g, "t.str", "hello"), 0);
    assert_int_equal(mfs_gguf_set_u64(g, "t.u64", UINT64_MAX), 0);
    assert_int_equal(mfs_gguf_set(g, "t.i64", &(struct mfs_gguf_value){.type = MFS_GGUF_I64, .i64 = INT64_MIN}), 0);
    assert_int_equal(mfs_gguf_set(g, "t.f64", &(struct mfs_gguf_value){.type = MFS_GGUF_F64, .f64 = -0.25}), 0);
    const float fs[3] = {1, 2, 3};
    assert_int_equal(mfs_gguf_set_arr(g, "t.arr_f32", MFS_GGUF_F32, fs, 3), 0);
    const struct mfs_str strs[2] = {{1, "a"}, {3, "b\0c"}};
    assert_int_equal(mfs_gguf_set_arr_str(g, "t.arr_str", strs, 2), 0);
    /* [[1, 2], ["x"]] */
    const int32_t ints[2] = {1, 2};
    struct mfs_gguf_value inner[2] = {{.type = MFS_GGUF_ARR}, {.type = MFS_GGUF_ARR}};
    inner[0].arr.type = MFS_GGUF_I32, inner[0].arr.n = 2, inner[0].arr.data = ints;
    inner[1].arr.type = MFS_GGUF_STR, inner[1].arr.n = 1, inner[1].arr.data = strs;
    struct mfs_gguf_value nested = {.type = MFS_GGUF_ARR};
    nested.arr.type = MFS_GGUF_ARR, nested.arr.n = 2, nested.arr.data = inner;
    assert_int_equal(mfs_gguf_set(g, "t.nested", &nested), 0);
    /* replacing keeps the position */
    assert_int_equal(mfs_gguf_set_str(g, "t.str", "world"), 0);
    assert_int_equal(mfs_gguf_find_key(g, "t.str"), 8);

    const int64_t ne_a[2] = {64, 3}, ne_b[1] = {5}, ne_c[2] = {32, 2};
    assert_int_equal(mfs_gguf_add_tensor(g, "a", MFS_GGML_F16, 2, ne_a), 0);
    assert_int_equal(mfs_gguf_add_tensor(g, "b", MFS_GGML_F32, 1, ne_b), 0);
    assert_int_equal(mfs_gguf_add_tensor(g, "c", MFS_GGML_Q8_0, 2, ne_c), 0);
    assert_int_equal(mfs_gguf_add_tensor(g, "a", MFS_GGML_F32, 1, ne_b), -EINVAL);
    assert_int_equal(mfs_gguf_add_tensor(g, "bad", MFS_GGML_Q8_0, 1, ne_b), -EINVAL);
    assert_int_equal(mfs_gguf_layout(g, 64), 0);
    assert_int_equal(mfs_gguf_tensor(g, 0)->offset, 0);
    assert_int_equal(mfs_gguf_tensor(g, 1)->offset, 384);        /* 64*3*2 = 384 */
    assert_int_equal(mfs_gguf_tensor(g, 2)->offset, 384 + 64);   /* 20 bytes padded to 64 */
    assert_int_equal(mfs_gguf_tensor(g, 2)->size, 2 * 34);
    assert_true(mfs_gguf_is_dense(g));

    uint8_t *hdr;
    size_t hlen;
    mfs_err err = {{0}};
    assert_int_equal(mfs_gguf_write_header(g, &hdr, &hlen, &err), 0);
    assert_int_equal(hlen % 64, 0);
    size_t total = hlen + 384 + 64 + 68;
    uint8_t *file = calloc(1, total);
    memcpy(file, hdr, hlen);
    for (size_t i = hlen; i < total; i++)
        file[i] = (uint8_t)i;
    mfs_gguf *p;
    assert_int_equal(mfs_gguf_parse_memory(file, total, "built", &p, &err), 0);
    assert_int_equal(mfs_gguf_alignment(p), 64);
    assert_int_equal(mfs_gguf_data_offset(p), hlen);
    assert_int_equal(mfs_gguf_n_tensors(p), 3);
    assert_int_equal(mfs_gguf_find_tensor(p, "c"), 2);
    assert_int_equal(mfs_gguf_find_tensor(p, "zz"), -1);
    uint64_t u;
    double f;
    struct mfs_str str;
    bool b;
    assert_int_equal(mfs_gguf_get_uint(p, "t.u32", &u), 0);
    assert_int_equal(u, 4000000000u);
    assert_int_equal(mfs_gguf_get_uint(p, "t.i32", &u), -EINVAL); /* negative */
    assert_int_equal(mfs_gguf_get_uint(p, "nope", &u), -ENOENT);
    assert_int_equal(mfs_gguf_get_float(p, "t.f64", &f), 0);
    assert_true(f == -0.25);
    assert_int_equal(mfs_gguf_get_bool(p, "t.bool", &b), 0);
    assert_true(b);
    assert_int_equal(mfs_gguf_get_str(p, "t.str", &str), 0);
    assert_string_equal(str.p, "world");
    const struct mfs_gguf_value *nv;
    assert_int_equal(mfs_gguf_get_arr(p, "t.nested", MFS_GGUF_ARR, &nv), 0);
    const struct mfs_gguf_value *in = nv->arr.data;
    assert_int_equal(in[0].arr.n, 2);
    assert_int_equal(((const int32_t *)in[0].arr.data)[1], 2);
    assert_int_equal(((const struct mfs_str *)in[1].arr.data)[0].len, 1);
    const struct mfs_gguf_value *sv;
    assert_int_equal(mfs_gguf_get_arr(p, "t.arr_str", MFS_GGUF_STR, &sv), 0);
    assert_int_equal(((const struct mfs_str *)sv->arr.data)[1].len, 3);
    assert_memory_equal(((const struct mfs_str *)sv->arr.data)[1].p, "b\0c", 3);

    uint8_t *hdr2;
    size_t hlen2;
    assert_int_equal(mfs_gguf_write_header(p, &hdr2, &hlen2, &err), 0);
    assert_int_equal(hlen2, hlen);
    assert_memory_equal(hdr2, hdr, hlen);
    free(hdr2);
    free(hdr);
    free(file);
    mfs_gguf_free(p);
    mfs_gguf_free(g);
}

/* Each line of expected.txt: FILE<TAB>the exact error message. */
static void test_corrupt_files(void **state)
{
    (void)state;
    FILE *f = fopen("tests/data/corrupt/expected.txt", "r");
    assert_non_null(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *tab = strchr(line, '\t');
        if (!tab || line[0] == '#')
            continue;
        *tab = '\0';
        const char *file = line, *want = tab + 1;
        size_t fl = strlen(file);
        if (fl < 5 || strcmp(file + fl - 5, ".gguf") != 0)
            continue; /* .zst files: test_sources */
        char path[2048];
        snprintf(path, sizeof path, "tests/data/corrupt/%s", file);
        size_t len;
        uint8_t *data = test_read_file(path, &len);
        assert_non_null(data);
        mfs_gguf *g = NULL;
        mfs_err err = {{0}};
        int rc = mfs_gguf_parse_memory(data, len, file, &g, &err);
        if (strcmp(want, "OK") == 0) {
            if (rc != 0)
                fail_msg("%s: expected success, got: %s", file, err.msg);
        } else {
            if (rc == 0)
                fail_msg("%s: parsed, expected: %s", file, want);
            if (strcmp(err.msg, want) != 0)
                fail_msg("%s:\n  expected: %s\n  got:      %s", file, want, err.msg);
        }
        mfs_gguf_free(g);
        free(data);
        n++;
    }
    fclose(f);
    assert_true(n >= 20);
}

/* Every truncation of a valid file is an error, never a crash. */
static void test_every_truncation(void **state)
{
    (void)state;
    size_t len;
    uint8_t *data = test_read_file("tests/data/corrupt/valid.gguf", &len);
    assert_non_null(data);
    for (size_t cut = 0; cut < len; cut++) {
        mfs_gguf *g = NULL;
        int rc = mfs_gguf_parse_memory(data, cut, "cut", &g, NULL);
        assert_true(rc < 0);
        assert_null(g);
    }
    free(data);
}

/* A header of N empty strings (8 zero bytes each in the file, a 16-byte slot and 8 arena bytes
 * parsed): within the memory cap it parses, past it it fails cleanly, whatever the file size. */
static void test_memory_cap(void **state)
{
    (void)state;
    static const uint8_t head[] = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
                                   1, 0, 0, 0, 0, 0, 0, 0, 't', 9, 0, 0, 0, 8, 0, 0, 0};
    uint64_t counts[2] = {2000000, 3000000}; /* 48 MB and 72 MB parsed */
    for (int i = 0; i < 2; i++) {
        size_t len = sizeof head + 8 + counts[i] * 8 + 32;
        uint8_t *file = calloc(1, len);
        assert_non_null(file);
        memcpy(file, head, sizeof head);
        memcpy(file + sizeof head, &counts[i], 8);
        mfs_gguf *g = NULL;
        mfs_err err = {{0}};
        int rc = mfs_gguf_parse_memory(file, len, "strings.gguf", &g, &err);
        if (i == 0) {
            assert_int_equal(rc, 0);
            mfs_gguf_free(g);
        } else {
            assert_int_equal(rc, -EINVAL);
            assert_string_equal(err.msg, "strings.gguf: header would take more than 64 MiB of memory (at t)");
        }
        free(file);
    }
}

static void test_type_sizes(void **state)
{
    (void)state;
    uint64_t n;
    const int64_t ne[2] = {256, 3};
    assert_int_equal(mfs_ggml_nbytes(MFS_GGML_Q4_K, 2, ne, &n), 0);
    assert_int_equal(n, 3 * 144);
    assert_int_equal(mfs_ggml_nbytes(MFS_GGML_Q6_K, 2, ne, &n), 0);
    assert_int_equal(n, 3 * 210);
    assert_int_equal(mfs_ggml_nbytes(MFS_GGML_IQ2_XXS, 2, ne, &n), 0);
    assert_int_equal(n, 3 * 66);
    assert_int_equal(mfs_ggml_nbytes(MFS_GGML_TQ1_0, 2, ne, &n), 0);
    assert_int_equal(n, 3 * 54);
    assert_int_equal(mfs_ggml_nbytes(MFS_GGML_BF16, 2, ne, &n), 0);
    assert_int_equal(n, 3 * 512);
    assert_int_equal(mfs_ggml_nbytes(4, 2, ne, &n), -EINVAL); /* removed Q4_2 */
    const int64_t huge[2] = {INT64_MAX, 2};
    assert_int_equal(mfs_ggml_nbytes(MFS_GGML_F32, 2, huge, &n), -EOVERFLOW);
    assert_string_equal(mfs_ggml_type_name(MFS_GGML_IQ4_XS), "IQ4_XS");
    assert_int_equal(mfs_ggml_type_from_name("q8_0"), MFS_GGML_Q8_0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab_llama_rewrites), cmocka_unit_test(test_vocab_gpt2_rewrites),
        cmocka_unit_test(test_build_roundtrip),      cmocka_unit_test(test_corrupt_files),
        cmocka_unit_test(test_every_truncation),     cmocka_unit_test(test_type_sizes),
        cmocka_unit_test(test_memory_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
