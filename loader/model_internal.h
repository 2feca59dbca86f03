/* Private to loader/: how format planners (GGUF, safetensors, Hugging Face directories) build a
 * model's snapshot. A snapshot is a list of extents laid end to end: bytes held in memory, zeros,
 * a range of a decoded source, or a transform that computes its bytes on demand. */
#ifndef MFS_MODEL_INTERNAL_H
#define MFS_MODEL_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "mfs_gguf.h"
#include "mfs_model.h"
#include "mfs_source.h"

/* A transform: produce [off, off+len) of the extent's bytes. Must be thread safe. */
struct mfs_transform_ops {
    ssize_t (*read)(void *ctx, void *buf, size_t len, uint64_t off);
    void (*free)(void *ctx);
};

/* Append extents; each returns 0 or -ENOMEM. */
int mfs_model_add_bytes(mfs_model *m, const void *data, uint64_t len); /* copied */
int mfs_model_add_zero(mfs_model *m, uint64_t len);
int mfs_model_add_source(mfs_model *m, mfs_source *src, uint64_t off, uint64_t len); /* src: new ref taken */
/* ctx is owned by the model from here on, also on failure. */
int mfs_model_add_transform(mfs_model *m, uint64_t len, const struct mfs_transform_ops *ops, void *ctx);

/* The presented header: the model takes ownership. data_offset is where tensor data starts. */
void mfs_model_set_header(mfs_model *m, mfs_gguf *g, uint64_t data_offset);
int mfs_model_set_format(mfs_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mfs_model_add_note(mfs_model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Record a file the model depends on (for mfs_model_changed and the mtime). */
int mfs_model_watch_file(mfs_model *m, const char *path);
/* The source whose compression frames modelfs-inspect lists (a new ref is taken). */
void mfs_model_set_main_source(mfs_model *m, mfs_source *src);
const char *mfs_model_path(const mfs_model *m);
mfs_source *mfs_model_main_source(const mfs_model *m);
size_t mfs_model_notes(const mfs_model *m, const char *const **notes);

/* The NAME.meta / modelfs-inspect text (loader/meta.c). */
void mfs_meta_write(mfs_model *m, FILE *f, bool frames);

/* Plan the snapshot of a GGUF read from `src`, re-laid out if `align` asks for it (0: keep). */
int mfs_plan_gguf(mfs_model *m, mfs_source *src, uint32_t align, mfs_err *err);

/* Plan the snapshot of a safetensors file read from `src` (loader/safetensors.c). */
int mfs_plan_safetensors(mfs_model *m, mfs_source *src, const struct mfs_model_opts *opts, mfs_err *err);
/* Does this decoded source start like a safetensors file (u64 header length, then '{')? */
bool mfs_safetensors_is(mfs_source *src);
/* Plan the snapshot of a Hugging Face checkpoint directory (loader/hf.c). */
int mfs_plan_hf_dir(mfs_model *m, const char *dir, const struct mfs_model_opts *opts, mfs_err *err);

/* Appends exactly t->size bytes of extents for tensor i. */
typedef int (*mfs_plan_tensor_fn)(void *ctx, mfs_model *m, uint64_t i, const struct mfs_gguf_tensor *t);

/* The whole snapshot of a new header: mfs_gguf_layout(g, align), g's header bytes, then each
 * tensor from `fn` followed by zeros up to the alignment (after the last one too, as llama.cpp's
 * writer does). Takes ownership of g (it becomes the presented header), also on failure. */
int mfs_plan_dense(mfs_model *m, mfs_gguf *g, uint32_t align, mfs_plan_tensor_fn fn, void *ctx, mfs_err *err);

#endif
