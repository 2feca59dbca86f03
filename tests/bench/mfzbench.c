/* mfzbench: the container's codecs against plain zstd, per tensor type, in memory, one thread.
 *
 *   mfzbench [OPTION]... FILE.gguf
 *
 * Cuts every tensor into chunks as modelfs-pack does, encodes each chunk with the container codec
 * of its type and with plain zstd at the same level, then decodes all chunks of a type REPEAT
 * times, as the container and the seekable-zstd sources do (decode, then check the chunk's XXH3 or
 * XXH64), and keeps the fastest run, timed in CPU seconds of the thread (the VM is shared). One line per type of key=value pairs, for
 * scripts/bench-compress; decode speeds are bytes of output per second on one core.
 *
 * Options: --chunk SIZE (default 256K), --level N (3), --repeat N (5), --zstd-chunk SIZE (the plain
 * zstd frame size, default: --chunk), and the plane encoder's knobs for tuning: --plane-level,
 * --strategy, --min-match, --wlog, --hlog (0: zstd's default for the level), --min-gain F.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>
#include <zstd.h>

#include "../../loader/container.h"
#include "mfs_gguf.h"
#include "mfs_util.h"

struct chunk {
    const uint8_t *src;
    size_t n;
    uint8_t *enc;
    size_t csize;
    unsigned codec;
    uint64_t sum;
};

struct group {
    uint32_t type;
    struct chunk *c;
    size_t n, cap;
    uint64_t bytes;
};

static void add_chunk(struct group *g, const uint8_t *src, size_t n)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 64;
        g->c = realloc(g->c, g->cap * sizeof *g->c);
        if (!g->c)
            abort();
    }
    g->c[g->n++] = (struct chunk){.src = src, .n = n};
    g->bytes += n;
}

/* CPU seconds of this thread: on a shared VM, wall time counts other processes' turns too. */
static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double decode_all(const struct group *g, bool container, uint8_t *dst, uint8_t *scratch, ZSTD_DCtx *d)
{
    double t0 = cpu_now();
    for (size_t i = 0; i < g->n; i++) {
        const struct chunk *c = &g->c[i];
        bool ok;
        if (!container) {
            size_t r = ZSTD_decompressDCtx(d, dst, c->n, c->enc, c->csize);
            ok = !ZSTD_isError(r) && r == c->n && (uint32_t)XXH64(dst, c->n, 0) == (uint32_t)c->sum;
        } else if (c->codec == MFZ_RAW) {
            memcpy(dst, c->enc, c->n);
            ok = mfz_checksum(dst, c->n) == c->sum;
        } else {
            ok = mfz_decode(d, c->codec, c->codec == MFZ_BLOCKS ? g->type : 0, c->enc, c->csize, dst, c->n,
                            scratch) == 0 &&
                 mfz_checksum(dst, c->n) == c->sum;
        }
        if (!ok) {
            fprintf(stderr, "mfzbench: chunk %zu of %s does not decode\n", i, mfs_ggml_type_name(g->type));
            exit(1);
        }
    }
    return cpu_now() - t0;
}

