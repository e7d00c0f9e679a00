/* One .safetensors file, mmapped read-only; its tensors point into the mapping.
 *
 * Promise: st_open() validates the whole header before returning (JSON, dtypes, shapes, offsets
 * inside the file and consistent with shape x dtype, alignment), so a tensor it returns can be
 * read in full without touching memory outside the mapping. */
#ifndef MS_ENGINE_SAFETENSORS_H
#define MS_ENGINE_SAFETENSORS_H

#include <stddef.h>

#include "common/ms_common.h"
#include "engine/kernels/tensor.h"

struct st_entry {
    char *name;
    struct tensor tensor; /* data points into the file's mapping */
    size_t nbytes;
};

struct st_file {
    char *path;
    void *map;
    size_t size;
    int n_entries;
    struct st_entry *entries;
    int *index;        /* open-addressing hash of entry names -> entry number, -1 empty */
    size_t index_mask; /* index has index_mask + 1 slots, a power of two */
};

/* Maps and validates `path`. On success *out is owned by the caller (st_close). */
int st_open(const char *path, struct st_file **out, struct ms_err *err);

/* Unmaps the file; every tensor obtained from it becomes invalid. NULL is allowed. */
void st_close(struct st_file *f);

/* The entry called `name`, or NULL. */
const struct st_entry *st_find(const struct st_file *f, const char *name);

#endif
