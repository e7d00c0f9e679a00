/* Structured outputs for OpenAI requests: which grammar a request's answer must follow.
 *
 * response_format {"type": "text"} (none), {"type": "json_object"} (any JSON object) and
 * {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}; tool_choice "required"
 * or {"type": "function", "function": {"name"}} with tools: exactly one Qwen3 <tool_call> whose
 * arguments follow that function's parameters (the named one, or any of them). tool_choice
 * "auto" / "none" leave the answer free. vLLM's spellings too: guided_json, guided_choice (the
 * answer is exactly one of a list of strings), structured_outputs {json | choice | json_object}.
 * A schema that cannot be enforced is a 400 naming the keyword. Grammars are cached by their source text (CONSTRAINT_CACHE_SIZE of them).
 *
 * Any thread. */
#ifndef MS_SERVER_CONSTRAINT_H
#define MS_SERVER_CONSTRAINT_H

#include "common/ms_common.h"
#include "grammar/gram_cache.h"
#include "grammar/gram_vocab.h"
#include "server/openai_request.h"

#define CONSTRAINT_CACHE_SIZE 64

struct tokenizer;
struct model_config;

/* Fills r->grammar (a new reference; NULL: unconstrained) from r->root. Call after
 * oa_request_parse, before oa_request_build_prompts frees the tree. 0, or -1 with e set. */
int constraint_compile(struct oa_request *r, struct gram_cache *cache, struct oa_error *e);

/* The grammar view of a tokenizer's vocabulary: the model's EOS tokens end a value, special and
 * other added tokens are never allowed except <tool_call> / </tool_call> in tool-call grammars. */
struct gram_vocab *constraint_vocab(const struct tokenizer *tok, const struct model_config *mc, struct ms_err *err);

#endif
