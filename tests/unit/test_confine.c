/* Confined opens (mfs_open_in, mfs_stat_in, mfs_model_open with a root): inside the tree every
 * file opens; a symlink anywhere on the way, a `..` and a path outside the tree are refused; without
 * a root, paths are opened as given (the tools follow symlinks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mfs_model.h"
#include "mfs_source.h"
#include "test_util.h"

static char g_dir[64];
static char g_path[512];

static const char *P(const char *rel)
{
    snprintf(g_path, sizeof g_path, "%s/%s", g_dir, rel);
    return g_path;
}

static int setup(void **state)
{
    (void)state;
    strcpy(g_dir, "/tmp/mfs-confine.XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    size_t len;
    uint8_t *valid = test_read_file("tests/data/corrupt/valid.gguf", &len);
    if (!valid)
        return -1;
    int bad = mkdir(P("root"), 0755) | mkdir(P("root/dir"), 0755) | mkdir(P("outside"), 0755) |
              test_write_file(P("root/dir/m.gguf"), valid, len) | test_write_file(P("outside/m.gguf"), valid, len) |
              symlink("../outside/m.gguf", P("root/link.gguf")) | symlink("../outside", P("root/dirlink")) |
              symlink("dir", P("root/inlink")) | mkdir(P("root2"), 0755);
    free(valid);
    return bad ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd);
}

static void test_open_in(void **state)
{
    (void)state;
    char rootpath[128];
    snprintf(rootpath, sizeof rootpath, "%s/root", g_dir);
    int rfd = open(rootpath, O_RDONLY | O_DIRECTORY);
    assert_true(rfd >= 0);
    struct mfs_root root = {.fd = rfd, .path = rootpath};
    int fd = mfs_open_in(&root, P("root/dir/m.gguf"), O_RDONLY);
    assert_true(fd >= 0);
    close(fd);
    fd = mfs_open_in(&root, P("root"), O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(mfs_open_in(&root, P("root/link.gguf"), O_RDONLY), -ELOOP);
    assert_int_equal(mfs_open_in(&root, P("root/dirlink/m.gguf"), O_RDONLY), -ELOOP);
    /* even a link that stays inside the tree is not followed */
    assert_int_equal(mfs_open_in(&root, P("root/inlink/m.gguf"), O_RDONLY), -ELOOP);
    assert_int_equal(mfs_open_in(&root, P("root/dir/../../outside/m.gguf"), O_RDONLY), -EXDEV);
    assert_int_equal(mfs_open_in(&root, P("outside/m.gguf"), O_RDONLY), -EXDEV);
    assert_int_equal(mfs_open_in(&root, P("root2"), O_RDONLY), -EXDEV); /* a prefix, not a parent */
    assert_int_equal(mfs_open_beneath(rfd, "/etc/passwd", O_RDONLY), -EXDEV);
    assert_int_equal(mfs_open_in(&root, P("root/missing"), O_RDONLY), -ENOENT);

    struct stat st;
    assert_int_equal(mfs_stat_in(&root, P("root/link.gguf"), &st), 0);
    assert_true(S_ISLNK(st.st_mode)); /* lstat: described, not followed */
    assert_int_equal(mfs_stat_in(&root, P("root/dirlink/m.gguf"), &st), -ELOOP);
    assert_int_equal(mfs_stat_in(&root, P("root/dir/m.gguf"), &st), 0);
    assert_true(S_ISREG(st.st_mode));

    /* without a root: as given, symlinks followed */
    fd = mfs_open_in(NULL, P("root/link.gguf"), O_RDONLY);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(mfs_stat_in(NULL, P("root/dirlink/m.gguf"), &st), 0);
    close(rfd);
}

static void test_model_confined(void **state)
{
    (void)state;
    char rootpath[128];
    snprintf(rootpath, sizeof rootpath, "%s/root", g_dir);
    int rfd = open(rootpath, O_RDONLY | O_DIRECTORY);
    assert_true(rfd >= 0);
    struct mfs_root root = {.fd = rfd, .path = rootpath};
    mfs_engine *e;
    assert_int_equal(mfs_engine_create(&(struct mfs_engine_config){.cache_bytes = 1 << 20, .threads = 1}, &e), 0);
    mfs_model *m;
    mfs_err err = {{0}};
    struct mfs_model_opts confined = {.engine = e, .root = &root}, tools = {.engine = e};
    assert_int_equal(mfs_model_open(P("root/dir/m.gguf"), &confined, &m, &err), 0);
    assert_false(mfs_model_changed(m));
    mfs_model_unref(m);
    assert_int_equal(mfs_model_open(P("root/link.gguf"), &confined, &m, &err), -ELOOP);
    assert_non_null(strstr(err.msg, "symlink"));
    assert_int_equal(mfs_model_open(P("root/dirlink/m.gguf"), &confined, &m, &err), -ELOOP);
    assert_int_equal(mfs_model_open(P("outside/m.gguf"), &confined, &m, &err), -EXDEV);
    assert_int_equal(mfs_model_open(P("root/link.gguf"), &tools, &m, &err), 0);
    mfs_model_unref(m);

    /* a model whose file becomes a symlink (to the same bytes) has changed */
    assert_int_equal(mfs_model_open(P("root/dir/m.gguf"), &confined, &m, &err), 0);
    char moved[512];
    snprintf(moved, sizeof moved, "%s/root/dir/moved.gguf", g_dir);
    assert_int_equal(rename(P("root/dir/m.gguf"), moved), 0);
    assert_int_equal(symlink("moved.gguf", P("root/dir/m.gguf")), 0);
    assert_true(mfs_model_changed(m));
    mfs_model_unref(m);
    mfs_engine_destroy(e);
    close(rfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_in),
        cmocka_unit_test(test_model_confined),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
