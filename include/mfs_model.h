/* mfs_model: one model source presented as a GGUF snapshot.
 *
 * A model is opened from a path: a file (GGUF, zstd-compressed GGUF in any zstd layout, the
 * tensor-aware container, safetensors plain or zstd) or a Hugging Face checkpoint directory. The
 * model plans the snapshot (the bytes of the GGUF that the mount shows) from headers only, and
 * serves any byte range of it on demand: header bytes from memory, tensor bytes from the decoded
 * source, padding as zeros, converted tensors through their transform.
 *
 * The snapshot's size and bytes are fixed for the life of the model. The model keeps its source
 * files open, so a source replaced by rename keeps serving the version that was opened; an
 * in-place modification makes reads fail with -ESTALE instead of mixing versions.
 * mfs_model_changed tells whether the files at the source path are no longer what was opened.
 *
 * Ownership: reference counted; open returns one reference; unref(NULL) is a no-op.
 * Thread safety: every function may be called from any thread on a shared model.
 */
#ifndef MFS_MODEL_H
#define MFS_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "mfs_engine.h"
#include "mfs_gguf.h"
#include "mfs_log.h"
#include "mfs_source.h"

typedef struct mfs_model mfs_model;

struct mfs_model_opts {
    mfs_engine *engine; /* decodes compressed sources; required */
    uint32_t align;     /* 0: GGUF sources keep their alignment, conversions use 4096; else re-layout */
    /* NULL: paths are opened as given (symlinks followed: the tools). Else every file of the model
     * is opened and checked confined to this tree (mfs_open_in: no symlink followed, nothing
     * outside it), the daemon's way; the root must outlive the model. */
    const struct mfs_root *root;
};

/* The name the mount presents a source entry under if it may be a model ("m.gguf.zst" ->
 * "m.gguf", "m.safetensors" -> "m.gguf", a directory with config.json and *.safetensors[.zst] -> "DIR.gguf").
 * `path` is the entry's full path (directories are looked into), `name` its last component.
 * Returns false for an entry that is not a model candidate (passed through unchanged). Whether it
 * really is a model is only known by opening it. */
bool mfs_model_presented_name(const char *path, const char *name, const struct stat *st, char *out, size_t cap);

/* Open and plan. Errors: negative errno with `err` = "PATH: reason" (not a model, malformed,
 * unsupported). Reads headers only: no tensor data is decoded. */
int mfs_model_open(const char *path, const struct mfs_model_opts *opts, mfs_model **out, mfs_err *err);
mfs_model *mfs_model_ref(mfs_model *m);
void mfs_model_unref(mfs_model *m);

/* The snapshot. */
uint64_t mfs_model_size(const mfs_model *m);
/* Bytes of the snapshot; short only at the end; -EIO for corrupt source data, -ESTALE if the
 * source changed in place. */
ssize_t mfs_model_read(mfs_model *m, void *buf, size_t len, uint64_t off);
/* Header of the snapshot as presented: its tensors' offsets are relative to mfs_model_data_offset. */
const mfs_gguf *mfs_model_gguf(const mfs_model *m);
uint64_t mfs_model_data_offset(const mfs_model *m);
/* Modification time to show: the newest of the source files. */
struct timespec mfs_model_mtime(const mfs_model *m);

/* What the source is, e.g. "GGUF", "GGUF in zstd seekable format (312 frames)",
 * "safetensors", "Hugging Face checkpoint (LlamaForCausalLM, 2 shards)". */
const char *mfs_model_format(const mfs_model *m);

/* Do the files at the source path still match what was opened (same inode, size and mtime)? */
bool mfs_model_changed(const mfs_model *m);

/* The NAME.meta text: what the source is, notes (e.g. slow single-frame zstd and how to repack),
 * one `key = value` line per metadata key (long arrays summarized with their length and first
 * items), then the tensor table (name, type, shape, offset, size). Built once and kept; the
 * pointer lives as long as the model. */
const char *mfs_model_meta(mfs_model *m, size_t *len);

/* Print what modelfs-inspect shows: mfs_model_meta plus the source's compression frames when
 * `frames` is set. */
int mfs_model_describe(mfs_model *m, FILE *out, bool frames);

/* File name of a tensor in NAME.tensors/: the tensor name with '%', '/', control characters and
 * a leading '.' escaped as %XX, reversible by mfs_model_tensor_unescape. Returns false if `cap`
 * is too small (names are at most 65535 bytes; 3x that always fits). */
bool mfs_model_tensor_filename(const char *name, size_t len, char *out, size_t cap);
/* Inverse; false if `fname` is not a valid escaped name. */
bool mfs_model_tensor_unescape(const char *fname, char *out, size_t cap, size_t *out_len);

/* Text for the user.ggml.shape extended attribute: "[ne0, ne1, ...]" (ggml order). */
int mfs_model_shape_str(const struct mfs_gguf_tensor *t, char *out, size_t cap);

#endif
