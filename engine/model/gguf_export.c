#include "engine/model/gguf_export.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/kernels/format.h"
#include "engine/kernels/threadpool.h"
#include "engine/model/gguf_writer.h"

#define CHUNK_BYTES (32u << 20)
#define ROWS_PER_TASK 16

/* ---- the plan */

struct builder {
    struct gguf_export_plan *p;
    int n_srcs_used;
    const struct quant_scheme *s;
    struct qscheme_model m;
};

static int choose(struct builder *b, struct gguf_export_tensor *t, enum qscheme_role role, int layer,
                  struct ms_err *err)
{
    struct qscheme_tensor q = {role, t->n_src > 1, t->ndim, t->shape[t->ndim - 1], layer};
    const char *name = qscheme_choose(b->s, &q, &b->m);
    const struct qscheme_ggml_type *g = qscheme_ggml_by_name(name);
    const struct weight_format *f = fmt_by_name(name);
    if (!g) return ms_err_set(err, MS_ERR_INTERNAL, "quant_scheme chose unknown type %s for %s", name, t->name);
    if (!f || !f->quantize_row)
        return ms_err_set(err, MS_ERR_UNSUPPORTED,
                          "--type %s needs %s (for %s, rows of %lld), which this build cannot write yet", b->s->name,
                          name, t->name, (long long)q.row_len);
    if (f->block_values != g->block_values || f->block_bytes != (size_t)g->block_bytes)
        return ms_err_set(err, MS_ERR_INTERNAL, "format %s: blocks of %d values / %zu bytes, ggml's are %d / %d", name,
                          f->block_values, f->block_bytes, g->block_values, g->block_bytes);
    t->type = g;
    t->dtype = f->dtype;
    int64_t rows = 1;
    for (int i = 0; i < t->ndim - 1; i++) rows *= t->shape[i];
    t->nbytes = (uint64_t)rows * qscheme_ggml_row_bytes(g, q.row_len);
    return MS_OK;
}

