/* mfs_gguf: GGUF reader, builder and header writer.
 *
 * File layout (all little-endian; GGUF v2 and v3 are identical for little-endian files):
 *   u32   magic "GGUF" (0x46554747)
 *   u32   version (2 or 3; 1 is refused)
 *   u64   n_tensors
 *   u64   n_kv
 *   n_kv times:      string key; u32 value type; value
 *   n_tensors times: string name; u32 n_dims (1..4); u64 ne[n_dims]; u32 ggml type; u64 offset
 *   padding to `general.alignment` (u32 key, default 32, a power of two)
 *   tensor data; each tensor at data_offset + offset, offset a multiple of the alignment
 * where string = u64 length + bytes (no terminator) and a value is:
 *   0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (one byte, 0 or 1), 8 string,
 *   9 array = u32 element type + u64 count + elements (arrays may nest), 10 u64, 11 i64, 12 f64.
 *
 * The reader checks everything before use: counts against the bytes left, string and array lengths,
 * value types, dims, shape products, tensor types, alignment, every tensor inside the source, no
 * two tensors overlapping, no duplicate key or tensor name, and caps the total header size
 * (MFS_GGUF_MAX_HEADER). A bad file gives -EINVAL (or -EIO/-ENOMEM) and one line in `err`.
 *
 * The writer serializes the key/values and tensor infos back, in the same order, with the dense
 * layout llama.cpp writes and requires (each tensor at the running sum of the previous sizes, each
 * padded to the alignment). Parsing a file written that way and writing its header again gives
 * the same bytes.
 *
 * Ownership: an mfs_gguf owns all its strings and arrays (one arena); mfs_gguf_free(NULL) is a
 * no-op. Pointers returned by accessors live as long as the mfs_gguf and until it is modified.
 * Thread safety: concurrent readers are fine; modification needs exclusive access.
 */
#ifndef MFS_GGUF_H
#define MFS_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mfs_ggml.h"
#include "mfs_log.h"
#include "mfs_source.h"

#define MFS_GGUF_MAGIC 0x46554747u
#define MFS_GGUF_DEFAULT_ALIGNMENT 32u
/* The largest header we parse: the biggest published vocabularies (262k tokens) take ~10 MB. */
#define MFS_GGUF_MAX_HEADER (64ull << 20)
/* The most memory a parsed header may take (strings, arrays, key and tensor tables; a model keeps
 * its header as long as it is mounted). A real header takes ~1.5-2.5x its size; without this cap
 * a 64 MiB header of empty strings (a few KiB as .zst) would take 192 MiB. */
#define MFS_GGUF_MAX_MEMORY (64ull << 20)
/* Key names are limited like in gguf.cpp's writer. */
#define MFS_GGUF_MAX_KEY 65535u

enum mfs_gguf_vtype {
    MFS_GGUF_U8 = 0,
    MFS_GGUF_I8 = 1,
    MFS_GGUF_U16 = 2,
    MFS_GGUF_I16 = 3,
    MFS_GGUF_U32 = 4,
    MFS_GGUF_I32 = 5,
    MFS_GGUF_F32 = 6,
    MFS_GGUF_BOOL = 7,
    MFS_GGUF_STR = 8,
    MFS_GGUF_ARR = 9,
    MFS_GGUF_U64 = 10,
    MFS_GGUF_I64 = 11,
    MFS_GGUF_F64 = 12,
    MFS_GGUF_VTYPE_COUNT = 13,
};

/* A byte string from the file: `p[len]` is a NUL added by the reader (the bytes may hold NULs). */
struct mfs_str {
    uint64_t len;
    const char *p;
};

struct mfs_gguf_value {
    uint32_t type; /* enum mfs_gguf_vtype */
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        float f32;
        bool b;
        uint64_t u64;
        int64_t i64;
        double f64;
        struct mfs_str str;
        struct {
            uint32_t type; /* element type */
            uint64_t n;
            /* scalars: n packed elements as in the file (bool: one byte each);
             * MFS_GGUF_STR: struct mfs_str[n]; MFS_GGUF_ARR: struct mfs_gguf_value[n] */
            const void *data;
        } arr;
    };
};

struct mfs_gguf_kv {
    struct mfs_str key;
    struct mfs_gguf_value value;
};

struct mfs_gguf_tensor {
    struct mfs_str name;
    uint32_t n_dims;
    int64_t ne[MFS_GGML_MAX_DIMS]; /* dims past n_dims are 1 */
    uint32_t type;                 /* enum mfs_ggml_type */
    uint64_t offset;               /* from the start of the data section */
    uint64_t size;                 /* bytes */
};

typedef struct mfs_gguf mfs_gguf;

/* Parse the header at the start of `src`. `name` is used in error messages (NULL: the source's
 * name). The source is not retained. */
int mfs_gguf_parse(mfs_source *src, const char *name, mfs_gguf **out, mfs_err *err);
/* Same, over memory (for example an mmap'ed file). */
int mfs_gguf_parse_memory(const void *data, size_t size, const char *name, mfs_gguf **out, mfs_err *err);
void mfs_gguf_free(mfs_gguf *g);

