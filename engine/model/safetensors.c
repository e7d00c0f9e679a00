#include "engine/model/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* A header larger than this is not a real checkpoint's (61 GB Qwen3-30B-A3B shards have ~1 MB). */
#define ST_MAX_HEADER (100u << 20)

static int parse_dtype(const char *s, enum tensor_dtype *out)
{
    if (!strcmp(s, "BF16")) *out = TENSOR_DTYPE_BF16;
    else if (!strcmp(s, "F16")) *out = TENSOR_DTYPE_F16;
    else if (!strcmp(s, "F32")) *out = TENSOR_DTYPE_F32;
    else return MS_ERR_UNSUPPORTED;
    return MS_OK;
}

static int parse_shape(const cJSON *shape, struct tensor *t)
{
    if (!cJSON_IsArray(shape)) return MS_ERR_INVALID;
    int n = cJSON_GetArraySize(shape);
    if (n > TENSOR_MAX_DIMS) return MS_ERR_UNSUPPORTED;
    t->ndim = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape)
    {
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 1e12 ||
            d->valuedouble != floor(d->valuedouble))
            return MS_ERR_INVALID;
        t->shape[t->ndim++] = (int64_t)d->valuedouble;
    }
    return MS_OK;
}

/* Validates one header entry and points its tensor into the mapping. */
static int parse_entry(struct st_file *f, const cJSON *item, size_t data_start, struct st_entry *e,
                       struct ms_err *err)
{
    const char *name = item->string;
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsObject(item) || !cJSON_IsString(dtype) || !shape || !cJSON_IsArray(offs) ||
        cJSON_GetArraySize(offs) != 2)
        return ms_err_set(err, MS_ERR_INVALID, "%s: bad header: tensor %s lacks dtype, shape or data_offsets",
                          f->path, name);
    if (parse_dtype(dtype->valuestring, &e->tensor.dtype))
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s (supported: BF16, F16, F32)",
                          f->path, name, dtype->valuestring);
    if (parse_shape(shape, &e->tensor))
        return ms_err_set(err, MS_ERR_INVALID, "%s: bad header: tensor %s has an invalid shape", f->path, name);
    const cJSON *b = cJSON_GetArrayItem(offs, 0), *en = cJSON_GetArrayItem(offs, 1);
    if (!cJSON_IsNumber(b) || !cJSON_IsNumber(en) || b->valuedouble < 0 || en->valuedouble < b->valuedouble)
        return ms_err_set(err, MS_ERR_INVALID, "%s: bad header: tensor %s has invalid data_offsets", f->path, name);
    size_t begin = (size_t)b->valuedouble, end = (size_t)en->valuedouble;
    e->nbytes = (size_t)tensor_numel(&e->tensor) * tensor_dtype_size(e->tensor.dtype);
    if (end - begin != e->nbytes)
        return ms_err_set(err, MS_ERR_INVALID,
                          "%s: bad header: tensor %s spans %zu bytes but its shape needs %zu", f->path, name,
                          end - begin, e->nbytes);
    if (end > f->size - data_start)
        return ms_err_set(err, MS_ERR_INVALID,
                          "%s: file is truncated: tensor %s ends at byte %zu but the file has %zu", f->path,
                          name, data_start + end, f->size);
    const char *data = (const char *)f->map + data_start + begin;
    if ((uintptr_t)data % tensor_dtype_size(e->tensor.dtype))
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: tensor %s is not aligned to its dtype", f->path, name);
    e->tensor.data = data;
    e->name = strdup(name);
    return e->name ? MS_OK : ms_err_set(err, MS_ERR_NOMEM, "out of memory");
}

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Real checkpoints hold ~19,000 tensors; lookups by name must not be linear. */
static int build_index(struct st_file *f, struct ms_err *err)
{
    size_t slots = 16;
    while (slots < (size_t)f->n_entries * 2) slots *= 2;
    f->index = malloc(slots * sizeof *f->index);
    if (!f->index) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    memset(f->index, 0xff, slots * sizeof *f->index);
    f->index_mask = slots - 1;
    for (int i = 0; i < f->n_entries; i++) {
        size_t k = name_hash(f->entries[i].name) & f->index_mask;
        while (f->index[k] >= 0) {
            if (!strcmp(f->entries[f->index[k]].name, f->entries[i].name))
                return ms_err_set(err, MS_ERR_INVALID, "%s: bad header: tensor %s appears twice", f->path,
                                  f->entries[i].name);
            k = (k + 1) & f->index_mask;
        }
        f->index[k] = i;
    }
    return MS_OK;
}

static int parse_header(struct st_file *f, struct ms_err *err)
{
    if (f->size < 8) return ms_err_set(err, MS_ERR_INVALID, "%s: file is too short to be safetensors", f->path);
    uint64_t hlen = 0;
    memcpy(&hlen, f->map, 8); /* little-endian, as every supported host */
    if (hlen > ST_MAX_HEADER || hlen > f->size - 8)
        return ms_err_set(err, MS_ERR_INVALID, "%s: bad header: length %llu exceeds the file (%zu bytes)",
                          f->path, (unsigned long long)hlen, f->size);
    cJSON *root = cJSON_ParseWithLength((const char *)f->map + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return ms_err_set(err, MS_ERR_INVALID, "%s: bad header: not a JSON object", f->path);
    }
    int n = cJSON_GetArraySize(root);
    f->entries = ms_calloc((size_t)n, sizeof *f->entries);
    int rc = f->entries ? MS_OK : ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        if (rc) break;
        if (!strcmp(item->string, "__metadata__")) continue;
        rc = parse_entry(f, item, 8 + (size_t)hlen, &f->entries[f->n_entries], err);
        if (!rc) f->n_entries++;
    }
    cJSON_Delete(root);
    return rc ? rc : build_index(f, err);
}

int st_open(const char *path, struct st_file **out, struct ms_err *err)
{
    *out = NULL;
    struct st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    }
    int rc = MS_OK;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        rc = ms_err_set(err, MS_ERR_IO, "%s: %s", path, strerror(errno));
    } else if (sb.st_size == 0) {
        rc = ms_err_set(err, MS_ERR_INVALID, "%s: file is empty", path);
    } else {
        f->size = (size_t)sb.st_size;
        f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (f->map == MAP_FAILED) {
            f->map = NULL;
            rc = ms_err_set(err, MS_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        }
    }
    if (fd >= 0) close(fd); /* the mapping keeps the file */
    if (!rc) rc = parse_header(f, err);
    if (rc) {
        st_close(f);
        return rc;
    }
    *out = f;
    return MS_OK;
}

void st_close(struct st_file *f)
{
    if (!f) return;
    for (int i = 0; i < f->n_entries; i++) free(f->entries[i].name);
    free(f->entries);
    free(f->index);
    if (f->map) munmap(f->map, f->size);
    free(f->path);
    free(f);
}

const struct st_entry *st_find(const struct st_file *f, const char *name)
{
    for (size_t k = name_hash(name) & f->index_mask; f->index[k] >= 0; k = (k + 1) & f->index_mask)
        if (!strcmp(f->entries[f->index[k]].name, name)) return &f->entries[f->index[k]];
    return NULL;
}
