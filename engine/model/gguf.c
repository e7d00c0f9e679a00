/* The GGUF reader. Every read goes through a cursor that checks the bytes it needs are left in
 * the mapping, and every count is bounded by what the rest of the file could hold before
 * anything is allocated for it: a GGUF comes from the internet. */
#include "engine/model/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the GGUF reader reads little-endian values in place");

#define GGUF_MAGIC 0x46554747u /* "GGUF" read little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_PARTS 9999

struct gguf_kv {
    char *key;
    enum gguf_type type;
    const uint8_t *val; /* scalar bytes, or a string's length prefix */
    struct gguf_array arr;
    uint64_t *str_off;  /* owned; string arrays */
};

struct name_index {
    int *slot;   /* open addressing: entry number, -1 empty */
    size_t mask;
};

struct gguf_part {
    char *path;
    const uint8_t *map;
    size_t size;
    bool owns_map;
    uint32_t version;
    uint32_t alignment;
    int n_kv;
    struct gguf_kv *kv;
    struct name_index kv_index;
    size_t data_start;
};

struct gguf_file {
    int n_parts;
    struct gguf_part *parts;
    int n_tensors;
    struct gguf_tensor *tensors;
    struct name_index tensor_index;
};

/* ---- ggml types */

static const struct {
    const char *name;
    int block_values;
    int block_bytes;
} ggml_types[] = {
    [0] = {"f32", 1, 4},       [1] = {"f16", 1, 2},       [2] = {"q4_0", 32, 18},
    [3] = {"q4_1", 32, 20},    [6] = {"q5_0", 32, 22},    [7] = {"q5_1", 32, 24},
    [8] = {"q8_0", 32, 34},    [9] = {"q8_1", 32, 36},    [10] = {"q2_K", 256, 84},
    [11] = {"q3_K", 256, 110}, [12] = {"q4_K", 256, 144}, [13] = {"q5_K", 256, 176},
    [14] = {"q6_K", 256, 210}, [15] = {"q8_K", 256, 292}, [16] = {"iq2_xxs", 256, 66},
    [17] = {"iq2_xs", 256, 74}, [18] = {"iq3_xxs", 256, 98}, [19] = {"iq1_s", 256, 50},
    [20] = {"iq4_nl", 32, 18}, [21] = {"iq3_s", 256, 110}, [22] = {"iq2_s", 256, 82},
    [23] = {"iq4_xs", 256, 136}, [24] = {"i8", 1, 1},     [25] = {"i16", 1, 2},
    [26] = {"i32", 1, 4},      [27] = {"i64", 1, 8},      [28] = {"f64", 1, 8},
    [29] = {"iq1_m", 256, 56}, [30] = {"bf16", 1, 2},     [34] = {"tq1_0", 256, 54},
    [35] = {"tq2_0", 256, 66}, [39] = {"mxfp4", 32, 17},
};

const char *gguf_type_name(uint32_t t)
{
    return t < sizeof ggml_types / sizeof ggml_types[0] ? ggml_types[t].name : NULL;
}

bool gguf_type_block(uint32_t t, int *block_values, size_t *block_bytes)
{
    if (!gguf_type_name(t)) return false;
    *block_values = ggml_types[t].block_values;
    *block_bytes = (size_t)ggml_types[t].block_bytes;
    return true;
}

