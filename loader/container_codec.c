/* The container's chunk codecs: byte planes for floats, 4-bit exponent codes for BF16, field planes
 * for quantized blocks, each plane a zstd frame tuned as an entropy coder or raw bytes; the inverse
 * shuffle and the exponent expansion that put the planes back together (scalar, AVX2, AVX-512,
 * chosen at run time); the encoder's choice of codec per chunk. */
#include "container.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
/* XXH3_64bits_dispatch: libxxhash picks its AVX2/AVX-512 code at run time (the plain entry point
 * is built for SSE2 and hashes at a third of the speed) */
#include <xxh_x86dispatch.h>
#define MFZ_X86 1
#else
#include <xxhash.h>
#define MFZ_X86 0
#endif

#include "mfs_ggml.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the container codecs assume a little-endian host"
#endif

/* ---------------------------------------------------------------- layouts */

struct field_table {
    uint8_t n;
    struct {
        uint16_t off, len;
    } f[MFZ_MAX_PLANES];
};

/* Field planes of each quantized ggml type, from ggml's block_* structs. A 2-byte scale (ggml_half)
 * becomes two 1-byte planes: its high byte (sign, exponent) compresses, its low byte hardly does. */
#define F1(o) {o, 1}
#define H2(o) F1(o), F1((o) + 1)
static const struct field_table k_fields[MFS_GGML_TYPE_COUNT] = {
    [MFS_GGML_Q4_0] = {3, {H2(0), {2, 16}}},
    [MFS_GGML_Q4_1] = {5, {H2(0), H2(2), {4, 16}}},
    [MFS_GGML_Q5_0] = {4, {H2(0), {2, 4}, {6, 16}}},
    [MFS_GGML_Q5_1] = {6, {H2(0), H2(2), {4, 4}, {8, 16}}},
    [MFS_GGML_Q8_0] = {3, {H2(0), {2, 32}}},
    [MFS_GGML_Q8_1] = {5, {H2(0), H2(2), {4, 32}}},
    [MFS_GGML_Q2_K] = {6, {{0, 16}, {16, 64}, H2(80), H2(82)}},
    [MFS_GGML_Q3_K] = {5, {{0, 32}, {32, 64}, {96, 12}, H2(108)}},
    [MFS_GGML_Q4_K] = {6, {H2(0), H2(2), {4, 12}, {16, 128}}},
    [MFS_GGML_Q5_K] = {7, {H2(0), H2(2), {4, 12}, {16, 32}, {48, 128}}},
    [MFS_GGML_Q6_K] = {5, {{0, 128}, {128, 64}, {192, 16}, H2(208)}},
    [MFS_GGML_Q8_K] = {6, {H2(0), H2(2), {4, 256}, {260, 32}}},
    [MFS_GGML_IQ2_XXS] = {3, {H2(0), {2, 64}}},
    [MFS_GGML_IQ2_XS] = {4, {H2(0), {2, 64}, {66, 8}}},
    [MFS_GGML_IQ3_XXS] = {3, {H2(0), {2, 96}}},
    [MFS_GGML_IQ1_S] = {4, {H2(0), {2, 32}, {34, 16}}},
    [MFS_GGML_IQ4_NL] = {3, {H2(0), {2, 16}}},
    [MFS_GGML_IQ3_S] = {6, {H2(0), {2, 64}, {66, 8}, {74, 32}, {106, 4}}},
    [MFS_GGML_IQ2_S] = {5, {H2(0), {2, 64}, {66, 8}, {74, 8}}},
    [MFS_GGML_IQ4_XS] = {5, {H2(0), {2, 2}, {4, 4}, {8, 128}}},
    [MFS_GGML_IQ1_M] = {3, {{0, 32}, {32, 16}, {48, 8}}},
    [MFS_GGML_TQ1_0] = {4, {{0, 48}, {48, 4}, H2(52)}},
    [MFS_GGML_TQ2_0] = {3, {{0, 64}, H2(64)}},
    [MFS_GGML_MXFP4] = {2, {F1(0), {1, 16}}},
    /* plain integers and F64: byte planes */
    [MFS_GGML_I16] = {2, {F1(0), F1(1)}},
    [MFS_GGML_I32] = {4, {F1(0), F1(1), F1(2), F1(3)}},
    [MFS_GGML_I64] = {8, {F1(0), F1(1), F1(2), F1(3), F1(4), F1(5), F1(6), F1(7)}},
    [MFS_GGML_F64] = {8, {F1(0), F1(1), F1(2), F1(3), F1(4), F1(5), F1(6), F1(7)}},
};
#undef F1
#undef H2
static_assert(sizeof k_fields / sizeof k_fields[0] == MFS_GGML_TYPE_COUNT, "field table follows the ggml enum");

static const char *const k_codec_names[MFZ_CODEC_COUNT] = {
    [MFZ_RAW] = "raw", [MFZ_ZERO] = "zero", [MFZ_ZSTD] = "zstd", [MFZ_BF16] = "bf16-planes",
    [MFZ_F16] = "f16-planes", [MFZ_F32] = "f32-planes", [MFZ_BLOCKS] = "fields", [MFZ_BF16X] = "bf16-nibbles",
    [MFZ_F16X] = "f16-nibbles",
};
static_assert(sizeof k_codec_names / sizeof k_codec_names[0] == MFZ_CODEC_COUNT, "names follow the enum");

const char *mfz_codec_name(unsigned codec)
{
    return codec < MFZ_CODEC_COUNT ? k_codec_names[codec] : "unknown";
}

