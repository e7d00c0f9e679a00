/* The metadata of a GGUF made from a Hugging Face checkpoint, under the names llama.cpp's
 * convert_hf_to_gguf.py writes (and tools/make_gguf.py, in the same order): general.*, the
 * qwen3moe.* / qwen3.* hyperparameters from the config, the tokenizer (gpt2 BPE, pre-tokenizer
 * qwen2: tokens, token types, merges, special ids) from tokenizer.json and
 * tokenizer_config.json, and the chat template. */
#ifndef MS_ENGINE_MODEL_GGUF_META_H
#define MS_ENGINE_MODEL_GGUF_META_H

#include "common/ms_common.h"
#include "config/model_config.h"
#include "engine/model/gguf.h"
#include "engine/model/gguf_writer.h"
#include "engine/model/quant_scheme.h"

/* "qwen3moe" or "qwen3". */
const char *gguf_meta_arch(const struct model_config *cfg);

/* Adds every KV to w (before its header). `name` is general.name. Errors name the file. */
int gguf_meta_add(struct gguf_w *w, const struct model_config *cfg, const char *model_dir,
                  const struct quant_scheme *scheme, const char *name, struct ms_err *err);

/* The same for a model read from a GGUF (moeserve quantize IN.gguf): general.* and the
 * hyperparameters from cfg as above, general.file_type / quantization_version for `scheme`, and
 * every tokenizer.* key of `in` (the vocabulary, merges, special ids, chat template) copied as
 * stored, in its order. Fails, naming the file, when `in` has no tokenizer.ggml.tokens. */
int gguf_meta_add_from_gguf(struct gguf_w *w, const struct model_config *cfg, const struct gguf_file *in,
                            const struct quant_scheme *scheme, const char *name, struct ms_err *err);

#endif
