#include "engine/weights.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/kernels.h"
#include "engine/quant.h"
#include "engine/safetensors.h"
#include "engine/threadpool.h"

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

void weights_page_in(const struct model_weights *w, bool show_progress)
{
    const size_t page = 4096, chunk = 64u << 20;
    size_t done = 0;
    volatile unsigned char sink = 0;
    struct load_progress pr = progress_start("loading weights", w->mapped_bytes, show_progress);
    for (int i = 0; i < w->n_files; i++) {
        const unsigned char *base = w->files[i]->map;
        size_t size = w->files[i]->size;
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

int weights_load(const struct model_config *c, const char *dir, struct model_weights **out, struct ms_err *err)
{
    *out = NULL;
    struct model_weights *w = calloc(1, sizeof *w);
    if (!w) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    int rc = open_files(w, dir, err);
    if (!rc && !(w->layers = ms_calloc((size_t)c->num_layers, sizeof *w->layers)))
        rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    if (!rc) w->num_layers = c->num_layers;
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
    int *first_task;    /* [n + 1] */
    char **dst;         /* [n] each one's place in the arena */
    int n;
    int task_base; /* the group being run starts at this task */
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
    size_t row_bytes = (size_t)(in / Q8_0_BLOCK) * sizeof(struct q8_0_block);
    for (int r = r0; r < r1; r++) kern_quantize_row_q8_0(t, r, (struct q8_0_block *)(q->dst[lo] + (size_t)r * row_bytes), row);
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
 * peak resident memory is the Q8_0 arena plus one group, not the arena plus the whole
 * checkpoint. Pages shared with a tensor kept in its file dtype are simply read again. */
static void quantize_in_groups(struct quant_plan *q, int tasks, bool show_progress)
{
    const size_t group_bytes = 256u << 20;
    size_t total = 0, done = 0;
    for (int i = 0; i < q->n; i++) total += (size_t)q->t[i]->shape[0] * tensor_row_bytes(q->t[i]);
    struct load_progress pr = progress_start("quantizing to Q8_0", total, show_progress);
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

/* The matmul weights of w, in a fixed order; returns how many (fills `out` when not NULL). */
static int list_matmul_weights(struct model_weights *w, struct tensor **out)
{
    int n = 0;
#define ADD(tp) do { if (out) out[n] = (tp); n++; } while (0)
    for (int l = 0; l < w->num_layers; l++) {
        struct layer_weights *L = &w->layers[l];
        ADD(&L->q);
        ADD(&L->k);
        ADD(&L->v);
        ADD(&L->o);
        if (!L->sparse) {
            ADD(&L->mlp.gate);
            ADD(&L->mlp.up);
            ADD(&L->mlp.down);
            continue;
        }
        for (int e = 0; e < w->n_experts; e++) {
            ADD(&L->experts[e].gate);
            ADD(&L->experts[e].up);
            ADD(&L->experts[e].down);
        }
    }
    ADD(&w->lm_head);
#undef ADD
    return n;
}

int weights_quantize(struct model_weights *w, enum tensor_dtype to, int threads, bool show_progress,
                     struct ms_err *err)
{
    if (to != TENSOR_DTYPE_Q8_0) return ms_err_set(err, MS_ERR_INVALID, "can only quantize to Q8_0");
    int total = list_matmul_weights(w, NULL), n = 0, max_in = 0, tasks = 0, rc = MS_OK;
    struct quant_plan q = {0};
    q.t = ms_calloc((size_t)total, sizeof *q.t);
    q.first_task = ms_calloc((size_t)total + 1, sizeof *q.first_task);
    q.dst = ms_calloc((size_t)total, sizeof *q.dst);
    if (!q.t || !q.first_task || !q.dst) {
        rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory");
        goto out;
    }
    list_matmul_weights(w, q.t);
    size_t bytes = 0;
    for (int i = 0; i < total; i++) { /* keep those already quantized or with odd row lengths */
        struct tensor *t = q.t[i];
        if (t->dtype == TENSOR_DTYPE_Q8_0 || t->shape[1] % Q8_0_BLOCK) continue;
        q.t[n] = t;
        q.first_task[n] = tasks;
        tasks += (int)((t->shape[0] + QUANT_ROWS_PER_TASK - 1) / QUANT_ROWS_PER_TASK);
        bytes += (size_t)t->shape[0] * (size_t)(t->shape[1] / Q8_0_BLOCK) * sizeof(struct q8_0_block);
        if (t->shape[1] > max_in) max_in = (int)t->shape[1];
        n++;
    }
    q.n = n;
    if (n == 0) goto out;
    /* a tied lm_head shares the embedding's data but gets its own quantized copy. Anonymous
     * memory in huge pages where the kernel allows: 2 MiB faults instead of 4 KiB ones (a
     * 4 KiB fault per page costs seconds of system time over 3 GB) */
    void *arena = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (arena == MAP_FAILED) {
        rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory for %.2f GB of Q8_0 weights", bytes / 1e9);
        goto out;
    }
    madvise(arena, bytes, MADV_HUGEPAGE);
    w->quant_arena = arena;
    w->quant_bytes = bytes;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        q.dst[i] = (char *)w->quant_arena + off;
        off += (size_t)q.t[i]->shape[0] * (size_t)(q.t[i]->shape[1] / Q8_0_BLOCK) * sizeof(struct q8_0_block);
    }
    if (!(q.tp = tp_create(threads, (size_t)max_in, err))) {
        rc = MS_ERR_NOMEM;
        goto out;
    }
    double t0 = ms_now();
    quantize_in_groups(&q, tasks, show_progress);
    for (int i = 0; i < n; i++) {
        q.t[i]->dtype = TENSOR_DTYPE_Q8_0;
        q.t[i]->data = q.dst[i];
    }
    fprintf(stderr, "moeserve: quantized %d tensors to Q8_0 (%.2f GB) in %.2f s\n", n, bytes / 1e9, ms_now() - t0);
    for (int i = 0; i < w->n_files; i++) madvise(w->files[i]->map, w->files[i]->size, MADV_DONTNEED);
    prefault_kept(w);
out:
    tp_destroy(q.tp);
    free(q.t);
    free(q.first_task);
    free(q.dst);
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
    free(w);
}
