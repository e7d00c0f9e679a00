/* A GGUF file (v2 or v3, little-endian), or a set of split files NAME-0000i-of-0000N.gguf,
 * memory-mapped read-only: its key-value metadata and its tensor table, with each tensor's data
 * pointing into the mapping.
 *
 * Promise: gguf_open() parses and checks the whole header before returning. Every length, count,
 * offset and dimension product has been checked against the file's size (no overflow, nothing
 * past the mapping), tensor data is aligned to general.alignment and no two tensors overlap, and
 * keys and tensor names are unique. So whatever this module hands out can be read in full
 * without touching memory outside the mapping. It knows the ggml types' block sizes but not
 * whether moeserve can run them (that is the format registry's business). Errors name the file
 * and what is wrong (the key, the tensor, the offset). */
#ifndef MS_ENGINE_GGUF_H
#define MS_ENGINE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ms_common.h"

#define GGUF_MAX_DIMS 4

/* Metadata value types, as the file stores them. */
enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
};

/* A string inside the mapping: not NUL-terminated, may hold any bytes. */
struct gguf_str {
    const char *ptr;
    size_t len;
};

/* An array value: `n` elements of `type` (never GGUF_TYPE_ARRAY: nested arrays are refused). */
struct gguf_array {
    enum gguf_type type;
    uint64_t n;
    const void *data;        /* packed little-endian elements (unaligned); strings: see below */
    const uint64_t *str_off; /* strings only: offset from `data` of element i's length prefix */
};

struct gguf_tensor {
    const char *name;      /* NUL-terminated copy */
    uint32_t type;         /* ggml type id */
    const char *type_name; /* ggml's spelling ("q4_K", "f32"); never NULL */
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ggml order: ne[0] is the row length (reversed vs. torch) */
    size_t nbytes;
    const void *data;      /* into the mapping of part `part` */
    int part;
    uint64_t file_offset;  /* of the data in that part's file */
};

struct gguf_file;

/* Maps `path` and, when its name is NAME-00001-of-0000N.gguf, the other N-1 parts beside it
 * (each must carry split.no / split.count as llama.cpp's gguf-split writes them; the metadata
 * is the first part's). On success *out is the caller's (gguf_close). */
int gguf_open(const char *path, struct gguf_file **out, struct ms_err *err);

/* Parses a GGUF held in memory (`data` must stay valid while *out is used): the same checks as
 * gguf_open, for tests and fuzzing. `name` names it in messages. */
int gguf_open_memory(const void *data, size_t size, const char *name, struct gguf_file **out,
                     struct ms_err *err);

void gguf_close(struct gguf_file *g); /* NULL allowed; everything handed out becomes invalid */

const char *gguf_path(const struct gguf_file *g); /* the first part's path */
uint32_t gguf_version(const struct gguf_file *g);
uint32_t gguf_alignment(const struct gguf_file *g);

/* The parts' mappings (for paging in): part i spans [*base, *base + *size). */
int gguf_n_parts(const struct gguf_file *g);
void gguf_part(const struct gguf_file *g, int i, const void **base, size_t *size, const char **path);

/* ---- metadata */

bool gguf_has(const struct gguf_file *g, const char *key);
/* The stored type of `key`, or -1 when absent. */
int gguf_key_type(const struct gguf_file *g, const char *key);
int gguf_n_kv(const struct gguf_file *g);
const char *gguf_key_at(const struct gguf_file *g, int i); /* NUL-terminated copy */

/* Typed lookups: MS_OK, or MS_ERR_INVALID naming the file and key when the key is absent or of
 * another type. */
int gguf_get_u8(const struct gguf_file *g, const char *key, uint8_t *out, struct ms_err *err);
int gguf_get_i8(const struct gguf_file *g, const char *key, int8_t *out, struct ms_err *err);
int gguf_get_u16(const struct gguf_file *g, const char *key, uint16_t *out, struct ms_err *err);
int gguf_get_i16(const struct gguf_file *g, const char *key, int16_t *out, struct ms_err *err);
int gguf_get_u32(const struct gguf_file *g, const char *key, uint32_t *out, struct ms_err *err);
int gguf_get_i32(const struct gguf_file *g, const char *key, int32_t *out, struct ms_err *err);
int gguf_get_u64(const struct gguf_file *g, const char *key, uint64_t *out, struct ms_err *err);
int gguf_get_i64(const struct gguf_file *g, const char *key, int64_t *out, struct ms_err *err);
int gguf_get_f32(const struct gguf_file *g, const char *key, float *out, struct ms_err *err);
int gguf_get_f64(const struct gguf_file *g, const char *key, double *out, struct ms_err *err);
int gguf_get_bool(const struct gguf_file *g, const char *key, bool *out, struct ms_err *err);
int gguf_get_str(const struct gguf_file *g, const char *key, struct gguf_str *out, struct ms_err *err);
int gguf_get_array(const struct gguf_file *g, const char *key, struct gguf_array *out, struct ms_err *err);

/* Lenient lookups for hyperparameters, which writers store in various widths: any integer type
 * (a u64 above INT64_MAX is refused), any float type. */
int gguf_get_int(const struct gguf_file *g, const char *key, int64_t *out, struct ms_err *err);
int gguf_get_float(const struct gguf_file *g, const char *key, double *out, struct ms_err *err);

/* Element i (< a->n) of an array. gguf_array_int: integer and bool arrays; gguf_array_float:
 * float arrays; gguf_array_str: string arrays. Out-of-range or wrong-type access is a bug
 * (asserted). */
int64_t gguf_array_int(const struct gguf_array *a, uint64_t i);
double gguf_array_float(const struct gguf_array *a, uint64_t i);
struct gguf_str gguf_array_str(const struct gguf_array *a, uint64_t i);

/* A file's string for a message: at most cap - 1 bytes, anything but printable ASCII as '?'
 * (a newline would split the one-line error). */
void gguf_str_printable(struct gguf_str s, char *buf, size_t cap);

/* ---- tensors */

int gguf_n_tensors(const struct gguf_file *g);
const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *g, int i);
const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *g, const char *name); /* or NULL */

/* ggml's name of a type id ("q4_K"), or NULL for an id it does not define. */
const char *gguf_type_name(uint32_t ggml_type);
/* Values and bytes per block of a ggml type; false for an unknown id. */
bool gguf_type_block(uint32_t ggml_type, int *block_values, size_t *block_bytes);

#endif
