/* Private to engine/model/: the attention block of one layer. */
#ifndef MS_ENGINE_MODEL_ATTENTION_H
#define MS_ENGINE_MODEL_ATTENTION_H

#include "engine/model/scratch.h"

/* Layer l over the batch's tokens: q/k/v, QK-norm, RoPE, K/V into the cache, attention over each
 * token's sequence, the output projection into s->tmp. */
void attention_block(const struct model *m, struct model_scratch *s, struct kv_cache *kv, struct threadpool *tp,
                     const struct fwd_batch *b, int l);

#endif