int mfz_layout_of(unsigned codec, unsigned param, struct mfz_layout *out)
{
    memset(out, 0, sizeof *out);
    switch (codec) {
    case MFZ_BF16:
    case MFZ_F16:
    case MFZ_F32: {
        uint32_t w = codec == MFZ_F32 ? 4 : 2;
        if (param != 0)
            return -EINVAL;
        out->elem = w;
        out->n_planes = w;
        out->rotate = true;
        for (uint32_t p = 0; p < w; p++) {
            out->off[p] = (uint16_t)p;
            out->len[p] = 1;
        }
        return 0;
    }
    case MFZ_BLOCKS: {
        if (param >= MFS_GGML_TYPE_COUNT || k_fields[param].n == 0)
            return -EINVAL;
        const struct field_table *t = &k_fields[param];
        out->elem = mfs_ggml_type_size(param);
        out->n_planes = t->n;
        for (uint32_t p = 0; p < t->n; p++) {
            out->off[p] = t->f[p].off;
            out->len[p] = t->f[p].len;
        }
        return 0;
    }
    default:
        return -EINVAL;
    }
}

unsigned mfz_codec_for_type(uint32_t type, unsigned *param)
{
    *param = 0;
    switch (type) {
    case MFS_GGML_BF16: return MFZ_BF16X;
    case MFS_GGML_F16: return MFZ_F16X;
    case MFS_GGML_F32: return MFZ_F32;
    default:
        if (type < MFS_GGML_TYPE_COUNT && k_fields[type].n) {
            *param = type;
            return MFZ_BLOCKS;
        }
        return MFZ_ZSTD;
    }
}

uint64_t mfz_checksum(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}

uint32_t mfz_elem_size(unsigned codec, unsigned param)
{
    struct mfz_layout l;
    if (codec == MFZ_RAW || codec == MFZ_ZERO || codec == MFZ_ZSTD)
        return param == 0;
    if (codec == MFZ_BF16X || codec == MFZ_F16X)
        return param == 0 ? 2 : 0;
    return mfz_layout_of(codec, param, &l) == 0 ? l.elem : 0;
}

int mfz_check_sizes(unsigned codec, unsigned param, uint32_t csize, uint32_t dsize, uint32_t *elem)
{
    struct mfz_layout l;
    *elem = 1;
    switch (codec) {
    case MFZ_RAW: return param == 0 && csize == dsize ? 0 : -ERANGE;
    case MFZ_ZERO: return param == 0 && csize == 0 ? 0 : -ERANGE;
    case MFZ_ZSTD: return param == 0 && csize > 0 && csize <= ZSTD_compressBound(dsize) ? 0 : -ERANGE;
    case MFZ_BF16X:
    case MFZ_F16X: {
        uint32_t table = MFZ_XHEADER + 4 * (codec == MFZ_F16X ? 6 : 3);
        *elem = 2;
        if (param != 0)
            return -ENOENT;
        if (dsize % 2)
            return -EDOM;
        return csize >= table && csize - table < dsize ? 0 : -ERANGE;
    }
    default:
        if (mfz_layout_of(codec, param, &l))
            return -ENOENT;
        *elem = l.elem;
        if (dsize % l.elem)
            return -EDOM;
        return csize >= 4 * l.n_planes && csize - 4 * l.n_planes < dsize ? 0 : -ERANGE;
    }
}

/* ---------------------------------------------------------------- shuffles */

static inline uint16_t rotl16(uint16_t v) { return (uint16_t)(v << 1 | v >> 15); }
static inline uint16_t rotr16(uint16_t v) { return (uint16_t)(v >> 1 | v << 15); }
static inline uint32_t rotl32(uint32_t v) { return v << 1 | v >> 31; }
static inline uint32_t rotr32(uint32_t v) { return v >> 1 | v << 31; }

void mfz_split(const struct mfz_layout *l, const uint8_t *src, size_t n, uint8_t *const *planes)
{
    if (l->rotate && l->elem == 2) {
        uint8_t *p0 = planes[0], *p1 = planes[1];
        for (size_t i = 0; i < n; i++) {
            uint16_t v;
            memcpy(&v, src + 2 * i, 2);
            v = rotl16(v);
            p0[i] = (uint8_t)v;
            p1[i] = (uint8_t)(v >> 8);
        }
        return;
    }
    if (l->rotate && l->elem == 4) {
        for (size_t i = 0; i < n; i++) {
            uint32_t v;
            memcpy(&v, src + 4 * i, 4);
            v = rotl32(v);
            planes[0][i] = (uint8_t)v;
            planes[1][i] = (uint8_t)(v >> 8);
            planes[2][i] = (uint8_t)(v >> 16);
            planes[3][i] = (uint8_t)(v >> 24);
        }
        return;
    }
    for (uint32_t p = 0; p < l->n_planes; p++) {
        size_t len = l->len[p];
        const uint8_t *s = src + l->off[p];
        uint8_t *d = planes[p];
        for (size_t i = 0; i < n; i++)
            memcpy(d + i * len, s + i * l->elem, len);
    }
}

static void merge2_scalar(const uint8_t *p0, const uint8_t *p1, size_t n, uint8_t *dst)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t v = rotr16((uint16_t)(p0[i] | p1[i] << 8));
        memcpy(dst + 2 * i, &v, 2);
    }
}

static void merge4_scalar(const uint8_t *const *p, size_t n, uint8_t *dst)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)p[0][i] | (uint32_t)p[1][i] << 8 | (uint32_t)p[2][i] << 16 | (uint32_t)p[3][i] << 24;
        v = rotr32(v);
        memcpy(dst + 4 * i, &v, 4);
    }
}

