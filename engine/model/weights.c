#include "engine/model/weights.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/kernels/format.h"
#include "engine/kernels/matmul.h"
#include "engine/kernels/threadpool.h"
#include "engine/model/gguf.h"
#include "engine/model/gguf_config.h"
#include "engine/model/safetensors.h"

static int add_file(struct model_weights *w, const char *dir, const char *fname, struct ms_err *err)
{
    for (int i = 0; i < w->n_files; i++) {
        const char *base = strrchr(w->files[i]->path, '/');
        if (base && !strcmp(base + 1, fname)) return MS_OK; /* already mapped */
    }
    if (strchr(fname, '/') || !strcmp(fname, "..") || !fname[0])
        return ms_err_set(err, MS_ERR_INVALID, "%s/model.safetensors.index.json: shard name \"%s\" is not a plain file name",
                          dir, fname);
    struct st_file **files = realloc(w->files, (size_t)(w->n_files + 1) * sizeof *files);
    if (!files) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    w->files = files;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, fname);
    int rc = st_open(path, &w->files[w->n_files], err);
    if (rc) return rc;
    w->mapped_bytes += w->files[w->n_files]->size;
    w->n_files++;
    return MS_OK;
}

/* The shard list comes from the index's weight_map; a single file needs no index. */
static int open_files(struct model_weights *w, const char *dir, struct ms_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (access(path, F_OK) != 0) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (access(path, F_OK) != 0)
            return ms_err_set(err, MS_ERR_INVALID, "%s: no model.safetensors or model.safetensors.index.json", dir);
        return add_file(w, dir, "model.safetensors", err);
    }
    char *text = NULL;
    int rc = ms_read_file(path, &text, NULL, err);
    if (rc) return rc;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map)) rc = ms_err_set(err, MS_ERR_INVALID, "%s: not valid JSON with a weight_map object", path);
    const cJSON *it;
    cJSON_ArrayForEach(it, map)
    {
        if (rc) break;
        if (!cJSON_IsString(it))
            rc = ms_err_set(err, MS_ERR_INVALID, "%s: weight_map entry %s is not a file name", path, it->string);
        else
            rc = add_file(w, dir, it->valuestring, err);
    }
    if (!rc && w->n_files == 0) rc = ms_err_set(err, MS_ERR_INVALID, "%s: weight_map is empty", path);
    cJSON_Delete(root);
    return rc;
}

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Finds `name` in any mapped file and checks its shape against the config's expectation. */
static int expect(const struct model_weights *w, const char *dir, const char *name, int ndim,
                  int64_t d0, int64_t d1, struct tensor *out, struct ms_err *err)
{
    int64_t want[2] = {d0, d1};
    for (int i = 0; i < w->n_files; i++) {
        const struct st_entry *e = st_find(w->files[i], name);
        if (!e) continue;
        if (e->tensor.ndim != ndim || e->tensor.shape[0] != d0 || (ndim == 2 && e->tensor.shape[1] != d1)) {
            char got[96], exp[96];
            format_shape(got, sizeof got, e->tensor.ndim, e->tensor.shape);
            format_shape(exp, sizeof exp, ndim, want);
            return ms_err_set(err, MS_ERR_INVALID, "%s: tensor %s has shape %s, config.json implies %s",
                              w->files[i]->path, name, got, exp);
        }
        *out = e->tensor;
        return MS_OK;
    }
    if (w->n_files == 1)
        return ms_err_set(err, MS_ERR_INVALID, "%s: tensor %s is missing", w->files[0]->path, name);
    return ms_err_set(err, MS_ERR_INVALID, "%s/model.safetensors.index.json: tensor %s is missing from every shard",
                      dir, name);
}

static int load_attention(struct model_weights *w, const struct model_config *c, const char *dir, int l,
                          struct ms_err *err)
{
    struct layer_weights *L = &w->layers[l];
    int64_t h = c->hidden_size, qd = (int64_t)c->num_heads * c->head_dim, kvd = (int64_t)c->num_kv_heads * c->head_dim;
    char n[256];
    int rc;
#define EXPECT(field, suffix, nd, a, b)                                                            \
    snprintf(n, sizeof n, "model.layers.%d.%s", l, suffix);                                      \
    if ((rc = expect(w, dir, n, nd, a, b, &L->field, err))) return rc
    EXPECT(attn_norm, "input_layernorm.weight", 1, h, 0);
    EXPECT(q, "self_attn.q_proj.weight", 2, qd, h);
    EXPECT(k, "self_attn.k_proj.weight", 2, kvd, h);
    EXPECT(v, "self_attn.v_proj.weight", 2, kvd, h);
    EXPECT(o, "self_attn.o_proj.weight", 2, h, qd);
    EXPECT(q_norm, "self_attn.q_norm.weight", 1, c->head_dim, 0);
    EXPECT(k_norm, "self_attn.k_norm.weight", 1, c->head_dim, 0);
    EXPECT(ffn_norm, "post_attention_layernorm.weight", 1, h, 0);
    return MS_OK;
}

