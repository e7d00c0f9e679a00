/* The model's decoded output text -> what an OpenAI response carries, incrementally.
 *
 * Three stages run in order on every piece of text:
 *   1. stop strings: the text is matched against each stop string across piece boundaries; the
 *      longest tail that could still begin a stop string is held back until it is known not to
 *      be one. On a match the text before it is released and the parser reports `stopped`.
 *   2. reasoning: with thinking on, text between <think> and </think> (or from the start, when
 *      the prompt already opened <think>) becomes reasoning, without the tags and without the
 *      newlines around it; what follows becomes content (leading newlines dropped).
 *   3. tool calls: with tools on, <tool_call>{"name":..,"arguments":..}</tool_call> in the
 *      content becomes a parsed tool call; malformed JSON stays as plain content.
 * Tags split across pieces are held back until complete.
 *
 * One parser per choice; one thread at a time. Output is appended to the caller's
 * struct parser_out, which the caller drains (clears) as it sends deltas. */
#ifndef MS_SERVER_OUTPUT_PARSER_H
#define MS_SERVER_OUTPUT_PARSER_H

#include <stdbool.h>
#include <stddef.h>

#include "server/sbuf.h"

#define OUTPUT_PARSER_MAX_STOPS 16

struct parser_config {
    bool thinking;           /* split <think> ... </think> into reasoning */
    bool starts_in_thinking; /* the prompt ends inside an open <think> */
    bool tools;              /* parse <tool_call> blocks */
    const char *const *stops; /* borrowed for the parser's life */
    int n_stops;
};

struct parsed_tool_call {
    char *name;      /* owned */
    char *arguments; /* owned: a JSON text */
};

struct parser_out {
    struct sbuf reasoning, content; /* new text since the caller last cleared them */
    struct parsed_tool_call *calls; /* every call parsed so far, [n_calls] */
    int n_calls, cap_calls;
    int n_calls_sent;               /* for the caller: calls already sent as deltas */
};

struct output_parser;

struct output_parser *output_parser_create(const struct parser_config *cfg);
void output_parser_destroy(struct output_parser *p);

/* Feeds decoded text. Returns 0, or -1 when memory ran out. After a stop string matched,
 * further text is ignored. A NUL byte (U+0000) becomes U+FFFD: JSON strings built with cJSON
 * would end at it. */
int output_parser_push(struct output_parser *p, const char *text, size_t len, struct parser_out *out);

/* End of output: releases everything held back (an unterminated tool call becomes content). */
int output_parser_finish(struct output_parser *p, struct parser_out *out);

bool output_parser_stopped(const struct output_parser *p);  /* a stop string matched */
int output_parser_stop_index(const struct output_parser *p); /* which one (cfg.stops[i]), or -1 */
bool output_parser_thinking(const struct output_parser *p); /* inside reasoning now */

void parser_out_free(struct parser_out *out);

#endif
