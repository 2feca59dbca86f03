/* modelfs-inspect: print what modelfs sees in a source, without mounting. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mfs_engine.h"
#include "mfs_model.h"

static const char usage_text[] =
    "Usage: modelfs-inspect [OPTION]... FILE\n"
    "Print what modelfs sees in a model source without mounting: format, compression,\n"
    "alignment, metadata and the tensor table (name, type, shape, offset, size).\n"
    "FILE: a GGUF, a zstd-compressed GGUF, a modelfs container, a safetensors file\n"
    "(plain or zstd) or a Hugging Face checkpoint directory.\n"
    "\n"
    "      --frames         also list every compression frame\n"
    "  -a, --align N        show the snapshot re-laid out with alignment N\n"
    "  -w, --write OUT      write the snapshot (the GGUF the mount shows) to OUT instead\n"
    "  -h, --help           show this help\n"
    "  -V, --version        show the version\n"
    "\n"
    "Exit status: 0 on success, 1 on bad input, 2 on bad usage.\n";

static void usage_error(const char *msg)
{
    fprintf(stderr, "modelfs-inspect: %s\nTry 'modelfs-inspect --help' for more information.\n", msg);
    exit(2);
}

/* The whole snapshot, read as the mount would serve it, into `path`. */
static int write_snapshot(mfs_model *m, const char *src, const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "modelfs-inspect: %s: %s\n", path, strerror(errno));
        return -1;
    }
    enum { BUF = 4 << 20 };
    char *buf = malloc(BUF);
    int rc = buf ? 0 : -ENOMEM;
    for (uint64_t off = 0; rc == 0 && off < mfs_model_size(m);) {
        ssize_t n = mfs_model_read(m, buf, BUF, off);
        if (n <= 0) {
            fprintf(stderr, "modelfs-inspect: %s: read at offset %llu failed: %s\n", src, (unsigned long long)off,
                    strerror(n < 0 ? (int)-n : EIO));
            rc = -1;
            break;
        }
        for (ssize_t w = 0; rc == 0 && w < n;) {
            ssize_t k = write(fd, buf + w, (size_t)(n - w));
            if (k < 0) {
                fprintf(stderr, "modelfs-inspect: %s: %s\n", path, strerror(errno));
                rc = -1;
            }
            w += k;
        }
        off += (uint64_t)n;
    }
    free(buf);
    if (close(fd) != 0 && rc == 0) {
        fprintf(stderr, "modelfs-inspect: %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"frames", no_argument, NULL, 'F'}, {"align", required_argument, NULL, 'a'},
        {"write", required_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},   {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    bool frames = false;
    uint32_t align = 0;
    const char *write_to = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "a:w:hV", longopts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'F': frames = true; break;
        case 'a': {
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || v < 32 || v > (1ul << 30) || (v & (v - 1)))
                usage_error("--align must be a power of two from 32 to 1G");
            align = (uint32_t)v;
            break;
        }
        case 'w': write_to = optarg; break;
        case 'h': fputs(usage_text, stdout); return 0;
        case 'V': printf("modelfs-inspect %s\n", MFS_VERSION); return 0;
        default: usage_error("unknown option");
        }
    }
    if (argc - optind != 1)
        usage_error("expected one FILE");
    mfs_engine *e;
    if (mfs_engine_create(&(struct mfs_engine_config){.cache_bytes = 64u << 20, .threads = 1}, &e)) {
        fprintf(stderr, "modelfs-inspect: out of memory\n");
        return 1;
    }
    mfs_model *m;
    mfs_err err = {{0}};
    int rc = mfs_model_open(argv[optind], &(struct mfs_model_opts){.engine = e, .align = align}, &m, &err);
    if (rc) {
        fprintf(stderr, "modelfs-inspect: %s\n", err.msg);
        mfs_engine_destroy(e);
        return 1;
    }
    if (write_to) {
        rc = write_snapshot(m, argv[optind], write_to);
        mfs_model_unref(m);
        mfs_engine_destroy(e);
        return rc ? 1 : 0;
    }
    rc = mfs_model_describe(m, stdout, frames);
    mfs_model_unref(m);
    mfs_engine_destroy(e);
    if (fflush(stdout) != 0 || rc) {
        perror("modelfs-inspect: stdout");
        return 1;
    }
    return 0;
}