static int load_mlp(struct model_weights *w, const struct model_config *c, const char *dir, int l,
                    struct ms_err *err)
{
    struct layer_weights *L = &w->layers[l];
    int64_t h = c->hidden_size;
    char n[256];
    int rc;
    L->sparse = c->layer_is_sparse[l];
    if (!L->sparse) {
        int64_t in = c->intermediate_size;
        EXPECT(mlp.gate, "mlp.gate_proj.weight", 2, in, h);
        EXPECT(mlp.up, "mlp.up_proj.weight", 2, in, h);
        EXPECT(mlp.down, "mlp.down_proj.weight", 2, h, in);
        return MS_OK;
    }
    int64_t mi = c->moe_intermediate_size;
    EXPECT(router, "mlp.gate.weight", 2, c->num_experts, h);
    w->n_experts = c->num_experts;
    L->experts = ms_calloc((size_t)c->num_experts, sizeof *L->experts);
    if (!L->experts) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    for (int e = 0; e < c->num_experts; e++) {
        char sub[128];
        snprintf(sub, sizeof sub, "mlp.experts.%d.gate_proj.weight", e);
        EXPECT(experts[e].gate, sub, 2, mi, h);
        snprintf(sub, sizeof sub, "mlp.experts.%d.up_proj.weight", e);
        EXPECT(experts[e].up, sub, 2, mi, h);
        snprintf(sub, sizeof sub, "mlp.experts.%d.down_proj.weight", e);
        EXPECT(experts[e].down, sub, 2, h, mi);
    }
#undef EXPECT
    return MS_OK;
}

/* ---- GGUF: the same tensors under llama.cpp's names, dims reversed (ne[0] is the row) */

static const char *gguf_tensor_path(const struct gguf_file *g, const struct gguf_tensor *t)
{
    const char *path;
    gguf_part(g, t->part, NULL, NULL, &path);
    return path;
}

/* The registry's dtype for a ggml type, by ggml's name, with the same block layout. */
static int gguf_dtype(const struct gguf_file *g, const struct gguf_tensor *t, enum tensor_dtype *out,
                      struct ms_err *err)
{
    const struct weight_format *f = fmt_by_name(t->type_name);
    int bv = 0;
    size_t bb = 0;
    gguf_type_block(t->type, &bv, &bb);
    if (!f || f->block_values != bv || f->block_bytes != bb)
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: tensor %s has type %s, which moeserve cannot run",
                          gguf_tensor_path(g, t), t->name, t->type_name);
    /* plain floats are read as arrays of their element type, blocks through their 2- and 4-byte
     * fields; any real file is aligned far beyond this (general.alignment, default 32) */
    size_t need = bv == 1 ? bb : 4;
    if ((uintptr_t)t->data % need)
        return ms_err_set(err, MS_ERR_INVALID, "%s: tensor %s: data at offset %llu is not aligned to %zu bytes",
                          gguf_tensor_path(g, t), t->name, (unsigned long long)t->file_offset, need);
    *out = f->dtype;
    return MS_OK;
}

/* Tensor `name` with torch shape want[0..ndim) (a GGUF stores it as ne = want reversed). */
static int gexpect(const struct gguf_file *g, const char *name, int ndim, const int64_t *want,
                   const struct gguf_tensor **out, struct tensor *t, struct ms_err *err)
{
    const struct gguf_tensor *gt = gguf_find_tensor(g, name);
    if (!gt) return ms_err_set(err, MS_ERR_INVALID, "%s: tensor %s is missing", gguf_path(g), name);
    bool ok = gt->n_dims == ndim;
    for (int d = 0; ok && d < ndim; d++) ok = gt->ne[d] == want[ndim - 1 - d];
    if (!ok) {
        int64_t got[GGUF_MAX_DIMS];
        for (int d = 0; d < gt->n_dims; d++) got[d] = gt->ne[gt->n_dims - 1 - d];
        char a[96], b[96];
        format_shape(a, sizeof a, gt->n_dims, got);
        format_shape(b, sizeof b, ndim, want);
        return ms_err_set(err, MS_ERR_INVALID, "%s: tensor %s has shape %s, the metadata implies %s",
                          gguf_tensor_path(g, gt), name, a, b);
    }
    enum tensor_dtype dt = TENSOR_DTYPE_F32;
    int rc = gguf_dtype(g, gt, &dt, err);
    if (rc) return rc;
    if (t) {
        *t = (struct tensor){.dtype = dt, .ndim = ndim, .data = gt->data};
        for (int d = 0; d < ndim; d++) t->shape[d] = want[d];
    }
    if (out) *out = gt;
    return MS_OK;
}