static const char *const value_type_names[GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
static const size_t value_type_size[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

/* ---- bounded reads */

struct cursor {
    const uint8_t *base;
    size_t size, off;
    const char *path;
    struct ms_err *err;
};

static int need(struct cursor *c, uint64_t n, const char *what)
{
    if (n > c->size - c->off)
        return ms_err_set(c->err, MS_ERR_INVALID, "%s: truncated: %s at offset %zu needs %llu bytes, %zu left",
                          c->path, what, c->off, (unsigned long long)n, c->size - c->off);
    return MS_OK;
}

static int read_bytes(struct cursor *c, void *dst, size_t n, const char *what)
{
    int rc = need(c, n, what);
    if (rc) return rc;
    memcpy(dst, c->base + c->off, n); /* little-endian host (the build refuses others) */
    c->off += n;
    return MS_OK;
}

static int read_u32(struct cursor *c, uint32_t *v, const char *what) { return read_bytes(c, v, 4, what); }
static int read_u64(struct cursor *c, uint64_t *v, const char *what) { return read_bytes(c, v, 8, what); }

static int read_str(struct cursor *c, struct gguf_str *s, const char *what)
{
    uint64_t len;
    size_t at = c->off;
    int rc = read_u64(c, &len, what);
    if (rc) return rc;
    if (len > c->size - c->off)
        return ms_err_set(c->err, MS_ERR_INVALID, "%s: %s at offset %zu has length %llu, past the end of the file (%zu bytes)",
                          c->path, what, at, (unsigned long long)len, c->size);
    s->ptr = (const char *)c->base + c->off;
    s->len = (size_t)len;
    c->off += (size_t)len;
    return MS_OK;
}

/* A name (key or tensor) as a C string. A NUL byte would alias names, and a control character
 * (a newline) would split the one-line messages that quote it: real names are plain ASCII. */
static int dup_name(struct cursor *c, struct gguf_str s, const char *what, size_t at, char **out)
{
    if (memchr(s.ptr, 0, s.len))
        return ms_err_set(c->err, MS_ERR_INVALID, "%s: %s at offset %zu contains a NUL byte", c->path, what, at);
    for (size_t i = 0; i < s.len; i++)
        if ((unsigned char)s.ptr[i] < 0x20 || s.ptr[i] == 0x7f)
            return ms_err_set(c->err, MS_ERR_INVALID, "%s: %s at offset %zu contains control character 0x%02x",
                              c->path, what, at, (unsigned char)s.ptr[i]);
    if (!(*out = malloc(s.len + 1))) return ms_err_set(c->err, MS_ERR_NOMEM, "out of memory");
    memcpy(*out, s.ptr, s.len);
    (*out)[s.len] = 0;
    return MS_OK;
}

/* ---- name indexes */

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Builds an index over n names (name(i)); returns the first duplicate's number via *dup. */
static int index_build(struct name_index *ix, int n, const char *(*name)(const void *, int), const void *ctx,
                       int *dup)
{
    size_t slots = 16;
    while (slots < (size_t)n * 2) slots *= 2;
    if (!(ix->slot = malloc(slots * sizeof *ix->slot))) return MS_ERR_NOMEM;
    memset(ix->slot, 0xff, slots * sizeof *ix->slot);
    ix->mask = slots - 1;
    *dup = -1;
    for (int i = 0; i < n; i++) {
        const char *s = name(ctx, i);
        size_t k = name_hash(s) & ix->mask;
        for (; ix->slot[k] >= 0; k = (k + 1) & ix->mask)
            if (!strcmp(name(ctx, ix->slot[k]), s)) {
                *dup = i;
                return MS_ERR_INVALID;
            }
        ix->slot[k] = i;
    }
    return MS_OK;
}

static int index_find(const struct name_index *ix, const char *s, const char *(*name)(const void *, int),
                      const void *ctx)
{
    if (!ix->slot) return -1;
    for (size_t k = name_hash(s) & ix->mask; ix->slot[k] >= 0; k = (k + 1) & ix->mask)
        if (!strcmp(name(ctx, ix->slot[k]), s)) return ix->slot[k];
    return -1;
}

static const char *kv_name(const void *p, int i) { return ((const struct gguf_part *)p)->kv[i].key; }
static const char *tensor_name(const void *p, int i) { return ((const struct gguf_file *)p)->tensors[i].name; }

/* ---- metadata */

static int parse_array(struct cursor *c, struct gguf_kv *kv)
{
    uint32_t et;
    uint64_t n;
    int rc = read_u32(c, &et, "array type");
    if (!rc) rc = read_u64(c, &n, "array length");
    if (rc) return rc;
    if (et == GGUF_TYPE_ARRAY)
        return ms_err_set(c->err, MS_ERR_INVALID, "%s: key %s: nested arrays are not supported", c->path, kv->key);
    if (et >= GGUF_TYPE_COUNT)
        return ms_err_set(c->err, MS_ERR_INVALID, "%s: key %s: unknown array element type %u", c->path, kv->key, et);
    kv->arr.type = (enum gguf_type)et;
    kv->arr.n = n;
    kv->arr.data = c->base + c->off;
    size_t left = c->size - c->off;
    if (et != GGUF_TYPE_STRING) {
        if (n > left / value_type_size[et])
            return ms_err_set(c->err, MS_ERR_INVALID, "%s: key %s: array of %llu %s runs past the end of the file",
                              c->path, kv->key, (unsigned long long)n, value_type_names[et]);
        c->off += (size_t)n * value_type_size[et];
        return MS_OK;
    }
    if (n > left / 8) /* every string has at least its 8-byte length */
        return ms_err_set(c->err, MS_ERR_INVALID, "%s: key %s: array of %llu strings runs past the end of the file",
                          c->path, kv->key, (unsigned long long)n);
    if (!(kv->str_off = malloc((size_t)(n ? n : 1) * sizeof *kv->str_off)))
        return ms_err_set(c->err, MS_ERR_NOMEM, "out of memory");
    kv->arr.str_off = kv->str_off;
    size_t start = c->off;
    for (uint64_t i = 0; i < n; i++) {
        struct gguf_str s;
        kv->str_off[i] = c->off - start;
        if ((rc = read_str(c, &s, "array string")))
            return ms_err_set(c->err, rc, "%s: key %s: string %llu of %llu runs past the end of the file", c->path,
                              kv->key, (unsigned long long)i, (unsigned long long)n);
    }
    return MS_OK;
}

static int parse_kv(struct cursor *c, struct gguf_kv *kv)
{
    struct gguf_str key;
    size_t at = c->off;
    int rc = read_str(c, &key, "metadata key");
    if (!rc) rc = dup_name(c, key, "metadata key", at, &kv->key);
    if (rc) return rc;
    uint32_t t;
    if ((rc = read_u32(c, &t, "metadata value type"))) return rc;
    if (t >= GGUF_TYPE_COUNT)
        return ms_err_set(c->err, MS_ERR_INVALID, "%s: key %s has unknown value type %u", c->path, kv->key, t);
    kv->type = (enum gguf_type)t;
    kv->val = c->base + c->off;
    if (t == GGUF_TYPE_ARRAY) return parse_array(c, kv);
    if (t == GGUF_TYPE_STRING) {
        struct gguf_str s;
        return read_str(c, &s, kv->key);
    }
    if ((rc = need(c, value_type_size[t], kv->key))) return rc;
    if (t == GGUF_TYPE_BOOL && *kv->val > 1)
        return ms_err_set(c->err, MS_ERR_INVALID, "%s: key %s: bool value %u is neither 0 nor 1", c->path, kv->key,
                          *kv->val);
    c->off += value_type_size[t];
    return MS_OK;
}

static const struct gguf_kv *part_kv(const struct gguf_part *p, const char *key)
{
    int i = index_find(&p->kv_index, key, kv_name, p);
    return i < 0 ? NULL : &p->kv[i];
}

static int parse_kvs(struct cursor *c, struct gguf_part *p, uint64_t n)
{
    if (n > (c->size - c->off) / 13) /* a key-value takes at least 8 + 4 + 1 bytes */
        return ms_err_set(c->err, MS_ERR_INVALID, "%s: header claims %llu metadata entries, more than the file can hold",
                          c->path, (unsigned long long)n);
    if (!(p->kv = ms_calloc((size_t)(n ? n : 1), sizeof *p->kv))) return ms_err_set(c->err, MS_ERR_NOMEM, "out of memory");
    for (uint64_t i = 0; i < n; i++) {
        int rc = parse_kv(c, &p->kv[i]);
        p->n_kv = (int)i + 1; /* what was allocated is freed even on failure */
        if (rc) return rc;
    }
    int dup;
    if (index_build(&p->kv_index, p->n_kv, kv_name, p, &dup)) {
        if (dup < 0) return ms_err_set(c->err, MS_ERR_NOMEM, "out of memory");
        return ms_err_set(c->err, MS_ERR_INVALID, "%s: key %s appears twice", c->path, p->kv[dup].key);
    }
    p->alignment = GGUF_DEFAULT_ALIGNMENT;
    const struct gguf_kv *al = part_kv(p, "general.alignment");
    if (al) {
        uint32_t a = 0;
        if (al->type != GGUF_TYPE_UINT32)
            return ms_err_set(c->err, MS_ERR_INVALID, "%s: key general.alignment has type %s, expected u32", c->path,
                              value_type_names[al->type]);
        memcpy(&a, al->val, 4);
        if (a == 0 || (a & (a - 1)) || a > (1u << 24))
            return ms_err_set(c->err, MS_ERR_INVALID, "%s: general.alignment %u is not a power of two up to 2^24",
                              c->path, a);
        p->alignment = a;
    }
    return MS_OK;
}

/* ---- tensors */

static int parse_tensor_info(struct cursor *c, struct gguf_tensor *t, int part)
{
    struct gguf_str name;
    size_t at = c->off;
    int rc = read_str(c, &name, "tensor name");
    if (!rc) rc = dup_name(c, name, "tensor name", at, (char **)&t->name);
    if (rc) return rc;
    uint32_t nd;
    if ((rc = read_u32(c, &nd, t->name))) return rc;
    if (nd < 1 || nd > GGUF_MAX_DIMS)
        return ms_err_set(c->err, MS_ERR_INVALID, "%s: tensor %s has %u dimensions (1 to %d allowed)", c->path, t->name,
                          nd, GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t v;
        if ((rc = read_u64(c, &v, t->name))) return rc;
        if (v < 1 || v > (uint64_t)INT64_MAX)
            return ms_err_set(c->err, MS_ERR_INVALID, "%s: tensor %s has dimension %u = %llu", c->path, t->name, d,
                              (unsigned long long)v);
        t->ne[d] = (int64_t)v;
    }
    if ((rc = read_u32(c, &t->type, t->name)) || (rc = read_u64(c, &t->file_offset, t->name))) return rc;
    if (!(t->type_name = gguf_type_name(t->type)))
        return ms_err_set(c->err, MS_ERR_INVALID, "%s: tensor %s has unknown ggml type %u", c->path, t->name, t->type);
    t->part = part;
    return MS_OK;
}

/* Size of t's data, with every product checked. */
static int tensor_size(struct cursor *c, struct gguf_tensor *t)
{
    int bv = 1;
    size_t bb = 1;
    gguf_type_block(t->type, &bv, &bb);
    if (t->ne[0] % bv)
        return ms_err_set(c->err, MS_ERR_INVALID, "%s: tensor %s: row length %lld is not a multiple of %s's block of %d",
                          c->path, t->name, (long long)t->ne[0], t->type_name, bv);
    uint64_t bytes = (uint64_t)(t->ne[0] / bv);
    bool over = __builtin_mul_overflow(bytes, (uint64_t)bb, &bytes);
    for (int d = 1; d < GGUF_MAX_DIMS; d++) over |= __builtin_mul_overflow(bytes, (uint64_t)t->ne[d], &bytes);
    if (over || bytes > SIZE_MAX)
        return ms_err_set(c->err, MS_ERR_INVALID, "%s: tensor %s: dimensions [%lld, %lld, %lld, %lld] overflow", c->path,
                          t->name, (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)t->ne[3]);
    t->nbytes = (size_t)bytes;
    return MS_OK;
}

static int cmp_offset(const void *a, const void *b)
{
    const struct gguf_tensor *x = *(struct gguf_tensor *const *)a, *y = *(struct gguf_tensor *const *)b;
    return x->file_offset < y->file_offset ? -1 : x->file_offset > y->file_offset;
}

/* Places the part's tensors [first, end) in its data section: aligned, inside, not overlapping. */
static int place_tensors(struct cursor *c, struct gguf_part *p, struct gguf_tensor *ts, int n)
{
    size_t data_size = c->size - p->data_start;
    for (int i = 0; i < n; i++) {
        struct gguf_tensor *t = &ts[i];
        int rc = tensor_size(c, t);
        if (rc) return rc;
        if (t->file_offset % p->alignment)
            return ms_err_set(c->err, MS_ERR_INVALID, "%s: tensor %s: data offset %llu is not a multiple of the alignment %u",
                              c->path, t->name, (unsigned long long)t->file_offset, p->alignment);
        if (t->file_offset > data_size || t->nbytes > data_size - t->file_offset)
            return ms_err_set(c->err, MS_ERR_INVALID,
                              "%s: tensor %s: data [%llu, +%zu) runs past the end of the file (data section %zu bytes)",
                              c->path, t->name, (unsigned long long)t->file_offset, t->nbytes, data_size);
        t->data = c->base + p->data_start + t->file_offset;
        t->file_offset += p->data_start;
    }
    struct gguf_tensor **by = malloc((n > 0 ? (size_t)n : 1) * sizeof *by);
    if (!by) return ms_err_set(c->err, MS_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) by[i] = &ts[i];
    qsort(by, (size_t)n, sizeof *by, cmp_offset);
    int rc = MS_OK;
    for (int i = 1; i < n && !rc; i++)
        if (by[i - 1]->file_offset + by[i - 1]->nbytes > by[i]->file_offset)
            rc = ms_err_set(c->err, MS_ERR_INVALID, "%s: tensors %s and %s overlap (offsets %llu and %llu)", c->path,
                            by[i - 1]->name, by[i]->name, (unsigned long long)by[i - 1]->file_offset,
                            (unsigned long long)by[i]->file_offset);
    free(by);
    return rc;
}

static int grow_tensors(struct gguf_file *g, uint64_t more, struct ms_err *err)
{
    if (more > (uint64_t)(INT_MAX - g->n_tensors))
        return ms_err_set(err, MS_ERR_INVALID, "too many tensors");
    size_t n = (size_t)g->n_tensors + (size_t)more;
    struct gguf_tensor *t = realloc(g->tensors, (n ? n : 1) * sizeof *t);
    if (!t) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    memset(t + g->n_tensors, 0, (size_t)more * sizeof *t);
    g->tensors = t;
    return MS_OK;
}

/* Parses the header of part `pi` (already mapped) and appends its tensors to g. */
static int parse_part(struct gguf_file *g, int pi, struct ms_err *err)
{
    struct gguf_part *p = &g->parts[pi];
    struct cursor c = {p->map, p->size, 0, p->path, err};
    uint32_t magic;
    uint64_t n_tensors, n_kv;
    int rc = read_u32(&c, &magic, "magic");
    if (rc) return rc;
    if (magic != GGUF_MAGIC) return ms_err_set(err, MS_ERR_INVALID, "%s: not a GGUF file (bad magic)", p->path);
    if ((rc = read_u32(&c, &p->version, "version"))) return rc;
    if (p->version == 0x02000000u || p->version == 0x03000000u)
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: big-endian GGUF is not supported", p->path);
    if (p->version != 2 && p->version != 3)
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: GGUF version %u is not supported (only 2 and 3)", p->path,
                          p->version);
    if ((rc = read_u64(&c, &n_tensors, "tensor count")) || (rc = read_u64(&c, &n_kv, "metadata count"))) return rc;
    if (n_tensors > (c.size - c.off) / 32) /* a tensor info takes at least 8 + 4 + 8 + 4 + 8 bytes */
        return ms_err_set(err, MS_ERR_INVALID, "%s: header claims %llu tensors, more than the file can hold", p->path,
                          (unsigned long long)n_tensors);
    if ((rc = parse_kvs(&c, p, n_kv))) return rc;
    int first = g->n_tensors;
    if ((rc = grow_tensors(g, n_tensors, err))) return rc;
    for (uint64_t i = 0; i < n_tensors; i++) {
        rc = parse_tensor_info(&c, &g->tensors[g->n_tensors], pi);
        g->n_tensors++; /* its name is freed even on failure */
        if (rc) return rc;
    }
    size_t pad = (p->alignment - c.off % p->alignment) % p->alignment;
    if (pad > c.size - c.off && n_tensors > 0)
        return ms_err_set(err, MS_ERR_INVALID, "%s: truncated: the data section (at offset %zu) is missing", p->path,
                          c.off + pad);
    p->data_start = pad > c.size - c.off ? c.size : c.off + pad;
    return place_tensors(&c, p, g->tensors + first, g->n_tensors - first);
}

/* ---- split files */

/* NAME-00001-of-00003.gguf: true with *no, *count, and the length of NAME-. */
static bool split_name(const char *path, int *no, int *count, size_t *stem)
{
    size_t n = strlen(path);
    const char *tail = "-00000-of-00000.gguf";
    size_t tl = strlen(tail);
    if (n <= tl) return false;
    const char *s = path + n - tl;
    for (size_t i = 0; i < tl; i++) {
        bool digit = tail[i] == '0';
        if (digit ? (s[i] < '0' || s[i] > '9') : s[i] != tail[i]) return false;
    }
    *no = atoi(s + 1);
    *count = atoi(s + 10);
    *stem = n - tl;
    return *no >= 1 && *count >= 1 && *no <= *count;
}

static int get_split_u16(const struct gguf_part *p, const char *key, int *out, struct ms_err *err)
{
    const struct gguf_kv *kv = part_kv(p, key);
    *out = -1;
    if (!kv) return MS_OK;
    if (kv->type != GGUF_TYPE_UINT16)
        return ms_err_set(err, MS_ERR_INVALID, "%s: key %s has type %s, expected u16", p->path, key,
                          value_type_names[kv->type]);
    uint16_t v;
    memcpy(&v, kv->val, 2);
    *out = v;
    return MS_OK;
}

/* The split keys of part i must say it is part i of n. */
static int check_split_part(const struct gguf_part *p, int i, int n, struct ms_err *err)
{
    int no, count;
    int rc = get_split_u16(p, "split.no", &no, err);
    if (!rc) rc = get_split_u16(p, "split.count", &count, err);
    if (rc) return rc;
    if (n == 1) {
        if (count > 1)
            return ms_err_set(err, MS_ERR_INVALID, "%s: split.count is %d, but the file is not named NAME-00001-of-%05d.gguf",
                              p->path, count, count);
        return MS_OK;
    }
    if (count != n || no != i)
        return ms_err_set(err, MS_ERR_INVALID, "%s: split.no %d / split.count %d, expected part %d of %d by its name",
                          p->path, no, count, i, n);
    return MS_OK;
}

static int check_split_total(const struct gguf_file *g, struct ms_err *err)
{
    const struct gguf_part *p = &g->parts[0];
    const struct gguf_kv *kv = part_kv(p, "split.tensors.count");
    if (!kv) return MS_OK;
    int64_t v;
    if (kv->type == GGUF_TYPE_INT32) {
        int32_t x;
        memcpy(&x, kv->val, 4);
        v = x;
    } else if (kv->type == GGUF_TYPE_UINT32 || kv->type == GGUF_TYPE_UINT16) {
        uint32_t x = 0;
        memcpy(&x, kv->val, kv->type == GGUF_TYPE_UINT16 ? 2 : 4);
        v = x;
    } else {
        return ms_err_set(err, MS_ERR_INVALID, "%s: key split.tensors.count has type %s, expected i32", p->path,
                          value_type_names[kv->type]);
    }
    if (v != g->n_tensors)
        return ms_err_set(err, MS_ERR_INVALID, "%s: split.tensors.count is %lld but the %d parts hold %d tensors", p->path,
                          (long long)v, g->n_parts, g->n_tensors);
    return MS_OK;
}

/* ---- open / close */

static int map_file(struct gguf_part *p, struct ms_err *err)
{
    int fd = open(p->path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    int rc = MS_OK;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        rc = ms_err_set(err, MS_ERR_IO, "%s: %s", p->path, strerror(errno));
    } else if (!S_ISREG(sb.st_mode)) {
        rc = ms_err_set(err, MS_ERR_INVALID, "%s: not a regular file", p->path);
    } else if (sb.st_size == 0) {
        rc = ms_err_set(err, MS_ERR_INVALID, "%s: file is empty", p->path);
    } else {
        p->size = (size_t)sb.st_size;
        void *m = mmap(NULL, p->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) rc = ms_err_set(err, MS_ERR_IO, "%s: mmap failed: %s", p->path, strerror(errno));
        else {
            p->map = m;
            p->owns_map = true;
        }
    }
    if (fd >= 0) close(fd); /* the mapping keeps the file */
    return rc;
}

static int index_tensors(struct gguf_file *g, struct ms_err *err)
{
    int dup;
    if (!index_build(&g->tensor_index, g->n_tensors, tensor_name, g, &dup)) return MS_OK;
    if (dup < 0) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    const struct gguf_tensor *t = &g->tensors[dup];
    return ms_err_set(err, MS_ERR_INVALID, "%s: tensor %s appears twice", g->parts[t->part].path, t->name);
}

static struct gguf_file *file_new(int n_parts)
{
    struct gguf_file *g = calloc(1, sizeof *g);
    if (g && !(g->parts = ms_calloc((size_t)n_parts, sizeof *g->parts))) {
        free(g);
        return NULL;
    }
    if (g) g->n_parts = n_parts;
    return g;
}

int gguf_open(const char *path, struct gguf_file **out, struct ms_err *err)
{
    *out = NULL;
    int no = 1, count = 1;
    size_t stem = 0;
    bool split = split_name(path, &no, &count, &stem);
    if (split && no != 1)
        return ms_err_set(err, MS_ERR_INVALID, "%s: is part %d of %d; give the first part (%.*s-00001-of-%05d.gguf)",
                          path, no, count, (int)stem, path, count);
    if (!split) count = 1;
    if (count > GGUF_MAX_PARTS) return ms_err_set(err, MS_ERR_INVALID, "%s: too many split parts", path);
    struct gguf_file *g = file_new(count);
    if (!g) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    int rc = MS_OK;
    for (int i = 0; i < count && !rc; i++) {
        struct gguf_part *p = &g->parts[i];
        size_t cap = strlen(path) + 1;
        if (!(p->path = malloc(cap))) {
            rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory");
            break;
        }
        if (i == 0) memcpy(p->path, path, cap);
        else snprintf(p->path, cap, "%.*s-%05d-of-%05d.gguf", (int)stem, path, i + 1, count);
        rc = map_file(p, err);
        if (!rc) rc = parse_part(g, i, err);
        if (!rc) rc = check_split_part(p, i, count, err);
    }
    if (!rc) rc = index_tensors(g, err);
    if (!rc && count > 1) rc = check_split_total(g, err);
    if (rc) {
        gguf_close(g);
        return rc;
    }
    *out = g;
    return MS_OK;
}

int gguf_open_memory(const void *data, size_t size, const char *name, struct gguf_file **out, struct ms_err *err)
{
    *out = NULL;
    struct gguf_file *g = file_new(1);
    if (!g || !(g->parts[0].path = strdup(name))) {
        gguf_close(g);
        return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    }
    g->parts[0].map = data;
    g->parts[0].size = size;
    int rc = parse_part(g, 0, err);
    if (!rc) rc = check_split_part(&g->parts[0], 0, 1, err);
    if (!rc) rc = index_tensors(g, err);
    if (rc) {
        gguf_close(g);
        return rc;
    }
    *out = g;
    return MS_OK;
}

void gguf_close(struct gguf_file *g)
{
    if (!g) return;
    for (int i = 0; i < g->n_tensors; i++) free((char *)g->tensors[i].name);
    free(g->tensors);
    free(g->tensor_index.slot);
    for (int i = 0; i < g->n_parts; i++) {
        struct gguf_part *p = &g->parts[i];
        for (int k = 0; k < p->n_kv; k++) {
            free(p->kv[k].key);
            free(p->kv[k].str_off);
        }
        free(p->kv);
        free(p->kv_index.slot);
        if (p->owns_map) munmap((void *)p->map, p->size);
        free(p->path);
    }
    free(g->parts);
    free(g);
}

const char *gguf_path(const struct gguf_file *g) { return g->parts[0].path; }
uint32_t gguf_version(const struct gguf_file *g) { return g->parts[0].version; }
uint32_t gguf_alignment(const struct gguf_file *g) { return g->parts[0].alignment; }
int gguf_n_parts(const struct gguf_file *g) { return g->n_parts; }

void gguf_part(const struct gguf_file *g, int i, const void **base, size_t *size, const char **path)
{
    MS_ASSERT(i >= 0 && i < g->n_parts);
    if (base) *base = g->parts[i].map;
    if (size) *size = g->parts[i].size;
    if (path) *path = g->parts[i].path;
}

/* ---- metadata lookups */

static const struct gguf_kv *find_kv(const struct gguf_file *g, const char *key)
{
    return part_kv(&g->parts[0], key);
}

bool gguf_has(const struct gguf_file *g, const char *key) { return find_kv(g, key) != NULL; }

int gguf_key_type(const struct gguf_file *g, const char *key)
{
    const struct gguf_kv *kv = find_kv(g, key);
    return kv ? (int)kv->type : -1;
}

int gguf_n_kv(const struct gguf_file *g) { return g->parts[0].n_kv; }

const char *gguf_key_at(const struct gguf_file *g, int i)
{
    MS_ASSERT(i >= 0 && i < g->parts[0].n_kv);
    return g->parts[0].kv[i].key;
}

static int typed(const struct gguf_file *g, const char *key, enum gguf_type want, const struct gguf_kv **kv,
                 struct ms_err *err)
{
    *kv = find_kv(g, key);
    if (!*kv) return ms_err_set(err, MS_ERR_INVALID, "%s: key %s is missing", gguf_path(g), key);
    if ((*kv)->type != want)
        return ms_err_set(err, MS_ERR_INVALID, "%s: key %s has type %s, expected %s", gguf_path(g), key,
                          value_type_names[(*kv)->type], value_type_names[want]);
    return MS_OK;
}

#define GGUF_GETTER(fn, ctype, tag)                                                                   \
    int fn(const struct gguf_file *g, const char *key, ctype *out, struct ms_err *err)                \
    {                                                                                                 \
        const struct gguf_kv *kv;                                                                     \
        int rc = typed(g, key, tag, &kv, err);                                                        \
        if (!rc) memcpy(out, kv->val, sizeof *out);                                                   \
        return rc;                                                                                    \
    }
GGUF_GETTER(gguf_get_u8, uint8_t, GGUF_TYPE_UINT8)
GGUF_GETTER(gguf_get_i8, int8_t, GGUF_TYPE_INT8)
GGUF_GETTER(gguf_get_u16, uint16_t, GGUF_TYPE_UINT16)
GGUF_GETTER(gguf_get_i16, int16_t, GGUF_TYPE_INT16)
GGUF_GETTER(gguf_get_u32, uint32_t, GGUF_TYPE_UINT32)
GGUF_GETTER(gguf_get_i32, int32_t, GGUF_TYPE_INT32)
GGUF_GETTER(gguf_get_u64, uint64_t, GGUF_TYPE_UINT64)
GGUF_GETTER(gguf_get_i64, int64_t, GGUF_TYPE_INT64)
GGUF_GETTER(gguf_get_f32, float, GGUF_TYPE_FLOAT32)
GGUF_GETTER(gguf_get_f64, double, GGUF_TYPE_FLOAT64)
#undef GGUF_GETTER

int gguf_get_bool(const struct gguf_file *g, const char *key, bool *out, struct ms_err *err)
{
    const struct gguf_kv *kv;
    int rc = typed(g, key, GGUF_TYPE_BOOL, &kv, err);
    if (!rc) *out = *kv->val != 0;
    return rc;
}

int gguf_get_str(const struct gguf_file *g, const char *key, struct gguf_str *out, struct ms_err *err)
{
    const struct gguf_kv *kv;
    int rc = typed(g, key, GGUF_TYPE_STRING, &kv, err);
    if (rc) return rc;
    uint64_t len;
    memcpy(&len, kv->val, 8);
    *out = (struct gguf_str){(const char *)kv->val + 8, (size_t)len};
    return MS_OK;
}

int gguf_get_array(const struct gguf_file *g, const char *key, struct gguf_array *out, struct ms_err *err)
{
    const struct gguf_kv *kv;
    int rc = typed(g, key, GGUF_TYPE_ARRAY, &kv, err);
    if (!rc) *out = kv->arr;
    return rc;
}

/* A scalar integer of any width at p. */
static bool int_value(enum gguf_type t, const uint8_t *p, int64_t *out)
{
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
    } v;
    if (t >= GGUF_TYPE_COUNT || !value_type_size[t]) return false;
    memcpy(&v, p, value_type_size[t]);
    switch (t) {
    case GGUF_TYPE_UINT8: *out = v.u8; return true;
    case GGUF_TYPE_BOOL: *out = v.u8; return true;
    case GGUF_TYPE_INT8: *out = v.i8; return true;
    case GGUF_TYPE_UINT16: *out = v.u16; return true;
    case GGUF_TYPE_INT16: *out = v.i16; return true;
    case GGUF_TYPE_UINT32: *out = v.u32; return true;
    case GGUF_TYPE_INT32: *out = v.i32; return true;
    case GGUF_TYPE_INT64: *out = v.i64; return true;
    case GGUF_TYPE_UINT64:
        if (v.u64 > (uint64_t)INT64_MAX) return false;
        *out = (int64_t)v.u64;
        return true;
    default: return false;
    }
}

