/* The text of NAME.meta and of modelfs-inspect:
 *
 *   [source]       file, format, compression, sizes, alignment, data offset, notes
 *   [metadata]     one `key = value` line per GGUF key, in file order
 *   [tensors] N    one line per tensor: name, type, shape (ggml order), offset in the file, size
 *   [codecs] N     (the tensor-aware container) per tensor that has bytes: codecs, chunks, stored
 *                  size, ratio; a row for the header and padding; then the totals per codec
 *   [frames] N     (modelfs-inspect --frames) stored and decoded ranges of each compressed frame
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mfs_util.h"
#include "model_internal.h"

#define ARRAY_SHOWN 8        /* items of a long array shown before "..." */
#define STRING_SHOWN 1024    /* bytes of a string shown before "..." */

static void put_string(FILE *f, const char *p, uint64_t len)
{
    fputc('"', f);
    uint64_t n = len < STRING_SHOWN ? len : STRING_SHOWN;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        default:
            if (c < 0x20 || c == 0x7F)
                fprintf(f, "\\x%02x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
    if (n < len)
        fprintf(f, "... (%" PRIu64 " bytes)", len);
}

/* A key or tensor name, unquoted: printable bytes as they are, anything that could break the
 * line structure (control characters, backslash) as \xHH, at most NAME_SHOWN bytes. Returns the
 * columns written. */
#define NAME_SHOWN 256
static size_t put_name(FILE *f, const char *p, uint64_t len)
{
    size_t cols = 0;
    uint64_t n = len < NAME_SHOWN ? len : NAME_SHOWN;
    for (uint64_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c == 0x7F || c == '\\') {
            fprintf(f, "\\x%02x", c);
            cols += 4;
        } else {
            fputc(c, f);
            cols++;
        }
    }
    if (n < len) {
        int k = fprintf(f, "... (%" PRIu64 " bytes)", len);
        cols += k > 0 ? (size_t)k : 0;
    }
    return cols;
}

static void put_scalar(FILE *f, uint32_t type, const void *p)
{
    switch (type) {
    case MFS_GGUF_U8: fprintf(f, "%u", *(const uint8_t *)p); break;
    case MFS_GGUF_I8: fprintf(f, "%d", *(const int8_t *)p); break;
    case MFS_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); fprintf(f, "%u", v); break; }
    case MFS_GGUF_I16: { int16_t v; memcpy(&v, p, 2); fprintf(f, "%d", v); break; }
    case MFS_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); fprintf(f, "%" PRIu32, v); break; }
    case MFS_GGUF_I32: { int32_t v; memcpy(&v, p, 4); fprintf(f, "%" PRId32, v); break; }
    case MFS_GGUF_F32: { float v; memcpy(&v, p, 4); fprintf(f, "%.9g", (double)v); break; }
    case MFS_GGUF_BOOL: fputs(*(const uint8_t *)p ? "true" : "false", f); break;
    case MFS_GGUF_U64: { uint64_t v; memcpy(&v, p, 8); fprintf(f, "%" PRIu64, v); break; }
    case MFS_GGUF_I64: { int64_t v; memcpy(&v, p, 8); fprintf(f, "%" PRId64, v); break; }
    case MFS_GGUF_F64: { double v; memcpy(&v, p, 8); fprintf(f, "%.17g", v); break; }
    default: fputs("?", f);
    }
}

static void put_value(FILE *f, const struct mfs_gguf_value *v)
{
    if (v->type == MFS_GGUF_STR) {
        put_string(f, v->str.p, v->str.len);
        return;
    }
    if (v->type != MFS_GGUF_ARR) {
        put_scalar(f, v->type, &v->u64);
        return;
    }
    fprintf(f, "arr[%s,%" PRIu64 "] [", mfs_gguf_vtype_name(v->arr.type), v->arr.n);
    uint64_t shown = v->arr.n <= ARRAY_SHOWN ? v->arr.n : ARRAY_SHOWN;
    for (uint64_t i = 0; i < shown; i++) {
        if (i)
            fputs(", ", f);
        if (v->arr.type == MFS_GGUF_STR) {
            const struct mfs_str *s = (const struct mfs_str *)v->arr.data + i;
            put_string(f, s->p, s->len);
        } else if (v->arr.type == MFS_GGUF_ARR) {
            put_value(f, (const struct mfs_gguf_value *)v->arr.data + i);
        } else {
            put_scalar(f, v->arr.type, (const uint8_t *)v->arr.data + i * mfs_gguf_vtype_size(v->arr.type));
        }
    }
    if (shown < v->arr.n)
        fprintf(f, ", ... %" PRIu64 " more", v->arr.n - shown);
    fputc(']', f);
}

