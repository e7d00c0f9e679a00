/* Where a command finds the tokenizer and chat template of its --model: a Hugging Face
 * directory holds them; a FILE.gguf too (tokenizer.ggml.* and tokenizer.chat_template), unless
 * --tokenizer DIR (env MOESERVE_TOKENIZER) names a directory to take them from instead. */
#ifndef MS_CLI_MODEL_H
#define MS_CLI_MODEL_H

#include "common/ms_common.h"

struct tokenizer;
struct chat_template;

/* `tokenizer_dir` may be NULL. NULL on failure with err set. */
struct tokenizer *cli_load_tokenizer(const char *model, const char *tokenizer_dir, struct ms_err *err);
struct chat_template *cli_load_template(const char *model, const char *tokenizer_dir, struct ms_err *err);

#endif
