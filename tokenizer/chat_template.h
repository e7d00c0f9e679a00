/* Chat templates: a Jinja-subset interpreter that renders a model's chat template (Qwen3 and
 * similar) byte-identically to Hugging Face transformers' apply_chat_template, which runs jinja2's
 * ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, loopcontrols) with the
 * filter tojson = json.dumps(x, ensure_ascii=False, ...) and the globals raise_exception and
 * strftime_now.
 *
 * The template is lexed and parsed once, in tmpl_load; every filter, test, global function,
 * method name and statement is checked there, so an unsupported construct fails at load time with
 * its name and line ("line 12: unsupported statement '{% call %}'"), never at render time.
 *
 * Supported (with jinja2's semantics, Python truthiness and str()):
 *   statements  if/elif/else, for (else, `if` filter, tuple unpacking, loop.index0/index/revindex/
 *               revindex0/first/last/length/previtem/nextitem/cycle), set (name, tuple,
 *               ns.attr, {% set x %}block{% endset %}), macro (parameters with defaults, called
 *               as name(...)), break/continue, raw, generation (transformers), comments,
 *               whitespace control {%- -%} {{- -}} {#- -#} {%+ +%}, trim_blocks, lstrip_blocks
 *   expressions string (Python escapes)/int/float/true/false/none (any case) literals, lists,
 *               tuples, dicts, + - * / // % ** ~, == != < <= > >= (chained), in / not in,
 *               and/or/not, a if c else b, attribute/item access, slices (negative, [::-1])
 *   tests       defined undefined none string mapping sequence iterable number integer float
 *               boolean true false callable even odd divisibleby eq/equalto ne lt gt le ge in
 *               sameas lower upper
 *   filters     tojson (transformers' json.dumps: ensure_ascii, indent, separators, sort_keys)
 *               trim length/count default/d string lower upper capitalize title items join safe
 *               first last list int float abs replace reverse escape/e selectattr rejectattr
 *               map(attribute=) unique
 *   methods     str: startswith endswith split rsplit strip lstrip rstrip replace upper lower
 *               title capitalize find rfind count join isdigit isalpha isalnum isspace islower
 *               isupper; dict: get items keys values; list: count index; loop.cycle
 *   globals     namespace() range() dict() raise_exception(msg) strftime_now(fmt)
 * Not supported (load error): call/filter blocks, include/import/extends/block, with, do,
 * recursive loops, printf-style '%' on a literal string, star arguments (*args, **kw), other
 * filters and tests.
 *
 * Thread safety: a loaded template is immutable. tmpl_render only reads it and keeps all render
 * state (values, scopes, output) in memory private to the call, so any number of threads may
 * render the same template concurrently. tmpl_free must not race with renders. */
#ifndef MS_CHAT_TEMPLATE_H
#define MS_CHAT_TEMPLATE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "common/ms_common.h"
#include "tokenizer/tokenizer.h"

struct chat_template;

/* Loads DIR/chat_template.jinja if it exists, else the "chat_template" string of
 * DIR/tokenizer_config.json (a list of {"name","template"} picks "default"). The special tokens of
 * tokenizer_config.json (bos_token, eos_token, pad_token, unk_token, ...) become template
 * variables as transformers passes them. NULL on failure with err set. */
struct chat_template *tmpl_load(const char *model_dir, struct ms_err *err);

/* Parses template source directly (no special tokens). `name` labels error messages. */
struct chat_template *tmpl_load_string(const char *source, size_t len, const char *name,
                                       struct ms_err *err);

/* A GGUF's tokenizer.chat_template (source[0..len)), with the special-token variables a GGUF can
 * give: eos_token and pad_token are the tokens of v's eos/pad ids, bos_token that of the bos id
 * only when add_bos_token is true (tools/make_gguf.py and llama.cpp's converter write a bos id for
 * Qwen although its tokenizer_config.json has bos_token null). additional_special_tokens and
 * unk_token are not in a GGUF and stay undefined. Errors are labelled "tokenizer.chat_template". */
struct chat_template *tmpl_load_gguf(const char *source, size_t len, const struct tok_vocab *v,
                                     struct ms_err *err);

void tmpl_free(struct chat_template *t);

/* Renders the template with the variables transformers passes: messages (a JSON array, required),
 * tools (a JSON array, or NULL: then `tools` is none), documents (none), add_generation_prompt,
 * the special tokens, and every member of kwargs (a JSON object or NULL) as a top-level variable
 * (e.g. enable_thinking); kwargs override the others except "messages", which is rejected (a
 * TypeError in transformers). *out gets the malloc'd NUL-terminated
 * rendering (caller frees); *out_len, if not NULL, its length. Runtime failures (raise_exception,
 * undefined attribute of undefined, type errors) return MS_ERR_INVALID with the message;
 * *out is NULL then.
 *
 * JSON numbers: Python distinguishes 1 from 1.0 and tojson prints them differently. A number node
 * parsed by tmpl_json_parse remembers its literal; other number nodes are ints when integral and
 * below 2^53 in magnitude, else floats. */
int tmpl_render(const struct chat_template *t, const cJSON *messages, const cJSON *tools,
                int add_generation_prompt, const cJSON *kwargs, char **out, struct ms_err *err);
int tmpl_render_len(const struct chat_template *t, const cJSON *messages, const cJSON *tools,
                    int add_generation_prompt, const cJSON *kwargs, char **out, size_t *out_len,
                    struct ms_err *err);

/* cJSON_ParseWithLength plus number literals: every number node keeps its source text in
 * valuestring (freed by cJSON_Delete) so that 1.0 stays a float as in Python's json.loads.
 * NULL on invalid JSON with err naming the byte offset. */
cJSON *tmpl_json_parse(const char *text, size_t len, struct ms_err *err);

/* The template source as loaded (for diagnostics). */
const char *tmpl_source(const struct chat_template *t);

#endif