static void put_source(mfs_model *m, FILE *f)
{
    const mfs_gguf *g = mfs_model_gguf(m);
    mfs_source *src = mfs_model_main_source(m);
    char a[32], b[32];
    fputs("[source]\nfile = ", f);
    const char *path = mfs_model_path(m), *slash = strrchr(path, '/');
    put_string(f, slash ? slash + 1 : path, strlen(slash ? slash + 1 : path));
    fprintf(f, "\nformat = %s\n", mfs_model_format(m));
    if (src) {
        const struct mfs_source_info *info = mfs_source_info(src);
        if (info->n_frames) {
            fprintf(f, "compression = %s, %" PRIu64 " frames%s\n", mfs_source_kind_name(info->kind), info->n_frames,
                    !info->checksums ? "" : info->kind == MFS_SRC_CONTAINER ? ", XXH3-64 checksums" : ", XXH64 checksums");
            fprintf(f, "stored size = %" PRIu64 " (%s)\n", info->stored_size, mfs_format_size(info->stored_size, a, sizeof a));
            fprintf(f, "decoded size = %" PRIu64 " (%s)\n", info->size, mfs_format_size(info->size, b, sizeof b));
            fprintf(f, "ratio = %.4f\n", info->size ? (double)info->stored_size / (double)info->size : 0.0);
        } else {
            fprintf(f, "compression = none\n");
        }
    }
    fprintf(f, "snapshot size = %" PRIu64 " (%s)\n", mfs_model_size(m), mfs_format_size(mfs_model_size(m), a, sizeof a));
    fprintf(f, "alignment = %" PRIu32 "\n", mfs_gguf_alignment(g));
    fprintf(f, "data offset = %" PRIu64 "\n", mfs_model_data_offset(m));
    const char *const *notes;
    size_t n = mfs_model_notes(m, &notes);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "note = %s\n", notes[i]);
}

#define MAX_CODECS 16

struct codec_sum {
    uint64_t chunks, stored, size;
    uint32_t codecs; /* bit k: names[k] used */
};

/* Per-tensor codecs of a container: its chunks never cross a tensor boundary and name the tensor
 * (its index in the source's tensor table: the presented one when the model is the source GGUF). */
static void put_codecs(mfs_model *m, mfs_source *src, FILE *f)
{
    const struct mfs_source_info *info = mfs_source_info(src);
    const mfs_gguf *g = mfs_model_gguf(m);
    bool named = strncmp(mfs_model_format(m), "GGUF", 4) == 0;
    /* tensor indices come from the file: only those of the presented header get a row */
    uint64_t nt = mfs_gguf_n_tensors(g);
    struct codec_sum *t = calloc(nt + 1, sizeof *t), by[MAX_CODECS] = {{0}};
    const char *names[MAX_CODECS];
    unsigned n_names = 0;
    if (!t)
        return;
    for (uint64_t i = 0; i < info->n_frames; i++) {
        struct mfs_frame_info fi;
        if (mfs_source_frame(src, i, &fi))
            break;
        const char *codec = fi.codec ? fi.codec : "zstd";
        unsigned k = 0;
        while (k < n_names && strcmp(names[k], codec) != 0)
            k++;
        if (k == n_names && n_names < MAX_CODECS)
            names[n_names++] = codec;
        if (k == MAX_CODECS)
            continue;
        struct codec_sum *x = &t[fi.in_tensor && fi.tensor < nt ? fi.tensor : nt]; /* nt: the rest */
        x->chunks++, x->stored += fi.stored_size, x->size += fi.size, x->codecs |= 1u << k;
        by[k].chunks++, by[k].stored += fi.stored_size, by[k].size += fi.size;
    }
    uint64_t rows = 0;
    for (uint64_t i = 0; i < nt; i++)
        rows += t[i].chunks > 0;
    fprintf(f, "\n[codecs] %" PRIu64 "\n%-32s  %-24s  %7s  %12s  %12s  %6s\n", rows, "tensor", "codecs", "chunks",
            "stored", "size", "ratio");
    for (uint64_t i = 0; i <= nt; i++) {
        const struct codec_sum *x = &t[i];
        char label[64], list[128] = "";
        if (!x->chunks)
            continue;
        if (i == nt)
            snprintf(label, sizeof label, "(header, padding)");
        else if (named)
            snprintf(label, sizeof label, "%s", mfs_gguf_tensor(g, i)->name.p);
        else
            snprintf(label, sizeof label, "#%" PRIu64, i);
        for (unsigned k = 0; k < n_names; k++)
            if (x->codecs & (1u << k)) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%s", l ? "+" : "", names[k]);
            }
        fprintf(f, "%-32s  %-24s  %7" PRIu64 "  %12" PRIu64 "  %12" PRIu64 "  %6.3f\n", label, list, x->chunks, x->stored,
                x->size, x->size ? (double)x->stored / (double)x->size : 0.0);
    }
    for (unsigned k = 0; k < n_names; k++)
        fprintf(f, "codec %s = %" PRIu64 " chunks, %" PRIu64 " -> %" PRIu64 " bytes (%.3f)\n", names[k], by[k].chunks,
                by[k].size, by[k].stored, by[k].size ? (double)by[k].stored / (double)by[k].size : 0.0);
    free(t);
}

