/* The daemon's option parsing: sizes, modelfs's own options, what goes on to libfuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "../../fs/opts.h"
#include "mfs_util.h"

static void test_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        uint64_t v;
    } ok[] = {
        {"0", 0}, {"4096", 4096}, {"64K", 64ull << 10}, {"64k", 64ull << 10}, {"256M", 256ull << 20},
        {"2G", 2ull << 30}, {"1T", 1ull << 40}, {"4MiB", 4ull << 20}, {"4MB", 4ull << 20}, {"100B", 100},
        {"18446744073709551615", UINT64_MAX}, {"16777215T", 16777215ull << 40},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        uint64_t v = 1;
        assert_int_equal(mfs_parse_size(ok[i].s, &v), 0);
        assert_true(v == ok[i].v);
    }
    static const char *const bad[] = {"", "M", "-1", "1.5G", "4 M", "4X", "4MiBs", "18446744073709551616",
                                      "16777216T", "0x10", NULL};
    for (size_t i = 0; bad[i]; i++) {
        uint64_t v = 7;
        assert_int_equal(mfs_parse_size(bad[i], &v), -EINVAL);
        assert_true(v == 7);
    }
    assert_int_equal(mfs_parse_size(NULL, &(uint64_t){0}), -EINVAL);
}

static void test_own_options(void **state)
{
    (void)state;
    struct fs_opts o;
    char err[256];
    fs_opts_init(&o);
    assert_true(o.cache == 256ull << 20 && o.readahead == 4ull << 20 && o.align == 0 && o.threads == 0);
    assert_int_equal(fs_opts_apply(&o, "align=4096", err, sizeof err), FS_OPT_CONSUMED);
    assert_int_equal(o.align, 4096);
    assert_int_equal(fs_opts_apply(&o, "align=32", err, sizeof err), FS_OPT_CONSUMED);
    assert_int_equal(o.align, 32);
    assert_int_equal(fs_opts_apply(&o, "cache=1G", err, sizeof err), FS_OPT_CONSUMED);
    assert_true(o.cache == 1ull << 30);
    assert_int_equal(fs_opts_apply(&o, "threads=3", err, sizeof err), FS_OPT_CONSUMED);
    assert_int_equal(o.threads, 3);
    assert_int_equal(fs_opts_apply(&o, "readahead=16M", err, sizeof err), FS_OPT_CONSUMED);
    assert_true(o.readahead == 16ull << 20);
    assert_int_equal(fs_opts_apply(&o, "readahead=0", err, sizeof err), FS_OPT_CONSUMED);
    assert_true(o.readahead == 0);

    static const char *const bad[] = {"align=0", "align=16", "align=48", "align=4097", "align=", "align",
                                      "align=8589934592", "cache=0", "cache=lots", "cache", "threads=0",
                                      "threads=-1", "threads=1025", "threads=2x", "readahead=2G", "readahead=",
                                      NULL};
    for (size_t i = 0; bad[i]; i++) {
        err[0] = '\0';
        assert_int_equal(fs_opts_apply(&o, bad[i], err, sizeof err), -EINVAL);
        assert_non_null(strstr(err, bad[i])); /* the message names the option */
    }
}

static void test_passed_and_dropped(void **state)
{
    (void)state;
    struct fs_opts o;
    char err[256];
    fs_opts_init(&o);
    /* libfuse's and the kernel's */
    static const char *const pass[] = {"allow_other", "default_permissions", "max_threads=4", "ro", "dev", "suid",
                                       "nodev", "nosuid", "exec", "noatime", "fsname=x", "max_read=1048576",
                                       "clone_fd", "debug", "auto_unmount", NULL};
    for (size_t i = 0; pass[i]; i++)
        assert_int_equal(fs_opts_apply(&o, pass[i], err, sizeof err), FS_OPT_PASS);
    assert_true(o.allow_other && o.default_permissions);
    /* mount(8), fstab and systemd's: dropped; rw: dropped and noted */
    static const char *const drop[] = {"defaults", "auto", "noauto", "user", "users", "nouser", "nofail",
                                       "_netdev", "x-systemd.automount", "x-systemd.requires=/models",
                                       "comment=systemd.automount", "rw", NULL};
    for (size_t i = 0; drop[i]; i++)
        assert_int_equal(fs_opts_apply(&o, drop[i], err, sizeof err), FS_OPT_CONSUMED);
    assert_true(o.saw_rw);
    /* allow_root counts as allow_other for default_permissions */
    fs_opts_init(&o);
    assert_int_equal(fs_opts_apply(&o, "allow_root", err, sizeof err), FS_OPT_PASS);
    assert_true(o.allow_other && !o.default_permissions);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_own_options),
        cmocka_unit_test(test_passed_and_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
