/* The safetensors reader and the tensor conversions: each handcrafted file of
 * tests/data/corrupt-convert gets its exact message (or opens), the converted dtypes give the
 * exact bytes, and random byte ranges of permuted and converted tensors equal the same ranges of
 * a copy permuted and converted whole, element by element. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../loader/convert.h"
#include "mfs_engine.h"
#include "mfs_ggml.h"
#include "mfs_model.h"
#include "mfs_safetensors.h"
#include "test_util.h"

static mfs_engine *g_engine;

static int setup(void **state)
{
    (void)state;
    return mfs_engine_create(&(struct mfs_engine_config){.cache_bytes = 16u << 20, .threads = 2}, &g_engine);
}

static int teardown(void **state)
{
    (void)state;
    mfs_engine_destroy(g_engine);
    return 0;
}

/* Each line of expected.txt: NAME<TAB>mfs_model_open's message, or OK. */
static void test_expected_errors(void **state)
{
    (void)state;
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir("tests/data/corrupt-convert"), 0);
    FILE *f = fopen("expected.txt", "r");
    assert_non_null(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *tab = strchr(line, '\t');
        assert_non_null(tab);
        *tab = '\0';
        const char *file = line, *want = tab + 1;
        mfs_model *m = NULL;
        mfs_err err = {{0}};
        int rc = mfs_model_open(file, &(struct mfs_model_opts){.engine = g_engine}, &m, &err);
        if (strcmp(want, "OK") == 0) {
            if (rc)
                fail_msg("%s: expected success, got: %s", file, err.msg);
            /* and every byte of it reads */
            uint8_t buf[4096];
            for (uint64_t off = 0; off < mfs_model_size(m); off += sizeof buf)
                assert_true(mfs_model_read(m, buf, sizeof buf, off) > 0);
        } else if (rc == 0) {
            fail_msg("%s: opened, expected: %s", file, want);
        } else if (strcmp(err.msg, want) != 0) {
            fail_msg("%s:\n  expected: %s\n  got:      %s", file, want, err.msg);
        }
        mfs_model_unref(m);
        n++;
    }
    fclose(f);
    assert_int_equal(chdir(cwd), 0);
    assert_true(n >= 25);
}

static void test_parse_valid(void **state)
{
    (void)state;
    size_t len;
    uint8_t *file = test_read_file("tests/data/corrupt-convert/valid.safetensors", &len);
    assert_non_null(file);
    mfs_st *st;
    mfs_err err = {{0}};
    assert_int_equal(mfs_st_parse_memory(file, len, "valid", &st, &err), 0);
    assert_int_equal(mfs_st_n_tensors(st), 2);
    const struct mfs_st_tensor *a = mfs_st_tensor(st, 0), *b = mfs_st_tensor(st, 1);
    assert_string_equal(a->name, "a");
    assert_int_equal(a->dtype, MFS_ST_F32);
    assert_int_equal(a->n_dims, 2);
    assert_int_equal(a->shape[0], 2);
    assert_int_equal(a->off, mfs_st_data_offset(st));
    assert_int_equal(a->size, 16);
    assert_string_equal(b->name, "b");
    assert_int_equal(b->off, mfs_st_data_offset(st) + 16);
    assert_int_equal(mfs_st_find(st, "b"), 1);
    assert_int_equal(mfs_st_find(st, "c"), -1);
    assert_int_equal(mfs_st_n_meta(st), 2);
    assert_string_equal(mfs_st_meta(st, 1)->key, "note");
    assert_string_equal(mfs_st_meta(st, 1)->value, "modelfs test");
    int64_t ne[4];
    assert_int_equal(mfs_st_ggml_shape(a, ne), 2);
    assert_int_equal(ne[0], 2);
    mfs_st_free(st);
    /* every prefix of the file fails cleanly */
    for (size_t n = 0; n < len; n++) {
        assert_int_not_equal(mfs_st_parse_memory(file, n, "cut", &st, &err), 0);
        assert_null(st);
    }
    free(file);
    mfs_st_free(NULL);
}