/* Copy one field of every block; constant lengths let the compiler inline the copies. The widest
 * field goes first: its dense stores bring a cold destination into the cache, where the 1-byte
 * fields then land (one byte per cache line, first, stalls on every line). */
#define FIELD_LOOP(LEN)                                                                                        \
    for (size_t i = 0; i < n; i++)                                                                             \
        memcpy(d + i * elem, s + i * (LEN), (LEN));
static void merge_fields(const struct mfz_layout *l, const uint8_t *const *planes, size_t n, uint8_t *dst)
{
    size_t elem = l->elem;
    uint32_t order[MFZ_MAX_PLANES];
    for (uint32_t p = 0; p < l->n_planes; p++) {
        uint32_t k = p;
        for (; k > 0 && l->len[order[k - 1]] < l->len[p]; k--)
            order[k] = order[k - 1];
        order[k] = p;
    }
    for (uint32_t q = 0; q < l->n_planes; q++) {
        uint32_t p = order[q];
        const uint8_t *s = planes[p];
        uint8_t *d = dst + l->off[p];
        switch (l->len[p]) {
        case 1: FIELD_LOOP(1) break;
        case 2: FIELD_LOOP(2) break;
        case 4: FIELD_LOOP(4) break;
        case 8: FIELD_LOOP(8) break;
        case 12: FIELD_LOOP(12) break;
        case 16: FIELD_LOOP(16) break;
        case 32: FIELD_LOOP(32) break;
        case 64: FIELD_LOOP(64) break;
        case 128: FIELD_LOOP(128) break;
        default: {
            size_t len = l->len[p];
            for (size_t i = 0; i < n; i++)
                memcpy(d + i * elem, s + i * len, len);
        }
        }
    }
}
#undef FIELD_LOOP

#if MFZ_X86
/* 32 elements of 2 bytes per step. unpack works inside 128-bit lanes: lo holds elements 0-7 and
 * 16-23, hi 8-15 and 24-31; the lane permutes put them back in order. */
__attribute__((target("avx2"))) static size_t merge2_avx2(const uint8_t *p0, const uint8_t *p1, size_t n,
                                                          uint8_t *dst)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(p0 + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(p1 + i));
        __m256i lo = _mm256_unpacklo_epi8(a, b), hi = _mm256_unpackhi_epi8(a, b);
        __m256i o0 = _mm256_permute2x128_si256(lo, hi, 0x20), o1 = _mm256_permute2x128_si256(lo, hi, 0x31);
        o0 = _mm256_or_si256(_mm256_srli_epi16(o0, 1), _mm256_slli_epi16(o0, 15));
        o1 = _mm256_or_si256(_mm256_srli_epi16(o1, 1), _mm256_slli_epi16(o1, 15));
        _mm256_storeu_si256((__m256i *)(dst + 2 * i), o0);
        _mm256_storeu_si256((__m256i *)(dst + 2 * i + 32), o1);
    }
    return i;
}

/* 32 elements of 4 bytes per step: bytes to 16-bit pairs, pairs to 32-bit words, then lanes. */
__attribute__((target("avx2"))) static size_t merge4_avx2(const uint8_t *const *p, size_t n, uint8_t *dst)
{
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a0 = _mm256_loadu_si256((const __m256i *)(p[0] + i));
        __m256i a1 = _mm256_loadu_si256((const __m256i *)(p[1] + i));
        __m256i a2 = _mm256_loadu_si256((const __m256i *)(p[2] + i));
        __m256i a3 = _mm256_loadu_si256((const __m256i *)(p[3] + i));
        __m256i t01lo = _mm256_unpacklo_epi8(a0, a1), t01hi = _mm256_unpackhi_epi8(a0, a1);
        __m256i t23lo = _mm256_unpacklo_epi8(a2, a3), t23hi = _mm256_unpackhi_epi8(a2, a3);
        __m256i u0 = _mm256_unpacklo_epi16(t01lo, t23lo); /* elements 0-3 | 16-19 */
        __m256i u1 = _mm256_unpackhi_epi16(t01lo, t23lo); /* 4-7 | 20-23 */
        __m256i u2 = _mm256_unpacklo_epi16(t01hi, t23hi); /* 8-11 | 24-27 */
        __m256i u3 = _mm256_unpackhi_epi16(t01hi, t23hi); /* 12-15 | 28-31 */
        __m256i o[4] = {_mm256_permute2x128_si256(u0, u1, 0x20), _mm256_permute2x128_si256(u2, u3, 0x20),
                        _mm256_permute2x128_si256(u0, u1, 0x31), _mm256_permute2x128_si256(u2, u3, 0x31)};
        for (int k = 0; k < 4; k++) {
            __m256i v = _mm256_or_si256(_mm256_srli_epi32(o[k], 1), _mm256_slli_epi32(o[k], 31));
            _mm256_storeu_si256((__m256i *)(dst + 4 * i + 32 * k), v);
        }
    }
    return i;
}