static int gexpect2(const struct gguf_file *g, const char *name, int64_t d0, int64_t d1, struct tensor *t,
                    struct ms_err *err)
{
    int64_t want[2] = {d0, d1};
    return gexpect(g, name, d1 ? 2 : 1, want, NULL, t, err);
}

/* blk.l.ffn_{gate,up,down}_exps: [experts, rows, cols] stacked; each expert a view. */
static int gguf_experts(struct model_weights *w, const struct gguf_file *g, int l, const char *which,
                        int64_t rows, int64_t cols, size_t field, struct ms_err *err)
{
    char n[96];
    snprintf(n, sizeof n, "blk.%d.ffn_%s_exps.weight", l, which);
    int64_t want[3] = {w->n_experts, rows, cols};
    const struct gguf_tensor *gt;
    struct tensor t;
    int rc = gexpect(g, n, 3, want, &gt, &t, err);
    if (rc) return rc;
    size_t per = gt->nbytes / (size_t)w->n_experts;
    for (int e = 0; e < w->n_experts; e++) {
        struct tensor *x = (struct tensor *)((char *)&w->layers[l].experts[e] + field);
        *x = (struct tensor){.dtype = t.dtype, .ndim = 2, .shape = {rows, cols},
                             .data = (const char *)gt->data + (size_t)e * per};
    }
    return MS_OK;
}

static int gguf_layer(struct model_weights *w, const struct model_config *c, const struct gguf_file *g, int l,
                      struct ms_err *err)
{
    struct layer_weights *L = &w->layers[l];
    int64_t h = c->hidden_size, qd = (int64_t)c->num_heads * c->head_dim, kvd = (int64_t)c->num_kv_heads * c->head_dim;
    char n[96];
    int rc;
#define GEXPECT(field, suffix, a, b)                                                               \
    snprintf(n, sizeof n, "blk.%d.%s.weight", l, suffix);                                        \
    if ((rc = gexpect2(g, n, a, b, &L->field, err))) return rc
    GEXPECT(attn_norm, "attn_norm", h, 0);
    GEXPECT(q, "attn_q", qd, h);
    GEXPECT(k, "attn_k", kvd, h);
    GEXPECT(v, "attn_v", kvd, h);
    GEXPECT(o, "attn_output", h, qd);
    GEXPECT(q_norm, "attn_q_norm", c->head_dim, 0);
    GEXPECT(k_norm, "attn_k_norm", c->head_dim, 0);
    GEXPECT(ffn_norm, "ffn_norm", h, 0);
    L->sparse = c->layer_is_sparse[l];
    if (!L->sparse) {
        int64_t in = c->intermediate_size;
        GEXPECT(mlp.gate, "ffn_gate", in, h);
        GEXPECT(mlp.up, "ffn_up", in, h);
        GEXPECT(mlp.down, "ffn_down", h, in);
        return MS_OK;
    }
    GEXPECT(router, "ffn_gate_inp", c->num_experts, h);
#undef GEXPECT
    w->n_experts = c->num_experts;
    if (!(L->experts = ms_calloc((size_t)c->num_experts, sizeof *L->experts)))
        return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    int64_t mi = c->moe_intermediate_size;
    rc = gguf_experts(w, g, l, "gate", mi, h, offsetof(struct expert_weights, gate), err);
    if (!rc) rc = gguf_experts(w, g, l, "up", mi, h, offsetof(struct expert_weights, up), err);
    if (!rc) rc = gguf_experts(w, g, l, "down", h, mi, offsetof(struct expert_weights, down), err);
    return rc;
}

/* The forward prepares one input for q, k and v and one for gate and up (engine/model/scratch.h),
 * so each group must be stored in formats whose kernels read the same kind of activations; a
 * file that mixes, say, a Q5_K gate with an F32 up is refused rather than run wrong. */
static int same_input_kind(const struct gguf_file *g, int l, const struct tensor *a, const struct tensor *b,
                           const char *what, struct ms_err *err)
{
    if (kern_matmul_act(a, 0) == kern_matmul_act(b, 0)) return MS_OK;
    return ms_err_set(err, MS_ERR_UNSUPPORTED,
                      "%s: layer %d stores %s as %s and %s, whose kernels read different activations (moeserve "
                      "needs one kind per shared input)",
                      gguf_path(g), l, what, fmt_get(a->dtype)->name, fmt_get(b->dtype)->name);
}