/* The converted dtypes of conversions.safetensors, byte for byte. */
static void test_conversions(void **state)
{
    (void)state;
    mfs_model *m;
    mfs_err err = {{0}};
    assert_int_equal(mfs_model_open("tests/data/corrupt-convert/conversions.safetensors",
                                    &(struct mfs_model_opts){.engine = g_engine}, &m, &err), 0);
    const mfs_gguf *g = mfs_model_gguf(m);
    static const struct {
        const char *name;
        uint32_t type;
        uint8_t bytes[16];
        size_t n;
    } want[] = {
        {"bool", MFS_GGML_I8, {1, 0}, 2},
        /* 1.0, NaN, -2.0, 2^-9 */
        {"f8_e4m3", MFS_GGML_F16, {0x00, 0x3C, 0x00, 0x7E, 0x00, 0xC0, 0x00, 0x18}, 8},
        /* 1.0, inf, -inf, the smallest subnormal of E5M2 */
        {"f8_e5m2", MFS_GGML_F16, {0x00, 0x3C, 0x00, 0x7C, 0x00, 0xFC, 0x00, 0x01}, 8},
        {"u8", MFS_GGML_I16, {255, 0, 7, 0}, 4},
        {"u16", MFS_GGML_I32, {0xFF, 0xFF, 0, 0, 1, 0, 0, 0}, 8},
        {"u32", MFS_GGML_I64, {0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0}, 8},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int64_t ti = mfs_gguf_find_tensor(g, want[i].name);
        assert_true(ti >= 0);
        const struct mfs_gguf_tensor *t = mfs_gguf_tensor(g, (uint64_t)ti);
        assert_int_equal(t->type, want[i].type);
        assert_int_equal(t->size, want[i].n);
        uint8_t buf[16];
        assert_int_equal(mfs_model_read(m, buf, want[i].n, mfs_model_data_offset(m) + t->offset), (ssize_t)want[i].n);
        assert_memory_equal(buf, want[i].bytes, want[i].n);
        /* and every single byte alone */
        for (size_t k = 0; k < want[i].n; k++) {
            assert_int_equal(mfs_model_read(m, buf, 1, mfs_model_data_offset(m) + t->offset + k), 1);
            assert_int_equal(buf[0], want[i].bytes[k]);
        }
    }
    mfs_model_unref(m);
}

static uint32_t bits(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return b;
}

static void test_element_conversions(void **state)
{
    (void)state;
#ifdef __FLT16_MAX__
    for (uint32_t h = 0; h < 65536; h++) {
        _Float16 x;
        uint16_t hb = (uint16_t)h;
        memcpy(&x, &hb, 2);
        float want = (float)x, got = mfs_half_to_float(hb);
        if (isnan(want))
            assert_true(isnan(got));
        else
            assert_int_equal(bits(got), bits(want));
    }
#endif
    for (uint32_t b = 0; b < 256; b++) {
        float f = mfs_e4m3_to_float((uint8_t)b), viah = mfs_half_to_float(mfs_e4m3_to_half((uint8_t)b));
        unsigned e = (b >> 3) & 15, mant = b & 7;
        if (e == 15 && mant == 7) {
            assert_true(isnan(f) && isnan(viah));
            continue;
        }
        double ref = e ? ldexp(1.0 + mant / 8.0, (int)e - 7) : ldexp(mant / 8.0, -6);
        if (b & 0x80)
            ref = -ref;
        assert_int_equal(bits(f), bits((float)ref));
        assert_int_equal(bits(viah), bits((float)ref));
    }
    assert_true(mfs_e4m3_to_float(0x7E) == 448.0f);
}

/* ---- the permutation */

static uint64_t rng_state = 0x243F6A8885A308D3ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}

/* Reference: the presented tensor, built whole: out row h*hd + 2i + s = stored row h*hd + s*hd/2 + i,
 * each element converted by the rules (F16/BF16 to F32, F8_E4M3 to F16, or copied). */
