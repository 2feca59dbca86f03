/* The tensor-aware container: every ggml type and odd sizes round-trip exactly through
 * modelfs-pack's container and the reader; the SIMD inverse shuffles match the scalar one; each
 * handcrafted corrupt container fails as tests/data/container/expected.txt says; safetensors
 * inputs are packed per tensor; other inputs are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <unistd.h>

#include "../../loader/container.h"
#include "mfs_engine.h"
#include "mfs_gguf.h"
#include "mfs_pack.h"
#include "mfs_source.h"
#include "test_util.h"

#define CHUNK 4096u

static char g_dir[64];

static int setup(void **state)
{
    (void)state;
    strcpy(g_dir, "/tmp/mfs-test-container.XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *tmp_path(const char *name)
{
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
    return p[k];
}

static uint64_t rng(uint64_t *x)
{
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

/* Roughly normal, like trained weights. */
static float gauss(uint64_t *x, float sigma)
{
    double u = ((double)(rng(x) >> 11) + 0.5) / 9007199254740992.0, v = (double)(rng(x) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v)) * sigma;
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

/* Normal numbers only, truncated: enough for realistic bit patterns. */
static uint16_t to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t s = (u >> 16) & 0x8000;
    int e = (int)((u >> 23) & 0xFF) - 127 + 15;
    if (e <= 0)
        return (uint16_t)s;
    if (e >= 31)
        return (uint16_t)(s | 0x7BFF);
    return (uint16_t)(s | (uint32_t)e << 10 | ((u >> 13) & 0x3FF));
}

/* Bytes of a tensor of `type` that look like real ones: normal weights for floats, small scales
 * and skewed quants for quantized blocks, so that the planes compress and take the zstd path. */
static void fill(uint8_t *p, uint64_t size, uint32_t type, uint64_t *x)
{
    switch (type) {
    case MFS_GGML_F32:
        for (uint64_t i = 0; i + 4 <= size; i += 4) {
            float f = gauss(x, 0.02f);
            memcpy(p + i, &f, 4);
        }
        return;
    case MFS_GGML_F64:
        for (uint64_t i = 0; i + 8 <= size; i += 8) {
            double d = gauss(x, 0.02f);
            memcpy(p + i, &d, 8);
        }
        return;
    case MFS_GGML_F16:
    case MFS_GGML_BF16:
        for (uint64_t i = 0; i + 2 <= size; i += 2) {
            float f = gauss(x, 0.02f);
            uint16_t h = type == MFS_GGML_F16 ? to_f16(f) : to_bf16(f);
            memcpy(p + i, &h, 2);
        }
        return;
    default:
        for (uint64_t i = 0; i < size; i++) {
            uint64_t r = rng(x);
            p[i] = (uint8_t)((r & (r >> 8) & (r >> 16)) + (i % 5 == 0 ? 0x22 : 0));
        }
    }
}

struct tspec {
    const char *name;
    uint32_t type;
    uint32_t n_dims;
    int64_t ne[4];
};

/* Write a GGUF of these tensors (plus one of every ggml type if `all_types`), with a header
 * longer than a chunk. Returns its bytes (caller frees) and size. */