uint32_t mfs_gguf_version(const mfs_gguf *g);
uint32_t mfs_gguf_alignment(const mfs_gguf *g);
/* Where tensor data starts: the header size rounded up to the alignment. Known after parse or
 * after mfs_gguf_layout. */
uint64_t mfs_gguf_data_offset(const mfs_gguf *g);
/* Bytes of the header proper, before the alignment padding. */
uint64_t mfs_gguf_header_size(const mfs_gguf *g);
/* End of the last tensor's data, from the start of the data section (0 without tensors). */
uint64_t mfs_gguf_data_end(const mfs_gguf *g);

uint64_t mfs_gguf_n_kv(const mfs_gguf *g);
const struct mfs_gguf_kv *mfs_gguf_kv(const mfs_gguf *g, uint64_t i);
/* Index of `key` or -1. */
int64_t mfs_gguf_find_key(const mfs_gguf *g, const char *key);
const struct mfs_gguf_value *mfs_gguf_get(const mfs_gguf *g, const char *key);

/* Typed getters: 0, -ENOENT if absent, -EINVAL if of another type. get_uint accepts any unsigned
 * or non-negative signed integer type; get_float accepts F32 or F64. */
int mfs_gguf_get_uint(const mfs_gguf *g, const char *key, uint64_t *out);
int mfs_gguf_get_float(const mfs_gguf *g, const char *key, double *out);
int mfs_gguf_get_bool(const mfs_gguf *g, const char *key, bool *out);
int mfs_gguf_get_str(const mfs_gguf *g, const char *key, struct mfs_str *out);
/* Array with the given element type (any element type if elem_type < 0). */
int mfs_gguf_get_arr(const mfs_gguf *g, const char *key, int elem_type, const struct mfs_gguf_value **out);

uint64_t mfs_gguf_n_tensors(const mfs_gguf *g);
const struct mfs_gguf_tensor *mfs_gguf_tensor(const mfs_gguf *g, uint64_t i);
/* Index of the tensor or -1 (hashed: O(1)). */
int64_t mfs_gguf_find_tensor(const mfs_gguf *g, const char *name);

/* Names for printing: "u32", "str", "arr", ...; NULL if unknown. */
const char *mfs_gguf_vtype_name(uint32_t type);
/* Bytes of one scalar element (bool: 1); 0 for STR, ARR and unknown types. */
size_t mfs_gguf_vtype_size(uint32_t type);

/* ---- Building and rewriting ---- */

/* An empty GGUF v3 with the default alignment. NULL if out of memory. */
mfs_gguf *mfs_gguf_new(void);
/* A deep copy (for rewriting a parsed header). */
mfs_gguf *mfs_gguf_dup(const mfs_gguf *g);

/* Set a key: replaces the value of an existing key in place, else appends. `v` is deep-copied
 * (strings and arrays included). 0, -ENOMEM, or -EINVAL for an invalid value. */
int mfs_gguf_set(mfs_gguf *g, const char *key, const struct mfs_gguf_value *v);
int mfs_gguf_set_u32(mfs_gguf *g, const char *key, uint32_t v);
int mfs_gguf_set_i32(mfs_gguf *g, const char *key, int32_t v);
int mfs_gguf_set_u64(mfs_gguf *g, const char *key, uint64_t v);
int mfs_gguf_set_f32(mfs_gguf *g, const char *key, float v);
int mfs_gguf_set_bool(mfs_gguf *g, const char *key, bool v);
int mfs_gguf_set_str(mfs_gguf *g, const char *key, const char *s);
int mfs_gguf_set_strn(mfs_gguf *g, const char *key, const char *s, size_t len);
/* Array of n scalars of `elem_type` packed as in the file (bool: one byte each). */
int mfs_gguf_set_arr(mfs_gguf *g, const char *key, uint32_t elem_type, const void *data, uint64_t n);
int mfs_gguf_set_arr_str(mfs_gguf *g, const char *key, const struct mfs_str *items, uint64_t n);
/* 0 or -ENOENT. */
int mfs_gguf_remove(mfs_gguf *g, const char *key);

/* Append a tensor info (offset assigned by mfs_gguf_layout). -EINVAL for a bad type/shape or a
 * duplicate name, -EOVERFLOW for a size that does not fit. */
int mfs_gguf_add_tensor(mfs_gguf *g, const char *name, uint32_t type, uint32_t n_dims, const int64_t *ne);

/* Set the alignment (writes `general.alignment` as u32 unless it equals the default and the key is
 * absent) and give every tensor the dense layout: in order, each at the running sum of the
 * previous sizes padded to the alignment. -EINVAL if not a power of two. */
int mfs_gguf_layout(mfs_gguf *g, uint32_t alignment);
/* Does every tensor already sit where mfs_gguf_layout would put it? */
bool mfs_gguf_is_dense(const mfs_gguf *g);

/* Serialize the header, padded to the alignment: exactly mfs_gguf_data_offset(g) bytes.
 * The caller frees *out with free(). */
int mfs_gguf_write_header(const mfs_gguf *g, uint8_t **out, size_t *out_len, mfs_err *err);

#endif