static uint8_t *reference(const uint8_t *stored, uint32_t dtype, uint32_t type, uint64_t rows, uint64_t cols,
                          uint64_t n_head)
{
    uint32_t ei = mfs_st_dtype_size(dtype), eo = mfs_ggml_type_size(type);
    uint8_t *out = malloc(rows * cols * eo);
    uint64_t hd = n_head ? rows / n_head : rows;
    for (uint64_t r = 0; r < rows; r++) {
        uint64_t h = r / hd, w = r % hd, src = n_head ? h * hd + (w % 2) * (hd / 2) + w / 2 : r;
        for (uint64_t c = 0; c < cols; c++) {
            const uint8_t *in = stored + (src * cols + c) * ei;
            uint8_t *o = out + (r * cols + c) * eo;
            if (dtype == MFS_ST_F16 && type == MFS_GGML_F32) {
                float f = mfs_half_to_float((uint16_t)(in[0] | in[1] << 8));
                memcpy(o, &f, 4);
            } else if (dtype == MFS_ST_BF16 && type == MFS_GGML_F32) {
                uint32_t b = (uint32_t)(in[0] | in[1] << 8) << 16;
                memcpy(o, &b, 4);
            } else if (dtype == MFS_ST_F8_E4M3) {
                uint16_t hb = mfs_e4m3_to_half(in[0]);
                memcpy(o, &hb, 2);
            } else {
                memcpy(o, in, eo);
            }
        }
    }
    return out;
}

static void check_transform(uint32_t dtype, uint32_t type, uint64_t rows, uint64_t cols, uint64_t n_head, int reads)
{
    uint32_t ei = mfs_st_dtype_size(dtype), eo = mfs_ggml_type_size(type);
    size_t lead = 24, n = rows * cols * ei; /* the tensor sits at an offset in its source */
    uint8_t *stored = malloc(lead + n);
    for (size_t i = 0; i < lead + n; i++)
        stored[i] = (uint8_t)rnd();
    uint8_t *ref = reference(stored + lead, dtype, type, rows, cols, n_head);
    mfs_source *src;
    assert_int_equal(mfs_source_open_memory(stored, lead + n, "stored", &src), 0);
    struct mfs_conv c = {.src = src, .off = lead, .dtype = dtype, .type = type, .rows = rows, .row_elems = cols,
                         .n_head = n_head};
    uint64_t size;
    assert_int_equal(mfs_conv_check(&c, &size, NULL), 0);
    assert_int_equal(size, rows * cols * eo);
    const struct mfs_transform_ops *ops;
    void *ctx;
    assert_int_equal(mfs_conv_transform(&c, &ops, &ctx), 0);
    mfs_source_unref(src); /* the transform holds its own reference */
    uint8_t *buf = malloc(size);
    assert_int_equal(ops->read(ctx, buf, size, 0), (ssize_t)size);
    assert_memory_equal(buf, ref, size);
    for (int i = 0; i < reads; i++) {
        uint64_t off = rnd() % size, len = rnd() % 3 == 0 ? rnd() % 8 + 1 : rnd() % (size - off) + 1;
        if (len > size - off)
            len = size - off;
        memset(buf, 0xAA, len);
        assert_int_equal(ops->read(ctx, buf, len, off), (ssize_t)len);
        if (memcmp(buf, ref + off, len) != 0)
            fail_msg("dtype %u -> type %u, %llu x %llu, %llu heads: bytes [%llu, +%llu) differ", dtype, type,
                     (unsigned long long)rows, (unsigned long long)cols, (unsigned long long)n_head,
                     (unsigned long long)off, (unsigned long long)len);
    }
    ops->free(ctx);
    free(buf);
    free(ref);
    free(stored);
}