static uint8_t *write_gguf(const char *path, const struct tspec *ts, size_t n, bool all_types, size_t *len)
{
    mfs_gguf *g = mfs_gguf_new();
    assert_non_null(g);
    assert_int_equal(mfs_gguf_set_str(g, "general.architecture", "llama"), 0);
    char big[6000];
    for (size_t i = 0; i < sizeof big - 1; i++)
        big[i] = (char)('a' + i % 23);
    big[sizeof big - 1] = '\0';
    assert_int_equal(mfs_gguf_set_str(g, "general.description", big), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(mfs_gguf_add_tensor(g, ts[i].name, ts[i].type, ts[i].n_dims, ts[i].ne), 0);
    if (all_types) {
        for (uint32_t t = 0; t < MFS_GGML_TYPE_COUNT; t++) {
            if (!mfs_ggml_type_valid(t))
                continue;
            /* three chunks and a bit, in whole blocks */
            int64_t nb = 3 * CHUNK / mfs_ggml_type_size(t) + 7;
            int64_t ne[2] = {nb * (int64_t)mfs_ggml_blck_size(t), 1};
            char name[64];
            snprintf(name, sizeof name, "all.%s", mfs_ggml_type_name(t));
            assert_int_equal(mfs_gguf_add_tensor(g, name, t, 2, ne), 0);
        }
    }
    assert_int_equal(mfs_gguf_layout(g, 32), 0);
    uint8_t *hdr;
    size_t hlen;
    mfs_err err;
    assert_int_equal(mfs_gguf_write_header(g, &hdr, &hlen, &err), 0);
    uint64_t end = mfs_gguf_data_end(g);
    size_t total = hlen + (size_t)((end + 31) / 32 * 32);
    uint8_t *file = calloc(1, total);
    memcpy(file, hdr, hlen);
    free(hdr);
    uint64_t x = 0x1234567887654321ull;
    for (uint64_t i = 0; i < mfs_gguf_n_tensors(g); i++) {
        const struct mfs_gguf_tensor *t = mfs_gguf_tensor(g, i);
        fill(file + hlen + t->offset, t->size, t->type, &x);
    }
    mfs_gguf_free(g);
    assert_int_equal(test_write_file(path, file, total), 0);
    *len = total;
    return file;
}

static mfs_source *open_ok(mfs_engine *e, const char *path)
{
    mfs_source *s = NULL;
    mfs_err err = {{0}};
    if (mfs_source_open(path, &(struct mfs_open_opts){.engine = e}, &s, &err))
        fail_msg("%s: %s", path, err.msg);
    return s;
}

static void pack_ok(const char *in, const char *out, uint32_t chunk, unsigned threads)
{
    struct mfs_pack_opts o = {.format = MFS_PACK_CONTAINER, .chunk = chunk, .threads = threads, .force = true};
    struct mfs_pack_result res;
    mfs_err err = {{0}};
    if (mfs_pack_file(in, out, &o, &res, &err))
        fail_msg("pack %s: %s", in, err.msg);
}

static void check_same(mfs_source *s, const uint8_t *want, size_t len)
{
    assert_int_equal(mfs_source_size(s), len);
    uint8_t *buf = malloc(len + 10);
    assert_int_equal(mfs_source_read(s, buf, len + 10, 0), len);
    assert_memory_equal(buf, want, len);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 3000; i++) {
        uint64_t off = rng(&x) % len, n = rng(&x) % 9000;
        uint64_t w = off + n > len ? len - off : n;
        assert_int_equal(mfs_source_read(s, buf, n, off), w);
        assert_memory_equal(buf, want + off, w);
    }
    free(buf);
}

static bool has_codec(mfs_source *s, const char *codec, uint32_t tensor, bool any_tensor)
{
    for (uint64_t i = 0; i < mfs_source_info(s)->n_frames; i++) {
        struct mfs_frame_info fi;
        assert_int_equal(mfs_source_frame(s, i, &fi), 0);
        if (fi.codec && strcmp(fi.codec, codec) == 0 && (any_tensor || (fi.in_tensor && fi.tensor == tensor)))
            return true;
    }
    return false;
}