static int check_shared_inputs_gguf(const struct model_weights *w, const struct gguf_file *g, struct ms_err *err)
{
    int rc = MS_OK;
    for (int l = 0; !rc && l < w->num_layers; l++) {
        const struct layer_weights *L = &w->layers[l];
        const struct expert_weights *e = L->sparse ? &L->experts[0] : &L->mlp;
        rc = same_input_kind(g, l, &L->q, &L->k, "attn_q and attn_k", err);
        if (!rc) rc = same_input_kind(g, l, &L->q, &L->v, "attn_q and attn_v", err);
        if (!rc) rc = same_input_kind(g, l, &e->gate, &e->up, "ffn gate and up", err);
    }
    return rc;
}

static int weights_load_gguf(struct model_weights *w, const struct model_config *c, const char *path,
                             struct ms_err *err)
{
    int rc = gguf_open(path, &w->gguf, err);
    if (rc) return rc;
    const struct gguf_file *g = w->gguf;
    for (int i = 0; i < gguf_n_parts(g); i++) {
        size_t size;
        gguf_part(g, i, NULL, &size, NULL);
        w->mapped_bytes += size;
    }
    int64_t h = c->hidden_size;
    rc = gexpect2(g, "token_embd.weight", c->vocab_size, h, &w->embed, err);
    for (int l = 0; !rc && l < c->num_layers; l++) rc = gguf_layer(w, c, g, l, err);
    if (!rc) rc = gexpect2(g, "output_norm.weight", h, 0, &w->final_norm, err);
    if (!rc && !gguf_find_tensor(g, "output.weight")) w->lm_head = w->embed; /* tied */
    else if (!rc) rc = gexpect2(g, "output.weight", c->vocab_size, h, &w->lm_head, err);
    if (!rc) rc = check_shared_inputs_gguf(w, g, err);
    return rc;
}

/* Asks for [start, start + len) to be read in: prefaulted in one call where the kernel can
 * (MADV_POPULATE_READ, Linux 5.14: far cheaper than a fault per 4 KiB page), else read ahead.
 * Returns whether the pages are now mapped. */
static bool prefault(void *start, size_t len)
{
#ifdef MADV_POPULATE_READ
    if (madvise(start, len, MADV_POPULATE_READ) == 0) return true;
#endif
    madvise(start, len, MADV_WILLNEED);
    return false;
}

/* Progress of a long load on stderr: a rewritten line on a terminal; without one (a
 * container's log), one line per 10% of a large load, since small loads finish before anyone
 * looks. */
struct load_progress {
    const char *what;
    size_t total;
    bool terminal, log_lines;
    int last_pct;
    double t0;
};

static struct load_progress progress_start(const char *what, size_t total, bool terminal)
{
    return (struct load_progress){what, total, terminal, total >= (4ull << 30), -1, ms_now()};
}

static void progress_update(struct load_progress *p, size_t done)
{
    int pct = p->total ? (int)(done * 100 / p->total) : 100;
    double dt = ms_now() - p->t0, rate = dt > 0 ? done / 1e9 / dt : 0.0;
    if (p->terminal && pct != p->last_pct) {
        fprintf(stderr, "\r%s: %.2f / %.2f GB (%d%%) %.1f GB/s ", p->what, done / 1e9, p->total / 1e9, pct, rate);
        p->last_pct = pct;
    } else if (!p->terminal && p->log_lines && pct / 10 != p->last_pct / 10) {
        fprintf(stderr, "moeserve: %s: %.1f / %.1f GB (%d%%) %.1f GB/s\n", p->what, done / 1e9, p->total / 1e9,
                pct, rate);
        p->last_pct = pct;
    }
}

static void progress_end(const struct load_progress *p)
{
    if (p->terminal) fprintf(stderr, "\n");
}

/* Mapping i of w: the safetensors files, then the GGUF's parts. */
static void mapping_of(const struct model_weights *w, int i, const unsigned char **base, size_t *size)
{
    if (i < w->n_files) {
        *base = w->files[i]->map;
        *size = w->files[i]->size;
        return;
    }
    const void *b;
    gguf_part(w->gguf, i - w->n_files, &b, size, NULL);
    *base = b;
}