/* 64 elements of 2 bytes per step; lo holds 128-bit lanes of elements 0-7, 16-23, 32-39, 48-55. */
__attribute__((target("avx512f,avx512bw"))) static size_t merge2_avx512(const uint8_t *p0, const uint8_t *p1,
                                                                        size_t n, uint8_t *dst)
{
    const __m512i first = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
    const __m512i second = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i a = _mm512_loadu_si512((const void *)(p0 + i));
        __m512i b = _mm512_loadu_si512((const void *)(p1 + i));
        __m512i lo = _mm512_unpacklo_epi8(a, b), hi = _mm512_unpackhi_epi8(a, b);
        __m512i o0 = _mm512_permutex2var_epi64(lo, first, hi), o1 = _mm512_permutex2var_epi64(lo, second, hi);
        o0 = _mm512_or_si512(_mm512_srli_epi16(o0, 1), _mm512_slli_epi16(o0, 15));
        o1 = _mm512_or_si512(_mm512_srli_epi16(o1, 1), _mm512_slli_epi16(o1, 15));
        _mm512_storeu_si512((void *)(dst + 2 * i), o0);
        _mm512_storeu_si512((void *)(dst + 2 * i + 64), o1);
    }
    return i;
}

/* 64 elements of 4 bytes per step. After the two unpack stages u0 holds lanes of elements
 * 0-3, 16-19, 32-35, 48-51 (u1: +4, u2: +8, u3: +12); two permute stages restore the order. */
__attribute__((target("avx512f,avx512bw"))) static size_t merge4_avx512(const uint8_t *const *p, size_t n,
                                                                        uint8_t *dst)
{
    const __m512i first = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
    const __m512i second = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i a0 = _mm512_loadu_si512((const void *)(p[0] + i));
        __m512i a1 = _mm512_loadu_si512((const void *)(p[1] + i));
        __m512i a2 = _mm512_loadu_si512((const void *)(p[2] + i));
        __m512i a3 = _mm512_loadu_si512((const void *)(p[3] + i));
        __m512i t01lo = _mm512_unpacklo_epi8(a0, a1), t01hi = _mm512_unpackhi_epi8(a0, a1);
        __m512i t23lo = _mm512_unpacklo_epi8(a2, a3), t23hi = _mm512_unpackhi_epi8(a2, a3);
        __m512i u0 = _mm512_unpacklo_epi16(t01lo, t23lo), u1 = _mm512_unpackhi_epi16(t01lo, t23lo);
        __m512i u2 = _mm512_unpacklo_epi16(t01hi, t23hi), u3 = _mm512_unpackhi_epi16(t01hi, t23hi);
        __m512i v01a = _mm512_permutex2var_epi64(u0, first, u1);  /* 0-7, 16-23 */
        __m512i v01b = _mm512_permutex2var_epi64(u0, second, u1); /* 32-39, 48-55 */
        __m512i v23a = _mm512_permutex2var_epi64(u2, first, u3);  /* 8-15, 24-31 */
        __m512i v23b = _mm512_permutex2var_epi64(u2, second, u3); /* 40-47, 56-63 */
        __m512i o[4] = {_mm512_shuffle_i64x2(v01a, v23a, 0x44), _mm512_shuffle_i64x2(v01a, v23a, 0xEE),
                        _mm512_shuffle_i64x2(v01b, v23b, 0x44), _mm512_shuffle_i64x2(v01b, v23b, 0xEE)};
        for (int k = 0; k < 4; k++)
            _mm512_storeu_si512((void *)(dst + 4 * i + 64 * k), _mm512_ror_epi32(o[k], 1));
    }
    return i;
}
#endif

/* Exponent codes: out[i] = base + code i, or the next escape where the code is 15. The SIMD loops
 * handle whole groups and patch escapes as they find them (rare: an exponent outside the window of
 * 15 around the chunk's common ones). */
struct nib {
    const uint8_t *esc;
    size_t n_esc, k;
};

static bool patch(struct nib *x, uint8_t *out, uint64_t mask)
{
    while (mask) {
        if (x->k == x->n_esc)
            return false;
        out[__builtin_ctzll(mask)] = x->esc[x->k++];
        mask &= mask - 1;
    }
    return true;
}

static size_t expand_scalar(const uint8_t *codes, size_t from, size_t n, uint8_t base, struct nib *x, uint8_t *out)
{
    for (size_t i = from; i < n; i++) {
        unsigned c = (codes[i / 2] >> (4 * (i & 1))) & 15;
        if (c == 15) {
            if (x->k == x->n_esc)
                return i;
            out[i] = x->esc[x->k++];
        } else {
            out[i] = (uint8_t)(base + c);
        }
    }
    return n;
}

#if MFZ_X86
/* 32 codes (16 bytes) per step: widen each byte to 16 bits, low nibble to the low byte, high
 * nibble to the high byte, which is memory order. */
__attribute__((target("avx2"))) static size_t expand_avx2(const uint8_t *codes, size_t n, uint8_t base, struct nib *x,
                                                          uint8_t *out)
{
    const __m256i lo = _mm256_set1_epi16(0x000F), hi = _mm256_set1_epi16(0x0F00);
    const __m256i esc = _mm256_set1_epi8(15), b = _mm256_set1_epi8((char)base);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i w = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(codes + i / 2)));
        __m256i c = _mm256_or_si256(_mm256_and_si256(w, lo), _mm256_and_si256(_mm256_slli_epi16(w, 4), hi));
        uint32_t m = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(c, esc));
        _mm256_storeu_si256((__m256i *)(out + i), _mm256_add_epi8(c, b));
        if (m && !patch(x, out + i, m))
            return i;
    }
    return i;
}