/* Every ggml type, odd sizes, several thread counts and chunk sizes. */
static void test_round_trip(void **state)
{
    (void)state;
    static const struct tspec odd[] = {
        {"tiny.f32", MFS_GGML_F32, 1, {3}},              /* shorter than a chunk, then 20 bytes of padding */
        {"tail.i8", MFS_GGML_I8, 1, {CHUNK + 1}},        /* a last chunk of 1 byte */
        {"empty.f16", MFS_GGML_F16, 1, {0}},             /* no bytes at all */
        {"tail.bf16", MFS_GGML_BF16, 2, {2049, 1}},      /* a last chunk of one element */
        {"big.bf16", MFS_GGML_BF16, 2, {4096, 3}},       /* chunks of 4 KiB exactly */
        {"rows.f16", MFS_GGML_F16, 2, {100, 77}},
    };
    const char *in = tmp_path("all.gguf"), *out = tmp_path("all.mfz");
    size_t len;
    uint8_t *file = write_gguf(in, odd, sizeof odd / sizeof odd[0], true, &len);
    mfs_gguf *g;
    mfs_err err;
    assert_int_equal(mfs_gguf_parse_memory(file, len, in, &g, &err), 0);
    mfs_engine *e;
    assert_int_equal(mfs_engine_create(&(struct mfs_engine_config){.cache_bytes = 64 << 10, .threads = 2}, &e), 0);
    static const struct {
        uint32_t chunk;
        unsigned threads;
    } runs[] = {{CHUNK, 1}, {CHUNK, 3}, {0, 2}, {12345, 2}};
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        pack_ok(in, out, runs[r].chunk, runs[r].threads);
        mfs_source *s = open_ok(e, out);
        assert_int_equal(mfs_source_info(s)->kind, MFS_SRC_CONTAINER);
        assert_true(mfs_source_info(s)->checksums);
        check_same(s, file, len);
        /* chunks never cross a tensor boundary, the tensor they name holds them */
        bool one_byte = false;
        for (uint64_t i = 0; i < mfs_source_info(s)->n_frames; i++) {
            struct mfs_frame_info fi;
            assert_int_equal(mfs_source_frame(s, i, &fi), 0);
            one_byte |= fi.size == 1;
            if (!fi.in_tensor)
                continue;
            assert_true(fi.tensor < mfs_gguf_n_tensors(g));
            const struct mfs_gguf_tensor *t = mfs_gguf_tensor(g, fi.tensor);
            uint64_t start = mfs_gguf_data_offset(g) + t->offset;
            assert_true(fi.off >= start && fi.off + fi.size <= start + t->size);
        }
        if (runs[r].chunk == CHUNK) {
            assert_true(one_byte);
            assert_true(has_codec(s, "zero", 0, true)); /* padding */
            assert_true(has_codec(s, "zstd", 0, true)); /* the header */
            for (uint64_t i = 0; i < mfs_gguf_n_tensors(g); i++) {
                const struct mfs_gguf_tensor *t = mfs_gguf_tensor(g, i);
                unsigned param, codec = mfz_codec_for_type(t->type, &param);
                /* quantized fields may lose to plain zstd on these synthetic quants, never to raw */
                /* chunks up to 16 KiB of BF16 and F16 may take the byte planes (smaller tables) */
                if (t->size > CHUNK && codec != MFZ_ZSTD && !has_codec(s, mfz_codec_name(codec), (uint32_t)i, false) &&
                    !(codec == MFZ_BLOCKS && has_codec(s, "zstd", (uint32_t)i, false)) &&
                    !(codec == MFZ_BF16X && has_codec(s, "bf16-planes", (uint32_t)i, false)) &&
                    !(codec == MFZ_F16X && has_codec(s, "f16-planes", (uint32_t)i, false)))
                    fail_msg("%s: no %s chunk", t->name.p, mfz_codec_name(codec));
            }
        }
        mfs_source_unref(s);
    }
    mfs_gguf_free(g);
    mfs_engine_destroy(e);
    free(file);
}