void weights_page_in(const struct model_weights *w, bool show_progress)
{
    const size_t page = 4096, chunk = 64u << 20;
    size_t done = 0;
    volatile unsigned char sink = 0;
    struct load_progress pr = progress_start("loading weights", w->mapped_bytes, show_progress);
    int n_gguf = w->gguf ? gguf_n_parts(w->gguf) : 0;
    for (int i = 0; i < w->n_files + n_gguf; i++) {
        const unsigned char *base;
        size_t size;
        mapping_of(w, i, &base, &size);
        madvise((void *)base, size, MADV_WILLNEED);
        for (size_t off = 0; off < size; off += chunk) {
            size_t end = off + chunk < size ? off + chunk : size;
            if (!prefault((void *)(base + off), end - off))
                for (size_t p = off; p < end; p += page) sink ^= base[p];
            done += end - off;
            progress_update(&pr, done);
        }
    }
    progress_end(&pr);
    (void)sink;
}

/* Puts anonymous memory holding the same bytes in place of [base, base + size) of a read-only
 * file mapping, one chunk at a time (mremap onto the chunk's own addresses), so every tensor
 * pointer into the mapping stays valid and at most one chunk exists twice. Returns the bytes
 * replaced: size, or less when memory ran out (the rest stays mapped). */
static size_t copy_over_mapping(unsigned char *base, size_t size, struct load_progress *pr, size_t *done)
{
    const size_t page = 4096, chunk = 64u << 20;
    for (size_t off = 0; off < size; off += chunk) {
        size_t len = off + chunk < size ? chunk : size - off, span = (len + page - 1) / page * page;
        void *tmp = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (tmp == MAP_FAILED) return off;
        madvise(tmp, span, MADV_HUGEPAGE);
        prefault(base + off, len);
        memcpy(tmp, base + off, len);
        if (mprotect(tmp, span, PROT_READ) ||
            mremap(tmp, span, span, MREMAP_MAYMOVE | MREMAP_FIXED, base + off) == MAP_FAILED) {
            munmap(tmp, span);
            return off;
        }
        *done += len;
        progress_update(pr, *done);
    }
    return size;
}

int weights_copy_in(const struct model_weights *w, bool show_progress)
{
    size_t done = 0, kept = 0;
    struct load_progress pr = progress_start("copying weights into memory", w->mapped_bytes, show_progress);
    int n_gguf = w->gguf ? gguf_n_parts(w->gguf) : 0;
    for (int i = 0; i < w->n_files + n_gguf; i++) {
        const unsigned char *base;
        size_t size;
        mapping_of(w, i, &base, &size);
        madvise((void *)base, size, MADV_SEQUENTIAL);
        size_t copied = copy_over_mapping((unsigned char *)base, size, &pr, &done);
        if (copied < size) {
            prefault((void *)(base + copied), size - copied);
            kept += size - copied;
        }
    }
    progress_end(&pr);
    if (kept) fprintf(stderr, "moeserve: out of memory copying the weights: %.2f GB stay served from the file mapping\n", kept / 1e9);
    return kept ? -1 : 0;
}

int weights_load(const struct model_config *c, const char *dir, struct model_weights **out, struct ms_err *err)
{
    *out = NULL;
    struct model_weights *w = calloc(1, sizeof *w);
    if (!w) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    int rc = MS_OK;
    if (!(w->layers = ms_calloc((size_t)c->num_layers, sizeof *w->layers)))
        rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    if (!rc) w->num_layers = c->num_layers;
    if (!rc && gguf_config_is_gguf_path(dir)) {
        rc = weights_load_gguf(w, c, dir, err);
        if (rc) {
            weights_free(w);
            return rc;
        }
        *out = w;
        return MS_OK;
    }
    if (!rc) rc = open_files(w, dir, err);
    int64_t h = c->hidden_size;
    if (!rc) rc = expect(w, dir, "model.embed_tokens.weight", 2, c->vocab_size, h, &w->embed, err);
    for (int l = 0; !rc && l < c->num_layers; l++) {
        rc = load_attention(w, c, dir, l, err);
        if (!rc) rc = load_mlp(w, c, dir, l, err);
    }
    if (!rc) rc = expect(w, dir, "model.norm.weight", 1, h, 0, &w->final_norm, err);
    if (!rc) {
        if (c->tie_word_embeddings)
            w->lm_head = w->embed;
        else
            rc = expect(w, dir, "lm_head.weight", 2, c->vocab_size, h, &w->lm_head, err);
    }
    if (rc) {
        weights_free(w);
        return rc;
    }
    *out = w;
    return MS_OK;
}

/* ---- Quantization at load */

#define QUANT_ROWS_PER_TASK 64

struct quant_plan {
    struct tensor **t;  /* [n] the tensors to quantize */
    enum tensor_dtype *to; /* [n] each one's format */
    int *first_task;    /* [n + 1] */
    char **dst;         /* [n] each one's place in the arena */
    int n;
    int task_base; /* the group being run starts at this task */
    const char *label; /* for the progress line: a format or scheme name */
    struct threadpool *tp;
};

