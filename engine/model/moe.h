/* Private to engine/model/: the feed-forward block of one layer, sparse (MoE) or dense. */
#ifndef MS_ENGINE_MODEL_MOE_H
#define MS_ENGINE_MODEL_MOE_H

#include "engine/model/scratch.h"

/* Layer l's MoE over the n tokens of s->xn (routing, grouping by expert, the experts' MLPs, the
 * weighted combine) into s->tmp. */
void moe_block(const struct model *m, struct model_scratch *s, struct threadpool *tp, int l, int n);
/* A dense layer's SwiGLU MLP, through the same code as one expert. */
void dense_mlp_block(const struct model *m, struct model_scratch *s, struct threadpool *tp, int l, int n);

#endif