/* The inverse shuffle of every layout, on every instruction set this CPU has, against scalar. */
static void test_shuffles(void **state)
{
    (void)state;
    static const size_t counts[] = {0, 1, 2, 15, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000, 4099};
    uint64_t x = 42;
    for (unsigned codec = MFZ_BF16; codec <= MFZ_BLOCKS; codec++) {
        for (unsigned param = 0; param < (codec == MFZ_BLOCKS ? MFS_GGML_TYPE_COUNT : 1); param++) {
            struct mfz_layout l;
            if (mfz_layout_of(codec, param, &l))
                continue;
            for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
                size_t n = counts[c], bytes = n * l.elem;
                uint8_t *src = malloc(bytes + 1), *ref = malloc(bytes + 1), *out = malloc(bytes + 1),
                        *pl = malloc(bytes + 1);
                for (size_t i = 0; i < bytes; i++)
                    src[i] = (uint8_t)rng(&x);
                uint8_t *planes[MFZ_MAX_PLANES];
                const uint8_t *cplanes[MFZ_MAX_PLANES];
                size_t at = 0;
                for (uint32_t p = 0; p < l.n_planes; p++) {
                    planes[p] = pl + at;
                    cplanes[p] = pl + at;
                    at += n * l.len[p];
                }
                assert_int_equal(at, bytes);
                mfz_split(&l, src, n, planes);
                mfz_merge(MFZ_ISA_SCALAR, &l, cplanes, n, ref);
                assert_memory_equal(ref, src, bytes);
                for (enum mfz_isa isa = MFZ_ISA_AUTO; isa <= MFZ_ISA_AVX512; isa++) {
                    if (!mfz_isa_supported(isa))
                        continue;
                    memset(out, 0xEE, bytes + 1);
                    mfz_merge(isa, &l, cplanes, n, out);
                    if (memcmp(out, ref, bytes) != 0 || out[bytes] != 0xEE)
                        fail_msg("%s, type %u, %zu elements: %s differs from scalar", mfz_codec_name(codec), param,
                                 n, mfz_isa_name(isa));
                }
                free(src), free(ref), free(out), free(pl);
            }
        }
    }
    print_message("inverse shuffle checked on: scalar%s%s (auto picks %s)\n",
                  mfz_isa_supported(MFZ_ISA_AVX2) ? ", avx2" : "", mfz_isa_supported(MFZ_ISA_AVX512) ? ", avx512" : "",
                  mfz_isa_name(mfz_isa_auto()));
}

/* Exponent codes with escapes, on every instruction set, against scalar; miscounted escapes and a
 * set padding nibble fail. */
static void test_nibbles(void **state)
{
    (void)state;
    uint64_t x = 77;
    for (size_t n = 0; n < 400; n += 1 + n / 8) {
        size_t nc = (n + 1) / 2, n_esc = 0;
        uint8_t *codes = calloc(1, nc + 1), *esc = malloc(n + 1), *ref = malloc(n + 1), *out = malloc(n + 1);
        for (size_t i = 0; i < n; i++) {
            unsigned c = rng(&x) % 16;
            if (c == 15)
                esc[n_esc++] = (uint8_t)rng(&x);
            codes[i / 2] |= (uint8_t)(c << (4 * (i & 1)));
        }
        assert_int_equal(mfz_expand_nibbles(MFZ_ISA_SCALAR, codes, n, 200, esc, n_esc, ref), 0);
        for (size_t i = 0, k = 0; i < n; i++) {
            unsigned c = (codes[i / 2] >> (4 * (i & 1))) & 15;
            assert_int_equal(ref[i], c == 15 ? esc[k++] : 200 + c);
        }
        for (enum mfz_isa isa = MFZ_ISA_AUTO; isa <= MFZ_ISA_AVX512; isa++) {
            if (!mfz_isa_supported(isa))
                continue;
            assert_int_equal(mfz_expand_nibbles(isa, codes, n, 200, esc, n_esc, out), 0);
            assert_memory_equal(out, ref, n);
            if (n_esc) {
                assert_int_equal(mfz_expand_nibbles(isa, codes, n, 200, esc, n_esc - 1, out), -EIO);
                assert_int_equal(mfz_expand_nibbles(isa, codes, n, 200, esc, n_esc + 1, out), -EIO);
            }
            if (n & 1) {
                codes[n / 2] |= 0x10;
                assert_int_equal(mfz_expand_nibbles(isa, codes, n, 200, esc, n_esc, out), -EIO);
                codes[n / 2] &= 0x0F;
            }
        }
        free(codes), free(esc), free(ref), free(out);
    }
}