static void quant_task(void *p, int task_in_group, int thread)
{
    const struct quant_plan *q = p;
    int task = q->task_base + task_in_group;
    int lo = 0, hi = q->n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (q->first_task[mid] <= task) lo = mid;
        else hi = mid - 1;
    }
    const struct tensor *t = q->t[lo];
    int rows = (int)t->shape[0], in = (int)t->shape[1];
    int r0 = (task - q->first_task[lo]) * QUANT_ROWS_PER_TASK;
    int r1 = r0 + QUANT_ROWS_PER_TASK < rows ? r0 + QUANT_ROWS_PER_TASK : rows;
    float *row = tp_scratch(q->tp, thread);
    size_t row_bytes = fmt_row_bytes(fmt_get(q->to[lo]), in);
    for (int r = r0; r < r1; r++) tensor_quantize_row(t, r, q->to[lo], q->dst[lo] + (size_t)r * row_bytes, row);
}

/* The source bytes of tensor t, widened to whole pages. */
static void tensor_pages(const struct tensor *t, char **start, size_t *len)
{
    const size_t page = 4096;
    uintptr_t a = (uintptr_t)t->data, b = a + (size_t)t->shape[0] * tensor_row_bytes(t);
    a &= ~(uintptr_t)(page - 1);
    b = (b + page - 1) & ~(uintptr_t)(page - 1);
    *start = (char *)a;
    *len = b - a;
}

/* Maps back in what stays in the file's dtype and is read every step (the embedding rows, the
 * routers): a decode step would otherwise fault on each new token's embedding row. */
static void prefault_kept(struct model_weights *w)
{
    char *start;
    size_t len;
    tensor_pages(&w->embed, &start, &len);
    prefault(start, len);
    for (int l = 0; l < w->num_layers; l++) {
        if (!w->layers[l].sparse) continue;
        tensor_pages(&w->layers[l].router, &start, &len);
        prefault(start, len);
    }
}

/* Runs the plan's tasks a group of tensors (about 256 MB of source) at a time: the group's
 * pages are asked for ahead (a cold disk), and once quantized they leave the process, so the
 * peak resident memory is the quantized arena plus one group, not the arena plus the whole
 * checkpoint. Pages shared with a tensor kept in its file dtype are simply read again. */
static void quantize_in_groups(struct quant_plan *q, int tasks, bool show_progress)
{
    const size_t group_bytes = 256u << 20;
    size_t total = 0, done = 0;
    for (int i = 0; i < q->n; i++) total += (size_t)q->t[i]->shape[0] * tensor_row_bytes(q->t[i]);
    char what[64];
    snprintf(what, sizeof what, "quantizing to %s", q->label);
    struct load_progress pr = progress_start(what, total, show_progress);
    for (int first = 0, last; first < q->n; first = last) {
        size_t bytes = 0;
        for (last = first; last < q->n && (last == first || bytes < group_bytes); last++) {
            char *start;
            size_t len;
            tensor_pages(q->t[last], &start, &len);
            prefault(start, len);
            bytes += (size_t)q->t[last]->shape[0] * tensor_row_bytes(q->t[last]);
        }
        q->task_base = q->first_task[first];
        int end_task = last < q->n ? q->first_task[last] : tasks;
        tp_run(q->tp, end_task - q->task_base, quant_task, q);
        for (int i = first; i < last; i++) {
            char *start;
            size_t len;
            tensor_pages(q->t[i], &start, &len);
            madvise(start, len, MADV_DONTNEED);
        }
        done += bytes;
        progress_update(&pr, done);
    }
    progress_end(&pr);
}

/* A weight to convert at load, and what it is for the scheme's rules. */
struct quant_item {
    struct tensor *t;
    enum qscheme_role role;
    int layer;
    bool experts;
};

/* The matmul weights of w (and, with `embed`, the embedding), in a fixed order; returns how
 * many (fills `out` when not NULL). A tied lm_head is left out with `embed` (it becomes the
 * converted embedding). */
