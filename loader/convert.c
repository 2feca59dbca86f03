#include "convert.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mfs_ggml.h"
#include "mfs_safetensors.h"

static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE float sizes");

/* Bytes of stored input converted per step: bounded stack use, few reads per row. */
#define CONV_STEP 4096
/* Most bytes of stored heads held at once by a permuted read (heads larger than this are read
 * row by row). */
#define PERM_SCRATCH (4u << 20)

/* ---------------------------------------------------------------- elements */

static float f32_from_bits(uint32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    return f;
}

float mfs_half_to_float(uint16_t h)
{
    uint32_t s = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
    if (e == 31)
        return f32_from_bits(s | 0x7F800000u | m << 13); /* inf, NaN (payload kept) */
    if (e == 0) {
        if (m == 0)
            return f32_from_bits(s);
        e = 113; /* subnormal: normalize */
        while (!(m & 0x400u)) {
            m <<= 1;
            e--;
        }
        return f32_from_bits(s | e << 23 | (m & 0x3FFu) << 13);
    }
    return f32_from_bits(s | (e + 112) << 23 | m << 13);
}

/* float8_e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities; S.1111.111 is NaN. */
float mfs_e4m3_to_float(uint8_t b)
{
    uint32_t s = (uint32_t)(b & 0x80u) << 24, e = (b >> 3) & 0xFu, m = b & 7u;
    if (e == 15 && m == 7)
        return f32_from_bits(s | 0x7FC00000u);
    if (e == 0) {
        if (m == 0)
            return f32_from_bits(s);
        e = 121; /* m * 2^-9, normalized */
        while (!(m & 8u)) {
            m <<= 1;
            e--;
        }
        return f32_from_bits(s | e << 23 | (m & 7u) << 20);
    }
    return f32_from_bits(s | (e + 120) << 23 | m << 20);
}

uint16_t mfs_e4m3_to_half(uint8_t b)
{
    uint16_t s = (uint16_t)((b & 0x80u) << 8);
    unsigned e = (b >> 3) & 0xFu, m = b & 7u;
    if (e == 15 && m == 7)
        return s | 0x7E00u;
    if (e == 0) {
        if (m == 0)
            return s;
        e = 9; /* m * 2^-9 is a normal half: exponent field 6 + position of m's top bit */
        while (!(m & 8u)) {
            m <<= 1;
            e--;
        }
        return (uint16_t)(s | e << 10 | (m & 7u) << 7);
    }
    return (uint16_t)(s | (e + 8) << 10 | m << 7);
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void wr32(uint8_t *p, uint32_t v) { wr16(p, (uint16_t)v); wr16(p + 2, (uint16_t)(v >> 16)); }
static void wr64(uint8_t *p, uint64_t v) { wr32(p, (uint32_t)v); wr32(p + 4, (uint32_t)(v >> 32)); }

static void wrf32(uint8_t *p, float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    wr32(p, b);
}

/* Convert n elements from `in` (dtype) to `out` (type); the pair is supported. */
static void convert_elems(uint32_t dtype, uint32_t type, const uint8_t *in, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (type) {
        case MFS_GGML_F32: {
            float f = 0;
            switch (dtype) {
            case MFS_ST_F16: f = mfs_half_to_float(rd16(in + 2 * i)); break;
            case MFS_ST_BF16: f = f32_from_bits((uint32_t)rd16(in + 2 * i) << 16); break;
            case MFS_ST_F8_E4M3: f = mfs_e4m3_to_float(in[i]); break;
            case MFS_ST_F8_E5M2: f = mfs_half_to_float((uint16_t)(in[i] << 8)); break;
            case MFS_ST_F64: {
                uint64_t b = rd64(in + 8 * i);
                double d;
                memcpy(&d, &b, 8);
                f = (float)d;
                break;
            }
            default: break;
            }
            wrf32(out + 4 * i, f);
            break;
        }
        case MFS_GGML_F16:
            wr16(out + 2 * i, dtype == MFS_ST_F8_E4M3 ? mfs_e4m3_to_half(in[i]) : (uint16_t)(in[i] << 8));
            break;
        case MFS_GGML_I16: wr16(out + 2 * i, in[i]); break;
        case MFS_GGML_I32: wr32(out + 4 * i, rd16(in + 2 * i)); break;
        case MFS_GGML_I64: wr64(out + 8 * i, rd32(in + 4 * i)); break;
        default: break;
        }
    }
}

/* Same bytes, or converted? */
static bool conv_identity(uint32_t dtype, uint32_t type)
{
    switch (dtype) {
    case MFS_ST_F32: return type == MFS_GGML_F32;
    case MFS_ST_F16: return type == MFS_GGML_F16;
    case MFS_ST_BF16: return type == MFS_GGML_BF16;
    case MFS_ST_F64: return type == MFS_GGML_F64;
    case MFS_ST_I64: return type == MFS_GGML_I64;
    case MFS_ST_I32: return type == MFS_GGML_I32;
    case MFS_ST_I16: return type == MFS_GGML_I16;
    case MFS_ST_I8:
    case MFS_ST_BOOL: return type == MFS_GGML_I8;
    default: return false;
    }
}