/* F16 high bytes from exponents and three bit planes, every instruction set against scalar. */
static void test_f16_high(void **state)
{
    (void)state;
    uint64_t x = 99;
    for (size_t n = 0; n < 600; n += 1 + n / 6) {
        size_t nb = (n + 7) / 8;
        uint8_t *e = malloc(n + 1), *ref = malloc(n + 1), *out = malloc(n + 1), *b = malloc(3 * nb + 1);
        for (size_t i = 0; i < n; i++)
            e[i] = (uint8_t)(rng(&x) % 32);
        for (size_t i = 0; i < 3 * nb; i++)
            b[i] = (uint8_t)rng(&x);
        memcpy(ref, e, n);
        mfz_f16_high(MFZ_ISA_SCALAR, ref, b, b + nb, b + 2 * nb, n);
        for (size_t i = 0; i < n; i++) {
            unsigned s = i & 7, k = (unsigned)(i / 8);
            assert_int_equal(ref[i], e[i] << 3 | ((b[2 * nb + k] >> s) & 1) << 2 | ((b[nb + k] >> s) & 1) << 1 |
                                         ((b[k] >> s) & 1));
        }
        for (enum mfz_isa isa = MFZ_ISA_AUTO; isa <= MFZ_ISA_AVX512; isa++) {
            if (!mfz_isa_supported(isa))
                continue;
            memcpy(out, e, n);
            mfz_f16_high(isa, out, b, b + nb, b + 2 * nb, n);
            assert_memory_equal(out, ref, n);
        }
        free(e), free(ref), free(out), free(b);
    }
}

/* Each quantized type's fields cover its block exactly, in order. */
static void test_field_tables(void **state)
{
    (void)state;
    int n = 0;
    for (uint32_t t = 0; t < MFS_GGML_TYPE_COUNT; t++) {
        unsigned param, codec = mfz_codec_for_type(t, &param);
        if (codec != MFZ_BLOCKS)
            continue;
        struct mfz_layout l;
        assert_int_equal(mfz_layout_of(codec, param, &l), 0);
        assert_int_equal(l.elem, mfs_ggml_type_size(t));
        uint32_t at = 0;
        for (uint32_t p = 0; p < l.n_planes; p++) {
            assert_int_equal(l.off[p], at);
            assert_true(l.len[p] > 0);
            at += l.len[p];
        }
        assert_int_equal(at, l.elem);
        n++;
    }
    assert_true(n >= 20);
    struct mfz_layout l;
    assert_int_equal(mfz_layout_of(MFZ_BLOCKS, 4, &l), -EINVAL); /* a removed ggml type */
    assert_int_equal(mfz_layout_of(MFZ_BF16, 1, &l), -EINVAL);
    assert_int_equal(mfz_layout_of(MFZ_ZSTD, 0, &l), -EINVAL);
}

