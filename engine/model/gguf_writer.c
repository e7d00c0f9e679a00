#include "engine/model/gguf_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_W_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define GGUF_W_VERSION 3u
#define OUT_BUF_BYTES (1u << 20)

struct bytebuf {
    unsigned char *p;
    size_t len, cap;
};

struct tinfo {
    char *name;
    int ndim;
    uint64_t ne[4]; /* ggml order */
    uint32_t type;
    uint64_t nbytes, offset;
};

struct gguf_w {
    char *path, *tmp_path;
    bool overwrite;
    int fd;
    struct bytebuf kv; /* the encoded KVs, in order */
    uint64_t n_kv;
    char **keys;
    struct tinfo *t;
    int n_t, cap_t;
    uint32_t alignment;
    bool header_done;
    int cur;               /* the tensor whose data is being written */
    uint64_t cur_written;
    unsigned char *out;    /* write buffer */
    size_t out_len;
    uint64_t written;
};

/* ---- the metadata buffer */

static int buf_put(struct bytebuf *b, const void *p, size_t n, struct ms_err *err)
{
    if (n == 0) return MS_OK; /* an empty array may come with values == NULL */
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        unsigned char *q = realloc(b->p, cap);
        if (!q) return ms_err_set(err, MS_ERR_NOMEM, "out of memory for GGUF metadata");
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return MS_OK;
}

/* The host is little-endian (x86-64, as the kernels assume), so values are copied as they are. */
static int buf_u32(struct bytebuf *b, uint32_t v, struct ms_err *err)
{
    return buf_put(b, &v, 4, err);
}

static int buf_u64(struct bytebuf *b, uint64_t v, struct ms_err *err)
{
    return buf_put(b, &v, 8, err);
}

static int buf_str(struct bytebuf *b, const char *s, size_t len, struct ms_err *err)
{
    int rc = buf_u64(b, len, err);
    return rc ? rc : buf_put(b, s, len, err);
}

static size_t scalar_size(enum gguf_w_type t)
{
    switch (t) {
    case GGUF_W_UINT8: case GGUF_W_INT8: case GGUF_W_BOOL: return 1;
    case GGUF_W_UINT16: case GGUF_W_INT16: return 2;
    case GGUF_W_UINT32: case GGUF_W_INT32: case GGUF_W_FLOAT32: return 4;
    case GGUF_W_UINT64: case GGUF_W_INT64: case GGUF_W_FLOAT64: return 8;
    default: return 0; /* strings and arrays have no fixed size */
    }
}

/* ---- the output file */

static int write_all(struct gguf_w *w, const void *p, size_t n, struct ms_err *err)
{
    const unsigned char *c = p;
    while (n) {
        ssize_t k = write(w->fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0)
            return ms_err_set(err, MS_ERR_IO, "%s: write failed: %s", w->tmp_path, strerror(errno));
        if (k == 0) return ms_err_set(err, MS_ERR_IO, "%s: write wrote nothing", w->tmp_path);
        c += k;
        n -= (size_t)k;
    }
    return MS_OK;
}

static int out_flush(struct gguf_w *w, struct ms_err *err)
{
    int rc = write_all(w, w->out, w->out_len, err);
    w->out_len = 0;
    return rc;
}

static int out_put(struct gguf_w *w, const void *p, size_t n, struct ms_err *err)
{
    if (n == 0) return MS_OK; /* e.g. the KVs of a file that has none */
    w->written += n;
    if (w->out_len + n <= OUT_BUF_BYTES) {
        memcpy(w->out + w->out_len, p, n);
        w->out_len += n;
        return MS_OK;
    }
    int rc = out_flush(w, err);
    if (rc) return rc;
    if (n >= OUT_BUF_BYTES) return write_all(w, p, n, err);
    memcpy(w->out, p, n);
    w->out_len = n;
    return MS_OK;
}

static int out_zeros(struct gguf_w *w, size_t n, struct ms_err *err)
{
    static const unsigned char zero[64];
    while (n) {
        size_t k = n < sizeof zero ? n : sizeof zero;
        int rc = out_put(w, zero, k, err);
        if (rc) return rc;
        n -= k;
    }
    return MS_OK;
}

static uint64_t pad_to(uint64_t n, uint64_t align)
{
    return (align - n % align) % align;
}

/* ---- public */