bool mfs_conv_supported(uint32_t dtype, uint32_t type)
{
    if (conv_identity(dtype, type))
        return true;
    switch (type) {
    case MFS_GGML_F32:
        return dtype == MFS_ST_F16 || dtype == MFS_ST_BF16 || dtype == MFS_ST_F64 || dtype == MFS_ST_F8_E4M3 ||
               dtype == MFS_ST_F8_E5M2;
    case MFS_GGML_F16: return dtype == MFS_ST_F8_E4M3 || dtype == MFS_ST_F8_E5M2;
    case MFS_GGML_I16: return dtype == MFS_ST_U8;
    case MFS_GGML_I32: return dtype == MFS_ST_U16;
    case MFS_GGML_I64: return dtype == MFS_ST_U32;
    default: return false;
    }
}

/* ---------------------------------------------------------------- the transform */

struct conv_ctx {
    struct mfs_conv c;
    uint32_t ei, eo;   /* bytes per stored / presented element */
    uint64_t head_rows; /* rows per permutation group, 0 if not permuted */
    bool identity;
};

static uint64_t stored_row(const struct conv_ctx *x, uint64_t r)
{
    if (!x->head_rows)
        return r;
    uint64_t h = r / x->head_rows, w = r % x->head_rows;
    return h * x->head_rows + (w & 1) * (x->head_rows / 2) + (w >> 1);
}

/* Presented bytes [off, off + len) that lie within one row, from stored element `se` on; `skip`
 * bytes of the first presented element are not wanted. */
static int read_run(const struct conv_ctx *x, uint8_t *dst, size_t len, uint64_t se, uint32_t skip)
{
    if (x->identity) {
        ssize_t n = mfs_source_read(x->c.src, dst, len, x->c.off + se * x->ei + skip);
        return n < 0 ? (int)n : (size_t)n == len ? 0 : -EIO;
    }
    uint8_t in[CONV_STEP], out[CONV_STEP * 4]; /* widening grows an element at most 4x */
    while (len) {
        size_t want = (skip + len + x->eo - 1) / x->eo; /* presented elements touched */
        size_t n = want < CONV_STEP / x->ei ? want : CONV_STEP / x->ei;
        ssize_t got = mfs_source_read(x->c.src, in, n * x->ei, x->c.off + se * x->ei);
        if (got < 0)
            return (int)got;
        if ((size_t)got != n * x->ei)
            return -EIO;
        convert_elems(x->c.dtype, x->c.type, in, out, n);
        size_t avail = n * x->eo - skip, k = avail < len ? avail : len;
        memcpy(dst, out + skip, k);
        dst += k;
        len -= k;
        se += n;
        skip = 0;
    }
    return 0;
}

/* A permuted tensor of unchanged type, head by head: a head's presented rows are a permutation of
 * the same head's stored rows, the even ones (s = 0) from its first half, the odd ones from its
 * second half. A whole head is one read; part of one is two reads (its even and its odd rows). */
static ssize_t read_heads(const struct conv_ctx *x, uint8_t *dst, size_t len, uint64_t off)
{
    uint64_t row_bytes = x->c.row_elems * x->eo, hr = x->head_rows, head_bytes = hr * row_bytes;
    uint8_t *scratch = malloc(len < head_bytes ? len + 2 * row_bytes : head_bytes);
    if (!scratch)
        return -ENOMEM;
    size_t done = 0;
    int rc = 0;
    while (rc == 0 && done < len) {
        uint64_t o = off + done, h = o / head_bytes, base = h * hr;
        uint64_t stop = (h + 1) * head_bytes < o + (len - done) ? (h + 1) * head_bytes : o + (len - done);
        uint64_t wa = o / row_bytes - base, wb = (stop + row_bytes - 1) / row_bytes - base; /* rows [wa, wb) */
        uint64_t lo[2], n[2];
        for (int sp = 0; sp < 2; sp++) { /* presented rows 2i + sp, i in [lo, lo + n) */
            lo[sp] = (wa + 1 - (uint64_t)sp) / 2;
            uint64_t hi = wb > (uint64_t)sp ? (wb - 1 - (uint64_t)sp) / 2 + 1 : 0;
            n[sp] = hi > lo[sp] ? hi - lo[sp] : 0;
        }
        uint8_t *run[2] = {scratch, scratch + n[0] * row_bytes};
        if (wa == 0 && wb == hr) { /* the whole head: both halves in one read */
            lo[1] = 0;
            run[1] = scratch + hr / 2 * row_bytes;
            ssize_t got = mfs_source_read(x->c.src, scratch, head_bytes, x->c.off + h * head_bytes);
            rc = got < 0 ? (int)got : (uint64_t)got == head_bytes ? 0 : -EIO;
        }
        for (int sp = 0; sp < 2 && rc == 0 && !(wa == 0 && wb == hr); sp++) {
            if (!n[sp])
                continue;
            uint64_t at = x->c.off + (base + (uint64_t)sp * (hr / 2) + lo[sp]) * row_bytes;
            ssize_t got = mfs_source_read(x->c.src, run[sp], n[sp] * row_bytes, at);
            rc = got < 0 ? (int)got : (uint64_t)got == n[sp] * row_bytes ? 0 : -EIO;
        }
        while (rc == 0 && off + done < stop) {
            uint64_t at = off + done, w = at / row_bytes - base, in_row = at % row_bytes;
            size_t k = (size_t)(row_bytes - in_row < stop - at ? row_bytes - in_row : stop - at);
            memcpy(dst + done, run[w & 1] + ((w >> 1) - lo[w & 1]) * row_bytes + in_row, k);
            done += k;
        }
    }
    free(scratch);
    return rc ? rc : (ssize_t)done;
}