/* 64 codes (32 bytes) per step. */
__attribute__((target("avx512f,avx512bw"))) static size_t expand_avx512(const uint8_t *codes, size_t n, uint8_t base,
                                                                        struct nib *x, uint8_t *out)
{
    const __m512i lo = _mm512_set1_epi16(0x000F), hi = _mm512_set1_epi16(0x0F00);
    const __m512i esc = _mm512_set1_epi8(15), b = _mm512_set1_epi8((char)base);
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i w = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(codes + i / 2)));
        __m512i c = _mm512_or_si512(_mm512_and_si512(w, lo), _mm512_and_si512(_mm512_slli_epi16(w, 4), hi));
        uint64_t m = _mm512_cmpeq_epi8_mask(c, esc);
        _mm512_storeu_si512((void *)(out + i), _mm512_add_epi8(c, b));
        if (m && !patch(x, out + i, m))
            return i;
    }
    return i;
}
#endif

int mfz_expand_nibbles(enum mfz_isa isa, const uint8_t *codes, size_t n, uint8_t base, const uint8_t *esc,
                       size_t n_esc, uint8_t *out)
{
    if (isa == MFZ_ISA_AUTO)
        isa = mfz_isa_auto();
    struct nib x = {.esc = esc, .n_esc = n_esc};
    size_t done = 0;
#if MFZ_X86
    if (isa == MFZ_ISA_AVX512)
        done = expand_avx512(codes, n, base, &x, out);
    else if (isa == MFZ_ISA_AVX2)
        done = expand_avx2(codes, n, base, &x, out);
#endif
    /* a SIMD loop stops early only when it runs out of escapes: the scalar one finds the same */
    if (expand_scalar(codes, done, n, base, &x, out) != n || x.k != n_esc || ((n & 1) && (codes[n / 2] >> 4)))
        return -EIO;
    return 0;
}

static void f16_high_scalar(uint8_t *e, const uint8_t *b7, const uint8_t *b8, const uint8_t *b9, size_t from, size_t n)
{
    for (size_t i = from; i < n; i++) {
        unsigned s = i & 7;
        size_t k = i / 8;
        e[i] = (uint8_t)(e[i] << 3 | ((b9[k] >> s) & 1) << 2 | ((b8[k] >> s) & 1) << 1 | ((b7[k] >> s) & 1));
    }
}

#if MFZ_X86
/* 32 elements per step: the 4 bytes of each bit plane spread to one byte per bit (every byte of
 * 128-bit lane j gets source byte 2j or 2j+1, keeps its own bit, compares), masked to the bit's
 * value. The exponent bytes are < 32, so a 16-bit shift by 3 keeps them apart. */
__attribute__((target("avx2"))) static size_t f16_high_avx2(uint8_t *e, const uint8_t *b7, const uint8_t *b8,
                                                            const uint8_t *b9, size_t n)
{
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    const uint8_t *const planes[3] = {b7, b8, b9};
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i h = _mm256_slli_epi16(_mm256_loadu_si256((const __m256i *)(e + i)), 3);
        for (int p = 0; p < 3; p++) {
            uint32_t w;
            memcpy(&w, planes[p] + i / 8, 4);
            __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)w), spread);
            v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
            h = _mm256_or_si256(h, _mm256_and_si256(v, _mm256_set1_epi8((char)(1 << p))));
        }
        _mm256_storeu_si256((__m256i *)(e + i), h);
    }
    return i;
}

/* 64 elements per step: 8 bytes of a bit plane are a mask register. */
__attribute__((target("avx512f,avx512bw"))) static size_t f16_high_avx512(uint8_t *e, const uint8_t *b7,
                                                                          const uint8_t *b8, const uint8_t *b9, size_t n)
{
    const uint8_t *const planes[3] = {b7, b8, b9};
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i h = _mm512_slli_epi16(_mm512_loadu_si512((const void *)(e + i)), 3);
        for (int p = 0; p < 3; p++) {
            uint64_t w;
            memcpy(&w, planes[p] + i / 8, 8);
            h = _mm512_mask_add_epi8(h, (__mmask64)w, h, _mm512_set1_epi8((char)(1 << p)));
        }
        _mm512_storeu_si512((void *)(e + i), h);
    }
    return i;
}
#endif

void mfz_f16_high(enum mfz_isa isa, uint8_t *e, const uint8_t *b7, const uint8_t *b8, const uint8_t *b9, size_t n)
{
    if (isa == MFZ_ISA_AUTO)
        isa = mfz_isa_auto();
    size_t done = 0;
#if MFZ_X86
    if (isa == MFZ_ISA_AVX512)
        done = f16_high_avx512(e, b7, b8, b9, n);
    else if (isa == MFZ_ISA_AVX2)
        done = f16_high_avx2(e, b7, b8, b9, n);
#endif
    f16_high_scalar(e, b7, b8, b9, done, n);
}

static pthread_once_t g_isa_once = PTHREAD_ONCE_INIT;
static enum mfz_isa g_isa = MFZ_ISA_SCALAR;

bool mfz_isa_supported(enum mfz_isa isa)
{
    switch (isa) {
    case MFZ_ISA_AUTO:
    case MFZ_ISA_SCALAR: return true;
#if MFZ_X86
    case MFZ_ISA_AVX2: __builtin_cpu_init(); return __builtin_cpu_supports("avx2");
    case MFZ_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
#else
    default: return false;
#endif
    }
    return false;
}

static void isa_init(void)
{
    const char *cap = getenv("MFS_SIMD");
    enum mfz_isa best = mfz_isa_supported(MFZ_ISA_AVX512) ? MFZ_ISA_AVX512
                        : mfz_isa_supported(MFZ_ISA_AVX2) ? MFZ_ISA_AVX2
                                                          : MFZ_ISA_SCALAR;
    if (cap && strcmp(cap, "scalar") == 0)
        best = MFZ_ISA_SCALAR;
    else if (cap && strcmp(cap, "avx2") == 0 && best == MFZ_ISA_AVX512)
        best = MFZ_ISA_AVX2;
    g_isa = best;
}