/* Adds tensor `name` made of n_src sources (stacked when several). */
static int add(struct builder *b, const char *name, enum qscheme_role role, int layer, const struct tensor *const *src,
               int n_src, struct ms_err *err)
{
    struct gguf_export_plan *p = b->p;
    struct gguf_export_tensor *t = &p->t[p->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    const struct tensor **dst = p->srcs + b->n_srcs_used;
    for (int i = 0; i < n_src; i++) dst[i] = src[i];
    b->n_srcs_used += n_src;
    t->src = dst;
    t->n_src = n_src;
    /* every source of a stack has the first one's shape: weights_load checked them */
    int nd = src[0]->ndim, k = 0;
    if (n_src > 1) t->shape[k++] = n_src;
    for (int i = 0; i < nd; i++) t->shape[k++] = src[0]->shape[i];
    t->ndim = k;
    int rc = choose(b, t, role, layer, err);
    if (rc) return rc;
    p->n++;
    p->total_bytes += t->nbytes;
    if (t->shape[t->ndim - 1] > p->max_row) p->max_row = t->shape[t->ndim - 1];
    return MS_OK;
}

static int add1(struct builder *b, const char *name, enum qscheme_role role, int layer, const struct tensor *src,
                struct ms_err *err)
{
    return add(b, name, role, layer, &src, 1, err);
}

static int add_layer(struct builder *b, const struct model_weights *w, int l, struct ms_err *err)
{
    const struct layer_weights *L = &w->layers[l];
    char n[96];
    int rc = MS_OK;
#define ADD(suffix, role, tp)                                                                      \
    do {                                                                                           \
        snprintf(n, sizeof n, "blk.%d.%s", l, suffix);                                             \
        if (!rc) rc = add1(b, n, role, l, tp, err);                                                \
    } while (0)
    ADD("attn_norm.weight", QSCHEME_NORM, &L->attn_norm);
    ADD("attn_q.weight", QSCHEME_ATTN_Q, &L->q);
    ADD("attn_k.weight", QSCHEME_ATTN_K, &L->k);
    ADD("attn_v.weight", QSCHEME_ATTN_V, &L->v);
    ADD("attn_output.weight", QSCHEME_ATTN_OUT, &L->o);
    ADD("attn_q_norm.weight", QSCHEME_NORM, &L->q_norm);
    ADD("attn_k_norm.weight", QSCHEME_NORM, &L->k_norm);
    ADD("ffn_norm.weight", QSCHEME_NORM, &L->ffn_norm);
    if (!L->sparse) {
        ADD("ffn_gate.weight", QSCHEME_FFN_GATE, &L->mlp.gate);
        ADD("ffn_up.weight", QSCHEME_FFN_UP, &L->mlp.up);
        ADD("ffn_down.weight", QSCHEME_FFN_DOWN, &L->mlp.down);
        return rc;
    }
    ADD("ffn_gate_inp.weight", QSCHEME_ROUTER, &L->router);
#undef ADD
    static const struct {
        const char *suffix;
        enum qscheme_role role;
        size_t off;
    } exps[3] = {{"ffn_gate_exps.weight", QSCHEME_FFN_GATE, offsetof(struct expert_weights, gate)},
                 {"ffn_up_exps.weight", QSCHEME_FFN_UP, offsetof(struct expert_weights, up)},
                 {"ffn_down_exps.weight", QSCHEME_FFN_DOWN, offsetof(struct expert_weights, down)}};
    const struct tensor **tmp = malloc((size_t)w->n_experts * sizeof *tmp);
    if (!tmp) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    for (int k = 0; !rc && k < 3; k++) {
        for (int e = 0; e < w->n_experts; e++)
            tmp[e] = (const struct tensor *)((const char *)&L->experts[e] + exps[k].off);
        snprintf(n, sizeof n, "blk.%d.%s", l, exps[k].suffix);
        rc = add(b, n, exps[k].role, l, tmp, w->n_experts, err);
    }
    free(tmp);
    return rc;
}

int gguf_export_plan(const struct model_config *cfg, const struct model_weights *w, const struct quant_scheme *s,
                     struct gguf_export_plan *out, struct ms_err *err)
{
    memset(out, 0, sizeof *out);
    int n_t = 3, n_src = 3;
    for (int l = 0; l < w->num_layers; l++) {
        n_t += w->layers[l].sparse ? 12 : 11;
        n_src += w->layers[l].sparse ? 9 + 3 * w->n_experts : 11;
    }
    out->t = calloc((size_t)n_t, sizeof *out->t);
    out->srcs = calloc((size_t)n_src, sizeof *out->srcs);
    if (!out->t || !out->srcs) {
        gguf_export_plan_free(out);
        return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    }
    struct builder b = {out, 0, s, {cfg->num_layers, cfg->num_heads / cfg->num_kv_heads}};
    int rc = add1(&b, "token_embd.weight", QSCHEME_EMBD, -1, &w->embed, err);
    for (int l = 0; !rc && l < w->num_layers; l++) rc = add_layer(&b, w, l, err);
    if (!rc) rc = add1(&b, "output_norm.weight", QSCHEME_NORM, -1, &w->final_norm, err);
    if (!rc && !cfg->tie_word_embeddings) rc = add1(&b, "output.weight", QSCHEME_OUTPUT, -1, &w->lm_head, err);
    if (rc) gguf_export_plan_free(out);
    return rc;
}

void gguf_export_plan_free(struct gguf_export_plan *p)
{
    free(p->t);
    free(p->srcs);
    memset(p, 0, sizeof *p);
}

/* ---- the data */

struct chunk_job {
    const struct tensor *src;
    int64_t row0, rows;
    enum tensor_dtype to;
    size_t row_bytes;
    unsigned char *out;
    struct threadpool *tp;
};

static void chunk_task(void *ctx, int task, int thread)
{
    const struct chunk_job *j = ctx;
    int64_t r0 = (int64_t)task * ROWS_PER_TASK, r1 = r0 + ROWS_PER_TASK < j->rows ? r0 + ROWS_PER_TASK : j->rows;
    float *scratch = tp_scratch(j->tp, thread);
    if (j->src->dtype == j->to) { /* already in its type (from a GGUF): copied, no requantization loss */
        memcpy(j->out + (size_t)r0 * j->row_bytes, (const char *)j->src->data + (size_t)(j->row0 + r0) * j->row_bytes,
               (size_t)(r1 - r0) * j->row_bytes);
        return;
    }
    for (int64_t r = r0; r < r1; r++)
        tensor_quantize_row(j->src, j->row0 + r, j->to, j->out + (size_t)r * j->row_bytes, scratch);
}

/* Lets the source's mapped pages go once converted: the next read comes from the page cache
 * or the disk, and the process's resident memory stays near one tensor. */
static void drop_pages(const struct tensor *t)
{
    const uintptr_t page = 4096;
    int64_t rows = 1;
    for (int i = 0; i < t->ndim - 1; i++) rows *= t->shape[i];
    uintptr_t a = (uintptr_t)t->data, e = a + (size_t)rows * tensor_row_bytes(t);
    a &= ~(page - 1);
    madvise((void *)a, e - a, MADV_DONTNEED);
}

static int write_source(const struct gguf_export_tensor *t, const struct tensor *src, struct gguf_w *w,
                        struct threadpool *tp, unsigned char *buf, size_t buf_bytes, uint64_t *done,
                        const struct gguf_export_plan *p, int ti, gguf_export_progress_fn progress, void *pctx,
                        struct ms_err *err)
{
    int64_t cols = src->shape[src->ndim - 1], rows = 1;
    for (int i = 0; i < src->ndim - 1; i++) rows *= src->shape[i];
    size_t row_bytes = (size_t)qscheme_ggml_row_bytes(t->type, cols);
    int64_t per_chunk = (int64_t)(buf_bytes / row_bytes);
    for (int64_t r = 0; r < rows; r += per_chunk) {
        struct chunk_job j = {src, r, rows - r < per_chunk ? rows - r : per_chunk, t->dtype, row_bytes, buf, tp};
        tp_run(tp, (int)((j.rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK), chunk_task, &j);
        int rc = gguf_w_write_data(w, buf, (size_t)j.rows * row_bytes, err);
        if (rc) return rc;
        *done += (uint64_t)j.rows * row_bytes;
        if (progress) progress(pctx, p, ti, *done, false);
    }
    drop_pages(src);
    return MS_OK;
}

int gguf_export_write(const struct gguf_export_plan *p, struct gguf_w *w, int threads, gguf_export_progress_fn progress,
                      void *progress_ctx, struct ms_err *err)
{
    int rc = MS_OK;
    for (int i = 0; !rc && i < p->n; i++)
        rc = gguf_w_add_tensor(w, p->t[i].name, p->t[i].ndim, p->t[i].shape, p->t[i].type->id, p->t[i].nbytes, err);
    if (!rc) rc = gguf_w_write_header(w, err);
    if (rc) return rc;
    size_t max_row_bytes = 0;
    for (int i = 0; i < p->n; i++) {
        size_t rb = (size_t)qscheme_ggml_row_bytes(p->t[i].type, p->t[i].shape[p->t[i].ndim - 1]);
        if (rb > max_row_bytes) max_row_bytes = rb;
    }
    size_t buf_bytes = max_row_bytes > CHUNK_BYTES ? max_row_bytes : CHUNK_BYTES;
    unsigned char *buf = malloc(buf_bytes);
    struct threadpool *tp = buf ? tp_create(threads > 0 ? threads : 1, (size_t)p->max_row, err) : NULL;
    if (!buf) rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory for a %zu-byte chunk", buf_bytes);
    else if (!tp) rc = MS_ERR_NOMEM;
    uint64_t done = 0;
    for (int i = 0; !rc && i < p->n; i++) {
        for (int k = 0; !rc && k < p->t[i].n_src; k++)
            rc = write_source(&p->t[i], p->t[i].src[k], w, tp, buf, buf_bytes, &done, p, i,
                              progress, progress_ctx, err);
        if (!rc && progress) progress(progress_ctx, p, i, done, true);
    }
    tp_destroy(tp);
    free(buf);
    return rc;
}
