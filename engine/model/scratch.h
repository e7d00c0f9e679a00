/* Private to engine/model/: the forward pass's scratch and matmul plumbing, shared by the
 * blocks (attention.c, moe.c) and the layer loop (forward.c). Nothing here names a weight
 * format: a matmul input is prepared in whatever form its weights' kernel reads. */
#ifndef MS_ENGINE_MODEL_SCRATCH_H
#define MS_ENGINE_MODEL_SCRATCH_H

#include "engine/kernels/matmul.h"
#include "engine/model/kv_cache.h"
#include "engine/model/model.h"

/* Scratch for one forward, allocated up front (model_scratch_create). */
struct model_scratch {
    int max_tokens;
    float *x;      /* [max_tokens, hidden] residual stream */
    float *xn;     /* [max_tokens, hidden] normed input of a block */
    float *tmp;    /* [max_tokens, hidden] block output */
    float *q;      /* [max_tokens, heads * head_dim] */
    float *k, *v;  /* [max_tokens, kv_heads * head_dim] */
    float *attn;   /* [max_tokens, heads * head_dim] */
    float *cos_t, *sin_t;  /* [max_tokens, head_dim / 2] */
    float *router;         /* [max_tokens, experts] */
    int *topk_expert;      /* [max_tokens, top_k] */
    float *topk_weight;    /* [max_tokens, top_k] */
    int *expert_count, *expert_offset; /* [experts + 1] */
    int *slot_of;          /* [max_tokens, top_k]: (token, j) -> row in the grouped buffers */
    float *grouped_x;      /* [max_tokens * top_k, hidden] tokens gathered by expert */
    float *gate, *up;      /* [max_tokens * top_k, max(moe_inter, inter)] */
    float *grouped_out;    /* [max_tokens * top_k, hidden] */
    void *act;             /* a matmul input prepared for its weights' kernel (fwd_prepare_input) */
    void *act_tok;         /* experts with prepared inputs: the tokens' normed rows prepared once, before grouping */
    struct kern_mm *mm;    /* [2 * experts + 3] matmuls handed to one kern_matmul_many */
    const struct expert_weights **active; /* [experts] the experts with tokens in this layer */
    int *active_off, *active_n;           /* [experts] their first grouped row and row count */
    struct model_profile prof;
    uint64_t *selections;  /* [layers * experts] or NULL (dense): model_scratch_expert_selections */
    double prof_mark;      /* when the phase now running began */
};

/* A matmul input: the float rows, and the same rows prepared as `act` when the kernel of the
 * weights it feeds reads another kind (xa, row stride kern_act_bytes(act, 1, in)). */
struct act_input {
    const float *x;
    const void *xa;
    enum kern_act act;
    int in;
};

/* The activation kinds this model's kernels are offered (a kern_matmul_act bit set). */
unsigned fwd_offered_acts(const struct model *m);

/* Charges the time since the last mark to `phase`. */
void fwd_prof_end(struct model_scratch *s, enum model_phase phase);

/* Prepares x [n, in] for matmuls with w (and any weight that takes the same input) in s->act,
 * once for all of them. */
struct act_input fwd_prepare_input(const struct model *m, struct model_scratch *s, struct threadpool *tp,
                                   const struct tensor *w, const float *x, int n);

/* The matmul of rows [off, off + n) of a prepared input with w into y (row stride ldy). */
struct kern_mm fwd_mm_rows(const struct tensor *w, struct act_input a, int off, int n, float *y, int ldy);

/* Runs s->mm[0, count) together, counting the weight bytes they stream. */
void fwd_run_matmuls(struct model_scratch *s, struct threadpool *tp, int count);

/* One matmul of x [n, in] with w, its input prepared on the way. */
void fwd_matmul(const struct model *m, struct model_scratch *s, struct threadpool *tp, const struct tensor *w,
                const float *x, int n, float *y, int ldy);

/* Attention reads the cache in runs of at most this many rows (within one block), converted
 * to float32 in per-thread scratch when stored as 16-bit. */
#define KV_CHUNK_ROWS 64

#endif