int gguf_w_open(const char *path, bool overwrite, struct gguf_w **out, struct ms_err *err)
{
    *out = NULL;
    if (!overwrite && access(path, F_OK) == 0)
        return ms_err_set(err, MS_ERR_INVALID, "%s: already exists (overwrite it with --force)", path);
    struct gguf_w *w = calloc(1, sizeof *w);
    size_t n = strlen(path) + 32;
    if (w) {
        w->path = strdup(path);
        w->tmp_path = malloc(n);
        w->out = malloc(OUT_BUF_BYTES);
    }
    if (!w || !w->path || !w->tmp_path || !w->out) {
        if (w) {
            free(w->path);
            free(w->tmp_path);
            free(w->out);
        }
        free(w);
        return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    }
    snprintf(w->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    w->fd = open(w->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int e = errno;
        ms_err_set(err, MS_ERR_IO, "%s: cannot create: %s", w->tmp_path, strerror(e));
        free(w->path);
        free(w->tmp_path);
        free(w->out);
        free(w);
        return MS_ERR_IO;
    }
    w->overwrite = overwrite;
    w->alignment = GGUF_W_DEFAULT_ALIGNMENT;
    *out = w;
    return MS_OK;
}

static int begin_kv(struct gguf_w *w, const char *key, uint32_t type, struct ms_err *err)
{
    if (w->header_done) return ms_err_set(err, MS_ERR_INTERNAL, "%s: KV %s added after the header", w->path, key);
    for (uint64_t i = 0; i < w->n_kv; i++)
        if (!strcmp(w->keys[i], key)) return ms_err_set(err, MS_ERR_INVALID, "%s: duplicate key %s", w->path, key);
    char **keys = realloc(w->keys, (size_t)(w->n_kv + 1) * sizeof *keys);
    if (!keys) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    w->keys = keys;
    if (!(keys[w->n_kv] = strdup(key))) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    w->n_kv++;
    int rc = buf_str(&w->kv, key, strlen(key), err);
    return rc ? rc : buf_u32(&w->kv, type, err);
}

int gguf_w_kv(struct gguf_w *w, const char *key, enum gguf_w_type type, const void *value, struct ms_err *err)
{
    size_t sz = scalar_size(type);
    if (!sz) return ms_err_set(err, MS_ERR_INTERNAL, "%s: KV %s: type %d is not a scalar", w->path, key, (int)type);
    if (!strcmp(key, "general.alignment")) {
        uint32_t a;
        if (type != GGUF_W_UINT32 || (memcpy(&a, value, 4), a == 0) || (a & (a - 1)))
            return ms_err_set(err, MS_ERR_INVALID, "%s: general.alignment must be a u32 power of two", w->path);
        w->alignment = a;
    }
    int rc = begin_kv(w, key, type, err);
    if (!rc && type == GGUF_W_BOOL) {
        unsigned char b = *(const unsigned char *)value ? 1 : 0;
        return buf_put(&w->kv, &b, 1, err);
    }
    return rc ? rc : buf_put(&w->kv, value, sz, err);
}

int gguf_w_kv_u32(struct gguf_w *w, const char *key, uint32_t v, struct ms_err *err)
{
    return gguf_w_kv(w, key, GGUF_W_UINT32, &v, err);
}

int gguf_w_kv_f32(struct gguf_w *w, const char *key, float v, struct ms_err *err)
{
    return gguf_w_kv(w, key, GGUF_W_FLOAT32, &v, err);
}

int gguf_w_kv_bool(struct gguf_w *w, const char *key, bool v, struct ms_err *err)
{
    unsigned char b = v;
    return gguf_w_kv(w, key, GGUF_W_BOOL, &b, err);
}

int gguf_w_kv_str(struct gguf_w *w, const char *key, const char *s, size_t len, struct ms_err *err)
{
    int rc = begin_kv(w, key, GGUF_W_STRING, err);
    return rc ? rc : buf_str(&w->kv, s, len, err);
}

int gguf_w_kv_array(struct gguf_w *w, const char *key, enum gguf_w_type elem, const void *values, uint64_t n,
                    struct ms_err *err)
{
    size_t sz = scalar_size(elem);
    if (!sz) return ms_err_set(err, MS_ERR_INTERNAL, "%s: array %s: element type %d is not a scalar", w->path, key, (int)elem);
    if (n > SIZE_MAX / sz) return ms_err_set(err, MS_ERR_INVALID, "%s: array %s is too long", w->path, key);
    int rc = begin_kv(w, key, GGUF_W_ARRAY, err);
    if (!rc) rc = buf_u32(&w->kv, elem, err);
    if (!rc) rc = buf_u64(&w->kv, n, err);
    return rc ? rc : buf_put(&w->kv, values, (size_t)n * sz, err);
}

int gguf_w_kv_str_array(struct gguf_w *w, const char *key, const char *const *strs, const size_t *lens,
                        uint64_t n, struct ms_err *err)
{
    int rc = begin_kv(w, key, GGUF_W_ARRAY, err);
    if (!rc) rc = buf_u32(&w->kv, GGUF_W_STRING, err);
    if (!rc) rc = buf_u64(&w->kv, n, err);
    for (uint64_t i = 0; !rc && i < n; i++) rc = buf_str(&w->kv, strs[i], lens ? lens[i] : strlen(strs[i]), err);
    return rc;
}

int gguf_w_add_tensor(struct gguf_w *w, const char *name, int ndim, const int64_t *shape, uint32_t ggml_type,
                      uint64_t nbytes, struct ms_err *err)
{
    if (w->header_done) return ms_err_set(err, MS_ERR_INTERNAL, "%s: tensor %s declared after the header", w->path, name);
    if (ndim < 1 || ndim > 4) return ms_err_set(err, MS_ERR_INVALID, "%s: tensor %s has %d dims (1 to 4)", w->path, name, ndim);
    for (int i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return ms_err_set(err, MS_ERR_INVALID, "%s: duplicate tensor %s", w->path, name);
    if (w->n_t == w->cap_t) {
        int cap = w->cap_t ? 2 * w->cap_t : 64;
        struct tinfo *t = realloc(w->t, (size_t)cap * sizeof *t);
        if (!t) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
        w->t = t;
        w->cap_t = cap;
    }
    struct tinfo *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    if (!(t->name = strdup(name))) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) {
            free(t->name);
            return ms_err_set(err, MS_ERR_INVALID, "%s: tensor %s has dimension %lld", w->path, name, (long long)shape[i]);
        }
        t->ne[i] = (uint64_t)shape[ndim - 1 - i];
    }
    t->type = ggml_type;
    t->nbytes = nbytes;
    w->n_t++;
    return MS_OK;
}

