/* Writes one GGUF v3 file (ggml's docs/gguf.md): metadata key/values of every value type
 * (arrays of numbers or strings included), tensor infos, then each tensor's data at its aligned
 * offset.
 *
 * Memory stays bounded by the metadata (held until the header is written): tensor data is
 * streamed, tensor by tensor in declaration order, in chunks of any size. The file is written
 * under a temporary name beside the target (TARGET.tmp.PID) and only gguf_w_finish fsyncs it
 * and renames it into place, so a crash, a full disk or an error never leaves a truncated file
 * under the target name. Every write error (ENOSPC, EIO, ...) comes back as a one-line ms_err
 * naming the file. Shapes are given row-major, outermost first (a linear layer [out, in]); the
 * file holds ggml's order (ne[0] = the row length). One writer, one thread. */
#ifndef MS_ENGINE_MODEL_GGUF_WRITER_H
#define MS_ENGINE_MODEL_GGUF_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ms_common.h"

/* Metadata value types, numbered as in the GGUF specification. */
enum gguf_w_type {
    GGUF_W_UINT8 = 0,
    GGUF_W_INT8 = 1,
    GGUF_W_UINT16 = 2,
    GGUF_W_INT16 = 3,
    GGUF_W_UINT32 = 4,
    GGUF_W_INT32 = 5,
    GGUF_W_FLOAT32 = 6,
    GGUF_W_BOOL = 7,
    GGUF_W_STRING = 8,
    GGUF_W_ARRAY = 9,
    GGUF_W_UINT64 = 10,
    GGUF_W_INT64 = 11,
    GGUF_W_FLOAT64 = 12,
};

#define GGUF_W_DEFAULT_ALIGNMENT 32

struct gguf_w;

/* Starts writing `path` (through a temporary file beside it). With `overwrite` false, an
 * existing `path` is an error now and, should one appear meanwhile, at gguf_w_finish. On
 * success the caller owns *out and must end it with gguf_w_finish or gguf_w_abort. */
int gguf_w_open(const char *path, bool overwrite, struct gguf_w **out, struct ms_err *err);

/* One scalar of a numeric or bool type; `value` points at a value of that type (uint8_t for
 * bool). A key may be given once. "general.alignment" (u32, a power of two) sets the data
 * alignment; otherwise it is 32. */
int gguf_w_kv(struct gguf_w *w, const char *key, enum gguf_w_type type, const void *value, struct ms_err *err);
int gguf_w_kv_u32(struct gguf_w *w, const char *key, uint32_t v, struct ms_err *err);
int gguf_w_kv_f32(struct gguf_w *w, const char *key, float v, struct ms_err *err);
int gguf_w_kv_bool(struct gguf_w *w, const char *key, bool v, struct ms_err *err);
/* A UTF-8 string of `len` bytes (no terminator is written). */
int gguf_w_kv_str(struct gguf_w *w, const char *key, const char *s, size_t len, struct ms_err *err);
/* An array of n numbers of one scalar type, packed little-endian in `values`. */
int gguf_w_kv_array(struct gguf_w *w, const char *key, enum gguf_w_type elem, const void *values, uint64_t n,
                    struct ms_err *err);
/* An array of n strings; lens[i] their lengths in bytes (NULL: NUL-terminated). */
int gguf_w_kv_str_array(struct gguf_w *w, const char *key, const char *const *strs, const size_t *lens,
                        uint64_t n, struct ms_err *err);

/* Declares the next tensor: `ndim` (1..4) dims row-major in `shape`, its ggml type id and its
 * size in bytes (the caller knows the type's block layout). Names are unique. */
int gguf_w_add_tensor(struct gguf_w *w, const char *name, int ndim, const int64_t *shape, uint32_t ggml_type,
                      uint64_t nbytes, struct ms_err *err);

/* Writes the header (after every KV and tensor info). */
int gguf_w_write_header(struct gguf_w *w, struct ms_err *err);

/* Appends `n` bytes of the current tensor's data; when a tensor is complete it is padded and
 * the next one becomes current. Writing past the declared size is an error. */
int gguf_w_write_data(struct gguf_w *w, const void *data, size_t n, struct ms_err *err);

/* Bytes written to the file so far (header and padding included). */
uint64_t gguf_w_bytes_written(const struct gguf_w *w);

/* Checks every tensor is complete, flushes, fsyncs, renames the file into place (and fsyncs
 * the directory), and frees w whatever the outcome; on failure the temporary file is removed. */
int gguf_w_finish(struct gguf_w *w, struct ms_err *err);

/* Abandons the file: closes and removes the temporary file, frees w. NULL is allowed. */
void gguf_w_abort(struct gguf_w *w);

#endif