int main(int argc, char **argv)
{
    uint64_t chunk = 256u << 10, zchunk = 0;
    int level = 3, repeat = 5;
    struct mfz_enc_params p;
    mfz_enc_params_default(&p, level);
    static const struct option longopts[] = {
        {"chunk", required_argument, NULL, 'c'},     {"level", required_argument, NULL, 'l'},
        {"repeat", required_argument, NULL, 'r'},    {"zstd-chunk", required_argument, NULL, 'z'},
        {"plane-level", required_argument, NULL, 'P'}, {"strategy", required_argument, NULL, 'S'},
        {"min-match", required_argument, NULL, 'M'}, {"wlog", required_argument, NULL, 'W'},
        {"hlog", required_argument, NULL, 'H'},      {"min-gain", required_argument, NULL, 'G'},
        {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (o) {
        case 'c': if (mfs_parse_size(optarg, &chunk) || chunk < 4096 || chunk > MFZ_MAX_CHUNK) return 2; break;
        case 'z': if (mfs_parse_size(optarg, &zchunk) || zchunk < 4096 || zchunk > MFZ_MAX_CHUNK) return 2; break;
        case 'l': level = atoi(optarg); break;
        case 'r': repeat = atoi(optarg); break;
        case 'P': p.plane_level = atoi(optarg); break;
        case 'S': p.plane_strategy = atoi(optarg); break;
        case 'M': p.plane_min_match = atoi(optarg); break;
        case 'W': p.plane_window_log = atoi(optarg); break;
        case 'H': p.plane_hash_log = atoi(optarg); break;
        case 'G': p.min_gain = atof(optarg); break;
        default: return 2;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "usage: mfzbench [--chunk SIZE] [--level N] [--repeat N] [tuning options] FILE.gguf\n");
        return 2;
    }
    p.level = level;
    if (!zchunk)
        zchunk = chunk;
    const char *path = argv[optind];
    size_t len;
    FILE *f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) != 0) {
        perror(path);
        return 1;
    }
    len = (size_t)ftell(f);
    rewind(f);
    uint8_t *file = malloc(len ? len : 1);
    if (!file || fread(file, 1, len, f) != len) {
        perror(path);
        return 1;
    }
    fclose(f);
    mfs_gguf *g;
    mfs_err err;
    if (mfs_gguf_parse_memory(file, len, path, &g, &err)) {
        fprintf(stderr, "mfzbench: %s\n", err.msg);
        return 1;
    }
    struct group groups[MFS_GGML_TYPE_COUNT] = {{0}}, zgroups[MFS_GGML_TYPE_COUNT] = {{0}};
    for (uint64_t i = 0; i < mfs_gguf_n_tensors(g); i++) {
        const struct mfs_gguf_tensor *t = mfs_gguf_tensor(g, i);
        const uint8_t *base = file + mfs_gguf_data_offset(g) + t->offset;
        unsigned param, codec = mfz_codec_for_type(t->type, &param);
        uint64_t elem = mfz_elem_size(codec, param);
        uint64_t step = chunk - chunk % elem, zstep = zchunk;
        for (uint64_t at = 0; at < t->size; at += step)
            add_chunk(&groups[t->type], base + at, (size_t)(t->size - at < step ? t->size - at : step));
        for (uint64_t at = 0; at < t->size; at += zstep)
            add_chunk(&zgroups[t->type], base + at, (size_t)(t->size - at < zstep ? t->size - at : zstep));
        groups[t->type].type = zgroups[t->type].type = t->type;
    }
    mfz_enc *enc = mfz_enc_new(&p);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    uint64_t maxc = chunk > zchunk ? chunk : zchunk;
    uint8_t *dst = malloc(maxc), *scratch = malloc(MFZ_SCRATCH(maxc));
    if (!enc || !cc || !dc || !dst || !scratch)
        return 1;
    printf("# isa=%s chunk=%" PRIu64 " level=%d plane_level=%d strategy=%d min_match=%d wlog=%d hlog=%d min_gain=%.3f\n",
           mfz_isa_name(mfz_isa_auto()), chunk, level, p.plane_level, p.plane_strategy, p.plane_min_match,
           p.plane_window_log, p.plane_hash_log, p.min_gain);
    for (uint32_t t = 0; t < MFS_GGML_TYPE_COUNT; t++) {
        struct group *gr = &groups[t], *zg = &zgroups[t];
        if (gr->n == 0)
            continue;
        uint64_t stored = 0, zstored = 0;
        uint64_t by_codec[MFZ_CODEC_COUNT] = {0};
        for (size_t i = 0; i < gr->n; i++) {
            struct chunk *c = &gr->c[i];
            unsigned param, codec = mfz_codec_for_type(t, &param);
            size_t cap = c->n + 4 * MFZ_MAX_PLANES;
            c->enc = malloc(cap);
            long r = mfz_encode_best(enc, codec, param, c->src, c->n, c->enc, cap, &codec);
            if (r < 0)
                return 1;
            if (codec == MFZ_RAW)
                memcpy(c->enc, c->src, c->n);
            c->csize = (size_t)r;
            c->codec = codec;
            c->sum = mfz_checksum(c->src, c->n);
            stored += c->csize;
            by_codec[codec] += c->n;
        }
        for (size_t i = 0; i < zg->n; i++) {
            struct chunk *c = &zg->c[i];
            c->enc = malloc(ZSTD_compressBound(c->n));
            c->csize = ZSTD_compressCCtx(cc, c->enc, ZSTD_compressBound(c->n), c->src, c->n, level);
            if (ZSTD_isError(c->csize))
                return 1;
            c->sum = XXH64(c->src, c->n, 0);
            zstored += c->csize;
        }
        double best = 1e9, zbest = 1e9;
        for (int r = 0; r < repeat; r++) {
            double a = decode_all(gr, true, dst, scratch, dc), b = decode_all(zg, false, dst, scratch, dc);
            best = a < best ? a : best;
            zbest = b < zbest ? b : zbest;
        }
        unsigned main_codec = 0;
        for (unsigned k = 0; k < MFZ_CODEC_COUNT; k++)
            if (by_codec[k] > by_codec[main_codec])
                main_codec = k;
        printf("type=%s bytes=%" PRIu64 " chunks=%zu codec=%s stored=%" PRIu64 " ratio=%.4f gbps=%.3f "
               "zstd_stored=%" PRIu64 " zstd_ratio=%.4f zstd_gbps=%.3f\n",
               mfs_ggml_type_name(t), gr->bytes, gr->n, mfz_codec_name(main_codec), stored,
               (double)stored / (double)gr->bytes, (double)gr->bytes / best / 1e9, zstored,
               (double)zstored / (double)zg->bytes, (double)zg->bytes / zbest / 1e9);
        for (size_t i = 0; i < gr->n; i++)
            free(gr->c[i].enc);
        for (size_t i = 0; i < zg->n; i++)
            free(zg->c[i].enc);
        free(gr->c);
        free(zg->c);
    }
    mfz_enc_free(enc);
    ZSTD_freeCCtx(cc);
    ZSTD_freeDCtx(dc);
    mfs_gguf_free(g);
    free(file);
    free(dst);
    free(scratch);
    return 0;
}
