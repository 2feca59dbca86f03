/* modelfs-pack: compress a model file for modelfs. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfs_engine.h"
#include "mfs_log.h"
#include "mfs_pack.h"
#include "mfs_source.h"
#include "mfs_util.h"

static const char usage_text[] =
    "Usage: modelfs-pack [OPTION]... IN OUT\n"
    "Compress a model file so that modelfs can serve it with random access.\n"
    "\n"
    "  -l, --level N       zstd level (default 3)\n"
    "      --chunk SIZE    bytes per frame (zst, default 4M) or per tensor chunk\n"
    "                      (container, default 256K), from 4K to 64M\n"
    "  -T, --threads N     compression threads (default: online CPUs)\n"
    "      --format F      zst: zstd seekable format, restorable by `zstd -d`;\n"
    "                      container: modelfs's tensor-aware container (NAME.mfz),\n"
    "                      smaller and faster to decode for GGUF and safetensors\n"
    "                      (default: container for GGUF and safetensors inputs,\n"
    "                      zst for other files; an OUT ending in .zst is always zst)\n"
    "  -f, --force         overwrite OUT\n"
    "      --verify        decode OUT and compare it with IN\n"
    "  -q, --quiet         no progress line\n"
    "  -h, --help          show this help\n"
    "  -V, --version       show the version\n"
    "\n"
    "Exit status: 0 on success, 1 on bad input, 2 on bad usage.\n";

static void usage_error(const char *msg)
{
    fprintf(stderr, "modelfs-pack: %s\nTry 'modelfs-pack --help' for more information.\n", msg);
    exit(2);
}

struct progress {
    double start, last;
};

static void show_progress(void *user, uint64_t done, uint64_t total)
{
    struct progress *p = user;
    double now = mfs_now();
    if (now - p->last < 0.2 && done < total)
        return;
    p->last = now;
    double el = now - p->start, rate = el > 0 ? (double)done / el : 0;
    char a[32], b[32];
    fprintf(stderr, "\r%s / %s  %.0f MB/s  ETA %.0fs   ", mfs_format_size(done, a, sizeof a),
            mfs_format_size(total, b, sizeof b), rate / 1e6, rate > 0 ? (double)(total - done) / rate : 0.0);
    if (done == total)
        fputc('\n', stderr);
}

static int verify(const char *in, const char *out, mfs_err *err)
{
    mfs_engine *e;
    int rc = mfs_engine_create(&(struct mfs_engine_config){.cache_bytes = 64u << 20}, &e);
    if (rc)
        return rc;
    mfs_source *a = NULL, *b = NULL;
    const size_t block = 4u << 20;
    uint8_t *x = malloc(block), *y = malloc(block);
    if (!x || !y) {
        rc = -ENOMEM;
        goto done;
    }
    if ((rc = mfs_source_open_file(in, &a, err)) ||
        (rc = mfs_source_open(out, &(struct mfs_open_opts){.engine = e}, &b, err)))
        goto done;
    if (mfs_source_size(a) != mfs_source_size(b)) {
        mfs_err_set(err, "%s: verify failed: decodes to %llu bytes, %s has %llu", out,
                    (unsigned long long)mfs_source_size(b), in, (unsigned long long)mfs_source_size(a));
        rc = -EIO;
        goto done;
    }
    for (uint64_t off = 0; off < mfs_source_size(a); off += block) {
        size_t n = mfs_source_size(a) - off < block ? (size_t)(mfs_source_size(a) - off) : block;
        if ((rc = mfs_source_read_exact(a, x, n, off, err)) || (rc = mfs_source_read_exact(b, y, n, off, err)))
            goto done;
        if (memcmp(x, y, n) != 0) {
            mfs_err_set(err, "%s: verify failed: bytes differ in [%llu, %llu)", out, (unsigned long long)off,
                        (unsigned long long)(off + n));
            rc = -EIO;
            goto done;
        }
    }
done:
    mfs_source_unref(a);
    mfs_source_unref(b);
    mfs_engine_destroy(e);
    free(x);
    free(y);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"level", required_argument, NULL, 'l'}, {"chunk", required_argument, NULL, 'c'},
        {"threads", required_argument, NULL, 'T'}, {"format", required_argument, NULL, 'F'},
        {"force", no_argument, NULL, 'f'},       {"verify", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},       {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},     {NULL, 0, NULL, 0},
    };
    struct mfs_pack_opts opts = {.format = MFS_PACK_ZST};
    bool do_verify = false, quiet = false, format_given = false;
    int c;
    while ((c = getopt_long(argc, argv, "l:T:fqhV", longopts, NULL)) != -1) {
        char *end;
        uint64_t v;
        switch (c) {
        case 'l':
            opts.level = (int)strtol(optarg, &end, 10);
            if (*end || opts.level < 1 || opts.level > 22)
                usage_error("--level must be 1 to 22");
            break;
        case 'c':
            if (mfs_parse_size(optarg, &v) || v < 4096 || v > MFS_PACK_MAX_CHUNK)
                usage_error("--chunk must be a size from 4K to 64M");
            opts.chunk = (uint32_t)v;
            break;
        case 'T':
            opts.threads = (unsigned)strtoul(optarg, &end, 10);
            if (*end || opts.threads < 1 || opts.threads > 256)
                usage_error("--threads must be 1 to 256");
            break;
        case 'F':
            if (strcmp(optarg, "zst") == 0)
                opts.format = MFS_PACK_ZST;
            else if (strcmp(optarg, "container") == 0)
                opts.format = MFS_PACK_CONTAINER;
            else
                usage_error("--format must be zst or container");
            format_given = true;
            break;
        case 'f': opts.force = true; break;
        case 'v': do_verify = true; break;
        case 'q': quiet = true; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case 'V': printf("modelfs-pack %s\n", MFS_VERSION); return 0;
        default: usage_error("unknown option");
        }
    }
    if (argc - optind != 2)
        usage_error("expected IN and OUT");
    const char *in = argv[optind], *out = argv[optind + 1];
    size_t ol = strlen(out);
    if (ol > 4 && strcmp(out + ol - 4, ".zst") == 0) {
        if (format_given && opts.format != MFS_PACK_ZST)
            usage_error("an OUT ending in .zst is always the zstd seekable format");
        opts.format = MFS_PACK_ZST;
    } else if (!format_given) {
        opts.format = mfs_pack_default_format(in, out);
    }
    if (opts.format == MFS_PACK_CONTAINER && !quiet && !(ol > 4 && strcmp(out + ol - 4, ".mfz") == 0))
        fprintf(stderr, "modelfs-pack: note: %s does not end in .mfz; the mount presents containers named "
                        "NAME.mfz or NAME.gguf.mfz\n", out);
    struct progress prog = {.start = mfs_now()};
    if (!quiet && isatty(STDERR_FILENO)) {
        opts.progress = show_progress;
        opts.progress_user = &prog;
    }
    signal(SIGPIPE, SIG_IGN);
    mfs_err err = {{0}};
    struct mfs_pack_result res;
    int rc = mfs_pack_file(in, out, &opts, &res, &err);
    if (rc == 0 && do_verify)
        rc = verify(in, out, &err);
    if (rc) {
        fprintf(stderr, "modelfs-pack: %s\n", err.msg[0] ? err.msg : strerror(-rc));
        return 1;
    }
    if (!quiet) {
        char a[32], b[32];
        double el = mfs_now() - prog.start;
        fprintf(stderr, "%s: %s -> %s (%.3f), %llu frames, %.2f s, %.0f MB/s%s\n", out,
                mfs_format_size(res.in_bytes, a, sizeof a), mfs_format_size(res.out_bytes, b, sizeof b),
                res.in_bytes ? (double)res.out_bytes / (double)res.in_bytes : 0.0, (unsigned long long)res.frames, el,
                el > 0 ? (double)res.in_bytes / el / 1e6 : 0.0, do_verify ? ", verified" : "");
    }
    return 0;
}