int gguf_get_int(const struct gguf_file *g, const char *key, int64_t *out, struct ms_err *err)
{
    const struct gguf_kv *kv = find_kv(g, key);
    if (!kv) return ms_err_set(err, MS_ERR_INVALID, "%s: key %s is missing", gguf_path(g), key);
    if (kv->type == GGUF_TYPE_BOOL || kv->type == GGUF_TYPE_FLOAT32 || kv->type == GGUF_TYPE_FLOAT64 ||
        !int_value(kv->type, kv->val, out))
        return ms_err_set(err, MS_ERR_INVALID, "%s: key %s has type %s, expected an integer", gguf_path(g), key,
                          value_type_names[kv->type]);
    return MS_OK;
}

int gguf_get_float(const struct gguf_file *g, const char *key, double *out, struct ms_err *err)
{
    const struct gguf_kv *kv = find_kv(g, key);
    if (!kv) return ms_err_set(err, MS_ERR_INVALID, "%s: key %s is missing", gguf_path(g), key);
    if (kv->type == GGUF_TYPE_FLOAT32) {
        float f;
        memcpy(&f, kv->val, 4);
        *out = f;
    } else if (kv->type == GGUF_TYPE_FLOAT64) {
        memcpy(out, kv->val, 8);
    } else {
        return ms_err_set(err, MS_ERR_INVALID, "%s: key %s has type %s, expected a float", gguf_path(g), key,
                          value_type_names[kv->type]);
    }
    return MS_OK;
}