/* Payloads cut short or with bad plane words fail with -EIO, never read past their end. */
static void test_decode_bounds(void **state)
{
    (void)state;
    enum { N = 8192 };
    uint8_t *src = malloc(N), *enc = malloc(N + 64), *dst = malloc(N), *scratch = malloc(MFZ_SCRATCH(N));
    uint64_t x = 7;
    fill(src, N, MFS_GGML_BF16, &x);
    struct mfz_enc_params p;
    mfz_enc_params_default(&p, 3);
    mfz_enc *e = mfz_enc_new(&p);
    ZSTD_DCtx *d = ZSTD_createDCtx();
    static const unsigned codecs[] = {MFZ_BF16, MFZ_BF16X, MFZ_F16, MFZ_F16X};
    for (size_t c = 0; c < 4; c++) {
        unsigned codec = codecs[c];
        fill(src, N, codec == MFZ_BF16 || codec == MFZ_BF16X ? MFS_GGML_BF16 : MFS_GGML_F16, &x);
        long n = mfz_encode(e, codec, 0, src, N, enc, N + 64);
        assert_true(n > 8 && n < N);
        assert_int_equal(mfz_decode(d, codec, 0, enc, (size_t)n, dst, N, scratch), 0);
        assert_memory_equal(dst, src, N);
        for (long cut = 0; cut < n; cut += 1 + cut / 4) {
            uint8_t *copy = malloc((size_t)cut + 1); /* exact size: ASan catches any overread */
            memcpy(copy, enc, (size_t)cut);
            assert_int_equal(mfz_decode(d, codec, 0, copy, (size_t)cut, dst, N, scratch), -EIO);
            free(copy);
        }
        assert_int_equal(mfz_decode(d, codec, 0, enc, (size_t)n, dst, N - 2, scratch), -EIO); /* wrong size */
        assert_int_equal(mfz_decode(d, MFZ_F32, 0, enc, (size_t)n, dst, N, scratch), -EIO);  /* wrong codec */
    }
    /* F16 with one escaped exponent (the payload's last byte: the raw escape plane); an escape or a
     * base beyond F16's 5-bit exponents is corrupt */
    fill(src, N, MFS_GGML_F16, &x);
    src[N - 1] = 0x7B; /* 65504-ish: exponent 30, outside the window of the weights' */
    long n = mfz_encode(e, MFZ_F16X, 0, src, N, enc, N + 64);
    assert_true(n > 0);
    assert_int_equal(enc[4], 1); /* one escape */
    assert_int_equal(mfz_decode(d, MFZ_F16X, 0, enc, (size_t)n, dst, N, scratch), 0);
    assert_memory_equal(dst, src, N);
    enc[n - 1] = 32;
    assert_int_equal(mfz_decode(d, MFZ_F16X, 0, enc, (size_t)n, dst, N, scratch), -EIO);
    enc[n - 1] = 30;
    enc[0] = 18;
    assert_int_equal(mfz_decode(d, MFZ_F16X, 0, enc, (size_t)n, dst, N, scratch), -EIO);
    /* exponents spread over more than 15 values: the nibble codecs decline, byte planes take it */
    for (size_t i = 0; i < N; i += 2)
        src[i + 1] = (uint8_t)rng(&x);
    assert_int_equal(mfz_encode(e, MFZ_BF16X, 0, src, N, enc, N + 64), -EDOM);
    assert_int_equal(mfz_encode(e, MFZ_F16X, 0, src, N, enc, N + 64), -EDOM);
    mfz_enc_free(e);
    ZSTD_freeDCtx(d);
    free(src), free(enc), free(dst), free(scratch);
}