enum mfz_isa mfz_isa_auto(void)
{
    pthread_once(&g_isa_once, isa_init);
    return g_isa;
}

const char *mfz_isa_name(enum mfz_isa isa)
{
    switch (isa) {
    case MFZ_ISA_AUTO: return "auto";
    case MFZ_ISA_SCALAR: return "scalar";
    case MFZ_ISA_AVX2: return "avx2";
    case MFZ_ISA_AVX512: return "avx512";
    }
    return "?";
}

void mfz_merge(enum mfz_isa isa, const struct mfz_layout *l, const uint8_t *const *planes, size_t n, uint8_t *dst)
{
    if (isa == MFZ_ISA_AUTO)
        isa = mfz_isa_auto();
    if (l->rotate && l->elem == 2) {
        size_t done = 0;
#if MFZ_X86
        if (isa == MFZ_ISA_AVX512)
            done = merge2_avx512(planes[0], planes[1], n, dst);
        else if (isa == MFZ_ISA_AVX2)
            done = merge2_avx2(planes[0], planes[1], n, dst);
#endif
        merge2_scalar(planes[0] + done, planes[1] + done, n - done, dst + 2 * done);
        return;
    }
    if (l->rotate && l->elem == 4) {
        size_t done = 0;
#if MFZ_X86
        if (isa == MFZ_ISA_AVX512)
            done = merge4_avx512(planes, n, dst);
        else if (isa == MFZ_ISA_AVX2)
            done = merge4_avx2(planes, n, dst);
#endif
        const uint8_t *rest[4] = {planes[0] + done, planes[1] + done, planes[2] + done, planes[3] + done};
        merge4_scalar(rest, n - done, dst + 4 * done);
        return;
    }
    merge_fields(l, planes, n, dst);
}

/* ---------------------------------------------------------------- encoder */

struct mfz_enc {
    struct mfz_enc_params p;
    ZSTD_CCtx *plane_cctx, *cctx;
    uint8_t *planes, *tmp;
    size_t planes_cap, tmp_cap;
};

/* Chunks this small also try plain zstd (and BF16 byte planes): plane tables, frame headers and
 * Huffman tables weigh more there. */
#define SMALL_CHUNK (16u << 10)

void mfz_enc_params_default(struct mfz_enc_params *p, int level)
{
    *p = (struct mfz_enc_params){
        .level = level,
        .plane_level = 1,
        .plane_strategy = ZSTD_fast,
        .plane_min_match = 7,
        .plane_window_log = 17,
        .plane_hash_log = 6,
        .min_gain = 0.02,
    };
}

mfz_enc *mfz_enc_new(const struct mfz_enc_params *p)
{
    mfz_enc *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->p = *p;
    e->plane_cctx = ZSTD_createCCtx();
    e->cctx = ZSTD_createCCtx();
    if (!e->plane_cctx || !e->cctx) {
        mfz_enc_free(e);
        return NULL;
    }
    ZSTD_CCtx *c = e->plane_cctx;
    size_t r = 0;
    r |= ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, p->plane_level));
    if (p->plane_strategy)
        r |= ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_strategy, p->plane_strategy));
    if (p->plane_min_match)
        r |= ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_minMatch, p->plane_min_match));
    if (p->plane_window_log)
        r |= ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, p->plane_window_log));
    if (p->plane_hash_log)
        r |= ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_hashLog, p->plane_hash_log));
    r |= ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0));
    r |= ZSTD_isError(ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_compressionLevel, p->level));
    r |= ZSTD_isError(ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_checksumFlag, 0));
    if (r) {
        mfz_enc_free(e);
        return NULL;
    }
    return e;
}