static ssize_t conv_read(void *ctx, void *buf, size_t len, uint64_t off)
{
    const struct conv_ctx *x = ctx;
    uint64_t row_bytes = x->c.row_elems * x->eo;
    if (row_bytes == 0)
        return 0;
    if (x->identity && x->head_rows && x->head_rows * row_bytes <= PERM_SCRATCH)
        return read_heads(x, buf, len, off);
    size_t done = 0;
    while (done < len) {
        uint64_t o = off + done, r = o / row_bytes, in_row = o % row_bytes;
        /* permuted: one row at a time; in order: one run to the end */
        uint64_t n = x->head_rows ? row_bytes - in_row : UINT64_MAX;
        size_t k = n < len - done ? (size_t)n : len - done;
        uint64_t se = stored_row(x, r) * x->c.row_elems + in_row / x->eo;
        int rc = read_run(x, (uint8_t *)buf + done, k, se, (uint32_t)(in_row % x->eo));
        if (rc)
            return rc;
        done += k;
    }
    return (ssize_t)done;
}

static void conv_free(void *ctx)
{
    struct conv_ctx *x = ctx;
    mfs_source_unref(x->c.src);
    free(x);
}

static const struct mfs_transform_ops conv_ops = {.read = conv_read, .free = conv_free};

int mfs_conv_check(const struct mfs_conv *c, uint64_t *out_size, mfs_err *err)
{
    if (!mfs_conv_supported(c->dtype, c->type)) {
        mfs_err_set(err, "%s cannot be presented as %s", mfs_st_dtype_name(c->dtype) ? mfs_st_dtype_name(c->dtype) : "?",
                    mfs_ggml_type_name(c->type) ? mfs_ggml_type_name(c->type) : "?");
        return -EINVAL;
    }
    uint64_t eo = mfs_ggml_type_size(c->type), ei = mfs_st_dtype_size(c->dtype);
    if (c->row_elems && c->rows > UINT64_MAX / c->row_elems) {
        mfs_err_set(err, "%" PRIu64 " rows of %" PRIu64 " elements overflow", c->rows, c->row_elems);
        return -EINVAL;
    }
    uint64_t n = c->rows * c->row_elems;
    if (n > UINT64_MAX / eo || n > UINT64_MAX / ei || c->off > UINT64_MAX - n * ei) {
        mfs_err_set(err, "%" PRIu64 " elements overflow", n);
        return -EINVAL;
    }
    if (c->n_head && (c->rows % c->n_head || (c->rows / c->n_head) % 2)) {
        mfs_err_set(err, "%" PRIu64 " rows cannot be permuted for %" PRIu64 " heads (need a multiple of %" PRIu64 ")",
                    c->rows, c->n_head, c->n_head > UINT64_MAX / 2 ? 0 : 2 * c->n_head);
        return -EINVAL;
    }
    *out_size = n * eo;
    return 0;
}

int mfs_conv_transform(const struct mfs_conv *c, const struct mfs_transform_ops **ops, void **ctx)
{
    uint64_t size;
    if (mfs_conv_check(c, &size, NULL))
        return -EINVAL;
    struct conv_ctx *x = calloc(1, sizeof *x);
    if (!x)
        return -ENOMEM;
    x->c = *c;
    x->c.src = mfs_source_ref(c->src);
    x->ei = mfs_st_dtype_size(c->dtype);
    x->eo = mfs_ggml_type_size(c->type);
    x->identity = conv_identity(c->dtype, c->type);
    x->head_rows = c->n_head ? c->rows / c->n_head : 0;
    *ops = &conv_ops;
    *ctx = x;
    return 0;
}

int mfs_conv_add(mfs_model *m, const struct mfs_conv *c)
{
    uint64_t size;
    int rc = mfs_conv_check(c, &size, NULL);
    if (rc)
        return rc;
    bool permuted = c->n_head && c->rows / c->n_head > 2;
    if (conv_identity(c->dtype, c->type) && !permuted)
        return mfs_model_add_source(m, c->src, c->off, size);
    const struct mfs_transform_ops *ops;
    void *ctx;
    if ((rc = mfs_conv_transform(c, &ops, &ctx)))
        return rc;
    return mfs_model_add_transform(m, size, ops, ctx);
}