static void test_expected_errors(void **state)
{
    (void)state;
    assert_int_equal(chdir("tests/data/container"), 0);
    size_t base_len;
    uint8_t *base = test_read_file("base.gguf", &base_len);
    assert_non_null(base);
    FILE *f = fopen("expected.txt", "r");
    assert_non_null(f);
    mfs_engine *e;
    assert_int_equal(mfs_engine_create(&(struct mfs_engine_config){.cache_bytes = 1 << 20}, &e), 0);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *tab = strchr(line, '\t');
        if (!tab || tab - line < 4 || strncmp(tab - 4, ".mfz", 4) != 0)
            continue;
        *tab = '\0';
        const char *file = line, *want = tab + 1;
        mfs_source *plain, *s = NULL;
        mfs_err err = {{0}};
        assert_int_equal(mfs_source_open_file(file, &plain, &err), 0);
        int rc = mfs_container_open(plain, e, &s, &err);
        unsigned long lo, hi;
        if (strcmp(want, "OK") == 0) {
            if (rc)
                fail_msg("%s: %s", file, err.msg);
            check_same(s, base, base_len);
            mfs_source_unref(s);
            s = open_ok(e, file); /* found by its magic */
            assert_int_equal(mfs_source_info(s)->kind, MFS_SRC_CONTAINER);
        } else if (sscanf(want, "EIO %lu %lu", &lo, &hi) == 2) {
            /* opens; only reads that need the damaged chunk fail */
            if (rc)
                fail_msg("%s: %s", file, err.msg);
            uint8_t *buf = malloc(base_len);
            assert_int_equal(mfs_source_read(s, buf, lo, 0), lo);
            assert_memory_equal(buf, base, lo);
            assert_int_equal(mfs_source_read(s, buf, 1, lo + 5), -EIO);
            assert_int_equal(mfs_source_read(s, buf, hi - lo + 2, lo - 1), -EIO);
            assert_int_equal(mfs_source_read(s, buf, base_len - hi, hi), base_len - hi);
            assert_memory_equal(buf, base + hi, base_len - hi);
            assert_int_equal(mfs_source_read(s, buf, 1, hi - 1), -EIO); /* still, on a second try */
            free(buf);
        } else {
            if (rc == 0)
                fail_msg("%s: opened, expected: %s", file, want);
            if (strcmp(err.msg, want) != 0)
                fail_msg("%s:\n  expected: %s\n  got:      %s", file, want, err.msg);
        }
        mfs_source_unref(s);
        n++;
    }
    fclose(f);
    struct mfs_engine_stats st;
    mfs_engine_stats(e, &st);
    assert_true(st.decode_errors >= 4);
    mfs_engine_destroy(e);
    free(base);
    assert_int_equal(chdir("../../.."), 0);
    assert_true(n >= 20);
}

struct reader {
    mfs_source *s;
    const uint8_t *want;
    size_t len;
    uint64_t seed;
    int bad;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    uint8_t buf[20000];
    for (int i = 0; i < 2000; i++) {
        uint64_t off = rng(&r->seed) % r->len, n = rng(&r->seed) % sizeof buf;
        uint64_t w = off + n > r->len ? r->len - off : n;
        ssize_t got = mfs_source_read(r->s, buf, n, off);
        if (got != (ssize_t)w || memcmp(buf, r->want + off, w) != 0)
            r->bad++;
    }
    return NULL;
}