static void test_permutation(void **state)
{
    (void)state;
    check_transform(MFS_ST_F16, MFS_GGML_F16, 64, 48, 4, 2000);   /* q: 4 heads of 16 rows */
    check_transform(MFS_ST_F16, MFS_GGML_F16, 32, 48, 2, 2000);   /* k: fewer heads */
    check_transform(MFS_ST_BF16, MFS_GGML_BF16, 48, 7, 3, 2000);  /* rows that are not a power of two */
    check_transform(MFS_ST_F32, MFS_GGML_F32, 16, 5, 8, 1000);    /* 2 rows per head: the identity */
    check_transform(MFS_ST_F32, MFS_GGML_F32, 24, 3, 1, 1000);    /* one head */
    check_transform(MFS_ST_F16, MFS_GGML_F32, 64, 1, 4, 1000);    /* a 1-D bias, widened and permuted */
    check_transform(MFS_ST_BF16, MFS_GGML_F32, 32, 33, 2, 1000);  /* widened rows */
    check_transform(MFS_ST_F8_E4M3, MFS_GGML_F16, 16, 9, 2, 1000); /* F8 converted and permuted */
    check_transform(MFS_ST_F16, MFS_GGML_F32, 5, 3000, 0, 1000);   /* widening only, long runs */
    check_transform(MFS_ST_F16, MFS_GGML_F16, 64, 40000, 1, 50);   /* a head over the scratch size: row by row */
}

static void test_conv_check(void **state)
{
    (void)state;
    uint64_t size;
    mfs_err err = {{0}};
    struct mfs_conv c = {.dtype = MFS_ST_F16, .type = MFS_GGML_F16, .rows = 12, .row_elems = 4, .n_head = 4};
    assert_int_equal(mfs_conv_check(&c, &size, &err), -EINVAL); /* 3 rows per head: odd */
    assert_string_equal(err.msg, "12 rows cannot be permuted for 4 heads (need a multiple of 8)");
    c.n_head = 5;
    assert_int_equal(mfs_conv_check(&c, &size, &err), -EINVAL);
    c.n_head = 3;
    assert_int_equal(mfs_conv_check(&c, &size, &err), 0);
    assert_int_equal(size, 96);
    c.type = MFS_GGML_BF16;
    assert_int_equal(mfs_conv_check(&c, &size, &err), -EINVAL);
    assert_string_equal(err.msg, "F16 cannot be presented as BF16");
    c = (struct mfs_conv){.dtype = MFS_ST_F32, .type = MFS_GGML_F32, .rows = UINT64_MAX / 2, .row_elems = 3};
    assert_int_equal(mfs_conv_check(&c, &size, &err), -EINVAL);
    assert_false(mfs_conv_supported(MFS_ST_U64, MFS_GGML_I64));
    assert_true(mfs_conv_supported(MFS_ST_BOOL, MFS_GGML_I8));
}

static void test_presented_names(void **state)
{
    (void)state;
    static const struct {
        const char *path, *want;
    } cases[] = {
        {"tests/data/corrupt-convert/valid.safetensors", "valid.gguf"},
        {"tests/data/corrupt-convert/valid.safetensors.zst", "valid.gguf"},
        {"tests/data/corrupt-convert/hf-valid", "hf-valid.gguf"},
        {"tests/data/corrupt-convert", NULL}, /* no config.json */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct stat st;
        assert_int_equal(stat(cases[i].path, &st), 0);
        char out[256];
        const char *name = strrchr(cases[i].path, '/') + 1;
        bool ok = mfs_model_presented_name(cases[i].path, name, &st, out, sizeof out);
        assert_int_equal(ok, cases[i].want != NULL);
        if (ok)
            assert_string_equal(out, cases[i].want);
    }
    /* a checkpoint whose shards are all compressed */
    char dir[] = "/tmp/mfs-st-XXXXXX", p[64];
    assert_non_null(mkdtemp(dir));
    snprintf(p, sizeof p, "%s/config.json", dir);
    assert_int_equal(test_write_file(p, "{}", 2), 0);
    snprintf(p, sizeof p, "%s/model.safetensors.zst", dir);
    assert_int_equal(test_write_file(p, "", 0), 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    char out[256];
    assert_true(mfs_model_presented_name(dir, "ckpt", &st, out, sizeof out));
    assert_string_equal(out, "ckpt.gguf");
    unlink(p);
    snprintf(p, sizeof p, "%s/config.json", dir);
    unlink(p);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expected_errors),
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_element_conversions),
        cmocka_unit_test(test_permutation),
        cmocka_unit_test(test_conv_check),
        cmocka_unit_test(test_presented_names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
