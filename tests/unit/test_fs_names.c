/* Name clash resolution for one source directory (DESIGN.md "What the mount shows"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "../../fs/names.h"

#define N(x) (sizeof(x) / sizeof *(x))

static void expect(const struct fs_name_res *r, const char *gguf, const char *tensors, const char *meta)
{
    if (!gguf)
        assert_null(r->gguf);
    else
        assert_string_equal(r->gguf, gguf);
    if (!tensors)
        assert_null(r->tensors);
    else
        assert_string_equal(r->tensors, tensors);
    if (!meta)
        assert_null(r->meta);
    else
        assert_string_equal(r->meta, meta);
}

static void test_no_clash(void **state)
{
    (void)state;
    const struct fs_name_req req[] = {
        {"a.gguf", "a.gguf", false},          /* plain GGUF */
        {"b.gguf.zst", "b.gguf", false},      /* compressed: shown once, decompressed */
        {"c.safetensors", "c.gguf", false},
        {"tiny", "tiny.gguf", true},          /* HF checkpoint directory: DIR/ and DIR.gguf */
        {"notes.txt", NULL, true},
    };
    struct fs_name_res res[N(req)];
    assert_int_equal(fs_names_resolve(req, N(req), NULL, 0, res), 0);
    expect(&res[0], "a.gguf", "a.tensors", "a.meta");
    expect(&res[1], "b.gguf", "b.tensors", "b.meta");
    expect(&res[2], "c.gguf", "c.tensors", "c.meta");
    expect(&res[3], "tiny.gguf", "tiny.tensors", "tiny.meta");
    expect(&res[4], NULL, NULL, NULL);
    fs_names_free(res, N(req));
}

static void test_clash_keeps_full_name(void **state)
{
    (void)state;
    const struct fs_name_req req[] = {
        {"m.gguf.zst", "m.gguf", false},
        {"m.gguf", "m.gguf", false},        /* its own name: it keeps it */
        {"m.safetensors", "m.gguf", false},
        {"x.safetensors", "x.gguf", false}, /* two renamed ones want x.gguf: neither gets it */
        {"x.gguf.zst", "x.gguf", false},
        {"y.gguf", NULL, true},             /* failed to open: shown as itself */
        {"y.gguf.zst", "y.gguf", false},
    };
    struct fs_name_res res[N(req)];
    assert_int_equal(fs_names_resolve(req, N(req), NULL, 0, res), 0);
    expect(&res[0], "m.gguf.zst.gguf", "m.gguf.zst.tensors", "m.gguf.zst.meta");
    expect(&res[1], "m.gguf", "m.tensors", "m.meta");
    expect(&res[2], "m.safetensors.gguf", "m.safetensors.tensors", "m.safetensors.meta");
    expect(&res[3], "x.safetensors.gguf", "x.safetensors.tensors", "x.safetensors.meta");
    expect(&res[4], "x.gguf.zst.gguf", "x.gguf.zst.tensors", "x.gguf.zst.meta");
    expect(&res[5], NULL, NULL, NULL);
    expect(&res[6], "y.gguf.zst.gguf", "y.gguf.zst.tensors", "y.gguf.zst.meta");
    fs_names_free(res, N(req));
}

static void test_order_does_not_matter(void **state)
{
    (void)state;
    struct fs_name_req req[] = {
        {"m.gguf.zst", "m.gguf", false},
        {"m.gguf", "m.gguf", false},
        {"q", "q.gguf", true},
        {"q.gguf", NULL, true},
    };
    for (int rot = 0; rot < 4; rot++) {
        struct fs_name_req r[N(req)];
        for (size_t i = 0; i < N(req); i++)
            r[i] = req[(i + (size_t)rot) % N(req)];
        struct fs_name_res res[N(req)];
        assert_int_equal(fs_names_resolve(r, N(r), NULL, 0, res), 0);
        for (size_t i = 0; i < N(r); i++) {
            if (!strcmp(r[i].own, "m.gguf.zst"))
                expect(&res[i], "m.gguf.zst.gguf", "m.gguf.zst.tensors", "m.gguf.zst.meta");
            else if (!strcmp(r[i].own, "m.gguf"))
                expect(&res[i], "m.gguf", "m.tensors", "m.meta");
            else if (!strcmp(r[i].own, "q")) /* q.gguf is a shown file; q's alternative is q.gguf too */
                expect(&res[i], NULL, NULL, NULL);
            else
                expect(&res[i], NULL, NULL, NULL);
        }
        fs_names_free(res, N(r));
    }
}

static void test_derived_names_yield(void **state)
{
    (void)state;
    const char *const reserved[] = {".modelfs"};
    const struct fs_name_req req[] = {
        {"a.gguf", "a.gguf", false},
        {"a.meta", NULL, true},        /* a real file wins over the derived name */
        {"b.gguf.zst", "b.gguf", false},
        {"b.tensors", NULL, true},
        {".modelfs", NULL, true},      /* reserved at the root: never given out */
        {".modelfs.gguf", ".modelfs.gguf", false},
    };
    struct fs_name_res res[N(req)];
    assert_int_equal(fs_names_resolve(req, N(req), reserved, 1, res), 0);
    expect(&res[0], "a.gguf", "a.tensors", NULL);
    expect(&res[2], "b.gguf", NULL, "b.meta");
    expect(&res[4], NULL, NULL, NULL);
    expect(&res[5], ".modelfs.gguf", ".modelfs.tensors", ".modelfs.meta");
    fs_names_free(res, N(req));
}

static void test_many(void **state)
{
    (void)state;
    enum { COUNT = 5000 };
    static struct fs_name_req req[2 * COUNT];
    static char names[2 * COUNT][32], pres[2 * COUNT][32];
    for (int i = 0; i < COUNT; i++) {
        snprintf(names[2 * i], sizeof names[0], "m%d.gguf", i);
        snprintf(names[2 * i + 1], sizeof names[0], "m%d.gguf.zst", i);
        snprintf(pres[2 * i], sizeof pres[0], "m%d.gguf", i);
        snprintf(pres[2 * i + 1], sizeof pres[0], "m%d.gguf", i);
        req[2 * i] = (struct fs_name_req){names[2 * i], pres[2 * i], false};
        req[2 * i + 1] = (struct fs_name_req){names[2 * i + 1], pres[2 * i + 1], false};
    }
    static struct fs_name_res res[2 * COUNT];
    assert_int_equal(fs_names_resolve(req, 2 * COUNT, NULL, 0, res), 0);
    for (int i = 0; i < COUNT; i++) {
        assert_string_equal(res[2 * i].gguf, pres[2 * i]);
        char want[48];
        snprintf(want, sizeof want, "m%d.gguf.zst.gguf", i);
        assert_string_equal(res[2 * i + 1].gguf, want);
    }
    fs_names_free(res, 2 * COUNT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_clash),
        cmocka_unit_test(test_clash_keeps_full_name),
        cmocka_unit_test(test_order_does_not_matter),
        cmocka_unit_test(test_derived_names_yield),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
