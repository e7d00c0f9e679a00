/* A model's configuration from a GGUF's metadata, as config.json + generation_config.json would
 * give it: general.architecture qwen3moe (or qwen3, dense), the {arch}.* hyperparameters, the
 * vocabulary size and the end-of-sequence ids from tokenizer.ggml.*. The result goes through
 * the same model_config_validate as config.json, with the GGUF keys named in the refusals. */
#ifndef MS_ENGINE_GGUF_CONFIG_H
#define MS_ENGINE_GGUF_CONFIG_H

#include "common/ms_common.h"
#include "config/model_config.h"
#include "engine/model/gguf.h"

/* Fills *cfg from g (the tensor table says which layers are sparse and whether the output
 * projection is tied). MS_OK, or an error naming the file and the key. */
int gguf_config_read(const struct gguf_file *g, struct model_config *cfg, struct ms_err *err);

/* Whether `path` names a GGUF file (ends in .gguf). */
bool gguf_config_is_gguf_path(const char *path);

#endif
