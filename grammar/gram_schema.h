/* JSON Schema (and json_object, and Qwen3 tool calls) -> a compiled grammar: a graph of nodes
 * that gram_match walks byte by byte.
 *
 * Supported: type (one or a list), properties / required / additionalProperties (false, true or
 * a schema; absent means true), items, minItems / maxItems, minLength / maxLength, enum, const,
 * anyOf, allOf with one member, nullable, minimum / maximum / exclusiveMinimum /
 * exclusiveMaximum (an integer range; a bounded "number" is generated as an integer in it),
 * format date / time / date-time / uuid / email, pattern (gram_regex.h's syntax, ECMAScript
 * semantics: a search, so unanchored sides allow any text; with minLength / maxLength folded
 * into its DFA; not with format), $ref to any local JSON pointer ("#",
 * "#/$defs/X", "#/definitions/X") including recursion. Ignored: title, description, $schema,
 * $id, $comment, default, examples, deprecated, readOnly, writeOnly, $defs / definitions (as
 * containers). Anything else is an error naming the keyword: a schema is never half-enforced.
 *
 * What the grammar generates is a subset of what the schema accepts: properties come in the
 * schema's order (optional ones may be skipped), extra keys (additionalProperties) are printable
 * ASCII without escapes, enum / const values are written compactly, numbers have at most 15
 * digits before and after the point, and free whitespace is at most GRAM_MAX_WS bytes per gap.
 * Every prefix the grammar accepts can be completed (schemas with no finite instance are
 * refused), so a constrained model can always end.
 *
 * A struct gram is immutable once compiled and reference counted: any thread. */
#ifndef MS_GRAMMAR_GRAM_SCHEMA_H
#define MS_GRAMMAR_GRAM_SCHEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "common/ms_common.h"

struct cJSON;
struct gram_regex;

#define GRAM_MAX_WS 16        /* free whitespace bytes per gap */
#define GRAM_MAX_FREE_KEY 64  /* bytes of an additional property's name */
#define GRAM_MAX_SCHEMA_NODES 100000
#define GRAM_MAX_ENUM 1024    /* enum values */
#define GRAM_MAX_PROPS 2048   /* properties of one object */

enum gram_kind {
    GRAM_OBJECT,
    GRAM_ARRAY,
    GRAM_STRING,
    GRAM_NUMBER,
    GRAM_INTEGER,
    GRAM_LITERALS, /* one of a set of byte strings (enum, const, true/false/null, raw text) */
    GRAM_ANYOF,
    GRAM_SEQ,      /* parts one after the other (the tool call wrapper) */
    GRAM_REF,      /* an alias of `target` (a $ref) */
    GRAM_REGEX,    /* raw text matching `re` (guided_regex); only as the root */
};

enum gram_format { GRAM_FMT_NONE, GRAM_FMT_DATE, GRAM_FMT_TIME, GRAM_FMT_DATE_TIME, GRAM_FMT_UUID, GRAM_FMT_EMAIL };

struct gram_node {
    enum gram_kind kind;
    /* OBJECT: props in schema order; sorted[] orders them by key bytes; req_after[i] is the
     * first required index >= i (n_props if none); additional: node or -1 (not allowed) */
    int n_props;
    char **keys;       /* JSON-escaped, without the quotes */
    int *key_len, *prop_node, *sorted, *req_after;
    bool *required;
    int additional;
    /* ARRAY */
    int items, min_items, max_items; /* max -1: unbounded */
    /* STRING */
    int min_len, max_len;            /* max -1: unbounded; in code points */
    enum gram_format format;
    /* STRING with a pattern (its decoded characters run through the DFA), REGEX: owned */
    struct gram_regex *re;
    /* INTEGER (and bounded NUMBER, compiled as INTEGER) */
    int64_t min, max;
    /* LITERALS (sorted byte strings), ANYOF / SEQ (node ids), REF */
    int n;
    char **lits;
    int *lit_len;
    int *alts;
    int target;
};

struct gram {
    _Atomic int refs;
    struct gram_node *nodes;
    int n_nodes, cap;
    int root;
    bool tool_call;    /* the grammar spells <tool_call> ... </tool_call> */
    bool raw;          /* no free whitespace around the root value (a choice of raw texts) */
};

/* Compiles a JSON Schema. NULL with err naming the keyword (and its JSON pointer) on failure. */
struct gram *gram_compile_json_schema(const struct cJSON *schema, struct ms_err *err);

/* Any JSON object (response_format json_object). */
struct gram *gram_compile_json_object(struct ms_err *err);

/* One Qwen3 tool call, "<tool_call>\n{"name": N, "arguments": A}\n</tool_call>", whose name is
 * one of names[] and whose arguments follow that function's parameters schema (NULL: any object). */
struct gram *gram_compile_tool_call(int n, const char *const *names, const struct cJSON *const *params,
                                    struct ms_err *err);

/* Exactly one of n texts, as raw bytes (vLLM's guided_choice): 1 <= n <= GRAM_MAX_ENUM, each
 * text non-empty and at most GRAM_MAX_CHOICE_BYTES; else NULL with err saying which. */
#define GRAM_MAX_CHOICE_BYTES 4096
struct gram *gram_compile_choice(int n, const char *const *texts, struct ms_err *err);

/* The whole answer, raw, matches the regex (vLLM's guided_regex; Python's syntax, a full
 * match); NULL with err naming the problem. */
struct gram *gram_compile_regex(const char *regex, struct ms_err *err);

struct gram *gram_retain(struct gram *g);
void gram_release(struct gram *g); /* NULL allowed */

/* The node a REF chain ends at. */
int gram_resolve(const struct gram *g, int node);

#endif