static int list_weights(struct model_weights *w, bool embed, struct quant_item *out)
{
    int n = 0;
    bool tied = w->lm_head.data == w->embed.data;
#define ADD(tp, r, l, x) do { if (out) out[n] = (struct quant_item){(tp), (r), (l), (x)}; n++; } while (0)
    if (embed) ADD(&w->embed, QSCHEME_EMBD, -1, false);
    for (int l = 0; l < w->num_layers; l++) {
        struct layer_weights *L = &w->layers[l];
        ADD(&L->q, QSCHEME_ATTN_Q, l, false);
        ADD(&L->k, QSCHEME_ATTN_K, l, false);
        ADD(&L->v, QSCHEME_ATTN_V, l, false);
        ADD(&L->o, QSCHEME_ATTN_OUT, l, false);
        if (!L->sparse) {
            ADD(&L->mlp.gate, QSCHEME_FFN_GATE, l, false);
            ADD(&L->mlp.up, QSCHEME_FFN_UP, l, false);
            ADD(&L->mlp.down, QSCHEME_FFN_DOWN, l, false);
            continue;
        }
        for (int e = 0; e < w->n_experts; e++) {
            ADD(&L->experts[e].gate, QSCHEME_FFN_GATE, l, true);
            ADD(&L->experts[e].up, QSCHEME_FFN_UP, l, true);
            ADD(&L->experts[e].down, QSCHEME_FFN_DOWN, l, true);
        }
    }
    if (!(embed && tied)) ADD(&w->lm_head, tied ? QSCHEME_EMBD : QSCHEME_OUTPUT, -1, false);
#undef ADD
    return n;
}

/* Converts items[i].t to to[i] (where it differs from the stored dtype) into one owned arena.
 * `items` and `to` are the caller's; n > 0. */
static int quantize_items(struct model_weights *w, const struct quant_item *items, const enum tensor_dtype *to,
                          int total, const char *label, int threads, bool show_progress, struct ms_err *err)
{
    int n = 0, max_in = 0, tasks = 0, rc = MS_OK;
    struct quant_plan q = {.label = label};
    q.t = ms_calloc((size_t)total, sizeof *q.t);
    q.to = ms_calloc((size_t)total, sizeof *q.to);
    q.first_task = ms_calloc((size_t)total + 1, sizeof *q.first_task);
    q.dst = ms_calloc((size_t)total, sizeof *q.dst);
    if (!q.t || !q.to || !q.first_task || !q.dst) {
        rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t bytes = 0;
    for (int i = 0; i < total; i++) {
        struct tensor *t = items[i].t;
        if (t->dtype == to[i]) continue;
        q.t[n] = t;
        q.to[n] = to[i];
        q.first_task[n] = tasks;
        tasks += (int)((t->shape[0] + QUANT_ROWS_PER_TASK - 1) / QUANT_ROWS_PER_TASK);
        bytes += (size_t)t->shape[0] * fmt_row_bytes(fmt_get(to[i]), t->shape[1]);
        if (t->shape[1] > max_in) max_in = (int)t->shape[1];
        n++;
    }
    q.n = n;
    /* said, or a scheme whose blocks no row can hold (nvfp4 on a narrow model) would look applied */
    if (n == 0) {
        fprintf(stderr, "moeserve: %s: no tensor converted (each already in its format, or its rows too short)\n",
                label);
        goto out;
    }
    /* a tied lm_head shares the embedding's data but gets its own quantized copy. Anonymous
     * memory in huge pages where the kernel allows: 2 MiB faults instead of 4 KiB ones (a
     * 4 KiB fault per page costs seconds of system time over 3 GB) */
    void *arena = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (arena == MAP_FAILED) {
        rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory for %.2f GB of %s weights", bytes / 1e9, label);
        goto out;
    }
    madvise(arena, bytes, MADV_HUGEPAGE);
    w->quant_arena = arena;
    w->quant_bytes = bytes;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        q.dst[i] = (char *)w->quant_arena + off;
        off += (size_t)q.t[i]->shape[0] * fmt_row_bytes(fmt_get(q.to[i]), q.t[i]->shape[1]);
    }
    if (!(q.tp = tp_create(threads, (size_t)max_in, err))) {
        rc = MS_ERR_NOMEM;
        goto out;
    }
    double t0 = ms_now();
    quantize_in_groups(&q, tasks, show_progress);
    for (int i = 0; i < n; i++) {
        q.t[i]->dtype = q.to[i];
        q.t[i]->data = q.dst[i];
    }
    fprintf(stderr, "moeserve: quantized %d tensors to %s (%.2f GB) in %.2f s\n", n, label, bytes / 1e9, ms_now() - t0);
    int n_maps = w->n_files + (w->gguf ? gguf_n_parts(w->gguf) : 0);
    for (int i = 0; i < n_maps; i++) {
        const unsigned char *base;
        size_t size;
        mapping_of(w, i, &base, &size);
        madvise((void *)base, size, MADV_DONTNEED);
    }
    prefault_kept(w);
out:
    tp_destroy(q.tp);
    free(q.t);
    free(q.to);
    free(q.first_task);
    free(q.dst);
    return rc;
}

