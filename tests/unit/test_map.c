/* mfs_map: a valid file maps with tensor pointers inside the mapping and in file order; bad files
 * and missing files are refused with a message naming them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>

#include "mfs_map.h"
#include "test_util.h"

static void test_valid(void **state)
{
    (void)state;
    mfs_map *m;
    mfs_err err = {{0}};
    assert_int_equal(mfs_map_open("tests/data/corrupt/valid.gguf", MFS_MAP_POPULATE, &m, &err), 0);
    const uint8_t *base = mfs_map_base(m);
    size_t len;
    uint8_t *file = test_read_file("tests/data/corrupt/valid.gguf", &len);
    assert_non_null(file);
    assert_int_equal(mfs_map_size(m), len);
    assert_true(mfs_map_n_tensors(m) > 0);
    for (uint64_t i = 0; i < mfs_map_n_tensors(m); i++) {
        struct mfs_map_tensor t = mfs_map_tensor(m, i);
        const uint8_t *p = t.data;
        assert_true(p >= base && p + t.info->size <= base + len);
        assert_int_equal((size_t)(p - base), mfs_gguf_data_offset(mfs_map_gguf(m)) + t.info->offset);
        assert_memory_equal(p, file + (p - base), t.info->size);
        struct mfs_map_tensor f;
        assert_int_equal(mfs_map_find(m, t.info->name.p, &f), 0);
        assert_ptr_equal(f.data, t.data);
    }
    struct mfs_map_tensor none;
    assert_int_equal(mfs_map_find(m, "no.such.tensor", &none), -ENOENT);
    free(file);
    mfs_map_close(m);
    mfs_map_close(NULL);
}

static void test_refused(void **state)
{
    (void)state;
    mfs_map *m = NULL;
    mfs_err err = {{0}};
    assert_int_equal(mfs_map_open("tests/data/corrupt/no-such-file.gguf", 0, &m, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "no-such-file.gguf"));
    assert_int_equal(mfs_map_open("tests/data/corrupt/tensor-outside-file.gguf", 0, &m, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "tensor-outside-file.gguf"));
    assert_int_equal(mfs_map_open("tests/data/corrupt", 0, &m, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not a regular file"));
    assert_null(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