int gguf_w_write_header(struct gguf_w *w, struct ms_err *err)
{
    if (w->header_done) return ms_err_set(err, MS_ERR_INTERNAL, "%s: header written twice", w->path);
    uint64_t off = 0;
    for (int i = 0; i < w->n_t; i++) {
        w->t[i].offset = off;
        off += w->t[i].nbytes + pad_to(w->t[i].nbytes, w->alignment);
    }
    struct bytebuf h = {0};
    int rc = buf_u32(&h, GGUF_W_MAGIC, err);
    if (!rc) rc = buf_u32(&h, GGUF_W_VERSION, err);
    if (!rc) rc = buf_u64(&h, (uint64_t)w->n_t, err);
    if (!rc) rc = buf_u64(&h, w->n_kv, err);
    if (!rc) rc = out_put(w, h.p, h.len, err);
    if (!rc) rc = out_put(w, w->kv.p, w->kv.len, err);
    for (int i = 0; !rc && i < w->n_t; i++) {
        const struct tinfo *t = &w->t[i];
        h.len = 0;
        rc = buf_str(&h, t->name, strlen(t->name), err);
        if (!rc) rc = buf_u32(&h, (uint32_t)t->ndim, err);
        for (int d = 0; !rc && d < t->ndim; d++) rc = buf_u64(&h, t->ne[d], err);
        if (!rc) rc = buf_u32(&h, t->type, err);
        if (!rc) rc = buf_u64(&h, t->offset, err);
        if (!rc) rc = out_put(w, h.p, h.len, err);
    }
    free(h.p);
    if (!rc) rc = out_zeros(w, (size_t)pad_to(w->written, w->alignment), err);
    /* the metadata is on its way out: no need to keep it */
    free(w->kv.p);
    w->kv = (struct bytebuf){0};
    w->header_done = true;
    return rc;
}