void mfz_enc_free(mfz_enc *e)
{
    if (!e)
        return;
    ZSTD_freeCCtx(e->plane_cctx);
    ZSTD_freeCCtx(e->cctx);
    free(e->planes);
    free(e->tmp);
    free(e);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool grow_planes(mfz_enc *e, size_t want)
{
    if (e->planes_cap >= want)
        return true;
    free(e->planes);
    e->planes = malloc(want ? want : 1);
    e->planes_cap = e->planes ? want : 0;
    return e->planes != NULL;
}

/* Write the plane table at out + table and the planes after it, from *pos: each plane a zstd frame
 * if that saves min_gain of it, else its raw bytes. false if they do not fit in cap. */
static bool put_planes(mfz_enc *e, uint8_t *out, size_t cap, size_t table, size_t *pos, uint8_t *const *planes,
                       const size_t *lens, uint32_t np)
{
    for (uint32_t p = 0; p < np; p++) {
        size_t plen = lens[p], room = cap - *pos;
        size_t worth = (size_t)((double)plen * (1.0 - e->p.min_gain));
        size_t r = plen ? ZSTD_compress2(e->plane_cctx, out + *pos, worth < room ? worth : room, planes[p], plen) : 0;
        ZSTD_CCtx_reset(e->plane_cctx, ZSTD_reset_session_only);
        if (plen && !ZSTD_isError(r) && r < worth) {
            put32(out + table + 4 * p, MFZ_PLANE_ZSTD | (uint32_t)r);
        } else {
            if (plen > room)
                return false;
            memcpy(out + *pos, planes[p], plen);
            put32(out + table + 4 * p, (uint32_t)plen);
            r = plen;
        }
        *pos += r;
    }
    return true;
}

/* MFZ_BF16X and MFZ_F16X: the elements rotated left by one bit, r = exponent | middle bits | low
 * byte, where BF16 has an 8-bit exponent and no middle bits, F16 a 5-bit exponent and 3. -EDOM when
 * more than 1/64 of the exponents fall outside the best window of 15 (the caller then uses the byte
 * planes). */
static long encode_x(mfz_enc *e, bool f16, const uint8_t *src, size_t n, uint8_t *out, size_t cap)
{
    const unsigned eshift = f16 ? 11 : 8, n_exp = f16 ? 32 : 256, n_bits = f16 ? 3 : 0, np = 3 + n_bits;
    size_t ne = n / 2, nc = (ne + 1) / 2, nb = (ne + 7) / 8;
    if (!grow_planes(e, ne + nc + n_bits * nb + ne))
        return -ENOMEM;
    uint8_t *low = e->planes, *codes = low + ne, *bits = codes + nc, *esc = bits + n_bits * nb;
    uint32_t hist[256] = {0};
    for (size_t i = 0; i < ne; i++) {
        uint16_t v;
        memcpy(&v, src + 2 * i, 2);
        v = rotl16(v);
        low[i] = (uint8_t)v;
        hist[v >> eshift]++;
    }
    uint64_t in = 0, best = 0;
    unsigned base = 0;
    for (unsigned b = 0; b < n_exp; b++) { /* window [b - 14, b] */
        in += hist[b];
        if (b >= MFZ_NIBBLE_SPAN)
            in -= hist[b - MFZ_NIBBLE_SPAN];
        if (in > best) {
            best = in;
            base = b >= MFZ_NIBBLE_SPAN - 1 ? b - (MFZ_NIBBLE_SPAN - 1) : 0;
        }
    }
    if (ne - best > ne / 64)
        return -EDOM;
    size_t n_esc = 0;
    memset(codes, 0, nc + n_bits * nb);
    for (size_t i = 0; i < ne; i++) {
        uint16_t r = rotl16((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
        unsigned x = r >> eshift, c = x >= base && x - base < MFZ_NIBBLE_SPAN ? x - base : 15;
        if (c == 15)
            esc[n_esc++] = (uint8_t)x;
        codes[i / 2] |= (uint8_t)(c << (4 * (i & 1)));
        for (unsigned k = 0; k < n_bits; k++)
            bits[k * nb + i / 8] |= (uint8_t)(((r >> (8 + k)) & 1) << (i & 7));
    }
    size_t table = MFZ_XHEADER, pos = table + 4 * np;
    if (pos > cap)
        return 0;
    memset(out, 0, MFZ_XHEADER);
    out[0] = (uint8_t)base;
    put32(out + 4, (uint32_t)n_esc);
    uint8_t *planes[6] = {codes, low, bits, bits + nb, bits + 2 * nb, esc};
    size_t lens[6] = {nc, ne, nb, nb, nb, n_esc};
    if (f16 == false) {
        planes[2] = esc;
        lens[2] = n_esc;
    }
    if (!put_planes(e, out, cap, table, &pos, planes, lens, np))
        return 0;
    return pos < n ? (long)pos : 0;
}

long mfz_encode(mfz_enc *e, unsigned codec, unsigned param, const uint8_t *src, size_t n, uint8_t *out, size_t cap)
{
    if (codec == MFZ_ZSTD) {
        size_t lim = cap < n ? cap : n - (n > 0);
        size_t r = ZSTD_compress2(e->cctx, out, lim, src, n);
        ZSTD_CCtx_reset(e->cctx, ZSTD_reset_session_only);
        return ZSTD_isError(r) ? 0 : (long)r;
    }
    if (n > MFZ_MAX_CHUNK)
        return -EINVAL;
    if (codec == MFZ_BF16X || codec == MFZ_F16X)
        return n % 2 || param ? -EINVAL : encode_x(e, codec == MFZ_F16X, src, n, out, cap);
    struct mfz_layout l;
    if (mfz_layout_of(codec, param, &l) || n % l.elem)
        return -EINVAL;
    size_t ne = n / l.elem;
    if (!grow_planes(e, n))
        return -ENOMEM;
    uint8_t *planes[MFZ_MAX_PLANES] = {0};
    size_t lens[MFZ_MAX_PLANES] = {0}, at = 0;
    for (uint32_t p = 0; p < l.n_planes; p++) {
        planes[p] = e->planes + at;
        lens[p] = ne * l.len[p];
        at += lens[p];
    }
    mfz_split(&l, src, ne, planes);
    size_t pos = 4 * (size_t)l.n_planes;
    if (pos > cap || !put_planes(e, out, cap, 0, &pos, planes, lens, l.n_planes))
        return 0;
    return pos < n ? (long)pos : 0;
}

long mfz_encode_best(mfz_enc *e, unsigned codec, unsigned param, const uint8_t *src, size_t n, uint8_t *out,
                     size_t cap, unsigned *used)
{
    unsigned cand[3];
    int nc = 0;
    if (codec != MFZ_ZSTD)
        cand[nc++] = codec;
    if ((codec == MFZ_BF16X || codec == MFZ_F16X) && n <= SMALL_CHUNK)
        cand[nc++] = codec == MFZ_BF16X ? MFZ_BF16 : MFZ_F16;
    if (codec == MFZ_ZSTD || codec == MFZ_BLOCKS || n <= SMALL_CHUNK)
        cand[nc++] = MFZ_ZSTD;
    if (e->tmp_cap < cap) {
        free(e->tmp);
        e->tmp_cap = 0;
        if (!(e->tmp = malloc(cap ? cap : 1)))
            return -ENOMEM;
        e->tmp_cap = cap;
    }
    long best = 0;
    *used = MFZ_RAW;
    for (int i = 0; i < nc; i++) {
        unsigned c = cand[i], prm = c == MFZ_BLOCKS ? param : 0;
        uint8_t *dst = best ? e->tmp : out; /* a later candidate must beat the one in out */
        size_t lim = best ? (size_t)best : cap;
        long r = mfz_encode(e, c, prm, src, n, dst, lim);
        if (r == -EDOM && (c == MFZ_BF16X || c == MFZ_F16X)) /* exponents too spread for 4-bit codes */
            r = mfz_encode(e, c = c == MFZ_BF16X ? MFZ_BF16 : MFZ_F16, 0, src, n, dst, lim);
        if (r < 0)
            return r;
        if (r > 0 && (!best || r < best)) {
            if (dst != out)
                memcpy(out, dst, (size_t)r);
            best = r;
            *used = c;
        }
    }
    return best ? best : (long)n;
}

/* ---------------------------------------------------------------- decoder */

/* The planes of a payload whose plane table is at src + table: raw planes point into src, zstd
 * planes are decoded into scratch (from *sat on). Every size must match. */
static int get_planes(ZSTD_DCtx *dctx, const uint8_t *src, size_t csize, size_t table, const size_t *lens,
                      uint32_t np, uint8_t *scratch, size_t *sat, const uint8_t **planes)
{
    size_t pos = table + 4 * (size_t)np;
    if (csize < pos)
        return -EIO;
    for (uint32_t p = 0; p < np; p++) {
        uint32_t w = get32(src + table + 4 * p);
        size_t sz = w & ~MFZ_PLANE_ZSTD, plen = lens[p];
        if (sz > csize - pos)
            return -EIO;
        if (w & MFZ_PLANE_ZSTD) {
            size_t r = ZSTD_decompressDCtx(dctx, scratch + *sat, plen, src + pos, sz);
            if (ZSTD_isError(r) || r != plen)
                return -EIO;
            planes[p] = scratch + *sat;
            *sat += plen;
        } else {
            if (sz != plen)
                return -EIO;
            planes[p] = src + pos;
        }
        pos += sz;
    }
    return pos == csize ? 0 : -EIO;
}

static int decode_x(ZSTD_DCtx *dctx, bool f16, const uint8_t *src, size_t csize, uint8_t *dst, size_t n,
                    uint8_t *scratch)
{
    const unsigned n_exp = f16 ? 32 : 256, np = f16 ? 6 : 3;
    if (n % 2 || csize < MFZ_XHEADER)
        return -EIO;
    size_t ne = n / 2, nb = (ne + 7) / 8, n_esc = get32(src + 4), sat = ne; /* scratch: exponents, zstd planes */
    uint8_t base = src[0];
    if (src[1] || src[2] || src[3] || n_esc > ne || base > n_exp - MFZ_NIBBLE_SPAN)
        return -EIO;
    size_t lens[6] = {(ne + 1) / 2, ne, nb, nb, nb, n_esc};
    if (!f16)
        lens[2] = n_esc;
    const uint8_t *planes[6];
    int rc = get_planes(dctx, src, csize, MFZ_XHEADER, lens, np, scratch, &sat, planes);
    if (rc)
        return rc;
    const uint8_t *esc = planes[np - 1];
    for (size_t k = 0; f16 && k < n_esc; k++)
        if (esc[k] >= n_exp)
            return -EIO;
    if ((rc = mfz_expand_nibbles(MFZ_ISA_AUTO, planes[0], ne, base, esc, n_esc, scratch)))
        return rc;
    if (f16)
        mfz_f16_high(MFZ_ISA_AUTO, scratch, planes[2], planes[3], planes[4], ne);
    struct mfz_layout l;
    mfz_layout_of(MFZ_BF16, 0, &l); /* 2-byte elements rotated, 2 byte planes: also F16's */
    const uint8_t *bytes[2] = {planes[1], scratch};
    mfz_merge(MFZ_ISA_AUTO, &l, bytes, ne, dst);
    return 0;
}

int mfz_decode(ZSTD_DCtx *dctx, unsigned codec, unsigned param, const uint8_t *src, size_t csize, uint8_t *dst,
               size_t n, uint8_t *scratch)
{
    if (codec == MFZ_ZSTD) {
        size_t r = ZSTD_decompressDCtx(dctx, dst, n, src, csize);
        return !ZSTD_isError(r) && r == n ? 0 : -EIO;
    }
    if (codec == MFZ_BF16X || codec == MFZ_F16X)
        return param ? -EIO : decode_x(dctx, codec == MFZ_F16X, src, csize, dst, n, scratch);
    struct mfz_layout l;
    if (mfz_layout_of(codec, param, &l) || n % l.elem)
        return -EIO;
    size_t ne = n / l.elem, sat = 0, lens[MFZ_MAX_PLANES];
    for (uint32_t p = 0; p < l.n_planes; p++)
        lens[p] = ne * l.len[p];
    const uint8_t *planes[MFZ_MAX_PLANES] = {0};
    int rc = get_planes(dctx, src, csize, 0, lens, l.n_planes, scratch, &sat, planes);
    if (rc)
        return rc;
    mfz_merge(MFZ_ISA_AUTO, &l, planes, ne, dst);
    return 0;
}
