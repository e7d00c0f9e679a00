/* Loading a model: config, weights, and the small float32 copies the forward reads (norms, RoPE
 * frequencies). The forward pass itself is forward.c (with attention.c and moe.c). */
#include "engine/model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels/cpu.h"
#include "engine/model/gguf.h"
#include "engine/model/gguf_config.h"


static float *tensor_copy_f32(const struct tensor *t)
{
    int64_t n = tensor_numel(t);
    float *out = malloc((size_t)n * sizeof *out);
    if (out) tensor_to_f32(t, 0, n, out);
    return out;
}

/* RoPE inverse frequencies; yarn blends interpolated and original frequencies per dimension. */
static void rope_init(struct model *m)
{
    const struct model_config *c = &m->cfg;
    int half = c->head_dim / 2;
    m->rope_scale = 1.0f;
    for (int i = 0; i < half; i++) m->inv_freq[i] = (float)(1.0 / pow(c->rope_theta, 2.0 * i / c->head_dim));
    if (c->rope_scaling.type != ROPE_SCALING_YARN) return;
    double dim = c->head_dim, base = c->rope_theta, factor = c->rope_scaling.factor;
    double orig = c->rope_scaling.original_max_position_embeddings;
#define CORRECTION_DIM(rot) (dim * log(orig / ((rot) * 2 * M_PI)) / (2 * log(base)))
    double low = CORRECTION_DIM(c->rope_scaling.beta_fast), high = CORRECTION_DIM(c->rope_scaling.beta_slow);
#undef CORRECTION_DIM
    if (c->rope_scaling.truncate) {
        low = floor(low);
        high = ceil(high);
    }
    low = low > 0 ? low : 0;
    high = high < dim - 1 ? high : dim - 1;
    if (low == high) high += 0.001;
    for (int i = 0; i < half; i++) {
        double ramp = (i - low) / (high - low);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        double extrapolation = 1.0 - ramp; /* share of the original frequency */
        double f = m->inv_freq[i];
        m->inv_freq[i] = (float)(f / factor * (1 - extrapolation) + f * extrapolation);
    }
    m->rope_scale = (float)c->rope_scaling.attention_factor;
}

static int copy_norms(struct model *m, struct ms_err *err)
{
    const struct model_config *c = &m->cfg;
    m->norms = ms_calloc((size_t)c->num_layers, sizeof *m->norms);
    if (!m->norms) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    for (int l = 0; l < c->num_layers; l++) {
        const struct layer_weights *L = &m->weights->layers[l];
        struct layer_norms *n = &m->norms[l];
        n->attn = tensor_copy_f32(&L->attn_norm);
        n->ffn = tensor_copy_f32(&L->ffn_norm);
        n->q = tensor_copy_f32(&L->q_norm);
        n->k = tensor_copy_f32(&L->k_norm);
        if (!n->attn || !n->ffn || !n->q || !n->k) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    }
    m->final_norm = tensor_copy_f32(&m->weights->final_norm);
    m->inv_freq = malloc((size_t)(c->head_dim / 2) * sizeof *m->inv_freq);
    if (!m->final_norm || !m->inv_freq) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    return MS_OK;
}

/* A GGUF's configuration comes from its metadata; the header is parsed again by weights_load,
 * which keeps the mapping (a header is a few MB even for a 30B model). */
static int config_load(struct model_config *cfg, const char *path, struct ms_err *err)
{
    if (!gguf_config_is_gguf_path(path)) return model_config_load(cfg, path, err);
    struct gguf_file *g;
    int rc = gguf_open(path, &g, err);
    if (rc) return rc;
    rc = gguf_config_read(g, cfg, err);
    gguf_close(g);
    return rc;
}

int model_load(const char *model_dir, bool show_progress, struct model **out, struct ms_err *err)
{
    struct model_load_opts o = {.show_progress = show_progress};
    return model_load_with_opts(model_dir, &o, out, err);
}

bool model_is_quantized(const struct model *m)
{
    return m->weights->quant_bytes > 0;
}

int model_load_with_opts(const char *model_dir, const struct model_load_opts *o, struct model **out,
                         struct ms_err *err)
{
    *out = NULL;
    struct model *m = calloc(1, sizeof *m);
    if (!m) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    int rc = config_load(&m->cfg, model_dir, err);
    if (!rc) rc = weights_load(&m->cfg, model_dir, &m->weights, err);
    /* quantizing reads every matmul weight once, with its own progress, and lets each go */
    const struct quant_scheme *qs = o->quantize_scheme ? qscheme_by_name(o->quantize_scheme) : NULL;
    if (!rc && o->quantize_scheme && !qs)
        rc = ms_err_set(err, MS_ERR_INVALID, "unknown quantization scheme '%s'", o->quantize_scheme);
    int threads = o->threads > 0 ? o->threads : 1;
    /* q8_0 keeps its own path: the matmul weights only, the embedding read as stored */
    if (!rc && (o->quantize_q8_0 || (qs && !strcmp(qs->name, "q8_0"))))
        rc = weights_quantize(m->weights, TENSOR_DTYPE_Q8_0, threads, o->show_progress, err);
    else if (!rc && qs)
        rc = weights_quantize_scheme(m->weights, &m->cfg, qs, threads, o->show_progress, err);
    else if (!rc && o->keep_mapping)
        weights_page_in(m->weights, o->show_progress);
    else if (!rc)
        weights_copy_in(m->weights, o->show_progress); /* a shortfall is said there and still serves */
    if (!rc) rc = copy_norms(m, err);
    if (rc) {
        model_free(m);
        return rc;
    }
    rope_init(m);
    m->bf16_activations = o->bf16_activations && kern_has_dpbf16();
    *out = m;
    return MS_OK;
}

void model_free(struct model *m)
{
    if (!m) return;
    for (int l = 0; m->norms && l < m->cfg.num_layers; l++) {
        free(m->norms[l].attn);
        free(m->norms[l].ffn);
        free(m->norms[l].q);
        free(m->norms[l].k);
    }
    free(m->norms);
    free(m->final_norm);
    free(m->inv_freq);
    weights_free(m->weights);
    free(m);
}

