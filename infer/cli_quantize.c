/* modelfs-quantize: requantize the matrices of a GGUF (F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K, or the
 * Q4_K_M mix) with ggml's reference quantizers; everything else is copied. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kernels.h"
#include "mfs_gguf.h"
#include "mfs_map.h"
#include "quant.h"

#define PROG "modelfs-quantize"

/* llama.cpp's enum llama_ftype values for general.file_type */
static const struct {
    const char *name;
    int type; /* -1: the Q4_K_M mix */
    uint32_t ftype;
} k_targets[] = {
    {"f32", MFS_GGML_F32, 0},    {"f16", MFS_GGML_F16, 1},    {"bf16", MFS_GGML_BF16, 32},
    {"q8_0", MFS_GGML_Q8_0, 7},  {"q4_0", MFS_GGML_Q4_0, 2},  {"q4_k", MFS_GGML_Q4_K, 14},
    {"q6_k", MFS_GGML_Q6_K, 18}, {"q4_k_m", -1, 15},
};

/* llama.cpp's use_more_bits: the first and last eighth of the layers and every third between. */
static int more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static int pick_type(const struct mfs_gguf_tensor *t, int target, int n_layer)
{
    if (t->n_dims != 2 || t->name.len < 7 || strcmp(t->name.p + t->name.len - 7, ".weight") != 0)
        return (int)t->type; /* vectors (norms, biases, rope factors) keep their type */
    int ty = target;
    if (target < 0) { /* Q4_K_M: Q6_K for output, and for attn_v / ffn_down in the more_bits layers */
        ty = MFS_GGML_Q4_K;
        int layer;
        char what[64];
        if (strcmp(t->name.p, "output.weight") == 0)
            ty = MFS_GGML_Q6_K;
        else if (sscanf(t->name.p, "blk.%d.%63[^.]", &layer, what) == 2 &&
                 (strcmp(what, "attn_v") == 0 || strcmp(what, "ffn_down") == 0) && more_bits(layer, n_layer))
            ty = MFS_GGML_Q6_K;
    }
    if (t->ne[0] % (int64_t)mfs_ggml_blck_size((uint32_t)ty) != 0) /* as llama.cpp: fall back */
        ty = t->ne[0] % 32 == 0 ? MFS_GGML_Q8_0 : MFS_GGML_F16;
    return ty;
}

struct job {
    uint32_t src_type, dst_type;
    const uint8_t *src;
    uint8_t *dst;
    int64_t cols, rows;
    size_t src_row, dst_row;
    int ith, nth;
    int rc;
};