int weights_quantize(struct model_weights *w, enum tensor_dtype to, int threads, bool show_progress,
                     struct ms_err *err)
{
    const struct weight_format *f = fmt_get(to);
    if (!f->quantize_row) return ms_err_set(err, MS_ERR_INVALID, "cannot quantize to %s", f->name);
    int total = list_weights(w, false, NULL), rc;
    struct quant_item *items = ms_calloc((size_t)total, sizeof *items);
    enum tensor_dtype *dst = ms_calloc((size_t)total, sizeof *dst);
    if (!items || !dst) {
        rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    } else {
        list_weights(w, false, items);
        /* keep those already quantized or with odd row lengths */
        for (int i = 0; i < total; i++) dst[i] = fmt_row_bytes(f, items[i].t->shape[1]) ? to : items[i].t->dtype;
        rc = quantize_items(w, items, dst, total, f->name, threads, show_progress, err);
    }
    free(items);
    free(dst);
    return rc;
}

/* The format a scheme gives item `it`; a row too short for the scheme's blocks (its F16
 * fallback) keeps the stored dtype, which is no worse. */
static int scheme_dtype(const struct quant_scheme *s, const struct qscheme_model *m, const struct quant_item *it,
                        enum tensor_dtype *out, struct ms_err *err)
{
    struct qscheme_tensor qt = {it->role, it->experts, 2, it->t->shape[1], it->layer};
    const char *name = qscheme_choose(s, &qt, m);
    const struct weight_format *f = fmt_by_name(name);
    if (!strcmp(name, QSCHEME_KEEP) || (!strcmp(name, "F16") && strcmp(s->base, "F16"))) {
        *out = it->t->dtype;
        return MS_OK;
    }
    if (!f || !f->quantize_row)
        return ms_err_set(err, MS_ERR_UNSUPPORTED,
                          "--quantize %s needs %s (rows of %lld), which this build cannot convert to yet", s->name,
                          name, (long long)it->t->shape[1]);
    *out = f->dtype;
    return MS_OK;
}

/* The forward prepares one input for q, k and v, and one for gate and up: each group must read
 * the same kind of activations. */
static int check_shared_inputs(const struct quant_item *items, const enum tensor_dtype *to, int n, const char *scheme,
                               struct ms_err *err)
{
    for (int i = 0; i + 1 < n; i++) {
        bool pair = (items[i].role == QSCHEME_ATTN_Q && items[i + 1].role == QSCHEME_ATTN_K) ||
                    (items[i].role == QSCHEME_ATTN_K && items[i + 1].role == QSCHEME_ATTN_V) ||
                    (items[i].role == QSCHEME_FFN_GATE && items[i + 1].role == QSCHEME_FFN_UP);
        if (!pair) continue;
        struct tensor a = *items[i].t, b = *items[i + 1].t;
        a.dtype = to[i];
        b.dtype = to[i + 1];
        if (kern_matmul_act(&a, 0) != kern_matmul_act(&b, 0))
            return ms_err_set(err, MS_ERR_UNSUPPORTED,
                              "--quantize %s gives layer %d %s and %s whose kernels read different activations",
                              scheme, items[i].layer, fmt_get(to[i])->name, fmt_get(to[i + 1])->name);
    }
    return MS_OK;
}

int weights_quantize_scheme(struct model_weights *w, const struct model_config *cfg, const struct quant_scheme *s,
                            int threads, bool show_progress, struct ms_err *err)
{
    int total = list_weights(w, true, NULL), rc = MS_OK;
    struct quant_item *items = ms_calloc((size_t)total, sizeof *items);
    enum tensor_dtype *dst = ms_calloc((size_t)total, sizeof *dst);
    struct qscheme_model m = {cfg->num_layers, cfg->num_heads / cfg->num_kv_heads};
    bool tied = w->lm_head.data == w->embed.data;
    if (!items || !dst) rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    if (!rc) list_weights(w, true, items);
    for (int i = 0; !rc && i < total; i++) rc = scheme_dtype(s, &m, &items[i], &dst[i], err);
    if (!rc) rc = check_shared_inputs(items, dst, total, s->name, err);
    if (!rc) rc = quantize_items(w, items, dst, total, s->name, threads, show_progress, err);
    if (!rc && tied) w->lm_head = w->embed;
    free(items);
    free(dst);
    return rc;
}

void weights_free(struct model_weights *w)
{
    if (!w) return;
    if (w->quant_arena) munmap(w->quant_arena, w->quant_bytes);
    for (int l = 0; w->layers && l < w->num_layers; l++) free(w->layers[l].experts);
    free(w->layers);
    for (int i = 0; i < w->n_files; i++) st_close(w->files[i]);
    free(w->files);
    gguf_close(w->gguf);
    free(w);
}