int gguf_w_write_data(struct gguf_w *w, const void *data, size_t n, struct ms_err *err)
{
    if (!w->header_done) return ms_err_set(err, MS_ERR_INTERNAL, "%s: tensor data before the header", w->path);
    const unsigned char *p = data;
    while (n) {
        if (w->cur >= w->n_t) return ms_err_set(err, MS_ERR_INTERNAL, "%s: data past the last tensor", w->path);
        struct tinfo *t = &w->t[w->cur];
        uint64_t room = t->nbytes - w->cur_written;
        size_t k = n < room ? n : (size_t)room;
        int rc = out_put(w, p, k, err);
        if (rc) return rc;
        p += k;
        n -= k;
        w->cur_written += k;
        if (w->cur_written == t->nbytes) {
            if ((rc = out_zeros(w, (size_t)pad_to(t->nbytes, w->alignment), err))) return rc;
            w->cur++;
            w->cur_written = 0;
        }
    }
    return MS_OK;
}

uint64_t gguf_w_bytes_written(const struct gguf_w *w)
{
    return w->written;
}

static void w_free(struct gguf_w *w)
{
    for (uint64_t i = 0; i < w->n_kv; i++) free(w->keys[i]);
    free(w->keys);
    for (int i = 0; i < w->n_t; i++) free(w->t[i].name);
    free(w->t);
    free(w->kv.p);
    free(w->out);
    free(w->path);
    free(w->tmp_path);
    free(w);
}

void gguf_w_abort(struct gguf_w *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    unlink(w->tmp_path);
    w_free(w);
}

/* Moves the finished file into place; without `overwrite` never over a file that appeared
 * meanwhile (link fails on an existing target, where rename would replace it). */
static int publish(struct gguf_w *w, struct ms_err *err)
{
    if (w->overwrite) {
        if (rename(w->tmp_path, w->path))
            return ms_err_set(err, MS_ERR_IO, "%s: cannot rename %s into place: %s", w->path, w->tmp_path, strerror(errno));
        return MS_OK;
    }
    if (link(w->tmp_path, w->path)) {
        if (errno == EEXIST)
            return ms_err_set(err, MS_ERR_INVALID, "%s: already exists (overwrite it with --force)", w->path);
        if (errno != EPERM && errno != ENOTSUP)
            return ms_err_set(err, MS_ERR_IO, "%s: cannot link %s into place: %s", w->path, w->tmp_path, strerror(errno));
        /* no hard links on this file system: a check, then rename */
        if (access(w->path, F_OK) == 0)
            return ms_err_set(err, MS_ERR_INVALID, "%s: already exists (overwrite it with --force)", w->path);
        if (rename(w->tmp_path, w->path))
            return ms_err_set(err, MS_ERR_IO, "%s: cannot rename %s into place: %s", w->path, w->tmp_path, strerror(errno));
        return MS_OK;
    }
    unlink(w->tmp_path);
    return MS_OK;
}

static void fsync_dir(const char *path)
{
    char *dir = strdup(path);
    if (!dir) return;
    char *slash = strrchr(dir, '/');
    const char *d = slash ? (slash == dir ? "/" : (*slash = 0, dir)) : ".";
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); /* best effort: the file itself is already durable */
        close(fd);
    }
    free(dir);
}

int gguf_w_finish(struct gguf_w *w, struct ms_err *err)
{
    int rc = MS_OK;
    if (!w->header_done) rc = ms_err_set(err, MS_ERR_INTERNAL, "%s: finished without a header", w->path);
    else if (w->cur < w->n_t)
        rc = ms_err_set(err, MS_ERR_INTERNAL, "%s: tensor %s has %llu of %llu bytes (and %d more tensors unwritten)",
                        w->path, w->t[w->cur].name, (unsigned long long)w->cur_written,
                        (unsigned long long)w->t[w->cur].nbytes, w->n_t - w->cur - 1);
    if (!rc) rc = out_flush(w, err);
    if (!rc && fsync(w->fd)) rc = ms_err_set(err, MS_ERR_IO, "%s: fsync failed: %s", w->tmp_path, strerror(errno));
    if (!rc) {
        int c = close(w->fd);
        w->fd = -1;
        if (c) rc = ms_err_set(err, MS_ERR_IO, "%s: close failed: %s", w->tmp_path, strerror(errno));
    }
    if (!rc) rc = publish(w, err);
    if (rc) {
        gguf_w_abort(w);
        return rc;
    }
    fsync_dir(w->path);
    w_free(w);
    return MS_OK;
}