static void *quant_rows(void *p)
{
    struct job *j = p;
    float *buf = malloc((size_t)j->cols * sizeof *buf);
    if (!buf) {
        j->rc = -ENOMEM;
        return NULL;
    }
    for (int64_t r = j->ith; r < j->rows; r += j->nth) {
        mfs_row_to_f32(j->src_type, j->src + (size_t)r * j->src_row, buf, (int)j->cols);
        if ((j->rc = mfs_quantize_row(j->dst_type, buf, j->dst + (size_t)r * j->dst_row, j->cols)))
            break;
    }
    free(buf);
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: " PROG " [-t THREADS] IN.gguf OUT.gguf TYPE\n"
               "Requantize the matrices of a llama-family GGUF with ggml's reference quantizers.\n"
               "TYPE: f32 f16 bf16 q8_0 q4_0 q4_k q6_k q4_k_m (Q4_K, with Q6_K for output.weight and\n"
               "for attn_v/ffn_down in the layers llama.cpp's Q4_K_M recipe gives more bits).\n"
               "  -t N   threads (default: online CPUs)\n  -h, --help\n      --version\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {"version", no_argument, NULL, 'V'}, {0}};
    long nth = sysconf(_SC_NPROCESSORS_ONLN);
    int ch;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        switch (ch) {
        case 't': {
            char *end;
            nth = strtol(optarg, &end, 10);
            if (*end || nth < 1 || nth > 256) {
                fprintf(stderr, PROG ": -t: '%s' is not a thread count\nTry '" PROG " --help'.\n", optarg);
                return 2;
            }
            break;
        }
        case 'h': usage(stdout); return 0;
        case 'V': printf(PROG " " MFS_VERSION "\n"); return 0;
        default: fprintf(stderr, PROG ": unknown option '%s'\nTry '" PROG " --help'.\n", argv[optind - 1]); return 2;
        }
    }
    if (argc - optind != 3) {
        fprintf(stderr, PROG ": expected IN OUT TYPE\nTry '" PROG " --help'.\n");
        return 2;
    }
    const char *in = argv[optind], *outp = argv[optind + 1], *tname = argv[optind + 2];
    int target = -2;
    uint32_t ftype = 0;
    for (size_t i = 0; i < sizeof k_targets / sizeof *k_targets; i++)
        if (strcasecmp(tname, k_targets[i].name) == 0) {
            target = k_targets[i].type;
            ftype = k_targets[i].ftype;
        }
    if (target == -2) {
        fprintf(stderr, PROG ": unknown type '%s'\nTry '" PROG " --help'.\n", tname);
        return 2;
    }

    int rc = 1;
    mfs_err err = {{0}};
    mfs_map *map = NULL;
    mfs_gguf *g = NULL;
    FILE *f = NULL;
    uint8_t *hdr = NULL, *dst = NULL;
    if (mfs_map_open(in, 0, &map, &err)) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 1;
    }
    const mfs_gguf *src = mfs_map_gguf(map);
    uint64_t n_layer = 0;
    struct mfs_str arch;
    if (mfs_gguf_get_str(src, "general.architecture", &arch) == 0) {
        char key[96];
        snprintf(key, sizeof key, "%s.block_count", arch.p);
        mfs_gguf_get_uint(src, key, &n_layer);
    }
    g = mfs_gguf_new();
    if (!g)
        goto oom;
    for (uint64_t i = 0; i < mfs_gguf_n_kv(src); i++) {
        const struct mfs_gguf_kv *kv = mfs_gguf_kv(src, i);
        if (strcmp(kv->key.p, "general.alignment") && mfs_gguf_set(g, kv->key.p, &kv->value))
            goto oom;
    }
    if (mfs_gguf_set_u32(g, "general.file_type", ftype) || mfs_gguf_set_u32(g, "general.quantization_version", 2))
        goto oom;
    int *types = calloc(mfs_gguf_n_tensors(src) + 1, sizeof *types);
    if (!types)
        goto oom;
    for (uint64_t i = 0; i < mfs_gguf_n_tensors(src); i++) {
        const struct mfs_gguf_tensor *t = mfs_gguf_tensor(src, i);
        types[i] = pick_type(t, target, (int)n_layer);
        if (types[i] != (int)t->type && (!mfs_kernel_type_ok(t->type) || t->n_dims != 2)) {
            fprintf(stderr, PROG ": %s: tensor %s has type %s, which cannot be requantized\n", in, t->name.p,
                    mfs_ggml_type_name(t->type));
            free(types);
            goto out;
        }
        if (mfs_gguf_add_tensor(g, t->name.p, (uint32_t)types[i], t->n_dims, t->ne)) {
            fprintf(stderr, PROG ": %s: cannot add tensor %s\n", in, t->name.p);
            free(types);
            goto out;
        }
    }
    size_t hlen;
    if (mfs_gguf_layout(g, mfs_gguf_alignment(src)) || mfs_gguf_write_header(g, &hdr, &hlen, &err)) {
        fprintf(stderr, PROG ": %s: %s\n", outp, err.msg[0] ? err.msg : "cannot lay out the header");
        free(types);
        goto out;
    }
    f = fopen(outp, "wb");
    if (!f || fwrite(hdr, 1, hlen, f) != hlen) {
        fprintf(stderr, PROG ": %s: %s\n", outp, strerror(errno));
        free(types);
        goto out;
    }
    uint64_t written = hlen, data0 = mfs_gguf_data_offset(g);
    for (uint64_t i = 0; i < mfs_gguf_n_tensors(g); i++) {
        const struct mfs_gguf_tensor *t = mfs_gguf_tensor(g, i);
        struct mfs_map_tensor s = mfs_map_tensor(map, i);
        static const uint8_t zeros[4096];
        while (written < data0 + t->offset) { /* alignment padding */
            size_t n = data0 + t->offset - written > sizeof zeros ? sizeof zeros : (size_t)(data0 + t->offset - written);
            fwrite(zeros, 1, n, f);
            written += n;
        }
        const uint8_t *out_bytes = s.data;
        if (types[i] != (int)s.info->type) {
            free(dst);
            dst = malloc(t->size);
            if (!dst)
                goto oom_types;
            int64_t rows = t->ne[1];
            struct job jobs[256];
            pthread_t tids[256];
            for (long j = 0; j < nth; j++) {
                jobs[j] = (struct job){s.info->type, (uint32_t)types[i], s.data, dst, t->ne[0], rows,
                                       (size_t)(s.info->size / (uint64_t)rows), (size_t)(t->size / (uint64_t)rows),
                                       (int)j, (int)nth, 0};
                if (j > 0)
                    pthread_create(&tids[j], NULL, quant_rows, &jobs[j]);
            }
            quant_rows(&jobs[0]);
            for (long j = 1; j < nth; j++)
                pthread_join(tids[j], NULL);
            for (long j = 0; j < nth; j++)
                if (jobs[j].rc)
                    goto oom_types;
            out_bytes = dst;
        }
        if (fwrite(out_bytes, 1, t->size, f) != t->size) {
            fprintf(stderr, PROG ": %s: %s\n", outp, strerror(errno));
            free(types);
            goto out;
        }
        written += t->size;
    }
    free(types);
    uint64_t end = data0 + mfs_gguf_data_end(g), pad = (end + mfs_gguf_alignment(g) - 1) / mfs_gguf_alignment(g) * mfs_gguf_alignment(g);
    for (; written < pad; written++)
        fputc(0, f);
    if (fclose(f) != 0) {
        f = NULL;
        fprintf(stderr, PROG ": %s: %s\n", outp, strerror(errno));
        goto out;
    }
    f = NULL;
    rc = 0;
    goto out;
oom_types:
    free(types);
oom:
    fprintf(stderr, PROG ": %s: out of memory\n", in);
out:
    if (f)
        fclose(f);
    free(dst);
    free(hdr);
    mfs_gguf_free(g);
    mfs_map_close(map);
    return rc;
}
