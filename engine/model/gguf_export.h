/* Converts a loaded model (struct model_weights, still mapped: a Hugging Face checkpoint or a
 * GGUF of any type the format registry reads) into a GGUF under a quantization scheme: the tensor plan (llama.cpp's names and order, experts of a
 * layer stacked into one [n_expert, rows, cols] tensor, each tensor's ggml type from
 * quant_scheme), then the data, quantized with the format table's quantize_row (from the source's
 * dequant_row; a source already in its planned type is copied byte for byte) a chunk of rows at a time on a thread pool and streamed to the writer. Memory: one chunk buffer (a few tens
 * of MB) beyond the mapping, whose pages are dropped after each tensor. */
#ifndef MS_ENGINE_MODEL_GGUF_EXPORT_H
#define MS_ENGINE_MODEL_GGUF_EXPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "common/ms_common.h"
#include "config/model_config.h"
#include "engine/kernels/dtype.h"
#include "engine/model/quant_scheme.h"
#include "engine/model/weights.h"

struct gguf_w;

struct gguf_export_tensor {
    char name[96];             /* "blk.3.ffn_down_exps.weight" */
    int ndim;
    int64_t shape[3];          /* row-major */
    const struct tensor *const *src; /* [n_src]: one, or one per expert (stacked) */
    int n_src;
    const struct qscheme_ggml_type *type;
    enum tensor_dtype dtype;   /* the format that writes it */
    uint64_t nbytes;
};

struct gguf_export_plan {
    struct gguf_export_tensor *t;
    int n;
    uint64_t total_bytes;      /* of tensor data */
    int64_t max_row;
    const struct tensor **srcs; /* owned storage behind every t[i].src */
};

/* Plans every tensor of w under scheme s. Fails, naming the tensor and the format, when the
 * scheme needs a format this build cannot write (not registered, or without quantize_row). */
int gguf_export_plan(const struct model_config *cfg, const struct model_weights *w, const struct quant_scheme *s,
                     struct gguf_export_plan *out, struct ms_err *err);
void gguf_export_plan_free(struct gguf_export_plan *p);

/* Called after each chunk written (tensor index, bytes of tensor data written so far) and once
 * more with `tensor_done` when a tensor is complete. */
typedef void (*gguf_export_progress_fn)(void *ctx, const struct gguf_export_plan *p, int tensor, uint64_t done,
                                        bool tensor_done);

/* Declares the plan's tensors to w (whose KVs are already added), writes the header and every
 * tensor's data using `threads` threads. The caller finishes or aborts w. */
int gguf_export_write(const struct gguf_export_plan *p, struct gguf_w *w, int threads, gguf_export_progress_fn progress,
                      void *progress_ctx, struct ms_err *err);

#endif