/* Eight threads reading one container, with a cache that holds four chunks. */
static void test_threads(void **state)
{
    (void)state;
    static const struct tspec ts[] = {
        {"w.bf16", MFS_GGML_BF16, 2, {4096, 8}},
        {"w.f32", MFS_GGML_F32, 2, {1000, 9}},
        {"w.q8_0", MFS_GGML_Q8_0, 2, {4096, 4}},
    };
    const char *in = tmp_path("threads.gguf"), *out = tmp_path("threads.mfz");
    size_t len;
    uint8_t *file = write_gguf(in, ts, 3, false, &len);
    pack_ok(in, out, CHUNK, 2);
    mfs_engine *e;
    assert_int_equal(mfs_engine_create(&(struct mfs_engine_config){.cache_bytes = 4 * CHUNK, .threads = 2}, &e), 0);
    mfs_source *s = open_ok(e, out);
    pthread_t th[8];
    struct reader r[8];
    for (int i = 0; i < 8; i++) {
        r[i] = (struct reader){.s = s, .want = file, .len = len, .seed = 99991u + (uint64_t)i * 7919};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &r[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(r[i].bad, 0);
    }
    mfs_source_unref(s);
    mfs_engine_destroy(e);
    free(file);
}

/* A safetensors file is cut per tensor too; other files are refused; the default format. */
static void test_inputs(void **state)
{
    (void)state;
    const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
                       "\"w\":{\"dtype\":\"BF16\",\"shape\":[64,80],\"data_offsets\":[0,10240]},"
                       "\"n\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[10240,10640]},"
                       "\"u\":{\"dtype\":\"U8\",\"shape\":[7],\"data_offsets\":[10640,10647]}}";
    size_t jl = strlen(json), hl = (jl + 7) / 8 * 8, len = 8 + hl + 10647;
    uint8_t *st = malloc(len);
    for (int i = 0; i < 8; i++)
        st[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memset(st + 8, ' ', hl);
    memcpy(st + 8, json, jl);
    uint64_t x = 5;
    fill(st + 8 + hl, 10240, MFS_GGML_BF16, &x);
    fill(st + 8 + hl + 10240, 407, MFS_GGML_F32, &x);
    const char *in = tmp_path("m.safetensors"), *out = tmp_path("m.safetensors.mfz");
    assert_int_equal(test_write_file(in, st, len), 0);
    assert_int_equal(mfs_pack_default_format(in, out), MFS_PACK_CONTAINER);
    assert_int_equal(mfs_pack_default_format(in, tmp_path("m.safetensors.zst")), MFS_PACK_ZST);
    pack_ok(in, out, CHUNK, 2);
    mfs_engine *e;
    assert_int_equal(mfs_engine_create(&(struct mfs_engine_config){.cache_bytes = 1 << 20}, &e), 0);
    mfs_source *s = open_ok(e, out);
    check_same(s, st, len);
    /* "w", the first tensor after __metadata__: 4 KiB chunks of BF16 */
    assert_true(has_codec(s, "bf16-nibbles", 0, false) || has_codec(s, "bf16-planes", 0, false));
    mfs_source_unref(s);

    /* data_offsets past the end of the file */
    memcpy(st + 8 + strlen("{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"dtype\":\"BF16\",\"shape\":[64,80],"
                           "\"data_offsets\":[0,"), "99999", 5);
    assert_int_equal(test_write_file(in, st, len), 0);
    struct mfs_pack_opts o = {.format = MFS_PACK_CONTAINER, .force = true};
    mfs_err err = {{0}};
    assert_int_equal(mfs_pack_file(in, out, &o, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "tensor 'w': data_offsets [0, 99999] are outside the data (10647 bytes)"));

    /* not a model */
    const char *other = tmp_path("notes.txt");
    assert_int_equal(test_write_file(other, "hello, world\n", 13), 0);
    assert_int_equal(mfs_pack_default_format(other, tmp_path("notes.mfz")), MFS_PACK_ZST);
    assert_int_equal(mfs_pack_file(other, tmp_path("notes.mfz"), &o, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not a GGUF or safetensors file"));
    assert_int_equal(access(tmp_path("notes.mfz"), F_OK), -1); /* nothing left behind */

    /* an empty GGUF (no tensors): the header alone */
    mfs_gguf *g = mfs_gguf_new();
    uint8_t *hdr;
    size_t hlen;
    assert_int_equal(mfs_gguf_write_header(g, &hdr, &hlen, &err), 0);
    mfs_gguf_free(g);
    assert_int_equal(test_write_file(tmp_path("empty.gguf"), hdr, hlen), 0);
    pack_ok(tmp_path("empty.gguf"), tmp_path("empty.mfz"), 0, 1);
    s = open_ok(e, tmp_path("empty.mfz"));
    check_same(s, hdr, hlen);
    mfs_source_unref(s);
    free(hdr);
    mfs_engine_destroy(e);
    free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),   cmocka_unit_test(test_shuffles),   cmocka_unit_test(test_nibbles),
        cmocka_unit_test(test_f16_high),
        cmocka_unit_test(test_field_tables),
        cmocka_unit_test(test_decode_bounds), cmocka_unit_test(test_expected_errors), cmocka_unit_test(test_threads),
        cmocka_unit_test(test_inputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