int64_t gguf_array_int(const struct gguf_array *a, uint64_t i)
{
    MS_ASSERT(i < a->n && a->type != GGUF_TYPE_STRING && a->type != GGUF_TYPE_FLOAT32 && a->type != GGUF_TYPE_FLOAT64);
    int64_t v = 0;
    if (!int_value(a->type, (const uint8_t *)a->data + i * value_type_size[a->type], &v)) v = INT64_MAX;
    return v;
}

double gguf_array_float(const struct gguf_array *a, uint64_t i)
{
    MS_ASSERT(i < a->n && (a->type == GGUF_TYPE_FLOAT32 || a->type == GGUF_TYPE_FLOAT64));
    const uint8_t *p = (const uint8_t *)a->data + i * value_type_size[a->type];
    if (a->type == GGUF_TYPE_FLOAT64) {
        double d;
        memcpy(&d, p, 8);
        return d;
    }
    float f;
    memcpy(&f, p, 4);
    return f;
}

struct gguf_str gguf_array_str(const struct gguf_array *a, uint64_t i)
{
    MS_ASSERT(i < a->n && a->type == GGUF_TYPE_STRING && a->str_off);
    const uint8_t *p = (const uint8_t *)a->data + a->str_off[i];
    uint64_t len;
    memcpy(&len, p, 8);
    return (struct gguf_str){(const char *)p + 8, (size_t)len};
}

void gguf_str_printable(struct gguf_str s, char *buf, size_t cap)
{
    MS_ASSERT(cap > 0);
    size_t n = 0;
    for (size_t i = 0; i < s.len && n + 1 < cap; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        buf[n++] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
    }
    buf[n] = 0;
}

/* ---- tensors */

int gguf_n_tensors(const struct gguf_file *g) { return g->n_tensors; }

const struct gguf_tensor *gguf_tensor_at(const struct gguf_file *g, int i)
{
    MS_ASSERT(i >= 0 && i < g->n_tensors);
    return &g->tensors[i];
}

const struct gguf_tensor *gguf_find_tensor(const struct gguf_file *g, const char *name)
{
    int i = index_find(&g->tensor_index, name, tensor_name, g);
    return i < 0 ? NULL : &g->tensors[i];
}
