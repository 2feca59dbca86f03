/* modelfs-inspect: print what modelfs sees in a source, without mounting. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    "  -h, --help           show this help\n"
    "  -V, --version        show the version\n"
    "\n"
    "Exit status: 0 on success, 1 on bad input, 2 on bad usage.\n";

static void usage_error(const char *msg)
{
    fprintf(stderr, "modelfs-inspect: %s\nTry 'modelfs-inspect --help' for more information.\n", msg);
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"frames", no_argument, NULL, 'F'}, {"align", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},   {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    bool frames = false;
    uint32_t align = 0;
    int c;
    while ((c = getopt_long(argc, argv, "a:hV", longopts, NULL)) != -1) {
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
    rc = mfs_model_describe(m, stdout, frames);
    mfs_model_unref(m);
    mfs_engine_destroy(e);
    if (fflush(stdout) != 0 || rc) {
        perror("modelfs-inspect: stdout");
        return 1;
    }
    return 0;
}