void mfs_meta_write(mfs_model *m, FILE *f, bool frames)
{
    const mfs_gguf *g = mfs_model_gguf(m);
    put_source(m, f);
    fprintf(f, "\n[metadata] %" PRIu64 "\n", mfs_gguf_n_kv(g));
    for (uint64_t i = 0; i < mfs_gguf_n_kv(g); i++) {
        const struct mfs_gguf_kv *kv = mfs_gguf_kv(g, i);
        put_name(f, kv->key.p, kv->key.len);
        fputs(" = ", f);
        put_value(f, &kv->value);
        fputc('\n', f);
    }
    uint64_t nt = mfs_gguf_n_tensors(g);
    size_t w = 4;
    for (uint64_t i = 0; i < nt; i++)
        if (mfs_gguf_tensor(g, i)->name.len > w)
            w = mfs_gguf_tensor(g, i)->name.len;
    if (w > 64)
        w = 64;
    fprintf(f, "\n[tensors] %" PRIu64 "\n%-*s  %-7s  %-24s  %14s  %12s\n", nt, (int)w, "name", "type", "shape", "offset",
            "size");
    for (uint64_t i = 0; i < nt; i++) {
        const struct mfs_gguf_tensor *t = mfs_gguf_tensor(g, i);
        char shape[128];
        if (mfs_model_shape_str(t, shape, sizeof shape))
            strcpy(shape, "?");
        for (size_t cols = put_name(f, t->name.p, t->name.len); cols < w; cols++)
            fputc(' ', f);
        fprintf(f, "  %-7s  %-24s  %14" PRIu64 "  %12" PRIu64 "\n", mfs_ggml_type_name(t->type), shape,
                mfs_model_data_offset(m) + t->offset, t->size);
    }
    mfs_source *src = mfs_model_main_source(m);
    if (src && mfs_source_info(src)->kind == MFS_SRC_CONTAINER)
        put_codecs(m, src, f);
    if (!frames || !src || mfs_source_info(src)->n_frames == 0)
        return;
    const struct mfs_source_info *info = mfs_source_info(src);
    fprintf(f, "\n[frames] %" PRIu64 "\n%8s  %14s  %10s  %14s  %10s  %6s\n", info->n_frames, "frame", "stored at",
            "stored", "decoded at", "decoded", "ratio");
    for (uint64_t i = 0; i < info->n_frames; i++) {
        struct mfs_frame_info fi;
        if (mfs_source_frame(src, i, &fi))
            break;
        fprintf(f, "%8" PRIu64 "  %14" PRIu64 "  %10" PRIu64 "  %14" PRIu64 "  %10" PRIu64 "  %6.3f\n", i, fi.stored_off,
                fi.stored_size, fi.off, fi.size, fi.size ? (double)fi.stored_size / (double)fi.size : 0.0);
    }
}
